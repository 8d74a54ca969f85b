//! Deny-path mount-point stubs on the host (SPEC §2.7): the empty files
//! and directories a missing deny path inside a writable bind needs, and
//! their removal once no sandbox uses them.
//!
//! The bookkeeping lives in a per-user runtime directory, one file per
//! stub, named by a hash of its host path (`KEY.stub`). It is both:
//!
//! * the lock: every sandbox using the stub holds a shared `flock` on it
//!   for as long as it runs (PID 1 holds it, so a SIGKILLed sandbox
//!   releases it with its last process);
//! * the record: the host path, written (under the lock) before the stub
//!   is made, then its device, inode, kind and ctime once it exists.
//!
//! Whoever takes the lock exclusively without waiting is the last user: it
//! removes the stub if it is still the recorded inode, unchanged (ctime)
//! and empty, then the record. A stub the user wrote into or replaced is
//! left alone; only its record goes. Invariants: a stub is never removed
//! while a sandbox holds its lock; a sandbox that finds a stub made by
//! another takes the lock before relying on it, and since the path is
//! recorded before the stub exists, it can always tell; a holder
//! re-checks after locking that the record file is still the current one.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys;

/// How long a launcher spends, at its start, collecting what killed
/// launchers left.
pub const START_BUDGET: Duration = Duration::from_millis(20);

/// What a stub is, once made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub dir: bool,
    /// ctime (seconds, nanoseconds) right after creation.
    pub ctime: (i64, i64),
}

impl Identity {
    /// What `fd` (a new stub) is.
    pub fn of(fd: RawFd) -> Result<Identity> {
        let st = sys::fstat(fd)?;
        Ok(Identity {
            dev: st.st_dev,
            ino: st.st_ino,
            dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        })
    }
}

/// A record: the host path, then (once the stub exists) its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    host_path: PathBuf,
    identity: Option<Identity>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.host_path.as_os_str().as_bytes().to_vec();
        out.push(b'\n');
        if let Some(id) = &self.identity {
            let line = format!(
                "{} {} {} {} {}\n",
                id.dev,
                id.ino,
                if id.dir { "dir" } else { "file" },
                id.ctime.0,
                id.ctime.1
            );
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    /// The path needs only the first line, so a reader racing the second
    /// write still sees it.
    fn decode(bytes: &[u8]) -> Option<Record> {
        let nl = bytes.iter().position(|b| *b == b'\n')?;
        let path = OsStr::from_bytes(&bytes[..nl]);
        if !path.as_bytes().starts_with(b"/") {
            return None;
        }
        let rest = std::str::from_utf8(&bytes[nl + 1..]).ok()?;
        let identity = rest.strip_suffix('\n').and_then(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 5 || !matches!(f[2], "dir" | "file") {
                return None;
            }
            Some(Identity {
                dev: f[0].parse().ok()?,
                ino: f[1].parse().ok()?,
                dir: f[2] == "dir",
                ctime: (f[3].parse().ok()?, f[4].parse().ok()?),
            })
        });
        Some(Record {
            host_path: PathBuf::from(path),
            identity,
        })
    }
}

/// A shared lock on a stub's record; dropping it releases the lock.
#[derive(Debug)]
pub struct Hold {
    fd: OwnedFd,
    host_path: PathBuf,
}

impl Hold {
    fn read(&self) -> Option<Record> {
        read_record(self.fd.as_raw_fd())
    }

    /// Whether the stub at this path is recorded (made, or about to be,
    /// by a sandbox), with the given identity if there is one.
    pub fn is_stub(&self, dev: u64, ino: u64) -> bool {
        self.read().is_some_and(|r| {
            r.host_path == self.host_path
                && r.identity.is_none_or(|id| (id.dev, id.ino) == (dev, ino))
        })
    }

    /// Whether the record already says what a made stub is.
    pub fn has_identity(&self) -> bool {
        self.read()
            .is_some_and(|r| r.host_path == self.host_path && r.identity.is_some())
    }

    /// Records the path, before the stub is made: from here on a sandbox
    /// that finds it knows it is a stub. The path line is the start of
    /// every record of this stub and nothing is cut, so this never undoes
    /// a full record another sandbox wrote meanwhile.
    pub fn record_intent(&self) -> Result<()> {
        let record = Record {
            host_path: self.host_path.clone(),
            identity: None,
        };
        sys::pwrite_all(self.fd.as_raw_fd(), &record.encode(), 0, false)
            .context("write a stub record")
    }

    /// Records what the stub is, once made (only its creator does).
    pub fn record(&self, identity: Identity) -> Result<()> {
        let record = Record {
            host_path: self.host_path.clone(),
            identity: Some(identity),
        };
        sys::pwrite_all(self.fd.as_raw_fd(), &record.encode(), 0, true)
            .context("write a stub record")
    }
}

fn read_record(fd: RawFd) -> Option<Record> {
    let mut buf = [0u8; 8192];
    let n = sys::pread(fd, &mut buf, 0).ok()?;
    Record::decode(&buf[..n])
}

