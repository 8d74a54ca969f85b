//! [`Mechanism::ReplaceSocket`](super::Mechanism), for containers that
//! refuse `pidfd_getfd` and `process_vm_readv` (Docker's default profile
//! without CAP_SYS_PTRACE): the broker reads the address through
//! /proc/PID/mem, makes a socket of its own like the caller's, connects
//! it where the caller may go, and installs it over the caller's
//! descriptor (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD), with the caller's
//! O_NONBLOCK and close-on-exec.
//!
//! Nothing of the caller's is re-read after the check: a `dup2` over the
//! descriptor during the call is simply replaced, as dup2 would replace
//! it. What a fresh socket cannot carry over is what the caller did to
//! its own before the connect (a bind, socket options): a documented
//! limit of this path.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::call::is_unix_address;
use super::route::Route;
use super::serve::{Reply, Shared, done, failed};
use crate::log::trace;
use crate::sys::{self, Notification};

/// What the caller's descriptor is, read from its procfs entries.
pub(super) struct Described {
    /// The socket's inode (sockfs).
    pub ino: u32,
    pub domain: i32,
    pub kind: i32,
    pub protocol: i32,
    pub nonblocking: bool,
    pub cloexec: bool,
}

/// The family, type and protocol sockfs's protocol name stands for.
fn by_protocol_name(name: &[u8]) -> Option<(i32, i32, i32)> {
    use libc::{AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM};
    Some(match name {
        b"TCP" => (AF_INET, SOCK_STREAM, libc::IPPROTO_TCP),
        b"TCPv6" => (AF_INET6, SOCK_STREAM, libc::IPPROTO_TCP),
        b"MPTCP" => (AF_INET, SOCK_STREAM, libc::IPPROTO_MPTCP),
        b"MPTCPv6" => (AF_INET6, SOCK_STREAM, libc::IPPROTO_MPTCP),
        b"UDP" => (AF_INET, SOCK_DGRAM, libc::IPPROTO_UDP),
        b"UDPv6" => (AF_INET6, SOCK_DGRAM, libc::IPPROTO_UDP),
        b"UDP-Lite" => (AF_INET, SOCK_DGRAM, libc::IPPROTO_UDPLITE),
        b"UDPLITEv6" => (AF_INET6, SOCK_DGRAM, libc::IPPROTO_UDPLITE),
        b"PING" => (AF_INET, SOCK_DGRAM, libc::IPPROTO_ICMP),
        b"PINGv6" => (AF_INET6, SOCK_DGRAM, libc::IPPROTO_ICMPV6),
        _ => return None,
    })
}

/// The flags line of an fdinfo file, as (O_NONBLOCK, O_CLOEXEC).
fn open_flags(fdinfo: &str) -> Option<(bool, bool)> {
    let octal = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))?
        .trim();
    let flags = i32::from_str_radix(octal, 8).ok()?;
    Some((flags & libc::O_NONBLOCK != 0, flags & libc::O_CLOEXEC != 0))
}

impl Shared {
    /// Describes thread `tid`'s descriptor `fd`: EBADF when it is not
    /// open, ENOTSOCK when it is no socket.
    pub(super) fn describe(&self, tid: u32, fd: i32) -> Result<Described, i32> {
        let proc = self.broker.proc.as_raw_fd();
        let link = sys::openat(
            proc,
            OsStr::new(&format!("{tid}/fd/{fd}")),
            libc::O_PATH | libc::O_CLOEXEC,
            0,
        )
        .map_err(|_| libc::EBADF)?;
        let st = sys::fstat(link.as_raw_fd()).map_err(|e| e.errno())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(libc::ENOTSOCK);
        }
        let ino = st.st_ino as u32;
        // Our O_PATH descriptor's number is a path in this thread's
        // working directory (PID 1's fd directory).
        let name = sys::socket_protocol_name(link.as_raw_fd().to_string().as_bytes())
            .map_err(|e| e.errno())?;
        let (domain, kind, protocol) = if name.starts_with(b"UNIX") {
            let record = sys::unix_socket(ino, None).ok().flatten();
            (libc::AF_UNIX, record.map_or(-1, |r| r.kind), 0)
        } else {
            by_protocol_name(&name).ok_or_else(|| {
                trace!(
                    "broker: no connect on behalf of a {} socket",
                    String::from_utf8_lossy(&name)
                );
                libc::EACCES
            })?
        };
        let mut info = vec![0u8; 512];
        let fdinfo = sys::openat(
            proc,
            OsStr::new(&format!("{tid}/fdinfo/{fd}")),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
        .map_err(|e| e.errno())?;
        let n = sys::read(fdinfo.as_raw_fd(), &mut info).map_err(|e| e.errno())?;
        let (nonblocking, cloexec) =
            open_flags(&String::from_utf8_lossy(&info[..n])).ok_or(libc::EBADF)?;
        Ok(Described {
            ino,
            domain,
            kind,
            protocol,
            nonblocking,
            cloexec,
        })
    }

    /// Whether thread `tid` is in the broker's own network namespace: a
    /// socket of the broker's reaches what the caller's would only there
    /// (abstract names, IP addresses), so elsewhere (a sandbox nested
    /// inside with a network namespace of its own) no such connect is
    /// made on its behalf.
    fn shares_network_namespace(&self, tid: u32) -> bool {
        let proc = self.broker.proc.as_raw_fd();
        let place = |name: &str| sys::place_of(proc, OsStr::new(name), 0).ok().flatten();
        let theirs = place(&format!("{tid}/ns/net"));
        theirs.is_some() && theirs == place("self/ns/net")
    }

