//! The setup-status pipe between PID 1 / the workload and the launcher.
//!
//! A forked setup step cannot return an error to the launcher, and its exit
//! code would be indistinguishable from the workload's own. So PID 1 and
//! the workload (until its execve) hold the write end of a CLOEXEC pipe:
//! a failure writes one record — the exit code byte, then the one-line
//! message — and a successful execve closes the last write end. EOF with no
//! record therefore means "the workload is running".

use std::os::fd::RawFd;

use crate::sys;

/// Writes the failure record and ends the calling process with `code`.
/// Runs in PID 1 or the workload (both forked, hence `_exit`).
pub fn fail(fd: RawFd, code: i32, message: &str) -> ! {
    let mut record = Vec::with_capacity(message.len() + 1);
    record.push(code as u8);
    record.extend_from_slice(message.as_bytes());
    // If the launcher is gone there is nobody to tell; exit either way.
    let _ = sys::write_all(fd, &record);
    sys::exit_now(code)
}

/// A failure record as the launcher received it.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// Decodes what the launcher read before EOF: nothing means success.
pub fn decode(bytes: &[u8]) -> Option<Failure> {
    let (&code, message) = bytes.split_first()?;
    Some(Failure {
        code: i32::from(code),
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_running_and_records_decode() {
        assert_eq!(decode(b""), None);
        assert_eq!(
            decode(b"\x7frun: exec nope: No such file"),
            Some(Failure {
                code: 127,
                message: "run: exec nope: No such file".into()
            })
        );
    }
}
