/* SPDX-License-Identifier: Apache-2.0 */
/* The toolbox proxy against a real daytona-agent on the host: an httpd server in this process
 * forwards /toolbox/x/... to the agent's socket, a client thread speaks raw HTTP/WebSocket to it
 * (JSON calls, a 20 MiB chunked upload and its download, an agent error, a WebSocket log
 * follow, a client leaving mid-download, an unreachable agent). DT_AGENT = the agent binary. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "dt/httpd.h"
#include "dt/ws.h"
#include "dt/xalloc.h"
#include "server/proxy.h"

#define BIG_SIZE (20u << 20)
#define BOUNDARY "--------------------------0123456789abcdef01234567"

static char dir[256], agent_sock[300], proxy_sock[300], dead_sock[300], fake_sock[300];
static int fake_listen_fd = -1;
static uv_loop_t loop;
static struct dt_httpd *srv;
static uv_async_t stop_async;
static unsigned activity_calls;
static const char *stage = "setup"; /* the client check running, for failure messages */

/* ---- server side ---- */

static void
on_activity(void *ud)
{
    activity_calls++;
}

static void
handler(struct dt_httpd_req *req, void *ud)
{
    const struct dt_http_head *h = dt_httpd_req_head(req);
    const char *t = h->target;

    if (strncmp(t, "/toolbox/x/", 11) == 0)
        dt_proxy_forward(&loop, req, agent_sock, t + 10, on_activity, NULL);
    else if (strncmp(t, "/toolbox/fake/", 14) == 0)
        dt_proxy_forward(&loop, req, fake_sock, t + 13, NULL, NULL);
    else if (strncmp(t, "/toolbox/dead/", 14) == 0)
        dt_proxy_forward(&loop, req, dead_sock, t + 13, NULL, NULL);
    else
        dt_httpd_reply_error(req, 404, NULL, "NOT_FOUND", "no route");
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
            fprintf(stderr, "%s:%d: %s: check failed: %s (%m)\n", __FILE__, __LINE__, stage,      \
                    #x);                                                                           \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b) CHECK_TRUE((long long) (a) == (long long) (b))

static int
client_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 30 };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        close(fd);
        return -errno;
    }
    /* A hang fails the test instead of blocking it forever. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void
send_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        CHECK_TRUE(n > 0);
        p += n;
        len -= (size_t) n;
    }
}

static void
send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

static void
read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = read(fd, p, len);
        CHECK_TRUE(n > 0);
        p += n;
        len -= (size_t) n;
    }
}

/* The head, byte by byte (NUL-terminated, malloc'ed). */
static char *
read_head(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);

    for (;;) {
        CHECK_EQ(read(fd, buf + len, 1), 1);
        len++;
        buf[len] = 0;
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            return buf;
        CHECK_TRUE(len + 2 < cap);
    }
}

static int
head_status(const char *head)
{
    CHECK_TRUE(strncmp(head, "HTTP/1.1 ", 9) == 0);
    return (int) strtol(head + 9, NULL, 10);
}

static char *
read_line(int fd)
{
    char line[128];
    size_t n = 0;

    for (;;) {
        CHECK_EQ(read(fd, line + n, 1), 1);
        n++;
        CHECK_TRUE(n < sizeof(line));
        if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n')
            break;
    }
    line[n - 2] = 0;
    return xstrdup(line);
}

