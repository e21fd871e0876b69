/* SPDX-License-Identifier: Apache-2.0 */
/* Interactive terminals (contract 3.7): a shell on a pseudo-terminal that outlives its
 * WebSockets. Sockets attach with /process/pty/create-connect or /process/pty/{id}/connect,
 * keystrokes go to the master, the master's output goes to every attached socket; when the shell
 * exits each socket gets the "exited" control frame and is closed with 1000. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "dt/http.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/sha1.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define PTY_MAX          64
#define PTY_ID_MAX       256
#define PTY_MAX_SOCKETS  8
#define PTY_READ         (64u << 10) /* also the largest output frame */
#define PTY_HIGH_WATER   (1u << 20)  /* stop reading the master while a socket queues more */
#define PTY_INPUT_MAX    (1u << 20)  /* keystrokes the shell has not read yet */
#define PTY_BACKLOG      (64u << 10) /* output produced while nobody was attached, replayed */
#define PTY_ENVS_MAX     256
#define EXIT_CONTROL     "X-Daytona-Pty-Exit-Control"
#define ENVS_PREFIX      "X-Daytona-Pty-Envs~"

struct attach {
    struct attach *next;
    struct dt_pty *pty; /* NULL once the PTY is gone */
    struct dt_httpd_ws *ws;
};

struct dt_pty {
    struct dt_pty *next;
    struct dt_agent *a;
    char *id;
    char *cwd;          /* NULL: the work dir */
    json_t *envs;       /* object of strings, owned */
    uint16_t cols, rows;
    int64_t created_ms;
    bool lazy_start;
    struct dt_proc *proc;
    bool exited;
    int exit_code;
    int master;
    uv_poll_t *poll;
    bool reading;
    char *in_buf;
    size_t in_len;
    char *backlog;
    size_t backlog_len;
    struct attach *attached;
};

