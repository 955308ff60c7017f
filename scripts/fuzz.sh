#!/usr/bin/env bash
# Bounded fuzzing and concurrency models:
#  1. the cargo-fuzz targets in fuzz/ (url, resp, options, pipeline), each for SECONDS (default 20),
#     starting from the seeds in fuzz/corpus/<target> plus what earlier runs found
#     (fuzz/target/corpus/<target>, where new inputs go, so the seed corpora stay small);
#  2. the loom models of the conn table's lock-free free list and fresh-index counter
#     (src/ffi/conn_table.rs) and of the notify fd's signal/drain protocol
#     (src/pool/notify.rs), with at most LOOM_MAX_PREEMPTIONS (default 3) preemptions where
#     a model is too big to explore whole.
#
#   scripts/fuzz.sh [SECONDS]
#
# Exits non-zero when a target crashes (the input is kept in fuzz/artifacts/<target>/) or
# a model fails. Fuzzing needs a nightly toolchain (cargo +nightly) and cargo-fuzz, which
# is installed when missing; without nightly the fuzzing is skipped (said so, exit 0) and
# the loom models still run. Fuzz longer by hand:
#   cargo +nightly fuzz run url fuzz/target/corpus/url fuzz/corpus/url -- -max_total_time=3600
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
require_cargo

secs="${1:-20}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
targets=(url resp options pipeline)
failed=0
root="$PWD"
logs="$root/fuzz/target/logs"

now() { date +%s; }

fuzz() {
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "SKIP fuzzing: no nightly toolchain ('cargo +nightly' fails; rustup toolchain install nightly)."
        echo "     Only the stable unit tests' bounded fuzz loops cover the parsers then:"
        echo "     src/redis/url/mod.rs fuzz_never_panics_and_messages_stay_bounded,"
        echo "     src/redis/resp/parser.rs fuzz_mutated_replies_never_panic and src/fuzzing.rs"
        echo "     fuzz_pipeline_reader_never_panics (cargo test --lib fuzz)."
        return 0
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "== installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    echo "== $(cargo +nightly fuzz --version), $(cargo +nightly --version)"
    local start t
    start=$(now)
    echo "== cargo +nightly fuzz build (${targets[*]})"
    cargo +nightly fuzz build
    echo "   built in $(($(now) - start)) s"
    mkdir -p "$logs"
    for t in "${targets[@]}"; do
        local scratch="$root/fuzz/target/corpus/$t" log="$logs/$t.log"
        local args=(
            "-max_total_time=$secs" -print_final_stats=1 -timeout=30
            # A single allocation over 64 MiB, or 2 GiB resident (ASan's quarantine
            # included), counts as a crash: nothing here may allocate by a declared size.
            -malloc_limit_mb=64 -rss_limit_mb=2048
        )
        [ -f "fuzz/$t.dict" ] && args+=("-dict=$root/fuzz/$t.dict")
        # Room for URLs past MAX_URL_LEN (8 KiB).
        [ "$t" = url ] && args+=(-max_len=9000)
        mkdir -p "$scratch"
        echo "== fuzz $t for ${secs} s"
        local rc=0
        timeout $((secs + 300)) cargo +nightly fuzz run "$t" "$scratch" "$root/fuzz/corpus/$t" \
            -- "${args[@]}" >"$log" 2>&1 || rc=$?
        local runs rss done_line
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
        [ -n "$runs" ] || runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1 || true)
        rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        if [ "$rc" -ne 0 ]; then
            failed=1
            echo "FAIL fuzz $t (exit $rc) after ${runs:-?} executions; log: $log"
            grep -E -A6 'panicked at' "$log" | head -12 || true
            grep -E 'ERROR:|ALARM|SUMMARY|Test unit written' "$log" | head -8 || true
        else
            echo "ok   fuzz $t: ${runs:-?} executions in ${secs} s ($((${runs:-0} / secs))/s)," \
                "peak RSS ${rss:-?} MB, ${done_line#*DONE }"
        fi
    done
}

loom() {
    local start log="$logs/loom.log"
    mkdir -p "$logs"
    start=$(now)
    echo "== loom models (RUSTFLAGS=\"--cfg loom\" cargo test --release --lib loom," \
        "LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}; own target dir target/loom)"
    local rc=0
    LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" RUSTFLAGS="--cfg loom" \
        CARGO_TARGET_DIR=target/loom \
        timeout 900 cargo test --release --lib loom -- --nocapture >"$log" 2>&1 || rc=$?
    grep -E '^loom |^test result' "$log" | sed 's/^/   /' || true
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "FAIL loom (exit $rc); log: $log"
        grep -E 'panicked at|FAILED|^error' "$log" | head -20 || true
    else
        echo "ok   loom in $(($(now) - start)) s (build included)"
    fi
}

fuzz
loom
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: FAILED"
    exit 1
fi
echo "fuzz.sh: all passed"
