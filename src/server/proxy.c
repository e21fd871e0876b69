/* SPDX-License-Identifier: Apache-2.0 */
/* The toolbox proxy: one request daytonad received is forwarded over a fresh unix-socket
 * connection to the sandbox's agent, the request body and the response streamed with
 * backpressure both ways, and a WebSocket upgrade the agent accepted spliced byte for byte.
 * Everything runs on the caller's libuv loop; nothing blocks or logs. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "dt/http.h"
#include "dt/xalloc.h"
#include "server/proxy.h"
#include "dt/banned.h"

#define QUEUE_HIGH       (1u << 20)       /* stop the producer above this many queued bytes */
#define QUEUE_LOW        (256u * 1024)    /* and let it go on once the queue is below this */
#define READ_SIZE        (64u * 1024)
#define CONNECT_TIMEOUT  10000            /* ms */
#define ACTIVITY_EVERY   1000             /* ms between two activity calls */
#define SHUTDOWN_TIMEOUT 2000             /* ms a tunnel's agent side may take to take the rest */
#define MAX_RESP_HEADERS 56               /* dt_httpd_start takes at most 60 */

struct proxy {
    uv_loop_t *loop;
    struct dt_httpd_req *req;   /* NULL once its close callback ran */
    struct dt_httpd_raw *raw;   /* the client side of a tunnel, NULL when none (or gone) */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t pipe;         /* the agent's unix socket */
        uv_tcp_t tcp;           /* a port in the sandbox (a preview) */
    } conn;
    const char *peer;           /* who answers, for error messages: "sandbox agent", ... */
    bool tcp;
    int connect_status;         /* a connect that failed at once */
    unsigned tcp_port;
    bool keep_authorization;
    const char *drop_header;    /* only while building the head */
    dt_proxy_done_fn done;
    uv_connect_t connect_req;
    uv_timer_t timer;           /* the connect timeout, then the tunnel's shutdown timeout */
    uv_shutdown_t shutdown_req;
    struct dt_http_parser *parser;
    char *head;                 /* the request head for the agent, until connected */
    size_t head_len;
    char *pending;              /* request body received before the connection was up */
    size_t pending_len;
    char rbuf[READ_SIZE];

    dt_proxy_activity_fn activity;
    void *activity_ud;
    uint64_t last_activity;

    int handles;                /* open libuv handles (pipe, timer) */
    int busy;                   /* nesting depth of our own code on the stack */
    bool connected;
    bool agent_closed;          /* uv_close() requested on the pipe and the timer */
    bool agent_reading;
    bool shutting_down;         /* a tunnel's client left: flushing to the agent, then closing */
    bool timed_out;
    bool client_paused;         /* we paused the client (request body or tunnel) */
    bool body_chunked;          /* re-chunk the request body towards the agent */
    bool body_done;             /* the request body ended (or failed): send nothing more */
    bool write_failed;          /* a write to the agent failed: drop further body bytes */
    bool is_head;
    bool upgrade;               /* the client asked for an upgrade */
    bool got_101;
    bool resp_started;          /* the client's response head was queued */
    bool resp_done;             /* the agent's response is complete */
    bool tunnel;                /* spliced: the pipe's bytes go to RAW as they are */
    bool taking_raw;            /* inside dt_httpd_req_take_raw (its close callback runs) */
};

struct pwrite {
    uv_write_t w;
    struct proxy *p;
    char data[];
};

static void agent_close(struct proxy *p);

/* ---- lifetime ---- */

/* The proxy is freed once its handles are closed and neither the request nor the tunnel holds
 * it, never while one of its own callbacks is still on the stack. */
static void
proxy_maybe_free(struct proxy *p)
{
    if (p->handles > 0 || p->req || p->raw || p->busy > 0)
        return;
    if (p->done)
        p->done(p->activity_ud);
    dt_http_parser_free(p->parser);
    free(p->head);
    free(p->pending);
    free(p);
}

static void
proxy_enter(struct proxy *p)
{
    p->busy++;
}

static void
proxy_leave(struct proxy *p)
{
    p->busy--;
    proxy_maybe_free(p);
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;

    p->handles--;
    proxy_maybe_free(p);
}

/* Close the agent connection (pending writes are cancelled, a pending connect fails with
 * UV_ECANCELED): the agent sees its peer go and cancels what it was doing. */
