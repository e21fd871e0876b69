/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the git toolbox planner/parser: request validation, parsing of canned git outputs,
 * error classification, and an end-to-end run of real plans with /usr/bin/git in a temp dir. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/git.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "testlib.h"

#include "dt/banned.h"

static json_t *
J(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", s, je.text);
    return j;
}

static int
plan_of(enum dt_git_op op, const char *req, struct dt_git_plan *plan, char **msg)
{
    json_t *j = J(req);
    struct dt_error *err = NULL;
    int r = dt_git_plan(op, j, "/home/daytona/work", plan, &err);
    json_decref(j);
    if (msg)
        *msg = err ? xstrdup(err->message) : NULL;
    if (r < 0)
        assert_non_null(err);
    dt_error_free(err);
    return r;
}

static bool
argv_has(const struct dt_git_step *s, const char *needle)
{
    for (char **a = s->argv; *a; a++)
        if (strstr(*a, needle))
            return true;
    return false;
}

static int
argv_index(const struct dt_git_step *s, const char *exact)
{
    for (int i = 0; s->argv[i]; i++)
        if (strcmp(s->argv[i], exact) == 0)
            return i;
    return -1;
}

static void
expect_einval(enum dt_git_op op, const char *req, const char *msg_part)
{
    struct dt_git_plan plan;
    char *msg = NULL;
    int r = plan_of(op, req, &plan, &msg);
    if (r != -EINVAL || !msg || !strstr(msg, msg_part))
        fail_msg("%s: expected EINVAL with '%s', got %d '%s'", req, msg_part, r,
                 msg ? msg : "(none)");
    free(msg);
    /* a failed plan is zeroed */
    assert_int_equal(plan.n_steps, 0);
    assert_null(plan.cwd);
}

static void
test_validation(void **state)
{
    expect_einval(DT_GIT_STATUS, "{}", "'path'");
    expect_einval(DT_GIT_STATUS, "{\"path\": 3}", "must be a string");
    expect_einval(DT_GIT_CLONE, "{\"path\": \"x\"}", "'url'");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"ext::sh -c touch% /tmp/pwn\", \"path\": \"x\"}",
                  "url");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"-oProxyCommand=x\", \"path\": \"x\"}", "url");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"ssh://-oProxyCommand=x/y\", \"path\": \"x\"}", "url");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"fd::17\", \"path\": \"x\"}", "url");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"https://h/r\", \"path\": \"x\", \"branch\": \"-b\"}",
                  "'-'");
    expect_einval(DT_GIT_CLONE, "{\"url\": \"https://h/r\", \"path\": \"x\", \"depth\": -1}",
                  "depth");
    expect_einval(DT_GIT_CLONE,
                  "{\"url\": \"https://h/r\", \"path\": \"x\", \"password\": \"a\\nb\"}",
                  "control");
    expect_einval(DT_GIT_ADD, "{\"path\": \"r\"}", "'files'");
    expect_einval(DT_GIT_ADD, "{\"path\": \"r\", \"files\": [1]}", "'files'");
    expect_einval(DT_GIT_COMMIT, "{\"path\": \"r\", \"message\": \"\"}", "'message'");
    expect_einval(DT_GIT_COMMIT,
                  "{\"path\": \"r\", \"message\": \"m\", \"author\": \"a>b\", \"email\": \"e\"}",
                  "author");
    expect_einval(DT_GIT_CHECKOUT, "{\"path\": \"r\", \"branch\": \"--orphan\"}", "'-'");
    expect_einval(DT_GIT_BRANCH_CREATE, "{\"path\": \"r\", \"name\": \"a b\"}", "space");
    expect_einval(DT_GIT_PUSH, "{\"path\": \"r\", \"remote\": \"--exec=x\"}", "'-'");
    expect_einval(DT_GIT_RESET, "{\"path\": \"r\", \"mode\": \"nuke\"}", "mode");
    expect_einval(DT_GIT_RESTORE,
                  "{\"path\": \"r\", \"files\": [\"a\"], \"staged\": false, \"worktree\": false}",
                  "staged");
    expect_einval(DT_GIT_CONFIG_SET, "{\"key\": \"--file=/etc/x\", \"value\": \"v\"}", "key");
    expect_einval(DT_GIT_CONFIG_SET, "{\"key\": \"a.b\"}", "'value'");
    expect_einval(DT_GIT_CONFIG_GET, "{\"key\": \"a.b\", \"scope\": \"worktreez\"}", "scope");
    expect_einval(DT_GIT_CREDENTIALS, "{\"username\": \"u\"}", "'password'");
    expect_einval(DT_GIT_CREDENTIALS,
                  "{\"username\": \"u\", \"password\": \"p\\nhost=evil\"}", "control");
    expect_einval(DT_GIT_CREDENTIALS,
                  "{\"username\": \"u\", \"password\": \"p\", \"host\": \"a/b\"}", "host");
    expect_einval(DT_GIT_REMOTE_ADD, "{\"path\": \"r\", \"name\": \"o\", \"url\": \"/x\"}", "url");

    /* not an object */
    struct dt_git_plan plan;
    struct dt_error *err = NULL;
    json_t *arr = json_array();
    assert_int_equal(dt_git_plan(DT_GIT_STATUS, arr, "/", &plan, &err), -EINVAL);
    json_decref(arr);
    dt_error_free(err);
}

