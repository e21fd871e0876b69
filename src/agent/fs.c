/* SPDX-License-Identifier: Apache-2.0 */
/* The toolbox's file-system operations (see fs.h). Walks use openat() on directory fds and never
 * follow symlinks below the starting path, so a tree that changes under us cannot redirect a
 * recursive operation out of it. */
#include "agent/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/passwd.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define SEARCH_MAX_PATTERN 1024
#define SEARCH_MAX_ALTS    64

/* ---- errors ---------------------------------------------------------------------------- */

/* The message the SDK user sees for a failed syscall on PATH: the common cases read as plain
 * sentences ("no such file or directory: /x"), the rest say what we tried. */
static int
fail(struct dt_error **err, int e, const char *what, const char *path)
{
    e = e < 0 ? -e : e;
    switch (e) {
    case ENOENT:
        return dt_error_set(err, e, "no such file or directory: %s", path);
    case EACCES:
    case EPERM:
        return dt_error_set(err, e, "permission denied: %s (%s)", path, what);
    default:
        return dt_error_errno(err, e, "%s '%s'", what, path);
    }
}

/* ---- JSON strings that are always valid UTF-8 ------------------------------------------ */

/* Length of the valid UTF-8 sequence at S (N bytes left), or 0 when invalid (overlong forms,
 * surrogates and code points above U+10FFFF are invalid, as in jansson). */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string of the N bytes at S; invalid bytes become U+FFFD, as Go's encoder does. */
static json_t *
jstr(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j)
        return j;
    /* Worst case every byte becomes 3. */
    _cleanup_free_ char *buf = xmalloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq((const unsigned char *) s + i, n - i);
        if (l == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, l);
            o += l;
            i += l;
        }
    }
    j = json_stringn(buf, o);
    DT_ASSERT(j);
    return j;
}

static json_t *
jstrz(const char *s)
{
    return jstr(s, strlen(s));
}

/* ---- a growable path buffer ------------------------------------------------------------ */

struct pbuf {
    char *s;
    size_t len, cap;
};

static void
pbuf_set(struct pbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (n + 1 > b->cap) {
        b->cap = n + 256;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s, s, n + 1);
    b->len = n;
}

/* Append "/NAME" (no slash after a trailing one, i.e. after "/"); returns the old length. */
static size_t
pbuf_push(struct pbuf *b, const char *name)
{
    size_t old = b->len, n = strlen(name);
    bool slash = b->len == 0 || b->s[b->len - 1] != '/';
    if (b->len + n + 2 > b->cap) {
        b->cap = (b->len + n + 2) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    if (slash)
        b->s[b->len++] = '/';
    memcpy(b->s + b->len, name, n + 1);
    b->len += n;
    return old;
}

static void
pbuf_pop(struct pbuf *b, size_t old)
{
    b->len = old;
    b->s[old] = 0;
}

/* ---- paths ---------------------------------------------------------------------------- */

int
dt_fs_resolve(const struct dt_fs_ctx *c, const char *path, size_t len, char **ret,
              struct dt_error **err)
{
    if (!path)
        return dt_error_set(err, EINVAL, "path is required");
    if (len == (size_t) -1)
        len = strlen(path);
    if (len == 0)
        return dt_error_set(err, EINVAL, "path is required");
    if (memchr(path, 0, len))
        return dt_error_set(err, EINVAL, "path contains a NUL byte");
    if (len >= PATH_MAX)
        return dt_error_set(err, ENAMETOOLONG, "path too long (%zu bytes, limit %d): %.64s...",
                            len, PATH_MAX - 1, path);

    const char *base = "";
    if (path[0] != '/') {
        if (!c->workdir || c->workdir[0] != '/')
            return dt_error_set(err, EINVAL, "relative path without a working directory: %.*s",
                                (int) len, path);
        base = c->workdir;
    }

    size_t blen = strlen(base);
    _cleanup_free_ char *in = xmalloc(blen + 1 + len + 1);
    memcpy(in, base, blen);
    in[blen] = '/';
    memcpy(in + blen + 1, path, len);
    in[blen + 1 + len] = 0;

    /* Output is never longer than the input. */
    char *out = xmalloc(blen + len + 3);
    size_t o = 0;
    for (char *p = in; *p;) {
        while (*p == '/')
            p++;
        char *e = p;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t) (e - p);
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    if (o >= PATH_MAX) {
        free(out);
        return dt_error_set(err, ENAMETOOLONG, "path too long (%zu bytes, limit %d): %.64s...",
                            o, PATH_MAX - 1, path);
    }
    *ret = out;
    return 0;
}

/* Split resolved absolute PATH into a new parent string and a pointer to its last component
 * (inside PATH). "/" has no last component: *ret_name = "". */
static char *
split_parent(const char *path, const char **ret_name)
{
    const char *slash = strrchr(path, '/');
    DT_ASSERT(slash);
    *ret_name = slash + 1;
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t) (slash - path));
}

static bool
is_dot_or_dotdot(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* ---- FileInfo ------------------------------------------------------------------------- */

char *
dt_fs_mode_string(mode_t mode, char *buf)
{
    size_t o = 0;
    /* Go's ModeType letters in the order of its "dalTLDpSugct?" table; only those the Linux
     * stat mode can produce are possible (a, l, T never are). */
    switch (mode & S_IFMT) {
    case S_IFDIR:
        buf[o++] = 'd';
        break;
    case S_IFLNK:
        buf[o++] = 'L';
        break;
    case S_IFBLK:
        buf[o++] = 'D';
        break;
    case S_IFCHR:
        buf[o++] = 'D';
        break;
    case S_IFIFO:
        buf[o++] = 'p';
        break;
    case S_IFSOCK:
        buf[o++] = 'S';
        break;
    default:
        break;
    }
    if (mode & S_ISUID)
        buf[o++] = 'u';
    if (mode & S_ISGID)
        buf[o++] = 'g';
    if (S_ISCHR(mode))
        buf[o++] = 'c';
    if (mode & S_ISVTX)
        buf[o++] = 't';
    if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode) && !S_ISBLK(mode) &&
        !S_ISCHR(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
        buf[o++] = '?';
    if (o == 0)
        buf[o++] = '-';
    static const char rwx[] = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        buf[o++] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
    buf[o] = 0;
    return buf;
}

/* ".123456789" with trailing zeros removed, or "" for a whole second; BUF >= 11 bytes. */
static const char *
fmt_frac(long nsec, char *buf)
{
    if (nsec <= 0 || nsec >= 1000000000L) {
        buf[0] = 0;
        return buf;
    }
    snprintf(buf, 11, ".%09ld", nsec);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '0')
        buf[--n] = 0;
    return buf;
}

