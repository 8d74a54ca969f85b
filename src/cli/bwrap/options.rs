//! bwrap mode's option table: bubblewrap 0.12's options, each with its
//! values, its help line and its builder, in the order `--help` lists
//! them.

use super::super::options::{self, Opt};
use super::Settings;
use super::builders::{
    add_seccomp_fd, argv0, bind_fd, capability, chmod, data, id, label, last, last_fd, overlay,
    perms, seccomp, set, size, unshare_all,
};
use crate::plan::MountOp;
use std::path::PathBuf;

/// The option list: `--help` prints it, the walk reads it, and an argv
/// that starts with one of its names is bwrap mode.
pub const BWRAP_OPTIONS: &[Opt<Settings>] = &[
    Opt {
        name: "--help",
        values: &[],
        help: "Show this text",
        build: options::handled_by_walk,
    },
    Opt {
        name: "--version",
        values: &[],
        help: "Show the bubblewrap version implemented",
        build: options::handled_by_walk,
    },
    Opt {
        name: "--args",
        values: &["FD"],
        help: "Read more arguments from FD, NUL-terminated, here",
        build: options::handled_by_walk,
    },
    Opt {
        name: "--argv0",
        values: &["VALUE"],
        help: "Run the command with argv[0] set to VALUE",
        build: argv0,
    },
    Opt {
        name: "--level-prefix",
        values: &[],
        help: "Start each message with its syslog level, e.g. <3>",
        build: |d, _| set(d, |s| &mut s.level_prefix),
    },
    Opt {
        name: "--unshare-all",
        values: &[],
        help: "Take every namespace (user and cgroup when available)",
        build: unshare_all,
    },
    Opt {
        name: "--share-net",
        values: &[],
        help: "Keep the network namespace (after --unshare-all)",
        build: |d, _| {
            d.settings.unshare_net = false;
            Ok(())
        },
    },
    Opt {
        name: "--unshare-user",
        values: &[],
        help: "Take a user namespace (always when not root)",
        build: |d, _| set(d, |s| &mut s.unshare_user),
    },
    Opt {
        name: "--unshare-user-try",
        values: &[],
        help: "Take a user namespace when the system allows it",
        build: |d, _| set(d, |s| &mut s.unshare_user_try),
    },
    Opt {
        name: "--unshare-ipc",
        values: &[],
        help: "Take an IPC namespace",
        build: |d, _| set(d, |s| &mut s.unshare_ipc),
    },
    Opt {
        name: "--unshare-pid",
        values: &[],
        help: "Take a PID namespace",
        build: |d, _| set(d, |s| &mut s.unshare_pid),
    },
    Opt {
        name: "--unshare-net",
        values: &[],
        help: "Take a network namespace (loopback only)",
        build: |d, _| set(d, |s| &mut s.unshare_net),
    },
    Opt {
        name: "--unshare-uts",
        values: &[],
        help: "Take a UTS namespace",
        build: |d, _| set(d, |s| &mut s.unshare_uts),
    },
    Opt {
        name: "--unshare-cgroup",
        values: &[],
        help: "Take a cgroup namespace",
        build: |d, _| set(d, |s| &mut s.unshare_cgroup),
    },
    Opt {
        name: "--unshare-cgroup-try",
        values: &[],
        help: "Take a cgroup namespace when the kernel has them",
        build: |d, _| set(d, |s| &mut s.unshare_cgroup_try),
    },
    Opt {
        name: "--userns",
        values: &["FD"],
        help: "Run in this user namespace instead of a new one",
        build: |d, v| last_fd(d, v, |s| &mut s.userns_fd),
    },
    Opt {
        name: "--userns2",
        values: &["FD"],
        help: "Switch to this user namespace after setup (with --userns)",
        build: |d, v| last_fd(d, v, |s| &mut s.userns2_fd),
    },
    Opt {
        name: "--disable-userns",
        values: &[],
        help: "The sandbox cannot create user namespaces",
        build: |d, _| set(d, |s| &mut s.disable_userns),
    },
    Opt {
        name: "--assert-userns-disabled",
        values: &[],
        help: "Fail unless the sandbox cannot create user namespaces",
        build: |d, _| set(d, |s| &mut s.assert_userns_disabled),
    },
    Opt {
        name: "--pidns",
        values: &["FD"],
        help: "Run in this PID namespace",
        build: |d, v| last_fd(d, v, |s| &mut s.pidns_fd),
    },
    Opt {
        name: "--uid",
        values: &["UID"],
        help: "The uid inside (needs a user namespace)",
        build: id,
    },
    Opt {
        name: "--gid",
        values: &["GID"],
        help: "The gid inside (needs a user namespace)",
        build: id,
    },
    Opt {
        name: "--hostname",
        values: &["NAME"],
        help: "The hostname inside (needs --unshare-uts)",
        build: |d, v| last(d, v[0].clone(), |s| &mut s.hostname),
    },
    Opt {
        name: "--chdir",
        values: &["DIR"],
        help: "Start the command in DIR",
        build: |d, v| last(d, PathBuf::from(&v[0]), |s| &mut s.chdir),
    },
    Opt {
        name: "--clearenv",
        values: &[],
        help: "Start from an empty environment",
        build: options::clearenv,
    },
    Opt {
        name: "--setenv",
        values: &["VAR", "VALUE"],
        help: "Set VAR to VALUE",
        build: options::setenv,
    },
    Opt {
        name: "--unsetenv",
        values: &["VAR"],
        help: "Remove VAR",
        build: options::unsetenv,
    },
    Opt {
        name: "--lock-file",
        values: &["DEST"],
        help: "Hold a read lock on DEST while the sandbox runs",
        build: |d, v| {
            d.settings.lock_files.push(PathBuf::from(&v[0]));
            Ok(())
        },
    },
    Opt {
        name: "--sync-fd",
        values: &["FD"],
        help: "Keep FD open while the sandbox runs",
        build: |d, v| last_fd(d, v, |s| &mut s.sync_fd),
    },
    Opt {
        name: "--bind",
        values: &["SRC", "DEST"],
        help: "Bind the host's SRC on DEST, writable",
        build: options::bind,
    },
    Opt {
        name: "--bind-try",
        values: &["SRC", "DEST"],
        help: "Like --bind; nothing when SRC is missing",
        build: options::bind,
    },
    Opt {
        name: "--dev-bind",
        values: &["SRC", "DEST"],
        help: "Like --bind, device nodes usable",
        build: options::dev_bind,
    },
    Opt {
        name: "--dev-bind-try",
        values: &["SRC", "DEST"],
        help: "Like --dev-bind; nothing when SRC is missing",
        build: options::dev_bind,
    },
    Opt {
        name: "--ro-bind",
        values: &["SRC", "DEST"],
        help: "Bind the host's SRC on DEST, read-only",
        build: options::bind,
    },
    Opt {
        name: "--ro-bind-try",
        values: &["SRC", "DEST"],
        help: "Like --ro-bind; nothing when SRC is missing",
        build: options::bind,
    },
    Opt {
        name: "--bind-fd",
        values: &["FD", "DEST"],
        help: "Bind the directory open on FD",
        build: bind_fd,
    },
    Opt {
        name: "--ro-bind-fd",
        values: &["FD", "DEST"],
        help: "Same, read-only",
        build: bind_fd,
    },
    Opt {
        name: "--remount-ro",
        values: &["DEST"],
        help: "Make the mount at DEST read-only, not recursively",
        build: |d, v| {
            d.push(MountOp::RemountRo {
                dst: PathBuf::from(&v[0]),
            });
            Ok(())
        },
    },
    Opt {
        name: "--overlay-src",
        values: &["SRC"],
        help: "A lower layer of the next overlay (bottom first)",
        build: |d, v| {
            d.settings.overlay_sources.push(PathBuf::from(&v[0]));
            Ok(())
        },
    },
    Opt {
        name: "--overlay",
        values: &["RWSRC", "WORKDIR", "DEST"],
        help: "Overlay with writes to RWSRC (WORKDIR: empty, same filesystem)",
        build: overlay,
    },
    Opt {
        name: "--tmp-overlay",
        values: &["DEST"],
        help: "Overlay with writes to a tmpfs that vanishes with the sandbox",
        build: overlay,
    },
    Opt {
        name: "--ro-overlay",
        values: &["DEST"],
        help: "Read-only overlay of two or more layers",
        build: overlay,
    },
    Opt {
        name: "--exec-label",
        values: &["LABEL"],
        help: "SELinux label of the command (needs SELinux)",
        build: label,
    },
    Opt {
        name: "--file-label",
        values: &["LABEL"],
        help: "SELinux label of created files (needs SELinux)",
        build: label,
    },
    Opt {
        name: "--proc",
        values: &["DEST"],
        help: "A new procfs on DEST",
        build: options::proc,
    },
    Opt {
        name: "--dev",
        values: &["DEST"],
        help: "A new minimal /dev on DEST",
        build: options::dev,
    },
    Opt {
        name: "--tmpfs",
        values: &["DEST"],
        help: "A new tmpfs on DEST",
        build: options::tmpfs,
    },
    Opt {
        name: "--mqueue",
        values: &["DEST"],
        help: "A new mqueue filesystem on DEST",
        build: |d, v| {
            d.push(MountOp::Mqueue {
                dst: PathBuf::from(&v[0]),
            });
            Ok(())
        },
    },
    Opt {
        name: "--dir",
        values: &["DEST"],
        help: "Create the directory DEST",
        build: options::dir,
    },
    Opt {
        name: "--file",
        values: &["FD", "DEST"],
        help: "Write FD's data to the file DEST",
        build: data,
    },
    Opt {
        name: "--bind-data",
        values: &["FD", "DEST"],
        help: "Bind a file holding FD's data on DEST",
        build: data,
    },
    Opt {
        name: "--ro-bind-data",
        values: &["FD", "DEST"],
        help: "Same, read-only",
        build: data,
    },
    Opt {
        name: "--symlink",
        values: &["TARGET", "DEST"],
        help: "Create the symlink DEST pointing to TARGET",
        build: options::symlink,
    },
    Opt {
        name: "--seccomp",
        values: &["FD"],
        help: "Add the BPF program read from FD",
        build: seccomp,
    },
    Opt {
        name: "--add-seccomp-fd",
        values: &["FD"],
        help: "Same, repeatable",
        build: add_seccomp_fd,
    },
    Opt {
        name: "--block-fd",
        values: &["FD"],
        help: "Wait for data on FD before running the command",
        build: |d, v| last_fd(d, v, |s| &mut s.block_fd),
    },
    Opt {
        name: "--userns-block-fd",
        values: &["FD"],
        help: "Wait on FD while the caller maps the user namespace's ids",
        build: |d, v| last_fd(d, v, |s| &mut s.userns_block_fd),
    },
    Opt {
        name: "--info-fd",
        values: &["FD"],
        help: "Write the child pid and namespace ids to FD as JSON",
        build: |d, v| last_fd(d, v, |s| &mut s.info_fd),
    },
    Opt {
        name: "--json-status-fd",
        values: &["FD"],
        help: "Write the child pid, then the exit code, to FD as JSON lines",
        build: |d, v| last_fd(d, v, |s| &mut s.json_status_fd),
    },
    Opt {
        name: "--new-session",
        values: &[],
        help: "Run the command in a new session (no controlling terminal)",
        build: |d, _| set(d, |s| &mut s.new_session),
    },
    Opt {
        name: "--die-with-parent",
        values: &[],
        help: "End the sandbox when the process that started it ends",
        build: |d, _| set(d, |s| &mut s.die_with_parent),
    },
    Opt {
        name: "--as-pid-1",
        values: &[],
        help: "Run the command as PID 1, without a reaper",
        build: |d, _| set(d, |s| &mut s.as_pid_1),
    },
    Opt {
        name: "--cap-add",
        values: &["CAP"],
        help: "Keep capability CAP (or ALL)",
        build: capability,
    },
    Opt {
        name: "--cap-drop",
        values: &["CAP"],
        help: "Drop capability CAP (or ALL)",
        build: capability,
    },
    Opt {
        name: "--perms",
        values: &["OCTAL"],
        help: "Mode of what the next option creates",
        build: perms,
    },
    Opt {
        name: "--size",
        values: &["BYTES"],
        help: "Size limit of the next --tmpfs",
        build: size,
    },
    Opt {
        name: "--chmod",
        values: &["OCTAL", "PATH"],
        help: "Change the mode of PATH, which must exist",
        build: chmod,
    },
    Opt {
        name: "--not-a-security-boundary",
        values: &[],
        help: "Accepted; setup failures stay fatal",
        build: |_, _| Ok(()),
    },
    Opt {
        name: "--refuse-setuid-files",
        values: &[],
        help: "The sandbox can make no setuid/setgid file and use no io_uring (srt-launcher)",
        build: |d, _| set(d, |s| &mut s.refuse_setuid_files),
    },
];
