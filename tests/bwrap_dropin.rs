//! bwrap mode as a drop-in for its real callers (SPEC §2.3, §5), and the
//! same rules in `run`: procfs magic links as mount sources (Flatpak binds
//! `/proc/self/ns/user` in every sandbox), run from real sandboxes as root
//! and as the unprivileged user, on both kernel paths.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::Stdio;

use common::{Who, harness, inherit_fd, ok, processes_with, stdout, wait_until};

/// Prints the inode of the bound namespace file and of the sandbox's own
/// user namespace, then whether the bound executable and stdin are what
/// they should be.
const MAGIC: &str = r#"stat -L -c %i /run/.userns; stat -L -c %i /proc/self/ns/user
cmp -s /run/exe "$0" && echo exe; [ -c /run/stdin ] && echo stdin; [ -e /run/nope ] || echo no-nope"#;

/// The magic-link binds, as Flatpak (`-try`) and bubblewrap's users
/// (plain) write them.
const MAGIC_BINDS: [&str; 15] = [
    "--tmpfs",
    "/run",
    "--ro-bind-try",
    "/proc/self/ns/user",
    "/run/.userns",
    "--ro-bind",
    "/proc/self/exe",
    "/run/exe",
    "--ro-bind",
    "/proc/self/fd/0",
    "/run/stdin",
    "--ro-bind-try",
    "/proc/self/ns/nope",
    "/run/nope",
    "--",
];

#[test]
fn proc_magic_links_are_sources_seen_from_the_sandbox() {
    let Some(h) = harness() else { return };
    let launcher = h.launcher_str();
    for (who, kernel) in h.matrix() {
        for mode in ["bwrap", "run"] {
            // A user namespace of its own in both modes, even as root.
            let mut args = vec!["--ro-bind", "/", "/", "--unshare-user"];
            if mode == "bwrap" {
                args.push("--unshare-pid");
            }
            args.extend(MAGIC_BINDS);
            args.extend(["sh", "-c", MAGIC, launcher]);
            let mut cmd = if mode == "bwrap" {
                h.bwrap_command_on(who, kernel, &args)
            } else {
                h.command_on(who, kernel, &args)
            };
            let text = ok(&cmd.output().unwrap());
            let lines: Vec<&str> = text.lines().collect();
            let context = format!("{who:?} {kernel:?} {mode}: {text}");
            assert_eq!(lines.len(), 5, "{context}");
            // /proc/self is the process that builds the tree, inside the
            // new namespaces: the bound namespace is the sandbox's own.
            assert_eq!(lines[0], lines[1], "{context}");
            let own = std::fs::metadata("/proc/self/ns/user").unwrap();
            assert_ne!(
                lines[0],
                std::os::unix::fs::MetadataExt::ino(&own).to_string(),
                "{context}"
            );
            assert_eq!(&lines[2..], ["exe", "stdin", "no-nope"], "{context}");
        }
    }
}

#[test]
fn a_second_sandbox_joins_the_bound_user_namespace() {
    // Flatpak keeps /run/.userns so that a sandbox started later can join
    // the app's user namespace with --userns.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let marker = format!("srtl-userns-{}-{who:?}", std::process::id());
        let script = "stat -L -c %i /proc/self/ns/user; while :; do sleep 1; done";
        let mut args = vec![
            "--ro-bind",
            "/",
            "/",
            "--unshare-user",
            "--unshare-pid",
            "--die-with-parent",
        ];
        args.extend(&MAGIC_BINDS[..5]);
        args.extend(["--", "sh", "-c", script, &marker]);
        let mut first = h
            .bwrap_command(who, &args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(first.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // The workload's shell (the launcher's argv holds the marker too).
        let mut userns = None;
        assert!(wait_until(10, || {
            userns = processes_with(&marker)
                .into_iter()
                .find_map(|pid| std::fs::File::open(format!("/proc/{pid}/root/run/.userns")).ok());
            userns.is_some()
        }));
        let userns = userns.unwrap();
        let mut second = h.bwrap_command(
            who,
            &[
                "--userns",
                "3",
                "--ro-bind",
                "/",
                "/",
                "stat",
                "-L",
                "-c",
                "%i",
                "/proc/self/ns/user",
            ],
        );
        inherit_fd(&mut second, userns.as_raw_fd(), 3);
        let out = second.output().unwrap();
        let _ = first.kill();
        let _ = first.wait();
        assert_eq!(ok(&out).trim(), line.trim(), "{who:?}: {}", stdout(&out));
    }
}

/// Makes a sandbox inside the sandbox with a procfs of its own, then says
/// whether /proc/sys could be written and what /proc/keys shows.
const NESTED: &str = "unshare -Umpfr --mount-proc sh -c 'echo nested $$ $(ls /proc | grep -c \"^[0-9]\")' 2>&1; \
    echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE-SYS; \
    awk '$5 ~ \"^/proc/\" {print \"covered\", $5}' /proc/self/mountinfo";

#[test]
fn a_nested_sandbox_mounts_its_own_proc() {
    // SPEC §2.3: procfs is covered only where the workload could write
    // its kernel knobs (as the host's uid 0: a root caller), so that an
    // unprivileged workload can make a user and PID namespace with a
    // fresh procfs, as under bubblewrap.
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        for mode in ["bwrap", "run"] {
            let mut args = vec!["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"];
            if mode == "bwrap" {
                args.extend(["--unshare-user", "--unshare-pid"]);
            }
            args.extend(["--", "sh", "-c", NESTED]);
            if mode == "bwrap" {
                args.retain(|a| *a != "--");
            }
            let mut cmd = if mode == "bwrap" {
                h.bwrap_command_on(who, kernel, &args)
            } else {
                h.command_on(who, kernel, &args)
            };
            let text = ok(&cmd.output().unwrap());
            let context = format!("{who:?} {kernel:?} {mode}: {text}");
            assert!(!text.contains("WROTE"), "{context}");
            let covered: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("covered "))
                .collect();
            match who {
                Who::User => {
                    // PID 1 of its own namespace, seeing a handful.
                    let nested = text.lines().next().unwrap_or_default();
                    let fields: Vec<&str> = nested.split(' ').collect();
                    assert_eq!(fields[..2], ["nested", "1"], "{context}");
                    assert!(fields[2].parse::<u32>().is_ok_and(|n| n < 10), "{context}");
                    assert!(covered.is_empty(), "{context}");
                }
                // The host's uid 0 could write them: covered, which locks
                // nested procfs out, as bubblewrap does for root.
                Who::Root => {
                    assert!(covered.contains(&"/proc/sys"), "{context}");
                    assert!(covered.contains(&"/proc/keys"), "{context}");
                    assert!(!text.contains("nested"), "{context}");
                }
            }
        }
    }
}

