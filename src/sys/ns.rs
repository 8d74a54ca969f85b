//! Namespaces: entering new ones, joining existing ones, and the UTS
//! namespace's hostname.

use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use super::{Call, SysResult, check};

pub fn unshare(flags: i32) -> SysResult<()> {
    // SAFETY: unshare takes a flag word.
    check(unsafe { libc::unshare(flags) }, || Call::Unshare { flags })?;
    Ok(())
}

/// setns(2): joins the namespace `fd` refers to (`nstype` names which
/// kind it must be).
pub fn setns(fd: RawFd, nstype: i32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setns(fd, nstype) }, || {
        Call::other("setns", format!("fd {fd}, {nstype:#x}"))
    })?;
    Ok(())
}

pub fn sethostname(name: &OsStr) -> SysResult<()> {
    let bytes = name.as_bytes();
    check(
        // SAFETY: bytes is a valid buffer of bytes.len() bytes.
        unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) },
        || Call::other("sethostname", format!("{name:?}")),
    )?;
    Ok(())
}
