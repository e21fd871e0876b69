/* SPDX-License-Identifier: Apache-2.0 */
/* The runner against the real kernel: a sandbox with daytona-agent as init on the default rootfs
 * answers the toolbox API, keeps its files across stop/start, is noticed when its agent dies, is
 * re-adopted by a second runner (a restarted daytonad), and leaves nothing behind on destroy. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "testlib.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "server/runner.h"
#include "dt/banned.h"

#define CGROUP_SUBDIR "daytona-test-runner"
#define SANDBOX_ID    "itest-runner-1"

static char *agent_path;
static char *data_dir;
/* The runner of the running test, for cleanup_leftovers() after a failed assertion (the slot
 * lock it holds would keep another runner of this process from opening the sandbox). */
static struct dt_runner *live_runner;
/* Each test's loop and timer: static, so that cleanup after a failed assertion (which leaves
 * the test function by longjmp) can still close them. */
static uv_loop_t g_loop;
static bool loop_live;
static uv_timer_t g_timer;

/* The agent binary: $DT_AGENT, or next to $DT_DAYTONAD (CMake's bin/). NULL when missing. */
static char *
find_agent(void)
{
    const char *a = getenv("DT_AGENT");
    const char *d = getenv("DT_DAYTONAD");
    char *p = NULL;
    if (a && *a)
        p = xstrdup(a);
    else if (d && *d) {
        const char *slash = strrchr(d, '/');
        p = slash ? xasprintf("%.*s/daytona-agent", (int) (slash - d), d)
                  : xstrdup("daytona-agent");
    }
    if (p && access(p, X_OK) < 0) {
        free(p);
        p = NULL;
    }
    return p;
}

/* POST BODY to PATH over the unix socket SOCK, HTTP/1.1 with Connection: close; returns the whole
 * response (malloc'ed) or NULL. */
static char *
http_post(const char *sock, const char *path, const char *body)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 60};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || strlen(sock) >= sizeof(sa.sun_path))
        return NULL;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    char *req = xasprintf("POST %s HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          path, strlen(body), body);
    int r = write_all(fd, req, strlen(req));
    free(req);
    char *out = NULL;
    if (r >= 0 && read_fd_all(fd, 16 << 20, &out, NULL) < 0)
        out = NULL;
    close(fd);
    return out;
}

/* Run COMMAND through the agent of the sandbox; returns the response (malloc'ed). */
static char *
execute(struct dt_runner *r, const char *command)
{
    char *sock = dt_runner_agent_socket(r, SANDBOX_ID);
    /* COMMAND holds no quotes or backslashes that need JSON escaping beyond single quotes. */
    char *body = xasprintf("{\"command\":\"%s\",\"timeout\":60}", command);
    char *resp = http_post(sock, "/process/execute", body);
    free(body);
    free(sock);
    assert_non_null(resp);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    return resp;
}

static bool
contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        fprintf(stderr, "'%s' not in:\n%s\n", needle, hay);
        return false;
    }
    return true;
}

/* Lines printed by a shell command on the host (fingerprints). */
static char *
host_sh(const char *cmd)
{
    char *argv[] = {(char *) "/bin/sh", (char *) "-c", (char *) cmd, NULL};
    char *out = NULL;
    int st = dt_test_run(argv, &out);
    assert_true(st >= 0 && WIFEXITED(st));
    return out;
}

/* What a sandbox of ours could leave on the host: cgroups below our subdir, loop devices and
 * mounts of our data dir, processes in our slot's uid range, runtime state entries. */
static char *
fingerprint(uint32_t slot)
{
    uint64_t lo = 0x1000000ull + (uint64_t) slot * 65536, hi = lo + 65536;
    char *cmd = xasprintf(
            "echo cg $(find /sys/fs/cgroup -maxdepth 7 -type d -path '*/" CGROUP_SUBDIR "/*' "
            "2>/dev/null | wc -l);"
            "echo loops $(cat /sys/block/loop*/loop/backing_file 2>/dev/null | grep -c '%s');"
            "echo mounts $(grep -c '%s' /proc/self/mountinfo);"
            "echo procs $(ps -eo uid=,stat= | awk '$1 >= %llu && $1 < %llu && $2 !~ /Z/' | wc -l);"
            "echo state $(ls '%s/runtime' | wc -l);"
            "echo links $(ls /sys/class/net | grep -c '^dtv%u$');"
            "echo nft $(nft list table bridge daytona 2>/dev/null | grep -c '\\<dtv%u\\>')",
            data_dir, data_dir, (unsigned long long) lo, (unsigned long long) hi, data_dir, slot,
            slot);
    char *out = host_sh(cmd);
    free(cmd);
    return out;
}

