//! The `--seccomp-unix-block` filter (SPEC §2.5), exercised by real system
//! calls from inside the sandbox, with a control run without it for each,
//! so a refusal is known to come from it. The always-on base filter's
//! rules are in hardening.rs.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{Harness, Who, harness, sh, stderr, stdout};

fn probe(h: &Harness, who: Who, filtered: bool, check: &str) -> std::process::Output {
    let mut args = Vec::new();
    if filtered {
        args.push("--seccomp-unix-block");
    }
    let script = format!("exec {} {check}", h.probe_str());
    args.extend(sh(&script));
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    h.run(who, &refs)
}

fn result_of(out: &std::process::Output) -> String {
    stdout(out)
        .trim()
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn unix_sockets_fail_with_eperm_under_the_filter() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let control = probe(h, who, false, "socket-unix");
        assert_eq!(result_of(&control), "ok", "{who:?} without the filter");
        let out = probe(h, who, true, "socket-unix");
        assert_eq!(
            result_of(&out),
            libc::EPERM.to_string(),
            "{who:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn inet_sockets_stay_allowed_under_the_filter() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        for check in ["socket-inet", "socket-inet6"] {
            let out = probe(h, who, true, check);
            assert_eq!(result_of(&out), "ok", "{who:?} {check}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_int80_socket_never_succeeds_under_the_filter() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let control = probe(h, who, false, "int80-socket");
        if result_of(&control) == libc::ENOSYS.to_string() {
            eprintln!("NOTE: this kernel has no IA-32 emulation; int 0x80 cannot be probed");
            return;
        }
        assert_eq!(result_of(&control), "ok", "{who:?}: int 0x80 control");
        let out = probe(h, who, true, "int80-socket");
        assert_eq!(result_of(&out), libc::EPERM.to_string(), "{who:?}: {out:?}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_calls_kill_the_workload() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        for filtered in [false, true] {
            let out = probe(h, who, filtered, "x32-socket");
            // Every filter kills the process on an x32 call: the launcher
            // reports 128+SIGSYS, and no socket was ever made.
            assert_eq!(
                out.status.code(),
                Some(128 + libc::SIGSYS),
                "{who:?} filtered={filtered}: {out:?}"
            );
            assert!(!stdout(&out).contains("=ok"), "{who:?}");
            assert_eq!(out.status.signal(), None);
        }
    }
}

#[test]
fn filter_applies_to_the_workload_only() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // PID 1 is not filtered: /proc/1/status shows no seccomp; the
        // workload is in filter mode (2).
        let out = probe_status(h, who);
        assert_eq!(out, ["Seccomp:\t0", "Seccomp:\t2"], "{who:?}");
    }
}

fn probe_status(h: &Harness, who: Who) -> Vec<String> {
    let mut args = vec!["--seccomp-unix-block"];
    args.extend(sh(
        "grep '^Seccomp:' /proc/1/status /proc/self/status | cut -d: -f2-",
    ));
    let out = common::ok(&h.run(who, &args));
    out.lines().map(str::to_string).collect()
}
