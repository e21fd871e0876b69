/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's core: start-up (user, work dir, environment), the router that dispatches requests
 * to the endpoint modules' route tables, the reply helpers shared by all endpoints, and the
 * info/system routes (/version, /user-home-dir, /work-dir, /env, /system/metrics, /port). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/passwd.h"
#include "agent/proc.h"
#include "agent/sysinfo.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

extern char **environ;

/* ---- replies ---- */

void
dt_agent_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    dt_httpd_reply_error(req, status, DT_AGENT_SOURCE, code, "%s", msg);
}

void
dt_agent_error_errno(struct dt_httpd_req *req, int r, const struct dt_error *err)
{
    const char *msg = err && err->message ? err->message : strerror(r < 0 ? -r : r);
    int e = r < 0 ? -r : r;

    switch (e) {
    case ENOENT:
        dt_agent_error(req, 404, "FILE_NOT_FOUND", "%s", msg);
        break;
    case EACCES:
    case EPERM:
    case EROFS:
        dt_agent_error(req, 403, "FILE_ACCESS_DENIED", "%s", msg);
        break;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
        dt_agent_error(req, 400, "INVALID_FILE_PATH", "%s", msg);
        break;
    case EEXIST:
    case ENOTEMPTY:
    case EBUSY:
    case EISDIR:
    case ENOTDIR:
        dt_agent_error(req, 409, "CONFLICT", "%s", msg);
        break;
    case E2BIG:
    case EFBIG:
        dt_agent_error(req, 413, "PAYLOAD_TOO_LARGE", "%s", msg);
        break;
    case ENOSPC:
    case EDQUOT:
        dt_agent_error(req, 507, "INSUFFICIENT_STORAGE", "%s", msg);
        break;
    default:
        dt_agent_error(req, 500, "INTERNAL_SERVER_ERROR", "%s", msg);
        break;
    }
}

void
dt_agent_ok(struct dt_httpd_req *req)
{
    dt_httpd_reply(req, 200, NULL, "", 0);
}

struct json_ctx {
    struct dt_agent *a;
    dt_agent_json_fn fn;
    char *params[8];
};

static void
json_ctx_free(struct json_ctx *c)
{
    for (size_t i = 0; i < ELEMENTSOF(c->params); i++)
        free(c->params[i]);
    free(c);
}

static void
on_json_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct json_ctx *c = ud;
    json_error_t jerr;
    json_t *body;

    if (error < 0) {
        json_ctx_free(c);
        return;
    }
    body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body))
        dt_agent_error(req, 400, "INVALID_REQUEST_BODY", "request body is not a JSON object%s%s",
                       body ? "" : ": ", body ? "" : jerr.text);
    else
        c->fn(c->a, req, body, (const char *const *) c->params);
    json_decref(body);
    json_ctx_free(c);
}

void
dt_agent_read_json(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params,
                   dt_agent_json_fn fn)
{
    struct json_ctx *c = xcalloc(1, sizeof(*c));

    c->a = a;
    c->fn = fn;
    for (size_t i = 0; params && params[i] && i < ELEMENTSOF(c->params) - 1; i++)
        c->params[i] = xstrdup(params[i]);
    dt_httpd_req_read_body(req, DT_AGENT_MAX_JSON, on_json_body, c);
}

