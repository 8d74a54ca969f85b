//! `run`: the launcher's own checklist, from a parsed [`RunSpec`] to the
//! workload's exit code.
//!
//! Process roles (SPEC §2.4), one function each:
//!
//! ```text
//! launcher  (this module)  host PID and mount ns, new net ns; waits,
//!                          forwards
//! └── PID 1 (init.rs)      new mount ns: builds the mount tree, reaps,
//!                          forwards
//!     └── workload (exec.rs)  drops everything, seccomp, execve
//! ```
//!
//! The launcher runs with the caller's privileges. It never starts a thread,
//! so every fork below is a fork of a single-threaded process.

mod exec;
mod info;
mod init;
mod mount;
mod relays;
mod resolve;
pub mod selftest;
pub mod spec;
mod status;
mod userns;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::log::trace;
use crate::stubs::RuntimeDir;
use crate::sys::{self, ChildStatus, Fork};
use spec::{MountOp, RunSpec};

/// Signals the launcher and PID 1 pass on to the workload (SPEC §2.6).
pub const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The namespaces the launcher takes for every `run` sandbox (SPEC §2.2;
/// `Namespaces::default()`), which `check` rehearses. The network
/// namespace is taken first (for the relays, and only with
/// `--unshare-net`); the mount namespace is PID 1's own (init.rs).
pub const SANDBOX_NAMESPACES: i32 =
    libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWCGROUP;

/// Which newer kernel interfaces this kernel has, probed once per run.
/// Each has a fallback for Linux 4.18 that the tests force by making the
/// calls fail with ENOSYS.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// openat2 with RESOLVE_IN_ROOT (5.6).
    pub openat2: bool,
    /// open_tree + move_mount (5.2) and mount_setattr (5.12).
    pub new_mount_api: bool,
    /// close_range with CLOSE_RANGE_CLOEXEC (5.11).
    pub close_range: bool,
}

impl Features {
    pub fn detect() -> Features {
        let features = Features {
            openat2: sys::syscall_exists(libc::SYS_openat2),
            new_mount_api: sys::syscall_exists(libc::SYS_open_tree)
                && sys::syscall_exists(libc::SYS_move_mount)
                && sys::syscall_exists(libc::SYS_mount_setattr),
            close_range: sys::syscall_exists(libc::SYS_close_range),
        };
        trace!(
            "kernel interfaces: openat2={} new-mount-api={} close_range={}",
            features.openat2, features.new_mount_api, features.close_range
        );
        features
    }
}

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
    fn take() -> Result<Signals> {
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
}

