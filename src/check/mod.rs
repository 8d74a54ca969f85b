//! `srt-launcher check` (SPEC §6): can `run` work for this user on this
//! machine, and if not, why and how to fix it.
//!
//! Two kinds of evidence, never an imitation of `run`:
//! * `run`'s own steps, one at a time (`run::selftest`), so a failure is
//!   pinned to the call the kernel refused, which `diagnose` turns into a
//!   cause and its fix;
//! * a real `run` of the SDK's usual argv, whose result decides the exit
//!   status: `check` cannot pass while `run` fails.

mod apparmor;

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::cli::{self, usual};
use crate::diagnose::{self, Cause, Evidence};
use crate::exit;
use crate::probe::{self, Features};
use crate::run::selftest::{self, Outcome, STEPS};

/// The version of `check --json`'s schema. Additions keep it; any change
/// to an existing field's meaning bumps it.
pub const JSON_SCHEMA: &str = "srt-launcher-check/1";

/// What `check` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSpec {
    pub json: bool,
    pub apparmor_profile: bool,
    pub install: bool,
}

/// One row of the report.
struct Row {
    name: &'static str,
    /// "ok", "fail" or "skip" (not reached after an earlier failure).
    status: &'static str,
    detail: String,
    call: Option<String>,
    errno: Option<i32>,
}

/// Everything `check` found.
struct Report {
    rows: Vec<Row>,
    works: bool,
    causes: Vec<Cause>,
    evidence: Evidence,
    features: Features,
    landlock_abi: Option<i64>,
    landlock_mode: LandlockMode,
    kernel: String,
    exe: String,
}

/// Whether `run --isolation landlock` works here with the SDK's usual
/// sandbox, and what it would not enforce (SPEC §2.8).
struct LandlockMode {
    works: bool,
    /// The ABI the executor would use (features probed), and the one the
    /// kernel reports.
    abi: Option<i32>,
    reported_abi: Option<i32>,
    missing_features: Vec<&'static str>,
    not_enforced: Vec<&'static str>,
    /// The run's argv, and its error line when it failed.
    detail: String,
}

/// Runs `check`; returns the exit status (0 run works, 1 it does not).
pub fn run(spec: &CheckSpec) -> Result<i32> {
    let exe = diagnose::exe_path();
    if spec.apparmor_profile {
        return print_profile(&exe, spec.install);
    }
    let report = examine(exe)?;
    let text = if spec.json {
        json(&report)
    } else {
        human(&report)
    };
    print!("{text}");
    Ok(if report.works { 0 } else { 1 })
}

fn print_profile(exe: &str, install: bool) -> Result<i32> {
    if install {
        let done = apparmor::install(exe)?;
        println!("{done}");
    } else {
        print!("{}", apparmor::profile(exe)?);
        if let Some(warning) = apparmor::warning(exe) {
            print!("{warning}");
        }
        println!(
            "# Save as {} and load it with:\n#   {}",
            apparmor::profile_path(exe).display(),
            apparmor::load_command(&apparmor::profile_path(exe))
        );
    }
    Ok(0)
}

/// The argv of the real run that decides the verdict: the SDK's usual
/// sandbox around this binary's `--version`.
fn sandbox_argv(exe: &str, proc_option: &'static str) -> Vec<String> {
    std::iter::once("run")
        .chain(usual::usual_sandbox_with(proc_option))
        .chain(["--", exe, "--version"])
        .map(String::from)
        .collect()
}

/// Runs this binary with `args`; None on success, else its error line.
fn try_run(exe: &str, args: &[String]) -> Option<String> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .map_or_else(|| format!("exited with {}", out.status), String::from),
        ),
        Err(e) => Some(format!("could not start {exe}: {e}")),
    }
}

