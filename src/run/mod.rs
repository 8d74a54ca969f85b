//! `run`'s namespace executor: the plan (`crate::plan`) carried out by a
//! process per role (SPEC §2.4), each in a file of its own:
//!
//! ```text
//! launcher (launcher.rs)   host PID and mount ns, new net ns; waits,
//!                          forwards
//! ├── relays (relays.rs)   in the new net ns, outside the PID ns
//! └── PID 1 (pid1.rs)      new mount ns: builds the mount tree (mount/),
//!                          reaps, forwards
//!     └── workload (workload.rs)  drops everything, seccomp, execve
//! ```
//!
//! `context.rs` holds what they share, `namespaces.rs` the namespace
//! entry, `status.rs` the one codec of their pipes, `info.rs` the
//! documents for the caller, and `selftest.rs` the same steps for `check`.

pub(crate) mod context;
pub(crate) mod info;
mod launcher;
pub mod mount;
mod namespaces;
mod pid1;
pub(crate) mod relays;
pub mod selftest;
pub(crate) mod status;
pub(crate) mod workload;

pub(crate) use launcher::harden_self;
pub use launcher::launch;
