/* SPDX-License-Identifier: Apache-2.0 */
/* A small blocking-or-polled WebSocket client for the toolbox streams (session log follow, PTY):
 * TCP connect, the HTTP/1.1 upgrade done by hand (libcurl 7.88 has no WebSocket API we can rely
 * on), then frames through our codec dt/ws.h. Plain http:// only; wss:// is refused clearly. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-int.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_HANDSHAKE (32u << 10)
#define READ_CHUNK    (64u << 10)

static int
wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int r;

    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}

static int
remaining_ms(uint64_t deadline)
{
    uint64_t now = now_msec();
    return now >= deadline ? 0 : (int) (deadline - now);
}

static int
tcp_connect(const char *host, const char *port, uint64_t deadline, const char *what,
            daytona_error **err)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    int r, fd = -EBADF, last = ECONNREFUSED;

    r = getaddrinfo(host, port, &hints, &res);
    if (r != 0)
        return dc_error(err, EHOSTUNREACH, "%s: resolve '%s': %s", what, host, gai_strerror(r));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno != EINPROGRESS) {
            last = errno;
            fd = safe_close(fd);
            continue;
        }
        r = wait_fd(fd, POLLOUT, remaining_ms(deadline));
        if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        last = r < 0 ? -r : soerr ? soerr : EIO;
        fd = safe_close(fd);
    }
    freeaddrinfo(res);
    if (fd < 0)
        return dc_error_errno(err, last, "%s: connect to '%s' port %s", what, host, port);
    return fd;
}

static int
send_all(int fd, const void *data, size_t len, int timeout_ms)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int r = wait_fd(fd, POLLOUT, timeout_ms);
                if (r < 0)
                    return r;
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* Find header NAME in the response head [H, H+LEN); returns a trimmed borrowed value or NULL. */
static const char *
find_header(const char *h, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *line = strstr(h, "\r\n");

    while (line && line[2] != '\r' && line[2]) {
        const char *s = line + 2, *e = strstr(s, "\r\n");
        if (!e)
            return NULL;
        if ((size_t) (e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
            const char *v = s + nl + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t) (e - v);
            while (*vlen > 0 && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
                (*vlen)--;
            return v;
        }
        line = e;
    }
    return NULL;
}

void
dc_ws_done(struct dc_ws *ws)
{
    ws->fd = safe_close(ws->fd);
    free(ws->buf);
    ws->buf = NULL;
    ws->buf_len = ws->buf_off = ws->buf_cap = 0;
    free(ws->close_reason);
    ws->close_reason = NULL;
    dt_ws_msgbuf_done(&ws->msg);
}

static void
buf_reserve(struct dc_ws *ws, size_t more)
{
    if (ws->buf_off > 0 && ws->buf_off == ws->buf_len)
        ws->buf_off = ws->buf_len = 0;
    if (ws->buf_len + more <= ws->buf_cap)
        return;
    if (ws->buf_off > 0) {
        memmove(ws->buf, ws->buf + ws->buf_off, ws->buf_len - ws->buf_off);
        ws->buf_len -= ws->buf_off;
        ws->buf_off = 0;
    }
    if (ws->buf_len + more > ws->buf_cap) {
        ws->buf_cap = ws->buf_len + more;
        ws->buf = xrealloc(ws->buf, ws->buf_cap);
    }
}

int
dc_ws_connect(daytona_client *c, const char *url, const char *protocols,
              const char *expect_protocol, struct dc_ws *ws, daytona_error **err)
{
    _cleanup_free_ char *host = NULL, *port = NULL, *path = NULL, *req = NULL, *what = NULL;
    _cleanup_free_ char *org = NULL, *proto = NULL, *hostport = NULL;
    char key[DT_WS_KEY_LEN + 1];
    uint64_t deadline = now_msec() + (uint64_t) (c->connect_timeout_ms > 0 ? c->connect_timeout_ms
                                                                           : 10000);
    const char *p, *slash, *v;
    size_t head_len = 0, vlen;
    int fd, r;

    *ws = (struct dc_ws) { .fd = -EBADF };
    what = xasprintf("WebSocket '%s'", url);
    if (strncmp(url, "https://", 8) == 0 || strncmp(url, "wss://", 6) == 0)
        return dc_error(err, EOPNOTSUPP, "%s: TLS WebSockets (wss://) are not supported by "
                                         "libdaytona yet; use an http:// API URL", what);
    if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncmp(url, "ws://", 5) == 0)
        p = url + 5;
    else
        return dc_error(err, EINVAL, "%s: not an http:// URL", what);
    slash = strchr(p, '/');
    hostport = slash ? xstrndup(p, (size_t) (slash - p)) : xstrdup(p);
    path = xstrdup(slash ? slash : "/");
    if (strchr(hostport, '@'))
        return dc_error(err, EINVAL, "%s: credentials in the URL are not supported", what);
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (!end)
            return dc_error(err, EINVAL, "%s: bad IPv6 address", what);
        host = xstrndup(hostport + 1, (size_t) (end - hostport - 1));
        port = xstrdup(end[1] == ':' ? end + 2 : "80");
    } else {
        const char *colon = strrchr(hostport, ':');
        host = colon ? xstrndup(hostport, (size_t) (colon - hostport)) : xstrdup(hostport);
        port = xstrdup(colon ? colon + 1 : "80");
    }

    r = dt_ws_client_key(key);
    if (r < 0)
        return dc_error_errno(err, r, "%s: generate a key", what);
    fd = tcp_connect(host, port, deadline, what, err);
    if (fd < 0)
        return fd;
    ws->fd = fd;

    if (c->organization_id)
        org = xasprintf("X-Daytona-Organization-ID: %s\r\n", c->organization_id);
    if (protocols)
        proto = xasprintf("Sec-WebSocket-Protocol: %s\r\n", protocols);
    req = xasprintf("GET %s HTTP/1.1\r\n"
                    "Host: %s\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "%s"
                    "Authorization: Bearer %s\r\n"
                    "User-Agent: %s\r\n"
                    "X-Daytona-Source: libdaytona\r\n"
                    "X-Daytona-SDK-Version: 0.218.0\r\n"
                    "%s"
                    "\r\n",
                    path, hostport, key, proto ? proto : "", c->api_key, c->user_agent,
                    org ? org : "");
    r = send_all(fd, req, strlen(req), remaining_ms(deadline));
    if (r < 0) {
        dc_ws_done(ws);
        return dc_error_errno(err, r, "%s: send the upgrade request", what);
    }

    /* Read the response head; bytes after it are already frames and stay in the buffer. */
    for (;;) {
        ssize_t n;
        char *end;

        buf_reserve(ws, 4096 + 1);
        r = wait_fd(fd, POLLIN, remaining_ms(deadline));
        if (r < 0) {
            dc_ws_done(ws);
            return dc_error_errno(err, r, "%s: wait for the upgrade response", what);
        }
        n = recv(fd, ws->buf + ws->buf_len, ws->buf_cap - ws->buf_len - 1, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -ECONNRESET;
            dc_ws_done(ws);
            return dc_error_errno(err, r, "%s: read the upgrade response", what);
        }
        ws->buf_len += (size_t) n;
        end = memmem(ws->buf, ws->buf_len, "\r\n\r\n", 4);
        if (end) {
            head_len = (size_t) (end - (char *) ws->buf) + 4;
            break;
        }
        if (ws->buf_len > MAX_HANDSHAKE) {
            dc_ws_done(ws);
            return dc_error(err, EPROTO, "%s: the upgrade response is too large", what);
        }
    }

    {
        char *head = xstrndup((char *) ws->buf, head_len);
        long status = 0;

        if (strncmp(head, "HTTP/1.", 7) != 0 || strlen(head) < 12) {
            free(head);
            dc_ws_done(ws);
            return dc_error(err, EPROTO, "%s: not an HTTP response", what);
        }
        status = strtol(head + 9, NULL, 10);
        if (status != 101) {
            /* An HTTP error: use whatever body arrived with the head for the message. */
            size_t blen = ws->buf_len - head_len;
            const char *cl = find_header(head, "Content-Length", &vlen);
            long want = cl ? strtol(cl, NULL, 10) : -1;

            while (want > 0 && (long) blen < want && blen < DC_MAX_ERROR_BODY) {
                ssize_t n;
                buf_reserve(ws, 4096 + 1);
                if (wait_fd(fd, POLLIN, 2000) < 0)
                    break;
                n = recv(fd, ws->buf + ws->buf_len, ws->buf_cap - ws->buf_len - 1, 0);
                if (n <= 0)
                    break;
                ws->buf_len += (size_t) n;
                blen += (size_t) n;
            }
            r = dc_error_http(err, status, (char *) ws->buf + head_len, blen, what);
            free(head);
            dc_ws_done(ws);
            return r;
        }
        v = find_header(head, "Sec-WebSocket-Accept", &vlen);
        if (!v || dt_ws_client_check_accept(key, v, vlen) < 0) {
            free(head);
            dc_ws_done(ws);
            return dc_error(err, EPROTO, "%s: bad or missing Sec-WebSocket-Accept", what);
        }
        if (expect_protocol) {
            v = find_header(head, "Sec-WebSocket-Protocol", &vlen);
            if (!v || vlen != strlen(expect_protocol) || memcmp(v, expect_protocol, vlen) != 0) {
                free(head);
                dc_ws_done(ws);
                return dc_error(err, EPROTO, "%s: the server did not accept subprotocol '%s'",
                                what, expect_protocol);
            }
        }
        free(head);
    }
    ws->buf_off = head_len;
    dt_ws_parser_init(&ws->parser, DT_WS_CLIENT, UINT64_MAX);
    return 0;
}

