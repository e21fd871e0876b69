/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal S3 service for image build contexts (contract §2.8): ListObjectsV2, Put/Get/Head/
 * DeleteObject and multipart uploads on one bucket kept in a local directory, with AWS SigV4
 * checked on every request and each organization's key confined to "<org>/". Bodies are
 * streamed to a temporary file and renamed into place. See docs/design/objstore.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "server/objstore.h"
#include "server/s3-parse.h"
#include "dt/banned.h"

#define SECRET_BYTES 32
#define MAX_KEY DT_S3_MAX_KEY
#define MAX_PART_SIZE (5ULL << 30)            /* one PutObject or UploadPart (S3: 5 GiB) */
#define MAX_OBJECT_SIZE (10ULL << 30)         /* a completed multipart object */
#define MAX_PARTS DT_S3_MAX_PARTS
#define MAX_COMPLETE_BODY (2U << 20)          /* 10,000 <Part> entries fit in well under this */
#define MAX_SKEW_S (15 * 60)
#define MAX_LIST_KEYS 1000
#define MAX_LIST_SCAN 100000                  /* objects one listing may walk */
#define GET_CHUNK (64U << 10)
#define GET_QUEUE (256U << 10)
#define ETAG_XATTR "user.dt.etag"

struct dt_objstore {
    struct dt_server *s;
    char *dir;
    int bucket_fd;  /* DIR/<bucket>: objects, at their key path */
    int tmp_fd;     /* DIR/.tmp: PutObject bodies and completed uploads before the rename */
    int uploads_fd; /* DIR/.uploads/<uploadId>/: "key", parts "<n>" and "<n>.etag" */
    uint8_t secret[SECRET_BYTES];
};

/* One S3 request, freed by its close callback. */
struct s3req {
    struct dt_objstore *o;
    struct dt_httpd_req *req;
    char org[72];       /* from the access key */
    char *key;          /* decoded and validated, or NULL for bucket-level requests */
    char payload[65];   /* signed x-amz-content-sha256 (lowercase hex), "" when unsigned */
    bool failed;        /* a response (error) was sent: ignore the rest of the body */

    /* Streamed uploads (PutObject, UploadPart). */
    int fd;             /* the temporary file */
    int dir_fd;         /* where it lives (owned for parts, o->tmp_fd borrowed otherwise) */
    bool own_dir_fd;
    char tmp[48];       /* its name, "" once renamed or removed */
    unsigned part;      /* UploadPart's number, 0 for PutObject */
    EVP_MD_CTX *md5, *sha;
    bool want_crc, want_md5;
    uint32_t crc, crc_expect;
    uint8_t md5_expect[16];
    char crc_b64[16];
    uint64_t bytes, limit;

    /* GetObject. */
    int get_fd;
    uint64_t remaining;
};

/* ---- small helpers ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void _printf_(2, 3)
buf_printf(struct buf *b, const char *fmt, ...)
{
    _cleanup_free_ char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    buf_adds(b, s);
}

/* XML text/attribute escaping: keys never hold control characters (see dt_s3_key_valid). */
static void
buf_xml(struct buf *b, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&': buf_adds(b, "&amp;"); break;
        case '<': buf_adds(b, "&lt;"); break;
        case '>': buf_adds(b, "&gt;"); break;
        case '"': buf_adds(b, "&quot;"); break;
        case '\'': buf_adds(b, "&apos;"); break;
        default: buf_add(b, s, 1);
        }
}

/* SigV4's URI encoding (dt_s3_uri_encode); KEEP_SLASH for keys in listings with
 * encoding-type=url. */
static void
buf_uri(struct buf *b, const char *s, size_t n, bool keep_slash)
{
    _cleanup_free_ char *e = dt_s3_uri_encode(s, n, keep_slash);
    buf_adds(b, e);
}

static void
hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool
is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

static void
hmac256(const void *key, size_t key_len, const char *msg, uint8_t out[32])
{
    unsigned len = 32;
    DT_ASSERT(HMAC(EVP_sha256(), key, (int) key_len, (const uint8_t *) msg, strlen(msg), out,
                   &len));
}

static void
sha256_hex(const char *data, size_t n, char out[65])
{
    uint8_t md[32];
    DT_ASSERT(EVP_Digest(data, n, md, NULL, EVP_sha256(), NULL));
    hex(md, 32, out);
}

/* What is derived from the server secret for access key AKID: LABEL "secret" or "token". */
static void
derive(struct dt_objstore *o, const char *label, const char *akid, char out[65])
{
    _cleanup_free_ char *msg = xasprintf("dt-objstore-%s:%s", label, akid);
    uint8_t md[32];

    hmac256(o->secret, sizeof(o->secret), msg, md);
    hex(md, 32, out);
}

/* x-amz-checksum-crc32 and Content-MD5 are base64 of the raw digest. */
static int
b64_decode(const char *in, uint8_t *out, size_t want)
{
    uint8_t tmp[64];
    size_t n = strlen(in);
    int len;

    if (n == 0 || n > 44 || n % 4 != 0)
        return -EINVAL;
    len = EVP_DecodeBlock(tmp, (const uint8_t *) in, (int) n);
    if (len < 0)
        return -EINVAL;
    /* EVP_DecodeBlock counts the '=' padding as zero bytes. */
    if (in[n - 1] == '=')
        len--;
    if (in[n - 2] == '=')
        len--;
    if ((size_t) len != want)
        return -EINVAL;
    memcpy(out, tmp, want);
    return 0;
}

static uint32_t
crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    static uint32_t table[256];

    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320U ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void
random_hex(char *out, size_t bytes)
{
    uint8_t raw[32];

    DT_ASSERT(bytes <= sizeof(raw));
    DT_ASSERT(getrandom(raw, bytes, 0) == (ssize_t) bytes);
    hex(raw, bytes, out);
}

/* Open (CREATE: making missing directories) the directory holding KEY under BASE; *RET_LEAF
 * points into KEY at the last component. Never follows symlinks. */
