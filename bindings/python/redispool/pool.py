"""Pool, Conn and Cancel: the Python face of pool_t, pool_conn_t and pool_cancel_t."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import dataclasses
import math
import select
import threading
import warnings
from ctypes import (
    POINTER,
    byref,
    c_char_p,
    c_int,
    c_size_t,
    c_void_p,
    cast,
    create_string_buffer,
    sizeof,
)

from . import _native, _reply
from ._native_handle import NativeHandle
from .errors import InvalidArgumentError, PoolTimeoutError, ReplyError, error_for

lib = _native.lib

# Keyword options of Pool(): every field of pool_options_t a Python caller can set
# (the dial callback is C's business). tests/test_header.py checks it against the header.
OPTION_NAMES = tuple(
    name
    for name, _ in _native.PoolOptions._fields_
    if name not in ("struct_size", "addr", "dialer", "dialer_userdata")
)
_STRING_OPTIONS = {
    "username",
    "password",
    "client_name",
    "tls_ca_file",
    "tls_ca_dir",
    "tls_cert_file",
    "tls_key_file",
    "tls_server_name",
}

# The fields of pool_stats_t (struct_size aside), as a frozen dataclass.
Stats = dataclasses.make_dataclass(
    "Stats",
    [(name, int) for name, _ in _native.PoolStats._fields_ if name != "struct_size"],
    frozen=True,
)
Stats.__module__ = __name__
Stats.__doc__ = """A pool_stats_t snapshot: every field of the C struct (see the header for
their meanings), e.g. hits, misses, timeouts, total_conns, idle_conns, in_use_conns."""

# The fields of pool_sentinel_stats_t (struct_size aside), as a frozen dataclass.
SentinelStats = dataclasses.make_dataclass(
    "SentinelStats",
    [(name, int) for name, _ in _native.PoolSentinelStats._fields_ if name != "struct_size"],
    frozen=True,
)
SentinelStats.__module__ = __name__
SentinelStats.__doc__ = """A pool_sentinel_stats_t snapshot (Pool.sentinel_stats): failovers,
failover_waits, switches, conns_retired, longest_pause_ms, in_failover (1 while one is
under way)."""

# The library's pool_timeout_ms default, used by aget for a pool made from a URL.
_DEFAULT_POOL_TIMEOUT = 6.0


async def _ready(loop, fd: int, want: int, wait_ms: int) -> None:
    """Waits on the loop until fd is ready for want (POOL_WANT_READ or
    POOL_WANT_WRITE), or wait_ms passed (-1: no limit)."""
    fut = loop.create_future()

    def wake():
        if not fut.done():
            fut.set_result(None)

    writing = want == _native.POOL_WANT_WRITE
    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    timer = loop.call_later(wait_ms / 1000 + 0.001, wake) if wait_ms >= 0 else None
    try:
        await fut
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
        if timer is not None:
            timer.cancel()


def _readable_now(fd: int) -> bool:
    """Whether fd is readable right now (poll with timeout 0)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


def _timeout_ms(timeout: float | None) -> int:
    return -1 if timeout is None else _ms(timeout)


def _pool_options(addr: str | None, options: dict, who: str) -> _native.PoolOptions:
    """A pool_options_t: the library's defaults, then ``addr`` and ``options``."""
    opts = _native.PoolOptions()
    _native.init_struct(lib.pool_options_init_size, opts)
    if addr is not None:
        opts.addr = addr.encode()
    for name, value in options.items():
        if name not in OPTION_NAMES:
            raise TypeError(f"{who} got an unknown option {name!r}")
        if name in _STRING_OPTIONS and isinstance(value, str):
            value = value.encode()
        setattr(opts, name, value)
    return opts


def _init_codec(owner, decode_responses: bool, encoding: str, encoding_errors: str) -> None:
    owner._encoding = encoding
    owner._errors = encoding_errors
    owner._reply_encoding = encoding if decode_responses else None


