/* SPDX-License-Identifier: Apache-2.0 */
/* dt-probe: a static binary the integration tests run inside sandboxes to ask questions about
 * the environment (crun's tests/init.c is the model). One subcommand per question; answers on
 * stdout, one line each, easy to compare. Standalone: no project headers, built with -static. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static void
cat(const char *path)
{
    char buf[65536];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("error %s\n", strerrorname_np(errno));
        return;
    }
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t) n, stdout);
    close(fd);
}

static void
status_field(const char *key)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (n < 0)
        return;
    buf[n] = 0;
    char *p = strstr(buf, key);
    if (p) {
        char *e = strchr(p, '\n');
        if (e)
            *e = 0;
        printf("%s\n", p);
    }
}

static long
try_syscall(const char *name)
{
    errno = 0;
    long r = -1;
    if (!strcmp(name, "keyctl"))
        r = syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    else if (!strcmp(name, "add_key"))
        r = syscall(SYS_add_key, "user", "x", "y", 1, -2);
    else if (!strcmp(name, "bpf"))
        r = syscall(SYS_bpf, 0, NULL, 0);
    else if (!strcmp(name, "perf_event_open"))
        r = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    else if (!strcmp(name, "unshare"))
        r = syscall(SYS_unshare, CLONE_NEWUSER);
    else if (!strcmp(name, "mount"))
        r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
    else if (!strcmp(name, "kexec_load"))
        r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    else if (!strcmp(name, "open_by_handle_at"))
        r = syscall(SYS_open_by_handle_at, -1, NULL, 0);
    else if (!strcmp(name, "init_module"))
        r = syscall(SYS_init_module, NULL, 0, "");
    else if (!strcmp(name, "clone3")) {
        struct clone_args ca = {.exit_signal = SIGCHLD};
        r = syscall(SYS_clone3, &ca, sizeof(ca));
        if (r == 0)
            _exit(0);
        if (r > 0)
            waitpid((pid_t) r, NULL, 0);
    } else if (!strcmp(name, "getpid"))
        r = syscall(SYS_getpid);
    else if (!strcmp(name, "setns"))
        r = syscall(SYS_setns, 0, 0);
    else if (!strcmp(name, "reboot"))
        r = syscall(SYS_reboot, 0, 0, 0, NULL);
    else {
        errno = ENOSYS;
        return -2;
    }
    return r;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: probe COMMAND [ARGS]\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "hostname")) {
        char h[256];
        gethostname(h, sizeof(h));
        printf("%s\n", h);
    } else if (!strcmp(cmd, "id")) {
        printf("uid=%d gid=%d euid=%d\n", (int) getuid(), (int) getgid(), (int) geteuid());
    } else if (!strcmp(cmd, "pid")) {
        printf("%d\n", (int) getpid());
    } else if (!strcmp(cmd, "caps")) {
        status_field("CapEff:");
        status_field("CapBnd:");
        status_field("NoNewPrivs:");
        status_field("Seccomp:");
    } else if (!strcmp(cmd, "cat") && argc > 2) {
        cat(argv[2]);
    } else if (!strcmp(cmd, "seccomp") && argc > 2) {
        long r = try_syscall(argv[2]);
        printf("%s\n", r >= 0 ? "ok" : strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    } else if (!strcmp(cmd, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int dfd = dirfd(d);
        while ((de = readdir(d)))
            if (de->d_name[0] != '.' && atoi(de->d_name) != dfd)
                printf("%s\n", de->d_name);
        closedir(d);
    } else if (!strcmp(cmd, "nproc")) {
        cpu_set_t set;
        sched_getaffinity(0, sizeof(set), &set);
        printf("affinity=%d online=%ld\n", CPU_COUNT(&set), sysconf(_SC_NPROCESSORS_ONLN));
    } else if (!strcmp(cmd, "alloc") && argc > 2) {
        /* Allocate and touch N MiB, 1 MiB at a time. */
        long mb = atol(argv[2]);
        for (long i = 0; i < mb; i++) {
            char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                printf("mmap failed at %ld MiB\n", i);
                return 1;
            }
            memset(p, 1, 1 << 20);
        }
        printf("allocated %ld MiB\n", mb);
    } else if (!strcmp(cmd, "forkbomb")) {
        /* Fork children that sleep until the count stops growing; report the failure. */
        int n = 0;
        for (;;) {
            pid_t p = fork();
            if (p == 0) {
                pause();
                _exit(0);
            }
            if (p < 0) {
                printf("forked %d then %s\n", n, strerrorname_np(errno));
                break;
            }
            if (++n > 100000)
                break;
        }
        kill(0, SIGKILL);
    } else if (!strcmp(cmd, "fill") && argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            printf("open %s\n", strerrorname_np(errno));
            return 1;
        }
        static char buf[1 << 20];
        memset(buf, 'x', sizeof(buf));
        long long total = 0;
        for (;;) {
            ssize_t n = write(fd, buf, sizeof(buf));
            if (n < 0) {
                printf("wrote %lld MiB then %s\n", total >> 20, strerrorname_np(errno));
                break;
            }
            total += n;
        }
        fsync(fd);
        close(fd);
    } else if (!strcmp(cmd, "spin") && argc > 2) {
        /* Spin two threads' worth? One process: report CPU time over wall time in percent. */
        double secs = atof(argv[2]);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        do
            clock_gettime(CLOCK_MONOTONIC, &b);
        while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < secs);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
        printf("cpu_percent=%d\n", (int) (cpu * 100 / secs));
    } else if (!strcmp(cmd, "write") && argc > 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, argv[3], strlen(argv[3])) < 0) {
            printf("error %s\n", strerrorname_np(errno));
            return 1;
        }
        close(fd);
        printf("ok\n");
    } else if (!strcmp(cmd, "stat") && argc > 2) {
        struct stat st;
        if (lstat(argv[2], &st) < 0) {
            printf("error %s\n", strerrorname_np(errno));
            return 1;
        }
        printf("uid=%d gid=%d mode=%o\n", (int) st.st_uid, (int) st.st_gid, st.st_mode & 07777);
    } else if (!strcmp(cmd, "connect") && argc > 3) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &sa.sin_addr);
        int r = connect(s, (struct sockaddr *) &sa, sizeof(sa));
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = s, .events = POLLOUT};
            r = poll(&pfd, 1, 1500);
            if (r == 0) {
                printf("timeout\n");
                return 0;
            }
            int e = 0;
            socklen_t l = sizeof(e);
            getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
            errno = e;
            r = e ? -1 : 0;
        }
        printf("%s\n", r == 0 ? "connected" : strerrorname_np(errno));
    } else if (!strcmp(cmd, "sleep") && argc > 2) {
        sleep((unsigned) atoi(argv[2]));
    } else if (!strcmp(cmd, "exit") && argc > 2) {
        return atoi(argv[2]);
    } else if (!strcmp(cmd, "signal") && argc > 2) {
        kill(getpid(), atoi(argv[2]));
        pause();
    } else if (!strcmp(cmd, "sigterm-handler")) {
        /* Exit 42 on SIGTERM: an init that stops cleanly. */
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        (void) sa;
        int sig;
        printf("ready\n");
        sigwait(&ss, &sig);
        return 42;
    } else if (!strcmp(cmd, "tty")) {
        printf("isatty=%d\n", isatty(0));
        char *n = ttyname(0);
        printf("ttyname=%s\n", n ? n : "none");
    } else {
        fprintf(stderr, "probe: unknown command '%s'\n", cmd);
        return 2;
    }
    return 0;
}