/// The bwrap-era SDK suite's check: a setuid copy of a shell runs, and
/// gains nothing (the bind is nosuid).
const SETUID_COPY: &str =
    "cd \"$1\" && cp /bin/sh x && chmod u+s x && ./x -c 'id -u' && [ -u x ] && echo setuid-kept";

#[test]
fn builders_may_set_setuid_bits_in_bwrap_mode_unless_refused() {
    // SPEC §5: what works under bubblewrap with the same argv works here;
    // --refuse-setuid-files turns the refusal on, and `run` always has it.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        common::make_world_writable(dir.path());
        let uid = h
            .user_ids(who)
            .map_or_else(|| euid().to_string(), |(u, _)| u.to_string());
        let base = [
            "--ro-bind",
            "/",
            "/",
            "--bind",
            dir.str(),
            dir.str(),
            "--unshare-all",
        ];
        let run = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend(extra);
            args.extend(["sh", "-c", SETUID_COPY, "sh", dir.str()]);
            h.bwrap_command(who, &args).output().unwrap()
        };
        let out = run(&[]);
        assert_eq!(ok(&out), format!("{uid}\nsetuid-kept\n"), "{who:?}");
        std::fs::remove_file(dir.path().join("x")).unwrap();
        let out = run(&["--refuse-setuid-files"]);
        assert_eq!(out.status.code(), Some(1), "{who:?}: {}", stdout(&out));
        assert!(
            common::stderr(&out).contains("Operation not permitted"),
            "{who:?}"
        );
        // run keeps it always.
        let mut args = vec!["--ro-bind", "/", "/", "--bind", dir.str(), dir.str(), "--"];
        args.extend([
            "sh",
            "-c",
            "cd \"$1\" && cp /bin/sh y && chmod u+s y && echo PLANTED",
            "sh",
            dir.str(),
        ]);
        let out = h.run(who, &args);
        assert!(!stdout(&out).contains("PLANTED"), "{who:?}");
    }
}

#[test]
fn io_uring_works_in_bwrap_mode_unless_refused() {
    // Allowed by default, as under bubblewrap, --unshare-net included;
    // refused with --refuse-setuid-files (it opens files with any mode,
    // and creates sockets of any family, vsock included).
    let Some(h) = harness() else { return };
    let host = std::process::Command::new(h.probe_str())
        .arg("io-uring")
        .output()
        .unwrap();
    let available = stdout(&host).contains("io-uring=ok");
    for who in h.identities() {
        for (extra, refused) in [
            (&[][..], false),
            (&["--unshare-net"][..], false),
            (&["--refuse-setuid-files"][..], true),
            (&["--unshare-net", "--refuse-setuid-files"][..], true),
        ] {
            let mut args = vec!["--ro-bind", "/", "/", "--unshare-user"];
            args.extend(extra);
            args.extend([h.probe_str(), "io-uring"]);
            let text = stdout(&h.bwrap_command(who, &args).output().unwrap());
            let want = if refused {
                "io-uring=1\n".to_string()
            } else if available {
                "io-uring=ok\n".to_string()
            } else {
                stdout(&host)
            };
            assert_eq!(text, want, "{who:?} {extra:?}");
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}
