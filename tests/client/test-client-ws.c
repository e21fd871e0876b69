/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona's WebSocket paths against a local fixture: session log follow with the 3-byte
 * stdout/stderr markers split across frames, a stream cut without a close frame, an upgrade
 * refused with an HTTP error, and the PTY (subprotocol, control messages, input echo, exit
 * code) driven through daytona_pty_step() from a poll loop. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daytona/daytona.h"
#include "dt/ws.h"
#include "fixture.h"
#include "testlib.h"

static const char *
header_value(const char *head, const char *name, size_t *len)
{
    char pat[128];
    const char *p, *e;

    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    p = strcasestr(head, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    e = strstr(p, "\r\n");
    *len = (size_t) (e - p);
    return p;
}

static void
accept_ws(int fd, struct fx_req *r, const char *protocol)
{
    char accept[DT_WS_ACCEPT_LEN + 1], buf[512];
    size_t kl = 0;
    const char *key = header_value(r->head, "Sec-WebSocket-Key", &kl);

    assert_non_null(key);
    dt_ws_accept(key, kl, accept);
    snprintf(buf, sizeof(buf),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
             accept, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
             protocol ? "\r\n" : "");
    fx_writes(fd, buf);
}

static void
send_frame(int fd, enum dt_ws_opcode op, const void *data, size_t len)
{
    uint8_t hdr[DT_WS_MAX_HEADER];
    size_t hl = dt_ws_frame_header(hdr, op, true, len, NULL);

    fx_write(fd, hdr, hl);
    fx_write(fd, data, len);
}

static void
send_close(int fd, uint16_t code)
{
    uint8_t frame[DT_WS_MAX_CLOSE_FRAME];
    size_t n = dt_ws_close_frame(frame, code, "", 0, NULL);
    fx_write(fd, frame, n);
}

#define SANDBOX_JSON                                                                               \
    "{\"id\":\"sb1\",\"state\":\"started\",\"toolboxProxyUrl\":\"http://127.0.0.1:%d/toolbox/\"}"

static bool
handler(struct fixture *fx, int fd, struct fx_req *r)
{
    const char *mode = fx->ud;
    char buf[512];

    if (strncmp(r->target, "/api/sandbox/sb1", 16) == 0) {
        snprintf(buf, sizeof(buf), SANDBOX_JSON, fx->port);
        fx_respond(fd, 200, "application/json", buf);
        return true;
    }
    if (strcmp(r->target, "/toolbox/sb1/process/session/s/command/c/logs?follow=true") == 0) {
        size_t n;
        if (strcmp(mode, "refuse") == 0) {
            fx_respond(fd, 404, "application/json",
                       "{\"message\":\"command not found\",\"code\":\"PROCESS_NOT_FOUND\"}");
            return false;
        }
        assert_null(header_value(r->head, "Sec-WebSocket-Protocol", &n));
        assert_non_null(strstr(r->head, "Authorization: Bearer k\r\n"));
        accept_ws(fd, r, NULL);
        /* Bytes before the first marker are dropped; markers may be split across frames. */
        send_frame(fd, DT_WS_OP_BINARY, "junk\x01\x01\x01out1\n", 12);
        if (strcmp(mode, "trunc") == 0)
            return false; /* hang up without a close frame */
        send_frame(fd, DT_WS_OP_BINARY, "\x02\x02", 2);
        send_frame(fd, DT_WS_OP_TEXT, "\x02" "err1\n\x01", 7);
        send_frame(fd, DT_WS_OP_BINARY, "\x01\x01out2\n", 7);
        send_frame(fd, DT_WS_OP_BINARY, "\x02\x02\x02" "err2\n", 8);
        send_close(fd, DT_WS_CLOSE_NORMAL);
        usleep(100000);
        return false;
    }
    if (strncmp(r->target, "/toolbox/sb1/process/pty/create-connect?id=p1&cols=100&rows=30",
                62) == 0) {
        struct dt_ws_parser p;
        uint8_t in[4096];
        size_t n = 0, have;
        const char *proto = header_value(r->head, "Sec-WebSocket-Protocol", &n);

        assert_non_null(proto);
        assert_non_null(memmem(proto, n, "X-Daytona-Pty-Exit-Control", 26));
        /* {"FOO":"bar"} in base64url without padding. */
        assert_non_null(memmem(proto, n, "X-Daytona-Pty-Envs~eyJGT08iOiJiYXIifQ", 37));
        assert_non_null(strstr(r->target, "&cwd=%2Ftmp"));
        accept_ws(fd, r, strcmp(mode, "noproto") == 0 ? NULL : "X-Daytona-Pty-Exit-Control");
        if (strcmp(mode, "noproto") == 0)
            return false;
        /* "connected" and the first output in one write: the output stays buffered. */
        {
            uint8_t hdr[DT_WS_MAX_HEADER];
            const char *ctl = "{\"type\":\"control\",\"status\":\"connected\"}";
            size_t hl = dt_ws_frame_header(hdr, DT_WS_OP_TEXT, true, strlen(ctl), NULL);
            uint8_t all[256];
            memcpy(all, hdr, hl);
            memcpy(all + hl, ctl, strlen(ctl));
            hl += strlen(ctl);
            all[hl++] = 0x82;
            all[hl++] = 2;
            memcpy(all + hl, "$ ", 2);
            fx_write(fd, all, hl + 2);
        }
        dt_ws_parser_init(&p, DT_WS_SERVER, UINT64_MAX);
        have = r->extra_len;
        memcpy(in, r->extra, have);
        for (;;) {
            size_t off = 0;
            struct dt_ws_event ev;
            ssize_t k;

            while (off < have) {
                size_t used = 0;
                int rr = dt_ws_parse(&p, in + off, have - off, &used, &ev);
                off += used;
                if (rr <= 0)
                    break;
                if (ev.type == DT_WS_EV_DATA) {
                    char echo[600];
                    int m = snprintf(echo, sizeof(echo), "echo:%.*s", (int) ev.len,
                                     (const char *) ev.data);
                    send_frame(fd, DT_WS_OP_BINARY, echo, (size_t) m);
                    if (ev.len >= 4 && memcmp(ev.data, "exit", 4) == 0) {
                        const char *ex = "{\"type\":\"control\",\"status\":\"exited\","
                                         "\"exitCode\":5,\"exitReason\":\"bye\"}";
                        send_frame(fd, DT_WS_OP_TEXT, ex, strlen(ex));
                        send_close(fd, DT_WS_CLOSE_NORMAL);
                        usleep(100000);
                        return false;
                    }
                } else if (ev.opcode == DT_WS_OP_CLOSE)
                    return false;
            }
            k = recv(fd, in, sizeof(in), 0);
            if (k <= 0)
                return false;
            have = (size_t) k;
        }
    }
    if (strncmp(r->target, "/toolbox/sb1/process/pty/bad/connect", 36) == 0) {
        const char *e = "{\"type\":\"control\",\"status\":\"error\",\"error\":\"no such PTY\"}";
        accept_ws(fd, r, "X-Daytona-Pty-Exit-Control");
        send_frame(fd, DT_WS_OP_TEXT, e, strlen(e));
        send_close(fd, DT_WS_CLOSE_NORMAL);
        usleep(100000);
        return false;
    }
    fx_respond(fd, 404, "text/plain", "no route");
    return true;
}

static daytona_client *
new_client(struct fixture *fx)
{
    struct daytona_config cfg = { .api_key = "k", .ignore_env = true, .ignore_config_file = true,
                                  .request_timeout_ms = 5000 };
    char url[128];
    daytona_client *c = NULL;

    fx_url(fx, url, sizeof(url));
    cfg.api_url = url;
    assert_int_equal(daytona_client_new(&cfg, &c, NULL), 0);
    return c;
}

struct out {
    char o[256], e[256];
    size_t ol, el;
};

static int
on_out(const char *d, size_t n, void *ud)
{
    struct out *o = ud;
    memcpy(o->o + o->ol, d, n);
    o->ol += n;
    return 0;
}

static int
on_err(const char *d, size_t n, void *ud)
{
    struct out *o = ud;
    memcpy(o->e + o->el, d, n);
    o->el += n;
    return 0;
}

static void
test_follow(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct out o = { 0 };

    fx_start(&fx, handler, "ok");
    c = new_client(&fx);
    assert_int_equal(daytona_session_command_follow(c, "sb1", "s", "c", on_out, on_err, &o, &err),
                     0);
    assert_null(err);
    assert_int_equal(o.ol, 10);
    assert_memory_equal(o.o, "out1\nout2\n", 10);
    assert_int_equal(o.el, 10);
    assert_memory_equal(o.e, "err1\nerr2\n", 10);
    daytona_client_free(c);
    fx_stop(&fx);

    memset(&o, 0, sizeof(o));
    fx_start(&fx, handler, "trunc");
    c = new_client(&fx);
    assert_int_equal(daytona_session_command_follow(c, "sb1", "s", "c", on_out, on_err, &o, &err),
                     -ECONNRESET);
    assert_non_null(strstr(err->message, "closed before the end"));
    assert_memory_equal(o.o, "out1\n", 5);
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    fx_start(&fx, handler, "refuse");
    c = new_client(&fx);
    assert_int_equal(daytona_session_command_follow(c, "sb1", "s", "c", on_out, on_err, &o, &err),
                     -ENOENT);
    assert_int_equal(err->http_status, 404);
    assert_string_equal(err->server_code, "PROCESS_NOT_FOUND");
    assert_non_null(strstr(err->message, "command not found"));
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

static void
on_pty(const void *data, size_t len, void *ud)
{
    struct out *o = ud;
    if (o->ol + len < sizeof(o->o)) {
        memcpy(o->o + o->ol, data, len);
        o->ol += len;
    }
}

static void
test_pty(void **state)
{
    struct daytona_pty_params prm = { .id = "p1", .cwd = "/tmp", .cols = 100, .rows = 30,
                                      .env = (const char *[]) { "FOO=bar", NULL } };
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    daytona_pty *pty = NULL;
    struct out o = { 0 };
    const char *reason = NULL;
    int code = -1, r;

    fx_start(&fx, handler, "ok");
    c = new_client(&fx);
    assert_int_equal(daytona_pty_create(c, "sb1", &prm, &pty, &err), 0);
    assert_string_equal(daytona_pty_id(pty), "p1");
    assert_true(daytona_pty_pending(pty));
    assert_int_equal(daytona_pty_exit_code(pty, &code, NULL), -EAGAIN);
    assert_int_equal(daytona_pty_write(pty, "ls\n", 3, &err), 0);
    assert_int_equal(daytona_pty_write(pty, "exit\n", 5, &err), 0);
    /* The caller's own poll loop. */
    for (;;) {
        struct pollfd p = { .fd = daytona_pty_fd(pty), .events = POLLIN };
        if (!daytona_pty_pending(pty))
            assert_true(poll(&p, 1, 5000) > 0);
        r = daytona_pty_step(pty, on_pty, &o, &err);
        assert_true(r >= 0);
        if (r == 0)
            break;
    }
    o.o[o.ol] = 0;
    assert_string_equal(o.o, "$ echo:ls\necho:exit\n");
    assert_int_equal(daytona_pty_exit_code(pty, &code, &reason), 0);
    assert_int_equal(code, 5);
    assert_string_equal(reason, "bye");
    assert_int_equal(daytona_pty_step(pty, on_pty, &o, &err), 0);
    daytona_pty_close(pty);
    pty = NULL;

    /* The server reports an unknown PTY with a control error. */
    assert_int_equal(daytona_pty_connect(c, "sb1", "bad", &pty, &err), -ECONNREFUSED);
    assert_non_null(strstr(err->message, "no such PTY"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    /* A server that picks no subprotocol is refused. */
    fx_start(&fx, handler, "noproto");
    c = new_client(&fx);
    assert_int_equal(daytona_pty_create(c, "sb1", &prm, &pty, &err), -EPROTO);
    assert_non_null(strstr(err->message, "subprotocol"));
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow),
        cmocka_unit_test(test_pty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
