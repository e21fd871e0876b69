/* SPDX-License-Identifier: Apache-2.0 */
/* OCI distribution v2 client on the libcurl easy interface: one handle per client, reset before
 * every request so no option leaks from one request into the next (connections survive reset).
 * Handles the 401 challenge dance (Basic, Bearer token), retries and the registry error body. */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/registry.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define ERROR_BODY_MAX   (64u * 1024)
#define HEADER_VALUE_MAX 4096
#define TOKEN_CACHE_MAX  64
#define DEFAULT_ACCEPT                                                                             \
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "       \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                 \
    "application/vnd.docker.distribution.manifest.v2+json"

struct auth_entry {
    char *host;
    char *repo;   /* NULL: host-wide (Basic) */
    char *header; /* "Authorization: ..." */
};

struct dt_registry {
    CURL *curl;
    char *user_agent;
    char *username, *password;
    enum dt_registry_scheme scheme;
    long timeout_s;
    char *ca_file;
    unsigned max_retries;
    struct auth_entry auth[TOKEN_CACHE_MAX];
    size_t n_auth;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---------- WWW-Authenticate parsing (untrusted input) ---------- */

static bool
is_tchar(char c)
{
    /* RFC 9110 token characters. */
    return isalnum((unsigned char) c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void
skip_ows(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
}

/* Parse a token or a quoted-string at *P; returns a new string or NULL on a syntax error. */
static char *
parse_value(const char **p, const char *end)
{
    const char *s = *p;

    if (s < end && *s == '"') {
        char *out = xmalloc((size_t) (end - s));
        size_t n = 0;

        for (s++; s < end; s++) {
            if (*s == '"') {
                out[n] = 0;
                *p = s + 1;
                return out;
            }
            if (*s == '\\') {
                if (++s >= end)
                    break;
            }
            /* Control characters can never be meaningful here, and a realm or service must not
             * smuggle CR/LF into a URL or a header. */
            if ((unsigned char) *s < 0x20 && *s != '\t')
                break;
            out[n++] = *s;
        }
        free(out);
        return NULL;
    }
    while (s < end && (is_tchar(*s) || *s == '/' || *s == '='))
        s++; /* token68 ("Basic abc==") and tokens */
    if (s == *p)
        return NULL;
    char *out = xstrndup(*p, (size_t) (s - *p));
    *p = s;
    return out;
}

void
dt_registry_challenge_done(struct dt_registry_challenge *c)
{
    if (!c)
        return;
    free(c->realm);
    free(c->service);
    free(c->scope);
    *c = (struct dt_registry_challenge){ 0 };
}

int
dt_registry_parse_challenge(const char *value, size_t len, struct dt_registry_challenge *ret)
{
    const char *p = value, *end = value + len;
    struct dt_registry_challenge basic = { 0 }, cur = { 0 };
    bool have_basic = false;

    *ret = (struct dt_registry_challenge){ 0 };
    if (len > DT_REGISTRY_CHALLENGE_MAX || memchr(value, 0, len))
        return -EINVAL;

    for (;;) {
        const char *scheme;
        size_t scheme_len;

        /* Empty list elements are allowed ("a, , b"). */
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;

        scheme = p;
        while (p < end && is_tchar(*p))
            p++;
        scheme_len = (size_t) (p - scheme);
        if (scheme_len == 0)
            goto fail;

        cur = (struct dt_registry_challenge){ 0 };
        if (scheme_len == 6 && strncasecmp(scheme, "bearer", 6) == 0)
            cur.scheme = DT_REGISTRY_AUTH_BEARER;
        else if (scheme_len == 5 && strncasecmp(scheme, "basic", 5) == 0)
            cur.scheme = DT_REGISTRY_AUTH_BASIC;

        /* Parameters: name = value, separated by commas; a name followed by anything other
         * than "=" starts the next challenge. */
        for (;;) {
            const char *save = p, *name;
            size_t name_len;
            char *v, **slot = NULL;

            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            if (p >= end)
                break;
            name = p;
            while (p < end && is_tchar(*p))
                p++;
            name_len = (size_t) (p - name);
            skip_ows(&p, end);
            if (name_len == 0)
                goto fail;
            if (p >= end || *p != '=') {
                if (save == scheme + scheme_len) {
                    /* token68 right after the scheme ("Negotiate abc"): nothing we need. */
                    p = name;
                    v = parse_value(&p, end);
                    if (!v)
                        goto fail;
                    free(v);
                    continue;
                }
                /* "Basic realm=x, Bearer realm=y": a name without "=" starts the next
                 * challenge. */
                p = name;
                break;
            }
            p++;
            skip_ows(&p, end);
            v = parse_value(&p, end);
            if (!v)
                goto fail;
            if (name_len == 5 && strncasecmp(name, "realm", 5) == 0)
                slot = &cur.realm;
            else if (name_len == 7 && strncasecmp(name, "service", 7) == 0)
                slot = &cur.service;
            else if (name_len == 5 && strncasecmp(name, "scope", 5) == 0)
                slot = &cur.scope;
            if (slot && !*slot)
                *slot = v; /* the first occurrence wins */
            else
                free(v);
            skip_ows(&p, end);
            if (p < end && *p != ',')
                goto fail;
        }

        if (cur.scheme == DT_REGISTRY_AUTH_BEARER) {
            dt_registry_challenge_done(&basic);
            *ret = cur;
            return 0;
        }
        if (cur.scheme == DT_REGISTRY_AUTH_BASIC && !have_basic) {
            basic = cur;
            have_basic = true;
        } else
            dt_registry_challenge_done(&cur);
    }

    if (have_basic) {
        *ret = basic;
        return 0;
    }
    return -ENOENT;

fail:
    dt_registry_challenge_done(&cur);
    dt_registry_challenge_done(&basic);
    return -EINVAL;
}

/* ---------- small helpers ---------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool
valid_host(const char *h)
{
    size_t n = strlen(h);

    if (n == 0 || n > 255)
        return false;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char) *p) && !strchr(".-:[]", *p))
            return false;
    return true;
}

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
valid_repo(const char *s)
{
    /* distribution's grammar, slightly looser: components of lowercase alnum joined by '.', '_'
     * or '-', each starting and ending with alnum, separated by '/'. Rules out "..", "/./" and
     * anything a URL would reinterpret. */
    size_t n = strlen(s);

    if (n == 0 || n > 255 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (is_lower_alnum(s[i]))
            continue;
        if (!strchr("._-/", s[i]))
            return false;
        if (s[i] == '/' && (!is_lower_alnum(s[i - 1]) || !is_lower_alnum(s[i + 1])))
            return false;
    }
    return true;
}

static bool
valid_digest(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char) *p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

static bool
valid_tag(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > 128 || !(isalnum((unsigned char) t[0]) || t[0] == '_'))
        return false;
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char) *p) && !strchr("_.-", *p))
            return false;
    return true;
}

