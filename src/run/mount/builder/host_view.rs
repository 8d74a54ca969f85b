//! The builder's window on the host: where a sandbox path comes from on
//! the host, sources opened in the host's view (and reopened there when a
//! magic link led into another namespace), and the host's mount table.
//! Part of [`Builder`]; runs in PID 1 while the tree is built.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::super::legacy::{self, MountEntry};
use super::Builder;
use crate::failure::{Problem, SourceFailure};
use crate::sys::{self, uapi};

impl Builder<'_> {
    /// The (dev, ino) of the host directory that holds `host` (a host
    /// path as [`Builder::host_path_of`] gives it: no symlinks).
    pub fn host_parent_of(&self, host: &Path) -> Option<(u64, u64)> {
        let parent = host.parent()?;
        let rel = parent.strip_prefix("/").unwrap_or(parent);
        let name = if rel.as_os_str().is_empty() {
            OsStr::new(".")
        } else {
            rel.as_os_str()
        };
        let st = sys::fstatat(self.host.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW).ok()?;
        Some((st.st_dev, st.st_ino))
    }

    /// A readable descriptor of the very object `fd` (O_PATH) holds,
    /// through its /proc link (never its name again): a FIFO does not
    /// block, a terminal is not made ours.
    pub fn reopen_readable(&self, fd: RawFd) -> Result<OwnedFd> {
        let link = format!("/oldroot/proc/self/fd/{fd}");
        Ok(sys::open(
            OsStr::new(&link),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )?)
    }

    /// Whether `host` (a host path) is, right now, the object (dev, ino).
    pub fn host_object_is(&self, host: &Path, dev: u64, ino: u64) -> bool {
        let rel = host.strip_prefix("/").unwrap_or(host);
        sys::fstatat(
            self.host.as_raw_fd(),
            rel.as_os_str(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| (st.st_dev, st.st_ino) == (dev, ino))
    }

    /// The host path of the object `fd` holds in the sandbox tree: the
    /// latest bind above it, its source, and the rest of the way; checked
    /// against the object itself (device and inode), so a wrong answer is
    /// an error, never another file.
    pub fn host_path_of(&self, fd: RawFd) -> Result<PathBuf> {
        let sandbox = strip(&fd_path(fd)?, "/newroot")?;
        let (dst, src) = self
            .binds
            .iter()
            .rev()
            .find(|(dst, _)| sandbox.starts_with(dst))
            .with_context(|| format!("{} is in no bind", sandbox.display()))?;
        let rest = sandbox.strip_prefix(dst).expect("checked by starts_with");
        let host = if rest.as_os_str().is_empty() {
            src.clone()
        } else {
            src.join(rest)
        };
        let here = sys::fstat(fd)?;
        if !self.host_object_is(&host, here.st_dev, here.st_ino) {
            anyhow::bail!(
                "cannot tell where {} is on the host ({} is another file)",
                sandbox.display(),
                host.display()
            );
        }
        Ok(host)
    }

    /// Opens a source in the host's view, following symlinks. A missing
    /// source reads `--bind source /nope: No such file or directory`.
    pub fn open_source(&self, option: &str, src: &Path) -> Result<OwnedFd> {
        let absolute = match (src.is_absolute(), self.host_cwd) {
            (true, _) => src.to_path_buf(),
            (false, Some(cwd)) => cwd.join(src),
            (false, None) => PathBuf::from("/").join(src),
        };
        let (source, through_magic_link) = self
            .resolver
            .open_source_in_root(self.host.as_raw_fd(), &absolute)
            .map_err(|e| {
                anyhow::Error::new(SourceFailure {
                    option: option.to_string(),
                    path: src.to_path_buf(),
                    errno: e.errno(),
                })
            })?;
        if through_magic_link && !self.is_in_our_view(source.as_raw_fd())? {
            return self.reopen_in_host_view(option, source.as_raw_fd());
        }
        Ok(source)
    }

    /// Whether the kernel will bind what `fd` holds from here: a mount of
    /// our namespace's copy of the host tree (its path starts at
    /// `/oldroot`), or a namespace file (bindable from anywhere). What
    /// `/proc/self/exe` and the caller's descriptors lead to lies on the
    /// mounts of the namespace they were opened in.
    pub(super) fn is_in_our_view(&self, fd: RawFd) -> Result<bool> {
        if sys::fstatfs_type(fd)? == uapi::NSFS_MAGIC {
            return Ok(true);
        }
        Ok(fd_path(fd)?.starts_with("/oldroot"))
    }

    /// The object the caller's descriptor `fd` holds, opened again through
    /// our namespace's copy of the host tree (the kernel binds only mounts
    /// of our own namespace): by the path the descriptor shows, then
    /// checked to be the very same object, so a rename or replacement in
    /// between is refused rather than bound.
    pub fn reopen_in_host_view(&self, option: &str, fd: RawFd) -> Result<OwnedFd> {
        let held = sys::fstat(fd).context(Problem::StatFd { fd })?;
        let path = fd_path(fd)?;
        let source = self.open_source(option, &path)?;
        let found = sys::fstat(source.as_raw_fd())?;
        if (found.st_dev, found.st_ino) != (held.st_dev, held.st_ino) {
            return Err(Problem::BindRace { path, fd }.into());
        }
        Ok(source)
    }

    /// The host mount table, read on first use: the host side of our
    /// namespace never changes while the tree is built (propagation is
    /// private), so one read serves every bind.
    pub(super) fn host_mounts(&mut self) -> Result<&[MountEntry]> {
        if self.host_mounts.is_none() {
            let text = std::fs::read("/oldroot/proc/self/mountinfo")
                .context("read /proc/self/mountinfo")?;
            self.host_mounts = Some(legacy::parse_mountinfo(&text));
        }
        Ok(self.host_mounts.as_deref().unwrap_or_default())
    }
}

/// The path the kernel gives for `fd`, in PID 1's view while it builds
/// (through the host's procfs, still reachable at /oldroot/proc).
pub(super) fn fd_path(fd: RawFd) -> Result<PathBuf> {
    let link = format!("/oldroot/proc/self/fd/{fd}");
    Ok(PathBuf::from(sys::readlinkat(
        libc::AT_FDCWD,
        OsStr::new(&link),
    )?))
}

/// `path` below `prefix`, as an absolute path of its own (`/newroot/a` ->
/// `/a`).
pub(super) fn strip(path: &Path, prefix: &str) -> Result<PathBuf> {
    let rest = path
        .strip_prefix(prefix)
        .with_context(|| format!("{} is not under {prefix}", path.display()))?;
    Ok(Path::new("/").join(rest))
}
