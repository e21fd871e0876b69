/* SPDX-License-Identifier: Apache-2.0 */
/* The libdaytona client: configuration precedence (explicit > environment > config file), the
 * HTTP request core on one reused libcurl easy handle (so requests share a keep-alive
 * connection), JSON helpers and the sandbox -> toolbox URL cache. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client-int.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define SDK_VERSION_HEADER "X-Daytona-SDK-Version: 0.218.0"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *
daytona_version(void)
{
    return DAYTONA_VERSION;
}

static const char *
env_value(const char *name)
{
    const char *v = secure_getenv(name);
    return v && v[0] ? v : NULL;
}

static char *
strip_url(const char *u)
{
    char *s = xstrdup(u);
    size_t n = strlen(s);

    while (n > 0 && s[n - 1] == '/')
        s[--n] = 0;
    return s;
}

int
daytona_client_new(const struct daytona_config *cfg, daytona_client **ret, daytona_error **err)
{
    static const struct daytona_config empty = { 0 };
    const char *key, *url, *target;
    daytona_config_file *cf = NULL;
    struct daytona_profile prof = { 0 };
    daytona_client *c;
    int r;

    if (!cfg)
        cfg = &empty;
    (void) pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return dc_error(err, EIO, "initialise libcurl: %s", curl_easy_strerror(curl_init_result));

    key = cfg->api_key;
    url = cfg->api_url;
    target = cfg->target;
    if (!cfg->ignore_env) {
        if (!key)
            key = env_value("DAYTONA_API_KEY");
        if (!url)
            url = env_value("DAYTONA_API_URL");
        if (!target)
            target = env_value("DAYTONA_TARGET");
    }
    /* The file is read only when something is still missing, and then a named profile must
     * exist: a typo in --profile should not silently fall back to the defaults. */
    if (!cfg->ignore_config_file && (!key || !url || !target || cfg->profile)) {
        r = daytona_config_file_load(cfg->config_path, &cf, err);
        if (r < 0)
            return r;
        r = daytona_config_file_get(cf, cfg->profile, &prof);
        if (r < 0 && cfg->profile) {
            r = dc_error(err, ENOENT, "no profile '%s' in '%s'", cfg->profile,
                         daytona_config_file_path(cf));
            daytona_config_file_free(cf);
            return r;
        }
        if (!key)
            key = prof.api_key;
        if (!url)
            url = prof.api_url;
        if (!target)
            target = prof.target;
    }
    if (!key || !key[0]) {
        daytona_config_file_free(cf);
        return dc_error(err, ENOKEY, "no API key: set DAYTONA_API_KEY or run 'daytona login'");
    }
    if (!url)
        url = DAYTONA_DEFAULT_API_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        r = dc_error(err, EINVAL, "invalid API URL '%s': expected http:// or https://", url);
        daytona_config_file_free(cf);
        return r;
    }

    c = xcalloc(1, sizeof(*c));
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        daytona_config_file_free(cf);
        return dc_error(err, ENOMEM, "create a libcurl handle");
    }
    c->api_key = xstrdup(key);
    c->api_url = strip_url(url);
    c->target = target && target[0] ? xstrdup(target) : NULL;
    c->organization_id = cfg->organization_id ? xstrdup(cfg->organization_id) : NULL;
    c->user_agent = cfg->user_agent ? xstrdup(cfg->user_agent)
                                    : xstrdup("libdaytona/" DAYTONA_VERSION);
    c->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 0;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    daytona_config_file_free(cf);
    *ret = c;
    return 0;
}

void
daytona_client_forget(daytona_client *c)
{
    for (size_t i = 0; i < DC_CACHE_SLOTS; i++) {
        free(c->cache[i].key);
        free(c->cache[i].id);
        free(c->cache[i].base);
        c->cache[i] = (struct dc_resolved) { 0 };
    }
}

void
daytona_client_free(daytona_client *c)
{
    if (!c)
        return;
    daytona_client_forget(c);
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->api_url);
    free(c->api_key);
    free(c->target);
    free(c->organization_id);
    free(c->user_agent);
    free(c);
}

const char *
daytona_client_api_url(const daytona_client *c)
{
    return c->api_url;
}

const char *
daytona_client_api_key(const daytona_client *c)
{
    return c->api_key;
}

const char *
daytona_client_target(const daytona_client *c)
{
    return c->target;
}

/* ---- HTTP core ---- */

