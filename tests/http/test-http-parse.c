/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the HTTP/1.1 parser layer (limits, smuggling, pipelining, upgrade, split feeds)
 * and the response formatting helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/testlib.h"
#include "dt/http.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* Everything observed while parsing, rendered as text so two runs can be compared. */
struct log {
    char *s;
    size_t len;
};

static void
log_add(struct log *l, const char *data, size_t n)
{
    l->s = xrealloc(l->s, l->len + n + 1);
    memcpy(l->s + l->len, data, n);
    l->len += n;
    l->s[l->len] = '\0';
}

static void
log_str(struct log *l, const char *s)
{
    log_add(l, s, strlen(s));
}

static int
cb_head(struct dt_http_parser *p, void *userdata)
{
    const struct dt_http_head *h = dt_http_parser_head(p);
    struct log *l = userdata;
    char tmp[256];

    snprintf(tmp, sizeof(tmp), "HEAD %s %s path=%s query=%s status=%d reason=%s %u.%u ka=%d up=%d "
             "cl=%d/%llu ch=%d\n",
             h->method ? h->method : "-", h->target ? h->target : "-", h->path ? h->path : "-",
             h->query ? h->query : "-", h->status, h->reason ? h->reason : "-", h->version_major,
             h->version_minor, h->keep_alive, h->upgrade, h->has_content_length,
             (unsigned long long) h->content_length, h->chunked);
    log_str(l, tmp);
    for (size_t i = 0; i < h->n_headers; i++) {
        log_str(l, "  ");
        log_str(l, h->headers[i].name);
        log_str(l, ": ");
        log_str(l, h->headers[i].value);
        log_str(l, "\n");
    }
    return 0;
}

static int
cb_body(struct dt_http_parser *p, const char *data, size_t len, void *userdata)
{
    log_add(userdata, data, len);
    return 0;
}

static int
cb_complete(struct dt_http_parser *p, void *userdata)
{
    log_str(userdata, "|END\n");
    return 0;
}

static const struct dt_http_callbacks cbs = { cb_head, cb_body, cb_complete };

/* Parse IN (LEN bytes) feeding STEP bytes at a time (0 = all at once), going on after each
 * complete message. Returns the last feed result; *out gets the event log (caller frees). */
static int
run(enum dt_http_kind kind, const struct dt_http_limits *lim, const char *in, size_t len,
    size_t step, char **out, size_t *upgrade_off)
{
    struct log l = {};
    struct dt_http_parser *p = dt_http_parser_new(kind, lim, &cbs, &l);
    size_t off = 0;
    int r = 0;

    log_str(&l, "");
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step, used;
        r = dt_http_parser_feed(p, in + off, n, &used);
        assert_true(used <= n);
        off += used;
        if (r < 0) {
            char tmp[64];
            snprintf(tmp, sizeof(tmp), "ERR %d\n", r);
            log_str(&l, tmp);
            break;
        }
        if (r == DT_HTTP_FEED_UPGRADE) {
            if (upgrade_off)
                *upgrade_off = off;
            log_str(&l, "UPGRADE\n");
            break;
        }
        if (r == DT_HTTP_FEED_DONE) {
            log_str(&l, "DONE\n");
            dt_http_parser_next(p);
        }
    }
    if (r >= 0 && r != DT_HTTP_FEED_UPGRADE) {
        int f = dt_http_parser_finish(p);
        if (f != 0) {
            char tmp[64];
            snprintf(tmp, sizeof(tmp), "FINISH %d\n", f);
            log_str(&l, tmp);
            r = f;
        }
    }
    dt_http_parser_free(p);
    *out = l.s;
    return r;
}

