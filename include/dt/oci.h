/* SPDX-License-Identifier: Apache-2.0 */
/* OCI / Docker image formats: digests, image references, manifests, image configs (pure parsers,
 * no I/O), and reading images out of local archives (`docker save` tarballs, OCI archives and OCI
 * layout directories). */
#ifndef DT_OCI_H
#define DT_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

/* ---- Limits (every size an outside party controls) ---- */
#define DT_OCI_MANIFEST_MAX   (4u * 1024 * 1024) /* manifest or index body */
#define DT_OCI_CONFIG_MAX     (8u * 1024 * 1024) /* image config body */
#define DT_OCI_LAYERS_MAX     1000               /* layers per manifest, diff_ids per config */
#define DT_OCI_INDEX_MAX      1000               /* entries per index */
#define DT_OCI_REF_MAX        255                /* registry/repository name length */
#define DT_OCI_ARCHIVE_MEMBERS_MAX 100000        /* members in a local tar archive */

/* ---- Digests ---- */

/* "sha256:" + 64 hex + NUL. */
#define DT_DIGEST_STRLEN (7 + 64)
#define DT_DIGEST_BUFSZ  (DT_DIGEST_STRLEN + 1)

/* Check that S is "sha256:<64 lowercase hex>". Returns 0; -ENOTSUP for a well-formed digest of
 * another algorithm ("sha512:..."); -EINVAL otherwise. *err names the digest. */
int dt_digest_validate(const char *s, struct dt_error **err);

/* Write the "sha256:<hex>" digest of LEN bytes at P to OUT. */
void dt_digest_buffer(const void *p, size_t len, char out[DT_DIGEST_BUFSZ]);

/* Incremental sha256 for streaming. init; update*; final (writes OUT and releases the context).
 * dt_hasher_done() releases without a result (for error paths; safe after final, safe twice). */
struct dt_hasher {
    void *ctx; /* EVP_MD_CTX */
};
void dt_hasher_init(struct dt_hasher *h);
void dt_hasher_update(struct dt_hasher *h, const void *p, size_t len);
void dt_hasher_final(struct dt_hasher *h, char out[DT_DIGEST_BUFSZ]);
void dt_hasher_done(struct dt_hasher *h);

/* ---- Image references (Docker's rules, distribution/reference grammar) ---- */

struct dt_image_ref {
    char *registry;   /* "docker.io", "localhost:5000", "ghcr.io" */
    char *repository; /* "library/ubuntu", "x/y" */
    char *tag;        /* "latest" when neither tag nor digest was given; NULL when only a digest */
    char *digest;     /* "sha256:..." or NULL; when set it wins over the tag */
};

/* Parse S ("ubuntu", "user/app:1", "localhost:5000/x/y:tag", "127.0.0.1:5000/x@sha256:...").
 * Returns 0 and a new object in *ret (free with dt_image_ref_free()), or -EINVAL (-ENOTSUP for a
 * non-sha256 digest) with *err naming S. */
int dt_image_ref_parse(const char *s, struct dt_image_ref **ret, struct dt_error **err);
void dt_image_ref_free(struct dt_image_ref *r);
static inline void
dt_image_ref_freep(struct dt_image_ref **r)
{
    dt_image_ref_free(*r);
}
/* Host (with port) to send registry API requests to: "registry-1.docker.io" for "docker.io",
 * otherwise the registry itself. Borrowed, valid as long as R. */
const char *dt_image_ref_api_host(const struct dt_image_ref *r);
/* Canonical "registry/repository[:tag][@digest]". Returns a malloc'ed string. */
char *dt_image_ref_string(const struct dt_image_ref *r);
/* What to put in the manifest URL: the digest when set, else the tag. Borrowed. */
const char *dt_image_ref_reference(const struct dt_image_ref *r);

/* ---- Manifests and indexes ---- */

#define DT_OCI_MT_MANIFEST        "application/vnd.oci.image.manifest.v1+json"
#define DT_OCI_MT_INDEX           "application/vnd.oci.image.index.v1+json"
#define DT_OCI_MT_CONFIG          "application/vnd.oci.image.config.v1+json"
#define DT_DOCKER_MT_MANIFEST     "application/vnd.docker.distribution.manifest.v2+json"
#define DT_DOCKER_MT_LIST         "application/vnd.docker.distribution.manifest.list.v2+json"
#define DT_DOCKER_MT_CONFIG       "application/vnd.docker.container.image.v1+json"

