/* SPDX-License-Identifier: Apache-2.0 */
/* The LSP endpoints (contract 3.11): one long-lived language server per (languageId, project),
 * started as the sandbox user and spoken to with JSON-RPC 2.0 over its stdin/stdout
 * (Content-Length framing). HTTP calls become requests to it and wait for its answer; the
 * answers are normalised to the shapes the SDK expects. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "dt/fd-util.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_MESSAGE      (16u << 20) /* largest JSON-RPC message accepted from a server */
#define MAX_HEADER       8192        /* longest header block of one message */
#define MAX_FILE         (16u << 20) /* largest document sent with didOpen */
#define MAX_STDIN_QUEUED (64u << 20) /* a server that stops reading its input is killed */
#define MAX_SYMBOLS      100000
#define MAX_ITEMS        100000
#define MAX_DEPTH        64          /* nesting of hierarchical document symbols */
#define CALL_TIMEOUT_MS  30000
#define TICK_MS          1000
#define KILL_GRACE_MS    2000        /* shutdown + exit -> SIGKILL */
#define ERR_TAIL         2048        /* last bytes of the server's stderr, for error messages */
#define READ_CHUNK       65536

enum srv_state {
    SRV_STARTING, /* initialize sent, no answer yet */
    SRV_READY,
    SRV_DEAD,     /* the process is gone; the record stays to say why until start/stop */
    SRV_STOPPING, /* shutdown sent; invisible to lookups, freed once the process is gone */
};

enum call_kind {
    CALL_INIT,
    CALL_WAIT_INIT,   /* another start while initialize runs: no JSON-RPC id of its own */
    CALL_SHUTDOWN,
    CALL_DOC_SYMBOLS,
    CALL_WS_SYMBOLS,
    CALL_AGG_SYMBOLS, /* one document's symbols for a workspace-symbol fallback */
    CALL_COMPLETION,
};

struct lsp_server;

/* Workspace symbols for servers without workspace/symbol (pylsp 1.7): the documentSymbol of
 * every open document, filtered by the query. Freed when the last part is done. */
struct lsp_agg {
    struct dt_httpd_req *req;
    json_t *items;
    char *query;
    unsigned pending;
};

struct lsp_call {
    struct lsp_call *next;
    struct lsp_server *srv;
    enum call_kind kind;
    int64_t id;                /* JSON-RPC id (0 for CALL_WAIT_INIT) */
    uint64_t deadline;         /* uv_now() time */
    struct dt_httpd_req *req;  /* NULL when there is none or the client went away */
    struct lsp_agg *agg;
    char *uri;                 /* the document of a documentSymbol call */
    const char *method;        /* for messages */
};

struct lsp_doc {
    struct lsp_doc *next;
    char *uri;
};

struct lsp_server {
    struct lsp_server *next;
    struct dt_agent *a;
    char *lang;
    char *root;
    const char *program;
    enum srv_state state;
    bool listed, torn_down;
    struct dt_proc *proc;
    uv_pipe_t out, in, err;
    uv_timer_t tick, kill_timer;
    bool has_out, has_in, has_err;
    int open_handles;
    bool ws_symbols;           /* the server answers workspace/symbol itself */
    struct lsp_call *calls;
    struct lsp_doc *docs;
    int64_t next_id;
    char *died;                /* why it is dead (or is being killed) */
    /* incremental reader of the server's stdout */
    char hdr[MAX_HEADER];
    size_t hdr_len;
    bool in_body;
    char *body;
    size_t body_len, body_got;
    char err_tail[ERR_TAIL];
    size_t err_len;
};

struct write_req {
    uv_write_t req;
    char *buf;
};

/* One agent per process: the servers are module state (reachable from here until freed). */
static struct lsp_server *servers;

static void srv_teardown(struct lsp_server *s);

/* ---- languages ---- */

static const char *
lang_program(const char *lang)
{
    if (!lang)
        return NULL;
    if (strcmp(lang, "python") == 0)
        return "pylsp";
    if (strcmp(lang, "typescript") == 0 || strcmp(lang, "javascript") == 0)
        return "typescript-language-server";
    return NULL;
}

static const char *
lang_install_hint(const char *lang)
{
    if (strcmp(lang, "python") == 0)
        return "install python-lsp-server (pip install python-lsp-server, or apt-get install "
               "python3-pylsp)";
    return "install typescript-language-server (npm install -g typescript-language-server "
           "typescript)";
}

/* ---- server records ---- */

