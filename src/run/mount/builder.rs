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

use anyhow::{Context, Result, bail};

use super::legacy::{self, MountEntry};
use crate::exit::Fact;
use crate::run::Features;
use crate::run::resolve::{Kind, Modes, Resolver};
use crate::stubs::{Record, RuntimeDir, StubLock, StubLog};
use crate::sys::{self, uapi};

/// A source that cannot be opened: `--bind source /nope: No such file or
/// directory (os error 2)`, complete as it stands (SPEC §1's example).
#[derive(Debug)]
pub struct SourceError {
    what: String,
    path: PathBuf,
    cause: std::io::Error,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

impl std::error::Error for SourceError {}

impl SourceError {
    /// The errno that refused the source.
    pub fn errno(&self) -> Option<i32> {
        self.cause.raw_os_error()
    }

    /// The failure as data, for front-ends that word it their own way.
    pub fn fact(&self) -> Fact {
        Fact::Source {
            path: self.path.clone(),
            errno: self.errno().unwrap_or(libc::EIO),
        }
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

    /// Notes the launcher's private directories (host paths), to be hidden
    /// wherever a bind shows them; one that cannot be opened is not there
    /// to be shown.
    pub fn watch_private(&mut self, paths: &[PathBuf]) -> Result<()> {
        for path in paths {
            let Ok(fd) = self.resolver.open_in_root(self.host.as_raw_fd(), path) else {
                continue;
            };
            let st = sys::fstat(fd.as_raw_fd())?;
            self.private.push(PrivateDir {
                host_path: strip(&fd_path(fd.as_raw_fd())?, "/oldroot")?,
                dev: st.st_dev,
                ino: st.st_ino,
            });
        }
        Ok(())
    }

    /// The stub locks taken while building, to hold until the sandbox ends.
    pub fn into_holds(self) -> Vec<StubLock> {
        let mut holds = self.holds;
        holds.extend(self.log.map(StubLog::into_lock));
        holds
    }

    /// Records a stub this sandbox relies on, in its own log.
    pub fn record_stub(&mut self, record: &Record) -> Result<()> {
        if self.log.is_none() {
            self.log = Some(self.runtime()?.new_log()?);
        }
        self.log.as_ref().expect("made above").append(record)
    }

    /// Where deny-path stubs are recorded; an error when there is none
    /// (only plans with deny paths open it).
    pub fn runtime(&self) -> Result<&'a RuntimeDir> {
        self.runtime
            .context("no runtime directory for deny-path stubs")
    }

    pub fn keep_lock(&mut self, lock: StubLock) {
        self.holds.push(lock);
    }

    /// The (dev, ino) of the host directory that holds `host` (a host
    /// path as [`Builder::host_path_of`] gives it: no symlinks).
    pub fn host_parent_of(&self, host: &Path) -> Option<(u64, u64)> {
        let parent = host.parent()?;
        let rel = parent.strip_prefix("/").unwrap_or(parent);
        let name = if rel.as_os_str().is_empty() {
            OsStr::new(".")
        } else {
            rel.as_os_str()
        };
        let st = sys::fstatat(self.host.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW).ok()?;
        Some((st.st_dev, st.st_ino))
    }

    /// A readable descriptor of the very object `fd` (O_PATH) holds,
    /// through its /proc link (never its name again): a FIFO does not
    /// block, a terminal is not made ours.
    pub fn reopen_readable(&self, fd: RawFd) -> Result<OwnedFd> {
        let link = format!("/oldroot/proc/self/fd/{fd}");
        Ok(sys::open(
            OsStr::new(&link),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )?)
    }

