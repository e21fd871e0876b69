/* SPDX-License-Identifier: Apache-2.0 */
/* Git toolbox routes on top of the git CLI: request validation and argv planning, then parsing of
 * git's machine-readable outputs (porcelain v2, NUL-separated log) and classification of its
 * error messages into the SDK's error codes. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/git.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"

#include "dt/banned.h"

/* The credential helper only answers "get"; it reads the secrets from its environment so they
 * never appear in argv (visible to every process through /proc) nor in a URL (stored in
 * .git/config by clone). The empty helper first resets any helpers configured by the user. */
#define CRED_HELPER                                                                                \
    "credential.helper=!f() { test \"$1\" = get || exit 0; "                                      \
    "test -n \"$DT_GIT_USERNAME\" && echo \"username=$DT_GIT_USERNAME\"; "                        \
    "echo \"password=$DT_GIT_PASSWORD\"; }; f"

static const struct {
    const char *method;
    const char *path;
    const char *name;
} op_table[_DT_GIT_OP_MAX] = {
    [DT_GIT_CLONE] = {"POST", "/git/clone", "clone"},
    [DT_GIT_INIT] = {"POST", "/git/init", "init"},
    [DT_GIT_STATUS] = {"GET", "/git/status", "status"},
    [DT_GIT_ADD] = {"POST", "/git/add", "add"},
    [DT_GIT_COMMIT] = {"POST", "/git/commit", "commit"},
    [DT_GIT_BRANCHES_LIST] = {"GET", "/git/branches", "branches"},
    [DT_GIT_BRANCH_CREATE] = {"POST", "/git/branches", "branch create"},
    [DT_GIT_BRANCH_DELETE] = {"DELETE", "/git/branches", "branch delete"},
    [DT_GIT_CHECKOUT] = {"POST", "/git/checkout", "checkout"},
    [DT_GIT_PUSH] = {"POST", "/git/push", "push"},
    [DT_GIT_PULL] = {"POST", "/git/pull", "pull"},
    [DT_GIT_RESET] = {"POST", "/git/reset", "reset"},
    [DT_GIT_RESTORE] = {"POST", "/git/restore", "restore"},
    [DT_GIT_REMOTE_ADD] = {"POST", "/git/remotes", "remote add"},
    [DT_GIT_REMOTES] = {"GET", "/git/remotes", "remotes"},
    [DT_GIT_CONFIG_SET] = {"POST", "/git/config", "config set"},
    [DT_GIT_CONFIG_GET] = {"GET", "/git/config", "config get"},
    [DT_GIT_CONFIG_USER] = {"POST", "/git/config/user", "config user"},
    [DT_GIT_CREDENTIALS] = {"POST", "/git/credentials", "credentials"},
    [DT_GIT_HISTORY] = {"GET", "/git/history", "history"},
};

int
dt_git_op_lookup(const char *method, const char *path, enum dt_git_op *ret)
{
    if (!method || !path)
        return -ENOENT;
    for (size_t i = 0; i < ELEMENTSOF(op_table); i++) {
        if (strcmp(op_table[i].method, method) == 0 && strcmp(op_table[i].path, path) == 0) {
            *ret = (enum dt_git_op)i;
            return 0;
        }
    }
    return -ENOENT;
}

const char *
dt_git_op_name(enum dt_git_op op)
{
    if ((unsigned)op >= _DT_GIT_OP_MAX)
        return "unknown";
    return op_table[op].name;
}

void
dt_git_plan_done(struct dt_git_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n_steps && i < DT_GIT_MAX_STEPS; i++) {
        strv_free(plan->steps[i].argv);
        strv_free(plan->steps[i].env);
        if (plan->steps[i].stdin_data) {
            /* it may hold a password */
            explicit_bzero(plan->steps[i].stdin_data, plan->steps[i].stdin_len);
            free(plan->steps[i].stdin_data);
        }
    }
    for (size_t i = 0; i < ELEMENTSOF(plan->secrets); i++)
        free(plan->secrets[i]);
    free(plan->cwd);
    memset(plan, 0, sizeof(*plan));
}

void
dt_git_error_done(struct dt_git_error *e)
{
    if (!e)
        return;
    free(e->message);
    memset(e, 0, sizeof(*e));
}

void
dt_git_error_not_installed(struct dt_git_error *e)
{
    e->status = 500;
    e->code = "INTERNAL_SERVER_ERROR";
    e->message = xstrdup("git is not installed in this sandbox's image");
}

/* ---- request fields ---------------------------------------------------------------------- */

static bool
has_ctl(const char *s, bool allow_newline)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (allow_newline && (*p == '\n' || *p == '\t' || *p == '\r'))
            continue;
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

/* A string field. Absent, null and (for optional fields) "" all give *ret = NULL. */
static int
get_str(json_t *req, const char *key, bool required, size_t max, const char **ret,
        struct dt_error **err)
{
    json_t *v = json_object_get(req, key);

    *ret = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return dt_error_set(err, EINVAL, "missing required field '%s'", key);
        return 0;
    }
    if (!json_is_string(v))
        return dt_error_set(err, EINVAL, "field '%s' must be a string", key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len)
        return dt_error_set(err, EINVAL, "field '%s' contains a NUL byte", key);
    if (len > max)
        return dt_error_set(err, EINVAL, "field '%s' is too long (%zu bytes, limit %zu)", key, len,
                            max);
    if (len == 0) {
        if (required)
            return dt_error_set(err, EINVAL, "field '%s' must not be empty", key);
        return 0;
    }
    *ret = s;
    return 0;
}

static int
get_bool(json_t *req, const char *key, bool *ret, bool *present, struct dt_error **err)
{
    json_t *v = json_object_get(req, key);

    *ret = false;
    if (present)
        *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v))
        *ret = json_is_true(v);
    else if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                                   strcmp(json_string_value(v), "1") == 0))
        *ret = true;
    else if (json_is_string(v) && (strcmp(json_string_value(v), "false") == 0 ||
                                   strcmp(json_string_value(v), "0") == 0 ||
                                   json_string_length(v) == 0))
        *ret = false;
    else
        return dt_error_set(err, EINVAL, "field '%s' must be a boolean", key);
    if (present)
        *present = true;
    return 0;
}

static int
get_uint(json_t *req, const char *key, uint64_t max, uint64_t *ret, struct dt_error **err)
{
    json_t *v = json_object_get(req, key);

    *ret = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ret = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (json_string_length(v) > 0 && parse_u64(json_string_value(v), ret) < 0)
            return dt_error_set(err, EINVAL, "field '%s' must be a non-negative integer", key);
    } else {
        return dt_error_set(err, EINVAL, "field '%s' must be a non-negative integer", key);
    }
    if (*ret > max)
        return dt_error_set(err, EINVAL, "field '%s' is too large (limit %llu)", key,
                            (unsigned long long)max);
    return 0;
}

/* A ref, revision or remote name: git would read a leading '-' as an option, and control
 * characters or spaces are never part of a valid one. */
