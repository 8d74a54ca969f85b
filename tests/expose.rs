//! `run --expose PORT` (SPEC §3.4): a server the workload starts inside
//! the sandbox's network namespace is reached from the host's loopback,
//! as root and as the unprivileged user.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, Who, harness, stderr, with_mounts};

/// A server inside, in Python: after DELAY seconds it listens on
/// 127.0.0.1:PORT (or ADDRESS, a fourth argument) and, per connection,
/// does MODE: `echo` (until EOF,
/// then half-closes), `reply-after-eof` (reads to EOF, answers "got N")
/// or `greet-then-read` (sends "greeting", half-closes, reads to EOF and
/// prints what came on stdout).
const SERVER: &str = r#"
import socket, sys, threading, time
port, delay, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
address = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
time.sleep(delay)
l = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((address, port))
l.listen(128)
def serve(c):
    if mode == "echo":
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    elif mode == "reply-after-eof":
        n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            n += len(d)
        c.sendall(b"got %d" % n)
        c.shutdown(socket.SHUT_WR)
    else:
        c.sendall(b"greeting")
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        print(got.decode(), flush=True)
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// A loopback port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the host has an IPv6 loopback to expose on.
fn host_has_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// A sandbox exposing `port`, its server starting after `delay` seconds.
fn sandbox(h: &Harness, who: Who, port: u16, delay: &str, mode: &str) -> Child {
    sandbox_on(h, who, port, delay, mode, "127.0.0.1")
}

/// The same with the server listening on `address` inside.
fn sandbox_on(h: &Harness, who: Who, port: u16, delay: &str, mode: &str, address: &str) -> Child {
    let port = port.to_string();
    let command = [
        "/usr/bin/python3",
        "-c",
        SERVER,
        &port,
        delay,
        mode,
        address,
    ];
    let mut args = vec!["--unshare-net", "--expose", &port];
    args.extend(with_mounts(&[], &command));
    h.command(who, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the launcher")
}

/// A connection to the host's `host`:`port`, once the server inside
/// answers (the exposed listener exists from the start; until the server
/// listens, each connection is closed at once).
fn connect_when_up(host: &str, port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Refused until the launcher has bound the port.
        let Ok(mut s) = TcpStream::connect((host, port)) else {
            assert!(Instant::now() < deadline, "the exposed port never listened");
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Anything sent before the server is up is lost with the closed
        // connection: probe with a byte the echo server sends back.
        if s.write_all(b"?").is_ok() {
            let mut b = [0u8; 1];
            if matches!(s.read(&mut b), Ok(1)) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "the server inside never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    stderr(&out)
}

/// Both TCP ends of a forwarded connection have TCP_NODELAY: the one
/// accepted on the host (inherited from its listener) and the one
/// connected inside (set when it is made).
#[test]
fn both_ends_of_a_forwarded_connection_have_tcp_nodelay() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let port = free_port();
        let child = sandbox(h, who, port, "0", "echo");
        let _held = connect_when_up("127.0.0.1", port);
        // The expose process: the launcher's child without children (PID
        // 1 has the workload).
        let forwarder = *common::net::children(child.id())
            .iter()
            .find(|&&k| common::net::children(k).is_empty())
            .expect("an expose process");
        let mut nodelay = Vec::new();
        let both = common::wait_until(5, || {
            nodelay = common::net::tcp_nodelay_of_connections(forwarder);
            nodelay.len() == 2
        });
        assert!(both, "{who:?}: connections held: {nodelay:?}");
        assert_eq!(nodelay, [true, true], "{who:?}");
        stop(child);
    }
}

#[test]
fn a_server_started_late_inside_is_reached_from_the_host() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let port = free_port();
        let child = sandbox(h, who, port, "1.5", "echo");
        // Before the server listens: the connection is accepted by the
        // host's listener and closed at once, never left hanging.
        let deadline = Instant::now() + Duration::from_secs(10);
        let early = loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{who:?}: no listener on the host"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let started = Instant::now();
        early
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        let got = (&early).read(&mut buf);
        assert!(
            matches!(got, Ok(0)) || got.is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
            "{who:?}: an early connection was not closed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{who:?}: it hung"
        );
        let hosts: &[&str] = if host_has_ipv6() {
            &["127.0.0.1", "::1"]
        } else {
            &["127.0.0.1"]
        };
        for host in hosts {
            let mut s = connect_when_up(host, port);
            s.write_all(b"hello").unwrap();
            let mut back = [0u8; 5];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"hello", "{who:?} {host}");
        }
        let err = stop(child);
        // Gone with the sandbox: the port is free again.
        assert!(
            common::wait_until(5, || TcpListener::bind(("127.0.0.1", port)).is_ok()),
            "{who:?}: the host's port is still taken after the sandbox: {err}"
        );
    }
}

