//! The README's first command, run exactly as written, from the
//! repository's root, on the vendored binary: the front door cannot drift
//! from what works.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{harness, stderr, stdout};

/// The first `sh` block after "## The two commands": the line a new
/// user pastes first.
fn first_command(readme: &str) -> String {
    let section = readme
        .split_once("## The two commands\n")
        .expect("the README has its two commands")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("a sh block follows")
        .1
        .split_once("\n```")
        .expect("the block ends")
        .0;
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 1, "the first command is one line: {block}");
    lines[0].to_string()
}

#[test]
fn the_readmes_first_command_runs_a_real_sandbox_as_written() {
    // Only to know the kernel gives namespaces here (and to fail, not
    // skip, where CI requires a sandbox): the command runs as written.
    let Some(_h) = harness() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let line = first_command(&readme);
    assert!(
        line.starts_with("vendor-prebuilt/"),
        "it runs the vendored binary: {line}"
    );
    let out = Command::new("sh")
        .args(["-c", &line])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{line}: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // A fresh /proc: PID 1 and a handful of the sandbox's own processes.
    let pids = lines
        .iter()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .count();
    assert!(lines.contains(&"1") && pids < 10, "{text}");
    assert_eq!(lines.last(), Some(&"read-only, as it should be"), "{text}");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}
