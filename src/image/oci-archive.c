/* SPDX-License-Identifier: Apache-2.0 */
/* Images from local archives: `docker save` tarballs (manifest.json, legacy or OCI-shaped), OCI
 * archives (oci-layout + index.json + blobs/ in a tar) and OCI layout directories. A tar is
 * indexed in one pass (member name → offset, size); blobs are then handed out as windows of the
 * file and read with pread, so nothing is extracted to disk. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "dt/fd-util.h"
#include "dt/oci.h"
#include "dt/xalloc.h"

#include "dt/banned.h"

#define NAME_MAX_LEN 4096
#define SYMLINK_DEPTH_MAX 8
#define COPY_BUF (128 * 1024)

struct member {
    char *name;
    char *link; /* symlink target (normalised, relative to the archive root) or NULL */
    uint64_t offset;
    uint64_t size;
};

struct dt_oci_archive {
    char *name;
    int fd;    /* the tar file, or -EBADF */
    int dirfd; /* the layout directory, or -EBADF */
    struct member *members;
    size_t n_members;
    int *blob_fds; /* files opened under dirfd, closed at free */
    size_t n_blob_fds;
    struct dt_oci_archive_image *images;
    size_t n_images;
};

#define _cleanup_json_ _cleanup_(json_decrefp)

/* ---- names ---- */

/* Normalise an archive path: drop leading "./" and empty / "." components. Returns a new string,
 * or NULL when the path is absolute, has a ".." component or is too long. */
static char *
normalise_path(const char *base_dir, const char *p)
{
    _cleanup_free_ char *joined = NULL;
    char *out, *o;
    const char *s;

    if (!p || p[0] == '/' || strlen(p) > NAME_MAX_LEN)
        return NULL;
    joined = base_dir && *base_dir ? xasprintf("%s/%s", base_dir, p) : xstrdup(p);
    out = xmalloc(strlen(joined) + 1);
    o = out;
    s = joined;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            free(out);
            return NULL;
        }
        if (n > 0 && !(n == 1 && s[0] == '.')) {
            if (o != out)
                *o++ = '/';
            memcpy(o, s, n);
            o += n;
        }
        s += n;
        if (*s == '/')
            s++;
    }
    *o = '\0';
    if (o == out) {
        free(out);
        return NULL;
    }
    return out;
}

static int
member_cmp(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

static struct member *
find_member(const struct dt_oci_archive *a, const char *name)
{
    struct member key = { .name = (char *)name };

    if (a->n_members == 0)
        return NULL;
    return bsearch(&key, a->members, a->n_members, sizeof(key), member_cmp);
}

/* ---- tar index ---- */

struct tar_reader {
    int fd;
    uint64_t pos;
    char buf[64 * 1024];
};

static la_ssize_t
tar_read_cb(struct archive *ar, void *data, const void **buf)
{
    struct tar_reader *t = data;
    ssize_t n;

    do
        n = pread(t->fd, t->buf, sizeof(t->buf), (off_t)t->pos);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(ar, errno, "read failed");
        return -1;
    }
    t->pos += (uint64_t)n;
    *buf = t->buf;
    return n;
}

static la_int64_t
tar_skip_cb(struct archive *ar, void *data, la_int64_t request)
{
    struct tar_reader *t = data;
    /* Skipping is what makes indexing cheap: layer bodies are never read. */
    t->pos += (uint64_t)request;
    return request;
}

/* Offsets are only meaningful in an uncompressed file: refuse compressed ones by their magic. */
static int
check_not_compressed(struct dt_oci_archive *a, struct dt_error **err)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *name;
    } magics[] = {
        { "\x1f\x8b", 2, "gzip" },
        { "\x28\xb5\x2f\xfd", 4, "zstd" },
        { "\xfd" "7zXZ\x00", 6, "xz" },
        { "BZh", 3, "bzip2" },
    };
    unsigned char head[8] = { 0 };
    ssize_t n = pread(a->fd, head, sizeof(head), 0);

    if (n < 0)
        return dt_error_errno(err, errno, "read '%s'", a->name);
    for (size_t i = 0; i < ELEMENTSOF(magics); i++)
        if ((size_t)n >= magics[i].len && memcmp(head, magics[i].magic, magics[i].len) == 0)
            return dt_error_set(err, ENOTSUP, "'%s': compressed archive (%s): decompress it first",
                                a->name, magics[i].name);
    return 0;
}

