//! Deny paths (SPEC §2.7): `--mask` and `--deny-write` on every kind of
//! path, the symlink swap, 50 concurrent sandboxes sharing stubs with some
//! of them SIGKILLed, user data at a stub path, and the errors. Every test
//! checks the host afterwards: nothing may be left behind.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};

use common::{
    Harness, KERNELS, Kernel, Scratch, Who, harness, processes_with, stderr, stdout, wait_until,
    with_mounts,
};

/// A private runtime directory for `who`, so tests do not share stub
/// records with each other or with other runs.
fn runtime_dir(h: &Harness, dir: &Scratch, who: Who) -> PathBuf {
    named_runtime_dir(h, dir, who, "rt")
}

/// [`runtime_dir`], several per test.
fn named_runtime_dir(h: &Harness, dir: &Scratch, who: Who, name: &str) -> PathBuf {
    let rt = dir.path().join(format!("{name}-{who:?}"));
    std::fs::create_dir(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    if let Some((uid, gid)) = h.user_ids(who) {
        std::os::unix::fs::chown(&rt, Some(uid), Some(gid)).unwrap();
    }
    rt
}

/// A new directory in `dir` that both identities can write.
fn writable_dir(dir: &Scratch, name: &str) -> PathBuf {
    let w = dir.path().join(name);
    std::fs::create_dir(&w).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
    w
}

/// `run ARGS` as `who` with `rt` as its XDG_RUNTIME_DIR.
fn run_with_runtime(h: &Harness, who: Who, rt: &Path, args: &[&str]) -> std::process::Output {
    h.command(who, args)
        .env("XDG_RUNTIME_DIR", rt)
        .output()
        .unwrap()
}

/// The stub records and locks in the launcher's runtime directory under
/// `rt` (its `XDG_RUNTIME_DIR`).
fn records(rt: &Path) -> usize {
    std::fs::read_dir(rt.join("srt-launcher")).map_or(0, |d| d.count())
}

/// Every entry below `root`: relative path -> (kind, size, content of
/// files), following nothing.
fn listing(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let what = if meta.is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                pending.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else {
                format!(
                    "file {:o} {:?}",
                    meta.mode() & 0o7777,
                    std::fs::read_to_string(&path).unwrap()
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

/// The host layout of the five kinds of path (and a symlink):
/// secret (file), conf/ (directory), .bashrc (missing), .vscode/… (missing
/// below a missing directory), .git/hooks (impossible: .git is a file),
/// .claude -> decoy/ (a symlink on the way).
fn layout(dir: &Scratch) -> PathBuf {
    let w = dir.path().join("w");
    std::fs::create_dir_all(w.join("conf")).unwrap();
    std::fs::create_dir_all(w.join("decoy")).unwrap();
    std::fs::write(w.join("secret"), "s3cret").unwrap();
    std::fs::write(w.join("conf/inner"), "i").unwrap();
    std::fs::write(w.join(".git"), "gitdir: elsewhere").unwrap();
    std::fs::write(w.join("spare"), "spare").unwrap();
    std::os::unix::fs::symlink("decoy", w.join(".claude")).unwrap();
    for p in [&w, &w.join("conf"), &w.join("decoy")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for f in ["secret", "conf/inner", ".git", "spare"] {
        std::fs::set_permissions(w.join(f), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    w
}

/// The workload's attacks: prints `BREACH what` for each that worked, and
/// what it could read.
const ATTACKS: &str = r#"
W=$1
b() { echo "BREACH $1"; }
echo "secret=$(cat $W/secret 2>/dev/null)"
echo "conf=$(ls $W/conf 2>/dev/null | tr '\n' ,)"
echo x >> $W/secret 2>/dev/null && b append-secret
touch $W/conf/new 2>/dev/null && b create-in-conf
rm -rf $W/conf 2>/dev/null; [ -d $W/conf ] || b remove-conf
mv $W/spare $W/secret 2>/dev/null && b mv-over-secret
echo x > $W/.bashrc 2>/dev/null && [ -s $W/.bashrc ] && b write-bashrc
mv $W/spare $W/.bashrc 2>/dev/null && b mv-over-bashrc
ln -sf /etc/passwd $W/.bashrc 2>/dev/null && b link-over-bashrc
mkdir -p $W/.vscode/x 2>/dev/null && b mkdir-vscode
echo x > $W/.vscode/settings.json 2>/dev/null && b create-vscode
mkdir -p $W/.git/hooks 2>/dev/null && b mkdir-hooks
rm $W/.claude 2>/dev/null && b remove-symlink
mkdir -p $W/.claude 2>/dev/null; echo '{}' > $W/.claude/settings.json 2>/dev/null && [ -s $W/.claude/settings.json ] && b swap-symlink
echo done
"#;

/// Runs an attack script (`args`) with `rt` as XDG_RUNTIME_DIR; it must
/// reach its end (`done`) with no `BREACH` line. Returns what it printed.
fn attack(
    h: &Harness,
    (who, kernel): (Who, Kernel),
    rt: &Path,
    args: &[&str],
    context: &str,
) -> String {
    let out = h
        .command_on(who, kernel, args)
        .env("XDG_RUNTIME_DIR", rt)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{context}: {}", stderr(&out));
    assert!(text.ends_with("done\n"), "{context}: {text}");
    assert!(!text.contains("BREACH"), "{context}: {text}");
    text
}

fn deny_args<'a>(option: &'a str, w: &'a str, paths: &'a [String]) -> Vec<&'a str> {
    let mut v = vec!["--bind", w, w];
    for p in paths {
        v.extend([option, p.as_str()]);
    }
    v
}

#[test]
fn every_kind_of_path_is_denied_and_the_host_left_as_it_was() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        for option in ["--mask", "--deny-write"] {
            let dir = h.scratch();
            let rt = runtime_dir(h, &dir, who);
            let w = layout(&dir);
            let before = listing(dir.path().join("w").as_path());
            let ws = w.to_str().unwrap();
            let paths: Vec<String> = [
                "secret",
                "conf",
                ".bashrc",
                ".vscode/settings.json",
                ".git/hooks",
                ".claude/settings.json",
            ]
            .iter()
            .map(|p| format!("{ws}/{p}"))
            .collect();
            let extra = deny_args(option, ws, &paths);
            let args = with_mounts(&extra, &["sh", "-c", ATTACKS, "sh", ws]);
            let context = format!("{who:?} {kernel:?} {option}");
            let text = attack(h, (who, kernel), &rt, &args, &context);
            let (secret, conf) = if option == "--mask" {
                ("secret=", "conf=")
            } else {
                ("secret=s3cret", "conf=inner,")
            };
            assert!(text.contains(&format!("{secret}\n")), "{context}: {text}");
            assert!(text.contains(&format!("{conf}\n")), "{context}: {text}");
            assert_eq!(listing(&w), before, "{context}: the host changed");
            assert_eq!(records(&rt), 0, "{context}: records left");
        }
    }
}

#[test]
fn a_missing_path_in_a_read_only_area_needs_nothing() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        let ros = ro.to_str().unwrap();
        let target = format!("{ros}/.bashrc");
        let extra = ["--ro-bind", ros, ros, "--mask", &target];
        let args = with_mounts(
            &extra,
            &["sh", "-c", "test -e \"$1\" || echo absent", "sh", &target],
        );
        let out = run_with_runtime(h, who, &rt, &args);
        assert_eq!(stdout(&out).trim(), "absent", "{who:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0, "{who:?}");
    }
}

/// Spawns a sandbox masking `paths` under the writable `w` that prints
/// "ready", waits for `go` to exist, then checks every mask and prints
/// `ok N` or `BREACH`.
fn waiting_sandbox(h: &Harness, who: Who, rt: &Path, w: &str, paths: &[String], go: &str) -> Child {
    let script = r#"
echo ready
while [ ! -e "$1" ]; do sleep 0.02; done
shift
n=0
for p in "$@"; do
  if [ -f "$p" ] && [ ! -s "$p" ] && ! (echo x > "$p") 2>/dev/null && ! rm -f "$p" 2>/dev/null; then
    n=$((n+1))
  else
    echo "BREACH $p"
  fi
done
echo "ok $n"
"#;
    let mut args = vec!["--ro-bind", "/", "/", "--tmpfs", "/tmp"];
    args.extend(deny_args("--mask", w, paths));
    args.extend(["--", "sh", "-c", script, "sh", go]);
    args.extend(paths.iter().map(String::as_str));
    h.command(who, &args)
        .env("XDG_RUNTIME_DIR", rt)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A [`waiting_sandbox`] that has printed "ready", with its output.
fn started_sandbox(
    h: &Harness,
    who: Who,
    rt: &Path,
    w: &str,
    paths: &[String],
    go: &Path,
) -> (Child, BufReader<ChildStdout>) {
    let mut child = waiting_sandbox(h, who, rt, w, paths, go.to_str().unwrap());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{who:?}: the sandbox did not start");
    (child, out)
}

/// Lets a started sandbox go on (creates `go`) and returns what it
/// printed then, once it has exited successfully.
fn finish(sandbox: (Child, BufReader<ChildStdout>), go: &Path) -> String {
    let (mut child, mut out) = sandbox;
    std::fs::write(go, "").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    rest
}

#[test]
fn fifty_sandboxes_share_stubs_and_survive_ten_sigkills() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let w = writable_dir(&dir, "shared");
        std::fs::write(w.join("README"), "keep").unwrap();
        let before = listing(&w);
        let ws = w.to_str().unwrap();
        let paths: Vec<String> = (0..20).map(|i| format!("{ws}/.missing-{i}")).collect();
        let go = dir.path().join("go");
        let gos = go.to_str().unwrap();
        let mut sandboxes: Vec<(Child, BufReader<std::process::ChildStdout>)> = (0..50)
            .map(|_| {
                let mut child = waiting_sandbox(h, who, &rt, ws, &paths, gos);
                let out = BufReader::new(child.stdout.take().unwrap());
                (child, out)
            })
            .collect();
        for (i, (_, out)) in sandboxes.iter_mut().enumerate() {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "{who:?}: sandbox {i} did not start");
        }
        // Halfway: ten launchers are SIGKILLed (their sandboxes die with
        // them and never clean up).
        for (child, _) in sandboxes.iter_mut().take(10) {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        std::fs::write(&go, "").unwrap();
        for (i, (child, out)) in sandboxes.iter_mut().enumerate().skip(10) {
            let mut rest = String::new();
            std::io::Read::read_to_string(out, &mut rest).unwrap();
            assert_eq!(rest.trim(), "ok 20", "{who:?}: sandbox {i}: {rest}");
            assert!(child.wait().unwrap().success(), "{who:?}: sandbox {i}");
        }
        // One more run collects whatever is left.
        let mut args = vec!["--ro-bind", "/", "/"];
        let one = [paths[0].clone()];
        args.extend(deny_args("--mask", ws, &one));
        args.extend(["--", "true"]);
        let out = run_with_runtime(h, who, &rt, &args);
        assert!(out.status.success(), "{who:?}: {}", stderr(&out));
        assert_eq!(listing(&w), before, "{who:?}: stubs left behind");
        assert_eq!(records(&rt), 0, "{who:?}");
    }
}

/// What most stub tests start from: a scratch directory with a private
/// runtime directory for `who` and a writable `w/`, and one deny path in
/// it (`w/NAME`).
struct OneStub {
    dir: Scratch,
    rt: PathBuf,
    w: PathBuf,
    paths: [String; 1],
    go: PathBuf,
}

fn one_stub(h: &Harness, who: Who, name: &str) -> OneStub {
    let dir = h.scratch();
    let rt = runtime_dir(h, &dir, who);
    let w = writable_dir(&dir, "w");
    let paths = [format!("{}/{name}", w.display())];
    let go = dir.path().join("go");
    OneStub {
        dir,
        rt,
        w,
        paths,
        go,
    }
}

#[test]
fn a_file_the_user_writes_at_a_stub_path_stays() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let OneStub {
            dir: _dir,
            rt,
            w,
            paths,
            go,
        } = one_stub(h, who, ".bashrc");
        let ws = w.to_str().unwrap();
        let sandbox = started_sandbox(h, who, &rt, ws, &paths, &go);
        // The user, on the host, writes into the stub while it is in use.
        std::fs::write(w.join(".bashrc"), "user data").unwrap();
        finish(sandbox, &go);
        assert_eq!(
            std::fs::read_to_string(w.join(".bashrc")).unwrap(),
            "user data",
            "{who:?}: user data removed"
        );
        assert_eq!(records(&rt), 0, "{who:?}");
    }
}

