/* SPDX-License-Identifier: Apache-2.0 */
/* Image build contexts (contract §2.8): the SDK's MD5 context hash, a portable tar of a local file
 * or directory written to an unlinked temporary file, and the two S3 calls the SDK makes
 * (ListObjectsV2 to skip a context the server already has, PutObject) signed with AWS SigV4.
 * Also the Dockerfile rewrite that turns COPY/ADD sources into uploaded absolute paths. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client-int.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define DEFAULT_BUCKET "daytona-volume-builds"
#define MAX_PUT_SIZE (5ULL << 30)   /* one PutObject (S3's limit; we do not do multipart) */
#define IO_CHUNK (64U << 10)
#define MAX_DEPTH 256

/* ---- small helpers ---- */

static void
hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void
hmac256(const void *key, size_t key_len, const char *msg, uint8_t out[32])
{
    unsigned int len = 32;

    (void) HMAC(EVP_sha256(), key, (int) key_len, (const unsigned char *) msg, strlen(msg), out,
                &len);
}

void
dc_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned int n = 32;

    (void) EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

/* S3's URI encoding: everything but the unreserved characters, and '/' too unless KEEP_SLASH. */
static char *
s3_encode(const char *s, bool keep_slash)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = xmalloc(n * 3 + 1), *p = o;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
            *p++ = (char) ch;
        } else {
            *p++ = '%';
            *p++ = hx[ch >> 4];
            *p++ = hx[ch & 15];
        }
    }
    *p = '\0';
    return o;
}

