//! In-sandbox relays (`run --relay PORT UNIX_SOCKET`, SPEC §3.1, §2.4),
//! and exposed ports (`run --expose PORT`, SPEC §3.4).
//!
//! Prepared and forked by the launcher after it entered the sandbox's
//! network namespace and *before* the mount and PID namespaces exist, so a
//! relay lives in the host's PID and mount namespaces but the sandbox's
//! network namespace: the workload has no PID for it (`kill -9 -1` inside
//! cannot touch it) and the unix socket path is the host's.
//!
//! Invariants: the listeners are bound and listening before the workload
//! exists, so it can connect from its first instruction; the socket file is
//! pinned by an O_PATH descriptor before the workload exists, and every
//! connection goes through that descriptor's magic link in `/proc/self/fd`
//! (the relay's working directory, so a connect resolves one name, `N`,
//! not five), so replacing the path from inside (say with a symlink to
//! another socket) redirects nothing; a relay
//! has dropped every capability before the workload exists (the launcher
//! waits for it), is never under the seccomp filter (it is forked before
//! the workload installs it), and dies with the launcher.
//!
//! `--expose` runs the other way, in one more process of the same kind:
//! its listeners are on the host's loopback (bound by the launcher before
//! it left the host's network namespace), and it connects to 127.0.0.1
//! inside. It forwards inward only: nothing in the sandbox can connect
//! through it, since its only sockets there are the ones it connects.
//!
//! Landlock mode (SPEC §2.8) has no network namespace to listen in: a
//! relay gets no listener there, but a channel from the broker
//! (`broker/relay.rs`), which hands it each connection it accepted for
//! the relay's port ([`prepare_handoffs`]); the rest is the same.

use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

use super::status::Wording;
use crate::failure::{Problem, Setting};
use crate::log::trace;
use crate::plan::RelayOp;
use crate::pump::{Pump, Upstream};
use crate::sys::{self, Fork};

/// One relay process's descriptors, opened by the launcher.
pub struct Prepared {
    /// The setting its failures are about.
    setting: Setting,
    /// Listeners, each with the port its connections go to (for a relay,
    /// its own port; for `--expose`, the port inside).
    listeners: Vec<(OwnedFd, u16)>,
    /// Landlock mode: where the broker hands over the connections it
    /// accepted for this relay, instead of listeners.
    handoff: Option<OwnedFd>,
    target: Target,
}

/// Where a relay process forwards what it accepts.
enum Target {
    /// `--relay`: a host unix socket, pinned by an O_PATH descriptor.
    Unix(OwnedFd),
    /// `--expose`: 127.0.0.1 inside the sandbox, at the listener's port.
    Loopback,
}

/// The launcher's end of a Landlock-mode relay: the port the workload
/// connects to, and where the broker hands that relay its connections.
pub struct Handoff {
    pub port: u16,
    pub channel: OwnedFd,
}

/// Landlock mode (SPEC §2.8): pins each socket, and gives each relay a
/// channel from the broker instead of listeners (on the host's network a
/// listener would be anyone's to connect to). Failures are setup errors.
pub fn prepare_handoffs(relays: &[RelayOp]) -> Result<(Vec<Prepared>, Vec<Handoff>)> {
    let mut prepared = Vec::new();
    let mut handoffs = Vec::new();
    for relay in relays {
        let setting = || Problem::RelaySocket {
            port: relay.port,
            socket: relay.socket.clone(),
        };
        let socket = pin_socket(relay).with_context(setting)?;
        let (broker_end, relay_end) = sys::seqpacket_pair(true).with_context(setting)?;
        prepared.push(Prepared {
            setting: Setting::Relay(relay.port),
            listeners: Vec::new(),
            handoff: Some(relay_end),
            target: Target::Unix(socket),
        });
        handoffs.push(Handoff {
            port: relay.port,
            channel: broker_end,
        });
    }
    Ok((prepared, handoffs))
}

/// Pins each socket and binds each listener; any failure is a setup error
/// (125) before the workload exists.
pub fn prepare(relays: &[RelayOp]) -> Result<Vec<Prepared>> {
    relays
        .iter()
        .map(|relay| {
            prepare_one(relay).with_context(|| Problem::RelaySocket {
                port: relay.port,
                socket: relay.socket.clone(),
            })
        })
        .collect()
}

/// The relay's unix socket, pinned by an O_PATH descriptor.
fn pin_socket(relay: &RelayOp) -> Result<OwnedFd> {
    let socket = sys::open(relay.socket.as_os_str(), libc::O_PATH)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
    if sys::fstat(socket.as_raw_fd())?.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        bail!("not a unix socket");
    }
    Ok(socket)
}

fn prepare_one(relay: &RelayOp) -> Result<Prepared> {
    let socket = pin_socket(relay)?;
    let listeners = loopback_listeners(relay.port, Setting::Relay(relay.port))?;
    Ok(Prepared {
        setting: Setting::Relay(relay.port),
        listeners: listeners.into_iter().map(|fd| (fd, relay.port)).collect(),
        handoff: None,
        target: Target::Unix(socket),
    })
}