/* The Accept header value for manifest requests (no schema 1). */
#define DT_OCI_ACCEPT                                                                              \
    DT_OCI_MT_INDEX ", " DT_OCI_MT_MANIFEST ", " DT_DOCKER_MT_LIST ", " DT_DOCKER_MT_MANIFEST

enum dt_oci_kind {
    DT_OCI_KIND_MANIFEST,
    DT_OCI_KIND_INDEX,
};

/* Compression implied by a layer media type (the bytes are the final word; see image-common). */
enum dt_oci_compression {
    DT_OCI_COMPRESSION_NONE,
    DT_OCI_COMPRESSION_GZIP,
    DT_OCI_COMPRESSION_ZSTD,
};

struct dt_oci_platform {
    char *os;           /* NULL when absent */
    char *architecture; /* NULL when absent */
    char *variant;      /* NULL when absent */
};

struct dt_oci_descriptor {
    char *media_type;                    /* never NULL */
    char *digest;                        /* validated sha256 digest */
    uint64_t size;
    enum dt_oci_compression compression; /* layers only */
    struct dt_oci_platform platform;     /* index entries only (all NULL otherwise) */
};

struct dt_oci_manifest {
    enum dt_oci_kind kind;
    char *media_type;                   /* the type it was parsed as */
    struct dt_oci_descriptor config;    /* manifest only */
    struct dt_oci_descriptor *layers;   /* manifest only, in order, base first */
    size_t n_layers;
    struct dt_oci_descriptor *manifests; /* index only */
    size_t n_manifests;
};

/* Parse a manifest or index BODY of LEN bytes (≤ DT_OCI_MANIFEST_MAX). CONTENT_TYPE is the HTTP
 * Content-Type (parameters ignored) and may be NULL or generic: then the body's mediaType, then
 * its shape decides. Docker schema 1 → -ENOTSUP; malformed, bad digests, limits → -EINVAL;
 * non-image artifacts (unknown config or layer types) → -ENOTSUP. Returns 0 and a new object in
 * *ret (free with dt_oci_manifest_free()). */
int dt_oci_manifest_parse(const void *body, size_t len, const char *content_type,
                          struct dt_oci_manifest **ret, struct dt_error **err);
void dt_oci_manifest_free(struct dt_oci_manifest *m);
static inline void
dt_oci_manifest_freep(struct dt_oci_manifest **m)
{
    dt_oci_manifest_free(*m);
}

/* From index IDX pick the entry for OS/ARCH (NULL → "linux"/"amd64"); VARIANT is compared only
 * when not NULL. Returns 0 with *ret borrowed from IDX, or -ENOENT with *err listing the
 * platforms available ("no linux/arm64 image; available: linux/amd64, linux/arm/v7"). */
int dt_oci_index_pick(const struct dt_oci_manifest *idx, const char *os, const char *arch,
                      const char *variant, const struct dt_oci_descriptor **ret,
                      struct dt_error **err);

/* ---- Image config ---- */

struct dt_oci_label {
    char *key;
    char *value;
};

/* String arrays are NULL-terminated. For entrypoint and cmd, NULL means "not set" and an empty
 * array means "set to []" (Docker distinguishes them). */
struct dt_oci_config {
    char *architecture; /* NULL when absent */
    char *os;
    char *variant;
    char *created;      /* RFC 3339, NULL when absent */
    char *user;
    char **env;         /* "K=V" entries; NULL when absent */
    char **entrypoint;
    char **cmd;
    char *working_dir;
    char **exposed_ports; /* keys: "80/tcp" */
    struct dt_oci_label *labels;
    size_t n_labels;
    char *stop_signal;
    char **diff_ids;    /* validated digests, base layer first */
    size_t n_diff_ids;
};

/* Parse an image config (OCI or Docker) BODY of LEN bytes (≤ DT_OCI_CONFIG_MAX). Returns 0 and a
 * new object in *ret (free with dt_oci_config_free()), or -EINVAL with *err. */
int dt_oci_config_parse(const void *body, size_t len, struct dt_oci_config **ret,
                        struct dt_error **err);
