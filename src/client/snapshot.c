/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots (contract §2.7) and volumes (§2.10): thin wrappers over the REST calls, plus the
 * snapshot build-log stream (GET {build-logs-url}?follow=true). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client-int.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

void
daytona_snapshot_free(struct daytona_snapshot *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->name);
    free(s->image_name);
    free(s->state);
    free(s->error_reason);
    free(s->created_at);
    free(s->updated_at);
    free(s->last_used_at);
    daytona_strv_free(s->entrypoint);
    free(s->json);
    free(s);
}

static struct daytona_snapshot *
snapshot_from_json(json_t *o)
{
    struct daytona_snapshot *s = xcalloc(1, sizeof(*s));

    s->id = dc_jstr(o, "id");
    s->name = dc_jstr(o, "name");
    s->image_name = dc_jstr(o, "imageName");
    s->state = dc_jstr(o, "state");
    s->error_reason = dc_jstr(o, "errorReason");
    s->created_at = dc_jstr(o, "createdAt");
    s->updated_at = dc_jstr(o, "updatedAt");
    s->last_used_at = dc_jstr(o, "lastUsedAt");
    s->general = dc_jbool(o, "general");
    s->cpu = dc_jnum(o, "cpu");
    s->gpu = dc_jnum(o, "gpu");
    s->mem = dc_jnum(o, "mem");
    s->disk = dc_jnum(o, "disk");
    s->size = dc_jnum(o, "size");
    s->entrypoint = dc_strv_from_json(json_object_get(o, "entrypoint"));
    s->json = dc_json_text(o);
    return s;
}

static int
snapshot_answer(json_t *j, const char *what, struct daytona_snapshot **ret, daytona_error **err)
{
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        return dc_error(err, EPROTO, "%s: the server did not answer with a snapshot record",
                        what);
    if (ret)
        *ret = snapshot_from_json(j);
    return 0;
}