#[test]
fn deny_path_errors_are_one_line_and_exit_125() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        // A runtime directory that cannot be used: its place is a file.
        let rt = runtime_dir(h, &dir, who);
        let bad = rt.join("srt-launcher");
        std::fs::write(&bad, "").unwrap();
        if let Some((uid, gid)) = h.user_ids(who) {
            std::os::unix::fs::chown(&bad, Some(uid), Some(gid)).unwrap();
        }
        let out = run_with_runtime(
            h,
            who,
            &rt,
            &with_mounts(&["--mask", "/etc/srtl-nothing"], &["true"]),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{who:?}: {err}");
        assert!(
            err.contains(&format!("deny paths: runtime directory {}", bad.display())),
            "{who:?}: {err}"
        );

        let out = h.run(
            who,
            &with_mounts(&["--deny-write", "relative/.env"], &["true"]),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{who:?}: {err}");
        assert!(
            err.contains("--deny-write relative/.env: a deny path must be absolute"),
            "{who:?}: {err}"
        );
    }
}

/// Tries to forge a stub record in `$1` (a runtime directory as the
/// sandbox shows it) and prints what it saw; `BREACH` if it could.
const FORGE: &str = r#"ls -A "$1" 2>/dev/null; (printf "/etc/passwd\0%s\n" "1 2 3 4 file 5 6" > "$1/forged.stubs") 2>/dev/null && echo BREACH; echo done"#;

