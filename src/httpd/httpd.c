/* SPDX-License-Identifier: Apache-2.0 */
/* The libuv HTTP/1.1 + WebSocket server shared by the agent and daytonad: listeners, connections,
 * the per-connection request state machine (one request in flight, pipelined ones wait in the
 * input buffer), response writing with a byte-counted queue for backpressure, timeouts, and
 * WebSocket connections with automatic ping/pong and the closing handshake. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dt/httpd.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define IN_MAX        (512u * 1024)  /* unconsumed input kept before reading stops */
#define READ_SIZE     (128u * 1024)
#define FEED_SLICE    (64u * 1024)   /* input fed to the parser at once (pause granularity) */
#define MAX_SEGMENTS  64
#define MAX_QUERY     256
#define WS_CLOSE_WAIT 2000           /* ms to wait for the peer's close frame */
#define DISCARD_MAX   (4u << 20)     /* unread body we skip after a response before closing */
#define WS_QUEUE_MAX  (1u << 20)     /* a WebSocket peer that does not read stops being read */

enum body_mode {
    BODY_DISCARD,
    BODY_BUFFER,
    BODY_STREAM,
};

struct conn;

struct dt_httpd_req {
    struct conn *c;
    const struct dt_http_head *head;
    char **segments; /* NULL-terminated */
    size_t n_segments;
    char **query;    /* name, value, name, value, ..., NULL */
    size_t n_query;

    enum body_mode body_mode;
    dt_httpd_body_fn body_cb;
    void *body_ud;
    char *body;
    size_t body_len, body_max;
    uint64_t discarded;
    bool body_done;
    bool body_failed;
    bool paused;
    bool is_upgrade;

    int status;
    bool resp_started;
    bool resp_ended;
    bool resp_chunked;
    bool resp_no_body;

    dt_httpd_close_fn close_cb;
    void *close_ud;
    dt_httpd_drain_fn drain_cb;
    void *drain_ud;
};

struct dt_httpd_ws {
    struct conn *c;
    struct dt_ws_parser parser;
    struct dt_ws_msgbuf msg;
    struct dt_httpd_ws_callbacks cbs;
    void *ud;
    char *path;
    bool close_sent;
    bool close_received;
    bool failed;      /* the peer broke the protocol: its input is discarded until it goes */
    uint16_t peer_code;
};

struct dt_httpd_raw {
    struct conn *c;
    struct dt_httpd_raw_callbacks cbs;
    void *ud;
    bool paused;
};

struct listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } h;
    struct dt_httpd *s;
    bool is_unix;
    struct listener *next;
};

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } h;
    uv_timer_t timer;
    struct dt_httpd *s;
    struct conn *prev, *next;
    struct dt_http_parser *parser;
    char *in;
    size_t in_len, in_cap;
    size_t queued;
    uid_t peer_uid;
    int open_handles;
    bool reading;
    bool closing;
    bool processing;
    bool close_after; /* close once the current response is written */
    bool timer_ws_close;
    uint64_t head_deadline; /* ms (uv_now) by which the started request head must be complete */
    bool counted;     /* counted in the server's open handles (closed while freeing) */
    bool lingering;   /* our side is shut down; reading and dropping until the peer's EOF */
    uv_shutdown_t shutdown_req;
    struct dt_httpd_req *req;
    struct dt_httpd_ws *ws;
    struct dt_httpd_raw *raw;
};

struct dt_httpd {
    uv_loop_t *loop;
    struct dt_httpd_config cfg;
    struct listener *listeners;
    struct conn *conns;
    unsigned n_conns;
    bool freeing;
    int open_handles;
};

struct wreq {
    uv_write_t w;
    struct conn *c;
    size_t len;
    void *owned;
    char chunk_hdr[DT_HTTP_CHUNK_HEADER_MAX];
};

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void conn_update(struct conn *c);
static void on_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ---- small helpers ---- */

static void
free_strv_n(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}


/* ---- writing ---- */

static void
on_write(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *) w;
    struct conn *c = wr->c;

    c->queued -= wr->len;
    free(wr->owned);
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->queued == 0) {
        if (c->req && c->req->drain_cb && !c->req->resp_ended)
            c->req->drain_cb(c->req, c->req->drain_ud);
        else if (c->ws && c->ws->cbs.on_drain && !c->ws->close_sent)
            c->ws->cbs.on_drain(c->ws, c->ws->ud);
        else if (c->raw && c->raw->cbs.on_drain)
            c->raw->cbs.on_drain(c->raw, c->raw->ud);
        if (!c->closing)
            conn_process(c);
    }
}

/* Queue BUFS; OWNED (may be NULL) is freed after the write or on failure. */
static int
conn_write(struct conn *c, const uv_buf_t *bufs, unsigned n, void *owned, const char *chunk_hdr)
{
    struct wreq *wr;
    uv_buf_t b[3];
    size_t len = 0;
    int r;

    if (c->closing) {
        free(owned);
        return -EPIPE;
    }
    wr = xcalloc(1, sizeof(*wr));
    wr->c = c;
    wr->owned = owned;
    for (unsigned i = 0; i < n && i < 3; i++) {
        b[i] = bufs[i];
        len += bufs[i].len;
    }
    if (chunk_hdr) {
        /* Chunk headers live in the request: the caller's stack copy is gone after return. */
        size_t hl = strlen(chunk_hdr);
        memcpy(wr->chunk_hdr, chunk_hdr, hl + 1);
        b[0] = uv_buf_init(wr->chunk_hdr, hl);
    }
    wr->len = len;
    r = uv_write(&wr->w, &c->h.stream, b, n, on_write);
    if (r < 0) {
        free(wr->owned);
        free(wr);
        conn_close(c);
        return -EPIPE;
    }
    c->queued += len;
    return 0;
}

