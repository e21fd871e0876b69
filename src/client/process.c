/* SPDX-License-Identifier: Apache-2.0 */
/* Toolbox process calls: one-shot execute and code-run (contract §3.5), sessions and their
 * commands (§3.6), and following a command's logs over the WebSocket with the 3-byte stream
 * markers of §3.6.1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client-int.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

void
daytona_exec_result_done(struct daytona_exec_result *r)
{
    if (!r)
        return;
    free(r->output);
    *r = (struct daytona_exec_result) { 0 };
}

static int
exec_answer(json_t *j, const char *what, struct daytona_exec_result *ret, daytona_error **err)
{
    json_t *res, *code;

    if (!json_is_object(j))
        return dc_error(err, EPROTO, "%s: expected a JSON object", what);
    code = json_object_get(j, "exitCode");
    if (!json_is_integer(code))
        code = json_object_get(j, "code");
    res = json_object_get(j, "result");
    ret->exit_code = json_is_integer(code) ? (int) json_integer_value(code) : 0;
    if (json_is_string(res)) {
        ret->output_len = json_string_length(res);
        ret->output = xmemdup(json_string_value(res), ret->output_len + 1);
    } else {
        ret->output = xstrdup("");
        ret->output_len = 0;
    }
    return 0;
}

static int
run_call(daytona_client *c, const char *sandbox, const char *suffix, json_t *body, int timeout_s,
         const char *what, struct daytona_exec_result *ret, daytona_error **err)
{
    _cleanup_free_ char *url = NULL;
    json_t *j = NULL;
    int r;

    url = dc_toolbox_url(c, sandbox, err, &r, "%s", suffix);
    if (!url)
        return r;
    /* The HTTP request outlives the server-side limit a little, so the server's answer (with
     * its exit code or timeout error) wins the race. */
    r = dc_json_call(c, "POST", url, body, timeout_s > 0 ? (long) (timeout_s + 5) * 1000 : 0, &j,
                     what, err);
    if (r < 0)
        return r;
    r = exec_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

int
daytona_process_exec(daytona_client *c, const char *sandbox, const char *command, const char *cwd,
                     const char *const *env, int timeout_s, struct daytona_exec_result *ret,
                     daytona_error **err)
{
    json_t *body, *e = json_object();
    int r;

    if (!command)
        return dc_error(err, EINVAL, "execute: no command given");
    body = json_pack("{s:s}", "command", command);
    if (!body) {
        json_decref(e);
        return dc_error(err, EINVAL, "execute: the command is not valid UTF-8");
    }
    if (cwd)
        json_object_set_new(body, "cwd", json_string(cwd));
    r = dc_kv_to_json(env, e, "environment variable", err);
    if (r < 0) {
        json_decref(e);
        json_decref(body);
        return r;
    }
    if (json_object_size(e) > 0)
        json_object_set_new(body, "envs", e);
    else
        json_decref(e);
    if (timeout_s >= 0)
        json_object_set_new(body, "timeout", json_integer(timeout_s));
    r = run_call(c, sandbox, "/process/execute", body, timeout_s, "execute command", ret, err);
    json_decref(body);
    return r;
}

