//! The workload process: the last steps before execve, in their fixed order.
//!
//! Forked by PID 1 before the mount tree is built, so that its own costly
//! steps (a new session keyring; the seccomp filter, which the kernel
//! JIT-compiles) run on another CPU while PID 1 mounts. It then waits for
//! PID 1's go, given once the tree is in place, and ends, at execve, with
//! no capabilities, under no_new_privs and the seccomp filter. A failure at
//! any step is reported to the launcher over the status pipe with SPEC's
//! exit code (125 setup, 126 not executable, 127 not found).

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::context::Prepared;
use super::status;
use crate::exit::{self};
use crate::failure::{ExecFailure, ExecKind, Problem, Setting};
use crate::plan::{Capabilities, EnvOp};
use crate::{caps, seccomp, sys};

/// PATH when the workload's environment has none (as execvp(3) assumes).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Runs the workload to its execve; never returns. `go` is PID 1's side
/// of the hand-over: one byte once the mount tree is in place and PID 1 no
/// longer holds the status pipe, EOF without it when PID 1 failed (and has
/// reported why).
pub fn workload(
    prepared: &Prepared,
    status_fd: i32,
    go: OwnedFd,
    broker_link: Option<OwnedFd>,
) -> ! {
    // Early steps, concurrent with PID 1's mounts. A failure here is
    // reported only after the go: PID 1 may be writing its own failure
    // record until then, and two writers would interleave.
    let early = isolate(prepared, broker_link.as_ref());
    // A failure before the listener was sent: PID 1, waiting for it, must
    // see the link close (it goes on to the go, and we report then).
    let broker_link = broker_link.filter(|_| early.is_ok());
    let mut byte = [0u8; 1];
    if !matches!(sys::read(go.as_raw_fd(), &mut byte), Ok(1)) {
        // PID 1 failed and said why; nothing to add.
        sys::exit_now(exit::SETUP);
    }
    drop(go);
    match early.and_then(|()| prepare_and_exec(prepared, broker_link)) {
        Ok(never) => match never {},
        // The launcher prefixes "run: " when it prints the line.
        Err(e) => status::fail(status_fd, &e, prepared.wording),
    }
}

/// The sandbox without a reaper: the process that built the mount tree
/// (the launcher's child, which already dies with the launcher and has
/// left the session when asked to) runs the workload's steps itself.
pub fn become_workload(prepared: &Prepared) -> Result<Infallible> {
    isolate(prepared, None)?;
    prepare_and_exec(prepared, None)
}

/// The steps that need neither the mount tree nor the caller's signal
/// mask, ending with the seccomp filter (and, with `--allow-unix`, its
/// listener sent to PID 1 over `broker_link`).
fn isolate(prepared: &Prepared, broker_link: Option<&OwnedFd>) -> Result<()> {
    let process = &prepared.spec.process;
    if process.reaper {
        // 1. Die with PID 1 (PID 1 dying kills the namespace anyway; this
        //    also covers the instant before the kernel does). Our parent
        //    is PID 1, so a different parent means it is already gone.
        let reaper = if prepared.spec.namespaces.pid {
            1
        } else {
            sys::getppid()
        };
        if !sys::die_with_parent(reaper)? {
            sys::exit_now(exit::SETUP);
        }

        // 2. A new session: the caller's controlling terminal is not
        //    ours. A session leader may still claim a terminal that no
        //    session owns (an SDK's pty on our stdout); TIOCSTI into it is
        //    refused by the base seccomp filter, and the launcher restores
        //    its state. (Without a reaper, PID 1 already did this.)
        if process.new_session {
            sys::setsid()?;
        }
    }

    // 2b. The launcher learns our pid in its own PID namespace from the
    //     credentials the kernel attaches (and translates). (Without a
    //     reaper, PID 1 sent them as soon as it could, see pid1.rs.)
    if let Some(fd) = prepared.report_pid.as_ref().filter(|_| process.reaper) {
        sys::send_own_credentials(fd.as_raw_fd()).context("report the command's pid")?;
    }

    // 3. A new anonymous session keyring: the caller's session keyring
    //    (and what it links to) is no longer ours to search. The seccomp
    //    filter then refuses the keyring calls outright.
    sys::join_new_session_keyring()?;

    // 4. no_new_privs was set by the launcher and is inherited; verify it,
    //    since the filter and the empty capability sets rely on it.
    if sys::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, "PR_GET_NO_NEW_PRIVS")? != 1 {
        bail!("no_new_privs is not set");
    }

    // 4b. --assert-userns-disabled (and --disable-userns, which promises
    //     it): a user namespace must be refused here. Success would leave
    //     us in it, but we end at once.
    if (process.assert_userns_disabled || prepared.spec.disable_userns)
        && sys::unshare(libc::CLONE_NEWUSER).is_ok()
    {
        bail!("creation of new user namespaces was not disabled as requested");
    }

    // 5. The seccomp filter: base always, the others as asked. Invariant:
    //    every later step (chdir, close_range, rt_sigprocmask, capset,
    //    prctl, read, execve, statx) is a call no rule refuses; the
    //    integration tests run each of them under every variant.
    let filters = seccomp::Filters::of(&prepared.spec, prepared.unix_by_landlock);
    let listener = seccomp::install(&filters)?;

    // 5b. --allow-unix: the listener goes to PID 1, the broker, and this
    //     process keeps no copy (both are closed here, long before
    //     execve): a workload holding it could answer its own calls. A
    //     nested sandbox that already has a broker cannot get a second
    //     one (the kernel allows one listener per filter chain: EBUSY).
    if let (Some(listener), Some(link)) = (listener, broker_link) {
        sys::send_fd(link.as_raw_fd(), listener.as_raw_fd())
            .context("hand the seccomp listener to the broker")?;
    }
    Ok(())
}

