#!/usr/bin/env python3
"""What `--allow-unix` costs (SPEC §2.9), measured side by side in one run.

  * connect: the median time of one connect() to a host unix socket from
    inside a sandbox, through the broker (`--allow-unix SOCKET`) and direct
    (the same sandbox without it, where nothing mediates the call); the
    broker's extra cost is the difference. Target: <= 30 us.
  * startup: `run --ro-bind / / --proc /proc --dev /dev [--allow-unix
    SOCKET] -- /bin/true`, with and without the grant, alternately; the
    ratio of the medians. Target: <= 1.05. A run without --allow-unix has
    no broker and the same filter as before it existed.

The connect figures come from scripts/netbench.c (built here with cc):
`netbench connect SOCKET N` times the connect call alone, N times, and
prints the median. Both cases alternate, so they see the same machine
noise; medians of the rounds are printed.

Usage: scripts/bench-allow-unix.py [--launcher PATH] [--rounds N]
                                   [--connects N] [--runs N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]


def build_netbench(tmp):
    exe = os.path.join(tmp, "netbench")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "netbench.c")], check=True)
    return exe


def start_server(netbench, path):
    server = subprocess.Popen([netbench, "serve-echo", path])
    for _ in range(200):
        if os.path.exists(path):
            return server
        time.sleep(0.01)
    sys.exit("the echo server did not start")


def connect_median(launcher, grant, netbench, sock, connects):
    argv = [launcher, "run", *BASE, *grant, "--", netbench, "connect", sock, str(connects)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launcher", default=os.path.join(HERE, "..", "target", "release", "srt-launcher"))
    parser.add_argument("--rounds", type=int, default=15, help="sandboxes per connect case")
    parser.add_argument("--connects", type=int, default=2000, help="connects per sandbox")
    parser.add_argument("--runs", type=int, default=61, help="start-ups per case")
    args = parser.parse_args()
    launcher = os.path.abspath(args.launcher)

    with tempfile.TemporaryDirectory(prefix="srtl-bench-unix-") as tmp:
        os.chmod(tmp, 0o755)
        netbench = build_netbench(tmp)
        sock = os.path.join(tmp, "echo.sock")
        server = start_server(netbench, sock)
        try:
            grant = ["--allow-unix", sock]
            brokered, direct = [], []
            for _ in range(args.rounds):
                brokered.append(connect_median(launcher, grant, netbench, sock, args.connects))
                direct.append(connect_median(launcher, [], netbench, sock, args.connects))
            b, d = statistics.median(brokered), statistics.median(direct)
            print(f"connect (median of {args.rounds} sandboxes x {args.connects} connects):")
            print(f"  direct            {d:8.2f} us")
            print(f"  through the broker{b:8.2f} us")
            print(f"  broker's extra    {b - d:8.2f} us   (target <= 30 us)")

            with_grant, without = [], []
            for _ in range(args.runs):
                with_grant.append(timed([launcher, "run", *BASE, *grant, "--", "/bin/true"]))
                without.append(timed([launcher, "run", *BASE, "--", "/bin/true"]))
            w, o = statistics.median(with_grant), statistics.median(without)
            print(f"startup (median of {args.runs} runs each, alternating):")
            print(f"  without --allow-unix {o * 1000:7.2f} ms")
            print(f"  with --allow-unix    {w * 1000:7.2f} ms")
            print(f"  ratio                {w / o:7.3f}     (target <= 1.05)")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