class Cancel:
    """A cancellation token (pool_cancel_t): ``pool.get(cancel=token)`` returns
    CanceledError as soon as another thread calls ``token.fire()``."""

    def __init__(self):
        self._handle = lib.pool_cancel_new()
        if not self._handle:
            raise MemoryError("pool_cancel_new")

    def fire(self) -> None:
        """Wakes every get waiting with this token, and fails later ones. Any thread."""
        lib.pool_cancel_fire(self._handle)

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.pool_cancel_free(handle)


class Pool(NativeHandle):
    """A connection pool (pool_t), safe to share between threads.

    ``Pool("127.0.0.1:6379", pool_size=8, pool_timeout_ms=1000)`` takes the
    address and any field of pool_options_t by name (``OPTION_NAMES``; durations
    in milliseconds, as in C); ``Pool.from_url("redis://...")`` takes a go-redis
    URL. ``decode_responses=True`` makes replies str instead of bytes.
    """

    _native_put = staticmethod(lib.pool_put)
    _native_remove = staticmethod(lib.pool_remove)
    _native_close = staticmethod(lib.pool_close)

    def __init__(
        self,
        addr: str | None = None,
        *,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        **options,
    ):
        self._handle = None
        opts = _pool_options(addr, options, "Pool()")
        self._init_common(decode_responses, encoding, encoding_errors, opts)
        self._open(lib.pool_new, byref(opts))

    @classmethod
    def sentinel(
        cls,
        master_name: str,
        sentinel_addrs: list[str],
        *,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        poll_interval_ms: int | None = None,
        sentinel_tls: bool = False,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        **options,
    ) -> Pool:
        """A pool for the master Redis Sentinel reports for ``master_name``, which
        follows failovers (pool_sentinel_new). ``sentinel_addrs``: "host:port" of
        the sentinels; ``options``: pool_options_t fields for the master conns
        (no addr: the sentinels name the master)."""
        self = cls.__new__(cls)
        self._handle = None
        node = _pool_options(None, options, "Pool.sentinel()")
        self._init_common(decode_responses, encoding, encoding_errors, node)
        sopts = _native.PoolSentinelOptions()
        _native.init_struct(lib.pool_sentinel_options_init_size, sopts)
        sopts.master_name = master_name.encode()
        addrs = (c_char_p * len(sentinel_addrs))(*(a.encode() for a in sentinel_addrs))
        sopts.sentinel_addrs = addrs
        sopts.sentinel_addrs_len = len(sentinel_addrs)
        if sentinel_username is not None:
            sopts.sentinel_username = sentinel_username.encode()
        if sentinel_password is not None:
            sopts.sentinel_password = sentinel_password.encode()
        if poll_interval_ms is not None:
            sopts.poll_interval_ms = poll_interval_ms
        # TLS to the sentinels, with the tls_* options of the master conns.
        sopts.sentinel_tls = bool(sentinel_tls)
        self._open(lib.pool_sentinel_new, byref(sopts), byref(node))
        return self

    def sentinel_master_addr(self) -> str:
        """The master a sentinel pool dials now, "ip:port" (pool_sentinel_master_addr;
        may ask the sentinels, blocking at most dial_timeout_ms)."""
        buf = create_string_buffer(_native.POOL_SENTINEL_ADDR_LEN)
        err = _native.PoolError()
        status = lib.pool_sentinel_master_addr(
            self._handle, cast(buf, c_void_p), len(buf), byref(err)
        )
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return buf.value.decode()

    def sentinel_stats(self) -> SentinelStats:
        """A sentinel pool's failover figures (pool_sentinel_stats): failovers,
        failover_waits, switches, conns_retired, longest_pause_ms, in_failover.
        InvalidArgumentError for a pool that is not a sentinel one."""
        raw = _native.PoolSentinelStats()
        raw.struct_size = sizeof(raw)
        err = _native.PoolError()
        status = lib.pool_sentinel_stats(self._handle, byref(raw), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return SentinelStats(
            **{name: getattr(raw, name) for name in SentinelStats.__dataclass_fields__}
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
    ) -> Pool:
        """A pool from a go-redis URL: ``redis://[[user]:password@]host[:port][/db]
        [?pool_size=8&pool_timeout=1s&...]`` or ``unix:///path?db=N`` (pool_new_url)."""
        self = cls.__new__(cls)
        self._handle = None
        self._init_common(decode_responses, encoding, encoding_errors, None)
        self._open(lib.pool_new_url, url.encode())
        return self

    def _init_common(self, decode_responses, encoding, encoding_errors, opts):
        _init_codec(self, decode_responses, encoding, encoding_errors)
        if opts is None:
            self._aget_timeout = _DEFAULT_POOL_TIMEOUT
        elif opts.pool_timeout_ms < 0:
            self._aget_timeout = None
        elif opts.pool_timeout_ms == 0:  # no wait for a turn; a dial has dial_timeout_ms
            self._aget_timeout = opts.dial_timeout_ms / 1000 or None
        else:
            self._aget_timeout = opts.pool_timeout_ms / 1000
        self._loops_lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}

    # --- getting and giving back conns ---

    def get(self, timeout: float | None = None, cancel: Cancel | None = None) -> Conn:
        """A conn: an idle, health-checked one or a new one. Waits (GIL released)
        at most ``timeout`` seconds (None: the pool's pool_timeout_ms; 0: no wait
        for a turn) for a turn and a dial, then raises PoolTimeoutError. A
        ``cancel`` token fired on another thread ends the wait (CanceledError).
        Use as ``with pool.get() as conn:``, or give it back with put/remove."""
        out = c_void_p()
        err = _native.PoolError()
        if timeout is None and cancel is None:
            status = lib.pool_get(self._handle, byref(out), byref(err))
        else:
            ms = _timeout_ms(timeout)
            token = cancel._handle if cancel is not None else None
            status = lib.pool_get_ex(self._handle, ms, token, byref(out), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return Conn(self, out.value)

    def try_get(self) -> Conn | None:
        """An idle conn at once, or None; never waits or dials (pool_try_get).
        A miss may start a background dial; see aget."""
        out = c_void_p()
        status = lib.pool_try_get(self._handle, byref(out))
        if status == _native.POOL_OK:
            return Conn(self, out.value)
        if status == _native.POOL_ERR_WOULD_BLOCK:
            return None
        raise error_for(status)

    async def aget(self, timeout: float | None = ...) -> Conn:
        """The asyncio get: never blocks the event loop. Tries pool_try_get and,
        on a miss, waits for the pool's notify fd (loop.add_reader) until a conn
        comes back or a background dial lands. Waiters of one loop are served in
        arrival order. ``timeout`` in seconds (None: forever); by default the
        pool's pool_timeout_ms (6 s for a pool made from a URL). Raises
        PoolTimeoutError, ClosedError. Cancelling the task is safe: a conn it
        was about to receive goes back to the pool."""
        conn = self.try_get()
        if conn is not None:
            return conn
        if timeout is ...:
            timeout = self._aget_timeout
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        waiters = self._loop_waiters(loop)
        waiters.add(fut)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self._expire, fut, timeout)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                fut.result().put()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            waiters.discard(fut)  # timed out or cancelled: leave the queue now

    def _expire(self, fut: asyncio.Future, timeout: float) -> None:
        if fut.done():
            return
        s = self.stats()
        fut.set_exception(
            PoolTimeoutError(
                f"redis: connection pool timeout after {_ms(timeout)}ms in aget "
                f"({s.in_use_conns}/{s.total_conns} conns in use, {s.idle_conns} idle, "
                f"{s.dials_in_progress} dialing, {s.dial_errors} dial errors so far)"
            )
        )

    def _loop_waiters(self, loop) -> _LoopWaiters:
        with self._loops_lock:
            waiters = self._loops.get(loop)
            if waiters is None:
                waiters = self._loops[loop] = _LoopWaiters(self, loop)
            return waiters

    def _drop_loop_waiters(self, waiters: _LoopWaiters) -> None:
        with self._loops_lock:
            if self._loops.get(waiters.loop) is waiters:
                del self._loops[waiters.loop]

    # --- the pool itself ---

    def stats(self) -> Stats:
        """A snapshot of every pool_stats_t field."""
        raw = _native.PoolStats()
        raw.struct_size = sizeof(raw)
        status = lib.pool_stats(self._handle, byref(raw))
        if status != _native.POOL_OK:
            raise error_for(status)
        return Stats(**{name: getattr(raw, name) for name in Stats.__dataclass_fields__})

    def len(self) -> int:
        """Conns the pool owns: idle and checked out (pool_len)."""
        return lib.pool_len(self._handle)

    def idle_len(self) -> int:
        """Idle conns (pool_idle_len)."""
        return lib.pool_idle_len(self._handle)

    def notify_fd(self) -> int:
        """The pool's eventfd, readable while try_get may find a conn (pool_notify_fd).
        It belongs to the pool: never close it."""
        fd = lib.pool_notify_fd(self._handle)
        if fd < 0:
            raise OSError("pool_notify_fd failed")
        return fd

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.pool_free(handle)