int
daytona_process_code_run(daytona_client *c, const char *sandbox, const char *code,
                         const char *language, const char *const *argv, const char *const *env,
                         int timeout_s, struct daytona_exec_result *ret, daytona_error **err)
{
    _cleanup_free_ char *lang = NULL;
    json_t *body, *e = json_object();
    int r;

    if (!code)
        return dc_error(err, EINVAL, "run code: no code given");
    if (language)
        lang = xstrdup(language);
    else {
        struct daytona_sandbox *sb = NULL;
        const char *l;

        r = daytona_sandbox_get(c, sandbox, &sb, err);
        if (r < 0) {
            json_decref(e);
            return r;
        }
        l = daytona_sandbox_label(sb, "code-toolbox-language");
        lang = xstrdup(l ? l : "python");
        daytona_sandbox_free(sb);
    }
    body = json_pack("{s:s,s:s}", "code", code, "language", lang);
    if (!body) {
        json_decref(e);
        return dc_error(err, EINVAL, "run code: the code is not valid UTF-8");
    }
    if (argv && argv[0]) {
        json_t *a = json_array();
        for (size_t i = 0; argv[i]; i++)
            json_array_append_new(a, json_string(argv[i]));
        json_object_set_new(body, "argv", a);
    }
    r = dc_kv_to_json(env, e, "environment variable", err);
    if (r < 0) {
        json_decref(e);
        json_decref(body);
        return r;
    }
    if (json_object_size(e) > 0)
        json_object_set_new(body, "envs", e);
    else
        json_decref(e);
    if (timeout_s >= 0)
        json_object_set_new(body, "timeout", json_integer(timeout_s));
    r = run_call(c, sandbox, "/process/code-run", body, timeout_s, "run code", ret, err);
    json_decref(body);
    return r;
}

/* ---- sessions ---- */

static int
session_call(daytona_client *c, const char *sandbox, const char *method, json_t *body,
             long timeout_ms, json_t **ret, const char *what, daytona_error **err, char *suffix)
{
    _cleanup_free_ char *url = NULL, *sfx = suffix;
    int r;

    url = dc_toolbox_url(c, sandbox, err, &r, "%s", sfx);
    if (!url)
        return r;
    return dc_json_call(c, method, url, body, timeout_ms, ret, what, err);
}

int
daytona_session_create(daytona_client *c, const char *sandbox, const char *session_id,
                       daytona_error **err)
{
    _cleanup_free_ char *what = NULL;
    json_t *body;
    int r;

    if (!session_id || !session_id[0])
        return dc_error(err, EINVAL, "create session: no session id given");
    what = xasprintf("create session '%s'", session_id);
    body = json_pack("{s:s}", "sessionId", session_id);
    if (!body)
        return dc_error(err, EINVAL, "%s: invalid id", what);
    r = session_call(c, sandbox, "POST", body, 0, NULL, what, err,
                     xstrdup("/process/session"));
    json_decref(body);
    return r;
}

int
daytona_session_delete(daytona_client *c, const char *sandbox, const char *session_id,
                       daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(session_id);
    _cleanup_free_ char *what = xasprintf("delete session '%s'", session_id);

    if (!session_id || !session_id[0])
        return dc_error(err, EINVAL, "no session id given");
    return session_call(c, sandbox, "DELETE", NULL, 0, NULL, what, err,
                        xasprintf("/process/session/%s", e));
}

void
daytona_command_free(struct daytona_command *cmd)
{
    if (!cmd)
        return;
    free(cmd->id);
    free(cmd->command);
    free(cmd);
}

static void
command_from_json(json_t *o, struct daytona_command *cmd)
{
    json_t *ec = json_object_get(o, "exitCode");

    cmd->id = dc_jstr(o, "id");
    if (!cmd->id)
        cmd->id = dc_jstr(o, "cmdId");
    cmd->command = dc_jstr(o, "command");
    cmd->has_exit_code = json_is_integer(ec);
    cmd->exit_code = cmd->has_exit_code ? (int) json_integer_value(ec) : 0;
}

static void
session_clear(struct daytona_session *s)
{
    free(s->session_id);
    for (size_t i = 0; i < s->n_commands; i++) {
        free(s->commands[i].id);
        free(s->commands[i].command);
    }
    free(s->commands);
}

void
daytona_session_free(struct daytona_session *s)
{
    if (!s)
        return;
    session_clear(s);
    free(s);
}

void
daytona_sessions_free(struct daytona_session *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        session_clear(&v[i]);
    free(v);
}

static void
session_from_json(json_t *o, struct daytona_session *s)
{
    json_t *cmds = json_object_get(o, "commands"), *x;
    size_t i;

    s->session_id = dc_jstr(o, "sessionId");
    if (!json_is_array(cmds))
        return;
    s->commands = xcalloc(json_array_size(cmds) + 1, sizeof(*s->commands));
    json_array_foreach(cmds, i, x) {
        if (json_is_object(x))
            command_from_json(x, &s->commands[s->n_commands++]);
    }
}

