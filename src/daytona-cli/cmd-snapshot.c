/* SPDX-License-Identifier: Apache-2.0 */
/* `daytona snapshot`: create (from an image or a Dockerfile, with the build log streamed), push
 * (upload a local OCI layout or a `docker save`/OCI archive, with a progress bar), list, get and
 * delete. push talks to the server with libcurl directly, because libdaytona has no streaming
 * upload to the control plane. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/banned.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"

#define SNAPSHOT_WAIT_S (30 * 60)
#define MAX_DOCKERFILE  (1024 * 1024)

static const struct cli_column snapshot_columns[] = {
    {"ID", "id"},           {"NAME", "name"},         {"STATE", "state"},
    {"IMAGE", "imageName"}, {"CPU", "cpu"},           {"MEMORY", "mem"},
    {"DISK", "disk"},       {"CREATED", "createdAt"}, {NULL, NULL},
};

static const struct cli_column snapshot_fields[] = {
    {"ID", "id"},
    {"Name", "name"},
    {"State", "state"},
    {"Image", "imageName"},
    {"Entrypoint", "entrypoint"},
    {"CPU", "cpu"},
    {"GPU", "gpu"},
    {"Memory (GiB)", "mem"},
    {"Disk (GiB)", "disk"},
    {"Size (GiB)", "size"},
    {"Created", "createdAt"},
    {"Last used", "lastUsedAt"},
    {"Error", "errorReason"},
    {NULL, NULL},
};

static void
output_snapshot(const struct cli_args *a, const struct daytona_snapshot *s)
{
    json_t *j = cli_json_record(s->json);
    cli_output(a, j, snapshot_fields, NULL);
    json_decref(j);
}

/* ---- create ---- */

static int
on_build_log(const char *data, size_t len, void *userdata)
{
    int fd = *(int *) userdata;
    return write_all(fd, data, len);
}

