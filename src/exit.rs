//! The launcher's exit codes (SPEC §1) and the error that carries its own
//! code ([`Exit`]: usage errors and the small subcommands' failures). Which
//! code a sandbox failure gets is the front-end's choice (`cli::render`).

use std::fmt;

/// Usage error: unknown option, missing value, bad number.
pub const USAGE: i32 = 2;
/// The sandbox could not be set up.
pub const SETUP: i32 = 125;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// An error that carries its own exit code and line.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    /// An error that exits with `code` and prints `message`.
    pub fn error(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: message.into(),
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

/// The error's line without a hint: every context and cause, on one line.
pub fn describe_plain(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}
