//! Command-line parsing: the subcommands and their clap definitions. The
//! two front-ends of the sandbox each have their own (`run.rs`, `bwrap/`)
//! holding one option table; `options.rs` has the walk they share and the
//! meaning of their common options, `render.rs` their words for a failure.
//!
//! Runs in the launcher, before any namespace exists.

pub mod bwrap;
mod options;
pub mod render;
mod run;
pub mod usual;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgAction, Command};

use crate::check::CheckSpec;
use crate::connect::ConnectSpec;
use crate::exit::Exit;
use crate::plan::FrontEnd;
use crate::plan::RunSpec;
use crate::relay::RelaySpec;
use run::run_command;

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<RunSpec>),
    Relay(RelaySpec),
    Connect(ConnectSpec),
    Check(CheckSpec),
    /// `--help` / `--version`: text for stdout, exit 0.
    Print(String),
}

fn relay_command() -> Command {
    Command::new("relay")
        .about("Listen on a new unix socket and forward each connection to HOST:PORT")
        .override_usage("srt-launcher relay [--ready-fd N] UNIX_SOCKET HOST:PORT")
        .arg(
            Arg::new("ready-fd")
                .long("ready-fd")
                .value_name("N")
                .help("Write one byte to descriptor N once listening, then close it")
                .value_parser(clap::value_parser!(i32).range(0..)),
        )
        .arg(
            Arg::new("socket")
                .value_name("UNIX_SOCKET")
                .required(true)
                .value_parser(clap::builder::OsStringValueParser::new()),
        )
        .arg(
            Arg::new("target")
                .value_name("HOST:PORT")
                .required(true)
                .help("IPv4:PORT or [IPv6]:PORT (no host names)"),
        )
}

fn connect_command() -> Command {
    Command::new("connect")
        .about("Tunnel stdin/stdout to HOST:PORT through an HTTP CONNECT proxy (ssh ProxyCommand)")
        .override_usage("srt-launcher connect HOST PORT --proxy HOST:PORT [--proxy-auth USER:PASS]")
        .arg(Arg::new("host").value_name("HOST").required(true))
        .arg(Arg::new("port").value_name("PORT").required(true))
        .arg(
            Arg::new("proxy")
                .long("proxy")
                .value_name("HOST:PORT")
                .required(true)
                .help("The proxy: IPv4:PORT or [IPv6]:PORT"),
        )
        .arg(
            Arg::new("proxy-auth")
                .long("proxy-auth")
                .value_name("USER:PASS")
                .help("Send Proxy-Authorization: Basic base64(USER:PASS)"),
        )
}

fn check_command() -> Command {
    Command::new("check")
        .about("Tell whether `run` can work here, and if not, why and how to fix it")
        .override_usage("srt-launcher check [--json] | check --apparmor-profile [--install]")
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .conflicts_with("apparmor-profile")
                .help("One JSON object (schema srt-launcher-check/1, see the README)"),
        )
        .arg(
            Arg::new("apparmor-profile")
                .long("apparmor-profile")
                .action(ArgAction::SetTrue)
                .help("Print an AppArmor profile letting this binary create user namespaces"),
        )
        .arg(
            Arg::new("install")
                .long("install")
                .action(ArgAction::SetTrue)
                .requires("apparmor-profile")
                .help("With --apparmor-profile, as root: write it to /etc/apparmor.d and load it"),
        )
}

/// `--version`: the crate version, the hash of the sources it was built
/// from (see build.rs) and the target, so a vendored binary names its source.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (source ",
    env!("SRT_LAUNCHER_SOURCE_HASH"),
    ", ",
    env!("SRT_LAUNCHER_TARGET"),
    ")"
);

fn top_command() -> Command {
    Command::new("srt-launcher")
        .version(VERSION)
        .about("One static binary that puts a Linux sandbox around a command")
        .subcommand_required(true)
        .subcommand(run_command())
        .subcommand(relay_command())
        .subcommand(connect_command())
        .subcommand(check_command())
        // Listed for --help only: bwrap mode's arguments never reach clap
        // (main.rs dispatches them first).
        .subcommand(
            Command::new("bwrap")
                .about("bubblewrap 0.12's command line on the same sandbox (see `bwrap --help`)")
                .override_usage("srt-launcher bwrap [BWRAP OPTIONS] [--] COMMAND [ARG...]"),
        )
}

