//! Compiles the seccomp policy in `bpf/` into classic BPF for x86_64 and
//! aarch64 and writes the programs as `libc::sock_filter` arrays for
//! `src/seccomp.rs` to `include!`. Any problem fails the build: there is no
//! fallback to an empty policy.
//!
//! The code generator is this file's own. seccompiler cannot express the
//! policy (several errnos in one program, the i386 compat ABI next to
//! x86_64, "any of these bits" as one test), and the program it emits for
//! it was three times longer: the kernel JIT-compiles a filter when it is
//! installed, in time proportional to its length, and every sandbox pays
//! that at startup. seccompiler's syscall tables still check ours (see
//! [`check_native_numbers`]). See `bpf/README.md` for the program's shape.
//!
//! Also hashes the sources the binary is built from, for `--version` and
//! `vendor-prebuilt/MANIFEST` (see [`source_hash`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::{env, fs, path::Path};

use seccompiler::{TargetArch, compile_from_json};
use serde_json::Value;
use sha2::{Digest, Sha256};

const POLICY: &str = "bpf/policy.json";
const SYSCALLS: &str = "bpf/syscalls.txt";

/// A classic BPF instruction, laid out as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

// Classic BPF opcodes (include/uapi/linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;
/// include/uapi/linux/seccomp.h.
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// The call waits for the listener's answer (`--allow-unix`'s broker).
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// arch/x86/include/uapi/asm/unistd.h: `__X32_SYSCALL_BIT`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets in `struct seccomp_data`: nr, arch, then six u64 arguments
/// (little-endian on both targets, so an argument's low 32 bits come
/// first).
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;
/// The filters installed on request, besides `base`, in the bit order of
/// the generated program tables.
const OPTIONAL_FILTERS: [&str; 7] = [
    "unshare-net",
    "unix-block",
    "setuid-files",
    "allow-unix",
    "unix-broker",
    "landlock-net",
    "landlock-relay",
];
/// The errnos a rule may name (same values on every Linux architecture
/// built here).
const ERRNOS: [(&str, u32); 3] = [("EPERM", 1), ("EBADF", 9), ("ENOSYS", 38)];

/// One syscall ABI a program answers for: its column in
/// `bpf/syscalls.txt` and its `AUDIT_ARCH_*` (include/uapi/linux/audit.h).
struct Abi {
    column: &'static str,
    audit_arch: u32,
}

const X86_64: Abi = Abi {
    column: "x86_64",
    audit_arch: 0xc000_003e,
};
const I386: Abi = Abi {
    column: "i386",
    audit_arch: 0x4000_0003,
};
const AARCH64: Abi = Abi {
    column: "aarch64",
    audit_arch: 0xc000_00b7,
};

/// A build target: the ABIs its kernel runs, native first. Every other
/// ABI (arm32 compat on aarch64, anything unknown) is killed, and so is
/// x32 on x86_64 (it shares AUDIT_ARCH_X86_64, so it is told apart by the
/// syscall number).
struct Target {
    name: &'static str,
    abis: &'static [Abi],
    x32_guard: bool,
}

const TARGETS: [Target; 2] = [
    Target {
        name: "X86_64",
        abis: &[X86_64, I386],
        x32_guard: true,
    },
    Target {
        name: "AARCH64",
        abis: &[AARCH64],
        x32_guard: false,
    },
];

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A forward jump distance that fits the 8-bit `jt`/`jf` fields.
fn short(distance: usize) -> u8 {
    u8::try_from(distance).expect("a jump in the seccomp program is longer than 255")
}

/// `bpf/syscalls.txt`: name → ABI column → number.
type SyscallTable = BTreeMap<String, BTreeMap<String, u32>>;

