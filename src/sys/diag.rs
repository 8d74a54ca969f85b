//! The kernel's record of a unix socket (NETLINK_SOCK_DIAG, unix_diag):
//! which file a bound socket is, asked by the socket's own inode, in the
//! caller's network namespace. `--allow-unix`'s broker uses it to know
//! which socket files the sandbox's own servers are bound to.

use std::os::fd::{AsRawFd, RawFd};

use super::{Call, SysError, SysResult, check, owned};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UNIX_DIAG_VFS: u16 = 1;
/// nlmsghdr (16) + unix_diag_req (24).
const REQUEST_LEN: usize = 40;
/// nlmsghdr (16) + unix_diag_msg (16).
const ATTRS_AT: usize = 32;

/// A unix socket as unix_diag describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixSocketRecord {
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub kind: i32,
    pub file: Option<BoundUnixSocket>,
}

/// A bound unix socket's file, and the cookie that names this socket
/// (never reused, unlike its inode number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundUnixSocket {
    /// The file's device, encoded as `st_dev` is, and its inode
    /// (unix_diag carries the low 32 bits only).
    pub vfs_dev: u64,
    pub vfs_ino: u32,
    pub cookie: u64,
}

fn diag_error(errno: i32) -> SysError {
    SysError::new(Call::other("sock_diag", "unix"), errno)
}

/// The file socket `sock_ino` is bound to, if it is alive (and, with
/// `cookie`, still that very socket) and bound to a path: `None`
/// otherwise (unbound, abstract, gone, or another socket now).
pub fn unix_socket_file(sock_ino: u32, cookie: Option<u64>) -> SysResult<Option<BoundUnixSocket>> {
    Ok(unix_socket(sock_ino, cookie)?.and_then(|s| s.file))
}

/// What the kernel says of unix socket `sock_ino` in this network
/// namespace: its type and, when it is bound to a path, that file. None
/// when there is no such socket (or not the one `cookie` names).
pub fn unix_socket(sock_ino: u32, cookie: Option<u64>) -> SysResult<Option<UnixSocketRecord>> {
    let nl = check(
        // SAFETY: integer arguments only.
        unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        },
        || Call::other("socket", "NETLINK_SOCK_DIAG"),
    )?;
    let nl = owned(nl);
    let mut req = [0u8; REQUEST_LEN];
    req[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    // unix_diag_req: family, protocol, pad, states, ino, show, cookie.
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[24..28].copy_from_slice(&sock_ino.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    // No cookie to check: INET_DIAG_NOCOOKIE, all ones.
    let cookie_words = cookie.unwrap_or(u64::MAX);
    req[32..36].copy_from_slice(&(cookie_words as u32).to_ne_bytes());
    req[36..40].copy_from_slice(&((cookie_words >> 32) as u32).to_ne_bytes());
    send(nl.as_raw_fd(), &req)?;
    let mut reply = [0u8; 512];
    let n = receive(nl.as_raw_fd(), &mut reply)?;
    parse_reply(&reply[..n])
}

fn send(fd: RawFd, req: &[u8]) -> SysResult<()> {
    // SAFETY: req is a readable buffer of its length.
    let n = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
    check(n as i32, || Call::other("send", "sock_diag"))?;
    Ok(())
}

fn receive(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        match check(n as i32, || Call::other("recv", "sock_diag")) {
            Err(e) if e.errno() == libc::EINTR => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

/// One reply: an error (ENOENT: no such socket), or the socket's record
/// with its UNIX_DIAG_VFS attribute when it is bound to a file.
fn parse_reply(reply: &[u8]) -> SysResult<Option<UnixSocketRecord>> {
    let malformed = || diag_error(libc::EBADMSG);
    let msg_type = u16_at(reply, 4).ok_or_else(malformed)?;
    if msg_type == NLMSG_ERROR {
        let errno = -(u32_at(reply, 16).ok_or_else(malformed)? as i32);
        return match errno {
            // No such socket; ESTALE: not the one the cookie named.
            libc::ENOENT | libc::ESTALE => Ok(None),
            0 => Err(malformed()),
            errno => Err(diag_error(errno)),
        };
    }
    if msg_type != SOCK_DIAG_BY_FAMILY {
        return Err(malformed());
    }
    let len = (u32_at(reply, 0).ok_or_else(malformed)? as usize).min(reply.len());
    // unix_diag_msg: family, type, state, pad, ino, cookie.
    let kind = i32::from(*reply.get(17).ok_or_else(malformed)?);
    let cookie = u64::from(u32_at(reply, 24).ok_or_else(malformed)?)
        | u64::from(u32_at(reply, 28).ok_or_else(malformed)?) << 32;
    let mut at = ATTRS_AT;
    while at + 4 <= len {
        let attr_len = usize::from(u16_at(reply, at).ok_or_else(malformed)?);
        let attr_type = u16_at(reply, at + 2).ok_or_else(malformed)?;
        if attr_len < 4 {
            return Err(malformed());
        }
        if attr_type == UNIX_DIAG_VFS && attr_len >= 12 {
            // The kernel's own dev_t: 12 bits of major above 20 of minor.
            let dev = u32_at(reply, at + 8).ok_or_else(malformed)?;
            let file = BoundUnixSocket {
                vfs_ino: u32_at(reply, at + 4).ok_or_else(malformed)?,
                vfs_dev: libc::makedev(dev >> 20, dev & 0xf_ffff),
                cookie,
            };
            return Ok(Some(UnixSocketRecord {
                kind,
                file: Some(file),
            }));
        }
        at += attr_len.next_multiple_of(4);
    }
    Ok(Some(UnixSocketRecord { kind, file: None }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_bound_socket_is_known_by_its_file() {
        let dir = std::env::temp_dir().join(format!("srtl-diag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let sock_ino = super::super::fstat(listener.as_raw_fd()).unwrap().st_ino as u32;
        let Ok(found) = unix_socket_file(sock_ino, None) else {
            eprintln!("skipped: no unix_diag in this kernel");
            return;
        };
        let found = found.expect("a live bound socket");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(u64::from(found.vfs_ino), meta.ino() & 0xffff_ffff);
        assert_eq!(found.vfs_dev, meta.dev());
        // The cookie names it; a wrong one does not.
        assert_eq!(
            unix_socket_file(sock_ino, Some(found.cookie)).unwrap(),
            Some(found)
        );
        let record = unix_socket(sock_ino, None).unwrap().unwrap();
        assert_eq!(record.kind, libc::SOCK_STREAM);
        assert_eq!(
            unix_socket_file(sock_ino, Some(found.cookie ^ 1)).unwrap(),
            None
        );
        drop(listener);
        assert_eq!(
            unix_socket_file(sock_ino, Some(found.cookie)).unwrap(),
            None
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
