//! The plan's settings besides its steps: namespaces, the workload's
//! process, its environment edits and the relays. The defaults are
//! `run`'s; bwrap mode sets bubblewrap's explicitly.

use std::ffi::OsString;
use std::path::PathBuf;

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

/// How the sandbox is enforced (`--isolation`, SPEC §2.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces and the mount tree (the default).
    #[default]
    Namespaces,
    /// Landlock and the seccomp filter on the host's own tree.
    Landlock,
    /// Namespaces where this user can have them here, else Landlock: the
    /// fallback is taken only for the causes that mean "no namespaces for
    /// this user on this machine" (`diagnose::Cause::means_no_namespaces`).
    Auto,
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
