#!/usr/bin/env python3
"""Start-up benchmark of `run --isolation landlock` against namespace mode.

Landlock mode has no mount tree: its cost is the snapshot subtraction,
one rule per entry of each directory that holds a deny path. The anchor
is namespace mode on the same argv, run alternately (namespaces,
landlock, namespaces, ...) so both see the same machine noise; medians
and the landlock/namespaces ratio are printed:

  * basic:  --seccomp-unix-block --ro-bind / / --tmpfs /tmp --proc /proc
            --dev /dev -- /bin/true (target: ratio <= 1), and the same
            under --isolation auto where namespaces work (the rehearsal's
            cost)
  * deny:   the SDK's real profile: the basic options, a writable project
            directory, and 2,000 deny paths in it, half existing, half
            missing, spread over 40 subdirectories (target: ratio <= 2)
  * scale:  landlock mode alone with 500 / 2,000 / 5,000 deny paths, the
            cost per path over the basic run, which stays flat when the
            cost is linear

Usage: scripts/bench-landlock.py [--launcher PATH] [--runs N] [--dir DIR]

Runs as the invoking user; unprivileged, namespace mode takes a user
namespace. Needs a kernel with Landlock ABI 3 or later.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BASE = ["--seccomp-unix-block", "--ro-bind", "/", "/", "--tmpfs", "/tmp",
        "--proc", "/proc", "--dev", "/dev"]
SUBDIRS = 40


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_argv(launcher, mode, extra):
    return [launcher, "run", "--isolation", mode, *BASE, *extra, "--", "/bin/true"]


def project(directory, count):
    """A project directory with count/2 existing secret files and count/2
    missing names, spread over SUBDIRS subdirectories, plus ordinary files
    beside them; returns the options that bind it and deny them all."""
    root = os.path.join(directory, f"project-{count}")
    opts = ["--bind", root, root]
    for i in range(count // 2):
        sub = os.path.join(root, f"pkg{i % SUBDIRS}")
        os.makedirs(sub, exist_ok=True)
        secret = os.path.join(sub, f"secret{i}.env")
        if not os.path.exists(secret):
            with open(secret, "w") as f:
                f.write("secret\n")
            with open(os.path.join(sub, f"code{i}.py"), "w") as f:
                f.write("pass\n")
        opts += ["--mask", secret, "--mask", os.path.join(sub, f"missing{i}.env")]
    return opts


def side_by_side(runs, cases):
    """cases: {name: argv}; returns {name: [seconds]} with runs interleaved."""
    samples = {name: [] for name in cases}
    for argv in cases.values():  # warm-up, and a failing argv stops here
        timed(argv)
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(timed(argv))
    return {name: statistics.median(times) for name, times in samples.items()}


def ms(seconds):
    return f"{seconds * 1000:8.2f} ms"


def compare(title, runs, launcher, extra, modes=("namespaces", "landlock")):
    medians = side_by_side(runs, {m: run_argv(launcher, m, extra) for m in modes})
    anchor = medians["namespaces"]
    for mode in modes[1:]:
        print(f"{title:<34}{ms(anchor):>14}{ms(medians[mode]):>14}"
              f"{medians[mode] / anchor:>10.3f}  ({mode})")
    return medians


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_launcher = os.path.join(
        here, "..", "target", "x86_64-unknown-linux-musl", "release", "srt-launcher")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launcher", default=default_launcher)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--dir", help="where the project goes (default: the system's "
                    "temporary directory)")
    args = ap.parse_args()
    launcher = os.path.abspath(args.launcher)
    if not os.access(launcher, os.X_OK):
        sys.exit(f"bench-landlock: no launcher at {launcher} (scripts/build.sh builds it)")
    with tempfile.TemporaryDirectory(prefix="srtl-bench-landlock-", dir=args.dir) as tmp:
        os.chmod(tmp, 0o755)
        print(f"runs: {args.runs} per case, alternating; uid {os.geteuid()}")
        print(f"\n{'case':<34}{'namespaces':>14}{'mode':>14}{'ratio':>10}")
        basic = compare("basic", args.runs, launcher, [],
                        ("namespaces", "landlock", "auto"))
        opts = project(tmp, 2000)
        compare("2,000 deny paths, half missing", max(3, args.runs // 2), launcher, opts)
        print(f"\n{'landlock mode scaling':<34}{'median':>14}{'per path':>14}")
        for count in (500, 2000, 5000):
            opts = project(tmp, count)
            t = side_by_side(max(3, args.runs // 2),
                             {"l": run_argv(launcher, "landlock", opts)})["l"]
            per_path = (t - basic["landlock"]) / count * 1e6
            print(f"{f'{count:,} deny paths':<34}{ms(t):>14}{per_path:>11.1f} us")


if __name__ == "__main__":
    main()
