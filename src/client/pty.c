/* SPDX-License-Identifier: Apache-2.0 */
/* Interactive terminals (contract §3.7): the create-connect / connect WebSocket with subprotocol
 * X-Daytona-Pty-Exit-Control, control messages in JSON text frames, keystrokes as binary frames,
 * resize and kill over REST. Built so a CLI can drive it from its own poll loop. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client-int.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define PTY_PROTOCOL        "X-Daytona-Pty-Exit-Control"
#define PTY_CONNECT_TIMEOUT 10000

struct daytona_pty {
    daytona_client *c;
    char *sandbox;
    char *id;
    struct dc_ws ws;
    bool connected;
    bool exited;
    bool dropped;
    int exit_code;
    char *exit_reason;
    char *error;              /* from a control "error" message */
};

/* Handle a text message: a control object or, failing that, terminal output. Returns 1 when it
 * was a control message. */
static int
handle_text(daytona_pty *p, const uint8_t *data, size_t len)
{
    json_t *j = json_loadb((const char *) data, len, 0, NULL);
    const char *type, *status;

    if (!json_is_object(j)) {
        json_decref(j);
        return 0;
    }
    type = json_string_value(json_object_get(j, "type"));
    status = json_string_value(json_object_get(j, "status"));
    if (!type || strcmp(type, "control") != 0 || !status) {
        json_decref(j);
        return 0;
    }
    if (strcmp(status, "connected") == 0)
        p->connected = true;
    else if (strcmp(status, "exited") == 0) {
        p->exited = true;
        p->exit_code = (int) dc_jlong(j, "exitCode");
        free(p->exit_reason);
        p->exit_reason = dc_jstr(j, "exitReason");
    } else if (strcmp(status, "error") == 0) {
        free(p->error);
        p->error = dc_jstr(j, "error");
        if (!p->error)
            p->error = xstrdup("unknown error");
    }
    json_decref(j);
    return 1;
}

/* The close frame without an exit message: its reason may carry {"exitCode": n}, else a normal
 * close means exit code 0 (the SDK's fallbacks). */
static void
handle_close(daytona_pty *p, uint16_t code, const uint8_t *reason, size_t len)
{
    json_t *j;

    if (p->exited)
        return;
    j = len ? json_loadb((const char *) reason, len, 0, NULL) : NULL;
    if (json_is_object(j) && json_is_integer(json_object_get(j, "exitCode"))) {
        p->exited = true;
        p->exit_code = (int) dc_jlong(j, "exitCode");
        free(p->exit_reason);
        p->exit_reason = dc_jstr(j, "exitReason");
    } else if (code == DT_WS_CLOSE_NORMAL) {
        p->exited = true;
        p->exit_code = 0;
    } else
        p->dropped = true;
    json_decref(j);
}

/* Decode buffered frames. Returns 0 or -errno (protocol error). */
static int
drain(daytona_pty *p, bool until_connected, daytona_pty_output_cb cb, void *ud,
      daytona_error **err)
{
    struct dt_ws_event ev;
    int r = 0;

    /* While connecting, stop right after "connected": later frames are output for the
     * caller's callback, delivered by daytona_pty_step(). */
    while (!(until_connected && p->connected) && (r = dc_ws_next(&p->ws, &ev)) > 0) {
        if (ev.type == DT_WS_EV_CONTROL) {
            if (ev.opcode == DT_WS_OP_CLOSE)
                handle_close(p, ev.close_code, ev.data, ev.len);
            continue;
        }
        if (ev.opcode == DT_WS_OP_BINARY) {
            if (cb && ev.len > 0)
                cb(ev.data, ev.len, ud);
            continue;
        }
        /* Text: collect the whole message, it may be a control object. */
        if (dt_ws_msgbuf_add(&p->ws.msg, &ev) == 1) {
            if (!handle_text(p, p->ws.msg.data, p->ws.msg.len) && cb && p->ws.msg.len > 0)
                cb(p->ws.msg.data, p->ws.msg.len, ud);
        }
    }
    if (!(until_connected && p->connected) && r < 0)
        return dc_error(err, -r, "PTY '%s': %s", p->id,
                        dt_ws_parser_error(&p->ws.parser) ? dt_ws_parser_error(&p->ws.parser)
                                                          : "protocol error");
    return 0;
}

