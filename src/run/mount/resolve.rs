//! Path resolution confined to a root directory, for mount sources (the
//! host root) and destinations (the sandbox root).
//!
//! Runs in PID 1 while it builds the mount tree, with CAP_SYS_ADMIN in the
//! sandbox's user namespace. Invariant: whatever symlinks a path contains
//! (`W/l -> ../../../oldroot/etc`, absolute links, `..` runs), the result
//! and every directory or file created on the way lie inside the given root,
//! because `..` stops at the root and absolute links restart at it. Every
//! step works on descriptors, never on a path string that could be swapped
//! between the check and the use.
//!
//! With `openat2` (Linux 5.6) the kernel does this (`RESOLVE_IN_ROOT`);
//! before it, a component-by-component walk does the same.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::plan::relative_components;
use crate::sys::{self, Call, SysError, SysResult, uapi};

/// Symlinks followed in one resolution before giving up, as the kernel's
/// own limit (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// What to create for a missing last component.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// The permissions of what creation makes: the missing parents and the
/// last component. (The caller runs with umask 0 while it builds.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    pub parents: u32,
    pub node: u32,
}

impl Modes {
    /// Mount points, as bubblewrap makes them: directories 0755, files
    /// 0444 (a bind covers them at once; one left over on the host when a
    /// destination lies in a writable bind grants nothing).
    pub fn mount_point(kind: Kind) -> Modes {
        Modes {
            parents: 0o755,
            node: if kind == Kind::Dir { 0o755 } else { 0o444 },
        }
    }

    /// `--perms MODE` for a created node: its parents lose the group and
    /// other bits the node itself does not grant (as bubblewrap does), so a
    /// private file does not sit in a readable new directory.
    pub fn with_perms(perms: u32) -> Modes {
        let mut parents = 0o755;
        if perms & 0o070 == 0 {
            parents &= !0o050;
        }
        if perms & 0o007 == 0 {
            parents &= !0o005;
        }
        Modes {
            parents,
            node: perms,
        }
    }
}

/// Resolves paths inside a root with whichever interface the kernel has.
#[derive(Clone, Copy)]
pub struct Resolver {
    pub use_openat2: bool,
}

fn join(components: &[&OsStr]) -> OsString {
    if components.is_empty() {
        return OsString::from(".");
    }
    let mut out = Vec::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    OsString::from_vec(out)
}

impl Resolver {
    /// Opens (O_PATH) the object `path` names inside `root`, following
    /// symlinks, the last component included.
    pub fn open_in_root(&self, root: RawFd, path: &Path) -> SysResult<OwnedFd> {
        self.open_components(root, &relative_components(path))
    }

    /// Opens (O_PATH) a mount source: `path` inside `root` (the host's
    /// root) as [`Resolver::open_in_root`] does, and also through procfs's
    /// magic links (`/proc/self/ns/user`, `/proc/self/fd/N`,
    /// `/proc/self/exe`), which name an object, not a path: the kernel
    /// follows them, as it would for the caller, from the process that
    /// builds the tree, so `/proc/self` is the sandbox's PID 1 (bubblewrap's
    /// meaning). A symlink anywhere else is still expanded inside `root`.
    /// Destinations never come here.
    ///
    /// Returns the object and whether a magic link led to it: then it may
    /// lie on a mount of another namespace (the caller's descriptors and
    /// executable were opened there), which the kernel will not bind.
    pub fn open_source_in_root(&self, root: RawFd, path: &Path) -> SysResult<(OwnedFd, bool)> {
        let comps = relative_components(path);
        match self.open_components(root, &comps) {
            // openat2 refuses magic links in a scoped lookup (ELOOP with
            // RESOLVE_NO_MAGICLINKS, EXDEV without); the walk expands them
            // as text and finds nothing (ENOENT).
            Err(e) if matches!(e.errno(), libc::ELOOP | libc::EXDEV | libc::ENOENT) => {
                let mut magic = false;
                walk(root, &comps, Links::MagicInProc(&mut magic)).map(|fd| (fd, magic))
            }
            other => other.map(|fd| (fd, false)),
        }
    }

    fn open_components(&self, root: RawFd, comps: &[&OsStr]) -> SysResult<OwnedFd> {
        if self.use_openat2 {
            sys::openat2(
                root,
                &join(comps),
                libc::O_PATH,
                uapi::RESOLVE_IN_ROOT | uapi::RESOLVE_NO_MAGICLINKS,
            )
        } else {
            walk(root, comps, Links::AsText)
        }
    }