static bool
host_is_loopback(const char *host)
{
    _cleanup_free_ char *h = NULL;
    const char *colon;

    if (host[0] == '[') {
        const char *e = strchr(host, ']');
        h = e ? xstrndup(host + 1, (size_t) (e - host - 1)) : xstrdup(host);
    } else {
        colon = strrchr(host, ':');
        h = colon ? xstrndup(host, (size_t) (colon - host)) : xstrdup(host);
    }
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 ||
           strcmp(h, "::1") == 0;
}

static const char *
scheme_for(struct dt_registry *r, const char *host)
{
    switch (r->scheme) {
    case DT_REGISTRY_SCHEME_HTTP:
        return "http";
    case DT_REGISTRY_SCHEME_HTTPS:
        return "https";
    default:
        return host_is_loopback(host) ? "http" : "https";
    }
}

static void
sha256_hex(EVP_MD_CTX *ctx, char out[7 + 64 + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    DT_ASSERT(EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 32);
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

static char *
url_escape(CURL *c, const char *s)
{
    char *e = curl_easy_escape(c, s, 0);
    char *out;

    if (!e)
        abort(); /* only fails on OOM */
    out = xstrdup(e);
    curl_free(e);
    return out;
}

/* ---------- one HTTP exchange ---------- */

struct xfer {
    struct dt_registry *r;
    /* response headers of the last response (reset on each status line: redirects) */
    long status;
    char *content_type;
    char *docker_digest;
    char *challenge;
    size_t challenge_len;
    uint64_t content_length; /* DT_REGISTRY_SIZE_UNKNOWN when absent */
    long retry_after;
    /* body: buffered (manifest, token, error) or streamed (2xx blob) */
    char *buf;
    size_t len, cap, limit;
    bool buf_overflow;
    int out_fd; /* >= 0: stream 2xx bodies here */
    EVP_MD_CTX *md;
    uint64_t written, expected_size;
    dt_registry_progress_fn progress;
    void *userdata;
    int cb_error; /* errno of a failed write or progress abort */
};

static void
xfer_reset_headers(struct xfer *x)
{
    free(x->content_type);
    free(x->docker_digest);
    free(x->challenge);
    x->content_type = x->docker_digest = x->challenge = NULL;
    x->challenge_len = 0;
    x->content_length = DT_REGISTRY_SIZE_UNKNOWN;
    x->retry_after = -1;
}

static void
xfer_done(struct xfer *x)
{
    xfer_reset_headers(x);
    free(x->buf);
    x->buf = NULL;
}

static char *
trim_dup(const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    return xstrndup(v, n);
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    const char *colon;
    size_t name_len;

    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100): forget the previous headers and any
         * buffered body, so a redirect's body never prefixes the manifest. */
        xfer_reset_headers(x);
        x->len = 0;
        return n;
    }
    colon = memchr(data, ':', n);
    if (!colon)
        return n;
    name_len = (size_t) (colon - data);
    const char *v = colon + 1;
    size_t vlen = n - name_len - 1;

    if (name_len == 16 && strncasecmp(data, "www-authenticate", 16) == 0) {
        _cleanup_free_ char *t = trim_dup(v, vlen);
        size_t tl = strlen(t);

        /* Several WWW-Authenticate headers are one comma-separated list (RFC 9110). An
         * oversized list is ignored rather than truncated into something else. */
        if (x->challenge_len + tl + 2 > DT_REGISTRY_CHALLENGE_MAX)
            return n;
        x->challenge = xrealloc(x->challenge, x->challenge_len + tl + 3);
        if (x->challenge_len > 0) {
            memcpy(x->challenge + x->challenge_len, ", ", 2);
            x->challenge_len += 2;
        }
        memcpy(x->challenge + x->challenge_len, t, tl + 1);
        x->challenge_len += tl;
        return n;
    }
    if (vlen > HEADER_VALUE_MAX)
        return n;
    if (name_len == 12 && strncasecmp(data, "content-type", 12) == 0) {
        free(x->content_type);
        x->content_type = trim_dup(v, vlen);
        char *semi = strchr(x->content_type, ';');
        if (semi) {
            *semi = 0;
            char *e = semi;
            while (e > x->content_type && (e[-1] == ' ' || e[-1] == '\t'))
                *--e = 0;
        }
    } else if (name_len == 21 && strncasecmp(data, "docker-content-digest", 21) == 0) {
        free(x->docker_digest);
        x->docker_digest = trim_dup(v, vlen);
    } else if (name_len == 14 && strncasecmp(data, "content-length", 14) == 0) {
        _cleanup_free_ char *t = trim_dup(v, vlen);
        char *e;
        errno = 0;
        unsigned long long cl = strtoull(t, &e, 10);
        if (errno == 0 && e != t && *e == 0 && t[0] != '-')
            x->content_length = cl;
    } else if (name_len == 11 && strncasecmp(data, "retry-after", 11) == 0) {
        _cleanup_free_ char *t = trim_dup(v, vlen);
        char *e;
        long ra = strtol(t, &e, 10);
        if (e != t && *e == 0 && ra >= 0)
            x->retry_after = ra;
    }
    return n;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    long code = 0;

    (void) curl_easy_getinfo(x->r->curl, CURLINFO_RESPONSE_CODE, &code);
    if (x->out_fd >= 0 && code >= 200 && code < 300) {
        int r;

        if (x->expected_size != DT_REGISTRY_SIZE_UNKNOWN &&
            (x->written + n < x->written || x->written + n > x->expected_size)) {
            x->cb_error = EBADMSG; /* more bytes than the descriptor says */
            return CURL_WRITEFUNC_ERROR;
        }
        r = write_all(x->out_fd, data, n);
        if (r < 0) {
            x->cb_error = -r;
            return CURL_WRITEFUNC_ERROR;
        }
        DT_ASSERT(EVP_DigestUpdate(x->md, data, n) == 1);
        x->written += n;
        if (x->progress) {
            uint64_t total = x->expected_size != DT_REGISTRY_SIZE_UNKNOWN ? x->expected_size
                                                                          : x->content_length;
            r = x->progress(x->written, total, x->userdata);
            if (r < 0) {
                x->cb_error = -r;
                return CURL_WRITEFUNC_ERROR;
            }
        }
        return n;
    }

    /* Buffered: a manifest, a token, or an error body (kept only up to a small limit). */
    size_t limit = (code >= 200 && code < 300) ? x->limit : ERROR_BODY_MAX;
    if (x->len + n > limit) {
        if (code >= 200 && code < 300) {
            x->buf_overflow = true;
            x->cb_error = EFBIG;
            return CURL_WRITEFUNC_ERROR;
        }
        if (x->len >= limit)
            return size * nmemb;
        n = limit - x->len; /* error bodies: keep the head, drop the rest */
    }
    if (x->len + n + 1 > x->cap) {
        x->cap = (x->len + n + 1) * 2;
        if (x->cap > limit + 1)
            x->cap = limit + 1;
        x->buf = xrealloc(x->buf, x->cap);
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = 0;
    return size * nmemb;
}

static void
setup_common(struct dt_registry *r, struct xfer *x, const char *url, struct curl_slist *hdrs)
{
    CURL *c = r->curl;

    curl_easy_reset(c);
    r->errbuf[0] = 0;
    (void) curl_easy_setopt(c, CURLOPT_URL, url);
    (void) curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    (void) curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(c, CURLOPT_USERAGENT, r->user_agent);
    (void) curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Registries redirect blob GETs to object storage. libcurl drops credentials and custom
     * Authorization headers when a redirect leaves the original host (CVE-2018-1000007), and
     * we never set CURLOPT_UNRESTRICTED_AUTH, so a token never reaches the storage host. */
    (void) curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    (void) curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    (void) curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r->timeout_s);
    /* No total timeout (layers can be gigabytes); a stalled transfer is what we time out. */
    (void) curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    (void) curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->timeout_s);
    (void) curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, NULL);
    if (r->ca_file)
        (void) curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
    (void) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    (void) curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    (void) curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
}

