//! The view as Landlock rules. Landlock only grants: a rule gives rights
//! beneath a path, and nothing can take them back below it. So where a
//! path needs less than its parent grants (a mask, a deny path, a tmpfs, a
//! read-only bind inside a writable one), the parent is granted only its
//! listing, and each of its other entries gets the parent's rights by a
//! rule of its own: snapshot subtraction, from the entries present at
//! setup. An entry is opened without following a symlink, so a link to
//! elsewhere is never granted what its directory has.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{ABI, Access as _, AccessFs, BitFlags};

use super::view::{Access, Node, View};
use crate::sys;

/// The device nodes `--dev` leaves readable and writable, and the
/// directory of terminals.
const DEVICES: [&str; 7] = ["null", "zero", "full", "random", "urandom", "tty", "ptmx"];

/// One rule: rights beneath an open file (a directory, or a file). The
/// path is kept for traces and tests.
#[allow(dead_code)]
pub struct Rule {
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub access: BitFlags<AccessFs>,
}

/// What the rules grant each access, for a kernel of `abi`.
pub fn rights(access: Access, abi: ABI) -> BitFlags<AccessFs> {
    // A socket the view shows can be connected to, as in a namespace
    // (ABI 9's right; below it connects are not filesystem accesses).
    let read = (AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute | AccessFs::ResolveUnix)
        & AccessFs::from_all(abi);
    match access {
        Access::Nothing | Access::Devices => BitFlags::empty(),
        Access::Read | Access::ReadOnly => read,
        Access::Write => AccessFs::from_all(abi),
    }
}

/// The rights that create, remove or rename entries: what the parents
/// of a deny path lose.
fn making(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_all(abi)
        & (AccessFs::MakeChar
            | AccessFs::MakeDir
            | AccessFs::MakeReg
            | AccessFs::MakeSock
            | AccessFs::MakeFifo
            | AccessFs::MakeBlock
            | AccessFs::MakeSym
            | AccessFs::RemoveDir
            | AccessFs::RemoveFile
            | AccessFs::Refer)
}

/// Whether something beneath `node` (whose access is `here`) must have
/// less than `here` grants: then `node` cannot be granted `here`.
fn restricted_below(node: &Node, here: Access, abi: ABI) -> bool {
    let granted = rights(here, abi);
    node.children.values().any(|child| {
        let theirs = child.access.unwrap_or(here);
        !rights(theirs, abi).contains(granted)
            || (child.deny && granted.intersects(making(abi)))
            || theirs == Access::Devices
            || restricted_below(child, theirs, abi)
    })
}

/// Whether a directory beneath `node` must not be listed (out of reach:
/// a tmpfs, a masked directory, a `--dev`): then `node` cannot be granted
/// ReadDir, which would reach it. This denies more (the listing of the
/// ancestors), as SPEC §2.8 allows.
fn hides_a_directory(path: &Path, node: &Node, here: Access) -> bool {
    node.children.iter().any(|(name, child)| {
        let theirs = child.access.unwrap_or(here);
        let child_path = path.join(name);
        let unlistable = matches!(theirs, Access::Nothing | Access::Devices)
            && std::fs::metadata(&child_path).is_ok_and(|m| m.is_dir());
        unlistable || hides_a_directory(&child_path, child, theirs)
    })
}

/// Builds the rules of `view`. A path the view names that does not exist
/// gets no rule (nothing can be created there: its parent is either out
/// of reach or subtracted).
pub fn rules_of(view: &View, abi: ABI) -> Rules {
    let mut out = Rules::default();
    let here = view.root.access.unwrap_or(Access::Nothing);
    emit(Path::new("/"), here, &view.root, abi, &mut out);
    out
}

/// The rules, and the directories whose listing they deny (to hide a
/// directory below: denying more, which is reported).
#[derive(Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub unlisted: Vec<PathBuf>,
}

/// Opens `path` for a rule: O_PATH, never following a final symlink.
fn open_for_rule(path: &Path) -> Option<(OwnedFd, bool)> {
    let fd = sys::open(
        path.as_os_str(),
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
    )
    .ok()?;
    let st = sys::fstat(fd.as_raw_fd()).ok()?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    Some((fd, is_dir))
}

