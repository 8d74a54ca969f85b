//! Linux 7.1+ (Landlock ABI 9): the kernel enforces `--allow-unix`
//! itself, with no broker. `LANDLOCK_ACCESS_FS_RESOLVE_UNIX` is the only
//! right the ruleset handles (nothing else of the filesystem is
//! restricted by it): a pathname socket may be reached only through a
//! rule, one per pinned grant, or when a process of the same Landlock
//! domain (the sandbox) created it, which is SPEC §2.9's policy to the
//! letter; rules attach to the pinned inodes, so a rename or a new file
//! at a grant's path is not granted. Abstract sockets are scoped to the
//! domain (ABI 6) unless the sandbox has a network namespace of its own.
//!
//! Fail-closed: the ruleset is a hard requirement. Anything less than
//! fully enforced is an error, never a best effort.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};
use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, RulesetStatus, Scope,
};

/// The first Landlock ABI with `LANDLOCK_ACCESS_FS_RESOLVE_UNIX`.
const RESOLVE_UNIX_ABI: i64 = 9;

/// Whether a kernel of Landlock ABI `abi` enforces the grants itself.
pub fn enforces_grants(abi: Option<i64>) -> bool {
    abi.is_some_and(|abi| abi >= RESOLVE_UNIX_ABI)
}

/// Whether the running kernel enforces the grants itself (the test probe
/// can hide Landlock to keep the broker's path under test there).
pub fn kernel_enforces_grants() -> bool {
    enforces_grants(crate::probe::landlock_abi())
}

/// Restricts the calling thread (and what it starts) to the `pins`:
/// the workload's last step before its identity is final.
pub fn restrict_to(pins: &[OwnedFd], abstract_ok: bool) -> Result<()> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::ResolveUnix)?;
    if !abstract_ok {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket)?;
    }
    let rules = pins
        .iter()
        .map(|pin| Ok::<_, RulesetError>(PathBeneath::new(pin, AccessFs::ResolveUnix)));
    let status = ruleset
        .create()?
        .add_rules(rules)?
        .restrict_self()
        .context("--allow-unix: restrict unix sockets with Landlock")?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        bail!(
            "--allow-unix: Landlock enforces the unix socket grants only partly ({:?})",
            status.ruleset
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{self, Fork};
    use std::os::fd::AsRawFd;

    #[test]
    fn abi_9_and_later_enforce_the_grants() {
        assert!(!enforces_grants(None));
        assert!(!enforces_grants(Some(7)));
        assert!(!enforces_grants(Some(8)));
        assert!(enforces_grants(Some(9)));
        assert!(enforces_grants(Some(10)));
    }

    /// In a child (a ruleset cannot be undone): fully enforced where the
    /// kernel has ABI 9, an error anywhere else, never a quiet partial
    /// ruleset. Where it is enforced, a socket of no grant is EACCES.
    #[test]
    fn the_ruleset_is_enforced_fully_or_refused() {
        let (status_r, status_w) = sys::pipe_cloexec().unwrap();
        match sys::fork().unwrap() {
            Fork::Child => {
                let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "NNP");
                let byte = match restrict_to(&[], false) {
                    Ok(()) => b'y',
                    Err(_) => b'n',
                };
                let _ = sys::write_all(status_w.as_raw_fd(), &[byte]);
                sys::exit_now(0)
            }
            Fork::Parent(pid) => {
                drop(status_w);
                let mut byte = [0u8; 1];
                sys::read(status_r.as_raw_fd(), &mut byte).unwrap();
                sys::wait_pid(pid).unwrap();
                let want = if kernel_enforces_grants() { b'y' } else { b'n' };
                assert_eq!(byte[0], want);
            }
        }
    }
}
