/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the agent's file-system request parsers (src/agent/fs.h): dt_fs_resolve() on arbitrary
 * bytes, dt_fs_parse_mode(), dt_fs_mode_string() and the time formatters on arbitrary values, and
 * dt_fs_search()'s glob matcher (static in fs.c) through a small fixed tree made once in
 * LLVMFuzzerInitialize. Every result is checked against what the header promises. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/fs.h"
#include "dt/macros.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WORKDIR "/home/daytona/work"

/* The search tree, relative to tree_root; directories end in '/'. Names stay short so that
 * fnmatch() (backtracking on '*') stays fast whatever the pattern. */
static const char *const tree[] = {
    "a.ts", "b.go", ".hidden", "sp ace", "d\xc3\xa9j\xc3\xa0.txt", "we{ird},[x]*?",
    "src/", "src/x.c", "src/a.ts", "src/sub/", "src/sub/button.tsx", "src/sub/.git/",
    "src/sub/.git/HEAD",
};
static char tree_root[64];

static void
remove_tree(void)
{
    char p[256];
    if (!tree_root[0])
        return;
    (void) snprintf(p, sizeof(p), "%s/link", tree_root);
    (void) unlink(p);
    for (size_t i = ELEMENTSOF(tree); i-- > 0;) {
        size_t l = strlen(tree[i]);
        (void) snprintf(p, sizeof(p), "%s/%.*s", tree_root, (int) l, tree[i]);
        if (tree[i][l - 1] == '/') {
            p[strlen(p) - 1] = 0;
            (void) rmdir(p);
        } else {
            (void) unlink(p);
        }
    }
    (void) rmdir(tree_root);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char p[256];

    memcpy(tree_root, "/tmp/dt-fuzz-fs-XXXXXX", sizeof("/tmp/dt-fuzz-fs-XXXXXX"));
    DT_ASSERT(mkdtemp(tree_root));
    for (size_t i = 0; i < ELEMENTSOF(tree); i++) {
        size_t l = strlen(tree[i]);
        (void) snprintf(p, sizeof(p), "%s/%s", tree_root, tree[i]);
        if (tree[i][l - 1] == '/') {
            DT_ASSERT(mkdir(p, 0755) == 0);
        } else {
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            DT_ASSERT(fd >= 0);
            close(fd);
        }
    }
    /* a symlink to a directory: reported, never descended */
    (void) snprintf(p, sizeof(p), "%s/link", tree_root);
    DT_ASSERT(symlink("src", p) == 0);
    atexit(remove_tree);
    return 0;
}

static void
check_resolved(const char *r)
{
    size_t n = strlen(r);

    DT_ASSERT(r[0] == '/');
    DT_ASSERT(n < PATH_MAX);
    DT_ASSERT(n == 1 || r[n - 1] != '/');
    DT_ASSERT(!strstr(r, "//"));
    DT_ASSERT(!strstr(r, "/./"));
    DT_ASSERT(!(n >= 2 && strcmp(r + n - 2, "/.") == 0));
}

/* The components of P[0..LEN) that are neither empty nor ".", joined by '/', into OUT. */
static size_t
components(const char *p, size_t len, char *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        while (i < len && p[i] == '/')
            i++;
        size_t s = i;
        while (i < len && p[i] != '/')
            i++;
        if (i > s && !(i - s == 1 && p[s] == '.')) {
            out[o++] = '/';
            memcpy(out + o, p + s, i - s);
            o += i - s;
        }
    }
    out[o] = 0;
    return o;
}

