//! Namespace entry for the launcher: the network namespace (with the
//! relays forked inside it), then the PID, IPC, UTS and cgroup namespaces
//! — directly when we hold CAP_SYS_ADMIN, else inside a new user namespace
//! taken with the first of them. (The mount namespace is PID 1's.)
//!
//! Runs in the launcher, which never starts threads (unshare of a user
//! namespace is refused in a threaded process). Invariant: in a user namespace the caller's uid and gid
//! map to themselves (or to the one id `--uid`/`--gid` name) and nothing else (one-entry maps, `setgroups` denied
//! first, as user_namespaces(7) requires for an unprivileged gid_map), so
//! files keep their real owners and the sandbox gains no identity it did
//! not have.

use anyhow::{Context, Result};

use crate::failure::Problem;
use crate::log::trace;
use crate::plan::Namespaces;
use crate::sys::{self, Call, ProcFile, SysError};

/// Namespace entry state: whether a user namespace has been taken yet.
pub struct Entry {
    /// Take a user namespace even when the direct way would work.
    pub force_user: bool,
    pub in_userns: bool,
    /// The ids the caller's uid and gid appear as inside (bwrap's `--uid`,
    /// `--gid`); the caller's own when None.
    pub inner_uid: Option<u32>,
    pub inner_gid: Option<u32>,
    /// `--disable-userns`: nothing inside may create a user namespace.
    pub forbid_nested: bool,
    /// bwrap's `--userns-block-fd`: the caller writes the maps.
    pub caller_maps: bool,
}

/// The CLONE_NEW* flags the launcher unshares itself for `namespaces`
/// (the network namespace is taken first and separately, for the relays;
/// the mount namespace is PID 1's).
pub fn launcher_flags(namespaces: &Namespaces) -> i32 {
    [
        // Below a joined PID namespace, PID 1's parent makes it.
        (
            namespaces.pid && namespaces.pid_fd.is_none(),
            libc::CLONE_NEWPID,
        ),
        (namespaces.ipc, libc::CLONE_NEWIPC),
        (namespaces.uts, libc::CLONE_NEWUTS),
        (namespaces.cgroup, libc::CLONE_NEWCGROUP),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |flags, (_, flag)| flags | flag)
}

impl Entry {
    pub fn new(force_user: bool) -> Entry {
        Entry {
            force_user,
            in_userns: false,
            inner_uid: None,
            inner_gid: None,
            forbid_nested: false,
            caller_maps: false,
        }
    }
}

impl Entry {
    /// Unshares `flags`. The first call decides how: directly when we hold
    /// CAP_SYS_ADMIN (and no user namespace was asked for), else together
    /// with a new user namespace whose maps are written at once. Later
    /// calls run inside that user namespace, where we hold the capability.
    ///
    /// With no flags, only the user namespace question is settled: one is
    /// taken when asked for or when we lack CAP_SYS_ADMIN, which PID 1
    /// needs for its mount namespace (bwrap's default of sharing every
    /// other namespace).
    pub fn unshare(&mut self, flags: i32) -> Result<()> {
        if self.in_userns {
            if flags == 0 {
                return Ok(());
            }
            return sys::unshare(flags).context("create namespaces");
        }
        if flags == 0 && !self.force_user && crate::caps::has_sys_admin() {
            return Ok(());
        }
        if !self.force_user && flags != 0 {
            match sys::unshare(flags) {
                Ok(()) => return Ok(()),
                // EPERM: no CAP_SYS_ADMIN here; take a user namespace.
                Err(e) if e.errno() == libc::EPERM => trace!("{e}; taking a user namespace"),
                Err(e) => return Err(e).context("create namespaces"),
            }
        }
        let (uid, _, gid, _) = sys::ids();
        let inner_uid = self.inner_uid.unwrap_or(uid);
        let inner_gid = self.inner_gid.unwrap_or(gid);
        if self.forbid_nested {
            // Every other namespace must belong to the inner user
            // namespace (below), so the user namespace comes alone.
            sys::unshare(libc::CLONE_NEWUSER).context("create namespaces")?;
            map_ids((inner_uid, uid), (inner_gid, gid))?;
            self.forbid_nested_user_namespaces()?;
            map_ids((inner_uid, inner_uid), (inner_gid, inner_gid))?;
            self.in_userns = true;
            return self.unshare(flags);
        }
        let with_user = flags | libc::CLONE_NEWUSER;
        sys::unshare(with_user).context("create namespaces")?;
        if !self.caller_maps {
            map_ids((inner_uid, uid), (inner_gid, gid))?;
        }
        self.in_userns = true;
        Ok(())
    }

    /// `--disable-userns`, from the user namespace U just made: U's
    /// `user.max_user_namespaces` becomes 1, then the sandbox enters U2, a
    /// child of U, which uses up that one. The limit is checked at every
    /// level above a new user namespace, so nothing in U2 can create one;
    /// and a workload that keeps capabilities (bwrap's `--cap-add`) holds
    /// them in U2, where it can raise only U2's own limit, never U's. (The
    /// sysctl is resolved in the writer's user namespace whatever procfs
    /// it is reached through, so the host's /proc, still ours, does.)
    fn forbid_nested_user_namespaces(&self) -> Result<()> {
        write_proc(ProcFile::MaxUserNamespaces, "1\n").context(Problem::ForbidUserNamespaces)?;
        sys::unshare(libc::CLONE_NEWUSER).context(Problem::EnterInnerUserNamespace)
    }
}

/// Writes the one-entry id maps of the user namespace we just entered:
/// (inside, outside) for the uid and the gid, with setgroups denied first.
fn map_ids(uid: (u32, u32), gid: (u32, u32)) -> Result<()> {
    let map = |file, content: &str| {
        write_proc(file, content).context("map the caller's ids into the user namespace")
    };
    map(ProcFile::Setgroups, "deny")?;
    map(ProcFile::UidMap, &format!("{} {} 1\n", uid.0, uid.1))?;
    map(ProcFile::GidMap, &format!("{} {} 1\n", gid.0, gid.1))
}

/// Writes one of the user namespace's /proc files; a refusal keeps the
/// file as data, for the cause table.
fn write_proc(file: ProcFile, content: &str) -> Result<(), SysError> {
    std::fs::write(file.path(), content)
        .map_err(|e| SysError::new(Call::WriteProc(file), e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Brings `lo` up in the new network namespace, so 127.0.0.1/8 and ::1
/// answer (the kernel assigns both when the interface goes up).
pub fn loopback_up() -> Result<()> {
    sys::loopback_up().context("bring up loopback in the new network namespace")
}
