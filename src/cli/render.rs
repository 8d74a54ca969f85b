//! Each front-end's words for a typed failure, and its exit code: `run`
//! says `srt-launcher: run: …` and exits 2 for usage and 125 for setup;
//! bwrap mode says `bwrap: …` (bubblewrap's phrases where its callers grep
//! for them) and exits 1 for every failure of its own. The plan and the
//! walk only return data (`PlanError`, `Usage`); the words are here.

use crate::exit::{self, Exit, Fact};
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

/// The line bwrap mode prints for a failure of the sandbox (after
/// `bwrap: `): bubblewrap's phrase where its callers look for one, else
/// the engine's line, without Rust's " (os error N)" suffixes, which
/// bubblewrap never prints.
pub fn bwrap_line(err: &anyhow::Error) -> String {
    match exit::exit_of(err).and_then(|e| e.fact.as_ref()) {
        Some(Fact::Source { path, errno }) => format!(
            "Can't find source path {}: {}",
            path.display(),
            strip_os_error(&std::io::Error::from_raw_os_error(*errno).to_string())
        ),
        None => strip_os_error(&exit::describe(err)),
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
        let err = anyhow::Error::new(Exit {
            code: 125,
            message: "--bind source /s: No such file or directory (os error 2)".into(),
            fact: Some(Fact::Source {
                path: "/s".into(),
                errno: libc::ENOENT,
            }),
        });
        assert_eq!(
            bwrap_line(&err),
            "Can't find source path /s: No such file or directory"
        );
    }

    #[test]
    fn one_failure_two_wordings() {
        let u = Usage::MissingValues {
            option: "--bind",
            values: &["SRC", "DST"],
            got: 1,
        };
        let run = usage(FrontEnd::Run, &u);
        assert_eq!(exit::code_of(&run), exit::USAGE);
        assert_eq!(run.to_string(), "run: --bind needs SRC DST (1 of 2 given)");
        let bwrap = usage(FrontEnd::Bwrap, &u);
        assert_eq!(exit::code_of(&bwrap), BWRAP_FAILURE);
        assert_eq!(bwrap.to_string(), "--bind takes two arguments");
        let e = PlanError::RelativeDenyPath {
            origin: crate::plan::Origin {
                front_end: FrontEnd::Run,
                option: "--mask",
                index: 1,
            },
            path: ".ssh".into(),
        };
        assert_eq!(exit::code_of(&plan(FrontEnd::Run, &e)), exit::SETUP);
        assert!(
            plan(FrontEnd::Run, &e)
                .to_string()
                .starts_with("run: --mask .ssh: ")
        );
        assert_eq!(
            exit::code_of(&plan(FrontEnd::Bwrap, &PlanError::MissingCommand)),
            BWRAP_FAILURE
        );
    }
}
