//! Namespace entry for the launcher: mount + PID (+ network) namespaces,
//! directly when we hold CAP_SYS_ADMIN, else inside a new user namespace.
//!
//! Runs in the launcher, before any child exists (unshare of a user
//! namespace is refused in a threaded process, and the launcher never
//! starts threads). Invariant: in a user namespace the caller's uid and gid
//! map to themselves and nothing else (one-entry maps, `setgroups` denied
//! first, as user_namespaces(7) requires for an unprivileged gid_map), so
//! files keep their real owners and the sandbox gains no identity it did
//! not have.

use anyhow::{Context, Result};

use crate::sys::{self, SysError};

/// Which namespaces `run` creates.
pub struct Namespaces {
    pub net: bool,
    /// Take a user namespace even when the direct way would work.
    pub force_user: bool,
}

fn names(flags: i32) -> String {
    const NAMES: [(i32, &str); 4] = [
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

/// Enters the namespaces. Afterwards the launcher is in the new mount
/// (and network) namespace; its *children* are in the new PID namespace.
/// Returns whether a user namespace was taken.
pub fn enter(ns: &Namespaces) -> Result<bool> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if ns.net {
        flags |= libc::CLONE_NEWNET;
    }
    if !ns.force_user {
        match sys::unshare(flags, &names(flags)) {
            Ok(()) => return Ok(false),
            // EPERM: no CAP_SYS_ADMIN here; fall through to a user namespace.
            Err(e) if e.errno() == libc::EPERM => {
                crate::trace!("{e}; taking a user namespace");
            }
            Err(e) => return Err(e).context("create namespaces"),
        }
    }
    let (uid, _, gid, _) = sys::ids();
    let with_user = flags | libc::CLONE_NEWUSER;
    sys::unshare(with_user, &names(with_user)).context("create namespaces")?;
    write_map("/proc/self/setgroups", "deny")?;
    write_map("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
    write_map("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))?;
    Ok(true)
}

fn write_map(path: &str, content: &str) -> Result<()> {
    std::fs::write(path, content)
        .map_err(|e| {
            SysError::new(
                format!("write {path}"),
                e.raw_os_error().unwrap_or(libc::EIO),
            )
        })
        .context("map the caller's ids into the user namespace")
}

/// Brings `lo` up in the new network namespace, so 127.0.0.1/8 and ::1
/// answer (the kernel assigns both when the interface goes up).
pub fn loopback_up() -> Result<()> {
    sys::loopback_up().context("bring up loopback in the new network namespace")
}
