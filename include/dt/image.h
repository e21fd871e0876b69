/* SPDX-License-Identifier: Apache-2.0 */
/* libdt-image: images as sandboxes use them (layers on disk plus the runtime config), the image
 * store that keeps unpacked layers once for every sandbox, and the ways to get an image: pull,
 * import, build. See docs/design/images.md.
 *
 * Threads: everything here blocks (disk, network, sandboxes for RUN steps) and belongs in a job
 * process or a worker thread, never on an event loop. One dt_imgstore per thread; several
 * processes may share one store directory (layers appear by rename, first one wins). */
#ifndef DT_IMAGE_H
#define DT_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "dt/error.h"

#define DT_LAYER_ID_LEN 64 /* lowercase hex */

/* An image: what a snapshot record keeps (as JSON) and what a sandbox is started from. */
struct dt_image {
    char **layers;        /* NULL-terminated layer ids, BOTTOM first (the OCI order) */
    char **env;           /* NULL-terminated "K=V", or NULL */
    char **entrypoint;    /* NULL-terminated, or NULL */
    char **cmd;           /* NULL-terminated, or NULL */
    char *working_dir;    /* or NULL */
    char *user;           /* or NULL ("name", "uid", "uid:gid") */
    char **exposed_ports; /* NULL-terminated "80/tcp", or NULL */
    char **labels;        /* NULL-terminated "k=v", or NULL */
    char *digest;         /* manifest digest ("sha256:...") or the build's id; may be NULL */
    uint64_t size_bytes;  /* unpacked size of all layers */
};

void dt_image_init(struct dt_image *img);
/* Free what IMG owns and reset it to empty. */
void dt_image_done(struct dt_image *img);
/* Deep copy. */
void dt_image_copy(struct dt_image *dst, const struct dt_image *src);
/* JSON round trip (the form stored in snapshot records). Parsing validates every layer id
 * (64 lowercase hex) and bounds (≤ DT_MAX_LAYERS layers); -EINVAL with *err otherwise. The
 * returned string is malloc'ed. */
char *dt_image_to_json(const struct dt_image *img);
int dt_image_from_json(const char *json, struct dt_image *img, struct dt_error **err);
/* Whether S is a layer id: 64 lowercase hex digits. */
bool dt_layer_id_is_valid(const char *s);

/* ---- the image store ------------------------------------------------------------------- */

struct dt_imgstore;

/* Open (creating if needed, mode 0700) the store at DIR (e.g. DATA_DIR/images). */
int dt_imgstore_open(const char *dir, struct dt_imgstore **ret, struct dt_error **err);
void dt_imgstore_free(struct dt_imgstore *s);
const char *dt_imgstore_dir(const struct dt_imgstore *s);

/* The directory of layer ID (whether or not it exists); malloc'ed. */
char *dt_imgstore_layer_path(const struct dt_imgstore *s, const char *id);
bool dt_imgstore_has_layer(const struct dt_imgstore *s, const char *id);
/* The unpacked size of layer ID as recorded at commit; -ENOENT when the layer is missing. */
int dt_imgstore_layer_size(const struct dt_imgstore *s, const char *id, uint64_t *ret);
/* The runtime's layer list for IMG: NULL-terminated absolute paths, TOPMOST first (what
 * struct dt_plan.layers wants). -ENOENT naming the first missing layer. Free with strv_free. */
int dt_imgstore_image_layers(const struct dt_imgstore *s, const struct dt_image *img,
                             char ***ret, struct dt_error **err);

/* Whether IMG's /etc/passwd (the topmost layer that has one) names user NAME. */
bool dt_imgstore_image_has_user(const struct dt_imgstore *s, const struct dt_image *img,
                                const char *name);

/* Start a new layer: an empty directory under DIR/tmp (mode 0755, owned by root): *RET_PATH
 * (malloc'ed) and an O_DIRECTORY fd to it. Finish with commit or abort. */
int dt_imgstore_layer_begin(struct dt_imgstore *s, char **ret_path, int *ret_dirfd,
                            struct dt_error **err);
/* Make TMP_PATH (from begin) the layer ID: its size is recorded, then it is renamed into place.
 * If ID exists already (another job made it first), TMP_PATH is removed and that is success.
 * TMP_PATH is consumed either way. */
int dt_imgstore_layer_commit(struct dt_imgstore *s, const char *tmp_path, const char *id,
                             struct dt_error **err);
