//! PID 1 of the sandbox's PID namespace.
//!
//! Forked by the launcher after the namespaces exist (the mount namespace
//! it takes itself); runs with CAP_SYS_ADMIN over its mount namespace, non-dumpable (inherited), in
//! the new PID namespace as its init. It forks the workload, builds the
//! mount tree while the workload prepares, gives it the go, then only
//! reaps and forwards signals: it stays minimal so that
//! the workload is never PID 1 (which would ignore default-action signals)
//! and so every orphan in the sandbox has a reaper.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result, bail};

use super::context::{FORWARDED, Forwarding, Prepared, close_passed_fds};
use super::mount::deny::stubs::StubLock;
use super::{mount, status, workload};
use crate::exit;
use crate::failure::Problem;
use crate::sys::{self, Fork};

/// Runs PID 1 to the end; never returns. A setup failure is reported to the
/// launcher over `status` (see status.rs) with its exit code.
pub fn pid1(
    prepared: &Prepared,
    status: OwnedFd,
    launcher_alive: OwnedFd,
    mount_ns_id: Option<OwnedFd>,
) -> ! {
    let status_fd = status.as_raw_fd();
    let mut status = Some(status);
    match run(prepared, &mut status, launcher_alive, mount_ns_id) {
        Ok(never) => match never {},
        // The launcher prefixes "run: " when it prints the line.
        Err(e) => status::fail(status_fd, &e, prepared.wording),
    }
}

fn run(
    prepared: &Prepared,
    status: &mut Option<OwnedFd>,
    launcher_alive: OwnedFd,
    mount_ns_id: Option<OwnedFd>,
) -> Result<Infallible> {
    let status_fd = status.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    // 1. Die with the launcher. The death signal is armed after fork, so
    //    check the launcher was still there: its end of `launcher_alive`
    //    closes when it dies, which poll reports as a hang-up.
    exit_if_parent_gone(launcher_alive)?;

    // 1b. bwrap's --pidns with --unshare-pid: this process may stay as
    //     the relay above the real PID 1.
    let mut mount_ns_id = mount_ns_id;
    if let Some(never) = below_joined_pid_namespace(prepared, status, &mut mount_ns_id)? {
        match never {}
    }

    // 2. Leave the caller's session (unless the plan keeps the sandbox in
    //    it, as bwrap does without --new-session): terminal signals go to
    //    the launcher, which forwards them once, instead of reaching PID 1
    //    a second time.
    let process = &prepared.spec.process;
    if process.new_session {
        sys::setsid()?;
    }

    // 3. The sandbox's mount namespace, PID 1's own.
    enter_mount_namespace(prepared, mount_ns_id)?;

    // Without a reaper (no PID namespace, or --as-pid-1) this process
    // builds the tree and then becomes the workload itself: it is the
    // status pipe's only writer, whose execve closes it.
    if !process.reaper {
        if !prepared.spec.unix_grants.is_empty() {
            bail!("--allow-unix needs the sandbox's own PID 1 for its broker");
        }
        let _stub_locks = mount::build_and_enter(&tree_input(prepared))?;
        return workload::become_workload(prepared);
    }

    // 3b. --allow-unix through the broker, without --proc: the broker's
    //     own procfs of this PID namespace, made while the host's /proc is
    //     still in our mount namespace, attached nowhere (broker/procfs.rs).
    let broker_proc = if prepared.unix_by_landlock {
        None
    } else {
        crate::broker::procfs::before_tree(&prepared.spec)?
    };

    // 4. The workload, forked now so that its own setup (session keyring,
    //    seccomp filter) runs while we mount; it waits for our go before
    //    anything that needs the tree (see workload.rs).
    let (workload, go, broker_link) = fork_workload(prepared, status_fd)?;

    // 5. The mount tree, and the --lock-file locks on it; afterwards `/`
    //    is the sandbox root. A failure is reported by pid1(), and our
    //    exit takes the waiting workload with it (it sees EOF without a
    //    go). The stub locks and file locks are held until PID 1 exits,
    //    which is when the sandbox ends (the workload has none).
    let _locks = build_tree_and_lock_files(prepared)?;

    // 5b. --allow-unix: the grants pinned in the finished tree, before the
    //     workload can touch it; then either the workload's listener taken
    //     and the broker's kernel features checked while a refusal can
    //     still be reported, or (Landlock ABI 9) the pins handed to the
    //     workload for its ruleset.
    let broker_setup = match &broker_link {
        Some(link) => prepare_grants(prepared, broker_proc, link)?,
        None => None,
    };

    // 6. The go. The launcher must see EOF on the status pipe before
    //    anything the workload does can be seen outside, or a signal sent
    //    after the workload visibly started would be taken for one that
    //    came before it existed. So PID 1 drops its write end first; after
    //    the go, the workload's own (CLOEXEC) end is the last one, closed
    //    by its execve.
    drop(status.take());
    sys::write_all(go.as_raw_fd(), &[1])?;
    drop(go);

    // 7. Setup is over: reaping and forwarding to a process of our own uid
    //    needs no capability, so PID 1 keeps none from here on.
    crate::caps::drop_all().context("drop PID 1's capabilities")?;

    // 7b. --allow-unix: the broker, with the workload's listener (taken
    //     now unless 5b needed it; if the workload failed before sending
    //     it, it reports why and there is nothing to serve). Its threads
    //     start at the first notified call (a sandbox that never connects
    //     pays for none), after the drop: capabilities are per thread, and
    //     they inherit the empty sets.
    let broker = match (broker_setup, broker_link) {
        (Some(setup), Some(link)) => setup.with_listener(&link),
        _ => None,
    };

    // 8. Reap and forward until the workload exits.
    let forward = Forwarding {
        terminal_signals: process.new_session,
    };
    reap_and_forward(prepared.signals.fd.as_raw_fd(), workload, forward, broker)
}

