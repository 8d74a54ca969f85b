//! The plan's mount steps as the view Landlock mode must enforce on the
//! host's own tree (SPEC §2.8): for each path the steps name, what the
//! workload may do beneath it. Pure: built from the plan alone, unit
//! tested without a sandbox.
//!
//! Steps apply in argv order, as in namespace mode: a later step at a
//! path covers whatever earlier steps put beneath it. Only identity binds
//! can be expressed (Landlock restricts the host's tree, it cannot move
//! it); any step that would need a mount is refused, never approximated.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::plan::{MountOp, Origin, Step};

/// What the workload may do beneath a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Out of reach: not bound, a tmpfs, a masked path.
    Nothing,
    /// Read and execute (`--ro-bind P P`, `--proc`).
    Read,
    /// Read, write, create, remove, rename and execute (`--bind P P`).
    Write,
    /// Readable as it is, never written, created or replaced
    /// (`--deny-write`).
    ReadOnly,
    /// `--dev`: only the usual device nodes, read and write.
    Devices,
}

/// One node of the view: the access set at this path (None: inherited
/// from the nearest ancestor that sets one), and the paths below it that
/// later steps set. `deny` marks a deny path (its parents inside a
/// writable area lose create, remove and rename).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    pub access: Option<Access>,
    pub deny: bool,
    pub children: BTreeMap<OsString, Node>,
}

/// Why a step cannot be expressed in Landlock mode (exit 125, naming the
/// option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpressible {
    pub origin: Origin,
    pub why: &'static str,
}

/// The view, with the directories a tmpfs stood for (`TMPDIR` candidates).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct View {
    pub root: Node,
    pub tmpfs: Vec<PathBuf>,
}

