//! The byte pump shared by the in-sandbox relays, the `relay` subcommand
//! and `connect`: one thread, one epoll set, no process per connection.
//!
//! Runs in a relay process (no capabilities, not under seccomp) or in the
//! `connect` process. Each connection is a [`Pair`] of two sides and two
//! flows (one per direction). A flow starts with read/write through one
//! scratch buffer shared by the whole pump, which is cheapest for the short
//! exchanges most connections are; once a read fills that buffer the flow
//! is carrying bulk data and switches to splice(2) through a pipe of its
//! own, so the bytes never enter user space. An end that cannot splice (a
//! terminal) stays on read/write. A flow holds at most one pipe (256 KiB
//! when the kernel grants it) or one 64 KiB leftover buffer, and reads
//! from its source only when that has room, so a slow reader stops us reading from its peer:
//! memory per connection is bounded whatever the amount of data. End of
//! input in one direction becomes `shutdown(SHUT_WR)` on the other side (or
//! closing stdout), and the other direction keeps flowing; a peer that went
//! away ends only the direction towards it (whose source is then read and
//! discarded to its end), so what that peer sent before leaving is still
//! delivered. Any other error ends that connection only.

mod flow;
mod stdio;

use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::log::trace;
use crate::sys::{self, Connect};
use flow::{FLOW_CAPACITY, Flow, Side, out_of_resources, progress};
pub use stdio::StdioGuard;

/// How long accepting pauses after running out of descriptors.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);
/// A full unix-socket backlog is retried this often, this many times.
const CONNECT_RETRY: Duration = Duration::from_millis(5);
const CONNECT_RETRIES: u32 = 1000;

const EDGE: u32 = libc::EPOLLET as u32;
const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const HUP_OR_ERR: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Token layout: pair slot << 8 | tag. Tags 0/1: side 0/1's read end (its
/// write end too for sockets); 2/3: side 0/1's separate write end (stdout).
const TAG_BITS: u64 = 8;
const TAG_LISTENER: u64 = 0xfe;
const TAG_STOP: u64 = 0xff;

/// Where a relay forwards each accepted connection.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// A unix socket path (an in-sandbox relay names its pinned socket
    /// this way: `N`, its descriptor, from `/proc/self/fd` as the working
    /// directory).
    Unix(OsString),
    /// A literal TCP address; connections get TCP_NODELAY and keepalive.
    Tcp(SocketAddr),
    /// Loopback at a port, as a server there may listen: 127.0.0.1, and
    /// [::1] when 127.0.0.1 refuses (a server that bound `localhost` to
    /// ::1 alone, as Node 17+ does). As `Tcp` otherwise.
    Loopback(u16),
}

enum State {
    /// Waiting for the upstream connect; `retries` counts full backlogs.
    Connecting {
        retries: u32,
        retry_at: Option<Instant>,
    },
    Open,
}

/// A client and its upstream (or stdin/stdout and the proxy).
struct Pair {
    sides: [Side; 2],
    /// flows[0]: side 0 -> side 1; flows[1]: side 1 -> side 0.
    flows: [Flow; 2],
    state: State,
    upstream: Option<usize>,
    /// `Upstream::Loopback`: 127.0.0.1 refused, [::1] is being tried.
    on_ipv6: bool,
}

struct Listener {
    fd: OwnedFd,
    upstream: usize,
    /// A unix socket that brings connections already accepted elsewhere
    /// (SCM_RIGHTS), instead of a listening socket. It is edge-triggered
    /// and drained on each event (its end is one event, not a stream of
    /// them); a listening socket is level-triggered and accepts one
    /// connection per event, so a lone connection costs no accept that
    /// finds the queue empty, and a burst is taken in turns with the
    /// connections already open.
    handoff: bool,
}