/* ---- AWS Signature Version 4 ---- */

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Canonical query: the (already encoded) "k=v" pairs sorted; a bare "k" becomes "k=". */
static char *
canonical_query(const char *query)
{
    _cleanup_free_ char *copy = xstrdup(query ? query : "");
    char **v = NULL, *save = NULL, *out;
    size_t n = 0, len = 1;

    for (char *t = strtok_r(copy, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
        v = xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = strchr(t, '=') ? xstrdup(t) : xasprintf("%s=", t);
        len += strlen(v[n - 1]) + 1;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    out = xmalloc(len);
    out[0] = '\0';
    for (size_t i = 0, off = 0; i < n; i++) {
        off += (size_t) snprintf(out + off, len - off, "%s%s", i ? "&" : "", v[i]);
        free(v[i]);
    }
    free(v);
    return out;
}

int
dc_sigv4_authorization(const struct dc_sigv4 *s, char **ret)
{
    _cleanup_free_ char *query = NULL, *canon = NULL, *names = NULL, *hdrs = NULL;
    _cleanup_free_ char *sts = NULL, *k0 = NULL;
    char **sorted = NULL, chash[65], sig[65], date[9];
    size_t n = 0, hlen = 1, nlen = 1;
    uint8_t k[32];

    if (!s->amz_date || strlen(s->amz_date) != 16)
        return -EINVAL;
    memcpy(date, s->amz_date, 8);
    date[8] = '\0';
    for (; s->headers && s->headers[n]; n++)
        ;
    sorted = xcalloc(n + 1, sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        const char *h = s->headers[i], *colon = strchr(h, ':');
        const char *v;
        size_t vl;
        char *e;

        if (!colon) {
            free(sorted);
            return -EINVAL;
        }
        /* Lowercase name, value with surrounding blanks trimmed (inner runs kept: we never
         * sign values with them). */
        v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        e = xasprintf("%.*s:%.*s", (int) (colon - h), h, (int) vl, v);
        for (char *p = e; *p != ':'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char) (*p - 'A' + 'a');
        sorted[i] = e;
        hlen += strlen(e) + 1;
        nlen += (size_t) (colon - h) + 1;
    }
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    hdrs = xmalloc(hlen);
    names = xmalloc(nlen);
    hdrs[0] = names[0] = '\0';
    for (size_t i = 0, ho = 0, no = 0; i < n; i++) {
        ho += (size_t) snprintf(hdrs + ho, hlen - ho, "%s\n", sorted[i]);
        no += (size_t) snprintf(names + no, nlen - no, "%s%.*s", i ? ";" : "",
                                (int) (strchr(sorted[i], ':') - sorted[i]), sorted[i]);
        free(sorted[i]);
    }
    free(sorted);

    query = canonical_query(s->query);
    canon = xasprintf("%s\n%s\n%s\n%s\n%s\n%s", s->method, s->path, query, hdrs, names,
                      s->payload_hash);
    dc_sha256_hex(canon, strlen(canon), chash);
    sts = xasprintf("AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", s->amz_date, date,
                    s->region, s->service, chash);
    k0 = xasprintf("AWS4%s", s->secret);
    hmac256(k0, strlen(k0), date, k);
    hmac256(k, 32, s->region, k);
    hmac256(k, 32, s->service, k);
    hmac256(k, 32, "aws4_request", k);
    hmac256(k, 32, sts, k);
    hex_encode(k, 32, sig);
    explicit_bzero(k0, strlen(k0));
    *ret = xasprintf("AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                     "Signature=%s", s->access_key, date, s->region, s->service, names, sig);
    return 0;
}

/* ---- push access ---- */

struct push_access {
    char *access_key, *secret, *token, *storage_url, *org, *bucket, *region;
};

static void
push_access_done(struct push_access *pa)
{
    free(pa->access_key);
    if (pa->secret)
        explicit_bzero(pa->secret, strlen(pa->secret));
    free(pa->secret);
    free(pa->token);
    free(pa->storage_url);
    free(pa->org);
    free(pa->bucket);
    free(pa->region);
}

static int
push_access_get(daytona_client *c, struct push_access *pa, daytona_error **err)
{
    _cleanup_free_ char *url = dc_api_url(c, "/object-storage/push-access");
    json_t *j = NULL;
    int r;

    *pa = (struct push_access) { 0 };
    r = dc_json_call(c, "GET", url, NULL, 0, &j, "get object storage access", err);
    if (r < 0)
        return r;
    pa->access_key = dc_jstr(j, "accessKey");
    pa->secret = dc_jstr(j, "secret");
    pa->token = dc_jstr(j, "sessionToken");
    pa->storage_url = dc_jstr(j, "storageUrl");
    pa->org = dc_jstr(j, "organizationId");
    pa->bucket = dc_jstr(j, "bucket");
    pa->region = dc_jstr(j, "region");
    json_decref(j);
    if (!pa->access_key || !pa->secret || !pa->storage_url || !pa->org || !pa->org[0] ||
        (strncmp(pa->storage_url, "http://", 7) != 0 &&
         strncmp(pa->storage_url, "https://", 8) != 0)) {
        push_access_done(pa);
        return dc_error(err, EPROTO, "get object storage access: the answer lacks accessKey, "
                                     "secret, storageUrl or organizationId");
    }
    if (!pa->bucket || !pa->bucket[0]) {
        free(pa->bucket);
        pa->bucket = xstrdup(DEFAULT_BUCKET);
    }
    if (!pa->region || !pa->region[0]) {
        free(pa->region);
        pa->region = xstrdup("us-east-1");
    }
    /* No trailing slash: we append "/bucket/...". */
    for (size_t l = strlen(pa->storage_url); l > 8 && pa->storage_url[l - 1] == '/'; l--)
        pa->storage_url[l - 1] = '\0';
    return 0;
}

/* One signed S3 request: METHOD on storageUrl + PATH_SUFFIX (encoded) + "?" QUERY (encoded,
 * may be NULL). The body, when FD >= 0, is SIZE bytes read from FD with sha256 PAYLOAD. */
struct s3_body {
    int fd;
    int error;
};

static size_t
s3_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct s3_body *b = ud;
    ssize_t n;

    do
        n = read(b->fd, buf, size * nmemb);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        b->error = errno;
        return CURL_READFUNC_ABORT;
    }
    return (size_t) n;
}

static int
s3_call(daytona_client *c, const struct push_access *pa, const char *method,
        const char *path_suffix, const char *query, int fd, uint64_t size, const char *payload,
        struct dc_resp *resp, const char *what, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *path = NULL, *host = NULL, *auth = NULL;
    _cleanup_free_ char *h_host = NULL, *h_date = NULL, *h_sha = NULL, *h_tok = NULL;
    const char *authority = strstr(pa->storage_url, "://") + 3;
    const char *slash = strchr(authority, '/');
    const char *at;
    struct curl_slist *hdrs = NULL;
    struct s3_body body = { .fd = fd };
    char amz_date[32];
    struct tm tm;
    time_t now = time(NULL);
    int r;

    host = slash ? xstrndup(authority, (size_t) (slash - authority)) : xstrdup(authority);
    at = strrchr(host, '@');
    if (at) {
        char *h = xstrdup(at + 1);
        free(host);
        host = h;
    }
    path = xasprintf("%s%s", slash ? slash : "", path_suffix);
    url = query ? xasprintf("%s%s?%s", pa->storage_url, path_suffix, query)
                : xasprintf("%s%s", pa->storage_url, path_suffix);
    (void) gmtime_r(&now, &tm);
    (void) strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    h_host = xasprintf("Host: %s", host);
    h_date = xasprintf("X-Amz-Date: %s", amz_date);
    h_sha = xasprintf("X-Amz-Content-Sha256: %s", payload);
    h_tok = pa->token ? xasprintf("X-Amz-Security-Token: %s", pa->token) : NULL;
    {
        const char *sh[] = { h_host, h_date, h_sha, h_tok, NULL };
        struct dc_sigv4 s = {
            .method = method, .path = path, .query = query, .amz_date = amz_date,
            .region = pa->region, .service = "s3", .access_key = pa->access_key,
            .secret = pa->secret, .payload_hash = payload, .headers = sh,
        };
        r = dc_sigv4_authorization(&s, &auth);
        if (r < 0)
            return dc_error(err, -r, "%s: sign the request", what);
    }
    {
        _cleanup_free_ char *h_auth = xasprintf("Authorization: %s", auth);
        struct dc_req req = {
            .method = method, .url = url, .accept = "application/xml",
            .raw_headers = NULL, .content_type = "application/x-tar",
        };

        hdrs = curl_slist_append(hdrs, h_host);
        hdrs = curl_slist_append(hdrs, h_date);
        hdrs = curl_slist_append(hdrs, h_sha);
        if (h_tok)
            hdrs = curl_slist_append(hdrs, h_tok);
        hdrs = curl_slist_append(hdrs, h_auth);
        if (!hdrs)
            return dc_error(err, ENOMEM, "%s: build request headers", what);
        req.raw_headers = hdrs;
        if (fd >= 0) {
            req.read_fn = s3_read;
            req.read_ud = &body;
            req.upload_size = (int64_t) size;
            /* A large context may take a while on a slow link: no overall limit. */
            req.timeout_ms = -1;
        }
        r = dc_perform(c, &req, resp, what, err);
        curl_slist_free_all(hdrs);
    }
    if (r == -EIO && body.error)
        return dc_error_errno(err, body.error, "%s: read the archive", what);
    return r;
}

/* ---- the SDK's context hash ---- */

static int
cmp_dirent(const struct dirent **a, const struct dirent **b)
{
    /* libuv's scandir (under Node's readdirSync) sorts names with strcmp. */
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int
skip_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int
entry_type(const char *path, const struct dirent *d)
{
    struct stat st;

    /* Node's Dirent reports d_type (a symlink is neither file nor directory). */
    if (d->d_type != DT_UNKNOWN)
        return d->d_type;
    if (lstat(path, &st) < 0)
        return DT_UNKNOWN;
    return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ?
                                 DT_LNK : DT_UNKNOWN;
}

static int
hash_file(EVP_MD_CTX *md, const char *path, daytona_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    _cleanup_free_ char *buf = NULL;
    ssize_t n;

    if (fd < 0)
        return dc_error_errno(err, errno, "open '%s'", path);
    buf = xmalloc(IO_CHUNK);
    while ((n = read(fd, buf, IO_CHUNK)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return dc_error_errno(err, errno, "read '%s'", path);
        }
        (void) EVP_DigestUpdate(md, buf, (size_t) n);
    }
    return 0;
}

/* hashDirectory(): files as relative path + content, in sorted order; an entry-less directory
 * (no files, no subdirectories) as its relative path. */
static int
hash_dir(EVP_MD_CTX *md, const char *root, const char *rel, int depth, daytona_error **err)
{
    _cleanup_free_ char *dir = rel[0] ? xasprintf("%s/%s", root, rel) : xstrdup(root);
    struct dirent **ents = NULL;
    bool any = false;
    int n, r = 0;

    if (depth > MAX_DEPTH)
        return dc_error(err, ELOOP, "'%s': directories nested too deeply", dir);
    n = scandir(dir, &ents, skip_dots, cmp_dirent);
    if (n < 0)
        return dc_error_errno(err, errno, "read directory '%s'", dir);
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, ents[i]->d_name);
        int t = entry_type(p, ents[i]);
        any |= t == DT_DIR || t == DT_REG;
    }
    if (!any)
        (void) EVP_DigestUpdate(md, rel, strlen(rel));
    for (int i = 0; i < n && r >= 0; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, ents[i]->d_name);
        _cleanup_free_ char *sub = rel[0] ? xasprintf("%s/%s", rel, ents[i]->d_name)
                                          : xstrdup(ents[i]->d_name);
        int t = entry_type(p, ents[i]);

        if (t == DT_DIR) {
            r = hash_dir(md, root, sub, depth + 1, err);
        } else if (t == DT_REG) {
            (void) EVP_DigestUpdate(md, sub, strlen(sub));
            r = hash_file(md, p, err);
        }
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return r;
}

