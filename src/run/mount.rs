//! Builds the sandbox's mount tree from the ordered [`MountOp`] list and
//! pivots into it.
//!
//! Runs in PID 1 (first process of the new PID namespace), inside the new
//! mount namespace, with CAP_SYS_ADMIN over that namespace (directly as
//! root, or through the sandbox's user namespace). The sequence follows
//! bubblewrap's: private propagation, a tmpfs base holding `newroot` and
//! `oldroot`, every operation applied from `oldroot` (sources) onto
//! `newroot` (destinations), then `oldroot` detached and `newroot` made `/`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::resolve::{Kind, Resolver};
use super::spec::MountOp;
use super::{Features, dev, proc};
use crate::sys::{self, SysError, uapi};

/// Where the base tmpfs goes: a directory every Linux host has. Nothing is
/// created on the host for it; it is only covered in our own namespace.
const BASE: &str = "/tmp";

/// What PID 1 needs from the launcher to build the tree.
pub struct TreeInput<'a> {
    pub ops: &'a [MountOp],
    pub features: Features,
    /// The spawn-time working directory, for relative sources.
    pub host_cwd: Option<&'a Path>,
    /// The terminal on the launcher's stdout, for `--dev`'s console.
    pub tty: Option<&'a OsStr>,
}

/// A source that cannot be opened: `--bind source /nope: No such file or
/// directory (os error 2)`, complete as it stands (SPEC §1's example).
#[derive(Debug)]
pub struct SourceError {
    what: String,
    cause: std::io::Error,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

impl std::error::Error for SourceError {}

/// The state shared by all operations while the tree is built.
pub struct Builder<'a> {
    pub resolver: Resolver,
    pub features: Features,
    /// The host root as it was before we touched anything (`/oldroot`).
    pub host: OwnedFd,
    /// The sandbox root (`/newroot`), an empty tmpfs to start with.
    pub root: OwnedFd,
    host_cwd: Option<&'a Path>,
    pub tty: Option<&'a OsStr>,
    /// Host mount table, read once, for the pre-5.12 remount walk.
    host_mounts: Option<Vec<MountEntry>>,
}

/// Mount flags a bind remount must repeat so it never loosens what the
/// source had (and never trips a flag the kernel locked).
const KEPT_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_NOSYMFOLLOW;

/// `statvfs` `ST_*` flags to `MS_*` flags (they differ for the atime and
/// symlink bits; see statvfs(3) and mount(2)).
pub fn ms_flags_from_statvfs(st: u64) -> u64 {
    const MAP: [(u64, u64); 8] = [
        (uapi::ST_RDONLY, libc::MS_RDONLY),
        (uapi::ST_NOSUID, libc::MS_NOSUID),
        (uapi::ST_NODEV, libc::MS_NODEV),
        (uapi::ST_NOEXEC, libc::MS_NOEXEC),
        (uapi::ST_NOATIME, libc::MS_NOATIME),
        (uapi::ST_NODIRATIME, libc::MS_NODIRATIME),
        (uapi::ST_RELATIME, libc::MS_RELATIME),
        (uapi::ST_NOSYMFOLLOW, libc::MS_NOSYMFOLLOW),
    ];
    let mut ms = MAP
        .iter()
        .filter(|(st_bit, _)| st & st_bit != 0)
        .fold(0, |acc, (_, ms_bit)| acc | ms_bit);
    // Neither noatime nor relatime means strictatime; say so, or the
    // remount would silently switch it to relatime (and fail on a mount
    // whose atime flags are locked).
    if ms & (libc::MS_NOATIME | libc::MS_RELATIME) == 0 {
        ms |= libc::MS_STRICTATIME;
    }
    ms
}

/// The `/proc/self/fd/N` path of a descriptor, through the host's procfs
/// (still reachable under `/oldroot` while the tree is built). mount(2)
/// follows it to exactly the object the descriptor holds.
fn fd_path(fd: RawFd) -> OsString {
    OsString::from(format!("/oldroot/proc/self/fd/{fd}"))
}

