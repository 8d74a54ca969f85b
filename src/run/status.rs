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

use crate::failure::{self, ExecKind, Reported, ReportedKind};
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

/// How the front-end words a failure's line (its contexts and causes),
/// handed to the executor so a child's report reads as the front-end's own.
pub type Wording = fn(&anyhow::Error) -> String;

/// Writes the failure record for `err`, its line in `wording`, and ends
/// the calling process. Runs in PID 1, the workload or a relay (all
/// forked, hence `_exit`).
pub fn fail(fd: RawFd, err: &anyhow::Error, wording: Wording) -> ! {
    let report = Reported {
        kind: failure::kind_of(err),
        line: wording(err),
        refusal: failure::refusal_of(err).cloned(),
    };
    let _ = sys::write_all(fd, &encode(&report));
    // If the launcher is gone there is nobody to tell; exit either way.
    sys::exit_now(1)
}

/// A report as one record: its kind (and a source's path and errno, a
/// command's reason), its line, then the refused call.
fn encode(report: &Reported) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = match &report.kind {
        ReportedKind::Setup => vec![b"setup".to_vec()],
        ReportedKind::Usage => vec![b"usage".to_vec()],
        ReportedKind::Source { path, errno } => vec![
            b"source".to_vec(),
            path.clone().into_os_string().into_encoded_bytes(),
            errno.to_string().into_bytes(),
        ],
        ReportedKind::Exec(ExecKind::Missing) => vec![b"not-found".to_vec()],
        ReportedKind::Exec(ExecKind::NoneInPath) => vec![b"not-in-path".to_vec()],
        ReportedKind::Exec(ExecKind::Refused) => vec![b"not-executable".to_vec()],
    };
    fields.push(report.line.as_bytes().to_vec());
    push_refusal(&mut fields, report.refusal.as_ref());
    frame(&fields)
}

/// Decodes what the launcher read before EOF: nothing means success.
pub fn decode(bytes: &[u8]) -> Option<Reported> {
    let record = unframe(bytes).into_iter().next()?;
    let text = |f: &Vec<u8>| String::from_utf8_lossy(f).into_owned();
    let (kind, rest) = match record.first()?.as_slice() {
        b"setup" => (ReportedKind::Setup, &record[1..]),
        b"usage" => (ReportedKind::Usage, &record[1..]),
        b"source" => (
            ReportedKind::Source {
                path: PathBuf::from(OsStr::from_bytes(record.get(1)?)),
                errno: text(record.get(2)?).parse().ok()?,
            },
            &record[3..],
        ),
        b"not-found" => (ReportedKind::Exec(ExecKind::Missing), &record[1..]),
        b"not-in-path" => (ReportedKind::Exec(ExecKind::NoneInPath), &record[1..]),
        b"not-executable" => (ReportedKind::Exec(ExecKind::Refused), &record[1..]),
        _ => return None,
    };
    let line = text(rest.first()?);
    let (refusal, _) = take_refusal(&rest[1..])?;
    Some(Reported {
        kind,
        line,
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_running_and_reports_round_trip() {
        assert_eq!(decode(b""), None);
        let refusal = SysError::new(
            Call::Mount {
                fstype: Some("proc".into()),
                args: "\"proc\", \"/proc\"".into(),
            },
            libc::EPERM,
        );
        let kinds = [
            ReportedKind::Setup,
            ReportedKind::Usage,
            ReportedKind::Source {
                path: "/a\0b\nc".into(),
                errno: libc::ENOENT,
            },
            ReportedKind::Exec(ExecKind::Missing),
            ReportedKind::Exec(ExecKind::NoneInPath),
            ReportedKind::Exec(ExecKind::Refused),
        ];
        for kind in kinds {
            for refusal in [None, Some(refusal.clone())] {
                let report = Reported {
                    kind: kind.clone(),
                    line: "--proc /proc: mount: denied".into(),
                    refusal,
                };
                assert_eq!(decode(&encode(&report)), Some(report));
            }
        }
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
