/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox commands of the `daytona` CLI (create, list, info, start, stop, delete, archive,
 * preview-url) and the `sandbox` group that also holds exec and ssh (cmd-exec.c). Records are
 * printed from the server's own JSON, so --format json keeps Daytona's field names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/banned.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"

/* How long lifecycle commands wait for the target state. */
#define WAIT_TIMEOUT_S 300
#define MAX_DOCKERFILE (1024 * 1024)

static const struct cli_column sandbox_columns[] = {
    {"ID", "id"},         {"NAME", "name"},         {"STATE", "state"},
    {"TARGET", "target"}, {"CPU", "cpu"},           {"MEMORY", "memory"},
    {"DISK", "disk"},     {"CREATED", "createdAt"}, {NULL, NULL},
};

static const struct cli_column sandbox_fields[] = {
    {"ID", "id"},
    {"Name", "name"},
    {"State", "state"},
    {"Snapshot", "snapshot"},
    {"User", "user"},
    {"Target", "target"},
    {"Class", "sandboxClass"},
    {"CPU", "cpu"},
    {"GPU", "gpu"},
    {"Memory (GiB)", "memory"},
    {"Disk (GiB)", "disk"},
    {"Public", "public"},
    {"Labels", "labels"},
    {"Auto-stop (min)", "autoStopInterval"},
    {"Auto-archive (min)", "autoArchiveInterval"},
    {"Auto-delete (min)", "autoDeleteInterval"},
    {"Created", "createdAt"},
    {"Last activity", "lastActivityAt"},
    {"Error", "errorReason"},
    {NULL, NULL},
};

/* ---- create ---- */

static int
read_dockerfile(const char *path, char **ret)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = read_file_at(AT_FDCWD, path, MAX_DOCKERFILE, &data, &len);
    if (r < 0)
        return cli_error("read Dockerfile '%s': %s", path, strerror(-r));
    *ret = TAKE_PTR(data);
    return 0;
}

static int
opt_double(const struct cli_args *a, const char *name, double *ret)
{
    const char *s = cli_opt(a, name);
    if (s && cli_parse_double(s, ret) < 0)
        return cli_usage_error(a, "invalid value '%s' for --%s: expected a number", s, name);
    return 0;
}

static int
opt_interval(const struct cli_args *a, const char *name, bool *has, long *ret)
{
    int64_t v;
    if (!cli_opt(a, name))
        return 0;
    if (cli_opt_i64(a, name, &v) < 0)
        return CLI_EXIT_USAGE;
    *has = true;
    *ret = (long) v;
    return 0;
}

static int
on_build_log(const char *data, size_t len, void *userdata)
{
    return write_all(*(int *) userdata, data, len);
}

