//! `--allow-unix`'s broker (SPEC §2.9): the workload's connect and
//! listen calls are handed over by its seccomp filter (user
//! notification), and the broker, a pool of threads of PID 1 outside
//! that filter, makes each call itself on the workload's behalf.
//!
//! Invariants, each relied on below:
//! * Nothing the workload controls is read twice. The address is copied
//!   once from its memory; the socket is taken once (`pidfd_getfd`: the
//!   same open file description as the workload's, not a number that a
//!   `dup2` could repoint), or replaced by the broker's own; the path is
//!   resolved once, to an O_PATH descriptor, and the connect goes through
//!   that descriptor. A connect is never CONTINUEd, so the kernel never
//!   re-reads its arguments after the check.
//! * A unix socket is connected only to a pinned inode (one of the
//!   grants, resolved in the sandbox root before the workload existed),
//!   or to a socket file that a listen of the sandbox itself bound, as
//!   the kernel reports it (unix_diag). Anything else is EACCES.
//! * A reply is sent only while the notification is still valid
//!   (`SECCOMP_IOCTL_NOTIF_ID_VALID` after the reads): a pid that was
//!   reused in between is never taken for the caller.
//! * The broker's end of the listener is PID 1's alone: the workload
//!   sends it over and closes its copy before execve. If PID 1 dies the
//!   listener closes and every pending or later notified call fails
//!   (ENOSYS); nothing waits forever.
//!
//! Where the kernel has Landlock ABI 9 there is no broker at all:
//! `landlock.rs` has the kernel enforce the same policy.
//!
//! `escapes.rs` finds the host's way-out sockets by inode, `pins.rs`
//! pins the grants, `procfs.rs` picks the procfs the broker reads,
//! `call.rs` reads a notified call, `serve.rs` runs the threads,
//! `route.rs` decides where a unix connect may go, and `take.rs` and
//! `replace.rs` are the two ways of making the call. `relay.rs` is
//! Landlock mode's: connects to the relay ports, on the host's network.

mod call;
mod escapes;
pub mod landlock;
mod pins;
pub mod procfs;
mod relay;
mod replace;
mod route;
mod serve;
mod take;

pub use escapes::{EscapeSocket, host_escape_sockets};
pub use pins::{Pin, pin_grants};
pub use serve::{
    Broker, Mechanism, can_replace_sockets_here, can_take_sockets, check_replacing, start,
};
