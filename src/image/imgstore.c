/* SPDX-License-Identifier: Apache-2.0 */
/* The image store: unpacked layers kept once under DIR/layers/<id>, appearing only by rename of
 * a finished directory; their sizes under DIR/meta; the builder's step cache under DIR/cache. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/image.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

struct dt_imgstore {
    char *dir;
};

static const char *const SUBDIRS[] = { "layers", "meta", "tmp", "cache" };

bool
dt_layer_id_is_valid(const char *s)
{
    size_t i;

    if (!s)
        return false;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == DT_LAYER_ID_LEN;
}

int
dt_imgstore_open(const char *dir, struct dt_imgstore **ret, struct dt_error **err)
{
    int r;

    if (!dir || dir[0] != '/')
        return dt_error_set(err, EINVAL, "image store directory must be absolute: '%s'",
                            dir ? dir : "");
    r = mkdir_p(dir, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create image store '%s'", dir);
    /* Layers keep setuid bits: no unprivileged host user may walk into them. */
    if (chmod(dir, 0700) < 0)
        return dt_error_errno(err, errno, "chmod image store '%s'", dir);
    for (size_t i = 0; i < ELEMENTSOF(SUBDIRS); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, SUBDIRS[i]);
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return dt_error_errno(err, errno, "create '%s'", p);
    }
    struct dt_imgstore *s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(dir);
    *ret = s;
    return 0;
}

void
dt_imgstore_free(struct dt_imgstore *s)
{
    if (!s)
        return;
    free(s->dir);
    free(s);
}

const char *
dt_imgstore_dir(const struct dt_imgstore *s)
{
    return s->dir;
}

char *
dt_imgstore_layer_path(const struct dt_imgstore *s, const char *id)
{
    return xasprintf("%s/layers/%s", s->dir, id);
}

bool
dt_imgstore_has_layer(const struct dt_imgstore *s, const char *id)
{
    struct stat st;

    if (!dt_layer_id_is_valid(id))
        return false;
    _cleanup_free_ char *p = dt_imgstore_layer_path(s, id);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int
dt_imgstore_layer_size(const struct dt_imgstore *s, const char *id, uint64_t *ret)
{
    _cleanup_free_ char *dir = xasprintf("%s/meta", s->dir);
    _cleanup_free_ char *buf = NULL;
    _cleanup_close_ int dfd = -EBADF;
    int r;

    if (!dt_layer_id_is_valid(id))
        return -EINVAL;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    r = read_file_at(dfd, id, 64, &buf, NULL);
    if (r < 0)
        return r;
    buf[strcspn(buf, "\n")] = '\0';
    return parse_u64(buf, ret);
}

int
dt_imgstore_image_layers(const struct dt_imgstore *s, const struct dt_image *img, char ***ret,
                         struct dt_error **err)
{
    size_t n = strv_length(img->layers);
    char **v = NULL;

    if (n == 0)
        return dt_error_set(err, EINVAL, "the image has no layers");
    for (size_t i = n; i-- > 0;) {
        if (!dt_imgstore_has_layer(s, img->layers[i])) {
            strv_free(v);
            return dt_error_set(err, ENOENT, "layer %.12s of the image is missing from '%s'",
                                img->layers[i], s->dir);
        }
        char *p = dt_imgstore_layer_path(s, img->layers[i]);
        strv_push(&v, p);
        free(p);
    }
    *ret = v;
    return 0;
}

bool
dt_imgstore_image_has_user(const struct dt_imgstore *s, const struct dt_image *img,
                           const char *name)
{
    size_t n = strv_length(img->layers), len = strlen(name);
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };

    for (size_t i = n; i-- > 0;) {
        _cleanup_free_ char *dir = dt_imgstore_layer_path(s, img->layers[i]);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ char *text = NULL;
        struct stat st;

        if (dfd < 0)
            return false;
        if (fstatat(dfd, "etc/passwd", &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!S_ISREG(st.st_mode))
            return false; /* a whiteout, or something odd: no readable passwd here */
        _cleanup_close_ int fd = (int) syscall(SYS_openat2, dfd, "etc/passwd", &how, sizeof(how));
        if (fd < 0 || read_fd_all(fd, 4u << 20, &text, NULL) < 0)
            return false;
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
            if (strncmp(l, name, len) == 0 && l[len] == ':')
                return true;
        return false;
    }
    return false;
}

int
dt_imgstore_layer_begin(struct dt_imgstore *s, char **ret_path, int *ret_dirfd,
                        struct dt_error **err)
{
    _cleanup_free_ char *path = xasprintf("%s/tmp/layer-XXXXXX", s->dir);
    int fd;

    if (!mkdtemp(path))
        return dt_error_errno(err, errno, "create a temporary layer in '%s/tmp'", s->dir);
    /* The layer's root is the image's "/": mkdtemp made it 0700. */
    if (chmod(path, 0755) < 0) {
        int e = errno;
        rmdir(path);
        return dt_error_errno(err, e, "chmod '%s'", path);
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        rmdir(path);
        return dt_error_errno(err, e, "open '%s'", path);
    }
    *ret_path = TAKE_PTR(path);
    *ret_dirfd = fd;
    return 0;
}

/* Bytes used below DIRFD (file sizes, not blocks: what an image's "size" means). Never follows
 * symlinks; hard links count once per name, which is what a tar of the tree would hold. */
static int
tree_size(int dirfd, uint64_t *total, unsigned depth)
{
    if (depth > 4096)
        return -ELOOP;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        safe_close(fd);
        return -errno;
    }
    struct dirent *de;
    int r = 0;
    while (r >= 0 && (de = readdir(d))) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
            break;
        }
        if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
            *total += (uint64_t) st.st_size;
        else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = -errno;
                break;
            }
            r = tree_size(sub, total, depth + 1);
            safe_close(sub);
        }
    }
    closedir(d);
    return r;
}