/* Run whole, byte-by-byte and in 7-byte pieces; all must agree. Returns the result. */
static int
run_all(enum dt_http_kind kind, const struct dt_http_limits *lim, const char *in, char **out)
{
    size_t len = strlen(in);
    char *a, *b, *c;
    int ra = run(kind, lim, in, len, 0, &a, NULL);
    int rb = run(kind, lim, in, len, 1, &b, NULL);
    int rc = run(kind, lim, in, len, 7, &c, NULL);

    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_int_equal(ra, rb);
    assert_int_equal(ra, rc);
    free(b);
    free(c);
    *out = a;
    return ra;
}

static int
req_status(const char *in)
{
    char *out;
    int r = run_all(DT_HTTP_REQUEST, NULL, in, &out);
    free(out);
    return r < 0 ? dt_http_error_status(r) : 200;
}

static void
test_simple_get(void **state)
{
    char *out;
    int r = run_all(DT_HTTP_REQUEST, NULL,
                    "GET /files/a%20b?path=%2Ftmp&x=1 HTTP/1.1\r\nHost: x\r\n"
                    "Accept: */*\r\nX-Trail:  sp  \r\nX-Empty:\r\n\r\n", &out);
    assert_int_equal(r, DT_HTTP_FEED_DONE);
    assert_string_equal(out, "HEAD GET /files/a%20b?path=%2Ftmp&x=1 path=/files/a%20b "
                             "query=path=%2Ftmp&x=1 status=0 reason=- 1.1 ka=1 up=0 cl=0/0 ch=0\n"
                             "  Host: x\n  Accept: */*\n  X-Trail: sp\n  X-Empty: \n|END\nDONE\n");
    free(out);
}

static void
test_head_lookup(void **state)
{
    const char *in = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n"
                     "Connection: keep-alive, Upgrade\r\n\r\n";
    struct dt_http_parser *p = dt_http_parser_new(DT_HTTP_REQUEST, NULL, NULL, NULL);
    const struct dt_http_head *h;
    size_t idx = 0, used;

    assert_null(dt_http_parser_head(p));
    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), &used), DT_HTTP_FEED_DONE);
    assert_int_equal(used, strlen(in));
    h = dt_http_parser_head(p);
    assert_non_null(h);
    assert_string_equal(dt_http_head_get(h, "HOST"), "h");
    assert_string_equal(dt_http_head_get_next(h, "X-a", &idx), "1");
    assert_string_equal(dt_http_head_get_next(h, "X-a", &idx), "2");
    assert_null(dt_http_head_get_next(h, "X-a", &idx));
    assert_null(dt_http_head_get(h, "X"));
    assert_true(dt_http_head_has_token(h, "connection", "upgrade"));
    assert_true(dt_http_head_has_token(h, "connection", "Keep-Alive"));
    assert_false(dt_http_head_has_token(h, "connection", "close"));
    /* Busy until next(). */
    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), &used), -EBUSY);
    dt_http_parser_next(p);
    assert_null(dt_http_parser_head(p));
    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), &used), DT_HTTP_FEED_DONE);
    dt_http_parser_free(p);
}

static void
test_post_content_length(void **state)
{
    char *out;
    int r = run_all(DT_HTTP_REQUEST, NULL,
                    "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", &out);
    assert_int_equal(r, DT_HTTP_FEED_DONE);
    assert_string_equal(out, "HEAD POST /x path=/x query=- status=0 reason=- 1.1 ka=1 up=0 "
                             "cl=1/11 ch=0\n  Host: h\n  Content-Length: 11\nhello world|END\n"
                             "DONE\n");
    free(out);
}

static void
test_post_chunked(void **state)
{
    char *out;
    int r = run_all(DT_HTTP_REQUEST, NULL,
                    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5;ext=1;foo=\"bar\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n"
                    "X-Other: 1\r\n\r\n", &out);
    assert_int_equal(r, DT_HTTP_FEED_DONE);
    assert_string_equal(out, "HEAD POST /x path=/x query=- status=0 reason=- 1.1 ka=1 up=0 "
                             "cl=0/0 ch=1\n  Host: h\n  Transfer-Encoding: chunked\n"
                             "hello world|END\nDONE\n");
    free(out);
}

