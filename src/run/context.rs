//! What every process role of the namespace executor shares: the plan as
//! the launcher prepared it ([`Prepared`]), and the signals it forwards.
//! Built by the launcher before its first fork; PID 1 and the workload
//! inherit it by fork.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::mount::deny::stubs::RuntimeDir;
use super::status::Wording;
use crate::plan::RunSpec;
use crate::probe::Features;
use crate::sys;

/// Signals the launcher and PID 1 pass on to the workload (SPEC §2.6).
pub const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The signal state the caller gave us, and the signalfd the launcher and
/// PID 1 read their signals from.
pub struct Signals {
    /// The mask to hand back to the workload before execve.
    pub caller_mask: libc::sigset_t,
    pub fd: OwnedFd,
}

impl Signals {
    /// Blocks the forwarded signals and SIGCHLD and opens a signalfd for
    /// them. No handler is installed, so the workload inherits the caller's
    /// dispositions untouched; only an ignored SIGCHLD is reset, because it
    /// would make children vanish unwaited (ours and the workload's).
    pub fn take() -> Result<Signals> {
        let mut watched = FORWARDED.to_vec();
        watched.push(libc::SIGCHLD);
        let set = sys::sigset_of(&watched);
        let caller_mask = sys::sigprocmask(libc::SIG_BLOCK, &set).context("block signals")?;
        if sys::signal_is_ignored(libc::SIGCHLD)? {
            sys::signal_default(libc::SIGCHLD)?;
        }
        let fd = sys::signalfd(&set).context("open a signalfd")?;
        Ok(Signals { caller_mask, fd })
    }
}

/// Everything PID 1 and the workload inherit from the launcher.
pub struct Prepared {
    pub spec: RunSpec,
    pub features: Features,
    pub signals: Signals,
    /// The spawn-time working directory (host path), if it could be read.
    pub cwd: Option<PathBuf>,
    /// The terminal on our stdout, bound as `/dev/console` by `--dev`.
    pub tty: Option<OsString>,
    /// The per-user runtime directory for deny-path stubs, opened when the
    /// plan has deny paths.
    pub runtime: Option<RuntimeDir>,
    /// Whether the caller is the host's root (euid 0 before any
    /// namespace): its workload runs as the uid procfs lets write kernel
    /// knobs.
    pub caller_is_root: bool,
    /// Every runtime directory of this user on the host, hidden in the
    /// sandbox wherever a bind would show it (any plan, any front-end).
    pub private_dirs: Vec<PathBuf>,
    /// For --info-fd and --json-status-fd: where the process that will
    /// run the command sends its credentials (the launcher learns its pid
    /// in the caller's PID namespace) and then waits for the launcher's
    /// answer, so the documents are out before the command runs.
    pub report_pid: Option<OwnedFd>,
    /// bwrap mode: the caller's descriptors that belong to the command
    /// (see [`close_passed_fds`]).
    pub passed_fds: Vec<i32>,
    /// The front-end's words for a failure line PID 1 or the workload
    /// reports.
    pub wording: Wording,
    /// With `--allow-unix`: the host's way-out sockets by inode, read
    /// in the host's view for PID 1 to compare the pinned grants with.
    pub escape_sockets: Vec<crate::broker::EscapeSocket>,
    /// With `--allow-unix`: the kernel enforces the grants (Landlock ABI
    /// 9), so there is no broker; PID 1 hands the pins to the workload.
    pub unix_by_landlock: bool,
}

/// Which received signals the launcher and PID 1 pass on.
#[derive(Clone, Copy)]
pub struct Forwarding {
    /// Also those a terminal sent (SI_KERNEL): wanted when the sandbox is
    /// in a session of its own, which the terminal cannot reach.
    pub terminal_signals: bool,
}

impl Forwarding {
    pub fn wants(self, received: sys::ReceivedSignal) -> bool {
        self.terminal_signals || !received.from_kernel
    }
}

/// Closes the caller's descriptors that are the command's, not ours (bwrap
/// mode passes them on): once the process that will run the command has
/// them, the launcher, PID 1 and any relay between must not keep them
/// open, or a caller reading a passed pipe would see its end only when the
/// whole sandbox ends (bubblewrap's monitor and PID 1 close them too).
pub fn close_passed_fds(prepared: &Prepared) {
    for fd in &prepared.passed_fds {
        let _ = sys::close(*fd);
    }
}
