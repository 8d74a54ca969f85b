#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test srt-launcher
# (developers and CI alike; scripts/test.sh runs it first):
# the toolchain's musl targets and lint components (as rust-toolchain.toml
# lists them) and the Debian packages the tests need (a C compiler for the
# test probe, useradd, python3 for the in-sandbox network client, qemu-user
# for the arm64 prebuilt, ssh-agent). Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v useradd >/dev/null 2>&1 || need_apt+=(passwd)
# The system interpreter by its path: the tests run tests/helpers/client.py
# inside sandboxes as an unprivileged user, where a python3 under some
# user's home (pyenv, a venv) would not be readable.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
# The arm64 prebuilt's smoke runs (scripts/verify-prebuilt.py).
command -v qemu-aarch64 >/dev/null 2>&1 || need_apt+=(qemu-user)
# A real ssh-agent and ssh-add for --allow-unix's test (SPEC §2.9); unshare
# and mount (util-linux, mount) for its way-out socket by inode.
command -v ssh-agent >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v mount >/dev/null 2>&1 || need_apt+=(mount)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "setup: not root, so not installing ${need_apt[*]}; what needs them will say so" >&2
    fi
fi

# rustup installs a missing toolchain from rust-toolchain.toml, but does not
# add the targets it lists to a toolchain that is already installed: ask for
# them explicitly (a no-op when present).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain install "$toolchain" --profile minimal \
    --component rustfmt,clippy \
    --target x86_64-unknown-linux-musl,aarch64-unknown-linux-musl >/dev/null
