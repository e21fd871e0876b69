/* SPDX-License-Identifier: Apache-2.0 */
/* Glue between the CLI and libdaytona: opening a client from the config, turning a library
 * failure into the single "daytona: <message>" line, and small parsers shared by commands. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

int
cli_fail(int r, daytona_error *e, const char *context)
{
    if (e && e->message) {
        cli_error("%s", e->message);
    } else if (context) {
        cli_error("%s: %s", context, strerror(r < 0 ? -r : r));
    } else {
        cli_error("%s", strerror(r < 0 ? -r : r));
    }
    daytona_error_free(e);
    return CLI_EXIT_FAILURE;
}

int
cli_dockerfile_context(const struct cli_args *a, struct daytona_client *c, char **dockerfile,
                       char ***hashes)
{
    const char *ctxdir = cli_opt(a, "context");
    const char *path = cli_opt(a, "dockerfile");
    _cleanup_free_ char *dir = NULL;
    char *out = NULL;
    daytona_error *e = NULL;
    int r;

    if (ctxdir) {
        dir = xstrdup(ctxdir);
    } else {
        /* Like the SDK's Image.fromDockerfile(): sources are relative to the Dockerfile. */
        const char *slash = strrchr(path, '/');
        dir = slash ? xstrndup(path, slash == path ? 1 : (size_t) (slash - path)) : xstrdup(".");
    }
    r = daytona_dockerfile_prepare(c, *dockerfile, dir, &out, hashes, &e);
    if (r < 0)
        return cli_fail(r, e, "upload the build context");
    free(*dockerfile);
    *dockerfile = out;
    return 0;
}

int
cli_client_open(daytona_client **ret)
{
    struct daytona_config cfg = {
            .profile = cli_profile,
            /* Bounds each HTTP request (a hung server must not hang the CLI forever); log follows
             * and the PTY are WebSockets outside this limit, waits are many short requests. */
            .request_timeout_ms = 10 * 60 * 1000,
            .user_agent = "daytona-cli/" CLI_VERSION,
    };
    daytona_error *e = NULL;
    int r;

    r = daytona_client_new(&cfg, ret, &e);
    if (r == -ENOKEY) {
        daytona_error_free(e);
        return cli_error("no API key: run 'daytona login --api-key KEY' or set DAYTONA_API_KEY");
    }
    if (r < 0)
        return cli_fail(r, e, "create client");
    return 0;
}

json_t *
cli_json_record(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_object();
}

int
cli_parse_double(const char *s, double *ret)
{
    char *end;
    double d;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    d = strtod(s, &end);
    if (errno || *end || !isfinite(d) || d < 0)
        return -EINVAL;
    *ret = d;
    return 0;
}

int
cli_delete_each(struct cli_args *a, const char *what,
                int (*del)(struct daytona_client *c, const char *id_or_name,
                           struct daytona_error **err))
{
    daytona_client *c = NULL;
    _cleanup_free_ char *lower = xstrdup(what);
    int r, ret = 0;

    for (char *p = lower; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    _cleanup_free_ char *context = xasprintf("delete %s", lower);
    r = cli_client_open(&c);
    if (r)
        return r;
    for (int i = 0; i < a->argc; i++) {
        daytona_error *e = NULL;
        r = del(c, a->argv[i], &e);
        if (r < 0)
            ret = cli_fail(r, e, context);
        else
            printf("%s '%s' deleted\n", what, a->argv[i]);
    }
    daytona_client_free(c);
    return ret;
}
