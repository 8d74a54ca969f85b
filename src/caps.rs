//! Capability drop for the workload (and bwrap mode's `--cap-add` /
//! `--cap-drop`, which keep a chosen set instead).
//!
//! Runs in the workload process just before seccomp and execve. As root
//! without a user namespace it holds the host's full set; in a user
//! namespace it holds the full set of that namespace. Invariant: after
//! [`drop_all`] the effective, permitted, inheritable, ambient and bounding
//! sets are all empty, verified by reading them back; with an empty
//! bounding set even a uid-0 execve or a file capability grants nothing.

use anyhow::{Result, bail};
use caps::{CapSet, Capability, CapsHashSet};

use crate::sys;

pub fn drop_all() -> Result<()> {
    keep_only(0)
}

/// Every capability this process can give up: all of them where it may
/// change the bounding set (CAP_SETPCAP), else the effective, permitted,
/// inheritable and ambient sets (Landlock mode as an unprivileged user,
/// where no namespace grants any). With no_new_privs set, a bounding set
/// left as it was gives nothing: nothing exec'd can gain a capability
/// beyond the (empty) permitted set.
pub fn drop_held() -> Result<()> {
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        return drop_all();
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| anyhow::anyhow!("clear ambient: {e}"))?;
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| anyhow::anyhow!("clear {set:?}: {e}"))?;
    }
    Ok(())
}

/// Whether this process holds CAP_SYS_ADMIN in its user namespace, which
/// decides whether a mount namespace can be made without a user namespace.
pub fn has_sys_admin() -> bool {
    caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(false)
}

/// The effective set as a mask (bit N = capability N): what a root caller
/// of bwrap hands the workload by default.
pub fn effective_mask() -> u64 {
    caps::read(None, CapSet::Effective).map_or(0, |set| mask_of(&set))
}

fn mask_of(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |mask, cap| mask | cap.bitmask())
}

/// A capability as libcap's `cap_from_name` reads it: `CAP_NAME` in any
/// case, or its number.
pub fn parse_name(name: &str) -> Option<u64> {
    if let Ok(number) = name.parse::<u8>() {
        return caps::all()
            .iter()
            .find(|cap| cap.index() == number)
            .map(Capability::bitmask);
    }
    let upper = name.to_ascii_uppercase();
    if !upper.starts_with("CAP_") {
        return None;
    }
    upper.parse::<Capability>().ok().map(|cap| cap.bitmask())
}

/// Leaves exactly the capabilities of `keep` in every set: the bounding
/// set loses the others (so no later execve can regain them), permitted,
/// effective and inheritable are `keep`, and each kept one is raised in the
/// ambient set so it survives the execve of a file without capabilities.
/// Invariant, verified by reading back: no set holds anything outside
/// `keep`. A capability asked for that the process does not hold (bwrap's
/// `--cap-add ALL` as root where the host's bounding set lacks some, as
/// in many containers) is left out, as bubblewrap leaves it: it could
/// never be raised, and raising less is never a loosening.
pub fn keep_only(keep: u64) -> Result<()> {
    let held =
        caps::read(None, CapSet::Permitted).map_err(|e| anyhow::anyhow!("read Permitted: {e}"))?;
    let keep = keep & mask_of(&held);
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // false: past the running kernel's last capability.
        if !sys::capbset_drop(cap)? {
            break;
        }
    }
    let wanted: CapsHashSet = caps::all()
        .into_iter()
        .filter(|cap| keep & cap.bitmask() != 0)
        .collect();
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| anyhow::anyhow!("clear ambient capabilities: {e}"))?;
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::set(None, set, &wanted).map_err(|e| {
            anyhow::anyhow!(
                "keep capabilities {:?} in the {set:?} set: {e}",
                names(&wanted)
            )
        })?;
    }
    for cap in &wanted {
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| anyhow::anyhow!("raise ambient {cap}: {e}"))?;
    }
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
        CapSet::Bounding,
    ] {
        let held = caps::read(None, set).map_err(|e| anyhow::anyhow!("read {set:?}: {e}"))?;
        let extra = mask_of(&held) & !keep;
        if extra != 0 {
            bail!("capabilities outside the kept set in the {set:?} set: {extra:#x}");
        }
    }
    Ok(())
}

fn names(set: &CapsHashSet) -> Vec<String> {
    let mut names: Vec<String> = set.iter().map(|cap| cap.to_string()).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_libcap() {
        assert_eq!(parse_name("CAP_SYS_ADMIN"), Some(1 << 21));
        assert_eq!(parse_name("cap_net_raw"), Some(1 << 13));
        assert_eq!(parse_name("21"), Some(1 << 21));
        assert_eq!(parse_name("sys_admin"), None);
        assert_eq!(parse_name("CAP_NOPE"), None);
        assert_eq!(parse_name("99"), None);
    }
}
