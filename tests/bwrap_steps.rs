//! The engine steps bwrap mode brought (data files, overlays, --bind-fd,
//! --chmod/--perms, --remount-ro) and the bwrap-mode process settings,
//! each checked for the invariant its code states, from inside a real
//! sandbox, as root and as the unprivileged user.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{Harness, Who, harness, ok, stderr};

fn bwrap(h: &Harness, who: Who, args: &[&str], fds: &[(i32, i32)]) -> Output {
    let mut cmd = h.bwrap_command(who, args);
    common::inherit_fds(&mut cmd, fds);
    cmd.output().expect("spawn the launcher")
}

/// A pipe holding `data`, its read end ready to pass as a data descriptor.
fn data_pipe(data: &[u8]) -> std::fs::File {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes (close-on-exec:
    // only the copies made for a launcher reach it).
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (r, mut w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    std::io::Write::write_all(&mut w, data).unwrap();
    r
}

/// A sandbox started in the background with `--info-fd`: the first line
/// its command printed (read, so it runs) and the child pid its info
/// document gave. Dropping it ends the sandbox.
struct Running {
    child: std::process::Child,
    first_line: String,
    pid: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of the launcher this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A sandbox of the host read-only with `extra` options whose command
/// prints `up` and waits: something to join.
fn start_idle(h: &Harness, who: Who, extra: &[&str]) -> Running {
    let mut args = vec!["--ro-bind", "/", "/"];
    args.extend(extra);
    args.extend(["sh", "-c", "echo up; sleep 5"]);
    start_with_info(h, who, &args)
}

/// Starts `bwrap --info-fd 10 ARGS…` as `who`; ARGS end with a command
/// that prints a line, then keeps running.
fn start_with_info(h: &Harness, who: Who, args: &[&str]) -> Running {
    let dir = h.scratch();
    let info_path = dir.path().join("info.json");
    let info = std::fs::File::create(&info_path).unwrap();
    let mut cmd = h.bwrap_command(who, &[&["--info-fd", "10"], args].concat());
    cmd.stdout(Stdio::piped());
    common::inherit_fd(&mut cmd, info.as_raw_fd(), 10);
    let mut child = cmd.spawn().unwrap();
    drop(info);
    let mut first_line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut first_line).unwrap();
    let text = std::fs::read_to_string(&info_path).unwrap();
    let pid: String = text
        .split("\"child-pid\": ")
        .nth(1)
        .unwrap_or_else(|| panic!("{who:?}: no child-pid in {text:?}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Running {
        child,
        first_line,
        pid,
    }
}

const BASE: [&str; 7] = ["--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/tmp"];

fn with_base<'a>(extra: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut v = BASE.to_vec();
    v.extend(extra);
    v.extend(["sh", "-c", script]);
    v
}

#[test]
fn data_files_hold_the_data_and_leave_nothing_on_the_host() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let file_data = data_pipe(b"file data");
        let bind_data = data_pipe(b"bind data");
        let ro_data = data_pipe(b"ro data");
        let before: Vec<_> = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let script = format!(
            "cat {d}/f; echo; cat /tmp/b; echo; cat /tmp/r; echo; stat -c %a {d}/f; \
             echo x > /tmp/b && echo b-writable; echo x > /tmp/r 2>/dev/null || echo r-read-only; \
             ls -A /tmp",
            d = dir.str()
        );
        let file_dst = format!("{}/f", dir.str());
        let args = with_base(
            &[
                "--bind",
                dir.str(),
                dir.str(),
                "--perms",
                "0640",
                "--file",
                "10",
                &file_dst,
                "--bind-data",
                "11",
                "/tmp/b",
                "--ro-bind-data",
                "12",
                "/tmp/r",
            ],
            &script,
        );
        let out = ok(&bwrap(
            h,
            who,
            &args,
            &[
                (file_data.as_raw_fd(), 10),
                (bind_data.as_raw_fd(), 11),
                (ro_data.as_raw_fd(), 12),
            ],
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[..4],
            ["file data", "bind data", "ro data", "640"],
            "{who:?}: {out}"
        );
        assert!(
            lines.contains(&"b-writable"),
            "{who:?}: --bind-data is writable"
        );
        assert!(
            lines.contains(&"r-read-only"),
            "{who:?}: --ro-bind-data is read-only"
        );
        // Inside, /tmp holds only the two mount points: the backing files
        // live in PID 1's base tmpfs, detached before the command runs.
        assert_eq!(&lines[lines.len() - 2..], ["b", "r"], "{who:?}: {out}");
        // --file wrote into the writable bind (that is its point), and
        // nothing else appeared on the host.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "file data"
        );
        let mode = std::fs::metadata(dir.path().join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640, "{who:?}: --perms, whatever the umask");
        let after: Vec<_> = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let new: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
        assert!(
            new.iter()
                .all(|n| !n.to_string_lossy().contains("bind-data")),
            "{who:?}: a data file reached the host: {new:?}"
        );
    }
}

