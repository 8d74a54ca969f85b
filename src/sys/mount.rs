//! Mounts: mount(2), detach, pivot_root, and the new mount API (open_tree,
//! mount_setattr, move_mount). Runs in PID 1 while it builds the tree.

use std::ffi::{CString, OsStr};
use std::os::fd::{OwnedFd, RawFd};

use super::{Call, SysResult, check, cstr, owned, uapi};

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
        || Call::Mount {
            fstype: fstype.map(String::from),
            args: format!(
                "{:?}, {:?}, {}, {:#x}",
                source.unwrap_or_default(),
                target,
                fstype.unwrap_or("NULL"),
                flags
            ),
        },
    )?;
    Ok(())
}

pub fn umount_detach(target: &OsStr) -> SysResult<()> {
    let c = cstr(target)?;
    check(
        // SAFETY: c is NUL-terminated.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        || Call::other("umount2", format!("{target:?}, MNT_DETACH")),
    )?;
    Ok(())
}

pub fn pivot_root(new_root: &OsStr, put_old: &OsStr) -> SysResult<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    check(
        // SAFETY: both strings are NUL-terminated.
        unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) },
        || Call::mount_api("pivot_root", format!("{new_root:?}, {put_old:?}")),
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
        || {
            Call::mount_api(
                "open_tree",
                format!("fd {fd}, OPEN_TREE_CLONE, recursive={recursive}"),
            )
        },
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
        || {
            Call::mount_api(
                "mount_setattr",
                format!("fd {fd}, set={attr_set:#x}, recursive={recursive}"),
            )
        },
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
        || Call::mount_api("move_mount", format!("fd {from}, fd {to}")),
    )?;
    Ok(())
}
