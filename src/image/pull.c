/* SPDX-License-Identifier: Apache-2.0 */
/* Getting images into the store: a registry pull (manifest, config, layers streamed from the
 * registry straight into the extractor) and an import from a local archive. Both end in the
 * same layer ids (diff_ids), so the two copies of one image share everything. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/image.h"
#include "dt/layer.h"
#include "dt/macros.h"
#include "dt/oci.h"
#include "dt/registry.h"
#include "dt/xalloc.h"
#include "dt/banned.h"



/* The image from CONFIG; its layers are the config's diff_ids (hex). */
static void
image_from_config(const struct dt_oci_config *c, const char *digest, struct dt_image *img)
{
    dt_image_init(img);
    for (size_t i = 0; i < c->n_diff_ids; i++)
        strv_push(&img->layers, c->diff_ids[i] + 7);
    img->env = strv_copy(c->env);
    img->entrypoint = strv_copy(c->entrypoint);
    img->cmd = strv_copy(c->cmd);
    img->working_dir = c->working_dir && *c->working_dir ? xstrdup(c->working_dir) : NULL;
    img->user = c->user && *c->user ? xstrdup(c->user) : NULL;
    img->exposed_ports = strv_copy(c->exposed_ports);
    for (size_t i = 0; i < c->n_labels; i++) {
        char *kv = xasprintf("%s=%s", c->labels[i].key, c->labels[i].value);
        strv_push(&img->labels, kv);
        free(kv);
    }
    img->digest = digest ? xstrdup(digest) : NULL;
}

static void
add_sizes(struct dt_imgstore *s, struct dt_image *img)
{
    img->size_bytes = 0;
    for (char **l = img->layers; l && *l; l++) {
        uint64_t sz = 0;
        if (dt_imgstore_layer_size(s, *l, &sz) >= 0)
            img->size_bytes += sz;
    }
}

/* Unpack the blob coming out of FD as layer DIFF_ID and check its diff_id. *RET_TMP: the
 * unpacked directory, to commit once the blob's own digest was verified too (or abort). */
static int
unpack_layer(struct dt_imgstore *s, int fd, const char *diff_id, struct dt_layer_result *res,
             char **ret_tmp, struct dt_error **err)
{
    char *tmp = NULL;
    int dfd = -EBADF, r;

    r = dt_imgstore_layer_begin(s, &tmp, &dfd, err);
    if (r < 0)
        return r;
    r = dt_layer_unpack(fd, dfd, NULL, res, err);
    safe_close(dfd);
    if (r >= 0 && strcmp(res->diff_id, diff_id) != 0)
        r = dt_error_set(err, EBADMSG, "layer %.19s: its content does not match the image "
                         "config (diff_id %.19s)", res->digest, diff_id);
    if (r < 0) {
        dt_imgstore_layer_abort(s, tmp);
        free(tmp);
        return r;
    }
    *ret_tmp = tmp;
    return 0;
}

/* Commit TMP as layer DIFF_ID when R (the whole transfer) succeeded, else remove it. */
static int
settle_layer(struct dt_imgstore *s, char *tmp, const char *diff_id, int r, struct dt_error **err)
{
    if (!tmp)
        return r;
    if (r >= 0)
        r = dt_imgstore_layer_commit(s, tmp, diff_id + 7, err);
    else
        dt_imgstore_layer_abort(s, tmp);
    free(tmp);
    return r;
}

struct fetch {
    struct dt_registry *reg;
    const char *host, *repo, *digest;
    uint64_t size;
    int fd;               /* the pipe's write end: closed by the thread */
    int r;
    struct dt_error *err;
};

static void *
fetch_thread(void *p)
{
    struct fetch *f = p;
    f->r = dt_registry_get_blob(f->reg, f->host, f->repo, f->digest, f->fd, f->size, NULL, NULL,
                                &f->err);
    f->fd = safe_close(f->fd);
    return NULL;
}

