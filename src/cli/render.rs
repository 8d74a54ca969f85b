//! Each front-end's words for a typed failure, and its exit code: `run`
//! says `srt-launcher: run: …` and exits 2 for usage and 125 for setup;
//! bwrap mode says `bwrap: …` (bubblewrap's phrases where its callers grep
//! for them) and exits 1 for every failure of its own. The plan and the
//! walk only return data (`PlanError`, `Usage`); the words are here.

use std::fmt;

use crate::exit::{self, Exit};
use crate::failure::{
    AtStep, ExecFailure, ExecKind, Problem, Reported, ReportedKind, Setting, SourceFailure,
};
use crate::plan::{FrontEnd, PlanError};
use crate::sys::{SysError, strerror};

use super::options::Usage;

/// bubblewrap's code for every failure of its own.
pub const BWRAP_FAILURE: i32 = 1;

/// Why an `--args` file without its last NUL is refused: a truncated
/// profile is never half-applied.
const UNTERMINATED: &str = "the last word is not NUL-terminated";

/// A usage failure, as `front_end` words it.
pub fn usage(front_end: FrontEnd, u: &Usage) -> anyhow::Error {
    match front_end {
        FrontEnd::Run => Exit::usage(format!("run: {}", run_usage(u))),
        FrontEnd::Bwrap => Exit::error(BWRAP_FAILURE, bwrap_usage(u)),
    }
}

fn run_usage(u: &Usage) -> String {
    match u {
        Usage::Unknown(word) => format!("unexpected argument '{word}' found (see --help)"),
        Usage::Stray(word) => format!(
            "unexpected argument '{}' found (the command goes after '--')",
            word.to_string_lossy()
        ),
        Usage::MissingValues {
            option,
            values,
            got,
        } => format!(
            "{option} needs {} ({got} of {} given)",
            values.join(" "),
            values.len()
        ),
        Usage::Repeated(option) => format!("the argument '{option}' cannot be used multiple times"),
        Usage::BadFd { option, word } => format!("{option}: invalid descriptor {word:?}"),
        Usage::ArgsNested => "--args inside an --args file".into(),
        Usage::ArgsUnreadable { fd, refusal } => match refusal {
            Some(e) => format!("--args {fd}: {e}"),
            None => format!("--args {fd}: {UNTERMINATED}"),
        },
        Usage::Said(text) => text.clone(),
    }
}

fn bwrap_usage(u: &Usage) -> String {
    match u {
        Usage::Unknown(word) => format!("Unknown option {word}"),
        Usage::Stray(word) => format!("Unknown option {}", word.to_string_lossy()),
        Usage::MissingValues { option, values, .. } => {
            let what = match values.len() {
                1 => "an argument",
                2 => "two arguments",
                _ => "three arguments",
            };
            format!("{option} takes {what}")
        }
        Usage::Repeated(option) => format!("{option} used multiple times"),
        Usage::BadFd { word, .. } => format!("Invalid fd: {}", word.to_string_lossy()),
        Usage::ArgsNested => "--args not supported in arguments file".into(),
        Usage::ArgsUnreadable { refusal, .. } => match refusal {
            Some(e) => format!("Can't read --args data: {}", strerror(e.errno())),
            None => format!("Can't read --args data: {UNTERMINATED}"),
        },
        Usage::Said(text) => text.clone(),
    }
}

/// A plan that cannot be carried out, as `front_end` words it. In `run` a
/// relative deny path is a setup error (125: it is a host's deny list
/// entry, SPEC §2.7); every other check is a usage error (2).
pub fn plan(front_end: FrontEnd, e: &PlanError) -> anyhow::Error {
    let text = plan_text(e);
    match front_end {
        FrontEnd::Bwrap => Exit::error(BWRAP_FAILURE, text),
        FrontEnd::Run if matches!(e, PlanError::RelativeDenyPath { .. }) => {
            Exit::error(exit::SETUP, format!("run: {text}"))
        }
        FrontEnd::Run => Exit::usage(format!("run: {text}")),
    }
}

