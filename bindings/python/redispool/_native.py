"""The raw C ABI of libredispool (include/redispool.h) through ctypes. Internal.

Every function is bound from a ``ctypes.CDLL``, so every call releases the GIL
while it runs: other Python threads keep going while one waits in pool_get or
for a reply. The tables here (status codes, reply types, struct layouts,
prototypes) are written out by hand; tests/test_header.py parses the header and
fails when they differ from it, so a code or field added to the C API cannot be
forgotten here.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# The SONAME: what an installed library (scripts/install.sh, a distribution
# package) is found by through the dynamic loader's default path and ld.so.cache.
SONAME = "libredispool.so.0"

# Status codes (POOL_OK, POOL_ERR_*): stable values, checked against the header.
STATUS_CODES = {
    "POOL_OK": 0,
    "POOL_ERR_CLOSED": 1,
    "POOL_ERR_EXHAUSTED": 2,
    "POOL_ERR_TIMEOUT": 3,
    "POOL_ERR_DIAL": 4,
    "POOL_ERR_INVALID_ARG": 5,
    "POOL_ERR_WOULD_BLOCK": 6,
    "POOL_ERR_CANCELED": 7,
    "POOL_ERR_BAD_CONN": 8,
    "POOL_ERR_HANDSHAKE": 9,
    "POOL_ERR_IO": 10,
    "POOL_ERR_PROTOCOL": 11,
    "POOL_ERR_INTERNAL": 12,
    "POOL_ERR_CLUSTER": 13,
    "POOL_ERR_TLS": 14,
}
POOL_OK = STATUS_CODES["POOL_OK"]
# pool_conn_start / pool_conn_finish: what to wait for on the conn's fd.
POOL_WANT_READ = 1
POOL_WANT_WRITE = 2
POOL_ERR_WOULD_BLOCK = STATUS_CODES["POOL_ERR_WOULD_BLOCK"]

# Reply types (POOL_REPLY_*), checked against the header.
REPLY_TYPES = {
    "POOL_REPLY_STRING": 1,
    "POOL_REPLY_ARRAY": 2,
    "POOL_REPLY_INTEGER": 3,
    "POOL_REPLY_NIL": 4,
    "POOL_REPLY_STATUS": 5,
    "POOL_REPLY_ERROR": 6,
    "POOL_REPLY_DOUBLE": 7,
    "POOL_REPLY_BOOL": 8,
    "POOL_REPLY_MAP": 9,
    "POOL_REPLY_SET": 10,
    "POOL_REPLY_PUSH": 12,
    "POOL_REPLY_BIGNUM": 13,
    "POOL_REPLY_VERB": 14,
}


class PoolError(Structure):
    """pool_error_t"""

    _fields_ = [("code", c_int32), ("message", c_char * 256)]


class PoolReply(Structure):
    """pool_reply_t"""


PoolReply._fields_ = [
    ("type", c_int32),
    ("integer", c_int64),
    ("dval", c_double),
    ("len", c_size_t),
    ("str", c_void_p),  # not c_char_p: binary data may hold NULs, read with len
    ("vtype", c_char * 4),
    ("elements", c_size_t),
    ("element", POINTER(POINTER(PoolReply))),
]


class PoolMessage(Structure):
    """pool_message_t (from pool_subscriber_receive)"""

    _fields_ = [
        ("kind", c_int32),
        # const char * in C; binary safe: read through the raw pointer with the
        # lengths (pool.py _message_bytes), never as a NUL-terminated c_char_p.
        ("channel", c_char_p),
        ("channel_len", c_size_t),
        ("pattern", c_char_p),
        ("pattern_len", c_size_t),
        ("payload", c_char_p),
        ("payload_len", c_size_t),
        ("count", c_int64),
        ("reply", POINTER(PoolReply)),
    ]


# Message kinds (POOL_MSG_*), checked against the header.
MESSAGE_KINDS = {
    "POOL_MSG_MESSAGE": 1,
    "POOL_MSG_PMESSAGE": 2,
    "POOL_MSG_SMESSAGE": 3,
    "POOL_MSG_SUBSCRIBE": 4,
    "POOL_MSG_PSUBSCRIBE": 5,
    "POOL_MSG_SSUBSCRIBE": 6,
    "POOL_MSG_UNSUBSCRIBE": 7,
    "POOL_MSG_PUNSUBSCRIBE": 8,
    "POOL_MSG_SUNSUBSCRIBE": 9,
    "POOL_MSG_PONG": 10,
    "POOL_MSG_RESUBSCRIBED": 11,
    "POOL_MSG_PUSH": 12,
    "POOL_MSG_ERROR": 13,
}


class PoolStats(Structure):
    """pool_stats_t; set struct_size to sizeof(PoolStats) before pool_stats."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("timeouts", c_uint64),
        ("wait_count", c_uint64),
        ("unusable", c_uint64),
        ("wait_duration_ns", c_uint64),
        ("total_conns", c_uint32),
        ("idle_conns", c_uint32),
        ("stale_conns", c_uint32),
        ("pending_requests", c_uint32),
        ("dials", c_uint64),
        ("dial_errors", c_uint64),
        ("removed_conns", c_uint64),
        ("evicted_conns", c_uint64),
        ("waiting", c_uint32),
        ("dials_in_progress", c_uint32),
        ("leak_suspects", c_uint32),
        ("in_use_conns", c_uint32),
        ("late_returns", c_uint64),
        ("reset_conns", c_uint64),
    ]


