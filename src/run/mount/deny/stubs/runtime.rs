//! The per-user runtime directory of the stub records (see the parent
//! module): where it is, the per-sandbox record logs in it, and the
//! collection of what sandboxes that are gone left. Runs in the launcher
//! (location, collection) and in PID 1 (its sandbox's log).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::removal::{Outcome, Parents, remove_if_unused};
use super::{Record, START_BUDGET, StubLock};
use crate::log::trace;
use crate::sys;

/// A per-user runtime directory: where the records are.
pub struct RuntimeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// 16 random hex digits, for names others must not guess or take first.
fn random_suffix() -> Result<String> {
    let mut random = [0u8; 8];
    sys::random_bytes(&mut random)?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

/// A sandbox's own record log in the runtime directory (`RANDOM.stubs`):
/// one record per stub the sandbox uses, appended as it goes. PID 1 holds
/// its exclusive lock for the sandbox's life, so a collector that can take
/// it knows that sandbox is gone, however it ended.
#[derive(Debug)]
pub struct StubLog {
    fd: OwnedFd,
}

impl StubLog {
    /// Appends `record` (one write; a writer killed halfway leaves a torn
    /// last record, which no reader takes).
    pub fn append(&self, record: &Record) -> Result<()> {
        sys::write_all(self.fd.as_raw_fd(), &record.encode()).context("write a stub record")
    }

    /// The lock, to hold until the sandbox ends.
    pub fn into_lock(self) -> StubLock {
        StubLock { fd: self.fd }
    }
}

/// `$XDG_RUNTIME_DIR/srt-launcher`, when XDG_RUNTIME_DIR is set and is a
/// private directory of `uid` (no other user can put anything there).
fn xdg_place(uid: u32) -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && is_private_dir(p, uid))
        .map(|p| p.join("srt-launcher"))
}

/// The world-writable, sticky directories the runtime directory falls back
/// to (memory first, like XDG_RUNTIME_DIR), and its name there.
const SHARED_BASES: [&str; 2] = ["/dev/shm", "/tmp"];

/// The first of [`SHARED_BASES`] this machine has.
fn shared_base() -> &'static str {
    SHARED_BASES
        .into_iter()
        .find(|b| Path::new(b).is_dir())
        .unwrap_or("/tmp")
}

fn shared_name(uid: u32) -> String {
    format!("srt-launcher-{uid}")
}

/// Our private fallbacks in `base` (`srt-launcher-UID.RANDOM`), used when
/// another user squats the usual name.
fn fallbacks(base: &str, uid: u32) -> Vec<PathBuf> {
    let prefix = format!("{}.", shared_name(uid));
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().as_bytes().starts_with(prefix.as_bytes()))
        .map(|e| e.path())
        .filter(|p| is_private_dir(p, uid))
        .collect()
}

impl RuntimeDir {
    /// `$XDG_RUNTIME_DIR/srt-launcher` when XDG_RUNTIME_DIR is private,
    /// else `srt-launcher-UID` in /dev/shm (or /tmp without it). When that
    /// name is taken by anything but a private directory of ours (another
    /// user can create it first, as a directory or a symlink), a private
    /// `srt-launcher-UID.RANDOM` beside it is used instead, found again by
    /// later launchers by its owner and mode: a squatter can delay nothing.
    pub fn open() -> Result<RuntimeDir> {
        let uid = sys::ids().1;
        if let Some(place) = xdg_place(uid) {
            return Self::open_at(&place, uid);
        }
        let base = shared_base();
        let usual = Path::new(base).join(shared_name(uid));
        let squatted = match Self::open_at(&usual, uid) {
            Ok(dir) => return Ok(dir),
            Err(e) => e,
        };
        trace!("runtime directory: {squatted:#}; using a private one");
        if let Some(dir) = fallbacks(base, uid)
            .iter()
            .find_map(|p| Self::open_at(p, uid).ok())
        {
            return Ok(dir);
        }
        for _ in 0..8 {
            let suffix = random_suffix()?;
            let path = Path::new(base).join(format!("{}.{suffix}", shared_name(uid)));
            if let Ok(dir) = Self::open_at(&path, uid) {
                return Ok(dir);
            }
        }
        Err(squatted)
    }

