/* SPDX-License-Identifier: Apache-2.0 */
/* Sandboxes on the control plane (contract §2.2-§2.5): create with every POST /sandbox field,
 * get, list with cursor pagination, lifecycle actions, labels, intervals, and the polling wait
 * that the SDK's waitForState performs. */
#include <errno.h>
#include <string.h>

#include "client-int.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_LIST_PAGES 10000

void
daytona_sandbox_free(struct daytona_sandbox *sb)
{
    if (!sb)
        return;
    free(sb->id);
    free(sb->name);
    free(sb->organization_id);
    free(sb->state);
    free(sb->desired_state);
    free(sb->error_reason);
    free(sb->toolbox_proxy_url);
    free(sb->user);
    free(sb->snapshot);
    free(sb->target);
    free(sb->created_at);
    free(sb->updated_at);
    free(sb->last_activity_at);
    for (size_t i = 0; i < sb->n_labels; i++) {
        free(sb->labels[i].key);
        free(sb->labels[i].value);
    }
    free(sb->labels);
    for (size_t i = 0; i < sb->n_env; i++) {
        free(sb->env[i].key);
        free(sb->env[i].value);
    }
    free(sb->env);
    free(sb->json);
    free(sb);
}

const char *
daytona_sandbox_label(const struct daytona_sandbox *sb, const char *key)
{
    for (size_t i = 0; i < sb->n_labels; i++)
        if (strcmp(sb->labels[i].key, key) == 0)
            return sb->labels[i].value;
    return NULL;
}

struct daytona_sandbox *
dc_sandbox_from_json(json_t *o)
{
    struct daytona_sandbox *sb = xcalloc(1, sizeof(*sb));

    sb->id = dc_jstr(o, "id");
    sb->name = dc_jstr(o, "name");
    sb->organization_id = dc_jstr(o, "organizationId");
    sb->state = dc_jstr(o, "state");
    sb->desired_state = dc_jstr(o, "desiredState");
    sb->error_reason = dc_jstr(o, "errorReason");
    sb->toolbox_proxy_url = dc_jstr(o, "toolboxProxyUrl");
    sb->user = dc_jstr(o, "user");
    sb->snapshot = dc_jstr(o, "snapshot");
    sb->target = dc_jstr(o, "target");
    sb->created_at = dc_jstr(o, "createdAt");
    sb->updated_at = dc_jstr(o, "updatedAt");
    sb->last_activity_at = dc_jstr(o, "lastActivityAt");
    sb->is_public = dc_jbool(o, "public");
    sb->cpu = dc_jnum(o, "cpu");
    sb->gpu = dc_jnum(o, "gpu");
    sb->memory = dc_jnum(o, "memory");
    sb->disk = dc_jnum(o, "disk");
    sb->auto_stop_interval = dc_jlong(o, "autoStopInterval");
    sb->auto_archive_interval = dc_jlong(o, "autoArchiveInterval");
    sb->auto_delete_interval = dc_jlong(o, "autoDeleteInterval");
    dc_kv_from_json(json_object_get(o, "labels"), &sb->labels, &sb->n_labels);
    dc_kv_from_json(json_object_get(o, "env"), &sb->env, &sb->n_env);
    sb->json = dc_json_text(o);
    return sb;
}

static int
sandbox_from_answer(json_t *j, const char *what, struct daytona_sandbox **ret, daytona_error **err)
{
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        return dc_error(err, EPROTO, "%s: the server did not answer with a sandbox record", what);
    *ret = dc_sandbox_from_json(j);
    return 0;
}

