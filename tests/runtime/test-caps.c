/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for capability handling: the default mask and names, then (as root, in forked children)
 * dt_caps_apply() checked through /proc/self/status, through real effects (mount needs
 * CAP_SYS_ADMIN, chown needs CAP_CHOWN), and across execve() for root and for a non-root user. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "runtime/caps.h"
#include "testlib.h"
#include "dt/banned.h"

#define BIT(c) (UINT64_C(1) << (c))

struct caps {
    uint64_t inh, prm, eff, bnd, amb;
};

static uint64_t
status_field(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    if (!p)
        fail_msg("no %s in status", key);
    p += strlen(key);
    while (*p == ':' || *p == '\t' || *p == ' ')
        p++;
    return strtoull(p, NULL, 16);
}

static void
parse_caps(const char *status, struct caps *c)
{
    c->inh = status_field(status, "\nCapInh");
    c->prm = status_field(status, "\nCapPrm");
    c->eff = status_field(status, "\nCapEff");
    c->bnd = status_field(status, "\nCapBnd");
    c->amb = status_field(status, "\nCapAmb");
}

static void
test_default_mask(void **state)
{
    /* What `grep CapEff /proc/self/status` prints in a default Docker container. */
    assert_int_equal(dt_caps_default_mask(), 0x00000000a80425fbULL);
    assert_false(dt_caps_default_mask() & BIT(CAP_SYS_ADMIN));
    assert_true(dt_caps_default_mask() & BIT(CAP_CHOWN));
}

static void
test_from_name(void **state)
{
    assert_int_equal(dt_caps_from_name("CAP_NET_ADMIN"), CAP_NET_ADMIN);
    assert_int_equal(dt_caps_from_name("net_admin"), CAP_NET_ADMIN);
    assert_int_equal(dt_caps_from_name("Cap_Sys_Admin"), CAP_SYS_ADMIN);
    assert_int_equal(dt_caps_from_name("chown"), CAP_CHOWN);
    assert_int_equal(dt_caps_from_name("CAP_AUDIT_WRITE"), CAP_AUDIT_WRITE);
    assert_int_equal(dt_caps_from_name("cap_checkpoint_restore"), CAP_CHECKPOINT_RESTORE);
    assert_int_equal(dt_caps_from_name("CAP_BPF"), CAP_BPF);
    assert_int_equal(dt_caps_from_name(""), -EINVAL);
    assert_int_equal(dt_caps_from_name("CAP_"), -EINVAL);
    assert_int_equal(dt_caps_from_name("CAP_CAP_CHOWN"), -EINVAL);
    assert_int_equal(dt_caps_from_name("net_admin "), -EINVAL);
    assert_int_equal(dt_caps_from_name("nope"), -EINVAL);
    assert_int_equal(dt_caps_from_name(NULL), -EINVAL);
    /* Numbers are not names. */
    assert_int_equal(dt_caps_from_name("0"), -EINVAL);
    assert_int_equal(dt_caps_from_name("21"), -EINVAL);
}

/* ---- Forked children, root only. ---- */

static char report[2048];
static size_t report_len;

_printf_(1, 2) static void child_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + report_len, sizeof(report) - report_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        report_len = report_len + (size_t) n < sizeof(report) ? report_len + (size_t) n
                                                              : sizeof(report) - 1;
}

/* Run FN in a forked child; FN reports problems with child_fail(). Fails the test on any. */
static void
run_child(void (*fn)(void *), void *arg)
{
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        safe_close(pfd[0]);
        report_len = 0;
        report[0] = 0;
        fn(arg);
        (void) write_all(pfd[1], report, report_len);
        _exit(report_len ? 1 : 0);
    }
    safe_close(pfd[1]);
    char out[2048] = {0};
    ssize_t n = read_full(pfd[0], out, sizeof(out) - 1);
    safe_close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (n > 0)
        fprintf(stderr, "%s", out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
read_own_caps(struct caps *c)
{
    _cleanup_free_ char *s = NULL;
    int r = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &s, NULL);
    if (r < 0) {
        child_fail("read /proc/self/status: %s\n", strerror(-r));
        memset(c, 0xff, sizeof(*c));
        return;
    }
    parse_caps(s, c);
}