static int
check_name(const char *key, const char *s, struct dt_error **err)
{
    if (!s)
        return 0;
    if (s[0] == '-')
        return dt_error_set(err, EINVAL, "field '%s' must not start with '-': %s", key, s);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return dt_error_set(err, EINVAL, "field '%s' contains a space or control character",
                                key);
    return 0;
}

static bool
has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Only transports that do not run local commands: "ext::" (runs a shell command) and friends
 * are refused, and a leading '-' could turn the URL into an option of ssh. */
static int
check_url(const char *s, struct dt_error **err)
{
    static const char *const schemes[] = {"https://", "http://", "ssh://", "git://", "file://"};

    if (has_ctl(s, false) || strchr(s, ' '))
        return dt_error_set(err, EINVAL, "field 'url' contains a space or control character");
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++) {
        size_t n = strlen(schemes[i]);
        if (has_prefix_ci(s, schemes[i])) {
            if (s[n] == '\0' || s[n] == '-')
                return dt_error_set(err, EINVAL, "invalid url: %s", s);
            return 0;
        }
    }
    /* scp-like user@host:path */
    const char *at = strchr(s, '@');
    const char *colon = strchr(s, ':');
    if (at && colon && at < colon && at > s && colon > at + 1 && colon[1] != '\0' && s[0] != '-' &&
        at[1] != '-') {
        bool ok = true;
        for (const char *p = s; p < at; p++)
            if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
                ok = false;
        for (const char *p = at + 1; p < colon; p++)
            if (!isalnum((unsigned char)*p) && !strchr(".-", *p))
                ok = false;
        if (ok)
            return 0;
    }
    return dt_error_set(err, EINVAL,
                        "unsupported url '%s': use https://, http://, ssh://, git://, file:// or "
                        "user@host:path",
                        s);
}

static char *
resolve_path(const char *workdir, const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    if (strcmp(p, ".") == 0)
        return xstrdup(workdir);
    size_t wl = strlen(workdir);
    while (wl > 1 && workdir[wl - 1] == '/')
        wl--;
    if (wl == 1 && workdir[0] == '/')
        wl = 0;
    return xasprintf("%.*s/%s", (int)wl, workdir, p);
}

/* The repository path (required except where noted), made absolute. */
static int
get_path(json_t *req, const char *workdir, bool required, char **ret, struct dt_error **err)
{
    const char *p;
    int r = get_str(req, "path", required, 4096, &p, err);
    if (r < 0)
        return r;
    *ret = resolve_path(workdir, p ? p : ".");
    return 0;
}

static int
get_files(json_t *req, bool required, char ***ret, struct dt_error **err)
{
    json_t *v = json_object_get(req, "files");
    _cleanup_strv_free_ char **files = NULL;

    *ret = NULL;
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0)) {
        if (required)
            return dt_error_set(err, EINVAL, "field 'files' must list at least one path");
        return 0;
    }
    if (!json_is_array(v))
        return dt_error_set(err, EINVAL, "field 'files' must be an array of strings");
    if (json_array_size(v) > DT_GIT_MAX_FILES)
        return dt_error_set(err, EINVAL, "field 'files' has too many entries (limit %u)",
                            DT_GIT_MAX_FILES);
    size_t i;
    json_t *f;
    json_array_foreach(v, i, f) {
        if (!json_is_string(f) || json_string_length(f) == 0 ||
            strlen(json_string_value(f)) != json_string_length(f) ||
            json_string_length(f) > 4096)
            return dt_error_set(err, EINVAL,
                                "field 'files' entry %zu must be a non-empty path (at most 4096 "
                                "bytes)",
                                i);
        strv_push(&files, json_string_value(f));
    }
    *ret = TAKE_PTR(files);
    return 0;
}

/* ---- plan building ----------------------------------------------------------------------- */

static struct dt_git_step *
new_step(struct dt_git_plan *plan, const char *repo, bool paths)
{
    DT_ASSERT(plan->n_steps < DT_GIT_MAX_STEPS);
    struct dt_git_step *s = &plan->steps[plan->n_steps++];

    strv_push(&s->argv, "git");
    if (paths) {
        /* raw UTF-8 paths instead of "\303\251"-quoted ones */
        strv_push(&s->argv, "-c");
        strv_push(&s->argv, "core.quotePath=false");
    }
    if (repo) {
        strv_push(&s->argv, "-C");
        strv_push(&s->argv, repo);
    }
    strv_push(&s->env, "GIT_TERMINAL_PROMPT=0");
    strv_push(&s->env, "LC_ALL=C"); /* error classification matches English messages */
    strv_push(&s->env, "GIT_EDITOR=:");  /* never wait for an editor (merge messages) */
    strv_push(&s->env, "GIT_PAGER=cat");
    return s;
}

/* Push PREFIX followed by ARG as one element ("--branch=" "x"). */
static void
push_cat(char ***v, const char *prefix, const char *arg)
{
    _cleanup_free_ char *s = xasprintf("%s%s", prefix, arg);
    strv_push(v, s);
}

/* Credentials for clone/push/pull: options that must come before the subcommand. */
static int
add_auth(struct dt_git_plan *plan, struct dt_git_step *s, json_t *req, struct dt_error **err)
{
    const char *user, *pass;
    int r;

    if ((r = get_str(req, "username", false, 1024, &user, err)) < 0 ||
        (r = get_str(req, "password", false, DT_GIT_MAX_ARG, &pass, err)) < 0)
        return r;
    if (!user && !pass)
        return 0;
    if ((user && has_ctl(user, false)) || (pass && has_ctl(pass, false)))
        return dt_error_set(err, EINVAL, "username and password must not contain control "
                                         "characters");
    strv_push(&s->argv, "-c");
    strv_push(&s->argv, "credential.helper=");
    strv_push(&s->argv, "-c");
    strv_push(&s->argv, CRED_HELPER);
    push_cat(&s->env, "DT_GIT_USERNAME=", user ? user : "");
    push_cat(&s->env, "DT_GIT_PASSWORD=", pass ? pass : "");
    plan->secrets[0] = user ? xstrdup(user) : NULL;
    plan->secrets[1] = pass ? xstrdup(pass) : NULL;
    return 0;
}

static int
plan_clone(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    const char *url, *branch, *commit;
    _cleanup_free_ char *path = NULL;
    bool insecure;
    uint64_t depth;
    int r;

    if ((r = get_str(req, "url", true, DT_GIT_MAX_ARG, &url, err)) < 0 ||
        (r = check_url(url, err)) < 0 || (r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, "branch", false, 1024, &branch, err)) < 0 ||
        (r = check_name("branch", branch, err)) < 0 ||
        (r = get_str(req, "commit_id", false, 1024, &commit, err)) < 0 ||
        (r = check_name("commit_id", commit, err)) < 0 ||
        (r = get_bool(req, "insecure_skip_tls", &insecure, NULL, err)) < 0 ||
        (r = get_uint(req, "depth", INT32_MAX, &depth, err)) < 0)
        return r;

    struct dt_git_step *s = new_step(plan, NULL, true);
    if (insecure) {
        strv_push(&s->argv, "-c");
        strv_push(&s->argv, "http.sslVerify=false");
    }
    if ((r = add_auth(plan, s, req, err)) < 0)
        return r;
    strv_push(&s->argv, "clone");
    if (branch)
        push_cat(&s->argv, "--branch=", branch);
    if (depth > 0) {
        char buf[DECIMAL_STR_MAX(uint64_t)];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)depth);
        push_cat(&s->argv, "--depth=", buf);
    }
    strv_push(&s->argv, "--");
    strv_push(&s->argv, url);
    strv_push(&s->argv, path);
    if (commit) {
        s = new_step(plan, path, false);
        strv_push(&s->argv, "checkout");
        strv_push(&s->argv, "--detach");
        strv_push(&s->argv, commit);
        strv_push(&s->argv, "--");
    }
    return 0;
}