class PoolLeak(Structure):
    """pool_leak_t"""

    _fields_ = [("conn_id", c_uint64), ("held_ms", c_int64)]


class PoolOptions(Structure):
    """pool_options_t; always filled by init_struct(pool_options_init_size) first."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("addr", c_char_p),
        ("dialer", c_void_p),
        ("dialer_userdata", c_void_p),
        ("pool_fifo", c_bool),
        ("pool_size", c_int32),
        ("min_idle_conns", c_int32),
        ("max_idle_conns", c_int32),
        ("max_active_conns", c_int32),
        ("max_concurrent_dials", c_int32),
        ("dial_timeout_ms", c_int64),
        ("pool_timeout_ms", c_int64),
        ("conn_max_idle_time_ms", c_int64),
        ("conn_max_lifetime_ms", c_int64),
        ("conn_max_lifetime_jitter_ms", c_int64),
        ("dialer_retries", c_int32),
        ("dialer_retry_backoff_ms", c_int64),
        ("username", c_char_p),
        ("password", c_char_p),
        ("client_name", c_char_p),
        ("db", c_int32),
        ("protocol", c_int32),
        ("read_timeout_ms", c_int64),
        ("write_timeout_ms", c_int64),
        ("reaper_interval_ms", c_int64),
        ("ping_after_idle_ms", c_int64),
        ("leak_detection_threshold_ms", c_int64),
        ("health_check_bypass_ms", c_int64),
        ("overtake_window_ms", c_int64),
        ("max_reply_bytes", c_int64),
        ("max_reply_elements", c_int64),
        ("dialer_userdata_free", c_void_p),
        ("tls", c_bool),
        ("tls_ca_file", c_char_p),
        ("tls_ca_dir", c_char_p),
        ("tls_cert_file", c_char_p),
        ("tls_key_file", c_char_p),
        ("tls_server_name", c_char_p),
        ("tls_min_version", c_int32),
        ("tls_insecure_skip_verify", c_bool),
    ]


class PoolClusterOptions(Structure):
    """pool_cluster_options_t; always filled by
    init_struct(pool_cluster_options_init_size) first."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("seeds", POINTER(c_char_p)),
        ("seeds_len", c_size_t),
        ("node", POINTER(PoolOptions)),
        ("max_redirects", c_int32),
        ("refresh_min_interval_ms", c_int64),
    ]


class PoolClusterInfo(Structure):
    """pool_cluster_info_t"""

    _fields_ = [
        ("struct_size", c_size_t),
        ("refreshes", c_uint64),
        ("refresh_errors", c_uint64),
        ("moved", c_uint64),
        ("ask", c_uint64),
        ("retries", c_uint64),
        ("nodes", c_uint32),
        ("masters", c_uint32),
        ("slots_covered", c_uint32),
        ("reserved", c_uint32),
    ]