fn read_syscall_table() -> SyscallTable {
    let text = fs::read_to_string(SYSCALLS).unwrap_or_else(|e| panic!("read {SYSCALLS}: {e}"));
    let columns = ["x86_64", "i386", "aarch64"];
    let mut table = SyscallTable::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{SYSCALLS}: malformed line {line:?}");
        let numbers = columns
            .iter()
            .zip(&fields[1..])
            .filter(|(_, n)| **n != "-")
            .map(|(abi, n)| {
                let nr = n
                    .parse()
                    .unwrap_or_else(|_| panic!("{SYSCALLS}: bad number in {line:?}"));
                (abi.to_string(), nr)
            })
            .collect();
        assert!(
            table.insert(fields[0].to_string(), numbers).is_none(),
            "{SYSCALLS}: {} listed twice",
            fields[0]
        );
    }
    table
}

/// The native columns must agree with seccompiler's own tables: compile a
/// one-syscall filter by name and read the number it compares against.
fn check_native_numbers(table: &SyscallTable) {
    for (name, numbers) in table {
        for (column, arch) in [
            ("x86_64", TargetArch::x86_64),
            ("aarch64", TargetArch::aarch64),
        ] {
            let Some(&ours) = numbers.get(column) else {
                continue;
            };
            let json = format!(
                r#"{{"t": {{"mismatch_action": "allow", "match_action": "trap", "filter": [{{"syscall": "{name}"}}]}}}}"#
            );
            let prog = compile_from_json(json.as_bytes(), arch)
                .unwrap_or_else(|e| panic!("seccompiler does not know {name}: {e}"))
                .remove("t")
                .expect("the filter just compiled");
            // Its prologue (3 instructions), load nr, then `jeq nr`.
            assert_eq!(
                prog[4].k, ours,
                "{SYSCALLS}: {name} on {column} is {}, not {ours}",
                prog[4].k
            );
        }
    }
}

/// Parses a policy number: a JSON integer or a "0x…" / "0o…" string.
fn number(v: &Value) -> u32 {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).unwrap_or_else(|_| panic!("{POLICY}: {n} is above 32 bits"));
    }
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{POLICY}: {v} is not a number"));
    let parsed = if let Some(hex) = s.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else if let Some(oct) = s.strip_prefix("0o") {
        u32::from_str_radix(oct, 8)
    } else {
        s.parse()
    };
    parsed.unwrap_or_else(|_| panic!("{POLICY}: bad 32-bit number {s:?}"))
}

/// A test on the low 32 bits of one argument.
#[derive(Clone, Copy, Debug)]
enum Test {
    Eq(u32),
    AnyBitOf(u32),
    /// `(arg & mask) == value`: a socket's type without its flags.
    MaskedEq(u32, u32),
    /// `arg != value`: several on one argument say "none of these".
    Ne(u32),
    /// `(arg & mask) != value`.
    MaskedNe(u32, u32),
}

impl Test {
    /// Its instructions after the argument's load; a failed test jumps
    /// `on_fail` instructions past the last of them.
    fn emit(self, on_fail: usize) -> Vec<Insn> {
        let on_fail = short(on_fail);
        match self {
            Test::Eq(v) => vec![jump(BPF_JMP_JEQ_K, v, 0, on_fail)],
            Test::Ne(v) => vec![jump(BPF_JMP_JEQ_K, v, on_fail, 0)],
            Test::MaskedNe(mask, v) => vec![
                stmt(BPF_ALU_AND_K, mask),
                jump(BPF_JMP_JEQ_K, v, on_fail, 0),
            ],
            Test::AnyBitOf(mask) => vec![jump(BPF_JMP_JSET_K, mask, 0, on_fail)],
            Test::MaskedEq(mask, v) => vec![
                stmt(BPF_ALU_AND_K, mask),
                jump(BPF_JMP_JEQ_K, v, 0, on_fail),
            ],
        }
    }

    /// Its length with the argument's load.
    fn len(self) -> usize {
        1 + self.emit(0).len()
    }
}

/// One policy rule for one ABI: answer syscall `nr` with `verdict` (an
/// errno, or the broker's notification) when all `conditions` hold
/// (always, when there are none).
#[derive(Clone, Debug)]
struct Rule {
    nr: u32,
    verdict: u32,
    conditions: Vec<(u32, Test)>,
}

