//! The broker's threads: a pool receives on the listener and answers each
//! call with one of two mechanisms ([`Mechanism`]).
//!
//! A call may block (a blocking connect waits for the peer's accept, a
//! TCP connect for the handshake), so a thread that takes a call makes
//! sure another is waiting first, up to [`MAX_THREADS`]; idle threads
//! beyond [`MAX_IDLE`] leave. Each thread has a working directory of its
//! own (unshare CLONE_FS): PID 1's `fd` directory in the broker's procfs,
//! so that `N` names PID 1's descriptor N, whatever the sandbox mounts at
//! /proc.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::Pin;
use super::call::{MAX_ADDRESS, Request, request};
use super::route::Servers;
use crate::failure::{GrantCause, GrantFailure};
use crate::log::trace;
use crate::sys::{self, Notification};

/// Threads that may be inside a call at once: beyond that, new calls wait
/// for one to finish.
const MAX_THREADS: usize = 256;
/// Idle threads kept waiting for calls.
const MAX_IDLE: usize = 2;

/// How the broker makes a call on the caller's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `pidfd_getfd` (5.6+): the caller's own socket, duplicated, is
    /// connected (or listens); `process_vm_readv` reads the address.
    TakeSocket,
    /// Where `pidfd_getfd` is refused (containers without CAP_SYS_PTRACE
    /// refuse it and `process_vm_readv`): the broker connects a socket of
    /// its own and puts it in place of the caller's descriptor
    /// (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD, 5.14+); the address is read
    /// through /proc/PID/mem. See replace.rs.
    ReplaceSocket,
}

/// Everything the threads share.
pub struct Broker {
    /// The workload's filter's listener.
    pub listener: OwnedFd,
    pub pins: Vec<Pin>,
    /// A procfs of the sandbox's PID namespace (see procfs.rs).
    pub proc: OwnedFd,
    /// Abstract names may be reached: under `--unshare-net`, where they
    /// live in the sandbox's own network namespace.
    pub abstract_ok: bool,
    pub mechanism: Mechanism,
    /// Landlock mode with `--unshare-net`: the workload is on the host's
    /// network, where Landlock refuses its own TCP connects; the broker
    /// makes only those to a relay port (relay.rs), lets the kernel make
    /// any other, and refuses TCP listens.
    pub tcp_refused: bool,
    /// Landlock mode's relays, by port (relay.rs).
    pub relays: Vec<crate::run::relays::Handoff>,
}

/// The broker and what its threads learn as they go.
pub(super) struct Shared {
    pub broker: Broker,
    /// The sandbox's listening unix sockets (route.rs).
    pub servers: Mutex<Servers>,
    /// Pidfds of recent callers (take.rs).
    pub pidfds: Mutex<VecDeque<(u32, Arc<OwnedFd>)>>,
    /// Root directories of recent callers, by place (route.rs).
    pub roots: Mutex<VecDeque<(sys::Place, Arc<OwnedFd>)>>,
    idle: AtomicUsize,
    threads: AtomicUsize,
}

/// Whether the broker can take the caller's socket here (`pidfd_getfd`
/// works: 5.6+, and not refused as containers do without
/// CAP_SYS_PTRACE).
pub fn can_take_sockets() -> bool {
    let me = sys::pidfd_open(sys::getpid() as u32);
    match me.and_then(|pidfd| sys::pidfd_getfd(&pidfd, pidfd.as_raw_fd())) {
        Ok(_) => true,
        Err(e) => {
            trace!("broker: {e}; its sockets are replaced instead");
            false
        }
    }
}

/// Where the broker cannot take the caller's socket: whether `listener`
/// takes ADDFD with SETFD (5.14) to replace it, else the run's refusal.
/// `grant` names the refused run's first grant.
pub fn check_replacing(grant: &std::path::Path, listener: &OwnedFd) -> Result<Mechanism> {
    if can_replace_sockets(listener) {
        return Ok(Mechanism::ReplaceSocket);
    }
    Err(GrantFailure {
        path: grant.to_path_buf(),
        cause: GrantCause::Unsupported(
            "pidfd_getfd (Linux 5.6; containers refuse it without CAP_SYS_PTRACE) or seccomp ADDFD with SETFD (Linux 5.14)",
        ),
    }
    .into())
}

/// Whether `listener` takes ADDFD with SETFD (5.14), which replacing a
/// caller's socket needs.
pub fn can_replace_sockets(listener: &OwnedFd) -> bool {
    // A descriptor for a call that does not exist: ENOENT once the kernel
    // has looked the call up, which it does only after accepting the
    // request's flags (EINVAL before 5.14's SETFD, ENOTTY before 5.9).
    let probe = sys::notif_set_fd(listener.as_raw_fd(), 0, listener.as_raw_fd(), 1000, true);
    match probe {
        Err(e) if e.errno() == libc::ENOENT => true,
        other => {
            trace!("broker: ADDFD with SETFD: {other:?}");
            false
        }
    }
}

