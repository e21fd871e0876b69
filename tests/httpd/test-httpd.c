/* SPDX-License-Identifier: Apache-2.0 */
/* The libuv HTTP server over a real unix socket: the server runs on this thread's loop, a client
 * thread speaks raw HTTP/WebSocket bytes and checks what comes back. */
#include <ctype.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dt/httpd.h"
#include "dt/xalloc.h"
#include "testlib.h"

static char sock_path[256];
static uv_loop_t loop;
static struct dt_httpd *srv;
static uv_async_t stop_async;
static int closes_completed, closes_aborted;

/* ---- server side ---- */

struct upload {
    size_t bytes;
    unsigned pieces;
};

static void
on_req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    if (completed)
        closes_completed++;
    else
        closes_aborted++;
    free(ud);
}

static void
on_echo_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    if (error < 0)
        return;
    dt_httpd_reply(req, 200, "text/plain", data, len);
}

static void
on_stream_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct upload *u = ud;
    char buf[64];

    if (error < 0)
        return;
    if (data) {
        u->bytes += len;
        u->pieces++;
        return;
    }
    snprintf(buf, sizeof(buf), "%zu", u->bytes);
    dt_httpd_reply(req, 200, "text/plain", buf, strlen(buf));
}

static void
ws_message(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len, void *ud)
{
    if (len == 5 && memcmp(data, "close", 5) == 0) {
        dt_httpd_ws_close(ws, 4008, "bye");
        return;
    }
    dt_httpd_ws_send(ws, op, data, len);
}

static void
ws_closed(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
}

static const struct dt_httpd_ws_callbacks ws_cbs = {
    .on_message = ws_message,
    .on_close = ws_closed,
};

/* A tunnel: after our own 101, echo every byte back upper-cased. */
static void
raw_data(struct dt_httpd_raw *raw, const char *data, size_t len, void *ud)
{
    char buf[4096] = { 0 };

    if (!data || len == 0)
        return;
    for (size_t i = 0; i < len && i < sizeof(buf); i++)
        buf[i] = (char) toupper((unsigned char) data[i]);
    dt_httpd_raw_write(raw, buf, len < sizeof(buf) ? len : sizeof(buf));
    if (len >= 4 && memcmp(data + len - 4, "quit", 4) == 0)
        dt_httpd_raw_close(raw);
}

static int raw_closes;

static void
raw_closed(struct dt_httpd_raw *raw, void *ud)
{
    raw_closes++;
}

static const struct dt_httpd_raw_callbacks raw_cbs = {
    .on_data = raw_data,
    .on_close = raw_closed,
};

static void
handler(struct dt_httpd_req *req, void *ud)
{
    size_t n;
    const char *const *seg = dt_httpd_req_segments(req, &n);

    dt_httpd_req_set_close_cb(req, on_req_close, NULL);
    if (n == 1 && strcmp(seg[0], "hello") == 0) {
        json_t *j = json_pack("{s:s}", "hello", "world");
        dt_httpd_reply_json(req, 200, j);
    } else if (n == 2 && strcmp(seg[0], "seg") == 0) {
        const char *q = dt_httpd_req_query(req, "q");
        size_t idx = 0;
        int count = 0;
        char buf[512];

        while (dt_httpd_req_query_next(req, "r", &idx))
            count++;
        snprintf(buf, sizeof(buf), "%s|%s|%d", seg[1], q ? q : "(null)", count);
        dt_httpd_reply(req, 200, "text/plain", buf, strlen(buf));
    } else if (n == 1 && strcmp(seg[0], "echo") == 0) {
        dt_httpd_req_read_body(req, 1024, on_echo_body, NULL);
    } else if (n == 1 && strcmp(seg[0], "upload") == 0) {
        struct upload *u = xcalloc(1, sizeof(*u));
        dt_httpd_req_set_close_cb(req, on_req_close, u);
        dt_httpd_req_stream_body(req, on_stream_body, u);
    } else if (n == 1 && strcmp(seg[0], "chunked") == 0) {
        dt_httpd_start(req, 200, NULL, 0, -1);
        dt_httpd_write(req, "abc", 3);
        dt_httpd_write(req, "defgh", 5);
        dt_httpd_end(req);
    } else if (n == 1 && strcmp(seg[0], "tunnel") == 0) {
        static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                                   "Connection: Upgrade\r\n\r\n";
        struct dt_httpd_raw *raw;
        if (dt_httpd_req_take_raw(req, &raw_cbs, NULL, &raw) == 0)
            dt_httpd_raw_write(raw, head, sizeof(head) - 1);
        else
            dt_httpd_reply_error(req, 400, NULL, NULL, "not an upgrade");
    } else if (n == 1 && strcmp(seg[0], "ws") == 0 && dt_httpd_req_is_websocket(req)) {
        struct dt_httpd_ws *ws;
        dt_httpd_ws_accept(req, dt_httpd_req_query(req, "proto"), &ws_cbs, NULL, &ws);
    } else
        dt_httpd_reply_error(req, 404, "DAYTONA_DAEMON", "NOT_FOUND", "no route for %s",
                             dt_httpd_req_head(req)->path);
}

