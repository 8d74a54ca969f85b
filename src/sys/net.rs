//! Sockets: TCP and unix stream sockets for the byte pump (every one
//! non-blocking and close-on-exec), loopback up in a new network namespace,
//! and the credentials exchange that translates a pid across namespaces.

use std::ffi::OsStr;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use super::{Call, SysError, SysResult, check, errno, owned};

/// A socket address in the C layout, for bind/connect.
enum CAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
    Unix(libc::sockaddr_un, libc::socklen_t),
}

impl CAddr {
    fn inet(addr: &SocketAddr) -> CAddr {
        // SAFETY: the sockaddr structs are plain data; zero is a valid
        // initial value for every field.
        unsafe {
            match addr {
                SocketAddr::V4(a) => {
                    let mut s: libc::sockaddr_in = zeroed();
                    s.sin_family = libc::AF_INET as libc::sa_family_t;
                    s.sin_port = a.port().to_be();
                    s.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                    CAddr::V4(s)
                }
                SocketAddr::V6(a) => {
                    let mut s: libc::sockaddr_in6 = zeroed();
                    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    s.sin6_port = a.port().to_be();
                    s.sin6_addr.s6_addr = a.ip().octets();
                    CAddr::V6(s)
                }
            }
        }
    }

    fn unix(path: &OsStr) -> SysResult<CAddr> {
        // SAFETY: sockaddr_un is plain data.
        let mut s: libc::sockaddr_un = unsafe { zeroed() };
        let bytes = path.as_bytes();
        if bytes.len() >= s.sun_path.len() {
            return Err(SysError::new(
                Call::Own(format!(
                    "unix socket path {path:?} is longer than {} bytes",
                    s.sun_path.len() - 1
                )),
                libc::ENAMETOOLONG,
            ));
        }
        s.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in s.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        Ok(CAddr::Unix(s, len))
    }

    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            CAddr::V4(s) => (
                (s as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as _,
            ),
            CAddr::V6(s) => (
                (s as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as _,
            ),
            CAddr::Unix(s, len) => ((s as *const libc::sockaddr_un).cast(), *len),
        }
    }
}

/// A new non-blocking, close-on-exec stream socket.
/// socket(2) with any type and protocol (close-on-exec is the caller's
/// to ask for in `kind`).
pub fn socket_of(domain: i32, kind: i32, protocol: i32) -> SysResult<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = check(unsafe { libc::socket(domain, kind, protocol) }, || {
        Call::other("socket", format!("{domain}, {kind}, {protocol}"))
    })?;
    Ok(owned(fd))
}

pub fn stream_socket(domain: i32) -> SysResult<OwnedFd> {
    let fd = check(
        // SAFETY: socket takes integers.
        unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        },
        || Call::other("socket", format!("{domain}, SOCK_STREAM")),
    )?;
    Ok(owned(fd))
}

pub fn family_of(addr: &SocketAddr) -> i32 {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

pub fn bind_inet(fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
    let c = CAddr::inet(addr);
    let (ptr, len) = c.as_ptr();
    // SAFETY: ptr/len describe a live sockaddr of the right family.
    check(unsafe { libc::bind(fd, ptr, len) }, || {
        Call::other("bind", format!("{addr}"))
    })?;
    Ok(())
}

pub fn bind_unix(fd: RawFd, path: &OsStr) -> SysResult<()> {
    let c = CAddr::unix(path)?;
    let (ptr, len) = c.as_ptr();
    // SAFETY: ptr/len describe a live sockaddr_un.
    check(unsafe { libc::bind(fd, ptr, len) }, || {
        Call::other("bind", format!("{path:?}"))
    })?;
    Ok(())
}

pub fn listen(fd: RawFd, backlog: i32) -> SysResult<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::listen(fd, backlog) }, || {
        Call::other("listen", format!("fd {fd}"))
    })?;
    Ok(())
}

/// accept4 (non-blocking, close-on-exec); `Ok(None)` when nothing waits.
pub fn accept(fd: RawFd) -> SysResult<Option<OwnedFd>> {
    loop {
        // SAFETY: null address pointers ask for no peer address.
        let ret = unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if ret >= 0 {
            return Ok(Some(owned(ret)));
        }
        match errno() {
            libc::EINTR | libc::ECONNABORTED => continue,
            libc::EAGAIN => return Ok(None),
            e => return Err(SysError::new(Call::other("accept", format!("fd {fd}")), e)),
        }
    }
}

/// Outcome of a non-blocking connect.
#[derive(Debug, PartialEq, Eq)]
pub enum Connect {
    Done,
    /// TCP: wait for writability, then read SO_ERROR.
    InProgress,
    /// Unix: the listener's backlog is full; try again shortly.
    Again,
}

fn connect_raw(fd: RawFd, c: &CAddr, what: impl FnOnce() -> Call) -> SysResult<Connect> {
    let (ptr, len) = c.as_ptr();
    loop {
        // SAFETY: ptr/len describe a live sockaddr.
        if unsafe { libc::connect(fd, ptr, len) } == 0 {
            return Ok(Connect::Done);
        }
        match errno() {
            libc::EINTR => continue,
            libc::EINPROGRESS => return Ok(Connect::InProgress),
            libc::EAGAIN => return Ok(Connect::Again),
            e => return Err(SysError::new(what(), e)),
        }
    }
}