static int
build_create_body(daytona_client *c, const struct daytona_create_params *p, json_t *b,
                  daytona_error **err)
{
    json_t *env = json_object(), *labels = json_object();
    const char *lang = p->language ? p->language : "python";
    int r;

    json_object_set_new(b, "env", env);
    json_object_set_new(b, "labels", labels);
    if (p->image && p->snapshot)
        return dc_error(err, EINVAL, "create sandbox: give an image or a snapshot, not both");
    if (p->image && p->dockerfile)
        return dc_error(err, EINVAL, "create sandbox: give an image or a Dockerfile, not both");
    if (strcmp(lang, "python") != 0 && strcmp(lang, "typescript") != 0 &&
        strcmp(lang, "javascript") != 0)
        return dc_error(err, EINVAL, "create sandbox: invalid language '%s' (python, typescript "
                                     "or javascript)", lang);
    r = dc_kv_to_json(p->env, env, "environment variable", err);
    if (r < 0)
        return r;
    r = dc_kv_to_json(p->labels, labels, "label", err);
    if (r < 0)
        return r;
    json_object_set_new(labels, "code-toolbox-language", json_string(lang));

#define SET_STR(key, v)                                                                            \
    do {                                                                                           \
        if (v)                                                                                     \
            json_object_set_new(b, key, json_string(v));                                           \
    } while (0)
    SET_STR("name", p->name);
    SET_STR("snapshot", p->snapshot);
    SET_STR("user", p->user);
    SET_STR("target", p->target ? p->target : c->target);
    SET_STR("networkAllowList", p->network_allow_list);
    SET_STR("domainAllowList", p->domain_allow_list);
    SET_STR("outboundProxyUrl", p->outbound_proxy_url);
    SET_STR("otelEndpointOverride", p->otel_endpoint_override);
    SET_STR("linkedSandbox", p->linked_sandbox);
#undef SET_STR
    if (p->image) {
        _cleanup_free_ char *df = xasprintf("FROM %s\n", p->image);
        json_object_set_new(b, "buildInfo", json_pack("{s:s}", "dockerfileContent", df));
    } else if (p->dockerfile)
        json_object_set_new(b, "buildInfo", dc_build_info(p->dockerfile, p->context_hashes));
    if (p->is_public)
        json_object_set_new(b, "public", json_true());
    if (p->cpu > 0)
        json_object_set_new(b, "cpu", json_real(p->cpu));
    if (p->gpu > 0)
        json_object_set_new(b, "gpu", json_real(p->gpu));
    if (p->memory > 0)
        json_object_set_new(b, "memory", json_real(p->memory));
    if (p->disk > 0)
        json_object_set_new(b, "disk", json_real(p->disk));
    if (p->gpu_type && p->gpu_type[0]) {
        json_t *a = json_array();
        for (size_t i = 0; p->gpu_type[i]; i++)
            json_array_append_new(a, json_string(p->gpu_type[i]));
        json_object_set_new(b, "gpuType", a);
    }
    if (p->spot)
        json_object_set_new(b, "spot", json_true());
    if (p->has_auto_stop)
        json_object_set_new(b, "autoStopInterval", json_integer(p->auto_stop_interval));
    if (p->has_auto_pause)
        json_object_set_new(b, "autoPauseInterval", json_integer(p->auto_pause_interval));
    if (p->has_auto_archive)
        json_object_set_new(b, "autoArchiveInterval", json_integer(p->auto_archive_interval));
    if (p->ephemeral)
        json_object_set_new(b, "autoDeleteInterval", json_integer(0));
    else if (p->has_auto_delete)
        json_object_set_new(b, "autoDeleteInterval", json_integer(p->auto_delete_interval));
    if (p->has_ttl)
        json_object_set_new(b, "ttlMinutes", json_integer(p->ttl_minutes));
    if (p->n_volumes > 0) {
        json_t *a = json_array();
        json_object_set_new(b, "volumes", a);
        for (size_t i = 0; i < p->n_volumes; i++) {
            const struct daytona_volume_mount *m = &p->volumes[i];
            json_t *v;

            if (!m->volume_id || !m->mount_path)
                return dc_error(err, EINVAL, "create sandbox: volume %zu needs an id and a mount "
                                             "path", i);
            v = json_pack("{s:s,s:s}", "volumeId", m->volume_id, "mountPath", m->mount_path);
            if (m->subpath)
                json_object_set_new(v, "subpath", json_string(m->subpath));
            json_array_append_new(a, v);
        }
    }
    if (p->kvm)
        json_object_set_new(b, "kvm", json_true());
    if (p->network_block_all)
        json_object_set_new(b, "networkBlockAll", json_true());
    if (p->secrets && p->secrets[0]) {
        json_t *a = json_array();
        json_object_set_new(b, "secrets", a);
        for (size_t i = 0; p->secrets[i]; i++) {
            json_t *o = json_object();
            json_array_append_new(a, o);
            r = dc_kv_to_json((const char *const[]) { p->secrets[i], NULL }, o, "secret", err);
            if (r < 0)
                return r;
        }
    }
    if (p->extra_json) {
        json_error_t je;
        json_t *x = json_loads(p->extra_json, 0, &je);

        if (!json_is_object(x)) {
            json_decref(x);
            return dc_error(err, EINVAL, "create sandbox: extra_json is not a JSON object");
        }
        json_object_update(b, x);
        json_decref(x);
    }
    return 0;
}

