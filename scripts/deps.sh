# shellcheck shell=bash
# Sourced by scripts/example.sh and scripts/test.sh: installs what is missing on
# a fresh Debian/Ubuntu machine and makes sure cargo is reachable.

# install_missing "COMMAND:PACKAGE[ PACKAGE...]"... installs the packages of
# each COMMAND not on PATH. Nothing is installed (and apt is not touched) when
# every command is present.
install_missing() {
    local want more pkgs=()
    for want in "$@"; do
        if ! command -v "${want%%:*}" >/dev/null 2>&1; then
            read -ra more <<<"${want#*:}"
            pkgs+=("${more[@]}")
        fi
    done
    ((${#pkgs[@]} == 0)) && return 0
    install_packages "${pkgs[@]}"
}

# install_packages PACKAGE...: apt-get installs them (as root, or through sudo).
install_packages() {
    local pkgs=("$@")
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: missing ${pkgs[*]}; run as root or install them yourself" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing ${pkgs[*]} and no apt-get to install them with" >&2
        return 1
    fi
    echo "installing ${pkgs[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# require_cargo: finds cargo (rustup installs it under ~/.cargo/bin, which a
# non-login shell may not have on PATH) or explains how to get it.
require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found. Install Rust (https://rustup.rs):" >&2
        echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y" >&2
        return 1
    fi
}

# install_go_redis_v5: go-redis v5's source (Debian's golang-gopkg-redis.v5-dev), the
# go-redis baseline of the bench suite. Not fatal: the suite leaves that baseline out,
# with a note, when the package cannot be had.
install_go_redis_v5() {
    [ -f /usr/share/gocode/src/gopkg.in/redis.v5/internal/pool/pool.go ] && return 0
    install_packages golang-gopkg-redis.v5-dev ||
        echo "warning: golang-gopkg-redis.v5-dev not installed: no go-redis baseline" >&2
}

# go_minor GO: the minor version of the Go toolchain GO (21 for go1.21.13); fails
# when GO does not run.
go_minor() {
    local v
    v=$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) || return 1
    v=${v#go1.}
    v=${v%%[!0-9]*}
    [ -n "$v" ] && printf '%s\n' "$v"
}

# install_go: puts a Go toolchain of at least 1.21 (the Go binding's go.mod) first
# on PATH, installing one when needed: the official tarball's /usr/local/go if
# present, else a go on PATH, else /usr/lib/go-1.2x from Debian's golang-1.2x
# packages. Debian 12's golang-go is 1.19, too old: there golang-1.22 comes from
# bookworm-backports, whose apt source this adds (backports have priority 100,
# so nothing else is upgraded from them).
install_go() {
    local min=21 dir minor
    for dir in /usr/local/go/bin "" /usr/lib/go-1.2[1-9]/bin /usr/lib/go-1.[3-9][0-9]/bin; do
        if [ -z "$dir" ]; then
            command -v go >/dev/null 2>&1 || continue
            minor=$(go_minor go) || continue
        else
            [ -x "$dir/go" ] || continue
            minor=$(go_minor "$dir/go") || continue
        fi
        if [ "$minor" -ge "$min" ]; then
            [ -n "$dir" ] && export PATH="$dir:$PATH"
            return 0
        fi
    done
    local pkg=golang-1.22
    if [ -r /etc/os-release ] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release &&
        ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "adding bookworm-backports to apt's sources for $pkg (Debian 12's golang-go is 1.19)"
        local sudo=()
        [ "$(id -u)" -ne 0 ] && sudo=(sudo)
        echo "deb http://deb.debian.org/debian bookworm-backports main" |
            "${sudo[@]}" tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    install_packages "$pkg" || return 1
    export PATH="/usr/lib/go-${pkg#golang-}/bin:$PATH"
    if ! minor=$(go_minor go) || [ "$minor" -lt "$min" ]; then
        echo "error: no Go 1.$min or later after installing $pkg" >&2
        return 1
    fi
}
