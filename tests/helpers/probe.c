/*
 * Test probe for srt-launcher's integration tests: makes the system calls a
 * shell cannot, from inside a sandbox, and prints one "name=result" line
 * per check (result "ok", or the errno number). Built by the tests with the
 * host C compiler; never shipped.
 *
 *   probe socket-unix | socket-inet | io-uring | x32-socket | int80-socket
 *   probe socket-vsock | int80-socket-vsock | int80-socketcall-vsock
 *   probe keys-steal        with $SRTL_KEY the serial of the caller's key:
 *                           read, search, revoke, plant, persistent keyring
 *   probe with-key -- CMD... run CMD in a fresh session keyring holding one
 *                           user key (serial in $SRTL_KEY); then report
 *                           whether the key is intact and nothing was planted
 *   probe ipc-peek          look for the SysV segment and POSIX queue named
 *                           by $SRTL_SHM_KEY, $SRTL_SHM_ID and $SRTL_MQ
 *   probe with-ipc -- CMD... run CMD while such a segment and queue exist
 *   probe tty-inject        on the terminal at fd 3: claim it, TIOCSTI a
 *                           line into it, turn echo off, make it exclusive
 *   probe setuid-plant DIR  try every way to leave a setuid/setgid file in DIR
 *   probe ptrace PID | mem-write PID | vm-write PID
 *   probe loopback
 *   probe net-escape PORT   every way out to the host's network: TCP to
 *                           127.0.0.1:PORT and [::1]:PORT (connect, and
 *                           TCP Fast Open through sendto and sendmsg), a TCP
 *                           bind and a listen, UDP, raw, netlink, packet,
 *                           SCTP and MPTCP sockets
 *   probe swap A B          exchange the names A and B (renameat2
 *                           RENAME_EXCHANGE) until killed; prints "swapping"
 *                           after the first exchange
 *   probe int80-connect PATH  i386 socket and connect to PATH, directly and
 *                           through socketcall (x86_64 only)
 *   probe unix-crowd ALLOWED FORBIDDEN THREADS N
 *                           THREADS x N connects (one in five forbidden)
 *                           under a 0.5 ms SIGALRM without SA_RESTART
 *   probe unix-race-address ALLOWED FORBIDDEN N
 *                           N connects while a thread rewrites the address
 *                           between the two paths; prints "connected=C"
 *   probe unix-race-fd FORBIDDEN N
 *                           N connects of descriptor 100 to FORBIDDEN while
 *                           a thread dup2()s a unix and a TCP socket over it
 *   probe unix-race-family FORBIDDEN N
 *                           N connects of a unix socket while a thread
 *                           flips the address between 127.0.0.1:9 (IPv4)
 *                           and FORBIDDEN
 *   probe unix-race-cwd DIR_A DIR_B NAME N
 *                           N connects to the relative NAME while a thread
 *                           changes the working directory between the two
 *   probe nosys -- CMD...   run CMD with the newer mount/open/close_range
 *                           syscalls failing with ENOSYS, as on Linux 4.18
 *   probe nogetfd -- CMD... run CMD with pidfd_getfd and process_vm_readv
 *                           failing with EPERM, as in a container without
 *                           CAP_SYS_PTRACE, and without Landlock
 *   probe noaddfd -- CMD... as nogetfd, and SECCOMP_IOCTL_NOTIF_ADDFD
 *                           failing with EINVAL, as before Linux 5.14
 *   probe nolandlock -- CMD... run CMD without Landlock (ENOSYS)
 *   probe landlock-off -- CMD... run CMD with Landlock disabled at boot
 *                           (landlock_create_ruleset fails EOPNOTSUPP)
 *   probe landlock-ceiling N -- CMD... run CMD on a Landlock that reports
 *                           ABI N (a supervisor answers the version query)
 *   probe container -- CMD... run CMD under what Docker's default seccomp
 *                           profile refuses a container without
 *                           CAP_SYS_ADMIN and CAP_SYS_PTRACE
 *   probe old-container -- CMD... the same on a kernel without
 *                           SECCOMP_ADDFD_FLAG_SETFD (before 5.14)
 *   probe landlock-abi      print the kernel's Landlock ABI (-1: none)
 *   probe nounshare -- CMD... run CMD with unshare(2) failing with EPERM,
 *                           as where user namespaces are refused
 *   probe nomount -- CMD... run CMD with mount(2) failing with EACCES
 *   probe nouserns -- CMD... run CMD in a user namespace (caller's ids
 *                           mapped) where user.max_user_namespaces is 0
 *   probe hold-mount -- CMD... run CMD with its first mount(2) held until
 *                           stdin ends: prints "pid=N" (CMD's pid), then
 *                           "held" once a process of CMD is inside that
 *                           mount call; exits with CMD's status (128+N for
 *                           signal N). A test can act at exactly that point.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <termios.h>
#include <sys/wait.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <pthread.h>
#include <unistd.h>

static int report(const char *name, long ret) {
    if (ret < 0)
        printf("%s=%d\n", name, errno);
    else
        printf("%s=ok\n", name);
    fflush(stdout);
    return 0;
}

#if defined(__x86_64__)
/* A call through the i386 entry point (`int 0x80`), with i386 numbers.
 * Pointers must be below 4 GiB: see low_page(). */
