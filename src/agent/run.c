/* SPDX-License-Identifier: Apache-2.0 */
/* One-shot command runs with captured output (see run.h). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/run.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define EOF_GRACE_MS 100

struct capture {
    uv_pipe_t pipe;
    struct dt_run *run;
    char *buf;
    size_t len, cap, max;
    bool keep_tail; /* keep the last MAX bytes instead of the first */
    bool truncated;
    bool open;      /* pipe handle not yet closed */
    bool eof;
};

struct dt_run {
    struct dt_agent *a;
    struct dt_proc *proc;
    struct capture out, err, side;
    uv_timer_t timer;     /* timeout, then the EOF grace */
    bool timer_open;
    bool exited;
    bool timed_out;
    bool done;            /* callback ran or run cancelled */
    int pending_closes;
    struct dt_proc_exit exit;
    dt_run_fn cb;
    void *ud;
};

static void
run_free_if_closed(struct dt_run *r)
{
    if (r->pending_closes > 0 || !r->done)
        return;
    free(r->out.buf);
    free(r->err.buf);
    free(r->side.buf);
    dt_proc_free(r->proc);
    free(r);
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct dt_run *r = h->data;
    r->pending_closes--;
    run_free_if_closed(r);
}

static void
close_handle(struct dt_run *r, uv_handle_t *h)
{
    r->pending_closes++;
    h->data = r;
    uv_close(h, on_handle_closed);
}

static void
finish(struct dt_run *r)
{
    struct dt_run_result res = { 0 };

    if (r->done)
        return;
    r->done = true;
    res.exit = r->exit;
    res.timed_out = r->timed_out;
    res.out = r->out.buf ? r->out.buf : (char *) "";
    res.out_len = r->out.len;
    res.out_truncated = r->out.truncated;
    res.err = r->err.buf ? r->err.buf : (char *) "";
    res.err_len = r->err.len;
    res.side = r->side.buf ? r->side.buf : (char *) "";
    res.side_len = r->side.len;
    r->pending_closes++; /* hold the run during the callback */
    if (r->cb)
        r->cb(r, &res, r->ud);
    r->pending_closes--;
    for (struct capture *c = &r->out; c <= &r->side; c++)
        if (c->open) {
            c->open = false;
            close_handle(r, (uv_handle_t *) &c->pipe);
        }
    if (r->timer_open) {
        r->timer_open = false;
        close_handle(r, (uv_handle_t *) &r->timer);
    }
    run_free_if_closed(r);
}

static bool
all_eof(struct dt_run *r)
{
    return (!r->out.open || r->out.eof) && (!r->err.open || r->err.eof) &&
           (!r->side.open || r->side.eof);
}

static void
maybe_finish(struct dt_run *r)
{
    if (r->exited && all_eof(r))
        finish(r);
}

static void
on_grace(uv_timer_t *t)
{
    finish(t->data);
}

static void
on_timeout(uv_timer_t *t)
{
    struct dt_run *r = t->data;

    if (r->exited)
        return;
    r->timed_out = true;
    dt_proc_kill(r->proc, SIGKILL);
}

static void
on_exit_cb(struct dt_proc *p, const struct dt_proc_exit *e, void *ud)
{
    struct dt_run *r = ud;

    r->exited = true;
    r->exit = *e;
    if (all_eof(r)) {
        finish(r);
        return;
    }
    /* A background child may hold the pipes open: wait a little for the rest, not forever. */
    uv_timer_stop(&r->timer);
    uv_timer_start(&r->timer, on_grace, EOF_GRACE_MS, 0);
}

static void
cap_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536];
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void
cap_append(struct capture *c, const char *data, size_t n)
{
    if (c->keep_tail) {
        if (n >= c->max) {
            data += n - c->max;
            n = c->max;
            c->len = 0;
        } else if (c->len + n > c->max) {
            size_t drop = c->len + n - c->max;
            memmove(c->buf, c->buf + drop, c->len - drop);
            c->len -= drop;
        }
    } else if (c->len + n > c->max) {
        c->truncated = true;
        n = c->max - c->len;
    }
    if (c->len + n + 1 > c->cap) {
        c->cap = c->len + n + 1 > c->cap * 2 ? c->len + n + 1 : c->cap * 2;
        c->buf = xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = 0;
}

static void
cap_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct capture *c = s->data;

    if (n > 0) {
        cap_append(c, buf->base, (size_t) n);
        return;
    }
    if (n == 0)
        return;
    c->eof = true;
    uv_read_stop(s);
    maybe_finish(c->run);
}

