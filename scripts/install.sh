#!/usr/bin/env bash
# Builds the release library and installs it, with its headers, a pkg-config
# file and a CMake package, under a prefix:
#
#   scripts/install.sh [PREFIX]                 # default PREFIX=/usr/local
#   DESTDIR=/tmp/stage scripts/install.sh /usr  # staged, for packaging
#   REDISPOOL_STRIP=0 scripts/install.sh        # keep debug info in the libraries
#
# Installs
#   PREFIX/lib/libredispool.so.X.Y.Z     the shared library (X.Y.Z from Cargo.toml),
#                                        stripped, every export versioned
#                                        (pool_get@@REDISPOOL_0.1, src/ffi/redispool.map)
#   PREFIX/lib/libredispool.so.X         -> libredispool.so.X.Y.Z (its SONAME)
#   PREFIX/lib/libredispool.so           -> libredispool.so.X (for -lredispool)
#   PREFIX/lib/libredispool.a            the static library, debug info stripped
#   PREFIX/lib/debug/libredispool.so.X.Y.Z.debug
#                                        the shared library's debug info (named by
#                                        its .gnu_debuglink), and a link to it at
#   PREFIX/lib/debug/.build-id/NN/REST.debug   where debuggers look it up by build id
#   PREFIX/include/redispool.h           the C header
#   PREFIX/include/redispool.hpp         the C++17 wrapper (header-only)
#   PREFIX/lib/pkgconfig/redispool.pc    for pkg-config (Libs.private: what the
#                                        static library needs from the system)
#   PREFIX/lib/cmake/redispool/redispoolConfig.cmake (+ ...ConfigVersion.cmake)
#                                        find_package(redispool CONFIG): imported
#                                        targets redispool::redispool (shared) and
#                                        redispool::redispool_static
#   PREFIX/share/doc/redispool/          LICENSE, CHANGELOG.md
#
# With DESTDIR set, files go to DESTDIR/PREFIX/... while the paths written into
# redispool.pc stay PREFIX/...; ldconfig is not run. Running it again replaces
# the files and links in place (a program using the old library keeps its copy).
# Needs cargo (Rust) and a C toolchain, as `cargo build` does.
set -euo pipefail

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0"
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
cmakedir="$libdir/cmake/redispool"
debugdir="$libdir/debug"
docdir="$prefix/share/doc/redispool"
strip_debug=yes
case "${REDISPOOL_STRIP:-1}" in
0 | no | false) strip_debug="" ;;
esac

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

archive="$release/libredispool.a"
map=src/ffi/redispool.map
for f in "$archive" "$map" include/redispool.h include/redispool.hpp \
    cmake/redispoolConfig.cmake.in cmake/redispoolConfigVersion.cmake.in LICENSE CHANGELOG.md; do
    if [ ! -f "$f" ]; then
        echo "error: $f is missing after the build" >&2
        exit 1
    fi
done
for tool in readelf objcopy strip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool (binutils) is needed: apt-get install binutils" >&2
        exit 1
    fi
done

work="$(mktemp -d "$target_dir/install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- the shared library, with versioned symbols -------------------------------
# rustc hands the linker a version script of its own for every cdylib (every
# export in one anonymous, unversioned node), so src/ffi/redispool.map cannot
# go through build.rs: rust-lld keeps rustc's script (the exports stay
# unversioned) and GNU ld refuses the pair ("anonymous version tag cannot be
# combined with other version tags"). The installed shared library is therefore linked here from
# the static library (the same compiled code): -u pulls in each function the
# map lists, the map versions them and hides everything else, and
# --no-undefined-version fails the link if the map names a function that no
# longer exists.
echo "== linking libredispool.so.$full with $map"
so="$work/libredispool.so.$full"
undefs=()
while read -r name; do
    undefs+=("-Wl,-u,$name")
