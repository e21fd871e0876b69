/* SPDX-License-Identifier: Apache-2.0 */
/* The Dockerfile builder: runs a parsed Dockerfile stage by stage. RUN steps execute in our own
 * sandboxes over the image's layers; the sandbox's writable layer becomes the step's layer.
 * COPY/ADD and WORKDIR write small layers directly. Every layer-producing step is cached by a
 * key chained from its parent, its instruction and its inputs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "dt/dockerfile.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/image.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define RUN_MEMORY   (4ull << 30)
#define RUN_PIDS     4096
#define MAX_COPY_DEPTH 256

struct build {
    struct dt_imgstore *s;
    const struct dt_build_opts *o;
    const struct dt_dockerfile *df;
    struct dt_image cur;     /* the stage's image so far */
    char key[65];            /* cache key of CUR */
    char **args;             /* "K=V": ARGs in scope */
    char **shell;            /* SHELL, default /bin/sh -c */
    struct dt_image *stages; /* finished stages */
    char (*stage_keys)[65];
    size_t n_stages;
    unsigned step, n_steps;
};

/* ---- small helpers ---- */


static void
hex(const unsigned char *md, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* KEY = sha256(PARENT \0 PARTS...) */
static void
chain_key(char out[65], const char *parent, char *const *parts)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];

    if (!ctx)
        abort();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, parent, strlen(parent) + 1);
    for (size_t i = 0; parts && parts[i]; i++)
        EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    hex(md, 32, out);
}

static void
key_of_image(const struct dt_image *img, char out[65])
{
    _cleanup_free_ char *j = dt_image_to_json(img);
    char *parts[] = { j, NULL };
    chain_key(out, "image", parts);
}

static void
strv_set_kv(char ***v, const char *k, const char *val)
{
    size_t kl = strlen(k);
    for (size_t i = 0; *v && (*v)[i]; i++)
        if (strncmp((*v)[i], k, kl) == 0 && (*v)[i][kl] == '=') {
            free((*v)[i]);
            (*v)[i] = xasprintf("%s=%s", k, val);
            return;
        }
    char *e = xasprintf("%s=%s", k, val);
    strv_push(v, e);
    free(e);
}

static const char *
strv_get_kv(char *const *v, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = 0; v && v[i]; i++)
        if (strncmp(v[i], k, kl) == 0 && v[i][kl] == '=')
            return v[i] + kl + 1;
    return NULL;
}

/* Expansion: ENV wins over ARG of the same name (Docker's rule). */
static const char *
lookup(const char *name, void *ud)
{
    struct build *b = ud;
    const char *v = strv_get_kv(b->cur.env, name);
    return v ? v : strv_get_kv(b->args, name);
}

static int
expand(struct build *b, const struct dt_dockerfile_instr *in, const char *word, char **ret,
       struct dt_error **err)
{
    int r = dt_dockerfile_expand(word, b->df->escape, lookup, b, ret, err);
    if (r < 0)
        return dt_error_wrap(err, "Dockerfile line %u", in->line);
    return 0;
}

static const char *
flag(const struct dt_dockerfile_instr *in, const char *name)
{
    for (size_t i = 0; i < in->n_flags; i++)
        if (strcmp(in->flags[i].name, name) == 0)
            return in->flags[i].value ? in->flags[i].value : "";
    return NULL;
}

/* An absolute, normalised path inside the image from P (relative to the workdir). Refuses
 * nothing: ".." cannot climb above "/". */
