"""The binding against a real redis-server (conftest.py starts one)."""

from __future__ import annotations

import gc
import socket
import threading
import time
import warnings

import pytest

import redispool


def test_execute_returns_python_values(pool):
    with pool.get() as conn:
        assert conn.execute("PING") == b"PONG"
        assert conn.execute("SET", "py:k", "v") == b"OK"
        assert conn.execute("GET", "py:k") == b"v"
        assert conn.execute("GET", "py:missing") is None
        conn.execute("DEL", "py:n")
        assert conn.execute("INCRBY", "py:n", 41) == 41
        assert conn.execute("INCRBYFLOAT", "py:f", 1.5) == b"1.5"
        assert conn.execute("MGET", "py:k", "py:missing") == [b"v", None]
        assert conn.execute("SET", b"py:bin", bytearray(b"a\x00b\r\n")) == b"OK"
        assert conn.execute("GET", memoryview(b"py:bin")) == b"a\x00b\r\n"
        assert conn.execute("SET", "py:ü", "ü") == b"OK"
        assert conn.execute("GET", "py:ü") == "ü".encode()


def test_arguments_of_other_types_are_refused(pool):
    with pool.get() as conn:
        for bad in (True, None, object(), ["a"]):
            with pytest.raises(TypeError):
                conn.execute("SET", "py:k", bad)
        with pytest.raises(ValueError):
            conn.execute()
        assert conn.execute("PING") == b"PONG"  # nothing was sent


def test_error_replies_raise_reply_error_and_keep_the_conn(pool):
    with pool.get() as conn:
        conn.execute("DEL", "py:list")
        conn.execute("SET", "py:str", "x")
        with pytest.raises(redispool.ReplyError) as info:
            conn.execute("LPUSH", "py:str", "a")
        assert info.value.prefix == "WRONGTYPE" and info.value.code is None
        assert isinstance(info.value, redispool.RedisPoolError)
        # Nested in EXEC's array: a value, not raised.
        assert conn.execute("MULTI") == b"OK"
        assert conn.execute("INCR", "py:str") == b"QUEUED"
        assert conn.execute("LPUSH", "py:list", "a") == b"QUEUED"
        result = conn.execute("EXEC")
        assert isinstance(result[0], redispool.ReplyError) and result[1] == 1
        assert conn.execute("PING") == b"PONG"


def test_decode_responses_and_resp3_types(redis_server):
    pool = redispool.Pool.from_url(redis_server.url + "?protocol=3", decode_responses=True)
    try:
        with pool.get() as conn:
            conn.execute("DEL", "py:h", "py:s")
            conn.execute("HSET", "py:h", "a", "1", "b", "2")
            assert conn.execute("HGETALL", "py:h") == {"a": "1", "b": "2"}
            conn.execute("SADD", "py:s", "x", "y")
            assert conn.execute("SMEMBERS", "py:s") == {"x", "y"}
            assert conn.execute("GET", "py:h:missing") is None
            assert conn.execute("PING") == "PONG"
            assert conn.execute("EVAL", "return {double=1.5}", 0) == 1.5
            assert conn.execute("EVAL", "redis.setresp(3); return true", 0) is True
    finally:
        pool.close()


def test_with_puts_on_exit_and_removes_after_an_exception(pool):
    with pool.get() as conn:
        first = conn.id
    with pool.get() as conn:
        assert conn.id == first, "the idle conn is reused"
    before = pool.stats()
    with pytest.raises(KeyError):
        with pool.get() as conn:
            assert conn.id == first
            raise KeyError("boom")
    after = pool.stats()
    assert after.removed_conns == before.removed_conns + 1
    assert after.in_use_conns == 0 and after.idle_conns == 0
    with pool.get() as conn:
        assert conn.id != first


def test_conn_after_put_and_double_put_are_refused(pool):
    conn = pool.get()
    conn.put()
    with pytest.raises(redispool.InvalidArgumentError):
        conn.execute("PING")
    with pytest.raises(redispool.InvalidArgumentError):
        pool.put(conn)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        conn.put()
    assert pool.stats().in_use_conns == 0


def test_pool_timeout_is_a_timeout_error(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1, pool_timeout_ms=5000)
    try:
        held = pool.get()
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            pool.get(timeout=0.2)
        elapsed = time.monotonic() - started
        assert isinstance(info.value, redispool.PoolTimeoutError)
        assert info.value.code == redispool.PoolTimeoutError.code
        assert "connection pool timeout" in str(info.value)
        assert 0.15 < elapsed < 3.0
        assert pool.stats().timeouts == 1
        held.put()
    finally:
        pool.close()


def test_closed_pool_raises_closed_error(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=2)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(redispool.ClosedError, match="closed"):
        pool.get()
    with pytest.raises(redispool.ClosedError):
        pool.try_get()


def test_dial_error_and_bad_options():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = redispool.Pool(f"127.0.0.1:{port}", dialer_retries=1, pool_timeout_ms=3000)
    try:
        with pytest.raises(ConnectionError) as info:
            pool.get()
        assert isinstance(info.value, redispool.DialError)
        assert str(port) in str(info.value)
    finally:
        pool.close()
    with pytest.raises(redispool.InvalidArgumentError, match="pool_size"):
        redispool.Pool("127.0.0.1:1", pool_size=-1)
    with pytest.raises(redispool.InvalidArgumentError, match="bogus"):
        redispool.Pool.from_url("redis://127.0.0.1:1?bogus=1")
    with pytest.raises(TypeError):
        redispool.Pool("127.0.0.1:1", pool_sise=3)