int
dt_image_pull(struct dt_imgstore *s, const char *refstr, const struct dt_pull_opts *o,
              struct dt_image *ret, struct dt_error **err)
{
    _cleanup_(dt_image_ref_freep) struct dt_image_ref *ref = NULL;
    _cleanup_(dt_registry_freep) struct dt_registry *reg = NULL;
    _cleanup_(dt_oci_manifest_freep) struct dt_oci_manifest *m = NULL;
    _cleanup_(dt_oci_config_freep) struct dt_oci_config *cfg = NULL;
    _cleanup_free_ char *body = NULL, *mt = NULL, *digest = NULL, *cfgbuf = NULL;
    int log_fd = o ? o->log_fd : -1;
    size_t len = 0;
    int r;

    r = dt_image_ref_parse(refstr, &ref, err);
    if (r < 0)
        return r;
    const char *host = dt_image_ref_api_host(ref);
    struct dt_registry_opts ro = {
        .username = o ? o->username : NULL,
        .password = o ? o->password : NULL,
        .scheme = o && o->insecure ? DT_REGISTRY_SCHEME_HTTP : DT_REGISTRY_SCHEME_AUTO,
        .ca_file = o ? o->ca_file : NULL,
    };
    r = dt_registry_new(&ro, &reg, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *canon = dt_image_ref_string(ref);
    fd_printf(log_fd, "Pulling %s\n", canon);
    r = dt_registry_get_manifest(reg, host, ref->repository, dt_image_ref_reference(ref),
                                 DT_OCI_ACCEPT, &body, &len, &mt, &digest, err);
    if (r >= 0)
        r = dt_oci_manifest_parse(body, len, mt, &m, err);
    if (r >= 0 && m->kind == DT_OCI_KIND_INDEX) {
        const struct dt_oci_descriptor *d = NULL;
        r = dt_oci_index_pick(m, "linux", "amd64", NULL, &d, err);
        if (r >= 0) {
            _cleanup_free_ char *want = xstrdup(d->digest);
            free(body);
            free(mt);
            free(digest);
            body = mt = digest = NULL;
            dt_oci_manifest_free(TAKE_PTR(m));
            r = dt_registry_get_manifest(reg, host, ref->repository, want, DT_OCI_ACCEPT, &body,
                                         &len, &mt, &digest, err);
            if (r >= 0)
                r = dt_oci_manifest_parse(body, len, mt, &m, err);
            if (r >= 0 && m->kind != DT_OCI_KIND_MANIFEST)
                r = dt_error_set(err, EINVAL, "%s: the index points at another index", canon);
        }
    }
    if (r < 0)
        return dt_error_wrap(err, "pull %s", canon);
    fd_printf(log_fd, "Digest: %s\n", digest);

    /* The config (small): through a memfd. */
    if (m->config.size > DT_OCI_CONFIG_MAX)
        return dt_error_set(err, EFBIG, "pull %s: the image config is too large", canon);
    {
        _cleanup_close_ int mfd = memfd_create("config", MFD_CLOEXEC);
        if (mfd < 0)
            return dt_error_errno(err, errno, "memfd");
        r = dt_registry_get_blob(reg, host, ref->repository, m->config.digest, mfd,
                                 m->config.size, NULL, NULL, err);
        if (r >= 0 && lseek(mfd, 0, SEEK_SET) < 0)
            r = -errno;
        if (r >= 0)
            r = read_fd_all(mfd, DT_OCI_CONFIG_MAX, &cfgbuf, &len);
        if (r >= 0)
            r = dt_oci_config_parse(cfgbuf, len, &cfg, err);
        if (r < 0)
            return dt_error_wrap(err, "pull %s: config", canon);
    }
    if (cfg->n_diff_ids != m->n_layers)
        return dt_error_set(err, EINVAL, "pull %s: the config lists %zu layers, the manifest %zu",
                            canon, cfg->n_diff_ids, m->n_layers);

    for (size_t i = 0; i < m->n_layers; i++) {
        const struct dt_oci_descriptor *l = &m->layers[i];
        const char *diff_id = cfg->diff_ids[i];
        struct dt_layer_result res;
        int p[2];

        if (dt_imgstore_has_layer(s, diff_id + 7)) {
            fd_printf(log_fd, "%.19s: already exists\n", l->digest + 7);
            continue;
        }
        fd_printf(log_fd, "%.19s: pulling (%llu bytes)\n", l->digest + 7,
              (unsigned long long) l->size);
        if (pipe2(p, O_CLOEXEC) < 0)
            return dt_error_errno(err, errno, "pipe");
        /* 1 MiB in flight instead of 64 KiB: fewer wake-ups between downloader and extractor
         * (best effort: the limit is /proc/sys/fs/pipe-max-size). */
        (void) fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
        struct fetch f = { .reg = reg, .host = host, .repo = ref->repository,
                           .digest = l->digest, .size = l->size, .fd = p[1] };
        pthread_t t;
        if ((r = pthread_create(&t, NULL, fetch_thread, &f)) != 0) {
            safe_close(p[0]);
            safe_close(p[1]);
            return dt_error_errno(err, r, "start a download thread");
        }
        char *tmp = NULL;
        r = unpack_layer(s, p[0], diff_id, &res, &tmp, err);
        /* Unblock the downloader when the extractor stopped early. */
        safe_close(p[0]);
        pthread_join(t, NULL);
        if (f.r < 0) {
            /* The download's error explains an extractor's "truncated stream" best. */
            if (err && *err) {
                dt_error_free(*err);
                *err = NULL;
            }
            if (err)
                *err = TAKE_PTR(f.err);
            r = f.r;
        }
        dt_error_free(f.err);
        r = settle_layer(s, tmp, diff_id, r, err);
        if (r < 0)
            return dt_error_wrap(err, "pull %s: layer %.19s", canon, l->digest + 7);
        fd_printf(log_fd, "%.19s: done (%llu bytes unpacked)\n", l->digest + 7,
              (unsigned long long) res.unpacked_bytes);
    }
    image_from_config(cfg, digest, ret);
    add_sizes(s, ret);
    fd_printf(log_fd, "Pulled %s (%llu bytes)\n", canon, (unsigned long long) ret->size_bytes);
    return 0;
}

int
dt_image_import(struct dt_imgstore *s, const char *path, const char *name, int log_fd,
                struct dt_image *ret, struct dt_error **err)
{
    _cleanup_(dt_oci_archive_freep) struct dt_oci_archive *a = NULL;
    const struct dt_oci_archive_image *img = NULL;
    int r;