static void
on_stop(uv_async_t *a)
{
    dt_httpd_free(srv);
    srv = NULL;
    uv_close((uv_handle_t *) a, NULL);
}

/* ---- client side ---- */
/* cmocka's assertions longjmp and must stay on the main thread: the client thread exits. */
#define CHECK_TRUE(x)                                                                              \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b)     CHECK_TRUE((long long) (a) == (long long) (b))
#define CHECK_MEM(a, b, n) CHECK_TRUE(memcmp((a), (b), (n)) == 0)


static int
client_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    CHECK_EQ(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    return fd;
}

static void
send_str(int fd, const char *s)
{
    CHECK_EQ(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

/* Read exactly one response with a Content-Length body (or until EOF without one): the head byte
 * by byte, so a pipelined response behind it stays in the socket for the next call. */
static char *
read_response(int fd)
{
    size_t cap = 1 << 16, len = 0, want = 0;
    char *buf = xmalloc(cap);
    char *cl;

    for (;;) {
        ssize_t r = read(fd, buf + len, 1);
        if (r <= 0) {
            buf[len] = 0;
            return buf;
        }
        len++;
        buf[len] = 0;
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            break;
        CHECK_TRUE(len + 2 < cap);
    }
    cl = strcasestr(buf, "Content-Length: ");
    if (cl)
        want = strtoul(cl + 16, NULL, 10);
    else
        want = cap - len - 1;
    if (len + want + 1 > cap)
        buf = xrealloc(buf, cap = len + want + 1);
    while (want > 0) {
        ssize_t r = read(fd, buf + len, want);
        if (r <= 0)
            break;
        len += (size_t) r;
        want -= (size_t) r;
        if (!cl)
            break;
    }
    buf[len] = 0;
    return buf;
}

static char *
read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    ssize_t r;

    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t) r;
        if (len + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
    }
    buf[len] = 0;
    return buf;
}

