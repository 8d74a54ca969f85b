//! The Landlock executor's checklist: the launcher is the sandbox's
//! subreaper (PID 1's stand-in), its child the workload, restricted by
//! Landlock and the seccomp filter on the host's own tree.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::features::{Feature, Landlock};
use super::gaps::{Gap, gaps_of, unexpressible_setting};
use super::rules::{Rule, Rules, restrict_to, rules_of};
use super::view::View;
use crate::plan::{EnvOp, MountOp, RunSpec, Step};
use crate::run::context::{FORWARDED, Prepared, Signals};
use crate::run::status::{self, Wording};
use crate::sys::{self, Fork};

/// Runs `spec` under Landlock, as the command line asked; returns the
/// workload's exit code.
pub fn launch(spec: RunSpec, parent_pid: i32, wording: Wording) -> Result<i32> {
    launch_because(spec, parent_pid, wording, "landlock requested")
}

/// Runs `spec` under Landlock; `why` is the report line's cause: the
/// diagnosis cause id that made `auto` fall back, or that it was asked
/// for.
pub fn launch_because(
    mut spec: RunSpec,
    parent_pid: i32,
    wording: Wording,
    why: &str,
) -> Result<i32> {
    let caller_is_root = sys::ids().1 == 0;
    crate::run::harden_self(&spec, parent_pid)?;
    let Assessment {
        landlock,
        view,
        mut rules,
        mut gaps,
    } = assess(&spec)?;
    // The workload drops what it holds itself (landlock_mode can drop the
    // bounding set only where it holds CAP_SETPCAP).
    spec.process.capabilities = crate::plan::Capabilities::Unchanged;
    // --allow-unix: each grant pinned in the host's tree (refusing a
    // missing one, a non-socket, a way-out socket by another name).
    let pins = if spec.unix_grants.is_empty() {
        Vec::new()
    } else {
        let escapes = crate::broker::host_escape_sockets();
        crate::broker::pin_grants(&spec.unix_grants, &escapes)?
    };
    let signals = Signals::take()?;
    // The relays, forked while this process is single-threaded (the
    // broker's threads come later); dropping them kills them.
    let (relays, handoffs) = if spec.relays.is_empty() {
        (None, Vec::new())
    } else {
        let (relays, handoffs) = crate::run::relays::prepare_handoffs(&spec.relays)?;
        (Some(crate::run::relays::spawn(relays, wording)?), handoffs)
    };
    let mut brokered = Brokered {
        handoffs,
        pins,
        tcp_refused: spec.namespaces.net,
        mechanism: crate::broker::Mechanism::TakeSocket,
    };
    if brokered.is_needed() {
        brokered.mechanism = broker_mechanism(&spec)?;
        if brokered.mechanism == crate::broker::Mechanism::ReplaceSocket
            && brokered.tcp_refused
            && !brokered.pins.is_empty()
        {
            gaps.push(Gap::UnixServersRefused);
        }
    }
    // Last before the report: nothing fails between its creation and
    // its removal below.
    let private_tmp = private_tmpdir(&mut spec, &view)?;
    if let Some(dir) = &private_tmp {
        rules
            .rules
            .extend(rules_of(&View::writable(dir), landlock.abi()).rules);
    }
    report(&landlock, &gaps, why);
    let rules = rules.rules;
    let prepared = Prepared {
        features: crate::probe::Features::detect(),
        signals,
        cwd: std::env::current_dir().ok(),
        tty: None,
        runtime: None,
        caller_is_root,
        private_dirs: Vec::new(),
        report_pid: None,
        passed_fds: Vec::new(),
        wording,
        escape_sockets: Vec::new(),
        unix_by_landlock: false,
        spec,
    };
    let code = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")
        .map_err(anyhow::Error::new)
        .and_then(|_| run_workload(&prepared, &rules, &landlock, &gaps, brokered));
    drop(relays);
    if let Some(dir) = private_tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}

/// What Landlock mode would enforce for a plan on this kernel, before
/// anything is started: `check` reports it, `launch` runs it.
pub struct Assessment {
    pub landlock: Landlock,
    view: View,
    rules: Rules,
    pub gaps: Vec<Gap>,
}

