//! Installing a classic BPF seccomp filter.

use super::{Call, SysResult, check};

/// Installs a classic BPF seccomp filter on the calling thread.
/// no_new_privs must already be set (it is, from the launcher's first step).
pub fn seccomp_install(program: &[libc::sock_filter]) -> SysResult<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    check(
        // SAFETY: prog points at `program`, which outlives the call; the
        // kernel copies the filter before returning.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog as libc::c_ulong,
                0,
                0,
            )
        },
        || Call::SeccompInstall,
    )?;
    Ok(())
}