int
daytona_session_get(daytona_client *c, const char *sandbox, const char *session_id,
                    struct daytona_session **ret, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(session_id);
    _cleanup_free_ char *what = xasprintf("get session '%s'", session_id);
    json_t *j = NULL;
    int r;

    if (!session_id || !session_id[0])
        return dc_error(err, EINVAL, "no session id given");
    r = session_call(c, sandbox, "GET", NULL, 0, &j, what, err,
                     xasprintf("/process/session/%s", e));
    if (r < 0)
        return r;
    if (!json_is_object(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON object", what);
    }
    *ret = xcalloc(1, sizeof(**ret));
    session_from_json(j, *ret);
    json_decref(j);
    return 0;
}

int
daytona_session_list(daytona_client *c, const char *sandbox, struct daytona_session **ret,
                     size_t *n, daytona_error **err)
{
    struct daytona_session *v;
    json_t *j = NULL, *x;
    size_t i, k = 0;
    int r;

    r = session_call(c, sandbox, "GET", NULL, 0, &j, "list sessions", err,
                     xstrdup("/process/session"));
    if (r < 0)
        return r;
    if (!json_is_array(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "list sessions: expected a JSON array");
    }
    v = xcalloc(json_array_size(j) + 1, sizeof(*v));
    json_array_foreach(j, i, x) {
        if (json_is_object(x))
            session_from_json(x, &v[k++]);
    }
    json_decref(j);
    *ret = v;
    *n = k;
    return 0;
}

void
daytona_session_exec_result_done(struct daytona_session_exec_result *r)
{
    if (!r)
        return;
    free(r->cmd_id);
    free(r->output);
    free(r->std_out);
    free(r->std_err);
    *r = (struct daytona_session_exec_result) { 0 };
}

int
daytona_session_exec(daytona_client *c, const char *sandbox, const char *session_id,
                     const char *command, bool run_async, int timeout_s,
                     struct daytona_session_exec_result *ret, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(session_id);
    _cleanup_free_ char *what = xasprintf("run command in session '%s'", session_id);
    json_t *body, *j = NULL, *ec;
    int r;

    if (!session_id || !session_id[0])
        return dc_error(err, EINVAL, "no session id given");
    if (!command)
        return dc_error(err, EINVAL, "%s: no command given", what);
    body = json_pack("{s:s}", "command", command);
    if (!body)
        return dc_error(err, EINVAL, "%s: the command is not valid UTF-8", what);
    if (run_async) {
        json_object_set_new(body, "runAsync", json_true());
        json_object_set_new(body, "async", json_true());
    }
    r = session_call(c, sandbox, "POST", body,
                     !run_async && timeout_s > 0 ? (long) timeout_s * 1000 : 0, &j, what, err,
                     xasprintf("/process/session/%s/exec", e));
    json_decref(body);
    if (r < 0)
        return r;
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "cmdId"))) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: the answer has no \"cmdId\"", what);
    }
    *ret = (struct daytona_session_exec_result) { 0 };
    ret->cmd_id = dc_jstr(j, "cmdId");
    ec = json_object_get(j, "exitCode");
    ret->has_exit_code = json_is_integer(ec);
    ret->exit_code = ret->has_exit_code ? (int) json_integer_value(ec) : 0;
    ret->output = dc_jstr(j, "output");
    ret->std_out = dc_jstr(j, "stdout");
    ret->std_err = dc_jstr(j, "stderr");
    if (!run_async) {
        if (!ret->std_out)
            ret->std_out = xstrdup("");
        if (!ret->std_err)
            ret->std_err = xstrdup("");
        if (!ret->output)
            ret->output = xstrdup("");
    }
    json_decref(j);
    return 0;
}

