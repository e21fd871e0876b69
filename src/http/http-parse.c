/* SPDX-License-Identifier: Apache-2.0 */
/* Incremental HTTP/1.1 request/response parser on top of http-parser 2.9: collects the head into
 * one per-message buffer, streams the body through a callback, enforces hard limits and closes
 * the request-smuggling holes http-parser leaves open (obs-fold, bare LF, TE codings, Host). */
#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dt/http.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define DEFAULT_MAX_HEAD     (64 * 1024)
#define DEFAULT_MAX_HEADERS  100
#define DEFAULT_MAX_TARGET   (8 * 1024)
#define DEFAULT_MAX_NAME     256
#define DEFAULT_MAX_VALUE    (16 * 1024)
#define DEFAULT_MAX_BODY     (1024 * 1024)

enum element {
    EL_NONE,
    EL_URL,
    EL_STATUS,
    EL_FIELD,
    EL_VALUE,
};

/* Offsets into p->buf: the buffer may move while it grows, so pointers are made only once the
 * head is complete. */
struct hdr_off {
    size_t name_off, name_len, value_off, value_len;
};

enum state {
    ST_PARSING = 0,
    ST_DONE = DT_HTTP_FEED_DONE,
    ST_UPGRADE = DT_HTTP_FEED_UPGRADE,
};

struct dt_http_parser {
    http_parser hp;
    enum dt_http_kind kind;
    struct dt_http_limits limits;
    struct dt_http_callbacks cbs;
    void *userdata;

    char *buf;
    size_t len, cap;
    struct hdr_off *hdrs;
    size_t n_hdrs, cap_hdrs;
    struct dt_http_header *headers;
    size_t cap_headers;
    size_t target_off, target_len, reason_off, reason_len;
    enum element last;

    /* Our own scan of the head bytes, ahead of http-parser (see scan_head()). */
    bool in_head, started, line_start, prev_cr, first_line, colon_seen, in_space;
    size_t head_bytes, fl_word, field_len, n_lines;
    int scan_error;
    const char *scan_errmsg;

    struct dt_http_head head;
    bool head_ready;
    uint64_t body_bytes;
    int state; /* enum state, or -errno once failed */
    int cb_error;
    const char *errmsg;
};

static int
fail(struct dt_http_parser *p, int r, const char *msg)
{
    p->cb_error = r;
    p->errmsg = msg;
    return -1; /* any non-zero return stops http-parser */
}

static void
buf_reserve(struct dt_http_parser *p, size_t len)
{
    if (p->len + len + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 1024;
        while (cap < p->len + len + 1)
            cap *= 2;
        p->buf = xrealloc(p->buf, cap);
        p->cap = cap;
    }
}

