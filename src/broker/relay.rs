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
//! * Any other connect is answered as the kernel would answer it under
//!   the workload's Landlock domain (EACCES), never let through: a
//!   CONTINUE would have the kernel read the address and the descriptor
//!   again, which the workload may have changed by then (to a unix
//!   socket and a path the broker never checked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::serve::{Reply, Shared, done, failed};
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
    /// The relay `bytes` names, if it names one.
    fn relay_of(&self, bytes: &[u8]) -> Option<RawFd> {
        let ports: Vec<u16> = self.broker.relays.iter().map(|r| r.port).collect();
        let relay = sys::parse_inet(bytes).and_then(|a| relay_port(&a, &ports))?;
        Some(self.broker.relays[relay].channel.as_raw_fd())
    }

    /// An IP connect of the workload's, its socket taken (`sock`): to a
    /// relay through the broker, else by the kernel.
    pub(super) fn relay_taken(&self, sock: RawFd, bytes: &[u8]) -> Reply {
        let Some(channel) = self.relay_of(bytes) else {
            return not_a_relay(Some(sock), bytes);
        };
        match hand_over(sock, channel) {
            Ok(errno) => done(errno),
            Err(errno) => failed(errno),
        }
    }

    /// The same where sockets are replaced: a socket of the broker's,
    /// like the workload's, connected to the relay and put in place of
    /// its descriptor `fd`.
    pub(super) fn relay_replaced(&self, n: &Notification, fd: i32, bytes: &[u8]) -> Reply {
        let Some(channel) = self.relay_of(bytes) else {
            return not_a_relay(None, bytes);
        };
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
        match hand_over(own.as_raw_fd(), channel) {
            Ok(errno) => self.install(n, &own, fd, described.cloexec, errno),
            Err(errno) => failed(errno),
        }
    }
}

/// A connect on the host's network that is not to a relay, answered as
/// the kernel would under the workload's Landlock domain: an IPv4 or
/// IPv6 one is EACCES (no TCP connect of its own); AF_UNSPEC, which
/// dissolves an association and reaches nothing, is made on the taken
/// socket (refused where sockets are replaced: there is none to make it
/// on).
fn not_a_relay(taken: Option<RawFd>, bytes: &[u8]) -> Reply {
    let family = bytes
        .get(..2)
        .map(|b| i32::from(libc::sa_family_t::from_ne_bytes([b[0], b[1]])));
    match (family, taken) {
        (Some(libc::AF_INET | libc::AF_INET6), _) => failed(libc::EACCES),
        (Some(libc::AF_UNSPEC), Some(sock)) => done(sys::connect_raw_addr(sock, bytes)),
        (Some(libc::AF_UNSPEC), None) => failed(libc::EACCES),
        _ => failed(libc::EAFNOSUPPORT),
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
