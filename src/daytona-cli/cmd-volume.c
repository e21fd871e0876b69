/* SPDX-License-Identifier: Apache-2.0 */
/* `daytona volume` (create, list, get, delete) and `daytona organization` (list, create, use,
 * delete). Organizations have no libdaytona wrapper: they go through daytona_request() and fail
 * with a clear message while the server has no such API (404/501). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/banned.h"
#include "dt/xalloc.h"

static const struct cli_column volume_columns[] = {
    {"ID", "id"},     {"NAME", "name"},         {"STATE", "state"},
    {"SIZE", "size"}, {"CREATED", "createdAt"}, {NULL, NULL},
};

static const struct cli_column volume_fields[] = {
    {"ID", "id"},
    {"Name", "name"},
    {"State", "state"},
    {"Size (GB)", "size"},
    {"Created", "createdAt"},
    {"Last used", "lastUsedAt"},
    {"Error", "errorReason"},
    {NULL, NULL},
};

static int
run_volume_create(struct cli_args *a)
{
    uint64_t size = 0;
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_volume *v = NULL;
    int r;

    if (cli_opt_u64(a, "size", &size) < 0)
        return CLI_EXIT_USAGE;
    if (size > 100000)
        return cli_usage_error(a, "--size %s is too large", cli_opt(a, "size"));
    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_volume_create(c, a->argv[0], (unsigned) size, &v, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "create volume");
    if (a->format == CLI_FORMAT_TABLE)
        printf("Volume '%s' created (id %s)\n", v->name ? v->name : a->argv[0],
               v->id ? v->id : "-");
    else {
        json_t *j = cli_json_record(v->json);
        cli_output(a, j, volume_fields, NULL);
        json_decref(j);
    }
    daytona_volume_free(v);
    return 0;
}

static int
run_volume_list(struct cli_args *a)
{
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_volume **v = NULL;
    size_t n = 0;
    int r;

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_volume_list(c, &v, &n, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "list volumes");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cli_json_record(v[i]->json));
    cli_output(a, arr, volume_columns, "No volumes found.");
    json_decref(arr);
    daytona_volumes_free(v, n);
    return 0;
}

static int
run_volume_get(struct cli_args *a)
{
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_volume *v = NULL;
    int r;

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_volume_get(c, a->argv[0], &v, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get volume");
    json_t *j = cli_json_record(v->json);
    cli_output(a, j, volume_fields, NULL);
    json_decref(j);
    daytona_volume_free(v);
    return 0;
}

static int
run_volume_delete(struct cli_args *a)
{
    return cli_delete_each(a, "Volume", daytona_volume_delete);
}

static const struct cli_option volume_create_options[] = {
    {"size", 's', CLI_VALUE, "GB", "size in GB [server default]"},
    {},
};

static const struct cli_command volume_create = {
    .name = "create",
    .args_usage = "NAME",
    .summary = "create a volume",
    .example = "daytona volume create data --size 10",
    .options = volume_create_options,
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_volume_create,
};

static const struct cli_command volume_list = {
    .name = "list",
    .summary = "list volumes",
    .example = "daytona volume list --format json",
    .max_args = 0,
    .flags = CLI_CMD_FORMAT,
    .run = run_volume_list,
};

static const struct cli_command volume_get = {
    .name = "get",
    .args_usage = "NAME",
    .summary = "show a volume",
    .example = "daytona volume get data",
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_volume_get,
};

static const struct cli_command volume_delete = {
    .name = "delete",
    .args_usage = "NAME...",
    .summary = "delete volumes",
    .example = "daytona volume delete data",
    .min_args = 1,
    .max_args = -1,
    .run = run_volume_delete,
};

static const struct cli_command *const volume_subcommands[] = {
    &volume_create, &volume_list, &volume_get, &volume_delete, NULL,
};

const struct cli_command cli_cmd_volume = {
    .name = "volume",
    .summary = "manage volumes",
    .subcommands = volume_subcommands,
};

/* ---- organization ---- */

/* Send one organization request; 404/501 (no such API) become one clear message. Returns 0 with
 * the parsed body in *ret (may be NULL), or an exit status after printing the error. */
