/* SPDX-License-Identifier: Apache-2.0 */
/* Preview URLs: tokens (HMAC-SHA256 with a server secret, stateless), the three API routes that
 * hand them out or revoke them, and the preview proxy, which authenticates a request and streams
 * it over TCP to the sandbox's address on the host bridge (dt_proxy_forward_to). See
 * docs/design/preview.md for the URL forms and why they look like this. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "server/preview.h"
#include "server/proxy.h"
#include "server/runner.h"
#include "dt/banned.h"

#define PREVIEW_SEGMENT   "preview"
#define TOKEN_HEADER      "x-daytona-preview-token"
#define SECRET_ID         ".preview" /* DATA_DIR/signing/.preview: never a sandbox id (a uuid) */
#define REVOKED_DIR       "preview-revoked"
#define STD_TOKEN_BYTES   20         /* 32 base32 characters, like Daytona's tokens */
#define SIGNED_MAC_BYTES  12
/* A signed token: uuid (16) | port (2, big endian) | expiry (4, Unix seconds, big endian) |
 * MAC (12), in lowercase base32: 55 characters, so "{port}-{token}" (≤ 61) is one DNS label. */
#define SIGNED_RAW_BYTES  (16 + 2 + 4 + SIGNED_MAC_BYTES)
#define SIGNED_TOKEN_LEN  ((SIGNED_RAW_BYTES * 8 + 4) / 5)
#define SIGNED_DEFAULT_S  60
#define SIGNED_MAX_S      86400

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* ---- tokens ---- */

/* Lowercase base32 without padding: survives DNS names (case-insensitive) and URLs as is. */
static void
base32(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = 0;
}

/* Decode exactly N bytes from IN (strlen == (N*8+4)/5); false on a foreign character. */
static bool
unbase32(const char *in, uint8_t *out, size_t n)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (; *in && o < n; in++) {
        const char *c = strchr(b32, *in);

        if (!c || !*c)
            return false;
        acc = acc << 5 | (uint32_t) (c - b32);
        bits += 5;
        if (bits >= 8) {
            out[o++] = (uint8_t) (acc >> (bits - 8));
            bits -= 8;
        }
    }
    return o == n && !*in;
}

static bool
is_signed_token(const char *s)
{
    return strlen(s) == SIGNED_TOKEN_LEN && strspn(s, b32) == SIGNED_TOKEN_LEN;
}

/* The server's preview secret, created on first use (with signing.c's key machinery: 32
 * random bytes, hex, 0600). */
static int
secret(struct dt_server *s, char **ret, struct dt_error **err)
{
    return dt_signing_key(s, SECRET_ID, false, ret, err);
}

static void
mac(const char *key, const void *msg, size_t len, uint8_t out[static EVP_MAX_MD_SIZE])
{
    unsigned int n = 0;

    DT_ASSERT(HMAC(EVP_sha256(), key, (int) strlen(key), msg, len, out, &n) && n == 32);
}

/* The standard token of (ID, PORT): stable for the sandbox's life (the secret does not rotate);
 * not stored anywhere, recomputed to verify. */
static void
std_token(const char *key, const char *id, unsigned port, char out[static 2 * STD_TOKEN_BYTES])
{
    _cleanup_free_ char *msg = xasprintf("v1:preview:%s:%u", id, port);
    uint8_t m[EVP_MAX_MD_SIZE];

    mac(key, msg, strlen(msg), m);
    base32(m, STD_TOKEN_BYTES, out);
}

static void
signed_mac(const char *key, const uint8_t *raw, uint8_t out[static EVP_MAX_MD_SIZE])
{
    uint8_t msg[18 + SIGNED_RAW_BYTES];

    /* Domain separation from the standard tokens (which MAC text starting "v1:preview:"). */
    memcpy(msg, "v1:signed-preview:", 18);
    memcpy(msg + 18, raw, SIGNED_RAW_BYTES - SIGNED_MAC_BYTES);
    mac(key, msg, 18 + SIGNED_RAW_BYTES - SIGNED_MAC_BYTES, out);
}


static void
signed_token(const char *key, const char *uuid, unsigned port, uint32_t expires,
             char out[static SIGNED_TOKEN_LEN + 1])
{
    uint8_t raw[SIGNED_RAW_BYTES], m[EVP_MAX_MD_SIZE];
    size_t o = 0;

    DT_ASSERT(dt_store_is_uuid(uuid));
    for (const char *p = uuid; *p && o < 16; p++) {
        if (*p == '-')
            continue;
        raw[o++] = (uint8_t) (unhex(p[0]) << 4 | unhex(p[1]));
        p++;
    }
    raw[16] = (uint8_t) (port >> 8);
    raw[17] = (uint8_t) port;
    raw[18] = (uint8_t) (expires >> 24);
    raw[19] = (uint8_t) (expires >> 16);
    raw[20] = (uint8_t) (expires >> 8);
    raw[21] = (uint8_t) expires;
    signed_mac(key, raw, m);
    memcpy(raw + 22, m, SIGNED_MAC_BYTES);
    base32(raw, SIGNED_RAW_BYTES, out);
}