static void
test_plans(void **state)
{
    struct dt_git_plan plan;
    enum dt_git_op op;

    assert_int_equal(dt_git_op_lookup("DELETE", "/git/branches", &op), 0);
    assert_int_equal(op, DT_GIT_BRANCH_DELETE);
    assert_int_equal(dt_git_op_lookup("GET", "/git/config", &op), 0);
    assert_int_equal(op, DT_GIT_CONFIG_GET);
    assert_int_equal(dt_git_op_lookup("PUT", "/git/config", &op), -ENOENT);

    /* relative path resolved; files after "--" so "-rf" is a file name */
    assert_int_equal(plan_of(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\"-rf\", \"a\"]}",
                             &plan, NULL),
                     0);
    assert_int_equal(plan.n_steps, 1);
    assert_string_equal(plan.steps[0].argv[0], "git");
    int c = argv_index(&plan.steps[0], "-C");
    assert_true(c > 0);
    assert_string_equal(plan.steps[0].argv[c + 1], "/home/daytona/work/repo");
    assert_true(argv_index(&plan.steps[0], "--") < argv_index(&plan.steps[0], "-rf"));
    assert_true(argv_has(&plan.steps[0], "core.quotePath=false"));
    assert_string_equal(plan.cwd, "/home/daytona/work");
    bool prompt = false;
    for (char **e = plan.steps[0].env; *e; e++)
        prompt = prompt || strcmp(*e, "GIT_TERMINAL_PROMPT=0") == 0;
    assert_true(prompt);
    dt_git_plan_done(&plan);
    dt_git_plan_done(&plan); /* idempotent */

    /* credentials never in argv */
    assert_int_equal(plan_of(DT_GIT_CLONE,
                             "{\"url\": \"https://github.com/o/r.git\", \"path\": \"/abs\", "
                             "\"username\": \"bob\", \"password\": \"hunter2-secret\", "
                             "\"branch\": \"dev\", \"commit_id\": \"abc123\", \"depth\": 3, "
                             "\"insecure_skip_tls\": true}",
                             &plan, NULL),
                     0);
    assert_int_equal(plan.n_steps, 2);
    for (size_t i = 0; i < plan.n_steps; i++) {
        assert_false(argv_has(&plan.steps[i], "hunter2-secret"));
        assert_false(argv_has(&plan.steps[i], "bob"));
    }
    bool has_pw = false;
    for (char **e = plan.steps[0].env; *e; e++)
        has_pw = has_pw || strcmp(*e, "DT_GIT_PASSWORD=hunter2-secret") == 0;
    assert_true(has_pw);
    assert_true(argv_has(&plan.steps[0], "--branch=dev"));
    assert_true(argv_has(&plan.steps[0], "--depth=3"));
    assert_true(argv_has(&plan.steps[0], "http.sslVerify=false"));
    assert_true(argv_index(&plan.steps[0], "https://github.com/o/r.git") >
                argv_index(&plan.steps[0], "--"));
    assert_true(argv_has(&plan.steps[1], "abc123"));
    dt_git_plan_done(&plan);

    /* scp-like URL accepted */
    assert_int_equal(plan_of(DT_GIT_CLONE, "{\"url\": \"git@github.com:o/r.git\", \"path\": \"x\"}",
                             &plan, NULL),
                     0);
    dt_git_plan_done(&plan);

    /* a message starting with '-' stays one argv element */
    assert_int_equal(plan_of(DT_GIT_COMMIT,
                             "{\"path\": \"/r\", \"message\": \"--amend\", \"author\": \"A\", "
                             "\"email\": \"a@x\"}",
                             &plan, NULL),
                     0);
    assert_true(argv_index(&plan.steps[0], "--message=--amend") > 0);
    assert_true(argv_index(&plan.steps[0], "--amend") < 0);
    assert_true(argv_index(&plan.steps[0], "--author=A <a@x>") > 0);
    assert_int_equal(plan.n_steps, 2);
    dt_git_plan_done(&plan);

    /* query-style booleans and credentials stdin */
    assert_int_equal(plan_of(DT_GIT_CREDENTIALS, "{\"username\": \"u\", \"password\": \"p\"}",
                             &plan, NULL),
                     0);
    assert_int_equal(plan.n_steps, 2);
    assert_string_equal(plan.steps[1].stdin_data,
                        "protocol=https\nhost=github.com\nusername=u\npassword=p\n\n");
    assert_false(argv_has(&plan.steps[1], "p\n"));
    dt_git_plan_done(&plan);

    assert_int_equal(plan_of(DT_GIT_INIT, "{\"path\": \"n\", \"bare\": \"true\"}", &plan, NULL), 0);
    assert_true(argv_index(&plan.steps[0], "--bare") > 0);
    dt_git_plan_done(&plan);
}

static struct dt_git_output
O(int code, const char *out, size_t out_len, const char *err)
{
    struct dt_git_output o = {.exit_code = code, .out = out, .out_len = out_len, .err = err,
                              .err_len = err ? strlen(err) : 0};
    return o;
}

/* Run dt_git_result on a one-step canned output of a plan for OP/REQ. */
static json_t *
result_of(enum dt_git_op op, const char *req, const struct dt_git_output *outs, size_t n,
          struct dt_git_error *e)
{
    struct dt_git_plan plan;
    json_t *body = NULL;
    assert_int_equal(plan_of(op, req, &plan, NULL), 0);
    int r = dt_git_result(&plan, outs, n, &body, e);
    dt_git_plan_done(&plan);
    if (r < 0)
        assert_null(body);
    return body;
}

static const json_t *
find_file(const json_t *body, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(body, "fileStatus"), i, f)
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            return f;
    fail_msg("no file %s in status", name);
    return NULL;
}

static void
assert_file(const json_t *body, const char *name, const char *staging, const char *worktree,
            const char *extra)
{
    const json_t *f = find_file(body, name);
    assert_string_equal(json_string_value(json_object_get(f, "staging")), staging);
    assert_string_equal(json_string_value(json_object_get(f, "worktree")), worktree);
    assert_string_equal(json_string_value(json_object_get(f, "extra")), extra);
}

