//! The mount tree (SPEC §2.3), checked from inside real sandboxes, on the
//! running kernel's interfaces and on the forced Linux-4.18 fallbacks.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Kernel, Who, harness, ok, sh, stderr, with_mounts};

/// Mount lines of a sandbox's /proc/self/mountinfo: (mount point, options).
fn mounts(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
        })
        .collect()
}

/// The mounts a path lookup reaches: for each mount point, the one no other
/// mount is stacked on. Overmounted ones cannot be reached by the workload.
fn reachable_mounts(mountinfo: &str) -> Vec<(String, String)> {
    let rows: Vec<Vec<&str>> = mountinfo
        .lines()
        .map(|l| l.split(' ').collect::<Vec<&str>>())
        .filter(|f| f.len() > 5)
        .collect();
    rows.iter()
        .filter(|r| !rows.iter().any(|o| o[1] == r[0] && o[4] == r[4]))
        .map(|r| (r[4].to_string(), r[5].to_string()))
        .collect()
}

#[test]
fn trace_shows_which_interfaces_are_used() {
    let Some(h) = harness() else { return };
    let mut cmd = h.command_on(Who::User, Kernel::Legacy, &sh("true"));
    let out = cmd.env("SRT_LAUNCHER_LOG", "1").output().unwrap();
    assert!(
        stderr(&out).contains("openat2=false new-mount-api=false close_range=false"),
        "the fallback is not forced: {}",
        stderr(&out)
    );
}

#[test]
fn mount_operations_apply_in_argv_order() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        // A later bind covers an earlier tmpfs at the same place...
        let out = ok(&h.run_on(
            who,
            kernel,
            &with_mounts(
                &["--tmpfs", "/tmp/t", "--ro-bind", "/etc", "/tmp/t"],
                &["ls", "/tmp/t/passwd"],
            ),
        ));
        assert_eq!(out.trim(), "/tmp/t/passwd", "{who:?} {kernel:?}");
        // ...and a later tmpfs covers an earlier bind.
        let out = ok(&h.run_on(
            who,
            kernel,
            &with_mounts(
                &["--ro-bind", "/etc", "/tmp/t", "--tmpfs", "/tmp/t"],
                &["ls", "-A", "/tmp/t"],
            ),
        ));
        assert_eq!(out.trim(), "", "{who:?} {kernel:?}");
        // A later --ro-bind / / hides an earlier --proc /proc: the host's
        // processes show through the host's /proc.
        let out = ok(&h.run_on(
            who,
            kernel,
            &[
                "--proc",
                "/proc",
                "--ro-bind",
                "/",
                "/",
                "--",
                "sh",
                "-c",
                "ls /proc | grep -c '^[0-9]'",
            ],
        ));
        let n: u32 = out.trim().parse().unwrap();
        assert!(
            n > 5,
            "{who:?} {kernel:?}: the later bind did not cover /proc"
        );
    }
}

#[test]
fn ro_bind_leaves_no_writable_submount() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        // The host root's submounts (/dev/shm, /proc, /sys, …) come along
        // with --ro-bind / /; every one of them must be read-only.
        let out = ok(&h.run_on(
            who,
            kernel,
            &["--ro-bind", "/", "/", "--", "cat", "/proc/self/mountinfo"],
        ));
        let all = reachable_mounts(&out);
        assert!(all.len() > 3, "{out}");
        for (point, opts) in &all {
            assert!(
                opts.split(',').any(|o| o == "ro"),
                "{who:?} {kernel:?}: {point} is writable ({opts})"
            );
            assert!(
                opts.contains("nosuid"),
                "{who:?} {kernel:?}: {point} {opts}"
            );
        }
        let out = h.run_on(
            who,
            kernel,
            &[
                "--ro-bind",
                "/",
                "/",
                "--",
                "sh",
                "-c",
                "touch /dev/shm/srtl-probe && echo WROTE",
            ],
        );
        assert!(
            !common::stdout(&out).contains("WROTE"),
            "{who:?} {kernel:?}"
        );
    }
}

