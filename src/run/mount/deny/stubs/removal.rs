//! Removing a recorded stub, in the launcher, in the host's view: only
//! under its exclusive lock, only if it is still exactly what was
//! recorded, and never through a symlink (see [`remove_if_unused`]).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::{Record, is_marked};
use crate::log::trace;
use crate::sys::{self, uapi};

/// What became of a recorded stub.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A sandbox still uses it: the record stays.
    InUse,
    /// Removed, or no longer the launcher's to remove: the record goes.
    Gone,
}

/// The directory `path` names, reached without following any symlink
/// (`openat2` with RESOLVE_NO_SYMLINKS, or one O_NOFOLLOW step per
/// component before Linux 5.6).
fn open_dir_no_symlinks(path: &Path) -> sys::SysResult<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    match sys::openat2(
        libc::AT_FDCWD,
        path.as_os_str(),
        flags,
        uapi::RESOLVE_NO_SYMLINKS,
    ) {
        Err(e) if e.errno() == libc::ENOSYS => {}
        other => return other,
    }
    let mut dir = sys::open(OsStr::new("/"), flags)?;
    for part in path.components().skip(1) {
        dir = sys::openat(
            dir.as_raw_fd(),
            part.as_os_str(),
            flags | libc::O_NOFOLLOW,
            0,
        )?;
    }
    Ok(dir)
}

/// The parent directories opened during one collection, by path: stubs
/// of one project share them. Each was opened without following a
/// symlink; what a record needs is then checked by identity.
#[derive(Default)]
pub(super) struct Parents(std::collections::HashMap<PathBuf, Option<OpenParent>>);

/// A parent directory's descriptor and its (dev, ino).
type OpenParent = (OwnedFd, (u64, u64));

impl Parents {
    fn open(&mut self, path: &Path) -> Option<(RawFd, (u64, u64))> {
        let entry = self.0.entry(path.to_path_buf()).or_insert_with(|| {
            let fd = open_dir_no_symlinks(path).ok()?;
            let st = sys::fstat(fd.as_raw_fd()).ok()?;
            Some((fd, (st.st_dev, st.st_ino)))
        });
        entry.as_ref().map(|(fd, id)| (fd.as_raw_fd(), *id))
    }
}

/// Removes the stub `record` names if no sandbox uses it (its exclusive
/// lock is free) and it is still exactly what was recorded: same parent,
/// same inode, marked, unchanged since (ctime), empty.
///
/// Every step acts on the parent's descriptor, opened without following
/// a symlink and checked by identity: the stub is looked at, opened
/// (without following a link, and checked again once open, so what is
/// locked and judged is the very inode recorded), locked and unlinked
/// relative to it. What remains between the last check and `unlinkat` is
/// a rename inside that very parent, which only a process that may write
/// it can do, and which moves nothing there that it could not have
/// removed itself.
pub(super) fn remove_if_unused(record: &Record, parents: &mut Parents) -> Outcome {
    let (Some(parent_path), Some(name)) = (record.host_path.parent(), record.host_path.file_name())
    else {
        return Outcome::Gone;
    };
    let Some((parent, parent_id)) = parents.open(parent_path) else {
        return Outcome::Gone;
    };
    if parent_id != record.parent {
        return Outcome::Gone;
    }
    let is_ours = |st: &libc::stat| {
        record.stub.matches(st) && is_marked(st) && (record.stub.dir || st.st_size == 0)
    };
    // Looked at before it is opened: only the recorded file or directory
    // is ever opened (not a FIFO or device put there since).
    match sys::fstatat(parent, name, libc::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if is_ours(&st) => {}
        _ => {
            trace!(
                "stub {} changed since; left alone",
                record.host_path.display()
            );
            return Outcome::Gone;
        }
    }
    let readable =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let Ok(held) = sys::openat(parent, name, readable, 0) else {
        return Outcome::Gone;
    };
    match sys::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) {
        Ok(true) => {}
        Ok(false) => return Outcome::InUse,
        Err(_) => return Outcome::Gone,
    }
    // Under the exclusive lock no sandbox uses it, and none can start to
    // before it is gone (a finder takes the shared lock, then sees the
    // link count drop to 0 and looks again).
    let still_linked = sys::fstatat(parent, name, libc::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|now| (now.st_dev, now.st_ino) == (record.stub.dev, record.stub.ino));
    match sys::fstat(held.as_raw_fd()) {
        Ok(st) if still_linked && is_ours(&st) => {}
        _ => return Outcome::Gone,
    }
    // rmdir refuses a directory that is not empty.
    let flags = if record.stub.dir {
        libc::AT_REMOVEDIR
    } else {
        0
    };
    if let Err(e) = sys::unlinkat(parent, name, flags) {
        trace!("stub {} not removed: {e}", record.host_path.display());
    }
    Outcome::Gone
}
