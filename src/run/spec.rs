//! What a `run` invocation asks for, as pure data: the ordered mount
//! operations, the namespace choices, the environment edits and the
//! command. No system calls happen here, so the planning step is unit
//! tested without a sandbox.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::exit::Exit;

/// One mount option, exactly as given. The list keeps argv order: a later
/// operation is applied on top of the earlier ones and may shadow them, so
/// it is never sorted, deduplicated or keyed by path.
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
    /// `--dev-bind`: recursive read-write bind where device nodes work
    /// (no nodev), for `/dev/kvm` and the like.
    DevBind { src: PathBuf, dst: PathBuf },
    /// `--dir`: a directory (mode 0755), with missing parents.
    Dir { dst: PathBuf },
    /// `--symlink TARGET DST`: a symlink at DST pointing to TARGET.
    Symlink { target: PathBuf, dst: PathBuf },
    /// `--tmpfs`: a fresh tmpfs.
    Tmpfs { dst: PathBuf },
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
    /// The option that produced this operation, for error messages.
    pub fn option(&self) -> &'static str {
        match self {
            MountOp::Bind {
                read_only: false,
                if_exists: false,
                ..
            } => "--bind",
            MountOp::Bind {
                read_only: true,
                if_exists: false,
                ..
            } => "--ro-bind",
            MountOp::Bind {
                read_only: false,
                if_exists: true,
                ..
            } => "--bind-try",
            MountOp::Bind {
                read_only: true,
                if_exists: true,
                ..
            } => "--ro-bind-try",
            MountOp::DevBind { .. } => "--dev-bind",
            MountOp::Dir { .. } => "--dir",
            MountOp::Symlink { .. } => "--symlink",
            MountOp::Tmpfs { .. } => "--tmpfs",
            MountOp::Dev { .. } => "--dev",
            MountOp::Proc { .. } => "--proc",
            MountOp::HostProc { .. } => "--host-proc",
            MountOp::Deny { mask: true, .. } => "--mask",
            MountOp::Deny { mask: false, .. } => "--deny-write",
        }
    }

    pub fn dst(&self) -> &Path {
        match self {
            MountOp::Bind { dst, .. }
            | MountOp::DevBind { dst, .. }
            | MountOp::Dir { dst }
            | MountOp::Symlink { dst, .. }
            | MountOp::Tmpfs { dst }
            | MountOp::Dev { dst }
            | MountOp::Proc { dst }
            | MountOp::HostProc { dst }
            | MountOp::Deny { path: dst, .. } => dst,
        }
    }
}

/// One edit of the workload's environment, applied in argv order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvOp {
    /// `--setenv KEY VALUE`.
    Set(OsString, OsString),
    /// `--unsetenv KEY`.
    Unset(OsString),
    /// `--clearenv`: nothing of the caller's environment is kept.
    Clear,
}

/// `--relay PORT UNIX_SOCKET`: a listener on loopback PORT inside the
/// sandbox's network namespace, forwarding to a host unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOp {
    pub port: u16,
    pub socket: PathBuf,
}

/// Everything `run` needs to know, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    pub mounts: Vec<MountOp>,
    pub unshare_net: bool,
    pub unshare_user: bool,
    /// `--disable-userns`: the workload cannot create user namespaces.
    pub disable_userns: bool,
    pub seccomp_unix_block: bool,
    /// `--relay` listeners, in order.
    pub relays: Vec<RelayOp>,
    /// `--setenv`, `--unsetenv`, `--clearenv` in argv order; applied in
    /// order, so the last one wins.
    pub env: Vec<EnvOp>,
    /// `--chdir DIR`: the workload's working directory.
    pub chdir: Option<PathBuf>,
    /// `--hostname NAME`.
    pub hostname: Option<OsString>,
    /// `--json-status-fd FD`: where to write `{ "child-pid": N }` once the
    /// command runs and `{ "exit-code": N }` when it ends.
    pub json_status_fd: Option<i32>,
    /// The command and its arguments (everything after `--`).
    pub command: Vec<OsString>,
}