static int
run_create(struct cli_args *a)
{
    struct daytona_create_params p = {
            .name = cli_opt(a, "name"),
            .snapshot = cli_opt(a, "snapshot"),
            .image = cli_opt(a, "image"),
            .user = cli_opt(a, "user"),
            .target = cli_opt(a, "target"),
            .env = (const char *const *) cli_optv(a, "env"),
            .labels = (const char *const *) cli_optv(a, "label"),
            .is_public = cli_flag(a, "public"),
            .network_block_all = cli_flag(a, "network-block-all"),
            .network_allow_list = cli_opt(a, "network-allow-list"),
    };
    _cleanup_free_ char *dockerfile = NULL, *extra = NULL;
    _cleanup_free_ struct daytona_volume_mount *mounts = NULL;
    char *const *vols = cli_optv(a, "volume");
    size_t nvols = strv_length(vols);
    char **vol_ids = NULL;
    _cleanup_strv_free_ char **hashes = NULL;
    daytona_client *c = NULL;
    struct daytona_sandbox *sb = NULL;
    daytona_error *e = NULL;
    int r;

    for (char *const *kv = cli_optv(a, "env"); kv && *kv; kv++)
        if (!strchr(*kv, '='))
            return cli_usage_error(a, "invalid --env '%s': expected KEY=VALUE", *kv);
    for (char *const *kv = cli_optv(a, "label"); kv && *kv; kv++)
        if (!strchr(*kv, '='))
            return cli_usage_error(a, "invalid --label '%s': expected KEY=VALUE", *kv);
    if ((r = opt_double(a, "cpu", &p.cpu)) || (r = opt_double(a, "memory", &p.memory)) ||
        (r = opt_double(a, "disk", &p.disk)) || (r = opt_double(a, "gpu", &p.gpu)))
        return r;
    if ((r = opt_interval(a, "auto-stop", &p.has_auto_stop, &p.auto_stop_interval)) ||
        (r = opt_interval(a, "auto-archive", &p.has_auto_archive, &p.auto_archive_interval)) ||
        (r = opt_interval(a, "auto-delete", &p.has_auto_delete, &p.auto_delete_interval)))
        return r;
    if (p.image && p.snapshot)
        return cli_usage_error(a, "--image and --snapshot cannot be used together");
    if (cli_opt(a, "dockerfile")) {
        if (p.image || p.snapshot)
            return cli_usage_error(a, "--dockerfile cannot be used with --image or --snapshot");
        r = read_dockerfile(cli_opt(a, "dockerfile"), &dockerfile);
        if (r)
            return r;
        p.dockerfile = dockerfile;
    }
    if (cli_opt(a, "context") && !p.dockerfile)
        return cli_usage_error(a, "--context needs --dockerfile");
    if (cli_opt(a, "class")) {
        const char *cls = cli_opt(a, "class");
        if (strcmp(cls, "small") && strcmp(cls, "medium") && strcmp(cls, "large"))
            return cli_usage_error(a, "invalid --class '%s': expected small, medium or large", cls);
        /* Daytona's CreateSandbox has "class"; libdaytona has no field for it. */
        extra = xasprintf("{\"class\":\"%s\"}", cls);
        p.extra_json = extra;
    }
    for (size_t i = 0; i < nvols; i++) {
        const char *colon = strchr(vols[i], ':');
        if (!colon || colon == vols[i] || colon[1] != '/')
            return cli_usage_error(a, "invalid --volume '%s': expected NAME:/ABSOLUTE/PATH",
                                   vols[i]);
    }

    r = cli_client_open(&c);
    if (r)
        return r;

    if (p.dockerfile) {
        r = cli_dockerfile_context(a, c, &dockerfile, &hashes);
        if (r) {
            daytona_client_free(c);
            return r;
        }
        p.dockerfile = dockerfile;
        p.context_hashes = (const char *const *) hashes;
    }

    if (nvols > 0) {
        mounts = xcalloc(nvols, sizeof(*mounts));
        vol_ids = xcalloc(nvols + 1, sizeof(char *));
        for (size_t i = 0; i < nvols; i++) {
            _cleanup_free_ char *name = xstrndup(vols[i], strchr(vols[i], ':') - vols[i]);
            struct daytona_volume *v = NULL;
            r = daytona_volume_get(c, name, &v, &e);
            if (r < 0) {
                strv_free(vol_ids);
                daytona_client_free(c);
                return cli_fail(r, e, "look up volume");
            }
            vol_ids[i] = xstrdup(v->id);
            daytona_volume_free(v);
            mounts[i].volume_id = vol_ids[i];
            mounts[i].mount_path = strchr(vols[i], ':') + 1;
        }
        p.volumes = mounts;
        p.n_volumes = nvols;
    }

    if (p.dockerfile || p.image) {
        /* A build: stream its log while it runs, then wait for "started". */
        r = daytona_sandbox_create(c, &p, -1, &sb, &e);
        if (r >= 0 && sb->state && strcmp(sb->state, "started") != 0) {
            int logfd = a->format == CLI_FORMAT_TABLE ? STDOUT_FILENO : STDERR_FILENO;
            _cleanup_free_ char *id = xstrdup(sb->id);
            static const char *const started[] = { "started", NULL };

            if (daytona_sandbox_follow_build_logs(c, id, on_build_log, &logfd, &e) < 0) {
                fprintf(stderr, "daytona: build log unavailable (%s), waiting\n",
                        e && e->message ? e->message : "unknown error");
                daytona_error_free(e);
                e = NULL;
            }
            daytona_sandbox_free(sb);
            sb = NULL;
            r = daytona_sandbox_wait(c, id, started, WAIT_TIMEOUT_S, &sb, &e);
        }
    } else {
        r = daytona_sandbox_create(c, &p, WAIT_TIMEOUT_S, &sb, &e);
    }
    strv_free(vol_ids);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "create sandbox");

    if (a->format == CLI_FORMAT_TABLE) {
        printf("Sandbox '%s' created (id %s, state %s)\n", sb->name ? sb->name : sb->id, sb->id,
               sb->state ? sb->state : "unknown");
    } else {
        json_t *j = cli_json_record(sb->json);
        cli_output(a, j, sandbox_fields, NULL);
        json_decref(j);
    }
    daytona_sandbox_free(sb);
    return 0;
}

