/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers for the untrusted parts of an S3 request (SigV4 Authorization, x-amz-date, keys,
 * query strings, CompleteMultipartUpload), kept apart from objstore.c so they can be fuzzed
 * without the server. No I/O, no logging. */
#include "server/s3-parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt/http.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_QUERY_PARAMS 64

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ---- Authorization ---- */

void
dt_s3_auth_done(struct dt_s3_auth *a)
{
    if (!a)
        return;
    free(a->signed_headers);
    *a = (struct dt_s3_auth){ 0 };
}

bool
dt_s3_org_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > DT_S3_MAX_ORG)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

int
dt_s3_parse_authorization(const char *value, struct dt_s3_auth *ret, struct dt_error **err)
{
    _cleanup_free_ char *copy = NULL;
    char *cred = NULL, *signed_headers = NULL, *signature = NULL, *parts[5] = { 0 };
    int np = 0;

    *ret = (struct dt_s3_auth){ 0 };
    if (!value || strncmp(value, "AWS4-HMAC-SHA256 ", 17) != 0 ||
        strlen(value) > DT_S3_MAX_AUTH)
        return dt_error_set(err, EPROTONOSUPPORT, "only AWS4-HMAC-SHA256 is supported");

    /* "k=v" fields separated by ',' and spaces; unknown fields are ignored, a repeated one
     * keeps its first value. */
    copy = xstrdup(value + 17);
    for (char *p = copy; *p;) {
        char *end, *eq;
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        end = p + strcspn(p, ",");
        if (*end)
            *end++ = '\0';
        eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            if (strcmp(p, "Credential") == 0 && !cred)
                cred = eq + 1;
            else if (strcmp(p, "SignedHeaders") == 0 && !signed_headers)
                signed_headers = eq + 1;
            else if (strcmp(p, "Signature") == 0 && !signature)
                signature = eq + 1;
        }
        p = end;
    }
    /* Credential=AKID/YYYYMMDD/REGION/s3/aws4_request */
    /* The fifth part keeps any further '/' so that a sixth component is refused below. */
    for (char *p = cred; p && np < 5;) {
        parts[np++] = p;
        if (np == 5)
            break;
        p = strchr(p, '/');
        if (p)
            *p++ = '\0';
    }
    if (!cred || !signed_headers || !signature || np != 5 || strchr(parts[4], '/') ||
        strcmp(parts[3], "s3") != 0 || strcmp(parts[4], "aws4_request") != 0 ||
        strlen(parts[1]) != 8 || !*parts[2] || strlen(parts[2]) >= sizeof(ret->region))
        return dt_error_set(err, EINVAL, "the Authorization header is malformed (Credential, "
                                         "SignedHeaders, Signature)");
    if (strncmp(parts[0], "DTN", 3) != 0 || !dt_s3_org_valid(parts[0] + 3))
        return dt_error_set(err, EACCES, "the access key does not exist");

    memcpy(ret->access_key, parts[0], strlen(parts[0]) + 1);
    ret->org = ret->access_key + 3;
    memcpy(ret->date, parts[1], 9);
    memcpy(ret->region, parts[2], strlen(parts[2]) + 1);
    /* A signature of any other length cannot match: leave it empty and let the comparison
     * answer SignatureDoesNotMatch, as S3 does. */
    if (strlen(signature) == 64)
        memcpy(ret->signature, signature, 65);
    ret->signed_headers = xstrdup(signed_headers);
    return 0;
}

int
dt_s3_check_signed_headers(const char *signed_headers, bool have_token, struct dt_error **err)
{
    _cleanup_free_ char *sh = xasprintf(";%s;", signed_headers);

    /* The date, the payload hash and the token must be covered by the signature. */
    if (!strstr(sh, ";host;") || !strstr(sh, ";x-amz-date;") ||
        !strstr(sh, ";x-amz-content-sha256;") ||
        (have_token && !strstr(sh, ";x-amz-security-token;")))
        return dt_error_set(err, EACCES, "host, x-amz-date, x-amz-content-sha256 and "
                                         "x-amz-security-token must be signed");
    for (const char *q = signed_headers; *q; q++)
        if ((*q >= 'A' && *q <= 'Z') || *q == ' ')
            return dt_error_set(err, EINVAL, "malformed SignedHeaders");
    return 0;
}

/* ---- x-amz-date ---- */