char *
dt_agent_new_id(struct dt_agent *a, const char *prefix)
{
    uint8_t rnd[6] = { 0 };

    (void) !getrandom(rnd, sizeof(rnd), GRND_NONBLOCK);
    return xasprintf("%s%llu-%02x%02x%02x%02x%02x%02x", prefix, (unsigned long long) ++a->next_id,
                     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
}

char *
dt_agent_path(struct dt_agent *a, struct dt_httpd_req *req, const char *path)
{
    if (!path || !*path) {
        dt_agent_error(req, 400, "INVALID_FILE_PATH", "a path is required");
        return NULL;
    }
    if (strlen(path) >= 4096) {
        dt_agent_error(req, 400, "INVALID_FILE_PATH", "path too long");
        return NULL;
    }
    if (path[0] == '/')
        return xstrdup(path);
    if (strcmp(path, ".") == 0)
        return xstrdup(a->workdir);
    if (strncmp(path, "./", 2) == 0)
        path += 2;
    return xasprintf("%s%s%s", a->workdir,
                     a->workdir[strlen(a->workdir) - 1] == '/' ? "" : "/", path);
}

static bool
env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static void
env_set(char ***env, const char *name, const char *value)
{
    size_t n = strlen(name);
    char *entry = xasprintf("%s=%s", name, value);

    for (size_t i = 0; *env && (*env)[i]; i++)
        if (strncmp((*env)[i], name, n) == 0 && (*env)[i][n] == '=') {
            free((*env)[i]);
            (*env)[i] = entry;
            return;
        }
    strv_push(env, entry);
    free(entry);
}

static void
env_unset(char **env, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; env && env[i]; i++) {
        if (env_is(env[i], name))
            free(env[i]);
        else
            env[j++] = env[i];
    }
    if (env)
        env[j] = NULL;
}

char **
dt_agent_env(struct dt_agent *a, json_t *extra)
{
    char **env = NULL;
    const char *k;
    json_t *v;

    for (size_t i = 0; a->base_env && a->base_env[i]; i++)
        strv_push(&env, a->base_env[i]);
    env_set(&env, "HOME", a->user.home);
    env_set(&env, "USER", a->user.name);
    env_set(&env, "LOGNAME", a->user.name);
    env_set(&env, "SHELL", a->user.shell);
    if (json_is_object(extra))
        json_object_foreach(extra, k, v) {
            if (*k && !strchr(k, '=') && json_is_string(v))
                env_set(&env, k, json_string_value(v));
        }
    if (!env)
        env = xcalloc(1, sizeof(char *));
    return env;
}

/* ---- OOM detection ---- */

uint64_t
dt_agent_oom_count(struct dt_agent *a)
{
    char buf[4096];
    ssize_t n;
    const char *p;
    uint64_t v = 0;

    if (a->cfg.oom_fd < 0)
        return 0;
    n = pread(a->cfg.oom_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* cgroup v2 memory.events "oom_kill N"; v1 memory.oom_control "oom_kill N" (kernel >= 4.13). */
    p = strstr(buf, "oom_kill ");
    if (p)
        v = strtoull(p + 9, NULL, 10);
    return v;
}

bool
dt_agent_oom_killed_since(struct dt_agent *a, uint64_t *counter)
{
    uint64_t now = dt_agent_oom_count(a);
    bool killed = now > *counter;
    *counter = now;
    return killed;
}

/* ---- JSON helpers ---- */

json_t *
dt_json_string_lossy(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *out;
    size_t o = 0;

    if (j)
        return j;
    /* Replace each invalid byte with U+FFFD (3 bytes), validating sequence by sequence. */
    out = xmalloc(len * 3 + 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char) s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n > 0 && i + n <= len && dt_ws_utf8_valid((const uint8_t *) s + i, n) && c != 0) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(out, o);
    free(out);
    return j ? j : json_string("");
}


/* ---- info routes ---- */

static void
route_version(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_httpd_reply_json(req, 200, json_pack("{s:s}", "version", DT_AGENT_VERSION));
}

static void
route_home(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_httpd_reply_json(req, 200, json_pack("{s:o}", "dir", dt_json_string_lossy(a->user.home, strlen(a->user.home))));
}

static void
route_workdir(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_httpd_reply_json(req, 200, json_pack("{s:o}", "dir", dt_json_string_lossy(a->workdir, strlen(a->workdir))));
}

static void
route_init(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_httpd_reply_json(req, 200, json_object());
}

