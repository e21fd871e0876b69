/* SPDX-License-Identifier: Apache-2.0 */
/* User and group lookups in the image's /etc/passwd and /etc/group, parsed here because the
 * static agent has no NSS. Follows glibc's "files" backend where it matters: comments and
 * malformed lines are skipped, and the first matching entry wins. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/passwd.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define PASSWD_FIELDS 7 /* name:password:uid:gid:gecos:home:shell */
#define GROUP_FIELDS  4 /* name:password:gid:member,member,... */

struct field {
    const char *p;
    size_t len;
};

void
dt_passwd_done(struct dt_passwd *pw)
{
    if (!pw)
        return;
    free(pw->name);
    free(pw->home);
    free(pw->shell);
    pw->name = pw->home = pw->shell = NULL;
}

/* Parse a decimal id field. (uid_t) -1 is refused: it means "unchanged" to chown() and
 * setresuid(), so an entry carrying it must never be matched or applied. */
static int
parse_id_field(const struct field *f, uint32_t *ret)
{
    char buf[16];
    uint32_t v;

    if (f->len == 0 || f->len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, f->p, f->len);
    buf[f->len] = 0;
    if (parse_u32(buf, &v) < 0 || v == UINT32_MAX)
        return -EINVAL;
    *ret = v;
    return 0;
}

static bool
field_eq(const struct field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

/* Call the walker for each candidate line of BUF: split into exactly N fields, with comments,
 * blank lines and lines holding NUL bytes skipped and one trailing '\r' (files edited on
 * Windows) dropped. The callback returns > 0 to stop the walk, which then returns that value. */
typedef int (*line_fn)(struct field *f, void *userdata);

static int
walk_lines(const char *buf, size_t len, size_t n, line_fn fn, void *userdata)
{
    const char *p = buf, *end = buf + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        const char *eol = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        struct field f[PASSWD_FIELDS];
        size_t nf = 0;
        const char *s = p;

        DT_ASSERT(n <= ELEMENTSOF(f));
        if (eol > p && eol[-1] == '\r')
            eol--;
        /* glibc skips leading blanks, then comments; the blanks are not part of the name. */
        while (s < eol && (*s == ' ' || *s == '\t'))
            s++;
        if (s == eol || *s == '#' || memchr(p, 0, (size_t) (eol - p))) {
            p = next;
            continue;
        }
        for (;;) {
            const char *c = memchr(s, ':', (size_t) (eol - s));
            if (nf == n) {
                nf++; /* too many fields */
                break;
            }
            f[nf].p = s;
            f[nf].len = c ? (size_t) (c - s) : (size_t) (eol - s);
            nf++;
            if (!c)
                break;
            s = c + 1;
        }
        if (nf == n && f[0].len > 0) {
            int r = fn(f, userdata);
            if (r > 0)
                return r;
        }
        p = next;
    }
    return 0;
}

struct passwd_query {
    const char *name;
    uid_t uid;
    struct dt_passwd *ret;
};

static int
passwd_line(struct field *f, void *userdata)
{
    struct passwd_query *q = userdata;
    uint32_t uid, gid;

    if (parse_id_field(&f[2], &uid) < 0 || parse_id_field(&f[3], &gid) < 0)
        return 0;
    if (q->name ? !field_eq(&f[0], q->name) : uid != q->uid)
        return 0;
    q->ret->name = xstrndup(f[0].p, f[0].len);
    q->ret->uid = uid;
    q->ret->gid = gid;
    q->ret->home = xstrndup(f[5].p, f[5].len);
    q->ret->shell = xstrndup(f[6].p, f[6].len);
    return 1;
}

int
dt_passwd_parse_buffer(const char *buf, size_t len, const char *name, uid_t uid,
                       struct dt_passwd *ret)
{
    struct dt_passwd tmp = { 0 };
    struct passwd_query q = { .name = name, .uid = uid, .ret = &tmp };

    if (walk_lines(buf, len, PASSWD_FIELDS, passwd_line, &q) <= 0)
        return -ENOENT;
    *ret = tmp;
    return 0;
}

struct group_query {
    const char *name;
    gid_t gid;
    gid_t found;
    char **ret_name;
};

static int
group_line(struct field *f, void *userdata)
{
    struct group_query *q = userdata;
    uint32_t gid;

    if (parse_id_field(&f[2], &gid) < 0)
        return 0;
    if (q->name ? !field_eq(&f[0], q->name) : gid != q->gid)
        return 0;
    q->found = gid;
    if (q->ret_name)
        *q->ret_name = xstrndup(f[0].p, f[0].len);
    return 1;
}

int
dt_group_parse_buffer(const char *buf, size_t len, const char *name, gid_t gid, gid_t *ret_gid,
                      char **ret_name)
{
    struct group_query q = { .name = name, .gid = gid, .ret_name = ret_name };

    if (walk_lines(buf, len, GROUP_FIELDS, group_line, &q) <= 0)
        return -ENOENT;
    if (ret_gid)
        *ret_gid = q.found;
    return 0;
}

