//! The launcher: `run`'s own checklist, from a parsed plan to the
//! workload's exit code. Runs with the caller's privileges, in the host's
//! PID and mount namespaces (and a new network namespace with
//! `--unshare-net`); it never starts a thread, so every fork below is a
//! fork of a single-threaded process.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::context::{Forwarding, Prepared, Signals, close_passed_fds};
use super::mount::deny::stubs::RuntimeDir;
use super::status::{self, Wording};
use super::{info, namespaces, pid1, relays};
use crate::failure::{Problem, Setting};
use crate::log::trace;
use crate::plan::{MountOp, RunSpec};
use crate::probe::Features;
use crate::sys::{self, ChildStatus, Fork};

/// Runs the sandbox and returns the exit code to leave with: the
/// launcher's checklist, one named step per line, in the order the steps
/// must happen. `wording` is how the front-end words the line of a
/// failure a child reports.
pub fn launch(spec: RunSpec, parent_pid: i32, wording: Wording) -> Result<i32> {
    // Before any namespace: inside one, the euid is the mapped one.
    let caller_is_root = sys::ids().1 == 0;
    // Before this process opens any descriptor of its own.
    let passed_fds = passed_fds(&spec);
    // 1–2. no_new_privs, then die with the spawner.
    harden_self(&spec, parent_pid)?;
    // 3. Signals: blocked and read from a signalfd from here on, so one
    //    that arrives during setup is seen, not lost.
    let signals = Signals::take()?;
    let features = Features::detect();
    let unix_by_landlock =
        !spec.unix_grants.is_empty() && crate::broker::landlock::kernel_enforces_grants();
    if unix_by_landlock {
        trace!("--allow-unix: enforced by Landlock, no broker");
    }
    // 4. Only the caller's descriptors that are the command's reach it.
    claim_descriptors(&spec, features)?;
    // 5. What must be read in the host's view, before the namespaces. The
    //    terminal state is put back when we return, however the workload
    //    left it (TerminalGuard's drop).
    let _terminal = TerminalGuard::save();
    let host = HostView::read(&spec)?;
    // 6. The network namespace first, with the relays forked into it while
    //    they still share the host's PID and mount namespaces.
    let mut ns = namespace_entry(&spec)?;
    let relays = enter_network(&spec, &mut ns, wording)?;
    // 7. PID, IPC, UTS and cgroup namespaces; our next child is PID 1.
    enter_other_namespaces(&spec, &mut ns)?;
    // Non-dumpable before the first fork: nothing in the sandbox can
    // ptrace or read the memory of the launcher or PID 1 (neither runs
    // under the seccomp filter).
    sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;
    // 8. The pipes between the launcher and PID 1's tree.
    let pipes = Pipes::open(&spec)?;
    let prepared = Prepared {
        spec,
        features,
        signals,
        cwd: host.cwd,
        tty: host.tty,
        runtime: host.runtime,
        caller_is_root,
        private_dirs: host.private_dirs,
        report_pid: None,
        passed_fds,
        wording,
        escape_sockets: host.escape_sockets,
        unix_by_landlock,
    };
    // 9. PID 1, then the launcher's wait.
    spawn_pid1(prepared, pipes, relays)
}

/// bwrap mode: the descriptors the caller passes to the command, listed
/// before this process opens any of its own (those an option consumes are
/// the launcher's and not in the list).
fn passed_fds(spec: &RunSpec) -> Vec<i32> {
    if !spec.process.keep_inherited_fds {
        return Vec::new();
    }
    let consumed = spec.consumed_fds();
    open_fds_above_2()
        .into_iter()
        .filter(|fd| !consumed.contains(fd))
        .collect()
}

/// Steps 1 and 2: no_new_privs before anything else, so nothing this
/// process or its descendants execute can gain privileges (setuid bits,
/// file capabilities); then the parent-death signal, compared with the
/// parent seen at the very start (a parent that died before this would
/// never signal us). Without die-with-parent (bwrap mode's default) the
/// sandbox outlives its spawner: a detached VM box depends on that.
pub(crate) fn harden_self(spec: &RunSpec, parent_pid: i32) -> Result<()> {
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;
    if spec.process.die_with_parent && !sys::die_with_parent(parent_pid)? {
        bail!("the spawning process exited before the sandbox started");
    }
    Ok(())
}

/// Step 4: descriptors the spawner leaked (not CLOEXEC) must not reach the
/// workload; everything the launcher opens itself is CLOEXEC. The
/// descriptors an option consumes are the launcher's alone. In bwrap mode
/// the caller's other descriptors are the command's, as bubblewrap passes
/// them.
fn claim_descriptors(spec: &RunSpec, features: Features) -> Result<()> {
    for (setting, fd) in [
        (Setting::JsonStatusFd, spec.json_status_fd),
        (Setting::InfoFd, spec.info_fd),
        (Setting::BlockFd, spec.process.block_fd),
    ] {
        if let Some(fd) = fd
            && !sys::is_valid_fd(fd)
        {
            return Err(Problem::NotOpen { setting, fd }.into());
        }
    }
    if !spec.process.keep_inherited_fds {
        return mark_inherited_fds_cloexec(features);
    }
    for fd in spec.consumed_fds() {
        if sys::is_valid_fd(fd) {
            sys::set_cloexec(fd).with_context(|| format!("mark descriptor {fd} close-on-exec"))?;
        }
    }
    Ok(())
}