impl RunSpec {
    /// Checks what can be checked without touching the system; every
    /// failure is a usage error (exit 2) naming the option and value.
    pub fn validate(&self) -> anyhow::Result<()> {
        for op in &self.mounts {
            if let MountOp::Deny { path, .. } = op
                && !path.is_absolute()
            {
                // A setup error (125), as SPEC §2.7 has it: the path is a
                // host's deny list entry, not command-line syntax.
                anyhow::bail!(
                    "{} {}: a deny path must be absolute (it is resolved from the sandbox root)",
                    op.option(),
                    path.display()
                );
            }
            validate_destination(op.option(), op.dst())?;
        }
        for op in &self.env {
            let (option, key) = match op {
                EnvOp::Set(key, _) => ("--setenv", key),
                EnvOp::Unset(key) => ("--unsetenv", key),
                EnvOp::Clear => continue,
            };
            let bytes = key.as_bytes();
            if bytes.is_empty() || bytes.contains(&b'=') {
                return Err(Exit::usage(format!(
                    "{option}: invalid variable name {key:?} (empty or contains '=')"
                )));
            }
        }
        if let Some(dir) = &self.chdir
            && !dir.is_absolute()
        {
            return Err(Exit::usage(format!(
                "--chdir: {} is not an absolute path",
                dir.display()
            )));
        }
        if let Some(name) = &self.hostname
            && (name.is_empty() || name.len() > 64)
        {
            return Err(Exit::usage(format!(
                "--hostname: {name:?} must be 1 to 64 bytes"
            )));
        }
        if !self.relays.is_empty() && !self.unshare_net {
            return Err(Exit::usage(
                "--relay needs --unshare-net (it listens in the sandbox's own network namespace)",
            ));
        }
        for (i, relay) in self.relays.iter().enumerate() {
            if self.relays[..i].iter().any(|r| r.port == relay.port) {
                return Err(Exit::usage(format!(
                    "--relay: port {} is given twice",
                    relay.port
                )));
            }
        }
        if self.command.is_empty() {
            return Err(Exit::usage(
                "missing command: expected '-- COMMAND [ARG...]'",
            ));
        }
        Ok(())
    }
}

/// A destination must be absolute (it is resolved from the sandbox root)
/// and cannot be the root itself, which is the empty tmpfs every operation
/// builds on.
fn validate_destination(option: &str, dst: &Path) -> anyhow::Result<()> {
    if !dst.is_absolute() {
        return Err(Exit::usage(format!(
            "{option}: destination {} is not an absolute path",
            dst.display()
        )));
    }
    Ok(())
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

    fn spec_with(mounts: Vec<MountOp>) -> RunSpec {
        RunSpec {
            mounts,
            command: vec!["true".into()],
            ..RunSpec::default()
        }
    }

    #[test]
    fn relative_destination_is_a_usage_error() {
        let spec = spec_with(vec![MountOp::Tmpfs { dst: "tmp".into() }]);
        let err = spec.validate().unwrap_err();
        assert_eq!(crate::exit::code_of(&err), 2);
        assert!(err.to_string().contains("--tmpfs"));
    }

    #[test]
    fn relative_deny_path_is_a_setup_error() {
        let spec = spec_with(vec![MountOp::Deny {
            path: ".ssh".into(),
            mask: true,
        }]);
        let err = spec.validate().unwrap_err();
        assert_eq!(crate::exit::code_of(&err), 125);
        assert!(err.to_string().starts_with("--mask .ssh: "), "{err}");
    }

    #[test]
    fn setenv_key_with_equals_is_refused() {
        let mut spec = spec_with(vec![]);
        spec.env.push(EnvOp::Set("A=B".into(), "c".into()));
        assert_eq!(crate::exit::code_of(&spec.validate().unwrap_err()), 2);
    }

    #[test]
    fn relay_needs_unshare_net_and_unique_ports() {
        let relay = |port| RelayOp {
            port,
            socket: "/s".into(),
        };
        let mut spec = spec_with(vec![]);
        spec.relays = vec![relay(3128)];
        assert_eq!(crate::exit::code_of(&spec.validate().unwrap_err()), 2);
        spec.unshare_net = true;
        assert!(spec.validate().is_ok());
        spec.relays.push(relay(3128));
        let err = spec.validate().unwrap_err();
        assert!(err.to_string().contains("3128"), "{err}");
    }

    #[test]
    fn missing_command_is_refused() {
        let spec = RunSpec::default();
        assert_eq!(crate::exit::code_of(&spec.validate().unwrap_err()), 2);
    }

    #[test]
    fn components_keep_dotdot_and_drop_dot() {
        let comps = relative_components(Path::new("/a/./b/../c"));
        assert_eq!(comps, ["a", "b", "..", "c"]);
        assert!(relative_components(Path::new("/")).is_empty());
    }
}
