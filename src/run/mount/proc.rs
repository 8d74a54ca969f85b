//! The `--proc DST` mount: a procfs of the sandbox's own PID namespace,
//! with the writable kernel knobs in it made read-only.
//!
//! Runs in PID 1, which is what makes the new procfs show the sandbox's
//! PID namespace (procfs takes the mounting process's namespace).
//! Invariants: the workload sees only its own process tree; /proc/sys,
//! /proc/sysrq-trigger, /proc/irq and /proc/bus cannot be written by the
//! workload. procfs grants writes there to the host's uid 0 alone (its
//! permission check compares the euid with the global root, whatever the
//! capabilities), so they are covered read-only only where the workload
//! runs as that uid: a root caller. Anywhere else nothing is mounted over
//! the procfs, because the kernel refuses a fresh procfs in a nested
//! namespace while any covered entry would be revealed by it, and nested
//! sandboxes (`unshare --mount-proc`, podman, bwrap inside) need one.
//! /proc/keys, which lists the keys the reader may view by serial and
//! description (never payloads), is hidden (read as an empty file) only
//! where nested procfs is impossible anyway: a root caller, or
//! `--disable-userns`.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::builder::{Builder, mount_on_dir};
use crate::sys::{self, uapi};

/// Entries of a fresh procfs that write to the kernel rather than to the
/// sandbox's own processes.
const KERNEL_KNOBS: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];

/// The entry that lists the caller's kernel keys (serial, description)
/// whatever the namespace. (`key-users` only counts keys per uid; it is
/// left, as container runtimes leave it, to keep startup cheap.)
const KEY_LISTS: [&str; 1] = ["keys"];

/// What is mounted over a procfs: decided by the plan, once.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcCovers {
    /// sys, sysrq-trigger, irq and bus read-only.
    pub kernel_knobs: bool,
    /// keys as an empty file.
    pub key_lists: bool,
}

impl ProcCovers {
    /// The covers a sandbox needs: the knobs where the workload runs as
    /// the host's uid 0 (`caller_is_root`); the key lists there too, and
    /// where the workload cannot make a nested user namespace (without
    /// one it cannot mount a procfs, so hiding costs nothing).
    pub fn needed(caller_is_root: bool, nested_userns_refused: bool) -> ProcCovers {
        ProcCovers {
            kernel_knobs: caller_is_root,
            key_lists: caller_is_root || nested_userns_refused,
        }
    }
}

/// `--proc DST` with a PID namespace of the sandbox's own: a fresh procfs
/// on the mount point the step's preamble made, then its covers.
pub fn mount_proc(b: &mut Builder, mount_point: RawFd, dst: &Path) -> Result<()> {
    mount_on_dir(
        mount_point,
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )
    .context("mount procfs")?;
    let proc_root = b.open_mounted(dst)?;
    apply_covers(b, proc_root.as_raw_fd())
}

fn apply_covers(b: &mut Builder, proc_root: RawFd) -> Result<()> {
    let covers = b.proc_covers;
    if covers.kernel_knobs {
        protect_kernel_knobs(b, proc_root)?;
    }
    if covers.key_lists {
        hide_key_lists(b, proc_root)?;
    }
    Ok(())
}

/// Makes /proc/sys, sysrq-trigger, irq and bus read-only (a read-only bind
/// of each over itself), where they exist.
fn protect_kernel_knobs(b: &mut Builder, proc_root: RawFd) -> Result<()> {
    for knob in KERNEL_KNOBS {
        let Ok(entry) = sys::openat(
            proc_root,
            OsStr::new(knob),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        ) else {
            continue;
        };
        // A read-only bind of the entry over itself.
        b.bind_fd(
            entry.as_raw_fd(),
            entry.as_raw_fd(),
            true,
            uapi::MOUNT_ATTR_RDONLY | uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV,
        )
        .with_context(|| format!("make {knob} read-only"))?;
    }
    Ok(())
}

/// `--host-proc DST`, and `--proc DST` in a sandbox without a PID
/// namespace of its own: once the host's /proc is bound on DST (the
/// step's bind), the same covers as on a fresh one.
pub fn cover_host_proc(b: &mut Builder, dst: &Path) -> Result<()> {
    let proc_root = b.open_mounted(dst)?;
    apply_covers(b, proc_root.as_raw_fd())
}

/// Covers DST/keys with PID 1's own empty file (as
/// `--mask` does), read-only.
fn hide_key_lists(b: &mut Builder, proc_root: RawFd) -> Result<()> {
    for list in KEY_LISTS {
        let Ok(entry) = sys::openat(
            proc_root,
            OsStr::new(list),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        ) else {
            continue;
        };
        // PID 1's own empty file over it (as --mask does).
        let empty = b.empty_source(false)?;
        b.bind_fd(
            empty,
            entry.as_raw_fd(),
            false,
            uapi::MOUNT_ATTR_RDONLY
                | uapi::MOUNT_ATTR_NOSUID
                | uapi::MOUNT_ATTR_NODEV
                | uapi::MOUNT_ATTR_NOEXEC,
        )
        .with_context(|| format!("hide {list}"))?;
    }
    Ok(())
}
