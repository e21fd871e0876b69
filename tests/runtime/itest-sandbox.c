/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of the sandbox lifecycle API (include/dt/runtime.h) through the library: exec,
 * ptys, stop/start, stop semantics, pause/resume, OOM of an exec'd process, re-adoption after a
 * simulated crash, host leak check over many cycles, and bad input. Needs root; skips (77) else. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MiB (1ULL << 20)

/* Shared by all tests (set up once): the rootfs, the runtime, its state dir and a slot. */
static char *rootfs;
static char *state_dir;
static char cg_subdir[64];
static struct dt_runtime *rt;
static uint32_t slot;
static int slot_lock = -1;
static unsigned id_counter;

/* Per test: the plan and the sandbox, destroyed by the teardown even after a failed assert. */
static struct dt_plan plan;
static struct dt_sandbox *sb;
/* Init pid of a sandbox the test "crashed" away from: still our child, reaped by teardown. */
static pid_t orphan_init;
/* Processes from dt_sandbox_exec() not yet reaped: killed and reaped by the teardown first, since
 * the init of a pid namespace cannot finish exiting while one of them is an unreaped zombie. */
static pid_t tracked[64];
static size_t n_tracked;

static void
track(pid_t pid)
{
    if (n_tracked < ELEMENTSOF(tracked))
        tracked[n_tracked++] = pid;
}

static void
untrack(pid_t pid)
{
    for (size_t i = 0; i < n_tracked; i++)
        if (tracked[i] == pid) {
            tracked[i] = tracked[--n_tracked];
            return;
        }
}

static void
reap_tracked(void)
{
    for (size_t i = 0; i < n_tracked; i++) {
        (void) kill(tracked[i], SIGKILL);
        while (waitpid(tracked[i], NULL, 0) < 0 && errno == EINTR)
            ;
    }
    n_tracked = 0;
}

/* A watchdog for calls that may deadlock: after TIMEOUT_MS it reaps the tracked processes (which
 * unblocks an init stuck in zap_pid_ns_processes()) and records that it had to. */
struct watchdog {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    bool fired;
    int timeout_ms;
};

