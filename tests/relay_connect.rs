//! The `relay` (SPEC §3.2) and `connect` (SPEC §3.3) subcommands, against
//! real servers on loopback and unix sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::net::{Behaviour, ReservedPort, is_gone, process_state, settled, tcp_server};
use common::{Harness, harness, stderr, stdout, wait_until};

/// Starts `relay --ready-fd 1 SOCKET TARGET` and waits for the ready byte.
fn start_relay(h: &Harness, socket: &std::path::Path, target: &str) -> Child {
    let mut child = Command::new(&h.launcher)
        .arg("relay")
        .arg(socket)
        .arg(target)
        .args(["--ready-fd", "1"]) // options after positionals
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut byte = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut byte)
        .unwrap();
    child
}

fn exchange(socket: &std::path::Path, payload: &[u8]) -> Vec<u8> {
    try_exchange(socket, payload).unwrap()
}

/// One request/response over the relay; an error is returned, not raised,
/// for callers that expect some attempts to be turned away.
fn try_exchange(socket: &std::path::Path, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(payload)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    s.read_to_end(&mut back)?;
    Ok(back)
}

/// Writes `data` through the relay at `socket` while a second thread reads
/// the echo back, so neither direction waits on the other; then half-closes
/// and returns everything that came back.
fn echo_through(socket: &std::path::Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    let mut reader = s.try_clone()?;
    let back = std::thread::spawn(move || {
        let mut v = Vec::new();
        reader.read_to_end(&mut v).map(|_| v)
    });
    let sent = s
        .write_all(data)
        .and_then(|()| s.shutdown(std::net::Shutdown::Write));
    let back = back.join().expect("reader thread");
    sent.and(back)
}

#[test]
fn relay_writes_one_ready_byte_and_nothing_else() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (port, _) = tcp_server("127.0.0.1:0", Behaviour::Echo);
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{port}"));
    assert_eq!(exchange(&sock, b"hello"), b"hello");
    relay.kill().unwrap();
    relay.wait().unwrap();
    let mut rest = Vec::new();
    relay.stdout.take().unwrap().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "stdout after the ready byte: {rest:?}");
}

#[test]
fn relay_moves_64_mib_each_way_byte_exact_to_ipv4_and_ipv6() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (port, _) = tcp_server(bind, Behaviour::Echo);
        let target = bind.replace(":0", &format!(":{port}"));
        let sock = dir.path().join(format!("r{port}.sock"));
        let mut relay = start_relay(h, &sock, &target);
        let data: Vec<u8> = (0..64u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let back = echo_through(&sock, &data).unwrap();
        assert_eq!(back.len(), data.len(), "{target}");
        assert!(back == data, "{target}: bytes differ");
        relay.kill().unwrap();
        relay.wait().unwrap();
    }
}

#[test]
fn relay_passes_half_close_both_ways() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (up_port, _) = tcp_server("127.0.0.1:0", Behaviour::ReplyAfterEof);
    let (down_port, received) = tcp_server("127.0.0.1:0", Behaviour::GreetThenRead);
    let up = dir.path().join("up.sock");
    let down = dir.path().join("down.sock");
    let mut r1 = start_relay(h, &up, &format!("127.0.0.1:{up_port}"));
    let mut r2 = start_relay(h, &down, &format!("127.0.0.1:{down_port}"));
    assert_eq!(exchange(&up, b"request"), b"got 7");
    let mut s = UnixStream::connect(&down).unwrap();
    let mut greeting = Vec::new();
    s.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, b"greeting");
    s.write_all(b"after-eof").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        received.recv_timeout(Duration::from_secs(30)).unwrap(),
        b"after-eof"
    );
    for r in [&mut r1, &mut r2] {
        r.kill().unwrap();
        r.wait().unwrap();
    }
}

