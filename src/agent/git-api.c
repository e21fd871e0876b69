/* SPDX-License-Identifier: Apache-2.0 */
/* The git routes of the toolbox API (contract 3.10): each request is planned by git.c into a few
 * `git` invocations, which run here one after another on the loop as the sandbox user; their
 * outputs become the JSON reply or a classified error. A client that goes away cancels the
 * step in flight (a half-finished clone is git's to clean up, as after a ^C). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/git.h"
#include "agent/run.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* Network operations can legitimately take long (a big clone over a slow link); local ones
 * cannot, and a hung one (a credential prompt that slipped through, a stuck lock) must not hold
 * the request forever. */
#define GIT_NETWORK_TIMEOUT_MS (30ull * 60 * 1000)
#define GIT_LOCAL_TIMEOUT_MS   (10ull * 60 * 1000)

/* The query parameters the GET routes take (git.c reads them like JSON fields). */
static const char *const query_fields[] = { "path", "key", "scope" };

/* One request in flight. Owned by the request: freed by its close callback, which also cancels
 * the running step. */
struct git_call {
    struct dt_agent *a;
    struct dt_httpd_req *req;
    struct dt_run *run; /* the step running now, or NULL */
    struct dt_git_plan plan;
    char **base_env;    /* the sandbox user's environment; each step adds its own on top */
    uint64_t timeout_ms; /* per step */
    size_t n_done;      /* steps that have finished */
    struct dt_git_output outs[DT_GIT_MAX_STEPS];
    char *out_bufs[DT_GIT_MAX_STEPS], *err_bufs[DT_GIT_MAX_STEPS]; /* back outs[] */
};

static void
git_call_free(struct git_call *c)
{
    if (!c)
        return;
    if (c->run)
        dt_run_cancel(c->run);
    for (size_t i = 0; i < DT_GIT_MAX_STEPS; i++) {
        free(c->out_bufs[i]);
        free(c->err_bufs[i]);
    }
    strv_free(c->base_env);
    dt_git_plan_done(&c->plan);
    free(c);
}

static void
on_req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    /* Either the reply was written (nothing runs any more) or the client is gone: in both
     * cases nobody will read what a running step produces. */
    git_call_free(ud);
}

/* The last thing a call does: after a reply the close callback may free C at any time. */
static void
reply_git_error(struct git_call *c, struct dt_git_error *gerr)
{
    dt_agent_error(c->req, gerr->status, gerr->code, "%s",
                   gerr->message ? gerr->message : "git failed");
    dt_git_error_done(gerr);
}

static void
reply_result(struct git_call *c)
{
    struct dt_git_error gerr = { 0 };
    json_t *body = NULL;
    int r;

    r = dt_git_result(&c->plan, c->outs, c->n_done, &body, &gerr);
    if (r < 0)
        return reply_git_error(c, &gerr);
    dt_git_error_done(&gerr);
    if (!body)
        return dt_agent_ok(c->req);
    dt_httpd_reply_json(c->req, 200, body);
}

/* The step's env on top of the user's: a step's GIT_* setting must win over one the user set
 * with POST /env. Returns a new strv. */
static char **
step_env(char *const *base, char *const *extra)
{
    char **env = NULL;

    for (size_t i = 0; base && base[i]; i++) {
        const char *eq = strchr(base[i], '=');
        size_t klen = eq ? (size_t) (eq - base[i]) : strlen(base[i]);
        bool overridden = false;

        for (size_t j = 0; extra && extra[j] && !overridden; j++)
            overridden = strncmp(extra[j], base[i], klen) == 0 && extra[j][klen] == '=';
        if (!overridden)
            strv_push(&env, base[i]);
    }
    for (size_t j = 0; extra && extra[j]; j++)
        strv_push(&env, extra[j]);
    if (!env)
        env = xcalloc(1, sizeof(char *));
    return env;
}

static void on_step_done(struct dt_run *run, const struct dt_run_result *res, void *ud);