static int
capture_open(struct dt_run *r, struct capture *c, size_t max, bool tail, int *ret_wfd,
             struct dt_error **err)
{
    int rr;

    c->run = r;
    c->max = max;
    c->keep_tail = tail;
    rr = dt_proc_pipe(r->a, &c->pipe, ret_wfd, err);
    if (rr < 0)
        return rr;
    c->open = true;
    c->pipe.data = c;
    uv_read_start((uv_stream_t *) &c->pipe, cap_alloc, cap_read);
    return 0;
}

static int
input_memfd(const char *data, size_t len, struct dt_error **err)
{
    int fd = memfd_create("input", MFD_CLOEXEC);
    int r;

    if (fd < 0)
        return dt_error_errno(err, errno, "memfd_create");
    r = write_all(fd, data, len);
    if (r < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        close(fd);
        return dt_error_errno(err, r < 0 ? -r : errno, "write the program's input");
    }
    return fd;
}

int
dt_run_start(struct dt_agent *a, const struct dt_run_opts *o, dt_run_fn cb, void *userdata,
             struct dt_run **ret, struct dt_error **err)
{
    struct dt_run *r = xcalloc(1, sizeof(*r));
    struct dt_spawn sp = { .argv = o->argv, .env = o->env, .cwd = o->cwd, .as_root = o->as_root,
                           .stdio = { -1, -1, -1 } };
    int wout = -1, werr = -1, wside = -1, in = -1, extra[2];
    int rr;

    r->a = a;
    r->cb = cb;
    r->ud = userdata;
    uv_timer_init(a->loop, &r->timer);
    r->timer.data = r;
    r->timer_open = true;
    rr = capture_open(r, &r->out, o->max_out ? o->max_out : 64u << 20, false, &wout, err);
    if (rr == 0 && !o->merge_stderr)
        rr = capture_open(r, &r->err, o->max_err ? o->max_err : 64u << 10, true, &werr, err);
    if (rr == 0 && o->side_channel)
        rr = capture_open(r, &r->side, o->max_side ? o->max_side : 16u << 20, false, &wside, err);
    if (rr == 0 && o->input) {
        in = input_memfd(o->input, o->input_len, err);
        rr = in < 0 ? in : 0;
    }
    if (rr == 0) {
        sp.stdio[0] = o->input_on_fd3 ? -1 : in;
        sp.stdio[1] = wout;
        sp.stdio[2] = o->merge_stderr ? wout : werr;
        if (o->input_on_fd3 || o->side_channel) {
            extra[0] = o->input_on_fd3 ? in : -1;
            extra[1] = wside;
            sp.extra_fds = extra;
            sp.n_extra_fds = o->side_channel ? 2 : 1;
        }
        rr = dt_proc_spawn(a, &sp, on_exit_cb, r, &r->proc, NULL, err);
    }
    safe_close(wout);
    safe_close(werr);
    safe_close(wside);
    safe_close(in);
    if (rr < 0) {
        r->done = true;
        for (struct capture *c = &r->out; c <= &r->side; c++)
            if (c->open) {
                c->open = false;
                close_handle(r, (uv_handle_t *) &c->pipe);
            }
        r->timer_open = false;
        close_handle(r, (uv_handle_t *) &r->timer);
        return rr;
    }
    if (o->timeout_ms)
        uv_timer_start(&r->timer, on_timeout, o->timeout_ms, 0);
    if (ret)
        *ret = r;
    return 0;
}

void
dt_run_cancel(struct dt_run *r)
{
    if (r->done)
        return;
    if (!r->exited)
        dt_proc_kill(r->proc, SIGKILL);
    r->cb = NULL;
    finish(r);
}