static void
call_unlink(struct lsp_call *c)
{
    for (struct lsp_call **pp = &c->srv->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
}

static void
call_free(struct lsp_call *c)
{
    free(c->uri);
    free(c);
}

static void
srv_maybe_free(struct lsp_server *s)
{
    if (s->listed || !s->torn_down || s->open_handles > 0)
        return;
    while (s->docs) {
        struct lsp_doc *d = s->docs;
        s->docs = d->next;
        free(d->uri);
        free(d);
    }
    free(s->lang);
    free(s->root);
    free(s->died);
    free(s->body);
    free(s);
}

static void
srv_unlink(struct lsp_server *s)
{
    for (struct lsp_server **pp = &servers; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    s->listed = false;
    srv_maybe_free(s);
}

static struct lsp_server *
srv_find(const char *lang, const char *root)
{
    for (struct lsp_server *s = servers; s; s = s->next)
        if (s->state != SRV_STOPPING && strcmp(s->lang, lang) == 0 && strcmp(s->root, root) == 0)
            return s;
    return NULL;
}

/* The last line of the server's stderr, printable, or "". */
static void
srv_err_line(struct lsp_server *s, char *buf, size_t sz)
{
    size_t end = s->err_len, start;

    while (end > 0 && (s->err_tail[end - 1] == '\n' || s->err_tail[end - 1] == '\r' ||
                       s->err_tail[end - 1] == ' '))
        end--;
    start = end;
    while (start > 0 && s->err_tail[start - 1] != '\n')
        start--;
    if (end - start > sz - 1)
        start = end - (sz - 1);
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char) s->err_tail[i];
        /* Keep the message valid UTF-8 for the JSON envelope. */
        buf[i - start] = c < 0x20 || c >= 0x7f ? '?' : (char) c;
    }
    buf[end - start] = 0;
}

/* ---- answering HTTP requests ---- */

static struct dt_httpd_req *
call_take_req(struct lsp_call *c)
{
    struct dt_httpd_req *req = c->req;

    if (req) {
        dt_httpd_req_set_close_cb(req, NULL, NULL);
        c->req = NULL;
    }
    return req;
}

static void
on_call_req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct lsp_call *c = ud;

    /* The client went away: the answer, when it comes, is dropped. */
    c->req = NULL;
}

static void
on_agg_req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct lsp_agg *g = ud;

    g->req = NULL;
}

static void
agg_part_done(struct lsp_agg *g)
{
    if (--g->pending > 0)
        return;
    if (g->req) {
        dt_httpd_req_set_close_cb(g->req, NULL, NULL);
        dt_httpd_reply_json(g->req, 200, json_incref(g->items));
    }
    json_decref(g->items);
    free(g->query);
    free(g);
}

/* Answer C with an error (its request, if any, is gone afterwards) and free it. C must already
 * be unlinked. */
static void
call_fail(struct lsp_call *c, int status, const char *code, const char *msg)
{
    struct dt_httpd_req *req = call_take_req(c);

    if (c->agg)
        agg_part_done(c->agg);
    else if (req)
        dt_agent_error(req, status, code, "%s", msg);
    call_free(c);
}

static void
srv_fail_calls(struct lsp_server *s, int status, const char *code, const char *msg)
{
    while (s->calls) {
        struct lsp_call *c = s->calls;
        s->calls = c->next;
        call_fail(c, status, code, msg);
    }
}

/* ---- writing to the server ---- */

static void
on_written(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *) req;

    /* A failed write means the server is gone: its exit is handled there. */
    free(wr->buf);
    free(wr);
}

/* Kill S because of WHY (kept as the reason it died); the exit callback does the rest. */
static void
srv_kill(struct lsp_server *s, const char *why)
{
    if (!s->died && why)
        s->died = xstrdup(why);
    if (s->proc)
        dt_proc_kill(s->proc, SIGKILL);
}

/* Send MSG (stolen; NULL is ignored) framed with its Content-Length. */
static void
srv_send(struct lsp_server *s, json_t *msg)
{
    _cleanup_free_ char *body = NULL;
    struct write_req *wr;
    size_t len, hlen;
    uv_buf_t b;
    char hdr[64];

    if (!msg)
        return;
    body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!body || !s->has_in || s->torn_down)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *) &s->in) > MAX_STDIN_QUEUED) {
        srv_kill(s, "stopped reading its input");
        return;
    }
    len = strlen(body);
    hlen = (size_t) snprintf(hdr, sizeof(hdr), "Content-Length: %zu\r\n\r\n", len);
    wr = xcalloc(1, sizeof(*wr));
    wr->buf = xmalloc(hlen + len);
    memcpy(wr->buf, hdr, hlen);
    memcpy(wr->buf + hlen, body, len);
    b = uv_buf_init(wr->buf, (unsigned) (hlen + len));
    if (uv_write(&wr->req, (uv_stream_t *) &s->in, &b, 1, on_written) < 0) {
        free(wr->buf);
        free(wr);
    }
}

static void
srv_notify(struct lsp_server *s, const char *method, json_t *params)
{
    if (!params)
        params = json_object();
    srv_send(s, json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params));
}

/* Send a request; the answer goes to the returned call. PARAMS is stolen. REQ (may be NULL)
 * is answered when the call ends. */
static struct lsp_call *
srv_call(struct lsp_server *s, enum call_kind kind, const char *method, json_t *params,
         struct dt_httpd_req *req)
{
    struct lsp_call *c = xcalloc(1, sizeof(*c));

    c->srv = s;
    c->kind = kind;
    c->method = method;
    c->id = ++s->next_id;
    c->deadline = uv_now(s->a->loop) + CALL_TIMEOUT_MS;
    c->next = s->calls;
    s->calls = c;
    if (req) {
        c->req = req;
        dt_httpd_req_set_close_cb(req, on_call_req_close, c);
    }
    if (!params)
        params = json_object();
    srv_send(s, json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t) c->id,
                          "method", method, "params", params));
    return c;
}

/* ---- normalising answers ---- */

static json_t *
zero_range(void)
{
    return json_pack("{s:{s:i,s:i},s:{s:i,s:i}}", "start", "line", 0, "character", 0, "end",
                     "line", 0, "character", 0);
}

