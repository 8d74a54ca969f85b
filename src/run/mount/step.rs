//! One plan step, in bubblewrap's `SetupOp` shape: every step is first put
//! through the same preamble (its source opened in the host's view, a
//! missing `-try` source skipping the step, then its destination made
//! inside the sandbox root, of the source's kind), and only then does the
//! step's own action run, on what the preamble opened. Steps whose
//! destination is their product (a directory, a symlink, a data file, a
//! deny path, an overlay over several sources) make it themselves.
//!
//! Runs in PID 1 while the tree is built (see `mod.rs`).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::builder::{self, Builder, HeldSource, mount_tmpfs_with};
use super::resolve::{Kind, Modes};
use super::{data, deny, dev, overlay, proc};
use crate::failure::{Problem, SourceFailure};
use crate::plan::{MountOp, Step};
use crate::sys::{self, uapi};

/// Where a step's source comes from.
enum Source<'a> {
    None,
    /// A host path, resolved in the host's view; with `if_exists` a
    /// missing one skips the step (`--bind-try` and the like).
    Host {
        path: &'a Path,
        if_exists: bool,
    },
    /// A descriptor the caller holds (`--bind-fd`), reopened in the
    /// host's view.
    CallerFd(i32),
}

/// What the preamble makes at the destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Nothing: the step's destination is what the step makes.
    OwnAction,
    /// A mount point of the source's kind (a directory for a directory).
    LikeSource,
    /// A directory mount point, for a filesystem of the sandbox's own.
    Directory,
}

/// The preamble of each kind of step, as bubblewrap's table has it.
fn shape(op: &MountOp, own_pid_namespace: bool) -> (Source<'_>, Target) {
    let host = |path, if_exists| Source::Host { path, if_exists };
    match op {
        MountOp::Bind { src, if_exists, .. } | MountOp::DevBind { src, if_exists, .. } => {
            (host(src, *if_exists), Target::LikeSource)
        }
        MountOp::HostProc { .. } => (host(Path::new("/proc"), false), Target::LikeSource),
        // Without a PID namespace of its own, the sandbox gets the host's
        // procfs (a new one would show the same processes, and the kernel
        // refuses it from a user namespace), as bubblewrap does.
        MountOp::Proc { .. } if !own_pid_namespace => {
            (host(Path::new("/proc"), false), Target::LikeSource)
        }
        MountOp::BindFd { fd, .. } => (Source::CallerFd(*fd), Target::LikeSource),
        MountOp::Tmpfs { .. }
        | MountOp::Mqueue { .. }
        | MountOp::Proc { .. }
        | MountOp::Dev { .. } => (Source::None, Target::Directory),
        MountOp::Dir { .. }
        | MountOp::Symlink { .. }
        | MountOp::File { .. }
        | MountOp::BindData { .. }
        | MountOp::Chmod { .. }
        | MountOp::RemountRo { .. }
        | MountOp::Overlay { .. }
        | MountOp::Deny { .. } => (Source::None, Target::OwnAction),
    }
}

/// What the preamble opened for the step's action.
struct Opened {
    source: Option<HeldSource>,
    target: Option<OwnedFd>,
}

impl Opened {
    fn source(&self) -> Result<&HeldSource> {
        match &self.source {
            Some(held) => Ok(held),
            None => bail!("the step has no source"),
        }
    }

    fn target(&self) -> Result<RawFd> {
        match &self.target {
            Some(fd) => Ok(fd.as_raw_fd()),
            None => bail!("the step has no mount point"),
        }
    }
}

/// The preamble: the source, then the destination. None when the step is
/// skipped (a `-try` source that does not exist).
fn preamble(b: &mut Builder, step: &Step, own_pid_namespace: bool) -> Result<Option<Opened>> {
    let (source, target) = shape(&step.op, own_pid_namespace);
    let option = step.origin.option;
    let source = match source {
        Source::None => None,
        Source::Host { path, if_exists } => match b.open_source(option, path) {
            Ok(fd) => Some(HeldSource::new(fd)?),
            Err(e) if if_exists && source_is_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        },
        Source::CallerFd(fd) => Some(HeldSource::new(b.reopen_in_host_view(option, fd)?)?),
    };
    let dst = step.op.dst();
    let target = match (target, &source) {
        (Target::OwnAction, _) => None,
        (Target::Directory, _) => Some(b.mount_point(dst, Kind::Dir)?),
        (Target::LikeSource, Some(held)) => Some(b.mount_point_like(held, dst)?),
        (Target::LikeSource, None) => bail!("a mount point like no source"),
    };
    Ok(Some(Opened { source, target }))
}

fn source_is_missing(e: &anyhow::Error) -> bool {
    e.downcast_ref::<SourceFailure>()
        .is_some_and(|s| s.errno == libc::ENOENT)
}

