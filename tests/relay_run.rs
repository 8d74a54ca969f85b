//! In-sandbox relays (`run --relay`, SPEC §3.1): the workload talks TCP to
//! loopback inside its own network namespace, a relay outside its PID and
//! mount namespaces carries the bytes to a host unix socket.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::net::{
    Behaviour, children, is_gone, settled, slow_unix_server, tcp_nodelay_of_connections,
    unix_server,
};
use common::{Harness, Who, harness, ok, stderr, stdout, wait_until};

const PORT: &str = "3128";

/// A scratch directory with a unix echo server in it.
fn echo_socket(h: &Harness) -> (common::Scratch, std::path::PathBuf) {
    let dir = h.scratch();
    let sock = dir.path().join("echo.sock");
    unix_server(&sock, Behaviour::Echo);
    (dir, sock)
}

/// `run --unshare-net --relay 3128 SOCK <basic mounts> -- python3 client.py ARGS`.
fn relay_args<'a>(h: &'a Harness, socket: &'a str, client_args: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--unshare-net", "--relay", PORT, socket];
    args.extend(common::with_mounts(
        &[],
        &["/usr/bin/python3", h.client_str()],
    ));
    args.extend(client_args);
    args
}

#[test]
fn sixty_four_mib_each_way_byte_exact_on_ipv4_and_ipv6() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    let sock = sock.to_str().unwrap();
    for who in h.identities() {
        for host in ["127.0.0.1", "::1"] {
            let out = ok(&h.run(who, &relay_args(h, sock, &["echo", host, PORT, "67108864"])));
            assert!(
                out.starts_with("echo ok 67108864 "),
                "{who:?} {host}: {out}"
            );
        }
    }
}

#[test]
fn half_close_passes_through_both_ways() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let up = dir.path().join("up.sock");
    let down = dir.path().join("down.sock");
    unix_server(&up, Behaviour::ReplyAfterEof);
    let received = unix_server(&down, Behaviour::GreetThenRead);
    for who in h.identities() {
        // Client -> server EOF arrives, and the reply still flows back.
        let out = ok(&h.run(
            who,
            &relay_args(
                h,
                up.to_str().unwrap(),
                &["send-then-read", "127.0.0.1", PORT],
            ),
        ));
        assert_eq!(out.trim(), "reply got 7", "{who:?}");
        // Server -> client EOF arrives, and the client can still send.
        let out = ok(&h.run(
            who,
            &relay_args(
                h,
                down.to_str().unwrap(),
                &["read-then-send", "127.0.0.1", PORT],
            ),
        ));
        assert_eq!(out.trim(), "greeting greeting", "{who:?}");
        let got = received
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        assert_eq!(got, b"after-eof", "{who:?}");
    }
}

#[test]
fn an_upstream_that_answers_and_leaves_still_gets_its_answer_through() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let sock = dir.path().join("tag.sock");
    // Writes "bye" and closes at once, never reading what the client sends:
    // writing to it fails (EPIPE), which must end only that direction.
    unix_server(&sock, Behaviour::Tag("bye"));
    for who in h.identities() {
        for _ in 0..5 {
            let out = ok(&h.run(
                who,
                &relay_args(
                    h,
                    sock.to_str().unwrap(),
                    &["send-big-then-read", "127.0.0.1", PORT],
                ),
            ));
            assert_eq!(out.trim(), "answered bye", "{who:?}");
        }
    }
}

#[test]
fn two_hundred_concurrent_connections() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        let out = ok(&h.run(
            who,
            &relay_args(
                h,
                sock.to_str().unwrap(),
                &["concurrent", "127.0.0.1", PORT, "200"],
            ),
        ));
        assert_eq!(out.trim(), "concurrent 200/200", "{who:?}");
    }
}