int
dt_s3_parse_amz_date(const char *s, time_t *ret)
{
    static const int pos[6] = { 0, 4, 6, 9, 11, 13 }, len[6] = { 4, 2, 2, 2, 2, 2 };
    static const int lo[6] = { 1970, 1, 1, 0, 0, 0 }, hi[6] = { 9999, 12, 31, 23, 59, 60 };
    struct tm tm = { 0 };
    int v[6];
    time_t t;

    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        v[i] = 0;
        for (int j = 0; j < len[i]; j++) {
            char ch = s[pos[i] + j];
            if (ch < '0' || ch > '9')
                return -EINVAL;
            v[i] = v[i] * 10 + (ch - '0');
        }
        /* timegm() would normalise "month 13" into next year: refuse instead. */
        if (v[i] < lo[i] || v[i] > hi[i])
            return -EINVAL;
    }
    tm.tm_year = v[0] - 1900;
    tm.tm_mon = v[1] - 1;
    tm.tm_mday = v[2];
    tm.tm_hour = v[3];
    tm.tm_min = v[4];
    tm.tm_sec = v[5];
    t = timegm(&tm);
    if (t == (time_t) -1)
        return -EINVAL;
    *ret = t;
    return 0;
}

/* ---- keys ---- */

static bool
dot_or_dotdot(const char *c, size_t n)
{
    return (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.');
}

/* Keys are stored as paths, so every component must be a usable file name; control characters
 * would need escaping in XML 1.0, which cannot carry most of them at all. */
static bool
key_valid(const char *k, bool prefix)
{
    size_t n = strlen(k), comp = 0;
    const char *start = k;

    if ((n == 0 && !prefix) || n > DT_S3_MAX_KEY || k[0] == '/')
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char) k[i];
        if (ch == '/' || ch == '\0') {
            if (ch == '\0' && prefix)
                break; /* a prefix may end in a partial component */
            if (comp == 0 || comp > 255 || dot_or_dotdot(start, comp))
                return false;
            comp = 0;
            start = k + i + 1;
            continue;
        }
        if (ch < 0x20 || ch == 0x7f)
            return false;
        comp++;
    }
    /* A trailing partial component of a prefix must not be "..": it cannot match a key anyway,
     * but refuse it so no path built from a prefix ever holds one. */
    if (prefix && comp > 0 && dot_or_dotdot(start, comp))
        return false;
    return comp <= 255;
}

bool
dt_s3_key_valid(const char *key)
{
    return key && key_valid(key, false);
}

bool
dt_s3_prefix_valid(const char *prefix)
{
    return prefix && key_valid(prefix, true);
}

int
dt_s3_parse_key(const char *raw, char **ret, struct dt_error **err)
{
    _cleanup_free_ char *key = NULL;
    size_t rl = strlen(raw), len = 0;

    /* Bound the work before decoding: each key byte takes at most three. */
    if (rl > 3 * DT_S3_MAX_KEY)
        return dt_error_set(err, ENAMETOOLONG, "your key is too long");
    key = xmalloc(rl + 1);
    if (dt_http_percent_decode(raw, rl, key, &len, false) < 0 || strlen(key) != len)
        return dt_error_set(err, EINVAL, "malformed key");
    if (len > DT_S3_MAX_KEY)
        return dt_error_set(err, ENAMETOOLONG, "your key is too long");
    if (!dt_s3_key_valid(key))
        return dt_error_set(err, EINVAL, "unsupported key: empty, '.' or '..' components and "
                                         "control characters are refused");
    *ret = TAKE_PTR(key);
    return 0;
}

int
dt_s3_parse_part_number(const char *s, uint32_t *ret)
{
    uint32_t v;

    if (!s || parse_u32(s, &v) < 0 || v < 1 || v > DT_S3_MAX_PARTS)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* ---- query strings ---- */

char *
dt_s3_uri_encode(const char *s, size_t n, bool keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = xmalloc(3 * n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (is_alnum((char) ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
            (keep_slash && ch == '/')) {
            *o++ = (char) ch;
        } else {
            *o++ = '%';
            *o++ = digits[ch >> 4];
            *o++ = digits[ch & 15];
        }
    }
    *o = '\0';
    return out;
}

struct qpair {
    char *k, *v; /* decoded */
};

static int
qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static void
qpairs_free(struct qpair *pairs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].k);
        free(pairs[i].v);
    }
}

