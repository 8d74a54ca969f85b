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
            MountOp::DevBind {
                if_exists: false, ..
            } => "--dev-bind",
            MountOp::DevBind {
                if_exists: true, ..
            } => "--dev-bind-try",
            MountOp::Dir { .. } => "--dir",
            MountOp::Chmod { .. } => "--chmod",
            MountOp::RemountRo { .. } => "--remount-ro",
            MountOp::Mqueue { .. } => "--mqueue",
            MountOp::Overlay { writes, .. } => match writes {
                OverlayWrites::Dirs { .. } => "--overlay",
                OverlayWrites::Tmpfs => "--tmp-overlay",
                OverlayWrites::ReadOnly => "--ro-overlay",
            },
            MountOp::File { .. } => "--file",
            MountOp::BindFd {
                read_only: false, ..
            } => "--bind-fd",
            MountOp::BindFd {
                read_only: true, ..
            } => "--ro-bind-fd",
            MountOp::BindData {
                read_only: false, ..
            } => "--bind-data",
            MountOp::BindData {
                read_only: true, ..
            } => "--ro-bind-data",
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

/// Which namespaces the sandbox gets besides its mount namespace (always
/// new). The defaults are `run`'s (SPEC §2.2); bwrap mode starts from
/// bubblewrap's, which share everything not asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Take a user namespace even when the direct way would work (as
    /// root). Without it one is taken only when the launcher lacks
    /// CAP_SYS_ADMIN.
    pub user: bool,
    /// bwrap's `--userns FD`: join this user namespace instead of making
    /// one (every other namespace is then created inside it).
    pub user_fd: Option<i32>,
    pub pid: bool,
    /// bwrap's `--pidns FD`: the sandbox's processes are born in this PID
    /// namespace (not combined with a new one).
    pub pid_fd: Option<i32>,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces {
            user: false,
            user_fd: None,
            pid: true,
            pid_fd: None,
            net: false,
            ipc: true,
            uts: true,
            cgroup: true,
        }
    }
}

impl Namespaces {
    /// The CLONE_NEW* flags the launcher unshares itself (the network
    /// namespace is taken first and separately, for the relays; the mount
    /// namespace is PID 1's).
    pub fn launcher_flags(&self) -> i32 {
        [
            // Below a joined PID namespace, PID 1's parent makes it.
            (self.pid && self.pid_fd.is_none(), libc::CLONE_NEWPID),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.uts, libc::CLONE_NEWUTS),
            (self.cgroup, libc::CLONE_NEWCGROUP),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |flags, (_, flag)| flags | flag)
    }
}

/// What the workload keeps of the capabilities it holds at execve (in its
/// user namespace, or the host's as root without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// None in any set, bounding included (`run`, and bwrap for a
    /// non-root caller without `--cap-add`).
    DropAll,
    /// Exactly these (bit N = capability N), raised as ambient too so they
    /// survive the execve; everything else leaves every set.
    Keep(u64),
    /// Every set as the caller's was (bwrap's default for a root caller;
    /// no_new_privs still caps what an execve can grant).
    Unchanged,
}

