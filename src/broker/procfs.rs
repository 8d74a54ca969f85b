//! The broker's procfs: a procfs of the sandbox's PID namespace, in
//! which it reads a caller's memory, descriptors, root and working
//! directory, and names its own descriptors (`self/fd/N`).
//!
//! Where the plan mounts a fresh procfs (`--proc`), the broker uses that
//! one, found after the tree is built and checked to be the sandbox's
//! (`self` is PID 1): the workload cannot change PID 1's mount namespace
//! (it has no capability there). Otherwise PID 1 makes one attached
//! nowhere, before the tree (a user namespace may mount procfs only where
//! one is fully visible, as the host's is until the pivot). That costs
//! more: the kernel tears a detached mount down when PID 1 exits, on the
//! sandbox's way out.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::plan::{MountOp, RunSpec};
use crate::sys::{self, uapi};

/// Before the tree: a detached procfs when the plan mounts none.
pub fn before_tree(plan: &RunSpec) -> Result<Option<OwnedFd>> {
    if plan.unix_grants.is_empty() || last_proc(plan).is_some() {
        return Ok(None);
    }
    let proc = sys::detached_procfs().context("a procfs for the unix socket broker")?;
    Ok(Some(proc))
}

/// After the tree (PID 1's root is the sandbox's): the procfs made
/// before it, or the plan's own, or (if a later mount covered that) a
/// detached one, which the kernel now allows since the plan's is in this
/// mount namespace.
pub fn after_tree(plan: &RunSpec, made: Option<OwnedFd>) -> Result<OwnedFd> {
    if let Some(proc) = made {
        return Ok(proc);
    }
    if let Some(dst) = last_proc(plan)
        && let Ok(proc) = sys::open(
            dst.as_os_str(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
        && is_ours(&proc)
    {
        return Ok(proc);
    }
    sys::detached_procfs().context("a procfs for the unix socket broker")
}

fn last_proc(plan: &RunSpec) -> Option<&std::path::Path> {
    plan.mounts.iter().rev().find_map(|step| match &step.op {
        MountOp::Proc { dst } => Some(dst.as_path()),
        _ => None,
    })
}

/// A procfs, of the PID namespace whose init is this process.
fn is_ours(proc: &OwnedFd) -> bool {
    let fd = proc.as_raw_fd();
    sys::fstatfs_type(fd).is_ok_and(|t| t == uapi::PROC_SUPER_MAGIC)
        && sys::readlinkat(fd, OsStr::new("self")).is_ok_and(|me| me == "1")
}
