//! Files and paths: open (with openat2's resolution rules), stat, create,
//! remove, locks, and the working directory. Runs in PID 1 while it builds
//! the mount tree, and in the launcher for the few host-side operations.

use std::ffi::{OsStr, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use super::{Call, SysError, SysResult, check, check_eintr, cstr, owned, uapi};

pub fn open(path: &OsStr, flags: i32) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let fd = check_eintr(
        // SAFETY: c is NUL-terminated; mode is ignored without O_CREAT.
        || unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) },
        || Call::other("open", format!("{path:?}")),
    )?;
    Ok(owned(fd))
}

pub fn openat(dir: RawFd, name: &OsStr, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cstr(name)?;
    let fd = check_eintr(
        // SAFETY: c is NUL-terminated; dir is a descriptor or AT_FDCWD.
        || unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, mode) },
        || Call::other("openat", format!("{name:?}")),
    )?;
    Ok(owned(fd))
}

const MAX_OPENAT2_RETRIES: usize = 1000;

/// openat2(2) (Linux 5.6) with `RESOLVE_*` flags.
pub fn openat2(dir: RawFd, path: &OsStr, flags: i32, resolve: u64) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let how = uapi::OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // EAGAIN: with RESOLVE_IN_ROOT and a `..` component, the kernel could
    // not rule out a concurrent rename or mount anywhere on the system and
    // asks us to retry (openat2(2)). Bounded, so a storm of mounts on the
    // host cannot spin us forever.
    for _ in 0..MAX_OPENAT2_RETRIES {
        let result = check_eintr(
            // SAFETY: how is a valid open_how and its size is passed with it.
            || unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    c.as_ptr(),
                    &how as *const uapi::OpenHow,
                    std::mem::size_of::<uapi::OpenHow>(),
                )
            },
            || Call::other("openat2", format!("{path:?}")),
        );
        match result {
            Err(e) if e.errno() == libc::EAGAIN => continue,
            other => return other.map(|fd| owned(fd as RawFd)),
        }
    }
    Err(SysError::new(
        Call::other("openat2", format!("{path:?}")),
        libc::EAGAIN,
    ))
}

pub fn mkdirat(dir: RawFd, name: &OsStr, mode: u32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::mkdirat(dir, c.as_ptr(), mode) }, || {
        Call::other("mkdirat", format!("{name:?}"))
    })?;
    Ok(())
}

pub fn symlinkat(target: &OsStr, dir: RawFd, name: &OsStr) -> SysResult<()> {
    let t = cstr(target)?;
    let n = cstr(name)?;
    check(
        // SAFETY: both strings are NUL-terminated.
        unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) },
        || Call::other("symlinkat", format!("{target:?}, {name:?}")),
    )?;
    Ok(())
}

pub fn readlinkat(dir: RawFd, name: &OsStr) -> SysResult<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = check(
        // SAFETY: buf is writable for buf.len() bytes.
        unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
        || Call::other("readlinkat", format!("{name:?}")),
    )?;
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd, &mut st), || {
            Call::other("fstat", format!("fd {fd}"))
        })?;
        Ok(st)
    }
}

/// stat of `name` in `dir` (flags: `AT_SYMLINK_NOFOLLOW`, ...).
pub fn fstatat(dir: RawFd, name: &OsStr, flags: i32) -> SysResult<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data filled by the kernel; c is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstatat(dir, c.as_ptr(), &mut st, flags), || {
            Call::other("fstatat", format!("{name:?}"))
        })?;
        Ok(st)
    }
}

/// Where a file is: its mount's id and its inode. Two descriptors with
/// the same place resolve every path below them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub mnt_id: u64,
    pub dev: (u32, u32),
    pub ino: u64,
}

/// The place of `name` in `dir` (`""` with AT_EMPTY_PATH: of `dir`
/// itself), following a final symlink or magic link; None where the
/// kernel cannot say which mount (statx without STATX_MNT_ID, before
/// 5.8).
pub fn place_of(dir: RawFd, name: &OsStr, flags: i32) -> SysResult<Option<Place>> {
    let c = cstr(name)?;
    // SAFETY: statx is plain data filled by the kernel (zero is valid for
    // its private padding); c is NUL-terminated.
    let stx = unsafe {
        let mut stx: libc::statx = std::mem::zeroed();
        check(
            libc::syscall(
                libc::SYS_statx,
                dir,
                c.as_ptr(),
                flags,
                libc::STATX_INO | libc::STATX_MNT_ID,
                &mut stx as *mut libc::statx,
            ) as i32,
            || Call::other("statx", format!("{name:?}")),
        )?;
        stx
    };
    Ok((stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(Place {
        mnt_id: stx.stx_mnt_id,
        dev: (stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
    }))
}

pub fn unlinkat(dir: RawFd, name: &OsStr, flags: i32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) }, || {
        Call::other("unlinkat", format!("{name:?}"))
    })?;
    Ok(())
}

