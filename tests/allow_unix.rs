//! `--allow-unix` (SPEC §2.9), attacked from inside real sandboxes, as
//! root and as the unprivileged user: a host server the grant names
//! ("allowed", which answers `A`) and one it does not ("forbidden",
//! which answers `F` and counts every connection it accepts). Whatever
//! the workload tries, the forbidden server must accept nothing.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Harness, Scratch, Who, harness, ok, stderr, stdout, with_mounts};

/// A host unix server that greets each connection with one byte and
/// counts them.
struct Server {
    path: PathBuf,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    fn start(path: PathBuf, greeting: u8) -> Server {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(&[greeting]);
            }
        });
        Server { path, accepted }
    }

    fn str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The connections it accepted, once the count has settled: a
    /// client's connect returns as soon as the kernel queues it, before
    /// the server's accept (so the count is read when it has not moved
    /// for 100 ms, within 10 s).
    fn accepted(&self) -> usize {
        let mut last = self.accepted.load(Ordering::SeqCst);
        let mut still = 0;
        for _ in 0..1000 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let now = self.accepted.load(Ordering::SeqCst);
            still = if now == last { still + 1 } else { 0 };
            last = now;
            if still == 10 {
                break;
            }
        }
        last
    }
}

/// The two servers in a scratch directory.
struct Fixture {
    dir: Scratch,
    allowed: Server,
    forbidden: Server,
}

fn fixture(h: &Harness) -> Fixture {
    let dir = h.scratch();
    let allowed = Server::start(dir.path().join("allowed.sock"), b'A');
    let forbidden = Server::start(dir.path().join("forbidden.sock"), b'F');
    Fixture {
        dir,
        allowed,
        forbidden,
    }
}

/// How the grants are enforced in a case: by the kernel (Landlock ABI 9,
/// Linux 7.1+, run only where the kernel has it), by the broker taking
/// the caller's socket (Landlock hidden by the test probe), or by the
/// broker replacing it, as in a container that refuses `pidfd_getfd` and
/// `process_vm_readv` (the probe's `nogetfd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mech {
    Landlock,
    TakeSocket,
    ReplaceSocket,
}

type Case = (Who, Mech);

/// Whether this kernel has Landlock's unix socket right (ABI 9).
fn kernel_has_landlock_9(h: &Harness) -> bool {
    let out = Command::new(h.probe_str())
        .arg("landlock-abi")
        .output()
        .unwrap();
    let abi: i64 = stdout(&out).trim().parse().unwrap_or(-1);
    if abi < 9 {
        eprintln!("note: Landlock ABI {abi} < 9 (before Linux 7.1): its cases are not run here");
    }
    abi >= 9
}

/// Every identity with every mechanism this kernel has.
fn cases(h: &Harness) -> Vec<Case> {
    let mut mechs = vec![Mech::TakeSocket, Mech::ReplaceSocket];
    if kernel_has_landlock_9(h) {
        mechs.push(Mech::Landlock);
    }
    h.identities()
        .into_iter()
        .flat_map(|who| mechs.iter().map(move |m| (who, *m)))
        .collect()
}

/// The launcher's `run ARGS` as the case's identity, with its mechanism.
fn command(h: &Harness, (who, mech): Case, args: &[&str]) -> Command {
    let mut argv = Vec::new();
    match mech {
        Mech::Landlock => {}
        Mech::TakeSocket => argv.extend([h.probe_str(), "nolandlock", "--"]),
        Mech::ReplaceSocket => argv.extend([h.probe_str(), "nogetfd", "--"]),
    }
    argv.extend([h.launcher_str(), "run"]);
    argv.extend(args);
    let mut cmd = as_who(h, who, &argv);
    cmd.current_dir("/").stdin(std::process::Stdio::null());
    cmd
}

/// `run` with the host read-only, the scratch directory writable, a
/// private /tmp, `extra` options, then `command`.
fn run(h: &Harness, case: Case, f: &Fixture, extra: &[&str], cmd: &[&str]) -> Output {
    let mut mounts = vec!["--bind", f.dir.str(), f.dir.str()];
    mounts.extend(extra);
    command(h, case, &with_mounts(&mounts, cmd))
        .output()
        .unwrap()
}

