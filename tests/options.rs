//! The `run` options that bwrap callers rely on (issue 11, part one):
//! `--clearenv`/`--unsetenv` in argv order with `--setenv`, `--chdir`,
//! `--hostname`, `--bind-try`/`--ro-bind-try`, `--dir`, `--symlink`,
//! `--dev-bind`, `--json-status-fd`; and their bad input.

mod common;

use common::{harness, ok, stderr, with_mounts};

#[test]
fn environment_edits_apply_in_argv_order() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let args = [
            "--setenv",
            "EARLY",
            "1",
            "--clearenv",
            "--setenv",
            "KEPT",
            "2",
            "--setenv",
            "GONE",
            "3",
            "--unsetenv",
            "GONE",
            "--ro-bind",
            "/",
            "/",
            "--",
            "/usr/bin/env",
        ];
        let out = h
            .command(who, &args)
            .env("FROM_CALLER", "x")
            .output()
            .unwrap();
        let mut vars: Vec<String> = ok(&out).lines().map(String::from).collect();
        vars.sort();
        // --clearenv dropped the caller's variables and the earlier
        // --setenv; PWD is the launcher's own.
        assert_eq!(vars, ["KEPT=2", "PWD=/"], "{who:?}");
        // Without --clearenv the caller's variables stay; --unsetenv
        // removes one of them.
        let out = h
            .command(
                who,
                &[
                    "--unsetenv",
                    "FROM_CALLER",
                    "--ro-bind",
                    "/",
                    "/",
                    "--",
                    "/usr/bin/env",
                ],
            )
            .env("FROM_CALLER", "x")
            .env("OTHER", "y")
            .output()
            .unwrap();
        let text = ok(&out);
        assert!(!text.contains("FROM_CALLER="), "{who:?}: {text}");
        assert!(text.contains("OTHER=y"), "{who:?}: {text}");
    }
}

#[test]
fn chdir_hostname_and_bind_try() {
    let Some(h) = harness() else { return };
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for who in h.identities() {
        let extra = [
            "--chdir",
            "/etc",
            "--hostname",
            "srtl-box",
            "--ro-bind-try",
            "/srtl-nonexistent",
            "/tmp/missing",
            "--bind-try",
            "/usr",
            "/tmp/usr",
        ];
        let script = "pwd; echo $PWD; hostname; test -e /tmp/missing || echo no-missing; \
                      test -x /tmp/usr/bin/env && echo usr-bound";
        let out = h.run(who, &with_mounts(&extra, &["sh", "-c", script]));
        assert_eq!(
            ok(&out).lines().collect::<Vec<_>>(),
            ["/etc", "/etc", "srtl-box", "no-missing", "usr-bound"],
            "{who:?}"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
            host_name,
            "the host's hostname changed"
        );
    }
}

#[test]
fn bad_values_are_clear_errors() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // A --chdir that does not exist inside is a setup error.
        let out = h.run(who, &with_mounts(&["--chdir", "/srtl-nowhere"], &["true"]));
        assert_eq!(out.status.code(), Some(125), "{who:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("run: --chdir /srtl-nowhere: chdir(\"/srtl-nowhere\"): No such file"),
            "{who:?}: {err}"
        );
        // Syntax: usage errors, exit 2.
        let long_name = "h".repeat(65);
        for (args, needle) in [
            (
                &["--chdir", "relative"][..],
                "--chdir: relative is not an absolute path",
            ),
            (&["--hostname", long_name.as_str()][..], "--hostname:"),
            (
                &["--unsetenv", "A=B"][..],
                "--unsetenv: invalid variable name",
            ),
        ] {
            let out = h.run(who, &with_mounts(args, &["true"]));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{who:?} {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(needle), "{who:?} {args:?}: {err}");
        }
    }
}