static int
open_parent(int base, const char *key, bool create, const char **ret_leaf)
{
    _cleanup_free_ char *copy = xstrdup(key);
    char *p = copy, *slash;
    int fd = fcntl(base, F_DUPFD_CLOEXEC, 3);

    if (fd < 0)
        return -errno;
    while ((slash = strchr(p, '/'))) {
        int nfd;
        *slash = '\0';
        if (create && mkdirat(fd, p, 0700) < 0 && errno != EEXIST) {
            int r = -errno;
            safe_close(fd);
            return r;
        }
        nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            int r = -errno;
            safe_close(fd);
            return r;
        }
        safe_close(fd);
        fd = nfd;
        p = slash + 1;
    }
    *ret_leaf = key + (p - copy);
    return fd;
}

/* KEY under BASE, confined to it: RESOLVE_BENEATH with no symlinks at all. */
static int
open_beneath(int base, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t) (flags | O_CLOEXEC | O_NOFOLLOW),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, base, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int) fd;
}

static void
etag_of(int fd, char out[80])
{
    ssize_t n = fgetxattr(fd, ETAG_XATTR, out, 79);
    out[n > 0 ? n : 0] = '\0';
}

static void
http_date(time_t t, char out[64])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    (void) strftime(out, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void
iso_date(const struct timespec *ts, char out[64])
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    (void) snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts->tv_nsec / 1000000);
}

/* ---- responses ---- */

static void
reply(struct s3req *r, int status, const char *ctype, const char *body, size_t len,
      const struct dt_http_header *extra, size_t n_extra)
{
    struct dt_http_header h[8];
    size_t n = 0;

    if (dt_httpd_req_status(r->req) != 0)
        return;
    if (ctype)
        h[n++] = (struct dt_http_header){ .name = "Content-Type", .value = ctype };
    for (size_t i = 0; i < n_extra && n < ELEMENTSOF(h); i++)
        h[n++] = extra[i];
    for (size_t i = 0; i < n; i++) {
        h[i].name_len = strlen(h[i].name);
        h[i].value_len = strlen(h[i].value);
    }
    if (dt_httpd_start(r->req, status, h, n, (int64_t) len) < 0)
        return;
    if (len)
        (void) dt_httpd_write(r->req, body, len);
    (void) dt_httpd_end(r->req);
}

static void
reply_xml(struct s3req *r, int status, struct buf *b, const struct dt_http_header *extra,
          size_t n_extra)
{
    reply(r, status, "application/xml", b->p, b->len, extra, n_extra);
    free(b->p);
    b->p = NULL;
}

static void _printf_(4, 5)
s3_error(struct s3req *r, int status, const char *code, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    struct buf b = { 0 };
    va_list ap;

    r->failed = true;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>",
               code);
    buf_xml(&b, msg);
    buf_adds(&b, "</Message><Resource>");
    buf_xml(&b, r->key ? r->key : DT_OBJSTORE_BUCKET);
    buf_adds(&b, "</Resource></Error>");
    reply_xml(r, status, &b, NULL, 0);
}

/* A filesystem errno met while serving the request. */
static void
s3_errno(struct s3req *r, int e, const char *what)
{
    if (e == -ENOTDIR || e == -EISDIR || e == -EEXIST || e == -ENOTEMPTY || e == -ELOOP)
        s3_error(r, 409, "KeyConflict",
                 "%s: the key conflicts with an existing object or key prefix", what);
    else if (e == -ENOSPC || e == -EDQUOT)
        s3_error(r, 507, "InsufficientStorage", "%s: %s", what, strerror(-e));
    else
        s3_error(r, 500, "InternalError", "%s: %s", what, strerror(-e));
}

/* ---- SigV4 ---- */

/* The signed headers' canonical form: "name:value\n", repeated headers joined with ',',
 * runs of spaces folded. -ENOENT when one is missing. */
static int
canonical_headers(struct s3req *r, const char *signed_headers, struct buf *b)
{
    const struct dt_http_head *h = dt_httpd_req_head(r->req);
    _cleanup_free_ char *list = xstrdup(signed_headers);
    char *p = list;

    for (;;) {
        char *semi = strchr(p, ';');
        const char *v;
        size_t idx = 0;
        bool first = true;

        if (semi)
            *semi = '\0';
        buf_adds(b, p);
        buf_adds(b, ":");
        while ((v = dt_http_head_get_next(h, p, &idx))) {
            if (!first)
                buf_adds(b, ",");
            first = false;
            for (const char *q = v; *q; q++)
                if (!(*q == ' ' && (q[1] == ' ' || q[1] == '\0')))
                    buf_add(b, q, 1);
        }
        if (first)
            return -ENOENT;
        buf_adds(b, "\n");
        if (!semi)
            return 0;
        p = semi + 1;
    }
}

/* Check the request's AWS4-HMAC-SHA256 Authorization header. Returns 0 with r->org set, or -1
 * after answering. Only header authentication is accepted (no presigned URLs, no POST forms). */
