/* SPDX-License-Identifier: Apache-2.0 */
/* The stateful code interpreter (contract 3.8): contexts, each one long-lived Python worker
 * (py/interp.py, started lazily as the sandbox user), and the execute WebSocket that runs one cell
 * in a context and relays the worker's events as JSON text frames. One cell runs at a time per
 * context; further executes wait in a FIFO queue (their timeout starts when their cell starts). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "py_interp.h"
#include "dt/banned.h"

#define MAX_EVENT_LINE   (1u << 20)  /* longest event line read from a worker */
#define MAX_WS_QUEUED    (8u << 20)  /* stop reading the worker above this much unsent output */
#define KILL_GRACE_MS    2000        /* SIGINT -> SIGKILL */
#define EXIT_GRACE_MS    200         /* wait for the other half of exit + EOF of the event pipe */
#define READ_CHUNK       65536

/* Close codes. 4008 is what the SDK maps to DaytonaTimeoutError; the others reach the SDK user as
 * DaytonaConnectionError("<reason> (close code N)"). */
#define CLOSE_OK           1000
#define CLOSE_BAD_REQUEST  1008
#define CLOSE_INTERNAL     1011
#define CLOSE_NOT_FOUND    4004
#define CLOSE_TIMEOUT      4008

struct interp_worker;

/* One execute WebSocket. Lives until both its socket has closed (ws == NULL) and it is neither
 * queued nor running in a context (ctx == NULL). */
struct interp_exec {
    struct interp_exec *next;   /* queue link */
    struct dt_agent *a;
    struct dt_httpd_ws *ws;
    struct dt_interp_ctx *ctx;
    bool got_request;
    bool closing;               /* close frame sent: nothing more to send */
    bool timed_out;
    char *line;                 /* the request line for the worker */
    size_t line_len;
    uint64_t timeout_ms;
};

struct dt_interp_ctx {
    struct dt_interp_ctx *next;
    struct dt_agent *a;
    char *id;
    char *cwd;
    char created[64];
    bool is_default;
    struct interp_worker *w;    /* NULL until first use and after the worker died */
    struct interp_exec *running;
    struct interp_exec *qhead, *qtail;
};

/* A worker process and its pipes. Detached from its context (ctx NULL) when retired; freed when
 * every handle has been closed. */
struct interp_worker {
    struct dt_interp_ctx *ctx;
    struct dt_proc *proc;
    uv_pipe_t out, err, ev, req;
    uv_timer_t timeout_timer, kill_timer, exit_timer;
    bool has_out, has_err, has_ev, has_req;
    int open_handles;
    bool retired, exited, ev_eof, interrupting, paused;
    struct dt_proc_exit exit;
    char *line;                 /* partial event line */
    size_t line_len;
    bool overflow;              /* dropping an over-long line up to its newline */
    char carry[2][4];           /* incomplete UTF-8 tails of raw stdout/stderr */
    size_t carry_len[2];
};

struct write_req {
    uv_write_t req;
    char *buf;
};

static void ctx_start_next(struct dt_interp_ctx *ctx);

/* ---- executions ---- */

static void
exec_maybe_free(struct interp_exec *e)
{
    if (e->ws || e->ctx)
        return;
    free(e->line);
    free(e);
}

static void
exec_send_json(struct interp_exec *e, json_t *j)
{
    char *s;

    if (e->ws && !e->closing) {
        s = json_dumps(j, JSON_COMPACT);
        if (s)
            (void) dt_httpd_ws_send(e->ws, DT_WS_OP_TEXT, s, strlen(s));
        free(s);
    }
    json_decref(j);
}

static void
exec_send_error(struct interp_exec *e, const char *name, const char *value)
{
    exec_send_json(e, json_pack("{s:s,s:s,s:o,s:s}", "type", "error", "name", name, "value",
                                dt_json_string_lossy(value, strlen(value)), "traceback", ""));
}

/* Close the socket (once). E must already be detached from its context, or stay attached: the
 * caller decides; E may be freed by the close callback later, never here. */
static void
exec_close(struct interp_exec *e, uint16_t code, const char *reason)
{
    char buf[124];

    if (!e->ws || e->closing)
        return;
    e->closing = true;
    /* A close reason is at most 123 bytes. */
    snprintf(buf, sizeof(buf), "%s", reason ? reason : "");
    dt_httpd_ws_close(e->ws, code, buf);
}

