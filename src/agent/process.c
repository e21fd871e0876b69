/* SPDX-License-Identifier: Apache-2.0 */
/* One-shot execution: POST /process/execute (a shell command, output merged into `result`) and
 * POST /process/code-run (python, javascript or typescript; matplotlib figures come back as
 * chart artifacts). Stateless: each call is a new process, run as the sandbox user. A client
 * that goes away cancels its run (nobody would read the result). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/run.h"
#include "dt/xalloc.h"
#include "py_coderun.h"
#include "dt/banned.h"

#define OOM_NOTE "\n[process killed by the out-of-memory killer: the sandbox ran out of memory]\n"

struct exec_call {
    struct dt_httpd_req *req;
    struct dt_run *run;
    bool charts;
    char *tmpfile; /* a program file to remove when the run is over */
};

static void
exec_call_free(struct exec_call *c)
{
    if (c->tmpfile)
        (void) unlink(c->tmpfile);
    free(c->tmpfile);
    free(c);
}

static void
on_exec_req_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct exec_call *c = ud;

    c->req = NULL;
    if (c->run)
        dt_run_cancel(c->run);
    exec_call_free(c);
}

static void
on_exec_done(struct dt_run *run, const struct dt_run_result *res, void *ud)
{
    struct exec_call *c = ud;
    struct dt_httpd_req *req = c->req;
    _cleanup_free_ char *out = NULL;
    size_t out_len = res->out_len;
    json_t *j;

    c->run = NULL;
    if (!req)
        return;
    if (res->timed_out)
        return dt_agent_error(req, 408, "PROCESS_EXECUTION_TIMEOUT",
                              "command timed out (killed after its timeout)");
    out = xmemdup(res->out, res->out_len + 1);
    if (res->exit.oom_killed) {
        out = xrealloc(out, out_len + sizeof(OOM_NOTE));
        memcpy(out + out_len, OOM_NOTE, sizeof(OOM_NOTE));
        out_len += sizeof(OOM_NOTE) - 1;
    }
    j = json_pack("{s:i,s:o}", "exitCode", res->exit.code, "result",
                  dt_json_string_lossy(out, out_len));
    if (c->charts) {
        json_t *side = res->side_len ? json_loadb(res->side, res->side_len, 0, NULL) : NULL;
        json_t *charts = json_object_get(side, "charts");
        json_object_set_new(j, "artifacts",
                            json_pack("{s:O}", "charts", json_is_array(charts) ? charts : json_array()));
        if (!json_is_array(charts))
            json_decref(json_object_get(json_object_get(j, "artifacts"), "charts"));
        json_decref(side);
    }
    dt_httpd_reply_json(req, 200, j);
}

/* timeout: seconds, 0 or absent = none. Returns -1 after answering 400. */
static int64_t
get_timeout_ms(struct dt_httpd_req *req, json_t *body)
{
    json_t *t = json_object_get(body, "timeout");

    if (!t || json_is_null(t))
        return 0;
    if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 86400 * 30) {
        dt_agent_error(req, 400, "BAD_REQUEST", "timeout must be a number of seconds >= 0");
        return -1;
    }
    return (int64_t) (json_number_value(t) * 1000);
}

static bool
check_envs(struct dt_httpd_req *req, json_t *envs)
{
    const char *k;
    json_t *v;

    if (!envs || json_is_null(envs))
        return true;
    if (!json_is_object(envs)) {
        dt_agent_error(req, 400, "BAD_REQUEST", "envs must be an object of strings");
        return false;
    }
    json_object_foreach(envs, k, v) {
        if (!*k || strchr(k, '=') || !json_is_string(v)) {
            dt_agent_error(req, 400, "BAD_REQUEST", "envs: '%s' is not a valid variable", k);
            return false;
        }
    }
    return true;
}

static void
start_call(struct dt_agent *a, struct dt_httpd_req *req, struct dt_run_opts *o, bool charts,
           char *tmpfile)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct exec_call *c = xcalloc(1, sizeof(*c));
    int r;

    c->req = req;
    c->charts = charts;
    c->tmpfile = tmpfile;
    r = dt_run_start(a, o, on_exec_done, c, &c->run, &err);
    if (r < 0) {
        exec_call_free(c);
        if (r == -ENOENT && err && strstr(err->message, "working directory"))
            return dt_agent_error(req, 400, "INVALID_FILE_PATH", "%s", err->message);
        return dt_agent_error(req, r == -ENOENT ? 400 : 500, "BAD_REQUEST", "%s",
                              err ? err->message : "cannot start the command");
    }
    dt_httpd_req_set_close_cb(req, on_exec_req_close, c);
}

static const char *
shell_path(struct dt_agent *a)
{
    return access("/bin/sh", X_OK) == 0 ? "/bin/sh" : a->user.shell;
}

static void
execute(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    json_t *cmd = json_object_get(body, "command"), *envs = json_object_get(body, "envs");
    const char *cwd_in = json_string_value(json_object_get(body, "cwd"));
    _cleanup_free_ char *cwd = NULL;
    _cleanup_strv_free_ char **env = NULL;
    struct dt_run_opts o = { .merge_stderr = true };
    int64_t timeout;

    if (!json_is_string(cmd) || !*json_string_value(cmd))
        return dt_agent_error(req, 400, "BAD_REQUEST", "command is required");
    if (!check_envs(req, envs))
        return;
    timeout = get_timeout_ms(req, body);
    if (timeout < 0)
        return;
    if (cwd_in && *cwd_in && !(cwd = dt_agent_path(a, req, cwd_in)))
        return;
    env = dt_agent_env(a, envs);
    {
        char *argv[] = { (char *) shell_path(a), (char *) "-c", (char *) json_string_value(cmd),
                         NULL };
        o.argv = argv;
        o.env = env;
        o.cwd = cwd ? cwd : a->workdir;
        o.timeout_ms = (uint64_t) timeout;
        start_call(a, req, &o, false, NULL);
    }
}