fn plan_text(e: &PlanError) -> String {
    match e {
        PlanError::RelativeDestination { origin, dst } => format!(
            "{}: destination {} is not an absolute path",
            origin.option,
            dst.display()
        ),
        PlanError::RelativeDenyPath { origin, path } => format!(
            "{} {}: a deny path must be absolute (it is resolved from the sandbox root)",
            origin.option,
            path.display()
        ),
        PlanError::BadVariableName { unset, key } => format!(
            "{}: invalid variable name {key:?} (empty or contains '=')",
            if *unset { "--unsetenv" } else { "--setenv" }
        ),
        PlanError::RelativeWorkingDirectory(dir) => {
            format!("--chdir: {} is not an absolute path", dir.display())
        }
        PlanError::BadHostname(name) => format!("--hostname: {name:?} must be 1 to 64 bytes"),
        PlanError::RelayWithoutNetworkNamespace => {
            "--relay needs --unshare-net (it listens in the sandbox's own network namespace)".into()
        }
        PlanError::RelayPortTwice(port) => format!("--relay: port {port} is given twice"),
        PlanError::ExposeWithoutNetworkNamespace => {
            "--expose needs --unshare-net (it forwards into the sandbox's own network namespace)"
                .into()
        }
        PlanError::ExposePortTwice(port) => format!("--expose: port {port} is given twice"),
        PlanError::RelativeUnixSocket(path) => {
            format!("--allow-unix: {} is not an absolute path", path.display())
        }
        PlanError::EscapeSocket { path, kind } => escape_refusal(path, *kind),
        PlanError::MissingCommand => "missing command: expected '-- COMMAND [ARG...]'".into(),
    }
}

/// Why `--allow-unix` refuses a way-out socket, and what would pass it.
pub fn escape_refusal(path: &std::path::Path, kind: crate::plan::EscapeKind) -> String {
    format!(
        "--allow-unix: {} is a way out of the sandbox ({}); name it with --allow-unix-unsafe to allow it anyway",
        path.display(),
        kind.why()
    )
}

/// `run`'s words for a failure's contexts and causes, on one line, as
/// Rust prints them (an OS error ends in " (os error N)": SPEC §1's
/// example keeps it).
pub fn run_text(err: &anyhow::Error) -> String {
    exit::describe_plain(err)
}

/// bwrap mode's words for the same: bubblewrap prints an OS error as the C
/// library's text alone, so each cause is worded from its data here.
pub fn bwrap_text(err: &anyhow::Error) -> String {
    let words: Vec<String> = err
        .chain()
        .map(|cause| {
            if let Some(e) = cause.downcast_ref::<SysError>() {
                format!("{}: {}", e.call(), strerror(e.errno()))
            } else if let Some(errno) = cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
            {
                strerror(errno)
            } else if let Some(e) = cause.downcast_ref::<ExecFailure>() {
                match e.kind {
                    ExecKind::NoneInPath => e.to_string(),
                    _ => format!("execute {}: {}", e.path.display(), strerror(e.errno)),
                }
            } else {
                cause.to_string()
            }
        })
        .collect();
    words.join(": ").replace('\n', " ")
}

/// The line `run` prints for a failure (after `srt-launcher: `): every
/// context and cause, and the cause of a kernel refusal with its fix.
pub fn run_line(err: &anyhow::Error) -> String {
    with_hint(run_text(err), err)
}

/// `line`, and the cause of a kernel refusal behind `err` with its fix
/// (from the table in `diagnose`).
fn with_hint(mut line: String, err: &anyhow::Error) -> String {
    if let Some(hint) = crate::failure::refusal_of(err).and_then(crate::diagnose::hint_for) {
        line.push_str("; ");
        line.push_str(&hint);
    }
    line
}

/// `run`'s exit code for a failure: the code an [`Exit`] carries (usage
/// errors: 2), 127 for a command not found, 126 for one found but not
/// executable, else 125 (the sandbox could not be set up).
pub fn run_code(err: &anyhow::Error) -> i32 {
    if let Some(e) = exit::exit_of(err) {
        return e.code;
    }
    match crate::failure::kind_of(err) {
        ReportedKind::Exec(ExecKind::Refused) => exit::NOT_EXECUTABLE,
        ReportedKind::Exec(_) => exit::NOT_FOUND,
        ReportedKind::Usage => exit::USAGE,
        ReportedKind::Setup | ReportedKind::Source { .. } => exit::SETUP,
    }
}

