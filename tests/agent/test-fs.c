/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/agent/fs.c: every toolbox file-system operation against a temp dir, with a
 * fake root (etc/passwd, etc/group) for owner names. Root-only checks (chown to 1000) are skipped
 * inside a test when not root. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/fs.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

static char *tmp;   /* the temp dir */
static char *froot; /* fake root with etc/passwd and etc/group */
static struct dt_fs_ctx ctx;

static char *
P(const char *rel)
{
    return xasprintf("%s/%s", tmp, rel);
}

static void
put(const char *rel, const char *content, mode_t mode)
{
    _cleanup_free_ char *p = P(rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, content, strlen(content)), 0);
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

static char *
get(const char *rel)
{
    _cleanup_free_ char *p = P(rel);
    char *buf = NULL;
    if (read_file_at(AT_FDCWD, p, 1 << 20, &buf, NULL) < 0)
        return NULL;
    return buf;
}

static void
mkd(const char *rel)
{
    _cleanup_free_ char *p = P(rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static bool
exists(const char *rel)
{
    _cleanup_free_ char *p = P(rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

static int
setup(void **state)
{
    tmp = dt_test_mkdtemp("test-fs");
    froot = dt_test_mkdtemp("test-fs-root");
    _cleanup_free_ char *etc = xasprintf("%s/etc", froot);
    assert_int_equal(mkdir(etc, 0755), 0);
    _cleanup_free_ char *pw = xasprintf("%s/etc/passwd", froot);
    _cleanup_free_ char *gr = xasprintf("%s/etc/group", froot);
    const char *pwd = "root:x:0:0:root:/root:/bin/sh\n"
                      "daytona:x:1000:1000::/home/daytona:/bin/bash\n";
    const char *grp = "root:x:0:\ndaytona:x:1000:\nstaff:x:50:daytona\n";
    assert_int_equal(write_file_at(AT_FDCWD, pw, pwd, strlen(pwd), 0644), 0);
    assert_int_equal(write_file_at(AT_FDCWD, gr, grp, strlen(grp), 0644), 0);
    ctx = (struct dt_fs_ctx){
            .root = froot, .workdir = tmp, .uid = getuid(), .gid = getgid()};
    return 0;
}

static int
teardown(void **state)
{
    dt_test_rm_rf(tmp);
    dt_test_rm_rf(froot);
    free(tmp);
    free(froot);
    return 0;
}

/* ---- resolve ---- */

static void
test_resolve(void **state)
{
    struct dt_fs_ctx c = {.workdir = "/home/daytona"};
    char *r = NULL;
    struct dt_error *e = NULL;

    assert_int_equal(dt_fs_resolve(&c, "a//b/./c/", (size_t) -1, &r, NULL), 0);
    assert_string_equal(r, "/home/daytona/a/b/c");
    free(r);
    assert_int_equal(dt_fs_resolve(&c, "//x/../y", (size_t) -1, &r, NULL), 0);
    assert_string_equal(r, "/x/../y");
    free(r);
    assert_int_equal(dt_fs_resolve(&c, "/", (size_t) -1, &r, NULL), 0);
    assert_string_equal(r, "/");
    free(r);
    assert_int_equal(dt_fs_resolve(&c, ".", (size_t) -1, &r, NULL), 0);
    assert_string_equal(r, "/home/daytona");
    free(r);
    assert_int_equal(dt_fs_resolve(&c, "", (size_t) -1, &r, &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_resolve(&c, "a\0b", 3, &r, &e), -EINVAL);
    assert_non_null(strstr(e->message, "NUL"));
    dt_error_freep(&e);
    struct dt_fs_ctx nowd = {0};
    assert_int_equal(dt_fs_resolve(&nowd, "rel", (size_t) -1, &r, &e), -EINVAL);
    dt_error_freep(&e);
    _cleanup_free_ char *big = xmalloc(PATH_MAX + 10);
    memset(big, 'a', PATH_MAX + 9);
    big[0] = '/';
    big[PATH_MAX + 9] = 0;
    assert_int_equal(dt_fs_resolve(&c, big, (size_t) -1, &r, &e), -ENAMETOOLONG);
    dt_error_freep(&e);
}

/* ---- mode and time strings ---- */

static void
test_mode_strings(void **state)
{
    char b[DT_FS_MODE_STR_MAX];
    assert_string_equal(dt_fs_mode_string(S_IFREG | 0644, b), "-rw-r--r--");
    assert_string_equal(dt_fs_mode_string(S_IFDIR | 0755, b), "drwxr-xr-x");
    assert_string_equal(dt_fs_mode_string(S_IFLNK | 0777, b), "Lrwxrwxrwx");
    assert_string_equal(dt_fs_mode_string(S_IFIFO | 0644, b), "prw-r--r--");
    assert_string_equal(dt_fs_mode_string(S_IFREG | 04755, b), "urwxr-xr-x");
    assert_string_equal(dt_fs_mode_string(S_IFREG | 02755, b), "grwxr-xr-x");
    assert_string_equal(dt_fs_mode_string(S_IFDIR | 01777, b), "dtrwxrwxrwx");
    assert_string_equal(dt_fs_mode_string(S_IFCHR | 0666, b), "Dcrw-rw-rw-");
    assert_string_equal(dt_fs_mode_string(S_IFBLK | 0660, b), "Drw-rw----");
    assert_string_equal(dt_fs_mode_string(S_IFSOCK | 0755, b), "Srwxr-xr-x");
    assert_string_equal(dt_fs_mode_string(S_IFREG, b), "----------");

    /* Real files through info. */
    mkd("modes");
    put("modes/suid", "x", 04755);
    _cleanup_free_ char *fifo = P("modes/fifo");
    assert_int_equal(mkfifo(fifo, 0640), 0);
    _cleanup_free_ char *sticky = P("modes/sticky");
    assert_int_equal(mkdir(sticky, 0755), 0);
    assert_int_equal(chmod(sticky, 01777), 0);
    json_t *j = NULL;
    assert_int_equal(dt_fs_info(&ctx, "modes/suid", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "urwxr-xr-x");
    assert_string_equal(json_string_value(json_object_get(j, "permissions")), "0755");
    json_decref(j);
    assert_int_equal(dt_fs_info(&ctx, "modes/fifo", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "prw-r-----");
    json_decref(j);
    assert_int_equal(dt_fs_info(&ctx, "modes/sticky", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "dtrwxrwxrwx");
    assert_true(json_is_true(json_object_get(j, "isDir")));
    json_decref(j);
    assert_int_equal(dt_fs_info(&ctx, "/dev/null", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "Dcrw-rw-rw-");
    json_decref(j);
}

static void
test_time_strings(void **state)
{
    char b[DT_FS_TIME_STR_MAX];
    struct timespec ts = {.tv_sec = 1735787045, .tv_nsec = 123456789};
    assert_string_equal(dt_fs_time_go(&ts, b), "2025-01-02 03:04:05.123456789 +0000 UTC");
    assert_string_equal(dt_fs_time_iso(&ts, b), "2025-01-02T03:04:05.123456789Z");
    ts.tv_nsec = 120000000;
    assert_string_equal(dt_fs_time_go(&ts, b), "2025-01-02 03:04:05.12 +0000 UTC");
    assert_string_equal(dt_fs_time_iso(&ts, b), "2025-01-02T03:04:05.12Z");
    ts.tv_nsec = 0;
    assert_string_equal(dt_fs_time_go(&ts, b), "2025-01-02 03:04:05 +0000 UTC");
    assert_string_equal(dt_fs_time_iso(&ts, b), "2025-01-02T03:04:05Z");
}

/* ---- info ---- */

static void
test_info(void **state)
{
    put("info.txt", "hello", 0640);
    _cleanup_free_ char *p = P("info.txt");
    _cleanup_free_ char *l = P("info-link");
    _cleanup_free_ char *dl = P("info-dangling");
    assert_int_equal(symlink(p, l), 0);
    assert_int_equal(symlink("/nonexistent/x", dl), 0);
    struct timespec ts[2] = {{.tv_sec = 1735787045, .tv_nsec = 5}, {.tv_sec = 1735787045,
                                                                    .tv_nsec = 500000000}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);

    json_t *j = NULL;
    assert_int_equal(dt_fs_info(&ctx, "info.txt", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "info.txt");
    assert_string_equal(json_string_value(json_object_get(j, "path")), p);
    assert_int_equal(json_integer_value(json_object_get(j, "size")), 5);
    assert_true(json_is_false(json_object_get(j, "isDir")));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "-rw-r-----");
    assert_string_equal(json_string_value(json_object_get(j, "permissions")), "0640");
    assert_string_equal(json_string_value(json_object_get(j, "modTime")),
                        "2025-01-02 03:04:05.5 +0000 UTC");
    assert_string_equal(json_string_value(json_object_get(j, "modifiedAt")),
                        "2025-01-02T03:04:05.5Z");
    char id[32];
    snprintf(id, sizeof(id), "%u", (unsigned) getuid());
    assert_string_equal(json_string_value(json_object_get(j, "owner")), id);
    json_decref(j);

    /* symlink: followed (Daytona os.Stat); dangling: the link itself. */
    assert_int_equal(dt_fs_info(&ctx, "info-link", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "-rw-r-----");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "info-link");
    json_decref(j);
    assert_int_equal(dt_fs_info(&ctx, "info-dangling", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "Lrwxrwxrwx");
    json_decref(j);
    assert_int_equal(dt_fs_info(&ctx, "/", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "/");
    json_decref(j);

    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_info(&ctx, "nope.txt", &j, &e), -ENOENT);
    _cleanup_free_ char *np = P("nope.txt");
    _cleanup_free_ char *want = xasprintf("no such file or directory: %s", np);
    assert_string_equal(e->message, want);
    dt_error_freep(&e);
}

static void
test_owner_names(void **state)
{
    mkd("own");
    put("own/a", "x", 0644);
    struct dt_fs_ctx c = ctx;
    c.owner_names = true;
    json_t *j = NULL;
    if (getuid() == 0) {
        _cleanup_free_ char *p = P("own/a");
        assert_int_equal(chown(p, 1000, 50), 0);
        assert_int_equal(dt_fs_info(&c, "own/a", &j, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(j, "owner")), "daytona");
        assert_string_equal(json_string_value(json_object_get(j, "group")), "staff");
        json_decref(j);
        assert_int_equal(chown(p, 4242, 4343), 0);
        assert_int_equal(dt_fs_info(&c, "own/a", &j, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(j, "owner")), "4242");
        assert_string_equal(json_string_value(json_object_get(j, "group")), "4343");
        json_decref(j);
        /* numeric mode (the default): ids even when they resolve */
        assert_int_equal(chown(p, 1000, 1000), 0);
        assert_int_equal(dt_fs_info(&ctx, "own/a", &j, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(j, "owner")), "1000");
        json_decref(j);
    } else {
        print_message("not root: owner name checks limited\n");
    }
}

/* ---- list ---- */

static void
test_list(void **state)
{
    mkd("ls");
    mkd("ls/sub");
    mkd("ls/sub/nested");
    put("ls/top.txt", "top", 0644);
    put("ls/sub/child.txt", "child", 0644);
    put("ls/sub/nested/deep.txt", "deep", 0644);
    _cleanup_free_ char *sub = P("ls/sub");
    _cleanup_free_ char *lnk = P("ls/zlink");
    assert_int_equal(symlink(sub, lnk), 0);

    json_t *a = NULL;
    assert_int_equal(dt_fs_list(&ctx, "ls", 1, &a, NULL), 0);
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "name")), "sub");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "name")),
                        "top.txt");
    /* symlink to dir: reported as the dir it points to */
    assert_true(json_is_true(json_object_get(json_array_get(a, 2), "isDir")));
    json_decref(a);

    assert_int_equal(dt_fs_list(&ctx, "ls", 2, &a, NULL), 0);
    /* sub, sub/child.txt, sub/nested, top.txt, zlink (not descended) */
    assert_int_equal(json_array_size(a), 5);
    _cleanup_free_ char *cp = P("ls/sub/child.txt");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "path")), cp);
    json_decref(a);
    assert_int_equal(dt_fs_list(&ctx, "ls", 10, &a, NULL), 0);
    assert_int_equal(json_array_size(a), 6);
    json_decref(a);

    /* list through a symlinked root */
    assert_int_equal(dt_fs_list(&ctx, "ls/zlink", 1, &a, NULL), 0);
    assert_int_equal(json_array_size(a), 2);
    json_decref(a);

    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_list(&ctx, "ls", 0, &a, &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_list(&ctx, "ls/top.txt", 1, &a, &e), -ENOTDIR);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_list(&ctx, "ls/none", 1, &a, &e), -ENOENT);
    dt_error_freep(&e);
}