int
daytona_session_command_get(daytona_client *c, const char *sandbox, const char *session_id,
                            const char *cmd_id, struct daytona_command **ret, daytona_error **err)
{
    _cleanup_free_ char *es = dc_escape(session_id), *ec = dc_escape(cmd_id);
    _cleanup_free_ char *what = xasprintf("get command '%s' of session '%s'", cmd_id, session_id);
    json_t *j = NULL;
    int r;

    if (!session_id || !cmd_id)
        return dc_error(err, EINVAL, "no session or command id given");
    r = session_call(c, sandbox, "GET", NULL, 0, &j, what, err,
                     xasprintf("/process/session/%s/command/%s", es, ec));
    if (r < 0)
        return r;
    if (!json_is_object(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON object", what);
    }
    *ret = xcalloc(1, sizeof(**ret));
    command_from_json(j, *ret);
    json_decref(j);
    return 0;
}

int
daytona_session_command_logs(daytona_client *c, const char *sandbox, const char *session_id,
                             const char *cmd_id, char **std_out, char **std_err,
                             daytona_error **err)
{
    _cleanup_free_ char *es = dc_escape(session_id), *ec = dc_escape(cmd_id), *url = NULL;
    _cleanup_free_ char *what = xasprintf("get logs of command '%s'", cmd_id);
    struct dc_req req = { .method = "GET", .accept = "application/json,text/plain" };
    struct dc_resp resp;
    json_t *j;
    int r;

    if (!session_id || !cmd_id)
        return dc_error(err, EINVAL, "no session or command id given");
    url = dc_toolbox_url(c, sandbox, err, &r, "/process/session/%s/command/%s/logs", es, ec);
    if (!url)
        return r;
    req.url = url;
    r = dc_perform(c, &req, &resp, what, err);
    if (r < 0)
        return r;
    j = resp.len ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    if (json_is_object(j)) {
        if (std_out)
            *std_out = dc_jstr(j, "stdout");
        if (std_err)
            *std_err = dc_jstr(j, "stderr");
        if (std_out && !*std_out)
            *std_out = dc_jstr(j, "output");
    } else {
        /* An older server answers plain text: all of it is the output. */
        if (std_out)
            *std_out = resp.body ? xstrdup(resp.body) : NULL;
        if (std_err)
            *std_err = NULL;
    }
    json_decref(j);
    dc_resp_done(&resp);
    if (std_out && !*std_out)
        *std_out = xstrdup("");
    if (std_err && !*std_err)
        *std_err = xstrdup("");
    return 0;
}

int
daytona_session_command_input(daytona_client *c, const char *sandbox, const char *session_id,
                              const char *cmd_id, const char *data, daytona_error **err)
{
    _cleanup_free_ char *es = dc_escape(session_id), *ec = dc_escape(cmd_id);
    _cleanup_free_ char *what = xasprintf("send input to command '%s'", cmd_id);
    json_t *body = json_pack("{s:s}", "data", data ? data : "");
    int r;

    if (!session_id || !cmd_id)
        return dc_error(err, EINVAL, "no session or command id given");
    if (!body)
        return dc_error(err, EINVAL, "%s: the input is not valid UTF-8", what);
    r = session_call(c, sandbox, "POST", body, 0, NULL, what, err,
                     xasprintf("/process/session/%s/command/%s/input", es, ec));
    json_decref(body);
    return r;
}

/* ---- follow: demultiplex the 01 01 01 / 02 02 02 markers (contract §3.6.1) ---- */

struct demux {
    int stream;                 /* 0 before the first marker (bytes dropped), 1 stdout, 2 stderr */
    uint8_t hold[2];            /* a possible marker split across frames */
    size_t hold_len;
    daytona_output_cb out, errcb;
    void *ud;
};

static int
demux_emit(struct demux *d, const uint8_t *p, size_t n)
{
    daytona_output_cb cb = d->stream == 1 ? d->out : d->stream == 2 ? d->errcb : NULL;

    if (n == 0 || !cb)
        return 0;
    return cb((const char *) p, n, d->ud);
}

static int
demux_feed(struct demux *d, const uint8_t *data, size_t len)
{
    _cleanup_free_ uint8_t *buf = NULL;
    const uint8_t *p = data;
    size_t n = len, i = 0, start = 0;
    int r;

    if (d->hold_len > 0) {
        buf = xmalloc(d->hold_len + len);
        memcpy(buf, d->hold, d->hold_len);
        memcpy(buf + d->hold_len, data, len);
        p = buf;
        n = d->hold_len + len;
        d->hold_len = 0;
    }
    while (i < n) {
        uint8_t b = p[i];

        if (b != 1 && b != 2) {
            i++;
            continue;
        }
        if (i + 3 <= n) {
            if (p[i + 1] == b && p[i + 2] == b) {
                r = demux_emit(d, p + start, i - start);
                if (r < 0)
                    return r;
                d->stream = b;
                i += 3;
                start = i;
                continue;
            }
            i++;
            continue;
        }
        /* Fewer than 3 bytes left: hold them back if they may begin a marker. */
        if (p[n - 1] == b && (n - i == 1 || p[i + 1] == b)) {
            r = demux_emit(d, p + start, i - start);
            if (r < 0)
                return r;
            d->hold_len = n - i;
            memcpy(d->hold, p + i, d->hold_len);
            return 0;
        }
        i++;
    }
    return demux_emit(d, p + start, n - start);
}

int
daytona_session_command_follow(daytona_client *c, const char *sandbox, const char *session_id,
                               const char *cmd_id, daytona_output_cb on_stdout,
                               daytona_output_cb on_stderr, void *userdata, daytona_error **err)
{
    _cleanup_free_ char *what = xasprintf("follow logs of command '%s'", cmd_id ? cmd_id : "");
    _cleanup_free_ char *url = NULL;
    struct demux d = { .out = on_stdout, .errcb = on_stderr, .ud = userdata };
    struct dc_ws ws;
    int r;

    if (!session_id || !cmd_id)
        return dc_error(err, EINVAL, "%s: no session or command given", what);
    /* Ids go in unencoded, as the SDK builds this URL by hand; they are ours or the server's. */
    url = dc_toolbox_url(c, sandbox, err, &r, "/process/session/%s/command/%s/logs?follow=true",
                         session_id, cmd_id);
    if (!url)
        return r;
    r = dc_ws_connect(c, url, NULL, NULL, &ws, err);
    if (r < 0)
        return r;
    for (;;) {
        struct dt_ws_event ev;

        while ((r = dc_ws_next(&ws, &ev)) > 0) {
            if (ev.type == DT_WS_EV_DATA) {
                r = demux_feed(&d, ev.data, ev.len);
                if (r < 0) {
                    dc_ws_done(&ws);
                    return r;
                }
            } else if (ev.opcode == DT_WS_OP_CLOSE) {
                /* Flush a held-back partial marker: it was data after all. */
                r = demux_emit(&d, d.hold, d.hold_len);
                dc_ws_done(&ws);
                if (r < 0)
                    return r;
                if (ev.close_code != DT_WS_CLOSE_NORMAL && ev.close_code != DT_WS_CLOSE_NO_STATUS &&
                    ev.close_code != DT_WS_CLOSE_GOING_AWAY)
                    return dc_error(err, EPROTO, "%s: the server closed the stream with code %u",
                                    what, ev.close_code);
                return 0;
            }
        }
        if (r < 0) {
            r = dc_error(err, -r, "%s: %s", what,
                         dt_ws_parser_error(&ws.parser) ? dt_ws_parser_error(&ws.parser)
                                                        : "protocol error");
            dc_ws_done(&ws);
            return r;
        }
        r = dc_ws_fill(&ws, -1);
        if (r == 0) {
            dc_ws_done(&ws);
            return dc_error(err, ECONNRESET, "%s: the connection closed before the end of the "
                                             "stream", what);
        }
        if (r < 0 && r != -EAGAIN) {
            dc_ws_done(&ws);
            return dc_error_errno(err, r, "%s: read", what);
        }
    }
}