#[test]
fn relay_serves_200_concurrent_and_10000_short_connections_without_growth() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (port, _) = tcp_server("127.0.0.1:0", Behaviour::Echo);
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{port}"));
    let conns: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    for (i, mut c) in conns.iter().enumerate() {
        c.write_all(format!("{i:06}").repeat(100).as_bytes())
            .unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    for (i, mut c) in conns.into_iter().enumerate() {
        let mut back = String::new();
        c.read_to_string(&mut back).unwrap();
        assert_eq!(back, format!("{i:06}").repeat(100));
    }
    for _ in 0..200 {
        assert_eq!(exchange(&sock, b"w"), b"w");
    }
    let before = settled(relay.id());
    for _ in 0..10_000 {
        assert_eq!(exchange(&sock, b"x"), b"x");
    }
    let after = settled(relay.id());
    assert_eq!(
        before.0, after.0,
        "descriptors grew: {before:?} -> {after:?}"
    );
    assert!(
        after.1 <= before.1 + 512,
        "memory grew: {before:?} -> {after:?}"
    );
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_closes_a_client_promptly_when_upstream_refuses_and_keeps_serving() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let reserved = ReservedPort::new();
    let port = reserved.port();
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{port}"));
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        s.read_to_end(&mut buf).unwrap(),
        0,
        "refused upstream: EOF, not a hang"
    );
    // Upstream appears: the same relay now forwards.
    let listener = reserved.listen();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut v = Vec::new();
        c.read_to_end(&mut v).unwrap();
        c.write_all(&v).unwrap();
        // Vanish mid-connection for the next client: drop the listener.
    });
    assert_eq!(exchange(&sock, b"back"), b"back");
    server.join().unwrap();
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_survives_an_upstream_that_leaves_without_reading() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (gone_port, _) = tcp_server("127.0.0.1:0", Behaviour::Tag("bye"));
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{gone_port}"));
    for _ in 0..5 {
        // 4 MiB the upstream never reads: writes to it fail (EPIPE or a
        // reset), which must end that connection only, not the relay.
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&vec![b'z'; 4 << 20]);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The relay has handled this connection once it closes our end:
        // read to EOF (or the reset), whatever came before it.
        let mut sink = Vec::new();
        let ended = s.read_to_end(&mut sink);
        assert!(
            !matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the relay never closed a connection whose upstream left"
        );
    }
    assert!(!is_gone(relay.id()), "the relay died when an upstream left");
    assert_eq!(exchange(&sock, b""), b"bye", "the relay stopped serving");
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_errors() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let existing = dir.file("exists", "data");
    let out = Command::new(&h.launcher)
        .arg("relay")
        .arg(&existing)
        .arg("127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "data",
        "replaced"
    );
    for target in [
        "localhost:80",
        "example.com:443",
        "127.0.0.1",
        "127.0.0.1:0",
        "[::1]",
    ] {
        let out = Command::new(&h.launcher)
            .arg("relay")
            .arg(dir.path().join("x.sock"))
            .arg(target)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    assert!(!dir.path().join("x.sock").exists());
}

#[test]
fn relay_dies_with_its_parent() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let sock = dir.path().join("r.sock");
    let inner = format!(
        "{} relay --ready-fd 1 {} 127.0.0.1:1 & wait",
        h.launcher_str(),
        sock.display()
    );
    let mut parent = Command::new("sh")
        .args(["-c", &inner])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut byte = [0u8; 1];
    parent
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut byte)
        .unwrap();
    let relay = common::net::children(parent.id())[0];
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        wait_until(10, || is_gone(relay)),
        "the relay outlived its parent"
    );
}

// ------------------------------------------------------------- connect

/// A fake HTTP proxy: records the request header, answers with `response`
/// (in the same write as any tunnel bytes), then echoes the tunnel.
fn fake_proxy(bind: &str, response: &'static [u8]) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind(bind).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut header = Vec::new();
            let mut byte = [0u8; 1];
            while !header.ends_with(b"\r\n\r\n") {
                if conn.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                header.push(byte[0]);
            }
            let _ = tx.send(String::from_utf8_lossy(&header).into_owned());
            let _ = conn.write_all(response);
            let mut buf = [0u8; 65536];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = conn.write_all(&buf[..n]);
                    }
                }
            }
            let _ = conn.write_all(b"|bye");
            let _ = conn.shutdown(std::net::Shutdown::Write);
        }
    });
    (port, rx)
}

