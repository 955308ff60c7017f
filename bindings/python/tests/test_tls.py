"""Pool over TLS against a redis-server started with --tls-port: tests/python_binding.rs
starts it and passes REDISPOOL_TEST_TLS_ADDR ("127.0.0.1:port" of the TLS port) and
REDISPOOL_TEST_TLS_CERTS (the directory of the test certificates)."""

from __future__ import annotations

import os
import urllib.parse

import pytest

import redispool

ADDR = os.environ.get("REDISPOOL_TEST_TLS_ADDR", "")
CERTS = os.environ.get("REDISPOOL_TEST_TLS_CERTS", "")
pytestmark = pytest.mark.skipif(
    not ADDR or not CERTS,
    reason="REDISPOOL_TEST_TLS_ADDR not set (cargo test --test python_binding)",
)


def _round_trip(pool: redispool.Pool) -> None:
    try:
        with pool.get() as conn:
            assert conn.execute("SET", "py:tls", "over tls") == b"OK"
            assert conn.execute("GET", "py:tls") == b"over tls"
    finally:
        pool.close()


def test_rediss_url():
    ca = urllib.parse.quote(os.path.join(CERTS, "ca.pem"), safe="")
    _round_trip(redispool.Pool.from_url(f"rediss://{ADDR}/?tls_ca_file={ca}"))


def test_tls_options():
    _round_trip(
        redispool.Pool(
            ADDR, tls=True, tls_ca_file=os.path.join(CERTS, "ca.pem"), tls_min_version=12
        )
    )


def test_unknown_ca_is_a_tls_error():
    pool = redispool.Pool(
        ADDR, tls=True, tls_ca_file=os.path.join(CERTS, "other-ca.pem"), dialer_retries=1
    )
    try:
        with pytest.raises(redispool.TLSError, match="unknown issuer"):
            pool.get(timeout=10)
    finally:
        pool.close()


def test_mismatched_key_is_refused_by_the_constructor():
    with pytest.raises(redispool.InvalidArgumentError, match="does not match"):
        redispool.Pool(
            ADDR,
            tls=True,
            tls_ca_file=os.path.join(CERTS, "ca.pem"),
            tls_cert_file=os.path.join(CERTS, "client.pem"),
            tls_key_file=os.path.join(CERTS, "server.key"),
        )


def _expect(sub, kind, timeout=10.0):
    m = sub.get_message(timeout=timeout)
    assert m is not None, f"no {kind} message"
    assert m["type"] == kind, m
    return m


def test_subscriber_over_tls():
    """A subscriber on a TLS pool: a message far larger than a TLS record, ping, and a
    new TLS session after CLIENT KILL that carries the subscription again."""
    pool = redispool.Pool(
        ADDR, tls=True, tls_ca_file=os.path.join(CERTS, "ca.pem"), client_name="py-tls-sub"
    )
    try:
        with pool.subscriber() as sub:
            sub.subscribe("py:tls:news")
            assert _expect(sub, "subscribe")["channel"] == b"py:tls:news"
            big = bytes(range(256)) * 800
            with pool.get() as conn:
                assert conn.execute("PUBLISH", "py:tls:news", big) == 1
                assert conn.execute("PUBLISH", "py:tls:news", "small") == 1
            assert _expect(sub, "message")["data"] == big
            assert _expect(sub, "message")["data"] == b"small"
            sub.ping(timeout=10.0)
            with pool.get() as conn:
                assert conn.execute("CLIENT", "KILL", "TYPE", "pubsub") == 1
            assert _expect(sub, "resubscribed")["count"] == 1
            _expect(sub, "subscribe")
            with pool.get() as conn:
                assert conn.execute("PUBLISH", "py:tls:news", "again") == 1
            assert _expect(sub, "message")["data"] == b"again"
    finally:
        pool.close()