static int
org_request(const char *method, const char *path, const char *body, json_t **ret)
{
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    _cleanup_free_ char *resp = NULL;
    int r;

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_request(c, method, path, body, NULL, &resp, &e);
    daytona_client_free(c);
    if (r < 0 && e &&
        (e->http_status == 501 ||
         (e->http_status == 404 && e->message && strstr(e->message, "no such endpoint")))) {
        daytona_error_free(e);
        return cli_error("organizations are not supported by this server");
    }
    if (r < 0)
        return cli_fail(r, e, "organization request");
    if (ret)
        *ret = resp && *resp ? json_loads(resp, JSON_DECODE_ANY, NULL) : NULL;
    return 0;
}

static const struct cli_column org_columns[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"CREATED", "createdAt"},
    {NULL, NULL},
};

static int
run_org_list(struct cli_args *a)
{
    json_t *j = NULL;
    int r = org_request("GET", "/organizations", NULL, &j);
    if (r)
        return r;
    if (!json_is_array(j)) {
        json_decref(j);
        return cli_error("organizations: unexpected answer from the server");
    }
    cli_output(a, j, org_columns, "No organizations found.");
    json_decref(j);
    return 0;
}

static int
run_org_create(struct cli_args *a)
{
    json_t *req = json_pack("{s:s}", "name", a->argv[0]), *j = NULL;
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int r = org_request("POST", "/organizations", body, &j);
    if (r)
        return r;
    if (a->format == CLI_FORMAT_TABLE)
        printf("Organization '%s' created\n", a->argv[0]);
    else if (j)
        cli_output(a, j, org_columns, NULL);
    json_decref(j);
    return 0;
}

/* Find organization NAME (or id) in GET /organizations; returns its id (new) or NULL. */
static int
org_find(const char *name, char **ret_id)
{
    json_t *j = NULL, *item;
    size_t i;
    int r = org_request("GET", "/organizations", NULL, &j);
    if (r)
        return r;
    json_array_foreach(j, i, item)
    {
        const char *id = json_string_value(json_object_get(item, "id"));
        const char *n = json_string_value(json_object_get(item, "name"));
        if (id && ((n && !strcmp(n, name)) || !strcmp(id, name))) {
            *ret_id = xstrdup(id);
            json_decref(j);
            return 0;
        }
    }
    json_decref(j);
    return cli_error("no organization '%s'", name);
}

static int
run_org_use(struct cli_args *a)
{
    _cleanup_free_ char *id = NULL;
    int r = org_find(a->argv[0], &id);
    if (r)
        return r;
    /* TODO(#7): a profile has no organizationId field in libdaytona's config file API. */
    return cli_error("cannot store the active organization: profiles have no organization "
                     "field yet (organization id %s)",
                     id);
}

static int
run_org_delete(struct cli_args *a)
{
    _cleanup_free_ char *id = NULL, *path = NULL;
    int r = org_find(a->argv[0], &id);
    if (r)
        return r;
    path = xasprintf("/organizations/%s", id);
    r = org_request("DELETE", path, NULL, NULL);
    if (r)
        return r;
    printf("Organization '%s' deleted\n", a->argv[0]);
    return 0;
}

static const struct cli_command org_list = {
    .name = "list",
    .summary = "list organizations",
    .example = "daytona organization list",
    .max_args = 0,
    .flags = CLI_CMD_FORMAT,
    .run = run_org_list,
};

static const struct cli_command org_create = {
    .name = "create",
    .args_usage = "NAME",
    .summary = "create an organization",
    .example = "daytona organization create research",
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_org_create,
};

static const struct cli_command org_use = {
    .name = "use",
    .args_usage = "NAME",
    .summary = "make an organization the active one",
    .example = "daytona organization use research",
    .min_args = 1,
    .max_args = 1,
    .run = run_org_use,
};

static const struct cli_command org_delete = {
    .name = "delete",
    .args_usage = "NAME",
    .summary = "delete an organization",
    .example = "daytona organization delete research",
    .min_args = 1,
    .max_args = 1,
    .run = run_org_delete,
};

static const struct cli_command *const org_subcommands[] = {
    &org_list, &org_create, &org_use, &org_delete, NULL,
};

const struct cli_command cli_cmd_organization = {
    .name = "organization",
    .summary = "manage organizations (when the server has them)",
    .subcommands = org_subcommands,
};