static void
test_pipelined(void **state)
{
    char *out;
    int r = run_all(DT_HTTP_REQUEST, NULL,
                    "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
                    "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nhi\r\n0\r\n\r\n"
                    "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &out);
    assert_int_equal(r, DT_HTTP_FEED_DONE);
    assert_non_null(strstr(out, "HEAD GET /a "));
    assert_non_null(strstr(out, "\nok|END\nDONE\n"));
    assert_non_null(strstr(out, "\nhi|END\nDONE\n"));
    assert_non_null(strstr(out, "HEAD GET /d path=/d query=- status=0 reason=- 1.1 ka=0"));
    free(out);
}

static void
test_keep_alive(void **state)
{
    char *out;

    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL, "GET / HTTP/1.0\r\n\r\n", &out), 1);
    assert_non_null(strstr(out, " 1.0 ka=0 "));
    free(out);
    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL,
                             "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &out), 1);
    assert_non_null(strstr(out, " 1.0 ka=1 "));
    free(out);
    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &out), 1);
    assert_non_null(strstr(out, " 1.1 ka=1 "));
    free(out);
    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL,
                             "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &out), 1);
    assert_non_null(strstr(out, " 1.1 ka=0 "));
    free(out);
}

static void
test_upgrade(void **state)
{
    const char *in = "GET /pty HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n";
    char buf[512], *out;
    size_t off = 0, hl = strlen(in);

    snprintf(buf, sizeof(buf), "%s\x82\x03" "abc", in);
    for (size_t step = 0; step < 3; step++) {
        assert_int_equal(run(DT_HTTP_REQUEST, NULL, buf, hl + 5, step, &out, &off),
                         DT_HTTP_FEED_UPGRADE);
        assert_int_equal(off, hl);
        assert_non_null(strstr(out, " up=1 "));
        free(out);
    }
    /* CONNECT stops after the head too. */
    assert_int_equal(run(DT_HTTP_REQUEST, NULL, "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\nxx",
                         41, 0, &out, &off), DT_HTTP_FEED_UPGRADE);
    assert_int_equal(off, 39);
    assert_non_null(strstr(out, "HEAD CONNECT h:443 path=- "));
    free(out);
}

static void
test_smuggling(void **state)
{
    /* Content-Length and chunked together. */
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                "Content-Length: 3\r\n\r\n0\r\n\r\n"), 400);
    /* Duplicate Content-Length, differing and equal. */
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Content-Length: 4\r\n\r\nabcd"), 400);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Content-Length: 3\r\n\r\nabc"), 400);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc"),
                     400);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), 400);
    /* obs-fold and whitespace before the colon. */
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: h\r\nX-A : a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: h\r\n X-A: a\r\n\r\n"), 400);
    /* Bare LF, bare CR. */
    assert_int_equal(req_status("GET / HTTP/1.1\nHost: h\n\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), 400);
    /* Transfer-Encoding variants. */
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
                     501);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked"
                                "\r\n\r\n0\r\n\r\n"), 501);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 501);
    assert_int_equal(req_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                     400);
    /* Host. */
    assert_int_equal(req_status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    /* Garbage, bad chunk size, bad version. */
    assert_int_equal(req_status("GET\r\n\r\n"), 400);
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                "\r\nzz\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    /* Truncated message at EOF. */
    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost"), 400);
}

