/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the plan validator and user lookup: every rule rejects with a message that
 * names the field, and a good plan passes. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "runtime/rootfs.h"
#include "testlib.h"

static char *root;

static void
good_plan(struct dt_plan *p)
{
    dt_plan_init(p);
    p->id = xstrdup("sb-1");
    strv_push(&p->layers, root);
    strv_push(&p->args, "/bin/true");
    p->env = xcalloc(1, sizeof(char *));
}

static void
expect_invalid(struct dt_plan *p, int want, const char *needle)
{
    struct dt_error *e = NULL;
    assert_int_equal(dt_plan_validate(p, &e), want);
    assert_non_null(e);
    if (!strstr(e->message, needle))
        fail_msg("message '%s' does not mention '%s'", e->message, needle);
    dt_error_free(e);
    dt_plan_done(p);
}

static void
test_good(void **state)
{
    struct dt_plan p;
    good_plan(&p);
    p.memory_bytes = 64 << 20;
    p.cpu_millicpus = 500;
    p.pids_max = 10;
    p.hostname = xstrdup("box");
    p.cwd = xstrdup("/tmp");
    p.user = xstrdup("1000:1000");
    struct dt_error *e = NULL;
    assert_int_equal(dt_plan_validate(&p, &e), 0);
    assert_null(e);
    dt_plan_done(&p);
}

static void
test_rejects(void **state)
{
    struct dt_plan p;
    good_plan(&p);
    free(p.id);
    p.id = xstrdup("../x");
    expect_invalid(&p, -EINVAL, "sandbox id");
    good_plan(&p);
    free(p.layers[0]);
    p.layers[0] = xstrdup("relative/path");
    expect_invalid(&p, -EINVAL, "layer");
    good_plan(&p);
    free(p.layers[0]);
    p.layers[0] = xstrdup("/nonexistent-layer");
    expect_invalid(&p, -ENOENT, "nonexistent-layer");
    good_plan(&p);
    free(p.layers[0]);
    p.layers[0] = xstrdup("/a/../b");
    expect_invalid(&p, -EINVAL, "layer");
    good_plan(&p);
    p.memory_bytes = 1024;
    expect_invalid(&p, -EINVAL, "memory");
    good_plan(&p);
    p.cpu_millicpus = 5;
    expect_invalid(&p, -EINVAL, "cpu");
    good_plan(&p);
    p.cpu_millicpus = 1000000;
    expect_invalid(&p, -EINVAL, "cpu");
    good_plan(&p);
    p.pids_max = 0;
    expect_invalid(&p, -EINVAL, "pids");
    good_plan(&p);
    p.disk_bytes = 1 << 20;
    expect_invalid(&p, -EINVAL, "disk");
    good_plan(&p);
    p.hostname = xstrdup("bad host");
    expect_invalid(&p, -EINVAL, "hostname");
    good_plan(&p);
    strv_push(&p.env, "NOEQUALS");
    expect_invalid(&p, -EINVAL, "NOEQUALS");
    good_plan(&p);
    p.cwd = xstrdup("tmp");
    expect_invalid(&p, -EINVAL, "working directory");
    good_plan(&p);
    p.user = xstrdup("a b");
    expect_invalid(&p, -EINVAL, "user");
    good_plan(&p);
    strv_free(p.args);
    p.args = xcalloc(1, sizeof(char *));
    expect_invalid(&p, -EINVAL, "command");
    good_plan(&p);
    p.binds = xcalloc(1, sizeof(struct dt_bind));
    p.n_binds = 1;
    p.binds[0].source = xstrdup("/nonexistent-src");
    p.binds[0].destination = xstrdup("/data");
    expect_invalid(&p, -ENOENT, "nonexistent-src");
    good_plan(&p);
    p.binds = xcalloc(1, sizeof(struct dt_bind));
    p.n_binds = 1;
    p.binds[0].source = xstrdup("/tmp");
    p.binds[0].destination = xstrdup("/");
    expect_invalid(&p, -EINVAL, "destination");
    good_plan(&p);
    strv_push(&p.allow_cidrs, "10.0.0.0/8");
    expect_invalid(&p, -EINVAL, "bridge");
    good_plan(&p);
    p.net_mode = DT_NET_BRIDGE;
    strv_push(&p.allow_cidrs, "10.0.0.0/33");
    expect_invalid(&p, -EINVAL, "CIDR");
}

static void
test_lookup_user(void **state)
{
    char *dirs[] = {root, NULL};
    struct dt_user u;
    struct dt_error *e = NULL;
    assert_int_equal(dt_rootfs_lookup_user(dirs, "daytona", &u, &e), 0);
    assert_int_equal(u.uid, 1000);
    assert_string_equal(u.home, "/home/daytona");
    assert_int_equal(dt_rootfs_lookup_user(dirs, NULL, &u, &e), 0);
    assert_int_equal(u.uid, 0);
    assert_string_equal(u.home, "/root");
    assert_int_equal(dt_rootfs_lookup_user(dirs, "4321:99", &u, &e), 0);
    assert_int_equal(u.uid, 4321);
    assert_int_equal(u.gid, 99);
    assert_int_equal(dt_rootfs_lookup_user(dirs, "nosuch", &u, &e), -ENOENT);
    assert_non_null(strstr(e->message, "nosuch"));
    dt_error_free(e);
    e = NULL;
    assert_int_equal(dt_rootfs_lookup_user(dirs, "70000", &u, &e), -EINVAL);
    dt_error_free(e);
}

static int
setup(void **state)
{
    root = dt_test_mkdtemp("dt-spec");
    char *etc = xasprintf("%s/etc", root);
    mkdir(etc, 0755);
    char *pw = xasprintf("%s/passwd", etc);
    const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                          "broken line\n"
                          "daytona:x:1000:1000::/home/daytona:/bin/sh\n";
    assert_int_equal(write_file_at(AT_FDCWD, pw, passwd, sizeof(passwd) - 1, 0644), 0);
    free(pw);
    free(etc);
    return 0;
}

static int
teardown(void **state)
{
    dt_test_rm_rf(root);
    free(root);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good),
            cmocka_unit_test(test_rejects),
            cmocka_unit_test(test_lookup_user),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