static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return ret;
}

/* A page an i386 call can point into. */
static char *low_page(void) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) {
        perror("probe: mmap MAP_32BIT");
        exit(2);
    }
    return p;
}
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

static int loopback(void) {
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct { const char *name; int family; struct sockaddr *addr; socklen_t len; } cases[] = {
        {"loopback4", AF_INET, (struct sockaddr *)&a4, sizeof a4},
        {"loopback6", AF_INET6, (struct sockaddr *)&a6, sizeof a6},
    };
    for (int i = 0; i < 2; i++) {
        int l = socket(cases[i].family, SOCK_STREAM, 0);
        socklen_t len = cases[i].len;
        long ret = l < 0 ? -1 : bind(l, cases[i].addr, len);
        if (ret == 0) ret = listen(l, 1);
        if (ret == 0) ret = getsockname(l, cases[i].addr, &len);
        if (ret == 0) {
            int c = socket(cases[i].family, SOCK_STREAM, 0);
            ret = connect(c, cases[i].addr, len);
        }
        report(cases[i].name, ret);
    }
    return 0;
}

static int net_escape(int port) {
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in any4 = {.sin_family = AF_INET};
    int s;
    s = socket(AF_INET, SOCK_STREAM, 0);
    report("tcp4-connect", s < 0 ? -1 : connect(s, (struct sockaddr *)&a4, sizeof a4));
    s = socket(AF_INET6, SOCK_STREAM, 0);
    report("tcp6-connect", s < 0 ? -1 : connect(s, (struct sockaddr *)&a6, sizeof a6));
    s = socket(AF_INET, SOCK_STREAM, 0);
    report("tcp4-fastopen-sendto",
           s < 0 ? -1 : sendto(s, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&a4, sizeof a4));
    s = socket(AF_INET, SOCK_STREAM, 0);
    struct iovec iov = {"x", 1};
    struct msghdr msg = {.msg_name = &a4, .msg_namelen = sizeof a4, .msg_iov = &iov, .msg_iovlen = 1};
    report("tcp4-fastopen-sendmsg", s < 0 ? -1 : sendmsg(s, &msg, MSG_FASTOPEN));
    s = socket(AF_INET, SOCK_STREAM, 0);
    report("tcp4-bind", s < 0 ? -1 : bind(s, (struct sockaddr *)&any4, sizeof any4));
    s = socket(AF_INET, SOCK_STREAM, 0);
    report("tcp4-listen", s < 0 ? -1 : listen(s, 1));
    s = socket(AF_INET, SOCK_DGRAM, 0);
    report("udp4-sendto", s < 0 ? -1 : sendto(s, "x", 1, 0, (struct sockaddr *)&a4, sizeof a4));
    report("udp6-socket", socket(AF_INET6, SOCK_DGRAM, 0));
    report("raw4-socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    report("netlink-socket", socket(AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */));
    report("packet-socket", socket(AF_PACKET, SOCK_DGRAM, 0));
    report("sctp-socket", socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
    report("mptcp-socket", socket(AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */));
    return 0;
}

/* Installs a filter making each syscall in calls[] fail with errno. */
static int install_refusals(const int *calls, int ncalls, int err) {
    struct sock_filter f[64];
    int n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < ncalls; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, calls[i], 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err);
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = n, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("probe: seccomp");
        return 1;
    }
    return 0;
}

/* Runs argv with each syscall in calls[] failing with errno. */
static int refuse_and_exec(const int *calls, int ncalls, int err, char **argv) {
    if (install_refusals(calls, ncalls, err)) return 125;
    execvp(argv[0], argv);
    perror("probe nosys: exec");
    return 127;
}