static int
plan_init(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    const char *branch;
    bool bare;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_bool(req, "bare", &bare, NULL, err)) < 0 ||
        (r = get_str(req, "initial_branch", false, 1024, &branch, err)) < 0 ||
        (r = check_name("initial_branch", branch, err)) < 0)
        return r;
    struct dt_git_step *s = new_step(plan, NULL, false);
    strv_push(&s->argv, "init");
    strv_push(&s->argv, "--quiet");
    if (bare)
        strv_push(&s->argv, "--bare");
    if (branch)
        push_cat(&s->argv, "--initial-branch=", branch);
    strv_push(&s->argv, "--");
    strv_push(&s->argv, path);
    return 0;
}

/* The ops that only need the repository path. */
static int
plan_simple(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    int r = get_path(req, workdir, true, &path, err);
    if (r < 0)
        return r;

    struct dt_git_step *s;
    switch (plan->op) {
    case DT_GIT_STATUS:
        s = new_step(plan, path, true);
        /* status must not take the index lock: concurrent commands would fail on it */
        strv_push(&s->env, "GIT_OPTIONAL_LOCKS=0");
        strv_push(&s->argv, "status");
        strv_push(&s->argv, "--porcelain=v2");
        strv_push(&s->argv, "--branch");
        strv_push(&s->argv, "--untracked-files=all");
        strv_push(&s->argv, "-z");
        break;
    case DT_GIT_BRANCHES_LIST:
        s = new_step(plan, path, false);
        strv_push(&s->argv, "for-each-ref");
        strv_push(&s->argv, "--format=%(HEAD)%(refname:short)");
        strv_push(&s->argv, "refs/heads/");
        /* the current branch of a repository without commits has no ref yet */
        s = new_step(plan, path, false);
        s->ok_to_fail = true;
        strv_push(&s->argv, "symbolic-ref");
        strv_push(&s->argv, "--quiet");
        strv_push(&s->argv, "--short");
        strv_push(&s->argv, "HEAD");
        break;
    case DT_GIT_REMOTES:
        s = new_step(plan, path, false);
        strv_push(&s->argv, "remote");
        strv_push(&s->argv, "-v");
        break;
    case DT_GIT_HISTORY: {
        char buf[64];
        s = new_step(plan, path, false);
        strv_push(&s->argv, "log");
        strv_push(&s->argv, "-z");
        snprintf(buf, sizeof(buf), "--max-count=%u", DT_GIT_MAX_HISTORY);
        strv_push(&s->argv, buf);
        strv_push(&s->argv, "--format=%H%x00%an%x00%ae%x00%aI%x00%B");
        break;
    }
    default:
        DT_BUG("not a simple op");
    }
    return 0;
}

static int
plan_add(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_strv_free_ char **files = NULL;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_files(req, true, &files, err)) < 0)
        return r;
    struct dt_git_step *s = new_step(plan, path, true);
    strv_push(&s->argv, "add");
    strv_push(&s->argv, "--");
    for (char **f = files; *f; f++)
        strv_push(&s->argv, *f);
    return 0;
}

static int
check_ident(const char *key, const char *s, struct dt_error **err)
{
    if (s && (has_ctl(s, false) || strpbrk(s, "<>")))
        return dt_error_set(err, EINVAL, "field '%s' must not contain '<', '>' or control "
                                         "characters", key);
    return 0;
}

static int
plan_commit(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    const char *msg, *author, *email;
    bool allow_empty;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, "message", true, DT_GIT_MAX_MESSAGE, &msg, err)) < 0 ||
        (r = get_str(req, "author", false, 1024, &author, err)) < 0 ||
        (r = get_str(req, "email", false, 1024, &email, err)) < 0 ||
        (r = check_ident("author", author, err)) < 0 ||
        (r = check_ident("email", email, err)) < 0 ||
        (r = get_bool(req, "allow_empty", &allow_empty, NULL, err)) < 0)
        return r;
    if (!author != !email)
        return dt_error_set(err, EINVAL, "fields 'author' and 'email' go together");

    struct dt_git_step *s = new_step(plan, path, true);
    strv_push(&s->argv, "commit");
    strv_push(&s->argv, "--quiet");
    /* one argv element: a message starting with '-' cannot be mistaken for an option */
    push_cat(&s->argv, "--message=", msg);
    if (allow_empty)
        strv_push(&s->argv, "--allow-empty");
    if (author) {
        _cleanup_free_ char *a = xasprintf("--author=%s <%s>", author, email);
        strv_push(&s->argv, a);
        push_cat(&s->env, "GIT_COMMITTER_NAME=", author);
        push_cat(&s->env, "GIT_COMMITTER_EMAIL=", email);
    }
    s = new_step(plan, path, false);
    strv_push(&s->argv, "rev-parse");
    strv_push(&s->argv, "--verify");
    strv_push(&s->argv, "HEAD");
    return 0;
}

static int
plan_branch(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    const char *name;
    const char *key = plan->op == DT_GIT_CHECKOUT ? "branch" : "name";
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, key, true, 1024, &name, err)) < 0 ||
        (r = check_name(key, name, err)) < 0)
        return r;
    struct dt_git_step *s = new_step(plan, path, true);
    switch (plan->op) {
    case DT_GIT_BRANCH_CREATE:
        /* Daytona's daemon creates the branch and switches to it */
        strv_push(&s->argv, "checkout");
        strv_push(&s->argv, "--quiet");
        strv_push(&s->argv, "-b");
        strv_push(&s->argv, name);
        break;
    case DT_GIT_BRANCH_DELETE:
        /* like go-git's reference removal: no "not fully merged" refusal */
        strv_push(&s->argv, "branch");
        strv_push(&s->argv, "-D");
        strv_push(&s->argv, "--");
        strv_push(&s->argv, name);
        break;
    case DT_GIT_CHECKOUT:
        /* no "--": a name that is only a remote branch must still be guessed (DWIM), and
         * check_name() has ruled out options */
        strv_push(&s->argv, "checkout");
        strv_push(&s->argv, "--quiet");
        strv_push(&s->argv, name);
        break;
    default:
        DT_BUG("not a branch op");
    }
    return 0;
}

