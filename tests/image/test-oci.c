/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the OCI parsers: digests, image references, manifests/indexes shaped like
 * what Docker Hub and other registries serve, and image configs (including a round trip). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt/oci.h"
#include "dt/xalloc.h"
#include "testlib.h"

#define H64A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define H64C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DA "sha256:" H64A
#define DB "sha256:" H64B
#define DC "sha256:" H64C

static void
test_digest(void **state)
{
    struct dt_error *err = NULL;
    char out[DT_DIGEST_BUFSZ];
    struct dt_hasher h;

    assert_int_equal(dt_digest_validate(DA, NULL), 0);
    assert_int_equal(dt_digest_validate("sha256:" H64A "a", NULL), -EINVAL);
    assert_int_equal(dt_digest_validate("sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                        NULL),
                     -EINVAL);
    assert_int_equal(dt_digest_validate("sha256", NULL), -EINVAL);
    assert_int_equal(dt_digest_validate(":" H64A, NULL), -EINVAL);
    assert_int_equal(dt_digest_validate(NULL, NULL), -EINVAL);
    assert_int_equal(dt_digest_validate("sha512:" H64A H64A, &err), -ENOTSUP);
    assert_non_null(strstr(err->message, "only sha256"));
    dt_error_free(err);

    dt_digest_buffer("abc", 3, out);
    assert_string_equal(out,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    dt_hasher_init(&h);
    dt_hasher_update(&h, "a", 1);
    dt_hasher_update(&h, "", 0);
    dt_hasher_update(&h, "bc", 2);
    dt_hasher_final(&h, out);
    assert_string_equal(out,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    dt_hasher_done(&h); /* safe after final */
    dt_hasher_init(&h);
    dt_hasher_done(&h);
}

static void
check_ref(const char *s, const char *reg, const char *repo, const char *tag, const char *digest,
          const char *canon)
{
    struct dt_image_ref *r = NULL;
    struct dt_error *err = NULL;
    char *c;

    if (dt_image_ref_parse(s, &r, &err) < 0)
        fail_msg("parse '%s': %s", s, err->message);
    assert_string_equal(r->registry, reg);
    assert_string_equal(r->repository, repo);
    if (tag)
        assert_string_equal(r->tag, tag);
    else
        assert_null(r->tag);
    if (digest)
        assert_string_equal(r->digest, digest);
    else
        assert_null(r->digest);
    c = dt_image_ref_string(r);
    assert_string_equal(c, canon);
    free(c);
    dt_image_ref_free(r);
}

static void
bad_ref(const char *s, int code)
{
    struct dt_image_ref *r = NULL;
    struct dt_error *err = NULL;

    if (dt_image_ref_parse(s, &r, &err) != code)
        fail_msg("'%s' should fail with %d", s, code);
    assert_null(r);
    assert_non_null(err);
    dt_error_free(err);
}

static void
test_ref(void **state)
{
    struct dt_image_ref *r = NULL;
    char longname[300];

    check_ref("ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
              "docker.io/library/ubuntu:latest");
    check_ref("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", NULL,
              "docker.io/library/ubuntu:22.04");
    check_ref("user/app:1", "docker.io", "user/app", "1", NULL, "docker.io/user/app:1");
    check_ref("docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
              "docker.io/library/ubuntu:latest");
    check_ref("index.docker.io/library/ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
              "docker.io/library/ubuntu:latest");
    check_ref("localhost:5000/x/y:tag", "localhost:5000", "x/y", "tag", NULL,
              "localhost:5000/x/y:tag");
    check_ref("localhost/x", "localhost", "x", "latest", NULL, "localhost/x:latest");
    check_ref("127.0.0.1:5000/x@" DA, "127.0.0.1:5000", "x", NULL, DA, "127.0.0.1:5000/x@" DA);
    check_ref("ghcr.io/a/b/c:v1.2_3-x@" DB, "ghcr.io", "a/b/c", "v1.2_3-x", DB,
              "ghcr.io/a/b/c:v1.2_3-x@" DB);
    check_ref("my-reg.example.com/a__b/c.d/e---f", "my-reg.example.com", "a__b/c.d/e---f",
              "latest", NULL, "my-reg.example.com/a__b/c.d/e---f:latest");
    check_ref("[::1]:5000/x", "[::1]:5000", "x", "latest", NULL, "[::1]:5000/x:latest");

    assert_int_equal(dt_image_ref_parse("127.0.0.1:5000/x@" DA, &r, NULL), 0);
    assert_string_equal(dt_image_ref_reference(r), DA);
    assert_string_equal(dt_image_ref_api_host(r), "127.0.0.1:5000");
    dt_image_ref_free(r);
    assert_int_equal(dt_image_ref_parse("busybox", &r, NULL), 0);
    assert_string_equal(dt_image_ref_api_host(r), "registry-1.docker.io");
    assert_string_equal(dt_image_ref_reference(r), "latest");
    dt_image_ref_free(r);

    bad_ref("", -EINVAL);
    bad_ref("Ubuntu", -EINVAL);
    bad_ref("user/App", -EINVAL);
    bad_ref("ubuntu:", -EINVAL);
    bad_ref("ubuntu:-x", -EINVAL);
    bad_ref("a//b", -EINVAL);
    bad_ref("a/", -EINVAL);
    bad_ref("/a", -EINVAL);
    bad_ref("a_-b", -EINVAL);
    bad_ref("a___b", -EINVAL);
    bad_ref("a..b", -EINVAL);
    bad_ref("-a", -EINVAL);
    bad_ref("ubuntu@sha256:abc", -EINVAL);
    bad_ref("ubuntu@sha512:" H64A H64A, -ENOTSUP);
    bad_ref("reg-.io/x", -EINVAL);
    bad_ref("reg.io:port/x", -EINVAL);
    bad_ref("reg.io:/x", -EINVAL);
    bad_ref("a b", -EINVAL);
    bad_ref("ubuntu:" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            -EINVAL);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    bad_ref(longname, -EINVAL);
}

/* Docker Hub style index with a BuildKit attestation manifest. */
static const char hub_index[] =
    "{\"manifests\":["
    "{\"annotations\":{\"com.docker.official-images.bashbrew.arch\":\"amd64\"},"
    "\"digest\":\"" DA "\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"size\":424},"
    "{\"digest\":\"" DB "\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"},\"size\":424},"
    "{\"annotations\":{\"vnd.docker.reference.digest\":\"" DA "\","
    "\"vnd.docker.reference.type\":\"attestation-manifest\"},"
    "\"digest\":\"" DC "\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"},\"size\":837}],"
    "\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"schemaVersion\":2}";

static const char docker_v2[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
    "\"size\":1457,\"digest\":\"" DA "\"},"
    "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
    "\"size\":29534055,\"digest\":\"" DB "\"},"
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":0,"
    "\"digest\":\"" DC "\",\"urls\":[\"https://example.com/x\"]}]}";

static const char oci_zstd[] =
    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
    "\"size\":100,\"digest\":\"" DA "\"},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":5,"
    "\"digest\":\"" DB "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"size\":5,\"digest\":\"" DC "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip\",\"size\":5,"
    "\"digest\":\"" DC "\"}],\"annotations\":{\"a\":\"b\"}}";

static struct dt_oci_manifest *
parse_ok(const char *body, const char *ct)
{
    struct dt_oci_manifest *m = NULL;
    struct dt_error *err = NULL;

    if (dt_oci_manifest_parse(body, strlen(body), ct, &m, &err) < 0)
        fail_msg("parse: %s", err->message);
    return m;
}

static int
parse_err(const char *body, const char *ct, char **msg)
{
    struct dt_oci_manifest *m = NULL;
    struct dt_error *err = NULL;
    int r = dt_oci_manifest_parse(body, strlen(body), ct, &m, &err);

    assert_true(r < 0);
    assert_null(m);
    assert_non_null(err);
    if (msg)
        *msg = xstrdup(err->message);
    dt_error_free(err);
    return r;
}

static void
test_manifest(void **state)
{
    struct dt_oci_manifest *m;
    const struct dt_oci_descriptor *d;
    struct dt_error *err = NULL;
    char *msg = NULL;

    m = parse_ok(hub_index, "application/vnd.oci.image.index.v1+json");
    assert_int_equal(m->kind, DT_OCI_KIND_INDEX);
    assert_int_equal(m->n_manifests, 3);
    assert_string_equal(m->manifests[1].platform.variant, "v7");
    assert_int_equal(dt_oci_index_pick(m, NULL, NULL, NULL, &d, NULL), 0);
    assert_string_equal(d->digest, DA);
    assert_int_equal(dt_oci_index_pick(m, "linux", "arm", NULL, &d, NULL), 0);
    assert_string_equal(d->digest, DB);
    assert_int_equal(dt_oci_index_pick(m, "linux", "arm", "v7", &d, NULL), 0);
    assert_int_equal(dt_oci_index_pick(m, "linux", "arm", "v6", &d, NULL), -ENOENT);
    assert_int_equal(dt_oci_index_pick(m, "linux", "arm64", NULL, &d, &err), -ENOENT);
    assert_non_null(strstr(err->message, "linux/amd64, linux/arm/v7"));
    assert_null(strstr(err->message, "unknown"));
    dt_error_free(err);
    err = NULL;
    dt_oci_manifest_free(m);

    /* Wrong / missing content types: the body's mediaType then the shape decide. */
    m = parse_ok(hub_index, "application/octet-stream; charset=x");
    assert_int_equal(m->kind, DT_OCI_KIND_INDEX);
    dt_oci_manifest_free(m);
    m = parse_ok(docker_v2, NULL);
    assert_int_equal(m->kind, DT_OCI_KIND_MANIFEST);
    assert_string_equal(m->media_type, DT_DOCKER_MT_MANIFEST);
    assert_string_equal(m->config.digest, DA);
    assert_int_equal(m->n_layers, 2);
    assert_int_equal(m->layers[0].size, 29534055);
    assert_int_equal(m->layers[0].compression, DT_OCI_COMPRESSION_GZIP);
    assert_int_equal(dt_oci_index_pick(m, NULL, NULL, NULL, &d, NULL), -EINVAL);
    dt_oci_manifest_free(m);
    m = parse_ok(oci_zstd, "application/json");
    assert_int_equal(m->kind, DT_OCI_KIND_MANIFEST);
    assert_string_equal(m->media_type, DT_OCI_MT_MANIFEST);
    assert_int_equal(m->n_layers, 3);
    assert_int_equal(m->layers[0].compression, DT_OCI_COMPRESSION_ZSTD);
    assert_int_equal(m->layers[1].compression, DT_OCI_COMPRESSION_NONE);
    assert_int_equal(m->layers[2].compression, DT_OCI_COMPRESSION_GZIP);
    dt_oci_manifest_free(m);
    /* Content type wins over the shape. */
    m = parse_ok(oci_zstd, DT_OCI_MT_MANIFEST);
    dt_oci_manifest_free(m);

    /* Schema 1. */
    assert_int_equal(parse_err("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL, &msg),
                     -ENOTSUP);
    assert_non_null(strstr(msg, "schema 1"));
    free(msg);
    assert_int_equal(
        parse_err("{\"schemaVersion\":2}",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws", NULL),
        -ENOTSUP);

    /* Broken documents. */
    assert_int_equal(parse_err("", NULL, NULL), -EINVAL);
    assert_int_equal(parse_err("[]", NULL, NULL), -EINVAL);
    assert_int_equal(parse_err("{\"schemaVersion\":2}", NULL, NULL), -EINVAL);
    assert_int_equal(parse_err("{\"schemaVersion\":2,\"schemaVersion\":2,\"layers\":[]}", NULL,
                               NULL),
                     -EINVAL);
    assert_int_equal(parse_err("{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}", NULL, NULL),
                     -ENOTSUP);
    {
        char *b = xstrdup(docker_v2);
        char *p = strstr(b, H64B);
        p[3] = 'X';
        assert_int_equal(parse_err(b, NULL, &msg), -EINVAL);
        assert_non_null(strstr(msg, "layer 0"));
        free(msg);
        free(b);
        b = xstrdup(docker_v2);
        p = strstr(b, "29534055");
        p[0] = '-';
        assert_int_equal(parse_err(b, NULL, NULL), -EINVAL);
        free(b);
        b = xstrdup(docker_v2);
        p = strstr(b, "sha256:" H64C);
        memcpy(p, "sha512", 6);
        assert_int_equal(parse_err(b, NULL, NULL), -ENOTSUP);
        free(b);
    }
    /* Artifacts and unknown layer types. */
    assert_int_equal(
        parse_err("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm."
                  "config.v1+json\",\"size\":1,\"digest\":\"" DA "\"},\"layers\":[]}",
                  NULL, &msg),
        -ENOTSUP);
    assert_non_null(strstr(msg, "helm"));
    free(msg);
    assert_int_equal(
        parse_err("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" DT_OCI_MT_CONFIG "\","
                  "\"size\":1,"
                  "\"digest\":\"" DA "\"},\"layers\":[{\"mediaType\":\"application/x-foo\","
                  "\"size\":1,\"digest\":\"" DA "\"}]}",
                  NULL, NULL),
        -ENOTSUP);

    /* Limits. */
    {
        size_t cap = 1100 * 200 + 1000, n = 0;
        char *b = xmalloc(cap);
        n += (size_t)snprintf(b + n, cap - n,
                              "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" DT_OCI_MT_CONFIG
                              "\",\"size\":1,\"digest\":\"" DA "\"},\"layers\":[");
        for (int i = 0; i < 1001; i++)
            n += (size_t)snprintf(b + n, cap - n,
                                  "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                                  "\"size\":1,\"digest\":\"" DA "\"}",
                                  i ? "," : "");
        snprintf(b + n, cap - n, "]}");
        assert_int_equal(parse_err(b, NULL, NULL), -E2BIG);
        free(b);
        b = xcalloc(DT_OCI_MANIFEST_MAX + 2, 1);
        memset(b, ' ', DT_OCI_MANIFEST_MAX + 1);
        assert_int_equal(parse_err(b, NULL, NULL), -EFBIG);
        free(b);
    }
    assert_string_equal(DT_OCI_ACCEPT,
                        "application/vnd.oci.image.index.v1+json, "
                        "application/vnd.oci.image.manifest.v1+json, "
                        "application/vnd.docker.distribution.manifest.list.v2+json, "
                        "application/vnd.docker.distribution.manifest.v2+json");
}

static const char real_config[] =
    "{\"architecture\":\"amd64\",\"config\":{\"Hostname\":\"\",\"User\":\"daytona\","
    "\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},"
    "\"Env\":[\"PATH=/usr/local/sbin:/usr/bin\",\"LANG=C.UTF-8\"],"
    "\"Cmd\":[\"/bin/bash\"],\"Entrypoint\":null,\"WorkingDir\":\"/home/daytona\","
    "\"Labels\":{\"org.opencontainers.image.version\":\"22.04\"},\"StopSignal\":\"SIGTERM\","
    "\"Image\":\"sha256:x\",\"OnBuild\":null},"
    "\"created\":\"2024-01-02T03:04:05Z\",\"history\":[{\"created\":\"x\",\"created_by\":\"y\"}],"
    "\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]}}";

static void
test_config(void **state)
{
    struct dt_oci_config *c = NULL, *c2 = NULL;
    struct dt_error *err = NULL;
    char *j, *j2;
    size_t len;

    if (dt_oci_config_parse(real_config, strlen(real_config), &c, &err) < 0)
        fail_msg("%s", err->message);
    assert_string_equal(c->architecture, "amd64");
    assert_string_equal(c->os, "linux");
    assert_string_equal(c->user, "daytona");
    assert_int_equal(strv_length(c->env), 2);
    assert_string_equal(c->env[1], "LANG=C.UTF-8");
    assert_null(c->entrypoint);
    assert_int_equal(strv_length(c->cmd), 1);
    assert_string_equal(c->working_dir, "/home/daytona");
    assert_int_equal(strv_length(c->exposed_ports), 2);
    assert_int_equal(c->n_labels, 1);
    assert_string_equal(c->labels[0].value, "22.04");
    assert_string_equal(c->stop_signal, "SIGTERM");
    assert_int_equal(c->n_diff_ids, 2);
    assert_string_equal(c->diff_ids[1], DB);

    /* Round trip, and an explicitly empty Entrypoint survives as []. */
    c->entrypoint = xcalloc(1, sizeof(char *));
    j = dt_oci_config_to_json(c, &len);
    assert_int_equal(len, strlen(j));
    assert_int_equal(dt_oci_config_parse(j, len, &c2, NULL), 0);
    assert_non_null(c2->entrypoint);
    assert_null(c2->entrypoint[0]);
    j2 = dt_oci_config_to_json(c2, NULL);
    assert_string_equal(j, j2);
    assert_string_equal(c2->created, "2024-01-02T03:04:05Z");
    assert_string_equal(c2->exposed_ports[0], "53/udp");
    free(j);
    free(j2);
    dt_oci_config_free(c);
    dt_oci_config_free(c2);

    /* A minimal builder-made config. */
    c = xcalloc(1, sizeof(*c));
    c->os = xstrdup("linux");
    c->diff_ids = xcalloc(1, sizeof(char *));
    j = dt_oci_config_to_json(c, NULL);
    assert_string_equal(j, "{\"config\":{},\"os\":\"linux\",\"rootfs\":{\"diff_ids\":[],"
                           "\"type\":\"layers\"}}");
    dt_oci_config_free(c);
    c = NULL;
    assert_int_equal(dt_oci_config_parse(j, strlen(j), &c, NULL), 0);
    assert_int_equal(c->n_diff_ids, 0);
    assert_null(c->env);
    dt_oci_config_free(c);
    c = NULL;
    free(j);

#define BAD_CONFIG(s)                                                                              \
    do {                                                                                           \
        assert_int_equal(dt_oci_config_parse(s, strlen(s), &c, &err), -EINVAL);                    \
        assert_null(c);                                                                            \
        dt_error_free(err);                                                                        \
        err = NULL;                                                                                \
    } while (0)
    BAD_CONFIG("{}");
    BAD_CONFIG("{\"rootfs\":{\"type\":\"x\",\"diff_ids\":[]}}");
    BAD_CONFIG("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:00\"]}}");
    BAD_CONFIG("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}");
    BAD_CONFIG("{\"config\":{\"Env\":\"x\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    BAD_CONFIG("{\"config\":{\"Cmd\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    BAD_CONFIG("{\"config\":{\"User\":\"a\\u0000b\"},\"rootfs\":{\"type\":\"layers\","
               "\"diff_ids\":[]}}");
    BAD_CONFIG("{\"config\":{\"Labels\":{\"a\":1}},\"rootfs\":{\"type\":\"layers\","
               "\"diff_ids\":[]}}");
    BAD_CONFIG("{\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    {
        char *b = xcalloc(DT_OCI_CONFIG_MAX + 2, 1);
        memset(b, ' ', DT_OCI_CONFIG_MAX + 1);
        assert_int_equal(dt_oci_config_parse(b, DT_OCI_CONFIG_MAX + 1, &c, NULL), -EFBIG);
        free(b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
