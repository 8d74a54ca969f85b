//! What the front-ends' options mean, written once, and the one walk over
//! argv (with `--args FD` spliced in) that both front-ends use.
//!
//! Each front-end is a table of [`Opt`] (name, value names, help, builder)
//! plus a [`Grammar`] naming where it differs from the other (how the
//! command starts, how `--args` nests). The builders of options both
//! front-ends share (the bind family, `--dir`, `--symlink`, `--tmpfs`,
//! `--dev`, `--proc`, the environment edits) live here; a failure is a
//! typed [`Usage`], which each front-end words itself (`render.rs`).
//!
//! Runs in the launcher, before any namespace exists.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::plan::{EnvOp, FrontEnd, MountOp, Origin, Step};
use crate::sys::{self, SysError};

/// One option of a front-end: its name (`--bind`), the names of its values
/// (their count is its arity), its help line, and what it does to the
/// draft plan.
pub struct Opt<S: 'static> {
    pub name: &'static str,
    pub values: &'static [&'static str],
    pub help: &'static str,
    pub build: fn(&mut Draft<S>, &[OsString]) -> Result<(), Usage>,
}

/// A usage failure, as data: each front-end words it and picks its exit
/// code (`render.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// An option the front-end does not have.
    Unknown(String),
    /// `run`: a word before `--` that is not an option.
    Stray(OsString),
    /// Fewer values than the option takes.
    MissingValues {
        option: &'static str,
        values: &'static [&'static str],
        got: usize,
    },
    /// `run`: a flag given twice.
    Repeated(&'static str),
    /// A descriptor number that is not one.
    BadFd {
        option: &'static str,
        word: OsString,
    },
    /// bwrap mode: `--args` inside an `--args` file.
    ArgsNested,
    /// `--args FD` could not be read or closed (the refused call), or its
    /// last word is unterminated (None).
    ArgsUnreadable { fd: i32, refusal: Option<SysError> },
    /// A rule of one front-end, in that front-end's words.
    Said(String),
}

/// What a walk collects: the plan's steps and environment edits in argv
/// order, the modifiers waiting for the next step (bwrap's `--perms` and
/// `--size`), and the front-end's own settings.
pub struct Draft<S> {
    pub steps: Vec<Step>,
    pub env: Vec<EnvOp>,
    pub next_perms: Option<u32>,
    pub next_size: Option<u64>,
    pub settings: S,
    /// The option being built, which every step it makes carries.
    origin: Origin,
}

impl<S> Draft<S> {
    pub fn new(settings: S) -> Draft<S> {
        Draft {
            steps: Vec::new(),
            env: Vec::new(),
            next_perms: None,
            next_size: None,
            settings,
            origin: Origin {
                front_end: FrontEnd::Run,
                option: "",
                index: 0,
            },
        }
    }

    /// The option being built, as the caller spelled it.
    pub fn option(&self) -> &'static str {
        self.origin.option
    }

    /// Appends a step made by the option being built.
    pub fn push(&mut self, op: MountOp) {
        self.steps.push(Step {
            op,
            origin: self.origin,
        });
    }
}

/// Where the front-ends' command lines differ.
pub struct Grammar<S: 'static> {
    pub front_end: FrontEnd,
    pub table: &'static [Opt<S>],
    /// The words that ask for the help text.
    pub help_words: &'static [&'static str],
    /// The words that ask for the version.
    pub version_words: &'static [&'static str],
    /// bwrap mode: the first word that is not an option starts the
    /// command. `run`: only `--` does, and any other word is a mistake.
    pub command_at_first_word: bool,
    /// `run`: `--args=FD` is accepted, and an `--args` file may hold
    /// `--args` itself (bubblewrap refuses both).
    pub nested_args: bool,
    /// Checked after every option (bwrap's modifier and overlay rules).
    pub after_option: fn(&mut Draft<S>) -> Result<(), Usage>,
}

/// How a walk ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Walked {
    Command(Vec<OsString>),
    /// bwrap mode: the words ran out before a command.
    NoCommand,
    Help,
    Version,
}