static int
plan_sync(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    const char *branch, *remote;
    bool upstream = false;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, "branch", false, 1024, &branch, err)) < 0 ||
        (r = check_name("branch", branch, err)) < 0 ||
        (r = get_str(req, "remote", false, 1024, &remote, err)) < 0 ||
        (r = check_name("remote", remote, err)) < 0)
        return r;
    if (plan->op == DT_GIT_PUSH && (r = get_bool(req, "set_upstream", &upstream, NULL, err)) < 0)
        return r;

    struct dt_git_step *s = new_step(plan, NULL, false);
    if ((r = add_auth(plan, s, req, err)) < 0)
        return r;
    strv_push(&s->argv, "-C");
    strv_push(&s->argv, path);
    if (plan->op == DT_GIT_PUSH) {
        strv_push(&s->argv, "push");
        if (upstream)
            strv_push(&s->argv, "--set-upstream");
    } else {
        strv_push(&s->argv, "pull");
        strv_push(&s->argv, "--no-rebase");
        strv_push(&s->argv, "--no-edit");
    }
    if (remote || branch || upstream) {
        strv_push(&s->argv, remote ? remote : "origin");
        if (branch)
            strv_push(&s->argv, branch);
        else if (upstream)
            strv_push(&s->argv, "HEAD");
    }
    return 0;
}

static int
plan_reset(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    static const char *const modes[] = {"soft", "mixed", "hard", "merge", "keep"};
    _cleanup_free_ char *path = NULL;
    _cleanup_strv_free_ char **files = NULL;
    const char *mode, *target;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, "mode", false, 16, &mode, err)) < 0 ||
        (r = get_str(req, "target", false, 1024, &target, err)) < 0 ||
        (r = check_name("target", target, err)) < 0 ||
        (r = get_files(req, false, &files, err)) < 0)
        return r;
    bool known = !mode;
    for (size_t i = 0; mode && i < ELEMENTSOF(modes); i++)
        known = known || strcmp(mode, modes[i]) == 0;
    if (!known)
        return dt_error_set(err, EINVAL,
                            "unsupported reset mode '%s' (supported: soft, mixed, hard, merge, "
                            "keep)",
                            mode);
    struct dt_git_step *s = new_step(plan, path, true);
    strv_push(&s->argv, "reset");
    strv_push(&s->argv, "--quiet");
    /* with paths, git only does (and warns about an explicit) mixed */
    if (mode && !(files && strcmp(mode, "mixed") == 0))
        push_cat(&s->argv, "--", mode);
    if (target)
        strv_push(&s->argv, target);
    strv_push(&s->argv, "--");
    for (char **f = files; f && *f; f++)
        strv_push(&s->argv, *f);
    return 0;
}

static int
plan_restore(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_strv_free_ char **files = NULL;
    const char *source;
    bool staged, worktree, has_staged, has_worktree;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_files(req, true, &files, err)) < 0 ||
        (r = get_str(req, "source", false, 1024, &source, err)) < 0 ||
        (r = check_name("source", source, err)) < 0 ||
        (r = get_bool(req, "staged", &staged, &has_staged, err)) < 0 ||
        (r = get_bool(req, "worktree", &worktree, &has_worktree, err)) < 0)
        return r;
    /* Daytona's defaults: neither given means the worktree only, as for `git restore` */
    if (!has_staged && !has_worktree)
        worktree = true;
    if (!staged && !worktree)
        return dt_error_set(err, EINVAL, "at least one of 'staged' and 'worktree' must be true");

    struct dt_git_step *s = new_step(plan, path, true);
    strv_push(&s->argv, "restore");
    if (source)
        push_cat(&s->argv, "--source=", source);
    if (staged)
        strv_push(&s->argv, "--staged");
    if (worktree)
        strv_push(&s->argv, "--worktree");
    strv_push(&s->argv, "--");
    for (char **f = files; *f; f++)
        strv_push(&s->argv, *f);
    return 0;
}

static int
plan_remote_add(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    const char *name, *url;
    bool fetch, overwrite;
    int r;

    if ((r = get_path(req, workdir, true, &path, err)) < 0 ||
        (r = get_str(req, "name", true, 1024, &name, err)) < 0 ||
        (r = check_name("name", name, err)) < 0 ||
        (r = get_str(req, "url", true, DT_GIT_MAX_ARG, &url, err)) < 0 ||
        (r = check_url(url, err)) < 0 || (r = get_bool(req, "fetch", &fetch, NULL, err)) < 0 ||
        (r = get_bool(req, "overwrite", &overwrite, NULL, err)) < 0)
        return r;
    struct dt_git_step *s;
    if (overwrite) {
        s = new_step(plan, path, false);
        s->ok_to_fail = true; /* there may be nothing to remove */
        strv_push(&s->argv, "remote");
        strv_push(&s->argv, "remove");
        strv_push(&s->argv, name);
    }
    s = new_step(plan, path, false);
    strv_push(&s->argv, "remote");
    strv_push(&s->argv, "add");
    if (fetch)
        strv_push(&s->argv, "--fetch");
    strv_push(&s->argv, "--");
    strv_push(&s->argv, name);
    strv_push(&s->argv, url);
    return 0;
}

/* scope + optional path, shared by the config routes */
static int
get_scope(json_t *req, const char *workdir, const char **ret_flag, char **ret_repo,
          struct dt_error **err)
{
    const char *scope;
    int r;

    *ret_repo = NULL;
    if ((r = get_str(req, "scope", false, 16, &scope, err)) < 0)
        return r;
    if (!scope || strcmp(scope, "global") == 0)
        *ret_flag = "--global";
    else if (strcmp(scope, "local") == 0)
        *ret_flag = "--local";
    else if (strcmp(scope, "system") == 0)
        *ret_flag = "--system";
    else
        return dt_error_set(err, EINVAL, "unsupported config scope '%s' (global, local, system)",
                            scope);
    /* the path only matters for local scope, and defaults to the work dir there */
    if (strcmp(*ret_flag, "--local") == 0)
        return get_path(req, workdir, false, ret_repo, err);
    return 0;
}

static int
check_key(const char *key, struct dt_error **err)
{
    if (key[0] == '-' || has_ctl(key, false) || !strchr(key, '.'))
        return dt_error_set(err, EINVAL, "invalid config key '%s' (expected section.name)", key);
    return 0;
}

static void
push_config(struct dt_git_plan *plan, const char *flag, const char *repo, const char *key,
            const char *value)
{
    struct dt_git_step *s = new_step(plan, repo, false);
    strv_push(&s->argv, "config");
    strv_push(&s->argv, flag);
    strv_push(&s->argv, "--");
    strv_push(&s->argv, key);
    strv_push(&s->argv, value);
}