static int nosys(char **argv) {
    static const int calls[] = {428 /* open_tree */, 429 /* move_mount */,
                                436 /* close_range */, 437 /* openat2 */,
                                442 /* mount_setattr */};
    return refuse_and_exec(calls, 5, ENOSYS, argv);
}

/* As Docker's default profile without CAP_SYS_PTRACE: no taking another
 * process's descriptors or reading its memory by syscall (and, as before
 * Linux 7.1, no Landlock that could enforce --allow-unix instead). */
static int nogetfd(char **argv) {
    static const int refused[] = {SYS_pidfd_getfd, SYS_process_vm_readv};
    static const int absent[] = {444 /* landlock_create_ruleset */};
    if (install_refusals(absent, 1, ENOSYS)) return 125;
    return refuse_and_exec(refused, 2, EPERM, argv);
}

/* An ADDFD request fails with EINVAL, as before SETFD (5.14). */
static int refuse_addfd(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x40182103 /* SECCOMP_IOCTL_NOTIF_ADDFD */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("probe: seccomp");
        return 1;
    }
    return 0;
}

/* As nogetfd, on a kernel without SECCOMP_ADDFD_FLAG_SETFD (before 5.14):
 * the broker has no way left. */
static int noaddfd(char **argv) {
    if (refuse_addfd()) return 125;
    return nogetfd(argv);
}

/* As before Linux 7.1 (or without Landlock): --allow-unix needs its
 * broker. */
static int nolandlock(char **argv) {
    static const int calls[] = {444 /* landlock_create_ruleset */};
    return refuse_and_exec(calls, 1, ENOSYS, argv);
}

static int landlock_off(char **argv) {
    static const int calls[] = {444 /* landlock_create_ruleset */};
    return refuse_and_exec(calls, 1, EOPNOTSUPP, argv);
}

static int send_fd(int sock, int fd);
static int recv_fd(int sock);

/* The version query (landlock_create_ruleset(NULL, 0, VERSION)) goes to a
 * supervisor, this process, which answers N; every other call runs as
 * usual. CMD runs in a child, which installs the filter (so that the
 * supervisor is not under it, and the listener hangs up once CMD's tree
 * is gone); this process exits with CMD's status. */
static int landlock_ceiling(long abi, char **argv) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 444, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1 /* LANDLOCK_CREATE_RULESET_VERSION */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) return 125;
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        int fd = -1;
        if (!prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        if (fd < 0 || send_fd(pair[1], fd)) {
            perror("probe landlock-ceiling: seccomp");
            _exit(125);
        }
        close(fd);
        close(pair[1]);
        execvp(argv[0], argv);
        perror("probe landlock-ceiling: exec");
        _exit(127);
    }
    close(pair[1]);
    int listener = recv_fd(pair[0]);
    close(pair[0]);
    for (;;) {
        if (listener < 0) break;
        struct pollfd p = {.fd = listener, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) break;
        if (p.revents & (POLLHUP | POLLERR)) break;
        struct seccomp_notif req = {0};
        struct seccomp_notif_resp resp = {0};
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req)) continue;
        resp.id = req.id;
        resp.val = abi;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    int status;
    if (waitpid(child, &status, 0) < 0) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* As Docker's default seccomp profile for a container without
 * CAP_SYS_ADMIN and CAP_SYS_PTRACE: no namespaces (clone with a namespace
 * flag, unshare, setns), no mounts (old and new API), no clone3 (ENOSYS,
 * so that the C library falls back to clone), and no reaching into
 * another process (pidfd_getfd, process_vm_*, kcmp). */
static int container(char **argv) {
    static const int refused[] = {
        SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root,
        428 /* open_tree */, 429 /* move_mount */, 430 /* fsopen */,
        431 /* fsconfig */, 432 /* fsmount */, 433 /* fspick */,
        442 /* mount_setattr */, SYS_pidfd_getfd, SYS_process_vm_readv,
        SYS_process_vm_writev, SYS_kcmp};
    static const int absent[] = {435 /* clone3 */};
    const unsigned namespaces = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, namespaces, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("probe container: seccomp");
        return 125;
    }
    if (install_refusals(absent, 1, ENOSYS)) return 125;
    return refuse_and_exec(refused, sizeof refused / sizeof refused[0], EPERM, argv);
}