static int
open_pty(daytona_client *c, const char *sandbox, const char *id, char *suffix, const char *protos,
         daytona_pty **ret, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *sfx = suffix;
    uint64_t deadline = now_msec() + PTY_CONNECT_TIMEOUT;
    daytona_pty *p;
    int r;

    url = dc_toolbox_url(c, sandbox, err, &r, "%s", sfx);
    if (!url)
        return r;
    p = xcalloc(1, sizeof(*p));
    p->c = c;
    p->sandbox = xstrdup(sandbox);
    p->id = xstrdup(id);
    r = dc_ws_connect(c, url, protos, PTY_PROTOCOL, &p->ws, err);
    if (r < 0) {
        daytona_pty_close(p);
        return dc_error_wrap(err, "connect to PTY '%s'", id);
    }
    /* Output that arrives together with "connected" stays buffered: daytona_pty_pending(). */
    while (!p->connected) {
        uint64_t now = now_msec();

        r = drain(p, true, NULL, NULL, err);
        if (r < 0)
            break;
        if (p->error) {
            r = dc_error(err, ECONNREFUSED, "connect to PTY '%s': %s", id, p->error);
            break;
        }
        if (p->connected)
            break;
        if (p->exited || p->dropped || p->ws.closed) {
            r = dc_error(err, ECONNRESET, "connect to PTY '%s': the server closed the connection",
                         id);
            break;
        }
        if (now >= deadline) {
            r = dc_error(err, ETIMEDOUT, "connect to PTY '%s': no \"connected\" message within "
                                         "10 s", id);
            break;
        }
        r = dc_ws_fill(&p->ws, (int) (deadline - now));
        if (r == 0) {
            r = dc_error(err, ECONNRESET, "connect to PTY '%s': the connection closed", id);
            break;
        }
        if (r < 0 && r != -EAGAIN) {
            r = dc_error_errno(err, r, "connect to PTY '%s'", id);
            break;
        }
        r = 0;
    }
    if (r < 0) {
        daytona_pty_close(p);
        return r;
    }
    *ret = p;
    return 0;
}

/* base64url without padding (the X-Daytona-Pty-Envs~ token). */
static char *
b64url(const char *s, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = xmalloc((n + 2) / 3 * 4 + 1), *q = o;
    const unsigned char *p = (const unsigned char *) s;
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *q++ = tbl[p[i] >> 2];
        *q++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *q++ = tbl[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *q++ = tbl[p[i + 2] & 63];
    }
    if (i < n) {
        *q++ = tbl[p[i] >> 2];
        if (i + 1 < n) {
            *q++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *q++ = tbl[(p[i + 1] & 15) << 2];
        } else
            *q++ = tbl[(p[i] & 3) << 4];
    }
    *q = 0;
    return o;
}

int
daytona_pty_create(daytona_client *c, const char *sandbox, const struct daytona_pty_params *prm,
                   daytona_pty **ret, daytona_error **err)
{
    static const struct daytona_pty_params none = { 0 };
    _cleanup_free_ char *id = NULL, *eid = NULL, *cwd = NULL, *protos = NULL;
    unsigned cols, rows;
    json_t *envs = json_object();
    int r;

    if (!prm)
        prm = &none;
    cols = prm->cols ? prm->cols : 80;
    rows = prm->rows ? prm->rows : 24;
    if (prm->id)
        id = xstrdup(prm->id);
    else {
        uint8_t m[4];
        r = dt_ws_random_mask(m);
        if (r < 0) {
            json_decref(envs);
            return dc_error_errno(err, r, "create PTY: random id");
        }
        id = xasprintf("pty-%02x%02x%02x%02x", m[0], m[1], m[2], m[3]);
    }
    r = dc_kv_to_json(prm->env, envs, "environment variable", err);
    if (r < 0) {
        json_decref(envs);
        return r;
    }
    if (json_object_size(envs) > 0) {
        _cleanup_free_ char *t = json_dumps(envs, JSON_COMPACT);
        _cleanup_free_ char *b = b64url(t, strlen(t));
        protos = xasprintf("X-Daytona-Pty-Envs~%s, " PTY_PROTOCOL, b);
    } else
        protos = xstrdup(PTY_PROTOCOL);
    json_decref(envs);
    eid = dc_escape(id);
    if (prm->cwd) {
        _cleanup_free_ char *e = dc_escape(prm->cwd);
        cwd = xasprintf("&cwd=%s", e);
    }
    return open_pty(c, sandbox, id,
                    xasprintf("/process/pty/create-connect?id=%s&cols=%u&rows=%u%s", eid, cols,
                              rows, cwd ? cwd : ""),
                    protos, ret, err);
}

int
daytona_pty_connect(daytona_client *c, const char *sandbox, const char *pty_id, daytona_pty **ret,
                    daytona_error **err)
{
    if (!pty_id || !pty_id[0])
        return dc_error(err, EINVAL, "connect to PTY: no id given");
    return open_pty(c, sandbox, pty_id, xasprintf("/process/pty/%s/connect", pty_id),
                    PTY_PROTOCOL, ret, err);
}

const char *
daytona_pty_id(const daytona_pty *pty)
{
    return pty->id;
}

int
daytona_pty_fd(const daytona_pty *pty)
{
    return pty->ws.fd;
}

