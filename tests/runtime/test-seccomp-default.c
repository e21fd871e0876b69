/* SPDX-License-Identifier: Apache-2.0 */
/* The seccomp program compiled at build time is the one libseccomp compiles now. */
#include <string.h>

#include "runtime/seccomp.h"
#include "testlib.h"

static void
test_default_matches_compiled(void **state)
{
    struct sock_fprog built, fixed;
    struct dt_error *err = NULL;

    assert_int_equal(dt_seccomp_build_default(&built, &err), 0);
    dt_seccomp_default(&fixed);
    assert_int_equal(built.len, fixed.len);
    assert_memory_equal(built.filter, fixed.filter, sizeof(struct sock_filter) * built.len);
    free(built.filter);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_default_matches_compiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