int
daytona_snapshot_get(daytona_client *c, const char *id_or_name, struct daytona_snapshot **ret,
                     daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *what = NULL;
    json_t *j = NULL;
    int r;

    if (!id_or_name || !id_or_name[0])
        return dc_error(err, EINVAL, "get snapshot: no id or name given");
    e = dc_escape(id_or_name);
    url = dc_api_url(c, "/snapshots/%s", e);
    what = xasprintf("get snapshot '%s'", id_or_name);
    r = dc_json_call(c, "GET", url, NULL, 0, &j, what, err);
    if (r < 0)
        return r;
    r = snapshot_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

int
daytona_snapshot_create(daytona_client *c, const struct daytona_snapshot_params *p,
                        int wait_timeout_s, struct daytona_snapshot **ret, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL;
    struct daytona_snapshot *s = NULL;
    json_t *body, *j = NULL;
    uint64_t deadline;
    const char *target;
    int r;

    if (!p || !p->name || !p->name[0])
        return dc_error(err, EINVAL, "create snapshot: no name given");
    what = xasprintf("create snapshot '%s'", p->name);
    if (!p->image == !p->dockerfile)
        return dc_error(err, EINVAL, "%s: give exactly one of an image and a Dockerfile", what);
    body = json_pack("{s:s}", "name", p->name);
    if (!body)
        return dc_error(err, EINVAL, "%s: invalid name", what);
    if (p->image)
        json_object_set_new(body, "imageName", json_string(p->image));
    else
        json_object_set_new(body, "buildInfo",
                            dc_build_info(p->dockerfile, p->context_hashes));
    if (p->entrypoint && p->entrypoint[0]) {
        json_t *a = json_array();
        for (size_t i = 0; p->entrypoint[i]; i++)
            json_array_append_new(a, json_string(p->entrypoint[i]));
        json_object_set_new(body, "entrypoint", a);
    }
    if (p->cpu > 0)
        json_object_set_new(body, "cpu", json_real(p->cpu));
    if (p->gpu > 0)
        json_object_set_new(body, "gpu", json_real(p->gpu));
    if (p->memory > 0)
        json_object_set_new(body, "memory", json_real(p->memory));
    if (p->disk > 0)
        json_object_set_new(body, "disk", json_real(p->disk));
    target = p->target ? p->target : c->target;
    if (target)
        json_object_set_new(body, "regionId", json_string(target));
    url = dc_api_url(c, "/snapshots");
    r = dc_json_call(c, "POST", url, body, 0, &j, what, err);
    json_decref(body);
    if (r < 0)
        return r;
    r = snapshot_answer(j, what, &s, err);
    json_decref(j);
    if (r < 0)
        return r;

    deadline = wait_timeout_s > 0 ? now_msec() + (uint64_t) wait_timeout_s * 1000 : 0;
    while (wait_timeout_s >= 0) {
        if (s->state && strcmp(s->state, "active") == 0)
            break;
        if (s->state && (strcmp(s->state, "error") == 0 || strcmp(s->state, "build_failed") == 0)) {
            r = dc_error(err, EIO, "%s: state '%s': %s", what, s->state,
                         s->error_reason ? s->error_reason : "no reason given");
            daytona_snapshot_free(s);
            return r;
        }
        if (deadline && now_msec() >= deadline) {
            r = dc_error(err, ETIMEDOUT, "%s: not active within %d s (state '%s')", what,
                         wait_timeout_s, s->state ? s->state : "unknown");
            daytona_snapshot_free(s);
            return r;
        }
        sleep_msec(1000);
        daytona_snapshot_free(s);
        s = NULL;
        /* By name, as the SDK polls. */
        r = daytona_snapshot_get(c, p->name, &s, err);
        if (r < 0)
            return r;
    }
    if (ret)
        *ret = s;
    else
        daytona_snapshot_free(s);
    return 0;
}

void
daytona_snapshot_list_free(struct daytona_snapshot_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        daytona_snapshot_free(l->items[i]);
    free(l->items);
    free(l);
}

int
daytona_snapshot_list(daytona_client *c, int page, int limit, struct daytona_snapshot_list **ret,
                      daytona_error **err)
{
    _cleanup_free_ char *url = NULL;
    struct daytona_snapshot_list *l;
    json_t *j = NULL, *items, *e;
    char q[64] = "";
    size_t i;
    int r;

    if (page > 0 && limit > 0)
        (void) snprintf(q, sizeof(q), "?page=%d&limit=%d", page, limit);
    else if (page > 0)
        (void) snprintf(q, sizeof(q), "?page=%d", page);
    else if (limit > 0)
        (void) snprintf(q, sizeof(q), "?limit=%d", limit);
    url = dc_api_url(c, "/snapshots%s", q);
    r = dc_json_call(c, "GET", url, NULL, 0, &j, "list snapshots", err);
    if (r < 0)
        return r;
    items = json_is_array(j) ? j : json_object_get(j, "items");
    if (!json_is_array(items)) {
        json_decref(j);
        return dc_error(err, EPROTO, "list snapshots: the answer has no \"items\" array");
    }
    l = xcalloc(1, sizeof(*l));
    l->items = xcalloc(json_array_size(items) + 1, sizeof(*l->items));
    json_array_foreach(items, i, e) {
        if (json_is_object(e))
            l->items[l->n++] = snapshot_from_json(e);
    }
    l->total = json_is_object(j) ? dc_jlong(j, "total") : (long) l->n;
    l->page = json_is_object(j) ? dc_jlong(j, "page") : 1;
    l->total_pages = json_is_object(j) ? dc_jlong(j, "totalPages") : 1;
    json_decref(j);
    *ret = l;
    return 0;
}

/* The snapshot's id: resolve a name (or an id) with GET /snapshots/{idOrName}. */
static int
snapshot_id(daytona_client *c, const char *id_or_name, char **ret, daytona_error **err)
{
    struct daytona_snapshot *s = NULL;
    int r = daytona_snapshot_get(c, id_or_name, &s, err);

    if (r < 0)
        return r;
    *ret = TAKE_PTR(s->id);
    daytona_snapshot_free(s);
    return 0;
}

int
daytona_snapshot_delete(daytona_client *c, const char *id_or_name, daytona_error **err)
{
    _cleanup_free_ char *id = NULL, *e = NULL, *url = NULL, *what = NULL;
    int r = snapshot_id(c, id_or_name, &id, err);

    if (r < 0)
        return r;
    e = dc_escape(id);
    url = dc_api_url(c, "/snapshots/%s", e);
    what = xasprintf("delete snapshot '%s'", id_or_name);
    return dc_json_call(c, "DELETE", url, NULL, 0, NULL, what, err);
}

int
daytona_snapshot_activate(daytona_client *c, const char *id_or_name,
                          struct daytona_snapshot **ret, daytona_error **err)
{
    _cleanup_free_ char *id = NULL, *e = NULL, *url = NULL, *what = NULL;
    json_t *j = NULL;
    int r = snapshot_id(c, id_or_name, &id, err);

    if (r < 0)
        return r;
    e = dc_escape(id);
    url = dc_api_url(c, "/snapshots/%s/activate", e);
    what = xasprintf("activate snapshot '%s'", id_or_name);
    r = dc_json_call(c, "POST", url, NULL, 0, ret ? &j : NULL, what, err);
    if (r < 0 || !ret)
        return r;
    r = snapshot_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

struct log_sink {
    daytona_output_cb cb;
    void *ud;
};

static int
log_write(const char *data, size_t len, void *ud)
{
    struct log_sink *s = ud;
    return s->cb ? s->cb(data, len, s->ud) : 0;
}

/* GET API_PATH ({url}), then stream GET {url}?follow=true into ON_LOG. */
static int
follow_logs_url(daytona_client *c, const char *api_path, const char *what,
                daytona_output_cb on_log, void *userdata, daytona_error **err)
{
    _cleanup_free_ char *url = dc_api_url(c, "%s", api_path), *logs = NULL;
    struct log_sink sink = { on_log, userdata };
    struct dc_req req = { .method = "GET", .accept = "*/*" };
    struct dc_resp resp;
    json_t *j = NULL;
    int r;

    r = dc_json_call(c, "GET", url, NULL, 0, &j, what, err);
    if (r < 0)
        return r;
    logs = dc_jstr(j, "url");
    json_decref(j);
    if (!logs)
        return dc_error(err, EPROTO, "%s: the answer has no \"url\"", what);
    free(url);
    url = xasprintf("%s%sfollow=true", logs, strchr(logs, '?') ? "&" : "?");
    req.url = url;
    req.sink = log_write;
    req.sink_ud = &sink;
    /* A build may take long: the stream has no overall time limit. */
    req.timeout_ms = -1;
    r = dc_perform(c, &req, &resp, what, err);
    if (r < 0)
        return r;
    dc_resp_done(&resp);
    return 0;
}

int
daytona_snapshot_follow_logs(daytona_client *c, const char *id_or_name, daytona_output_cb on_log,
                             void *userdata, daytona_error **err)
{
    _cleanup_free_ char *id = NULL, *e = NULL, *path = NULL, *what = NULL;
    int r = snapshot_id(c, id_or_name, &id, err);

    if (r < 0)
        return r;
    what = xasprintf("follow build logs of snapshot '%s'", id_or_name);
    e = dc_escape(id);
    path = xasprintf("/snapshots/%s/build-logs-url", e);
    return follow_logs_url(c, path, what, on_log, userdata, err);
}

int
daytona_sandbox_follow_build_logs(daytona_client *c, const char *id_or_name,
                                  daytona_output_cb on_log, void *userdata, daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *path = NULL, *what = NULL;

    if (!id_or_name || !id_or_name[0])
        return dc_error(err, EINVAL, "follow build logs: no sandbox given");
    what = xasprintf("follow build logs of sandbox '%s'", id_or_name);
    e = dc_escape(id_or_name);
    path = xasprintf("/sandbox/%s/build-logs-url", e);
    return follow_logs_url(c, path, what, on_log, userdata, err);
}

/* ---- volumes ---- */

void
daytona_volume_free(struct daytona_volume *v)
{
    if (!v)
        return;
    free(v->id);
    free(v->name);
    free(v->organization_id);
    free(v->state);
    free(v->error_reason);
    free(v->created_at);
    free(v->updated_at);
    free(v->last_used_at);
    free(v->json);
    free(v);
}

void
daytona_volumes_free(struct daytona_volume **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        daytona_volume_free(v[i]);
    free(v);
}

static struct daytona_volume *
volume_from_json(json_t *o)
{
    struct daytona_volume *v = xcalloc(1, sizeof(*v));

    v->id = dc_jstr(o, "id");
    v->name = dc_jstr(o, "name");
    v->organization_id = dc_jstr(o, "organizationId");
    v->state = dc_jstr(o, "state");
    v->error_reason = dc_jstr(o, "errorReason");
    v->created_at = dc_jstr(o, "createdAt");
    v->updated_at = dc_jstr(o, "updatedAt");
    v->last_used_at = dc_jstr(o, "lastUsedAt");
    v->json = dc_json_text(o);
    return v;
}

static int
volume_answer(json_t *j, const char *what, struct daytona_volume **ret, daytona_error **err)
{
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        return dc_error(err, EPROTO, "%s: the server did not answer with a volume record", what);
    if (ret)
        *ret = volume_from_json(j);
    return 0;
}

int
daytona_volume_create(daytona_client *c, const char *name, unsigned size_gb,
                      struct daytona_volume **ret, daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL;
    json_t *body, *j = NULL;
    int r;

    if (!name || !name[0])
        return dc_error(err, EINVAL, "create volume: no name given");
    what = xasprintf("create volume '%s'", name);
    body = json_pack("{s:s}", "name", name);
    if (!body)
        return dc_error(err, EINVAL, "%s: invalid name", what);
    if (size_gb > 0)
        json_object_set_new(body, "size", json_integer(size_gb));
    url = dc_api_url(c, "/volumes");
    r = dc_json_call(c, "POST", url, body, 0, &j, what, err);
    json_decref(body);
    if (r < 0)
        return r;
    r = volume_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

int
daytona_volume_get(daytona_client *c, const char *name, struct daytona_volume **ret,
                   daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *what = NULL;
    json_t *j = NULL;
    int r;

    if (!name || !name[0])
        return dc_error(err, EINVAL, "get volume: no name given");
    e = dc_escape(name);
    url = dc_api_url(c, "/volumes/by-name/%s", e);
    what = xasprintf("get volume '%s'", name);
    r = dc_json_call(c, "GET", url, NULL, 0, &j, what, err);
    if (r < 0)
        return r;
    r = volume_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

int
daytona_volume_list(daytona_client *c, struct daytona_volume ***ret, size_t *n,
                    daytona_error **err)
{
    _cleanup_free_ char *url = dc_api_url(c, "/volumes");
    struct daytona_volume **v;
    json_t *j = NULL, *items, *e;
    size_t i, k = 0;
    int r;

    r = dc_json_call(c, "GET", url, NULL, 0, &j, "list volumes", err);
    if (r < 0)
        return r;
    items = json_is_array(j) ? j : json_object_get(j, "items");
    if (!json_is_array(items)) {
        json_decref(j);
        return dc_error(err, EPROTO, "list volumes: expected a JSON array");
    }
    v = xcalloc(json_array_size(items) + 1, sizeof(*v));
    json_array_foreach(items, i, e) {
        if (json_is_object(e))
            v[k++] = volume_from_json(e);
    }
    json_decref(j);
    *ret = v;
    *n = k;
    return 0;
}

int
daytona_volume_delete(daytona_client *c, const char *id_or_name, daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *what = NULL, *id = NULL;
    struct daytona_volume *v = NULL;
    daytona_error *e2 = NULL;
    int r;

    if (!id_or_name || !id_or_name[0])
        return dc_error(err, EINVAL, "delete volume: no id or name given");
    /* A name resolves through by-name; when that is 404 the string is taken as an id. */
    r = daytona_volume_get(c, id_or_name, &v, &e2);
    if (r == 0) {
        id = TAKE_PTR(v->id);
        daytona_volume_free(v);
    } else if (r == -ENOENT) {
        daytona_error_free(e2);
        id = xstrdup(id_or_name);
    } else {
        if (err && !*err)
            *err = e2;
        else
            daytona_error_free(e2);
        return r;
    }
    e = dc_escape(id);
    url = dc_api_url(c, "/volumes/%s", e);
    what = xasprintf("delete volume '%s'", id_or_name);
    return dc_json_call(c, "DELETE", url, NULL, 0, NULL, what, err);
}
