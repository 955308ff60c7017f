"""Pipelines, transactions and the subscriber against a real redis-server."""

from __future__ import annotations

import pytest

import redispool


def test_pipeline_replies_in_order_with_error_in_place(pool):
    with pool.get() as conn:
        conn.execute("DEL", "py:pipe")
        r = conn.pipeline(("SET", "py:pipe", "1"), ("INCR", "py:pipe"),
                          ("LPUSH", "py:pipe", "x"), ("GET", "py:pipe"))
        assert r[0] == b"OK" and r[1] == 2 and r[3] == b"2"
        assert isinstance(r[2], redispool.ReplyError) and "WRONGTYPE" in str(r[2])
        with pytest.raises(ValueError):
            conn.pipeline()


def test_transaction_and_watch(pool):
    with pool.get() as conn:
        conn.execute("DEL", "py:tx")
        assert conn.transaction(("INCR", "py:tx"), ("INCR", "py:tx")) == [1, 2]
        conn.execute("WATCH", "py:tx")
        with pool.get() as other:
            other.execute("SET", "py:tx", "changed")
        with pytest.raises(redispool.TransactionAborted):
            conn.transaction(("INCR", "py:tx"))
        assert conn.execute("GET", "py:tx") == b"changed"


def _expect(sub, kind, timeout=5.0):
    m = sub.get_message(timeout=timeout)
    assert m is not None, f"no {kind} message"
    assert m["type"] == kind, m
    return m


@pytest.mark.parametrize("protocol", [2, 3])
def test_subscriber_messages_and_resubscription(redis_server, protocol):
    pool = redispool.Pool.from_url(f"{redis_server.url}?protocol={protocol}")
    try:
        with pool.subscriber() as sub:
            assert sub.fileno() >= 0
            assert sub.get_message(timeout=0) is None
            sub.subscribe("py:news")
            sub.psubscribe("py:sport.*")
            assert _expect(sub, "subscribe")["channel"] == b"py:news"
            _expect(sub, "psubscribe")
            with pool.get() as conn:
                assert conn.execute("PUBLISH", "py:news", b"bin\x00ary") == 1
                assert conn.execute("PUBLISH", "py:sport.ski", "fast") == 1
            m = _expect(sub, "message")
            assert m["channel"] == b"py:news" and m["data"] == b"bin\x00ary"
            m = _expect(sub, "pmessage")
            assert m["pattern"] == b"py:sport.*" and m["data"] == b"fast"
            sub.ping(timeout=5.0)
            with pool.get() as conn:
                assert conn.execute("CLIENT", "KILL", "TYPE", "pubsub") == 1
            m = _expect(sub, "resubscribed")
            assert m["count"] == 1 and sub.resubscribes == 1
            _expect(sub, "subscribe")
            _expect(sub, "psubscribe")
            with pool.get() as conn:
                assert conn.execute("PUBLISH", "py:news", "again") == 1
            assert _expect(sub, "message")["data"] == b"again"
            sub.unsubscribe()
            assert _expect(sub, "unsubscribe")["count"] == 1
        with pytest.raises(redispool.InvalidArgumentError):
            sub.get_message()
    finally:
        pool.close()


def test_subscriber_after_the_pool_is_closed(redis_server):
    pool = redispool.Pool.from_url(redis_server.url)
    sub = pool.subscriber()
    pool.close()
    with pytest.raises(redispool.ClosedError):
        sub.get_message(timeout=0)
    sub.close()