static const char *const started_states[] = { "started", NULL };

int
daytona_sandbox_create(daytona_client *c, const struct daytona_create_params *p,
                       int wait_timeout_s, struct daytona_sandbox **ret, daytona_error **err)
{
    static const struct daytona_create_params none = { 0 };
    _cleanup_free_ char *url = NULL;
    struct daytona_sandbox *sb = NULL;
    json_t *body = json_object(), *j = NULL;
    int r;

    if (!p)
        p = &none;
    r = build_create_body(c, p, body, err);
    if (r < 0) {
        json_decref(body);
        return r;
    }
    url = dc_api_url(c, "/sandbox");
    r = dc_json_call(c, "POST", url, body, 0, &j, "create sandbox", err);
    json_decref(body);
    if (r < 0)
        return r;
    r = sandbox_from_answer(j, "create sandbox", &sb, err);
    json_decref(j);
    if (r < 0)
        return r;
    if (wait_timeout_s >= 0 && (!sb->state || strcmp(sb->state, "started") != 0)) {
        struct daytona_sandbox *final = NULL;

        r = daytona_sandbox_wait(c, sb->id, started_states, wait_timeout_s, &final, err);
        if (r < 0) {
            dc_error_wrap(err, "create sandbox '%s'", sb->name ? sb->name : sb->id);
            daytona_sandbox_free(sb);
            return r;
        }
        daytona_sandbox_free(sb);
        sb = final;
    }
    if (ret)
        *ret = sb;
    else
        daytona_sandbox_free(sb);
    return 0;
}

int
daytona_sandbox_get(daytona_client *c, const char *id_or_name, struct daytona_sandbox **ret,
                    daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *what = NULL;
    json_t *j = NULL;
    int r;

    if (!id_or_name || !id_or_name[0])
        return dc_error(err, EINVAL, "get sandbox: no id or name given");
    e = dc_escape(id_or_name);
    url = dc_api_url(c, "/sandbox/%s", e);
    what = xasprintf("get sandbox '%s'", id_or_name);
    r = dc_json_call(c, "GET", url, NULL, 0, &j, what, err);
    if (r < 0)
        return r;
    r = sandbox_from_answer(j, what, ret, err);
    json_decref(j);
    return r;
}

void
daytona_sandbox_list_free(struct daytona_sandbox_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        daytona_sandbox_free(l->items[i]);
    free(l->items);
    free(l->next_cursor);
    free(l);
}

static void
add_query(char **q, const char *key, const char *value)
{
    _cleanup_free_ char *e = dc_escape(value);
    char *n = xasprintf("%s%c%s=%s", *q, (*q)[0] ? '&' : '?', key, e);

    free(*q);
    *q = n;
}

int
daytona_sandbox_list(daytona_client *c, const struct daytona_list_params *p,
                     struct daytona_sandbox_list **ret, daytona_error **err)
{
    static const struct daytona_list_params none = { 0 };
    _cleanup_free_ char *q = xstrdup(""), *url = NULL;
    struct daytona_sandbox_list *l;
    json_t *j = NULL, *items, *e;
    size_t i;
    int r;

