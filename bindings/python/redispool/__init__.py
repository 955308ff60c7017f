"""redispool: a thread-safe Redis connection pool with go-redis semantics, for
Python, over the libredispool C library (through ctypes; the GIL is released
during every library call).

    import redispool
    pool = redispool.Pool.from_url("redis://127.0.0.1:6379/0?pool_size=8")
    with pool.get() as conn:
        conn.execute("SET", "greeting", "hello")
        assert conn.execute("GET", "greeting") == b"hello"
"""

from . import _native
from .errors import (
    ERRORS_BY_CODE,
    BadConnError,
    CanceledError,
    ClosedError,
    ClusterError,
    TLSError,
    ConnIOError,
    DialError,
    HandshakeError,
    InternalError,
    InvalidArgumentError,
    PoolExhaustedError,
    PoolTimeoutError,
    ProtocolError,
    RedisPoolError,
    ReplyError,
    WouldBlockError,
)
from .cluster import Cluster, ClusterInfo, key_slot
from .pool import (
    OPTION_NAMES,
    Cancel,
    Conn,
    Pool,
    SentinelStats,
    Stats,
    Subscriber,
    TransactionAborted,
)

__version__ = "0.1.0"


def library_version() -> str:
    """The loaded libredispool's version (pool_version)."""
    return _native.lib.pool_version().decode()


def library_path() -> str:
    """Where libredispool was loaded from (REDISPOOL_LIB, the SONAME, or the checkout)."""
    return _native.lib._name


__all__ = [
    "ERRORS_BY_CODE",
    "OPTION_NAMES",
    "BadConnError",
    "Cancel",
    "Cluster",
    "ClusterInfo",
    "CanceledError",
    "ClosedError",
    "ClusterError",
    "TLSError",
    "Conn",
    "ConnIOError",
    "DialError",
    "HandshakeError",
    "InternalError",
    "InvalidArgumentError",
    "Pool",
    "PoolExhaustedError",
    "PoolTimeoutError",
    "ProtocolError",
    "RedisPoolError",
    "ReplyError",
    "SentinelStats",
    "Stats",
    "Subscriber",
    "TransactionAborted",
    "WouldBlockError",
    "key_slot",
    "library_path",
    "library_version",
]