/// Step 6: the caller's environment, then `--setenv`, `--unsetenv` and
/// `--clearenv` in argv order.
fn environment(prepared: &Prepared) -> Environment {
    let mut env = Environment::new(std::env::vars_os());
    for op in &prepared.spec.env {
        match op {
            EnvOp::Set(key, value) => env.set(key, value),
            EnvOp::Unset(key) => env.unset(key),
            EnvOp::Clear => env.clear(),
        }
    }
    env
}

/// Step 7: the working directory. `--chdir`'s, which must exist; else the
/// spawn-time one if it exists in the sandbox, else $HOME, else /.
fn enter_working_directory(prepared: &Prepared, env: &Environment) -> Result<PathBuf> {
    if let Some(dir) = &prepared.spec.chdir {
        sys::chdir(dir.as_os_str())
            .with_context(|| Problem::InSetting(Setting::WorkingDirectory(dir.clone())))?;
        return Ok(dir.clone());
    }
    let home = env.get("HOME").map(PathBuf::from);
    [prepared.cwd.clone(), home, Some(PathBuf::from("/"))]
        .into_iter()
        .flatten()
        .find(|dir| dir.is_absolute() && sys::chdir(dir.as_os_str()).is_ok())
        .ok_or_else(|| anyhow!("no usable working directory (not even /)"))
}

/// Step 10: argv (with bwrap's `--argv0`), envp and the PATH to search,
/// as C strings, built while allocating is still ours to do.
fn exec_arguments(
    prepared: &Prepared,
    env: &Environment,
) -> Result<(Vec<CString>, Vec<CString>, OsString)> {
    let mut argv: Vec<CString> = prepared
        .spec
        .command
        .iter()
        .map(|a| sys::cstr(a))
        .collect::<Result<_, _>>()?;
    if let Some(argv0) = &prepared.spec.process.argv0 {
        argv[0] = sys::cstr(argv0)?;
    }
    let envp: Vec<CString> = env
        .vars
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| anyhow!("environment variable {k:?} contains NUL"))
        })
        .collect::<Result<_>>()?;
    let path_var = env
        .get("PATH")
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    Ok((argv, envp, path_var))
}