class PoolSentinelOptions(Structure):
    """pool_sentinel_options_t; always filled by init_struct(pool_sentinel_options_init_size)
    first."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("master_name", c_char_p),
        ("sentinel_addrs", POINTER(c_char_p)),
        ("sentinel_addrs_len", c_size_t),
        ("sentinel_username", c_char_p),
        ("sentinel_password", c_char_p),
        ("poll_interval_ms", c_int64),
        ("sentinel_tls", c_bool),
    ]


class PoolSentinelStats(Structure):
    """pool_sentinel_stats_t"""

    _fields_ = [
        ("struct_size", c_size_t),
        ("failovers", c_uint64),
        ("failover_waits", c_uint64),
        ("switches", c_uint64),
        ("conns_retired", c_uint64),
        ("longest_pause_ms", c_uint64),
        ("in_failover", c_uint64),
    ]


# Opaque handles (pool_t *, pool_conn_t *, pool_cancel_t *, pool_cluster_t *) are c_void_p.
_HANDLE_OUT = POINTER(c_void_p)

# name -> (restype, argtypes), in the header's order of arguments.
PROTOTYPES = {
    "pool_version": (c_char_p, []),
    "pool_status_str": (c_char_p, [c_int32]),
    "pool_cancel_new": (c_void_p, []),
    "pool_cancel_fire": (None, [c_void_p]),
    "pool_cancel_free": (None, [c_void_p]),
    "pool_options_init_size": (c_int32, [POINTER(PoolOptions), c_size_t]),
    "pool_new": (c_int32, [POINTER(PoolOptions), _HANDLE_OUT, POINTER(PoolError)]),
    "pool_new_url": (c_int32, [c_char_p, _HANDLE_OUT, POINTER(PoolError)]),
    "pool_get": (c_int32, [c_void_p, _HANDLE_OUT, POINTER(PoolError)]),
    "pool_get_ex": (
        c_int32,
        [c_void_p, c_int64, c_void_p, _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_try_get": (c_int32, [c_void_p, _HANDLE_OUT]),
    "pool_put": (c_int32, [c_void_p, c_void_p]),
    "pool_remove": (c_int32, [c_void_p, c_void_p, c_char_p]),
    "pool_len": (c_int32, [c_void_p]),
    "pool_idle_len": (c_int32, [c_void_p]),
    "pool_stats": (c_int32, [c_void_p, POINTER(PoolStats)]),
    "pool_close": (c_int32, [c_void_p]),
    "pool_free": (None, [c_void_p]),
    "pool_notify_fd": (c_int32, [c_void_p]),
    "pool_leaks": (
        c_int32,
        [c_void_p, POINTER(PoolLeak), c_size_t, POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_conn_fd": (c_int, [c_void_p]),
    "pool_conn_id": (c_uint64, [c_void_p]),
    "pool_conn_start": (
        c_int32,
        [
            c_void_p,
            c_int,
            POINTER(c_char_p),
            POINTER(c_size_t),
            c_int64,
            POINTER(c_int),
            POINTER(PoolError),
        ],
    ),
    "pool_conn_finish": (
        c_int32,
        [c_void_p, POINTER(POINTER(PoolReply)), POINTER(c_int), POINTER(PoolError)],
    ),
    "pool_conn_wait_ms": (c_int64, [c_void_p]),
    "pool_conn_command": (
        c_int32,
        [
            c_void_p,
            c_int,
            POINTER(c_char_p),
            POINTER(c_size_t),
            POINTER(POINTER(PoolReply)),
            POINTER(PoolError),
        ],
    ),
    "pool_reply_free": (None, [POINTER(PoolReply)]),
    "pool_conn_pipeline": (
        c_int32,
        [
            c_void_p,
            c_size_t,
            POINTER(c_int),
            POINTER(POINTER(c_char_p)),
            POINTER(POINTER(c_size_t)),
            c_int64,
            POINTER(POINTER(PoolReply)),
            POINTER(c_size_t),
            POINTER(PoolError),
        ],
    ),
    "pool_subscriber_new": (c_int32, [c_void_p, _HANDLE_OUT, POINTER(PoolError)]),
    "pool_subscriber_subscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_psubscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_ssubscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_unsubscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_punsubscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_sunsubscribe": (
        c_int32,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(PoolError)],
    ),
    "pool_subscriber_receive": (
        c_int32,
        [c_void_p, c_int64, POINTER(POINTER(PoolMessage)), POINTER(PoolError)],
    ),
    "pool_message_free": (None, [POINTER(PoolMessage)]),
    "pool_subscriber_ping": (c_int32, [c_void_p, c_int64, POINTER(PoolError)]),
    "pool_subscriber_ping_start": (c_int32, [c_void_p, c_int64, POINTER(PoolError)]),
    "pool_subscriber_ping_finish": (c_int32, [c_void_p, POINTER(PoolError)]),
    "pool_subscriber_ping_cancel": (c_int32, [c_void_p, POINTER(PoolError)]),
    "pool_subscriber_fd": (c_int, [c_void_p]),
    "pool_subscriber_resubscribes": (c_uint64, [c_void_p]),
    "pool_subscriber_free": (None, [c_void_p]),
    "pool_cluster_options_init_size": (c_int32, [POINTER(PoolClusterOptions), c_size_t]),
    "pool_cluster_new": (
        c_int32,
        [POINTER(PoolClusterOptions), _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_cluster_new_url": (c_int32, [c_char_p, _HANDLE_OUT, POINTER(PoolError)]),
    "pool_cluster_key_slot": (c_int32, [c_char_p, c_size_t]),
    "pool_cluster_get": (
        c_int32,
        [c_void_p, c_char_p, c_size_t, c_int64, c_void_p, _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_cluster_get_slot": (
        c_int32,
        [c_void_p, c_int32, c_int64, c_void_p, _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_cluster_get_node": (
        c_int32,
        [c_void_p, c_char_p, c_int64, c_void_p, _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_cluster_put": (c_int32, [c_void_p, c_void_p]),
    "pool_cluster_remove": (c_int32, [c_void_p, c_void_p, c_char_p]),
    "pool_cluster_conn_node": (c_int32, [c_void_p, c_void_p, c_size_t]),
    "pool_cluster_stats": (c_int32, [c_void_p, c_char_p, POINTER(PoolStats)]),
    "pool_cluster_info": (c_int32, [c_void_p, POINTER(PoolClusterInfo)]),
    "pool_cluster_close": (c_int32, [c_void_p]),
    "pool_cluster_free": (None, [c_void_p]),
    "pool_sentinel_options_init_size": (c_int32, [POINTER(PoolSentinelOptions), c_size_t]),
    "pool_sentinel_new": (
        c_int32,
        [POINTER(PoolSentinelOptions), POINTER(PoolOptions), _HANDLE_OUT, POINTER(PoolError)],
    ),
    "pool_sentinel_master_addr": (c_int32, [c_void_p, c_void_p, c_size_t, POINTER(PoolError)]),
    "pool_sentinel_stats": (c_int32, [c_void_p, POINTER(PoolSentinelStats), POINTER(PoolError)]),
    "pool_conn_wait_replicas": (
        c_int32,
        [c_void_p, c_int, c_int64, POINTER(c_int), POINTER(PoolError)],
    ),
    "pool_cluster_slot_node": (c_int32, [c_void_p, c_int32, c_void_p, c_size_t]),
}

# Buffer sizes from the header (checked by the tests).
POOL_CLUSTER_ADDR_MAX = 264
POOL_SENTINEL_ADDR_LEN = 272


def init_struct(init_size, struct) -> None:
    """Fills ``struct`` with the library's defaults through its sized initialiser
    (pool_options_init_size, ...), as the header's pool_options_init macros do: the
    library writes only ctypes.sizeof(struct) bytes, so a library newer than these
    tables (a longer struct) never writes past the binding's struct."""
    ptr = ctypes.cast(ctypes.addressof(struct), init_size.argtypes[0])
    status = init_size(ptr, ctypes.sizeof(struct))
    if status != POOL_OK:
        raise OSError(f"{init_size.__name__}: status {status} for {type(struct).__name__}")