bool
daytona_pty_pending(const daytona_pty *pty)
{
    return pty->ws.buf_off < pty->ws.buf_len;
}

int
daytona_pty_step(daytona_pty *p, daytona_pty_output_cb on_output, void *userdata,
                 daytona_error **err)
{
    int r;

    for (;;) {
        if (p->exited)
            return 0;
        r = drain(p, false, on_output, userdata, err);
        if (r < 0)
            return r;
        if (p->exited)
            return 0;
        if (p->error)
            return dc_error(err, EIO, "PTY '%s': %s", p->id, p->error);
        if (p->dropped || p->ws.closed)
            return dc_error(err, ECONNRESET, "PTY '%s': the connection closed without an exit "
                                             "status", p->id);
        r = dc_ws_fill(&p->ws, 0);
        if (r == -EAGAIN)
            return 1;
        if (r == 0) {
            p->dropped = true;
            return dc_error(err, ECONNRESET, "PTY '%s': the connection closed without an exit "
                                             "status", p->id);
        }
        if (r < 0)
            return dc_error_errno(err, r, "PTY '%s': read", p->id);
    }
}

int
daytona_pty_wait(daytona_pty *pty, daytona_pty_output_cb on_output, void *userdata,
                 int timeout_ms, daytona_error **err)
{
    uint64_t deadline = timeout_ms >= 0 ? now_msec() + (uint64_t) timeout_ms : 0;

    for (;;) {
        struct pollfd pfd = { .fd = pty->ws.fd, .events = POLLIN };
        int r = daytona_pty_step(pty, on_output, userdata, err), t = -1;

        if (r <= 0)
            return r;
        if (timeout_ms >= 0) {
            uint64_t now = now_msec();
            if (now >= deadline)
                return dc_error(err, ETIMEDOUT, "PTY '%s' did not exit within %d ms", pty->id,
                                timeout_ms);
            t = (int) (deadline - now);
        }
        if (poll(&pfd, 1, t) < 0 && errno != EINTR)
            return dc_error_errno(err, errno, "PTY '%s': poll", pty->id);
    }
}

int
daytona_pty_write(daytona_pty *pty, const void *data, size_t len, daytona_error **err)
{
    int r;

    if (len == 0)
        return 0;
    r = dc_ws_send(&pty->ws, DT_WS_OP_BINARY, data, len);
    if (r < 0)
        return dc_error_errno(err, r, "PTY '%s': send input", pty->id);
    return 0;
}

int
daytona_pty_resize(daytona_pty *pty, unsigned cols, unsigned rows, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = xasprintf("resize PTY '%s'", pty->id);
    _cleanup_free_ char *eid = dc_escape(pty->id);
    json_t *body;
    int r;

    if (cols == 0 || rows == 0 || cols > 10000 || rows > 10000)
        return dc_error(err, EINVAL, "%s: invalid size %ux%u", what, cols, rows);
    url = dc_toolbox_url(pty->c, pty->sandbox, err, &r, "/process/pty/%s/resize", eid);
    if (!url)
        return r;
    body = json_pack("{s:I,s:I}", "cols", (json_int_t) cols, "rows", (json_int_t) rows);
    r = dc_json_call(pty->c, "POST", url, body, 0, NULL, what, err);
    json_decref(body);
    return r;
}

int
daytona_pty_exit_code(const daytona_pty *pty, int *code, const char **reason)
{
    if (!pty->exited)
        return -EAGAIN;
    if (code)
        *code = pty->exit_code;
    if (reason)
        *reason = pty->exit_reason;
    return 0;
}

int
daytona_pty_kill(daytona_pty *pty, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = xasprintf("kill PTY '%s'", pty->id);
    _cleanup_free_ char *eid = dc_escape(pty->id);
    int r;

    url = dc_toolbox_url(pty->c, pty->sandbox, err, &r, "/process/pty/%s", eid);
    if (!url)
        return r;
    return dc_json_call(pty->c, "DELETE", url, NULL, 0, NULL, what, err);
}

void
daytona_pty_close(daytona_pty *pty)
{
    if (!pty)
        return;
    if (pty->ws.fd >= 0 && !pty->ws.sent_close) {
        uint8_t frame[DT_WS_MAX_CLOSE_FRAME], mask[4];
        if (dt_ws_random_mask(mask) == 0) {
            size_t fl = dt_ws_close_frame(frame, DT_WS_CLOSE_NORMAL, NULL, 0, mask);
            /* Best effort: the socket is non-blocking and we are going away anyway. */
            (void) send(pty->ws.fd, frame, fl, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    dc_ws_done(&pty->ws);
    free(pty->sandbox);
    free(pty->id);
    free(pty->exit_reason);
    free(pty->error);
    free(pty);
}
