//! Seccomp user notification (Linux 5.0+) and the calls a broker needs to
//! act on a notified call: the listener, receive, the id check, the
//! answer, descriptor installation (5.9+, SETFD 5.14+), and taking a
//! descriptor from another process (`pidfd_getfd`, 5.6+), for
//! `--allow-unix`'s broker (SPEC §2.9, `crate::broker`), which runs in
//! PID 1, outside the workload's filters.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{Call, SysResult, check, errno, owned};

/// Installs `program` on the calling thread as a filter whose
/// `SECCOMP_RET_USER_NOTIF` calls are reported on the returned listener.
/// no_new_privs must already be set.
///
/// Where the kernel has it (5.19+), a notified call the broker has
/// received waits for its answer even when a signal arrives
/// (WAIT_KILLABLE_RECV): without it, the signal would abandon a call the
/// broker may already have made, and a restart would make it twice.
pub fn seccomp_install_listener(program: &[libc::sock_filter]) -> SysResult<OwnedFd> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    let install = |flags: libc::c_ulong| {
        check(
            // SAFETY: prog points at `program`, which outlives the call;
            // the kernel copies the filter before returning.
            unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &prog as *const libc::sock_fprog,
                )
            },
            || Call::SeccompInstall,
        )
    };
    let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    let fd = match install(listener | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
        Err(e) if e.errno() == libc::EINVAL => install(listener)?,
        other => other?,
    };
    Ok(owned(fd as RawFd))
}

/// One notified call: its id (for the answer), the calling thread, the
/// system call number and its six arguments.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    pub id: u64,
    pub pid: u32,
    pub nr: i32,
    /// The call's ABI (`AUDIT_ARCH_*`): an i386 call on x86_64 has its
    /// own numbers and 32-bit arguments.
    pub arch: u32,
    pub args: [u64; 6],
}

/// The size of the kernel's `struct seccomp_notif`, asked once.
fn notif_size() -> SysResult<usize> {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if let Some(size) = SIZE.get() {
        return Ok(*size);
    }
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    check(
        // SAFETY: sizes is a writable seccomp_notif_sizes.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_NOTIF_SIZES,
                0,
                &mut sizes as *mut libc::seccomp_notif_sizes,
            )
        },
        || Call::other("seccomp", "SECCOMP_GET_NOTIF_SIZES"),
    )?;
    let size = usize::from(sizes.seccomp_notif).max(std::mem::size_of::<libc::seccomp_notif>());
    Ok(*SIZE.get_or_init(|| size))
}

/// Receives the next notified call (blocking unless the listener is
/// polled first). ENOENT: the caller was interrupted and is gone from the
/// queue; receive again.
pub fn notif_recv(listener: RawFd) -> SysResult<Notification> {
    // The kernel's structure may be larger than libc's.
    let size = notif_size()?;
    // u64 words: aligned for the structure, zeroed as the kernel wants.
    let mut buf = vec![0u64; size.div_ceil(8)];
    let req = buf.as_mut_ptr().cast::<libc::seccomp_notif>();
    check(
        // SAFETY: buf is zeroed and at least as large as the kernel's
        // seccomp_notif.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, req) },
        || Call::other("ioctl", "SECCOMP_IOCTL_NOTIF_RECV"),
    )?;
    // SAFETY: the kernel filled the structure.
    let req = unsafe { &*req };
    Ok(Notification {
        id: req.id,
        pid: req.pid,
        nr: req.data.nr,
        arch: req.data.arch,
        args: req.data.args,
    })
}

/// Whether notification `id` is still pending: its caller has not been
/// interrupted or killed, so what was read from it still describes the
/// call (its memory could belong to another process otherwise).
pub fn notif_id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers notification `id`: the call returns `val`, or fails with
/// `errno` when it is not 0. Never CONTINUE: the broker has done the call
/// itself.
pub fn notif_respond(listener: RawFd, id: u64, val: i64, errno_out: i32) -> SysResult<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: -errno_out,
        flags: 0,
    };
    check(
        // SAFETY: resp is a valid seccomp_notif_resp.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) },
        || Call::other("ioctl", "SECCOMP_IOCTL_NOTIF_SEND"),
    )?;
    Ok(())
}