static void
test_parse_status(void **state)
{
    struct dt_git_error e = {0};
    static const char s1[] =
        "# branch.oid 1234567890123456789012345678901234567890\0"
        "# branch.head main\0"
        "# branch.upstream origin/main\0"
        "# branch.ab +2 -1\0"
        "1 M. N... 100644 100644 100644 aaaa bbbb with space.txt\0"
        "1 .D N... 100644 100644 000000 aaaa bbbb gone.c\0"
        "2 R. N... 100644 100644 100644 aaaa bbbb R100 new name.txt\0old name.txt\0"
        "u UU N... 100644 100644 100644 100644 h1 h2 h3 conflict.txt\0"
        "? d\xc3\xa9j\xc3\xa0.txt\0"
        "1 A. N... 000000 100644 100644 0000 bbbb added\0";
    struct dt_git_output o = O(0, s1, sizeof(s1) - 1, "");
    json_t *b = result_of(DT_GIT_STATUS, "{\"path\": \"r\"}", &o, 1, &e);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "currentBranch")), "main");
    assert_int_equal(json_integer_value(json_object_get(b, "ahead")), 2);
    assert_int_equal(json_integer_value(json_object_get(b, "behind")), 1);
    assert_true(json_is_true(json_object_get(b, "branchPublished")));
    assert_true(json_is_false(json_object_get(b, "detached")));
    assert_string_equal(json_string_value(json_object_get(b, "upstream")), "origin/main");
    assert_int_equal(json_array_size(json_object_get(b, "fileStatus")), 6);
    assert_file(b, "with space.txt", "Modified", "Unmodified", "");
    assert_file(b, "gone.c", "Unmodified", "Deleted", "");
    assert_file(b, "new name.txt", "Renamed", "Unmodified", "old name.txt");
    assert_file(b, "conflict.txt", "Updated but unmerged", "Updated but unmerged", "");
    assert_file(b, "d\xc3\xa9j\xc3\xa0.txt", "Untracked", "Untracked", "");
    assert_file(b, "added", "Added", "Unmodified", "");
    json_decref(b);

    /* detached, and initial commit */
    static const char s2[] = "# branch.oid abcd\0# branch.head (detached)\0";
    o = O(0, s2, sizeof(s2) - 1, "");
    b = result_of(DT_GIT_STATUS, "{\"path\": \"r\"}", &o, 1, &e);
    assert_true(json_is_true(json_object_get(b, "detached")));
    assert_string_equal(json_string_value(json_object_get(b, "currentBranch")), "HEAD");
    assert_true(json_is_false(json_object_get(b, "branchPublished")));
    assert_null(json_object_get(b, "upstream"));
    json_decref(b);
    static const char s3[] = "# branch.oid (initial)\0# branch.head trunk\0? a\0";
    o = O(0, s3, sizeof(s3) - 1, "");
    b = result_of(DT_GIT_STATUS, "{\"path\": \"r\"}", &o, 1, &e);
    assert_string_equal(json_string_value(json_object_get(b, "currentBranch")), "trunk");
    assert_int_equal(json_array_size(json_object_get(b, "fileStatus")), 1);
    json_decref(b);

    /* garbage and truncation never crash nor invent entries */
    static const char s4[] = "2 R. N... 1 2 3 a b R100\0" "1 M.\0" "# branch.ab +x\0" "u UU\0" "?";
    o = O(0, s4, sizeof(s4) - 1, "");
    b = result_of(DT_GIT_STATUS, "{\"path\": \"r\"}", &o, 1, &e);
    assert_int_equal(json_array_size(json_object_get(b, "fileStatus")), 0);
    json_decref(b);
}

static void
test_parse_others(void **state)
{
    struct dt_git_error e = {0};
    static const char log[] = "1111111111111111111111111111111111111111\0Ann\0ann@x\0"
                              "2024-01-02T03:04:05+01:00\0second\n\nbody\n\0"
                              "\n2222222222222222222222222222222222222222\0Bob\0bob@x\0"
                              "2024-01-01T00:00:00+00:00\0first\n\0";
    struct dt_git_output o = O(0, log, sizeof(log) - 1, "");
    json_t *b = result_of(DT_GIT_HISTORY, "{\"path\": \"r\"}", &o, 1, &e);
    assert_int_equal(json_array_size(b), 2);
    json_t *c = json_array_get(b, 0);
    assert_string_equal(json_string_value(json_object_get(c, "author")), "Ann");
    assert_string_equal(json_string_value(json_object_get(c, "message")), "second\n\nbody");
    assert_string_equal(json_string_value(json_object_get(c, "timestamp")),
                        "2024-01-02T03:04:05+01:00");
    c = json_array_get(b, 1);
    assert_string_equal(json_string_value(json_object_get(c, "hash")),
                        "2222222222222222222222222222222222222222");
    assert_string_equal(json_string_value(json_object_get(c, "email")), "bob@x");
    json_decref(b);

    /* empty repository */
    o = O(128, "", 0, "fatal: your current branch 'main' does not have any commits yet\n");
    b = result_of(DT_GIT_HISTORY, "{\"path\": \"r\"}", &o, 1, &e);
    assert_true(json_is_array(b));
    assert_int_equal(json_array_size(b), 0);
    json_decref(b);

    static const char br[] = " dev\n*main\n feature/x\n";
    struct dt_git_output bo[2] = {O(0, br, sizeof(br) - 1, ""), O(0, "main\n", 5, "")};
    b = result_of(DT_GIT_BRANCHES_LIST, "{\"path\": \"r\"}", bo, 2, &e);
    assert_int_equal(json_array_size(json_object_get(b, "branches")), 3);
    assert_string_equal(json_string_value(json_object_get(b, "current")), "main");
    assert_string_equal(json_string_value(json_array_get(json_object_get(b, "branches"), 2)),
                        "feature/x");
    json_decref(b);
    /* unborn branch: nothing listed, current from symbolic-ref */
    bo[0] = O(0, "", 0, "");
    bo[1] = O(0, "trunk\n", 6, "");
    b = result_of(DT_GIT_BRANCHES_LIST, "{\"path\": \"r\"}", bo, 2, &e);
    assert_int_equal(json_array_size(json_object_get(b, "branches")), 0);
    assert_string_equal(json_string_value(json_object_get(b, "current")), "trunk");
    json_decref(b);

    static const char rem[] = "origin\thttps://h/r.git (fetch)\norigin\thttps://h/r.git (push)\n"
                              "up\tgit@h:x/y (fetch)\nup\tgit@h:x/y (push)\nbad line\n";
    o = O(0, rem, sizeof(rem) - 1, "");
    b = result_of(DT_GIT_REMOTES, "{\"path\": \"r\"}", &o, 1, &e);
    json_t *rs = json_object_get(b, "remotes");
    assert_int_equal(json_array_size(rs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rs, 1), "url")),
                        "git@h:x/y");
    json_decref(b);

    o = O(0, "v a l\n", 6, "");
    b = result_of(DT_GIT_CONFIG_GET, "{\"key\": \"a.b\"}", &o, 1, &e);
    assert_string_equal(json_string_value(json_object_get(b, "value")), "v a l");
    json_decref(b);
    o = O(1, "", 0, "");
    b = result_of(DT_GIT_CONFIG_GET, "{\"key\": \"a.b\"}", &o, 1, &e);
    assert_int_equal(json_object_size(b), 0);
    json_decref(b);
    o = O(1, "", 0, "error: key does not contain variable name: a.\n");
    b = result_of(DT_GIT_CONFIG_GET, "{\"key\": \"a.\"}", &o, 1, &e);
    assert_null(b);
    assert_int_equal(e.status, 400);
    dt_git_error_done(&e);

    struct dt_git_output co[2] = {O(0, "", 0, ""),
                                  O(0, "3333333333333333333333333333333333333333\n", 41, "")};
    b = result_of(DT_GIT_COMMIT, "{\"path\": \"r\", \"message\": \"m\"}", co, 2, &e);
    assert_string_equal(json_string_value(json_object_get(b, "hash")),
                        "3333333333333333333333333333333333333333");
    json_decref(b);

    /* void routes */
    o = O(0, "", 0, "");
    assert_null(result_of(DT_GIT_ADD, "{\"path\": \"r\", \"files\": [\".\"]}", &o, 1, &e));
    assert_int_equal(e.status, 0);

    /* an incomplete plan is an internal error */
    b = result_of(DT_GIT_COMMIT, "{\"path\": \"r\", \"message\": \"m\"}", co, 1, &e);
    assert_int_equal(e.status, 500);
    dt_git_error_done(&e);
}