static void
check_basics(void)
{
    int fd = client_connect();
    _cleanup_free_ char *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL;

    /* keep-alive: several requests on one connection, one of them pipelined */
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    r1 = read_response(fd);
    CHECK_TRUE(strstr(r1, "HTTP/1.1 200 OK\r\n"));
    CHECK_TRUE(strstr(r1, "Connection: keep-alive"));
    CHECK_TRUE(strstr(r1, "\r\n\r\n{\"hello\":\"world\"}"));
    send_str(fd, "GET /seg/a%20b%2Fc?q=x+y%21&r=1&r=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    r2 = read_response(fd);
    CHECK_TRUE(strstr(r2, "\r\n\r\na b/c|x y!|2"));
    r3 = read_response(fd);
    CHECK_TRUE(strstr(r3, "\r\n\r\nhello"));
    /* an error in the SDK's envelope */
    send_str(fd, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    r4 = read_response(fd);
    CHECK_TRUE(strstr(r4, "HTTP/1.1 404 Not Found"));
    CHECK_TRUE(strstr(r4, "\"code\":\"NOT_FOUND\""));
    CHECK_TRUE(strstr(r4, "\"source\":\"DAYTONA_DAEMON\""));
    CHECK_TRUE(strstr(r4, "\"statusCode\":404"));
    /* body over the handler's cap: 413 and the connection closes */
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    r5 = read_all(fd);
    CHECK_TRUE(strstr(r5, "HTTP/1.1 413"));
    CHECK_TRUE(strstr(r5, "Connection: close"));
    close(fd);
}

static void
check_streams(void)
{
    int fd = client_connect();
    _cleanup_free_ char *r1 = NULL, *r2 = NULL, *r3 = NULL;
    char chunk[4096 + 16];
    size_t total = 0;

    /* a chunked upload of 4 MiB, counted piece by piece on the server */
    send_str(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 1024; i++) {
        int h = snprintf(chunk, sizeof(chunk), "1000\r\n");
        memset(chunk + h, 'z', 4096);
        memcpy(chunk + h + 4096, "\r\n", 2);
        CHECK_EQ(write(fd, chunk, (size_t) h + 4098), h + 4098);
        total += 4096;
    }
    send_str(fd, "0\r\n\r\n");
    r1 = read_response(fd);
    CHECK_TRUE(strstr(r1, "\r\n\r\n4194304"));
    (void) total;
    /* a chunked response */
    send_str(fd, "GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    r2 = read_all(fd);
    CHECK_TRUE(strstr(r2, "Transfer-Encoding: chunked"));
    CHECK_TRUE(strstr(r2, "\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"));
    close(fd);
    /* a malformed request: 400, closed */
    fd = client_connect();
    send_str(fd, "GET / HTTP/1.1\r\nHost : x\r\n\r\n");
    r3 = read_all(fd);
    CHECK_TRUE(strstr(r3, "HTTP/1.1 400"));
    close(fd);
}

static void
ws_send_masked(int fd, uint8_t op, const char *data, size_t len)
{
    uint8_t f[256];
    const uint8_t mask[4] = { 1, 2, 3, 4 };
    size_t h = dt_ws_frame_header(f, op, true, len, mask);

    memcpy(f + h, data, len);
    dt_ws_mask(f + h, len, mask, 0);
    CHECK_EQ(write(fd, f, h + len), (ssize_t) (h + len));
}

static void
check_websocket(void)
{
    int fd = client_connect();
    char buf[4096];
    ssize_t n;
    size_t got = 0;

    send_str(fd, "GET /ws?proto=X-Daytona-Pty-Exit-Control HTTP/1.1\r\nHost: x\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    /* the handshake and the echo of a text message, then a ping's pong */
    while (!strstr(buf, "\r\n\r\n") && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t) n;
        buf[got] = 0;
    }
    CHECK_TRUE(strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n"));
    CHECK_TRUE(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    CHECK_TRUE(strstr(buf, "Sec-WebSocket-Protocol: X-Daytona-Pty-Exit-Control\r\n"));
    ws_send_masked(fd, DT_WS_OP_TEXT, "hi", 2);
    n = read(fd, buf, sizeof(buf));
    CHECK_EQ(n, 4);
    CHECK_MEM(buf, "\x81\x02hi", 4);
    ws_send_masked(fd, DT_WS_OP_PING, "p", 1);
    n = read(fd, buf, sizeof(buf));
    CHECK_EQ(n, 3);
    CHECK_MEM(buf, "\x8a\x01p", 3);
    /* server-initiated close with an application code; we answer and the socket closes */
    ws_send_masked(fd, DT_WS_OP_TEXT, "close", 5);
    n = read(fd, buf, sizeof(buf));
    CHECK_TRUE(n >= 4);
    CHECK_EQ((uint8_t) buf[0], 0x88);
    CHECK_EQ(((uint8_t) buf[2] << 8) | (uint8_t) buf[3], 4008);
    ws_send_masked(fd, DT_WS_OP_CLOSE, "\x0f\xa8", 2);
    CHECK_EQ(read(fd, buf, sizeof(buf)), 0);
    close(fd);
}

static void
check_tunnel(void)
{
    int fd = client_connect();
    _cleanup_free_ char *r1 = NULL, *rest = NULL;

    /* the upgrade request and the first tunnelled bytes in one write */
    send_str(fd, "GET /tunnel HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello");
    r1 = xcalloc(1, 4096);
    for (size_t n = 0; n < 4000 && !strstr(r1, "\r\n\r\n"); n++)
        CHECK_EQ(read(fd, r1 + n, 1), 1);
    CHECK_TRUE(strstr(r1, "HTTP/1.1 101 Switching Protocols\r\n"));
    send_str(fd, " world quit");
    rest = read_all(fd);
    CHECK_TRUE(strcmp(rest, "HELLO WORLD QUIT") == 0);
    close(fd);
}

static void *
client_main(void *arg)
{
    check_tunnel();
    check_basics();
    check_streams();
    check_websocket();
    uv_async_send(&stop_async);
    return NULL;
}

static void
test_server(void **state)
{
    _cleanup_free_ char *dir = dt_test_mkdtemp("httpd");
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_httpd_config cfg = { .handler = handler };
    pthread_t th;

    snprintf(sock_path, sizeof(sock_path), "%s/s.sock", dir);
    uv_loop_init(&loop);
    assert_int_equal(dt_httpd_new(&loop, &cfg, &srv, &err), 0);
    assert_int_equal(dt_httpd_listen_unix(srv, sock_path, &err), 0);
    uv_async_init(&loop, &stop_async, on_stop);
    pthread_create(&th, NULL, client_main, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(closes_completed >= 7);
    assert_int_equal(raw_closes, 1);
    dt_test_rm_rf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
