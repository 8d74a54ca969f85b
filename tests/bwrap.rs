//! bwrap mode (SPEC §5): bubblewrap's command line, run by the real binary
//! in real namespaces, as root and as the unprivileged user.
//!
//! The argv of seed 001's jailer (a VM runner) and of an SDK that passes
//! its profile through `--args 3` are run as their callers build them;
//! bubblewrap's defaults (shared namespaces, no die-with-parent, no new
//! session, a root caller's capabilities), its JSON documents, its exit
//! statuses and its `bwrap: ` messages are checked against what bubblewrap
//! 0.12 does for the same argv.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{Harness, Scratch, Who, harness, ok, stderr, stdout, wait_until};

fn bwrap(h: &Harness, who: Who, args: &[&str]) -> Output {
    h.bwrap_command(who, args)
        .output()
        .expect("spawn the launcher")
}

/// `bwrap --ro-bind / / EXTRA… sh -c SCRIPT` as `who`, asserted to
/// succeed; returns stdout. The host read-only, nothing else unless asked.
fn host_sh(h: &Harness, who: Who, extra: &[&str], script: &str) -> String {
    let mut args = vec!["--ro-bind", "/", "/"];
    args.extend(extra);
    args.extend(["sh", "-c", script]);
    ok(&bwrap(h, who, &args))
}

/// The launcher reached through a symlink named `bwrap` (SPEC §1): the
/// drop-in form, with no subcommand word.
fn bwrap_symlink(dir: &Scratch) -> std::path::PathBuf {
    let h = harness().expect("harness");
    let link = dir.path().join("bwrap");
    std::os::unix::fs::symlink(&h.launcher, &link).unwrap();
    link
}

/// The namespace link of the test process itself, for comparisons.
fn own_namespace(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The argv seed 001's jailer builds (`BwrapSandbox::apply`), for a box
/// directory holding the shim: default namespaces, die-with-parent unless
/// detached, a new session, system directories read-only when present,
/// /dev with KVM and TUN when present, /proc, a private /tmp, the box's
/// writable and read-only paths, a cleared environment with three
/// variables, and / as the working directory.
fn jailer_argv(box_dir: &str, ro_dir: &str, detached: bool, command: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
    ]
    .map(String::from)
    .to_vec();
    if !detached {
        argv.push("--die-with-parent".into());
    }
    argv.push("--new-session".into());
    for dir in [
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/sbin",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/nsswitch.conf",
    ] {
        argv.extend(["--ro-bind-try".into(), dir.into(), dir.into()]);
    }
    argv.extend(["--dev".into(), "/dev".into()]);
    for dev in ["/dev/kvm", "/dev/net/tun"] {
        argv.extend(["--dev-bind-try".into(), dev.into(), dev.into()]);
    }
    argv.extend(["--proc", "/proc", "--tmpfs", "/tmp"].map(String::from));
    argv.extend(["--bind".into(), box_dir.into(), box_dir.into()]);
    argv.extend(["--ro-bind".into(), ro_dir.into(), ro_dir.into()]);
    argv.extend(
        [
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin:/usr/sbin:/sbin",
            "--setenv",
            "HOME",
            "/root",
            "--setenv",
            "LD_LIBRARY_PATH",
        ]
        .map(String::from),
    );
    argv.push(format!("{box_dir}/bin"));
    argv.extend(["--chdir", "/", "--"].map(String::from));
    argv.extend(command.iter().map(|w| w.to_string()));
    argv
}