char *
dt_fs_time_go(const struct timespec *ts, char *buf)
{
    struct tm tm;
    char frac[16];
    time_t t = ts->tv_sec;
    /* A file system may hold any mtime (tmpfs keeps 6.7e16 s): past year 9999 print the epoch
     * rather than overflow the year arithmetic. */
    if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900)
        memset(&tm, 0, sizeof(tm));
    snprintf(buf, DT_FS_TIME_STR_MAX, "%04d-%02d-%02d %02d:%02d:%02d%s +0000 UTC",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             fmt_frac(ts->tv_nsec, frac));
    return buf;
}

char *
dt_fs_time_iso(const struct timespec *ts, char *buf)
{
    struct tm tm;
    char frac[16];
    time_t t = ts->tv_sec;
    /* A file system may hold any mtime (tmpfs keeps 6.7e16 s): past year 9999 print the epoch
     * rather than overflow the year arithmetic. */
    if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900)
        memset(&tm, 0, sizeof(tm));
    snprintf(buf, DT_FS_TIME_STR_MAX, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             fmt_frac(ts->tv_nsec, frac));
    return buf;
}

/* Id -> name lookups for one request: listing 100000 files owned by one user must not read
 * /etc/passwd 100000 times. */
#define NAME_CACHE_SIZE 8
struct name_cache {
    struct {
        unsigned id;
        char *name; /* NULL = does not resolve */
        bool used;
    } u[NAME_CACHE_SIZE], g[NAME_CACHE_SIZE];
    unsigned nu, ng;
};

static void
name_cache_done(struct name_cache *nc)
{
    for (unsigned i = 0; i < NAME_CACHE_SIZE; i++) {
        free(nc->u[i].name);
        free(nc->g[i].name);
    }
}

static const char *
cached_name(const struct dt_fs_ctx *c, struct name_cache *nc, bool group, unsigned id)
{
    __typeof__(nc->u[0]) *tab = group ? nc->g : nc->u;
    unsigned *next = group ? &nc->ng : &nc->nu;
    for (unsigned i = 0; i < NAME_CACHE_SIZE; i++)
        if (tab[i].used && tab[i].id == id)
            return tab[i].name;
    char *name = NULL;
    if (group) {
        gid_t g;
        if (dt_group_lookup(c->root ? c->root : "", NULL, (gid_t) id, &g, &name) < 0)
            name = NULL;
    } else {
        struct dt_passwd pw = {0};
        if (dt_passwd_lookup(c->root ? c->root : "", NULL, (uid_t) id, &pw) == 0)
            name = TAKE_PTR(pw.name);
        dt_passwd_done(&pw);
    }
    unsigned slot = (*next)++ % NAME_CACHE_SIZE;
    free(tab[slot].name);
    tab[slot].name = name;
    tab[slot].id = id;
    tab[slot].used = true;
    return name;
}

static json_t *
info_json(const struct dt_fs_ctx *c, struct name_cache *nc, const char *path,
          const struct stat *st)
{
    char mode[DT_FS_MODE_STR_MAX], perm[8], t1[DT_FS_TIME_STR_MAX], t2[DT_FS_TIME_STR_MAX];
    char uid[DECIMAL_STR_MAX(unsigned)], gid[DECIMAL_STR_MAX(unsigned)];
    const char *owner = NULL, *group = NULL;
    const char *name = strrchr(path, '/');
    name = (name && name[1]) ? name + 1 : path;

    snprintf(perm, sizeof(perm), "%04o", (unsigned) (st->st_mode & 0777));
    snprintf(uid, sizeof(uid), "%u", (unsigned) st->st_uid);
    snprintf(gid, sizeof(gid), "%u", (unsigned) st->st_gid);
    if (c->owner_names) {
        owner = cached_name(c, nc, false, st->st_uid);
        group = cached_name(c, nc, true, st->st_gid);
    }

    json_t *o = json_object();
    json_object_set_new(o, "name", jstrz(name));
    json_object_set_new(o, "path", jstrz(path));
    json_object_set_new(o, "isDir", json_boolean(S_ISDIR(st->st_mode)));
    json_object_set_new(o, "size", json_integer((json_int_t) st->st_size));
    json_object_set_new(o, "mode", json_string(dt_fs_mode_string(st->st_mode, mode)));
    json_object_set_new(o, "permissions", json_string(perm));
    json_object_set_new(o, "owner", jstrz(owner ? owner : uid));
    json_object_set_new(o, "group", jstrz(group ? group : gid));
    json_object_set_new(o, "modTime", json_string(dt_fs_time_go(&st->st_mtim, t1)));
    json_object_set_new(o, "modifiedAt", json_string(dt_fs_time_iso(&st->st_mtim, t2)));
    return o;
}

json_t *
dt_fs_info_json(const struct dt_fs_ctx *c, const char *path, const struct stat *st)
{
    struct name_cache nc = {0};
    json_t *o = info_json(c, &nc, path, st);
    name_cache_done(&nc);
    return o;
}

int
dt_fs_info(const struct dt_fs_ctx *c, const char *path, json_t **ret, struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    struct stat st;
    int r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    if (stat(p, &st) < 0) {
        int e = errno;
        /* A dangling symlink still exists: describe the link. */
        if (e != ENOENT || lstat(p, &st) < 0 || !S_ISLNK(st.st_mode))
            return fail(err, e, "stat", p);
    }
    *ret = dt_fs_info_json(c, p, &st);
    return 0;
}

/* ---- the walker ----------------------------------------------------------------------- */

