#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test srt-launcher
# (developers and CI alike; scripts/test.sh runs it first):
# the toolchain's musl targets and lint components (as rust-toolchain.toml
# lists them) and the Debian packages the tests need (a C compiler for the
# test probe, util-linux for setpriv/useradd). Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v useradd >/dev/null 2>&1 || need_apt+=(passwd)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ci-setup: missing ${need_apt[*]} and not root to install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# rustup installs a missing toolchain from rust-toolchain.toml, but does not
# add the targets it lists to a toolchain that is already installed: ask for
# them explicitly (a no-op when present).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain install "$toolchain" --profile minimal \
    --component rustfmt,clippy \
    --target x86_64-unknown-linux-musl,aarch64-unknown-linux-musl >/dev/null