static int
conn_write_owned(struct conn *c, void *data, size_t len)
{
    uv_buf_t b = uv_buf_init(data, len);
    return conn_write(c, &b, 1, data, NULL);
}

/* ---- requests ---- */

static void
req_free(struct dt_httpd_req *req)
{
    free_strv_n(req->segments, req->n_segments);
    free_strv_n(req->query, req->n_query * 2);
    free(req->body);
    free(req);
}

/* Detach REQ from its connection, run its close callback, free it. */
static void
req_done(struct dt_httpd_req *req, bool completed)
{
    struct conn *c = req->c;
    dt_httpd_close_fn cb = req->close_cb;

    c->req = NULL;
    if (!req->body_done && req->body_cb && !req->body_failed && req->body_mode != BODY_DISCARD)
        req->body_cb(req, -ECONNRESET, NULL, 0, req->body_ud);
    if (cb)
        cb(req, completed, req->close_ud);
    req_free(req);
}

static int
split_segments(struct dt_httpd_req *req)
{
    const char *p = req->head->path;
    size_t n = 0;
    char **v = xcalloc(MAX_SEGMENTS + 1, sizeof(char *));

    if (!p) {
        req->segments = v;
        return 0;
    }
    while (*p) {
        const char *e;
        size_t dl;

        while (*p == '/')
            p++;
        if (!*p)
            break;
        e = strchrnul(p, '/');
        if (n == MAX_SEGMENTS) {
            req->segments = v;
            req->n_segments = n;
            return -EINVAL;
        }
        v[n] = xmalloc((size_t) (e - p) + 1);
        if (dt_http_percent_decode(p, (size_t) (e - p), v[n], &dl, false) < 0) {
            free(v[n]);
            v[n] = NULL;
            req->segments = v;
            req->n_segments = n;
            return -EINVAL;
        }
        n++;
        p = e;
    }
    req->segments = v;
    req->n_segments = n;
    return 0;
}

static int
split_query(struct dt_httpd_req *req)
{
    const char *q = req->head->query;
    size_t n = 0;
    char **v;

    v = xcalloc(MAX_QUERY * 2 + 1, sizeof(char *));
    req->query = v;
    if (!q)
        return 0;
    while (*q) {
        const char *e = strchrnul(q, '&'), *eq;
        size_t dl;

        if (e == q) {
            q++;
            continue;
        }
        if (n == MAX_QUERY)
            return -EINVAL;
        eq = memchr(q, '=', (size_t) (e - q));
        if (!eq)
            eq = e;
        v[2 * n] = xmalloc((size_t) (eq - q) + 1);
        v[2 * n + 1] = xmalloc(eq < e ? (size_t) (e - eq) : 1);
        req->n_query = n + 1;
        if (dt_http_percent_decode(q, (size_t) (eq - q), v[2 * n], &dl, true) < 0)
            return -EINVAL;
        if (eq < e) {
            if (dt_http_percent_decode(eq + 1, (size_t) (e - eq - 1), v[2 * n + 1], &dl, true) < 0)
                return -EINVAL;
        } else
            v[2 * n + 1][0] = 0;
        n++;
        q = *e ? e + 1 : e;
    }
    return 0;
}

static int
on_head(struct dt_http_parser *p, void *userdata)
{
    struct conn *c = userdata;
    struct dt_httpd_req *req;

    c->head_deadline = 0;
    req = xcalloc(1, sizeof(*req));
    req->c = c;
    req->head = dt_http_parser_head(p);
    req->is_upgrade = req->head->upgrade;
    req->resp_no_body = strcmp(req->head->method, "HEAD") == 0;
    c->req = req;
    if (split_segments(req) < 0 || split_query(req) < 0) {
        dt_httpd_reply_error(req, 400, NULL, "BAD_REQUEST", "malformed percent-encoding in the URL");
        return 0;
    }
    c->s->cfg.handler(req, c->s->cfg.userdata);
    return 0;
}

static int
on_body(struct dt_http_parser *p, const char *data, size_t len, void *userdata)
{
    struct conn *c = userdata;
    struct dt_httpd_req *req = c->req;

    if (!req)
        return 0;
    if (req->body_failed || req->body_mode == BODY_DISCARD) {
        req->discarded += len;
        if (req->resp_ended && req->discarded > DISCARD_MAX)
            c->close_after = true;
        return 0;
    }
    switch (req->body_mode) {
    case BODY_DISCARD:
        break;
    case BODY_STREAM:
        req->body_cb(req, 0, data, len, req->body_ud);
        break;
    case BODY_BUFFER:
        if (len > req->body_max - req->body_len) {
            req->body_failed = true;
            free(req->body);
            req->body = NULL;
            c->close_after = true;
            req->body_cb(req, -EFBIG, NULL, 0, req->body_ud);
            if (c->req == req && !req->resp_started)
                dt_httpd_reply_error(req, 413, NULL, "PAYLOAD_TOO_LARGE",
                                     "request body larger than %zu bytes", req->body_max);
            break;
        }
        if (req->body_len + len + 1 > 0 && !req->body)
            req->body = xmalloc(len + 1);
        else
            req->body = xrealloc(req->body, req->body_len + len + 1);
        memcpy(req->body + req->body_len, data, len);
        req->body_len += len;
        req->body[req->body_len] = 0;
        break;
    }
    return 0;
}

