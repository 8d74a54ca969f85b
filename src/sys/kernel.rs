//! What the running kernel is and offers: its release, whether a system
//! call exists, the Landlock ABI. Read by `probe` for `check`, diagnosis
//! and the choice of mount interface.

use super::errno;

/// Whether the running kernel implements a syscall: ENOSYS means it does
/// not; any other answer (EBADF, EINVAL for our deliberately bad arguments)
/// means it does. Used once per run to pick an interface.
pub fn syscall_exists(nr: libc::c_long) -> bool {
    // SAFETY: every probed call is given fd -1 and null pointers, which the
    // kernel rejects before touching memory.
    let ret = unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) };
    !(ret == -1 && errno() == libc::ENOSYS)
}

/// The running kernel's release (uname(2)), which a covered /proc cannot
/// hide; empty if uname fails.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is writable.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The Landlock ABI version (landlock_create_ruleset with
/// LANDLOCK_CREATE_RULESET_VERSION), None when Landlock is absent or off.
pub fn landlock_abi() -> Option<i64> {
    const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: a NULL attribute pointer with size 0 and the VERSION flag
    // only queries; no memory is passed.
    let abi = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (abi > 0).then_some(abi)
}