/// A unix server whose backlog is full answers the relay's connects with
/// EAGAIN; the relay retries each (every 5 ms, for 5 s) and every
/// connection gets through once the server accepts, 300 ms later.
#[test]
fn connections_wait_out_a_full_unix_backlog() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let sock = dir.path().join("slow.sock");
        slow_unix_server(&sock, Behaviour::Echo, Duration::from_millis(300));
        let out = ok(&h.run(
            who,
            &relay_args(
                h,
                sock.to_str().unwrap(),
                &["concurrent", "127.0.0.1", PORT, "20"],
            ),
        ));
        assert_eq!(out.trim(), "concurrent 20/20", "{who:?}");
    }
}

#[test]
fn ten_thousand_short_connections_without_fd_or_memory_growth() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    let who = Who::User;
    let mut child = h
        .command(
            who,
            &relay_args(
                h,
                sock.to_str().unwrap(),
                &["phases", "127.0.0.1", PORT, "10000"],
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "warm");
    let relay = relay_of(child.id());
    let before = settled(relay);
    writeln!(stdin).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "short 10000/10000");
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    let after = settled(relay);
    writeln!(stdin).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        before.0, after.0,
        "relay descriptors grew: {before:?} -> {after:?}"
    );
    assert!(
        after.1 <= before.1 + 512,
        "relay memory grew: {} kB -> {} kB",
        before.1,
        after.1
    );
}

/// Starts a sandbox with `extra` options and one relay whose workload says
/// "ready" and waits for a line on stdin; returns it once ready.
fn spawn_waiting(h: &Harness, who: Who, extra: &[&str], sock: &str) -> std::process::Child {
    spawn_until_ready(h, who, extra, sock, &["sh", "-c", "echo ready; read line"])
}

/// The same with `workload` as the command: it prints "ready" when it
/// is, and ends when its stdin does.
fn spawn_until_ready(
    h: &Harness,
    who: Who,
    extra: &[&str],
    sock: &str,
    workload: &[&str],
) -> std::process::Child {
    let mut args = extra.to_vec();
    args.extend(["--unshare-net", "--relay", PORT, sock]);
    args.extend(common::with_mounts(&[], workload));
    let mut child = h
        .command(who, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{who:?}");
    child
}

/// The relay process of a running launcher: its child that is not PID 1
/// (PID 1's children are the workload; a relay has none).
fn relay_of(launcher: u32) -> u32 {
    let kids = children(launcher);
    *kids
        .iter()
        .find(|&&k| children(k).is_empty())
        .unwrap_or_else(|| panic!("no relay among {kids:?}"))
}

/// Small writes through the relay are never held back by Nagle: the
/// socket it accepted from the workload has TCP_NODELAY (inherited from
/// its listener, not set per connection).
#[test]
fn accepted_connections_have_tcp_nodelay() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        let hold = "import socket,sys; s=socket.create_connection(('127.0.0.1',3128)); \
                    print('ready',flush=True); sys.stdin.readline()";
        let workload = ["/usr/bin/python3", "-c", hold];
        let mut child = spawn_until_ready(h, who, &[], sock.to_str().unwrap(), &workload);
        let relay = relay_of(child.id());
        let mut nodelay = Vec::new();
        assert!(
            wait_until(5, || {
                nodelay = tcp_nodelay_of_connections(relay);
                !nodelay.is_empty()
            }),
            "{who:?}: the relay holds no accepted connection"
        );
        assert_eq!(nodelay, [true], "{who:?}");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{who:?}");
    }
}

