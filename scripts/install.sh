#!/usr/bin/env bash
# Builds the release library and installs it, with its headers and a pkg-config
# file, under a prefix:
#
#   scripts/install.sh [PREFIX]                 # default PREFIX=/usr/local
#   DESTDIR=/tmp/stage scripts/install.sh /usr  # staged, for packaging
#
# Installs
#   PREFIX/lib/libredispool.so.X.Y.Z     the shared library (X.Y.Z from Cargo.toml)
#   PREFIX/lib/libredispool.so.X         -> libredispool.so.X.Y.Z (its SONAME)
#   PREFIX/lib/libredispool.so           -> libredispool.so.X (for -lredispool)
#   PREFIX/lib/libredispool.a            the static library
#   PREFIX/include/redispool.h           the C header
#   PREFIX/include/redispool.hpp         the C++17 wrapper (header-only)
#   PREFIX/lib/pkgconfig/redispool.pc    for pkg-config (Libs.private: what the
#                                        static library needs from the system)
#
# With DESTDIR set, files go to DESTDIR/PREFIX/... while the paths written into
# redispool.pc stay PREFIX/...; ldconfig is not run. Running it again replaces
# the files and links in place (a program using the old library keeps its copy).
# Needs cargo (Rust) and a C toolchain, as `cargo build` does.
set -euo pipefail

usage() {
    sed -n '2,7s/^# \{0,1\}//p' "$0"
}

