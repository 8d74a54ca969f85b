//! What Landlock mode does not enforce (SPEC §2.8's permitted gaps), and
//! the plan settings it cannot express at all. Pure: from the plan and
//! the Landlock ABI, unit tested.

use super::features::Feature;
use crate::plan::RunSpec;

/// A permitted gap, reported before the workload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The host's other processes are visible in /proc (their memory,
    /// environment and descriptors are not: Landlock's ptrace scoping).
    ProcessesVisible,
    /// Below ABI 6: the host's processes can be signalled.
    SignalsUnscoped,
    /// The host's SysV IPC and POSIX message queues are reachable.
    HostIpc,
    /// Below ABI 6, with AF_UNIX allowed: the host's abstract unix
    /// sockets are reachable.
    AbstractSocketsUnscoped,
    /// The hostname and the cgroup view are the host's.
    HostnameAndCgroups,
    /// Below ABI 5, with `--dev`: ioctls on the devices it leaves open
    /// (a terminal opened by path, say) are not scoped.
    DeviceIoctlsUnscoped,
    /// Denying more: the directories from a writable bind down to a deny
    /// path cannot get new entries (their files keep their rights).
    DenyPathParentsSealed,
    /// Denying more: a directory above one out of reach (a tmpfs, a
    /// masked directory, `--dev`) cannot be listed, since a listing right
    /// reaches everything beneath it.
    ListingDenied,
    /// Denying more, with `--unshare-net`: the workload cannot serve TCP
    /// even to itself (namespace mode gives it a loopback of its own; on
    /// the host's, a listener would be the host's).
    TcpServersRefused,
    /// Denying more, with `--unshare-net` and `--allow-unix` where the
    /// broker cannot take sockets (containers): no listen at all, since a
    /// unix one cannot be told safely from a TCP one.
    UnixServersRefused,
}

impl Gap {
    /// Its id, for `--json-status-fd`'s `"gaps"` and the report line.
    pub fn id(self) -> &'static str {
        match self {
            Gap::ProcessesVisible => "host-processes-visible",
            Gap::SignalsUnscoped => "host-processes-signallable",
            Gap::HostIpc => "host-ipc",
            Gap::AbstractSocketsUnscoped => "host-abstract-sockets",
            Gap::HostnameAndCgroups => "host-hostname-and-cgroups",
            Gap::DeviceIoctlsUnscoped => "device-ioctls-unscoped",
            Gap::DenyPathParentsSealed => "deny-path-parents-sealed",
            Gap::ListingDenied => "listing-denied-above-hidden-directories",
            Gap::TcpServersRefused => "tcp-servers-refused",
            Gap::UnixServersRefused => "unix-servers-refused",
        }
    }
}

/// The gaps a run of `plan` has under Landlock ABI `abi`. `sealed`: the
/// view has a deny path inside a writable bind; `unlisted`: the rules
/// deny some directory's listing.
pub fn gaps_of(plan: &RunSpec, abi: i32, sealed: bool, unlisted: bool) -> Vec<Gap> {
    let mut gaps = vec![Gap::ProcessesVisible];
    if abi < Feature::Scopes.since() {
        gaps.push(Gap::SignalsUnscoped);
    }
    gaps.push(Gap::HostIpc);
    // Blocked, or brokered: the broker never reaches an abstract name on
    // the workload's behalf in this mode.
    let unix_blocked = plan.seccomp_unix_block || !plan.unix_grants.is_empty();
    if abi < Feature::Scopes.since() && !unix_blocked {
        gaps.push(Gap::AbstractSocketsUnscoped);
    }
    gaps.push(Gap::HostnameAndCgroups);
    let has_dev = plan
        .mounts
        .iter()
        .any(|s| matches!(s.op, crate::plan::MountOp::Dev { .. }));
    if abi < Feature::DeviceIoctls.since() && has_dev {
        gaps.push(Gap::DeviceIoctlsUnscoped);
    }
    if sealed {
        gaps.push(Gap::DenyPathParentsSealed);
    }
    if unlisted {
        gaps.push(Gap::ListingDenied);
    }
    if plan.namespaces.net {
        gaps.push(Gap::TcpServersRefused);
    }
    gaps
}

/// A plan setting Landlock mode cannot express without allowing more
/// (exit 125, naming the option).
pub fn unexpressible_setting(plan: &RunSpec) -> Option<(&'static str, &'static str)> {
    if plan.hostname.is_some() {
        return Some((
            "--hostname",
            "the hostname is the host's without a UTS namespace",
        ));
    }
    if !plan.exposes.is_empty() {
        return Some((
            "--expose",
            "there is no network namespace of the sandbox's own to forward into",
        ));
    }
    if plan.disable_userns {
        return Some((
            "--disable-userns",
            "user namespaces can be limited only inside one of the sandbox's own",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_close_two_gaps_from_abi_6() {
        let plan = RunSpec::default();
        let at4: Vec<_> = gaps_of(&plan, 4, false, false)
            .into_iter()
            .map(Gap::id)
            .collect();
        assert_eq!(
            at4,
            [
                "host-processes-visible",
                "host-processes-signallable",
                "host-ipc",
                "host-abstract-sockets",
                "host-hostname-and-cgroups"
            ]
        );
        let at6: Vec<_> = gaps_of(&plan, 6, true, false)
            .into_iter()
            .map(Gap::id)
            .collect();
        assert_eq!(
            at6,
            [
                "host-processes-visible",
                "host-ipc",
                "host-hostname-and-cgroups",
                "deny-path-parents-sealed"
            ]
        );
    }

    #[test]
    fn blocked_unix_sockets_close_the_abstract_gap() {
        let plan = RunSpec {
            seccomp_unix_block: true,
            ..RunSpec::default()
        };
        assert!(!gaps_of(&plan, 5, false, false).contains(&Gap::AbstractSocketsUnscoped));
    }

    #[test]
    fn settings_that_need_a_namespace_are_named() {
        let plan = RunSpec {
            hostname: Some("box".into()),
            ..RunSpec::default()
        };
        assert_eq!(unexpressible_setting(&plan).unwrap().0, "--hostname");
        assert_eq!(unexpressible_setting(&RunSpec::default()), None);
    }
}
