//! Capability drop for the workload.
//!
//! Runs in the workload process just before seccomp and execve. As root
//! without a user namespace it holds the host's full set; in a user
//! namespace it holds the full set of that namespace. Invariant: after
//! [`drop_all`] the effective, permitted, inheritable, ambient and bounding
//! sets are all empty, verified by reading them back; with an empty
//! bounding set even a uid-0 execve or a file capability grants nothing.

use anyhow::{Result, bail};
use caps::CapSet;

use crate::sys;

pub fn drop_all() -> Result<()> {
    // Bounding first: dropping from it needs CAP_SETPCAP, which the later
    // steps remove. Walk until the kernel says the number is past its last
    // capability, so capabilities newer than the `caps` crate go too.
    let mut cap = 0;
    while sys::capbset_drop(cap)? {
        cap += 1;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| anyhow::anyhow!("clear {set:?} capabilities: {e}"))?;
    }
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
        CapSet::Bounding,
    ] {
        let left = caps::read(None, set).map_err(|e| anyhow::anyhow!("read {set:?}: {e}"))?;
        if !left.is_empty() {
            bail!("capabilities left in the {set:?} set after dropping: {left:?}");
        }
    }
    Ok(())
}
