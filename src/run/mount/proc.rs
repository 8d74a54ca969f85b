//! The `--proc DST` mount: a procfs of the sandbox's own PID namespace,
//! with the writable kernel knobs in it made read-only.
//!
//! Runs in PID 1, which is what makes the new procfs show the sandbox's
//! PID namespace (procfs takes the mounting process's namespace).
//! Invariants: the workload sees only its own process tree; /proc/sys,
//! /proc/sysrq-trigger, /proc/irq and /proc/bus cannot be written even by a
//! workload that is root in the user namespace.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

use super::builder::{Builder, mount_on_dir};
use crate::run::resolve::Kind;
use crate::sys::{self, uapi};

/// Entries of a fresh procfs that write to the kernel rather than to the
/// sandbox's own processes.
const KERNEL_KNOBS: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];

pub fn mount_proc(b: &mut Builder, dst: &Path) -> Result<()> {
    let mount_point = b.create_dst(dst, Kind::Dir)?;
    mount_on_dir(
        mount_point.as_raw_fd(),
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )
    .context("mount procfs")?;
    let proc_root = b.open_mounted(dst)?;
    for knob in KERNEL_KNOBS {
        let Ok(entry) = sys::openat(
            proc_root.as_raw_fd(),
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
