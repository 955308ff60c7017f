#!/usr/bin/env bash
# PING through the Go binding vs go-redis v9's client.Ping, side by side in one run
# (one redis-server, GOMAXPROCS=2, the median of ROUNDS interleaved rounds), at
# pool x goroutines 8x8, 8x64, 8x256 and 64x64: the table of docs/nonblocking.md.
#
#   benches/gobinding/run.sh [BEFORE_REV]
#
# BEFORE_REV (a git revision, e.g. s5/tls) adds the binding as it was at that revision,
# built against the same library, as "before" columns. go-redis v9 (latest, or
# REDISPOOL_GOREDIS_V9) comes from the Go module proxy at run time, never committed.
# Needs: go >= 1.21, redis-server, a release build (cargo build --release).
# Env: ROUNDS (3), MILLIS (2000) per process.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
before=${1:-}
rounds=${ROUNDS:-3}
millis=${MILLIS:-2000}
v9=${REDISPOOL_GOREDIS_V9:-latest}
lib="${CARGO_TARGET_DIR:-$repo/target}/release"
[ -f "$lib/libredispool.so" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
redis_pid=""
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A fixed place for the .pc and the library: Go's build cache keeps the linker flags
# pkg-config gave, so a temporary path would be stale in the next run.
cfg="$lib/gobinding"
mkdir -p "$cfg"
ln -sf "$lib/libredispool.so" "$cfg/libredispool.so"
ln -sf "$lib/libredispool.so" "$cfg/libredispool.so.0"
cat > "$cfg/redispool.pc" <<PC
Name: redispool
Description: build tree
Version: 0.1.0
Cflags: -I$repo/include
Libs: -L$cfg -lredispool
PC
export PKG_CONFIG_PATH="$cfg" LD_LIBRARY_PATH="$cfg" CGO_ENABLED=1 GOFLAGS=-mod=mod GOCACHE="$cfg/gocache"
export GOPATH="${GOBINDING_GOPATH:-$HOME/.cache/redispool-gobinding}"

# build NAME BINDING_DIR: the driver against that copy of the binding.
build() {
    local dir="$work/$1"
    mkdir -p "$dir"
    cp benches/gobinding/main.go "$dir/"
    cat > "$dir/go.mod" <<MOD
module gobinding

go 1.21

require github.com/redispool/redispool-go v0.0.0

replace github.com/redispool/redispool-go => $2
MOD
    (cd "$dir" && go get "github.com/redis/go-redis/v9@$v9" && go mod tidy && go build -o "$work/$1.exe" .) \
        >"$work/$1.build.log" 2>&1 || { echo "building the $1 driver failed:" >&2; cat "$work/$1.build.log" >&2; exit 1; }
}
build after "$repo/bindings/go"
modes="goredis get polled"
if [ -n "$before" ]; then
    mkdir -p "$work/before-src"
    git archive "$before" bindings/go | tar -x -C "$work/before-src"
    build before "$work/before-src/bindings/go"
    modes="$modes get-before polled-before"
fi

port=$((20000 + RANDOM % 40000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

configs="8x8 8x64 8x256 64x64"
for r in $(seq "$rounds"); do
    for c in $configs; do
        for m in $modes; do
            exe="$work/after.exe"; mode=$m
            case $m in *-before) exe="$work/before.exe"; mode=${m%-before} ;; esac
            out=$(GOMAXPROCS=2 "$exe" "$mode" "127.0.0.1:$port" "${c%x*}" "${c#*x}" "$millis")
            echo "$c $m $out" >> "$work/results"
        done
    done
done

# The median of each (config, mode): ns_per_op, threads, allocs_per_op.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| pool x goroutines | go-redis Ping |'
for m in $modes; do [ "$m" = goredis ] || printf ' %s | ratio |' "$m"; done
printf ' OS threads (%s) | allocs/op (%s) |\n' "${modes// / \/ }" "${modes// / \/ }"
for c in $configs; do
    base=$(awk -v c="$c" '$1==c && $2=="goredis" {print $4}' "$work/results" | median)
    printf '| %s | %s µs |' "$c" "$(awk -v n="$base" 'BEGIN {printf "%.1f", n / 1000}')"
    threads=""; allocs=""
    for m in $modes; do
        ns=$(awk -v c="$c" -v m="$m" '$1==c && $2==m {print $4}' "$work/results" | median)
        th=$(awk -v c="$c" -v m="$m" '$1==c && $2==m {print $6}' "$work/results" | median)
        al=$(awk -v c="$c" -v m="$m" '$1==c && $2==m {print $8}' "$work/results" | median)
        threads="$threads${threads:+ / }$th"; allocs="$allocs${allocs:+ / }$al"
        [ "$m" = goredis ] && continue
        awk -v n="$ns" -v b="$base" 'BEGIN {printf " %.1f µs | %.2f |", n / 1000, b / n}'
    done
    printf ' %s | %s |\n' "$threads" "$allocs"
done