/// Everything the executor refuses, then the view, its rules and the
/// gaps: each refusal names the option and why (exit 125).
pub fn assess(spec: &RunSpec) -> Result<Assessment> {
    let landlock = Landlock::probe().ok_or_else(|| {
        anyhow!(
            "Landlock mode: Landlock is not available on this kernel (absent, or disabled at boot)"
        )
    })?;
    // Without the truncate right (ABI 3, Linux 6.2) a read-only file can
    // still be emptied by truncate(2): no read-only area would hold.
    if !landlock.has(Feature::Truncate) {
        bail!(
            "Landlock mode: Landlock ABI {} cannot keep read-only files from truncation (needs ABI 3, Linux 6.2)",
            landlock.usable
        );
    }
    if let Some((option, why)) = unexpressible_setting(spec) {
        bail!("{option}: {why} (Landlock mode)");
    }
    if spec.namespaces.net {
        // The workload stays on the host's network: Landlock's TCP rules
        // refuse every bind and connect of its own (ABI 4), and the
        // landlock-net filter what they do not see, a listen among it,
        // which it can refuse only when no socket may be a unix one.
        if !landlock.has(Feature::TcpRules) {
            bail!(
                "--unshare-net: Landlock ABI {} has no TCP rules (needs ABI 4, Linux 6.7), so the host's network would stay reachable (Landlock mode)",
                landlock.usable
            );
        }
        if !spec.seccomp_unix_block && spec.unix_grants.is_empty() {
            bail!(
                "--unshare-net: in Landlock mode it needs --seccomp-unix-block or --allow-unix (a listen on the host's network cannot be told from a unix one without the broker)"
            );
        }
    }
    // A path that is itself a symlink: a mask or a bind there would put
    // its rules on whatever the link points at, which namespace mode
    // (resolving inside the sandbox root) may not.
    if let Some(step) = spec
        .mounts
        .iter()
        .find(|s| is_symlink(&host_path(s.op.dst())))
    {
        bail!(
            "{} {}: the path is a symlink on the host, which Landlock mode cannot restrict as the path itself (Landlock mode)",
            step.origin.option,
            step.op.dst().display()
        );
    }
    let steps = resolve_directories(&spec.mounts);
    let view =
        View::of(&steps).map_err(|e| anyhow!("{}: {} (Landlock mode)", e.origin.option, e.why))?;
    // Below ABI 9 a unix socket is reached by its path whatever the rules
    // say: the sockets a namespace would hide (under a tmpfs, outside the
    // binds) stay reachable. Only blocking AF_UNIX keeps the contract.
    if !landlock.has(Feature::ResolveUnix)
        && !spec.seccomp_unix_block
        && spec.unix_grants.is_empty()
    {
        bail!(
            "Landlock mode: below Landlock ABI 9 (Linux 7.1) the host's unix sockets stay reachable by path; add --seccomp-unix-block, or --allow-unix for the ones the workload may reach"
        );
    }
    let rules = rules_of(&view, landlock.abi());
    let gaps = gaps_of(
        spec,
        landlock.usable,
        view.seals_deny_parents(),
        !rules.unlisted.is_empty(),
    );
    Ok(Assessment {
        landlock,
        view,
        rules,
        gaps,
    })
}

/// The steps with the directories of each path resolved in the host's
/// view (a symlinked /home, say), as namespace mode resolves them inside
/// a root that binds the host's: the view is then keyed by the
/// directories the rules are opened on. The last component is kept as
/// written (see [`is_symlink`]). Steps the view refuses are left alone.
///
/// A symlink among a deny path's components is sealed as SPEC §2.7 says:
/// it gets a `--deny-write` of its own, so that its directory (inside a
/// writable bind) cannot have it removed or replaced, and the deny path
/// cannot be made again under its name through a real directory.
fn resolve_directories(steps: &[Step]) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        if let MountOp::Deny { path, .. } = &step.op {
            for link in symlinks_along(path) {
                out.push(Step {
                    op: MountOp::Deny {
                        path: host_path(&link),
                        mask: false,
                    },
                    origin: step.origin,
                });
            }
        }
        out.push({
            let mut step = step.clone();
            match &mut step.op {
                MountOp::Bind { src, dst, .. } if src == dst => {
                    *dst = host_path(dst);
                    src.clone_from(dst);
                }
                MountOp::Deny { path: dst, .. }
                | MountOp::Tmpfs { dst, .. }
                | MountOp::Dev { dst }
                | MountOp::Proc { dst }
                | MountOp::HostProc { dst } => *dst = host_path(dst),
                _ => {}
            }
            step
        });
    }
    out
}

