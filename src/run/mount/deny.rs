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
//! * a symlink on the way to PATH, in an area the workload can write, is
//!   pinned (bound onto itself), so it cannot be swapped for a real
//!   directory that the deny would not cover;
//! * a missing PATH gets a mount point only where the workload could
//!   create it: in a read-only area nothing can be created, so nothing is
//!   needed, and where an ancestor is not a directory nothing can ever
//!   exist.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::builder::Builder;
use crate::run::resolve::{ProbeEnd, probe_in_root};
use crate::stubs::Identity;
use crate::sys::{self, uapi};

/// The flags of every covering mount.
const COVER: u64 = uapi::MOUNT_ATTR_RDONLY | uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;

/// Applies one `--mask` (`mask`) or `--deny-write` to `path`.
pub fn deny(b: &mut Builder, path: &Path, mask: bool) -> Result<()> {
    // A stub created by another sandbox between our look and our create
    // (EEXIST), or removed by one between our look and our lock, is seen
    // as it is on the next look.
    for _ in 0..4 {
        let probe = probe_in_root(b.root_fd(), path).context("resolve the path")?;
        pin_symlinks(b, &probe.symlinks)?;
        match probe.end {
            ProbeEnd::Exists(fd) => {
                if !hold_if_stub(b, &fd)? {
                    continue;
                }
                return cover_existing(b, &fd, mask);
            }
            ProbeEnd::Impossible => return Ok(()),
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

/// Masks `path` if it exists inside the sandbox, and only then: for
/// directories of the launcher's own that the plan happens to expose.
pub fn hide_if_present(b: &mut Builder, path: &Path) -> Result<()> {
    let probe = probe_in_root(b.root_fd(), path).context("resolve the path")?;
    if let ProbeEnd::Exists(fd) = probe.end {
        pin_symlinks(b, &probe.symlinks)?;
        cover_existing(b, &fd, true)?;
    }
    Ok(())
}

/// Pins every symlink met on the way that lies in an area the workload
/// can write, so it cannot be swapped for a real directory.
fn pin_symlinks(b: &mut Builder, symlinks: &[(OwnedFd, OsString)]) -> Result<()> {
    for (dir, name) in symlinks {
        if is_writable(dir.as_raw_fd())? {
            let link = sys::openat(dir.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            b.pin(link.as_raw_fd())
                .with_context(|| format!("pin the symlink {name:?} on the way"))?;
        }
    }
    Ok(())
}

fn cover(mask: bool) -> u64 {
    if mask {
        COVER | uapi::MOUNT_ATTR_NOEXEC
    } else {
        COVER
    }
}

/// When `fd` is a stub (recorded by a sandbox, possibly still being
/// made), takes its shared lock, so no other sandbox's exit can remove it
/// under us. Returns false when it vanished before the lock was ours (look
/// again).
fn hold_if_stub(b: &mut Builder, fd: &OwnedFd) -> Result<bool> {
    let st = sys::fstat(fd.as_raw_fd())?;
    let kind = st.st_mode & libc::S_IFMT;
    let empty = (kind == libc::S_IFREG && st.st_size == 0) || kind == libc::S_IFDIR;
    let Ok(runtime) = b.runtime() else {
        return Ok(true);
    };
    if !empty || b.is_sandbox_fs(fd.as_raw_fd())? {
        return Ok(true);
    }
    let Ok(host) = b.host_path_of(fd.as_raw_fd()) else {
        return Ok(true);
    };
    let Some(hold) = runtime.hold_existing(&host)? else {
        // No record: someone's own empty file or directory, unless a
        // remover took stub and record away while we looked.
        return Ok(b.host_object_is(&host, st.st_dev, st.st_ino));
    };
    if !hold.is_stub(st.st_dev, st.st_ino) {
        return Ok(b.host_object_is(&host, st.st_dev, st.st_ino));
    }
    // A remover may have taken the stub away just before our lock.
    if !b.host_object_is(&host, st.st_dev, st.st_ino) {
        return Ok(false);
    }
    b.keep_hold(hold);
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
/// writable bind) it is a stub: locked and recorded before and after it
/// is made, so that the last sandbox using it removes it (`stubs`).
fn create_mount_point(
    b: &mut Builder,
    parent: &OwnedFd,
    name: &OsStr,
    dir: bool,
) -> Result<Created> {
    if !is_writable(parent.as_raw_fd())? {
        return Ok(Created::NotNeeded);
    }
    let on_host = !b.is_sandbox_fs(parent.as_raw_fd())?;
    let mut hold = None;
    if on_host {
        let host = b.host_path_of(parent.as_raw_fd())?.join(name);
        let held = b.runtime()?.hold(&host)?;
        // The path is recorded before the stub exists, so a sandbox that
        // finds it meanwhile knows it is a stub (an existing record of a
        // stub that is still there is kept: our create will see it).
        if !held.has_identity() {
            held.record_intent()?;
        }
        hold = Some(held);
    }
    let made = if dir {
        sys::mkdirat(parent.as_raw_fd(), name, 0o555)
    } else {
        sys::openat(
            parent.as_raw_fd(),
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o444,
        )
        .map(drop)
    };
    match made {
        Ok(()) => {}
        Err(e) if e.errno() == libc::EEXIST => return Ok(Created::Raced),
        Err(e) if matches!(e.errno(), libc::EROFS | libc::EACCES | libc::EPERM) => {
            return Ok(Created::NotNeeded);
        }
        Err(e) => return Err(e.into()),
    }
    let point = sys::openat(parent.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    if let Some(hold) = hold {
        hold.record(Identity::of(point.as_raw_fd())?)?;
        b.keep_hold(hold);
    }
    Ok(Created::Point(point))
}

/// Whether the mount holding `fd` accepts writes.
fn is_writable(fd: RawFd) -> Result<bool> {
    Ok(sys::fstatvfs_flags(fd)? & libc::ST_RDONLY == 0)
}