int
dt_imgstore_layer_commit(struct dt_imgstore *s, const char *tmp_path, const char *id,
                         struct dt_error **err)
{
    _cleanup_free_ char *dst = NULL, *metadir = xasprintf("%s/meta", s->dir);
    _cleanup_close_ int fd = -EBADF, mfd = -EBADF;
    uint64_t size = 0;
    char num[32];
    int r;

    if (!dt_layer_id_is_valid(id)) {
        dt_imgstore_layer_abort(s, tmp_path);
        return dt_error_set(err, EINVAL, "invalid layer id '%s'", id);
    }
    dst = dt_imgstore_layer_path(s, id);
    if (dt_imgstore_has_layer(s, id)) {
        /* Another job made it first; same id, same content. */
        dt_imgstore_layer_abort(s, tmp_path);
        return 0;
    }
    fd = open(tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        r = dt_error_errno(err, errno, "open '%s'", tmp_path);
        dt_imgstore_layer_abort(s, tmp_path);
        return r;
    }
    r = tree_size(fd, &size, 0);
    if (r < 0) {
        dt_imgstore_layer_abort(s, tmp_path);
        return dt_error_errno(err, r, "measure layer '%s'", tmp_path);
    }
    /* The size first: a layer under its real name always has one. */
    mfd = open(metadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fmt_u64(num, size);
    if (mfd < 0 || write_file_at(mfd, id, num, strlen(num), 0600) < 0) {
        r = dt_error_errno(err, errno, "record the size of layer %.12s", id);
        dt_imgstore_layer_abort(s, tmp_path);
        return r;
    }
    (void) syncfs(fd);
    if (rename(tmp_path, dst) < 0) {
        int e = errno;
        dt_imgstore_layer_abort(s, tmp_path);
        if (e == EEXIST || e == ENOTEMPTY)
            return 0; /* another job committed the same layer first */
        return dt_error_errno(err, e, "move layer into '%s'", dst);
    }
    return 0;
}

void
dt_imgstore_layer_abort(struct dt_imgstore *s, const char *tmp_path)
{
    if (tmp_path)
        (void) rm_rf_at(AT_FDCWD, tmp_path);
}

void
dt_imgstore_clean_tmp(struct dt_imgstore *s)
{
    _cleanup_free_ char *tmp = xasprintf("%s/tmp", s->dir);
    (void) rm_rf_at(AT_FDCWD, tmp);
    (void) mkdir(tmp, 0700);
}

int
dt_imgstore_gc(struct dt_imgstore *s, char *const *keep, uint64_t *ret_freed,
               struct dt_error **err)
{
    _cleanup_free_ char *layers = xasprintf("%s/layers", s->dir);
    uint64_t freed = 0;
    DIR *d = opendir(layers);
    struct dirent *de;
    int r = 0;