static int
run_snapshot_create(struct cli_args *a)
{
    struct daytona_snapshot_params p = {
            .name = a->argv[0],
            .image = cli_opt(a, "image"),
    };
    _cleanup_free_ char *dockerfile = NULL;
    _cleanup_strv_free_ char **entry = NULL, **hashes = NULL;
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_snapshot *s = NULL;
    int r;

    if (!!p.image == !!cli_opt(a, "dockerfile"))
        return cli_usage_error(a, "give exactly one of --image and --dockerfile");
    if (cli_opt(a, "context") && !cli_opt(a, "dockerfile"))
        return cli_usage_error(a, "--context needs --dockerfile");
    const char *num[] = {"cpu", "memory", "disk"};
    double *dst[] = {&p.cpu, &p.memory, &p.disk};
    for (size_t i = 0; i < ELEMENTSOF(num); i++) {
        const char *v = cli_opt(a, num[i]);
        if (v && cli_parse_double(v, dst[i]) < 0)
            return cli_usage_error(a, "invalid value '%s' for --%s: expected a number", v, num[i]);
    }
    if (cli_opt(a, "entrypoint")) {
        /* Words split at spaces, as Daytona's CLI does ("sleep infinity"). */
        _cleanup_free_ char *copy = xstrdup(cli_opt(a, "entrypoint"));
        char *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
            strv_push(&entry, w);
        p.entrypoint = (const char *const *) entry;
    }
    if (cli_opt(a, "dockerfile")) {
        size_t len;
        r = read_file_at(AT_FDCWD, cli_opt(a, "dockerfile"), MAX_DOCKERFILE, &dockerfile, &len);
        if (r < 0)
            return cli_error("read Dockerfile '%s': %s", cli_opt(a, "dockerfile"), strerror(-r));
        p.dockerfile = dockerfile;
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
    r = daytona_snapshot_create(c, &p, /* wait_timeout_s= */ -1, &s, &e);
    if (r < 0) {
        daytona_client_free(c);
        return cli_fail(r, e, "create snapshot");
    }
    daytona_snapshot_free(s);
    s = NULL;

    /* The build log goes to stdout for people and to stderr when stdout is for a script. */
    int logfd = a->format == CLI_FORMAT_TABLE ? STDOUT_FILENO : STDERR_FILENO;
    r = daytona_snapshot_follow_logs(c, p.name, on_build_log, &logfd, &e);
    if (r < 0) {
        /* No log is no reason to fail the build: say so and go on waiting. */
        fprintf(stderr, "daytona: build log unavailable (%s), waiting\n",
                e && e->message ? e->message : strerror(-r));
        daytona_error_free(e);
        e = NULL;
    }
    time_t deadline = time(NULL) + SNAPSHOT_WAIT_S;
    for (;;) {
        r = daytona_snapshot_get(c, p.name, &s, &e);
        if (r < 0)
            break;
        const char *st = s->state ? s->state : "";
        if (!strcmp(st, "active"))
            break;
        if (!strcmp(st, "error") || !strcmp(st, "build_failed")) {
            r = cli_error("snapshot '%s' failed to build: %s", p.name,
                          s->error_reason ? s->error_reason : st);
            daytona_snapshot_free(s);
            daytona_client_free(c);
            return r;
        }
        daytona_snapshot_free(s);
        s = NULL;
        if (time(NULL) > deadline) {
            daytona_client_free(c);
            return cli_error("snapshot '%s' is not active after %d s", p.name, SNAPSHOT_WAIT_S);
        }
        (void) sleep(1);
    }
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get snapshot");
    if (a->format == CLI_FORMAT_TABLE)
        printf("Snapshot '%s' is active\n", p.name);
    else
        output_snapshot(a, s);
    daytona_snapshot_free(s);
    return 0;
}

static const struct cli_option snapshot_create_options[] = {
    {"image", 'i', CLI_VALUE, "IMAGE", "image to make the snapshot from"},
    {"dockerfile", 0, CLI_VALUE, "PATH", "Dockerfile to build the snapshot from"},
    {"context", 'c', CLI_VALUE, "DIR",
     "build context directory (default: the Dockerfile's)"},
    {"entrypoint", 'e', CLI_VALUE, "CMD", "entrypoint of sandboxes made from it"},
    {"cpu", 0, CLI_VALUE, "N", "CPU cores of its sandboxes"},
    {"memory", 0, CLI_VALUE, "GIB", "memory of its sandboxes, in GiB"},
    {"disk", 0, CLI_VALUE, "GIB", "disk of its sandboxes, in GiB"},
    {},
};

static const struct cli_command snapshot_create = {
    .name = "create",
    .args_usage = "NAME",
    .summary = "create a snapshot from an image or a Dockerfile",
    .description = "Streams the build log (to stderr with --format) and waits until the snapshot "
                   "is active. The local files a Dockerfile COPYs or ADDs are uploaded as build "
                   "contexts (each once: the server keeps them by content hash) and the "
                   "instructions rewritten to their absolute paths, as the SDK does.",
    .example = "daytona snapshot create py312 --image python:3.12-slim\n"
               "daytona snapshot create tools --dockerfile ./Dockerfile --entrypoint 'sleep "
               "infinity'\n"
               "daytona snapshot create app --dockerfile build/Dockerfile --context .",
    .options = snapshot_create_options,
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_snapshot_create,
};

/* ---- push ---- */

struct upload {
    int fd;
    pid_t tar_pid;
    uint64_t total; /* 0 when unknown (a directory streamed through tar) */
};

static size_t
upload_read(char *buf, size_t size, size_t nmemb, void *userdata)
{
    struct upload *u = userdata;
    ssize_t n;
    do
        n = read(u->fd, buf, size * nmemb);
    while (n < 0 && errno == EINTR);
    return n < 0 ? CURL_READFUNC_ABORT : (size_t) n;
}

static int
upload_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                curl_off_t ulnow)
{
    struct upload *u = userdata;
    cli_progress("Pushing", (uint64_t) ulnow, u->total);
    return 0;
}