/// How the sandbox's processes are arranged and tied to their caller. The
/// defaults are `run`'s; bwrap mode sets bubblewrap's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The launcher dies with the process that spawned it (and takes the
    /// sandbox with it). Without it the sandbox outlives its spawner.
    pub die_with_parent: bool,
    /// The workload (and PID 1) leave the caller's session, so they have
    /// no controlling terminal.
    pub new_session: bool,
    /// A reaper runs as PID 1 and the workload is its child; without one,
    /// the process that built the mount tree executes the command itself
    /// (no PID namespace, or bwrap's `--as-pid-1`).
    pub reaper: bool,
    pub capabilities: Capabilities,
    /// The uid and gid the workload has inside its user namespace (the
    /// caller's own when None); needs a user namespace.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// argv[0] of the command, when it differs from the program run.
    pub argv0: Option<OsString>,
    /// `--assert-userns-disabled`: fail unless the workload is unable to
    /// create a user namespace.
    pub assert_userns_disabled: bool,
    /// `--block-fd`: wait for one byte (or EOF) on this descriptor just
    /// before execve.
    pub block_fd: Option<i32>,
    /// bwrap's `--lock-file`: files (sandbox paths) PID 1 holds a read
    /// lock on while the sandbox runs; needs a reaper.
    pub lock_files: Vec<PathBuf>,
    /// Descriptors the caller left open reach the command (bubblewrap's
    /// behaviour, which callers rely on to pass sockets and pipes in);
    /// without it (`run`) none above 2 does.
    pub keep_inherited_fds: bool,
    /// bwrap's `--sync-fd`: held open by PID 1 while the sandbox runs
    /// (and by the command itself when there is no reaper).
    pub sync_fd: Option<i32>,
    /// bwrap's `--seccomp` / `--add-seccomp-fd`: the caller's BPF
    /// programs, installed in order right before execve, on top of ours.
    pub seccomp_programs: Vec<Vec<u8>>,
    /// bwrap's `--userns2`: the user namespace the command switches to
    /// once setup is done.
    pub userns2_fd: Option<i32>,
    /// bwrap's `--userns-block-fd`: the caller writes the new user
    /// namespace's id maps itself (the launcher's pid goes out on
    /// `--info-fd` first), then writes one byte here.
    pub userns_block_fd: Option<i32>,
    /// The workload can make no setuid or setgid file and use no io_uring
    /// (the `setuid-files` seccomp rules): always in `run`; in bwrap mode
    /// only with `--refuse-setuid-files`, since builders that drive
    /// bubblewrap set those bits legitimately.
    pub refuse_setuid_files: bool,
}

impl Default for Process {
    fn default() -> Process {
        Process {
            die_with_parent: true,
            new_session: true,
            reaper: true,
            capabilities: Capabilities::DropAll,
            uid: None,
            gid: None,
            argv0: None,
            assert_userns_disabled: false,
            block_fd: None,
            lock_files: Vec::new(),
            keep_inherited_fds: false,
            refuse_setuid_files: true,
            sync_fd: None,
            seccomp_programs: Vec::new(),
            userns2_fd: None,
            userns_block_fd: None,
        }
    }
}

/// Everything `run` needs to know, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    pub mounts: Vec<MountOp>,
    pub namespaces: Namespaces,
    pub process: Process,
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
    /// `--json-status-fd FD`: where to write `{ "child-pid": N, ... }` once
    /// the sandbox's first process exists and `{ "exit-code": N }` when the
    /// command ends.
    pub json_status_fd: Option<i32>,
    /// A mount whose destination is a symlink is refused (bubblewrap's
    /// rule) instead of resolved inside the root (`run`'s).
    pub refuse_symlink_destinations: bool,
    /// bwrap's `--info-fd FD`: one JSON object with the child pid and the
    /// namespace ids, written and closed before the command runs.
    pub info_fd: Option<i32>,
    /// The command and its arguments (everything after `--`).
    pub command: Vec<OsString>,
}

impl RunSpec {
    /// The descriptors the launcher itself consumes (status documents,
    /// data and bind sources, --block-fd, and --sync-fd when PID 1 holds
    /// it): never the command's, even when inherited ones are kept.
    pub fn consumed_fds(&self) -> Vec<i32> {
        let mut fds: Vec<i32> = [
            self.json_status_fd,
            self.info_fd,
            self.process.block_fd,
            self.process.userns2_fd,
            self.process.userns_block_fd,
            self.namespaces.user_fd,
            self.namespaces.pid_fd,
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.process.reaper {
            fds.extend(self.process.sync_fd);
        }
        fds.extend(self.mounts.iter().filter_map(|op| match op {
            MountOp::File { fd, .. }
            | MountOp::BindData { fd, .. }
            | MountOp::BindFd { fd, .. } => Some(*fd),
            _ => None,
        }));
        fds
    }

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
        if !self.relays.is_empty() && !self.namespaces.net {
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
        let spec = spec_with(vec![MountOp::Tmpfs {
            dst: "tmp".into(),
            mode: None,
            size: None,
        }]);
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
        spec.namespaces.net = true;
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