static void
agent_close(struct proxy *p)
{
    if (p->agent_closed)
        return;
    p->agent_closed = true;
    p->agent_reading = false;
    uv_close((uv_handle_t *) &p->conn, on_handle_closed);
    uv_close((uv_handle_t *) &p->timer, on_handle_closed);
}

static void
activity(struct proxy *p)
{
    uint64_t now = uv_now(p->loop);

    if (!p->activity || now - p->last_activity < ACTIVITY_EVERY)
        return;
    p->last_activity = now;
    p->activity(p->activity_ud);
}

/* ---- writing to the agent ---- */

static void
client_pause(struct proxy *p)
{
    if (p->client_paused)
        return;
    p->client_paused = true;
    if (p->raw)
        dt_httpd_raw_pause(p->raw);
    else if (p->req)
        dt_httpd_req_pause(p->req);
}

static void
client_resume(struct proxy *p)
{
    if (!p->client_paused)
        return;
    p->client_paused = false;
    if (p->raw)
        dt_httpd_raw_resume(p->raw);
    else if (p->req)
        dt_httpd_req_resume(p->req);
}

static void
on_agent_write(uv_write_t *w, int status)
{
    struct pwrite *pw = (struct pwrite *) w;
    struct proxy *p = pw->p;

    free(pw);
    if (status < 0) {
        /* The agent stopped reading (it may still have answered, e.g. an early error, which
         * the read side delivers): send nothing more, and let the client go on so its body
         * is drained. */
        p->write_failed = true;
        if (!p->agent_closed && p->tunnel) {
            proxy_enter(p);
            if (p->raw)
                dt_httpd_raw_close(p->raw);
            agent_close(p);
            proxy_leave(p);
            return;
        }
    }
    if (p->agent_closed && !p->client_paused)
        return;
    if (p->client_paused &&
        (p->write_failed || p->agent_closed ||
         uv_stream_get_write_queue_size((uv_stream_t *) &p->conn) <= QUEUE_LOW)) {
        proxy_enter(p);
        client_resume(p);
        proxy_leave(p);
    }
}

/* Queue A, B and C (each may be empty) as one write towards the agent, pausing the
 * client when the queue is long. */
static void
agent_write3(struct proxy *p, const char *a, size_t alen, const char *b, size_t blen, const char *c,
             size_t clen)
{
    struct pwrite *pw;
    uv_buf_t buf;

    if (p->agent_closed || p->write_failed)
        return;
    pw = xmalloc(sizeof(*pw) + alen + blen + clen);
    pw->p = p;
    if (alen)
        memcpy(pw->data, a, alen);
    if (blen)
        memcpy(pw->data + alen, b, blen);
    if (clen)
        memcpy(pw->data + alen + blen, c, clen);
    buf = uv_buf_init(pw->data, (unsigned) (alen + blen + clen));
    if (uv_write(&pw->w, (uv_stream_t *) &p->conn, &buf, 1, on_agent_write) < 0) {
        free(pw);
        p->write_failed = true;
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *) &p->conn) > QUEUE_HIGH)
        client_pause(p);
}

static void
agent_write(struct proxy *p, const char *data, size_t len)
{
    agent_write3(p, data, len, NULL, 0, NULL, 0);
}

/* One piece of the request body, framed as the head announced. */
static void
agent_write_body(struct proxy *p, const char *data, size_t len)
{
    char hdr[DT_HTTP_CHUNK_HEADER_MAX];

    if (len == 0)
        return;
    if (!p->body_chunked) {
        agent_write(p, data, len);
        return;
    }
    dt_http_chunk_header(hdr, len);
    agent_write3(p, hdr, strlen(hdr), data, len, DT_HTTP_CHUNK_END, 2);
}

/* ---- the request body ---- */