/* One whole response: *HEAD gets the head, the decoded body is returned (NUL-terminated). */
static char *
read_response(int fd, char **ret_head, size_t *ret_len)
{
    char *head = read_head(fd), *body = NULL;
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    size_t len = 0;

    if (cl) {
        len = strtoul(cl + 18, NULL, 10);
        body = xmalloc(len + 1);
        read_exact(fd, body, len);
    } else if (strcasestr(head, "\r\nTransfer-Encoding: chunked")) {
        for (;;) {
            _cleanup_free_ char *line = read_line(fd);
            size_t n = strtoul(line, NULL, 16);
            char crlf[2];

            if (n == 0) {
                _cleanup_free_ char *end = read_line(fd);
                CHECK_EQ(strlen(end), 0);
                break;
            }
            body = xrealloc(body, len + n + 1);
            read_exact(fd, body + len, n);
            len += n;
            read_exact(fd, crlf, 2);
        }
    }
    if (!body)
        body = xmalloc(1);
    body[len] = 0;
    if (ret_len)
        *ret_len = len;
    *ret_head = head;
    return body;
}

static char *
request(int fd, const char *req, char **ret_head)
{
    send_str(fd, req);
    return read_response(fd, ret_head, NULL);
}

static char *
post_json(int fd, const char *path, const char *json, char **ret_head)
{
    _cleanup_free_ char *r = xasprintf("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                                       "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                                       "\r\n%s",
                                       path, strlen(json), json);
    return request(fd, r, ret_head);
}

static uint8_t
big_byte(size_t i)
{
    return (uint8_t) (i * 131 + (i >> 13));
}

static void
check_json_calls(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h1 = NULL, *b1 = NULL, *h2 = NULL, *b2 = NULL, *h0 = NULL;

    CHECK_TRUE(fd >= 0);
    /* HEAD: the agent's answer has no body, whatever its Content-Length says; the connection
     * stays in step for the next request */
    send_str(fd, "HEAD /toolbox/x/version HTTP/1.1\r\nHost: x\r\n\r\n");
    h0 = read_head(fd);
    CHECK_TRUE(head_status(h0) >= 200);
    b1 = request(fd, "GET /toolbox/x/version HTTP/1.1\r\nHost: x\r\n\r\n", &h1);
    CHECK_EQ(head_status(h1), 200);
    CHECK_TRUE(strstr(h1, "Connection: keep-alive"));
    CHECK_TRUE(strstr(b1, "\"version\""));
    /* the same client connection again, a POST with a Content-Length body */
    b2 = post_json(fd, "/toolbox/x/process/execute", "{\"command\":\"echo proxied\"}", &h2);
    CHECK_EQ(head_status(h2), 200);
    CHECK_TRUE(strstr(b2, "\"exitCode\":0"));
    CHECK_TRUE(strstr(b2, "proxied\\n"));
    close(fd);
}

