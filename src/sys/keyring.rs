//! The kernel keyring: a fresh anonymous session keyring, so the caller's
//! keys are out of the workload's reach.

use super::{Call, SysError, SysResult, errno};

/// Replaces the calling process's session keyring with a new anonymous
/// one (KEYCTL_JOIN_SESSION_KEYRING with no name). `Ok(false)` when the
/// keyring calls are not ours to make at all: the kernel has none
/// (ENOSYS), or a seccomp filter refuses every one of them (EPERM for a
/// harmless query too, as inside another sandbox of ours) — either way the
/// caller's keys are already out of reach.
pub fn join_new_session_keyring() -> SysResult<bool> {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    let keyctl = |op: libc::c_long, arg: libc::c_long| {
        // SAFETY: both operations take integers (a NULL name for the
        // join); no memory is passed.
        let ret = unsafe { libc::syscall(libc::SYS_keyctl, op, arg, 0 as libc::c_long) };
        if ret < 0 { Err(errno()) } else { Ok(()) }
    };
    match keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0) {
        Ok(()) => Ok(true),
        Err(libc::ENOSYS) => Ok(false),
        Err(libc::EPERM)
            if keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING) == Err(libc::EPERM) =>
        {
            Ok(false)
        }
        Err(e) => Err(SysError::new(
            Call::other("keyctl", "KEYCTL_JOIN_SESSION_KEYRING"),
            e,
        )),
    }
}
