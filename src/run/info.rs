//! `--info-fd` and `--json-status-fd`: the documents bubblewrap writes
//! about a running sandbox, for hosts that parse them.
//!
//! Both name the command's process, in the caller's PID namespace (not
//! the reaper's: PID 1 is not dumpable, so a caller could not open its
//! /proc entries, which is what the pid is for), and the inode numbers of
//! the namespaces the sandbox got, as `/proc/PID/ns/NAME` shows them: only the namespaces the sandbox
//! took (the mount namespace always), in bubblewrap's order. The launcher
//! reads its own ids (it entered those namespaces itself) and learns the
//! mount namespace's, which only PID 1 enters, over a pipe. The user
//! namespace is left out, as bubblewrap does.
//!
//! Runs in the launcher (PID 1 only sends its mount namespace's id). A
//! reader that went away is not the sandbox's failure: write errors are
//! ignored.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use crate::plan::{Namespaces, RunSpec};
use crate::sys;

/// A namespace's name as bubblewrap prints it, and its inode number.
pub type NamespaceId = (&'static str, u64);

/// The ids of the namespaces the launcher took for the sandbox. The PID
/// namespace is the one the launcher's children are born in.
pub fn launcher_namespace_ids(namespaces: &Namespaces) -> Vec<NamespaceId> {
    [
        ("cgroup", "cgroup", namespaces.cgroup),
        ("ipc", "ipc", namespaces.ipc),
        ("net", "net", namespaces.net),
        ("pid", "pid_for_children", namespaces.pid),
        ("uts", "uts", namespaces.uts),
    ]
    .into_iter()
    .filter(|(_, _, taken)| *taken)
    .filter_map(|(name, file, _)| Some((name, namespace_inode(file)?)))
    .collect()
}

fn namespace_inode(file: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/self/ns/{file}"))
        .ok()
        .map(|m| m.ino())
}

/// PID 1's side: sends the id of the mount namespace it just entered.
pub fn send_mount_namespace_id(pipe: OwnedFd) {
    if let Some(ino) = namespace_inode("mnt") {
        let _ = sys::write_all(pipe.as_raw_fd(), &ino.to_le_bytes());
    }
}

/// The launcher's side: waits for PID 1's mount namespace id; nothing
/// when PID 1 failed before it had one.
pub fn read_mount_namespace_id(pipe: &OwnedFd) -> Option<NamespaceId> {
    let mut bytes = [0u8; 8];
    let mut got = 0;
    while got < bytes.len() {
        match sys::read(pipe.as_raw_fd(), &mut bytes[got..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    Some(("mnt", u64::from_le_bytes(bytes)))
}

/// Writes `--info-fd`'s document (then closes it), unless it went out
/// early (`--userns-block-fd`), and the first `--json-status-fd` line, in
/// bubblewrap's layout.
pub fn announce(spec: &RunSpec, pid: i32, ids: &[NamespaceId]) {
    if spec.process.userns_block_fd.is_none() {
        write_info(spec, pid, ids);
    }
    if let Some(fd) = spec.json_status_fd {
        let _ = sys::write_all(fd, status_line(pid, &sorted(ids)).as_bytes());
    }
}

/// `--info-fd`'s document, then the descriptor closed.
pub fn write_info(spec: &RunSpec, pid: i32, ids: &[NamespaceId]) {
    if let Some(fd) = spec.info_fd {
        let _ = sys::write_all(fd, info_document(pid, &sorted(ids)).as_bytes());
        let _ = sys::close(fd);
    }
}

fn sorted(ids: &[NamespaceId]) -> Vec<NamespaceId> {
    let mut ids = ids.to_vec();
    ids.sort_by_key(|(name, _)| *name);
    ids
}

/// The last `--json-status-fd` line, once the command has ended.
pub fn exit_code(fd: i32, code: i32) {
    let _ = sys::write_all(fd, format!("{{ \"exit-code\": {code} }}\n").as_bytes());
}

fn info_document(pid: i32, ids: &[NamespaceId]) -> String {
    let mut doc = format!("{{\n    \"child-pid\": {pid}");
    for (name, ino) in ids {
        doc.push_str(&format!(",\n    \"{name}-namespace\": {ino}"));
    }
    doc.push_str("\n}\n");
    doc
}

fn status_line(pid: i32, ids: &[NamespaceId]) -> String {
    let mut line = format!("{{ \"child-pid\": {pid}");
    for (name, ino) in ids {
        line.push_str(&format!(", \"{name}-namespace\": {ino}"));
    }
    line.push_str(" }\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_bubblewraps_layout() {
        let ids = [("ipc", 11), ("mnt", 12)];
        assert_eq!(
            info_document(42, &ids),
            "{\n    \"child-pid\": 42,\n    \"ipc-namespace\": 11,\n    \"mnt-namespace\": 12\n}\n"
        );
        assert_eq!(
            status_line(42, &ids),
            "{ \"child-pid\": 42, \"ipc-namespace\": 11, \"mnt-namespace\": 12 }\n"
        );
        assert_eq!(status_line(7, &[]), "{ \"child-pid\": 7 }\n");
    }
}