case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
esac
if (($# > 1)); then
    usage >&2
    exit 2
fi

# absolute PATH: PATH made absolute against the caller's directory, without a
# trailing slash (except for "/" itself).
absolute() {
    local p="$1"
    case "$p" in
    /*) ;;
    *) p="$PWD/$p" ;;
    esac
    while [ "${p%/}" != "$p" ] && [ "$p" != "/" ]; do p="${p%/}"; done
    printf '%s\n' "$p"
}

prefix="$(absolute "${1:-/usr/local}")"
destdir=""
if [ -n "${DESTDIR:-}" ]; then
    destdir="$(absolute "$DESTDIR")"
fi
# "/" as PREFIX must not give "//lib".
[ "$prefix" = "/" ] && prefix=""
libdir="$prefix/lib"
includedir="$prefix/include"
pkgconfigdir="$libdir/pkgconfig"

cd "$(dirname "$0")/.."
# Inside `cargo test` (or any cargo-run process) CARGO names the cargo to use.
if [ -z "${CARGO:-}" ]; then
    . scripts/deps.sh
    require_cargo
fi
cargo="${CARGO:-cargo}"

# --- version, description and target directory from Cargo.toml -------------
metadata="$("$cargo" metadata --no-deps --format-version 1)"
# json_string KEY: the first "KEY":"value" of the package's metadata (the
# package object comes first, and these keys precede its dependencies).
json_string() {
    printf '%s' "$metadata" | grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d '"' -f 4 || true
}
version="$(json_string version)"
if [ -z "$version" ]; then
    version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)"
fi
if ! [[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
    echo "error: cannot read the package version from Cargo.toml (got '$version')" >&2
    exit 1
fi
major="${BASH_REMATCH[1]}"
full="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
description="$(json_string description)"
description="${description:-A Redis connection pool with go-redis semantics}"
target_dir="$(json_string target_directory)"
target_dir="${target_dir:-target}"
release="$target_dir/release"

# --- build ------------------------------------------------------------------
# What the Rust runtime inside libredispool.a needs from the system, as rustc
# reports it for this toolchain and target. This staticlib-only build is a
# separate cargo unit (cached after the first run) that also copies its own
# libredispool.a to target/release/, so it runs before `cargo build`, whose
# outputs are the ones installed.
fallback_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
echo "== native libraries of the static library"
native_libs=""
if rustc_out="$("$cargo" rustc --release --lib --crate-type staticlib -- --print native-static-libs 2>&1)"; then
    native_libs="$(printf '%s\n' "$rustc_out" | sed -n 's/^note: native-static-libs: *//p' | tail -n 1)"
    native_libs="$(printf '%s' "$native_libs" | tr -s ' \t' ' ' | sed 's/^ //; s/ $//')"
    # Only linker arguments are expected (-lfoo, -framework ..., -Wl,...).
    if [ -n "$native_libs" ] && ! [[ "$native_libs" =~ ^-[^\ ]+(\ [^\ ]+)*$ ]]; then
        native_libs=""
    fi
fi
if [ -z "$native_libs" ]; then
    echo "warning: could not read native-static-libs from cargo rustc; using '$fallback_libs'" >&2
    native_libs="$fallback_libs"
fi
echo "Libs.private: $native_libs"

echo "== cargo build --release"
"$cargo" build --release

so="$release/libredispool.so"
archive="$release/libredispool.a"
for f in "$so" "$archive" include/redispool.h include/redispool.hpp; do
    if [ ! -f "$f" ]; then
        echo "error: $f is missing after the build" >&2
        exit 1
    fi
done

# The file name must match the SONAME build.rs gives the library.
soname=""
if command -v readelf >/dev/null 2>&1; then
    soname="$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
elif command -v objdump >/dev/null 2>&1; then
    soname="$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')"
fi
if [ -n "$soname" ] && [ "$soname" != "libredispool.so.$major" ]; then
    echo "error: $so has SONAME $soname, expected libredispool.so.$major" >&2
    exit 1
fi

# --- install ----------------------------------------------------------------
echo "== installing into ${destdir:+$destdir (DESTDIR) + }${prefix:-/}"
install -d "$destdir$libdir" "$destdir$includedir" "$destdir$pkgconfigdir"

# install(1) replaces the destination by a new file, so a running program that
# mapped the previous library is not disturbed.
install -m 0755 "$so" "$destdir$libdir/libredispool.so.$full"
ln -sfn "libredispool.so.$full" "$destdir$libdir/libredispool.so.$major"
ln -sfn "libredispool.so.$major" "$destdir$libdir/libredispool.so"
install -m 0644 "$archive" "$destdir$libdir/libredispool.a"
install -m 0644 include/redispool.h include/redispool.hpp "$destdir$includedir/"

pc="$(mktemp)"
trap 'rm -f "$pc"' EXIT
cat >"$pc" <<EOF
prefix=${prefix:-/}
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: redispool
Description: $description
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lredispool
Libs.private: $native_libs
EOF
install -m 0644 "$pc" "$destdir$pkgconfigdir/redispool.pc"

# ld.so finds a library outside /lib and /usr/lib only through its cache: refresh
# it for a real (not staged) install into a directory it is configured to search.
ld_conf_dirs() {
    cat /etc/ld.so.conf /etc/ld.so.conf.d/*.conf 2>/dev/null || true
}
ldconfig_done=""
if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null 2>&1; then
    searched=""
    case "$libdir" in
    /lib | /usr/lib) searched=yes ;;
    *) if ld_conf_dirs | grep -xF "$libdir" >/dev/null; then searched=yes; fi ;;
    esac
    if [ -n "$searched" ]; then
        ldconfig
        ldconfig_done=yes
    fi
fi

echo "installed redispool $version:"
for f in "$libdir/libredispool.so.$full" "$libdir/libredispool.so.$major" \
    "$libdir/libredispool.so" "$libdir/libredispool.a" "$includedir/redispool.h" \
    "$includedir/redispool.hpp" "$pkgconfigdir/redispool.pc"; do
    if [ -L "$destdir$f" ]; then
        echo "  $destdir$f -> $(readlink "$destdir$f")"
    else
        echo "  $destdir$f"
    fi
done
if [ -n "$ldconfig_done" ]; then
    echo "ran ldconfig: programs find libredispool.so.$major in $libdir"
elif [ -z "$destdir" ]; then
    echo "note: ldconfig was not run, so the loader may not find libredispool.so.$major yet:"
    echo "  run ldconfig as root if $libdir is listed in /etc/ld.so.conf(.d), or link"
    echo "  programs with -Wl,-rpath,$libdir, or run them with LD_LIBRARY_PATH=$libdir"
fi
echo "build against it with: PKG_CONFIG_PATH=$pkgconfigdir pkg-config --cflags --libs redispool"
