//! The stub bookkeeping on real files, without namespaces: records,
//! locks, marks, removal races, the runtime directory's rules.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::*;
use crate::sys;

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