static void
on_client_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct proxy *p = ud;

    if (p->body_done)
        return;
    if (error < 0) {
        /* The client went away (its close callback follows), sent a malformed body (httpd
         * answers 400 or drops the connection) or we finished the response (-ECANCELED): the
         * agent would wait for the rest forever. */
        p->body_done = true;
        proxy_enter(p);
        if (!p->resp_done)
            agent_close(p);
        proxy_leave(p);
        return;
    }
    proxy_enter(p);
    activity(p);
    if (!data) {
        p->body_done = true;
        if (p->body_chunked) {
            if (p->connected)
                agent_write(p, DT_HTTP_CHUNK_LAST, strlen(DT_HTTP_CHUNK_LAST));
            else {
                /* Remembered as the pending tail: sent after the head. */
                p->pending = xrealloc(p->pending, p->pending_len + strlen(DT_HTTP_CHUNK_LAST));
                memcpy(p->pending + p->pending_len, DT_HTTP_CHUNK_LAST,
                       strlen(DT_HTTP_CHUNK_LAST));
                p->pending_len += strlen(DT_HTTP_CHUNK_LAST);
            }
        }
    } else if (p->connected)
        agent_write_body(p, data, len);
    else {
        /* Not connected yet: the client is paused, so at most one more slice arrives. Keep
         * it framed, ready to go after the head. */
        char hdr[DT_HTTP_CHUNK_HEADER_MAX] = "";
        size_t hl = 0, extra;

        if (p->body_chunked) {
            dt_http_chunk_header(hdr, len);
            hl = strlen(hdr);
        }
        extra = hl + len + (p->body_chunked ? 2 : 0);
        p->pending = xrealloc(p->pending, p->pending_len + extra);
        memcpy(p->pending + p->pending_len, hdr, hl);
        memcpy(p->pending + p->pending_len + hl, data, len);
        if (p->body_chunked)
            memcpy(p->pending + p->pending_len + hl + len, DT_HTTP_CHUNK_END, 2);
        p->pending_len += extra;
    }
    proxy_leave(p);
}

/* ---- the request head ---- */

static bool
name_is(const struct dt_http_header *h, const char *name)
{
    return strcasecmp(h->name, name) == 0;
}

/* Headers that describe one connection, not the message (RFC 9110 7.6.1), plus those we set
 * ourselves and the client's credentials for daytonad (the agent trusts its socket). */
static bool
request_header_dropped(const struct proxy *p, const struct dt_http_head *h,
                       const struct dt_http_header *hd, bool upgrade)
{
    static const char *const drop[] = {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "host",
        "content-length", "expect",
    };

    for (size_t i = 0; i < ELEMENTSOF(drop); i++)
        if (name_is(hd, drop[i]))
            return true;
    if (name_is(hd, "authorization"))
        return !p->keep_authorization;
    if (p->drop_header && name_is(hd, p->drop_header))
        return true;
    if (strncasecmp(hd->name, "proxy-", 6) == 0)
        return true;
    if (name_is(hd, "upgrade"))
        return !upgrade;
    /* Whatever the client named in Connection is hop-by-hop as well. */
    return dt_http_head_has_token(h, "connection", hd->name);
}

static void
head_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
}

static void
head_add(char **buf, size_t *len, size_t *cap, const char *name, const char *value)
{
    head_append(buf, len, cap, name, strlen(name));
    head_append(buf, len, cap, ": ", 2);
    head_append(buf, len, cap, value, strlen(value));
    head_append(buf, len, cap, "\r\n", 2);
}

/* The head sent to the agent. PATH_AND_QUERY must be a valid request target: the caller cut it
 * from the client's own (already validated) target. */
static void
build_head(struct proxy *p, const struct dt_http_head *h, const char *path_and_query,
           const char *host)
{
    size_t len = 0, cap = 1024;
    char *buf = xmalloc(cap);
    char clen[DECIMAL_STR_MAX(uint64_t)];

    buf[0] = 0;
    head_append(&buf, &len, &cap, h->method, strlen(h->method));
    head_append(&buf, &len, &cap, " ", 1);
    head_append(&buf, &len, &cap, path_and_query, strlen(path_and_query));
    head_append(&buf, &len, &cap, " HTTP/1.1\r\n", 11);
    head_add(&buf, &len, &cap, "Host", host ? host : "sandbox");
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct dt_http_header *hd = &h->headers[i];
        if (request_header_dropped(p, h, hd, p->upgrade))
            continue;
        head_add(&buf, &len, &cap, hd->name, hd->value);
    }
    if (p->upgrade)
        head_add(&buf, &len, &cap, "Connection", "Upgrade");
    else {
        /* One connection per request: the agent may close as soon as it answered. */
        head_add(&buf, &len, &cap, "Connection", "close");
        if (h->chunked)
            head_add(&buf, &len, &cap, "Transfer-Encoding", "chunked");
        else if (h->has_content_length) {
            snprintf(clen, sizeof(clen), "%llu", (unsigned long long) h->content_length);
            head_add(&buf, &len, &cap, "Content-Length", clen);
        }
    }
    head_append(&buf, &len, &cap, "\r\n", 2);
    p->head = buf;
    p->head_len = len;
}

