//! `run`'s command line: the option table (one place knows each option's
//! arity), the clap definition built from it, the `--args FD` expansion,
//! and the rebuild of the mount and environment options in argv order.
//!
//! clap's matches keep each option's values but not their order *across*
//! options, and the mount order is the contract (a later `--ro-bind / /`
//! hides an earlier `--proc`), so the order is rebuilt from
//! `ArgMatches::indices_of`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::exit::Exit;
use crate::plan::{EnvOp, MountOp, Namespaces, Process, RelayOp, RunSpec};
use crate::sys;

/// How `run`'s mount options become a [`MountOp`].
#[derive(Clone, Copy)]
enum MountKind {
    Bind,
    RoBind,
    BindTry,
    RoBindTry,
    DevBind,
    Dir,
    Symlink,
    Tmpfs,
    Dev,
    Proc,
    HostProc,
    Mask,
    DenyWrite,
}

/// One `run` option: its name, the names of its values, its help line, and
/// for mount options how it becomes a [`MountOp`]. This table is the one
/// place that knows each option's arity; both clap and the `--args`
/// expansion read it.
struct RunOption {
    long: &'static str,
    values: &'static [&'static str],
    help: &'static str,
    mount: Option<MountKind>,
}

const RUN_OPTIONS: &[RunOption] = &[
    RunOption {
        long: "unshare-net",
        values: &[],
        help: "New network namespace with only loopback (up)",
        mount: None,
    },
    RunOption {
        long: "unshare-user",
        values: &[],
        help: "Take a user namespace even when running as root",
        mount: None,
    },
    RunOption {
        long: "disable-userns",
        values: &[],
        help: "The workload cannot create user namespaces",
        mount: None,
    },
    RunOption {
        long: "seccomp-unix-block",
        values: &[],
        help: "Block AF_UNIX sockets in the workload (EPERM)",
        mount: None,
    },
    RunOption {
        long: "bind",
        values: &["SRC", "DST"],
        help: "Recursive read-write bind (nosuid, nodev)",
        mount: Some(MountKind::Bind),
    },
    RunOption {
        long: "dev-bind",
        values: &["SRC", "DST"],
        help: "Recursive read-write bind where device nodes work (e.g. /dev/kvm)",
        mount: Some(MountKind::DevBind),
    },
    RunOption {
        long: "dir",
        values: &["DST"],
        help: "Create a directory (0755) inside",
        mount: Some(MountKind::Dir),
    },
    RunOption {
        long: "symlink",
        values: &["TARGET", "DST"],
        help: "Create a symlink DST -> TARGET inside",
        mount: Some(MountKind::Symlink),
    },
    RunOption {
        long: "bind-try",
        values: &["SRC", "DST"],
        help: "Like --bind, but nothing when SRC does not exist",
        mount: Some(MountKind::BindTry),
    },
    RunOption {
        long: "ro-bind-try",
        values: &["SRC", "DST"],
        help: "Like --ro-bind, but nothing when SRC does not exist",
        mount: Some(MountKind::RoBindTry),
    },
    RunOption {
        long: "ro-bind",
        values: &["SRC", "DST"],
        help: "Recursive read-only bind (nosuid, nodev), submounts included",
        mount: Some(MountKind::RoBind),
    },
    RunOption {
        long: "tmpfs",
        values: &["DST"],
        help: "Fresh tmpfs, mode 0755",
        mount: Some(MountKind::Tmpfs),
    },
    RunOption {
        long: "dev",
        values: &["DST"],
        help: "Minimal device tree",
        mount: Some(MountKind::Dev),
    },
    RunOption {
        long: "proc",
        values: &["DST"],
        help: "Fresh procfs of the sandbox's PID namespace, hardened",
        mount: Some(MountKind::Proc),
    },
    RunOption {
        long: "host-proc",
        values: &["DST"],
        help: "Recursive bind of the host's /proc (where --proc is refused)",
        mount: Some(MountKind::HostProc),
    },
    RunOption {
        long: "mask",
        values: &["PATH"],
        help: "PATH can be neither read, created nor replaced inside (exists or not)",
        mount: Some(MountKind::Mask),
    },
    RunOption {
        long: "deny-write",
        values: &["PATH"],
        help: "PATH stays readable but can be neither written, created nor replaced",
        mount: Some(MountKind::DenyWrite),
    },
    RunOption {
        long: "relay",
        values: &["PORT", "UNIX_SOCKET"],
        help: "Listen on loopback PORT in the sandbox and forward to a host unix socket (needs --unshare-net)",
        mount: None,
    },
    RunOption {
        long: "setenv",
        values: &["KEY", "VALUE"],
        help: "Set KEY=VALUE in the workload's environment (last one wins)",
        mount: None,
    },
    RunOption {
        long: "unsetenv",
        values: &["KEY"],
        help: "Remove KEY from the workload's environment",
        mount: None,
    },
    RunOption {
        long: "clearenv",
        values: &[],
        help: "Start the workload's environment empty (later --setenv still apply)",
        mount: None,
    },
    RunOption {
        long: "chdir",
        values: &["DIR"],
        help: "The workload's working directory (it must exist inside)",
        mount: None,
    },
    RunOption {
        long: "unshare-ipc",
        values: &[],
        help: "Accepted for bwrap-style argv: run always takes a new IPC namespace",
        mount: None,
    },
    RunOption {
        long: "unshare-uts",
        values: &[],
        help: "Accepted for bwrap-style argv: run always takes a new UTS namespace",
        mount: None,
    },
    RunOption {
        long: "json-status-fd",
        values: &["FD"],
        help: "Write {\"child-pid\": N} when the command runs, {\"exit-code\": N} when it ends",
        mount: None,
    },
    RunOption {
        long: "hostname",
        values: &["NAME"],
        help: "The sandbox's hostname (its UTS namespace is its own)",
        mount: None,
    },
    RunOption {
        long: "args",
        values: &["FD"],
        help: "Read more options from FD: NUL-terminated words, inserted here",
        mount: None,
    },
];

