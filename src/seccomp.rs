//! The workload's seccomp filter (SPEC §2.2 and §2.5): the rules of
//! `base` always, plus those of `unshare-net` with `--unshare-net`, of
//! `unix-block` with `--seccomp-unix-block`, of `allow-unix` with
//! `--allow-unix` (whose notified calls go to the broker, see
//! `run/broker/`), and of `setuid-files` in `run` (in bwrap mode with
//! `--refuse-setuid-files`); in Landlock mode with `--unshare-net`, of
//! `landlock-net` (what Landlock's TCP rules do not see), and with
//! `--relay` of `landlock-relay` (connects to the broker).
//!
//! Installed by the workload process as its very last step before
//! execve, after its capabilities are gone and with no_new_privs set; the
//! launcher, PID 1 and the relays never run under it. `build.rs` compiles
//! `bpf/policy.json` into one program per combination of options, so
//! exactly one filter is installed (the kernel JIT-compiles each one at
//! install time); see `bpf/README.md`.

use anyhow::{Context, Result};

use crate::sys;

// Both arches' programs are generated (the unit tests run both); the ones
// for the other arch are unused in a normal build.
#[allow(dead_code)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filters.rs"));
}

#[cfg(target_arch = "x86_64")]
const PROGRAMS: [&[libc::sock_filter]; 128] = generated::X86_64_PROGRAMS;
#[cfg(target_arch = "aarch64")]
const PROGRAMS: [&[libc::sock_filter]; 128] = generated::AARCH64_PROGRAMS;

/// Which rules a workload gets beyond the always-on base.
pub struct Filters {
    /// `--unshare-net`: refuse the socket families that ignore network
    /// namespaces.
    pub unshare_net: bool,
    /// `--seccomp-unix-block`.
    pub unix_block: bool,
    /// No setuid or setgid file modes, no io_uring: always in `run`; in
    /// bwrap mode only with `--refuse-setuid-files`.
    pub setuid_files: bool,
    /// `--allow-unix`: stream and seqpacket AF_UNIX sockets only.
    /// Replaces `unix_block` (both together would refuse every AF_UNIX
    /// socket).
    pub allow_unix: bool,
    /// `--allow-unix` through the broker (where Landlock cannot enforce
    /// it): every connect and listen notified. Only with `allow_unix`.
    pub unix_broker: bool,
    /// Landlock mode with `--unshare-net`: on the host's network, what
    /// Landlock's TCP rules do not see is refused (listen too, unless
    /// `unix_broker` hands it to the broker first).
    pub landlock_net: bool,
    /// Landlock mode with `--relay`: every connect notified, for the
    /// broker to route the relay ports. Only with `landlock_net`.
    pub landlock_relay: bool,
}

impl Filters {
    /// The filters `plan` asks for. `--allow-unix` takes the place of
    /// `--seccomp-unix-block`: it refuses every AF_UNIX use it does not
    /// allow, and hands connects to the broker unless the kernel enforces
    /// the grants itself (`unix_by_landlock`).
    pub fn of(plan: &crate::plan::RunSpec, unix_by_landlock: bool) -> Filters {
        let allow_unix = !plan.unix_grants.is_empty();
        Filters {
            unshare_net: plan.namespaces.net,
            unix_block: plan.seccomp_unix_block && !allow_unix,
            setuid_files: plan.process.refuse_setuid_files,
            allow_unix,
            unix_broker: allow_unix && !unix_by_landlock,
            landlock_net: false,
            landlock_relay: false,
        }
    }

    /// The index into the generated programs: bit i set when the i-th of
    /// `OPTIONAL_FILTERS` is wanted.
    fn index(&self) -> usize {
        usize::from(self.unshare_net)
            | usize::from(self.unix_block) << 1
            | usize::from(self.setuid_files) << 2
            | usize::from(self.allow_unix) << 3
            | usize::from(self.unix_broker) << 4
            | usize::from(self.landlock_net) << 5
            | usize::from(self.landlock_relay) << 6
    }
}