static void
buf_append(struct dt_http_parser *p, const char *data, size_t len)
{
    buf_reserve(p, len);
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

/* Append a copy of bytes already in the buffer (which may move while growing). */
static void
buf_append_self(struct dt_http_parser *p, size_t off, size_t len)
{
    buf_reserve(p, len);
    memmove(p->buf + p->len, p->buf + off, len);
    p->len += len;
}

/* End the element being collected: NUL-terminate it so every string in the head is a C string. */
static void
close_element(struct dt_http_parser *p)
{
    if (p->last == EL_NONE)
        return;
    if (p->last == EL_FIELD) {
        /* A field without a value callback has an empty value. */
        p->hdrs[p->n_hdrs - 1].value_off = p->len + 1;
        p->hdrs[p->n_hdrs - 1].value_len = 0;
        buf_append(p, "", 1);
    }
    if (p->last == EL_VALUE) {
        struct hdr_off *h = &p->hdrs[p->n_hdrs - 1];
        /* http-parser drops leading whitespace but keeps trailing OWS. */
        while (h->value_len > 0 &&
               (p->buf[h->value_off + h->value_len - 1] == ' ' ||
                p->buf[h->value_off + h->value_len - 1] == '\t'))
            h->value_len--;
        p->len = h->value_off + h->value_len;
    }
    buf_append(p, "", 1);
    p->last = EL_NONE;
}

static int
on_message_begin(http_parser *hp)
{
    return 0;
}

static int
on_url(http_parser *hp, const char *at, size_t len)
{
    struct dt_http_parser *p = hp->data;

    if (p->last != EL_URL) {
        close_element(p);
        p->target_off = p->len;
        p->target_len = 0;
        p->last = EL_URL;
    }
    p->target_len += len;
    if (p->target_len > p->limits.max_target_size)
        return fail(p, -ENAMETOOLONG, "request target too long");
    buf_append(p, at, len);
    return 0;
}

static int
on_status(http_parser *hp, const char *at, size_t len)
{
    struct dt_http_parser *p = hp->data;

    if (p->last != EL_STATUS) {
        close_element(p);
        p->reason_off = p->len;
        p->reason_len = 0;
        p->last = EL_STATUS;
    }
    p->reason_len += len;
    buf_append(p, at, len);
    return 0;
}

static int
on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct dt_http_parser *p = hp->data;

    if (p->head_ready)
        return 0; /* trailers: dropped (RFC 7230 4.1.2); http-parser bounds them (80 KiB) */
    if (p->last != EL_FIELD) {
        close_element(p);
        if (p->n_hdrs >= p->limits.max_headers)
            return fail(p, -EMSGSIZE, "too many header fields");
        if (p->n_hdrs == p->cap_hdrs) {
            p->cap_hdrs = p->cap_hdrs ? p->cap_hdrs * 2 : 16;
            p->hdrs = xreallocarray(p->hdrs, p->cap_hdrs, sizeof(*p->hdrs));
        }
        p->hdrs[p->n_hdrs++] = (struct hdr_off) { .name_off = p->len };
        p->last = EL_FIELD;
    }
    p->hdrs[p->n_hdrs - 1].name_len += len;
    if (p->hdrs[p->n_hdrs - 1].name_len > p->limits.max_header_name)
        return fail(p, -EMSGSIZE, "header name too long");
    buf_append(p, at, len);
    return 0;
}

static int
on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct dt_http_parser *p = hp->data;
    struct hdr_off *h;

    if (p->head_ready)
        return 0;
    if (p->n_hdrs == 0)
        return fail(p, -EBADMSG, "header value without a name");
    h = &p->hdrs[p->n_hdrs - 1];
    if (p->last != EL_VALUE) {
        if (p->last != EL_FIELD)
            return fail(p, -EBADMSG, "header value without a name");
        buf_append(p, "", 1);
        h->value_off = p->len;
        h->value_len = 0;
        p->last = EL_VALUE;
    }
    h->value_len += len;
    if (h->value_len > p->limits.max_header_value)
        return fail(p, -EMSGSIZE, "header value too long");
    buf_append(p, at, len);
    return 0;
}

static bool
token_eq(const char *s, size_t n, const char *tok)
{
    return strlen(tok) == n && strncasecmp(s, tok, n) == 0;
}

/* Check the framing headers http-parser lets through. Returns 0 or -errno. */
static int
check_framing(struct dt_http_parser *p)
{
    const struct dt_http_head *h = &p->head;
    size_t n_cl = 0, n_host = 0, n_te_tokens = 0;
    bool te_chunked_last = false, te = false;

    for (size_t i = 0; i < h->n_headers; i++) {
        const struct dt_http_header *x = &h->headers[i];

        if (token_eq(x->name, x->name_len, "content-length"))
            n_cl++;
        else if (token_eq(x->name, x->name_len, "host"))
            n_host++;
        else if (token_eq(x->name, x->name_len, "transfer-encoding")) {
            const char *s = x->value;
            te = true;
            /* Walk the comma-separated coding list. */
            while (*s) {
                size_t n;
                while (*s == ' ' || *s == '\t' || *s == ',')
                    s++;
                n = strcspn(s, ",");
                while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                    n--;
                if (n > 0) {
                    n_te_tokens++;
                    te_chunked_last = token_eq(s, n, "chunked");
                }
                s += strcspn(s, ",");
            }
        }
    }

    if (n_cl > 1)
        return fail(p, -EBADMSG, "duplicate Content-Length");
    if (te && n_cl > 0)
        return fail(p, -EBADMSG, "both Content-Length and Transfer-Encoding");
    if (te && h->version_major == 1 && h->version_minor == 0 && p->kind == DT_HTTP_REQUEST)
        return fail(p, -EBADMSG, "Transfer-Encoding in an HTTP/1.0 request");
    if (te && (n_te_tokens != 1 || !te_chunked_last))
        return fail(p, -EOPNOTSUPP, "unsupported Transfer-Encoding");
    if (p->kind == DT_HTTP_REQUEST) {
        if (n_host > 1)
            return fail(p, -EBADMSG, "duplicate Host");
        if (n_host == 0 && h->version_major == 1 && h->version_minor >= 1)
            return fail(p, -EBADMSG, "missing Host");
    }
    return 0;
}

