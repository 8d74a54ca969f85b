//! The builder's bookkeeping for deny paths and the launcher's private
//! directories: the stubs this sandbox uses (their locks and its record
//! log), the objects pinned by the current run of deny paths, and every
//! place a bind exposes a private directory. Part of [`Builder`]; runs in
//! PID 1 while the tree is built.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::super::deny::stubs::{Record, RuntimeDir, StubLock, StubLog};
use super::super::legacy;
use super::host_view::{fd_path, strip};
use super::{Builder, PrivateDir};
use crate::sys;

impl<'a> Builder<'a> {
    /// Notes the launcher's private directories (host paths), to be hidden
    /// wherever a bind shows them; one that cannot be opened is not there
    /// to be shown.
    pub fn watch_private(&mut self, paths: &[PathBuf]) -> Result<()> {
        for path in paths {
            let Ok(fd) = self.resolver.open_in_root(self.host.as_raw_fd(), path) else {
                continue;
            };
            let st = sys::fstat(fd.as_raw_fd())?;
            self.private.push(PrivateDir {
                host_path: strip(&fd_path(fd.as_raw_fd())?, "/oldroot")?,
                dev: st.st_dev,
                ino: st.st_ino,
            });
        }
        Ok(())
    }

    /// The stub locks taken while building, to hold until the sandbox ends.
    pub fn into_holds(self) -> Vec<StubLock> {
        let mut holds = self.holds;
        holds.extend(self.log.map(StubLog::into_lock));
        holds
    }

    /// Records a stub this sandbox relies on, in its own log.
    pub fn record_stub(&mut self, record: &Record) -> Result<()> {
        if self.log.is_none() {
            self.log = Some(self.runtime()?.new_log()?);
        }
        self.log.as_ref().expect("made above").append(record)
    }

    /// Where deny-path stubs are recorded; an error when there is none
    /// (only plans with deny paths open it).
    pub fn runtime(&self) -> Result<&'a RuntimeDir> {
        self.runtime
            .context("no runtime directory for deny-path stubs")
    }

    pub fn keep_lock(&mut self, lock: StubLock) {
        self.holds.push(lock);
    }

    /// Binds the object held by `fd` (a directory, a symlink or a file)
    /// onto itself, recursively, so that it becomes a mount point: the
    /// kernel then refuses to rename, remove or replace it (EBUSY), while
    /// it still resolves as before and its contents keep the flags they
    /// had (a bind copies its mount's flags, and no remount follows: the
    /// pre-5.12 remount would go through the path and follow a link).
    /// Recursive, so whatever is already mounted below it stays in place.
    /// Each object is pinned once while consecutive deny paths are applied
    /// (see [`Builder::forget_pins`]): ancestors they share cost one bind.
    pub fn pin(&mut self, fd: RawFd) -> Result<()> {
        let st = sys::fstat(fd)?;
        if !self.pinned.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
        if self.features.new_mount_api {
            let tree = sys::open_tree_clone(fd, true)?;
            sys::move_mount(tree.as_raw_fd(), fd)?;
            return Ok(());
        }
        legacy::bind_onto_itself(fd)
    }

    /// Whether the object `st` describes was pinned by an earlier deny
    /// path of the current run of them.
    pub fn is_pinned(&self, st: &libc::stat) -> bool {
        self.pinned.contains(&(st.st_dev, st.st_ino))
    }

    /// A step other than a deny path may mount over pinned objects (a
    /// later `--bind` of their parent shows them unpinned again), so what
    /// was pinned is forgotten and the next deny path pins afresh.
    pub fn forget_pins(&mut self) {
        self.pinned.clear();
    }

    /// Every place in the sandbox where a bind shows one of the private
    /// directories (see [`Builder::new`]) or something inside one, with
    /// what must be found there: that directory (dev, ino), or any object
    /// of its filesystem (a bind of something inside it). Checked against
    /// the object found, so a path another step covered since is left
    /// alone.
    pub fn private_exposures(&self) -> Vec<(PathBuf, u64, Option<u64>)> {
        let mut spots = Vec::new();
        for private in &self.private {
            for (dst, src) in &self.binds {
                if let Ok(rest) = private.host_path.strip_prefix(src) {
                    spots.push((dst.join(rest), private.dev, Some(private.ino)));
                } else if src.starts_with(&private.host_path) {
                    spots.push((dst.clone(), private.dev, None));
                }
            }
        }
        spots.sort();
        spots.dedup();
        spots
    }
}
