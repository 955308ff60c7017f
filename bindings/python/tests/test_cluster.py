"""Cluster against a real Redis Cluster: tests/python_binding.rs starts one (3
masters) and passes its seeds in REDISPOOL_TEST_CLUSTER_SEEDS."""

from __future__ import annotations

import os

import pytest

import redispool

SEEDS = [s for s in os.environ.get("REDISPOOL_TEST_CLUSTER_SEEDS", "").split(",") if s]
pytestmark = pytest.mark.skipif(
    not SEEDS, reason="REDISPOOL_TEST_CLUSTER_SEEDS not set (cargo test --test python_binding)"
)


@pytest.fixture
def cluster():
    c = redispool.Cluster(SEEDS, pool_size=4, decode_responses=True)
    yield c
    c.close()


def test_keys_go_to_their_masters(cluster):
    nodes = set()
    for i in range(30):
        key = f"py:cluster:{i}"
        with cluster.get(key) as conn:
            assert conn.execute("SET", key, str(i)) == "OK"
            assert conn.execute("GET", key) == str(i)
            nodes.add(redispool.Cluster.conn_node(conn))
    assert len(nodes) == 3, nodes
    info = cluster.info()
    assert info.masters == 3 and info.slots_covered == 16384 and info.refreshes >= 1
    assert cluster.stats().in_use_conns == 0 and cluster.stats().total_conns >= 3


def test_slot_node_names_the_master_get_slot_reaches():
    # Its own cluster: slot_node before any get must not load the map.
    c = redispool.Cluster(SEEDS, pool_size=2)
    try:
        with pytest.raises(redispool.ClusterError):
            c.slot_node(0)
        assert c.stats().total_conns == 0
        for slot in (0, 8000, 16383):
            with c.get_slot(slot) as conn:
                assert c.slot_node(slot) == redispool.Cluster.conn_node(conn)
        with pytest.raises(redispool.InvalidArgumentError):
            c.slot_node(16384)
    finally:
        c.close()


def test_moved_is_followed(cluster):
    a, b = "py:moved:a", "py:moved:b{x}"
    slot_a = redispool.key_slot(a)
    # Find a key served by another master than a's.
    with cluster.get(a) as conn_a:
        node_a = redispool.Cluster.conn_node(conn_a)
    i = 0
    while True:
        b = f"py:moved:{i}"
        with cluster.get(b) as conn_b:
            if redispool.Cluster.conn_node(conn_b) != node_a:
                break
        i += 1
        assert i < 1000
    with cluster.get_slot(slot_a) as conn:
        assert conn.execute("SET", b, "v") == "OK"  # MOVED, followed
        assert conn.execute("GET", b) == "v"
        assert redispool.Cluster.conn_node(conn) == node_a, "the conn stays on its node"
    assert cluster.info().moved >= 1


def test_from_url_and_errors():
    host, rest = SEEDS[0], SEEDS[1:]
    url = f"redis://{host}?" + "&".join(f"addr={a}" for a in rest) + "&pool_size=2"
    c = redispool.Cluster.from_url(url)
    try:
        with c.get(b"py:url") as conn:
            assert conn.execute("PING") == b"PONG"
        with pytest.raises(redispool.InvalidArgumentError):
            c.get_slot(16384)
    finally:
        c.close()
    with pytest.raises(redispool.ClosedError):
        c.get("k")