#[test]
fn dir_symlink_and_dev_bind() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let extra = [
            "--dir",
            "/tmp/a/b",
            "--symlink",
            "/etc",
            "/tmp/l",
            "--dev-bind",
            "/dev/null",
            "/tmp/devnull",
            "--bind",
            "/dev/null",
            "/tmp/nodev",
        ];
        let script = "test -d /tmp/a/b && echo dir; readlink /tmp/l; \
                      echo x > /tmp/devnull && echo device-works; \
                      echo x > /tmp/nodev 2>/dev/null || echo nodev-refused";
        let out = h.run(who, &with_mounts(&extra, &["sh", "-c", script]));
        assert_eq!(
            ok(&out).lines().collect::<Vec<_>>(),
            ["dir", "/etc", "device-works", "nodev-refused"],
            "{who:?}"
        );
        // An existing DST is fine only if it is that same link.
        let same = ["--symlink", "/etc", "/tmp/l", "--symlink", "/etc", "/tmp/l"];
        assert!(h.run(who, &with_mounts(&same, &["true"])).status.success());
        let clash = ["--symlink", "/etc", "/tmp/l", "--symlink", "/usr", "/tmp/l"];
        let out = h.run(who, &with_mounts(&clash, &["true"]));
        assert_eq!(out.status.code(), Some(125), "{who:?}");
        assert!(
            stderr(&out).contains("--symlink /tmp/l"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn json_status_fd_reports_the_child_and_its_exit() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    for who in h.identities() {
        for (command, expect_lines) in [
            (&["sh", "-c", "exit 3"][..], 2),
            (&["/srtl-not-there"][..], 1),
        ] {
            let path = dir.path().join("status.json");
            let file = std::fs::File::create(&path).unwrap();
            let mut args = vec!["--json-status-fd", "3"];
            args.extend(with_mounts(&[], command));
            let mut cmd = h.command(who, &args);
            common::inherit_fd(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&file), 3);
            let out = cmd.output().unwrap();
            drop(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), expect_lines, "{who:?} {command:?}: {text}");
            // As bubblewrap: PID 1's pid and the namespaces it got, once
            // it exists (even when setup then fails).
            let pid = lines[0]
                .strip_prefix("{ \"child-pid\": ")
                .and_then(|l| l.split(',').next())
                .and_then(|p| p.parse::<u32>().ok());
            assert!(pid.is_some_and(|p| p > 1), "{who:?}: {}", lines[0]);
            let host_mnt = std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata("/proc/self/ns/mnt").unwrap(),
            );
            for name in ["cgroup", "ipc", "mnt", "pid", "uts"] {
                assert!(
                    lines[0].contains(&format!("\"{name}-namespace\": ")),
                    "{who:?}: {}",
                    lines[0]
                );
            }
            assert!(
                !lines[0].contains("net-namespace"),
                "not unshared: {}",
                lines[0]
            );
            assert!(
                !lines[0].contains(&format!("\"mnt-namespace\": {host_mnt} ")),
                "the sandbox's own mount namespace: {}",
                lines[0]
            );
            if expect_lines == 2 {
                assert_eq!(out.status.code(), Some(3));
                assert_eq!(lines[1], "{ \"exit-code\": 3 }", "{who:?}");
            } else {
                // Setup failed (127): the command never ran, so no exit
                // code, as in bwrap.
                assert_eq!(out.status.code(), Some(127), "{who:?}");
            }
        }
        let out = h.run(who, &with_mounts(&["--json-status-fd", "x"], &["true"]));
        assert_eq!(out.status.code(), Some(2), "{who:?}");
        assert!(
            stderr(&out).contains("--json-status-fd: invalid descriptor"),
            "{}",
            stderr(&out)
        );
        let out = h.run(who, &with_mounts(&["--json-status-fd", "9"], &["true"]));
        assert_eq!(out.status.code(), Some(125), "{who:?}");
        assert!(
            stderr(&out).contains("--json-status-fd 9: not an open descriptor"),
            "{}",
            stderr(&out)
        );
    }
}