class _LoopWaiters:
    """The agets of one event loop on one pool: a FIFO of futures and, while it is
    not empty, one reader on the notify fd (a loop allows one reader per fd).
    Runs on the loop's thread only, as event_loop.c's queue."""

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop):
        self.pool = pool
        self.loop = loop
        self.queue: collections.deque[asyncio.Future] = collections.deque()
        self.watching = False

    def add(self, fut: asyncio.Future) -> None:
        self.queue.append(fut)
        if not self.watching:
            # A put between the caller's try_get miss and this point left the fd
            # readable (level-triggered), so the reader fires at once: no lost wake-up.
            self.loop.add_reader(self.pool.notify_fd(), self.on_readable)
            self.watching = True

    def discard(self, fut: asyncio.Future) -> None:
        try:
            self.queue.remove(fut)
        except ValueError:  # served already
            return
        if not self.queue:
            self._stop()

    def _stop(self) -> None:
        if self.watching:
            self.loop.remove_reader(self.pool.notify_fd())
            self.watching = False
        self.pool._drop_loop_waiters(self)

    def on_readable(self) -> None:
        queue = self.queue
        while queue:
            if queue[0].done():  # timed out or cancelled
                queue.popleft()
                continue
            try:
                conn = self.pool.try_get()  # a miss re-arms the fd
            except Exception as e:  # closed: every waiter fails the same way
                while queue:
                    fut = queue.popleft()
                    if not fut.done():
                        fut.set_exception(e)
                break
            if conn is None:
                break
            queue.popleft().set_result(conn)
        if not queue:
            self._stop()