fn connect_cmd(h: &Harness, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(&h.launcher)
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn connect_tunnels_with_header_packet_bytes_and_half_close() {
    let Some(h) = harness() else { return };
    let (port, requests) = fake_proxy(
        "127.0.0.1:0",
        b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-early|",
    );
    let proxy = format!("127.0.0.1:{port}");
    let out = connect_cmd(h, &["github.com", "22", "--proxy", &proxy], b"ping");
    assert!(out.status.success(), "{}", stderr(&out));
    // Tunnel bytes from the header packet first, the echo after our EOF
    // reached the proxy, then the proxy's own last words.
    assert_eq!(stdout(&out), "SSH-2.0-early|ping|bye");
    assert_eq!(
        requests.recv().unwrap(),
        "CONNECT github.com:22 HTTP/1.1\r\nHost: github.com:22\r\n\r\n"
    );
}

#[test]
fn connect_sends_the_exact_proxy_authorization() {
    let Some(h) = harness() else { return };
    let (port, requests) = fake_proxy("127.0.0.1:0", b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n");
    let proxy = format!("127.0.0.1:{port}");
    let out = connect_cmd(
        h,
        &[
            "host",
            "2222",
            "--proxy",
            &proxy,
            "--proxy-auth",
            "alice:s3cr3t:x",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        requests.recv().unwrap(),
        "CONNECT host:2222 HTTP/1.1\r\nHost: host:2222\r\n\
         Proxy-Authorization: Basic YWxpY2U6czNjcjN0Ong=\r\n\r\n"
    );
}

#[test]
fn connect_ipv6_host_and_ipv6_proxy() {
    let Some(h) = harness() else { return };
    let (port, requests) = fake_proxy("[::1]:0", b"HTTP/1.1 200 OK\r\n\r\n");
    let proxy = format!("[::1]:{port}");
    for (host, expected) in [("::1", "[::1]:22"), ("[2001:db8::1]", "[2001:db8::1]:22")] {
        let out = connect_cmd(h, &[host, "22", "--proxy", &proxy], b"v6");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "v6|bye");
        let req = requests.recv().unwrap();
        assert!(
            req.starts_with(&format!(
                "CONNECT {expected} HTTP/1.1\r\nHost: {expected}\r\n"
            )),
            "{req}"
        );
    }
}

#[test]
fn connect_refusal_prints_the_status_line() {
    let Some(h) = harness() else { return };
    let (port, _) = fake_proxy(
        "127.0.0.1:0",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    );
    let out = connect_cmd(
        h,
        &[
            "blocked.example",
            "22",
            "--proxy",
            &format!("127.0.0.1:{port}"),
        ],
        b"",
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("HTTP/1.1 403 Forbidden"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn connect_refuses_an_oversized_header() {
    let Some(h) = harness() else { return };
    let huge: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let (port, _) = fake_proxy("127.0.0.1:0", huge);
    let out = connect_cmd(
        h,
        &["h", "22", "--proxy", &format!("127.0.0.1:{port}")],
        b"",
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("8192"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn connect_validates_before_sending_a_byte() {
    let Some(h) = harness() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let proxy = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let bad_hosts = [
        "evil\r\nX-Injected: 1",
        "a\nb",
        "has space",
        "user@host",
        "a/b",
        "a;b",
        "",
        // Brackets hold an IPv6 address and nothing else.
        "[1.2.3.4]",
        "[]",
        "[::1",
        "[fe80::1%eth0]",
        "a:b",
    ];
    for host in bad_hosts {
        let out = connect_cmd(h, &[host, "22", "--proxy", &proxy], b"");
        assert_eq!(out.status.code(), Some(2), "{host:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{host:?}");
    }
    for port in ["0", "65536", "-1", "ssh"] {
        let out = connect_cmd(h, &["host", port, "--proxy", &proxy], b"");
        assert_eq!(out.status.code(), Some(2), "{port}: {}", stderr(&out));
    }
    for bad_proxy in ["proxy.local:3128", "127.0.0.1", "::1:3128"] {
        let out = connect_cmd(h, &["host", "22", "--proxy", bad_proxy], b"");
        assert_eq!(out.status.code(), Some(2), "{bad_proxy}: {}", stderr(&out));
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection reached the proxy"
    );
}

#[test]
fn connect_to_an_unreachable_proxy_fails_clearly() {
    let Some(h) = harness() else { return };
    let reserved = ReservedPort::new();
    let port = reserved.port();
    let out = connect_cmd(
        h,
        &["host", "22", "--proxy", &format!("127.0.0.1:{port}")],
        b"",
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Connection refused"),
        "{}",
        stderr(&out)
    );
}

/// A bulk flow normally splices through a pipe of its own; with no
/// descriptor left for that pipe it must go on through the shared buffer,
/// never drop the connection.
#[test]
fn relay_carries_bulk_data_when_no_descriptor_is_left_for_a_pipe() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (port, _) = tcp_server("127.0.0.1:0", Behaviour::Echo);
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{port}"));
    let open: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", relay.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    // New descriptors take the lowest free numbers: a limit just above
    // the second free number leaves room for exactly two more, the client
    // and its upstream socket (inherited descriptors above it stay open).
    let limit = (0..)
        .filter(|n| !open.contains(n))
        .nth(1)
        .expect("free descriptor numbers")
        + 1;
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads `lim` and writes nothing (old limit pointer null).
    let rc = unsafe {
        libc::prlimit(
            relay.id() as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let data: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i * 7 + (i >> 11)) as u8)
        .collect();
    let back = echo_through(&sock, &data).expect("the relay dropped the connection");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ");
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_backs_off_when_out_of_descriptors_and_recovers() {
    use std::os::unix::process::CommandExt;
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (port, _) = tcp_server("127.0.0.1:0", Behaviour::Echo);
    let sock = dir.path().join("r.sock");
    let mut cmd = Command::new(&h.launcher);
    cmd.arg("relay")
        .args(["--ready-fd", "1"])
        .arg(&sock)
        .arg(format!("127.0.0.1:{port}"))
        .env("SRT_LAUNCHER_LOG", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe. A hard limit of 24
    // descriptors: the relay runs out after a few connections.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 24,
                rlim_max: 24,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut relay = cmd.spawn().unwrap();
    let mut byte = [0u8; 1];
    relay
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut byte)
        .unwrap();
    // The trace, read as it comes: the lines say when EMFILE was met.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let trace = relay.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(trace).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    // 40 clients at once: more than the relay can hold.
    let held: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let paused = loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("pausing accept") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    assert!(paused, "the EMFILE path was not taken: {seen:?}");
    // With clients still queued and no descriptor to take them, a relay
    // that backs off blocks in epoll_wait (state S); one that spins on
    // the readable listener is always running (R) and never sleeps.
    assert!(
        wait_until(10, || process_state(relay.id()) == 'S'),
        "the relay never slept while out of descriptors: it spins"
    );
    assert!(!is_gone(relay.id()), "the relay died of EMFILE");
    drop(held);
    // Descriptors free again: it serves. While it is still closing the
    // held clients, an attempt may be turned away (its upstream socket()
    // meets EMFILE and the client is closed, a reset since "again" was
    // unread): that is the documented refusal, so retry until one passes.
    assert!(
        wait_until(10, || try_exchange(&sock, b"again")
            .is_ok_and(|b| b == b"again")),
        "the relay did not recover"
    );
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_upstream_connections_carry_keepalive() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let (port, _) = tcp_server("127.0.0.1:0", Behaviour::Echo);
    let sock = dir.path().join("r.sock");
    let mut relay = start_relay(h, &sock, &format!("127.0.0.1:{port}"));
    let mut client = UnixStream::connect(&sock).unwrap();
    client.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).unwrap();
    // /proc/net/tcp: the relay's end has the server's port as remote port;
    // an idle keepalive socket shows timer type 02 in the "tr" column.
    let remote = format!(":{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let row = table
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|r| r.ends_with(&remote))
        })
        .unwrap_or_else(|| panic!("no connection to {port} in {table}"));
    let timer = row.split_whitespace().nth(5).unwrap();
    assert!(
        timer.starts_with("02:"),
        "no keepalive timer on the upstream: {row}"
    );
    drop(client);
    relay.kill().unwrap();
    relay.wait().unwrap();
}

/// What `connect`'s stdin or stdout is, as ssh and other callers hand it
/// over: epoll refuses regular files and /dev/null, which are always ready.
#[derive(Clone, Copy, Debug)]
enum StdioKind {
    Pipe,
    File,
    DevNull,
    Socket,
}

#[test]
fn connect_pumps_any_kind_of_stdin_and_stdout() {
    use std::os::fd::OwnedFd;
    let Some(h) = harness() else { return };
    let (port, _) = fake_proxy("127.0.0.1:0", b"HTTP/1.1 200 OK\r\n\r\n");
    let proxy = format!("127.0.0.1:{port}");
    let dir = h.scratch();
    let kinds = [
        StdioKind::Pipe,
        StdioKind::File,
        StdioKind::DevNull,
        StdioKind::Socket,
    ];
    for (n, (input, output)) in kinds
        .iter()
        .flat_map(|i| kinds.iter().map(move |o| (*i, *o)))
        .enumerate()
    {
        let case = format!("stdin {input:?}, stdout {output:?}");
        let mut cmd = Command::new(&h.launcher);
        cmd.args(["connect", "h", "22", "--proxy", &proxy])
            .stderr(Stdio::piped());
        let mut stdin_socket = None;
        match input {
            StdioKind::Pipe => cmd.stdin(Stdio::piped()),
            StdioKind::File => {
                cmd.stdin(std::fs::File::open(dir.file(&format!("in{n}"), "ping")).unwrap())
            }
            StdioKind::DevNull => cmd.stdin(Stdio::null()),
            StdioKind::Socket => {
                let (mine, theirs) = UnixStream::pair().unwrap();
                stdin_socket = Some(mine);
                cmd.stdin(OwnedFd::from(theirs))
            }
        };
        let out_path = dir.path().join(format!("out{n}"));
        let mut stdout_socket = None;
        match output {
            StdioKind::Pipe => cmd.stdout(Stdio::piped()),
            StdioKind::File => cmd.stdout(std::fs::File::create(&out_path).unwrap()),
            StdioKind::DevNull => cmd.stdout(Stdio::null()),
            StdioKind::Socket => {
                let (mine, theirs) = UnixStream::pair().unwrap();
                stdout_socket = Some(mine);
                cmd.stdout(OwnedFd::from(theirs))
            }
        };
        let mut child = cmd.spawn().unwrap();
        drop(cmd); // our copies of the child's stdio descriptors
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"ping").unwrap();
        }
        if let Some(mut s) = stdin_socket.take() {
            s.write_all(b"ping").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            stdin_socket = Some(s);
        }
        // Read the socket while connect runs, so a full buffer cannot
        // stall it; a pipe is read by wait_with_output.
        let reader = stdout_socket.take().map(|mut s| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                s.read_to_end(&mut v).map(|_| v)
            })
        });
        // A hang guard, not a timing assertion: the proxy has closed, so
        // connect must end by itself.
        let pid = child.id();
        if !wait_until(20, || is_gone(pid)) {
            child.kill().unwrap();
            panic!("{case}: connect did not exit after the tunnel closed");
        }
        let out = child.wait_with_output().unwrap();
        drop(stdin_socket);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
        let expected = match input {
            StdioKind::DevNull => "|bye",
            _ => "ping|bye",
        };
        let got = match output {
            StdioKind::Pipe => Some(out.stdout),
            StdioKind::File => Some(std::fs::read(&out_path).unwrap()),
            StdioKind::DevNull => None,
            StdioKind::Socket => Some(reader.unwrap().join().unwrap().unwrap()),
        };
        if let Some(got) = got {
            assert_eq!(String::from_utf8_lossy(&got), expected, "{case}");
        }
    }
}