/* ---- the response ---- */

/* The agent failed before we answered: an error of our own; after: the client sees the
 * connection drop mid-body, never a body that looks complete. */
static void
agent_failed(struct proxy *p, int status, const char *msg)
{
    if (p->req) {
        if (!p->resp_started) {
            p->resp_started = true;
            dt_httpd_reply_error(p->req, status, "DAYTONA_PROXY", NULL, "%s", msg);
        } else
            dt_httpd_abort(p->req);
    } else if (p->raw)
        dt_httpd_raw_close(p->raw);
    agent_close(p);
}

static bool
response_header_dropped(const struct dt_http_header *hd)
{
    /* httpd writes Date, the body framing and Connection itself. */
    static const char *const drop[] = {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "date",
    };

    for (size_t i = 0; i < ELEMENTSOF(drop); i++)
        if (name_is(hd, drop[i]))
            return true;
    return strncasecmp(hd->name, "proxy-", 6) == 0;
}

static int
on_resp_head(struct dt_http_parser *parser, void *ud)
{
    struct proxy *p = ud;
    const struct dt_http_head *h = dt_http_parser_head(parser);
    struct dt_http_header out[MAX_RESP_HEADERS];
    size_t n = 0;
    int r;

    if (h->status == 101) {
        if (!p->upgrade || !p->req)
            return -EPROTO;
        p->got_101 = true;
        return 0;
    }
    if (h->status < 200)
        return 0; /* an interim response (we never ask for 100-continue): skipped */
    if (!p->req)
        return -ECONNRESET;
    for (size_t i = 0; i < h->n_headers; i++) {
        if (response_header_dropped(&h->headers[i]))
            continue;
        if (n == ELEMENTSOF(out))
            return -E2BIG;
        out[n++] = h->headers[i];
    }
    r = dt_httpd_start(p->req, h->status, out, n,
                       h->has_content_length ? (int64_t) h->content_length : -1);
    if (r < 0)
        return r;
    p->resp_started = true;
    return p->is_head ? DT_HTTP_SKIP_BODY : 0;
}

static int
on_resp_body(struct dt_http_parser *parser, const char *data, size_t len, void *ud)
{
    struct proxy *p = ud;

    if (!p->req)
        return -ECONNRESET;
    activity(p);
    if (dt_httpd_write(p->req, data, len) < 0)
        return -EPIPE;
    return 0;
}

static int
on_resp_complete(struct dt_http_parser *parser, void *ud)
{
    struct proxy *p = ud;
    const struct dt_http_head *h = dt_http_parser_head(parser);

    if (h->status >= 200)
        p->resp_done = true;
    return 0;
}

static const struct dt_http_callbacks resp_cbs = {
    .on_head = on_resp_head,
    .on_body = on_resp_body,
    .on_complete = on_resp_complete,
};

static void
finish_response(struct proxy *p)
{
    /* Close first: the agent connection is not reused, and dt_httpd_end may run the request's
     * close callback right away. */
    agent_close(p);
    if (p->req)
        (void) dt_httpd_end(p->req);
}

/* ---- tunnels ---- */

static void agent_read_start(struct proxy *p);
static void agent_read_stop(struct proxy *p);

static void
on_agent_shutdown(uv_shutdown_t *sr, int status)
{
    struct proxy *p = sr->data;

    proxy_enter(p);
    agent_close(p);
    proxy_leave(p);
}

static void
on_shutdown_timeout(uv_timer_t *t)
{
    struct proxy *p = t->data;

    proxy_enter(p);
    agent_close(p);
    proxy_leave(p);
}

/* The client left the tunnel: what it sent last (often a WebSocket close frame) still goes to
 * the agent, then the connection closes; an agent that does not read gets SHUTDOWN_TIMEOUT. */
static void
agent_shutdown(struct proxy *p)
{
    if (p->agent_closed || p->shutting_down)
        return;
    p->shutting_down = true;
    agent_read_stop(p);
    p->shutdown_req.data = p;
    if (uv_shutdown(&p->shutdown_req, (uv_stream_t *) &p->conn, on_agent_shutdown) < 0) {
        agent_close(p);
        return;
    }
    uv_timer_start(&p->timer, on_shutdown_timeout, SHUTDOWN_TIMEOUT, 0);
}