/// Step 3: the sandbox's mount namespace is PID 1's, not the launcher's:
/// the launcher (the monitor) keeps the host's view, which it needs to
/// remove deny-path stubs after the sandbox ends. Invariant: nothing
/// mounted from here on is visible outside (build_and_enter makes /
/// private before anything else). Its id goes to the launcher for the
/// status documents; without a reaper this process becomes the command,
/// so its pid is the one the launcher reports, sent now so the launcher
/// never waits on the tree's setup (it answers before our execve, see
/// workload.rs).
fn enter_mount_namespace(prepared: &Prepared, mount_ns_id: Option<OwnedFd>) -> Result<()> {
    sys::unshare(libc::CLONE_NEWNS).context("create the mount namespace")?;
    if let Some(pipe) = mount_ns_id {
        super::info::send_mount_namespace_id(pipe);
    }
    if !prepared.spec.process.reaper
        && let Some(fd) = &prepared.report_pid
    {
        sys::send_own_credentials(fd.as_raw_fd()).context("report the command's pid")?;
    }
    Ok(())
}

/// Step 1b, bwrap's `--pidns` with `--unshare-pid`: a new PID namespace
/// below the joined one. The launcher cannot make it (its children's
/// namespace is no longer its own), so this process does and stays as a
/// relay: it forwards signals to the real PID 1, its only child, and
/// leaves with its status (`Some`, never returning otherwise). It holds
/// nothing of the setup (the status pipe and the mount-namespace report
/// are the real PID 1's, which goes on with `None`).
fn below_joined_pid_namespace(
    prepared: &Prepared,
    status: &mut Option<OwnedFd>,
    mount_ns_id: &mut Option<OwnedFd>,
) -> Result<Option<Infallible>> {
    let namespaces = &prepared.spec.namespaces;
    if !namespaces.pid || namespaces.pid_fd.is_none() {
        return Ok(None);
    }
    sys::unshare(libc::CLONE_NEWPID).context("unshare pid ns")?;
    let (relay_alive_r, relay_alive_w) = sys::pipe_cloexec()?;
    match sys::fork().context("fork PID 1")? {
        Fork::Parent(pid1) => {
            drop(status.take());
            drop(mount_ns_id.take());
            drop(relay_alive_r);
            close_passed_fds(prepared);
            let forward = Forwarding {
                terminal_signals: prepared.spec.process.new_session,
            };
            reap_and_forward(prepared.signals.fd.as_raw_fd(), pid1, forward, None).map(Some)
        }
        Fork::Child => {
            // Die with the relay; as PID 1 of the new namespace our
            // parent's pid reads 0, so its end of a pipe tells whether it
            // was already gone when the signal was armed.
            drop(relay_alive_w);
            exit_if_parent_gone(relay_alive_r)?;
            Ok(None)
        }
    }
}