int
dc_ws_send(struct dc_ws *ws, enum dt_ws_opcode op, const void *data, size_t len)
{
    uint8_t hdr[DT_WS_MAX_HEADER], mask[4], tmp[4096];
    size_t hl, off = 0;
    int r;

    if (ws->fd < 0 || ws->sent_close)
        return -EPIPE;
    r = dt_ws_random_mask(mask);
    if (r < 0)
        return r;
    hl = dt_ws_frame_header(hdr, op, true, len, mask);
    r = send_all(ws->fd, hdr, hl, -1);
    /* Mask through a bounce buffer: the caller's data is const. */
    while (r >= 0 && off < len) {
        size_t n = len - off < sizeof(tmp) ? len - off : sizeof(tmp);
        memcpy(tmp, (const uint8_t *) data + off, n);
        dt_ws_mask(tmp, n, mask, off);
        r = send_all(ws->fd, tmp, n, -1);
        off += n;
    }
    if (op == DT_WS_OP_CLOSE && r >= 0)
        ws->sent_close = true;
    return r;
}

int
dc_ws_fill(struct dc_ws *ws, int timeout_ms)
{
    ssize_t n;
    int r;

    if (ws->fd < 0)
        return 0;
    buf_reserve(ws, READ_CHUNK);
    for (;;) {
        n = recv(ws->fd, ws->buf + ws->buf_len, ws->buf_cap - ws->buf_len, 0);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        if (timeout_ms == 0)
            return -EAGAIN;
        r = wait_fd(ws->fd, POLLIN, timeout_ms);
        if (r == -ETIMEDOUT)
            return -EAGAIN;
        if (r < 0)
            return r;
        timeout_ms = 0; /* readable now; do not wait twice */
    }
    ws->buf_len += (size_t) n;
    return (int) (n > 0 ? (n > 0x7fffffff ? 0x7fffffff : n) : 0);
}