fn parse_condition(cond: &Value) -> (u32, Test) {
    let index = cond["index"]
        .as_u64()
        .filter(|i| *i < 6)
        .unwrap_or_else(|| panic!("{POLICY}: condition without an index 0..5: {cond}"));
    let test = match (
        cond.get("eq"),
        cond.get("ne"),
        cond.get("any_bit_of"),
        cond.get("mask"),
    ) {
        (Some(v), None, None, None) => Test::Eq(number(v)),
        (Some(v), None, None, Some(m)) => Test::MaskedEq(number(m), number(v)),
        (None, Some(v), None, None) => Test::Ne(number(v)),
        (None, Some(v), None, Some(m)) => Test::MaskedNe(number(m), number(v)),
        (None, None, Some(m), None) => Test::AnyBitOf(number(m)),
        _ => panic!(
            "{POLICY}: a condition has eq or ne (with an optional mask) or any_bit_of: {cond}"
        ),
    };
    (index as u32, test)
}

/// A rule's answer: `"errno"`, or `"action": "notify"` (the call goes to
/// `--allow-unix`'s broker, which makes it on the caller's behalf).
fn verdict_of(filter: &str, name: &str, rule: &Value) -> u32 {
    match (
        rule.get("errno").and_then(Value::as_str),
        rule.get("action"),
    ) {
        (Some(errno_name), None) => {
            let errno = ERRNOS
                .iter()
                .find(|(n, _)| *n == errno_name)
                .unwrap_or_else(|| panic!("{POLICY}: unknown errno {errno_name}"))
                .1;
            SECCOMP_RET_ERRNO | errno
        }
        (None, Some(action)) if action == "notify" => SECCOMP_RET_USER_NOTIF,
        _ => panic!("{POLICY}: {filter}: {name} needs an errno or \"action\": \"notify\""),
    }
}