int
dc_context_hash(const char *abs_path, char ret[33], daytona_error **err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    struct stat st;
    int r;

    if (!md)
        return dc_error(err, ENOMEM, "hash '%s'", abs_path);
    (void) EVP_DigestInit_ex(md, EVP_md5(), NULL);
    /* computeHashForPathMd5(): the archive path first. */
    (void) EVP_DigestUpdate(md, abs_path, strlen(abs_path));
    if (stat(abs_path, &st) < 0)
        r = dc_error_errno(err, errno, "'%s'", abs_path);
    else if (S_ISDIR(st.st_mode))
        r = hash_dir(md, abs_path, "", 0, err);
    else
        r = hash_file(md, abs_path, err);
    if (r >= 0) {
        (void) EVP_DigestFinal_ex(md, d, &dl);
        hex_encode(d, 16, ret);
    }
    EVP_MD_CTX_free(md);
    return r < 0 ? r : 0;
}

/* ---- the tar ---- */

struct tarw {
    int fd;
    EVP_MD_CTX *sha;
    uint64_t size;
    const char *what;
};

static int
tar_write(struct tarw *t, const void *data, size_t len, daytona_error **err)
{
    if (write_all(t->fd, data, len) < 0)
        return dc_error_errno(err, errno, "%s: write the archive", t->what);
    (void) EVP_DigestUpdate(t->sha, data, len);
    t->size += len;
    return 0;
}

