#!/usr/bin/env bash
# Runs bubblewrap 0.12.0's own test suite against srt-launcher's bwrap mode,
# with bubblewrap 0.12.0 itself (built here from Debian trixie's source) as
# the reference, and fails if any test that passes against the reference
# does not pass against us.
#
#   scripts/bwrap-suite.sh [LAUNCHER]
#
# LAUNCHER defaults to the x86_64 release build; it is run through a
# symlink named `bwrap`, the drop-in form. The tests: tests/test-run.sh,
# test-specifying-userns.sh, test-specifying-pidns.sh, test-seccomp.py
# (needs Debian's python3-seccomp) and test-sandbox.py, each run with BWRAP
# pointing at the binary under test, as root and as an unprivileged user
# (created when missing) when this runs as root, else as the current user.
# A script that stops early (test-run.sh stops at its first failure)
# leaves its remaining tests "not reached", which counts as failed.
#
# Output: one line per test of ours (PASS, FAIL, SKIP, or REGRESSION when
# the reference passed it), then "N passed, M failed, K skipped" for ours
# and the same for the reference. The source and the reference build are
# kept in target/bwrap-suite/ (about a minute to build on 2 cores); the
# runs themselves happen in a world-readable copy under /var/tmp (the tests
# mount a tmpfs on /tmp). Needs root to install missing build tools.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
launcher=${1:-$root/target/x86_64-unknown-linux-musl/release/srt-launcher}
work=$root/target/bwrap-suite
version=0.12.0
test_user=srtl-test
scripts=(test-run.sh test-specifying-userns.sh test-specifying-pidns.sh test-seccomp.py test-sandbox.py)

say() { echo "bwrap-suite: $*" >&2; }
# shellcheck source=lib/debian.sh
. "$root/scripts/lib/debian.sh"


# bubblewrap's source from trixie, then the reference build with meson.
build_reference() {
    rm -rf "$work"
    say "fetching trixie's bubblewrap source"
    local tarball
    tarball=$(fetch_trixie_source bubblewrap "$work")
    case $tarball in
        *_"$version".orig.tar.*) ;;
        *) say "expected bubblewrap $version, trixie has $(basename "$tarball")"; exit 1 ;;
    esac
    tar -C "$work" -xf "$tarball"
    mv "$work/bubblewrap-$version" "$work/src"
    say "building bubblewrap $version (the reference)"
    (cd "$work/src" && meson setup "$work/build" -Dman=disabled -Dbash_completion=disabled \
        -Dzsh_completion=disabled -Dselinux=disabled -Dtests=true -Dpython=/usr/bin/python3 &&
        ninja -C "$work/build") >"$work/build.log" 2>&1 || {
        tail -20 "$work/build.log" >&2
        exit 1
    }
    touch "$work/.built"
}

# The unprivileged identity: `setpriv` words, or none when not root.
as_user=()
identities=(self)
if [ "$(id -u)" = 0 ]; then
    install_missing meson ninja-build gcc pkg-config libcap-dev libcap2-bin python3 python3-seccomp util-linux
    if ! id -u "$test_user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /bin/sh "$test_user" 2>/dev/null || true
    fi
    as_user=(setpriv "--reuid=$(id -u "$test_user")" "--regid=$(id -g "$test_user")" --clear-groups --)
    identities=(root user)
fi
[ -f "$work/.built" ] || build_reference
[ -x "$launcher" ] || { say "no launcher at $launcher (build it first)"; exit 1; }

# A world-readable copy of the tests, the reference and ours, off /tmp.
run_dir=$(mktemp -d /var/tmp/srtl-bwrap-suite.XXXXXX)
trap 'rm -rf "$run_dir"' EXIT
cp -a "$work/src" "$run_dir/src"
mkdir -p "$run_dir/build/tests" "$run_dir/ours"
cp "$work/build/bwrap" "$run_dir/build/bwrap"
cp "$work/build/tests/try-syscall" "$work/build/tests/test-utils" "$run_dir/build/tests/"
cp "$launcher" "$run_dir/ours/srt-launcher"
ln -s srt-launcher "$run_dir/ours/bwrap"
chmod -R a+rX "$run_dir"
chmod 755 "$run_dir"