/// Step 4: forks the workload, which shares our mount namespace (so both
/// pivot_roots move its root along with ours) and waits for the go on the
/// returned pipe. Afterwards the workload has the caller's descriptors,
/// and PID 1 keeps none. With `--allow-unix`, also returns PID 1's end of
/// the socket the workload sends its filter's listener over.
fn fork_workload(prepared: &Prepared, status_fd: RawFd) -> Result<(i32, OwnedFd, Option<OwnedFd>)> {
    let (go_r, go_w) = sys::pipe_cloexec()?;
    let link = if prepared.spec.unix_grants.is_empty() {
        None
    } else {
        Some(sys::credentials_pair()?)
    };
    let (ours, theirs) = link.unzip();
    let workload = match sys::fork().context("fork the workload")? {
        Fork::Child => {
            drop(go_w);
            drop(ours);
            workload::workload(prepared, status_fd, go_r, theirs)
        }
        Fork::Parent(pid) => pid,
    };
    drop(go_r);
    drop(theirs);
    close_passed_fds(prepared);
    Ok((workload, go_w, ours))
}

/// What PID 1 prepared for the broker before the go.
struct BrokerSetup {
    pins: Vec<crate::broker::Pin>,
    proc: OwnedFd,
    abstract_ok: bool,
    mechanism: crate::broker::Mechanism,
    /// Taken before the go only where checking the mechanism needed it.
    listener: Option<OwnedFd>,
}

impl BrokerSetup {
    /// The broker, with the listener the workload sent before waiting for
    /// the go (None if it failed first).
    fn with_listener(self, link: &OwnedFd) -> Option<crate::broker::Broker> {
        let listener = match self.listener {
            Some(listener) => listener,
            None => sys::receive_fd(link.as_raw_fd()).ok()?,
        };
        Some(crate::broker::Broker {
            listener,
            pins: self.pins,
            proc: self.proc,
            abstract_ok: self.abstract_ok,
            mechanism: self.mechanism,
            tcp_refused: false,
            relays: Vec::new(),
        })
    }
}

/// Step 5b: pins the grants in the sandbox root (refusing a missing one,
/// a non-socket, a way-out socket by another name). With Landlock ABI 9
/// the pins go to the workload over `link`, and there is no broker;
/// otherwise this checks that the broker can work here (a container
/// without `pidfd_getfd` needs the workload's listener for that, which
/// it sent before waiting for the go) and picks its procfs.
fn prepare_grants(
    prepared: &Prepared,
    made: Option<OwnedFd>,
    link: &OwnedFd,
) -> Result<Option<BrokerSetup>> {
    use crate::broker::{Mechanism, can_take_sockets, check_replacing};
    let grants = &prepared.spec.unix_grants;
    let pins = crate::broker::pin_grants(grants, &prepared.escape_sockets)?;
    if prepared.unix_by_landlock {
        for pin in &pins {
            sys::send_fd(link.as_raw_fd(), pin.fd.as_raw_fd())
                .context("hand the pinned unix sockets to the workload")?;
        }
        return Ok(None);
    }
    let (mechanism, listener) = if can_take_sockets() {
        (Mechanism::TakeSocket, None)
    } else {
        let Ok(listener) = sys::receive_fd(link.as_raw_fd()) else {
            return Ok(None);
        };
        (check_replacing(&grants[0].path, &listener)?, Some(listener))
    };
    Ok(Some(BrokerSetup {
        pins,
        proc: crate::broker::procfs::after_tree(&prepared.spec, made)?,
        abstract_ok: prepared.spec.namespaces.net,
        mechanism,
        listener,
    }))
}