/* Start step c->n_done. Returns 0, or answers the request and returns -errno. */
static int
start_step(struct git_call *c)
{
    const struct dt_git_step *s = &c->plan.steps[c->n_done];
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_strv_free_ char **env = step_env(c->base_env, s->env);
    struct dt_run_opts o = {
        .argv = s->argv,
        .env = env,
        .cwd = c->plan.cwd,
        .input = s->stdin_data,
        .input_len = s->stdin_len,
        /* One byte over git.c's limit so that an overflowing listing is seen as too large
         * (and refused) instead of being parsed truncated. */
        .max_out = DT_GIT_MAX_STDOUT + 1,
        .max_err = DT_GIT_MAX_STDERR,
        .timeout_ms = c->timeout_ms,
    };
    int r;

    r = dt_run_start(c->a, &o, on_step_done, c, &c->run, &err);
    if (r >= 0)
        return 0;
    c->run = NULL;
    if (r == -ENOENT && err && strstr(err->message, "no such command")) {
        struct dt_git_error gerr = { 0 };
        dt_git_error_not_installed(&gerr);
        reply_git_error(c, &gerr);
    } else
        dt_agent_error_errno(c->req, r, err);
    return r;
}

static void
on_step_done(struct dt_run *run, const struct dt_run_result *res, void *ud)
{
    struct git_call *c = ud;
    size_t i = c->n_done;
    struct dt_git_output *o = &c->outs[i];

    c->run = NULL;
    if (res->timed_out)
        return dt_agent_error(c->req, 408, "REQUEST_TIMEOUT",
                              "git %s timed out after %llu minutes", dt_git_op_name(c->plan.op),
                              (unsigned long long) (c->timeout_ms / 60000));
    /* The run's buffers die with this callback; the result is built from all steps at the end. */
    c->out_bufs[i] = xmemdup(res->out, res->out_len + 1);
    c->err_bufs[i] = xmemdup(res->err, res->err_len + 1);
    o->exit_code = res->exit.code;
    o->out = c->out_bufs[i];
    o->out_len = res->out_len;
    o->err = c->err_bufs[i];
    o->err_len = res->err_len;
    c->n_done++;
    if ((o->exit_code != 0 && !c->plan.steps[i].ok_to_fail) || c->n_done == c->plan.n_steps)
        return reply_result(c);
    (void) start_step(c);
}

/* Plan OP from REQ_OBJ (borrowed) and start it; answers the request on any failure. */
static void
git_start(struct dt_agent *a, struct dt_httpd_req *req, enum dt_git_op op, json_t *req_obj)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct git_call *c;
    int r;

    c = xcalloc(1, sizeof(*c));
    c->a = a;
    c->req = req;
    r = dt_git_plan(op, req_obj, a->workdir, &c->plan, &err);
    if (r < 0) {
        git_call_free(c);
        if (r == -EINVAL)
            return dt_agent_error(req, 400, "BAD_REQUEST", "%s",
                                  err ? err->message : "invalid request");
        return dt_agent_error_errno(req, r, err);
    }
    if (c->plan.n_steps == 0) {
        /* Nothing to run (not expected from the planner): the result decides. */
        dt_httpd_req_set_close_cb(req, on_req_close, c);
        return reply_result(c);
    }
    c->base_env = dt_agent_env(a, NULL);
    c->timeout_ms = op == DT_GIT_CLONE || op == DT_GIT_PUSH || op == DT_GIT_PULL ?
                        GIT_NETWORK_TIMEOUT_MS :
                        GIT_LOCAL_TIMEOUT_MS;
    /* From here on the request owns C: a lost client cancels the step in flight. */
    dt_httpd_req_set_close_cb(req, on_req_close, c);
    (void) start_step(c);
}