void dt_oci_config_free(struct dt_oci_config *c);
static inline void
dt_oci_config_freep(struct dt_oci_config **c)
{
    dt_oci_config_free(*c);
}
/* Serialise C to a config JSON (compact, keys sorted; history omitted). Returns a malloc'ed
 * NUL-terminated string; its length in *ret_len when not NULL. */
char *dt_oci_config_to_json(const struct dt_oci_config *c, size_t *ret_len);

/* ---- Local archives: docker save, OCI archive, OCI layout directory ---- */

/* A byte range of a file: LENGTH bytes at OFFSET of FD. FD is borrowed from the archive (valid
 * until dt_oci_archive_free()); read it with pread only (its file offset is shared). */
struct dt_oci_window {
    int fd;
    uint64_t offset;
    uint64_t length;
};

struct dt_oci_archive_layer {
    char *digest;     /* digest of the blob bytes: OCI: from the manifest; docker save: diff_id */
    char *media_type; /* layer media type; docker save: the OCI uncompressed tar type */
    enum dt_oci_compression compression;
    char *diff_id;    /* from the config */
    struct dt_oci_window blob;
};

struct dt_oci_archive_image {
    char **names;      /* RepoTags or OCI ref names as written; may be empty, never NULL */
    char *config_digest;
    char *config_json; /* NUL-terminated, verified against config_digest */
    size_t config_len;
    struct dt_oci_config *config;
    struct dt_oci_archive_layer *layers;
    size_t n_layers;
};

struct dt_oci_archive;

/* Open PATH: an uncompressed tar file (docker save, oci-archive) or an OCI layout directory.
 * Reads and validates the index, manifests and configs (digests verified) of every image; layer
 * blobs are located but not read. Returns 0 and a new object (free with dt_oci_archive_free()),
 * or -errno with *err naming PATH and the bad member. */
int dt_oci_archive_open(const char *path, struct dt_oci_archive **ret, struct dt_error **err);
/* Same for an open seekable tar file FD (borrowed: the archive keeps a dup). */
int dt_oci_archive_open_fd(int fd, const char *name, struct dt_oci_archive **ret,
                           struct dt_error **err);
void dt_oci_archive_free(struct dt_oci_archive *a);
static inline void
dt_oci_archive_freep(struct dt_oci_archive **a)
{
    dt_oci_archive_free(*a);
}

size_t dt_oci_archive_n_images(const struct dt_oci_archive *a);
/* Borrowed, valid until dt_oci_archive_free(). */
const struct dt_oci_archive_image *dt_oci_archive_image(const struct dt_oci_archive *a, size_t i);
/* Choose the image named NAME (compared to each name as given, and after normalising both with
 * dt_image_ref_parse, so "ubuntu" finds "docker.io/library/ubuntu:latest"); NAME NULL → the only
 * image. -ENOENT (listing names) or -EINVAL (several images, no name). *ret borrowed. */
int dt_oci_archive_select(const struct dt_oci_archive *a, const char *name,
                          const struct dt_oci_archive_image **ret, struct dt_error **err);

/* Copy window W to OUT_FD (blocking writes) while hashing; when DIGEST is not NULL and the
 * bytes do not match, -EBADMSG (after everything was written: the caller must discard what it
 * produced). Returns 0 or -errno with *err. */
int dt_oci_window_copy(const struct dt_oci_window *w, int out_fd, const char *digest,
                       struct dt_error **err);

/* A reader fd for W fed by a thread (pread → pipe): for code that consumes an fd to EOF, such as
 * the layer extractor. *ret_fd (O_CLOEXEC, owned by the caller) yields exactly the window's
 * bytes. After the consumer is done (read to EOF, or gave up), CLOSE *ret_fd, then call
 * dt_oci_stream_finish(): it joins the thread, frees S and returns 0 when all bytes were
 * delivered and match DIGEST (when not NULL), -EBADMSG on a mismatch (the consumer has then
 * already seen all bytes: discard what it produced), -EPIPE if the reader closed early, -EIO if
 * the file was shorter than the window. W's fd must stay open (the archive alive) until finish.
 * A consumer that stops reading without closing the fd makes finish wait forever. */
struct dt_oci_stream;
int dt_oci_stream_open(const struct dt_oci_window *w, const char *digest, int *ret_fd,
                       struct dt_oci_stream **ret, struct dt_error **err);
int dt_oci_stream_finish(struct dt_oci_stream *s, struct dt_error **err);

#endif