#[test]
fn the_stub_records_are_out_of_the_workloads_reach() {
    // Every route the review found: the runtime directory bound writable
    // by a run with deny paths, by one without, at another path, in bwrap
    // mode, and a record file bound on its own.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let records_dir = rt.join("srt-launcher");
        let (ds, rts, rs) = (
            dir.str(),
            rt.to_str().unwrap(),
            records_dir.to_str().unwrap(),
        );
        let w = writable_dir(&dir, "w");
        let ws = w.to_str().unwrap();
        let target = format!("{ws}/.bashrc");
        let elsewhere = "/run/elsewhere/srt-launcher";
        let routes: Vec<(&str, Vec<&str>, &str)> = vec![
            ("deny paths", vec!["--bind", ds, ds, "--mask", &target], rs),
            ("no deny path", vec!["--bind", ds, ds], rs),
            (
                "another path",
                vec![
                    "--tmpfs",
                    "/run",
                    "--bind",
                    rts,
                    "/run/elsewhere",
                    "--mask",
                    &target,
                ],
                elsewhere,
            ),
        ];
        for ((route, extra, seen_at), kernel) in routes.iter().flat_map(|r| KERNELS.map(|k| (r, k)))
        {
            let context = format!("{who:?} {kernel:?} {route}");
            let args = with_mounts(extra, &["sh", "-c", FORGE, "sh", seen_at]);
            let text = attack(h, (who, kernel), &rt, &args, &context);
            assert_eq!(text, "done\n", "{context}: the records are visible");
            assert_eq!(records(&rt), 0, "{context}");
        }
        let out = h
            .bwrap_command(
                who,
                &["--bind", "/", "/", "--", "sh", "-c", FORGE, "sh", rs],
            )
            .env("XDG_RUNTIME_DIR", &rt)
            .output()
            .unwrap();
        assert_eq!(stdout(&out), "done\n", "{who:?} bwrap: {}", stderr(&out));
        // A record of a sandbox still running, bound on its own.
        let paths = [target.clone()];
        let go = dir.path().join("go");
        let running = started_sandbox(h, who, &rt, ws, &paths, &go);
        let record = std::fs::read_dir(&records_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let rec = record.to_str().unwrap();
        let script =
            r#"cat "$1"; (echo /etc/passwd >> "$1") 2>/dev/null && echo BREACH; echo done"#;
        let out = run_with_runtime(
            h,
            who,
            &rt,
            &with_mounts(
                &["--tmpfs", "/run", "--bind", rec, "/run/record"],
                &["sh", "-c", script, "sh", "/run/record"],
            ),
        );
        assert_eq!(
            stdout(&out),
            "done\n",
            "{who:?} record file: {}",
            stderr(&out)
        );
        finish(running, &go);
        assert!(!Path::new(&target).exists(), "{who:?}: stub left");
        assert_eq!(records(&rt), 0, "{who:?}");
    }
}

