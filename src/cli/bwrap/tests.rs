//! bwrap mode's parsing, against bubblewrap's behaviour and phrases.

use super::*;
use crate::plan::MountOp;

fn parse_words(words: &[&str]) -> anyhow::Result<RunSpec> {
    let args: Vec<OsString> = words.iter().map(OsString::from).collect();
    match parse(OsStr::new("bwrap"), &args).request? {
        Request::Run(spec) => Ok(*spec),
        Request::Print(text) | Request::Usage(text) => panic!("printed {text}"),
    }
}

fn failure_of(words: &[&str]) -> String {
    let err = parse_words(words).unwrap_err();
    assert_eq!(crate::cli::render::run_code(&err), FAILURE, "{err}");
    err.to_string()
}

#[test]
fn defaults_share_everything_but_mounts() {
    let spec = parse_words(&["--ro-bind", "/", "/", "true"]).unwrap();
    let ns = &spec.namespaces;
    assert!(!ns.pid && !ns.net && !ns.ipc && !ns.uts && !ns.cgroup);
    let p = &spec.process;
    assert!(!p.die_with_parent && !p.new_session && !p.reaper);
    assert_eq!(spec.command, ["true"]);
}

#[test]
fn first_non_option_starts_the_command() {
    let spec = parse_words(&["--unshare-pid", "ls", "--bind", "/", "/"]).unwrap();
    assert_eq!(spec.command, ["ls", "--bind", "/", "/"]);
    assert!(spec.mounts.is_empty());
    assert!(spec.process.reaper);
    let spec = parse_words(&["--", "--weird", "x"]).unwrap();
    assert_eq!(spec.command, ["--weird", "x"]);
}

#[test]
fn unshare_all_and_share_net() {
    let spec = parse_words(&["--unshare-all", "--share-net", "true"]).unwrap();
    let ns = &spec.namespaces;
    assert!(ns.pid && ns.ipc && ns.uts && !ns.net);
}

#[test]
fn usage_errors_are_bwraps() {
    assert_eq!(failure_of(&["--bind", "/a"]), "--bind takes two arguments");
    assert_eq!(
        failure_of(&["--frobnicate", "true"]),
        "Unknown option --frobnicate"
    );
    assert_eq!(failure_of(&["--info-fd", "x", "true"]), "Invalid fd: x");
    assert_eq!(
        failure_of(&["--cap-add", "CAP_NOPE", "true"]),
        "unknown cap: CAP_NOPE"
    );
    assert_eq!(
        failure_of(&["--as-pid-1", "true"]),
        "Specifying --as-pid-1 requires --unshare-pid"
    );
    assert_eq!(
        failure_of(&["--hostname", "h", "true"]),
        "Specifying --hostname requires --unshare-uts"
    );
    assert_eq!(
        failure_of(&["--argv0", "a", "--argv0", "b", "true"]),
        "--argv0 used multiple times"
    );
    assert_eq!(
        failure_of(&["--exec-label", "x", "true"]),
        "labeling not supported on this system"
    );
    assert_eq!(
        failure_of(&["--overlay-src", "/a", "true"]),
        OVERLAY_SRC_DANGLING
    );
    assert_eq!(
        failure_of(&["--overlay-src", "/a", "--ro-overlay", "/b", "true"]),
        "--ro-overlay requires at least two --overlay-src"
    );
    assert_eq!(
        failure_of(&["--userns-block-fd", "3", "true"]),
        "--userns-block-fd requires --unshare-user"
    );
}

