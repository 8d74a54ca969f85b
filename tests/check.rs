//! `srt-launcher check` (SPEC §6), on this machine and with each refusal
//! simulated for real: a refused unshare, user namespaces disabled by the
//! parent, mounts denied inside the namespace, a covered /proc. In each
//! case `run` fails with the same cause in its error line.

mod common;

use std::process::{Command, Output, Stdio};

use common::{Harness, Who, harness, stderr, stdout};

/// `check ARGS` as `who`.
fn check(h: &Harness, who: Who, args: &[&str]) -> Output {
    check_as(h, who, &h.launcher, args)
}

/// `check ARGS` run by the binary at `exe`.
fn check_as(h: &Harness, who: Who, exe: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.arg("check")
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null());
    h.as_identity(&mut cmd, who);
    // A copy just written may still be open for writing in a child that
    // another test thread forked before its exec closed it (ETXTBSY):
    // that passes within moments.
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("spawn check"),
        }
    }
    cmd.output().expect("spawn check")
}

/// ETXTBSY (the same number on every Linux architecture built here).
const ETXTBSY: i32 = 26;

/// Fields of `check --json`'s output, read by Python's json module (so the
/// document is known to be valid JSON): `expr` is a Python expression
/// over `d`, printed one value per line.
fn json_fields(out: &Output, expr: &str) -> Vec<String> {
    let mut py = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!("import json,sys\nd=json.load(sys.stdin)\nfor v in {expr}: print(v)"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), &out.stdout).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "not the documented JSON: {}\n{}",
        String::from_utf8_lossy(&parsed.stderr),
        stdout(out)
    );
    String::from_utf8_lossy(&parsed.stdout)
        .lines()
        .map(String::from)
        .collect()
}

const STEPS: [&str; 6] = [
    "namespaces",
    "loopback",
    "mount tree",
    "session keyring",
    "seccomp filter",
    "sandbox",
];

#[test]
fn everything_works_here_as_root_and_unprivileged() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let out = check(h, who, &[]);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who:?}: {text}{}",
            stderr(&out)
        );
        for step in STEPS {
            let line = text
                .lines()
                .find(|l| l[5..].trim_start().starts_with(step))
                .unwrap_or_else(|| panic!("{who:?}: no {step} line in {text}"));
            assert!(line.starts_with("ok "), "{who:?}: {line}");
        }
        assert!(text.contains("landlock ABI"), "{text}");
        assert!(text.trim_end().ends_with("run works for this user here."));

        let json = check(h, who, &["--json"]);
        assert_eq!(json.status.code(), Some(0), "{who:?}");
        let fields = json_fields(
            &json,
            "[d['schema'], d['works'], len(d['causes']), ','.join(c['name'] + '=' + c['status'] \
             for c in d['checks']), type(d['features']['openat2']).__name__, \
             type(d['evidence']['lsm']).__name__]",
        );
        let statuses = STEPS.map(|s| format!("{s}=ok")).join(",");
        assert_eq!(
            fields,
            [
                "srt-launcher-check/1",
                "True",
                "0",
                &statuses,
                "bool",
                "list"
            ],
            "{who:?}"
        );
    }
}

