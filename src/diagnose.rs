//! Why a sandbox cannot start here: one table of causes, shared by `run`'s
//! error line and by `check` (SPEC §6).
//!
//! [`classify`] is a pure function of a refused call (its name and errno)
//! and the [`Evidence`] read from the host (sysctls, security modules,
//! container signs), so every cause row is unit-tested without the machine
//! that produces it. The same refusal always names the same cause, whether
//! `run` hit it or `check` provoked it.

use std::sync::OnceLock;

use crate::probe;
use crate::sys::{Call, ProcFile, SysError};

/// The caller's effective uid, as it was when the launcher started: once
/// inside a user namespace whose maps could not be written, `geteuid`
/// says 65534 (the overflow uid), which would hide a root caller.
static CALLER_EUID: OnceLock<u32> = OnceLock::new();

/// Records the caller's identity; called first thing by the launcher.
pub fn remember_caller() {
    let _ = CALLER_EUID.set(crate::sys::ids().1);
}

/// What the host shows about itself, read in the caller's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Each of [`probe::SYSCTLS`], None when absent or unreadable.
    pub sysctls: Vec<(&'static str, Option<i64>)>,
    /// Active security modules (`/sys/kernel/security/lsm`).
    pub lsms: Vec<String>,
    /// Signs of running inside a container (files and markers found).
    pub container: Vec<String>,
    /// The caller is itself inside a user namespace (not the initial one).
    pub nested_userns: bool,
    /// Windows Subsystem for Linux 1, which has no namespaces at all.
    pub wsl1: bool,
    /// The caller's own seccomp mode (`Seccomp:` in /proc/self/status).
    pub seccomp_mode: Option<u32>,
    pub is_root: bool,
}

impl Evidence {
    /// Reads the evidence from this process's view of the host.
    pub fn gather() -> Evidence {
        Evidence {
            sysctls: probe::sysctls(),
            lsms: probe::security_modules(),
            container: probe::container_signs(),
            nested_userns: probe::in_nested_user_namespace(),
            wsl1: probe::is_wsl1(),
            seccomp_mode: probe::seccomp_mode(),
            is_root: CALLER_EUID
                .get()
                .copied()
                .unwrap_or_else(|| crate::sys::ids().1)
                == 0,
        }
    }

    pub fn sysctl(&self, name: &str) -> Option<i64> {
        self.sysctls
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }

    fn apparmor_restricts(&self) -> bool {
        self.sysctl("kernel.apparmor_restrict_unprivileged_userns") == Some(1)
            && (self.lsms.is_empty() || self.lsms.iter().any(|l| l == "apparmor"))
    }
}

/// Why a sandbox cannot start. The ids are stable: `check --json` prints
/// them for SDKs to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Wsl1,
    KernelLacksNamespaces,
    UsernsDisabledByParent,
    MaxUserNamespacesZero,
    MaxUserNamespacesReached,
    UnprivilegedUsernsCloneOff,
    RootWithoutCapabilities,
    AppArmorRestrictsUserns,
    ContainerRefusesNamespaces,
    SeccompRefusesUnshare,
    NamespacesRefused,
    ProcCovered,
    MountsRefused,
    MountLimit,
    NoSeccompFilter,
}

/// A refused system call: what `run` or `check` saw fail.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    pub call: &'a Call,
    pub errno: i32,
}

impl<'a> From<&'a SysError> for Refusal<'a> {
    fn from(e: &'a SysError) -> Self {
        Refusal {
            call: e.call(),
            errno: e.errno(),
        }
    }
}

fn is_unshare(call: &Call) -> bool {
    matches!(call, Call::Unshare { .. })
}

fn is_userns_setup(call: &Call) -> bool {
    match call {
        Call::Unshare { flags } => flags & libc::CLONE_NEWUSER != 0,
        Call::WriteProc(file) => *file != ProcFile::MaxUserNamespaces,
        _ => false,
    }
}

fn is_id_map(call: &Call) -> bool {
    matches!(call, Call::WriteProc(ProcFile::UidMap | ProcFile::GidMap))
}

fn is_proc_mount(call: &Call) -> bool {
    matches!(call, Call::Mount { fstype: Some(fs), .. } if fs == "proc")
}

/// A user namespace's own `user.max_user_namespaces` at or above this is
/// not what refused a nested one (the caller's own namespaces there are a
/// handful): the refusing limit belongs to an ancestor.
const NESTED_LIMIT_FLOOR: i64 = 64;

