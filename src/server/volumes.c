/* SPDX-License-Identifier: Apache-2.0 */
/* Volumes (contract §2.10): named directories under DATA_DIR/volumes/<id> that sandboxes mount
 * (`volumes: [{volumeId, mountPath, subpath?}]` at create), idmapped like image layers so every
 * sandbox sees the same owners. They outlive the sandboxes that use them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "dt/fs-util.h"
#include "dt/macros.h"
#include "dt/runtime.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "server/server-int.h"
#include "dt/banned.h"

#define MAX_VOLUMES_PER_SANDBOX 16

static json_t *
volume_json(const struct dt_store_volume *v)
{
    json_t *o = json_object();
    dt_json_set_str(o, "id", v->id);
    dt_json_set_str(o, "name", v->name);
    dt_json_set_str(o, "organizationId", v->organization_id);
    dt_json_set_str(o, "state", dt_volume_state_to_string(v->state));
    dt_json_set_time(o, "createdAt", v->created_at_ms);
    dt_json_set_time(o, "updatedAt", v->updated_at_ms);
    if (v->last_used_at_ms > 0)
        dt_json_set_time(o, "lastUsedAt", v->last_used_at_ms);
    dt_json_set_str(o, "errorReason", v->error_reason);
    return o;
}

char *
dt_volume_path(struct dt_server *s, const char *id)
{
    return xasprintf("%s/volumes/%s", s->data_dir, id);
}

static struct dt_store_volume *
find_volume(struct call *c, const char *id_or_name)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_volume *v = NULL;
    int r = dt_store_volume_find(c->s->store, c->org, id_or_name, &v, &err);

    if (r == -ENOENT)
        dt_api_error(c->req, 404, "NOT_FOUND", "volume '%s' not found", id_or_name);
    else if (r < 0)
        dt_api_error_errno(c->req, r, err);
    return r < 0 ? NULL : v;
}

static void
create_volume(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name = json_string_value(json_object_get(body, "name"));
    struct dt_store_volume v = { 0 };
    int r;

    if (!name || dt_store_check_name("volume name", name, &err) < 0)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "%s",
                            err ? err->message : "name is required");
    v.organization_id = c->org;
    v.name = (char *) name;
    v.state = DT_VOLUME_READY;
    r = dt_store_volume_insert(c->s->store, &v, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    _cleanup_free_ char *dir = xasprintf("%s/volumes", c->s->data_dir);
    _cleanup_free_ char *path = dt_volume_path(c->s, v.id);
    /* 0700 parent: the volume's files carry the sandboxes' owners (setuid ones too); 0777
     * inside: whatever user a sandbox runs as may write. */
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (mkdir(path, 0777) < 0 && errno != EEXIST) ||
        chmod(path, 0777) < 0) {
        r = -errno;
        (void) dt_store_volume_delete(c->s->store, v.id, NULL);
        free(v.id);
        return dt_api_error(c->req, 500, "INTERNAL_SERVER_ERROR", "create volume '%s': %s", name,
                            strerror(-r));
    }
    dt_httpd_reply_json(c->req, 200, volume_json(&v));
    free(v.id);
}

/* Whether a sandbox (not destroyed) of the organization mounts volume ID. */
static bool
volume_in_use(struct dt_server *s, const char *org, const char *id, char **ret_sandbox)
{
    struct dt_store_sandbox_array all = { 0 };
    bool used = false;

    if (dt_store_sandbox_list_all(s->store, org, &all, NULL) < 0)
        return false;
    for (size_t i = 0; i < all.n && !used; i++) {
        json_t *vols = json_loads(all.items[i]->volumes_json ? all.items[i]->volumes_json : "[]",
                                  0, NULL), *m;
        size_t k;
        json_array_foreach(vols, k, m) {
            if (json_is_string(json_object_get(m, "volumeId")) &&
                strcmp(json_string_value(json_object_get(m, "volumeId")), id) == 0) {
                used = true;
                *ret_sandbox = xstrdup(all.items[i]->name);
            }
        }
        json_decref(vols);
    }
    dt_store_sandbox_array_free(&all);
    return used;
}

static void
delete_volume(struct call *c, const char *id)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_volume *v = find_volume(c, id);
    _cleanup_free_ char *user = NULL;
    int r;

    if (!v)
        return;
    if (volume_in_use(c->s, c->org, v->id, &user)) {
        dt_api_error(c->req, 409, "CONFLICT", "volume '%s' is in use by sandbox '%s'", v->name,
                     user);
        dt_store_volume_free(v);
        return;
    }
    r = dt_store_volume_delete(c->s->store, v->id, &err);
    if (r >= 0) {
        _cleanup_free_ char *path = dt_volume_path(c->s, v->id);
        (void) rm_rf_at(AT_FDCWD, path);
    }
    dt_store_volume_free(v);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_httpd_reply(c->req, 200, NULL, "", 0);
}

static void
list_volumes(struct call *c)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_volume_array a = { 0 };
    int r = dt_store_volume_list(c->s->store, c->org, &a, &err);

    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    json_t *items = json_array();
    for (size_t i = 0; i < a.n; i++)
        json_array_append_new(items, volume_json(a.items[i]));
    dt_store_volume_array_free(&a);
    dt_httpd_reply_json(c->req, 200, items);
}