/* Append SYM (a SymbolInformation, WorkspaceSymbol or DocumentSymbol; children flattened) to
 * OUT as {name, kind, location: {uri, range}} when its name contains QUERY (NULL: all). */
static void
sym_add(json_t *out, json_t *sym, const char *doc_uri, const char *query, int depth)
{
    json_t *name = json_object_get(sym, "name"), *kind = json_object_get(sym, "kind");
    json_t *loc = json_object_get(sym, "location"), *range, *uri, *children;
    size_t i;
    json_t *ch;

    if (!json_is_object(sym) || json_array_size(out) >= MAX_SYMBOLS)
        return;
    if (json_is_object(loc)) {
        uri = json_incref(json_object_get(loc, "uri"));
        range = json_incref(json_object_get(loc, "range"));
    } else {
        uri = doc_uri ? json_string(doc_uri) : NULL;
        range = json_incref(json_object_get(sym, "range"));
    }
    if (!json_is_object(range)) {
        json_decref(range);
        range = zero_range();
    }
    if (json_is_string(name) && json_is_integer(kind) && json_is_string(uri) &&
        (!query || !*query || strcasestr(json_string_value(name), query)))
        json_array_append_new(out, json_pack("{s:O,s:O,s:{s:O,s:O}}", "name", name, "kind", kind,
                                             "location", "uri", uri, "range", range));
    json_decref(uri);
    json_decref(range);
    children = json_object_get(sym, "children");
    if (depth < MAX_DEPTH)
        json_array_foreach(children, i, ch)
            sym_add(out, ch, doc_uri, query, depth + 1);
}

static json_t *
symbols_normalise(json_t *result, const char *doc_uri, const char *query)
{
    json_t *out = json_array(), *sym;
    size_t i;

    json_array_foreach(result, i, sym)
        sym_add(out, sym, doc_uri, query, 0);
    return out;
}

static json_t *
completion_normalise(json_t *result)
{
    json_t *items = result, *out = json_array(), *it;
    bool incomplete = false;
    size_t i;

    if (json_is_object(result)) {
        items = json_object_get(result, "items");
        incomplete = json_is_true(json_object_get(result, "isIncomplete"));
    }
    json_array_foreach(items, i, it) {
        static const char *const strs[] = { "detail", "sortText", "filterText", "insertText" };
        json_t *label = json_object_get(it, "label"), *o, *doc, *kind, *edit;

        if (!json_is_string(label) || json_array_size(out) >= MAX_ITEMS)
            continue;
        o = json_pack("{s:O}", "label", label);
        kind = json_object_get(it, "kind");
        if (json_is_integer(kind))
            json_object_set(o, "kind", kind);
        for (size_t k = 0; k < ELEMENTSOF(strs); k++)
            if (json_is_string(json_object_get(it, strs[k])))
                json_object_set(o, strs[k], json_object_get(it, strs[k]));
        /* A textEdit carries the text to insert when insertText is absent. */
        edit = json_object_get(it, "textEdit");
        if (!json_object_get(o, "insertText") && json_is_string(json_object_get(edit, "newText")))
            json_object_set(o, "insertText", json_object_get(edit, "newText"));
        /* documentation is a string or a MarkupContent {kind, value}: the SDK wants a string. */
        doc = json_object_get(it, "documentation");
        if (json_is_object(doc))
            doc = json_object_get(doc, "value");
        if (json_is_string(doc))
            json_object_set(o, "documentation", doc);
        json_array_append_new(out, o);
    }
    return json_pack("{s:b,s:o}", "isIncomplete", incomplete, "items", out);
}

/* ---- messages from the server ---- */

static void
srv_ready(struct lsp_server *s, json_t *result)
{
    json_t *caps = json_object_get(result, "capabilities");
    json_t *ws = json_object_get(caps, "workspaceSymbolProvider");

    s->ws_symbols = json_is_true(ws) || json_is_object(ws);
    s->state = SRV_READY;
    srv_notify(s, "initialized", NULL);
    /* Everyone waiting for this start gets 200. */
    for (struct lsp_call **pp = &s->calls; *pp;) {
        struct lsp_call *c = *pp;
        if (c->kind == CALL_WAIT_INIT) {
            struct dt_httpd_req *req = call_take_req(c);
            *pp = c->next;
            if (req)
                dt_agent_ok(req);
            call_free(c);
        } else
            pp = &c->next;
    }
}