/// Installs the filter on the calling process (and everything it execs).
/// Nothing the workload does afterwards can remove or loosen it. With a
/// broker (`unix_broker`, `landlock_relay`), returns the listener its
/// notified calls wait on: it must reach the broker and leave this
/// process before execve (a workload holding it could answer its own
/// calls).
pub fn install(filters: &Filters) -> Result<Option<std::os::fd::OwnedFd>> {
    let program = PROGRAMS[filters.index()];
    if program.is_empty() {
        anyhow::bail!("no seccomp program for this combination of filters");
    }
    if filters.unix_broker || filters.landlock_relay {
        let option = if filters.unix_broker {
            "--allow-unix"
        } else {
            "--relay"
        };
        return match sys::seccomp_install_listener(program) {
            // The kernel allows one listener per chain of filters.
            Err(e) if e.errno() == libc::EBUSY => Err(anyhow::anyhow!(
                "{option}: this sandbox is inside one that already brokers its calls (one broker per process tree)"
            )),
            other => Ok(Some(
                other.context("install the seccomp filter with a listener")?,
            )),
        };
    }
    sys::seccomp_install(program).context("install the seccomp filter")?;
    Ok(None)
}

/// Installs a classic BPF program the caller supplied (bwrap's `--seccomp`
/// and `--add-seccomp-fd`: `struct sock_filter` records in native byte
/// order), on top of ours: the kernel runs every installed filter, and the
/// most restrictive answer wins, so a caller's program can refuse more but
/// never allow what ours refuses.
pub fn install_caller_program(bytes: &[u8]) -> Result<()> {
    let program: Vec<libc::sock_filter> = bytes
        .chunks_exact(8)
        .map(|r| libc::sock_filter {
            code: u16::from_ne_bytes([r[0], r[1]]),
            jt: r[2],
            jf: r[3],
            k: u32::from_ne_bytes([r[4], r[5], r[6], r[7]]),
        })
        .collect();
    if program.len() > usize::from(u16::MAX) {
        anyhow::bail!(
            "a seccomp program of {} instructions is too long",
            program.len()
        );
    }
    sys::seccomp_install(&program).context(crate::failure::Problem::CallerSeccomp)
}

#[cfg(test)]
mod tests {
    //! Runs the generated programs on synthetic `seccomp_data` with a small
    //! classic-BPF interpreter, for both architectures whatever the host.
    //! The syscall numbers here are written out independently of
    //! `bpf/syscalls.txt` (from the kernel's syscall tables), so a wrong
    //! entry there fails these tests.
    use super::Filters;
    use super::generated::*;

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_EPERM: u32 = 0x0005_0001;
    const RET_ENOSYS: u32 = 0x0005_0026;
    const RET_EBADF: u32 = 0x0005_0009;
    const RET_USER_NOTIF: u32 = 0x7fc0_0000;
    const SOCK_STREAM: u64 = 1;
    const SOCK_DGRAM: u64 = 2;
    const SOCK_RAW: u64 = 3;
    const SOCK_SEQPACKET: u64 = 5;
    /// SOCK_NONBLOCK | SOCK_CLOEXEC, which share the type argument.
    const SOCK_FLAGS: u64 = 0o4000 | 0o2000000;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
    const AF_UNIX: u64 = 1;
    const AF_INET: u64 = 2;
    const AF_INET6: u64 = 10;
    const AF_NETLINK: u64 = 16;
    const AF_VSOCK: u64 = 40;
    const TIOCSTI: u64 = 0x5412;
    const TIOCLINUX: u64 = 0x541c;
    const TCGETS: u64 = 0x5401;
    const O_CREAT: u64 = 0o100;
    const O_TMPFILE: u64 = 0o20200000;
    const S_IFREG: u64 = 0o100000;

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

    /// One ABI a program answers for, with the numbers of the syscalls
    /// the tests make (None where the ABI has no such call).
    struct Abi {
        name: &'static str,
        audit: u32,
        nr: fn(&str) -> Option<u32>,
    }

    fn x86_64_nr(name: &str) -> Option<u32> {
        Some(match name {
            "read" => 0,
            "ioctl" => 16,
            "socket" => 41,
            "socketpair" => 53,
            "connect" => 42,
            "sendto" => 44,
            "sendmsg" => 46,
            "sendmmsg" => 307,
            "listen" => 50,
            "getpid" => 39,
            "chmod" => 90,
            "fchmod" => 91,
            "fchmodat" => 268,
            "fchmodat2" => 452,
            "open" => 2,
            "openat" => 257,
            "creat" => 85,
            "mknod" => 133,
            "mknodat" => 259,
            "openat2" => 437,
            "mkdir" => 83,
            "add_key" => 248,
            "request_key" => 249,
            "keyctl" => 250,
            "io_uring_setup" => 425,
            "io_uring_enter" => 426,
            "io_uring_register" => 427,
            _ => return None,
        })
    }

