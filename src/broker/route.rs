//! Where a unix connect may go (SPEC §2.9), whichever mechanism makes it:
//! the address is read, its path resolved as the caller would resolve
//! it, and the inode reached decides. A pinned grant, or a socket file
//! that a listen of the sandbox bound; anything else is EACCES.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::call::{UnixAddress, unix_address};
use super::serve::Shared;
use crate::sys;

/// Roots of callers kept open, by place (most sandboxes have one: PID
/// 1's own); beyond this many, the oldest goes.
const ROOTS_KEPT: usize = 16;
/// Sandbox servers remembered before the dead ones are swept.
const SWEEP_AT: usize = 4096;

/// A socket file a listen of the sandbox bound: its file's (dev, ino) as
/// unix_diag gives them, and the socket's inode and cookie, which name
/// that socket and no later one.
pub type Servers = HashMap<(u64, u32), (u32, u64)>;

/// How an allowed unix connect is made.
pub enum Route {
    /// Through a descriptor of PID 1's, never through the path again.
    Via(Target),
    /// With the caller's address as it is: an abstract name, under
    /// `--unshare-net`.
    Address,
}

/// The resolved file, held until the connect is made, and the descriptor
/// to connect through (a pin's, or the resolved file's own).
pub struct Target {
    _resolved: OwnedFd,
    via: RawFd,
}

impl Target {
    /// Connects `sock` to the target, returning the errno (0: success).
    /// The descriptor's number is a path in the broker thread's working
    /// directory (PID 1's `fd` directory, see serve.rs).
    pub fn connect(&self, sock: RawFd) -> i32 {
        sys::connect_path_errno(sock, self.via.to_string().as_bytes())
    }
}

impl Shared {
    /// Where thread `tid`'s connect to the unix address `bytes` may go,
    /// or the errno to fail it with.
    pub(super) fn route(&self, tid: u32, bytes: &[u8]) -> Result<Route, i32> {
        let path = match unix_address(bytes) {
            UnixAddress::Invalid => return Err(libc::EINVAL),
            UnixAddress::Abstract if self.broker.abstract_ok => return Ok(Route::Address),
            UnixAddress::Abstract => return Err(libc::EACCES),
            UnixAddress::Path(path) => path,
        };
        let resolved = self.resolve(tid, path)?;
        let st = sys::fstat(resolved.as_raw_fd()).map_err(|_| libc::EACCES)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            // What connect says for a file that is not a socket.
            return Err(libc::ECONNREFUSED);
        }
        let pinned = self
            .broker
            .pins
            .iter()
            .find(|p| (p.dev, p.ino) == (st.st_dev, st.st_ino));
        let via = match (pinned, self.sandbox_server(&st)) {
            (Some(pin), _) => pin.fd.as_raw_fd(),
            (None, Some(true)) => resolved.as_raw_fd(),
            // The sandbox's own socket, closed: nobody can listen on that
            // file again.
            (None, Some(false)) => return Err(libc::ECONNREFUSED),
            (None, None) => return Err(libc::EACCES),
        };
        Ok(Route::Via(Target {
            _resolved: resolved,
            via,
        }))
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

    /// Records a listening unix socket of the sandbox (by its socket
    /// inode) by the file it is bound to; none for an abstract or unbound
    /// one.
    pub(super) fn remember_server(&self, sock_ino: u32) {
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
