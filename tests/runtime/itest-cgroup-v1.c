/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of src/runtime/cgroup.c on this machine's real cgroup v1 hierarchies: limits
 * read back from the kernel's files, attach, freeze/thaw, kill, OOM kills, the pids limit and
 * destroy. Needs root and a v1 memory controller, else exits 77. Everything lives under a
 * per-run SUBDIR below our own cgroups and is removed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/testlib.h"
#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "runtime/cgroup.h"

#define MOUNT "/sys/fs/cgroup"

static struct dt_cgroup_manager *mgr;
static char subdir[64];

static const char *const controllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer",
                                          "cpuset"};
/* Every cgroup name the tests use, so that teardown can remove leftovers of a failed test. */
static const char *const names[] = {"lim", "frz", "kill", "oom", "pids", "dup", "bad"};

/* Our own path in the hierarchy of CTRL, from /proc/self/cgroup (new string). */
static char *
self_path(const char *ctrl)
{
    char *buf = NULL;
    assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &buf, NULL), 0);
    char *res = NULL;
    for (char *line = buf, *nl; line && *line && !res; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        for (char *t = c1 + 1, *comma; t; t = comma) {
            comma = strchr(t, ',');
            if (comma)
                *comma++ = 0;
            if (strcmp(t, ctrl) == 0)
                res = xstrdup(c2 + 1);
        }
    }
    free(buf);
    assert_non_null(res);
    return res;
}

/* The directory of cgroup REL (below SUBDIR; "" for SUBDIR itself) in CTRL's hierarchy. */
static char *
cgdir(const char *ctrl, const char *rel)
{
    char *self = self_path(ctrl);
    char *p = xasprintf("%s/%s%s/%s%s%s", MOUNT, ctrl, strcmp(self, "/") ? self : "", subdir,
                        *rel ? "/" : "", rel);
    free(self);
    return p;
}

/* Content of DIR/FILE without trailing newlines (new string), or NULL. */
static char *
get(const char *dir, const char *file)
{
    return dt_test_read_trimmed(dir, file);
}

static void
assert_cgfile(const char *ctrl, const char *rel, const char *file, const char *expected)
{
    char *dir = cgdir(ctrl, rel);
    char *v = get(dir, file);
    if (!v)
        fail_msg("%s/%s cannot be read", dir, file);
    if (strcmp(v, expected) != 0)
        fail_msg("%s/%s is '%s', expected '%s'", dir, file, v, expected);
    free(v);
    free(dir);
}

static bool
cg_exists(const char *ctrl, const char *rel)
{
    char *dir = cgdir(ctrl, rel);
    struct stat st;
    bool r = stat(dir, &st) == 0;
    free(dir);
    return r;
}

static void
assert_gone(const char *rel)
{
    for (size_t i = 0; i < ELEMENTSOF(controllers); i++)
        if (cg_exists(controllers[i], rel))
            fail_msg("cgroup '%s' still exists in '%s'", rel, controllers[i]);
}

static void
check(int r, struct dt_error **e)
{
    if (r < 0)
        fail_msg("%s", *e ? (*e)->message : "error without message");
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Field 3 (state) and 14 (utime, clock ticks) of /proc/PID/stat. */
static void
proc_stat(pid_t pid, char *state, uint64_t *utime)
{
    char path[64], *buf = NULL;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 16, &buf, NULL), 0);
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    p += 2; /* ") " then the state: field 3 */
    *state = *p;
    for (int field = 3; field < 14; field++) {
        p = strchr(p, ' ');
        assert_non_null(p);
        p++;
    }
    char *end = strchr(p, ' ');
    assert_non_null(end);
    *end = 0;
    assert_int_equal(parse_u64(p, utime), 0);
    free(buf);
}

/* A child that waits for a byte on the pipe and then runs FN; it dies within 20 s whatever
 * happens, and leaves with _exit() (no sanitizer leak check in children). */