/// Step 12: the identity and privileges the command runs with, in this
/// order: the ids (bwrap's `--uid`/`--gid` in a joined user namespace),
/// the capabilities, bwrap's `--userns2`, then the caller's own seccomp
/// programs.
fn take_final_identity(prepared: &Prepared) -> Result<()> {
    // a. bwrap's --uid/--gid with --userns: the ids to take in the joined
    //    user namespace (a new one maps them instead, see namespaces.rs).
    let process = &prepared.spec.process;
    if prepared.spec.namespaces.user_fd.is_some()
        && (process.uid.is_some() || process.gid.is_some())
    {
        let (uid, _, gid, _) = sys::ids();
        let (uid, gid) = (process.uid.unwrap_or(uid), process.gid.unwrap_or(gid));
        sys::switch_ids(uid, gid).context(Problem::SwitchIds { uid, gid })?;
    }

    // b. No capabilities in any set, bounding included; or exactly the
    //    ones bwrap's rules keep (a root caller's, --cap-add/--cap-drop).
    match prepared.spec.process.capabilities {
        Capabilities::DropAll => caps::drop_all()?,
        Capabilities::Keep(mask) => caps::keep_only(mask)?,
        Capabilities::Unchanged => {}
    }

    // c. bwrap's --userns2: the user namespace the command runs in.
    if let Some(fd) = prepared.spec.process.userns2_fd {
        sys::setns(fd, libc::CLONE_NEWUSER).context(Problem::JoinSecondUserNamespace)?;
    }

    // d. The caller's own seccomp programs (bwrap's --seccomp,
    //    --add-seccomp-fd), last, so they need not allow any of our steps.
    for program in &prepared.spec.process.seccomp_programs {
        seccomp::install_caller_program(program)?;
    }

    Ok(())
}

/// The workload's last steps for an executor without PID 1 (Landlock
/// mode): the environment, working directory, descriptors, signal mask
/// and identity, then execve.
pub(crate) fn exec_after_isolation(prepared: &Prepared) -> Result<Infallible> {
    prepare_and_exec(prepared, None)
}

/// The steps after PID 1's go, ending in execve. `broker_link` is where
/// PID 1 sends the pinned grants when Landlock enforces them.
fn prepare_and_exec(prepared: &Prepared, broker_link: Option<OwnedFd>) -> Result<Infallible> {
    // 5b. --info-fd / --json-status-fd: the launcher has written them (it
    //     answers once it has our pid); without its answer it is gone.
    if let Some(fd) = &prepared.report_pid {
        let mut byte = [0u8; 1];
        if !matches!(sys::read(fd.as_raw_fd(), &mut byte), Ok(1)) {
            sys::exit_now(exit::SETUP);
        }
    }

    // 5c. --allow-unix on Landlock ABI 9: the pinned grants PID 1 sent
    //     before the go, and the ruleset that allows only them (and the
    //     sandbox's own sockets); the descriptors are closed at once.
    if let Some(link) = broker_link.filter(|_| prepared.unix_by_landlock) {
        let pins = (0..prepared.spec.unix_grants.len())
            .map(|_| sys::receive_fd(link.as_raw_fd()))
            .collect::<Result<Vec<_>, _>>()
            .context("receive the pinned unix sockets")?;
        crate::broker::landlock::restrict_to(&pins, prepared.spec.namespaces.net)?;
    }

    // 6. The environment: the caller's, then --setenv, --unsetenv and
    //    --clearenv in argv order.
    let mut env = environment(prepared);

    // 7. Working directory, which PWD names.
    let cwd = enter_working_directory(prepared, &env)?;
    env.set(OsStr::new("PWD"), cwd.as_os_str());

    // 8. No descriptor above 2 survives execve except by its own choice:
    //    the launcher marked inherited ones CLOEXEC while it could still see
    //    /proc; close_range repeats it here where the kernel has it. (bwrap
    //    mode passes the caller's descriptors on, as bubblewrap does; the
    //    launcher marked those an option consumes.)
    if prepared.features.close_range && !prepared.spec.process.keep_inherited_fds {
        sys::close_range_cloexec(3)?;
    }

    // 9. The caller's signal mask (the launcher blocked signals for its
    //    signalfd). Dispositions were never changed, except an ignored
    //    SIGCHLD, which stays reset to default on purpose.
    sys::sigprocmask(libc::SIG_SETMASK, &prepared.signals.caller_mask)?;

    // 10. Everything execve needs, built before the privileges go.
    let (argv, envp, path_var) = exec_arguments(prepared, &env)?;

    // 11. --block-fd: the caller's last word before the command runs.
    if let Some(fd) = prepared.spec.process.block_fd {
        let mut byte = [0u8; 1];
        let _ = sys::read(fd, &mut byte);
        let _ = sys::close(fd);
    }

    // 12. The identity and privileges the command runs with.
    take_final_identity(prepared)?;

    // 13. execve. On success the status pipe (CLOEXEC) closes and the
    //     launcher knows the workload runs.
    Err(exec_failure(
        &prepared.spec.command[0],
        &argv,
        &envp,
        &path_var,
    ))
}

