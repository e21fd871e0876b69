/* SPDX-License-Identifier: Apache-2.0 */
/* Stateful shell sessions (contract 3.6): one long-lived shell per session reading command lines
 * from a pipe; each command is sourced into that shell with its stdio on three per-command FIFOs
 * and reports its status on fd 3. Output is kept in memory as ordered (stream, bytes) chunks and
 * served as JSON or followed over a WebSocket with the 01 01 01 / 02 02 02 stream markers.
 *
 * Why this shape: running every command in the same shell is what makes `cd` and `export`
 * persist; `command . FILE` sources the command text so a syntax error in it does not kill the
 * shell (POSIX: `command` strips the special built-in's exit-on-error), and the redirections on
 * the `.` command are undone when it returns, so the shell's own stdin and fd 3 stay intact.
 *
 * Known limitation: a command cannot be killed on its own inside the shell; a sync exec with a
 * "timeout" answers 408 PROCESS_EXECUTION_TIMEOUT and leaves the command running (delete the
 * session to stop it). */
#include "agent/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define CHUNK_MAX          (60u << 10)   /* bytes per stored chunk (a frame adds 3 marker bytes) */
#define FRAME_MAX          (64u << 10)   /* largest log frame: the SDK overflows on ~125 KB */
#define READ_MAX           (64u << 10)
#define CMD_OUTPUT_CAP     (64ull << 20) /* output kept per command; older bytes are dropped */
#define SESSION_OUTPUT_CAP (256ull << 20)
#define FOLLOW_HIGH_WATER  (4u << 20)    /* stop feeding a follower above this many queued bytes */
#define INPUT_MAX          (1u << 20)    /* input queued for a command and not yet read */
#define MAX_SESSIONS       256
#define MAX_QUEUED         256           /* commands waiting for their turn in one session */
#define MAX_HISTORY        1000          /* finished commands remembered per session */
#define SID_MAX            256
#define STATUS_LINE_MAX    512

enum { ST_OUT = 1, ST_ERR = 2 };
enum cmd_state { CMD_QUEUED, CMD_RUNNING, CMD_DONE };

struct chunk {
    uint64_t start; /* absolute offset of data[0] in the command's output */
    uint32_t len, cap;
    uint8_t stream;
    char *data;
};

struct follower {
    struct follower *next;
    struct cmd *cmd;     /* NULL once the command is gone */
    struct dt_httpd_ws *ws;
    uint64_t pos;        /* absolute offset of the next byte to send */
    bool closing;        /* our close frame was sent */
    bool busy, gone;     /* on_close ran inside our own send: free after it returns */
};

struct fifo {
    int fd;
    uv_poll_t *poll;
};

struct cmd {
    struct cmd *next;
    struct dt_session *s;
    char *id;
    char *command;
    enum cmd_state state;
    bool suppress_echo;
    int exit_code;
    char *dir;
    struct fifo out, err;
    int in_fd;
    uv_poll_t *in_poll;
    char *in_buf;        /* input accepted but not yet written to the `in` FIFO */
    size_t in_len;
    struct chunk *chunks;
    size_t n_chunks, a_chunks;
    uint64_t base, end;  /* absolute offsets: first byte still held, one past the last */
    bool truncated;
    struct follower *followers;
    struct dt_httpd_req *waiter; /* a sync exec waiting for the result */
    uv_timer_t *timer;
    uint64_t oom_counter;
};

struct dt_session {
    struct dt_session *next;
    struct dt_agent *a;
    char *id;
    char *dir;
    struct dt_proc *proc;
    int stdin_fd;
    int status_fd;
    uv_poll_t *status_poll;
    char sbuf[STATUS_LINE_MAX];
    size_t slen;
    bool ended;
    struct cmd *cmds, *last; /* in submission order */
    size_t n_cmds;
    struct cmd *running;
    uint64_t output_bytes;
};

static void cmd_finish(struct cmd *c, int code);
static void session_next(struct dt_session *s);

/* ---- small helpers ---- */

static void
handle_free(uv_handle_t *h)
{
    free(h);
}

static void
poll_close(uv_poll_t **p)
{
    if (*p) {
        uv_close((uv_handle_t *) *p, handle_free);
        *p = NULL;
    }
}

static void
fifo_close(struct fifo *f)
{
    poll_close(&f->poll);
    f->fd = safe_close(f->fd);
}

/* 'S' for a POSIX shell, with ' as '\''. */
static char *
shell_quote(const char *s)
{
    size_t n = 2;
    char *out, *o;

    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    out = o = xmalloc(n + 1);
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else
            *o++ = *p;
    }
    *o++ = '\'';
    *o = 0;
    return out;
}

/* The session shell: the user's when it is a POSIX shell that understands `command .`, else
 * /bin/sh (zsh's `command` forces an external command; fish is not POSIX). */
static const char *
session_shell(struct dt_agent *a)
{
    static const char *const ok[] = { "bash", "sh", "dash", "ash", "ksh", "mksh" };
    const char *b = strrchr(a->user.shell, '/');

    b = b ? b + 1 : a->user.shell;
    for (size_t i = 0; i < ELEMENTSOF(ok); i++)
        if (strcmp(b, ok[i]) == 0)
            return a->user.shell;
    return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
}