/// Step 5: the mount tree, then `--lock-file`'s read locks on files of the
/// finished tree. Both are held by PID 1 until the sandbox ends: the stub
/// locks keep deny-path stubs in use, and an outside process sees the
/// sandbox alive by failing to take a write lock on a locked file.
fn build_tree_and_lock_files(prepared: &Prepared) -> Result<(Vec<StubLock>, Vec<OwnedFd>)> {
    let stub_locks = mount::build_and_enter(&tree_input(prepared))?;
    let file_locks = prepared
        .spec
        .process
        .lock_files
        .iter()
        .map(|path| lock_file(path))
        .collect::<Result<Vec<_>>>()?;
    Ok((stub_locks, file_locks))
}

fn lock_file(path: &std::path::Path) -> Result<OwnedFd> {
    let fd = sys::open(
        path.as_os_str(),
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .with_context(|| Problem::OpenLockFile {
        path: path.to_path_buf(),
    })?;
    sys::read_lock(fd.as_raw_fd()).with_context(|| Problem::LockFile {
        path: path.to_path_buf(),
    })?;
    Ok(fd)
}

/// Arms SIGKILL on the parent's death, then ends this process if the
/// parent is already gone: `parent_alive` is the read end of a pipe whose
/// only writer is the parent, so a hang-up means it has exited.
fn exit_if_parent_gone(parent_alive: OwnedFd) -> Result<()> {
    sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as u64,
        "PR_SET_PDEATHSIG",
    )?;
    let mut pfd = [libc::pollfd {
        fd: parent_alive.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if sys::poll(&mut pfd, 0)? > 0 {
        sys::exit_now(exit::SETUP);
    }
    Ok(())
}

fn tree_input(prepared: &Prepared) -> mount::TreeInput<'_> {
    mount::TreeInput {
        steps: &prepared.spec.mounts,
        features: prepared.features,
        host_cwd: prepared.cwd.as_deref(),
        tty: prepared.tty.as_deref(),
        runtime: prepared.runtime.as_ref(),
        private_dirs: &prepared.private_dirs,
        proc_covers: mount::ProcCovers::needed(
            prepared.caller_is_root,
            prepared.spec.disable_userns,
        ),
        own_pid_namespace: prepared.spec.namespaces.pid
            || prepared.spec.namespaces.pid_fd.is_some(),
        refuse_symlink_destinations: prepared.spec.refuse_symlink_destinations,
    }
}

/// Reaps every child (orphans are reparented to us) and forwards signals
/// to the workload; exits with the workload's status as soon as it is
/// known. Exiting makes the kernel kill whatever is left in the namespace,
/// so background jobs never hold the launcher. `broker` is started when
/// its listener first has a call waiting.
fn reap_and_forward(
    signal_fd: i32,
    workload: i32,
    forward: Forwarding,
    mut broker: Option<crate::broker::Broker>,
) -> Result<Infallible> {
    loop {
        let listener = broker.as_ref().map_or(-1, |b| b.listener.as_raw_fd());
        // A negative descriptor is skipped by poll.
        let mut pfd = [signal_fd, listener].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        sys::poll(&mut pfd, -1)?;
        // A call waiting: the broker's threads start. A hang-up alone
        // means no process is left under the filter (the workload's tree
        // is gone): nothing will ever call, and the listener is dropped.
        let listener_events = pfd[1].revents;
        if listener_events & libc::POLLIN != 0
            && let Some(broker) = broker.take()
        {
            crate::broker::start(broker)?;
        } else if listener_events != 0 {
            broker = None;
        }
        while let Some(received) = sys::read_signal(signal_fd) {
            if FORWARDED.contains(&received.signo) && forward.wants(received) {
                let _ = sys::kill(workload, received.signo);
            }
        }
        loop {
            match sys::wait_nohang(-1) {
                Ok(Some((pid, status))) if pid == workload => sys::exit_now(status.exit_code()),
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) if e.errno() == libc::ECHILD => bail!("the workload vanished unwaited"),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
