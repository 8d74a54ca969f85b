/*
 * Test probe for srt-launcher's integration tests: makes the system calls a
 * shell cannot, from inside a sandbox, and prints one "name=result" line
 * per check (result "ok", or the errno number). Built by the tests with the
 * host C compiler; never shipped.
 *
 *   probe socket-unix | socket-inet | io-uring | x32-socket | int80-socket
 *   probe ptrace PID | mem-write PID | vm-write PID
 *   probe loopback
 *   probe nosys -- CMD...   run CMD with the newer mount/open/close_range
 *                           syscalls failing with ENOSYS, as on Linux 4.18
 *   probe nounshare -- CMD... run CMD with unshare(2) failing with EPERM,
 *                           as where user namespaces are refused
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
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
/* i386 socket(2) through the 32-bit entry point (syscall 359 there). */
static long int80_socket(void) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(359L), "b"(AF_UNIX), "c"(SOCK_STREAM), "d"(0L)
                     : "memory");
    return ret;
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

/* Runs argv with each syscall in calls[] failing with errno. */
static int refuse_and_exec(const int *calls, int ncalls, int err, char **argv) {
    struct sock_filter f[32];
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
        perror("probe nosys: seccomp");
        return 125;
    }
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

static int nounshare(char **argv) {
    static const int calls[] = {SYS_unshare};
    return refuse_and_exec(calls, 1, EPERM, argv);
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
        long ret = int80_socket();
        if (ret < 0) { errno = -ret; ret = -1; }
        return report(what, ret);
    }
#endif
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
    if (!strcmp(what, "nosys") && argc > 3 && !strcmp(argv[2], "--")) return nosys(argv + 3);
    if (!strcmp(what, "hold-mount") && argc > 3 && !strcmp(argv[2], "--")) return hold_mount(argv + 3);
    if (!strcmp(what, "nounshare") && argc > 3 && !strcmp(argv[2], "--")) return nounshare(argv + 3);
    fprintf(stderr, "probe: unknown check %s\n", what);
    return 2;
}
