//! A sandbox inside a sandbox, as when an agent's tool sandboxes again:
//! it works for a regular user (with `--host-proc`, since the outer
//! sandbox's hardened /proc is partly covered), and a root caller, who has
//! no capabilities inside, gets the cause in one line.

mod common;
#[path = "../src/cli/usual.rs"]
mod usual;

use common::{BASIC, Who, harness, stderr, stdout};

#[test]
fn a_regular_user_can_nest_and_root_is_told_why_not() {
    let Some(h) = harness() else { return };
    for who in h.identities() {
        // The SDK's usual sandbox, as check runs it where a fresh procfs
        // is refused.
        let mut inner = vec![h.launcher_str(), "run"];
        inner.extend(usual::usual_sandbox_with("--host-proc"));
        inner.extend(["--", "sh", "-c", "echo inner-ran"]);
        let mut args = BASIC.to_vec();
        args.extend(inner);
        let out = h.run(who, &args);
        match who {
            Who::User => {
                assert!(out.status.success(), "{who:?}: {}", stderr(&out));
                assert_eq!(stdout(&out), "inner-ran\n");
            }
            Who::Root => {
                let err = stderr(&out);
                assert_eq!(out.status.code(), Some(125), "{err}");
                assert_eq!(err.lines().count(), 1, "{err}");
                assert!(err.contains("uid 0 without capabilities"), "{err}");
                assert!(
                    err.trim_end()
                        .ends_with("run `srt-launcher check` for details"),
                    "{err}"
                );
            }
        }
    }
}
