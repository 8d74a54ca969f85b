//! `--isolation auto` (SPEC §2.8): namespaces where this user can have
//! them here, else Landlock mode. The choice is made before anything is
//! entered: the launcher cannot leave a user namespace once it is in one,
//! so `run`'s own namespace and mount steps are rehearsed first in a
//! throwaway child (`run::selftest`, the steps `check` runs, up to the
//! mount tree), and the call the kernel refused decides.

use anyhow::Result;

use crate::diagnose::{self, Cause, Evidence};
use crate::plan::{Isolation, RunSpec};
use crate::run::selftest;
use crate::run::status::Wording;

/// Runs `spec` with namespaces, or under Landlock when the rehearsal
/// shows namespaces are refused to this user here for a cause that
/// means so; any other failure is namespace mode's to report.
pub fn launch(spec: RunSpec, parent_pid: i32, wording: Wording) -> Result<i32> {
    match refusing_cause(&spec)? {
        Some(cause) => super::launch::launch_because(spec, parent_pid, wording, cause.id()),
        None => crate::run::launch(spec, parent_pid, wording),
    }
}

/// The cause that keeps namespaces from this user here, if one does and
/// it is one to fall back for. The rehearsal uses the plan's namespaces
/// with an empty mount tree: a missing source path or a bad option is
/// the real run's error, never a reason to fall back.
fn refusing_cause(spec: &RunSpec) -> Result<Option<Cause>> {
    let rehearsal = RunSpec {
        namespaces: spec.namespaces.clone(),
        isolation: Isolation::Namespaces,
        ..RunSpec::default()
    };
    let outcomes = selftest::run_steps_until(&rehearsal, selftest::Step::MountTree)?;
    let Some(refusal) = outcomes
        .iter()
        .find(|o| !o.ok)
        .and_then(|o| o.refusal.as_ref())
    else {
        return Ok(None);
    };
    let cause = diagnose::classify(refusal.into(), &Evidence::gather());
    Ok(cause.filter(|c| c.means_no_namespaces()))
}