static void
test_list_cap(void **state)
{
    mkd("big");
    for (int i = 0; i < 300; i++) {
        char n[32];
        snprintf(n, sizeof(n), "big/f%03d", i);
        put(n, "", 0644);
    }
    struct dt_fs_ctx c = ctx;
    c.list_max = 300;
    json_t *a = NULL;
    assert_int_equal(dt_fs_list(&c, "big", 1, &a, NULL), 0);
    assert_int_equal(json_array_size(a), 300);
    json_decref(a);
    c.list_max = 299;
    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_list(&c, "big", 1, &a, &e), -E2BIG);
    assert_non_null(strstr(e->message, "299"));
    dt_error_freep(&e);
}

/* The real default cap, with DT_FS_LIST_MAX + 1 empty files; on tmpfs when there is one, as
 * 100001 inodes on ext4 take seconds. */
static void
test_list_cap_default(void **state)
{
    char shm[] = "/dev/shm/test-fs-XXXXXX";
    _cleanup_free_ char *d = NULL;
    if (access("/dev/shm", W_OK) == 0 && mkdtemp(shm))
        d = xstrdup(shm);
    else {
        mkd("huge");
        d = P("huge");
    }
    int dfd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    for (unsigned i = 0; i <= DT_FS_LIST_MAX; i++) {
        char n[32];
        snprintf(n, sizeof(n), "%u", i);
        int fd = openat(dfd, n, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    close(dfd);
    json_t *a = NULL;
    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_list(&ctx, d, 1, &a, &e), -E2BIG);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_delete(&ctx, d, true, NULL), 0);
    struct stat st;
    assert_int_equal(stat(d, &st), -1);
}

