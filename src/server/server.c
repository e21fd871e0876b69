/* SPDX-License-Identifier: Apache-2.0 */
/* daytonad serve's core: start-up (data dir, store, first-start admin key, runner), the HTTP
 * front (routing /api, /toolbox, auth, the error envelope) and the sandbox API (contract §2).
 * Every handler parses and validates its input into plain data before it touches the store or
 * the runner; errors are answered once, here, in the SDK's shape (source DAYTONA_API). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/httpd.h"
#include "dt/image.h"
#include "dt/parse-util.h"
#include "dt/store.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "server/objstore.h"
#include "server/preview.h"
#include "server/proxy.h"
#include "server/registries.h"
#include "server/runner.h"
#include "server/server-int.h"
#include "server/server.h"
#include "dt/banned.h"

#define SOURCE         "DAYTONA_API"
#define MAX_JSON       (1u << 20)
#define MAX_CPU        4
#define MAX_MEMORY_GIB 8
#define MAX_DISK_GIB   10
#define POOL_ORG_NAME  "warm-pool"
#define MAX_AUTO_ARCHIVE_MIN (7 * 24 * 60)



/* Upper bounds (seconds) of the latency histogram buckets; the last one is +Inf. */
static const double metrics_bounds[12] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,   0.25,   0.5,   1,    5,     0 };

void
dt_api_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    dt_httpd_reply_error(req, status, SOURCE, code, "%s", msg);
}

/* A store or runner error: status from the errno, message from the error. */
void
dt_api_error_errno(struct dt_httpd_req *req, int r, const struct dt_error *err)
{
    const char *msg = err && err->message ? err->message : strerror(r < 0 ? -r : r);

    switch (r < 0 ? -r : r) {
    case ENOENT:
        return dt_api_error(req, 404, "NOT_FOUND", "%s", msg);
    case EEXIST:
    case ESTALE:
    case EBUSY:
        return dt_api_error(req, 409, "CONFLICT", "%s", msg);
    case EINVAL:
        return dt_api_error(req, 400, "BAD_REQUEST", "%s", msg);
    case ENOSPC:
        return dt_api_error(req, 503, "SERVICE_UNAVAILABLE", "%s", msg);
    default:
        return dt_api_error(req, 500, "INTERNAL_SERVER_ERROR", "%s", msg);
    }
}

/* ---- rendering ---- */


json_t *
dt_json_or(const char *text, json_t *fallback)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (!j)
        return fallback;
    json_decref(fallback);
    return j;
}

void
dt_json_set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

void
dt_json_set_time(json_t *o, const char *k, int64_t ms)
{
    char buf[ISO8601_MSEC_SIZE];

    format_iso8601_msec(ms, buf);
    json_object_set_new(o, k, json_string(buf));
}

/* The Sandbox record (contract §2.2); LIST_ITEM leaves out what list items must not have. */
json_t *
dt_sandbox_json(struct dt_server *s, const struct dt_store_sandbox *sb, bool list_item)
{
    json_t *o = json_object();
    _cleanup_free_ char *proxy = xasprintf("%s/toolbox", s->public_url);

    dt_json_set_str(o, "id", sb->id);
    dt_json_set_str(o, "organizationId", sb->organization_id);
    dt_json_set_str(o, "name", sb->name);
    dt_json_set_str(o, "snapshot", sb->snapshot ? sb->snapshot : "default");
    dt_json_set_str(o, "user", sb->user ? sb->user : "daytona");
    json_object_set_new(o, "labels", dt_json_or(sb->labels_json, json_object()));
    json_object_set_new(o, "public", json_boolean(sb->public_));
    json_object_set_new(o, "networkBlockAll", json_boolean(sb->network_block_all));
    if (sb->network_allow_list)
        dt_json_set_str(o, "networkAllowList", sb->network_allow_list);
    dt_json_set_str(o, "target", sb->target ? sb->target : "local");
    json_object_set_new(o, "cpu", json_integer(sb->cpu));
    json_object_set_new(o, "gpu", json_integer(sb->gpu));
    json_object_set_new(o, "memory", json_integer(sb->memory_gib));
    json_object_set_new(o, "disk", json_integer(sb->disk_gib));
    dt_json_set_str(o, "state", dt_sandbox_state_to_string(sb->state));
    dt_json_set_str(o, "desiredState", dt_sandbox_desired_state_to_string(sb->desired_state));
    if (sb->error_reason)
        dt_json_set_str(o, "errorReason", sb->error_reason);
    dt_json_set_str(o, "backupState", sb->backup_state ? sb->backup_state : "None");
    json_object_set_new(o, "autoStopInterval", json_integer(sb->auto_stop_interval));
    json_object_set_new(o, "autoArchiveInterval", json_integer(sb->auto_archive_interval));
    json_object_set_new(o, "autoDeleteInterval", json_integer(sb->auto_delete_interval));
    if (sb->auto_destroy_at_ms)
        dt_json_set_time(o, "autoDestroyAt", sb->auto_destroy_at_ms);
    json_object_set_new(o, "recoverable", json_false());
    json_object_set_new(o, "spot", json_false());
    dt_json_set_str(o, "sandboxClass", "container");
    dt_json_set_str(o, "toolboxProxyUrl", proxy);
    dt_json_set_time(o, "createdAt", sb->created_at_ms);
    dt_json_set_time(o, "updatedAt", sb->updated_at_ms);
    dt_json_set_time(o, "lastActivityAt", sb->last_activity_at_ms);
    if (!list_item) {
        json_object_set_new(o, "env", dt_json_or(sb->env_json, json_object()));
        json_object_set_new(o, "volumes", dt_json_or(sb->volumes_json, json_array()));
        if (sb->build_info_json)
            json_object_set_new(o, "buildInfo", dt_json_or(sb->build_info_json, json_null()));
    }
    return o;
}

/* ---- body helpers ---- */


struct json_wait {
    struct call *c;
    json_handler fn;
    char *params[4];
    bool empty_ok;
};

static void
call_free(struct call *c)
{
    free(c->org);
    free(c);
}

void
dt_call_closed(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct call *c = ud;
    struct dt_server *s = c->s;
    int status = dt_httpd_req_status(req);
    double sec = (double) (uv_hrtime() - c->start_ns) / 1e9;
    size_t b;

    if (status >= 100 && status < 600)
        s->metrics.by_class[status / 100]++;
    for (b = 0; b < ELEMENTSOF(metrics_bounds) - 1 && sec > metrics_bounds[b]; b++)
        ;
    s->metrics.buckets[b]++;
    s->metrics.count++;
    s->metrics.sum_s += sec;
    call_free(c);
}

static size_t pool_count(struct dt_server *s, struct dt_store_sandbox_array *ret);