static int
index_tar(struct dt_oci_archive *a, struct dt_error **err)
{
    struct archive *ar;
    struct archive_entry *e;
    struct tar_reader *t;
    size_t cap = 0;
    int r = 0, k;

    r = check_not_compressed(a, err);
    if (r < 0)
        return r;
    t = xcalloc(1, sizeof(*t));
    t->fd = a->fd;
    ar = archive_read_new();
    if (!ar)
        DT_BUG("archive_read_new");
    /* No decompression filters at all: offsets must be file offsets, and libarchive's
     * filter_all would run external programs (lrzip, lzop...) on hostile input. */
    archive_read_support_format_tar(ar);
    archive_read_support_filter_none(ar);
    if (archive_read_open2(ar, t, NULL, tar_read_cb, tar_skip_cb, NULL) != ARCHIVE_OK) {
        r = dt_error_set(err, EINVAL, "'%s': not a tar archive: %s", a->name,
                         archive_error_string(ar));
        goto finish;
    }
    for (;;) {
        const char *name;
        char *norm;
        struct member *m;

        k = archive_read_next_header(ar, &e);
        if (k == ARCHIVE_EOF)
            break;
        if (k != ARCHIVE_OK && k != ARCHIVE_WARN) {
            r = dt_error_set(err, EINVAL, "'%s': bad tar archive: %s", a->name,
                             archive_error_string(ar));
            goto finish;
        }
        name = archive_entry_pathname(e);
        if (!name)
            continue;
        if (archive_entry_filetype(e) == AE_IFDIR)
            continue;
        norm = normalise_path(NULL, name);
        if (!norm) {
            r = dt_error_set(err, EINVAL, "'%s': member '%.200s' has an unsafe name", a->name,
                             name);
            goto finish;
        }
        if (a->n_members >= DT_OCI_ARCHIVE_MEMBERS_MAX) {
            free(norm);
            r = dt_error_set(err, E2BIG, "'%s': too many members (limit %d)", a->name,
                             DT_OCI_ARCHIVE_MEMBERS_MAX);
            goto finish;
        }
        if (a->n_members == cap) {
            cap = cap ? cap * 2 : 64;
            a->members = xreallocarray(a->members, cap, sizeof(*a->members));
        }
        m = &a->members[a->n_members++];
        *m = (struct member){ .name = norm };
        if (archive_entry_filetype(e) == AE_IFLNK) {
            /* docker save links duplicate layers: "<id>/layer.tar" -> "../<id2>/layer.tar". */
            const char *target = archive_entry_symlink(e);
            _cleanup_free_ char *dir = xstrdup(norm);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                dir[0] = '\0';
            if (target && target[0] == '/')
                m->link = NULL;
            else if (target && strncmp(target, "../", 3) == 0 && dir[0]) {
                /* One level up from DIR: resolve by hand so ".." never reaches lookup. */
                char *up = strrchr(dir, '/');
                if (up)
                    *up = '\0';
                else
                    dir[0] = '\0';
                m->link = normalise_path(dir, target + 3);
            } else if (target) {
                m->link = normalise_path(dir, target);
            }
            if (!m->link) {
                r = dt_error_set(err, EINVAL, "'%s': symlink '%.200s' points outside", a->name,
                                 name);
                goto finish;
            }
        } else if (archive_entry_filetype(e) == AE_IFREG) {
            if (archive_entry_sparse_count(e) > 0 || !archive_entry_size_is_set(e)) {
                r = dt_error_set(err, ENOTSUP, "'%s': member '%.200s' is sparse", a->name, name);
                goto finish;
            }
            /* The tar reader has consumed exactly the header blocks: this is the data. */
            m->offset = (uint64_t)archive_filter_bytes(ar, 0);
            m->size = (uint64_t)archive_entry_size(e);
        } else {
            /* Hard links and devices are never needed: forget them. */
            free(m->name);
            a->n_members--;
        }
    }
    if (a->n_members > 0)
        qsort(a->members, a->n_members, sizeof(*a->members), member_cmp);
    for (size_t i = 1; i < a->n_members; i++)
        if (strcmp(a->members[i - 1].name, a->members[i].name) == 0) {
            r = dt_error_set(err, EINVAL, "'%s': member '%.200s' appears twice", a->name,
                             a->members[i].name);
            goto finish;
        }
finish:
    archive_read_free(ar);
    free(t);
    return r;
}