/* ---- mkdir ---- */

static void
test_mkdir(void **state)
{
    struct stat st;
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/a/b", "750", NULL), 0);
    _cleanup_free_ char *b = P("mk/a/b"), *a = P("mk/a");
    assert_int_equal(stat(b, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    /* existing: fine, untouched */
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/a/b", "700", NULL), 0);
    assert_int_equal(stat(b, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    /* default mode, no umask */
    mode_t old = umask(077);
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/def", NULL, NULL), 0);
    umask(old);
    _cleanup_free_ char *def = P("mk/def");
    assert_int_equal(stat(def, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);

    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/x", "8", &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/x", "17777", &e), -EINVAL);
    dt_error_freep(&e);
    put("mk/file", "x", 0644);
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/file", "755", &e), -EEXIST);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_mkdir(&ctx, "mk/file/sub", "755", &e), -ENOTDIR);
    dt_error_freep(&e);

    if (getuid() == 0) {
        struct dt_fs_ctx c = ctx;
        c.uid = 1000;
        c.gid = 1000;
        assert_int_equal(dt_fs_mkdir(&c, "mk/own/p/q", "700", NULL), 0);
        _cleanup_free_ char *o = P("mk/own"), *q = P("mk/own/p/q");
        assert_int_equal(stat(o, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 1000);
        assert_int_equal(stat(q, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_mode & 07777, 0700);
    }
}

/* ---- delete ---- */

static void
test_delete(void **state)
{
    struct dt_error *e = NULL;
    mkd("del");
    put("del/f", "x", 0644);
    assert_int_equal(dt_fs_delete(&ctx, "del/f", false, NULL), 0);
    assert_false(exists("del/f"));
    assert_int_equal(dt_fs_delete(&ctx, "del/f", false, &e), -ENOENT);
    dt_error_freep(&e);

    mkd("del/empty");
    assert_int_equal(dt_fs_delete(&ctx, "del/empty", false, NULL), 0);
    assert_false(exists("del/empty"));

    mkd("del/full");
    put("del/full/x", "x", 0644);
    assert_int_equal(dt_fs_delete(&ctx, "del/full", false, &e), -ENOTEMPTY);
    assert_non_null(strstr(e->message, "del/full"));
    assert_non_null(strstr(e->message, "recursive"));
    dt_error_freep(&e);
    assert_true(exists("del/full/x"));

    /* A symlink out of the tree must not be followed. */
    mkd("outside");
    put("outside/keep", "precious", 0644);
    mkd("del/full/sub");
    _cleanup_free_ char *out = P("outside"), *lnk = P("del/full/sub/escape");
    assert_int_equal(symlink(out, lnk), 0);
    assert_int_equal(dt_fs_delete(&ctx, "del/full", true, NULL), 0);
    assert_false(exists("del/full"));
    assert_true(exists("outside/keep"));

    /* Deleting a symlink to a directory removes the link only, even recursively. */
    _cleanup_free_ char *l2 = P("del/l2");
    assert_int_equal(symlink(out, l2), 0);
    assert_int_equal(dt_fs_delete(&ctx, "del/l2", true, NULL), 0);
    assert_false(exists("del/l2"));
    assert_true(exists("outside/keep"));

    assert_int_equal(dt_fs_delete(&ctx, "/", true, &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_delete(&ctx, "del/..", true, &e), -EINVAL);
    dt_error_freep(&e);
}

/* ---- move ---- */

static void
test_move(void **state)
{
    struct dt_error *e = NULL;
    mkd("mv");
    put("mv/a", "A", 0600);
    assert_int_equal(dt_fs_move(&ctx, "mv/a", "mv/b", NULL), 0);
    assert_false(exists("mv/a"));
    _cleanup_free_ char *b = get("mv/b");
    assert_string_equal(b, "A");

    put("mv/c", "C", 0644);
    assert_int_equal(dt_fs_move(&ctx, "mv/c", "mv/b", &e), -EEXIST);
    assert_non_null(strstr(e->message, "already exists"));
    dt_error_freep(&e);
    assert_int_equal(dt_fs_move(&ctx, "mv/none", "mv/z", &e), -ENOENT);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_move(&ctx, "mv/c", "mv/nodir/z", &e), -ENOENT);
    assert_non_null(strstr(e->message, "destination directory"));
    dt_error_freep(&e);
    mkd("mv/d");
    assert_int_equal(dt_fs_move(&ctx, "mv/d", "mv/d/in", &e), -EINVAL);
    dt_error_freep(&e);

    /* Across file systems: /dev/shm is tmpfs; skip when it is the same fs as tmp. */
    struct stat s1, s2;
    if (stat("/dev/shm", &s1) == 0 && stat(tmp, &s2) == 0 && s1.st_dev != s2.st_dev &&
        access("/dev/shm", W_OK) == 0) {
        _cleanup_free_ char *shm = dt_test_mkdtemp("test-fs-shm");
        /* dt_test_mkdtemp is under /tmp; make our own dir in /dev/shm instead. */
        dt_test_rm_rf(shm);
        char sd[] = "/dev/shm/test-fs-XXXXXX";
        assert_non_null(mkdtemp(sd));
        mkd("mv/tree");
        mkd("mv/tree/sub");
        put("mv/tree/sub/f", "data", 0751);
        _cleanup_free_ char *sl = P("mv/tree/link");
        assert_int_equal(symlink("sub/f", sl), 0);
        _cleanup_free_ char *src = P("mv/tree");
        _cleanup_free_ char *dst = xasprintf("%s/moved", sd);
        assert_int_equal(dt_fs_move(&ctx, src, dst, NULL), 0);
        assert_false(exists("mv/tree"));
        _cleanup_free_ char *df = xasprintf("%s/moved/sub/f", sd);
        _cleanup_free_ char *dl = xasprintf("%s/moved/link", sd);
        struct stat st;
        assert_int_equal(stat(df, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0751);
        assert_int_equal(lstat(dl, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        char *content = NULL;
        assert_int_equal(read_file_at(AT_FDCWD, df, 100, &content, NULL), 0);
        assert_string_equal(content, "data");
        free(content);
        dt_test_rm_rf(sd);
    } else {
        print_message("/dev/shm not a separate writable fs: EXDEV path not tested\n");
    }
}

/* ---- permissions ---- */

static void
test_permissions(void **state)
{
    struct dt_error *e = NULL;
    struct stat st;
    put("perm", "x", 0644);
    _cleanup_free_ char *p = P("perm");
    assert_int_equal(dt_fs_set_permissions(&ctx, "perm", NULL, NULL, "4711", NULL), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 04711);
    assert_int_equal(dt_fs_set_permissions(&ctx, "perm", NULL, NULL, "9", &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_set_permissions(&ctx, "perm", "nobody-here", NULL, "600", &e),
                     -EINVAL);
    assert_non_null(strstr(e->message, "nobody-here"));
    dt_error_freep(&e);
    /* nothing applied on a validation error */
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 04711);
    assert_int_equal(dt_fs_set_permissions(&ctx, "nofile", NULL, NULL, "600", &e), -ENOENT);
    dt_error_freep(&e);
    if (getuid() == 0) {
        assert_int_equal(dt_fs_set_permissions(&ctx, "perm", "daytona", "staff", "4755", NULL),
                         0);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 50);
        assert_int_equal(st.st_mode & 07777, 04755); /* setuid survives the chown */
        assert_int_equal(dt_fs_set_permissions(&ctx, "perm", "0", "0", NULL, NULL), 0);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_uid, 0);
    }
}

/* ---- find ---- */

static void
test_find(void **state)
{
    mkd("fd");
    mkd("fd/sub");
    put("fd/a.txt", "one\nhello world\nthree\r\nhello again\r\n", 0644);
    put("fd/sub/b.txt", "nothing\nsay hello", 0644);
    put("fd/regex.txt", "h.llo\n", 0644);
    _cleanup_free_ char *bin = P("fd/bin");
    assert_int_equal(write_file_at(AT_FDCWD, bin, "hello\0world", 11, 0644), 0);
    _cleanup_free_ char *lnk = P("fd/link"), *tgt = P("fd-target");
    put("fd-target", "hello from outside\n", 0644);
    assert_int_equal(symlink(tgt, lnk), 0);

    json_t *a = NULL;
    bool trunc = true;
    assert_int_equal(dt_fs_find(&ctx, "fd", "hello", &a, &trunc, NULL), 0);
    assert_false(trunc);
    assert_int_equal(json_array_size(a), 3);
    json_t *m0 = json_array_get(a, 0), *m1 = json_array_get(a, 1), *m2 = json_array_get(a, 2);
    _cleanup_free_ char *ap = P("fd/a.txt"), *bp = P("fd/sub/b.txt");
    assert_string_equal(json_string_value(json_object_get(m0, "file")), ap);
    assert_int_equal(json_integer_value(json_object_get(m0, "line")), 2);
    assert_string_equal(json_string_value(json_object_get(m0, "content")), "hello world");
    assert_int_equal(json_integer_value(json_object_get(m1, "line")), 4);
    assert_string_equal(json_string_value(json_object_get(m1, "content")), "hello again");
    assert_string_equal(json_string_value(json_object_get(m2, "file")), bp);
    assert_int_equal(json_integer_value(json_object_get(m2, "line")), 2);
    json_decref(a);

    /* literal, not a regex */
    assert_int_equal(dt_fs_find(&ctx, "fd", "h.llo", &a, NULL, NULL), 0);
    assert_int_equal(json_array_size(a), 1);
    json_decref(a);
    /* a single file */
    assert_int_equal(dt_fs_find(&ctx, "fd/a.txt", "three", &a, NULL, NULL), 0);
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "content")),
                        "three");
    json_decref(a);
    /* invalid UTF-8 is replaced, not dropped */
    put("fd/latin1", "caf\xe9 hello\n", 0644);
    assert_int_equal(dt_fs_find(&ctx, "fd/latin1", "hello", &a, NULL, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "content")),
                        "caf\xef\xbf\xbd hello");
    json_decref(a);

    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_find(&ctx, "fd", "", &a, NULL, &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_find(&ctx, "nodir", "x", &a, NULL, &e), -ENOENT);
    dt_error_freep(&e);

    /* result cap */
    mkd("fdcap");
    _cleanup_free_ char *many = xmalloc(6 * (DT_FS_FIND_MAX_RESULTS + 5) + 1);
    size_t o = 0;
    for (unsigned i = 0; i < DT_FS_FIND_MAX_RESULTS + 5; i++) {
        memcpy(many + o, "match\n", 6);
        o += 6;
    }
    many[o] = 0;
    put("fdcap/f", many, 0644);
    assert_int_equal(dt_fs_find(&ctx, "fdcap", "match", &a, &trunc, NULL), 0);
    assert_true(trunc);
    assert_int_equal(json_array_size(a), DT_FS_FIND_MAX_RESULTS);
    json_decref(a);
}

/* ---- search ---- */

static size_t
search_count(const char *pattern, const char *must_end)
{
    json_t *o = NULL;
    assert_int_equal(dt_fs_search(&ctx, "sr", pattern, &o, NULL, NULL), 0);
    json_t *files = json_object_get(o, "files");
    assert_true(json_is_array(files));
    size_t n = json_array_size(files);
    if (must_end) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(files, i));
            size_t l = strlen(s), m = strlen(must_end);
            found |= l >= m && strcmp(s + l - m, must_end) == 0;
        }
        assert_true(found);
    }
    json_decref(o);
    return n;
}