static size_t
collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    char **buf = userdata;
    size_t n = size * nmemb, old = *buf ? strlen(*buf) : 0;
    if (old + n > 1024 * 1024)
        return 0;
    *buf = xrealloc(*buf, old + n + 1);
    memcpy(*buf + old, data, n);
    (*buf)[old + n] = '\0';
    return n;
}

/* Open IMAGE for upload: an archive file as is, or an OCI layout directory through `tar`. */
static int
open_image(const char *image, struct upload *u)
{
    struct stat st;

    if (stat(image, &st) < 0)
        return cli_error("'%s': %s", image, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        _cleanup_free_ char *marker = xasprintf("%s/oci-layout", image);
        _cleanup_free_ char *index = xasprintf("%s/index.json", image);
        if (access(marker, R_OK) < 0 || access(index, R_OK) < 0)
            return cli_error("'%s' is not an OCI image layout (no oci-layout or index.json)",
                             image);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return cli_error("create pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            return cli_error("fork: %s", strerror(errno));
        if (pid == 0) {
            if (dup2(p[1], STDOUT_FILENO) < 0)
                _exit(127);
            execlp("tar", "tar", "-C", image, "-cf", "-", ".", (char *) NULL);
            _exit(127);
        }
        close(p[1]);
        u->fd = p[0];
        u->tar_pid = pid;
        u->total = 0;
        return 0;
    }
    int fd = open(image, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_error("open '%s': %s", image, strerror(errno));
    unsigned char hdr[512];
    ssize_t n = read_full(fd, hdr, sizeof(hdr));
    bool tar = n == (ssize_t) sizeof(hdr) && !memcmp(hdr + 257, "ustar", 5);
    bool gz = n >= 2 && hdr[0] == 0x1f && hdr[1] == 0x8b;
    if (!tar && !gz) {
        close(fd);
        return cli_error("'%s' is neither an OCI layout directory nor an image archive "
                         "(docker save / OCI tar)",
                         image);
    }
    (void) lseek(fd, 0, SEEK_SET);
    u->fd = fd;
    u->tar_pid = 0;
    u->total = (uint64_t) st.st_size;
    return 0;
}

static int
run_snapshot_push(struct cli_args *a)
{
    const char *image = a->argv[0];
    _cleanup_free_ char *name = NULL, *url = NULL, *auth = NULL, *resp = NULL;
    struct upload u = {.fd = -EBADF};
    daytona_client *c = NULL;
    int r;

    if (cli_opt(a, "name"))
        name = xstrdup(cli_opt(a, "name"));
    else {
        /* Default name: the file or directory name without its extension. */
        _cleanup_free_ char *copy = xstrdup(image);
        size_t l = strlen(copy);
        while (l > 1 && copy[l - 1] == '/')
            copy[--l] = '\0';
        const char *base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        name = xstrndup(base, strcspn(base, "."));
    }
    if (!*name)
        return cli_usage_error(a, "cannot derive a snapshot name from '%s': use --name", image);
    r = open_image(image, &u);
    if (r)
        return r;
    r = cli_client_open(&c);
    if (r) {
        safe_close(u.fd);
        return r;
    }

    CURL *h = curl_easy_init();
    char *ename = curl_easy_escape(h, name, 0);
    url = xasprintf("%s/snapshots/push?name=%s", daytona_client_api_url(c), ename);
    curl_free(ename);
    auth = xasprintf("Authorization: Bearer %s", daytona_client_api_key(c));
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-tar");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &u);
    if (u.total)
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) u.total);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, upload_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "daytona-cli/" CLI_VERSION);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    cli_progress_done();
    u.fd = safe_close(u.fd);
    if (u.tar_pid > 0) {
        int wstatus;
        (void) waitpid(u.tar_pid, &wstatus, 0);
    }
    _cleanup_free_ char *api = xstrdup(daytona_client_api_url(c));
    daytona_client_free(c);

    /* A server without the route answers before reading the body, which curl reports as a
     * failed send: the status decides. */
    if (status == 404 || status == 405 || status == 501)
        return cli_error("snapshot push: the server at %s has no image upload route (HTTP %ld)",
                         api, status);
    if (cr != CURLE_OK && status == 0)
        return cli_error("snapshot push: %s", curl_easy_strerror(cr));
    json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
    if (status < 200 || status >= 300) {
        const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
        r = cli_error("snapshot push: %s (HTTP %ld)", msg ? msg : "upload failed", status);
        json_decref(j);
        return r;
    }
    if (a->format == CLI_FORMAT_TABLE)
        printf("Snapshot '%s' pushed\n", name);
    else if (j)
        cli_output(a, j, snapshot_fields, NULL);
    json_decref(j);
    return 0;
}