#[test]
fn rw_bind_is_nosuid_and_nodev_on_every_submount() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let out = ok(&h.run_on(
            who,
            kernel,
            &[
                "--ro-bind",
                "/",
                "/",
                "--bind",
                "/dev",
                "/dev",
                "--",
                "cat",
                "/proc/self/mountinfo",
            ],
        ));
        let devs: Vec<_> = reachable_mounts(&out)
            .into_iter()
            .filter(|(p, _)| p.starts_with("/dev"))
            .collect();
        assert!(!devs.is_empty(), "{out}");
        for (point, opts) in devs {
            assert!(
                opts.contains("nosuid") && opts.contains("nodev"),
                "{who:?} {kernel:?}: {point} {opts}"
            );
        }
    }
}

/// `argv` as one line for `sh -c` (single quotes: the tests' words hold
/// none).
fn shell_words(argv: Vec<String>) -> String {
    argv.iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A noexec,nosymfollow tmpfs bound in, read-only or not, keeps both
/// flags. It is mounted in a private mount namespace of its own (unshare
/// defaults to private propagation), never on the host, where it would
/// appear in the middle of other tests' recursive binds of `/`.
#[test]
fn remount_keeps_noexec_and_nosymfollow() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: mounting a noexec,nosymfollow tmpfs needs root");
        return;
    }
    let dir = h.scratch();
    let m = dir.path().join("m");
    fs::create_dir(&m).unwrap();
    let m = m.to_str().unwrap();
    for (who, kernel) in h.matrix() {
        let runs: Vec<String> = ["--ro-bind", "--bind"]
            .iter()
            .map(|option| {
                shell_words(h.run_argv(
                    who,
                    kernel,
                    &with_mounts(&[option, m, "/tmp/m"], &["cat", "/proc/self/mountinfo"]),
                ))
            })
            .collect();
        let script = format!(
            "set -e; mount -t tmpfs -o noexec,nosymfollow,mode=0777 tmpfs {m}; \
             {}; echo ===; {}",
            runs[0], runs[1]
        );
        let out = std::process::Command::new("unshare")
            .args(["--mount", "sh", "-c"])
            .arg(&script)
            .current_dir("/")
            .output()
            .unwrap();
        let text = ok(&out);
        let (ro, rw) = text.split_once("===").expect("both runs printed");
        for (option, mountinfo) in [("--ro-bind", ro), ("--bind", rw)] {
            let (_, opts) = mounts(mountinfo)
                .into_iter()
                .find(|(p, _)| p == "/tmp/m")
                .unwrap_or_else(|| panic!("{mountinfo}"));
            for flag in ["noexec", "nosymfollow", "nosuid", "nodev"] {
                assert!(opts.contains(flag), "{who:?} {kernel:?} {option}: {opts}");
            }
        }
    }
}

#[test]
fn two_thousand_dev_null_masks_hide_the_files_and_leave_them_intact() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let mut words = Vec::new();
    for i in 0..2000 {
        let f = dir.file(&format!("secret-{i}"), &format!("secret {i}\n"));
        words.extend([
            "--ro-bind".to_string(),
            "/dev/null".to_string(),
            f.display().to_string(),
        ]);
    }
    for (who, kernel) in h.matrix() {
        let args_fd = common::args_file(&dir, &words);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&args_fd).to_string();
        let script = format!(
            "ls {d} | grep -c secret; cat {d}/secret-* 2>/dev/null | wc -c",
            d = dir.str()
        );
        let mut args = vec![
            "--ro-bind",
            "/",
            "/",
            "--args",
            &fd,
            "--tmpfs",
            "/tmp",
            "--",
        ];
        args.extend(["sh", "-c", &script]);
        let mut cmd = h.command_on(who, kernel, &args);
        common::inherit_fd(
            &mut cmd,
            std::os::fd::AsRawFd::as_raw_fd(&args_fd),
            std::os::fd::AsRawFd::as_raw_fd(&args_fd),
        );
        let out = ok(&cmd.output().unwrap());
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(
            lines,
            ["2000", "0"],
            "{who:?} {kernel:?}: a masked file showed content"
        );
    }
    for i in [0, 999, 1999] {
        let content = fs::read_to_string(dir.path().join(format!("secret-{i}"))).unwrap();
        assert_eq!(content, format!("secret {i}\n"), "a host file changed");
    }
}