/* The answer to C (unlinked): RESULT or ERROR (borrowed). */
static void
call_answer(struct lsp_server *s, struct lsp_call *c, json_t *result, json_t *error)
{
    struct dt_httpd_req *req;
    char msg[512];

    if (error) {
        const char *m = json_string_value(json_object_get(error, "message"));
        snprintf(msg, sizeof(msg), "the %s language server failed %s: %s", s->lang, c->method,
                 m ? m : "unknown error");
        if (c->kind == CALL_INIT) {
            srv_fail_calls(s, 500, NULL, msg);
            call_fail(c, 500, NULL, msg);
            srv_kill(s, "failed to initialize");
            return;
        }
        return call_fail(c, 500, NULL, msg);
    }
    if (c->kind == CALL_AGG_SYMBOLS) {
        json_t *syms = symbols_normalise(result, c->uri, c->agg->query);
        json_array_extend(c->agg->items, syms);
        json_decref(syms);
        agg_part_done(c->agg);
        return call_free(c);
    }
    req = call_take_req(c);
    switch (c->kind) {
    case CALL_INIT:
        if (req)
            dt_agent_ok(req);
        srv_ready(s, result);
        break;
    case CALL_SHUTDOWN:
        srv_notify(s, "exit", NULL);
        break;
    case CALL_DOC_SYMBOLS:
    case CALL_WS_SYMBOLS:
        if (req)
            dt_httpd_reply_json(req, 200, symbols_normalise(result, c->uri, NULL));
        break;
    case CALL_COMPLETION:
        if (req)
            dt_httpd_reply_json(req, 200, completion_normalise(result));
        break;
    case CALL_WAIT_INIT:
    case CALL_AGG_SYMBOLS:
        break;
    }
    call_free(c);
}

/* A request from the server: answer it, or some servers wait forever. */
static void
answer_server_request(struct lsp_server *s, json_t *id, const char *method, json_t *params)
{
    json_t *result;

    if (strcmp(method, "workspace/configuration") == 0) {
        /* One entry per item asked for; null means "no settings". */
        size_t n = json_array_size(json_object_get(params, "items"));
        result = json_array();
        for (size_t i = 0; i < n && i < 1000; i++)
            json_array_append_new(result, json_null());
    } else
        /* window/workDoneProgress/create, client/registerCapability, window/showMessageRequest
         * ...: null is a valid answer to all of them. */
        result = json_null();
    srv_send(s, json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void
srv_handle_message(struct lsp_server *s, const char *body, size_t len)
{
    json_t *m = json_loadb(body, len, 0, NULL);
    json_t *id = json_object_get(m, "id"), *method = json_object_get(m, "method");

    if (!json_is_object(m)) {
        json_decref(m);
        return srv_kill(s, "sent a message that is not a JSON object");
    }
    if (json_is_string(method)) {
        /* Notifications (diagnostics, log messages, progress) are not used. */
        if (id && !json_is_null(id))
            answer_server_request(s, id, json_string_value(method), json_object_get(m, "params"));
    } else if (json_is_integer(id)) {
        for (struct lsp_call *c = s->calls; c; c = c->next)
            if (c->kind != CALL_WAIT_INIT && c->id == json_integer_value(id)) {
                json_t *error = json_object_get(m, "error");
                call_unlink(c);
                call_answer(s, c, json_object_get(m, "result"),
                            json_is_object(error) ? error : NULL);
                break;
            }
    }
    json_decref(m);
}

/* The Content-Length of a header block, or -1. */
static int64_t
header_length(const char *hdr, size_t len)
{
    const char *p = hdr, *end = hdr + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        size_t n = (size_t) ((eol ? eol : end) - p);
        static const char name[] = "content-length:";

        if (n > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
            char num[32];
            const char *v = p + sizeof(name) - 1;
            size_t vn = n - (sizeof(name) - 1);
            uint64_t u;

            while (vn > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vn--;
            }
            while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == ' '))
                vn--;
            if (vn == 0 || vn >= sizeof(num))
                return -1;
            memcpy(num, v, vn);
            num[vn] = 0;
            if (parse_u64(num, &u) < 0 || u > MAX_MESSAGE)
                return -1;
            return (int64_t) u;
        }
        p += n + 1;
    }
    return -1;
}

/* Feed bytes from the server's stdout to the framing reader. */
static void
srv_feed(struct lsp_server *s, const char *p, size_t n)
{
    while (n > 0 && !s->torn_down && !s->died) {
        if (!s->in_body) {
            bool done = false;
            int64_t len;

            while (n > 0 && !done) {
                if (s->hdr_len >= sizeof(s->hdr))
                    return srv_kill(s, "sent a header block that is too long");
                s->hdr[s->hdr_len++] = *p++;
                n--;
                done = s->hdr_len >= 4 && memcmp(s->hdr + s->hdr_len - 4, "\r\n\r\n", 4) == 0;
            }
            if (!done)
                return;
            len = header_length(s->hdr, s->hdr_len);
            s->hdr_len = 0;
            if (len < 0)
                return srv_kill(s, "sent a message without a valid Content-Length (at most "
                                   "16 MiB)");
            s->in_body = true;
            s->body_len = (size_t) len;
            s->body_got = 0;
            s->body = xmalloc(s->body_len + 1);
        } else {
            size_t take = s->body_len - s->body_got;

            if (take > n)
                take = n;
            memcpy(s->body + s->body_got, p, take);
            s->body_got += take;
            p += take;
            n -= take;
        }
        if (s->in_body && s->body_got == s->body_len) {
            _cleanup_free_ char *body = TAKE_PTR(s->body);
            s->in_body = false;
            srv_handle_message(s, body, s->body_len);
        }
    }
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = xmalloc(READ_CHUNK);
    buf->len = READ_CHUNK;
}

static void
on_out_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct lsp_server *s = st->data;

    if (nread > 0)
        srv_feed(s, buf->base, (size_t) nread);
    free(buf->base);
    if (nread < 0) {
        /* Its output is gone: the server is of no use any more. */
        uv_read_stop(st);
        srv_kill(s, NULL);
    }
}