/* Map a curl failure to -errno with a message. */
static int
curl_failure(struct dt_registry *r, struct xfer *x, CURLcode cc, const char *host,
             const char *what, struct dt_error **err)
{
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);

    if (x->cb_error == EFBIG && x->buf_overflow)
        return dt_error_set(err, EFBIG, "registry %s: %s: response larger than %zu bytes", host,
                            what, x->limit);
    if (x->cb_error == EBADMSG)
        return dt_error_set(err, EBADMSG, "registry %s: %s: more than the expected %llu bytes",
                            host, what, (unsigned long long) x->expected_size);
    if (x->cb_error)
        return dt_error_errno(err, x->cb_error, "registry %s: %s", host, what);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return dt_error_set(err, ECONNREFUSED, "cannot reach registry %s: %s", host, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return dt_error_set(err, EHOSTUNREACH, "cannot resolve registry %s: %s", host, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return dt_error_set(err, ETIMEDOUT, "registry %s: %s: timed out: %s", host, what, detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return dt_error_set(err, EPROTO, "registry %s: TLS error: %s", host, detail);
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return dt_error_set(err, EPROTO, "registry %s: %s: bad redirect: %s", host, what, detail);
    default:
        return dt_error_set(err, EIO, "registry %s: %s: %s", host, what, detail);
    }
}

static bool
curl_transient(CURLcode cc)
{
    return cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
           cc == CURLE_PARTIAL_FILE || cc == CURLE_HTTP2 || cc == CURLE_HTTP2_STREAM;
}

/* Turn a non-2xx response into -errno with the registry's error body in the message. */
static int
status_failure(struct xfer *x, const char *host, const char *what, struct dt_error **err)
{
    _cleanup_free_ char *detail = NULL;
    int e;

    if (x->buf && x->len > 0) {
        json_t *j = json_loadb(x->buf, x->len, 0, NULL);
        json_t *errs = json_object_get(j, "errors");
        json_t *e0 = json_array_get(errs, 0);
        const char *code = json_string_value(json_object_get(e0, "code"));
        const char *msg = json_string_value(json_object_get(e0, "message"));

        if (code || msg) {
            size_t n = json_array_size(errs);
            detail = xasprintf("%s (%s)%s", msg ? msg : "error", code ? code : "?",
                               n > 1 ? " and more" : "");
            /* The message is untrusted text: keep it one printable line. */
            for (char *p = detail; *p; p++)
                if ((unsigned char) *p < 0x20)
                    *p = ' ';
            if (strlen(detail) > 512)
                detail[512] = 0;
        }
        json_decref(j);
    }
    switch (x->status) {
    case 404:
        e = ENOENT;
        break;
    case 401:
    case 403:
        e = EACCES;
        break;
    case 429:
        e = EAGAIN;
        break;
    case 400:
    case 405:
        e = EINVAL;
        break;
    default:
        e = EIO;
    }
    if (detail)
        return dt_error_set(err, e, "registry %s: %s: %s", host, what, detail);
    return dt_error_set(err, e, "registry %s: %s: HTTP status %ld", host, what, x->status);
}

static void
backoff_sleep(unsigned attempt, long retry_after)
{
    /* 250 ms, 1 s, 4 s...; a server's Retry-After is honoured up to 10 s. */
    long ms = 250L << (2 * (attempt < 4 ? attempt : 4));
    struct timespec ts;

    if (retry_after >= 0)
        ms = retry_after > 10 ? 10000 : retry_after * 1000;
    if (ms > 10000)
        ms = 10000;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---------- auth ---------- */

static const char *
auth_lookup(struct dt_registry *r, const char *host, const char *repo)
{
    const char *hostwide = NULL;

    for (size_t i = 0; i < r->n_auth; i++) {
        if (strcmp(r->auth[i].host, host) != 0)
            continue;
        if (r->auth[i].repo && strcmp(r->auth[i].repo, repo) == 0)
            return r->auth[i].header;
        if (!r->auth[i].repo)
            hostwide = r->auth[i].header;
    }
    return hostwide;
}

static void
auth_store(struct dt_registry *r, const char *host, const char *repo, char *header)
{
    struct auth_entry *e = NULL;

    for (size_t i = 0; i < r->n_auth; i++)
        if (strcmp(r->auth[i].host, host) == 0 &&
            ((!repo && !r->auth[i].repo) ||
             (repo && r->auth[i].repo && strcmp(r->auth[i].repo, repo) == 0)))
            e = &r->auth[i];
    if (!e) {
        if (r->n_auth == TOKEN_CACHE_MAX) {
            /* Full: drop the oldest entry. */
            free(r->auth[0].host);
            free(r->auth[0].repo);
            free(r->auth[0].header);
            memmove(&r->auth[0], &r->auth[1], sizeof(r->auth[0]) * (TOKEN_CACHE_MAX - 1));
            r->n_auth--;
        }
        e = &r->auth[r->n_auth++];
        *e = (struct auth_entry){ .host = xstrdup(host), .repo = repo ? xstrdup(repo) : NULL };
    }
    free(e->header);
    e->header = header;
}

static char *
basic_header(struct dt_registry *r)
{
    _cleanup_free_ char *plain = xasprintf("%s:%s", r->username, r->password ? r->password : "");
    size_t n = strlen(plain);
    _cleanup_free_ unsigned char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock(b64, (const unsigned char *) plain, (int) n);
    explicit_bzero(plain, n);
    return xasprintf("Authorization: Basic %s", b64);
}

static bool
valid_token(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > DT_REGISTRY_TOKEN_MAX)
        return false;
    for (const char *p = t; *p; p++)
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
            return false; /* header injection */
    return true;
}

static int
fetch_token(struct dt_registry *r, const char *host, const char *repo,
            const struct dt_registry_challenge *ch, struct dt_error **err)
{
    _cleanup_free_ char *url = NULL, *svc = NULL, *scope = NULL, *scope_e = NULL;
    struct xfer x = { .r = r, .out_fd = -1, .limit = DT_REGISTRY_TOKEN_MAX };
    const char *tok;
    CURLcode cc;
    json_t *j;
    int ret;

    if (!ch->realm || (strncasecmp(ch->realm, "https://", 8) != 0 &&
                       strncasecmp(ch->realm, "http://", 7) != 0))
        return dt_error_set(err, EPROTO, "registry %s: bearer challenge without an http(s) realm",
                            host);
    scope = xasprintf("repository:%s:pull", repo);
    scope_e = url_escape(r->curl, scope);
    if (ch->service) {
        svc = url_escape(r->curl, ch->service);
        url = xasprintf("%s%cservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?',
                        svc, scope_e);
    } else
        url = xasprintf("%s%cscope=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?', scope_e);

    for (unsigned attempt = 0;; attempt++) {
        xfer_reset_headers(&x);
        x.len = 0;
        x.cb_error = 0;
        setup_common(r, &x, url, NULL);
        if (r->username) {
            (void) curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
            (void) curl_easy_setopt(r->curl, CURLOPT_USERNAME, r->username);
            (void) curl_easy_setopt(r->curl, CURLOPT_PASSWORD, r->password ? r->password : "");
        }
        cc = curl_easy_perform(r->curl);
        (void) curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &x.status);
        if (cc == CURLE_OK && (x.status == 429 || x.status >= 500) && attempt < r->max_retries) {
            backoff_sleep(attempt, x.retry_after);
            continue;
        }
        break;
    }
    if (cc != CURLE_OK) {
        ret = curl_failure(r, &x, cc, host, "get token", err);
        xfer_done(&x);
        return ret;
    }
    if (x.status == 401 || x.status == 403) {
        xfer_done(&x);
        if (!r->username)
            return dt_error_set(err, EACCES,
                                "registry %s requires authentication; add credentials with the "
                                "docker-registry API",
                                host);
        return dt_error_set(err, EACCES, "registry %s: token server refused the credentials of '%s'",
                            host, r->username);
    }
    if (x.status < 200 || x.status >= 300) {
        ret = status_failure(&x, host, "get token", err);
        xfer_done(&x);
        return ret;
    }
    j = json_loadb(x.buf ? x.buf : "", x.len, 0, NULL);
    tok = json_string_value(json_object_get(j, "token"));
    if (!tok || !*tok)
        tok = json_string_value(json_object_get(j, "access_token"));
    if (!tok || !valid_token(tok)) {
        json_decref(j);
        xfer_done(&x);
        return dt_error_set(err, EPROTO, "registry %s: token server returned no usable token",
                            host);
    }
    auth_store(r, host, repo, xasprintf("Authorization: Bearer %s", tok));
    json_decref(j);
    xfer_done(&x);
    return 0;
}

/* React to a 401: set up credentials for the retry. */
static int
handle_challenge(struct dt_registry *r, struct xfer *x, const char *host, const char *repo,
                 struct dt_error **err)
{
    struct dt_registry_challenge ch;
    int k;

    if (!x->challenge)
        return dt_error_set(err, EACCES, "registry %s: access denied (401 without a challenge)",
                            host);
    k = dt_registry_parse_challenge(x->challenge, x->challenge_len, &ch);
    if (k == -ENOENT)
        return dt_error_set(err, EACCES, "registry %s: unsupported authentication scheme", host);
    if (k < 0)
        return dt_error_set(err, EPROTO, "registry %s: malformed WWW-Authenticate header", host);

    if (ch.scheme == DT_REGISTRY_AUTH_BASIC) {
        dt_registry_challenge_done(&ch);
        if (!r->username)
            return dt_error_set(err, EACCES,
                                "registry %s requires authentication; add credentials with the "
                                "docker-registry API",
                                host);
        auth_store(r, host, NULL, basic_header(r));
        return 0;
    }
    k = fetch_token(r, host, repo, &ch, err);
    dt_registry_challenge_done(&ch);
    return k;
}

/* GET URL with auth and retries. Body goes to X (buffered, or streamed to x->out_fd). */
static int
do_get(struct dt_registry *r, struct xfer *x, const char *host, const char *repo,
       const char *url, const char *accept, const char *what, struct dt_error **err)
{
    bool authed = false;
    unsigned attempt = 0;

    for (;;) {
        _cleanup_free_ char *acc = NULL;
        struct curl_slist *hdrs = NULL;
        const char *auth = auth_lookup(r, host, repo);
        CURLcode cc;
        int k;

        xfer_reset_headers(x);
        x->len = 0;
        x->cb_error = 0;
        x->buf_overflow = false;
        if (accept) {
            acc = xasprintf("Accept: %s", accept);
            hdrs = curl_slist_append(hdrs, acc);
        }
        if (auth)
            hdrs = curl_slist_append(hdrs, auth);
        if ((accept || auth) && !hdrs)
            abort();
        setup_common(r, x, url, hdrs);
        cc = curl_easy_perform(r->curl);
        curl_slist_free_all(hdrs);
        x->status = 0;
        (void) curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &x->status);

        if (cc != CURLE_OK) {
            if (curl_transient(cc) && x->written == 0 && !x->cb_error &&
                attempt < r->max_retries) {
                backoff_sleep(attempt++, -1);
                continue;
            }
            return curl_failure(r, x, cc, host, what, err);
        }
        if (x->status >= 200 && x->status < 300)
            return 0;
        if (x->status == 401 && !authed) {
            authed = true;
            k = handle_challenge(r, x, host, repo, err);
            if (k < 0)
                return k;
            continue;
        }
        if ((x->status == 429 || x->status >= 500) && attempt < r->max_retries) {
            backoff_sleep(attempt++, x->retry_after);
            continue;
        }
        if (x->status == 401 && !auth_lookup(r, host, repo))
            return dt_error_set(err, EACCES,
                                "registry %s requires authentication; add credentials with the "
                                "docker-registry API",
                                host);
        k = status_failure(x, host, what, err);
        if ((x->status == 401 || x->status == 403) && r->username)
            (void) dt_error_wrap(err, "credentials of '%s' rejected or without access",
                                 r->username);
        else if (x->status == 401 || x->status == 403)
            /* Docker Hub answers this way for repositories that do not exist, too. */
            (void) dt_error_wrap(err, "repository '%s' does not exist or needs credentials",
                                 repo);
        return k;
    }
}

