//! The builders of bubblewrap's own options (those `run` lacks), with
//! bubblewrap's phrases for their failures: its callers and its test
//! suite grep for them. The shared ones are in `cli::options`.

use std::ffi::OsString;
use std::path::PathBuf;

use super::super::options::{self, Draft, Usage};
use super::{
    MAX_TMPFS_BYTES, Settings, parse_mode, parse_size, read_seccomp_program, warn_only_last,
};
use crate::plan::{MountOp, OverlayWrites};

/// A setting that is on once given.
pub(super) fn set(
    d: &mut Draft<Settings>,
    pick: fn(&mut Settings) -> &mut bool,
) -> Result<(), Usage> {
    *pick(&mut d.settings) = true;
    Ok(())
}

/// A single value where the last one given wins, as in bubblewrap, which
/// warns that the earlier ones are dropped.
pub(super) fn last<T>(
    d: &mut Draft<Settings>,
    value: T,
    pick: fn(&mut Settings) -> &mut Option<T>,
) -> Result<(), Usage> {
    if pick(&mut d.settings).replace(value).is_some() {
        warn_only_last(d.option(), d.settings.level_prefix);
    }
    Ok(())
}

/// A descriptor option: the last one given wins.
pub(super) fn last_fd(
    d: &mut Draft<Settings>,
    v: &[OsString],
    pick: fn(&mut Settings) -> &mut Option<i32>,
) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    last(d, fd, pick)
}

pub(super) fn said(text: impl Into<String>) -> Usage {
    Usage::Said(text.into())
}

pub(super) fn argv0(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    if d.settings.argv0.replace(v[0].clone()).is_some() {
        return Err(Usage::Repeated(d.option()));
    }
    Ok(())
}

pub(super) fn unshare_all(d: &mut Draft<Settings>, _: &[OsString]) -> Result<(), Usage> {
    let s = &mut d.settings;
    s.unshare_user_try = true;
    s.unshare_ipc = true;
    s.unshare_pid = true;
    s.unshare_uts = true;
    s.unshare_cgroup_try = true;
    s.unshare_net = true;
    Ok(())
}

/// `--uid` and `--gid`: any id but -1, which is no id.
pub(super) fn id(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let option = d.option();
    let id = v[0]
        .to_str()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| {
            said(format!(
                "Invalid {}: {}",
                &option[2..],
                v[0].to_string_lossy()
            ))
        })?;
    if option == "--uid" {
        last(d, id, |s| &mut s.uid)
    } else {
        last(d, id, |s| &mut s.gid)
    }
}

pub(super) fn bind_fd(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    let read_only = d.option() == "--ro-bind-fd";
    d.push(MountOp::BindFd {
        fd,
        dst: PathBuf::from(&v[1]),
        read_only,
    });
    Ok(())
}

/// `--file`, `--bind-data` and `--ro-bind-data`, with a waiting `--perms`
/// (bubblewrap's historical defaults otherwise: 0666 and 0600).
pub(super) fn data(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    let dst = PathBuf::from(&v[1]);
    let option = d.option();
    let op = if option == "--file" {
        let mode = d.next_perms.take().unwrap_or(0o666);
        MountOp::File { fd, dst, mode }
    } else {
        MountOp::BindData {
            fd,
            dst,
            mode: d.next_perms.take().unwrap_or(0o600),
            read_only: option == "--ro-bind-data",
        }
    };
    d.push(op);
    Ok(())
}

/// `--overlay`, `--tmp-overlay` and `--ro-overlay`, on the `--overlay-src`
/// layers given before.
pub(super) fn overlay(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let option = d.option();
    let (writes, dst) = match option {
        "--overlay" => {
            let writes = OverlayWrites::Dirs {
                upper: PathBuf::from(&v[0]),
                work: PathBuf::from(&v[1]),
            };
            (writes, PathBuf::from(&v[2]))
        }
        "--tmp-overlay" => (OverlayWrites::Tmpfs, PathBuf::from(&v[0])),
        _ => (OverlayWrites::ReadOnly, PathBuf::from(&v[0])),
    };
    let needed = if option == "--ro-overlay" { 2 } else { 1 };
    if d.settings.overlay_sources.len() < needed {
        let count = if needed == 1 { "one" } else { "two" };
        return Err(said(format!(
            "{option} requires at least {count} --overlay-src"
        )));
    }
    let lower = std::mem::take(&mut d.settings.overlay_sources);
    d.push(MountOp::Overlay { dst, lower, writes });
    Ok(())
}

pub(super) fn perms(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    if d.next_perms.is_some() {
        return Err(said("--perms given twice for the same action"));
    }
    let mode = parse_mode(&v[0]).ok_or_else(|| said("--perms takes an octal argument <= 07777"))?;
    d.next_perms = Some(mode);
    Ok(())
}

pub(super) fn size(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    if d.next_size.is_some() {
        return Err(said("--size given twice for the same action"));
    }
    let size = parse_size(&v[0]).ok_or_else(|| said("--size takes a non-zero number of bytes"))?;
    if size > MAX_TMPFS_BYTES {
        return Err(said(format!(
            "--size (for tmpfs) is limited to {MAX_TMPFS_BYTES}"
        )));
    }
    d.next_size = Some(size);
    Ok(())
}

pub(super) fn chmod(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let mode = parse_mode(&v[0]).ok_or_else(|| said("--chmod takes an octal argument <= 07777"))?;
    d.push(MountOp::Chmod {
        path: PathBuf::from(&v[1]),
        mode,
    });
    Ok(())
}

/// `--seccomp`: one program, replaced when repeated; not with
/// `--add-seccomp-fd`.
pub(super) fn seccomp(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    if !d.settings.added_seccomp.is_empty() {
        return Err(said("--seccomp cannot be combined with --add-seccomp-fd"));
    }
    let program = read_seccomp_program(fd)?;
    last(d, program, |s| &mut s.seccomp)
}

/// `--add-seccomp-fd`: programs in order; not with `--seccomp`.
pub(super) fn add_seccomp_fd(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let fd = options::parse_fd(d.option(), &v[0])?;
    if d.settings.seccomp.is_some() {
        return Err(said("--add-seccomp-fd cannot be combined with --seccomp"));
    }
    let program = read_seccomp_program(fd)?;
    d.settings.added_seccomp.push(program);
    Ok(())
}

/// `--cap-add` and `--cap-drop`, starting from what bubblewrap starts
/// from: a root caller's effective set, else nothing.
pub(super) fn capability(d: &mut Draft<Settings>, v: &[OsString]) -> Result<(), Usage> {
    let name = v[0].to_string_lossy();
    let bits = if name.eq_ignore_ascii_case("ALL") {
        u64::MAX
    } else {
        crate::caps::parse_name(&name).ok_or_else(|| said(format!("unknown cap: {name}")))?
    };
    let current = d
        .settings
        .caps_requested
        .unwrap_or_else(super::default_capabilities);
    d.settings.caps_requested = Some(if d.option() == "--cap-add" {
        current | bits
    } else {
        current & !bits
    });
    Ok(())
}

/// `--exec-label` and `--file-label`: bubblewrap's answer where SELinux is
/// absent; where it is present bubblewrap would label, which we cannot:
/// still an error, never a label silently dropped.
pub(super) fn label(d: &mut Draft<Settings>, _: &[OsString]) -> Result<(), Usage> {
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(said(format!(
            "{}: SELinux labels are not supported by srt-launcher",
            d.option()
        )));
    }
    Err(said("labeling not supported on this system"))
}
