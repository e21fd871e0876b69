/* SPDX-License-Identifier: Apache-2.0 */
/* The git part of the toolbox API (contract 3.10): a validated JSON request becomes a plan of `git`
 * CLI invocations, and their outputs become the JSON response or a classified error (contract
 * 4.3). No process is started here: the caller runs the plan as the sandbox user. */
#ifndef DT_AGENT_GIT_H
#define DT_AGENT_GIT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "dt/error.h"

/* One per route. dt_git_op_lookup() maps method + path to these. */
enum dt_git_op {
    DT_GIT_CLONE,         /* POST   /git/clone */
    DT_GIT_INIT,          /* POST   /git/init */
    DT_GIT_STATUS,        /* GET    /git/status?path= */
    DT_GIT_ADD,           /* POST   /git/add */
    DT_GIT_COMMIT,        /* POST   /git/commit */
    DT_GIT_BRANCHES_LIST, /* GET    /git/branches?path= */
    DT_GIT_BRANCH_CREATE, /* POST   /git/branches */
    DT_GIT_BRANCH_DELETE, /* DELETE /git/branches (JSON body) */
    DT_GIT_CHECKOUT,      /* POST   /git/checkout */
    DT_GIT_PUSH,          /* POST   /git/push */
    DT_GIT_PULL,          /* POST   /git/pull */
    DT_GIT_RESET,         /* POST   /git/reset */
    DT_GIT_RESTORE,       /* POST   /git/restore */
    DT_GIT_REMOTE_ADD,    /* POST   /git/remotes */
    DT_GIT_REMOTES,       /* GET    /git/remotes?path= */
    DT_GIT_CONFIG_SET,    /* POST   /git/config */
    DT_GIT_CONFIG_GET,    /* GET    /git/config?key=&scope=&path= */
    DT_GIT_CONFIG_USER,   /* POST   /git/config/user */
    DT_GIT_CREDENTIALS,   /* POST   /git/credentials */
    DT_GIT_HISTORY,       /* GET    /git/history?path= */
    _DT_GIT_OP_MAX,
};

/* Limits on what a request may ask for (EINVAL beyond them). */
#define DT_GIT_MAX_FILES    4096u      /* entries of a "files" array */
#define DT_GIT_MAX_ARG      8192u      /* bytes of one string field (a message may be longer) */
#define DT_GIT_MAX_MESSAGE  (64u << 10) /* bytes of a commit message */
#define DT_GIT_MAX_ARGV     (512u << 10) /* total argv bytes of one step (ARG_MAX is 2 MiB) */
#define DT_GIT_MAX_HISTORY  10000u     /* commits returned by history */

/* Output caps the caller should apply when capturing (it may keep less; parsing never trusts
 * the content and stops at the given lengths). Status, history and branch listings larger than
 * DT_GIT_MAX_STDOUT are refused with a 500-class error rather than returned truncated. */
#define DT_GIT_MAX_STDOUT (16u << 20)
#define DT_GIT_MAX_STDERR (64u << 10) /* only the tail matters: keep the LAST bytes */

#define DT_GIT_MAX_STEPS 4

/* One git invocation. All strings are owned by the plan. */
struct dt_git_step {
    char **argv;      /* NULL-terminated, argv[0] is "git" (look it up in PATH) */
    char **env;       /* NULL-terminated "K=V" to add to (and override in) the user's env */
    char *stdin_data; /* NULL: stdin is /dev/null */
    size_t stdin_len;
    bool ok_to_fail; /* a non-zero exit does not stop the plan */
};

/* How the caller runs a plan: steps in order, each with cwd `cwd` (the work dir given to
 * dt_git_plan(), or "/"; repositories are named with `git -C <path>`, so a missing repository
 * directory is git's error, GIT_REPO_NOT_FOUND, not the caller's), as the
 * sandbox user with its usual environment (HOME matters: global config and credentials live
 * there) plus step->env. Stop after the first step that exits non-zero unless it is ok_to_fail.
 * Then call dt_git_result() with the outputs of the steps that ran (n may be < n_steps). */
