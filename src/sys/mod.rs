//! Thin, checked wrappers around the raw system calls the launcher needs.
//!
//! Runs in every process role (launcher, PID 1, workload before exec). This
//! is the only module allowed to contain `unsafe`: every other module calls
//! these wrappers, which turn `-1`/errno into a [`SysError`] that names the
//! call and its arguments, so a failure deep in the mount sequence still
//! reads as `mount("/a", "/b", MS_BIND): Permission denied (os error 13)`.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Files, paths, mounts, and the uapi constants they need.
mod fs;
/// Sockets, epoll and splice for the byte pump.
mod net;

pub use fs::*;
pub use net::*;

/// A failed system call: which call, with which arguments, and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    call: String,
    errno: i32,
}

impl SysError {
    pub fn new(call: String, errno: i32) -> Self {
        SysError { call, errno }
    }

    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn call(&self) -> &str {
        &self.call
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a C-style return value into a result, describing the call lazily so
/// the hot path (thousands of mounts) formats nothing unless it fails.
pub(crate) fn check<T: PartialEq + From<i8>>(
    ret: T,
    describe: impl FnOnce() -> String,
) -> SysResult<T> {
    if ret == T::from(-1) {
        Err(SysError::new(describe(), errno()))
    } else {
        Ok(ret)
    }
}

/// Like [`check`], retrying while the call is interrupted by a signal.
pub(crate) fn check_eintr<T: PartialEq + From<i8>>(
    mut call: impl FnMut() -> T,
    describe: impl FnOnce() -> String,
) -> SysResult<T> {
    loop {
        let ret = call();
        if ret == T::from(-1) && errno() == libc::EINTR {
            continue;
        }
        return check(ret, describe);
    }
}

/// A path for a C call. Paths come from argv, which cannot hold NUL, or from
/// `--args`, which splits on NUL, so an interior NUL is a caller bug.
pub fn cstr(path: &OsStr) -> SysResult<CString> {
    CString::new(path.as_bytes())
        .map_err(|_| SysError::new(format!("path {:?} contains a NUL byte", path), libc::EINVAL))
}

pub(crate) fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just returned to us and
    // that nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------- identity

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

// ------------------------------------------------------------- processes

pub enum Fork {
    Child,
    Parent(i32),
}

/// fork(2). The launcher is single-threaded until exec, so the child may
/// allocate and run ordinary Rust code.
pub fn fork() -> SysResult<Fork> {
    // SAFETY: the process has exactly one thread (no thread is ever
    // started), so the child inherits no locks held by other threads.
    let pid = check(unsafe { libc::fork() }, || "fork()".into())?;
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
        || format!("waitpid({pid}, WNOHANG)"),
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
        || format!("waitpid({pid})"),
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
        format!("kill({pid}, {sig})")
    })?;
    Ok(())
}

pub fn sethostname(name: &OsStr) -> SysResult<()> {
    let bytes = name.as_bytes();
    check(
        // SAFETY: bytes is a valid buffer of bytes.len() bytes.
        unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) },
        || format!("sethostname({name:?})"),
    )?;
    Ok(())
}

pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }, || "setsid()".into())?;
    Ok(())
}

/// setresgid(2) then setresuid(2) to one id each (real, effective and
/// saved alike), gid first while we may still change it.
pub fn switch_ids(uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(gid, gid, gid) }, || {
        format!("setresgid({gid})")
    })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(uid, uid, uid) }, || {
        format!("setresuid({uid})")
    })?;
    Ok(())
}

pub fn unshare(flags: i32, names: &str) -> SysResult<()> {
    // SAFETY: unshare takes a flag word.
    check(unsafe { libc::unshare(flags) }, || {
        format!("unshare({names})")
    })?;
    Ok(())
}

