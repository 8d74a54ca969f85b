//! Landlock mode (SPEC §2.8, `--isolation landlock|auto`): the rows of
//! its table attacked from inside, as root and as the unprivileged user,
//! on the host's own tree; the report and its JSON; `auto` under a
//! container-like and an Ubuntu-like refusal; and the older kernels,
//! forced by the probe (`landlock-ceiling`, `landlock-off`); the host's
//! network under `--unshare-net`; the relays and `--allow-unix` through
//! the broker, with either of its mechanisms.

mod common;
#[path = "../src/cli/usual.rs"]
#[allow(dead_code)]
mod usual;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{Harness, Scratch, Who, harness, stderr, stdout};

/// Landlock mode with the host read-only and unix sockets blocked, then
/// `rest`: the smallest run most refusals are tried on.
fn host_read_only<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--isolation",
        "landlock",
        "--seccomp-unix-block",
        "--ro-bind",
        "/",
        "/",
    ];
    args.extend(rest);
    args
}

/// The SDK's shape on a scratch project: the host read-only, a private
/// /tmp, the project writable with a mask, a deny-write and a missing
/// mask inside, /proc and /dev.
fn sdk_args(project: &str) -> Vec<String> {
    sdk_args_in("landlock", project)
}

/// The same with `--isolation MODE`.
fn sdk_args_in(mode: &str, project: &str) -> Vec<String> {
    let p = |name: &str| format!("{project}/{name}");
    let mut args: Vec<String> = ["--isolation", mode, "--seccomp-unix-block"]
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

/// `probe WRAP... -- srt-launcher run ARGS` as `who`: the launcher on a
/// machine the probe makes refuse (see tests/helpers/probe.c).
fn run_wrapped(h: &Harness, who: Who, wrap: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(h.probe_str());
    cmd.args(wrap)
        .arg("--")
        .arg(h.launcher_str())
        .arg("run")
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null());
    h.as_identity(&mut cmd, who);
    cmd.output().expect("spawn the probe")
}

/// The kernel's Landlock ABI, as the probe reads it (-1: none).
fn kernel_abi(h: &Harness) -> i64 {
    let out = Command::new(h.probe_str())
        .arg("landlock-abi")
        .output()
        .unwrap();
    stdout(&out).trim().parse().unwrap_or(-1)
}

/// The ids after "not enforced: " on the report line.
fn reported_gaps(line: &str) -> Vec<String> {
    line.split_once("not enforced: ")
        .map(|(_, ids)| ids.split(", ").map(String::from).collect())
        .unwrap_or_default()
}

/// Each attack prints `name=ok` or `name=refused`.
const ATTACKS: &str = r#"
try() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name=ok"; else echo "$name=refused"; fi; }
cd "$0"
launcher=$PPID
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
try write-dev-shm sh -c 'echo x > /dev/shm/srtl-landlock-attack'
try read-launcher-environ sh -c "cat /proc/$launcher/environ >/dev/null"
try signal-host kill -0 1
"#;

#[test]
fn every_filesystem_row_holds_against_the_workload() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let args = sdk_args(dir.str());
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["sh", "-c", ATTACKS, dir.str()]);
        let out = h.run(who, &all);
        assert_attacks_fail(&out, &dir, &format!("{who:?}"));
    }
}