/* Fail E with an error frame and a close frame carrying the same message. */
static void
exec_fail(struct interp_exec *e, uint16_t code, const char *name, const char *msg)
{
    exec_send_error(e, name, msg);
    exec_close(e, code, msg);
}

static void
queue_remove(struct dt_interp_ctx *ctx, struct interp_exec *e)
{
    struct interp_exec *prev = NULL;

    for (struct interp_exec *q = ctx->qhead; q; prev = q, q = q->next)
        if (q == e) {
            if (prev)
                prev->next = q->next;
            else
                ctx->qhead = q->next;
            if (ctx->qtail == q)
                ctx->qtail = prev;
            q->next = NULL;
            return;
        }
}

/* ---- workers ---- */

static void
on_handle_closed(uv_handle_t *h)
{
    struct interp_worker *w = h->data;

    if (--w->open_handles > 0)
        return;
    free(w->line);
    free(w);
}

static void
close_handle(struct interp_worker *w, uv_handle_t *h)
{
    h->data = w;
    uv_close(h, on_handle_closed);
}

/* Detach W from its context and kill it; its memory goes once the handles are closed. */
static void
worker_retire(struct interp_worker *w)
{
    if (w->retired)
        return;
    w->retired = true;
    if (w->ctx && w->ctx->w == w)
        w->ctx->w = NULL;
    w->ctx = NULL;
    if (w->proc) {
        /* The whole process group: whatever the cell started goes with it. */
        dt_proc_kill(w->proc, SIGKILL);
        dt_proc_free(w->proc);
        w->proc = NULL;
    }
    w->open_handles = 3;
    close_handle(w, (uv_handle_t *) &w->timeout_timer);
    close_handle(w, (uv_handle_t *) &w->kill_timer);
    close_handle(w, (uv_handle_t *) &w->exit_timer);
    if (w->has_out) {
        w->open_handles++;
        close_handle(w, (uv_handle_t *) &w->out);
    }
    if (w->has_err) {
        w->open_handles++;
        close_handle(w, (uv_handle_t *) &w->err);
    }
    if (w->has_ev) {
        w->open_handles++;
        close_handle(w, (uv_handle_t *) &w->ev);
    }
    if (w->has_req) {
        w->open_handles++;
        close_handle(w, (uv_handle_t *) &w->req);
    }
}

static void
worker_flow(struct interp_worker *w);

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = xmalloc(READ_CHUNK);
    buf->len = READ_CHUNK;
}

/* Length of DATA[0..N) that ends on a whole UTF-8 sequence (at most 3 bytes are held back). */
static size_t
utf8_complete_prefix(const unsigned char *data, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = data[n - back];
        size_t need;

        if ((c & 0xC0) == 0x80)
            continue;
        if (c >= 0xF0)
            need = 4;
        else if (c >= 0xE0)
            need = 3;
        else if (c >= 0xC0)
            need = 2;
        else
            return n;
        return back < need ? n - back : n;
    }
    return n;
}

/* Raw bytes the worker's process group wrote to fd 1 or 2 (subprocesses, C code): relayed as
 * stdout/stderr events of the running cell, dropped between cells. */
static void
relay_raw(struct interp_worker *w, int which, const char *data, size_t n)
{
    struct interp_exec *e = w->ctx ? w->ctx->running : NULL;
    _cleanup_free_ char *buf = xmalloc(n + sizeof(w->carry[0]));
    size_t len = w->carry_len[which], keep;

    memcpy(buf, w->carry[which], len);
    memcpy(buf + len, data, n);
    len += n;
    keep = utf8_complete_prefix((const unsigned char *) buf, len);
    w->carry_len[which] = len - keep;
    memcpy(w->carry[which], buf + keep, len - keep);
    if (!e || keep == 0)
        return;
    exec_send_json(e, json_pack("{s:s,s:o}", "type", which ? "stderr" : "stdout", "text",
                                dt_json_string_lossy(buf, keep)));
}

static void
on_raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct interp_worker *w = s->data;
    int which = s == (uv_stream_t *) &w->err;

    if (nread > 0 && !w->retired)
        relay_raw(w, which, buf->base, (size_t) nread);
    else if (nread < 0)
        uv_read_stop(s);
    free(buf->base);
    if (!w->retired)
        worker_flow(w);
}

/* Read what is already in the raw pipes without waiting for the loop: a subprocess's output is
 * written before the worker's "done" but the loop may see the event pipe first. */