/// A box directory as the jailer lays it out: `bin/shim`, a shell script
/// in which `$BOX` and `$VOL` name the box and the read-only volume.
fn make_box(dir: &Scratch, shim: &str) -> (String, String) {
    let box_dir = dir.path().join("box");
    let ro_dir = dir.path().join("volume");
    let shim = shim
        .replace("$BOX", box_dir.to_str().unwrap())
        .replace("$VOL", ro_dir.to_str().unwrap());
    std::fs::create_dir_all(box_dir.join("bin")).unwrap();
    let shim_path = box_dir.join("bin/shim");
    std::fs::write(&shim_path, format!("#!/bin/sh\n{shim}")).unwrap();
    std::fs::set_permissions(&shim_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::make_world_writable(&box_dir);
    std::fs::create_dir_all(&ro_dir).unwrap();
    std::fs::write(ro_dir.join("data"), "volume data").unwrap();
    std::fs::set_permissions(ro_dir.join("data"), std::fs::Permissions::from_mode(0o666)).unwrap();
    (
        box_dir.to_str().unwrap().to_string(),
        ro_dir.to_str().unwrap().to_string(),
    )
}

#[test]
fn seed_001_jailer_argv_sees_its_binds_dev_proc_environment_and_cwd() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let (box_dir, ro_dir) = make_box(
            &dir,
            r#"
echo "cwd=$(pwd)"
echo "pid=$$"
tr '\0' '\n' < /proc/$$/environ | sort | sed 's/^/env:/'
for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo "dev:$d"; done
[ -e /dev/kvm ] && echo "dev:kvm"
echo "tmp=$(ls -A /tmp | wc -l)"
[ -e /etc/passwd ] && echo "passwd visible"
echo written > "$BOX/out"
cat "$VOL/data"; echo
echo nope > "$VOL/data" 2>/dev/null && echo "volume writable"
exit 0
"#,
        );
        let shim = format!("{box_dir}/bin/shim");
        let argv = jailer_argv(&box_dir, &ro_dir, false, &[&shim]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = ok(&bwrap(h, who, &argv));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"cwd=/"), "{who:?}: {out}");
        // A PID namespace with a reaper as PID 1: the shim is its child.
        assert!(lines.contains(&"pid=2"), "{who:?}: {out}");
        let env: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("env:"))
            .collect();
        assert_eq!(
            env,
            [
                "HOME=/root",
                &format!("LD_LIBRARY_PATH={box_dir}/bin"),
                "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
                "PWD=/",
            ],
            "{who:?}: --clearenv and --setenv"
        );
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            assert!(
                lines.contains(&format!("dev:{dev}").as_str()),
                "{who:?}: /dev/{dev}: {out}"
            );
        }
        let host_has_kvm = std::path::Path::new("/dev/kvm").exists();
        assert_eq!(
            lines.contains(&"dev:kvm"),
            host_has_kvm,
            "{who:?}: --dev-bind-try /dev/kvm"
        );
        assert!(
            lines.contains(&"tmp=0"),
            "{who:?}: /tmp is a fresh tmpfs: {out}"
        );
        assert!(
            !out.contains("passwd visible"),
            "{who:?}: /etc/passwd was not bound"
        );
        assert!(
            lines.contains(&"volume data"),
            "{who:?}: the read-only volume: {out}"
        );
        assert!(
            !out.contains("volume writable"),
            "{who:?}: --ro-bind is read-only"
        );
        let written = std::fs::read_to_string(format!("{box_dir}/out")).unwrap();
        assert_eq!(written, "written\n", "{who:?}: --bind is writable");
    }
}

/// Spawns `sh`, which starts the launcher in the background, waits until
/// the workload has created `started`, and exits: the launcher's parent is
/// gone while the sandbox runs.
fn spawn_and_orphan(h: &Harness, who: Who, argv: &[String], started: &str) {
    let quoted: Vec<String> = argv.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "{} bwrap {} </dev/null >/dev/null 2>&1 & \
         i=0; while [ ! -e '{started}' ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; exit 0",
        h.launcher_str(),
        quoted.join(" ")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).current_dir("/");
    h.as_identity(&mut cmd, who);
    let status = cmd.status().unwrap();
    assert!(status.success());
    assert!(
        std::path::Path::new(started).exists(),
        "{who:?}: the sandbox did not start"
    );
}

#[test]
fn detached_jailer_sandbox_survives_its_parent_and_foreground_one_does_not() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        // The shim waits for a file the test creates only after the
        // parent has exited, then proves it still runs by writing.
        let (box_dir, ro_dir) = make_box(
            &dir,
            r#"
: > "$BOX/started"
i=0
while [ ! -e "$BOX/go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
[ -e "$BOX/go" ] && echo alive > "$BOX/survived"
"#,
        );
        let shim = format!("{box_dir}/bin/shim");
        let marker = format!("4000.{}{}", std::process::id(), who as u8);
        // The detached box: no --die-with-parent.
        let argv = jailer_argv(&box_dir, &ro_dir, true, &[&shim, &marker]);
        let started = format!("{box_dir}/started");
        spawn_and_orphan(h, who, &argv, &started);
        std::fs::write(format!("{box_dir}/go"), "").unwrap();
        assert!(
            wait_until(20, || std::path::Path::new(&format!("{box_dir}/survived"))
                .exists()),
            "{who:?}: the detached sandbox did not outlive its parent"
        );

        // The foreground box: --die-with-parent ends it with its parent.
        std::fs::remove_file(format!("{box_dir}/go")).unwrap();
        std::fs::remove_file(format!("{box_dir}/survived")).unwrap();
        std::fs::remove_file(&started).unwrap();
        let marker = format!("4001.{}{}", std::process::id(), who as u8);
        let argv = jailer_argv(&box_dir, &ro_dir, false, &[&shim, &marker]);
        spawn_and_orphan(h, who, &argv, &started);
        assert!(
            wait_until(10, || common::processes_with(&marker).is_empty()),
            "{who:?}: --die-with-parent: the sandbox outlived its parent"
        );
        std::fs::write(format!("{box_dir}/go"), "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !std::path::Path::new(&format!("{box_dir}/survived")).exists(),
            "{who:?}: --die-with-parent: the workload ran on"
        );
    }
}