fn push(out: &mut Rules, path: &Path, access: BitFlags<AccessFs>) {
    if access.is_empty() {
        return;
    }
    let Some((fd, is_dir)) = open_for_rule(path) else {
        return;
    };
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(ABI::V9)
    };
    if !access.is_empty() {
        out.rules.push(Rule {
            path: path.to_path_buf(),
            fd,
            access,
        });
    }
}

fn emit(path: &Path, inherited: Access, node: &Node, abi: ABI, out: &mut Rules) {
    let here = node.access.unwrap_or(inherited);
    if here == Access::Devices {
        return devices(path, out);
    }
    let granted = rights(here, abi);
    if !restricted_below(node, here, abi) {
        push(out, path, granted);
        for (name, child) in &node.children {
            emit(&path.join(name), here, child, abi, out);
        }
        return;
    }
    // Subtraction: the directory's own listing (unless a directory below
    // must not be listed: ReadDir reaches everything beneath), then each
    // entry.
    if !hides_a_directory(path, node, here) {
        push(out, path, granted & AccessFs::ReadDir);
    } else if granted.contains(AccessFs::ReadDir) {
        out.unlisted.push(path.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let entry_path = path.join(&name);
        match node.children.get(name.as_os_str()) {
            Some(child) => emit(&entry_path, here, child, abi, out),
            None => push(out, &entry_path, granted),
        }
    }
}

/// `--dev D`: the usual devices read and write and the terminals beneath
/// D/pts; nothing else under D, not even its listing (the host's device
/// names).
fn devices(dir: &Path, out: &mut Rules) {
    let rw = AccessFs::ReadFile | AccessFs::WriteFile;
    for name in DEVICES {
        push(out, &dir.join(OsStr::new(name)), rw);
    }
    push(out, &dir.join("pts"), rw | AccessFs::ReadDir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FrontEnd, MountOp, Origin, Step};

    fn steps(ops: Vec<MountOp>) -> Vec<Step> {
        ops.into_iter()
            .enumerate()
            .map(|(index, op)| Step {
                op,
                origin: Origin {
                    front_end: FrontEnd::Run,
                    option: "--opt",
                    index,
                },
            })
            .collect()
    }

    fn bind(p: &Path, read_only: bool) -> MountOp {
        MountOp::Bind {
            src: p.to_path_buf(),
            dst: p.to_path_buf(),
            read_only,
            if_exists: false,
        }
    }

    /// A writable project with a mask, a deny-write directory, a symlink
    /// out and a missing deny path: the project directory keeps only its
    /// listing, every other entry its full rights, the link nothing it
    /// points at.
    #[test]
    fn deny_paths_in_a_writable_bind_are_subtracted() {
        let dir = std::env::temp_dir().join(format!("srtl-rules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("hooks")).unwrap();
        std::fs::write(dir.join(".env"), "secret").unwrap();
        std::fs::write(dir.join("main.rs"), "").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("out")).unwrap();
        let plan = steps(vec![
            bind(&dir, false),
            MountOp::Deny {
                path: dir.join(".env"),
                mask: true,
            },
            MountOp::Deny {
                path: dir.join("hooks"),
                mask: false,
            },
            MountOp::Deny {
                path: dir.join("missing"),
                mask: true,
            },
        ]);
        let view = View::of(&plan).unwrap();
        let abi = ABI::V5;
        let rules = rules_of(&view, abi).rules;
        let of = |p: &Path| rules.iter().find(|r| r.path == p).map(|r| r.access);
        let read = AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute;
        assert_eq!(of(&dir), Some(BitFlags::from(AccessFs::ReadDir)));
        assert_eq!(of(&dir.join("src")), Some(rights(Access::Write, abi)));
        assert_eq!(
            of(&dir.join("main.rs")),
            Some(rights(Access::Write, abi) & AccessFs::from_file(abi))
        );
        assert_eq!(of(&dir.join(".env")), None);
        assert_eq!(of(&dir.join("hooks")), Some(read));
        assert_eq!(of(&dir.join("missing")), None);
        // The link's rule, if any, is on the link itself: never /etc.
        assert!(rules.iter().all(|r| r.path != Path::new("/etc")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writable_bind_inside_a_read_only_one_needs_no_subtraction() {
        let plan = steps(vec![
            bind(Path::new("/"), true),
            bind(&std::env::temp_dir(), false),
        ]);
        let view = View::of(&plan).unwrap();
        let rules = rules_of(&view, ABI::V5).rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].path, Path::new("/"));
        assert_eq!(rules[1].path, std::env::temp_dir());
    }
}

/// Restricts the calling thread to `rules`: every filesystem right of
/// `abi` is handled, so what no rule grants is refused; with `no_tcp`,
/// TCP bind and connect are handled with no rule granting them (the
/// workload's own network calls all fail). A hard requirement: anything
/// less than fully enforced is an error, never a best effort.
pub fn restrict_to(rules: &[Rule], abi: ABI, scoped: bool, no_tcp: bool) -> anyhow::Result<()> {
    use landlock::{
        AccessNet, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetError, RulesetStatus, Scope,
    };
    let handled = AccessFs::from_all(abi);
    let rules = rules
        .iter()
        .map(|r| Ok::<_, RulesetError>(PathBeneath::new(&r.fd, r.access)));
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)?;
    if scoped {
        // Signals and abstract unix sockets stay inside the sandbox.
        ruleset = ruleset.scope(Scope::Signal | Scope::AbstractUnixSocket)?;
    }
    if no_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let status = ruleset.create()?.add_rules(rules)?.restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        anyhow::bail!(
            "Landlock enforces the ruleset only partly ({:?})",
            status.ruleset
        );
    }
    Ok(())
}

#[cfg(test)]
mod enforced {
    //! The rules under a real Landlock, in a child (a ruleset cannot be
    //! undone): what the view allows works, what it denies fails.
    use super::*;
    use crate::plan::{FrontEnd, MountOp, Origin, Step};
    use crate::sys::Fork;

    #[test]
    fn the_view_is_what_the_workload_gets() {
        let Some(abi) = crate::probe::landlock_abi() else {
            eprintln!("skipped: no Landlock here");
            return;
        };
        let abi = ABI::from(abi as i32);
        let dir = std::env::temp_dir().join(format!("srtl-enforced-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join(".env"), "secret").unwrap();
        std::fs::write(dir.join("src/a"), "a").unwrap();
        let op = |op| Step {
            op,
            origin: Origin {
                front_end: FrontEnd::Run,
                option: "--opt",
                index: 0,
            },
        };
        let plan = [
            op(MountOp::Bind {
                src: "/".into(),
                dst: "/".into(),
                read_only: true,
                if_exists: false,
            }),
            op(MountOp::Bind {
                src: dir.clone(),
                dst: dir.clone(),
                read_only: false,
                if_exists: false,
            }),
            op(MountOp::Deny {
                path: dir.join(".env"),
                mask: true,
            }),
            op(MountOp::Deny {
                path: dir.join(".missing"),
                mask: true,
            }),
        ];
        let rules = rules_of(&View::of(&plan).unwrap(), abi).rules;
        let (status_r, status_w) = sys::pipe_cloexec().unwrap();
        match sys::fork().unwrap() {
            Fork::Child => {
                let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "NNP");
                let ok = restrict_to(&rules, abi, false, false).is_ok();
                let checks = [
                    ok,
                    std::fs::read("/etc/passwd").is_ok(),
                    std::fs::write("/etc/srtl-nope", "x").is_err(),
                    std::fs::read(dir.join(".env")).is_err(),
                    std::fs::write(dir.join(".missing"), "x").is_err(),
                    std::fs::write(dir.join("src/a"), "b").is_ok(),
                    std::fs::write(dir.join("src/new"), "b").is_ok(),
                    std::fs::write(dir.join("new"), "b").is_err(),
                    std::fs::read_dir(&dir).is_ok(),
                ];
                let bytes: Vec<u8> = checks.iter().map(|c| u8::from(*c)).collect();
                let _ = sys::write_all(status_w.as_raw_fd(), &bytes);
                sys::exit_now(0)
            }
            Fork::Parent(pid) => {
                drop(status_w);
                let mut got = [0u8; 9];
                sys::read(status_r.as_raw_fd(), &mut got).unwrap();
                sys::wait_pid(pid).unwrap();
                let _ = std::fs::remove_dir_all(&dir);
                assert_eq!(
                    got, [1; 9],
                    "restricted, /etc readable, not writable, .env unreadable, .missing not creatable, src writable, the project's top sealed, listable"
                );
            }
        }
    }
}