    fn i386_nr(name: &str) -> Option<u32> {
        Some(match name {
            "read" => 3,
            "ioctl" => 54,
            "socket" => 359,
            "socketpair" => 360,
            "connect" => 362,
            "sendto" => 369,
            "sendmsg" => 370,
            "sendmmsg" => 345,
            "listen" => 363,
            "socketcall" => 102,
            "getpid" => 20,
            "chmod" => 15,
            "fchmod" => 94,
            "fchmodat" => 306,
            "fchmodat2" => 452,
            "open" => 5,
            "openat" => 295,
            "creat" => 8,
            "mknod" => 14,
            "mknodat" => 297,
            "openat2" => 437,
            "mkdir" => 39,
            "add_key" => 286,
            "request_key" => 287,
            "keyctl" => 288,
            "io_uring_setup" => 425,
            "io_uring_enter" => 426,
            "io_uring_register" => 427,
            _ => return None,
        })
    }

    fn aarch64_nr(name: &str) -> Option<u32> {
        Some(match name {
            "read" => 63,
            "ioctl" => 29,
            "socket" => 198,
            "socketpair" => 199,
            "connect" => 203,
            "sendto" => 206,
            "sendmsg" => 211,
            "sendmmsg" => 269,
            "listen" => 201,
            "getpid" => 172,
            "fchmod" => 52,
            "fchmodat" => 53,
            "fchmodat2" => 452,
            "openat" => 56,
            "mknodat" => 33,
            "openat2" => 437,
            "mkdirat" => 34,
            "add_key" => 217,
            "request_key" => 218,
            "keyctl" => 219,
            "io_uring_setup" => 425,
            "io_uring_enter" => 426,
            "io_uring_register" => 427,
            _ => return None,
        })
    }

    const X86_64: Abi = Abi {
        name: "x86_64",
        audit: AUDIT_ARCH_X86_64,
        nr: x86_64_nr,
    };
    const I386: Abi = Abi {
        name: "i386",
        audit: AUDIT_ARCH_I386,
        nr: i386_nr,
    };
    const AARCH64: Abi = Abi {
        name: "aarch64",
        audit: AUDIT_ARCH_AARCH64,
        nr: aarch64_nr,
    };

    /// A program of one target with the ABIs it answers for.
    struct Program {
        name: String,
        prog: &'static [libc::sock_filter],
        abis: &'static [Abi],
        unshare_net: bool,
        unix_block: bool,
        setuid_files: bool,
        allow_unix: bool,
        unix_broker: bool,
        landlock_net: bool,
        landlock_relay: bool,
    }

    /// Every generated program, for both targets (the combinations
    /// build.rs leaves empty are checked to be exactly the invalid ones).
    fn programs() -> Vec<Program> {
        let mut all = Vec::new();
        for (target, table, abis) in [
            ("x86_64", X86_64_PROGRAMS, &[X86_64, I386][..]),
            ("aarch64", AARCH64_PROGRAMS, &[AARCH64][..]),
        ] {
            for (mask, prog) in table.iter().enumerate() {
                let filters = Filters {
                    unshare_net: mask & 1 != 0,
                    unix_block: mask & 2 != 0,
                    setuid_files: mask & 4 != 0,
                    allow_unix: mask & 8 != 0,
                    unix_broker: mask & 16 != 0,
                    landlock_net: mask & 32 != 0,
                    landlock_relay: mask & 64 != 0,
                };
                assert_eq!(filters.index(), mask);
                let valid = (!filters.unix_broker || filters.allow_unix)
                    && (!filters.landlock_relay || filters.landlock_net);
                assert_eq!(prog.is_empty(), !valid, "mask {mask}");
                if !valid {
                    continue;
                }
                all.push(Program {
                    name: format!(
                        "{target} net={} unix={} setuid-files={} allow-unix={} broker={} landlock-net={} relay={}",
                        filters.unshare_net,
                        filters.unix_block,
                        filters.setuid_files,
                        filters.allow_unix,
                        filters.unix_broker,
                        filters.landlock_net,
                        filters.landlock_relay
                    ),
                    prog,
                    abis,
                    unshare_net: filters.unshare_net,
                    unix_block: filters.unix_block,
                    setuid_files: filters.setuid_files,
                    allow_unix: filters.allow_unix,
                    unix_broker: filters.unix_broker,
                    landlock_net: filters.landlock_net,
                    landlock_relay: filters.landlock_relay,
                });
            }
        }
        all
    }