static int
on_complete(struct dt_http_parser *p, void *userdata)
{
    struct conn *c = userdata;
    struct dt_httpd_req *req = c->req;

    if (!req)
        return 0;
    req->body_done = true;
    if (req->body_failed)
        return 0;
    if (req->body_mode == BODY_STREAM)
        req->body_cb(req, 0, NULL, 0, req->body_ud);
    else if (req->body_mode == BODY_BUFFER) {
        if (!req->body)
            req->body = xcalloc(1, 1);
        req->body_cb(req, 0, req->body, req->body_len, req->body_ud);
    }
    return 0;
}

static const struct dt_http_callbacks parser_cbs = {
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

/* ---- WebSocket input ---- */

static void
ws_send_close(struct dt_httpd_ws *ws, uint16_t code, const char *reason)
{
    uint8_t *frame;
    size_t n;

    if (ws->close_sent)
        return;
    ws->close_sent = true;
    frame = xmalloc(DT_WS_MAX_CLOSE_FRAME);
    n = dt_ws_close_frame(frame, code, reason, reason ? strlen(reason) : 0, NULL);
    (void) conn_write_owned(ws->c, frame, n);
}

static void
ws_process(struct conn *c)
{
    struct dt_httpd_ws *ws = c->ws;
    size_t off = 0;

    if (ws->failed) {
        /* After our close for a protocol error we wait for the peer to hang up (or the close
         * timer): closing at once while it still sends makes its stack see a reset instead of
         * our close frame (node's ws then reports 1006, not the code we sent). */
        c->in_len = 0;
        return;
    }
    while (off < c->in_len && !c->closing && !ws->close_received) {
        struct dt_ws_event ev;
        size_t used = 0;
        int r = dt_ws_parse(&ws->parser, (uint8_t *) c->in + off, c->in_len - off, &used, &ev);

        off += used;
        if (r < 0) {
            ws_send_close(ws, dt_ws_error_close_code(r), dt_ws_parser_error(&ws->parser));
            ws->failed = true;
            off = c->in_len;
            break;
        }
        if (r == 0)
            break;
        if (ev.type == DT_WS_EV_DATA) {
            if (dt_ws_msgbuf_add(&ws->msg, &ev) == 1 && !ws->close_sent && ws->cbs.on_message)
                ws->cbs.on_message(ws, ws->msg.opcode, ws->msg.data, ws->msg.len, ws->ud);
            continue;
        }
        switch (ev.opcode) {
        case DT_WS_OP_PING:
            if (!ws->close_sent) {
                size_t n = ev.len;
                uint8_t *f = xmalloc(DT_WS_MAX_HEADER + n);
                size_t h = dt_ws_frame_header(f, DT_WS_OP_PONG, true, n, NULL);
                memcpy(f + h, ev.data, n);
                (void) conn_write_owned(c, f, h + n);
            }
            break;
        case DT_WS_OP_CLOSE:
            ws->close_received = true;
            ws->peer_code = ev.close_code;
            if (ws->close_sent)
                conn_close(c);
            else {
                uint16_t code = ev.close_code == DT_WS_CLOSE_NO_STATUS ? 0 : ev.close_code;
                ws_send_close(ws, code, NULL);
                c->close_after = true;
            }
            break;
        default:
            break;
        }
    }
    if (!c->closing) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if (ws->close_received)
            c->in_len = 0;
    }
    if (!c->closing && c->close_after && c->queued == 0)
        conn_close(c);
}

/* ---- connection state machine ---- */

static void
consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void
parse_failed(struct conn *c, int r)
{
    struct dt_httpd_req *req = c->req;
    int status = dt_http_error_status(r);
    const char *msg = dt_http_parser_errmsg(c->parser);

    c->close_after = true;
    c->in_len = 0;
    if (req) {
        if (req->body_cb && !req->body_failed && !req->body_done &&
            req->body_mode != BODY_DISCARD) {
            req->body_failed = true;
            req->body_cb(req, r, NULL, 0, req->body_ud);
        }
        if (c->req == req && !req->resp_started)
            dt_httpd_reply_error(req, status, NULL, NULL, "%s", msg);
        else if (c->req == req && !req->resp_ended)
            conn_close(c); /* a half-sent response cannot be finished meaningfully */
        if (c->req == req)
            req->body_done = true;
        return;
    }
    /* No request object: answer with a bare error. */
    {
        char date[DT_HTTP_DATE_SIZE], body[256], head[512];
        int bl, hl;

        dt_http_format_date(time(NULL), date);
        bl = snprintf(body, sizeof(body), "{\"statusCode\":%d,\"message\":\"%s\",\"error\":\"%s\"}",
                      status, msg, dt_http_status_text(status));
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      status, dt_http_status_text(status), date, bl, body);
        if (hl > 0 && (size_t) hl < sizeof(head))
            (void) conn_write_owned(c, xmemdup(head, (size_t) hl), (size_t) hl);
        else
            conn_close(c);
    }
}

#define LINGER_MS 2000

