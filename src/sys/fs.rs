//! File, path and mount system calls (part of `sys`, the only place with
//! `unsafe`). Runs in PID 1 while it builds the mount tree, and in the
//! launcher for the few host-side file operations.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use super::{SysError, SysResult, check, check_eintr, cstr, errno, owned};

/// Constants of newer kernel interfaces that the `libc` crate does not carry
/// for every target. Values from the kernel's uapi headers, cited per item.
pub mod uapi {
    /// include/uapi/linux/mount.h: `OPEN_TREE_CLONE`.
    pub const OPEN_TREE_CLONE: u32 = 1;
    /// include/uapi/linux/mount.h: `OPEN_TREE_CLOEXEC` (= O_CLOEXEC).
    pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
    /// include/uapi/linux/mount.h: `MOVE_MOUNT_F_EMPTY_PATH`.
    pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
    /// include/uapi/linux/mount.h: `MOVE_MOUNT_T_EMPTY_PATH`.
    pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    /// include/uapi/linux/mount.h: `MOUNT_ATTR_RDONLY`.
    pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
    /// include/uapi/linux/mount.h: `MOUNT_ATTR_NOSUID`.
    pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
    /// include/uapi/linux/mount.h: `MOUNT_ATTR_NODEV`.
    pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
    /// include/uapi/linux/mount.h: `MOUNT_ATTR_NOEXEC`.
    pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
    /// include/uapi/linux/fcntl.h: `AT_RECURSIVE`.
    pub const AT_RECURSIVE: u32 = 0x8000;
    /// include/uapi/linux/openat2.h: `RESOLVE_NO_MAGICLINKS`.
    pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    /// include/uapi/linux/openat2.h: `RESOLVE_NO_SYMLINKS`.
    pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    /// include/uapi/linux/openat2.h: `RESOLVE_IN_ROOT`.
    pub const RESOLVE_IN_ROOT: u64 = 0x10;
    /// include/uapi/linux/magic.h: `NSFS_MAGIC`.
    pub const NSFS_MAGIC: i64 = 0x6e73_6673;
    /// include/uapi/linux/magic.h: `PROC_SUPER_MAGIC`.
    pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    /// include/uapi/linux/close_range.h: `CLOSE_RANGE_CLOEXEC`.
    pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    /// `statvfs.f_flag` bits (include/linux/statfs.h `ST_*`; musl's libc
    /// crate lacks some of them).
    pub const ST_RDONLY: u64 = 0x0001;
    pub const ST_NOSUID: u64 = 0x0002;
    pub const ST_NODEV: u64 = 0x0004;
    pub const ST_NOEXEC: u64 = 0x0008;
    pub const ST_NOATIME: u64 = 0x0400;
    pub const ST_NODIRATIME: u64 = 0x0800;
    pub const ST_RELATIME: u64 = 0x1000;
    pub const ST_NOSYMFOLLOW: u64 = 0x2000;
    /// include/uapi/linux/mount.h: `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
    #[repr(C)]
    pub struct MountAttr {
        pub attr_set: u64,
        pub attr_clr: u64,
        pub propagation: u64,
        pub userns_fd: u64,
    }
    /// include/uapi/linux/openat2.h: `struct open_how`.
    #[repr(C)]
    pub struct OpenHow {
        pub flags: u64,
        pub mode: u64,
        pub resolve: u64,
    }
}

// ---------------------------------------------------------------- files

pub fn open(path: &OsStr, flags: i32) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let fd = check_eintr(
        // SAFETY: c is NUL-terminated; mode is ignored without O_CREAT.
        || unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) },
        || format!("open({path:?})"),
    )?;
    Ok(owned(fd))
}

pub fn openat(dir: RawFd, name: &OsStr, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cstr(name)?;
    let fd = check_eintr(
        // SAFETY: c is NUL-terminated; dir is a descriptor or AT_FDCWD.
        || unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, mode) },
        || format!("openat({name:?})"),
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
            || format!("openat2({path:?})"),
        );
        match result {
            Err(e) if e.errno() == libc::EAGAIN => continue,
            other => return other.map(|fd| owned(fd as RawFd)),
        }
    }
    Err(SysError::new(format!("openat2({path:?})"), libc::EAGAIN))
}

pub fn mkdirat(dir: RawFd, name: &OsStr, mode: u32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::mkdirat(dir, c.as_ptr(), mode) }, || {
        format!("mkdirat({name:?})")
    })?;
    Ok(())
}

pub fn symlinkat(target: &OsStr, dir: RawFd, name: &OsStr) -> SysResult<()> {
    let t = cstr(target)?;
    let n = cstr(name)?;
    check(
        // SAFETY: both strings are NUL-terminated.
        unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) },
        || format!("symlinkat({target:?}, {name:?})"),
    )?;
    Ok(())
}

pub fn readlinkat(dir: RawFd, name: &OsStr) -> SysResult<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = check(
        // SAFETY: buf is writable for buf.len() bytes.
        unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
        || format!("readlinkat({name:?})"),
    )?;
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd, &mut st), || format!("fstat(fd {fd})"))?;
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
            format!("fstatat({name:?})")
        })?;
        Ok(st)
    }
}