/// prctl(2) with integer arguments; returns the call's result.
pub fn prctl(option: i32, arg2: u64, name: &str) -> SysResult<i32> {
    check(
        // SAFETY: every option used here takes integer arguments only.
        unsafe { libc::prctl(option, arg2 as libc::c_ulong, 0, 0, 0) },
        || format!("prctl({name})"),
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
        return Err(SysError::new(format!("prctl(PR_CAPBSET_DROP, {cap})"), e));
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
    SysError::new(format!("execve({path:?})"), errno())
}

// ----------------------------------------------------------- descriptors

pub fn pipe_cloexec() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        || "pipe2(O_CLOEXEC)".into(),
    )?;
    Ok((owned(fds[0]), owned(fds[1])))
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        || unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) },
        || format!("read(fd {fd})"),
    )?;
    Ok(n as usize)
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let n = check_eintr(
            // SAFETY: buf is a valid readable buffer of buf.len() bytes.
            || unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) },
            || format!("write(fd {fd})"),
        )?;
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Writes all of `buf` at `offset`; with `truncate`, then cuts the file
/// there, so that it holds exactly what was written up to that point.
pub fn pwrite_all(fd: RawFd, mut buf: &[u8], mut offset: i64, truncate: bool) -> SysResult<()> {
    while !buf.is_empty() {
        let n = check_eintr(
            // SAFETY: buf is a valid readable buffer of buf.len() bytes.
            || unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) },
            || format!("pwrite(fd {fd})"),
        )?;
        buf = &buf[n as usize..];
        offset += n as i64;
    }
    if !truncate {
        return Ok(());
    }
    check_eintr(
        // SAFETY: plain integers.
        || unsafe { libc::ftruncate(fd, offset) as libc::ssize_t },
        || format!("ftruncate(fd {fd})"),
    )?;
    Ok(())
}

/// Reads everything from a raw descriptor the caller handed us (`--args`).
pub fn read_to_end(fd: RawFd) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = read(fd, &mut chunk)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

pub fn close(fd: RawFd) -> SysResult<()> {
    // SAFETY: closing a descriptor number; callers pass descriptors they
    // own and never use again.
    check(unsafe { libc::close(fd) }, || format!("close({fd})"))?;
    Ok(())
}

/// Points `fd` at /dev/null, so a standard descriptor slot stays occupied.
pub fn replace_with_dev_null(fd: RawFd) -> SysResult<()> {
    let null = open(OsStr::new("/dev/null"), libc::O_RDWR)?;
    // SAFETY: dup2 on two integers; `null` stays open until after the call.
    check(unsafe { libc::dup2(null.as_raw_fd(), fd) }, || {
        format!("dup2(/dev/null, {fd})")
    })?;
    Ok(())
}

pub fn fchmodat(dir: RawFd, name: &OsStr, mode: u32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::fchmodat(dir, c.as_ptr(), mode, 0) }, || {
        format!("fchmodat({name:?}, {mode:o})")
    })?;
    Ok(())
}

/// The soft RLIMIT_NOFILE, capped: the upper bound of a descriptor walk.
pub fn fd_limit() -> i32 {
    // SAFETY: rlimit is plain data filled by the kernel.
    let soft = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            1024
        }
    };
    soft.min(1 << 20) as i32
}

/// getrandom(2): `buf` filled from the kernel's generator.
pub fn random_bytes(buf: &mut [u8]) -> SysResult<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: rest is a valid writable buffer of rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(SysError::new(format!("getrandom({})", rest.len()), errno()));
        }
        filled += n as usize;
    }
    Ok(())
}

pub fn is_valid_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

pub fn set_cloexec(fd: RawFd) -> SysResult<()> {
    check(
        // SAFETY: F_SETFD with an integer flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
        || format!("fcntl({fd}, F_SETFD, FD_CLOEXEC)"),
    )?;
    Ok(())
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC) (Linux 5.11).
pub fn close_range_cloexec(first: u32) -> SysResult<()> {
    check(
        // SAFETY: integer arguments only.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                uapi::CLOSE_RANGE_CLOEXEC,
            )
        },
        || format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"),
    )?;
    Ok(())
}

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty on any integer is harmless.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn ttyname(fd: RawFd) -> SysResult<OsString> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: buf is writable for buf.len() bytes.
    let rc = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(SysError::new(format!("ttyname_r({fd})"), rc));
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    Ok(OsString::from_vec(bytes))
}