/* Remove an unfinished layer directory. */
void dt_imgstore_layer_abort(struct dt_imgstore *s, const char *tmp_path);
/* Remove everything under DIR/tmp (call when no job runs on this store). */
void dt_imgstore_clean_tmp(struct dt_imgstore *s);

/* Turn DIR, a sandbox's former writable (overlayfs upper) directory, into a layer directory in
 * place: owners shifted down by UID_BASE (the sandbox's host uid of its root; a file whose
 * owner is outside [UID_BASE, UID_BASE + 65536) is an error), overlayfs' private xattrs dropped
 * except trusted.overlay.opaque, whiteouts (char 0/0) kept. Never follows symlinks. */
int dt_layer_from_upper(int dirfd, uint32_t uid_base, struct dt_error **err);

/* Remove every layer whose id is not in KEEP (NULL-terminated). *RET_FREED (may be NULL) gets
 * the bytes recorded for the removed layers. */
int dt_imgstore_gc(struct dt_imgstore *s, char *const *keep, uint64_t *ret_freed,
                   struct dt_error **err);
/* Sum of recorded layer sizes. */
uint64_t dt_imgstore_usage(const struct dt_imgstore *s);

/* The builder's step cache: KEY (64 hex) → VALUE (a small string, ≤ 1 MiB). get: -ENOENT when
 * absent. put: atomic (temp + rename). */
int dt_imgstore_cache_get(const struct dt_imgstore *s, const char *key, char **ret_value);
int dt_imgstore_cache_put(struct dt_imgstore *s, const char *key, const char *value,
                          struct dt_error **err);

/* ---- getting images (src/image/pull.c) ---------------------------------------------------- */

struct dt_pull_opts {
    const char *username;   /* registry credentials, or NULL (anonymous) */
    const char *password;
    bool insecure;          /* plain HTTP (loopback registries always are) */
    const char *ca_file;    /* PEM bundle instead of the system's, or NULL */
    int log_fd;             /* progress lines, or -1 */
};

/* Pull REF ("ubuntu", "127.0.0.1:5000/x/y:tag", "...@sha256:...") for linux/amd64 into the
 * store: manifest (an index picks linux/amd64), config, then every layer not yet in the store,
 * streamed from the registry into the extractor (digest and diff_id both verified). Fills *RET
 * (layers, config). -ENOENT when the image does not exist; -EACCES / -ECONNREFUSED / -EBADMSG
 * as the registry client says; the store keeps nothing half-made. */
int dt_image_pull(struct dt_imgstore *s, const char *ref, const struct dt_pull_opts *o,
                  struct dt_image *ret, struct dt_error **err);
/* Import the image NAME (NULL: the only one) from a `docker save` tarball, an OCI archive or an
 * OCI layout directory at PATH, like a pull (the same layer ids: an imported and a pulled copy
 * of one image share their layers). */
int dt_image_import(struct dt_imgstore *s, const char *path, const char *name, int log_fd,
                    struct dt_image *ret, struct dt_error **err);

/* ---- building (src/image/build.c) --------------------------------------------------------- */

struct dt_runtime;

struct dt_build_opts {
    const char *dockerfile;   /* the Dockerfile's text */
    size_t dockerfile_len;
    const char *context_dir;  /* COPY/ADD sources are relative to it; NULL: none (COPY of a file
                               * fails with a clear error, heredoc COPY works) */
    /* FROM REF that is not an earlier stage: fill *RET (an existing snapshot's image, or a pull).
     * Required. */
    int (*resolve_base)(const char *ref, struct dt_image *ret, void *userdata,
                        struct dt_error **err);
    void *userdata;
    int log_fd;               /* "Step N/M : ..." lines and every RUN's output */
    struct dt_runtime *rt;    /* RUN steps run in sandboxes of this runtime (bridge network) */
    bool no_cache;
};

/* Build the Dockerfile (every stage; the last one is the result) into *RET. RUN steps run in
 * sandboxes (the image's env, user and workdir; ARGs in the env; bridge network); each step's
 * result is cached by (parent, instruction, inputs) in the store, so a rebuild of an unchanged
 * Dockerfile runs nothing. A failing step fails the build: -EINVAL/-ENOTSUP for what the
 * Dockerfile asks and we do not do (with the line), -ECHILD for a RUN that exited non-zero
 * (its output is in the log), or -errno. */
int dt_image_build(struct dt_imgstore *s, const struct dt_build_opts *o, struct dt_image *ret,
                   struct dt_error **err);

#endif
