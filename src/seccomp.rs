//! The embedded seccomp filter of `--seccomp-unix-block` (SPEC §2.5).
//!
//! Installed by the workload process as its very last step before execve,
//! after its capabilities are gone and with no_new_privs set; the launcher,
//! PID 1 and the relays never run under it. The programs are compiled from
//! `bpf/unix-block.json` by `build.rs`; see `bpf/README.md` for what the
//! build adds to seccompiler's output.

use anyhow::{Context, Result};

use crate::sys;

// Both arches' programs are generated (the unit tests run both); the one
// for the other arch is unused in a normal build.
#[allow(dead_code)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filters.rs"));
}
use generated::*;

#[cfg(target_arch = "x86_64")]
const UNIX_BLOCK: &[libc::sock_filter] = &X86_64_UNIX_BLOCK;
#[cfg(target_arch = "aarch64")]
const UNIX_BLOCK: &[libc::sock_filter] = &AARCH64_UNIX_BLOCK;

/// Installs the filter on the calling process (and everything it execs).
pub fn install_unix_block() -> Result<()> {
    sys::seccomp_install(UNIX_BLOCK).context("install the seccomp filter")
}

#[cfg(test)]
mod tests {
    //! Runs the generated programs on synthetic `seccomp_data` with a small
    //! classic-BPF interpreter, for both architectures whatever the host.
    use super::*;

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_EPERM: u32 = 0x0005_0001;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
    const AF_UNIX: u64 = 1;
    const AF_INET: u64 = 2;
    const AF_INET6: u64 = 10;

    /// `struct seccomp_data` as the kernel lays it out.
    fn data(nr: u32, arch: u32, args: [u64; 6]) -> Vec<u8> {
        let mut d = Vec::with_capacity(64);
        d.extend_from_slice(&nr.to_le_bytes());
        d.extend_from_slice(&arch.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        for a in args {
            d.extend_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// The subset of classic BPF seccompiler and build.rs emit; anything
    /// else fails the test rather than being guessed at.
    fn eval(prog: &[libc::sock_filter], d: &[u8]) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                0x20 => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(d[k..k + 4].try_into().unwrap());
                }
                0x06 => return ins.k,
                0x05 => pc += ins.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match ins.code {
                        0x15 => acc == ins.k,
                        0x25 => acc > ins.k,
                        0x35 => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                0x54 => acc &= ins.k,
                other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn socket_args(domain: u64) -> [u64; 6] {
        [domain, 1, 0, 0, 0, 0]
    }

    /// (arch, native arch id, socket nr, io_uring_setup/enter/register nrs,
    /// an unrelated syscall nr, the foreign compat arch id)
    type ArchCase = (
        &'static str,
        &'static [libc::sock_filter],
        u32,
        u32,
        [u32; 3],
        u32,
        u32,
    );
    const ARCHES: [ArchCase; 2] = [
        (
            "x86_64",
            &X86_64_UNIX_BLOCK,
            AUDIT_ARCH_X86_64,
            41,
            [425, 426, 427],
            39,
            AUDIT_ARCH_I386,
        ),
        (
            "aarch64",
            &AARCH64_UNIX_BLOCK,
            AUDIT_ARCH_AARCH64,
            198,
            [425, 426, 427],
            172,
            AUDIT_ARCH_ARM,
        ),
    ];

    #[test]
    fn native_unix_socket_is_eperm_other_families_allowed() {
        for (name, prog, arch, socket, _, _, _) in ARCHES {
            assert_eq!(
                eval(prog, &data(socket, arch, socket_args(AF_UNIX))),
                RET_EPERM,
                "{name}"
            );
            for family in [AF_INET, AF_INET6, 16 /* AF_NETLINK */] {
                assert_eq!(
                    eval(prog, &data(socket, arch, socket_args(family))),
                    RET_ALLOW,
                    "{name}"
                );
            }
            // Only the low 32 bits are the int `domain`; garbage above must
            // not turn AF_UNIX into something allowed.
            let high = (1u64 << 32) | AF_UNIX;
            assert_eq!(
                eval(prog, &data(socket, arch, socket_args(high))),
                RET_EPERM,
                "{name}"
            );
        }
    }

    #[test]
    fn io_uring_is_eperm_and_other_calls_allowed() {
        for (name, prog, arch, _, uring, other, _) in ARCHES {
            for nr in uring {
                assert_eq!(
                    eval(prog, &data(nr, arch, [0; 6])),
                    RET_EPERM,
                    "{name} {nr}"
                );
            }
            assert_eq!(eval(prog, &data(other, arch, [0; 6])), RET_ALLOW, "{name}");
        }
    }

    #[test]
    fn foreign_arch_is_never_allowed() {
        for (name, prog, _, socket, uring, other, foreign) in ARCHES {
            for nr in [
                socket, uring[0], other, 102, /* i386 socketcall */
                359, /* i386 socket */
            ] {
                let verdict = eval(prog, &data(nr, foreign, socket_args(AF_UNIX)));
                assert_eq!(verdict, RET_KILL_PROCESS, "{name} nr {nr}");
            }
        }
    }

    #[test]
    fn x32_numbers_are_never_allowed() {
        const X32: u32 = 0x4000_0000;
        for nr in [41, 425, 426, 427, 39] {
            let verdict = eval(
                &X86_64_UNIX_BLOCK,
                &data(X32 | nr, AUDIT_ARCH_X86_64, socket_args(AF_UNIX)),
            );
            assert_ne!(verdict, RET_ALLOW, "x32 nr {nr}");
        }
    }
}