struct walker;
/* Called for each entry NAME of directory DFD (DEPTH 1 = the start's entries) with its lstat;
 * w->path holds its full path. Return < 0 to abort the walk with that error. */
typedef int (*walk_fn)(struct walker *w, int dfd, const char *name, const struct stat *lst,
                       unsigned depth);

struct walker {
    struct pbuf path;
    size_t root_len;
    unsigned max_depth;
    size_t visited, max_visited;
    bool truncated; /* max_visited reached, or a callback asked to stop */
    walk_fn fn;
    void *userdata;
};

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Walk the entries of DFD (borrowed), depth-first, names sorted bytewise like Go's walk. Errors
 * on entries below the start (vanished, unreadable) skip them, as Daytona does. */
static int
walk_dir(struct walker *w, int dfd, unsigned depth)
{
    int dupfd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return -errno;
    DIR *d = fdopendir(dupfd);
    if (!d) {
        safe_close(dupfd);
        return -errno;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    /* Never hold more names than the walk may still visit: a directory with ten million
     * entries must not cost ten million strings when only a few may be reported. */
    size_t room = w->max_visited > w->visited ? w->max_visited - w->visited + 1 : 1;
    while ((de = readdir(d))) {
        if (is_dot_or_dotdot(de->d_name))
            continue;
        if (n == room)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = xreallocarray(names, cap, sizeof(char *));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(char *), cmp_str);

    int r = 0;
    for (size_t i = 0; i < n && !w->truncated; i++) {
        struct stat st;
        if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (++w->visited > w->max_visited) {
            w->truncated = true;
            break;
        }
        size_t old = pbuf_push(&w->path, names[i]);
        r = w->fn(w, dfd, names[i], &st, depth);
        if (r >= 0 && !w->truncated && S_ISDIR(st.st_mode) && depth < w->max_depth &&
            depth < DT_FS_WALK_MAX_DEPTH) {
            int cfd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd >= 0) {
                r = walk_dir(w, cfd, depth + 1);
                safe_close(cfd);
                if (r == -EMFILE || r == -ENFILE || r == -ENOMEM)
                    r = 0; /* a too-deep or too-wide corner is skipped, not fatal */
            }
        }
        pbuf_pop(&w->path, old);
        if (r < 0)
            break;
    }
    free_names(names, n);
    return r;
}

/* ---- list ----------------------------------------------------------------------------- */

struct list_state {
    const struct dt_fs_ctx *c;
    struct name_cache nc;
    json_t *arr;
};

static int
list_visit(struct walker *w, int dfd, const char *name, const struct stat *lst, unsigned depth)
{
    struct list_state *s = w->userdata;
    struct stat st;
    /* Like Daytona's os.Stat per entry: a symlink shows its target; a dangling one the link. */
    if (!S_ISLNK(lst->st_mode) || fstatat(dfd, name, &st, 0) < 0)
        st = *lst;
    json_array_append_new(s->arr, info_json(s->c, &s->nc, w->path.s, &st));
    return 0;
}

int
dt_fs_list(const struct dt_fs_ctx *c, const char *path, unsigned depth, json_t **ret,
           struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int fd = -EBADF;
    int r;

    if (depth == 0)
        return dt_error_set(err, EINVAL, "depth must be at least 1");
    r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? dt_error_set(err, ENOTDIR, "not a directory: %s", p)
                                : fail(err, errno, "open directory", p);

    unsigned max = c->list_max ? c->list_max : DT_FS_LIST_MAX;
    struct list_state s = {.c = c, .arr = json_array()};
    struct walker w = {
        .max_depth = depth, .max_visited = max, .fn = list_visit, .userdata = &s};
    pbuf_set(&w.path, p);
    r = walk_dir(&w, fd, 1);
    free(w.path.s);
    name_cache_done(&s.nc);
    if (r >= 0 && w.truncated)
        r = dt_error_set(err, E2BIG, "listing %s gives more than %u entries; use a smaller depth",
                         p, max);
    else if (r < 0)
        r = fail(err, r, "list directory", p);
    if (r < 0) {
        json_decref(s.arr);
        return r;
    }
    *ret = s.arr;
    return 0;
}

/* ---- mkdir ---------------------------------------------------------------------------- */

int
dt_fs_parse_mode(const char *s, mode_t *ret)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 5)
        return -EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -EINVAL;
        v = v * 8 + (unsigned) (s[i] - '0');
    }
    if (v > 07777)
        return -EINVAL;
    *ret = (mode_t) v;
    return 0;
}

/* Give NAME under DFD (just created by us) the sandbox user's ownership and exactly MODE (no
 * umask). chown before chmod: chown clears setuid/setgid bits. */