static void *
watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += w->timeout_ms / 1000;
    ts.tv_nsec += (long) (w->timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
            break;
    if (!w->done) {
        w->fired = true;
        for (size_t i = 0; i < n_tracked; i++)
            (void) waitpid(tracked[i], NULL, WNOHANG);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void
watchdog_start(struct watchdog *w, int timeout_ms)
{
    *w = (struct watchdog){.timeout_ms = timeout_ms};
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    assert_int_equal(pthread_create(&w->thread, NULL, watchdog_main, w), 0);
}

/* Returns whether the watchdog had to intervene. */
static bool
watchdog_stop(struct watchdog *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    return w->fired;
}

static uint64_t
now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void
fail_err(const char *what, struct dt_error *err)
{
    fail_msg("%s: %s", what, err ? err->message : "(no message)");
}

#define CHECK_OK(call, what)                                                                     \
    do {                                                                                         \
        struct dt_error *err_ = NULL;                                                            \
        struct dt_error **errp_ = &err_;                                                         \
        (void) errp_;                                                                            \
        if ((call) < 0)                                                                          \
            fail_err(what, err_);                                                                \
        dt_error_free(err_);                                                                     \
    } while (0)

/* Read FD until EOF (or EIO, what a pty master gives when the slave side is gone) or until
 * TIMEOUT_MS passed; returns a malloc'ed NUL-terminated string. */
static char *
read_until_eof(int fd, int timeout_ms)
{
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000u;
    for (;;) {
        uint64_t now = now_usec();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int k = poll(&p, 1, (int) ((deadline - now) / 1000u) + 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (len + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    buf[len] = 0;
    return buf;
}

static void
plan_reset(void)
{
    dt_plan_done(&plan);
    dt_plan_init(&plan);
    plan.id = xasprintf("sbx-%d-%u", (int) getpid(), id_counter++);
    strv_push(&plan.layers, rootfs);
    plan.slot = slot;
    plan.env = xcalloc(1, sizeof(char *));
    strv_push(&plan.args, "/bin/sleep");
    strv_push(&plan.args, "1000");
}

static void
set_args(const char *a0, const char *a1, const char *a2)
{
    strv_free(plan.args);
    plan.args = NULL;
    strv_push(&plan.args, a0);
    if (a1)
        strv_push(&plan.args, a1);
    if (a2)
        strv_push(&plan.args, a2);
}

static void
create_and_start(const int stdio[3])
{
    static const int none[3] = {-1, -1, -1};
    struct dt_error *err = NULL;
    assert_null(sb);
    if (dt_sandbox_create(rt, &plan, &sb, &err) < 0)
        fail_err("create", err);
    if (dt_sandbox_start(sb, stdio ? stdio : none, &err) < 0)
        fail_err("start", err);
    assert_true(dt_sandbox_is_running(sb));
}

struct exec_opts {
    const char *user;
    const char *cwd;
    char **env;
};

/* Exec ARGS in the sandbox with stdout+stderr to a pipe; returns the output, fills *E. */
static char *
exec_capture(char **args, const struct exec_opts *o, struct dt_exit *e)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct dt_exec spec = {
            .args = args,
            .env = o ? o->env : NULL,
            .cwd = o ? o->cwd : NULL,
            .user = o ? o->user : NULL,
            .stdio_fds = {-1, p[1], p[1]},
    };
    struct dt_process proc;
    struct dt_error *err = NULL;
    int r = dt_sandbox_exec(sb, &spec, &proc, &err);
    close(p[1]);
    if (r < 0) {
        close(p[0]);
        fail_err("exec", err);
    }
    track(proc.pid);
    char *out = read_until_eof(p[0], 10000);
    close(p[0]);
    if (dt_process_wait(sb, &proc, false, e, &err) < 0)
        fail_err("process wait", err);
    untrack(proc.pid);
    return out;
}

static char *
exec_simple(const char *a0, const char *a1, const char *a2, const char *a3, struct dt_exit *e)
{
    char *args[] = {(char *) a0, (char *) a1, (char *) a2, (char *) a3, NULL};
    return exec_capture(args, NULL, e);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int
group_setup(void **state)
{
    struct dt_error *err = NULL;
    dt_test_require_root();
    rootfs = dt_test_make_rootfs();
    state_dir = dt_test_mkdtemp("dt-itest-sbx-state");
    snprintf(cg_subdir, sizeof(cg_subdir), "dt-itest-%d", (int) getpid());
    struct dt_runtime_config cfg = {.state_dir = state_dir, .cgroup_subdir = cg_subdir};
    if (dt_runtime_new(&cfg, &rt, &err) < 0) {
        fprintf(stderr, "runtime: %s\n", err->message);
        dt_error_free(err);
        return -1;
    }
    if (dt_runtime_acquire_slot(rt, &slot, &slot_lock, &err) < 0) {
        fprintf(stderr, "slot: %s\n", err->message);
        dt_error_free(err);
        return -1;
    }
    dt_plan_init(&plan);
    return 0;
}

/* The runtime keeps its cgroup subdirectory (a daemon reuses it); remove ours from every
 * hierarchy: each mount under /sys/fs/cgroup combined with each of our cgroup paths. */
static void
remove_cgroup_subdir(void)
{
    char *buf;
    size_t len;
    if (read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &buf, &len) < 0)
        return;
    DIR *d = opendir("/sys/fs/cgroup");
    if (!d) {
        free(buf);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *save = NULL, *copy = xstrdup(buf);
        for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char *c1 = strchr(l, ':');
            char *path = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!path)
                continue;
            path++;
            char *dir = xasprintf("/sys/fs/cgroup/%s%s/%s", de->d_name,
                                  strcmp(path, "/") ? path : "", cg_subdir);
            if (rmdir(dir) < 0 && errno != ENOENT)
                fprintf(stderr, "warning: rmdir %s: %s\n", dir, strerror(errno));
            free(dir);
        }
        free(copy);
    }
    closedir(d);
    free(buf);
}

static int
group_teardown(void **state)
{
    dt_plan_done(&plan);
    if (slot_lock >= 0)
        close(slot_lock);
    dt_runtime_free(rt);
    rt = NULL;
    remove_cgroup_subdir();
    if (state_dir)
        dt_test_rm_rf(state_dir);
    if (rootfs)
        dt_test_rm_rf(rootfs);
    free(state_dir);
    free(rootfs);
    return 0;
}

static int
test_setup(void **state)
{
    plan_reset();
    return 0;
}

static int
test_teardown(void **state)
{
    if (sb)
        (void) dt_sandbox_resume(sb, NULL);
    reap_tracked();
    if (sb) {
        struct dt_error *err = NULL;
        if (dt_sandbox_destroy(sb, &err) < 0) {
            fprintf(stderr, "teardown: destroy: %s\n", err->message);
            dt_error_free(err);
        }
        dt_sandbox_free(sb);
        sb = NULL;
    }
    if (orphan_init > 0) {
        (void) kill(orphan_init, SIGKILL);
        (void) waitpid(orphan_init, NULL, 0);
        orphan_init = 0;
    }
    /* Reap whatever a failed test left (exec'd processes are our children). */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return 0;
}

/* ---- 1. exec ------------------------------------------------------------------------------- */

static void
test_exec(void **state)
{
    struct dt_exit e;
    create_and_start(NULL);

    _cleanup_free_ char *o1 = exec_simple("/probe", "id", NULL, NULL, &e);
    assert_string_equal(o1, "uid=0 gid=0 euid=0\n");
    assert_int_equal(e.code, 0);
    assert_int_equal(e.signal, 0);

    char *idargs[] = {"/probe", "id", NULL};
    struct exec_opts ou = {.user = "daytona"};
    _cleanup_free_ char *o2 = exec_capture(idargs, &ou, &e);
    assert_string_equal(o2, "uid=1000 gid=1000 euid=1000\n");

    /* Home of daytona is the default cwd of a user exec. */
    char *pwdargs[] = {"/bin/pwd", NULL};
    _cleanup_free_ char *o3 = exec_capture(pwdargs, &ou, &e);
    assert_string_equal(o3, "/home/daytona\n");

    char *envv[] = {"FOO=bar-baz", NULL};
    struct exec_opts oe = {.cwd = "/tmp", .env = envv};
    char *shargs[] = {"/bin/sh", "-c", "echo \"$FOO:$(pwd):$PATH\"", NULL};
    _cleanup_free_ char *o4 = exec_capture(shargs, &oe, &e);
    assert_non_null(strstr(o4, "bar-baz:/tmp:"));
    /* PATH is added when absent. */
    assert_non_null(strstr(o4, "/bin"));
    assert_int_equal(e.code, 0);

    free(exec_simple("/probe", "exit", "7", NULL, &e));
    assert_int_equal(e.code, 7);
    assert_int_equal(e.signal, 0);
    assert_int_equal(dt_exit_status(&e), 7);

    _cleanup_free_ char *o6 = exec_simple("/probe", "pid", NULL, NULL, &e);
    long pid = strtol(o6, NULL, 10);
    assert_true(pid > 1);
    assert_true(pid < 100);

    /* A signal death is reported as such. */
    free(exec_simple("/probe", "signal", "15", NULL, &e));
    assert_int_equal(e.signal, SIGTERM);
    assert_int_equal(dt_exit_status(&e), 128 + SIGTERM);

    /* Missing binary: an error, and no process of ours left behind. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    char *bad[] = {"/no/such/binary", NULL};
    struct dt_exec spec = {.args = bad, .stdio_fds = {-1, p[1], p[1]}};
    struct dt_process proc = {.pid = 0};
    struct dt_error *err = NULL;
    int r = dt_sandbox_exec(sb, &spec, &proc, &err);
    close(p[1]);
    close(p[0]);
    if (r >= 0)
        track(proc.pid);
    assert_true(r < 0);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "/no/such/binary"));
    dt_error_free(err);
    /* Only the init is our child (it is, after start): nothing else to reap. */
    siginfo_t si = {0};
    assert_int_equal(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    assert_int_equal(si.si_pid, 0);

    /* The sandbox still works. */
    free(exec_simple("/bin/true", NULL, NULL, NULL, &e));
    assert_int_equal(e.code, 0);
}

/* ---- 2. pty -------------------------------------------------------------------------------- */

static void
test_pty(void **state)
{
    struct dt_error *err = NULL;
    struct dt_exit e;
    create_and_start(NULL);

    char *args[] = {"/probe", "tty", NULL};
    struct dt_exec spec = {.args = args, .pty = true, .rows = 24, .cols = 80,
                           .stdio_fds = {-1, -1, -1}};
    struct dt_process proc;
    if (dt_sandbox_exec(sb, &spec, &proc, &err) < 0)
        fail_err("exec pty", err);
    track(proc.pid);
    assert_true(proc.pty_master >= 0);
    _cleanup_free_ char *out = read_until_eof(proc.pty_master, 10000);
    close(proc.pty_master);
    if (dt_process_wait(sb, &proc, false, &e, &err) < 0)
        fail_err("wait", err);
    untrack(proc.pid);
    assert_non_null(strstr(out, "isatty=1"));
    assert_non_null(strstr(out, "ttyname=/dev/pts/"));
    assert_int_equal(e.code, 0);

    char *sh[] = {"/bin/sh", NULL};
    spec.args = sh;
    if (dt_sandbox_exec(sb, &spec, &proc, &err) < 0)
        fail_err("exec sh on pty", err);
    track(proc.pid);
    const char input[] = "echo hi-$((1+1))\nexit 3\n";
    assert_int_equal(write_all(proc.pty_master, input, sizeof(input) - 1), 0);
    _cleanup_free_ char *out2 = read_until_eof(proc.pty_master, 10000);
    close(proc.pty_master);
    if (dt_process_wait(sb, &proc, false, &e, &err) < 0)
        fail_err("wait sh", err);
    untrack(proc.pid);
    /* The echo of the typed line contains "hi-$((1+1))", only the output contains "hi-2". */
    assert_non_null(strstr(out2, "hi-2"));
    assert_int_equal(e.code, 3);
}

/* ---- 3. stop/start keeps files ---------------------------------------------------------- */

static void
stop_start_roundtrip(void)
{
    struct dt_error *err = NULL;
    struct dt_exit e;
    create_and_start(NULL);
    _cleanup_free_ char *o1 = exec_simple("/probe", "write", "/data.txt", "hello", &e);
    assert_string_equal(o1, "ok\n");
    if (dt_sandbox_stop(sb, 100000, &err) < 0)
        fail_err("stop", err);
    assert_false(dt_sandbox_is_running(sb));
    assert_int_equal(dt_sandbox_pid(sb), -ESRCH);
    /* Stop is idempotent. */
    if (dt_sandbox_stop(sb, 100000, &err) < 0)
        fail_err("stop again", err);
    /* Exec in a stopped sandbox fails cleanly. */
    char *args[] = {"/bin/true", NULL};
    struct dt_exec spec = {.args = args, .stdio_fds = {-1, -1, -1}};
    struct dt_process proc;
    assert_int_equal(dt_sandbox_exec(sb, &spec, &proc, &err), -ESRCH);
    dt_error_free(err);
    err = NULL;

    static const int none[3] = {-1, -1, -1};
    if (dt_sandbox_start(sb, none, &err) < 0)
        fail_err("start again", err);
    assert_true(dt_sandbox_is_running(sb));
    /* Start while running: -EBUSY. */
    assert_int_equal(dt_sandbox_start(sb, none, &err), -EBUSY);
    dt_error_free(err);
    err = NULL;
    _cleanup_free_ char *o2 = exec_simple("/bin/cat", "/data.txt", NULL, NULL, &e);
    assert_string_equal(o2, "hello");
    assert_int_equal(e.code, 0);
}

static void
test_stop_start(void **state)
{
    stop_start_roundtrip();
}

static void
test_stop_start_disk(void **state)
{
    if (access("/dev/loop-control", F_OK) < 0 ||
        (access("/usr/sbin/mkfs.ext4", X_OK) < 0 && access("/sbin/mkfs.ext4", X_OK) < 0)) {
        fprintf(stderr, "SKIP part: no /dev/loop-control or mkfs.ext4\n");
        skip();
    }
    plan.disk_bytes = 64 * MiB;
    stop_start_roundtrip();
}

/* ---- 4. stop semantics ------------------------------------------------------------------- */

static void
test_stop_sigterm_handler(void **state)
{
    struct dt_error *err = NULL;
    struct dt_exit e;
    int p[2];
    set_args("/probe", "sigterm-handler", NULL);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int stdio[3] = {-1, p[1], p[1]};
    create_and_start(stdio);
    close(p[1]);
    /* Wait for "ready": the handler must be installed before we signal. */
    char buf[16] = {0};
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
    close(p[0]);
    assert_non_null(strstr(buf, "ready"));

    /* Stop through SIGTERM: returns quickly although the grace is 5 s. */
    uint64_t t0 = now_usec();
    if (dt_sandbox_stop(sb, 5000000, &err) < 0)
        fail_err("stop", err);
    uint64_t dt = now_usec() - t0;
    assert_false(dt_sandbox_is_running(sb));
    fprintf(stderr, "stop of a SIGTERM-handling init took %llu ms\n",
            (unsigned long long) dt / 1000);
    assert_true(dt < 2000000);

    /* The same init with dt_sandbox_wait: the real exit code. */
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int stdio2[3] = {-1, p[1], p[1]};
    if (dt_sandbox_start(sb, stdio2, &err) < 0)
        fail_err("start again", err);
    close(p[1]);
    memset(buf, 0, sizeof(buf));
    pfd.fd = p[0];
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
    close(p[0]);
    assert_int_equal(kill(dt_sandbox_pid(sb), SIGTERM), 0);
    t0 = now_usec();
    if (dt_sandbox_wait(sb, false, &e, &err) < 0)
        fail_err("wait", err);
    assert_true(now_usec() - t0 < 2000000);
    assert_int_equal(e.code, 42);
    assert_int_equal(e.signal, 0);
    assert_false(e.oom_killed);
    assert_false(dt_sandbox_is_running(sb));
}

static void
test_stop_sigterm_ignored(void **state)
{
    struct dt_error *err = NULL;
    create_and_start(NULL);
    /* A pid-namespace init without a handler does not get SIGTERM: stop must SIGKILL it after
     * the grace period. Also leave an exec'd child around, which must die as well. */
    char *args[] = {"/bin/sleep", "1000", NULL};
    struct dt_exec spec = {.args = args, .stdio_fds = {-1, -1, -1}};
    struct dt_process proc;
    if (dt_sandbox_exec(sb, &spec, &proc, &err) < 0)
        fail_err("exec", err);

    track(proc.pid);
    /* The exec'd sleep is our child (CLONE_PARENT): when the stop kills it, it stays a zombie
     * until we reap it, and the dying init waits in zap_pid_ns_processes() for every process of
     * its namespace to be reaped. A stop that only waits for the init deadlocks here; the
     * watchdog reaps the zombie after 3 s so that the test fails instead of hanging. */
    const uint64_t grace = 300000;
    struct watchdog w;
    watchdog_start(&w, 3000 + (int) (grace / 1000));
    uint64_t t0 = now_usec();
    int r = dt_sandbox_stop(sb, grace, &err);
    uint64_t dt = now_usec() - t0;
    bool deadlocked = watchdog_stop(&w);
    if (r < 0)
        fail_err("stop", err);
    fprintf(stderr, "stop of a SIGTERM-ignoring init took %llu ms (grace %llu ms)\n",
            (unsigned long long) dt / 1000, (unsigned long long) grace / 1000);
    if (deadlocked)
        fail_msg("BUG: dt_sandbox_stop() blocked until the caller reaped an exec'd process "
                 "(the init waits in zap_pid_ns_processes for our unreaped zombie)");
    assert_true(dt >= grace);
    assert_true(dt < grace + 3000000);
    assert_false(dt_sandbox_is_running(sb));

    struct dt_exit e;
    if (dt_process_wait(sb, &proc, false, &e, &err) < 0)
        fail_err("wait exec'd", err);
    untrack(proc.pid);
    assert_int_equal(e.signal, SIGKILL);
}

/* The same stop without an exec'd process around: only the grace period matters. */
static void
test_stop_sigterm_ignored_alone(void **state)
{
    struct dt_error *err = NULL;
    create_and_start(NULL);
    const uint64_t grace = 300000;
    uint64_t t0 = now_usec();
    if (dt_sandbox_stop(sb, grace, &err) < 0)
        fail_err("stop", err);
    uint64_t dt = now_usec() - t0;
    assert_true(dt >= grace);
    assert_true(dt < grace + 3000000);
    assert_false(dt_sandbox_is_running(sb));
}

/* ---- 5. pause/resume --------------------------------------------------------------------- */

static long long
host_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    return (long long) st.st_size;
}

static void
test_pause_resume(void **state)
{
    struct dt_error *err = NULL;
    create_and_start(NULL);
    char *args[] = {"/bin/sh", "-c", "while :; do echo x >> /tmp/c; done", NULL};
    struct dt_exec spec = {.args = args, .stdio_fds = {-1, -1, -1}};
    struct dt_process proc;
    if (dt_sandbox_exec(sb, &spec, &proc, &err) < 0)
        fail_err("exec loop", err);
    track(proc.pid);

    _cleanup_free_ char *path = xasprintf("%s/%s/upper/tmp/c", state_dir, plan.id);
    long long s0 = -1;
    for (int i = 0; i < 200 && s0 <= 0; i++) {
        usleep(10000);
        s0 = host_file_size(path);
    }
    assert_true(s0 > 0);

    if (dt_sandbox_pause(sb, &err) < 0)
        fail_err("pause", err);
    usleep(50000);
    long long a = host_file_size(path);
    usleep(200000);
    long long b = host_file_size(path);
    assert_true(a > 0);
    assert_int_equal(a, b);
    /* Frozen processes are still alive. */
    struct dt_exit e;
    assert_int_equal(dt_process_wait(sb, &proc, true, &e, NULL), -EAGAIN);

    if (dt_sandbox_resume(sb, &err) < 0)
        fail_err("resume", err);
    long long c = b;
    for (int i = 0; i < 100 && c == b; i++) {
        usleep(10000);
        c = host_file_size(path);
    }
    assert_true(c > b);

    assert_int_equal(kill(proc.pid, SIGKILL), 0);
    if (dt_process_wait(sb, &proc, false, &e, &err) < 0)
        fail_err("wait loop", err);
    untrack(proc.pid);
    assert_int_equal(e.signal, SIGKILL);
    assert_false(e.oom_killed);

    /* Stop works on a paused sandbox too (the freezer must be thawed for the kill). Exec into a
     * paused sandbox is refused at once: the new process would freeze on joining the cgroup. */
    if (dt_sandbox_pause(sb, &err) < 0)
        fail_err("pause 2", err);
    struct dt_process p2;
    assert_int_equal(dt_sandbox_exec(sb, &spec, &p2, &err), -EBUSY);
    assert_non_null(strstr(err->message, "paused"));
    dt_error_free(err);
    err = NULL;
    uint64_t t0 = now_usec();
    if (dt_sandbox_stop(sb, 100000, &err) < 0)
        fail_err("stop paused", err);
    assert_true(now_usec() - t0 < 3000000);
    assert_false(dt_sandbox_is_running(sb));
}


/* ---- regressions: hostile files in the sandbox's own writable layer ------------------------ */

/* A FIFO planted at /etc/passwd in the upper directory (read by the host to resolve users) must
 * not block a restart: found in review. */
static void
test_planted_fifos(void **state)
{
    struct dt_error *err = NULL;
    struct dt_exit e;
    create_and_start(NULL);
    free(exec_simple("/bin/busybox", "sh", "-c",
                     "rm -f /etc/passwd && busybox mkfifo /etc/passwd", &e));
    assert_int_equal(e.code, 0);
    /* /dev/null is a mount point: the sandbox cannot replace it (the exec path also refuses
     * anything but a character device there). */
    free(exec_simple("/bin/busybox", "sh", "-c", "rm /dev/null", &e));
    assert_int_not_equal(e.code, 0);

    /* Restart: user lookup reads the upper dir's /etc/passwd first; the FIFO is skipped. */
    if (dt_sandbox_stop(sb, 0, &err) < 0)
        fail_err("stop", err);
    uint64_t t0 = now_usec();
    if (dt_sandbox_start(sb, NULL, &err) < 0)
        fail_err("start again", err);
    assert_true(now_usec() - t0 < 5000000);
    assert_true(dt_sandbox_is_running(sb));
}

/* ---- 6. OOM of an exec'd process ------------------------------------------------------- */

static void
test_oom_exec(void **state)
{
    struct dt_exit e;
    plan.memory_bytes = 32 * MiB;
    create_and_start(NULL);
    _cleanup_free_ char *out = exec_simple("/probe", "alloc", "200", NULL, &e);
    assert_int_equal(e.signal, SIGKILL);
    assert_true(e.oom_killed);
    assert_int_equal(dt_exit_status(&e), 128 + SIGKILL);
    assert_null(strstr(out, "allocated"));
    assert_true(dt_sandbox_is_running(sb));
    struct dt_exit w;
    assert_int_equal(dt_sandbox_wait(sb, true, &w, NULL), -EAGAIN);

    /* A plain SIGKILL afterwards is not counted as OOM. */
    free(exec_simple("/probe", "signal", "9", NULL, &e));
    assert_int_equal(e.signal, SIGKILL);
    assert_false(e.oom_killed);
    _cleanup_free_ char *o3 = exec_simple("/probe", "id", NULL, NULL, &e);
    assert_string_equal(o3, "uid=0 gid=0 euid=0\n");
}

/* ---- 7. re-adoption ------------------------------------------------------------------------ */

static void
test_readopt(void **state)
{
    struct dt_error *err = NULL;
    struct dt_exit e;
    create_and_start(NULL);
    pid_t pid = dt_sandbox_pid(sb);
    assert_true(pid > 0);
    /* "Crash": forget the handle without stopping. */
    orphan_init = pid;
    dt_sandbox_free(sb);
    sb = NULL;
    assert_int_equal(kill(pid, 0), 0);

    if (dt_sandbox_load(rt, &plan, &sb, &err) < 0)
        fail_err("load", err);
    assert_true(dt_sandbox_is_running(sb));
    assert_int_equal(dt_sandbox_pid(sb), pid);
    assert_true(dt_sandbox_pidfd(sb) >= 0);
    assert_int_equal(dt_sandbox_wait(sb, true, &e, NULL), -EAGAIN);

    _cleanup_free_ char *o1 = exec_simple("/probe", "id", NULL, NULL, &e);
    assert_string_equal(o1, "uid=0 gid=0 euid=0\n");
    _cleanup_free_ char *o2 = exec_simple("/probe", "write", "/after-load", "x", &e);
    assert_string_equal(o2, "ok\n");

    /* Loading again while a handle exists must not break anything either (read-only). */
    struct dt_sandbox *again = NULL;
    if (dt_sandbox_load(rt, &plan, &again, &err) < 0)
        fail_err("load again", err);
    assert_true(dt_sandbox_is_running(again));
    dt_sandbox_free(again);

    if (dt_sandbox_destroy(sb, &err) < 0)
        fail_err("destroy", err);
    assert_false(dt_sandbox_is_running(sb));
    dt_sandbox_free(sb);
    sb = NULL;
    /* The init died (a zombie of ours, since this process also started it). */
    siginfo_t si = {0};
    assert_int_equal(waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG), 0);
    assert_int_equal(si.si_pid, pid);
    orphan_init = 0;
    _cleanup_free_ char *dir = xasprintf("%s/%s", state_dir, plan.id);
    assert_int_equal(access(dir, F_OK), -1);

    /* Load of a destroyed sandbox: an error. */
    assert_true(dt_sandbox_load(rt, &plan, &again, &err) < 0);
    assert_non_null(err);
    dt_error_free(err);
}

/* ---- 8. leak check ------------------------------------------------------------------------ */

struct host_state {
    int mounts;
    int netdevs;
    int our_veth;
    int loops;
    int cgroups;
    int procs;
    int fds;
    int state_entries;
};

static char *
memory_cgroup_dir(void)
{
    char *buf;
    size_t len;
    if (read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &buf, &len) < 0)
        return NULL;
    char *res = NULL;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        if (strcmp(c1 + 1, "memory") == 0) {
            res = xasprintf("/sys/fs/cgroup/memory%s/%s", strcmp(c2 + 1, "/") ? c2 + 1 : "",
                            cg_subdir);
            break;
        }
    }
    free(buf);
    return res;
}

