//! The mount primitives every plan step is made of: open a source in the
//! host's view, create a destination inside the sandbox root, bind one
//! object onto another with restrictive flags, mount a fresh filesystem.
//!
//! Runs in PID 1 while the tree is built, between the pivot to the base
//! tmpfs (host root at `/oldroot`, sandbox root at `/newroot`) and the final
//! pivot. Invariants: sources resolve inside the host root and destinations
//! inside the sandbox root, symlinks included (see `resolve.rs`); a bind
//! never gains a flag the source lacked in the permissive direction
//! (nosuid, nodev, read-only are only ever added).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::deny::stubs::{RuntimeDir, StubLock, StubLog};
use super::legacy::{self, MountEntry};
use super::resolve::{Kind, Modes, Resolver};
use crate::failure::Problem;
use crate::probe::Features;
use crate::sys::{self, uapi};

mod host_view;
mod tracking;

use host_view::{fd_path, strip};

/// A step's source, opened in the host's view, with what it is (one
/// fstat per bind, shared by the mount point and the bind: profiles bind
/// thousands of masks).
pub struct HeldSource {
    pub fd: OwnedFd,
    st: libc::stat,
}

impl HeldSource {
    pub fn new(fd: OwnedFd) -> Result<HeldSource> {
        let st = sys::fstat(fd.as_raw_fd())?;
        Ok(HeldSource { fd, st })
    }

    fn is_dir(&self) -> bool {
        self.st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// A directory of the launcher's own on the host.
struct PrivateDir {
    /// Canonical.
    host_path: PathBuf,
    dev: u64,
    ino: u64,
}

/// The state shared by all operations while the tree is built.
pub struct Builder<'a> {
    resolver: Resolver,
    features: Features,
    /// The host root as it was before we touched anything (`/oldroot`).
    host: OwnedFd,
    /// The sandbox root (`/newroot`), an empty tmpfs to start with.
    root: OwnedFd,
    host_cwd: Option<&'a Path>,
    pub tty: Option<&'a OsStr>,
    /// Host mount table, read once, for the pre-5.12 remount walk.
    host_mounts: Option<Vec<MountEntry>>,
    /// The filesystems that exist only in the sandbox (its root tmpfs and
    /// every tmpfs an operation mounted), by st_dev: what is created there
    /// never appears on the host.
    sandbox_devs: Vec<u64>,
    /// PID 1's own empty (file, directory) in the base tmpfs (its root
    /// while the tree is built), the sources of masks; each made on first
    /// use.
    empties: (Option<OwnedFd>, Option<OwnedFd>),
    /// Every bind so far, as (destination in the sandbox, source on the
    /// host), both canonical: how a sandbox path maps to a host path.
    binds: Vec<(PathBuf, PathBuf)>,
    runtime: Option<&'a RuntimeDir>,
    /// Locks on the deny-path stubs this sandbox uses.
    holds: Vec<StubLock>,
    /// This sandbox's record of them, made on first use.
    log: Option<StubLog>,
    /// The objects (dev, ino) pinned by the current run of deny paths.
    pinned: HashSet<(u64, u64)>,
    /// The launcher's private directories on the host (stub records),
    /// which no sandbox may reach.
    private: Vec<PrivateDir>,
    /// Refuse a mount whose destination is a symlink (bwrap mode), rather
    /// than resolve it inside the root.
    pub refuse_symlink_destinations: bool,
    /// What `--proc` and `--host-proc` cover.
    pub proc_covers: super::proc::ProcCovers,
}

impl<'a> Builder<'a> {
    /// Opens both roots; called once `/oldroot` and `/newroot` exist.
    pub fn new(
        features: Features,
        host_cwd: Option<&'a Path>,
        tty: Option<&'a OsStr>,
        runtime: Option<&'a RuntimeDir>,
    ) -> Result<Builder<'a>> {
        let open_dir = |p: &str| sys::open(OsStr::new(p), libc::O_PATH | libc::O_DIRECTORY);
        let root = open_dir("/newroot").context("open the sandbox root")?;
        if runtime.is_some() {
            // PID 1 holds one lock descriptor per stub for the sandbox's
            // life: thousands of deny paths need more than the usual soft
            // limit. Only PID 1's own limit changes (the workload was forked
            // before, with the caller's).
            sys::raise_nofile_limit().context("raise the open-file limit")?;
        }
        let sandbox_devs = vec![sys::fstat(root.as_raw_fd())?.st_dev];
        Ok(Builder {
            resolver: Resolver {
                use_openat2: features.openat2,
            },
            features,
            host: open_dir("/oldroot").context("open the host root")?,
            root,
            host_cwd,
            tty,
            host_mounts: None,
            sandbox_devs,
            empties: (None, None),
            binds: Vec::new(),
            runtime,
            holds: Vec::new(),
            log: None,
            pinned: HashSet::new(),
            private: Vec::new(),
            refuse_symlink_destinations: false,
            proc_covers: Default::default(),
        })
    }