static int
tar_pad(struct tarw *t, uint64_t len, daytona_error **err)
{
    static const char zero[512];
    size_t pad = (size_t) ((512 - len % 512) % 512);

    return pad ? tar_write(t, zero, pad, err) : 0;
}

static void
tar_octal(char *field, size_t width, uint64_t v)
{
    /* width-1 octal digits and a NUL, as ustar wants (callers keep V within range). */
    field[width - 1] = '\0';
    for (size_t i = width - 1; i > 0; i--) {
        field[i - 1] = (char) ('0' + (v & 7));
        v >>= 3;
    }
}

static int
tar_header(struct tarw *t, const char *name, char type, mode_t mode, uint64_t size, time_t mtime,
           const char *link, daytona_error **err)
{
    char h[512];
    unsigned sum = 0;
    size_t nl = strlen(name);
    const char *base = name;
    size_t prefix_len = 0;
    bool pax = false;

    memset(h, 0, sizeof(h));
    if (nl > 100) {
        /* ustar: split at a '/' so that the prefix fits 155 and the rest 100 bytes. */
        const char *p = name + nl - 101 > name ? name + nl - 101 : name;
        p = strchr(p, '/');
        if (p && (size_t) (p - name) <= 155 && p[1]) {
            prefix_len = (size_t) (p - name);
            base = p + 1;
        } else {
            pax = true;
        }
    }
    if (link && strlen(link) > 100)
        pax = true;
    if (pax) {
        /* A PAX extended header carries the long path, link target or size. */
        _cleanup_free_ char *recs = xstrdup("");
        const char *keys[] = { "path", link && strlen(link) > 100 ? "linkpath" : NULL };
        const char *vals[] = { name, link };
        char sz[32];
        int r;

        for (size_t i = 0; i < 2; i++) {
            size_t body, total, digits = 1;
            char *n;
            if (!keys[i])
                continue;
            body = strlen(keys[i]) + strlen(vals[i]) + 3; /* ' ', '=', '\n' */
            /* The record length counts its own digits. */
            for (;;) {
                total = body + digits;
                if (snprintf(sz, sizeof(sz), "%zu", total) == (int) digits)
                    break;
                digits++;
            }
            n = xasprintf("%s%zu %s=%s\n", recs, total, keys[i], vals[i]);
            free(recs);
            recs = n;
        }
        r = tar_header(t, "PaxHeader", 'x', 0644, strlen(recs), mtime, NULL, err);
        if (r >= 0)
            r = tar_write(t, recs, strlen(recs), err);
        if (r >= 0)
            r = tar_pad(t, strlen(recs), err);
        if (r < 0)
            return r;
        base = name;
        prefix_len = 0;
    }
    (void) snprintf(h, 100, "%.99s", base);
    if (strlen(base) == 100)
        memcpy(h, base, 100);
    tar_octal(h + 100, 8, mode & 07777);
    tar_octal(h + 108, 8, 0);
    tar_octal(h + 116, 8, 0);
    tar_octal(h + 124, 12, size);
    tar_octal(h + 136, 12, mtime < 0 ? 0 : (uint64_t) mtime);
    memset(h + 148, ' ', 8);
    h[156] = type;
    if (link)
        memcpy(h + 157, link, strlen(link) > 100 ? 100 : strlen(link));
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    if (prefix_len)
        memcpy(h + 345, name, prefix_len);
    for (size_t i = 0; i < 512; i++)
        sum += (unsigned char) h[i];
    (void) snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return tar_write(t, h, 512, err);
}

