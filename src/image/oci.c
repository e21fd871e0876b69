/* SPDX-License-Identifier: Apache-2.0 */
/* Pure parsers for the OCI / Docker image formats: sha256 digests, image references with
 * Docker's defaulting rules, manifests and indexes (OCI and Docker v2 schema 2), and image
 * configs (both directions). No I/O: bodies come from the registry client or an archive. */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt/oci.h"
#include "dt/xalloc.h"

#include "dt/banned.h"

/* ---- Digests ---- */

static bool
is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int
dt_digest_validate(const char *s, struct dt_error **err)
{
    const char *colon;

    if (!s)
        return dt_error_set(err, EINVAL, "missing digest");
    colon = strchr(s, ':');
    if (!colon || colon == s)
        return dt_error_set(err, EINVAL, "invalid digest '%.80s': expected 'sha256:<hex>'", s);
    if ((size_t)(colon - s) != 6 || memcmp(s, "sha256", 6) != 0) {
        /* distribution's grammar for the algorithm part: [a-z0-9]+([+._-][a-z0-9]+)* */
        for (const char *p = s; p < colon; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("+._-", *p)))
                return dt_error_set(err, EINVAL, "invalid digest '%.80s'", s);
        return dt_error_set(err, ENOTSUP,
                            "unsupported digest algorithm '%.*s' in '%.80s': only sha256 is "
                            "supported",
                            (int)(colon - s), s, s);
    }
    if (strlen(colon + 1) != 64 || !is_lower_hex(colon + 1, 64))
        return dt_error_set(err, EINVAL,
                            "invalid digest '%.80s': expected 64 lowercase hex characters", s);
    return 0;
}

static void
hex_encode(const unsigned char *md, unsigned n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

void
dt_hasher_init(struct dt_hasher *h)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        DT_BUG("EVP sha256 init failed");
    h->ctx = ctx;
}

void
dt_hasher_update(struct dt_hasher *h, const void *p, size_t len)
{
    DT_ASSERT(h->ctx);
    if (len > 0 && EVP_DigestUpdate(h->ctx, p, len) != 1)
        DT_BUG("EVP sha256 update failed");
}

void
dt_hasher_final(struct dt_hasher *h, char out[DT_DIGEST_BUFSZ])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    DT_ASSERT(h->ctx);
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
        DT_BUG("EVP sha256 final failed");
    memcpy(out, "sha256:", 7);
    hex_encode(md, n, out + 7);
    dt_hasher_done(h);
}

void
dt_hasher_done(struct dt_hasher *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void
dt_digest_buffer(const void *p, size_t len, char out[DT_DIGEST_BUFSZ])
{
    struct dt_hasher h;

    dt_hasher_init(&h);
    dt_hasher_update(&h, p, len);
    dt_hasher_final(&h, out);
}

/* ---- Image references ---- */

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component: [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)* */
static bool
valid_path_component(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    while (i < n) {
        if (is_lower_alnum(s[i])) {
            i++;
            continue;
        }
        /* A separator run, followed by an alnum (guaranteed by the last-char check). */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i >= n || !is_lower_alnum(s[i]))
            return false;
    }
    return true;
}

/* Registry host[:port]: domain components [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])? joined by '.',
 * or a bracketed IPv6 address; optional :port digits. */