/* Check TOKEN's MAC (constant time) and take it apart: the sandbox id, port and expiry. Expiry
 * and revocation are the caller's business (they get their own messages). */
static bool
signed_token_parse(const char *key, const char *token, char id[static 37], unsigned *ret_port,
                   uint32_t *ret_expires)
{
    uint8_t raw[SIGNED_RAW_BYTES], m[EVP_MAX_MD_SIZE];

    if (!is_signed_token(token) || !unbase32(token, raw, sizeof(raw)))
        return false;
    signed_mac(key, raw, m);
    if (CRYPTO_memcmp(m, raw + 22, SIGNED_MAC_BYTES) != 0)
        return false;
    snprintf(id, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9],
             raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]);
    *ret_port = (unsigned) raw[16] << 8 | raw[17];
    *ret_expires = (uint32_t) raw[18] << 24 | (uint32_t) raw[19] << 16 |
                   (uint32_t) raw[20] << 8 | raw[21];
    return true;
}

/* Revoked signed tokens: one empty file per token below DATA_DIR/preview-revoked, removed once
 * the token expired anyway (a token lives 24 h at most, so the directory stays small). */
static bool
is_revoked(struct dt_server *s, const char *token)
{
    _cleanup_free_ char *path = xasprintf("%s/" REVOKED_DIR "/%s", s->data_dir, token);

    return access(path, F_OK) == 0;
}

static void
prune_revoked(struct dt_server *s, const char *dir, int64_t now_s)
{
    _cleanup_free_ char *key = NULL;
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    if (secret(s, &key, NULL) == 0)
        while ((de = readdir(d))) {
            char id[37];
            unsigned port;
            uint32_t exp;

            if (de->d_name[0] == '.')
                continue;
            if (!signed_token_parse(key, de->d_name, id, &port, &exp) || (int64_t) exp < now_s)
                (void) unlinkat(dirfd(d), de->d_name, 0);
        }
    closedir(d);
}

static int
revoke_token(struct dt_server *s, const char *token, struct dt_error **err)
{
    _cleanup_free_ char *dir = xasprintf("%s/" REVOKED_DIR, s->data_dir);
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, token);
    int r;

    prune_revoked(s, dir, dt_store_now_ms() / 1000);
    r = mkdir_p(dir, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create %s", dir);
    r = write_file_at(AT_FDCWD, path, "", 0, 0600);
    if (r < 0)
        return dt_error_errno(err, r, "write %s", path);
    return 0;
}

/* A port as written in a URL: decimal, 1..65535, no sign, no leading zero. 0 when invalid. */
static unsigned
parse_port(const char *s)
{
    uint64_t v;

    if (!s || !*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s) || s[0] == '0' ||
        parse_u64(s, &v) < 0 || v < 1 || v > 65535)
        return 0;
    return (unsigned) v;
}

bool
dt_preview_token_valid(struct dt_server *s, const char *id, unsigned port, const char *token)
{
    _cleanup_free_ char *key = NULL;
    char want[2 * STD_TOKEN_BYTES];

    if (!token || secret(s, &key, NULL) < 0)
        return false;
    std_token(key, id, port, want);
    return strlen(token) == strlen(want) && CRYPTO_memcmp(token, want, strlen(want)) == 0;
}

/* ---- the API ---- */

static struct dt_store_sandbox *
api_sandbox(struct call *c, const char *id_or_name)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_sandbox *sb = NULL;
    int r = dt_store_sandbox_find(c->s->store, c->org, id_or_name, &sb, &err);

    if (r == -ENOENT)
        dt_api_error(c->req, 404, "NOT_FOUND", "sandbox '%s' not found", id_or_name);
    else if (r < 0)
        dt_api_error_errno(c->req, r, err);
    return r < 0 ? NULL : sb;
}

