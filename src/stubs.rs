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

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys::{self, uapi};

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
        crate::trace!("runtime directory: {squatted:#}; using a private one");
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

/// What became of a recorded stub.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
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
struct Parents(std::collections::HashMap<PathBuf, Option<OpenParent>>);

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
fn remove_if_unused(record: &Record, parents: &mut Parents) -> Outcome {
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
            crate::trace!(
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
        crate::trace!("stub {} not removed: {e}", record.host_path.display());
    }
    Outcome::Gone
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("srtl-stubs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    /// A runtime directory, and the path of a stub to be in `host/`.
    fn setup(name: &str) -> (Dir, RuntimeDir, PathBuf) {
        let d = scratch(name);
        let rt = RuntimeDir::open_at(&d.0.join("rt"), sys::ids().1).unwrap();
        let stub = d.0.join("host/.bashrc");
        std::fs::create_dir_all(stub.parent().unwrap()).unwrap();
        (d, rt, stub)
    }

    /// As PID 1 does: make the stub, take its shared lock, mark it,
    /// record it in the sandbox's log. Dropping both is the sandbox's end.
    fn make_stub(rt: &RuntimeDir, path: &Path, dir: bool) -> (StubLock, StubLog) {
        if dir {
            std::fs::create_dir(path).unwrap();
        } else {
            std::fs::write(path, "").unwrap();
        }
        let fd = sys::open(path.as_os_str(), libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        let stub = mark_new_stub(fd.as_raw_fd()).unwrap();
        let lock = lock_shared(fd).unwrap();
        let log = rt.new_log().unwrap();
        log.append(&record_of(path, stub)).unwrap();
        (lock, log)
    }

    /// A log holding `record`, of a sandbox that is gone.
    fn forge(rt: &RuntimeDir, record: &Record) {
        rt.new_log().unwrap().append(record).unwrap();
    }

    fn record_of(path: &Path, stub: Identity) -> Record {
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        use std::os::unix::fs::MetadataExt;
        Record {
            host_path: path.to_path_buf(),
            parent: (parent.dev(), parent.ino()),
            stub,
        }
    }

    fn identity_of(path: &Path) -> Identity {
        let fd = sys::open(path.as_os_str(), libc::O_PATH).unwrap();
        Identity::of_stat(&sys::fstat(fd.as_raw_fd()).unwrap())
    }

    #[test]
    fn records_round_trip() {
        let full = Record {
            host_path: "/home/u/p/a\nline/.bashrc".into(),
            parent: (66, 7),
            stub: Identity {
                dev: 66,
                ino: 12345,
                dir: false,
                ctime: (1_700_000_000, 5),
            },
        };
        let mut other = full.clone();
        other.host_path = "/x/.env".into();
        other.stub.dir = true;
        let mut log = [full.encode(), other.encode()].concat();
        assert_eq!(Record::decode_all(&log), [full.clone(), other.clone()]);
        // A writer killed halfway: the torn record is not taken.
        log.extend_from_slice(&full.encode()[..20]);
        assert_eq!(Record::decode_all(&log), [full.clone(), other]);
        for bad in [
            &b"relative\x001 2 3 4 file 5 6\n"[..],
            b"/a/../b\x001 2 3 4 file 5 6\n",
            b"/\x001 2 3 4 dir 5 6\n",
            b"/a\x001 2 3 4 pipe 5 6\n",
            b"",
        ] {
            assert!(
                Record::decode_all(bad).is_empty(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_stub_in_use_stays_and_the_last_user_removes_it() {
        for dir in [false, true] {
            let (_d, rt, stub) = setup(&format!("held-{dir}"));
            let first = make_stub(&rt, &stub, dir);
            // A live sandbox's log is not touched.
            drop(first.0);
            assert_eq!(rt.collect(None).unwrap(), 0);
            let first = (
                lock_shared(sys::open(stub.as_os_str(), libc::O_RDONLY).unwrap()).unwrap(),
                first.1,
            );
            // A second sandbox, which found it, whatever its runtime
            // directory: its lock is on the stub itself.
            let second =
                lock_shared(sys::open(stub.as_os_str(), libc::O_RDONLY | libc::O_CLOEXEC).unwrap())
                    .unwrap();
            drop(first);
            assert_eq!(rt.collect(None).unwrap(), 0, "one user is left");
            assert!(stub.exists());
            drop(second);
            assert_eq!(rt.collect(None).unwrap(), 1);
            assert!(!stub.exists(), "the last user's exit removes it");
            assert_eq!(std::fs::read_dir(rt.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn user_data_is_never_removed() {
        // Written into, replaced, or filled: left alone, record dropped.
        let (_d, rt, stub) = setup("written");
        drop(make_stub(&rt, &stub, false));
        std::fs::write(&stub, "user data").unwrap();
        assert_eq!(rt.collect(None).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&stub).unwrap(), "user data");
        assert_eq!(std::fs::read_dir(rt.path()).unwrap().count(), 0);

        let (_d, rt, stub) = setup("replaced");
        drop(make_stub(&rt, &stub, false));
        std::fs::remove_file(&stub).unwrap();
        std::fs::write(&stub, "").unwrap();
        rt.collect(None).unwrap();
        assert!(stub.exists(), "a different inode is not ours");

        let (_d, rt, stub) = setup("filled");
        drop(make_stub(&rt, &stub, true));
        std::fs::write(stub.join("notes"), "x").unwrap();
        rt.collect(None).unwrap();
        assert!(stub.join("notes").exists());
    }

    #[test]
    fn a_forged_record_of_an_unmarked_file_removes_nothing() {
        // A record naming a victim with its exact identity, as a workload
        // that can read the victim would write it.
        for dir in [false, true] {
            let (_d, rt, victim) = setup(&format!("forged-{dir}"));
            if dir {
                std::fs::create_dir(&victim).unwrap();
            } else {
                std::fs::write(&victim, "").unwrap();
            }
            forge(&rt, &record_of(&victim, identity_of(&victim)));
            assert_eq!(rt.collect(None).unwrap(), 1, "the record goes");
            assert!(victim.exists(), "the victim stays");
        }
    }

    #[test]
    fn removal_never_follows_a_swapped_parent() {
        // The parent of the stubs (`p`) is swapped, thousands of times,
        // with a symlink (`l`) to a directory holding an empty, marked
        // file of each stub's name: only the parent's identity tells them
        // apart. Removal must never touch those files.
        let (d, rt, _) = setup("swap");
        let (real, link, victims) = (d.0.join("p"), d.0.join("l"), d.0.join("v"));
        std::fs::create_dir(&real).unwrap();
        std::fs::create_dir(&victims).unwrap();
        std::os::unix::fs::symlink(&victims, &link).unwrap();
        let real_fd = sys::open(real.as_os_str(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        let parent = sys::fstat(real_fd.as_raw_fd()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, real, link) = (stop.clone(), real.clone(), link.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    swaps += u64::from(sys::rename_exchange(&real, &link).is_ok());
                }
                swaps
            })
        };
        let create = libc::O_CREAT | libc::O_EXCL | libc::O_RDONLY | libc::O_CLOEXEC;
        let mut removed = 0;
        for i in 0..3000 {
            let name = OsString::from(format!("s{i}"));
            let victim = victims.join(&name);
            let vfd = sys::open(victim.as_os_str(), create).unwrap();
            mark_new_stub(vfd.as_raw_fd()).unwrap();
            let fd = sys::openat(real_fd.as_raw_fd(), &name, create, 0o444).unwrap();
            let stub = mark_new_stub(fd.as_raw_fd()).unwrap();
            forge(
                &rt,
                &Record {
                    host_path: real.join(&name),
                    parent: (parent.st_dev, parent.st_ino),
                    stub,
                },
            );
            drop(fd);
            rt.collect(None).unwrap();
            assert!(victim.exists(), "iteration {i}: the victim was removed");
            removed += usize::from(
                sys::fstatat(real_fd.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW).is_err(),
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 1000, "the swapper ran ({swaps} swaps)");
        // Removal still happens whenever the path is as recorded.
        assert!(removed > 0, "no stub was ever removed");
    }

    #[test]
    fn the_runtime_directory_must_be_private() {
        let d = scratch("private");
        let uid = sys::ids().1;
        let open = RuntimeDir::open_at(&d.0.join("rt"), uid).unwrap();
        let mode = std::fs::metadata(open.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = RuntimeDir::open_at(open.path(), uid).err().unwrap();
        assert!(format!("{err:#}").contains("not private"), "{err:#}");
        std::os::unix::fs::symlink(open.path(), d.0.join("link")).unwrap();
        assert!(RuntimeDir::open_at(&d.0.join("link"), uid).is_err());
        assert!(RuntimeDir::open_at(&d.0.join("rt"), uid + 1).is_err());
    }
}