/// The components of `path` (above its last) that are symlinks on the
/// host, as prefixes of `path`.
fn symlinks_along(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .skip(1)
        .filter(|prefix| is_symlink(prefix))
        .map(Path::to_path_buf)
        .collect()
}

/// `path` with its existing directories canonical: the longest existing
/// prefix of its parent resolved, the rest (missing, so no symlink) as
/// written.
fn host_path(path: &Path) -> PathBuf {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_path_buf();
    };
    let mut existing = parent.to_path_buf();
    let mut missing = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            out.extend(missing.iter().rev());
            return out.join(name);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(last), Some(up)) => {
                missing.push(last.to_os_string());
                existing = up.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Whether `path` is a symlink on the host.
fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// `--tmpfs /tmp` (or the tmpfs holding `$TMPDIR`) when the command line
/// does not set `TMPDIR`: a private directory of the run's, named by
/// `TMPDIR` for the workload and removed at exit.
fn private_tmpdir(spec: &mut RunSpec, view: &View) -> Result<Option<std::path::PathBuf>> {
    let sets_tmpdir = spec
        .env
        .iter()
        .any(|op| matches!(op, EnvOp::Set(k, _) if k == "TMPDIR"));
    let host_tmp = std::env::temp_dir();
    let covered = view
        .tmpfs
        .iter()
        .any(|t| t == Path::new("/tmp") || host_tmp.starts_with(t));
    if sets_tmpdir || !covered {
        return Ok(None);
    }
    let dir = host_tmp.join(format!("srt-launcher-tmp-{}", std::process::id()));
    std::fs::create_dir(&dir)
        .and_then(|()| {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        })
        .with_context(|| format!("create a private TMPDIR in {}", host_tmp.display()))?;
    spec.env.push(EnvOp::Set(
        OsString::from("TMPDIR"),
        dir.clone().into_os_string(),
    ));
    Ok(Some(dir))
}

/// The one line that says what is not enforced, before the workload
/// starts.
fn report(landlock: &Landlock, gaps: &[Gap], why: &str) {
    let ids: Vec<&str> = gaps.iter().map(|g| g.id()).collect();
    eprintln!(
        "srt-launcher: run: no namespaces ({why}): Landlock ABI {}{}; not enforced: {}",
        landlock.usable,
        lacking(landlock),
        ids.join(", ")
    );
}

/// What keeps the usable ABI below the reported one, if anything.
fn lacking(landlock: &Landlock) -> String {
    if landlock.missing.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = landlock.missing.iter().map(|f| f.name()).collect();
    format!(
        " (the kernel reports {} but lacks {})",
        landlock.reported,
        names.join(", ")
    )
}

/// `--json-status-fd`'s first line in this mode: the workload's pid, and
/// what the report line says.
fn status_line(pid: i32, landlock: &Landlock, gaps: &[Gap]) -> String {
    let ids: Vec<String> = gaps.iter().map(|g| format!("\"{}\"", g.id())).collect();
    format!(
        "{{ \"child-pid\": {pid}, \"isolation\": \"landlock\", \"landlock-abi\": {}, \"gaps\": [{}] }}\n",
        landlock.usable,
        ids.join(", ")
    )
}

/// Forks the workload and supervises it: signals forwarded, orphans
/// reaped, and the rest of its tree killed when it exits.
fn run_workload(
    prepared: &Prepared,
    rules: &[Rule],
    landlock: &Landlock,
    gaps: &[Gap],
    brokered: Brokered,
) -> Result<i32> {
    let (status_r, status_w) = sys::pipe_cloexec()?;
    // With relays: the workload sends its filter's listener over this
    // link, then waits for the broker's go before execve.
    let link = if brokered.is_needed() {
        Some(sys::seqpacket_pair(false)?)
    } else {
        None
    };
    let launcher = sys::getpid();
    let workload = match sys::fork().context("fork the workload")? {
        Fork::Child => {
            drop(status_r);
            let link = link.map(|(theirs, _)| theirs);
            let err = match become_workload(prepared, rules, landlock, launcher, link.as_ref()) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            status::fail(status_w.as_raw_fd(), &err, prepared.wording)
        }
        Fork::Parent(pid) => pid,
    };
    drop(status_w);
    if let Some((_, ours)) = link {
        // Nothing arrives when the workload failed first: its status
        // pipe says why, below.
        if let Ok(listener) = sys::receive_fd(ours.as_raw_fd()) {
            if let Err(e) = start_broker(listener, brokered) {
                kill_tree();
                return Err(e);
            }
            sys::write_all(ours.as_raw_fd(), b"g")?;
        }
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sys::read(status_r.as_raw_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    if let Some(reported) = status::decode(&bytes) {
        kill_tree();
        return Err(reported.into());
    }
    let json = prepared.spec.json_status_fd;
    if let Some(fd) = json {
        let _ = sys::write_all(fd, status_line(workload, landlock, gaps).as_bytes());
    }
    let code = supervise(prepared, workload)?;
    if let Some(fd) = json {
        crate::run::info::exit_code(fd, code);
    }
    Ok(code)
}

fn become_workload(
    prepared: &Prepared,
    rules: &[Rule],
    landlock: &Landlock,
    launcher: i32,
    link: Option<&OwnedFd>,
) -> Result<std::convert::Infallible> {
    if !sys::die_with_parent(launcher)? {
        sys::exit_now(crate::exit::SETUP);
    }
    if prepared.spec.process.new_session {
        sys::setsid()?;
    }
    sys::join_new_session_keyring()?;
    let spec = &prepared.spec;
    restrict_to(
        rules,
        landlock.abi(),
        landlock.has(Feature::Scopes),
        spec.namespaces.net,
    )
    .context("restrict the workload with Landlock")?;
    crate::caps::drop_held()?;
    let mut filters = crate::seccomp::Filters::of(spec, false);
    filters.landlock_net = spec.namespaces.net;
    filters.landlock_relay = !spec.relays.is_empty();
    let listener = crate::seccomp::install(&filters)?;
    // The listener goes to the broker and leaves this process (holding
    // it, the workload could answer its own calls); execve waits for the
    // broker to be serving.
    if let (Some(listener), Some(link)) = (listener, link) {
        sys::send_fd(link.as_raw_fd(), listener.as_raw_fd())
            .context("hand the seccomp listener to the broker")?;
        drop(listener);
        let mut go = [0u8; 1];
        if !matches!(sys::read(link.as_raw_fd(), &mut go), Ok(1)) {
            sys::exit_now(crate::exit::SETUP);
        }
    }
    crate::run::workload::exec_after_isolation(prepared)
}

/// How the broker (for the relays and the grants, in this process) will
/// make calls: on the workload's socket (`pidfd_getfd`) or, where that
/// is refused (containers), on its own put in place (ADDFD with SETFD);
/// with neither, the run fails, naming the option that needs it.
fn broker_mechanism(spec: &RunSpec) -> Result<crate::broker::Mechanism> {
    use crate::broker::Mechanism;
    if crate::broker::can_take_sockets() {
        return Ok(Mechanism::TakeSocket);
    }
    if crate::broker::can_replace_sockets_here() {
        return Ok(Mechanism::ReplaceSocket);
    }
    let option = match (spec.unix_grants.first(), spec.relays.first()) {
        (Some(grant), _) => format!("--allow-unix {}", grant.path.display()),
        (None, Some(relay)) => format!("--relay {}", relay.port),
        (None, None) => "the broker".to_string(),
    };
    bail!(
        "{option}: Landlock mode's broker needs pidfd_getfd (Linux 5.6; containers refuse it without CAP_SYS_PTRACE) or seccomp ADDFD with SETFD (Linux 5.14)"
    )
}

/// Starts the broker, with the workload's listener.
fn start_broker(listener: OwnedFd, brokered: Brokered) -> Result<()> {
    use crate::broker::Broker;
    let proc = sys::open(
        std::ffi::OsStr::new("/proc"),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )
    .context("open /proc for the broker")?;
    crate::broker::start(Broker {
        listener,
        pins: brokered.pins,
        proc,
        // Abstract names are the host's here: never reached on the
        // workload's behalf (that would pass Landlock's scoping).
        abstract_ok: false,
        mechanism: brokered.mechanism,
        tcp_refused: brokered.tcp_refused,
        relays: brokered.handoffs,
    })
}

/// What the broker serves in Landlock mode: the relays, the pinned
/// grants, and whether the workload is kept off the host's network.
struct Brokered {
    handoffs: Vec<crate::run::relays::Handoff>,
    pins: Vec<crate::broker::Pin>,
    tcp_refused: bool,
    /// How it makes calls (decided before the report line).
    mechanism: crate::broker::Mechanism,
}

impl Brokered {
    fn is_needed(&self) -> bool {
        !self.handoffs.is_empty() || !self.pins.is_empty()
    }
}

/// Waits for the workload, forwarding signals and reaping orphans (this
/// process is their subreaper); kills what is left once it exits.
fn supervise(prepared: &Prepared, workload: i32) -> Result<i32> {
    let signal_fd = prepared.signals.fd.as_raw_fd();
    loop {
        let mut pfd = [libc::pollfd {
            fd: signal_fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        sys::poll(&mut pfd, -1)?;
        while let Some(received) = sys::read_signal(signal_fd) {
            if FORWARDED.contains(&received.signo) {
                let _ = sys::kill(workload, received.signo);
            }
        }
        while let Ok(Some((pid, status))) = sys::wait_nohang(-1) {
            if pid == workload {
                kill_tree();
                return Ok(status.exit_code());
            }
        }
    }
}

/// Kills every process left below this one (orphans come to us, the
/// subreaper), until none is left.
fn kill_tree() {
    loop {
        let children = children_of_self();
        if children.is_empty() {
            return;
        }
        for pid in children {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        while let Ok(Some(_)) = sys::wait_nohang(-1) {}
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn children_of_self() -> Vec<i32> {
    let me = sys::getpid();
    std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FrontEnd, Origin};

    fn deny(path: &Path) -> Step {
        Step {
            op: MountOp::Deny {
                path: path.to_path_buf(),
                mask: true,
            },
            origin: Origin {
                front_end: FrontEnd::Run,
                option: "--mask",
                index: 0,
            },
        }
    }

    /// A deny path through a symlinked directory: keyed by the real
    /// directory, with the link sealed by a deny-write of its own; a
    /// missing tail stays as written.
    #[test]
    fn deny_paths_are_resolved_through_symlinked_directories() {
        let dir = std::env::temp_dir().join(format!("srtl-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let real = std::fs::canonicalize(dir.join("real")).unwrap();
        let link = std::fs::canonicalize(&dir).unwrap().join("link");

        assert_eq!(
            host_path(&dir.join("link/missing/deeper")),
            real.join("missing/deeper")
        );
        assert_eq!(host_path(&dir.join("link")), link);
        assert_eq!(host_path(Path::new("/")), Path::new("/"));

        let steps = resolve_directories(&[deny(&dir.join("link/secret"))]);
        let ops: Vec<&MountOp> = steps.iter().map(|s| &s.op).collect();
        assert_eq!(
            ops,
            [
                &MountOp::Deny {
                    path: link.clone(),
                    mask: false
                },
                &MountOp::Deny {
                    path: real.join("secret"),
                    mask: true
                },
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