/* Loop devices whose backing file is below our state dir. */
static int
count_our_loops(void)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "loop", 4) != 0)
            continue;
        char *p = xasprintf("/sys/block/%s/loop/backing_file", de->d_name);
        char *bf = NULL;
        if (read_file_at(AT_FDCWD, p, 4096, &bf, NULL) == 0 &&
            strncmp(bf, state_dir, strlen(state_dir)) == 0)
            n++;
        free(bf);
        free(p);
    }
    closedir(d);
    return n;
}

/* Processes running as a host uid of our slot's range. */
static int
count_slot_procs(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    uint64_t lo = DT_UID_BASE + (uint64_t) slot * DT_UID_RANGE, hi = lo + DT_UID_RANGE;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char *p = xasprintf("/proc/%s/status", de->d_name);
        char *buf = NULL;
        if (read_file_at(AT_FDCWD, p, 1 << 16, &buf, NULL) == 0) {
            char *u = strstr(buf, "\nUid:");
            unsigned long long uid;
            if (u && sscanf(u + 5, "%llu", &uid) == 1 && uid >= lo && uid < hi)
                n++;
        }
        free(buf);
        free(p);
    }
    closedir(d);
    return n;
}

static void
host_state_get(struct host_state *s)
{
    _cleanup_free_ char *cg = memory_cgroup_dir();
    char veth[32];
    snprintf(veth, sizeof(veth), "/sys/class/net/dtv%u", slot);
    *s = (struct host_state){
            .mounts = dt_test_count_lines("/proc/self/mountinfo"),
            .netdevs = dt_test_count_dir("/sys/class/net"),
            .our_veth = access(veth, F_OK) == 0,
            .loops = count_our_loops(),
            .cgroups = cg ? dt_test_count_dir(cg) : -1,
            .procs = count_slot_procs(),
            .fds = dt_test_count_dir("/proc/self/fd"),
            .state_entries = dt_test_count_dir(state_dir),
    };
}