struct dt_git_plan {
    enum dt_git_op op;
    struct dt_git_step steps[DT_GIT_MAX_STEPS];
    size_t n_steps;
    char *cwd;
    char *secrets[2]; /* username and password, redacted from error messages; NULL when unset */
};

/* Free everything a plan owns and zero it; safe on a zeroed plan and twice. */
void dt_git_plan_done(struct dt_git_plan *plan);

/* Route lookup: METHOD ("GET", ...) and PATH ("/git/status", no query string). Returns 0 and sets
 * *ret, or -ENOENT. */
int dt_git_op_lookup(const char *method, const char *path, enum dt_git_op *ret);

/* "clone", "status", ... (static storage). */
const char *dt_git_op_name(enum dt_git_op op);

/* Build the plan for OP from REQ (borrowed): the JSON body, or for GET routes an object built from
 * the query parameters (all values strings; a "true"/"false" string is accepted wherever a boolean
 * is expected and a decimal string wherever an integer is). WORKDIR (absolute) resolves relative
 * paths and becomes plan->cwd ("/" when NULL). Validation: required fields, types, sizes; no value
 * that git could read as an option (refs, remotes, keys starting with '-' are refused, paths are
 * made absolute and files are passed after "--"); URLs limited to http(s)://, ssh://, git://,
 * file:// and scp-like user@host:path; credentials never reach argv (an inline credential helper
 * reads them from the step's env). Returns 0 and fills *ret (zeroed first), or -EINVAL with *err
 * naming the field. */
int dt_git_plan(enum dt_git_op op, json_t *req, const char *workdir, struct dt_git_plan *ret,
                struct dt_error **err);

/* What one step produced. Buffers are borrowed and need not be NUL-terminated. */
struct dt_git_output {
    int exit_code; /* 0..255; a signal death is 128 + signo */
    const char *out;
    size_t out_len;
    const char *err;
    size_t err_len;
};

/* A failed request, for the HTTP layer: answer STATUS with
 * {"statusCode", "message", "code", "source":"DAYTONA_DAEMON"}. */
struct dt_git_error {
    int status;       /* 400, 401, 403, 404, 409, 422, 500, 502 */
    const char *code; /* "GIT_AUTH_FAILED", ..., or a generic one ("BAD_REQUEST"); static */
    char *message;    /* malloc'ed; git's own last lines of output with secrets redacted */
};

/* Free the message and zero E. */
void dt_git_error_done(struct dt_git_error *e);

/* Fill E for the case where the `git` binary could not be executed at all (ENOENT from exec):
 * 500 "git is not installed in this sandbox's image". */
void dt_git_error_not_installed(struct dt_git_error *e);

/* Turn the N outputs of PLAN's steps (N <= plan->n_steps) into a response. Returns 0 with
 * *ret_body set (a new reference the caller owns; NULL for void routes, which answer 200 with
 * no body), or a negative errno-style value with *ret_err filled (caller frees it with
 * dt_git_error_done()). Bodies: status {currentBranch, fileStatus:[{name, staging, worktree,
 * extra}], ahead, behind, branchPublished, upstream?, detached}; branches {branches, current?};
 * remotes {remotes:[{name, url}]}; config get {value} or {} when unset; history
 * [{hash, author, email, message, timestamp (ISO 8601)}]; commit {hash}. */
int dt_git_result(const struct dt_git_plan *plan, const struct dt_git_output *outs, size_t n,
                  json_t **ret_body, struct dt_git_error *ret_err);

/* Classify a failed step's output (exposed for tests): fills E from exit code, stdout and stderr
 * (conflicts are reported on stdout by merge). */
void dt_git_classify(const struct dt_git_plan *plan, const struct dt_git_output *o,
                     struct dt_git_error *e);

#endif