/// The plan `run` makes of the SDK's usual sandbox (see `usual.rs`),
/// around a placeholder command: what `check` rehearses.
pub fn usual_plan() -> anyhow::Result<RunSpec> {
    let words: Vec<OsString> = usual::USUAL_SANDBOX
        .into_iter()
        .chain(["--", "true"])
        .map(OsString::from)
        .collect();
    match run::parse(&words) {
        Ok(run::Parsed::Run(spec)) => Ok(*spec),
        Ok(run::Parsed::Help(_)) => anyhow::bail!("the usual sandbox asks for help"),
        Err(u) => Err(render::usage(FrontEnd::Run, &u)),
    }
}

/// Parses the launcher's arguments (argv[0] included).
pub fn parse(args: Vec<OsString>) -> anyhow::Result<Invocation> {
    if args.get(1).is_some_and(|a| a == "run") {
        // The hot path (hosts spawn `run` thousands of times a day): one
        // walk over the words, no clap.
        let spec = match run::parse(&args[2..]) {
            Ok(run::Parsed::Run(spec)) => spec,
            Ok(run::Parsed::Help(text)) => return Ok(Invocation::Print(text)),
            Err(u) => return Err(render::usage(FrontEnd::Run, &u)),
        };
        spec.validate()
            .map_err(|e| render::plan(FrontEnd::Run, &e))?;
        return Ok(Invocation::Run(spec));
    }
    let matches = match top_command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return clap_outcome(e),
    };
    match matches.subcommand() {
        Some(("relay", m)) => {
            let target = m.get_one::<String>("target").expect("required");
            Ok(Invocation::Relay(RelaySpec {
                ready_fd: m.get_one::<i32>("ready-fd").copied(),
                socket: PathBuf::from(m.get_one::<OsString>("socket").expect("required")),
                target: crate::relay::parse_target(target).context("relay")?,
            }))
        }
        Some(("connect", m)) => {
            let get = |id: &str| m.get_one::<String>(id).map(String::as_str);
            Ok(Invocation::Connect(crate::connect::parse(
                get("host").expect("required"),
                get("port").expect("required"),
                get("proxy").expect("required"),
                get("proxy-auth"),
            )?))
        }
        Some(("check", m)) => Ok(Invocation::Check(CheckSpec {
            json: m.get_flag("json"),
            apparmor_profile: m.get_flag("apparmor-profile"),
            install: m.get_flag("install"),
        })),
        _ => Err(Exit::usage("missing subcommand (see --help)")),
    }
}