/* GET /metrics, Prometheus text format. */
static void
metrics(struct dt_server *s, struct dt_httpd_req *req)
{
    struct dt_store_sandbox_array all = { 0 };
    uint64_t by_state[32] = { 0 }, cum = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return dt_httpd_reply_error(req, 500, SOURCE, NULL, "out of memory");
    fprintf(f, "# HELP daytona_http_requests_total API responses by status class.\n"
               "# TYPE daytona_http_requests_total counter\n");
    for (int i = 1; i <= 5; i++)
        fprintf(f, "daytona_http_requests_total{class=\"%dxx\"} %llu\n", i,
                (unsigned long long) s->metrics.by_class[i]);
    fprintf(f, "# HELP daytona_toolbox_requests_total Requests forwarded to sandbox agents.\n"
               "# TYPE daytona_toolbox_requests_total counter\n"
               "daytona_toolbox_requests_total %llu\n",
            (unsigned long long) s->metrics.toolbox);
    fprintf(f, "# HELP daytona_http_request_duration_seconds API request latency.\n"
               "# TYPE daytona_http_request_duration_seconds histogram\n");
    for (size_t b = 0; b < ELEMENTSOF(metrics_bounds); b++) {
        cum += s->metrics.buckets[b];
        if (b + 1 < ELEMENTSOF(metrics_bounds))
            fprintf(f, "daytona_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    metrics_bounds[b], (unsigned long long) cum);
        else
            fprintf(f, "daytona_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long) cum);
    }
    fprintf(f, "daytona_http_request_duration_seconds_sum %.6f\n"
               "daytona_http_request_duration_seconds_count %llu\n",
            s->metrics.sum_s, (unsigned long long) s->metrics.count);
    if (dt_store_sandbox_list_all(s->store, NULL, &all, NULL) == 0) {
        for (size_t i = 0; i < all.n; i++)
            if ((unsigned) all.items[i]->state < ELEMENTSOF(by_state))
                by_state[all.items[i]->state]++;
        dt_store_sandbox_array_free(&all);
    }
    fprintf(f, "# HELP daytona_sandboxes Sandboxes by state.\n# TYPE daytona_sandboxes gauge\n");
    for (unsigned st = 0; st < ELEMENTSOF(by_state); st++) {
        const char *name = dt_sandbox_state_to_string((enum dt_sandbox_state) st);
        if (name && strcmp(name, "unknown") != 0 && (by_state[st] || st == DT_SANDBOX_STARTED ||
                                                     st == DT_SANDBOX_STOPPED))
            fprintf(f, "daytona_sandboxes{state=\"%s\"} %llu\n", name,
                    (unsigned long long) by_state[st]);
    }
    fprintf(f, "# HELP daytona_warm_pool_size Started sandboxes waiting in the warm pool.\n"
               "# TYPE daytona_warm_pool_size gauge\ndaytona_warm_pool_size %zu\n",
            pool_count(s, NULL));
    fprintf(f, "# HELP daytona_image_store_bytes Unpacked size of every image layer kept.\n"
               "# TYPE daytona_image_store_bytes gauge\ndaytona_image_store_bytes %llu\n",
            (unsigned long long) dt_imgstore_usage(dt_snapshots_images(s->snapshots)));
    {
        struct dt_store_snapshot_array snaps = { 0 };
        uint64_t total = 0, by[_DT_SNAPSHOT_STATE_MAX] = { 0 };
        if (dt_store_snapshot_list(s->store, NULL, 1, 1u << 20, &snaps, &total, NULL) >= 0) {
            for (size_t i = 0; i < snaps.n; i++)
                if (snaps.items[i]->state < _DT_SNAPSHOT_STATE_MAX)
                    by[snaps.items[i]->state]++;
            dt_store_snapshot_array_free(&snaps);
        }
        fprintf(f, "# HELP daytona_snapshots Snapshots by state.\n# TYPE daytona_snapshots gauge\n");
        for (int i = 0; i < _DT_SNAPSHOT_STATE_MAX; i++)
            fprintf(f, "daytona_snapshots{state=\"%s\"} %llu\n",
                    dt_snapshot_state_to_string((enum dt_snapshot_state) i),
                    (unsigned long long) by[i]);
    }
    fclose(f);
    dt_httpd_reply(req, 200, "text/plain; version=0.0.4", buf, len);
    free(buf);
}

static void
on_json(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct json_wait *w = ud;
    json_error_t jerr;
    json_t *body = NULL;

    if (error >= 0) {
        if (len == 0 && w->empty_ok)
            body = json_object();
        else
            body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(body))
            dt_api_error(req, 400, "BAD_REQUEST", "request body is not a JSON object%s%s",
                      body ? "" : ": ", body ? "" : jerr.text);
        else
            w->fn(w->c, body, (const char *const *) w->params);
    }
    json_decref(body);
    for (size_t i = 0; i < ELEMENTSOF(w->params); i++)
        free(w->params[i]);
    free(w);
}

void
dt_api_with_json(struct call *c, const char *const *params, json_handler fn, bool empty_ok)
{
    struct json_wait *w = xcalloc(1, sizeof(*w));

    w->c = c;
    w->fn = fn;
    w->empty_ok = empty_ok;
    for (size_t i = 0; params && params[i] && i < ELEMENTSOF(w->params) - 1; i++)
        w->params[i] = xstrdup(params[i]);
    dt_httpd_req_read_body(c->req, MAX_JSON, on_json, w);
}

/* An optional integer field: -1 after answering 400. */
int
dt_api_get_int(struct call *c, json_t *body, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) && !(json_is_real(v) && json_real_value(v) == (int64_t) json_real_value(v))) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s must be an integer", key);
        return -1;
    }
    *out = json_is_integer(v) ? json_integer_value(v) : (int64_t) json_real_value(v);
    if (*out < min || *out > max) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s must be between %lld and %lld", key,
                  (long long) min, (long long) max);
        return -1;
    }
    return 1;
}

/* A JSON object of string values (env, labels), as text; NULL after answering 400. */
static char *
get_string_map(struct call *c, json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key), *x;
    const char *k;

    if (!v || json_is_null(v))
        return xstrdup("{}");
    if (!json_is_object(v)) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s must be an object of strings", key);
        return NULL;
    }
    if (json_object_size(v) > 1024) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s: at most 1024 entries", key);
        return NULL;
    }
    json_object_foreach(v, k, x) {
        if (!json_is_string(x) || !*k || strlen(k) > 1024 || json_string_length(x) > 65536) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "%s: '%s' must map to a string (keys up to "
                                                  "1 KiB, values up to 64 KiB)", key, k);
            return NULL;
        }
        if (strcmp(key, "env") == 0 && (strchr(k, '=') || strlen(json_string_value(x)) !=
                                                              json_string_length(x))) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "env: '%s' is not a valid variable", k);
            return NULL;
        }
    }
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

/* ---- runner glue ---- */

static char **
env_strv(const char *env_json)
{
    json_t *o = json_loads(env_json ? env_json : "{}", 0, NULL), *v;
    char **out = NULL;
    const char *k;

    json_object_foreach(o, k, v) {
        _cleanup_free_ char *e = xasprintf("%s=%s", k, json_string_value(v) ? json_string_value(v) : "");
        strv_push(&out, e);
    }
    json_decref(o);
    if (!out)
        out = xcalloc(1, sizeof(char *));
    return out;
}

int
dt_server_run_sandbox(struct dt_server *s, const struct dt_store_sandbox *sb, struct dt_error **err)
{
    _cleanup_strv_free_ char **env = env_strv(sb->env_json);
    _cleanup_strv_free_ char **layers = NULL, **entry = NULL;
    struct dt_image *img = NULL;
    _cleanup_free_ char *user = NULL;
    struct dt_runner_spec spec = {
        .id = sb->id,
        .snapshot = sb->snapshot,
        .cpu = (uint32_t) sb->cpu,
        .memory_gib = (uint32_t) sb->memory_gib,
        .disk_gib = (uint32_t) sb->disk_gib,
        .user = sb->user,
        .env = env,
        .network_block_all = sb->network_block_all,
    };
    int r;

    /* A sandbox that exists on disk runs from its persisted plan: no snapshot needed (it may
     * have been deleted since). */
    if (!dt_runner_has_plan(s->runner, sb->id)) {
        r = dt_snapshots_image(s->snapshots, sb, &img, &layers, err);
        if (r < 0)
            return r;
    }
    if (img) {
        spec.layers = layers;
        spec.image_env = img->env;
        spec.workdir = img->working_dir;
        for (char **a = img->entrypoint; a && *a; a++)
            strv_push(&entry, *a);
        for (char **a = img->cmd; a && *a; a++)
            strv_push(&entry, *a);
        spec.entrypoint = entry;
        /* The sandbox user: asked for, else "daytona" when the image has one (Daytona's
         * images do), else the image's USER, else root. */
        if (!sb->user || !*sb->user) {
            if (dt_imgstore_image_has_user(dt_snapshots_images(s->snapshots), img, "daytona"))
                user = xstrdup("daytona");
            else
                user = xstrdup(img->user && *img->user ? img->user : "root");
            spec.user = user;
        }
    }
    struct dt_bind *binds = NULL;
    size_t n_binds = 0;
    (void) dt_volumes_binds(s, sb->volumes_json, &binds, &n_binds);
    spec.binds = binds;
    spec.n_binds = n_binds;
    r = dt_runner_start(s->runner, &spec, err);
    for (size_t i = 0; i < n_binds; i++) {
        free(binds[i].source);
        free(binds[i].destination);
    }
    free(binds);
    if (img) {
        dt_image_done(img);
        free(img);
    }
    return r;
}

/* Move SB to TO and save; on a conflict re-read once (someone else wrote). */

int
dt_server_save_state(struct dt_server *s, struct dt_store_sandbox *sb, enum dt_sandbox_state to,
           const char *reason, struct dt_error **err)
{
    enum dt_sandbox_state old = sb->state;
    int r;

    sb->state = to;
    free(sb->error_reason);
    sb->error_reason = reason ? xstrdup(reason) : NULL;
    r = dt_store_sandbox_update(s->store, sb, err);
    if (r == 0 && old != to)
        dt_events_emit(s->events, sb->organization_id, "sandbox.state.updated",
                       json_pack("{s:o,s:s,s:s}", "sandbox", dt_sandbox_json(s, sb, false), "oldState",
                                 dt_sandbox_state_to_string(old), "newState",
                                 dt_sandbox_state_to_string(to)));
    return r;
}

/* ---- lifecycle engine ---- */

#define ENGINE_TICK_MS   10000
#define TOUCH_EVERY_MS   5000 /* activity is written at most this often per sandbox */

struct touch {
    struct touch *next;
    char *id;
    int64_t ms;
};

/* Record activity on sandbox ID for auto-stop, throttled: a proxied request must not pay for a
 * store write each time. */