    if (!p)
        p = &none;
    if (p->cursor)
        add_query(&q, "cursor", p->cursor);
    if (p->limit > 0) {
        char buf[DECIMAL_STR_MAX(int)];
        (void) snprintf(buf, sizeof(buf), "%d", p->limit);
        add_query(&q, "limit", buf);
    }
    if (p->id_prefix)
        add_query(&q, "id", p->id_prefix);
    if (p->name_prefix)
        add_query(&q, "name", p->name_prefix);
    if (p->labels && p->labels[0]) {
        json_t *o = json_object();
        _cleanup_free_ char *t = NULL;

        r = dc_kv_to_json(p->labels, o, "label", err);
        if (r < 0) {
            json_decref(o);
            return r;
        }
        t = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        add_query(&q, "labels", t);
    }
    for (size_t k = 0; p->states && p->states[k]; k++)
        add_query(&q, "states", p->states[k]);
    if (p->sort)
        add_query(&q, "sort", p->sort);
    if (p->order)
        add_query(&q, "order", p->order);

    url = dc_api_url(c, "/sandbox%s", q);
    r = dc_json_call(c, "GET", url, NULL, 0, &j, "list sandboxes", err);
    if (r < 0)
        return r;
    /* The paginated shape {items, nextCursor}; an older server may answer a bare array. */
    items = json_is_array(j) ? j : json_object_get(j, "items");
    if (!json_is_array(items)) {
        json_decref(j);
        return dc_error(err, EPROTO, "list sandboxes: the answer has no \"items\" array");
    }
    l = xcalloc(1, sizeof(*l));
    l->items = xcalloc(json_array_size(items) + 1, sizeof(*l->items));
    json_array_foreach(items, i, e) {
        if (json_is_object(e))
            l->items[l->n++] = dc_sandbox_from_json(e);
    }
    if (json_is_object(j)) {
        l->next_cursor = dc_jstr(j, "nextCursor");
        if (l->next_cursor && !l->next_cursor[0]) {
            free(l->next_cursor);
            l->next_cursor = NULL;
        }
    }
    json_decref(j);
    *ret = l;
    return 0;
}

int
daytona_sandbox_list_all(daytona_client *c, const struct daytona_list_params *p,
                         struct daytona_sandbox_list **ret, daytona_error **err)
{
    static const struct daytona_list_params none = { 0 };
    struct daytona_list_params q = p ? *p : none;
    struct daytona_sandbox_list *all = xcalloc(1, sizeof(*all));
    _cleanup_free_ char *cursor = NULL;
    int r;

    for (unsigned page = 0;; page++) {
        struct daytona_sandbox_list *l = NULL;

        if (page >= MAX_LIST_PAGES) {
            daytona_sandbox_list_free(all);
            return dc_error(err, ELOOP, "list sandboxes: more than %d pages (the server keeps "
                                        "returning a cursor)", MAX_LIST_PAGES);
        }
        q.cursor = cursor;
        r = daytona_sandbox_list(c, &q, &l, err);
        if (r < 0) {
            daytona_sandbox_list_free(all);
            return r;
        }
        all->items = xreallocarray(all->items, all->n + l->n + 1, sizeof(*all->items));
        memcpy(all->items + all->n, l->items, l->n * sizeof(*l->items));
        all->n += l->n;
        l->n = 0;
        free(cursor);
        cursor = TAKE_PTR(l->next_cursor);
        daytona_sandbox_list_free(l);
        if (!cursor)
            break;
    }
    *ret = all;
    return 0;
}

/* POST /sandbox/{id}{suffix} with no body, answer ignored. */
static int
sandbox_action(daytona_client *c, const char *method, const char *id_or_name, const char *suffix,
               const char *what, daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *w = NULL;

    if (!id_or_name || !id_or_name[0])
        return dc_error(err, EINVAL, "%s: no sandbox given", what);
    e = dc_escape(id_or_name);
    url = dc_api_url(c, "/sandbox/%s%s", e, suffix);
    w = xasprintf("%s sandbox '%s'", what, id_or_name);
    return dc_json_call(c, method, url, NULL, 0, NULL, w, err);
}

