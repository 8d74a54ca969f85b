//! Landlock mode's relays (SPEC §2.8): the workload is on the host's
//! network, where Landlock refuses every TCP connect of its own. A
//! connect to a relay port on loopback is made by the broker instead, to
//! a listener of its own made for that one connect, and the connection
//! it accepts there goes to the relay process (`run/relays.rs`), which
//! forwards it to the relay's unix socket.
//!
//! Invariants:
//! * The address is read once; the socket is the caller's own (taken) or
//!   the broker's, put in place of the caller's descriptor (replaced), as
//!   for `--allow-unix` (see `mod.rs`).
//! * Only the connection of that socket is handed over: the listener is
//!   on an ephemeral loopback port, which any local process could race
//!   to; the accepted peer must be the socket's own local address, and
//!   anything else is closed. No port stays open between connects.
//! * Any other connect is let through to the kernel (CONTINUE), which
//!   makes it as the workload, under its Landlock domain: refused (TCP),
//!   or harmless (AF_UNSPEC, a disconnect). Whatever the workload wrote
//!   by then, the kernel checks what it uses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::serve::{Mechanism, Reply, Shared, done, failed};
use crate::sys::{self, Notification};

/// How long the broker waits for its own connection to reach its own
/// listener (loopback: at once, unless the machine is overloaded).
const ACCEPT_WITHIN: Duration = Duration::from_secs(5);

/// Whether `addr` names a relay port as the sandbox sees it: 127.0.0.1
/// or ::1 (or ::ffff:127.0.0.1), as the relays listen in namespace mode.
fn relay_port(addr: &SocketAddr, ports: &[u16]) -> Option<usize> {
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip == Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => {
            ip == Ipv6Addr::LOCALHOST || ip.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST)
        }
    };
    if !loopback {
        return None;
    }
    ports.iter().position(|p| *p == addr.port())
}

impl Shared {
    /// A connect of the workload's, in Landlock mode with relays.
    pub(super) fn relay_connect(&self, n: &Notification, fd: i32, addr: u64, len: u32) -> Reply {
        let take = self.broker.mechanism == Mechanism::TakeSocket;
        let proc = self.broker.proc.as_raw_fd();
        let bytes = if take {
            self.copy_address(n, addr, len, |a, l| sys::read_memory(n.pid, a, l))
        } else {
            self.copy_address(n, addr, len, |a, l| {
                sys::read_process_memory(proc, &n.pid.to_string(), a, l)
            })
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(reply) => return reply,
        };
        let ports: Vec<u16> = self.broker.relays.iter().map(|r| r.port).collect();
        let Some(relay) = sys::parse_inet(&bytes).and_then(|a| relay_port(&a, &ports)) else {
            return if self.still_waiting(n) {
                Reply::Continue
            } else {
                Reply::Gone
            };
        };
        let channel = self.broker.relays[relay].channel.as_raw_fd();
        if take {
            let socket = match self.confirm(n, self.take_socket(n.pid, fd)) {
                Ok(socket) => socket,
                Err(reply) => return reply,
            };
            return match hand_over(socket.as_raw_fd(), channel) {
                Ok(errno) => done(errno),
                Err(errno) => failed(errno),
            };
        }
        let described = match self.confirm(n, self.describe(n.pid, fd)) {
            Ok(described) => described,
            Err(reply) => return reply,
        };
        if described.kind != libc::SOCK_STREAM {
            return failed(libc::EACCES);
        }
        let mut kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
        if described.nonblocking {
            kind |= libc::SOCK_NONBLOCK;
        }
        let own = match sys::socket_of(described.domain, kind, described.protocol) {
            Ok(own) => own,
            Err(e) => return failed(e.errno()),
        };
        let errno = match hand_over(own.as_raw_fd(), channel) {
            Ok(errno) => errno,
            Err(errno) => return failed(errno),
        };
        self.install(n, &own, fd, described.cloexec, errno)
    }
}

/// Connects `socket` to a one-connect listener of the broker's, accepts
/// that connection (only that one) and hands it to the relay on
/// `channel`; the connect's errno (0 or EINPROGRESS), or why it failed.
fn hand_over(socket: RawFd, channel: RawFd) -> Result<i32, i32> {
    let family = sys::socket_option(socket, libc::SO_DOMAIN).map_err(|e| e.errno())?;
    let loopback: SocketAddr = match family {
        libc::AF_INET => (Ipv4Addr::LOCALHOST, 0).into(),
        libc::AF_INET6 => (Ipv6Addr::LOCALHOST, 0).into(),
        _ => return Err(libc::EAFNOSUPPORT),
    };
    let listener = one_connect_listener(&loopback).map_err(|e| e.errno())?;
    let target = sys::local_address(listener.as_raw_fd()).map_err(|e| e.errno())?;
    let errno = sys::connect_raw_addr(socket, &sys::inet_bytes(&target));
    if errno != 0 && errno != libc::EINPROGRESS {
        return Err(errno);
    }
    let expected = sys::local_address(socket).map_err(|e| e.errno())?;
    let accepted = accept_from(&listener, expected)?;
    sys::send_fd(channel, accepted.as_raw_fd()).map_err(|_| libc::ECONNREFUSED)?;
    Ok(errno)
}

fn one_connect_listener(addr: &SocketAddr) -> sys::SysResult<OwnedFd> {
    let listener = sys::stream_socket(sys::family_of(addr))?;
    sys::bind_inet(listener.as_raw_fd(), addr)?;
    sys::listen(listener.as_raw_fd(), 8)?;
    Ok(listener)
}

/// The connection from `expected` on `listener`; any other is closed.
fn accept_from(listener: &OwnedFd, expected: SocketAddr) -> Result<OwnedFd, i32> {
    let deadline = Instant::now() + ACCEPT_WITHIN;
    loop {
        match sys::accept_with_peer(listener.as_raw_fd()) {
            Ok(Some((socket, peer))) if peer == expected => return Ok(socket),
            // Someone else raced to the port: not ours to relay.
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(e.errno()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(libc::ETIMEDOUT);
        }
        let mut pfd = [libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let _ = sys::poll(&mut pfd, left.as_millis().min(i32::MAX as u128) as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_relay_ports_are_relays() {
        let ports = [3128, 8080];
        let at = |s: &str| relay_port(&s.parse().unwrap(), &ports);
        assert_eq!(at("127.0.0.1:3128"), Some(0));
        assert_eq!(at("[::1]:8080"), Some(1));
        assert_eq!(at("[::ffff:127.0.0.1]:3128"), Some(0));
        assert_eq!(at("127.0.0.1:22"), None);
        assert_eq!(at("127.0.0.2:3128"), None);
        assert_eq!(at("10.0.0.1:3128"), None);
        assert_eq!(at("[::2]:3128"), None);
    }
}