static void
record_activity(struct dt_server *s, const char *id)
{
    int64_t now = dt_store_now_ms();
    struct touch *t;

    for (t = s->touches; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            break;
    if (!t) {
        t = xcalloc(1, sizeof(*t));
        t->id = xstrdup(id);
        t->next = s->touches;
        s->touches = t;
    }
    if (now - t->ms < TOUCH_EVERY_MS)
        return;
    t->ms = now;
    (void) dt_store_sandbox_touch(s->store, id, now, NULL);
}

void
dt_server_record_activity(struct dt_server *s, const char *id)
{
    record_activity(s, id);
}

static void
forget_activity(struct dt_server *s, const char *id)
{
    for (struct touch **pp = &s->touches; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            struct touch *t = *pp;
            *pp = t->next;
            free(t->id);
            free(t);
            return;
        }
}

static int destroy_sandbox(struct dt_server *s, struct dt_store_sandbox *sb, struct dt_error **err);

/* Stop SB for the engine (auto-stop) and apply auto-delete 0. */
static void
engine_stop(struct dt_server *s, struct dt_store_sandbox *sb, const char *why)
{
    _cleanup_error_ struct dt_error *err = NULL;

    sb->desired_state = DT_DESIRED_STOPPED;
    if (dt_runner_stop(s->runner, sb->id, false, &err) < 0 && err) {
        fprintf(stderr, "daytonad: %s of sandbox %s: %s\n", why, sb->id, err->message);
        dt_error_freep(&err);
    }
    if (sb->auto_delete_interval == 0) {
        (void) destroy_sandbox(s, sb, NULL);
        return;
    }
    (void) dt_server_save_state(s, sb, DT_SANDBOX_STOPPED, NULL, NULL);
}

/* Ask the sandbox's agent whether work is in progress (GET /activity): 1 busy, 0 idle, -errno
 * when it cannot tell. A blocking exchange on a local socket, bounded by 200 ms: the engine runs
 * it only for sandboxes that are due for auto-stop. */
/* One small blocking exchange with a sandbox's agent (local socket, bounded by 200 ms per read):
 * only for the engine and the warm pool, never on a request's hot path. BUF gets the response
 * (NUL-terminated). */
static int
agent_exchange(struct dt_server *s, const char *id, const char *request, char *buf, size_t size)
{
    _cleanup_free_ char *path = dt_runner_agent_socket(s->runner, id);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = 0;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
        write(fd, request, strlen(request)) != (ssize_t) strlen(request)) {
        close(fd);
        return -EIO;
    }
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, 200) <= 0 || len + 1 >= size)
            break;
        n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    close(fd);
    buf[len] = 0;
    return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -EIO;
}

static int
agent_busy(struct dt_server *s, const char *id)
{
    static const char req[] = "GET /activity HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    char buf[2048];
    int r = agent_exchange(s, id, req, buf, sizeof(buf));

    if (r < 0)
        return r;
    r = -EIO;
    if (strstr(buf, "\"busy\":true"))
        r = 1;
    else if (strstr(buf, "\"busy\":false"))
        r = 0;
    return r;
}

static void
engine_tick(uv_timer_t *t)
{
    struct dt_server *s = t->data;
    struct dt_store_sandbox_array due = { 0 }, all = { 0 };
    int64_t now = dt_store_now_ms();

    /* Auto-stop: started and idle for auto_stop_interval minutes. */
    if (dt_store_sandbox_list_due_autostop(s->store, now, &due, NULL) == 0)
        for (size_t i = 0; i < due.n; i++) {
            /* A running session command or an attached terminal is activity too. */
            if (agent_busy(s, due.items[i]->id) == 1) {
                (void) dt_store_sandbox_touch(s->store, due.items[i]->id, now, NULL);
                continue;
            }
            engine_stop(s, due.items[i], "auto-stop");
        }
    dt_store_sandbox_array_free(&due);
    /* Auto-delete of stopped sandboxes, and TTLs. */
    if (dt_store_sandbox_list_all(s->store, NULL, &all, NULL) == 0)
        for (size_t i = 0; i < all.n; i++) {
            struct dt_store_sandbox *sb = all.items[i];
            bool ttl = sb->auto_destroy_at_ms > 0 && now >= sb->auto_destroy_at_ms;
            bool idle_stopped = sb->state == DT_SANDBOX_STOPPED && sb->auto_delete_interval >= 0 &&
                                now - sb->updated_at_ms >= sb->auto_delete_interval * 60000;
            /* Auto-archive: stopped this long (0 = the maximum, 7 days). */
            int64_t archive_ms = (sb->auto_archive_interval > 0 ? sb->auto_archive_interval
                                                                : MAX_AUTO_ARCHIVE_MIN) * 60000;
            if (ttl || idle_stopped)
                (void) destroy_sandbox(s, sb, NULL);
            else if (sb->state == DT_SANDBOX_STOPPED && now - sb->updated_at_ms >= archive_ms)
                (void) dt_server_save_state(s, sb, DT_SANDBOX_ARCHIVED, NULL, NULL);
        }
    dt_store_sandbox_array_free(&all);
}

/* An init exited on its own (the agent crashed, or the OOM killer): the sandbox is stopped. */
static void
on_sandbox_exit(const char *id, const struct dt_exit *e, void *userdata)
{
    struct dt_server *s = userdata;
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_free_ char *why = NULL;

    if (dt_store_sandbox_find(s->store, NULL, id, &sb, NULL) < 0)
        return;
    if (sb->state != DT_SANDBOX_STARTED)
        return;
    why = e->oom_killed ? xstrdup("the sandbox's agent was killed by the OOM killer")
          : e->signal   ? xasprintf("the sandbox's agent was killed by signal %d", e->signal)
                        : xasprintf("the sandbox's agent exited with status %d", e->code);
    (void) dt_server_save_state(s, sb, DT_SANDBOX_ERROR, why, NULL);
}

/* After a restart (or kill -9): bring every sandbox back to what the store says it should be.
 * Started ones are re-adopted (their inits kept running) or started again; transitions cut
 * short are finished: creating/starting/restoring → started, stopping → stopped, destroying →
 * gone. */
static void pool_refill_soon(struct dt_server *s);

/* SB waits for its snapshot: start it when the snapshot is active, fail it when the snapshot
 * failed or is gone, else keep waiting (in the state that matches the snapshot's). */
static void
start_waiting(struct dt_server *s, struct dt_store_sandbox *sb)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;

    if (!sb->snapshot || dt_store_snapshot_find(s->store, sb->organization_id, sb->snapshot,
                                                &snap, NULL) < 0) {
        (void) dt_server_save_state(s, sb, DT_SANDBOX_ERROR, "its snapshot was deleted", NULL);
        return;
    }
    switch (snap->state) {
    case DT_SNAPSHOT_ACTIVE:
        (void) dt_server_save_state(s, sb, DT_SANDBOX_CREATING, NULL, NULL);
        if (dt_server_run_sandbox(s, sb, &err) < 0)
            (void) dt_server_save_state(s, sb, DT_SANDBOX_ERROR,
                                        err ? err->message : "start failed", NULL);
        else
            (void) dt_server_save_state(s, sb, DT_SANDBOX_STARTED, NULL, NULL);
        /* A fork's copy served its one sandbox (whose plan now keeps the layers). */
        if (dt_snapshots_is_fork(snap))
            (void) dt_store_snapshot_delete(s->store, snap->id, NULL);
        break;
    case DT_SNAPSHOT_ERROR:
    case DT_SNAPSHOT_BUILD_FAILED:
    case DT_SNAPSHOT_INACTIVE:
    case DT_SNAPSHOT_REMOVING: {
        _cleanup_free_ char *why = xasprintf("snapshot '%s' %s: %s", snap->name,
                                             snap->state == DT_SNAPSHOT_INACTIVE ? "is inactive"
                                                                                 : "failed",
                                             snap->error_reason ? snap->error_reason : "");
        (void) dt_server_save_state(s, sb, snap->state == DT_SNAPSHOT_BUILD_FAILED
                                                   ? DT_SANDBOX_BUILD_FAILED : DT_SANDBOX_ERROR,
                                    why, NULL);
        break;
    }
    case DT_SNAPSHOT_BUILDING:
        if (sb->state == DT_SANDBOX_PENDING_BUILD)
            (void) dt_server_save_state(s, sb, DT_SANDBOX_BUILDING_SNAPSHOT, NULL, NULL);
        break;
    default:
        break;
    }
}

void
dt_server_snapshot_ready(struct dt_server *s, const struct dt_store_snapshot *snap)
{
    struct dt_store_sandbox_array all = { 0 };

    if (dt_store_sandbox_list_all(s->store, NULL, &all, NULL) < 0)
        return;
    for (size_t i = 0; i < all.n; i++) {
        struct dt_store_sandbox *sb = all.items[i];
        if ((sb->state == DT_SANDBOX_PULLING_SNAPSHOT || sb->state == DT_SANDBOX_PENDING_BUILD ||
             sb->state == DT_SANDBOX_BUILDING_SNAPSHOT) && sb->snapshot &&
            (strcmp(sb->snapshot, snap->id) == 0 || strcmp(sb->snapshot, snap->name) == 0))
            start_waiting(s, sb);
    }
    dt_store_sandbox_array_free(&all);
    if (snap->general)
        pool_refill_soon(s);
}

