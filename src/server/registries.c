/* SPDX-License-Identifier: Apache-2.0 */
/* Docker registries (the API's /docker-registry, DockerRegistry DTO): per-organization
 * credentials for image pulls. Passwords are sealed with AES-256-GCM under DATA_DIR/registry-key
 * before they reach the store, bound to the registry's id, and only opened for a pull job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dt/macros.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "server/registries.h"
#include "server/server-int.h"
#include "dt/banned.h"

static json_t *
registry_json(const struct dt_store_registry *r)
{
    json_t *o = json_object();
    dt_json_set_str(o, "id", r->id);
    dt_json_set_str(o, "name", r->name);
    dt_json_set_str(o, "url", r->url);
    dt_json_set_str(o, "username", r->username);
    dt_json_set_str(o, "project", r->project ? r->project : "");
    dt_json_set_str(o, "registryType", r->registry_type ? r->registry_type : "organization");
    dt_json_set_time(o, "createdAt", r->created_at_ms);
    dt_json_set_time(o, "updatedAt", r->updated_at_ms);
    return o;
}

static void
wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static int
load_key(struct dt_server *s, uint8_t key[static DT_SECRET_KEY_SIZE], struct dt_error **err)
{
    _cleanup_free_ char *path = xasprintf("%s/registry-key", s->data_dir);
    return dt_store_secret_key_load(path, key, err);
}

/* A string field of BODY into *OUT (NULL when absent or null). -1 after answering 400 for
 * another type, an embedded NUL, more than MAX bytes or a control character (credentials are
 * handed to pull jobs one per line). */
static int
get_str(struct call *c, json_t *body, const char *key, size_t max, const char **out)
{
    json_t *v = json_object_get(body, key);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s must be a string", key);
        return -1;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n || n > max) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s must be at most %zu bytes, without NUL", key,
                     max);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "%s must not contain control characters",
                         key);
            return -1;
        }
    *out = s;
    return 0;
}

static struct dt_store_registry *
find_registry(struct call *c, const char *id)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_registry *r = NULL;
    int k = dt_store_registry_find(c->s->store, c->org, id, &r, &err);

    if (k == -ENOENT)
        dt_api_error(c->req, 404, "NOT_FOUND", "docker registry '%s' not found", id);
    else if (k < 0)
        dt_api_error_errno(c->req, k, err);
    return k < 0 ? NULL : r;
}

/* Seal PASSWORD for registry ID into *RET; -1 after answering 500. */
static int
seal(struct call *c, const char *id, const char *password, char **ret)
{
    _cleanup_error_ struct dt_error *err = NULL;
    uint8_t key[DT_SECRET_KEY_SIZE];
    int k = load_key(c->s, key, &err);

    if (k >= 0)
        k = dt_store_secret_seal(key, id, password, ret, &err);
    explicit_bzero(key, sizeof(key));
    if (k < 0) {
        dt_api_error(c->req, 500, "INTERNAL_SERVER_ERROR", "seal registry password: %s",
                     err ? err->message : strerror(-k));
        return -1;
    }
    return 0;
}

/* The fields of a create or update. On update (R already filled) absent fields keep their
 * value; on create name, url, username and password are required. -1 after answering 400. */
static int
apply_fields(struct call *c, json_t *body, struct dt_store_registry *r, bool create)
{
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name, *url, *user, *pass, *project;

    if (get_str(c, body, "name", 255, &name) < 0 || get_str(c, body, "url", 512, &url) < 0 ||
        get_str(c, body, "username", DT_REGISTRY_FIELD_MAX, &user) < 0 ||
        get_str(c, body, "password", DT_REGISTRY_FIELD_MAX, &pass) < 0 ||
        get_str(c, body, "project", 255, &project) < 0)
        return -1;
    if (create && (!name || !url || !user || !pass)) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "name, url, username and password are required");
        return -1;
    }
    if (name) {
        if (dt_store_check_name("registry name", name, &err) < 0) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "%s", err->message);
            return -1;
        }
        free(r->name);
        r->name = xstrdup(name);
    }
    if (url) {
        char *norm = NULL;
        if (dt_store_registry_normalize_url(url, &norm, &err) < 0) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "%s", err->message);
            return -1;
        }
        free(r->url);
        r->url = norm;
    }
    if (user) {
        if (!*user) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "username must not be empty");
            return -1;
        }
        free(r->username);
        r->username = xstrdup(user);
    }
    if (project) {
        free(r->project);
        r->project = xstrdup(project);
    }
    if (pass) {
        char *sealed = NULL;
        if (!*pass) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "password must not be empty");
            return -1;
        }
        if (seal(c, r->id, pass, &sealed) < 0)
            return -1;
        wipe_free(r->password_enc);
        r->password_enc = sealed;
    }
    return 0;
}

static void
create_registry(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_(dt_store_registry_freep) struct dt_store_registry *r = xcalloc(1, sizeof(*r));
    char id[37];
    int k;

    /* The id exists before the password is sealed: it is authenticated with it, so a sealed
     * value copied to another row (another organization's) does not open. */
    dt_store_uuid(id);
    r->id = xstrdup(id);
    r->organization_id = xstrdup(c->org);
    if (apply_fields(c, body, r, true) < 0)
        return;
    k = dt_store_registry_insert(c->s->store, r, &err);
    if (k < 0)
        return dt_api_error_errno(c->req, k, err);
    dt_httpd_reply_json(c->req, 200, registry_json(r));
}