/// [`can_replace_sockets`], asked before any workload exists (Landlock
/// mode decides before its report line): a throwaway child installs a
/// filter with a listener, for a call it never makes, and sends the
/// listener over. The kernel checks ADDFD's flags before it looks for
/// the call, so a listener whose process is gone answers the same.
pub fn can_replace_sockets_here() -> bool {
    const LD_NR: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let never_made = [
        insn(LD_NR, 0, 0, 0),
        insn(JEQ, 0, 1, libc::SYS_getppid as u32),
        insn(RET, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
        insn(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let Ok((ours, theirs)) = sys::seqpacket_pair(false) else {
        return false;
    };
    match sys::fork() {
        Ok(sys::Fork::Child) => {
            drop(ours);
            if let Ok(listener) = sys::seccomp_install_listener(&never_made) {
                let _ = sys::send_fd(theirs.as_raw_fd(), listener.as_raw_fd());
            }
            sys::exit_now(0)
        }
        Ok(sys::Fork::Parent(pid)) => {
            drop(theirs);
            let listener = sys::receive_fd(ours.as_raw_fd());
            let _ = sys::wait_pid(pid);
            listener.is_ok_and(|l| can_replace_sockets(&l))
        }
        Err(_) => false,
    }
}

/// Starts the broker's first thread; the pool grows from there.
pub fn start(broker: Broker) -> Result<()> {
    trace!("broker: {:?}", broker.mechanism);
    let shared = Arc::new(Shared {
        broker,
        servers: Mutex::new(Servers::new()),
        pidfds: Mutex::new(VecDeque::new()),
        roots: Mutex::new(VecDeque::new()),
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
/// number is a path to what it refers to. Where unshare is refused
/// whole (a container's profile: Landlock mode), the directory becomes
/// the process's: every broker thread wants that same one, and nothing
/// else in the broker's process resolves a relative path.
fn enter_own_descriptors(proc: RawFd) -> sys::SysResult<()> {
    match sys::unshare(libc::CLONE_FS) {
        Err(e) if e.errno() != libc::EPERM => return Err(e),
        _ => {}
    }
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
        match shared.answer(&n) {
            // ENOENT: the caller was killed meanwhile; nobody to tell.
            Reply::Result(val, errno) => {
                let _ = sys::notif_respond(listener, n.id, val, errno);
            }
            Reply::Continue => {
                let _ = sys::notif_continue(listener, n.id);
            }
            Reply::Gone => {}
        }
        if shared.idle.load(Ordering::SeqCst) >= MAX_IDLE {
            shared.threads.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        shared.idle.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the broker tells the kernel about a call.
pub(super) enum Reply {
    /// The call's result: its return value and errno (0: success).
    Result(i64, i32),
    /// Let the kernel make the call: only for a listen without
    /// `pidfd_getfd`, whose only arguments are numbers (replace.rs).
    Continue,
    /// The caller is gone: nobody to answer, and nothing was done.
    Gone,
}

pub(super) fn failed(errno: i32) -> Reply {
    Reply::Result(-1, errno)
}

/// The reply for a call the broker made, from its errno (0: success).
pub(super) fn done(errno: i32) -> Reply {
    if errno == 0 {
        Reply::Result(0, 0)
    } else {
        failed(errno)
    }
}

impl Shared {
    fn answer(&self, n: &Notification) -> Reply {
        let take = self.broker.mechanism == Mechanism::TakeSocket;
        match request(n) {
            Request::Connect { fd, addr, len } if take => self.take_and_connect(n, fd, addr, len),
            Request::Connect { fd, addr, len } => self.replace_and_connect(n, fd, addr, len),
            Request::Listen { fd, backlog } if take => self.take_and_listen(n, fd, backlog),
            Request::Listen { fd, .. } => self.record_and_continue(n, fd),
            Request::Unknown => failed(libc::ENOSYS),
        }
    }

    /// Whether the call is still waiting for its answer: after reading
    /// from the caller, this proves the reads were of the caller (its pid
    /// was not reused in between).
    pub fn still_waiting(&self, n: &Notification) -> bool {
        sys::notif_id_valid(self.broker.listener.as_raw_fd(), n.id)
    }

    /// A connect's address, copied once from the caller's memory by
    /// `read`, or the reply to give: EINVAL for one longer than connect
    /// takes, EFAULT for one that cannot be read.
    pub fn copy_address(
        &self,
        n: &Notification,
        addr: u64,
        len: u32,
        read: impl FnOnce(u64, usize) -> sys::SysResult<Vec<u8>>,
    ) -> Result<Vec<u8>, Reply> {
        let len = len as usize;
        if len > MAX_ADDRESS {
            return Err(failed(libc::EINVAL));
        }
        match read(addr, len) {
            Ok(bytes) if bytes.len() == len => Ok(bytes),
            _ if self.still_waiting(n) => Err(failed(libc::EFAULT)),
            _ => Err(Reply::Gone),
        }
    }

    /// What was taken from the caller (its socket, what its descriptor
    /// is), kept only if its call still waits: the reads were then of the
    /// caller. Otherwise the reply to give (none when it is gone).
    pub fn confirm<T>(&self, n: &Notification, taken: Result<T, i32>) -> Result<T, Reply> {
        if !self.still_waiting(n) {
            return Err(Reply::Gone);
        }
        taken.map_err(failed)
    }
}
