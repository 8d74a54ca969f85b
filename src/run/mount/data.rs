//! Files whose content the caller passes through a descriptor (bwrap's
//! `--file FD DEST`, `--bind-data FD DEST` and `--ro-bind-data FD DEST`).
//!
//! Runs in PID 1 while the tree is built. Invariants: the data is read
//! from the descriptor to its end and the descriptor is closed (the
//! workload never inherits it: it is close-on-exec there); a `--file` is a
//! new file at DEST with exactly the given mode (PID 1 builds with umask
//! 0); a data bind's backing file lives in PID 1's base tmpfs, which is
//! detached before the workload runs, so nothing of it exists on the host
//! and the workload reaches it only through DEST.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::builder::Builder;
use super::resolve::{Kind, Modes};
use crate::failure::Problem;
use crate::sys::{self, uapi};

/// The backing file of a data bind, in the base tmpfs (PID 1's root while
/// the tree is built); unlinked once bound, so one name serves every bind.
const BIND_DATA: &str = "/bind-data";

/// `--file FD DEST`: DEST (created, or truncated if it is a file already)
/// holds FD's data, with `mode`.
pub fn write_file(b: &mut Builder, fd: i32, dst: &Path, mode: u32) -> Result<()> {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        bail!("cannot write the sandbox root as a file");
    };
    // The parents only: every directory on the way gets the parents' mode.
    let parents = Modes::with_perms(mode).parents;
    let modes = Modes {
        parents,
        node: parents,
    };
    let dir = b.create_dst_with(parent, Kind::Dir, modes)?;
    let out = sys::openat(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_TRUNC
            | libc::O_NOFOLLOW
            | libc::O_NOCTTY
            | libc::O_CLOEXEC,
        mode,
    )
    .context("create the file")?;
    copy_from(fd, out.as_raw_fd(), dst)
}

/// `--bind-data FD DEST` (`read_only`: `--ro-bind-data`): a file of PID
/// 1's holding FD's data, with `mode`, bound on DEST.
pub fn bind_data(b: &mut Builder, fd: i32, dst: &Path, mode: u32, read_only: bool) -> Result<()> {
    let path = OsStr::new(BIND_DATA);
    let backing = sys::openat(
        libc::AT_FDCWD,
        path,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        mode,
    )
    .context("create the data file")?;
    copy_from(fd, backing.as_raw_fd(), dst)?;
    let target = b.mount_point(dst, Kind::File)?;
    let mut attrs = uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;
    if read_only {
        attrs |= uapi::MOUNT_ATTR_RDONLY;
    }
    let bound = b.bind_fd(backing.as_raw_fd(), target.as_raw_fd(), false, attrs);
    sys::unlinkat(libc::AT_FDCWD, path, 0).context("remove the data file's name")?;
    bound
}

/// Copies everything `from` holds into `to`, then closes `from`.
fn copy_from(from: i32, to: i32, dst: &Path) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sys::read(from, &mut buf).with_context(|| Problem::ReadData {
            dst: dst.to_path_buf(),
        })?;
        if n == 0 {
            break;
        }
        sys::write_all(to, &buf[..n]).with_context(|| Problem::WriteData {
            dst: dst.to_path_buf(),
        })?;
    }
    sys::close(from).with_context(|| format!("close the data descriptor {from}"))?;
    Ok(())
}
