//! An executor's failures, as data. The engine builds these and puts them
//! in an error's chain (beside the `sys::SysError` of a kernel refusal);
//! the front-ends decide the words and the exit code (`cli::render`, which
//! also implements `Display` for every type here, so no phrase of either
//! front-end lives in the engine).
//!
//! A failure in PID 1 or the workload crosses to the launcher as a
//! [`Reported`] (see `run::status`): its kind, its line, and the refused
//! call.

use std::path::PathBuf;

use crate::plan::Origin;
use crate::sys::SysError;

/// The plan step a failure happened in, as the context of its error.
#[derive(Debug, Clone)]
pub struct AtStep {
    pub origin: Origin,
    pub dst: PathBuf,
}

/// A step's source that cannot be opened in the host's view.
#[derive(Debug, Clone)]
pub struct SourceFailure {
    /// The option whose source it is.
    pub option: String,
    pub path: PathBuf,
    pub errno: i32,
}

/// Why the command was not executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// A path was given and nothing is there.
    Missing,
    /// No directory of PATH has it.
    NoneInPath,
    /// Something was found and could not be executed.
    Refused,
}

/// The command could not be executed: `path` is what was tried.
#[derive(Debug, Clone)]
pub struct ExecFailure {
    pub kind: ExecKind,
    pub path: PathBuf,
    pub errno: i32,
}

/// A setting of the plan that names a descriptor or a place, for the
/// failures that are about it rather than about a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    JsonStatusFd,
    InfoFd,
    BlockFd,
    WorkingDirectory(PathBuf),
    Hostname,
    /// A relay, by its port.
    Relay(u16),
    /// An exposed port (`--expose`).
    Expose(u16),
}

/// The engine's own findings and the steps bubblewrap names by a phrase
/// of its own, with what a message needs.
#[derive(Debug, Clone)]
pub enum Problem {
    /// A descriptor a setting names is not open.
    NotOpen {
        setting: Setting,
        fd: i32,
    },
    /// Context: a failure while applying a setting.
    InSetting(Setting),
    /// A symlink's destination exists and is another symlink.
    SymlinkExists {
        dst: PathBuf,
        existing: PathBuf,
    },
    /// A symlink's destination exists and is not a symlink.
    NotASymlink {
        dst: PathBuf,
    },
    /// Mounts on symlink destinations are refused (bwrap mode).
    MountOnSymlink {
        dst: PathBuf,
    },
    NotADirectory {
        dst: PathBuf,
    },
    NotAFile {
        dst: PathBuf,
    },
    /// Context: a chmod step.
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    /// Context: reading a data descriptor.
    ReadData {
        dst: PathBuf,
    },
    /// Context: writing a data file.
    WriteData {
        dst: PathBuf,
    },
    /// The overlay mount, with its options; `overlapping` when the
    /// kernel refused layers that overlap (ELOOP).
    Overlay {
        dst: PathBuf,
        options: String,
        overlapping: bool,
    },
    /// Context: opening or locking a `--lock-file`.
    OpenLockFile {
        path: PathBuf,
    },
    LockFile {
        path: PathBuf,
    },
    /// Joining the caller's user namespace: it is not a descendant of
    /// ours (EINVAL), or another refusal (context).
    NotADescendantUserNamespace,
    JoinUserNamespace,
    /// Context: joining the caller's PID namespace.
    JoinPidNamespace,
    /// Context: switching to the caller's second user namespace.
    JoinSecondUserNamespace,
    /// Context: installing the caller's own seccomp programs.
    CallerSeccomp,
    /// Context: a descriptor the caller passed could not be examined.
    StatFd {
        fd: i32,
    },
    /// What a descriptor held was replaced before it could be bound.
    BindRace {
        path: PathBuf,
        fd: i32,
    },
    /// Context: `--disable-userns`'s limit of one more user namespace,
    /// and the entry into that one.
    ForbidUserNamespaces,
    EnterInnerUserNamespace,
    /// Context: a relay's socket and listeners.
    RelaySocket {
        port: u16,
        socket: PathBuf,
    },
    /// The ids to take in a joined user namespace were refused.
    SwitchIds {
        uid: u32,
        gid: u32,
    },
}

/// Why an `--allow-unix` socket cannot be granted (SPEC §2.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantCause {
    /// Resolving it in the sandbox root failed with this errno.
    Missing(i32),
    NotASocket,
    /// It is the same socket as a way out of any sandbox on the host
    /// (found by inode: another spelling of it).
    Escape(crate::plan::EscapeKind),
    /// Neither of the broker's ways is open here: the kernel feature
    /// that is missing.
    Unsupported(&'static str),
}

/// A grant refused at setup: the path as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFailure {
    pub path: PathBuf,
    pub cause: GrantCause,
}

/// What a failure reported over a status pipe is, for the exit code and
/// the words a front-end picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedKind {
    Setup,
    /// A refusal of what the command line asked for, found only at setup
    /// (a way-out socket by another name): a usage error.
    Usage,
    Source {
        path: PathBuf,
        errno: i32,
    },
    Exec(ExecKind),
}

/// A failure of PID 1, the workload or a relay, as the launcher received
/// it: the line was made in the child (in the front-end's words: they are
/// the same binary), the kind and the refused call are data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub kind: ReportedKind,
    pub line: String,
    pub refusal: Option<SysError>,
}

impl std::error::Error for AtStep {}
impl std::error::Error for SourceFailure {}
impl std::error::Error for ExecFailure {}
impl std::error::Error for Problem {}
impl std::error::Error for Reported {}
impl std::error::Error for GrantFailure {}

/// The kind of a failure, from the data in its chain.
pub fn kind_of(err: &anyhow::Error) -> ReportedKind {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ExecFailure>() {
            return ReportedKind::Exec(e.kind);
        }
        if let Some(e) = cause.downcast_ref::<SourceFailure>() {
            return ReportedKind::Source {
                path: e.path.clone(),
                errno: e.errno,
            };
        }
        if let Some(e) = cause.downcast_ref::<Reported>() {
            return e.kind.clone();
        }
        if let Some(GrantFailure {
            cause: GrantCause::Escape(_),
            ..
        }) = cause.downcast_ref::<GrantFailure>()
        {
            return ReportedKind::Usage;
        }
    }
    ReportedKind::Setup
}

/// The refused system call behind an error, if a kernel refusal is what
/// it is (found in the chain, or carried by a reported failure).
pub fn refusal_of(err: &anyhow::Error) -> Option<&SysError> {
    err.chain().find_map(|e| {
        e.downcast_ref::<SysError>()
            .or_else(|| e.downcast_ref::<Reported>()?.refusal.as_ref())
    })
}