static void
reconcile(struct dt_server *s)
{
    struct dt_store_sandbox_array all = { 0 };

    if (dt_store_sandbox_list_all(s->store, NULL, &all, NULL) < 0)
        return;
    for (size_t i = 0; i < all.n; i++) {
        struct dt_store_sandbox *sb = all.items[i];
        _cleanup_error_ struct dt_error *err = NULL;

        switch (sb->state) {
        case DT_SANDBOX_STARTED:
        case DT_SANDBOX_CREATING:
        case DT_SANDBOX_STARTING:
        case DT_SANDBOX_RESTORING:
            if (dt_server_run_sandbox(s, sb, &err) < 0)
                (void) dt_server_save_state(s, sb, DT_SANDBOX_ERROR,
                                  err ? err->message : "could not be started again", NULL);
            else
                (void) dt_server_save_state(s, sb, DT_SANDBOX_STARTED, NULL, NULL);
            break;
        case DT_SANDBOX_STOPPING:
            (void) dt_runner_stop(s->runner, sb->id, true, NULL);
            (void) dt_server_save_state(s, sb, DT_SANDBOX_STOPPED, NULL, NULL);
            break;
        case DT_SANDBOX_DESTROYING:
        case DT_SANDBOX_DESTROYED:
            (void) destroy_sandbox(s, sb, NULL);
            break;
        case DT_SANDBOX_SNAPSHOTTING:
            /* Its copy was cut short by our crash: thaw it and go on as before (opening it
             * re-adopts a live init; a stopped one stays stopped). */
            (void) dt_runner_resume(s->runner, sb->id, NULL);
            if (!dt_runner_is_running(s->runner, sb->id))
                (void) dt_server_save_state(s, sb, DT_SANDBOX_STOPPED, NULL, NULL);
            else if (dt_server_run_sandbox(s, sb, &err) < 0)
                (void) dt_server_save_state(s, sb, DT_SANDBOX_ERROR,
                                            err ? err->message : "could not be started again",
                                            NULL);
            else
                (void) dt_server_save_state(s, sb, DT_SANDBOX_STARTED, NULL, NULL);
            break;
        case DT_SANDBOX_PULLING_SNAPSHOT:
        case DT_SANDBOX_PENDING_BUILD:
        case DT_SANDBOX_BUILDING_SNAPSHOT:
            /* Its snapshot's job was restarted (or finished before the crash). */
            start_waiting(s, sb);
            break;
        default:
            break;
        }
    }
    dt_store_sandbox_array_free(&all);
}

/* ---- sandbox API ---- */

static void
reply_sandbox(struct call *c, int status, const struct dt_store_sandbox *sb)
{
    dt_httpd_reply_json(c->req, status, dt_sandbox_json(c->s, sb, false));
}

/* Find the sandbox PARAMS[0] (id or name) of the caller's organization; NULL after a 404. */
static struct dt_store_sandbox *
find_sandbox(struct call *c, const char *id_or_name)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_sandbox *sb = NULL;
    int r = dt_store_sandbox_find(c->s->store, c->org, id_or_name, &sb, &err);

    if (r == -ENOENT) {
        dt_api_error(c->req, 404, "NOT_FOUND", "sandbox '%s' not found", id_or_name);
        return NULL;
    }
    if (r < 0) {
        dt_api_error_errno(c->req, r, err);
        return NULL;
    }
    return sb;
}

/* ---- warm pool ---- */

#define POOL_TICK_MS 200

/* Started sandboxes waiting in the pool (records of the hidden pool organization). */
static size_t
pool_count(struct dt_server *s, struct dt_store_sandbox_array *ret)
{
    struct dt_store_sandbox_array all = { 0 };
    size_t n = 0;

    if (!s->pool_org || dt_store_sandbox_list_all(s->store, s->pool_org, &all, NULL) < 0)
        return 0;
    for (size_t i = 0; i < all.n; i++)
        n += all.items[i]->state == DT_SANDBOX_STARTED;
    if (ret)
        *ret = all;
    else
        dt_store_sandbox_array_free(&all);
    return n;
}

/* One more pooled sandbox per tick until the pool is full (each start blocks the loop for the
 * few tens of milliseconds the runtime needs, so they are spread out). */
static void
pool_tick(uv_timer_t *t)
{
    struct dt_server *s = t->data;
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_error_ struct dt_error *err = NULL;

    _cleanup_free_ char *snap = NULL;

    if (pool_count(s, NULL) >= s->pool_size)
        return;
    if (dt_snapshots_default(s->snapshots, &snap) < 0)
        return; /* the default snapshot is still being made: its end refills the pool */
    sb = dt_store_sandbox_new(s->pool_org);
    sb->snapshot = TAKE_PTR(snap);
    sb->state = DT_SANDBOX_CREATING;
    sb->desired_state = DT_DESIRED_STARTED;
    sb->auto_stop_interval = 0; /* a pooled sandbox waits; its new owner's settings apply later */
    if (dt_store_sandbox_insert(s->store, sb, &err) < 0)
        return;
    if (dt_server_run_sandbox(s, sb, &err) < 0) {
        fprintf(stderr, "daytonad: warm pool: %s\n", err ? err->message : "start failed");
        (void) destroy_sandbox(s, sb, NULL);
        uv_timer_stop(t); /* do not spin on a broken setup; the next hit retries */
        return;
    }
    (void) dt_server_save_state(s, sb, DT_SANDBOX_STARTED, NULL, NULL);
    uv_timer_start(t, pool_tick, POOL_TICK_MS, POOL_TICK_MS);
}

static void
pool_refill_soon(struct dt_server *s)
{
    if (s->pool_timer && s->pool_size > 0)
        uv_timer_start(s->pool_timer, pool_tick, POOL_TICK_MS, POOL_TICK_MS);
}

/* Whether BODY asks for exactly what pooled sandboxes are: the default snapshot and resources,
 * the default user, no network restrictions, no volumes. */
static bool
pool_eligible(json_t *body)
{
    const char *snap = json_string_value(json_object_get(body, "snapshot"));
    const char *user = json_string_value(json_object_get(body, "user"));
    static const struct { const char *key; int64_t v; } defaults[] = {
        { "cpu", 1 }, { "memory", 1 }, { "disk", 3 }, { "gpu", 0 },
    };

    if (snap && *snap && strcmp(snap, "default") != 0)
        return false;
    if (user && *user && strcmp(user, "daytona") != 0)
        return false;
    if (json_object_get(body, "buildInfo") || json_is_true(json_object_get(body, "networkBlockAll")) ||
        json_array_size(json_object_get(body, "volumes")) > 0 ||
        json_object_get(body, "networkAllowList"))
        return false;
    for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
        json_t *v = json_object_get(body, defaults[i].key);
        if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != defaults[i].v))
            return false;
    }
    return true;
}

/* Give a pooled sandbox to SB's owner: SB (validated, not yet stored) takes the pooled one's id.
 * Returns 0 when SB is now a started sandbox, -ENOENT when the pool is empty (or the hand-over
 * failed and the caller should create one normally). */
static int
pool_take(struct dt_server *s, struct dt_store_sandbox *sb, struct dt_error **err)
{
    struct dt_store_sandbox_array pool = { 0 };
    struct dt_store_sandbox *p = NULL;
    char buf[1024];
    int r;

    if (s->pool_size == 0 || pool_count(s, &pool) == 0) {
        dt_store_sandbox_array_free(&pool);
        return -ENOENT;
    }
    for (size_t i = 0; i < pool.n && !p; i++)
        if (pool.items[i]->state == DT_SANDBOX_STARTED && dt_runner_is_running(s->runner, pool.items[i]->id))
            p = pool.items[i];
    if (!p) {
        dt_store_sandbox_array_free(&pool);
        return -ENOENT;
    }
    /* The sandbox's environment: the agent's base environment for every command. */
    if (sb->env_json && strcmp(sb->env_json, "{}") != 0) {
        _cleanup_free_ char *body = xasprintf("{\"set\":%s}", sb->env_json);
        _cleanup_free_ char *req = xasprintf("POST /env HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n"
                                             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                                             strlen(body), body);
        if (agent_exchange(s, p->id, req, buf, sizeof(buf)) < 0) {
            dt_store_sandbox_array_free(&pool);
            return -ENOENT;
        }
    }
    free(sb->id);
    sb->id = xstrdup(p->id);
    free(sb->snapshot);
    sb->snapshot = p->snapshot ? xstrdup(p->snapshot) : NULL;
    sb->runner_slot = p->runner_slot;
    sb->state = DT_SANDBOX_STARTED;
    r = dt_store_sandbox_delete(s->store, p->id, err);
    if (r >= 0) {
        r = dt_store_sandbox_insert(s->store, sb, err);
        if (r < 0) /* e.g. the name is taken: the pooled sandbox goes back */
            (void) dt_store_sandbox_insert(s->store, p, NULL);
    }
    dt_store_sandbox_array_free(&pool);
    pool_refill_soon(s);
    return r < 0 ? r : 0;
}