static pid_t
spawn(int (*fn)(void), int *go_fd)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        close(p[1]);
        char c;
        if (read(p[0], &c, 1) != 1)
            _exit(100);
        _exit(fn());
    }
    close(p[0]);
    *go_fd = p[1];
    return pid;
}

static void
go(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

/* Touch 4 MiB (charged to the cgroup it now sits in), then spin. */
static int
busy_loop(void)
{
    size_t len = 4u << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    memset(p, 1, len);
    for (volatile unsigned long i = 0;; i++)
        ;
    return 0;
}

static int
sleep_forever(void)
{
    for (;;)
        pause();
    return 0;
}

static int
eat_memory(void)
{
    /* Touch 256 MiB, one page at a time; the 16 MiB limit stops this long before. */
    size_t len = 256u << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    return 0; /* survived: the limit did not work */
}

static int
try_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        (void) waitpid(pid, NULL, 0);
        return 3; /* fork worked: the limit did not */
    }
    return errno == EAGAIN ? 0 : 4;
}

static int
wait_status(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void
assert_sigkilled(pid_t pid)
{
    int status = wait_status(pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("pid %d: status 0x%x, expected SIGKILL", (int) pid, status);
}

/* --- Tests. --- */

static void
test_limits_readback(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    char *parent = cgdir("cpuset", "");
    char *parent_cpus = get(parent, "cpuset.cpus"), *parent_mems = get(parent, "cpuset.mems");
    char *memdir = cgdir("memory", "lim");

    dt_cgroup_limits_init(&l);
    l.memory_max_bytes = 64 << 20;
    l.memory_swap_max_bytes = 0;
    l.cpu_millicpus = 500;
    l.cpu_period_usec = 100000;
    l.pids_max = 32;
    snprintf(l.cpuset_cpus, sizeof(l.cpuset_cpus), "0");
    check(dt_cgroup_create(mgr, "lim", &l, &cg, &e), &e);

    char *memsw_path = xasprintf("%s/memory.memsw.limit_in_bytes", memdir);
    bool memsw = access(memsw_path, F_OK) == 0;
    free(memsw_path);
    assert_cgfile("memory", "lim", "memory.limit_in_bytes", "67108864");
    if (memsw)
        assert_cgfile("memory", "lim", "memory.memsw.limit_in_bytes", "67108864");
    assert_cgfile("cpu", "lim", "cpu.cfs_period_us", "100000");
    assert_cgfile("cpu", "lim", "cpu.cfs_quota_us", "50000");
    assert_cgfile("pids", "lim", "pids.max", "32");
    assert_cgfile("cpuset", "lim", "cpuset.cpus", "0");
    assert_cgfile("cpuset", "lim", "cpuset.mems", parent_mems);
    assert_true(cg_exists("freezer", "lim"));
    assert_true(cg_exists("cpuacct", "lim"));

    /* Raising memory with swap 0 only works with memsw raised first (else EINVAL). */
    l.memory_max_bytes = 128 << 20;
    check(dt_cgroup_set_limits(cg, &l, &e), &e);
    assert_cgfile("memory", "lim", "memory.limit_in_bytes", "134217728");
    if (memsw)
        assert_cgfile("memory", "lim", "memory.memsw.limit_in_bytes", "134217728");
    /* Lowering needs the opposite order. */
    l.memory_max_bytes = 32 << 20;
    l.cpu_millicpus = 2000;
    l.cpu_period_usec = 50000;
    l.pids_max = 5;
    check(dt_cgroup_set_limits(cg, &l, &e), &e);
    assert_cgfile("memory", "lim", "memory.limit_in_bytes", "33554432");
    if (memsw)
        assert_cgfile("memory", "lim", "memory.memsw.limit_in_bytes", "33554432");
    assert_cgfile("cpu", "lim", "cpu.cfs_period_us", "50000");
    assert_cgfile("cpu", "lim", "cpu.cfs_quota_us", "100000");
    assert_cgfile("pids", "lim", "pids.max", "5");

    struct dt_cgroup_stats st;
    check(dt_cgroup_stats(cg, &st, &e), &e);
    assert_int_equal(st.memory_max_bytes, 32 << 20);
    assert_int_equal(st.oom_kills, 0);
    assert_int_equal(st.pids_current, 0);

    /* Everything unlimited again; the cpuset goes back to the parent's. */
    dt_cgroup_limits_init(&l);
    check(dt_cgroup_set_limits(cg, &l, &e), &e);
    assert_cgfile("cpu", "lim", "cpu.cfs_quota_us", "-1");
    assert_cgfile("pids", "lim", "pids.max", "max");
    assert_cgfile("cpuset", "lim", "cpuset.cpus", parent_cpus);
    check(dt_cgroup_stats(cg, &st, &e), &e);
    assert_true(st.memory_max_bytes == DT_CGROUP_UNLIMITED);

    check(dt_cgroup_destroy(cg, &e), &e);
    assert_gone("lim");
    check(dt_cgroup_destroy(cg, &e), &e); /* idempotent */
    dt_cgroup_free(cg);
    free(memdir);
    free(parent);
    free(parent_cpus);
    free(parent_mems);
}

static void
test_attach_freeze_kill(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    int fd;

    dt_cgroup_limits_init(&l);
    check(dt_cgroup_create(mgr, "frz", &l, &cg, &e), &e);
    assert_int_equal(dt_cgroup_is_empty(cg), 1);

    pid_t pid = spawn(busy_loop, &fd);
    check(dt_cgroup_attach(cg, pid, &e), &e);
    go(fd);

    /* The kernel now places it in our cgroup in every hierarchy. */
    char path[64], *pc = NULL;
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
    assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 16, &pc, NULL), 0);
    for (size_t i = 0; i < ELEMENTSOF(controllers); i++) {
        char *want = xasprintf(":%s:", controllers[i]);
        char *line = strstr(pc, want);
        if (!line)
            fail_msg("no %s line in %s", controllers[i], path);
        char *suffix = xasprintf("/%s/frz\n", subdir);
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        size_t sl = strlen(suffix);
        if ((size_t) (nl + 1 - line) < sl || strncmp(nl + 1 - sl, suffix, sl) != 0)
            fail_msg("%s: '%.*s' is not in .../%s/frz", path, (int) (nl - line), line, subdir);
        free(suffix);
        free(want);
    }
    free(pc);
    assert_int_equal(dt_cgroup_is_empty(cg), 0);

    /* Let it burn some CPU, then freeze: it stops running. */
    sleep_ms(200);
    check(dt_cgroup_freeze(cg, true, &e), &e);
    assert_cgfile("freezer", "frz", "freezer.state", "FROZEN");
    char st;
    uint64_t t1, t2;
    proc_stat(pid, &st, &t1);
    assert_int_equal(st, 'D'); /* frozen tasks are reported as uninterruptible */
    sleep_ms(300);
    proc_stat(pid, &st, &t2);
    assert_int_equal(t1, t2);

    check(dt_cgroup_freeze(cg, false, &e), &e);
    assert_cgfile("freezer", "frz", "freezer.state", "THAWED");
    for (int i = 0; i < 100 && t2 == t1; i++) {
        sleep_ms(20);
        proc_stat(pid, &st, &t2);
    }
    assert_true(t2 > t1);
    assert_int_equal(st, 'R'); /* running again */

    struct dt_cgroup_stats stats;
    proc_stat(pid, &st, &t2);
    check(dt_cgroup_stats(cg, &stats, &e), &e);
    /* cpuacct agrees with the kernel's own per-process CPU time (utime, in clock ticks; one
     * tick of rounding allowed). */
    uint64_t tick_usec = 1000000 / (uint64_t) sysconf(_SC_CLK_TCK);
    if (stats.cpu_usage_usec == 0 || stats.cpu_usage_usec + tick_usec < t2 * tick_usec)
        fail_msg("cpu usage %llu us, but the process has %llu ticks of user time",
                 (unsigned long long) stats.cpu_usage_usec, (unsigned long long) t2);
    assert_int_equal(stats.pids_current, 1);
    /* Only "some memory is charged here": how much of the child's 4 MiB lands in this cgroup
     * depends on the kernel (v1 charge batching, pages faulted before the move). */
    if (stats.memory_current_bytes == 0)
        fail_msg("memory usage %llu bytes after touching 4 MiB",
                 (unsigned long long) stats.memory_current_bytes);

    check(dt_cgroup_kill(cg, &e), &e);
    assert_sigkilled(pid);
    for (int i = 0; i < 100 && dt_cgroup_is_empty(cg) == 0; i++)
        sleep_ms(10);
    assert_int_equal(dt_cgroup_is_empty(cg), 1);
    assert_cgfile("freezer", "frz", "freezer.state", "THAWED");

    check(dt_cgroup_destroy(cg, &e), &e);
    assert_gone("frz");
    dt_cgroup_free(cg);
}