int
daytona_sandbox_start(daytona_client *c, const char *id_or_name, int wait_timeout_s,
                      daytona_error **err)
{
    int r = sandbox_action(c, "POST", id_or_name, "/start", "start", err);

    if (r < 0 || wait_timeout_s < 0)
        return r;
    r = daytona_sandbox_wait(c, id_or_name, started_states, wait_timeout_s, NULL, err);
    if (r < 0)
        return dc_error_wrap(err, "start sandbox '%s'", id_or_name);
    return 0;
}

int
daytona_sandbox_stop(daytona_client *c, const char *id_or_name, bool force, int wait_timeout_s,
                     daytona_error **err)
{
    static const char *const states[] = { "stopped", "destroyed", NULL };
    int r = sandbox_action(c, "POST", id_or_name, force ? "/stop?force=true" : "/stop?force=false",
                           "stop", err);

    if (r < 0 || wait_timeout_s < 0)
        return r;
    r = daytona_sandbox_wait(c, id_or_name, states, wait_timeout_s, NULL, err);
    if (r < 0)
        return dc_error_wrap(err, "stop sandbox '%s'", id_or_name);
    return 0;
}

int
daytona_sandbox_delete(daytona_client *c, const char *id_or_name, int wait_timeout_s,
                       daytona_error **err)
{
    static const char *const states[] = { "destroyed", NULL };
    _cleanup_free_ char *id = NULL;
    int r;

    /* Wait by id: a name may be reused by a new sandbox right after the delete. */
    if (wait_timeout_s >= 0) {
        struct daytona_sandbox *sb = NULL;
        r = daytona_sandbox_get(c, id_or_name, &sb, err);
        if (r < 0)
            return r;
        id = TAKE_PTR(sb->id);
        daytona_sandbox_free(sb);
    }
    r = sandbox_action(c, "DELETE", id ? id : id_or_name, "", "delete", err);
    daytona_client_forget(c);
    if (r < 0 || wait_timeout_s < 0)
        return r;
    r = daytona_sandbox_wait(c, id, states, wait_timeout_s, NULL, err);
    if (r < 0)
        return dc_error_wrap(err, "delete sandbox '%s'", id_or_name);
    return 0;
}

int
daytona_sandbox_archive(daytona_client *c, const char *id_or_name, daytona_error **err)
{
    return sandbox_action(c, "POST", id_or_name, "/archive", "archive", err);
}

int
daytona_sandbox_set_labels(daytona_client *c, const char *id_or_name, const char *const *labels,
                           daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *url = NULL, *w = NULL;
    json_t *o = json_object(), *body;
    int r;

    r = dc_kv_to_json(labels, o, "label", err);
    if (r < 0) {
        json_decref(o);
        return r;
    }
    body = json_pack("{s:o}", "labels", o);
    e = dc_escape(id_or_name);
    url = dc_api_url(c, "/sandbox/%s/labels", e);
    w = xasprintf("set labels of sandbox '%s'", id_or_name);
    r = dc_json_call(c, "PUT", url, body, 0, NULL, w, err);
    json_decref(body);
    return r;
}

int
daytona_sandbox_set_interval(daytona_client *c, const char *id_or_name,
                             enum daytona_interval which, long minutes, daytona_error **err)
{
    static const char *const names[] = {
        [DAYTONA_AUTO_STOP] = "autostop",       [DAYTONA_AUTO_PAUSE] = "autopause",
        [DAYTONA_AUTO_ARCHIVE] = "autoarchive", [DAYTONA_AUTO_DELETE] = "autodelete",
        [DAYTONA_TTL] = "ttl",
    };
    _cleanup_free_ char *suffix = NULL, *what = NULL;

    if ((unsigned) which >= ELEMENTSOF(names))
        return dc_error(err, EINVAL, "unknown interval %d", (int) which);
    if (minutes < 0 && which != DAYTONA_AUTO_DELETE)
        return dc_error(err, EINVAL, "%s interval must not be negative", names[which]);
    suffix = xasprintf("/%s/%ld", names[which], minutes);
    what = xasprintf("set %s interval of", names[which]);
    return sandbox_action(c, "POST", id_or_name, suffix, what, err);
}