static void
create_sandbox(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = dt_store_sandbox_new(c->org);
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *user = json_string_value(json_object_get(body, "user"));
    enum dt_sandbox_state initial = DT_SANDBOX_CREATING;
    int64_t v;
    int r;

    if (name && *name) {
        if (strlen(name) > 255 || strchr(name, '/'))
            return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid sandbox name '%s'", name);
        sb->name = xstrdup(name);
    }
    if (user && *user)
        sb->user = xstrdup(user);
    free(sb->env_json);
    if (!(sb->env_json = get_string_map(c, body, "env")))
        return;
    free(sb->labels_json);
    if (!(sb->labels_json = get_string_map(c, body, "labels")))
        return;
    if ((r = dt_api_get_int(c, body, "cpu", 1, MAX_CPU, &v)) < 0)
        return;
    if (r)
        sb->cpu = v;
    if ((r = dt_api_get_int(c, body, "memory", 1, MAX_MEMORY_GIB, &v)) < 0)
        return;
    if (r)
        sb->memory_gib = v;
    if ((r = dt_api_get_int(c, body, "disk", 1, MAX_DISK_GIB, &v)) < 0)
        return;
    if (r)
        sb->disk_gib = v;
    if ((r = dt_api_get_int(c, body, "gpu", 0, 0, &v)) < 0)
        return;
    if ((r = dt_api_get_int(c, body, "autoStopInterval", 0, 1 << 30, &v)) < 0)
        return;
    if (r)
        sb->auto_stop_interval = v;
    if ((r = dt_api_get_int(c, body, "autoArchiveInterval", 0, 1 << 30, &v)) < 0)
        return;
    if (r)
        sb->auto_archive_interval = v;
    if ((r = dt_api_get_int(c, body, "autoDeleteInterval", -1, 1 << 30, &v)) < 0)
        return;
    if (r)
        sb->auto_delete_interval = v;
    {
        json_t *vols = json_object_get(body, "volumes");
        if (vols && !json_is_null(vols)) {
            free(sb->volumes_json);
            sb->volumes_json = NULL;
            if (dt_volumes_for_create(c, vols, &sb->volumes_json) < 0)
                return;
        }
    }
    if ((r = dt_api_get_int(c, body, "ttlMinutes", 0, 1 << 30, &v)) < 0)
        return;
    if (r && v > 0)
        sb->auto_destroy_at_ms = dt_store_now_ms() + v * 60000;
    sb->public_ = json_is_true(json_object_get(body, "public"));
    sb->network_block_all = json_is_true(json_object_get(body, "networkBlockAll"));
    sb->ephemeral = sb->auto_delete_interval == 0;
    sb->desired_state = DT_DESIRED_STARTED;
    /* Last of the checks, as it may start a snapshot's job. */
    if (dt_snapshots_for_create(c->s->snapshots, c, body, &sb->snapshot, &initial) < 0)
        return;
    if (initial == DT_SANDBOX_CREATING && pool_eligible(body)) {
        bool named = sb->name != NULL;
        r = pool_take(c->s, sb, &err);
        if (r == 0) {
            dt_events_emit(c->s->events, c->org, "sandbox.created", dt_sandbox_json(c->s, sb, false));
            return reply_sandbox(c, 200, sb);
        }
        if (r == -EEXIST)
            return dt_api_error(c->req, 409, "CONFLICT", "a sandbox named '%s' already exists",
                             sb->name ? sb->name : "");
        dt_error_freep(&err);
        free(sb->id);
        sb->id = NULL;
        if (!named) { /* the store may have defaulted it to the pooled id */
            free(sb->name);
            sb->name = NULL;
        }
    }
    sb->state = initial;
    r = dt_store_sandbox_insert(c->s->store, sb, &err);
    if (r == -EEXIST)
        return dt_api_error(c->req, 409, "CONFLICT", "a sandbox named '%s' already exists",
                         sb->name ? sb->name : "");
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_events_emit(c->s->events, c->org, "sandbox.created", dt_sandbox_json(c->s, sb, false));
    if (initial != DT_SANDBOX_CREATING) {
        /* Its snapshot is being made: dt_server_snapshot_ready() starts it. */
        return reply_sandbox(c, 200, sb);
    }

    /* Starting takes milliseconds: do it now and answer with the started sandbox, so the SDK
     * needs no polling at all. */
    r = dt_server_run_sandbox(c->s, sb, &err);
    if (r < 0) {
        _cleanup_error_ struct dt_error *serr = NULL;
        (void) dt_server_save_state(c->s, sb, DT_SANDBOX_ERROR, err ? err->message : "start failed", &serr);
        return reply_sandbox(c, 200, sb);
    }
    dt_error_freep(&err);
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_STARTED, NULL, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

static void
get_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);

    if (sb)
        reply_sandbox(c, 200, sb);
}

static void
list_sandboxes(struct call *c)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_sandbox_filter f = { .organization_id = c->org };
    struct dt_store_sandbox_page page = { 0 };
    enum dt_sandbox_state states[32];
    const char *v;
    size_t idx = 0;
    uint64_t limit = 0;
    json_t *items, *out;
    int r;

    if ((v = dt_httpd_req_query(c->req, "limit")) && *v &&
        (parse_u64(v, &limit) < 0 || limit < 1 || limit > 1000))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "limit must be between 1 and 1000");
    f.limit = limit;
    f.cursor = dt_httpd_req_query(c->req, "cursor");
    if (f.cursor && !*f.cursor)
        f.cursor = NULL;
    if ((v = dt_httpd_req_query(c->req, "page")) && *v && parse_u64(v, &f.page) < 0)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "page must be a positive integer");
    f.labels_json = dt_httpd_req_query(c->req, "labels");
    f.id_prefix = dt_httpd_req_query(c->req, "id");
    f.name_prefix = dt_httpd_req_query(c->req, "name");
    while ((v = dt_httpd_req_query_next(c->req, "states", &idx))) {
        int st = dt_sandbox_state_from_string(v);
        if (st < 0)
            return dt_api_error(c->req, 400, "BAD_REQUEST", "unknown state '%s'", v);
        if (f.n_states < ELEMENTSOF(states))
            states[f.n_states++] = (enum dt_sandbox_state) st;
    }
    f.states = states;
    r = dt_store_sandbox_list(c->s->store, &f, &page, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    items = json_array();
    for (size_t i = 0; i < page.items.n; i++)
        json_array_append_new(items, dt_sandbox_json(c->s, page.items.items[i], true));
    out = json_pack("{s:o,s:o,s:I}", "items", items, "nextCursor",
                    page.next_cursor ? json_string(page.next_cursor) : json_null(), "total",
                    (json_int_t) page.total);
    dt_store_sandbox_page_free(&page);
    dt_httpd_reply_json(c->req, 200, out);
}

static void
start_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!sb)
        return;
    if (sb->state == DT_SANDBOX_STARTED && dt_runner_is_running(c->s->runner, sb->id))
        return reply_sandbox(c, 200, sb);
    if (sb->state == DT_SANDBOX_PAUSED) {
        /* Thaw it; then the runner makes sure it is watched (after a restart it was not). */
        r = dt_runner_resume(c->s->runner, sb->id, &err);
        if (r < 0)
            return dt_api_error_errno(c->req, r, err);
    } else if (sb->state != DT_SANDBOX_STOPPED && sb->state != DT_SANDBOX_ERROR &&
        sb->state != DT_SANDBOX_STARTED && sb->state != DT_SANDBOX_ARCHIVED)
        return dt_api_error(c->req, 409, "CONFLICT", "sandbox '%s' is %s and cannot be started",
                         sb->id, dt_sandbox_state_to_string(sb->state));
    sb->desired_state = DT_DESIRED_STARTED;
    r = dt_server_run_sandbox(c->s, sb, &err);
    if (r < 0) {
        _cleanup_error_ struct dt_error *serr = NULL;
        (void) dt_server_save_state(c->s, sb, DT_SANDBOX_ERROR, err->message, &serr);
        return dt_api_error_errno(c->req, r, err);
    }
    dt_error_freep(&err);
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_STARTED, NULL, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

static int
destroy_sandbox(struct dt_server *s, struct dt_store_sandbox *sb, struct dt_error **err)
{
    int r = dt_runner_destroy(s->runner, sb->id, err);
    if (r < 0 && r != -ENOENT)
        return r;
    forget_activity(s, sb->id);
    dt_signing_forget(s, sb->id);
    r = dt_store_sandbox_delete(s->store, sb->id, err);
    if (r == 0) {
        enum dt_sandbox_state old = sb->state;
        sb->state = DT_SANDBOX_DESTROYED;
        dt_events_emit(s->events, sb->organization_id, "sandbox.state.updated",
                       json_pack("{s:o,s:s,s:s}", "sandbox", dt_sandbox_json(s, sb, false),
                                 "oldState", dt_sandbox_state_to_string(old), "newState",
                                 "destroyed"));
    }
    return r;
}