static json_t *
env_json(struct dt_agent *a)
{
    json_t *o = json_object();
    for (size_t i = 0; a->base_env && a->base_env[i]; i++) {
        const char *eq = strchr(a->base_env[i], '=');
        _cleanup_free_ char *k = NULL;
        if (!eq)
            continue;
        k = xstrndup(a->base_env[i], (size_t) (eq - a->base_env[i]));
        json_object_set_new(o, k, dt_json_string_lossy(eq + 1, strlen(eq + 1)));
    }
    return o;
}

static void
route_env_get(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_httpd_reply_json(req, 200, env_json(a));
}

static void
env_update(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    json_t *set = json_object_get(body, "set"), *unset = json_object_get(body, "unset"), *v;
    const char *k;
    size_t i;

    if ((set && !json_is_object(set)) || (unset && !json_is_array(unset)))
        return dt_agent_error(req, 400, "BAD_REQUEST", "expected {set: {NAME: value}, unset: [NAME]}");
    json_array_foreach(unset, i, v) {
        if (!json_is_string(v))
            return dt_agent_error(req, 400, "BAD_REQUEST", "unset: names must be strings");
    }
    json_object_foreach(set, k, v) {
        if (!*k || strchr(k, '=') || !json_is_string(v))
            return dt_agent_error(req, 400, "BAD_REQUEST",
                                  "set: '%s' is not a valid name with a string value", k);
    }
    /* unset first, then set (contract 3.2). */
    json_array_foreach(unset, i, v)
        env_unset(a->base_env, json_string_value(v));
    json_object_foreach(set, k, v)
        env_set(&a->base_env, k, json_string_value(v));
    dt_httpd_reply_json(req, 200, env_json(a));
}

static void
route_env_post(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, env_update);
}