#[test]
fn symlinked_destinations_cannot_escape_the_sandbox() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let dir = h.scratch();
        let w = dir.path().join("w");
        let outside = dir.path().join("outside");
        fs::create_dir(&w).unwrap();
        fs::create_dir(&outside).unwrap();
        common::make_world_writable(&w);
        common::make_world_writable(&outside);
        // Links a workload could have planted in a writable bind, each
        // pointing at the host when resolved in the host's view.
        symlink(&outside, w.join("abs")).unwrap();
        symlink("../outside", w.join("rel")).unwrap();
        symlink("../../../../../../../../../../oldroot/etc", w.join("old")).unwrap();
        symlink("../../../../../../../../../tmp", w.join("up")).unwrap();
        let w_str = w.to_str().unwrap();
        // Inside the sandbox (no host root) these resolve in the sandbox
        // root. Where the target is missing there, the launcher refuses
        // (125, naming the link) instead of creating anything.
        for (dst, option) in [
            ("/w/abs/d1", "--tmpfs"),
            ("/w/rel/d2", "--tmpfs"),
            ("/w/rel/f3", "--ro-bind"),
            ("/w/old/d4", "--tmpfs"),
        ] {
            let mut args = vec!["--bind", w_str, "/w", option];
            if option == "--ro-bind" {
                args.push("/etc/hostname");
            }
            args.extend([dst, "--", "/bin/true"]);
            let out = h.run_on(who, kernel, &args);
            assert_eq!(out.status.code(), Some(125), "{who:?} {kernel:?} {dst}");
            assert!(
                stderr(&out).contains("dangling symlink"),
                "{}",
                stderr(&out)
            );
        }
        // `up` climbs to /tmp both on the host and inside; inside it is the
        // sandbox's private /tmp, so that is where the mounts land.
        let f5 = format!("f5-{}", std::process::id());
        let d6 = format!("d6-{}", std::process::id());
        let (f5_dst, d6_dst) = (format!("/tmp/w/up/{f5}"), format!("/tmp/w/up/{d6}"));
        let out = h.run_on(
            who,
            kernel,
            &[
                "--ro-bind",
                "/",
                "/",
                "--tmpfs",
                "/tmp",
                "--bind",
                w_str,
                "/tmp/w",
                "--ro-bind",
                "/etc/hostname",
                &f5_dst,
                "--tmpfs",
                &d6_dst,
                "--",
                "sh",
                "-c",
                "ls /tmp | tr '\\n' ' '",
            ],
        );
        assert_eq!(
            common::stdout(&out).trim(),
            format!("{d6} {f5} w"),
            "{who:?} {kernel:?}: {}",
            stderr(&out)
        );
        for name in [&f5, &d6] {
            assert!(
                !Path::new("/tmp").join(name).exists(),
                "{name} created on the host"
            );
        }
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{who:?} {kernel:?}"
        );
        let mut left: Vec<String> = fs::read_dir(&w)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["abs", "old", "rel", "up"], "{who:?} {kernel:?}");
        for host in ["/oldroot", "/var/oldroot"] {
            assert!(!Path::new(host).exists(), "{host} created on the host");
        }
    }
}

#[test]
fn dev_has_exactly_the_minimal_tree() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let script = "ls -A /dev | tr '\\n' ' '; echo; \
                      echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
                      touch /dev/shm/ok && echo shm-ok; ls -A /dev/pts | tr '\\n' ' '; echo; \
                      readlink /dev/ptmx /dev/fd /dev/stdin";
        let out = ok(&h.run_on(who, kernel, &sh(script)));
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(
            lines[0], "core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero",
            "{who:?} {kernel:?}"
        );
        assert_eq!(lines[1], "4");
        assert_eq!(lines[2], "shm-ok");
        assert_eq!(lines[3], "ptmx", "{who:?} {kernel:?}: a private devpts");
        assert_eq!(lines[4..], ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]);
    }
}

