//! The SDK's usual sandbox, defined once: the `run` options an agent SDK
//! puts around a command (no network but the relays, no unix sockets, the
//! host read-only, a fresh /proc and /dev). `check` rehearses exactly this
//! plan step by step and then runs it for real, and the integration tests
//! nest it; all three read this file (the tests include it by path), so
//! `check` cannot pass against a sandbox other than the one `run` builds.
//!
//! Plain data with no dependency, so that a test crate can include it.

/// The usual options, in argv order, before `--` and the command.
pub const USUAL_SANDBOX: [&str; 9] = [
    "--unshare-net",
    "--seccomp-unix-block",
    "--ro-bind",
    "/",
    "/",
    PROC_OPTION,
    "/proc",
    "--dev",
    "/dev",
];

/// How the usual sandbox gets its /proc; `--host-proc` replaces it where a
/// fresh procfs is refused (inside another sandbox, a container).
pub const PROC_OPTION: &str = "--proc";

/// The usual options with `proc_option` for /proc.
pub fn usual_sandbox_with(proc_option: &'static str) -> Vec<&'static str> {
    USUAL_SANDBOX
        .iter()
        .map(|word| {
            if *word == PROC_OPTION {
                proc_option
            } else {
                word
            }
        })
        .collect()
}