#[test]
fn hundreds_of_stubs_fit_a_small_open_file_limit() {
    // PID 1 holds one lock per stub for the sandbox's life; it raises its
    // own soft limit for that, whatever the caller's was.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let w = writable_dir(&dir, "w");
        let ws = w.to_str().unwrap();
        let paths: Vec<String> = (0..300).map(|i| format!("{ws}/.m{i}")).collect();
        let extra = deny_args("--mask", ws, &paths);
        let mut cmd = h.command(who, &with_mounts(&extra, &["true"]));
        cmd.env("XDG_RUNTIME_DIR", &rt);
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                let lim = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 4096,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{who:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_dir(&w).unwrap().count(), 0, "{who:?}");
        assert_eq!(records(&rt), 0, "{who:?}");
    }
}

/// The shared runtime directory of `uid` (without XDG_RUNTIME_DIR).
fn shared_runtime_dir(uid: u32) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    PathBuf::from(format!("{base}/srt-launcher-{uid}"))
}

/// The private fallbacks beside `usual` (`NAME.RANDOM`).
fn fallbacks(usual: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.", usual.file_name().unwrap().to_str().unwrap());
    std::fs::read_dir(usual.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect()
}

#[test]
fn without_xdg_runtime_dir_the_records_go_to_a_private_directory() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let w = writable_dir(&dir, "w");
        let ws = w.to_str().unwrap();
        let target = format!("{ws}/.bashrc");
        let extra = ["--bind", ws, ws, "--mask", &target];
        let run = || {
            let out = h
                .command(
                    who,
                    &with_mounts(&extra, &["sh", "-c", "echo x > $0 || echo denied", &target]),
                )
                .env_remove("XDG_RUNTIME_DIR")
                .output()
                .unwrap();
            assert!(out.status.success(), "{who:?}: {}", stderr(&out));
            assert!(
                stdout(&out).ends_with("denied\n"),
                "{who:?}: {}",
                stdout(&out)
            );
            assert!(!Path::new(&target).exists(), "{who:?}: stub left");
        };
        run();
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        let uid = h.user_ids(who).map_or(own, |(u, _)| u);
        let rt = shared_runtime_dir(uid);
        let meta = std::fs::symlink_metadata(&rt).unwrap();
        assert!(meta.is_dir(), "{who:?}");
        assert_eq!(meta.uid(), uid, "{who:?}");
        assert_eq!(meta.mode() & 0o777, 0o700, "{who:?}");

        // Another local user squats the name first, as a directory of
        // its own or as a symlink (to a directory of ours, even): every
        // run still works, in one private fallback found again each time.
        let squatter = if who == Who::User {
            own
        } else {
            h.user_ids(Who::User).map_or(own, |(u, _)| u)
        };
        for squat in ["dir", "symlink"] {
            let _ = std::fs::remove_dir_all(&rt);
            for old in fallbacks(&rt) {
                std::fs::remove_dir_all(old).unwrap();
            }
            if squat == "dir" {
                std::fs::create_dir(&rt).unwrap();
                std::os::unix::fs::chown(&rt, Some(squatter), None).unwrap();
            } else {
                std::os::unix::fs::symlink(dir.path(), &rt).unwrap();
            }
            run();
            run();
            let found = fallbacks(&rt);
            assert_eq!(found.len(), 1, "{who:?} {squat}: {found:?}");
            let meta = std::fs::symlink_metadata(&found[0]).unwrap();
            assert!(meta.is_dir() && meta.uid() == uid && meta.mode() & 0o777 == 0o700);
            std::fs::remove_dir_all(&found[0]).unwrap();
            if squat == "dir" {
                std::fs::remove_dir(&rt).unwrap();
            } else {
                std::fs::remove_file(&rt).unwrap();
            }
        }
    }
}