    pub(super) fn replace_and_connect(
        &self,
        n: &Notification,
        fd: i32,
        addr: u64,
        len: u32,
    ) -> Reply {
        let proc = self.broker.proc.as_raw_fd();
        let read = |addr, len| sys::read_process_memory(proc, &n.pid.to_string(), addr, len);
        let bytes = match self.copy_address(n, addr, len, read) {
            Ok(bytes) => bytes,
            Err(reply) => return reply,
        };
        if self.broker.tcp_refused && !is_unix_address(&bytes) {
            return self.relay_replaced(n, fd, &bytes);
        }
        let described = match self.confirm(n, self.describe(n.pid, fd)) {
            Ok(described) => described,
            Err(reply) => return reply,
        };
        let own = match self.connect_own(n.pid, &described, &bytes) {
            Ok(own) => own,
            Err(errno) => return failed(errno),
        };
        let (socket, errno) = own;
        if errno != 0 && errno != libc::EINPROGRESS {
            // A failed connect leaves the caller's socket as it was.
            return failed(errno);
        }
        self.install(n, &socket, fd, described.cloexec, errno)
    }

    /// Puts the broker's connected `socket` in place of the caller's
    /// descriptor `fd` (ADDFD with SETFD, its close-on-exec flag kept) and
    /// answers the call with `errno`.
    pub(super) fn install(
        &self,
        n: &Notification,
        socket: &OwnedFd,
        fd: i32,
        cloexec: bool,
        errno: i32,
    ) -> Reply {
        match sys::notif_set_fd(
            self.broker.listener.as_raw_fd(),
            n.id,
            socket.as_raw_fd(),
            fd,
            cloexec,
        ) {
            Ok(()) => done(errno),
            Err(e) if e.errno() == libc::ENOENT => Reply::Gone,
            Err(e) => failed(e.errno()),
        }
    }

    /// A socket of the broker's like the caller's, connected where the
    /// caller may go, and the connect's errno (0, EINPROGRESS, or why
    /// it failed); Err when it may not go there at all.
    fn connect_own(&self, tid: u32, d: &Described, bytes: &[u8]) -> Result<(OwnedFd, i32), i32> {
        let mut kind = d.kind | libc::SOCK_CLOEXEC;
        if d.nonblocking {
            kind |= libc::SOCK_NONBLOCK;
        }
        let make = || sys::socket_of(d.domain, kind, d.protocol).map_err(|e| e.errno());
        if d.domain != libc::AF_UNIX {
            if !self.shares_network_namespace(tid) {
                return Err(libc::EACCES);
            }
            let socket = make()?;
            let errno = sys::connect_raw_addr(socket.as_raw_fd(), bytes);
            return Ok((socket, errno));
        }
        if d.kind != libc::SOCK_STREAM && d.kind != libc::SOCK_SEQPACKET {
            // A datagram socket can only have come from outside.
            return Err(libc::EACCES);
        }
        match self.route(tid, bytes)? {
            Route::Via(target) => {
                let socket = make()?;
                let errno = target.connect(socket.as_raw_fd());
                Ok((socket, errno))
            }
            Route::Address if self.shares_network_namespace(tid) => {
                let socket = make()?;
                let errno = sys::connect_raw_addr(socket.as_raw_fd(), bytes);
                Ok((socket, errno))
            }
            Route::Address => Err(libc::EACCES),
        }
    }

    /// A listen without `pidfd_getfd`: the broker cannot listen on the
    /// caller's socket, and a socket of its own would not be bound where
    /// the caller's is. So it records the socket the descriptor names (by
    /// inode, as unix_diag knows it) and lets the kernel make the call.
    /// CONTINUE is safe here: listen has no memory argument, and nothing
    /// is decided by the check. A `dup2` in between only means another of
    /// the caller's own sockets was recorded, whose file can then reach
    /// that socket, which the caller holds.
    pub(super) fn record_and_continue(&self, n: &Notification, fd: i32) -> Reply {
        // On the host's network (Landlock mode with --unshare-net) a TCP
        // listen would bind a host port, and a CONTINUE could listen on
        // a TCP socket dup2()ed over the unix one checked here: every
        // listen is refused (reported as unix-servers-refused).
        if self.broker.tcp_refused {
            return failed(libc::EACCES);
        }
        if let Ok(d) = self.describe(n.pid, fd)
            && d.domain == libc::AF_UNIX
        {
            self.remember_server(d.ino);
        }
        if self.still_waiting(n) {
            Reply::Continue
        } else {
            Reply::Gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_flags_give_nonblocking_and_cloexec() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t9\nino:\t12345\n";
        assert_eq!(open_flags(text), Some((true, true)));
        assert_eq!(open_flags("pos:\t0\nflags:\t02\n"), Some((false, false)));
        assert_eq!(open_flags("pos:\t0\n"), None);
    }

    #[test]
    fn protocol_names_give_the_socket_to_make() {
        assert_eq!(
            by_protocol_name(b"TCPv6"),
            Some((libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP))
        );
        assert_eq!(
            by_protocol_name(b"UDP"),
            Some((libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP))
        );
        assert_eq!(by_protocol_name(b"NETLINK"), None);
    }
}
