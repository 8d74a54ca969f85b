//! `run`'s command line: its option table (name, values, help, builder),
//! its grammar (the command comes after `--`; `--args` may nest), its
//! defaults (those of `crate::plan`), and its help text, which clap renders
//! from the same table. The walk itself is `options.rs`'s, shared with
//! bwrap mode.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::options::{self, Draft, Grammar, Opt, Usage, Walked};
use crate::plan::{FrontEnd, Namespaces, Process, RelayOp, RunSpec, UnixGrant};

/// What `run`'s options set besides steps and environment edits.
#[derive(Default)]
pub struct Settings {
    unshare_net: bool,
    unshare_user: bool,
    unshare_ipc: bool,
    unshare_uts: bool,
    disable_userns: bool,
    seccomp_unix_block: bool,
    clearenv: bool,
    relays: Vec<RelayOp>,
    exposes: Vec<u16>,
    unix_grants: Vec<UnixGrant>,
    isolation: Option<crate::plan::Isolation>,
    chdir: Option<PathBuf>,
    hostname: Option<OsString>,
    json_status_fd: Option<i32>,
}

/// A flag (the one `pick` names): given twice is a usage error.
fn flag(d: &mut Draft<Settings>, pick: fn(&mut Settings) -> &mut bool) -> Result<(), Usage> {
    let option = d.option();
    if std::mem::replace(pick(&mut d.settings), true) {
        return Err(Usage::Repeated(option));
    }
    Ok(())
}

/// A single value: the first one given is kept.
fn first<T>(slot: &mut Option<T>, value: T) -> Result<(), Usage> {
    if slot.is_none() {
        *slot = Some(value);
    }
    Ok(())
}

/// A TCP port, 1-65535, for `option`.
fn port(option: &str, value: &OsString) -> Result<u16, Usage> {
    value
        .to_str()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| Usage::Said(format!("{option}: invalid port {value:?} (1-65535)")))
}

fn relay(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let port = port("--relay", &v[0])?;
    d.settings.relays.push(RelayOp {
        port,
        socket: PathBuf::from(&v[1]),
    });
    Ok(())
}

/// `--expose PORT` (SPEC §3.4), repeatable.
fn expose(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    d.settings.exposes.push(port("--expose", &v[0])?);
    Ok(())
}

/// `--isolation namespaces|landlock|auto` (SPEC §2.8).
fn isolation(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    use crate::plan::Isolation;
    let mode = match v[0].to_str() {
        Some("namespaces") => Isolation::Namespaces,
        Some("landlock") => Isolation::Landlock,
        Some("auto") => Isolation::Auto,
        _ => {
            return Err(Usage::Said(format!(
                "--isolation: {:?} is not one of namespaces, landlock, auto",
                v[0]
            )));
        }
    };
    first(&mut d.settings.isolation, mode)
}

/// `--allow-unix` and `--allow-unix-unsafe` (SPEC §2.9).
fn allow_unix(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let escape_ok = d.option() == "--allow-unix-unsafe";
    d.settings.unix_grants.push(UnixGrant {
        path: PathBuf::from(&v[0]),
        escape_ok,
    });
    Ok(())
}

fn json_status_fd(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    first(&mut d.settings.json_status_fd, fd)
}

/// `--mask` and `--deny-write` (SPEC §2.7).
fn deny(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let mask = d.option() == "--mask";
    d.push(crate::plan::MountOp::Deny {
        path: PathBuf::from(&v[0]),
        mask,
    });
    Ok(())
}

fn host_proc(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    d.push(crate::plan::MountOp::HostProc {
        dst: PathBuf::from(&v[0]),
    });
    Ok(())
}

