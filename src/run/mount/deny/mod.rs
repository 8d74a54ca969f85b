//! `--mask PATH` and `--deny-write PATH` (SPEC §2.7): PATH can be neither
//! created nor replaced inside, whether it exists or not; with `--mask`,
//! nothing of it can be read either.
//!
//! Runs in PID 1 like every plan step, on the tree the earlier steps built.
//! Invariants:
//! * every object covered becomes a mount point, which the workload can
//!   neither unlink nor rename over (EBUSY), and the covering mount is
//!   read-only, nosuid, nodev (and noexec for masks);
//! * the mount sources for masks are PID 1's own empty file and directory
//!   in its private base tmpfs: nothing is created on the host for them;
//! * every directory on the way to PATH, every symlink followed, and a
//!   non-directory that makes PATH impossible, where the workload could
//!   write their parent, are pinned (bound onto themselves): none can be
//!   renamed, removed or replaced, so PATH cannot be re-created under its
//!   name elsewhere or redirected (see [`pin_next`]);
//! * a missing PATH gets a mount point only where the workload could
//!   create it: in a read-only area nothing can be created, so nothing is
//!   needed, and where an ancestor is not a directory (pinned) nothing
//!   can come to exist.

pub mod stubs;

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::builder::Builder;
use super::resolve::{Probe, ProbeEnd, probe_in_root};
use crate::sys::{self, uapi};
use stubs::{Identity, Record};

/// The flags of every covering mount.
const COVER: u64 = uapi::MOUNT_ATTR_RDONLY | uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;

/// How many times one deny path is looked at before giving up: one look
/// per object pinned (a path's directories, symlinks and the non-directory
/// that makes it impossible), plus a few for stubs other sandboxes race.
const MAX_LOOKS: usize = 256;

/// Applies one `--mask` (`mask`) or `--deny-write` to `path`.
pub fn deny(b: &mut Builder, path: &Path, mask: bool) -> Result<()> {
    for _ in 0..MAX_LOOKS {
        let probe = probe_in_root(b.root_fd(), path).context("resolve the path")?;
        // One pin per look: a pin is a new mount over the object, so every
        // descriptor of this probe below it now points under that mount,
        // and only a fresh walk reaches what the workload will see.
        if pin_next(b, &probe)? {
            b.reopen_root()?;
            continue;
        }
        match probe.end {
            ProbeEnd::Exists(fd) => {
                // A stub created by another sandbox between our look and
                // our create (EEXIST), or removed by one between our look
                // and our lock, is seen as it is on the next look.
                if !share_if_stub(b, &fd)? {
                    continue;
                }
                return cover_existing(b, &fd, mask);
            }
            // Its non-directory ancestor is pinned: the path cannot come
            // to exist while the sandbox runs.
            ProbeEnd::Impossible(_) => return Ok(()),
            ProbeEnd::Missing { parent, name, last } => {
                let dir = !last;
                match create_mount_point(b, &parent, &name, dir)? {
                    Created::Point(point) => {
                        let source = b.empty_source(dir)?;
                        return b.bind_fd(source, point.as_raw_fd(), false, cover(mask));
                    }
                    Created::NotNeeded => return Ok(()),
                    Created::Raced => continue,
                }
            }
        }
    }
    bail!("the path keeps changing while it is being covered")
}

/// Masks every place a bind shows one of the launcher's private
/// directories (the stub records): a workload that could write a record
/// would name a host file for a later launcher to remove. Runs after
/// every step, in both front-ends, whatever the plan.
pub fn hide_private_dirs(b: &mut Builder) -> Result<()> {
    for (spot, dev, ino) in b.private_exposures() {
        b.reopen_root()?;
        hide_if_present(b, &spot, dev, ino).with_context(|| format!("hide {}", spot.display()))?;
    }
    Ok(())
}

/// Masks `path` if what it names inside the sandbox is on device `dev`
/// (and is inode `ino`, when given). Nothing on the way is pinned: the
/// cover sits on that object's own entry and moves with it if a directory
/// above it is renamed, and whatever is created at the old name is not it.
fn hide_if_present(b: &mut Builder, path: &Path, dev: u64, ino: Option<u64>) -> Result<()> {
    let Ok(fd) = b.open_existing(path) else {
        return Ok(());
    };
    let st = sys::fstat(fd.as_raw_fd())?;
    if st.st_dev != dev || ino.is_some_and(|ino| ino != st.st_ino) {
        return Ok(());
    }
    cover_existing(b, &fd, true)
}