static void
test_limits(void **state)
{
    struct dt_http_limits lim = { .max_body_size = 4 };
    char *big, *out;
    size_t n;

    /* Declared body too large: refused at the head. */
    assert_int_equal(run_all(DT_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\nHost: h\r\n"
                             "Content-Length: 5\r\n\r\nabcde", &out), -EFBIG);
    assert_null(strstr(out, "HEAD"));
    free(out);
    assert_int_equal(run_all(DT_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\nHost: h\r\n"
                             "Content-Length: 4\r\n\r\nabcd", &out), 1);
    free(out);
    /* Streamed chunked body too large. */
    assert_int_equal(run_all(DT_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\nHost: h\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                             &out), -EFBIG);
    assert_int_equal(dt_http_error_status(-EFBIG), 413);
    free(out);

    /* Head over 64 KiB -> 431. */
    big = xmalloc(80 * 1024);
    n = (size_t) snprintf(big, 100, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(big + n, 'a', 70 * 1024);
    memcpy(big + n + 70 * 1024, "\r\n\r\n", 5);
    assert_int_equal(req_status(big), 431);
    /* One value over 16 KiB but head under 64 KiB -> 431. */
    memcpy(big + n + 17 * 1024, "\r\n\r\n", 5);
    assert_int_equal(req_status(big), 431);
    memcpy(big + n + 15 * 1024, "\r\n\r\n", 5);
    assert_int_equal(req_status(big), 200);
    /* Target over 8 KiB -> 414. */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 9000);
    memcpy(big + 9005, " HTTP/1.1\r\nHost: h\r\n\r\n", 23);
    assert_int_equal(req_status(big), 414);
    /* Header name too long -> 431. */
    n = (size_t) snprintf(big, 100, "GET / HTTP/1.1\r\nHost: h\r\n");
    memset(big + n, 'n', 300);
    memcpy(big + n + 300, ": v\r\n\r\n", 8);
    assert_int_equal(req_status(big), 431);
    /* 100 headers fine, 101 -> 431. */
    n = (size_t) snprintf(big, 100, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 99; i++)
        n += (size_t) snprintf(big + n, 100, "X-%d: v\r\n", i);
    memcpy(big + n, "\r\n", 3);
    assert_int_equal(req_status(big), 200);
    memcpy(big + n, "Y: 1\r\n\r\n", 9);
    assert_int_equal(req_status(big), 431);
    free(big);

    /* Unlimited body for proxies. */
    lim = (struct dt_http_limits) { .max_body_size = DT_HTTP_UNLIMITED };
    assert_int_equal(run_all(DT_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\nHost: h\r\n"
                             "Content-Length: 99999999999\r\n\r\nabc", &out), -EBADMSG);
    /* Accepted and streamed; only the EOF in the middle of the body is an error. */
    assert_non_null(strstr(out, "cl=1/99999999999 ch=0\n  Host: h\n  Content-Length: 99999999999\n"
                                "abcFINISH -74\n"));
    free(out);
}

static void
test_big_streamed_body(void **state)
{
    /* 1 GiB declared, fed in 64 KiB pieces from one buffer: never buffered. */
    struct dt_http_limits lim = { .max_body_size = DT_HTTP_UNLIMITED };
    struct log l = {};
    struct dt_http_parser *p = dt_http_parser_new(DT_HTTP_REQUEST, &lim, NULL, &l);
    const char *head = "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 1073741824\r\n\r\n";
    char *piece = xcalloc(1, 65536);
    size_t used;
    int r = 0;

    assert_int_equal(dt_http_parser_feed(p, head, strlen(head), &used), 0);
    for (int i = 0; i < 16384; i++) {
        r = dt_http_parser_feed(p, piece, 65536, &used);
        if (r != 0)
            break;
    }
    assert_int_equal(r, DT_HTTP_FEED_DONE);
    assert_int_equal(used, 65536);
    assert_int_equal(dt_http_parser_body_bytes(p), 1073741824ULL);
    free(piece);
    dt_http_parser_free(p);
}

static int
cb_fail(struct dt_http_parser *p, const char *data, size_t len, void *userdata)
{
    return -ENOSPC;
}

static void
test_callback_error(void **state)
{
    const struct dt_http_callbacks c = { .on_body = cb_fail };
    struct dt_http_parser *p = dt_http_parser_new(DT_HTTP_REQUEST, NULL, &c, NULL);
    const char *in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx";

    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), NULL), -ENOSPC);
    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), NULL), -ENOSPC);
    assert_string_not_equal(dt_http_parser_errmsg(p), "");
    dt_http_parser_free(p);
}