static const struct cli_option create_options[] = {
    {"name", 0, CLI_VALUE, "NAME", "name of the sandbox (unique in the organization)"},
    {"snapshot", 0, CLI_VALUE, "SNAPSHOT", "snapshot to create the sandbox from"},
    {"image", 0, CLI_VALUE, "IMAGE", "OCI image to build the sandbox from"},
    {"dockerfile", 0, CLI_VALUE, "PATH", "Dockerfile to build the sandbox from"},
    {"context", 0, CLI_VALUE, "DIR",
     "build context directory (default: the Dockerfile's)"},
    {"cpu", 0, CLI_VALUE, "N", "CPU cores"},
    {"memory", 0, CLI_VALUE, "GIB", "memory in GiB"},
    {"disk", 0, CLI_VALUE, "GIB", "disk in GiB"},
    {"gpu", 0, CLI_VALUE, "N", "GPU units"},
    {"class", 0, CLI_VALUE, "CLASS", "sandbox class: small, medium or large"},
    {"env", 'e', CLI_LIST, "K=V", "environment variable"},
    {"label", 'l', CLI_LIST, "K=V", "label"},
    {"volume", 'v', CLI_LIST, "NAME:PATH", "mount volume NAME at PATH"},
    {"auto-stop", 0, CLI_VALUE, "MIN", "stop after MIN idle minutes (0 = never)"},
    {"auto-archive", 0, CLI_VALUE, "MIN", "archive after MIN minutes stopped (0 = maximum)"},
    {"auto-delete", 0, CLI_VALUE, "MIN", "delete after MIN minutes stopped (-1 = never)"},
    {"public", 0, CLI_FLAG, NULL, "make port previews public"},
    {"user", 0, CLI_VALUE, "USER", "user inside the sandbox"},
    {"target", 0, CLI_VALUE, "TARGET", "target region"},
    {"network-block-all", 0, CLI_FLAG, NULL, "block all network access"},
    {"network-allow-list", 0, CLI_VALUE, "CIDRS",
     "comma-separated CIDRs the sandbox may reach"},
    {},
};

const struct cli_command cli_cmd_create = {
    .name = "create",
    .summary = "create a sandbox",
    .description = "Waits until the sandbox is started and prints its id. With --image or "
                   "--dockerfile the build log is streamed first (to stderr with --format); the "
                   "local files a Dockerfile COPYs or ADDs are uploaded as build contexts.",
    .example = "daytona create --name demo --cpu 2 --memory 4 -e DEBUG=1 -l team=ml\n"
               "daytona create --image python:3.12-slim --format json\n"
               "daytona create --name app --dockerfile ./Dockerfile --context . -v data:/data",
    .options = create_options,
    .max_args = 0,
    .flags = CLI_CMD_FORMAT,
    .run = run_create,
};

/* ---- list ---- */