static void
git_query(struct dt_agent *a, struct dt_httpd_req *req, enum dt_git_op op)
{
    json_t *obj = json_object();

    for (size_t i = 0; i < ELEMENTSOF(query_fields); i++) {
        const char *v = dt_httpd_req_query(req, query_fields[i]);
        json_t *s;

        if (!v)
            continue;
        s = json_string(v);
        if (!s) {
            json_decref(obj);
            return dt_agent_error(req, 400, "BAD_REQUEST",
                                  "query parameter '%s' is not valid UTF-8", query_fields[i]);
        }
        json_object_set_new(obj, query_fields[i], s);
    }
    git_start(a, req, op, obj);
    json_decref(obj);
}

/* One route and one body callback per op: the op is known from the route, so nothing has to be
 * smuggled through the JSON reader. */
#define GIT_BODY_ROUTE(name, op)                                                                   \
    static void body_##name(struct dt_agent *a, struct dt_httpd_req *req, json_t *body,            \
                            const char *const *params)                                             \
    {                                                                                              \
        git_start(a, req, op, body);                                                               \
    }                                                                                              \
    static void route_##name(struct dt_agent *a, struct dt_httpd_req *req,                         \
                             const char *const *params)                                            \
    {                                                                                              \
        dt_agent_read_json(a, req, params, body_##name);                                           \
    }

#define GIT_QUERY_ROUTE(name, op)                                                                  \
    static void route_##name(struct dt_agent *a, struct dt_httpd_req *req,                         \
                             const char *const *params)                                            \
    {                                                                                              \
        git_query(a, req, op);                                                                     \
    }

GIT_BODY_ROUTE(clone, DT_GIT_CLONE)
GIT_BODY_ROUTE(init, DT_GIT_INIT)
GIT_QUERY_ROUTE(status, DT_GIT_STATUS)
GIT_BODY_ROUTE(add, DT_GIT_ADD)
GIT_BODY_ROUTE(commit, DT_GIT_COMMIT)
GIT_QUERY_ROUTE(branches, DT_GIT_BRANCHES_LIST)
GIT_BODY_ROUTE(branch_create, DT_GIT_BRANCH_CREATE)
GIT_BODY_ROUTE(branch_delete, DT_GIT_BRANCH_DELETE)
GIT_BODY_ROUTE(checkout, DT_GIT_CHECKOUT)
GIT_BODY_ROUTE(push, DT_GIT_PUSH)
GIT_BODY_ROUTE(pull, DT_GIT_PULL)
GIT_BODY_ROUTE(reset, DT_GIT_RESET)
GIT_BODY_ROUTE(restore, DT_GIT_RESTORE)
GIT_BODY_ROUTE(remote_add, DT_GIT_REMOTE_ADD)
GIT_QUERY_ROUTE(remotes, DT_GIT_REMOTES)
GIT_BODY_ROUTE(config_set, DT_GIT_CONFIG_SET)
GIT_QUERY_ROUTE(config_get, DT_GIT_CONFIG_GET)
GIT_BODY_ROUTE(config_user, DT_GIT_CONFIG_USER)
GIT_BODY_ROUTE(credentials, DT_GIT_CREDENTIALS)
GIT_QUERY_ROUTE(history, DT_GIT_HISTORY)

const struct dt_route dt_git_routes[] = {
    { "POST", "/git/clone", route_clone },
    { "POST", "/git/init", route_init },
    { "GET", "/git/status", route_status },
    { "POST", "/git/add", route_add },
    { "POST", "/git/commit", route_commit },
    { "GET", "/git/branches", route_branches },
    { "POST", "/git/branches", route_branch_create },
    { "DELETE", "/git/branches", route_branch_delete },
    { "POST", "/git/checkout", route_checkout },
    { "POST", "/git/push", route_push },
    { "POST", "/git/pull", route_pull },
    { "POST", "/git/reset", route_reset },
    { "POST", "/git/restore", route_restore },
    { "POST", "/git/remotes", route_remote_add },
    { "GET", "/git/remotes", route_remotes },
    { "POST", "/git/config", route_config_set },
    { "GET", "/git/config", route_config_get },
    { "POST", "/git/config/user", route_config_user },
    { "POST", "/git/credentials", route_credentials },
    { "GET", "/git/history", route_history },
    {},
};