static void
on_shutdown(uv_shutdown_t *s, int status)
{
    struct conn *c = s->data;

    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Close after a final response the peer may still be sending to (an early 413, a refused
 * upload): closing at once would reset the connection and the peer might never read our
 * answer. Shut our side down, read and drop until its EOF, at most LINGER_MS. */
static void
conn_linger(struct conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = true;
    c->in_len = 0;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

static void
conn_process(struct conn *c)
{
    if (c->processing || c->closing)
        return;
    c->processing = true;
    for (;;) {
        struct dt_httpd_req *req = c->req;
        size_t used = 0;
        int r;

        if (c->closing)
            break;
        if (c->lingering) {
            c->in_len = 0; /* what a closed connection still receives is dropped */
            break;
        }
        if (c->raw) {
            if (c->in_len && !c->raw->paused) {
                size_t n = c->in_len;
                c->in_len = 0;
                c->raw->cbs.on_data(c->raw, c->in, n, c->raw->ud);
            }
            if (!c->closing && c->close_after && c->queued == 0)
                conn_close(c);
            break;
        }
        if (c->ws) {
            ws_process(c);
            break;
        }
        if (req && req->resp_ended && c->queued == 0 && (req->body_done || c->close_after)) {
            bool close = c->close_after || req->is_upgrade || !req->body_done;
            req_done(req, true);
            dt_http_parser_next(c->parser);
            /* Pipelined bytes already here start the next head's clock now. */
            c->head_deadline = c->in_len ? uv_now(c->s->loop) + c->s->cfg.head_timeout_ms : 0;
            if (close) {
                conn_linger(c);
                break;
            }
            continue;
        }
        if (!req && c->close_after) {
            if (c->queued == 0)
                conn_linger(c);
            break;
        }
        if (c->in_len == 0)
            break;
        if (req && (req->body_done || req->paused))
            break;
        r = dt_http_parser_feed(c->parser, c->in, c->in_len < FEED_SLICE ? c->in_len : FEED_SLICE,
                                &used);
        if (c->closing)
            break;
        consume(c, used);
        if (r < 0) {
            parse_failed(c, r);
            continue;
        }
    }
    c->processing = false;
    conn_update(c);
}

static void
on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    conn_close(c);
}

/* Reading and timers follow the state: read unless the input buffer is full or the request is
 * paused; an idle or half-received connection times out, a busy one does not. */
static void
conn_update(struct conn *c)
{
    bool want_read;

    if (c->closing)
        return;
    if (c->lingering) {
        if (!c->reading && uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
            c->reading = true;
        return; /* the linger timer runs */
    }
    if (c->raw) {
        bool want = !c->raw->paused && !c->close_after;
        if (want && !c->reading) {
            if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
                c->reading = true;
        } else if (!want && c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
        uv_timer_stop(&c->timer);
        return;
    }
    want_read = c->in_len < IN_MAX && !(c->req && c->req->paused) &&
                !(c->ws && c->queued > WS_QUEUE_MAX); /* no pong flood into a full queue */
    if (want_read && !c->reading) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want_read && c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
    }
    if (c->ws) {
        if (c->ws->close_sent && !c->timer_ws_close) {
            c->timer_ws_close = true;
            uv_timer_start(&c->timer, on_timer, WS_CLOSE_WAIT, 0);
        } else if (!c->ws->close_sent)
            uv_timer_stop(&c->timer);
    } else if (c->req)
        uv_timer_stop(&c->timer);
    else if (c->head_deadline) {
        /* A head in progress: a fixed deadline, not re-armed by each byte (slowloris). */
        uint64_t now = uv_now(c->s->loop);
        uv_timer_start(&c->timer, on_timer, c->head_deadline > now ? c->head_deadline - now : 1, 0);
    } else
        uv_timer_start(&c->timer, on_timer, c->s->cfg.idle_timeout_ms, 0);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    if (c->in_cap - c->in_len < READ_SIZE) {
        c->in_cap = c->in_len + READ_SIZE;
        c->in = xrealloc(c->in, c->in_cap);
    }
    *buf = uv_buf_init(c->in + c->in_len, READ_SIZE);
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;

    if (nread > 0) {
        c->in_len += (size_t) nread;
        if (!c->req && !c->ws && !c->head_deadline)
            c->head_deadline = uv_now(c->s->loop) + c->s->cfg.head_timeout_ms;
        conn_process(c);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error: the peer is gone (HTTP clients do not half-close while waiting). */
    if (c->raw && c->raw->cbs.on_data && !c->closing)
        c->raw->cbs.on_data(c->raw, NULL, 0, c->raw->ud);
    conn_close(c);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct dt_httpd *s = c->s;

    if (--c->open_handles > 0)
        return;
    bool counted = c->counted;

    dt_http_parser_free(c->parser);
    free(c->in);
    free(c);
    if (counted && --s->open_handles == 0)
        free(s);
}

static void
conn_close(struct conn *c)
{
    struct dt_httpd *s = c->s;

    if (c->closing)
        return;
    c->closing = true;
    if (c->req)
        req_done(c->req, false);
    if (c->raw) {
        struct dt_httpd_raw *raw = c->raw;
        c->raw = NULL;
        if (raw->cbs.on_close)
            raw->cbs.on_close(raw, raw->ud);
        free(raw);
    }
    if (c->ws) {
        struct dt_httpd_ws *ws = c->ws;
        uint16_t code = ws->close_received ? ws->peer_code : DT_WS_CLOSE_ABNORMAL;
        c->ws = NULL;
        if (ws->cbs.on_close)
            ws->cbs.on_close(ws, code, ws->ud);
        dt_ws_msgbuf_done(&ws->msg);
        free(ws->path);
        free(ws);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (s->freeing) {
        s->open_handles++;
        c->counted = true;
    }
    uv_close(&c->h.handle, on_conn_handle_closed);
    uv_close((uv_handle_t *) &c->timer, on_conn_handle_closed);
}

static void
on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct dt_httpd *s = l->s;
    struct conn *c;
    int r;

    if (status < 0)
        return;
    c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->peer_uid = (uid_t) -1;
    if (l->is_unix)
        r = uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        r = uv_tcp_init(s->loop, &c->h.tcp);
    if (r < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->parser = dt_http_parser_new(DT_HTTP_REQUEST, &s->cfg.limits, &parser_cbs, c);
    if (uv_accept(server, &c->h.stream) < 0 || s->n_conns > s->cfg.max_connections) {
        conn_close(c);
        return;
    }
    if (l->is_unix) {
        uv_os_fd_t fd;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (uv_fileno(&c->h.handle, &fd) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            c->peer_uid = cred.uid;
    } else
        uv_tcp_nodelay(&c->h.tcp, 1);
    conn_update(c);
}

/* ---- server ---- */

int
dt_httpd_new(uv_loop_t *loop, const struct dt_httpd_config *cfg, struct dt_httpd **ret,
             struct dt_error **err)
{
    struct dt_httpd *s;

    if (!cfg->handler)
        return dt_error_set(err, EINVAL, "HTTP server: no handler");
    s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    if (!s->cfg.limits.max_body_size)
        s->cfg.limits.max_body_size = DT_HTTP_UNLIMITED;
    if (!s->cfg.idle_timeout_ms)
        s->cfg.idle_timeout_ms = 75000;
    if (!s->cfg.head_timeout_ms)
        s->cfg.head_timeout_ms = 30000;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 4096;
    if (!s->cfg.ws_max_message)
        s->cfg.ws_max_message = 1u << 20;
    *ret = s;
    return 0;
}

static struct listener *
listener_add(struct dt_httpd *s, bool is_unix)
{
    struct listener *l = xcalloc(1, sizeof(*l));

    l->s = s;
    l->is_unix = is_unix;
    if (is_unix)
        uv_pipe_init(s->loop, &l->h.pipe, 0);
    else
        uv_tcp_init(s->loop, &l->h.tcp);
    l->h.handle.data = l;
    l->next = s->listeners;
    s->listeners = l;
    return l;
}

static int
listener_start(struct listener *l, const char *what, struct dt_error **err)
{
    int r = uv_listen(&l->h.stream, 511, on_connection);
    if (r < 0)
        return dt_error_errno(err, -r, "listen on %s", what);
    return 0;
}

int
dt_httpd_listen_unix(struct dt_httpd *s, const char *path, struct dt_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    struct listener *l;
    struct stat st;
    int r;

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return dt_error_set(err, EEXIST, "%s exists and is not a socket", path);
        if (unlink(path) < 0)
            return dt_error_errno(err, errno, "remove stale socket %s", path);
    }
    /* Bind and listen under a temporary name, then rename: whoever sees PATH can connect. */
    tmp = xasprintf("%s.%d.tmp", path, (int) getpid());
    (void) unlink(tmp);
    l = listener_add(s, true);
    r = uv_pipe_bind(&l->h.pipe, tmp);
    if (r < 0)
        return dt_error_errno(err, -r, "bind %s", tmp);
    if (chmod(tmp, 0600) < 0)
        r = dt_error_errno(err, errno, "chmod %s", tmp);
    else
        r = listener_start(l, path, err);
    if (r == 0 && rename(tmp, path) < 0)
        r = dt_error_errno(err, errno, "rename %s to %s", tmp, path);
    if (r < 0)
        (void) unlink(tmp);
    return r;
}

int
dt_httpd_listen_fd(struct dt_httpd *s, int fd, struct dt_error **err)
{
    struct listener *l;
    int domain = 0;
    socklen_t len = sizeof(domain);
    int r;

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
        r = -errno;
        close(fd);
        return dt_error_errno(err, -r, "fd %d is not a socket", fd);
    }
    l = listener_add(s, domain == AF_UNIX);
    r = l->is_unix ? uv_pipe_open(&l->h.pipe, fd) : uv_tcp_open(&l->h.tcp, fd);
    if (r < 0) {
        close(fd);
        return dt_error_errno(err, -r, "serve on fd %d", fd);
    }
    return listener_start(l, "the inherited socket", err);
}

int
dt_httpd_listen_tcp(struct dt_httpd *s, const char *addr, uint16_t port, struct dt_error **err)
{
    struct sockaddr_storage ss;
    struct listener *l;
    int r;

    if (uv_ip4_addr(addr, port, (struct sockaddr_in *) &ss) < 0 &&
        uv_ip6_addr(addr, port, (struct sockaddr_in6 *) &ss) < 0)
        return dt_error_set(err, EINVAL, "not a numeric IP address: %s", addr);
    l = listener_add(s, false);
    r = uv_tcp_bind(&l->h.tcp, (struct sockaddr *) &ss, 0);
    if (r < 0)
        return dt_error_errno(err, -r, "bind %s port %u", addr, port);
    return listener_start(l, addr, err);
}

uint16_t
dt_httpd_port(const struct dt_httpd *s)
{
    for (struct listener *l = s->listeners; l; l = l->next) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);

        if (l->is_unix || uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *) &ss, &len) < 0)
            continue;
        if (ss.ss_family == AF_INET)
            return ntohs(((struct sockaddr_in *) &ss)->sin_port);
        if (ss.ss_family == AF_INET6)
            return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    }
    return 0;
}