static void
drain_raw(struct interp_worker *w)
{
    char buf[READ_CHUNK];

    for (int which = 0; which < 2; which++) {
        uv_pipe_t *p = which ? &w->err : &w->out;
        uv_os_fd_t fd;
        ssize_t n;

        if (!(which ? w->has_err : w->has_out) || uv_fileno((uv_handle_t *) p, &fd) < 0)
            continue;
        /* Bounded: a process writing forever must not hold the loop. */
        for (int i = 0; i < 64; i++) {
            n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            relay_raw(w, which, buf, (size_t) n);
        }
    }
}

/* The cell ended (done event, or the worker is gone): take the running execution off W's context
 * and answer it. */
static struct interp_exec *
take_running(struct interp_worker *w)
{
    struct dt_interp_ctx *ctx = w->ctx;
    struct interp_exec *e;

    uv_timer_stop(&w->timeout_timer);
    uv_timer_stop(&w->kill_timer);
    w->interrupting = false;
    if (!ctx || !(e = ctx->running))
        return NULL;
    ctx->running = NULL;
    e->ctx = NULL;
    return e;
}

static void
cell_done(struct interp_worker *w, bool interrupted)
{
    struct dt_interp_ctx *ctx = w->ctx;
    struct interp_exec *e;

    drain_raw(w);
    e = take_running(w);
    if (e) {
        if (e->timed_out && interrupted)
            exec_close(e, CLOSE_TIMEOUT, "Execution timed out");
        else {
            exec_send_json(e, json_pack("{s:s,s:s}", "type", "control", "text",
                                        interrupted ? "interrupted" : "completed"));
            exec_close(e, CLOSE_OK, NULL);
        }
        exec_maybe_free(e);
    }
    if (ctx)
        ctx_start_next(ctx);
}

/* The worker is gone (exited, killed, or its event pipe closed). */
static void
worker_died(struct interp_worker *w)
{
    struct dt_interp_ctx *ctx = w->ctx;
    struct interp_exec *e;
    char msg[160];

    if (w->retired)
        return;
    drain_raw(w);
    if (!w->exited)
        snprintf(msg, sizeof(msg), "the interpreter process closed its event channel");
    else if (w->exit.oom_killed)
        snprintf(msg, sizeof(msg), "the interpreter process was killed by the out-of-memory killer");
    else if (w->exit.signal)
        snprintf(msg, sizeof(msg), "the interpreter process was killed by signal %d (%s)",
                 w->exit.signal, strsignal(w->exit.signal));
    else
        snprintf(msg, sizeof(msg), "the interpreter process exited with code %d", w->exit.code);
    e = take_running(w);
    worker_retire(w);
    if (e) {
        if (e->timed_out)
            exec_close(e, CLOSE_TIMEOUT, "Execution timed out");
        else
        {
            char value[300];
            snprintf(value, sizeof(value),
                     "%s; the context restarts with a fresh state at next use", msg);
            exec_fail(e, CLOSE_INTERNAL, "WorkerDied", value);
        }
        exec_maybe_free(e);
    }
    if (ctx)
        ctx_start_next(ctx);
}

static void
on_exit_timer(uv_timer_t *t)
{
    worker_died(t->data);
}

static void
handle_event_line(struct interp_worker *w, const char *line, size_t len)
{
    struct interp_exec *e = w->ctx ? w->ctx->running : NULL;
    json_t *j = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));

    if (!type)
        goto out;
    if (strcmp(type, "done") == 0) {
        bool interrupted = json_is_true(json_object_get(j, "interrupted"));
        json_decref(j);
        return cell_done(w, interrupted);
    }
    if (e && e->ws && !e->closing &&
        (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0 || strcmp(type, "error") == 0))
        /* The worker's line already is the frame the SDK expects. */
        (void) dt_httpd_ws_send(e->ws, DT_WS_OP_TEXT, line, len);
out:
    json_decref(j);
}