/// The rules of one policy filter that exist on `abi`, in policy order.
fn rules_for(filter: &str, spec: &Value, abi: &Abi, table: &SyscallTable) -> Vec<Rule> {
    let rules = spec["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("{POLICY}: {filter} has no rules"));
    let mut out = Vec::new();
    for rule in rules {
        let name = rule["syscall"]
            .as_str()
            .unwrap_or_else(|| panic!("{POLICY}: {filter}: rule without syscall: {rule}"));
        let verdict = verdict_of(filter, name, rule);
        let numbers = table
            .get(name)
            .unwrap_or_else(|| panic!("{POLICY}: {name} is not in {SYSCALLS}"));
        let Some(&nr) = numbers.get(abi.column) else {
            continue;
        };
        let conditions = rule
            .get("args")
            .and_then(Value::as_array)
            .map(|conds| conds.iter().map(parse_condition).collect())
            .unwrap_or_default();
        out.push(Rule {
            nr,
            verdict,
            conditions,
        });
    }
    out
}

/// One ABI's body:
///
/// ```text
/// load nr
/// nr == A? jump to A's block      (one line per syscall with rules)
/// …
/// allow
/// A's block: for each rule of A, in order:
///     load arg; test; failed? go to the next rule   (per condition)
///     return the rule's errno
/// allow
/// ```
///
/// A syscall without rules costs one comparison per listed syscall, and
/// its verdict depends on the number alone, which lets the kernel cache
/// it as allowed.
fn abi_body(rules: &[Rule]) -> Vec<Insn> {
    let mut by_nr: BTreeMap<u32, Vec<&Rule>> = BTreeMap::new();
    for rule in rules {
        by_nr.entry(rule.nr).or_default().push(rule);
    }
    let blocks: Vec<(u32, Vec<Insn>)> = by_nr
        .into_iter()
        .map(|(nr, rules)| (nr, syscall_block(&rules)))
        .collect();
    let mut body = vec![stmt(BPF_LD_W_ABS, NR_OFFSET)];
    // From the i-th comparison, its block is past the remaining
    // comparisons, the `allow`, and the blocks before it.
    let mut to_block = blocks.len();
    for (nr, block) in &blocks {
        body.push(jump(BPF_JMP_JEQ_K, *nr, short(to_block), 0));
        to_block += block.len() - 1;
    }
    body.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    for (_, block) in blocks {
        body.extend(block);
    }
    body
}

/// The instructions that decide one syscall whose number matched.
fn syscall_block(rules: &[&Rule]) -> Vec<Insn> {
    let mut block = Vec::new();
    for rule in rules {
        // Each condition is a load and a test; a failed test skips to the
        // instruction after this rule's `ret`.
        let mut left: usize = rule.conditions.iter().map(|(_, t)| t.len()).sum();
        for (index, test) in &rule.conditions {
            left -= test.len();
            block.push(stmt(BPF_LD_W_ABS, ARGS_OFFSET + 8 * index));
            // Past the rest of the conditions and the `ret`.
            block.extend(test.emit(left + 1));
        }
        block.push(stmt(BPF_RET_K, rule.verdict));
        if rule.conditions.is_empty() {
            // Always refused: later rules are unreachable.
            return block;
        }
    }
    block.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    block
}

/// The whole program for one target:
///
/// ```text
/// load arch
/// for each ABI: arch == ABI? jump to its body
/// kill
/// [x86_64: load nr; nr >= x32 bit? kill] body of the native ABI
/// body of the next ABI …
/// ```
fn link(target: &Target, bodies: Vec<Vec<Insn>>) -> Vec<Insn> {
    let kill = stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS);
    let mut bodies = bodies;
    if target.x32_guard {
        let guard = [
            stmt(BPF_LD_W_ABS, NR_OFFSET),
            jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
            kill,
        ];
        bodies[0].splice(0..0, guard);
    }
    let dispatch_len = 1 + 2 * bodies.len() + 1;
    let mut prog = vec![stmt(BPF_LD_W_ABS, ARCH_OFFSET)];
    let mut body_start = dispatch_len;
    for (abi, body) in target.abis.iter().zip(&bodies) {
        prog.push(jump(BPF_JMP_JEQ_K, abi.audit_arch, 0, 1));
        let ja_at = prog.len();
        prog.push(stmt(
            BPF_JMP_JA,
            u32::try_from(body_start - ja_at - 1).unwrap(),
        ));
        body_start += body.len();
    }
    prog.push(kill);
    assert_eq!(prog.len(), dispatch_len);
    for body in bodies {
        prog.extend(body);
    }
    assert!(
        prog.len() < 4096,
        "seccomp program too long: {}",
        prog.len()
    );
    prog
}