/// The workload's environment: ordered like the caller's, with an index so
/// that 100,000-word `--setenv` profiles stay linear.
struct Environment {
    vars: Vec<(OsString, OsString)>,
    index: HashMap<OsString, usize>,
}

impl Environment {
    fn new(vars: impl Iterator<Item = (OsString, OsString)>) -> Environment {
        let mut env = Environment {
            vars: Vec::new(),
            index: HashMap::new(),
        };
        for (k, v) in vars {
            env.set(&k, &v);
        }
        env
    }

    fn get(&self, key: &str) -> Option<OsString> {
        let i = *self.index.get(OsStr::new(key))?;
        Some(self.vars[i].1.clone())
    }

    /// Removes `key` (the index is rebuilt: unsets are few).
    fn unset(&mut self, key: &OsStr) {
        if self.index.remove(key).is_some() {
            self.vars.retain(|(k, _)| k != key);
            self.index = self
                .vars
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
        }
    }

    fn clear(&mut self) {
        self.vars.clear();
        self.index.clear();
    }

    /// Sets `key`, replacing an earlier value in place (last one wins).
    fn set(&mut self, key: &OsStr, value: &OsStr) {
        match self.index.get(key) {
            Some(&i) => self.vars[i].1 = value.to_os_string(),
            None => {
                self.index.insert(key.to_os_string(), self.vars.len());
                self.vars.push((key.to_os_string(), value.to_os_string()));
            }
        }
    }
}

/// Tries to execute `command` (searching PATH when it has no slash) and
/// returns the error to report: 127 when nothing was found, 126 when
/// something was found but could not be executed.
fn exec_failure(
    command: &OsStr,
    argv: &[CString],
    envp: &[CString],
    path_var: &OsStr,
) -> anyhow::Error {
    let candidates: Vec<PathBuf> = if command.as_bytes().contains(&b'/') {
        vec![PathBuf::from(command)]
    } else {
        path_var
            .as_bytes()
            .split(|b| *b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
                Path::new(OsStr::from_bytes(dir)).join(command)
            })
            .collect()
    };
    let mut found_but_refused: Option<(PathBuf, i32)> = None;
    for candidate in &candidates {
        let Ok(path) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        let err = sys::execve(&path, argv, envp);
        match err.errno() {
            libc::ENOENT | libc::ENOTDIR => continue,
            // EACCES from a PATH directory we may not search is "not
            // here", as in a shell; only an existing file refused is 126.
            libc::EACCES if candidates.len() > 1 && std::fs::metadata(candidate).is_err() => {
                continue;
            }
            libc::EACCES if candidates.len() > 1 => {
                found_but_refused.get_or_insert((candidate.clone(), libc::EACCES));
            }
            errno => {
                found_but_refused = Some((candidate.clone(), errno));
                break;
            }
        }
    }
    let failure = match found_but_refused {
        Some((path, errno)) => ExecFailure {
            kind: ExecKind::Refused,
            path,
            errno,
        },
        None if candidates.len() == 1 && command.as_bytes().contains(&b'/') => ExecFailure {
            kind: ExecKind::Missing,
            path: PathBuf::from(command),
            errno: libc::ENOENT,
        },
        None => ExecFailure {
            kind: ExecKind::NoneInPath,
            path: PathBuf::from(command),
            errno: libc::ENOENT,
        },
    };
    anyhow::Error::new(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setenv_replaces_and_last_wins() {
        let base = [("A", "1"), ("B", "2")].map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let mut env = Environment::new(base.into_iter());
        env.set(OsStr::new("A"), OsStr::new("3"));
        env.set(OsStr::new("C"), OsStr::new("5"));
        env.set(OsStr::new("A"), OsStr::new("4"));
        assert_eq!(env.get("A").unwrap(), "4");
        let keys: Vec<_> = env.vars.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, ["A", "B", "C"]);
        env.unset(OsStr::new("B"));
        env.set(OsStr::new("A"), OsStr::new("5"));
        assert_eq!(env.get("A").unwrap(), "5");
        assert_eq!(env.get("B"), None);
        assert_eq!(env.get("C").unwrap(), "5");
        env.clear();
        env.set(OsStr::new("D"), OsStr::new("6"));
        let keys: Vec<_> = env.vars.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, ["D"]);
    }
}