    r = dt_oci_archive_open(path, &a, err);
    if (r >= 0)
        r = dt_oci_archive_select(a, name, &img, err);
    if (r < 0)
        return r;
    fd_printf(log_fd, "Importing %s (%zu layers)\n", name ? name : path, img->n_layers);
    for (size_t i = 0; i < img->n_layers; i++) {
        const struct dt_oci_archive_layer *l = &img->layers[i];
        struct dt_oci_stream *st = NULL;
        struct dt_layer_result res;
        int fd = -EBADF, k;

        if (dt_imgstore_has_layer(s, l->diff_id + 7)) {
            fd_printf(log_fd, "%.19s: already exists\n", l->diff_id + 7);
            continue;
        }
        r = dt_oci_stream_open(&l->blob, l->digest, &fd, &st, err);
        if (r < 0)
            return r;
        char *tmp = NULL;
        r = unpack_layer(s, fd, l->diff_id, &res, &tmp, err);
        safe_close(fd);
        k = dt_oci_stream_finish(st, r < 0 ? NULL : err);
        if (r >= 0 && k < 0)
            r = k;
        r = settle_layer(s, tmp, l->diff_id, r, err);
        if (r < 0)
            return dt_error_wrap(err, "import %s: layer %.19s", path, l->digest + 7);
        fd_printf(log_fd, "%.19s: done (%llu bytes unpacked)\n", l->diff_id + 7,
              (unsigned long long) res.unpacked_bytes);
    }
    image_from_config(img->config, img->config_digest, ret);
    add_sizes(s, ret);
    return 0;
}