static void
route_metrics(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    json_t *j = dt_system_metrics_json(a->sysinfo, a->cfg.root, "/");
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));

    json_decref(j);
    dt_httpd_reply(req, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

static void
route_ports(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    json_t *j = NULL;
    int r = dt_ports_json(a->cfg.root, &j, &err);

    if (r < 0)
        return dt_agent_error_errno(req, r, err);
    dt_httpd_reply_json(req, 200, j);
}

static void
route_port_in_use(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    json_t *j = NULL;
    int r = dt_port_in_use_json(a->cfg.root, params[0], &j, &err);

    if (r == -EINVAL)
        return dt_agent_error(req, 400, "BAD_REQUEST", "invalid port: %s", params[0]);
    if (r < 0)
        return dt_agent_error_errno(req, r, err);
    dt_httpd_reply_json(req, 200, j);
}

static void
route_activity(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    int s = dt_session_busy(a), p = dt_pty_busy(a), i = dt_interp_busy(a);

    dt_httpd_reply_json(req, 200,
                        json_pack("{s:b,s:i,s:i,s:i}", "busy", s + p + i > 0, "sessionCommands", s,
                                  "attachedPtys", p, "interpreterCells", i));
}

const struct dt_route dt_info_routes[] = {
    { "GET", "/version", route_version },
    { "GET", "/user-home-dir", route_home },
    { "GET", "/work-dir", route_workdir },
    { "POST", "/init", route_init },
    { "GET", "/env", route_env_get },
    { "POST", "/env", route_env_post },
    { "GET", "/system/metrics", route_metrics },
    { "GET", "/port", route_ports },
    { "GET", "/port/*/in-use", route_port_in_use },
    { "GET", "/activity", route_activity },
    {},
};

/* ---- router ---- */

static const struct dt_route *const route_tables[] = {
    dt_info_routes, dt_files_routes, dt_process_routes, dt_session_routes,
    dt_pty_routes,  dt_interp_routes, dt_git_routes, dt_lsp_routes,
};

/* Match SEG[0..N) against PATTERN; fill PARAMS with the '*' segments. */
static bool
route_match(const char *pattern, const char *const *seg, size_t n, const char **params)
{
    size_t i = 0, k = 0;
    const char *p = pattern;

    while (*p) {
        const char *e;
        size_t len;

        while (*p == '/')
            p++;
        if (!*p)
            break;
        e = strchrnul(p, '/');
        len = (size_t) (e - p);
        if (i >= n)
            return false;
        if (len == 1 && *p == '*') {
            if (k < 7)
                params[k++] = seg[i];
        } else if (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0)
            return false;
        i++;
        p = e;
    }
    params[k] = NULL;
    return i == n;
}

static void
dispatch(struct dt_httpd_req *req, void *userdata)
{
    struct dt_agent *a = userdata;
    const char *method = dt_httpd_req_method(req);
    size_t n;
    const char *const *seg = dt_httpd_req_segments(req, &n);
    const char *params[8];
    bool path_matched = false;

    for (size_t t = 0; t < ELEMENTSOF(route_tables); t++)
        for (const struct dt_route *r = route_tables[t]; r && r->method; r++) {
            if (!route_match(r->pattern, seg, n, params))
                continue;
            if (strcmp(r->method, method) != 0 &&
                !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
                path_matched = true;
                continue;
            }
            r->fn(a, req, params);
            return;
        }
    if (n > 0 && strcmp(seg[0], "computeruse") == 0)
        /* Desktop automation needs an X server, a VNC stack and ffmpeg in the image: not
         * provided by this server (yet). Say so instead of a bare 404. */
        dt_agent_error(req, 501, "NOT_IMPLEMENTED",
                       "computer use (desktop automation) is not available in this sandbox: "
                       "this server does not provide a desktop");
    else if (path_matched)
        dt_agent_error(req, 405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s", method,
                       dt_httpd_req_head(req)->path);
    else
        dt_agent_error(req, 404, "NOT_FOUND", "no such endpoint: %s %s", method,
                       dt_httpd_req_head(req)->path);
}

/* ---- start-up ---- */

static int
resolve_user(struct dt_agent *a, struct dt_error **err)
{
    struct dt_passwd pw = { 0 };
    const char *name = a->cfg.user ? a->cfg.user : "daytona";
    struct dt_agent_user *u = &a->user;
    int r;

    r = dt_passwd_lookup(a->cfg.root, name, 0, &pw);
    if (r < 0 && a->cfg.user) {
        /* As Docker: "root" and numeric "uid[:gid]" need no passwd entry (minimal images
         * have none). */
        uint32_t uid = 0, gid;
        const char *colon = strchr(name, ':');
        _cleanup_free_ char *uname = xstrndup(name, colon ? (size_t) (colon - name)
                                                          : strlen(name));
        if (strcmp(uname, "root") != 0 && parse_u32(uname, &uid) < 0)
            return dt_error_errno(err, r, "user %s", name);
        gid = uid;
        if (colon && parse_u32(colon + 1, &gid) < 0)
            return dt_error_set(err, EINVAL, "user %s: invalid group", name);
        dt_passwd_done(&pw);
        if (dt_passwd_lookup(a->cfg.root, NULL, uid, &pw) < 0) {
            pw.name = xstrdup(uid == 0 ? "root" : uname);
            pw.home = xstrdup(uid == 0 ? "/root" : "/");
            pw.shell = xstrdup("");
        }
        pw.uid = uid;
        pw.gid = colon ? gid : (pw.gid ? pw.gid : gid);
        r = 0;
    }
    if (r < 0 || getuid() != 0) {
        /* No sandbox user in this image (or we are not root, as in tests): commands run as
         * whoever we are. */
        dt_passwd_done(&pw);
        r = dt_passwd_lookup(a->cfg.root, NULL, getuid(), &pw);
        if (r < 0) {
            pw.name = xstrdup(getuid() == 0 ? "root" : "user");
            pw.uid = getuid();
            pw.gid = getgid();
            pw.home = xstrdup(getuid() == 0 ? "/root" : "/");
            pw.shell = xstrdup("");
        }
    }
    u->name = pw.name;
    u->uid = pw.uid;
    u->gid = pw.gid;
    u->home = pw.home && *pw.home ? pw.home : xstrdup("/");
    if (pw.home && !*pw.home)
        free(pw.home);
    r = dt_group_list(a->cfg.root, u->name, u->gid, u->groups, (int) ELEMENTSOF(u->groups));
    if (r < 0) {
        u->groups[0] = u->gid;
        r = 1;
    }
    u->n_groups = r;
    if (pw.shell && *pw.shell && access(pw.shell, X_OK) == 0 && !strstr(pw.shell, "nologin") &&
        !strstr(pw.shell, "false"))
        u->shell = pw.shell;
    else {
        free(pw.shell);
        u->shell = xstrdup(access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh");
    }
    return 0;
}

static void
init_env(struct dt_agent *a)
{
    static const char *const drop[] = { "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                                        "DAYTONA_AGENT_OOM_FD", "NOTIFY_SOCKET" };

    for (size_t i = 0; environ && environ[i]; i++) {
        bool skip = false;
        for (size_t k = 0; k < ELEMENTSOF(drop); k++)
            skip |= env_is(environ[i], drop[k]);
        if (!skip && strchr(environ[i], '='))
            strv_push(&a->base_env, environ[i]);
    }
    {
        bool has_path = false;
        for (size_t i = 0; a->base_env && a->base_env[i]; i++)
            has_path |= env_is(a->base_env[i], "PATH");
        if (!has_path)
            env_set(&a->base_env,
                    "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    }
}

/* The state dir holds FIFOs and program files handed to user commands: it must be ours (a user
 * may have planted something there in an earlier life of the sandbox), mode 0711 so users can
 * reach their own entries by name but not list others'. */
static int
prepare_state_dir(const char *dir, struct dt_error **err)
{
    struct stat st;
    int r;

    if (lstat(dir, &st) == 0 && (!S_ISDIR(st.st_mode) || st.st_uid != getuid())) {
        if (S_ISDIR(st.st_mode)) {
            r = rm_rf_at(AT_FDCWD, dir);
            if (r < 0)
                return dt_error_errno(err, r, "remove foreign %s", dir);
        } else if (unlink(dir) < 0)
            return dt_error_errno(err, errno, "remove foreign %s", dir);
    }
    r = mkdir_p(dir, 0711);
    if (r < 0)
        return dt_error_errno(err, r, "create %s", dir);
    if (chmod(dir, 0711) < 0)
        return dt_error_errno(err, errno, "chmod %s", dir);
    return 0;
}

int
dt_agent_init(struct dt_agent *a, uv_loop_t *loop, const struct dt_agent_config *cfg,
              struct dt_error **err)
{
    struct dt_httpd_config hc = { .handler = dispatch, .userdata = a };
    int r;

    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->cfg = *cfg;
    if (!a->cfg.root)
        a->cfg.root = "";
    r = resolve_user(a, err);
    if (r < 0)
        return r;
    a->workdir = xstrdup(cfg->workdir ? cfg->workdir : a->user.home);
    a->state_dir = xstrdup(cfg->state_dir ? cfg->state_dir : "/tmp/.daytona");
    r = prepare_state_dir(a->state_dir, err);
    if (r < 0)
        return r;
    init_env(a);
    a->sysinfo = xcalloc(1, sizeof(struct dt_cpu_sampler));
    (void) dt_cpu_sampler_sample(a->sysinfo, a->cfg.root, dt_cpu_count(a->cfg.root));
    r = dt_proc_init(a, err);
    if (r < 0)
        return r;
    return dt_httpd_new(loop, &hc, &a->httpd, err);
}

void
dt_agent_done(struct dt_agent *a)
{
    free(a->user.name);
    free(a->user.home);
    free(a->user.shell);
    free(a->workdir);
    free(a->state_dir);
    strv_free(a->base_env);
    free(a->sysinfo);
}
