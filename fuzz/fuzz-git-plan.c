/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the git routes (src/agent/git.h): a JSON request becomes a plan, checked against what the
 * header promises (argv[0] "git", NULL-terminated vectors, no option smuggled in from the request,
 * credentials never in argv), then canned outputs become a response or a classified error.
 * Input: byte 0 = op, byte 1 = exit codes (2 bits per step), byte 2 = flags (bits 0-2: number of
 * outputs when not all, bit 3: fewer outputs, bit 7: no work dir), then the JSON text up to the
 * first NUL, then the outputs: stdout0 0xff stderr0 0xff stdout1 0xff stderr1 ... */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/git.h"
#include "dt/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MARK   "DtFuzzMark"
#define MARK_U MARK "User"
#define MARK_P MARK "Pass"

/* Every option plan building may emit on its own before the "--" that ends options. */
static const char *const fixed_opts[] = {
    "--allow-empty", "--bare", "--branch", "--detach", "--fetch", "--get", "--global",
    "--local", "--no-edit", "--no-rebase", "--porcelain=v2", "--quiet", "--set-upstream",
    "--short", "--staged", "--system", "--untracked-files=all", "--verify", "--worktree",
    "-D", "-b", "-v", "-z", "--hard", "--soft", "--mixed", "--merge", "--keep",
};
/* Options whose value comes from the request, glued into the same element. */
static const char *const glued_opts[] = {
    "--author=", "--branch=", "--depth=", "--initial-branch=", "--max-count=", "--message=",
    "--source=", "--format=",
};

static bool
allowed_opt(const char *a)
{
    for (size_t i = 0; i < ELEMENTSOF(fixed_opts); i++)
        if (strcmp(a, fixed_opts[i]) == 0)
            return true;
    for (size_t i = 0; i < ELEMENTSOF(glued_opts); i++)
        if (strncmp(a, glued_opts[i], strlen(glued_opts[i])) == 0)
            return true;
    return false;
}

static void
check_plan(const struct dt_git_plan *p, enum dt_git_op op, const char *workdir)
{
    DT_ASSERT(p->op == op);
    DT_ASSERT(p->n_steps >= 1 && p->n_steps <= DT_GIT_MAX_STEPS);
    DT_ASSERT(p->cwd && p->cwd[0] == '/');
    DT_ASSERT(strcmp(p->cwd, workdir ? workdir : "/") == 0);
    for (size_t i = 0; i < ELEMENTSOF(p->secrets); i++)
        DT_ASSERT(!p->secrets[i] || strlen(p->secrets[i]) < (64u << 10));
    for (size_t i = 0; i < p->n_steps; i++) {
        const struct dt_git_step *s = &p->steps[i];
        size_t total = 0, n = 0;
        bool opts = true;

        DT_ASSERT(s->argv && s->argv[0] && strcmp(s->argv[0], "git") == 0);
        for (char **a = s->argv; *a; a++, n++) {
            total += strlen(*a) + 1;
            if (n == 0)
                continue;
            if (strcmp(*a, "--") == 0) {
                opts = false;
                continue;
            }
            /* the values of -c and -C are never options */
            if (strcmp(*a, "-c") == 0 || strcmp(*a, "-C") == 0) {
                DT_ASSERT(a[1]);
                if (strcmp(*a, "-C") == 0)
                    DT_ASSERT(a[1][0] == '/');
                a++;
                n++;
                total += strlen(*a) + 1;
                continue;
            }
            if (opts && (*a)[0] == '-')
                DT_ASSERT(allowed_opt(*a));
        }
        DT_ASSERT(total <= DT_GIT_MAX_ARGV);
        DT_ASSERT(s->env);
        for (char **e = s->env; *e; e++)
            DT_ASSERT(strchr(*e, '=') && (*e)[0] != '=');
        DT_ASSERT(!s->stdin_len || s->stdin_data);
    }
}

static bool
argv_has(const struct dt_git_plan *p, const char *needle)
{
    for (size_t i = 0; i < p->n_steps; i++)
        for (char **a = p->steps[i].argv; *a; a++)
            if (strstr(*a, needle))
                return true;
    return false;
}

/* Credentials never reach argv: plan again with marker credentials and look for them. */
static void
check_credentials(enum dt_git_op op, json_t *req, const char *workdir)
{
    struct dt_git_plan p;
    struct dt_error *err = NULL;

    if (!json_object_get(req, "username") && !json_object_get(req, "password"))
        return;
    char *dump = json_dumps(req, JSON_ENCODE_ANY);
    bool clean = dump && !strstr(dump, MARK);
    free(dump);
    if (!clean)
        return;
    json_t *copy = json_deep_copy(req);
    if (json_object_get(copy, "username"))
        json_object_set_new(copy, "username", json_string(MARK_U));
    if (json_object_get(copy, "password"))
        json_object_set_new(copy, "password", json_string(MARK_P));
    if (dt_git_plan(op, copy, workdir, &p, &err) == 0) {
        DT_ASSERT(!argv_has(&p, MARK));
        dt_git_plan_done(&p);
    }
    dt_error_free(err);
    json_decref(copy);
}