static void
on_ev_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct interp_worker *w = s->data;
    const char *p = buf->base, *end = buf->base + (nread > 0 ? nread : 0);

    while (p < end && !w->retired) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n = (size_t) ((nl ? nl : end) - p);

        if (w->overflow) {
            if (nl)
                w->overflow = false;
        } else if (w->line_len + n > MAX_EVENT_LINE) {
            /* A line this long is not from our worker's protocol: drop it. */
            w->line_len = 0;
            w->overflow = !nl;
        } else if (nl && w->line_len == 0) {
            handle_event_line(w, p, n);
        } else {
            w->line = xrealloc(w->line, w->line_len + n + 1);
            memcpy(w->line + w->line_len, p, n);
            w->line_len += n;
            if (nl) {
                _cleanup_free_ char *l = TAKE_PTR(w->line);
                size_t ll = w->line_len;
                w->line_len = 0;
                handle_event_line(w, l, ll);
            }
        }
        p += n + (nl ? 1 : 0);
    }
    free(buf->base);
    if (w->retired)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        w->ev_eof = true;
        if (w->exited)
            return worker_died(w);
        /* The process should follow; kill it if it does not. */
        uv_timer_start(&w->exit_timer, on_exit_timer, EXIT_GRACE_MS * 2, 0);
        return;
    }
    worker_flow(w);
}

/* Backpressure: stop reading the worker while the client's socket has too much queued. */
static void
worker_flow(struct interp_worker *w)
{
    struct interp_exec *e = w->ctx ? w->ctx->running : NULL;
    bool full = e && e->ws && dt_httpd_ws_queued(e->ws) > MAX_WS_QUEUED;

    if (full == w->paused || w->retired)
        return;
    w->paused = full;
    if (full) {
        uv_read_stop((uv_stream_t *) &w->ev);
        uv_read_stop((uv_stream_t *) &w->out);
        uv_read_stop((uv_stream_t *) &w->err);
    } else {
        if (!w->ev_eof)
            uv_read_start((uv_stream_t *) &w->ev, on_alloc, on_ev_read);
        uv_read_start((uv_stream_t *) &w->out, on_alloc, on_raw_read);
        uv_read_start((uv_stream_t *) &w->err, on_alloc, on_raw_read);
    }
}

static void
on_worker_exit(struct dt_proc *p, const struct dt_proc_exit *ex, void *ud)
{
    struct interp_worker *w = ud;

    w->exited = true;
    w->exit = *ex;
    dt_proc_free(p);
    w->proc = NULL;
    if (w->retired)
        return;
    if (w->ev_eof)
        return worker_died(w);
    /* Events still in the pipe come first; the timer covers a forked child holding fd 4. */
    uv_timer_start(&w->exit_timer, on_exit_timer, EXIT_GRACE_MS, 0);
}

static void
on_kill_timer(uv_timer_t *t)
{
    struct interp_worker *w = t->data;

    /* SIGINT did not end the cell in time: SIGKILL, the context restarts fresh at next use. */
    w->exit.signal = SIGKILL;
    w->exited = true;
    worker_died(w);
}