/// The cause of `refusal`, or None when it is not the machine refusing
/// sandboxes (a missing source path, say).
pub fn classify(refusal: Refusal, ev: &Evidence) -> Option<Cause> {
    let Refusal { call, errno } = refusal;
    let denied = errno == libc::EPERM || errno == libc::EACCES;
    let namespace_step = is_unshare(call) || is_userns_setup(call);
    if ev.wsl1 && (namespace_step || call.is_mount()) {
        return Some(Cause::Wsl1);
    }
    if is_unshare(call) && errno == libc::EINVAL {
        return Some(Cause::KernelLacksNamespaces);
    }
    if is_userns_setup(call) && (errno == libc::ENOSPC || denied) {
        let max = ev.sysctl("user.max_user_namespaces");
        if max == Some(0) {
            return Some(if ev.nested_userns {
                Cause::UsernsDisabledByParent
            } else {
                Cause::MaxUserNamespacesZero
            });
        }
        // Inside a user namespace whose own limit is far from reached, the
        // limit that refused is an ancestor's, which cannot be read from
        // here: a sandbox that forbade further user namespaces (bwrap's
        // --disable-userns and ours set 1 one level up, then use it).
        if errno == libc::ENOSPC && ev.nested_userns && max.is_none_or(|m| m >= NESTED_LIMIT_FLOOR)
        {
            return Some(Cause::UsernsDisabledByParent);
        }
        if errno == libc::ENOSPC {
            return Some(Cause::MaxUserNamespacesReached);
        }
        if ev.sysctl("kernel.unprivileged_userns_clone") == Some(0) && !ev.is_root {
            return Some(Cause::UnprivilegedUsernsCloneOff);
        }
    }
    // Linux 5.12+: mapping uid 0 into a user namespace needs CAP_SETFCAP,
    // which root without capabilities (inside another sandbox, or a
    // container that dropped them) lacks.
    if ev.is_root && errno == libc::EPERM && is_id_map(call) {
        return Some(Cause::RootWithoutCapabilities);
    }
    // Ubuntu 23.10+: either unshare is refused, or (24.04) it succeeds and
    // every capability inside is denied, so the maps or the first mount
    // fail with EPERM/EACCES.
    if denied && (namespace_step || call.is_mount()) && ev.apparmor_restricts() && !ev.is_root {
        return Some(Cause::AppArmorRestrictsUserns);
    }
    if is_unshare(call) && denied {
        if !ev.container.is_empty() {
            return Some(Cause::ContainerRefusesNamespaces);
        }
        if ev.seccomp_mode == Some(2) {
            return Some(Cause::SeccompRefusesUnshare);
        }
        return Some(Cause::NamespacesRefused);
    }
    if is_proc_mount(call) && denied {
        return Some(Cause::ProcCovered);
    }
    if call.is_mount() && errno == libc::ENOSPC {
        return Some(Cause::MountLimit);
    }
    if call.is_mount() && denied {
        return Some(Cause::MountsRefused);
    }
    if *call == Call::SeccompInstall && errno == libc::EINVAL {
        return Some(Cause::NoSeccompFilter);
    }
    None
}

impl Cause {
    /// Whether this cause means "no namespaces for this user on this
    /// machine", the only failures `--isolation auto` falls back to
    /// Landlock mode for (SPEC §2.8). A limit that is merely reached, a
    /// covered /proc (`--host-proc` fixes it), a kernel without seccomp
    /// filters or WSL 1 (no Landlock either) are not: they fail as in
    /// namespace mode.
    pub fn means_no_namespaces(self) -> bool {
        matches!(
            self,
            Cause::KernelLacksNamespaces
                | Cause::UsernsDisabledByParent
                | Cause::MaxUserNamespacesZero
                | Cause::UnprivilegedUsernsCloneOff
                | Cause::RootWithoutCapabilities
                | Cause::AppArmorRestrictsUserns
                | Cause::ContainerRefusesNamespaces
                | Cause::SeccompRefusesUnshare
                | Cause::NamespacesRefused
                | Cause::MountsRefused
        )
    }

