#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests (unit tests,
# integration tests against a real redis-server, the C examples, valgrind).
#
# On a fresh Debian/Ubuntu machine run it as root: it installs redis-server,
# gcc, g++, valgrind, strace (tests/health_sweep.rs counts system calls with it),
# pkg-config, binutils, cmake, ninja, libhiredis-dev, Go 1.21+,
# Ruby (with ruby-ffi and minitest) and Python 3 (with pytest and venv), for the
# language bindings, and go-redis v5's source (the bench suite's go-redis
# baseline) when they are missing. The fuzz step
# needs a nightly toolchain (it says SKIP without one) and installs cargo-fuzz. Rust (cargo) must be
# installed; rustfmt and clippy are added through rustup when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

install_missing "redis-server:redis-server" "redis-cli:redis-tools" "cc:gcc libc6-dev" "c++:g++" \
    "valgrind:valgrind" "strace:strace" "pkg-config:pkg-config" "readelf:binutils" \
    "ruby:ruby ruby-ffi ruby-minitest" "python3:python3" "cmake:cmake" "ninja:ninja-build" "objcopy:binutils" \
    "openssl:openssl"
# Go 1.21 or later for the Go binding: /usr/local/go/bin when present, else
# golang-1.22 (from bookworm-backports on Debian 12, whose golang-go is 1.19).
install_go
# examples-c/hiredis.c (tests/c_examples.rs) builds against Debian's hiredis.
[ -f /usr/include/hiredis/hiredis.h ] || install_packages libhiredis-dev
# examples-c/libevent.c (tests/c_examples.rs) builds against Debian's libevent.
[ -f /usr/include/event2/event.h ] || install_packages libevent-dev
# The bench suite's smoke run builds and runs its go-redis baseline with it.
install_go_redis_v5
# Ruby may be there without the gems the binding and its tests use.
if ! ruby -e 'require "ffi"; require "minitest"' >/dev/null 2>&1; then
    install_packages ruby-ffi ruby-minitest
fi
# tests/ruby_binding.rs builds and installs the binding's gem with `gem`.
install_missing "gem:ruby-rubygems"
# The Python binding's tests need pytest and venv (with ensurepip, for the pip
# install test). Debian's pip refuses system-wide installs, so apt first; pip
# only for a python3 apt does not manage (pyenv, a virtualenv).
if ! python3 -c 'import pytest, venv, ensurepip' >/dev/null 2>&1; then
    install_packages python3-pytest python3-venv
fi
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
    python3 -m pip install pytest
fi
require_cargo
# The Go, Ruby and Python binding tests skip when their toolchain is missing; here it
# was just installed, so a skip would hide a failure.
export REDISPOOL_REQUIRE_BINDINGS=1

add_component() {
    if ! command -v rustup >/dev/null 2>&1; then
        echo "error: $1 is missing and there is no rustup to add it with" >&2
        exit 1
    fi
    rustup component add "$1"
}
cargo fmt --version >/dev/null 2>&1 || add_component rustfmt
cargo clippy --version >/dev/null 2>&1 || add_component clippy

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test --all-targets"
cargo test --all-targets
echo "== scripts/fuzz.sh 15 (cargo-fuzz targets, loom models)"
scripts/fuzz.sh 15
echo "all checks passed"
