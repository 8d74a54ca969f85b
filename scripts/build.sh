#!/usr/bin/env bash
# Builds the release binaries for x86_64 and aarch64 (musl, static) and
# checks that each is a static executable of the right machine type.
set -euo pipefail
cd "$(dirname "$0")/.."

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    cargo build --release --locked --target "$target"
    bin="target/$target/release/srt-launcher"
    case "$target" in
        x86_64-*) machine="Advanced Micro Devices X86-64" ;;
        aarch64-*) machine="AArch64" ;;
    esac
    header=$(od -An -tx1 -N20 "$bin" | tr -d ' \n')
    # ELF magic, then e_machine at offset 18 (0x3e x86-64, 0xb7 aarch64).
    case "$target:${header:36:4}" in
        x86_64-*:3e00 | aarch64-*:b700) ;;
        *) echo "build: $bin is not an ELF for $machine" >&2; exit 1 ;;
    esac
    if grep -aq "ld-linux\|ld-musl" "$bin"; then
        echo "build: $bin names a dynamic loader; it must be static" >&2
        exit 1
    fi
    printf '%-28s %8d bytes  %s\n' "$target" "$(stat -c %s "$bin")" "$bin"
done
