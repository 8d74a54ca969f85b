//! The broker's threads and its answer to each call.
//!
//! A pool of threads receives on the listener. A call may block (a
//! blocking connect waits for the peer's accept, a TCP connect for the
//! handshake), so a thread that takes a call makes sure another is
//! waiting first, up to [`MAX_THREADS`]; idle threads beyond
//! [`MAX_IDLE`] leave. Each thread has a working directory of its own
//! (unshare CLONE_FS): PID 1's `fd` directory in the broker's procfs, so
//! that `N` names PID 1's descriptor N, whatever the sandbox mounts at
//! /proc.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::Pin;
use super::call::{MAX_ADDRESS, Request, UnixAddress, request, unix_address};
use crate::failure::{GrantCause, GrantFailure};
use crate::log::trace;
use crate::sys::{self, Notification};

/// Threads that may be inside a call at once: beyond that, new calls wait
/// for one to finish.
const MAX_THREADS: usize = 256;
/// Idle threads kept waiting for calls.
const MAX_IDLE: usize = 2;
/// Sandbox servers remembered before the dead ones are swept.
const SWEEP_AT: usize = 4096;

/// Pidfds kept for the threads that called last: a pidfd names one
/// thread for ever (a dead one's gives ESRCH, never another's), so a
/// kept one is reused without a check; the oldest go first.
const PIDFDS_KEPT: usize = 64;

/// Roots of callers kept open, by place (most sandboxes have one: PID
/// 1's own); beyond this many, the oldest goes.
const ROOTS_KEPT: usize = 16;

/// Everything the threads share.
pub struct Broker {
    /// The workload's filter's listener.
    pub listener: OwnedFd,
    pub pins: Vec<Pin>,
    /// A procfs of the sandbox's PID namespace, attached nowhere.
    pub proc: OwnedFd,
    /// Abstract names may be reached: under `--unshare-net`, where they
    /// live in the sandbox's own network namespace.
    pub abstract_ok: bool,
}

/// A socket file a listen of the sandbox bound: its file's (dev, ino) as
/// unix_diag gives them, and the socket's inode and cookie, which name
/// that socket and no later one.
type Servers = HashMap<(u64, u32), (u32, u64)>;

struct Shared {
    broker: Broker,
    servers: Mutex<Servers>,
    pidfds: Mutex<std::collections::VecDeque<(u32, Arc<OwnedFd>)>>,
    roots: Mutex<std::collections::VecDeque<(sys::Place, Arc<OwnedFd>)>>,
    idle: AtomicUsize,
    threads: AtomicUsize,
}

/// Whether the broker can work here: `pidfd_getfd` (5.6+), which
/// containers refuse without CAP_SYS_PTRACE. `grant` names the refused
/// run's first grant.
pub fn check_support(grant: &std::path::Path) -> Result<()> {
    let me = sys::pidfd_open(sys::getpid() as u32);
    let works = me.and_then(|pidfd| sys::pidfd_getfd(&pidfd, pidfd.as_raw_fd()));
    works.map(drop).map_err(|e| {
        trace!("broker: {e}");
        GrantFailure {
            path: grant.to_path_buf(),
            cause: GrantCause::Unsupported(
                "pidfd_getfd (Linux 5.6, refused in containers without CAP_SYS_PTRACE)",
            ),
        }
        .into()
    })
}

/// Starts the broker's first thread; the pool grows from there.
pub fn start(broker: Broker) -> Result<()> {
    let shared = Arc::new(Shared {
        broker,
        servers: Mutex::new(Servers::new()),
        pidfds: Mutex::new(std::collections::VecDeque::new()),
        roots: Mutex::new(std::collections::VecDeque::new()),
        idle: AtomicUsize::new(0),
        threads: AtomicUsize::new(0),
    });
    spawn(&shared).context("start the unix socket broker")
}