static void
expect_class(enum dt_git_op op, const char *req, int code, const char *out, const char *err,
             int status, const char *ecode)
{
    struct dt_git_error e = {0};
    struct dt_git_output o = O(code, out, strlen(out), err);
    json_t *b = result_of(op, req, &o, 1, &e);
    assert_null(b);
    if (e.status != status || strcmp(e.code, ecode) != 0)
        fail_msg("'%s': expected %d %s, got %d %s (%s)", err, status, ecode, e.status, e.code,
                 e.message);
    assert_non_null(e.message);
    dt_git_error_done(&e);
}

static void
test_classify(void **state)
{
    const char *push = "{\"path\": \"r\", \"username\": \"bob\", \"password\": \"tok3n\"}";
    const char *clone = "{\"path\": \"r\", \"url\": \"https://h/r\"}";
    const char *repo = "{\"path\": \"r\"}";

    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "Cloning into 'r'...\nremote: Invalid username or password.\n"
                 "fatal: Authentication failed for 'https://h/r/'\n",
                 401, "GIT_AUTH_FAILED");
    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "fatal: could not read Username for 'https://h': terminal prompts disabled\n",
                 401, "GIT_AUTH_FAILED");
    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "remote: Repository not found.\nfatal: repository 'https://h/r/' not found\n",
                 404, "GIT_REPO_NOT_FOUND");
    expect_class(DT_GIT_CLONE, clone, 128, "", "fatal: repository '/x' does not exist\n", 404,
                 "GIT_REPO_NOT_FOUND");
    expect_class(DT_GIT_RESTORE, "{\"path\": \"r\", \"files\": [\"a\"], \"source\": \"v1\"}", 128,
                 "", "fatal: could not resolve v1\n", 400, "BAD_REQUEST");
    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "Host key verification failed.\nfatal: Could not read from remote repository.\n",
                 502, "GIT_TRANSPORT_FAILED");
    expect_class(DT_GIT_STATUS, repo, 128, "",
                 "fatal: not a git repository (or any of the parent directories): .git\n", 404,
                 "GIT_REPO_NOT_FOUND");
    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "fatal: unable to access 'https://h/r/': Could not resolve host: h\n", 502,
                 "GIT_TRANSPORT_FAILED");
    expect_class(DT_GIT_CLONE, clone, 128, "",
                 "warning: Could not find remote branch nope to clone.\n"
                 "fatal: Remote branch nope not found in upstream origin\n",
                 404, "GIT_BRANCH_NOT_FOUND");
    expect_class(DT_GIT_CHECKOUT, "{\"path\": \"r\", \"branch\": \"x\"}", 1, "",
                 "error: pathspec 'x' did not match any file(s) known to git\n", 404,
                 "GIT_BRANCH_NOT_FOUND");
    expect_class(DT_GIT_BRANCH_DELETE, "{\"path\": \"r\", \"name\": \"x\"}", 1, "",
                 "error: branch 'x' not found.\n", 404, "GIT_BRANCH_NOT_FOUND");
    expect_class(DT_GIT_BRANCH_CREATE, "{\"path\": \"r\", \"name\": \"x\"}", 128, "",
                 "fatal: a branch named 'x' already exists\n", 409, "GIT_BRANCH_EXISTS");
    expect_class(DT_GIT_PUSH, push, 1, "",
                 "To /tmp/r.git\n ! [rejected]        main -> main (fetch first)\n"
                 "error: failed to push some refs to '/tmp/r.git'\n"
                 "hint: Updates were rejected because the remote contains work\n",
                 409, "GIT_PUSH_REJECTED");
    expect_class(DT_GIT_PUSH, push, 1, "",
                 " ! [remote rejected] main -> main (pre-receive hook declined)\n"
                 "error: failed to push some refs\n",
                 422, "GIT_REMOTE_REJECTED");
    expect_class(DT_GIT_CHECKOUT, "{\"path\": \"r\", \"branch\": \"x\"}", 1, "",
                 "error: Your local changes to the following files would be overwritten by "
                 "checkout:\n\ta.txt\nPlease commit your changes or stash them before you "
                 "switch branches.\nAborting\n",
                 409, "GIT_DIRTY_WORKTREE");
    expect_class(DT_GIT_PULL, push, 1,
                 "Auto-merging a.txt\nCONFLICT (content): Merge conflict in a.txt\n"
                 "Automatic merge failed; fix conflicts and then commit the result.\n",
                 "", 409, "GIT_MERGE_CONFLICT");
    expect_class(DT_GIT_ADD, "{\"path\": \"r\", \"files\": [\"x\"]}", 128, "",
                 "fatal: pathspec 'x' did not match any files\n", 400, "BAD_REQUEST");
    expect_class(DT_GIT_COMMIT, "{\"path\": \"r\", \"message\": \"m\"}", 1,
                 "On branch main\nnothing to commit, working tree clean\n", "", 400,
                 "BAD_REQUEST");

    /* messages: the last lines, hints dropped, secrets redacted */
    struct dt_git_error e = {0};
    const char *err = "hint: try this\nfatal: unable to access 'https://bob:tok3n@h/': "
                      "Could not resolve host: h\n";
    struct dt_git_output o = O(128, "", 0, err);
    assert_null(result_of(DT_GIT_PUSH, push, &o, 1, &e));
    assert_null(strstr(e.message, "tok3n"));
    assert_null(strstr(e.message, "bob"));
    assert_null(strstr(e.message, "hint"));
    assert_non_null(strstr(e.message, "***"));
    assert_non_null(strstr(e.message, "git push failed: fatal: unable to access"));
    dt_git_error_done(&e);

    dt_git_error_not_installed(&e);
    assert_string_equal(e.message, "git is not installed in this sandbox's image");
    assert_int_equal(e.status, 500);
    dt_git_error_done(&e);
}