def _in_tree_candidates() -> list[Path]:
    """libredispool.so in the cargo target dir of the checkout this file sits in
    (bindings/python/redispool/_native.py -> the repository root), release first."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "Cargo.toml").is_file():
        return []
    target = Path(os.environ.get("CARGO_TARGET_DIR") or root / "target")
    return [target / profile / "libredispool.so" for profile in ("release", "debug")]


def find_library() -> str:
    """Where the library is loaded from, in order: $REDISPOOL_LIB (a path); the
    SONAME libredispool.so.0 on the dynamic loader's default path (an installed
    library); libredispool.so in the checkout's target/release or target/debug
    (running from a source tree after cargo build)."""
    explicit = os.environ.get("REDISPOOL_LIB")
    if explicit:
        return explicit
    tried = []
    try:
        ctypes.CDLL(SONAME)
        return SONAME
    except OSError as e:
        tried.append(f"{SONAME}: {e}")
    for path in _in_tree_candidates():
        if path.is_file():
            return str(path)
        tried.append(f"{path}: not found")
    raise OSError(
        "cannot find libredispool: set REDISPOOL_LIB to its path, install it "
        "(scripts/install.sh, then ldconfig or LD_LIBRARY_PATH), or build it in "
        "this checkout (cargo build --release). Tried: " + "; ".join(tried)
    )


def load(path: str | None = None) -> ctypes.CDLL:
    lib = ctypes.CDLL(path or find_library())
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = load()
