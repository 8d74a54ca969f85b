//! The pure plan both front-ends produce and every executor carries out:
//! the ordered steps of the mount tree (`steps.rs`), the namespace,
//! process and environment settings (`settings.rs`), and the checks that
//! need no system call (`validate.rs`). No option parsing, no exit code,
//! no front-end wording lives here, so the planning is unit tested without
//! a sandbox and a second executor takes the same plan.

mod settings;
mod steps;
mod unix;
mod validate;

use std::ffi::OsString;
use std::path::PathBuf;

pub use settings::{Capabilities, EnvOp, Isolation, Namespaces, Process, RelayOp};
pub use steps::{FrontEnd, MountOp, Origin, OverlayWrites, Step, relative_components};
pub use unix::{ESCAPE_SOCKETS, EscapeKind, UnixGrant, escape_by_path};
pub use validate::PlanError;

/// Everything `run` needs to know, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    pub mounts: Vec<Step>,
    pub namespaces: Namespaces,
    pub process: Process,
    /// `--disable-userns`: the workload cannot create user namespaces.
    pub disable_userns: bool,
    pub seccomp_unix_block: bool,
    /// `--isolation`: which executor carries the plan out.
    pub isolation: Isolation,
    /// `--allow-unix` and `--allow-unix-unsafe`, in order (SPEC §2.9):
    /// when there is any, the workload may make stream and seqpacket
    /// unix sockets but connect them only to these (and to its own).
    pub unix_grants: Vec<UnixGrant>,
    /// `--relay` listeners, in order.
    pub relays: Vec<RelayOp>,
    /// `--expose` ports, in order (SPEC §3.4): the host's loopback PORT
    /// forwarded to the sandbox's.
    pub exposes: Vec<u16>,
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
        fds.extend(self.mounts.iter().filter_map(|step| match &step.op {
            MountOp::File { fd, .. }
            | MountOp::BindData { fd, .. }
            | MountOp::BindFd { fd, .. } => Some(*fd),
            _ => None,
        }));
        fds
    }
}