#[test]
fn tmp_overlay_writes_vanish_and_the_lower_layer_is_untouched() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let lower = dir.path().join("lower");
        std::fs::create_dir(&lower).unwrap();
        std::fs::write(lower.join("kept"), "lower\n").unwrap();
        common::make_world_writable(&lower);
        // Copy-up must be able to give the copy the file's owner, which a
        // user namespace can only do for ids it maps (else EOVERFLOW, in
        // bubblewrap too): the layer belongs to the caller.
        if let Some((uid, gid)) = h.user_ids(who) {
            for path in [lower.clone(), lower.join("kept")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        let lower = lower.to_str().unwrap();
        let script = "cat /tmp/o/kept; echo changed > /tmp/o/kept; echo new > /tmp/o/added; \
                      cat /tmp/o/kept /tmp/o/added";
        let args = with_base(&["--overlay-src", lower, "--tmp-overlay", "/tmp/o"], script);
        let out = bwrap(h, who, &args, &[]);
        if !out.status.success() && stderr(&out).contains("Operation not permitted") {
            // Kernels before 5.11 refuse overlayfs in a user namespace.
            eprintln!("SKIP {who:?}: overlayfs refused here: {}", stderr(&out));
            continue;
        }
        assert_eq!(ok(&out), "lower\nchanged\nnew\n", "{who:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{lower}/kept")).unwrap(),
            "lower\n"
        );
        assert!(!std::path::Path::new(&format!("{lower}/added")).exists());

        // --ro-overlay: two layers, no writes at all.
        let upper = dir.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        std::fs::write(upper.join("top"), "top\n").unwrap();
        common::make_world_writable(&upper);
        let upper = upper.to_str().unwrap();
        let args = with_base(
            &[
                "--overlay-src",
                lower,
                "--overlay-src",
                upper,
                "--ro-overlay",
                "/tmp/o",
            ],
            "cat /tmp/o/kept /tmp/o/top; touch /tmp/o/x 2>/dev/null || echo read-only",
        );
        assert_eq!(
            ok(&bwrap(h, who, &args, &[])),
            "lower\ntop\nread-only\n",
            "{who:?}"
        );
    }
}

#[test]
fn bind_fd_binds_what_the_descriptor_holds() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        std::fs::write(dir.path().join("inside"), "held\n").unwrap();
        let held = std::fs::File::open(dir.path()).unwrap();
        let args = with_base(
            &["--ro-bind-fd", "10", "/tmp/held"],
            "cat /tmp/held/inside; touch /tmp/held/x 2>/dev/null || echo read-only",
        );
        let out = ok(&bwrap(h, who, &args, &[(held.as_raw_fd(), 10)]));
        assert_eq!(out, "held\nread-only\n", "{who:?}");
    }
}

#[test]
fn chmod_remount_ro_and_symlink_destinations() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let script = "stat -c %a /tmp/d; touch /tmp/ro/x 2>/dev/null || echo ro";
        let args = with_base(
            &[
                "--dir",
                "/tmp/d",
                "--chmod",
                "0711",
                "/tmp/d",
                "--tmpfs",
                "/tmp/ro",
                "--remount-ro",
                "/tmp/ro",
            ],
            script,
        );
        assert_eq!(ok(&bwrap(h, who, &args, &[])), "711\nro\n", "{who:?}");
        // bubblewrap's rule, kept in bwrap mode: a link at a destination
        // could steer the mount elsewhere, so it is refused.
        let args = with_base(
            &["--symlink", "/usr", "/tmp/link", "--tmpfs", "/tmp/link"],
            "true",
        );
        let out = bwrap(h, who, &args, &[]);
        assert_eq!(out.status.code(), Some(1), "{who:?}");
        assert!(
            stderr(&out).contains("Can't mount on symlink destination /tmp/link"),
            "{who:?}: {}",
            stderr(&out)
        );
        // A directory source never lands on a file, nor a file on a dir.
        let args = with_base(
            &["--dir", "/tmp/d", "--ro-bind", "/etc/hostname", "/tmp/d"],
            "true",
        );
        let out = bwrap(h, who, &args, &[]);
        assert!(
            stderr(&out).contains("Destination is not a file /tmp/d"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn disable_userns_holds_even_with_every_capability_kept() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // Root inside, every capability of its user namespace kept: it can
        // write its own namespace's limit, never the one that binds it.
        let script = "echo 100 > /proc/sys/user/max_user_namespaces && echo raised; \
                      unshare -U true && echo created || echo refused";
        let args = with_base(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "--unshare-user",
                "--uid",
                "0",
                "--gid",
                "0",
                "--cap-add",
                "ALL",
                "--disable-userns",
            ],
            script,
        );
        let out = ok(&bwrap(h, who, &args, &[]));
        assert!(out.ends_with("refused\n"), "{who:?}: {out}");
        assert!(!out.contains("created"), "{who:?}: {out}");
    }
}

