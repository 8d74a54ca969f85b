//! Descriptors and the bytes through them: pipes, read/write, close,
//! close-on-exec, descriptor flags, poll, and the kernel's random bytes.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::open;
use super::{Call, SysError, SysResult, check, check_eintr, errno, owned, uapi};

pub fn pipe_cloexec() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        || Call::other("pipe2", "O_CLOEXEC"),
    )?;
    Ok((owned(fds[0]), owned(fds[1])))
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        || unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) },
        || Call::other("read", format!("fd {fd}")),
    )?;
    Ok(n as usize)
}

pub fn write(fd: RawFd, buf: &[u8]) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: buf is readable for buf.len() bytes.
        || unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) },
        || Call::other("write", format!("fd {fd}")),
    )?;
    Ok(n as usize)
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let n = check_eintr(
            // SAFETY: buf is a valid readable buffer of buf.len() bytes.
            || unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) },
            || Call::other("write", format!("fd {fd}")),
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
            || Call::other("pwrite", format!("fd {fd}")),
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
        || Call::other("ftruncate", format!("fd {fd}")),
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
    check(unsafe { libc::close(fd) }, || {
        Call::other("close", format!("{fd}"))
    })?;
    Ok(())
}

/// Points `fd` at /dev/null, so a standard descriptor slot stays occupied.
pub fn replace_with_dev_null(fd: RawFd) -> SysResult<()> {
    let null = open(OsStr::new("/dev/null"), libc::O_RDWR)?;
    // SAFETY: dup2 on two integers; `null` stays open until after the call.
    check(unsafe { libc::dup2(null.as_raw_fd(), fd) }, || {
        Call::other("dup2", format!("/dev/null, {fd}"))
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

pub fn is_valid_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

pub fn set_cloexec(fd: RawFd) -> SysResult<()> {
    check(
        // SAFETY: F_SETFD with an integer flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
        || Call::other("fcntl", format!("{fd}, F_SETFD, FD_CLOEXEC")),
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
        || Call::other("close_range", format!("{first}, ~0, CLOSE_RANGE_CLOEXEC")),
    )?;
    Ok(())
}

pub fn get_fl(fd: RawFd) -> SysResult<i32> {
    // SAFETY: F_GETFL takes no pointer.
    check(unsafe { libc::fcntl(fd, libc::F_GETFL) }, || {
        Call::other("fcntl", format!("{fd}, F_GETFL"))
    })
}

pub fn set_fl(fd: RawFd, flags: i32) -> SysResult<()> {
    // SAFETY: F_SETFL with an integer flag word.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }, || {
        Call::other("fcntl", format!("{fd}, F_SETFL, {flags:#x}"))
    })?;
    Ok(())
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> SysResult<usize> {
    let n = check_eintr(
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        || unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) },
        || Call::other("poll", ""),
    )?;
    Ok(n as usize)
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
            return Err(SysError::new(
                Call::other("getrandom", rest.len().to_string()),
                errno(),
            ));
        }
        filled += n as usize;
    }
    Ok(())
}