    /// The stable id printed by `check --json`.
    pub fn id(self) -> &'static str {
        match self {
            Cause::Wsl1 => "wsl1",
            Cause::KernelLacksNamespaces => "kernel-lacks-namespaces",
            Cause::UsernsDisabledByParent => "userns-disabled-by-parent",
            Cause::MaxUserNamespacesZero => "max-user-namespaces-zero",
            Cause::MaxUserNamespacesReached => "max-user-namespaces-reached",
            Cause::UnprivilegedUsernsCloneOff => "unprivileged-userns-clone-off",
            Cause::RootWithoutCapabilities => "root-without-capabilities",
            Cause::AppArmorRestrictsUserns => "apparmor-restricts-userns",
            Cause::ContainerRefusesNamespaces => "container-refuses-namespaces",
            Cause::SeccompRefusesUnshare => "seccomp-refuses-unshare",
            Cause::NamespacesRefused => "namespaces-refused",
            Cause::ProcCovered => "proc-covered",
            Cause::MountsRefused => "mounts-refused",
            Cause::MountLimit => "mount-limit",
            Cause::NoSeccompFilter => "no-seccomp-filter",
        }
    }

    /// One sentence: what is wrong, with the values that show it.
    pub fn summary(self, ev: &Evidence) -> String {
        let max = ev
            .sysctl("user.max_user_namespaces")
            .map_or("unknown".to_string(), |v| v.to_string());
        match self {
            Cause::Wsl1 => "WSL 1 has no Linux namespaces".into(),
            Cause::KernelLacksNamespaces => {
                "the kernel was built without a namespace type run needs \
                 (CONFIG_USER_NS, CONFIG_NET_NS, CONFIG_PID_NS, CONFIG_IPC_NS, \
                 CONFIG_UTS_NS, CONFIG_CGROUPS)"
                    .into()
            }
            Cause::UsernsDisabledByParent => {
                "this process runs inside a user namespace whose creator forbade \
                 further ones (a user.max_user_namespaces of 0 here or above, as \
                 under bwrap --disable-userns)"
                    .into()
            }
            Cause::MaxUserNamespacesZero => "user namespaces are disabled \
                 (user.max_user_namespaces=0)"
                .into(),
            Cause::MaxUserNamespacesReached => {
                format!("the user.max_user_namespaces limit ({max}) is reached")
            }
            Cause::UnprivilegedUsernsCloneOff => "unprivileged user namespaces are disabled \
                 (kernel.unprivileged_userns_clone=0)"
                .into(),
            Cause::RootWithoutCapabilities => "uid 0 without capabilities cannot map itself into \
                 a user namespace (Linux 5.12+ wants CAP_SETFCAP for that), and cannot create \
                 namespaces without one"
                .into(),
            Cause::AppArmorRestrictsUserns => format!(
                "AppArmor restricts unprivileged user namespaces \
                 (kernel.apparmor_restrict_unprivileged_userns=1, LSMs: {})",
                if ev.lsms.is_empty() {
                    "unknown".to_string()
                } else {
                    ev.lsms.join(",")
                }
            ),
            Cause::ContainerRefusesNamespaces => format!(
                "this container refuses new namespaces (its seccomp profile, or no \
                 CAP_SYS_ADMIN; signs: {})",
                ev.container.join(", ")
            ),
            Cause::SeccompRefusesUnshare => "a seccomp filter on this process refuses \
                 unshare(2) (Seccomp: 2 in /proc/self/status)"
                .into(),
            Cause::NamespacesRefused => "new namespaces are refused here \
                 (a security module, or a chroot)"
                .into(),
            Cause::ProcCovered => "the host's /proc is partly covered (as in a container), \
                 so a fresh procfs is refused"
                .into(),
            Cause::MountsRefused => "mounts are refused inside the new namespaces \
                 (a security module denies the capabilities there)"
                .into(),
            Cause::MountLimit => "too many mounts: the fs.mount-max limit is reached".into(),
            Cause::NoSeccompFilter => {
                "the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)".into()
            }
        }
    }

    /// The commands (or, where none exists, the one action) that fix it,
    /// best first. `exe` is this binary's absolute path.
    pub fn fixes(self, exe: &str) -> Vec<String> {
        let persist = |setting: &str| {
            format!("echo '{setting}' | sudo tee /etc/sysctl.d/90-srt-launcher.conf")
        };
        match self {
            Cause::Wsl1 => vec!["wsl --set-version <distribution> 2   (in Windows)".into()],
            Cause::KernelLacksNamespaces => {
                vec!["boot a kernel built with the namespace options above".into()]
            }
            Cause::UsernsDisabledByParent => vec![
                "start srt-launcher outside that sandbox, or create the sandbox \
                 without --disable-userns"
                    .into(),
            ],
            Cause::MaxUserNamespacesZero | Cause::MaxUserNamespacesReached => vec![
                "sudo sysctl -w user.max_user_namespaces=15000".into(),
                persist("user.max_user_namespaces=15000"),
            ],
            Cause::UnprivilegedUsernsCloneOff => vec![
                "sudo sysctl -w kernel.unprivileged_userns_clone=1".into(),
                persist("kernel.unprivileged_userns_clone=1"),
            ],
            Cause::RootWithoutCapabilities => vec![
                "run srt-launcher as a regular user here, or give it CAP_SYS_ADMIN \
                 (outside any sandbox that dropped capabilities)"
                    .into(),
            ],
            Cause::AppArmorRestrictsUserns => vec![
                format!("sudo {exe} check --apparmor-profile --install"),
                "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0".into(),
            ],
            Cause::ContainerRefusesNamespaces => vec![
                "docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined … \
                 (podman: the same options)"
                    .into(),
                "give the container CAP_SYS_ADMIN: docker run --cap-add SYS_ADMIN …".into(),
            ],
            Cause::SeccompRefusesUnshare => vec![
                "start srt-launcher from a process whose seccomp policy allows unshare(2)".into(),
            ],
            Cause::NamespacesRefused => vec![
                "look for the denial: sudo journalctl -k | grep -i -e denied -e apparmor".into(),
            ],
            Cause::ProcCovered => vec!["pass --host-proc /proc instead of --proc /proc".into()],
            Cause::MountsRefused => vec![
                "look for the denial: sudo journalctl -k | grep -i -e denied -e apparmor".into(),
            ],
            Cause::MountLimit => vec!["sudo sysctl -w fs.mount-max=200000".into()],
            Cause::NoSeccompFilter => {
                vec!["boot a kernel built with CONFIG_SECCOMP_FILTER=y".into()]
            }
        }
    }
}