fn examine(exe: String) -> Result<Report> {
    let evidence = Evidence::gather();
    let outcomes = selftest::run_steps(&cli::usual_plan()?)?;
    let mut rows: Vec<Row> = STEPS
        .iter()
        .map(|step| match outcomes.iter().find(|o| o.step == *step) {
            Some(o) => outcome_row(o),
            None => Row {
                name: step.name(),
                status: "skip",
                detail: "not reached".into(),
                call: None,
                errno: None,
            },
        })
        .collect();
    let mut causes: Vec<Cause> = Vec::new();
    for o in outcomes.iter().filter(|o| !o.ok) {
        if let Some(cause) = o
            .refusal
            .as_ref()
            .and_then(|r| diagnose::classify(r.into(), &evidence))
            && !causes.contains(&cause)
        {
            causes.push(cause);
        }
    }
    let argv = sandbox_argv(&exe, "--proc");
    let failure = try_run(&exe, &argv);
    let works = failure.is_none();
    let mut detail = format!("srt-launcher {}", argv.join(" "));
    if let Some(line) = &failure {
        detail = format!("{detail}: {line}");
        if causes.contains(&Cause::ProcCovered)
            && try_run(&exe, &sandbox_argv(&exe, "--host-proc")).is_none()
        {
            detail.push_str(" (with --host-proc /proc instead, it works)");
        }
    }
    rows.push(Row {
        name: "sandbox",
        status: if works { "ok" } else { "fail" },
        detail,
        call: None,
        errno: None,
    });
    Ok(Report {
        rows,
        works,
        causes,
        evidence,
        features: Features::detect(),
        landlock_abi: probe::landlock_abi(),
        landlock_mode: examine_landlock_mode(&exe)?,
        kernel: probe::kernel_release(),
        exe,
    })
}

/// Landlock mode with the usual sandbox: what the executor would enforce
/// (computed as `run` computes it), then a real run, which decides.
fn examine_landlock_mode(exe: &str) -> Result<LandlockMode> {
    let mut plan = cli::usual_plan()?;
    plan.isolation = crate::plan::Isolation::Landlock;
    let argv: Vec<String> = ["run", "--isolation", "landlock"]
        .into_iter()
        .map(String::from)
        .chain(sandbox_argv(exe, "--proc").into_iter().skip(1))
        .collect();
    let mut mode = LandlockMode {
        works: false,
        abi: None,
        reported_abi: None,
        missing_features: Vec::new(),
        not_enforced: Vec::new(),
        detail: format!("srt-launcher {}", argv.join(" ")),
    };
    if let Some(found) = crate::landlock_mode::features::Landlock::probe() {
        mode.abi = Some(found.usable);
        mode.reported_abi = Some(found.reported);
        mode.missing_features = found.missing.iter().map(|f| f.name()).collect();
    }
    match crate::landlock_mode::assess(&plan) {
        Ok(assessment) => {
            mode.not_enforced = assessment.gaps.iter().map(|g| g.id()).collect();
            match try_run(exe, &argv) {
                None => mode.works = true,
                Some(line) => mode.detail = format!("{}: {line}", mode.detail),
            }
        }
        Err(e) => {
            mode.detail = format!("{}: {}", mode.detail, exit::describe_plain(&e));
        }
    }
    Ok(mode)
}