/// The terminal state a workload can change and leave behind: termios
/// (echo, raw mode …) and TIOCEXCL (exclusive mode, which keeps every
/// other opener out).
#[derive(Clone, Copy)]
pub struct TerminalState {
    termios: libc::termios,
    exclusive: bool,
}

impl TerminalState {
    fn same_as(&self, other: &TerminalState) -> bool {
        let (a, b) = (&self.termios, &other.termios);
        self.exclusive == other.exclusive
            && (a.c_iflag, a.c_oflag, a.c_cflag, a.c_lflag, a.c_line, a.c_cc)
                == (b.c_iflag, b.c_oflag, b.c_cflag, b.c_lflag, b.c_line, b.c_cc)
            // SAFETY: both are valid termios read by tcgetattr.
            && unsafe { (libc::cfgetispeed(a), libc::cfgetospeed(a)) }
                // SAFETY: as above.
                == unsafe { (libc::cfgetispeed(b), libc::cfgetospeed(b)) }
    }
}

/// Reads the terminal state of `fd`; errors when it is not a terminal.
pub fn terminal_state(fd: RawFd) -> SysResult<TerminalState> {
    // SAFETY: termios is plain data; tcgetattr fills it.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: termios is writable.
    check(unsafe { libc::tcgetattr(fd, &mut termios) }, || {
        format!("tcgetattr({fd})")
    })?;
    let mut exclusive: libc::c_int = 0;
    check(
        // SAFETY: TIOCGEXCL writes one int.
        unsafe { libc::ioctl(fd, libc::TIOCGEXCL, &mut exclusive) },
        || format!("ioctl({fd}, TIOCGEXCL)"),
    )?;
    Ok(TerminalState {
        termios,
        exclusive: exclusive != 0,
    })
}

/// Puts `saved` back on `fd` if the terminal no longer has it. Changing a
/// terminal from a background process group raises SIGTTOU, which would
/// stop us: it is blocked for the call.
pub fn restore_terminal_state(fd: RawFd, saved: &TerminalState) -> SysResult<()> {
    if terminal_state(fd)?.same_as(saved) {
        return Ok(());
    }
    let old_mask = sigprocmask(libc::SIG_BLOCK, &sigset_of(&[libc::SIGTTOU]))?;
    // SAFETY: saved.termios is a valid termios read by tcgetattr.
    let set = check(
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved.termios) },
        || format!("tcsetattr({fd})"),
    );
    let request = if saved.exclusive {
        libc::TIOCEXCL
    } else {
        libc::TIOCNXCL
    };
    // SAFETY: TIOCEXCL and TIOCNXCL take no argument.
    let excl = check(unsafe { libc::ioctl(fd, request) }, || {
        format!("ioctl({fd}, TIOCEXCL/TIOCNXCL)")
    });
    sigprocmask(libc::SIG_SETMASK, &old_mask)?;
    set.and(excl).map(|_| ())
}

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
            "keyctl(KEYCTL_JOIN_SESSION_KEYRING)".into(),
            e,
        )),
    }
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        || unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) },
        || "poll()".into(),
    )?;
    Ok(n as usize)
}

// --------------------------------------------------------------- signals

pub fn empty_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

pub fn sigset_of(signals: &[i32]) -> libc::sigset_t {
    let mut set = empty_sigset();
    for &sig in signals {
        // SAFETY: set is initialised; sig is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    set
}

/// The kernel's signal set size for rt_sigprocmask (`_NSIG / 8`: 64
/// signals on x86_64 and aarch64), smaller than libc's `sigset_t`.
const KERNEL_SIGSET_SIZE: usize = 8;

/// sigprocmask(how, set) returning the previous mask, through the raw
/// `rt_sigprocmask` system call: musl's wrapper silently keeps its own
/// internal signals (32-34) out of both the new and the old mask, so a
/// caller's blocked 32-34 would not reach the workload (SPEC §2.2).
pub fn sigprocmask(how: i32, set: &libc::sigset_t) -> SysResult<libc::sigset_t> {
    let mut old = empty_sigset();
    check(
        // SAFETY: both pointers reference initialised sigset_t values,
        // which are at least KERNEL_SIGSET_SIZE bytes long and begin with
        // the kernel's mask (signal n is bit n-1 of the first word).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                how,
                set as *const libc::sigset_t,
                &mut old as *mut libc::sigset_t,
                KERNEL_SIGSET_SIZE,
            ) as i32
        },
        || format!("rt_sigprocmask({how})"),
    )?;
    Ok(old)
}

