//! Overlay mounts (bwrap's `--overlay-src` with `--overlay`,
//! `--tmp-overlay` or `--ro-overlay`).
//!
//! Runs in PID 1 while the tree is built. The layers are host paths,
//! opened in the host's view like any bind source and handed to overlayfs
//! as `/proc/self/fd` links, so no path string is resolved twice.
//! Invariants: the mount is nosuid and nodev; with `--tmp-overlay` the
//! writes go to directories of PID 1's base tmpfs, which is detached before
//! the workload runs, so they exist nowhere on the host and vanish with the
//! sandbox; with `--ro-overlay` there is no upper layer at all.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::builder::Builder;
use super::resolve::Kind;
use crate::failure::Problem;
use crate::plan::OverlayWrites;
use crate::sys;

/// Mounts an overlay of `lower` (in argv order: bottom layer first) on
/// `dst`, with writes as `writes` says.
pub fn mount_overlay(
    b: &mut Builder,
    option: &str,
    dst: &Path,
    lower: &[PathBuf],
    writes: &OverlayWrites,
) -> Result<()> {
    // Every layer stays open until the mount is made.
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut link = |b: &Builder, path: &Path| -> Result<String> {
        let fd = b.open_source(option, path)?;
        let link = format!("/oldroot/proc/self/fd/{}", fd.as_raw_fd());
        held.push(fd);
        Ok(link)
    };
    let mut options = String::new();
    match writes {
        OverlayWrites::Dirs { upper, work } => {
            options.push_str(&format!("upperdir={},", link(b, upper)?));
            options.push_str(&format!("workdir={},", link(b, work)?));
        }
        OverlayWrites::Tmpfs => {
            let (upper, work) = tmpfs_layers()?;
            options.push_str(&format!("upperdir={upper},workdir={work},"));
        }
        OverlayWrites::ReadOnly => {}
    }
    // overlayfs lists the top layer first.
    let lowers = lower
        .iter()
        .rev()
        .map(|path| link(b, path))
        .collect::<Result<Vec<_>>>()?;
    options.push_str(&format!("lowerdir={}", lowers.join(":")));
    // Extended attributes of the user namespace's own (user.*), as an
    // unprivileged overlay needs.
    options.push_str(",userxattr");

    let target = b.mount_point(dst, Kind::Dir)?;
    sys::fchdir(target.as_raw_fd())?;
    match sys::mount(
        Some(OsStr::new("overlay")),
        OsStr::new("."),
        Some("overlay"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&options),
    ) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == libc::ELOOP => Err(Problem::Overlay {
            dst: dst.to_path_buf(),
            options,
            overlapping: true,
        }
        .into()),
        Err(e) => Err(e).context(Problem::Overlay {
            dst: dst.to_path_buf(),
            options,
            overlapping: false,
        }),
    }
}

/// A fresh upper and work directory in the base tmpfs (PID 1's root while
/// the tree is built), numbered after those earlier overlays took.
fn tmpfs_layers() -> Result<(String, String)> {
    for serial in 0.. {
        let upper = format!("/tmp-overlay-upper-{serial}");
        match sys::mkdirat(libc::AT_FDCWD, OsStr::new(&upper), 0o755) {
            Ok(()) => {}
            Err(e) if e.errno() == libc::EEXIST => continue,
            Err(e) => return Err(e).context("create the tmpfs overlay's upper layer"),
        }
        let work = format!("/tmp-overlay-work-{serial}");
        sys::mkdirat(libc::AT_FDCWD, OsStr::new(&work), 0o755)
            .context("create the tmpfs overlay's work directory")?;
        return Ok((upper, work));
    }
    unreachable!("the serials never run out")
}
