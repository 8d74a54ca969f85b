//! Every error path of SPEC §1: the exit code and one readable stderr line,
//! and nothing left behind. Also `--args` at the scale hosts use it.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{BASIC, Who, harness, ok, sh, stderr, stdout, with_mounts};

/// Asserts the exit code and that stderr is exactly one prefixed line
/// containing `needle`; stdout must be empty.
#[track_caller]
fn assert_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("srt-launcher: "), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
}

fn launcher(h: &common::Harness, args: &[&str]) -> std::process::Output {
    Command::new(&h.launcher).args(args).output().unwrap()
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let Some(h) = harness() else { return };
    assert_error(&launcher(h, &[]), 2, "subcommand");
    assert_error(&launcher(h, &["frobnicate"]), 2, "frobnicate");
    assert_error(
        &launcher(h, &["run", "--bogus", "--", "true"]),
        2,
        "--bogus",
    );
    assert_error(&launcher(h, &["run", "--bind", "/a"]), 2, "--bind");
    assert_error(&launcher(h, &["run", "--ro-bind", "/", "/", "true"]), 2, "");
    assert_error(
        &launcher(h, &["run", "--tmpfs", "rel", "--", "true"]),
        2,
        "absolute",
    );
    assert_error(
        &launcher(h, &["run", "--setenv", "A=B", "c", "--", "true"]),
        2,
        "--setenv",
    );
    assert_error(
        &launcher(h, &["run", "--args", "x", "--", "true"]),
        2,
        "--args",
    );
    assert_error(
        &launcher(h, &["run", "--args", "987", "--", "true"]),
        2,
        "--args 987",
    );
    assert_error(&launcher(h, &["run", "--"]), 2, "");
}

#[test]
fn help_and_version_go_to_stdout() {
    let Some(h) = harness() else { return };
    let out = launcher(h, &["--version"]);
    assert!(out.status.success());
    // `srt-launcher 0.1.0 (source <sha256 of the sources>, <target>)`, the
    // hash as scripts/build-prebuilt.sh and the README compute it.
    let hash = Command::new("sh")
        .args([
            "-c",
            "find src bpf build.rs Cargo.toml Cargo.lock rust-toolchain.toml .cargo/config.toml \
             -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let hash = stdout(&hash).trim().to_string();
    assert_eq!(hash.len(), 64);
    let expected = format!(
        "srt-launcher {} (source {hash}, {}-unknown-linux-",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    assert!(
        stdout(&out).starts_with(&expected),
        "{} vs {expected}",
        stdout(&out)
    );
    let out = launcher(h, &["run", "--help"]);
    assert!(out.status.success());
    for opt in ["--ro-bind", "--args", "--seccomp-unix-block", "--host-proc"] {
        assert!(stdout(&out).contains(opt), "help lacks {opt}");
    }
    assert!(out.stderr.is_empty());
}

/// `help SUB` prints what `SUB --help` prints, for every subcommand
/// (bwrap mode's own help included), on stdout, with exit 0.
#[test]
fn help_sub_is_sub_help_for_every_subcommand() {
    let Some(h) = harness() else { return };
    for sub in ["run", "relay", "connect", "check", "bwrap"] {
        let by_help = launcher(h, &["help", sub]);
        let by_flag = launcher(h, &[sub, "--help"]);
        assert_eq!(by_help.status.code(), Some(0), "help {sub}");
        assert_eq!(by_flag.status.code(), Some(0), "{sub} --help");
        assert!(!stdout(&by_help).is_empty(), "help {sub} printed nothing");
        assert_eq!(stdout(&by_help), stdout(&by_flag), "help {sub}");
        assert!(
            by_help.stderr.is_empty(),
            "help {sub}: {}",
            stderr(&by_help)
        );
    }
    // bwrap mode's real help, not a stub: its options are listed.
    let bwrap = stdout(&launcher(h, &["help", "bwrap"]));
    for opt in ["--ro-bind", "--unshare-all", "--die-with-parent"] {
        assert!(bwrap.contains(opt), "help bwrap lacks {opt}: {bwrap}");
    }
}

#[test]
fn missing_source_is_125_naming_the_option_and_path() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = h.run(
            who,
            &with_mounts(&["--ro-bind", "/nope", "/tmp/x"], &["true"]),
        );
        assert_error(
            &out,
            125,
            "run: --ro-bind source /nope: No such file or directory (os error 2)",
        );
    }
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let plain = dir.file("plain", "not a program\n");
    let plain = plain.to_str().unwrap();
    for who in h.identities() {
        let mut args = BASIC.to_vec();
        args.push("no-such-command-srtl");
        assert_error(&h.run(who, &args), 127, "no-such-command-srtl");
        let mut args = BASIC.to_vec();
        args.push("/no/such/path");
        assert_error(&h.run(who, &args), 127, "/no/such/path: No such file");
        let mut args = BASIC.to_vec();
        args.push(plain);
        assert_error(&h.run(who, &args), 126, "Permission denied");
        let mut args = BASIC.to_vec();
        args.push("/etc");
        assert_error(&h.run(who, &args), 126, "/etc");
    }
}

#[test]
fn a_workload_exit_of_125_is_not_mistaken_for_a_setup_error() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = h.run(who, &sh("exit 125"));
        assert_eq!(out.status.code(), Some(125));
        assert!(out.stderr.is_empty(), "{who:?}: {}", stderr(&out));
    }
}