#[test]
fn a_stub_stays_while_a_sandbox_with_another_runtime_directory_uses_it() {
    // Two launchers of one user keep their records apart (two
    // XDG_RUNTIME_DIRs); the first to exit must not remove the stub the
    // second sandbox's cover sits on.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt_a = named_runtime_dir(h, &dir, who, "a");
        let rt_b = named_runtime_dir(h, &dir, who, "b");
        let w = writable_dir(&dir, "w");
        let ws = w.to_str().unwrap();
        let paths = [format!("{ws}/.env")];
        let (go_a, go_b) = (dir.path().join("go-a"), dir.path().join("go-b"));
        let a = started_sandbox(h, who, &rt_a, ws, &paths, &go_a);
        let b = started_sandbox(h, who, &rt_b, ws, &paths, &go_b);
        assert_eq!(finish(a, &go_a).trim(), "ok 1", "{who:?}");
        assert!(w.join(".env").exists(), "{who:?}: removed while in use");
        assert_eq!(finish(b, &go_b).trim(), "ok 1", "{who:?}");
        // The last user removed it; A's record goes with A's next run.
        assert!(!w.join(".env").exists(), "{who:?}: stub left");
        let out = run_with_runtime(
            h,
            who,
            &rt_a,
            &with_mounts(&deny_args("--mask", ws, &paths), &["true"]),
        );
        assert!(out.status.success(), "{who:?}: {}", stderr(&out));
        assert_eq!((records(&rt_a), records(&rt_b)), (0, 0), "{who:?}");
        assert_eq!(std::fs::read_dir(&w).unwrap().count(), 0, "{who:?}");
    }
}

