#!/usr/bin/env bash
# The benchmark suite (benches/suite/) in one command: Get+Put through the C ABI
# against a Mutex+Condvar pool, round trips against a throwaway redis-server against
# dedicated per-thread conns, allocations and memory per conn, overload fairness.
# Prints the tables and writes bench-results/results.md and bench-results/throughput.png.
#
#   scripts/bench.sh            # full run (about two minutes on 2 cores)
#   scripts/bench.sh --quick    # short smoke run
#   REDISPOOL_BENCH_PYTHON=1 scripts/bench.sh   # also the Python binding vs redis-py
#
# On a fresh Debian/Ubuntu machine run it as root: it installs redis-server, Go and
# go-redis v5's source (golang-gopkg-redis.v5-dev, the go-redis baseline) when they are
# missing. Rust (cargo) must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_missing "redis-server:redis-server"
# Go 1.21+ (the go-redis baseline's driver): /usr/local/go/bin when present, else
# golang-1.22 (see install_go in scripts/deps.sh).
install_go
install_go_redis_v5
require_cargo

cargo bench --bench suite -- "$@"
echo "results: $(pwd)/bench-results/ (results.md, throughput.png)"

# Optional: the Python binding against redis-py's ConnectionPool (with hiredis),
# PING/s from 8 threads. Needs PyPI (redis, hiredis go into a venv under target/).
if [ "${REDISPOOL_BENCH_PYTHON:-0}" = 1 ]; then
    venv=target/bench-venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q redis hiredis
    cargo build --release
    REDISPOOL_LIB="$(pwd)/target/release/libredispool.so" \
        "$venv/bin/python" bindings/python/bench/ping_threads.py
fi
