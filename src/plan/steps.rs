//! The steps of the mount tree, each with the [`Origin`] a front-end
//! renders its failures from.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// Which front-end made a plan: its failures are worded by that one
/// (`cli::render`), never by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontEnd {
    #[default]
    Run,
    Bwrap,
}

/// Where a step came from: the front-end, the option as the caller spelled
/// it, and the option's position among the front-end's words (the first
/// is 1; `--args` words count where they are spliced in), so a failure
/// of the step can name what asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub front_end: FrontEnd,
    pub option: &'static str,
    pub index: usize,
}

/// One step of the mount tree and the option that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: MountOp,
    pub origin: Origin,
}

/// What one step of the tree does. The plan keeps the steps in argv order:
/// a later step is applied on top of the earlier ones and may shadow them,
/// so the list is never sorted, deduplicated or keyed by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// `--bind` / `--ro-bind` (and their `-try` forms, `if_exists`):
    /// recursive bind of a host path.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        read_only: bool,
        if_exists: bool,
    },
    /// `--dev-bind` (and `--dev-bind-try`, `if_exists`): recursive
    /// read-write bind where device nodes work (no nodev), for `/dev/kvm`
    /// and the like.
    DevBind {
        src: PathBuf,
        dst: PathBuf,
        if_exists: bool,
    },
    /// `--dir`: a directory (mode 0755, or bwrap's `--perms`), with missing
    /// parents. An existing directory is kept as it is.
    Dir { dst: PathBuf, mode: Option<u32> },
    /// `--symlink TARGET DST`: a symlink at DST pointing to TARGET.
    Symlink { target: PathBuf, dst: PathBuf },
    /// `--tmpfs`: a fresh tmpfs (root mode 0755 or bwrap's `--perms`, size
    /// bwrap's `--size` or the kernel's default).
    Tmpfs {
        dst: PathBuf,
        mode: Option<u32>,
        size: Option<u64>,
    },
    /// bwrap's overlays: `--overlay-src` layers (bottom first) on DST,
    /// writes going where `writes` says.
    Overlay {
        dst: PathBuf,
        lower: Vec<PathBuf>,
        writes: OverlayWrites,
    },
    /// bwrap's `--remount-ro DST`: the mount at DST becomes read-only (not
    /// recursively).
    RemountRo { dst: PathBuf },
    /// bwrap's `--mqueue DST`: a POSIX message queue filesystem (of the
    /// sandbox's IPC namespace).
    Mqueue { dst: PathBuf },
    /// bwrap's `--chmod MODE PATH`: PATH, which must exist, gets MODE.
    Chmod { path: PathBuf, mode: u32 },
    /// bwrap's `--bind-fd FD DEST` / `--ro-bind-fd`: recursive bind of the
    /// directory (or path) the caller holds open as FD.
    BindFd {
        fd: i32,
        dst: PathBuf,
        read_only: bool,
    },
    /// bwrap's `--file FD DEST`: a file at DEST holding FD's data.
    File { fd: i32, dst: PathBuf, mode: u32 },
    /// bwrap's `--bind-data FD DEST` / `--ro-bind-data`: a file of the
    /// sandbox's own holding FD's data, bound on DEST.
    BindData {
        fd: i32,
        dst: PathBuf,
        mode: u32,
        read_only: bool,
    },
    /// `--dev`: the minimal device tree.
    Dev { dst: PathBuf },
    /// `--proc`: a fresh procfs of the sandbox's PID namespace.
    Proc { dst: PathBuf },
    /// `--host-proc`: a recursive bind of the host's /proc.
    HostProc { dst: PathBuf },
    /// `--mask` / `--deny-write` (SPEC §2.7): PATH can be neither created
    /// nor replaced inside; with `mask`, nothing of it can be read either.
    Deny { path: PathBuf, mask: bool },
}

impl MountOp {
    pub fn dst(&self) -> &Path {
        match self {
            MountOp::Bind { dst, .. }
            | MountOp::DevBind { dst, .. }
            | MountOp::Dir { dst, .. }
            | MountOp::Chmod { path: dst, .. }
            | MountOp::RemountRo { dst }
            | MountOp::Mqueue { dst }
            | MountOp::Overlay { dst, .. }
            | MountOp::File { dst, .. }
            | MountOp::BindFd { dst, .. }
            | MountOp::BindData { dst, .. }
            | MountOp::Symlink { dst, .. }
            | MountOp::Tmpfs { dst, .. }
            | MountOp::Dev { dst }
            | MountOp::Proc { dst }
            | MountOp::HostProc { dst }
            | MountOp::Deny { path: dst, .. } => dst,
        }
    }
}

/// Where an overlay's writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayWrites {
    /// `--overlay RWSRC WORKDIR DEST`: to host directories.
    Dirs { upper: PathBuf, work: PathBuf },
    /// `--tmp-overlay`: to a tmpfs of the sandbox's own, gone with it.
    Tmpfs,
    /// `--ro-overlay`: nowhere, the overlay is read-only.
    ReadOnly,
}

/// The destination as a list of components below the sandbox root, with
/// `.` dropped. `..` is kept: it is resolved inside the root, where it can
/// never climb above it.
pub fn relative_components(path: &Path) -> Vec<&OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            Component::ParentDir => Some(OsStr::new("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_dotdot_and_drop_dot() {
        let comps = relative_components(Path::new("/a/./b/../c"));
        assert_eq!(comps, ["a", "b", "..", "c"]);
        assert!(relative_components(Path::new("/")).is_empty());
    }
}