static int
adopt_at(const struct dt_fs_ctx *c, int dfd, const char *name, mode_t mode)
{
    if ((c->uid != (uid_t) -1 || c->gid != (gid_t) -1) &&
        fchownat(dfd, name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (fchmodat(dfd, name, mode, 0) < 0)
        return -errno;
    return 0;
}

/* mkdir -p DIR (resolved, absolute), component by component with openat so every directory we
 * create can be handed to the sandbox user. Missing parents get 0755, DIR itself LAST_MODE.
 * Returns an O_PATH fd of DIR, or -errno with *err. A non-directory at DIR itself is -EEXIST
 * for mkdir, -ENOTDIR when FOR_FILE (DIR is the parent of a file to create). */
static int
mkdir_p_fd(const struct dt_fs_ctx *c, const char *dir, mode_t last_mode, bool for_file,
           struct dt_error **err)
{
    _cleanup_free_ char *copy = xstrdup(dir);
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errno, "open", "/");

    char *p = copy;
    while (*p == '/')
        p++;
    while (*p) {
        char *e = strchr(p, '/');
        if (e)
            *e = 0;
        bool last = !e || !e[1];
        int nfd = -EBADF;
        for (int attempt = 0; attempt < 3 && nfd < 0; attempt++) {
            nfd = openat(fd, p, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (nfd >= 0 || errno != ENOENT)
                break;
            mode_t m = last ? last_mode : 0755;
            if (mkdirat(fd, p, m) < 0) {
                if (errno == EEXIST)
                    continue; /* raced with someone else: open theirs */
                break;
            }
            int r = adopt_at(c, fd, p, m);
            if (r < 0) {
                safe_close(fd);
                return fail(err, r, "set owner of new directory", copy);
            }
        }
        if (nfd < 0) {
            int e2 = errno;
            safe_close(fd);
            if (e2 == ENOTDIR || (e2 == EEXIST && last))
                return dt_error_set(err, last && !for_file ? EEXIST : ENOTDIR,
                                    "%s: exists and is not a directory", copy);
            return fail(err, e2, "create directory", copy);
        }
        safe_close(fd);
        fd = nfd;
        if (!e)
            break;
        *e = '/';
        p = e + 1;
        while (*p == '/')
            p++;
    }
    return fd;
}

int
dt_fs_mkdir(const struct dt_fs_ctx *c, const char *path, const char *mode,
            struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    mode_t m = 0755;
    if (mode && *mode && dt_fs_parse_mode(mode, &m) < 0)
        return dt_error_set(err, EINVAL, "invalid mode '%s' (want octal digits such as 755)",
                            mode);
    int r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    int fd = mkdir_p_fd(c, p, m, false, err);
    if (fd < 0)
        return fd;
    safe_close(fd);
    return 0;
}

/* ---- delete --------------------------------------------------------------------------- */

int
dt_fs_delete(const struct dt_fs_ctx *c, const char *path, bool recursive,
             struct dt_error **err)
{
    _cleanup_free_ char *p = NULL, *parent = NULL;
    _cleanup_close_ int dfd = -EBADF;
    const char *name;
    struct stat st;
    int r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    parent = split_parent(p, &name);
    if (!*name || is_dot_or_dotdot(name))
        return dt_error_set(err, EINVAL, "refusing to delete %s", p);
    dfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail(err, errno, "open", parent);
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(err, errno, "stat", p);

    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) < 0)
            return fail(err, errno, "delete", p);
        return 0;
    }
    if (!recursive) {
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0) {
            if (errno == ENOTEMPTY || errno == EEXIST)
                return dt_error_set(err, ENOTEMPTY,
                                    "directory not empty: %s (delete it with recursive=true)", p);
            return fail(err, errno, "delete directory", p);
        }
        return 0;
    }
    /* rm_rf_at() opens each level with O_NOFOLLOW and unlinks symlinks as entries, so a link
     * pointing out of the tree only loses the link; it stays on this file system. */
    r = rm_rf_at(dfd, name);
    if (r == -EBUSY)
        return dt_error_set(err, EBUSY, "cannot delete %s completely: a mount point is inside "
                                        "it or it is one", p);
    if (r < 0)
        return fail(err, r, "delete recursively", p);
    return 0;
}

/* ---- move ----------------------------------------------------------------------------- */

static int copy_at(int sfd, const char *sname, const struct stat *st, int dfd, const char *dname,
                   unsigned depth);


static void
copy_meta_fd(int fd, const struct stat *st)
{
    /* Ownership is best effort, as with cp -a without privileges. */
    (void) fchown(fd, st->st_uid, st->st_gid);
    (void) fchmod(fd, st->st_mode & 07777);
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    (void) futimens(fd, ts);
}

