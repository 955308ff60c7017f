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
