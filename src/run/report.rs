//! The setup-status pipe between PID 1 / the workload and the launcher.
//!
//! A forked setup step cannot return an error to the launcher, and its exit
//! code would be indistinguishable from the workload's own. So PID 1 and
//! the workload (until its execve) hold the write end of a CLOEXEC pipe:
//! a failure writes one record — the exit code byte, the refused call's
//! errno (4 bytes, little-endian, 0 for none), the call, a NUL, then the
//! one-line message — and a successful execve closes the last write end.
//! EOF with no record therefore means "the workload is running". The call
//! and errno let the launcher name the cause (`diagnose`) in the host's
//! view, which PID 1 no longer has.

use std::os::fd::RawFd;

use crate::exit;
use crate::sys::{self, SysError};

/// Writes the failure record for `err` and ends the calling process with
/// its exit code. Runs in PID 1 or the workload (both forked, hence
/// `_exit`).
pub fn fail(fd: RawFd, err: &anyhow::Error) -> ! {
    let code = exit::code_of(err);
    let refusal = exit::refusal_of(err);
    let _ = sys::write_all(fd, &encode(code, refusal, &exit::describe_plain(err)));
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

/// A failure record as the launcher received it.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    /// The refused system call, when a kernel refusal caused it.
    pub refusal: Option<SysError>,
}

/// Decodes what the launcher read before EOF: nothing means success.
pub fn decode(bytes: &[u8]) -> Option<Failure> {
    let (&code, rest) = bytes.split_first()?;
    let (errno, rest) = rest.split_at_checked(4).unwrap_or((&[0; 4], rest));
    let errno = i32::from_le_bytes(errno.try_into().expect("4 bytes"));
    let (call, message) = match rest.iter().position(|b| *b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (&[][..], rest),
    };
    let refusal =
        (errno != 0).then(|| SysError::new(String::from_utf8_lossy(call).into_owned(), errno));
    Some(Failure {
        code: i32::from(code),
        message: String::from_utf8_lossy(message).into_owned(),
        refusal,
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
            })
        );
        assert_eq!(
            decode(&encode(127, None, "execute nope: No such file")),
            Some(Failure {
                code: 127,
                message: "execute nope: No such file".into(),
                refusal: None,
            })
        );
    }
}
