//! Deny-path mount-point stubs on the host (SPEC §2.7): the empty files
//! and directories a missing deny path inside a writable bind needs, and
//! their removal once no sandbox uses them.
//!
//! The bookkeeping lives in a per-user runtime directory, one pair of files
//! per stub, named by a hash of its host path:
//!
//! * `KEY.lock`: every sandbox using the stub holds a shared `flock` on it
//!   for as long as it runs (PID 1 holds it, so a SIGKILLed sandbox
//!   releases it with its last process);
//! * `KEY.stub`: the record: host path, device, inode, kind and ctime.
//!
//! Whoever can take the lock exclusively (without waiting) is the last
//! user: it removes the stub if it is still the same inode, empty and
//! unchanged (ctime), drops the record and the lock file. A stub the user
//! wrote into or replaced is left alone; only its record goes. Invariant:
//! a stub is never removed while a sandbox holds its lock, and a holder
//! re-checks after locking that the stub is still the recorded one, so a
//! removal racing its arrival is seen and the stub made again.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys;

/// How long a launcher spends collecting what killed launchers left.
const COLLECT_BUDGET: Duration = Duration::from_millis(20);

/// A stub as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    pub host_path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub dir: bool,
    /// ctime (seconds, nanoseconds) right after creation.
    pub ctime: (i64, i64),
}

