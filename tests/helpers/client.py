"""Test client run inside a sandbox (or on the host) by the networking
tests. Prints one result line per check; exits non-zero on a mismatch.

  client.py echo HOST PORT NBYTES        send NBYTES, verify the echo
  client.py concurrent HOST PORT N       N connections at once, each echoed
  client.py short HOST PORT N            N connections in a row, 1 byte each way
  client.py send-then-read HOST PORT     half-close: send, SHUT_WR, read reply
  client.py read-then-send HOST PORT     half-close: read to EOF, then send
  client.py kill-all HOST PORT           echo, kill -9 -1, echo again
  client.py swap PATH TARGET HOST PORT   replace PATH by a symlink to TARGET, then connect
  client.py send-big-then-read HOST PORT send 4 MiB the server ignores, print its answer
  client.py phases HOST PORT N           warm up, print "warm", N short ones, print "done"
"""
import hashlib
import os
import socket
import sys
import threading
import time


def pattern(n):
    """Deterministic, non-repeating-looking bytes."""
    out = bytearray()
    block = b"srt-launcher"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def connect(host, port):
    return socket.create_connection((host, int(port)), timeout=60)


def echo(host, port, n):
    data = pattern(int(n))
    s = connect(host, port)
    got = []

    def reader():
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got.append(d)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join()
    back = b"".join(got)
    ok = back == data
    print(f"echo {'ok' if ok else 'MISMATCH'} {len(back)} {hashlib.sha256(back).hexdigest()}")
    return ok


def read_all(s, size=65536):
    """Everything the peer sends until it half-closes."""
    got = b""
    while True:
        d = s.recv(size)
        if not d:
            return got
        got += d


def one_exchange(host, port, payload):
    s = connect(host, port)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = read_all(s, 65536)
    s.close()
    return got == payload


def concurrent(host, port, n):
    socks = [connect(host, port) for _ in range(int(n))]
    for i, s in enumerate(socks):
        s.sendall(b"%06d" % i * 100)
        s.shutdown(socket.SHUT_WR)
    ok = 0
    for i, s in enumerate(socks):
        got = read_all(s, 65536)
        ok += got == b"%06d" % i * 100
        s.close()
    print(f"concurrent {ok}/{n}")
    return ok == int(n)


def short(host, port, n):
    ok = sum(one_exchange(host, port, b"x") for _ in range(int(n)))
    print(f"short {ok}/{n}")
    return ok == int(n)


def send_then_read(host, port):
    s = connect(host, port)
    s.sendall(b"request")
    s.shutdown(socket.SHUT_WR)
    got = read_all(s, 100)
    print(f"reply {got.decode()}")
    return True


def read_then_send(host, port):
    s = connect(host, port)
    got = read_all(s, 100)
    s.sendall(b"after-eof")
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(f"greeting {got.decode()}")
    return True


def send_big_then_read(host, port):
    """Send 4 MiB (the server does not read them) and print what came back."""
    s = connect(host, port)

    def sender():
        try:
            s.sendall(b"z" * (4 << 20))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=sender)
    t.start()
    try:
        got = read_all(s, 100)
    except OSError:
        got = b""
    t.join()
    print(f"answered {got.decode()}")
    return True


def kill_all(host, port):
    first = one_exchange(host, port, b"before")
    try:
        os.kill(-1, 9)
    except ProcessLookupError:
        pass
    time.sleep(0.2)
    second = one_exchange(host, port, b"after")
    print(f"kill-all {first} {second}")
    return first and second


def swap(path, target, host, port):
    os.unlink(path)
    os.symlink(target, path)
    s = connect(host, port)
    s.sendall(b"who")
    s.shutdown(socket.SHUT_WR)
    print(f"answered {s.recv(100).decode()}")
    return True


def phases(host, port, n):
    for _ in range(200):
        one_exchange(host, port, b"w")
    print("warm", flush=True)
    sys.stdin.readline()
    ok = short(host, port, n)
    print("done", flush=True)
    sys.stdin.readline()
    return ok


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    fn = {
        "echo": echo, "concurrent": concurrent, "short": short,
        "send-then-read": send_then_read, "read-then-send": read_then_send,
        "kill-all": kill_all, "swap": swap, "phases": phases,
        "send-big-then-read": send_big_then_read,
    }[mode]
    sys.exit(0 if fn(*args) else 1)


main()