static int nounshare(char **argv) {
    static const int calls[] = {SYS_unshare};
    return refuse_and_exec(calls, 1, EPERM, argv);
}

/* mount(2) fails with EACCES, as when a security module denies the
 * capabilities inside a new user namespace (Ubuntu 24.04's AppArmor). */
static int nomount(char **argv) {
    static const int calls[] = {SYS_mount};
    return refuse_and_exec(calls, 1, EACCES, argv);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Runs CMD, as the caller's uid and gid, inside a new user namespace whose
 * user.max_user_namespaces is 0: what bwrap --disable-userns leaves. */
static int nouserns(char **argv) {
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER)) {
        perror("probe nouserns: unshare");
        return 125;
    }
    snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
    int failed = write_file("/proc/self/uid_map", map);
    failed |= write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
    failed |= write_file("/proc/self/gid_map", map);
    failed |= write_file("/proc/sys/user/max_user_namespaces", "0\n");
    if (failed) {
        perror("probe nouserns: set up the namespace");
        return 125;
    }
    execvp(argv[0], argv);
    perror("probe nouserns: exec");
    return 127;
}

/* Sends or receives one descriptor over a unix socket. */
static int send_fd(int sock, int fd) {
    char space[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 0;
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = space, .msg_controllen = sizeof space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
    char space[CMSG_SPACE(sizeof(int))] = {0};
    char byte;
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = space, .msg_controllen = sizeof space};
    if (recvmsg(sock, &msg, 0) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    int fd = -1;
    if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* Lets every held call go on, until CMD has exited; returns its status. */
static int release_until_exit(int listener, pid_t pid) {
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct pollfd p = {listener, POLLIN, 0};
        if (poll(&p, 1, 50) > 0 && (p.revents & POLLIN)) {
            struct seccomp_notif req = {0};
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
                struct seccomp_notif_resp resp = {
                    .id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
                ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
            }
        }
    }
}

static int hold_mount(char **argv) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return 125;
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mount, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = 4, .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(125);
        int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                               SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        if (listener < 0 || send_fd(sv[1], listener)) {
            perror("probe hold-mount: seccomp listener");
            _exit(125);
        }
        close(listener);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(sv[1]);
    int listener = recv_fd(sv[0]);
    if (listener < 0) return release_until_exit(-1, pid);
    printf("pid=%d\n", pid);
    fflush(stdout);
    struct seccomp_notif req = {0};
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
        printf("held\n");
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0) {}
        struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT if it was killed */
    }
    return release_until_exit(listener, pid);
}