static void
test_search(void **state)
{
    mkd("sr");
    mkd("sr/src");
    mkd("sr/src/components");
    mkd("sr/docs");
    put("sr/file1.txt", "", 0644);
    put("sr/file2.go", "", 0644);
    put("sr/src/main.go", "", 0644);
    put("sr/src/utils.go", "", 0644);
    put("sr/src/components/button.tsx", "", 0644);
    put("sr/src/components/accordion.tsx", "", 0644);
    put("sr/docs/readme.md", "", 0644);
    put("sr/.hidden.go", "", 0644);

    assert_int_equal(search_count("*.go", "/sr/src/utils.go"), 4); /* by name, any depth */
    assert_int_equal(search_count("*.tsx", "button.tsx"), 2);
    assert_int_equal(search_count("**/*.tsx", "accordion.tsx"), 2);
    assert_int_equal(search_count("**/accordion.tsx", "accordion.tsx"), 1);
    assert_int_equal(search_count("src/**/*.go", "/sr/src/main.go"), 2);
    assert_int_equal(search_count("file?.txt", "file1.txt"), 1);
    assert_int_equal(search_count("**/*.{go,tsx}", NULL), 6);
    assert_int_equal(search_count("*.xyz", NULL), 0);
    assert_int_equal(search_count("src", "/sr/src"), 1); /* directories too */
    assert_int_equal(search_count("[bu]*", NULL), 2);
    assert_int_equal(search_count("**", NULL), 11);

    struct dt_error *e = NULL;
    json_t *o = NULL;
    assert_int_equal(dt_fs_search(&ctx, "sr", "", &o, NULL, &e), -EINVAL);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_search(&ctx, "sr/file1.txt", "*", &o, NULL, &e), -ENOTDIR);
    dt_error_freep(&e);
    assert_int_equal(dt_fs_search(&ctx, "sr", "{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}", &o, NULL,
                                  &e),
                     -EINVAL);
    dt_error_freep(&e);
    /* many globstars stay fast (DP, not backtracking) */
    assert_int_equal(search_count("**/**/**/**/**/**/**/**/**/**/**/**/x", NULL), 0);
}