/// The path's normal components (`.` and empty ones dropped; the plan has
/// validated destinations as absolute, and `..` is refused below).
fn names(path: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

impl Node {
    fn at(&mut self, names: &[OsString]) -> &mut Node {
        names.iter().fold(self, |node, name| {
            node.children.entry(name.clone()).or_default()
        })
    }
}

impl View {
    /// Only `dir`, writable: the private `TMPDIR`'s own rule.
    pub fn writable(dir: &Path) -> View {
        let mut view = View::default();
        if let Some(at) = names(dir) {
            view.root.at(&at).access = Some(Access::Write);
        }
        view
    }

    /// Whether a deny path lies inside a writable area, whose directories
    /// down to it then cannot get new entries (a reported gap).
    pub fn seals_deny_parents(&self) -> bool {
        fn walk(node: &Node, above: Access) -> bool {
            let here = node.access.unwrap_or(above);
            node.children
                .values()
                .any(|c| (c.deny && here == Access::Write) || walk(c, here))
        }
        walk(&self.root, self.root.access.unwrap_or(Access::Nothing))
    }

    /// The view of `steps`, or the first step it cannot express.
    pub fn of(steps: &[Step]) -> Result<View, Unexpressible> {
        let mut view = View::default();
        for step in steps {
            view.apply(step)?;
        }
        Ok(view)
    }

    fn apply(&mut self, step: &Step) -> Result<(), Unexpressible> {
        let refuse = |why| {
            Err(Unexpressible {
                origin: step.origin,
                why,
            })
        };
        let Some(at) = names(step.op.dst()) else {
            return refuse("a destination with `..` cannot be checked against the host's tree");
        };
        let access = match &step.op {
            MountOp::Bind {
                src,
                dst,
                read_only,
                ..
            } => {
                if names(src) != Some(at.clone()) || src != dst {
                    return refuse(
                        "a bind whose source and destination differ needs a mount namespace",
                    );
                }
                if *read_only {
                    Access::Read
                } else {
                    Access::Write
                }
            }
            MountOp::Tmpfs { dst, .. } => {
                self.tmpfs.push(dst.clone());
                Access::Nothing
            }
            MountOp::Dev { .. } => Access::Devices,
            MountOp::Proc { .. } | MountOp::HostProc { .. } => Access::Read,
            MountOp::Deny { mask, .. } => {
                let node = self.root.at(&at);
                node.access = Some(if *mask {
                    Access::Nothing
                } else {
                    Access::ReadOnly
                });
                node.deny = true;
                node.children.clear();
                return Ok(());
            }
            MountOp::DevBind { .. } => {
                return refuse("device nodes cannot be made to work by Landlock");
            }
            MountOp::Dir { .. } | MountOp::Symlink { .. } | MountOp::File { .. } => {
                return refuse("it would create a file on the host");
            }
            MountOp::Overlay { .. }
            | MountOp::RemountRo { .. }
            | MountOp::Mqueue { .. }
            | MountOp::Chmod { .. }
            | MountOp::BindFd { .. }
            | MountOp::BindData { .. } => return refuse("it needs a mount namespace"),
        };
        let node = self.root.at(&at);
        node.access = Some(access);
        node.deny = false;
        node.children.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FrontEnd;

    fn step(op: MountOp, index: usize) -> Step {
        Step {
            op,
            origin: Origin {
                front_end: FrontEnd::Run,
                option: "--opt",
                index,
            },
        }
    }

    /// The steps, each with its position as its origin.
    fn numbered(ops: impl IntoIterator<Item = MountOp>) -> Vec<Step> {
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| step(op, i))
            .collect()
    }

    fn bind(p: &str, read_only: bool) -> MountOp {
        MountOp::Bind {
            src: p.into(),
            dst: p.into(),
            read_only,
            if_exists: false,
        }
    }

    fn node<'a>(view: &'a View, path: &str) -> &'a Node {
        names(Path::new(path))
            .unwrap()
            .iter()
            .fold(&view.root, |n, name| &n.children[name])
    }

    #[test]
    fn the_sdks_shape_becomes_nested_accesses() {
        let steps = [
            bind("/", true),
            bind("/proj", false),
            MountOp::Deny {
                path: "/proj/.env".into(),
                mask: true,
            },
            MountOp::Deny {
                path: "/proj/.git/hooks".into(),
                mask: false,
            },
            MountOp::Tmpfs {
                dst: "/tmp".into(),
                mode: None,
                size: None,
            },
            MountOp::Proc {
                dst: "/proc".into(),
            },
            MountOp::Dev { dst: "/dev".into() },
        ];
        let view = View::of(&numbered(steps)).unwrap();
        assert_eq!(view.root.access, Some(Access::Read));
        assert_eq!(node(&view, "/proj").access, Some(Access::Write));
        assert_eq!(node(&view, "/proj/.env").access, Some(Access::Nothing));
        assert!(node(&view, "/proj/.env").deny);
        assert_eq!(node(&view, "/proj/.git").access, None);
        assert_eq!(
            node(&view, "/proj/.git/hooks").access,
            Some(Access::ReadOnly)
        );
        assert_eq!(node(&view, "/tmp").access, Some(Access::Nothing));
        assert_eq!(node(&view, "/proc").access, Some(Access::Read));
        assert_eq!(node(&view, "/dev").access, Some(Access::Devices));
        assert_eq!(view.tmpfs, [PathBuf::from("/tmp")]);
    }

    #[test]
    fn a_later_step_covers_what_earlier_ones_put_beneath() {
        let steps = [
            bind("/proj", false),
            MountOp::Deny {
                path: "/proj/.env".into(),
                mask: true,
            },
            bind("/", true),
        ];
        let view = View::of(&numbered(steps)).unwrap();
        assert_eq!(view.root.access, Some(Access::Read));
        assert!(view.root.children.is_empty());
    }

    #[test]
    fn what_needs_a_mount_is_refused_naming_the_step() {
        for (op, words) in [
            (
                MountOp::Bind {
                    src: "/a".into(),
                    dst: "/b".into(),
                    read_only: true,
                    if_exists: false,
                },
                "differ",
            ),
            (
                MountOp::DevBind {
                    src: "/dev/kvm".into(),
                    dst: "/dev/kvm".into(),
                    if_exists: false,
                },
                "device",
            ),
            (
                MountOp::Mqueue {
                    dst: "/dev/mqueue".into(),
                },
                "mount namespace",
            ),
            (
                MountOp::Dir {
                    dst: "/x".into(),
                    mode: None,
                },
                "create",
            ),
        ] {
            let err = View::of(&[step(op, 3)]).unwrap_err();
            assert_eq!(err.origin.index, 3);
            assert!(err.why.contains(words), "{}", err.why);
        }
    }
}
