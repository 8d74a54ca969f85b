//! The setup-status pipe between PID 1 / the workload and the launcher.
//!
//! A forked setup step cannot return an error to the launcher, and its exit
//! code would be indistinguishable from the workload's own. So PID 1 and
//! the workload (until its execve) hold the write end of a CLOEXEC pipe:
//! a failure writes one record — the exit code byte, the refused call's
//! errno (4 bytes, little-endian, 0 for none), the call, a NUL, then the
//! one-line message, then, for a failure a front-end words its own way,
//! a NUL and the fact (see [`Fact`]) — and a successful execve closes the
//! last write end.
//! EOF with no record therefore means "the workload is running". The call
//! and errno let the launcher name the cause (`diagnose`) in the host's
//! view, which PID 1 no longer has.

use std::os::fd::RawFd;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::mount::SourceError;
use crate::exit::{self, Fact};
use crate::sys::{self, SysError};

/// Writes the failure record for `err` and ends the calling process with
/// its exit code. Runs in PID 1 or the workload (both forked, hence
/// `_exit`).
pub fn fail(fd: RawFd, err: &anyhow::Error) -> ! {
    let code = exit::code_of(err);
    let refusal = exit::refusal_of(err);
    let fact = err
        .chain()
        .find_map(|e| e.downcast_ref::<SourceError>())
        .map(SourceError::fact);
    let mut record = encode(code, refusal, &exit::describe_plain(err));
    if let Some(fact) = &fact {
        record.extend(encode_fact(fact));
    }
    let _ = sys::write_all(fd, &record);
    // If the launcher is gone there is nobody to tell; exit either way.
    sys::exit_now(code)
}

fn encode(code: i32, refusal: Option<&SysError>, message: &str) -> Vec<u8> {
    let call = refusal.map_or("", |r| r.call());
    let mut record = Vec::with_capacity(message.len() + call.len() + 6);
    record.push(code as u8);
    record.extend_from_slice(&refusal.map_or(0, |r| r.errno()).to_le_bytes());
    record.extend_from_slice(call.replace('\0', "").as_bytes());
    record.push(0);
    record.extend_from_slice(message.as_bytes());
    record
}

/// The fact after the message: a tag, then its fields, each after a NUL
/// (paths hold no NUL).
fn encode_fact(fact: &Fact) -> Vec<u8> {
    match fact {
        Fact::Source { path, errno } => {
            let mut bytes = b"\0source\0".to_vec();
            bytes.extend_from_slice(path.as_os_str().as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(errno.to_string().as_bytes());
            bytes
        }
    }
}

fn decode_fact(fields: &[&[u8]]) -> Option<Fact> {
    match fields {
        [b"source", path, errno] => Some(Fact::Source {
            path: PathBuf::from(OsStr::from_bytes(path)),
            errno: std::str::from_utf8(errno).ok()?.parse().ok()?,
        }),
        _ => None,
    }
}

/// A failure record as the launcher received it.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    /// The refused system call, when a kernel refusal caused it.
    pub refusal: Option<SysError>,
    /// What failed, as data, when a front-end words it its own way.
    pub fact: Option<Fact>,
}

/// Decodes what the launcher read before EOF: nothing means success.
pub fn decode(bytes: &[u8]) -> Option<Failure> {
    let (&code, rest) = bytes.split_first()?;
    let (errno, rest) = rest.split_at_checked(4).unwrap_or((&[0; 4], rest));
    let errno = i32::from_le_bytes(errno.try_into().expect("4 bytes"));
    let (call, rest) = match rest.iter().position(|b| *b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (&[][..], rest),
    };
    let mut fields = rest.split(|b| *b == 0);
    let message = fields.next().unwrap_or_default();
    let fact = decode_fact(&fields.collect::<Vec<_>>());
    let refusal =
        (errno != 0).then(|| SysError::new(String::from_utf8_lossy(call).into_owned(), errno));
    Some(Failure {
        code: i32::from(code),
        message: String::from_utf8_lossy(message).into_owned(),
        refusal,
        fact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_running_and_records_round_trip() {
        assert_eq!(decode(b""), None);
        let refusal = SysError::new("mount(\"proc\", \"/proc\")".into(), libc::EPERM);
        let record = encode(125, Some(&refusal), "--proc /proc: mount: denied");
        assert_eq!(
            decode(&record),
            Some(Failure {
                code: 125,
                message: "--proc /proc: mount: denied".into(),
                refusal: Some(refusal),
                fact: None,
            })
        );
        assert_eq!(
            decode(&encode(127, None, "execute nope: No such file")),
            Some(Failure {
                code: 127,
                message: "execute nope: No such file".into(),
                refusal: None,
                fact: None,
            })
        );
        let mut record = encode(125, None, "--bind source /a: gone");
        record.extend(encode_fact(&Fact::Source {
            path: "/a".into(),
            errno: libc::ENOENT,
        }));
        assert_eq!(
            decode(&record).unwrap().fact,
            Some(Fact::Source {
                path: "/a".into(),
                errno: libc::ENOENT
            })
        );
    }
}