static void
fuzz_resolve(const uint8_t *data, size_t size)
{
    const struct dt_fs_ctx c = { .root = "", .workdir = WORKDIR };
    const struct dt_fs_ctx nowd = { .root = "" };
    const char *path = (const char *) data;
    struct dt_error *err = NULL;
    char *res = NULL;
    int r;

    r = dt_fs_resolve(&c, path, size, &res, &err);
    if (r < 0) {
        DT_ASSERT(r == -EINVAL || r == -ENAMETOOLONG);
        DT_ASSERT(err && err->code == -r && err->message && err->message[0]);
        DT_ASSERT(!res);
        if (r == -EINVAL)
            DT_ASSERT(size == 0 || memchr(path, 0, size));
        dt_error_free(err);
        err = NULL;
        /* the same answer through the strlen() form when there is no NUL */
        if (size > 0 && !memchr(path, 0, size)) {
            char *z = malloc(size + 1);
            memcpy(z, path, size);
            z[size] = 0;
            DT_ASSERT(dt_fs_resolve(&c, z, (size_t) -1, &res, &err) == r);
            dt_error_free(err);
            free(z);
        }
        return;
    }
    DT_ASSERT(!err && res);
    DT_ASSERT(size > 0 && !memchr(path, 0, size));
    check_resolved(res);

    /* exactly the input's components, after the work dir's for a relative path */
    char *want = malloc(sizeof(WORKDIR) + size + 2);
    size_t o = 0;
    if (path[0] != '/')
        o = components(WORKDIR, strlen(WORKDIR), want);
    o += components(path, size, want + o);
    if (o == 0)
        memcpy(want, "/", 2);
    DT_ASSERT(strcmp(want, res) == 0);
    free(want);

    /* idempotent */
    char *again = NULL;
    DT_ASSERT(dt_fs_resolve(&c, res, (size_t) -1, &again, &err) == 0);
    DT_ASSERT(strcmp(again, res) == 0);
    free(again);

    /* without a work dir, only absolute paths resolve, to the same result */
    again = NULL;
    r = dt_fs_resolve(&nowd, path, size, &again, &err);
    if (path[0] == '/') {
        DT_ASSERT(r == 0 && strcmp(again, res) == 0);
    } else {
        DT_ASSERT(r == -EINVAL && err && !again);
        dt_error_free(err);
    }
    free(again);
    free(res);
}

static void
fuzz_mode(const uint8_t *data, size_t size)
{
    char s[16], buf[DT_FS_MODE_STR_MAX + 8];
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    mode_t m = 0, want = 0;
    bool ok;
    int r;

    /* dt_fs_parse_mode against the header's definition */
    memcpy(s, data, n);
    s[n] = 0;
    n = strlen(s);
    ok = n >= 1 && n <= 5;
    for (size_t i = 0; ok && i < n; i++) {
        ok = s[i] >= '0' && s[i] <= '7';
        want = want * 8 + (mode_t) (s[i] - '0');
    }
    ok = ok && want <= 07777;
    r = dt_fs_parse_mode(s, &m);
    DT_ASSERT(r == 0 || r == -EINVAL);
    DT_ASSERT((r == 0) == ok);
    if (ok)
        DT_ASSERT(m == want);

    /* dt_fs_mode_string on an arbitrary mode */
    m = 0;
    memcpy(&m, data, size < sizeof(m) ? size : sizeof(m));
    memset(buf, 'Z', sizeof(buf));
    DT_ASSERT(dt_fs_mode_string(m, buf) == buf);
    n = strlen(buf);
    DT_ASSERT(n >= 10 && n < DT_FS_MODE_STR_MAX);
    for (size_t i = n + 1; i < sizeof(buf); i++)
        DT_ASSERT(buf[i] == 'Z');
    for (size_t i = 0; i < n - 9; i++)
        DT_ASSERT(buf[i] && strchr("dalTLDpSugct?-", buf[i]));
    DT_ASSERT(buf[0] != '-' || n == 10);
    for (int i = 0; i < 9; i++)
        DT_ASSERT(buf[n - 9 + i] == ((m & (1u << (8 - i))) ? "rwxrwxrwx"[i] : '-'));
    DT_ASSERT(!!strchr(buf, 'u') == !!(m & S_ISUID));
    DT_ASSERT(!!strchr(buf, 'g') == !!(m & S_ISGID));
    DT_ASSERT((buf[0] == 'd') == S_ISDIR(m));
}

