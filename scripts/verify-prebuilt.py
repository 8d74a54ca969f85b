#!/usr/bin/env python3
"""Verifies the vendored binaries in vendor-prebuilt/ (run by .ci/run).

  * SHA256SUMS matches both binaries;
  * each is a static ELF executable of the right machine type: no program
    interpreter, no dynamic segment or section;
  * MANIFEST's source hash is the hash of the current sources (a code change
    without rebuilt prebuilts fails here, saying how to rebuild), and each
    binary's --version names that hash and its target;
  * the x64 binary stays under 1.5 MiB;
  * smoke runs: x64 runs a real sandbox, and both binaries (arm64 under
    qemu-aarch64) run `relay` and `connect` against local test servers.

The byte-for-byte reproducibility check is scripts/build-prebuilt.sh --check.
"""

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VENDOR = os.path.join(ROOT, "vendor-prebuilt")
SOURCES = ["src", "bpf", "build.rs", "Cargo.toml", "Cargo.lock", "rust-toolchain.toml",
           ".cargo/config.toml"]
BINARIES = {  # name: (target triple, ELF e_machine, how to run it)
    "x64": ("x86_64-unknown-linux-musl", 0x3E, []),
    "arm64": ("aarch64-unknown-linux-musl", 0xB7, ["qemu-aarch64"]),
}
MAX_X64_BYTES = 1536 * 1024
REBUILD = "run scripts/build-prebuilt.sh and commit vendor-prebuilt/"


def fail(message):
    sys.exit(f"verify-prebuilt: {message}")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def source_hash():
    """As build.rs and build-prebuilt.sh compute it."""
    files = []
    for source in SOURCES:
        path = os.path.join(ROOT, source)
        if os.path.isdir(path):
            for dirpath, _, names in os.walk(path):
                files += [os.path.relpath(os.path.join(dirpath, n), ROOT) for n in names]
        elif os.path.isfile(path):
            files.append(source)
    listing = "".join(f"{sha256_file(os.path.join(ROOT, f))}  {f}\n"
                      for f in sorted(files, key=lambda p: p.encode()))
    return hashlib.sha256(listing.encode()).hexdigest()


def check_elf(path, machine):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        fail(f"{path}: not a 64-bit little-endian ELF")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != 2:
        fail(f"{path}: ELF type {e_type}, want 2 (static executable, not PIE)")
    if e_machine != machine:
        fail(f"{path}: machine {e_machine:#x}, want {machine:#x}")
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)
    for i in range(e_phnum):
        p_type = struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0]
        if p_type in (2, 3):  # PT_DYNAMIC, PT_INTERP
            fail(f"{path}: has a {'PT_DYNAMIC' if p_type == 2 else 'PT_INTERP'} segment")
    for i in range(e_shnum):
        sh_type = struct.unpack_from("<I", data, e_shoff + i * e_shentsize + 4)[0]
        if sh_type == 6:  # SHT_DYNAMIC
            fail(f"{path}: has a dynamic section")


def echo_server(family, address):
    s = socket.socket(family)
    s.bind(address)
    s.listen(16)

    def serve():
        while True:
            c, _ = s.accept()
            data = b""
            while chunk := c.recv(65536):
                data += chunk
            c.sendall(data)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()


def fake_proxy():
    """Answers CONNECT with 200, then echoes the tunnel."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)

    def serve():
        while True:
            c, _ = s.accept()
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += c.recv(1)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            while chunk := c.recv(65536):
                c.sendall(chunk)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def smoke_relay(runner, binary, tmp):
    _, port = echo_server(socket.AF_INET, ("127.0.0.1", 0))
    path = os.path.join(tmp, f"relay-{os.path.basename(os.path.dirname(binary))}.sock")
    relay = subprocess.Popen([*runner, binary, "relay", "--ready-fd", "1", path, f"127.0.0.1:{port}"],
                             stdout=subprocess.PIPE)
    try:
        if relay.stdout.read(1) == b"":
            fail(f"{binary}: relay gave no ready byte")
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        c.sendall(b"relay-smoke")
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(100):
            got += chunk
        if got != b"relay-smoke":
            fail(f"{binary}: relay echoed {got!r}")
    finally:
        relay.kill()
        relay.wait()


def smoke_connect(runner, binary):
    port = fake_proxy()
    out = subprocess.run([*runner, binary, "connect", "example.com", "22", "--proxy", f"127.0.0.1:{port}"],
                         input=b"connect-smoke", capture_output=True, timeout=60)
    if out.returncode != 0 or out.stdout != b"connect-smoke":
        fail(f"{binary}: connect gave {out.returncode} {out.stdout!r} {out.stderr!r}")


def smoke_run(binary):
    out = subprocess.run([binary, "run", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                          "--", "sh", "-c", "ls /proc | grep -c '^[0-9]'; touch /etc/x 2>/dev/null || echo ro"],
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or int(lines[0]) > 5 or lines[1] != "ro":
        fail(f"{binary}: sandbox smoke run gave {out.returncode} {out.stdout!r} {out.stderr!r}")


def main():
    with open(os.path.join(VENDOR, "SHA256SUMS")) as f:
        for line in f:
            digest, name = line.split()
            if sha256_file(os.path.join(VENDOR, name)) != digest:
                fail(f"{name} does not match SHA256SUMS")
    manifest = dict(line.split(": ", 1) for line in open(os.path.join(VENDOR, "MANIFEST")).read().splitlines())
    current = source_hash()
    if manifest.get("source-sha256") != current:
        fail(f"vendor-prebuilt/ was built from other sources ({manifest.get('source-sha256')}, "
             f"now {current}): {REBUILD}")
    if not shutil.which("qemu-aarch64"):
        fail("qemu-aarch64 not found (apt-get install qemu-user; scripts/setup.sh does)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (triple, machine, runner) in BINARIES.items():
            binary = os.path.join(VENDOR, name, "srt-launcher")
            check_elf(binary, machine)
            version = subprocess.run([*runner, binary, "--version"], capture_output=True, text=True).stdout
            if current not in version or triple not in version:
                fail(f"{name}: --version says {version.strip()!r}, want source {current} and {triple}: {REBUILD}")
            if name == "x64":
                if os.path.getsize(binary) > MAX_X64_BYTES:
                    fail(f"{binary}: {os.path.getsize(binary)} bytes, over 1.5 MiB")
                smoke_run(binary)
            smoke_relay(runner, binary, tmp)
            smoke_connect(runner, binary)
            print(f"verify-prebuilt: {name}: checksum, static {triple} ELF, source {current[:12]}, "
                  f"{os.path.getsize(binary)} bytes, smoke runs ok")


if __name__ == "__main__":
    main()