static int
run_list(struct cli_args *a)
{
    uint64_t page = 1, limit = 0;
    struct daytona_list_params p = {
            .labels = (const char *const *) cli_optv(a, "label"),
    };
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_sandbox_list *l = NULL;
    _cleanup_free_ char *cursor = NULL;
    int r;

    if (cli_opt_u64(a, "page", &page) < 0 || cli_opt_u64(a, "limit", &limit) < 0)
        return CLI_EXIT_USAGE;
    if (page == 0)
        return cli_usage_error(a, "--page starts at 1");
    if (limit > 1000)
        return cli_usage_error(a, "--limit is at most 1000");
    for (char *const *kv = cli_optv(a, "label"); kv && *kv; kv++)
        if (!strchr(*kv, '='))
            return cli_usage_error(a, "invalid --label '%s': expected KEY=VALUE", *kv);
    p.limit = (int) limit;

    r = cli_client_open(&c);
    if (r)
        return r;
    /* The API pages with cursors; page N is reached by following N-1 of them. */
    for (uint64_t i = 1;; i++) {
        p.cursor = cursor;
        r = daytona_sandbox_list(c, &p, &l, &e);
        if (r < 0) {
            daytona_client_free(c);
            return cli_fail(r, e, "list sandboxes");
        }
        if (i == page)
            break;
        free(cursor);
        cursor = l->next_cursor ? xstrdup(l->next_cursor) : NULL;
        daytona_sandbox_list_free(l);
        l = NULL;
        if (!cursor)
            break;
    }
    daytona_client_free(c);

    json_t *arr = json_array();
    for (size_t i = 0; l && i < l->n; i++)
        json_array_append_new(arr, cli_json_record(l->items[i]->json));
    cli_output(a, arr, sandbox_columns, "No sandboxes found.");
    json_decref(arr);
    daytona_sandbox_list_free(l);
    return 0;
}

static const struct cli_option list_options[] = {
    {"page", 'p', CLI_VALUE, "N", "page to show, from 1"},
    {"limit", 'l', CLI_VALUE, "N", "sandboxes per page"},
    {"label", 0, CLI_LIST, "K=V", "only sandboxes with this label"},
    {},
};

const struct cli_command cli_cmd_list = {
    .name = "list",
    .summary = "list sandboxes",
    .example = "daytona list\ndaytona list --label team=ml --limit 20 --format json",
    .options = list_options,
    .max_args = 0,
    .flags = CLI_CMD_FORMAT,
    .run = run_list,
};

/* ---- info ---- */