int
daytona_sandbox_set_public(daytona_client *c, const char *id_or_name, bool is_public,
                           daytona_error **err)
{
    return sandbox_action(c, "POST", id_or_name, is_public ? "/public/true" : "/public/false",
                          "set visibility of", err);
}

static bool
in_states(const char *s, const char *const *states)
{
    for (size_t i = 0; s && states[i]; i++)
        if (strcmp(s, states[i]) == 0)
            return true;
    return false;
}

int
daytona_sandbox_wait(daytona_client *c, const char *id_or_name, const char *const *states,
                     int timeout_s, struct daytona_sandbox **ret, daytona_error **err)
{
    uint64_t start = now_msec(), deadline = timeout_s > 0 ? start + (uint64_t) timeout_s * 1000 : 0;
    unsigned interval = 100;

    if (!states || !states[0])
        return dc_error(err, EINVAL, "wait for sandbox '%s': no states given", id_or_name);
    for (;;) {
        struct daytona_sandbox *sb = NULL;
        daytona_error *e = NULL;
        bool last = deadline && now_msec() >= deadline;
        int r = daytona_sandbox_get(c, id_or_name, &sb, &e);

        if (r == -ENOENT && e && e->http_status == 404) {
            daytona_error_free(e);
            if (in_states("destroyed", states)) {
                if (ret)
                    *ret = NULL;
                return 0;
            }
            return dc_error(err, ENOENT, "sandbox '%s' disappeared while waiting for '%s'",
                            id_or_name, states[0]);
        }
        if (r < 0) {
            if (err && !*err)
                *err = e;
            else
                daytona_error_free(e);
            return r;
        }
        if (in_states(sb->state, states)) {
            if (ret)
                *ret = sb;
            else
                daytona_sandbox_free(sb);
            return 0;
        }
        if (sb->state &&
            (strcmp(sb->state, "error") == 0 || strcmp(sb->state, "build_failed") == 0)) {
            r = dc_error(err, EIO, "sandbox '%s' is in state '%s': %s", id_or_name, sb->state,
                         sb->error_reason ? sb->error_reason : "no reason given");
            daytona_sandbox_free(sb);
            return r;
        }
        if (last) {
            r = dc_error(err, ETIMEDOUT, "sandbox '%s' did not become '%s' within %d s (state "
                                         "'%s')", id_or_name, states[0], timeout_s,
                         sb->state ? sb->state : "unknown");
            daytona_sandbox_free(sb);
            return r;
        }
        daytona_sandbox_free(sb);
        /* The SDK's deprecated-polling schedule: 100 ms for 5 s, then x1.1 up to 1 s. */
        if (now_msec() - start > 5000) {
            interval = interval * 11 / 10;
            if (interval > 1000)
                interval = 1000;
        }
        if (deadline) {
            uint64_t now = now_msec();
            if (now >= deadline)
                continue; /* one last GET */
            if (now + interval > deadline)
                interval = (unsigned) (deadline - now);
        }
        sleep_msec(interval);
    }
}

int
daytona_sandbox_preview_url(daytona_client *c, const char *id_or_name, int port, int expires_s,
                            char **url, char **token, daytona_error **err)
{
    _cleanup_free_ char *e = NULL, *u = NULL, *what = NULL;
    json_t *j = NULL;
    int r;

    if (port < 1 || port > 65535)
        return dc_error(err, EINVAL, "invalid port %d", port);
    e = dc_escape(id_or_name);
    if (expires_s > 0)
        u = dc_api_url(c, "/sandbox/%s/ports/%d/signed-preview-url?expiresInSeconds=%d", e, port,
                       expires_s);
    else
        u = dc_api_url(c, "/sandbox/%s/ports/%d/preview-url", e, port);
    what = xasprintf("get preview URL of sandbox '%s' port %d", id_or_name, port);
    r = dc_json_call(c, "GET", u, NULL, 0, &j, what, err);
    if (r < 0)
        return r;
    if (!json_is_string(json_object_get(j, "url"))) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: the answer has no \"url\"", what);
    }
    *url = dc_jstr(j, "url");
    if (token)
        *token = dc_jstr(j, "token");
    json_decref(j);
    return 0;
}