#define EXPECT_EQ(what, got, want)                                   \
    do {                                                             \
        unsigned long long g_ = (got), w_ = (want);                  \
        if (g_ != w_)                                                \
            child_fail("%s: got %#llx, want %#llx\n", what, g_, w_); \
    } while (0)

struct apply_case {
    uint64_t keep;
    const char *dir;
};

/* A private mount namespace, so a mount that succeeds by mistake cannot touch the host. */
static bool
private_mounts(void)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        child_fail("private mount namespace: %s\n", strerror(errno));
        return false;
    }
    return true;
}

static void
child_apply_default(void *arg)
{
    const struct apply_case *ac = arg;
    struct caps c;
    uint64_t eff = 0;

    if (!private_mounts())
        return;
    int r = dt_caps_apply(ac->keep, false);
    if (r < 0) {
        child_fail("dt_caps_apply: %s\n", strerror(-r));
        return;
    }
    read_own_caps(&c);
    EXPECT_EQ("CapEff", c.eff, ac->keep);
    EXPECT_EQ("CapPrm", c.prm, ac->keep);
    EXPECT_EQ("CapBnd", c.bnd, ac->keep);
    EXPECT_EQ("CapInh", c.inh, 0);
    EXPECT_EQ("CapAmb", c.amb, 0);
    if (dt_caps_get_effective(&eff) < 0)
        child_fail("dt_caps_get_effective: %s\n", strerror(errno));
    EXPECT_EQ("dt_caps_get_effective", eff, ac->keep);

    /* CAP_SYS_ADMIN is gone: mounting fails. */
    if (mount("none", ac->dir, "tmpfs", 0, NULL) == 0) {
        child_fail("mount tmpfs succeeded without CAP_SYS_ADMIN\n");
        (void) umount2(ac->dir, MNT_DETACH);
    } else if (errno != EPERM)
        child_fail("mount tmpfs: %s, want EPERM\n", strerror(errno));

    /* CAP_CHOWN decides whether root may give a file away. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/f-%d", ac->dir, (int) getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        child_fail("create %s: %s\n", path, strerror(errno));
        return;
    }
    safe_close(fd);
    r = chown(path, 1234, 1234);
    if (ac->keep & BIT(CAP_CHOWN)) {
        if (r < 0)
            child_fail("chown with CAP_CHOWN: %s\n", strerror(errno));
    } else if (r == 0 || errno != EPERM)
        child_fail("chown without CAP_CHOWN: r=%d %s, want EPERM\n", r, strerror(errno));
    (void) unlink(path);
}

/* The scratch directory lives in setup/teardown so a failing assertion does not leak it. */
static int
setup_dir(void **state)
{
    *state = dt_test_mkdtemp("dt-caps");
    return 0;
}

static int
teardown_dir(void **state)
{
    dt_test_rm_rf(*state);
    free(*state);
    return 0;
}

static void
test_apply_default(void **state)
{
    if (geteuid() != 0)
        skip();
    struct apply_case ac = {.keep = dt_caps_default_mask(), .dir = *state};
    run_child(child_apply_default, &ac);

    /* The same without CAP_CHOWN: now chown must fail. */
    ac.keep = dt_caps_default_mask() & ~BIT(CAP_CHOWN);
    run_child(child_apply_default, &ac);
}

/* Bits beyond the kernel's last capability are ignored, not an error. */
static void
child_apply_high_bits(void *arg)
{
    int r = dt_caps_apply(dt_caps_default_mask() | BIT(63), false);
    if (r < 0)
        child_fail("dt_caps_apply with bit 63: %s\n", strerror(-r));
    struct caps c;
    read_own_caps(&c);
    EXPECT_EQ("CapEff", c.eff, dt_caps_default_mask());
}

static void
test_apply_ignores_unknown_bits(void **state)
{
    if (geteuid() != 0)
        skip();
    run_child(child_apply_high_bits, NULL);
}

/* ---- Across execve(): what the sandboxed program really gets. ---- */

struct exec_case {
    uint64_t keep;
    bool ambient;
    uid_t uid; /* 0: stay root */
};

/* Apply in a child, exec cat /proc/self/status, and parse what it printed. */
static void
caps_after_exec(const struct exec_case *ec, struct caps *ret)
{
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(pfd[1], STDOUT_FILENO) < 0)
            _exit(120);
        if (ec->uid != 0) {
            /* Keep the permitted set across the uid change; effective is emptied. */
            if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
                setresgid(ec->uid, ec->uid, ec->uid) < 0 ||
                setresuid(ec->uid, ec->uid, ec->uid) < 0)
                _exit(121);
        }
        if (dt_caps_apply(ec->keep, ec->ambient) < 0)
            _exit(122);
        execl("/bin/cat", "cat", "/proc/self/status", (char *) NULL);
        _exit(123);
    }
    safe_close(pfd[1]);
    char out[8192] = {0};
    ssize_t n = read_full(pfd[0], out, sizeof(out) - 1);
    safe_close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(n > 0);
    parse_caps(out, ret);
}