    /// Opens `path` inside `root`, creating what is missing: parents as
    /// directories and the last component as `kind`, with `modes`. What
    /// exists is opened as it is (its mode untouched). A symlink met on the
    /// way is followed inside the root; a dangling one is an error rather
    /// than a reason to create its target somewhere.
    pub fn create_in_root(
        &self,
        root: RawFd,
        path: &Path,
        kind: Kind,
        modes: Modes,
    ) -> SysResult<OwnedFd> {
        let comps = relative_components(path);
        match self.open_components(root, &comps) {
            Err(e) if e.errno() == libc::ENOENT => {}
            other => return other,
        }
        for i in 0..comps.len() {
            let here = &comps[..=i];
            match self.open_components(root, here) {
                Ok(fd) if i + 1 == comps.len() => return Ok(fd),
                Ok(_) => continue,
                Err(e) if e.errno() == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
            let parent = self.open_components(root, &comps[..i])?;
            let name = comps[i];
            let last = i + 1 == comps.len();
            let created = if last && kind == Kind::File {
                sys::openat(
                    parent.as_raw_fd(),
                    name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    modes.node,
                )
                .map(drop)
            } else if last {
                sys::mkdirat(parent.as_raw_fd(), name, modes.node)
            } else {
                sys::mkdirat(parent.as_raw_fd(), name, modes.parents)
            };
            match created {
                Err(e) if e.errno() != libc::EEXIST => return Err(e),
                _ => {}
            }
            match self.open_components(root, here) {
                Ok(fd) if last => return Ok(fd),
                Ok(_) => {}
                Err(e) if e.errno() == libc::ENOENT => {
                    return Err(SysError::new(
                        Call::Own(format!(
                            "{:?} is a dangling symlink inside the sandbox",
                            join(here)
                        )),
                        libc::ENOENT,
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        // An empty path (or only `.`/`..`) names the root itself.
        self.open_components(root, &[])
    }
}

/// A component-by-component walk inside a root: the components still to
/// go and the directories entered, which `..` pops but never below the
/// root.
struct Walk {
    root: RawFd,
    pending: VecDeque<OsString>,
    /// Every directory entered, in the order entered (kept after `..`
    /// leaves it: a deny path's probe pins all of them).
    entered: Vec<OwnedFd>,
    /// The directories the walk is in now, as indices into `entered`.
    stack: Vec<usize>,
}

impl Walk {
    fn new(root: RawFd, comps: &[&OsStr]) -> Walk {
        Walk {
            root,
            pending: comps.iter().map(|c| c.to_os_string()).collect(),
            entered: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// The directory the walk is in.
    fn dir(&self) -> RawFd {
        self.stack
            .last()
            .map_or(self.root, |i| self.entered[*i].as_raw_fd())
    }

    /// The next component to open (`.` skipped, `..` applied).
    fn next_component(&mut self) -> Option<OsString> {
        while let Some(name) = self.pending.pop_front() {
            match name.as_bytes() {
                b"" | b"." => {}
                b".." => {
                    self.stack.pop();
                }
                _ => return Some(name),
            }
        }
        None
    }

    fn is_done(&self) -> bool {
        self.pending.iter().all(|c| c.is_empty() || c == ".")
    }

    fn enter(&mut self, dir: OwnedFd) {
        self.stack.push(self.entered.len());
        self.entered.push(dir);
    }

    /// Replaces the symlink `link` (named `name`) by its target's
    /// components: an absolute target restarts at the root. `links`
    /// counts the symlinks followed so far, this one included.
    fn expand_symlink(&mut self, link: &OwnedFd, name: &OsStr, links: usize) -> SysResult<()> {
        if links > MAX_SYMLINKS {
            return Err(SysError::new(
                Call::Own(format!("resolve {name:?}")),
                libc::ELOOP,
            ));
        }
        let target = sys::readlinkat(link.as_raw_fd(), OsStr::new(""))?;
        if target.as_bytes().starts_with(b"/") {
            self.stack.clear();
        }
        for part in relative_components(Path::new(&target)).into_iter().rev() {
            self.pending.push_front(part.to_os_string());
        }
        Ok(())
    }

    /// A descriptor of the directory the walk is in, of its own.
    fn dup_dir(&self) -> SysResult<OwnedFd> {
        sys::openat(
            self.dir(),
            OsStr::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
    }
}

fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// How a walk treats the symlinks it meets.
enum Links<'a> {
    /// Every symlink's target is read and walked inside the root.
    AsText,
    /// Likewise, except on procfs, where the kernel follows the link
    /// itself: its magic links (`ns/*`, `fd/*`, `exe`) name objects, and
    /// its other links (`self`, `mounts`) are relative. Set to true when
    /// one was followed.
    MagicInProc(&'a mut bool),
}

/// The pre-5.6 walk: one `openat(O_PATH|O_NOFOLLOW)` per component, with
/// symlinks expanded by hand and `..` popping a stack that never goes
/// below `root`.
fn walk(root: RawFd, comps: &[&OsStr], mut links_mode: Links) -> SysResult<OwnedFd> {
    let mut walk = Walk::new(root, comps);
    let mut links = 0;
    while let Some(name) = walk.next_component() {
        let mut fd = sys::openat(walk.dir(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let mut st = sys::fstat(fd.as_raw_fd())?;
        if is_symlink(&st) {
            links += 1;
            if let Links::MagicInProc(followed) = &mut links_mode
                && sys::fstatfs_type(walk.dir())? == uapi::PROC_SUPER_MAGIC
            {
                if links > MAX_SYMLINKS {
                    return Err(SysError::new(
                        Call::Own(format!("resolve {name:?}")),
                        libc::ELOOP,
                    ));
                }
                fd = sys::openat(walk.dir(), &name, libc::O_PATH, 0)?;
                st = sys::fstat(fd.as_raw_fd())?;
                **followed = true;
            } else {
                walk.expand_symlink(&fd, &name, links)?;
                continue;
            }
        }
        if walk.is_done() {
            return Ok(fd);
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(SysError::new(
                Call::Own(format!("resolve {name:?}")),
                libc::ENOTDIR,
            ));
        }
        walk.enter(fd);
    }
    walk.dup_dir()
}

/// Where a deny path stands inside a root (see [`probe_in_root`]).
pub enum ProbeEnd {
    /// It exists: the object, symlinks followed.
    Exists(OwnedFd),
    /// Its first missing component, `name` in directory `parent`; `last`
    /// when that component is the path's own last one (after symlinks).
    Missing {
        parent: OwnedFd,
        name: OsString,
        last: bool,
    },
    /// A component is not a directory (a file where a directory would
    /// have to be): nothing can be created there while that object stays.
    /// It is held here, so it can be pinned.
    Impossible(OwnedFd),
}

/// A deny path resolved inside a root, with what a workload could swap.
pub struct Probe {
    /// Every symlink met on the way, as (its directory, its name).
    pub symlinks: Vec<(OwnedFd, OsString)>,
    /// Every directory the walk entered, in order (the root excluded):
    /// renaming any of them could re-create the path elsewhere.
    pub dirs: Vec<OwnedFd>,
    pub end: ProbeEnd,
}

/// Resolves `path` inside `root` one component at a time (the walk of
/// [`walk`], whatever the kernel, so that every symlink and the
/// first missing component are seen), stopping at the first component
/// that does not exist. A dangling symlink is followed to where its target
/// would be created, since creating through it would create there.
pub fn probe_in_root(root: RawFd, path: &Path) -> SysResult<Probe> {
    let mut walk = Walk::new(root, &relative_components(path));
    let mut symlinks = Vec::new();
    let end = loop {
        let Some(name) = walk.next_component() else {
            break ProbeEnd::Exists(walk.dup_dir()?);
        };
        let fd = match sys::openat(walk.dir(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.errno() == libc::ENOENT => {
                break ProbeEnd::Missing {
                    parent: walk.dup_dir()?,
                    last: walk.is_done(),
                    name,
                };
            }
            Err(e) => return Err(e),
        };
        let st = sys::fstat(fd.as_raw_fd())?;
        if is_symlink(&st) {
            // Its directory, before the walk moves on to the target.
            let dir = walk.dup_dir()?;
            walk.expand_symlink(&fd, &name, symlinks.len() + 1)?;
            symlinks.push((dir, name));
            continue;
        }
        if walk.is_done() {
            break ProbeEnd::Exists(fd);
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            break ProbeEnd::Impossible(fd);
        }
        walk.enter(fd);
    };
    Ok(Probe {
        symlinks,
        dirs: walk.entered,
        end,
    })
}

#[cfg(test)]
mod tests {
    //! Both resolvers on a real directory tree: whatever a path's symlinks
    //! and `..` say, the result stays inside the root.
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    struct Tree(PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// root/{etc/passwd, a/b/, abs -> /etc, up -> ../../../etc,
    /// dangling -> /nowhere/at/all, loop -> loop}
    fn tree(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("srtl-resolve-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("etc/passwd"), "sandbox").unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../etc", root.join("up")).unwrap();
        symlink("/nowhere/at/all", root.join("dangling")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        Tree(root)
    }

    fn resolvers() -> Vec<Resolver> {
        let mut all = vec![Resolver { use_openat2: false }];
        if sys::syscall_exists(libc::SYS_openat2) {
            all.push(Resolver { use_openat2: true });
        }
        all
    }

    fn path_of(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn symlinks_and_dotdot_resolve_inside_the_root() {
        let t = tree("open");
        let root = sys::open(t.0.as_os_str(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        for r in resolvers() {
            let open = |p: &str| r.open_in_root(root.as_raw_fd(), Path::new(p));
            let passwd = t.0.join("etc/passwd");
            for p in [
                "/etc/passwd",
                "etc/passwd",
                "/abs/passwd",
                "/up/passwd",
                "/../../../etc/passwd",
                "/a/b/../../etc/./passwd",
                "/a/../up/../abs/passwd",
            ] {
                let fd = open(p).unwrap_or_else(|e| panic!("{p} ({}): {e}", r.use_openat2));
                assert_eq!(path_of(&fd), passwd, "{p} ({})", r.use_openat2);
            }
            assert_eq!(path_of(&open("/..").unwrap()), t.0);
            assert_eq!(open("/dangling").unwrap_err().errno(), libc::ENOENT);
            assert_eq!(open("/loop").unwrap_err().errno(), libc::ELOOP);
        }
    }

    #[test]
    fn probe_finds_the_first_missing_component_and_the_symlinks() {
        let t = tree("probe");
        std::fs::write(t.0.join("a/file"), "x").unwrap();
        let root = sys::open(t.0.as_os_str(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        let probe = |p: &str| probe_in_root(root.as_raw_fd(), Path::new(p)).unwrap();
        match probe("/abs/passwd").end {
            ProbeEnd::Exists(fd) => assert_eq!(path_of(&fd), t.0.join("etc/passwd")),
            _ => panic!("/abs/passwd exists"),
        }
        assert_eq!(probe("/abs/passwd").symlinks.len(), 1);
        match probe("/a/new/deeper").end {
            ProbeEnd::Missing { parent, name, last } => {
                assert_eq!(path_of(&parent), t.0.join("a"));
                assert_eq!(name, "new");
                assert!(!last);
            }
            _ => panic!("/a/new is missing"),
        }
        match probe("/a/b/new").end {
            ProbeEnd::Missing { name, last, .. } => assert!(name == "new" && last),
            _ => panic!("/a/b/new is missing"),
        }
        // A dangling link leads to where its target would be created.
        let dangling = probe("/dangling/x");
        match dangling.end {
            ProbeEnd::Missing { parent, name, .. } => {
                assert_eq!(path_of(&parent), t.0);
                assert_eq!(name, "nowhere");
            }
            _ => panic!("the dangling link's target is missing"),
        }
        assert_eq!(dangling.symlinks.len(), 1);
        match probe("/a/file/x").end {
            ProbeEnd::Impossible(fd) => assert_eq!(path_of(&fd), t.0.join("a/file")),
            _ => panic!("/a/file is a file"),
        }
        let through = probe("/etc/passwd/x/y");
        assert!(matches!(through.end, ProbeEnd::Impossible(_)));
        let entered: Vec<PathBuf> = through.dirs.iter().map(path_of).collect();
        assert_eq!(entered, [t.0.join("etc")]);
        // Directories left by `..` are still listed: renaming them would
        // change where the path leads.
        let back = probe("/a/b/../../etc/passwd");
        let entered: Vec<PathBuf> = back.dirs.iter().map(path_of).collect();
        assert_eq!(entered, [t.0.join("a"), t.0.join("a/b"), t.0.join("etc")]);
    }

    #[test]
    fn creation_follows_links_inside_the_root_and_refuses_dangling_ones() {
        for r in resolvers() {
            let t = tree(&format!("create-{}", r.use_openat2));
            let root = sys::open(t.0.as_os_str(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
            let create = |p: &str, kind| {
                r.create_in_root(
                    root.as_raw_fd(),
                    Path::new(p),
                    kind,
                    Modes::mount_point(kind),
                )
            };
            let dir = create("/new/deep/dir", Kind::Dir).unwrap();
            assert_eq!(path_of(&dir), t.0.join("new/deep/dir"));
            assert!(t.0.join("new/deep/dir").is_dir());
            // Through an absolute link: created in the root's etc.
            let file = create("/abs/created", Kind::File).unwrap();
            assert_eq!(path_of(&file), t.0.join("etc/created"));
            assert!(t.0.join("etc/created").is_file());
            // An existing object is opened as it is, not replaced.
            let existing = create("/up/passwd", Kind::Dir).unwrap();
            assert_eq!(path_of(&existing), t.0.join("etc/passwd"));
            // A dangling link is an error, never a reason to create its
            // target (here or on the host).
            let err = create("/dangling/x", Kind::Dir).unwrap_err();
            assert_eq!(err.errno(), libc::ENOENT, "{err}");
            assert!(!Path::new("/nowhere").exists());
            assert!(!t.0.join("nowhere").exists());
        }
    }
}
