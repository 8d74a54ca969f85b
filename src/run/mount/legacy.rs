//! Binds on kernels without `mount_setattr` (before Linux 5.12): one
//! `mount(MS_BIND)`, then one `MS_REMOUNT` per mount of the new subtree
//! that a path lookup can reach, the submounts taken from the host mount
//! table read once (bubblewrap re-reads it for every bind, which is what
//! makes it quadratic).
//!
//! Runs in PID 1 while the tree is built. Invariants:
//! * every reachable mount of the copy gets the wanted flags on top of
//!   *its own* flags, so a remount never loosens what it had (`noexec`,
//!   `nosymfollow`, atime flags; the kernel refuses to clear locked ones);
//! * a mount that no path reaches (covered by a mount stacked on it at the
//!   same place, or by a mount on one of the directories above it) is left
//!   alone: a remount by path would hit whatever covers it, with the wrong
//!   flags. The workload cannot reach it either, so it needs nothing, and
//!   it cannot uncover it: it holds no capabilities to unmount with, and in
//!   a mount namespace it makes under a nested user namespace the kernel
//!   locks covering mounts to what they cover (MNT_LOCKED, Linux 3.12), so
//!   unmounting them there fails.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;

use crate::log::trace;
use crate::sys::{self, SysError, uapi};

/// Mount flags a bind remount must repeat so it never loosens what the
/// source had (and never trips a flag the kernel locked).
const KEPT_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_NOSYMFOLLOW
    | libc::MS_STRICTATIME;

/// One bind: descriptors of the source object and the target mount point,
/// and the `MOUNT_ATTR_*` flags to add.
pub struct Bind {
    pub source: RawFd,
    pub target: RawFd,
    pub recursive: bool,
    pub attrs: u64,
}

/// The `/proc/self/fd/N` path of a descriptor, through the host's procfs
/// (still reachable under `/oldroot` while the tree is built). mount(2)
/// follows it to exactly the object the descriptor holds.
fn fd_path(fd: RawFd) -> OsString {
    OsString::from(format!("/oldroot/proc/self/fd/{fd}"))
}