static int
plan_config(struct dt_git_plan *plan, json_t *req, const char *workdir, struct dt_error **err)
{
    _cleanup_free_ char *repo = NULL;
    const char *flag, *key, *value, *name, *email;
    int r;

    if ((r = get_scope(req, workdir, &flag, &repo, err)) < 0)
        return r;
    switch (plan->op) {
    case DT_GIT_CONFIG_SET:
        if ((r = get_str(req, "key", true, 1024, &key, err)) < 0 || (r = check_key(key, err)) < 0)
            return r;
        /* "" is a legitimate value */
        if (!json_is_string(json_object_get(req, "value")))
            return dt_error_set(err, EINVAL, "field 'value' must be a string");
        if ((r = get_str(req, "value", false, DT_GIT_MAX_ARG, &value, err)) < 0)
            return r;
        if (value && has_ctl(value, false))
            return dt_error_set(err, EINVAL, "field 'value' contains a control character");
        push_config(plan, flag, repo, key, value ? value : "");
        break;
    case DT_GIT_CONFIG_GET: {
        if ((r = get_str(req, "key", true, 1024, &key, err)) < 0 || (r = check_key(key, err)) < 0)
            return r;
        struct dt_git_step *s = new_step(plan, repo, false);
        s->ok_to_fail = true; /* exit 1: the key is unset */
        strv_push(&s->argv, "config");
        strv_push(&s->argv, flag);
        strv_push(&s->argv, "--get");
        strv_push(&s->argv, "--");
        strv_push(&s->argv, key);
        break;
    }
    case DT_GIT_CONFIG_USER:
        if ((r = get_str(req, "name", true, 1024, &name, err)) < 0 ||
            (r = get_str(req, "email", true, 1024, &email, err)) < 0 ||
            (r = check_ident("name", name, err)) < 0 || (r = check_ident("email", email, err)) < 0)
            return r;
        push_config(plan, flag, repo, "user.name", name);
        push_config(plan, flag, repo, "user.email", email);
        break;
    default:
        DT_BUG("not a config op");
    }
    return 0;
}

static int
plan_credentials(struct dt_git_plan *plan, json_t *req, struct dt_error **err)
{
    const char *user, *pass, *host, *proto;
    int r;

    if ((r = get_str(req, "username", true, 1024, &user, err)) < 0 ||
        (r = get_str(req, "password", true, DT_GIT_MAX_ARG, &pass, err)) < 0 ||
        (r = get_str(req, "host", false, 255, &host, err)) < 0 ||
        (r = get_str(req, "protocol", false, 16, &proto, err)) < 0)
        return r;
    /* Daytona's defaults */
    host = host ? host : "github.com";
    proto = proto ? proto : "https";
    /* the credential protocol is line-based: a newline would inject attributes */
    if (has_ctl(user, false) || has_ctl(pass, false))
        return dt_error_set(err, EINVAL, "username and password must not contain control "
                                         "characters");
    if (has_ctl(host, false) || strpbrk(host, "/ "))
        return dt_error_set(err, EINVAL, "invalid host '%s'", host);
    for (const char *p = proto; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && !strchr("+.-", *p))
            return dt_error_set(err, EINVAL, "invalid protocol '%s'", proto);

    push_config(plan, "--global", NULL, "credential.helper", "store");
    struct dt_git_step *s = new_step(plan, NULL, false);
    strv_push(&s->argv, "credential");
    strv_push(&s->argv, "approve");
    s->stdin_data = xasprintf("protocol=%s\nhost=%s\nusername=%s\npassword=%s\n\n", proto, host,
                              user, pass);
    s->stdin_len = strlen(s->stdin_data);
    plan->secrets[0] = xstrdup(user);
    plan->secrets[1] = xstrdup(pass);
    return 0;
}

int
dt_git_plan(enum dt_git_op op, json_t *req, const char *workdir, struct dt_git_plan *ret,
            struct dt_error **err)
{
    int r;

    memset(ret, 0, sizeof(*ret));
    if ((unsigned)op >= _DT_GIT_OP_MAX)
        return dt_error_set(err, EINVAL, "unknown git operation %d", (int)op);
    if (!json_is_object(req))
        return dt_error_set(err, EINVAL, "git %s: the request must be a JSON object",
                            dt_git_op_name(op));
    if (!workdir || workdir[0] != '/')
        workdir = "/";
    ret->op = op;
    ret->cwd = xstrdup(workdir);

    switch (op) {
    case DT_GIT_CLONE:
        r = plan_clone(ret, req, workdir, err);
        break;
    case DT_GIT_INIT:
        r = plan_init(ret, req, workdir, err);
        break;
    case DT_GIT_STATUS:
    case DT_GIT_BRANCHES_LIST:
    case DT_GIT_REMOTES:
    case DT_GIT_HISTORY:
        r = plan_simple(ret, req, workdir, err);
        break;
    case DT_GIT_ADD:
        r = plan_add(ret, req, workdir, err);
        break;
    case DT_GIT_COMMIT:
        r = plan_commit(ret, req, workdir, err);
        break;
    case DT_GIT_BRANCH_CREATE:
    case DT_GIT_BRANCH_DELETE:
    case DT_GIT_CHECKOUT:
        r = plan_branch(ret, req, workdir, err);
        break;
    case DT_GIT_PUSH:
    case DT_GIT_PULL:
        r = plan_sync(ret, req, workdir, err);
        break;
    case DT_GIT_RESET:
        r = plan_reset(ret, req, workdir, err);
        break;
    case DT_GIT_RESTORE:
        r = plan_restore(ret, req, workdir, err);
        break;
    case DT_GIT_REMOTE_ADD:
        r = plan_remote_add(ret, req, workdir, err);
        break;
    case DT_GIT_CONFIG_SET:
    case DT_GIT_CONFIG_GET:
    case DT_GIT_CONFIG_USER:
        r = plan_config(ret, req, workdir, err);
        break;
    case DT_GIT_CREDENTIALS:
        r = plan_credentials(ret, req, err);
        break;
    default:
        r = dt_error_set(err, EINVAL, "unknown git operation");
        break;
    }
    for (size_t i = 0; r >= 0 && i < ret->n_steps; i++) {
        size_t total = 0;
        for (char **a = ret->steps[i].argv; *a; a++)
            total += strlen(*a) + 1;
        if (total > DT_GIT_MAX_ARGV)
            r = dt_error_set(err, EINVAL, "git %s: the request is too large (%zu bytes of "
                                          "arguments, limit %u)",
                             dt_git_op_name(op), total, DT_GIT_MAX_ARGV);
    }
    if (r < 0) {
        dt_git_plan_done(ret);
        if (err && *err)
            dt_error_wrap(err, "git %s", dt_git_op_name(op));
        return r;
    }
    return 0;
}

/* ---- results ----------------------------------------------------------------------------- */

static bool
has_secret(const struct dt_git_plan *plan, size_t i)
{
    return plan->secrets[i] && plan->secrets[i][0];
}

/* Replace every occurrence of each secret in S by "***". */
static char *
redact(const struct dt_git_plan *plan, char *s)
{
    for (size_t i = 0; i < ELEMENTSOF(plan->secrets); i++) {
        if (!has_secret(plan, i))
            continue;
        const char *sec = plan->secrets[i];
        size_t sl = strlen(sec);
        char *hit;
        size_t from = 0;
        while ((hit = strstr(s + from, sec))) {
            size_t off = (size_t)(hit - s);
            char *n = xasprintf("%.*s***%s", (int)off, s, hit + sl);
            free(s);
            s = n;
            from = off + 3;
        }
    }
    return s;
}

