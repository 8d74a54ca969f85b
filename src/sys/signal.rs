//! Signal masks, dispositions and signalfd (PID 1's forwarding and the
//! workload's inherited state).

use std::os::fd::{OwnedFd, RawFd};

use super::{Call, SysResult, check, owned};

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
        || Call::other("rt_sigprocmask", format!("{how}")),
    )?;
    Ok(old)
}

/// Whether `sig`'s disposition is SIG_IGN.
pub fn signal_is_ignored(sig: i32) -> SysResult<bool> {
    // SAFETY: sigaction is plain data; a null new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        check(libc::sigaction(sig, std::ptr::null(), &mut old), || {
            Call::other("sigaction", format!("{sig}"))
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
            Call::other("sigaction", format!("{sig}, SIG_DFL"))
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
            || Call::other("sigaction", "SIGPIPE, SIG_IGN"),
        )?;
    }
    Ok(())
}

pub fn signalfd(set: &libc::sigset_t) -> SysResult<OwnedFd> {
    let fd = check(
        // SAFETY: set is an initialised sigset_t.
        unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) },
        || Call::other("signalfd", ""),
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