static void
worker_interrupt(struct interp_worker *w)
{
    if (w->interrupting || !w->proc)
        return;
    w->interrupting = true;
    dt_proc_kill(w->proc, SIGINT);
    uv_timer_start(&w->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
}

static void
on_timeout_timer(uv_timer_t *t)
{
    struct interp_worker *w = t->data;
    struct interp_exec *e = w->ctx ? w->ctx->running : NULL;

    if (!e)
        return;
    e->timed_out = true;
    worker_interrupt(w);
}

static int
worker_start(struct dt_interp_ctx *ctx, struct interp_worker **ret, struct dt_error **err)
{
    struct dt_agent *a = ctx->a;
    struct interp_worker *w = xcalloc(1, sizeof(*w));
    char *argv[] = { (char *) "python3", (char *) "-u", (char *) "-I", (char *) "-c",
                     (char *) py_interp, NULL };
    _cleanup_strv_free_ char **env = dt_agent_env(a, NULL);
    int out_w = -1, err_w = -1, ev_w = -1, reqp[2] = { -1, -1 };
    struct dt_spawn sp = { 0 };
    int extra[2];
    int r;

    w->ctx = ctx;
    uv_timer_init(a->loop, &w->timeout_timer);
    uv_timer_init(a->loop, &w->kill_timer);
    uv_timer_init(a->loop, &w->exit_timer);
    w->timeout_timer.data = w->kill_timer.data = w->exit_timer.data = w;
    w->has_out = w->has_err = w->has_ev = true;
    r = dt_proc_pipe(a, &w->out, &out_w, err);
    if (r >= 0)
        r = dt_proc_pipe(a, &w->err, &err_w, err);
    if (r >= 0)
        r = dt_proc_pipe(a, &w->ev, &ev_w, err);
    if (r >= 0 && pipe2(reqp, O_CLOEXEC) < 0)
        r = dt_error_errno(err, errno, "pipe");
    if (r >= 0) {
        uv_pipe_init(a->loop, &w->req, 0);
        w->has_req = true;
        r = uv_pipe_open(&w->req, reqp[1]);
        if (r < 0)
            r = dt_error_errno(err, -r, "watch a pipe");
        else
            reqp[1] = -1;
    }
    if (r >= 0) {
        extra[0] = reqp[0];
        extra[1] = ev_w;
        sp.argv = argv;
        sp.env = env;
        sp.cwd = ctx->cwd;
        sp.stdio[0] = -1;
        sp.stdio[1] = out_w;
        sp.stdio[2] = err_w;
        sp.extra_fds = extra;
        sp.n_extra_fds = 2;
        r = dt_proc_spawn(a, &sp, on_worker_exit, w, &w->proc, NULL, err);
    }
    safe_close(out_w);
    safe_close(err_w);
    safe_close(ev_w);
    safe_close(reqp[0]);
    safe_close(reqp[1]);
    if (r < 0) {
        w->ctx = NULL;
        worker_retire(w);
        return r;
    }
    w->out.data = w->err.data = w->ev.data = w->req.data = w;
    uv_read_start((uv_stream_t *) &w->ev, on_alloc, on_ev_read);
    uv_read_start((uv_stream_t *) &w->out, on_alloc, on_raw_read);
    uv_read_start((uv_stream_t *) &w->err, on_alloc, on_raw_read);
    *ret = w;
    return 0;
}

static void
on_req_written(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *) req;

    /* A failed write means the worker is gone: its exit and EOF are handled there. */
    free(wr->buf);
    free(wr);
}

/* ---- contexts ---- */

static void
ctx_start_next(struct dt_interp_ctx *ctx)
{
    while (!ctx->running && ctx->qhead) {
        _cleanup_error_ struct dt_error *err = NULL;
        struct interp_exec *e = ctx->qhead;
        struct write_req *wr;
        uv_buf_t b;
        int r;

        queue_remove(ctx, e);
        if (!ctx->w) {
            r = worker_start(ctx, &ctx->w, &err);
            if (r < 0) {
                char msg[300];
                if (r == -ENOENT && err && strstr(err->message, "no such command"))
                    snprintf(msg, sizeof(msg),
                             "python3 is not installed in this sandbox: the code interpreter "
                             "needs it");
                else
                    snprintf(msg, sizeof(msg), "cannot start the interpreter: %s",
                             err ? err->message : "unknown error");
                e->ctx = NULL;
                exec_fail(e, CLOSE_INTERNAL, "InterpreterUnavailable", msg);
                exec_maybe_free(e);
                continue;
            }
        }
        ctx->running = e;
        wr = xcalloc(1, sizeof(*wr));
        wr->buf = TAKE_PTR(e->line);
        b = uv_buf_init(wr->buf, (unsigned) e->line_len);
        if (uv_write(&wr->req, (uv_stream_t *) &ctx->w->req, &b, 1, on_req_written) < 0) {
            /* The worker's request pipe is broken: it is dying; the death path answers E. */
            free(wr->buf);
            free(wr);
        }
        if (e->timeout_ms)
            uv_timer_start(&ctx->w->timeout_timer, on_timeout_timer, e->timeout_ms, 0);
        worker_flow(ctx->w);
    }
}