/* Random bytes (with many NULs, spaces and record prefixes) never crash the parsers. */
static void
test_parse_garbage(void **state)
{
    static const enum dt_git_op ops[] = {DT_GIT_STATUS, DT_GIT_HISTORY, DT_GIT_BRANCHES_LIST,
                                         DT_GIT_REMOTES, DT_GIT_CONFIG_GET};
    static const char alphabet[] = "\0\0 \t\n12u?#R.MA(fetch)branch.ab +-0123456789abcdef\xff\xc3";
    char buf[512];
    unsigned seed = 12345;

    for (int it = 0; it < 3000; it++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        enum dt_git_op op = ops[it % ELEMENTSOF(ops)];
        const char *req = op == DT_GIT_CONFIG_GET ? "{\"key\": \"a.b\"}" : "{\"path\": \"r\"}";
        struct dt_git_output o[2] = {O(it % 7 == 0 ? 1 : 0, buf, len, ""), O(0, buf, len, "")};
        struct dt_git_error e = {0};
        json_t *b = result_of(op, req, o, op == DT_GIT_BRANCHES_LIST ? 2 : 1, &e);
        if (b) {
            char *dump = json_dumps(b, JSON_ENCODE_ANY);
            assert_non_null(dump); /* always valid, encodable JSON */
            free(dump);
        }
        json_decref(b);
        dt_git_error_done(&e);
    }
}

/* ---- end to end with the real git ------------------------------------------------------- */

static char *e2e_tmp, *e2e_home, *e2e_work;

static char *
slurp_fd(int fd, size_t *len)
{
    char *buf = NULL;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(read_fd_all(fd, 1u << 24, &buf, len), 0);
    return buf;
}

/* Run PLAN as the lead would (stop at the first failing step unless ok_to_fail). */
static int
run_plan(const struct dt_git_plan *plan, json_t **body, struct dt_git_error *e)
{
    struct dt_git_output outs[DT_GIT_MAX_STEPS];
    char *bufs[DT_GIT_MAX_STEPS][2] = {{NULL}};
    size_t n = 0;

    for (size_t i = 0; i < plan->n_steps; i++) {
        const struct dt_git_step *s = &plan->steps[i];
        int fo = memfd_create("out", MFD_CLOEXEC), fe = memfd_create("err", MFD_CLOEXEC);
        int fi = memfd_create("in", MFD_CLOEXEC);
        assert_true(fo >= 0 && fe >= 0 && fi >= 0);
        if (s->stdin_data)
            assert_int_equal(write_all(fi, s->stdin_data, s->stdin_len), 0);
        assert_int_equal(lseek(fi, 0, SEEK_SET), 0);

        char **env = NULL;
        char *h = xasprintf("HOME=%s", e2e_home);
        strv_push(&env, h);
        free(h);
        strv_push(&env, "PATH=/usr/bin:/bin");
        strv_push(&env, "GIT_CONFIG_NOSYSTEM=1");
        for (char **k = s->env; *k; k++)
            strv_push(&env, *k);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (dup2(fi, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 || chdir(plan->cwd) < 0)
                _exit(127);
            execve("/usr/bin/git", s->argv, env);
            _exit(127);
        }
        strv_free(env);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        outs[i].exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        bufs[i][0] = slurp_fd(fo, &outs[i].out_len);
        bufs[i][1] = slurp_fd(fe, &outs[i].err_len);
        outs[i].out = bufs[i][0];
        outs[i].err = bufs[i][1];
        close(fo);
        close(fe);
        close(fi);
        n++;
        if (outs[i].exit_code != 0 && !s->ok_to_fail)
            break;
    }
    int r = dt_git_result(plan, outs, n, body, e);
    for (size_t i = 0; i < n; i++) {
        free(bufs[i][0]);
        free(bufs[i][1]);
    }
    return r;
}