/// Performs `bind`. `host_mounts` yields the reachable mounts of the host
/// table (see [`reachable`]); it is only asked for when there may be
/// submounts to remount.
pub fn bind<'m>(bind: &Bind, host_mounts: impl FnOnce() -> Result<&'m [MountEntry]>) -> Result<()> {
    let wanted = ms_from_mount_attr(bind.attrs);
    let source_path = sys::readlinkat(libc::AT_FDCWD, &fd_path(bind.source))?;
    let target_path = sys::readlinkat(libc::AT_FDCWD, &fd_path(bind.target))?;
    let rec = if bind.recursive { libc::MS_REC } else { 0 };
    sys::mount(
        Some(&fd_path(bind.source)),
        &fd_path(bind.target),
        None,
        libc::MS_BIND | rec,
        None,
    )?;
    // The top of the copy: the source descriptor holds the topmost mount
    // at the source path, so its own flags are the right ones to keep.
    let own = ms_flags_from_statvfs(sys::fstatvfs_flags(bind.source)?);
    remount(&target_path, own | wanted)?;
    let is_dir = sys::fstat(bind.source)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if !bind.recursive || !is_dir {
        return Ok(());
    }
    for (entry, rest) in submounts(host_mounts()?, source_path.as_bytes()) {
        let mut path = target_path.as_bytes().to_vec();
        path.extend_from_slice(rest);
        let path = OsStr::from_bytes(&path);
        match remount(path, entry.flags | wanted) {
            Ok(()) => {}
            Err(e) if tolerable(&e, entry.flags, wanted) => {
                trace!("skip submount {:?}: {e}", path);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Makes the mount held by `mount` read-only, keeping its other flags; not
/// its submounts.
pub fn remount_read_only(mount: RawFd) -> Result<()> {
    let own = ms_flags_from_statvfs(sys::fstatvfs_flags(mount)?);
    let path = sys::readlinkat(libc::AT_FDCWD, &fd_path(mount))?;
    remount(&path, own | libc::MS_RDONLY)?;
    Ok(())
}

/// A recursive bind of the object `fd` holds onto itself, nothing more:
/// the copy keeps each mount's flags, and no remount follows, so no path
/// is resolved again (a symlink pinned onto itself stays a symlink).
pub fn bind_onto_itself(fd: RawFd) -> Result<()> {
    let path = fd_path(fd);
    sys::mount(Some(&path), &path, None, libc::MS_BIND | libc::MS_REC, None)?;
    Ok(())
}

/// The mounts strictly below `prefix`, each with its mount point relative
/// to `prefix` (starting with `/`).
fn submounts<'e>(
    mounts: &'e [MountEntry],
    prefix: &'e [u8],
) -> impl Iterator<Item = (&'e MountEntry, &'e [u8])> {
    // `/` as the prefix: every other mount point is below it.
    let prefix = prefix.strip_suffix(b"/").unwrap_or(prefix);
    mounts.iter().filter_map(move |entry| {
        let rest = entry.mount_point.as_bytes().strip_prefix(prefix)?;
        (rest.len() > 1 && rest.starts_with(b"/")).then_some((entry, rest))
    })
}

/// A submount we could not remount is acceptable only if the workload
/// cannot reach it either (ENOENT: overmounted since the table was read;
/// EACCES: a directory on the way is closed to our uid, and the workload
/// has the same uid and no capabilities) or if it already has every flag
/// we wanted.
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
        libc::MS_REMOUNT | libc::MS_BIND | (flags & KEPT_FLAGS),
        None,
    )
}

fn ms_from_mount_attr(attrs: u64) -> u64 {
    const MAP: [(u64, u64); 4] = [
        (uapi::MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
        (uapi::MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
        (uapi::MOUNT_ATTR_NODEV, libc::MS_NODEV),
        (uapi::MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
    ];
    MAP.iter()
        .filter(|(attr, _)| attrs & attr != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

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
    let ms = MAP
        .iter()
        .filter(|(st_bit, _)| st & st_bit != 0)
        .fold(0, |acc, (_, ms_bit)| acc | ms_bit);
    with_explicit_atime(ms)
}

/// Neither noatime nor relatime means strictatime; say so, or the remount
/// would silently switch it to relatime (and fail on a mount whose atime
/// flags are locked).
fn with_explicit_atime(ms: u64) -> u64 {
    if ms & (libc::MS_NOATIME | libc::MS_RELATIME) == 0 {
        ms | libc::MS_STRICTATIME
    } else {
        ms
    }
}

/// One line of /proc/self/mountinfo, reduced to what a remount needs.
#[derive(Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    pub parent: u64,
    pub mount_point: OsString,
    pub flags: u64,
}

/// The reachable mounts of a mount table (see [`reachable`]).
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    reachable(parse_all(text))
}

/// Parses mountinfo(5): fields 1 and 2 are the mount and parent ids,
/// field 5 the mount point (octal-escaped), field 6 the per-mount options.
fn parse_all(text: &[u8]) -> Vec<MountEntry> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|b| *b == b' ');
            let number = |f: Option<&[u8]>| std::str::from_utf8(f?).ok()?.parse().ok();
            let id = number(fields.next())?;
            let parent = number(fields.next())?;
            let mount_point = fields.nth(2)?;
            let options = fields.next()?;
            Some(MountEntry {
                id,
                parent,
                mount_point: OsStr::from_bytes(&unescape(mount_point)).to_os_string(),
                flags: flags_from_options(options),
            })
        })
        .collect()
}