/// A Python script that tries each way to name the forbidden socket and
/// prints `label=result` lines (result: the greeting, or the errno name).
const TRICKS: &str = r#"
import errno, os, socket, sys
allowed, forbidden, scratch = sys.argv[1:4]

def attempt(label, address, kind=socket.SOCK_STREAM):
    try:
        s = socket.socket(socket.AF_UNIX, kind)
    except OSError as e:
        print(f"{label}=socket-{errno.errorcode[e.errno]}"); return
    try:
        s.connect(address)
        print(f"{label}={s.recv(1).decode()}")
    except OSError as e:
        print(f"{label}={errno.errorcode[e.errno]}")

attempt("allowed", allowed)
attempt("seqpacket", allowed, socket.SOCK_SEQPACKET)
attempt("forbidden", forbidden)
attempt("spelling", forbidden.replace("/", "//").replace("forbidden.sock", "./forbidden.sock"))
os.symlink(forbidden, "/tmp/link.sock")
attempt("symlink", "/tmp/link.sock")
fd = os.open(forbidden, os.O_PATH)
attempt("proc-self-fd", f"/proc/self/fd/{fd}")
os.chdir(scratch)
attempt("relative", "forbidden.sock")
attempt("relative-allowed", "allowed.sock")
os.chdir("/tmp")
attempt("relative-dotdot", os.path.relpath(forbidden, "/tmp"))
attempt("hard-link", os.path.join(scratch, "hardlink.sock"))
os.rename(forbidden, allowed)
attempt("renamed-over-allowed", allowed)
attempt("datagram", allowed, socket.SOCK_DGRAM)
attempt("abstract", "\0srtl-abstract")
a, b = socket.socketpair()
a.send(b"p")
print(f"socketpair={b.recv(1).decode()}")
"#;

/// `argv` run as `who` (through setpriv from a root test).
fn as_who(h: &Harness, who: Who, argv: &[&str]) -> Command {
    let mut words = h.setpriv_argv(who);
    words.extend(argv.iter().map(|w| w.to_string()));
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

#[test]
fn only_the_granted_socket_is_reached_whatever_names_the_other() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let script = f.dir.file("tricks.py", TRICKS);
        // Another name of the forbidden inode (made here: the kernel lets
        // only a file's owner link it, and the servers are the test's).
        std::fs::hard_link(&f.forbidden.path, f.dir.path().join("hardlink.sock")).unwrap();
        let out = run(
            h,
            (who, mech),
            &f,
            &["--allow-unix", f.allowed.str()],
            &[
                "python3",
                script.to_str().unwrap(),
                f.allowed.str(),
                f.forbidden.str(),
                f.dir.str(),
            ],
        );
        let text = ok(&out);
        let want = [
            "allowed=A",
            "seqpacket=EPROTOTYPE",
            "forbidden=EACCES",
            "spelling=EACCES",
            "symlink=EACCES",
            "proc-self-fd=EACCES",
            "relative=EACCES",
            "relative-allowed=A",
            "relative-dotdot=EACCES",
            "hard-link=EACCES",
            "renamed-over-allowed=EACCES",
            "datagram=socket-EPERM",
            if mech == Mech::Landlock {
                // Landlock's scope refuses it with its own errno.
                "abstract=EPERM"
            } else {
                "abstract=EACCES"
            },
            "socketpair=p",
        ];
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, want, "{who:?}/{mech:?}: {}", stderr(&out));
        assert_eq!(f.forbidden.accepted(), 0, "{who:?}/{mech:?}");
        // The seqpacket connect reached the (stream) server's socket and
        // got the kernel's own answer; it was not accepted.
        assert_eq!(f.allowed.accepted(), 2, "{who:?}/{mech:?}");
    }
}