/* Plan REQ (printf-style) for OP with the e2e work dir and run it. Expect success unless
 * EXPECT_CODE is given; then check the error code and return NULL. */
static json_t *_printf_(3, 4)
git_ok_or(enum dt_git_op op, const char *expect_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *req = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *j = J(req);
    struct dt_git_plan plan;
    struct dt_error *err = NULL;
    if (dt_git_plan(op, j, e2e_work, &plan, &err) < 0)
        fail_msg("plan %s: %s", req, err->message);
    json_decref(j);
    json_t *body = NULL;
    struct dt_git_error e = {0};
    int r = run_plan(&plan, &body, &e);
    dt_git_plan_done(&plan);
    if (expect_code) {
        if (r >= 0 || strcmp(e.code, expect_code) != 0)
            fail_msg("%s %s: expected %s, got r=%d %s: %s", dt_git_op_name(op), req, expect_code,
                     r, e.code ? e.code : "-", e.message ? e.message : "-");
    } else if (r < 0) {
        fail_msg("%s %s: %d %s: %s", dt_git_op_name(op), req, e.status, e.code, e.message);
    }
    free(req);
    dt_git_error_done(&e);
    return body;
}
#define git_ok(op, ...) git_ok_or(op, NULL, __VA_ARGS__)

static void
write_in(const char *rel, const char *content)
{
    char *p = xasprintf("%s/%s", e2e_work, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, content, strlen(content)), 0);
    close(fd);
    free(p);
}

static const char *
jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        fail_msg("no string '%s'", k);
    return s;
}