# Runs one script with one binary as one identity; prints its TAP lines
# reduced to "STATUS NUMBER DESCRIPTION" (STATUS ok, fail or skip), then
# "END" and the script's exit status.
run_one() {
    local binary=$1 identity=$2 script=$3
    local runner=() interp=bash
    [ "$identity" = user ] && runner=("${as_user[@]}")
    [[ $script == *.py ]] && interp=/usr/bin/python3
    local out status=0
    out=$(cd "$run_dir/src" && "${runner[@]}" env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/ LANG=C.UTF-8 \
        BWRAP="$binary" G_TEST_SRCDIR="$run_dir/src" G_TEST_BUILDDIR="$run_dir/build" \
        timeout 600 "$interp" "tests/$script" 2>/dev/null) || status=$?
    # TAP: "ok 3 - name", "ok - name" (no number: numbered 0 here).
    printf '%s\n' "$out" | sed -n -E \
        -e 's/^ok( ([0-9]+))?( - )?(.*# SKIP.*)$/skip \2 \4/p' \
        -e '/# SKIP/!s/^ok( ([0-9]+))?( - )?(.*)$/ok \2 \4/p' \
        -e 's/^not ok( ([0-9]+))?( - )?(.*)$/fail \2 \4/p' \
        -e 's/^1\.\.0 # SKIP(.*)$/skip 0 whole file:\1/p' |
        sed -E 's/^(ok|fail|skip)  /\1 0 /'
    echo "END $status"
}

declare -A reference
ours_pass=0 ours_fail=0 ours_skip=0 ref_pass=0 ref_fail=0 ref_skip=0 regressions=0
for identity in "${identities[@]}"; do
    for script in "${scripts[@]}"; do
        # The reference first: what passes there is what must pass here.
        reference=()
        ref_order=()
        while read -r status number rest; do
            if [ "$status" = END ]; then continue; fi
            # A file-level result without a number keys on its position.
            key=${number:-0}
            reference[$key]=$status
            ref_order+=("$key")
            case $status in ok) ((++ref_pass)) ;; fail) ((++ref_fail)) ;; skip) ((++ref_skip)) ;; esac
        done < <(run_one "$run_dir/build/bwrap" "$identity" "$script")

        declare -A seen=()
        while read -r status number rest; do
            if [ "$status" = END ]; then continue; fi
            key=${number:-0}
            seen[$key]=1
            want=${reference[$key]:-}
            case $status in
                ok) label=PASS; ((++ours_pass)) ;;
                skip) label=SKIP; ((++ours_skip)) ;;
                *) label=FAIL; ((++ours_fail))
                    if [ "$want" = ok ]; then label=REGRESSION; ((++regressions)); fi ;;
            esac
            echo "$label $identity $script $key $rest"
        done < <(run_one "$run_dir/ours/bwrap" "$identity" "$script")
        # What the reference reached and we did not (a script that stopped).
        for key in "${ref_order[@]}"; do
            [ -n "${seen[$key]:-}" ] && continue
            ((++ours_fail))
            if [ "${reference[$key]}" = ok ]; then
                echo "REGRESSION $identity $script $key (not reached)"
                ((++regressions))
            else
                echo "FAIL $identity $script $key (not reached)"
            fi
        done
        unset seen
    done
done

echo "srt-launcher: $ours_pass passed, $ours_fail failed, $ours_skip skipped"
echo "bubblewrap $version: $ref_pass passed, $ref_fail failed, $ref_skip skipped"
if ((regressions)); then
    echo "bwrap-suite: $regressions test(s) pass against bubblewrap $version but not against srt-launcher" >&2
    exit 1
fi
