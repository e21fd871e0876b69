/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for libdt-common: strict parsers, errors with context, fd and fs helpers. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "testlib.h"

static void
test_parse_u64(void **state)
{
    uint64_t v;
    assert_int_equal(parse_u64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
    assert_int_equal(parse_u64("", &v), -EINVAL);
    assert_int_equal(parse_u64("-1", &v), -EINVAL);
    assert_int_equal(parse_u64(" 1", &v), -EINVAL);
    assert_int_equal(parse_u64("1x", &v), -EINVAL);
    uint32_t u;
    assert_int_equal(parse_u32("4294967296", &u), -ERANGE);
    int64_t i;
    assert_int_equal(parse_i64("-9223372036854775808", &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(parse_i64("9223372036854775808", &i), -ERANGE);
}

static void
test_parse_size(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size("512M", &v), 0);
    assert_int_equal(v, 512ULL << 20);
    assert_int_equal(parse_size("1.5G", &v), 0);
    assert_int_equal(v, 3ULL << 29);
    assert_int_equal(parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(parse_size("2kb", &v), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(parse_size("1.5", &v), -EINVAL); /* fractional bytes */
    assert_int_equal(parse_size("lots", &v), -EINVAL);
    assert_int_equal(parse_size("1Q", &v), -EINVAL);
    assert_int_equal(parse_size("16777216T", &v), -ERANGE);
    assert_int_equal(parse_size("", &v), -EINVAL);
}

static void
test_parse_millicpus(void **state)
{
    uint64_t v;
    assert_int_equal(parse_millicpus("1", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(parse_millicpus("0.5", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(parse_millicpus("2.25", &v), 0);
    assert_int_equal(v, 2250);
    assert_int_equal(parse_millicpus("0", &v), -EINVAL);
    assert_int_equal(parse_millicpus("0.0001", &v), -EINVAL);
    assert_int_equal(parse_millicpus(".5", &v), -EINVAL);
    assert_int_equal(parse_millicpus("1.", &v), -EINVAL);
    assert_int_equal(parse_millicpus("-1", &v), -EINVAL);
}

static void
test_error_context(void **state)
{
    struct dt_error *e = NULL;
    assert_int_equal(dt_error_errno(&e, ENOENT, "open '%s'", "x"), -ENOENT);
    assert_int_equal(dt_error_wrap(&e, "start sandbox '%s'", "a1"), -ENOENT);
    assert_string_equal(e->message, "start sandbox 'a1': open 'x': No such file or directory");
    /* The first error wins; later ones only return their code. */
    assert_int_equal(dt_error_set(&e, EINVAL, "other"), -EINVAL);
    assert_int_equal(e->code, ENOENT);
    dt_error_free(e);
    assert_int_equal(dt_error_set(NULL, -EBUSY, "no sink"), -EBUSY);
    assert_int_equal(dt_error_wrap(NULL, "x"), -EIO);
    assert_string_equal(dt_errno_name(ENOENT), "ENOENT");
}

static void
test_fd_and_fs(void **state)
{
    char *dir = dt_test_mkdtemp("dt-common");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(write_file_at(dfd, "f", "hello", 5, 0600), 0);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(read_file_at(dfd, "f", 100, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(read_file_at(dfd, "f", 3, &buf, &len), -EFBIG);
    assert_int_equal(read_file_at(dfd, "f", 5, &buf, &len), 0); /* exactly at the limit */
    assert_int_equal(len, 5);
    free(buf);
    assert_int_equal(write_string_at(dfd, "f", "x"), 0);
    assert_int_equal(read_file_at(dfd, "f", 100, &buf, NULL), 0);
    assert_string_equal(buf, "x");
    free(buf);

    char *deep = xasprintf("%s/a/b/c", dir);
    assert_int_equal(mkdir_p(deep, 0755), 0);
    assert_int_equal(mkdir_p(deep, 0755), 0); /* idempotent */
    char *f = xasprintf("%s/a/b/c/file", dir);
    assert_int_equal(write_file_at(AT_FDCWD, f, "y", 1, 0600), 0);
    char *l = xasprintf("%s/a/link", dir);
    assert_int_equal(symlink("/etc", l), 0);
    assert_int_equal(rm_rf_at(dfd, "a"), 0);
    assert_int_equal(faccessat(dfd, "a", F_OK, 0), -1);
    assert_int_equal(access("/etc/passwd", F_OK), 0); /* the symlink was not followed */
    assert_int_equal(rm_rf_at(dfd, "a"), 0);          /* missing is fine */

    char num[24];
    assert_string_equal(fmt_u64(num, 0), "0");
    assert_string_equal(fmt_u64(num, 18446744073709551615ULL), "18446744073709551615");
    assert_string_equal(fmt_i64(num, -42), "-42");

    unsigned long long st = 0;
    assert_int_equal(proc_start_time(getpid(), &st), 0);
    assert_true(st > 0);
    assert_int_equal(proc_start_time(0x3fffffff, &st), -ESRCH);

    free(deep);
    free(f);
    free(l);
    close(dfd);
    dt_test_rm_rf(dir);
    free(dir);
}

static void
test_iso8601(void **state)
{
    char buf[ISO8601_MSEC_SIZE];

    format_iso8601_msec(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    format_iso8601_msec(1795490267123LL, buf);
    assert_string_equal(buf, "2026-11-24T03:17:47.123Z");
    format_iso8601_msec(-1, buf); /* before the epoch: milliseconds stay positive */
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    format_iso8601_msec(INT64_MAX, buf); /* no year overflow */
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    assert_true(realtime_msec() > 1700000000000LL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_u64),      cmocka_unit_test(test_parse_size),
            cmocka_unit_test(test_parse_millicpus), cmocka_unit_test(test_error_context),
            cmocka_unit_test(test_fd_and_fs),      cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
