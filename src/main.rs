//! srt-launcher: one static binary that puts a Linux sandbox around a
//! command (`run`), for hosts that today shell out to bubblewrap, socat and
//! a seccomp helper. The contract is SPEC.md; this file is the entry point
//! of the launcher process, with the caller's privileges.
//!
//! `#![cfg_attr(not(test), no_main)]`: Rust's own `main` shim sets SIGPIPE to ignored before our
//! code runs, and the workload must inherit the caller's disposition, not
//! ours (SPEC §2.2). The C runtime calls [`main`] directly instead.
#![cfg_attr(not(test), no_main)]
// Every `unsafe` lives in `sys`, the one module allowed it (and the C
// entry point below, which the crate root must define itself).
#![deny(unsafe_code)]

mod broker;
mod caps;
mod check;
mod cli;
mod connect;
mod diagnose;
mod exit;
mod failure;
mod landlock_mode;
mod log;
mod plan;
mod probe;
mod pump;
mod relay;
mod run;
mod seccomp;
#[allow(unsafe_code)]
mod sys;

use crate::log::trace;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

/// The name under which the binary is ours (SPEC §1, multicall).
const NAME: &str = "srt-launcher";

/// C entry point (see the module comment for why not Rust's).
///
/// # Safety
/// Called once by the C runtime with the process's argc/argv.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // The very first thing: who spawned us, before anything can race with
    // the parent's death (compared again once PR_SET_PDEATHSIG is armed).
    let parent_pid = sys::getppid();
    // SAFETY: the C runtime passes argc valid NUL-terminated strings.
    let args = unsafe { sys::args_from_c(argc, argv) };
    launcher_main(args, parent_pid)
}

#[cfg_attr(test, allow(dead_code))]
fn launcher_main(args: Vec<std::ffi::OsString>, parent_pid: i32) -> i32 {
    // Multicall: ARGV0=srt-launcher marks an invocation of ours inside a
    // host binary; it is removed before anything else so the workload never
    // sees it. Any other ARGV0 belongs to someone else and stays.
    if std::env::var_os("ARGV0").is_some_and(|v| v == NAME) {
        sys::env_remove("ARGV0");
    }
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .unwrap_or(OsStr::new(NAME));
    crate::log::init();
    crate::diagnose::remember_caller();
    trace!("parent pid {parent_pid}, invoked as {:?}", invoked_as);

    // A setuid/setgid launcher would hand the caller privileges it never
    // had; refuse before parsing anything the caller controls.
    let (uid, euid, gid, egid) = sys::ids();
    if uid != euid || gid != egid {
        return fail(&anyhow::anyhow!(
            "refusing to run setuid or setgid (uid {uid}, euid {euid}, gid {gid}, egid {egid})"
        ));
    }

    // bwrap mode: a file named `bwrap`, or the `bwrap` subcommand.
    if invoked_as == "bwrap" {
        return bwrap_main(&args[0], &args[1..], parent_pid);
    }
    if args.get(1).is_some_and(|a| a == "bwrap") {
        let mut argv0 = args[0].clone();
        argv0.push(" bwrap");
        return bwrap_main(&argv0, &args[2..], parent_pid);
    }
    // `help bwrap`: bwrap mode's own help, the text `bwrap --help`
    // prints (clap knows bwrap mode only as a stub); every other
    // `help SUB` is clap's, the same as `SUB --help`.
    if args.get(1).is_some_and(|a| a == "help") && args.get(2).is_some_and(|a| a == "bwrap") {
        let mut argv0 = args[0].clone();
        argv0.push(" bwrap");
        return bwrap_main(&argv0, &[std::ffi::OsString::from("--help")], parent_pid);
    }
    // No subcommand but a bubblewrap option first: bwrap mode too (a
    // bubblewrap program that re-runs itself through /proc/self/exe).
    if args.get(1).is_some_and(|a| cli::bwrap::is_bwrap_option(a)) {
        return bwrap_main(&args[0], &args[1..], parent_pid);
    }

    let result = cli::parse(args).and_then(|invocation| match invocation {
        cli::Invocation::Print(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            Ok(0)
        }
        cli::Invocation::Run(spec) => {
            let launch = match spec.isolation {
                plan::Isolation::Namespaces => run::launch,
                plan::Isolation::Landlock => landlock_mode::launch,
                plan::Isolation::Auto => landlock_mode::launch_auto,
            };
            launch(*spec, parent_pid, cli::render::run_text).map_err(|e| e.context("run"))
        }
        cli::Invocation::Relay(spec) => {
            relay::run(spec, parent_pid).map_err(|e| e.context("relay"))
        }
        cli::Invocation::Connect(spec) => connect::run(&spec),
        // check's own failures (--install refused, say) exit 1, like "run
        // does not work here"; 2 stays for usage errors.
        cli::Invocation::Check(spec) => check::run(&spec)
            .map_err(|e| exit::Exit::error(1, format!("check: {}", exit::describe_plain(&e)))),
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// bwrap mode (SPEC §5): bubblewrap's command line on the same engine, with
/// its conventions: messages start with `bwrap: ` (after `<3>` with
/// `--level-prefix`), and every failure of our own exits 1, while the
/// command's status passes through.
#[cfg_attr(test, allow(dead_code))]
fn bwrap_main(argv0: &OsStr, args: &[std::ffi::OsString], parent_pid: i32) -> i32 {
    let parsed = cli::bwrap::parse(argv0, args);
    let result = parsed.request.and_then(|request| match request {
        cli::bwrap::Request::Print(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            Ok(0)
        }
        cli::bwrap::Request::Usage(text) => {
            let _ = std::io::stderr().write_all(text.as_bytes());
            Ok(cli::bwrap::FAILURE)
        }
        cli::bwrap::Request::Run(spec) => run::launch(*spec, parent_pid, cli::render::bwrap_text),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            let level = if parsed.level_prefix { "<3>" } else { "" };
            let _ = writeln!(
                std::io::stderr(),
                "{level}bwrap: {}",
                cli::render::bwrap_line(&e)
            );
            cli::bwrap::FAILURE
        }
    }
}

#[cfg_attr(test, allow(dead_code))]
/// Prints the one diagnostic line and returns the exit code for it.
fn fail(err: &anyhow::Error) -> i32 {
    let _ = writeln!(std::io::stderr(), "{NAME}: {}", cli::render::run_line(err));
    cli::render::run_code(err)
}
