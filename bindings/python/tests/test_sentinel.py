"""Pool.sentinel against a real master + replica + 3 sentinels: tests/python_binding.rs
starts them and passes REDISPOOL_TEST_SENTINELS (comma-separated addresses) and
REDISPOOL_TEST_SENTINEL_MASTER ("name=ip:port") and
REDISPOOL_TEST_SENTINEL_REPLICA ("ip:port")."""

from __future__ import annotations

import os

import pytest

import redispool

SENTINELS = [s for s in os.environ.get("REDISPOOL_TEST_SENTINELS", "").split(",") if s]
MASTER = os.environ.get("REDISPOOL_TEST_SENTINEL_MASTER", "")
REPLICA = os.environ.get("REDISPOOL_TEST_SENTINEL_REPLICA", "")
pytestmark = pytest.mark.skipif(
    not SENTINELS or not MASTER or not REPLICA,
    reason="REDISPOOL_TEST_SENTINELS not set (cargo test --test python_binding)",
)


def test_sentinel_pool_talks_to_the_master():
    name, addr = MASTER.split("=")
    pool = redispool.Pool.sentinel(name, SENTINELS, pool_size=2, poll_interval_ms=500)
    try:
        assert pool.sentinel_master_addr() == addr
        with pool.get() as conn:
            assert conn.execute("ROLE")[0] == b"master"
            assert conn.execute("SET", "py:sentinel", "1") == b"OK"
        assert pool.stats().dials == 1
    finally:
        pool.close()


def test_wait_replicas_and_sentinel_stats():
    """WAIT through the sentinel pool: the deployment's replica acknowledges; two never
    do (PoolTimeoutError with acked=1); the replica itself refuses WAIT."""
    name, addr = MASTER.split("=")
    pool = redispool.Pool.sentinel(name, SENTINELS, pool_size=2)
    try:
        with pool.get() as conn:
            assert conn.execute("SET", "py:sentinel:waited", "1") == b"OK"
            assert conn.wait_replicas(1, 10.0) == 1
            with pytest.raises(redispool.PoolTimeoutError) as timed_out:
                conn.wait_replicas(2, 0.1)
            assert timed_out.value.acked == 1
            with pytest.raises(redispool.InvalidArgumentError):
                conn.wait_replicas(-1, 0.1)
            assert conn.execute("GET", "py:sentinel:waited") == b"1"
        st = pool.sentinel_stats()
        assert isinstance(st, redispool.SentinelStats)
        assert st.failovers == 0 and st.in_failover == 0 and st.switches == 0
    finally:
        pool.close()
    plain = redispool.Pool(addr)
    try:
        with pytest.raises(redispool.InvalidArgumentError):
            plain.sentinel_stats()
    finally:
        plain.close()
    replica = redispool.Pool(REPLICA)
    try:
        with replica.get() as conn:
            with pytest.raises(redispool.ConnIOError):
                conn.wait_replicas(1, 0.1)
            assert conn.execute("PING") == b"PONG"  # the conn stays good
    finally:
        replica.close()


def test_unknown_master_name_fails_to_dial():
    pool = redispool.Pool.sentinel(
        "nosuchmaster", SENTINELS, dialer_retries=1, dial_timeout_ms=2000
    )
    try:
        with pytest.raises(redispool.RedisPoolError):
            pool.get(timeout=5)
    finally:
        pool.close()
    with pytest.raises(redispool.InvalidArgumentError):
        redispool.Pool.sentinel("m", [])