unsigned
dt_httpd_connections(const struct dt_httpd *s)
{
    return s->n_conns;
}

static void
on_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct dt_httpd *s = l->s;

    free(l);
    if (--s->open_handles == 0)
        free(s);
}

void
dt_httpd_free(struct dt_httpd *s)
{
    if (!s)
        return;
    s->freeing = true;
    s->open_handles = 1; /* held until the end of this function */
    while (s->conns)
        conn_close(s->conns);
    while (s->listeners) {
        struct listener *l = s->listeners;
        s->listeners = l->next;
        s->open_handles++;
        uv_close(&l->h.handle, on_listener_closed);
    }
    if (--s->open_handles == 0)
        free(s);
}

/* ---- request accessors ---- */

const struct dt_http_head *
dt_httpd_req_head(const struct dt_httpd_req *req)
{
    return req->head;
}

const char *
dt_httpd_req_method(const struct dt_httpd_req *req)
{
    return req->head->method;
}

const char *
dt_httpd_req_header(const struct dt_httpd_req *req, const char *name)
{
    return dt_http_head_get(req->head, name);
}

const char *const *
dt_httpd_req_segments(const struct dt_httpd_req *req, size_t *ret_n)
{
    if (ret_n)
        *ret_n = req->n_segments;
    return (const char *const *) req->segments;
}