    /// The sandbox root as it stands (see [`Builder::reopen_root`]).
    pub fn root_fd(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// Records the filesystem mounted at `dst` as the sandbox's own (a
    /// fresh tmpfs), so deny paths know nothing made there reaches the host.
    pub fn note_sandbox_fs(&mut self, dst: &Path) -> Result<()> {
        let mounted = self.open_mounted(dst)?;
        self.sandbox_devs
            .push(sys::fstat(mounted.as_raw_fd())?.st_dev);
        Ok(())
    }

    /// Whether `fd` lies on a filesystem that exists only in the sandbox.
    pub fn is_sandbox_fs(&self, fd: RawFd) -> Result<bool> {
        Ok(self.is_sandbox_dev(sys::fstat(fd)?.st_dev))
    }

    /// Whether device `dev` is a filesystem that exists only in the
    /// sandbox.
    pub fn is_sandbox_dev(&self, dev: u64) -> bool {
        self.sandbox_devs.contains(&dev)
    }

    /// An empty read-only directory (`dir`) or file of PID 1's own, in the
    /// base tmpfs that is detached before the workload runs.
    pub fn empty_source(&mut self, dir: bool) -> Result<RawFd> {
        let slot = if dir {
            &mut self.empties.1
        } else {
            &mut self.empties.0
        };
        if slot.is_none() {
            // Made on first use only: most sandboxes need just the file
            // (for /proc/keys), and startup pays for every call.
            let made = if dir {
                sys::mkdirat(libc::AT_FDCWD, OsStr::new("/empty-dir"), 0o555)
                    .and_then(|()| {
                        sys::open(
                            OsStr::new("/empty-dir"),
                            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        )
                    })
                    .context("create the empty mask directory")?
            } else {
                sys::openat(
                    libc::AT_FDCWD,
                    OsStr::new("/empty-file"),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_RDONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o444,
                )
                .context("create the empty mask file")?
            };
            *slot = Some(made);
        }
        Ok(slot.as_ref().expect("made above").as_raw_fd())
    }

    /// A descriptor holds one mount, not "whatever is mounted here now": an
    /// operation that mounts over the root (`--ro-bind / /`) leaves the old
    /// descriptor pointing *under* it. Re-opening `/newroot` by path goes to
    /// the topmost mount, so every operation builds on all earlier ones.
    pub fn reopen_root(&mut self) -> Result<()> {
        self.root = sys::open(OsStr::new("/newroot"), libc::O_PATH | libc::O_DIRECTORY)
            .context("open the sandbox root")?;
        Ok(())
    }

    /// The topmost mount at `dst` right after something was mounted there.
    pub fn open_mounted(&mut self, dst: &Path) -> Result<OwnedFd> {
        self.reopen_root()?;
        self.create_dst(dst, Kind::Dir)
    }

    /// bwrap's `--remount-ro DST`: the mount at DST (which must be a mount
    /// point) becomes read-only; its submounts are left as they are.
    pub fn remount_read_only(&mut self, dst: &Path) -> Result<()> {
        self.reopen_root()?;
        let mount = self.open_existing(dst)?;
        if self.features.new_mount_api {
            sys::mount_setattr(mount.as_raw_fd(), false, uapi::MOUNT_ATTR_RDONLY)?;
            return Ok(());
        }
        legacy::remount_read_only(mount.as_raw_fd())
    }

    /// What `path` names inside the sandbox, which must exist (symlinks are
    /// followed inside the root).
    pub fn open_existing(&self, path: &Path) -> Result<OwnedFd> {
        Ok(self.resolver.open_in_root(self.root.as_raw_fd(), path)?)
    }

    /// chmod of the object an O_PATH descriptor holds, through its /proc
    /// link (such a descriptor cannot be fchmod'ed itself).
    pub fn chmod_held(&self, fd: RawFd, mode: u32) -> Result<()> {
        let link = format!("/oldroot/proc/self/fd/{fd}");
        Ok(sys::fchmodat(libc::AT_FDCWD, OsStr::new(&link), mode)?)
    }

    /// A mount's destination: created when missing, refused when it exists
    /// as the other kind (a directory source needs a directory, a file
    /// source anything but one), or is a symlink when the plan says so
    /// (bubblewrap's rule: a link there could steer a later mount).
    pub fn mount_point(&self, dst: &Path, kind: Kind) -> Result<OwnedFd> {
        if self.refuse_symlink_destinations
            && let (Some(parent), Some(name)) = (dst.parent(), dst.file_name())
            && let Ok(dir) = self.resolver.open_in_root(self.root.as_raw_fd(), parent)
            && let Ok(st) = sys::fstatat(dir.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW)
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
        {
            return Err(Problem::MountOnSymlink {
                dst: dst.to_path_buf(),
            }
            .into());
        }
        let target = self.create_dst(dst, kind)?;
        let is_dir = sys::fstat(target.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
        match kind {
            Kind::Dir if !is_dir => Err(Problem::NotADirectory {
                dst: dst.to_path_buf(),
            }
            .into()),
            Kind::File if is_dir => Err(Problem::NotAFile {
                dst: dst.to_path_buf(),
            }
            .into()),
            _ => Ok(target),
        }
    }

    /// The destination `dst` inside the sandbox, created (as a mount
    /// point) when missing.
    pub fn create_dst(&self, dst: &Path, kind: Kind) -> Result<OwnedFd> {
        self.create_dst_with(dst, kind, Modes::mount_point(kind))
    }

    pub fn create_dst_with(&self, dst: &Path, kind: Kind, modes: Modes) -> Result<OwnedFd> {
        self.resolver
            .create_in_root(self.root.as_raw_fd(), dst, kind, modes)
            .context("create the destination")
    }

    /// A mount point at `dst` for what `source` holds: a directory for a
    /// directory, a file for anything else.
    pub fn mount_point_like(&self, source: &HeldSource, dst: &Path) -> Result<OwnedFd> {
        let kind = if source.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        self.mount_point(dst, kind)
    }

    /// Recursive bind of what `source` holds (opened in the host's view,
    /// or passed by the caller: bwrap's `--bind-fd`) on the mount point
    /// `target`, adding `attrs` (`MOUNT_ATTR_*`) on the bind and every
    /// submount, and keeping every flag the source already had.
    pub fn bind_at(&mut self, held: &HeldSource, target: RawFd, attrs: u64) -> Result<()> {
        let (source, st) = (held.fd.as_raw_fd(), &held.st);
        self.bind_fd(source, target, true, attrs)?;
        // Only a directory can contain a private directory or a deny
        // path's parent; a file matters only on a private directory's
        // filesystem (it could be one of its records). Most binds of a
        // large profile are `/dev/null` masks, which cost nothing here.
        let watched = held.is_dir() || self.private.iter().any(|p| p.dev == st.st_dev);
        if (self.runtime.is_some() || !self.private.is_empty()) && watched {
            let dst = strip(&fd_path(target)?, "/newroot")?;
            let src = strip(&fd_path(source)?, "/oldroot")?;
            self.binds.push((dst, src));
        }
        Ok(())
    }

    /// Binds the object held by `source` onto `target`, then adds `attrs`
    /// (`MOUNT_ATTR_*`) to the new mount and, when `recursive`, to every
    /// mount below it.
    pub fn bind_fd(
        &mut self,
        source: RawFd,
        target: RawFd,
        recursive: bool,
        attrs: u64,
    ) -> Result<()> {
        if self.features.new_mount_api {
            // The flags are set on the detached copy before it is attached,
            // so there is no moment where the bind is visible and writable;
            // mount_setattr only adds flags, so noexec/nosymfollow survive.
            let tree = sys::open_tree_clone(source, recursive)?;
            sys::mount_setattr(tree.as_raw_fd(), recursive, attrs)?;
            sys::move_mount(tree.as_raw_fd(), target)?;
            return Ok(());
        }
        let bind = legacy::Bind {
            source,
            target,
            recursive,
            attrs,
        };
        legacy::bind(&bind, || self.host_mounts())
    }
}

/// Mounts an empty tmpfs (mode 0755, nosuid, nodev) on the directory held
/// by `dir`: `--tmpfs`, and the base of `--dev`.
pub fn mount_tmpfs(dir: RawFd) -> Result<()> {
    mount_tmpfs_with(dir, 0o755, None)
}

/// Like [`mount_tmpfs`], with the root's mode and a size limit in bytes.
pub fn mount_tmpfs_with(dir: RawFd, mode: u32, size: Option<u64>) -> Result<()> {
    let mut data = format!("mode={mode:04o}");
    if let Some(size) = size {
        data.push_str(&format!(",size={size}"));
    }
    mount_on_dir(dir, "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, &data)
}

/// Mounts a fresh filesystem of `fstype` on the directory held by `dir`
/// (through the cwd, so no path string is involved).
pub fn mount_on_dir(dir: RawFd, fstype: &str, flags: u64, data: &str) -> Result<()> {
    sys::fchdir(dir)?;
    sys::mount(
        Some(OsStr::new(fstype)),
        OsStr::new("."),
        Some(fstype),
        flags,
        Some(data),
    )?;
    Ok(())
}