void
dt_preview_route_api(struct call *c, const char *const *seg, size_t n)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *key = NULL, *url = NULL;
    const char *m = dt_httpd_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    unsigned port;
    int r;

    /* api sandbox {id} ports {port} preview-url | signed-preview-url [{token} expire] */
    if (!((n == 6 && get && strcmp(seg[5], "preview-url") == 0) ||
          (n == 6 && get && strcmp(seg[5], "signed-preview-url") == 0) ||
          (n == 8 && strcmp(m, "POST") == 0 && strcmp(seg[5], "signed-preview-url") == 0 &&
           strcmp(seg[7], "expire") == 0)))
        return dt_api_error(c->req, 404, "NOT_FOUND", "no such endpoint: %s %s", m,
                            dt_httpd_req_head(c->req)->path);
    port = parse_port(seg[4]);
    if (!port)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid port '%s' (1..65535)", seg[4]);
    if (!(sb = api_sandbox(c, seg[2])))
        return;
    r = secret(c->s, &key, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);

    if (n == 6 && strcmp(seg[5], "preview-url") == 0) {
        char tok[2 * STD_TOKEN_BYTES];

        std_token(key, sb->id, port, tok);
        url = xasprintf("%s/" PREVIEW_SEGMENT "/%s/%u", c->s->public_url, sb->id, port);
        return dt_httpd_reply_json(c->req, 200, json_pack("{s:s,s:s,s:s}", "sandboxId", sb->id,
                                                          "url", url, "token", tok));
    }
    if (n == 6) {
        const char *q = dt_httpd_req_query(c->req, "expiresInSeconds");
        int64_t ttl = SIGNED_DEFAULT_S;
        char tok[SIGNED_TOKEN_LEN + 1];

        if (q && *q && (parse_i64(q, &ttl) < 0 || ttl < 1 || ttl > SIGNED_MAX_S))
            return dt_api_error(c->req, 400, "BAD_REQUEST",
                                "invalid expiresInSeconds '%s' (1..%d)", q, SIGNED_MAX_S);
        signed_token(key, sb->id, port, (uint32_t) (dt_store_now_ms() / 1000 + ttl), tok);
        url = xasprintf("%s/" PREVIEW_SEGMENT "/%s/%u", c->s->public_url, tok, port);
        return dt_httpd_reply_json(c->req, 200,
                                   json_pack("{s:s,s:i,s:s,s:s}", "sandboxId", sb->id, "port",
                                             (int) port, "token", tok, "url", url));
    }
    /* expire */
    {
        char id[37];
        unsigned tport;
        uint32_t exp;

        if (!signed_token_parse(key, seg[6], id, &tport, &exp) || strcmp(id, sb->id) != 0 ||
            tport != port)
            return dt_api_error(c->req, 400, "BAD_REQUEST",
                                "not a signed preview token of sandbox '%s' port %u", sb->id, port);
        if ((int64_t) exp >= dt_store_now_ms() / 1000) {
            r = revoke_token(c->s, seg[6], &err);
            if (r < 0)
                return dt_api_error_errno(c->req, r, err);
        }
        dt_httpd_reply(c->req, 200, NULL, NULL, 0);
    }
}

/* ---- the proxy ---- */

struct activity {
    struct dt_server *s;
    char id[37];
};

static void
on_activity(void *ud)
{
    struct activity *a = ud;

    dt_server_record_activity(a->s, a->id);
}

static void
on_done(void *ud)
{
    free(ud);
}

static void
preview_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
    _printf_(4, 5);

static void
preview_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    dt_httpd_reply_error(req, status, "DAYTONA_PROXY", code, "%s", msg ? msg : "error");
}

/* Authenticate and forward REQ for WHO (a sandbox id or a signed token) and PORT_STR to TARGET
 * (the path and query the sandbox's server sees). */