/// The per-user runtime directory.
pub struct RuntimeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// `KEY.stub`, KEY a 64-bit FNV-1a of the host path in hex.
fn record_name(host_path: &Path) -> OsString {
    let hash = host_path
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    OsString::from(format!("{hash:016x}.stub"))
}

impl RuntimeDir {
    /// `$XDG_RUNTIME_DIR/srt-launcher` when XDG_RUNTIME_DIR is set and
    /// private (ours, no access for others), else `srt-launcher-UID` in
    /// /dev/shm (memory, like XDG_RUNTIME_DIR) or, without it, /tmp;
    /// created 0700 when missing, and refused unless it is a real
    /// directory of ours that no one else can enter.
    pub fn open() -> Result<RuntimeDir> {
        let uid = sys::ids().1;
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && is_private_dir(p, uid));
        let path = match xdg {
            Some(base) => base.join("srt-launcher"),
            None => {
                let shared = if Path::new("/dev/shm").is_dir() {
                    "/dev/shm"
                } else {
                    "/tmp"
                };
                PathBuf::from(format!("{shared}/srt-launcher-{uid}"))
            }
        };
        Self::open_at(&path, uid)
    }

    /// Opens (creating) `path` as the runtime directory of `uid`.
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

    /// Opens the record file `name` (creating it) and locks it `op`;
    /// retries when the file was removed while we waited, so the lock held
    /// is always on the file others will find. None when `LOCK_NB` found
    /// it held, or (without O_CREAT) it is gone.
    fn lock(&self, name: &OsStr, op: i32, create: bool) -> Result<Option<OwnedFd>> {
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        loop {
            let fd = match sys::openat(
                self.fd.as_raw_fd(),
                name,
                if create { flags | libc::O_CREAT } else { flags },
                0o600,
            ) {
                Ok(fd) => fd,
                Err(e) if !create && e.errno() == libc::ENOENT => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if !sys::flock(fd.as_raw_fd(), op)? {
                return Ok(None);
            }
            let held = sys::fstat(fd.as_raw_fd())?;
            match sys::fstatat(self.fd.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => {
                    return Ok(Some(fd));
                }
                Err(e) if !create && e.errno() == libc::ENOENT => return Ok(None),
                _ => continue,
            }
        }
    }

    /// Takes the shared lock of the stub at `host_path`, waiting only for
    /// a remover's brief exclusive hold.
    pub fn hold(&self, host_path: &Path) -> Result<Hold> {
        let fd = self
            .lock(&record_name(host_path), libc::LOCK_SH, true)?
            .expect("a blocking lock is always taken");
        Ok(Hold {
            fd,
            host_path: host_path.to_path_buf(),
        })
    }

    /// The shared lock of the stub at `host_path` if it has a record (a
    /// stub's record exists before the stub does); None when there is
    /// none, without creating anything.
    pub fn hold_existing(&self, host_path: &Path) -> Result<Option<Hold>> {
        Ok(self
            .lock(&record_name(host_path), libc::LOCK_SH, false)?
            .map(|fd| Hold {
                fd,
                host_path: host_path.to_path_buf(),
            }))
    }

    /// Removes every recorded stub no sandbox holds any more (those held
    /// are skipped, never waited for), within `budget` if one is given (a
    /// launcher's own stubs, after its sandbox, are all removed). Returns
    /// how many records it dropped.
    pub fn collect(&self, budget: Option<Duration>) -> Result<usize> {
        let deadline = budget.map(|b| Instant::now() + b);
        let mut dropped = 0;
        let entries = std::fs::read_dir(&self.path).context("list the runtime directory")?;
        for entry in entries.flatten() {
            if deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
            let name = entry.file_name();
            if !name.as_bytes().ends_with(b".stub") {
                continue;
            }
            let Some(lock) = self.lock(&name, libc::LOCK_EX | libc::LOCK_NB, false)? else {
                continue;
            };
            if let Some(record) = read_record(lock.as_raw_fd()) {
                remove_if_unchanged(&record);
            }
            // The record goes while the lock is still ours.
            let _ = sys::unlinkat(self.fd.as_raw_fd(), &name, 0);
            drop(lock);
            dropped += 1;
        }
        Ok(dropped)
    }
}

/// Whether `path` is a directory of `uid` with no access for others.
fn is_private_dir(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0
    })
}