static void
handle_free(uv_handle_t *h)
{
    free(h);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *
pty_json(const struct dt_pty *p)
{
    char created[64];

    format_iso8601_msec(p->created_ms, created);
    return json_pack("{s:s, s:s, s:O, s:i, s:i, s:s, s:b, s:b}", "id", p->id, "cwd",
                     p->cwd ? p->cwd : p->a->workdir, "envs", p->envs, "cols", (int) p->cols,
                     "rows", (int) p->rows, "createdAt", created, "active",
                     p->proc != NULL && !p->exited, "lazyStart", p->lazy_start);
}

static struct dt_pty *
pty_find(struct dt_agent *a, const char *id)
{
    for (struct dt_pty *p = a->ptys; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

static void
send_control(struct dt_httpd_ws *ws, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (s)
        (void) dt_httpd_ws_send(ws, DT_WS_OP_TEXT, s, strlen(s));
    free(s);
}

static void
attach_detach(struct attach *at)
{
    if (!at->pty)
        return;
    for (struct attach **pp = &at->pty->attached; *pp; pp = &(*pp)->next)
        if (*pp == at) {
            *pp = at->next;
            break;
        }
    at->pty = NULL;
}

/* Say goodbye to every attached socket (their on_close frees the attach records later). */
static void
pty_close_sockets(struct dt_pty *p, json_t *control)
{
    while (p->attached) {
        struct attach *at = p->attached;
        attach_detach(at);
        if (control)
            send_control(at->ws, json_incref(control));
        dt_httpd_ws_close(at->ws, DT_WS_CLOSE_NORMAL, NULL);
    }
    json_decref(control);
}

static void pty_update_poll(struct dt_pty *p);

/* Read the master while every attached socket has room. EIO means the slave side is gone (all
 * its processes have exited). */
static void
pty_read(struct dt_pty *p, bool force)
{
    char *buf = xmalloc(PTY_READ);

    while (p->master >= 0) {
        ssize_t n;
        bool full = false;

        for (struct attach *at = p->attached; at; at = at->next)
            full |= dt_httpd_ws_queued(at->ws) > PTY_HIGH_WATER;
        if (full && !force)
            break;
        n = read(p->master, buf, PTY_READ);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                break;
            p->reading = false; /* EIO / EOF: nothing more will come */
            break;
        }
        if (!p->attached) {
            /* Keep the tail for the next socket: a terminal with a prompt to show. */
            if ((size_t) n >= PTY_BACKLOG) {
                p->backlog = xrealloc(p->backlog, PTY_BACKLOG);
                memcpy(p->backlog, buf + n - PTY_BACKLOG, PTY_BACKLOG);
                p->backlog_len = PTY_BACKLOG;
            } else {
                size_t keep = p->backlog_len + (size_t) n > PTY_BACKLOG ?
                                      PTY_BACKLOG - (size_t) n : p->backlog_len;
                char *nb = xmalloc(keep + (size_t) n);
                if (keep)
                    memcpy(nb, p->backlog + p->backlog_len - keep, keep);
                memcpy(nb + keep, buf, (size_t) n);
                free(p->backlog);
                p->backlog = nb;
                p->backlog_len = keep + (size_t) n;
            }
            continue;
        }
        for (struct attach *at = p->attached, *next; at; at = next) {
            next = at->next;
            (void) dt_httpd_ws_send(at->ws, DT_WS_OP_BINARY, buf, (size_t) n);
        }
    }
    free(buf);
}

static void
pty_write(struct dt_pty *p)
{
    while (p->in_len > 0 && p->master >= 0) {
        ssize_t n = write(p->master, p->in_buf, p->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN)
                p->in_len = 0; /* the terminal is gone: drop the keystrokes */
            break;
        }
        memmove(p->in_buf, p->in_buf + n, p->in_len - (size_t) n);
        p->in_len -= (size_t) n;
    }
}

static void
on_master(uv_poll_t *h, int status, int events)
{
    struct dt_pty *p = h->data;

    if (status < 0 || (events & UV_READABLE))
        pty_read(p, false);
    if (events & UV_WRITABLE)
        pty_write(p);
    pty_update_poll(p);
}

static void
pty_update_poll(struct dt_pty *p)
{
    int ev = 0;
    bool full = false;

    if (!p->poll)
        return;
    for (struct attach *at = p->attached; at; at = at->next)
        full |= dt_httpd_ws_queued(at->ws) > PTY_HIGH_WATER;
    if (p->reading && !full)
        ev |= UV_READABLE;
    if (p->in_len > 0)
        ev |= UV_WRITABLE;
    if (ev)
        (void) uv_poll_start(p->poll, ev, on_master);
    else
        (void) uv_poll_stop(p->poll);
}

static void
pty_close_master(struct dt_pty *p)
{
    if (p->poll) {
        uv_close((uv_handle_t *) p->poll, handle_free);
        p->poll = NULL;
    }
    p->master = safe_close(p->master);
}

static void
on_shell_exit(struct dt_proc *proc, const struct dt_proc_exit *e, void *ud)
{
    struct dt_pty *p = ud;
    json_t *ctl;

    /* What the shell wrote last is still in the master: deliver it before the exit frame. */
    if (p->reading)
        pty_read(p, true);
    p->exited = true;
    p->exit_code = e->code;
    ctl = json_pack("{s:s, s:s, s:i}", "type", "control", "status", "exited", "exitCode", e->code);
    if (e->signal)
        json_object_set_new(ctl, "exitReason", json_string(strsignal(e->signal)));
    pty_close_sockets(p, ctl);
    pty_close_master(p);
    dt_proc_free(p->proc);
    p->proc = NULL;
}

static void
pty_free(struct dt_pty *p)
{
    if (!p)
        return;
    if (p->proc) {
        dt_proc_kill(p->proc, SIGKILL);
        dt_proc_free(p->proc);
        p->proc = NULL;
    }
    pty_close_sockets(p, json_pack("{s:s, s:s, s:i, s:s}", "type", "control", "status", "exited",
                                   "exitCode", 137, "exitReason", "killed"));
    pty_close_master(p);
    json_decref(p->envs);
    free(p->in_buf);
    free(p->backlog);
    free(p->cwd);
    free(p->id);
    free(p);
}

static void
pty_unlink(struct dt_agent *a, struct dt_pty *p)
{
    for (struct dt_pty **pp = &a->ptys; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static int
pty_start(struct dt_pty *p, struct dt_error **err)
{
    struct dt_agent *a = p->a;
    json_t *extra = json_deep_copy(p->envs);
    char *argv[] = { a->user.shell, (char *) "-i", NULL };
    char **env;
    int r;

    if (!json_object_get(extra, "TERM"))
        json_object_set_new(extra, "TERM", json_string("xterm-256color"));
    env = dt_agent_env(a, extra);
    json_decref(extra);
    {
        struct dt_spawn sp = {
            .argv = argv,
            .env = env,
            .cwd = p->cwd ? p->cwd : a->workdir,
            .stdio = { -1, -1, -1 },
            .pty = true,
            .cols = p->cols,
            .rows = p->rows,
        };
        r = dt_proc_spawn(a, &sp, on_shell_exit, p, &p->proc, &p->master, err);
    }
    strv_free(env);
    if (r < 0)
        return r;
    p->poll = xmalloc(sizeof(*p->poll));
    r = uv_poll_init(a->loop, p->poll, p->master);
    if (r < 0) {
        free(p->poll);
        p->poll = NULL;
        return dt_error_errno(err, -r, "watch the terminal of pty '%s'", p->id);
    }
    p->poll->data = p;
    p->reading = true;
    pty_update_poll(p);
    return 0;
}

static bool
valid_size(json_int_t v)
{
    return v >= 1 && v <= 1000;
}

/* Validate and create a PTY record (started unless LAZY). Replaces an exited one of the same id.
 * Returns 0 or -errno with *err; -EEXIST when a live one has that id. */
static int
pty_create(struct dt_agent *a, const char *id, const char *cwd, json_t *envs, json_int_t cols,
           json_int_t rows, bool lazy, struct dt_pty **ret, struct dt_error **err)
{
    _cleanup_free_ char *gen = NULL;
    struct dt_pty *p, *old;
    const char *k;
    json_t *v;
    size_t n = 0;
    int r;

    if (!id || !*id)
        id = gen = dt_agent_new_id(a, "pty-");
    if (strlen(id) > PTY_ID_MAX || strchr(id, '/'))
        return dt_error_set(err, EINVAL, "pty id must be 1 to %d characters without '/'",
                            PTY_ID_MAX);
    if (!valid_size(cols) || !valid_size(rows))
        return dt_error_set(err, EINVAL, "cols and rows must be between 1 and 1000");
    if (envs && !json_is_object(envs))
        return dt_error_set(err, EINVAL, "envs must be an object of strings");
    if (envs) {
        if (json_object_size(envs) > PTY_ENVS_MAX)
            return dt_error_set(err, EINVAL, "too many envs (at most %d)", PTY_ENVS_MAX);
        json_object_foreach(envs, k, v) {
            if (!json_is_string(v) || !*k || strchr(k, '='))
                return dt_error_set(err, EINVAL, "envs must map names to strings: '%s'", k);
        }
    }
    old = pty_find(a, id);
    if (old && !old->exited)
        return dt_error_set(err, EEXIST, "pty '%s' already exists", id);
    if (old) {
        pty_unlink(a, old);
        pty_free(old);
    }
    for (p = a->ptys; p; p = p->next)
        n++;
    if (n >= PTY_MAX) {
        /* Forget exited terminals first. */
        for (struct dt_pty **pp = &a->ptys; *pp;) {
            if ((*pp)->exited) {
                struct dt_pty *x = *pp;
                *pp = x->next;
                pty_free(x);
                n--;
            } else
                pp = &(*pp)->next;
        }
        if (n >= PTY_MAX)
            return dt_error_set(err, EBUSY, "too many ptys (at most %d)", PTY_MAX);
    }
    p = xcalloc(1, sizeof(*p));
    p->a = a;
    p->id = xstrdup(id);
    p->cwd = cwd && *cwd ? xstrdup(cwd) : NULL;
    p->envs = envs ? json_deep_copy(envs) : json_object();
    p->cols = (uint16_t) cols;
    p->rows = (uint16_t) rows;
    p->created_ms = now_ms();
    p->lazy_start = lazy;
    p->master = -EBADF;
    if (!lazy) {
        r = pty_start(p, err);
        if (r < 0) {
            pty_free(p);
            return r;
        }
    }
    p->next = a->ptys;
    a->ptys = p;
    *ret = p;
    return 0;
}

static void
reply_errno(struct dt_httpd_req *req, int r, const struct dt_error *e)
{
    const char *msg = e && e->message ? e->message : strerror(-r);

    switch (-r) {
    case EINVAL:
        dt_agent_error(req, 400, "BAD_REQUEST", "%s", msg);
        break;
    case EEXIST:
    case EBUSY:
        dt_agent_error(req, 409, "CONFLICT", "%s", msg);
        break;
    case ENOENT:
    case ENOTDIR:
        dt_agent_error(req, 400, "BAD_REQUEST", "%s", msg);
        break;
    default:
        dt_agent_error(req, 500, NULL, "%s", msg);
        break;
    }
}

/* ---- WebSocket ---- */

static void
on_ws_message(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len,
              void *ud)
{
    struct attach *at = ud;
    struct dt_pty *p = at->pty;

    if (!p || p->master < 0 || len == 0)
        return;
    if (p->in_len + len > PTY_INPUT_MAX)
        return; /* the shell is not reading: drop keystrokes rather than grow without bound */
    p->in_buf = xrealloc(p->in_buf, p->in_len + len);
    memcpy(p->in_buf + p->in_len, data, len);
    p->in_len += len;
    pty_write(p);
    pty_update_poll(p);
}

static void
on_ws_drain(struct dt_httpd_ws *ws, void *ud)
{
    struct attach *at = ud;

    if (at->pty)
        pty_update_poll(at->pty);
}

static void
on_ws_close(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
    struct attach *at = ud;
    struct dt_pty *p = at->pty;

    /* The PTY stays: a later connect reattaches. */
    attach_detach(at);
    free(at);
    if (p)
        pty_update_poll(p);
}

/* The subprotocols the client offered: whether it offered the exit-control one, and the envs
 * token decoded into *RET_ENVS (NULL when absent or malformed). */
static bool
parse_protocols(struct dt_httpd_req *req, json_t **ret_envs)
{
    const struct dt_http_head *h = dt_httpd_req_head(req);
    const char *v;
    size_t idx = 0;
    bool exit_control = false;

    *ret_envs = NULL;
    while ((v = dt_http_head_get_next(h, "Sec-WebSocket-Protocol", &idx))) {
        const char *p = v;
        while (*p) {
            const char *e;
            size_t len;

            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            e = p;
            while (*e && *e != ',')
                e++;
            len = (size_t) (e - p);
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            if (len == strlen(EXIT_CONTROL) && memcmp(p, EXIT_CONTROL, len) == 0)
                exit_control = true;
            else if (len > strlen(ENVS_PREFIX) && !*ret_envs &&
                     memcmp(p, ENVS_PREFIX, strlen(ENVS_PREFIX)) == 0) {
                /* base64url without padding -> standard padded base64 -> JSON object. */
                const char *b = p + strlen(ENVS_PREFIX);
                size_t bl = len - strlen(ENVS_PREFIX);
                _cleanup_free_ char *std = xmalloc(bl + 4);
                _cleanup_free_ uint8_t *raw = NULL;
                size_t sl = 0;
                long rl;

                for (size_t i = 0; i < bl; i++)
                    std[sl++] = b[i] == '-' ? '+' : b[i] == '_' ? '/' : b[i];
                while (sl % 4)
                    std[sl++] = '=';
                raw = xmalloc(sl / 4 * 3 + 1);
                rl = dt_base64_decode(std, sl, raw);
                if (rl >= 0) {
                    json_t *j = json_loadb((const char *) raw, (size_t) rl, 0, NULL);
                    if (json_is_object(j))
                        *ret_envs = j;
                    else
                        json_decref(j);
                }
            }
            p = e;
        }
    }
    return exit_control;
}

static void
ws_error(struct dt_httpd_ws *ws, const char *msg)
{
    send_control(ws, json_pack("{s:s, s:s, s:s}", "type", "control", "status", "error", "error",
                               msg));
    dt_httpd_ws_close(ws, DT_WS_CLOSE_NORMAL, NULL);
}

static void
ws_closed_early(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
}

/* Accept REQ and attach it to P; P NULL: answer the error frame MSG instead. */
static void
attach(struct dt_agent *a, struct dt_httpd_req *req, bool exit_control, struct dt_pty *p,
       const char *msg)
{
    static const struct dt_httpd_ws_callbacks cbs = {
        .on_message = on_ws_message,
        .on_drain = on_ws_drain,
        .on_close = on_ws_close,
    };
    static const struct dt_httpd_ws_callbacks cbs_err = { .on_close = ws_closed_early };
    const char *proto = exit_control ? EXIT_CONTROL : NULL;
    struct attach *at;
    struct dt_httpd_ws *ws;
    size_t n = 0;

    if (!p) {
        if (dt_httpd_ws_accept(req, proto, &cbs_err, NULL, &ws) == 0)
            ws_error(ws, msg);
        return;
    }
    for (at = p->attached; at; at = at->next)
        n++;
    at = xcalloc(1, sizeof(*at));
    if (dt_httpd_ws_accept(req, proto, &cbs, at, &ws) < 0) {
        free(at);
        return;
    }
    at->ws = ws;
    send_control(ws, json_pack("{s:s, s:s}", "type", "control", "status", "connected"));
    if (n >= PTY_MAX_SOCKETS) {
        /* The oldest attachment makes room. */
        struct attach *last = p->attached;
        while (last->next)
            last = last->next;
        attach_detach(last);
        dt_httpd_ws_close(last->ws, DT_WS_CLOSE_NORMAL, "replaced by a newer connection");
    }
    if (p->backlog_len) {
        (void) dt_httpd_ws_send(ws, DT_WS_OP_BINARY, p->backlog, p->backlog_len);
        free(p->backlog);
        p->backlog = NULL;
        p->backlog_len = 0;
    }
    at->pty = p;
    at->next = p->attached;
    p->attached = at;
    pty_update_poll(p);
}

static bool
query_size(struct dt_httpd_req *req, const char *name, json_int_t def, json_int_t *ret)
{
    const char *v = dt_httpd_req_query(req, name);
    uint32_t u;

    if (!v || !*v) {
        *ret = def;
        return true;
    }
    if (parse_u32(v, &u) < 0 || !valid_size(u))
        return false;
    *ret = u;
    return true;
}

static void
route_create_connect(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *e = NULL;
    json_t *envs = NULL;
    bool exit_control = parse_protocols(req, &envs);
    struct dt_pty *p = NULL;
    json_int_t cols, rows;
    int r;

    if (!dt_httpd_req_is_websocket(req)) {
        json_decref(envs);
        dt_agent_error(req, 400, "BAD_REQUEST", "this endpoint needs a WebSocket upgrade");
        return;
    }
    if (!query_size(req, "cols", 80, &cols) || !query_size(req, "rows", 24, &rows)) {
        json_decref(envs);
        attach(a, req, exit_control, NULL, "cols and rows must be between 1 and 1000");
        return;
    }
    r = pty_create(a, dt_httpd_req_query(req, "id"), dt_httpd_req_query(req, "cwd"), envs, cols,
                   rows, false, &p, &e);
    json_decref(envs);
    if (r < 0) {
        attach(a, req, exit_control, NULL, e ? e->message : "cannot create the pty");
        return;
    }
    attach(a, req, exit_control, p, NULL);
}

static void
route_connect(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *e = NULL;
    _cleanup_free_ char *msg = NULL;
    json_t *envs = NULL;
    bool exit_control = parse_protocols(req, &envs);
    struct dt_pty *p = pty_find(a, params[0]);

    json_decref(envs);
    if (!dt_httpd_req_is_websocket(req)) {
        dt_agent_error(req, 400, "BAD_REQUEST", "this endpoint needs a WebSocket upgrade");
        return;
    }
    if (!p)
        msg = xasprintf("pty '%s' not found", params[0]);
    else if (p->exited)
        msg = xasprintf("pty '%s' has exited (code %d)", params[0], p->exit_code);
    else if (!p->proc && pty_start(p, &e) < 0)
        msg = xasprintf("cannot start pty '%s': %s", params[0], e ? e->message : "failed");
    attach(a, req, exit_control, msg ? NULL : p, msg);
}

static void
create_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *e = NULL;
    json_t *jid = json_object_get(body, "id"), *jcwd = json_object_get(body, "cwd");
    json_t *jcols = json_object_get(body, "cols"), *jrows = json_object_get(body, "rows");
    json_t *envs = json_object_get(body, "envs");
    struct dt_pty *p;
    int r;

    if ((jid && !json_is_null(jid) && !json_is_string(jid)) ||
        (jcwd && !json_is_null(jcwd) && !json_is_string(jcwd)) ||
        (jcols && !json_is_null(jcols) && !json_is_integer(jcols)) ||
        (jrows && !json_is_null(jrows) && !json_is_integer(jrows))) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY",
                       "id and cwd must be strings, cols and rows integers");
        return;
    }
    if (json_is_null(envs))
        envs = NULL;
    r = pty_create(a, json_string_value(jid), json_string_value(jcwd), envs,
                   json_is_integer(jcols) ? json_integer_value(jcols) : 80,
                   json_is_integer(jrows) ? json_integer_value(jrows) : 24,
                   json_is_true(json_object_get(body, "lazyStart")), &p, &e);
    if (r < 0) {
        reply_errno(req, r, e);
        return;
    }
    dt_httpd_reply_json(req, 201, json_pack("{s:s}", "sessionId", p->id));
}