static void
on_err_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct lsp_server *s = st->data;

    if (nread > 0) {
        size_t n = (size_t) nread;
        const char *p = buf->base;

        if (n >= ERR_TAIL) {
            p += n - ERR_TAIL;
            n = ERR_TAIL;
        }
        if (s->err_len + n > ERR_TAIL) {
            size_t drop = s->err_len + n - ERR_TAIL;
            memmove(s->err_tail, s->err_tail + drop, s->err_len - drop);
            s->err_len -= drop;
        }
        memcpy(s->err_tail + s->err_len, p, n);
        s->err_len += n;
    } else if (nread < 0)
        uv_read_stop(st);
    free(buf->base);
}

/* ---- process lifetime ---- */

static void
on_handle_closed(uv_handle_t *h)
{
    struct lsp_server *s = h->data;

    s->open_handles--;
    srv_maybe_free(s);
}

static void
close_handle(struct lsp_server *s, uv_handle_t *h)
{
    h->data = s;
    uv_close(h, on_handle_closed);
}

/* Let go of the process and every handle (the record stays until unlinked). */
static void
srv_teardown(struct lsp_server *s)
{
    if (s->torn_down)
        return;
    s->torn_down = true;
    if (s->proc) {
        dt_proc_kill(s->proc, SIGKILL);
        dt_proc_free(s->proc);
        s->proc = NULL;
    }
    close_handle(s, (uv_handle_t *) &s->tick);
    close_handle(s, (uv_handle_t *) &s->kill_timer);
    if (s->has_out)
        close_handle(s, (uv_handle_t *) &s->out);
    if (s->has_in)
        close_handle(s, (uv_handle_t *) &s->in);
    if (s->has_err)
        close_handle(s, (uv_handle_t *) &s->err);
}

static void
on_srv_exit(struct dt_proc *p, const struct dt_proc_exit *e, void *ud)
{
    struct lsp_server *s = ud;
    char why[128], line[300], msg[700];

    dt_proc_free(p);
    s->proc = NULL;
    if (s->state == SRV_STOPPING) {
        srv_fail_calls(s, 400, "LSP_SERVER_NOT_INITIALIZED", "the language server was stopped");
        srv_teardown(s);
        return srv_unlink(s);
    }
    if (s->died)
        snprintf(why, sizeof(why), "exited: it was killed because it %s", s->died);
    else if (e->oom_killed)
        snprintf(why, sizeof(why), "exited: killed by the out-of-memory killer");
    else if (e->signal)
        snprintf(why, sizeof(why), "exited: killed by signal %d (%s)", e->signal,
                 strsignal(e->signal));
    else
        snprintf(why, sizeof(why), "exited with code %d", e->code);
    srv_err_line(s, line, sizeof(line));
    snprintf(msg, sizeof(msg), "the %s language server (%s) for %s %s%s%s", s->lang, s->program,
             s->root, why, *line ? ": " : "", line);
    free(s->died);
    s->died = xstrdup(msg);
    s->state = SRV_DEAD;
    srv_fail_calls(s, 500, NULL, msg);
    srv_teardown(s);
}

static void
on_tick(uv_timer_t *t)
{
    struct lsp_server *s = t->data;
    uint64_t now = uv_now(s->a->loop);
    bool init_timed_out = false;
    char msg[256];

    for (struct lsp_call **pp = &s->calls; *pp;) {
        struct lsp_call *c = *pp;
        if (c->deadline > now) {
            pp = &c->next;
            continue;
        }
        /* Forget the id: a late answer finds no call and is dropped. */
        *pp = c->next;
        if (c->kind == CALL_INIT)
            init_timed_out = true;
        snprintf(msg, sizeof(msg), "the %s language server did not answer %s within %d s",
                 s->lang, c->method, CALL_TIMEOUT_MS / 1000);
        call_fail(c, 504, "REQUEST_TIMEOUT", msg);
    }
    if (init_timed_out)
        srv_kill(s, "did not answer initialize in time");
}

static void
on_kill_timer(uv_timer_t *t)
{
    struct lsp_server *s = t->data;

    /* shutdown + exit did not end it in time. */
    if (s->proc)
        dt_proc_kill(s->proc, SIGKILL);
}

