//! A notified call, read: which of the brokered calls it is, with its
//! arguments as the call's own ABI passes them, and the unix address it
//! names. Pure functions of the copied data, unit tested without a
//! sandbox.

use crate::sys::Notification;

/// `AUDIT_ARCH_I386`: an `int 0x80` call on x86_64, whose arguments are
/// 32 bits wide and whose numbers are i386's.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// i386's connect and listen (arch/x86/entry/syscalls/syscall_32.tbl).
const I386_CONNECT: i32 = 362;
const I386_LISTEN: i32 = 363;
/// The largest address connect(2) accepts (sizeof(struct
/// sockaddr_storage)); longer is EINVAL before anything is read.
pub const MAX_ADDRESS: usize = 128;

/// The calls the filter hands to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Connect {
        fd: i32,
        addr: u64,
        len: u32,
    },
    Listen {
        fd: i32,
        backlog: i32,
    },
    /// Nothing the filter sends: answered ENOSYS.
    Unknown,
}

/// Reads the call the notification is for. An int argument is its low
/// 32 bits, as the kernel reads it; on i386 every argument is.
pub fn request(n: &Notification) -> Request {
    let word = |i: usize| n.args[i] as u32;
    let nr = i64::from(n.nr);
    let i386 = n.arch == AUDIT_ARCH_I386;
    let (connect, listen) = if i386 {
        (nr == i64::from(I386_CONNECT), nr == i64::from(I386_LISTEN))
    } else {
        (nr == libc::SYS_connect, nr == libc::SYS_listen)
    };
    if connect {
        let addr = if i386 { u64::from(word(1)) } else { n.args[1] };
        Request::Connect {
            fd: word(0) as i32,
            addr,
            len: word(2),
        }
    } else if listen {
        Request::Listen {
            fd: word(0) as i32,
            backlog: word(1) as i32,
        }
    } else {
        Request::Unknown
    }
}

/// What a connect's address names, for a unix socket.
#[derive(Debug, PartialEq, Eq)]
pub enum UnixAddress<'a> {
    /// A filesystem path (up to its first NUL).
    Path(&'a [u8]),
    /// An abstract name (leading NUL): not a file, no inode to check.
    Abstract,
    /// Too short or not AF_UNIX: the kernel says EINVAL.
    Invalid,
}

/// Whether the address is of the AF_UNIX family.
pub fn is_unix_address(addr: &[u8]) -> bool {
    addr.len() >= 2
        && i32::from(libc::sa_family_t::from_ne_bytes([addr[0], addr[1]])) == libc::AF_UNIX
}

pub fn unix_address(addr: &[u8]) -> UnixAddress<'_> {
    let family_len = std::mem::size_of::<libc::sa_family_t>();
    if addr.len() <= family_len {
        return UnixAddress::Invalid;
    }
    let family = libc::sa_family_t::from_ne_bytes([addr[0], addr[1]]);
    if i32::from(family) != libc::AF_UNIX {
        return UnixAddress::Invalid;
    }
    let path = &addr[family_len..];
    if path[0] == 0 {
        return UnixAddress::Abstract;
    }
    let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
    UnixAddress::Path(&path[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(arch: u32, nr: i32, args: [u64; 6]) -> Notification {
        Notification {
            id: 1,
            pid: 2,
            nr,
            arch,
            args,
        }
    }

    #[test]
    fn native_and_i386_calls_are_read_with_their_widths() {
        let native = if cfg!(target_arch = "x86_64") {
            0xc000_003e
        } else {
            0xc000_00b7
        };
        let n = notification(
            native,
            libc::SYS_connect as i32,
            [(1 << 32) | 5, 1 << 40, 110, 0, 0, 0],
        );
        assert_eq!(
            request(&n),
            Request::Connect {
                fd: 5,
                addr: 1 << 40,
                len: 110
            }
        );
        let n = notification(
            native,
            libc::SYS_listen as i32,
            [3, (7 << 32) | 128, 0, 0, 0, 0],
        );
        assert_eq!(
            request(&n),
            Request::Listen {
                fd: 3,
                backlog: 128
            }
        );
        let n = notification(
            AUDIT_ARCH_I386,
            I386_CONNECT,
            [4, (1 << 40) | 0x1000, 16, 0, 0, 0],
        );
        assert_eq!(
            request(&n),
            Request::Connect {
                fd: 4,
                addr: 0x1000,
                len: 16
            }
        );
        // An i386 call is never read with native numbers.
        let n = notification(
            AUDIT_ARCH_I386,
            libc::SYS_connect as i32,
            [4, 0, 16, 0, 0, 0],
        );
        assert_eq!(request(&n), Request::Unknown);
    }

    #[test]
    fn unix_addresses_are_told_apart() {
        let mut addr = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        assert_eq!(unix_address(&addr), UnixAddress::Invalid);
        addr.extend_from_slice(b"/run/a.sock\0garbage");
        assert_eq!(unix_address(&addr), UnixAddress::Path(b"/run/a.sock"));
        let mut abstract_name = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        abstract_name.extend_from_slice(b"\0name");
        assert_eq!(unix_address(&abstract_name), UnixAddress::Abstract);
        let mut inet = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        inet.extend_from_slice(&[0; 14]);
        assert_eq!(unix_address(&inet), UnixAddress::Invalid);
        // Without a NUL the path is all the bytes given.
        let mut full = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        full.extend_from_slice(b"rel");
        assert_eq!(unix_address(&full), UnixAddress::Path(b"rel"));
    }
}
