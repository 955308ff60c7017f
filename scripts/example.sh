#!/usr/bin/env bash
# The README's main job: build redispool, start a throwaway redis-server on a
# free port, compile examples-c/basic.c against the release library and run it.
#
# On a fresh Debian/Ubuntu machine run it as root: it installs redis-server,
# gcc and pkg-config when they are missing. Rust (cargo) must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_missing "redis-server:redis-server" "cc:gcc libc6-dev" "pkg-config:pkg-config"
require_cargo

cargo build --release
target="${CARGO_TARGET_DIR:-target}/release"
target="$(cd "$target" && pwd)"

work="$(mktemp -d)"
redis_pid=""
port=""
cleanup() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# redis_answers PORT: succeeds when the redis-server we started (pid
# $redis_pid) answers PING on PORT. Checking the pid guards against another
# server that grabbed the port first.
redis_answers() {
    local line pid=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf '*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n' >&3
    IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
    if [ "$line" = $'+PONG\r' ]; then
        while IFS= read -r -t 2 line <&3; do
            case "$line" in process_id:*) pid="${line#process_id:}"; pid="${pid%$'\r'}"; break ;; esac
        done
    fi
    exec 3<&-
    [ "$pid" = "$redis_pid" ]
}

# start_redis: starts redis-server on a free port and waits until it answers.
# Redis 7 reads "--port 0" as "no TCP at all", so we pick a port ourselves: a
# random one nobody answers on, retried (bounded) if redis still cannot bind it.
start_redis() {
    local attempt i
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 40000))
        # A successful connect means something already listens there.
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            continue
        fi
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no --logfile "$work/redis.log" &
        redis_pid=$!
        for i in $(seq 1 200); do # 200 x 50 ms = 10 s
            if ! kill -0 "$redis_pid" 2>/dev/null; then
                break # exited, most likely "address already in use": next port
            fi
            if redis_answers "$port" 2>/dev/null; then
                echo "redis-server (pid $redis_pid) ready on 127.0.0.1:$port"
                return 0
            fi
            sleep 0.05
        done
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
        echo "redis-server did not start on port $port (attempt $attempt), retrying" >&2
    done
    echo "error: could not start redis-server; its last log:" >&2
    cat "$work/redis.log" >&2 || true
    return 1
}
start_redis

# The linker records the library's SONAME (libredispool.so.0); cargo writes
# only libredispool.so, so give it that name too, as an install would.
so="$target/libredispool.so"
soname="$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')"
if [ -z "$soname" ]; then
    echo "error: $so has no SONAME" >&2
    exit 1
fi
mkdir -p "$work/lib"
ln -s "$so" "$work/lib/$soname"

cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -Iinclude examples-c/basic.c \
    -o "$work/basic" -L"$target" -lredispool -Wl,-rpath,"$work/lib"
"$work/basic" "127.0.0.1:$port"
echo "example OK"