static int
verify_sigv4(struct s3req *r)
{
    const struct dt_http_head *h = dt_httpd_req_head(r->req);
    const char *auth = dt_httpd_req_header(r->req, "authorization");
    const char *date = dt_httpd_req_header(r->req, "x-amz-date");
    const char *payload = dt_httpd_req_header(r->req, "x-amz-content-sha256");
    const char *token = dt_httpd_req_header(r->req, "x-amz-security-token");
    _cleanup_(dt_s3_auth_done) struct dt_s3_auth a = { 0 };
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *query = NULL;
    char want_secret[65], want_token[65], hash[65], sig[65];
    struct buf canon = { 0 }, sts = { 0 };
    uint8_t k[32];
    time_t t;
    int res;

    if (!auth) {
        s3_error(r, 403, "AccessDenied", "anonymous access is not allowed: sign with SigV4");
        return -1;
    }
    res = dt_s3_parse_authorization(auth, &a, &err);
    if (res == -EACCES) {
        s3_error(r, 403, "InvalidAccessKeyId", "%s", err->message);
        return -1;
    }
    if (res < 0) {
        s3_error(r, 400, "AuthorizationHeaderMalformed", "%s", err->message);
        return -1;
    }
    if (!date || dt_s3_parse_amz_date(date, &t) < 0 || strncmp(date, a.date, 8) != 0) {
        s3_error(r, 403, "AccessDenied", "missing or malformed x-amz-date");
        return -1;
    }
    if (llabs((long long) (time(NULL) - t)) > MAX_SKEW_S) {
        s3_error(r, 403, "RequestTimeTooSkewed",
                 "the difference between the request time and the server's time is too large");
        return -1;
    }
    if (!payload) {
        s3_error(r, 400, "InvalidRequest", "missing x-amz-content-sha256");
        return -1;
    }
    if (strcmp(payload, "UNSIGNED-PAYLOAD") == 0) {
        r->payload[0] = '\0';
    } else if (strlen(payload) == 64 && is_hex(payload, 64)) {
        memcpy(r->payload, payload, 65);
    } else {
        /* STREAMING-* (aws-chunked) bodies: the SDK only sends them for streams of unknown
         * length, which lib-storage never passes (it buffers parts). */
        s3_error(r, 501, "NotImplemented", "x-amz-content-sha256 '%.40s' is not supported",
                 payload);
        return -1;
    }
    res = dt_s3_check_signed_headers(a.signed_headers, token != NULL, &err);
    if (res < 0) {
        if (res == -EACCES)
            s3_error(r, 403, "AccessDenied", "%s", err->message);
        else
            s3_error(r, 400, "AuthorizationHeaderMalformed", "%s", err->message);
        return -1;
    }
    derive(r->o, "token", a.access_key, want_token);
    if (!token || strlen(token) != 64 || CRYPTO_memcmp(token, want_token, 64) != 0) {
        s3_error(r, 403, "InvalidToken", "the security token is invalid");
        return -1;
    }

    buf_adds(&canon, h->method);
    buf_adds(&canon, "\n");
    buf_adds(&canon, h->path);
    buf_adds(&canon, "\n");
    if (dt_s3_canonical_query(h->query, &query, NULL) < 0) {
        free(canon.p);
        s3_error(r, 400, "InvalidArgument", "malformed query string");
        return -1;
    }
    buf_adds(&canon, query);
    buf_adds(&canon, "\n");
    if (canonical_headers(r, a.signed_headers, &canon) < 0) {
        free(canon.p);
        s3_error(r, 403, "SignatureDoesNotMatch", "a signed header is missing");
        return -1;
    }
    buf_printf(&canon, "\n%s\n%s", a.signed_headers, payload);
    sha256_hex(canon.p, canon.len, hash);
    free(canon.p);
    buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", date, a.date, a.region,
               hash);

    derive(r->o, "secret", a.access_key, want_secret);
    {
        _cleanup_free_ char *k0 = xasprintf("AWS4%s", want_secret);
        hmac256(k0, strlen(k0), a.date, k);
        hmac256(k, 32, a.region, k);
        hmac256(k, 32, "s3", k);
        hmac256(k, 32, "aws4_request", k);
        hmac256(k, 32, sts.p, k);
    }
    free(sts.p);
    hex(k, 32, sig);
    OPENSSL_cleanse(want_secret, sizeof(want_secret));
    if (strlen(a.signature) != 64 || CRYPTO_memcmp(a.signature, sig, 64) != 0) {
        s3_error(r, 403, "SignatureDoesNotMatch",
                 "the request signature we calculated does not match the signature you provided");
        return -1;
    }
    (void) snprintf(r->org, sizeof(r->org), "%s", a.org);
    return 0;
}

/* ---- ListObjectsV2 ---- */

struct listing {
    char **keys;
    size_t n;
    bool overflow;
};