static int
tar_add_file(struct tarw *t, const char *path, const char *name, const struct stat *st,
             daytona_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    _cleanup_free_ char *buf = NULL;
    uint64_t left = (uint64_t) st->st_size;
    struct stat st2;
    int r;

    if (fd < 0)
        return dc_error_errno(err, errno, "open '%s'", path);
    if (fstat(fd, &st2) < 0)
        return dc_error_errno(err, errno, "stat '%s'", path);
    if (!S_ISREG(st2.st_mode) || st2.st_size != st->st_size)
        return dc_error(err, EAGAIN, "'%s' changed while it was being archived", path);
    r = tar_header(t, name, '0', st->st_mode, left, st->st_mtime, NULL, err);
    if (r < 0)
        return r;
    buf = xmalloc(IO_CHUNK);
    while (left > 0) {
        ssize_t n = read(fd, buf, left < IO_CHUNK ? (size_t) left : IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return dc_error_errno(err, errno, "read '%s'", path);
        if (n == 0)
            return dc_error(err, EAGAIN, "'%s' shrank while it was being archived", path);
        r = tar_write(t, buf, (size_t) n, err);
        if (r < 0)
            return r;
        left -= (uint64_t) n;
    }
    return tar_pad(t, (uint64_t) st->st_size, err);
}

/* PATH is archived as NAME (the absolute path without its leading '/'), like node-tar does:
 * directories recursively, symlinks as symlinks, other special files left out. */
static int
tar_add(struct tarw *t, const char *path, const char *name, int depth, daytona_error **err)
{
    struct stat st;
    int r;

    if (depth > MAX_DEPTH)
        return dc_error(err, ELOOP, "'%s': directories nested too deeply", path);
    if ((depth == 0 ? stat(path, &st) : lstat(path, &st)) < 0)
        return dc_error_errno(err, errno, "stat '%s'", path);
    if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > MAX_PUT_SIZE)
        return dc_error(err, EFBIG, "'%s' is larger than one upload can take (5 GiB)", path);
    if (S_ISREG(st.st_mode))
        return tar_add_file(t, path, name, &st, err);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            return dc_error_errno(err, errno, "read link '%s'", path);
        target[n] = '\0';
        return tar_header(t, name, '2', 0777, 0, st.st_mtime, target, err);
    }
    if (S_ISDIR(st.st_mode)) {
        _cleanup_free_ char *dname = xasprintf("%s/", name);
        struct dirent **ents = NULL;
        int n;

        r = tar_header(t, dname, '5', st.st_mode, 0, st.st_mtime, NULL, err);
        if (r < 0)
            return r;
        n = scandir(path, &ents, skip_dots, cmp_dirent);
        if (n < 0)
            return dc_error_errno(err, errno, "read directory '%s'", path);
        for (int i = 0; i < n && r >= 0; i++) {
            _cleanup_free_ char *p = xasprintf("%s/%s", path, ents[i]->d_name);
            _cleanup_free_ char *nm = xasprintf("%s/%s", name, ents[i]->d_name);
            r = tar_add(t, p, nm, depth + 1, err);
        }
        for (int i = 0; i < n; i++)
            free(ents[i]);
        free(ents);
        return r;
    }
    return 0; /* sockets, fifos, devices: not part of a build context */
}