static void
test_kill_tree_and_destroy(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL, *leaf = NULL;
    struct dt_error *e = NULL;
    int fd_a, fd_b, fd_c;

    dt_cgroup_limits_init(&l);
    check(dt_cgroup_create(mgr, "kill", &l, &cg, &e), &e);
    check(dt_cgroup_create_child(cg, "leaf", &leaf, &e), &e);
    assert_true(cg_exists("memory", "kill/leaf") && cg_exists("cpuset", "kill/leaf"));

    pid_t a = spawn(sleep_forever, &fd_a), b = spawn(busy_loop, &fd_b);
    pid_t c = spawn(sleep_forever, &fd_c);
    check(dt_cgroup_attach(cg, a, &e), &e);
    check(dt_cgroup_attach(cg, b, &e), &e);
    check(dt_cgroup_attach(leaf, c, &e), &e);
    go(fd_a);
    go(fd_b);
    go(fd_c);

    check(dt_cgroup_kill(cg, &e), &e);
    assert_sigkilled(a);
    assert_sigkilled(b);
    assert_sigkilled(c); /* in the child cgroup */

    /* Destroy with a live process inside: killed, and every directory removed. */
    pid_t d = spawn(sleep_forever, &fd_a);
    check(dt_cgroup_attach(leaf, d, &e), &e);
    go(fd_a);
    check(dt_cgroup_destroy(cg, &e), &e);
    assert_sigkilled(d);
    assert_gone("kill/leaf");
    assert_gone("kill");
    dt_cgroup_free(leaf);
    dt_cgroup_free(cg);
}