/// futimens(fd, {UTIME_OMIT, mtime}): sets the modification time of the
/// object an open (not O_PATH) descriptor holds; atime is left alone.
pub fn set_mtime(fd: RawFd, mtime: (i64, i64)) -> SysResult<()> {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: times is an array of two valid timespecs.
    check(unsafe { libc::futimens(fd, times.as_ptr()) }, || {
        Call::other(
            "futimens",
            format!("fd {fd}, mtime {}.{:09}", mtime.0, mtime.1),
        )
    })?;
    Ok(())
}

/// renameat2(a, b, RENAME_EXCHANGE): swaps two names atomically (the
/// tests race stub removal with it).
#[cfg(test)]
pub fn rename_exchange(a: &std::path::Path, b: &std::path::Path) -> SysResult<()> {
    /// include/uapi/linux/fs.h: `RENAME_EXCHANGE`.
    const RENAME_EXCHANGE: libc::c_ulong = 1 << 1;
    let (ca, cb) = (cstr(a.as_os_str())?, cstr(b.as_os_str())?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            RENAME_EXCHANGE,
        )
    };
    check(ret as i32, || {
        Call::other("renameat2", format!("{a:?}, {b:?}, RENAME_EXCHANGE"))
    })?;
    Ok(())
}

/// umask(2): sets the file-creation mask, returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask takes and returns plain integers and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// A whole-file POSIX read lock (fcntl F_SETLK, F_RDLCK), held until the
/// descriptor closes: what bubblewrap's `--lock-file` takes, and what other
/// processes test with F_SETLK/F_GETLK. Fails at once if a writer holds it.
pub fn read_lock(fd: RawFd) -> SysResult<()> {
    // SAFETY: flock is plain data; fcntl reads exactly one.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_RDLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: fd is an open descriptor; lock is a valid flock.
        if unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) } == 0 {
            return Ok(());
        }
        match super::errno() {
            libc::EINTR => continue,
            e => {
                return Err(SysError::new(
                    Call::other("fcntl", format!("fd {fd}, F_SETLK, F_RDLCK")),
                    e,
                ));
            }
        }
    }
}

/// flock(2); `Ok(false)` when `LOCK_NB` was given and the lock is held
/// elsewhere.
pub fn flock(fd: RawFd, op: i32) -> SysResult<bool> {
    loop {
        // SAFETY: flock takes plain integers.
        if unsafe { libc::flock(fd, op) } == 0 {
            return Ok(true);
        }
        match super::errno() {
            libc::EINTR => continue,
            libc::EWOULDBLOCK if op & libc::LOCK_NB != 0 => return Ok(false),
            e => {
                return Err(SysError::new(
                    Call::other("flock", format!("fd {fd}, {op}")),
                    e,
                ));
            }
        }
    }
}

/// The mount flags (`ST_*`, same bit values as the `MS_*` they mirror for
/// the ones we preserve) of the mount holding `fd`.
pub fn fstatvfs_flags(fd: RawFd) -> SysResult<u64> {
    // SAFETY: statvfs is plain data filled by the kernel.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        check(libc::fstatvfs(fd, &mut st), || {
            Call::other("fstatvfs", format!("fd {fd}"))
        })?;
        Ok(st.f_flag as u64)
    }
}

/// The filesystem type (`f_type`, a `*_SUPER_MAGIC`) of what `fd` holds.
pub fn fstatfs_type(fd: RawFd) -> SysResult<i64> {
    // SAFETY: statfs is plain data filled by the kernel.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        check(libc::fstatfs(fd, &mut st), || {
            Call::other("fstatfs", format!("fd {fd}"))
        })?;
        Ok(st.f_type as i64)
    }
}

pub fn fchdir(fd: RawFd) -> SysResult<()> {
    // SAFETY: integer argument.
    check(unsafe { libc::fchdir(fd) }, || {
        Call::other("fchdir", format!("fd {fd}"))
    })?;
    Ok(())
}

pub fn chdir(path: &OsStr) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::chdir(c.as_ptr()) }, || {
        Call::other("chdir", format!("{path:?}"))
    })?;
    Ok(())
}

pub fn fchmodat(dir: RawFd, name: &OsStr, mode: u32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::fchmodat(dir, c.as_ptr(), mode, 0) }, || {
        Call::other("fchmodat", format!("{name:?}, {mode:o}"))
    })?;
    Ok(())
}