static void
host_state_print(const char *what, const struct host_state *s)
{
    fprintf(stderr,
            "%s: mounts=%d netdevs=%d our_veth=%d loops=%d cgroups=%d procs=%d fds=%d "
            "state=%d\n",
            what, s->mounts, s->netdevs, s->our_veth, s->loops, s->cgroups, s->procs, s->fds,
            s->state_entries);
}

static void
one_cycle(enum dt_net_mode mode)
{
    struct dt_exit e;
    plan_reset();
    plan.net_mode = mode;
    create_and_start(NULL);
    char *args[] = {"/bin/true", NULL};
    struct dt_exec spec = {.args = args, .stdio_fds = {-1, -1, -1}};
    struct dt_process proc;
    CHECK_OK(dt_sandbox_exec(sb, &spec, &proc, errp_), "exec");
    track(proc.pid);
    CHECK_OK(dt_process_wait(sb, &proc, false, &e, errp_), "wait");
    untrack(proc.pid);
    assert_int_equal(e.code, 0);
    CHECK_OK(dt_sandbox_destroy(sb, errp_), "destroy");
    dt_sandbox_free(sb);
    sb = NULL;
}

static void
test_leaks(void **state)
{
    int cycles = 200, bridge_cycles = 20;
    const char *env = getenv("DT_ITEST_CYCLES");
    if (env) {
        cycles = (int) strtol(env, NULL, 10);
        bridge_cycles = cycles / 10;
    }

    /* Warm up: the first bridge start creates dt0 and the nftables table, which are meant to
     * stay; a failure there skips the bridge part. */
    bool bridge = true;
    {
        struct dt_error *err = NULL;
        plan_reset();
        plan.net_mode = DT_NET_BRIDGE;
        static const int none[3] = {-1, -1, -1};
        if (dt_sandbox_create(rt, &plan, &sb, &err) < 0)
            fail_err("create", err);
        if (dt_sandbox_start(sb, none, &err) < 0) {
            fprintf(stderr, "SKIP bridge part of the leak check: %s\n", err->message);
            dt_error_free(err);
            bridge = false;
        }
        CHECK_OK(dt_sandbox_destroy(sb, errp_), "destroy warm-up");
        dt_sandbox_free(sb);
        sb = NULL;
        one_cycle(DT_NET_NONE);
    }

    struct host_state before, after;
    host_state_get(&before);
    host_state_print("before", &before);
    uint64_t t0 = now_usec();
    int every = bridge && bridge_cycles > 0 ? cycles / bridge_cycles : 0;
    for (int i = 0; i < cycles; i++)
        one_cycle(every && i % every == every - 1 ? DT_NET_BRIDGE : DT_NET_NONE);
    double secs = (double) (now_usec() - t0) / 1e6;
    fprintf(stderr, "%d create/start/exec/destroy cycles (%d bridged) in %.2f s: %.1f/s\n",
            cycles, every ? cycles / every : 0, secs, cycles / secs);
    /* Destroy kills through the cgroup; give the kernel a moment to finish tearing down the
     * namespaces of the last one (the veth dies with its netns asynchronously). */
    for (int i = 0; i < 100; i++) {
        host_state_get(&after);
        if (memcmp(&before, &after, sizeof(before)) == 0)
            break;
        usleep(20000);
    }
    host_state_print("after", &after);
    assert_int_equal(after.mounts, before.mounts);
    assert_int_equal(after.our_veth, 0);
    assert_int_equal(after.netdevs, before.netdevs);
    assert_int_equal(after.loops, before.loops);
    assert_int_equal(after.cgroups, before.cgroups);
    assert_int_equal(after.procs, 0);
    assert_int_equal(after.fds, before.fds);
    assert_int_equal(after.state_entries, before.state_entries);
}