static void
check_result(const struct dt_git_plan *p, int r, json_t *body, const struct dt_git_error *e)
{
    if (r < 0) {
        DT_ASSERT(!body);
        DT_ASSERT(e->code && e->code[0] && e->message);
        DT_ASSERT(e->status == 400 || e->status == 401 || e->status == 403 ||
                  e->status == 404 || e->status == 409 || e->status == 422 ||
                  e->status == 500 || e->status == 502);
        for (const unsigned char *c = (const unsigned char *) e->message; *c; c++)
            DT_ASSERT(*c >= 0x20 || *c == '\n');
        /* Secrets from git's output are redacted ('*' would let "***" itself form a secret:
         * skip those). A secret of a few characters can occur in our own fixed message text
         * ("git credentials: ..." holds a "p"), which is no leak: check secrets of 4+ bytes. */
        for (size_t i = 0; i < ELEMENTSOF(p->secrets); i++)
            if (p->secrets[i] && strlen(p->secrets[i]) >= 4 && !strchr(p->secrets[i], '*'))
                DT_ASSERT(!strstr(e->message, p->secrets[i]));
        return;
    }
    DT_ASSERT(!e->message && !e->code);
    if (body) {
        /* the response must be serialisable (valid UTF-8 everywhere) */
        char *s = json_dumps(body, JSON_ENCODE_ANY);
        DT_ASSERT(s);
        free(s);
    }
    switch (p->op) {
    case DT_GIT_STATUS:
        DT_ASSERT(json_is_object(body));
        DT_ASSERT(json_is_string(json_object_get(body, "currentBranch")));
        DT_ASSERT(json_is_array(json_object_get(body, "fileStatus")));
        DT_ASSERT(json_is_integer(json_object_get(body, "ahead")));
        DT_ASSERT(json_is_integer(json_object_get(body, "behind")));
        DT_ASSERT(json_is_boolean(json_object_get(body, "branchPublished")));
        DT_ASSERT(json_is_boolean(json_object_get(body, "detached")));
        break;
    case DT_GIT_BRANCHES_LIST:
        DT_ASSERT(json_is_object(body) && json_is_array(json_object_get(body, "branches")));
        break;
    case DT_GIT_REMOTES:
        DT_ASSERT(json_is_object(body) && json_is_array(json_object_get(body, "remotes")));
        break;
    case DT_GIT_HISTORY:
        DT_ASSERT(json_is_array(body) && json_array_size(body) <= DT_GIT_MAX_HISTORY);
        break;
    case DT_GIT_COMMIT:
        DT_ASSERT(json_is_object(body) && json_is_string(json_object_get(body, "hash")));
        break;
    case DT_GIT_CONFIG_GET:
        DT_ASSERT(json_is_object(body));
        break;
    default:
        DT_ASSERT(!body);
        break;
    }
}

static void
run_outputs(const struct dt_git_plan *p, uint8_t codes, uint8_t flags, const uint8_t *data,
            size_t size)
{
    static const int exit_codes[4] = { 0, 0, 1, 128 };
    struct dt_git_output outs[DT_GIT_MAX_STEPS] = { 0 };
    const char *in = (const char *) data;
    size_t n = p->n_steps;
    struct dt_git_error e;
    json_t *body = NULL;
    int r;

    if (flags & 8)
        n = flags & 7;
    if (n > p->n_steps)
        n = p->n_steps;
    /* split on 0xff: out0, err0, out1, err1, ... */
    size_t pos = 0;
    for (size_t i = 0; i < 2 * DT_GIT_MAX_STEPS && pos <= size; i++) {
        const char *sep = memchr(in + pos, 0xff, size - pos);
        size_t l = sep ? (size_t) (sep - (in + pos)) : size - pos;
        struct dt_git_output *o = &outs[i / 2];
        if (i % 2 == 0) {
            o->out = in + pos;
            o->out_len = l;
        } else {
            o->err = in + pos;
            o->err_len = l;
        }
        pos += l + 1;
        if (!sep)
            break;
    }
    for (size_t i = 0; i < DT_GIT_MAX_STEPS; i++)
        outs[i].exit_code = exit_codes[(codes >> (2 * i)) & 3];

    r = dt_git_result(p, outs, n, &body, &e);
    check_result(p, r, body, &e);
    json_decref(body);
    dt_git_error_done(&e);
    DT_ASSERT(!e.message && !e.code && !e.status);

    /* the classifier on its own, for any step */
    for (size_t i = 0; i < p->n_steps; i++) {
        dt_git_classify(p, &outs[i], &e);
        check_result(p, -EIO, NULL, &e);
        dt_git_error_done(&e);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dt_git_plan zero;
    struct dt_git_plan plan;
    struct dt_error *err = NULL;
    json_error_t je;
    const char *workdir;
    enum dt_git_op op;
    uint8_t codes, flags;
    int r;

    if (size < 3)
        return 0;
    op = (enum dt_git_op) (data[0] % _DT_GIT_OP_MAX);
    codes = data[1];
    flags = data[2];
    workdir = flags & 0x80 ? NULL : "/home/daytona";
    data += 3;
    size -= 3;

    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t) (nul - data) : size;
    json_t *req = json_loadb((const char *) data, jlen, 0, &je);
    if (!req)
        return 0;
    if (!json_is_object(req)) {
        DT_ASSERT(dt_git_plan(op, req, workdir, &plan, &err) == -EINVAL && err);
        DT_ASSERT(memcmp(&plan, &zero, sizeof(plan)) == 0);
        dt_error_free(err);
        json_decref(req);
        return 0;
    }

    r = dt_git_plan(op, req, workdir, &plan, &err);
    if (r < 0) {
        DT_ASSERT(r == -EINVAL);
        DT_ASSERT(err && err->code == EINVAL && err->message && err->message[0]);
        DT_ASSERT(memcmp(&plan, &zero, sizeof(plan)) == 0);
        dt_error_free(err);
    } else {
        DT_ASSERT(!err);
        check_plan(&plan, op, workdir);
        check_credentials(op, req, workdir);
        if (nul)
            run_outputs(&plan, codes, flags, nul + 1, size - jlen - 1);
        dt_git_plan_done(&plan);
        DT_ASSERT(memcmp(&plan, &zero, sizeof(plan)) == 0);
        dt_git_plan_done(&plan);
    }
    json_decref(req);
    return 0;
}