/* Runs argv to completion; its exit code, or 128+N for signal N. */
static int run_and_wait(char **argv) {
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static long env_long(const char *name) {
    const char *v = getenv(name);
    if (!v) {
        fprintf(stderr, "probe: $%s is not set\n", name);
        exit(2);
    }
    return strtol(v, NULL, 0);
}

static long keyctl5(long op, long a, long b, long c, long d) {
    return syscall(SYS_keyctl, op, a, b, c, d);
}

/* The workload's attempts on the caller's session keyring. */
static int keys_steal(void) {
    long serial = env_long("SRTL_KEY");
    char buf[64];
    report("read", keyctl5(KEYCTL_READ, serial, (long)buf, sizeof buf, 0));
    report("search", keyctl5(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"srtl-secret", 0));
    report("describe", keyctl5(KEYCTL_DESCRIBE, serial, (long)buf, sizeof buf, 0));
    report("plant", syscall(SYS_add_key, "user", "srtl-planted", "x", 1, KEY_SPEC_SESSION_KEYRING));
    report("request", syscall(SYS_request_key, "user", "srtl-secret", NULL, 0));
    report("persistent", keyctl5(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING, 0, 0));
    report("revoke", keyctl5(KEYCTL_REVOKE, serial, 0, 0, 0));
#if defined(__x86_64__)
    char *low = low_page();
    report("int80-read", int80(288 /* keyctl */, KEYCTL_READ, serial, (long)low));
    report("int80-revoke", int80(288, KEYCTL_REVOKE, serial, 0));
#endif
    return 0;
}

static int with_key(char **argv) {
    if (keyctl5(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0) < 0) {
        perror("probe with-key: join a session keyring");
        return 125;
    }
    long serial = syscall(SYS_add_key, "user", "srtl-secret", "hunter2", 7, KEY_SPEC_SESSION_KEYRING);
    if (serial < 0) {
        perror("probe with-key: add_key");
        return 125;
    }
    char num[32];
    snprintf(num, sizeof num, "%ld", serial);
    setenv("SRTL_KEY", num, 1);
    int code = run_and_wait(argv);
    char payload[16] = {0};
    long n = keyctl5(KEYCTL_READ, serial, (long)payload, sizeof payload - 1, 0);
    printf("key-intact=%s\n", n == 7 && !memcmp(payload, "hunter2", 7) ? "yes" : "no");
    long planted = keyctl5(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"srtl-planted", 0);
    printf("planted=%s\n", planted >= 0 ? "yes" : "no");
    fflush(stdout);
    return code;
}

/* The workload's view of with-ipc's objects. */
static int ipc_peek(void) {
    long key = env_long("SRTL_SHM_KEY"), id = env_long("SRTL_SHM_ID");
    const char *mq = getenv("SRTL_MQ");
    report("shmget", shmget((key_t)key, 0, 0));
    void *at = shmat((int)id, NULL, SHM_RDONLY);
    report("shmat", at == (void *)-1 ? -1 : 0);
    struct shmid_ds ds;
    report("shmctl", shmctl((int)id, IPC_STAT, &ds));
    report("mq_open", mq ? mq_open(mq, O_RDONLY | O_NONBLOCK) : -1);
    return 0;
}

/* A SysV segment (key from our pid) and a POSIX queue, for argv's run. */
static int with_ipc(char **argv) {
    key_t key = 0x53520000 | (getpid() & 0xffff);
    int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0666);
    if (id < 0) {
        perror("probe with-ipc: shmget");
        return 125;
    }
    char name[64], num[32];
    snprintf(name, sizeof name, "/srtl-test-%d", getpid());
    struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = 16};
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0666, &attr);
    if (q < 0) {
        perror("probe with-ipc: mq_open");
        shmctl(id, IPC_RMID, NULL);
        return 125;
    }
    mq_send(q, "secret", 6, 0);
    snprintf(num, sizeof num, "%d", key);
    setenv("SRTL_SHM_KEY", num, 1);
    snprintf(num, sizeof num, "%d", id);
    setenv("SRTL_SHM_ID", num, 1);
    setenv("SRTL_MQ", name, 1);
    printf("host-shmget=%s\n", shmget(key, 0, 0) == id ? "ok" : "missing");
    fflush(stdout);
    int code = run_and_wait(argv);
    shmctl(id, IPC_RMID, NULL);
    mq_close(q);
    mq_unlink(name);
    return code;
}

/* Input injection into the terminal at fd 3, and state left behind. */
static int tty_inject(void) {
    report("tiocsctty", ioctl(3, TIOCSCTTY, 0));
    const char *line = "echo INJECTED\n";
    long ret = 0;
    for (const char *c = line; *c && ret >= 0; c++) ret = ioctl(3, TIOCSTI, c);
    report("tiocsti", ret);
#if defined(__x86_64__)
    char *low = low_page();
    low[0] = 'x';
    report("int80-tiocsti", int80(54 /* ioctl */, 3, TIOCSTI, (long)low));
#endif
    struct termios t;
    tcgetattr(3, &t);
    t.c_lflag &= ~(ECHO | ICANON);
    report("tcsetattr", tcsetattr(3, TCSANOW, &t));
    report("tiocexcl", ioctl(3, TIOCEXCL));
    return 0;
}

