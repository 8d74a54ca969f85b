//! Shared harness for the integration tests: the launcher binary and the C
//! probe in a world-readable directory, an unprivileged user (created when
//! the tests run as root), and the sandbox probe that decides whether the
//! kernel lets us create namespaces at all.
//!
//! When it does not, each test says why and skips, unless
//! `SRT_LAUNCHER_REQUIRE_SANDBOX=1` (set by `.ci/run`), where that is a
//! failure.
#![allow(dead_code)]

pub mod net;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The unprivileged account the tests use when they run as root.
const TEST_USER: &str = "srtl-test";

/// Which kernel interfaces the launcher may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Whatever the running kernel has.
    Native,
    /// openat2, open_tree, move_mount, mount_setattr and close_range fail
    /// with ENOSYS (the probe's seccomp filter), as on Linux 4.18: forces
    /// every fallback path.
    Legacy,
}

pub const KERNELS: [Kernel; 2] = [Kernel::Native, Kernel::Legacy];

/// Who spawns the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The test process's own identity when it is root.
    Root,
    /// An unprivileged uid: the path most users hit.
    User,
}

pub struct Harness {
    /// World-readable copy of the launcher under test.
    pub launcher: PathBuf,
    /// The C probe (tests/helpers/probe.c).
    pub probe: PathBuf,
    /// The Python networking client (tests/helpers/client.py).
    pub client: PathBuf,
    /// Where scratch directories are made.
    base: PathBuf,
    /// uid/gid of the unprivileged user; None when the tests are not root
    /// (then the tests themselves are the unprivileged user).
    user: Option<(u32, u32)>,
    is_root: bool,
}

static HARNESS: OnceLock<Option<Harness>> = OnceLock::new();
static SCRATCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// The harness, or None (after saying why) when namespaces are refused.
pub fn harness() -> Option<&'static Harness> {
    HARNESS.get_or_init(setup).as_ref()
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn setup() -> Option<Harness> {
    let is_root = euid() == 0;
    // Not /tmp: most test sandboxes mount a private tmpfs there, which
    // would hide the binaries and scratch directories.
    let base = PathBuf::from(format!("/var/tmp/srt-launcher-tests-{}", euid()));
    fs::create_dir_all(&base).expect("create the test directory");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let launcher = install(
        &base,
        "srt-launcher",
        Path::new(env!("CARGO_BIN_EXE_srt-launcher")),
    );
    let probe = build_probe(&base);
    let client = install(
        &base,
        "client.py",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/client.py"),
    );
    let user = if is_root {
        Some(ensure_test_user())
    } else {
        None
    };
    let harness = Harness {
        launcher,
        probe,
        client,
        base,
        user,
        is_root,
    };
    // The sandbox probe: the smallest real sandbox, as each identity.
    for who in harness.identities() {
        let out = harness.run(who, &["--ro-bind", "/", "/", "--", "true"]);
        if !out.status.success() {
            let why = format!(
                "the kernel refuses to create a sandbox here ({who:?}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if std::env::var_os("SRT_LAUNCHER_REQUIRE_SANDBOX").is_some_and(|v| v == "1") {
                panic!("SRT_LAUNCHER_REQUIRE_SANDBOX=1 but {why}");
            }
            eprintln!("SKIP: {why}");
            return None;
        }
    }
    Some(harness)
}

/// Copies a file to `dir/name` atomically (tests run in parallel binaries).
fn install(dir: &Path, name: &str, from: &Path) -> PathBuf {
    let dest = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    fs::copy(from, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&tmp, &dest).unwrap();
    dest
}

fn build_probe(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/probe.c");
    let tmp = dir.join(format!(".probe.{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O1", "-Wall", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&source)
        .status()
        .expect("run cc to build the test probe (a C compiler is required)");
    assert!(status.success(), "building tests/helpers/probe.c failed");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    let dest = dir.join("probe");
    fs::rename(&tmp, &dest).unwrap();
    dest
}

/// Creates (once) the unprivileged test account and returns its ids.
fn ensure_test_user() -> (u32, u32) {
    let lookup = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(ids) = lookup() {
        return ids;
    }
    // Exit 9 means another test binary created it first.
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            TEST_USER,
        ])
        .status()
        .expect("run useradd to create the unprivileged test user");
    assert!(
        status.success() || status.code() == Some(9),
        "useradd {TEST_USER} failed"
    );
    lookup().expect("the test user exists")
}