/* Collect the regular files under FD (whose key prefix is BASE, "" or ending in '/'). */
static void
walk(int fd, const char *base, const char *prefix, const char *after, struct listing *l,
     unsigned depth)
{
    DIR *d;
    struct dirent *de;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

    if (dfd < 0 || depth > MAX_KEY / 2)
        return (void) safe_close(dfd);
    d = fdopendir(dfd);
    if (!d)
        return (void) safe_close(dfd);
    while ((de = readdir(d))) {
        _cleanup_free_ char *key = NULL;
        struct stat st;
        size_t plen = strlen(prefix), klen;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        key = xasprintf("%s%s", base, de->d_name);
        klen = strlen(key);
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            /* Only descend where keys with PREFIX can be. */
            _cleanup_free_ char *sub = xasprintf("%s/", key);
            size_t m = klen + 1 < plen ? klen + 1 : plen;
            int sfd;
            if (strncmp(sub, prefix, m) != 0)
                continue;
            sfd = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sfd >= 0) {
                walk(sfd, sub, prefix, after, l, depth + 1);
                safe_close(sfd);
            }
        } else if (S_ISREG(st.st_mode) && strncmp(key, prefix, plen) == 0 &&
                   (!after || strcmp(key, after) > 0)) {
            if (l->n >= MAX_LIST_SCAN) {
                l->overflow = true;
                break;
            }
            l->keys = xrealloc(l->keys, (l->n + 1) * sizeof(*l->keys));
            l->keys[l->n++] = TAKE_PTR(key);
        }
    }
    closedir(d);
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
list_objects(struct s3req *r)
{
    const char *prefix = dt_httpd_req_query(r->req, "prefix");
    const char *max_s = dt_httpd_req_query(r->req, "max-keys");
    const char *token = dt_httpd_req_query(r->req, "continuation-token");
    const char *start_after = dt_httpd_req_query(r->req, "start-after");
    const char *enc = dt_httpd_req_query(r->req, "encoding-type");
    const char *after = token && *token ? token : start_after;
    _cleanup_free_ char *own = xasprintf("%s/", r->org), *dirpart = NULL;
    struct listing l = { 0 };
    struct buf b = { 0 };
    uint64_t max = MAX_LIST_KEYS;
    size_t shown;
    const char *slash;
    int fd = -EBADF;
    bool url = enc && strcmp(enc, "url") == 0;

    if (dt_httpd_req_query(r->req, "delimiter")) {
        s3_error(r, 501, "NotImplemented", "delimiter is not supported");
        return;
    }
    if (enc && !url) {
        s3_error(r, 400, "InvalidArgument", "invalid encoding-type");
        return;
    }
    if (max_s && (parse_u64(max_s, &max) < 0)) {
        s3_error(r, 400, "InvalidArgument", "invalid max-keys");
        return;
    }
    if (max > MAX_LIST_KEYS)
        max = MAX_LIST_KEYS;
    if (!prefix)
        prefix = "";
    if (strncmp(prefix, own, strlen(own)) != 0) {
        s3_error(r, 403, "AccessDenied", "this key may only list under '%s'", own);
        return;
    }
    if (!dt_s3_prefix_valid(prefix) || (after && strlen(after) > MAX_KEY)) {
        s3_error(r, 400, "InvalidArgument", "invalid prefix");
        return;
    }
    /* Walk only the directory the prefix names, e.g. "<org>/<hash>/". */
    slash = strrchr(prefix, '/');
    dirpart = xstrndup(prefix, (size_t) (slash - prefix) + 1);
    if (strcmp(dirpart, "/") != 0) {
        _cleanup_free_ char *d = xstrndup(prefix, (size_t) (slash - prefix));
        fd = open_beneath(r->o->bucket_fd, d, O_RDONLY | O_DIRECTORY);
    }
    if (fd >= 0) {
        walk(fd, dirpart, prefix, after && *after ? after : NULL, &l, 0);
        safe_close(fd);
    } else if (fd != -ENOENT && fd != -ENOTDIR) {
        s3_errno(r, fd, "list");
        return;
    }
    if (l.n)
        qsort(l.keys, l.n, sizeof(*l.keys), str_cmp);
    shown = l.n < max ? l.n : (size_t) max;

    buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                 "<Name>" DT_OBJSTORE_BUCKET "</Name><Prefix>");
    if (url)
        buf_uri(&b, prefix, strlen(prefix), true);
    else
        buf_xml(&b, prefix);
    buf_printf(&b, "</Prefix><KeyCount>%zu</KeyCount><MaxKeys>%llu</MaxKeys>", shown,
               (unsigned long long) max);
    if (url)
        buf_adds(&b, "<EncodingType>url</EncodingType>");
    buf_printf(&b, "<IsTruncated>%s</IsTruncated>",
               shown < l.n || l.overflow ? "true" : "false");
    if (token) {
        buf_adds(&b, "<ContinuationToken>");
        buf_xml(&b, token);
        buf_adds(&b, "</ContinuationToken>");
    }
    if (start_after) {
        buf_adds(&b, "<StartAfter>");
        buf_xml(&b, start_after);
        buf_adds(&b, "</StartAfter>");
    }
    if ((shown < l.n || l.overflow) && shown > 0) {
        buf_adds(&b, "<NextContinuationToken>");
        buf_xml(&b, l.keys[shown - 1]);
        buf_adds(&b, "</NextContinuationToken>");
    }
    for (size_t i = 0; i < shown; i++) {
        struct stat st;
        char etag[80] = "", when[64];
        int ofd = open_beneath(r->o->bucket_fd, l.keys[i], O_RDONLY);

        if (ofd < 0 || fstat(ofd, &st) < 0) {
            safe_close(ofd);
            continue;
        }
        etag_of(ofd, etag);
        safe_close(ofd);
        iso_date(&st.st_mtim, when);
        buf_adds(&b, "<Contents><Key>");
        if (url)
            buf_uri(&b, l.keys[i], strlen(l.keys[i]), true);
        else
            buf_xml(&b, l.keys[i]);
        buf_printf(&b, "</Key><LastModified>%s</LastModified><ETag>", when);
        buf_xml(&b, etag);
        buf_printf(&b, "</ETag><Size>%llu</Size><StorageClass>STANDARD</StorageClass></Contents>",
                   (unsigned long long) st.st_size);
    }
    buf_adds(&b, "</ListBucketResult>");
    for (size_t i = 0; i < l.n; i++)
        free(l.keys[i]);
    free(l.keys);
    reply_xml(r, 200, &b, NULL, 0);
}

/* ---- PutObject and UploadPart: stream to a temporary file ---- */

static void
upload_discard(struct s3req *r)
{
    r->fd = safe_close(r->fd);
    if (r->tmp[0])
        (void) unlinkat(r->dir_fd, r->tmp, 0);
    r->tmp[0] = '\0';
}

static void
upload_commit(struct s3req *r)
{
    struct dt_objstore *o = r->o;
    uint8_t md[16], sha[32];
    char md5hex[33], shahex[65], etag[40];
    struct dt_http_header h[2];
    size_t nh = 0;
    int res;

    DT_ASSERT(EVP_DigestFinal_ex(r->md5, md, NULL));
    DT_ASSERT(EVP_DigestFinal_ex(r->sha, sha, NULL));
    hex(md, 16, md5hex);
    hex(sha, 32, shahex);
    if (r->payload[0] && strcmp(r->payload, shahex) != 0) {
        upload_discard(r);
        return s3_error(r, 400, "XAmzContentSHA256Mismatch",
                        "the provided x-amz-content-sha256 does not match the body");
    }
    if (r->want_crc && r->crc != r->crc_expect) {
        upload_discard(r);
        return s3_error(r, 400, "BadDigest", "the CRC32 you specified did not match the body");
    }
    if (r->want_md5 && memcmp(md, r->md5_expect, 16) != 0) {
        upload_discard(r);
        return s3_error(r, 400, "BadDigest",
                        "the Content-MD5 you specified did not match the body");
    }
    (void) snprintf(etag, sizeof(etag), "\"%s\"", md5hex);
    /* Best effort: listings show the ETag when the filesystem keeps user xattrs. */
    (void) fsetxattr(r->fd, ETAG_XATTR, etag, strlen(etag), 0);
    r->fd = safe_close(r->fd);
    if (r->part) {
        char name[16], ename[24];
        (void) snprintf(name, sizeof(name), "%u", r->part);
        (void) snprintf(ename, sizeof(ename), "%u.etag", r->part);
        res = write_file_at(r->dir_fd, ename, md5hex, 32, 0600);
        if (res >= 0)
            res = RET_NERRNO(renameat(r->dir_fd, r->tmp, r->dir_fd, name));
        if (res == -ENOENT) {
            upload_discard(r);
            return s3_error(r, 404, "NoSuchUpload", "the upload was aborted");
        }
    } else {
        const char *leaf;
        int pfd = open_parent(o->bucket_fd, r->key, true, &leaf);
        res = pfd;
        if (pfd >= 0) {
            res = RET_NERRNO(renameat(r->dir_fd, r->tmp, pfd, leaf));
            safe_close(pfd);
        }
    }
    if (res < 0) {
        upload_discard(r);
        return s3_errno(r, res, "store the object");
    }
    r->tmp[0] = '\0';
    h[nh++] = (struct dt_http_header){ .name = "ETag", .value = etag };
    if (r->want_crc)
        h[nh++] = (struct dt_http_header){ .name = "x-amz-checksum-crc32", .value = r->crc_b64 };
    reply(r, 200, NULL, NULL, 0, h, nh);
}

