#!/usr/bin/env python3
"""Relay benchmark: srt-launcher against socat 1.7, side by side.

Three roles, each measured for srt-launcher and for socat in the same run:

  relay         `srt-launcher relay SOCK 127.0.0.1:P`
                vs `socat UNIX-LISTEN:SOCK,fork TCP:127.0.0.1:P`
  in-sandbox    `srt-launcher run --unshare-net --relay 3128 SOCK ...`
                vs `socat TCP-LISTEN:3128,fork UNIX-CONNECT:SOCK` started
                inside the same kind of sandbox (how hosts ran it under bwrap)
  expose        a server inside the sandbox reached from the host's P:
                `srt-launcher run --unshare-net --expose P ...`
                vs `socat TCP-LISTEN:P,fork UNIX-CONNECT:SOCK` on the host
                plus `socat UNIX-LISTEN:SOCK,fork TCP:127.0.0.1:P` inside
                (a forward into a network namespace, without entering it)

and three measures for each:

  throughput    one 1 GiB stream, client -> relay -> server: median MB/s
  short conns   connect, 1 byte each way, close, in a row: median conn/s,
                and each relay's overhead per connection in microseconds:
                its time per connection minus the same client's straight
                to the server (the floor no relay can go below)
  idle memory   500 idle connections open: the relay's proportional set
                size (Pss), summed over all of its processes for socat
                (both socats for expose)

The client and servers are scripts/netbench.c (built here with cc), so the
relays, not the measuring programs, dominate the figures.

`--load N` runs the whole benchmark beside N busy processes (one shell
loop each, at normal priority): on this 2-core machine `--load 2` is the
loaded run the README quotes. `--roles` and `--measures` pick a subset
(comma-separated) when only some figures are wanted.

Usage: scripts/bench-net.py [--launcher PATH] [--runs N] [--short N] [--idle N]
                            [--load N] [--roles relay,in-sandbox,expose]
                            [--measures stream,short,idle]
Needs socat (Debian: apt-get install socat) and a C compiler.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GIB = 1 << 30
ROLES = ("relay", "in-sandbox", "expose")
MEASURES = ("stream", "short", "idle")
SANDBOX_PORT = "3128"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "lib"))
from netbench import build_netbench, children, free_port, start_server  # noqa: E402


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except OSError:
            pass
    return total


class HostRelay:
    """A relay (ours or socat) from a new unix socket to a TCP port."""

    def __init__(self, kind, launcher, tmp, port):
        self.path = os.path.join(tmp, f"{kind}-{port}.sock")
        self.address = self.path
        if kind == "srt-launcher":
            argv = [launcher, "relay", "--ready-fd", "1", self.path, f"127.0.0.1:{port}"]
        else:
            argv = ["socat", f"UNIX-LISTEN:{self.path},fork", f"TCP:127.0.0.1:{port}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        if kind == "srt-launcher":
            self.proc.stdout.read(1)
        while not os.path.exists(self.path):
            time.sleep(0.01)

    def processes(self):
        return [self.proc.pid] + descendants(self.proc.pid)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def host_number(netbench, mode, addr, arg):
    out = subprocess.run([netbench, mode, addr, str(arg)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def sandbox_argv(kind, launcher, sock, client):
    base = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    if kind == "srt-launcher":
        return [launcher, "run", "--unshare-net", "--relay", SANDBOX_PORT, sock, *base, "--", *client]
    # socat needs a moment to listen; the client retries nothing, so wait.
    script = (f"socat TCP-LISTEN:{SANDBOX_PORT},fork,reuseaddr,bind=127.0.0.1 UNIX-CONNECT:{sock} & "
              f"while ! grep -q ':0C38 ' /proc/net/tcp; do sleep 0.01; done; exec " + " ".join(client))
    return [launcher, "run", "--unshare-net", *base, "--", "sh", "-c", script]


def sandbox_number(kind, launcher, netbench, sock, mode, arg):
    argv = sandbox_argv(kind, launcher, sock, [netbench, mode, SANDBOX_PORT, str(arg)])
    return float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


class Exposed:
    """A netbench server inside a sandbox, reached from the host's
    127.0.0.1:port: by `--expose` (ours) or by two socats (theirs)."""

    def __init__(self, kind, launcher, netbench, tmp, mode):
        self.port = free_port()
        self.address = self.port
        base = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        server = f"{netbench} {mode} {self.port}"
        self.host_socat = None
        if kind == "srt-launcher":
            argv = [launcher, "run", "--unshare-net", "--expose", self.port, *base,
                    "--", netbench, mode, self.port]
        else:
            sock = os.path.join(tmp, f"expose-{self.port}.sock")
            inner = (f"socat UNIX-LISTEN:{sock},fork TCP:127.0.0.1:{self.port} & "
                     f"while [ ! -S {sock} ]; do sleep 0.01; done; exec {server}")
            argv = [launcher, "run", "--unshare-net", *base, "--bind", tmp, tmp,
                    "--", "sh", "-c", inner]
        self.sandbox = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.sandbox.stdout.readline().strip() == "listening"
        if kind == "socat":
            self.host_socat = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{self.port},fork,reuseaddr,bind=127.0.0.1",
                 f"UNIX-CONNECT:{sock}"])
            hex_port = f":{int(self.port):04X} "
            while not any(hex_port in line and " 0A " in line
                          for line in open("/proc/net/tcp")):
                time.sleep(0.01)

    def processes(self):
        if self.host_socat is None:
            # The expose process: the launcher's child with no children
            # (PID 1 has the workload).
            return [p for p in children(self.sandbox.pid) if not children(p)]
        inside = [p for p in descendants(self.sandbox.pid) if comm(p) == "socat"]
        return [self.host_socat.pid] + descendants(self.host_socat.pid) + inside

    def close(self):
        for proc in (self.host_socat, self.sandbox):
            if proc is not None:
                proc.kill()
                proc.wait()


def idle_pss(start_client, relay_processes):
    client = start_client()
    assert client.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    pss = pss_kb(relay_processes(client))
    client.stdin.close()
    client.wait()
    return pss


def median_of_runs(args, measure):
    """The median of `args.runs` calls of `measure()`."""
    return statistics.median(measure() for _ in range(args.runs))


def host_client_role(title, make, netbench, args, direct):
    """A role whose relay a client on the host reaches at `.address`:
    `make(kind, server)` starts it (ours or socat's) in front of a
    `serve-sink` or `serve-echo`; prints the chosen measures' rows
    (`direct`: the same client's conn/s straight to the server)."""
    results = {}
    for kind in ("srt-launcher", "socat"):
        found = {}
        if "stream" in args.measures:
            sink = make(kind, "serve-sink")
            secs = median_of_runs(args, lambda: host_number(netbench, "stream", sink.address, GIB))
            found["stream"] = GIB / secs / 1e6
            sink.close()
        echo = make(kind, "serve-echo")
        if "short" in args.measures:
            found["short"] = median_of_runs(
                args, lambda: host_number(netbench, "short", echo.address, args.short))
        if "idle" in args.measures:
            found["idle"] = idle_pss(
                lambda: subprocess.Popen([netbench, "idle", echo.address, str(args.idle)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
                lambda _client: echo.processes())
        echo.close()
        results[kind] = found
    print_role(title, results, direct, args)


def print_role(title, results, direct, args):
    """The rows of one role, from `results[kind][measure]`."""
    ours, theirs = results["srt-launcher"], results["socat"]
    if "stream" in ours:
        row(f"{title}: 1 GiB stream", ours["stream"], theirs["stream"], "MB/s", True)
    if "short" in ours:
        row(f"{title}: short connections", ours["short"], theirs["short"], "conn/s", True)
        overhead_row(title, ours["short"], theirs["short"], direct)
    if "idle" in ours:
        row(f"{title}: Pss, {args.idle} idle connections", ours["idle"], theirs["idle"],
            "kB", False)


def overhead_row(title, ours_cps, theirs_cps, direct_cps):
    """Each relay's time per short connection beyond the direct one."""
    floor = 1e6 / direct_cps
    row(f"{title}: overhead per connection", 1e6 / ours_cps - floor,
        1e6 / theirs_cps - floor, "us", False)


def direct_cps(netbench, address, args):
    """Short connections per second straight to the server at `address`."""
    return median_of_runs(args, lambda: host_number(netbench, "short", address, args.short))


def in_sandbox_role(launcher, netbench, unix_sink, unix_echo, args, direct):
    """`run --relay` against socat started inside the same kind of
    sandbox; the client runs in the sandbox."""
    results = {}
    for kind in ("srt-launcher", "socat"):
        found = {}
        if "stream" in args.measures:
            secs = median_of_runs(
                args, lambda: sandbox_number(kind, launcher, netbench, unix_sink, "stream", GIB))
            found["stream"] = GIB / secs / 1e6
        if "short" in args.measures:
            found["short"] = median_of_runs(
                args,
                lambda: sandbox_number(kind, launcher, netbench, unix_echo, "short", args.short))
        if "idle" in args.measures:
            def start(kind=kind):
                argv = sandbox_argv(kind, launcher, unix_echo,
                                    [netbench, "idle", SANDBOX_PORT, str(args.idle)])
                return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

            def relay_processes(client, kind=kind):
                if kind == "socat":
                    return [p for p in descendants(client.pid) if comm(p) == "socat"]
                # The relay: the launcher's child with no children (PID 1
                # has the workload).
                return [p for p in children(client.pid) if not children(p)]

            found["idle"] = idle_pss(start, relay_processes)
        results[kind] = found
    print_role("in-sandbox", results, direct, args)


def start_load(count):
    """`count` busy processes for a loaded run, killed by the caller."""
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(count)]


def subset(text, allowed):
    """A comma-separated choice among `allowed`, for argparse."""
    chosen = [c for c in text.split(",") if c]
    wrong = [c for c in chosen if c not in allowed]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {','.join(allowed)}")
    return chosen


def row(name, ours, theirs, unit, higher_is_better):
    if ours <= 0 or theirs <= 0:
        # An overhead within the noise of the direct run: no ratio.
        print(f"{name:<36}{ours:>11.0f}{theirs:>11.0f}  {unit:<7}{'n/a':>7}")
        return
    gain = ours / theirs if higher_is_better else theirs / ours
    print(f"{name:<36}{ours:>11.0f}{theirs:>11.0f}  {unit:<7}{gain:>6.1f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launcher", default=os.path.join(
        HERE, "..", "target", "x86_64-unknown-linux-musl", "release", "srt-launcher"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--short", type=int, default=2000)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--load", type=int, default=0)
    ap.add_argument("--roles", type=lambda t: subset(t, ROLES), default=list(ROLES))
    ap.add_argument("--measures", type=lambda t: subset(t, MEASURES), default=list(MEASURES))
    args = ap.parse_args()
    if not shutil.which("socat"):
        sys.exit("bench-net: socat not found (apt-get install socat)")
    launcher = os.path.abspath(args.launcher)
    version = subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout.splitlines()[1]
    load = f", beside {args.load} busy processes" if args.load else ", no added load"
    print(f"launcher: {launcher}\nanchor:   {version.strip()}\n{os.cpu_count()} cpus{load}, "
          f"medians of {args.runs} runs; short: {args.short} in a row; memory: {args.idle} idle\n")
    print(f"{'':<36}{'srt':>11}{'socat':>11}  {'unit':<7}{'gain':>7}")

    busy = start_load(args.load)
    with tempfile.TemporaryDirectory(prefix="srtl-bench-") as tmp:
        os.chmod(tmp, 0o755)
        netbench = build_netbench(tmp)
        sink_port, echo_port = free_port(), free_port()
        servers = [start_server(netbench, "serve-sink", sink_port),
                   start_server(netbench, "serve-echo", echo_port)]
        unix_sink, unix_echo = os.path.join(tmp, "sink.sock"), os.path.join(tmp, "echo.sock")
        servers += [start_server(netbench, "serve-sink", unix_sink),
                    start_server(netbench, "serve-echo", unix_echo)]
        try:
            tcp_direct = unix_direct = None
            if "short" in args.measures:
                tcp_direct = direct_cps(netbench, echo_port, args)
                unix_direct = direct_cps(netbench, unix_echo, args)
                print(f"{'direct: short connections, TCP':<36}{tcp_direct:>11.0f}{'':>11}  conn/s")
                print(f"{'direct: short connections, unix':<36}{unix_direct:>11.0f}{'':>11}  conn/s")
            ports = {"serve-sink": sink_port, "serve-echo": echo_port}
            if "relay" in args.roles:
                host_client_role(
                    "relay", lambda kind, server: HostRelay(kind, launcher, tmp, ports[server]),
                    netbench, args, tcp_direct)
            if "in-sandbox" in args.roles:
                in_sandbox_role(launcher, netbench, unix_sink, unix_echo, args, unix_direct)
            if "expose" in args.roles:
                host_client_role(
                    "expose", lambda kind, server: Exposed(kind, launcher, netbench, tmp, server),
                    netbench, args, tcp_direct)
        finally:
            for proc in servers + busy:
                proc.kill()


if __name__ == "__main__":
    main()