void
dc_resp_done(struct dc_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

struct xfer {
    daytona_client *c;
    const struct dc_req *req;
    struct dc_resp *resp;
    size_t max;
    int sink_error;     /* from the sink callback, negative */
    bool too_big;
    bool status_known, ok;
};

static size_t
on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;

    if (!x->status_known) {
        long st = 0;
        (void) curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &st);
        x->status_known = true;
        x->ok = st >= 200 && st < 300;
    }
    /* A streaming sink gets only a successful body; an error body is collected for the
     * message instead. */
    if (x->ok && x->req->sink) {
        int r = x->req->sink(data, len, x->req->sink_ud);
        if (r < 0) {
            x->sink_error = r;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    {
        size_t max = x->ok ? x->max : DC_MAX_ERROR_BODY;
        struct dc_resp *p = x->resp;

        if (p->len + len > max) {
            if (x->ok) {
                x->too_big = true;
                return CURL_WRITEFUNC_ERROR;
            }
            len = max - p->len; /* keep the start of a huge error page */
            if (len == 0)
                return size * nmemb;
        }
        p->body = xrealloc(p->body, p->len + len + 1);
        memcpy(p->body + p->len, data, len);
        p->len += len;
        p->body[p->len] = 0;
    }
    return size * nmemb;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = ud;
    const struct dc_req *r = x->req;
    bool up = r->read_fn != NULL;
    curl_off_t now = up ? ulnow : dlnow;
    int64_t total = r->progress_total >= 0 ? r->progress_total : (up ? -1 : (int64_t) dltotal);

    if (total == 0 && !up)
        total = -1;
    return r->progress(now > 0 ? (uint64_t) now : 0, total, r->progress_ud) ? 1 : 0;
}

static int
curl_errno(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return ECONNRESET;
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return EPROTO;
    case CURLE_ABORTED_BY_CALLBACK:
        return ECANCELED;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    default:
        return EIO;
    }
}

int
dc_perform(daytona_client *c, const struct dc_req *r, struct dc_resp *resp, const char *what,
           daytona_error **err)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    _cleanup_free_ char *auth = NULL, *ct = NULL, *acc = NULL, *org = NULL;
    struct curl_slist *hdrs = NULL;
    struct xfer x = { .c = c, .req = r, .resp = resp };
    long timeout = r->timeout_ms > 0 ? r->timeout_ms : r->timeout_ms < 0 ? 0
                                                                        : c->request_timeout_ms;
    CURLcode cc;
    CURL *h = c->curl;
    int ret = 0;

    *resp = (struct dc_resp) { .content_length = -1 };
    x.max = r->max_body ? r->max_body : DC_MAX_SMALL_BODY;

    /* Reset clears the options but keeps the connection cache: keep-alive across calls. */
    curl_easy_reset(h);
    if (r->raw_headers) {
        for (const struct curl_slist *l = r->raw_headers; l; l = l->next)
            hdrs = curl_slist_append(hdrs, l->data);
    } else {
        auth = xasprintf("Authorization: Bearer %s", c->api_key);
        hdrs = curl_slist_append(hdrs, auth);
        acc = xasprintf("Accept: %s", r->accept ? r->accept : "application/json");
        hdrs = curl_slist_append(hdrs, acc);
        hdrs = curl_slist_append(hdrs, "X-Daytona-Source: libdaytona");
        hdrs = curl_slist_append(hdrs, SDK_VERSION_HEADER);
        if (c->organization_id) {
            org = xasprintf("X-Daytona-Organization-ID: %s", c->organization_id);
            hdrs = curl_slist_append(hdrs, org);
        }
    }
    /* No "Expect: 100-continue": it costs a round trip (or a 1 s stall) on every upload. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (r->body || r->read_fn) {
        ct = xasprintf("Content-Type: %s", r->content_type ? r->content_type : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (!hdrs)
        return dc_error(err, ENOMEM, "%s: build request headers", what);

    (void) curl_easy_setopt(h, CURLOPT_URL, r->url);
    (void) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    (void) curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    (void) curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    (void) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    (void) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    (void) curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    (void) curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    (void) curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->progress) {
        (void) curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        (void) curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        (void) curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
    }

    if (r->read_fn) {
        (void) curl_easy_setopt(h, CURLOPT_POST, 1L);
        (void) curl_easy_setopt(h, CURLOPT_READFUNCTION, r->read_fn);
        (void) curl_easy_setopt(h, CURLOPT_READDATA, r->read_ud);
        /* -1: libcurl sends the body chunked. */
        (void) curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->upload_size);
        if (strcmp(r->method, "POST") != 0)
            (void) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET") == 0) {
        (void) curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "HEAD") == 0) {
        (void) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (r->body || strcmp(r->method, "POST") == 0) {
            (void) curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                    (curl_off_t) (r->body ? r->body_len : 0));
            (void) curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        }
        if (strcmp(r->method, "POST") != 0)
            (void) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }

    cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
            resp->content_length = cl;
    }
    /* Detach the stack buffers from the handle: it outlives this call. */
    (void) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    (void) curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);

    if (cc != CURLE_OK) {
        if (x.sink_error < 0)
            ret = x.sink_error; /* the caller's sink set *err or wants its own code */
        else if (x.too_big)
            ret = dc_error(err, EFBIG, "%s: response larger than %zu bytes", what, x.max);
        else if (cc == CURLE_ABORTED_BY_CALLBACK && r->progress)
            ret = dc_error(err, ECANCELED, "%s: cancelled", what);
        else if (cc == CURLE_READ_ERROR || cc == CURLE_ABORTED_BY_CALLBACK)
            ret = -EIO; /* the reader stored its error; the caller reports it */
        else if (resp->status >= 300 && cc == CURLE_PARTIAL_FILE)
            ret = dc_error_http(err, resp->status, resp->body, resp->len, what);
        else
            ret = dc_error(err, curl_errno(cc), "%s: %s", what,
                           errbuf[0] ? errbuf : curl_easy_strerror(cc));
        if (ret < 0 && x.sink_error == 0 && cc != CURLE_READ_ERROR &&
            cc != CURLE_ABORTED_BY_CALLBACK && err && *err && resp->status == 0)
            (*err)->http_status = 0;
        dc_resp_done(resp);
        return ret;
    }
    if (resp->status < 200 || resp->status >= 300) {
        ret = dc_error_http(err, resp->status, resp->body, resp->len, what);
        dc_resp_done(resp);
        return ret;
    }
    return 0;
}