/// Puts `source` in place of the caller's descriptor `target`
/// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD, 5.14+), as
/// dup2 would, close-on-exec when `cloexec`: the container path, where
/// the broker cannot take the caller's socket. ENOENT: the call is no
/// longer waiting (nothing was installed).
pub fn notif_set_fd(
    listener: RawFd,
    id: u64,
    source: RawFd,
    target: i32,
    cloexec: bool,
) -> SysResult<()> {
    let addfd = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: source as u32,
        newfd: target as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    check(
        // SAFETY: addfd is a valid seccomp_notif_addfd.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) },
        || Call::other("ioctl", "SECCOMP_IOCTL_NOTIF_ADDFD"),
    )?;
    Ok(())
}

/// Lets the kernel make call `id` itself (SECCOMP_USER_NOTIF_FLAG_CONTINUE):
/// only for a call whose outcome no check of the broker's depends on.
pub fn notif_continue(listener: RawFd, id: u64) -> SysResult<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    check(
        // SAFETY: resp is a valid seccomp_notif_resp.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) },
        || Call::other("ioctl", "SECCOMP_IOCTL_NOTIF_SEND"),
    )?;
    Ok(())
}

/// The protocol a socket was made with, as sockfs names it ("TCP",
/// "UDPv6", "UNIX-STREAM", ...): the `system.sockprotoname` attribute of
/// the socket at `path` (a magic link to it).
pub fn socket_protocol_name(path: &[u8]) -> SysResult<Vec<u8>> {
    let c = std::ffi::CString::new(path)
        .map_err(|_| super::SysError::new(Call::other("getxattr", "path"), libc::EINVAL))?;
    let mut buf = [0u8; 64];
    let n = check(
        // SAFETY: both strings are NUL-terminated; buf is writable for
        // its length.
        unsafe {
            libc::getxattr(
                c.as_ptr(),
                c"system.sockprotoname".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            ) as i32
        },
        || Call::other("getxattr", "system.sockprotoname"),
    )?;
    let name = &buf[..n as usize];
    Ok(name.strip_suffix(&[0]).unwrap_or(name).to_vec())
}

/// A descriptor for process `pid` (pidfd_open, 5.3+).
pub fn pidfd_open(pid: u32) -> SysResult<OwnedFd> {
    pidfd_open_with(pid, 0)
}

/// A descriptor for thread `tid` (PIDFD_THREAD, 6.9+), whose
/// descriptor table `pidfd_getfd` then reads even when the thread has
/// one of its own; EINVAL before 6.9 for a thread that does not lead its
/// group.
pub fn pidfd_open_thread(tid: u32) -> SysResult<OwnedFd> {
    pidfd_open_with(tid, libc::O_EXCL as u32)
}

fn pidfd_open_with(pid: u32, flags: u32) -> SysResult<OwnedFd> {
    let fd = check(
        // SAFETY: integer arguments only.
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, flags) },
        || Call::other("pidfd_open", pid.to_string()),
    )?;
    Ok(owned(fd as RawFd))
}

/// A duplicate of process `pidfd`'s descriptor `fd` (pidfd_getfd, 5.6+):
/// the same open file description, so connecting it connects theirs.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> SysResult<OwnedFd> {
    let got = check(
        // SAFETY: integer arguments only.
        unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) },
        || Call::other("pidfd_getfd", fd.to_string()),
    )?;
    Ok(owned(got as RawFd))
}