/// Runs the sandbox and returns the exit code to leave with.
pub fn launch(spec: RunSpec, parent_pid: i32) -> Result<i32> {
    // Before any namespace: inside one, the euid is the mapped one.
    let caller_is_root = sys::ids().1 == 0;
    // bwrap mode: the descriptors the caller passes to the command, listed
    // before this process opens any of its own (those an option consumes
    // are the launcher's and not in the list).
    let passed_fds = if spec.process.keep_inherited_fds {
        let consumed = spec.consumed_fds();
        open_fds_above_2()
            .into_iter()
            .filter(|fd| !consumed.contains(fd))
            .collect()
    } else {
        Vec::new()
    };

    // 1. no_new_privs before anything else: nothing this process or its
    //    descendants execute can gain privileges (setuid bits, file caps).
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;

    // 2. Die with the spawner, compared with the parent seen at the very
    //    start (a parent that died before this would never signal us).
    //    Without it (bwrap mode's default) the sandbox outlives its
    //    spawner: a detached VM box depends on that.
    if spec.process.die_with_parent && !sys::die_with_parent(parent_pid)? {
        bail!("the spawning process exited before the sandbox started");
    }

    // 3. Signals: blocked and read from a signalfd from here on, so one
    //    that arrives during setup is seen, not lost.
    let signals = Signals::take()?;
    let features = Features::detect();

    // 4. Descriptors the spawner leaked (not CLOEXEC) must not reach the
    //    workload; everything the launcher opens itself is CLOEXEC. The
    //    --json-status-fd descriptor is the launcher's alone, too. In bwrap
    //    mode the caller's descriptors are the command's, as bubblewrap
    //    passes them, except those an option consumes.
    for (option, fd) in [
        ("--json-status-fd", spec.json_status_fd),
        ("--info-fd", spec.info_fd),
        ("--block-fd", spec.process.block_fd),
    ] {
        if let Some(fd) = fd
            && !sys::is_valid_fd(fd)
        {
            bail!("{option} {fd}: not an open descriptor");
        }
    }
    if spec.process.keep_inherited_fds {
        for fd in spec.consumed_fds() {
            if sys::is_valid_fd(fd) {
                sys::set_cloexec(fd)
                    .with_context(|| format!("mark descriptor {fd} close-on-exec"))?;
            }
        }
    } else {
        mark_inherited_fds_cloexec(features)?;
    }

    // 5. What must be read in the host's view, before the namespaces.
    //    The terminal state is put back when we return, however the
    //    workload left it (TerminalGuard's drop).
    let _terminal = TerminalGuard::save();
    let cwd = std::env::current_dir().ok();
    // Deny paths: the stub bookkeeping, and what killed launchers left.
    let runtime = if spec
        .mounts
        .iter()
        .any(|op| matches!(op, MountOp::Deny { .. }))
    {
        let runtime = RuntimeDir::open().context("deny paths")?;
        collect_leftovers(&runtime);
        Some(runtime)
    } else {
        None
    };
    let private_dirs = RuntimeDir::all_of(sys::ids().1);
    let tty = if sys::isatty(1) {
        sys::ttyname(1).ok()
    } else {
        None
    };

    // 6. The network namespace first, so the relays can be forked into it
    //    while they still share the host's PID and mount namespaces.
    let mut ns = userns::Entry::new(spec.namespaces.user || spec.disable_userns);
    ns.inner_uid = spec.process.uid;
    ns.inner_gid = spec.process.gid;
    ns.forbid_nested = spec.disable_userns;
    ns.caller_maps = spec.process.userns_block_fd.is_some();
    // bwrap's --userns: the sandbox lives in the caller's user namespace,
    // joined (with every capability in it) instead of made.
    if let Some(fd) = spec.namespaces.user_fd {
        sys::setns(fd, libc::CLONE_NEWUSER).map_err(|e| {
            if e.errno() == libc::EINVAL {
                anyhow::anyhow!(
                    "Joining the specified user namespace failed, it might not be a descendant of the current user namespace."
                )
            } else {
                anyhow::Error::new(e).context("Joining specified user namespace failed")
            }
        })?;
        ns.in_userns = true;
    }
    let mut relays = None;
    if spec.namespaces.net {
        ns.unshare(libc::CLONE_NEWNET)?;
        userns::loopback_up()?;
        let prepared = relays::prepare(&spec.relays)?;
        // Non-dumpable before the first fork (after the id maps, which
        // need our /proc files to be ours): the workload can neither ptrace
        // nor read or write the memory of the launcher, a relay or PID 1.
        if !spec.relays.is_empty() {
            sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;
        }
        relays = Some(relays::spawn(prepared)?);
    }

    // 7. PID, IPC, UTS and cgroup namespaces (`run` takes all four; bwrap
    //    mode those asked for); our next child is the new PID 1, which
    //    takes the mount namespace itself (init.rs), so that the launcher
    //    keeps the host's view. IPC: the host's SysV objects and POSIX
    //    queues are out of sight. UTS: the hostname is a copy (kept as it
    //    was). cgroup: /proc/self/cgroup shows "/" instead of the host's
    //    hierarchy. With none of them, a user namespace is still taken
    //    when we lack CAP_SYS_ADMIN, for PID 1's mount namespace.
    ns.unshare(spec.namespaces.launcher_flags())?;
    // bwrap's --pidns: our children are born in the caller's PID namespace.
    if let Some(fd) = spec.namespaces.pid_fd {
        sys::setns(fd, libc::CLONE_NEWPID).context("Setting pidns failed")?;
    }
    trace!("namespaces entered (user namespace: {})", ns.in_userns);
    // The UTS namespace is the sandbox's own (and ours, with the
    // capability over it): the host's hostname is untouched. (Both
    // front-ends refuse --hostname without a new UTS namespace.)
    if let Some(name) = &spec.hostname {
        sys::sethostname(name).context("--hostname")?;
    }
    // bwrap's --userns-block-fd: the caller maps our user namespace's ids
    // itself (newuidmap, say), from our pid on --info-fd (our /proc files
    // are still ours to be written: dumpable), then writes one byte.
    if let Some(fd) = spec.process.userns_block_fd {
        info::write_info(
            &spec,
            sys::getpid(),
            &info::launcher_namespace_ids(&spec.namespaces),
        );
        let mut byte = [0u8; 1];
        let _ = sys::read(fd, &mut byte);
        let _ = sys::close(fd);
    }
    // Non-dumpable before the first fork: nothing in the sandbox can
    // ptrace or read the memory of the launcher or PID 1 (neither runs
    // under the seccomp filter).
    sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;

    // 8. The setup-status pipe (see status.rs) and a pipe whose hang-up
    //    tells PID 1 the launcher is already gone. The namespace ids for
    //    --info-fd and --json-status-fd: ours now, PID 1's mount namespace
    //    over a pipe once it exists.
    let (status_r, status_w) = sys::pipe_cloexec()?;
    let (alive_r, alive_w) = sys::pipe_cloexec()?;
    let wants_ids = spec.info_fd.is_some() || spec.json_status_fd.is_some();
    let mnt_pipe = if wants_ids {
        Some(sys::pipe_cloexec()?)
    } else {
        None
    };
    let (mnt_r, mnt_w) = match mnt_pipe {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    // The pid the documents name is the command's, which the caller may
    // open in /proc (PID 1 is not dumpable); under a reaper it is PID 1's
    // child, whose pid only the kernel can translate for us. The process
    // that will execute the command sends its credentials, then waits for
    // our answer: the documents are out before the command runs, as
    // bubblewrap has it.
    let (pid_r, pid_w) = if wants_ids {
        let (r, w) = sys::credentials_pair()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let prepared = Prepared {
        spec,
        features,
        signals,
        cwd,
        tty,
        runtime,
        caller_is_root,
        private_dirs,
        report_pid: pid_w,
        passed_fds,
    };

    // 9. PID 1. It inherits the blocked mask and the signalfd.
    match sys::fork().context("fork PID 1")? {
        Fork::Child => {
            drop(status_r);
            drop(alive_w);
            drop(mnt_r);
            drop(pid_r);
            init::pid1(&prepared, status_w, alive_r, mnt_w)
        }
        Fork::Parent(pid1) => {
            drop(status_w);
            drop(alive_r);
            drop(mnt_w);
            let mut prepared = prepared;
            drop(prepared.report_pid.take());
            close_passed_fds(&prepared);
            // From here the launcher only waits and forwards signals to a
            // process of its own uid: it needs no capability, so it keeps
            // none (as root, it would otherwise hold the host's full set).
            crate::caps::drop_all().context("drop the launcher's capabilities")?;
            if let Some(mnt_r) = mnt_r {
                // After the fork: until the PID namespace has its first
                // process, pid_for_children names nothing.
                let mut ids = info::launcher_namespace_ids(&prepared.spec.namespaces);
                ids.extend(info::read_mount_namespace_id(&mnt_r));
                let pid_r = pid_r.expect("made with the mount pipe");
                let command_pid = match sys::receive_credentials_pid(pid_r.as_raw_fd()) {
                    Ok(Some(pid)) => pid,
                    other => {
                        trace!("the command's pid was not reported ({other:?})");
                        pid1
                    }
                };
                info::announce(&prepared.spec, command_pid, &ids);
                // The go for the command (a reader that is gone has failed
                // already and says so over the status pipe).
                let _ = sys::write_all(pid_r.as_raw_fd(), &[1]);
            }
            let forward = Forwarding {
                // Outside a new session the terminal's own signals reach
                // the workload directly; forwarding them too would deliver
                // them twice.
                terminal_signals: prepared.spec.process.new_session,
            };
            let outcome = supervise(
                pid1,
                &status_r,
                &prepared.signals,
                forward,
                prepared.spec.json_status_fd,
            );
            // PID 1 is gone; the relays go with it (Running's drop).
            drop(relays);
            drop(alive_w);
            // PID 1's stub locks went with it: the stubs no other sandbox
            // holds are removed now, in the host's view we kept.
            if let Some(runtime) = &prepared.runtime {
                collect_stubs(runtime, None);
            }
            outcome
        }
    }
}

/// Waits for PID 1 while forwarding signals; returns the code to exit with.
///
/// Until the status pipe reaches EOF the workload does not exist yet: a
/// forwarded signal then ends the whole sandbox (SIGKILL to PID 1 takes its
/// namespace with it) and the launcher exits with 128+N.
fn supervise(
    pid1: i32,
    status: &OwnedFd,
    signals: &Signals,
    forward: Forwarding,
    json_status_fd: Option<i32>,
) -> Result<i32> {
    let mut record = Vec::new();
    let mut status_open = true;
    let mut aborted_by: Option<i32> = None;
    let exited: ChildStatus = loop {
        let mut fds = [
            libc::pollfd {
                fd: signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if status_open { status.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        sys::poll(&mut fds, -1)?;
        if status_open && fds[1].revents != 0 {
            status_open = read_status(status, &mut record)?;
        }
        while let Some(received) = sys::read_signal(signals.fd.as_raw_fd()) {
            let sig = received.signo;
            if sig == libc::SIGCHLD || aborted_by.is_some() || !forward.wants(received) {
                continue;
            }
            if status_open {
                trace!("signal {sig} before the workload started: aborting");
                let _ = sys::kill(pid1, libc::SIGKILL);
                aborted_by = Some(sig);
            } else {
                // ESRCH: PID 1 is already exiting; its status comes next.
                let _ = sys::kill(pid1, sig);
            }
        }
        if let Some((_, st)) = sys::wait_nohang(pid1)? {
            break st;
        }
    };
    // PID 1 is gone, and with it every process of the namespace; what is
    // still in the pipe is complete.
    while status_open {
        status_open = read_status(status, &mut record)?;
    }
    if let Some(sig) = aborted_by {
        return Ok(128 + sig);
    }
    if record.is_empty()
        && let Some(fd) = json_status_fd
    {
        // The command ran (its execve closed the pipe with no failure).
        info::exit_code(fd, exited.exit_code());
    }
    if let Some(failure) = status::decode(&record) {
        return Err(failure.into_error());
    }
    Ok(exited.exit_code())
}

/// The states of the terminals on our stdio at start, put back on drop: a
/// workload may leave the caller's terminal without echo, raw or
/// exclusive (TIOCEXCL), and the caller's next reader would inherit that.
struct TerminalGuard {
    saved: Vec<(i32, sys::TerminalState)>,
}

impl TerminalGuard {
    fn save() -> TerminalGuard {
        let saved = (0..=2)
            .filter(|fd| sys::isatty(*fd))
            .filter_map(|fd| Some((fd, sys::terminal_state(fd).ok()?)))
            .collect();
        TerminalGuard { saved }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        for (fd, state) in &self.saved {
            if let Err(e) = sys::restore_terminal_state(*fd, state) {
                trace!("terminal on fd {fd} not restored: {e}");
            }
        }
    }
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

/// What killed launchers left, within [`crate::stubs::START_BUDGET`]: in
/// our runtime directory first, then in any other this user has (another
/// XDG_RUNTIME_DIR, a fallback from a time its usual name was squatted).
fn collect_leftovers(runtime: &RuntimeDir) {
    let deadline = std::time::Instant::now() + crate::stubs::START_BUDGET;
    collect_stubs(runtime, Some(crate::stubs::START_BUDGET));
    for path in RuntimeDir::all_of(sys::ids().1) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        if path != runtime.path()
            && let Ok(other) = RuntimeDir::open_at(&path, sys::ids().1)
        {
            collect_stubs(&other, Some(left));
        }
    }
}

/// Removes the deny-path stubs no sandbox uses any more. A failure only
/// leaves stubs for the next launcher, so it is traced, not fatal.
fn collect_stubs(runtime: &RuntimeDir, budget: Option<std::time::Duration>) {
    let start = std::time::Instant::now();
    match runtime.collect(budget) {
        Ok(n) => trace!(
            "stubs: {n} record(s) collected in {} ({} us)",
            runtime.path().display(),
            start.elapsed().as_micros()
        ),
        Err(e) => trace!("stubs: collection failed: {e:#}"),
    }
}

/// Reads what is available; returns whether the pipe is still open.
fn read_status(status: &OwnedFd, record: &mut Vec<u8>) -> Result<bool> {
    let mut buf = [0u8; 4096];
    let n = sys::read(status.as_raw_fd(), &mut buf)?;
    record.extend_from_slice(&buf[..n]);
    Ok(n > 0)
}

/// Sets FD_CLOEXEC on every descriptor above 2. With close_range (5.11) it
/// is one call; before that, the list comes from /proc/self/fd (still the
/// host's here), and without /proc from a walk up to the descriptor limit.
fn mark_inherited_fds_cloexec(features: Features) -> Result<()> {
    if features.close_range {
        return sys::close_range_cloexec(3).context("mark inherited descriptors close-on-exec");
    }
    for fd in open_fds_above_2() {
        sys::set_cloexec(fd).context("mark inherited descriptors close-on-exec")?;
    }
    Ok(())
}

/// The descriptors above 2 open now, from /proc/self/fd (still the host's
/// where this is called), or a walk up to the descriptor limit without it.
fn open_fds_above_2() -> Vec<i32> {
    let listed: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..sys::fd_limit()).collect(),
    };
    // The listing's own descriptor is closed by now, so it drops out.
    listed
        .into_iter()
        .filter(|fd| *fd > 2 && sys::is_valid_fd(*fd))
        .collect()
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
