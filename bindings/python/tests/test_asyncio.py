"""Pool.aget: pool_try_get plus the notify fd on the event loop, never blocking it."""

from __future__ import annotations

import asyncio
import time

import pytest

import redispool


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_many_agets_on_a_small_pool_all_served_and_the_loop_never_blocks(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=2, pool_timeout_ms=10000)

    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        async def request(i):
            conn = await pool.aget()
            try:
                assert await conn.aexecute("INCR", "py:async") >= 1
                await asyncio.sleep(0.002)  # hold it, so others must wait
            finally:
                conn.put()

        tick_task = asyncio.create_task(ticker())
        with pool.get() as conn:
            conn.execute("DEL", "py:async")
        await asyncio.gather(*(request(i) for i in range(50)))
        stop = True
        await tick_task
        return ticks

    try:
        ticks = run(main())
        assert ticks > 10, "the ticker ran while requests waited"
        with pool.get() as conn:
            assert conn.execute("GET", "py:async") == b"50"
        stats = pool.stats()
        assert stats.total_conns <= 2 and stats.in_use_conns == 0
    finally:
        pool.close()


def test_aget_from_an_empty_pool_waits_for_the_background_dial(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1)

    async def main():
        conn = await pool.aget(timeout=5)
        conn.put()

    try:
        run(main())
        assert pool.stats().dials == 1
    finally:
        pool.close()


def test_aget_timeout_is_a_pool_timeout_error(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1)

    async def main():
        held = await pool.aget(timeout=5)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await pool.aget(timeout=0.2)
        assert isinstance(info.value, redispool.PoolTimeoutError)
        assert "connection pool timeout" in str(info.value)
        assert 0.15 < time.monotonic() - started < 3
        assert not pool._loops, "the timed-out waiter stopped watching the fd"
        held.put()
        again = await pool.aget(timeout=5)  # the timed-out waiter left nothing behind
        again.put()

    try:
        run(main())
        assert pool.stats().in_use_conns == 0
    finally:
        pool.close()


def test_cancelled_aget_leaves_no_conn_behind(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1)

    async def main():
        held = await pool.aget(timeout=5)
        waiter = asyncio.create_task(pool.aget(timeout=10))
        await asyncio.sleep(0.05)
        held.put()  # hands the conn towards the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        conn = await pool.aget(timeout=5)
        conn.put()

    try:
        run(main())
        assert pool.stats().in_use_conns == 0
    finally:
        pool.close()


def test_close_wakes_agets_with_closed_error(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1)

    async def main():
        held = await pool.aget(timeout=5)
        waiters = [asyncio.create_task(pool.aget(timeout=10)) for _ in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        pool.close()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, redispool.ClosedError) for r in results), results
        assert time.monotonic() - started < 2
        held.put()

    run(main())


def test_aexecute_waits_on_the_loop_not_on_threads(redis_server):
    """50 commands that each take 200 ms run at once on the loop: no worker
    thread (asyncio.to_thread would start some), the loop keeps ticking, and
    they take about 200 ms together, not 50 x 200 ms."""
    import threading

    pool = redispool.Pool(redis_server.addr, pool_size=50, pool_timeout_ms=10000)

    async def main():
        conns = [await pool.aget(timeout=5) for _ in range(50)]
        threads_before = threading.active_count()
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        # BLPOP on an empty list answers nil after 200 ms.
        replies = await asyncio.gather(
            *(c.aexecute("BLPOP", "py:nb:empty", "0.2") for c in conns)
        )
        took = time.monotonic() - started
        threads_during = threading.active_count()
        stop = True
        await tick_task
        big = "x" * (4 << 20)
        # A command larger than the socket buffers: written as the loop allows.
        await conns[0].aexecute("SET", "py:nb:big", big)
        assert await conns[0].aexecute("STRLEN", "py:nb:big") == len(big)
        for c in conns:
            c.put()
        return replies, took, ticks, threads_before, threads_during

    try:
        replies, took, ticks, before, during = run(main())
        assert replies == [None] * 50
        assert during == before, f"threads went from {before} to {during}"
        assert ticks > 20, "the loop was blocked"
        assert took < 5, f"50 concurrent 200 ms commands took {took:.1f} s"
    finally:
        pool.close()