static void
fuzz_time(const uint8_t *data, size_t size)
{
    struct timespec ts = { 0 };
    char buf[DT_FS_TIME_STR_MAX + 8];
    int64_t v[2] = { 0, 0 };

    memcpy(v, data, size < sizeof(v) ? size : sizeof(v));
    ts.tv_sec = (time_t) v[0];
    ts.tv_nsec = (long) v[1];
    memset(buf, 'Z', sizeof(buf));
    DT_ASSERT(dt_fs_time_go(&ts, buf) == buf);
    DT_ASSERT(strlen(buf) < DT_FS_TIME_STR_MAX && strstr(buf, " +0000 UTC"));
    DT_ASSERT(dt_fs_time_iso(&ts, buf) == buf);
    DT_ASSERT(strlen(buf) < DT_FS_TIME_STR_MAX && buf[strlen(buf) - 1] == 'Z');
}

/* Expected by-name hits for a pattern without '/', "**", braces or backslashes. */
static size_t
expected_by_name(const char *pat, const char **want, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < ELEMENTSOF(tree); i++) {
        const char *e = tree[i];
        size_t l = strlen(e);
        char name[64];
        if (e[l - 1] == '/')
            l--;
        const char *slash = memrchr(e, '/', l);
        const char *b = slash ? slash + 1 : e;
        (void) snprintf(name, sizeof(name), "%.*s", (int) (e + l - b), b);
        if (fnmatch(pat, name, 0) == 0 && n < max)
            want[n++] = e;
    }
    if (fnmatch(pat, "link", 0) == 0 && n < max)
        want[n++] = "link";
    return n;
}

static void
fuzz_search(const uint8_t *data, size_t size)
{
    const struct dt_fs_ctx c = { .root = "", .workdir = tree_root };
    struct dt_error *err = NULL;
    json_t *res = NULL;
    bool truncated = true;
    size_t rl = strlen(tree_root);
    int r;

    if (size > 1100)
        return;
    char *pat = malloc(size + 1);
    memcpy(pat, data, size);
    pat[size] = 0;

    r = dt_fs_search(&c, tree_root, pat, &res, &truncated, &err);
    if (r < 0) {
        DT_ASSERT(r == -EINVAL);
        DT_ASSERT(err && err->code == EINVAL && !res);
        dt_error_free(err);
        free(pat);
        return;
    }
    DT_ASSERT(!err && json_is_object(res) && json_object_size(res) == 1 && !truncated);
    json_t *files = json_object_get(res, "files");
    DT_ASSERT(json_is_array(files));
    DT_ASSERT(json_array_size(files) <= ELEMENTSOF(tree) + 1);
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *s = json_string_value(f);
        DT_ASSERT(s && strncmp(s, tree_root, rl) == 0 && s[rl] == '/' && s[rl + 1]);
        /* never descended into the symlink */
        DT_ASSERT(strncmp(s + rl, "/link/", 6) != 0);
    }
    if (!strchr(pat, '/') && !strstr(pat, "**") && !strpbrk(pat, "{}\\")) {
        const char *want[ELEMENTSOF(tree) + 1];
        size_t n = expected_by_name(pat, want, ELEMENTSOF(want));
        DT_ASSERT(n == json_array_size(files));
        for (size_t k = 0; k < n; k++) {
            size_t wl = strlen(want[k]);
            if (want[k][wl - 1] == '/')
                wl--;
            bool found = false;
            json_array_foreach(files, i, f) {
                const char *s = json_string_value(f) + rl + 1;
                if (strlen(s) == wl && memcmp(s, want[k], wl) == 0)
                    found = true;
            }
            DT_ASSERT(found);
        }
    }
    json_decref(res);
    free(pat);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_resolve(data, size);
    fuzz_mode(data, size);
    fuzz_time(data, size);
    fuzz_search(data, size);
    return 0;
}
