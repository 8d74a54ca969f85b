//! bwrap mode's command line (SPEC §5): bubblewrap 0.12's options, walked
//! in order (`cli::options::walk`, shared with `run`) into the same plan
//! `run` builds, with bubblewrap's defaults (share every namespace not
//! asked for, no PID 1 reaper without a PID namespace, no die-with-parent,
//! no new session, a root caller's capabilities kept).
//!
//! bubblewrap's grammar: an option consumes its values, `--perms`/`--size`
//! modify the next operation, `--args FD` splices words in place (not from
//! inside another `--args`), and the first word that is not an option
//! starts the command. Every failure exits 1, as all of bubblewrap's own
//! failures do; the caller prints it after `bwrap: ` (`render.rs`).

mod builders;
mod options;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::options::{Draft, Grammar, Usage, Walked, walk};
use super::render;
use crate::exit::Exit;
use crate::plan::{Capabilities, FrontEnd, Namespaces, Process, RunSpec};
use options::BWRAP_OPTIONS;

/// bubblewrap's code for every failure of its own.
pub const FAILURE: i32 = render::BWRAP_FAILURE;

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

/// A bwrap-mode failure: one line, exit 1.
fn failure(message: impl Into<String>) -> anyhow::Error {
    Exit::error(FAILURE, message)
}

/// The settings bubblewrap keeps outside its list of operations, collected
/// while walking and turned into the plan at the end.
#[derive(Default)]
pub struct Settings {
    /// `--level-prefix`: messages start with their syslog level.
    pub(super) level_prefix: bool,
    pub(super) unshare_user: bool,
    pub(super) unshare_user_try: bool,
    pub(super) unshare_pid: bool,
    pub(super) unshare_net: bool,
    pub(super) unshare_ipc: bool,
    pub(super) unshare_uts: bool,
    pub(super) unshare_cgroup: bool,
    pub(super) unshare_cgroup_try: bool,
    pub(super) disable_userns: bool,
    pub(super) assert_userns_disabled: bool,
    pub(super) refuse_setuid_files: bool,
    pub(super) new_session: bool,
    pub(super) die_with_parent: bool,
    pub(super) as_pid_1: bool,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) hostname: Option<OsString>,
    pub(super) chdir: Option<PathBuf>,
    pub(super) argv0: Option<OsString>,
    pub(super) info_fd: Option<i32>,
    pub(super) json_status_fd: Option<i32>,
    pub(super) block_fd: Option<i32>,
    pub(super) sync_fd: Option<i32>,
    pub(super) lock_files: Vec<PathBuf>,
    pub(super) userns_fd: Option<i32>,
    pub(super) userns2_fd: Option<i32>,
    pub(super) userns_block_fd: Option<i32>,
    pub(super) pidns_fd: Option<i32>,
    /// `--seccomp`'s program (one, replaced when repeated) and
    /// `--add-seccomp-fd`'s (in order); the two do not mix.
    pub(super) seccomp: Option<Vec<u8>>,
    pub(super) added_seccomp: Vec<Vec<u8>>,
    /// `--overlay-src` layers waiting for their overlay.
    pub(super) overlay_sources: Vec<PathBuf>,
    /// `--cap-add`/`--cap-drop` seen, and the set they leave.
    pub(super) caps_requested: Option<u64>,
}

/// bubblewrap's grammar (see the module comment).
const GRAMMAR: Grammar<Settings> = Grammar {
    front_end: FrontEnd::Bwrap,
    table: BWRAP_OPTIONS,
    help_words: &["--help"],
    version_words: &["--version"],
    command_at_first_word: true,
    nested_args: false,
    after_option: modifier_rules,
};

/// bubblewrap's rules after each option: `--overlay-src` layers wait only
/// for more layers or their overlay, and `--perms`/`--size` must be taken
/// by the very next operation.
fn modifier_rules(d: &mut Draft<Settings>) -> Result<(), Usage> {
    let option = d.option();
    if option != "--overlay-src" && !d.settings.overlay_sources.is_empty() {
        return Err(Usage::Said(OVERLAY_SRC_DANGLING.into()));
    }
    if option != "--perms" && option != "--size" {
        if d.next_perms.is_some() {
            return Err(Usage::Said(
                "--perms must be followed by an option that creates a file".into(),
            ));
        }
        if d.next_size.is_some() {
            return Err(Usage::Said("--size must be followed by --tmpfs".into()));
        }
    }
    Ok(())
}