static void
raw_on_data(struct dt_httpd_raw *raw, const char *data, size_t len, void *ud)
{
    struct proxy *p = ud;

    proxy_enter(p);
    if (!data) {
        /* The client closed (httpd closes its side next): so does the agent connection. */
        agent_shutdown(p);
    } else {
        activity(p);
        agent_write(p, data, len);
    }
    proxy_leave(p);
}

static void
raw_on_drain(struct dt_httpd_raw *raw, void *ud)
{
    struct proxy *p = ud;

    if (p->tunnel)
        agent_read_start(p);
}

static void
raw_on_close(struct dt_httpd_raw *raw, void *ud)
{
    struct proxy *p = ud;

    p->raw = NULL;
    proxy_enter(p);
    if (!p->shutting_down)
        agent_close(p);
    proxy_leave(p);
}

static const struct dt_httpd_raw_callbacks raw_cbs = {
    .on_data = raw_on_data,
    .on_drain = raw_on_drain,
    .on_close = raw_on_close,
};

/* The agent answered 101: write its head to the client verbatim (rebuilt from the parsed head,
 * which keeps every header and its order), then REST (bytes already read past the head), and
 * splice from now on. */
static void
start_tunnel(struct proxy *p, const char *rest, size_t rest_len)
{
    const struct dt_http_head *h = dt_http_parser_head(p->parser);
    _cleanup_free_ char *head = NULL;
    ssize_t len;
    int r;

    len = dt_http_format_response_head(NULL, 0, 101, h->headers, h->n_headers);
    if (len < 0) {
        _cleanup_free_ char *msg = xasprintf("%s sent a bad upgrade response", p->peer);
        agent_failed(p, 502, msg);
        return;
    }
    head = xmalloc((size_t) len + 1);
    dt_http_format_response_head(head, (size_t) len + 1, 101, h->headers, h->n_headers);
    p->taking_raw = true;
    /* P->RAW is set before take_raw delivers anything; raw_on_close resets it. */
    r = dt_httpd_req_take_raw(p->req, &raw_cbs, p, &p->raw);
    p->taking_raw = false;
    if (r < 0) {
        agent_failed(p, 502, "cannot take over the client connection");
        return;
    }
    p->req = NULL;
    p->tunnel = true;
    /* take_raw may already have seen the client hang up (raw_on_close ran: RAW is dead). */
    if (!p->raw)
        return;
    (void) dt_httpd_raw_write(p->raw, head, (size_t) len);
    if (rest_len && p->raw)
        (void) dt_httpd_raw_write(p->raw, rest, rest_len);
}

/* ---- reading from the agent ---- */

static void on_agent_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
on_agent_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct proxy *p = h->data;

    *buf = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

static void
agent_read_start(struct proxy *p)
{
    if (p->agent_closed || p->agent_reading)
        return;
    if (uv_read_start((uv_stream_t *) &p->conn, on_agent_alloc, on_agent_read) == 0)
        p->agent_reading = true;
}

static void
agent_read_stop(struct proxy *p)
{
    if (!p->agent_reading || p->agent_closed)
        return;
    uv_read_stop((uv_stream_t *) &p->conn);
    p->agent_reading = false;
}

/* Feed what the agent sent through the response parser. */
static void
agent_feed(struct proxy *p, const char *data, size_t len)
{
    while (len > 0 && !p->agent_closed) {
        size_t used = 0;
        int r = dt_http_parser_feed(p->parser, data, len, &used);

        if (r < 0) {
            if (r == -EPIPE || r == -ECONNRESET) {
                /* The client is gone; its close callback closed (or closes) us. */
                agent_close(p);
                return;
            }
            const char *why = dt_http_parser_errmsg(p->parser);
            _cleanup_free_ char *msg = NULL;

            if (r == -E2BIG)
                why = "too many headers";
            else if (r == -EPROTO)
                why = "unexpected 101 Switching Protocols";
            else if (!why || !*why)
                why = strerror(-r);
            msg = xasprintf("%s sent a bad response: %s", p->peer, why);
            agent_failed(p, 502, msg);
            return;
        }
        data += used;
        len -= used;
        if (r == DT_HTTP_FEED_UPGRADE || (r == DT_HTTP_FEED_DONE && p->got_101)) {
            start_tunnel(p, data, len);
            return;
        }
        if (r == DT_HTTP_FEED_DONE) {
            if (p->resp_done) {
                /* Anything after the response is not ours to deliver. */
                finish_response(p);
                return;
            }
            dt_http_parser_next(p->parser); /* past an interim 1xx */
        }
    }
    if (!p->agent_closed && p->req && dt_httpd_queued(p->req) > QUEUE_HIGH)
        agent_read_stop(p);
}