/* Every way to leave a setuid or setgid file in dir (the cwd after chdir). */
static int setuid_plant(const char *dir) {
    if (chdir(dir)) {
        perror("probe setuid-plant: chdir");
        return 2;
    }
    int fd = open("plain", O_CREAT | O_WRONLY, 0755);
    if (fd < 0) {
        perror("probe setuid-plant: create");
        return 2;
    }
    report("chmod-4755", syscall(SYS_chmod, "plain", 04755));
    report("chmod-2755", syscall(SYS_chmod, "plain", 02755));
    report("fchmod", syscall(SYS_fchmod, fd, 06755));
    report("fchmodat", syscall(SYS_fchmodat, AT_FDCWD, "plain", 04755, 0));
    report("fchmodat2", syscall(452 /* fchmodat2 */, AT_FDCWD, "plain", 04755, 0));
    report("open", syscall(SYS_open, "by-open", O_CREAT | O_WRONLY, 04755));
    report("openat", syscall(SYS_openat, AT_FDCWD, "by-openat", O_CREAT | O_WRONLY, 02755));
    report("creat", syscall(SYS_creat, "by-creat", 04755));
    report("mknod", syscall(SYS_mknod, "by-mknod", S_IFREG | 04755, 0));
    report("mknodat", syscall(SYS_mknodat, AT_FDCWD, "by-mknodat", S_IFREG | 06755, 0));
    long tmp = syscall(SYS_openat, AT_FDCWD, ".", O_TMPFILE | O_WRONLY, 04755);
    report("tmpfile", tmp);
    if (tmp >= 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%ld", tmp);
        linkat(AT_FDCWD, path, AT_FDCWD, "by-tmpfile", AT_SYMLINK_FOLLOW);
    }
    struct open_how how = {.flags = O_CREAT | O_WRONLY, .mode = 04755};
    report("openat2", syscall(SYS_openat2, AT_FDCWD, "by-openat2", &how, sizeof how));
#if defined(__x86_64__)
    char *low = low_page();
    strcpy(low, "plain");
    report("int80-chmod", int80(15 /* chmod */, (long)low, 04755, 0));
    strcpy(low, "by-int80-open");
    report("int80-open", int80(5 /* open */, (long)low, O_CREAT | O_WRONLY, 04755));
#endif
    /* A setgid directory is harmless: mkdir keeps working (the kernel
     * itself drops S_ISGID from mkdir's mode). */
    report("mkdir", mkdir("dir", 02755));
    return 0;
}

/* Exchanges two names for ever: the race a stub's remover must survive. */
static int swap_forever(const char *a, const char *b)
{
    int said = 0;
    for (;;) {
        if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0 && !said) {
            printf("swapping\n");
            fflush(stdout);
            said = 1;
        }
    }
    return 0;
}

/* i386 connects for --allow-unix (x86_64 only): the direct call (the
 * broker reads its 32-bit arguments), then socketcall(SYS_CONNECT), whose
 * arguments a filter cannot see. Prints int80-connect=... and
 * int80-socketcall-connect=... */
static int int80_connect(const char *path) {
#if defined(__x86_64__)
    char *low = low_page();
    struct sockaddr_un *addr = (struct sockaddr_un *)low;
    addr->sun_family = AF_UNIX;
    strncpy(addr->sun_path, path, sizeof addr->sun_path - 1);
    long s = int80(359 /* socket */, AF_UNIX, SOCK_STREAM, 0);
    report("int80-socket", s);
    report("int80-connect", int80(362 /* connect */, s, (long)addr, sizeof *addr));
    long t = int80(359, AF_UNIX, SOCK_STREAM, 0);
    unsigned int *args = (unsigned int *)(low + 512);
    args[0] = (unsigned int)t;
    args[1] = (unsigned int)(unsigned long)addr;
    args[2] = sizeof *addr;
    report("int80-socketcall-connect", int80(102 /* socketcall */, 3 /* SYS_CONNECT */, (long)args, 0));
#else
    (void)path;
    printf("int80-socket=ok\nint80-connect=skipped\nint80-socketcall-connect=skipped\n");
#endif
    return 0;
}

/* Many threads connecting at once while a timer's signal (a handler
 * without SA_RESTART) keeps interrupting them: a connect that fails with
 * EINTR did nothing and is made again, as careful C does. Each thread
 * makes n connects, one in five to the forbidden path; prints
 * "reached=A refused=R other=O". */
static const char *crowd_allowed, *crowd_forbidden;
static int crowd_n, crowd_reached, crowd_refused, crowd_other;
static pthread_mutex_t crowd_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_alarm(int sig) { (void)sig; }

static void *crowd_thread(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < crowd_n; i++) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strcpy(a.sun_path, (id + i) % 5 == 0 ? crowd_forbidden : crowd_allowed);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        int r;
        do
            r = connect(s, (struct sockaddr *)&a, sizeof a);
        while (r < 0 && errno == EINTR);
        char c = 0;
        ssize_t got = -1;
        if (r == 0)
            do
                got = read(s, &c, 1);
            while (got < 0 && errno == EINTR);
        pthread_mutex_lock(&crowd_lock);
        if (r == 0 && got == 1 && c == 'A') crowd_reached++;
        else if (r < 0 && errno == EACCES) crowd_refused++;
        else crowd_other++;
        pthread_mutex_unlock(&crowd_lock);
        close(s);
    }
    return NULL;
}