static void
serve(struct dt_server *s, struct dt_httpd_req *req, const char *who, const char *port_str,
      const char *target)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *key = NULL;
    struct sockaddr_in sin;
    struct activity *a;
    char id[37], addr[16];
    bool authorized = false;
    unsigned port = parse_port(port_str);
    int r;

    if (!port)
        return preview_error(req, 400, "BAD_REQUEST", "invalid port '%s' (1..65535)", port_str);
    r = secret(s, &key, &err);
    if (r < 0)
        return preview_error(req, 500, NULL, "%s", err->message);
    if (is_signed_token(who)) {
        unsigned tport;
        uint32_t exp;

        if (!signed_token_parse(key, who, id, &tport, &exp) || tport != port)
            return preview_error(req, 403, "FORBIDDEN", "invalid signed preview URL");
        if ((int64_t) exp < dt_store_now_ms() / 1000)
            return preview_error(req, 403, "FORBIDDEN", "this signed preview URL has expired");
        if (is_revoked(s, who))
            return preview_error(req, 403, "FORBIDDEN", "this signed preview URL was revoked");
        authorized = true;
    } else if (dt_store_is_uuid(who))
        snprintf(id, sizeof(id), "%s", who);
    else
        return preview_error(req, 404, "NOT_FOUND", "sandbox '%s' not found", who);

    r = dt_store_sandbox_find(s->store, NULL, id, &sb, &err);
    if (r == -ENOENT)
        return preview_error(req, 404, "NOT_FOUND", "sandbox '%s' not found", id);
    if (r < 0)
        return preview_error(req, 500, NULL, "%s", err->message);
    if (!authorized && !sb->public_) {
        const char *tok = dt_httpd_req_header(req, TOKEN_HEADER);

        if (!tok || !*tok)
            return preview_error(req, 401, "UNAUTHORIZED",
                                 "missing preview token: send the token of the sandbox's "
                                 "preview link in the " TOKEN_HEADER " header, or use a signed "
                                 "preview URL");
        if (!dt_preview_token_valid(s, sb->id, port, tok))
            return preview_error(req, 403, "FORBIDDEN",
                                 "wrong preview token for sandbox '%s' port %u", sb->id, port);
    }
    if (sb->state != DT_SANDBOX_STARTED || !dt_runner_is_running(s->runner, sb->id))
        return preview_error(req, 409, "CONFLICT", "sandbox '%s' is %s: start it first", sb->id,
                             dt_sandbox_state_to_string(sb->state));
    r = dt_runner_address(s->runner, sb->id, addr, &err);
    if (r < 0)
        return preview_error(req, 502, NULL, "sandbox '%s' has no address: %s", sb->id,
                             err->message);
    if (uv_ip4_addr(addr, (int) port, &sin) < 0)
        return preview_error(req, 502, NULL, "sandbox '%s' has a bad address '%s'", sb->id, addr);

    a = xcalloc(1, sizeof(*a));
    a->s = s;
    snprintf(a->id, sizeof(a->id), "%s", sb->id);
    dt_proxy_forward_to(s->loop, req, &(struct dt_proxy_target) {
        .addr = &sin,
        .path_and_query = target,
        /* The app sees the Host the client used (apps that check it, or build links with
         * it, see the real name); our credential does not reach it, its own (Authorization)
         * does. */
        .host = dt_httpd_req_header(req, "host"),
        .drop_header = TOKEN_HEADER,
        .keep_authorization = true,
        .activity = on_activity,
        .done = on_done,
        .userdata = a,
    });
}

/* "{port}-{id or signed token}" as the first label of HOST (a wildcard DNS name). Only a label
 * whose second part is a uuid or a signed token counts, so ordinary host names (localhost,
 * 127.0.0.1:3000, api-1.example.com) never look like a preview. */
static bool
host_preview(const char *host, char port[static 6], char who[static SIGNED_TOKEN_LEN + 1])
{
    size_t len, dash;

    if (!host)
        return false;
    len = strcspn(host, ".:");
    dash = strspn(host, "0123456789");
    if (dash == 0 || dash > 5 || host[dash] != '-' || len <= dash + 1 ||
        len - dash - 1 > SIGNED_TOKEN_LEN)
        return false;
    memcpy(port, host, dash);
    port[dash] = 0;
    memcpy(who, host + dash + 1, len - dash - 1);
    who[len - dash - 1] = 0;
    for (char *p = who; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char) (*p - 'A' + 'a'); /* host names are case-insensitive */
    return dt_store_is_uuid(who) || is_signed_token(who);
}

bool
dt_preview_handle(struct dt_server *s, struct dt_httpd_req *req)
{
    const struct dt_http_head *h = dt_httpd_req_head(req);
    _cleanup_free_ char *target = NULL;
    const char *const *seg;
    char port[6], who[SIGNED_TOKEN_LEN + 1];
    const char *rest;
    size_t n;

    if (!h->path)
        return false; /* CONNECT */
    if (host_preview(dt_httpd_req_header(req, "host"), port, who)) {
        /* The whole path goes to the sandbox's server. */
        target = h->query ? xasprintf("%s?%s", h->path, h->query) : xstrdup(h->path);
        serve(s, req, who, port, target);
        return true;
    }
    seg = dt_httpd_req_segments(req, &n);
    if (!seg || n < 1 || strcmp(seg[0], PREVIEW_SEGMENT) != 0)
        return false;
    if (n < 3) {
        preview_error(req, 404, "NOT_FOUND",
                      "preview URLs look like /" PREVIEW_SEGMENT "/{sandboxId}/{port}/...");
        return true;
    }
    /* The raw path after "/preview/{who}/{port}", still percent-encoded. */
    rest = h->path + 1;
    for (int i = 0; i < 3 && rest; i++)
        rest = strchr(rest + (i > 0), '/');
    if (!rest) {
        /* "/preview/{id}/{port}": relative links in the app's pages only resolve below a
         * trailing slash. */
        _cleanup_free_ char *loc = h->query ? xasprintf("%s/?%s", h->path, h->query)
                                            : xasprintf("%s/", h->path);
        struct dt_http_header hd = { .name = "Location", .value = loc };

        if (dt_httpd_start(req, 308, &hd, 1, 0) == 0)
            (void) dt_httpd_end(req);
        else
            preview_error(req, 400, "BAD_REQUEST", "bad preview path");
        return true;
    }
    target = h->query ? xasprintf("%s?%s", rest, h->query) : xstrdup(rest);
    serve(s, req, seg[1], seg[2], target);
    return true;
}
