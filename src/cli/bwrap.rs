//! bwrap mode's command line (SPEC §5): bubblewrap 0.12's options, walked
//! in order into the same [`RunSpec`] `run` builds, with bubblewrap's
//! defaults (share every namespace not asked for, no PID 1 reaper without
//! a PID namespace, no die-with-parent, no new session, a root caller's
//! capabilities kept).
//!
//! One walker reads the words left to right, as bubblewrap does: an option
//! consumes its values, `--perms`/`--size` modify the next operation,
//! `--args FD` splices words in place (not from inside another `--args`),
//! and the first word that is not an option starts the command. Every
//! failure is an [`Exit`] with code 1, as all of bubblewrap's own failures
//! are; the caller prints it after `bwrap: `.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::exit::{Exit, Fact};
use crate::plan::{Capabilities, EnvOp, MountOp, Namespaces, OverlayWrites, Process, RunSpec};

/// bubblewrap's code for every failure of its own.
pub const FAILURE: i32 = 1;

/// The version bwrap mode implements, first on `--version`'s line where
/// scripts that check bubblewrap's version look for it.
pub const BWRAP_VERSION: &str = "0.12.0";

/// What a bwrap command line asks for.
#[derive(Debug)]
pub enum Request {
    Run(Box<RunSpec>),
    /// `--help` / `--version`: text for stdout, exit 0.
    Print(String),
    /// No command: the help text for stderr, exit 1.
    Usage(String),
}

/// The outcome of parsing, with `--level-prefix` known even when parsing
/// failed after it (the failure's line carries the prefix too).
pub struct Parsed {
    pub request: anyhow::Result<Request>,
    pub level_prefix: bool,
}

