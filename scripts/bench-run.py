#!/usr/bin/env python3
"""Start-up benchmark of `srt-launcher run` against bubblewrap, side by side.

Runs each case alternately (launcher, bwrap, launcher, ...) so both see the
same machine noise, and prints medians and the launcher/bwrap ratio:

  * basic:  --ro-bind / / --proc /proc --dev /dev -- /bin/true
  * masks:  the same plus N `--ro-bind /dev/null FILE` masks (N = 2,000)
  * scale:  the launcher alone with 500 / 2,000 / 5,000 masks, to show the
            cost grows linearly with the number of mount operations
  * deny:   2,000 deny paths in a writable bind, half existing, half
            missing: `--mask` against the SDK's emulation under bwrap
            (create an empty file for each missing path, `--ro-bind
            /dev/null P` for all, delete the created files afterwards),
            the share of the launcher's run spent removing its stubs, and
            the launcher alone with 500 / 2,000 / 5,000 deny paths
  * bwrap mode: the same bubblewrap argv (--unshare-pid --new-session
            --die-with-parent, the basic mounts, N /dev/null masks) run by
            `srt-launcher bwrap`, by bubblewrap 0.12.0 (the build
            scripts/bwrap-suite.sh makes) and by the system's bwrap
            (Debian 12: 0.8.0), at 0, 500 and 2,000 masks; ratios are
            against 0.12.0

Usage: scripts/bench-run.py [--launcher PATH] [--bwrap PATH] [--runs N]
                            [--baseline PATH] [--bwrap012 PATH]
                            [--basic-only | --deny-only | --bwrap-mode-only]
                            [--dir DIR]

--baseline adds another launcher build (the previous release, say) to the
basic case's alternation, so a change's cost is read as the difference of
two ratios measured in the same run. --basic-only skips the mask cases.
Needs bwrap (Debian: apt-get install bubblewrap). Runs as the invoking
user; unprivileged, both tools take a user namespace.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BASE = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def masks(directory, count):
    """`count` files to mask, created once, and the mask options for them."""
    opts = []
    for i in range(count):
        path = os.path.join(directory, f"f{i}")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("secret\n")
        opts += ["--ro-bind", "/dev/null", path]
    return opts


def launcher_argv(launcher, extra):
    return [launcher, "run", *BASE, *extra, "--", "/bin/true"]


def bwrap_argv(bwrap, extra):
    user = ["--unshare-user"] if os.geteuid() != 0 else []
    return [bwrap, *user, "--unshare-pid", "--new-session", "--die-with-parent",
            *BASE, *extra, "/bin/true"]


def deny_paths(directory, count):
    """A writable directory with count/2 existing files and count/2 missing
    names; returns (dir, existing paths, missing paths)."""
    d = os.path.join(directory, f"deny-{count}")
    os.makedirs(d, exist_ok=True)
    existing, missing = [], []
    for i in range(count // 2):
        path = os.path.join(d, f"e{i}")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("secret\n")
        existing.append(path)
        missing.append(os.path.join(d, f"m{i}"))
    return d, existing, missing


def mask_argv(launcher, d, paths):
    opts = ["--bind", d, d]
    for p in paths:
        opts += ["--mask", p]
    return launcher_argv(launcher, opts)


def timed_emulation(bwrap, d, existing, missing):
    """The SDK's way under bwrap: create the missing files, mask them all
    with /dev/null, delete what it created; timed as one."""
    start = time.perf_counter()
    for p in missing:
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
    opts = ["--bind", d, d]
    for p in existing + missing:
        opts += ["--ro-bind", "/dev/null", p]
    subprocess.run(bwrap_argv(bwrap, opts), check=True, stdin=subprocess.DEVNULL)
    for p in missing:
        os.unlink(p)
    return time.perf_counter() - start


def cleanup_share(argv):
    """Runs argv with the launcher's trace on; returns (total seconds,
    seconds spent in the final stub collection)."""
    env = dict(os.environ, SRT_LAUNCHER_LOG="1")
    start = time.perf_counter()
    out = subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, env=env,
                         stderr=subprocess.PIPE, text=True).stderr
    total = time.perf_counter() - start
    spent = [int(line.rsplit("(", 1)[1].split()[0]) for line in out.splitlines()
             if "record(s) collected" in line]
    return total, spent[-1] / 1e6


def deny_case(launcher, bwrap, tmp, runs):
    d, existing, missing = deny_paths(tmp, 2000)
    paths = existing + missing
    launcher_times, emulation_times, shares = [], [], []
    timed(mask_argv(launcher, d, paths))  # warm-up
    for _ in range(runs):
        # Both sides create and remove a thousand files: each starts after
        # the last one's writeback is done, so neither is billed for the
        # other's (untimed).
        os.sync()
        launcher_times.append(timed(mask_argv(launcher, d, paths)))
        os.sync()
        emulation_times.append(timed_emulation(bwrap, d, existing, missing))
        os.sync()
        total, spent = cleanup_share(mask_argv(launcher, d, paths))
        shares.append(spent / total)
    lm, em = statistics.median(launcher_times), statistics.median(emulation_times)
    print(f"{'2,000 deny paths (--mask)':<26}{ms(lm):>14}{ms(em):>14}{lm / em:>9.3f}"
          f"   ({runs} runs; bwrap column: the SDK's emulation)")
    print(f"{'  stub clean-up share':<26}{statistics.median(shares) * 100:>13.1f}%")
    leftover = sorted(set(os.listdir(d)) - {os.path.basename(p) for p in existing})
    if leftover:
        sys.exit(f"bench-run: stubs left behind: {leftover[:5]}")
    print(f"\n{'deny-path scaling':<26}{'median':>14}{'per path':>14}")
    base = statistics.median(side_by_side(runs, {"l": launcher_argv(launcher, [])})["l"])
    for count in (500, 2000, 5000):
        d, existing, missing = deny_paths(tmp, count)
        t = statistics.median(
            side_by_side(runs, {"l": mask_argv(launcher, d, existing + missing)})["l"])
        print(f"{f'{count:,} deny paths':<26}{ms(t):>14}{(t - base) / count * 1e6:>11.1f} us")


def bwrap_mode_case(launcher, bwrap012, bwrap_system, tmp, runs):
    """The same bubblewrap argv through three binaries, at 0/500/2,000
    masks; ratios against bubblewrap 0.12.0."""
    names = ["srt-launcher bwrap", "bubblewrap 0.12.0", "system bwrap"]
    print(f"\n{'bwrap mode':<22}" + "".join(f"{n:>20}" for n in names)
          + f"{'ours/0.12':>11}{'0.8/0.12':>10}")
    for count in (0, 500, 2000):
        opts = masks(tmp, count)
        n = runs if count == 0 else max(3, runs // 4)
        samples = side_by_side(n, {
            "ours": [launcher, "bwrap", *bwrap_argv(launcher, opts)[1:]],
            "012": bwrap_argv(bwrap012, opts),
            "system": bwrap_argv(bwrap_system, opts),
        })
        ours, ref, system = (statistics.median(samples[k]) for k in ("ours", "012", "system"))
        print(f"{f'{count:,} masks ({n} runs)':<22}{ms(ours):>20}{ms(ref):>20}{ms(system):>20}"
              f"{ours / ref:>11.3f}{system / ref:>10.3f}")


def side_by_side(runs, cases):
    """cases: {name: argv}; returns {name: [seconds]} with runs interleaved."""
    samples = {name: [] for name in cases}
    for argv in cases.values():  # warm-up: page cache, dentries
        timed(argv)
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(timed(argv))
    return samples


def ms(seconds):
    return f"{seconds * 1000:8.2f} ms"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_launcher = os.path.join(
        here, "..", "target", "x86_64-unknown-linux-musl", "release", "srt-launcher")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launcher", default=default_launcher)
    ap.add_argument("--bwrap", default=shutil.which("bwrap"))
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--baseline", help="another launcher build to time in the basic case")
    ap.add_argument("--basic-only", action="store_true", help="skip the mask cases")
    ap.add_argument("--deny-only", action="store_true", help="only the deny-path case")
    ap.add_argument("--bwrap012", default=os.path.join(
        here, "..", "target", "bwrap-suite", "build", "bwrap"),
        help="bubblewrap 0.12.0 (scripts/bwrap-suite.sh builds it)")
    ap.add_argument("--bwrap-mode-only", action="store_true", help="only the bwrap mode case")
    ap.add_argument("--dir", help="where the benchmark's files go (default: the system's "
                    "temporary directory); e.g. /dev/shm to take the disk out of the deny case")
    args = ap.parse_args()
    if not args.bwrap:
        sys.exit("bench-run: bwrap not found (apt-get install bubblewrap)")
    launcher = os.path.abspath(args.launcher)
    bwrap_version = subprocess.run([args.bwrap, "--version"], capture_output=True,
                                   text=True).stdout.strip()
    print(f"launcher: {launcher}\nanchor:   {bwrap_version}\n"
          f"uid {os.geteuid()}, {os.cpu_count()} cpus, medians of {args.runs} runs\n")

    have_012 = os.access(args.bwrap012, os.X_OK)
    with tempfile.TemporaryDirectory(prefix="srtl-bench-", dir=args.dir) as tmp:
        if args.bwrap_mode_only:
            if not have_012:
                sys.exit("bench-run: no bubblewrap 0.12.0 (run scripts/bwrap-suite.sh first)")
            bwrap_mode_case(launcher, os.path.abspath(args.bwrap012), args.bwrap, tmp, args.runs)
            return
        print(f"{'case':<26}{'srt-launcher':>14}{'bwrap':>14}{'ratio':>9}")
        cases = {
            "launcher": launcher_argv(launcher, []),
            "bwrap": bwrap_argv(args.bwrap, []),
        }
        if args.baseline:
            cases["baseline"] = launcher_argv(os.path.abspath(args.baseline), [])
        basic = side_by_side(args.runs, cases)
        lm, bm = (statistics.median(basic[k]) for k in ("launcher", "bwrap"))
        print(f"{'basic':<26}{ms(lm):>14}{ms(bm):>14}{lm / bm:>9.3f}")
        if args.baseline:
            om = statistics.median(basic["baseline"])
            print(f"{'basic, baseline build':<26}{ms(om):>14}{ms(bm):>14}{om / bm:>9.3f}"
                  f"   (ratio change {(lm - om) / bm:+.3f})")
        if args.basic_only:
            return

        heavy_runs = max(3, args.runs // 4)
        if args.deny_only:
            deny_case(launcher, args.bwrap, tmp, heavy_runs)
            return
        m2000 = masks(tmp, 2000)
        heavy = side_by_side(heavy_runs, {
            "launcher": launcher_argv(launcher, m2000),
            "bwrap": bwrap_argv(args.bwrap, m2000),
        })
        lm, bm = (statistics.median(heavy[k]) for k in ("launcher", "bwrap"))
        print(f"{'2,000 /dev/null masks':<26}{ms(lm):>14}{ms(bm):>14}{lm / bm:>9.3f}"
              f"   ({heavy_runs} runs)")

        print(f"\n{'launcher scaling':<26}{'median':>14}{'per mask':>14}")
        base = statistics.median(basic["launcher"])
        for count in (500, 2000, 5000):
            opts = masks(tmp, count)
            t = statistics.median(side_by_side(args.runs, {"l": launcher_argv(launcher, opts)})["l"])
            print(f"{f'{count:,} masks':<26}{ms(t):>14}{(t - base) / count * 1e6:>11.1f} us")
        print()
        deny_case(launcher, args.bwrap, tmp, heavy_runs)
        if have_012:
            bwrap_mode_case(launcher, os.path.abspath(args.bwrap012), args.bwrap, tmp, args.runs)
        else:
            print("\n(bwrap mode case skipped: run scripts/bwrap-suite.sh to build bubblewrap 0.12.0)")


if __name__ == "__main__":
    main()