static int exits_seen;
static char last_exit_id[80];

static void
on_exit_cb(const char *id, const struct dt_exit *e, void *userdata)
{
    exits_seen++;
    snprintf(last_exit_id, sizeof(last_exit_id), "%s", id);
}

static void
timeout_cb(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static struct dt_runner *
new_runner(uv_loop_t *loop)
{
    struct dt_runner_config cfg = {
            .data_dir = data_dir,
            .agent_binary = agent_path,
            .cgroup_subdir = CGROUP_SUBDIR,
            .loop = loop,
            .on_exit = on_exit_cb,
    };
    struct dt_runner *r = NULL;
    struct dt_error *err = NULL;
    int k = dt_runner_new(&cfg, &r, &err);
    if (k < 0)
        fprintf(stderr, "dt_runner_new: %s\n", err->message);
    assert_int_equal(k, 0);
    live_runner = r;
    return r;
}

static void
start(struct dt_runner *r, const struct dt_runner_spec *spec)
{
    struct dt_error *err = NULL;
    int k = dt_runner_start(r, spec, &err);
    if (k < 0)
        fprintf(stderr, "dt_runner_start: %s\n", err->message);
    assert_int_equal(k, 0);
    assert_true(dt_runner_is_running(r, spec->id));
}

/* The value of the cgroup v1 file FILE of the sandbox in controller CTRL (malloc'ed). */
static char *
cgroup_value(const char *ctrl, const char *file)
{
    char *cmd = xasprintf("cat \"$(find /sys/fs/cgroup/%s -maxdepth 6 -type d -path '*/"
                          CGROUP_SUBDIR "/" SANDBOX_ID "' | head -n1)/%s\"", ctrl, file);
    char *out = host_sh(cmd);
    free(cmd);
    return out;
}

static void
assert_limits(void)
{
    char *v = cgroup_value("memory", "memory.limit_in_bytes");
    assert_string_equal(v, "1073741824\n");
    free(v);
    v = cgroup_value("cpu", "cpu.cfs_quota_us");
    char *period = cgroup_value("cpu", "cpu.cfs_period_us");
    assert_string_equal(v, period); /* one CPU */
    free(period);
    free(v);
}

static uint32_t
slot_of_sandbox(void)
{
    char *path = xasprintf("%s/sandboxes/%s", data_dir, SANDBOX_ID);
    char *plan = dt_test_read_trimmed(path, "plan");
    free(path);
    assert_non_null(plan);
    char *s = strstr(plan, "\"slot\": ");
    assert_non_null(s);
    unsigned long v = strtoul(s + 8, NULL, 10);
    free(plan);
    return (uint32_t) v;
}

static void
test_lifecycle(void **state)
{
    struct dt_error *err = NULL;
    char *env[] = {(char *) "GREETING=hello", NULL};
    struct dt_runner_spec spec = {
            .id = SANDBOX_ID, .cpu = 1, .memory_gib = 1, .disk_gib = 1, .env = env,
    };
    char *resp;
    int k;

    assert_int_equal(uv_loop_init(&g_loop), 0);
    loop_live = true;
    uv_timer_init(&g_loop, &g_timer);
    struct dt_runner *r = new_runner(&g_loop);

    /* (Snapshot names are resolved to layers by the server: tests/image, tests/sdk.) */

    start(r, &spec);
    assert_limits();
    uint32_t slot = slot_of_sandbox();
    /* Nothing of ours existed before: the baseline is all zeros. */
    char *before = xstrdup("cg 0\nloops 0\nmounts 0\nprocs 0\nstate 0\nlinks 0\nnft 0\n");
    {
        /* ... and the fingerprint does see a running sandbox. */
        char *running = fingerprint(slot);
        fprintf(stderr, "while running:\n%s", running);
        assert_true(strstr(running, "cg 0") == NULL && strstr(running, "loops 1") != NULL &&
                    strstr(running, "procs 0") == NULL && strstr(running, "state 1") != NULL &&
                    strstr(running, "links 1") != NULL && strstr(running, "nft 0") == NULL);
        free(running);
    }

    resp = execute(r, "id -un; python3 -c 'print(6*7)'; ls /home; echo $GREETING");
    assert_true(contains(resp, "daytona"));
    assert_true(contains(resp, "42"));
    assert_true(contains(resp, "hello"));
    free(resp);
    /* The sandbox's root is the default rootfs with the host's /usr read-only. */
    resp = execute(r, "touch /usr/x 2>&1; ls -ld /bin /tmp; python3 -c 'import ssl; "
                      "assert len(ssl.create_default_context().get_ca_certs()) > 100' && "
                      "echo ca-ok; test -e /etc/ssl/private || echo no-private");
    assert_true(contains(resp, "Read-only file system"));
    assert_true(contains(resp, "/bin -> usr/bin"));
    assert_true(contains(resp, "drwxrwxrwt"));
    assert_true(contains(resp, "ca-ok"));
    assert_true(contains(resp, "no-private")); /* the host's private keys are not there */
    free(resp);

    /* Files survive stop/start (the disk image is kept). */
    free(execute(r, "echo persisted > /home/daytona/f.txt"));
    k = dt_runner_stop(r, SANDBOX_ID, false, &err);
    assert_int_equal(k, 0);
    assert_false(dt_runner_is_running(r, SANDBOX_ID));
    assert_int_equal(dt_runner_stop(r, SANDBOX_ID, true, &err), 0); /* idempotent */
    assert_int_equal(exits_seen, 0); /* a requested stop is not reported */
    start(r, &spec);
    resp = execute(r, "cat /home/daytona/f.txt");
    assert_true(contains(resp, "persisted"));
    free(resp);

    /* The agent dying on its own is noticed through the loop. */
    pid_t pid = dt_runner_pid(r, SANDBOX_ID);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    uv_timer_start(&g_timer, timeout_cb, 10000, 0);
    while (exits_seen == 0 && uv_timer_get_due_in(&g_timer) > 0)
        uv_run(&g_loop, UV_RUN_ONCE);
    assert_int_equal(exits_seen, 1);
    assert_string_equal(last_exit_id, SANDBOX_ID);
    assert_false(dt_runner_is_running(r, SANDBOX_ID));
    start(r, &spec);
    resp = execute(r, "cat /home/daytona/f.txt");
    assert_true(contains(resp, "persisted"));
    free(resp);

    /* A daytonad restarted while the sandbox was stopped starts it again, disk intact. */
    assert_int_equal(dt_runner_stop(r, SANDBOX_ID, false, &err), 0);
    dt_runner_free(r);
    live_runner = NULL;
    uv_run(&g_loop, UV_RUN_NOWAIT); /* close callbacks */
    r = new_runner(&g_loop);
    start(r, &spec);
    resp = execute(r, "cat /home/daytona/f.txt; pip3 config list");
    assert_true(contains(resp, "persisted"));
    assert_true(contains(resp, "break-system-packages"));
    free(resp);

    /* A restarted daytonad: a second runner on the same data dir re-adopts the running
     * sandbox without recreating anything. */
    pid = dt_runner_pid(r, SANDBOX_ID);
    dt_runner_free(r);
    live_runner = NULL;
    uv_run(&g_loop, UV_RUN_NOWAIT); /* close callbacks */
    r = new_runner(&g_loop);
    assert_false(dt_runner_is_running(r, SANDBOX_ID));
    spec.memory_gib = 2; /* ignored: the persisted plan wins */
    start(r, &spec);
    assert_int_equal(dt_runner_pid(r, SANDBOX_ID), pid);
    assert_limits();
    resp = execute(r, "cat /home/daytona/f.txt");
    assert_true(contains(resp, "persisted"));
    free(resp);

    /* Destroy leaves nothing: state, cgroups, loop devices, mounts, processes. */
    k = dt_runner_destroy(r, SANDBOX_ID, &err);
    if (k < 0)
        fprintf(stderr, "destroy: %s\n", err->message);
    assert_int_equal(k, 0);
    /* The first init was our child (same process): reap it. */
    (void) waitpid(pid, NULL, 0);
    assert_false(dt_runner_is_running(r, SANDBOX_ID));
    assert_int_equal(dt_runner_destroy(r, SANDBOX_ID, &err), 0); /* idempotent */
    assert_int_equal(dt_runner_stop(r, SANDBOX_ID, false, &err), -ENOENT);
    dt_error_free(err);
    err = NULL;
    char *sbdir = xasprintf("%s/sandboxes/%s", data_dir, SANDBOX_ID);
    struct stat st;
    assert_int_equal(stat(sbdir, &st), -1);
    free(sbdir);
    char *after = fingerprint(slot);
    assert_string_equal(after, before);
    free(after);
    free(before);

    dt_runner_free(r);
    live_runner = NULL;
    uv_close((uv_handle_t *) &g_timer, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
    loop_live = false;
}

/* A daytonad killed with SIGKILL: a new process re-adopts the sandbox, whose init is not its
 * child (no exit status then), and notices when that init dies. */
static void
test_readopt_after_kill9(void **state)
{
    struct dt_runner_spec spec = {.id = SANDBOX_ID, .cpu = 1, .memory_gib = 1, .disk_gib = 1};
    struct dt_error *err = NULL;
    int pipefd[2];
    pid_t agent = 0;

    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* The "old daytonad": start the sandbox, report its init, wait to be killed. */
        uv_loop_t child_loop;
        struct dt_runner_config cfg = {
                .data_dir = data_dir, .agent_binary = agent_path,
                .cgroup_subdir = CGROUP_SUBDIR, .loop = &child_loop,
        };
        struct dt_runner *r = NULL;
        if (uv_loop_init(&child_loop) < 0 || dt_runner_new(&cfg, &r, NULL) < 0 ||
            dt_runner_start(r, &spec, NULL) < 0)
            _exit(1);
        pid_t p = dt_runner_pid(r, SANDBOX_ID);
        if (write(pipefd[1], &p, sizeof(p)) != sizeof(p))
            _exit(1);
        for (;;)
            pause();
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &agent, sizeof(agent)), (ssize_t) sizeof(agent));
    close(pipefd[0]);
    assert_true(agent > 0);
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, NULL, 0), child);

    assert_int_equal(uv_loop_init(&g_loop), 0);
    loop_live = true;
    uv_timer_init(&g_loop, &g_timer);
    struct dt_runner *r = new_runner(&g_loop);
    start(r, &spec);
    assert_int_equal(dt_runner_pid(r, SANDBOX_ID), agent);
    char *resp = execute(r, "id -un");
    assert_true(contains(resp, "daytona"));
    free(resp);
    uint32_t slot = slot_of_sandbox();

    exits_seen = 0;
    assert_int_equal(kill(agent, SIGKILL), 0);
    uv_timer_start(&g_timer, timeout_cb, 10000, 0);
    while (exits_seen == 0 && uv_timer_get_due_in(&g_timer) > 0)
        uv_run(&g_loop, UV_RUN_ONCE);
    assert_int_equal(exits_seen, 1);
    assert_false(dt_runner_is_running(r, SANDBOX_ID));

    assert_int_equal(dt_runner_destroy(r, SANDBOX_ID, &err), 0);
    assert_int_equal(waitpid(agent, NULL, 0), agent); /* orphaned to us, the subreaper */
    char *after = fingerprint(slot);
    assert_string_equal(after, "cg 0\nloops 0\nmounts 0\nprocs 0\nstate 0\nlinks 0\nnft 0\n");
    free(after);
    dt_runner_free(r);
    live_runner = NULL;
    uv_close((uv_handle_t *) &g_timer, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
    loop_live = false;
}

