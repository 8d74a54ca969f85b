//! Identity, fork/wait/exit, prctl, execve and the process arguments: the
//! calls that create, shape and end processes (launcher, PID 1, workload).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::mem::zeroed;
use std::os::unix::ffi::OsStrExt;

use super::{Call, SysError, SysResult, check, check_eintr, errno};

pub fn ids() -> (u32, u32, u32, u32) {
    // SAFETY: these calls take no arguments and cannot fail.
    unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    }
}

pub fn getpid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() }
}

pub enum Fork {
    Child,
    Parent(i32),
}

/// fork(2). The launcher is single-threaded until exec, so the child may
/// allocate and run ordinary Rust code.
pub fn fork() -> SysResult<Fork> {
    // SAFETY: the process has exactly one thread (no thread is ever
    // started), so the child inherits no locks held by other threads.
    let pid = check(unsafe { libc::fork() }, || Call::other("fork", ""))?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// Ends the calling process without running atexit handlers or flushing
/// stdio buffers shared with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// The result of waiting for a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    Exited(i32),
    Signaled(i32),
}

impl ChildStatus {
    /// The shell convention the launcher passes through: a code, or 128+N.
    pub fn exit_code(self) -> i32 {
        match self {
            ChildStatus::Exited(code) => code,
            ChildStatus::Signaled(sig) => 128 + sig,
        }
    }
}

/// waitpid(2) with WNOHANG: `Ok(None)` while `pid` (or any child for -1)
/// is still running, `Err(ECHILD)` when there is nothing to wait for.
pub fn wait_nohang(pid: i32) -> SysResult<Option<(i32, ChildStatus)>> {
    let mut status = 0;
    let got = check_eintr(
        // SAFETY: status points to a live c_int.
        || unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) },
        || Call::other("waitpid", format!("{pid}, WNOHANG")),
    )?;
    if got == 0 {
        return Ok(None);
    }
    let decoded = if libc::WIFSIGNALED(status) {
        ChildStatus::Signaled(libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        ChildStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        // Stopped/continued are not requested (no WUNTRACED), so this is
        // unreachable in practice; report it as still running.
        return Ok(None);
    };
    Ok(Some((got, decoded)))
}

/// Blocking waitpid(2) for one child.
pub fn wait_pid(pid: i32) -> SysResult<ChildStatus> {
    let mut status = 0;
    check_eintr(
        // SAFETY: status points to a live c_int.
        || unsafe { libc::waitpid(pid, &mut status, libc::__WALL) },
        || Call::other("waitpid", format!("{pid}")),
    )?;
    Ok(if libc::WIFSIGNALED(status) {
        ChildStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ChildStatus::Exited(libc::WEXITSTATUS(status))
    })
}

pub fn kill(pid: i32, sig: i32) -> SysResult<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid, sig) }, || {
        Call::other("kill", format!("{pid}, {sig}"))
    })?;
    Ok(())
}

pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }, || Call::other("setsid", ""))?;
    Ok(())
}

/// setresgid(2) then setresuid(2) to one id each (real, effective and
/// saved alike), gid first while we may still change it.
pub fn switch_ids(uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(gid, gid, gid) }, || {
        Call::other("setresgid", format!("{gid}"))
    })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(uid, uid, uid) }, || {
        Call::other("setresuid", format!("{uid}"))
    })?;
    Ok(())
}

/// prctl(2) with integer arguments; returns the call's result.
pub fn prctl(option: i32, arg2: u64, name: &str) -> SysResult<i32> {
    check(
        // SAFETY: every option used here takes integer arguments only.
        unsafe { libc::prctl(option, arg2 as libc::c_ulong, 0, 0, 0) },
        || Call::other("prctl", name),
    )
}

/// Arms PR_SET_PDEATHSIG(SIGKILL), then reports whether the parent is
/// still `expected`. Arming is racy by nature: a parent that died before it
/// left us reparented, and the signal will never come; only the re-check
/// after arming catches that.
pub fn die_with_parent(expected: i32) -> SysResult<bool> {
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as u64,
        "PR_SET_PDEATHSIG",
    )?;
    Ok(getppid() == expected)
}

/// prctl(PR_CAPBSET_DROP, cap); `Ok(false)` once `cap` is past the running
/// kernel's last capability (EINVAL).
pub fn capbset_drop(cap: u32) -> SysResult<bool> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    if ret == -1 {
        let e = errno();
        if e == libc::EINVAL {
            return Ok(false);
        }
        return Err(SysError::new(
            Call::other("prctl", format!("PR_CAPBSET_DROP, {cap}")),
            e,
        ));
    }
    Ok(true)
}

/// execve(2). Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> SysError {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NUL-terminated and point into CStrings that
    // outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    SysError::new(Call::other("execve", format!("{path:?}")), errno())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (a relay holds two
/// descriptors per connection, plus pipes while data flows).
pub fn raise_nofile_limit() -> SysResult<u64> {
    // SAFETY: rlimit is plain data read and written by the kernel.
    unsafe {
        let mut lim: libc::rlimit = zeroed();
        check(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), || {
            Call::other("getrlimit", "RLIMIT_NOFILE")
        })?;
        lim.rlim_cur = lim.rlim_max;
        check(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), || {
            Call::other("setrlimit", "RLIMIT_NOFILE")
        })?;
        Ok(lim.rlim_cur as u64)
    }
}

/// Removes a variable from the process environment.
pub fn env_remove(key: &str) {
    // SAFETY: the launcher is single-threaded (no thread is ever started),
    // so nothing reads the environment concurrently.
    unsafe { std::env::remove_var(key) }
}

/// The process arguments as the C runtime passed them to `main`.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings.
#[cfg_attr(test, allow(dead_code))]
pub unsafe fn args_from_c(argc: i32, argv: *const *const libc::c_char) -> Vec<OsString> {
    (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the caller guarantees argv has argc valid entries.
            let s = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsStr::from_bytes(s.to_bytes()).to_os_string()
        })
        .collect()
}