static char *
image_path(const char *workdir, const char *p)
{
    _cleanup_free_ char *joined = p[0] == '/' ? xstrdup(p)
                                              : xasprintf("%s/%s", workdir ? workdir : "/", p);
    char *out = xmalloc(strlen(joined) + 2);
    size_t n = 0;

    for (char *save = NULL, *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        out[n++] = '/';
        memcpy(out + n, c, strlen(c));
        n += strlen(c);
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return out;
}

/* ---- the merged view of the layers (read-only lookups) ---- */

/* The topmost layer entry at PATH (absolute) of IMG: 0 with *ST, -ENOENT when absent or
 * whited out. Parents are not checked for opaque dirs or symlinks: good enough to decide
 * whether a directory must be created and to copy its metadata. */
static int
merged_lstat(struct build *b, const char *path, struct stat *st)
{
    size_t n = strv_length(b->cur.layers);
    for (size_t i = n; i-- > 0;) {
        _cleanup_free_ char *l = dt_imgstore_layer_path(b->s, b->cur.layers[i]);
        _cleanup_free_ char *full = xasprintf("%s%s", l, path);
        if (lstat(full, st) == 0) {
            if (S_ISCHR(st->st_mode) && st->st_rdev == 0)
                return -ENOENT;
            return 0;
        }
    }
    return -ENOENT;
}

/* Create the directories of PATH (absolute) in the new layer LFD, each with the metadata of the
 * merged view's directory when there is one (else root 0755), so the layer does not change
 * what lower layers say about them. */
static int
mkdirs_in_layer(struct build *b, int lfd, const char *path, struct dt_error **err)
{
    _cleanup_free_ char *p = xstrdup(path);
    char *slash = p;

    while ((slash = strchr(slash + 1, '/')) || *p) {
        if (slash)
            *slash = '\0';
        struct stat st;
        const char *rel = p + 1;
        if (*rel) {
            bool known = merged_lstat(b, p, &st) == 0 && S_ISDIR(st.st_mode);
            if (mkdirat(lfd, rel, known ? st.st_mode & 07777 : 0755) < 0 && errno != EEXIST)
                return dt_error_errno(err, errno, "create directory %s", p);
            if (known) {
                (void) fchownat(lfd, rel, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
                (void) fchmodat(lfd, rel, st.st_mode & 07777, 0);
            }
        }
        if (!slash)
            break;
        *slash = '/';
    }
    return 0;
}

/* ---- layers ---- */

/* Add the layer KEY (already in the store, or the empty "no change") to CUR. */
static void
push_layer(struct build *b, const char *layer)
{
    if (layer && *layer) {
        uint64_t sz = 0;
        strv_push(&b->cur.layers, layer);
        if (dt_imgstore_layer_size(b->s, layer, &sz) >= 0)
            b->cur.size_bytes += sz;
    }
}

/* A cached step: its layer id ("" for a step that changed nothing). */
static bool
cache_hit(struct build *b, const char *key)
{
    _cleanup_free_ char *v = NULL;

    if (b->o->no_cache || dt_imgstore_cache_get(b->s, key, &v) < 0)
        return false;
    v[strcspn(v, "\n")] = '\0';
    if (*v && !dt_imgstore_has_layer(b->s, v))
        return false;
    fd_printf(b->o->log_fd, " ---> Using cache\n");
    push_layer(b, v);
    return true;
}

/* Whether directory DFD holds nothing. */
static bool
dir_is_empty(int dfd)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* not dup: a shared offset */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    bool empty = true;

    if (!d) {
        safe_close(fd);
        return false;
    }
    while (empty && (de = readdir(d)))
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Commit TMP (from dt_imgstore_layer_begin; the string is ours to free) as the step KEY's layer,
 * or drop it when empty. */
static int
finish_layer(struct build *b, const char *key, char *tmp_owned, int lfd, struct dt_error **err)
{
    _cleanup_free_ char *tmp = tmp_owned;
    int r;

    if (dir_is_empty(lfd)) {
        dt_imgstore_layer_abort(b->s, tmp);
        r = dt_imgstore_cache_put(b->s, key, "", err);
        return r;
    }
    r = dt_imgstore_layer_commit(b->s, tmp, key, err);
    if (r >= 0)
        r = dt_imgstore_cache_put(b->s, key, key, err);
    if (r >= 0)
        push_layer(b, key);
    return r;
}

/* ---- RUN ---- */

static int
run_in_sandbox(struct build *b, char **argv, struct dt_sandbox **ret_sb, uint32_t *ret_slot,
               int *ret_lockfd, struct dt_error **err)
{
    struct dt_plan plan;
    struct dt_sandbox *sb = NULL;
    struct dt_exit ex = {0};
    char id[32];
    int lockfd = -EBADF, r;

    dt_plan_init(&plan);
    r = dt_imgstore_image_layers(b->s, &b->cur, &plan.layers, err);
    if (r < 0) {
        dt_plan_done(&plan);
        return r;
    }
    snprintf(id, sizeof(id), "build-%08x%04x", (unsigned) getpid(), (unsigned) (random() & 0xffff));
    plan.id = xstrdup(id);
    plan.memory_bytes = RUN_MEMORY;
    plan.pids_max = RUN_PIDS;
    plan.hostname = xstrdup("buildsandbox");
    plan.net_mode = DT_NET_BRIDGE;
    for (char **a = argv; *a; a++)
        strv_push(&plan.args, *a);
    /* ARGs are in RUN's environment, under ENV of the same name. */
    for (char **e = b->args; e && *e; e++) {
        _cleanup_free_ char *name = xstrndup(*e, strcspn(*e, "="));
        if (!strv_get_kv(b->cur.env, name))
            strv_push(&plan.env, *e);
    }
    for (char **e = b->cur.env; e && *e; e++)
        strv_push(&plan.env, *e);
    if (!plan.env)
        plan.env = xcalloc(1, sizeof(char *));
    plan.cwd = xstrdup(b->cur.working_dir && *b->cur.working_dir ? b->cur.working_dir : "/");
    if (b->cur.user && *b->cur.user)
        plan.user = xstrdup(b->cur.user);
    r = dt_runtime_acquire_slot(b->o->rt, &plan.slot, &lockfd, err);
    if (r >= 0)
        r = dt_plan_validate(&plan, err);
    if (r >= 0)
        r = dt_sandbox_create(b->o->rt, &plan, &sb, err);
    dt_plan_done(&plan);
    if (r < 0) {
        safe_close(lockfd);
        return r;
    }
    int stdio[3] = { -1, b->o->log_fd, b->o->log_fd };
    r = dt_sandbox_start(sb, stdio, err);
    if (r >= 0)
        r = dt_sandbox_wait(sb, false, &ex, err);
    if (r >= 0) {
        (void) dt_sandbox_stop(sb, 0, NULL);
        int st = dt_exit_status(&ex);
        if (st != 0)
            r = dt_error_set(err, ECHILD, "the command returned a non-zero code: %d%s", st,
                             ex.oom_killed ? " (killed: out of memory)" : "");
    }
    *ret_sb = sb;
    *ret_lockfd = lockfd;
    return r;
}

static int
do_run(struct build *b, const struct dt_dockerfile_instr *in, struct dt_error **err)
{
    _cleanup_strv_free_ char **argv = NULL, **parts = NULL;
    struct dt_sandbox *sb = NULL;
    char key[65];
    uint32_t slot = 0;
    int lockfd = -EBADF, r;

    if (flag(in, "mount"))
        return dt_error_set(err, ENOTSUP, "Dockerfile line %u: RUN --mount is not supported",
                            in->line);
    if (!b->cur.layers || !b->cur.layers[0])
        return dt_error_set(err, EINVAL, "Dockerfile line %u: RUN needs a base image with a "
                            "shell (FROM scratch has none)", in->line);
    if (in->json) {
        for (char **a = in->argv; *a; a++)
            strv_push(&argv, *a);
    } else {
        const char *script = in->argv[0] ? in->argv[0] : "";
        for (char **a = b->shell; *a; a++)
            strv_push(&argv, *a);
        /* RUN <<EOF: the heredoc is the script. */
        if (in->n_heredocs > 0 && strncmp(script, "<<", 2) == 0)
            script = in->heredocs[0].content;
        strv_push(&argv, script);
    }
    if (!argv || !argv[0])
        return dt_error_set(err, EINVAL, "Dockerfile line %u: RUN needs a command", in->line);
    strv_push(&parts, "RUN");
    for (char **a = argv; *a; a++)
        strv_push(&parts, *a);
    for (char **e = b->args; e && *e; e++)
        strv_push(&parts, *e);
    _cleanup_free_ char *cfg = dt_image_to_json(&b->cur);
    strv_push(&parts, cfg);
    chain_key(key, b->key, parts);
    memcpy(b->key, key, sizeof(key));
    if (cache_hit(b, key))
        return 0;

    r = run_in_sandbox(b, argv, &sb, &slot, &lockfd, err);
    if (r >= 0) {
        _cleanup_free_ char *tmp = NULL;
        int lfd = -EBADF;
        uid_t base = 0;
        r = dt_imgstore_layer_begin(b->s, &tmp, &lfd, err);
        if (r >= 0) {
            safe_close(lfd);
            (void) rmdir(tmp);
            r = dt_sandbox_take_upper(sb, tmp, &base, err);
            if (r >= 0) {
                lfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                r = lfd < 0 ? dt_error_errno(err, errno, "open '%s'", tmp) : 0;
            }
            if (r >= 0)
                r = dt_layer_from_upper(lfd, base, err);
            if (r >= 0)
                r = finish_layer(b, key, TAKE_PTR(tmp), lfd, err);
            else
                dt_imgstore_layer_abort(b->s, tmp);
            safe_close(lfd);
        }
    }
    if (sb) {
        (void) dt_sandbox_destroy(sb, NULL);
        dt_sandbox_free(sb);
    }
    safe_close(lockfd);
    if (r < 0)
        return dt_error_wrap(err, "Dockerfile line %u: RUN %s", in->line, in->args);
    return 0;
}

/* ---- COPY / ADD / WORKDIR ---- */

/* Numeric owner from a --chown value ("uid[:gid]", names resolved in the image's passwd and
 * group files). */
static int
lookup_id(struct build *b, const char *file, const char *name, uint32_t *ret)
{
    if (parse_u32(name, ret) >= 0)
        return 0;
    size_t n = strv_length(b->cur.layers), len = strlen(name);
    for (size_t i = n; i-- > 0;) {
        _cleanup_free_ char *l = dt_imgstore_layer_path(b->s, b->cur.layers[i]);
        _cleanup_free_ char *path = xasprintf("%s/etc/%s", l, file), *text = NULL;
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (!S_ISREG(st.st_mode) || read_file_at(AT_FDCWD, path, 4u << 20, &text, NULL) < 0)
            break;
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (strncmp(line, name, len) == 0 && line[len] == ':') {
                const char *f = strchr(line + len + 1, ':');
                char num[16] = "";
                if (f)
                    {
                    size_t nl = strcspn(f + 1, ":\n");
                    memcpy(num, f + 1, nl < sizeof(num) - 1 ? nl : sizeof(num) - 1);
                }
                return parse_u32(num, ret);
            }
        }
        break;
    }
    return -ENOENT;
}

static int
parse_chown(struct build *b, const char *spec, uint32_t *uid, uint32_t *gid, struct dt_error **err)
{
    _cleanup_free_ char *u = xstrndup(spec, strcspn(spec, ":"));
    const char *g = strchr(spec, ':');

    if (lookup_id(b, "passwd", u, uid) < 0)
        return dt_error_set(err, EINVAL, "unknown user '%s' in --chown", u);
    if (!g)
        *gid = *uid;
    else if (lookup_id(b, "group", g + 1, gid) < 0)
        return dt_error_set(err, EINVAL, "unknown group '%s' in --chown", g + 1);
    if (*uid >= DT_UID_RANGE || *gid >= DT_UID_RANGE)
        return dt_error_set(err, EINVAL, "--chown ids must be below %u", DT_UID_RANGE);
    return 0;
}

struct copy_ctx {
    struct build *b;
    int lfd;              /* the new layer */
    bool chown;
    uint32_t uid, gid;
    mode_t chmod;         /* 0: keep */
    EVP_MD_CTX *hash;     /* the inputs, for the cache key (first pass) */
    bool dry;             /* hash only */
};

static int
strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
hash_str(EVP_MD_CTX *h, const char *s)
{
    EVP_DigestUpdate(h, s, strlen(s) + 1);
}

/* Copy (or hash) SRCFD/NAME to the layer at DST (relative path in the layer). */
static int
copy_entry(struct copy_ctx *c, int srcdir, const char *name, const char *dst, unsigned depth,
           struct dt_error **err)
{
    struct stat st;
    int r = 0;

    if (depth > MAX_COPY_DEPTH)
        return dt_error_set(err, ELOOP, "COPY: directories nested too deep");
    if (fstatat(srcdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return dt_error_errno(err, errno, "COPY: %s", name);
    mode_t mode = c->chmod ? c->chmod : st.st_mode & 07777;
    if (c->dry) {
        char meta[64];
        snprintf(meta, sizeof(meta), "%o", (unsigned) st.st_mode);
        hash_str(c->hash, dst);
        hash_str(c->hash, meta);
    }
    if (S_ISDIR(st.st_mode)) {
        _cleanup_close_ int d = openat(srcdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0)
            return dt_error_errno(err, errno, "COPY: open %s", name);
        if (!c->dry && *dst && mkdirat(c->lfd, dst, mode) < 0 && errno != EEXIST)
            return dt_error_errno(err, errno, "COPY: create %s", dst);
        int d2 = openat(d, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir = d2 >= 0 ? fdopendir(d2) : NULL;
        if (!dir) {
            safe_close(d2);
            return dt_error_errno(err, errno, "COPY: read %s", name);
        }
        struct dirent *de;
        char **names = NULL;
        while ((de = readdir(dir)))
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                strv_push(&names, de->d_name);
        closedir(dir);
        /* Sorted, so the cache key does not depend on readdir order. */
        size_t n = strv_length(names);
        qsort(names, n, sizeof(char *), strcmp_ptr);
        for (size_t i = 0; r >= 0 && i < n; i++) {
            _cleanup_free_ char *sub = *dst ? xasprintf("%s/%s", dst, names[i]) : xstrdup(names[i]);
            r = copy_entry(c, d, names[i], sub, depth + 1, err);
        }
        strv_free(names);
    } else if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int in = openat(srcdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int out = -EBADF;
        char buf[65536];
        ssize_t k;
        if (in < 0)
            return dt_error_errno(err, errno, "COPY: open %s", name);
        if (!c->dry) {
            (void) unlinkat(c->lfd, dst, 0);
            out = openat(c->lfd, dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (out < 0)
                return dt_error_errno(err, errno, "COPY: create %s", dst);
        }
        while ((k = read(in, buf, sizeof(buf))) > 0) {
            if (c->dry)
                EVP_DigestUpdate(c->hash, buf, (size_t) k);
            else if (write_all(out, buf, (size_t) k) < 0)
                return dt_error_errno(err, errno, "COPY: write %s", dst);
        }
        if (k < 0)
            return dt_error_errno(err, errno, "COPY: read %s", name);
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t k = readlinkat(srcdir, name, target, sizeof(target) - 1);
        if (k < 0)
            return dt_error_errno(err, errno, "COPY: read link %s", name);
        target[k] = '\0';
        if (c->dry)
            hash_str(c->hash, target);
        else if (symlinkat(target, c->lfd, dst) < 0)
            return dt_error_errno(err, errno, "COPY: create link %s", dst);
    } else {
        return 0; /* devices, fifos, sockets in a build context are skipped, as Docker does */
    }
    if (r < 0 || c->dry || !*dst)
        return r;
    uid_t uid = c->chown ? c->uid : 0, gid = c->chown ? c->gid : 0;
    if (fchownat(c->lfd, dst, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return dt_error_errno(err, errno, "COPY: chown %s", dst);
    if (!S_ISLNK(st.st_mode) && fchmodat(c->lfd, dst, mode, 0) < 0)
        return dt_error_errno(err, errno, "COPY: chmod %s", dst);
    struct timespec ts[2] = { st.st_atim, st.st_mtim };
    (void) utimensat(c->lfd, dst, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

static int
do_copy(struct build *b, const struct dt_dockerfile_instr *in, struct dt_error **err)
{
    const char *what = in->kind == DT_DF_ADD ? "ADD" : "COPY";
    _cleanup_strv_free_ char **words = NULL, **srcs = NULL;
    struct copy_ctx c = { .b = b, .lfd = -EBADF };
    _cleanup_free_ char *dest = NULL, *tmp = NULL;
    const char *v;
    char key[65];
    int r = 0;

    if (flag(in, "from"))
        return dt_error_set(err, ENOTSUP, "Dockerfile line %u: %s --from is not supported",
                            in->line, what);
    for (char **a = in->argv; *a; a++) {
        char *x = NULL;
        r = expand(b, in, *a, &x, err);
        if (r < 0)
            return r;
        strv_push(&words, x);
        free(x);
    }
    size_t n = strv_length(words);
    if (n < 2 && !(n == 1 && in->n_heredocs > 0))
        return dt_error_set(err, EINVAL, "Dockerfile line %u: %s needs a source and a "
                            "destination", in->line, what);
    if ((v = flag(in, "chown"))) {
        _cleanup_free_ char *x = NULL;
        r = expand(b, in, v, &x, err);
        if (r >= 0)
            r = parse_chown(b, x, &c.uid, &c.gid, err);
        if (r < 0)
            return dt_error_wrap(err, "Dockerfile line %u", in->line);
        c.chown = true;
    }
    if ((v = flag(in, "chmod"))) {
        unsigned long m;
        char *end;
        errno = 0;
        m = strtoul(v, &end, 8);
        if (errno || *end || m > 07777)
            return dt_error_set(err, EINVAL, "Dockerfile line %u: invalid --chmod '%s'",
                                in->line, v);
        c.chmod = (mode_t) m;
    }
    const char *raw_dest = words[n - 1];
    bool dest_dir = raw_dest[strlen(raw_dest) - 1] == '/' || n > 2;
    dest = image_path(b->cur.working_dir, raw_dest);

    /* Sources: heredocs, or files of the context (globs allowed). */
    c.hash = EVP_MD_CTX_new();
    if (!c.hash)
        abort();
    EVP_DigestInit_ex(c.hash, EVP_sha256(), NULL);
    hash_str(c.hash, what);
    hash_str(c.hash, dest);
    hash_str(c.hash, v ? v : "");
    {
        char ids[64];
        snprintf(ids, sizeof(ids), "%d:%u:%u", c.chown, c.uid, c.gid);
        hash_str(c.hash, ids);
    }
    for (size_t i = 0; r >= 0 && i + 1 < n; i++) {
        const char *src = words[i];
        if (strncmp(src, "<<", 2) == 0)
            continue;
        if (strstr(src, "://"))
            r = dt_error_set(err, ENOTSUP, "Dockerfile line %u: %s from a URL is not supported",
                             in->line, what);
        else if (!b->o->context_dir)
            r = dt_error_set(err, ENOENT, "Dockerfile line %u: %s %s: the build has no context "
                             "(upload the files with the image)", in->line, what, src);
        else {
            _cleanup_free_ char *rel = image_path("/", src);
            _cleanup_free_ char *pattern = xasprintf("%s%s", b->o->context_dir,
                                                     strcmp(rel, "/") == 0 ? "" : rel);
            glob_t g;
            int gr = glob(pattern, GLOB_NOSORT | GLOB_NOESCAPE, NULL, &g);
            if (gr != 0)
                r = dt_error_set(err, ENOENT, "Dockerfile line %u: %s %s: no such file in the "
                                 "build context", in->line, what, src);
            else {
                qsort(g.gl_pathv, g.gl_pathc, sizeof(char *),
                      strcmp_ptr);
                for (size_t k = 0; k < g.gl_pathc; k++)
                    strv_push(&srcs, g.gl_pathv[k]);
                if (g.gl_pathc > 1)
                    dest_dir = true;
            }
            if (gr == 0)
                globfree(&g);
        }
    }
    /* Hash the inputs (first pass), then look the step up. */
    struct copy_ctx hc = c;
    hc.dry = true;
    for (size_t i = 0; r >= 0 && srcs && srcs[i]; i++) {
        _cleanup_free_ char *dir = xstrdup(srcs[i]);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        _cleanup_close_ int d = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = d < 0 ? dt_error_errno(err, errno, "open '%s'", dir)
                  : copy_entry(&hc, d, slash + 1, "", 0, err);
    }
    for (size_t i = 0; r >= 0 && i < in->n_heredocs; i++) {
        hash_str(c.hash, in->heredocs[i].name);
        hash_str(c.hash, in->heredocs[i].content);
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(c.hash, md, NULL);
    EVP_MD_CTX_free(c.hash);
    c.hash = NULL;
    if (r < 0)
        return r;
    {
        char inputs[65];
        hex(md, 32, inputs);
        char *parts[] = { inputs, NULL };
        chain_key(key, b->key, parts);
        memcpy(b->key, key, sizeof(key));
    }
    if (cache_hit(b, key))
        return 0;

    r = dt_imgstore_layer_begin(b->s, &tmp, &c.lfd, err);
    if (r < 0)
        return r;
    for (size_t i = 0; r >= 0 && srcs && srcs[i]; i++) {
        struct stat st;
        _cleanup_free_ char *dir = xstrdup(srcs[i]);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        const char *base = slash + 1;
        _cleanup_free_ char *target = NULL;
        if (lstat(srcs[i], &st) < 0) {
            r = dt_error_errno(err, errno, "COPY: %s", srcs[i]);
            break;
        }
        /* A directory's contents go into DEST; a file goes to DEST, or into it when DEST is
         * a directory (trailing '/', several sources, or a directory in the image). */
        struct stat dst_st;
        bool into = dest_dir || S_ISDIR(st.st_mode) ||
                    (merged_lstat(b, dest, &dst_st) == 0 && S_ISDIR(dst_st.st_mode));
        if (S_ISDIR(st.st_mode))
            target = xstrdup(dest);
        else
            target = into ? xasprintf("%s/%s", strcmp(dest, "/") == 0 ? "" : dest, base)
                          : xstrdup(dest);
        _cleanup_free_ char *parent = xstrdup(target);
        char *ps = strrchr(parent, '/');
        if (S_ISDIR(st.st_mode))
            r = mkdirs_in_layer(b, c.lfd, target, err);
        else {
            *ps = '\0';
            r = mkdirs_in_layer(b, c.lfd, *parent ? parent : "/", err);
        }
        if (r >= 0) {
            _cleanup_close_ int d = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            r = d < 0 ? dt_error_errno(err, errno, "open '%s'", dir)
                      : copy_entry(&c, d, base, target + 1, 0, err);
        }
    }
    for (size_t i = 0; r >= 0 && i < in->n_heredocs; i++) {
        _cleanup_free_ char *target = dest_dir || n == 1
                                              ? xasprintf("%s/%s", dest, in->heredocs[i].name)
                                              : xstrdup(dest);
        _cleanup_free_ char *parent = xstrdup(target);
        *strrchr(parent, '/') = '\0';
        r = mkdirs_in_layer(b, c.lfd, *parent ? parent : "/", err);
        if (r >= 0)
            r = write_file_at(c.lfd, target + 1, in->heredocs[i].content,
                              strlen(in->heredocs[i].content), c.chmod ? (int) c.chmod : 0644);
        if (r < 0)
            r = dt_error_errno(err, r, "COPY: write %s", target);
        else if (c.chown)
            (void) fchownat(c.lfd, target + 1, c.uid, c.gid, AT_SYMLINK_NOFOLLOW);
    }
    if (r >= 0)
        r = finish_layer(b, key, TAKE_PTR(tmp), c.lfd, err);
    else
        dt_imgstore_layer_abort(b->s, tmp);
    safe_close(c.lfd);
    if (r < 0)
        return dt_error_wrap(err, "Dockerfile line %u", in->line);
    return 0;
}

static int
do_workdir(struct build *b, const struct dt_dockerfile_instr *in, struct dt_error **err)
{
    _cleanup_free_ char *x = NULL, *path = NULL, *tmp = NULL;
    struct stat st;
    char key[65];
    int lfd = -EBADF, r;

    r = expand(b, in, in->argv[0] ? in->argv[0] : "", &x, err);
    if (r < 0)
        return r;
    if (!*x)
        return dt_error_set(err, EINVAL, "Dockerfile line %u: WORKDIR needs a path", in->line);
    path = image_path(b->cur.working_dir, x);
    free(b->cur.working_dir);
    b->cur.working_dir = xstrdup(path);
    if (strcmp(path, "/") == 0 || merged_lstat(b, path, &st) == 0)
        return 0; /* exists (as whatever it is: a RUN will tell) */
    char *parts[] = { (char *) "WORKDIR", path, NULL };
    chain_key(key, b->key, parts);
    memcpy(b->key, key, sizeof(key));
    if (cache_hit(b, key))
        return 0;
    r = dt_imgstore_layer_begin(b->s, &tmp, &lfd, err);
    if (r < 0)
        return r;
    r = mkdirs_in_layer(b, lfd, path, err);
    if (r >= 0)
        r = finish_layer(b, key, TAKE_PTR(tmp), lfd, err);
    else
        dt_imgstore_layer_abort(b->s, tmp);
    safe_close(lfd);
    return r;
}

/* ---- config instructions ---- */

static int
do_env_label_arg(struct build *b, const struct dt_dockerfile_instr *in, struct dt_error **err)
{
    for (size_t i = 0; i < in->n_kv; i++) {
        _cleanup_free_ char *k = NULL, *v = NULL;
        int r = expand(b, in, in->kv[i].key, &k, err);
        if (r >= 0 && in->kv[i].value)
            r = expand(b, in, in->kv[i].value, &v, err);
        if (r < 0)
            return r;
        if (in->kind == DT_DF_ENV)
            strv_set_kv(&b->cur.env, k, v ? v : "");
        else if (in->kind == DT_DF_LABEL)
            strv_set_kv(&b->cur.labels, k, v ? v : "");
        else /* ARG: no build args are passed in: the default, if any */
            strv_set_kv(&b->args, k, v ? v : "");
    }
    return 0;
}

static void
set_strv(char ***dst, char *const *src)
{
    strv_free(*dst);
    *dst = NULL;
    for (size_t i = 0; src && src[i]; i++)
        strv_push(dst, src[i]);
    if (!*dst)
        *dst = xcalloc(1, sizeof(char *));
}

static int
do_cmd(struct build *b, const struct dt_dockerfile_instr *in, char ***dst)
{
    if (in->json) {
        set_strv(dst, in->argv);
        return 0;
    }
    /* Shell form: SHELL + the string. */
    char **v = NULL;
    for (char **a = b->shell; *a; a++)
        strv_push(&v, *a);
    strv_push(&v, in->argv[0] ? in->argv[0] : "");
    strv_free(*dst);
    *dst = v;
    return 0;
}

static int
do_instr(struct build *b, const struct dt_dockerfile_instr *in, struct dt_error **err)
{
    _cleanup_free_ char *x = NULL;
    int r;

    switch (in->kind) {
    case DT_DF_RUN:
        return do_run(b, in, err);
    case DT_DF_COPY:
    case DT_DF_ADD:
        return do_copy(b, in, err);
    case DT_DF_WORKDIR:
        return do_workdir(b, in, err);
    case DT_DF_ENV:
    case DT_DF_LABEL:
    case DT_DF_ARG:
        return do_env_label_arg(b, in, err);
    case DT_DF_USER:
        r = expand(b, in, in->argv[0] ? in->argv[0] : "", &x, err);
        if (r < 0)
            return r;
        free(b->cur.user);
        b->cur.user = TAKE_PTR(x);
        return 0;
    case DT_DF_EXPOSE:
        for (char **a = in->argv; *a; a++) {
            _cleanup_free_ char *p = NULL;
            r = expand(b, in, *a, &p, err);
            if (r < 0)
                return r;
            if (!strchr(p, '/')) {
                char *q = xasprintf("%s/tcp", p);
                free(p);
                p = q;
            }
            bool have = false;
            for (char **e = b->cur.exposed_ports; e && *e && !have; e++)
                have = strcmp(*e, p) == 0;
            if (!have)
                strv_push(&b->cur.exposed_ports, p);
        }
        return 0;
    case DT_DF_ENTRYPOINT:
        do_cmd(b, in, &b->cur.entrypoint);
        /* Docker: a new ENTRYPOINT resets a CMD inherited from the base. */
        return 0;
    case DT_DF_CMD:
        return do_cmd(b, in, &b->cur.cmd);
    case DT_DF_SHELL:
        if (!in->json || !in->argv[0])
            return dt_error_set(err, EINVAL, "Dockerfile line %u: SHELL needs the JSON form",
                                in->line);
        set_strv(&b->shell, in->argv);
        return 0;
    case DT_DF_STOPSIGNAL:
    case DT_DF_HEALTHCHECK:
    case DT_DF_VOLUME:
        return 0; /* recorded by Docker; nothing a sandbox uses */
    case DT_DF_FROM:
    default:
        return dt_error_set(err, EINVAL, "Dockerfile line %u: unexpected instruction", in->line);
    }
}

static int
do_from(struct build *b, const struct dt_dockerfile_stage *st, struct dt_error **err)
{
    _cleanup_free_ char *ref = NULL;
    int r, idx;

    /* FROM sees the global ARGs only. */
    strv_free(b->args);
    b->args = NULL;
    for (size_t i = 0; i < b->df->n_global_args; i++) {
        const struct dt_dockerfile_instr *a = &b->df->global_args[i];
        for (size_t k = 0; k < a->n_kv; k++) {
            _cleanup_free_ char *v = NULL;
            if (a->kv[k].value &&
                dt_dockerfile_expand(a->kv[k].value, b->df->escape, lookup, b, &v, err) < 0)
                return dt_error_wrap(err, "Dockerfile line %u", a->line);
            strv_set_kv(&b->args, a->kv[k].key, v ? v : "");
        }
    }
    dt_image_done(&b->cur);
    r = dt_dockerfile_expand(st->base, b->df->escape, lookup, b, &ref, err);
    if (r < 0)
        return dt_error_wrap(err, "Dockerfile line %u", st->line);
    fd_printf(b->o->log_fd, "Step %u/%u : FROM %s\n", ++b->step, b->n_steps, ref);
    idx = dt_dockerfile_find_stage(b->df, ref, b->n_stages);
    if (idx >= 0) {
        dt_image_copy(&b->cur, &b->stages[idx]);
        memcpy(b->key, b->stage_keys[idx], sizeof(b->key));
    } else if (strcmp(ref, "scratch") == 0) {
        dt_image_init(&b->cur);
        memcpy(b->key, "scratch", 8);
    } else {
        r = b->o->resolve_base(ref, &b->cur, b->o->userdata, err);
        if (r < 0)
            return dt_error_wrap(err, "Dockerfile line %u: FROM %s", st->line, ref);
        key_of_image(&b->cur, b->key);
    }
    /* ARGs declared before FROM are visible in the stage only when re-declared. */
    strv_free(b->args);
    b->args = NULL;
    strv_free(b->shell);
    b->shell = NULL;
    strv_push(&b->shell, "/bin/sh");
    strv_push(&b->shell, "-c");
    return 0;
}

int
dt_image_build(struct dt_imgstore *s, const struct dt_build_opts *o, struct dt_image *ret,
               struct dt_error **err)
{
    struct dt_dockerfile *df = NULL;
    struct build b = { .s = s, .o = o };
    int r;

    if (!o->resolve_base || !o->rt)
        return dt_error_set(err, EINVAL, "build: no base resolver or runtime");
    r = dt_dockerfile_parse(o->dockerfile, o->dockerfile_len, &df, err);
    if (r < 0)
        return r;
    b.df = df;
    for (size_t i = 0; i < df->n_stages; i++)
        b.n_steps += 1 + (unsigned) df->stages[i].n_instrs;
    b.stages = xcalloc(df->n_stages, sizeof(*b.stages));
    b.stage_keys = xcalloc(df->n_stages, sizeof(*b.stage_keys));
    for (size_t i = 0; r >= 0 && i < df->n_stages; i++) {
        const struct dt_dockerfile_stage *st = &df->stages[i];
        r = do_from(&b, st, err);
        for (size_t k = 0; r >= 0 && k < st->n_instrs; k++) {
            const struct dt_dockerfile_instr *in = &st->instrs[k];
            fd_printf(b.o->log_fd, "Step %u/%u : %s\n", ++b.step, b.n_steps, in->raw);
            r = do_instr(&b, in, err);
        }
        if (r >= 0) {
            dt_image_copy(&b.stages[i], &b.cur);
            memcpy(b.stage_keys[i], b.key, sizeof(b.key));
            b.n_stages++;
        }
    }
    if (r >= 0) {
        b.cur.size_bytes = 0;
        for (char **l = b.cur.layers; l && *l; l++) {
            uint64_t sz = 0;
            if (dt_imgstore_layer_size(s, *l, &sz) >= 0)
                b.cur.size_bytes += sz;
        }
        free(b.cur.digest);
        b.cur.digest = xasprintf("build:%s", b.key);
        *ret = b.cur;
        dt_image_init(&b.cur);
        fd_printf(b.o->log_fd, "Successfully built %.12s\n", b.key);
    }
    dt_image_done(&b.cur);
    for (size_t i = 0; i < b.n_stages; i++)
        dt_image_done(&b.stages[i]);
    free(b.stages);
    free(b.stage_keys);
    strv_free(b.args);
    strv_free(b.shell);
    dt_dockerfile_free(df);
    return r;
}