static int
run_info(struct cli_args *a)
{
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_sandbox *sb = NULL;
    int r;

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_sandbox_get(c, a->argv[0], &sb, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get sandbox");
    json_t *j = cli_json_record(sb->json);
    cli_output(a, j, sandbox_fields, NULL);
    json_decref(j);
    daytona_sandbox_free(sb);
    return 0;
}

const struct cli_command cli_cmd_info = {
    .name = "info",
    .args_usage = "SANDBOX",
    .summary = "show a sandbox's details",
    .example = "daytona info demo\ndaytona info demo --format yaml",
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_info,
};

/* ---- start / stop / delete / archive ---- */

enum lifecycle_op {
    OP_START,
    OP_STOP,
    OP_DELETE,
    OP_ARCHIVE
};

static const char *const op_done[] = {"started", "stopped", "deleted", "archived"};

/* The sandboxes a lifecycle command acts on: its arguments, or every sandbox with --all.
 * Returns a new strv (possibly empty) or NULL after printing an error. */
static char **
lifecycle_targets(struct cli_args *a, daytona_client *c, bool all)
{
    char **v = NULL;

    if (!all) {
        for (int i = 0; i < a->argc; i++)
            strv_push(&v, a->argv[i]);
        return v ? v : xcalloc(1, sizeof(char *));
    }
    struct daytona_sandbox_list *l = NULL;
    daytona_error *e = NULL;
    struct daytona_list_params p = {};
    int r = daytona_sandbox_list_all(c, &p, &l, &e);
    if (r < 0) {
        cli_fail(r, e, "list sandboxes");
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++)
        strv_push(&v, l->items[i]->id);
    daytona_sandbox_list_free(l);
    return v ? v : xcalloc(1, sizeof(char *));
}

static int
run_lifecycle(struct cli_args *a, enum lifecycle_op op)
{
    bool all = op != OP_ARCHIVE && cli_flag(a, "all");
    bool force = (op == OP_STOP || op == OP_DELETE) && cli_flag(a, "force");
    daytona_client *c = NULL;
    char **targets;
    int r, ret = 0;

    if (all && a->argc > 0)
        return cli_usage_error(a, "--all cannot be combined with sandbox names");
    if (!all && a->argc == 0)
        return cli_usage_error(a, "missing argument SANDBOX (or --all)");
    if (op == OP_DELETE && all && !force) {
        if (!isatty(STDIN_FILENO))
            return cli_error("refusing to delete every sandbox without --force");
        fprintf(stderr, "Delete ALL sandboxes? [y/N] ");
        char line[16];
        if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y'))
            return cli_error("aborted");
    }

    r = cli_client_open(&c);
    if (r)
        return r;
    targets = lifecycle_targets(a, c, all);
    if (!targets) {
        daytona_client_free(c);
        return CLI_EXIT_FAILURE;
    }
    if (all && !targets[0] && a->format == CLI_FORMAT_TABLE)
        printf("No sandboxes to %s.\n", op == OP_START  ? "start"
                                        : op == OP_STOP ? "stop"
                                                        : "delete");
    for (char **t = targets; *t; t++) {
        daytona_error *e = NULL;
        switch (op) {
        case OP_START:
            r = daytona_sandbox_start(c, *t, WAIT_TIMEOUT_S, &e);
            break;
        case OP_STOP:
            r = daytona_sandbox_stop(c, *t, force, WAIT_TIMEOUT_S, &e);
            break;
        case OP_DELETE:
            r = daytona_sandbox_delete(c, *t, WAIT_TIMEOUT_S, &e);
            break;
        case OP_ARCHIVE:
            r = daytona_sandbox_archive(c, *t, &e);
            break;
        }
        if (r < 0) {
            ret = cli_fail(r, e, *t);
            continue;
        }
        if (a->format == CLI_FORMAT_TABLE)
            printf("Sandbox '%s' %s\n", *t, op_done[op]);
    }
    if (a->format != CLI_FORMAT_TABLE) {
        /* For scripts: the sandboxes acted on successfully are not distinguished from the
         * failed ones here; the exit status says whether all succeeded. */
        json_t *arr = json_array();
        for (char **t = targets; *t; t++)
            json_array_append_new(arr, json_string(*t));
        json_t *o = json_pack("{s:s, s:o, s:b}", "action", op_done[op], "sandboxes", arr, "ok",
                              ret == 0);
        cli_output(a, o, NULL, NULL);
        json_decref(o);
    }
    strv_free(targets);
    daytona_client_free(c);
    return ret;
}

static int
run_start(struct cli_args *a)
{
    return run_lifecycle(a, OP_START);
}
static int
run_stop(struct cli_args *a)
{
    return run_lifecycle(a, OP_STOP);
}
static int
run_delete(struct cli_args *a)
{
    return run_lifecycle(a, OP_DELETE);
}
static int
run_archive(struct cli_args *a)
{
    return run_lifecycle(a, OP_ARCHIVE);
}

static const struct cli_option start_options[] = {
    {"all", 'a', CLI_FLAG, NULL, "start every sandbox"},
    {},
};
static const struct cli_option stop_options[] = {
    {"all", 'a', CLI_FLAG, NULL, "stop every sandbox"},
    {"force", 0, CLI_FLAG, NULL, "kill instead of stopping gracefully"},
    {},
};
static const struct cli_option delete_options[] = {
    {"all", 'a', CLI_FLAG, NULL, "delete every sandbox"},
    {"force", 0, CLI_FLAG, NULL, "do not ask for confirmation with --all"},
    {},
};

const struct cli_command cli_cmd_start = {
    .name = "start",
    .args_usage = "[SANDBOX...]",
    .summary = "start sandboxes",
    .description = "Waits until each sandbox is started.",
    .example = "daytona start demo\ndaytona start --all",
    .options = start_options,
    .max_args = -1,
    .flags = CLI_CMD_FORMAT,
    .run = run_start,
};

const struct cli_command cli_cmd_stop = {
    .name = "stop",
    .args_usage = "[SANDBOX...]",
    .summary = "stop sandboxes",
    .description = "Waits until each sandbox is stopped.",
    .example = "daytona stop demo\ndaytona stop --all --force",
    .options = stop_options,
    .max_args = -1,
    .flags = CLI_CMD_FORMAT,
    .run = run_stop,
};

const struct cli_command cli_cmd_delete = {
    .name = "delete",
    .args_usage = "[SANDBOX...]",
    .summary = "delete sandboxes",
    .description =
            "Waits until each sandbox is gone. --all asks for confirmation on a terminal "
            "and needs --force elsewhere.",
    .example = "daytona delete demo\ndaytona delete --all --force",
    .options = delete_options,
    .max_args = -1,
    .flags = CLI_CMD_FORMAT,
    .run = run_delete,
};

const struct cli_command cli_cmd_archive = {
    .name = "archive",
    .args_usage = "SANDBOX...",
    .summary = "archive stopped sandboxes",
    .example = "daytona archive demo",
    .min_args = 1,
    .max_args = -1,
    .flags = CLI_CMD_FORMAT,
    .run = run_archive,
};

/* ---- preview-url ---- */

static int
run_preview_url(struct cli_args *a)
{
    uint64_t port = 0, expires = 0;
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    _cleanup_free_ char *url = NULL, *token = NULL;
    int r;

    if (cli_opt_u64(a, "port", &port) < 0 || cli_opt_u64(a, "expires", &expires) < 0)
        return CLI_EXIT_USAGE;
    if (!cli_opt(a, "port"))
        return cli_usage_error(a, "--port is required");
    if (port < 1 || port > 65535)
        return cli_usage_error(a, "invalid --port %s: expected 1-65535", cli_opt(a, "port"));
    if (expires > 86400 * 365)
        return cli_usage_error(a, "--expires is at most one year");

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_sandbox_preview_url(c, a->argv[0], (int) port, (int) expires, &url, &token, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get preview URL");
    if (a->format == CLI_FORMAT_TABLE) {
        printf("%s\n", url);
        if (token)
            printf("%sToken:%s %s\n", cli_c_dim(), cli_c_reset(), token);
        return 0;
    }
    json_t *o =
            json_pack("{s:s, s:I, s:s?}", "url", url, "port", (json_int_t) port, "token", token);
    cli_output(a, o, NULL, NULL);
    json_decref(o);
    return 0;
}

static const struct cli_option preview_options[] = {
    {"port", 'p', CLI_VALUE, "PORT", "port inside the sandbox (required)"},
    {"expires", 0, CLI_VALUE, "SECONDS", "sign the URL, valid this many seconds"},
    {},
};

const struct cli_command cli_cmd_preview_url = {
    .name = "preview-url",
    .args_usage = "SANDBOX",
    .summary = "print the preview URL of a port",
    .example = "daytona preview-url demo --port 3000\n"
               "daytona preview-url demo -p 8080 --expires 3600",
    .options = preview_options,
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_preview_url,
};

static const struct cli_command *const sandbox_subcommands[] = {
    &cli_cmd_create,      &cli_cmd_list, &cli_cmd_info,
    &cli_cmd_start,       &cli_cmd_stop, &cli_cmd_delete,
    &cli_cmd_archive,     &cli_cmd_exec, &cli_cmd_ssh,
    &cli_cmd_preview_url, NULL,
};

const struct cli_command cli_cmd_sandbox = {
    .name = "sandbox",
    .summary = "manage sandboxes (each is also a top-level command)",
    .subcommands = sandbox_subcommands,
};