/// Walks `words` left to right: each option takes its values verbatim
/// (so `--setenv K --args` sets K to "--args"), `--args FD` splices FD's
/// words in place, and the command ends the walk. Runs in O(total words):
/// hosts send 100,000-word profiles.
pub fn walk<S>(g: &Grammar<S>, words: &[OsString], d: &mut Draft<S>) -> Result<Walked, Usage> {
    // Each word, and whether it came from an --args file.
    let mut pending: VecDeque<(OsString, bool)> =
        words.iter().map(|w| (w.clone(), false)).collect();
    let mut index = 0;
    d.origin.front_end = g.front_end;
    while let Some((word, from_file)) = pending.pop_front() {
        index += 1;
        let text = word.to_str().unwrap_or("");
        if word == "--" {
            return Ok(Walked::Command(
                pending.into_iter().map(|(w, _)| w).collect(),
            ));
        }
        if !text.starts_with('-') {
            if g.command_at_first_word {
                let rest = pending.into_iter().map(|(w, _)| w);
                return Ok(Walked::Command(std::iter::once(word).chain(rest).collect()));
            }
            return Err(Usage::Stray(word));
        }
        if g.help_words.contains(&text) {
            return Ok(Walked::Help);
        }
        if g.version_words.contains(&text) {
            return Ok(Walked::Version);
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if g.nested_args => (name, Some(OsString::from(value))),
            _ => (text, None),
        };
        let Some(opt) = g.table.iter().find(|o| o.name == name) else {
            return Err(Usage::Unknown(text.to_string()));
        };
        d.origin.option = opt.name;
        d.origin.index = index;
        let values = take_values(opt, inline, &mut pending)?;
        index += values.len();
        if opt.name == "--args" {
            if from_file && !g.nested_args {
                return Err(Usage::ArgsNested);
            }
            let fd = parse_fd(opt.name, &values[0])?;
            let inserted = read_args_words(fd)?;
            for w in inserted.into_iter().rev() {
                pending.push_front((w, true));
            }
        } else {
            (opt.build)(d, &values)?;
        }
        (g.after_option)(d)?;
    }
    if g.command_at_first_word {
        Ok(Walked::NoCommand)
    } else {
        Ok(Walked::Command(Vec::new()))
    }
}

/// The values of `opt`: `--name=value` for a one-value option, else the
/// next words.
fn take_values<S>(
    opt: &Opt<S>,
    inline: Option<OsString>,
    pending: &mut VecDeque<(OsString, bool)>,
) -> Result<Vec<OsString>, Usage> {
    let arity = opt.values.len();
    if let Some(value) = inline {
        if arity == 0 {
            return Err(Usage::Unknown(format!(
                "{}={}",
                opt.name,
                value.to_string_lossy()
            )));
        }
        if arity != 1 {
            return Err(Usage::MissingValues {
                option: opt.name,
                values: opt.values,
                got: 1,
            });
        }
        return Ok(vec![value]);
    }
    if pending.len() < arity {
        return Err(Usage::MissingValues {
            option: opt.name,
            values: opt.values,
            got: pending.len(),
        });
    }
    Ok(pending.drain(..arity).map(|(w, _)| w).collect())
}

/// The words of `--args FD`: read to EOF, then FD is closed so the
/// workload never inherits it (0–2 are pointed at /dev/null instead, so a
/// later open cannot land on a standard slot).
fn read_args_words(fd: i32) -> Result<Vec<OsString>, Usage> {
    let unreadable = |refusal| Usage::ArgsUnreadable { fd, refusal };
    let data = sys::read_to_end(fd).map_err(|e| unreadable(Some(e)))?;
    let closed = if fd <= 2 {
        sys::replace_with_dev_null(fd)
    } else {
        sys::close(fd)
    };
    closed.map_err(|e| unreadable(Some(e)))?;
    split_nul_words(&data).map_err(|_| unreadable(None))
}

/// NUL-terminated words; an unterminated last word is an error, so a
/// truncated profile is never half-applied.
pub fn split_nul_words(data: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = data.strip_suffix(b"\0") else {
        return Err("the last word is not NUL-terminated");
    };
    Ok(body
        .split(|b| *b == 0)
        .map(|w| OsStr::from_bytes(w).to_os_string())
        .collect())
}