static void
update_registry(struct call *c, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_(dt_store_registry_freep) struct dt_store_registry *r = find_registry(c, params[0]);
    int k;

    if (!r || apply_fields(c, body, r, false) < 0)
        return;
    k = dt_store_registry_update(c->s->store, r, &err);
    if (k < 0)
        return dt_api_error_errno(c->req, k, err);
    dt_httpd_reply_json(c->req, 200, registry_json(r));
}

static void
delete_registry(struct call *c, const char *id)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_(dt_store_registry_freep) struct dt_store_registry *r = find_registry(c, id);
    int k;

    if (!r)
        return;
    k = dt_store_registry_delete(c->s->store, c->org, r->id, &err);
    if (k < 0)
        return dt_api_error_errno(c->req, k, err);
    dt_httpd_reply(c->req, 200, NULL, "", 0);
}

static void
set_default(struct call *c, const char *id)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_(dt_store_registry_freep) struct dt_store_registry *r = find_registry(c, id);
    struct dt_store_registry *now = NULL;
    int k;

    if (!r)
        return;
    k = dt_store_registry_set_default(c->s->store, c->org, r->id, &err);
    if (k >= 0)
        k = dt_store_registry_find(c->s->store, c->org, r->id, &now, &err);
    if (k < 0)
        return dt_api_error_errno(c->req, k, err);
    dt_httpd_reply_json(c->req, 200, registry_json(now));
    dt_store_registry_free(now);
}

static void
list_registries(struct call *c)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_registry_array a = { 0 };
    int k = dt_store_registry_list(c->s->store, c->org, &a, &err);

    if (k < 0)
        return dt_api_error_errno(c->req, k, err);
    json_t *items = json_array();
    for (size_t i = 0; i < a.n; i++)
        json_array_append_new(items, registry_json(a.items[i]));
    dt_store_registry_array_free(&a);
    dt_httpd_reply_json(c->req, 200, items);
}

void
dt_registries_route(struct call *c, const char *const *seg, size_t n)
{
    const char *m = dt_httpd_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;

    if (n == 2 && post)
        return dt_api_with_json(c, NULL, create_registry, false);
    if (n == 2 && get)
        return list_registries(c);
    /* Temporary push access to the platform's own registry: there is none here. */
    if (n == 3 && get && strcmp(seg[2], "registry-push-access") == 0)
        return dt_api_error(c->req, 501, "NOT_IMPLEMENTED",
                            "this server has no internal registry to push snapshots to");
    if (n == 3 && get) {
        _cleanup_(dt_store_registry_freep) struct dt_store_registry *r = find_registry(c, seg[2]);
        if (r)
            dt_httpd_reply_json(c->req, 200, registry_json(r));
        return;
    }
    if (n == 3 && strcmp(m, "PATCH") == 0)
        return dt_api_with_json(c, (const char *const[]){ seg[2], NULL }, update_registry,
                                false);
    if (n == 3 && strcmp(m, "DELETE") == 0)
        return delete_registry(c, seg[2]);
    if (n == 4 && post && strcmp(seg[3], "set-default") == 0)
        return set_default(c, seg[2]);
    dt_api_error(c->req, 404, "NOT_FOUND", "no such endpoint: %s %s", m,
                 dt_httpd_req_head(c->req)->path);
}

int
dt_registries_credentials(struct dt_server *s, const char *org, const char *host,
                          char **ret_user, char **ret_password, struct dt_error **err)
{
    struct dt_store_registry_array a = { 0 };
    _cleanup_free_ char *norm = NULL;
    const struct dt_store_registry *best = NULL;
    uint8_t key[DT_SECRET_KEY_SIZE];
    char *password = NULL;
    int k;

    if (!org || !host || dt_store_registry_normalize_url(host, &norm, NULL) < 0)
        return dt_error_set(err, ENOENT, "no docker registry credentials for '%s'",
                            host ? host : "");
    k = dt_store_registry_list(s->store, org, &a, err);
    if (k < 0)
        return k;
    /* Oldest first: a later match replaces an earlier one unless that one is the default. */
    for (size_t i = 0; i < a.n; i++)
        if (dt_store_registry_host_matches(a.items[i]->url, norm) &&
            (!best || !best->is_default))
            best = a.items[i];
    if (!best) {
        dt_store_registry_array_free(&a);
        return dt_error_set(err, ENOENT, "no docker registry credentials for '%s'", norm);
    }
    k = load_key(s, key, err);
    if (k >= 0)
        k = dt_store_secret_open(key, best->id, best->password_enc, &password, err);
    explicit_bzero(key, sizeof(key));
    if (k < 0) {
        dt_error_wrap(err, "docker registry '%s'", best->name);
        dt_store_registry_array_free(&a);
        return k;
    }
    *ret_user = xstrdup(best->username);
    *ret_password = password;
    dt_store_registry_array_free(&a);
    return 0;
}
