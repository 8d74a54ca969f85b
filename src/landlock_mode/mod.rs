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
//! `--relay` and `--allow-unix` go through the broker (`broker/`),
//! started in the launcher once the workload has sent its filter's
//! listener, before the workload's execve.

mod auto;
pub mod features;
mod gaps;
mod launch;
mod rules;
mod view;

pub use auto::launch as launch_auto;
pub use launch::{assess, launch};