impl Stub {
    /// Reads what `fd` (the new stub, at `host_path`) is.
    pub fn of(fd: RawFd, host_path: &Path) -> Result<Stub> {
        let st = sys::fstat(fd)?;
        Ok(Stub {
            host_path: host_path.to_path_buf(),
            dev: st.st_dev,
            ino: st.st_ino,
            dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {} {} {}\n",
            self.dev,
            self.ino,
            if self.dir { "dir" } else { "file" },
            self.ctime.0,
            self.ctime.1
        )
        .into_bytes();
        out.extend_from_slice(self.host_path.as_os_str().as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Stub> {
        let nl = bytes.iter().position(|b| *b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..nl]).ok()?;
        let f: Vec<&str> = head.split(' ').collect();
        if f.len() != 5 || !matches!(f[2], "dir" | "file") {
            return None;
        }
        let path = OsStr::from_bytes(&bytes[nl + 1..]);
        if !path.as_bytes().starts_with(b"/") {
            return None;
        }
        Some(Stub {
            host_path: PathBuf::from(path),
            dev: f[0].parse().ok()?,
            ino: f[1].parse().ok()?,
            dir: f[2] == "dir",
            ctime: (f[3].parse().ok()?, f[4].parse().ok()?),
        })
    }
}

/// A shared lock on a stub's lock file; dropping it releases the lock.
#[derive(Debug)]
pub struct Hold(#[allow(dead_code)] OwnedFd);

/// The per-user runtime directory.
pub struct RuntimeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// 64-bit FNV-1a of a host path, in hex: the stub's file names.
fn key(host_path: &Path) -> String {
    let hash = host_path
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

fn name(key: &str, ext: &str) -> OsString {
    OsString::from(format!("{key}.{ext}"))
}

impl RuntimeDir {
    /// `$XDG_RUNTIME_DIR/srt-launcher` when XDG_RUNTIME_DIR is set and
    /// private (ours, no access for others), else `/tmp/srt-launcher-UID`;
    /// created 0700 when missing, and refused unless it is a real
    /// directory of ours that no one else can enter.
    pub fn open() -> Result<RuntimeDir> {
        let uid = sys::ids().1;
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && is_private_dir(p, uid));
        let path = match xdg {
            Some(base) => base.join("srt-launcher"),
            None => PathBuf::from(format!("/tmp/srt-launcher-{uid}")),
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

    /// Opens `KEY.lock` (creating it) and locks it `op`; retries when the
    /// file was removed and replaced while we waited, so the lock held is
    /// always on the file others will find.
    fn lock(&self, key: &str, op: i32) -> Result<Option<OwnedFd>> {
        let lock = name(key, "lock");
        loop {
            let fd = sys::openat(
                self.fd.as_raw_fd(),
                &lock,
                libc::O_RDONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )?;
            if !sys::flock(fd.as_raw_fd(), op)? {
                return Ok(None);
            }
            let held = sys::fstat(fd.as_raw_fd())?;
            match sys::fstatat(self.fd.as_raw_fd(), &lock, libc::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => {
                    return Ok(Some(fd));
                }
                _ => continue,
            }
        }
    }

    /// Takes the shared lock of the stub at `host_path`, waiting only for
    /// a remover's brief exclusive hold.
    pub fn hold(&self, host_path: &Path) -> Result<Hold> {
        let fd = self
            .lock(&key(host_path), libc::LOCK_SH)?
            .expect("a blocking lock is always taken");
        Ok(Hold(fd))
    }

    /// Records a stub just created (under its hold).
    pub fn record(&self, stub: &Stub) -> Result<()> {
        let key = key(&stub.host_path);
        let tmp = name(&key, "tmp");
        let fd = sys::openat(
            self.fd.as_raw_fd(),
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&stub.encode())
            .context("write a stub record")?;
        sys::renameat(
            self.fd.as_raw_fd(),
            &tmp,
            self.fd.as_raw_fd(),
            &name(&key, "stub"),
        )?;
        Ok(())
    }

    /// The record for `host_path`, if there is one.
    pub fn recorded(&self, host_path: &Path) -> Option<Stub> {
        self.read_record(&key(host_path))
            .filter(|s| s.host_path == host_path)
    }

    fn read_record(&self, key: &str) -> Option<Stub> {
        let fd = sys::openat(
            self.fd.as_raw_fd(),
            &name(key, "stub"),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .ok()?;
        Stub::decode(&sys::read_to_end(fd.as_raw_fd()).ok()?)
    }

    /// Removes every recorded stub no sandbox holds any more (those held
    /// are skipped, never waited for), within a time budget. Returns how
    /// many records it dropped.
    pub fn collect(&self) -> Result<usize> {
        let deadline = Instant::now() + COLLECT_BUDGET;
        let mut dropped = 0;
        let entries = std::fs::read_dir(&self.path).context("list the runtime directory")?;
        for entry in entries.flatten() {
            if Instant::now() > deadline {
                break;
            }
            let file = entry.file_name();
            let Some(key) = file.to_str().and_then(|n| n.strip_suffix(".stub")) else {
                continue;
            };
            let Some(lock) = self.lock(key, libc::LOCK_EX | libc::LOCK_NB)? else {
                continue;
            };
            if let Some(stub) = self.read_record(key) {
                remove_if_unchanged(&stub);
            }
            // Record, then lock file, while the lock is still ours.
            let _ = sys::unlinkat(self.fd.as_raw_fd(), &name(key, "stub"), 0);
            let _ = sys::unlinkat(self.fd.as_raw_fd(), &name(key, "lock"), 0);
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
/// ctime (nothing written, renamed or chmod-ed since), empty.
fn remove_if_unchanged(stub: &Stub) {
    let Some(parent) = stub.host_path.parent() else {
        return;
    };
    let Some(file_name) = stub.host_path.file_name() else {
        return;
    };
    let Ok(dir) = sys::open(
        parent.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
    ) else {
        return;
    };
    let Ok(st) = sys::fstatat(dir.as_raw_fd(), file_name, libc::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    let same = (st.st_dev, st.st_ino) == (stub.dev, stub.ino)
        && (st.st_ctime, st.st_ctime_nsec) == stub.ctime;
    if !same {
        crate::trace!(
            "stub {} changed since; left alone",
            stub.host_path.display()
        );
        return;
    }
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir != stub.dir || (!is_dir && st.st_size != 0) {
        return;
    }
    // rmdir refuses a directory that is not empty.
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    if let Err(e) = sys::unlinkat(dir.as_raw_fd(), file_name, flags) {
        crate::trace!("stub {} not removed: {e}", stub.host_path.display());
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

    fn record(rt: &RuntimeDir, path: &Path) -> Hold {
        let hold = rt.hold(path).unwrap();
        let fd = sys::open(path.as_os_str(), libc::O_PATH).unwrap();
        rt.record(&Stub::of(fd.as_raw_fd(), path).unwrap()).unwrap();
        hold
    }

    #[test]
    fn records_round_trip() {
        let stub = Stub {
            host_path: "/home/u/p/.bashrc".into(),
            dev: 66,
            ino: 12345,
            dir: false,
            ctime: (1_700_000_000, 5),
        };
        assert_eq!(Stub::decode(&stub.encode()), Some(stub));
        assert_eq!(Stub::decode(b"1 2 file 3\n/x"), None);
        assert_eq!(Stub::decode(b"1 2 file 3 4\nrelative"), None);
    }

    #[test]
    fn a_held_stub_stays_and_the_last_user_removes_it() {
        for dir in [false, true] {
            let (_d, rt, stub) = setup(&format!("held-{dir}"), dir);
            let first = record(&rt, &stub);
            let second = rt.hold(&stub).unwrap();
            assert!(rt.recorded(&stub).is_some());
            drop(first);
            assert_eq!(rt.collect().unwrap(), 0, "one user is left");
            assert!(stub.exists());
            drop(second);
            assert_eq!(rt.collect().unwrap(), 1);
            assert!(!stub.exists(), "the last user's exit removes it");
            assert!(rt.recorded(&stub).is_none());
            assert_eq!(std::fs::read_dir(rt.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn user_data_is_never_removed() {
        // Written into, replaced, or filled: left alone, record dropped.
        let (_d, rt, stub) = setup("written", false);
        drop(record(&rt, &stub));
        std::fs::write(&stub, "user data").unwrap();
        assert_eq!(rt.collect().unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&stub).unwrap(), "user data");
        assert!(rt.recorded(&stub).is_none());

        let (_d, rt, stub) = setup("replaced", false);
        drop(record(&rt, &stub));
        std::fs::remove_file(&stub).unwrap();
        std::fs::write(&stub, "").unwrap();
        rt.collect().unwrap();
        assert!(stub.exists(), "a different inode is not ours");

        let (_d, rt, stub) = setup("filled", true);
        drop(record(&rt, &stub));
        std::fs::write(stub.join("notes"), "x").unwrap();
        rt.collect().unwrap();
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
