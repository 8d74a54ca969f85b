//! Compiles the seccomp policy in `bpf/` into classic BPF for x86_64 and
//! aarch64 and writes them as `libc::sock_filter` arrays for
//! `src/seccomp.rs` to `include!`. Any problem fails the build: there is no
//! fallback to an empty policy.
//!
//! Also hashes the sources the binary is built from, for `--version` and
//! `vendor-prebuilt/MANIFEST` (see [`source_hash`]).

use std::fmt::Write as _;
use std::{env, fs, path::Path};

use seccompiler::{TargetArch, compile_from_json, sock_filter};

const POLICY: &str = "bpf/unix-block.json";
const FILTER_NAME: &str = "workload";

// Classic BPF opcodes (include/uapi/linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
/// include/uapi/linux/seccomp.h.
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const EPERM: u32 = 1;
/// arch/x86/include/uapi/asm/unistd.h: `__X32_SYSCALL_BIT`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// seccompiler starts every program with: load arch; equal to ours? skip
/// the next; kill. Check that shape, since the x32 guard is spliced in
/// right after it and every later jump is relative.
fn check_prologue(prog: &[sock_filter]) {
    let ok = prog.len() > 3
        && prog[0] == stmt(BPF_LD_W_ABS, ARCH_OFFSET)
        && prog[1].code == BPF_JMP_JEQ_K
        && (prog[1].jt, prog[1].jf) == (1, 0)
        && prog[2] == stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS);
    assert!(
        ok,
        "unexpected seccompiler prologue: {:?}",
        &prog[..3.min(prog.len())]
    );
}

/// x32 syscalls pass the arch check (AUDIT_ARCH_X86_64) but number from
/// 0x40000000, so the native-number rules would let an x32 `socket` or
/// `io_uring_setup` through. Refuse every such number.
fn add_x32_guard(mut prog: Vec<sock_filter>) -> Vec<sock_filter> {
    let guard = [
        stmt(BPF_LD_W_ABS, NR_OFFSET),
        sock_filter {
            code: BPF_JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM),
    ];
    prog.splice(3..3, guard);
    prog
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

/// SHA-256 (FIPS 180-4), enough for hashing a few hundred KiB of sources.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
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
    let policy = fs::read(POLICY).unwrap_or_else(|e| panic!("read {POLICY}: {e}"));
    let mut out = String::from("// Generated by build.rs from bpf/unix-block.json. Do not edit.\n");
    for (name, arch) in [
        ("X86_64", TargetArch::x86_64),
        ("AARCH64", TargetArch::aarch64),
    ] {
        let mut filters = compile_from_json(policy.as_slice(), arch)
            .unwrap_or_else(|e| panic!("compile {POLICY} for {name}: {e}"));
        let prog = filters
            .remove(FILTER_NAME)
            .unwrap_or_else(|| panic!("{POLICY} has no '{FILTER_NAME}' filter"));
        check_prologue(&prog);
        let prog = if name == "X86_64" {
            add_x32_guard(prog)
        } else {
            prog
        };
        writeln!(
            out,
            "pub const {name}_UNIX_BLOCK: [libc::sock_filter; {}] = [",
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
    }
    let dest =
        Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("seccomp_filters.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}