static void
test_e2e(void **state)
{
    if (access("/usr/bin/git", X_OK) < 0)
        skip();
    json_t *b;

    /* status/branches/history of a fresh repository */
    git_ok(DT_GIT_INIT, "{\"path\": \"repo\", \"initial_branch\": \"main\"}");
    b = git_ok(DT_GIT_BRANCHES_LIST, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(json_object_get(b, "branches")), 0);
    assert_string_equal(jstr(b, "current"), "main");
    json_decref(b);
    b = git_ok(DT_GIT_HISTORY, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(b), 0);
    json_decref(b);

    /* config */
    git_ok(DT_GIT_CONFIG_USER, "{\"name\": \"Test User\", \"email\": \"t@example.com\", "
                               "\"scope\": \"global\"}");
    b = git_ok(DT_GIT_CONFIG_GET, "{\"key\": \"user.name\", \"scope\": \"global\"}");
    assert_string_equal(jstr(b, "value"), "Test User");
    json_decref(b);
    b = git_ok(DT_GIT_CONFIG_GET, "{\"key\": \"no.such\"}");
    assert_int_equal(json_object_size(b), 0);
    json_decref(b);
    git_ok(DT_GIT_CONFIG_SET, "{\"key\": \"dt.test\", \"value\": \"-x y\", \"scope\": \"local\", "
                              "\"path\": \"repo\"}");
    b = git_ok(DT_GIT_CONFIG_GET, "{\"key\": \"dt.test\", \"scope\": \"local\", \"path\": "
                                  "\"repo\"}");
    assert_string_equal(jstr(b, "value"), "-x y");
    json_decref(b);
    b = git_ok(DT_GIT_CONFIG_GET, "{\"key\": \"dt.test\"}"); /* not global */
    assert_int_equal(json_object_size(b), 0);
    json_decref(b);

    /* untracked, add, commit */
    write_in("repo/a.txt", "a\n");
    write_in("repo/sp ace \xc3\xa9.txt", "b\n");
    char *sub = xasprintf("%s/repo/sub", e2e_work);
    assert_int_equal(mkdir(sub, 0755), 0);
    free(sub);
    write_in("repo/sub/x.txt", "x\n");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_string_equal(jstr(b, "currentBranch"), "main");
    assert_int_equal(json_array_size(json_object_get(b, "fileStatus")), 3);
    assert_file(b, "sub/x.txt", "Untracked", "Untracked", "");
    assert_file(b, "sp ace \xc3\xa9.txt", "Untracked", "Untracked", "");
    assert_true(json_is_false(json_object_get(b, "branchPublished")));
    json_decref(b);
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\".\"]}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_file(b, "a.txt", "Added", "Unmodified", "");
    json_decref(b);
    b = git_ok(DT_GIT_COMMIT, "{\"path\": \"repo\", \"message\": \"first\", \"author\": "
                              "\"Alice\", \"email\": \"alice@example.com\"}");
    char *first = xstrdup(jstr(b, "hash"));
    assert_int_equal(strlen(first), 40);
    json_decref(b);
    b = git_ok(DT_GIT_HISTORY, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(b), 1);
    assert_string_equal(jstr(json_array_get(b, 0), "author"), "Alice");
    assert_string_equal(jstr(json_array_get(b, 0), "message"), "first");
    assert_string_equal(jstr(json_array_get(b, 0), "hash"), first);
    json_decref(b);
    git_ok_or(DT_GIT_COMMIT, "BAD_REQUEST", "{\"path\": \"repo\", \"message\": \"none\"}");
    b = git_ok(DT_GIT_COMMIT, "{\"path\": \"repo\", \"message\": \"empty\", \"allow_empty\": "
                              "true}");
    json_decref(b);

    /* branches */
    git_ok(DT_GIT_BRANCH_CREATE, "{\"path\": \"repo\", \"name\": \"feature\"}");
    git_ok_or(DT_GIT_BRANCH_CREATE, "GIT_BRANCH_EXISTS", "{\"path\": \"repo\", \"name\": "
                                                         "\"feature\"}");
    b = git_ok(DT_GIT_BRANCHES_LIST, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(json_object_get(b, "branches")), 2);
    assert_string_equal(jstr(b, "current"), "feature");
    json_decref(b);
    git_ok(DT_GIT_CHECKOUT, "{\"path\": \"repo\", \"branch\": \"main\"}");
    git_ok_or(DT_GIT_CHECKOUT, "GIT_BRANCH_NOT_FOUND", "{\"path\": \"repo\", \"branch\": "
                                                       "\"nosuch\"}");
    git_ok(DT_GIT_BRANCH_DELETE, "{\"path\": \"repo\", \"name\": \"feature\"}");
    git_ok_or(DT_GIT_BRANCH_DELETE, "GIT_BRANCH_NOT_FOUND", "{\"path\": \"repo\", \"name\": "
                                                            "\"feature\"}");
    b = git_ok(DT_GIT_BRANCHES_LIST, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(json_object_get(b, "branches")), 1);
    json_decref(b);
    git_ok_or(DT_GIT_STATUS, "GIT_REPO_NOT_FOUND", "{\"path\": \"%s\"}", e2e_home);
    git_ok_or(DT_GIT_STATUS, "GIT_REPO_NOT_FOUND", "{\"path\": \"does/not/exist\"}");

    /* remote, push */
    git_ok(DT_GIT_INIT, "{\"path\": \"remote.git\", \"bare\": true, \"initial_branch\": "
                        "\"main\"}");
    git_ok(DT_GIT_REMOTE_ADD, "{\"path\": \"repo\", \"name\": \"origin\", \"url\": "
                              "\"file://%s/nowhere.git\"}",
           e2e_work);
    git_ok_or(DT_GIT_REMOTE_ADD, "CONFLICT", "{\"path\": \"repo\", \"name\": \"origin\", "
                                             "\"url\": \"file://%s/remote.git\"}",
              e2e_work);
    git_ok(DT_GIT_REMOTE_ADD, "{\"path\": \"repo\", \"name\": \"origin\", \"url\": "
                              "\"file://%s/remote.git\", \"overwrite\": true}",
           e2e_work);
    b = git_ok(DT_GIT_REMOTES, "{\"path\": \"repo\"}");
    json_t *rs = json_object_get(b, "remotes");
    assert_int_equal(json_array_size(rs), 1);
    assert_string_equal(jstr(json_array_get(rs, 0), "name"), "origin");
    char *url = xasprintf("file://%s/remote.git", e2e_work);
    assert_string_equal(jstr(json_array_get(rs, 0), "url"), url);
    json_decref(b);
    git_ok(DT_GIT_PUSH, "{\"path\": \"repo\", \"set_upstream\": true}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_true(json_is_true(json_object_get(b, "branchPublished")));
    assert_string_equal(jstr(b, "upstream"), "origin/main");
    assert_int_equal(json_integer_value(json_object_get(b, "ahead")), 0);
    json_decref(b);

    /* clone with branch and depth, then a second commit travels through pull */
    write_in("repo/b.txt", "b\n");
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\"b.txt\"]}");
    json_decref(git_ok(DT_GIT_COMMIT, "{\"path\": \"repo\", \"message\": \"second\"}"));
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_int_equal(json_integer_value(json_object_get(b, "ahead")), 1);
    json_decref(b);
    git_ok(DT_GIT_CLONE, "{\"url\": \"%s\", \"path\": \"clone1\", \"branch\": \"main\", "
                         "\"depth\": 1}",
           url);
    b = git_ok(DT_GIT_HISTORY, "{\"path\": \"clone1\"}");
    assert_int_equal(json_array_size(b), 1);
    json_decref(b);
    git_ok(DT_GIT_PUSH, "{\"path\": \"repo\", \"remote\": \"origin\", \"branch\": \"main\"}");
    git_ok(DT_GIT_PULL, "{\"path\": \"clone1\"}");
    char *bpath = xasprintf("%s/clone1/b.txt", e2e_work);
    assert_int_equal(access(bpath, F_OK), 0);
    free(bpath);
    b = git_ok(DT_GIT_HISTORY, "{\"path\": \"clone1\"}");
    assert_string_equal(jstr(json_array_get(b, 0), "message"), "second");
    json_decref(b);
    git_ok_or(DT_GIT_CLONE, "GIT_BRANCH_NOT_FOUND", "{\"url\": \"%s\", \"path\": \"c3\", "
                                                    "\"branch\": \"nope\"}",
              url);
    git_ok_or(DT_GIT_CLONE, "GIT_REPO_NOT_FOUND", "{\"url\": \"file://%s/nothing.git\", "
                                                  "\"path\": \"c4\"}",
              e2e_work);

    /* clone at a commit: detached */
    git_ok(DT_GIT_CLONE, "{\"url\": \"%s\", \"path\": \"clone2\", \"commit_id\": \"%s\"}", url,
           first);
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"clone2\"}");
    assert_true(json_is_true(json_object_get(b, "detached")));
    json_decref(b);

    /* rejected push: clone1 pushes first, repo is then behind */
    write_in("clone1/c.txt", "c\n");
    git_ok(DT_GIT_ADD, "{\"path\": \"clone1\", \"files\": [\"c.txt\"]}");
    json_decref(git_ok(DT_GIT_COMMIT, "{\"path\": \"clone1\", \"message\": \"from clone\"}"));
    git_ok(DT_GIT_PUSH, "{\"path\": \"clone1\"}");
    write_in("repo/d.txt", "d\n");
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\"d.txt\"]}");
    json_decref(git_ok(DT_GIT_COMMIT, "{\"path\": \"repo\", \"message\": \"diverge\"}"));
    git_ok_or(DT_GIT_PUSH, "GIT_PUSH_REJECTED", "{\"path\": \"repo\"}");

    /* reset drops the local commit; pull then fast-forwards */
    git_ok(DT_GIT_RESET, "{\"path\": \"repo\", \"mode\": \"hard\", \"target\": \"HEAD~1\"}");
    git_ok(DT_GIT_PULL, "{\"path\": \"repo\", \"remote\": \"origin\", \"branch\": \"main\"}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_int_equal(json_array_size(json_object_get(b, "fileStatus")), 0);
    assert_int_equal(json_integer_value(json_object_get(b, "behind")), 0);
    json_decref(b);
    b = git_ok(DT_GIT_HISTORY, "{\"path\": \"repo\"}");
    assert_string_equal(jstr(json_array_get(b, 0), "message"), "from clone");
    json_decref(b);

    /* restore: worktree, then staged */
    write_in("repo/a.txt", "changed\n");
    git_ok(DT_GIT_RESTORE, "{\"path\": \"repo\", \"files\": [\"a.txt\"]}");
    char *a = dt_test_read_trimmed(e2e_work, "repo/a.txt");
    assert_string_equal(a, "a");
    free(a);
    write_in("repo/a.txt", "staged\n");
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\"a.txt\"]}");
    git_ok(DT_GIT_RESTORE, "{\"path\": \"repo\", \"files\": [\"a.txt\"], \"staged\": true}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_file(b, "a.txt", "Unmodified", "Modified", "");
    json_decref(b);
    git_ok(DT_GIT_RESET, "{\"path\": \"repo\", \"mode\": \"hard\"}");

    /* a rename shows its origin in "extra"; reset with files unstages */
    char *from = xasprintf("%s/repo/b.txt", e2e_work), *to = xasprintf("%s/repo/b2.txt", e2e_work);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\".\"]}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_file(b, "b2.txt", "Renamed", "Unmodified", "b.txt");
    json_decref(b);
    git_ok(DT_GIT_RESET, "{\"path\": \"repo\", \"files\": [\"b2.txt\"]}");
    b = git_ok(DT_GIT_STATUS, "{\"path\": \"repo\"}");
    assert_file(b, "b2.txt", "Untracked", "Untracked", "");
    json_decref(b);

    /* dirty worktree blocks a checkout that would overwrite */
    git_ok(DT_GIT_RESET, "{\"path\": \"repo\", \"mode\": \"hard\"}");
    git_ok(DT_GIT_BRANCH_CREATE, "{\"path\": \"repo\", \"name\": \"other\"}");
    write_in("repo/a.txt", "other\n");
    git_ok(DT_GIT_ADD, "{\"path\": \"repo\", \"files\": [\"a.txt\"]}");
    json_decref(git_ok(DT_GIT_COMMIT, "{\"path\": \"repo\", \"message\": \"on other\"}"));
    write_in("repo/a.txt", "dirty\n");
    git_ok_or(DT_GIT_CHECKOUT, "GIT_DIRTY_WORKTREE", "{\"path\": \"repo\", \"branch\": "
                                                     "\"main\"}");

    /* stored credentials */
    git_ok(DT_GIT_CREDENTIALS, "{\"username\": \"u\", \"password\": \"s3cret\", \"host\": "
                               "\"example.com\"}");
    char *creds = dt_test_read_trimmed(e2e_home, ".git-credentials");
    assert_non_null(creds);
    assert_string_equal(creds, "https://u:s3cret@example.com");
    free(creds);

    free(url);
    free(first);
}

