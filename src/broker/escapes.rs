//! The host's way-out sockets by inode: every socket that
//! `plan::ESCAPE_SOCKETS` names, found in the host's view by the launcher
//! before the namespaces exist. A grant whose pinned inode is one of these
//! is refused unless it came from `--allow-unix-unsafe`, however the
//! caller spelt its path (a symlink, a bind of the directory, a hard link).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::log::trace;
use crate::plan::{ESCAPE_SOCKETS, EscapeKind};

/// One way-out socket on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapeSocket {
    pub dev: u64,
    pub ino: u64,
    pub kind: EscapeKind,
}

/// Directory listings, each read once per scan (several patterns list
/// /run/user and /home).
#[derive(Default)]
struct Listings(HashMap<PathBuf, Vec<OsString>>);

impl Listings {
    /// The entries of `dir` (none when it cannot be read).
    fn of(&mut self, dir: &Path) -> Vec<OsString> {
        self.0
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                std::fs::read_dir(dir)
                    .map(|it| it.flatten().map(|e| e.file_name()).collect())
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// The host paths a pattern stands for: `*` is every entry of the
/// directory so far, `**/` every home directory (root's and /home's).
fn expand(pattern: &str, listings: &mut Listings) -> Vec<PathBuf> {
    if let Some(suffix) = pattern.strip_prefix("**/") {
        let mut homes = vec![PathBuf::from("/root")];
        homes.extend(
            listings
                .of(Path::new("/home"))
                .into_iter()
                .map(|name| PathBuf::from("/home").join(name)),
        );
        return homes.into_iter().map(|home| home.join(suffix)).collect();
    }
    let mut paths = vec![PathBuf::from("/")];
    for part in pattern.trim_start_matches('/').split('/') {
        paths = paths
            .into_iter()
            .flat_map(|base| {
                if part == "*" {
                    listings
                        .of(&base)
                        .into_iter()
                        .map(|n| base.join(n))
                        .collect()
                } else {
                    vec![base.join(part)]
                }
            })
            .collect();
    }
    paths
}

/// Every way-out socket the host has now (following symlinks, as a
/// connect would). Read once per run with grants; a few stats.
pub fn host_escape_sockets() -> Vec<EscapeSocket> {
    let mut found = Vec::new();
    let mut listings = Listings::default();
    for (pattern, kind) in ESCAPE_SOCKETS {
        for path in expand(pattern, &mut listings) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.file_type().is_socket() {
                trace!("way-out socket {}", path.display());
                found.push(EscapeSocket {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    kind: *kind,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_to_host_paths() {
        let mut l = Listings::default();
        assert_eq!(
            expand("/run/dbus/system_bus_socket", &mut l),
            [PathBuf::from("/run/dbus/system_bus_socket")]
        );
        assert!(
            expand("**/.docker/run/docker.sock", &mut l)
                .contains(&PathBuf::from("/root/.docker/run/docker.sock"))
        );
        // `*` lists the directory: every expansion lies under it.
        for path in expand("/proc/*/status", &mut l) {
            assert!(path.starts_with("/proc") && path.ends_with("status"));
        }
        assert!(expand("/proc/*/status", &mut l).len() > 1);
    }
}