#[test]
fn every_plan_check_has_its_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--userns", "3", "--unshare-user", "true"],
            "--userns is not compatible with --unshare-user",
        ),
        (
            &["--userns", "3", "--unshare-user-try", "true"],
            "--userns is not compatible with --unshare-user-try",
        ),
        (
            &["--unshare-user", "--userns-block-fd", "3", "true"],
            "--userns-block-fd requires --info-fd",
        ),
        (
            &[
                "--unshare-user",
                "--info-fd",
                "4",
                "--userns-block-fd",
                "3",
                "--disable-userns",
                "true",
            ],
            "--disable-userns is not compatible with --userns-block-fd",
        ),
        (
            &["--unshare-pid", "--as-pid-1", "--lock-file", "/l", "true"],
            "Specifying --as-pid-1 and --lock-file is not permitted",
        ),
        (
            &["--overlay", "/u", "/w", "/d", "true"],
            "--overlay requires at least one --overlay-src",
        ),
        (
            &["--tmp-overlay", "/d", "true"],
            "--tmp-overlay requires at least one --overlay-src",
        ),
        (
            &["--overlay", "/u", "/w"],
            "--overlay takes three arguments",
        ),
        (&["--args"], "--args takes an argument"),
        (&["--args", "-1", "true"], "Invalid fd: -1"),
        (&["--file", "x", "/f", "true"], "Invalid fd: x"),
        (
            &["--size", "9223372036854775808", "--tmpfs", "/t", "true"],
            "--size (for tmpfs) is limited to 9223372036854775807",
        ),
    ];
    for (args, message) in cases {
        assert_eq!(failure_of(args), *message, "{args:?}");
    }
    // Where bubblewrap decides by the caller's uid: a root caller does
    // not get a user namespace unless asked.
    if crate::sys::ids().0 == 0 {
        assert_eq!(
            failure_of(&["--disable-userns", "true"]),
            "--disable-userns requires --unshare-user"
        );
        assert_eq!(
            failure_of(&["--uid", "5", "true"]),
            "Specifying --uid requires --unshare-user or --userns"
        );
        assert_eq!(
            failure_of(&["--gid", "5", "true"]),
            "Specifying --gid requires --unshare-user or --userns"
        );
    }
}

#[test]
fn modifiers_apply_to_the_next_operation_only() {
    let spec = parse_words(&[
        "--perms", "0700", "--size", "0x1000", "--tmpfs", "/t", "true",
    ])
    .unwrap();
    assert_eq!(
        spec.mounts[0].op,
        MountOp::Tmpfs {
            dst: "/t".into(),
            mode: Some(0o700),
            size: Some(4096)
        }
    );
    assert_eq!(
        failure_of(&["--perms", "0700", "--bind", "/a", "/b", "true"]),
        "--perms must be followed by an option that creates a file"
    );
    assert_eq!(
        failure_of(&["--size", "10", "--dir", "/d", "true"]),
        "--size must be followed by --tmpfs"
    );
    assert_eq!(
        failure_of(&["--perms", "0700", "--perms", "0700", "--dir", "/d", "true"]),
        "--perms given twice for the same action"
    );
    assert_eq!(
        failure_of(&["--perms", "8", "--dir", "/d", "true"]),
        "--perms takes an octal argument <= 07777"
    );
    assert_eq!(
        failure_of(&["--size", "0", "--tmpfs", "/d", "true"]),
        "--size takes a non-zero number of bytes"
    );
    assert_eq!(
        failure_of(&["--chmod", "17777", "/d", "true"]),
        "--chmod takes an octal argument <= 07777"
    );
}

#[test]
fn capabilities_follow_add_and_drop() {
    let spec = parse_words(&["--cap-drop", "ALL", "--cap-add", "CAP_NET_RAW", "true"]).unwrap();
    assert_eq!(spec.process.capabilities, Capabilities::Keep(1 << 13));
}

#[test]
fn help_names_argv0() {
    let args = [OsString::from("--help")];
    let Ok(Request::Print(text)) = parse(OsStr::new("/x/bwrap"), &args).request else {
        panic!("no help");
    };
    assert!(text.starts_with("usage: /x/bwrap [OPTIONS...]"), "{text}");
    assert!(text.contains("--die-with-parent"));
    let args = [OsString::from("--unshare-pid")];
    let parsed = parse(OsStr::new("bwrap"), &args);
    assert!(
        matches!(parsed.request, Ok(Request::Usage(text)) if text.starts_with("usage: bwrap "))
    );
    let args = ["--level-prefix", "--nope"].map(OsString::from);
    let parsed = parse(OsStr::new("bwrap"), &args);
    assert!(parsed.level_prefix && parsed.request.is_err());
}
