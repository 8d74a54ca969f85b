#!/usr/bin/env bash
# Runs Flatpak's installed tests (Debian's flatpak-tests, Flatpak 1.14)
# twice: with Debian's bubblewrap, the reference, and with srt-launcher's
# bwrap mode through FLATPAK_BWRAP. Fails when a test that passes with the
# reference does not pass with us: Flatpak is bwrap mode's largest caller.
#
#   scripts/flatpak-suite.sh [LAUNCHER]
#
# LAUNCHER defaults to the x86_64 release build; it is run through a
# symlink named `bwrap` in a world-readable directory. Needs root: it
# installs flatpak, flatpak-tests and gnome-desktop-testing when missing,
# and runs the tests as an unprivileged user (created when missing) in a
# private mount namespace where /dev/fuse is a 0666 copy of the host's
# node (several tests mount a FUSE filesystem, and the host's node is
# often root's alone; the host's node is left as it is).
#
# Output: one line per test (PASS, FAIL, SKIP, or REGRESSION when the
# reference passed it), then "N passed, M failed, K skipped" for ours and
# for the reference. Logs go to target/flatpak-suite/. About ten minutes
# on 2 cores: the tests are run 2 at a time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
launcher=${1:-$root/target/x86_64-unknown-linux-musl/release/srt-launcher}
work=$root/target/flatpak-suite
test_user=srtl-test
jobs=2

say() { echo "flatpak-suite: $*" >&2; }
# shellcheck source=lib/debian.sh
. "$root/scripts/lib/debian.sh"

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (installs packages, makes a private /dev/fuse); skipped"
    exit 1
fi
[ -x "$launcher" ] || { say "no launcher at $launcher (run scripts/build.sh)"; exit 1; }
install_missing flatpak flatpak-tests gnome-desktop-testing bubblewrap fuse3
id "$test_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$test_user"

# A world-readable place outside /tmp (the tests use /tmp themselves):
# the launcher behind a `bwrap` symlink, and a home for each run.
rm -rf "$work"
mkdir -p "$work"
shared=$(mktemp -d /var/tmp/srtl-flatpak-XXXXXX)
trap 'rm -rf "$shared"' EXIT
chmod 0755 "$shared"
cp "$launcher" "$shared/srt-launcher"
chmod 0755 "$shared/srt-launcher"
ln -s srt-launcher "$shared/bwrap"

# run_suite NAME BWRAP: the whole suite as the test user, with FLATPAK_BWRAP
# set; the runner's per-test lines go to $work/NAME.log.
run_suite() {
    local name=$1 bwrap=$2 home=$shared/home-$1
    mkdir -p "$home"
    chown "$test_user" "$home"
    say "running Flatpak's tests with $name ($bwrap)"
    # A private mount namespace: a 0666 copy of /dev/fuse bound over the
    # node there only.
    local major="" minor=""
    [ -c /dev/fuse ] && read -r major minor < <(stat -c '%t %T' /dev/fuse)
    unshare --mount --propagation private sh -euc '
        dir=$1 major=$2 minor=$3
        shift 3
        if [ -n "$major" ]; then
            rm -f "$dir/fuse"
            mknod -m 0666 "$dir/fuse" c "$((0x$major))" "$((0x$minor))"
            mount --bind "$dir/fuse" /dev/fuse
        fi
        exec "$@"' sh "$shared" "$major" "$minor" \
        setpriv --reuid="$test_user" --regid="$test_user" --clear-groups \
        env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" LANG=C.UTF-8 \
        FLATPAK_BWRAP="$bwrap" \
        gnome-desktop-testing-runner --parallel="$jobs" --timeout=600 Flatpak \
        >"$work/$name.log" 2>&1 || true
}

# The verdicts of a runner log: "STATUS NAME" per test, once each (the
# runner may report a failure twice; a reason may follow the name).
verdicts() {
    sed -n 's/^\(PASS\|FAIL\|SKIP\|SKIPPED\|ERROR\|TIMEOUT\): Flatpak\/\([^ ]*\).*$/\1 \2/p' "$1" |
        sed 's/^SKIPPED /SKIP /; s/^\(ERROR\|TIMEOUT\) /FAIL /' | LC_ALL=C sort -u -k2,2
}

run_suite reference /usr/bin/bwrap
run_suite srt-launcher "$shared/bwrap"

verdicts "$work/reference.log" >"$work/reference.verdicts"
verdicts "$work/srt-launcher.log" >"$work/srt-launcher.verdicts"
total=$(find /usr/share/installed-tests/Flatpak -name '*.test' | wc -l)
if [ "$(wc -l <"$work/reference.verdicts")" -ne "$total" ]; then
    say "the reference run reported $(wc -l <"$work/reference.verdicts") of $total tests; see $work/reference.log"
    exit 1
fi

regressions=0
while read -r status name; do
    ref=$(awk -v n="$name" '$2 == n { print $1 }' "$work/reference.verdicts")
    ours=$(awk -v n="$name" '$2 == n { print $1 }' "$work/srt-launcher.verdicts")
    ours=${ours:-FAIL}
    if [ "$ref" = PASS ] && [ "$ours" != PASS ]; then
        echo "REGRESSION $name"
        regressions=$((regressions + 1))
    else
        echo "$ours $name"
    fi
done <"$work/reference.verdicts"

count() { awk -v s="$2" '$1 == s' "$1" | wc -l; }
for name in srt-launcher reference; do
    f=$work/$name.verdicts
    echo "$name: $(count "$f" PASS) passed, $(count "$f" FAIL) failed, $(count "$f" SKIP) skipped"
done
if [ "$regressions" -gt 0 ]; then
    say "$regressions test(s) pass with Debian's bwrap but not with srt-launcher; logs in $work"
    exit 1
fi