static void
test_response(void **state)
{
    char *out;

    assert_int_equal(run_all(DT_HTTP_RESPONSE, NULL,
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
                             "HTTP/1.1 204 No Content\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
                             "HTTP/1.0 200 OK\r\n\r\nuntil eof", &out), DT_HTTP_FEED_DONE);
    assert_non_null(strstr(out, "status=200 reason=OK 1.1"));
    assert_non_null(strstr(out, "status=204 reason=No Content"));
    assert_non_null(strstr(out, "\nuntil eof|END\n"));
    free(out);
    assert_int_equal(run_all(DT_HTTP_RESPONSE, NULL, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81", &out),
                     DT_HTTP_FEED_UPGRADE);
    free(out);
}

static int
cb_skip(struct dt_http_parser *p, void *userdata)
{
    return DT_HTTP_SKIP_BODY;
}

static void
test_response_to_head(void **state)
{
    /* The answer to HEAD declares a length but has no body: the next response follows. */
    const struct dt_http_callbacks c = { .on_head = cb_skip };
    struct dt_http_parser *p = dt_http_parser_new(DT_HTTP_RESPONSE, NULL, &c, NULL);
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n";
    size_t used;

    assert_int_equal(dt_http_parser_feed(p, in, strlen(in), &used), DT_HTTP_FEED_DONE);
    assert_int_equal(used, 38);
    assert_int_equal(dt_http_parser_head(p)->content_length, 5);
    dt_http_parser_next(p);
    assert_int_equal(dt_http_parser_feed(p, in + used, strlen(in) - used, &used), 0);
    assert_int_equal(dt_http_parser_finish(p), -EBADMSG);
    dt_http_parser_free(p);
}

static void
test_leading_crlf(void **state)
{
    char *out;

    /* RFC 7230 3.5: empty lines before a request line are ignored. */
    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                             &out), DT_HTTP_FEED_DONE);
    assert_non_null(strstr(out, "HEAD GET / path=/ "));
    free(out);
    /* Idle connection closed between messages is not an error. */
    assert_int_equal(run_all(DT_HTTP_REQUEST, NULL, "\r\n", &out), 0);
    free(out);
}

static void
test_percent_decode(void **state)
{
    char out[64];
    size_t n;

    assert_int_equal(dt_http_percent_decode("/a%20b/%2fc%C3%A9", 17, out, &n, false), 0);
    assert_string_equal(out, "/a b//c\xc3\xa9");
    assert_int_equal(n, 9);
    assert_int_equal(dt_http_percent_decode("a+b", 3, out, &n, false), 0);
    assert_string_equal(out, "a+b");
    assert_int_equal(dt_http_percent_decode("a+b%2B", 6, out, &n, true), 0);
    assert_string_equal(out, "a b+");
    assert_int_equal(dt_http_percent_decode("/a%00b", 6, out, &n, false), -EINVAL);
    assert_int_equal(dt_http_percent_decode("/a%0", 4, out, &n, false), -EINVAL);
    assert_int_equal(dt_http_percent_decode("/a%", 3, out, &n, false), -EINVAL);
    assert_int_equal(dt_http_percent_decode("/a%zz", 5, out, &n, false), -EINVAL);
    assert_int_equal(dt_http_percent_decode("/a\0b", 4, out, &n, false), -EINVAL);
    assert_int_equal(dt_http_percent_decode("", 0, out, &n, false), 0);
    assert_int_equal(n, 0);
}