static struct dt_interp_ctx *
ctx_new(struct dt_agent *a, const char *cwd, bool is_default)
{
    struct dt_interp_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    format_iso8601_msec((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, ctx->created);
    ctx->a = a;
    ctx->id = is_default ? xstrdup("default") : dt_agent_new_id(a, "ctx-");
    ctx->cwd = xstrdup(cwd);
    ctx->is_default = is_default;
    ctx->next = a->contexts;
    a->contexts = ctx;
    return ctx;
}

static struct dt_interp_ctx *
ctx_find(struct dt_agent *a, const char *id, bool include_default)
{
    for (struct dt_interp_ctx *c = a->contexts; c; c = c->next)
        if (strcmp(c->id, id) == 0 && (include_default || !c->is_default))
            return c;
    return NULL;
}

/* Delete CTX: its worker is killed (with its process group) and its executions are told. */
static void
ctx_delete(struct dt_interp_ctx *ctx)
{
    struct dt_agent *a = ctx->a;
    struct interp_exec *e;

    for (struct dt_interp_ctx **pp = &a->contexts; *pp; pp = &(*pp)->next)
        if (*pp == ctx) {
            *pp = ctx->next;
            break;
        }
    if (ctx->w) {
        struct interp_worker *w = ctx->w;
        e = take_running(w);
        worker_retire(w);
        if (e) {
            exec_fail(e, CLOSE_INTERNAL, "ContextDeleted", "the interpreter context was deleted");
            exec_maybe_free(e);
        }
    }
    while ((e = ctx->qhead)) {
        queue_remove(ctx, e);
        e->ctx = NULL;
        exec_fail(e, CLOSE_INTERNAL, "ContextDeleted", "the interpreter context was deleted");
        exec_maybe_free(e);
    }
    free(ctx->id);
    free(ctx->cwd);
    free(ctx);
}

static json_t *
ctx_json(const struct dt_interp_ctx *ctx)
{
    return json_pack("{s:s,s:o,s:s,s:b,s:s}", "id", ctx->id, "cwd",
                     dt_json_string_lossy(ctx->cwd, strlen(ctx->cwd)), "language", "python",
                     "active", 1, "createdAt", ctx->created);
}

static void
create_context(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    json_t *jcwd = json_object_get(body, "cwd"), *jlang = json_object_get(body, "language");
    _cleanup_free_ char *cwd = NULL;
    struct stat st;

    if (jlang && !json_is_null(jlang) &&
        (!json_is_string(jlang) || (*json_string_value(jlang) &&
                                    strcmp(json_string_value(jlang), "python") != 0)))
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "unsupported interpreter language '%s': only python is supported",
                              json_is_string(jlang) ? json_string_value(jlang) : "?");
    if (jcwd && !json_is_null(jcwd) && !json_is_string(jcwd))
        return dt_agent_error(req, 400, "BAD_REQUEST", "cwd must be a string");
    if (json_is_string(jcwd) && *json_string_value(jcwd)) {
        if (!(cwd = dt_agent_path(a, req, json_string_value(jcwd))))
            return;
    } else
        cwd = xstrdup(a->workdir);
    if (stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode))
        return dt_agent_error(req, 400, "INVALID_FILE_PATH", "no such directory: %s", cwd);
    dt_httpd_reply_json(req, 200, ctx_json(ctx_new(a, cwd, false)));
}

static void
route_create(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, create_context);
}

static void
route_list(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    json_t *arr = json_array();

    for (struct dt_interp_ctx *c = a->contexts; c; c = c->next)
        if (!c->is_default)
            json_array_insert_new(arr, 0, ctx_json(c)); /* list order = creation order */
    dt_httpd_reply_json(req, 200, json_pack("{s:o}", "contexts", arr));
}

static void
route_delete(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_interp_ctx *ctx = ctx_find(a, params[0], false);

    if (!ctx)
        return dt_agent_error(req, 404, "NOT_FOUND", "interpreter context not found: %s",
                              params[0]);
    ctx_delete(ctx);
    dt_agent_ok(req);
}

/* ---- the execute WebSocket ---- */