fn outcome_row(o: &Outcome) -> Row {
    Row {
        name: o.step.name(),
        status: if o.ok { "ok" } else { "fail" },
        detail: o.detail.clone(),
        call: o.refusal.as_ref().map(|r| r.call().to_string()),
        errno: o.refusal.as_ref().map(|r| r.errno()),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// One line per check, then the causes and their fixes.
fn human(r: &Report) -> String {
    let (uid, _, _, _) = crate::sys::ids();
    let mut out = format!("srt-launcher check: uid {uid}, kernel {}\n", r.kernel);
    for row in &r.rows {
        let _ = writeln!(out, "{:<5} {:<16} {}", row.status, row.name, row.detail);
    }
    let f = &r.features;
    let _ = writeln!(
        out,
        "info  kernel           landlock ABI {}; openat2 {}; mount API {}; close_range {}",
        r.landlock_abi.map_or("none".to_string(), |v| v.to_string()),
        yes_no(f.openat2),
        yes_no(f.new_mount_api),
        yes_no(f.close_range)
    );
    let lm = &r.landlock_mode;
    let _ = writeln!(
        out,
        "{:<5} {:<16} {}{}",
        if lm.works { "ok" } else { "fail" },
        "landlock mode",
        lm.detail,
        if lm.works {
            format!("; not enforced: {}", lm.not_enforced.join(", "))
        } else {
            String::new()
        }
    );
    if !r.evidence.container.is_empty() {
        let _ = writeln!(
            out,
            "info  container        {}",
            r.evidence.container.join(", ")
        );
    }
    for cause in &r.causes {
        let _ = writeln!(
            out,
            "\ncause: {} ({})",
            cause.summary(&r.evidence),
            cause.id()
        );
        for (i, fix) in cause.fixes(&r.exe).iter().enumerate() {
            let lead = if i == 0 { "fix:  " } else { "  or: " };
            let _ = writeln!(out, "{lead} {fix}");
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        if r.works {
            "run works for this user here."
        } else if r.landlock_mode.works {
            "run does not work for this user here with namespaces; run --isolation auto (or landlock) does, without them."
        } else if r.causes.is_empty() {
            "run does not work for this user here, for a reason check cannot name: see the sandbox line."
        } else {
            "run does not work for this user here."
        }
    );
    out
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn js_opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("null".into(), |v| v.to_string())
}

fn js_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| js(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The `--json` document (schema [`JSON_SCHEMA`], described in the
/// README).
fn json(r: &Report) -> String {
    let (uid, _, _, _) = crate::sys::ids();
    let checks: Vec<String> = r
        .rows
        .iter()
        .map(|row| {
            format!(
                "{{\"name\": {}, \"status\": {}, \"detail\": {}, \"call\": {}, \"errno\": {}}}",
                js(row.name),
                js(row.status),
                js(&row.detail),
                row.call.as_deref().map_or("null".into(), js),
                js_opt(&row.errno)
            )
        })
        .collect();
    let causes: Vec<String> = r
        .causes
        .iter()
        .map(|c| {
            format!(
                "{{\"id\": {}, \"summary\": {}, \"fixes\": {}}}",
                js(c.id()),
                js(&c.summary(&r.evidence)),
                js_list(&c.fixes(&r.exe))
            )
        })
        .collect();
    let sysctls: Vec<String> = r
        .evidence
        .sysctls
        .iter()
        .map(|(name, v)| format!("{}: {}", js(name), js_opt(v)))
        .collect();
    let f = &r.features;
    let e = &r.evidence;
    format!(
        "{{\"schema\": {schema}, \"version\": {version}, \"works\": {works}, \
         \"uid\": {uid}, \"kernel\": {kernel}, \"binary\": {binary},\n \
         \"checks\": [{checks}],\n \
         \"causes\": [{causes}],\n \
         \"landlock_mode\": {landlock_mode},\n \
         \"features\": {{\"landlock_abi\": {landlock}, \"openat2\": {openat2}, \
         \"new_mount_api\": {mount_api}, \"close_range\": {close_range}}},\n \
         \"evidence\": {{\"sysctls\": {{{sysctls}}}, \"lsm\": {lsm}, \"container\": {container}, \
         \"nested_user_namespace\": {nested}, \"wsl1\": {wsl1}, \"seccomp_mode\": {seccomp}}}}}\n",
        schema = js(JSON_SCHEMA),
        version = js(env!("CARGO_PKG_VERSION")),
        works = r.works,
        kernel = js(&r.kernel),
        binary = js(&r.exe),
        checks = checks.join(",\n  "),
        causes = causes.join(",\n  "),
        landlock_mode = landlock_mode_json(&r.landlock_mode),
        landlock = js_opt(&r.landlock_abi),
        openat2 = f.openat2,
        mount_api = f.new_mount_api,
        close_range = f.close_range,
        sysctls = sysctls.join(", "),
        lsm = js_list(&e.lsms),
        container = js_list(&e.container),
        nested = e.nested_userns,
        wsl1 = e.wsl1,
        seccomp = js_opt(&e.seccomp_mode),
    )
}

/// `"landlock_mode"`: whether Landlock mode works here, its ABI and what
/// it would not enforce (SPEC §2.8's gap ids).
fn landlock_mode_json(m: &LandlockMode) -> String {
    let names = |v: &[&str]| js_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    format!(
        "{{\"works\": {}, \"abi\": {}, \"reported_abi\": {}, \"missing_features\": {}, \
         \"not_enforced\": {}, \"detail\": {}}}",
        m.works,
        js_opt(&m.abi),
        js_opt(&m.reported_abi),
        names(&m.missing_features),
        names(&m.not_enforced),
        js(&m.detail)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(js("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(js_opt::<i32>(&None), "null");
        assert_eq!(js_list(&["x".into(), "y".into()]), "[\"x\", \"y\"]");
    }
}