static void
test_exec_as_root(void **state)
{
    if (geteuid() != 0)
        skip();
    struct caps c;
    uint64_t mask = dt_caps_default_mask();
    caps_after_exec(&(struct exec_case){.keep = mask}, &c);
    /* uid 0 gets the bounding set back as permitted/effective on execve: it must be the mask. */
    assert_int_equal(c.eff, mask);
    assert_int_equal(c.prm, mask);
    assert_int_equal(c.bnd, mask);
    assert_int_equal(c.inh, 0);
    assert_int_equal(c.amb, 0);
}

static void
test_exec_as_user(void **state)
{
    if (geteuid() != 0)
        skip();
    struct caps c;
    uint64_t mask = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_CHOWN);

    /* Without ambient capabilities a non-root user has nothing after execve (Docker's default). */
    caps_after_exec(&(struct exec_case){.keep = mask, .uid = 65534}, &c);
    assert_int_equal(c.eff, 0);
    assert_int_equal(c.prm, 0);
    assert_int_equal(c.bnd, mask);
    assert_int_equal(c.amb, 0);

    /* With them, exactly KEEP survives. */
    caps_after_exec(&(struct exec_case){.keep = mask, .ambient = true, .uid = 65534}, &c);
    assert_int_equal(c.eff, mask);
    assert_int_equal(c.prm, mask);
    assert_int_equal(c.bnd, mask);
    assert_int_equal(c.inh, mask);
    assert_int_equal(c.amb, mask);
}

static void
child_no_setpcap(void *arg)
{
    /* Without CAP_SETPCAP the bounding set cannot shrink: EPERM, not a silent success. */
    if (dt_caps_apply(BIT(CAP_CHOWN), false) < 0) {
        child_fail("first apply failed\n");
        return;
    }
    int r = dt_caps_apply(0, false);
    if (r != -EPERM)
        child_fail("apply without CAP_SETPCAP: %d, want -EPERM\n", r);
}

static void
test_apply_needs_setpcap(void **state)
{
    if (geteuid() != 0)
        skip();
    run_child(child_no_setpcap, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_default_mask),
            cmocka_unit_test(test_from_name),
            cmocka_unit_test_setup_teardown(test_apply_default, setup_dir, teardown_dir),
            cmocka_unit_test(test_apply_ignores_unknown_bits),
            cmocka_unit_test(test_exec_as_root),
            cmocka_unit_test(test_exec_as_user),
            cmocka_unit_test(test_apply_needs_setpcap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