const char *
dt_httpd_req_query_next(const struct dt_httpd_req *req, const char *name, size_t *idx)
{
    for (size_t i = *idx; i < req->n_query; i++)
        if (strcmp(req->query[2 * i], name) == 0) {
            *idx = i + 1;
            return req->query[2 * i + 1];
        }
    *idx = req->n_query;
    return NULL;
}

const char *
dt_httpd_req_query(const struct dt_httpd_req *req, const char *name)
{
    size_t idx = 0;
    return dt_httpd_req_query_next(req, name, &idx);
}

uid_t
dt_httpd_req_peer_uid(const struct dt_httpd_req *req)
{
    return req->c->peer_uid;
}

void
dt_httpd_req_set_close_cb(struct dt_httpd_req *req, dt_httpd_close_fn cb, void *userdata)
{
    req->close_cb = cb;
    req->close_ud = userdata;
}

void
dt_httpd_req_set_drain_cb(struct dt_httpd_req *req, dt_httpd_drain_fn cb, void *userdata)
{
    req->drain_cb = cb;
    req->drain_ud = userdata;
}

/* ---- bodies ---- */

/* A client that sent "Expect: 100-continue" (curl does for large bodies) waits for this before
 * sending the body: answer it once the handler wants the body, never when it answers first. */
static void
send_continue(struct dt_httpd_req *req)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *expect = dt_http_head_get(req->head, "expect");

    if (!expect || strcasecmp(expect, "100-continue") != 0 || req->resp_started ||
        req->body_done || req->head->version_minor < 1)
        return;
    (void) conn_write_owned(req->c, xmemdup(cont, sizeof(cont) - 1), sizeof(cont) - 1);
}

void
dt_httpd_req_read_body(struct dt_httpd_req *req, size_t max, dt_httpd_body_fn cb, void *userdata)
{
    req->body_mode = BODY_BUFFER;
    req->body_max = max;
    req->body_cb = cb;
    req->body_ud = userdata;
    if (req->head->has_content_length && req->head->content_length > max) {
        req->body_failed = true;
        req->c->close_after = true;
        cb(req, -EFBIG, NULL, 0, userdata);
        if (req->c->req == req && !req->resp_started)
            dt_httpd_reply_error(req, 413, NULL, "PAYLOAD_TOO_LARGE",
                                 "request body larger than %zu bytes", max);
        return;
    }
    send_continue(req);
}

void
dt_httpd_req_stream_body(struct dt_httpd_req *req, dt_httpd_body_fn cb, void *userdata)
{
    req->body_mode = BODY_STREAM;
    req->body_cb = cb;
    req->body_ud = userdata;
    send_continue(req);
}

void
dt_httpd_req_pause(struct dt_httpd_req *req)
{
    req->paused = true;
    if (!req->c->processing)
        conn_update(req->c);
}

void
dt_httpd_req_resume(struct dt_httpd_req *req)
{
    if (!req->paused)
        return;
    req->paused = false;
    conn_process(req->c);
}

/* ---- responses ---- */

static ssize_t
format_head(struct dt_httpd_req *req, char **ret, int status, const struct dt_http_header *headers,
            size_t n, int64_t content_length)
{
    struct dt_http_header all[64];
    char date[DT_HTTP_DATE_SIZE], clen[24];
    size_t k = 0;
    ssize_t len;
    char *buf;
    bool keep;

    if (n > ELEMENTSOF(all) - 4)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        all[k++] = headers[i];
    dt_http_format_date(time(NULL), date);
    all[k++] = (struct dt_http_header) { .name = "Date", .value = date };
    if (status >= 200 && status != 204 && status != 304) {
        if (content_length >= 0) {
            snprintf(clen, sizeof(clen), "%lld", (long long) content_length);
            all[k++] = (struct dt_http_header) { .name = "Content-Length", .value = clen };
        } else if (!req->resp_no_body)
            all[k++] = (struct dt_http_header) { .name = "Transfer-Encoding", .value = "chunked" };
    }
    if (status != 101) {
        keep = req->head->keep_alive && !req->c->close_after && !req->is_upgrade;
        if (!keep)
            req->c->close_after = true;
        all[k++] = (struct dt_http_header) { .name = "Connection",
                                             .value = keep ? "keep-alive" : "close" };
    }
    len = dt_http_format_response_head(NULL, 0, status, all, k);
    if (len < 0)
        return len;
    buf = xmalloc((size_t) len + 1);
    dt_http_format_response_head(buf, (size_t) len + 1, status, all, k);
    *ret = buf;
    return len;
}