    #[test]
    fn program_index_follows_the_optional_filters_order() {
        assert_eq!(
            OPTIONAL_FILTERS,
            [
                "unshare-net",
                "unix-block",
                "setuid-files",
                "allow-unix",
                "unix-broker",
                "landlock-net",
                "landlock-relay"
            ]
        );
    }

    /// The verdict of `program` on syscall `name` of `abi` with `args`;
    /// None when the ABI has no such syscall.
    fn verdict(program: &Program, abi: &Abi, name: &str, args: &[u64]) -> Option<u32> {
        let nr = (abi.nr)(name)?;
        let mut full = [0u64; 6];
        full[..args.len()].copy_from_slice(args);
        Some(eval(program.prog, &data(nr, abi.audit, full)))
    }

    /// Asserts the verdict for every ABI of every program that has `name`,
    /// and that at least one had it (a typo must not pass silently).
    fn expect_in<'a>(
        programs: impl IntoIterator<Item = &'a Program>,
        name: &str,
        args: &[u64],
        want: u32,
    ) {
        let mut seen = 0;
        for program in programs {
            for abi in program.abis {
                if let Some(got) = verdict(program, abi, name, args) {
                    seen += 1;
                    assert_eq!(
                        got, want,
                        "{} on {}: {name}{args:x?} gave {got:#x}, want {want:#x}",
                        program.name, abi.name
                    );
                }
            }
        }
        assert!(seen > 0, "no ABI has {name}");
    }

    /// The base rules hold in every program.
    fn expect(name: &str, args: &[u64], want: u32) {
        expect_in(&programs(), name, args, want);
    }

    #[test]
    fn keyring_calls_are_eperm() {
        for name in ["keyctl", "add_key", "request_key"] {
            expect(name, &[], RET_EPERM);
            expect(name, &[0x11, 0x22, 0x33], RET_EPERM);
        }
    }

    #[test]
    fn terminal_injection_is_ebadf_other_ioctls_allowed() {
        for cmd in [TIOCSTI, TIOCLINUX] {
            expect("ioctl", &[1, cmd], RET_EBADF);
            // The kernel reads cmd as an unsigned int: bits above 32 must
            // not turn TIOCSTI into something allowed.
            expect("ioctl", &[1, (0xdead << 32) | cmd], RET_EBADF);
        }
        for cmd in [
            TCGETS, 0x5413, /* TIOCGWINSZ */
            0x540e, /* TIOCSCTTY */
        ] {
            expect("ioctl", &[1, cmd], RET_ALLOW);
        }
    }

    /// Checks one call's verdict: syscall name, arguments.
    type Expect<'a> = dyn Fn(&str, &[u64]) + 'a;

    /// The programs `refusing` picks answer `want` to every call `calls`
    /// makes; the others allow them all.
    fn refused_only_in(refusing: fn(&Program) -> bool, want: u32, calls: fn(&Expect)) {
        let all = programs();
        let (on, off): (Vec<&Program>, Vec<&Program>) = all.iter().partition(|p| refusing(p));
        calls(&|name, args| expect_in(on.iter().copied(), name, args, want));
        calls(&|name, args| expect_in(off.iter().copied(), name, args, RET_ALLOW));
    }

    #[test]
    fn io_uring_is_eperm_with_setuid_files_or_a_unix_policy() {
        // It opens files with any mode (setuid-files) and creates sockets
        // of any family (unix-block's AF_UNIX). Under unshare-net alone it
        // stays allowed, as bubblewrap allows it (SPEC §5): in bwrap mode
        // without --refuse-setuid-files it could make a vsock socket.
        refused_only_in(
            |p| p.setuid_files || p.unix_block || p.allow_unix || p.landlock_net,
            RET_EPERM,
            |expect| {
                for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
                    expect(name, &[]);
                }
            },
        );
    }

    #[test]
    fn setuid_and_setgid_modes_are_eperm_with_setuid_files_only() {
        refused_only_in(|p| p.setuid_files, RET_EPERM, setuid_modes);
    }

    fn setuid_modes(expect: &Expect<'_>) {
        for mode in [0o4755, 0o2755, 0o6755, 0o4000, 0o2000, 0o7777] {
            expect("chmod", &[0, mode]);
            expect("fchmod", &[3, mode]);
            expect("fchmodat", &[3, 0, mode]);
            expect("fchmodat2", &[3, 0, mode, 0]);
            expect("creat", &[0, mode]);
            expect("mknod", &[0, S_IFREG | mode, 0]);
            expect("mknodat", &[3, 0, S_IFREG | mode, 0]);
            for flags in [
                O_CREAT | 1,
                O_TMPFILE | 2,
                O_CREAT | 0o200, /* O_EXCL */
            ] {
                expect("open", &[0, flags, mode]);
                expect("openat", &[3, 0, flags, mode]);
            }
            // Bits above the 32 the kernel reads change nothing.
            expect("fchmod", &[3, (1 << 40) | mode]);
        }
    }

    #[test]
    fn ordinary_modes_stay_allowed() {
        for mode in [0o755, 0o644, 0o1777, 0o777, 0] {
            expect("chmod", &[0, mode], RET_ALLOW);
            expect("fchmod", &[3, mode], RET_ALLOW);
            expect("fchmodat", &[3, 0, mode], RET_ALLOW);
            expect("fchmodat2", &[3, 0, mode, 0], RET_ALLOW);
            expect("creat", &[0, mode], RET_ALLOW);
            expect("mknodat", &[3, 0, S_IFREG | mode, 0], RET_ALLOW);
            expect("open", &[0, O_CREAT | 1, mode], RET_ALLOW);
            expect("openat", &[3, 0, O_TMPFILE | 2, mode], RET_ALLOW);
        }
        // Without O_CREAT or O_TMPFILE the kernel ignores the mode, which
        // callers leave as garbage: opening is never refused for it.
        for flags in [
            0, 2, 0o2000,   /* O_APPEND */
            0o200000, /* O_DIRECTORY */
        ] {
            expect("open", &[0, flags, 0o6777], RET_ALLOW);
            expect("openat", &[3, 0, flags, 0o6777], RET_ALLOW);
        }
        // mkdir drops S_ISUID/S_ISGID itself (a setgid directory comes from
        // its parent, and is harmless): not filtered.
        expect("mkdir", &[0, 0o6755], RET_ALLOW);
        expect("mkdirat", &[3, 0, 0o6755], RET_ALLOW);
    }

    #[test]
    fn openat2_is_enosys_with_setuid_files_only() {
        refused_only_in(
            |p| p.setuid_files,
            RET_ENOSYS,
            |expect| {
                expect("openat2", &[3, 0, 0, 24]);
            },
        );
    }

    #[test]
    fn ordinary_calls_are_allowed() {
        for name in ["read", "getpid"] {
            expect(name, &[0, TIOCSTI, 0o6755], RET_ALLOW);
        }
        // On a network namespace of its own, the workload's sockets are
        // its business (landlock-net is for the host's network).
        let own_network: Vec<Program> =
            programs().into_iter().filter(|p| !p.landlock_net).collect();
        for family in [AF_INET, AF_INET6, AF_NETLINK] {
            expect_in(&own_network, "socket", &[family, 1, 0], RET_ALLOW);
            expect_in(&own_network, "socket", &[family, SOCK_DGRAM, 0], RET_ALLOW);
        }
        let without_broker: Vec<Program> = programs()
            .into_iter()
            .filter(|p| !p.unix_broker && !p.landlock_net)
            .collect();
        expect_in(
            &without_broker,
            "socketcall",
            &[3 /* SYS_CONNECT */, 0],
            RET_ALLOW,
        );
        expect_in(&without_broker, "connect", &[3, 0, 16], RET_ALLOW);
        expect_in(&without_broker, "listen", &[3, 16], RET_ALLOW);
    }

    #[test]
    fn connect_and_listen_go_to_the_broker_with_unix_broker_only() {
        // Every connect and listen, whatever the descriptor: a filter
        // cannot tell a socket's family from its number.
        // (landlock-net refuses listen outright: see below.)
        let all = programs();
        let (brokered, others): (Vec<&Program>, Vec<&Program>) =
            all.iter().partition(|p| p.unix_broker);
        let others: Vec<&Program> = others.into_iter().filter(|p| !p.landlock_net).collect();
        for fd in [0, 3, 1 << 40] {
            for (set, want) in [(&brokered, RET_USER_NOTIF), (&others, RET_ALLOW)] {
                expect_in(set.iter().copied(), "connect", &[fd, 0x1000, 110], want);
                expect_in(set.iter().copied(), "listen", &[fd, 128], want);
            }
        }
        // Landlock mode's relays: connect only (listen stays refused).
        let relayed: Vec<&Program> = all
            .iter()
            .filter(|p| p.landlock_relay && !p.allow_unix)
            .collect();
        expect_in(
            relayed.iter().copied(),
            "connect",
            &[3, 0x1000, 16],
            RET_USER_NOTIF,
        );
        expect_in(relayed.iter().copied(), "listen", &[3, 16], RET_EPERM);
    }

    /// Landlock mode on the host's network: only unix, IPv4 and IPv6
    /// sockets, only TCP among the latter, no listen, no TCP Fast Open
    /// (a connect inside sendto and sendmsg), no io_uring, no socketcall.
    #[test]
    fn landlock_net_leaves_only_what_landlocks_tcp_rules_see() {
        const IPPROTO_TCP: u64 = 6;
        const IPPROTO_SCTP: u64 = 132;
        const IPPROTO_MPTCP: u64 = 262;
        const MSG_FASTOPEN: u64 = 0x2000_0000;
        let all = programs();
        // (allow-unix never comes with unix-block, which landlock-net needs.)
        let on: Vec<&Program> = all
            .iter()
            .filter(|p| p.landlock_net && !p.allow_unix && !p.landlock_relay)
            .collect();
        let socket = |args: &[u64], want| expect_in(on.iter().copied(), "socket", args, want);
        for family in [AF_INET, AF_INET6] {
            for flags in [0, SOCK_FLAGS] {
                socket(&[family, SOCK_STREAM | flags, 0], RET_ALLOW);
                socket(&[family, SOCK_STREAM | flags, IPPROTO_TCP], RET_ALLOW);
                socket(&[family, SOCK_STREAM | flags, IPPROTO_SCTP], RET_EPERM);
                socket(&[family, SOCK_STREAM | flags, IPPROTO_MPTCP], RET_EPERM);
                for kind in [SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET] {
                    socket(&[family, kind | flags, 0], RET_EPERM);
                }
            }
        }
        for family in [AF_NETLINK, AF_VSOCK, 17 /* AF_PACKET */, 0, 1 << 20] {
            socket(&[family, SOCK_STREAM, 0], RET_EPERM);
        }
        let expect =
            |name: &str, args: &[u64], want| expect_in(on.iter().copied(), name, args, want);
        expect("listen", &[3, 128], RET_EPERM);
        expect("sendto", &[3, 0, 1, MSG_FASTOPEN, 0x1000, 16], RET_EPERM);
        expect("sendto", &[3, 0, 1, 0, 0, 0], RET_ALLOW);
        expect("sendmsg", &[3, 0x1000, MSG_FASTOPEN], RET_EPERM);
        expect("sendmsg", &[3, 0x1000, 0x40 /* MSG_DONTWAIT */], RET_ALLOW);
        expect("sendmmsg", &[3, 0x1000, 1, MSG_FASTOPEN], RET_EPERM);
        expect("connect", &[3, 0x1000, 16], RET_ALLOW);
        expect("io_uring_setup", &[1, 0], RET_EPERM);
        for program in on.iter().filter(|p| p.abis.len() > 1) {
            for call in [
                1,  /* SYS_SOCKET */
                9,  /* SYS_SEND */
                11, /* SYS_SENDTO */
            ] {
                let got = verdict(program, &I386, "socketcall", &[call, 0]);
                assert_eq!(got, Some(RET_EPERM), "{} call {call}", program.name);
            }
        }
    }

    #[test]
    fn allow_unix_refuses_unix_datagrams_only() {
        let all = programs();
        let brokered: Vec<&Program> = all
            .iter()
            .filter(|p| p.allow_unix && !p.unix_block && !p.landlock_net)
            .collect();
        for call in ["socket", "socketpair"] {
            for flags in [0, SOCK_FLAGS, 1 << 40] {
                for kind in [SOCK_DGRAM, SOCK_RAW] {
                    expect_in(
                        brokered.iter().copied(),
                        call,
                        &[AF_UNIX, kind | flags, 0],
                        RET_EPERM,
                    );
                }
                for kind in [SOCK_STREAM, SOCK_SEQPACKET] {
                    expect_in(
                        brokered.iter().copied(),
                        call,
                        &[AF_UNIX, kind | flags, 0],
                        RET_ALLOW,
                    );
                }
                // Other families keep their datagrams.
                expect_in(
                    brokered.iter().copied(),
                    call,
                    &[AF_INET, SOCK_DGRAM | flags, 0],
                    RET_ALLOW,
                );
            }
        }
    }

    #[test]
    fn allow_unix_refuses_i386_socketcalls_it_cannot_read() {
        for program in programs()
            .iter()
            .filter(|p| p.abis.len() > 1 && p.allow_unix && !p.landlock_net)
        {
            // SYS_SOCKET and SYS_SOCKETPAIR always; SYS_CONNECT and
            // SYS_LISTEN where the broker must see every connect (Landlock
            // enforces the grants on any entry point).
            for (call, refused) in [
                (1 /* SYS_SOCKET */, true),
                (3 /* SYS_CONNECT */, program.unix_broker),
                (4 /* SYS_LISTEN */, program.unix_broker),
                (8 /* SYS_SOCKETPAIR */, true),
            ] {
                let want = if refused { RET_EPERM } else { RET_ALLOW };
                let got = verdict(program, &I386, "socketcall", &[call, 0]);
                assert_eq!(got, Some(want), "{} call {call}", program.name);
            }
            // Sending on a connected socket needs no broker.
            let got = verdict(program, &I386, "socketcall", &[9 /* SYS_SEND */, 0]);
            assert_eq!(got, Some(RET_ALLOW), "{}", program.name);
        }
    }

    /// `socket(family)` is EPERM in the programs `refused_in` picks, and
    /// allowed in the others.
    fn family_refused_only_in(family: u64, refused_in: fn(&Program) -> bool) {
        let all = programs();
        let (refusing, allowing): (Vec<&Program>, Vec<&Program>) =
            all.iter().partition(|p| refused_in(p));
        expect_in(
            refusing.iter().copied(),
            "socket",
            &[family, 1, 0],
            RET_EPERM,
        );
        // Only the low 32 bits are the int `domain`.
        let high = (1 << 32) | family;
        expect_in(refusing.iter().copied(), "socket", &[high, 1, 0], RET_EPERM);
        expect_in(
            allowing.iter().copied(),
            "socket",
            &[family, 1, 0],
            RET_ALLOW,
        );
    }

    #[test]
    fn vsock_is_eperm_with_unshare_net_only() {
        family_refused_only_in(AF_VSOCK, |p| p.unshare_net || p.landlock_net);
    }

    #[test]
    fn unix_sockets_are_eperm_with_unix_block_only() {
        family_refused_only_in(AF_UNIX, |p| p.unix_block);
    }

    #[test]
    fn i386_socketcall_socket_is_eperm_with_either_option() {
        // socketcall(SYS_SOCKET, args) hides the family behind a pointer:
        // refused whenever some family must be.
        for program in programs().iter().filter(|p| p.abis.len() > 1) {
            let want = if program.unshare_net
                || program.unix_block
                || program.allow_unix
                || program.landlock_net
            {
                RET_EPERM
            } else {
                RET_ALLOW
            };
            let got = verdict(program, &I386, "socketcall", &[1, 0]);
            assert_eq!(got, Some(want), "{}", program.name);
        }
    }

    #[test]
    fn other_abis_are_killed() {
        for program in &programs() {
            let native = &program.abis[0];
            let others: &[u32] = if native.audit == AUDIT_ARCH_X86_64 {
                &[AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, 0]
            } else {
                &[AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, 0]
            };
            for &arch in others {
                for nr in [0, 3, 20, 39, 102, 359, 172] {
                    let got = eval(program.prog, &data(nr, arch, [0; 6]));
                    assert_eq!(
                        got, RET_KILL_PROCESS,
                        "{} arch {arch:#x} nr {nr}",
                        program.name
                    );
                }
            }
        }
    }

    #[test]
    fn x32_numbers_are_killed() {
        const X32: u32 = 0x4000_0000;
        for program in programs()
            .iter()
            .filter(|p| p.abis[0].audit == AUDIT_ARCH_X86_64)
        {
            for nr in [0, 16, 41, 250, 425, 39, 512, 514] {
                let got = eval(program.prog, &data(X32 | nr, AUDIT_ARCH_X86_64, [1; 6]));
                assert_eq!(got, RET_KILL_PROCESS, "{} x32 nr {nr}", program.name);
            }
        }
    }
}