#[test]
fn proc_is_fresh_and_its_kernel_knobs_are_read_only() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let script = "cat /proc/self/mountinfo; \
                      echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE-SYS; \
                      echo h > /proc/sysrq-trigger 2>/dev/null && echo WROTE-SYSRQ; \
                      for k in sys sysrq-trigger irq bus; do \
                      [ -e /proc/$k ] && echo has /proc/$k; done; true";
        let out = ok(&h.run_on(who, kernel, &sh(script)));
        assert!(!out.contains("WROTE"), "{who:?} {kernel:?}: {out}");
        let all = reachable_mounts(&out);
        let proc_opts = &all.iter().find(|(p, _)| p == "/proc").unwrap().1;
        for flag in ["nosuid", "nodev", "noexec"] {
            assert!(proc_opts.contains(flag), "{proc_opts}");
        }
        // The knobs this kernel has (sysrq-trigger needs CONFIG_MAGIC_SYSRQ).
        let present: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("has ")).collect();
        assert!(present.contains(&"/proc/sys"), "{out}");
        // Only the host's uid 0 could write them (a root caller's
        // workload): elsewhere nothing covers them, so a nested sandbox
        // can mount its own procfs (tests/bwrap_dropin.rs).
        if who == Who::User {
            for knob in present {
                assert!(
                    !all.iter().any(|(p, _)| p == knob),
                    "{kernel:?}: {knob} covered: {out}"
                );
            }
            continue;
        }
        for knob in present {
            let (_, opts) = all
                .iter()
                .find(|(p, _)| p == knob)
                .unwrap_or_else(|| panic!("{who:?} {kernel:?}: {knob} not remounted: {out}"));
            assert!(opts.starts_with("ro"), "{who:?} {kernel:?}: {knob} {opts}");
        }
    }
}

#[test]
fn host_proc_binds_the_hosts_proc() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = ok(&h.run(
            who,
            &[
                "--ro-bind",
                "/",
                "/",
                "--host-proc",
                "/proc",
                "--",
                "sh",
                "-c",
                "ls /proc | grep -c '^[0-9]'",
            ],
        ));
        let n: u32 = out.trim().parse().unwrap();
        assert!(n > 5, "{who:?}: the host's processes should be listed");
    }
}

#[test]
fn the_old_root_is_gone() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let out = ok(&h.run_on(
            who,
            kernel,
            &sh("cat /proc/self/mountinfo; ls -d /oldroot /newroot 2>&1 | grep -c 'No such'"),
        ));
        assert!(
            !out.contains("oldroot /") && !out.contains("/newroot"),
            "{out}"
        );
        assert_eq!(
            out.lines().last().unwrap().trim(),
            "2",
            "{who:?} {kernel:?}"
        );
        // The root of the sandbox is the bind of the host root, nothing
        // below or beside it from the setup.
        let points: Vec<String> = mounts(&out).into_iter().map(|(p, _)| p).collect();
        assert_eq!(points.iter().filter(|p| *p == "/").count(), 1, "{out}");
        assert!(!points.iter().any(|p| p.contains("oldroot")), "{out}");
    }
}

#[test]
fn the_empty_root_has_only_what_the_operations_put_there() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        // Without --ro-bind / /, the only entries of / are the ones the
        // operations created (the shell needs /usr and the library dirs).
        let mut args = Vec::new();
        let mut expected = Vec::new();
        for top in ["bin", "lib", "lib64", "usr"] {
            if Path::new("/").join(top).exists() {
                expected.push(top);
                args.extend([
                    "--ro-bind".to_string(),
                    format!("/{top}"),
                    format!("/{top}"),
                ]);
            }
        }
        expected.push("proc");
        expected.sort();
        args.extend(
            [
                "--proc",
                "/proc",
                "--",
                "/bin/sh",
                "-c",
                "ls -A / | tr '\\n' ' '",
            ]
            .map(String::from),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(&h.run_on(who, kernel, &refs));
        assert_eq!(out.trim(), expected.join(" "), "{who:?} {kernel:?}");
    }
}

