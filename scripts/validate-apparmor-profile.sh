#!/usr/bin/env bash
# Compiles the profile `srt-launcher check --apparmor-profile` prints with
# AppArmor 4's own parser, built from Debian trixie's apparmor source
# package: Debian 12's apparmor_parser (3.0) does not know the `userns`
# rule, and a profile that does not compile is useless to the user it is
# meant to unblock.
#
#   scripts/validate-apparmor-profile.sh [LAUNCHER]
#
# LAUNCHER defaults to the x86_64 release build. Three compilations, each
# must end as stated:
#   1. the generated profile: compiles;
#   2. the reference, Ubuntu's bwrap-userns-restrict from the same source:
#      compiles (the parser setup is sound);
#   3. the generated profile with its userns rule misspelt: is rejected
#      (the parser really checks).
# The parser is built once into target/apparmor-parser/ (about a minute on
# 2 cores) and reused. Needs root to install the build tools when missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
launcher=${1:-$root/target/x86_64-unknown-linux-musl/release/srt-launcher}
work=$root/target/apparmor-parser
parser=$work/apparmor_parser

say() { echo "validate-apparmor-profile: $*"; }
# shellcheck source=lib/debian.sh
. "$root/scripts/lib/debian.sh"

build_parser() {
    install_missing bison flex autoconf automake libtool autoconf-archive g++ make pkg-config gettext
    rm -rf "$work"
    mkdir -p "$work/src"
    say "fetching trixie's apparmor source"
    local tarball
    tarball=$(fetch_trixie_source apparmor "$work")
    tar -C "$work/src" -xf "$tarball"
    local tree
    tree=$(echo "$work"/src/apparmor-*/)
    say "building $(basename "$tree")'s parser"
    (cd "$tree/libraries/libapparmor" && sh autogen.sh &&
        ./configure --without-python --without-perl --without-ruby --disable-man-pages &&
        make -j"$(nproc)") >"$work/build.log" 2>&1
    make -C "$tree/parser" -j"$(nproc)" apparmor_parser >>"$work/build.log" 2>&1
    ln -sfn "$tree" "$work/tree"
    cp "$tree/parser/apparmor_parser" "$parser"
}

[ -x "$parser" ] && [ -d "$work/tree" ] || build_parser
tree=$work/tree

# No AppArmor in this kernel: compile against a features set that has the
# userns rule (the parser drops rules the features do not list).
compile() {
    "$parser" --config-file=/dev/null --quiet -Q -K -I "$tree/profiles/apparmor.d" \
        --features-file "$tree/parser/tst/features_files/features.extended-perms-policydb" \
        -o /dev/null "$1"
}

generated=$work/generated.profile
"$launcher" check --apparmor-profile >"$generated"
grep -q '^  allow userns,$' "$generated"

compile "$generated" || { say "FAIL: the generated profile does not compile"; exit 1; }
say "ok: the generated profile compiles ($("$parser" --config-file=/dev/null --version | head -1))"

compile "$tree/profiles/apparmor/profiles/extras/bwrap-userns-restrict" ||
    { say "FAIL: the reference profile does not compile: the setup is broken"; exit 1; }
say "ok: the reference bwrap-userns-restrict compiles"

broken=$work/broken.profile
sed 's/^  allow userns,$/  allow usernz,/' "$generated" >"$broken"
if compile "$broken" 2>/dev/null; then
    say "FAIL: a misspelt rule was accepted: the parser checks nothing"
    exit 1
fi
say "ok: a misspelt rule is rejected"
