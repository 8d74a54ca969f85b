//! `connect`'s standard descriptors: non-blocking while the pump runs,
//! as they were when it ends.

use std::os::fd::RawFd;

use anyhow::{Context, Result};

use crate::sys;

/// Makes stdin and stdout non-blocking for the pump and restores their
/// flags when dropped (a terminal's flags are shared with the shell).
pub struct StdioGuard {
    saved: Vec<(RawFd, i32)>,
}

impl StdioGuard {
    pub fn new() -> Result<StdioGuard> {
        let mut saved = Vec::new();
        for fd in [0, 1] {
            let flags = sys::get_fl(fd).context("stdin/stdout")?;
            sys::set_fl(fd, flags | libc::O_NONBLOCK)?;
            saved.push((fd, flags));
        }
        Ok(StdioGuard { saved })
    }
}

impl Drop for StdioGuard {
    fn drop(&mut self) {
        for (fd, flags) in &self.saved {
            let _ = sys::set_fl(*fd, *flags);
        }
    }
}