/// Removes the stub if it is still the one recorded: same inode, same
/// ctime (nothing written, renamed or chmod-ed since), empty. A record
/// without an identity (its sandbox died between the two writes) cannot
/// prove the file is ours: the file stays.
fn remove_if_unchanged(record: &Record) {
    let Some(id) = record.identity else {
        return;
    };
    let path = record.host_path.as_os_str();
    let Ok(st) = sys::fstatat(libc::AT_FDCWD, path, libc::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let unchanged = (st.st_dev, st.st_ino) == (id.dev, id.ino)
        && (st.st_ctime, st.st_ctime_nsec) == id.ctime
        && is_dir == id.dir
        && (is_dir || st.st_size == 0);
    if !unchanged {
        crate::trace!(
            "stub {} changed since; left alone",
            record.host_path.display()
        );
        return;
    }
    // rmdir refuses a directory that is not empty.
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    if let Err(e) = sys::unlinkat(libc::AT_FDCWD, path, flags) {
        crate::trace!("stub {} not removed: {e}", record.host_path.display());
    }
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

    /// A runtime directory and a host directory holding one new stub.
    fn setup(name: &str, dir: bool) -> (Dir, RuntimeDir, PathBuf) {
        let d = scratch(name);
        let rt = RuntimeDir::open_at(&d.0.join("rt"), sys::ids().1).unwrap();
        let stub = d.0.join("host/.bashrc");
        std::fs::create_dir_all(stub.parent().unwrap()).unwrap();
        if dir {
            std::fs::create_dir(&stub).unwrap();
        } else {
            std::fs::write(&stub, "").unwrap();
        }
        (d, rt, stub)
    }

    /// As PID 1 does: hold, record the path, (the stub is made by the
    /// caller beforehand here), record what it is.
    fn record(rt: &RuntimeDir, path: &Path) -> Hold {
        let hold = rt.hold(path).unwrap();
        hold.record_intent().unwrap();
        let fd = sys::open(path.as_os_str(), libc::O_PATH).unwrap();
        hold.record(Identity::of(fd.as_raw_fd()).unwrap()).unwrap();
        hold
    }

    #[test]
    fn records_round_trip() {
        let full = Record {
            host_path: "/home/u/p/.bashrc".into(),
            identity: Some(Identity {
                dev: 66,
                ino: 12345,
                dir: false,
                ctime: (1_700_000_000, 5),
            }),
        };
        assert_eq!(Record::decode(&full.encode()), Some(full.clone()));
        let intent = Record {
            host_path: full.host_path.clone(),
            identity: None,
        };
        assert_eq!(Record::decode(&intent.encode()), Some(intent));
        // A torn second line still names the path.
        let torn = &full.encode()[..full.encode().len() - 4];
        assert_eq!(
            Record::decode(torn).map(|r| r.host_path),
            Some(full.host_path)
        );
        assert_eq!(Record::decode(b"relative\n"), None);
        assert_eq!(Record::decode(b""), None);
    }

    #[test]
    fn a_late_intent_never_undoes_a_full_record() {
        let (_d, rt, stub) = setup("late-intent", false);
        let creator = rt.hold(&stub).unwrap();
        let late = rt.hold(&stub).unwrap();
        creator.record_intent().unwrap();
        let fd = sys::open(stub.as_os_str(), libc::O_PATH).unwrap();
        creator
            .record(Identity::of(fd.as_raw_fd()).unwrap())
            .unwrap();
        // Another sandbox that looked before the stub existed writes its
        // intent after the creator's full record.
        late.record_intent().unwrap();
        assert!(late.has_identity());
        drop((creator, late));
        assert_eq!(rt.collect(None).unwrap(), 1);
        assert!(!stub.exists(), "still removable");
    }

    #[test]
    fn a_stub_is_recognised_from_its_intent_on() {
        let (_d, rt, stub) = setup("intent", false);
        let creator = rt.hold(&stub).unwrap();
        let other = rt.hold(&stub).unwrap();
        assert!(!other.is_stub(1, 2), "nothing recorded yet");
        creator.record_intent().unwrap();
        assert!(other.is_stub(1, 2), "the path alone marks it");
        let fd = sys::open(stub.as_os_str(), libc::O_PATH).unwrap();
        let id = Identity::of(fd.as_raw_fd()).unwrap();
        creator.record(id).unwrap();
        assert!(other.is_stub(id.dev, id.ino));
        assert!(
            !other.is_stub(id.dev, id.ino + 1),
            "another inode is not it"
        );
        // A record with no identity never removes anything.
        drop((creator, other));
        let (_d2, rt2, stub2) = setup("intent-only", false);
        let h = rt2.hold(&stub2).unwrap();
        h.record_intent().unwrap();
        drop(h);
        assert_eq!(rt2.collect(None).unwrap(), 1);
        assert!(stub2.exists());
    }

    #[test]
    fn a_held_stub_stays_and_the_last_user_removes_it() {
        for dir in [false, true] {
            let (_d, rt, stub) = setup(&format!("held-{dir}"), dir);
            let first = record(&rt, &stub);
            let second = rt.hold(&stub).unwrap();
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
        let (_d, rt, stub) = setup("written", false);
        drop(record(&rt, &stub));
        std::fs::write(&stub, "user data").unwrap();
        assert_eq!(rt.collect(None).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&stub).unwrap(), "user data");
        assert_eq!(std::fs::read_dir(rt.path()).unwrap().count(), 0);

        let (_d, rt, stub) = setup("replaced", false);
        drop(record(&rt, &stub));
        std::fs::remove_file(&stub).unwrap();
        std::fs::write(&stub, "").unwrap();
        rt.collect(None).unwrap();
        assert!(stub.exists(), "a different inode is not ours");

        let (_d, rt, stub) = setup("filled", true);
        drop(record(&rt, &stub));
        std::fs::write(stub.join("notes"), "x").unwrap();
        rt.collect(None).unwrap();
        assert!(stub.join("notes").exists());
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