/* The inline credential helper really answers with the env's secrets. */
static void
test_e2e_helper(void **state)
{
    if (access("/usr/bin/git", X_OK) < 0)
        skip();
    struct dt_git_plan plan;
    assert_int_equal(plan_of(DT_GIT_CLONE,
                             "{\"url\": \"https://h/r\", \"path\": \"x\", \"username\": "
                             "\"bob smith\", \"password\": \"p a$s'w\\\"d\"}",
                             &plan, NULL),
                     0);
    /* swap "clone ..." for "credential fill" */
    struct dt_git_step *s = &plan.steps[0];
    int c = argv_index(s, "clone");
    assert_true(c > 0);
    for (char **a = s->argv + c; *a; a++)
        free(*a);
    s->argv[c] = xstrdup("credential");
    s->argv[c + 1] = xstrdup("fill");
    s->argv[c + 2] = NULL;
    s->stdin_data = xstrdup("protocol=https\nhost=h\n\n");
    s->stdin_len = strlen(s->stdin_data);
    plan.op = DT_GIT_INIT; /* a void op: only the exit status matters to dt_git_result */
    free(plan.cwd);
    plan.cwd = xstrdup(e2e_work);

    /* capture stdout directly */
    int fo = memfd_create("o", MFD_CLOEXEC), fi = memfd_create("i", MFD_CLOEXEC);
    assert_int_equal(write_all(fi, s->stdin_data, s->stdin_len), 0);
    assert_int_equal(lseek(fi, 0, SEEK_SET), 0);
    char **env = NULL;
    char *h = xasprintf("HOME=%s", e2e_home);
    strv_push(&env, h);
    free(h);
    strv_push(&env, "PATH=/usr/bin:/bin");
    for (char **k = s->env; *k; k++)
        strv_push(&env, *k);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(fi, 0) < 0 || dup2(fo, 1) < 0)
            _exit(127);
        execve("/usr/bin/git", s->argv, env);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    size_t len;
    char *out = slurp_fd(fo, &len);
    assert_non_null(strstr(out, "username=bob smith\n"));
    assert_non_null(strstr(out, "password=p a$s'w\"d\n"));
    free(out);
    strv_free(env);
    close(fo);
    close(fi);
    dt_git_plan_done(&plan);
}

static int
setup(void **state)
{
    e2e_tmp = dt_test_mkdtemp("dt-git");
    e2e_home = xasprintf("%s/home", e2e_tmp);
    e2e_work = xasprintf("%s/work", e2e_tmp);
    if (mkdir(e2e_home, 0700) < 0 || mkdir(e2e_work, 0755) < 0)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    dt_test_rm_rf(e2e_tmp);
    free(e2e_tmp);
    free(e2e_home);
    free(e2e_work);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation), cmocka_unit_test(test_plans),
        cmocka_unit_test(test_parse_status), cmocka_unit_test(test_parse_others),
        cmocka_unit_test(test_classify),     cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_e2e),
        cmocka_unit_test(test_e2e_helper),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