/// Step 5: what the launcher reads in the host's view while it still has
/// it.
struct HostView {
    cwd: Option<PathBuf>,
    /// The terminal on our stdout, bound as `/dev/console` by `--dev`.
    tty: Option<OsString>,
    /// Deny paths: the stub bookkeeping, after collecting what killed
    /// launchers left.
    runtime: Option<RuntimeDir>,
    private_dirs: Vec<PathBuf>,
    /// `--allow-unix`: the way-out sockets the grants are compared with.
    escape_sockets: Vec<crate::broker::EscapeSocket>,
}

impl HostView {
    fn read(spec: &RunSpec) -> Result<HostView> {
        let has_deny = spec
            .mounts
            .iter()
            .any(|step| matches!(step.op, MountOp::Deny { .. }));
        let runtime = if has_deny {
            let runtime = RuntimeDir::open().context("deny paths")?;
            runtime.collect_leftovers();
            Some(runtime)
        } else {
            None
        };
        Ok(HostView {
            cwd: std::env::current_dir().ok(),
            tty: sys::isatty(1).then(|| sys::ttyname(1).ok()).flatten(),
            runtime,
            private_dirs: RuntimeDir::all_of(sys::ids().1),
            escape_sockets: if spec.unix_grants.is_empty() {
                Vec::new()
            } else {
                crate::broker::host_escape_sockets()
            },
        })
    }
}

/// How the namespaces are entered (see namespaces.rs), and bwrap's
/// `--userns`: the sandbox lives in the caller's user namespace, joined
/// (with every capability in it) instead of made.
fn namespace_entry(spec: &RunSpec) -> Result<namespaces::Entry> {
    let mut ns = namespaces::Entry::new(spec.namespaces.user || spec.disable_userns);
    ns.inner_uid = spec.process.uid;
    ns.inner_gid = spec.process.gid;
    ns.forbid_nested = spec.disable_userns;
    ns.caller_maps = spec.process.userns_block_fd.is_some();
    if let Some(fd) = spec.namespaces.user_fd {
        sys::setns(fd, libc::CLONE_NEWUSER).map_err(|e| {
            if e.errno() == libc::EINVAL {
                anyhow::Error::new(Problem::NotADescendantUserNamespace)
            } else {
                anyhow::Error::new(e).context(Problem::JoinUserNamespace)
            }
        })?;
        ns.in_userns = true;
    }
    Ok(ns)
}

/// Step 6: the sandbox's network namespace with loopback up, and the
/// relays forked into it.
fn enter_network(
    spec: &RunSpec,
    ns: &mut namespaces::Entry,
    wording: Wording,
) -> Result<Option<relays::Running>> {
    if !spec.namespaces.net {
        return Ok(None);
    }
    // --expose: the host's loopback ports, bound while this process is
    // still in the host's network namespace; the relay process serves
    // them from inside, forwarding inward only.
    let exposed = relays::prepare_exposed(&spec.exposes)?;
    ns.unshare(libc::CLONE_NEWNET)?;
    namespaces::loopback_up()?;
    let mut prepared = relays::prepare(&spec.relays)?;
    prepared.extend(exposed);
    // Non-dumpable before the first fork (after the id maps, which need
    // our /proc files to be ours): the workload can neither ptrace nor read
    // or write the memory of the launcher, a relay or PID 1.
    if !prepared.is_empty() {
        sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;
    }
    Ok(Some(relays::spawn(prepared, wording)?))
}

