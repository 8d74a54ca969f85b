//! The checks a plan must pass before anything touches the system, with
//! typed failures: each front-end words them and picks their exit code
//! (`cli::render`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{EnvOp, MountOp, Origin, RunSpec};

/// Why a plan cannot be carried out, found without a system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A destination that is not absolute (it is resolved from the
    /// sandbox root).
    RelativeDestination {
        origin: Origin,
        dst: PathBuf,
    },
    /// A deny path that is not absolute: a host's deny list entry, not
    /// command-line syntax (SPEC §2.7).
    RelativeDenyPath {
        origin: Origin,
        path: PathBuf,
    },
    /// An environment variable name that is empty or holds '='.
    BadVariableName {
        unset: bool,
        key: OsString,
    },
    /// A working directory that is not absolute.
    RelativeWorkingDirectory(PathBuf),
    /// A hostname outside 1 to 64 bytes.
    BadHostname(OsString),
    /// Relays listen in the sandbox's own network namespace.
    RelayWithoutNetworkNamespace,
    RelayPortTwice(u16),
    /// `--expose` forwards into the sandbox's own network namespace.
    ExposeWithoutNetworkNamespace,
    ExposePortTwice(u16),
    /// An `--allow-unix` path that is not absolute (it names the socket
    /// as the workload sees it, from the sandbox root).
    RelativeUnixSocket(PathBuf),
    /// A way-out socket named by `--allow-unix` instead of
    /// `--allow-unix-unsafe`.
    EscapeSocket {
        path: PathBuf,
        kind: super::EscapeKind,
    },
    MissingCommand,
}

impl std::fmt::Display for PlanError {
    /// The engine's plain account, for traces; front-ends word it
    /// themselves (`cli::render`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for PlanError {}

impl RunSpec {
    /// Checks what can be checked without touching the system.
    pub fn validate(&self) -> Result<(), PlanError> {
        for step in &self.mounts {
            if let MountOp::Deny { path, .. } = &step.op
                && !path.is_absolute()
            {
                return Err(PlanError::RelativeDenyPath {
                    origin: step.origin,
                    path: path.clone(),
                });
            }
            if !step.op.dst().is_absolute() {
                return Err(PlanError::RelativeDestination {
                    origin: step.origin,
                    dst: step.op.dst().to_path_buf(),
                });
            }
        }
        for op in &self.env {
            let (unset, key) = match op {
                EnvOp::Set(key, _) => (false, key),
                EnvOp::Unset(key) => (true, key),
                EnvOp::Clear => continue,
            };
            let bytes = key.as_bytes();
            if bytes.is_empty() || bytes.contains(&b'=') {
                return Err(PlanError::BadVariableName {
                    unset,
                    key: key.clone(),
                });
            }
        }
        if let Some(dir) = &self.chdir
            && !dir.is_absolute()
        {
            return Err(PlanError::RelativeWorkingDirectory(dir.clone()));
        }
        if let Some(name) = &self.hostname
            && (name.is_empty() || name.len() > 64)
        {
            return Err(PlanError::BadHostname(name.clone()));
        }
        if !self.relays.is_empty() && !self.namespaces.net {
            return Err(PlanError::RelayWithoutNetworkNamespace);
        }
        if !self.exposes.is_empty() && !self.namespaces.net {
            return Err(PlanError::ExposeWithoutNetworkNamespace);
        }
        for (i, port) in self.exposes.iter().enumerate() {
            if self.exposes[..i].contains(port) {
                return Err(PlanError::ExposePortTwice(*port));
            }
        }
        for (i, relay) in self.relays.iter().enumerate() {
            if self.relays[..i].iter().any(|r| r.port == relay.port) {
                return Err(PlanError::RelayPortTwice(relay.port));
            }
        }
        for grant in &self.unix_grants {
            if !grant.path.is_absolute() {
                return Err(PlanError::RelativeUnixSocket(grant.path.clone()));
            }
            if let Some(kind) = super::escape_by_path(&grant.path).filter(|_| !grant.escape_ok) {
                return Err(PlanError::EscapeSocket {
                    path: grant.path.clone(),
                    kind,
                });
            }
        }
        if self.command.is_empty() {
            return Err(PlanError::MissingCommand);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FrontEnd, RelayOp, Step};

    fn step(op: MountOp) -> Step {
        Step {
            op,
            origin: Origin {
                front_end: FrontEnd::Run,
                option: "--opt",
                index: 0,
            },
        }
    }

    fn spec_with(mounts: Vec<MountOp>) -> RunSpec {
        RunSpec {
            mounts: mounts.into_iter().map(step).collect(),
            command: vec!["true".into()],
            ..RunSpec::default()
        }
    }

    #[test]
    fn relative_destination_and_deny_path_are_told_apart() {
        let spec = spec_with(vec![MountOp::Tmpfs {
            dst: "tmp".into(),
            mode: None,
            size: None,
        }]);
        assert!(matches!(
            spec.validate(),
            Err(PlanError::RelativeDestination { origin, .. }) if origin.option == "--opt"
        ));
        let spec = spec_with(vec![MountOp::Deny {
            path: ".ssh".into(),
            mask: true,
        }]);
        assert!(matches!(
            spec.validate(),
            Err(PlanError::RelativeDenyPath { .. })
        ));
    }

    #[test]
    fn setenv_key_with_equals_is_refused() {
        let mut spec = spec_with(vec![]);
        spec.env.push(EnvOp::Set("A=B".into(), "c".into()));
        assert_eq!(
            spec.validate(),
            Err(PlanError::BadVariableName {
                unset: false,
                key: "A=B".into()
            })
        );
    }

    #[test]
    fn relay_needs_unshare_net_and_unique_ports() {
        let relay = |port| RelayOp {
            port,
            socket: "/s".into(),
        };
        let mut spec = spec_with(vec![]);
        spec.relays = vec![relay(3128)];
        assert_eq!(
            spec.validate(),
            Err(PlanError::RelayWithoutNetworkNamespace)
        );
        spec.namespaces.net = true;
        assert!(spec.validate().is_ok());
        spec.relays.push(relay(3128));
        assert_eq!(spec.validate(), Err(PlanError::RelayPortTwice(3128)));
        spec.relays.clear();
        spec.exposes = vec![5173, 5173];
        assert_eq!(spec.validate(), Err(PlanError::ExposePortTwice(5173)));
        spec.namespaces.net = false;
        assert_eq!(
            spec.validate(),
            Err(PlanError::ExposeWithoutNetworkNamespace)
        );
    }

    #[test]
    fn missing_command_is_refused() {
        assert_eq!(
            RunSpec::default().validate(),
            Err(PlanError::MissingCommand)
        );
    }
}