/// A descriptor number (0 or more).
pub fn parse_fd(option: &'static str, word: &OsStr) -> Result<i32, Usage> {
    word.to_str()
        .and_then(|w| w.parse::<i32>().ok())
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| Usage::BadFd {
            option,
            word: word.to_os_string(),
        })
}

// ------------------------------------------------- shared step builders

/// `--bind`, `--ro-bind` and their `-try` forms.
pub fn bind<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    let option = d.option();
    d.push(MountOp::Bind {
        src: PathBuf::from(&v[0]),
        dst: PathBuf::from(&v[1]),
        read_only: option.starts_with("--ro-"),
        if_exists: option.ends_with("-try"),
    });
    Ok(())
}

/// `--dev-bind` and `--dev-bind-try`.
pub fn dev_bind<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    let if_exists = d.option().ends_with("-try");
    d.push(MountOp::DevBind {
        src: PathBuf::from(&v[0]),
        dst: PathBuf::from(&v[1]),
        if_exists,
    });
    Ok(())
}

/// `--dir DST`, with a waiting `--perms`.
pub fn dir<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    let mode = d.next_perms.take();
    d.push(MountOp::Dir {
        dst: PathBuf::from(&v[0]),
        mode,
    });
    Ok(())
}

/// `--symlink TARGET DST`.
pub fn symlink<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    d.push(MountOp::Symlink {
        target: PathBuf::from(&v[0]),
        dst: PathBuf::from(&v[1]),
    });
    Ok(())
}

/// `--tmpfs DST`, with a waiting `--perms` and `--size`.
pub fn tmpfs<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    let (mode, size) = (d.next_perms.take(), d.next_size.take());
    d.push(MountOp::Tmpfs {
        dst: PathBuf::from(&v[0]),
        mode,
        size,
    });
    Ok(())
}

/// `--dev DST`.
pub fn dev<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    d.push(MountOp::Dev {
        dst: PathBuf::from(&v[0]),
    });
    Ok(())
}

/// `--proc DST`.
pub fn proc<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    d.push(MountOp::Proc {
        dst: PathBuf::from(&v[0]),
    });
    Ok(())
}

/// `--setenv KEY VALUE`.
pub fn setenv<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    d.env.push(EnvOp::Set(v[0].clone(), v[1].clone()));
    Ok(())
}

/// `--unsetenv KEY`.
pub fn unsetenv<S>(d: &mut Draft<S>, v: &[OsString]) -> Result<(), Usage> {
    d.env.push(EnvOp::Unset(v[0].clone()));
    Ok(())
}

/// `--clearenv`.
pub fn clearenv<S>(d: &mut Draft<S>, _: &[OsString]) -> Result<(), Usage> {
    d.env.push(EnvOp::Clear);
    Ok(())
}

/// `--args FD`, `--help` and `--version`: answered by [`walk`] itself;
/// their table entries give their arity and help.
pub fn handled_by_walk<S>(_: &mut Draft<S>, _: &[OsString]) -> Result<(), Usage> {
    Ok(())
}

