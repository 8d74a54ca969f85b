//! A failed system call as data ([`SysError`]), and the two helpers every
//! wrapper uses to turn `-1`/errno into one.

use std::fmt;
use std::io;

/// A failed system call: which call, with which arguments, and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    call: Call,
    errno: i32,
}

impl SysError {
    pub fn new(call: Call, errno: i32) -> Self {
        SysError { call, errno }
    }

    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn call(&self) -> &Call {
        &self.call
    }
}

/// The C library's text for `errno` ("No such file or directory"), without
/// the " (os error N)" Rust's errors add.
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: buf is writable for its length; the XSI strerror_r writes a
    // NUL-terminated string into it (truncated if need be).
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("error {errno}");
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

/// Which call failed, as data: the cause table (`diagnose`) matches on the
/// variant, never on the rendered text. The variants with fields are the
/// calls whose arguments decide a cause; every other call is `Other`, its
/// name and its arguments as they read in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// unshare(2) with its CLONE_NEW* flag word.
    Unshare { flags: i32 },
    /// A write to one of the user namespace's files in /proc.
    WriteProc(ProcFile),
    /// mount(2); `fstype` is the filesystem made (None for a bind, a
    /// remount or a propagation change), `args` the arguments as printed.
    Mount {
        fstype: Option<String>,
        args: String,
    },
    /// A call of the new mount API, or pivot_root/umount2 (`name`).
    MountApi { name: String, args: String },
    /// prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER).
    SeccompInstall,
    /// Any other system call.
    Other { name: String, args: String },
    /// A refusal of the launcher's own (a path walk that met a loop, a path
    /// too long for a socket address), worded as the subject it names.
    Own(String),
}

/// The /proc files a user namespace is set up through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcFile {
    Setgroups,
    UidMap,
    GidMap,
    MaxUserNamespaces,
}

impl ProcFile {
    const ALL: [ProcFile; 4] = [
        ProcFile::Setgroups,
        ProcFile::UidMap,
        ProcFile::GidMap,
        ProcFile::MaxUserNamespaces,
    ];

    pub fn path(self) -> &'static str {
        match self {
            ProcFile::Setgroups => "/proc/self/setgroups",
            ProcFile::UidMap => "/proc/self/uid_map",
            ProcFile::GidMap => "/proc/self/gid_map",
            ProcFile::MaxUserNamespaces => "/proc/sys/user/max_user_namespaces",
        }
    }
}

/// The CLONE_NEW* flags by name, in the order a message lists them.
const NAMESPACE_FLAGS: [(i32, &str); 7] = [
    (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
    (libc::CLONE_NEWNS, "CLONE_NEWNS"),
    (libc::CLONE_NEWPID, "CLONE_NEWPID"),
    (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
    (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
    (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    (libc::CLONE_NEWNET, "CLONE_NEWNET"),
];

/// `CLONE_NEWUSER|CLONE_NEWNET` for a flag word.
pub fn namespace_names(flags: i32) -> String {
    NAMESPACE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

impl Call {
    /// Any call without a variant of its own.
    pub fn other(name: &str, args: impl Into<String>) -> Call {
        Call::Other {
            name: name.into(),
            args: args.into(),
        }
    }

    pub fn mount_api(name: &str, args: impl Into<String>) -> Call {
        Call::MountApi {
            name: name.into(),
            args: args.into(),
        }
    }

    /// Whether the call makes, moves or changes a mount.
    pub fn is_mount(&self) -> bool {
        matches!(self, Call::Mount { .. } | Call::MountApi { .. })
    }

    /// The call as fields, for a record that crosses a pipe (one codec:
    /// `run::status`); [`Call::from_fields`] inverts it.
    pub fn to_fields(&self) -> Vec<String> {
        match self {
            Call::Unshare { flags } => vec!["unshare".into(), flags.to_string()],
            Call::WriteProc(file) => vec!["proc".into(), file.path().into()],
            Call::Mount { fstype, args } => vec![
                "mount".into(),
                fstype.clone().unwrap_or_default(),
                args.clone(),
            ],
            Call::MountApi { name, args } => vec!["mount-api".into(), name.clone(), args.clone()],
            Call::SeccompInstall => vec!["seccomp".into()],
            Call::Other { name, args } => vec!["other".into(), name.clone(), args.clone()],
            Call::Own(what) => vec!["own".into(), what.clone()],
        }
    }

    pub fn from_fields(fields: &[&str]) -> Option<Call> {
        Some(match fields {
            ["unshare", flags] => Call::Unshare {
                flags: flags.parse().ok()?,
            },
            ["proc", path] => Call::WriteProc(*ProcFile::ALL.iter().find(|f| f.path() == *path)?),
            ["mount", fstype, args] => Call::Mount {
                fstype: (!fstype.is_empty()).then(|| fstype.to_string()),
                args: args.to_string(),
            },
            ["mount-api", name, args] => Call::mount_api(name, *args),
            ["seccomp"] => Call::SeccompInstall,
            ["other", name, args] => Call::other(name, *args),
            ["own", what] => Call::Own(what.to_string()),
            _ => return None,
        })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Unshare { flags } => write!(f, "unshare({})", namespace_names(*flags)),
            Call::WriteProc(file) => write!(f, "write {}", file.path()),
            Call::Mount { args, .. } => write!(f, "mount({args})"),
            Call::MountApi { name, args } | Call::Other { name, args } => {
                write!(f, "{name}({args})")
            }
            Call::SeccompInstall => f.write_str("prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)"),
            Call::Own(what) => f.write_str(what),
        }
    }
}

pub type SysResult<T> = Result<T, SysError>;

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a C-style return value into a result, describing the call lazily so
/// the hot path (thousands of mounts) formats nothing unless it fails.
pub(crate) fn check<T: PartialEq + From<i8>>(
    ret: T,
    describe: impl FnOnce() -> Call,
) -> SysResult<T> {
    if ret == T::from(-1) {
        Err(SysError::new(describe(), errno()))
    } else {
        Ok(ret)
    }
}

/// Like [`check`], retrying while the call is interrupted by a signal.
pub(crate) fn check_eintr<T: PartialEq + From<i8>>(
    mut call: impl FnMut() -> T,
    describe: impl FnOnce() -> Call,
) -> SysResult<T> {
    loop {
        let ret = call();
        if ret == T::from(-1) && errno() == libc::EINTR {
            continue;
        }
        return check(ret, describe);
    }
}
