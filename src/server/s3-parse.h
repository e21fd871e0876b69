/* SPDX-License-Identifier: Apache-2.0 */
/* The parsers behind daytonad's S3 subset (objstore.c): the SigV4 Authorization header, x-amz-date,
 * object keys and prefixes, the query strings it signs and interprets, and the
 * CompleteMultipartUpload body. Pure functions over untrusted text (no I/O, no httpd types), so
 * they are unit-tested and fuzzed on their own (fuzz/fuzz-s3.c). See docs/design/objstore.md. */
#ifndef DT_SERVER_S3_PARSE_H
#define DT_SERVER_S3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dt/error.h"

#define DT_S3_MAX_KEY 1024       /* S3's limit on a key, in bytes */
#define DT_S3_MAX_PARTS 10000    /* part numbers are 1..this */
#define DT_S3_MAX_AUTH 4096      /* the longest Authorization header accepted */
#define DT_S3_MAX_ORG 64

/* An "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/s3/aws4_request, SignedHeaders=a;b,
 * Signature=hex" header, split. Every field is NUL-terminated; only signed_headers is
 * allocated (free with dt_s3_auth_done). */
struct dt_s3_auth {
    char access_key[DT_S3_MAX_ORG + 4]; /* "DTN<org>" */
    const char *org;                    /* points into access_key, after "DTN" */
    char date[9];                       /* the credential scope's YYYYMMDD (8 characters) */
    char region[33];                    /* 1..32 characters */
    char signature[65];                 /* as sent: checked against the computed one later */
    char *signed_headers;               /* "host;x-amz-date;...", as sent */
};

/* Parse VALUE, the Authorization header. Returns 0 and fills *RET, or:
 * -EPROTONOSUPPORT: not AWS4-HMAC-SHA256 or longer than DT_S3_MAX_AUTH,
 * -EINVAL: Credential, SignedHeaders or Signature missing or malformed (a field repeated: the
 *          first one counts, as before),
 * -EACCES: the access key is not one of ours ("DTN" + dt_s3_org_valid).
 * *err names the problem. *RET is left cleared on failure. */
int dt_s3_parse_authorization(const char *value, struct dt_s3_auth *ret, struct dt_error **err);
void dt_s3_auth_done(struct dt_s3_auth *a);

/* SIGNED_HEADERS must name host, x-amz-date, x-amz-content-sha256 (and x-amz-security-token
 * when HAVE_TOKEN): -EACCES otherwise. -EINVAL when it holds upper case or spaces. */
int dt_s3_check_signed_headers(const char *signed_headers, bool have_token,
                               struct dt_error **err);

/* x-amz-date, "YYYYMMDDTHHMMSSZ" (basic ISO 8601, UTC), as seconds since the epoch. -EINVAL when
 * malformed or out of range (month 13, hour 24...). */
int dt_s3_parse_amz_date(const char *s, time_t *ret);

/* An organization id usable in an access key and as the first key component: 1..64 of
 * [A-Za-z0-9_-]. */
bool dt_s3_org_valid(const char *org);

/* An object key we store as a path: 1..DT_S3_MAX_KEY bytes, '/'-separated components that are
 * neither empty, "." nor ".." nor longer than 255 bytes, and no control characters. */
bool dt_s3_key_valid(const char *key);
/* The same for a listing prefix: may be empty and may end in a partial component (not "..",
 * ".") or a '/'. */
bool dt_s3_prefix_valid(const char *prefix);

/* RAW, the percent-encoded key part of a path ("org/a%20b"), decoded and validated into *RET
 * (malloc'ed). -ENAMETOOLONG for a key over DT_S3_MAX_KEY bytes, -EINVAL for bad escapes, an
 * encoded NUL or a key dt_s3_key_valid refuses. */
int dt_s3_parse_key(const char *raw, char **ret, struct dt_error **err);

/* A partNumber query value: 1..DT_S3_MAX_PARTS. -EINVAL otherwise. */
int dt_s3_parse_part_number(const char *s, uint32_t *ret);

/* SigV4's URI encoding of S[0..N): everything but the RFC 3986 unreserved characters as %XX
 * (upper-case hex); '/' kept when KEEP_SLASH. Malloc'ed. */
char *dt_s3_uri_encode(const char *s, size_t n, bool keep_slash);

/* The canonical query string of SigV4: QUERY (raw, without '?'; NULL = none) split on '&',
 * each name and value percent-decoded, re-encoded with dt_s3_uri_encode, sorted by name then
 * value, joined "k=v&...". At most 64 parameters. Returns 0 with *RET malloc'ed ("" for none),
 * -EINVAL for bad escapes or too many parameters. */
int dt_s3_canonical_query(const char *query, char **ret, struct dt_error **err);

/* One <Part> of a CompleteMultipartUpload body. */
struct dt_s3_part {
    uint32_t number; /* 1..DT_S3_MAX_PARTS, strictly ascending in the list */
    /* The ETag with quotes (raw, &quot; or &#34;) and whitespace removed and lowercased: 32 hex
     * digits, or "" when it was anything else (it then matches no part: InvalidPart). */
    char etag[33];
};

/* Parse a CompleteMultipartUpload document of LEN bytes (not NUL-terminated; may hold NULs).
 * Returns 0 with *RET (malloc'ed, *RET_N >= 1 entries), or
 * -EINVAL: not a CompleteMultipartUpload, a Part without a valid PartNumber or ETag, no parts,
 *          more than DT_S3_MAX_PARTS (S3's MalformedXML),
 * -ERANGE: part numbers not strictly ascending (InvalidPartOrder). */
int dt_s3_parse_complete(const char *xml, size_t len, struct dt_s3_part **ret, size_t *ret_n,
                         struct dt_error **err);

#endif