/* ---- 9. bad input ------------------------------------------------------------------------ */

static void
expect_create_fails(int expected)
{
    struct dt_error *err = NULL;
    int before = dt_test_count_dir(state_dir);
    int r = dt_sandbox_create(rt, &plan, &sb, &err);
    if (r >= 0)
        fail_msg("create of a bad plan succeeded");
    assert_int_equal(r, expected);
    assert_non_null(err);
    assert_non_null(err->message);
    assert_true(err->message[0] != 0);
    fprintf(stderr, "  rejected as expected: %s\n", err->message);
    dt_error_free(err);
    assert_null(sb);
    assert_int_equal(dt_test_count_dir(state_dir), before);
    if (plan.id && strncmp(plan.id, "sbx-", 4) == 0) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", state_dir, plan.id);
        assert_int_equal(access(dir, F_OK), -1);
    }
}

static void
test_bad_input(void **state)
{
    static const char *const bad_ids[] = {"", "a/b", "..", "x y", "a\nb",
                                          ("0123456789012345678901234567890123456789"
                                           "0123456789012345678901234")};
    for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
        free(plan.id);
        plan.id = xstrdup(bad_ids[i]);
        expect_create_fails(-EINVAL);
    }
    free(plan.id);
    plan.id = NULL;
    expect_create_fails(-EINVAL);

    plan_reset();
    strv_free(plan.layers);
    plan.layers = NULL;
    strv_push(&plan.layers, "/nonexistent/layer/dir");
    expect_create_fails(-ENOENT);

    plan_reset();
    plan.memory_bytes = 1024;
    expect_create_fails(-EINVAL);

    /* An existing id: -EEXIST, and the existing sandbox is untouched. */
    plan_reset();
    create_and_start(NULL);
    struct dt_sandbox *dup = NULL;
    struct dt_error *err = NULL;
    assert_int_equal(dt_sandbox_create(rt, &plan, &dup, &err), -EEXIST);
    assert_non_null(err);
    dt_error_free(err);
    assert_null(dup);
    assert_true(dt_sandbox_is_running(sb));
    struct dt_exit e;
    free(exec_simple("/bin/true", NULL, NULL, NULL, &e));
    assert_int_equal(e.code, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_exec, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_pty, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_stop_start, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_stop_start_disk, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_stop_sigterm_handler, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_stop_sigterm_ignored_alone, test_setup,
                                            test_teardown),
            cmocka_unit_test_setup_teardown(test_stop_sigterm_ignored, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_pause_resume, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_oom_exec, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_planted_fifos, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_readopt, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_bad_input, test_setup, test_teardown),
            cmocka_unit_test_setup_teardown(test_leaks, test_setup, test_teardown),
    };
    dt_test_require_root();
    /* DT_TEST_FILTER=test_pty runs one test (a cmocka glob). */
    if (getenv("DT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