static int unix_crowd(const char *allowed, const char *forbidden, int threads, int n) {
    crowd_allowed = allowed;
    crowd_forbidden = forbidden;
    crowd_n = n;
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &every, NULL);
    pthread_t t[64];
    for (long i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, crowd_thread, (void *)i);
    for (long i = 0; i < threads && i < 64; i++) pthread_join(t[i], NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("reached=%d refused=%d other=%d\n", crowd_reached, crowd_refused, crowd_other);
    return 0;
}

/* The races --allow-unix's broker must survive (SPEC §2.9): a second
 * thread changes what a connect names while the broker checks it. The
 * test counts what the forbidden server accepted: it must be nothing. */
struct race {
    volatile int stop;
    struct sockaddr_un addr;
    const char *a, *b;
    int target, unix_fd, inet_fd;
};

static void *rewrite_address(void *p)
{
    struct race *r = p;
    while (!r->stop) {
        strcpy(r->addr.sun_path, r->a);
        strcpy(r->addr.sun_path, r->b);
    }
    return NULL;
}

static void *swap_descriptor(void *p)
{
    struct race *r = p;
    while (!r->stop) {
        dup2(r->unix_fd, r->target);
        dup2(r->inet_fd, r->target);
    }
    return NULL;
}

/* The two images rewrite_family flips between. */
static struct sockaddr_un family_unix, family_inet;

static void *rewrite_family(void *p)
{
    struct race *r = p;
    while (!r->stop) {
        memcpy(&r->addr, &family_inet, sizeof r->addr);
        memcpy(&r->addr, &family_unix, sizeof r->addr);
    }
    return NULL;
}

static void *change_directory(void *p)
{
    struct race *r = p;
    while (!r->stop) {
        if (chdir(r->a) || chdir(r->b))
            break;
    }
    return NULL;
}