static void
route_execute(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, execute);
}

/* Whether NODE strips types itself (node >= 22.6): asked once, by running it (a few ms). */
static bool
node_strips_types(const char *node, char *const *env)
{
    static int known = -1;
    char *argv[] = { (char *) node, (char *) "--experimental-strip-types", (char *) "-e",
                     (char *) "0", NULL };
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;

    if (known >= 0)
        return known;
    known = 0;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, node, &fa, NULL, argv, env) == 0 && waitpid(pid, &status, 0) == pid)
        known = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    posix_spawn_file_actions_destroy(&fa);
    return known;
}

/* The TypeScript runner the image has: tsx, ts-node, or node's own type stripping. */
static int
typescript_argv(char *const *env, char **argv, size_t max, char **ret_path)
{
    char *p;

    if ((p = dt_proc_which("tsx", env))) {
        argv[0] = p;
        *ret_path = p;
        return 1;
    }
    if ((p = dt_proc_which("ts-node", env))) {
        argv[0] = p;
        argv[1] = (char *) "--transpile-only";
        *ret_path = p;
        return 2;
    }
    if ((p = dt_proc_which("node", env)) && node_strips_types(p, env)) {
        argv[0] = p;
        argv[1] = (char *) "--experimental-strip-types";
        argv[2] = (char *) "--no-warnings";
        *ret_path = p;
        return 3;
    }
    free(p);
    return -ENOENT;
}

static void
code_run(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    json_t *code = json_object_get(body, "code"), *envs = json_object_get(body, "envs");
    json_t *args = json_object_get(body, "argv"), *v;
    const char *lang = json_string_value(json_object_get(body, "language"));
    _cleanup_strv_free_ char **env = NULL;
    _cleanup_free_ char *tsrun = NULL, *tsfile = NULL;
    struct dt_run_opts o = { .merge_stderr = true };
    char *argv[64 + 8] = { 0 };
    size_t n = 0, i;
    int64_t timeout;

    if (!json_is_string(code))
        return dt_agent_error(req, 400, "BAD_REQUEST", "code is required");
    if (args && !json_is_null(args) && !json_is_array(args))
        return dt_agent_error(req, 400, "BAD_REQUEST", "argv must be an array of strings");
    if (json_array_size(args) > 64)
        return dt_agent_error(req, 400, "BAD_REQUEST", "at most 64 arguments");
    json_array_foreach(args, i, v) {
        if (!json_is_string(v))
            return dt_agent_error(req, 400, "BAD_REQUEST", "argv must be an array of strings");
    }
    if (!check_envs(req, envs))
        return;
    timeout = get_timeout_ms(req, body);
    if (timeout < 0)
        return;
    if (!lang || !*lang)
        lang = "python";
    env = dt_agent_env(a, envs);
    o.input = json_string_value(code);
    o.input_len = json_string_length(code);
    if (strcmp(lang, "python") == 0) {
        argv[n++] = (char *) "python3";
        argv[n++] = (char *) "-u";
        argv[n++] = (char *) "-I";
        argv[n++] = (char *) "-c";
        argv[n++] = (char *) py_coderun;
        o.input_on_fd3 = true;
        o.side_channel = true;
    } else if (strcmp(lang, "javascript") == 0) {
        /* node reads the program from stdin with "-"; argv follows as process.argv[2...]. */
        argv[n++] = (char *) "node";
        argv[n++] = (char *) "-";
    } else if (strcmp(lang, "typescript") == 0) {
        int k = typescript_argv(env, argv, ELEMENTSOF(argv), &tsrun);
        int fd;
        if (k < 0)
            return dt_agent_error(req, 400, "BAD_REQUEST",
                                  "no TypeScript runner in this sandbox's image (tsx, ts-node or "
                                  "node >= 22.6)");
        n = (size_t) k;
        /* TypeScript runners need a file with a .ts name. */
        tsfile = xasprintf("%s/code-%llu.ts", a->state_dir, (unsigned long long) ++a->next_id);
        fd = open(tsfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, o.input, o.input_len) != (ssize_t) o.input_len) {
            safe_close(fd);
            return dt_agent_error(req, 500, "INTERNAL_SERVER_ERROR", "cannot write %s", tsfile);
        }
        close(fd);
        argv[n++] = tsfile;
        o.input = NULL;
    } else
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "unsupported language '%s' (python, javascript or typescript)", lang);
    json_array_foreach(args, i, v)
        argv[n++] = (char *) json_string_value(v);
    argv[n] = NULL;
    o.argv = argv;
    o.env = env;
    o.cwd = a->workdir;
    o.timeout_ms = (uint64_t) timeout;
    start_call(a, req, &o, true, TAKE_PTR(tsfile));
}

static void
route_code_run(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, code_run);
}

const struct dt_route dt_process_routes[] = {
    { "POST", "/process/execute", route_execute },
    { "POST", "/process/code-run", route_code_run },
    {},
};