/// Reads `len` bytes at `addr` of a process's memory through `mem` in
/// its directory `dir` of a procfs (relative to `proc`): no
/// `process_vm_readv`, which containers may refuse.
pub fn read_process_memory(proc: RawFd, dir: &str, addr: u64, len: usize) -> SysResult<Vec<u8>> {
    let path = format!("{dir}/mem");
    let mem = super::openat(
        proc,
        std::ffi::OsStr::new(&path),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?;
    let mut buf = vec![0u8; len];
    let n = check(
        // SAFETY: buf is writable for len bytes.
        unsafe {
            libc::pread(
                mem.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                len,
                addr as libc::off_t,
            )
        },
        || Call::other("pread", path.clone()),
    )?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// Reads `len` bytes at `addr` of process (or thread) `pid`'s memory
/// with one `process_vm_readv` (3.2+; the same ptrace check as
/// `pidfd_getfd`, which it goes with).
pub fn read_memory(pid: u32, addr: u64, len: usize) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    let n = check(
        // SAFETY: `local` describes buf, writable for len bytes; the
        // kernel only reads through `remote`, in the other process.
        unsafe {
            libc::syscall(
                libc::SYS_process_vm_readv,
                pid as libc::pid_t,
                &local as *const libc::iovec,
                1 as libc::c_ulong,
                &remote as *const libc::iovec,
                1 as libc::c_ulong,
                // Unsigned long arguments: passed whole, not as an int
                // whose upper half the callee would read as garbage.
                0 as libc::c_ulong,
            )
        },
        || Call::other("process_vm_readv", pid.to_string()),
    )?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// listen(2), returning the errno (0 for success) for the broker to hand
/// back.
pub fn listen_errno(fd: RawFd, backlog: i32) -> i32 {
    // SAFETY: integer arguments only.
    if unsafe { libc::listen(fd, backlog) } == 0 {
        0
    } else {
        errno()
    }
}

/// A detached procfs of the caller's PID namespace (fsopen, fsmount:
/// 5.2+), attached nowhere: only the holder of the descriptor reaches
/// it. nosuid, nodev, noexec.
pub fn detached_procfs() -> SysResult<OwnedFd> {
    let name = c"proc";
    let fs = check(
        // SAFETY: name is a NUL-terminated string.
        unsafe {
            libc::syscall(libc::SYS_fsopen, name.as_ptr(), 1 /* FSOPEN_CLOEXEC */)
        },
        || Call::MountApi {
            name: "fsopen".into(),
            args: "proc".into(),
        },
    )?;
    let fs = owned(fs as RawFd);
    check(
        // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                6, /* FSCONFIG_CMD_CREATE */
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        },
        || Call::MountApi {
            name: "fsconfig".into(),
            args: "proc, FSCONFIG_CMD_CREATE".into(),
        },
    )?;
    let attrs = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
    let mnt = check(
        // SAFETY: integer arguments only.
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                1, /* FSMOUNT_CLOEXEC */
                attrs,
            )
        },
        || Call::MountApi {
            name: "fsmount".into(),
            args: "proc".into(),
        },
    )?;
    Ok(owned(mnt as RawFd))
}

/// An integer socket option of `fd` (SO_DOMAIN, SO_TYPE).
pub fn socket_option(fd: RawFd, opt: i32) -> SysResult<i32> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    check(
        // SAFETY: val and len are valid for the call.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        },
        || Call::other("getsockopt", format!("fd {fd}, {opt}")),
    )?;
    Ok(val)
}

