//! Landlock mode (SPEC §2.8, `--isolation landlock|auto`): the same plan
//! as the namespace executor (`run/`), enforced on the host's own tree
//! and network by Landlock and the seccomp filter, where no namespace can
//! be had. Fail-closed: what it cannot express is refused, what it does
//! not enforce is reported before the workload starts.
//!
//! `view.rs` turns the plan's steps into the access view to enforce,
//! `rules.rs` the view into Landlock rules (snapshot subtraction),
//! `gaps.rs` says what is not enforced, `launch.rs` runs the workload.
//!
//! Not there yet (issue 20), refused with exit 125 rather than
//! approximated: `--allow-unix`. `--relay` goes through the broker
//! (`broker/relay.rs`), started in the launcher.

mod auto;
pub mod features;
mod gaps;
mod launch;
mod rules;
mod view;

pub use auto::launch as launch_auto;
pub use launch::{assess, launch};
