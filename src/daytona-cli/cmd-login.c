/* SPDX-License-Identifier: Apache-2.0 */
/* `daytona login` and `daytona logout`: profiles in $XDG_CONFIG_HOME/daytona/config.json, kept
 * through libdaytona's config-file functions (which write it 0600, atomically). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/banned.h"
#include "dt/xalloc.h"

/* Read one line from the terminal without echo. Returns a new string or NULL. */
static char *
prompt_secret(const char *prompt)
{
    struct termios old, quiet;
    char buf[512];
    bool restored = false;

    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else
        restored = true;
    char *line = fgets(buf, sizeof(buf), stdin);
    if (!restored)
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    if (!line)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? xstrdup(buf) : NULL;
}

/* Check the key against the server before storing it: one cheap authenticated GET. */
static int
verify(const char *url, const char *key)
{
    struct daytona_config cfg = {
            .api_key = key,
            .api_url = url,
            .ignore_env = true,
            .ignore_config_file = true,
            .request_timeout_ms = 30000,
            .user_agent = "daytona-cli/" CLI_VERSION,
    };
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    int r = daytona_client_new(&cfg, &c, &e);
    if (r < 0)
        return cli_fail(r, e, "login");
    r = daytona_request(c, "GET", "/sandbox?limit=1", NULL, NULL, NULL, &e);
    daytona_client_free(c);
    if (r < 0) {
        if (r == -EACCES) {
            daytona_error_free(e);
            return cli_error("login to '%s' failed: the API key was refused", url);
        }
        return cli_fail(r, e, "login");
    }
    return 0;
}

static int
run_login(struct cli_args *a)
{
    const char *url = cli_opt(a, "api-url"), *target = cli_opt(a, "target");
    const char *name = cli_opt(a, "profile") ? cli_opt(a, "profile") : cli_profile;
    _cleanup_free_ char *key = cli_opt(a, "api-key") ? xstrdup(cli_opt(a, "api-key")) : NULL;
    _cleanup_free_ char *name_copy = NULL;
    daytona_config_file *cf = NULL;
    daytona_error *e = NULL;
    struct daytona_profile old = {};
    int r;

    if (!key) {
        if (!isatty(STDIN_FILENO))
            return cli_usage_error(a, "--api-key is required when stdin is not a terminal");
        key = prompt_secret("API key: ");
        if (!key)
            return cli_error("no API key given");
    }
    r = daytona_config_file_load(NULL, &cf, &e);
    if (r < 0)
        return cli_fail(r, e, "load config");
    if (!name)
        name = daytona_config_file_active(cf);
    if (!name)
        name = "default";
    name_copy = xstrdup(name);
    if (daytona_config_file_get(cf, name_copy, &old) == 0 && !url)
        url = old.api_url;
    _cleanup_free_ char *url_copy = xstrdup(url ? url : DAYTONA_DEFAULT_API_URL);

    if (!cli_flag(a, "no-verify")) {
        r = verify(url_copy, key);
        if (r) {
            daytona_config_file_free(cf);
            return r;
        }
    }
    r = daytona_config_file_set_profile(cf, name_copy, url_copy, key, target, &e);
    if (r >= 0)
        r = daytona_config_file_set_active(cf, name_copy, &e);
    if (r >= 0)
        r = daytona_config_file_save(cf, &e);
    if (r < 0) {
        daytona_config_file_free(cf);
        return cli_fail(r, e, "save config");
    }
    printf("Logged in to %s (profile '%s', saved in %s)\n", url_copy, name_copy,
           daytona_config_file_path(cf));
    daytona_config_file_free(cf);
    return 0;
}

static const struct cli_option login_options[] = {
    {"api-key", 'k', CLI_VALUE, "KEY", "API key (prompted for on a terminal when missing)"},
    {"api-url", 'u', CLI_VALUE, "URL", "API URL [" DAYTONA_DEFAULT_API_URL "]"},
    {"profile", 'p', CLI_VALUE, "NAME", "profile to store it in [the active one, or default]"},
    {"target", 0, CLI_VALUE, "TARGET", "default target region for this profile"},
    {"no-verify", 0, CLI_FLAG, NULL, "store the key without checking it against the server"},
    {},
};

const struct cli_command cli_cmd_login = {
    .name = "login",
    .summary = "store an API key and URL in a profile",
    .description =
            "The key is checked with one request, then saved with mode 0600 in "
            "$XDG_CONFIG_HOME/daytona/config.json, and the profile becomes the active one. "
            "DAYTONA_API_KEY, DAYTONA_API_URL and DAYTONA_TARGET override the profile.",
    .example =
            "daytona login --api-key dtn_0123 --api-url http://127.0.0.1:3000/api\n"
            "daytona login --profile staging --api-key dtn_4567 --api-url https://staging/api",
    .options = login_options,
    .max_args = 0,
    .run = run_login,
};

static int
run_logout(struct cli_args *a)
{
    const char *name = cli_opt(a, "profile") ? cli_opt(a, "profile") : cli_profile;
    _cleanup_free_ char *name_copy = NULL;
    daytona_config_file *cf = NULL;
    daytona_error *e = NULL;
    int r;

    r = daytona_config_file_load(NULL, &cf, &e);
    if (r < 0)
        return cli_fail(r, e, "load config");
    if (!name)
        name = daytona_config_file_active(cf);
    if (!name) {
        daytona_config_file_free(cf);
        return cli_error("not logged in");
    }
    name_copy = xstrdup(name);
    r = daytona_config_file_remove_profile(cf, name_copy, &e);
    if (r == -ENOENT) {
        daytona_error_free(e);
        daytona_config_file_free(cf);
        return cli_error("no profile '%s'", name_copy);
    }
    if (r >= 0)
        r = daytona_config_file_save(cf, &e);
    daytona_config_file_free(cf);
    if (r < 0)
        return cli_fail(r, e, "save config");
    printf("Logged out (profile '%s' removed)\n", name_copy);
    return 0;
}

static const struct cli_option logout_options[] = {
    {"profile", 'p', CLI_VALUE, "NAME", "profile to remove [the active one]"},
    {},
};

const struct cli_command cli_cmd_logout = {
    .name = "logout",
    .summary = "remove the stored credentials of a profile",
    .example = "daytona logout\ndaytona logout --profile staging",
    .options = logout_options,
    .max_args = 0,
    .run = run_logout,
};