#[test]
fn sdk_argv_through_args_fd_3_with_20000_words() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    // bubblewrap stops at 9,000 words; a host profile does not.
    let mut words: Vec<String> = [
        "--ro-bind",
        "/",
        "/",
        "--unsetenv",
        "HOME",
        "--cap-drop",
        "ALL",
    ]
    .map(String::from)
    .to_vec();
    let mut i = 0;
    while words.len() + 3 <= 20_000 {
        words.extend(["--setenv".into(), format!("SRT_V{i}"), format!("value-{i}")]);
        i += 1;
    }
    while words.len() < 20_000 {
        words.push("--new-session".into());
    }
    assert_eq!(words.len(), 20_000);
    let last = i - 1;
    for who in h.identities() {
        let file = common::args_file(&dir, &words);
        let mut cmd = h.bwrap_command(
            who,
            &[
                "--args",
                "3",
                "--",
                "sh",
                "-c",
                "env | grep -c '^SRT_V'; echo \"$SRT_V0 ${HOME-unset}\"; env | grep \"^SRT_V$LAST=\"",
            ],
        );
        cmd.env("LAST", last.to_string());
        common::inherit_fd(&mut cmd, file.as_raw_fd(), 3);
        let out = ok(&cmd.output().unwrap());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], i.to_string(), "{who:?}: every --setenv applied");
        assert_eq!(
            lines[1], "value-0 unset",
            "{who:?}: --unsetenv HOME applied"
        );
        assert_eq!(lines[2], format!("SRT_V{last}=value-{last}"), "{who:?}");
    }
}

#[test]
fn defaults_share_every_namespace_but_mounts_and_unshare_all_takes_them() {
    let Some(h) = harness() else { return };
    let script =
        "for n in pid ipc net uts cgroup mnt; do echo $n=$(readlink /proc/self/ns/$n); done";
    for who in h.identities() {
        // No --proc: the host's /proc comes with the recursive / bind.
        let out = host_sh(h, who, &[], script);
        for name in ["pid", "ipc", "net", "uts", "cgroup"] {
            let line = format!("{name}={}", own_namespace(name));
            assert!(
                out.contains(&line),
                "{who:?}: {name} is shared by default: {out}"
            );
        }
        assert!(
            !out.contains(&format!("mnt={}", own_namespace("mnt"))),
            "{who:?}: mnt is new"
        );

        let out = host_sh(h, who, &["--unshare-all", "--proc", "/proc"], script);
        for name in ["pid", "ipc", "net", "uts", "cgroup"] {
            let line = format!("{name}={}", own_namespace(name));
            assert!(
                !out.contains(&line),
                "{who:?}: --unshare-all takes {name}: {out}"
            );
        }
    }
}

#[test]
fn without_a_pid_namespace_the_command_is_a_host_process_and_as_pid_1_is_pid_1() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // The pid the command sees is a pid of the caller's namespace.
        let out = host_sh(h, who, &[], "echo $$; cat /proc/$$/comm");
        let mut lines = out.lines();
        let pid: u32 = lines.next().unwrap().parse().unwrap();
        assert!(pid > 1, "{who:?}: {out}");
        assert_eq!(
            lines.next(),
            Some("sh"),
            "{who:?}: /proc/{pid} is the command itself"
        );

        let pid_ns = ["--unshare-pid", "--proc", "/proc"];
        let out = host_sh(h, who, &[&pid_ns[..], &["--as-pid-1"]].concat(), "echo $$");
        assert_eq!(out.trim(), "1", "{who:?}: --as-pid-1");
        let out = host_sh(h, who, &pid_ns, "echo $$");
        assert_eq!(out.trim(), "2", "{who:?}: a reaper is PID 1");
    }
}