/// Keeps the mounts a path lookup can reach. A mount is out of reach when
/// * another mount is stacked on it at the same mount point (the stacked
///   one's parent is this mount: `unshare --mount-proc`'s /proc over the
///   host's, systemd's binfmt_misc on its autofs, runtimes' masks), or
/// * a sibling (same parent) is mounted on a directory above its mount
///   point, so the lookup enters the sibling before reaching it, or
/// * its parent is out of reach (everything below a covered mount is).
///
/// A mount whose parent is not in the table, or is itself, is a root.
fn reachable(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    let at: HashSet<(u64, &[u8])> = entries
        .iter()
        .filter(|e| e.parent != e.id)
        .map(|e| (e.parent, e.mount_point.as_bytes()))
        .collect();
    let index: std::collections::HashMap<u64, usize> =
        entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let stacked_on = |e: &MountEntry| at.contains(&(e.id, e.mount_point.as_bytes()));
    let under_sibling = |e: &MountEntry| {
        ancestors(e.mount_point.as_bytes()).any(|dir| at.contains(&(e.parent, dir)))
    };
    // Walk each parent chain (as long as the mount nesting is deep). A
    // mount stacked on its parent reaches the world through the parent's
    // mount point, so there the parent only has to be unblocked on the way,
    // not uncovered (it is covered by exactly this mount).
    let hidden = |mut i: usize| -> bool {
        let mut must_be_uncovered = true;
        for _ in 0..entries.len() {
            let e = &entries[i];
            if (must_be_uncovered && stacked_on(e)) || under_sibling(e) {
                return true;
            }
            match index.get(&e.parent) {
                Some(&p) if p != i => {
                    must_be_uncovered = entries[p].mount_point != e.mount_point;
                    i = p;
                }
                _ => return false,
            }
        }
        true // a parent cycle: not a table the kernel writes
    };
    let keep: Vec<bool> = (0..entries.len()).map(|i| !hidden(i)).collect();
    entries
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// The directories strictly above an absolute path: `/a/b/c` gives `/a/b`,
/// `/a` and `/`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts = path
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i);
    cuts.map(move |i| if i == 0 { &path[..1] } else { &path[..i] })
        .filter(move |dir| *dir != path)
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
    let flags = options.split(|b| *b == b',').fold(0, |acc, opt| {
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
    with_explicit_atime(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(entries: &[MountEntry]) -> Vec<(u64, &str)> {
        entries
            .iter()
            .map(|e| (e.id, e.mount_point.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_flags() {
        let text =
            b"22 1 0:21 / /oldroot/proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n\
                     30 22 0:30 / /oldroot/a\\040b ro,nosymfollow - tmpfs tmpfs rw\n";
        let entries = parse_all(text);
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].id, entries[0].parent), (22, 1));
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

    /// `unshare --pid --mount-proc` on a host whose /proc has submounts:
    /// the new procfs (40) is stacked on the host's (22), which keeps its
    /// binfmt_misc (23) and a runtime's mask (24) out of reach.
    #[test]
    fn mounts_covered_by_a_stacked_mount_are_out_of_reach() {
        let text = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
            22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            23 22 0:40 / /proc/sys/fs/binfmt_misc rw,relatime - binfmt_misc b rw\n\
            24 22 0:41 / /proc/kcore ro - tmpfs t ro\n\
            25 27 0:23 / /dev/shm rw - tmpfs t rw\n\
            26 25 0:27 / /dev/shm rw,noexec - tmpfs t rw\n\
            40 22 0:50 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n";
        let kept = parse_mountinfo(text);
        assert_eq!(
            points(&kept),
            [(27, "/"), (26, "/dev/shm"), (40, "/proc")],
            "only the topmost mounts and what hangs off them"
        );
        // The flags come from the topmost mount: noexec survives.
        assert!(kept[2].flags & libc::MS_NOEXEC != 0);
    }

    #[test]
    fn a_mount_under_a_sibling_mounted_above_it_is_out_of_reach() {
        // 31 at /a/b was mounted first; 32 at /a (same parent) hides it,
        // and 33 mounted later inside 32 at /a/b is what /a/b reaches.
        let text = b"1 1 0:1 / / rw - ext4 r rw\n\
            31 1 0:31 / /a/b rw - tmpfs t rw\n\
            32 1 0:32 / /a rw - tmpfs t rw\n\
            33 32 0:33 / /a/b ro - tmpfs t rw\n\
            34 1 0:34 / /ab rw - tmpfs t rw\n";
        assert_eq!(
            points(&parse_mountinfo(text)),
            [(1, "/"), (32, "/a"), (33, "/a/b"), (34, "/ab")]
        );
    }

    #[test]
    fn ancestors_of_a_path_are_its_directories() {
        let got: Vec<&[u8]> = ancestors(b"/a/b/c").collect();
        assert_eq!(got, [&b"/"[..], b"/a", b"/a/b"]);
        assert_eq!(ancestors(b"/").count(), 0);
    }

    #[test]
    fn submounts_are_strictly_below_the_prefix() {
        let entries = parse_all(
            b"1 1 0:1 / /oldroot rw - ext4 r rw\n\
              2 1 0:2 / /oldroot/dev rw - tmpfs t rw\n\
              3 2 0:3 / /oldroot/dev/pts rw - devpts d rw\n\
              4 1 0:4 / /oldroot/devices rw - tmpfs t rw\n",
        );
        let below = |prefix: &'static [u8]| -> Vec<(u64, String)> {
            submounts(&entries, prefix)
                .map(|(e, rest)| (e.id, String::from_utf8(rest.to_vec()).unwrap()))
                .collect()
        };
        assert_eq!(below(b"/oldroot/dev"), [(3, "/pts".to_string())]);
        assert_eq!(
            below(b"/oldroot"),
            [
                (2, "/dev".to_string()),
                (3, "/dev/pts".to_string()),
                (4, "/devices".to_string())
            ]
        );
        assert_eq!(below(b"/").len(), 4);
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
        let e = |errno| SysError::new(sys::Call::other("mount", ""), errno);
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