/* Stop S: shutdown, then exit, then SIGKILL after the grace. S leaves the lookups at once. */
static void
srv_stop(struct lsp_server *s)
{
    if (s->state == SRV_DEAD)
        return srv_unlink(s);
    s->state = SRV_STOPPING;
    srv_fail_calls(s, 400, "LSP_SERVER_NOT_INITIALIZED", "the language server was stopped");
    (void) srv_call(s, CALL_SHUTDOWN, "shutdown", json_null(), NULL);
    uv_timer_start(&s->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
}

static int
srv_spawn(struct lsp_server *s, struct dt_error **err)
{
    struct dt_agent *a = s->a;
    _cleanup_strv_free_ char **env = dt_agent_env(a, NULL);
    char *argv[] = { (char *) s->program, NULL, NULL };
    int out_w = -1, err_w = -1, inp[2] = { -1, -1 };
    struct dt_spawn sp = { 0 };
    int r;

    if (strcmp(s->program, "typescript-language-server") == 0)
        argv[1] = (char *) "--stdio";
    r = dt_proc_pipe(a, &s->out, &out_w, err);
    /* dt_proc_pipe initialises the handle unless pipe2() itself failed. */
    s->has_out = s->out.loop != NULL;
    if (s->has_out)
        s->open_handles++;
    if (r >= 0) {
        r = dt_proc_pipe(a, &s->err, &err_w, err);
        s->has_err = s->err.loop != NULL;
        if (s->has_err)
            s->open_handles++;
    }
    if (r >= 0 && pipe2(inp, O_CLOEXEC) < 0)
        r = dt_error_errno(err, errno, "pipe");
    if (r >= 0) {
        uv_pipe_init(a->loop, &s->in, 0);
        s->has_in = true;
        s->open_handles++;
        r = uv_pipe_open(&s->in, inp[1]);
        if (r < 0)
            r = dt_error_errno(err, -r, "watch a pipe");
        else
            inp[1] = -1;
    }
    if (r >= 0) {
        sp.argv = argv;
        sp.env = env;
        sp.cwd = s->root;
        sp.stdio[0] = inp[0];
        sp.stdio[1] = out_w;
        sp.stdio[2] = err_w;
        r = dt_proc_spawn(a, &sp, on_srv_exit, s, &s->proc, NULL, err);
    }
    safe_close(out_w);
    safe_close(err_w);
    safe_close(inp[0]);
    safe_close(inp[1]);
    if (r < 0)
        return r;
    s->out.data = s->err.data = s->in.data = s;
    uv_read_start((uv_stream_t *) &s->out, on_alloc, on_out_read);
    uv_read_start((uv_stream_t *) &s->err, on_alloc, on_err_read);
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    return 0;
}

static json_t *
initialize_params(struct lsp_server *s)
{
    json_t *root = dt_json_string_lossy(s->root, strlen(s->root));
    _cleanup_free_ char *u = xasprintf("file://%s", s->root);
    json_t *uri = dt_json_string_lossy(u, strlen(u));
    const char *base = strrchr(s->root, '/');

    base = base && base[1] ? base + 1 : s->root;
    /* processId null: servers such as pylsp watch that pid and exit when they cannot signal
     * it, and the agent (root) is not signalable by the sandbox user. */
    return json_pack(
        "{s:n,s:{s:s,s:s},s:o,s:O,s:[{s:o,s:o}],s:{s:{s:{s:b},s:b,s:b,s:b},"
        "s:{s:{s:b,s:b},s:{s:b},s:{s:{s:b,s:[s,s]}},s:{s:b}}}}",
        "processId", "clientInfo", "name", "daytona-agent", "version", DT_AGENT_VERSION,
        "rootPath", root, "rootUri", uri, "workspaceFolders", "uri", uri, "name",
        dt_json_string_lossy(base, strlen(base)), "capabilities", "workspace", "symbol",
        "dynamicRegistration", 0, "configuration", 1, "workspaceFolders", 1, "applyEdit", 0,
        "textDocument", "synchronization", "dynamicRegistration", 0, "didSave", 0,
        "documentSymbol", "hierarchicalDocumentSymbolSupport", 1, "completion", "completionItem",
        "snippetSupport", 0, "documentationFormat", "plaintext", "markdown", "publishDiagnostics",
        "relatedInformation", 0);
}

/* ---- request parsing ---- */

/* Resolve the project directory of a request; answers and returns NULL on error. */
static char *
project_path(struct dt_agent *a, struct dt_httpd_req *req, const char *lang, const char *project)
{
    if (!lang || !*lang)
        return dt_agent_error(req, 400, "BAD_REQUEST", "languageId is required"), NULL;
    if (!lang_program(lang))
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "unsupported languageId '%.40s': use python, typescript or "
                              "javascript", lang), NULL;
    if (!project || !*project)
        return dt_agent_error(req, 400, "BAD_REQUEST", "pathToProject is required"), NULL;
    return dt_agent_path(a, req, project);
}

/* The running server of a request; answers 400 LSP_SERVER_NOT_INITIALIZED and returns NULL
 * when there is none. */
static struct lsp_server *
srv_lookup(struct dt_agent *a, struct dt_httpd_req *req, const char *lang, const char *project)
{
    _cleanup_free_ char *root = project_path(a, req, lang, project);
    struct lsp_server *s;

    if (!root)
        return NULL;
    s = srv_find(lang, root);
    if (!s)
        dt_agent_error(req, 400, "LSP_SERVER_NOT_INITIALIZED",
                       "no %s language server is running for %s: start it first", lang, root);
    else if (s->state == SRV_DEAD)
        dt_agent_error(req, 400, "LSP_SERVER_NOT_INITIALIZED", "%s; start it again", s->died);
    else if (s->state == SRV_STARTING)
        dt_agent_error(req, 400, "LSP_SERVER_NOT_INITIALIZED",
                       "the %s language server for %s is still starting", lang, root);
    else
        return s;
    return NULL;
}

static const char *
json_str(json_t *body, const char *key)
{
    return json_string_value(json_object_get(body, key));
}

/* The document of a request: URI as sent ("file://" + path; a relative path is resolved
 * against the work dir, and the URI rewritten to the absolute one). Answers and returns
 * false on error. */
