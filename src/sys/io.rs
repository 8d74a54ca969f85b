//! The byte pump's kernel side: splice through non-blocking pipes and
//! epoll. Used by the relay processes and `connect`.

use std::os::fd::{OwnedFd, RawFd};

use super::{Call, SysResult, check, check_eintr, owned};

/// splice(2) of up to `len` bytes, non-blocking on the pipe side (the
/// sockets are non-blocking themselves). `Ok(0)` is end of input.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: null offsets are required for pipes and sockets.
        || unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        },
        || Call::other("splice", format!("fd {from} -> fd {to}")),
    )?;
    Ok(n as usize)
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe_nonblock() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        || Call::other("pipe2", "O_NONBLOCK"),
    )?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Asks for a pipe buffer of `size` bytes (F_SETPIPE_SZ); returns the
/// size the kernel granted.
pub fn set_pipe_size(fd: RawFd, size: usize) -> SysResult<usize> {
    let granted = check(
        // SAFETY: F_SETPIPE_SZ takes an integer.
        unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int) },
        || Call::other("fcntl", format!("{fd}, F_SETPIPE_SZ, {size}")),
    )?;
    Ok(granted as usize)
}

pub fn epoll_create() -> SysResult<OwnedFd> {
    // SAFETY: integer argument.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }, || {
        Call::other("epoll_create1", "")
    })?;
    Ok(owned(fd))
}

/// epoll_ctl ADD/MOD/DEL. For DEL, `events` is ignored.
pub fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, events: u32, token: u64) -> SysResult<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    check(
        // SAFETY: ev is a live epoll_event.
        unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) },
        || Call::other("epoll_ctl", format!("{op}, fd {fd}")),
    )?;
    Ok(())
}

/// Waits for events; returns how many of `events` were filled.
pub fn epoll_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: events is a writable array of events.len() entries.
        || unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, timeout_ms) },
        || Call::other("epoll_wait", ""),
    )?;
    Ok(n as usize)
}