/// No rule to check after an option.
pub fn no_rule<S>(_: &mut Draft<S>) -> Result<(), Usage> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::IntoRawFd;

    #[derive(Default)]
    struct Flags {
        seen: Vec<&'static str>,
    }

    fn note(d: &mut Draft<Flags>, _: &[OsString]) -> Result<(), Usage> {
        let option = d.option();
        d.settings.seen.push(option);
        Ok(())
    }

    const TABLE: &[Opt<Flags>] = &[
        Opt {
            name: "--flag",
            values: &[],
            help: "",
            build: note,
        },
        Opt {
            name: "--bind",
            values: &["SRC", "DST"],
            help: "",
            build: bind,
        },
        Opt {
            name: "--chdir",
            values: &["DIR"],
            help: "",
            build: note,
        },
        Opt {
            name: "--args",
            values: &["FD"],
            help: "",
            build: handled_by_walk,
        },
    ];

    fn grammar(run_like: bool) -> Grammar<Flags> {
        Grammar {
            front_end: if run_like {
                FrontEnd::Run
            } else {
                FrontEnd::Bwrap
            },
            table: TABLE,
            help_words: &["--help"],
            version_words: &[],
            command_at_first_word: !run_like,
            nested_args: run_like,
            after_option: no_rule,
        }
    }

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    /// A pipe holding `data`, its write end closed: an `--args` source.
    fn args_fd(data: &[u8]) -> String {
        let (r, w) = sys::pipe_cloexec().unwrap();
        let mut w = std::fs::File::from(w);
        w.write_all(data).unwrap();
        drop(w);
        r.into_raw_fd().to_string()
    }

    #[test]
    fn steps_keep_their_origin_through_spliced_words() {
        let fd = args_fd(b"--bind\0/c\0/d\0");
        let list = [
            "--bind",
            "/a",
            "/b",
            "--args",
            fd.as_str(),
            "--flag",
            "--",
            "x",
        ];
        let mut d = Draft::new(Flags::default());
        let walked = walk(&grammar(true), &words(&list), &mut d).unwrap();
        assert_eq!(walked, Walked::Command(words(&["x"])));
        let origins: Vec<(&str, usize)> = d
            .steps
            .iter()
            .map(|s| (s.origin.option, s.origin.index))
            .collect();
        // The spliced --bind is the sixth word read (after --args FD).
        assert_eq!(origins, [("--bind", 1), ("--bind", 6)]);
        assert!(d.steps.iter().all(|s| s.origin.front_end == FrontEnd::Run));
        assert_eq!(d.settings.seen, ["--flag"]);
    }

    #[test]
    fn values_are_taken_verbatim_and_inline_only_where_the_grammar_says() {
        let mut d = Draft::new(Flags::default());
        let walked = walk(
            &grammar(true),
            &words(&["--bind", "--args", "--", "--chdir=/w", "--", "c"]),
            &mut d,
        )
        .unwrap();
        assert_eq!(walked, Walked::Command(words(&["c"])));
        assert_eq!(
            d.steps[0].op,
            MountOp::Bind {
                src: "--args".into(),
                dst: "--".into(),
                read_only: false,
                if_exists: false
            }
        );
        assert_eq!(d.settings.seen, ["--chdir"]);
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(false), &words(&["--chdir=/w", "c"]), &mut d),
            Err(Usage::Unknown("--chdir=/w".into()))
        );
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(true), &words(&["--flag=1"]), &mut d),
            Err(Usage::Unknown("--flag=1".into()))
        );
    }

    #[test]
    fn the_command_starts_where_the_grammar_says() {
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(false), &words(&["--flag", "ls", "--flag"]), &mut d),
            Ok(Walked::Command(words(&["ls", "--flag"])))
        );
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(true), &words(&["--flag", "ls"]), &mut d),
            Err(Usage::Stray("ls".into()))
        );
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(false), &words(&["--flag"]), &mut d),
            Ok(Walked::NoCommand)
        );
        let mut d = Draft::new(Flags::default());
        assert_eq!(
            walk(&grammar(true), &words(&["--bind", "/a"]), &mut d),
            Err(Usage::MissingValues {
                option: "--bind",
                values: &["SRC", "DST"],
                got: 1
            })
        );
    }

    #[test]
    fn args_files_nest_only_where_the_grammar_says() {
        for run_like in [true, false] {
            let inner = args_fd(b"--flag\0");
            let outer = args_fd(format!("--args\0{inner}\0").as_bytes());
            let mut d = Draft::new(Flags::default());
            let walked = walk(
                &grammar(run_like),
                &words(&["--args", &outer, "--", "x"]),
                &mut d,
            );
            if run_like {
                assert_eq!(walked, Ok(Walked::Command(words(&["x"]))));
                assert_eq!(d.settings.seen, ["--flag"]);
            } else {
                assert_eq!(walked, Err(Usage::ArgsNested));
                let _ = sys::close(inner.parse().unwrap());
            }
        }
        let fd = args_fd(b"--flag");
        let mut d = Draft::new(Flags::default());
        assert!(matches!(
            walk(&grammar(true), &words(&["--args", &fd, "--", "x"]), &mut d),
            Err(Usage::ArgsUnreadable { refusal: None, .. })
        ));
    }

    #[test]
    fn nul_words_split() {
        assert_eq!(split_nul_words(b"a\0\0b\0").unwrap(), ["a", "", "b"]);
        assert!(split_nul_words(b"").unwrap().is_empty());
        assert!(split_nul_words(b"a\0b").is_err());
    }
}