/// Step 7: the PID, IPC, UTS and cgroup namespaces (`run` takes all four;
/// bwrap mode those asked for). PID 1 takes the mount namespace itself
/// (pid1.rs), so that the launcher keeps the host's view. IPC: the host's
/// SysV objects and POSIX queues are out of sight. UTS: the hostname is a
/// copy. cgroup: /proc/self/cgroup shows "/" instead of the host's
/// hierarchy. With none of them, a user namespace is still taken when we
/// lack CAP_SYS_ADMIN, for PID 1's mount namespace.
fn enter_other_namespaces(spec: &RunSpec, ns: &mut namespaces::Entry) -> Result<()> {
    ns.unshare(namespaces::launcher_flags(&spec.namespaces))?;
    // bwrap's --pidns: our children are born in the caller's PID namespace.
    if let Some(fd) = spec.namespaces.pid_fd {
        sys::setns(fd, libc::CLONE_NEWPID).context(Problem::JoinPidNamespace)?;
    }
    trace!("namespaces entered (user namespace: {})", ns.in_userns);
    // The UTS namespace is the sandbox's own (and ours, with the
    // capability over it): the host's hostname is untouched. (Both
    // front-ends refuse --hostname without a new UTS namespace.)
    if let Some(name) = &spec.hostname {
        sys::sethostname(name).context(Problem::InSetting(Setting::Hostname))?;
    }
    // bwrap's --userns-block-fd: the caller maps our user namespace's ids
    // itself (newuidmap, say), from our pid on --info-fd (our /proc files
    // are still ours to be written: dumpable), then writes one byte.
    if let Some(fd) = spec.process.userns_block_fd {
        let ids = info::launcher_namespace_ids(&spec.namespaces);
        info::write_info(spec, sys::getpid(), &ids);
        let mut byte = [0u8; 1];
        let _ = sys::read(fd, &mut byte);
        let _ = sys::close(fd);
    }
    Ok(())
}

/// Step 8: the pipes between the launcher and PID 1's tree, each end
/// close-on-exec.
struct Pipes {
    /// The setup-status pipe (see status.rs).
    status: (OwnedFd, OwnedFd),
    /// Its hang-up tells PID 1 the launcher is already gone.
    alive: (OwnedFd, OwnedFd),
    /// For --info-fd and --json-status-fd: PID 1's mount namespace id.
    mount_ns: Option<(OwnedFd, OwnedFd)>,
    /// For the same documents: the command's pid. The documents name the
    /// command (the caller may open it in /proc; PID 1 is not dumpable);
    /// under a reaper it is PID 1's child, whose pid only the kernel can
    /// translate for us. The process that will execute the command sends
    /// its credentials, then waits for our answer: the documents are out
    /// before the command runs, as bubblewrap has it.
    command_pid: Option<(OwnedFd, OwnedFd)>,
}

impl Pipes {
    fn open(spec: &RunSpec) -> Result<Pipes> {
        let wants_ids = spec.info_fd.is_some() || spec.json_status_fd.is_some();
        Ok(Pipes {
            status: sys::pipe_cloexec()?,
            alive: sys::pipe_cloexec()?,
            mount_ns: wants_ids.then(sys::pipe_cloexec).transpose()?,
            command_pid: wants_ids.then(sys::credentials_pair).transpose()?,
        })
    }
}

/// Step 9: forks PID 1 (which inherits the blocked mask and the
/// signalfd), then waits as the launcher.
fn spawn_pid1(
    mut prepared: Prepared,
    pipes: Pipes,
    relays: Option<relays::Running>,
) -> Result<i32> {
    let Pipes {
        status: (status_r, status_w),
        alive: (alive_r, alive_w),
        mount_ns,
        command_pid,
    } = pipes;
    let (mnt_r, mnt_w) = mount_ns.unzip();
    let (pid_r, pid_w) = command_pid.unzip();
    prepared.report_pid = pid_w;
    match sys::fork().context("fork PID 1")? {
        Fork::Child => {
            drop((status_r, alive_w, mnt_r, pid_r));
            pid1::pid1(&prepared, status_w, alive_r, mnt_w)
        }
        Fork::Parent(pid1) => {
            drop((status_w, alive_r, mnt_w));
            drop(prepared.report_pid.take());
            close_passed_fds(&prepared);
            // From here the launcher only waits and forwards signals to a
            // process of its own uid: it needs no capability, so it keeps
            // none (as root, it would otherwise hold the host's full set).
            crate::caps::drop_all().context("drop the launcher's capabilities")?;
            if let (Some(mnt_r), Some(pid_r)) = (mnt_r, pid_r) {
                announce(&prepared, pid1, &mnt_r, &pid_r);
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
                runtime.collect_unused(None);
            }
            outcome
        }
    }
}

/// --info-fd and --json-status-fd: the namespace ids (ours, and PID 1's
/// mount namespace, which exists only after the fork) and the command's
/// pid, then the go for the command.
fn announce(prepared: &Prepared, pid1: i32, mnt_r: &OwnedFd, pid_r: &OwnedFd) {
    let mut ids = info::launcher_namespace_ids(&prepared.spec.namespaces);
    ids.extend(info::read_mount_namespace_id(mnt_r));
    let command_pid = match sys::receive_credentials_pid(pid_r.as_raw_fd()) {
        Ok(Some(pid)) => pid,
        other => {
            trace!("the command's pid was not reported ({other:?})");
            pid1
        }
    };
    info::announce(&prepared.spec, command_pid, &ids);
    // A reader that is gone has failed already and says so over the status
    // pipe.
    let _ = sys::write_all(pid_r.as_raw_fd(), &[1]);
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
    if let Some(report) = status::decode(&record) {
        return Err(anyhow::Error::new(report));
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