static void
on_agent_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct proxy *p = s->data;

    if (nread == 0)
        return;
    proxy_enter(p);
    if (nread > 0 && p->tunnel) {
        activity(p);
        if (p->raw) {
            (void) dt_httpd_raw_write(p->raw, buf->base, (size_t) nread);
            if (dt_httpd_raw_queued(p->raw) > QUEUE_HIGH)
                agent_read_stop(p);
        }
    } else if (nread > 0)
        agent_feed(p, buf->base, (size_t) nread);
    else if (p->tunnel) {
        /* The agent closed its side: the client gets what is queued, then the close. */
        if (p->raw)
            dt_httpd_raw_close(p->raw);
        agent_close(p);
    } else {
        int r = nread == UV_EOF ? dt_http_parser_finish(p->parser) : -ECONNRESET;

        if (r == DT_HTTP_FEED_DONE && p->resp_done)
            finish_response(p); /* a body delimited by the end of the connection */
        else if (!p->resp_started) {
            _cleanup_free_ char *msg = xasprintf(
                nread == UV_EOF ? "%s closed the connection before answering"
                                : "%s connection failed before it answered", p->peer);
            agent_failed(p, 502, msg);
        }
        else
            agent_failed(p, 502, NULL); /* mid-body: the client's connection is cut */
    }
    proxy_leave(p);
}

/* The client's queue drained: read the agent again. */
static void
on_client_drain(struct dt_httpd_req *req, void *ud)
{
    struct proxy *p = ud;

    agent_read_start(p);
}

/* ---- connecting ---- */

static void
on_connect(uv_connect_t *cr, int status)
{
    struct proxy *p = cr->data;

    proxy_enter(p);
    if (!p->agent_closed)
        uv_timer_stop(&p->timer);
    if (status < 0 || p->agent_closed) {
        if (p->req && !p->resp_started && p->tcp) {
            /* A preview: the sandbox runs, but nothing (or nothing fast enough) listens. */
            _cleanup_free_ char *msg = xasprintf(
                "nothing answers on port %u in the sandbox (is a server listening on "
                "0.0.0.0:%u?): %s", p->tcp_port, p->tcp_port,
                p->timed_out ? "connection timed out" : uv_strerror(status));
            agent_failed(p, 502, msg);
        } else if (p->req && !p->resp_started) {
            _cleanup_free_ char *msg = xasprintf(
                "sandbox is not reachable (its agent does not answer): %s",
                p->timed_out ? "connection timed out" : uv_strerror(status));
            agent_failed(p, 503, msg);
        } else
            agent_close(p);
        proxy_leave(p);
        return;
    }
    p->connected = true;
    agent_write(p, p->head, p->head_len);
    free(p->head);
    p->head = NULL;
    if (p->pending_len)
        agent_write(p, p->pending, p->pending_len);
    free(p->pending);
    p->pending = NULL;
    p->pending_len = 0;
    agent_read_start(p);
    /* The client was paused while we connected; the queue may pause it again at once. */
    if (uv_stream_get_write_queue_size((uv_stream_t *) &p->conn) <= QUEUE_HIGH)
        client_resume(p);
    proxy_leave(p);
}

/* uv_tcp_connect failed synchronously: answer as on_connect would (from the loop, so the
 * caller is out of the way). */
static void
on_connect_failed_now(uv_timer_t *t)
{
    struct proxy *p = t->data;

    on_connect(&p->connect_req, p->connect_status);
}

static void
on_connect_timeout(uv_timer_t *t)
{
    struct proxy *p = t->data;

    /* Closing the pipe makes the pending connect fail with UV_ECANCELED: on_connect answers. */
    p->timed_out = true;
    proxy_enter(p);
    agent_close(p);
    proxy_leave(p);
}

/* ---- the request ---- */

