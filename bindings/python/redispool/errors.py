"""The exceptions: one class per C status code, under RedisPoolError.

``ERRORS_BY_CODE`` maps every ``POOL_ERR_*`` value to its class; tests/test_header.py
checks that it covers every code the header defines.
"""

from __future__ import annotations

from . import _native


class RedisPoolError(Exception):
    """Base class of every error this package raises. ``code`` is the C status
    (a ``POOL_ERR_*`` value), or None for a ReplyError; ``message`` is the
    library's text (e.g. "redis: connection pool timeout after 200ms (...)")."""

    code: int | None = None

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ClosedError(RedisPoolError):
    """POOL_ERR_CLOSED: the pool was closed ("redis: client is closed")."""

    code = _native.STATUS_CODES["POOL_ERR_CLOSED"]


class PoolExhaustedError(RedisPoolError):
    """POOL_ERR_EXHAUSTED: max_active_conns reached ("redis: connection pool exhausted")."""

    code = _native.STATUS_CODES["POOL_ERR_EXHAUSTED"]


class PoolTimeoutError(RedisPoolError, TimeoutError):
    """POOL_ERR_TIMEOUT: no conn within the timeout ("redis: connection pool timeout ...").
    Also a builtin TimeoutError, so ``except TimeoutError`` catches it."""

    code = _native.STATUS_CODES["POOL_ERR_TIMEOUT"]


class DialError(RedisPoolError, ConnectionError):
    """POOL_ERR_DIAL: dialing failed; the message names the address and the OS error.
    Also a builtin ConnectionError."""

    code = _native.STATUS_CODES["POOL_ERR_DIAL"]


class InvalidArgumentError(RedisPoolError, ValueError):
    """POOL_ERR_INVALID_ARG: a bad URL or option, a conn used after it was given
    back, a double put. Also a ValueError."""

    code = _native.STATUS_CODES["POOL_ERR_INVALID_ARG"]


class WouldBlockError(RedisPoolError):
    """POOL_ERR_WOULD_BLOCK: no idle conn for try_get (which returns None instead)."""

    code = _native.STATUS_CODES["POOL_ERR_WOULD_BLOCK"]


class CanceledError(RedisPoolError):
    """POOL_ERR_CANCELED: the Cancel token passed to get fired."""

    code = _native.STATUS_CODES["POOL_ERR_CANCELED"]


class BadConnError(RedisPoolError):
    """POOL_ERR_BAD_CONN: the conn is bad (an earlier command on it failed, or a
    sticky pool's conn was removed)."""

    code = _native.STATUS_CODES["POOL_ERR_BAD_CONN"]


class HandshakeError(RedisPoolError):
    """POOL_ERR_HANDSHAKE: Redis refused AUTH / SELECT / HELLO / CLIENT SETNAME."""

    code = _native.STATUS_CODES["POOL_ERR_HANDSHAKE"]


class ConnIOError(RedisPoolError, OSError):
    """POOL_ERR_IO: a command failed mid-way (timeout, EOF, OS error); the conn is
    bad and goes away when given back. Also an OSError."""

    code = _native.STATUS_CODES["POOL_ERR_IO"]


class ProtocolError(RedisPoolError):
    """POOL_ERR_PROTOCOL: malformed RESP, or a reply past max_reply_bytes /
    max_reply_elements; the conn is bad."""

    code = _native.STATUS_CODES["POOL_ERR_PROTOCOL"]


class InternalError(RedisPoolError):
    """POOL_ERR_INTERNAL: a bug inside the library; the pool involved is closed."""

    code = _native.STATUS_CODES["POOL_ERR_INTERNAL"]


class ClusterError(RedisPoolError):
    """POOL_ERR_CLUSTER: a Redis Cluster cannot serve the request."""

    code = _native.STATUS_CODES["POOL_ERR_CLUSTER"]


class TLSError(RedisPoolError):
    """POOL_ERR_TLS: the TLS handshake of a new conn failed (the server's
    certificate refused: unknown CA, wrong host name, expired; the server refused
    ours; not a TLS port). The message names the reason."""

    code = _native.STATUS_CODES["POOL_ERR_TLS"]


class ReplyError(RedisPoolError):
    """A Redis error reply ("WRONGTYPE ...", "ERR ..."): the command went through
    and the conn stays good. ``execute`` raises it for a top-level error reply;
    inside an aggregate (EXEC's array) it is returned as a value. ``code`` is None."""

    @property
    def prefix(self) -> str:
        """The error's first word, e.g. "WRONGTYPE", "ERR", "NOSCRIPT"."""
        return self.message.split(" ", 1)[0]


ERRORS_BY_CODE: dict[int, type[RedisPoolError]] = {
    cls.code: cls
    for cls in (
        ClosedError,
        PoolExhaustedError,
        PoolTimeoutError,
        DialError,
        InvalidArgumentError,
        WouldBlockError,
        CanceledError,
        BadConnError,
        HandshakeError,
        ConnIOError,
        ProtocolError,
        InternalError,
        ClusterError,
        TLSError,
    )
}


def error_for(code: int, err: _native.PoolError | None = None) -> RedisPoolError:
    """The exception for C status ``code``, with the message of ``err`` when the
    call filled it, else the library's description of the status."""
    message = ""
    if err is not None and err.code == code:
        message = err.message.decode("utf-8", "replace")
    if not message:
        message = _native.lib.pool_status_str(code).decode("utf-8", "replace")
    return ERRORS_BY_CODE.get(code, RedisPoolError)(message, code)