static const struct cli_option snapshot_push_options[] = {
    {"name", 'n', CLI_VALUE, "NAME", "snapshot name [the image's file name]"},
    {},
};

static const struct cli_command snapshot_push = {
    .name = "push",
    .args_usage = "IMAGE",
    .summary = "upload a local image as a snapshot",
    .description = "IMAGE is an OCI image layout directory or an image archive made by "
                   "`docker save` or an OCI tar export.",
    .example =
            "daytona snapshot push ./my-image-oci --name my-image\n"
            "docker save my-image:latest -o my-image.tar && daytona snapshot push my-image.tar",
    .options = snapshot_push_options,
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_snapshot_push,
};

/* ---- list / get / delete ---- */

static int
run_snapshot_list(struct cli_args *a)
{
    uint64_t page = 0, limit = 0;
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_snapshot_list *l = NULL;
    int r;

    if (cli_opt_u64(a, "page", &page) < 0 || cli_opt_u64(a, "limit", &limit) < 0)
        return CLI_EXIT_USAGE;
    if (page > 1000000 || limit > 1000)
        return cli_usage_error(a, "--page or --limit out of range");
    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_snapshot_list(c, (int) page, (int) limit, &l, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "list snapshots");
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, cli_json_record(l->items[i]->json));
    cli_output(a, arr, snapshot_columns, "No snapshots found.");
    json_decref(arr);
    daytona_snapshot_list_free(l);
    return 0;
}

static int
run_snapshot_get(struct cli_args *a)
{
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    struct daytona_snapshot *s = NULL;
    int r;

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_snapshot_get(c, a->argv[0], &s, &e);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get snapshot");
    output_snapshot(a, s);
    daytona_snapshot_free(s);
    return 0;
}

static int
run_snapshot_delete(struct cli_args *a)
{
    return cli_delete_each(a, "Snapshot", daytona_snapshot_delete);
}

static const struct cli_option snapshot_list_options[] = {
    {"page", 'p', CLI_VALUE, "N", "page to show, from 1"},
    {"limit", 'l', CLI_VALUE, "N", "snapshots per page"},
    {},
};

static const struct cli_command snapshot_list = {
    .name = "list",
    .summary = "list snapshots",
    .example = "daytona snapshot list\ndaytona snapshot list --page 2 --limit 10 --format json",
    .options = snapshot_list_options,
    .max_args = 0,
    .flags = CLI_CMD_FORMAT,
    .run = run_snapshot_list,
};

static const struct cli_command snapshot_get = {
    .name = "get",
    .args_usage = "SNAPSHOT",
    .summary = "show a snapshot",
    .example = "daytona snapshot get py312",
    .min_args = 1,
    .max_args = 1,
    .flags = CLI_CMD_FORMAT,
    .run = run_snapshot_get,
};

static const struct cli_command snapshot_delete = {
    .name = "delete",
    .args_usage = "SNAPSHOT...",
    .summary = "delete snapshots",
    .example = "daytona snapshot delete py312",
    .min_args = 1,
    .max_args = -1,
    .run = run_snapshot_delete,
};

static const struct cli_command *const snapshot_subcommands[] = {
    &snapshot_create, &snapshot_push, &snapshot_list, &snapshot_get, &snapshot_delete, NULL,
};

const struct cli_command cli_cmd_snapshot = {
    .name = "snapshot",
    .summary = "manage snapshots",
    .subcommands = snapshot_subcommands,
};
