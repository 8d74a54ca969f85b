//! The always-on properties of SPEC §2.2, checked from inside a real
//! sandbox: privileges, PID 1's protection, descriptors, session, working
//! directory, environment, multicall, loopback.

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;

use common::{BASIC, Who, harness, ok, sh, stderr};

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn workload_has_no_capabilities_and_no_new_privs() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        for extra in [&[][..], &["--unshare-user"][..], &["--unshare-net"][..]] {
            let mut args = extra.to_vec();
            args.extend(BASIC);
            args.extend(["cat", "/proc/self/status"]);
            let status = ok(&h.run(who, &args));
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                assert_eq!(
                    status_field(&status, set),
                    "0000000000000000",
                    "{who:?} {extra:?} {set}"
                );
            }
            assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{who:?}");
        }
    }
}

#[test]
fn the_launcher_keeps_the_hosts_mount_namespace_and_root() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: reading a non-dumpable launcher's /proc entries needs root");
        return;
    }
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    for who in h.identities() {
        let mut child = h
            .command(who, &sh("readlink /proc/self/ns/mnt; sleep 5"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut inside = String::new();
        std::io::BufRead::read_line(&mut reader, &mut inside).unwrap();
        let proc_dir = format!("/proc/{}", child.id());
        let launcher_ns = std::fs::read_link(format!("{proc_dir}/ns/mnt")).unwrap();
        let launcher_root = std::fs::read_link(format!("{proc_dir}/root")).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // The monitor stays where the caller is (it removes deny-path
        // stubs on the host afterwards); the workload does not.
        assert_eq!(launcher_ns, own, "{who:?}: launcher's mount namespace");
        assert_eq!(launcher_root, std::path::Path::new("/"), "{who:?}");
        assert_ne!(
            std::path::Path::new(inside.trim()),
            own,
            "{who:?}: workload's"
        );
    }
}

#[test]
fn launcher_and_pid1_hold_no_capabilities_while_the_workload_runs() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let mut child = h
            .command(who, &sh("grep CapEff /proc/1/status; echo ready; sleep 5"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut pid1 = String::new();
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut reader, &mut pid1).unwrap();
        std::io::BufRead::read_line(&mut reader, &mut ready).unwrap();
        let launcher = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            pid1.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{who:?}: PID 1"
        );
        assert_eq!(
            status_field(&launcher, "CapEff"),
            "0000000000000000",
            "{who:?}: launcher"
        );
        assert_eq!(
            status_field(&launcher, "CapPrm"),
            "0000000000000000",
            "{who:?}: launcher"
        );
    }
}

#[test]
fn setuid_binaries_gain_nothing_inside() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: making a setuid-root helper needs root");
        return;
    }
    let dir = h.scratch();
    // A setuid-root copy of `id`: with no_new_privs it must run as the
    // caller, never as root.
    let id = dir.path().join("id-suid");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::os::unix::fs::chown(&id, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&id, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let args = common::with_mounts(
        &["--bind", dir.str(), "/tmp/suid"],
        &["/tmp/suid/id-suid", "-u"],
    );
    let out = ok(&h.run(Who::User, &args));
    assert_ne!(out.trim(), "0", "a setuid binary raised privileges");
}

#[test]
fn pid1_cannot_be_ptraced_or_written() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let script = format!(
            "{p} ptrace 1; {p} mem-write 1; {p} vm-write 1",
            p = h.probe_str()
        );
        let out = ok(&h.run(who, &sh(&script)));
        for check in ["ptrace", "mem-write", "vm-write"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(check))
                .unwrap_or_else(|| panic!("{out}"));
            let errno: i32 = line.split('=').nth(1).unwrap().parse().unwrap_or(0);
            assert!(
                errno == libc::EPERM || errno == libc::EACCES,
                "{who:?}: {check} on PID 1 was not refused: {line}"
            );
        }
    }
}

#[test]
fn probe_can_ptrace_its_own_child_so_the_refusal_above_is_real() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // The same probe against a plain sibling process of the workload
        // succeeds, so the refusals above come from PID 1's protection.
        let script = format!("sleep 5 & {p} mem-write $!; kill $!", p = h.probe_str());
        let out = ok(&h.run(who, &sh(&script)));
        assert!(out.contains("mem-write=ok"), "{who:?}: {out}");
    }
}