static void
test_oom_kill_counted(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    int fd;

    dt_cgroup_limits_init(&l);
    l.memory_max_bytes = 16 << 20;
    l.memory_swap_max_bytes = 0;
    check(dt_cgroup_create(mgr, "oom", &l, &cg, &e), &e);

    pid_t pid = spawn(eat_memory, &fd);
    check(dt_cgroup_attach(cg, pid, &e), &e);
    go(fd);
    assert_sigkilled(pid);

    struct dt_cgroup_stats st;
    check(dt_cgroup_stats(cg, &st, &e), &e);
    assert_true(st.oom_kills >= 1);
    assert_int_equal(st.memory_max_bytes, 16 << 20);

    check(dt_cgroup_destroy(cg, &e), &e);
    assert_gone("oom");
    dt_cgroup_free(cg);
}

static void
test_pids_limit(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    int fd;

    dt_cgroup_limits_init(&l);
    l.pids_max = 1;
    check(dt_cgroup_create(mgr, "pids", &l, &cg, &e), &e);

    pid_t pid = spawn(try_fork, &fd);
    check(dt_cgroup_attach(cg, pid, &e), &e);
    struct dt_cgroup_stats st;
    check(dt_cgroup_stats(cg, &st, &e), &e);
    assert_int_equal(st.pids_current, 1);
    go(fd);
    int status = wait_status(pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* fork() failed with EAGAIN */

    /* Raised, the same child program can fork. */
    l.pids_max = 4;
    check(dt_cgroup_set_limits(cg, &l, &e), &e);
    pid = spawn(try_fork, &fd);
    check(dt_cgroup_attach(cg, pid, &e), &e);
    go(fd);
    status = wait_status(pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);

    check(dt_cgroup_destroy(cg, &e), &e);
    assert_gone("pids");
    dt_cgroup_free(cg);
}

static void
test_exists_open_and_rollback(void **state)
{
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL, *other = NULL;
    struct dt_error *e = NULL;

    dt_cgroup_limits_init(&l);
    check(dt_cgroup_create(mgr, "dup", &l, &cg, &e), &e);
    assert_int_equal(dt_cgroup_create(mgr, "dup", &l, &other, &e), -EEXIST);
    assert_non_null(e);
    dt_error_free(e);
    e = NULL;
    assert_true(cg_exists("memory", "dup") && cg_exists("pids", "dup"));
    check(dt_cgroup_open(mgr, "dup", &other, &e), &e);
    check(dt_cgroup_destroy(other, &e), &e);
    assert_gone("dup");
    dt_cgroup_free(other);
    dt_cgroup_free(cg);
    assert_int_equal(dt_cgroup_open(mgr, "dup", &other, &e), -ENOENT);
    dt_error_free(e);
    e = NULL;

    /* The kernel refuses a CPU outside the parent's set: the error names the file and no
     * directory is left behind. */
    snprintf(l.cpuset_cpus, sizeof(l.cpuset_cpus), "%ld", sysconf(_SC_NPROCESSORS_CONF) + 7);
    assert_true(dt_cgroup_create(mgr, "bad", &l, &cg, &e) < 0);
    assert_non_null(e);
    if (!strstr(e->message, "cpuset.cpus"))
        fail_msg("unexpected error: %s", e->message);
    dt_error_free(e);
    assert_gone("bad");
}

/* --- Setup. --- */

static int
setup(void **state)
{
    struct dt_error *e = NULL;
    snprintf(subdir, sizeof(subdir), "dt-itest-cgroup-%d", (int) getpid());
    int r = dt_cgroup_manager_new(MOUNT, "/proc/self/cgroup", subdir, &mgr, &e);
    if (r < 0) {
        fprintf(stderr, "SKIP: no usable cgroups: %s\n", e->message);
        exit(DT_TEST_SKIP);
    }
    if (dt_cgroup_manager_version(mgr) != DT_CGROUP_V1)
        dt_test_skip("not a cgroup v1 layout");
    /* Children of a child that died get reparented to us, not to init. */
    (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
    return 0;
}

static int
teardown(void **state)
{
    /* Remove what a failed test left, then SUBDIR itself. */
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        struct dt_cgroup *cg = NULL;
        struct dt_error *e = NULL;
        if (dt_cgroup_open(mgr, names[i], &cg, &e) == 0) {
            if (dt_cgroup_destroy(cg, &e) < 0)
                fprintf(stderr, "cleanup: %s\n", e->message);
            dt_cgroup_free(cg);
        }
        dt_error_free(e);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    for (size_t i = 0; i < ELEMENTSOF(controllers); i++) {
        char *dir = cgdir(controllers[i], "");
        if (rmdir(dir) < 0 && errno != ENOENT)
            fprintf(stderr, "cleanup: rmdir %s: %s\n", dir, strerror(errno));
        free(dir);
    }
    dt_cgroup_manager_free(mgr);
    mgr = NULL;
    return 0;
}

int
main(void)
{
    dt_test_require_root();
    struct stat st;
    if (stat(MOUNT "/memory", &st) < 0 || !S_ISDIR(st.st_mode))
        dt_test_skip("no cgroup v1 memory controller at " MOUNT "/memory");

    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_limits_readback),
            cmocka_unit_test(test_attach_freeze_kill),
            cmocka_unit_test(test_kill_tree_and_destroy),
            cmocka_unit_test(test_oom_kill_counted),
            cmocka_unit_test(test_pids_limit),
            cmocka_unit_test(test_exists_open_and_rollback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
