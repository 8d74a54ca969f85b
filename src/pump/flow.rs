//! One direction of a connection (a [`Flow`] between two [`Side`]s): read
//! and write through the pump's shared scratch buffer for short exchanges,
//! splice(2) through a pipe of its own once the data is bulk, and the
//! half-close and error rules of the module comment in `mod.rs`. Runs in
//! the pump's process, single-threaded.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys;

/// The shared read buffer, and the most a read/write flow holds.
pub(super) const FLOW_CAPACITY: usize = 64 * 1024;

/// The pipe a bulk (splice) flow asks for: fewer, larger splices per byte.
/// The kernel may grant less (fs.pipe-max-size, per-user pipe quotas); the
/// default 64 KiB pipe works too.
pub(super) const BULK_PIPE: usize = 256 * 1024;

/// One end of a pair: a socket (same descriptor both ways) or stdin/stdout.
pub(super) struct Side {
    pub(super) read_fd: RawFd,
    pub(super) write_fd: RawFd,
    /// The descriptor this side owns and closes (none for stdin/stdout).
    pub(super) owned: Option<OwnedFd>,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// An event said the peer shut its sending down (or the socket
    /// failed): reads go on to that end, even after a short one.
    pub(super) input_ends: bool,
    /// stdout is closed rather than shut down when its flow ends.
    pub(super) close_to_shut: bool,
}

impl Side {
    pub(super) fn socket(fd: OwnedFd) -> Side {
        let raw = fd.as_raw_fd();
        Side {
            read_fd: raw,
            write_fd: raw,
            owned: Some(fd),
            readable: false,
            writable: false,
            input_ends: false,
            close_to_shut: false,
        }
    }

    /// Whether a short read proves this side drained: a stream socket's
    /// read returns less than asked only when nothing more is queued, and
    /// anything arriving later is a new edge event, unless the end of
    /// input arrived before it (then no event will come again, and the
    /// next read must find that end). Said only of sockets, which are
    /// always in the epoll set (stdin may be a file epoll refuses).
    fn drained_by_short_read(&self) -> bool {
        self.read_fd == self.write_fd && !self.input_ends
    }
}

/// How a flow moves bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Mode {
    /// read/write through the shared scratch buffer (no pipe: cheap for
    /// the short exchanges most connections are) until a read fills it.
    #[default]
    Copy,
    /// splice through the flow's own pipe: bulk data never enters user
    /// space.
    Splice,
    /// read/write for good: an end that cannot splice (a terminal).
    CopyOnly,
}

/// One direction of a pair.
#[derive(Default)]
pub(super) struct Flow {
    pub(super) mode: Mode,
    pub(super) pipe: Option<(OwnedFd, OwnedFd)>,
    /// Bytes read but not yet written (read/write path), from `start`.
    pub(super) buffer: Vec<u8>,
    pub(super) start: usize,
    /// Bytes sitting in the pipe, and what the pipe can hold.
    pub(super) in_pipe: usize,
    pub(super) pipe_size: usize,
    /// The destination is gone; read and drop until the source ends.
    pub(super) discard: bool,
    pub(super) eof: bool,
    pub(super) done: bool,
}

impl Flow {
    pub(super) fn held(&self) -> usize {
        self.buffer.len() - self.start + self.in_pipe
    }

    /// The destination is gone (EPIPE, reset): what this direction holds
    /// can never be delivered. It keeps reading its source, discarding,
    /// until the source ends: closing a TCP socket with unread bytes sends
    /// a reset, which would destroy what the other direction is still
    /// delivering to that same peer.
    pub(super) fn abandon(&mut self) {
        self.discard = true;
        self.buffer = Vec::new();
        self.start = 0;
        self.pipe = None;
        self.in_pipe = 0;
    }
}

/// The peer of this end has gone away (for writes) or reset (for reads).
pub(super) fn peer_gone(e: &sys::SysError) -> bool {
    matches!(e.errno(), libc::EPIPE | libc::ECONNRESET)
}