#[test]
fn session_is_the_callers_unless_new_session() {
    let Some(h) = harness() else { return };
    // SAFETY: getsid(0) has no preconditions.
    let our_session = unsafe { libc::getsid(0) };
    let script = "awk '{print $6}' /proc/self/stat";
    for who in h.identities() {
        let out = host_sh(h, who, &[], script);
        assert_eq!(
            out.trim(),
            our_session.to_string(),
            "{who:?}: no --new-session"
        );
        let out = host_sh(h, who, &["--new-session"], script);
        assert_ne!(
            out.trim(),
            our_session.to_string(),
            "{who:?}: --new-session"
        );
    }
}

#[test]
fn info_fd_and_json_status_fd_name_the_child_and_its_namespaces() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    for who in h.identities() {
        let info = std::fs::File::create(dir.path().join("info.json")).unwrap();
        let status = std::fs::File::create(dir.path().join("status.json")).unwrap();
        let mut cmd = h.bwrap_command(
            who,
            &[
                "--ro-bind",
                "/",
                "/",
                "--proc",
                "/proc",
                "--unshare-all",
                "--info-fd",
                "42",
                "--json-status-fd",
                "43",
                "--",
                "sh",
                "-c",
                "for n in cgroup ipc mnt net pid uts; do stat -L -c \"$n %i\" /proc/self/ns/$n; done; exit 42",
            ],
        );
        common::inherit_fds(
            &mut cmd,
            &[(info.as_raw_fd(), 42), (status.as_raw_fd(), 43)],
        );
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(42), "{who:?}: {}", stderr(&out));
        let info = std::fs::read_to_string(dir.path().join("info.json")).unwrap();
        let status = std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        assert!(
            info.starts_with("{\n    \"child-pid\": "),
            "{who:?}: {info}"
        );
        assert!(info.ends_with("\n}\n"), "{who:?}: {info}");
        let mut status_lines = status.lines();
        let first = status_lines.next().unwrap();
        assert!(first.starts_with("{ \"child-pid\": "), "{who:?}: {status}");
        assert_eq!(
            status_lines.next(),
            Some("{ \"exit-code\": 42 }"),
            "{who:?}"
        );
        for line in stdout(&out).lines() {
            let (name, ino) = line.split_once(' ').unwrap();
            let entry = format!("\"{name}-namespace\": {ino}");
            assert!(info.contains(&entry), "{who:?}: info lacks {entry}: {info}");
            assert!(
                first.contains(&entry),
                "{who:?}: status lacks {entry}: {first}"
            );
        }
    }
}

#[test]
fn capabilities_follow_bubblewraps_rules() {
    let Some(h) = harness() else { return };
    let script = "grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status | tr '\\t' ' '";
    let caps_of = |who, extra: &[&str]| host_sh(h, who, extra, script);
    for who in h.identities() {
        match who {
            Who::Root => {
                // A root caller without a user namespace keeps its set...
                let ours = std::fs::read_to_string("/proc/self/status").unwrap();
                let eff = ours.lines().find(|l| l.starts_with("CapEff")).unwrap();
                let out = caps_of(who, &[]);
                assert!(
                    out.contains(&eff.replace('\t', " ")),
                    "root keeps {eff}: {out}"
                );
                // ...and --cap-drop/--cap-add shape it, bounding set too.
                let out = caps_of(who, &["--cap-drop", "ALL", "--cap-add", "CAP_NET_RAW"]);
                for set in ["CapEff", "CapBnd", "CapAmb"] {
                    assert!(
                        out.contains(&format!("{set}: 0000000000002000")),
                        "{set}: {out}"
                    );
                }
                let out = caps_of(who, &["--cap-drop", "ALL"]);
                assert!(out.contains("CapEff: 0000000000000000"), "{out}");
                assert!(out.contains("CapBnd: 0000000000000000"), "{out}");
                // Where the host's bounding set lacks one (a container),
                // --cap-add ALL keeps every other, as under bubblewrap.
                let mut cmd = Command::new("setpriv");
                cmd.args(["--bounding-set", "-sys_resource", "--"])
                    .arg(&h.launcher)
                    .args(["bwrap", "--ro-bind", "/", "/", "--cap-add", "ALL"])
                    .args(["sh", "-c", script])
                    .current_dir("/")
                    .stdin(Stdio::null());
                let out = ok(&cmd.output().unwrap());
                let without = ours
                    .lines()
                    .find(|l| l.starts_with("CapBnd"))
                    .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
                    .unwrap()
                    & !(1 << 24);
                for set in ["CapEff", "CapBnd", "CapAmb"] {
                    assert!(
                        out.contains(&format!("{set}: {without:016x}")),
                        "{set}: {out}"
                    );
                }
            }
            Who::User => {
                let out = caps_of(who, &[]);
                assert!(out.contains("CapEff: 0000000000000000"), "{out}");
                assert!(out.contains("CapBnd: 0000000000000000"), "{out}");
            }
        }
    }
}