#[test]
fn inherited_descriptors_are_closed() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let leaked = std::fs::File::open(dir.file("leak", "secret")).unwrap();
    for who in h.identities() {
        let mut cmd = h.command(
            who,
            &sh("for fd in 3 4 5 37 200; do [ -e /proc/self/fd/$fd ] && echo open-$fd; done; echo done"),
        );
        common::inherit_fd(&mut cmd, leaked.as_raw_fd(), 37);
        common::inherit_fd(&mut cmd, leaked.as_raw_fd(), 200);
        let out = ok(&cmd.output().unwrap());
        assert_eq!(out.trim(), "done", "{who:?}: descriptors leaked: {out}");
    }
}

#[test]
fn workload_has_its_own_session_and_no_controlling_terminal() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // Fields 6 and 7 of /proc/self/stat: session id and tty_nr.
        let out = ok(&h.run(
            who,
            &sh("read -r line < /proc/self/stat; set -- $line; echo $$ $6 $7"),
        ));
        let v: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(v[0], v[1], "{who:?}: the workload must lead its session");
        assert_eq!(v[2], "0", "{who:?}: no controlling terminal");
    }
}

#[test]
fn working_directory_follows_the_spawner_then_home_then_root() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    for who in h.identities() {
        // Present inside (the host is bound): kept, PWD set.
        let out = ok(&h
            .command(who, &sh("pwd; echo $PWD"))
            .current_dir(dir.path())
            .output()
            .unwrap());
        assert_eq!(out, format!("{0}\n{0}\n", dir.str()), "{who:?}");

        // Absent inside (a tmpfs hides it): $HOME, else /.
        let args = [
            "--ro-bind",
            "/",
            "/",
            "--tmpfs",
            "/var/tmp",
            "--",
            "sh",
            "-c",
            "pwd; echo $PWD",
        ];
        let out = ok(&h
            .command(who, &args)
            .current_dir(dir.path())
            .env("HOME", "/usr/share")
            .output()
            .unwrap());
        assert_eq!(out, "/usr/share\n/usr/share\n", "{who:?}");
        let out = ok(&h
            .command(who, &args)
            .current_dir(dir.path())
            .env("HOME", "/nonexistent-home")
            .output()
            .unwrap());
        assert_eq!(out, "/\n/\n", "{who:?}");
    }
}

#[test]
fn setenv_sets_and_last_one_wins() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let mut args = vec!["--setenv", "SRTL_A", "one", "--setenv", "SRTL_B", "x y"];
        args.extend(["--setenv", "SRTL_A", "two"]);
        args.extend(sh("echo \"$SRTL_A|$SRTL_B|$SRTL_C\""));
        let out = ok(&h
            .command(who, &args)
            .env("SRTL_C", "kept")
            .output()
            .unwrap());
        assert_eq!(out.trim(), "two|x y|kept", "{who:?}");
    }
}

#[test]
fn argv0_is_removed_when_ours_and_kept_otherwise() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let ours = ok(&h
            .command(who, &sh("echo \"[${ARGV0-unset}]\""))
            .env("ARGV0", "srt-launcher")
            .output()
            .unwrap());
        assert_eq!(ours.trim(), "[unset]", "{who:?}");
        let theirs = ok(&h
            .command(who, &sh("echo \"[${ARGV0-unset}]\""))
            .env("ARGV0", "something-else")
            .output()
            .unwrap());
        assert_eq!(theirs.trim(), "[something-else]", "{who:?}");
    }
}

#[test]
fn multicall_name_in_argv0_works() {
    let Some(h) = harness() else { return };
    let mut cmd = Command::new(&h.launcher);
    std::os::unix::process::CommandExt::arg0(&mut cmd, "/opt/host/bin/srt-launcher");
    cmd.arg("run").args(sh("echo multicall"));
    let out = ok(&cmd.output().unwrap());
    assert_eq!(out.trim(), "multicall");
}

#[test]
fn only_the_sandbox_processes_are_visible() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = ok(&h.run(who, &sh("ls /proc | grep -c '^[0-9]'")));
        let n: u32 = out.trim().parse().unwrap();
        // PID 1, the shell, ls and grep: nothing of the host.
        assert!(n <= 5, "{who:?}: {n} processes visible");
    }
}

#[test]
fn unshare_net_brings_up_loopback_only() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let mut args = vec!["--unshare-net"];
        let script = format!(
            "{} loopback; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
            h.probe_str()
        );
        args.extend(sh(&script));
        let out = ok(&h.run(who, &args));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["loopback4=ok", "loopback6=ok", "lo"], "{who:?}");
    }
}

#[test]
fn stdout_is_the_workloads_alone() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = h.run(who, &sh("true"));
        assert!(out.stdout.is_empty(), "{who:?}: launcher wrote to stdout");
        assert!(out.stderr.is_empty(), "{who:?}: {}", stderr(&out));
    }
}
