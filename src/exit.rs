//! Exit-code policy of the launcher itself (SPEC §1) and the table that
//! turns well-known kernel refusals into a one-line hint.
//!
//! Runs in the launcher only (PID 1 and the workload send their failures to
//! the launcher as already-formatted lines, see `run::report`).

use std::fmt;

use crate::sys::SysError;

/// Usage error: unknown option, missing value, bad number.
pub const USAGE: i32 = 2;
/// The sandbox could not be set up.
pub const SETUP: i32 = 125;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// An error that carries its own exit code. Errors without one are setup
/// failures (125): anything that goes wrong before the workload runs and is
/// not the caller's syntax is the sandbox failing to come up.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: USAGE,
            message: message.into(),
        })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code for an error that reached `main`.
pub fn code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(SETUP, |e| e.code)
}

/// The one line printed for an error: `context: context: cause; hint`.
pub fn describe(err: &anyhow::Error) -> String {
    let mut line = format!("{err:#}");
    if let Some(hint) = err
        .chain()
        .find_map(|e| e.downcast_ref::<SysError>())
        .and_then(hint_for)
    {
        line.push_str("; ");
        line.push_str(&hint);
    }
    // One line, whatever the causes contained.
    line.replace('\n', " ")
}

fn read_sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Why the kernel refused a user namespace, from the sysctls that gate it
/// (`sysctl` reads one, by its /proc/sys path).
fn userns_hint(errno: i32, sysctl: &dyn Fn(&str) -> Option<i64>) -> String {
    if errno == libc::EINVAL {
        return "the kernel was built without user namespaces (CONFIG_USER_NS)".into();
    }
    if sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return "user.max_user_namespaces is 0 (sysctl -w user.max_user_namespaces=15000)".into();
    }
    if errno == libc::ENOSPC {
        return "the user.max_user_namespaces limit is reached".into();
    }
    if sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return "kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1)"
            .into();
    }
    if sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return "AppArmor restricts unprivileged user namespaces \
                (kernel.apparmor_restrict_unprivileged_userns=1): add an AppArmor profile \
                allowing userns for this binary or set the sysctl to 0"
            .into();
    }
    "user namespaces are refused here (seccomp policy of a container runtime, \
     or a chroot)"
        .into()
}

/// A hint for a known refusal, keyed by the failing call and errno.
pub fn hint_for(err: &SysError) -> Option<String> {
    hint_with(err, &read_sysctl)
}

fn hint_with(err: &SysError, sysctl: &dyn Fn(&str) -> Option<i64>) -> Option<String> {
    let call = err.call();
    let errno = err.errno();
    if call.starts_with("unshare(") && call.contains("CLONE_NEWUSER") {
        return Some(userns_hint(errno, sysctl));
    }
    if call.starts_with("unshare(") && errno == libc::EPERM {
        return Some("creating namespaces needs CAP_SYS_ADMIN or a user namespace".into());
    }
    if call.contains("uid_map") || call.contains("gid_map") || call.contains("setgroups") {
        if sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
            return Some(userns_hint(errno, sysctl));
        }
        return None;
    }
    if call.starts_with("mount(") && call.contains("\"proc\"") && errno == libc::EPERM {
        return Some(
            "the host's /proc is partly covered (container?) so a fresh procfs is refused; \
             use --host-proc instead of --proc"
                .into(),
        );
    }
    if errno == libc::ENOSPC && (call.starts_with("mount") || call.starts_with("open_tree")) {
        return Some("too many mounts: the fs.mount-max limit is reached".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_map_to_2_and_others_to_125() {
        let usage = Exit::usage("bad");
        assert_eq!(code_of(&usage), USAGE);
        let setup = anyhow::anyhow!("mount failed");
        assert_eq!(code_of(&setup), SETUP);
        let wrapped = Exit::usage("bad").context("run");
        assert_eq!(code_of(&wrapped), USAGE);
    }

    #[test]
    fn description_is_one_line_with_hint() {
        let err = anyhow::Error::new(SysError::new(
            "mount(\"a\", \"b\", NULL, 0x1000)".into(),
            libc::ENOSPC,
        ))
        .context("--bind a b");
        let line = describe(&err);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("--bind a b: mount("), "{line}");
        assert!(line.contains("fs.mount-max"), "{line}");
    }

    /// Each sysctl that gates user namespaces, set to its refusing value,
    /// must be the one the hint names.
    #[test]
    fn userns_hint_names_the_sysctl_that_refuses() {
        let eperm = SysError::new("unshare(CLONE_NEWUSER|CLONE_NEWNS)".into(), libc::EPERM);
        let cases = [
            (
                "/proc/sys/user/max_user_namespaces",
                0,
                "user.max_user_namespaces is 0",
            ),
            (
                "/proc/sys/kernel/unprivileged_userns_clone",
                0,
                "kernel.unprivileged_userns_clone is 0",
            ),
            (
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                1,
                "kernel.apparmor_restrict_unprivileged_userns=1",
            ),
        ];
        for (path, value, expected) in cases {
            let sysctl = |p: &str| if p == path { Some(value) } else { Some(15000) };
            let hint = hint_with(&eperm, &sysctl).unwrap();
            assert!(hint.contains(expected), "{path}: {hint}");
        }
        let none = |_: &str| None;
        let enospc = SysError::new("unshare(CLONE_NEWUSER)".into(), libc::ENOSPC);
        assert!(
            hint_with(&enospc, &none)
                .unwrap()
                .contains("limit is reached")
        );
        // AppArmor denies the id maps rather than unshare on Ubuntu 24.04.
        let map = SysError::new("write /proc/self/uid_map".into(), libc::EPERM);
        let apparmor = |p: &str| p.contains("apparmor").then_some(1);
        assert!(hint_with(&map, &apparmor).unwrap().contains("AppArmor"));
    }

    #[test]
    fn userns_refusal_gets_a_hint() {
        let err = SysError::new("unshare(CLONE_NEWUSER|CLONE_NEWNS)".into(), libc::EPERM);
        assert!(hint_for(&err).is_some());
        let einval = SysError::new("unshare(CLONE_NEWUSER)".into(), libc::EINVAL);
        assert!(hint_for(&einval).unwrap().contains("CONFIG_USER_NS"));
    }
}