#[test]
fn reaper_is_out_of_reach_and_the_reported_pid_is_the_commands() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // PID 1 runs without the seccomp filter: the command must not be
        // able to ptrace it or read its memory (it is not dumpable). (A
        // root caller's command keeps root's capabilities in bwrap mode,
        // CAP_SYS_PTRACE included, unless it runs in a user namespace.)
        let script = "readlink /proc/1/exe >/dev/null 2>&1 && echo pid1-exposed; \
                      cat /proc/1/environ >/dev/null 2>&1 && echo pid1-environ; \
                      echo $$; sleep 5";
        let pid_ns = ["--unshare-user", "--unshare-pid", "--proc", "/proc"];
        let running = start_with_info(h, who, &with_base(&pid_ns, script));
        assert_eq!(
            running.first_line.trim(),
            "2",
            "{who:?}: the command (its PID 1 is no one it can reach)"
        );
        // The reported pid is the command's: its /proc entries open for the
        // caller's uid (what a host does with it), and it is `sh`.
        let pid = &running.pid;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "sh", "{who:?}");
        let mut probe = Command::new("readlink");
        probe.arg(format!("/proc/{pid}/ns/pid"));
        h.as_identity(&mut probe, who);
        assert!(
            probe.output().unwrap().status.success(),
            "{who:?}: /proc/{pid}/ns/pid"
        );
    }
}

#[test]
fn callers_descriptors_reach_the_command_but_consumed_ones_do_not() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let passed = std::fs::File::open("/etc/hostname").unwrap();
        let status = std::fs::File::create(dir.path().join("status.json")).unwrap();
        let args = with_base(
            &["--proc", "/proc", "--json-status-fd", "11"],
            "[ -e /proc/self/fd/10 ] && echo fd10; [ -e /proc/self/fd/11 ] && echo fd11; true",
        );
        let out = ok(&bwrap(
            h,
            who,
            &args,
            &[(passed.as_raw_fd(), 10), (status.as_raw_fd(), 11)],
        ));
        assert_eq!(
            out, "fd10\n",
            "{who:?}: the caller's fd 10 passes, --json-status-fd's does not"
        );
    }
}

#[test]
fn userns_joins_a_running_sandbox_and_uid_switches_inside_it() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // The first sandbox: its own user namespace, where the caller is 0.
        let first = start_idle(h, who, &["--unshare-user", "--uid", "0", "--gid", "0"]);
        let pid = &first.pid;
        let userns = std::fs::File::open(format!("/proc/{pid}/ns/user")).unwrap();
        let want = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
        // The second joins it and takes uid/gid 0 there.
        let out = ok(&bwrap(
            h,
            who,
            &[
                "--ro-bind",
                "/",
                "/",
                "--userns",
                "10",
                "--uid",
                "0",
                "--gid",
                "0",
                "sh",
                "-c",
                "id -u; id -g; readlink /proc/self/ns/user",
            ],
            &[(userns.as_raw_fd(), 10)],
        ));
        assert_eq!(out, format!("0\n0\n{}\n", want.display()), "{who:?}");
    }
}