/// How a test makes the machine refuse.
#[derive(Clone, Copy, Debug)]
enum Refuse {
    /// A probe mode wrapping the launcher (see tests/helpers/probe.c).
    Probe(&'static str),
    /// A tmpfs over /proc/sys in a private mount namespace (needs root to
    /// set up; the launcher then runs as `who`).
    CoveredProc,
}

/// The launcher with `args` (subcommand included), as `who`, where the
/// machine refuses as `refuse` says.
fn refused(h: &Harness, who: Who, refuse: Refuse, args: &[&str]) -> Output {
    let mut cmd = match refuse {
        Refuse::Probe(mode) => {
            let mut c = Command::new(h.probe_str());
            c.args([mode, "--", h.launcher_str()]);
            h.as_identity(&mut c, who);
            c
        }
        Refuse::CoveredProc => {
            let mut c = Command::new("unshare");
            c.args([
                "--mount",
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /proc/sys && exec \"$@\"",
                "sh",
            ]);
            c.args(h.setpriv_argv(who)).arg(h.launcher_str());
            c
        }
    };
    cmd.args(args).current_dir("/").stdin(Stdio::null());
    cmd.output().expect("spawn the launcher")
}

/// Asserts that `check` fails at `step` with one of `causes` (in text and
/// JSON, with a fix), and that `run` in the same conditions fails naming
/// the same cause and pointing at `check`.
fn assert_diagnosed(h: &Harness, who: Who, refuse: Refuse, step: &str, causes: &[&str]) {
    let context = format!("{who:?} {refuse:?}");
    let out = refused(h, who, refuse, &["check", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{context}: {}", stdout(&out));
    let fields = json_fields(
        &out,
        &format!(
            "[d['works'], [c['status'] for c in d['checks'] if c['name'] == '{step}'][0], \
             [c['status'] for c in d['checks'] if c['name'] == 'sandbox'][0], \
             d['causes'][0]['id'], d['causes'][0]['summary'], d['causes'][0]['fixes'][0], \
             d['landlock_mode']['works']]"
        ),
    );
    assert_eq!(fields[..3], ["False", "fail", "fail"], "{context}");
    let (id, summary, fix) = (&fields[3], &fields[4], &fields[5]);
    let landlock_works = fields[6] == "True";
    assert!(causes.contains(&id.as_str()), "{context}: cause {id}");
    assert!(!fix.is_empty(), "{context}");

    let text = refused(h, who, refuse, &["check"]);
    assert_eq!(text.status.code(), Some(1), "{context}");
    let text = stdout(&text);
    assert!(
        text.contains(&format!("cause: {summary} ({id})")),
        "{context}: {text}"
    );
    assert!(text.contains(&format!("fix:   {fix}")), "{context}: {text}");
    // Where namespaces are refused, Landlock mode is the way out, and
    // the verdict says so when it works.
    let verdict = if landlock_works {
        "run does not work for this user here with namespaces; \
         run --isolation auto (or landlock) does, without them."
    } else {
        "run does not work for this user here."
    };
    assert!(text.trim_end().ends_with(verdict), "{context}: {text}");

    let run = refused(
        h,
        who,
        refuse,
        &[
            "run",
            "--unshare-net",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--",
            "true",
        ],
    );
    let line = stderr(&run);
    assert_eq!(run.status.code(), Some(125), "{context}: {line}");
    assert_eq!(line.lines().count(), 1, "{context}: {line}");
    assert!(line.contains(summary.as_str()), "{context}: {line}");
    assert!(
        line.trim_end()
            .ends_with("run `srt-launcher check` for details"),
        "{context}: {line}"
    );
}

#[test]
fn a_refused_unshare_is_diagnosed() {
    let Some(h) = harness() else { return };
    // The probe's seccomp filter refuses unshare(2); inside a container
    // (as on some CI machines) that is what the container's profile does.
    for who in h.identities() {
        assert_diagnosed(
            h,
            who,
            Refuse::Probe("nounshare"),
            "namespaces",
            &["seccomp-refuses-unshare", "container-refuses-namespaces"],
        );
    }
}

/// What Docker's default profile refuses a container without
/// CAP_SYS_ADMIN (the probe's `container`): namespaces fail with the
/// container's cause, and Landlock mode is assessed on the same kernel.
#[test]
fn a_container_like_refusal_is_diagnosed_and_landlock_mode_assessed() {
    let Some(h) = harness() else { return };
    let abi = Command::new(h.probe_str())
        .arg("landlock-abi")
        .output()
        .unwrap();
    let abi = stdout(&abi).trim().to_string();
    for who in h.identities() {
        assert_diagnosed(
            h,
            who,
            Refuse::Probe("container"),
            "namespaces",
            &["container-refuses-namespaces", "seccomp-refuses-unshare"],
        );
        let out = refused(h, who, Refuse::Probe("container"), &["check", "--json"]);
        let fields = json_fields(
            &out,
            "[d['landlock_mode']['abi'], d['landlock_mode']['reported_abi'], \
             d['landlock_mode']['works'], \
             'run --isolation landlock' in d['landlock_mode']['detail'], \
             'tcp-servers-refused' in d['landlock_mode']['not_enforced'], \
             d['landlock_mode']['detail']]",
        );
        // The usual sandbox (--unshare-net) needs Landlock's TCP rules
        // (ABI 4) and, below ABI 9, has --seccomp-unix-block.
        let works = if abi.parse::<i64>().unwrap_or(-1) >= 4 {
            "True"
        } else {
            "False"
        };
        assert_eq!(
            fields[..5],
            [&abi, &abi, works, "True", works],
            "{who:?}: {}",
            fields[5]
        );
    }
}

#[test]
fn user_namespaces_disabled_by_the_parent_are_diagnosed() {
    let Some(h) = harness() else { return };
    // As root the launcher needs no user namespace, so only the
    // unprivileged path can be refused this way.
    assert_diagnosed(
        h,
        Who::User,
        Refuse::Probe("nouserns"),
        "namespaces",
        &["userns-disabled-by-parent"],
    );
}

#[test]
fn mounts_denied_inside_the_namespace_are_diagnosed() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        assert_diagnosed(
            h,
            who,
            Refuse::Probe("nomount"),
            "mount tree",
            &["mounts-refused"],
        );
    }
}

#[test]
fn a_covered_proc_is_diagnosed_and_host_proc_offered() {
    let Some(h) = harness() else { return };
    if !h.identities().contains(&Who::Root) {
        eprintln!("SKIP: covering /proc in a private mount namespace needs root");
        return;
    }
    // Root may mount a fresh procfs over a covered one; a user namespace
    // may not, which is the case users hit.
    assert_diagnosed(
        h,
        Who::User,
        Refuse::CoveredProc,
        "mount tree",
        &["proc-covered"],
    );
    let out = refused(h, Who::User, Refuse::CoveredProc, &["check"]);
    assert!(
        stdout(&out).contains("(with --host-proc /proc instead, it works)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apparmor_profile_names_this_binary() {
    let Some(h) = harness() else { return };
    let exe = std::fs::canonicalize(&h.launcher).unwrap();
    let out = check(h, Who::User, &["--apparmor-profile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("abi <abi/4.0>,"), "{text}");
    assert!(
        text.contains(&format!("\"{}\" flags=", exe.display())),
        "{text}"
    );
    assert!(text.contains("  allow userns,"), "{text}");
    assert!(text.contains("  audit deny capability,"), "{text}");
    assert!(text.contains("apparmor_parser -r /etc/apparmor.d/srt-launcher-"));
    // --install is root's: as the user it is a one-line failure, exit 1,
    // and nothing is written.
    let install = check(h, Who::User, &["--apparmor-profile", "--install"]);
    assert_eq!(install.status.code(), Some(1), "{}", stderr(&install));
    assert_eq!(stderr(&install).lines().count(), 1);
    assert!(stderr(&install).contains("as root"), "{}", stderr(&install));
    // As root on a machine without AppArmor: a clear refusal, nothing
    // half-done.
    if h.identities().contains(&Who::Root) && !std::path::Path::new("/etc/apparmor.d").exists() {
        let root = check(h, Who::Root, &["--apparmor-profile", "--install"]);
        assert_eq!(root.status.code(), Some(1), "{}", stderr(&root));
        assert_eq!(stderr(&root).lines().count(), 1);
        assert!(
            stderr(&root).contains("AppArmor is not installed here"),
            "{}",
            stderr(&root)
        );
        assert!(!std::path::Path::new("/etc/apparmor.d").exists());
    }
}

/// `check ARGS` run from a copy of the launcher at `exe`.
fn check_copy(h: &Harness, who: Who, exe: &std::path::Path, args: &[&str]) -> Output {
    std::fs::copy(&h.launcher, exe).unwrap();
    check_as(h, who, exe, args)
}

#[test]
fn apparmor_profile_refuses_paths_it_cannot_name_or_trust() {
    use std::os::unix::fs::PermissionsExt;
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    // A newline in the path would turn the rest of the comment naming it
    // into live policy.
    let odd = dir.path().join("x\nprofile injected flags=(unconfined) {}");
    std::fs::create_dir(&odd).unwrap();
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = check_copy(
        h,
        Who::User,
        &odd.join("srt-launcher"),
        &["--apparmor-profile"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot name"), "{}", stderr(&out));
    // As root: a vendored copy in a directory a user owns is refused,
    // naming that directory and the root-owned copy to install instead;
    // nothing is written.
    if let Some((uid, gid)) = h.user_ids(Who::User) {
        let vendored = dir.path().join("sdk");
        std::fs::create_dir(&vendored).unwrap();
        std::os::unix::fs::chown(&vendored, Some(uid), Some(gid)).unwrap();
        let exe = vendored.join("srt-launcher");
        let out = check_copy(h, Who::Root, &exe, &["--apparmor-profile", "--install"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{} is not root's alone", vendored.display())),
            "{err}"
        );
        assert!(
            err.contains("sudo install -D -m 0755 -o root -g root"),
            "{err}"
        );
        assert!(err.contains("/usr/local/lib/srt-launcher/"), "{err}");
        // Printing the profile for it says so too.
        let out = check_copy(h, Who::Root, &exe, &["--apparmor-profile"]);
        assert!(stdout(&out).contains("# WARNING: "), "{}", stdout(&out));
    }
}

#[test]
fn usage_errors_exit_2() {
    let Some(h) = harness() else { return };
    for args in [
        &["--install"][..],
        &["--bogus"],
        &["--json", "--apparmor-profile"],
    ] {
        let out = check(h, Who::User, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{args:?}");
    }
}