/* The last few meaningful lines of git's output ("hint:" lines dropped), printable only. */
static char *
tail_lines(const char *buf, size_t len)
{
    enum { MAX_LINES = 4, MAX_BYTES = 1024 };
    const char *starts[MAX_LINES];
    size_t lens[MAX_LINES];
    size_t n = 0;
    size_t end = len;

    while (end > 0 && n < MAX_LINES) {
        size_t b = end;
        while (b > 0 && buf[b - 1] != '\n')
            b--;
        size_t l = end - b;
        while (l > 0 && (buf[b + l - 1] == '\r' || buf[b + l - 1] == ' '))
            l--;
        if (l > 0 && !(l >= 5 && memcmp(buf + b, "hint:", 5) == 0)) {
            starts[n] = buf + b;
            lens[n] = l;
            n++;
        }
        end = b > 0 ? b - 1 : 0;
    }
    char *out = xmalloc(MAX_BYTES + 1);
    size_t o = 0;
    for (size_t k = n; k-- > 0;) {
        for (size_t j = 0; j < lens[k] && o < MAX_BYTES; j++) {
            unsigned char c = (unsigned char)starts[k][j];
            out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        }
        if (k > 0 && o < MAX_BYTES)
            out[o++] = '\n';
    }
    out[o] = '\0';
    return out;
}

/* Case-insensitive search in a bounded buffer. */
static bool
mem_has(const char *buf, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl > len)
        return false;
    for (size_t i = 0; i + nl <= len; i++)
        if (strncasecmp(buf + i, needle, nl) == 0)
            return true;
    return false;
}

struct pattern {
    const char *needle;
    int status;
    const char *code;
};

void
dt_git_classify(const struct dt_git_plan *plan, const struct dt_git_output *o,
                struct dt_git_error *e)
{
    static const struct pattern patterns[] = {
        /* before "[rejected]" and the auth patterns: a hook said no */
        {"[remote rejected]", 422, "GIT_REMOTE_REJECTED"},
        {"pre-receive hook declined", 422, "GIT_REMOTE_REJECTED"},
        {"authentication failed", 401, "GIT_AUTH_FAILED"},
        {"invalid username or password", 401, "GIT_AUTH_FAILED"},
        {"could not read username", 401, "GIT_AUTH_FAILED"},
        {"could not read password", 401, "GIT_AUTH_FAILED"},
        {"terminal prompts disabled", 401, "GIT_AUTH_FAILED"},
        {"permission denied (publickey", 401, "GIT_AUTH_FAILED"},
        {"the requested url returned error: 401", 401, "GIT_AUTH_FAILED"},
        {"the requested url returned error: 403", 403, "FORBIDDEN"},
        {"repository not found", 404, "GIT_REPO_NOT_FOUND"},
        {"the requested url returned error: 404", 404, "GIT_REPO_NOT_FOUND"},
        {"does not appear to be a git repository", 404, "GIT_REPO_NOT_FOUND"},
        {"not a git repository", 404, "GIT_REPO_NOT_FOUND"},
        {"cannot change to", 404, "GIT_REPO_NOT_FOUND"},
        {"fatal: repository '", 404, "GIT_REPO_NOT_FOUND"}, /* '...' does not exist */
        {"' not found", 404, "GIT_BRANCH_NOT_FOUND"},   /* branch -D: "branch 'x' not found." */
        {"remote branch", 404, "GIT_BRANCH_NOT_FOUND"},  /* clone --branch: "... not found in" */
        {"couldn't find remote ref", 404, "GIT_BRANCH_NOT_FOUND"},
        {"src refspec", 404, "GIT_BRANCH_NOT_FOUND"},
        {"you are not currently on a branch", 404, "GIT_BRANCH_NOT_FOUND"},
        {"did not match any file(s) known to git", 404, "GIT_BRANCH_NOT_FOUND"},
        {"invalid reference", 404, "GIT_BRANCH_NOT_FOUND"},
        {"unknown revision", 404, "GIT_BRANCH_NOT_FOUND"},
        {"not a valid object name", 404, "GIT_BRANCH_NOT_FOUND"},
        {"no such remote", 404, "NOT_FOUND"},
        {"[rejected]", 409, "GIT_PUSH_REJECTED"},
        {"non-fast-forward", 409, "GIT_PUSH_REJECTED"},
        {"updates were rejected", 409, "GIT_PUSH_REJECTED"},
        {"stale info", 409, "GIT_PUSH_REJECTED"},
        {"would be overwritten", 409, "GIT_DIRTY_WORKTREE"},
        {"please commit your changes or stash them", 409, "GIT_DIRTY_WORKTREE"},
        {"conflict (", 409, "GIT_MERGE_CONFLICT"},
        {"automatic merge failed", 409, "GIT_MERGE_CONFLICT"},
        {"you have unmerged paths", 409, "GIT_MERGE_CONFLICT"},
        {"needs merge", 409, "GIT_MERGE_CONFLICT"},
        {"is unmerged", 409, "GIT_MERGE_CONFLICT"},
        {"already exists", 409, "CONFLICT"}, /* refined to GIT_BRANCH_EXISTS below */
        {"could not resolve host", 502, "GIT_TRANSPORT_FAILED"},
        {"unable to access", 502, "GIT_TRANSPORT_FAILED"},
        {"could not resolve hostname", 502, "GIT_TRANSPORT_FAILED"},
        {"connection refused", 502, "GIT_TRANSPORT_FAILED"},
        {"connection timed out", 502, "GIT_TRANSPORT_FAILED"},
        {"failed to connect", 502, "GIT_TRANSPORT_FAILED"},
        {"ssl certificate problem", 502, "GIT_TRANSPORT_FAILED"},
        {"the remote end hung up unexpectedly", 502, "GIT_TRANSPORT_FAILED"},
        {"could not read from remote repository", 502, "GIT_TRANSPORT_FAILED"},
        {"early eof", 502, "GIT_TRANSPORT_FAILED"},
        /* no tty to accept an unknown ssh host key on */
        {"host key verification failed", 502, "GIT_TRANSPORT_FAILED"},
    };
    const char *err = o->err ? o->err : "";
    size_t err_len = o->err ? o->err_len : 0;
    const char *out = o->out ? o->out : "";
    size_t out_len = o->out ? o->out_len : 0;

    /* only the tails matter, and scanning is quadratic-ish in the needle count */
    if (err_len > DT_GIT_MAX_STDERR) {
        err += err_len - DT_GIT_MAX_STDERR;
        err_len = DT_GIT_MAX_STDERR;
    }
    if (out_len > DT_GIT_MAX_STDERR) {
        out += out_len - DT_GIT_MAX_STDERR;
        out_len = DT_GIT_MAX_STDERR;
    }