static int
copy_dir_children(int sdir, int ddir, unsigned depth)
{
    int dupfd = fcntl(sdir, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return -errno;
    DIR *d = fdopendir(dupfd);
    if (!d) {
        safe_close(dupfd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while (r >= 0 && (errno = 0, de = readdir(d))) {
        if (is_dot_or_dotdot(de->d_name))
            continue;
        struct stat st;
        if (fstatat(sdir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
            break;
        }
        r = copy_at(sdir, de->d_name, &st, ddir, de->d_name, depth + 1);
    }
    if (r >= 0 && errno)
        r = -errno;
    closedir(d);
    return r;
}

/* Copy SNAME under SFD (lstat ST) to the new name DNAME under DFD, recursively. */
static int
copy_at(int sfd, const char *sname, const struct stat *st, int dfd, const char *dname,
        unsigned depth)
{
    if (depth > DT_FS_WALK_MAX_DEPTH)
        return -ELOOP;
    if (S_ISREG(st->st_mode)) {
        _cleanup_close_ int in = openat(sfd, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
            return -errno;
        _cleanup_close_ int out =
                openat(dfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
            return -errno;
        int r = copy_fd_all(in, out);
        if (r < 0)
            return r;
        copy_meta_fd(out, st);
        return 0;
    }
    if (S_ISDIR(st->st_mode)) {
        if (mkdirat(dfd, dname, 0700) < 0)
            return -errno;
        _cleanup_close_ int in =
                openat(sfd, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
            return -errno;
        _cleanup_close_ int out =
                openat(dfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (out < 0)
            return -errno;
        int r = copy_dir_children(in, out, depth);
        if (r < 0)
            return r;
        /* Last, so copying the children does not change the times again. */
        copy_meta_fd(out, st);
        return 0;
    }
    if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(sfd, sname, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = 0;
        if (symlinkat(target, dfd, dname) < 0)
            return -errno;
        (void) fchownat(dfd, dname, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
        struct timespec ts[2] = {st->st_atim, st->st_mtim};
        (void) utimensat(dfd, dname, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    /* fifo, socket, device */
    if (mknodat(dfd, dname, st->st_mode, st->st_rdev) < 0)
        return -errno;
    (void) fchownat(dfd, dname, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
    (void) fchmodat(dfd, dname, st->st_mode & 07777, 0);
    return 0;
}

int
dt_fs_move(const struct dt_fs_ctx *c, const char *src, const char *dst, struct dt_error **err)
{
    _cleanup_free_ char *s = NULL, *d = NULL, *sparent = NULL, *dparent = NULL;
    _cleanup_close_ int sfd = -EBADF, dfd = -EBADF;
    const char *sname, *dname;
    struct stat st, dst_st;
    int r;

    r = dt_fs_resolve(c, src, (size_t) -1, &s, err);
    if (r < 0)
        return dt_error_wrap(err, "source");
    r = dt_fs_resolve(c, dst, (size_t) -1, &d, err);
    if (r < 0)
        return dt_error_wrap(err, "destination");
    sparent = split_parent(s, &sname);
    dparent = split_parent(d, &dname);
    if (!*sname || is_dot_or_dotdot(sname))
        return dt_error_set(err, EINVAL, "refusing to move %s", s);
    if (!*dname || is_dot_or_dotdot(dname))
        return dt_error_set(err, EINVAL, "invalid destination %s", d);

    sfd = open(sparent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0)
        return fail(err, errno, "open", sparent);
    if (fstatat(sfd, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(err, errno, "stat", s);
    dfd = open(dparent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT)
            return dt_error_set(err, ENOENT, "destination directory does not exist: %s",
                                dparent);
        return fail(err, errno, "open", dparent);
    }
    if (fstatat(dfd, dname, &dst_st, AT_SYMLINK_NOFOLLOW) == 0)
        return dt_error_set(err, EEXIST, "destination already exists: %s", d);

    /* NOREPLACE closes the window between the check above and the rename. */
    r = renameat2(sfd, sname, dfd, dname, RENAME_NOREPLACE);
    if (r < 0 && errno == EINVAL) {
        /* Not supported by this file system (or moving a directory into itself: the plain
         * rename below reports that one again). */
        r = renameat(sfd, sname, dfd, dname);
    }
    if (r == 0)
        return 0;
    if (errno == EEXIST || errno == ENOTEMPTY)
        return dt_error_set(err, EEXIST, "destination already exists: %s", d);
    if (errno == EINVAL)
        return dt_error_set(err, EINVAL, "cannot move %s into itself (%s)", s, d);
    if (errno != EXDEV)
        return dt_error_errno(err, errno, "move '%s' to '%s'", s, d);

    /* Another file system: copy, then remove the source. */
    r = copy_at(sfd, sname, &st, dfd, dname, 0);
    if (r < 0) {
        (void) rm_rf_at(dfd, dname);
        return dt_error_errno(err, r, "copy '%s' to '%s' (another file system)", s, d);
    }
    r = S_ISDIR(st.st_mode) ? rm_rf_at(sfd, sname) : RET_NERRNO(unlinkat(sfd, sname, 0));
    if (r < 0)
        return dt_error_errno(err, r, "copied '%s' to '%s' but could not remove the source", s,
                              d);
    return 0;
}

/* ---- permissions ---------------------------------------------------------------------- */

int
dt_fs_set_permissions(const struct dt_fs_ctx *c, const char *path, const char *owner,
                      const char *group, const char *mode, struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    uid_t uid = (uid_t) -1;
    gid_t gid = (gid_t) -1;
    mode_t m = 0;
    bool set_mode = mode && *mode;
    const char *root = c->root ? c->root : "";
    struct stat st;
    int r;

    r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    if (set_mode && dt_fs_parse_mode(mode, &m) < 0)
        return dt_error_set(err, EINVAL, "invalid mode '%s' (want octal digits such as 644)",
                            mode);
    if (owner && *owner) {
        r = dt_passwd_parse_uid(root, owner, &uid);
        if (r == -ENOENT)
            return dt_error_set(err, EINVAL, "no such user '%s'", owner);
        if (r < 0)
            return dt_error_errno(err, r == -EINVAL ? EINVAL : r, "invalid owner '%s'", owner);
    }
    if (group && *group) {
        r = dt_group_parse_gid(root, group, &gid);
        if (r == -ENOENT)
            return dt_error_set(err, EINVAL, "no such group '%s'", group);
        if (r < 0)
            return dt_error_errno(err, r == -EINVAL ? EINVAL : r, "invalid group '%s'", group);
    }
    if (stat(p, &st) < 0)
        return fail(err, errno, "stat", p);
    /* chown first: it clears setuid/setgid, which a mode given in the same call must win. */
    if ((uid != (uid_t) -1 || gid != (gid_t) -1) && chown(p, uid, gid) < 0)
        return fail(err, errno, "change owner of", p);
    if (set_mode && chmod(p, m) < 0)
        return fail(err, errno, "change mode of", p);
    return 0;
}

/* ---- find ----------------------------------------------------------------------------- */

struct find_state {
    const char *pattern;
    size_t plen;
    json_t *arr;
    char *buf;
    size_t cap;
    size_t count;
    bool truncated;
};

/* Grep the regular file FD (size SIZE) whose path is PATH. Returns false to stop the walk. */
static bool
find_in_fd(struct find_state *s, int fd, off_t size, const char *path)
{
    if (size > (off_t) DT_FS_FIND_MAX_FILE)
        return true;
    size_t want = (size_t) size + 1; /* +1 notices a file that grew */
    if (want > s->cap) {
        s->cap = want;
        s->buf = xrealloc(s->buf, s->cap);
    }
    ssize_t n = read_full(fd, s->buf, want);
    if (n < 0 || (size_t) n > DT_FS_FIND_MAX_FILE)
        return true;
    size_t len = (size_t) n;
    if (memchr(s->buf, 0, len < 512 ? len : 512))
        return true; /* binary, like Daytona's first-512-bytes check */

    /* One memmem over the whole file and newline counting between matches: linear, however
     * many lines. A pattern with a newline can never match one line. */
    const char *b = s->buf, *end = b + len;
    const char *counted = b;
    size_t line = 1;
    const char *pos = b;
    while (pos < end) {
        const char *m = memmem(pos, (size_t) (end - pos), s->pattern, s->plen);
        if (!m)
            break;
        for (const char *q; (q = memchr(counted, '\n', (size_t) (m - counted)));) {
            line++;
            counted = q + 1;
        }
        const char *ls = counted;
        const char *le = memchr(m, '\n', (size_t) (end - m));
        if (!le)
            le = end;
        size_t ll = (size_t) (le - ls);
        if (ll > 0 && ls[ll - 1] == '\r') /* Go's ScanLines drops a CR before LF */
            ll--;
        if (ll > DT_FS_FIND_MAX_LINE)
            ll = DT_FS_FIND_MAX_LINE;
        /* The match may sit in the dropped CR ("x\r" patterns): count it as a line anyway. */
        if (s->count >= DT_FS_FIND_MAX_RESULTS) {
            s->truncated = true;
            return false;
        }
        json_t *o = json_object();
        json_object_set_new(o, "file", jstrz(path));
        json_object_set_new(o, "line", json_integer((json_int_t) line));
        json_object_set_new(o, "content", jstr(ls, ll));
        json_array_append_new(s->arr, o);
        s->count++;
        if (le == end)
            break;
        pos = le + 1;
        counted = pos;
        line++;
    }
    return true;
}

static int
find_visit(struct walker *w, int dfd, const char *name, const struct stat *lst, unsigned depth)
{
    struct find_state *s = w->userdata;
    if (!S_ISREG(lst->st_mode) || lst->st_size > (off_t) DT_FS_FIND_MAX_FILE)
        return 0;
    _cleanup_close_ int fd =
            openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    /* Re-check on the fd: the entry may have been swapped for a fifo since the lstat. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (!find_in_fd(s, fd, st.st_size, w->path.s))
        w->truncated = true;
    return 0;
}

int
dt_fs_find(const struct dt_fs_ctx *c, const char *path, const char *pattern, json_t **ret,
           bool *truncated, struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct stat st;
    int r;

    if (!pattern || !*pattern)
        return dt_error_set(err, EINVAL, "pattern is required");
    r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    fd = open(p, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errno, "open", p);
    if (fstat(fd, &st) < 0)
        return fail(err, errno, "stat", p);

    struct find_state s = {.pattern = pattern, .plen = strlen(pattern), .arr = json_array()};
    if (S_ISREG(st.st_mode)) {
        (void) find_in_fd(&s, fd, st.st_size, p);
    } else if (S_ISDIR(st.st_mode)) {
        struct walker w = {.max_depth = DT_FS_WALK_MAX_DEPTH,
                           .max_visited = DT_FS_WALK_MAX_ENTRIES,
                           .fn = find_visit,
                           .userdata = &s};
        pbuf_set(&w.path, p);
        r = walk_dir(&w, fd, 1);
        free(w.path.s);
        if (w.truncated)
            s.truncated = true;
        if (r < 0) {
            free(s.buf);
            json_decref(s.arr);
            return fail(err, r, "search in", p);
        }
    }
    free(s.buf);
    if (truncated)
        *truncated = s.truncated;
    *ret = s.arr;
    return 0;
}

/* ---- search --------------------------------------------------------------------------- */

/* Expand the first top-level {a,b,...} group of PAT (recursively) into *alts. Returns 0 or
 * -E2BIG when more than SEARCH_MAX_ALTS alternatives result. A "{" without a matching "}"
 * is literal, as is anything after a backslash. */
static int
expand_braces(const char *pat, char ***alts, size_t *n)
{
    const char *open = NULL, *close = NULL;
    int level = 0;
    for (const char *q = pat; *q; q++) {
        if (*q == '\\' && q[1]) {
            q++;
            continue;
        }
        if (*q == '{') {
            if (level++ == 0)
                open = q;
        } else if (*q == '}' && level > 0) {
            if (--level == 0) {
                close = q;
                break;
            }
        }
    }
    if (!open || !close) {
        if (*n >= SEARCH_MAX_ALTS)
            return -E2BIG;
        strv_push(alts, pat);
        (*n)++;
        return 0;
    }
    size_t prefix = (size_t) (open - pat);
    const char *suffix = close + 1;
    const char *start = open + 1;
    level = 0;
    for (const char *q = start;; q++) {
        if (*q == '\\' && q[1] && q < close) {
            q++;
            continue;
        }
        if (*q == '{')
            level++;
        else if (*q == '}' && q != close)
            level--;
        if (q == close || (*q == ',' && level == 0)) {
            _cleanup_free_ char *one = xasprintf("%.*s%.*s%s", (int) prefix, pat,
                                                 (int) (q - start), start, suffix);
            int r = expand_braces(one, alts, n);
            if (r < 0)
                return r;
            if (q == close)
                break;
            start = q + 1;
        }
    }
    return 0;
}

struct search_state {
    char **alts;
    bool by_name;          /* match the entry name, not the relative path */
    char ***alt_segs;      /* path mode: each alternative split on "/" */
    size_t *alt_nsegs;
    size_t nalts;
    unsigned char *dp;     /* scratch for seg_match */
    size_t dp_cap;
    json_t *files;
    size_t count;
};

/* Does the segment list PAT[0..NP) match PATH[0..NN)? "**" matches zero or more segments, other
 * segments match one with fnmatch(). Dynamic programming, O(NP*NN), so patterns full of "**"
 * cannot explode. */
static bool
seg_match(struct search_state *s, char **pat, size_t np, char **path, size_t nn)
{
    size_t w = nn + 1, need = (np + 1) * w;
    if (need > s->dp_cap) {
        s->dp_cap = need;
        s->dp = xrealloc(s->dp, need);
    }
    unsigned char *dp = s->dp;
    /* dp[i*w + j]: PAT[i..] matches PATH[j..]. */
    for (size_t j = 0; j <= nn; j++)
        dp[np * w + j] = j == nn;
    for (size_t i = np; i-- > 0;) {
        bool globstar = strcmp(pat[i], "**") == 0;
        for (size_t j = nn + 1; j-- > 0;) {
            bool v;
            if (globstar)
                v = dp[(i + 1) * w + j] || (j < nn && dp[i * w + j + 1]);
            else
                v = j < nn && dp[(i + 1) * w + j + 1] && fnmatch(pat[i], path[j], 0) == 0;
            dp[i * w + j] = v;
        }
    }
    return dp[0];
}

static char **
split_segments(const char *s, size_t *ret_n)
{
    char **v = NULL;
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        if (e > p && !(e - p == 1 && p[0] == '.')) {
            _cleanup_free_ char *seg = xstrndup(p, (size_t) (e - p));
            strv_push(&v, seg);
            n++;
        }
        p = e;
    }
    *ret_n = n;
    return v;
}

static int
search_visit(struct walker *w, int dfd, const char *name, const struct stat *lst, unsigned depth)
{
    struct search_state *s = w->userdata;
    bool hit = false;
    if (s->by_name) {
        for (size_t i = 0; i < s->nalts && !hit; i++)
            hit = fnmatch(s->alts[i], name, 0) == 0;
    } else {
        const char *rel = w->path.s + w->root_len;
        while (*rel == '/')
            rel++;
        size_t nn;
        char **segs = split_segments(rel, &nn);
        for (size_t i = 0; i < s->nalts && !hit; i++)
            hit = seg_match(s, s->alt_segs[i], s->alt_nsegs[i], segs, nn);
        strv_free(segs);
    }
    if (!hit)
        return 0;
    if (s->count >= DT_FS_SEARCH_MAX_RESULTS) {
        w->truncated = true;
        return 0;
    }
    json_array_append_new(s->files, jstrz(w->path.s));
    s->count++;
    return 0;
}

int
dt_fs_search(const struct dt_fs_ctx *c, const char *path, const char *pattern, json_t **ret,
             bool *truncated, struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int fd = -EBADF;
    int r;

    if (!pattern || !*pattern)
        return dt_error_set(err, EINVAL, "pattern is required");
    if (strlen(pattern) > SEARCH_MAX_PATTERN)
        return dt_error_set(err, EINVAL, "pattern longer than %d bytes", SEARCH_MAX_PATTERN);
    r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? dt_error_set(err, ENOTDIR, "not a directory: %s", p)
                                : fail(err, errno, "open directory", p);

    struct search_state s = {.files = json_array()};
    r = expand_braces(pattern, &s.alts, &s.nalts);
    if (r < 0) {
        strv_free(s.alts);
        json_decref(s.files);
        return dt_error_set(err, EINVAL, "pattern '%s' expands to more than %d alternatives",
                            pattern, SEARCH_MAX_ALTS);
    }
    s.by_name = true;
    for (size_t i = 0; i < s.nalts; i++)
        if (strchr(s.alts[i], '/') || strstr(s.alts[i], "**"))
            s.by_name = false;
    if (!s.by_name) {
        s.alt_segs = xcalloc(s.nalts, sizeof(char **));
        s.alt_nsegs = xcalloc(s.nalts, sizeof(size_t));
        for (size_t i = 0; i < s.nalts; i++)
            s.alt_segs[i] = split_segments(s.alts[i], &s.alt_nsegs[i]);
    }

    struct walker w = {.max_depth = DT_FS_WALK_MAX_DEPTH,
                       .max_visited = DT_FS_WALK_MAX_ENTRIES,
                       .fn = search_visit,
                       .userdata = &s};
    pbuf_set(&w.path, p);
    w.root_len = w.path.len;
    r = walk_dir(&w, fd, 1);
    free(w.path.s);

    for (size_t i = 0; s.alt_segs && i < s.nalts; i++)
        strv_free(s.alt_segs[i]);
    free(s.alt_segs);
    free(s.alt_nsegs);
    strv_free(s.alts);
    free(s.dp);
    if (r < 0) {
        json_decref(s.files);
        return fail(err, r, "search in", p);
    }
    if (truncated)
        *truncated = w.truncated;
    json_t *o = json_object();
    json_object_set_new(o, "files", s.files);
    *ret = o;
    return 0;
}

/* ---- upload --------------------------------------------------------------------------- */

static void
upload_release(struct dt_fs_upload *u)
{
    u->fd = safe_close(u->fd);
    u->dirfd = safe_close(u->dirfd);
    free(u->path);
    free(u->name);
    free(u->tmpname);
    u->path = u->name = u->tmpname = NULL;
}

void
dt_fs_create_abort(struct dt_fs_upload *u)
{
    if (!u)
        return;
    if (u->tmpname && u->dirfd >= 0)
        (void) unlinkat(u->dirfd, u->tmpname, 0);
    upload_release(u);
}

int
dt_fs_create_begin(const struct dt_fs_ctx *c, const char *path, struct dt_fs_upload *u,
                   struct dt_error **err)
{
    _cleanup_free_ char *p = NULL, *parent = NULL;
    const char *name;
    struct stat st;
    int r;

    *u = (struct dt_fs_upload){.fd = -EBADF, .dirfd = -EBADF};
    r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    /* Write through a symlink like a plain open(O_TRUNC) would: replace its final target. */
    if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(p, NULL);
        if (real) {
            free(p);
            p = real;
        }
    }
    parent = split_parent(p, &name);
    if (!*name)
        return dt_error_set(err, EISDIR, "is a directory: %s", p);
    if (is_dot_or_dotdot(name))
        return dt_error_set(err, EINVAL, "invalid file name: %s", p);

    int dfd = mkdir_p_fd(c, parent, 0755, true, err);
    if (dfd < 0)
        return dfd;
    u->dirfd = dfd;

    uid_t uid = c->uid;
    gid_t gid = c->gid;
    mode_t mode = 0644;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode)) {
            upload_release(u);
            return dt_error_set(err, EISDIR, "is a directory: %s", p);
        }
        uid = st.st_uid;
        gid = st.st_gid;
        mode = st.st_mode & 07777;
    } else if (errno != ENOENT) {
        r = fail(err, errno, "stat", p);
        upload_release(u);
        return r;
    }

    for (int attempt = 0; attempt < 16 && u->fd < 0; attempt++) {
        uint64_t rnd;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
            rnd = (uint64_t) getpid() * 1000003u + (uint64_t) attempt;
        free(u->tmpname);
        u->tmpname = xasprintf(".dt-upload-%016llx", (unsigned long long) rnd);
        u->fd = openat(dfd, u->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (u->fd < 0 && errno != EEXIST)
            break;
    }
    if (u->fd < 0) {
        r = fail(err, errno, "create temporary file for", p);
        free(u->tmpname);
        u->tmpname = NULL;
        upload_release(u);
        return r;
    }
    /* chown before chmod: chown clears setuid/setgid bits the old file may have had. */
    if ((uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(u->fd, uid, gid) < 0) {
        r = fail(err, errno, "set owner of", p);
        dt_fs_create_abort(u);
        return r;
    }
    if (fchmod(u->fd, mode) < 0) {
        r = fail(err, errno, "set mode of", p);
        dt_fs_create_abort(u);
        return r;
    }
    u->name = xstrdup(name);
    u->path = TAKE_PTR(p);
    return 0;
}

int
dt_fs_create_commit(struct dt_fs_upload *u, struct dt_error **err)
{
    int r = 0;
    DT_ASSERT(u->tmpname && u->name);
    /* close() can report a delayed write error (NFS, quota): check it before the rename. */
    int fd = u->fd;
    u->fd = -EBADF;
    if (close(fd) < 0 && errno != EINTR)
        r = fail(err, errno, "write", u->path);
    else if (renameat(u->dirfd, u->tmpname, u->dirfd, u->name) < 0)
        r = errno == EISDIR ? dt_error_set(err, EISDIR, "is a directory: %s", u->path)
                            : fail(err, errno, "replace", u->path);
    if (r < 0) {
        dt_fs_create_abort(u);
        return r;
    }
    upload_release(u);
    return 0;
}

/* ---- replace -------------------------------------------------------------------------- */

/* Replace in one file; returns 0 or -errno with *err. */
static int
replace_one(const struct dt_fs_ctx *c, const char *file, const char *pat, const char *val,
            struct dt_error **err)
{
    _cleanup_free_ char *p = NULL, *data = NULL, *out = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct stat st;
    size_t len, plen = strlen(pat), vlen = strlen(val);
    int r;

    r = dt_fs_resolve(c, file, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    fd = open(p, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errno, "open", p);
    if (fstat(fd, &st) < 0)
        return fail(err, errno, "stat", p);
    if (S_ISDIR(st.st_mode))
        return dt_error_set(err, EISDIR, "is a directory: %s", p);
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL, "not a regular file: %s", p);
    r = read_fd_all(fd, DT_FS_REPLACE_MAX_FILE, &data, &len);
    if (r == -EFBIG)
        return dt_error_set(err, EFBIG, "file larger than %u bytes: %s", DT_FS_REPLACE_MAX_FILE,
                            p);
    if (r < 0)
        return fail(err, r, "read", p);

    size_t count = 0;
    for (const char *q = data; (q = memmem(q, len - (size_t) (q - data), pat, plen)); q += plen)
        count++;
    if (count == 0)
        return 0;
    if (vlen > plen && (vlen - plen) > (SIZE_MAX - len) / count)
        return dt_error_set(err, EFBIG, "result too large: %s", p);
    size_t olen = len - count * plen + count * vlen;
    out = xmalloc(olen + 1);
    size_t o = 0;
    const char *q = data, *end = data + len;
    for (const char *m; (m = memmem(q, (size_t) (end - q), pat, plen)); q = m + plen) {
        memcpy(out + o, q, (size_t) (m - q));
        o += (size_t) (m - q);
        memcpy(out + o, val, vlen);
        o += vlen;
    }
    memcpy(out + o, q, (size_t) (end - q));
    o += (size_t) (end - q);

    struct dt_fs_upload u;
    r = dt_fs_create_begin(c, p, &u, err);
    if (r < 0)
        return r;
    r = write_all(u.fd, out, o);
    if (r < 0) {
        dt_fs_create_abort(&u);
        return fail(err, r, "write", p);
    }
    return dt_fs_create_commit(&u, err);
}

int
dt_fs_replace(const struct dt_fs_ctx *c, const json_t *body, json_t **ret,
              struct dt_error **err)
{
    json_t *files = json_object_get(body, "files");
    json_t *pattern = json_object_get(body, "pattern");
    json_t *nv = json_object_get(body, "newValue");
    size_t i;
    json_t *f;

    if (!json_is_object(body))
        return dt_error_set(err, EINVAL, "request body must be a JSON object");
    if (!json_is_array(files))
        return dt_error_set(err, EINVAL, "'files' must be an array of paths");
    if (json_array_size(files) > DT_FS_REPLACE_MAX_FILES)
        return dt_error_set(err, EINVAL, "more than %u files", DT_FS_REPLACE_MAX_FILES);
    json_array_foreach(files, i, f) {
        if (!json_is_string(f))
            return dt_error_set(err, EINVAL, "'files[%zu]' must be a string", i);
    }
    if (!json_is_string(pattern) || json_string_length(pattern) == 0)
        return dt_error_set(err, EINVAL, "'pattern' must be a non-empty string");
    if (nv && !json_is_null(nv) && !json_is_string(nv))
        return dt_error_set(err, EINVAL, "'newValue' must be a string");
    const char *pat = json_string_value(pattern);
    const char *val = json_is_string(nv) ? json_string_value(nv) : "";
    if (strlen(pat) != json_string_length(pattern) ||
        (json_is_string(nv) && strlen(val) != json_string_length(nv)))
        return dt_error_set(err, EINVAL, "'pattern' and 'newValue' must not contain NUL");

    json_t *arr = json_array();
    json_array_foreach(files, i, f) {
        _cleanup_error_ struct dt_error *e = NULL;
        const char *file = json_string_value(f);
        int r = replace_one(c, file, pat, val, &e);
        json_t *o = json_object();
        json_object_set_new(o, "file", jstr(file, json_string_length(f)));
        json_object_set_new(o, "success", json_boolean(r >= 0));
        if (r < 0)
            json_object_set_new(o, "error",
                                jstrz(e && e->message ? e->message : "replace failed"));
        json_array_append_new(arr, o);
    }
    *ret = arr;
    return 0;
}

/* ---- download ------------------------------------------------------------------------- */

int
dt_fs_open_read(const struct dt_fs_ctx *c, const char *path, int *ret_fd, struct stat *ret_st,
                struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct stat st;
    int r = dt_fs_resolve(c, path, (size_t) -1, &p, err);
    if (r < 0)
        return r;
    /* O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer. */
    fd = open(p, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errno, "open", p);
    if (fstat(fd, &st) < 0)
        return fail(err, errno, "stat", p);
    if (S_ISDIR(st.st_mode))
        return dt_error_set(err, EISDIR, "is a directory: %s", p);
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL, "not a regular file: %s", p);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (ret_st)
        *ret_st = st;
    *ret_fd = TAKE_FD(fd);
    return 0;
}