int
dt_httpd_start(struct dt_httpd_req *req, int status, const struct dt_http_header *headers,
               size_t n_headers, int64_t content_length)
{
    char *head;
    ssize_t len;

    if (req->resp_started)
        return -EALREADY;
    len = format_head(req, &head, status, headers, n_headers, content_length);
    if (len < 0)
        return (int) len;
    req->resp_started = true;
    req->status = status;
    req->resp_chunked = content_length < 0 && status >= 200 && status != 204 && status != 304;
    if (status < 200 || status == 204 || status == 304)
        req->resp_no_body = true;
    return conn_write_owned(req->c, head, (size_t) len);
}

int
dt_httpd_write_owned(struct dt_httpd_req *req, void *data, size_t len)
{
    if (!req->resp_started || req->resp_ended || req->resp_no_body || len == 0) {
        free(data);
        return req->c->closing ? -EPIPE : 0;
    }
    if (req->resp_chunked) {
        char hdr[DT_HTTP_CHUNK_HEADER_MAX];
        uv_buf_t b[3];

        dt_http_chunk_header(hdr, len);
        b[0] = uv_buf_init(hdr, strlen(hdr));
        b[1] = uv_buf_init(data, len);
        b[2] = uv_buf_init((char *) DT_HTTP_CHUNK_END, 2);
        return conn_write(req->c, b, 3, data, hdr);
    }
    return conn_write_owned(req->c, data, len);
}

int
dt_httpd_write(struct dt_httpd_req *req, const void *data, size_t len)
{
    if (len == 0)
        return req->c->closing ? -EPIPE : 0;
    return dt_httpd_write_owned(req, xmemdup(data, len), len);
}

size_t
dt_httpd_queued(const struct dt_httpd_req *req)
{
    return req->c->queued;
}

int
dt_httpd_end(struct dt_httpd_req *req)
{
    struct conn *c = req->c;
    int r = 0;

    if (!req->resp_started || req->resp_ended)
        return -EINVAL;
    if (req->resp_chunked && !req->resp_no_body) {
        uv_buf_t b = uv_buf_init((char *) DT_HTTP_CHUNK_LAST, strlen(DT_HTTP_CHUNK_LAST));
        r = conn_write(c, &b, 1, NULL, NULL);
    }
    req->resp_ended = true;
    /* A body the handler never read is skipped; a large one is not worth reading. */
    if (!req->body_done) {
        if (req->body_mode == BODY_DISCARD && req->discarded > DISCARD_MAX)
            c->close_after = true;
        if (req->body_mode != BODY_DISCARD) {
            /* Tell the body's consumer it will get no more (it frees what it holds). */
            if (req->body_cb && !req->body_failed) {
                req->body_failed = true;
                req->body_cb(req, -ECANCELED, NULL, 0, req->body_ud);
            }
            req->body_mode = BODY_DISCARD;
        }
        req->paused = false;
    }
    conn_process(c);
    return r;
}

void
dt_httpd_abort(struct dt_httpd_req *req)
{
    conn_close(req->c);
}

void
dt_httpd_reply(struct dt_httpd_req *req, int status, const char *content_type, const void *body,
               size_t len)
{
    struct dt_http_header h = { .name = "Content-Type", .value = content_type };

    if (dt_httpd_start(req, status, &h, content_type ? 1 : 0, (int64_t) len) < 0)
        return;
    if (len)
        (void) dt_httpd_write(req, body, len);
    (void) dt_httpd_end(req);
}

void
dt_httpd_reply_json(struct dt_httpd_req *req, int status, json_t *body)
{
    char *s = NULL;

    if (body) {
        s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
    }
    if (!s) {
        dt_httpd_reply(req, status, "application/json", "", 0);
        return;
    }
    dt_httpd_reply(req, status, "application/json", s, strlen(s));
    free(s);
}

void
dt_httpd_reply_error(struct dt_httpd_req *req, int status, const char *source, const char *code,
                     const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    char ts[ISO8601_MSEC_SIZE];
    json_t *j;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    format_iso8601_msec(realtime_msec(), ts);
    j = json_object();
    json_object_set_new(j, "statusCode", json_integer(status));
    /* json_string() refuses invalid UTF-8 (a file name may hold anything): fall back. */
    json_object_set_new(j, "message", json_string(msg ? msg : "error") ?: json_string("error"));
    json_object_set_new(j, "error", json_string(dt_http_status_text(status)));
    if (code)
        json_object_set_new(j, "code", json_string(code));
    if (source)
        json_object_set_new(j, "source", json_string(source));
    if (req->head->path)
        json_object_set_new(j, "path", json_string(req->head->path) ?: json_string(""));
    json_object_set_new(j, "timestamp", json_string(ts));
    dt_httpd_reply_json(req, status, j);
}

/* ---- WebSocket ---- */

bool
dt_httpd_req_is_websocket(const struct dt_httpd_req *req)
{
    return strcmp(req->head->method, "GET") == 0 &&
           dt_http_head_has_token(req->head, "upgrade", "websocket");
}

