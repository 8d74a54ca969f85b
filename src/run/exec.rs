//! The workload process: the last steps before execve, in their fixed order.
//!
//! Forked by PID 1 after the mount tree is in place; starts with PID 1's
//! capabilities over the sandbox's namespaces and ends, at execve, with
//! none, under no_new_privs and (if asked) the seccomp filter. A failure at
//! any step is reported to the launcher over the status pipe with SPEC's
//! exit code (125 setup, 126 not executable, 127 not found).

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use super::{Prepared, report};
use crate::exit::{self, Exit};
use crate::{caps, seccomp, sys};

/// PATH when the workload's environment has none (as execvp(3) assumes).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub fn workload(prepared: &Prepared, status_fd: i32, barrier: OwnedFd) -> ! {
    match prepare_and_exec(prepared, barrier) {
        Ok(never) => match never {},
        Err(e) => {
            // The launcher prefixes "run: " when it prints the line.
            report::fail(status_fd, exit::code_of(&e), &exit::describe(&e))
        }
    }
}

fn prepare_and_exec(prepared: &Prepared, barrier: OwnedFd) -> Result<Infallible> {
    // 1. Die with PID 1 (PID 1 dying kills the namespace anyway; this also
    //    covers the instant before the kernel does). Our parent is PID 1,
    //    so a different parent means it is already gone.
    if !sys::die_with_parent(1)? {
        sys::exit_now(exit::SETUP);
    }

    // 2. A new session with no controlling terminal: TIOCSTI cannot inject
    //    input into the caller's terminal.
    sys::setsid()?;

    // 3. The environment: the caller's, then --setenv in order.
    let mut env = Environment::new(std::env::vars_os());
    for (key, value) in &prepared.spec.setenv {
        env.set(key, value);
    }

    // 4. Working directory: the spawn-time one if it exists in the
    //    sandbox, else $HOME, else /. PWD says which.
    let home = env.get("HOME").map(PathBuf::from);
    let cwd = [prepared.cwd.clone(), home, Some(PathBuf::from("/"))]
        .into_iter()
        .flatten()
        .find(|dir| dir.is_absolute() && sys::chdir(dir.as_os_str()).is_ok())
        .ok_or_else(|| anyhow!("no usable working directory (not even /)"))?;
    env.set(OsStr::new("PWD"), cwd.as_os_str());

    // 5. No descriptor above 2 survives execve except by its own choice:
    //    the launcher marked inherited ones CLOEXEC while it could still see
    //    /proc; close_range repeats it here where the kernel has it.
    if prepared.features.close_range {
        sys::close_range_cloexec(3)?;
    }

    // 6. The caller's signal mask (the launcher blocked signals for its
    //    signalfd). Dispositions were never changed, except an ignored
    //    SIGCHLD, which stays reset to default on purpose.
    sys::sigprocmask(libc::SIG_SETMASK, &prepared.signals.caller_mask)?;

    // 7. Everything execve needs, built before the privileges go.
    let argv: Vec<CString> = prepared
        .spec
        .command
        .iter()
        .map(|a| sys::cstr(a))
        .collect::<Result<_, _>>()?;
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

    // 8. No capabilities in any set, bounding included.
    caps::drop_all()?;

    // 9. no_new_privs was set by the launcher and is inherited; verify.
    if sys::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, "PR_GET_NO_NEW_PRIVS")? != 1 {
        bail!("no_new_privs is not set");
    }

    // 10. Wait until PID 1 has closed its end of the status pipe (EOF on
    //     the barrier, see init.rs), so our execve is what the launcher sees.
    let mut byte = [0u8; 1];
    sys::read(barrier.as_raw_fd(), &mut byte)?;
    drop(barrier);

    // 11. seccomp last: every step above may use any syscall.
    if prepared.spec.seccomp_unix_block {
        seccomp::install_unix_block()?;
    }

    // 12. execve. On success the status pipe (CLOEXEC) closes and the
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
    match found_but_refused {
        Some((path, errno)) => anyhow::Error::new(Exit {
            code: exit::NOT_EXECUTABLE,
            message: format!(
                "execute {}: {}",
                path.display(),
                std::io::Error::from_raw_os_error(errno)
            ),
        }),
        None if candidates.len() == 1 && command.as_bytes().contains(&b'/') => {
            anyhow::Error::new(Exit {
                code: exit::NOT_FOUND,
                message: format!(
                    "execute {}: {}",
                    Path::new(command).display(),
                    std::io::Error::from_raw_os_error(libc::ENOENT)
                ),
            })
        }
        None => anyhow::Error::new(Exit {
            code: exit::NOT_FOUND,
            message: format!(
                "execute {}: command not found in PATH",
                Path::new(command).display()
            ),
        }),
    }
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
    }
}