/// connect(2) of `fd` to the raw sockaddr bytes `addr` (as read from the
/// workload), returning the errno (0 for success) rather than failing:
/// the broker hands it back as the workload's own.
pub fn connect_raw_addr(fd: RawFd, addr: &[u8]) -> i32 {
    // sockaddr_storage-aligned copy of the bytes.
    let mut storage: libc::sockaddr_storage =
        // SAFETY: sockaddr_storage is plain data; zero is valid.
        unsafe { std::mem::zeroed() };
    let len = addr
        .len()
        .min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both ranges are valid for len bytes and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        )
    };
    // SAFETY: storage holds len initialised bytes of a sockaddr.
    let rc = unsafe {
        libc::connect(
            fd,
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if rc == 0 { 0 } else { errno() }
}

/// connect(2) of `fd` to the unix socket at `path` (relative to the
/// calling thread's working directory when it does not start with `/`),
/// returning the errno (0 for success).
pub fn connect_path_errno(fd: RawFd, path: &[u8]) -> i32 {
    let family = (libc::AF_UNIX as libc::sa_family_t).to_ne_bytes();
    if path.len() >= 108 || path.contains(&0) {
        return libc::EINVAL;
    }
    let mut addr = family.to_vec();
    addr.extend_from_slice(path);
    addr.push(0);
    connect_raw_addr(fd, &addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A child refuses nothing itself: its connect goes to us (the
    /// broker), which connects a duplicate of its socket to an allowed
    /// path and refuses any other with EACCES.
    #[test]
    fn a_broker_connects_on_the_callers_behalf() {
        let dir = std::env::temp_dir().join(format!("srtl-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let allowed = dir.join("ok.sock");
        let other = dir.join("no.sock");
        let _ = std::fs::remove_file(&allowed);
        let _ = std::fs::remove_file(&other);
        let ok = UnixListener::bind(&allowed).unwrap();
        let _no = UnixListener::bind(&other).unwrap();
        let (parent_end, child_end) = super::super::credentials_pair().unwrap();
        for (target, expect) in [(&allowed, 0), (&other, libc::EACCES)] {
            let (status_r, status_w) = super::super::pipe_cloexec().unwrap();
            match super::super::fork().unwrap() {
                super::super::Fork::Child => {
                    let program = [
                        libc::sock_filter {
                            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                            jt: 0,
                            jf: 0,
                            k: 0,
                        },
                        libc::sock_filter {
                            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                            jt: 0,
                            jf: 1,
                            k: libc::SYS_connect as u32,
                        },
                        libc::sock_filter {
                            code: (libc::BPF_RET | libc::BPF_K) as u16,
                            jt: 0,
                            jf: 0,
                            k: libc::SECCOMP_RET_USER_NOTIF,
                        },
                        libc::sock_filter {
                            code: (libc::BPF_RET | libc::BPF_K) as u16,
                            jt: 0,
                            jf: 0,
                            k: libc::SECCOMP_RET_ALLOW,
                        },
                    ];
                    let _ = super::super::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "NNP");
                    let listener = seccomp_install_listener(&program).unwrap();
                    super::super::send_fd(child_end.as_raw_fd(), listener.as_raw_fd()).unwrap();
                    drop(listener);
                    let sock = super::super::stream_socket(libc::AF_UNIX).unwrap();
                    let r = super::super::connect_unix(sock.as_raw_fd(), target.as_os_str());
                    let code = match r {
                        Ok(_) => 0,
                        Err(e) => e.errno(),
                    };
                    let _ = super::super::write_all(status_w.as_raw_fd(), &[code as u8]);
                    super::super::exit_now(0)
                }
                super::super::Fork::Parent(pid) => {
                    drop(status_w);
                    let listener = super::super::receive_fd(parent_end.as_raw_fd()).unwrap();
                    let n = notif_recv(listener.as_raw_fd()).unwrap();
                    assert_eq!(n.nr as i64, libc::SYS_connect);
                    let pidfd = pidfd_open(n.pid).unwrap();
                    let dup = pidfd_getfd(&pidfd, n.args[0] as i32).unwrap();
                    assert_eq!(
                        socket_option(dup.as_raw_fd(), libc::SO_DOMAIN).unwrap(),
                        libc::AF_UNIX
                    );
                    let addr = read_process_memory(
                        libc::AT_FDCWD,
                        &format!("/proc/{}", n.pid),
                        n.args[1],
                        n.args[2] as usize,
                    )
                    .unwrap();
                    let path = &addr[2..];
                    let path = &path[..path.iter().position(|b| *b == 0).unwrap_or(path.len())];
                    assert!(notif_id_valid(listener.as_raw_fd(), n.id));
                    let errno_out = if path == allowed.as_os_str().as_encoded_bytes() {
                        connect_raw_addr(dup.as_raw_fd(), &addr)
                    } else {
                        libc::EACCES
                    };
                    // A non-blocking socket: EINPROGRESS is not expected
                    // for a unix socket with room in its backlog.
                    notif_respond(listener.as_raw_fd(), n.id, 0, errno_out).unwrap();
                    let mut byte = [0u8; 1];
                    super::super::read(status_r.as_raw_fd(), &mut byte).unwrap();
                    super::super::wait_pid(pid).unwrap();
                    assert_eq!(i32::from(byte[0]), expect, "{}", target.display());
                }
            }
        }
        drop(ok);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
