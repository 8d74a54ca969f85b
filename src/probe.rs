//! What the running kernel and host offer, read once where needed: the
//! newer kernel interfaces (`Features`), the sysctls that gate user
//! namespaces, the active security modules, signs of a container, the
//! caller's own confinement, the Landlock ABI and the kernel release.
//!
//! `run` (its choice of interfaces), `diagnose` (the evidence behind a
//! cause), `check` and bwrap mode (`--unshare-user-try`, cgroup
//! namespaces) read the host through this one module. Runs in the
//! launcher, in the caller's view of /proc and /sys.

use std::path::Path;

use crate::log::trace;
use crate::sys;

/// Which newer kernel interfaces this kernel has, probed once per run.
/// Each has a fallback for Linux 4.18 that the tests force by making the
/// calls fail with ENOSYS.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// openat2 with RESOLVE_IN_ROOT (5.6).
    pub openat2: bool,
    /// open_tree + move_mount (5.2) and mount_setattr (5.12).
    pub new_mount_api: bool,
    /// close_range with CLOSE_RANGE_CLOEXEC (5.11).
    pub close_range: bool,
}

impl Features {
    pub fn detect() -> Features {
        let features = Features {
            openat2: sys::syscall_exists(libc::SYS_openat2),
            new_mount_api: sys::syscall_exists(libc::SYS_open_tree)
                && sys::syscall_exists(libc::SYS_move_mount)
                && sys::syscall_exists(libc::SYS_mount_setattr),
            close_range: sys::syscall_exists(libc::SYS_close_range),
        };
        trace!(
            "kernel interfaces: openat2={} new-mount-api={} close_range={}",
            features.openat2, features.new_mount_api, features.close_range
        );
        features
    }
}

/// The sysctls that gate user namespaces, by name and /proc/sys path.
pub const SYSCTLS: [(&str, &str); 3] = [
    (
        "kernel.apparmor_restrict_unprivileged_userns",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ),
    (
        "kernel.unprivileged_userns_clone",
        "/proc/sys/kernel/unprivileged_userns_clone",
    ),
    (
        "user.max_user_namespaces",
        "/proc/sys/user/max_user_namespaces",
    ),
];

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Each of [`SYSCTLS`] with its value, None when absent or unreadable.
pub fn sysctls() -> Vec<(&'static str, Option<i64>)> {
    SYSCTLS
        .iter()
        .map(|(name, path)| (*name, read(path).and_then(|v| v.trim().parse().ok())))
        .collect()
}

/// The active security modules (`/sys/kernel/security/lsm`), empty when
/// the list cannot be read.
pub fn security_modules() -> Vec<String> {
    read("/sys/kernel/security/lsm")
        .map(|l| {
            l.trim()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Signs of running inside a container: marker files, the `container`
/// variable, and runtimes named in PID 1's cgroup.
pub fn container_signs() -> Vec<String> {
    let mut signs = Vec::new();
    for marker in ["/.dockerenv", "/run/.containerenv"] {
        if Path::new(marker).exists() {
            signs.push(marker.to_string());
        }
    }
    if let Some(kind) = std::env::var_os("container") {
        signs.push(format!("container={}", kind.to_string_lossy()));
    }
    if let Some(cgroup) = read("/proc/1/cgroup") {
        for runtime in ["docker", "kubepods", "containerd", "libpod", "lxc"] {
            if cgroup.contains(runtime) {
                signs.push(format!("/proc/1/cgroup mentions {runtime}"));
            }
        }
    }
    signs
}

/// Whether this process is inside a user namespace other than the
/// initial one (its uid map is not the identity over every id).
pub fn in_nested_user_namespace() -> bool {
    read("/proc/self/uid_map")
        .is_some_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Windows Subsystem for Linux 1, which has no namespaces at all.
pub fn is_wsl1() -> bool {
    read("/proc/sys/kernel/osrelease").is_some_and(|r| r.contains("Microsoft"))
}

/// This process's own seccomp mode (`Seccomp:` in /proc/self/status).
pub fn seccomp_mode() -> Option<u32> {
    read("/proc/self/status").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// bubblewrap's test for `--unshare-user-try`: user namespaces are off
/// when the kernel has none, `max_user_namespaces` is 0, or RHEL 7's
/// module switch says N.
pub fn user_namespaces_disabled() -> bool {
    if !Path::new("/proc/self/ns/user").exists() {
        return true;
    }
    read("/sys/module/user_namespace/parameters/enable").is_some_and(|v| v.starts_with('N'))
        || read("/proc/sys/user/max_user_namespaces").is_some_and(|v| v == "0\n")
}

/// Whether the kernel has cgroup namespaces.
pub fn cgroup_namespaces_exist() -> bool {
    Path::new("/proc/self/ns/cgroup").exists()
}

/// The Landlock ABI version, None when Landlock is absent or off.
pub fn landlock_abi() -> Option<i64> {
    sys::landlock_abi()
}

/// The running kernel's release, which a covered /proc cannot hide.
pub fn kernel_release() -> String {
    sys::kernel_release()
}