/* The default rootfs is built once and rebuilt when its recipe changes. */
static void
test_rootfs_default(void **state)
{
    struct dt_error *err = NULL;
    char *path = NULL, *path2 = NULL;
    struct stat st, st2;

    assert_int_equal(dt_rootfs_default_ensure(data_dir, &path, &err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(dt_rootfs_default_ensure(data_dir, &path2, &err), 0);
    assert_string_equal(path, path2);
    assert_int_equal(lstat(path2, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino); /* not rebuilt */
    free(path2);

    char *home = xasprintf("%s/home/daytona", path);
    assert_int_equal(stat(home, &st), 0);
    assert_int_equal(st.st_uid, 1000);
    free(home);
    char *passwd = dt_test_read_trimmed(path, "etc/passwd");
    assert_non_null(strstr(passwd, "daytona:x:1000:1000:daytona:/home/daytona:/bin/bash"));
    free(passwd);

    /* A changed recipe: rebuilt (another inode). */
    char *recipe = xasprintf("%s/images/default.recipe", data_dir);
    FILE *f = fopen(recipe, "we");
    assert_non_null(f);
    fputs("old\n", f);
    fclose(f);
    free(recipe);
    assert_int_equal(dt_rootfs_default_ensure(data_dir, &path2, &err), 0);
    assert_int_equal(lstat(path2, &st2), 0);
    assert_int_not_equal(st.st_ino, st2.st_ino);
    free(path2);
    free(path);
}

/* A failed assertion leaves the sandbox running: destroy it through a fresh runner, reap what
 * was our child, and remove our cgroup subdir. */
static void
close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
cleanup_leftovers(void)
{
    uv_loop_t l2;
    struct dt_runner_config cfg = {
            .data_dir = data_dir, .agent_binary = agent_path, .cgroup_subdir = CGROUP_SUBDIR,
            .loop = &l2,
    };
    struct dt_runner *r = NULL;
    if (live_runner) {
        (void) dt_runner_destroy(live_runner, SANDBOX_ID, NULL);
        dt_runner_free(live_runner);
        live_runner = NULL;
    }
    if (loop_live) {
        uv_walk(&g_loop, close_handle, NULL);
        uv_run(&g_loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&g_loop);
        loop_live = false;
    }
    if (uv_loop_init(&l2) == 0) {
        if (dt_runner_new(&cfg, &r, NULL) == 0) {
            (void) dt_runner_destroy(r, SANDBOX_ID, NULL);
            dt_runner_free(r);
        }
        uv_run(&l2, UV_RUN_DEFAULT);
        (void) uv_loop_close(&l2);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    char *argv[] = {(char *) "/bin/sh", (char *) "-c",
                    (char *) "find /sys/fs/cgroup -maxdepth 7 -depth -type d -path '*/"
                             CGROUP_SUBDIR "*' -exec rmdir {} + 2>/dev/null; true",
                    NULL};
    (void) dt_test_run(argv, NULL);
}

/* A missing agent binary is a clear error at startup, not at the first sandbox. */
static void
test_missing_agent(void **state)
{
    uv_loop_t l;
    struct dt_runner_config cfg = {
            .data_dir = data_dir, .agent_binary = "/nonexistent/daytona-agent",
            .cgroup_subdir = CGROUP_SUBDIR, .loop = &l,
    };
    struct dt_runner *r = NULL;
    struct dt_error *err = NULL;
    assert_int_equal(uv_loop_init(&l), 0);
    assert_int_equal(dt_runner_new(&cfg, &r, &err), -ENOENT);
    assert_null(r);
    assert_non_null(strstr(err->message, "agent binary '/nonexistent/daytona-agent'"));
    dt_error_free(err);
    assert_int_equal(uv_loop_close(&l), 0);
}

static int
teardown(void **state)
{
    cleanup_leftovers();
    return 0;
}

int
main(void)
{
    dt_test_require_root();
    /* Inits orphaned by test_readopt_after_kill9's "old daytonad" become ours to reap. */
    (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
    agent_path = find_agent();
    if (!agent_path)
        dt_test_skip("daytona-agent not found (set DT_AGENT or DT_DAYTONAD)");
    data_dir = dt_test_mkdtemp("dt-runner-");
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rootfs_default),
            cmocka_unit_test(test_missing_agent),
            cmocka_unit_test_teardown(test_lifecycle, teardown),
            cmocka_unit_test_teardown(test_readopt_after_kill9, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup_leftovers();
    /* A dying sandbox's mount namespace may hold its mounts for a moment (rmdir: EBUSY). */
    struct stat st;
    for (int i = 0; i < 50 && stat(data_dir, &st) == 0; i++) {
        if (i > 0)
            usleep(100 * 1000);
        dt_test_rm_rf(data_dir);
    }
    free(data_dir);
    free(agent_path);
    return rc;
}