/* Split the target into path and query, copied NUL-terminated after it in the buffer. Offsets
 * are returned because the buffer may move. */
static int
split_target(struct dt_http_parser *p, size_t *path_off, size_t *path_len, size_t *query_off,
             size_t *query_len)
{
    struct http_parser_url u;
    const char *t = p->buf + p->target_off;
    size_t po, pl, qo = 0, ql = 0;

    *path_off = *query_off = SIZE_MAX;
    http_parser_url_init(&u);
    if (http_parser_parse_url(t, p->target_len, p->hp.method == HTTP_CONNECT, &u) != 0)
        return fail(p, -EBADMSG, "invalid request target");
    if (p->hp.method == HTTP_CONNECT)
        return 0;
    if (u.field_set & (1 << UF_FRAGMENT))
        return fail(p, -EBADMSG, "fragment in request target");
    if (u.field_set & (1 << UF_PATH)) {
        po = u.field_data[UF_PATH].off;
        pl = u.field_data[UF_PATH].len;
    } else {
        /* absolute-form without a path ("http://host") means "/". */
        po = SIZE_MAX;
        pl = 1;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        qo = u.field_data[UF_QUERY].off;
        ql = u.field_data[UF_QUERY].len;
    }

    *path_len = pl;
    *path_off = p->len;
    if (po == SIZE_MAX)
        buf_append(p, "/", 1);
    else
        buf_append_self(p, p->target_off + po, pl);
    buf_append(p, "", 1);
    if (u.field_set & (1 << UF_QUERY)) {
        *query_len = ql;
        *query_off = p->len;
        buf_append_self(p, p->target_off + qo, ql);
        buf_append(p, "", 1);
    }
    return 0;
}

static int
on_headers_complete(http_parser *hp)
{
    struct dt_http_parser *p = hp->data;
    struct dt_http_head *h = &p->head;
    size_t path_off = SIZE_MAX, path_len = 0, query_off = SIZE_MAX, query_len = 0;
    int r;

    close_element(p);
    *h = (struct dt_http_head) {
        .version_major = hp->http_major,
        .version_minor = hp->http_minor,
        .keep_alive = http_should_keep_alive(hp),
        .upgrade = hp->upgrade,
        .chunked = hp->flags & F_CHUNKED,
    };
    if (hp->http_major != 1)
        return fail(p, -EPROTONOSUPPORT, "unsupported HTTP version");

    if (p->kind == DT_HTTP_REQUEST) {
        r = split_target(p, &path_off, &path_len, &query_off, &query_len);
        if (r < 0)
            return r;
    }

    /* The buffer no longer grows for this message: make pointers. */
    if (p->n_hdrs > p->cap_headers) {
        p->cap_headers = p->n_hdrs;
        p->headers = xreallocarray(p->headers, p->cap_headers, sizeof(*p->headers));
    }
    for (size_t i = 0; i < p->n_hdrs; i++)
        p->headers[i] = (struct dt_http_header) {
            .name = p->buf + p->hdrs[i].name_off,
            .name_len = p->hdrs[i].name_len,
            .value = p->buf + p->hdrs[i].value_off,
            .value_len = p->hdrs[i].value_len,
        };
    h->headers = p->headers;
    h->n_headers = p->n_hdrs;
    if (p->kind == DT_HTTP_REQUEST) {
        h->method = http_method_str(hp->method);
        h->target = p->buf + p->target_off;
        h->target_len = p->target_len;
        h->path = path_off == SIZE_MAX ? NULL : p->buf + path_off;
        h->path_len = path_len;
        h->query = query_off == SIZE_MAX ? NULL : p->buf + query_off;
        h->query_len = query_len;
    } else {
        h->status = hp->status_code;
        h->reason = p->reason_len > 0 ? p->buf + p->reason_off : "";
    }

    r = check_framing(p);
    if (r < 0)
        return r;
    if (hp->flags & F_CONTENTLENGTH) {
        h->has_content_length = true;
        h->content_length = hp->content_length;
        /* Refuse early so the server can answer 413 before reading the body. */
        if (h->content_length > p->limits.max_body_size)
            return fail(p, -EFBIG, "declared body too large");
    }
    p->head_ready = true;

    if (p->cbs.on_head) {
        r = p->cbs.on_head(p, p->userdata);
        if (r < 0)
            return fail(p, r, "on_head callback failed");
        if (r == DT_HTTP_SKIP_BODY)
            return 1;
    }
    return 0;
}