/// What [`ATTACKS`] must print in the SDK's shape, and the project left
/// as it was.
fn assert_attacks_fail(out: &Output, dir: &Scratch, context: &str) {
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
        "write-dev-shm=refused",
        "read-launcher-environ=refused",
        "signal-host=refused",
    ];
    assert_eq!(
        stdout(out).lines().collect::<Vec<_>>(),
        want,
        "{context}: {}",
        stderr(out)
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
        // The deny path itself is a symlink: its rules would land on
        // whatever it points at.
        let through_link = format!("{}/link", linked.str());
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
            // A grant that is no socket, as in namespace mode.
            (vec!["--allow-unix", "/dev/null"], "not a socket"),
        ] {
            let mut args = host_read_only(&extra);
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
        let abi = kernel_abi(h);
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
        // Not built in (ENOSYS), and disabled at boot (EOPNOTSUPP).
        for absent in ["nolandlock", "landlock-off"] {
            let out = run_wrapped(
                h,
                who,
                &[absent],
                &host_read_only(&["--", "sh", "-c", "echo ran"]),
            );
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{who:?} {absent}: {err}");
            assert!(err.contains("Landlock is not available"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert_eq!(stdout(&out), "", "{who:?} {absent}: the command ran");
        }
    }
}

/// `auto` where a container's seccomp profile refuses namespaces: it
/// falls back, naming the cause, and the fallback is the real Landlock
/// mode (every attack fails); `namespaces` fails naming the cause.
#[test]
fn auto_falls_back_where_a_container_refuses_namespaces() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let mut args = sdk_args_in("auto", dir.str());
        args.extend(["sh", "-c", ATTACKS, dir.str()].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_wrapped(h, who, &["container"], &args);
        let err = stderr(&out);
        assert!(
            err.starts_with("srt-launcher: run: no namespaces (container-refuses-namespaces)")
                || err.starts_with("srt-launcher: run: no namespaces (seccomp-refuses-unshare)"),
            "{who:?}: {err}"
        );
        assert_attacks_fail(&out, &dir, &format!("{who:?} auto in a container"));

        let out = run_wrapped(
            h,
            who,
            &["container"],
            &["--seccomp-unix-block", "--ro-bind", "/", "/", "--", "true"],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("this container refuses new namespaces")
                || err.contains("a seccomp filter on this process refuses unshare(2)"),
            "{who:?}: {err}"
        );
    }
}

/// `auto` where `unshare` works but mounts are refused (Ubuntu 24.04's
/// AppArmor without the profile): it falls back too.
#[test]
fn auto_falls_back_where_mounts_are_refused() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = project(h);
        let args = sdk_args_in("auto", dir.str());
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend([
            "sh",
            "-c",
            "cd \"$0\" || exit 9; cat .env || echo mask-holds",
            dir.str(),
        ]);
        let out = run_wrapped(h, who, &["nomount"], &all);
        let err = stderr(&out);
        assert!(
            err.starts_with("srt-launcher: run: no namespaces (mounts-refused)")
                || err.starts_with("srt-launcher: run: no namespaces (apparmor-restricts-userns)"),
            "{who:?}: {err}"
        );
        assert_eq!(stdout(&out), "mask-holds\n", "{who:?}: {err}");
    }
}