/// The review's attacks on the directories above a deny path: rename an
/// ancestor and re-create the path under its old name, remove a
/// worktree's `.git` file so `.git/hooks` becomes possible. Prints
/// `BREACH what` for each that changed the host.
const ANCESTOR_ATTACKS: &str = r#"
cd "$1" || exit 1
b() { echo "BREACH $1"; }
mv .git .git-old 2>/dev/null && b rename-git
mkdir -p .git/hooks 2>/dev/null; echo PWNED > .git/hooks/pre-commit 2>/dev/null && b hooks
mv .claude .claude-old 2>/dev/null && b rename-claude
mkdir -p .claude 2>/dev/null; echo PWNED > .claude/settings.json 2>/dev/null && b settings
mv a a-old 2>/dev/null && b rename-a
mkdir -p a/missing 2>/dev/null; echo SECRET=x > a/missing/.env 2>/dev/null && b env
rm -rf a 2>/dev/null; [ -d a ] || b remove-a
cd wt || exit 1
rm -f .git 2>/dev/null && b rm-worktree-git
mv .git g 2>/dev/null && b mv-worktree-git
mkdir -p .git/hooks 2>/dev/null && echo PWNED > .git/hooks/pre-commit 2>/dev/null && b worktree-hooks
echo '[core]' > .git/config 2>/dev/null; [ "$(cat .git 2>/dev/null)" = "gitdir: elsewhere" ] || b worktree-config
echo notes > notes 2>/dev/null || b write-sibling
echo done
"#;