int
dt_httpd_ws_accept(struct dt_httpd_req *req, const char *subprotocol,
                   const struct dt_httpd_ws_callbacks *cbs, void *userdata, struct dt_httpd_ws **ret)
{
    struct conn *c = req->c;
    struct dt_ws_header hs[64];
    char accept[DT_WS_ACCEPT_LEN + 1];
    struct dt_http_header out[4];
    _cleanup_error_ struct dt_error *e = NULL;
    struct dt_httpd_ws *ws;
    size_t n = 0, k = 0;
    char *head;
    ssize_t len;
    int r;

    for (size_t i = 0; i < req->head->n_headers && n < ELEMENTSOF(hs); i++)
        hs[n++] = (struct dt_ws_header) { .name = req->head->headers[i].name,
                                          .name_len = req->head->headers[i].name_len,
                                          .value = req->head->headers[i].value,
                                          .value_len = req->head->headers[i].value_len };
    r = strcmp(req->head->method, "GET") != 0 ? -EINVAL : dt_ws_server_check_request(hs, n, accept, &e);
    if (r < 0) {
        if (r == -EPROTONOSUPPORT) {
            struct dt_http_header v = { .name = "Sec-WebSocket-Version", .value = "13" };
            if (dt_httpd_start(req, 426, &v, 1, 0) == 0)
                dt_httpd_end(req);
        } else
            dt_httpd_reply_error(req, 400, NULL, "BAD_REQUEST", "bad WebSocket handshake: %s",
                                 e ? e->message : "not a GET request");
        return r;
    }
    out[k++] = (struct dt_http_header) { .name = "Upgrade", .value = "websocket" };
    out[k++] = (struct dt_http_header) { .name = "Connection", .value = "Upgrade" };
    out[k++] = (struct dt_http_header) { .name = "Sec-WebSocket-Accept", .value = accept };
    if (subprotocol)
        out[k++] = (struct dt_http_header) { .name = "Sec-WebSocket-Protocol", .value = subprotocol };
    len = format_head(req, &head, 101, out, k, -1);
    if (len < 0) {
        dt_httpd_reply_error(req, 500, NULL, NULL, "cannot format the upgrade response");
        return (int) len;
    }
    req->resp_started = req->resp_ended = true;
    req->body_done = true;
    ws = xcalloc(1, sizeof(*ws));
    ws->c = c;
    ws->cbs = *cbs;
    ws->ud = userdata;
    ws->path = xstrdup(req->head->path ? req->head->path : "/");
    dt_ws_parser_init(&ws->parser, DT_WS_SERVER, c->s->cfg.ws_max_message);
    r = conn_write_owned(c, head, (size_t) len);
    req->is_upgrade = false; /* the connection stays open, as a WebSocket */
    req_done(req, true);     /* (the HTTP parser is never fed again on this connection) */
    if (r < 0 || c->closing) {
        /* The connection died under us: there is no WebSocket (and no on_close to expect). */
        free(ws->path);
        free(ws);
        return -EPIPE;
    }
    c->ws = ws;
    *ret = ws;
    if (!c->processing)
        conn_process(c);
    return 0;
}

int
dt_httpd_ws_send(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const void *data, size_t len)
{
    uint8_t *f;
    size_t h;

    if (ws->close_sent || ws->c->closing)
        return -EPIPE;
    f = xmalloc(DT_WS_MAX_HEADER + len);
    h = dt_ws_frame_header(f, op, true, len, NULL);
    if (len)
        memcpy(f + h, data, len);
    return conn_write_owned(ws->c, f, h + len);
}

void
dt_httpd_ws_close(struct dt_httpd_ws *ws, uint16_t code, const char *reason)
{
    struct conn *c = ws->c;

    if (ws->close_sent || c->closing)
        return;
    ws_send_close(ws, code, reason);
    if (ws->close_received)
        c->close_after = true;
    if (!c->processing)
        conn_update(c);
}

size_t
dt_httpd_ws_queued(const struct dt_httpd_ws *ws)
{
    return ws->c->queued;
}

const char *
dt_httpd_ws_path(const struct dt_httpd_ws *ws)
{
    return ws->path;
}

/* ---- raw connections ---- */

int
dt_httpd_req_take_raw(struct dt_httpd_req *req, const struct dt_httpd_raw_callbacks *cbs,
                      void *userdata, struct dt_httpd_raw **ret)
{
    struct conn *c = req->c;
    struct dt_httpd_raw *raw;

    if (!req->head->upgrade || req->resp_started || c->closing)
        return -EINVAL;
    raw = xcalloc(1, sizeof(*raw));
    raw->c = c;
    raw->cbs = *cbs;
    raw->ud = userdata;
    req->resp_started = req->resp_ended = true;
    req->body_done = true;
    req->is_upgrade = false; /* the connection stays open, as a tunnel */
    req_done(req, true);     /* (the HTTP parser is never fed again on this connection) */
    c->raw = raw;
    *ret = raw;
    if (!c->processing)
        conn_process(c);
    return 0;
}

int
dt_httpd_raw_write(struct dt_httpd_raw *raw, const void *data, size_t len)
{
    if (raw->c->closing || raw->c->close_after)
        return -EPIPE;
    if (len == 0)
        return 0;
    return conn_write_owned(raw->c, xmemdup(data, len), len);
}

size_t
dt_httpd_raw_queued(const struct dt_httpd_raw *raw)
{
    return raw->c->queued;
}

void
dt_httpd_raw_pause(struct dt_httpd_raw *raw)
{
    raw->paused = true;
    if (!raw->c->processing)
        conn_update(raw->c);
}

void
dt_httpd_raw_resume(struct dt_httpd_raw *raw)
{
    if (!raw->paused)
        return;
    raw->paused = false;
    conn_process(raw->c);
}

void
dt_httpd_raw_close(struct dt_httpd_raw *raw)
{
    struct conn *c = raw->c;

    if (c->closing)
        return;
    c->close_after = true;
    if (c->queued == 0)
        conn_close(c);
    else if (!c->processing)
        conn_update(c);
}

int
dt_httpd_req_status(const struct dt_httpd_req *req)
{
    return req->status;
}