/// Advances one flow as far as readiness allows. `scratch` is the pump's
/// one shared read buffer. `other_done`: the opposite flow has ended, so
/// the pair closes as soon as this one ends, and closing a socket sends
/// the FIN a half-close would have sent (nothing is left unread in it: both
/// directions have read their source to its end).
pub(super) fn progress(
    flow: &mut Flow,
    src: &mut Side,
    dst: &mut Side,
    scratch: &mut [u8],
    other_done: bool,
) -> Result<(), sys::SysError> {
    while !flow.done {
        if flow.discard {
            return discard(flow, src, scratch);
        }
        let mut moved = false;
        if flow.held() > 0 && dst.writable {
            moved |= drain(flow, dst)?;
        }
        let room = match flow.mode {
            Mode::Splice => flow.held() < flow.pipe_size.max(FLOW_CAPACITY),
            // Read/write keeps order by reading only once nothing is held.
            Mode::Copy | Mode::CopyOnly => flow.held() == 0,
        };
        if !flow.eof && src.readable && room {
            moved |= match flow.mode {
                Mode::Splice => fill_pipe(flow, src)?,
                Mode::Copy | Mode::CopyOnly => copy(flow, src, dst, scratch)?,
            };
        }
        if flow.eof && flow.held() == 0 {
            // End of input, everything delivered: pass the half-close on.
            if dst.close_to_shut {
                if dst
                    .owned
                    .as_ref()
                    .is_some_and(|fd| fd.as_raw_fd() == dst.write_fd)
                {
                    dst.owned = None;
                } else {
                    let _ = sys::close(dst.write_fd);
                }
            } else if !other_done {
                let _ = sys::shutdown_write(dst.write_fd);
            }
            flow.done = true;
            break;
        }
        if !moved {
            break;
        }
    }
    Ok(())
}