static void
chown_user(struct dt_agent *a, const char *path)
{
    /* Only root can give files away; an unprivileged agent runs commands as itself anyway. */
    if (geteuid() == 0)
        (void) chown(path, a->user.uid, a->user.gid);
}

static int
mkdir_mode(const char *path, mode_t mode, struct dt_error **err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return dt_error_errno(err, errno, "create directory %s", path);
    return 0;
}

static void
rm_rf(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

    if (fd >= 0) {
        static const char *const names[] = { "cmd", "in", "out", "err" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
            (void) unlinkat(fd, names[i], 0);
        close(fd);
    }
    (void) rmdir(path);
}

/* ---- output buffer ---- */

/* Index of the chunk holding absolute offset POS (base <= POS < end). */
static size_t
chunk_find(const struct cmd *c, uint64_t pos)
{
    size_t lo = 0, hi = c->n_chunks;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->chunks[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void
chunk_drop_first(struct cmd *c)
{
    struct chunk *k = &c->chunks[0];

    c->s->output_bytes -= k->len;
    free(k->data);
    memmove(c->chunks, c->chunks + 1, (c->n_chunks - 1) * sizeof(*c->chunks));
    c->n_chunks--;
    c->base = c->n_chunks ? c->chunks[0].start : c->end;
    c->truncated = true;
}

static void
output_free(struct cmd *c)
{
    while (c->n_chunks)
        chunk_drop_first(c);
    free(c->chunks);
    c->chunks = NULL;
    c->a_chunks = 0;
}

static void follower_pump(struct follower *f);

static void
followers_pump(struct cmd *c)
{
    for (struct follower *f = c->followers, *next; f; f = next) {
        next = f->next;
        follower_pump(f);
    }
}

/* Keep the session's total under its cap: drop the oldest output of finished commands first,
 * then of the running one. */
static void
session_trim(struct dt_session *s)
{
    for (struct cmd *c = s->cmds; c && s->output_bytes > SESSION_OUTPUT_CAP; c = c->next)
        while (c->n_chunks && s->output_bytes > SESSION_OUTPUT_CAP &&
               (c->state == CMD_DONE || c->next == NULL))
            chunk_drop_first(c);
}

static void
output_append(struct cmd *c, uint8_t stream, const char *data, size_t n)
{
    while (n > 0) {
        struct chunk *k = c->n_chunks ? &c->chunks[c->n_chunks - 1] : NULL;
        size_t take;

        if (k && k->stream == stream && k->len < CHUNK_MAX) {
            take = n < CHUNK_MAX - k->len ? n : CHUNK_MAX - k->len;
            if (k->len + take > k->cap) {
                k->cap = k->len + take < k->cap * 2 ? k->cap * 2 : (uint32_t) (k->len + take);
                if (k->cap > CHUNK_MAX)
                    k->cap = CHUNK_MAX;
                k->data = xrealloc(k->data, k->cap);
            }
        } else {
            if (c->n_chunks == c->a_chunks) {
                c->a_chunks = c->a_chunks ? c->a_chunks * 2 : 16;
                c->chunks = xreallocarray(c->chunks, c->a_chunks, sizeof(*c->chunks));
            }
            take = n < CHUNK_MAX ? n : CHUNK_MAX;
            k = &c->chunks[c->n_chunks++];
            *k = (struct chunk) { .start = c->end, .stream = stream, .cap = (uint32_t) take,
                                  .data = xmalloc(take) };
            if (c->n_chunks == 1)
                c->base = c->end;
        }
        memcpy(k->data + k->len, data, take);
        k->len += (uint32_t) take;
        c->end += take;
        c->s->output_bytes += take;
        data += take;
        n -= take;
    }
    while (c->n_chunks > 1 && c->end - c->base > CMD_OUTPUT_CAP)
        chunk_drop_first(c);
    session_trim(c->s);
    followers_pump(c);
}

/* The logs as JSON strings: {output, stdout, stderr}; with exit code and id for exec results. */
static json_t *
output_json(struct cmd *c)
{
    static const char note[] = "[earlier output dropped: over the agent's limit]\n";
    size_t n[3] = { 0 };
    char *buf[3];
    json_t *j;

    for (size_t i = 0; i < 3; i++)
        buf[i] = xmalloc(c->end - c->base + sizeof(note));
    if (c->truncated)
        for (size_t i = 0; i < 3; i++) {
            memcpy(buf[i], note, sizeof(note) - 1);
            n[i] = sizeof(note) - 1;
        }
    for (size_t i = 0; i < c->n_chunks; i++) {
        const struct chunk *k = &c->chunks[i];
        memcpy(buf[0] + n[0], k->data, k->len);
        n[0] += k->len;
        memcpy(buf[k->stream] + n[k->stream], k->data, k->len);
        n[k->stream] += k->len;
    }
    j = json_object();
    json_object_set_new(j, "output", dt_json_string_lossy(buf[0], n[0]));
    json_object_set_new(j, "stdout", dt_json_string_lossy(buf[ST_OUT], n[ST_OUT]));
    json_object_set_new(j, "stderr", dt_json_string_lossy(buf[ST_ERR], n[ST_ERR]));
    for (size_t i = 0; i < 3; i++)
        free(buf[i]);
    return j;
}

/* ---- followers (log WebSocket) ---- */

/* Send what F has not seen yet, until its socket's queue is over the high-water mark (continued
 * from on_drain); close with 1000 once the command is done and everything was sent. The loop is
 * single-threaded, so the backlog and the live output are one sequence of offsets: no byte twice,
 * no gap. */
static void
follower_pump(struct follower *f)
{
    if (f->busy || !f->ws || f->closing)
        return;
    f->busy = true;
    while (f->ws && !f->closing && f->cmd) {
        struct cmd *c = f->cmd;
        const struct chunk *k;
        size_t off, n;
        uint8_t *frame;
        int r;

        if (f->pos < c->base)
            f->pos = c->base; /* dropped under the cap while we were behind */
        if (f->pos >= c->end) {
            if (c->state == CMD_DONE) {
                f->closing = true;
                dt_httpd_ws_close(f->ws, DT_WS_CLOSE_NORMAL, NULL);
            }
            break;
        }
        if (dt_httpd_ws_queued(f->ws) > FOLLOW_HIGH_WATER)
            break;
        k = &c->chunks[chunk_find(c, f->pos)];
        off = (size_t) (f->pos - k->start);
        n = k->len - off;
        if (n > FRAME_MAX - 3)
            n = FRAME_MAX - 3;
        frame = xmalloc(n + 3);
        memset(frame, k->stream, 3);
        memcpy(frame + 3, k->data + off, n);
        r = dt_httpd_ws_send(f->ws, DT_WS_OP_BINARY, frame, n + 3);
        free(frame);
        if (r < 0)
            break;
        f->pos += n;
    }
    f->busy = false;
    if (f->gone)
        free(f);
}

static void
follower_unlink(struct follower *f)
{
    if (!f->cmd)
        return;
    for (struct follower **pp = &f->cmd->followers; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->cmd = NULL;
}

static void
on_follow_drain(struct dt_httpd_ws *ws, void *ud)
{
    follower_pump(ud);
}

static void
on_follow_close(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
    struct follower *f = ud;

    f->ws = NULL;
    follower_unlink(f);
    if (f->busy)
        f->gone = true;
    else
        free(f);
}

static void
on_follow_message(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len,
                  void *ud)
{
    /* The client never sends data on this socket (contract 3.6.1); ignore whatever comes. */
}

static void
follow(struct cmd *c, struct dt_httpd_req *req)
{
    static const struct dt_httpd_ws_callbacks cbs = {
        .on_message = on_follow_message,
        .on_drain = on_follow_drain,
        .on_close = on_follow_close,
    };
    struct follower *f = xcalloc(1, sizeof(*f));
    struct dt_httpd_ws *ws;

    /* No subprotocol: the SDK offers none and rejects one it did not offer. */
    if (dt_httpd_ws_accept(req, NULL, &cbs, f, &ws) < 0) {
        free(f);
        return;
    }
    f->ws = ws;
    f->cmd = c;
    f->pos = c->base;
    f->next = c->followers;
    c->followers = f;
    follower_pump(f);
}

/* ---- commands ---- */

static json_t *
cmd_json(const struct cmd *c)
{
    json_t *j = json_pack("{s:s, s:s}", "id", c->id, "command", c->command);

    /* exitCode is absent (not null) while the command runs: the SDK tests for undefined. */
    if (c->state == CMD_DONE)
        json_object_set_new(j, "exitCode", json_integer(c->exit_code));
    return j;
}

static void
timer_close(struct cmd *c)
{
    if (c->timer) {
        uv_close((uv_handle_t *) c->timer, handle_free);
        c->timer = NULL;
    }
}

/* Detach the waiting sync exec request (it will be answered by the caller, or is gone). */
static struct dt_httpd_req *
cmd_take_waiter(struct cmd *c)
{
    struct dt_httpd_req *req = c->waiter;

    c->waiter = NULL;
    timer_close(c);
    if (req)
        dt_httpd_req_set_close_cb(req, NULL, NULL);
    return req;
}

static void
cmd_free(struct cmd *c)
{
    struct dt_httpd_req *req = cmd_take_waiter(c);

    if (req)
        dt_agent_error(req, 410, "SESSION_ENDED", "session '%s' was deleted", c->s->id);
    while (c->followers) {
        struct follower *f = c->followers;
        follower_unlink(f);
        if (f->ws && !f->closing) {
            f->closing = true;
            dt_httpd_ws_close(f->ws, DT_WS_CLOSE_NORMAL, NULL);
        }
    }
    fifo_close(&c->out);
    fifo_close(&c->err);
    poll_close(&c->in_poll);
    c->in_fd = safe_close(c->in_fd);
    if (c->dir)
        rm_rf(c->dir);
    output_free(c);
    free(c->in_buf);
    free(c->dir);
    free(c->id);
    free(c->command);
    free(c);
}

/* Read what STREAM's FIFO holds now. On EOF (every writer closed: the command and anything it
 * started in the background) the FIFO is closed. */
static void
fifo_drain(struct cmd *c, uint8_t stream)
{
    struct fifo *f = stream == ST_OUT ? &c->out : &c->err;
    char *buf;

    if (f->fd < 0)
        return;
    buf = xmalloc(READ_MAX);
    for (;;) {
        ssize_t n = read(f->fd, buf, READ_MAX);
        if (n > 0) {
            output_append(c, stream, buf, (size_t) n);
            if (f->fd < 0)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        fifo_close(f);
        break;
    }
    free(buf);
}

static void
on_fifo(uv_poll_t *p, int status, int events)
{
    struct cmd *c = p->data;

    fifo_drain(c, p == c->out.poll ? ST_OUT : ST_ERR);
}

static void
input_flush(struct cmd *c);

static void
on_in_writable(uv_poll_t *p, int status, int events)
{
    input_flush(p->data);
}

/* Write queued input to the `in` FIFO without blocking; the rest waits for POLLOUT. */
static void
input_flush(struct cmd *c)
{
    while (c->in_len > 0 && c->in_fd >= 0) {
        ssize_t n = write(c->in_fd, c->in_buf, c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        memmove(c->in_buf, c->in_buf + n, c->in_len - (size_t) n);
        c->in_len -= (size_t) n;
    }
    if (c->in_fd < 0)
        return;
    if (c->in_len > 0) {
        if (!c->in_poll) {
            c->in_poll = xmalloc(sizeof(*c->in_poll));
            if (uv_poll_init(c->s->a->loop, c->in_poll, c->in_fd) < 0) {
                free(c->in_poll);
                c->in_poll = NULL;
                return;
            }
            c->in_poll->data = c;
        }
        (void) uv_poll_start(c->in_poll, UV_WRITABLE, on_in_writable);
    } else if (c->in_poll)
        (void) uv_poll_stop(c->in_poll);
}

static void
reply_result(struct cmd *c)
{
    struct dt_httpd_req *req = cmd_take_waiter(c);
    json_t *j;

    if (!req)
        return;
    j = output_json(c);
    json_object_set_new(j, "cmdId", json_string(c->id));
    json_object_set_new(j, "exitCode", json_integer(c->exit_code));
    dt_httpd_reply_json(req, 200, j);
}

/* The command is over (its status line arrived, or the shell died): collect what the pipes hold,
 * answer the waiter, close the followers and start the next command. */
static void
cmd_finish(struct cmd *c, int code)
{
    struct dt_session *s = c->s;
    static const char oom[] = "\n[killed by the out-of-memory killer]\n";

    fifo_drain(c, ST_OUT);
    fifo_drain(c, ST_ERR);
    c->exit_code = code;
    /* Daytona reports no signal for an OOM kill (daytona#4489): say it in stderr at least. */
    if (code == 128 + 9 && dt_agent_oom_killed_since(s->a, &c->oom_counter))
        output_append(c, ST_ERR, oom, sizeof(oom) - 1);
    c->state = CMD_DONE;
    poll_close(&c->in_poll);
    c->in_fd = safe_close(c->in_fd);
    free(c->in_buf);
    c->in_buf = NULL;
    c->in_len = 0;
    /* The FIFOs stay open (background processes may still write); the names can go now. */
    if (c->dir) {
        rm_rf(c->dir);
        free(c->dir);
        c->dir = NULL;
    }
    reply_result(c);
    followers_pump(c);
    if (s->running == c) {
        s->running = NULL;
        session_next(s);
    }
}

/* A command that could not be started: it ends with exit code -1 and the reason on stderr. */
static void
cmd_fail(struct cmd *c, int status, const char *code, const char *msg)
{
    struct dt_httpd_req *req = cmd_take_waiter(c);

    if (req)
        dt_agent_error(req, status, code, "%s", msg);
    output_append(c, ST_ERR, msg, strlen(msg));
    output_append(c, ST_ERR, "\n", 1);
    cmd_finish(c, -1);
}

static int
mkfifo_user(struct dt_agent *a, const char *dir, const char *name, struct dt_error **err)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);

    if (mkfifo(p, 0600) < 0)
        return dt_error_errno(err, errno, "create fifo %s", p);
    chown_user(a, p);
    return 0;
}

static int
fifo_open(struct cmd *c, struct fifo *f, const char *name, struct dt_error **err)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", c->dir, name);
    int r;

    f->fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f->fd < 0)
        return dt_error_errno(err, errno, "open fifo %s", p);
    f->poll = xmalloc(sizeof(*f->poll));
    r = uv_poll_init(c->s->a->loop, f->poll, f->fd);
    if (r < 0) {
        free(f->poll);
        f->poll = NULL;
        return dt_error_errno(err, -r, "watch fifo %s", p);
    }
    f->poll->data = c;
    r = uv_poll_start(f->poll, UV_READABLE, on_fifo);
    if (r < 0)
        return dt_error_errno(err, -r, "watch fifo %s", p);
    return 0;
}

/* Prepare the command's directory and FIFOs, and hand the shell its command line. */
static int
cmd_start_io(struct cmd *c, struct dt_error **err)
{
    struct dt_session *s = c->s;
    struct dt_agent *a = s->a;
    _cleanup_free_ char *file = NULL, *line = NULL, *q = NULL, *in = NULL;
    int r;

    c->dir = xasprintf("%s/%s", s->dir, c->id);
    if (mkdir(c->dir, 0700) < 0)
        return dt_error_errno(err, errno, "create directory %s", c->dir);
    chown_user(a, c->dir);
    file = xasprintf("%s/cmd", c->dir);
    {
        _cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return dt_error_errno(err, errno, "create %s", file);
        r = write_all(fd, c->command, strlen(c->command));
        if (r < 0)
            return dt_error_errno(err, -r, "write %s", file);
        r = write_all(fd, "\n", 1);
        if (r < 0)
            return dt_error_errno(err, -r, "write %s", file);
    }
    chown_user(a, file);
    r = mkfifo_user(a, c->dir, "in", err);
    if (r == 0)
        r = mkfifo_user(a, c->dir, "out", err);
    if (r == 0)
        r = mkfifo_user(a, c->dir, "err", err);
    /* The readers exist before the shell opens the FIFOs for writing, so its opens never block
     * and poll() reports nothing until a writer has come. `in` is held read-write, so the
     * shell's open for reading does not wait for a writer either. */
    if (r == 0)
        r = fifo_open(c, &c->out, "out", err);
    if (r == 0)
        r = fifo_open(c, &c->err, "err", err);
    if (r < 0)
        return r;
    in = xasprintf("%s/in", c->dir);
    c->in_fd = open(in, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (c->in_fd < 0)
        return dt_error_errno(err, errno, "open fifo %s", in);

    q = shell_quote(c->dir);
    /* `command printf` bypasses a function the user may have named printf; 3>&- hides the status
     * fd from the command (restored for the printf, the redirections being the `.`'s own). */
    line = xasprintf("command . %s/cmd <%s/in >%s/out 2>%s/err 3>&-; "
                     "command printf '%%s %%s\\n' '%s' \"$?\" >&3\n",
                     q, q, q, q, c->id);
    c->oom_counter = dt_agent_oom_count(a);
    /* One short line per command and only one outstanding at a time: the pipe has room. */
    r = write_all(s->stdin_fd, line, strlen(line));
    if (r < 0)
        return dt_error_errno(err, -r, "session '%s': write to the shell", s->id);
    input_flush(c);
    return 0;
}

static void
session_next(struct dt_session *s)
{
    while (!s->running && !s->ended) {
        _cleanup_error_ struct dt_error *e = NULL;
        struct cmd *c;
        int r;

        for (c = s->cmds; c && c->state != CMD_QUEUED; c = c->next)
            ;
        if (!c)
            return;
        c->state = CMD_RUNNING;
        s->running = c;
        r = cmd_start_io(c, &e);
        if (r < 0) {
            s->running = NULL;
            cmd_fail(c, r == -EPIPE ? 410 : 500, r == -EPIPE ? "SESSION_ENDED" : NULL,
                     e ? e->message : "cannot start the command");
        }
    }
}

/* ---- the shell ---- */

static void
status_line(struct dt_session *s, char *line)
{
    char *sp = strchr(line, ' ');
    int code;

    if (!sp || !s->running)
        return;
    *sp = 0;
    if (strcmp(line, s->running->id) != 0)
        return;
    code = (int) strtol(sp + 1, NULL, 10);
    cmd_finish(s->running, code);
}

static void
status_read(struct dt_session *s)
{
    for (;;) {
        ssize_t n;
        char *nl;

        if (s->status_fd < 0)
            return;
        n = read(s->status_fd, s->sbuf + s->slen, sizeof(s->sbuf) - 1 - s->slen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            poll_close(&s->status_poll);
            s->status_fd = safe_close(s->status_fd);
            return;
        }
        s->slen += (size_t) n;
        s->sbuf[s->slen] = 0;
        while ((nl = memchr(s->sbuf, '\n', s->slen))) {
            size_t used = (size_t) (nl - s->sbuf) + 1;
            *nl = 0;
            status_line(s, s->sbuf);
            memmove(s->sbuf, s->sbuf + used, s->slen - used);
            s->slen -= used;
        }
        if (s->slen == sizeof(s->sbuf) - 1)
            s->slen = 0; /* not ours: a line this long is garbage */
    }
}

static void
on_status(uv_poll_t *p, int status, int events)
{
    status_read(p->data);
}

static void
on_shell_exit(struct dt_proc *p, const struct dt_proc_exit *e, void *ud)
{
    struct dt_session *s = ud;

    /* A status line written just before the shell died may still be in the pipe. */
    status_read(s);
    s->ended = true;
    s->stdin_fd = safe_close(s->stdin_fd);
    poll_close(&s->status_poll);
    s->status_fd = safe_close(s->status_fd);
    if (s->running) {
        /* e.g. the command ran `exit`: it ends with the shell's status. */
        struct cmd *c = s->running;
        cmd_finish(c, e->code);
    }
    for (struct cmd *c = s->cmds; c; c = c->next)
        if (c->state == CMD_QUEUED)
            cmd_fail(c, 410, "SESSION_ENDED", "the session's shell has exited");
    dt_proc_free(s->proc);
    s->proc = NULL;
}

static void
session_free(struct dt_session *s)
{
    if (!s)
        return;
    if (s->proc) {
        dt_proc_kill(s->proc, SIGKILL);
        dt_proc_free(s->proc);
    }
    while (s->cmds) {
        struct cmd *c = s->cmds;
        s->cmds = c->next;
        cmd_free(c);
    }
    poll_close(&s->status_poll);
    safe_close(s->status_fd);
    safe_close(s->stdin_fd);
    if (s->dir)
        (void) rmdir(s->dir);
    free(s->dir);
    free(s->id);
    free(s);
}

static struct dt_session *
session_find(struct dt_agent *a, const char *id)
{
    for (struct dt_session *s = a->sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static int
session_new(struct dt_agent *a, const char *id, struct dt_session **ret, struct dt_error **err)
{
    _cleanup_free_ char *sessions = NULL, *dirname = NULL;
    struct dt_session *s;
    int in[2], st[2];
    int r;

    r = mkdir_mode(a->state_dir, 0711, err);
    if (r < 0)
        return r;
    sessions = xasprintf("%s/sessions", a->state_dir);
    r = mkdir_mode(sessions, 0711, err);
    if (r < 0)
        return r;

    s = xcalloc(1, sizeof(*s));
    s->a = a;
    s->id = xstrdup(id);
    s->stdin_fd = s->status_fd = -EBADF;
    /* The directory is named by a generated id: session ids may hold any byte but '/'. */
    dirname = dt_agent_new_id(a, "s");
    s->dir = xasprintf("%s/%s", sessions, dirname);
    if (mkdir(s->dir, 0711) < 0) {
        r = dt_error_errno(err, errno, "create directory %s", s->dir);
        free(s->dir);
        s->dir = NULL;
        session_free(s);
        return r;
    }
    if (pipe2(in, O_CLOEXEC) < 0) {
        r = dt_error_errno(err, errno, "session '%s': pipe", id);
        session_free(s);
        return r;
    }
    if (pipe2(st, O_CLOEXEC) < 0) {
        r = dt_error_errno(err, errno, "session '%s': pipe", id);
        close(in[0]);
        close(in[1]);
        session_free(s);
        return r;
    }
    s->stdin_fd = in[1];
    s->status_fd = st[0];
    (void) fcntl(s->status_fd, F_SETFL, O_NONBLOCK);
    {
        char *argv[] = { (char *) session_shell(a), NULL };
        char **env = dt_agent_env(a, NULL);
        struct dt_spawn sp = {
            .argv = argv,
            .env = env,
            .cwd = a->workdir,
            .stdio = { in[0], -1, -1 },
            .extra_fds = &st[1],
            .n_extra_fds = 1,
        };
        r = dt_proc_spawn(a, &sp, on_shell_exit, s, &s->proc, NULL, err);
        strv_free(env);
    }
    close(in[0]);
    close(st[1]);
    if (r < 0) {
        (void) dt_error_wrap(err, "start the shell of session '%s'", id);
        session_free(s);
        return r;
    }
    s->status_poll = xmalloc(sizeof(*s->status_poll));
    r = uv_poll_init(a->loop, s->status_poll, s->status_fd);
    if (r == 0) {
        s->status_poll->data = s;
        r = uv_poll_start(s->status_poll, UV_READABLE, on_status);
    } else {
        free(s->status_poll);
        s->status_poll = NULL;
    }
    if (r < 0) {
        r = dt_error_errno(err, -r, "session '%s': watch the shell", id);
        session_free(s);
        return r;
    }
    s->next = a->sessions;
    a->sessions = s;
    *ret = s;
    return 0;
}

static void
session_unlink(struct dt_agent *a, struct dt_session *s)
{
    for (struct dt_session **pp = &a->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

/* Append C to S's history, forgetting the oldest finished commands over the limit. */
static void
session_add(struct dt_session *s, struct cmd *c)
{
    if (s->last)
        s->last->next = c;
    else
        s->cmds = c;
    s->last = c;
    s->n_cmds++;
    while (s->n_cmds > MAX_HISTORY && s->cmds->state == CMD_DONE && s->cmds != c) {
        struct cmd *old = s->cmds;
        s->cmds = old->next;
        s->n_cmds--;
        cmd_free(old);
    }
}

static struct cmd *
cmd_new(struct dt_session *s, const char *command, bool suppress_echo)
{
    struct cmd *c = xcalloc(1, sizeof(*c));

    c->s = s;
    c->id = dt_agent_new_id(s->a, "cmd-");
    c->command = xstrdup(command);
    c->suppress_echo = suppress_echo;
    c->out.fd = c->err.fd = c->in_fd = -EBADF;
    c->state = CMD_QUEUED;
    return c;
}

static json_t *
session_json(const struct dt_session *s)
{
    json_t *cmds = json_array();

    for (const struct cmd *c = s->cmds; c; c = c->next)
        json_array_append_new(cmds, cmd_json(c));
    return json_pack("{s:s, s:o}", "sessionId", s->id, "commands", cmds);
}

/* ---- routes ---- */

static struct dt_session *
find_or_404(struct dt_agent *a, struct dt_httpd_req *req, const char *id)
{
    struct dt_session *s = session_find(a, id);

    if (!s)
        dt_agent_error(req, 404, "PROCESS_NOT_FOUND", "session '%s' not found", id);
    return s;
}

static struct cmd *
cmd_find_or_404(struct dt_agent *a, struct dt_httpd_req *req, const char *sid, const char *cid)
{
    struct dt_session *s = find_or_404(a, req, sid);

    if (!s)
        return NULL;
    for (struct cmd *c = s->cmds; c; c = c->next)
        if (strcmp(c->id, cid) == 0)
            return c;
    dt_agent_error(req, 404, "PROCESS_NOT_FOUND", "command '%s' not found in session '%s'", cid,
                   sid);
    return NULL;
}

static void
create_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *e = NULL;
    json_t *jid = json_object_get(body, "sessionId");
    struct dt_session *s;
    const char *id;
    size_t n = 0;
    int r;

    if (!json_is_string(jid) || json_string_length(jid) == 0 ||
        json_string_length(jid) > SID_MAX) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY",
                       "sessionId must be a string of 1 to %d characters", SID_MAX);
        return;
    }
    id = json_string_value(jid);
    if (strlen(id) != json_string_length(jid) || strchr(id, '/')) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY", "sessionId must not contain '/' or NUL");
        return;
    }
    if (strcmp(id, DT_SESSION_ENTRYPOINT) == 0) {
        dt_agent_error(req, 409, "CONFLICT", "session id '%s' is reserved", id);
        return;
    }
    if (session_find(a, id)) {
        dt_agent_error(req, 409, "CONFLICT", "session '%s' already exists", id);
        return;
    }
    for (s = a->sessions; s; s = s->next)
        n++;
    if (n >= MAX_SESSIONS) {
        dt_agent_error(req, 429, NULL, "too many sessions (at most %d): delete some first",
                       MAX_SESSIONS);
        return;
    }
    r = session_new(a, id, &s, &e);
    if (r < 0) {
        dt_agent_error(req, 500, NULL, "%s", e ? e->message : "cannot create the session");
        return;
    }
    dt_httpd_reply_json(req, 201, json_pack("{s:s}", "sessionId", id));
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

    for (struct dt_session *s = a->sessions; s; s = s->next)
        if (strcmp(s->id, DT_SESSION_ENTRYPOINT) != 0)
            json_array_append_new(arr, session_json(s));
    dt_httpd_reply_json(req, 200, arr);
}

static void
route_get(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_session *s = find_or_404(a, req, params[0]);

    if (s)
        dt_httpd_reply_json(req, 200, session_json(s));
}

static void
route_entrypoint(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    static const char *const p[] = { DT_SESSION_ENTRYPOINT, NULL };
    route_get(a, req, p);
}

static void
route_delete(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_session *s = find_or_404(a, req, params[0]);

    if (!s)
        return;
    session_unlink(a, s);
    session_free(s);
    dt_agent_ok(req);
}

static void
on_waiter_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct cmd *c = ud;

    /* The client went away: the command keeps running, nobody waits for it. */
    c->waiter = NULL;
    timer_close(c);
}

static void
on_exec_timeout(uv_timer_t *t)
{
    struct cmd *c = t->data;
    struct dt_httpd_req *req = cmd_take_waiter(c);

    if (req)
        dt_agent_error(req, 408, "PROCESS_EXECUTION_TIMEOUT",
                       "command '%s' did not finish within the timeout; it is still running in "
                       "session '%s'", c->id, c->s->id);
}

static bool
json_flag(json_t *body, const char *name)
{
    return json_is_true(json_object_get(body, name));
}

static void
exec_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    struct dt_session *s = find_or_404(a, req, params[0]);
    json_t *jcmd = json_object_get(body, "command");
    json_t *jto = json_object_get(body, "timeout");
    bool async = json_flag(body, "runAsync") || json_flag(body, "async");
    size_t queued = 0;
    struct cmd *c;

    if (!s)
        return;
    if (s->ended) {
        dt_agent_error(req, 410, "SESSION_ENDED", "the shell of session '%s' has exited", s->id);
        return;
    }
    if (!json_is_string(jcmd) || strlen(json_string_value(jcmd)) != json_string_length(jcmd)) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY", "command must be a string");
        return;
    }
    if (jto && !json_is_null(jto) && (!json_is_number(jto) || json_number_value(jto) < 0)) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY", "timeout must be a number of seconds");
        return;
    }
    for (c = s->cmds; c; c = c->next)
        queued += c->state == CMD_QUEUED;
    if (queued >= MAX_QUEUED) {
        dt_agent_error(req, 429, NULL, "session '%s' has %zu commands waiting", s->id, queued);
        return;
    }
    c = cmd_new(s, json_string_value(jcmd), json_flag(body, "suppressInputEcho"));
    session_add(s, c);
    if (async)
        dt_httpd_reply_json(req, 200, json_pack("{s:s}", "cmdId", c->id));
    else {
        c->waiter = req;
        dt_httpd_req_set_close_cb(req, on_waiter_close, c);
        if (json_is_number(jto) && json_number_value(jto) > 0) {
            double ms = json_number_value(jto) * 1000.0;
            c->timer = xmalloc(sizeof(*c->timer));
            uv_timer_init(a->loop, c->timer);
            c->timer->data = c;
            uv_timer_start(c->timer, on_exec_timeout, ms > 1e12 ? (uint64_t) 1e12 : (uint64_t) ms,
                           0);
        }
    }
    session_next(s);
}