#[test]
fn races_on_the_address_descriptor_or_directory_never_reach_the_forbidden_socket() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        // Two directories with a socket of the same name: a connect to
        // the relative name while the working directory flips.
        let a = f.dir.path().join("a");
        let b = f.dir.path().join("b");
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let near = Server::start(a.join("s"), b'A');
        let far = Server::start(b.join("s"), b'F');
        let probe = h.probe_str();
        let script = format!(
            "{probe} unix-race-address {allowed} {forbidden} 1500 && \
             {probe} unix-race-fd {forbidden} 1500 && \
             {probe} unix-race-cwd {a} {b} s 1500",
            allowed = f.allowed.str(),
            forbidden = f.forbidden.str(),
            a = a.display(),
            b = b.display(),
        );
        let near_path = near.str().to_string();
        let out = run(
            h,
            (who, mech),
            &f,
            &["--allow-unix", f.allowed.str(), "--allow-unix", &near_path],
            &["sh", "-c", &script],
        );
        let text = ok(&out);
        let counts: Vec<(usize, usize)> = text
            .lines()
            .map(|l| {
                let n: Vec<usize> = l
                    .split(' ')
                    .map(|kv| kv.split('=').nth(1).unwrap().parse().unwrap())
                    .collect();
                (n[0], n[1])
            })
            .collect();
        assert_eq!(counts.len(), 3, "{who:?}/{mech:?}: {text}");
        assert_eq!(f.forbidden.accepted(), 0, "{who:?}/{mech:?}: {text}");
        assert_eq!(far.accepted(), 0, "{who:?}/{mech:?}: {text}");
        // The races did run both ways: some connects reached the allowed
        // socket, some were refused.
        for (i, (connected, refused)) in counts.iter().enumerate() {
            assert_eq!(
                connected + refused,
                1500,
                "{who:?}/{mech:?} race {i}: {text}"
            );
            assert!(*refused > 0, "{who:?}/{mech:?} race {i}: {text}");
        }
        assert_eq!(
            counts[0].0,
            f.allowed.accepted(),
            "{who:?}/{mech:?}: {text}"
        );
        assert_eq!(counts[2].0, near.accepted(), "{who:?}/{mech:?}: {text}");
    }
}

/// A server the workload starts itself, by path, in each directory given
/// (a tmpfs and a disk filesystem, whose device numbers the kernel
/// encodes differently): reachable while it listens, ECONNREFUSED once
/// closed; abstract names only in a network namespace of the sandbox's
/// own.
const OWN_SERVERS: &str = r#"
import errno, os, socket, sys, threading
for directory in sys.argv[1:]:
    path = os.path.join(directory, "own.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    def answer():
        c, _ = server.accept(); c.send(b"S"); c.close()
    threading.Thread(target=answer).start()
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    print("own=" + c.recv(1).decode())
    server.close()
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        print("closed=connected")
    except OSError as e:
        print("closed=" + errno.errorcode[e.errno])
    os.unlink(path)
listener = socket.socket(socket.AF_UNIX)
listener.bind("\0srtl-own")
listener.listen(1)
try:
    socket.socket(socket.AF_UNIX).connect("\0srtl-own")
    print("abstract=connected")
except OSError as e:
    print("abstract=" + errno.errorcode[e.errno])
tcp = socket.socket()
try:
    tcp.connect(("127.0.0.1", 9))
    print("tcp=connected")
except OSError as e:
    print("tcp=" + errno.errorcode[e.errno])
# A non-blocking, close-on-exec TCP connect: EINPROGRESS (or done) as a
# direct call, on a socket that keeps both flags and ends up connected.
import fcntl, select
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
try:
    c.connect(server.getsockname())
except BlockingIOError:
    pass
select.select([], [c], [], 5)
connected = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and c.getpeername() == server.getsockname()
nonblocking = fcntl.fcntl(c, fcntl.F_GETFL) & os.O_NONBLOCK != 0
cloexec = fcntl.fcntl(c, fcntl.F_GETFD) & fcntl.FD_CLOEXEC != 0
print(f"nonblocking-tcp={connected} {nonblocking} {cloexec}")
"#;

#[test]
fn the_sandboxs_own_servers_stay_reachable() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let script = f.dir.file("own.py", OWN_SERVERS);
        let refused = if mech == Mech::Landlock {
            "EPERM"
        } else {
            "EACCES"
        };
        for (net, abstract_result) in [(false, refused), (true, "connected")] {
            let mut extra = vec!["--allow-unix", f.allowed.str()];
            if net {
                extra.push("--unshare-net");
            }
            let command = ["python3", script.to_str().unwrap(), "/tmp", f.dir.str()];
            let out = run(h, (who, mech), &f, &extra, &command);
            let text = ok(&out);
            let want = [
                "own=S".to_string(),
                "closed=ECONNREFUSED".to_string(),
                "own=S".to_string(),
                "closed=ECONNREFUSED".to_string(),
                format!("abstract={abstract_result}"),
                // Other families are connected by the broker too, with
                // the kernel's own answer.
                "tcp=ECONNREFUSED".to_string(),
                "nonblocking-tcp=True True True".to_string(),
            ];
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                want,
                "{who:?}/{mech:?} net={net}"
            );
        }
    }
}