void
dt_volumes_route(struct call *c, const char *const *seg, size_t n)
{
    const char *m = dt_httpd_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;

    if (n == 2 && strcmp(m, "POST") == 0)
        return dt_api_with_json(c, NULL, create_volume, false);
    if (n == 2 && get)
        return list_volumes(c);
    if ((n == 3 && get) || (n == 4 && get && strcmp(seg[2], "by-name") == 0)) {
        struct dt_store_volume *v = find_volume(c, seg[n - 1]);
        if (v) {
            dt_httpd_reply_json(c->req, 200, volume_json(v));
            dt_store_volume_free(v);
        }
        return;
    }
    if (n == 3 && strcmp(m, "DELETE") == 0)
        return delete_volume(c, seg[2]);
    dt_api_error(c->req, 404, "NOT_FOUND", "no such endpoint: %s %s", m,
                 dt_httpd_req_head(c->req)->path);
}

/* A relative path without "..", "." or empty components. */
static bool
subpath_ok(const char *p)
{
    if (!*p || p[0] == '/' || strlen(p) > 1024)
        return false;
    _cleanup_free_ char *copy = xstrdup(p);
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save))
        if (strcmp(t, "..") == 0 || strcmp(t, ".") == 0)
            return false;
    return true;
}

static bool
mount_path_ok(const char *p)
{
    static const char *const reserved[] = { "/proc", "/sys", "/dev", "/etc/hosts",
                                            "/etc/hostname", "/etc/resolv.conf" };
    if (p[0] != '/' || strcmp(p, "/") == 0 || strlen(p) > 1024 || strstr(p, "/../") ||
        strstr(p, "/./") || strstr(p, "//"))
        return false;
    size_t n = strlen(p);
    if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
        return false;
    for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
        size_t k = strlen(reserved[i]);
        if (strncmp(p, reserved[i], k) == 0 && (p[k] == '\0' || p[k] == '/'))
            return false;
    }
    return true;
}

int
dt_volumes_for_create(struct call *c, json_t *vols, char **ret_json)
{
    json_t *out = json_array(), *m;
    size_t i;

    if (!json_is_array(vols) || json_array_size(vols) > MAX_VOLUMES_PER_SANDBOX) {
        json_decref(out);
        dt_api_error(c->req, 400, "BAD_REQUEST", "volumes must be an array of at most %d mounts",
                     MAX_VOLUMES_PER_SANDBOX);
        return -1;
    }
    json_array_foreach(vols, i, m) {
        const char *vid = json_string_value(json_object_get(m, "volumeId"));
        const char *mp = json_string_value(json_object_get(m, "mountPath"));
        const char *sub = json_string_value(json_object_get(m, "subpath"));
        struct dt_store_volume *v;

        if (!vid || !mp || !mount_path_ok(mp) || (sub && *sub && !subpath_ok(sub))) {
            json_decref(out);
            dt_api_error(c->req, 400, "BAD_REQUEST",
                         "volumes[%zu]: needs volumeId and an absolute mountPath (not /, /proc, "
                         "/sys, /dev), and a relative subpath without '..'", i);
            return -1;
        }
        if (!(v = find_volume(c, vid))) {
            json_decref(out);
            return -1;
        }
        /* The subpath exists before the mount needs it. */
        if (sub && *sub) {
            _cleanup_free_ char *path = dt_volume_path(c->s, v->id);
            _cleanup_free_ char *full = xasprintf("%s/%s", path, sub);
            int r = mkdir_p(full, 0777);
            if (r < 0) {
                json_decref(out);
                dt_store_volume_free(v);
                dt_api_error(c->req, 500, "INTERNAL_SERVER_ERROR", "volume subpath: %s",
                             strerror(-r));
                return -1;
            }
        }
        v->last_used_at_ms = dt_store_now_ms();
        (void) dt_store_volume_update(c->s->store, v, NULL);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s?}", "volumeId", v->id, "mountPath",
                                             mp, "subpath", sub && *sub ? sub : NULL));
        dt_store_volume_free(v);
    }
    *ret_json = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return 0;
}

int
dt_volumes_binds(struct dt_server *s, const char *volumes_json, struct dt_bind **ret, size_t *ret_n)
{
    json_t *vols = json_loads(volumes_json ? volumes_json : "[]", 0, NULL), *m;
    struct dt_bind *b = NULL;
    size_t i, n = 0;

    json_array_foreach(vols, i, m) {
        const char *vid = json_string_value(json_object_get(m, "volumeId"));
        const char *mp = json_string_value(json_object_get(m, "mountPath"));
        const char *sub = json_string_value(json_object_get(m, "subpath"));
        if (!vid || !mp)
            continue;
        _cleanup_free_ char *path = dt_volume_path(s, vid);
        b = xreallocarray(b, n + 1, sizeof(*b));
        b[n].source = sub ? xasprintf("%s/%s", path, sub) : xstrdup(path);
        b[n].destination = xstrdup(mp);
        b[n].readonly = false;
        b[n].idmap = true;
        n++;
    }
    json_decref(vols);
    *ret = b;
    *ret_n = n;
    return 0;
}