/* Locate member NAME as a window. -ENOENT with *err when missing. */
static int
lookup(struct dt_oci_archive *a, const char *name, struct dt_oci_window *w,
       struct dt_error **err)
{
    _cleanup_free_ char *cur = xstrdup(name);

    if (a->dirfd >= 0) {
        struct open_how how = {
            .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        struct stat st;
        int fd = (int)syscall(SYS_openat2, a->dirfd, name, &how, sizeof(how));
        if (fd < 0)
            return dt_error_errno(err, errno, "'%s': open '%s'", a->name, name);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return dt_error_set(err, EINVAL, "'%s': '%s' is not a regular file", a->name, name);
        }
        a->blob_fds = xreallocarray(a->blob_fds, a->n_blob_fds + 1, sizeof(int));
        a->blob_fds[a->n_blob_fds++] = fd;
        *w = (struct dt_oci_window){ .fd = fd, .offset = 0, .length = (uint64_t)st.st_size };
        return 0;
    }
    for (int depth = 0; depth <= SYMLINK_DEPTH_MAX; depth++) {
        struct member *m = find_member(a, cur);
        if (!m)
            return dt_error_set(err, ENOENT, "'%s': member '%s' missing", a->name, name);
        if (!m->link) {
            *w = (struct dt_oci_window){ .fd = a->fd, .offset = m->offset, .length = m->size };
            return 0;
        }
        free(cur);
        cur = xstrdup(m->link);
    }
    return dt_error_set(err, ELOOP, "'%s': member '%s': too many symlinks", a->name, name);
}