static void
route_create(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, create_json);
}

static void
route_list(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    json_t *arr = json_array();

    for (struct dt_pty *p = a->ptys; p; p = p->next)
        json_array_append_new(arr, pty_json(p));
    dt_httpd_reply_json(req, 200, json_pack("{s:o}", "sessions", arr));
}

static struct dt_pty *
find_or_404(struct dt_agent *a, struct dt_httpd_req *req, const char *id)
{
    struct dt_pty *p = pty_find(a, id);

    if (!p)
        dt_agent_error(req, 404, "PROCESS_NOT_FOUND", "pty '%s' not found", id);
    return p;
}

static void
route_info(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_pty *p = find_or_404(a, req, params[0]);

    if (p)
        dt_httpd_reply_json(req, 200, pty_json(p));
}

static void
route_delete(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_pty *p = find_or_404(a, req, params[0]);

    if (!p)
        return;
    pty_unlink(a, p);
    pty_free(p);
    dt_agent_ok(req);
}

static void
resize_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    struct dt_pty *p = find_or_404(a, req, params[0]);
    json_t *jc = json_object_get(body, "cols"), *jr = json_object_get(body, "rows");

    if (!p)
        return;
    if (!json_is_integer(jc) || !json_is_integer(jr) || !valid_size(json_integer_value(jc)) ||
        !valid_size(json_integer_value(jr))) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY",
                       "cols and rows must be integers between 1 and 1000");
        return;
    }
    p->cols = (uint16_t) json_integer_value(jc);
    p->rows = (uint16_t) json_integer_value(jr);
    if (p->master >= 0) {
        /* The kernel sends SIGWINCH to the terminal's foreground process group. */
        struct winsize ws = { .ws_row = p->rows, .ws_col = p->cols };
        if (ioctl(p->master, TIOCSWINSZ, &ws) < 0) {
            dt_agent_error(req, 500, NULL, "resize pty '%s': %s", p->id, strerror(errno));
            return;
        }
    }
    dt_httpd_reply_json(req, 200, pty_json(p));
}

static void
route_resize(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, resize_json);
}

/* create-connect comes before the generic info route (a "*" segment). */
const struct dt_route dt_pty_routes[] = {
    { "GET", "/process/pty/create-connect", route_create_connect },
    { "POST", "/process/pty", route_create },
    { "GET", "/process/pty", route_list },
    { "GET", "/process/pty/*", route_info },
    { "DELETE", "/process/pty/*", route_delete },
    { "GET", "/process/pty/*/connect", route_connect },
    { "POST", "/process/pty/*/resize", route_resize },
    {},
};

int
dt_pty_busy(struct dt_agent *a)
{
    int n = 0;

    for (struct dt_pty *p = a->ptys; p; p = p->next)
        n += p->attached != NULL && p->proc != NULL && !p->exited;
    return n;
}