pub fn connect_inet(fd: RawFd, addr: &SocketAddr) -> SysResult<Connect> {
    connect_raw(fd, &CAddr::inet(addr), || {
        Call::other("connect", format!("{addr}"))
    })
}

pub fn connect_unix(fd: RawFd, path: &OsStr) -> SysResult<Connect> {
    connect_raw(fd, &CAddr::unix(path)?, || {
        Call::other("connect", format!("{path:?}"))
    })
}

fn getsockopt_int(fd: RawFd, level: i32, opt: i32) -> SysResult<i32> {
    let mut val: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    check(
        // SAFETY: val/len describe a live c_int.
        unsafe {
            libc::getsockopt(
                fd,
                level,
                opt,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        },
        || Call::other("getsockopt", format!("fd {fd}, {level}, {opt}")),
    )?;
    Ok(val)
}

/// The pending error of a socket (SO_ERROR): 0 once a connect succeeded.
pub fn socket_error(fd: RawFd) -> SysResult<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)
}

pub fn setsockopt_int(fd: RawFd, level: i32, opt: i32, val: i32) -> SysResult<()> {
    check(
        // SAFETY: the value is a live c_int of the stated size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        },
        || Call::other("setsockopt", format!("fd {fd}, {level}, {opt}, {val}")),
    )?;
    Ok(())
}

/// shutdown(SHUT_WR): the peer reads EOF, the other direction stays open.
pub fn shutdown_write(fd: RawFd) -> SysResult<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::shutdown(fd, libc::SHUT_WR) }, || {
        Call::other("shutdown", format!("fd {fd}, SHUT_WR"))
    })?;
    Ok(())
}

/// Sets IFF_UP on the loopback interface of the current network namespace.
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: socket takes integers; the result is owned immediately.
    let sock = owned(check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) },
        || Call::other("socket", "AF_INET, SOCK_DGRAM"),
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
            || Call::other("ioctl", "lo, SIOCGIFFLAGS"),
        )?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req),
            || Call::other("ioctl", "lo, SIOCSIFFLAGS, IFF_UP"),
        )?;
    }
    Ok(())
}

/// A connected pair of unix datagram-like sockets (SOCK_SEQPACKET,
/// close-on-exec) whose first end receives senders' credentials
/// (SO_PASSCRED): the kernel translates a sender's pid into the
/// receiver's PID namespace.
pub fn credentials_pair() -> SysResult<(OwnedFd, OwnedFd)> {
    let (receiver, sender) = seqpacket_pair(false)?;
    setsockopt_int(receiver.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)?;
    Ok((receiver, sender))
}

fn one_byte(byte: &mut [u8; 1]) -> libc::iovec {
    libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    }
}

/// A message of one byte (`iov`) with `control` bytes of `space` for the
/// credentials (room for one cmsghdr carrying a ucred, aligned as the
/// kernel wants): what both ends of the exchange pass.
fn credentials_message(
    iov: &mut libc::iovec,
    space: &mut [u64; 8],
    control: usize,
) -> libc::msghdr {
    // SAFETY: msghdr is plain data, valid all-zero.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = control as _;
    msg
}

/// Sends one byte with this process's own credentials attached.
pub fn send_own_credentials(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain getters.
    let cred = unsafe {
        libc::ucred {
            pid: libc::getpid(),
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    };
    let mut byte = [0u8; 1];
    let mut iov = one_byte(&mut byte);
    let mut space = [0u64; 8];
    // SAFETY: CMSG_SPACE is arithmetic.
    let used = unsafe { libc::CMSG_SPACE(size_of::<libc::ucred>() as u32) } as usize;
    let msg = credentials_message(&mut iov, &mut space, used);
    // SAFETY: every pointer in msg refers to a live local buffer of the
    // stated length; the CMSG macros stay inside `space`, which is larger
    // than CMSG_SPACE(sizeof(ucred)).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_CREDENTIALS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::ucred>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>(), cred);
        check(libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) as i32, || {
            Call::other("sendmsg", "SCM_CREDENTIALS")
        })?;
    }
    Ok(())
}