int
dt_s3_canonical_query(const char *query, char **ret, struct dt_error **err)
{
    struct qpair pairs[MAX_QUERY_PARAMS];
    size_t n = 0, total = 1;
    char *out;

    for (const char *p = query ? query : ""; *p;) {
        size_t len = strcspn(p, "&");
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t) (eq - p) : len, vl = eq ? len - kl - 1 : 0;
            struct qpair q;
            size_t dl;
            if (n >= MAX_QUERY_PARAMS) {
                qpairs_free(pairs, n);
                return dt_error_set(err, EINVAL, "malformed query string: more than %d "
                                    "parameters", MAX_QUERY_PARAMS);
            }
            q = (struct qpair){ xmalloc(kl + 1), xmalloc(vl + 1) };
            if (dt_http_percent_decode(p, kl, q.k, &dl, false) < 0 ||
                dt_http_percent_decode(eq ? eq + 1 : "", vl, q.v, &dl, false) < 0) {
                free(q.k);
                free(q.v);
                qpairs_free(pairs, n);
                return dt_error_set(err, EINVAL, "malformed query string");
            }
            pairs[n++] = q;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    /* Sorted on the decoded text (an encoded NUL ends a name or value there), then encoded. */
    if (n > 0)
        qsort(pairs, n, sizeof(*pairs), qpair_cmp);
    for (size_t i = 0; i < n; i++)
        total += 3 * (strlen(pairs[i].k) + strlen(pairs[i].v)) + 2;
    out = xmalloc(total);
    out[0] = '\0';
    for (size_t i = 0, o = 0; i < n; i++) {
        _cleanup_free_ char *ek = dt_s3_uri_encode(pairs[i].k, strlen(pairs[i].k), false);
        _cleanup_free_ char *ev = dt_s3_uri_encode(pairs[i].v, strlen(pairs[i].v), false);
        o += (size_t) snprintf(out + o, total - o, "%s%s=%s", i ? "&" : "", ek, ev);
    }
    qpairs_free(pairs, n);
    *ret = out;
    return 0;
}

/* ---- CompleteMultipartUpload ---- */

struct span {
    const char *p;
    size_t n;
};

/* The text of the next <TAG>...</TAG> in [*P, END), advancing *P past it. */
static bool
xml_take(const char **p, const char *end, const char *tag, struct span *ret)
{
    char open[24], close[24];
    size_t ol = (size_t) snprintf(open, sizeof(open), "<%s>", tag);
    size_t cl = (size_t) snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = memmem(*p, (size_t) (end - *p), open, ol), *z;

    if (!a)
        return false;
    a += ol;
    z = memmem(a, (size_t) (end - a), close, cl);
    if (!z)
        return false;
    *p = z + cl;
    *ret = (struct span){ a, (size_t) (z - a) };
    return true;
}

/* ETags arrive quoted, raw or as XML entities, depending on the SDK. */
static void
etag_normalize(struct span t, char out[33])
{
    char v[33];
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < t.n;) {
        const char *q = t.p + i;
        size_t left = t.n - i;
        if (left >= 6 && memcmp(q, "&quot;", 6) == 0) {
            i += 6;
        } else if (left >= 5 && memcmp(q, "&#34;", 5) == 0) {
            i += 5;
        } else if (*q == '"' || *q == ' ' || *q == '\n' || *q == '\t' || *q == '\r') {
            i++;
        } else {
            char c = *q;
            if (c >= 'A' && c <= 'F')
                c = (char) (c - 'A' + 'a');
            if (n == 32 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                return;
            v[n++] = c;
            i++;
        }
    }
    if (n == 32) {
        memcpy(out, v, 32);
        out[32] = '\0';
    }
}

static int
parse_number(struct span s, uint32_t *ret)
{
    char buf[12];

    /* Spans may hold NULs and be huge: copy only what a part number can be. */
    if (s.n == 0 || s.n >= sizeof(buf) || memchr(s.p, '\0', s.n))
        return -EINVAL;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    return dt_s3_parse_part_number(buf, ret);
}

int
dt_s3_parse_complete(const char *xml, size_t len, struct dt_s3_part **ret, size_t *ret_n,
                     struct dt_error **err)
{
    _cleanup_free_ struct dt_s3_part *parts = NULL;
    const char *end = xml + len;
    size_t n = 0, cap = 0;
    struct span part;

    if (!memmem(xml, len, "<CompleteMultipartUpload", 24))
        return dt_error_set(err, EINVAL, "expected a CompleteMultipartUpload document");
    for (const char *q = xml; xml_take(&q, end, "Part", &part);) {
        const char *pp = part.p, *pe = part.p + part.n;
        struct span num, tag;
        uint32_t nr;

        if (!xml_take(&pp, pe, "PartNumber", &num))
            return dt_error_set(err, EINVAL, "a Part needs a PartNumber and an ETag");
        pp = part.p;
        if (!xml_take(&pp, pe, "ETag", &tag) || parse_number(num, &nr) < 0)
            return dt_error_set(err, EINVAL, "a Part needs a PartNumber and an ETag");
        if (n > 0 && nr <= parts[n - 1].number)
            return dt_error_set(err, ERANGE, "parts must be listed in ascending order");
        /* Unreachable while numbers ascend within 1..DT_S3_MAX_PARTS; kept as the bound on
         * the allocation should that ever change. */
        if (n >= DT_S3_MAX_PARTS)
            return dt_error_set(err, EINVAL, "too many parts");
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            parts = xrealloc(parts, cap * sizeof(*parts));
        }
        parts[n].number = nr;
        etag_normalize(tag, parts[n].etag);
        n++;
    }
    if (n == 0)
        return dt_error_set(err, EINVAL, "no parts listed");
    *ret = TAKE_PTR(parts);
    *ret_n = n;
    return 0;
}
