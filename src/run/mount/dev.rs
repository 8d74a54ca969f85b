//! The `--dev DST` tree: a tmpfs with the host's harmless device nodes bound
//! in, a private devpts, and the conventional symlinks.
//!
//! Runs in PID 1 while the mount tree is built. Invariants: only the nodes
//! listed in [`NODES`] (and the caller's own terminal as `console`) are
//! reachable as devices — the tmpfs itself is nodev, so a node created in it
//! opens nothing; the devpts is a new instance, so the workload cannot reach
//! the host's terminals through /dev/pts.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::builder::{Builder, mount_on_dir, mount_tmpfs};
use crate::log::trace;
use crate::sys::{self, uapi};

/// Host device nodes bound into the tree (the ones bubblewrap and
/// container runtimes treat as safe to share).
const NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks every program expects in /dev.
const LINKS: [(&str, &str); 6] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// `--dev DST`: a tmpfs on the mount point the step's preamble made, with
/// the host's harmless device nodes bound in, shm, pts and the links.
pub fn mount_dev(b: &mut Builder, option: &str, mount_point: RawFd, dst: &Path) -> Result<()> {
    mount_tmpfs(mount_point).context("mount tmpfs")?;
    // Re-open through the root so the descriptor holds the new tmpfs, not
    // the directory it covers.
    let dev = b.open_mounted(dst)?;
    let devfd = dev.as_raw_fd();

    for node in NODES {
        let host_node = Path::new("/dev").join(node);
        let Ok(source) = b.open_source(option, &host_node) else {
            trace!("{option}: host has no {}, skipped", host_node.display());
            continue;
        };
        bind_node(b, devfd, OsStr::new(node), source.as_raw_fd())?;
    }

    sys::mkdirat(devfd, OsStr::new("shm"), 0o755).context("create shm")?;
    sys::fchmodat(devfd, OsStr::new("shm"), 0o1777).context("chmod shm")?;

    sys::mkdirat(devfd, OsStr::new("pts"), 0o755).context("create pts")?;
    let pts = sys::openat(
        devfd,
        OsStr::new("pts"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    // newinstance: a devpts of our own, never the host's terminals.
    // ptmxmode=0666 lets the unprivileged workload open pts/ptmx.
    mount_on_dir(
        pts.as_raw_fd(),
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )
    .context("mount devpts")?;

    for (name, target) in LINKS {
        sys::symlinkat(OsStr::new(target), devfd, OsStr::new(name))
            .with_context(|| format!("create the {name} symlink"))?;
    }

    if let Some(tty) = b.tty {
        let source = b.open_source(&format!("{option} console"), Path::new(tty))?;
        bind_node(b, devfd, OsStr::new("console"), source.as_raw_fd())?;
    }
    Ok(())
}

/// Creates an empty file `name` in the dev tmpfs and binds the host node
/// over it. The bind is nosuid but not nodev: being a device is its point.
fn bind_node(b: &mut Builder, devfd: i32, name: &OsStr, source: i32) -> Result<()> {
    let placeholder = sys::openat(
        devfd,
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o644,
    )?;
    drop(placeholder);
    let target = sys::openat(devfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    b.bind_fd(source, target.as_raw_fd(), false, uapi::MOUNT_ATTR_NOSUID)
        .with_context(|| format!("bind /dev/{}", name.to_string_lossy()))
}