    e->status = 400;
    e->code = "BAD_REQUEST";
    for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
        if (mem_has(err, err_len, patterns[i].needle) ||
            mem_has(out, out_len, patterns[i].needle)) {
            e->status = patterns[i].status;
            e->code = patterns[i].code;
            break;
        }
    }
    /* "pathspec 'x' did not match" from add/restore/reset names a file, not a branch */
    if (strcmp(e->code, "GIT_BRANCH_NOT_FOUND") == 0 &&
        (plan->op == DT_GIT_ADD || plan->op == DT_GIT_RESTORE ||
         (plan->op == DT_GIT_RESET && mem_has(err, err_len, "pathspec")))) {
        e->status = 404;
        e->code = "FILE_NOT_FOUND";
    }
    if (strcmp(e->code, "CONFLICT") == 0 && plan->op == DT_GIT_BRANCH_CREATE &&
        mem_has(err, err_len, "a branch named"))
        e->code = "GIT_BRANCH_EXISTS";

    /* git writes merge conflicts and "nothing to commit" to stdout */
    _cleanup_free_ char *t = NULL;
    t = tail_lines(err, err_len);
    if (!t[0]) {
        free(t);
        t = tail_lines(out, out_len);
    }
    char *msg;
    if (t[0])
        msg = xasprintf("git %s failed: %s", dt_git_op_name(plan->op), t);
    else
        msg = xasprintf("git %s failed with exit status %d", dt_git_op_name(plan->op),
                        o->exit_code);
    e->message = redact(plan, msg);
}

static void _printf_(4, 5)
set_error(struct dt_git_error *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    e->message = xvasprintf(fmt, ap);
    va_end(ap);
}

/* Next NUL-terminated record of BUF[*pos..len), or NULL at the end. */
static const char *
next_rec(const char *buf, size_t len, size_t *pos, size_t *rec_len)
{
    if (*pos >= len)
        return NULL;
    const char *start = buf + *pos;
    const char *nul = memchr(start, '\0', len - *pos);
    size_t l = nul ? (size_t)(nul - start) : len - *pos;
    *pos += l + 1;
    *rec_len = l;
    return start;
}

/* Skip N space-separated fields of a record; returns the rest or NULL. */
static const char *
skip_fields(const char *rec, size_t len, size_t n, size_t *rest_len)
{
    size_t i = 0;
    for (size_t f = 0; f < n; f++) {
        const char *sp = memchr(rec + i, ' ', len - i);
        if (!sp)
            return NULL;
        i = (size_t)(sp - rec) + 1;
    }
    *rest_len = len - i;
    return rec + i;
}

static const char *
status_name(char c)
{
    switch (c) {
    case '.':
        return "Unmodified";
    case 'M':
    case 'T': /* type change: the SDK has no such state */
        return "Modified";
    case 'A':
        return "Added";
    case 'D':
        return "Deleted";
    case 'R':
        return "Renamed";
    case 'C':
        return "Copied";
    case 'U':
        return "Updated but unmerged";
    case '?':
        return "Untracked";
    default:
        return "Unmodified";
    }
}

static json_t *
jstrn(const char *s, size_t len)
{
    /* invalid UTF-8 (paths are bytes) would make jansson refuse the string */
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    char *c = xstrndup(s, len);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(c);
    free(c);
    return j ? j : json_string("");
}

static void
add_file(json_t *files, const char *name, size_t name_len, const char *staging,
         const char *worktree, const char *extra, size_t extra_len)
{
    json_t *f = json_object();
    json_object_set_new(f, "name", jstrn(name, name_len));
    json_object_set_new(f, "staging", json_string(staging));
    json_object_set_new(f, "worktree", json_string(worktree));
    json_object_set_new(f, "extra", jstrn(extra, extra_len));
    json_array_append_new(files, f);
}

static bool
starts_with(const char *rec, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(rec, prefix, pl) == 0;
}

static int64_t
parse_count(const char *s, size_t len)
{
    int64_t v = 0;
    if (len == 0 || len > 12)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static json_t *
parse_status(const char *buf, size_t len)
{
    json_t *files = json_array();
    json_t *body = json_object();
    const char *rec;
    size_t pos = 0, rl, rest_len;
    const char *head = NULL, *upstream = NULL;
    size_t head_len = 0, upstream_len = 0;
    int64_t ahead = 0, behind = 0;

    while ((rec = next_rec(buf, len, &pos, &rl))) {
        const char *rest;
        if (starts_with(rec, rl, "# branch.head ")) {
            head = rec + 14;
            head_len = rl - 14;
        } else if (starts_with(rec, rl, "# branch.upstream ")) {
            upstream = rec + 18;
            upstream_len = rl - 18;
        } else if (starts_with(rec, rl, "# branch.ab +")) {
            const char *a = rec + 13;
            const char *sp = memchr(a, ' ', rl - 13);
            if (sp && (size_t)(rec + rl - sp) > 2 && sp[1] == '-') {
                ahead = parse_count(a, (size_t)(sp - a));
                behind = parse_count(sp + 2, (size_t)(rec + rl - sp - 2));
            }
        } else if (rl >= 4 && rec[0] == '1' && rec[1] == ' ') {
            if ((rest = skip_fields(rec, rl, 8, &rest_len)))
                add_file(files, rest, rest_len, status_name(rec[2]), status_name(rec[3]), "", 0);
        } else if (rl >= 4 && rec[0] == '2' && rec[1] == ' ') {
            /* a rename/copy record is followed by a record with the original path */
            size_t ol = 0;
            const char *orig = next_rec(buf, len, &pos, &ol);
            if ((rest = skip_fields(rec, rl, 9, &rest_len)))
                add_file(files, rest, rest_len, status_name(rec[2]), status_name(rec[3]),
                         orig ? orig : "", orig ? ol : 0);
        } else if (rl >= 4 && rec[0] == 'u' && rec[1] == ' ') {
            if ((rest = skip_fields(rec, rl, 10, &rest_len)))
                add_file(files, rest, rest_len, "Updated but unmerged", "Updated but unmerged",
                         "", 0);
        } else if (rl >= 3 && rec[0] == '?' && rec[1] == ' ') {
            add_file(files, rec + 2, rl - 2, "Untracked", "Untracked", "", 0);
        }
        /* '!' (ignored) and unknown records are skipped */
    }
    bool detached = head && head_len == 10 && memcmp(head, "(detached)", 10) == 0;
    if (detached)
        json_object_set_new(body, "currentBranch", json_string("HEAD"));
    else
        json_object_set_new(body, "currentBranch", head ? jstrn(head, head_len) : json_string(""));
    json_object_set_new(body, "fileStatus", files);
    json_object_set_new(body, "ahead", json_integer(ahead));
    json_object_set_new(body, "behind", json_integer(behind));
    json_object_set_new(body, "branchPublished", json_boolean(upstream != NULL));
    if (upstream)
        json_object_set_new(body, "upstream", jstrn(upstream, upstream_len));
    json_object_set_new(body, "detached", json_boolean(detached));
    return body;
}

static json_t *
parse_branches(const char *buf, size_t len, const struct dt_git_output *sym)
{
    json_t *branches = json_array();
    json_t *body = json_object();
    size_t pos = 0;
    bool have_current = false;

    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - line) : len - pos;
        pos += l + 1;
        if (l < 2)
            continue;
        json_array_append_new(branches, jstrn(line + 1, l - 1));
        if (line[0] == '*' && !have_current) {
            json_object_set_new(body, "current", jstrn(line + 1, l - 1));
            have_current = true;
        }
    }
    /* an unborn branch (no commits yet) is current without being listed */
    if (!have_current && sym && sym->exit_code == 0 && sym->out && sym->out_len > 0) {
        size_t l = sym->out_len;
        while (l > 0 && (sym->out[l - 1] == '\n' || sym->out[l - 1] == '\r'))
            l--;
        if (l > 0 && !memchr(sym->out, '\n', l))
            json_object_set_new(body, "current", jstrn(sym->out, l));
    }
    json_object_set_new(body, "branches", branches);
    return body;
}

