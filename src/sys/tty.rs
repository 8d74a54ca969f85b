//! The caller's terminal: whether a descriptor is one, its name, and the
//! state a workload could change and leave behind.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;

use super::{Call, SysError, SysResult, check};
use super::{sigprocmask, sigset_of};

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty on any integer is harmless.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn ttyname(fd: RawFd) -> SysResult<OsString> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: buf is writable for buf.len() bytes.
    let rc = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(SysError::new(Call::other("ttyname_r", format!("{fd}")), rc));
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
        Call::other("tcgetattr", format!("{fd}"))
    })?;
    let mut exclusive: libc::c_int = 0;
    check(
        // SAFETY: TIOCGEXCL writes one int.
        unsafe { libc::ioctl(fd, libc::TIOCGEXCL, &mut exclusive) },
        || Call::other("ioctl", format!("{fd}, TIOCGEXCL")),
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
        || Call::other("tcsetattr", format!("{fd}")),
    );
    let request = if saved.exclusive {
        libc::TIOCEXCL
    } else {
        libc::TIOCNXCL
    };
    // SAFETY: TIOCEXCL and TIOCNXCL take no argument.
    let excl = check(unsafe { libc::ioctl(fd, request) }, || {
        Call::other("ioctl", format!("{fd}, TIOCEXCL/TIOCNXCL"))
    });
    sigprocmask(libc::SIG_SETMASK, &old_mask)?;
    set.and(excl).map(|_| ())
}
