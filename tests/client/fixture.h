/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny HTTP/1.1 server for libdaytona's unit tests: a thread with a listening socket on
 * 127.0.0.1 that reads each request (head, then a Content-Length or chunked body, streamed
 * through a checksum so large uploads cost no memory) and hands it to the test's handler, which
 * writes whatever canned (or broken) response the test wants. Header-only: included by tests. */
#ifndef DAYTONA_TEST_FIXTURE_H
#define DAYTONA_TEST_FIXTURE_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FX_KEEP_BODY (64u << 10)
#define FX_MAX_CONNS 32

struct fx_req {
    char method[16];
    char target[4096];
    char head[16384];        /* the whole request head, NUL-terminated */
    char *body;              /* the first FX_KEEP_BODY bytes, NUL-terminated */
    size_t body_kept;
    uint64_t body_len;       /* all body bytes */
    uint64_t body_sum;       /* FNV-1a of the whole body */
    bool chunked;
    /* Bytes read past the head that belong to a WebSocket stream (after a 101). */
    uint8_t extra[65536];
    size_t extra_len;
};

struct fixture;
/* Write the response to FD. Return false to close the connection afterwards. */
typedef bool (*fx_handler)(struct fixture *fx, int fd, struct fx_req *req);

struct fixture {
    int lfd;
    int port;
    pthread_t thread;
    volatile bool stop;
    fx_handler handler;
    void *ud;
    int n_requests;
    pthread_mutex_t lock;
    int conns[FX_MAX_CONNS];     /* open connection fds, -1 = free slot */
    int n_conns;
    struct fx_req last;      /* copy of the last request (body pointer owned here) */
};

static inline uint64_t
fx_fnv(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FX_FNV_INIT 0xcbf29ce484222325ULL

static inline void
fx_write(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t) n;
    }
}

static inline void
fx_writes(int fd, const char *s)
{
    fx_write(fd, s, strlen(s));
}

/* A complete response with a body. */
static inline void
fx_respond(int fd, int status, const char *ctype, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
                     ctype, strlen(body));
    fx_write(fd, head, (size_t) n);
    fx_writes(fd, body);
}

/* Buffered reader over the connection. */
struct fx_conn {
    int fd;
    uint8_t buf[65536];
    size_t len, off;
};

static inline int
fx_fill(struct fx_conn *c)
{
    ssize_t n;

    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof(c->buf))
        return -ENOBUFS;
    do
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    c->len += (size_t) n;
    return (int) n;
}

static inline void
fx_body_bytes(struct fx_req *r, const uint8_t *p, size_t n)
{
    size_t keep = r->body_kept < FX_KEEP_BODY ? FX_KEEP_BODY - r->body_kept : 0;
    if (keep > n)
        keep = n;
    memcpy(r->body + r->body_kept, p, keep);
    r->body_kept += keep;
    r->body[r->body_kept] = 0;
    r->body_len += n;
    r->body_sum = fx_fnv(r->body_sum, p, n);
}

/* Read LEN body bytes. */
static inline int
fx_read_body(struct fx_conn *c, struct fx_req *r, uint64_t len)
{
    while (len > 0) {
        size_t have = c->len - c->off, n;
        if (have == 0) {
            int k = fx_fill(c);
            if (k <= 0)
                return -EPIPE;
            continue;
        }
        n = have < len ? have : (size_t) len;
        fx_body_bytes(r, c->buf + c->off, n);
        c->off += n;
        len -= n;
    }
    return 0;
}

static inline int
fx_read_line(struct fx_conn *c, char *out, size_t max)
{
    for (;;) {
        uint8_t *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
        if (nl) {
            size_t n = (size_t) (nl - (c->buf + c->off)) + 1;
            if (n >= max)
                return -E2BIG;
            memcpy(out, c->buf + c->off, n);
            out[n] = 0;
            c->off += n;
            return 0;
        }
        if (fx_fill(c) <= 0)
            return -EPIPE;
    }
}

/* Read one request. Returns 0, or <0 when the connection ended. */
static inline int
fx_read_request(struct fx_conn *c, struct fx_req *r)
{
    char *end, *cl, *te;
    size_t hl;

    r->body = realloc(r->body, FX_KEEP_BODY + 1);
    r->body[0] = 0;
    r->body_kept = 0;
    r->body_len = 0;
    r->body_sum = FX_FNV_INIT;
    r->chunked = false;
    r->extra_len = 0;
    for (;;) {
        end = memmem(c->buf + c->off, c->len - c->off, "\r\n\r\n", 4);
        if (end)
            break;
        if (fx_fill(c) <= 0)
            return -EPIPE;
    }
    hl = (size_t) ((uint8_t *) end - (c->buf + c->off)) + 4;
    if (hl >= sizeof(r->head))
        return -E2BIG;
    memcpy(r->head, c->buf + c->off, hl);
    r->head[hl] = 0;
    c->off += hl;
    if (sscanf(r->head, "%15s %4095s", r->method, r->target) != 2)
        return -EINVAL;
    cl = strcasestr(r->head, "\r\ncontent-length:");
    te = strcasestr(r->head, "\r\ntransfer-encoding: chunked");
    if (te) {
        r->chunked = true;
        for (;;) {
            char line[128];
            unsigned long n;
            if (fx_read_line(c, line, sizeof(line)) < 0)
                return -EPIPE;
            n = strtoul(line, NULL, 16);
            if (n == 0) {
                if (fx_read_line(c, line, sizeof(line)) < 0)
                    return -EPIPE;
                break;
            }
            if (fx_read_body(c, r, n) < 0 || fx_read_line(c, line, sizeof(line)) < 0)
                return -EPIPE;
        }
    } else if (cl) {
        if (fx_read_body(c, r, strtoull(cl + 17, NULL, 10)) < 0)
            return -EPIPE;
    }
    /* Whatever is left (a WebSocket client may send frames right away) goes to extra. */
    r->extra_len = c->len - c->off;
    memcpy(r->extra, c->buf + c->off, r->extra_len);
    return 0;
}