static void
test_error_status(void **state)
{
    assert_int_equal(dt_http_error_status(-ENOENT), 404);
    assert_int_equal(dt_http_error_status(-EEXIST), 409);
    assert_int_equal(dt_http_error_status(-EBUSY), 409);
    assert_int_equal(dt_http_error_status(-EINVAL), 400);
    assert_int_equal(dt_http_error_status(EINVAL), 400);
    assert_int_equal(dt_http_error_status(-EPERM), 403);
    assert_int_equal(dt_http_error_status(-EACCES), 403);
    assert_int_equal(dt_http_error_status(-ETIMEDOUT), 504);
    assert_int_equal(dt_http_error_status(-E2BIG), 413);
    assert_int_equal(dt_http_error_status(-EFBIG), 413);
    assert_int_equal(dt_http_error_status(-ENAMETOOLONG), 414);
    assert_int_equal(dt_http_error_status(-EMSGSIZE), 431);
    assert_int_equal(dt_http_error_status(-EBADMSG), 400);
    assert_int_equal(dt_http_error_status(-EOPNOTSUPP), 501);
    assert_int_equal(dt_http_error_status(-EPROTONOSUPPORT), 505);
    assert_int_equal(dt_http_error_status(-EIO), 500);
    assert_string_equal(dt_http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(dt_http_status_text(299), "Unknown");
}

static void
test_format(void **state)
{
    char date[DT_HTTP_DATE_SIZE], buf[256], small[8], chunk[DT_HTTP_CHUNK_HEADER_MAX];
    const char *expect = "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                         "Content-Length: 0\r\n\r\n";
    struct dt_http_header h[2] = {
        { .name = "Date", .value = date },
        { .name = "Content-Length", .value = "0" },
    };
    struct dt_http_header bad = { .name = "X", .value = "a\r\nSet-Cookie: x" };
    struct dt_http_header badname = { .name = "X Y", .value = "a" };

    assert_int_equal(dt_http_format_date(784111777, date), 0);
    assert_string_equal(date, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(dt_http_format_date(0, date), 0);
    assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_int_equal(dt_http_format_date(784111777, date), 0);

    assert_int_equal(dt_http_format_response_head(buf, sizeof(buf), 404, h, 2),
                     (ssize_t) strlen(expect));
    assert_string_equal(buf, expect);
    assert_int_equal(dt_http_format_response_head(small, sizeof(small), 404, h, 2),
                     (ssize_t) strlen(expect));
    assert_string_equal(small, "HTTP/1.");
    assert_int_equal(dt_http_format_response_head(buf, sizeof(buf), 200, &bad, 1), -EINVAL);
    assert_int_equal(dt_http_format_response_head(buf, sizeof(buf), 200, &badname, 1), -EINVAL);
    assert_int_equal(dt_http_format_response_head(buf, sizeof(buf), 99, NULL, 0), -EINVAL);
    assert_int_equal(dt_http_format_response_head(buf, sizeof(buf), 200, NULL, 0), 19);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\n\r\n");

    assert_int_equal(dt_http_chunk_header(chunk, 255), 4);
    assert_string_equal(chunk, "ff\r\n");
    assert_int_equal(dt_http_chunk_header(chunk, SIZE_MAX), 18);
    assert_int_equal(dt_http_chunk_header(chunk, 0), -EINVAL);

    /* Round trip: what we write, we parse. */
    {
        char msg[256], *out;
        char c1[DT_HTTP_CHUNK_HEADER_MAX];
        struct dt_http_header te = { .name = "Transfer-Encoding", .value = "chunked" };
        ssize_t n = dt_http_format_response_head(msg, sizeof(msg), 200, &te, 1);
        dt_http_chunk_header(c1, 5);
        snprintf(msg + n, sizeof(msg) - (size_t) n, "%shello%s%s", c1, DT_HTTP_CHUNK_END,
                 DT_HTTP_CHUNK_LAST);
        assert_int_equal(run_all(DT_HTTP_RESPONSE, NULL, msg, &out), DT_HTTP_FEED_DONE);
        assert_non_null(strstr(out, "\nhello|END\n"));
        free(out);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_head_lookup),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_post_chunked),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_big_streamed_body),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_response_to_head),
        cmocka_unit_test(test_leading_crlf),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