#[test]
fn uid_gid_argv0_and_hostname_are_applied() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let ids = ["--unshare-user", "--uid", "0", "--gid", "0"];
        let name = [
            "--unshare-uts",
            "--hostname",
            "sandbox-host",
            "--argv0",
            "custom-zero",
        ];
        let out = host_sh(
            h,
            who,
            &[&ids[..], &name[..]].concat(),
            "id -u; id -g; cat /proc/sys/kernel/hostname; tr '\\0' ' ' < /proc/$$/cmdline",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..3], ["0", "0", "sandbox-host"], "{who:?}: {out}");
        assert!(lines[3].starts_with("custom-zero -c "), "{who:?}: {out}");
    }
}

#[test]
fn exit_status_is_the_commands_or_128_plus_signal_or_1() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let status = |args: &[&str]| bwrap(h, who, args).status.code();
        assert_eq!(
            status(&["--ro-bind", "/", "/", "sh", "-c", "exit 7"]),
            Some(7)
        );
        assert_eq!(
            status(&[
                "--ro-bind",
                "/",
                "/",
                "--unshare-pid",
                "sh",
                "-c",
                "kill -TERM $$"
            ]),
            Some(128 + libc::SIGTERM)
        );
        // Setup failures and a missing command are bubblewrap's own: 1.
        let out = bwrap(
            h,
            who,
            &[
                "--ro-bind",
                "/",
                "/",
                "--bind",
                "/nonexistent-src",
                "/x",
                "true",
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.starts_with("bwrap: ") && err.contains("/nonexistent-src"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        let out = bwrap(h, who, &["--ro-bind", "/", "/", "no-such-command-anywhere"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).starts_with("bwrap: "), "{}", stderr(&out));
    }
}

#[test]
fn usage_errors_exit_1_with_a_bwrap_line() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let link = bwrap_symlink(&dir);
    let run_link = |args: &[&str]| {
        Command::new(&link)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Through the symlink named bwrap, with no subcommand word.
    for (args, expected) in [
        (
            &["--frobnicate", "true"][..],
            "bwrap: Unknown option --frobnicate\n",
        ),
        (&["--bind", "/"][..], "bwrap: --bind takes two arguments\n"),
        (&["--info-fd", "no", "true"][..], "bwrap: Invalid fd: no\n"),
        (
            &["--cap-add", "CAP_NOPE", "true"][..],
            "bwrap: unknown cap: CAP_NOPE\n",
        ),
        (
            &["--as-pid-1", "true"][..],
            "bwrap: Specifying --as-pid-1 requires --unshare-pid\n",
        ),
        (
            &["--hostname", "x", "true"][..],
            "bwrap: Specifying --hostname requires --unshare-uts\n",
        ),
        (
            &["--exec-label", "x", "true"][..],
            "bwrap: labeling not supported on this system\n",
        ),
        (
            &["--level-prefix", "--nope", "true"][..],
            "<3>bwrap: Unknown option --nope\n",
        ),
    ] {
        let out = run_link(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // No command: the usage text on stderr, exit 1.
    let out = run_link(&["--unshare-pid"]);
    assert_eq!(out.status.code(), Some(1));
    let usage = format!(
        "usage: {} [OPTIONS...] [--] COMMAND [ARGS...]",
        link.display()
    );
    assert!(stderr(&out).starts_with(&usage), "{}", stderr(&out));
    // --help and --version on stdout, exit 0.
    let out = run_link(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with(&usage), "{}", stdout(&out));
    let out = run_link(&["--version"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("bubblewrap 0.12.0"),
        "{}",
        stdout(&out)
    );
    // --args inside --args is refused, as bubblewrap does.
    let inner = common::args_file(&dir, &["true".to_string()]);
    let outer = common::args_file(&dir, &["--args".to_string(), "4".to_string()]);
    let mut cmd = Command::new(&link);
    cmd.args(["--ro-bind", "/", "/", "--args", "3", "true"]);
    common::inherit_fds(&mut cmd, &[(outer.as_raw_fd(), 3), (inner.as_raw_fd(), 4)]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "bwrap: --args not supported in arguments file\n"
    );
}