    /// Whether `host` (a host path) is, right now, the object (dev, ino).
    pub fn host_object_is(&self, host: &Path, dev: u64, ino: u64) -> bool {
        let rel = host.strip_prefix("/").unwrap_or(host);
        sys::fstatat(
            self.host.as_raw_fd(),
            rel.as_os_str(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| (st.st_dev, st.st_ino) == (dev, ino))
    }

    /// The host path of the object `fd` holds in the sandbox tree: the
    /// latest bind above it, its source, and the rest of the way; checked
    /// against the object itself (device and inode), so a wrong answer is
    /// an error, never another file.
    pub fn host_path_of(&self, fd: RawFd) -> Result<PathBuf> {
        let sandbox = strip(&fd_path(fd)?, "/newroot")?;
        let (dst, src) = self
            .binds
            .iter()
            .rev()
            .find(|(dst, _)| sandbox.starts_with(dst))
            .with_context(|| format!("{} is in no bind", sandbox.display()))?;
        let rest = sandbox.strip_prefix(dst).expect("checked by starts_with");
        let host = if rest.as_os_str().is_empty() {
            src.clone()
        } else {
            src.join(rest)
        };
        let here = sys::fstat(fd)?;
        if !self.host_object_is(&host, here.st_dev, here.st_ino) {
            anyhow::bail!(
                "cannot tell where {} is on the host ({} is another file)",
                sandbox.display(),
                host.display()
            );
        }
        Ok(host)
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

    /// Binds the object held by `fd` (a directory, a symlink or a file)
    /// onto itself, recursively, so that it becomes a mount point: the
    /// kernel then refuses to rename, remove or replace it (EBUSY), while
    /// it still resolves as before and its contents keep the flags they
    /// had (a bind copies its mount's flags, and no remount follows: the
    /// pre-5.12 remount would go through the path and follow a link).
    /// Recursive, so whatever is already mounted below it stays in place.
    /// Each object is pinned once while consecutive deny paths are applied
    /// (see [`Builder::forget_pins`]): ancestors they share cost one bind.
    pub fn pin(&mut self, fd: RawFd) -> Result<()> {
        let st = sys::fstat(fd)?;
        if !self.pinned.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
        if self.features.new_mount_api {
            let tree = sys::open_tree_clone(fd, true)?;
            sys::move_mount(tree.as_raw_fd(), fd)?;
            return Ok(());
        }
        legacy::bind_onto_itself(fd)
    }

    /// Whether the object `st` describes was pinned by an earlier deny
    /// path of the current run of them.
    pub fn is_pinned(&self, st: &libc::stat) -> bool {
        self.pinned.contains(&(st.st_dev, st.st_ino))
    }

    /// A step other than a deny path may mount over pinned objects (a
    /// later `--bind` of their parent shows them unpinned again), so what
    /// was pinned is forgotten and the next deny path pins afresh.
    pub fn forget_pins(&mut self) {
        self.pinned.clear();
    }

    /// Opens a source in the host's view, following symlinks. A missing
    /// source reads `--bind source /nope: No such file or directory`.
    pub fn open_source(&self, option: &str, src: &Path) -> Result<OwnedFd> {
        let absolute = match (src.is_absolute(), self.host_cwd) {
            (true, _) => src.to_path_buf(),
            (false, Some(cwd)) => cwd.join(src),
            (false, None) => PathBuf::from("/").join(src),
        };
        let (source, through_magic_link) = self
            .resolver
            .open_source_in_root(self.host.as_raw_fd(), &absolute)
            .map_err(|e| {
                anyhow::Error::new(SourceError {
                    what: format!("{option} source {}", src.display()),
                    path: src.to_path_buf(),
                    cause: std::io::Error::from_raw_os_error(e.errno()),
                })
            })?;
        if through_magic_link && !self.is_in_our_view(source.as_raw_fd())? {
            return self.reopen_in_host_view(option, source.as_raw_fd());
        }
        Ok(source)
    }

    /// Whether the kernel will bind what `fd` holds from here: a mount of
    /// our namespace's copy of the host tree (its path starts at
    /// `/oldroot`), or a namespace file (bindable from anywhere). What
    /// `/proc/self/exe` and the caller's descriptors lead to lies on the
    /// mounts of the namespace they were opened in.
    fn is_in_our_view(&self, fd: RawFd) -> Result<bool> {
        if sys::fstatfs_type(fd)? == uapi::NSFS_MAGIC {
            return Ok(true);
        }
        Ok(fd_path(fd)?.starts_with("/oldroot"))
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

    /// The object the caller's descriptor `fd` holds, opened again through
    /// our namespace's copy of the host tree (the kernel binds only mounts
    /// of our own namespace): by the path the descriptor shows, then
    /// checked to be the very same object, so a rename or replacement in
    /// between is refused rather than bound.
    pub fn reopen_in_host_view(&self, option: &str, fd: RawFd) -> Result<OwnedFd> {
        let held = sys::fstat(fd).with_context(|| format!("Can't stat fd {fd}"))?;
        let path = fd_path(fd)?;
        let source = self.open_source(option, &path)?;
        let found = sys::fstat(source.as_raw_fd())?;
        if (found.st_dev, found.st_ino) != (held.st_dev, held.st_ino) {
            bail!(
                "Race condition binding dirfd: {} is no longer what fd {fd} holds",
                path.display()
            );
        }
        Ok(source)
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
            bail!("Can't mount on symlink destination {}", dst.display());
        }
        let target = self.create_dst(dst, kind)?;
        let is_dir = sys::fstat(target.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
        match kind {
            Kind::Dir if !is_dir => bail!("Destination is not a directory {}", dst.display()),
            Kind::File if is_dir => bail!("Destination is not a file {}", dst.display()),
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

    /// Recursive bind of `src` on `dst` with nosuid and nodev (and
    /// read-only) on the bind *and every submount*, keeping every flag the
    /// source already had.
    pub fn bind(&mut self, option: &str, src: &Path, dst: &Path, read_only: bool) -> Result<()> {
        let mut attrs = uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;
        if read_only {
            attrs |= uapi::MOUNT_ATTR_RDONLY;
        }
        self.bind_with(option, src, dst, attrs)
    }

    /// Recursive bind of `src` on `dst` adding `attrs` (`MOUNT_ATTR_*`) on
    /// the bind and every submount.
    pub fn bind_with(&mut self, option: &str, src: &Path, dst: &Path, attrs: u64) -> Result<()> {
        let source = self.open_source(option, src)?;
        self.bind_opened(source.as_raw_fd(), dst, attrs)
    }

    /// Recursive bind of what `source` holds (a descriptor opened in the
    /// host's view, or passed by the caller: bwrap's `--bind-fd`) on `dst`,
    /// adding `attrs` on the bind and every submount.
    pub fn bind_opened(&mut self, source: RawFd, dst: &Path, attrs: u64) -> Result<()> {
        let st = sys::fstat(source)?;
        let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = self.mount_point(dst, kind)?;
        self.bind_fd(source, target.as_raw_fd(), true, attrs)?;
        // Only a directory can contain a private directory or a deny
        // path's parent; a file matters only on a private directory's
        // filesystem (it could be one of its records). Most binds of a
        // large profile are `/dev/null` masks, which cost nothing here.
        let watched = kind == Kind::Dir || self.private.iter().any(|p| p.dev == st.st_dev);
        if (self.runtime.is_some() || !self.private.is_empty()) && watched {
            let dst = strip(&fd_path(target.as_raw_fd())?, "/newroot")?;
            let src = strip(&fd_path(source)?, "/oldroot")?;
            self.binds.push((dst, src));
        }
        Ok(())
    }

    /// Every place in the sandbox where a bind shows one of the private
    /// directories (see [`Builder::new`]) or something inside one, with
    /// what must be found there: that directory (dev, ino), or any object
    /// of its filesystem (a bind of something inside it). Checked against
    /// the object found, so a path another step covered since is left
    /// alone.
    pub fn private_exposures(&self) -> Vec<(PathBuf, u64, Option<u64>)> {
        let mut spots = Vec::new();
        for private in &self.private {
            for (dst, src) in &self.binds {
                if let Ok(rest) = private.host_path.strip_prefix(src) {
                    spots.push((dst.join(rest), private.dev, Some(private.ino)));
                } else if src.starts_with(&private.host_path) {
                    spots.push((dst.clone(), private.dev, None));
                }
            }
        }
        spots.sort();
        spots.dedup();
        spots
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

    /// The host mount table, read on first use: the host side of our
    /// namespace never changes while the tree is built (propagation is
    /// private), so one read serves every bind.
    fn host_mounts(&mut self) -> Result<&[MountEntry]> {
        if self.host_mounts.is_none() {
            let text = std::fs::read("/oldroot/proc/self/mountinfo")
                .context("read /proc/self/mountinfo")?;
            self.host_mounts = Some(legacy::parse_mountinfo(&text));
        }
        Ok(self.host_mounts.as_deref().unwrap_or_default())
    }
}

/// The path the kernel gives for `fd`, in PID 1's view while it builds
/// (through the host's procfs, still reachable at /oldroot/proc).
fn fd_path(fd: RawFd) -> Result<PathBuf> {
    let link = format!("/oldroot/proc/self/fd/{fd}");
    Ok(PathBuf::from(sys::readlinkat(
        libc::AT_FDCWD,
        OsStr::new(&link),
    )?))
}

/// `path` below `prefix`, as an absolute path of its own (`/newroot/a` ->
/// `/a`).
fn strip(path: &Path, prefix: &str) -> Result<PathBuf> {
    let rest = path
        .strip_prefix(prefix)
        .with_context(|| format!("{} is not under {prefix}", path.display()))?;
    Ok(Path::new("/").join(rest))
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
