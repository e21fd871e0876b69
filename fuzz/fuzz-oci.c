/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the OCI parsers. The first byte selects the target: 0 image reference, 1 manifest/index
 * (plus the platform picker), 2 image config (plus a serialise/re-parse round trip), 3 digest,
 * 4 a local archive (the rest is written to a memfd and opened as a tar). No crash, and what a
 * parser accepts is self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/oci.h"
#include "dt/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_ref(const char *s)
{
    struct dt_image_ref *r = NULL, *r2 = NULL;
    char *c;

    if (dt_image_ref_parse(s, &r, NULL) < 0)
        return;
    /* The canonical form parses back to the same reference. */
    c = dt_image_ref_string(r);
    DT_ASSERT(dt_image_ref_parse(c, &r2, NULL) == 0);
    DT_ASSERT(strcmp(r->registry, r2->registry) == 0);
    DT_ASSERT(strcmp(r->repository, r2->repository) == 0);
    DT_ASSERT(strcmp(dt_image_ref_reference(r), dt_image_ref_reference(r2)) == 0);
    DT_ASSERT(dt_image_ref_api_host(r) != NULL);
    free(c);
    dt_image_ref_free(r);
    dt_image_ref_free(r2);
}

static void
fuzz_manifest(const uint8_t *data, size_t size)
{
    static const char *const cts[] = { NULL, DT_OCI_MT_MANIFEST, DT_OCI_MT_INDEX,
                                       "application/json; charset=utf-8" };
    struct dt_oci_manifest *m = NULL;
    struct dt_error *err = NULL;
    const struct dt_oci_descriptor *d;

    if (size < 1)
        return;
    if (dt_oci_manifest_parse(data + 1, size - 1, cts[data[0] & 3], &m, &err) < 0) {
        DT_ASSERT(err && err->message);
        dt_error_free(err);
        return;
    }
    DT_ASSERT(m->n_layers <= DT_OCI_LAYERS_MAX && m->n_manifests <= DT_OCI_INDEX_MAX);
    for (size_t i = 0; i < m->n_layers; i++)
        DT_ASSERT(dt_digest_validate(m->layers[i].digest, NULL) == 0);
    if (m->kind == DT_OCI_KIND_INDEX) {
        if (dt_oci_index_pick(m, NULL, NULL, NULL, &d, &err) == 0)
            DT_ASSERT(dt_digest_validate(d->digest, NULL) == 0);
        dt_error_free(err);
        err = NULL;
        (void)dt_oci_index_pick(m, "linux", "arm", "v7", &d, NULL);
    }
    dt_oci_manifest_free(m);
}

static void
fuzz_config(const uint8_t *data, size_t size)
{
    struct dt_oci_config *c = NULL, *c2 = NULL;
    char *j, *j2;
    size_t len;

    if (dt_oci_config_parse(data, size, &c, NULL) < 0)
        return;
    j = dt_oci_config_to_json(c, &len);
    DT_ASSERT(dt_oci_config_parse(j, len, &c2, NULL) == 0);
    DT_ASSERT(c2->n_diff_ids == c->n_diff_ids);
    j2 = dt_oci_config_to_json(c2, NULL);
    DT_ASSERT(strcmp(j, j2) == 0);
    free(j);
    free(j2);
    dt_oci_config_free(c);
    dt_oci_config_free(c2);
}

static void
fuzz_archive(const uint8_t *data, size_t size)
{
    struct dt_oci_archive *a = NULL;
    struct dt_error *err = NULL;
    const struct dt_oci_archive_image *img;
    int fd = memfd_create("fuzz-oci", MFD_CLOEXEC);

    if (fd < 0)
        return;
    if (write_all(fd, data, size) == 0 && dt_oci_archive_open_fd(fd, "fuzz", &a, &err) == 0) {
        if (dt_oci_archive_select(a, NULL, &img, NULL) == 0)
            for (size_t i = 0; i < img->n_layers; i++) {
                int dn = memfd_create("fuzz-oci-out", MFD_CLOEXEC);
                if (dn >= 0) {
                    (void)dt_oci_window_copy(&img->layers[i].blob, dn, img->layers[i].digest,
                                             NULL);
                    close(dn);
                }
            }
        dt_oci_archive_free(a);
    }
    dt_error_free(err);
    close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1 || size > (1u << 20))
        return 0;
    switch (data[0] % 5) {
    case 0:
        s = xstrndup((const char *)data + 1, size - 1);
        fuzz_ref(s);
        free(s);
        break;
    case 1:
        fuzz_manifest(data + 1, size - 1);
        break;
    case 2:
        fuzz_config(data + 1, size - 1);
        break;
    case 3:
        s = xstrndup((const char *)data + 1, size - 1);
        (void)dt_digest_validate(s, NULL);
        free(s);
        break;
    default:
        fuzz_archive(data + 1, size - 1);
        break;
    }
    return 0;
}
