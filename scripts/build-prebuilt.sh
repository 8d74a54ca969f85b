#!/usr/bin/env bash
# Builds the binaries a host SDK vendors, reproducibly:
#   vendor-prebuilt/x64/srt-launcher    x86_64-unknown-linux-musl
#   vendor-prebuilt/arm64/srt-launcher  aarch64-unknown-linux-musl
# both static, non-PIE and stripped, plus vendor-prebuilt/SHA256SUMS and
# vendor-prebuilt/MANIFEST (crate version, toolchain, targets, source hash).
#
#   scripts/build-prebuilt.sh           build and write vendor-prebuilt/
#   scripts/build-prebuilt.sh --check   rebuild into a temporary directory
#                                       and compare byte for byte
#
# Reproducible: no timestamps go into the binaries, and every absolute path
# a build could embed (this checkout, CARGO_HOME, the target directory) is
# remapped to a fixed name, so two builds of the same sources with the same
# toolchain are identical wherever they run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out_dir=vendor-prebuilt
sources=(src bpf build.rs Cargo.toml Cargo.lock rust-toolchain.toml .cargo/config.toml)
targets=(x64:x86_64-unknown-linux-musl arm64:aarch64-unknown-linux-musl)

# The same hash build.rs computes for --version.
source_hash() {
    find "${sources[@]}" -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}

# build_into DIR TARGET_DIR: DIR/{x64,arm64}/srt-launcher
build_into() {
    local dest=$1 target_dir=$2 name triple
    local cargo_home=${CARGO_HOME:-$HOME/.cargo}
    for pair in "${targets[@]}"; do
        name=${pair%%:*}
        triple=${pair#*:}
        # RUSTFLAGS replaces .cargo/config.toml's rustflags: repeat them.
        RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static \
--remap-path-prefix=$root=/srt-launcher --remap-path-prefix=$cargo_home=/cargo \
--remap-path-prefix=$target_dir=/target" \
        SOURCE_DATE_EPOCH=0 \
            cargo build --quiet --release --locked --target "$triple" --target-dir "$target_dir"
        mkdir -p "$dest/$name"
        cp "$target_dir/$triple/release/srt-launcher" "$dest/$name/srt-launcher"
    done
}

if [ "${1:-}" = "--check" ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    build_into "$scratch/out" "$scratch/target"
    status=0
    for pair in "${targets[@]}"; do
        name=${pair%%:*}
        if cmp -s "$scratch/out/$name/srt-launcher" "$out_dir/$name/srt-launcher"; then
            echo "build-prebuilt: $name: rebuilt byte for byte identical"
        else
            echo "build-prebuilt: $name: a rebuild differs from $out_dir/$name/srt-launcher" >&2
            status=1
        fi
    done
    exit $status
fi

build_into "$out_dir" "$root/target/prebuilt"
(cd "$out_dir" && sha256sum x64/srt-launcher arm64/srt-launcher > SHA256SUMS)
{
    echo "crate: srt-launcher $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
    echo "toolchain: $(rustc --version)"
    echo "targets: x64=x86_64-unknown-linux-musl arm64=aarch64-unknown-linux-musl"
    echo "sources: ${sources[*]}"
    echo "source-sha256: $(source_hash)"
} > "$out_dir/MANIFEST"
for pair in "${targets[@]}"; do
    name=${pair%%:*}
    printf 'build-prebuilt: %-24s %8d bytes\n' "$out_dir/$name/srt-launcher" "$(stat -c %s "$out_dir/$name/srt-launcher")"
done
cat "$out_dir/MANIFEST"