int
dc_json_call(daytona_client *c, const char *method, const char *url, json_t *body,
             long timeout_ms, json_t **ret, const char *what, daytona_error **err)
{
    _cleanup_free_ char *text = NULL;
    struct dc_resp resp;
    struct dc_req req = { .method = method, .url = url, .timeout_ms = timeout_ms };
    json_error_t je;
    json_t *j;
    int r;

    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text)
            return dc_error(err, ENOMEM, "%s: encode request", what);
        req.body = text;
        req.body_len = strlen(text);
    }
    r = dc_perform(c, &req, &resp, what, err);
    if (r < 0)
        return r;
    if (!ret) {
        dc_resp_done(&resp);
        return 0;
    }
    if (resp.len == 0) {
        *ret = NULL;
        dc_resp_done(&resp);
        return 0;
    }
    j = json_loadb(resp.body, resp.len, JSON_DECODE_ANY, &je);
    dc_resp_done(&resp);
    if (!j)
        return dc_error(err, EPROTO, "%s: invalid JSON in response: %s", what, je.text);
    *ret = j;
    return 0;
}

int
daytona_request(daytona_client *c, const char *method, const char *path, const char *body,
                long *status, char **response, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL;
    struct dc_resp resp;
    struct dc_req req = { .method = method, .body = body, .body_len = body ? strlen(body) : 0 };
    int r;

    url = xasprintf("%s%s", c->api_url, path);
    what = xasprintf("%s %s", method, path);
    req.url = url;
    r = dc_perform(c, &req, &resp, what, err);
    if (r < 0)
        return r;
    if (status)
        *status = resp.status;
    if (response)
        *response = resp.body ? TAKE_PTR(resp.body) : xstrdup("");
    dc_resp_done(&resp);
    return 0;
}

char *
dc_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = s ? strlen(s) : 0;
    char *o = xmalloc(n * 3 + 1), *p = o;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            *p++ = (char) ch;
        else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = 0;
    return o;
}

char *
dc_api_url(daytona_client *c, const char *fmt, ...)
{
    _cleanup_free_ char *path = NULL;
    va_list ap;

    va_start(ap, fmt);
    path = xvasprintf(fmt, ap);
    va_end(ap);
    return xasprintf("%s%s", c->api_url, path);
}

/* ---- JSON helpers ---- */

char *
dc_jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