/// `run`'s options, in the order `--help` lists them.
const RUN_OPTIONS: &[Opt<Settings>] = &[
    Opt {
        name: "--unshare-net",
        values: &[],
        help: "New network namespace with only loopback (up)",
        build: |d, _| flag(d, |s| &mut s.unshare_net),
    },
    Opt {
        name: "--unshare-user",
        values: &[],
        help: "Take a user namespace even when running as root",
        build: |d, _| flag(d, |s| &mut s.unshare_user),
    },
    Opt {
        name: "--disable-userns",
        values: &[],
        help: "The workload cannot create user namespaces",
        build: |d, _| flag(d, |s| &mut s.disable_userns),
    },
    Opt {
        name: "--seccomp-unix-block",
        values: &[],
        help: "Block AF_UNIX sockets in the workload (EPERM)",
        build: |d, _| flag(d, |s| &mut s.seccomp_unix_block),
    },
    Opt {
        name: "--bind",
        values: &["SRC", "DST"],
        help: "Recursive read-write bind (nosuid, nodev)",
        build: options::bind,
    },
    Opt {
        name: "--dev-bind",
        values: &["SRC", "DST"],
        help: "Recursive read-write bind where device nodes work (e.g. /dev/kvm)",
        build: options::dev_bind,
    },
    Opt {
        name: "--dir",
        values: &["DST"],
        help: "Create a directory (0755) inside",
        build: options::dir,
    },
    Opt {
        name: "--symlink",
        values: &["TARGET", "DST"],
        help: "Create a symlink DST -> TARGET inside",
        build: options::symlink,
    },
    Opt {
        name: "--bind-try",
        values: &["SRC", "DST"],
        help: "Like --bind, but nothing when SRC does not exist",
        build: options::bind,
    },
    Opt {
        name: "--ro-bind-try",
        values: &["SRC", "DST"],
        help: "Like --ro-bind, but nothing when SRC does not exist",
        build: options::bind,
    },
    Opt {
        name: "--ro-bind",
        values: &["SRC", "DST"],
        help: "Recursive read-only bind (nosuid, nodev), submounts included",
        build: options::bind,
    },
    Opt {
        name: "--tmpfs",
        values: &["DST"],
        help: "Fresh tmpfs, mode 0755",
        build: options::tmpfs,
    },
    Opt {
        name: "--dev",
        values: &["DST"],
        help: "Minimal device tree",
        build: options::dev,
    },
    Opt {
        name: "--proc",
        values: &["DST"],
        help: "Fresh procfs of the sandbox's PID namespace, hardened",
        build: options::proc,
    },
    Opt {
        name: "--host-proc",
        values: &["DST"],
        help: "Recursive bind of the host's /proc (where --proc is refused)",
        build: host_proc,
    },
    Opt {
        name: "--mask",
        values: &["PATH"],
        help: "PATH can be neither read, created nor replaced inside (exists or not)",
        build: deny,
    },
    Opt {
        name: "--deny-write",
        values: &["PATH"],
        help: "PATH stays readable but can be neither written, created nor replaced",
        build: deny,
    },
    Opt {
        name: "--relay",
        values: &["PORT", "UNIX_SOCKET"],
        help: "Listen on loopback PORT in the sandbox and forward to a host unix socket (needs --unshare-net)",
        build: relay,
    },
    Opt {
        name: "--expose",
        values: &["PORT"],
        help: "Listen on the host's loopback PORT and forward to PORT inside the sandbox, for a dev server (needs --unshare-net)",
        build: expose,
    },
    Opt {
        name: "--isolation",
        values: &["MODE"],
        help: "namespaces (the default); landlock: no namespaces, Landlock and seccomp on the host's tree; auto: landlock only where namespaces are refused here",
        build: isolation,
    },
    Opt {
        name: "--allow-unix",
        values: &["PATH"],
        help: "The workload may connect to the unix socket at PATH (as it sees it), and to no other socket made outside",
        build: allow_unix,
    },
    Opt {
        name: "--allow-unix-unsafe",
        values: &["PATH"],
        help: "Like --allow-unix, also for a socket that is a way out (D-Bus, systemd, Docker, Podman, containerd)",
        build: allow_unix,
    },
    Opt {
        name: "--setenv",
        values: &["KEY", "VALUE"],
        help: "Set KEY=VALUE in the workload's environment (last one wins)",
        build: options::setenv,
    },
    Opt {
        name: "--unsetenv",
        values: &["KEY"],
        help: "Remove KEY from the workload's environment",
        build: options::unsetenv,
    },
    Opt {
        name: "--clearenv",
        values: &[],
        help: "Start the workload's environment empty (later --setenv still apply)",
        build: |d, v| {
            flag(d, |s| &mut s.clearenv)?;
            options::clearenv(d, v)
        },
    },
    Opt {
        name: "--chdir",
        values: &["DIR"],
        help: "The workload's working directory (it must exist inside)",
        build: |d, v| first(&mut d.settings.chdir, PathBuf::from(&v[0])),
    },
    Opt {
        name: "--unshare-ipc",
        values: &[],
        help: "Accepted for bwrap-style argv: run always takes a new IPC namespace",
        build: |d, _| flag(d, |s| &mut s.unshare_ipc),
    },
    Opt {
        name: "--unshare-uts",
        values: &[],
        help: "Accepted for bwrap-style argv: run always takes a new UTS namespace",
        build: |d, _| flag(d, |s| &mut s.unshare_uts),
    },
    Opt {
        name: "--json-status-fd",
        values: &["FD"],
        help: "Write {\"child-pid\": N} when the command runs, {\"exit-code\": N} when it ends",
        build: json_status_fd,
    },
    Opt {
        name: "--hostname",
        values: &["NAME"],
        help: "The sandbox's hostname (its UTS namespace is its own)",
        build: |d, v| first(&mut d.settings.hostname, v[0].clone()),
    },
    Opt {
        name: "--args",
        values: &["FD"],
        help: "Read more options from FD: NUL-terminated words, inserted here",
        build: options::handled_by_walk,
    },
];