    if (!d)
        return dt_error_errno(err, errno, "open '%s'", layers);
    while ((de = readdir(d))) {
        bool kept = false;
        uint64_t sz = 0;
        if (!dt_layer_id_is_valid(de->d_name))
            continue;
        for (size_t i = 0; keep && keep[i] && !kept; i++)
            kept = strcmp(keep[i], de->d_name) == 0;
        if (kept)
            continue;
        if (dt_imgstore_layer_size(s, de->d_name, &sz) >= 0)
            freed += sz;
        /* Out of layers/ by rename first: a crash mid-removal leaves debris in tmp/, never a
         * half layer under a real name. */
        _cleanup_free_ char *src = xasprintf("%s/%s", layers, de->d_name);
        _cleanup_free_ char *dst = xasprintf("%s/tmp/gc-%s", s->dir, de->d_name);
        (void) rm_rf_at(AT_FDCWD, dst);
        if (rename(src, dst) < 0) {
            r = dt_error_errno(err, errno, "remove layer '%s'", src);
            break;
        }
        _cleanup_free_ char *meta = xasprintf("%s/meta/%s", s->dir, de->d_name);
        (void) unlink(meta);
        (void) rm_rf_at(AT_FDCWD, dst);
    }
    closedir(d);
    if (ret_freed)
        *ret_freed = freed;
    return r;
}

uint64_t
dt_imgstore_usage(const struct dt_imgstore *s)
{
    _cleanup_free_ char *layers = xasprintf("%s/layers", s->dir);
    uint64_t total = 0;
    DIR *d = opendir(layers);
    struct dirent *de;

    if (!d)
        return 0;
    while ((de = readdir(d))) {
        uint64_t sz;
        if (dt_layer_id_is_valid(de->d_name) && dt_imgstore_layer_size(s, de->d_name, &sz) >= 0)
            total += sz;
    }
    closedir(d);
    return total;
}

int
dt_imgstore_cache_get(const struct dt_imgstore *s, const char *key, char **ret_value)
{
    _cleanup_free_ char *dir = xasprintf("%s/cache", s->dir);
    _cleanup_close_ int dfd = -EBADF;

    if (!dt_layer_id_is_valid(key))
        return -EINVAL;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    return read_file_at(dfd, key, 1 << 20, ret_value, NULL);
}

int
dt_imgstore_cache_put(struct dt_imgstore *s, const char *key, const char *value,
                      struct dt_error **err)
{
    _cleanup_free_ char *dir = xasprintf("%s/cache", s->dir);
    _cleanup_free_ char *tmp = xasprintf(".%s.tmp", key);
    _cleanup_close_ int dfd = -EBADF;
    int r;

    if (!dt_layer_id_is_valid(key))
        return dt_error_set(err, EINVAL, "invalid cache key '%s'", key);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return dt_error_errno(err, errno, "open '%s'", dir);
    r = write_file_at(dfd, tmp, value, strlen(value), 0600);
    if (r >= 0 && renameat(dfd, tmp, dfd, key) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlinkat(dfd, tmp, 0);
        return dt_error_errno(err, r, "write build cache entry %.12s", key);
    }
    return 0;
}