#[test]
fn ssh_add_reaches_a_real_agent() {
    let Some(h) = harness() else { return };
    if Command::new("ssh-agent").arg("-h").output().is_err() {
        eprintln!("skipped: ssh-agent is not installed");
        assert!(
            std::env::var_os("SRT_LAUNCHER_REQUIRE_SANDBOX").is_none(),
            "ssh-agent is required (scripts/setup.sh installs openssh-client)"
        );
        return;
    }
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let agent = f.dir.path().join("agent.sock");
        let key = f.dir.path().join("id");
        // The agent runs as the identity the sandbox does (it only
        // answers its own uid), with one key in it.
        let host = format!(
            "ssh-keygen -q -t ed25519 -N '' -f {key} && ssh-agent -a {agent} >/dev/null && \
             SSH_AUTH_SOCK={agent} ssh-add -q {key}",
            key = key.display(),
            agent = agent.display()
        );
        let started = as_who(h, who, &["sh", "-c", &host])
            .env("HOME", f.dir.path())
            .output()
            .unwrap();
        assert!(started.status.success(), "{}", stderr(&started));
        let agent_str = agent.to_str().unwrap();
        let list = ["sh", "-c", "SSH_AUTH_SOCK=$0 ssh-add -l", agent_str];
        let out = run(h, (who, mech), &f, &["--allow-unix", agent_str], &list);
        let text = ok(&out);
        assert!(text.contains("ED25519"), "{who:?}/{mech:?}: {text}");
        // The control: the same command without the grant is refused.
        let out = run(
            h,
            (who, mech),
            &f,
            &["--allow-unix", f.allowed.str()],
            &list,
        );
        assert!(!out.status.success(), "{who:?}/{mech:?}: {}", stdout(&out));
        let _ = Command::new("pkill")
            .args(["-f", &format!("ssh-agent -a {agent_str}")])
            .status();
    }
}

#[test]
fn way_out_sockets_need_the_unsafe_option_by_path() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        for path in [
            "/run/dbus/system_bus_socket",
            "/var/run/docker.sock",
            "/run/user/1000/bus",
            "/run//systemd/private",
            "/run/containerd/containerd.sock",
            "/run/user/1000/podman/podman.sock",
        ] {
            let out = run(h, (who, mech), &f, &["--allow-unix", path], &["true"]);
            assert_eq!(out.status.code(), Some(2), "{who:?}/{mech:?} {path}");
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("way out") && err.contains("--allow-unix-unsafe"),
                "{err}"
            );
            // Named as unsafe it passes the check; this host has no such
            // socket (or it is not visible), which is then 125.
            let out = run(
                h,
                (who, mech),
                &f,
                &["--allow-unix-unsafe", path],
                &["true"],
            );
            assert_ne!(
                out.status.code(),
                Some(2),
                "{who:?}/{mech:?} {path}: {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn way_out_sockets_are_known_by_inode_under_another_name() {
    let Some(h) = harness() else { return };
    if !nix_is_root() {
        // Planting a session bus needs a directory of root's.
        eprintln!("skipped: the tests are not root, so no session bus can be planted in /run/user");
        return;
    }
    let f = fixture(h);
    // A session bus of a made-up user that is the allowed server's socket:
    // granting that socket by its own name must be refused as the bus.
    let user_dir = PathBuf::from(format!("/run/user/srtl-test-{}", std::process::id()));
    std::fs::create_dir_all(&user_dir).unwrap();
    let _cleanup = RemoveOnDrop(user_dir.clone());
    std::os::unix::fs::symlink(&f.allowed.path, user_dir.join("bus")).unwrap();
    for (who, mech) in cases(h) {
        for (option, code) in [("--allow-unix", 2), ("--allow-unix-unsafe", 0)] {
            let out = run(h, (who, mech), &f, &[option, f.allowed.str()], &["true"]);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{who:?}/{mech:?} {option}: {err}"
            );
            if code == 2 {
                assert!(
                    err.contains("D-Bus session bus") && err.contains("same socket"),
                    "{err}"
                );
            }
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok()
        == Some(0)
}

/// Removes a directory tree of the host when the test ends, passed or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Many threads connecting at once while signals keep interrupting them
/// (a SIGALRM handler without SA_RESTART every 0.5 ms): each connect ends
/// as a direct one may (EINTR, retried by the caller, means nothing was
/// done), reaches the allowed server once, and never the forbidden one.
#[test]
fn many_threads_and_signals_get_every_answer() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let command = [
            h.probe_str(),
            "unix-crowd",
            f.allowed.str(),
            f.forbidden.str(),
            "16",
            "50",
        ];
        let out = run(
            h,
            (who, mech),
            &f,
            &["--allow-unix", f.allowed.str()],
            &command,
        );
        let text = ok(&out);
        // 16 threads x 50 connects, one in five to the forbidden socket.
        assert_eq!(
            text.trim(),
            "reached=640 refused=160 other=0",
            "{who:?}/{mech:?}: {}",
            stderr(&out)
        );
        assert_eq!(f.allowed.accepted(), 640, "{who:?}/{mech:?}");
        assert_eq!(f.forbidden.accepted(), 0, "{who:?}/{mech:?}");
    }
}