static void
upload_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct s3req *r = ud;
    int res;

    if (r->failed)
        return;
    if (error < 0) {
        upload_discard(r);
        if (error == -EFBIG)
            return s3_error(r, 400, "EntityTooLarge", "the body is too large");
        return s3_error(r, 400, "IncompleteBody", "the body ended early or was malformed");
    }
    if (!data)
        return upload_commit(r);
    r->bytes += len;
    if (r->bytes > r->limit) {
        upload_discard(r);
        return s3_error(r, 400, "EntityTooLarge", "the body is larger than %llu bytes",
                        (unsigned long long) r->limit);
    }
    /* A local disk write: blocking the loop this briefly beats a thread round trip per piece. */
    res = write_all(r->fd, data, len);
    if (res < 0) {
        upload_discard(r);
        return s3_errno(r, res, "write the body");
    }
    DT_ASSERT(EVP_DigestUpdate(r->md5, data, len));
    DT_ASSERT(EVP_DigestUpdate(r->sha, data, len));
    if (r->want_crc)
        r->crc = crc32_update(r->crc, (const uint8_t *) data, len);
}

/* Open the upload directory of the request's uploadId and check it is for r->key. */
static int
open_upload(struct s3req *r, const char *id)
{
    _cleanup_free_ char *key = NULL;
    int fd, res;

    if (!id || strlen(id) != 32 || !is_hex(id, 32)) {
        s3_error(r, 404, "NoSuchUpload", "the specified upload does not exist");
        return -1;
    }
    fd = openat(r->o->uploads_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        s3_error(r, 404, "NoSuchUpload", "the specified upload does not exist");
        return -1;
    }
    res = read_file_at(fd, "key", MAX_KEY + 1, &key, NULL);
    if (res < 0 || strcmp(key, r->key) != 0) {
        safe_close(fd);
        s3_error(r, 404, "NoSuchUpload", "the specified upload does not exist");
        return -1;
    }
    return fd;
}

static void
upload_begin(struct s3req *r, unsigned part, const char *upload_id)
{
    const struct dt_http_head *h = dt_httpd_req_head(r->req);
    const char *crc = dt_httpd_req_header(r->req, "x-amz-checksum-crc32");
    const char *md5 = dt_httpd_req_header(r->req, "content-md5");
    const char *enc = dt_httpd_req_header(r->req, "content-encoding");
    char rnd[33];

    if (dt_httpd_req_header(r->req, "x-amz-copy-source"))
        return s3_error(r, 501, "NotImplemented", "CopyObject is not supported");
    if (enc && strstr(enc, "aws-chunked"))
        return s3_error(r, 501, "NotImplemented", "aws-chunked bodies are not supported");
    r->limit = MAX_PART_SIZE;
    if (h->has_content_length && h->content_length > r->limit)
        return s3_error(r, 400, "EntityTooLarge", "the body is larger than %llu bytes",
                        (unsigned long long) r->limit);
    if (crc) {
        uint8_t raw[4];
        if (b64_decode(crc, raw, 4) < 0)
            return s3_error(r, 400, "InvalidRequest", "malformed x-amz-checksum-crc32");
        r->want_crc = true;
        r->crc_expect = (uint32_t) raw[0] << 24 | (uint32_t) raw[1] << 16 |
                        (uint32_t) raw[2] << 8 | raw[3];
        (void) snprintf(r->crc_b64, sizeof(r->crc_b64), "%s", crc);
    }
    if (md5) {
        if (b64_decode(md5, r->md5_expect, 16) < 0)
            return s3_error(r, 400, "InvalidDigest", "malformed Content-MD5");
        r->want_md5 = true;
    }
    if (part) {
        r->dir_fd = open_upload(r, upload_id);
        if (r->dir_fd < 0)
            return;
        r->own_dir_fd = true;
        r->part = part;
    } else {
        r->dir_fd = r->o->tmp_fd;
    }
    random_hex(rnd, 16);
    (void) snprintf(r->tmp, sizeof(r->tmp), ".tmp-%s", rnd);
    r->fd = openat(r->dir_fd, r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        int e = -errno;
        r->tmp[0] = '\0';
        return s3_errno(r, e, "create a temporary file");
    }
    r->md5 = EVP_MD_CTX_new();
    r->sha = EVP_MD_CTX_new();
    DT_ASSERT(r->md5 && r->sha);
    DT_ASSERT(EVP_DigestInit_ex(r->md5, EVP_md5(), NULL));
    DT_ASSERT(EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL));
    dt_httpd_req_stream_body(r->req, upload_body, r);
}

/* ---- multipart ---- */