static void
route_exec(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, exec_json);
}

static void
route_command(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct cmd *c = cmd_find_or_404(a, req, params[0], params[1]);

    if (c)
        dt_httpd_reply_json(req, 200, cmd_json(c));
}

static void
logs(struct cmd *c, struct dt_httpd_req *req)
{
    /* A WebSocket upgrade means follow (the SDK sends follow=true); a plain GET is the JSON
     * snapshot whatever follow says. */
    if (dt_httpd_req_is_websocket(req))
        follow(c, req);
    else
        dt_httpd_reply_json(req, 200, output_json(c));
}

static void
route_logs(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct cmd *c = cmd_find_or_404(a, req, params[0], params[1]);

    if (c)
        logs(c, req);
}

static void
route_entrypoint_logs(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    struct dt_session *s = session_find(a, DT_SESSION_ENTRYPOINT);

    if (!s || !s->cmds) {
        dt_agent_error(req, 404, "PROCESS_NOT_FOUND", "the sandbox has no entrypoint session");
        return;
    }
    logs(s->cmds, req);
}

static void
input_json(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    struct cmd *c = cmd_find_or_404(a, req, params[0], params[1]);
    json_t *jd = json_object_get(body, "data");
    const char *data;
    size_t len;

    if (!c)
        return;
    if (!json_is_string(jd)) {
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY", "data must be a string");
        return;
    }
    if (c->state == CMD_DONE) {
        dt_agent_error(req, 410, "COMMAND_ALREADY_COMPLETED", "command '%s' has already completed",
                       c->id);
        return;
    }
    if (c->s->ended) {
        dt_agent_error(req, 410, "SESSION_ENDED", "the shell of session '%s' has exited",
                       c->s->id);
        return;
    }
    data = json_string_value(jd);
    len = json_string_length(jd);
    if (c->in_len + len > INPUT_MAX) {
        dt_agent_error(req, 429, NULL, "command '%s' has %zu bytes of input it has not read yet",
                       c->id, c->in_len);
        return;
    }
    c->in_buf = xrealloc(c->in_buf, c->in_len + len + 1);
    memcpy(c->in_buf + c->in_len, data, len);
    c->in_len += len;
    if (!c->suppress_echo)
        output_append(c, ST_OUT, data, len);
    input_flush(c);
    dt_agent_ok(req);
}