/// i386 programs (`int 0x80`): the direct connect goes to the broker,
/// which reads its 32-bit arguments; socketcall(SYS_CONNECT), whose
/// arguments no filter can read, is EPERM (under Landlock, which checks
/// every entry point, it is allowed and checked like the direct call).
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_connects_are_brokered_too() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        for (target, connect) in [(&f.allowed, "ok"), (&f.forbidden, "13")] {
            let command = [h.probe_str(), "int80-connect", target.str()];
            let out = run(
                h,
                (who, mech),
                &f,
                &["--allow-unix", f.allowed.str()],
                &command,
            );
            let want = format!(
                "int80-socket=ok\nint80-connect={connect}\nint80-socketcall-connect={}\n",
                // Under Landlock the kernel checks every entry point alike.
                if mech == Mech::Landlock { connect } else { "1" }
            );
            assert_eq!(ok(&out), want, "{who:?}/{mech:?}");
        }
        assert_eq!(f.forbidden.accepted(), 0, "{who:?}/{mech:?}");
    }
}

/// A run without `--allow-unix` has no broker: none is prepared or
/// started (and its filter is the one it always had: see the seccomp
/// unit tests).
#[test]
fn a_run_without_grants_has_no_broker() {
    let Some(h) = harness() else { return };
    let f = fixture(h);
    let connect = format!(
        "import socket; socket.socket(socket.AF_UNIX).connect({:?})",
        f.allowed.str()
    );
    let args = ["--ro-bind", "/", "/", "--", "python3", "-c", &connect];
    let out = command(h, (Who::User, Mech::TakeSocket), &args)
        .env("SRT_LAUNCHER_LOG", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("broker"), "{}", stderr(&out));
    assert_eq!(f.allowed.accepted(), 1);
}

/// Each case runs the mechanism it names: the probe's refusals make the
/// broker replace sockets, and it says so in its trace.
#[test]
fn the_container_path_is_taken_where_pidfd_getfd_is_refused() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let connect = format!(
            "import socket; socket.socket(socket.AF_UNIX).connect({:?})",
            f.allowed.str()
        );
        let mut args = vec!["--ro-bind", "/", "/", "--allow-unix", f.allowed.str()];
        args.extend(["--", "python3", "-c", &connect]);
        let out = command(h, (who, mech), &args)
            .env("SRT_LAUNCHER_LOG", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{who:?}/{mech:?}: {}", stderr(&out));
        let want = match mech {
            Mech::Landlock => "enforced by Landlock".to_string(),
            _ => format!("broker: {mech:?}"),
        };
        assert!(
            stderr(&out).contains(&want),
            "{who:?}/{mech:?}: {}",
            stderr(&out)
        );
    }
}