done < <(sed -n 's/^[[:space:]]*\(pool_[a-z0-9_]*\);[[:space:]]*$/\1/p' "$map")
if ((${#undefs[@]} == 0)); then
    echo "error: $map lists no functions" >&2
    exit 1
fi
read -ra native_words <<<"$native_libs"
"${CC:-cc}" -shared -o "$so" "-Wl,-soname,libredispool.so.$major" \
    "-Wl,--version-script=$map" -Wl,--no-undefined-version -Wl,--no-undefined \
    "${undefs[@]}" "$archive" "${native_words[@]}" \
    -Wl,--gc-sections -Wl,--as-needed -Wl,-O1 -Wl,-z,relro,-z,now -Wl,-z,noexecstack \
    -Wl,--eh-frame-hdr -Wl,--build-id

soname="$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
if [ "$soname" != "libredispool.so.$major" ]; then
    echo "error: $so has SONAME '$soname', expected libredispool.so.$major" >&2
    exit 1
fi

# --- debug info ---------------------------------------------------------------
# The release profile keeps line tables (debug = 1). Installed libraries are
# stripped, as distributions ship them; the shared library's debug info goes to
# lib/debug/, where gdb finds it by build id (automatically for PREFIX=/usr,
# else with `set debug-file-directory PREFIX/lib/debug`). The static library
# also loses .llvmbc: the LLVM bitcode of Rust's standard library, used only by
# Rust's own LTO, which a C linker never reads (37 MB -> 8 MB with the debug info).
archive_out="$work/libredispool.a"
cp "$archive" "$archive_out"
debug_file=""
build_id=""
if [ -n "$strip_debug" ]; then
    echo "== stripping (debug info of the shared library kept in lib/debug/)"
    debug_file="$work/libredispool.so.$full.debug"
    objcopy --only-keep-debug "$so" "$debug_file"
    chmod 0644 "$debug_file"
    strip --strip-unneeded --remove-section=.comment "$so"
    objcopy --add-gnu-debuglink="$debug_file" "$so"
    strip --strip-debug --remove-section=.llvmbc --remove-section=.llvmcmd \
        --enable-deterministic-archives "$archive_out"
    build_id="$(readelf -n "$so" | sed -n 's/^[[:space:]]*Build ID: *\([0-9a-f]*\)$/\1/p' | head -n 1)"
fi

# --- install ----------------------------------------------------------------
echo "== installing into ${destdir:+$destdir (DESTDIR) + }${prefix:-/}"
install -d "$destdir$libdir" "$destdir$includedir" "$destdir$pkgconfigdir" \
    "$destdir$cmakedir" "$destdir$docdir"

# install(1) replaces the destination by a new file, so a running program that
# mapped the previous library is not disturbed.
install -m 0755 "$so" "$destdir$libdir/libredispool.so.$full"
ln -sfn "libredispool.so.$full" "$destdir$libdir/libredispool.so.$major"
ln -sfn "libredispool.so.$major" "$destdir$libdir/libredispool.so"
install -m 0644 "$archive_out" "$destdir$libdir/libredispool.a"
install -m 0644 include/redispool.h include/redispool.hpp "$destdir$includedir/"
install -m 0644 LICENSE CHANGELOG.md "$destdir$docdir/"

# Build-id links of earlier installs of this library would point at debug info
# that no longer matches anything: drop them.
for link in "$destdir$debugdir"/.build-id/*/*.debug; do
    if [ -L "$link" ] && [[ "$(readlink "$link")" == ../../libredispool.so.* ]]; then
        rm -f "$link"
        rmdir "$(dirname "$link")" 2>/dev/null || true
    fi
done
if [ -n "$debug_file" ]; then
    install -d "$destdir$debugdir"
    install -m 0644 "$debug_file" "$destdir$debugdir/"
    if [ -n "$build_id" ]; then
        install -d "$destdir$debugdir/.build-id/${build_id:0:2}"
        ln -sfn "../../libredispool.so.$full.debug" \
            "$destdir$debugdir/.build-id/${build_id:0:2}/${build_id:2}.debug"
    fi
fi

pc="$work/redispool.pc"
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

# The CMake package: what the static target links besides the archive, as a
# CMake list (-lpthread becomes Threads::Threads, -lfoo becomes foo).
cmake_libs=""
for word in "${native_words[@]}"; do
    case "$word" in
    -lpthread) item="Threads::Threads" ;;
    -l*) item="${word#-l}" ;;
    *) item="$word" ;;
    esac
    cmake_libs="${cmake_libs:+$cmake_libs;}$item"
done
case "$(readelf -h "$so" | sed -n 's/^[[:space:]]*Class:[[:space:]]*//p')" in
ELF32) sizeof_void_p=4 ;;
*) sizeof_void_p=8 ;;
esac
for name in redispoolConfig redispoolConfigVersion; do
    sed -e "s|@SIZEOF_VOID_P@|$sizeof_void_p|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@FULL@|$full|g" \
        -e "s|@STATIC_LIBS@|$cmake_libs|g" "cmake/$name.cmake.in" >"$work/$name.cmake"
    install -m 0644 "$work/$name.cmake" "$destdir$cmakedir/$name.cmake"
done

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
installed=("$libdir/libredispool.so.$full" "$libdir/libredispool.so.$major"
    "$libdir/libredispool.so" "$libdir/libredispool.a" "$includedir/redispool.h"
    "$includedir/redispool.hpp" "$pkgconfigdir/redispool.pc"
    "$cmakedir/redispoolConfig.cmake" "$cmakedir/redispoolConfigVersion.cmake"
    "$docdir/LICENSE" "$docdir/CHANGELOG.md")
if [ -n "$debug_file" ]; then
    installed+=("$debugdir/libredispool.so.$full.debug")
    [ -n "$build_id" ] && installed+=("$debugdir/.build-id/${build_id:0:2}/${build_id:2}.debug")
fi
for f in "${installed[@]}"; do
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
echo "  or, in CMake: find_package(redispool CONFIG REQUIRED) with -DCMAKE_PREFIX_PATH=${prefix:-/}"
