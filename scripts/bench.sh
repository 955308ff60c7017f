#!/usr/bin/env bash
# The benchmark suite (benches/suite/) in one command: Get+Put through the C ABI
# against the pools users would pick instead (go-redis v9's and v5's pools from
# goroutines, a Mutex+Condvar pool), round trips and pipelines against a throwaway
# redis-server against dedicated per-thread conns (and the go-redis v9 client, and
# redis-benchmark), allocations and memory per conn, system calls per Get+Put,
# overload fairness. Prints the tables and writes bench-results/results.md and
# bench-results/throughput.png; then TLS (bench-results/tls.md) and failover under
# load (bench-results/failover.md).
#
#   scripts/bench.sh            # full run (about 10 minutes on 2 cores, 6 of them failover)
#   scripts/bench.sh --quick    # short smoke run
#   REDISPOOL_GOREDIS_V9=v9.24.0 scripts/bench.sh   # pin go-redis v9 (default: latest)
#   REDISPOOL_BENCH_PYTHON=1 scripts/bench.sh   # also the Python binding vs redis-py (threads, asyncio)
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

# Failover (tests/failover.rs, issue 24): the scenarios the README test command runs
# briefly, each with REDISPOOL_FAILOVER_SECS (default 30) of load of 8 INCR threads
# before the failover and again after it, against a real master + replica + 3 sentinels
# or a 3+3 Redis Cluster started on loopback; each scenario appends its row to
# bench-results/failover.md. --quick: 5 s.
failover_secs="${REDISPOOL_FAILOVER_SECS:-30}"
for a in "$@"; do
    if [ "$a" = --quick ]; then failover_secs="${REDISPOOL_FAILOVER_SECS:-5}"; fi
done
mkdir -p bench-results
report="$(pwd)/bench-results/failover.md"
{
    echo "# Failover under load"
    echo
    echo "8 threads of INCR on their own keys, ${failover_secs} s of load before the failover and"
    echo "again after it (and after the reshard), every key read back at the end."
    echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc)."
    echo
    echo "| scenario | acknowledged writes | acknowledged writes lost | errors returned | longest pause |"
    echo "|---|---|---|---|---|"
} >"$report"
REDISPOOL_FAILOVER_SECS="$failover_secs" REDISPOOL_FAILOVER_REPORT="$report" \
    cargo test --release --test failover -- --test-threads=1 --exact \
    sentinel_failover_loses_no_acknowledged_write \
    sentinel_master_sigkilled \
    cluster_graceful_failover_and_reshard_lose_nothing \
    cluster_failover_force \
    cluster_master_sigkilled
echo "failover results: $report"

# Optional: the Python binding against redis-py's ConnectionPool (with hiredis),
# PING/s from 8 threads, and against redis-py's asyncio client from coroutines on
# one event loop. Needs PyPI (redis, hiredis go into a venv under target/).
if [ "${REDISPOOL_BENCH_PYTHON:-0}" = 1 ]; then
    venv=target/bench-venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q redis hiredis
    cargo build --release
    REDISPOOL_LIB="$(pwd)/target/release/libredispool.so" \
        "$venv/bin/python" bindings/python/bench/ping_threads.py
    REDISPOOL_LIB="$(pwd)/target/release/libredispool.so" \
        "$venv/bin/python" bindings/python/bench/ping_asyncio.py
fi