impl Harness {
    /// The identities the tests can run as here.
    pub fn identities(&self) -> Vec<Who> {
        if self.is_root {
            vec![Who::Root, Who::User]
        } else {
            vec![Who::User]
        }
    }

    /// A command spawning the launcher with `run` and `args`, as `who`.
    pub fn command(&self, who: Who, args: &[&str]) -> Command {
        self.command_on(who, Kernel::Native, args)
    }

    /// Like [`Harness::command`], on the given kernel interfaces.
    pub fn command_on(&self, who: Who, kernel: Kernel, args: &[&str]) -> Command {
        let mut cmd = self.launcher_on(kernel);
        cmd.arg("run").args(args).current_dir("/");
        cmd.stdin(Stdio::null());
        self.as_identity(&mut cmd, who);
        cmd
    }

    /// The launcher, run directly or under the probe that makes the newer
    /// kernel interfaces fail (`Kernel::Legacy`).
    fn launcher_on(&self, kernel: Kernel) -> Command {
        match kernel {
            Kernel::Native => Command::new(&self.launcher),
            Kernel::Legacy => {
                let mut c = Command::new(&self.probe);
                c.arg("nosys").arg("--").arg(&self.launcher);
                c
            }
        }
    }

    /// Makes `cmd` run as `who` (std drops supplementary groups for us).
    pub fn as_identity(&self, cmd: &mut Command, who: Who) {
        if let (Who::User, Some((uid, gid))) = (who, self.user) {
            cmd.uid(uid).gid(gid);
        }
    }

    /// The argv of `run ARGS` as `who` on `kernel`, for a test that starts
    /// the launcher from a shell it prepared itself (a private mount
    /// namespace, say): as the unprivileged user through `setpriv`.
    pub fn run_argv(&self, who: Who, kernel: Kernel, args: &[&str]) -> Vec<String> {
        let mut argv = self.setpriv_argv(who);
        if kernel == Kernel::Legacy {
            argv.extend([self.probe_str().to_string(), "nosys".into(), "--".into()]);
        }
        argv.extend([self.launcher_str().to_string(), "run".into()]);
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// The uid and gid the launcher runs with as `who`, when they are not
    /// the test process's own.
    pub fn user_ids(&self, who: Who) -> Option<(u32, u32)> {
        match who {
            Who::User => self.user,
            Who::Root => None,
        }
    }

    /// The words that make what follows run as `who` from a root shell
    /// (`setpriv`), or none when no identity change is needed.
    pub fn setpriv_argv(&self, who: Who) -> Vec<String> {
        match (who, self.user) {
            (Who::User, Some((uid, gid))) => vec![
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_string(),
                "--".to_string(),
            ],
            _ => Vec::new(),
        }
    }

    /// A command spawning `srt-launcher bwrap ARGS` as `who`, from `/`,
    /// with stdin closed (bwrap mode, SPEC §5).
    pub fn bwrap_command(&self, who: Who, args: &[&str]) -> Command {
        self.bwrap_command_on(who, Kernel::Native, args)
    }

    /// Like [`Harness::bwrap_command`], on the given kernel interfaces.
    pub fn bwrap_command_on(&self, who: Who, kernel: Kernel, args: &[&str]) -> Command {
        let mut cmd = self.launcher_on(kernel);
        cmd.arg("bwrap").args(args).current_dir("/");
        cmd.stdin(Stdio::null());
        self.as_identity(&mut cmd, who);
        cmd
    }

    pub fn run(&self, who: Who, args: &[&str]) -> Output {
        self.run_on(who, Kernel::Native, args)
    }

    pub fn run_on(&self, who: Who, kernel: Kernel, args: &[&str]) -> Output {
        self.command_on(who, kernel, args)
            .output()
            .expect("spawn the launcher")
    }

    /// Every (identity, kernel) combination the key tests run under.
    pub fn matrix(&self) -> Vec<(Who, Kernel)> {
        self.identities()
            .into_iter()
            .flat_map(|who| KERNELS.map(|k| (who, k)))
            .collect()
    }

    /// A fresh directory everyone can write to, removed on drop.
    pub fn scratch(&self) -> Scratch {
        let n = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self
            .base
            .join(format!("scratch-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        Scratch(path)
    }

    pub fn probe_str(&self) -> &str {
        self.probe.to_str().expect("probe path is UTF-8")
    }

    pub fn client_str(&self) -> &str {
        self.client.to_str().expect("client path is UTF-8")
    }

    pub fn launcher_str(&self) -> &str {
        self.launcher.to_str().expect("launcher path is UTF-8")
    }
}

pub fn make_world_writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
}

/// A scratch directory, removed (best effort) when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn str(&self) -> &str {
        self.0.to_str().expect("scratch path is UTF-8")
    }