def test_handshake_error(redis_server):
    pool = redispool.Pool(redis_server.addr, password="wrong", dialer_retries=1)
    try:
        with pytest.raises(redispool.HandshakeError):
            pool.get()
    finally:
        pool.close()


def test_cancel_token_ends_a_wait(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1, pool_timeout_ms=-1)
    try:
        held = pool.get()
        token = redispool.Cancel()
        result = []

        def waiter():
            try:
                pool.get(cancel=token)
            except redispool.CanceledError as e:
                result.append(e)

        t = threading.Thread(target=waiter)
        t.start()
        deadline = time.monotonic() + 5
        while pool.stats().waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert pool.stats().waiting == 1
        token.fire()
        t.join(5)
        assert not t.is_alive() and len(result) == 1
        held.put()
    finally:
        pool.close()


def test_waiting_get_releases_the_gil(redis_server):
    """A thread blocked in pool_get must let this thread run: if the call held
    the GIL, the put below could not happen before the get's 5 s timeout."""
    pool = redispool.Pool(redis_server.addr, pool_size=1)
    try:
        held = pool.get()
        got = []
        t = threading.Thread(target=lambda: got.append(pool.get(timeout=5)))
        started = time.monotonic()
        t.start()
        deadline = time.monotonic() + 4
        while pool.stats().waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        held.put()
        t.join(10)
        assert len(got) == 1 and time.monotonic() - started < 4
        got[0].put()
    finally:
        pool.close()


def test_blocking_command_releases_the_gil(pool):
    with pool.get() as conn:
        conn.execute("DEL", "py:queue")
    popped = []

    def pop():
        with pool.get() as conn:
            popped.append(conn.execute("BLPOP", "py:queue", 4))

    t = threading.Thread(target=pop)
    started = time.monotonic()
    t.start()
    with pool.get() as conn:
        # Push only once the BLPOP waits in the server: the pop cannot have run yet.
        deadline = time.monotonic() + 3
        while b"blocked_clients:1" not in conn.execute("INFO", "clients"):
            assert time.monotonic() < deadline, "BLPOP never reached the server"
            time.sleep(0.005)
        conn.execute("LPUSH", "py:queue", "item")
    t.join(10)
    assert popped and popped[0] == [b"py:queue", b"item"]
    assert time.monotonic() - started < 3.5


def test_threads_share_one_pool(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=3, pool_timeout_ms=10000)
    try:
        with pool.get() as conn:
            conn.execute("DEL", "py:counter")
        errors = []

        def work():
            try:
                for _ in range(200):
                    with pool.get() as conn:
                        conn.execute("INCR", "py:counter")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        with pool.get() as conn:
            assert conn.execute("GET", "py:counter") == b"1600"
        stats = pool.stats()
        assert stats.total_conns <= 3 and stats.in_use_conns == 0
        assert stats.hits + stats.misses >= 1601
    finally:
        pool.close()


def test_stats_has_every_field(pool):
    with pool.get():
        s = pool.stats()
        assert s.in_use_conns == 1 and s.total_conns == 1 and s.misses == 1
    assert pool.stats().idle_conns == 1
    assert pool.len() == 1 and pool.idle_len() == 1


def test_try_get(pool):
    assert pool.try_get() is None  # empty pool: starts a dial in the background
    deadline = time.monotonic() + 5
    conn = None
    while conn is None and time.monotonic() < deadline:
        conn = pool.try_get()
        time.sleep(0.005)
    assert conn is not None
    conn.put()


def test_a_conn_never_given_back_is_removed_with_a_warning(pool):
    conn = pool.get()
    assert pool.stats().in_use_conns == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del conn
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert pool.stats().in_use_conns == 0


def test_io_failure_makes_the_conn_bad_and_put_closes_it(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=2, read_timeout_ms=200)
    try:
        conn = pool.get()
        with pytest.raises(OSError) as info:  # ConnIOError is an OSError
            conn.execute("BLPOP", "py:never", 2)
        assert isinstance(info.value, redispool.ConnIOError)
        with pytest.raises(redispool.BadConnError):
            conn.execute("PING")
        first = conn.id
        conn.put()
        stats = pool.stats()
        assert stats.idle_conns == 0 and stats.total_conns == 0
        with pool.get() as fresh:
            assert fresh.id != first and fresh.execute("PING") == b"PONG"
    finally:
        pool.close()


def test_reply_past_max_reply_bytes_is_a_protocol_error(redis_server):
    pool = redispool.Pool(redis_server.addr, max_reply_bytes=64)
    try:
        conn = pool.get()
        conn.execute("SET", "py:big", "x" * 1000)
        with pytest.raises(redispool.ProtocolError):
            conn.execute("GET", "py:big")
        with pytest.raises(redispool.BadConnError):
            conn.execute("PING")
        conn.put()
        assert pool.stats().total_conns == 0
    finally:
        pool.close()


def test_max_active_conns_gives_pool_exhausted(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=4, max_active_conns=1)
    try:
        with pool.get():
            with pytest.raises(redispool.PoolExhaustedError, match="exhausted"):
                pool.get(timeout=1)
    finally:
        pool.close()


def test_pool_works_in_a_forked_child(pool):
    import os

    with pool.get() as conn:
        conn.execute("SET", "py:fork", "parent")
    pid = os.fork()
    if pid == 0:  # the child: the pool forgets the parent's conns and dials its own
        code = 1
        try:
            with pool.get(timeout=5) as conn:
                if conn.execute("GET", "py:fork") == b"parent":
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    with pool.get() as conn:  # the parent's conn is untouched
        assert conn.execute("GET", "py:fork") == b"parent"