/// Builds the whole tree and pivots into it. On return `/` is the sandbox
/// root, the host root is detached, and the cwd is `/`.
pub fn build_and_enter(input: &TreeInput) -> Result<()> {
    // Invariant: nothing we mount propagates to the host, and host mount
    // events do not propagate in. Must precede every other mount.
    sys::mount(
        None,
        OsStr::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .context("make / private")?;

    // A tmpfs base in our namespace only, holding the two pivot points.
    // After pivot_root the host root is `/oldroot` and our root is a tmpfs
    // the workload will never see.
    let base = OsStr::new(BASE);
    sys::mount(
        Some(OsStr::new("tmpfs")),
        base,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .context("mount the base tmpfs")?;
    sys::chdir(base).context("enter the base tmpfs")?;
    for dir in ["newroot", "oldroot"] {
        sys::mkdirat(libc::AT_FDCWD, OsStr::new(dir), 0o755).context("prepare the base")?;
    }
    sys::pivot_root(OsStr::new("."), OsStr::new("oldroot")).context("pivot to the base")?;
    sys::chdir(OsStr::new("/")).context("enter the base")?;

    // The sandbox root: an empty tmpfs, so only what the operations put
    // there exists.
    sys::mount(
        Some(OsStr::new("tmpfs")),
        OsStr::new("/newroot"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .context("mount the sandbox root")?;

    let open_dir = |p: &str| sys::open(OsStr::new(p), libc::O_PATH | libc::O_DIRECTORY);
    let mut builder = Builder {
        resolver: Resolver {
            use_openat2: input.features.openat2,
        },
        features: input.features,
        host: open_dir("/oldroot").context("open the host root")?,
        root: open_dir("/newroot").context("open the sandbox root")?,
        host_cwd: input.host_cwd,
        tty: input.tty,
        host_mounts: None,
    };
    for op in input.ops {
        builder.reopen_root()?;
        builder.apply(op).map_err(|e| {
            // A source error already names the option and the path.
            if e.is::<SourceError>() {
                e
            } else {
                e.context(format!("{} {}", op.option(), op.dst().display()))
            }
        })?;
    }
    drop(builder);

    // Invariant: the host root is unreachable from the sandbox. No
    // descriptor of ours points into it any more (the builder is dropped),
    // it is detached, and the base tmpfs above it goes with the pivot.
    sys::umount_detach(OsStr::new("/oldroot")).context("detach the host root")?;
    sys::chdir(OsStr::new("/newroot")).context("enter the sandbox root")?;
    sys::pivot_root(OsStr::new("."), OsStr::new(".")).context("pivot to the sandbox root")?;
    sys::umount_detach(OsStr::new(".")).context("detach the base")?;
    sys::chdir(OsStr::new("/")).context("enter /")?;
    Ok(())
}

impl Builder<'_> {
    fn apply(&mut self, op: &MountOp) -> Result<()> {
        match op {
            MountOp::Bind {
                src,
                dst,
                read_only,
            } => self.bind(op.option(), src, dst, *read_only),
            MountOp::HostProc { dst } => self.bind(op.option(), Path::new("/proc"), dst, false),
            MountOp::Tmpfs { dst } => {
                let dir = self.create_dst(dst, Kind::Dir)?;
                mount_on_dir(
                    dir.as_raw_fd(),
                    "tmpfs",
                    libc::MS_NOSUID | libc::MS_NODEV,
                    "mode=0755",
                )
            }
            MountOp::Proc { dst } => proc::mount_proc(self, dst),
            MountOp::Dev { dst } => dev::mount_dev(self, dst),
        }
    }

    /// Opens a source in the host's view, following symlinks. A missing
    /// source reads `--bind source /nope: No such file or directory`.
    pub fn open_source(&self, option: &str, src: &Path) -> Result<OwnedFd> {
        let absolute = match (src.is_absolute(), self.host_cwd) {
            (true, _) => src.to_path_buf(),
            (false, Some(cwd)) => cwd.join(src),
            (false, None) => PathBuf::from("/").join(src),
        };
        self.resolver
            .open_in_root(self.host.as_raw_fd(), &absolute)
            .map_err(|e| {
                anyhow::Error::new(SourceError {
                    what: format!("{option} source {}", src.display()),
                    cause: std::io::Error::from_raw_os_error(e.errno()),
                })
            })
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

    pub fn create_dst(&self, dst: &Path, kind: Kind) -> Result<OwnedFd> {
        self.resolver
            .create_in_root(self.root.as_raw_fd(), dst, kind)
            .context("create the destination")
    }

    /// Recursive bind of `src` on `dst` with nosuid and nodev (and
    /// read-only) on the bind *and every submount*, keeping every flag the
    /// source already had.
    fn bind(&mut self, option: &str, src: &Path, dst: &Path, read_only: bool) -> Result<()> {
        let source = self.open_source(option, src)?;
        let st = sys::fstat(source.as_raw_fd())?;
        let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = self.create_dst(dst, kind)?;
        let mut attrs = uapi::MOUNT_ATTR_NOSUID | uapi::MOUNT_ATTR_NODEV;
        if read_only {
            attrs |= uapi::MOUNT_ATTR_RDONLY;
        }
        self.bind_fd(source.as_raw_fd(), target.as_raw_fd(), true, attrs)
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
        self.legacy_bind(source, target, recursive, attrs)
    }

    /// Before Linux 5.12: mount(MS_BIND) then one MS_REMOUNT per mount in
    /// the new subtree, the submounts found in the host mount table read
    /// once (bubblewrap re-reads it for every bind, which is what makes it
    /// quadratic).
    fn legacy_bind(
        &mut self,
        source: RawFd,
        target: RawFd,
        recursive: bool,
        attrs: u64,
    ) -> Result<()> {
        let wanted = ms_from_mount_attr(attrs);
        let source_path = sys::readlinkat(libc::AT_FDCWD, &fd_path(source))?;
        let target_path = sys::readlinkat(libc::AT_FDCWD, &fd_path(target))?;
        let rec = if recursive { libc::MS_REC } else { 0 };
        sys::mount(
            Some(&fd_path(source)),
            &fd_path(target),
            None,
            libc::MS_BIND | rec,
            None,
        )?;
        let own = ms_flags_from_statvfs(sys::fstatvfs_flags(source)?);
        remount(&target_path, own | wanted)?;
        let is_dir = sys::fstat(source)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if !recursive || !is_dir {
            return Ok(());
        }
        let prefix = source_path.as_bytes().to_vec();
        for entry in self.host_mounts()?.iter() {
            let Some(rest) = entry.mount_point.as_bytes().strip_prefix(prefix.as_slice()) else {
                continue;
            };
            if !rest.starts_with(b"/") {
                continue;
            }
            let mut path = target_path.as_bytes().to_vec();
            path.extend_from_slice(rest);
            let path = OsStr::from_bytes(&path);
            match remount(path, entry.flags | wanted) {
                Ok(()) => {}
                Err(e) if tolerable(&e, entry.flags, wanted) => {
                    crate::trace!("skip submount {:?}: {e}", path);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn host_mounts(&mut self) -> Result<&Vec<MountEntry>> {
        if self.host_mounts.is_none() {
            let text = std::fs::read("/oldroot/proc/self/mountinfo")
                .context("read /proc/self/mountinfo")?;
            self.host_mounts = Some(parse_mountinfo(&text));
        }
        Ok(self.host_mounts.as_ref().expect("filled above"))
    }
}

/// A submount we could not remount is acceptable only if the workload
/// cannot reach it either (ENOENT: overmounted; EACCES: a directory on the
/// way is closed to our uid, and the workload has the same uid and no
/// capabilities) or if it already has every flag we wanted.
fn tolerable(err: &SysError, had: u64, wanted: u64) -> bool {
    let restrictive = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    matches!(err.errno(), libc::ENOENT | libc::EACCES)
        || (err.errno() == libc::EPERM && had & wanted & restrictive == wanted & restrictive)
}

fn remount(path: &OsStr, flags: u64) -> Result<(), SysError> {
    sys::mount(
        None,
        path,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | (flags & (KEPT_FLAGS | libc::MS_STRICTATIME)),
        None,
    )
}

fn ms_from_mount_attr(attrs: u64) -> u64 {
    let mut ms = 0;
    if attrs & uapi::MOUNT_ATTR_RDONLY != 0 {
        ms |= libc::MS_RDONLY;
    }
    if attrs & uapi::MOUNT_ATTR_NOSUID != 0 {
        ms |= libc::MS_NOSUID;
    }
    if attrs & uapi::MOUNT_ATTR_NODEV != 0 {
        ms |= libc::MS_NODEV;
    }
    ms
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

/// One line of /proc/self/mountinfo, reduced to what a remount needs.
#[derive(Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: OsString,
    pub flags: u64,
}

/// Parses mountinfo(5): field 5 is the mount point (octal-escaped), field 6
/// the per-mount options.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|b| *b == b' ');
            let mount_point = fields.nth(4)?;
            let options = fields.next()?;
            Some(MountEntry {
                mount_point: OsString::from(std::ffi::OsStr::from_bytes(&unescape(mount_point))),
                flags: flags_from_options(options),
            })
        })
        .collect()
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 4 <= field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (field[i + 1] - b'0') * 64 + (field[i + 2] - b'0') * 8 + (field[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

fn flags_from_options(options: &[u8]) -> u64 {
    let mut flags = options.split(|b| *b == b',').fold(0, |acc, opt| {
        acc | match opt {
            b"ro" => libc::MS_RDONLY,
            b"nosuid" => libc::MS_NOSUID,
            b"nodev" => libc::MS_NODEV,
            b"noexec" => libc::MS_NOEXEC,
            b"noatime" => libc::MS_NOATIME,
            b"nodiratime" => libc::MS_NODIRATIME,
            b"relatime" => libc::MS_RELATIME,
            b"nosymfollow" => libc::MS_NOSYMFOLLOW,
            _ => 0,
        }
    });
    if flags & (libc::MS_NOATIME | libc::MS_RELATIME) == 0 {
        flags |= libc::MS_STRICTATIME;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_flags() {
        let text =
            b"22 1 0:21 / /oldroot/proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n\
                     30 22 0:30 / /oldroot/a\\040b ro,nosymfollow - tmpfs tmpfs rw\n";
        let entries = parse_mountinfo(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].mount_point, "/oldroot/proc");
        assert_eq!(
            entries[0].flags,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME
        );
        assert_eq!(entries[1].mount_point, "/oldroot/a b");
        assert_eq!(
            entries[1].flags,
            libc::MS_RDONLY | libc::MS_NOSYMFOLLOW | libc::MS_STRICTATIME
        );
    }

    #[test]
    fn statvfs_flags_keep_noexec_and_nosymfollow() {
        let ms = ms_flags_from_statvfs(uapi::ST_NOEXEC | uapi::ST_NOSYMFOLLOW | uapi::ST_RELATIME);
        assert_eq!(
            ms,
            libc::MS_NOEXEC | libc::MS_NOSYMFOLLOW | libc::MS_RELATIME
        );
        assert_eq!(ms_flags_from_statvfs(0), libc::MS_STRICTATIME);
    }

    #[test]
    fn unreachable_or_already_restricted_submounts_are_tolerated() {
        let e = |errno| SysError::new("mount".into(), errno);
        let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        assert!(tolerable(&e(libc::EACCES), 0, ro));
        assert!(tolerable(&e(libc::EPERM), ro, ro));
        assert!(!tolerable(
            &e(libc::EPERM),
            libc::MS_NOSUID | libc::MS_NODEV,
            ro
        ));
        assert!(!tolerable(&e(libc::EINVAL), ro, ro));
    }
}