static int
on_body(http_parser *hp, const char *at, size_t len)
{
    struct dt_http_parser *p = hp->data;
    int r;

    if (len > p->limits.max_body_size - p->body_bytes) {
        /* Deliver up to the limit first, so the outcome does not depend on how the input was
         * split into reads. */
        size_t allowed = (size_t) (p->limits.max_body_size - p->body_bytes);
        if (allowed > 0 && p->cbs.on_body) {
            r = p->cbs.on_body(p, at, allowed, p->userdata);
            if (r < 0)
                return fail(p, r, "on_body callback failed");
        }
        p->body_bytes += allowed;
        return fail(p, -EFBIG, "body too large");
    }
    p->body_bytes += len;
    if (p->cbs.on_body) {
        r = p->cbs.on_body(p, at, len, p->userdata);
        if (r < 0)
            return fail(p, r, "on_body callback failed");
    }
    return 0;
}

static int
on_message_complete(http_parser *hp)
{
    struct dt_http_parser *p = hp->data;
    int r;

    if (p->cbs.on_complete) {
        r = p->cbs.on_complete(p, p->userdata);
        if (r < 0)
            return fail(p, r, "on_complete callback failed");
    }
    /* Stop right after this message: execute() then returns the offset just past it, which is
     * where a pipelined request or the upgraded protocol begins. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void
reset_message(struct dt_http_parser *p)
{
    p->len = 0;
    p->n_hdrs = 0;
    p->target_off = p->target_len = p->reason_off = p->reason_len = 0;
    p->last = EL_NONE;
    p->in_head = true;
    p->started = false;
    p->line_start = true;
    p->prev_cr = false;
    p->first_line = true;
    p->colon_seen = false;
    p->in_space = false;
    p->head_bytes = p->fl_word = p->field_len = p->n_lines = 0;
    p->head = (struct dt_http_head) {};
    p->head_ready = false;
    p->body_bytes = 0;
}

struct dt_http_parser *
dt_http_parser_new(enum dt_http_kind kind, const struct dt_http_limits *limits,
                   const struct dt_http_callbacks *cbs, void *userdata)
{
    struct dt_http_parser *p = xcalloc(1, sizeof(*p));

    p->kind = kind;
    if (limits)
        p->limits = *limits;
    if (p->limits.max_head_size == 0)
        p->limits.max_head_size = DEFAULT_MAX_HEAD;
    if (p->limits.max_headers == 0)
        p->limits.max_headers = DEFAULT_MAX_HEADERS;
    if (p->limits.max_target_size == 0)
        p->limits.max_target_size = DEFAULT_MAX_TARGET;
    if (p->limits.max_header_name == 0)
        p->limits.max_header_name = DEFAULT_MAX_NAME;
    if (p->limits.max_header_value == 0)
        p->limits.max_header_value = DEFAULT_MAX_VALUE;
    if (p->limits.max_body_size == 0)
        p->limits.max_body_size = DEFAULT_MAX_BODY;
    if (cbs)
        p->cbs = *cbs;
    p->userdata = userdata;
    http_parser_init(&p->hp, kind == DT_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p->hp.data = p;
    reset_message(p);
    return p;
}

void
dt_http_parser_free(struct dt_http_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p->hdrs);
    free(p->headers);
    free(p);
}

/* Scan head bytes before http-parser sees them: enforce the head limits and reject bare LF, bare
 * CR, obs-fold (a line starting with SP/HTAB) and whitespace before the colon, which
 * http-parser 2.9 accepts and which let two parsers disagree about header boundaries.
 * The limits are checked here, by byte position, rather than in the data callbacks: the
 * callbacks fire at different moments depending on how the input was split, and the outcome
 * must not. Returns how many bytes of DATA may go to http-parser: all of them, up to the end of
 * the head (then p->in_head is false), or the clean prefix before an offending byte (then
 * p->scan_error is set and reported once http-parser has seen the prefix, so that an earlier
 * syntax error wins either way). */
static size_t
scan_head(struct dt_http_parser *p, const char *data, size_t len)
{
#define SCAN_FAIL(r, msg)                                                                          \
    do {                                                                                           \
        p->scan_error = (r);                                                                       \
        p->scan_errmsg = (msg);                                                                    \
        return i;                                                                                  \
    } while (0)

    for (size_t i = 0; i < len; i++) {
        char c = data[i];

        if (p->head_bytes + 1 > p->limits.max_head_size)
            SCAN_FAIL(-EMSGSIZE, "header section too large");
        if (c == '\n') {
            if (!p->prev_cr)
                SCAN_FAIL(-EBADMSG, "bare LF in header section");
            p->head_bytes++;
            p->prev_cr = false;
            if (!p->started)
                continue; /* empty lines before the start line are allowed (RFC 7230 3.5) */
            if (p->line_start) {
                p->in_head = false;
                return i + 1;
            }
            p->line_start = true;
            p->first_line = false;
            p->colon_seen = false;
            p->field_len = 0;
            continue;
        }
        if (c == '\r') {
            if (p->prev_cr)
                SCAN_FAIL(-EBADMSG, "CR not followed by LF");
            p->head_bytes++;
            p->prev_cr = true;
            continue;
        }
        if (p->prev_cr)
            SCAN_FAIL(-EBADMSG, "CR not followed by LF");
        if (p->first_line) {
            /* Request line: method SP target SP version. Count the target's bytes. */
            if (c == ' ') {
                p->in_space = true;
            } else {
                if (p->in_space || !p->started)
                    p->fl_word++;
                p->in_space = false;
                if (p->kind == DT_HTTP_REQUEST && p->fl_word == 2 &&
                    ++p->field_len > p->limits.max_target_size)
                    SCAN_FAIL(-ENAMETOOLONG, "request target too long");
            }
        } else {
            if (p->line_start) {
                if (c == ' ' || c == '\t')
                    SCAN_FAIL(-EBADMSG, "obsolete line folding");
                if (p->n_lines + 1 > p->limits.max_headers)
                    SCAN_FAIL(-EMSGSIZE, "too many header fields");
                p->n_lines++;
            }
            if (!p->colon_seen) {
                if (c == ':') {
                    p->colon_seen = true;
                    p->field_len = 0;
                } else if (c == ' ' || c == '\t') {
                    /* "Name : v" is accepted by http-parser 2.9 (RFC 7230 3.2.4 forbids it). */
                    SCAN_FAIL(-EBADMSG, "whitespace in header name");
                } else if (++p->field_len > p->limits.max_header_name) {
                    SCAN_FAIL(-EMSGSIZE, "header name too long");
                }
            } else if (++p->field_len > p->limits.max_header_value) {
                SCAN_FAIL(-EMSGSIZE, "header value too long");
            }
        }
        p->head_bytes++;
        p->started = true;
        p->line_start = false;
    }
    return len;
#undef SCAN_FAIL
}

static int
map_hpe(struct dt_http_parser *p)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);

    if (p->cb_error < 0)
        return p->cb_error;
    p->errmsg = http_errno_description(e);
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        return -EMSGSIZE;
    case HPE_INVALID_TRANSFER_ENCODING:
        return -EOPNOTSUPP;
    default:
        return -EBADMSG;
    }
}

