//! Executes the plan's ordered [`Step`] list: builds the sandbox's mount tree
//! and pivots into it.
//!
//! Runs in PID 1 (first process of the new PID namespace), inside the new
//! mount namespace, with CAP_SYS_ADMIN over that namespace (directly as
//! root, or through the sandbox's user namespace). The sequence follows
//! bubblewrap's: private propagation, a tmpfs base holding `newroot` and
//! `oldroot`, every operation applied from `oldroot` (sources) onto
//! `newroot` (destinations), then `oldroot` detached and `newroot` made `/`.
//!
//! The dependency runs one way: this module executes the plan and calls
//! the steps (`dev`, `proc`, and the binds and tmpfs below); the steps use
//! the primitives in `builder`, which fall back to `legacy` on kernels
//! without `mount_setattr`. No step calls back into the plan.

mod builder;
mod data;
pub mod deny;
mod dev;
mod legacy;
mod overlay;
mod proc;
mod resolve;
mod step;

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::failure::{AtStep, SourceFailure};
use crate::plan::{MountOp, Step};
use crate::probe::Features;
use crate::sys;
use builder::Builder;
use deny::stubs::{RuntimeDir, StubLock};
pub use proc::ProcCovers;

/// Where the base tmpfs goes: a directory every Linux host has. Nothing is
/// created on the host for it; it is only covered in our own namespace.
const BASE: &str = "/tmp";

/// What PID 1 needs from the launcher to build the tree.
pub struct TreeInput<'a> {
    pub steps: &'a [Step],
    pub features: Features,
    /// The spawn-time working directory, for relative sources.
    pub host_cwd: Option<&'a Path>,
    /// The terminal on the launcher's stdout, for `--dev`'s console.
    pub tty: Option<&'a OsStr>,
    /// Where deny-path stubs on the host are recorded (when there are
    /// deny paths).
    pub runtime: Option<&'a RuntimeDir>,
    /// Refuse mounts on symlink destinations (bwrap mode).
    pub refuse_symlink_destinations: bool,
    /// What is mounted over a procfs (see `proc.rs`).
    pub proc_covers: ProcCovers,
    /// The runtime directories of this user on the host (stub records),
    /// hidden wherever a bind would show them.
    pub private_dirs: &'a [std::path::PathBuf],
    /// Whether the sandbox has a PID namespace of its own. Without one,
    /// `--proc` binds the host's procfs (a new one would show the same
    /// processes, and the kernel refuses it from a user namespace), as
    /// bubblewrap does.
    pub own_pid_namespace: bool,
}

/// Builds the whole tree and pivots into it. On return `/` is the sandbox
/// root, the host root is detached, and the cwd is `/`. Returns the locks
/// on the deny-path stubs the sandbox uses: hold them until it ends.
pub fn build_and_enter(input: &TreeInput) -> Result<Vec<StubLock>> {
    // Invariant: nothing we mount propagates to the host, and host mount
    // events do not propagate in. Must precede every other mount.
    sys::mount(
        None,
        OsStr::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .context("make / private")?;
    // Modes are exactly what the plan says (mount points 0755/0444,
    // --perms), whatever the caller's umask; it is put back at the end for
    // a workload that this process becomes.
    let caller_umask = sys::umask(0);

    enter_base()?;

    let mut builder = Builder::new(input.features, input.host_cwd, input.tty, input.runtime)?;
    builder.refuse_symlink_destinations = input.refuse_symlink_destinations;
    builder.proc_covers = input.proc_covers;
    builder.watch_private(input.private_dirs)?;
    for step in input.steps {
        builder.reopen_root()?;
        if !matches!(step.op, MountOp::Deny { .. }) {
            builder.forget_pins();
        }
        step::apply(&mut builder, step, input.own_pid_namespace).map_err(|e| {
            // A source error already names the option and the path.
            if e.is::<SourceFailure>() {
                e
            } else {
                e.context(AtStep {
                    origin: step.origin,
                    dst: step.op.dst().to_path_buf(),
                })
            }
        })?;
    }
    // Invariant: the stub records are out of the workload's reach (a
    // forged record would name a host file for a later launcher to
    // remove): every place a bind shows a runtime directory of this user
    // is masked, last, whatever the front-end and the plan.
    builder.forget_pins();
    deny::hide_private_dirs(&mut builder).context("hide the runtime directory")?;
    let holds = builder.into_holds();

    leave_base()?;
    sys::umask(caller_umask);
    Ok(holds)
}

/// A tmpfs base in our namespace only, holding the two pivot points, and
/// pivoted into: after it the host root is `/oldroot`, and `/newroot` is
/// the sandbox root, an empty tmpfs the workload will never see beyond.
fn enter_base() -> Result<()> {
    // A tmpfs base in our namespace only, holding the two pivot points.
    // After pivot_root the host root is `/oldroot` and our root is a tmpfs
    // the workload will never see.
    let base = OsStr::new(BASE);
    sys::mount(
        Some(OsStr::new("tmpfs")),
        base,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .context("mount the base tmpfs")?;
    sys::chdir(base).context("enter the base tmpfs")?;
    for dir in ["newroot", "oldroot"] {
        sys::mkdirat(libc::AT_FDCWD, OsStr::new(dir), 0o755).context("prepare the base")?;
    }
    sys::pivot_root(OsStr::new("."), OsStr::new("oldroot")).context("pivot to the base")?;
    sys::chdir(OsStr::new("/")).context("enter the base")?;

    // The sandbox root: an empty tmpfs, so only what the operations put
    // there exists.
    sys::mount(
        Some(OsStr::new("tmpfs")),
        OsStr::new("/newroot"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .context("mount the sandbox root")?;
    Ok(())
}

/// Leaves the base for the finished sandbox root.
fn leave_base() -> Result<()> {
    // Invariant: the host root is unreachable from the sandbox. No
    // descriptor of ours points into it any more (the builder is dropped),
    // it is detached, and the base tmpfs above it goes with the pivot.
    sys::umount_detach(OsStr::new("/oldroot")).context("detach the host root")?;
    sys::chdir(OsStr::new("/newroot")).context("enter the sandbox root")?;
    sys::pivot_root(OsStr::new("."), OsStr::new(".")).context("pivot to the sandbox root")?;
    sys::umount_detach(OsStr::new(".")).context("detach the base")?;
    sys::chdir(OsStr::new("/")).context("enter /")?;
    Ok(())
}