fn spawn(shared: &Arc<Shared>) -> std::io::Result<()> {
    shared.threads.fetch_add(1, Ordering::SeqCst);
    shared.idle.fetch_add(1, Ordering::SeqCst);
    let for_thread = Arc::clone(shared);
    std::thread::Builder::new()
        .name("broker".into())
        .stack_size(64 * 1024)
        .spawn(move || worker(&for_thread))
        .map(drop)
        .inspect_err(|_| {
            shared.threads.fetch_sub(1, Ordering::SeqCst);
            shared.idle.fetch_sub(1, Ordering::SeqCst);
        })
}

/// A broker that cannot go on must not leave calls waiting: PID 1 exits,
/// which ends the sandbox (and closes the listener).
fn give_up(why: &dyn std::fmt::Display) -> ! {
    trace!("broker: {why}");
    sys::exit_now(crate::exit::SETUP)
}

/// Gives the calling thread a working directory of its own: PID 1's
/// descriptor directory in the broker's procfs, where a descriptor's
/// number is a path to what it refers to.
fn enter_own_descriptors(proc: RawFd) -> sys::SysResult<()> {
    sys::unshare(libc::CLONE_FS)?;
    let fds = sys::openat(
        proc,
        OsStr::new("self/fd"),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    sys::fchdir(fds.as_raw_fd())
}

fn worker(shared: &Arc<Shared>) {
    let listener = shared.broker.listener.as_raw_fd();
    if let Err(e) = enter_own_descriptors(shared.broker.proc.as_raw_fd()) {
        give_up(&e);
    }
    loop {
        let n = match sys::notif_recv(listener) {
            Ok(n) => n,
            // Interrupted, or the caller left the queue before we got it.
            Err(e) if matches!(e.errno(), libc::EINTR | libc::ENOENT) => continue,
            Err(e) => give_up(&e),
        };
        // One thread fewer waits: make sure one still does.
        if shared.idle.fetch_sub(1, Ordering::SeqCst) == 1
            && shared.threads.load(Ordering::SeqCst) < MAX_THREADS
        {
            let _ = spawn(shared);
        }
        if let Some((val, errno)) = shared.answer(&n) {
            // ENOENT: the caller was killed meanwhile; nobody to tell.
            let _ = sys::notif_respond(listener, n.id, val, errno);
        }
        if shared.idle.load(Ordering::SeqCst) >= MAX_IDLE {
            shared.threads.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        shared.idle.fetch_add(1, Ordering::SeqCst);
    }
}

/// The call's result: its return value and errno (0: success).
type Answer = (i64, i32);

fn failed(errno: i32) -> Option<Answer> {
    Some((-1, errno))
}

fn done(errno: i32) -> Option<Answer> {
    if errno == 0 {
        Some((0, 0))
    } else {
        failed(errno)
    }
}

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
    fn take_socket(&self, tid: u32, fd: i32) -> Result<OwnedFd, i32> {
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

    /// The answer to one call, or None when its caller is gone (nobody to
    /// answer, and nothing was done for it).
    fn answer(&self, n: &Notification) -> Option<Answer> {
        match request(n) {
            Request::Connect { fd, addr, len } => self.connect(n, fd, addr, len),
            Request::Listen { fd, backlog } => self.listen(n, fd, backlog),
            Request::Unknown => failed(libc::ENOSYS),
        }
    }

    fn still_waiting(&self, n: &Notification) -> bool {
        sys::notif_id_valid(self.broker.listener.as_raw_fd(), n.id)
    }

    fn connect(&self, n: &Notification, fd: i32, addr: u64, len: u32) -> Option<Answer> {
        let len = len as usize;
        if len > MAX_ADDRESS {
            return failed(libc::EINVAL);
        }
        let bytes = match sys::read_memory(n.pid, addr, len) {
            Ok(bytes) if bytes.len() == len => bytes,
            _ => return self.still_waiting(n).then_some((-1, libc::EFAULT)),
        };
        let socket = self.take_socket(n.pid, fd);
        // The reads were of the caller only if it still waits: a pid
        // reused in between would have failed this.
        if !self.still_waiting(n) {
            return None;
        }
        let socket = match socket {
            Ok(socket) => socket,
            Err(errno) => return failed(errno),
        };
        let sock = socket.as_raw_fd();
        let Ok(domain) = sys::socket_option(sock, libc::SO_DOMAIN) else {
            return failed(libc::ENOTSOCK);
        };
        if domain != libc::AF_UNIX {
            // Another family: its destination is not ours to judge here
            // (network namespaces and the filter do that); made on the
            // taken socket so that no swap can turn it into a unix one.
            return done(sys::connect_raw_addr(sock, &bytes));
        }
        let kind = sys::socket_option(sock, libc::SO_TYPE).unwrap_or(-1);
        if kind != libc::SOCK_STREAM && kind != libc::SOCK_SEQPACKET {
            // A datagram socket can only have come from outside.
            return failed(libc::EACCES);
        }
        match unix_address(&bytes) {
            UnixAddress::Invalid => failed(libc::EINVAL),
            UnixAddress::Abstract if self.broker.abstract_ok => {
                done(sys::connect_raw_addr(sock, &bytes))
            }
            UnixAddress::Abstract => failed(libc::EACCES),
            UnixAddress::Path(path) => self.connect_path(n.pid, sock, path),
        }
    }

    /// A path connect: resolved as the caller would, then allowed by the
    /// inode it reached.
    fn connect_path(&self, tid: u32, sock: RawFd, path: &[u8]) -> Option<Answer> {
        let target = match self.resolve(tid, path) {
            Ok(target) => target,
            Err(errno) => return failed(errno),
        };
        let target_fd = target.as_raw_fd();
        let Ok(st) = sys::fstat(target_fd) else {
            return failed(libc::EACCES);
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            // What connect says for a file that is not a socket.
            return failed(libc::ECONNREFUSED);
        }
        let via = if let Some(pin) = self
            .broker
            .pins
            .iter()
            .find(|p| p.dev == st.st_dev && p.ino == st.st_ino)
        {
            pin.fd.as_raw_fd()
        } else {
            match self.sandbox_server(&st) {
                Some(true) => target_fd,
                // The sandbox's own socket, closed: nobody can listen
                // on that file again.
                Some(false) => return failed(libc::ECONNREFUSED),
                None => return failed(libc::EACCES),
            }
        };
        // Through the descriptor, never the path again: its number is a
        // path in this thread's working directory (enter_own_descriptors).
        done(sys::connect_path_errno(sock, via.to_string().as_bytes()))
    }

    /// Resolves `path` as thread `tid` would: in its root, from its
    /// working directory for a relative path. No magic link is followed
    /// (`/proc/self/...` would be the broker's), and no `..` leaves the
    /// root. ELOOP and EXDEV (a magic link, an escape) are EACCES.
    fn resolve(&self, tid: u32, path: &[u8]) -> Result<OwnedFd, i32> {
        let proc = self.broker.proc.as_raw_fd();
        let link = |name: &str| sys::readlinkat(proc, OsStr::new(&format!("{tid}/{name}")));
        let root = self.root_of(tid)?;
        let mut full = Vec::new();
        if path.first() != Some(&b'/') {
            // The working directory as a path inside the caller's root
            // (both links read from this procfs, in our root's terms).
            let cwd = link("cwd").map_err(|e| e.errno())?;
            let root_path = link("root").map_err(|e| e.errno())?;
            let cwd = cwd.as_bytes();
            let inside = match root_path.as_bytes() {
                b"/" => cwd,
                prefix => match cwd.strip_prefix(prefix) {
                    Some(rest) if rest.is_empty() || rest[0] == b'/' => rest,
                    // A working directory outside its root.
                    _ => return Err(libc::EACCES),
                },
            };
            full.extend_from_slice(inside);
            full.push(b'/');
        }
        full.extend_from_slice(path);
        sys::openat2(
            root.as_raw_fd(),
            OsStr::from_bytes(&full),
            libc::O_PATH,
            sys::uapi::RESOLVE_IN_ROOT | sys::uapi::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| match e.errno() {
            libc::ELOOP | libc::EXDEV => libc::EACCES,
            errno => errno,
        })
    }

    /// Thread `tid`'s root directory. One already open at the same place
    /// (mount and inode) is the same root: it is reused, which costs one
    /// statx instead of an open and a close per call.
    fn root_of(&self, tid: u32) -> Result<Arc<OwnedFd>, i32> {
        let proc = self.broker.proc.as_raw_fd();
        let link = format!("{tid}/root");
        let place = sys::place_of(proc, OsStr::new(&link), 0).map_err(|e| e.errno())?;
        let kept = place.and_then(|place| {
            let roots = self.roots.lock().ok()?;
            roots
                .iter()
                .find(|(p, _)| *p == place)
                .map(|(_, root)| Arc::clone(root))
        });
        if let Some(root) = kept {
            return Ok(root);
        }
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let root = Arc::new(sys::openat(proc, OsStr::new(&link), flags, 0).map_err(|e| e.errno())?);
        // Kept only if what was opened is the place looked at (the
        // caller may have changed its root in between).
        let opened = sys::place_of(root.as_raw_fd(), OsStr::new(""), libc::AT_EMPTY_PATH);
        if let (Some(place), Ok(Some(opened)), Ok(mut roots)) = (place, opened, self.roots.lock())
            && opened == place
        {
            if roots.len() == ROOTS_KEPT {
                roots.pop_front();
            }
            roots.push_back((place, Arc::clone(&root)));
        }
        Ok(root)
    }

    /// Whether the socket file `st` is one a listen of the sandbox bound:
    /// Some(true) while that socket lives, Some(false) once it is closed,
    /// None for any other file. unix_diag gives an inode's low 32 bits
    /// only, so a file with a larger inode number is never taken for one.
    fn sandbox_server(&self, st: &libc::stat) -> Option<bool> {
        let key = (st.st_dev, u32::try_from(st.st_ino).ok()?);
        let (sock_ino, cookie) = *self.servers.lock().ok()?.get(&key)?;
        match sys::unix_socket_file(sock_ino, Some(cookie)) {
            Ok(Some(bound)) if (bound.vfs_dev, bound.vfs_ino) == key => Some(true),
            _ => Some(false),
        }
    }

    fn listen(&self, n: &Notification, fd: i32, backlog: i32) -> Option<Answer> {
        let socket = self.take_socket(n.pid, fd);
        if !self.still_waiting(n) {
            return None;
        }
        let socket = match socket {
            Ok(socket) => socket,
            Err(errno) => return failed(errno),
        };
        let errno = sys::listen_errno(socket.as_raw_fd(), backlog);
        let is_unix = sys::socket_option(socket.as_raw_fd(), libc::SO_DOMAIN)
            .is_ok_and(|domain| domain == libc::AF_UNIX);
        // Recorded before the reply: a client may connect as soon as the
        // listen returns.
        if errno == 0 && is_unix {
            self.remember_server(&socket);
        }
        done(errno)
    }

    /// Records a listening unix socket of the sandbox by the file it is
    /// bound to (none for an abstract or unbound one).
    fn remember_server(&self, socket: &OwnedFd) {
        let Ok(st) = sys::fstat(socket.as_raw_fd()) else {
            return;
        };
        let sock_ino = st.st_ino as u32;
        let Ok(Some(bound)) = sys::unix_socket_file(sock_ino, None) else {
            return;
        };
        let Ok(mut servers) = self.servers.lock() else {
            return;
        };
        if servers.len() >= SWEEP_AT {
            servers.retain(|_, (ino, cookie)| {
                matches!(sys::unix_socket_file(*ino, Some(*cookie)), Ok(Some(_)))
            });
        }
        servers.insert((bound.vfs_dev, bound.vfs_ino), (sock_ino, bound.cookie));
    }
}
