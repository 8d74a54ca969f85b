//! The one codec for what a child process tells the launcher over a pipe:
//! PID 1 and the workload's failure before execve, a relay's failed setup,
//! and each of `check`'s rehearsed steps.
//!
//! A forked step cannot return an error to the launcher, and its exit code
//! would be indistinguishable from the workload's own. So the child holds
//! the write end of a CLOEXEC pipe and writes one record per event; a
//! successful execve (or a relay's finished setup) closes the last write
//! end, and EOF with no record therefore means "running". The refused call
//! crosses as data ([`Call`]), so the launcher, which still sees the
//! host's /proc and /sys, names the cause (`diagnose`).
//!
//! A record is its length (u32, little-endian), then fields, each its
//! length and its bytes: any byte may appear in a field. A record stays
//! far below PIPE_BUF, so writers sharing a pipe (`check`'s three
//! processes) never interleave within one.

use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::mount::SourceError;
use crate::exit::{self, Fact};
use crate::sys::{self, Call, SysError};

/// Frames `fields` as one record.
pub fn frame(fields: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = fields.iter().map(|f| 4 + f.len()).sum();
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Every complete record in `bytes`, as its fields; a truncated tail (a
/// writer killed mid-write) is dropped.
pub fn unframe(mut bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn take_u32(bytes: &mut &[u8]) -> Option<usize> {
        let (head, rest) = bytes.split_at_checked(4)?;
        *bytes = rest;
        Some(u32::from_le_bytes(head.try_into().ok()?) as usize)
    }
    let mut records = Vec::new();
    while let Some(len) = take_u32(&mut bytes) {
        let Some((mut body, rest)) = bytes.split_at_checked(len) else {
            break;
        };
        bytes = rest;
        let mut fields = Vec::new();
        while let Some(n) = take_u32(&mut body) {
            let Some((field, rest)) = body.split_at_checked(n) else {
                break;
            };
            fields.push(field.to_vec());
            body = rest;
        }
        records.push(fields);
    }
    records
}

/// Appends a refused call (or its absence) to a record's fields.
pub fn push_refusal(fields: &mut Vec<Vec<u8>>, refusal: Option<&SysError>) {
    let call = refusal.map(|r| r.call().to_fields()).unwrap_or_default();
    fields.push(refusal.map_or(0, SysError::errno).to_string().into_bytes());
    fields.push(call.len().to_string().into_bytes());
    fields.extend(call.into_iter().map(String::into_bytes));
}

/// Reads what [`push_refusal`] wrote from the front of `fields`, and
/// returns it with the fields after it.
pub fn take_refusal(fields: &[Vec<u8>]) -> Option<(Option<SysError>, &[Vec<u8>])> {
    let text = |f: &Vec<u8>| String::from_utf8_lossy(f).into_owned();
    let errno: i32 = text(fields.first()?).parse().ok()?;
    let count: usize = text(fields.get(1)?).parse().ok()?;
    let call_fields = fields.get(2..2 + count)?;
    let rest = &fields[2 + count..];
    if errno == 0 {
        return Some((None, rest));
    }
    let owned: Vec<String> = call_fields.iter().map(text).collect();
    let strs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let call = Call::from_fields(&strs)?;
    Some((Some(SysError::new(call, errno)), rest))
}

/// Writes the failure record for `err` and ends the calling process with
/// its exit code. Runs in PID 1 or the workload (both forked, hence
/// `_exit`).
pub fn fail(fd: RawFd, err: &anyhow::Error) -> ! {
    let code = exit::code_of(err);
    let fact = err
        .chain()
        .find_map(|e| e.downcast_ref::<SourceError>())
        .map(SourceError::fact);
    let record = encode_failure(
        code,
        exit::refusal_of(err),
        &exit::describe_plain(err),
        fact,
    );
    let _ = sys::write_all(fd, &record);
    // If the launcher is gone there is nobody to tell; exit either way.
    sys::exit_now(code)
}

fn encode_failure(
    code: i32,
    refusal: Option<&SysError>,
    message: &str,
    fact: Option<Fact>,
) -> Vec<u8> {
    let mut fields = vec![code.to_string().into_bytes(), message.as_bytes().to_vec()];
    push_refusal(&mut fields, refusal);
    if let Some(Fact::Source { path, errno }) = fact {
        fields.push(b"source".to_vec());
        fields.push(path.into_os_string().into_encoded_bytes());
        fields.push(errno.to_string().into_bytes());
    }
    frame(&fields)
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

impl Failure {
    /// The launcher's error for this record, with the cause of a kernel
    /// refusal named here, in the host's view.
    pub fn into_error(self) -> anyhow::Error {
        let hint = self.refusal.as_ref().and_then(crate::diagnose::hint_for);
        let message = match hint {
            Some(hint) => format!("{}; {hint}", self.message),
            None => self.message,
        };
        anyhow::Error::new(exit::Exit {
            code: self.code,
            message,
            fact: self.fact,
        })
    }
}

/// Decodes what the launcher read before EOF: nothing means success.
pub fn decode(bytes: &[u8]) -> Option<Failure> {
    let record = unframe(bytes).into_iter().next()?;
    let text = |f: &Vec<u8>| String::from_utf8_lossy(f).into_owned();
    let code = text(record.first()?).parse().ok()?;
    let message = text(record.get(1)?);
    let (refusal, rest) = take_refusal(&record[2..])?;
    let fact = match rest {
        [tag, path, errno] if tag == b"source" => Some(Fact::Source {
            path: PathBuf::from(OsStr::from_bytes(path)),
            errno: text(errno).parse().ok()?,
        }),
        _ => None,
    };
    Some(Failure {
        code,
        message,
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
        let refusal = SysError::new(
            Call::Mount {
                fstype: Some("proc".into()),
                args: "\"proc\", \"/proc\"".into(),
            },
            libc::EPERM,
        );
        let record = encode_failure(125, Some(&refusal), "--proc /proc: mount: denied", None);
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
            decode(&encode_failure(
                127,
                None,
                "execute nope: No such file",
                None
            )),
            Some(Failure {
                code: 127,
                message: "execute nope: No such file".into(),
                refusal: None,
                fact: None,
            })
        );
        let source = Fact::Source {
            path: "/a\0b\nc".into(),
            errno: libc::ENOENT,
        };
        let record = encode_failure(125, None, "--bind source: gone", Some(source.clone()));
        assert_eq!(decode(&record).unwrap().fact, Some(source));
    }

    #[test]
    fn every_call_crosses_intact_and_torn_records_are_dropped() {
        let calls = [
            Call::Unshare {
                flags: libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
            },
            Call::WriteProc(sys::ProcFile::GidMap),
            Call::Mount {
                fstype: None,
                args: "a\0b".into(),
            },
            Call::mount_api("open_tree", "fd 3"),
            Call::SeccompInstall,
            Call::other("fork", ""),
            Call::Own("resolve \"x\"".into()),
        ];
        let mut stream = Vec::new();
        for call in &calls {
            let mut fields = vec![b"step".to_vec()];
            push_refusal(&mut fields, Some(&SysError::new(call.clone(), libc::EPERM)));
            stream.extend(frame(&fields));
        }
        let whole = stream.len();
        stream.extend(&frame(&[b"torn".to_vec()])[..5]);
        let records = unframe(&stream);
        assert_eq!(records.len(), calls.len());
        for (record, call) in records.iter().zip(&calls) {
            let (refusal, rest) = take_refusal(&record[1..]).unwrap();
            let refusal = refusal.unwrap();
            assert_eq!(refusal.call(), call);
            assert_eq!(refusal.errno(), libc::EPERM);
            assert!(rest.is_empty());
        }
        assert_eq!(unframe(&stream[..whole - 1]).len(), calls.len() - 1);
    }
}