struct list_query {
    const char *name;
    gid_t *gids;
    int n, max;
};

static bool
member_of(const struct field *members, const char *name)
{
    const char *p = members->p, *end = members->p + members->len;
    size_t nl = strlen(name);

    while (p < end) {
        const char *c = memchr(p, ',', (size_t) (end - p));
        const char *e = c ? c : end;
        /* Tolerate blanks around names ("a, b"), which some hand-edited files have. */
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t) (t - s) == nl && memcmp(s, name, nl) == 0)
            return true;
        p = c ? c + 1 : end;
    }
    return false;
}

static int
list_line(struct field *f, void *userdata)
{
    struct list_query *q = userdata;
    uint32_t gid;

    if (parse_id_field(&f[2], &gid) < 0 || !member_of(&f[3], q->name))
        return 0;
    for (int i = 0; i < q->n; i++)
        if (q->gids[i] == gid)
            return 0;
    q->gids[q->n++] = gid;
    return q->n >= q->max ? 1 : 0;
}

int
dt_group_list_buffer(const char *buf, size_t len, const char *name, gid_t gid, gid_t *gids,
                     int max)
{
    struct list_query q = { .name = name, .gids = gids, .n = 0, .max = max };

    if (max <= 0)
        return -EINVAL;
    gids[q.n++] = gid;
    if (!name || !*name || q.n >= max)
        return q.n;
    (void) walk_lines(buf, len, GROUP_FIELDS, list_line, &q);
    return q.n;
}

/* Read ROOT/etc/<FILE>. Both may be symlinks in real images (e.g. into /usr/share), so the path
 * is followed; but only a regular file is read: a FIFO planted there would block the agent (hence
 * O_NONBLOCK on open) and a device could be endless. Anything else counts as no file. The
 * sandbox is the security boundary, so ROOT is joined as a string: it is only ever "/" or a test
 * directory. */
static int
read_etc(const char *root, const char *file, char **ret, size_t *ret_len)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct stat st;

    if (!root || !*root || (root[0] == '/' && root[1] == 0))
        root = "";
    path = xasprintf("%s/etc/%s", root, file);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -ENOENT;
    if ((uint64_t) st.st_size > DT_PASSWD_MAX_FILE)
        return -EFBIG;
    return read_fd_all(fd, DT_PASSWD_MAX_FILE, ret, ret_len);
}

int
dt_passwd_lookup(const char *root, const char *name, uid_t uid, struct dt_passwd *ret)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r;

    r = read_etc(root, "passwd", &buf, &len);
    if (r < 0)
        return r;
    return dt_passwd_parse_buffer(buf, len, name, uid, ret);
}

int
dt_group_lookup(const char *root, const char *name, gid_t gid, gid_t *ret_gid, char **ret_name)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r;

    r = read_etc(root, "group", &buf, &len);
    if (r < 0)
        return r;
    return dt_group_parse_buffer(buf, len, name, gid, ret_gid, ret_name);
}

int
dt_group_list(const char *root, const char *name, gid_t gid, gid_t *gids, int max)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r;

    if (max <= 0)
        return -EINVAL;
    r = read_etc(root, "group", &buf, &len);
    if (r == -ENOENT) {
        /* An image without /etc/group: the user still has their primary group. */
        gids[0] = gid;
        return 1;
    }
    if (r < 0)
        return r;
    return dt_group_list_buffer(buf, len, name, gid, gids, max);
}

/* A spec made only of digits is an id, as chown(1) does; anything else is a name. */
static int
parse_id_spec(const char *spec, uint32_t *ret)
{
    if (!spec || !*spec)
        return -EINVAL;
    if (strspn(spec, "0123456789") != strlen(spec))
        return 0; /* a name */
    if (parse_u32(spec, ret) < 0 || *ret == UINT32_MAX)
        return -EINVAL;
    return 1;
}

int
dt_passwd_parse_uid(const char *root, const char *spec, uid_t *ret)
{
    struct dt_passwd pw = { 0 };
    uint32_t id;
    int r;

    r = parse_id_spec(spec, &id);
    if (r < 0)
        return r;
    if (r > 0) {
        *ret = id;
        return 0;
    }
    /* A name with ':' or a newline can never match a line: reject it as malformed. */
    if (strpbrk(spec, ":\n"))
        return -EINVAL;
    r = dt_passwd_lookup(root, spec, 0, &pw);
    if (r < 0)
        return r;
    *ret = pw.uid;
    dt_passwd_done(&pw);
    return 0;
}

int
dt_group_parse_gid(const char *root, const char *spec, gid_t *ret)
{
    uint32_t id;
    int r;

    r = parse_id_spec(spec, &id);
    if (r < 0)
        return r;
    if (r > 0) {
        *ret = id;
        return 0;
    }
    if (strpbrk(spec, ":\n"))
        return -EINVAL;
    return dt_group_lookup(root, spec, 0, ret, NULL);
}