pub fn unlinkat(dir: RawFd, name: &OsStr, flags: i32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) }, || {
        format!("unlinkat({name:?})")
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
        format!("futimens(fd {fd}, mtime {}.{:09})", mtime.0, mtime.1)
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
        format!("renameat2({a:?}, {b:?}, RENAME_EXCHANGE)")
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
                    format!("fcntl(fd {fd}, F_SETLK, F_RDLCK)"),
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
            e => return Err(SysError::new(format!("flock(fd {fd}, {op})"), e)),
        }
    }
}

/// The mount flags (`ST_*`, same bit values as the `MS_*` they mirror for
/// the ones we preserve) of the mount holding `fd`.
pub fn fstatvfs_flags(fd: RawFd) -> SysResult<u64> {
    // SAFETY: statvfs is plain data filled by the kernel.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        check(libc::fstatvfs(fd, &mut st), || format!("fstatvfs(fd {fd})"))?;
        Ok(st.f_flag as u64)
    }
}

/// The filesystem type (`f_type`, a `*_SUPER_MAGIC`) of what `fd` holds.
pub fn fstatfs_type(fd: RawFd) -> SysResult<i64> {
    // SAFETY: statfs is plain data filled by the kernel.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        check(libc::fstatfs(fd, &mut st), || format!("fstatfs(fd {fd})"))?;
        Ok(st.f_type as i64)
    }
}

pub fn fchdir(fd: RawFd) -> SysResult<()> {
    // SAFETY: integer argument.
    check(unsafe { libc::fchdir(fd) }, || format!("fchdir(fd {fd})"))?;
    Ok(())
}

pub fn chdir(path: &OsStr) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::chdir(c.as_ptr()) }, || {
        format!("chdir({path:?})")
    })?;
    Ok(())
}

// ---------------------------------------------------------------- mounts

/// mount(2). `source`/`fstype`/`data` may be absent.
pub fn mount(
    source: Option<&OsStr>,
    target: &OsStr,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> SysResult<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let fs = fstype.map(|s| CString::new(s).unwrap_or_default());
    let dat = data.map(|s| CString::new(s).unwrap_or_default());
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    check(
        // SAFETY: every pointer is null or a NUL-terminated string that
        // lives until the call returns.
        unsafe {
            libc::mount(
                ptr(&src),
                tgt.as_ptr(),
                ptr(&fs),
                flags as libc::c_ulong,
                ptr(&dat).cast(),
            )
        },
        || {
            format!(
                "mount({:?}, {:?}, {}, {:#x})",
                source.unwrap_or_default(),
                target,
                fstype.unwrap_or("NULL"),
                flags
            )
        },
    )?;
    Ok(())
}

pub fn umount_detach(target: &OsStr) -> SysResult<()> {
    let c = cstr(target)?;
    check(
        // SAFETY: c is NUL-terminated.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        || format!("umount2({target:?}, MNT_DETACH)"),
    )?;
    Ok(())
}

pub fn pivot_root(new_root: &OsStr, put_old: &OsStr) -> SysResult<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    check(
        // SAFETY: both strings are NUL-terminated.
        unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) },
        || format!("pivot_root({new_root:?}, {put_old:?})"),
    )?;
    Ok(())
}

/// open_tree(dirfd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])
/// (Linux 5.2): a detached copy of the mount tree at `fd`.
pub fn open_tree_clone(fd: RawFd, recursive: bool) -> SysResult<OwnedFd> {
    let mut flags = uapi::OPEN_TREE_CLONE | uapi::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= uapi::AT_RECURSIVE;
    }
    let ret = check(
        // SAFETY: the path is an empty NUL-terminated string.
        unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) },
        || format!("open_tree(fd {fd}, OPEN_TREE_CLONE, recursive={recursive})"),
    )?;
    Ok(owned(ret as RawFd))
}

/// mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], set) (Linux 5.12).
/// Only sets flags: every flag the mounts already had is kept.
pub fn mount_setattr(fd: RawFd, recursive: bool, attr_set: u64) -> SysResult<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= uapi::AT_RECURSIVE;
    }
    let attr = uapi::MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    check(
        // SAFETY: attr is a valid mount_attr and its size is passed with it.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd,
                c"".as_ptr(),
                flags,
                &attr as *const uapi::MountAttr,
                std::mem::size_of::<uapi::MountAttr>(),
            )
        },
        || format!("mount_setattr(fd {fd}, set={attr_set:#x}, recursive={recursive})"),
    )?;
    Ok(())
}

/// move_mount(from_fd, "", to_fd, "", F_EMPTY_PATH | T_EMPTY_PATH) (5.2).
pub fn move_mount(from: RawFd, to: RawFd) -> SysResult<()> {
    check(
        // SAFETY: both paths are empty NUL-terminated strings.
        unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from,
                c"".as_ptr(),
                to,
                c"".as_ptr(),
                uapi::MOVE_MOUNT_F_EMPTY_PATH | uapi::MOVE_MOUNT_T_EMPTY_PATH,
            )
        },
        || format!("move_mount(fd {from}, fd {to})"),
    )?;
    Ok(())
}

/// Whether the running kernel implements a syscall: ENOSYS means it does
/// not; any other answer (EBADF, EINVAL for our deliberately bad arguments)
/// means it does. Used once per run to pick an interface.
pub fn syscall_exists(nr: libc::c_long) -> bool {
    // SAFETY: every probed call is given fd -1 and null pointers, which the
    // kernel rejects before touching memory.
    let ret = unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) };
    !(ret == -1 && errno() == libc::ENOSYS)
}
