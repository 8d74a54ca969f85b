//! Host-side servers for the networking tests, each on its own threads,
//! on loopback or unix sockets only.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What a server does with each connection.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Echo everything, then half-close when the client did.
    Echo,
    /// Read to EOF, then answer "got N" and close.
    ReplyAfterEof,
    /// Send "greeting", half-close, then read to EOF and report it.
    GreetThenRead,
    /// Answer with a fixed tag (who am I) and close.
    Tag(&'static str),
}

/// A stream both socket kinds provide.
pub trait Stream: Read + Write + Send + 'static {
    fn half_close(&self);
    fn try_clone_box(&self) -> Box<dyn Stream>;
}

impl Stream for TcpStream {
    fn half_close(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn try_clone_box(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().unwrap())
    }
}

impl Stream for UnixStream {
    fn half_close(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn try_clone_box(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().unwrap())
    }
}

fn serve(mut conn: Box<dyn Stream>, behaviour: Behaviour, report: mpsc::Sender<Vec<u8>>) {
    match behaviour {
        Behaviour::Echo => {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            conn.half_close();
        }
        Behaviour::ReplyAfterEof => {
            let mut all = Vec::new();
            let _ = conn.read_to_end(&mut all);
            let _ = conn.write_all(format!("got {}", all.len()).as_bytes());
            conn.half_close();
        }
        Behaviour::GreetThenRead => {
            let _ = conn.write_all(b"greeting");
            conn.half_close();
            let mut all = Vec::new();
            let _ = conn.read_to_end(&mut all);
            let _ = report.send(all);
        }
        Behaviour::Tag(tag) => {
            let _ = conn.write_all(tag.as_bytes());
            conn.half_close();
        }
    }
}

/// A unix-socket server at `path` (world-connectable); returns a receiver
/// of what `GreetThenRead` connections received.
pub fn unix_server(path: &Path, behaviour: Behaviour) -> mpsc::Receiver<Vec<u8>> {
    unix_server_after(path, behaviour, None)
}

/// A unix server with a backlog of one that accepts nothing until `delay`
/// has passed: a relay's connects meanwhile find the queue full (EAGAIN)
/// and must retry, not give up.
pub fn slow_unix_server(path: &Path, behaviour: Behaviour, delay: Duration) {
    unix_server_after(path, behaviour, Some(delay));
}

fn unix_server_after(
    path: &Path,
    behaviour: Behaviour,
    slow: Option<Duration>,
) -> mpsc::Receiver<Vec<u8>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    if slow.is_some() {
        // listen(2) again on a listening socket only sets its backlog.
        // SAFETY: a plain call on a descriptor the listener owns.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1) }, 0);
    }
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        if let Some(delay) = slow {
            thread::sleep(delay);
        }
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            thread::spawn(move || serve(Box::new(conn), behaviour, tx));
        }
    });
    rx
}

/// A TCP server on `addr` (port 0 for any); returns its port.
pub fn tcp_server(addr: &str, behaviour: Behaviour) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            thread::spawn(move || serve(Box::new(conn), behaviour, tx));
        }
    });
    (port, rx)
}

/// A loopback port held by a bound socket that does not listen: a
/// connection to it is refused, and no other socket can take the port
/// while this one holds it (it has no SO_REUSEADDR, unlike std's
/// listeners), so there is no window between picking the port and using it.
pub struct ReservedPort {
    fd: OwnedFd,
    port: u16,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        // SAFETY: plain socket calls on a descriptor we own; `addr` and
        // `len` are valid for the sizes passed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let sa = (&mut addr as *mut libc::sockaddr_in).cast::<libc::sockaddr>();
            assert_eq!(libc::bind(fd.as_raw_fd(), sa, len), 0, "bind");
            assert_eq!(libc::getsockname(fd.as_raw_fd(), sa, &mut len), 0);
            let port = u16::from_be(addr.sin_port);
            ReservedPort { fd, port }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts listening on the reserved port itself: the port never
    /// passes through a moment where it is free.
    pub fn listen(self) -> TcpListener {
        // SAFETY: listen on a bound socket we own.
        let rc = unsafe { libc::listen(self.fd.as_raw_fd(), 128) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
        TcpListener::from(self.fd)
    }
}

/// Open descriptors and resident memory (kB) of a process.
pub fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// Descriptors and memory once the process has finished closing what it
/// was closing: the same descriptor count three samples in a row.
pub fn settled(pid: u32) -> (usize, u64) {
    let mut last = fds_and_rss(pid);
    let mut same = 0;
    for _ in 0..250 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = fds_and_rss(pid);
        same = if now.0 == last.0 { same + 1 } else { 0 };
        last = now;
        if same >= 3 {
            break;
        }
    }
    last
}

/// The direct children of a process.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// A process's state letter from /proc/PID/stat (`R`, `S`, `Z` …), or
/// `X` when it is gone.
pub fn process_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(')').next()?.trim_start().chars().next())
        .unwrap_or('X')
}

/// Whether a process is gone (or a zombie awaiting its reaper).
pub fn is_gone(pid: u32) -> bool {
    matches!(process_state(pid), 'X' | 'Z')
}

/// The descriptor a raw syscall returned, owned; panics naming `what`
/// when it failed.
fn owned_result(ret: libc::c_long, what: &str) -> OwnedFd {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor the kernel has just returned to us, owned by
    // nothing else.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

/// For each connected TCP socket process `pid` holds, whether it has
/// TCP_NODELAY: each is copied out with pidfd_getfd (the tests run as
/// root, or as the user owning the relay, its ancestor) and asked.
pub fn tcp_nodelay_of_connections(pid: u32) -> Vec<bool> {
    // SAFETY: a raw syscall with integer arguments.
    let pidfd = owned_result(
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) },
        "pidfd_open",
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let number: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
        // SAFETY: a raw syscall with integer arguments.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), number, 0) };
        let fd = owned_result(ret, "pidfd_getfd");
        let option = |level, name| {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: value and len are valid for the size passed.
            let ret = unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    level,
                    name,
                    (&raw mut value).cast(),
                    &mut len,
                )
            };
            (ret == 0).then_some(value)
        };
        let domain = option(libc::SOL_SOCKET, libc::SO_DOMAIN);
        let tcp = matches!(domain, Some(libc::AF_INET | libc::AF_INET6))
            && option(libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM);
        if tcp && option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(0) {
            found.push(option(libc::IPPROTO_TCP, libc::TCP_NODELAY) == Some(1));
        }
    }
    found
}
