//! [`Mechanism::TakeSocket`](super::Mechanism): the caller's own socket,
//! duplicated with `pidfd_getfd`, is what the broker connects or makes
//! listen. A duplicate is the same open file description: `O_NONBLOCK`
//! and `EINPROGRESS` behave as for the caller's own call, and a `dup2`
//! over the caller's descriptor afterwards changes nothing.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::call::is_unix_address;
use super::route::Route;
use super::serve::{Reply, Shared, done, failed};
use crate::sys::{self, Notification};

/// Pidfds kept for the threads that called last: a pidfd names one
/// thread for ever (a dead one's gives ESRCH, never another's), so a
/// kept one is reused without a check; the oldest go first.
const PIDFDS_KEPT: usize = 64;

/// A pidfd of thread `tid`.
fn open_pidfd(proc: RawFd, tid: u32) -> Result<OwnedFd, i32> {
    match sys::pidfd_open_thread(tid) {
        Ok(pidfd) => Ok(pidfd),
        // Before 6.9 only a thread group's leader has a pidfd; its
        // descriptor table is the thread's unless the thread unshared it.
        Err(e) if e.errno() == libc::EINVAL => {
            sys::pidfd_open(thread_group(proc, tid)?).map_err(|e| e.errno())
        }
        Err(e) => Err(e.errno()),
    }
}

/// The thread group (process) of thread `tid`, from its status file.
fn thread_group(proc: RawFd, tid: u32) -> Result<u32, i32> {
    let status = sys::openat(
        proc,
        OsStr::new(&format!("{tid}/status")),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )
    .map_err(|e| e.errno())?;
    let mut text = vec![0u8; 4096];
    let n = sys::read(status.as_raw_fd(), &mut text).map_err(|e| e.errno())?;
    String::from_utf8_lossy(&text[..n])
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:")?.trim().parse().ok())
        .ok_or(libc::ESRCH)
}

impl Shared {
    /// The caller's socket: the same open file description as its
    /// descriptor `fd`, taken once.
    pub(super) fn take_socket(&self, tid: u32, fd: i32) -> Result<OwnedFd, i32> {
        let kept = self.pidfds.lock().ok().and_then(|kept| {
            kept.iter()
                .find(|(t, _)| *t == tid)
                .map(|(_, pidfd)| Arc::clone(pidfd))
        });
        if let Some(pidfd) = kept {
            match sys::pidfd_getfd(&pidfd, fd) {
                // That thread is gone (and its tid was reused).
                Err(e) if e.errno() == libc::ESRCH => {}
                other => return other.map_err(|e| e.errno()),
            }
        }
        let pidfd = Arc::new(open_pidfd(self.broker.proc.as_raw_fd(), tid)?);
        let socket = sys::pidfd_getfd(&pidfd, fd).map_err(|e| e.errno());
        if let Ok(mut kept) = self.pidfds.lock() {
            kept.retain(|(t, _)| *t != tid);
            if kept.len() == PIDFDS_KEPT {
                kept.pop_front();
            }
            kept.push_back((tid, pidfd));
        }
        socket
    }

    pub(super) fn take_and_connect(&self, n: &Notification, fd: i32, addr: u64, len: u32) -> Reply {
        let read = |addr, len| sys::read_memory(n.pid, addr, len);
        let bytes = match self.copy_address(n, addr, len, read) {
            Ok(bytes) => bytes,
            Err(reply) => return reply,
        };
        let socket = match self.confirm(n, self.take_socket(n.pid, fd)) {
            Ok(socket) => socket,
            Err(reply) => return reply,
        };
        let sock = socket.as_raw_fd();
        // The address's family decides what is checked: the kernel
        // refuses an address of one family on a socket of another
        // (EINVAL, EAFNOSUPPORT), so an AF_UNIX socket is only ever
        // connected through a unix address, which is checked below.
        if !is_unix_address(&bytes) {
            // Another family: on the host's network in Landlock mode,
            // relay.rs decides; elsewhere its destination is not ours to
            // judge (network namespaces and the filter do that). Made on
            // the taken socket so that no swap can turn it into a unix one.
            if self.broker.tcp_refused {
                return self.relay_taken(sock, &bytes);
            }
            return done(sys::connect_raw_addr(sock, &bytes));
        }
        match sys::socket_option(sock, libc::SO_TYPE) {
            Ok(libc::SOCK_STREAM | libc::SOCK_SEQPACKET) => {}
            // A datagram unix socket can only have come from outside.
            Ok(_) => return failed(libc::EACCES),
            Err(_) => return failed(libc::ENOTSOCK),
        }
        match self.route(n.pid, &bytes) {
            Ok(Route::Via(target)) => done(target.connect(sock)),
            Ok(Route::Address) => done(sys::connect_raw_addr(sock, &bytes)),
            Err(errno) => failed(errno),
        }
    }

    pub(super) fn take_and_listen(&self, n: &Notification, fd: i32, backlog: i32) -> Reply {
        let socket = match self.confirm(n, self.take_socket(n.pid, fd)) {
            Ok(socket) => socket,
            Err(reply) => return reply,
        };
        let is_unix = sys::socket_option(socket.as_raw_fd(), libc::SO_DOMAIN)
            .is_ok_and(|domain| domain == libc::AF_UNIX);
        // On the host's network (Landlock mode with --unshare-net) a TCP
        // listen would bind a host port: refused, as by the filter when
        // there is no broker.
        if self.broker.tcp_refused && !is_unix {
            return failed(libc::EACCES);
        }
        let errno = sys::listen_errno(socket.as_raw_fd(), backlog);
        // Recorded before the reply: a client may connect as soon as the
        // listen returns.
        if errno == 0 && is_unix {
            let st = sys::fstat(socket.as_raw_fd());
            if let Ok(st) = st {
                self.remember_server(st.st_ino as u32);
            }
        }
        done(errno)
    }
}