static void
on_client_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct proxy *p = ud;

    p->req = NULL;
    if (p->taking_raw)
        return; /* the request became a tunnel */
    proxy_enter(p);
    /* Gone before the response was complete: the agent must notice at once. After a complete
     * response the connection is closed already. */
    agent_close(p);
    proxy_leave(p);
}

void
dt_proxy_forward(uv_loop_t *loop, struct dt_httpd_req *req, const char *socket_path,
                 const char *path_and_query, dt_proxy_activity_fn activity_fn, void *userdata)
{
    dt_proxy_forward_to(loop, req, &(struct dt_proxy_target) {
        .socket_path = socket_path,
        .path_and_query = path_and_query,
        .activity = activity_fn,
        .userdata = userdata,
    });
}

void
dt_proxy_forward_to(uv_loop_t *loop, struct dt_httpd_req *req, const struct dt_proxy_target *t)
{
    const struct dt_http_head *h = dt_httpd_req_head(req);
    const char *path_and_query = t->path_and_query;
    struct proxy *p;
    int r;

    DT_ASSERT(!t->socket_path != !t->addr);
    if (t->activity)
        t->activity(t->userdata);
    if (t->socket_path &&
        strlen(t->socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
        /* libuv would cut the path short and connect somewhere else. (The host path is not
         * the client's business.) */
        dt_httpd_reply_error(req, 503, "DAYTONA_PROXY", NULL,
                             "sandbox is not reachable (its agent does not answer): socket path "
                             "too long");
        if (t->done)
            t->done(t->userdata);
        return;
    }
    /* The target goes into the request line as it is. */
    if (path_and_query[0] != '/' || strpbrk(path_and_query, " \r\n\t")) {
        dt_httpd_reply_error(req, 400, "DAYTONA_PROXY", "BAD_REQUEST",
                             t->addr ? "bad request path" : "bad toolbox path");
        if (t->done)
            t->done(t->userdata);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->req = req;
    p->activity = t->activity;
    p->activity_ud = t->userdata;
    p->done = t->done;
    p->tcp = t->addr != NULL;
    p->tcp_port = p->tcp ? ntohs(t->addr->sin_port) : 0;
    p->peer = p->tcp ? "the server in the sandbox" : "sandbox agent";
    p->keep_authorization = t->keep_authorization;
    p->drop_header = t->drop_header;
    p->is_head = strcmp(h->method, "HEAD") == 0;
    p->upgrade = h->upgrade && h->path; /* not CONNECT: that has no path to forward */
    p->body_chunked = !p->upgrade && h->chunked;
    p->parser = dt_http_parser_new(DT_HTTP_RESPONSE,
                                   &(struct dt_http_limits) { .max_body_size = DT_HTTP_UNLIMITED },
                                   &resp_cbs, p);
    dt_httpd_req_set_close_cb(req, on_client_close, p);
    dt_httpd_req_set_drain_cb(req, on_client_drain, p);
    p->last_activity = uv_now(loop);
    build_head(p, h, path_and_query, t->host);
    p->drop_header = NULL;
    if (!p->upgrade)
        dt_httpd_req_stream_body(req, on_client_body, p);
    else
        p->body_done = true;
    r = p->tcp ? uv_tcp_init(loop, &p->conn.tcp) : uv_pipe_init(loop, &p->conn.pipe, 0);
    DT_ASSERT(r == 0);
    p->conn.handle.data = p;
    p->handles++;
    r = uv_timer_init(loop, &p->timer);
    DT_ASSERT(r == 0);
    p->timer.data = p;
    p->handles++;
    /* Hold the body back until the connection is up (one slice may still arrive). */
    if (!p->upgrade)
        client_pause(p);
    p->connect_req.data = p;
    if (p->tcp) {
        (void) uv_tcp_nodelay(&p->conn.tcp, 1);
        r = uv_tcp_connect(&p->connect_req, &p->conn.tcp, (const struct sockaddr *) t->addr,
                           on_connect);
        if (r < 0) {
            /* E.g. no route: answered like a refused connection, from the loop. */
            p->connect_status = r;
            uv_timer_start(&p->timer, on_connect_failed_now, 0, 0);
            return;
        }
    } else
        uv_pipe_connect(&p->connect_req, &p->conn.pipe, t->socket_path, on_connect);
    uv_timer_start(&p->timer, on_connect_timeout, CONNECT_TIMEOUT, 0);
}
