#!/usr/bin/env python3
"""Relay connection path profile: system calls and CPU per short connection.

Runs N short connections (scripts/netbench.c `short`: connect, 1 byte
each way, close) through each relay role and reports, per connection:

  calls    what `strace -c` counts in the relay process, by system call
           (an EAGAIN is a call that found nothing to do)
  cpu      the relay process's CPU time (`perf stat -e task-clock`, in a
           separate pass without strace), where perf is allowed

Roles: the host `relay` (unix socket in, TCP out) and the in-sandbox
`run --relay` (TCP in, unix socket out). The counts are exact and do not
depend on the machine's load; the CPU figure does, so compare it between
builds in the same run (`--launcher` twice, or `--baseline`).

Usage: scripts/relay-calls.py [--launcher PATH] [--baseline PATH] [--connections N]
Needs strace; perf is optional.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "lib"))
from netbench import build_netbench, children, free_port, start_server  # noqa: E402
SANDBOX_PORT = "3128"


class HostRole:
    """`relay SOCK 127.0.0.1:PORT`; the client runs on the host."""

    def __init__(self, launcher, netbench, tmp, port, n):
        self.sock = os.path.join(tmp, f"relay-{time.monotonic_ns()}.sock")
        self.proc = subprocess.Popen(
            [launcher, "relay", "--ready-fd", "1", self.sock, f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE)
        self.proc.stdout.read(1)
        self.pid = self.proc.pid
        self.client = [netbench, "short", self.sock, str(n)]

    def go(self):
        subprocess.run(self.client, check=True, stdout=subprocess.DEVNULL)

    def close(self):
        self.proc.kill()
        self.proc.wait()


class SandboxRole:
    """`run --unshare-net --relay 3128 SOCK`; the client runs inside and
    starts when told (a line on its stdin)."""

    def __init__(self, launcher, netbench, unix_echo, n):
        client = f"read go; exec {netbench} short {SANDBOX_PORT} {n}"
        self.proc = subprocess.Popen(
            [launcher, "run", "--unshare-net", "--relay", SANDBOX_PORT, unix_echo,
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
             "--", "sh", "-c", client],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        # The relay: the launcher's child with no children (PID 1 has the
        # workload).
        deadline = time.monotonic() + 10
        while True:
            relays = [p for p in children(self.proc.pid) if not children(p)]
            kids = children(self.proc.pid)
            if relays and len(kids) >= 2:
                self.pid = relays[0]
                break
            assert time.monotonic() < deadline, "no relay process appeared"
            time.sleep(0.01)

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        assert self.proc.wait() == 0, "the client in the sandbox failed"

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def strace_counts(role, out):
    """Calls of the relay while the role's client runs: {name: (calls, errors)}."""
    tracer = subprocess.Popen(["strace", "-c", "-o", out, "-p", str(role.pid)],
                              stderr=subprocess.PIPE, text=True)
    assert "attached" in tracer.stderr.readline()
    role.go()
    time.sleep(0.2)
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    counts = {}
    with open(out) as f:
        for line in f:
            words = line.split()
            if len(words) >= 5 and words[3].isdigit() and words[-1] != "total":
                errors = int(words[4]) if len(words) == 6 else 0
                counts[words[-1]] = (int(words[3]), errors)
    return counts


def perf_cpu_us(role, out):
    """The relay's task-clock while the role's client runs, in µs."""
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-o", out,
                             "-p", str(role.pid)])
    time.sleep(0.3)
    role.go()
    perf.send_signal(signal.SIGINT)
    perf.wait()
    with open(out) as f:
        for line in f:
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("task-clock"):
                return float(fields[0]) * 1000
    return None


def perf_works():
    if not shutil.which("perf"):
        return False
    probe = subprocess.run(["perf", "stat", "-e", "task-clock", "true"],
                           capture_output=True)
    return probe.returncode == 0


def profile(label, launcher, netbench, tmp, servers, n, use_perf):
    """{role: (counts, cpu µs per connection or None)} for one build."""
    port, unix_echo = servers
    makers = {
        "relay": lambda: HostRole(launcher, netbench, tmp, port, n),
        "in-sandbox": lambda: SandboxRole(launcher, netbench, unix_echo, n),
    }
    found = {}
    for role, make in makers.items():
        traced = make()
        try:
            counts = strace_counts(traced, os.path.join(tmp, f"{label}-{role}.strace"))
        finally:
            traced.close()
        cpu = None
        if use_perf:
            timed = make()
            try:
                total = perf_cpu_us(timed, os.path.join(tmp, f"{label}-{role}.perf"))
                cpu = total / n if total is not None else None
            finally:
                timed.close()
        found[role] = (counts, cpu)
    return found


def report(label, found, n):
    print(f"\n{label}: calls per connection ({n} short connections; "
          "nE: n of them failed, as EAGAIN or EINPROGRESS)")
    names = sorted({name for counts, _ in found.values() for name in counts})
    print(f"{'':<14}" + "".join(f"{role:>9}      " for role in found))
    per = {role: {k: v[0] / n for k, v in counts.items()} for role, (counts, _) in found.items()}
    for name in names:
        cells = [per[role].get(name, 0) for role in found]
        if max(cells) < 0.05:
            continue  # setup calls, not per connection
        again = [found[role][0].get(name, (0, 0))[1] / n for role in found]
        print(f"{name:<14}" + "".join(
            f"{c:>9.2f}" + (f" ({e:.1f}E)" if e >= 0.05 else "      ")
            for c, e in zip(cells, again)))
    totals = [sum(v for v in per[role].values() if v >= 0.05) for role in found]
    print(f"{'total':<14}" + "".join(f"{t:>9.2f}      " for t in totals))
    cpus = [cpu for _, cpu in found.values()]
    if all(c is not None for c in cpus):
        print(f"{'cpu (us)':<14}" + "".join(f"{c:>9.1f}      " for c in cpus))
    return totals, cpus


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(HERE, "..", "target", "x86_64-unknown-linux-musl", "release",
                           "srt-launcher")
    ap.add_argument("--launcher", default=default)
    ap.add_argument("--baseline", help="another build, profiled in the same run")
    ap.add_argument("--connections", type=int, default=2000)
    args = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("relay-calls: strace not found (apt-get install strace)")
    use_perf = perf_works()
    if not use_perf:
        print("perf is not allowed here (perf_event_paranoid, or no perf): calls only")
    builds = [("launcher", os.path.abspath(args.launcher))]
    if args.baseline:
        builds.append(("baseline", os.path.abspath(args.baseline)))
    with tempfile.TemporaryDirectory(prefix="srtl-calls-") as tmp:
        os.chmod(tmp, 0o755)
        netbench = build_netbench(tmp)
        port = free_port()
        unix_echo = os.path.join(tmp, "echo.sock")
        servers = [start_server(netbench, "serve-echo", port),
                   start_server(netbench, "serve-echo", unix_echo)]
        try:
            for label, launcher in builds:
                print(f"{label}: {launcher}")
                found = profile(label, launcher, netbench, tmp, (port, unix_echo),
                                args.connections, use_perf)
                report(label, found, args.connections)
        finally:
            for s in servers:
                s.kill()


if __name__ == "__main__":
    main()