/// Where namespaces work, `auto` is namespace mode; a missing source path
/// or a usage error is never a reason to fall back.
#[test]
fn auto_keeps_namespaces_where_they_work_and_never_falls_back_on_bad_input() {
    let Some(h) = harness() else { return };
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    for who in h.identities() {
        let out = h.run(
            who,
            &[
                "--isolation",
                "auto",
                "--ro-bind",
                "/",
                "/",
                "--",
                "readlink",
                "/proc/self/ns/mnt",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{who:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{who:?}");
        assert_ne!(stdout(&out).trim(), host_mnt.to_str().unwrap(), "{who:?}");

        let missing = "/srtl-no-such-source";
        let out = h.run(
            who,
            &[
                "--isolation",
                "auto",
                "--ro-bind",
                missing,
                missing,
                "--",
                "true",
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert!(
            err.contains(missing) && !err.contains("no namespaces"),
            "{err}"
        );

        for (args, code) in [
            (
                &["--isolation", "auto", "--no-such-option", "--", "true"][..],
                2,
            ),
            (&["--isolation", "sometimes", "--", "true"][..], 2),
        ] {
            let out = h.run(who, args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{who:?} {args:?}: {err}");
            assert!(!err.contains("no namespaces"), "{err}");
        }
    }
}

/// Older kernels, forced: below ABI 3 the run is refused (a read-only
/// file could be truncated); at 4 and 5 the host's processes can be
/// signalled, and this is reported; below 5 device ioctls are unscoped,
/// reported too; from 6 both are closed.
#[test]
fn forced_abi_ceilings_report_or_refuse_as_the_spec_says() {
    let Some(h) = harness() else { return };
    let kernel = kernel_abi(h);
    for who in h.identities() {
        let dir = project(h);
        let args = sdk_args(dir.str());
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend([
            "sh",
            "-c",
            "if kill -0 $PPID 2>/dev/null; then echo signal=ok; else echo signal=refused; fi; \
             cd \"$0\" || exit 9; cat .env 2>/dev/null || echo mask-holds",
            dir.str(),
        ]);
        for ceiling in [2, 4, 5, 6] {
            if i64::from(ceiling) > kernel {
                continue;
            }
            let ceiling_arg = ceiling.to_string();
            let out = run_wrapped(h, who, &["landlock-ceiling", &ceiling_arg], &all);
            let err = stderr(&out);
            let context = format!("{who:?} at ABI {ceiling}: {err}");
            if ceiling < 3 {
                assert_eq!(out.status.code(), Some(125), "{context}");
                assert!(err.contains("truncation"), "{context}");
                assert_eq!(stdout(&out), "", "{context}");
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "{context}");
            let line = err.lines().next().unwrap_or_default();
            assert!(
                line.contains(&format!("Landlock ABI {ceiling};")),
                "{context}"
            );
            let gaps = reported_gaps(line);
            let has = |id: &str| gaps.iter().any(|g| g == id);
            assert_eq!(has("host-processes-signallable"), ceiling < 6, "{context}");
            assert_eq!(has("device-ioctls-unscoped"), ceiling < 5, "{context}");
            // Blocked unix sockets: no abstract socket is reachable at any ABI.
            assert!(!has("host-abstract-sockets"), "{context}");
            let signal = if ceiling < 6 { "ok" } else { "refused" };
            assert_eq!(
                stdout(&out),
                format!("signal={signal}\nmask-holds\n"),
                "{context}"
            );
        }
    }
}

/// `--json-status-fd` carries what the report line says.
#[test]
fn json_status_names_the_isolation_the_abi_and_the_gaps() {
    let Some(h) = harness() else { return };
    let abi = kernel_abi(h);
    for who in h.identities() {
        let dir = project(h);
        let status_path = dir.path().join("status.json");
        let status = std::fs::File::create(&status_path).unwrap();
        let mut args = sdk_args(dir.str());
        args.splice(2..2, ["--json-status-fd".to_string(), "3".to_string()]);
        args.extend(["sh", "-c", "exit 3"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = h.command(who, &args);
        common::inherit_fd(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&status), 3);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{who:?}: {}", stderr(&out));
        let text = std::fs::read_to_string(&status_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{who:?}: {text}");
        let report = stderr(&out);
        let gaps: Vec<String> = reported_gaps(report.lines().next().unwrap())
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect();
        assert!(
            lines[0].starts_with("{ \"child-pid\": ")
                && lines[0].ends_with(&format!(
                    "\"isolation\": \"landlock\", \"landlock-abi\": {abi}, \"gaps\": [{}] }}",
                    gaps.join(", ")
                )),
            "{who:?}: {text}"
        );
        assert_eq!(lines[1], "{ \"exit-code\": 3 }", "{who:?}");
    }
}

/// A deny path through a symlinked directory is resolved on the host, as
/// namespace mode resolves it inside the root, and the symlink is sealed
/// (SPEC §2.7): the masked file cannot be read by either name, and the
/// link can be neither removed nor replaced by a real directory.
#[test]
fn a_deny_path_through_a_symlink_holds_and_the_link_stays() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        common::make_world_writable(&dir.path().join("real"));
        dir.file("real/secret", "secret\n");
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let masked = format!("{}/link/secret", dir.str());
        let args = host_read_only(&[
            "--bind",
            dir.str(),
            dir.str(),
            "--mask",
            &masked,
            "--dev",
            "/dev",
            "--",
            "sh",
            "-c",
            r#"
try() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name=ok"; else echo "$name=refused"; fi; }
cd "$0"
try read-by-link cat link/secret
try read-by-target cat real/secret
try remove-link rm link
try rename-link mv link l2
try list-target sh -c "ls real >/dev/null"
"#,
            dir.str(),
        ]);
        let out = h.run(who, &args);
        assert_eq!(
            stdout(&out).lines().collect::<Vec<_>>(),
            [
                "read-by-link=refused",
                "read-by-target=refused",
                "remove-link=refused",
                "rename-link=refused",
                "list-target=ok",
            ],
            "{who:?}: {}",
            stderr(&out)
        );
        assert!(
            std::fs::symlink_metadata(dir.path().join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

/// `--unshare-net` without a namespace: the host's network is out of
/// reach by every way the probe knows (Landlock refuses TCP bind and
/// connect, the filter the rest), and a host server on loopback accepts
/// nothing; with a relay too (its broker lets every other connect go to
/// the kernel, under Landlock), with either broker mechanism. Below ABI
/// 4 (no TCP rules) the run is refused.
#[test]
fn the_hosts_network_is_out_of_reach_under_unshare_net() {
    let Some(h) = harness() else { return };
    let kernel = kernel_abi(h);
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    // The same port on ::1 where the host has IPv6.
    let _server6 = std::net::TcpListener::bind(("::1", server.local_addr().unwrap().port()));
    let proxy_dir = h.scratch();
    let proxy = proxy_dir.path().join("proxy.sock");
    common::net::unix_server(&proxy, common::net::Behaviour::Echo);
    let relayed = ["--relay", "3128", proxy.to_str().unwrap()];
    let cases = [(&[][..], &[][..]), (&relayed[..], &[][..])]
        .into_iter()
        .chain(MECHANISMS.map(|wrap| (&relayed[..], wrap)));
    for (who, (relay, wrap)) in h
        .identities()
        .into_iter()
        .flat_map(|who| cases.clone().map(move |case| (who, case)))
    {
        let dir = project(h);
        let mut args = sdk_args(dir.str());
        args.insert(0, "--unshare-net".to_string());
        let mut all: Vec<&str> = relay.to_vec();
        all.extend(args.iter().map(String::as_str));
        all.extend([h.probe_str(), "net-escape", &port]);
        let out = run_maybe_wrapped(h, who, wrap, &all);
        let label = format!("{who:?} {relay:?} {wrap:?}");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{label}: {err}");
        let results = stdout(&out);
        let lines: Vec<&str> = results.lines().collect();
        assert_eq!(lines.len(), 13, "{label}: {lines:?}");
        for line in &lines {
            let (name, result) = line.split_once('=').unwrap();
            // EACCES from Landlock, EPERM from the filter: never through.
            assert!(
                result == "13" || result == "1",
                "{label}: {name} gave {result}"
            );
        }
        assert!(
            reported_gaps(err.lines().next().unwrap()).contains(&"tcp-servers-refused".into()),
            "{err}"
        );
        assert!(
            matches!(server.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{label}: the host's server accepted a connection"
        );

        // Below ABI 4, nothing keeps TCP in: refused, naming the option.
        if kernel >= 3 {
            let out = run_wrapped(h, who, &["landlock-ceiling", "3"], &all);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{label}: {err}");
            assert!(
                err.contains("--unshare-net") && err.contains("TCP rules"),
                "{label}: {err}"
            );
            assert_eq!(stdout(&out), "", "{label}");
        }
    }
}

/// How the broker makes a relay's connect: taking the workload's socket
/// (`pidfd_getfd`), or, in a container that refuses it, putting its own
/// in place (the probe's `container`, which also refuses namespaces).
const MECHANISMS: [&[&str]; 2] = [&[], &["container"]];

/// The launcher, as `who`, wrapped by the probe when `wrap` says so.
fn run_maybe_wrapped(h: &Harness, who: Who, wrap: &[&str], args: &[&str]) -> Output {
    if wrap.is_empty() {
        h.run(who, args)
    } else {
        run_wrapped(h, who, wrap, args)
    }
}

/// The SDK's usual sandbox (the one `check` runs) with a relay to its
/// proxy, under Landlock: a client reaches the proxy on 127.0.0.1 and ::1
/// through the relay port, byte for byte and many at once, with either
/// broker mechanism.
#[test]
fn the_sdks_usual_sandbox_reaches_its_proxy_through_the_relays() {
    use common::net::{Behaviour, unix_server};
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let proxy = dir.path().join("proxy.sock");
    unix_server(&proxy, Behaviour::Echo);
    let proxy = proxy.to_str().unwrap();
    for who in h.identities() {
        for wrap in MECHANISMS {
            for (client, want) in [
                (
                    &["echo", "127.0.0.1", "3128", "1048576"][..],
                    "echo ok 1048576",
                ),
                (&["echo", "::1", "3128", "65536"], "echo ok 65536"),
                (
                    &["concurrent", "127.0.0.1", "3128", "20"],
                    "concurrent 20/20",
                ),
            ] {
                let mut args = vec!["--isolation", "landlock"];
                args.extend(usual::USUAL_SANDBOX);
                args.extend([
                    "--relay",
                    "3128",
                    proxy,
                    "--",
                    "/usr/bin/python3",
                    h.client_str(),
                ]);
                args.extend(client);
                let out = run_maybe_wrapped(h, who, wrap, &args);
                let context = format!("{who:?} {wrap:?} {client:?}: {}", stderr(&out));
                assert_eq!(out.status.code(), Some(0), "{context}");
                assert!(
                    stdout(&out).starts_with(want),
                    "{context}: {}",
                    stdout(&out)
                );
            }
        }
    }
}

/// Two sandboxes with the same relay port at the same time each reach
/// their own proxy: the port is the sandbox's view, not a host port.
#[test]
fn sandboxes_on_the_same_relay_port_never_collide() {
    use common::net::{Behaviour, unix_server};
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let read_tag = "import socket, time; s = socket.create_connection(('127.0.0.1', 3128)); \
                    time.sleep(0.3); print(s.recv(100).decode())";
    for who in h.identities() {
        let children: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|tag| {
                let sock = dir.path().join(format!("{tag}-{who:?}.sock"));
                unix_server(&sock, Behaviour::Tag(tag));
                let sock = sock.to_str().unwrap().to_string();
                let mut args = vec!["--isolation", "landlock"];
                args.extend(usual::USUAL_SANDBOX);
                args.extend([
                    "--relay",
                    "3128",
                    &sock,
                    "--",
                    "/usr/bin/python3",
                    "-c",
                    read_tag,
                ]);
                let child = h
                    .command(who, &args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (tag, child)
            })
            .collect();
        for (tag, child) in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(stdout(&out).trim(), tag, "{who:?}: {}", stderr(&out));
        }
    }
}

/// What a workload reaches over unix sockets, one `name=result` line
/// each: the granted server, another server, a server of its own in
/// `$0`, and a TCP listen (the result is the reply, or the errno).
const UNIX_PROBE: &str = r#"
import errno, os, socket, sys
def reply(path):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(path)
        return s.recv(100).decode()
    except OSError as e:
        return str(e.errno)
print("granted=" + reply(sys.argv[1]))
print("forbidden=" + reply(sys.argv[2]))
own = os.path.join(sys.argv[3], "own.sock")
try:
    l = socket.socket(socket.AF_UNIX)
    l.bind(own)
    l.listen(1)
    c = socket.socket(socket.AF_UNIX)
    c.connect(own)
    a, _ = l.accept()
    c.sendall(b"own")
    print("own=" + a.recv(10).decode())
except OSError as e:
    print("own=" + str(e.errno))
try:
    t = socket.socket()
    t.listen(1)
    print("tcp-listen=ok")
except OSError as e:
    print("tcp-listen=" + str(e.errno))
print("abstract=" + reply("\0srtl-landlock-abstract"))
"#;

/// `--allow-unix` without namespaces: the grant is reached and no other
/// unix socket, the sandbox's own server is, and on the host's network
/// (`--unshare-net`) a TCP listen is refused; with either broker
/// mechanism. Where sockets are replaced on the host's network, no listen
/// can be let through safely: the sandbox's own server is refused too,
/// and reported. A missing grant is exit 125 naming it, on one line.
#[test]
fn allow_unix_reaches_the_grant_and_nothing_else() {
    use common::net::{Behaviour, unix_server};
    let Some(h) = harness() else { return };
    let servers = h.scratch();
    let granted = servers.path().join("granted.sock");
    let forbidden = servers.path().join("forbidden.sock");
    unix_server(&granted, Behaviour::Tag("granted"));
    unix_server(&forbidden, Behaviour::Tag("forbidden"));
    let (granted, forbidden) = (granted.to_str().unwrap(), forbidden.to_str().unwrap());
    // A host server on an abstract name: reached, it would answer.
    let name =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            "srtl-landlock-abstract",
        )
        .unwrap();
    let _abstract_server = std::os::unix::net::UnixListener::bind_addr(&name);
    for who in h.identities() {
        for wrap in MECHANISMS {
            for net in [false, true] {
                let own = h.scratch();
                let mut args = vec!["--isolation", "landlock"];
                if net {
                    args.push("--unshare-net");
                }
                args.extend(["--allow-unix", granted, "--ro-bind", "/", "/"]);
                args.extend(["--bind", own.str(), own.str(), "--dev", "/dev", "--"]);
                args.extend(["/usr/bin/python3", "-c", UNIX_PROBE, granted, forbidden]);
                args.push(own.str());
                let out = run_maybe_wrapped(h, who, wrap, &args);
                let context = format!("{who:?} {wrap:?} net={net}: {}", stderr(&out));
                assert_eq!(out.status.code(), Some(0), "{context}");
                let tcp_listen = if net {
                    "tcp-listen=13"
                } else {
                    "tcp-listen=ok"
                };
                let no_servers = net && !wrap.is_empty();
                let own = if no_servers { "own=13" } else { "own=own" };
                let first = stderr(&out);
                let reported = reported_gaps(first.lines().next().unwrap_or_default());
                assert_eq!(
                    reported.contains(&"unix-servers-refused".to_string()),
                    no_servers,
                    "{context}"
                );
                assert_eq!(
                    stdout(&out).lines().collect::<Vec<_>>(),
                    [
                        "granted=granted",
                        "forbidden=13",
                        own,
                        tcp_listen,
                        "abstract=13"
                    ],
                    "{context}"
                );
            }
        }
        let missing = format!("{}/missing.sock", servers.str());
        let out = h.run(
            who,
            &[
                "--isolation",
                "landlock",
                "--allow-unix",
                &missing,
                "--ro-bind",
                "/",
                "/",
                "--",
                "true",
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert!(
            err.contains(&missing) && err.lines().count() == 1,
            "{who:?}: {err}"
        );
    }
}

/// A container on a kernel before 5.14 (no `pidfd_getfd`, no ADDFD with
/// SETFD): the broker has no way to make a call, so a run that needs it
/// is refused on one line, naming the option, before any report.
#[test]
fn without_the_brokers_kernel_features_relays_and_grants_are_refused() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let sock = dir.path().join("proxy.sock");
    common::net::unix_server(&sock, common::net::Behaviour::Echo);
    let sock = sock.to_str().unwrap();
    for who in h.identities() {
        for (option, args) in [
            (
                "--relay 3128",
                vec!["--unshare-net", "--relay", "3128", sock],
            ),
            (
                &format!("--allow-unix {sock}")[..],
                vec!["--allow-unix", sock],
            ),
        ] {
            let mut all = host_read_only(&args);
            all.extend(["--", "sh", "-c", "echo ran"]);
            let out = run_wrapped(h, who, &["old-container"], &all);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{who:?} {option}: {err}");
            assert!(
                err.starts_with(&format!("srt-launcher: run: {option}: "))
                    && err.contains("ADDFD")
                    && err.lines().count() == 1,
                "{who:?}: {err}"
            );
            assert_eq!(stdout(&out), "", "{who:?} {option}");
        }
    }
}

/// On the host's network with `--allow-unix`, a unix socket's connect
/// whose address flips between IPv4 and a forbidden path, 1,500 times:
/// never connected, whichever family the broker read (it answers an IP
/// connect itself and never lets the kernel read the address again).
#[test]
fn an_address_flipping_family_never_reaches_a_forbidden_socket() {
    let Some(h) = harness() else { return };
    let dir = h.scratch();
    let granted = dir.path().join("granted.sock");
    common::net::unix_server(&granted, common::net::Behaviour::Tag("granted"));
    let forbidden = dir.path().join("forbidden.sock");
    let server = std::os::unix::net::UnixListener::bind(&forbidden).unwrap();
    std::fs::set_permissions(&forbidden, std::fs::Permissions::from_mode(0o777)).unwrap();
    server.set_nonblocking(true).unwrap();
    let (granted, forbidden) = (granted.to_str().unwrap(), forbidden.to_str().unwrap());
    for who in h.identities() {
        for wrap in MECHANISMS {
            let args = [
                "--isolation",
                "landlock",
                "--unshare-net",
                "--allow-unix",
                granted,
                "--ro-bind",
                "/",
                "/",
                "--",
                h.probe_str(),
                "unix-race-family",
                forbidden,
                "1500",
            ];
            let out = run_maybe_wrapped(h, who, wrap, &args);
            assert_eq!(
                stdout(&out).trim(),
                "connected=0 refused=1500",
                "{who:?} {wrap:?}: {}",
                stderr(&out)
            );
            assert!(
                matches!(server.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "{who:?} {wrap:?}: the forbidden server accepted a connection"
            );
        }
    }
}
