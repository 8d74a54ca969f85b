"""What the relay benchmarks share (scripts/bench-net.py and
scripts/relay-calls.py): the C client and servers of scripts/netbench.c,
free loopback ports, and the process tree as /proc shows it. The
scripts import it with sys.dont_write_bytecode set, so no __pycache__
lands in the tree.
"""

import os
import socket
import subprocess

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_netbench(tmp):
    """scripts/netbench.c compiled into `tmp`; returns its path."""
    exe = os.path.join(tmp, "netbench")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(SCRIPTS, "netbench.c")], check=True)
    return exe


def start_server(netbench, mode, addr):
    """A netbench server (`serve-echo`, `serve-sink`) once it listens."""
    proc = subprocess.Popen([netbench, mode, addr], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "listening"
    return proc


def free_port():
    """A loopback port free at the time of asking, as a string."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def children(pid):
    """The direct children of `pid` (none once it is gone)."""
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
        except OSError:
            pass
    return kids