static bool
doc_uri(struct dt_agent *a, struct dt_httpd_req *req, const char *uri, char **ret_uri,
        char **ret_path)
{
    const char *p;
    char *path;

    if (!uri || !*uri)
        return dt_agent_error(req, 400, "BAD_REQUEST", "uri is required"), false;
    p = strncmp(uri, "file://", 7) == 0 ? uri + 7 : uri;
    path = dt_agent_path(a, req, p);
    if (!path)
        return false;
    *ret_uri = p != uri && p[0] == '/' ? xstrdup(uri) : xasprintf("file://%s", path);
    *ret_path = path;
    return true;
}

/* ---- routes ---- */

static void
start_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    const char *lang = json_str(body, "languageId");
    _cleanup_free_ char *root = project_path(a, req, lang, json_str(body, "pathToProject"));
    _cleanup_free_ char *exe = NULL;
    _cleanup_strv_free_ char **env = NULL;
    struct lsp_server *s;
    struct lsp_call *c;
    struct stat st;
    int r;

    if (!root)
        return;
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode))
        return dt_agent_error(req, 400, "INVALID_FILE_PATH", "no such directory: %s", root);
    s = srv_find(lang, root);
    if (s && s->state == SRV_READY)
        return dt_agent_ok(req);
    if (s && s->state == SRV_STARTING) {
        c = xcalloc(1, sizeof(*c));
        c->srv = s;
        c->kind = CALL_WAIT_INIT;
        c->method = "initialize";
        c->deadline = uv_now(a->loop) + CALL_TIMEOUT_MS;
        c->req = req;
        dt_httpd_req_set_close_cb(req, on_call_req_close, c);
        c->next = s->calls;
        s->calls = c;
        return;
    }
    if (s)
        srv_unlink(s); /* dead: start afresh */

    env = dt_agent_env(a, NULL);
    exe = dt_proc_which(lang_program(lang), env);
    if (!exe)
        return dt_agent_error(req, 503, "LSP_SERVER_NOT_AVAILABLE",
                              "the %s language server is not installed in this sandbox "
                              "(%s not found in PATH): %s", lang, lang_program(lang),
                              lang_install_hint(lang));

    s = xcalloc(1, sizeof(*s));
    s->a = a;
    s->lang = xstrdup(lang);
    s->root = TAKE_PTR(root);
    s->program = lang_program(lang);
    s->state = SRV_STARTING;
    uv_timer_init(a->loop, &s->tick);
    uv_timer_init(a->loop, &s->kill_timer);
    s->tick.data = s->kill_timer.data = s;
    s->open_handles = 2;
    s->next = servers;
    servers = s;
    s->listed = true;
    r = srv_spawn(s, &err);
    if (r < 0) {
        if (r == -ENOENT && err && strstr(err->message, "no such command"))
            dt_agent_error(req, 503, "LSP_SERVER_NOT_AVAILABLE",
                           "the %s language server is not installed in this sandbox: %s", lang,
                           lang_install_hint(lang));
        else
            dt_agent_error(req, 500, NULL, "cannot start the %s language server (%s): %s", lang,
                           s->program, err ? err->message : "unknown error");
        srv_teardown(s);
        return srv_unlink(s);
    }
    (void) srv_call(s, CALL_INIT, "initialize", initialize_params(s), req);
}

static void
route_start(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, start_json);
}

static void
stop_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    const char *lang = json_str(body, "languageId");
    _cleanup_free_ char *root = project_path(a, req, lang, json_str(body, "pathToProject"));
    struct lsp_server *s;

    if (!root)
        return;
    s = srv_find(lang, root);
    if (!s)
        return dt_agent_error(req, 400, "LSP_SERVER_NOT_INITIALIZED",
                              "no %s language server is running for %s", lang, root);
    srv_stop(s);
    dt_agent_ok(req);
}

static void
route_stop(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, stop_json);
}

static struct lsp_doc **
doc_find(struct lsp_server *s, const char *uri)
{
    struct lsp_doc **pp;

    for (pp = &s->docs; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->uri, uri) == 0)
            break;
    return pp;
}

static void
did_open_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body,
              const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct lsp_server *s = srv_lookup(a, req, json_str(body, "languageId"),
                                      json_str(body, "pathToProject"));
    _cleanup_free_ char *uri = NULL, *path = NULL, *text = NULL;
    _cleanup_close_ int fd = -1;
    struct lsp_doc **pp, *d;
    size_t len = 0;
    struct stat st;
    int r;

    if (!s || !doc_uri(a, req, json_str(body, "uri"), &uri, &path))
        return;
    /* Non-blocking open: a FIFO must not hold the loop. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        r = dt_error_errno(&err, errno, "cannot open %s", path);
        return dt_agent_error_errno(req, r, err);
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return dt_agent_error(req, 400, "INVALID_FILE_PATH", "not a regular file: %s", path);
    r = read_fd_all(fd, MAX_FILE, &text, &len);
    if (r == -EFBIG)
        return dt_agent_error(req, 400, "BAD_REQUEST", "file too large for the language server "
                              "(more than 16 MiB): %s", path);
    if (r < 0) {
        r = dt_error_errno(&err, -r, "cannot read %s", path);
        return dt_agent_error_errno(req, r, err);
    }
    pp = doc_find(s, uri);
    if (*pp)
        /* Opened again: close the old version so the server takes the new text. */
        srv_notify(s, "textDocument/didClose",
                   json_pack("{s:{s:o}}", "textDocument", "uri",
                             dt_json_string_lossy(uri, strlen(uri))));
    else {
        d = xcalloc(1, sizeof(*d));
        d->uri = xstrdup(uri);
        *pp = d;
    }
    srv_notify(s, "textDocument/didOpen",
               json_pack("{s:{s:o,s:s,s:i,s:o}}", "textDocument", "uri",
                         dt_json_string_lossy(uri, strlen(uri)), "languageId",
                         s->lang, "version", 1, "text", dt_json_string_lossy(text, len)));
    dt_agent_ok(req);
}