/// Compiles the policy into Rust source: for each target, one program per
/// combination of the optional filters, so a workload installs exactly one
/// filter (each installation is JIT-compiled: one is cheapest).
///
/// `{TARGET}_PROGRAMS[i]` holds `base` plus the optional filters whose bit
/// is set in `i`, in `OPTIONAL_FILTERS` order.
fn compile_policy() -> String {
    println!("cargo:rerun-if-changed={POLICY}");
    println!("cargo:rerun-if-changed={SYSCALLS}");
    let table = read_syscall_table();
    check_native_numbers(&table);
    let text = fs::read(POLICY).unwrap_or_else(|e| panic!("read {POLICY}: {e}"));
    let policy: Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("parse {POLICY}: {e}"));
    let filters = policy["filters"]
        .as_object()
        .unwrap_or_else(|| panic!("{POLICY}: no filters"));
    let base = filters
        .get("base")
        .unwrap_or_else(|| panic!("{POLICY}: no base filter"));
    // The order is the bit order of the program index, which
    // src/seccomp.rs relies on (and tests).
    let optional: Vec<(&str, &Value)> = OPTIONAL_FILTERS
        .iter()
        .map(|name| {
            let spec = filters
                .get(*name)
                .unwrap_or_else(|| panic!("{POLICY}: no {name} filter"));
            (*name, spec)
        })
        .collect();
    assert_eq!(
        filters.len(),
        1 + optional.len(),
        "{POLICY}: a filter other than base and {OPTIONAL_FILTERS:?}"
    );
    let mut out = String::from("// Generated by build.rs from bpf/. Do not edit.\n");
    let names: Vec<String> = optional.iter().map(|(n, _)| format!("{n:?}")).collect();
    writeln!(
        out,
        "pub const OPTIONAL_FILTERS: [&str; {}] = [{}];",
        names.len(),
        names.join(", ")
    )
    .unwrap();
    // A filter may name one it only makes sense with ("requires"): the
    // combinations without it get no program (an empty slice, which
    // src/seccomp.rs refuses to install), which keeps the binary small.
    let required: Vec<Option<usize>> = optional
        .iter()
        .map(|(name, spec)| {
            spec.get("requires").map(|r| {
                let r = r.as_str().expect("requires names a filter");
                OPTIONAL_FILTERS
                    .iter()
                    .position(|n| *n == r)
                    .unwrap_or_else(|| panic!("{POLICY}: {name} requires unknown {r}"))
            })
        })
        .collect();
    let valid = |mask: usize| {
        required
            .iter()
            .enumerate()
            .all(|(bit, req)| mask & (1 << bit) == 0 || req.is_none_or(|r| mask & (1 << r) != 0))
    };
    for target in &TARGETS {
        let mut programs = Vec::new();
        for mask in 0..1usize << optional.len() {
            if !valid(mask) {
                programs.push("&[]".to_string());
                continue;
            }
            let bodies = target
                .abis
                .iter()
                .map(|abi| {
                    let mut rules = rules_for("base", base, abi, &table);
                    for (bit, (name, spec)) in optional.iter().enumerate() {
                        if mask & (1 << bit) != 0 {
                            rules.extend(rules_for(name, spec, abi, &table));
                        }
                    }
                    abi_body(&rules)
                })
                .collect();
            let prog = link(target, bodies);
            let ident = format!("{}_PROGRAM_{mask}", target.name);
            writeln!(
                out,
                "const {ident}: [libc::sock_filter; {}] = [",
                prog.len()
            )
            .unwrap();
            for ins in &prog {
                writeln!(
                    out,
                    "    libc::sock_filter {{ code: {:#06x}, jt: {}, jf: {}, k: {:#010x} }},",
                    ins.code, ins.jt, ins.jf, ins.k
                )
                .unwrap();
            }
            out.push_str("];\n");
            programs.push(format!("&{ident}"));
        }
        writeln!(
            out,
            "pub const {}_PROGRAMS: [&[libc::sock_filter]; {}] = [{}];",
            target.name,
            programs.len(),
            programs.join(", ")
        )
        .unwrap();
    }
    out
}

/// What the source hash covers: everything that decides the binary's bytes.
const SOURCES: [&str; 7] = [
    "src",
    "bpf",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    ".cargo/config.toml",
];

fn files_below(path: &Path, out: &mut Vec<String>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())) {
            files_below(&entry.expect("directory entry").path(), out);
        }
    } else if path.is_file() {
        out.push(path.to_str().expect("source paths are UTF-8").to_string());
    }
}

/// SHA-256 over the lines `<sha256 of file>  <path>\n` of every file in
/// [`SOURCES`], sorted bytewise by path: the same as
/// `find SOURCES -type f | LC_ALL=C sort | xargs sha256sum | sha256sum`,
/// which is how scripts/build-prebuilt.sh and CI recompute it.
fn source_hash() -> String {
    let mut files = Vec::new();
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
        files_below(Path::new(source), &mut files);
    }
    files.sort();
    let mut listing = String::new();
    for file in &files {
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        writeln!(listing, "{}  {file}", hex(&sha256(&bytes))).unwrap();
    }
    hex(&sha256(listing.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn main() {
    println!("cargo:rustc-env=SRT_LAUNCHER_SOURCE_HASH={}", source_hash());
    println!(
        "cargo:rustc-env=SRT_LAUNCHER_TARGET={}",
        env::var("TARGET").expect("cargo sets TARGET")
    );
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    assert!(
        matches!(target_arch.as_str(), "x86_64" | "aarch64"),
        "srt-launcher supports x86_64 and aarch64, not {target_arch}"
    );
    let dest =
        Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("seccomp_filters.rs");
    fs::write(&dest, compile_policy()).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}