/// Receives one message sent with [`send_own_credentials`] and returns the
/// sender's pid as this process's PID namespace sees it; None at EOF.
pub fn receive_credentials_pid(fd: RawFd) -> SysResult<Option<i32>> {
    let mut byte = [0u8; 1];
    let mut iov = one_byte(&mut byte);
    let mut space = [0u64; 8];
    let room = size_of::<[u64; 8]>();
    let mut msg = credentials_message(&mut iov, &mut space, room);
    // SAFETY: as in send_own_credentials; the kernel fills at most
    // msg_controllen bytes of `space`, and CMSG_NXTHDR stays within it.
    unsafe {
        let n = loop {
            let n = libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || super::errno() != libc::EINTR {
                break n;
            }
        };
        check(n as i32, || Call::other("recvmsg", "SCM_CREDENTIALS"))?;
        if n == 0 {
            return Ok(None);
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                return Ok(Some(cred.pid));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(None)
    }
}

/// Sends descriptor `fd` over the unix socket `sock` (SCM_RIGHTS, one
/// byte of data).
pub fn send_fd(sock: RawFd, fd: RawFd) -> SysResult<()> {
    let mut byte = [0u8; 1];
    let mut iov = one_byte(&mut byte);
    let mut space = [0u64; 8];
    // SAFETY: CMSG_SPACE is arithmetic.
    let used = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
    let msg = credentials_message(&mut iov, &mut space, used);
    // SAFETY: every pointer in msg refers to a live local buffer; the CMSG
    // macros stay inside `space`, larger than CMSG_SPACE(sizeof(int)).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        check(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) as i32, || {
            Call::other("sendmsg", "SCM_RIGHTS")
        })?;
    }
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`] (close-on-exec).
pub fn receive_fd(sock: RawFd) -> SysResult<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = one_byte(&mut byte);
    let mut space = [0u64; 8];
    let mut msg = credentials_message(&mut iov, &mut space, size_of::<[u64; 8]>());
    // SAFETY: as in send_fd; the kernel fills at most msg_controllen bytes.
    unsafe {
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        check(n as i32, || Call::other("recvmsg", "SCM_RIGHTS"))?;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                return Ok(owned(fd));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Err(SysError::new(
        Call::Own("no descriptor received".into()),
        libc::EBADMSG,
    ))
}

/// The IPv4 or IPv6 address in raw sockaddr bytes (as a connect names
/// it), or None for another family or a short buffer (the kernel wants
/// 16 bytes for IPv4, 24 for IPv6).
pub fn parse_inet(bytes: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(libc::sa_family_t::from_ne_bytes([
        *bytes.first()?,
        *bytes.get(1)?,
    ]));
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    match family {
        libc::AF_INET if bytes.len() >= 16 => {
            let ip: [u8; 4] = bytes[4..8].try_into().ok()?;
            Some(SocketAddr::from((ip, port)))
        }
        libc::AF_INET6 if bytes.len() >= 24 => {
            let ip: [u8; 16] = bytes[8..24].try_into().ok()?;
            Some(SocketAddr::from((ip, port)))
        }
        _ => None,
    }
}

/// `addr` as raw sockaddr bytes, for [`connect_raw_addr`](super::connect_raw_addr).
pub fn inet_bytes(addr: &SocketAddr) -> Vec<u8> {
    let c = CAddr::inet(addr);
    let (ptr, len) = c.as_ptr();
    // SAFETY: ptr points at a live sockaddr of len bytes.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }.to_vec()
}

/// The local address of the IPv4 or IPv6 socket `fd` (getsockname).
pub fn local_address(fd: RawFd) -> SysResult<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    check(
        // SAFETY: storage and len describe a live buffer.
        unsafe {
            libc::getsockname(
                fd,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        },
        || Call::other("getsockname", format!("fd {fd}")),
    )?;
    storage_address(&storage, len).ok_or_else(|| {
        SysError::new(
            Call::other("getsockname", format!("fd {fd}")),
            libc::EAFNOSUPPORT,
        )
    })
}

fn storage_address(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = (len as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: storage holds at least len bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts((storage as *const libc::sockaddr_storage).cast::<u8>(), len)
    };
    parse_inet(bytes)
}

/// accept4(2) of one connection on the listening IPv4 or IPv6 socket
/// `fd` (non-blocking and close-on-exec), with its peer's address; None
/// when none is waiting.
pub fn accept_with_peer(fd: RawFd) -> SysResult<Option<(OwnedFd, SocketAddr)>> {
    loop {
        // SAFETY: sockaddr_storage is plain data; zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: storage and len describe a live buffer.
        let ret = unsafe {
            libc::accept4(
                fd,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if ret >= 0 {
            let socket = owned(ret);
            return match storage_address(&storage, len) {
                Some(peer) => Ok(Some((socket, peer))),
                None => Err(SysError::new(
                    Call::other("accept4", "peer"),
                    libc::EAFNOSUPPORT,
                )),
            };
        }
        match errno() {
            libc::EINTR | libc::ECONNABORTED => continue,
            libc::EAGAIN => return Ok(None),
            e => return Err(SysError::new(Call::other("accept4", format!("fd {fd}")), e)),
        }
    }
}

/// A connected pair of unix SOCK_SEQPACKET sockets, close-on-exec; with
/// `second_nonblocking`, the second is non-blocking (an event loop's end).
pub fn seqpacket_pair(second_nonblocking: bool) -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(
        // SAFETY: fds has room for the two descriptors socketpair writes.
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        || Call::other("socketpair", "AF_UNIX, SOCK_SEQPACKET"),
    )?;
    let (first, second) = (owned(fds[0]), owned(fds[1]));
    if second_nonblocking {
        check(
            // SAFETY: fcntl on a descriptor we own.
            unsafe { libc::fcntl(second.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) },
            || Call::other("fcntl", "O_NONBLOCK"),
        )?;
    }
    Ok((first, second))
}