#[test]
fn the_directories_above_a_deny_path_are_pinned() {
    let Some(h) = harness() else { return };
    for (who, kernel) in h.matrix() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let d = writable_dir(&dir, "d");
        for sub in [".git/hooks", ".claude", "a", "wt"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join(".claude/settings.json"), "{}").unwrap();
        std::fs::write(d.join("wt/.git"), "gitdir: elsewhere").unwrap();
        let mut all = vec![d.clone()];
        for sub in [".git", ".git/hooks", ".claude", "a", "wt"] {
            all.push(d.join(sub));
        }
        for p in &all {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        for f in [".claude/settings.json", "wt/.git"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let before = listing(&d);
        let ds = d.to_str().unwrap();
        let deny = [
            ("--deny-write", format!("{ds}/.git/hooks")),
            ("--mask", format!("{ds}/.claude/settings.json")),
            ("--mask", format!("{ds}/a/missing/.env")),
            ("--deny-write", format!("{ds}/wt/.git/hooks")),
            ("--deny-write", format!("{ds}/wt/.git/config")),
        ];
        let mut extra = vec!["--bind", ds, ds];
        for (option, path) in &deny {
            extra.extend([*option, path.as_str()]);
        }
        let args = with_mounts(&extra, &["sh", "-c", ANCESTOR_ATTACKS, "sh", ds]);
        let context = format!("{who:?} {kernel:?}");
        attack(h, (who, kernel), &rt, &args, &context);
        // Only the sibling file the workload may write is new.
        let mut after = listing(&d);
        let notes = after.remove(Path::new("wt/notes"));
        assert!(
            notes.is_some_and(|n| n.ends_with("\"notes\\n\"")),
            "{context}"
        );
        assert_eq!(after, before, "{context}: the host changed");
        assert_eq!(records(&rt), 0, "{context}: records left");
    }
}

#[test]
fn stub_removal_is_never_redirected_by_a_swapped_parent() {
    // SIGKILLed sandboxes leave stubs under `p/`. While the user who owns
    // the directory (as when root sandboxes a user's project, or another
    // sandbox of the same user) swaps `p` with a symlink to a directory of
    // files named like the stubs, the next launcher collects them: those
    // files must survive, thousands of races over.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let rt = runtime_dir(h, &dir, who);
        let d = writable_dir(&dir, "d");
        let (p, l) = (d.join("p"), d.join("l"));
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let victims = dir.path().join("victims");
        std::fs::create_dir(&victims).unwrap();
        std::os::unix::fs::symlink(&victims, &l).unwrap();
        let ids = h.user_ids(who);
        let names: Vec<String> = (0..100).map(|i| format!(".e{i}")).collect();
        for name in &names {
            std::fs::write(victims.join(name), "keep").unwrap();
        }
        if let Some((uid, gid)) = ids {
            // Removable by the launcher, were it ever to act there.
            for path in
                std::iter::once(victims.clone()).chain(names.iter().map(|n| victims.join(n)))
            {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        let (ds, ps) = (d.to_str().unwrap(), p.to_str().unwrap());
        let paths: Vec<String> = names.iter().map(|n| format!("{ps}/{n}")).collect();
        let go = dir.path().join("go");
        for round in 0..20 {
            let (mut child, _) = started_sandbox(h, who, &rt, ds, &paths, &go);
            child.kill().unwrap();
            child.wait().unwrap();
            let marker = go.to_str().unwrap();
            assert!(
                wait_until(10, || processes_with(marker).is_empty()),
                "{who:?}: the sandbox lingers"
            );
            let mut swap = std::process::Command::new(
                h.setpriv_argv(Who::User)
                    .first()
                    .map_or(h.probe_str(), |s| s.as_str()),
            );
            let argv = h.setpriv_argv(Who::User);
            if !argv.is_empty() {
                swap.args(&argv[1..]).arg(&h.probe);
            }
            let mut swapper = swap
                .args(["swap", "p", "l"])
                .current_dir(&d)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut said = String::new();
            BufReader::new(swapper.stdout.take().unwrap())
                .read_line(&mut said)
                .unwrap();
            assert_eq!(said.trim(), "swapping", "{who:?}");
            let one = [format!("{ds}/x")];
            let out = run_with_runtime(
                h,
                who,
                &rt,
                &with_mounts(&deny_args("--mask", ds, &one), &["true"]),
            );
            swapper.kill().unwrap();
            swapper.wait().unwrap();
            assert!(out.status.success(), "{who:?}: {}", stderr(&out));
            if std::fs::symlink_metadata(&p).unwrap().is_symlink() {
                let tmp = d.join("tmp");
                std::fs::rename(&p, &tmp).unwrap();
                std::fs::rename(&l, &p).unwrap();
                std::fs::rename(&tmp, &l).unwrap();
            }
            for name in &names {
                let kept = std::fs::read_to_string(victims.join(name));
                assert_eq!(
                    kept.ok().as_deref(),
                    Some("keep"),
                    "{who:?} round {round}: {name} removed"
                );
            }
        }
    }
}

#[test]
fn a_stub_locked_by_another_process_is_a_clear_error() {
    // A process that holds a stub's exclusive lock (only a remover does,
    // for a moment) keeps the next sandbox from counting itself among its
    // users: that sandbox stops with exit 125 rather than rely on it.
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let OneStub {
            dir: _dir,
            rt,
            w,
            paths,
            go,
        } = one_stub(h, who, ".env");
        let ws = w.to_str().unwrap();
        // A SIGKILLed sandbox leaves its stub behind, used by no one.
        let (mut child, _) = started_sandbox(h, who, &rt, ws, &paths, &go);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(wait_until(10, || processes_with(go.to_str().unwrap()).is_empty()));
        let stub = std::fs::File::open(w.join(".env")).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&stub), libc::LOCK_EX) };
        assert_eq!(locked, 0);
        let args = with_mounts(&deny_args("--mask", ws, &paths), &["true"]);
        let out = run_with_runtime(h, who, &rt, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{who:?}: {err}");
        assert!(
            err.contains(&format!(
                "--mask {ws}/.env: a deny-path stub stays locked by another process"
            )),
            "{who:?}: {err}"
        );
        // Once it lets go, the next run uses the stub, then removes it.
        drop(stub);
        let out = run_with_runtime(h, who, &rt, &args);
        assert!(out.status.success(), "{who:?}: {}", stderr(&out));
        assert!(!w.join(".env").exists(), "{who:?}: stub left");
        assert_eq!(records(&rt), 0, "{who:?}");
    }
}