/// Neither way open (no pidfd_getfd, no ADDFD with SETFD, no Landlock
/// ABI 9): exit 125, naming what is missing, and the command never runs.
#[test]
fn without_any_mechanism_the_run_is_refused() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let f = fixture(h);
        let marker = f.dir.path().join("ran");
        let touch = format!("touch {}", marker.display());
        let mut argv = vec![h.probe_str(), "noaddfd", "--", h.launcher_str(), "run"];
        argv.extend(["--ro-bind", "/", "/", "--allow-unix", f.allowed.str()]);
        argv.extend(["--", "sh", "-c", &touch]);
        let out = as_who(h, who, &argv).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("pidfd_getfd") && err.contains("ADDFD"),
            "{err}"
        );
        assert!(!marker.exists(), "{who:?}: the command ran");
    }
}

#[test]
fn bad_grants_are_one_line_errors() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        let file = f.dir.file("plain", "x");
        let missing = f.dir.path().join("missing.sock");
        for (grant, code, words) in [
            (missing.to_str().unwrap(), 125, "No such file"),
            (file.to_str().unwrap(), 125, "not a socket"),
            ("relative.sock", 2, "not an absolute path"),
        ] {
            let out = run(h, (who, mech), &f, &["--allow-unix", grant], &["true"]);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{who:?}/{mech:?} {grant}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(words) && err.contains("--allow-unix"), "{err}");
        }
        // bwrap mode has no such option, as bubblewrap has none.
        let out = h
            .bwrap_command(who, &["--allow-unix", f.allowed.str(), "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn a_sandbox_inside_one_with_a_broker_cannot_have_its_own() {
    let Some(h) = harness() else { return };
    let f = fixture(h);
    // (Landlock has no listener to refuse: there a nested sandbox gets
    // its own grants, checked by the same kernel.)
    let case = (Who::User, Mech::TakeSocket);
    let inner = format!(
        "{} run --ro-bind / / --allow-unix {} -- true",
        h.launcher_str(),
        f.allowed.str()
    );
    let out = run(
        h,
        case,
        &f,
        &["--allow-unix", f.allowed.str()],
        &["sh", "-c", &inner],
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
}

/// Nothing hangs when the broker goes: PID 1 killed from outside while
/// the workload waits in a brokered connect (the server never accepts,
/// and its backlog is full).
#[test]
fn calls_end_when_the_broker_dies() {
    let Some(h) = harness() else { return };
    for (who, mech) in cases(h) {
        let f = fixture(h);
        // A server whose backlog of one fills at once and that never
        // accepts: the second connect blocks in the broker.
        let stuck = f.dir.path().join("stuck.sock");
        let stuck_str = stuck.to_str().unwrap().to_string();
        let server = format!(
            "import os, socket, time\ns = socket.socket(socket.AF_UNIX)\ns.bind({stuck_str:?})\nos.chmod({stuck_str:?}, 0o777)\ns.listen(0)\nprint('up', flush=True)\ntime.sleep(60)\n"
        );
        let mut listener = Command::new("python3")
            .args(["-c", &server])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut up = [0u8; 2];
        std::io::Read::read_exact(listener.stdout.as_mut().unwrap(), &mut up).unwrap();
        let script = format!(
            "import socket\nheld = []\nfor i in range(1000):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({stuck_str:?})\n    held.append(s)\n"
        );
        let mut args = vec![
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--allow-unix",
        ];
        args.extend([stuck_str.as_str(), "--", "python3", "-c", &script]);
        let mut child = command(h, (who, mech), &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // PID 1 is the launcher's child; once it is there, give the
        // connects time to fill the backlog and block in the broker.
        common::wait_until(10, || !common::net::children(pid).is_empty());
        std::thread::sleep(std::time::Duration::from_millis(500));
        let pid1 = common::net::children(pid);
        if pid1.is_empty() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "{who:?}/{mech:?}: no PID 1: {:?} {}",
                out.status,
                stderr(&out)
            );
        }
        let _ = Command::new("kill")
            .args(["-9", &pid1[0].to_string()])
            .status();
        let ended = common::wait_until(10, || child.try_wait().unwrap().is_some());
        assert!(
            ended,
            "{who:?}/{mech:?}: the sandbox hangs without its broker"
        );
        let _ = listener.kill();
        let _ = listener.wait();
    }
}
