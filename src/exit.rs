//! Exit-code policy of the launcher itself (SPEC §1) and the one-line
//! error, with the cause of a kernel refusal (`diagnose`) appended.
//!
//! Runs in the launcher only (PID 1 and the workload send their failures to
//! the launcher as already-formatted lines, see `run::report`).

use std::fmt;

use crate::sys::SysError;

/// Usage error: unknown option, missing value, bad number.
pub const USAGE: i32 = 2;
/// The sandbox could not be set up.
pub const SETUP: i32 = 125;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// An error that carries its own exit code. Errors without one are setup
/// failures (125): anything that goes wrong before the workload runs and is
/// not the caller's syntax is the sandbox failing to come up.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
    /// What failed, as data, when a front-end words it its own way (the
    /// message is `run`'s wording).
    pub fact: Option<Fact>,
}

/// A setup failure as data, for the front-ends that word it differently
/// (bwrap mode speaks bubblewrap's phrases, which its callers grep for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A bind's source could not be opened in the host's view.
    Source {
        path: std::path::PathBuf,
        errno: i32,
    },
}

impl Exit {
    /// An error that exits with `code` and prints `message`.
    pub fn error(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: message.into(),
            fact: None,
        })
    }

    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Exit::error(USAGE, message)
    }
}

/// The `Exit` in an error's chain, if any.
pub fn exit_of(err: &anyhow::Error) -> Option<&Exit> {
    err.chain().find_map(|e| e.downcast_ref::<Exit>())
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code for an error that reached `main`.
pub fn code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(SETUP, |e| e.code)
}

/// The one line printed for an error: `context: context: cause; hint`,
/// where the hint (from the cause table in `diagnose`) names why the
/// machine refused and how to fix it.
pub fn describe(err: &anyhow::Error) -> String {
    let mut line = describe_plain(err);
    if let Some(hint) = refusal_of(err).and_then(crate::diagnose::hint_for) {
        line.push_str("; ");
        line.push_str(&hint);
    }
    line
}

/// The error's line without a hint: PID 1 and the workload send this, with
/// the refused call beside it, and the launcher (which still sees the
/// host's /proc and /sys) adds the hint.
pub fn describe_plain(err: &anyhow::Error) -> String {
    // One line, whatever the causes contained.
    format!("{err:#}").replace('\n', " ")
}

/// The refused system call behind an error, if a kernel refusal is what it
/// is.
pub fn refusal_of(err: &anyhow::Error) -> Option<&SysError> {
    err.chain().find_map(|e| e.downcast_ref::<SysError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_map_to_2_and_others_to_125() {
        let usage = Exit::usage("bad");
        assert_eq!(code_of(&usage), USAGE);
        let setup = anyhow::anyhow!("mount failed");
        assert_eq!(code_of(&setup), SETUP);
        let wrapped = Exit::usage("bad").context("run");
        assert_eq!(code_of(&wrapped), USAGE);
    }

    #[test]
    fn description_is_one_line_with_the_cause() {
        let err = anyhow::Error::new(SysError::new(
            crate::sys::Call::Mount {
                fstype: None,
                args: "\"a\", \"b\", NULL, 0x1000".into(),
            },
            libc::ENOSPC,
        ))
        .context("--bind a b");
        let line = describe(&err);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("--bind a b: mount("), "{line}");
        assert!(line.contains("fs.mount-max"), "{line}");
        assert!(
            line.ends_with("run `srt-launcher check` for details"),
            "{line}"
        );
        assert!(!describe_plain(&err).contains("check"));
    }
}
