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

use super::options::Usage;

/// bubblewrap's code for every failure of its own.
pub const BWRAP_FAILURE: i32 = 1;

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
        Usage::ArgsUnreadable { fd, detail } => format!("--args {fd}: {detail}"),
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
        Usage::ArgsUnreadable { detail, .. } => {
            format!("Can't read --args data: {}", strip_os_error(detail))
        }
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
        PlanError::MissingCommand => "missing command: expected '-- COMMAND [ARG...]'".into(),
    }
}

/// The line `run` prints for a failure (after `srt-launcher: `): every
/// context and cause, and the cause of a kernel refusal with its fix.
pub fn run_line(err: &anyhow::Error) -> String {
    exit::describe(err)
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
        ReportedKind::Setup | ReportedKind::Source { .. } => exit::SETUP,
    }
}

/// The line bwrap mode prints for a failure of the sandbox (after
/// `bwrap: `): bubblewrap's phrase where its callers look for one, else
/// the engine's line, without Rust's " (os error N)" suffixes, which
/// bubblewrap never prints.
pub fn bwrap_line(err: &anyhow::Error) -> String {
    match crate::failure::kind_of(err) {
        ReportedKind::Source { path, errno } => format!(
            "Can't find source path {}: {}",
            path.display(),
            strip_os_error(&std::io::Error::from_raw_os_error(errno).to_string())
        ),
        _ => strip_os_error(&exit::describe(err)),
    }
}

/// An OS error's text, as Rust prints it.
fn os_error(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
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

/// Removes every " (os error N)" from a line.
fn strip_os_error(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find(" (os error ") {
        let after = &rest[start + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..start]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_suffixes_are_dropped() {
        assert_eq!(
            strip_os_error("a: No such file (os error 2); b (os error x) (os error 13)"),
            "a: No such file; b (os error x)"
        );
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