static void
stop_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    const char *force = dt_httpd_req_query(c->req, "force");
    int r;

    if (!sb)
        return;
    sb->desired_state = DT_DESIRED_STOPPED;
    r = dt_runner_stop(c->s->runner, sb->id, force && strcmp(force, "true") == 0, &err);
    if (r < 0 && r != -ENOENT)
        return dt_api_error_errno(c->req, r, err);
    dt_error_freep(&err);
    if (sb->auto_delete_interval == 0) {
        /* Ephemeral: gone as soon as stopped (the SDK's stop wait accepts a 404). */
        r = destroy_sandbox(c->s, sb, &err);
        if (r < 0)
            return dt_api_error_errno(c->req, r, err);
        sb->state = DT_SANDBOX_DESTROYED;
        return reply_sandbox(c, 200, sb);
    }
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_STOPPED, NULL, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

/* POST /sandbox/{id}/snapshot {name}: a new snapshot of the sandbox's files (see snapshots.c). */
static void
snapshot_body(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    const char *name = json_string_value(json_object_get(body, "name"));

    if (sb)
        dt_snapshots_from_sandbox(c, sb, name);
}

/* POST /sandbox/{id}/resize {cpu?, memory?, disk?}: CPU and memory also while it runs (its
 * /proc/meminfo and nproc follow), the disk only grows. */
static void
resize_body(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int64_t cpu = 0, mem = 0, disk = 0;
    int r;

    if (!sb)
        return;
    if (dt_api_get_int(c, body, "cpu", 1, MAX_CPU, &cpu) < 0 ||
        dt_api_get_int(c, body, "memory", 1, MAX_MEMORY_GIB, &mem) < 0 ||
        dt_api_get_int(c, body, "disk", 1, MAX_DISK_GIB, &disk) < 0)
        return;
    if (sb->state != DT_SANDBOX_STARTED && sb->state != DT_SANDBOX_STOPPED)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "sandbox '%s' is %s: only started or "
                            "stopped sandboxes can be resized", sb->id,
                            dt_sandbox_state_to_string(sb->state));
    if (disk && disk < sb->disk_gib)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "the disk can only grow (now %lld GiB)",
                            (long long) sb->disk_gib);
    r = dt_runner_resize(c->s->runner, sb->id, (uint32_t) cpu, (uint32_t) mem, (uint32_t) disk,
                         &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    if (cpu)
        sb->cpu = cpu;
    if (mem)
        sb->memory_gib = mem;
    if (disk)
        sb->disk_gib = disk;
    r = dt_store_sandbox_update(c->s->store, sb, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

/* POST /sandbox/{id}/fork {name?} */
static void
fork_body(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);

    if (sb)
        dt_snapshots_fork(c, sb, json_string_value(json_object_get(body, "name")));
}

/* POST /sandbox/{id}/pause: every process frozen (the cgroup freezer), memory kept; start
 * thaws it. */
static void
pause_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!sb)
        return;
    if (sb->state == DT_SANDBOX_PAUSED)
        return reply_sandbox(c, 200, sb);
    if (sb->state != DT_SANDBOX_STARTED)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "sandbox '%s' is %s: only a started "
                            "sandbox can be paused", sb->id, dt_sandbox_state_to_string(sb->state));
    r = dt_runner_pause(c->s->runner, sb->id, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    sb->desired_state = DT_DESIRED_PAUSED;
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_PAUSED, NULL, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

/* POST /sandbox/{id}/archive: a stopped sandbox becomes archived. Its files stay on this
 * machine (there is no object storage tier to move them to); start brings it back as from
 * stopped. A started one is stopped first, as Daytona's archive requires it stopped. */
static void
archive_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!sb)
        return;
    if (sb->state == DT_SANDBOX_ARCHIVED)
        return reply_sandbox(c, 200, sb);
    if (sb->state != DT_SANDBOX_STOPPED)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "sandbox '%s' is %s: stop it before "
                            "archiving", sb->id, dt_sandbox_state_to_string(sb->state));
    sb->desired_state = DT_DESIRED_ARCHIVED;
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_ARCHIVED, NULL, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

static void
delete_sandbox(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!sb)
        return;
    r = destroy_sandbox(c->s, sb, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    sb->state = DT_SANDBOX_DESTROYED;
    sb->desired_state = DT_DESIRED_DESTROYED;
    reply_sandbox(c, 200, sb);
}

static void
labels_body(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *labels = NULL;
    json_t *old, *neu;
    int r;

    if (!sb)
        return;
    if (!(labels = get_string_map(c, body, "labels")))
        return;
    /* setLabels replaces the labels, but the SDK never sends code-toolbox-language back: keep
     * it, or a later daytona.get() could not codeRun() (contract §5.1, deliberate). */
    old = json_loads(sb->labels_json ? sb->labels_json : "{}", 0, NULL);
    neu = json_loads(labels, 0, NULL);
    if (json_object_get(old, "code-toolbox-language") && !json_object_get(neu, "code-toolbox-language"))
        json_object_set(neu, "code-toolbox-language", json_object_get(old, "code-toolbox-language"));
    free(sb->labels_json);
    sb->labels_json = json_dumps(neu, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(old);
    r = dt_store_sandbox_update(c->s->store, sb, &err);
    if (r < 0) {
        json_decref(neu);
        return dt_api_error_errno(c->req, r, err);
    }
    dt_httpd_reply_json(c->req, 200, json_pack("{s:o}", "labels", neu));
}

/* POST /sandbox/{id}/ttl/{minutes} (0 clears) and POST /sandbox/{id}/public/{true|false} */
static void
set_ttl_or_public(struct call *c, const char *const *params, bool ttl)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int64_t v = 0;
    int r;

    if (!sb)
        return;
    if (ttl) {
        if (parse_i64(params[1], &v) < 0 || v < 0 || v > (1 << 30))
            return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid ttl '%s' (minutes >= 0)", params[1]);
        sb->auto_destroy_at_ms = v ? dt_store_now_ms() + v * 60000 : 0;
    } else {
        if (strcmp(params[1], "true") != 0 && strcmp(params[1], "false") != 0)
            return dt_api_error(c->req, 400, "BAD_REQUEST", "public must be true or false");
        sb->public_ = strcmp(params[1], "true") == 0;
    }
    r = dt_store_sandbox_update(c->s->store, sb, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

/* Anything else under /sandbox/{id}/...: 404 for a missing sandbox, else a clear 501. */
static void
sandbox_unsupported(struct call *c, const char *id, const char *what)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, id);

    if (sb)
        dt_api_error(c->req, 501, "NOT_IMPLEMENTED", "%s is not supported by this server yet", what);
}

/* POST /sandbox/{id}/autostop|autoarchive|autodelete/{n} */
static void
set_interval(struct call *c, const char *const *params, const char *which)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int64_t v;
    int r;

    if (!sb)
        return;
    if (parse_i64(params[1], &v) < 0 || v < (strcmp(which, "autodelete") == 0 ? -1 : 0) ||
        v > (1 << 30))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid %s interval '%s'", which, params[1]);
    if (strcmp(which, "autostop") == 0)
        sb->auto_stop_interval = v;
    else if (strcmp(which, "autoarchive") == 0)
        sb->auto_archive_interval = v;
    else
        sb->auto_delete_interval = v;
    r = dt_store_sandbox_update(c->s->store, sb, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    reply_sandbox(c, 200, sb);
}

static void
last_activity(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!sb)
        return;
    r = dt_store_sandbox_touch(c->s->store, sb->id, dt_store_now_ms(), &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_httpd_reply(c->req, 200, NULL, "", 0);
}

static void
toolbox_url(struct call *c, const char *const *params)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_free_ char *url = NULL;

    if (!sb)
        return;
    url = xasprintf("%s/toolbox", c->s->public_url);
    dt_httpd_reply_json(c->req, 200, json_pack("{s:s}", "url", url));
}

/* GET /sandbox/{id}/signing-key and POST .../signing-key/rotate: the key as a JSON string. */
static void
signing_key(struct call *c, const char *const *params, bool rotate)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, params[0]);
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *key = NULL;
    int r;

    if (!sb)
        return;
    r = dt_signing_key(c->s, sb->id, rotate, &key, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_httpd_reply_json(c->req, 200, json_string(key));
}

static void
unsupported(struct call *c, const char *what)
{
    dt_api_error(c->req, 501, "NOT_IMPLEMENTED", "%s is not supported by this server yet", what);
}

/* ---- routing ---- */

