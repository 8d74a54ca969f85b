//! Landlock mode (SPEC §2.8, `--isolation landlock`): the rows of its
//! table attacked from inside, as root and as the unprivileged user, on
//! the host's own tree. Work in progress (issue 20): the filesystem rows,
//! the refusals and the report; not yet the network, `auto` or the forced
//! ABI ceilings.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{Harness, Scratch, Who, harness, stderr, stdout};

/// The SDK's shape on a scratch project: the host read-only, a private
/// /tmp, the project writable with a mask, a deny-write and a missing
/// mask inside, /proc and /dev.
fn sdk_args(project: &str) -> Vec<String> {
    let p = |name: &str| format!("{project}/{name}");
    let mut args: Vec<String> = ["--isolation", "landlock", "--seccomp-unix-block"]
        .map(String::from)
        .to_vec();
    args.extend(["--ro-bind", "/", "/", "--tmpfs", "/tmp"].map(String::from));
    args.extend(["--bind".into(), project.into(), project.into()]);
    args.extend(["--mask".into(), p(".env")]);
    args.extend(["--deny-write".into(), p("Makefile")]);
    args.extend(["--mask".into(), p(".missing")]);
    args.extend(["--proc", "/proc", "--dev", "/dev", "--"].map(String::from));
    args
}

fn project(h: &Harness) -> Scratch {
    let dir = h.scratch();
    dir.file(".env", "secret\n");
    dir.file("Makefile", "all:\n");
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::set_permissions(
        dir.path().join("src"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    for name in [".env", "Makefile"] {
        std::fs::set_permissions(
            dir.path().join(name),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
    }
    dir
}

fn run(h: &Harness, who: Who, args: &[String], script: &str) -> Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["sh", "-c", script]);
    h.run(who, &all)
}

/// Each attack prints `name=ok` or `name=refused`.
const ATTACKS: &str = r#"
try() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name=ok"; else echo "$name=refused"; fi; }
cd "$0"
try read-mask cat .env
try write-deny-write sh -c 'echo x >> Makefile'
try rename-over-deny-write sh -c 'echo x > src/m && mv src/m Makefile'
try hard-link-deny-write ln Makefile src/m2
try create-missing-mask sh -c 'echo x > .missing'
try read-deny-write sh -c 'cat Makefile >/dev/null'
try write-in-project sh -c 'echo x > src/new'
try write-outside sh -c 'echo x > /etc/srtl-landlock'
try list-tmp ls /tmp
try write-tmpdir sh -c 'echo x > "$TMPDIR/f"'
try dev-null sh -c 'echo x > /dev/null'
try signal-host kill -0 1
"#;

#[test]
fn every_filesystem_row_holds_against_the_workload() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let args = sdk_args(dir.str());
        let script = ATTACKS.to_string();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["sh", "-c", &script, dir.str()]);
        let out = h.run(who, &all);
        let want = [
            "read-mask=refused",
            "write-deny-write=refused",
            "rename-over-deny-write=refused",
            "hard-link-deny-write=refused",
            "create-missing-mask=refused",
            "read-deny-write=ok",
            "write-in-project=ok",
            "write-outside=refused",
            "list-tmp=refused",
            "write-tmpdir=ok",
            "dev-null=ok",
            "signal-host=refused",
        ];
        assert_eq!(
            stdout(&out).lines().collect::<Vec<_>>(),
            want,
            "{who:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".env")).unwrap(),
            "secret\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Makefile")).unwrap(),
            "all:\n"
        );
        assert!(!dir.path().join(".missing").exists());
    }
}

#[test]
fn the_gaps_are_reported_on_one_line_before_the_workload_runs() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let out = run(h, who, &sdk_args(dir.str()), "echo ran >&2");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{who:?}: {err}");
        assert!(
            lines[0].starts_with("srt-launcher: run: no namespaces (")
                && lines[0].contains("Landlock ABI")
                && lines[0].contains("not enforced: host-processes-visible"),
            "{}",
            lines[0]
        );
        // Denying more is reported too: the project's top cannot get new
        // entries, and / cannot be listed (it would list the host's /tmp).
        assert!(
            lines[0].contains("deny-path-parents-sealed"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("listing-denied-above-hidden-directories"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "ran");
    }
}

#[test]
fn the_private_tmpdir_goes_with_the_run() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let out = run(
            h,
            who,
            &sdk_args(dir.str()),
            "echo $TMPDIR; touch $TMPDIR/x",
        );
        let tmpdir = stdout(&out).trim().to_string();
        assert!(
            tmpdir.starts_with("/tmp/srt-launcher-tmp-"),
            "{who:?}: {tmpdir}"
        );
        assert!(
            !std::path::Path::new(&tmpdir).exists(),
            "{who:?}: {tmpdir} is left"
        );
    }
}

#[test]
fn the_exit_code_comes_through_and_the_tree_dies_with_the_workload() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let marker = format!("srtl-landlock-orphan-{}", std::process::id());
        let script = format!("(exec -a {marker} sleep 300) & exit 7");
        let out = run(h, who, &sdk_args(dir.str()), &script);
        assert_eq!(out.status.code(), Some(7), "{who:?}: {}", stderr(&out));
        assert!(
            common::wait_until(5, || common::processes_with(&marker).is_empty()),
            "{who:?}: a background process outlived the sandbox"
        );
    }
}

#[test]
fn what_landlock_cannot_express_is_refused_naming_the_option() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let linked = h.scratch();
        std::os::unix::fs::symlink("/etc", linked.path().join("link")).unwrap();
        let through_link = format!("{}/link/passwd", linked.str());
        let linked_dir = linked.str().to_string();
        for (extra, words) in [
            (
                vec![
                    "--bind",
                    linked_dir.as_str(),
                    linked_dir.as_str(),
                    "--mask",
                    through_link.as_str(),
                ],
                "symlink",
            ),
            (vec!["--hostname", "box"], "--hostname"),
            (vec!["--ro-bind", "/etc", "/mnt"], "--ro-bind"),
            (vec!["--dev-bind", "/dev/null", "/dev/null"], "--dev-bind"),
        ] {
            let mut args = vec![
                "--isolation",
                "landlock",
                "--seccomp-unix-block",
                "--ro-bind",
                "/",
                "/",
            ];
            args.extend(extra);
            args.extend(["--", "true"]);
            let out = h.run(who, &args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{who:?} {words}: {err}");
            assert!(err.contains(words) && err.lines().count() == 1, "{err}");
        }
        // Below ABI 9 a unix socket is reached by path whatever Landlock
        // says: without --seccomp-unix-block the run is refused.
        let out = h.run(
            who,
            &[
                "--isolation",
                "landlock",
                "--ro-bind",
                "/",
                "/",
                "--",
                "true",
            ],
        );
        let abi = Command::new(h.probe_str())
            .arg("landlock-abi")
            .output()
            .unwrap();
        let abi: i64 = stdout(&abi).trim().parse().unwrap_or(-1);
        let want = if abi < 9 { 125 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{who:?}: {}", stderr(&out));
        if abi < 9 {
            assert!(
                stderr(&out).contains("--seccomp-unix-block"),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn without_landlock_the_run_is_refused() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let mut argv = h.setpriv_argv(who);
        argv.extend([h.probe_str(), "nolandlock", "--", h.launcher_str(), "run"].map(String::from));
        argv.extend(
            [
                "--isolation",
                "landlock",
                "--seccomp-unix-block",
                "--ro-bind",
                "/",
                "/",
                "--",
                "true",
            ]
            .map(String::from),
        );
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert!(err.contains("Landlock is not available"), "{err}");
    }
}