#[test]
fn userns_block_fd_lets_the_caller_write_the_id_maps() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let dir = h.scratch();
        let info_path = dir.path().join("info.json");
        let info = std::fs::File::create(&info_path).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes (close-on-exec:
        // only the copies made for a launcher reach it).
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let args = [
            "--ro-bind",
            "/",
            "/",
            "--unshare-user",
            "--unshare-pid",
            "--info-fd",
            "10",
            "--userns-block-fd",
            "11",
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map",
        ];
        let mut cmd = h.bwrap_command(who, &args);
        cmd.stdout(Stdio::piped());
        common::inherit_fds(&mut cmd, &[(info.as_raw_fd(), 10), (fds[0], 11)]);
        let child = cmd.spawn().unwrap();
        // SAFETY: the read end is the launcher's now; ours is closed.
        unsafe { libc::close(fds[0]) };
        let mut pid = String::new();
        assert!(
            common::wait_until(10, || {
                let text = std::fs::read_to_string(&info_path).unwrap_or_default();
                pid = text
                    .split("\"child-pid\": ")
                    .nth(1)
                    .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
                    .unwrap_or_default();
                !pid.is_empty()
            }),
            "{who:?}: no child-pid on --info-fd"
        );
        // The caller maps root inside to its own ids, as newuidmap would.
        let (uid, gid) = h.user_ids(who).unwrap_or((0, 0));
        let mut write_maps = Command::new("sh");
        write_maps.arg("-c").arg(format!(
            "echo deny > /proc/{pid}/setgroups && echo '0 {uid} 1' > /proc/{pid}/uid_map && \
             echo '0 {gid} 1' > /proc/{pid}/gid_map"
        ));
        h.as_identity(&mut write_maps, who);
        assert!(
            write_maps.status().unwrap().success(),
            "{who:?}: writing the maps"
        );
        // SAFETY: fds[1] is our write end of the pipe; one byte, then closed.
        unsafe {
            libc::write(fds[1], b"x".as_ptr().cast(), 1);
            libc::close(fds[1]);
        }
        let out = ok(&child.wait_with_output().unwrap());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], ["0", "0"], "{who:?}: {out}");
        let map: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            map,
            ["0", &uid.to_string(), "1"],
            "{who:?}: the caller's map"
        );
    }
}

#[test]
fn pidns_joins_a_running_sandbox_with_or_without_a_new_one_below() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        let first = start_idle(h, who, &["--unshare-user", "--unshare-pid"]);
        let pid = &first.pid;
        let userns = std::fs::File::open(format!("/proc/{pid}/ns/user")).unwrap();
        let pidns = std::fs::File::open(format!("/proc/{pid}/ns/pid")).unwrap();
        let joined = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
        let fds = [(userns.as_raw_fd(), 10), (pidns.as_raw_fd(), 11)];
        let script = "readlink /proc/self/ns/pid; echo $$";
        // Joined as it is: the command is a process of that namespace.
        let joined_args = [
            "--ro-bind",
            "/",
            "/",
            "--userns",
            "10",
            "--pidns",
            "11",
            "sh",
            "-c",
            script,
        ];
        let out = ok(&bwrap(h, who, &joined_args, &fds));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], joined.to_str().unwrap(), "{who:?}: {out}");
        // With --unshare-pid: a new namespace below it, with our PID 1.
        let nested_args = [
            "--ro-bind",
            "/",
            "/",
            "--userns",
            "10",
            "--pidns",
            "11",
            "--unshare-pid",
            "--proc",
            "/proc",
            "sh",
            "-c",
            script,
        ];
        let out = ok(&bwrap(h, who, &nested_args, &fds));
        let lines: Vec<&str> = out.lines().collect();
        assert_ne!(
            lines[0],
            joined.to_str().unwrap(),
            "{who:?}: a new namespace: {out}"
        );
        assert_eq!(lines[1], "2", "{who:?}: under its own PID 1: {out}");
    }
}

#[test]
fn a_passed_pipe_closes_when_the_command_closes_it() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        for extra in [&[][..], &["--unshare-pid"][..]] {
            let dir = h.scratch();
            let go = dir.path().join("go");
            let mut fds = [0; 2];
            // Close-on-exec: only the copy at 5 may reach the command.
            // SAFETY: fds has room for the two descriptors pipe2 writes.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // The command closes the passed write end at once, then waits:
            // the reader must see EOF while the sandbox still runs, so no
            // launcher, PID 1 or relay may hold a copy.
            let script = format!(
                "exec 5>&-; while [ ! -e {} ]; do sleep 0.05; done",
                go.display()
            );
            let mut args = vec!["--ro-bind", "/", "/"];
            args.extend(extra);
            args.extend(["sh", "-c", &script]);
            let mut cmd = h.bwrap_command(who, &args);
            common::inherit_fd(&mut cmd, fds[1], 5);
            let mut child = cmd.spawn().unwrap();
            // SAFETY: our copy of the write end; the launcher has its own.
            unsafe { libc::close(fds[1]) };
            let mut pfd = [libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            }];
            // A hang guard, not a timing: EOF comes as soon as the command
            // has run its first line.
            // SAFETY: pfd is one valid pollfd.
            let ready = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 10_000) };
            let mut byte = [0u8; 1];
            let n = if ready == 1 {
                // SAFETY: reading one byte into a local buffer.
                unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) }
            } else {
                -1
            };
            std::fs::write(&go, "").unwrap();
            let status = child.wait().unwrap();
            // SAFETY: our read end.
            unsafe { libc::close(fds[0]) };
            assert_eq!(n, 0, "{who:?} {extra:?}: no EOF while the sandbox ran");
            assert!(status.success(), "{who:?} {extra:?}");
        }
    }
}
