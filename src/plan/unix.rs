//! `--allow-unix PATH` (SPEC §2.9): the unix sockets a workload may
//! connect to, and the sockets that are a way out of any sandbox.
//!
//! The escape sockets are recognised here by their path, as the caller
//! wrote it (after lexical clean-up: `//`, `.`, `/var/run`); the executor
//! also compares the inode it pins with theirs on the host, which catches
//! any other spelling (a symlink, a bind, a hard link).

use std::path::{Component, Path, PathBuf};

/// One `--allow-unix` or `--allow-unix-unsafe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixGrant {
    /// The socket as the workload sees it (absolute).
    pub path: PathBuf,
    /// `--allow-unix-unsafe`: the caller knows it may be a way out.
    pub escape_ok: bool,
}

/// What a way-out socket gives the workload, for the refusal's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeKind {
    SystemBus,
    SessionBus,
    SystemdPrivate,
    ContainerEngine,
}

impl EscapeKind {
    /// Why a connection to it leaves every sandbox, in a few words.
    pub fn why(self) -> &'static str {
        match self {
            EscapeKind::SystemBus => {
                "the D-Bus system bus starts and controls host services (systemd, polkit)"
            }
            EscapeKind::SessionBus => {
                "the D-Bus session bus runs commands as the user outside the sandbox"
            }
            EscapeKind::SystemdPrivate => "a systemd manager socket runs units outside the sandbox",
            EscapeKind::ContainerEngine => {
                "a container engine API starts containers with the host's files mounted"
            }
        }
    }
}

/// The well-known way-out sockets, as (pattern, kind); `*` matches one
/// path component, and a pattern starting with `**/` matches a suffix
/// (a home directory's). `/var/run` is folded into `/run` first.
pub const ESCAPE_SOCKETS: &[(&str, EscapeKind)] = &[
    ("/run/dbus/system_bus_socket", EscapeKind::SystemBus),
    ("/run/user/*/bus", EscapeKind::SessionBus),
    ("/run/systemd/private", EscapeKind::SystemdPrivate),
    ("/run/user/*/systemd/private", EscapeKind::SystemdPrivate),
    ("/run/docker.sock", EscapeKind::ContainerEngine),
    ("/run/user/*/docker.sock", EscapeKind::ContainerEngine),
    ("**/.docker/run/docker.sock", EscapeKind::ContainerEngine),
    (
        "**/.docker/desktop/docker.sock",
        EscapeKind::ContainerEngine,
    ),
    ("/run/podman/podman.sock", EscapeKind::ContainerEngine),
    (
        "/run/user/*/podman/podman.sock",
        EscapeKind::ContainerEngine,
    ),
    (
        "/run/containerd/containerd.sock",
        EscapeKind::ContainerEngine,
    ),
    (
        "/run/user/*/containerd/containerd.sock",
        EscapeKind::ContainerEngine,
    ),
    (
        "/run/docker/containerd/containerd.sock",
        EscapeKind::ContainerEngine,
    ),
];

/// The path with `.`, empty components and a leading `/var/run` removed
/// (`..` is kept: only the inode check can say where it leads).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => out.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    match out.strip_prefix("/var/run") {
        Ok(rest) => Path::new("/run").join(rest),
        Err(_) => out,
    }
}

fn matches(pattern: &str, path: &Path) -> bool {
    let names: Vec<&std::ffi::OsStr> = path.iter().skip(1).collect();
    if let Some(suffix) = pattern.strip_prefix("**/") {
        let want: Vec<&str> = suffix.split('/').collect();
        return names.len() > want.len()
            && names[names.len() - want.len()..]
                .iter()
                .zip(&want)
                .all(|(n, w)| *n == *w);
    }
    let want: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    names.len() == want.len() && names.iter().zip(&want).all(|(n, w)| *w == "*" || *n == *w)
}

/// The way out `path` names by its spelling, if any.
pub fn escape_by_path(path: &Path) -> Option<EscapeKind> {
    let path = clean(path);
    ESCAPE_SOCKETS
        .iter()
        .find(|(pattern, _)| matches(pattern, &path))
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sockets_are_known_by_any_lexical_spelling() {
        for (path, kind) in [
            ("/run/dbus/system_bus_socket", EscapeKind::SystemBus),
            ("/var/run/dbus/system_bus_socket", EscapeKind::SystemBus),
            ("//run/./dbus//system_bus_socket", EscapeKind::SystemBus),
            ("/run/user/1000/bus", EscapeKind::SessionBus),
            ("/run/systemd/private", EscapeKind::SystemdPrivate),
            ("/run/user/0/systemd/private", EscapeKind::SystemdPrivate),
            ("/var/run/docker.sock", EscapeKind::ContainerEngine),
            ("/run/user/1000/docker.sock", EscapeKind::ContainerEngine),
            (
                "/home/a/.docker/run/docker.sock",
                EscapeKind::ContainerEngine,
            ),
            (
                "/run/user/1000/podman/podman.sock",
                EscapeKind::ContainerEngine,
            ),
            (
                "/run/containerd/containerd.sock",
                EscapeKind::ContainerEngine,
            ),
        ] {
            assert_eq!(escape_by_path(Path::new(path)), Some(kind), "{path}");
        }
    }

    #[test]
    fn other_sockets_are_not_escapes() {
        for path in [
            "/run/user/1000/gnupg/S.gpg-agent",
            "/tmp/ssh-XXXX/agent.123",
            "/run/user/1000/bus/x",
            "/run/user/bus",
            "/run/dbus/system_bus_socket2",
            "/.docker/run/docker.sock",
            "/run/../run/docker.sock",
        ] {
            assert_eq!(escape_by_path(Path::new(path)), None, "{path}");
        }
    }
}