/// Reads and drops what the source sends until it ends (see
/// [`Flow::abandon`]).
pub(super) fn discard(
    flow: &mut Flow,
    src: &mut Side,
    scratch: &mut [u8],
) -> Result<(), sys::SysError> {
    while src.readable {
        match sys::read(src.read_fd, scratch) {
            Ok(0) => {
                flow.done = true;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.errno() == libc::EAGAIN => src.readable = false,
            Err(e) if peer_gone(&e) => {
                flow.done = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read/write through the shared scratch buffer: what the destination
/// does not take at once is kept in the flow's own buffer. A read that
/// fills the whole scratch buffer means bulk data: the flow switches to
/// splice once what it holds is delivered.
pub(super) fn copy(
    flow: &mut Flow,
    src: &mut Side,
    dst: &mut Side,
    scratch: &mut [u8],
) -> Result<bool, sys::SysError> {
    let n = match sys::read(src.read_fd, scratch) {
        Ok(0) => {
            flow.eof = true;
            return Ok(true);
        }
        Ok(n) => n,
        Err(e) if e.errno() == libc::EAGAIN => {
            src.readable = false;
            return Ok(false);
        }
        Err(e) if peer_gone(&e) => {
            flow.eof = true;
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    let mut sent = 0;
    if dst.writable {
        match sys::write(dst.write_fd, &scratch[..n]) {
            Ok(w) => sent = w,
            Err(e) if e.errno() == libc::EAGAIN => dst.writable = false,
            Err(e) if peer_gone(&e) => {
                flow.abandon();
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    if sent < n {
        dst.writable = false;
        flow.buffer.clear();
        flow.buffer.extend_from_slice(&scratch[sent..n]);
        flow.start = 0;
    }
    if n == scratch.len() && flow.mode == Mode::Copy {
        flow.mode = Mode::Splice;
    } else if n < scratch.len() && src.drained_by_short_read() {
        // No read that would only say EAGAIN.
        src.readable = false;
    }
    Ok(true)
}

/// Errors that say the process or the system is short of descriptors or
/// memory for now: worth waiting out, never a reason to give up a flow.
pub(super) fn out_of_resources(e: &sys::SysError) -> bool {
    matches!(
        e.errno(),
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

/// Splices from `src` into the flow's pipe.
pub(super) fn fill_pipe(flow: &mut Flow, src: &mut Side) -> Result<bool, sys::SysError> {
    fill_pipe_with(flow, src, sys::pipe_nonblock)
}

/// [`fill_pipe`], with the pipe made by `new_pipe` when the flow has none
/// yet (the unit tests make it fail the way a process out of descriptors
/// sees it).
pub(super) fn fill_pipe_with(
    flow: &mut Flow,
    src: &mut Side,
    new_pipe: impl FnOnce() -> Result<(OwnedFd, OwnedFd), sys::SysError>,
) -> Result<bool, sys::SysError> {
    if flow.pipe.is_none() {
        match new_pipe() {
            Ok((r, w)) => {
                flow.pipe_size =
                    sys::set_pipe_size(w.as_raw_fd(), BULK_PIPE).unwrap_or(FLOW_CAPACITY);
                flow.pipe = Some((r, w));
            }
            Err(e) if out_of_resources(&e) => {
                // Out of descriptors or pipe quota: the pipe is only a
                // speed-up, so the flow carries on through the scratch
                // buffer (and asks again on its next full read) rather
                // than dropping a connection that is working.
                flow.mode = Mode::Copy;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    let (_, w) = flow.pipe.as_ref().expect("created above");
    let room = flow.pipe_size.max(FLOW_CAPACITY) - flow.in_pipe;
    match sys::splice(src.read_fd, w.as_raw_fd(), room) {
        Ok(0) => {
            flow.eof = true;
            Ok(true)
        }
        Ok(n) => {
            flow.in_pipe += n;
            Ok(true)
        }
        Err(e) if e.errno() == libc::EAGAIN => {
            // With bytes in the pipe, EAGAIN may mean the pipe's slots are
            // full rather than the source empty: only an empty pipe proves
            // the source is drained.
            if flow.in_pipe == 0 {
                src.readable = false;
            }
            Ok(false)
        }
        Err(e) if peer_gone(&e) => {
            flow.eof = true;
            Ok(true)
        }
        Err(e) if e.errno() == libc::EINVAL && flow.in_pipe == 0 => {
            // Not spliceable (a terminal, some files): read/write for good.
            flow.mode = Mode::CopyOnly;
            flow.pipe = None;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Delivers what the flow holds (its own buffer first, then its pipe).
pub(super) fn drain(flow: &mut Flow, dst: &mut Side) -> Result<bool, sys::SysError> {
    let from_buffer = flow.start < flow.buffer.len();
    let result = if from_buffer {
        sys::write(dst.write_fd, &flow.buffer[flow.start..])
    } else {
        let (r, _) = flow.pipe.as_ref().expect("bytes held imply a pipe");
        sys::splice(r.as_raw_fd(), dst.write_fd, flow.in_pipe)
    };
    match result {
        Ok(n) if from_buffer => {
            flow.start += n;
            if flow.start == flow.buffer.len() {
                flow.buffer = Vec::new();
                flow.start = 0;
            }
            Ok(n > 0)
        }
        Ok(n) => {
            flow.in_pipe -= n;
            Ok(n > 0)
        }
        Err(e) if e.errno() == libc::EAGAIN => {
            dst.writable = false;
            Ok(false)
        }
        Err(e) if peer_gone(&e) => {
            flow.abandon();
            Ok(true)
        }
        Err(e) if e.errno() == libc::EINVAL && !from_buffer => {
            // The destination cannot take a splice (a terminal): move what
            // the pipe holds into the buffer and read/write from now on.
            let (r, _) = flow.pipe.take().expect("bytes held imply a pipe");
            let mut held = vec![0; flow.in_pipe];
            let n = sys::read(r.as_raw_fd(), &mut held)?;
            held.truncate(n);
            flow.buffer = held;
            flow.start = 0;
            flow.in_pipe = 0;
            flow.mode = Mode::CopyOnly;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}
