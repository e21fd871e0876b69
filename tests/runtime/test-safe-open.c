/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for confined path resolution. Every open is done twice, with openat2 and with the forced
 * fallback walk, and both must give the same answer: the same errno, or an fd of the same inode
 * inside the root. A forked child also blocks openat2 with seccomp to check the automatic
 * fallback. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/xalloc.h"
#include "runtime/safe-open.h"
#include "testlib.h"
#include "dt/banned.h"

struct fixture {
    char *base;    /* temp dir holding root/ and outside/ */
    char *outside; /* base/outside: a host directory links try to reach */
    int basefd;
    int rootfd;
};

static struct fixture fx;

static void
mk(const char *rel, const char *kind, const char *target)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/root/%s", fx.base, rel);
    int r;
    if (strcmp(kind, "dir") == 0)
        r = mkdir(p, 0755);
    else if (strcmp(kind, "file") == 0) {
        r = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (r >= 0)
            r = close(r);
    } else
        r = symlink(target, p);
    if (r < 0)
        fail_msg("create %s: %s", p, strerror(errno));
}

static int
setup(void **state)
{
    fx.base = dt_test_mkdtemp("dt-safe-open");
    fx.outside = xasprintf("%s/outside", fx.base);
    char *root = xasprintf("%s/root", fx.base);
    if (mkdir(root, 0755) < 0 || mkdir(fx.outside, 0755) < 0)
        return -1;
    fx.basefd = open(fx.base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    fx.rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    free(root);
    if (fx.basefd < 0 || fx.rootfd < 0)
        return -1;

    mk("etc", "dir", NULL);
    mk("etc/marker", "file", NULL);
    mk("dir", "dir", NULL);
    mk("dir/sub", "dir", NULL);
    mk("dir/file", "file", NULL);
    mk("file", "file", NULL);
    mk("abs_etc", "link", "/etc");
    mk("abs_marker", "link", "/etc/marker");
    mk("up", "link", "../../../../..");
    mk("dir/rel", "link", "../file");
    mk("dir/uplink", "link", "../../../../../etc");
    mk("dir/abs_file", "link", "/file");
    mk("dir/sub/abs_dir", "link", "/dir");
    mk("c1", "link", "c2");
    mk("c2", "link", "dir/../c3");
    mk("c3", "link", "/dir/file");
    mk("loop1", "link", "loop2");
    mk("loop2", "link", "loop1");
    mk("self", "link", "self");
    mk("empty_dir_link", "link", "dir/");
    /* chain0 -> file, chainN -> chain(N-1): opening chainN follows N+1 links. */
    mk("chain0", "link", "file");
    for (int i = 1; i <= 40; i++) {
        char n[32], t[32];
        snprintf(n, sizeof(n), "chain%d", i);
        snprintf(t, sizeof(t), "chain%d", i - 1);
        mk(n, "link", t);
    }
    /* Links that aim at the host directory OUTSIDE, absolutely and relatively. */
    char t[PATH_MAX];
    snprintf(t, sizeof(t), "%s/created", fx.outside);
    mk("dang_abs", "link", t);
    mk("dang_rel", "link", "../outside/created");
    mk("lnk_out_abs", "link", fx.outside);
    mk("lnk_out_rel", "link", "../outside");
    mk("resolv.conf", "link", "../run/resolv.conf");
    return 0;
}

static int
teardown(void **state)
{
    safe_close(fx.rootfd);
    safe_close(fx.basefd);
    dt_test_rm_rf(fx.base);
    free(fx.base);
    free(fx.outside);
    return 0;
}

/* Open PATH both ways. Either both fail with WANT_ERR (> 0), or both succeed (WANT_ERR 0) with
 * an fd of WANT (a path under root/ containing no symlinks, except possibly the last component,
 * which is not followed). */
static void
expect_open_at(int rootfd, int wantdirfd, const char *path, int flags, int want_err,
               const char *want)
{
    struct stat ws, st[2];
    int fds[2];

    for (int m = 0; m < 2; m++) {
        dt_safe_open_force_fallback = m == 1;
        fds[m] = dt_open_in_root(rootfd, path, flags, 0644);
        dt_safe_open_force_fallback = false;
    }
    for (int m = 0; m < 2; m++) {
        const char *how = m ? "fallback" : "openat2";
        if (want_err) {
            if (fds[m] != -want_err)
                fail_msg("%s '%s': got %d (%s), want -%s", how, path, fds[m],
                         fds[m] < 0 ? strerror(-fds[m]) : "an fd", strerror(want_err));
            continue;
        }
        if (fds[m] < 0)
            fail_msg("%s '%s': %s, want '%s'", how, path, strerror(-fds[m]), want);
        assert_int_equal(fstat(fds[m], &st[m]), 0);
        assert_true(fcntl(fds[m], F_GETFD) & FD_CLOEXEC);
        safe_close(fds[m]);
    }
    if (want_err)
        return;
    if (fstatat(wantdirfd, want, &ws, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
        fail_msg("stat '%s': %s", want, strerror(errno));
    for (int m = 0; m < 2; m++)
        if (st[m].st_dev != ws.st_dev || st[m].st_ino != ws.st_ino)
            fail_msg("%s '%s' opened the wrong file, want '%s'", m ? "fallback" : "openat2", path,
                     want);
}

static void
expect_open(const char *path, int flags, int want_err, const char *want)
{
    expect_open_at(fx.rootfd, fx.rootfd, path, flags, want_err, want);
}

static bool
exists_at(int dirfd, const char *p)
{
    struct stat st;
    return fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
test_plain(void **state)
{
    expect_open("dir/file", O_RDONLY, 0, "dir/file");
    expect_open("/dir/file", O_RDONLY, 0, "dir/file");
    expect_open("//dir///file", O_RDONLY, 0, "dir/file");
    expect_open("/", O_PATH | O_DIRECTORY, 0, "");
    expect_open(".", O_RDONLY | O_DIRECTORY, 0, "");
    expect_open("dir/", O_RDONLY, 0, "dir");
    expect_open("dir/sub/.", O_PATH, 0, "dir/sub");
    expect_open("", O_RDONLY, ENOENT, NULL);
    expect_open("nope", O_RDONLY, ENOENT, NULL);
    expect_open("nope/x", O_RDONLY, ENOENT, NULL);
    expect_open("dir/file", O_RDONLY | O_DIRECTORY, ENOTDIR, NULL);
    expect_open("dir", O_WRONLY, EISDIR, NULL);
}

static void
test_absolute_symlink_stays_inside(void **state)
{
    /* /etc inside the root, not the host's. */
    expect_open("abs_etc/marker", O_RDONLY, 0, "etc/marker");
    /* From a subdirectory, an absolute link starts over at the root. */
    expect_open("dir/abs_file", O_RDONLY, 0, "file");
    expect_open("dir/sub/abs_dir/sub/abs_dir/file", O_RDONLY, 0, "dir/file");
    expect_open("dir/sub/abs_dir/..", O_PATH, 0, "");
    expect_open("/abs_etc/marker", O_RDONLY, 0, "etc/marker");
    expect_open("abs_marker", O_RDONLY, 0, "etc/marker");
    expect_open("abs_etc", O_PATH | O_DIRECTORY, 0, "etc");
    /* The host has /etc/passwd; the root does not. */
    expect_open("abs_etc/passwd", O_RDONLY, ENOENT, NULL);
}

static void
test_dotdot_stays_inside(void **state)
{
    expect_open("../../..", O_PATH | O_DIRECTORY, 0, "");
    expect_open("../../../../etc/marker", O_RDONLY, 0, "etc/marker");
    expect_open("dir/../../../etc/marker", O_RDONLY, 0, "etc/marker");
    expect_open("up", O_PATH | O_DIRECTORY, 0, "");
    expect_open("up/etc/marker", O_RDONLY, 0, "etc/marker");
    expect_open("dir/uplink/marker", O_RDONLY, 0, "etc/marker");
    expect_open("dir/sub/../file", O_RDONLY, 0, "dir/file");
    /* ".." applies to where a symlink led, not to the text before it. */
    expect_open("abs_etc/../file", O_RDONLY, 0, "file");
    expect_open("file/..", O_PATH, ENOTDIR, NULL);
    expect_open("nope/..", O_PATH, ENOENT, NULL);
}

static void
test_symlink_chains(void **state)
{
    expect_open("dir/rel", O_RDONLY, 0, "file");
    expect_open("c1", O_RDONLY, 0, "dir/file");
    expect_open("empty_dir_link/file", O_RDONLY, 0, "dir/file");
    expect_open("empty_dir_link", O_PATH, 0, "dir");
    /* 40 links are allowed, the 41st is one too many (the kernel's MAXSYMLINKS). */
    expect_open("chain39", O_RDONLY, 0, "file");
    expect_open("chain40", O_RDONLY, ELOOP, NULL);
    expect_open("chain39/", O_RDONLY, ENOTDIR, NULL);
    /* Not following the last one. */
    expect_open("c1", O_RDONLY | O_NOFOLLOW, ELOOP, NULL);
    expect_open("c1", O_PATH | O_NOFOLLOW, 0, "c1");
    expect_open("abs_etc/", O_PATH | O_NOFOLLOW, 0, "etc");
}

static void
test_loops(void **state)
{
    expect_open("loop1", O_RDONLY, ELOOP, NULL);
    expect_open("loop2/x", O_RDONLY, ELOOP, NULL);
    expect_open("self", O_PATH, ELOOP, NULL);
    expect_open("self/", O_PATH, ELOOP, NULL);
}

static void
test_enotdir(void **state)
{
    expect_open("file/x", O_RDONLY, ENOTDIR, NULL);
    expect_open("file/", O_RDONLY, ENOTDIR, NULL);
    expect_open("dir/rel/", O_RDONLY, ENOTDIR, NULL);
    expect_open("abs_marker/x", O_RDONLY, ENOTDIR, NULL);
    for (int m = 0; m < 2; m++) {
        dt_safe_open_force_fallback = m;
        assert_int_equal(dt_mkdir_p_in_root(fx.rootfd, "file/x", 0755), -ENOTDIR);
        assert_int_equal(dt_mkdir_p_in_root(fx.rootfd, "file", 0755), -ENOTDIR);
        assert_int_equal(dt_mkdir_p_in_root(fx.rootfd, "dir/rel/y", 0755), -ENOTDIR);
        dt_safe_open_force_fallback = false;
    }
    assert_false(exists_at(fx.rootfd, "x"));
}

static void
test_too_long(void **state)
{
    char *p = xmalloc(PATH_MAX + 1);
    memset(p, 'a', PATH_MAX);
    p[PATH_MAX] = 0;
    expect_open(p, O_RDONLY, ENAMETOOLONG, NULL);
    p[PATH_MAX - 1] = 0; /* 4095 bytes: within PATH_MAX, but one component > NAME_MAX */
    expect_open(p, O_RDONLY, ENAMETOOLONG, NULL);
    p[NAME_MAX + 1] = 0;
    expect_open(p, O_RDONLY, ENAMETOOLONG, NULL);
    p[NAME_MAX] = 0;
    expect_open(p, O_RDONLY, ENOENT, NULL);
    /* Many short components, total just under PATH_MAX. */
    for (size_t i = 1; i < PATH_MAX - 1; i += 2)
        p[i] = '/';
    p[PATH_MAX - 1] = 0;
    expect_open(p, O_RDONLY, ENOENT, NULL);
    /* The tail of it (50 levels of "a") can be created. */
    int fd = dt_mkdir_p_in_root(fx.rootfd, p + PATH_MAX - 100, 0755);
    assert_true(fd >= 0);
    safe_close(fd);
    free(p);
    char *made = xasprintf("%s/root/a", fx.base);
    dt_test_rm_rf(made);
    free(made);
}

static void
test_create(void **state)
{
    for (int m = 0; m < 2; m++) {
        dt_safe_open_force_fallback = m;
        /* A new file, where it should be. */
        int fd = dt_open_in_root(fx.rootfd, "/dir/new", O_CREAT | O_WRONLY | O_EXCL, 0600);
        assert_true(fd >= 0);
        struct stat st, want;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(fstatat(fx.rootfd, "dir/new", &want, 0), 0);
        assert_int_equal(st.st_ino, want.st_ino);
        assert_int_equal(st.st_mode & 0777, 0600);
        safe_close(fd);
        assert_int_equal(dt_open_in_root(fx.rootfd, "dir/new", O_CREAT | O_WRONLY | O_EXCL, 0600),
                         -EEXIST);
        /* O_CREAT without O_EXCL opens an existing file. */
        fd = dt_open_in_root(fx.rootfd, "../dir/new", O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        safe_close(fd);
        assert_int_equal(unlinkat(fx.rootfd, "dir/new", 0), 0);
        /* Through a symlinked directory: created inside. */
        fd = dt_open_in_root(fx.rootfd, "abs_etc/new", O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        safe_close(fd);
        assert_int_equal(unlinkat(fx.rootfd, "etc/new", 0), 0);
        dt_safe_open_force_fallback = false;
    }
    /* Not through a symlink in the last component, dangling or not, absolute or relative. */
    expect_open("dang_abs", O_CREAT | O_WRONLY, ELOOP, NULL);
    expect_open("dang_rel", O_CREAT | O_WRONLY, ELOOP, NULL);
    expect_open("dir/rel", O_CREAT | O_WRONLY, ELOOP, NULL);
    assert_false(exists_at(fx.basefd, "outside/created"));
    assert_false(exists_at(fx.rootfd, "outside"));
    /* Directories. */
    expect_open("dir/", O_CREAT | O_WRONLY, EISDIR, NULL);
    expect_open("newdir/", O_CREAT | O_WRONLY, EISDIR, NULL);
    expect_open("dir/.", O_CREAT | O_RDONLY, EISDIR, NULL);
    expect_open("nope/new", O_CREAT | O_WRONLY, ENOENT, NULL);
    expect_open("file/new", O_CREAT | O_WRONLY, ENOTDIR, NULL);
    assert_false(exists_at(fx.rootfd, "newdir"));
}

static void
test_mkdir_p(void **state)
{
    for (int m = 0; m < 2; m++) {
        dt_safe_open_force_fallback = m;
        struct stat st, want;

        int fd = dt_mkdir_p_in_root(fx.rootfd, "/m/a/../b//c/", 0700);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(fstatat(fx.rootfd, "m/b/c", &want, 0), 0);
        assert_int_equal(st.st_ino, want.st_ino);
        assert_true(S_ISDIR(want.st_mode));
        assert_true(exists_at(fx.rootfd, "m/a"));
        assert_int_equal(fcntl(fd, F_GETFL) & O_PATH, O_PATH);
        safe_close(fd);

        /* Existing path: just opened. */
        fd = dt_mkdir_p_in_root(fx.rootfd, "dir/sub", 0755);
        assert_true(fd >= 0);
        safe_close(fd);

        /* Through symlinks aimed outside: everything lands inside the root. */
        fd = dt_mkdir_p_in_root(fx.rootfd, "lnk_out_rel/a/b", 0755);
        assert_true(fd >= 0);
        safe_close(fd);
        assert_true(exists_at(fx.rootfd, "outside/a/b"));
        assert_false(exists_at(fx.basefd, "outside/a"));

        fd = dt_mkdir_p_in_root(fx.rootfd, "lnk_out_abs/x/y", 0755);
        assert_true(fd >= 0);
        safe_close(fd);
        char *inside = xasprintf(".%s/x/y", fx.outside);
        assert_true(exists_at(fx.rootfd, inside));
        free(inside);
        assert_false(exists_at(fx.basefd, "outside/x"));

        /* A dangling link is followed, its target created inside. */
        fd = dt_mkdir_p_in_root(fx.rootfd, "dang_rel", 0755);
        assert_true(fd >= 0);
        safe_close(fd);
        assert_true(exists_at(fx.rootfd, "outside/created"));
        assert_false(exists_at(fx.basefd, "outside/created"));

        assert_int_equal(dt_mkdir_p_in_root(fx.rootfd, "loop1/x", 0755), -ELOOP);

        dt_safe_open_force_fallback = false;
        char *p = xasprintf("%s/root/m", fx.base);
        dt_test_rm_rf(p);
        free(p);
        p = xasprintf("%s/root/outside", fx.base);
        dt_test_rm_rf(p);
        free(p);
        p = xasprintf("%s/root/tmp", fx.base);
        dt_test_rm_rf(p);
        free(p);
    }
}

static void
test_touch(void **state)
{
    struct stat st, want;

    int fd = dt_touch_in_root(fx.rootfd, "/t/u/v.conf", 0600);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(fstatat(fx.rootfd, "t/u/v.conf", &want, 0), 0);
    assert_int_equal(st.st_ino, want.st_ino);
    assert_true(S_ISREG(want.st_mode));
    assert_int_equal(want.st_mode & 0777, 0600);
    safe_close(fd);

    /* Existing: the same file, not truncated or recreated. */
    fd = dt_touch_in_root(fx.rootfd, "t/u/v.conf", 0644);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_ino, want.st_ino);
    safe_close(fd);

    /* A parent through a symlink aimed outside stays inside. */
    fd = dt_touch_in_root(fx.rootfd, "lnk_out_rel/t", 0644);
    assert_true(fd >= 0);
    safe_close(fd);
    assert_true(exists_at(fx.rootfd, "outside/t"));
    assert_false(exists_at(fx.basefd, "outside/t"));

    /* A symlink as the last component is reported, not followed. */
    assert_int_equal(dt_touch_in_root(fx.rootfd, "resolv.conf", 0644), -ELOOP);
    assert_int_equal(dt_touch_in_root(fx.rootfd, "dang_abs", 0644), -ELOOP);
    assert_false(exists_at(fx.rootfd, "run"));
    assert_int_equal(dt_touch_in_root(fx.rootfd, "dir", 0644), -EISDIR);
    assert_int_equal(dt_touch_in_root(fx.rootfd, "dir/", 0644), -EISDIR);
    assert_int_equal(dt_touch_in_root(fx.rootfd, "/", 0644), -EISDIR);
    assert_int_equal(dt_touch_in_root(fx.rootfd, "file/x", 0644), -ENOTDIR);

    /* No slash at all: directly under the root. */
    fd = dt_touch_in_root(fx.rootfd, "top", 0644);
    assert_true(fd >= 0);
    safe_close(fd);
    assert_true(exists_at(fx.rootfd, "top"));

    assert_int_equal(unlinkat(fx.rootfd, "top", 0), 0);
    char *p = xasprintf("%s/root/t", fx.base);
    dt_test_rm_rf(p);
    free(p);
    p = xasprintf("%s/root/outside", fx.base);
    dt_test_rm_rf(p);
    free(p);
}

static void
test_magic_links(void **state)
{
    struct stat st;
    if (stat("/proc/self/status", &st) < 0)
        skip();
    int hostroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(hostroot >= 0);
    /* Magic links are refused, plain procfs symlinks followed. */
    expect_open_at(hostroot, hostroot, "/proc/self/fd/0", O_RDONLY, ELOOP, NULL);
    expect_open_at(hostroot, hostroot, "/proc/self/cwd/", O_PATH, ELOOP, NULL);
    expect_open_at(hostroot, hostroot, "/proc/self/exe", O_PATH, ELOOP, NULL);
    expect_open_at(hostroot, hostroot, "/proc/self/root/etc", O_PATH, ELOOP, NULL);
    expect_open_at(hostroot, hostroot, "/proc/self/ns/mnt", O_RDONLY, ELOOP, NULL);
    /* Not followed: fine. */
    expect_open_at(hostroot, hostroot, "/proc/self/exe", O_PATH | O_NOFOLLOW, 0, "proc/self/exe");
    char want[64];
    snprintf(want, sizeof(want), "proc/%d/status", (int) getpid());
    expect_open_at(hostroot, hostroot, "/proc/self/status", O_RDONLY, 0, want);
    safe_close(hostroot);
}

/* In a child, make openat2 fail with ERRNUM through seccomp, then check that dt_open_in_root()
 * notices and falls back on its own. */
static void
blocked_openat2(int errnum)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(errnum), SCMP_SYS(openat2), 0) < 0 ||
            seccomp_load(ctx) < 0)
            _exit(10);
        seccomp_release(ctx);
        struct open_how how = {.flags = O_PATH};
        if (syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how)) != -1 || errno != errnum)
            _exit(11);
        int fd = dt_open_in_root(fx.rootfd, "abs_marker", O_RDONLY, 0);
        if (fd < 0)
            _exit(12);
        struct stat st, want;
        if (fstat(fd, &st) < 0 || fstatat(fx.rootfd, "etc/marker", &want, 0) < 0 ||
            st.st_ino != want.st_ino)
            _exit(13);
        if (dt_open_in_root(fx.rootfd, "up/../../dir/file", O_RDONLY, 0) < 0)
            _exit(14);
        if (dt_open_in_root(fx.rootfd, "loop1", O_RDONLY, 0) != -ELOOP)
            _exit(15);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_auto_fallback(void **state)
{
    blocked_openat2(ENOSYS);
    blocked_openat2(EPERM);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plain),
            cmocka_unit_test(test_absolute_symlink_stays_inside),
            cmocka_unit_test(test_dotdot_stays_inside),
            cmocka_unit_test(test_symlink_chains),
            cmocka_unit_test(test_loops),
            cmocka_unit_test(test_enotdir),
            cmocka_unit_test(test_too_long),
            cmocka_unit_test(test_create),
            cmocka_unit_test(test_mkdir_p),
            cmocka_unit_test(test_touch),
            cmocka_unit_test(test_magic_links),
            cmocka_unit_test(test_auto_fallback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
