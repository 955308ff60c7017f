"""Pool.sentinel against a real master + replica + 3 sentinels: tests/python_binding.rs
starts them and passes REDISPOOL_TEST_SENTINELS (comma-separated addresses) and
REDISPOOL_TEST_SENTINEL_MASTER ("name=ip:port")."""

from __future__ import annotations

import os

import pytest

import redispool

SENTINELS = [s for s in os.environ.get("REDISPOOL_TEST_SENTINELS", "").split(",") if s]
MASTER = os.environ.get("REDISPOOL_TEST_SENTINEL_MASTER", "")
pytestmark = pytest.mark.skipif(
    not SENTINELS or not MASTER,
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