/* ---------- public API ---------- */

int
dt_registry_new(const struct dt_registry_opts *o, struct dt_registry **ret, struct dt_error **err)
{
    struct dt_registry *r;

    (void) pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return dt_error_set(err, EIO, "initialise libcurl: %s",
                            curl_easy_strerror(curl_init_result));
    if (o->scheme > DT_REGISTRY_SCHEME_HTTP || o->timeout_s < 0)
        return dt_error_set(err, EINVAL, "invalid registry client options");
    if (o->password && !o->username)
        return dt_error_set(err, EINVAL, "registry password given without a username");

    r = xcalloc(1, sizeof(*r));
    r->curl = curl_easy_init();
    if (!r->curl) {
        free(r);
        return dt_error_set(err, ENOMEM, "create a curl handle");
    }
    r->user_agent = xstrdup(o->user_agent ? o->user_agent : "daytona");
    r->username = o->username ? xstrdup(o->username) : NULL;
    r->password = o->password ? xstrdup(o->password) : NULL;
    r->scheme = o->scheme;
    r->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
    r->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
    r->max_retries = o->max_retries > 0 ? o->max_retries : 3;
    *ret = r;
    return 0;
}

void
dt_registry_free(struct dt_registry *r)
{
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    for (size_t i = 0; i < r->n_auth; i++) {
        free(r->auth[i].host);
        free(r->auth[i].repo);
        if (r->auth[i].header)
            explicit_bzero(r->auth[i].header, strlen(r->auth[i].header));
        free(r->auth[i].header);
    }
    if (r->password)
        explicit_bzero(r->password, strlen(r->password));
    free(r->password);
    free(r->username);
    free(r->user_agent);
    free(r->ca_file);
    free(r);
}

