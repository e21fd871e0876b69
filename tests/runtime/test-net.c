/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure parts of src/runtime/net.c: CIDR parsing, slot addresses, address
 * formatting and the sandbox resolv.conf built from sample host files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "runtime/net.h"
#include "testlib.h"
#include "dt/banned.h"

#define IP4(a, b, c, d) \
    (((uint32_t) (a) << 24) | ((uint32_t) (b) << 16) | ((uint32_t) (c) << 8) | (uint32_t) (d))

static char *tmpdir;

static void
test_parse_cidr_good(void **state)
{
    uint32_t a;
    unsigned p;

    assert_int_equal(dt_net_parse_cidr("10.0.0.0/8", &a, &p), 0);
    assert_int_equal(a, IP4(10, 0, 0, 0));
    assert_int_equal(p, 8);

    assert_int_equal(dt_net_parse_cidr("1.2.3.4", &a, &p), 0);
    assert_int_equal(a, IP4(1, 2, 3, 4));
    assert_int_equal(p, 32);

    assert_int_equal(dt_net_parse_cidr("192.168.7.9/24", &a, &p), 0);
    assert_int_equal(a, IP4(192, 168, 7, 0)); /* host bits cleared */
    assert_int_equal(p, 24);

    assert_int_equal(dt_net_parse_cidr("0.0.0.0/0", &a, &p), 0);
    assert_int_equal(a, 0);
    assert_int_equal(p, 0);

    assert_int_equal(dt_net_parse_cidr("255.255.255.255/32", &a, &p), 0);
    assert_int_equal(a, UINT32_MAX);

    assert_int_equal(dt_net_parse_cidr("10.1.2.3/31", &a, &p), 0);
    assert_int_equal(a, IP4(10, 1, 2, 2));

    /* NULL outputs are allowed */
    assert_int_equal(dt_net_parse_cidr("8.8.8.8/32", NULL, NULL), 0);
}

static void
test_parse_cidr_bad(void **state)
{
    static const char *const bad[] = {
            "",
            "/",
            "/8",
            "1.2.3",
            "1.2.3.4/",
            "1.2.3.4/33",
            "1.2.3.4/-1",
            "1.2.3.4/8x",
            " 1.2.3.4",
            "1.2.3.4 ",
            "256.1.1.1",
            "a.b.c.d",
            "1.2.3.4/8/8",
            "::1",
            "::/0",
            "1.2.3.4/ 8",
            "0x0a.0.0.1",
            "1.2.3.4.5",
            "1.2.3.4/99999999999999999999",
    };
    uint32_t a = 7;
    unsigned p = 7;

    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        if (dt_net_parse_cidr(bad[i], &a, &p) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(dt_net_parse_cidr(NULL, &a, &p), -EINVAL);
    /* outputs untouched on failure */
    assert_int_equal(a, 7);
    assert_int_equal(p, 7);
}

static void
test_address_for_slot(void **state)
{
    struct dt_net_host h;
    uint32_t a = 0;

    dt_net_host_init_default(&h);
    assert_string_equal(h.bridge, "dt0");
    assert_string_equal(h.table, "daytona");
    assert_string_equal(h.veth_prefix, "dtv");
    assert_int_equal(h.subnet, IP4(10, 88, 0, 0));
    assert_int_equal(h.prefix, 16);

    assert_int_equal(dt_net_address_for_slot(&h, 0, &a), 0);
    assert_int_equal(a, IP4(10, 88, 0, 2));
    assert_int_equal(dt_net_address_for_slot(&h, 253, &a), 0);
    assert_int_equal(a, IP4(10, 88, 0, 255));
    assert_int_equal(dt_net_address_for_slot(&h, 254, &a), 0);
    assert_int_equal(a, IP4(10, 88, 1, 0));
    /* last usable host address is .255.254; .255.255 is the broadcast address */
    assert_int_equal(dt_net_address_for_slot(&h, 65532, &a), 0);
    assert_int_equal(a, IP4(10, 88, 255, 254));
    assert_int_equal(dt_net_address_for_slot(&h, 65533, &a), -ERANGE);
    assert_int_equal(dt_net_address_for_slot(&h, UINT32_MAX, &a), -ERANGE);

    h.subnet = IP4(192, 168, 5, 0);
    h.prefix = 24;
    assert_int_equal(dt_net_address_for_slot(&h, 0, &a), 0);
    assert_int_equal(a, IP4(192, 168, 5, 2));
    assert_int_equal(dt_net_address_for_slot(&h, 252, &a), 0);
    assert_int_equal(a, IP4(192, 168, 5, 254));
    assert_int_equal(dt_net_address_for_slot(&h, 253, &a), -ERANGE);

    h.subnet = IP4(10, 0, 0, 0);
    h.prefix = 30; /* network, gateway, one sandbox, broadcast */
    assert_int_equal(dt_net_address_for_slot(&h, 0, &a), 0);
    assert_int_equal(a, IP4(10, 0, 0, 2));
    assert_int_equal(dt_net_address_for_slot(&h, 1, &a), -ERANGE);

    h.prefix = 31;
    assert_int_equal(dt_net_address_for_slot(&h, 0, &a), -ERANGE);
    h.prefix = 32;
    assert_int_equal(dt_net_address_for_slot(&h, 0, &a), -ERANGE);

    h.subnet = 0;
    h.prefix = 8;
    assert_int_equal(dt_net_address_for_slot(&h, (1u << 24) - 4, &a), 0);
    assert_int_equal(a, IP4(0, 255, 255, 254));
    assert_int_equal(dt_net_address_for_slot(&h, (1u << 24) - 3, &a), -ERANGE);
}

static void
test_format_ip4(void **state)
{
    char buf[16];

    assert_string_equal(dt_net_format_ip4(0, buf), "0.0.0.0");
    assert_string_equal(dt_net_format_ip4(UINT32_MAX, buf), "255.255.255.255");
    assert_string_equal(dt_net_format_ip4(IP4(10, 88, 0, 1), buf), "10.88.0.1");
    assert_ptr_equal(dt_net_format_ip4(IP4(1, 2, 3, 4), buf), buf);
    assert_string_equal(buf, "1.2.3.4");
}

static char *
sample(const char *name, const char *content)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    assert_int_equal(write_file_at(AT_FDCWD, path, content, strlen(content), 0644), 0);
    return path;
}

