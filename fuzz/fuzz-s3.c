/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz daytonad's S3 request parsers and registry URL normalisation: the first byte picks the
 * parser (0 Authorization, 1 CompleteMultipartUpload, 2 key, 3 x-amz-date, 4 registry URL,
 * 5 query string), the rest is its input. No crash, no leak, and what is accepted is sane. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/store.h"
#include "server/s3-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

static void
fuzz_auth(const char *s)
{
    struct dt_s3_auth a;
    int r = dt_s3_parse_authorization(s, &a, NULL);

    if (r < 0) {
        DT_ASSERT(r == -EINVAL || r == -EACCES || r == -EPROTONOSUPPORT);
        DT_ASSERT(!a.signed_headers);
        return;
    }
    DT_ASSERT(strncmp(a.access_key, "DTN", 3) == 0 && dt_s3_org_valid(a.org));
    DT_ASSERT(strlen(a.date) == 8 && a.region[0] && a.signed_headers);
    DT_ASSERT(!strchr(a.region, '/') && !strchr(a.date, '/'));
    DT_ASSERT(a.signature[0] == '\0' || strlen(a.signature) == 64);
    (void) dt_s3_check_signed_headers(a.signed_headers, true, NULL);
    dt_s3_auth_done(&a);
}

static void
fuzz_complete(const char *s, size_t n)
{
    struct dt_s3_part *p = NULL;
    size_t np = 0;
    int r = dt_s3_parse_complete(s, n, &p, &np, NULL);

    if (r < 0) {
        DT_ASSERT(r == -EINVAL || r == -ERANGE);
        DT_ASSERT(!p);
        return;
    }
    DT_ASSERT(np >= 1 && np <= DT_S3_MAX_PARTS);
    for (size_t i = 0; i < np; i++) {
        DT_ASSERT(p[i].number >= 1 && p[i].number <= DT_S3_MAX_PARTS);
        DT_ASSERT(i == 0 || p[i].number > p[i - 1].number);
        DT_ASSERT(p[i].etag[0] == '\0' || is_lower_hex(p[i].etag, 32));
    }
    free(p);
}

static void
fuzz_key(const char *s)
{
    char *k = NULL;
    int r = dt_s3_parse_key(s, &k, NULL);

    if (r < 0) {
        DT_ASSERT(!k);
    } else {
        DT_ASSERT(dt_s3_key_valid(k) && strlen(k) <= DT_S3_MAX_KEY);
        DT_ASSERT(!strstr(k, "//") && strcmp(k, "..") != 0 && strncmp(k, "../", 3) != 0 &&
                  !strstr(k, "/../") && !strstr(k, "/./"));
        free(k);
    }
    (void) dt_s3_key_valid(s);
    (void) dt_s3_prefix_valid(s);
}

static void
fuzz_date(const char *s)
{
    time_t t;
    if (dt_s3_parse_amz_date(s, &t) == 0)
        DT_ASSERT(t >= 0);
}

static void
fuzz_registry(const char *s)
{
    char *out = NULL;

    if (dt_store_registry_normalize_url(s, &out, NULL) == 0) {
        DT_ASSERT(*out && strlen(out) <= 255 && !strchr(out, '/'));
        for (const char *c = out; *c; c++)
            DT_ASSERT(!(*c >= 'A' && *c <= 'Z'));
        /* Normalising is idempotent, and a normalised host matches itself. */
        char *again = NULL;
        DT_ASSERT(dt_store_registry_normalize_url(out, &again, NULL) == 0);
        DT_ASSERT(strcmp(out, again) == 0);
        DT_ASSERT(dt_store_registry_host_matches(out, again));
        free(again);
        free(out);
    }
    (void) dt_store_registry_host_matches(s, "docker.io");
}

static void
fuzz_query(const char *s)
{
    char *out = NULL;

    if (dt_s3_canonical_query(s, &out, NULL) == 0) {
        for (const char *c = out; *c; c++)
            DT_ASSERT((unsigned char) *c > 0x20 && (unsigned char) *c < 0x7f);
        free(out);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf;

    if (size < 1)
        return 0;
    /* An exact-size copy (plus the terminator string parsers need), so ASan sees any read past
     * the input. */
    buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    switch (data[0] % 6) {
    case 0: fuzz_auth(buf); break;
    case 1: {
        /* Not NUL-terminated: a read past the body is an ASan report. */
        char *exact = malloc(size - 1 ? size - 1 : 1);
        if (exact) {
            memcpy(exact, data + 1, size - 1);
            fuzz_complete(exact, size - 1);
            free(exact);
        }
        break;
    }
    case 2: fuzz_key(buf); break;
    case 3: fuzz_date(buf); break;
    case 4: fuzz_registry(buf); break;
    default: fuzz_query(buf); break;
    }
    free(buf);
    return 0;
}