int
dt_http_parser_feed(struct dt_http_parser *p, const void *data, size_t len, size_t *ret_consumed)
{
    const char *d = data;
    size_t off = 0;

    if (ret_consumed)
        *ret_consumed = 0;
    if (p->state < 0)
        return p->state;
    if (p->state != ST_PARSING)
        return -EBUSY;

    while (off < len) {
        size_t chunk = len - off, n;

        if (p->in_head)
            chunk = scan_head(p, d + off, len - off);
        n = chunk > 0 ? http_parser_execute(&p->hp, &settings, d + off, chunk) : 0;
        if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
            http_parser_pause(&p->hp, 0);
            off += n;
            if (ret_consumed)
                *ret_consumed = off;
            p->state = p->hp.upgrade ? ST_UPGRADE : ST_DONE;
            return p->state;
        }
        if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK)
            return (p->state = map_hpe(p));
        if (n != chunk) {
            p->errmsg = "parser stopped early";
            return (p->state = -EBADMSG);
        }
        off += n;
        if (p->scan_error < 0) {
            p->errmsg = p->scan_errmsg;
            if (ret_consumed)
                *ret_consumed = off;
            return (p->state = p->scan_error);
        }
    }
    if (ret_consumed)
        *ret_consumed = off;
    return DT_HTTP_FEED_MORE;
}

