//! `relay UNIX_SOCKET HOST:PORT`: the host-side bridge from a unix socket
//! to a TCP port (SPEC §3.2), for a host SDK whose external proxy listens
//! on TCP while the sandbox reaches it through a unix socket.
//!
//! Runs as its own process with the caller's privileges, which it never
//! needs beyond creating the socket. Every accepted connection is pumped to
//! a fresh TCP connection by [`crate::pump`] in this one process.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::exit::Exit;
use crate::pump::{Pump, Upstream};
use crate::sys;

/// A parsed `relay` invocation.
#[derive(Debug)]
pub struct RelaySpec {
    pub ready_fd: Option<i32>,
    pub socket: PathBuf,
    pub target: SocketAddr,
}

/// Parses `HOST:PORT` where HOST is a literal IPv4 address or a bracketed
/// IPv6 one. A host name is a usage error: the relay does no DNS.
pub fn parse_target(text: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        Exit::usage(format!(
            "{text:?} is not IPv4:PORT or [IPv6]:PORT (host names are not resolved)"
        ))
    })?;
    if addr.port() == 0 {
        return Err(Exit::usage(format!("{text:?}: port must be 1-65535")));
    }
    Ok(addr)
}

/// Accepts connections until killed; returns the exit code.
pub fn run(spec: RelaySpec, parent_pid: i32) -> Result<i32> {
    // Dies with its parent (the SDK kills it with SIGKILL, or exits).
    if !sys::die_with_parent(parent_pid)? {
        bail!("the spawning process exited before the relay started");
    }
    let _ = sys::raise_nofile_limit();

    // An existing path is never replaced (bind would refuse it anyway;
    // this names the problem).
    if std::fs::symlink_metadata(&spec.socket).is_ok() {
        bail!("{} already exists", spec.socket.display());
    }
    let listener = sys::stream_socket(libc::AF_UNIX)?;
    sys::bind_unix(listener.as_raw_fd(), spec.socket.as_os_str())
        .with_context(|| format!("listen on {}", spec.socket.display()))?;
    sys::listen(listener.as_raw_fd(), libc::SOMAXCONN)?;

    // SIGTERM/SIGINT/SIGHUP: remove the socket file and exit 0.
    let stop_set = sys::sigset_of(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    sys::sigprocmask(libc::SIG_BLOCK, &stop_set)?;
    let stop = sys::signalfd(&stop_set)?;

    if let Some(fd) = spec.ready_fd {
        sys::write_all(fd, b"R").with_context(|| format!("--ready-fd {fd}"))?;
        sys::close(fd).with_context(|| format!("--ready-fd {fd}"))?;
    }

    let mut pump = Pump::new()?;
    pump.add_listener(listener, Upstream::Tcp(spec.target))?;
    pump.stop_on(stop.as_raw_fd())?;
    let outcome = pump.run();
    let _ = std::fs::remove_file(&spec.socket);
    outcome?;
    Ok(0)
}