#[test]
fn relay_survives_kill_minus_one_from_inside() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        let out = h.run(
            who,
            &relay_args(h, sock.to_str().unwrap(), &["kill-all", "127.0.0.1", PORT]),
        );
        // kill(-1, SIGKILL) reaches every process of the sandbox but the
        // caller and PID 1; the relay is not among them.
        assert_eq!(
            stdout(&out).trim(),
            "kill-all True True",
            "{who:?}: {}",
            stderr(&out)
        );
        // The same from a shell: kill -9 -1 takes the background job, and
        // the relay still answers.
        let script = format!(
            "sleep 100 & kill -9 -1; /usr/bin/python3 {} short 127.0.0.1 {PORT} 3",
            h.client_str()
        );
        let mut args = vec!["--unshare-net", "--relay", PORT, sock.to_str().unwrap()];
        args.extend(common::with_mounts(&[], &["sh", "-c", &script]));
        let out = h.run(who, &args);
        assert!(
            stdout(&out).contains("short 3/3"),
            "{who:?}: {} {}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn swapping_the_socket_path_inside_does_not_redirect() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let real = dir.path().join("real.sock");
        let other = dir.path().join("other.sock");
        unix_server(&real, Behaviour::Tag("real"));
        unix_server(&other, Behaviour::Tag("other"));
        let (real_s, other_s, dir_s) = (real.to_str().unwrap(), other.to_str().unwrap(), dir.str());
        // The directory is writable inside: the workload replaces the
        // socket with a symlink to another socket, then connects.
        let mut args = vec!["--unshare-net", "--relay", PORT, real_s];
        args.extend(common::with_mounts(
            &["--bind", dir_s, dir_s],
            &[
                "/usr/bin/python3",
                h.client_str(),
                "swap",
                real_s,
                other_s,
                "127.0.0.1",
                PORT,
            ],
        ));
        let out = ok(&h.run(who, &args));
        assert_eq!(out.trim(), "answered real", "{who:?}");
    }
}

#[test]
fn missing_socket_is_125_and_the_workload_never_runs() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let marker = dir.path().join("ran");
    for who in h.identities() {
        let script = format!("touch {}", marker.display());
        let mut args = vec!["--unshare-net", "--relay", PORT, "/nonexistent/srtl.sock"];
        args.extend(common::with_mounts(
            &["--bind", dir.str(), dir.str()],
            &["sh", "-c", &script],
        ));
        let out = h.run(who, &args);
        assert_eq!(out.status.code(), Some(125), "{who:?}");
        assert!(
            stderr(&out).contains("--relay 3128 /nonexistent/srtl.sock: No such file"),
            "{}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{who:?}: the workload ran");
    }
}

#[test]
fn relay_usage_errors_exit_2() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    let sock = sock.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["--relay", PORT, sock, "--", "true"],
        &[
            "--unshare-net",
            "--relay",
            PORT,
            sock,
            "--relay",
            PORT,
            sock,
            "--",
            "true",
        ],
        &["--unshare-net", "--relay", "99999", sock, "--", "true"],
    ];
    for args in cases {
        let out = h.run(Who::User, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1);
    }
}

#[test]
fn first_instruction_connects_without_a_race() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        for _ in 0..10 {
            // The client's first act is the connect.
            let out = ok(&h.run(
                who,
                &relay_args(
                    h,
                    sock.to_str().unwrap(),
                    &["short", "localhost", PORT, "1"],
                ),
            ));
            assert_eq!(out.trim(), "short 1/1", "{who:?}");
        }
    }
}

#[test]
fn relay_holds_no_capabilities_and_no_seccomp_filter() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        let mut child = spawn_waiting(h, who, &["--seccomp-unix-block"], sock.to_str().unwrap());
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", relay_of(child.id()))).unwrap();
        writeln!(child.stdin.take().unwrap()).unwrap();
        child.wait().unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or_default()
                .to_string()
        };
        for set in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(set), "0000000000000000", "{who:?} relay {set}");
        }
        assert_eq!(
            field("Seccomp:"),
            "0",
            "{who:?}: the relay must not be filtered"
        );
        assert_eq!(field("NoNewPrivs:"), "1", "{who:?}");
    }
}

#[test]
fn relays_are_gone_after_the_launcher_exits_or_is_killed() {
    let Some(h) = harness() else { return };
    let (_dir, sock) = echo_socket(h);
    for who in h.identities() {
        for kill_launcher in [false, true] {
            let mut child = spawn_waiting(h, who, &[], sock.to_str().unwrap());
            let relay = relay_of(child.id());
            if kill_launcher {
                child.kill().unwrap();
            } else {
                writeln!(child.stdin.take().unwrap()).unwrap();
            }
            child.wait().unwrap();
            assert!(
                wait_until(10, || is_gone(relay)),
                "{who:?} killed={kill_launcher}: relay {relay} outlived the launcher"
            );
        }
    }
}