/* ---- replace ---- */

static void
test_replace(void **state)
{
    struct stat st;
    mkd("rp");
    put("rp/a", "foo bar foo\n", 0751);
    put("rp/b", "nothing\n", 0644);
    _cleanup_free_ char *ap = P("rp/a");
    if (getuid() == 0)
        assert_int_equal(chown(ap, 1000, 50), 0);
    assert_int_equal(stat(ap, &st), 0);
    ino_t ino = st.st_ino;

    json_error_t je;
    _cleanup_free_ char *req = xasprintf("{\"files\":[\"%s\",\"rp/b\",\"rp/none\",\"rp\"],"
                                         "\"pattern\":\"foo\",\"newValue\":\"bazz\"}",
                                         ap);
    json_t *body = json_loads(req, 0, &je);
    assert_non_null(body);
    json_t *res = NULL;
    assert_int_equal(dt_fs_replace(&ctx, body, &res, NULL), 0);
    json_decref(body);
    assert_int_equal(json_array_size(res), 4);
    assert_true(json_is_true(json_object_get(json_array_get(res, 0), "success")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "file")), ap);
    assert_true(json_is_true(json_object_get(json_array_get(res, 1), "success")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "file")),
                        "rp/b");
    json_t *r2 = json_array_get(res, 2);
    assert_true(json_is_false(json_object_get(r2, "success")));
    assert_non_null(strstr(json_string_value(json_object_get(r2, "error")), "rp/none"));
    assert_true(json_is_false(json_object_get(json_array_get(res, 3), "success")));
    json_decref(res);

    _cleanup_free_ char *a = get("rp/a");
    assert_string_equal(a, "bazz bar bazz\n");
    assert_int_equal(stat(ap, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0751);
    assert_true(st.st_ino != ino); /* replaced by rename, not rewritten in place */
    if (getuid() == 0) {
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 50);
    }
    /* no temp files left */
    _cleanup_free_ char *rpd = P("rp");
    assert_int_equal(dt_test_count_dir(rpd), 2);

    /* newValue null = delete occurrences */
    body = json_loads("{\"files\":[\"rp/a\"],\"pattern\":\"bazz \",\"newValue\":null}", 0, &je);
    assert_int_equal(dt_fs_replace(&ctx, body, &res, NULL), 0);
    json_decref(body);
    json_decref(res);
    _cleanup_free_ char *a2 = get("rp/a");
    assert_string_equal(a2, "bar bazz\n");

    struct dt_error *e = NULL;
    body = json_loads("{\"files\":\"x\",\"pattern\":\"a\"}", 0, &je);
    assert_int_equal(dt_fs_replace(&ctx, body, &res, &e), -EINVAL);
    json_decref(body);
    dt_error_freep(&e);
    body = json_loads("{\"files\":[\"x\"],\"pattern\":\"\"}", 0, &je);
    assert_int_equal(dt_fs_replace(&ctx, body, &res, &e), -EINVAL);
    json_decref(body);
    dt_error_freep(&e);
}