static void
create_upload(struct s3req *r)
{
    char id[33];
    struct buf b = { 0 };
    int fd, res;

    random_hex(id, 16);
    if (mkdirat(r->o->uploads_fd, id, 0700) < 0)
        return s3_errno(r, -errno, "create the upload");
    fd = openat(r->o->uploads_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    res = fd < 0 ? -errno : write_file_at(fd, "key", r->key, strlen(r->key), 0600);
    safe_close(fd);
    if (res < 0) {
        (void) rm_rf_at(r->o->uploads_fd, id);
        return s3_errno(r, res, "create the upload");
    }
    buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
                 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>" DT_OBJSTORE_BUCKET
                 "</Bucket><Key>");
    buf_xml(&b, r->key);
    buf_printf(&b, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", id);
    reply_xml(r, 200, &b, NULL, 0);
}

static void
abort_upload(struct s3req *r, const char *id)
{
    int fd = open_upload(r, id);

    if (fd < 0)
        return;
    safe_close(fd);
    (void) rm_rf_at(r->o->uploads_fd, id);
    reply(r, 204, NULL, NULL, 0, NULL, 0);
}


struct complete_ctx {
    struct s3req *r;
    char id[33];
};

/* CompleteMultipartUpload's body arrived: check the part list, concatenate the parts in order
 * into the object and answer. The copy runs on the loop (copy_file_range, usually a reflink or
 * an in-kernel copy), which is acceptable for build contexts. */
static void
complete_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct s3req *r = ud;
    struct dt_objstore *o = r->o;
    const char *leaf;
    _cleanup_close_ int dfd = -EBADF, out = -EBADF;
    _cleanup_free_ char *id = NULL;
    _cleanup_free_ struct dt_s3_part *parts = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    size_t count = 0;
    EVP_MD_CTX *all = NULL;
    uint64_t total = 0;
    uint8_t md[16];
    char md5hex[33], rnd[33], tmp[48], etag[48];
    struct buf b = { 0 };
    int pfd, res;

    if (r->failed)
        return;
    if (error < 0)
        return s3_error(r, 400, error == -EFBIG ? "EntityTooLarge" : "IncompleteBody",
                        "cannot read the part list");
    if (r->payload[0]) {
        char h[65];
        sha256_hex(data, len, h);
        if (strcmp(h, r->payload) != 0)
            return s3_error(r, 400, "XAmzContentSHA256Mismatch",
                            "the provided x-amz-content-sha256 does not match the body");
    }
    id = xstrdup(dt_httpd_req_query(req, "uploadId"));
    dfd = open_upload(r, id);
    if (dfd < 0)
        return;

    res = dt_s3_parse_complete(data, len, &parts, &count, &err);
    if (res == -ERANGE)
        return s3_error(r, 400, "InvalidPartOrder", "%s", err->message);
    if (res < 0)
        return s3_error(r, 400, "MalformedXML", "%s", err->message);

    /* First pass: check every part exists, its ETag and the total size. */
    for (size_t i = 0; i < count; i++) {
        uint32_t n = parts[i].number;
        char stored[40] = "", name[16], ename[24];
        char *text = NULL;
        struct stat st;

        (void) snprintf(name, sizeof(name), "%u", n);
        (void) snprintf(ename, sizeof(ename), "%u.etag", n);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            read_file_at(dfd, ename, 64, &text, NULL) < 0)
            return s3_error(r, 400, "InvalidPart", "part %u was not uploaded", n);
        (void) snprintf(stored, sizeof(stored), "%s", text);
        free(text);
        if (!parts[i].etag[0] || strcmp(parts[i].etag, stored) != 0)
            return s3_error(r, 400, "InvalidPart", "the ETag of part %u does not match", n);
        total += (uint64_t) st.st_size;
        if (total > MAX_OBJECT_SIZE)
            return s3_error(r, 400, "EntityTooLarge", "the object would be larger than %llu bytes",
                            (unsigned long long) MAX_OBJECT_SIZE);
    }

    /* Second pass: concatenate. S3's multipart ETag is the MD5 of the parts' binary MD5s. */
    random_hex(rnd, 16);
    (void) snprintf(tmp, sizeof(tmp), ".tmp-%s", rnd);
    out = openat(o->tmp_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return s3_errno(r, -errno, "create a temporary file");
    all = EVP_MD_CTX_new();
    DT_ASSERT(all && EVP_DigestInit_ex(all, EVP_md5(), NULL));
    res = 0;
    for (size_t i = 0; i < count && res == 0; i++) {
        _cleanup_free_ char *text = NULL;
        uint8_t raw[16];
        uint32_t n = parts[i].number;
        int in;

        char name[24];
        (void) snprintf(name, sizeof(name), "%u.etag", n);
        res = read_file_at(dfd, name, 64, &text, NULL);
        if (res < 0)
            break;
        for (int j = 0; j < 16; j++) {
            unsigned v;
            if (sscanf(text + 2 * j, "%2x", &v) != 1) {
                res = -EINVAL;
                break;
            }
            raw[j] = (uint8_t) v;
        }
        DT_ASSERT(EVP_DigestUpdate(all, raw, 16));
        (void) snprintf(name, sizeof(name), "%u", n);
        in = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0) {
            res = -errno;
            break;
        }
        res = copy_fd_all(in, out);
        safe_close(in);
    }
    DT_ASSERT(EVP_DigestFinal_ex(all, md, NULL));
    EVP_MD_CTX_free(all);
    if (res < 0) {
        (void) unlinkat(o->tmp_fd, tmp, 0);
        return s3_errno(r, res, "assemble the object");
    }
    hex(md, 16, md5hex);
    (void) snprintf(etag, sizeof(etag), "\"%s-%zu\"", md5hex, count);
    (void) fsetxattr(out, ETAG_XATTR, etag, strlen(etag), 0);
    pfd = open_parent(o->bucket_fd, r->key, true, &leaf);
    res = pfd;
    if (pfd >= 0) {
        res = RET_NERRNO(renameat(o->tmp_fd, tmp, pfd, leaf));
        safe_close(pfd);
    }
    if (res < 0) {
        (void) unlinkat(o->tmp_fd, tmp, 0);
        return s3_errno(r, res, "store the object");
    }
    (void) rm_rf_at(o->uploads_fd, id);
    buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult "
                 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>");
    buf_xml(&b, o->s->public_url ? o->s->public_url : "");
    buf_adds(&b, "/s3/" DT_OBJSTORE_BUCKET "/");
    buf_xml(&b, r->key);
    buf_adds(&b, "</Location><Bucket>" DT_OBJSTORE_BUCKET "</Bucket><Key>");
    buf_xml(&b, r->key);
    buf_adds(&b, "</Key><ETag>");
    buf_xml(&b, etag);
    buf_adds(&b, "</ETag></CompleteMultipartUploadResult>");
    {
        struct dt_http_header h = { .name = "ETag", .value = etag };
        reply_xml(r, 200, &b, &h, 1);
    }
}