    /// Writes a file (world-writable, so both identities can use it).
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The standard sandbox most tests use: the host read-only, a fresh /proc
/// and /dev, a private /tmp.
pub const BASIC: [&str; 10] = [
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--",
];

/// `BASIC`'s mounts, then `extra` (applied on top of them), then `--` and
/// `command`.
pub fn with_mounts<'a>(extra: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut v = BASIC[..BASIC.len() - 1].to_vec();
    v.extend(extra);
    v.push("--");
    v.extend(command);
    v
}

/// `BASIC` followed by `sh -c SCRIPT`.
pub fn sh(script: &str) -> Vec<&str> {
    let mut v = BASIC.to_vec();
    v.extend(["sh", "-c", script]);
    v
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "launcher failed ({:?}); stderr: {}",
        out.status,
        stderr(out)
    );
    stdout(out)
}

/// Writes NUL-terminated words to a memfd-like temp file and returns it
/// opened for reading, ready to pass as `--args FD`.
pub fn args_file(dir: &Scratch, words: &[String]) -> fs::File {
    let path = dir.path().join(format!(
        "args-{}",
        SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = fs::File::create(&path).unwrap();
    for w in words {
        f.write_all(w.as_bytes()).unwrap();
        f.write_all(b"\0").unwrap();
    }
    drop(f);
    fs::File::open(&path).unwrap()
}

/// Makes `fd` survive into the spawned launcher at number `target`
/// (not CLOEXEC), the way a careless spawner leaks descriptors.
pub fn inherit_fd(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: dup2 and fcntl are async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::fcntl(target, libc::F_SETFD, 0);
            Ok(())
        });
    }
}

/// Like [`inherit_fd`] for several descriptors at once, safe when a source
/// number equals another pair's target: every source is first copied
/// above the targets, then moved into place.
pub fn inherit_fds(cmd: &mut Command, pairs: &[(i32, i32)]) {
    let pairs = pairs.to_vec();
    // SAFETY: fcntl, dup2 and close are async-signal-safe, as pre_exec
    // requires; the vector was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let mut parked = [0i32; 16];
            assert!(pairs.len() <= parked.len());
            for (i, (fd, _)) in pairs.iter().enumerate() {
                parked[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 200);
                if parked[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, (_, target)) in pairs.iter().enumerate() {
                if libc::dup2(parked[i], *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::fcntl(*target, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
}

/// Finds processes whose command line contains `marker` (host view).
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let text: Vec<u8> = cmdline
                .iter()
                .map(|b| if *b == 0 { b' ' } else { *b })
                .collect();
            if String::from_utf8_lossy(&text).contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// Polls `cond` every 20 ms for up to `secs` seconds (a hang guard, not a
/// performance assertion).
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

pub fn os(s: &str) -> OsString {
    OsStr::new(s).to_os_string()
}