/// Whether `sig`'s disposition is SIG_IGN.
pub fn signal_is_ignored(sig: i32) -> SysResult<bool> {
    // SAFETY: sigaction is plain data; a null new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        check(libc::sigaction(sig, std::ptr::null(), &mut old), || {
            format!("sigaction({sig})")
        })?;
        Ok(old.sa_sigaction == libc::SIG_IGN)
    }
}

pub fn signal_default(sig: i32) -> SysResult<()> {
    // SAFETY: installing SIG_DFL with an empty mask is always sound.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut act.sa_mask);
        check(libc::sigaction(sig, &act, std::ptr::null_mut()), || {
            format!("sigaction({sig}, SIG_DFL)")
        })?;
    }
    Ok(())
}

/// SIGPIPE to SIG_IGN: a write to a peer that left then fails with EPIPE
/// instead of killing the process (for the pump processes only; the
/// workload keeps the caller's disposition).
pub fn ignore_sigpipe() -> SysResult<()> {
    // SAFETY: installing SIG_IGN with an empty mask is always sound.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut act.sa_mask);
        check(
            libc::sigaction(libc::SIGPIPE, &act, std::ptr::null_mut()),
            || "sigaction(SIGPIPE, SIG_IGN)".into(),
        )?;
    }
    Ok(())
}

pub fn signalfd(set: &libc::sigset_t) -> SysResult<OwnedFd> {
    let fd = check(
        // SAFETY: set is an initialised sigset_t.
        unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) },
        || "signalfd()".into(),
    )?;
    Ok(owned(fd))
}

/// One signal read from a signalfd.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedSignal {
    pub signo: i32,
    /// Sent by the kernel (SI_KERNEL): a terminal's ^C or ^\, which reaches
    /// every process of the foreground group by itself, as opposed to
    /// kill(2) from a process.
    pub from_kernel: bool,
}

/// Reads one pending signal number from a non-blocking signalfd.
pub fn read_signal(fd: RawFd) -> Option<ReceivedSignal> {
    // SAFETY: signalfd_siginfo is plain data, and the buffer is exactly one
    // record long as signalfd(2) requires.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size);
        if n as usize == size {
            Some(ReceivedSignal {
                signo: info.ssi_signo as i32,
                from_kernel: info.ssi_code == libc::SI_KERNEL,
            })
        } else {
            None
        }
    }
}

// ----------------------------------------------------------- networking

/// Sets IFF_UP on the loopback interface of the current network namespace.
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: socket takes integers; the result is owned immediately.
    let sock = owned(check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) },
        || "socket(AF_INET, SOCK_DGRAM)".into(),
    )?);
    // SAFETY: ifreq is plain data; "lo" fits in IFNAMSIZ; the ioctls read
    // and write exactly one ifreq.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req),
            || "ioctl(lo, SIOCGIFFLAGS)".into(),
        )?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req),
            || "ioctl(lo, SIOCSIFFLAGS, IFF_UP)".into(),
        )?;
    }
    Ok(())
}

// -------------------------------------------------------------- seccomp

/// setns(2): joins the namespace `fd` refers to (`nstype` names which
/// kind it must be).
pub fn setns(fd: RawFd, nstype: i32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setns(fd, nstype) }, || {
        format!("setns(fd {fd}, {nstype:#x})")
    })?;
    Ok(())
}

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
        || "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)".into(),
    )?;
    Ok(())
}

// ---------------------------------------------------------- environment

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