static int
check_target(const char *host, const char *repo, struct dt_error **err)
{
    if (!host || !valid_host(host))
        return dt_error_set(err, EINVAL, "invalid registry host '%s'", host ? host : "");
    if (!repo || !valid_repo(repo))
        return dt_error_set(err, EINVAL, "invalid repository name '%s'", repo ? repo : "");
    return 0;
}

int
dt_registry_get_manifest(struct dt_registry *r, const char *host, const char *repo,
                         const char *ref, const char *accept, char **ret_body, size_t *ret_len,
                         char **ret_media_type, char **ret_digest, struct dt_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL;
    struct xfer x = { .r = r, .out_fd = -1, .limit = DT_REGISTRY_MANIFEST_MAX };
    char digest[7 + 64 + 1];
    EVP_MD_CTX *md;
    bool by_digest;
    int k;

    k = check_target(host, repo, err);
    if (k < 0)
        return k;
    by_digest = ref && strchr(ref, ':');
    if (!ref || (by_digest ? !valid_digest(ref) : !valid_tag(ref)))
        return dt_error_set(err, EINVAL, "invalid tag or digest '%s' (only sha256 digests)",
                            ref ? ref : "");

    url = xasprintf("%s://%s/v2/%s/manifests/%s", scheme_for(r, host), host, repo, ref);
    what = xasprintf("manifest %s:%s", repo, ref);
    k = do_get(r, &x, host, repo, url, accept ? accept : DEFAULT_ACCEPT, what, err);
    if (k < 0) {
        xfer_done(&x);
        return k;
    }

    md = EVP_MD_CTX_new();
    if (!md)
        abort();
    DT_ASSERT(EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    DT_ASSERT(EVP_DigestUpdate(md, x.buf ? x.buf : "", x.len) == 1);
    sha256_hex(md, digest);
    EVP_MD_CTX_free(md);

    if (by_digest && strcmp(digest, ref) != 0) {
        k = dt_error_set(err, EBADMSG, "registry %s: %s: content has digest %s", host, what,
                         digest);
        xfer_done(&x);
        return k;
    }
    if (x.docker_digest && strncmp(x.docker_digest, "sha256:", 7) == 0 &&
        strcmp(x.docker_digest, digest) != 0) {
        k = dt_error_set(err, EBADMSG,
                         "registry %s: %s: content has digest %s but the registry said %s", host,
                         what, digest, x.docker_digest);
        xfer_done(&x);
        return k;
    }

    if (ret_body)
        *ret_body = x.buf ? TAKE_PTR(x.buf) : xstrdup("");
    if (ret_len)
        *ret_len = x.len;
    if (ret_media_type)
        *ret_media_type = TAKE_PTR(x.content_type);
    if (ret_digest)
        *ret_digest = xstrdup(digest);
    xfer_done(&x);
    return 0;
}

int
dt_registry_get_blob(struct dt_registry *r, const char *host, const char *repo,
                     const char *digest, int out_fd, uint64_t expected_size,
                     dt_registry_progress_fn progress, void *userdata, struct dt_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL;
    struct xfer x = {
        .r = r,
        .out_fd = out_fd,
        .limit = ERROR_BODY_MAX,
        .expected_size = expected_size,
        .progress = progress,
        .userdata = userdata,
    };
    char got[7 + 64 + 1];
    int k;

    k = check_target(host, repo, err);
    if (k < 0)
        return k;
    if (!digest || !valid_digest(digest))
        return dt_error_set(err, EINVAL, "invalid blob digest '%s' (only sha256 is supported)",
                            digest ? digest : "");
    if (out_fd < 0)
        return dt_error_set(err, EBADF, "get blob %s: no output file", digest);

    url = xasprintf("%s://%s/v2/%s/blobs/%s", scheme_for(r, host), host, repo, digest);
    what = xasprintf("blob %s@%s", repo, digest);
    x.md = EVP_MD_CTX_new();
    if (!x.md)
        abort();
    DT_ASSERT(EVP_DigestInit_ex(x.md, EVP_sha256(), NULL) == 1);

    k = do_get(r, &x, host, repo, url, NULL, what, err);
    if (k >= 0 && expected_size != DT_REGISTRY_SIZE_UNKNOWN && x.written != expected_size)
        k = dt_error_set(err, EBADMSG, "registry %s: %s: got %llu bytes, expected %llu", host,
                         what, (unsigned long long) x.written,
                         (unsigned long long) expected_size);
    if (k >= 0) {
        sha256_hex(x.md, got);
        if (strcmp(got, digest) != 0)
            k = dt_error_set(err, EBADMSG, "registry %s: %s: content has digest %s", host, what,
                             got);
    } else if (k == -EBADMSG && !(err && *err))
        k = dt_error_set(err, EBADMSG, "registry %s: %s: more bytes than expected", host, what);
    EVP_MD_CTX_free(x.md);
    xfer_done(&x);
    return k < 0 ? k : 0;
}