struct fx_conn_thread {
    struct fixture *fx;
    int fd;
};

static inline void *
fx_conn_main(void *arg)
{
    struct fx_conn_thread *t = arg;
    struct fixture *fx = t->fx;
    struct fx_conn *conn = calloc(1, sizeof(*conn));
    struct fx_req *req = calloc(1, sizeof(*req));

    conn->fd = t->fd;
    for (;;) {
        bool keep;
        if (fx_read_request(conn, req) < 0)
            break;
        pthread_mutex_lock(&fx->lock);
        fx->n_requests++;
        free(fx->last.body);
        fx->last = *req;
        fx->last.body = malloc(req->body_kept + 1);
        memcpy(fx->last.body, req->body, req->body_kept + 1);
        pthread_mutex_unlock(&fx->lock);
        keep = fx->handler(fx, t->fd, req);
        if (!keep)
            break;
    }
    pthread_mutex_lock(&fx->lock);
    for (size_t i = 0; i < FX_MAX_CONNS; i++)
        if (fx->conns[i] == t->fd)
            fx->conns[i] = -1;
    close(t->fd);
    fx->n_conns--;
    pthread_mutex_unlock(&fx->lock);
    free(req->body);
    free(req);
    free(conn);
    free(t);
    return NULL;
}

/* Accept loop: one detached thread per connection (a keep-alive connection from libcurl stays
 * open while the test opens a WebSocket on another one). */
static inline void *
fx_thread(void *arg)
{
    struct fixture *fx = arg;

    while (!fx->stop) {
        struct pollfd p = { .fd = fx->lfd, .events = POLLIN };
        struct fx_conn_thread *t;
        pthread_t th;
        int cfd;

        if (poll(&p, 1, 50) <= 0)
            continue;
        cfd = accept4(fx->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        t = calloc(1, sizeof(*t));
        t->fx = fx;
        t->fd = cfd;
        pthread_mutex_lock(&fx->lock);
        fx->n_conns++;
        for (size_t i = 0; i < FX_MAX_CONNS; i++)
            if (fx->conns[i] < 0) {
                fx->conns[i] = cfd;
                break;
            }
        pthread_mutex_unlock(&fx->lock);
        if (pthread_create(&th, NULL, fx_conn_main, t) != 0)
            abort();
        pthread_detach(th);
    }
    return NULL;
}

static inline void
fx_start(struct fixture *fx, fx_handler h, void *ud)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);

    memset(fx, 0, sizeof(*fx));
    fx->handler = h;
    fx->ud = ud;
    pthread_mutex_init(&fx->lock, NULL);
    for (size_t i = 0; i < FX_MAX_CONNS; i++)
        fx->conns[i] = -1;
    fx->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fx->lfd < 0 || bind(fx->lfd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
        listen(fx->lfd, 16) < 0 || getsockname(fx->lfd, (struct sockaddr *) &a, &al) < 0) {
        perror("fixture");
        abort();
    }
    fx->port = ntohs(a.sin_port);
    if (pthread_create(&fx->thread, NULL, fx_thread, fx) != 0)
        abort();
}

static inline void
fx_stop(struct fixture *fx)
{
    fx->stop = true;
    pthread_join(fx->thread, NULL);
    close(fx->lfd);
    /* Wake connection threads blocked in recv() and wait until they are gone. */
    for (int tries = 0; tries < 500; tries++) {
        int n;
        pthread_mutex_lock(&fx->lock);
        for (size_t i = 0; i < FX_MAX_CONNS; i++)
            if (fx->conns[i] >= 0)
                shutdown(fx->conns[i], SHUT_RDWR);
        n = fx->n_conns;
        pthread_mutex_unlock(&fx->lock);
        if (n == 0)
            break;
        usleep(10000);
    }
    free(fx->last.body);
    fx->last.body = NULL;
}

/* "http://127.0.0.1:PORT/api" */
static inline void
fx_url(const struct fixture *fx, char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d/api", fx->port);
}

#endif
