//! The mount primitives every plan step is made of: open a source in the
//! host's view, create a destination inside the sandbox root, bind one
//! object onto another with restrictive flags, mount a fresh filesystem.
//!
//! Runs in PID 1 while the tree is built, between the pivot to the base
//! tmpfs (host root at `/oldroot`, sandbox root at `/newroot`) and the final
//! pivot. Invariants: sources resolve inside the host root and destinations
//! inside the sandbox root, symlinks included (see `resolve.rs`); a bind
//! never gains a flag the source lacked in the permissive direction
//! (nosuid, nodev, read-only are only ever added).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::legacy::{self, MountEntry};
use crate::run::Features;
use crate::run::resolve::{Kind, Resolver};
use crate::sys::{self, uapi};

/// A source that cannot be opened: `--bind source /nope: No such file or
/// directory (os error 2)`, complete as it stands (SPEC §1's example).
#[derive(Debug)]
pub struct SourceError {
    what: String,
    cause: std::io::Error,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

impl std::error::Error for SourceError {}

/// The state shared by all operations while the tree is built.
pub struct Builder<'a> {
    resolver: Resolver,
    features: Features,
    /// The host root as it was before we touched anything (`/oldroot`).
    host: OwnedFd,
    /// The sandbox root (`/newroot`), an empty tmpfs to start with.
    root: OwnedFd,
    host_cwd: Option<&'a Path>,
    pub tty: Option<&'a OsStr>,
    /// Host mount table, read once, for the pre-5.12 remount walk.
    host_mounts: Option<Vec<MountEntry>>,
}

impl<'a> Builder<'a> {
    /// Opens both roots; called once `/oldroot` and `/newroot` exist.
    pub fn new(
        features: Features,
        host_cwd: Option<&'a Path>,
        tty: Option<&'a OsStr>,
    ) -> Result<Builder<'a>> {
        let open_dir = |p: &str| sys::open(OsStr::new(p), libc::O_PATH | libc::O_DIRECTORY);
        Ok(Builder {
            resolver: Resolver {
                use_openat2: features.openat2,
            },
            features,
            host: open_dir("/oldroot").context("open the host root")?,
            root: open_dir("/newroot").context("open the sandbox root")?,
            host_cwd,
            tty,
            host_mounts: None,
        })
    }

    /// Opens a source in the host's view, following symlinks. A missing
    /// source reads `--bind source /nope: No such file or directory`.
    pub fn open_source(&self, option: &str, src: &Path) -> Result<OwnedFd> {
        let absolute = match (src.is_absolute(), self.host_cwd) {
            (true, _) => src.to_path_buf(),
            (false, Some(cwd)) => cwd.join(src),
            (false, None) => PathBuf::from("/").join(src),
        };
        self.resolver
            .open_in_root(self.host.as_raw_fd(), &absolute)
            .map_err(|e| {
                anyhow::Error::new(SourceError {
                    what: format!("{option} source {}", src.display()),
                    cause: std::io::Error::from_raw_os_error(e.errno()),
                })
            })
    }

    /// A descriptor holds one mount, not "whatever is mounted here now": an
    /// operation that mounts over the root (`--ro-bind / /`) leaves the old
    /// descriptor pointing *under* it. Re-opening `/newroot` by path goes to
    /// the topmost mount, so every operation builds on all earlier ones.
    pub fn reopen_root(&mut self) -> Result<()> {
        self.root = sys::open(OsStr::new("/newroot"), libc::O_PATH | libc::O_DIRECTORY)
            .context("open the sandbox root")?;
        Ok(())
    }

    /// The topmost mount at `dst` right after something was mounted there.
    pub fn open_mounted(&mut self, dst: &Path) -> Result<OwnedFd> {
        self.reopen_root()?;
        self.create_dst(dst, Kind::Dir)
    }

    pub fn create_dst(&self, dst: &Path, kind: Kind) -> Result<OwnedFd> {
        self.resolver
            .create_in_root(self.root.as_raw_fd(), dst, kind)
            .context("create the destination")
    }

    /// Recursive bind of `src` on `dst` with nosuid and nodev (and
    /// read-only) on the bind *and every submount*, keeping every flag the
    /// source already had.
    pub fn bind(&mut self, option: &str, src: &Path, dst: &Path, read_only: bool) -> Result<()> {
        let source = self.open_source(option, src)?;
        let st = sys::fstat(source.as_raw_fd())?;
        let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = self.create_dst(dst, kind)?;
        let mut attrs = uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;
        if read_only {
            attrs |= uapi::MOUNT_ATTR_RDONLY;
        }
        self.bind_fd(source.as_raw_fd(), target.as_raw_fd(), true, attrs)
    }

    /// Binds the object held by `source` onto `target`, then adds `attrs`
    /// (`MOUNT_ATTR_*`) to the new mount and, when `recursive`, to every
    /// mount below it.
    pub fn bind_fd(
        &mut self,
        source: RawFd,
        target: RawFd,
        recursive: bool,
        attrs: u64,
    ) -> Result<()> {
        if self.features.new_mount_api {
            // The flags are set on the detached copy before it is attached,
            // so there is no moment where the bind is visible and writable;
            // mount_setattr only adds flags, so noexec/nosymfollow survive.
            let tree = sys::open_tree_clone(source, recursive)?;
            sys::mount_setattr(tree.as_raw_fd(), recursive, attrs)?;
            sys::move_mount(tree.as_raw_fd(), target)?;
            return Ok(());
        }
        let bind = legacy::Bind {
            source,
            target,
            recursive,
            attrs,
        };
        legacy::bind(&bind, || self.host_mounts())
    }

    /// The host mount table, read on first use: the host side of our
    /// namespace never changes while the tree is built (propagation is
    /// private), so one read serves every bind.
    fn host_mounts(&mut self) -> Result<&[MountEntry]> {
        if self.host_mounts.is_none() {
            let text = std::fs::read("/oldroot/proc/self/mountinfo")
                .context("read /proc/self/mountinfo")?;
            self.host_mounts = Some(legacy::parse_mountinfo(&text));
        }
        Ok(self.host_mounts.as_deref().unwrap_or_default())
    }
}

/// Mounts an empty tmpfs (mode 0755, nosuid, nodev) on the directory held
/// by `dir`: `--tmpfs`, and the base of `--dev`.
pub fn mount_tmpfs(dir: RawFd) -> Result<()> {
    mount_on_dir(dir, "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, "mode=0755")
}

/// Mounts a fresh filesystem of `fstype` on the directory held by `dir`
/// (through the cwd, so no path string is involved).
pub fn mount_on_dir(dir: RawFd, fstype: &str, flags: u64, data: &str) -> Result<()> {
    sys::fchdir(dir)?;
    sys::mount(
        Some(OsStr::new(fstype)),
        OsStr::new("."),
        Some(fstype),
        flags,
        Some(data),
    )?;
    Ok(())
}