double
dc_jnum(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

long
dc_jlong(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (long) json_integer_value(v);
    return json_is_real(v) ? (long) json_real_value(v) : 0;
}

bool
dc_jbool(json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

void
dc_kv_from_json(json_t *o, struct daytona_kv **ret, size_t *n)
{
    const char *k;
    json_t *v;
    size_t i = 0;

    *ret = NULL;
    *n = 0;
    if (!json_is_object(o) || json_object_size(o) == 0)
        return;
    *ret = xcalloc(json_object_size(o), sizeof(**ret));
    json_object_foreach(o, k, v) {
        (*ret)[i].key = xstrdup(k);
        if (json_is_string(v))
            (*ret)[i].value = xstrdup(json_string_value(v));
        else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            (*ret)[i].value = t ? t : xstrdup("");
        }
        i++;
    }
    *n = i;
}

int
dc_kv_to_json(const char *const *kv, json_t *o, const char *what, daytona_error **err)
{
    for (size_t i = 0; kv && kv[i]; i++) {
        const char *eq = strchr(kv[i], '=');
        _cleanup_free_ char *k = NULL;

        if (!eq || eq == kv[i])
            return dc_error(err, EINVAL, "invalid %s '%s': expected KEY=VALUE", what, kv[i]);
        k = xstrndup(kv[i], (size_t) (eq - kv[i]));
        json_object_set_new(o, k, json_string(eq + 1));
        if (!json_object_get(o, k))
            return dc_error(err, EINVAL, "invalid %s '%s': not UTF-8", what, kv[i]);
    }
    return 0;
}

char *
dc_json_text(json_t *j)
{
    char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return t ? t : xstrdup("null");
}

char **
dc_strv_from_json(json_t *a)
{
    char **v;
    size_t n = 0, i;
    json_t *e;

    if (!json_is_array(a))
        return NULL;
    v = xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, e) {
        if (json_is_string(e))
            v[n++] = xstrdup(json_string_value(e));
    }
    return v;
}

void
daytona_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* ---- sandbox -> toolbox resolution ---- */

int
dc_toolbox(daytona_client *c, const char *sandbox, const char **base, const char **id,
           daytona_error **err)
{
    struct daytona_sandbox *sb = NULL;
    struct dc_resolved *slot;
    _cleanup_free_ char *proxy = NULL;
    size_t n;
    int r;

    if (!sandbox || !sandbox[0])
        return dc_error(err, EINVAL, "no sandbox given");
    for (size_t i = 0; i < DC_CACHE_SLOTS; i++)
        if (c->cache[i].key && strcmp(c->cache[i].key, sandbox) == 0) {
            *base = c->cache[i].base;
            if (id)
                *id = c->cache[i].id;
            return 0;
        }
    r = daytona_sandbox_get(c, sandbox, &sb, err);
    if (r < 0)
        return r;
    if (!sb->id) {
        daytona_sandbox_free(sb);
        return dc_error(err, EPROTO, "sandbox '%s': the record has no id", sandbox);
    }
    if (sb->toolbox_proxy_url && sb->toolbox_proxy_url[0])
        proxy = xstrdup(sb->toolbox_proxy_url);
    else {
        json_t *j = NULL;
        _cleanup_free_ char *eid = dc_escape(sb->id);
        _cleanup_free_ char *url = dc_api_url(c, "/sandbox/%s/toolbox-proxy-url", eid);

        r = dc_json_call(c, "GET", url, NULL, 0, &j, "get toolbox URL", err);
        if (r < 0) {
            daytona_sandbox_free(sb);
            return r;
        }
        proxy = dc_jstr(j, "url");
        json_decref(j);
        if (!proxy) {
            daytona_sandbox_free(sb);
            return dc_error(err, EPROTO, "sandbox '%s': no toolbox proxy URL", sandbox);
        }
    }
    n = strlen(proxy);
    while (n > 0 && proxy[n - 1] == '/')
        proxy[--n] = 0;

    slot = &c->cache[c->cache_next++ % DC_CACHE_SLOTS];
    free(slot->key);
    free(slot->id);
    free(slot->base);
    slot->key = xstrdup(sandbox);
    slot->id = xstrdup(sb->id);
    slot->base = xasprintf("%s/%s", proxy, sb->id);
    daytona_sandbox_free(sb);
    *base = slot->base;
    if (id)
        *id = slot->id;
    return 0;
}

char *
dc_toolbox_url(daytona_client *c, const char *sandbox, daytona_error **err, int *r,
               const char *fmt, ...)
{
    _cleanup_free_ char *suffix = NULL;
    const char *base;
    va_list ap;

    *r = dc_toolbox(c, sandbox, &base, NULL, err);
    if (*r < 0)
        return NULL;
    va_start(ap, fmt);
    suffix = xvasprintf(fmt, ap);
    va_end(ap);
    return xasprintf("%s%s", base, suffix);
}

int
daytona_sandbox_toolbox_url(daytona_client *c, const char *id_or_name, char **ret,
                            daytona_error **err)
{
    const char *base;
    int r = dc_toolbox(c, id_or_name, &base, NULL, err);

    if (r < 0)
        return r;
    *ret = xstrdup(base);
    return 0;
}
