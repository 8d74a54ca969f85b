//! The grants, pinned: each `--allow-unix` path resolved in the sandbox
//! root by PID 1 once the mount tree is in place, and before the workload
//! exists. What is pinned is the inode: a socket file replaced or renamed
//! afterwards is not what the grant named, and the broker connects to a
//! pin through its descriptor, never through the path again.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Result;

use super::EscapeSocket;
use crate::failure::{GrantCause, GrantFailure};
use crate::plan::UnixGrant;
use crate::sys;

/// One pinned socket: an O_PATH descriptor of PID 1's, and its identity.
pub struct Pin {
    pub fd: OwnedFd,
    pub dev: u64,
    pub ino: u64,
}

/// Pins every grant. Runs in PID 1 with the sandbox root as its root, so
/// the path (and any symlink in it) resolves as the workload will see
/// it. Refuses a grant that is missing, not a socket, or, unless
/// `--allow-unix-unsafe` named it, one of the host's way-out sockets.
pub fn pin_grants(grants: &[UnixGrant], escapes: &[EscapeSocket]) -> Result<Vec<Pin>> {
    let refuse = |grant: &UnixGrant, cause| GrantFailure {
        path: grant.path.clone(),
        cause,
    };
    let mut pins = Vec::with_capacity(grants.len());
    for grant in grants {
        let fd = sys::open(grant.path.as_os_str(), libc::O_PATH | libc::O_CLOEXEC)
            .map_err(|e| refuse(grant, GrantCause::Missing(e.errno())))?;
        let st = sys::fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(refuse(grant, GrantCause::NotASocket).into());
        }
        let escape = escapes
            .iter()
            .find(|e| e.dev == st.st_dev && e.ino == st.st_ino);
        if let Some(escape) = escape.filter(|_| !grant.escape_ok) {
            return Err(refuse(grant, GrantCause::Escape(escape.kind)).into());
        }
        pins.push(Pin {
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
        });
    }
    Ok(pins)
}