/// `run`'s clap definition, built from [`RUN_OPTIONS`].
pub(super) fn run_command() -> Command {
    let mut cmd = Command::new("run")
        .about("Run COMMAND in a new sandbox")
        .override_usage("srt-launcher run [OPTIONS] -- COMMAND [ARG...]");
    for opt in RUN_OPTIONS {
        let mut arg = Arg::new(opt.long).long(opt.long).help(opt.help);
        arg = if opt.values.is_empty() {
            arg.action(ArgAction::SetTrue)
        } else {
            arg.num_args(opt.values.len())
                .value_names(opt.values)
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .value_parser(clap::builder::OsStringValueParser::new())
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("command")
            .value_name("COMMAND")
            .num_args(1..)
            .last(true)
            .required(true)
            .value_parser(clap::builder::OsStringValueParser::new()),
    )
}

/// The [`RunSpec`] of parsed `run` matches, with the mount and
/// environment options back in argv order.
pub(super) fn run_spec(m: &ArgMatches) -> anyhow::Result<RunSpec> {
    let values = |id: &str| -> Vec<OsString> {
        m.get_many::<OsString>(id)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    };
    let mut ordered: Vec<(usize, MountOp)> = Vec::new();
    for opt in RUN_OPTIONS {
        let Some(kind) = opt.mount else { continue };
        let (Some(indices), vals) = (m.indices_of(opt.long), values(opt.long)) else {
            continue;
        };
        let indices: Vec<usize> = indices.collect();
        let arity = opt.values.len();
        for (idx, group) in indices.chunks(arity).zip(vals.chunks(arity)) {
            ordered.push((idx[0], mount_op(kind, group)));
        }
    }
    // Indices are argv positions: sorting by them restores argv order
    // exactly (they are unique, so stability does not matter).
    ordered.sort_by_key(|(idx, _)| *idx);
    // --setenv, --unsetenv and --clearenv apply in argv order too.
    let mut env: Vec<(usize, EnvOp)> = Vec::new();
    if let Some(indices) = m.indices_of("setenv") {
        let kv = values("setenv");
        for (idx, pair) in indices.step_by(2).zip(kv.chunks(2)) {
            env.push((idx, EnvOp::Set(pair[0].clone(), pair[1].clone())));
        }
    }
    if let Some(indices) = m.indices_of("unsetenv") {
        for (idx, key) in indices.zip(values("unsetenv")) {
            env.push((idx, EnvOp::Unset(key)));
        }
    }
    // (A flag that is absent still has an index, its default's.)
    if m.get_flag("clearenv")
        && let Some(indices) = m.indices_of("clearenv")
    {
        env.extend(indices.map(|idx| (idx, EnvOp::Clear)));
    }
    env.sort_by_key(|(idx, _)| *idx);
    let relays = values("relay")
        .chunks(2)
        .map(|pair| {
            let port = pair[0]
                .to_str()
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    Exit::usage(format!("--relay: invalid port {:?} (1-65535)", pair[0]))
                })?;
            Ok(RelayOp {
                port,
                socket: PathBuf::from(&pair[1]),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(RunSpec {
        mounts: ordered.into_iter().map(|(_, op)| op).collect(),
        namespaces: Namespaces {
            net: m.get_flag("unshare-net"),
            user: m.get_flag("unshare-user"),
            ..Namespaces::default()
        },
        process: Process::default(),
        disable_userns: m.get_flag("disable-userns"),
        seccomp_unix_block: m.get_flag("seccomp-unix-block"),
        relays,
        env: env.into_iter().map(|(_, op)| op).collect(),
        chdir: m.get_one::<OsString>("chdir").map(PathBuf::from),
        hostname: m.get_one::<OsString>("hostname").cloned(),
        json_status_fd: m
            .get_one::<OsString>("json-status-fd")
            .map(|v| {
                v.to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                    .filter(|fd| *fd >= 0)
                    .ok_or_else(|| {
                        Exit::usage(format!("--json-status-fd: invalid descriptor {v:?}"))
                    })
            })
            .transpose()?,
        info_fd: None,
        refuse_symlink_destinations: false,
        command: values("command"),
    })
}

/// One mount option's values as a plan step.
fn mount_op(kind: MountKind, values: &[OsString]) -> MountOp {
    let path = |i: usize| PathBuf::from(&values[i]);
    match kind {
        MountKind::Bind | MountKind::RoBind | MountKind::BindTry | MountKind::RoBindTry => {
            MountOp::Bind {
                src: path(0),
                dst: path(1),
                read_only: matches!(kind, MountKind::RoBind | MountKind::RoBindTry),
                if_exists: matches!(kind, MountKind::BindTry | MountKind::RoBindTry),
            }
        }
        MountKind::DevBind => MountOp::DevBind {
            src: path(0),
            dst: path(1),
            if_exists: false,
        },
        MountKind::Dir => MountOp::Dir {
            dst: path(0),
            mode: None,
        },
        MountKind::Symlink => MountOp::Symlink {
            target: path(0),
            dst: path(1),
        },
        MountKind::Tmpfs => MountOp::Tmpfs {
            dst: path(0),
            mode: None,
            size: None,
        },
        MountKind::Dev => MountOp::Dev { dst: path(0) },
        MountKind::Proc => MountOp::Proc { dst: path(0) },
        MountKind::HostProc => MountOp::HostProc { dst: path(0) },
        MountKind::Mask | MountKind::DenyWrite => MountOp::Deny {
            path: path(0),
            mask: matches!(kind, MountKind::Mask),
        },
    }
}

/// Replaces every `--args FD` before `--` with the words read from FD, in
/// place, as if typed there. Other options' values are copied verbatim (so
/// `--setenv K --args` sets K to "--args"), which is why the arity table is
/// consulted. Runs in O(total words): hosts send 100,000-word profiles.
pub(super) fn expand_args_fds(words: &[OsString]) -> anyhow::Result<Vec<OsString>> {
    let mut pending: VecDeque<OsString> = words.iter().cloned().collect();
    let mut out = Vec::with_capacity(words.len());
    while let Some(word) = pending.pop_front() {
        if word == "--" {
            out.push(word);
            out.extend(pending.drain(..));
            break;
        }
        let fd_word = if word == "--args" {
            match pending.pop_front() {
                Some(fd) => fd,
                None => return Err(Exit::usage("--args: missing file descriptor")),
            }
        } else if let Some(fd) = word.as_bytes().strip_prefix(b"--args=") {
            OsStr::from_bytes(fd).to_os_string()
        } else {
            let arity = word
                .to_str()
                .and_then(|w| w.strip_prefix("--"))
                .and_then(|name| RUN_OPTIONS.iter().find(|o| o.long == name))
                .map_or(0, |o| o.values.len());
            out.push(word);
            for _ in 0..arity {
                match pending.pop_front() {
                    Some(value) => out.push(value),
                    None => break,
                }
            }
            continue;
        };
        let inserted = read_args_fd(&fd_word)?;
        for w in inserted.into_iter().rev() {
            pending.push_front(w);
        }
    }
    Ok(out)
}

/// Reads the NUL-terminated words of one `--args FD`, then closes FD so the
/// workload never inherits it. Descriptors 0–2 are replaced by /dev/null
/// instead of closed, so a later open cannot land on a standard slot.
fn read_args_fd(fd_word: &OsStr) -> anyhow::Result<Vec<OsString>> {
    let fd: i32 = fd_word
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| Exit::usage(format!("--args: invalid file descriptor {fd_word:?}")))?;
    read_args_words(fd)
}

/// The words of `--args FD` (both front-ends): read to EOF, FD closed.
pub(super) fn read_args_words(fd: i32) -> anyhow::Result<Vec<OsString>> {
    let data = sys::read_to_end(fd).map_err(|e| Exit::usage(format!("--args {fd}: {e}")))?;
    if fd <= 2 {
        sys::replace_with_dev_null(fd).with_context(|| format!("--args {fd}"))?;
    } else {
        sys::close(fd).with_context(|| format!("--args {fd}"))?;
    }
    split_nul_words(&data).map_err(|msg| Exit::usage(format!("--args {fd}: {msg}")))
}

/// NUL-terminated words; an unterminated last word is an error, so a
/// truncated profile is never half-applied.
pub(super) fn split_nul_words(data: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = data.strip_suffix(b"\0") else {
        return Err("the last word is not NUL-terminated");
    };
    Ok(body
        .split(|b| *b == 0)
        .map(|w| OsStr::from_bytes(w).to_os_string())
        .collect())
}