/// This binary's absolute path, for the commands in a fix.
pub fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "srt-launcher".into())
}

/// The clause `run` appends to its error line when the machine refused:
/// the cause, its first fix, and where to read more.
pub fn hint_for(err: &SysError) -> Option<String> {
    let ev = Evidence::gather();
    let cause = classify(err.into(), &ev)?;
    let fix = cause.fixes(&exe_path()).remove(0);
    Some(format!(
        "{}: {fix}; run `srt-launcher check` for details",
        cause.summary(&ev)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSHARE_USER: Call = Call::Unshare {
        flags: libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
    };

    fn mount(fstype: Option<&str>) -> Call {
        Call::Mount {
            fstype: fstype.map(String::from),
            args: String::new(),
        }
    }

    fn evidence(sysctls: [Option<i64>; 3]) -> Evidence {
        Evidence {
            sysctls: probe::SYSCTLS
                .iter()
                .zip(sysctls)
                .map(|((name, _), v)| (*name, v))
                .collect(),
            lsms: vec!["capability".into(), "landlock".into()],
            ..Evidence::default()
        }
    }

    /// A permissive machine: nothing restricts user namespaces.
    fn open() -> Evidence {
        evidence([Some(0), Some(1), Some(15000)])
    }

    fn cause(call: Call, errno: i32, ev: &Evidence) -> Option<Cause> {
        classify(Refusal { call: &call, errno }, ev)
    }

    #[test]
    fn ubuntu_24_04_unshare_works_then_mount_is_denied() {
        let mut ev = evidence([Some(1), None, Some(15000)]);
        ev.lsms = ["lockdown", "capability", "landlock", "yama", "apparmor"]
            .map(String::from)
            .to_vec();
        for (call, errno) in [
            (mount(None), libc::EPERM),
            (mount(Some("tmpfs")), libc::EACCES),
            (Call::WriteProc(ProcFile::UidMap), libc::EPERM),
            (UNSHARE_USER, libc::EPERM),
        ] {
            assert_eq!(
                cause(call.clone(), errno, &ev),
                Some(Cause::AppArmorRestrictsUserns),
                "{call}"
            );
        }
        // AppArmor's restriction does not apply to root.
        ev.is_root = true;
        assert_ne!(
            cause(mount(None), libc::EPERM, &ev),
            Some(Cause::AppArmorRestrictsUserns)
        );
    }

    #[test]
    fn user_namespace_sysctls_are_named() {
        let zero = evidence([Some(0), Some(1), Some(0)]);
        assert_eq!(
            cause(UNSHARE_USER, libc::ENOSPC, &zero),
            Some(Cause::MaxUserNamespacesZero)
        );
        let mut nested = zero.clone();
        nested.nested_userns = true;
        assert_eq!(
            cause(UNSHARE_USER, libc::ENOSPC, &nested),
            Some(Cause::UsernsDisabledByParent)
        );
        assert_eq!(
            cause(UNSHARE_USER, libc::ENOSPC, &open()),
            Some(Cause::MaxUserNamespacesReached)
        );
        // Nested, with a local limit nowhere near reached: an ancestor's
        // limit refused (a --disable-userns sandbox sets 1 a level up).
        let mut nested_open = open();
        nested_open.nested_userns = true;
        assert_eq!(
            cause(UNSHARE_USER, libc::ENOSPC, &nested_open),
            Some(Cause::UsernsDisabledByParent)
        );
        let mut nested_small = evidence([Some(0), Some(1), Some(3)]);
        nested_small.nested_userns = true;
        assert_eq!(
            cause(UNSHARE_USER, libc::ENOSPC, &nested_small),
            Some(Cause::MaxUserNamespacesReached)
        );
        let clone_off = evidence([None, Some(0), Some(15000)]);
        assert_eq!(
            cause(UNSHARE_USER, libc::EPERM, &clone_off),
            Some(Cause::UnprivilegedUsernsCloneOff)
        );
    }

    #[test]
    fn root_without_capabilities_cannot_map_itself() {
        let mut root = open();
        root.is_root = true;
        assert_eq!(
            cause(Call::WriteProc(ProcFile::UidMap), libc::EPERM, &root),
            Some(Cause::RootWithoutCapabilities)
        );
        // The same refusal for a regular user is not this cause.
        assert_ne!(
            cause(Call::WriteProc(ProcFile::UidMap), libc::EPERM, &open()),
            Some(Cause::RootWithoutCapabilities)
        );
    }

    #[test]
    fn refused_unshare_is_told_apart_by_its_surroundings() {
        let mut container = open();
        container.container = vec!["/.dockerenv".into()];
        assert_eq!(
            cause(UNSHARE_USER, libc::EPERM, &container),
            Some(Cause::ContainerRefusesNamespaces)
        );
        let mut filtered = open();
        filtered.seccomp_mode = Some(2);
        assert_eq!(
            cause(UNSHARE_USER, libc::EPERM, &filtered),
            Some(Cause::SeccompRefusesUnshare)
        );
        assert_eq!(
            cause(
                Call::Unshare {
                    flags: libc::CLONE_NEWNS | libc::CLONE_NEWPID
                },
                libc::EPERM,
                &open()
            ),
            Some(Cause::NamespacesRefused)
        );
        assert_eq!(
            cause(UNSHARE_USER, libc::EINVAL, &open()),
            Some(Cause::KernelLacksNamespaces)
        );
        let mut wsl = open();
        wsl.wsl1 = true;
        assert_eq!(cause(UNSHARE_USER, libc::EINVAL, &wsl), Some(Cause::Wsl1));
    }

    #[test]
    fn mount_refusals() {
        let ev = open();
        assert_eq!(
            cause(mount(Some("proc")), libc::EPERM, &ev),
            Some(Cause::ProcCovered)
        );
        assert_eq!(
            cause(mount(Some("tmpfs")), libc::EACCES, &ev),
            Some(Cause::MountsRefused)
        );
        assert_eq!(
            cause(Call::mount_api("open_tree", "fd 3"), libc::ENOSPC, &ev),
            Some(Cause::MountLimit)
        );
        assert_eq!(
            cause(Call::SeccompInstall, libc::EINVAL, &ev),
            Some(Cause::NoSeccompFilter)
        );
    }

    #[test]
    fn ordinary_errors_have_no_cause() {
        let ev = open();
        assert_eq!(
            cause(Call::other("open", "\"/missing\""), libc::ENOENT, &ev),
            None
        );
        assert_eq!(cause(mount(None), libc::ENOENT, &ev), None);
        assert_eq!(
            cause(Call::other("execve", "\"/bin/x\""), libc::EACCES, &ev),
            None
        );
    }

    #[test]
    fn every_cause_has_an_id_a_summary_and_a_fix() {
        let all = [
            Cause::Wsl1,
            Cause::KernelLacksNamespaces,
            Cause::UsernsDisabledByParent,
            Cause::MaxUserNamespacesZero,
            Cause::MaxUserNamespacesReached,
            Cause::UnprivilegedUsernsCloneOff,
            Cause::RootWithoutCapabilities,
            Cause::AppArmorRestrictsUserns,
            Cause::ContainerRefusesNamespaces,
            Cause::SeccompRefusesUnshare,
            Cause::NamespacesRefused,
            Cause::ProcCovered,
            Cause::MountsRefused,
            Cause::MountLimit,
            Cause::NoSeccompFilter,
        ];
        let mut ids: Vec<&str> = all.iter().map(|c| c.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "ids are unique");
        for c in all {
            assert!(!c.summary(&open()).is_empty());
            assert!(!c.fixes("/x/srt-launcher")[0].is_empty(), "{c:?}");
        }
        assert!(
            Cause::AppArmorRestrictsUserns.fixes("/x/srt-launcher")[0]
                .contains("/x/srt-launcher check --apparmor-profile --install")
        );
    }
}