/// The recursive bind's flags: nosuid always, nodev unless device nodes
/// must work, read-only when asked; on the bind and every submount.
fn bind_attrs(read_only: bool, devices: bool) -> u64 {
    let mut attrs = uapi::MOUNT_ATTR_NOSUID;
    if !devices {
        attrs |= uapi::MOUNT_ATTR_NODEV;
    }
    if read_only {
        attrs |= uapi::MOUNT_ATTR_RDONLY;
    }
    attrs
}

/// The host's /proc, bound on the mount point, then covered as a fresh
/// procfs would be.
fn bind_host_proc(b: &mut Builder, opened: &Opened, dst: &Path) -> Result<()> {
    b.bind_at(opened.source()?, opened.target()?, bind_attrs(false, false))?;
    proc::cover_host_proc(b, dst)
}

/// One plan step, on top of everything the earlier ones built: the
/// preamble, then the step's own action.
pub fn apply(b: &mut Builder, step: &Step, own_pid_namespace: bool) -> Result<()> {
    let Some(opened) = preamble(b, step, own_pid_namespace)? else {
        return Ok(());
    };
    match &step.op {
        MountOp::Bind { read_only, .. } => b.bind_at(
            opened.source()?,
            opened.target()?,
            bind_attrs(*read_only, false),
        ),
        // Device nodes work through it (no nodev); still nosuid.
        MountOp::DevBind { .. } => {
            b.bind_at(opened.source()?, opened.target()?, bind_attrs(false, true))
        }
        MountOp::HostProc { dst } => bind_host_proc(b, &opened, dst),
        MountOp::Proc { dst } if !own_pid_namespace => bind_host_proc(b, &opened, dst),
        MountOp::BindFd { fd, read_only, .. } => {
            b.bind_at(
                opened.source()?,
                opened.target()?,
                bind_attrs(*read_only, false),
            )?;
            sys::close(*fd).context("close the bound descriptor")
        }
        MountOp::Tmpfs { dst, mode, size } => {
            mount_tmpfs_with(opened.target()?, mode.unwrap_or(0o755), *size)?;
            b.note_sandbox_fs(dst)
        }
        MountOp::Mqueue { .. } => {
            builder::mount_on_dir(opened.target()?, "mqueue", 0, "").context("mount mqueue")
        }
        MountOp::Proc { dst } => proc::mount_proc(b, opened.target()?, dst),
        MountOp::Dev { dst } => {
            dev::mount_dev(b, step.origin.option, opened.target()?, dst)?;
            b.note_sandbox_fs(dst)
        }
        MountOp::Dir { dst, mode } => {
            let modes = mode.map_or(Modes::mount_point(Kind::Dir), Modes::with_perms);
            b.create_dst_with(dst, Kind::Dir, modes).map(drop)
        }
        MountOp::File { fd, dst, mode } => data::write_file(b, *fd, dst, *mode),
        MountOp::BindData {
            fd,
            dst,
            mode,
            read_only,
        } => data::bind_data(b, *fd, dst, *mode, *read_only),
        MountOp::RemountRo { dst } => b.remount_read_only(dst),
        MountOp::Overlay { dst, lower, writes } => {
            overlay::mount_overlay(b, step.origin.option, dst, lower, writes)
        }
        // Through the path inside the root (a symlink is followed there,
        // as chmod(2) does), after every earlier step.
        MountOp::Chmod { path, mode } => {
            let target = b.open_existing(path)?;
            b.chmod_held(target.as_raw_fd(), *mode)
                .with_context(|| Problem::Chmod {
                    path: path.clone(),
                    mode: *mode,
                })
        }
        MountOp::Symlink { target, dst } => make_symlink(b, target, dst),
        MountOp::Deny { path, mask } => deny::deny(b, path, *mask),
    }
}

/// `--symlink TARGET DST`: DST's parents are created inside the root, then
/// the link. An existing DST is fine only if it is that same link. (The
/// refusals use bubblewrap's phrases, which its callers look for.)
fn make_symlink(b: &mut Builder, target: &Path, dst: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        anyhow::bail!("cannot make the sandbox root a symlink");
    };
    let dir = b.create_dst(parent, Kind::Dir)?;
    match sys::symlinkat(target.as_os_str(), dir.as_raw_fd(), name) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == libc::EEXIST => match sys::readlinkat(dir.as_raw_fd(), name) {
            Ok(existing) if existing == target.as_os_str() => Ok(()),
            Ok(existing) => Err(Problem::SymlinkExists {
                dst: dst.to_path_buf(),
                existing: existing.into(),
            }
            .into()),
            Err(_) => Err(Problem::NotASymlink {
                dst: dst.to_path_buf(),
            }
            .into()),
        },
        Err(e) => Err(e.into()),
    }
}