def _misuse(message: str) -> InvalidArgumentError:
    """What the library would say for a stale conn handle, without calling it."""
    return InvalidArgumentError(message, InvalidArgumentError.code)


def _encode_arg(arg, encoding: str, errors: str) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode(encoding, errors)
    if isinstance(arg, bool) or arg is None:  # as redis-py: ambiguous, refused
        raise TypeError(f"invalid argument {arg!r}: convert bool and None first")
    if isinstance(arg, int):
        return str(arg).encode()
    if isinstance(arg, float):
        return repr(arg).encode()
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    raise TypeError(
        f"invalid argument of type {type(arg).__name__}: use bytes, str, int or float"
    )


class Conn:
    """One checked-out connection (pool_conn_t), used by one thread at a time.

    As a context manager it goes back to its pool on exit: put after a normal
    exit, remove (closed, its turn freed) when an exception leaves the block,
    since the conn's session state is then unknown (a MULTI not EXECed, a WATCH,
    a SUBSCRIBE, a raw-fd request half done). Catch an expected ReplyError
    inside the block to keep the conn.
    """

    __slots__ = ("_pool", "_handle", "__weakref__")

    def __init__(self, pool, handle: int):
        self._pool = pool  # a Pool or a Cluster
        self._handle = handle

    def execute(self, *args):
        """Sends one command and returns its reply (pool_conn_command, GIL
        released): bytes (str with decode_responses), int, None, list, dict
        (RESP3 map), set (RESP3 set), float (RESP3 double), bool (RESP3 bool).
        Arguments: bytes, str (encoded), int, float. A Redis error reply raises
        ReplyError (the conn stays good); nested in an array (EXEC) it is returned
        as a ReplyError value. I/O and protocol failures raise ConnIOError /
        ProtocolError and make the conn bad (put then closes it)."""
        handle, n, argv, lens = self._command_args(args, "execute")
        reply = POINTER(_native.PoolReply)()
        err = _native.PoolError()
        status = lib.pool_conn_command(handle, n, argv, lens, byref(reply), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return self._take_reply(reply)

    def _command_args(self, args, what):
        """The conn's handle and one command's argc, argv and lengths (execute,
        aexecute)."""
        handle = self._handle
        if handle is None:
            raise _misuse("conn was already given back")
        n = len(args)
        if n == 0:
            raise ValueError(f"{what} needs a command")
        pool = self._pool
        bufs = [_encode_arg(a, pool._encoding, pool._errors) for a in args]
        argv = (c_char_p * n)(*bufs)
        lens = (c_size_t * n)(*map(len, bufs))
        return handle, n, argv, lens

    def _take_reply(self, reply):
        """Converts and frees a command's reply; a Redis error reply raises."""
        pool = self._pool
        try:
            value = _reply.convert(reply.contents, pool._reply_encoding, pool._errors)
        finally:
            lib.pool_reply_free(reply)
        if isinstance(value, ReplyError):
            raise value
        return value

    async def aexecute(self, *args):
        """execute for asyncio, never blocking the loop nor using a thread: the
        command is started with pool_conn_start, and the loop waits for the
        conn's socket (loop.add_reader / add_writer, as pool_conn_finish asks)
        until pool_conn_finish has the reply, at most until the command's
        deadline (the pool's read timeout). Replies and errors as execute's. A
        task cancelled mid-command leaves the conn mid-command: put then closes
        it (its reply is on the way), never pooling it."""
        handle, n, argv, lens = self._command_args(args, "aexecute")
        want = c_int(0)
        err = _native.PoolError()
        status = lib.pool_conn_start(handle, n, argv, lens, -1, byref(want), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        loop = asyncio.get_running_loop()
        fd = lib.pool_conn_fd(handle)
        reply = POINTER(_native.PoolReply)()
        while True:
            await _ready(loop, fd, want.value, lib.pool_conn_wait_ms(handle))
            status = lib.pool_conn_finish(handle, byref(reply), byref(want), byref(err))
            if status != _native.POOL_ERR_WOULD_BLOCK:
                break
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return self._take_reply(reply)

    def wait_replicas(self, numreplicas: int, timeout: float) -> int:
        """``WAIT numreplicas timeout`` (pool_conn_wait_replicas, GIL released):
        blocks until the writes sent on this conn so far reached at least
        ``numreplicas`` replicas, or ``timeout`` seconds (at least 1 ms) passed;
        returns how many replicas have them. Fewer in time raises PoolTimeoutError
        with ``acked`` set to that count (the writes stay applied on the master,
        but a failover may lose them); a server that refuses WAIT (a replica)
        raises ConnIOError and the conn stays good."""
        handle = self._handle
        if handle is None:
            raise _misuse("conn was already given back")
        acked = c_int(0)
        err = _native.PoolError()
        status = lib.pool_conn_wait_replicas(
            handle, numreplicas, _ms(timeout), byref(acked), byref(err)
        )
        if status != _native.POOL_OK:
            e = error_for(status, err)
            e.acked = acked.value
            raise e
        return acked.value

    @property
    def id(self) -> int:
        """Unique per pool, never reused (pool_conn_id); 0 once given back."""
        return lib.pool_conn_id(self._handle) if self._handle is not None else 0

    def fd(self) -> int:
        """The socket, for your own I/O (pool_conn_fd). Do not close it."""
        return lib.pool_conn_fd(self._handle) if self._handle is not None else -1

    def put(self) -> None:
        """Gives the conn back to its pool (pool_put)."""
        self._release(self._pool, None, False)

    def remove(self, reason: str | None = None) -> None:
        """Closes the conn and frees its turn (pool_remove)."""
        self._release(self._pool, reason, True)

    def _release(self, pool, reason: str | None, remove: bool) -> None:
        handle = self._handle
        if handle is None:
            raise _misuse("conn was already given back")
        if pool is not self._pool:
            raise _misuse("conn is not from this pool")
        status = pool._give_back(handle, reason.encode() if reason else None, remove)
        if status != _native.POOL_OK:
            raise error_for(status)
        self._handle = None

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._handle is None:  # given back inside the block
            return
        if exc_type is None:
            self.put()
        else:
            self.remove(f"{exc_type.__name__} raised while checked out")

    def __del__(self):
        if getattr(self, "_handle", None) is None:
            return
        try:
            warnings.warn(
                f"redispool conn {self.id} was never given back: removed",
                ResourceWarning,
                source=self,
            )
            self.remove("garbage collected while checked out")
        except Exception:  # interpreter shutdown
            pass


def _pipeline_call(conn, cmds, timeout_ms: int):
    """pool_conn_pipeline on conn's handle: the converted replies (a Redis error
    reply as a ReplyError value in its place)."""
    handle = conn._handle
    if handle is None:
        raise _misuse("conn was already given back")
    n = len(cmds)
    if n == 0:
        raise ValueError("a pipeline needs at least one command")
    pool = conn._pool
    enc, errs = pool._encoding, pool._errors
    argcs = (c_int * n)()
    argvs = (POINTER(c_char_p) * n)()
    lens = (POINTER(c_size_t) * n)()
    keep = []
    for i, cmd in enumerate(cmds):
        if len(cmd) == 0:
            raise ValueError(f"command {i} is empty")
        bufs = [_encode_arg(a, enc, errs) for a in cmd]
        argv = (c_char_p * len(bufs))(*bufs)
        ln = (c_size_t * len(bufs))(*map(len, bufs))
        keep.append((bufs, argv, ln))
        argcs[i] = len(bufs)
        argvs[i] = argv
        lens[i] = ln
    replies = (POINTER(_native.PoolReply) * n)()
    got = c_size_t(0)
    err = _native.PoolError()
    status = lib.pool_conn_pipeline(handle, n, argcs, argvs, lens, timeout_ms, replies,
                                    byref(got), byref(err))
    out = []
    try:
        for i in range(got.value):
            if replies[i]:
                out.append(_reply.convert(replies[i].contents, pool._reply_encoding, errs))
            else:
                out.append(None)
    finally:
        for i in range(n):
            if replies[i]:
                lib.pool_reply_free(replies[i])
    if status != _native.POOL_OK:
        raise error_for(status, err)
    return out


class TransactionAborted(Exception):
    """EXEC answered nil: a key WATCHed on the conn changed, and the transaction
    was not run (redis-py's WatchError). The conn stays good."""


def _conn_pipeline(self, *cmds, timeout: float | None = None):
    """Sends cmds (each a tuple of arguments) in one write and returns their
    replies in order (pool_conn_pipeline, GIL released). A Redis error reply is a
    ReplyError value in its place; the replies after it are read as usual. An I/O
    or protocol failure raises ConnIOError / ProtocolError and makes the conn bad.
    `timeout` bounds the reading of all the replies (None: the pool's read
    timeout; 0: none)."""
    return _pipeline_call(self, cmds, -1 if timeout is None else _ms(timeout))


def _conn_transaction(self, *cmds, timeout: float | None = None):
    """MULTI, cmds and EXEC in one write (go-redis's TxPipeline): EXEC's replies.
    EXEC's nil (a WATCHed key changed) raises TransactionAborted; an EXECABORT
    (a command refused while queued) raises its ReplyError."""
    replies = _pipeline_call(
        self, (("MULTI",), *cmds, ("EXEC",)), -1 if timeout is None else _ms(timeout)
    )
    execd = replies[-1]
    if execd is None:
        raise TransactionAborted("transaction aborted: a WATCHed key changed")
    if isinstance(execd, ReplyError):
        raise execd
    return execd


Conn.pipeline = _conn_pipeline
Conn.transaction = _conn_transaction

_KIND_NAMES = {v: k[len("POOL_MSG_"):].lower() for k, v in _native.MESSAGE_KINDS.items()}


def _message_bytes(msg, field: str, length: int):
    ptr = ctypes.c_void_p.from_buffer(msg, getattr(_native.PoolMessage, field).offset).value
    return None if not ptr else ctypes.string_at(ptr, length)


class Subscriber:
    """Pub/Sub on a conn of its own (pool_subscriber_t): made with the pool's
    dialer and set-up, outside the pool's turns, and resubscribed to everything
    when the conn is lost (a "resubscribed" message says so). One thread at a
    time. get_message returns dicts shaped like redis-py's: type ("message",
    "pmessage", "smessage", "subscribe", ..., "resubscribed"), channel, pattern,
    data (bytes, or str with decode_responses), count."""

    def __init__(self, pool: Pool):
        self._pool = pool
        handle = c_void_p()
        err = _native.PoolError()
        status = lib.pool_subscriber_new(pool._handle, byref(handle), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        self._handle = handle.value

    def _change(self, fn, names):
        if self._handle is None:
            raise _misuse("subscriber was closed")
        pool = self._pool
        bufs = [_encode_arg(n, pool._encoding, pool._errors) for n in names]
        n = len(bufs)
        argv = (c_char_p * max(n, 1))(*bufs)
        lens = (c_size_t * max(n, 1))(*map(len, bufs))
        err = _native.PoolError()
        status = fn(self._handle, n, argv if n else None, lens if n else None, byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)

    def subscribe(self, *channels):
        self._change(lib.pool_subscriber_subscribe, channels)

    def psubscribe(self, *patterns):
        self._change(lib.pool_subscriber_psubscribe, patterns)

    def ssubscribe(self, *channels):
        self._change(lib.pool_subscriber_ssubscribe, channels)

    def unsubscribe(self, *channels):
        """No channels: from all."""
        self._change(lib.pool_subscriber_unsubscribe, channels)

    def punsubscribe(self, *patterns):
        self._change(lib.pool_subscriber_punsubscribe, patterns)

    def sunsubscribe(self, *channels):
        self._change(lib.pool_subscriber_sunsubscribe, channels)

    def get_message(self, timeout: float | None = 0.0):
        """The next message or event, waiting at most `timeout` seconds (None: as
        long as it takes); None when none came. A lost conn is replaced on the way
        ("resubscribed" first); if it cannot be dialed, the error is raised and the
        next call tries again."""
        if self._handle is None:
            raise _misuse("subscriber was closed")
        msg = POINTER(_native.PoolMessage)()
        err = _native.PoolError()
        ms = -1 if timeout is None else _ms(timeout)
        status = lib.pool_subscriber_receive(self._handle, ms, byref(msg), byref(err))
        if status == _native.STATUS_CODES["POOL_ERR_TIMEOUT"]:
            return None
        if status != _native.POOL_OK:
            raise error_for(status, err)
        try:
            m = msg.contents
            dec = self._pool._reply_encoding

            def text(field, length):
                b = _message_bytes(m, field, length)
                if b is not None and dec is not None:
                    return b.decode(dec, self._pool._errors)
                return b

            return {
                "type": _KIND_NAMES.get(m.kind, str(m.kind)),
                "channel": text("channel", m.channel_len),
                "pattern": text("pattern", m.pattern_len),
                "data": text("payload", m.payload_len),
                "count": m.count,
            }
        finally:
            lib.pool_message_free(msg)

    def ping(self, timeout: float | None = None) -> None:
        """PINGs the subscriber's conns (pool_subscriber_ping)."""
        if self._handle is None:
            raise _misuse("subscriber was closed")
        err = _native.PoolError()
        status = lib.pool_subscriber_ping(self._handle, -1 if timeout is None else _ms(timeout),
                                          byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)

    async def aget_message(self, timeout: float | None = 0.0):
        """get_message for asyncio: waits on the event loop (a reader on
        fileno()), never in the library, so other tasks run meanwhile. Same
        results as get_message; None when nothing came within `timeout` seconds
        (None: as long as it takes). A lost conn is still dialed again inside
        the call, as get_message does. One task at a time per subscriber (the
        loop has one reader per fd), as one thread at a time for get_message."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            msg = self.get_message(0)  # takes what has arrived, never waits
            if msg is not None:
                return msg
            wait_ms = -1
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                wait_ms = _ms(left)
            # pool_subscriber_receive(0) found nothing: every socket was read to
            # EAGAIN, so the next message makes the fd readable.
            await _ready(loop, self.fileno(), _native.POOL_WANT_READ, wait_ms)

    async def aping(self, timeout: float | None = None) -> None:
        """ping for asyncio (pool_subscriber_ping_start, then
        pool_subscriber_ping_finish each time the fd is readable): the answers
        are waited for on the event loop. Messages that arrive meanwhile are
        kept for get_message/aget_message. A conn that does not answer within
        `timeout` seconds is treated as lost (IOError; the next receive
        resubscribes). Cancelling the task gives the ping up
        (pool_subscriber_ping_cancel); the subscriber stays usable. Not while
        another task of the subscriber waits in aget_message."""
        if self._handle is None:
            raise _misuse("subscriber was closed")
        loop = asyncio.get_running_loop()
        err = _native.PoolError()
        status = lib.pool_subscriber_ping_start(self._handle, _timeout_ms(timeout), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                status = lib.pool_subscriber_ping_finish(self._handle, byref(err))
                if status != _native.POOL_ERR_WOULD_BLOCK:
                    break
                # The library reports the deadline itself; wake for it too.
                wait_ms = -1 if deadline is None else _ms(max(0.0, deadline - loop.time()))
                if _readable_now(self.fileno()):
                    # Readable with answers still owed: a message is kept for
                    # get_message (a level-triggered wait would spin on it).
                    await asyncio.sleep(0.001)
                else:
                    await _ready(loop, self.fileno(), _native.POOL_WANT_READ, wait_ms)
        except BaseException:
            if self._handle is not None:
                lib.pool_subscriber_ping_cancel(self._handle, byref(_native.PoolError()))
            raise
        if status != _native.POOL_OK:
            raise error_for(status, err)

    def fileno(self) -> int:
        """An fd readable when get_message(0) has something (pool_subscriber_fd)."""
        return lib.pool_subscriber_fd(self._handle) if self._handle is not None else -1

    @property
    def resubscribes(self) -> int:
        return lib.pool_subscriber_resubscribes(self._handle) if self._handle is not None else 0

    def close(self) -> None:
        if self._handle is not None:
            lib.pool_subscriber_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _pool_subscriber(self) -> Subscriber:
    """A Subscriber on this pool (pool_subscriber_new)."""
    return Subscriber(self)


Pool.subscriber = _pool_subscriber