static bool
valid_registry(const char *s, size_t n)
{
    size_t host_end = n;
    const char *colon;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return false;
        for (const char *p = s + 1; p < rb; p++)
            if (!(is_lower_hex(p, 1) || (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return false;
        host_end = (size_t)(rb - s) + 1;
        if (host_end != n && s[host_end] != ':')
            return false;
    } else {
        colon = memchr(s, ':', n);
        if (colon)
            host_end = (size_t)(colon - s);
        size_t start = 0;
        for (size_t i = 0; i <= host_end; i++) {
            if (i == host_end || s[i] == '.') {
                size_t len = i - start;
                if (len == 0 || s[start] == '-' || s[i - 1] == '-')
                    return false;
                start = i + 1;
                continue;
            }
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return false;
        }
    }
    if (host_end < n) {
        /* ":port" */
        if (host_end + 1 >= n || n - host_end - 1 > 5)
            return false;
        for (size_t i = host_end + 1; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return false;
    }
    return true;
}

static bool
valid_tag(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_';
        if (!word && (i == 0 || (c != '.' && c != '-')))
            return false;
    }
    return true;
}

void
dt_image_ref_free(struct dt_image_ref *r)
{
    if (!r)
        return;
    free(r->registry);
    free(r->repository);
    free(r->tag);
    free(r->digest);
    free(r);
}

int
dt_image_ref_parse(const char *s, struct dt_image_ref **ret, struct dt_error **err)
{
    _cleanup_(dt_image_ref_freep) struct dt_image_ref *r = NULL;
    _cleanup_free_ char *name = NULL;
    const char *at, *slash, *last_slash, *colon;
    size_t name_len;
    int k;

    if (!s || !*s)
        return dt_error_set(err, EINVAL, "empty image reference");
    if (strlen(s) > 4096)
        return dt_error_set(err, EINVAL, "image reference too long");

    r = xcalloc(1, sizeof(*r));
    at = strchr(s, '@');
    name_len = at ? (size_t)(at - s) : strlen(s);
    if (at) {
        k = dt_digest_validate(at + 1, err);
        if (k < 0)
            return dt_error_wrap(err, "image reference '%s'", s);
        r->digest = xstrdup(at + 1);
    }
    name = xstrndup(s, name_len);

    /* The tag is after the last ':' that follows the last '/' (a ':' before it is a port). */
    last_slash = strrchr(name, '/');
    colon = strrchr(last_slash ? last_slash : name, ':');
    if (colon) {
        if (!valid_tag(colon + 1))
            return dt_error_set(err, EINVAL, "invalid tag in image reference '%s'", s);
        r->tag = xstrdup(colon + 1);
        name[colon - name] = '\0';
    }

    /* Domain: the first component when it has '.' or ':' or is "localhost" (Docker's rule). */
    slash = strchr(name, '/');
    if (slash && (memchr(name, '.', (size_t)(slash - name)) ||
                  memchr(name, ':', (size_t)(slash - name)) ||
                  ((size_t)(slash - name) == 9 && memcmp(name, "localhost", 9) == 0))) {
        if (!valid_registry(name, (size_t)(slash - name)))
            return dt_error_set(err, EINVAL, "invalid registry in image reference '%s'", s);
        r->registry = xstrndup(name, (size_t)(slash - name));
        r->repository = xstrdup(slash + 1);
    } else {
        r->registry = xstrdup("docker.io");
        r->repository = slash ? xstrdup(name) : xasprintf("library/%s", name);
    }
    if (strcmp(r->registry, "index.docker.io") == 0) {
        free(r->registry);
        r->registry = xstrdup("docker.io");
    }
    if (strcmp(r->registry, "docker.io") == 0 && !strchr(r->repository, '/')) {
        char *p = xasprintf("library/%s", r->repository);
        free(r->repository);
        r->repository = p;
    }

    /* Path components. */
    for (const char *p = r->repository;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!valid_path_component(p, n)) {
            for (size_t i = 0; i < n; i++)
                if (p[i] >= 'A' && p[i] <= 'Z')
                    return dt_error_set(err, EINVAL,
                                        "invalid image reference '%s': repository name must be "
                                        "lowercase",
                                        s);
            return dt_error_set(err, EINVAL, "invalid image reference '%s'", s);
        }
        if (!e)
            break;
        p = e + 1;
    }
    if (strlen(r->registry) + 1 + strlen(r->repository) > DT_OCI_REF_MAX)
        return dt_error_set(err, EINVAL, "image reference '%.80s...' too long (> %d)", s,
                            DT_OCI_REF_MAX);

    if (!r->tag && !r->digest)
        r->tag = xstrdup("latest");
    *ret = TAKE_PTR(r);
    return 0;
}

const char *
dt_image_ref_api_host(const struct dt_image_ref *r)
{
    if (strcmp(r->registry, "docker.io") == 0)
        return "registry-1.docker.io";
    return r->registry;
}

const char *
dt_image_ref_reference(const struct dt_image_ref *r)
{
    return r->digest ? r->digest : r->tag;
}

char *
dt_image_ref_string(const struct dt_image_ref *r)
{
    return xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

/* ---- JSON helpers ---- */

static int
load_json(const void *body, size_t len, size_t max, const char *what, json_t **ret,
          struct dt_error **err)
{
    json_error_t jerr;
    json_t *j;

    if (len > max)
        return dt_error_set(err, EFBIG, "%s too large (%zu bytes, limit %zu)", what, len, max);
    /* Duplicate keys make a document mean different things to different parsers: reject. */
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return dt_error_set(err, EINVAL, "%s: invalid JSON at line %d: %s", what, jerr.line,
                            jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return dt_error_set(err, EINVAL, "%s: not a JSON object", what);
    }
    *ret = j;
    return 0;
}

/* jansson.h provides json_decrefp(). */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Optional string member: absent/null → NULL; wrong type → -EINVAL. */
static int
get_opt_string(json_t *obj, const char *key, const char *what, char **ret, struct dt_error **err)
{
    json_t *v = json_object_get(obj, key);

    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dt_error_set(err, EINVAL, "%s: '%s' is not a string", what, key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return dt_error_set(err, EINVAL, "%s: '%s' contains a NUL byte", what, key);
    *ret = xstrdup(json_string_value(v));
    return 0;
}

/* Optional array of strings: absent/null → NULL; [] → empty strv. */
static int
get_opt_strv(json_t *obj, const char *key, const char *what, char ***ret, struct dt_error **err)
{
    json_t *v = json_object_get(obj, key), *e;
    char **l;
    size_t i;

    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return dt_error_set(err, EINVAL, "%s: '%s' is not an array", what, key);
    l = xcalloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            strv_free(l);
            return dt_error_set(err, EINVAL, "%s: '%s' has a non-string element", what, key);
        }
        l[i] = xstrdup(json_string_value(e));
    }
    *ret = l;
    return 0;
}

/* ---- Manifests ---- */

static const char *const layer_types[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

static int
layer_compression(const char *mt, enum dt_oci_compression *ret)
{
    for (size_t i = 0; i < ELEMENTSOF(layer_types); i++) {
        if (strcmp(mt, layer_types[i]) != 0)
            continue;
        size_t n = strlen(mt);
        if (n > 5 && strcmp(mt + n - 5, "+zstd") == 0)
            *ret = DT_OCI_COMPRESSION_ZSTD;
        else if (n > 4 && (strcmp(mt + n - 5, "+gzip") == 0 || strcmp(mt + n - 3, ".gz") == 0 ||
                           strcmp(mt + n - 5, ".gzip") == 0))
            *ret = DT_OCI_COMPRESSION_GZIP;
        else
            *ret = DT_OCI_COMPRESSION_NONE;
        return 0;
    }
    return -ENOTSUP;
}

static void
platform_done(struct dt_oci_platform *p)
{
    free(p->os);
    free(p->architecture);
    free(p->variant);
}

static void
descriptor_done(struct dt_oci_descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    platform_done(&d->platform);
}

void
dt_oci_manifest_free(struct dt_oci_manifest *m)
{
    if (!m)
        return;
    free(m->media_type);
    descriptor_done(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_done(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        descriptor_done(&m->manifests[i]);
    free(m->manifests);
    free(m);
}

/* Fill D from descriptor object V: mediaType, a valid digest and a non-negative size are
 * required (urls, annotations and the rest are ignored). */
static int
parse_descriptor(json_t *v, const char *what, struct dt_oci_descriptor *d, struct dt_error **err)
{
    json_t *size;
    int r;

    if (!json_is_object(v))
        return dt_error_set(err, EINVAL, "%s: not an object", what);
    r = get_opt_string(v, "mediaType", what, &d->media_type, err);
    if (r < 0)
        return r;
    if (!d->media_type)
        return dt_error_set(err, EINVAL, "%s: missing mediaType", what);
    r = get_opt_string(v, "digest", what, &d->digest, err);
    if (r < 0)
        return r;
    r = dt_digest_validate(d->digest, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", what);
    size = json_object_get(v, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return dt_error_set(err, EINVAL, "%s: size missing or negative", what);
    d->size = (uint64_t)json_integer_value(size);
    return 0;
}

static bool
is_schema1(const char *mt)
{
    return strcmp(mt, "application/vnd.docker.distribution.manifest.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.v1+prettyjws") == 0;
}

static int
kind_of_media_type(const char *mt, enum dt_oci_kind *ret)
{
    if (strcmp(mt, DT_OCI_MT_MANIFEST) == 0 || strcmp(mt, DT_DOCKER_MT_MANIFEST) == 0)
        *ret = DT_OCI_KIND_MANIFEST;
    else if (strcmp(mt, DT_OCI_MT_INDEX) == 0 || strcmp(mt, DT_DOCKER_MT_LIST) == 0)
        *ret = DT_OCI_KIND_INDEX;
    else
        return -ENOENT;
    return 0;
}

#define SCHEMA1_MSG                                                                                \
    "Docker image manifest schema 1 is not supported (deprecated); push the image again with a "  \
    "current Docker or use an OCI/schema 2 manifest"

int
dt_oci_manifest_parse(const void *body, size_t len, const char *content_type,
                      struct dt_oci_manifest **ret, struct dt_error **err)
{
    _cleanup_(dt_oci_manifest_freep) struct dt_oci_manifest *m = NULL;
    _cleanup_json_ json_t *j = NULL;
    _cleanup_free_ char *ct = NULL, *body_mt = NULL;
    json_t *sv, *arr, *e;
    size_t i;
    int r;

    r = load_json(body, len, DT_OCI_MANIFEST_MAX, "manifest", &j, err);
    if (r < 0)
        return r;
    m = xcalloc(1, sizeof(*m));

    sv = json_object_get(j, "schemaVersion");
    if (json_is_integer(sv) && json_integer_value(sv) == 1)
        return dt_error_set(err, ENOTSUP, SCHEMA1_MSG);
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return dt_error_set(err, EINVAL, "manifest: schemaVersion missing or not 2");
    r = get_opt_string(j, "mediaType", "manifest", &body_mt, err);
    if (r < 0)
        return r;

    if (content_type) {
        size_t n = strcspn(content_type, "; \t");
        ct = xstrndup(content_type, n);
    }
    if (ct && is_schema1(ct))
        return dt_error_set(err, ENOTSUP, SCHEMA1_MSG);
    if (ct && kind_of_media_type(ct, &m->kind) >= 0) {
        m->media_type = TAKE_PTR(ct);
    } else if (body_mt && kind_of_media_type(body_mt, &m->kind) >= 0) {
        m->media_type = xstrdup(body_mt);
    } else if (body_mt && is_schema1(body_mt)) {
        return dt_error_set(err, ENOTSUP, SCHEMA1_MSG);
    } else if (body_mt) {
        return dt_error_set(err, ENOTSUP, "manifest: unsupported media type '%s'", body_mt);
    } else if (json_object_get(j, "manifests")) {
        m->kind = DT_OCI_KIND_INDEX;
        m->media_type = xstrdup(DT_OCI_MT_INDEX);
    } else if (json_object_get(j, "layers")) {
        m->kind = DT_OCI_KIND_MANIFEST;
        m->media_type = xstrdup(DT_OCI_MT_MANIFEST);
    } else {
        return dt_error_set(err, EINVAL, "manifest: neither an image manifest nor an index");
    }

    if (m->kind == DT_OCI_KIND_INDEX) {
        arr = json_object_get(j, "manifests");
        if (!json_is_array(arr))
            return dt_error_set(err, EINVAL, "index: 'manifests' missing or not an array");
        if (json_array_size(arr) > DT_OCI_INDEX_MAX)
            return dt_error_set(err, E2BIG, "index: too many entries (%zu, limit %d)",
                                json_array_size(arr), DT_OCI_INDEX_MAX);
        m->manifests = xcalloc(json_array_size(arr) + 1, sizeof(*m->manifests));
        json_array_foreach(arr, i, e) {
            char what[64];
            struct dt_oci_descriptor *d = &m->manifests[i];
            json_t *pl;

            m->n_manifests++;
            snprintf(what, sizeof(what), "index entry %zu", i);
            r = parse_descriptor(e, what, d, err);
            if (r < 0)
                return r;
            pl = json_object_get(e, "platform");
            if (pl && !json_is_null(pl)) {
                if (!json_is_object(pl))
                    return dt_error_set(err, EINVAL, "%s: platform is not an object", what);
                if ((r = get_opt_string(pl, "os", what, &d->platform.os, err)) < 0 ||
                    (r = get_opt_string(pl, "architecture", what, &d->platform.architecture,
                                        err)) < 0 ||
                    (r = get_opt_string(pl, "variant", what, &d->platform.variant, err)) < 0)
                    return r;
            }
        }
        *ret = TAKE_PTR(m);
        return 0;
    }

    r = parse_descriptor(json_object_get(j, "config"), "manifest config", &m->config, err);
    if (r < 0)
        return r;
    if (strcmp(m->config.media_type, DT_OCI_MT_CONFIG) != 0 &&
        strcmp(m->config.media_type, DT_DOCKER_MT_CONFIG) != 0)
        return dt_error_set(err, ENOTSUP,
                            "manifest: config media type '%s' is not a container image config "
                            "(an OCI artifact?)",
                            m->config.media_type);
    if (m->config.size > DT_OCI_CONFIG_MAX)
        return dt_error_set(err, EFBIG, "manifest: config too large (%llu bytes, limit %u)",
                            (unsigned long long)m->config.size, DT_OCI_CONFIG_MAX);
    arr = json_object_get(j, "layers");
    if (!json_is_array(arr))
        return dt_error_set(err, EINVAL, "manifest: 'layers' missing or not an array");
    if (json_array_size(arr) > DT_OCI_LAYERS_MAX)
        return dt_error_set(err, E2BIG, "manifest: too many layers (%zu, limit %d)",
                            json_array_size(arr), DT_OCI_LAYERS_MAX);
    m->layers = xcalloc(json_array_size(arr) + 1, sizeof(*m->layers));
    json_array_foreach(arr, i, e) {
        char what[64];
        struct dt_oci_descriptor *d = &m->layers[i];

        m->n_layers++;
        snprintf(what, sizeof(what), "manifest layer %zu", i);
        r = parse_descriptor(e, what, d, err);
        if (r < 0)
            return r;
        if (layer_compression(d->media_type, &d->compression) < 0)
            return dt_error_set(err, ENOTSUP, "%s: unsupported layer media type '%s'", what,
                                d->media_type);
    }
    *ret = TAKE_PTR(m);
    return 0;
}

static bool
platform_is(const struct dt_oci_platform *p, const char *os, const char *arch,
            const char *variant)
{
    if (!p->os || !p->architecture || strcmp(p->os, os) != 0 || strcmp(p->architecture, arch) != 0)
        return false;
    if (variant && (!p->variant || strcmp(p->variant, variant) != 0))
        return false;
    return true;
}

int
dt_oci_index_pick(const struct dt_oci_manifest *idx, const char *os, const char *arch,
                  const char *variant, const struct dt_oci_descriptor **ret,
                  struct dt_error **err)
{
    char list[1024] = "";
    size_t used = 0;

    if (!os)
        os = "linux";
    if (!arch)
        arch = "amd64";
    if (idx->kind != DT_OCI_KIND_INDEX)
        return dt_error_set(err, EINVAL, "not an image index");
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const struct dt_oci_descriptor *d = &idx->manifests[i];
        enum dt_oci_kind k;
        /* Only image manifests qualify (nested indexes are not followed). */
        if (kind_of_media_type(d->media_type, &k) < 0 || k != DT_OCI_KIND_MANIFEST)
            continue;
        if (platform_is(&d->platform, os, arch, variant)) {
            *ret = d;
            return 0;
        }
    }
    for (size_t i = 0; i < idx->n_manifests && used + 1 < sizeof(list); i++) {
        const struct dt_oci_platform *p = &idx->manifests[i].platform;
        int n;
        /* BuildKit attestations are "unknown/unknown": not a platform anyone can run. */
        if (!p->os || !p->architecture || strcmp(p->os, "unknown") == 0)
            continue;
        n = snprintf(list + used, sizeof(list) - used, "%s%s/%s%s%s", used ? ", " : "", p->os,
                     p->architecture, p->variant ? "/" : "", p->variant ? p->variant : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used >= sizeof(list))
        used = sizeof(list) - 1;
    return dt_error_set(err, ENOENT, "no %s/%s%s%s image in the index; available: %s", os, arch,
                        variant ? "/" : "", variant ? variant : "", used ? list : "none");
}

/* ---- Image config ---- */

void
dt_oci_config_free(struct dt_oci_config *c)
{
    if (!c)
        return;
    free(c->architecture);
    free(c->os);
    free(c->variant);
    free(c->created);
    free(c->user);
    strv_free(c->env);
    strv_free(c->entrypoint);
    strv_free(c->cmd);
    free(c->working_dir);
    strv_free(c->exposed_ports);
    for (size_t i = 0; i < c->n_labels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    free(c->labels);
    free(c->stop_signal);
    strv_free(c->diff_ids);
    free(c);
}

int
dt_oci_config_parse(const void *body, size_t len, struct dt_oci_config **ret,
                    struct dt_error **err)
{
    _cleanup_(dt_oci_config_freep) struct dt_oci_config *c = NULL;
    _cleanup_json_ json_t *j = NULL;
    json_t *cfg, *v, *rootfs, *e;
    const char *key;
    size_t i;
    int r;

    r = load_json(body, len, DT_OCI_CONFIG_MAX, "image config", &j, err);
    if (r < 0)
        return r;
    c = xcalloc(1, sizeof(*c));
    if ((r = get_opt_string(j, "architecture", "image config", &c->architecture, err)) < 0 ||
        (r = get_opt_string(j, "os", "image config", &c->os, err)) < 0 ||
        (r = get_opt_string(j, "variant", "image config", &c->variant, err)) < 0 ||
        (r = get_opt_string(j, "created", "image config", &c->created, err)) < 0)
        return r;

    cfg = json_object_get(j, "config");
    if (cfg && !json_is_null(cfg)) {
        const char *w = "image config";
        if (!json_is_object(cfg))
            return dt_error_set(err, EINVAL, "image config: 'config' is not an object");
        if ((r = get_opt_string(cfg, "User", w, &c->user, err)) < 0 ||
            (r = get_opt_strv(cfg, "Env", w, &c->env, err)) < 0 ||
            (r = get_opt_strv(cfg, "Entrypoint", w, &c->entrypoint, err)) < 0 ||
            (r = get_opt_strv(cfg, "Cmd", w, &c->cmd, err)) < 0 ||
            (r = get_opt_string(cfg, "WorkingDir", w, &c->working_dir, err)) < 0 ||
            (r = get_opt_string(cfg, "StopSignal", w, &c->stop_signal, err)) < 0)
            return r;
        v = json_object_get(cfg, "ExposedPorts");
        if (v && !json_is_null(v)) {
            if (!json_is_object(v))
                return dt_error_set(err, EINVAL, "image config: 'ExposedPorts' not an object");
            c->exposed_ports = xcalloc(json_object_size(v) + 1, sizeof(char *));
            i = 0;
            json_object_foreach(v, key, e)
                c->exposed_ports[i++] = xstrdup(key);
        }
        v = json_object_get(cfg, "Labels");
        if (v && !json_is_null(v)) {
            if (!json_is_object(v))
                return dt_error_set(err, EINVAL, "image config: 'Labels' not an object");
            c->labels = xcalloc(json_object_size(v) + 1, sizeof(*c->labels));
            json_object_foreach(v, key, e) {
                if (!json_is_string(e))
                    return dt_error_set(err, EINVAL, "image config: label '%s' not a string",
                                        key);
                c->labels[c->n_labels].key = xstrdup(key);
                c->labels[c->n_labels].value = xstrdup(json_string_value(e));
                c->n_labels++;
            }
        }
    }

    rootfs = json_object_get(j, "rootfs");
    if (!json_is_object(rootfs))
        return dt_error_set(err, EINVAL, "image config: 'rootfs' missing");
    v = json_object_get(rootfs, "type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "layers") != 0)
        return dt_error_set(err, EINVAL, "image config: rootfs.type is not 'layers'");
    v = json_object_get(rootfs, "diff_ids");
    if (!json_is_array(v))
        return dt_error_set(err, EINVAL, "image config: rootfs.diff_ids missing");
    if (json_array_size(v) > DT_OCI_LAYERS_MAX)
        return dt_error_set(err, E2BIG, "image config: too many layers (%zu, limit %d)",
                            json_array_size(v), DT_OCI_LAYERS_MAX);
    c->diff_ids = xcalloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            return dt_error_set(err, EINVAL, "image config: diff_id %zu not a string", i);
        r = dt_digest_validate(json_string_value(e), err);
        if (r < 0)
            return dt_error_wrap(err, "image config: diff_id %zu", i);
        c->diff_ids[c->n_diff_ids++] = xstrdup(json_string_value(e));
    }
    *ret = TAKE_PTR(c);
    return 0;
}

static json_t *
strv_to_json(char *const *l)
{
    json_t *a = json_array();
    for (size_t i = 0; l && l[i]; i++)
        json_array_append_new(a, json_string(l[i]));
    return a;
}

static void
set_opt_string(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

char *
dt_oci_config_to_json(const struct dt_oci_config *c, size_t *ret_len)
{
    _cleanup_json_ json_t *j = json_object();
    json_t *cfg = json_object(), *rootfs = json_object();
    char *s;

    set_opt_string(j, "architecture", c->architecture);
    set_opt_string(j, "os", c->os);
    set_opt_string(j, "variant", c->variant);
    set_opt_string(j, "created", c->created);
    set_opt_string(cfg, "User", c->user);
    if (c->env)
        json_object_set_new(cfg, "Env", strv_to_json(c->env));
    if (c->entrypoint)
        json_object_set_new(cfg, "Entrypoint", strv_to_json(c->entrypoint));
    if (c->cmd)
        json_object_set_new(cfg, "Cmd", strv_to_json(c->cmd));
    set_opt_string(cfg, "WorkingDir", c->working_dir);
    set_opt_string(cfg, "StopSignal", c->stop_signal);
    if (c->exposed_ports) {
        json_t *p = json_object();
        for (size_t i = 0; c->exposed_ports[i]; i++)
            json_object_set_new(p, c->exposed_ports[i], json_object());
        json_object_set_new(cfg, "ExposedPorts", p);
    }
    if (c->labels) {
        json_t *l = json_object();
        for (size_t i = 0; i < c->n_labels; i++)
            json_object_set_new(l, c->labels[i].key, json_string(c->labels[i].value));
        json_object_set_new(cfg, "Labels", l);
    }
    json_object_set_new(j, "config", cfg);
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", strv_to_json(c->diff_ids));
    json_object_set_new(j, "rootfs", rootfs);

    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        DT_BUG("json_dumps failed");
    if (ret_len)
        *ret_len = strlen(s);
    return s;
}
