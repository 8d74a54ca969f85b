//! Thin, checked wrappers around the raw system calls the launcher needs,
//! one file per kernel area.
//!
//! Runs in every process role (launcher, PID 1, workload before exec). This
//! is the only module allowed to contain `unsafe` (the crate root denies
//! `unsafe_code` everywhere else): every other module calls these wrappers,
//! which turn `-1`/errno into a [`SysError`] that names the call and its
//! arguments, so a failure deep in the mount sequence still reads as
//! `mount("/a", "/b", MS_BIND): Permission denied (os error 13)`.

use std::ffi::{CString, OsStr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

mod diag;
mod error;
mod fd;
mod fs;
mod io;
mod kernel;
mod keyring;
mod mount;
mod net;
mod notify;
mod ns;
mod process;
mod seccomp;
mod signal;
mod tty;
pub mod uapi;

pub use error::*;

pub use diag::*;
pub use fd::*;
pub use fs::*;
pub use io::*;
pub use kernel::*;
pub use keyring::*;
pub use mount::*;
pub use net::*;
pub use notify::*;
pub use ns::*;
pub use process::*;
pub use seccomp::*;
pub use signal::*;
pub use tty::*;

/// A path for a C call. Paths come from argv, which cannot hold NUL, or from
/// `--args`, which splits on NUL, so an interior NUL is a caller bug.
pub fn cstr(path: &OsStr) -> SysResult<CString> {
    CString::new(path.as_bytes()).map_err(|_| {
        SysError::new(
            Call::Own(format!("path {path:?} contains a NUL byte")),
            libc::EINVAL,
        )
    })
}

pub(crate) fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just returned to us and
    // that nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