static void
check_big_file(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h1 = NULL, *b1 = NULL, *h2 = NULL, *pre = NULL, *post = NULL;
    _cleanup_free_ uint8_t *buf = xmalloc(64 * 1024 + 64);
    size_t off = 0, got = 0, len;
    const char *cl;

    CHECK_TRUE(fd >= 0);
    send_str(fd, "POST /toolbox/x/files/bulk-upload HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: multipart/form-data; boundary=" BOUNDARY "\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    pre = xasprintf("--%s\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n"
                    "big.bin\r\n--%s\r\nContent-Disposition: form-data; name=\"files[0].file\"; "
                    "filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    BOUNDARY, BOUNDARY);
    post = xasprintf("\r\n--%s--\r\n", BOUNDARY);
    {
        _cleanup_free_ char *c = xasprintf("%zx\r\n%s\r\n", strlen(pre), pre);
        send_str(fd, c);
    }
    while (off < BIG_SIZE) {
        size_t n = BIG_SIZE - off < 65536 ? BIG_SIZE - off : 65536;
        int h = snprintf((char *) buf, 16, "%zx\r\n", n);

        for (size_t i = 0; i < n; i++)
            buf[h + i] = big_byte(off + i);
        memcpy(buf + h + n, "\r\n", 2);
        send_all(fd, buf, (size_t) h + n + 2);
        off += n;
    }
    {
        _cleanup_free_ char *c = xasprintf("%zx\r\n%s\r\n0\r\n\r\n", strlen(post), post);
        send_str(fd, c);
    }
    b1 = read_response(fd, &h1, NULL);
    CHECK_EQ(head_status(h1), 200);

    /* the download, compared byte for byte as it streams */
    send_str(fd, "GET /toolbox/x/files/download?path=big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    h2 = read_head(fd);
    CHECK_EQ(head_status(h2), 200);
    cl = strcasestr(h2, "\r\nContent-Length: ");
    CHECK_TRUE(cl);
    len = strtoul(cl + 18, NULL, 10);
    CHECK_EQ(len, BIG_SIZE);
    while (got < len) {
        ssize_t n = read(fd, buf, 65536 < len - got ? 65536 : len - got);
        CHECK_TRUE(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != big_byte(got + (size_t) i)) {
                fprintf(stderr, "download differs at byte %zu\n", got + (size_t) i);
                _exit(1);
            }
        got += (size_t) n;
    }
    close(fd);
}

static void
check_agent_error(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h = NULL, *b = NULL;

    CHECK_TRUE(fd >= 0);
    b = request(fd, "GET /toolbox/x/files/download?path=nope.bin HTTP/1.1\r\nHost: x\r\n\r\n", &h);
    CHECK_EQ(head_status(h), 404);
    /* the agent's own envelope: its source, and the path as the agent saw it */
    CHECK_TRUE(strstr(b, "\"source\":\"DAYTONA_DAEMON\""));
    CHECK_TRUE(strstr(b, "\"path\":\"/files/download\""));
    CHECK_TRUE(strstr(b, "\"statusCode\":404"));
    CHECK_TRUE(!strstr(b, "DAYTONA_PROXY"));
    close(fd);
}

/* One server frame (unmasked; payload < 64 KiB); returns the opcode, *RET_LEN the length. */
static uint8_t
ws_read_frame(int fd, uint8_t *payload, size_t cap, size_t *ret_len)
{
    uint8_t hdr[4];
    size_t len;

    read_exact(fd, hdr, 2);
    CHECK_EQ(hdr[1] & 0x80, 0);
    len = hdr[1] & 0x7f;
    if (len == 126) {
        read_exact(fd, hdr + 2, 2);
        len = ((size_t) hdr[2] << 8) | hdr[3];
    }
    CHECK_TRUE(len < 127 * 1024 && len <= cap);
    read_exact(fd, payload, len);
    *ret_len = len;
    return hdr[0];
}

static void
check_websocket(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h1 = NULL, *b1 = NULL, *h2 = NULL, *b2 = NULL, *h3 = NULL, *req = NULL;
    _cleanup_free_ uint8_t *payload = xmalloc(128 * 1024);
    char out[256] = "", err[256] = "", cmd_id[128];
    const char *id;
    const uint8_t mask[4] = { 9, 8, 7, 6 };
    uint8_t close_frame[DT_WS_MAX_HEADER + 2];
    size_t fl;

    CHECK_TRUE(fd >= 0);
    b1 = post_json(fd, "/toolbox/x/process/session", "{\"sessionId\":\"s1\"}", &h1);
    CHECK_TRUE(head_status(h1) == 200 || head_status(h1) == 201);
    b2 = post_json(fd, "/toolbox/x/process/session/s1/exec",
                   "{\"command\":\"echo out1; echo err1 >&2; sleep 0.2; echo out2\","
                   "\"runAsync\":true}",
                   &h2);
    CHECK_EQ(head_status(h2), 200);
    id = strstr(b2, "\"cmdId\":\"");
    CHECK_TRUE(id);
    id += 9;
    CHECK_TRUE(strchr(id, '"') && (size_t) (strchr(id, '"') - id) < sizeof(cmd_id));
    memcpy(cmd_id, id, (size_t) (strchr(id, '"') - id));
    cmd_id[strchr(id, '"') - id] = 0;

    req = xasprintf("GET /toolbox/x/process/session/s1/command/%s/logs?follow=true HTTP/1.1\r\n"
                    "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "\r\n",
                    cmd_id);
    send_str(fd, req);
    h3 = read_head(fd);
    CHECK_EQ(head_status(h3), 101);
    CHECK_TRUE(strstr(h3, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    for (;;) {
        uint8_t op = ws_read_frame(fd, payload, 128 * 1024, &fl);

        if (op == 0x88) {
            CHECK_TRUE(fl >= 2);
            CHECK_EQ((payload[0] << 8) | payload[1], 1000);
            break;
        }
        CHECK_EQ(op, 0x82);
        CHECK_TRUE(fl >= 3);
        if (memcmp(payload, "\x01\x01\x01", 3) == 0) {
            CHECK_TRUE(strlen(out) + fl < sizeof(out));
            strncat(out, (char *) payload + 3, fl - 3);
        } else {
            CHECK_TRUE(memcmp(payload, "\x02\x02\x02", 3) == 0);
            CHECK_TRUE(strlen(err) + fl < sizeof(err));
            strncat(err, (char *) payload + 3, fl - 3);
        }
    }
    CHECK_TRUE(strcmp(out, "out1\nout2\n") == 0);
    CHECK_TRUE(strcmp(err, "err1\n") == 0);
    /* our close answer goes through the tunnel; the agent then hangs up, so does the proxy */
    fl = dt_ws_frame_header(close_frame, DT_WS_OP_CLOSE, true, 2, mask);
    close_frame[fl] = 0x03;
    close_frame[fl + 1] = 0xe8;
    dt_ws_mask(close_frame + fl, 2, mask, 0);
    send_all(fd, close_frame, fl + 2);
    CHECK_EQ(read(fd, payload, 16), 0);
    close(fd);

    /* a follower that leaves while the command still runs: the tunnel comes down from the
     * client's side (the server is checked to go on serving later) */
    fd = client_connect(proxy_sock);
    CHECK_TRUE(fd >= 0);
    free(h2);
    free(b2);
    b2 = post_json(fd, "/toolbox/x/process/session/s1/exec",
                   "{\"command\":\"echo long; sleep 2\",\"runAsync\":true}", &h2);
    CHECK_EQ(head_status(h2), 200);
    id = strstr(b2, "\"cmdId\":\"");
    CHECK_TRUE(id);
    id += 9;
    memcpy(cmd_id, id, (size_t) (strchr(id, '"') - id));
    cmd_id[strchr(id, '"') - id] = 0;
    free(req);
    req = xasprintf("GET /toolbox/x/process/session/s1/command/%s/logs?follow=true HTTP/1.1\r\n"
                    "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "\r\n",
                    cmd_id);
    send_str(fd, req);
    free(h3);
    h3 = read_head(fd);
    CHECK_EQ(head_status(h3), 101);
    CHECK_EQ(ws_read_frame(fd, payload, 128 * 1024, &fl), 0x82);
    CHECK_TRUE(fl == 8 && memcmp(payload, "\x01\x01\x01long\n", 8) == 0);
    close(fd);

    /* a DELETE through the proxy ends the session and its sleeping command */
    fd = client_connect(proxy_sock);
    CHECK_TRUE(fd >= 0);
    free(h2);
    free(b2);
    b2 = request(fd, "DELETE /toolbox/x/process/session/s1 HTTP/1.1\r\nHost: x\r\n\r\n", &h2);
    CHECK_TRUE(head_status(h2) == 200 || head_status(h2) == 204);
    close(fd);
}

static void
check_client_leaves(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h = NULL, *h2 = NULL, *b2 = NULL;
    _cleanup_free_ char *buf = xmalloc(1 << 20);

    CHECK_TRUE(fd >= 0);
    send_str(fd, "GET /toolbox/x/files/download?path=big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    h = read_head(fd);
    CHECK_EQ(head_status(h), 200);
    read_exact(fd, buf, 1 << 20);
    close(fd);
    /* the server goes on serving */
    usleep(100 * 1000);
    fd = client_connect(proxy_sock);
    CHECK_TRUE(fd >= 0);
    b2 = request(fd, "GET /toolbox/x/version HTTP/1.1\r\nHost: x\r\n\r\n", &h2);
    CHECK_EQ(head_status(h2), 200);
    close(fd);
}

static void
check_unreachable(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h = NULL, *b = NULL;

    CHECK_TRUE(fd >= 0);
    b = request(fd, "GET /toolbox/dead/version HTTP/1.1\r\nHost: x\r\n\r\n", &h);
    CHECK_EQ(head_status(h), 503);
    CHECK_TRUE(strstr(b, "\"source\":\"DAYTONA_PROXY\""));
    CHECK_TRUE(strstr(b, "sandbox is not reachable"));
    close(fd);
}

/* ---- a scripted upstream, for what the real agent does not do on demand ---- */

#define SLOW_SIZE (8u << 20)

static void *
fake_main(void *arg)
{
    for (int i = 0; i < 3; i++) {
        int fd = accept4(fake_listen_fd, NULL, NULL, SOCK_CLOEXEC);
        _cleanup_free_ char *head = NULL;

        CHECK_TRUE(fd >= 0);
        head = read_head(fd);
        if (strncmp(head, "POST /slow ", 11) == 0) {
            /* A slow reader: the proxy must hold the client back, not buffer 8 MiB. */
            _cleanup_free_ char *buf = xmalloc(1 << 16), *resp = NULL, *body = NULL;
            const char *cl = strcasestr(head, "\r\nContent-Length: ");
            size_t want, got = 0;

            CHECK_TRUE(cl);
            want = strtoul(cl + 18, NULL, 10);
            usleep(300 * 1000);
            while (got < want) {
                ssize_t n = read(fd, buf, want - got < (1u << 16) ? want - got : 1u << 16);
                CHECK_TRUE(n > 0);
                got += (size_t) n;
            }
            body = xasprintf("%zu|auth=%d|host=%d|te=%d", got,
                             strcasestr(head, "\r\nAuthorization:") != NULL,
                             strstr(head, "\r\nHost: sandbox\r\n") != NULL,
                             strcasestr(head, "\r\nTransfer-Encoding:") != NULL);
            resp = xasprintf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Fake: 1\r\n"
                             "Connection: close\r\n\r\n%s",
                             strlen(body), body);
            send_str(fd, resp);
        } else if (strncmp(head, "GET /cut ", 9) == 0) {
            /* The agent dies mid-body: the client must see a truncated body. */
            _cleanup_free_ char *part = xmalloc(1000);

            memset(part, 'c', 1000);
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
            send_all(fd, part, 1000);
        }
        /* "/silent" and the others: hang up without a word. */
        close(fd);
    }
    return NULL;
}

static void
check_slow_upstream(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h = NULL, *b = NULL, *buf = xmalloc(1 << 16), *want = NULL;

    CHECK_TRUE(fd >= 0);
    memset(buf, 's', 1 << 16);
    send_str(fd, "POST /toolbox/fake/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\n"
                 "Content-Length: 8388608\r\n\r\n");
    for (size_t off = 0; off < SLOW_SIZE; off += 1u << 16)
        send_all(fd, buf, 1u << 16);
    b = read_response(fd, &h, NULL);
    CHECK_EQ(head_status(h), 200);
    CHECK_TRUE(strstr(h, "\r\nX-Fake: 1\r\n"));
    want = xasprintf("%u|auth=0|host=1|te=0", SLOW_SIZE);
    CHECK_TRUE(strcmp(b, want) == 0);
    close(fd);
}

static void
check_upstream_fails(void)
{
    int fd = client_connect(proxy_sock);
    _cleanup_free_ char *h = NULL, *h2 = NULL, *b2 = NULL;
    char buf[4096];
    size_t got = 0;
    ssize_t n;

    CHECK_TRUE(fd >= 0);
    send_str(fd, "GET /toolbox/fake/cut HTTP/1.1\r\nHost: x\r\n\r\n");
    h = read_head(fd);
    CHECK_EQ(head_status(h), 200);
    CHECK_TRUE(strstr(h, "Content-Length: 100000\r\n"));
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        got += (size_t) n;
    CHECK_EQ(n, 0);
    CHECK_EQ(got, 1000);
    close(fd);

    fd = client_connect(proxy_sock);
    CHECK_TRUE(fd >= 0);
    b2 = request(fd, "GET /toolbox/fake/silent HTTP/1.1\r\nHost: x\r\n\r\n", &h2);
    CHECK_EQ(head_status(h2), 502);
    CHECK_TRUE(strstr(b2, "\"source\":\"DAYTONA_PROXY\""));
    close(fd);
}

static void *
client_main(void *arg)
{
    stage = "check_unreachable";
    check_unreachable();
    stage = "check_json_calls";
    check_json_calls();
    stage = "check_agent_error";
    check_agent_error();
    stage = "check_websocket";
    check_websocket();
    stage = "check_big_file";
    check_big_file();
    stage = "check_client_leaves";
    check_client_leaves();
    stage = "check_slow_upstream";
    check_slow_upstream();
    stage = "check_upstream_fails";
    check_upstream_fails();
    uv_async_send(&stop_async);
    return NULL;
}

/* ---- the agent ---- */

static pid_t
start_agent(const char *bin)
{
    _cleanup_free_ char *work = xasprintf("%s/work", dir), *state = xasprintf("%s/state", dir);
    _cleanup_free_ char *log = xasprintf("%s/agent.log", dir);
    pid_t pid;

    assert_int_equal(mkdir(work, 0755), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "--socket", agent_sock, "--workdir", work, "--state-dir", state,
              (char *) NULL);
        _exit(127);
    }
    /* Ready once its socket answers. */
    for (int i = 0; i < 500; i++) {
        int fd = client_connect(agent_sock);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the agent did not come up (see %s)", log);
    return -1;
}

static void
test_proxy(void **state)
{
    const char *bin = getenv("DT_AGENT") ?: "build/bin/daytona-agent";
    _cleanup_free_ char *tmp = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_httpd_config cfg = { .handler = handler };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    pthread_t th, fake_th;
    pid_t pid;
    int status;

    if (access(bin, X_OK) < 0)
        dt_test_skip("no daytona-agent binary (set DT_AGENT)");
    signal(SIGPIPE, SIG_IGN);
    tmp = dt_test_mkdtemp("proxy");
    snprintf(dir, sizeof(dir), "%s", tmp);
    snprintf(agent_sock, sizeof(agent_sock), "%s/agent.sock", dir);
    snprintf(proxy_sock, sizeof(proxy_sock), "%s/proxy.sock", dir);
    snprintf(dead_sock, sizeof(dead_sock), "%s/nobody.sock", dir);
    snprintf(fake_sock, sizeof(fake_sock), "%s/fake.sock", dir);
    pid = start_agent(bin);
    fake_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memcpy(sa.sun_path, fake_sock, strlen(fake_sock) + 1);
    assert_int_equal(bind(fake_listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(listen(fake_listen_fd, 8), 0);
    pthread_create(&fake_th, NULL, fake_main, NULL);

    uv_loop_init(&loop);
    assert_int_equal(dt_httpd_new(&loop, &cfg, &srv, &err), 0);
    assert_int_equal(dt_httpd_listen_unix(srv, proxy_sock, &err), 0);
    uv_async_init(&loop, &stop_async, on_stop);
    pthread_create(&th, NULL, client_main, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    pthread_join(fake_th, NULL);
    close(fake_listen_fd);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(activity_calls >= 8);

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    dt_test_rm_rf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