/// Help and version are successes for stdout; every other clap error is a
/// usage error reduced to its one-line summary.
fn clap_outcome(err: clap::Error) -> anyhow::Result<Invocation> {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            Ok(Invocation::Print(err.render().to_string()))
        }
        _ => {
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            Err(Exit::usage(format!("{first} (see --help)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{EnvOp, MountOp};

    fn parse_run(words: &[&str]) -> anyhow::Result<RunSpec> {
        let mut args: Vec<OsString> = vec!["srt-launcher".into(), "run".into()];
        args.extend(words.iter().map(OsString::from));
        match parse(args)? {
            Invocation::Run(spec) => Ok(*spec),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn mount_options_keep_argv_order_across_kinds() {
        let spec = parse_run(&[
            "--proc",
            "/proc",
            "--ro-bind",
            "/",
            "/",
            "--tmpfs",
            "/tmp",
            "--bind",
            "/a",
            "/b",
            "--dev",
            "/dev",
            "--ro-bind",
            "/dev/null",
            "/etc/x",
            "--host-proc",
            "/hp",
            "--",
            "true",
        ])
        .unwrap();
        let names: Vec<&str> = spec.mounts.iter().map(|m| m.origin.option).collect();
        assert_eq!(
            names,
            [
                "--proc",
                "--ro-bind",
                "--tmpfs",
                "--bind",
                "--dev",
                "--ro-bind",
                "--host-proc"
            ]
        );
        assert_eq!(spec.mounts[3].origin.index, 8);
        assert_eq!(
            spec.mounts[3].op,
            MountOp::Bind {
                src: "/a".into(),
                dst: "/b".into(),
                read_only: false,
                if_exists: false,
            }
        );
        assert_eq!(spec.command, ["true"]);
    }

    #[test]
    fn repeated_same_destination_is_kept_twice() {
        let spec = parse_run(&[
            "--tmpfs",
            "/t",
            "--ro-bind",
            "/",
            "/t",
            "--tmpfs",
            "/t",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(spec.mounts.len(), 3);
        assert_eq!(
            spec.mounts[2].op,
            MountOp::Tmpfs {
                dst: "/t".into(),
                mode: None,
                size: None
            }
        );
    }

    #[test]
    fn flags_and_setenv_parse() {
        let spec = parse_run(&[
            "--unshare-net",
            "--setenv",
            "A",
            "1",
            "--seccomp-unix-block",
            "--disable-userns",
            "--setenv",
            "A",
            "--2",
            "--",
            "env",
            "--not-ours",
        ])
        .unwrap();
        assert!(spec.namespaces.net && spec.seccomp_unix_block && !spec.namespaces.user);
        assert!(spec.disable_userns);
        assert!(!parse_run(&["--", "true"]).unwrap().disable_userns);
        // Environment edits keep argv order; no --clearenv, no Clear.
        let env = parse_run(&[
            "--setenv",
            "A",
            "1",
            "--clearenv",
            "--unsetenv",
            "B",
            "--setenv",
            "C",
            "2",
            "--",
            "x",
        ])
        .unwrap()
        .env;
        assert_eq!(
            env,
            [
                EnvOp::Set("A".into(), "1".into()),
                EnvOp::Clear,
                EnvOp::Unset("B".into()),
                EnvOp::Set("C".into(), "2".into()),
            ]
        );
        assert!(
            parse_run(&["--setenv", "A", "1", "--", "x"])
                .unwrap()
                .env
                .len()
                == 1
        );
        assert_eq!(
            spec.env,
            [
                EnvOp::Set("A".into(), "1".into()),
                EnvOp::Set("A".into(), "--2".into())
            ]
        );
        assert_eq!(spec.command, ["env", "--not-ours"]);
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            &["--bogus", "--", "x"][..],
            &["--bind", "/a"][..],
            &["--tmpfs", "/t"][..],
            &["--", ""][..][..0],
            &["--args", "notanumber", "--", "x"][..],
            &["--args", "-1", "--", "x"][..],
        ] {
            let err = parse_run(bad).unwrap_err();
            assert_eq!(crate::cli::render::run_code(&err), 2, "{bad:?}: {err:#}");
            assert!(!format!("{err:#}").contains('\n'), "{bad:?}");
        }
    }

    #[test]
    fn relays_parse_in_order_and_bad_ports_are_usage_errors() {
        let spec = parse_run(&[
            "--unshare-net",
            "--relay",
            "3128",
            "/a.sock",
            "--relay",
            "1080",
            "/b.sock",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(
            spec.relays.iter().map(|r| r.port).collect::<Vec<_>>(),
            [3128, 1080]
        );
        for bad in ["0", "65536", "http", "-1"] {
            let err = parse_run(&["--unshare-net", "--relay", bad, "/s", "--", "x"]).unwrap_err();
            assert_eq!(crate::cli::render::run_code(&err), 2, "{bad}");
        }
    }

    #[test]
    fn args_after_double_dash_are_not_expanded() {
        let spec = parse_run(&["--", "echo", "--args", "99"]).unwrap();
        assert_eq!(spec.command, ["echo", "--args", "99"]);
    }

    #[test]
    fn setenv_value_named_args_is_a_value() {
        let spec = parse_run(&["--setenv", "K", "--args", "--", "x"]).unwrap();
        assert_eq!(spec.env, [EnvOp::Set("K".into(), "--args".into())]);
    }

    #[test]
    fn help_and_version_print() {
        let out = parse(vec!["srt-launcher".into(), "--version".into()]).unwrap();
        assert!(matches!(out, Invocation::Print(s) if s.contains(env!("CARGO_PKG_VERSION"))));
        let help = parse(vec!["srt-launcher".into(), "run".into(), "--help".into()]).unwrap();
        assert!(matches!(help, Invocation::Print(s) if s.contains("--ro-bind")));
        let top = parse(vec!["srt-launcher".into(), "--help".into()]).unwrap();
        assert!(matches!(top, Invocation::Print(s) if s.contains("bwrap    bubblewrap 0.12")));
    }
}
