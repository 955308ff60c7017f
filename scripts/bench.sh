#!/usr/bin/env bash
# The benchmark suite (benches/suite/) in one command: Get+Put through the C ABI
# against the pools users would pick instead (go-redis v9's and v5's pools from
# goroutines, a Mutex+Condvar pool), round trips and pipelines against a throwaway
# redis-server against dedicated per-thread conns (and the go-redis v9 client, and
# redis-benchmark), allocations and memory per conn, system calls per Get+Put,
# overload fairness. Prints the tables and writes bench-results/results.md and
# bench-results/throughput.png.
#
#   scripts/bench.sh            # full run (about 5 minutes on 2 cores)
#   scripts/bench.sh --quick    # short smoke run
#   REDISPOOL_GOREDIS_V9=v9.24.0 scripts/bench.sh   # pin go-redis v9 (default: latest)
#   REDISPOOL_BENCH_PYTHON=1 scripts/bench.sh   # also the Python binding vs redis-py
#
# On a fresh Debian/Ubuntu machine run it as root: it installs redis-server,
# redis-benchmark (redis-tools), strace, valgrind, Go and go-redis v5's source
# (golang-gopkg-redis.v5-dev) when they are missing. go-redis v9 is not installed:
# the suite fetches it from the Go module proxy at run time (`go mod download`,
# into a module cache under target/; never committed) and builds its driver inside
# a copy of the module. Rust (cargo) must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_missing "redis-server:redis-server" "redis-benchmark:redis-tools" \
    "strace:strace" "valgrind:valgrind"
# Go: /usr/local/go/bin when present (the official tarball; Go 1.26 on the bench
# machine), else a go on PATH, else golang-1.22 from Debian (see install_go in
# scripts/deps.sh; Debian 12's own golang-go is 1.19, too old). go-redis v9 names
# the Go it needs in its go.mod (1.26 for v9.24): an older go fetches that
# toolchain from the Go module proxy by itself (GOTOOLCHAIN=auto, Go's default).
install_go
install_go_redis_v5
require_cargo

cargo bench --bench suite -- "$@"
echo "results: $(pwd)/bench-results/ (results.md, throughput.png)"

# TLS (benches/tls.rs): Get+PING+Put over TLS as a percentage of dedicated per-thread
# TLS conns at 8 and 64 threads, one dial's time p50/p99 (TLS vs plain), allocations per
# Get+Put and Get+PING+Put on a TLS conn. Certificates are made with the openssl CLI.
install_missing "openssl:openssl"
cargo bench --bench tls -- "$@"
echo "TLS results: $(pwd)/bench-results/tls.md"

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