/* ---- upload and download ---- */

static void
test_upload(void **state)
{
    struct dt_fs_upload u;
    struct stat st;
    mode_t old = umask(077);
    assert_int_equal(dt_fs_create_begin(&ctx, "up/new/dir/f.txt", &u, NULL), 0);
    umask(old);
    assert_int_equal(write_all(u.fd, "new", 3), 0);
    _cleanup_free_ char *fp = P("up/new/dir/f.txt");
    assert_string_equal(u.path, fp);
    assert_false(exists("up/new/dir/f.txt")); /* invisible until commit */
    assert_int_equal(dt_fs_create_commit(&u, NULL), 0);
    _cleanup_free_ char *c1 = get("up/new/dir/f.txt");
    assert_string_equal(c1, "new");
    assert_int_equal(stat(fp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    _cleanup_free_ char *dp = P("up/new/dir");
    assert_int_equal(stat(dp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(dt_test_count_dir(dp), 1);

    /* overwrite keeps mode (and owner) */
    assert_int_equal(chmod(fp, 0600), 0);
    if (getuid() == 0)
        assert_int_equal(chown(fp, 1000, 1000), 0);
    assert_int_equal(dt_fs_create_begin(&ctx, fp, &u, NULL), 0);
    assert_int_equal(write_all(u.fd, "second", 6), 0);
    assert_int_equal(dt_fs_create_commit(&u, NULL), 0);
    _cleanup_free_ char *c2 = get("up/new/dir/f.txt");
    assert_string_equal(c2, "second");
    assert_int_equal(stat(fp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    if (getuid() == 0)
        assert_int_equal(st.st_uid, 1000);

    /* abort leaves the old file intact and no temp file */
    assert_int_equal(dt_fs_create_begin(&ctx, fp, &u, NULL), 0);
    assert_int_equal(write_all(u.fd, "partial garbage", 15), 0);
    dt_fs_create_abort(&u);
    dt_fs_create_abort(&u); /* idempotent */
    _cleanup_free_ char *c3 = get("up/new/dir/f.txt");
    assert_string_equal(c3, "second");
    assert_int_equal(dt_test_count_dir(dp), 1);

    /* through a symlink: the target is replaced, the link stays */
    _cleanup_free_ char *lp = P("up/link");
    assert_int_equal(symlink("new/dir/f.txt", lp), 0);
    assert_int_equal(dt_fs_create_begin(&ctx, "up/link", &u, NULL), 0);
    assert_int_equal(write_all(u.fd, "via link", 8), 0);
    assert_int_equal(dt_fs_create_commit(&u, NULL), 0);
    assert_int_equal(lstat(lp, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    _cleanup_free_ char *c4 = get("up/new/dir/f.txt");
    assert_string_equal(c4, "via link");

    struct dt_error *e = NULL;
    assert_int_equal(dt_fs_create_begin(&ctx, "up/new", &u, &e), -EISDIR);
    dt_error_freep(&e);
    put("up/plain", "x", 0644);
    assert_int_equal(dt_fs_create_begin(&ctx, "up/plain/x", &u, &e), -ENOTDIR);
    dt_error_freep(&e);

    if (getuid() == 0) {
        struct dt_fs_ctx c = ctx;
        c.uid = 1000;
        c.gid = 1000;
        assert_int_equal(dt_fs_create_begin(&c, "up/owned/f", &u, NULL), 0);
        assert_int_equal(dt_fs_create_commit(&u, NULL), 0);
        _cleanup_free_ char *of = P("up/owned/f"), *od = P("up/owned");
        assert_int_equal(stat(of, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(stat(od, &st), 0);
        assert_int_equal(st.st_uid, 1000);
    }
}

static void
test_open_read(void **state)
{
    put("rd.txt", "content", 0644);
    int fd = -1;
    struct stat st;
    assert_int_equal(dt_fs_open_read(&ctx, "rd.txt", &fd, &st, NULL), 0);
    assert_int_equal(st.st_size, 7);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[16];
    assert_int_equal(read(fd, buf, sizeof(buf)), 7);
    close(fd);

    struct dt_error *e = NULL;
    mkd("rddir");
    assert_int_equal(dt_fs_open_read(&ctx, "rddir", &fd, &st, &e), -EISDIR);
    assert_non_null(strstr(e->message, "rddir"));
    dt_error_freep(&e);
    _cleanup_free_ char *ff = P("rdfifo");
    assert_int_equal(mkfifo(ff, 0644), 0);
    assert_int_equal(dt_fs_open_read(&ctx, "rdfifo", &fd, &st, &e), -EINVAL); /* no hang */
    dt_error_freep(&e);
    assert_int_equal(dt_fs_open_read(&ctx, "rdnone", &fd, &st, &e), -ENOENT);
    dt_error_freep(&e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_resolve),        cmocka_unit_test(test_mode_strings),
            cmocka_unit_test(test_time_strings),   cmocka_unit_test(test_info),
            cmocka_unit_test(test_owner_names),    cmocka_unit_test(test_list),
            cmocka_unit_test(test_list_cap),       cmocka_unit_test(test_list_cap_default),
            cmocka_unit_test(test_mkdir),          cmocka_unit_test(test_delete),
            cmocka_unit_test(test_move),           cmocka_unit_test(test_permissions),
            cmocka_unit_test(test_find),           cmocka_unit_test(test_search),
            cmocka_unit_test(test_replace),        cmocka_unit_test(test_upload),
            cmocka_unit_test(test_open_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