/// The line bwrap mode prints for a failure of the sandbox (after
/// `bwrap: `): bubblewrap's phrase where its callers look for one, else
/// the failure in bwrap's words.
pub fn bwrap_line(err: &anyhow::Error) -> String {
    match crate::failure::kind_of(err) {
        ReportedKind::Source { path, errno } => format!(
            "Can't find source path {}: {}",
            path.display(),
            strerror(errno)
        ),
        _ => with_hint(bwrap_text(err), err),
    }
}

/// An OS error's text, as Rust prints it.
fn os_error(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

impl fmt::Display for crate::failure::GrantFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::failure::GrantCause;
        let path = self.path.display();
        match &self.cause {
            GrantCause::Missing(errno) => {
                write!(
                    f,
                    "--allow-unix {path}: {} in the sandbox",
                    os_error(*errno)
                )
            }
            GrantCause::NotASocket => write!(f, "--allow-unix {path}: not a socket"),
            GrantCause::Escape(kind) => {
                // The same socket as a way out, under another name.
                write!(
                    f,
                    "{} (it is the same socket)",
                    escape_refusal(&self.path, *kind)
                )
            }
            GrantCause::Unsupported(feature) => write!(
                f,
                "--allow-unix {path}: this kernel cannot broker unix sockets: {feature} is missing"
            ),
        }
    }
}

impl fmt::Display for AtStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.origin.option, self.dst.display())
    }
}

impl fmt::Display for SourceFailure {
    /// `--bind source /nope: No such file or directory (os error 2)`,
    /// complete as it stands (SPEC §1's example).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} source {}: {}",
            self.option,
            self.path.display(),
            os_error(self.errno)
        )
    }
}

impl fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ExecKind::NoneInPath => write!(
                f,
                "execute {}: command not found in PATH",
                self.path.display()
            ),
            _ => write!(
                f,
                "execute {}: {}",
                self.path.display(),
                os_error(self.errno)
            ),
        }
    }
}

impl fmt::Display for Setting {
    /// The option that names the setting, as both front-ends spell it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::JsonStatusFd => f.write_str("--json-status-fd"),
            Setting::InfoFd => f.write_str("--info-fd"),
            Setting::BlockFd => f.write_str("--block-fd"),
            Setting::WorkingDirectory(dir) => write!(f, "--chdir {}", dir.display()),
            Setting::Hostname => f.write_str("--hostname"),
            Setting::Relay(port) => write!(f, "--relay {port}"),
            Setting::Expose(port) => write!(f, "--expose {port}"),
        }
    }
}