static void
route_did_open(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, did_open_json);
}

static void
did_close_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body,
               const char *const *params)
{
    struct lsp_server *s = srv_lookup(a, req, json_str(body, "languageId"),
                                      json_str(body, "pathToProject"));
    _cleanup_free_ char *uri = NULL, *path = NULL;
    struct lsp_doc **pp, *d;

    if (!s || !doc_uri(a, req, json_str(body, "uri"), &uri, &path))
        return;
    pp = doc_find(s, uri);
    if ((d = *pp)) {
        *pp = d->next;
        free(d->uri);
        free(d);
    }
    srv_notify(s, "textDocument/didClose",
               json_pack("{s:{s:o}}", "textDocument", "uri",
                         dt_json_string_lossy(uri, strlen(uri))));
    dt_agent_ok(req);
}

static void
route_did_close(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, did_close_json);
}

static void
route_document_symbols(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct lsp_server *s = srv_lookup(a, req, dt_httpd_req_query(req, "languageId"),
                                      dt_httpd_req_query(req, "pathToProject"));
    _cleanup_free_ char *uri = NULL, *path = NULL;
    struct lsp_call *c;

    if (!s || !doc_uri(a, req, dt_httpd_req_query(req, "uri"), &uri, &path))
        return;
    c = srv_call(s, CALL_DOC_SYMBOLS, "textDocument/documentSymbol",
                 json_pack("{s:{s:o}}", "textDocument", "uri",
                           dt_json_string_lossy(uri, strlen(uri))), req);
    c->uri = TAKE_PTR(uri);
}

static void
route_workspace_symbols(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct lsp_server *s = srv_lookup(a, req, dt_httpd_req_query(req, "languageId"),
                                      dt_httpd_req_query(req, "pathToProject"));
    const char *query = dt_httpd_req_query(req, "query");
    struct lsp_agg *g;

    if (!s)
        return;
    if (!query)
        query = "";
    if (s->ws_symbols) {
        (void) srv_call(s, CALL_WS_SYMBOLS, "workspace/symbol",
                        json_pack("{s:o}", "query", dt_json_string_lossy(query, strlen(query))),
                        req);
        return;
    }
    /* No workspace/symbol in this server: search the symbols of the open documents. */
    if (!s->docs)
        return dt_httpd_reply_json(req, 200, json_array());
    g = xcalloc(1, sizeof(*g));
    g->req = req;
    g->items = json_array();
    g->query = xstrdup(query);
    g->pending = 1; /* held until every part is sent */
    dt_httpd_req_set_close_cb(req, on_agg_req_close, g);
    for (struct lsp_doc *d = s->docs; d; d = d->next) {
        struct lsp_call *c = srv_call(s, CALL_AGG_SYMBOLS, "textDocument/documentSymbol",
                                      json_pack("{s:{s:o}}", "textDocument", "uri",
                                                dt_json_string_lossy(d->uri, strlen(d->uri))),
                                      NULL);
        c->uri = xstrdup(d->uri);
        c->agg = g;
        g->pending++;
    }
    agg_part_done(g);
}

static void
completions_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body,
                 const char *const *params)
{
    struct lsp_server *s = srv_lookup(a, req, json_str(body, "languageId"),
                                      json_str(body, "pathToProject"));
    json_t *pos = json_object_get(body, "position");
    json_t *line = json_object_get(pos, "line"), *ch = json_object_get(pos, "character");
    _cleanup_free_ char *uri = NULL, *path = NULL;

    if (!s || !doc_uri(a, req, json_str(body, "uri"), &uri, &path))
        return;
    if (!json_is_integer(line) || !json_is_integer(ch) || json_integer_value(line) < 0 ||
        json_integer_value(ch) < 0)
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "position must be {line, character} with integers >= 0");
    (void) srv_call(s, CALL_COMPLETION, "textDocument/completion",
                    json_pack("{s:{s:o},s:{s:O,s:O},s:{s:i}}", "textDocument", "uri",
                              dt_json_string_lossy(uri, strlen(uri)), "position", "line", line,
                              "character", ch, "context", "triggerKind", 1),
                    req);
}

static void
route_completions(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, completions_json);
}

const struct dt_route dt_lsp_routes[] = {
    { "POST", "/lsp/start", route_start },
    { "POST", "/lsp/stop", route_stop },
    { "POST", "/lsp/did-open", route_did_open },
    { "POST", "/lsp/did-close", route_did_close },
    { "GET", "/lsp/document-symbols", route_document_symbols },
    { "GET", "/lsp/workspacesymbols", route_workspace_symbols },
    { "POST", "/lsp/completions", route_completions },
    {},
};
