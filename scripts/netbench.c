/*
 * Client and servers for scripts/bench-net.py, in C so that the relay
 * being measured, not the measuring program, dominates each figure.
 * Built by bench-net.py with the host C compiler; never shipped.
 *
 *   netbench serve-echo ADDR       echo every connection (one poll loop)
 *   netbench serve-sink ADDR       count bytes to EOF, answer the count (8 bytes)
 *   netbench stream ADDR BYTES     send BYTES, print seconds until the count came back
 *   netbench short ADDR N          N x (connect, 1 byte each way, close): print conn/s
 *   netbench connect ADDR N        N x (socket, connect, close): print the median
 *                                  time of the connect call alone, in microseconds
 *   netbench idle ADDR N           open N connections (1 byte echoed each), print
 *                                  "ready", hold them until stdin closes
 *
 * ADDR is a unix socket path (starting with /) or a TCP port on 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static int make_socket(const char *addr, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    if (addr[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        un->sun_family = AF_UNIX;
        strncpy(un->sun_path, addr, sizeof un->sun_path - 1);
        *len = sizeof *un;
        return socket(AF_UNIX, SOCK_STREAM, 0);
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(atoi(addr));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *in;
    return socket(AF_INET, SOCK_STREAM, 0);
}

static int dial(const char *addr) {
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = make_socket(addr, &ss, &len);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len)) die("connect");
    if (addr[0] != '/') { int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
    return fd;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

#define MAXC 4096
static char buf[1 << 20];

static int serve(const char *addr, int sink) {
    struct sockaddr_storage ss;
    socklen_t len;
    int l = make_socket(addr, &ss, &len), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1024)) die("listen");
    static struct pollfd fds[MAXC];
    static uint64_t count[MAXC];
    int n = 1;
    fds[0] = (struct pollfd){.fd = l, .events = POLLIN};
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        if (poll(fds, n, -1) < 0) die("poll");
        if (fds[0].revents) {
            int c = accept(l, NULL, NULL);
            if (c >= 0 && n < MAXC) { fds[n] = (struct pollfd){.fd = c, .events = POLLIN}; count[n++] = 0; }
        }
        for (int i = 1; i < n; i++) {
            if (!fds[i].revents) continue;
            ssize_t r = read(fds[i].fd, buf, sizeof buf);
            if (r > 0) {
                if (sink) count[i] += r;
                else for (ssize_t off = 0; off < r;) { ssize_t w = write(fds[i].fd, buf + off, r - off); if (w <= 0) break; off += w; }
                continue;
            }
            if (sink) { uint64_t be = __builtin_bswap64(count[i]); (void)!write(fds[i].fd, &be, 8); }
            close(fds[i].fd);
            fds[i] = fds[--n];
            count[i] = count[n];
            i--;
        }
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1], *addr = argv[2];
    long long arg = argc > 3 ? atoll(argv[3]) : 0;
    if (!strcmp(mode, "serve-echo")) return serve(addr, 0);
    if (!strcmp(mode, "serve-sink")) return serve(addr, 1);
    if (!strcmp(mode, "stream")) {
        int fd = dial(addr);
        memset(buf, 0xa5, sizeof buf);
        double t0 = now();
        for (long long sent = 0; sent < arg;) {
            ssize_t w = write(fd, buf, sizeof buf);
            if (w <= 0) die("write");
            sent += w;
        }
        shutdown(fd, SHUT_WR);
        uint64_t be = 0;
        if (read(fd, &be, 8) != 8 || (long long)__builtin_bswap64(be) != arg) die("short transfer");
        printf("%.6f\n", now() - t0);
        return 0;
    }
    if (!strcmp(mode, "connect")) {
        static double took[100000];
        long long n = arg < 100000 ? arg : 100000;
        for (long long i = 0; i < n; i++) {
            struct sockaddr_storage ss;
            socklen_t len;
            int fd = make_socket(addr, &ss, &len);
            if (fd < 0) die("socket");
            double t0 = now();
            if (connect(fd, (struct sockaddr *)&ss, len)) die("connect");
            took[i] = now() - t0;
            close(fd);
        }
        qsort(took, n, sizeof took[0], by_value);
        printf("%.2f\n", took[n / 2] * 1e6);
        return 0;
    }
    if (!strcmp(mode, "short")) {
        double t0 = now();
        for (long long i = 0; i < arg; i++) {
            int fd = dial(addr);
            char c = 'x';
            if (write(fd, &c, 1) != 1) die("write");
            shutdown(fd, SHUT_WR);
            if (read(fd, &c, 1) != 1) die("read");
            close(fd);
        }
        printf("%.1f\n", arg / (now() - t0));
        return 0;
    }
    if (!strcmp(mode, "idle")) {
        for (long long i = 0; i < arg; i++) {
            int fd = dial(addr);
            char c = 'i';
            if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) die("idle");
        }
        printf("ready\n");
        fflush(stdout);
        while (read(0, buf, sizeof buf) > 0) {}
        return 0;
    }
    return 2;
}