#[test]
fn nothing_propagates_to_the_host_mount_table() {
    let Some(h) = harness() else { return };
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = h.scratch();
    for (who, kernel) in h.matrix() {
        let args = [
            "--ro-bind",
            "/",
            "/",
            "--bind",
            dir.str(),
            dir.str(),
            "--tmpfs",
            &format!("{}/sub", dir.str()),
            "--proc",
            "/proc",
            "--",
            "true",
        ];
        ok(&h.run_on(who, kernel, &args));
    }
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mounts(&before),
        mounts(&after),
        "the host mount table changed"
    );
    // The mount point itself may appear (SPEC allows it), as a plain dir.
    assert!(dir.path().join("sub").is_dir());
}

#[test]
fn dev_console_is_the_callers_terminal() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // `script` gives the launcher a pseudo-terminal as stdout; inside,
        // /dev/console must be that very device.
        let inner = format!(
            "{} run --ro-bind / / --dev /dev --proc /proc -- \
             stat -L -c %t:%T /dev/console /proc/self/fd/1",
            h.launcher_str()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &inner, "/dev/null"]).current_dir("/");
        h.as_identity(&mut cmd, who);
        let out = ok(&cmd.output().unwrap());
        let ids: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(ids.len(), 2, "{who:?}: {out}");
        assert_eq!(ids[0], ids[1], "{who:?}: console is not the caller's tty");
    }
}

/// Mounts stacked at one path, as `unshare --pid --mount-proc`, container
/// runtimes' masks and systemd's binfmt_misc automount leave them: only
/// the topmost is reachable, so its flags are the ones a remount keeps
/// (the covered one's would drop a locked `noexec`, or loosen it as root).
#[test]
fn stacked_mounts_keep_the_topmost_flags() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: stacking mounts in a private mount namespace needs root");
        return;
    }
    let dir = h.scratch();
    let stack = dir.path().join("stack");
    fs::create_dir(&stack).unwrap();
    let stack = stack.to_str().unwrap();
    for (who, kernel) in h.matrix() {
        let with_fresh_proc = shell_words(h.run_argv(
            who,
            kernel,
            &with_mounts(&[], &["cat", "/proc/self/mountinfo"]),
        ));
        let host_proc = shell_words(h.run_argv(
            who,
            kernel,
            &["--ro-bind", "/", "/", "--", "cat", "/proc/self/mountinfo"],
        ));
        // A permissive mount under a restrictive one, twice: a tmpfs on a
        // tmpfs, and a procfs on a procfs over the namespace's own /proc.
        let script = format!(
            "set -e; mount -t tmpfs -o mode=0777 tmpfs {stack}; \
             mount -t tmpfs -o noexec,nosymfollow,mode=0777 tmpfs {stack}; \
             mount -t proc proc /proc; mount -t proc -o nosuid,nodev,noexec proc /proc; \
             {with_fresh_proc}; echo ===; {host_proc}"
        );
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--mount-proc", "sh", "-c"])
            .arg(&script)
            .current_dir("/")
            .output()
            .unwrap();
        let text = ok(&out);
        let (fresh, host) = text.split_once("===").expect("both runs printed");
        let reachable_at = |mountinfo: &str, point: &str| -> String {
            let found = reachable_mounts(mountinfo)
                .into_iter()
                .filter(|(p, _)| p == point)
                .map(|(_, o)| o)
                .collect::<Vec<_>>();
            assert_eq!(found.len(), 1, "{who:?} {kernel:?} {point}: {mountinfo}");
            found[0].clone()
        };
        for (mountinfo, point) in [(fresh, stack), (host, stack), (host, "/proc")] {
            let opts = reachable_at(mountinfo, point);
            for flag in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(
                    opts.split(',').any(|o| o == flag),
                    "{who:?} {kernel:?}: {point} lacks {flag} ({opts})"
                );
            }
        }
        let opts = reachable_at(fresh, stack);
        assert!(opts.contains("nosymfollow"), "{who:?} {kernel:?}: {opts}");
    }
}