/// Pins the first object of `probe` that the workload could rename,
/// remove or replace and that is not pinned yet; returns whether it did.
///
/// Invariant (SPEC §2.7): once a deny path is applied, every directory
/// its resolution entered, every symlink it followed and the
/// non-directory that makes it impossible is a mount point wherever the
/// workload could write its parent, so the path can neither be re-created
/// elsewhere under its name (`mv .git .git-old; mkdir -p .git/hooks`),
/// nor redirected (a symlink swapped for a directory), nor made possible
/// (`rm .git` where `.git` is a worktree's file). Their other contents stay
/// as writable as before. Objects on the sandbox's own filesystems are
/// left alone: nothing made there reaches the host.
fn pin_next(b: &mut Builder, probe: &Probe) -> Result<bool> {
    for dir in &probe.dirs {
        if needs_pin(b, dir.as_raw_fd(), dir.as_raw_fd())? {
            b.pin(dir.as_raw_fd())
                .context("pin a directory on the way")?;
            return Ok(true);
        }
    }
    for (dir, name) in &probe.symlinks {
        let link = sys::openat(dir.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        if needs_pin(b, link.as_raw_fd(), dir.as_raw_fd())? {
            b.pin(link.as_raw_fd())
                .with_context(|| format!("pin the symlink {name:?} on the way"))?;
            return Ok(true);
        }
    }
    if let ProbeEnd::Impossible(object) = &probe.end
        && needs_pin(b, object.as_raw_fd(), object.as_raw_fd())?
    {
        b.pin(object.as_raw_fd())
            .context("pin the non-directory on the way")?;
        return Ok(true);
    }
    Ok(false)
}

/// Whether `object` (whose mount is `mount`'s) is on the host, writable
/// there, and not pinned yet.
fn needs_pin(b: &Builder, object: RawFd, mount: RawFd) -> Result<bool> {
    let st = sys::fstat(object)?;
    Ok(!b.is_pinned(&st) && !b.is_sandbox_dev(st.st_dev) && is_writable(mount)?)
}

fn cover(mask: bool) -> u64 {
    if mask {
        COVER | uapi::MOUNT_ATTR_NOEXEC
    } else {
        COVER
    }
}

/// Any empty file or directory on the host may be a stub that another
/// sandbox (of any user, with any runtime directory) made, maybe not yet
/// marked: its shared lock is taken, so that no sandbox's exit removes it
/// while this one relies on it (SPEC §2.7). A marked one is recorded in
/// our runtime directory too, so that whichever launcher is its last user
/// removes it. Returns false when it was removed before the lock was ours
/// (look again).
fn share_if_stub(b: &mut Builder, fd: &OwnedFd) -> Result<bool> {
    let st = sys::fstat(fd.as_raw_fd())?;
    if !stubs::may_be_stub(&st) || b.is_sandbox_fs(fd.as_raw_fd())? {
        return Ok(true);
    }
    // One we may not read was made by no launcher (stubs are 0444/0555).
    let readable = match b.reopen_readable(fd.as_raw_fd()) {
        Ok(readable) => readable,
        Err(e)
            if e.downcast_ref::<sys::SysError>()
                .is_some_and(|e| e.errno() == libc::EACCES) =>
        {
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    let lock = stubs::lock_shared(readable)?;
    let now = lock.stat()?;
    if now.st_nlink == 0 || (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Ok(false);
    }
    if stubs::is_marked(&now)
        && stubs::may_be_stub(&now)
        && let Ok(host) = b.host_path_of(fd.as_raw_fd())
        && let Some(parent) = b.host_parent_of(&host)
    {
        b.record_stub(&Record {
            host_path: host,
            parent,
            stub: Identity::of_stat(&now),
        })?;
    }
    b.keep_lock(lock);
    Ok(true)
}

/// An existing file or directory: under `--mask` an empty one of the same
/// kind takes its place; under `--deny-write` it is bound read-only onto
/// itself (recursively for a directory, so no submount stays writable).
fn cover_existing(b: &mut Builder, target: &OwnedFd, mask: bool) -> Result<()> {
    let is_dir = sys::fstat(target.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if mask {
        let source = b.empty_source(is_dir)?;
        b.bind_fd(source, target.as_raw_fd(), false, cover(true))
    } else {
        b.bind_fd(target.as_raw_fd(), target.as_raw_fd(), is_dir, cover(false))
    }
}

enum Created {
    /// The new mount point.
    Point(OwnedFd),
    /// The workload could not create it either.
    NotNeeded,
    /// Someone else created it meanwhile.
    Raced,
}

/// Creates the first missing component as an empty directory or file to
/// mount on, where the workload could create it. On the host (inside a
/// writable bind) it is a stub: its shared lock is taken before it is
/// marked, and it is marked before it is recorded, so no remover can take
/// it while this sandbox lives, and a record always names a marked stub.
fn create_mount_point(
    b: &mut Builder,
    parent: &OwnedFd,
    name: &OsStr,
    dir: bool,
) -> Result<Created> {
    if !is_writable(parent.as_raw_fd())? {
        return Ok(Created::NotNeeded);
    }
    let made = if dir {
        sys::mkdirat(parent.as_raw_fd(), name, 0o555).and_then(|()| {
            sys::openat(
                parent.as_raw_fd(),
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )
        })
    } else {
        sys::openat(
            parent.as_raw_fd(),
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o444,
        )
    };
    let point = match made {
        Ok(fd) => fd,
        // Made, or made and removed, by another sandbox meanwhile.
        Err(e) if matches!(e.errno(), libc::EEXIST | libc::ENOENT) => return Ok(Created::Raced),
        Err(e) if matches!(e.errno(), libc::EROFS | libc::EACCES | libc::EPERM) => {
            return Ok(Created::NotNeeded);
        }
        Err(e) => return Err(e.into()),
    };
    if b.is_sandbox_fs(parent.as_raw_fd())? {
        return Ok(Created::Point(point));
    }
    let host = b.host_path_of(parent.as_raw_fd())?.join(name);
    let parent_st = sys::fstat(parent.as_raw_fd())?;
    let lock = stubs::lock_shared(point.try_clone()?)?;
    let stub = stubs::mark_new_stub(point.as_raw_fd())?;
    b.record_stub(&Record {
        host_path: host,
        parent: (parent_st.st_dev, parent_st.st_ino),
        stub,
    })?;
    b.keep_lock(lock);
    Ok(Created::Point(point))
}

/// Whether the mount holding `fd` accepts writes.
fn is_writable(fd: RawFd) -> Result<bool> {
    Ok(sys::fstatvfs_flags(fd)? & libc::ST_RDONLY == 0)
}