#[test]
fn half_close_passes_through_both_ways() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // Host -> inside EOF arrives, and the reply still flows back.
        let port = free_port();
        let child = sandbox(h, who, port, "0", "reply-after-eof");
        let mut s = wait_for_listener(port);
        let deadline = Instant::now() + Duration::from_secs(20);
        let reply = loop {
            // Until the server is up, the connection is closed at once
            // and these fail: then try again.
            let _ = s.write_all(&[7u8; 100_000]);
            let _ = s.shutdown(Shutdown::Write);
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if !reply.is_empty() || Instant::now() > deadline {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(50));
            s = wait_for_listener(port);
        };
        assert_eq!(reply, "got 100000", "{who:?}");
        stop(child);

        // Inside -> host EOF arrives, and the host's bytes still go in.
        let port = free_port();
        let child = sandbox(h, who, port, "0", "greet-then-read");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut s = wait_for_listener(port);
            let mut greeting = String::new();
            let _ = s.read_to_string(&mut greeting);
            if greeting == "greeting" {
                s.write_all(b"after your eof").unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                break;
            }
            assert!(Instant::now() < deadline, "{who:?}: no greeting");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = child;
        let mut out = child.stdout.take().unwrap();
        let mut line = [0u8; 14];
        out.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"after your eof", "{who:?}");
        stop(child);
    }
}

/// A connection to the host's exposed port, once it listens.
fn wait_for_listener(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return s;
        }
        assert!(Instant::now() < deadline, "no listener on the host");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_thousand_short_connections_each_get_through() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let port = free_port();
        let child = sandbox(h, who, port, "0", "echo");
        drop(connect_when_up("127.0.0.1", port));
        for i in 0..1000u32 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let byte = [(i % 251) as u8];
            s.write_all(&byte).unwrap();
            let mut back = [0u8; 1];
            s.read_exact(&mut back)
                .unwrap_or_else(|e| panic!("{who:?}: connection {i}: {e}"));
            assert_eq!(back, byte, "{who:?}: connection {i}");
        }
        stop(child);
    }
}

/// A server that listens on ::1 alone inside (as Node 17+ binds
/// `localhost`) is reached too: 127.0.0.1 refuses, [::1] is tried.
#[test]
fn a_server_on_ipv6_loopback_alone_is_reached_too() {
    let Some(h) = harness() else { return };
    if !host_has_ipv6() {
        eprintln!("skipped: no IPv6 loopback here, so none inside either");
        return;
    }
    for who in h.identities() {
        let port = free_port();
        let child = sandbox_on(h, who, port, "0", "echo", "::1");
        let mut s = connect_when_up("127.0.0.1", port);
        s.write_all(b"v6").unwrap();
        let mut back = [0u8; 2];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"v6", "{who:?}");
        stop(child);
    }
}

/// The forwarder works inward only: from inside, the exposed port is
/// just the sandbox's own loopback port (refused while nothing listens
/// there), never the host's listener.
#[test]
fn nothing_inside_reaches_the_host_through_it() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let port = free_port().to_string();
        let probe = "import socket, sys\n\
                     try:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5)\n    print('connected')\n\
                     except OSError as e:\n    print(e.errno)";
        let mut args = vec!["--unshare-net", "--expose", &port];
        args.extend(with_mounts(&[], &["/usr/bin/python3", "-c", probe, &port]));
        let out = h.run(who, &args);
        assert_eq!(out.status.code(), Some(0), "{who:?}: {}", stderr(&out));
        assert_eq!(common::stdout(&out).trim(), "111", "{who:?}");
    }
}

/// The workload exits on its own: the launcher's exit takes the exposed
/// listener with it.
#[test]
fn the_listener_goes_when_the_workload_exits() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let port = free_port().to_string();
        let mut args = vec!["--unshare-net", "--expose", &port];
        args.extend(with_mounts(&[], &["sh", "-c", "exit 3"]));
        let out = h.run(who, &args);
        assert_eq!(out.status.code(), Some(3), "{who:?}: {}", stderr(&out));
        assert!(
            TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok(),
            "{who:?}: the port is still taken"
        );
    }
}

/// Bad input: a port taken on the host is exit 125 on one line naming
/// it; a bad number, or `--expose` without `--unshare-net`, exit 2.
#[test]
fn bad_exposes_are_one_line_errors() {
    let Some(h) = harness() else { return };
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().port().to_string();
    for who in h.identities() {
        for (args, code, words) in [
            (
                vec!["--unshare-net", "--expose", &taken],
                125,
                format!("--expose {taken}"),
            ),
            (vec!["--unshare-net", "--expose", "0"], 2, "--expose".into()),
            (
                vec!["--unshare-net", "--expose", "http"],
                2,
                "--expose".into(),
            ),
            (vec!["--expose", "8080"], 2, "--unshare-net".into()),
        ] {
            let mut all = args.clone();
            all.extend(with_mounts(&[], &["true"]));
            let out = h.run(who, &all);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{who:?} {args:?}: {err}");
            assert!(
                err.contains(&words) && err.lines().count() == 1,
                "{who:?} {args:?}: {err}"
            );
        }
    }
}