/// The line bwrap mode prints for a failure (after `bwrap: `): bubblewrap's
/// phrase where its callers look for one, else the engine's line, without
/// Rust's " (os error N)" suffixes, which bubblewrap never prints.
pub fn render(err: &anyhow::Error) -> String {
    match crate::exit::exit_of(err).and_then(|e| e.fact.as_ref()) {
        Some(Fact::Source { path, errno }) => format!(
            "Can't find source path {}: {}",
            path.display(),
            strip_os_error(&std::io::Error::from_raw_os_error(*errno).to_string())
        ),
        None => strip_os_error(&crate::exit::describe(err)),
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

/// A bwrap-mode failure: one line, exit 1.
pub fn failure(message: impl Into<String>) -> anyhow::Error {
    Exit::error(FAILURE, message)
}

/// The settings bubblewrap keeps outside its list of operations, collected
/// while walking and turned into the plan at the end.
#[derive(Default)]
struct Options {
    unshare_user: bool,
    unshare_user_try: bool,
    unshare_pid: bool,
    unshare_net: bool,
    unshare_ipc: bool,
    unshare_uts: bool,
    unshare_cgroup: bool,
    unshare_cgroup_try: bool,
    disable_userns: bool,
    assert_userns_disabled: bool,
    refuse_setuid_files: bool,
    new_session: bool,
    die_with_parent: bool,
    as_pid_1: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    hostname: Option<OsString>,
    chdir: Option<PathBuf>,
    argv0: Option<OsString>,
    info_fd: Option<i32>,
    json_status_fd: Option<i32>,
    block_fd: Option<i32>,
    sync_fd: Option<i32>,
    lock_files: Vec<PathBuf>,
    userns_fd: Option<i32>,
    userns2_fd: Option<i32>,
    userns_block_fd: Option<i32>,
    pidns_fd: Option<i32>,
    /// `--seccomp`'s program (one, replaced when repeated) and
    /// `--add-seccomp-fd`'s (in order); the two do not mix.
    seccomp: Option<Vec<u8>>,
    added_seccomp: Vec<Vec<u8>>,
    /// `--overlay-src` layers waiting for their overlay.
    overlay_sources: Vec<PathBuf>,
    /// `--perms` / `--size` waiting for the operation they modify.
    next_perms: Option<u32>,
    next_size: Option<u64>,
    /// `--cap-add`/`--cap-drop` seen, and the set they leave.
    caps_requested: Option<u64>,
    mounts: Vec<MountOp>,
    env: Vec<EnvOp>,
}

/// The walker's state: the words still to read and whether they came from
/// an `--args` file (where `--args` itself is refused, as in bubblewrap).
struct Words {
    pending: VecDeque<(OsString, bool)>,
}

impl Words {
    /// The values of `option`, or bubblewrap's "takes N arguments" error.
    fn values(&mut self, option: &str, count: usize) -> anyhow::Result<Vec<OsString>> {
        if self.pending.len() < count {
            let what = match count {
                1 => "an argument",
                2 => "two arguments",
                _ => "three arguments",
            };
            return Err(failure(format!("{option} takes {what}")));
        }
        Ok(self.pending.drain(..count).map(|(w, _)| w).collect())
    }

    fn value(&mut self, option: &str) -> anyhow::Result<OsString> {
        Ok(self.values(option, 1)?.remove(0))
    }
}

/// Parses bwrap's arguments (after argv[0], which `--help` names).
pub fn parse(argv0: &OsStr, args: &[OsString]) -> Parsed {
    let mut level_prefix = false;
    let request = walk(argv0, args, &mut level_prefix);
    Parsed {
        request,
        level_prefix,
    }
}

fn walk(argv0: &OsStr, args: &[OsString], level_prefix: &mut bool) -> anyhow::Result<Request> {
    // bubblewrap answers a lone --version before anything else.
    if args.len() == 1 && args[0] == "--version" {
        return Ok(Request::Print(version_text()));
    }
    if args.is_empty() {
        return Ok(Request::Usage(help_text(argv0)));
    }
    let mut words = Words {
        pending: args.iter().map(|w| (w.clone(), false)).collect(),
    };
    let mut opts = Options {
        caps_requested: None,
        ..Options::default()
    };
    let mut command: Vec<OsString> = Vec::new();
    while let Some((word, from_args_file)) = words.pending.pop_front() {
        let Some(option) = word.to_str().filter(|w| w.starts_with('-')) else {
            // The first non-option word starts the command.
            command.push(word);
            command.extend(words.pending.drain(..).map(|(w, _)| w));
            break;
        };
        match option {
            "--" => {
                command.extend(words.pending.drain(..).map(|(w, _)| w));
                break;
            }
            "--help" => return Ok(Request::Print(help_text(argv0))),
            "--version" => return Ok(Request::Print(version_text())),
            "--args" => {
                if from_args_file {
                    return Err(failure("--args not supported in arguments file"));
                }
                let fd = parse_fd(&words.value(option)?)?;
                let inserted = super::run::read_args_words(fd).map_err(|e| {
                    failure(format!(
                        "Can't read --args data: {}",
                        crate::exit::describe_plain(&e)
                    ))
                })?;
                for w in inserted.into_iter().rev() {
                    words.pending.push_front((w, true));
                }
            }
            "--argv0" => {
                let value = words.value(option)?;
                if opts.argv0.replace(value).is_some() {
                    return Err(failure("--argv0 used multiple times"));
                }
            }
            // Messages are printed by the caller, which reads the flag.
            "--level-prefix" => *level_prefix = true,
            "--unshare-all" => {
                opts.unshare_user_try = true;
                opts.unshare_ipc = true;
                opts.unshare_pid = true;
                opts.unshare_uts = true;
                opts.unshare_cgroup_try = true;
                opts.unshare_net = true;
            }
            "--unshare-user" => opts.unshare_user = true,
            "--unshare-user-try" => opts.unshare_user_try = true,
            "--unshare-ipc" => opts.unshare_ipc = true,
            "--unshare-pid" => opts.unshare_pid = true,
            "--unshare-net" => opts.unshare_net = true,
            "--unshare-uts" => opts.unshare_uts = true,
            "--unshare-cgroup" => opts.unshare_cgroup = true,
            "--unshare-cgroup-try" => opts.unshare_cgroup_try = true,
            "--share-net" => opts.unshare_net = false,
            "--disable-userns" => opts.disable_userns = true,
            "--assert-userns-disabled" => opts.assert_userns_disabled = true,
            "--refuse-setuid-files" => opts.refuse_setuid_files = true,
            "--new-session" => opts.new_session = true,
            "--die-with-parent" => opts.die_with_parent = true,
            "--as-pid-1" => opts.as_pid_1 = true,
            // It relaxes bubblewrap's failures; ours stay hard, which is
            // what a caller who did not pass it gets anyway.
            "--not-a-security-boundary" => {}
            "--chdir" => {
                let dir = PathBuf::from(words.value(option)?);
                if opts.chdir.replace(dir).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--lock-file" => opts.lock_files.push(words.value(option)?.into()),
            "--hostname" => {
                let name = words.value(option)?;
                if opts.hostname.replace(name).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--uid" | "--gid" => {
                let value = words.value(option)?;
                let id = value
                    .to_str()
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|id| *id != u32::MAX)
                    .ok_or_else(|| {
                        failure(format!(
                            "Invalid {}: {}",
                            &option[2..],
                            value.to_string_lossy()
                        ))
                    })?;
                let slot = if option == "--uid" {
                    &mut opts.uid
                } else {
                    &mut opts.gid
                };
                if slot.replace(id).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--clearenv" => opts.env.push(EnvOp::Clear),
            "--setenv" => {
                let kv = words.values(option, 2)?;
                opts.env.push(EnvOp::Set(kv[0].clone(), kv[1].clone()));
            }
            "--unsetenv" => opts.env.push(EnvOp::Unset(words.value(option)?)),
            "--bind" | "--bind-try" | "--ro-bind" | "--ro-bind-try" => {
                let v = words.values(option, 2)?;
                opts.mounts.push(MountOp::Bind {
                    src: v[0].clone().into(),
                    dst: v[1].clone().into(),
                    read_only: option.starts_with("--ro-"),
                    if_exists: option.ends_with("-try"),
                });
            }
            "--dev-bind" | "--dev-bind-try" => {
                let v = words.values(option, 2)?;
                opts.mounts.push(MountOp::DevBind {
                    src: v[0].clone().into(),
                    dst: v[1].clone().into(),
                    if_exists: option.ends_with("-try"),
                });
            }
            "--remount-ro" => opts.mounts.push(MountOp::RemountRo {
                dst: words.value(option)?.into(),
            }),
            "--mqueue" => opts.mounts.push(MountOp::Mqueue {
                dst: words.value(option)?.into(),
            }),
            "--proc" => opts.mounts.push(MountOp::Proc {
                dst: words.value(option)?.into(),
            }),
            "--dev" => opts.mounts.push(MountOp::Dev {
                dst: words.value(option)?.into(),
            }),
            "--tmpfs" => opts.mounts.push(MountOp::Tmpfs {
                dst: words.value(option)?.into(),
                mode: opts.next_perms.take(),
                size: opts.next_size.take(),
            }),
            "--dir" => opts.mounts.push(MountOp::Dir {
                dst: words.value(option)?.into(),
                mode: opts.next_perms.take(),
            }),
            "--overlay-src" => opts.overlay_sources.push(words.value(option)?.into()),
            "--overlay" | "--tmp-overlay" | "--ro-overlay" => {
                let (writes, dst) = if option == "--overlay" {
                    let v = words.values(option, 3)?;
                    let writes = OverlayWrites::Dirs {
                        upper: v[0].clone().into(),
                        work: v[1].clone().into(),
                    };
                    (writes, PathBuf::from(&v[2]))
                } else if option == "--tmp-overlay" {
                    (OverlayWrites::Tmpfs, words.value(option)?.into())
                } else {
                    (OverlayWrites::ReadOnly, words.value(option)?.into())
                };
                let needed = if option == "--ro-overlay" { 2 } else { 1 };
                if opts.overlay_sources.len() < needed {
                    let count = if needed == 1 { "one" } else { "two" };
                    return Err(failure(format!(
                        "{option} requires at least {count} --overlay-src"
                    )));
                }
                opts.mounts.push(MountOp::Overlay {
                    dst,
                    lower: std::mem::take(&mut opts.overlay_sources),
                    writes,
                });
            }
            "--bind-fd" | "--ro-bind-fd" => {
                let v = words.values(option, 2)?;
                opts.mounts.push(MountOp::BindFd {
                    fd: parse_fd(&v[0])?,
                    dst: v[1].clone().into(),
                    read_only: option == "--ro-bind-fd",
                });
            }
            "--file" | "--bind-data" | "--ro-bind-data" => {
                let v = words.values(option, 2)?;
                let fd = parse_fd(&v[0])?;
                let dst = PathBuf::from(&v[1]);
                opts.mounts.push(if option == "--file" {
                    // bubblewrap's historical default for --file.
                    let mode = opts.next_perms.take().unwrap_or(0o666);
                    MountOp::File { fd, dst, mode }
                } else {
                    MountOp::BindData {
                        fd,
                        dst,
                        mode: opts.next_perms.take().unwrap_or(0o600),
                        read_only: option == "--ro-bind-data",
                    }
                });
            }
            "--perms" => {
                let value = words.value(option)?;
                if opts.next_perms.is_some() {
                    return Err(failure("--perms given twice for the same action"));
                }
                opts.next_perms = Some(
                    parse_mode(&value)
                        .ok_or_else(|| failure("--perms takes an octal argument <= 07777"))?,
                );
            }
            "--size" => {
                let value = words.value(option)?;
                if opts.next_size.is_some() {
                    return Err(failure("--size given twice for the same action"));
                }
                let size = parse_size(&value)
                    .ok_or_else(|| failure("--size takes a non-zero number of bytes"))?;
                if size > MAX_TMPFS_BYTES {
                    return Err(failure(format!(
                        "--size (for tmpfs) is limited to {MAX_TMPFS_BYTES}"
                    )));
                }
                opts.next_size = Some(size);
            }
            "--chmod" => {
                let v = words.values(option, 2)?;
                let mode = parse_mode(&v[0])
                    .ok_or_else(|| failure("--chmod takes an octal argument <= 07777"))?;
                opts.mounts.push(MountOp::Chmod {
                    path: v[1].clone().into(),
                    mode,
                });
            }
            "--symlink" => {
                let v = words.values(option, 2)?;
                opts.mounts.push(MountOp::Symlink {
                    target: v[0].clone().into(),
                    dst: v[1].clone().into(),
                });
            }
            "--seccomp" => {
                let fd = parse_fd(&words.value(option)?)?;
                if !opts.added_seccomp.is_empty() {
                    return Err(failure(
                        "--seccomp cannot be combined with --add-seccomp-fd",
                    ));
                }
                if opts.seccomp.replace(read_seccomp_program(fd)?).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--add-seccomp-fd" => {
                let fd = parse_fd(&words.value(option)?)?;
                if opts.seccomp.is_some() {
                    return Err(failure(
                        "--add-seccomp-fd cannot be combined with --seccomp",
                    ));
                }
                opts.added_seccomp.push(read_seccomp_program(fd)?);
            }
            "--userns" | "--userns2" | "--pidns" | "--userns-block-fd" => {
                let fd = parse_fd(&words.value(option)?)?;
                let slot = match option {
                    "--userns" => &mut opts.userns_fd,
                    "--userns2" => &mut opts.userns2_fd,
                    "--userns-block-fd" => &mut opts.userns_block_fd,
                    _ => &mut opts.pidns_fd,
                };
                if slot.replace(fd).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--info-fd" | "--json-status-fd" | "--block-fd" | "--sync-fd" => {
                let fd = parse_fd(&words.value(option)?)?;
                let slot = match option {
                    "--info-fd" => &mut opts.info_fd,
                    "--json-status-fd" => &mut opts.json_status_fd,
                    "--block-fd" => &mut opts.block_fd,
                    _ => &mut opts.sync_fd,
                };
                if slot.replace(fd).is_some() {
                    warn_only_last(option, *level_prefix);
                }
            }
            "--cap-add" | "--cap-drop" => {
                let name = words.value(option)?;
                let name = name.to_string_lossy();
                let bits = if name.eq_ignore_ascii_case("ALL") {
                    u64::MAX
                } else {
                    crate::caps::parse_name(&name)
                        .ok_or_else(|| failure(format!("unknown cap: {name}")))?
                };
                // Starts from what bubblewrap starts from: a root
                // caller's effective set, else nothing.
                let current = opts.caps_requested.unwrap_or_else(default_capabilities);
                opts.caps_requested = Some(if option == "--cap-add" {
                    current | bits
                } else {
                    current & !bits
                });
            }
            "--exec-label" | "--file-label" => {
                words.value(option)?;
                // bubblewrap's answer where SELinux is absent; where it is
                // present bubblewrap would label, which we cannot: still
                // an error, never a label silently dropped.
                if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
                    return Err(failure(format!(
                        "{option}: SELinux labels are not supported by srt-launcher"
                    )));
                }
                return Err(failure("labeling not supported on this system"));
            }
            _ => return Err(failure(format!("Unknown option {option}"))),
        }
        if option != "--overlay-src" && !opts.overlay_sources.is_empty() {
            return Err(failure(OVERLAY_SRC_DANGLING));
        }
        // A modifier must be taken by the very next operation.
        if option != "--perms" && option != "--size" {
            if opts.next_perms.is_some() {
                return Err(failure(
                    "--perms must be followed by an option that creates a file",
                ));
            }
            if opts.next_size.is_some() {
                return Err(failure("--size must be followed by --tmpfs"));
            }
        }
    }
    if !opts.overlay_sources.is_empty() {
        return Err(failure(OVERLAY_SRC_DANGLING));
    }
    if command.is_empty() {
        return Ok(Request::Usage(help_text(argv0)));
    }
    plan(opts, command).map(|spec| Request::Run(Box::new(spec)))
}

/// The checks bubblewrap makes once every option is read, and the plan
/// with bubblewrap's defaults.
fn plan(opts: Options, command: Vec<OsString>) -> anyhow::Result<RunSpec> {
    let (uid, _, gid, _) = crate::sys::ids();
    // These three before the user namespace is implied for non-root
    // callers, as bubblewrap orders them.
    if opts.userns_block_fd.is_some() && !opts.unshare_user {
        return Err(failure("--userns-block-fd requires --unshare-user"));
    }
    if opts.userns_block_fd.is_some() && opts.info_fd.is_none() {
        return Err(failure("--userns-block-fd requires --info-fd"));
    }
    if opts.disable_userns && opts.userns_block_fd.is_some() {
        return Err(failure(
            "--disable-userns is not compatible with --userns-block-fd",
        ));
    }
    if opts.userns_fd.is_some() && opts.unshare_user {
        return Err(failure("--userns is not compatible with --unshare-user"));
    }
    if opts.userns_fd.is_some() && opts.unshare_user_try {
        return Err(failure(
            "--userns is not compatible with --unshare-user-try",
        ));
    }
    // Not root: a user namespace is the only way in, as in bubblewrap.
    let mut unshare_user = opts.unshare_user || (uid != 0 && opts.userns_fd.is_none());
    if opts.unshare_user_try && !crate::probe::user_namespaces_disabled() {
        unshare_user = true;
    }
    if opts.disable_userns && !unshare_user {
        return Err(failure("--disable-userns requires --unshare-user"));
    }
    if !unshare_user && opts.userns_fd.is_none() && opts.uid.is_some_and(|id| id != uid) {
        return Err(failure(
            "Specifying --uid requires --unshare-user or --userns",
        ));
    }
    if !unshare_user && opts.userns_fd.is_none() && opts.gid.is_some_and(|id| id != gid) {
        return Err(failure(
            "Specifying --gid requires --unshare-user or --userns",
        ));
    }
    if !opts.unshare_uts && opts.hostname.is_some() {
        return Err(failure("Specifying --hostname requires --unshare-uts"));
    }
    if opts.as_pid_1 && !opts.unshare_pid {
        return Err(failure("Specifying --as-pid-1 requires --unshare-pid"));
    }
    if opts.as_pid_1 && !opts.lock_files.is_empty() {
        return Err(failure(
            "Specifying --as-pid-1 and --lock-file is not permitted",
        ));
    }
    let cgroup_ns_exists = crate::probe::cgroup_namespaces_exist();
    if opts.unshare_cgroup && !cgroup_ns_exists {
        return Err(failure(
            "Cannot create new cgroup namespace because the kernel does not support it",
        ));
    }
    let capabilities = match opts.caps_requested {
        Some(mask) => Capabilities::Keep(mask),
        None if uid == 0 => Capabilities::Unchanged,
        None => Capabilities::DropAll,
    };
    let spec = RunSpec {
        mounts: opts.mounts,
        namespaces: Namespaces {
            user: unshare_user,
            user_fd: opts.userns_fd,
            pid: opts.unshare_pid,
            pid_fd: opts.pidns_fd,
            net: opts.unshare_net,
            ipc: opts.unshare_ipc,
            uts: opts.unshare_uts,
            cgroup: opts.unshare_cgroup || (opts.unshare_cgroup_try && cgroup_ns_exists),
        },
        process: Process {
            die_with_parent: opts.die_with_parent,
            new_session: opts.new_session,
            // bubblewrap's reaper: a PID namespace needs one (unless the
            // command asks to be PID 1), and --sync-fd and --lock-file
            // need a process that holds them while the sandbox runs.
            reaper: !opts.as_pid_1
                && (opts.unshare_pid || opts.sync_fd.is_some() || !opts.lock_files.is_empty()),
            capabilities,
            uid: opts.uid.filter(|id| *id != uid),
            gid: opts.gid.filter(|id| *id != gid),
            argv0: opts.argv0,
            assert_userns_disabled: opts.assert_userns_disabled,
            block_fd: opts.block_fd,
            lock_files: opts.lock_files,
            keep_inherited_fds: true,
            sync_fd: opts.sync_fd,
            seccomp_programs: opts.seccomp.into_iter().chain(opts.added_seccomp).collect(),
            userns2_fd: opts.userns2_fd,
            userns_block_fd: opts.userns_block_fd,
            refuse_setuid_files: opts.refuse_setuid_files,
        },
        disable_userns: opts.disable_userns,
        seccomp_unix_block: false,
        relays: Vec::new(),
        env: opts.env,
        chdir: opts.chdir,
        hostname: opts.hostname,
        json_status_fd: opts.json_status_fd,
        info_fd: opts.info_fd,
        refuse_symlink_destinations: true,
        command,
    };
    spec.validate()
        .map_err(|e| failure(crate::exit::describe_plain(&e)))?;
    Ok(spec)
}

/// bubblewrap's default capability set: a root caller's effective set,
/// nothing for anyone else.
fn default_capabilities() -> u64 {
    if crate::sys::ids().0 == 0 {
        crate::caps::effective_mask()
    } else {
        0
    }
}

const OVERLAY_SRC_DANGLING: &str = "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay";

/// bubblewrap's tmpfs size limit (half the address space, as its C code
/// has it on 64-bit machines).
const MAX_TMPFS_BYTES: u64 = u64::MAX >> 1;

/// An octal mode up to 07777, as `--perms` and `--chmod` take it.
fn parse_mode(word: &OsStr) -> Option<u32> {
    let text = word.to_str()?;
    if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// A non-zero byte count written as C's strtoull(…, 0) reads it:
/// decimal, 0x hex or 0 octal, starting with a digit.
fn parse_size(word: &OsStr) -> Option<u64> {
    let text = word.to_str()?;
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let size = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()?
    } else {
        text.parse().ok()?
    };
    (size != 0).then_some(size)
}

/// A seccomp program from `fd`, read to its end (then closed): whole
/// `struct sock_filter` records of 8 bytes.
fn read_seccomp_program(fd: i32) -> anyhow::Result<Vec<u8>> {
    let data = crate::sys::read_to_end(fd).map_err(|e| {
        failure(format!(
            "Can't read seccomp data: {}",
            std::io::Error::from_raw_os_error(e.errno())
        ))
    })?;
    let _ = crate::sys::close(fd);
    if data.len() % 8 != 0 {
        return Err(failure("Invalid seccomp data, must be multiple of 8"));
    }
    Ok(data)
}

fn parse_fd(word: &OsStr) -> anyhow::Result<i32> {
    word.to_str()
        .and_then(|w| w.parse::<i32>().ok())
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| failure(format!("Invalid fd: {}", word.to_string_lossy())))
}

/// bubblewrap's warning for an option whose earlier values are dropped
/// (syslog level 4 with `--level-prefix`).
fn warn_only_last(option: &str, level_prefix: bool) {
    use std::io::Write;
    let level = if level_prefix { "<4>" } else { "" };
    let _ = writeln!(
        std::io::stderr(),
        "{level}bwrap: Only the last {option} option will take effect"
    );
}

fn usage_line(argv0: &OsStr) -> String {
    format!(
        "usage: {} [OPTIONS...] [--] COMMAND [ARGS...]",
        argv0.to_string_lossy()
    )
}

fn version_text() -> String {
    format!(
        "bubblewrap {BWRAP_VERSION} (srt-launcher {})\n",
        super::VERSION
    )
}

/// `--help`: bubblewrap's usage line (scripts and its test suite look for
/// `usage: ARGV0`), then every option in our words.
fn help_text(argv0: &OsStr) -> String {
    let mut text = usage_line(argv0);
    text.push_str("\n\n");
    for (option, what) in HELP {
        text.push_str(&format!("    {option:<29}{what}\n"));
    }
    text
}

/// Whether `word` is one of bubblewrap's options other than `--help` and
/// `--version` (which the launcher answers for itself): an argv that
/// starts with one is bwrap mode however the binary was reached (bubblewrap
/// programs re-run themselves through /proc/self/exe).
pub fn is_bwrap_option(word: &OsStr) -> bool {
    word != "--help"
        && word != "--version"
        && HELP
            .iter()
            .any(|(usage, _)| usage.split(' ').next() == Some(&*word.to_string_lossy()))
}

/// The option list `--help` prints; also the list of option names.
const HELP: &[(&str, &str)] = &[
    ("--help", "Show this text"),
    ("--version", "Show the bubblewrap version implemented"),
    (
        "--args FD",
        "Read more arguments from FD, NUL-terminated, here",
    ),
    ("--argv0 VALUE", "Run the command with argv[0] set to VALUE"),
    (
        "--level-prefix",
        "Start each message with its syslog level, e.g. <3>",
    ),
    (
        "--unshare-all",
        "Take every namespace (user and cgroup when available)",
    ),
    (
        "--share-net",
        "Keep the network namespace (after --unshare-all)",
    ),
    (
        "--unshare-user",
        "Take a user namespace (always when not root)",
    ),
    (
        "--unshare-user-try",
        "Take a user namespace when the system allows it",
    ),
    ("--unshare-ipc", "Take an IPC namespace"),
    ("--unshare-pid", "Take a PID namespace"),
    ("--unshare-net", "Take a network namespace (loopback only)"),
    ("--unshare-uts", "Take a UTS namespace"),
    ("--unshare-cgroup", "Take a cgroup namespace"),
    (
        "--unshare-cgroup-try",
        "Take a cgroup namespace when the kernel has them",
    ),
    (
        "--userns FD",
        "Run in this user namespace instead of a new one",
    ),
    (
        "--userns2 FD",
        "Switch to this user namespace after setup (with --userns)",
    ),
    (
        "--disable-userns",
        "The sandbox cannot create user namespaces",
    ),
    (
        "--assert-userns-disabled",
        "Fail unless the sandbox cannot create user namespaces",
    ),
    ("--pidns FD", "Run in this PID namespace"),
    ("--uid UID", "The uid inside (needs a user namespace)"),
    ("--gid GID", "The gid inside (needs a user namespace)"),
    (
        "--hostname NAME",
        "The hostname inside (needs --unshare-uts)",
    ),
    ("--chdir DIR", "Start the command in DIR"),
    ("--clearenv", "Start from an empty environment"),
    ("--setenv VAR VALUE", "Set VAR to VALUE"),
    ("--unsetenv VAR", "Remove VAR"),
    (
        "--lock-file DEST",
        "Hold a read lock on DEST while the sandbox runs",
    ),
    ("--sync-fd FD", "Keep FD open while the sandbox runs"),
    ("--bind SRC DEST", "Bind the host's SRC on DEST, writable"),
    (
        "--bind-try SRC DEST",
        "Like --bind; nothing when SRC is missing",
    ),
    ("--dev-bind SRC DEST", "Like --bind, device nodes usable"),
    (
        "--dev-bind-try SRC DEST",
        "Like --dev-bind; nothing when SRC is missing",
    ),
    (
        "--ro-bind SRC DEST",
        "Bind the host's SRC on DEST, read-only",
    ),
    (
        "--ro-bind-try SRC DEST",
        "Like --ro-bind; nothing when SRC is missing",
    ),
    ("--bind-fd FD DEST", "Bind the directory open on FD"),
    ("--ro-bind-fd FD DEST", "Same, read-only"),
    (
        "--remount-ro DEST",
        "Make the mount at DEST read-only, not recursively",
    ),
    (
        "--overlay-src SRC",
        "A lower layer of the next overlay (bottom first)",
    ),
    (
        "--overlay RWSRC WORKDIR DEST",
        "Overlay with writes to RWSRC (WORKDIR: empty, same filesystem)",
    ),
    (
        "--tmp-overlay DEST",
        "Overlay with writes to a tmpfs that vanishes with the sandbox",
    ),
    (
        "--ro-overlay DEST",
        "Read-only overlay of two or more layers",
    ),
    (
        "--exec-label LABEL",
        "SELinux label of the command (needs SELinux)",
    ),
    (
        "--file-label LABEL",
        "SELinux label of created files (needs SELinux)",
    ),
    ("--proc DEST", "A new procfs on DEST"),
    ("--dev DEST", "A new minimal /dev on DEST"),
    ("--tmpfs DEST", "A new tmpfs on DEST"),
    ("--mqueue DEST", "A new mqueue filesystem on DEST"),
    ("--dir DEST", "Create the directory DEST"),
    ("--file FD DEST", "Write FD's data to the file DEST"),
    (
        "--bind-data FD DEST",
        "Bind a file holding FD's data on DEST",
    ),
    ("--ro-bind-data FD DEST", "Same, read-only"),
    (
        "--symlink TARGET DEST",
        "Create the symlink DEST pointing to TARGET",
    ),
    ("--seccomp FD", "Add the BPF program read from FD"),
    ("--add-seccomp-fd FD", "Same, repeatable"),
    (
        "--block-fd FD",
        "Wait for data on FD before running the command",
    ),
    (
        "--userns-block-fd FD",
        "Wait on FD while the caller maps the user namespace's ids",
    ),
    (
        "--info-fd FD",
        "Write the child pid and namespace ids to FD as JSON",
    ),
    (
        "--json-status-fd FD",
        "Write the child pid, then the exit code, to FD as JSON lines",
    ),
    (
        "--new-session",
        "Run the command in a new session (no controlling terminal)",
    ),
    (
        "--die-with-parent",
        "End the sandbox when the process that started it ends",
    ),
    ("--as-pid-1", "Run the command as PID 1, without a reaper"),
    ("--cap-add CAP", "Keep capability CAP (or ALL)"),
    ("--cap-drop CAP", "Drop capability CAP (or ALL)"),
    ("--perms OCTAL", "Mode of what the next option creates"),
    ("--size BYTES", "Size limit of the next --tmpfs"),
    (
        "--chmod OCTAL PATH",
        "Change the mode of PATH, which must exist",
    ),
    (
        "--not-a-security-boundary",
        "Accepted; setup failures stay fatal",
    ),
    (
        "--refuse-setuid-files",
        "The sandbox can make no setuid/setgid file and use no io_uring (srt-launcher)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> anyhow::Result<RunSpec> {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(OsStr::new("bwrap"), &args).request? {
            Request::Run(spec) => Ok(*spec),
            Request::Print(text) | Request::Usage(text) => panic!("printed {text}"),
        }
    }

    fn failure_of(words: &[&str]) -> String {
        let err = parse_words(words).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), FAILURE, "{err}");
        err.to_string()
    }

    #[test]
    fn defaults_share_everything_but_mounts() {
        let spec = parse_words(&["--ro-bind", "/", "/", "true"]).unwrap();
        let ns = &spec.namespaces;
        assert!(!ns.pid && !ns.net && !ns.ipc && !ns.uts && !ns.cgroup);
        let p = &spec.process;
        assert!(!p.die_with_parent && !p.new_session && !p.reaper);
        assert_eq!(spec.command, ["true"]);
    }

    #[test]
    fn first_non_option_starts_the_command() {
        let spec = parse_words(&["--unshare-pid", "ls", "--bind", "/", "/"]).unwrap();
        assert_eq!(spec.command, ["ls", "--bind", "/", "/"]);
        assert!(spec.mounts.is_empty());
        assert!(spec.process.reaper);
        let spec = parse_words(&["--", "--weird", "x"]).unwrap();
        assert_eq!(spec.command, ["--weird", "x"]);
    }

    #[test]
    fn unshare_all_and_share_net() {
        let spec = parse_words(&["--unshare-all", "--share-net", "true"]).unwrap();
        let ns = &spec.namespaces;
        assert!(ns.pid && ns.ipc && ns.uts && !ns.net);
    }

    #[test]
    fn usage_errors_are_bwraps() {
        assert_eq!(failure_of(&["--bind", "/a"]), "--bind takes two arguments");
        assert_eq!(
            failure_of(&["--frobnicate", "true"]),
            "Unknown option --frobnicate"
        );
        assert_eq!(failure_of(&["--info-fd", "x", "true"]), "Invalid fd: x");
        assert_eq!(
            failure_of(&["--cap-add", "CAP_NOPE", "true"]),
            "unknown cap: CAP_NOPE"
        );
        assert_eq!(
            failure_of(&["--as-pid-1", "true"]),
            "Specifying --as-pid-1 requires --unshare-pid"
        );
        assert_eq!(
            failure_of(&["--hostname", "h", "true"]),
            "Specifying --hostname requires --unshare-uts"
        );
        assert_eq!(
            failure_of(&["--argv0", "a", "--argv0", "b", "true"]),
            "--argv0 used multiple times"
        );
        assert_eq!(
            failure_of(&["--exec-label", "x", "true"]),
            "labeling not supported on this system"
        );
        assert_eq!(
            failure_of(&["--overlay-src", "/a", "true"]),
            OVERLAY_SRC_DANGLING
        );
        assert_eq!(
            failure_of(&["--overlay-src", "/a", "--ro-overlay", "/b", "true"]),
            "--ro-overlay requires at least two --overlay-src"
        );
        assert_eq!(
            failure_of(&["--userns-block-fd", "3", "true"]),
            "--userns-block-fd requires --unshare-user"
        );
    }

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
            render(&err),
            "Can't find source path /s: No such file or directory"
        );
    }

    #[test]
    fn every_plan_check_has_its_message() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--userns", "3", "--unshare-user", "true"],
                "--userns is not compatible with --unshare-user",
            ),
            (
                &["--userns", "3", "--unshare-user-try", "true"],
                "--userns is not compatible with --unshare-user-try",
            ),
            (
                &["--unshare-user", "--userns-block-fd", "3", "true"],
                "--userns-block-fd requires --info-fd",
            ),
            (
                &[
                    "--unshare-user",
                    "--info-fd",
                    "4",
                    "--userns-block-fd",
                    "3",
                    "--disable-userns",
                    "true",
                ],
                "--disable-userns is not compatible with --userns-block-fd",
            ),
            (
                &["--unshare-pid", "--as-pid-1", "--lock-file", "/l", "true"],
                "Specifying --as-pid-1 and --lock-file is not permitted",
            ),
            (
                &["--overlay", "/u", "/w", "/d", "true"],
                "--overlay requires at least one --overlay-src",
            ),
            (
                &["--tmp-overlay", "/d", "true"],
                "--tmp-overlay requires at least one --overlay-src",
            ),
            (
                &["--overlay", "/u", "/w"],
                "--overlay takes three arguments",
            ),
            (&["--args"], "--args takes an argument"),
            (&["--args", "-1", "true"], "Invalid fd: -1"),
            (&["--file", "x", "/f", "true"], "Invalid fd: x"),
            (
                &["--size", "9223372036854775808", "--tmpfs", "/t", "true"],
                "--size (for tmpfs) is limited to 9223372036854775807",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(failure_of(args), *message, "{args:?}");
        }
        // Where bubblewrap decides by the caller's uid: a root caller does
        // not get a user namespace unless asked.
        if crate::sys::ids().0 == 0 {
            assert_eq!(
                failure_of(&["--disable-userns", "true"]),
                "--disable-userns requires --unshare-user"
            );
            assert_eq!(
                failure_of(&["--uid", "5", "true"]),
                "Specifying --uid requires --unshare-user or --userns"
            );
            assert_eq!(
                failure_of(&["--gid", "5", "true"]),
                "Specifying --gid requires --unshare-user or --userns"
            );
        }
    }

    #[test]
    fn modifiers_apply_to_the_next_operation_only() {
        let spec = parse_words(&[
            "--perms", "0700", "--size", "0x1000", "--tmpfs", "/t", "true",
        ])
        .unwrap();
        assert_eq!(
            spec.mounts[0],
            MountOp::Tmpfs {
                dst: "/t".into(),
                mode: Some(0o700),
                size: Some(4096)
            }
        );
        assert_eq!(
            failure_of(&["--perms", "0700", "--bind", "/a", "/b", "true"]),
            "--perms must be followed by an option that creates a file"
        );
        assert_eq!(
            failure_of(&["--size", "10", "--dir", "/d", "true"]),
            "--size must be followed by --tmpfs"
        );
        assert_eq!(
            failure_of(&["--perms", "0700", "--perms", "0700", "--dir", "/d", "true"]),
            "--perms given twice for the same action"
        );
        assert_eq!(
            failure_of(&["--perms", "8", "--dir", "/d", "true"]),
            "--perms takes an octal argument <= 07777"
        );
        assert_eq!(
            failure_of(&["--size", "0", "--tmpfs", "/d", "true"]),
            "--size takes a non-zero number of bytes"
        );
        assert_eq!(
            failure_of(&["--chmod", "17777", "/d", "true"]),
            "--chmod takes an octal argument <= 07777"
        );
    }

    #[test]
    fn capabilities_follow_add_and_drop() {
        let spec = parse_words(&["--cap-drop", "ALL", "--cap-add", "CAP_NET_RAW", "true"]).unwrap();
        assert_eq!(spec.process.capabilities, Capabilities::Keep(1 << 13));
    }

    #[test]
    fn help_names_argv0() {
        let args = [OsString::from("--help")];
        let Ok(Request::Print(text)) = parse(OsStr::new("/x/bwrap"), &args).request else {
            panic!("no help");
        };
        assert!(text.starts_with("usage: /x/bwrap [OPTIONS...]"), "{text}");
        assert!(text.contains("--die-with-parent"));
        let args = [OsString::from("--unshare-pid")];
        let parsed = parse(OsStr::new("bwrap"), &args);
        assert!(
            matches!(parsed.request, Ok(Request::Usage(text)) if text.starts_with("usage: bwrap "))
        );
        let args = ["--level-prefix", "--nope"].map(OsString::from);
        let parsed = parse(OsStr::new("bwrap"), &args);
        assert!(parsed.level_prefix && parsed.request.is_err());
    }
}