static void
check_resolv(const char *primary_text, const char *fallback_text, const char *expected)
{
    _cleanup_free_ char *p = sample("resolv.conf", primary_text);
    _cleanup_free_ char *f = fallback_text ? sample("fallback.conf", fallback_text)
                                           : xasprintf("%s/missing.conf", tmpdir);
    _cleanup_free_ char *out = dt_net_resolv_conf_from(p, f);

    assert_non_null(out);
    assert_string_equal(out, expected);
}

static void
test_resolv_plain(void **state)
{
    check_resolv("# generated\n"
                 "nameserver 8.8.8.8\n"
                 "nameserver\t1.1.1.1   # trailing comment\n"
                 "search example.com corp.example\n"
                 "options edns0 trust-ad\n"
                 "sortlist 130.155.160.0/255.255.240.0\n",
                 NULL,
                 "nameserver 8.8.8.8\n"
                 "nameserver 1.1.1.1\n"
                 "search example.com corp.example\n"
                 "options edns0 trust-ad\n");
}

static void
test_resolv_skips_unreachable(void **state)
{
    /* loopback, any-address, IPv6 (sandboxes are IPv4-only) and junk are all skipped */
    check_resolv("nameserver 127.0.0.53\n"
                 "nameserver ::1\n"
                 "nameserver 127.1.2.3\n"
                 "nameserver 0.0.0.0\n"
                 "nameserver fe80::1%eth0\n"
                 "nameserver 2001:db8::53\n"
                 "nameserver not-an-address\n"
                 "nameserver\n"
                 "; nameserver 5.5.5.5\n"
                 "  nameserver 9.9.9.9  \r\n"
                 "domain lan\n",
                 "nameserver 4.4.4.4\n",
                 "nameserver 9.9.9.9\n"
                 "domain lan\n");
}

static void
test_resolv_loopback_only_uses_fallback(void **state)
{
    /* the systemd-resolved layout: the stub in /etc/resolv.conf, the real servers elsewhere */
    check_resolv("nameserver 127.0.0.53\n"
                 "options edns0 trust-ad\n"
                 "search lan\n",
                 "# This is /run/systemd/resolve/resolv.conf\n"
                 "nameserver 192.0.2.53\n"
                 "nameserver 127.0.0.1\n"
                 "nameserver 198.51.100.53\n"
                 "search ignored.example\n",
                 "nameserver 192.0.2.53\n"
                 "nameserver 198.51.100.53\n"
                 "options edns0 trust-ad\n"
                 "search lan\n");
}

static void
test_resolv_none(void **state)
{
    /* loopback only and no fallback file */
    check_resolv("nameserver 127.0.0.53\nsearch lan\n", NULL,
                 "# no nameserver of the host is reachable from the sandbox\n"
                 "search lan\n");
    /* loopback only, fallback also loopback only */
    check_resolv("nameserver ::1\n", "nameserver 127.0.0.1\n",
                 "# no nameserver of the host is reachable from the sandbox\n");
    /* empty file: glibc would use 127.0.0.1, so the fallback is consulted */
    check_resolv("", "nameserver 203.0.113.1\n", "nameserver 203.0.113.1\n");

    /* missing primary file, missing fallback */
    _cleanup_free_ char *missing = xasprintf("%s/nope", tmpdir);
    _cleanup_free_ char *out = dt_net_resolv_conf_from(missing, NULL);
    assert_string_equal(out, "# no nameserver of the host is reachable from the sandbox\n");
}

static void
test_resolv_at_most_three(void **state)
{
    check_resolv("nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
                 "nameserver 10.0.0.4\n",
                 NULL, "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n");
    /* no final newline */
    check_resolv("nameserver 10.0.0.9", NULL, "nameserver 10.0.0.9\n");
}

static void
test_resolv_host_default(void **state)
{
    /* whatever this machine has, the result is a non-empty text ending in a newline */
    _cleanup_free_ char *out = dt_net_resolv_conf(NULL);
    assert_non_null(out);
    assert_true(strlen(out) > 0);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_null(strstr(out, "nameserver 127."));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_cidr_good),
            cmocka_unit_test(test_parse_cidr_bad),
            cmocka_unit_test(test_address_for_slot),
            cmocka_unit_test(test_format_ip4),
            cmocka_unit_test(test_resolv_plain),
            cmocka_unit_test(test_resolv_skips_unreachable),
            cmocka_unit_test(test_resolv_loopback_only_uses_fallback),
            cmocka_unit_test(test_resolv_none),
            cmocka_unit_test(test_resolv_at_most_three),
            cmocka_unit_test(test_resolv_host_default),
    };
    int r;

    tmpdir = dt_test_mkdtemp("test-net");
    r = cmocka_run_group_tests(tests, NULL, NULL);
    dt_test_rm_rf(tmpdir);
    free(tmpdir);
    return r;
}