/* ---- GetObject / HeadObject / DeleteObject ---- */

static void
get_drain(struct dt_httpd_req *req, void *ud)
{
    struct s3req *r = ud;

    while (r->remaining > 0 && dt_httpd_queued(req) < GET_QUEUE) {
        size_t want = r->remaining < GET_CHUNK ? (size_t) r->remaining : GET_CHUNK;
        char *b = xmalloc(want);
        ssize_t n = read(r->get_fd, b, want);
        if (n < 0 && errno == EINTR) {
            free(b);
            continue;
        }
        if (n <= 0) {
            /* Shrunk under us: a truncated body is better than a wrong one. */
            free(b);
            return dt_httpd_abort(req);
        }
        r->remaining -= (uint64_t) n;
        if (dt_httpd_write_owned(req, b, (size_t) n) < 0)
            return;
    }
    if (r->remaining == 0) {
        r->get_fd = safe_close(r->get_fd);
        (void) dt_httpd_end(req);
    }
}

static void
get_object(struct s3req *r, bool head)
{
    char etag[80], when[64];
    struct dt_http_header h[4];
    struct stat st;
    int fd = open_beneath(r->o->bucket_fd, r->key, O_RDONLY);

    if (fd < 0 && (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP || fd == -EXDEV))
        return s3_error(r, 404, "NoSuchKey", "the specified key does not exist");
    if (fd < 0)
        return s3_errno(r, fd, "open the object");
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        safe_close(fd);
        return s3_error(r, 404, "NoSuchKey", "the specified key does not exist");
    }
    etag_of(fd, etag);
    http_date(st.st_mtim.tv_sec, when);
    h[0] = (struct dt_http_header){ .name = "Content-Type", .value = "application/octet-stream" };
    h[1] = (struct dt_http_header){ .name = "Last-Modified", .value = when };
    h[2] = (struct dt_http_header){ .name = "Accept-Ranges", .value = "none" };
    h[3] = (struct dt_http_header){ .name = "ETag", .value = etag };
    for (size_t i = 0; i < 4; i++) {
        h[i].name_len = strlen(h[i].name);
        h[i].value_len = strlen(h[i].value);
    }
    if (dt_httpd_start(r->req, 200, h, etag[0] ? 4 : 3, (int64_t) st.st_size) < 0 || head) {
        safe_close(fd);
        (void) dt_httpd_end(r->req);
        return;
    }
    r->get_fd = fd;
    r->remaining = (uint64_t) st.st_size;
    dt_httpd_req_set_drain_cb(r->req, get_drain, r);
    get_drain(r->req, r);
}

static void
delete_object(struct s3req *r)
{
    const char *leaf;
    int pfd = open_parent(r->o->bucket_fd, r->key, false, &leaf);

    if (pfd >= 0) {
        (void) unlinkat(pfd, leaf, 0);
        safe_close(pfd);
    }
    reply(r, 204, NULL, NULL, 0, NULL, 0);
}

/* ---- entry points ---- */

static void
s3req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct s3req *r = ud;

    upload_discard(r);
    if (r->own_dir_fd)
        safe_close(r->dir_fd);
    safe_close(r->get_fd);
    EVP_MD_CTX_free(r->md5);
    EVP_MD_CTX_free(r->sha);
    free(r->key);
    free(r);
}

void
dt_objstore_handle(struct dt_objstore *o, struct dt_httpd_req *req, const char *const *seg,
                   size_t n)
{
    const struct dt_http_head *h = dt_httpd_req_head(req);
    const char *m = h->method, *path = h->path, *slash;
    const char *upload_id = dt_httpd_req_query(req, "uploadId");
    struct s3req *r = xcalloc(1, sizeof(*r));
    _cleanup_free_ char *bucket = NULL;
    size_t len;

    r->o = o;
    r->req = req;
    r->fd = r->get_fd = r->dir_fd = -EBADF;
    dt_httpd_req_set_close_cb(req, s3req_close, r);

    if (verify_sigv4(r) < 0)
        return;
    /* The raw path, not SEG: segments drop empty components, which would let "a//b" and "a/b"
     * name the same object. */
    DT_ASSERT(strncmp(path, "/s3", 3) == 0);
    path += 3;
    if (*path == '/')
        path++;
    slash = strchr(path, '/');
    len = slash ? (size_t) (slash - path) : strlen(path);
    bucket = xmalloc(len + 1);
    if (len == 0)
        return s3_error(r, 501, "NotImplemented", "ListBuckets is not supported");
    if (dt_http_percent_decode(path, len, bucket, &len, false) < 0 ||
        strcmp(bucket, DT_OBJSTORE_BUCKET) != 0)
        return s3_error(r, 404, "NoSuchBucket", "the specified bucket does not exist");
    if (slash && slash[1]) {
        _cleanup_error_ struct dt_error *err = NULL;
        int res = dt_s3_parse_key(slash + 1, &r->key, &err);
        if (res == -ENAMETOOLONG)
            return s3_error(r, 400, "KeyTooLongError", "%s", err->message);
        if (res < 0)
            return s3_error(r, 400, "InvalidArgument", "%s", err->message);
    }

    if (!r->key) {
        if (strcmp(m, "GET") == 0 && dt_httpd_req_query(req, "list-type")) {
            if (strcmp(dt_httpd_req_query(req, "list-type"), "2") != 0)
                return s3_error(r, 400, "InvalidArgument", "invalid list-type");
            return list_objects(r);
        }
        if (strcmp(m, "HEAD") == 0)
            return reply(r, 200, NULL, NULL, 0, NULL, 0); /* HeadBucket */
        return s3_error(r, 501, "NotImplemented", "this bucket operation is not supported");
    }
    {
        _cleanup_free_ char *own = xasprintf("%s/", r->org);
        if (strncmp(r->key, own, strlen(own)) != 0)
            return s3_error(r, 403, "AccessDenied", "this key may only access keys under '%s'",
                            own);
    }
    if (strcmp(m, "PUT") == 0) {
        const char *pn = dt_httpd_req_query(req, "partNumber");
        uint32_t part = 0;
        if (!pn && !upload_id)
            return upload_begin(r, 0, NULL);
        if (!pn || !upload_id || dt_s3_parse_part_number(pn, &part) < 0)
            return s3_error(r, 400, "InvalidArgument",
                            "partNumber must be an integer between 1 and %d", MAX_PARTS);
        return upload_begin(r, part, upload_id);
    }
    if (strcmp(m, "POST") == 0 && dt_httpd_req_query(req, "uploads"))
        return create_upload(r);
    if (strcmp(m, "POST") == 0 && upload_id)
        return dt_httpd_req_read_body(req, MAX_COMPLETE_BODY, complete_body, r);
    if (strcmp(m, "DELETE") == 0 && upload_id)
        return abort_upload(r, upload_id);
    if (strcmp(m, "DELETE") == 0)
        return delete_object(r);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return get_object(r, strcmp(m, "HEAD") == 0);
    s3_error(r, 405, "MethodNotAllowed", "the method is not allowed on this resource");
}