static int unix_race(const char *mode, const char *a, const char *b, const char *name, int n)
{
    struct race r = {.a = a, .b = b, .target = 100};
    r.addr.sun_family = AF_UNIX;
    strcpy(r.addr.sun_path, !strcmp(mode, "fd") ? b : a);
    if (!strcmp(mode, "cwd"))
        strcpy(r.addr.sun_path, name);
    pthread_t t;
    if (!strcmp(mode, "family")) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(9),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        family_unix = r.addr;
        memcpy(&family_inet, &in, sizeof in);
    }
    void *(*racer)(void *) = !strcmp(mode, "address") ? rewrite_address
                           : !strcmp(mode, "fd")      ? swap_descriptor
                           : !strcmp(mode, "family")  ? rewrite_family
                                                      : change_directory;
    int connected = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        int s;
        if (!strcmp(mode, "fd")) {
            r.unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
            r.inet_fd = socket(AF_INET, SOCK_STREAM, 0);
            dup2(r.inet_fd, r.target);
            s = r.target;
        } else {
            s = socket(AF_UNIX, SOCK_STREAM, 0);
        }
        r.stop = 0;
        pthread_create(&t, NULL, racer, &r);
        if (connect(s, (struct sockaddr *)&r.addr, sizeof r.addr) == 0)
            connected++;
        else
            refused++;
        r.stop = 1;
        pthread_join(t, NULL);
        close(s);
        if (!strcmp(mode, "fd")) {
            close(r.unix_fd);
            close(r.inet_fd);
        }
    }
    printf("connected=%d refused=%d\n", connected, refused);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    long pid = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(what, "socket-unix")) return report(what, socket(AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(what, "socket-inet")) return report(what, socket(AF_INET, SOCK_STREAM, 0));
    if (!strcmp(what, "socket-inet6")) return report(what, socket(AF_INET6, SOCK_STREAM, 0));
    if (!strcmp(what, "socketpair-inet")) return report(what, socket(AF_INET, SOCK_DGRAM, 0));
    if (!strcmp(what, "io-uring")) {
        char params[120] = {0};
        return report(what, syscall(425 /* io_uring_setup */, 1, params));
    }
#if defined(__x86_64__)
    if (!strcmp(what, "x32-socket")) return report(what, syscall(0x40000000 | 41, AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(what, "int80-socket")) {
        return report(what, int80(359, AF_UNIX, SOCK_STREAM, 0));
    }
#endif
    if (!strcmp(what, "socket-vsock")) return report(what, socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
#if defined(__x86_64__)
    if (!strcmp(what, "int80-socket-vsock")) return report(what, int80(359, 40, SOCK_STREAM, 0));
    if (!strcmp(what, "int80-socketcall-vsock")) {
        unsigned int *args = (unsigned int *)low_page();
        args[0] = 40;
        args[1] = SOCK_STREAM;
        args[2] = 0;
        return report(what, int80(102 /* socketcall */, 1 /* SYS_SOCKET */, (long)args, 0));
    }
#endif
    if (!strcmp(what, "keys-steal")) return keys_steal();
    if (!strcmp(what, "ipc-peek")) return ipc_peek();
    if (!strcmp(what, "tty-inject")) return tty_inject();
    if (!strcmp(what, "setuid-plant") && argc > 2) return setuid_plant(argv[2]);
    if (!strcmp(what, "with-key") && argc > 3 && !strcmp(argv[2], "--")) return with_key(argv + 3);
    if (!strcmp(what, "with-ipc") && argc > 3 && !strcmp(argv[2], "--")) return with_ipc(argv + 3);
    if (!strcmp(what, "ptrace")) return report(what, ptrace(PTRACE_ATTACH, pid, 0, 0));
    if (!strcmp(what, "mem-write")) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/mem", pid);
        return report(what, open(path, O_RDWR));
    }
    if (!strcmp(what, "vm-write")) {
        char byte = 0;
        struct iovec local = {&byte, 1}, remote = {(void *)0x400000, 1};
        return report(what, process_vm_writev(pid, &local, 1, &remote, 1, 0));
    }
    if (!strcmp(what, "loopback")) return loopback();
    if (!strcmp(what, "net-escape") && argc > 2) return net_escape(atoi(argv[2]));
    if (!strcmp(what, "swap") && argc > 3) return swap_forever(argv[2], argv[3]);
    if (!strcmp(what, "int80-connect") && argc > 2) return int80_connect(argv[2]);
    if (!strcmp(what, "unix-crowd") && argc > 5) return unix_crowd(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    if (!strcmp(what, "unix-race-address") && argc > 4) return unix_race("address", argv[2], argv[3], NULL, atoi(argv[4]));
    if (!strcmp(what, "unix-race-fd") && argc > 3) return unix_race("fd", NULL, argv[2], NULL, atoi(argv[3]));
    if (!strcmp(what, "unix-race-family") && argc > 3) return unix_race("family", argv[2], NULL, NULL, atoi(argv[3]));
    if (!strcmp(what, "unix-race-cwd") && argc > 5) return unix_race("cwd", argv[2], argv[3], argv[4], atoi(argv[5]));
    if (!strcmp(what, "nosys") && argc > 3 && !strcmp(argv[2], "--")) return nosys(argv + 3);
    if (!strcmp(what, "hold-mount") && argc > 3 && !strcmp(argv[2], "--")) return hold_mount(argv + 3);
    if (!strcmp(what, "landlock-abi")) {
        printf("%ld\n", syscall(444 /* landlock_create_ruleset */, NULL, 0, 1 /* VERSION */));
        return 0;
    }
    if (!strcmp(what, "noaddfd") && argc > 3 && !strcmp(argv[2], "--")) return noaddfd(argv + 3);
    if (!strcmp(what, "nolandlock") && argc > 3 && !strcmp(argv[2], "--")) return nolandlock(argv + 3);
    if (!strcmp(what, "nogetfd") && argc > 3 && !strcmp(argv[2], "--")) return nogetfd(argv + 3);
    if (!strcmp(what, "landlock-off") && argc > 3 && !strcmp(argv[2], "--")) return landlock_off(argv + 3);
    if (!strcmp(what, "landlock-ceiling") && argc > 4 && !strcmp(argv[3], "--")) return landlock_ceiling(pid, argv + 4);
    if (!strcmp(what, "container") && argc > 3 && !strcmp(argv[2], "--")) return container(argv + 3);
    if (!strcmp(what, "old-container") && argc > 3 && !strcmp(argv[2], "--"))
        return refuse_addfd() ? 125 : container(argv + 3);
    if (!strcmp(what, "nounshare") && argc > 3 && !strcmp(argv[2], "--")) return nounshare(argv + 3);
    if (!strcmp(what, "nomount") && argc > 3 && !strcmp(argv[2], "--")) return nomount(argv + 3);
    if (!strcmp(what, "nouserns") && argc > 3 && !strcmp(argv[2], "--")) return nouserns(argv + 3);
    fprintf(stderr, "probe: unknown check %s\n", what);
    return 2;
}