static void
route_api(struct call *c, const char *const *seg, size_t n)
{
    const char *m = dt_httpd_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;

    /* seg[0] is "api". */
    if (n == 2 && strcmp(seg[1], "sandbox") == 0) {
        if (post)
            return dt_api_with_json(c, NULL, create_sandbox, true);
        if (get)
            return list_sandboxes(c);
    } else if (n == 3 && strcmp(seg[1], "sandbox") == 0 && strcmp(seg[2], "paginated") == 0 && get) {
        return list_sandboxes(c);
    } else if (n == 3 && strcmp(seg[1], "sandbox") == 0) {
        const char *p[] = { seg[2], NULL };
        if (get)
            return get_sandbox(c, p);
        if (strcmp(m, "DELETE") == 0)
            return delete_sandbox(c, p);
    } else if (n == 4 && strcmp(seg[1], "sandbox") == 0) {
        const char *p[] = { seg[2], NULL };
        const char *a = seg[3];
        if (post && strcmp(a, "start") == 0)
            return start_sandbox(c, p);
        if (post && strcmp(a, "stop") == 0)
            return stop_sandbox(c, p);
        if (strcmp(m, "PUT") == 0 && strcmp(a, "labels") == 0)
            return dt_api_with_json(c, p, labels_body, false);
        if (post && strcmp(a, "last-activity") == 0)
            return last_activity(c, p);
        if (get && strcmp(a, "toolbox-proxy-url") == 0)
            return toolbox_url(c, p);
        if (get && strcmp(a, "signing-key") == 0)
            return signing_key(c, p, false);
        if (get && (strcmp(a, "build-logs-url") == 0 || strcmp(a, "build-logs") == 0)) {
            _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = find_sandbox(c, p[0]);
            if (sb)
                dt_snapshots_sandbox_logs(c, sb, strcmp(a, "build-logs-url") == 0);
            return;
        }
        if (post && strcmp(a, "archive") == 0)
            return archive_sandbox(c, p);
        if (post && strcmp(a, "pause") == 0)
            return pause_sandbox(c, p);
        if (post && strcmp(a, "snapshot") == 0)
            return dt_api_with_json(c, p, snapshot_body, false);
        if (post && strcmp(a, "resize") == 0)
            return dt_api_with_json(c, p, resize_body, false);
        if (post && strcmp(a, "fork") == 0)
            return dt_api_with_json(c, p, fork_body, true);
        if (post && strcmp(a, "recover") == 0)
            return unsupported(c, a);
    } else if (n == 5 && strcmp(seg[1], "sandbox") == 0 && post &&
               (strcmp(seg[3], "autostop") == 0 || strcmp(seg[3], "autoarchive") == 0 ||
                strcmp(seg[3], "autodelete") == 0)) {
        const char *p[] = { seg[2], seg[4], NULL };
        return set_interval(c, p, seg[3]);
    } else if (n == 5 && strcmp(seg[1], "sandbox") == 0 && post &&
               strcmp(seg[3], "signing-key") == 0 && strcmp(seg[4], "rotate") == 0) {
        const char *p[] = { seg[2], NULL };
        return signing_key(c, p, true);
    } else if (n == 5 && strcmp(seg[1], "sandbox") == 0 && post &&
               (strcmp(seg[3], "ttl") == 0 || strcmp(seg[3], "public") == 0)) {
        const char *p[] = { seg[2], seg[4], NULL };
        return set_ttl_or_public(c, p, strcmp(seg[3], "ttl") == 0);
    } else if (n == 2 && strcmp(seg[1], "config") == 0 && get) {
        return dt_httpd_reply_json(c->req, 200, json_pack("{s:s}", "version", "0.1.0"));
    }
    if (n == 3 && strcmp(seg[1], "object-storage") == 0 && strcmp(seg[2], "push-access") == 0 &&
        get)
        return dt_objstore_push_access(c->s->objstore, c);
    if (n >= 6 && strcmp(seg[1], "sandbox") == 0 && strcmp(seg[3], "ports") == 0)
        return dt_preview_route_api(c, seg, n);
    if (n >= 4 && strcmp(seg[1], "sandbox") == 0)
        return sandbox_unsupported(c, seg[2], seg[3]);
    if (n >= 2 && strcmp(seg[1], "snapshots") == 0)
        return dt_snapshots_route(c, seg, n);
    if (n >= 2 && strcmp(seg[1], "volumes") == 0)
        return dt_volumes_route(c, seg, n);
    if (n >= 2 && strcmp(seg[1], "docker-registry") == 0)
        return dt_registries_route(c, seg, n);
    if (n >= 2 && (
                   strcmp(seg[1], "secret") == 0 || strcmp(seg[1], "warm-pools") == 0 ||
                   strcmp(seg[1], "object-storage") == 0))
        return dt_api_error(c->req, 501, "NOT_IMPLEMENTED", "%s are not supported by this server yet",
                         seg[1]);
    dt_api_error(c->req, 404, "NOT_FOUND", "no such endpoint: %s %s", m, dt_httpd_req_head(c->req)->path);
}

/* /toolbox/{id}/rest...: check, then stream to the sandbox's agent. */
static void
route_toolbox(struct call *c, const char *const *seg, size_t n)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_free_ char *sock = NULL;
    const char *target = dt_httpd_req_head(c->req)->target, *rest;

    if (n < 3)
        return dt_api_error(c->req, 404, "NOT_FOUND", "no toolbox endpoint given");
    if (!(sb = find_sandbox(c, seg[1])))
        return;
    if (sb->state != DT_SANDBOX_STARTED || !dt_runner_is_running(c->s->runner, sb->id))
        return dt_api_error(c->req, 409, "CONFLICT", "sandbox '%s' is %s: start it first", sb->id,
                         dt_sandbox_state_to_string(sb->state));
    /* The raw target after "/toolbox/<id>": its path and query go to the agent verbatim. */
    rest = strchr(target + 1, '/');
    rest = rest ? strchr(rest + 1, '/') : NULL;
    if (!rest)
        return dt_api_error(c->req, 404, "NOT_FOUND", "no toolbox endpoint given");
    record_activity(c->s, sb->id);
    sock = dt_runner_agent_socket(c->s->runner, sb->id);
    dt_proxy_forward(c->s->loop, c->req, sock, rest, NULL, NULL);
}

/* A signed download/upload URL (no API key): /toolbox/{id}/files/download or /files/upload-v2
 * with path, expires and signature. On success the call is authorised for that sandbox's
 * organization. */
static bool
signed_file_url(struct call *c, const char *const *seg, size_t n)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *sb = NULL;
    _cleanup_free_ char *key = NULL;
    const char *sig = dt_httpd_req_query(c->req, "signature");
    const char *method = dt_httpd_req_method(c->req);
    bool download;

    if (!sig || dt_httpd_req_header(c->req, "authorization") || n != 4 || strcmp(seg[2], "files") != 0)
        return false;
    download = strcmp(seg[3], "download") == 0 && strcmp(method, "GET") == 0;
    if (!download && !(strcmp(seg[3], "upload-v2") == 0 && strcmp(method, "POST") == 0))
        return false;
    if (dt_store_sandbox_find(c->s->store, NULL, seg[1], &sb, NULL) < 0 ||
        dt_signing_key(c->s, sb->id, false, &key, NULL) < 0)
        return false;
    if (!dt_signing_verify(key, download ? "GET" : "POST", dt_httpd_req_query(c->req, "path"),
                           dt_httpd_req_query(c->req, "expires"), sig, dt_store_now_ms() / 1000))
        return false;
    c->org = xstrdup(sb->organization_id);
    return true;
}

#define KEY_CACHE_MS 30000 /* a deleted key keeps working this long at most */

static const char *
key_cache_get(struct dt_server *s, const char *key)
{
    uint64_t now = (uint64_t) dt_store_now_ms();

    for (size_t i = 0; i < ELEMENTSOF(s->keys); i++)
        if (s->keys[i].key && s->keys[i].expires_ms > now && strcmp(s->keys[i].key, key) == 0)
            return s->keys[i].org;
    return NULL;
}

static void
key_cache_put(struct dt_server *s, const char *key, const char *org)
{
    size_t victim = 0;

    for (size_t i = 0; i < ELEMENTSOF(s->keys); i++) {
        if (!s->keys[i].key) {
            victim = i;
            break;
        }
        if (s->keys[i].expires_ms < s->keys[victim].expires_ms)
            victim = i;
    }
    free(s->keys[victim].key);
    free(s->keys[victim].org);
    s->keys[victim].key = xstrdup(key);
    s->keys[victim].org = xstrdup(org);
    s->keys[victim].expires_ms = (uint64_t) dt_store_now_ms() + KEY_CACHE_MS;
}

static bool
authenticate(struct call *c)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_api_key *key = NULL;
    const char *h = dt_httpd_req_header(c->req, "authorization");
    const char *org;
    int r;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        dt_api_error(c->req, 401, "UNAUTHORIZED", "missing API key (Authorization: Bearer <key>)");
        return false;
    }
    if (strlen(h + 7) > 512) {
        dt_api_error(c->req, 401, "UNAUTHORIZED", "invalid API key");
        return false;
    }
    if ((org = key_cache_get(c->s, h + 7))) {
        c->org = xstrdup(org);
        return true;
    }
    r = dt_store_api_key_lookup(c->s->store, h + 7, &key, &err);
    if (r < 0) {
        if (r == -ENOENT)
            dt_api_error(c->req, 401, "UNAUTHORIZED", "invalid API key");
        else
            dt_api_error_errno(c->req, r, err);
        return false;
    }
    c->org = xstrdup(key->organization_id);
    key_cache_put(c->s, h + 7, key->organization_id);
    dt_store_api_key_free(key);
    return true;
}