void
dt_objstore_push_access(struct dt_objstore *o, struct call *c)
{
    _cleanup_free_ char *akid = NULL, *url = NULL;
    char secret[65], token[65];

    if (!c->org || !dt_s3_org_valid(c->org))
        return dt_api_error(c->req, 500, "INTERNAL_ERROR",
                            "organization id not usable for object storage");
    akid = xasprintf("DTN%s", c->org);
    derive(o, "secret", akid, secret);
    derive(o, "token", akid, token);
    url = xasprintf("%s/s3", o->s->public_url ? o->s->public_url : "");
    dt_httpd_reply_json(c->req, 200,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "accessKey", akid,
                                  "secret", secret, "sessionToken", token, "storageUrl", url,
                                  "organizationId", c->org, "bucket", DT_OBJSTORE_BUCKET,
                                  "region", DT_OBJSTORE_REGION));
    OPENSSL_cleanse(secret, sizeof(secret));
}

char *
dt_objstore_context_path(struct dt_objstore *o, const char *org, const char *hash)
{
    _cleanup_free_ char *key = NULL;
    struct stat st;
    int fd;

    if (!org || !hash || !dt_s3_org_valid(org) || strlen(hash) != 32 || !is_hex(hash, 32))
        return NULL;
    key = xasprintf("%s/%s/context.tar", org, hash);
    fd = open_beneath(o->bucket_fd, key, O_RDONLY);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        safe_close(fd);
        return NULL;
    }
    safe_close(fd);
    return xasprintf("%s/" DT_OBJSTORE_BUCKET "/%s", o->dir, key);
}

static int
load_secret(struct dt_objstore *o, struct dt_error **err)
{
    _cleanup_free_ char *path = xasprintf("%s/objstore-secret", o->s->data_dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r;

    r = read_file_at(AT_FDCWD, path, SECRET_BYTES + 1, &data, &len);
    if (r == -ENOENT) {
        _cleanup_close_ int fd = -EBADF;
        /* O_EXCL: two servers on one data directory must not each make their own. */
        if (getrandom(o->secret, SECRET_BYTES, 0) != SECRET_BYTES)
            return dt_error_errno(err, errno, "generate the object storage secret");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return dt_error_errno(err, errno, "create %s", path);
        r = write_all(fd, o->secret, SECRET_BYTES);
        if (r >= 0)
            r = RET_NERRNO(fsync(fd));
        if (r < 0) {
            (void) unlink(path);
            return dt_error_errno(err, -r, "write %s", path);
        }
        return 0;
    }
    if (r < 0)
        return dt_error_errno(err, -r, "read %s", path);
    if (len != SECRET_BYTES)
        return dt_error_set(err, -EINVAL, "%s: expected %d bytes", path, SECRET_BYTES);
    memcpy(o->secret, data, SECRET_BYTES);
    OPENSSL_cleanse(data, len);
    return 0;
}

static int
open_dir(int base, const char *name, int *ret)
{
    if (mkdirat(base, name, 0700) < 0 && errno != EEXIST)
        return -errno;
    *ret = openat(base, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return *ret < 0 ? -errno : 0;
}

int
dt_objstore_new(struct dt_server *s, const char *dir, struct dt_objstore **ret,
                struct dt_error **err)
{
    struct dt_objstore *o = xcalloc(1, sizeof(*o));
    _cleanup_close_ int dfd = -EBADF;
    int r;

    o->s = s;
    o->dir = xstrdup(dir);
    o->bucket_fd = o->tmp_fd = o->uploads_fd = -EBADF;
    r = load_secret(o, err);
    if (r < 0) {
        dt_objstore_free(o);
        return r;
    }
    r = mkdir_p(dir, 0700);
    if (r < 0) {
        dt_objstore_free(o);
        return dt_error_errno(err, -r, "create %s", dir);
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        r = -errno;
        dt_objstore_free(o);
        return dt_error_errno(err, -r, "open %s", dir);
    }
    /* Half-written bodies of a crashed run are garbage; so are unfinished uploads, which the
     * SDK never resumes. */
    (void) rm_rf_at(dfd, ".tmp");
    (void) rm_rf_at(dfd, ".uploads");
    r = open_dir(dfd, DT_OBJSTORE_BUCKET, &o->bucket_fd);
    if (r >= 0)
        r = open_dir(dfd, ".tmp", &o->tmp_fd);
    if (r >= 0)
        r = open_dir(dfd, ".uploads", &o->uploads_fd);
    if (r < 0) {
        dt_objstore_free(o);
        return dt_error_errno(err, -r, "create the object storage directories in %s", dir);
    }
    *ret = o;
    return 0;
}

void
dt_objstore_free(struct dt_objstore *o)
{
    if (!o)
        return;
    safe_close(o->bucket_fd);
    safe_close(o->tmp_fd);
    safe_close(o->uploads_fd);
    OPENSSL_cleanse(o->secret, sizeof(o->secret));
    free(o->dir);
    free(o);
}