static int
tar_create(const char *abs_path, int *ret_fd, uint64_t *ret_size, char sha_hex[65],
           daytona_error **err)
{
    const char *tmp = getenv("TMPDIR");
    _cleanup_close_ int fd = -EBADF;
    struct tarw t = { .what = "archive the build context" };
    static const char zero[1024];
    uint8_t md[32];
    unsigned int ml = 32;
    int r;

    if (!tmp || !tmp[0])
        tmp = "/tmp";
    /* Unlinked from the start: nothing to clean up whatever happens. */
    fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return dc_error_errno(err, errno, "archive '%s': create a temporary file in %s",
                              abs_path, tmp);
    t.fd = fd;
    t.sha = EVP_MD_CTX_new();
    if (!t.sha)
        return dc_error(err, ENOMEM, "archive '%s'", abs_path);
    (void) EVP_DigestInit_ex(t.sha, EVP_sha256(), NULL);
    r = tar_add(&t, abs_path, abs_path + 1, 0, err);
    if (r >= 0)
        r = tar_write(&t, zero, sizeof(zero), err);
    if (r >= 0) {
        (void) EVP_DigestFinal_ex(t.sha, md, &ml);
        hex_encode(md, 32, sha_hex);
    }
    EVP_MD_CTX_free(t.sha);
    if (r < 0)
        return dc_error_wrap(err, "archive '%s'", abs_path);
    if (t.size > MAX_PUT_SIZE)
        return dc_error(err, EFBIG, "archive '%s': %llu bytes is more than one upload can take "
                                    "(5 GiB)", abs_path, (unsigned long long) t.size);
    if (lseek(fd, 0, SEEK_SET) < 0)
        return dc_error_errno(err, errno, "archive '%s': rewind", abs_path);
    *ret_size = t.size;
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* ---- upload ---- */

/* Lexically absolute and normalised (no ".", "..", "//", trailing '/'): pathe.resolve(). */
char *
dc_abs_path(const char *path)
{
    _cleanup_free_ char *cwd = NULL, *joined = NULL;
    char *out, *o;
    size_t n;

    if (path[0] != '/') {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            cwd = xstrdup("/");
    }
    joined = cwd ? xasprintf("%s/%s", cwd, path) : xstrdup(path);
    n = strlen(joined);
    out = xmalloc(n + 2);
    o = out;
    for (const char *p = joined; *p;) {
        const char *e;
        size_t l;

        while (*p == '/')
            p++;
        e = p + strcspn(p, "/");
        l = (size_t) (e - p);
        if (l == 0 || (l == 1 && p[0] == '.')) {
            /* skip */
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            while (o > out && *--o != '/')
                ;
        } else {
            *o++ = '/';
            memcpy(o, p, l);
            o += l;
        }
        p = e;
    }
    if (o == out)
        *o++ = '/';
    *o = '\0';
    return out;
}

/* List, and when the server lacks it, archive and PUT the context ABS with hash HASH. */
static int
upload_with(daytona_client *c, const struct push_access *pa, const char *abs, const char *hash,
            const char *what, daytona_error **err)
{
    _cleanup_free_ char *prefix = xasprintf("%s/%s/", pa->org, hash);
    _cleanup_free_ char *eprefix = s3_encode(prefix, false), *ebucket = s3_encode(pa->bucket, false);
    _cleanup_free_ char *query = xasprintf("list-type=2&max-keys=1&prefix=%s", eprefix);
    _cleanup_free_ char *list = xasprintf("/%s/", ebucket), *key = NULL, *ekey = NULL;
    _cleanup_free_ char *put = NULL;
    _cleanup_close_ int fd = -EBADF;
    struct dc_resp resp;
    bool present;
    uint64_t size = 0;
    char sha[65];
    int r;

    /* ListObjectsV2 with the SDK's parameters: any Contents means the server already has it. */
    r = s3_call(c, pa, "GET", list, query, -1, 0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &resp, what,
                err);
    if (r < 0)
        return r;
    present = resp.body && strstr(resp.body, "<Contents>");
    dc_resp_done(&resp);
    if (present)
        return 0;

    r = tar_create(abs, &fd, &size, sha, err);
    if (r < 0)
        return r;
    key = xasprintf("%scontext.tar", prefix);
    ekey = s3_encode(key, true);
    put = xasprintf("/%s/%s", ebucket, ekey);
    r = s3_call(c, pa, "PUT", put, "x-id=PutObject", fd, size, sha, &resp, what, err);
    if (r < 0)
        return r;
    dc_resp_done(&resp);
    return 0;
}

int
daytona_context_upload(daytona_client *c, const char *local_path, char ret_hash[33],
                       daytona_error **err)
{
    _cleanup_free_ char *abs = NULL, *what = NULL;
    struct push_access pa;
    char hash[33];
    int r;

    if (!c || !local_path || !local_path[0] || !ret_hash)
        return dc_error(err, EINVAL, "upload build context: no path given");
    abs = dc_abs_path(local_path);
    what = xasprintf("upload build context '%s'", abs);
    if (strcmp(abs, "/") == 0)
        return dc_error(err, EINVAL, "%s: refusing to upload the root directory", what);
    if (access(abs, R_OK) < 0)
        return dc_error_errno(err, errno, "%s", what);
    r = dc_context_hash(abs, hash, err);
    if (r < 0)
        return dc_error_wrap(err, "%s", what);
    r = push_access_get(c, &pa, err);
    if (r < 0)
        return r;
    r = upload_with(c, &pa, abs, hash, what, err);
    push_access_done(&pa);
    if (r < 0)
        return r;
    memcpy(ret_hash, hash, 33);
    return 0;
}

/* ---- Dockerfile COPY/ADD sources ---- */

json_t *
dc_build_info(const char *dockerfile, const char *const *context_hashes)
{
    json_t *bi = json_pack("{s:s}", "dockerfileContent", dockerfile);

    if (bi && context_hashes && context_hashes[0]) {
        json_t *a = json_array();
        for (size_t i = 0; context_hashes[i]; i++)
            json_array_append_new(a, json_string(context_hashes[i]));
        json_object_set_new(bi, "contextHashes", a);
    }
    return bi;
}

struct svec {
    char **v;
    size_t n;
};

static void
sv_push(struct svec *s, char *x)
{
    s->v = xrealloc(s->v, (s->n + 2) * sizeof(*s->v));
    s->v[s->n++] = x;
    s->v[s->n] = NULL;
}

static void
sv_clear(struct svec *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (struct svec) { 0 };
}

/* Shell-form words: blanks separate, quotes group, a backslash escapes outside single quotes.
 * Returns -EINVAL on an unterminated quote. */
static int
split_words(const char *s, struct svec *out)
{
    while (*s) {
        _cleanup_free_ char *w = NULL;
        size_t n = 0;
        char q = 0;

        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (!*s)
            break;
        w = xmalloc(strlen(s) + 1);
        for (; *s; s++) {
            if (!q && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
                break;
            if (!q && (*s == '\'' || *s == '"'))
                q = *s;
            else if (q && *s == q)
                q = 0;
            else if (*s == '\\' && q != '\'' && s[1])
                w[n++] = *++s;
            else
                w[n++] = *s;
        }
        if (q)
            return -EINVAL;
        w[n] = '\0';
        sv_push(out, TAKE_PTR(w));
    }
    return 0;
}

static bool
needs_quoting(const char *s)
{
    return strpbrk(s, " \t\n\r'\"\\") != NULL;
}

static void
add_hash(struct svec *hashes, const char *h)
{
    for (size_t i = 0; i < hashes->n; i++)
        if (strcmp(hashes->v[i], h) == 0)
            return;
    sv_push(hashes, xstrdup(h));
}

/* Resolve one COPY/ADD source against CTX, upload what it names, return the absolute form. */
static int
prepare_source(daytona_client *c, const char *src, const char *ctx, bool is_add,
               struct svec *hashes, char **ret, daytona_error **err)
{
    _cleanup_free_ char *joined = NULL, *abs = NULL;
    char hash[33];
    int r;

    if (is_add && (strstr(src, "://") || strncmp(src, "git@", 4) == 0)) {
        *ret = xstrdup(src); /* a remote source: the builder fetches it */
        return 0;
    }
    /* Like the SDK (extractCopySources): an absolute source is a local absolute path. */
    joined = src[0] == '/' ? xstrdup(src) : xasprintf("%s/%s", ctx, src);
    abs = dc_abs_path(joined);
    if (strpbrk(abs, "*?[")) {
        glob_t g;
        int gr = glob(abs, GLOB_PERIOD, NULL, &g);

        if (gr == GLOB_NOMATCH)
            return dc_error(err, ENOENT, "COPY source '%s' matches nothing in the build context "
                                         "'%s'", src, ctx);
        if (gr != 0)
            return dc_error(err, EIO, "COPY source '%s': glob failed", src);
        r = 0;
        for (size_t i = 0; i < g.gl_pathc && r >= 0; i++) {
            r = daytona_context_upload(c, g.gl_pathv[i], hash, err);
            if (r >= 0)
                add_hash(hashes, hash);
        }
        globfree(&g);
        if (r < 0)
            return r;
    } else {
        struct stat st;

        if (stat(abs, &st) < 0)
            return dc_error_errno(err, errno, "COPY source '%s' (%s) in the build context '%s'",
                                  src, abs, ctx);
        r = daytona_context_upload(c, abs, hash, err);
        if (r < 0)
            return r;
        add_hash(hashes, hash);
    }
    *ret = TAKE_PTR(abs);
    return 0;
}

/* One logical COPY/ADD instruction TEXT (continuations joined). Returns 1 with *RET the rewritten
 * instruction, 0 when it is left as written (--from, heredocs, unparsable), -errno. */
static int
prepare_copy(daytona_client *c, const char *text, const char *ctx, struct svec *hashes,
             char **ret, daytona_error **err)
{
    const char *p = text;
    _cleanup_free_ char *kw = NULL, *flags = xstrdup(""), *out = NULL;
    struct svec words = { 0 }, srcs = { 0 };
    bool json_form = false, quote = false, is_add;
    json_t *arr = NULL;
    size_t kl;
    int r = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    kl = strcspn(p, " \t");
    kw = xstrndup(p, kl);
    is_add = strcasecmp(kw, "ADD") == 0;
    p += kl;
    if (strstr(p, "<<"))
        return 0;
    for (;;) {
        size_t fl;
        char *nf;

        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "--", 2) != 0)
            break;
        fl = strcspn(p, " \t");
        if (strncmp(p, "--from", 6) == 0)
            return 0; /* from another stage or image: nothing local */
        nf = xasprintf("%s %.*s", flags, (int) fl, p);
        free(flags);
        flags = nf;
        p += fl;
    }
    if (*p == '[') {
        json_error_t je;
        size_t n;

        arr = json_loads(p, JSON_DECODE_ANY, &je);
        n = json_is_array(arr) ? json_array_size(arr) : 0;
        for (size_t i = 0; i < n; i++)
            if (!json_is_string(json_array_get(arr, i)))
                n = 0;
        if (n < 2) {
            json_decref(arr);
            return 0;
        }
        for (size_t i = 0; i < n; i++)
            sv_push(&words, xstrdup(json_string_value(json_array_get(arr, i))));
        json_decref(arr);
        json_form = true;
    } else if (split_words(p, &words) < 0 || words.n < 2) {
        sv_clear(&words);
        return 0;
    }
    for (size_t i = 0; i + 1 < words.n && r >= 0; i++) {
        char *abs = NULL;
        r = prepare_source(c, words.v[i], ctx, is_add, hashes, &abs, err);
        if (r >= 0)
            sv_push(&srcs, abs);
    }
    if (r < 0) {
        sv_clear(&words);
        sv_clear(&srcs);
        return r;
    }
    sv_push(&srcs, xstrdup(words.v[words.n - 1]));
    sv_clear(&words);
    for (size_t i = 0; i < srcs.n; i++)
        quote |= needs_quoting(srcs.v[i]);
    if (json_form || quote) {
        _cleanup_free_ char *j = NULL;
        arr = json_array();
        for (size_t i = 0; i < srcs.n; i++)
            json_array_append_new(arr, json_string(srcs.v[i]));
        j = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        out = xasprintf("%s%s %s", kw, flags, j);
    } else {
        out = xasprintf("%s%s", kw, flags);
        for (size_t i = 0; i < srcs.n; i++) {
            char *n = xasprintf("%s %s", out, srcs.v[i]);
            free(out);
            out = n;
        }
    }
    sv_clear(&srcs);
    *ret = TAKE_PTR(out);
    return 1;
}