    /// Every runtime directory of `uid` that exists now, wherever a
    /// launcher may have put one: the ones to hide from sandboxes, and to
    /// collect leftovers from.
    pub fn all_of(uid: u32) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = xdg_place(uid)
            .into_iter()
            .filter(|p| is_private_dir(p, uid))
            .collect();
        let base = shared_base();
        let usual = Path::new(base).join(shared_name(uid));
        if is_private_dir(&usual, uid) {
            all.push(usual);
        }
        all.extend(fallbacks(base, uid));
        all
    }

    /// Opens (creating) `path` as the runtime directory of `uid`: refused
    /// unless it is a real directory of `uid` that no one else can enter.
    pub fn open_at(path: &Path, uid: u32) -> Result<RuntimeDir> {
        let what = || format!("runtime directory {}", path.display());
        match sys::mkdirat(libc::AT_FDCWD, path.as_os_str(), 0o700) {
            Ok(()) => {}
            Err(e) if e.errno() == libc::EEXIST => {}
            Err(e) => return Err(e).with_context(what),
        }
        let fd = sys::open(
            path.as_os_str(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
        .with_context(what)?;
        let st = sys::fstat(fd.as_raw_fd())?;
        if st.st_uid != uid || st.st_mode & 0o077 != 0 {
            bail!(
                "{}: not private to uid {uid} (owner {}, mode {:o})",
                what(),
                st.st_uid,
                st.st_mode & 0o7777
            );
        }
        Ok(RuntimeDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new record log for this sandbox, locked exclusively.
    pub fn new_log(&self) -> Result<StubLog> {
        let flags =
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC;
        let name = OsString::from(format!("{}.stubs", random_suffix()?));
        let fd = sys::openat(self.fd.as_raw_fd(), &name, flags, 0o600)
            .context("create the stub record log")?;
        // New and unknown to anyone: the lock is free.
        sys::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)?;
        Ok(StubLog { fd })
    }

    /// What killed launchers left, within [`START_BUDGET`]: in this
    /// directory first, then in any other this user has (another
    /// XDG_RUNTIME_DIR, a fallback from a time its usual name was
    /// squatted).
    pub fn collect_leftovers(&self) {
        let deadline = Instant::now() + START_BUDGET;
        self.collect_unused(Some(START_BUDGET));
        let uid = sys::ids().1;
        for path in RuntimeDir::all_of(uid) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if path != self.path()
                && let Ok(other) = RuntimeDir::open_at(&path, uid)
            {
                other.collect_unused(Some(left));
            }
        }
    }

    /// Removes the stubs no sandbox uses any more. A failure only leaves
    /// stubs for the next launcher, so it is traced, not fatal.
    pub fn collect_unused(&self, budget: Option<Duration>) {
        let start = Instant::now();
        match self.collect(budget) {
            Ok(n) => trace!(
                "stubs: {n} record(s) collected in {} ({} us)",
                self.path().display(),
                start.elapsed().as_micros()
            ),
            Err(e) => trace!("stubs: collection failed: {e:#}"),
        }
    }

    /// Removes every recorded stub no sandbox uses any more, from the logs
    /// of sandboxes that are gone (a live one's log is skipped, never
    /// waited for), within `budget` if one is given (a launcher's own
    /// stubs, after its sandbox, are all looked at). A stub another sandbox
    /// still uses keeps its record; a log with none left is removed.
    /// Returns how many records it dropped.
    pub fn collect(&self, budget: Option<Duration>) -> Result<usize> {
        let deadline = budget.map(|b| Instant::now() + b);
        let mut dropped = 0;
        let mut parents = Parents::default();
        let entries = std::fs::read_dir(&self.path).context("list the runtime directory")?;
        for entry in entries.flatten() {
            if deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
            let name = entry.file_name();
            if !name.as_bytes().ends_with(b".stubs") {
                continue;
            }
            let Some(log) = self.gone_sandbox_log(&name)? else {
                continue;
            };
            let records = Record::decode_all(&sys::read_to_end(log.as_raw_fd())?);
            let kept: Vec<&Record> = records
                .iter()
                .filter(|r| remove_if_unused(r, &mut parents) == Outcome::InUse)
                .collect();
            dropped += records.len() - kept.len();
            if kept.is_empty() {
                // The log goes while its lock is still ours.
                let _ = sys::unlinkat(self.fd.as_raw_fd(), &name, 0);
            } else if kept.len() < records.len() {
                let text: Vec<u8> = kept.iter().flat_map(|r| r.encode()).collect();
                sys::pwrite_all(log.as_raw_fd(), &text, 0, true).context("rewrite a stub log")?;
            }
        }
        Ok(dropped)
    }

    /// The log `name`, open and locked exclusively, if its sandbox is gone
    /// (its lock is free) and it is still the file of that name.
    fn gone_sandbox_log(&self, name: &OsStr) -> Result<Option<OwnedFd>> {
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = match sys::openat(self.fd.as_raw_fd(), name, flags, 0) {
            Ok(fd) => fd,
            Err(e) if e.errno() == libc::ENOENT => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !sys::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)? {
            return Ok(None);
        }
        // Another collector may have removed it between our open and lock.
        let held = sys::fstat(fd.as_raw_fd())?;
        match sys::fstatat(self.fd.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => Ok(Some(fd)),
            _ => Ok(None),
        }
    }
}

/// Whether `path` is a directory of `uid` with no access for others (not
/// a symlink to one).
fn is_private_dir(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0
    })
}