/* Parse the request frame; on error fills MSG and returns false. */
static bool
parse_request(struct interp_exec *e, const uint8_t *data, size_t len, const char **ret_ctx_id,
              json_t **ret_body, char *msg, size_t msgsz)
{
    json_t *body = json_loadb((const char *) data, len, 0, NULL);
    json_t *code = json_object_get(body, "code"), *envs = json_object_get(body, "envs");
    json_t *cid = json_object_get(body, "contextId"), *t = json_object_get(body, "timeout");
    json_t *req, *v;
    const char *k;

    if (!json_is_object(body)) {
        snprintf(msg, msgsz, "invalid request: expected a JSON object {code, contextId?, envs?, "
                             "timeout?}");
        goto fail;
    }
    if (!json_is_string(code)) {
        snprintf(msg, msgsz, "invalid request: code must be a string");
        goto fail;
    }
    if (cid && !json_is_null(cid) && !json_is_string(cid)) {
        snprintf(msg, msgsz, "invalid request: contextId must be a string");
        goto fail;
    }
    if (envs && !json_is_null(envs)) {
        if (!json_is_object(envs)) {
            snprintf(msg, msgsz, "invalid request: envs must be an object of strings");
            goto fail;
        }
        json_object_foreach(envs, k, v) {
            if (!*k || strchr(k, '=') || !json_is_string(v)) {
                snprintf(msg, msgsz, "invalid request: envs: '%.40s' is not a valid variable", k);
                goto fail;
            }
        }
    }
    if (t && !json_is_null(t)) {
        if (!json_is_number(t) || json_number_value(t) < 0 ||
            json_number_value(t) > 86400.0 * 30) {
            snprintf(msg, msgsz, "invalid request: timeout must be a number of seconds >= 0");
            goto fail;
        }
        e->timeout_ms = (uint64_t) (json_number_value(t) * 1000);
        if (json_number_value(t) > 0 && e->timeout_ms == 0)
            e->timeout_ms = 1;
    }
    req = json_pack("{s:O}", "code", code);
    if (json_is_object(envs))
        json_object_set(req, "envs", envs);
    e->line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    e->line_len = strlen(e->line);
    e->line = xrealloc(e->line, e->line_len + 2);
    e->line[e->line_len++] = '\n';
    e->line[e->line_len] = 0;
    *ret_ctx_id = json_is_string(cid) && *json_string_value(cid) ? json_string_value(cid) : NULL;
    *ret_body = body;
    return true;
fail:
    json_decref(body);
    return false;
}

static void
on_ws_message(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len,
              void *ud)
{
    struct interp_exec *e = ud;
    struct dt_agent *a = e->a;
    struct dt_interp_ctx *ctx;
    const char *id = NULL;
    json_t *body = NULL;
    char msg[256];

    /* One request per socket: later frames are ignored. */
    if (e->got_request || e->closing)
        return;
    e->got_request = true;
    if (!parse_request(e, data, len, &id, &body, msg, sizeof(msg)))
        return exec_fail(e, CLOSE_BAD_REQUEST, "BadRequest", msg);
    if (!id || strcmp(id, "default") == 0) {
        ctx = ctx_find(a, "default", true);
        if (!ctx)
            ctx = ctx_new(a, a->workdir, true);
    } else if (!(ctx = ctx_find(a, id, false))) {
        snprintf(msg, sizeof(msg), "interpreter context not found: %.80s", id);
        json_decref(body);
        return exec_fail(e, CLOSE_NOT_FOUND, "ContextNotFound", msg);
    }
    json_decref(body);
    e->ctx = ctx;
    if (ctx->qtail)
        ctx->qtail->next = e;
    else
        ctx->qhead = e;
    ctx->qtail = e;
    ctx_start_next(ctx);
}

static void
on_ws_drain(struct dt_httpd_ws *ws, void *ud)
{
    struct interp_exec *e = ud;

    if (e->ctx && e->ctx->w && e->ctx->running == e)
        worker_flow(e->ctx->w);
}

static void
on_ws_close(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
    struct interp_exec *e = ud;
    struct dt_interp_ctx *ctx = e->ctx;

    e->ws = NULL;
    if (ctx && ctx->running == e && ctx->w) {
        /* Nobody reads the result: interrupt the cell so the context becomes free (SIGKILL
         * after the grace if it ignores SIGINT). */
        worker_interrupt(ctx->w);
        worker_flow(ctx->w);
    } else if (ctx && ctx->running != e) {
        queue_remove(ctx, e);
        e->ctx = NULL;
    }
    exec_maybe_free(e);
}

static void
route_execute(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    static const struct dt_httpd_ws_callbacks cbs = {
        .on_message = on_ws_message,
        .on_drain = on_ws_drain,
        .on_close = on_ws_close,
    };
    struct interp_exec *e;

    if (!dt_httpd_req_is_websocket(req))
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "/process/interpreter/execute is a WebSocket endpoint");
    e = xcalloc(1, sizeof(*e));
    e->a = a;
    if (dt_httpd_ws_accept(req, NULL, &cbs, e, &e->ws) < 0)
        free(e);
}

const struct dt_route dt_interp_routes[] = {
    { "POST", "/process/interpreter/context", route_create },
    { "GET", "/process/interpreter/context", route_list },
    { "DELETE", "/process/interpreter/context/*", route_delete },
    { "GET", "/process/interpreter/execute", route_execute },
    {},
};

int
dt_interp_busy(struct dt_agent *a)
{
    int n = 0;

    for (struct dt_interp_ctx *c = a->contexts; c; c = c->next)
        n += c->running != NULL;
    return n;
}