static void
handle(struct dt_httpd_req *req, void *userdata)
{
    struct dt_server *s = userdata;
    struct call *c;
    size_t n;
    const char *const *seg = dt_httpd_req_segments(req, &n);

    /* Previews first: they authenticate with their own tokens (never an API key), and the
     * host-based form may have any path. */
    if (dt_preview_handle(s, req))
        return;
    c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->req = req;
    c->start_ns = uv_hrtime();
    dt_httpd_req_set_close_cb(req, dt_call_closed, c);
    if (n >= 1 && strcmp(seg[0], "s3") == 0) {
        /* S3 (image build contexts) authenticates with SigV4, not an API key. */
        dt_httpd_req_set_close_cb(req, NULL, NULL);
        call_free(c);
        return dt_objstore_handle(s->objstore, req, seg, n);
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0)
        return metrics(s, req);
    if (n == 2 && strcmp(seg[0], "api") == 0 && strcmp(seg[1], "health") == 0)
        return dt_httpd_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    if (n == 2 && strcmp(seg[0], "api") == 0 && strcmp(seg[1], "socket.io") == 0)
        return dt_events_accept(s->events, req); /* authenticates in its CONNECT packet */
    if (n >= 1 && strcmp(seg[0], "toolbox") == 0) {
        if (!signed_file_url(c, seg, n) && !authenticate(c))
            return;
        /* The proxy sets its own close callback: the call is done with. */
        dt_httpd_req_set_close_cb(req, NULL, NULL);
        s->metrics.toolbox++;
        route_toolbox(c, seg, n);
        call_free(c);
        return;
    }
    if (n >= 1 && strcmp(seg[0], "api") == 0) {
        if (!authenticate(c))
            return;
        return route_api(c, seg, n);
    }
    dt_api_error(req, 404, "NOT_FOUND", "no such endpoint: %s", dt_httpd_req_head(req)->path);
}

/* ---- start-up ---- */

static int
first_start(struct dt_server *s, struct dt_error **err)
{
    struct dt_store_org_array orgs = { 0 };
    struct dt_store_org *org = NULL;
    _cleanup_free_ char *plain = NULL, *path = NULL;
    const char *key = s->cfg.admin_key ? s->cfg.admin_key : secure_getenv("DAYTONA_ADMIN_API_KEY");
    int r;

    r = dt_store_org_list(s->store, &orgs, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < orgs.n; i++)
        if (strcmp(orgs.items[i]->name, POOL_ORG_NAME) == 0)
            s->pool_org = xstrdup(orgs.items[i]->id);
    if (!s->pool_org) {
        /* The warm pool's sandboxes belong to an organization no API key can reach. */
        r = dt_store_org_create(s->store, POOL_ORG_NAME, &org, err);
        if (r < 0) {
            dt_store_org_array_free(&orgs);
            return r;
        }
        s->pool_org = xstrdup(org->id);
        dt_store_org_free(org);
        org = NULL;
    }
    for (size_t i = 0; i < orgs.n; i++)
        if (strcmp(orgs.items[i]->name, POOL_ORG_NAME) != 0) {
            s->default_org = xstrdup(orgs.items[i]->id);
            break;
        }
    dt_store_org_array_free(&orgs);
    if (s->default_org)
        return 0;
    r = dt_store_org_create(s->store, "default", &org, err);
    if (r < 0)
        return r;
    s->default_org = xstrdup(org->id);
    dt_store_org_free(org);
    r = dt_store_api_key_create(s->store, s->default_org, "admin", key && *key ? key : NULL,
                                &plain, NULL, err);
    if (r < 0)
        return r;
    if (!(key && *key)) {
        path = xasprintf("%s/admin-api-key", s->data_dir);
        r = write_file_at(AT_FDCWD, path, plain, strlen(plain), 0600);
        if (r < 0)
            return dt_error_errno(err, r, "write %s", path);
        printf("daytonad: created the admin API key (saved in %s):\n  %s\n", path, plain);
        fflush(stdout);
    }
    return 0;
}

int
dt_server_new(uv_loop_t *loop, const struct dt_server_config *cfg, struct dt_server **ret,
              struct dt_error **err)
{
    struct dt_httpd_config hc = { .handler = handle };
    struct dt_runner_config rc = { 0 };
    struct dt_server *s = xcalloc(1, sizeof(*s));
    char *objdir;
    int r;

    s->loop = loop;
    s->cfg = *cfg;
    s->data_dir = xstrdup(cfg->data_dir ? cfg->data_dir : "/var/lib/daytona");
    r = mkdir_p(s->data_dir, 0700);
    if (r < 0) {
        r = dt_error_errno(err, r, "create data directory %s", s->data_dir);
        goto fail;
    }
    r = dt_store_open(s->data_dir, &s->store, err);
    if (r < 0)
        goto fail;
    r = first_start(s, err);
    if (r < 0)
        goto fail;
    rc.data_dir = s->data_dir;
    rc.loop = loop;
    rc.on_exit = on_sandbox_exit;
    rc.userdata = s;
    r = dt_runner_new(&rc, &s->runner, err);
    if (r < 0)
        goto fail;
    s->events = dt_events_new(s);
    r = dt_snapshots_new(s, &s->snapshots, err);
    if (r < 0)
        goto fail;
    objdir = xasprintf("%s/objects", s->data_dir);
    r = dt_objstore_new(s, objdir, &s->objstore, err);
    free(objdir);
    if (r < 0)
        goto fail;
    reconcile(s);
    s->pool_size = cfg->warm_pool < 0 ? 2 : (unsigned) cfg->warm_pool;
    s->pool_timer = xcalloc(1, sizeof(*s->pool_timer));
    uv_timer_init(loop, s->pool_timer);
    s->pool_timer->data = s;
    pool_refill_soon(s);
    s->engine_timer = xcalloc(1, sizeof(*s->engine_timer));
    uv_timer_init(loop, s->engine_timer);
    s->engine_timer->data = s;
    uv_timer_start(s->engine_timer, engine_tick, ENGINE_TICK_MS, ENGINE_TICK_MS);
    hc.userdata = s;
    r = dt_httpd_new(loop, &hc, &s->httpd, err);
    if (r < 0)
        goto fail;
    r = dt_httpd_listen_tcp(s->httpd, cfg->listen_addr ? cfg->listen_addr : "127.0.0.1", cfg->port,
                            err);
    if (r < 0)
        goto fail;
    s->public_url = cfg->public_url ? xstrdup(cfg->public_url)
                                    : xasprintf("http://%s:%u",
                                                cfg->listen_addr ? cfg->listen_addr : "127.0.0.1",
                                                dt_httpd_port(s->httpd));
    *ret = s;
    return 0;
fail:
    dt_server_free(s);
    return r;
}

static void
free_handle(uv_handle_t *h)
{
    free(h);
}

uint16_t
dt_server_port(const struct dt_server *s)
{
    return dt_httpd_port(s->httpd);
}

void
dt_server_free(struct dt_server *s)
{
    if (!s)
        return;
    /* Pooled sandboxes are disposable: a clean stop removes them (a crash leaves them to be
     * re-adopted); users' sandboxes keep running. */
    if (s->pool_org && s->runner && s->store) {
        struct dt_store_sandbox_array pool = { 0 };
        if (dt_store_sandbox_list_all(s->store, s->pool_org, &pool, NULL) == 0)
            for (size_t i = 0; i < pool.n; i++)
                (void) destroy_sandbox(s, pool.items[i], NULL);
        dt_store_sandbox_array_free(&pool);
    }
    dt_httpd_free(s->httpd); /* first: closing its WebSockets unsubscribes event clients */
    dt_objstore_free(s->objstore); /* after the httpd: its uploads' close callbacks use it */
    dt_snapshots_free(s->snapshots);
    dt_events_free(s->events);
    if (s->engine_timer)
        uv_close((uv_handle_t *) s->engine_timer, free_handle);
    if (s->pool_timer)
        uv_close((uv_handle_t *) s->pool_timer, free_handle);
    free(s->pool_org);
    for (size_t i = 0; i < ELEMENTSOF(s->keys); i++) {
        free(s->keys[i].key);
        free(s->keys[i].org);
    }
    while (s->touches) {
        struct touch *t = s->touches;
        s->touches = t->next;
        free(t->id);
        free(t);
    }
    dt_runner_free(s->runner);
    dt_store_close(s->store);
    free(s->data_dir);
    free(s->public_url);
    free(s->default_org);
    free(s);
}