int
dt_http_parser_finish(struct dt_http_parser *p)
{
    if (p->state < 0)
        return p->state;
    if (p->state != ST_PARSING)
        return -EBUSY;
    if (!p->started)
        return 0;
    (void) http_parser_execute(&p->hp, &settings, NULL, 0);
    if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
        http_parser_pause(&p->hp, 0);
        return (p->state = ST_DONE);
    }
    if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK)
        return (p->state = map_hpe(p));
    p->errmsg = "message truncated";
    return (p->state = -EBADMSG);
}

void
dt_http_parser_next(struct dt_http_parser *p)
{
    if (p->state < 0)
        return; /* an error is final */
    p->state = ST_PARSING;
    p->hp.upgrade = 0;
    reset_message(p);
}

const struct dt_http_head *
dt_http_parser_head(const struct dt_http_parser *p)
{
    return p->head_ready ? &p->head : NULL;
}

uint64_t
dt_http_parser_body_bytes(const struct dt_http_parser *p)
{
    return p->body_bytes;
}

const char *
dt_http_parser_errmsg(const struct dt_http_parser *p)
{
    return p->errmsg ? p->errmsg : "";
}

const char *
dt_http_head_get_next(const struct dt_http_head *h, const char *name, size_t *idx)
{
    size_t n = strlen(name);

    for (; *idx < h->n_headers; (*idx)++) {
        const struct dt_http_header *x = &h->headers[*idx];
        if (x->name_len == n && strcasecmp(x->name, name) == 0)
            return h->headers[(*idx)++].value;
    }
    return NULL;
}

const char *
dt_http_head_get(const struct dt_http_head *h, const char *name)
{
    size_t idx = 0;

    return dt_http_head_get_next(h, name, &idx);
}

bool
dt_http_head_has_token(const struct dt_http_head *h, const char *name, const char *token)
{
    size_t idx = 0;
    const char *v;

    while ((v = dt_http_head_get_next(h, name, &idx))) {
        while (*v) {
            size_t n;
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            n = strcspn(v, ",");
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n > 0 && token_eq(v, n, token))
                return true;
            v += strcspn(v, ",");
        }
    }
    return false;
}
