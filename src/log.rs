//! Optional debug tracing to stderr, switched on by `SRT_LAUNCHER_LOG`
//! (SPEC §4). Off by default: a host spawning thousands of sandboxes gets
//! no output it did not ask for.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Reads `SRT_LAUNCHER_LOG` once, at start (any non-empty value but "0").
pub fn init() {
    let on = std::env::var_os("SRT_LAUNCHER_LOG").is_some_and(|v| !v.is_empty() && v != "0");
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `trace!("…", args)`: one `srt-launcher: trace:` line when tracing is on.
/// Modules import it as `crate::log::trace`, from here, like any item.
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::log::enabled() {
            eprintln!("srt-launcher: trace: {}", format_args!($($arg)*));
        }
    };
}
pub(crate) use trace;