#[test]
fn setuid_launcher_refuses_to_run() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: making a setuid-root launcher needs root");
        return;
    }
    let dir = h.scratch();
    let copy = dir.path().join("srt-launcher");
    std::fs::copy(&h.launcher, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut cmd = Command::new(&copy);
    cmd.arg("run").args(sh("echo RAN"));
    h.as_identity(&mut cmd, Who::User);
    let out = cmd.output().unwrap();
    assert_error(&out, 125, "setuid");
}

#[test]
fn refused_namespaces_name_the_call_the_errno_and_a_cause() {
    let Some(h) = harness() else { return };
    // The probe makes unshare(2) fail with EPERM, as a container runtime's
    // seccomp policy or a restricted kernel does.
    for who in h.identities() {
        for extra in [&[][..], &["--unshare-user"][..]] {
            let mut cmd = Command::new(&h.probe);
            cmd.args(["nounshare", "--"]).arg(&h.launcher).arg("run");
            cmd.args(extra).args(sh("echo RAN"));
            h.as_identity(&mut cmd, who);
            let out = cmd.output().unwrap();
            assert_error(
                &out,
                125,
                "unshare(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWCGROUP): \
                 Operation not permitted (os error 1); ",
            );
            // The cause comes from the same table as `check`'s.
            assert!(
                stderr(&out)
                    .trim_end()
                    .ends_with("run `srt-launcher check` for details"),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn args_fd_takes_a_hundred_thousand_words() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    // 33,334 --setenv triples = 100,002 words, far past bwrap's limit.
    let mut words = Vec::with_capacity(100_002);
    for i in 0..33_334 {
        words.extend(["--setenv".to_string(), format!("V{i}"), format!("{i}")]);
    }
    for who in h.identities() {
        let file = common::args_file(&dir, &words);
        let fd = file.as_raw_fd();
        let fd_str = fd.to_string();
        let mut args = vec!["--args", fd_str.as_str()];
        args.extend(sh("echo $V0 $V33333; env | grep -c '^V[0-9]'; [ -e /proc/self/fd/$ARGS_FD ] && echo FD-LEAKED; true"));
        let mut cmd = h.command(who, &args);
        cmd.env("ARGS_FD", &fd_str);
        common::inherit_fd(&mut cmd, fd, fd);
        let out = ok(&cmd.output().unwrap());
        assert_eq!(out, "0 33333\n33334\n", "{who:?}");
    }
}

#[test]
fn args_words_are_inserted_in_place() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    // The fd's mounts come between the two command-line ones: the fd's
    // tmpfs on /tmp/t is covered by the later --ro-bind.
    let file = common::args_file(&dir, &["--tmpfs".into(), "/tmp/t".into()]);
    let fd = file.as_raw_fd().to_string();
    let args = with_mounts(
        &["--args", &fd, "--ro-bind", "/etc", "/tmp/t"],
        &["ls", "/tmp/t/passwd"],
    );
    let mut cmd = h.command(Who::User, &args);
    common::inherit_fd(&mut cmd, file.as_raw_fd(), file.as_raw_fd());
    assert_eq!(ok(&cmd.output().unwrap()).trim(), "/tmp/t/passwd");
}

#[test]
fn args_without_final_nul_is_a_usage_error() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let path = dir.file("bad-args", "--tmpfs\0/tmp/t");
    let file = std::fs::File::open(path).unwrap();
    let fd = file.as_raw_fd().to_string();
    let mut cmd = h.command(Who::User, &["--args", &fd, "--", "true"]);
    common::inherit_fd(&mut cmd, file.as_raw_fd(), file.as_raw_fd());
    assert_error(&cmd.output().unwrap(), 2, "NUL-terminated");
}

#[test]
fn disable_userns_without_a_writable_sysctl_is_a_setup_error() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: making /proc/sys read-only in a private mount namespace needs root");
        return;
    }
    // As in a container that mounts /proc/sys read-only.
    for who in h.identities() {
        let argv = h.run_argv(
            who,
            common::Kernel::Native,
            &[
                "--disable-userns",
                "--ro-bind",
                "/",
                "/",
                "--",
                "echo",
                "RAN",
            ],
        );
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec {}",
            quoted.join(" ")
        );
        let out = Command::new("unshare")
            .args(["--mount", "sh", "-c"])
            .arg(&script)
            .current_dir("/")
            .output()
            .unwrap();
        assert_error(
            &out,
            125,
            "--disable-userns: forbid user namespaces inside: \
             write /proc/sys/user/max_user_namespaces: Read-only file system",
        );
    }
}