/// The event loop.
pub struct Pump {
    epoll: OwnedFd,
    pairs: Vec<Option<Pair>>,
    /// Slots that may be reused (only between batches of events, so a
    /// stale event can never reach a new pair in the same slot).
    free: Vec<usize>,
    closed_this_batch: Vec<usize>,
    listeners: Vec<Listener>,
    upstreams: Vec<Upstream>,
    accept_paused_until: Option<Instant>,
    /// Slots whose upstream connect waits for a retry (a full unix
    /// backlog): the timers look at these alone, never at every pair.
    /// An entry whose pair has moved on is dropped when next looked at.
    retrying: Vec<usize>,
    stop_fd: Option<RawFd>,
    /// The one read buffer every read/write flow shares.
    scratch: Vec<u8>,
}

/// Why [`Pump::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stop descriptor became readable.
    Stopped,
    /// Serving a single pair and it finished.
    Finished,
}

/// The epoll events a connection source is armed with (see
/// [`Listener::handoff`]).
fn source_events(handoff: bool) -> u32 {
    libc::EPOLLIN as u32 | if handoff { EDGE } else { 0 }
}

/// TCP_NODELAY on `fd`: small interactive writes are sent at once, not
/// held back for an acknowledgement. Fails (harmlessly, ignored) on a
/// unix socket.
fn no_delay(fd: RawFd) {
    let _ = sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
}