int
dc_ws_next(struct dc_ws *ws, struct dt_ws_event *ev)
{
    size_t consumed = 0;
    int r;

    if (ws->buf_off >= ws->buf_len)
        return 0;
    r = dt_ws_parse(&ws->parser, ws->buf + ws->buf_off, ws->buf_len - ws->buf_off, &consumed, ev);
    ws->buf_off += consumed;
    if (r < 0) {
        uint8_t frame[DT_WS_MAX_CLOSE_FRAME];
        uint8_t mask[4] = { 0 };
        size_t fl;

        if (!ws->sent_close && dt_ws_random_mask(mask) == 0) {
            fl = dt_ws_close_frame(frame, dt_ws_error_close_code(r), NULL, 0, mask);
            (void) send_all(ws->fd, frame, fl, 1000);
            ws->sent_close = true;
        }
        return r;
    }
    if (r == 0)
        return 0;
    if (ev->type == DT_WS_EV_CONTROL) {
        if (ev->opcode == DT_WS_OP_PING)
            (void) dc_ws_send(ws, DT_WS_OP_PONG, ev->data, ev->len);
        else if (ev->opcode == DT_WS_OP_CLOSE && !ws->closed) {
            ws->closed = true;
            ws->close_code = ev->close_code;
            free(ws->close_reason);
            ws->close_reason = xstrndup((const char *) ev->data, ev->len);
            if (!ws->sent_close) {
                uint8_t frame[DT_WS_MAX_CLOSE_FRAME], mask[4];
                if (dt_ws_random_mask(mask) == 0) {
                    uint16_t code = ev->close_code == DT_WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
                    size_t fl = dt_ws_close_frame(frame, code, NULL, 0, mask);
                    (void) send_all(ws->fd, frame, fl, 1000);
                }
                ws->sent_close = true;
            }
        }
    }
    return 1;
}