/// Parses bwrap's arguments (after argv[0], which `--help` names).
pub fn parse(argv0: &OsStr, args: &[OsString]) -> Parsed {
    // bubblewrap answers a lone --version before anything else.
    if args.len() == 1 && args[0] == "--version" {
        return Parsed {
            request: Ok(Request::Print(version_text())),
            level_prefix: false,
        };
    }
    let mut draft = Draft::new(Settings::default());
    let walked = walk(&GRAMMAR, args, &mut draft);
    let level_prefix = draft.settings.level_prefix;
    let request = match walked {
        Err(u) => Err(render::usage(FrontEnd::Bwrap, &u)),
        Ok(Walked::Help) => Ok(Request::Print(help_text(argv0))),
        Ok(Walked::Version) => Ok(Request::Print(version_text())),
        Ok(_) if !draft.settings.overlay_sources.is_empty() => Err(failure(OVERLAY_SRC_DANGLING)),
        Ok(Walked::NoCommand) => Ok(Request::Usage(help_text(argv0))),
        Ok(Walked::Command(command)) if command.is_empty() => Ok(Request::Usage(help_text(argv0))),
        Ok(Walked::Command(command)) => {
            plan(draft, command).map(|spec| Request::Run(Box::new(spec)))
        }
    };
    Parsed {
        request,
        level_prefix,
    }
}

/// bubblewrap's user namespace rules, in its order; returns whether the
/// sandbox takes a user namespace.
fn user_namespace_rules(opts: &Settings, uid: u32, gid: u32) -> anyhow::Result<bool> {
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
    Ok(unshare_user)
}

/// bubblewrap's other combination rules; returns whether the kernel has
/// cgroup namespaces.
fn process_rules(opts: &Settings) -> anyhow::Result<bool> {
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
    Ok(cgroup_ns_exists)
}

/// The checks bubblewrap makes once every option is read, and the plan
/// with bubblewrap's defaults.
fn plan(draft: Draft<Settings>, command: Vec<OsString>) -> anyhow::Result<RunSpec> {
    let opts = draft.settings;
    let (uid, _, gid, _) = crate::sys::ids();
    let unshare_user = user_namespace_rules(&opts, uid, gid)?;
    let cgroup_ns_exists = process_rules(&opts)?;
    let capabilities = match opts.caps_requested {
        Some(mask) => Capabilities::Keep(mask),
        None if uid == 0 => Capabilities::Unchanged,
        None => Capabilities::DropAll,
    };
    let spec = RunSpec {
        mounts: draft.steps,
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
        unix_grants: Vec::new(),
        exposes: Vec::new(),
        isolation: crate::plan::Isolation::Namespaces,
        relays: Vec::new(),
        env: draft.env,
        chdir: opts.chdir,
        hostname: opts.hostname,
        json_status_fd: opts.json_status_fd,
        info_fd: opts.info_fd,
        refuse_symlink_destinations: true,
        command,
    };
    spec.validate()
        .map_err(|e| render::plan(FrontEnd::Bwrap, &e))?;
    Ok(spec)
}

/// bubblewrap's default capability set: a root caller's effective set,
/// nothing for anyone else.
pub(super) fn default_capabilities() -> u64 {
    if crate::sys::ids().0 == 0 {
        crate::caps::effective_mask()
    } else {
        0
    }
}

const OVERLAY_SRC_DANGLING: &str = "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay";

/// bubblewrap's tmpfs size limit (half the address space, as its C code
/// has it on 64-bit machines).
pub(super) const MAX_TMPFS_BYTES: u64 = u64::MAX >> 1;

/// An octal mode up to 07777, as `--perms` and `--chmod` take it.
pub(super) fn parse_mode(word: &OsStr) -> Option<u32> {
    let text = word.to_str()?;
    if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// A non-zero byte count written as C's strtoull(…, 0) reads it:
/// decimal, 0x hex or 0 octal, starting with a digit.
pub(super) fn parse_size(word: &OsStr) -> Option<u64> {
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
pub(super) fn read_seccomp_program(fd: i32) -> Result<Vec<u8>, Usage> {
    let data = crate::sys::read_to_end(fd).map_err(|e| {
        Usage::Said(format!(
            "Can't read seccomp data: {}",
            std::io::Error::from_raw_os_error(e.errno())
        ))
    })?;
    let _ = crate::sys::close(fd);
    if data.len() % 8 != 0 {
        return Err(Usage::Said(
            "Invalid seccomp data, must be multiple of 8".into(),
        ));
    }
    Ok(data)
}

/// bubblewrap's warning for an option whose earlier values are dropped
/// (syslog level 4 with `--level-prefix`).
pub(super) fn warn_only_last(option: &str, level_prefix: bool) {
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
    for opt in BWRAP_OPTIONS {
        let usage = std::iter::once(opt.name)
            .chain(opt.values.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        text.push_str(&format!("    {usage:<29}{}\n", opt.help));
    }
    text
}

/// Whether `word` is one of bubblewrap's options other than `--help` and
/// `--version` (which the launcher answers for itself): an argv that
/// starts with one is bwrap mode however the binary was reached (bubblewrap
/// programs re-run themselves through /proc/self/exe).
pub fn is_bwrap_option(word: &OsStr) -> bool {
    word != "--help" && word != "--version" && BWRAP_OPTIONS.iter().any(|o| word == o.name)
}

#[cfg(test)]
mod tests;
