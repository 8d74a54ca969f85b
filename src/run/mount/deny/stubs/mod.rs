//! Deny-path mount-point stubs on the host (SPEC §2.7): the empty files
//! and directories a missing deny path inside a writable bind needs, and
//! their removal once no sandbox uses them.
//!
//! Runs in PID 1 while it builds the tree (a stub is made, locked and
//! recorded) and in the launcher, in the host's view, before and after the
//! sandbox (stubs no sandbox uses are removed). Three pieces of state:
//!
//! * **the use count is a lock on the stub's own inode.** Every sandbox
//!   that relies on a stub (its maker, and any that finds it) holds a
//!   shared `flock` on it for as long as it runs (PID 1 holds it, so a
//!   SIGKILLed sandbox releases it with its last process). Whoever takes it
//!   exclusively without waiting is the last user. The count is the same
//!   whichever runtime directory, or user, each launcher has.
//! * **the mark is on the stub.** A stub's modification time is set to
//!   [`MARK`] once it is made. Setting a time needs a writable mount and
//!   the file's ownership, so a workload cannot put the mark on a file it
//!   can only read: a forged record naming such a file never matches.
//! * **the record is in the runtime directory**, in a log of the sandbox
//!   that uses the stub (`RANDOM.stubs`, locked by its PID 1 while it
//!   runs): the host path, the identity of its parent directory, and the
//!   stub's device, inode, kind and ctime. It tells a later launcher where
//!   to look, nothing more. Every sandbox using a marked stub records it,
//!   so whichever is its last user removes it. The
//!   runtime directory is private (0700, ours), is hidden in every sandbox
//!   at every path a bind shows it, and a squatter of its usual name only
//!   moves it to a private fallback.
//!
//! Removal (invariants): a stub is removed only under its exclusive lock,
//! only if it is still the recorded inode, marked, unchanged (ctime),
//! empty, and linked under the recorded parent; the parent is reached
//! without following any symlink and the stub is unlinked relative to it,
//! so no swap of a directory above it can redirect the removal. User data
//! (a stub written into, or replaced) is never removed: only its record
//! goes.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys;

mod removal;
mod runtime;
#[cfg(test)]
mod tests;

pub use runtime::{RuntimeDir, StubLog};

/// How long a launcher spends, at its start, collecting what killed
/// launchers left.
pub const START_BUDGET: Duration = Duration::from_millis(20);

/// The modification time every stub carries once made:
/// 1970-01-01T00:00:03.000054321Z. A filesystem with coarser timestamps
/// keeps the seconds only.
pub const MARK: (i64, i64) = (3, 54_321);

/// How long a lock that only launchers take briefly (a remover's
/// exclusive hold on a stub) is waited for before the launcher gives up.
const BRIEF_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Whether `st` carries the stub mark.
pub fn is_marked(st: &libc::stat) -> bool {
    st.st_mtime == MARK.0 && (st.st_mtime_nsec == MARK.1 || st.st_mtime_nsec == 0)
}

/// Whether `st` is what a stub looks like: an empty regular file or a
/// directory.
pub fn may_be_stub(st: &libc::stat) -> bool {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size == 0,
        libc::S_IFDIR => true,
        _ => false,
    }
}

/// What a stub is, once made and marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub dir: bool,
    /// ctime (seconds, nanoseconds) right after it was marked.
    pub ctime: (i64, i64),
}

impl Identity {
    pub fn of_stat(st: &libc::stat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
            dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// Whether `st` is still this object, unchanged since it was recorded.
    fn matches(&self, st: &libc::stat) -> bool {
        *self == Identity::of_stat(st)
    }
}

/// What the runtime directory keeps of one stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute, with no `.`, `..` or empty components.
    pub host_path: PathBuf,
    /// The parent directory's (dev, ino).
    pub parent: (u64, u64),
    pub stub: Identity,
}

impl Record {
    /// `PATH\0PARENT_DEV PARENT_INO DEV INO KIND CTIME_S CTIME_NS\n`: a
    /// path may hold any byte but NUL, so records follow one another in a
    /// log, and a torn last one (its writer killed) never parses.
    fn encode(&self) -> Vec<u8> {
        let mut out = self.host_path.as_os_str().as_bytes().to_vec();
        let id = &self.stub;
        out.extend_from_slice(
            format!(
                "\0{} {} {} {} {} {} {}\n",
                self.parent.0,
                self.parent.1,
                id.dev,
                id.ino,
                if id.dir { "dir" } else { "file" },
                id.ctime.0,
                id.ctime.1
            )
            .as_bytes(),
        );
        out
    }

    /// The records at the start of `bytes`, up to the first that does not
    /// parse.
    fn decode_all(mut bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some((record, rest)) = Record::decode_one(bytes) {
            out.push(record);
            bytes = rest;
        }
        out
    }

    fn decode_one(bytes: &[u8]) -> Option<(Record, &[u8])> {
        let nul = bytes.iter().position(|b| *b == 0)?;
        let host_path = PathBuf::from(OsStr::from_bytes(&bytes[..nul]));
        if !is_plain_absolute(&host_path) || host_path.file_name().is_none() {
            return None;
        }
        let rest = &bytes[nul + 1..];
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let line = std::str::from_utf8(&rest[..nl]).ok()?;
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 7 || !matches!(f[4], "dir" | "file") {
            return None;
        }
        let record = Record {
            host_path,
            parent: (f[0].parse().ok()?, f[1].parse().ok()?),
            stub: Identity {
                dev: f[2].parse().ok()?,
                ino: f[3].parse().ok()?,
                dir: f[4] == "dir",
                ctime: (f[5].parse().ok()?, f[6].parse().ok()?),
            },
        };
        Some((record, &rest[nl + 1..]))
    }
}

/// Absolute, and made of normal components only.
fn is_plain_absolute(path: &Path) -> bool {
    let mut parts = path.components();
    parts.next() == Some(Component::RootDir) && parts.all(|c| matches!(c, Component::Normal(_)))
}

/// Takes `op | LOCK_NB` on `fd`, retrying for at most `wait`; false when
/// it is still held elsewhere then.
fn lock_within(fd: RawFd, op: i32, wait: Duration) -> Result<bool> {
    let deadline = Instant::now() + wait;
    loop {
        if sys::flock(fd, op | libc::LOCK_NB)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A sandbox's shared lock on a stub's inode; dropping it releases it.
#[derive(Debug)]
pub struct StubLock {
    fd: OwnedFd,
}

/// Takes the shared lock on the stub that `fd` (a readable descriptor of
/// it) holds. Only a remover holds the exclusive lock, for a moment; one
/// held longer (by some other process of ours) is an error rather than a
/// wait without end.
pub fn lock_shared(fd: OwnedFd) -> Result<StubLock> {
    if !lock_within(fd.as_raw_fd(), libc::LOCK_SH, BRIEF_LOCK_WAIT)? {
        bail!("a deny-path stub stays locked by another process");
    }
    Ok(StubLock { fd })
}

impl StubLock {
    /// What the locked object is now (a link count of 0: it was removed
    /// before the lock was ours).
    pub fn stat(&self) -> Result<libc::stat> {
        Ok(sys::fstat(self.fd.as_raw_fd())?)
    }
}

/// Marks a stub this sandbox has just made (see [`MARK`]) and returns
/// what it now is. `fd` is a readable descriptor of it.
pub fn mark_new_stub(fd: RawFd) -> Result<Identity> {
    sys::set_mtime(fd, MARK).context("mark a deny-path stub")?;
    Ok(Identity::of_stat(&sys::fstat(fd)?))
}