def test_aexecute_deadline_is_a_conn_io_error_and_the_conn_is_bad(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=1, read_timeout_ms=200)

    async def main():
        conn = await pool.aget(timeout=5)
        with pytest.raises(redispool.ConnIOError) as info:
            await conn.aexecute("BLPOP", "py:nb:empty", "5")
        assert "timeout" in str(info.value)
        with pytest.raises(redispool.BadConnError):
            await conn.aexecute("PING")
        conn.put()
        conn = await pool.aget(timeout=5)
        assert await conn.aexecute("PING") == b"PONG"
        conn.put()

    try:
        run(main())
    finally:
        pool.close()


class _Ticker:
    """A task counting how often the loop ran it: a call that blocks the loop
    stops the count."""

    def __init__(self):
        self.ticks = 0
        self._stop = False
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        while not self._stop:
            self.ticks += 1
            await asyncio.sleep(0.001)

    async def stop(self):
        self._stop = True
        await self._task
        return self.ticks


def test_subscriber_aget_message_waits_on_the_loop(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=2)

    async def main():
        with pool.subscriber() as sub:
            sub.subscribe("py:asub")
            first = await sub.aget_message(timeout=5)
            assert first["type"] == "subscribe" and first["channel"] == b"py:asub"

            ticker = _Ticker()
            started = time.monotonic()
            assert await sub.aget_message(timeout=0.3) is None
            waited = time.monotonic() - started
            ticks = await ticker.stop()
            assert 0.25 <= waited < 10, waited
            assert ticks >= 10, f"the loop ran {ticks} times in a 0.3 s wait: it was blocked"

            async def publish_later():
                await asyncio.sleep(0.05)
                with pool.get() as conn:
                    conn.execute("PUBLISH", "py:asub", "hello")

            publisher = asyncio.create_task(publish_later())
            msg = await sub.aget_message(timeout=10)
            await publisher
            assert msg["type"] == "message" and msg["data"] == b"hello"
            assert await sub.aget_message(timeout=0) is None

    try:
        run(main())
    finally:
        pool.close()


def test_subscriber_aping_waits_on_the_loop_and_can_be_cancelled(redis_server):
    pool = redispool.Pool(redis_server.addr, pool_size=2)

    def pause(ms):
        with pool.get() as conn:
            conn.execute("CLIENT", "PAUSE", str(ms), "ALL")

    async def main():
        with pool.subscriber() as sub:
            sub.subscribe("py:aping")
            assert (await sub.aget_message(timeout=5))["type"] == "subscribe"

            # The PONG is held back while the server is paused: the loop runs on.
            pause(300)
            ticker = _Ticker()
            await sub.aping(timeout=10)
            ticks = await ticker.stop()
            assert ticks >= 10, f"the loop ran {ticks} times while the PONG was held: it was blocked"

            # Cancelled mid-wait: the ping is given up, the subscriber stays good.
            pause(300)
            task = asyncio.create_task(sub.aping(timeout=10))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await sub.aping(timeout=10)

            # No answer within the timeout: the conn is lost, and replaced on the next receive.
            pause(600)
            with pytest.raises(redispool.ConnIOError):
                await sub.aping(timeout=0.1)
            msg = await sub.aget_message(timeout=10)
            assert msg["type"] == "resubscribed", msg
            assert sub.resubscribes == 1
            with pool.get() as conn:
                conn.execute("PUBLISH", "py:aping", "after")
            while True:
                msg = await sub.aget_message(timeout=10)
                assert msg is not None
                if msg["type"] == "message":
                    break
            assert msg["data"] == b"after"

    try:
        run(main())
    finally:
        with pool.get() as conn:
            conn.execute("CLIENT", "UNPAUSE")
        pool.close()