static int
read_window(const struct dt_oci_window *w, size_t max, char **ret, size_t *ret_len)
{
    char *buf;
    size_t got = 0;

    if (w->length > max)
        return -EFBIG;
    buf = xmalloc(w->length + 1);
    while (got < w->length) {
        ssize_t n = pread(w->fd, buf + got, w->length - got, (off_t)(w->offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *ret = buf;
    *ret_len = got;
    return 0;
}

/* Read member NAME (≤ MAX bytes); when DIGEST is set, verify it. */
static int
read_member(struct dt_oci_archive *a, const char *name, size_t max, const char *digest,
            char **ret, size_t *ret_len, struct dt_error **err)
{
    struct dt_oci_window w;
    char got[DT_DIGEST_BUFSZ];
    int r;

    r = lookup(a, name, &w, err);
    if (r < 0)
        return r;
    r = read_window(&w, max, ret, ret_len);
    if (a->dirfd >= 0) {
        /* Only layer blobs need to stay open: give this one back now. */
        DT_ASSERT(a->n_blob_fds > 0 && a->blob_fds[a->n_blob_fds - 1] == w.fd);
        safe_close(a->blob_fds[--a->n_blob_fds]);
    }
    if (r == -EFBIG)
        return dt_error_set(err, EFBIG, "'%s': member '%s' too large (%llu bytes, limit %zu)",
                            a->name, name, (unsigned long long)w.length, max);
    if (r < 0)
        return dt_error_errno(err, r, "'%s': read '%s'", a->name, name);
    if (digest) {
        dt_digest_buffer(*ret, *ret_len, got);
        if (strcmp(got, digest) != 0) {
            free(*ret);
            *ret = NULL;
            return dt_error_set(err, EBADMSG, "'%s': '%s' has digest %s, expected %s", a->name,
                                name, got, digest);
        }
    }
    return 0;
}

static char *
blob_path(const char *digest)
{
    return xasprintf("blobs/sha256/%s", digest + 7);
}

/* ---- images ---- */

static void
image_done(struct dt_oci_archive_image *img)
{
    strv_free(img->names);
    free(img->config_digest);
    free(img->config_json);
    dt_oci_config_free(img->config);
    for (size_t i = 0; i < img->n_layers; i++) {
        free(img->layers[i].digest);
        free(img->layers[i].media_type);
        free(img->layers[i].diff_id);
    }
    free(img->layers);
}

void
dt_oci_archive_free(struct dt_oci_archive *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_images; i++)
        image_done(&a->images[i]);
    free(a->images);
    for (size_t i = 0; i < a->n_members; i++) {
        free(a->members[i].name);
        free(a->members[i].link);
    }
    free(a->members);
    for (size_t i = 0; i < a->n_blob_fds; i++)
        safe_close(a->blob_fds[i]);
    free(a->blob_fds);
    safe_close(a->fd);
    safe_close(a->dirfd);
    free(a->name);
    free(a);
}

static struct dt_oci_archive_image *
add_image(struct dt_oci_archive *a)
{
    struct dt_oci_archive_image *img;

    a->images = xreallocarray(a->images, a->n_images + 1, sizeof(*a->images));
    img = &a->images[a->n_images++];
    *img = (struct dt_oci_archive_image){ .names = xcalloc(1, sizeof(char *)) };
    return img;
}

/* Config bytes (already read and verified) → parsed config; check layer count. */
static int
image_set_config(struct dt_oci_archive *a, struct dt_oci_archive_image *img, size_t n_layers,
                 struct dt_error **err)
{
    int r = dt_oci_config_parse(img->config_json, img->config_len, &img->config, err);
    if (r < 0)
        return dt_error_wrap(err, "'%s': image config %s", a->name, img->config_digest);
    if (img->config->n_diff_ids != n_layers)
        return dt_error_set(err, EINVAL, "'%s': image has %zu layers but its config lists %zu",
                            a->name, n_layers, img->config->n_diff_ids);
    return 0;
}

static bool
has_prefix_hex_json(const char *p, char *ret_hex)
{
    /* Legacy docker save names the config "<hex>.json"; newer ones "blobs/sha256/<hex>". */
    const char *b = strrchr(p, '/');
    b = b ? b + 1 : p;
    if (strlen(b) == 69 && strcmp(b + 64, ".json") == 0) {
        memcpy(ret_hex, b, 64);
        ret_hex[64] = '\0';
        return true;
    }
    if (strncmp(p, "blobs/sha256/", 13) == 0 && strlen(p + 13) == 64) {
        memcpy(ret_hex, p + 13, 65);
        return true;
    }
    return false;
}

static int
load_docker(struct dt_oci_archive *a, struct dt_error **err)
{
    _cleanup_free_ char *buf = NULL;
    _cleanup_json_ json_t *j = NULL;
    json_error_t jerr;
    size_t len, i;
    json_t *e;
    int r;

    r = read_member(a, "manifest.json", DT_OCI_MANIFEST_MAX, NULL, &buf, &len, err);
    if (r < 0)
        return r;
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(j))
        return dt_error_set(err, EINVAL, "'%s': manifest.json is not a JSON array", a->name);
    if (json_array_size(j) > DT_OCI_INDEX_MAX)
        return dt_error_set(err, E2BIG, "'%s': manifest.json has too many images", a->name);
    json_array_foreach(j, i, e) {
        struct dt_oci_archive_image *img = add_image(a);
        json_t *cfg = json_object_get(e, "Config"), *tags = json_object_get(e, "RepoTags");
        json_t *layers = json_object_get(e, "Layers"), *v;
        _cleanup_free_ char *cfg_path = NULL;
        char hex[65];
        size_t k;

        if (!json_is_string(cfg) || !json_is_array(layers))
            return dt_error_set(err, EINVAL, "'%s': manifest.json entry %zu lacks Config/Layers",
                                a->name, i);
        if (json_array_size(layers) > DT_OCI_LAYERS_MAX)
            return dt_error_set(err, E2BIG, "'%s': image %zu has too many layers", a->name, i);
        cfg_path = normalise_path(NULL, json_string_value(cfg));
        if (!cfg_path)
            return dt_error_set(err, EINVAL, "'%s': unsafe config path '%.200s'", a->name,
                                json_string_value(cfg));
        r = read_member(a, cfg_path, DT_OCI_CONFIG_MAX, NULL, &img->config_json,
                        &img->config_len, err);
        if (r < 0)
            return r;
        img->config_digest = xmalloc(DT_DIGEST_BUFSZ);
        dt_digest_buffer(img->config_json, img->config_len, img->config_digest);
        if (has_prefix_hex_json(cfg_path, hex) && strcmp(hex, img->config_digest + 7) != 0)
            return dt_error_set(err, EBADMSG, "'%s': config '%s' has digest %s", a->name,
                                cfg_path, img->config_digest);
        if (json_is_array(tags))
            json_array_foreach(tags, k, v)
                if (json_is_string(v) && k < DT_OCI_INDEX_MAX)
                    strv_push(&img->names, json_string_value(v));
        r = image_set_config(a, img, json_array_size(layers), err);
        if (r < 0)
            return r;
        img->layers = xcalloc(json_array_size(layers) + 1, sizeof(*img->layers));
        json_array_foreach(layers, k, v) {
            struct dt_oci_archive_layer *l = &img->layers[k];
            _cleanup_free_ char *p = NULL;

            img->n_layers++;
            if (!json_is_string(v) || !(p = normalise_path(NULL, json_string_value(v))))
                return dt_error_set(err, EINVAL, "'%s': image %zu: unsafe layer path", a->name,
                                    i);
            /* docker save layers are uncompressed tars: their digest is the diff_id. */
            l->diff_id = xstrdup(img->config->diff_ids[k]);
            l->digest = xstrdup(l->diff_id);
            l->media_type = xstrdup("application/vnd.oci.image.layer.v1.tar");
            l->compression = DT_OCI_COMPRESSION_NONE;
            r = lookup(a, p, &l->blob, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static const char *
host_arch(void)
{
#if defined(__x86_64__)
    return "amd64";
#elif defined(__aarch64__)
    return "arm64";
#else
    return NULL;
#endif
}

/* Read, verify and parse the blob D as a manifest. */
static int
read_manifest_blob(struct dt_oci_archive *a, const struct dt_oci_descriptor *d,
                   struct dt_oci_manifest **ret, struct dt_error **err)
{
    _cleanup_free_ char *buf = NULL, *p = blob_path(d->digest);
    size_t len;
    int r;

    r = read_member(a, p, DT_OCI_MANIFEST_MAX, d->digest, &buf, &len, err);
    if (r < 0)
        return r;
    if (len != d->size)
        return dt_error_set(err, EBADMSG, "'%s': '%s' has %zu bytes, descriptor says %llu",
                            a->name, p, len, (unsigned long long)d->size);
    r = dt_oci_manifest_parse(buf, len, d->media_type, ret, err);
    if (r < 0)
        return dt_error_wrap(err, "'%s': %s", a->name, p);
    return 0;
}

static int
load_oci(struct dt_oci_archive *a, struct dt_error **err)
{
    _cleanup_free_ char *layout = NULL, *buf = NULL;
    _cleanup_(dt_oci_manifest_freep) struct dt_oci_manifest *idx = NULL;
    _cleanup_json_ json_t *j = NULL, *lj = NULL;
    json_t *arr;
    size_t len;
    int r;

    r = read_member(a, "oci-layout", 4096, NULL, &layout, &len, err);
    if (r < 0)
        return r;
    lj = json_loadb(layout, len, 0, NULL);
    if (!json_is_string(json_object_get(lj, "imageLayoutVersion")))
        return dt_error_set(err, EINVAL, "'%s': oci-layout lacks imageLayoutVersion", a->name);
    r = read_member(a, "index.json", DT_OCI_MANIFEST_MAX, NULL, &buf, &len, err);
    if (r < 0)
        return r;
    r = dt_oci_manifest_parse(buf, len, DT_OCI_MT_INDEX, &idx, err);
    if (r < 0)
        return dt_error_wrap(err, "'%s': index.json", a->name);
    /* Annotations (image names) are not part of the parsed struct: read them here. */
    j = json_loadb(buf, len, 0, NULL);
    arr = json_object_get(j, "manifests");

    for (size_t i = 0; i < idx->n_manifests; i++) {
        _cleanup_(dt_oci_manifest_freep) struct dt_oci_manifest *m = NULL;
        _cleanup_free_ char *cfg_path = NULL;
        struct dt_oci_archive_image *img;
        json_t *ann = json_object_get(json_array_get(arr, i), "annotations");
        const char *n1 = json_string_value(json_object_get(ann, "io.containerd.image.name"));
        const char *n2 =
            json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));

        const struct dt_oci_platform *pl = &idx->manifests[i].platform;

        /* A layout holding several platforms side by side: keep the one this host runs. */
        if (pl->os && pl->architecture && host_arch() &&
            (strcmp(pl->os, "linux") != 0 || strcmp(pl->architecture, host_arch()) != 0))
            continue;
        r = read_manifest_blob(a, &idx->manifests[i], &m, err);
        if (r < 0)
            return r;
        if (m->kind == DT_OCI_KIND_INDEX) {
            const struct dt_oci_descriptor *d;
            struct dt_oci_manifest *inner = NULL;
            r = dt_oci_index_pick(m, "linux", host_arch(), NULL, &d, err);
            if (r < 0)
                return dt_error_wrap(err, "'%s'", a->name);
            r = read_manifest_blob(a, d, &inner, err);
            if (r < 0)
                return r;
            if (inner->kind != DT_OCI_KIND_MANIFEST) {
                dt_oci_manifest_free(inner);
                return dt_error_set(err, EINVAL, "'%s': nested index too deep", a->name);
            }
            dt_oci_manifest_free(m);
            m = inner;
        }

        img = add_image(a);
        if (n1)
            strv_push(&img->names, n1);
        if (n2 && (!n1 || strcmp(n1, n2) != 0))
            strv_push(&img->names, n2);
        img->config_digest = xstrdup(m->config.digest);
        cfg_path = blob_path(m->config.digest);
        r = read_member(a, cfg_path, DT_OCI_CONFIG_MAX, m->config.digest, &img->config_json,
                        &img->config_len, err);
        if (r < 0)
            return r;
        r = image_set_config(a, img, m->n_layers, err);
        if (r < 0)
            return r;
        img->layers = xcalloc(m->n_layers + 1, sizeof(*img->layers));
        for (size_t k = 0; k < m->n_layers; k++) {
            struct dt_oci_archive_layer *l = &img->layers[k];
            _cleanup_free_ char *p = blob_path(m->layers[k].digest);

            img->n_layers++;
            l->digest = xstrdup(m->layers[k].digest);
            l->media_type = xstrdup(m->layers[k].media_type);
            l->compression = m->layers[k].compression;
            l->diff_id = xstrdup(img->config->diff_ids[k]);
            r = lookup(a, p, &l->blob, err);
            if (r < 0)
                return r;
            if (l->blob.length != m->layers[k].size)
                return dt_error_set(err, EBADMSG,
                                    "'%s': layer '%s' has %llu bytes, manifest says %llu",
                                    a->name, p, (unsigned long long)l->blob.length,
                                    (unsigned long long)m->layers[k].size);
        }
    }
    return 0;
}

static bool
has_member(struct dt_oci_archive *a, const char *name)
{
    if (a->dirfd >= 0)
        return faccessat(a->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    return find_member(a, name) != NULL;
}

static int
load(struct dt_oci_archive *a, struct dt_error **err)
{
    if (has_member(a, "index.json") && has_member(a, "oci-layout"))
        return load_oci(a, err);
    if (has_member(a, "manifest.json"))
        return load_docker(a, err);
    return dt_error_set(err, EINVAL,
                        "'%s': neither an OCI layout (oci-layout, index.json) nor a docker save "
                        "archive (manifest.json)",
                        a->name);
}

int
dt_oci_archive_open_fd(int fd, const char *name, struct dt_oci_archive **ret,
                       struct dt_error **err)
{
    _cleanup_(dt_oci_archive_freep) struct dt_oci_archive *a = NULL;
    int r;

    a = xcalloc(1, sizeof(*a));
    a->dirfd = -EBADF;
    a->name = xstrdup(name ? name : "archive");
    a->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (a->fd < 0)
        return dt_error_errno(err, errno, "'%s': dup", a->name);
    r = index_tar(a, err);
    if (r < 0)
        return r;
    r = load(a, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(a);
    return 0;
}

int
dt_oci_archive_open(const char *path, struct dt_oci_archive **ret, struct dt_error **err)
{
    _cleanup_(dt_oci_archive_freep) struct dt_oci_archive *a = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct stat st;
    int r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return dt_error_errno(err, errno, "open '%s'", path);
    if (fstat(fd, &st) < 0)
        return dt_error_errno(err, errno, "stat '%s'", path);
    if (S_ISREG(st.st_mode))
        return dt_oci_archive_open_fd(fd, path, ret, err);
    if (!S_ISDIR(st.st_mode))
        return dt_error_set(err, EINVAL, "'%s': neither a file nor a directory", path);
    a = xcalloc(1, sizeof(*a));
    a->fd = -EBADF;
    a->name = xstrdup(path);
    a->dirfd = TAKE_FD(fd);
    r = load(a, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(a);
    return 0;
}

size_t
dt_oci_archive_n_images(const struct dt_oci_archive *a)
{
    return a->n_images;
}

const struct dt_oci_archive_image *
dt_oci_archive_image(const struct dt_oci_archive *a, size_t i)
{
    return i < a->n_images ? &a->images[i] : NULL;
}

static char *
canonical_name(const char *s)
{
    struct dt_image_ref *r = NULL;
    char *c;

    if (dt_image_ref_parse(s, &r, NULL) < 0)
        return NULL;
    c = dt_image_ref_string(r);
    dt_image_ref_free(r);
    return c;
}

int
dt_oci_archive_select(const struct dt_oci_archive *a, const char *name,
                      const struct dt_oci_archive_image **ret, struct dt_error **err)
{
    _cleanup_free_ char *want = NULL;
    char list[1024] = "";
    size_t used = 0;

    if (!name) {
        if (a->n_images == 1) {
            *ret = &a->images[0];
            return 0;
        }
        if (a->n_images == 0)
            return dt_error_set(err, ENOENT, "'%s': contains no image", a->name);
        return dt_error_set(err, EINVAL, "'%s': contains %zu images: name one", a->name,
                            a->n_images);
    }
    want = canonical_name(name);
    for (size_t i = 0; i < a->n_images; i++)
        for (size_t k = 0; a->images[i].names[k]; k++) {
            _cleanup_free_ char *have = NULL;
            if (strcmp(a->images[i].names[k], name) == 0) {
                *ret = &a->images[i];
                return 0;
            }
            have = canonical_name(a->images[i].names[k]);
            if (want && have && strcmp(want, have) == 0) {
                *ret = &a->images[i];
                return 0;
            }
            if (used + 1 < sizeof(list)) {
                int n = snprintf(list + used, sizeof(list) - used, "%s'%s'", used ? ", " : "",
                                 a->images[i].names[k]);
                if (n > 0)
                    used += (size_t)n;
            }
        }
    return dt_error_set(err, ENOENT, "'%s': no image named '%s'; it has: %s", a->name, name,
                        used ? list : "no named images");
}

/* ---- handing out blobs ---- */

/* Copy W to OUT_FD, hashing; GOT receives the digest of what was copied. */
static int
copy_window(const struct dt_oci_window *w, int out_fd, const char *digest, char *got)
{
    _cleanup_free_ char *buf = xmalloc(COPY_BUF);
    struct dt_hasher h;
    uint64_t done = 0;
    int r;

    dt_hasher_init(&h);
    while (done < w->length) {
        size_t want = w->length - done < COPY_BUF ? (size_t)(w->length - done) : COPY_BUF;
        ssize_t n = pread(w->fd, buf, want, (off_t)(w->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            dt_hasher_done(&h);
            return n < 0 ? -errno : -EIO;
        }
        dt_hasher_update(&h, buf, (size_t)n);
        r = write_all(out_fd, buf, (size_t)n);
        if (r < 0) {
            dt_hasher_done(&h);
            return r;
        }
        done += (uint64_t)n;
    }
    dt_hasher_final(&h, got);
    if (digest && strcmp(got, digest) != 0)
        return -EBADMSG;
    return 0;
}

int
dt_oci_window_copy(const struct dt_oci_window *w, int out_fd, const char *digest,
                   struct dt_error **err)
{
    char got[DT_DIGEST_BUFSZ] = "";
    int r = copy_window(w, out_fd, digest, got);

    if (r == -EBADMSG)
        return dt_error_set(err, EBADMSG, "blob has digest %s, expected %s", got, digest);
    if (r < 0)
        return dt_error_errno(err, r, "copy blob %s", digest ? digest : "");
    return 0;
}

struct dt_oci_stream {
    pthread_t thread;
    struct dt_oci_window w;
    char *digest;
    int wfd;
    int result;
    char got[DT_DIGEST_BUFSZ];
};

static void *
stream_thread(void *p)
{
    struct dt_oci_stream *s = p;
    sigset_t set;

    /* A consumer that stops early closes the pipe: see EPIPE, not a process-killing SIGPIPE
     * (thread-directed and blocked here, so it is discarded when the thread exits). */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    s->result = copy_window(&s->w, s->wfd, s->digest, s->got);
    s->wfd = safe_close(s->wfd);
    return NULL;
}

int
dt_oci_stream_open(const struct dt_oci_window *w, const char *digest, int *ret_fd,
                   struct dt_oci_stream **ret, struct dt_error **err)
{
    struct dt_oci_stream *s;
    int p[2], r;

    if (pipe2(p, O_CLOEXEC) < 0)
        return dt_error_errno(err, errno, "pipe");
    s = xcalloc(1, sizeof(*s));
    s->w = *w;
    s->digest = digest ? xstrdup(digest) : NULL;
    s->wfd = p[1];
    r = pthread_create(&s->thread, NULL, stream_thread, s);
    if (r != 0) {
        close(p[0]);
        close(p[1]);
        free(s->digest);
        free(s);
        return dt_error_errno(err, r, "start blob reader thread");
    }
    *ret_fd = p[0];
    *ret = s;
    return 0;
}

int
dt_oci_stream_finish(struct dt_oci_stream *s, struct dt_error **err)
{
    int r;

    if (!s)
        return 0;
    pthread_join(s->thread, NULL);
    r = s->result;
    if (r == -EBADMSG)
        r = dt_error_set(err, EBADMSG, "blob has digest %s, expected %s", s->got, s->digest);
    else if (r == -EPIPE)
        r = dt_error_set(err, EPIPE, "blob %s: reader stopped before the end",
                         s->digest ? s->digest : "");
    else if (r < 0)
        r = dt_error_errno(err, r, "read blob %s", s->digest ? s->digest : "");
    free(s->digest);
    free(s);
    return r;
}