static bool
is_copy_or_add(const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    return (strncasecmp(line, "COPY", 4) == 0 && (line[4] == ' ' || line[4] == '\t')) ||
           (strncasecmp(line, "ADD", 3) == 0 && (line[3] == ' ' || line[3] == '\t'));
}

int
daytona_dockerfile_prepare(daytona_client *c, const char *dockerfile, const char *context_dir,
                           char **ret_dockerfile, char ***ret_hashes, daytona_error **err)
{
    _cleanup_free_ char *ctx = NULL;
    struct svec hashes = { 0 };
    struct stat st;
    char *out = xstrdup("");
    const char *p = dockerfile;
    int r = 0;

    if (!c || !dockerfile || !context_dir || !ret_dockerfile || !ret_hashes) {
        free(out);
        return dc_error(err, EINVAL, "prepare Dockerfile: missing argument");
    }
    ctx = dc_abs_path(context_dir);
    if (stat(ctx, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(out);
        return stat(ctx, &st) < 0 ? dc_error_errno(err, errno, "build context '%s'", ctx)
                                  : dc_error(err, ENOTDIR, "build context '%s': not a directory",
                                             ctx);
    }
    while (*p && r >= 0) {
        /* One logical line: physical lines joined while they end in a backslash. */
        const char *start = p;
        _cleanup_free_ char *joined = xstrdup("");
        char *rewritten = NULL, *n;

        for (;;) {
            const char *e = p + strcspn(p, "\n");
            size_t l = (size_t) (e - p);
            bool cont;

            while (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r'))
                l--;
            cont = l && p[l - 1] == '\\';
            n = xasprintf("%s%.*s", joined, (int) (cont ? l - 1 : l), p);
            free(joined);
            joined = n;
            p = *e ? e + 1 : e;
            /* A comment line inside a continuation does not end it. */
            if (!cont || !*p)
                break;
            n = xasprintf("%s ", joined);
            free(joined);
            joined = n;
        }
        if (is_copy_or_add(joined))
            r = prepare_copy(c, joined, ctx, &hashes, &rewritten, err);
        if (r < 0)
            break;
        if (r == 1)
            n = xasprintf("%s%s\n", out, rewritten);
        else
            n = xasprintf("%s%.*s", out, (int) (p - start), start);
        free(rewritten);
        free(out);
        out = n;
        r = 0;
    }
    if (r < 0) {
        free(out);
        sv_clear(&hashes);
        return r;
    }
    if (out[0] && out[strlen(out) - 1] != '\n') {
        char *n = xasprintf("%s\n", out);
        free(out);
        out = n;
    }
    *ret_dockerfile = out;
    if (!hashes.v)
        hashes.v = xcalloc(1, sizeof(char *));
    *ret_hashes = hashes.v;
    return 0;
}