static void
route_input(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, input_json);
}

/* The entrypoint routes come before the generic ones (contract 3.6: "entrypoint" is reserved). */
const struct dt_route dt_session_routes[] = {
    { "GET", "/process/session/entrypoint", route_entrypoint },
    { "GET", "/process/session/entrypoint/logs", route_entrypoint_logs },
    { "POST", "/process/session", route_create },
    { "GET", "/process/session", route_list },
    { "GET", "/process/session/*", route_get },
    { "DELETE", "/process/session/*", route_delete },
    { "POST", "/process/session/*/exec", route_exec },
    { "GET", "/process/session/*/command/*", route_command },
    { "GET", "/process/session/*/command/*/logs", route_logs },
    { "POST", "/process/session/*/command/*/input", route_input },
    {},
};

/* ---- entrypoint ---- */

int
dt_session_start_entrypoint(struct dt_agent *a, char **argv, struct dt_error **err)
{
    struct dt_session *s;
    char *cmd = xstrdup("");
    int r;

    if (!argv || !argv[0])
        return dt_error_set(err, EINVAL, "empty entrypoint");
    r = session_new(a, DT_SESSION_ENTRYPOINT, &s, err);
    if (r < 0) {
        free(cmd);
        return r;
    }
    for (size_t i = 0; argv[i]; i++) {
        _cleanup_free_ char *q = shell_quote(argv[i]);
        char *n = xasprintf("%s%s%s", cmd, i ? " " : "", q);
        free(cmd);
        cmd = n;
    }
    session_add(s, cmd_new(s, cmd, false));
    free(cmd);
    session_next(s);
    return 0;
}

int
dt_session_busy(struct dt_agent *a)
{
    int n = 0;

    for (struct dt_session *s = a->sessions; s; s = s->next)
        n += s->running != NULL;
    return n;
}
