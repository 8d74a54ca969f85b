//! What the running kernel's Landlock really enforces. A vendor kernel
//! can report an ABI version without every feature of it, so each
//! feature the executor relies on is probed by creating a ruleset that
//! handles it (and dropping it): the ABI the executor uses is the
//! highest whose features all probed, never the number alone.

use landlock::{
    ABI, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetError, Scope,
};

/// A Landlock feature and the ABI that brought it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Renames and links across directories are checked (ABI 2).
    Refer,
    /// `truncate` is a right (ABI 3): without it a read-only file can be
    /// emptied.
    Truncate,
    /// TCP bind and connect rules (ABI 4).
    TcpRules,
    /// Device ioctls are a right (ABI 5).
    DeviceIoctls,
    /// Signal and abstract unix socket scoping (ABI 6).
    Scopes,
    /// Connecting to a unix socket by path is a right (ABI 9).
    ResolveUnix,
}

pub const FEATURES: [Feature; 6] = [
    Feature::Refer,
    Feature::Truncate,
    Feature::TcpRules,
    Feature::DeviceIoctls,
    Feature::Scopes,
    Feature::ResolveUnix,
];

impl Feature {
    pub fn since(self) -> i32 {
        match self {
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::TcpRules => 4,
            Feature::DeviceIoctls => 5,
            Feature::Scopes => 6,
            Feature::ResolveUnix => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::Refer => "refer",
            Feature::Truncate => "truncate",
            Feature::TcpRules => "tcp-rules",
            Feature::DeviceIoctls => "device-ioctls",
            Feature::Scopes => "scopes",
            Feature::ResolveUnix => "resolve-unix",
        }
    }

    /// Whether the kernel creates a ruleset handling this feature, as a
    /// hard requirement (the crate refuses one the reported ABI lacks;
    /// the kernel refuses one it does not know).
    fn works(self) -> bool {
        let base = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
        let ruleset: Result<_, RulesetError> = match self {
            Feature::Refer => base.handle_access(AccessFs::Refer),
            Feature::Truncate => base.handle_access(AccessFs::Truncate),
            Feature::TcpRules => base.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp),
            Feature::DeviceIoctls => base.handle_access(AccessFs::IoctlDev),
            Feature::Scopes => base.scope(Scope::Signal | Scope::AbstractUnixSocket),
            Feature::ResolveUnix => base.handle_access(AccessFs::ResolveUnix),
        }
        .and_then(|r| r.create().map(drop));
        ruleset.is_ok()
    }
}

/// The kernel's Landlock as the executor may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landlock {
    /// The ABI version the kernel reports.
    pub reported: i32,
    /// The highest ABI whose features all work here: what the rules and
    /// the gaps are computed for.
    pub usable: i32,
    /// The features that failed their probe although the reported ABI
    /// has them.
    pub missing: Vec<Feature>,
}

impl Landlock {
    /// Probes this kernel; None when Landlock is absent or disabled.
    pub fn probe() -> Option<Landlock> {
        let reported = crate::probe::landlock_abi()? as i32;
        if reported < 1 {
            return None;
        }
        let missing: Vec<Feature> = FEATURES
            .into_iter()
            .filter(|f| f.since() <= reported && !f.works())
            .collect();
        Some(Landlock {
            reported,
            usable: usable_abi(reported, &missing),
            missing,
        })
    }

    pub fn abi(&self) -> ABI {
        ABI::from(self.usable)
    }

    pub fn has(&self, feature: Feature) -> bool {
        feature.since() <= self.usable
    }
}

/// The highest ABI at or below `reported` that none of `missing` belongs to.
fn usable_abi(reported: i32, missing: &[Feature]) -> i32 {
    missing
        .iter()
        .map(|f| f.since() - 1)
        .fold(reported, i32::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_feature_lowers_the_usable_abi_below_it() {
        assert_eq!(usable_abi(7, &[]), 7);
        assert_eq!(usable_abi(6, &[Feature::Scopes]), 5);
        assert_eq!(usable_abi(6, &[Feature::Scopes, Feature::DeviceIoctls]), 4);
    }

    /// On the machine the tests run on, every feature its ABI reports
    /// works (a kernel that lied would fail here, as it should).
    #[test]
    fn this_kernel_has_what_it_reports() {
        if let Some(found) = Landlock::probe() {
            assert_eq!(found.missing, Vec::new());
            assert_eq!(found.usable, found.reported);
        }
    }
}