/// Listeners on 127.0.0.1:PORT and, where there is one, [::1]:PORT:
/// tools resolve `localhost` to ::1 first. A kernel with IPv6 disabled
/// has no ::1; then IPv4 alone is all there is.
fn loopback_listeners(port: u16, setting: Setting) -> Result<Vec<OwnedFd>> {
    let mut listeners = vec![listen(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?];
    match listen(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
        Ok(fd) => listeners.push(fd),
        Err(e) => trace!("{}: no IPv6 loopback: {e:#}", Problem::InSetting(setting)),
    }
    Ok(listeners)
}

/// `--expose` (SPEC §3.4): listeners on the host's loopback, made by the
/// launcher before it enters the sandbox's network namespace, and served
/// by one relay process from inside it, forwarding each connection to
/// 127.0.0.1 at the same port there. A port that cannot be bound is a
/// setup error (125) naming it. None without `--expose`.
pub fn prepare_exposed(ports: &[u16]) -> Result<Option<Prepared>> {
    let Some(&first) = ports.first() else {
        return Ok(None);
    };
    let mut listeners = Vec::new();
    for &port in ports {
        let setting = Setting::Expose(port);
        let bound = loopback_listeners(port, setting.clone())
            .with_context(|| Problem::InSetting(setting))?;
        listeners.extend(bound.into_iter().map(|fd| (fd, port)));
    }
    Ok(Some(Prepared {
        setting: Setting::Expose(first),
        listeners,
        handoff: None,
        target: Target::Loopback,
    }))
}

fn listen(addr: SocketAddr) -> Result<OwnedFd> {
    let fd = sys::stream_socket(sys::family_of(&addr))?;
    // A port whose last connections are in TIME_WAIT can be listened on
    // again at once (Linux never lets two listeners share it this way).
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    sys::bind_inet(fd.as_raw_fd(), &addr)?;
    sys::listen(fd.as_raw_fd(), libc::SOMAXCONN)?;
    Ok(fd)
}

/// The relay processes; dropping this kills and reaps them, so no relay
/// outlives the launcher's `run`, whichever way it ends.
pub struct Running {
    pids: Vec<i32>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        for &pid in &self.pids {
            let _ = sys::wait_pid(pid);
        }
    }
}

/// Forks one process per relay and waits until each has finished its own
/// setup (parent-death signal, session, capability drop): only then may
/// the workload exist. A relay that fails its setup reports it over the
/// same pipe, which makes `run` fail with 125 before the workload starts.
/// Called by the launcher, single-threaded.
pub fn spawn(prepared: Vec<Prepared>, wording: Wording) -> Result<Running> {
    let launcher = sys::getpid();
    let mut running = Running { pids: Vec::new() };
    let (ready_r, ready_w) = sys::pipe_cloexec()?;
    let mut all = prepared;
    for index in 0..all.len() {
        match sys::fork().context("fork a relay")? {
            Fork::Child => {
                drop(ready_r);
                let mine = all.swap_remove(index);
                drop(all);
                serve(mine, launcher, ready_w, wording)
            }
            Fork::Parent(pid) => running.pids.push(pid),
        }
    }
    drop(ready_w);
    let record = sys::read_to_end(ready_r.as_raw_fd())?;
    match super::status::decode(&record) {
        Some(report) => Err(anyhow::Error::new(report)),
        None => Ok(running),
    }
}

/// A relay process: its setup checklist, then the pump until killed.
/// `ready` is closed once the setup is done, or carries the failure.
fn serve(relay: Prepared, launcher: i32, ready: OwnedFd, wording: Wording) -> ! {
    let setting = Problem::InSetting(relay.setting.clone());
    let setup = (|| -> Result<Pump> {
        // 1. Die with the launcher; it may have died before we armed this.
        if !sys::die_with_parent(launcher)? {
            sys::exit_now(0);
        }
        // 2. Out of the caller's session: a ^C on the terminal is for the
        //    workload (forwarded by the launcher), not for the relay.
        sys::setsid()?;
        // 3. No capabilities: connecting and accepting need none. (All of
        //    them, bounding set included, where it may change it: always
        //    in namespace mode; in Landlock mode, only as root.)
        crate::caps::drop_held()?;
        let _ = sys::raise_nofile_limit();
        // 4. The pump, connecting through the pinned descriptor (a relay)
        //    or to loopback inside (--expose: half-close, TCP_NODELAY and
        //    keepalive as for any TCP upstream). The descriptor's magic
        //    link is named from /proc/self/fd as the working directory:
        //    this process's own descriptor table, which only it changes,
        //    and each connect then walks one name instead of
        //    /proc/self/fd/N's five (about 1 µs of 14 per connect here).
        if let Target::Unix(_) = relay.target {
            sys::chdir("/proc/self/fd".as_ref())?;
        }
        let upstream = |port: u16| match &relay.target {
            Target::Unix(socket) => Upstream::Unix(OsString::from(socket.as_raw_fd().to_string())),
            Target::Loopback => Upstream::Loopback(port),
        };
        let mut pump = Pump::new()?;
        for (listener, port) in relay.listeners {
            pump.add_listener(listener, upstream(port))?;
        }
        if let Some(channel) = relay.handoff {
            pump.add_handoff(channel, upstream(0))?;
        }
        Ok(pump)
    })();
    let mut pump = match setup {
        Ok(pump) => pump,
        Err(e) => super::status::fail(ready.as_raw_fd(), &e.context(setting), wording),
    };
    // 5. Setup done: the launcher may let the workload start.
    drop(ready);
    if let Err(e) = pump.run() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("srt-launcher: {setting}: {e:#}\n").as_bytes(),
        );
    }
    sys::exit_now(1)
}
