//! Executes the ordered [`MountOp`] list: builds the sandbox's mount tree
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
mod deny;
mod dev;
mod legacy;
mod proc;

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

use super::Features;
use super::resolve::Kind;
use super::spec::MountOp;
use crate::stubs::{Hold, RuntimeDir};
use crate::sys;
use builder::{Builder, SourceError, mount_tmpfs};

/// Where the base tmpfs goes: a directory every Linux host has. Nothing is
/// created on the host for it; it is only covered in our own namespace.
const BASE: &str = "/tmp";

/// What PID 1 needs from the launcher to build the tree.
pub struct TreeInput<'a> {
    pub ops: &'a [MountOp],
    pub features: Features,
    /// The spawn-time working directory, for relative sources.
    pub host_cwd: Option<&'a Path>,
    /// The terminal on the launcher's stdout, for `--dev`'s console.
    pub tty: Option<&'a OsStr>,
    /// Where deny-path stubs on the host are recorded (when there are
    /// deny paths).
    pub runtime: Option<&'a RuntimeDir>,
}

/// Builds the whole tree and pivots into it. On return `/` is the sandbox
/// root, the host root is detached, and the cwd is `/`. Returns the locks
/// on the deny-path stubs the sandbox uses: hold them until it ends.
pub fn build_and_enter(input: &TreeInput) -> Result<Vec<Hold>> {
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

    let mut builder = Builder::new(input.features, input.host_cwd, input.tty, input.runtime)?;
    for op in input.ops {
        builder.reopen_root()?;
        apply(&mut builder, op).map_err(|e| {
            // A source error already names the option and the path.
            if e.is::<SourceError>() {
                e
            } else {
                e.context(format!("{} {}", op.option(), op.dst().display()))
            }
        })?;
    }
    // The stub records must not be writable from inside (a forged record
    // would make the launcher delete a host file afterwards): if the
    // runtime directory is visible in the sandbox, it is masked last.
    if let Some(runtime) = input.runtime {
        builder.reopen_root()?;
        deny::hide_if_present(&mut builder, runtime.path())
            .context("hide the runtime directory")?;
    }
    let holds = builder.into_holds();

    // Invariant: the host root is unreachable from the sandbox. No
    // descriptor of ours points into it any more (the builder is dropped),
    // it is detached, and the base tmpfs above it goes with the pivot.
    sys::umount_detach(OsStr::new("/oldroot")).context("detach the host root")?;
    sys::chdir(OsStr::new("/newroot")).context("enter the sandbox root")?;
    sys::pivot_root(OsStr::new("."), OsStr::new(".")).context("pivot to the sandbox root")?;
    sys::umount_detach(OsStr::new(".")).context("detach the base")?;
    sys::chdir(OsStr::new("/")).context("enter /")?;
    Ok(holds)
}

/// `--symlink TARGET DST`: DST's parents are created inside the root, then
/// the link. An existing DST is fine only if it is that same link.
fn make_symlink(b: &mut Builder, target: &Path, dst: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        anyhow::bail!("cannot make the sandbox root a symlink");
    };
    let dir = b.create_dst(parent, Kind::Dir)?;
    match sys::symlinkat(target.as_os_str(), dir.as_raw_fd(), name) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == libc::EEXIST => match sys::readlinkat(dir.as_raw_fd(), name) {
            Ok(existing) if existing == target.as_os_str() => Ok(()),
            _ => Err(e).context("it exists and is not that symlink"),
        },
        Err(e) => Err(e.into()),
    }
}

fn source_is_missing(e: &anyhow::Error) -> bool {
    e.downcast_ref::<SourceError>()
        .is_some_and(|s| s.errno() == Some(libc::ENOENT))
}

/// One plan step, on top of everything the earlier ones built.
fn apply(b: &mut Builder, op: &MountOp) -> Result<()> {
    match op {
        MountOp::Bind {
            src,
            dst,
            read_only,
            if_exists,
        } => match b.bind(op.option(), src, dst, *read_only) {
            // --bind-try / --ro-bind-try: a missing source is skipped.
            Err(e) if *if_exists && source_is_missing(&e) => Ok(()),
            other => other,
        },
        MountOp::HostProc { dst } => proc::bind_host_proc(b, op.option(), dst),
        // Device nodes work through it (no nodev); still nosuid.
        MountOp::DevBind {
            src,
            dst,
            if_exists,
        } => match b.bind_with(op.option(), src, dst, sys::uapi::MOUNT_ATTR_NOSUID) {
            Err(e) if *if_exists && source_is_missing(&e) => Ok(()),
            other => other,
        },
        MountOp::Dir { dst } => b.create_dst(dst, Kind::Dir).map(drop),
        MountOp::Symlink { target, dst } => make_symlink(b, target, dst),
        MountOp::Tmpfs { dst } => {
            mount_tmpfs(b.create_dst(dst, Kind::Dir)?.as_raw_fd())?;
            b.note_sandbox_fs(dst)
        }
        MountOp::Proc { dst } => proc::mount_proc(b, dst),
        MountOp::Dev { dst } => {
            dev::mount_dev(b, dst)?;
            b.note_sandbox_fs(dst)
        }
        MountOp::Deny { path, mask } => deny::deny(b, path, *mask),
    }
}