impl fmt::Display for Problem {
    /// bubblewrap's phrases (its callers grep for them), which `run` uses
    /// too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotOpen { setting, fd } => write!(f, "{setting} {fd}: not an open descriptor"),
            Problem::InSetting(setting) => write!(f, "{setting}"),
            Problem::SymlinkExists { dst, existing } => write!(
                f,
                "Can't make symlink at {}: existing destination is {}",
                dst.display(),
                existing.display()
            ),
            Problem::NotASymlink { dst } => write!(
                f,
                "Can't make symlink at {}: destination exists and is not a symlink",
                dst.display()
            ),
            Problem::MountOnSymlink { dst } => {
                write!(f, "Can't mount on symlink destination {}", dst.display())
            }
            Problem::NotADirectory { dst } => {
                write!(f, "Destination is not a directory {}", dst.display())
            }
            Problem::NotAFile { dst } => write!(f, "Destination is not a file {}", dst.display()),
            Problem::Chmod { path, mode } => write!(f, "Can't chmod {mode:#o} {}", path.display()),
            Problem::ReadData { dst } => write!(f, "Can't read data for {}", dst.display()),
            Problem::WriteData { dst } => write!(f, "Can't write data to file {}", dst.display()),
            Problem::Overlay {
                dst,
                options,
                overlapping,
            } => {
                write!(
                    f,
                    "Can't make overlay mount on {} with options {options}",
                    dst.display()
                )?;
                if *overlapping {
                    f.write_str(": Overlay directories may not overlap")?;
                }
                Ok(())
            }
            Problem::OpenLockFile { path } => {
                write!(f, "Unable to open lock file {}", path.display())
            }
            Problem::LockFile { path } => write!(f, "Unable to lock file {}", path.display()),
            Problem::NotADescendantUserNamespace => f.write_str(
                "Joining the specified user namespace failed, it might not be a descendant \
                 of the current user namespace.",
            ),
            Problem::JoinUserNamespace => f.write_str("Joining specified user namespace failed"),
            Problem::JoinPidNamespace => f.write_str("Setting pidns failed"),
            Problem::JoinSecondUserNamespace => f.write_str("Setting userns2 failed"),
            Problem::CallerSeccomp => {
                f.write_str("Unable to set up system call filtering as requested")
            }
            Problem::StatFd { fd } => write!(f, "Can't stat fd {fd}"),
            Problem::BindRace { path, fd } => write!(
                f,
                "Race condition binding dirfd: {} is no longer what fd {fd} holds",
                path.display()
            ),
            Problem::ForbidUserNamespaces => {
                f.write_str("--disable-userns: forbid user namespaces inside")
            }
            Problem::EnterInnerUserNamespace => {
                f.write_str("--disable-userns: enter the inner user namespace")
            }
            Problem::RelaySocket { port, socket } => {
                write!(f, "--relay {port} {}", socket.display())
            }
            Problem::SwitchIds { uid, gid } => {
                write!(f, "unable to switch to uid {uid}, gid {gid}")
            }
        }
    }
}

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_worded_per_front_end() {
        let refusal = SysError::new(crate::sys::Call::other("read", "fd 9"), libc::EBADF);
        let err = anyhow::Error::new(refusal).context("--args 9");
        assert_eq!(
            run_text(&err),
            "--args 9: read(fd 9): Bad file descriptor (os error 9)"
        );
        assert_eq!(
            bwrap_text(&err),
            "--args 9: read(fd 9): Bad file descriptor"
        );
        let io = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOENT)).context("x");
        assert_eq!(bwrap_text(&io), "x: No such file or directory");
        let err = anyhow::Error::new(SourceFailure {
            option: "--bind".into(),
            path: "/s".into(),
            errno: libc::ENOENT,
        });
        assert_eq!(
            run_line(&err),
            "--bind source /s: No such file or directory (os error 2)"
        );
        assert_eq!(run_code(&err), exit::SETUP);
        assert_eq!(
            bwrap_line(&err),
            "Can't find source path /s: No such file or directory"
        );
    }

    #[test]
    fn a_kernel_refusal_gets_its_cause_in_one_line() {
        let err = anyhow::Error::new(SysError::new(
            crate::sys::Call::Mount {
                fstype: None,
                args: "\"a\", \"b\", NULL, 0x1000".into(),
            },
            libc::ENOSPC,
        ))
        .context("--bind a b");
        let line = run_line(&err);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("--bind a b: mount("), "{line}");
        assert!(line.contains("fs.mount-max"), "{line}");
        assert!(
            line.ends_with("run `srt-launcher check` for details"),
            "{line}"
        );
        assert!(!run_text(&err).contains("check"));
    }

    fn code_of(err: &anyhow::Error) -> i32 {
        run_code(err)
    }

    #[test]
    fn one_failure_two_wordings() {
        let u = Usage::MissingValues {
            option: "--bind",
            values: &["SRC", "DST"],
            got: 1,
        };
        let run = usage(FrontEnd::Run, &u);
        assert_eq!(code_of(&run), exit::USAGE);
        assert_eq!(run.to_string(), "run: --bind needs SRC DST (1 of 2 given)");
        let bwrap = usage(FrontEnd::Bwrap, &u);
        assert_eq!(code_of(&bwrap), BWRAP_FAILURE);
        assert_eq!(bwrap.to_string(), "--bind takes two arguments");
        let e = PlanError::RelativeDenyPath {
            origin: crate::plan::Origin {
                front_end: FrontEnd::Run,
                option: "--mask",
                index: 1,
            },
            path: ".ssh".into(),
        };
        assert_eq!(code_of(&plan(FrontEnd::Run, &e)), exit::SETUP);
        assert!(
            plan(FrontEnd::Run, &e)
                .to_string()
                .starts_with("run: --mask .ssh: ")
        );
        assert_eq!(
            code_of(&plan(FrontEnd::Bwrap, &PlanError::MissingCommand)),
            BWRAP_FAILURE
        );
    }
}