/// `run`'s grammar: the command comes after `--`, `--args` may nest, and
/// `--name=value` works for one-value options.
const GRAMMAR: Grammar<Settings> = Grammar {
    front_end: FrontEnd::Run,
    table: RUN_OPTIONS,
    help_words: &["--help", "-h"],
    version_words: &[],
    command_at_first_word: false,
    nested_args: true,
    after_option: options::no_rule,
};

/// What a `run` command line asks for.
pub enum Parsed {
    Run(Box<RunSpec>),
    /// `--help`: the text for stdout.
    Help(String),
}

/// Parses `run`'s words (after `run`) into its plan, with `run`'s
/// defaults; the plan is not validated yet.
pub fn parse(words: &[OsString]) -> Result<Parsed, Usage> {
    let mut draft = Draft::new(Settings::default());
    let command = match options::walk(&GRAMMAR, words, &mut draft)? {
        Walked::Command(command) => command,
        Walked::NoCommand => Vec::new(),
        Walked::Help | Walked::Version => {
            return Ok(Parsed::Help(run_command().render_help().to_string()));
        }
    };
    let s = draft.settings;
    Ok(Parsed::Run(Box::new(RunSpec {
        mounts: draft.steps,
        namespaces: Namespaces {
            net: s.unshare_net,
            user: s.unshare_user,
            ..Namespaces::default()
        },
        process: Process::default(),
        disable_userns: s.disable_userns,
        seccomp_unix_block: s.seccomp_unix_block,
        unix_grants: s.unix_grants,
        isolation: s.isolation.unwrap_or_default(),
        relays: s.relays,
        exposes: s.exposes,
        env: draft.env,
        chdir: s.chdir,
        hostname: s.hostname,
        json_status_fd: s.json_status_fd,
        info_fd: None,
        refuse_symlink_destinations: false,
        command,
    })))
}

/// `run`'s clap definition, built from [`RUN_OPTIONS`]: used for its help
/// text (alone and within the top-level help), never to parse.
pub(super) fn run_command() -> Command {
    let mut cmd = Command::new("run")
        .about("Run COMMAND in a new sandbox")
        .override_usage("srt-launcher run [OPTIONS] -- COMMAND [ARG...]");
    for opt in RUN_OPTIONS {
        let long = opt.name.trim_start_matches("--");
        let mut arg = Arg::new(long).long(long).help(opt.help);
        arg = if opt.values.is_empty() {
            arg.action(ArgAction::SetTrue)
        } else {
            arg.num_args(opt.values.len())
                .value_names(opt.values)
                .action(ArgAction::Append)
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("command")
            .value_name("COMMAND")
            .num_args(1..)
            .last(true)
            .required(true),
    )
}
