//! `run`'s own steps, one at a time, for `check` (SPEC §6): the same
//! functions in the same order, in a throwaway process tree, each step
//! reporting whether it worked and, if not, the call the kernel refused.
//!
//! Nothing here imitates `run`: a step is the code `run` executes, so a
//! step that passes here cannot fail there for the machine's sake.
//!
//! ```text
//! check
//! └── C  namespaces (as run: direct, else in a user namespace), loopback
//!     └── P  PID 1 of the new PID namespace: its mount namespace, the
//!            mount tree, pivoted
//!         └── W  session keyring, seccomp filter
//! ```

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};

use super::{mount, namespaces, status};
use crate::plan::RunSpec;
use crate::probe::Features;
use crate::sys::{self, Fork, SysError};
use crate::{exit, seccomp};

/// One of run's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Namespaces,
    Loopback,
    MountTree,
    Keyring,
    Seccomp,
}

pub const STEPS: [Step; 5] = [
    Step::Namespaces,
    Step::Loopback,
    Step::MountTree,
    Step::Keyring,
    Step::Seccomp,
];

impl Step {
    /// The stable name `check` prints (and `--json` carries).
    pub fn name(self) -> &'static str {
        match self {
            Step::Namespaces => "namespaces",
            Step::Loopback => "loopback",
            Step::MountTree => "mount tree",
            Step::Keyring => "session keyring",
            Step::Seccomp => "seccomp filter",
        }
    }
}

/// What one step did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub step: Step,
    pub ok: bool,
    /// What was done, or the error line.
    pub detail: String,
    /// The refused call, when the kernel refused.
    pub refusal: Option<SysError>,
}

/// Runs every step of `plan` (the SDK's usual sandbox, as `run` parses
/// it) in a throwaway process tree and returns what each did, in order;
/// steps after a failure are missing (never reached).
pub fn run_steps(plan: &RunSpec) -> Result<Vec<Outcome>> {
    run_steps_until(plan, Step::Seccomp)
}

/// Like [`run_steps`], stopping after `last`: `--isolation auto` needs
/// only the namespace and mount steps.
pub fn run_steps_until(plan: &RunSpec, last: Step) -> Result<Vec<Outcome>> {
    let (read_end, write_end) = sys::pipe_cloexec()?;
    match sys::fork().context("fork the check child")? {
        Fork::Child => {
            drop(read_end);
            child(&write_end, plan, last);
            sys::exit_now(0)
        }
        Fork::Parent(pid) => {
            drop(write_end);
            let bytes = sys::read_to_end(read_end.as_raw_fd())?;
            sys::wait_pid(pid)?;
            Ok(status::unframe(&bytes)
                .into_iter()
                .filter_map(parse_record)
                .collect())
        }
    }
}

/// One record per step (see `status` for the codec): the step's index,
/// whether it worked, what was done or the error line, and the refused
/// call.
fn report(out: &OwnedFd, step: Step, result: Result<String>) -> bool {
    let index = STEPS.iter().position(|s| *s == step).expect("a step");
    let (ok, detail) = match &result {
        Ok(detail) => ("1", detail.clone()),
        Err(e) => ("0", exit::describe_plain(e)),
    };
    let mut fields = vec![
        index.to_string().into_bytes(),
        ok.into(),
        detail.into_bytes(),
    ];
    status::push_refusal(
        &mut fields,
        result.as_ref().err().and_then(crate::failure::refusal_of),
    );
    let _ = sys::write_all(out.as_raw_fd(), &status::frame(&fields));
    result.is_ok()
}

fn parse_record(fields: Vec<Vec<u8>>) -> Option<Outcome> {
    let text = |f: &Vec<u8>| String::from_utf8_lossy(f).into_owned();
    let step = *STEPS.get(text(fields.first()?).parse::<usize>().ok()?)?;
    let ok = fields.get(1)? == b"1";
    let detail = text(fields.get(2)?);
    let (refusal, _) = status::take_refusal(&fields[3..])?;
    Some(Outcome {
        step,
        ok,
        detail,
        refusal,
    })
}

/// C: the launcher's part of `run` (launch, steps 1 and 6–7).
fn child(out: &OwnedFd, plan: &RunSpec, last: Step) {
    if sys::die_with_parent(sys::getppid()).is_err() {
        return;
    }
    if sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS").is_err() {
        return;
    }
    let mut ns = namespaces::Entry::new(false);
    let net = if plan.namespaces.net {
        libc::CLONE_NEWNET
    } else {
        0
    };
    let namespaces = ns
        .unshare(net)
        .and_then(|()| ns.unshare(namespaces::launcher_flags(&plan.namespaces)));
    let how = if ns.in_userns {
        let (uid, _, gid, _) = sys::ids();
        format!("in a new user namespace (uid {uid}, gid {gid} mapped to themselves)")
    } else {
        "directly (CAP_SYS_ADMIN)".to_string()
    };
    let namespaces = namespaces.map(|()| format!("{how}: network, mount, PID, IPC, UTS, cgroup"));
    if !report(out, Step::Namespaces, namespaces) {
        return;
    }
    // Without a network namespace of its own the plan has no loopback to
    // bring up (the host's is up, and not ours to touch).
    let lo = if plan.namespaces.net {
        namespaces::loopback_up().map(|()| "lo up: 127.0.0.1 and ::1".to_string())
    } else {
        Ok("the host's (no network namespace in this plan)".to_string())
    };
    if !report(out, Step::Loopback, lo) {
        return;
    }
    in_child(out, Step::MountTree, |out| pid1(out, plan, last));
}

/// Runs `part` in a child and waits for it; a failed fork is reported as
/// `next`'s failure.
fn in_child(out: &OwnedFd, next: Step, part: impl FnOnce(&OwnedFd)) {
    match sys::fork() {
        Ok(Fork::Child) => {
            part(out);
            sys::exit_now(0)
        }
        Ok(Fork::Parent(pid)) => {
            let _ = sys::wait_pid(pid);
        }
        Err(e) => {
            report(out, next, Err(anyhow::Error::new(e)));
        }
    }
}

/// P: PID 1's part (pid1.rs): the mount tree, then the workload's steps
/// in a child of its own (workload.rs).
fn pid1(out: &OwnedFd, plan: &RunSpec, last: Step) {
    let tree = sys::unshare(libc::CLONE_NEWNS)
        .map_err(anyhow::Error::new)
        .and_then(|()| {
            mount::build_and_enter(&mount::TreeInput {
                steps: &plan.mounts,
                features: Features::detect(),
                host_cwd: None,
                tty: None,
                runtime: None,
                private_dirs: &[],
                proc_covers: mount::ProcCovers::needed(sys::ids().1 == 0, false),
                own_pid_namespace: true,
                refuse_symlink_destinations: false,
            })
        })
        .map(|_| format!("{} mount steps, pivoted into", plan.mounts.len()));
    if !report(out, Step::MountTree, tree) || last == Step::MountTree {
        return;
    }
    in_child(out, Step::Keyring, |out| workload(out, plan));
}

/// W: the workload's part (workload.rs `isolate`).
fn workload(out: &OwnedFd, plan: &RunSpec) {
    let keyring = sys::join_new_session_keyring()
        .map(|joined| {
            if joined {
                "joined a new anonymous one".to_string()
            } else {
                "the kernel has no keyrings".to_string()
            }
        })
        .map_err(anyhow::Error::new);
    if !report(out, Step::Keyring, keyring) {
        return;
    }
    let filter = seccomp::install(&seccomp::Filters::of(plan, false))
        .map(|_| "installed (the program run installs for this plan)".to_string());
    report(out, Step::Seccomp, filter);
}