/// A non-blocking stream socket for an upstream of `family`; a TCP one
/// gets TCP_NODELAY and keepalive.
fn tcp_upstream_socket(family: i32) -> Result<OwnedFd, sys::SysError> {
    let up = sys::stream_socket(family)?;
    if family != libc::AF_UNIX {
        no_delay(up.as_raw_fd());
        let _ = sys::setsockopt_int(up.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    }
    Ok(up)
}

impl Pump {
    /// A new, empty pump. The process running it ignores SIGPIPE from here
    /// on: one peer leaving must fail that write, not kill every
    /// connection of the process.
    pub fn new() -> Result<Pump> {
        sys::ignore_sigpipe()?;
        Ok(Pump {
            epoll: sys::epoll_create()?,
            pairs: Vec::new(),
            free: Vec::new(),
            closed_this_batch: Vec::new(),
            listeners: Vec::new(),
            upstreams: Vec::new(),
            accept_paused_until: None,
            retrying: Vec::new(),
            stop_fd: None,
            scratch: vec![0; FLOW_CAPACITY],
        })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> Result<()> {
        sys::epoll_ctl(self.epoll.as_raw_fd(), op, fd, events, token)?;
        Ok(())
    }

    /// Serves `listener` (already listening, non-blocking): every accepted
    /// connection is forwarded to `upstream`. A TCP listener gets
    /// TCP_NODELAY, which Linux copies into every socket it accepts: no
    /// call per connection (a unix listener refuses the option, and its
    /// clients need none).
    pub fn add_listener(&mut self, fd: OwnedFd, upstream: Upstream) -> Result<()> {
        no_delay(fd.as_raw_fd());
        self.add_source(fd, upstream, false)
    }

    /// Serves connections handed over on `fd` (a non-blocking unix
    /// socket: one descriptor per message, each a connected client):
    /// Landlock mode's relays get them from the broker, which accepted
    /// them itself to check who connected.
    pub fn add_handoff(&mut self, fd: OwnedFd, upstream: Upstream) -> Result<()> {
        self.add_source(fd, upstream, true)
    }

    fn add_source(&mut self, fd: OwnedFd, upstream: Upstream, handoff: bool) -> Result<()> {
        self.upstreams.push(upstream);
        let index = self.listeners.len() as u64;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            source_events(handoff),
            index << TAG_BITS | TAG_LISTENER,
        )?;
        self.listeners.push(Listener {
            fd,
            upstream: self.upstreams.len() - 1,
            handoff,
        });
        Ok(())
    }

    /// Returns from [`Pump::run`] when `fd` (a signalfd) becomes readable.
    pub fn stop_on(&mut self, fd: RawFd) -> Result<()> {
        self.stop_fd = Some(fd);
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, TAG_STOP)
    }

    /// Pumps between stdin/stdout and an already connected socket (the
    /// `connect` tunnel) until both directions have ended.
    pub fn add_stdio_pair(&mut self, socket: OwnedFd) -> Result<()> {
        let stdio = Side {
            read_fd: 0,
            write_fd: 1,
            owned: None,
            readable: false,
            writable: false,
            input_ends: false,
            close_to_shut: true,
        };
        let pair = Pair {
            sides: [stdio, Side::socket(socket)],
            flows: [Flow::default(), Flow::default()],
            state: State::Open,
            upstream: None,
            on_ipv6: false,
        };
        let slot = self.insert(pair)?;
        self.drive(slot);
        Ok(())
    }

    fn insert(&mut self, mut pair: Pair) -> Result<usize> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.pairs.push(None);
                self.pairs.len() - 1
            }
        };
        for (i, side) in pair.sides.iter_mut().enumerate() {
            let token = (slot as u64) << TAG_BITS;
            if side.read_fd == side.write_fd {
                self.ctl(
                    libc::EPOLL_CTL_ADD,
                    side.read_fd,
                    IN | OUT | EDGE,
                    token | i as u64,
                )?;
            } else {
                // A descriptor epoll refuses (a regular file, /dev/null and
                // other character devices without poll support) never
                // blocks: it is always ready, and no event will ever say so.
                side.readable |= !self.register_stdio(side.read_fd, IN, token | i as u64)?;
                side.writable |=
                    !self.register_stdio(side.write_fd, OUT, token | (i as u64 + 2))?;
            }
        }
        self.pairs[slot] = Some(pair);
        Ok(slot)
    }

    /// Adds a stdio descriptor to the epoll set; `false` when epoll refuses
    /// it (EPERM: the file has no poll support).
    fn register_stdio(&self, fd: RawFd, events: u32, token: u64) -> Result<bool> {
        match sys::epoll_ctl(
            self.epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            events | EDGE,
            token,
        ) {
            Err(e) if e.errno() == libc::EPERM => Ok(false),
            other => Ok(other.map(|_| true)?),
        }
    }

    /// Runs until stopped, or (serving one pair) until it finishes.
    pub fn run(&mut self) -> Result<Outcome> {
        let single = self.listeners.is_empty();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            if single && self.pairs.iter().all(Option::is_none) {
                return Ok(Outcome::Finished);
            }
            let timeout = self.next_timeout();
            let n = sys::epoll_wait(self.epoll.as_raw_fd(), &mut events, timeout)?;
            for ev in &events[..n] {
                let (token, flags) = (ev.u64, ev.events);
                match token & 0xff {
                    TAG_STOP => return Ok(Outcome::Stopped),
                    TAG_LISTENER => self.accept_ready((token >> TAG_BITS) as usize)?,
                    tag => self.on_side_event((token >> TAG_BITS) as usize, tag as usize, flags),
                }
            }
            self.on_timers()?;
            self.free.append(&mut self.closed_this_batch);
        }
    }

    /// When the slot's pair waits to retry its connect, the time it may.
    fn retry_time(&self, slot: usize) -> Option<Instant> {
        match self.pairs.get(slot)? {
            Some(Pair {
                state: State::Connecting { retry_at, .. },
                ..
            }) => *retry_at,
            _ => None,
        }
    }

    fn next_timeout(&self) -> i32 {
        let retry = self.retrying.iter().filter_map(|&s| self.retry_time(s));
        let next = retry.chain(self.accept_paused_until).min();
        match next {
            None => -1,
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
        }
    }

    fn on_timers(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            // Re-arming reports the connections that queued up while we
            // were paused (for an edge-triggered handoff channel too).
            for (i, l) in self.listeners.iter().enumerate() {
                self.ctl(
                    libc::EPOLL_CTL_MOD,
                    l.fd.as_raw_fd(),
                    source_events(l.handoff),
                    (i as u64) << TAG_BITS | TAG_LISTENER,
                )?;
            }
        }
        if self.retrying.is_empty() {
            return Ok(());
        }
        let waiting = std::mem::take(&mut self.retrying);
        let mut due = Vec::new();
        for slot in waiting {
            match self.retry_time(slot) {
                Some(t) if t <= now => due.push(slot),
                Some(_) => self.retrying.push(slot),
                None => {}
            }
        }
        for slot in due {
            self.try_connect(slot);
        }
        Ok(())
    }

    /// A source is ready: one connection from a listening socket, every
    /// one waiting on a handoff channel (see [`Listener::handoff`]).
    fn accept_ready(&mut self, index: usize) -> Result<()> {
        if self.accept_paused_until.is_some() {
            return Ok(());
        }
        let handoff = self.listeners[index].handoff;
        loop {
            let listener = self.listeners[index].fd.as_raw_fd();
            let next = if handoff {
                match sys::receive_fd(listener) {
                    Ok(client) => Ok(Some(client)),
                    // Nothing more now (EAGAIN), or the other end is gone.
                    Err(e) if matches!(e.errno(), libc::EAGAIN | libc::EBADMSG) => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                sys::accept(listener)
            };
            let client = match next {
                Ok(Some(client)) => client,
                Ok(None) => return Ok(()),
                // A listening socket stays ready (level-triggered): any
                // failure would come straight back, so it waits too.
                Err(e) if out_of_resources(&e) || !handoff => return self.pause_accept(&e),
                Err(e) => {
                    trace!("relay: {e}");
                    return Ok(());
                }
            };
            match self.start_pair(client, index) {
                Ok(()) => {}
                // No descriptor for the upstream socket: that client is
                // closed, and the next ones would meet the same fate.
                Err(e) if out_of_resources(&e) => return self.pause_accept(&e),
                // Anything else lost only that client.
                Err(e) => trace!("relay: {e}"),
            }
            // One connection per event from a listening socket.
            if !handoff {
                return Ok(());
            }
        }
    }

    /// Out of descriptors (or a listening socket failing otherwise): stops
    /// accepting for [`EMFILE_BACKOFF`] instead of spinning on a
    /// level-triggered listener that stays readable; the timer in `run`
    /// re-arms the listeners.
    fn pause_accept(&mut self, cause: &sys::SysError) -> Result<()> {
        trace!("relay: {cause}; pausing accept");
        for l in &self.listeners {
            self.ctl(libc::EPOLL_CTL_MOD, l.fd.as_raw_fd(), 0, TAG_LISTENER)?;
        }
        self.accept_paused_until = Some(Instant::now() + EMFILE_BACKOFF);
        Ok(())
    }

    /// Pairs an accepted client with a new upstream socket and starts
    /// connecting it. An error means the upstream socket could not be made;
    /// the client has then been closed (dropped), the only answer a relay
    /// without an upstream can give.
    fn start_pair(&mut self, client: OwnedFd, index: usize) -> Result<(), sys::SysError> {
        let upstream = self.listeners[index].upstream;
        let family = match &self.upstreams[upstream] {
            Upstream::Unix(_) => libc::AF_UNIX,
            Upstream::Tcp(addr) => sys::family_of(addr),
            Upstream::Loopback(_) => libc::AF_INET,
        };
        let up = tcp_upstream_socket(family)?;
        // The TCP ends of each pair have TCP_NODELAY (small interactive
        // writes are not held back): an upstream TCP connection from
        // tcp_upstream_socket, with keepalive; an accepted TCP client from
        // its listener (add_listener). A client handed over was accepted
        // by the broker, so it gets the option here (on a unix client the
        // call fails, harmlessly).
        if self.listeners[index].handoff {
            no_delay(client.as_raw_fd());
        }
        let pair = Pair {
            sides: [Side::socket(client), Side::socket(up)],
            flows: [Flow::default(), Flow::default()],
            state: State::Connecting {
                retries: 0,
                retry_at: None,
            },
            upstream: Some(upstream),
            on_ipv6: false,
        };
        match self.insert(pair) {
            Ok(slot) => self.try_connect(slot),
            Err(e) => trace!("relay: {e:#}"),
        }
        Ok(())
    }

    fn try_connect(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let State::Connecting { retries, .. } = pair.state else {
            return;
        };
        let fd = pair.sides[1].read_fd;
        let result = match &self.upstreams[pair.upstream.unwrap_or_default()] {
            Upstream::Unix(path) => sys::connect_unix(fd, path),
            Upstream::Tcp(addr) => sys::connect_inet(fd, addr),
            Upstream::Loopback(port) if pair.on_ipv6 => {
                sys::connect_inet(fd, &SocketAddr::from((Ipv6Addr::LOCALHOST, *port)))
            }
            Upstream::Loopback(port) => {
                sys::connect_inet(fd, &SocketAddr::from((Ipv4Addr::LOCALHOST, *port)))
            }
        };
        match result {
            Ok(Connect::Done) => {
                pair.state = State::Open;
                self.drive(slot);
            }
            Ok(Connect::InProgress) => {
                pair.state = State::Connecting {
                    retries,
                    retry_at: None,
                };
            }
            Ok(Connect::Again) if retries < CONNECT_RETRIES => {
                pair.state = State::Connecting {
                    retries: retries + 1,
                    retry_at: Some(Instant::now() + CONNECT_RETRY),
                };
                self.retrying.push(slot);
            }
            Ok(Connect::Again) | Err(_) => {
                trace!("relay: upstream connect failed: {result:?}");
                if !self.retry_on_ipv6(slot) {
                    self.close(slot);
                }
            }
        }
    }

    /// `Upstream::Loopback` whose 127.0.0.1 refused: a new socket to
    /// [::1] takes the failed one's place (once). False when there is no
    /// such second try, or it could not be started.
    fn retry_on_ipv6(&mut self, slot: usize) -> bool {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return false;
        };
        let loopback = pair
            .upstream
            .is_some_and(|u| matches!(self.upstreams[u], Upstream::Loopback(_)));
        if !loopback || pair.on_ipv6 {
            return false;
        }
        let Ok(up) = tcp_upstream_socket(libc::AF_INET6) else {
            return false;
        };
        let fd = up.as_raw_fd();
        // The failed socket is closed here, which takes it out of the
        // epoll set; its events were the last of this batch for it.
        pair.sides[1] = Side::socket(up);
        pair.on_ipv6 = true;
        pair.state = State::Connecting {
            retries: 0,
            retry_at: None,
        };
        let token = (slot as u64) << TAG_BITS | 1;
        if self
            .ctl(libc::EPOLL_CTL_ADD, fd, IN | OUT | EDGE, token)
            .is_err()
        {
            return false;
        }
        self.try_connect(slot);
        true
    }

    fn on_side_event(&mut self, slot: usize, tag: usize, flags: u32) {
        let Some(pair) = self.pairs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let side = &mut pair.sides[tag % 2];
        if tag < 2 {
            side.readable |= flags & (IN | HUP_OR_ERR) != 0;
            side.input_ends |= flags & (libc::EPOLLRDHUP as u32 | HUP_OR_ERR) != 0;
        }
        if tag >= 2 || side.read_fd == side.write_fd {
            side.writable |= flags & (OUT | HUP_OR_ERR) != 0;
        }
        if let State::Connecting { retry_at: None, .. } = pair.state {
            if tag == 1 && flags & (OUT | HUP_OR_ERR) != 0 {
                // A connecting TCP socket polls writable only once it is
                // connected, and a failed one polls with an error or a
                // hang-up: only those need SO_ERROR's verdict.
                let connected = flags & HUP_OR_ERR == 0
                    || matches!(sys::socket_error(pair.sides[1].read_fd), Ok(0));
                match connected {
                    true => pair.state = State::Open,
                    false if self.retry_on_ipv6(slot) => return,
                    false => return self.close(slot),
                }
            } else {
                return;
            }
        }
        self.drive(slot);
    }

    /// Moves whatever can move in both directions; closes the pair when
    /// both are done or either fails.
    fn drive(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        if !matches!(pair.state, State::Open) {
            return;
        }
        let [s0, s1] = &mut pair.sides;
        let [f0, f1] = &mut pair.flows;
        let scratch = &mut self.scratch;
        let ok = progress(f0, s0, s1, scratch, f1.done)
            .and_then(|()| progress(f1, s1, s0, scratch, f0.done));
        if let Err(e) = ok {
            trace!("relay: connection closed: {e}");
            return self.close(slot);
        }
        if pair.flows.iter().all(|f| f.done) {
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        // Dropping the pair closes its sockets and pipes, which also
        // removes them from the epoll set.
        if self.pairs[slot].take().is_some() {
            self.closed_this_batch.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The flows of one pair, driven by hand on socketpairs: readiness is
    //! set as epoll's edge events would set it.
    use super::flow::{Mode, fill_pipe_with};
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// A pump-side socket and the peer the test plays.
    fn end() -> (Side, UnixStream) {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut side = Side::socket(OwnedFd::from(ours));
        side.readable = true;
        side.writable = true;
        (side, peer)
    }

    /// The peer shuts its sending down, and the side learns it as the
    /// event (EPOLLIN | EPOLLRDHUP) would tell it.
    fn hang_up(peer: &UnixStream, side: &mut Side) {
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        side.readable = true;
        side.input_ends = true;
    }

    fn read_to_end(mut peer: UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn end_of_input_half_closes_and_the_other_direction_still_flows() {
        let (mut a, mut a_peer) = end();
        let (mut b, mut b_peer) = end();
        let mut scratch = vec![0; FLOW_CAPACITY];
        let (mut a_to_b, mut b_to_a) = (Flow::default(), Flow::default());
        a_peer.write_all(b"hello").unwrap();
        hang_up(&a_peer, &mut a);
        progress(&mut a_to_b, &mut a, &mut b, &mut scratch, false).unwrap();
        assert!(a_to_b.done, "EOF delivered ends the direction");
        // B's peer gets the bytes and then EOF (our shutdown(SHUT_WR)).
        let mut got = Vec::new();
        b_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello");
        // The way back is untouched by the half-close.
        b_peer.write_all(b"back").unwrap();
        hang_up(&b_peer, &mut b);
        progress(&mut b_to_a, &mut b, &mut a, &mut scratch, false).unwrap();
        assert!(b_to_a.done);
        drop((a, b));
        assert_eq!(read_to_end(a_peer), b"back");
    }

    /// The direction that ends last leaves its FIN to the pair's close
    /// (one call fewer per connection): no shutdown, and the peer sees
    /// the end once the side is closed.
    #[test]
    fn the_last_direction_to_end_leaves_the_fin_to_the_close() {
        let (mut a, mut a_peer) = end();
        let (mut b, mut b_peer) = end();
        let mut scratch = vec![0; FLOW_CAPACITY];
        let mut a_to_b = Flow::default();
        a_peer.write_all(b"last").unwrap();
        hang_up(&a_peer, &mut a);
        progress(&mut a_to_b, &mut a, &mut b, &mut scratch, true).unwrap();
        assert!(a_to_b.done);
        let mut got = [0u8; 4];
        b_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"last");
        b_peer.set_nonblocking(true).unwrap();
        let pending = b_peer.read(&mut got).unwrap_err();
        assert_eq!(pending.kind(), std::io::ErrorKind::WouldBlock, "no FIN yet");
        drop(b);
        b_peer.set_nonblocking(false).unwrap();
        assert_eq!(b_peer.read(&mut got).unwrap(), 0, "the close ends it");
    }

    /// A short read from a socket drained it: the flow waits for the next
    /// event instead of reading again for EAGAIN, and that event (data,
    /// or the end of input) brings it back.
    #[test]
    fn a_short_read_waits_for_the_next_event() {
        let (mut a, mut a_peer) = end();
        let (mut b, mut b_peer) = end();
        let mut scratch = vec![0; FLOW_CAPACITY];
        let mut a_to_b = Flow::default();
        a_peer.write_all(b"ping").unwrap();
        progress(&mut a_to_b, &mut a, &mut b, &mut scratch, false).unwrap();
        assert!(!a.readable, "drained by the short read");
        let mut got = [0u8; 4];
        b_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        hang_up(&a_peer, &mut a);
        progress(&mut a_to_b, &mut a, &mut b, &mut scratch, false).unwrap();
        assert!(a_to_b.done, "the event's end of input was read");
        assert_eq!(read_to_end(b_peer), b"", "and passed on");
    }

    #[test]
    fn a_departed_destination_is_discarded_to_the_end_of_its_source() {
        let (mut a, mut a_peer) = end();
        let (mut b, b_peer) = end();
        drop(b_peer);
        let mut scratch = vec![0; FLOW_CAPACITY];
        let mut flow = Flow::default();
        a_peer.write_all(b"lost").unwrap();
        progress(&mut flow, &mut a, &mut b, &mut scratch, false).unwrap();
        assert!(flow.discard, "EPIPE abandons the direction");
        assert!(!flow.done, "its source is still open");
        assert_eq!(flow.held(), 0, "nothing undeliverable is kept");
        // The source is read and dropped until it ends; that ends the
        // direction without an error (the pair lives on).
        a_peer.write_all(&[b'x'; 100_000]).unwrap_or_default();
        a_peer.shutdown(std::net::Shutdown::Write).unwrap();
        while !flow.done {
            a.readable = true;
            progress(&mut flow, &mut a, &mut b, &mut scratch, false).unwrap();
        }
    }

    /// Bulk data switches a flow to splice; a flow that cannot get its
    /// pipe (out of descriptors) goes on through the shared buffer. Every
    /// byte arrives, in order, either way.
    #[test]
    fn bulk_flows_splice_and_fall_back_to_copying_without_a_pipe() {
        for out_of_descriptors in [false, true] {
            let (mut a, mut a_peer) = end();
            let (mut b, b_peer) = end();
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let sent = data.clone();
            let writer = std::thread::spawn(move || {
                a_peer.write_all(&sent).unwrap();
                a_peer.shutdown(std::net::Shutdown::Write).unwrap();
                a_peer
            });
            let reader = std::thread::spawn(move || read_to_end(b_peer));
            let mut scratch = vec![0; FLOW_CAPACITY];
            let mut flow = Flow::default();
            if out_of_descriptors {
                // As after a read that filled the buffer, with pipe2
                // failing: the flow copies on instead of failing.
                flow.mode = Mode::Splice;
                let emfile = || {
                    Err(sys::SysError::new(
                        sys::Call::other("pipe2", ""),
                        libc::EMFILE,
                    ))
                };
                assert!(fill_pipe_with(&mut flow, &mut a, emfile).unwrap());
                assert_eq!(flow.mode, Mode::Copy, "no pipe: back to copying");
                assert_eq!(flow.held(), 0);
            }
            let mut spliced = false;
            while !flow.done {
                a.readable = true;
                b.writable = true;
                progress(&mut flow, &mut a, &mut b, &mut scratch, false).unwrap();
                spliced |= flow.mode == Mode::Splice && flow.pipe.is_some();
            }
            assert!(spliced, "a megabyte is bulk: it went through a pipe");
            drop(b);
            let _ = writer.join().unwrap();
            assert!(reader.join().unwrap() == data, "bytes differ");
        }
    }
}