static json_t *
parse_remotes(const char *buf, size_t len)
{
    static const char fetch[] = " (fetch)";
    json_t *remotes = json_array();
    size_t pos = 0;

    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - line) : len - pos;
        pos += l + 1;
        /* "name\turl (fetch)" and "name\turl (push)": one entry per remote */
        if (l < sizeof(fetch) || memcmp(line + l - (sizeof(fetch) - 1), fetch, sizeof(fetch) - 1))
            continue;
        const char *tab = memchr(line, '\t', l);
        if (!tab || tab == line)
            continue;
        size_t url_len = l - (sizeof(fetch) - 1) - (size_t)(tab + 1 - line);
        if ((size_t)(tab + 1 - line) > l - (sizeof(fetch) - 1))
            continue;
        json_t *r = json_object();
        json_object_set_new(r, "name", jstrn(line, (size_t)(tab - line)));
        json_object_set_new(r, "url", jstrn(tab + 1, url_len));
        json_array_append_new(remotes, r);
    }
    json_t *body = json_object();
    json_object_set_new(body, "remotes", remotes);
    return body;
}

static bool
is_hash(const char *s, size_t len)
{
    if (len != 40 && len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static json_t *
parse_history(const char *buf, size_t len)
{
    json_t *list = json_array();
    size_t pos = 0;

    for (;;) {
        const char *f[5];
        size_t fl[5];
        size_t k;
        for (k = 0; k < 5; k++)
            if (!(f[k] = next_rec(buf, len, &pos, &fl[k])))
                break;
        if (k < 5)
            break;
        /* after the first record, git puts a newline between a message and the next hash */
        while (fl[0] > 0 && (f[0][0] == '\n')) {
            f[0]++;
            fl[0]--;
        }
        if (!is_hash(f[0], fl[0]))
            break; /* out of step (a NUL in a message?): stop rather than invent entries */
        while (fl[4] > 0 && (f[4][fl[4] - 1] == '\n'))
            fl[4]--;
        json_t *c = json_object();
        json_object_set_new(c, "hash", jstrn(f[0], fl[0]));
        json_object_set_new(c, "author", jstrn(f[1], fl[1]));
        json_object_set_new(c, "email", jstrn(f[2], fl[2]));
        json_object_set_new(c, "message", jstrn(f[4], fl[4]));
        json_object_set_new(c, "timestamp", jstrn(f[3], fl[3]));
        json_array_append_new(list, c);
        if (json_array_size(list) >= DT_GIT_MAX_HISTORY)
            break;
    }
    return list;
}

int
dt_git_result(const struct dt_git_plan *plan, const struct dt_git_output *outs, size_t n,
              json_t **ret_body, struct dt_git_error *ret_err)
{
    *ret_body = NULL;
    memset(ret_err, 0, sizeof(*ret_err));

    if (n == 0 || n > plan->n_steps) {
        set_error(ret_err, 500, "INTERNAL_SERVER_ERROR", "git %s: no output to interpret",
                  dt_git_op_name(plan->op));
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct dt_git_output *o = &outs[i];
        if (o->exit_code == 0 || plan->steps[i].ok_to_fail)
            continue;
        /* a repository without commits has an empty history, not an error */
        if (plan->op == DT_GIT_HISTORY && o->err &&
            mem_has(o->err, o->err_len, "does not have any commits yet")) {
            *ret_body = json_array();
            return 0;
        }
        dt_git_classify(plan, o, ret_err);
        return -EIO;
    }
    if (n < plan->n_steps) {
        set_error(ret_err, 500, "INTERNAL_SERVER_ERROR", "git %s: the plan did not complete",
                  dt_git_op_name(plan->op));
        return -EINVAL;
    }

    const struct dt_git_output *o = &outs[0];
    const char *out = o->out ? o->out : "";
    size_t out_len = o->out ? o->out_len : 0;
    switch (plan->op) {
    case DT_GIT_STATUS:
    case DT_GIT_BRANCHES_LIST:
    case DT_GIT_REMOTES:
    case DT_GIT_HISTORY:
        if (out_len > DT_GIT_MAX_STDOUT) {
            set_error(ret_err, 500, "INTERNAL_SERVER_ERROR",
                      "git %s: the output is too large to return", dt_git_op_name(plan->op));
            return -EFBIG;
        }
        if (plan->op == DT_GIT_STATUS)
            *ret_body = parse_status(out, out_len);
        else if (plan->op == DT_GIT_BRANCHES_LIST)
            *ret_body = parse_branches(out, out_len, n > 1 ? &outs[1] : NULL);
        else if (plan->op == DT_GIT_REMOTES)
            *ret_body = parse_remotes(out, out_len);
        else
            *ret_body = parse_history(out, out_len);
        return 0;
    case DT_GIT_COMMIT: {
        const struct dt_git_output *h = &outs[plan->n_steps - 1];
        size_t l = h->out ? h->out_len : 0;
        while (l > 0 && (h->out[l - 1] == '\n' || h->out[l - 1] == '\r'))
            l--;
        if (!is_hash(h->out, l)) {
            set_error(ret_err, 500, "INTERNAL_SERVER_ERROR",
                      "git %s: could not read the new commit's hash", "commit");
            return -EIO;
        }
        *ret_body = json_object();
        json_object_set_new(*ret_body, "hash", jstrn(h->out, l));
        return 0;
    }
    case DT_GIT_CONFIG_GET:
        if (o->exit_code == 1 && (!o->err || o->err_len == 0)) {
            *ret_body = json_object(); /* unset */
            return 0;
        }
        if (o->exit_code != 0) {
            dt_git_classify(plan, o, ret_err);
            return -EIO;
        }
        if (out_len > DT_GIT_MAX_STDERR) {
            set_error(ret_err, 500, "INTERNAL_SERVER_ERROR", "git %s: the value is too large",
                      "config get");
            return -EFBIG;
        }
        if (out_len > 0 && out[out_len - 1] == '\n')
            out_len--;
        *ret_body = json_object();
        json_object_set_new(*ret_body, "value", jstrn(out, out_len));
        return 0;
    default:
        return 0; /* void */
    }
}
