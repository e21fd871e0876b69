/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the agent's port and metrics readers: /proc/net/tcp parsing on fixture text and
 * on real sockets, the CPU sampler and CPU count on fixture cgroup trees, meminfo, and the
 * /system/metrics JSON on the real /proc. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/sysinfo.h"
#include "dt/fs-util.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

static const char tcp_txt[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
        "inode\n"
        "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
        "1001 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
        "1002 1 0000000000000000 100 0 0 10 0\n"
        "   2: 0100007F:1F40 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 "
        "1003 1 0000000000000000 20 4 30 10 -1\n"
        "   3: 0100007F:0050 00000000:0000 0a 00000000:00000000 00:00000000 00000000     0        0 "
        "1004\n"
        "garbage\n"
        "   4: 0100007G:0051 00000000:0000 0A\n"      /* bad hex address */
        "   5: 0100007F:0052 00000000:0000 0A0\n"     /* bad state */
        "   x: 0100007F:0053 00000000:0000 0A\n"      /* bad slot */
        "   6: 0100007F:0000 00000000:0000 0A\n"      /* port 0 */
        "   7: 0100007F:0054\n"                       /* truncated */
        "   8: 0100007F:0055 00000000:0000 0A";       /* no newline at the end */

static const char tcp6_txt[] =
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 2001 1\n"
        "   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 2002 1\n"
        "   2: 00000000000000000000000001000000:2328 00000000000000000000000001000000:A000 01 "
        "00000000:00000000 00:00000000 00000000     0        0 2003 1\n";

static void
put(const char *root, const char *rel, const char *data)
{
    char *p = xasprintf("%s%s", root, rel);
    char *dir = xstrdup(p);
    *strrchr(dir, '/') = 0;
    assert_int_equal(mkdir_p(dir, 0755), 0);
    FILE *f = fopen(p, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
    assert_int_equal(fclose(f), 0);
    free(dir);
    free(p);
}

static void
del(const char *root, const char *rel)
{
    char *p = xasprintf("%s%s", root, rel);
    assert_int_equal(unlink(p), 0);
    free(p);
}

static void
test_parse_ports(void **state)
{
    struct dt_port_set set = { 0 };
    uint16_t *ports;
    size_t n;

    assert_int_equal(dt_port_set_parse(&set, tcp_txt, strlen(tcp_txt)), 4);
    assert_int_equal(dt_port_set_parse(&set, tcp6_txt, strlen(tcp6_txt)), 2);
    dt_port_set_to_array(&set, &ports, &n);
    assert_int_equal(n, 5);
    assert_int_equal(ports[0], 22);
    assert_int_equal(ports[1], 80); /* lower-case state accepted */
    assert_int_equal(ports[2], 0x55);
    assert_int_equal(ports[3], 631);
    assert_int_equal(ports[4], 8080);
    free(ports);
    assert_true(dt_port_set_has(&set, 22));
    assert_false(dt_port_set_has(&set, 8000)); /* established only */
    assert_false(dt_port_set_has(&set, 0x51));
    assert_false(dt_port_set_has(&set, 0x52));
    assert_false(dt_port_set_has(&set, 0x53));
    assert_false(dt_port_set_has(&set, 0x54));
    assert_false(dt_port_set_has(&set, 0));
    assert_false(dt_port_set_has(&set, 70000));

    struct dt_port_set empty = { 0 };
    assert_int_equal(dt_port_set_parse(&empty, "", 0), 0);
    dt_port_set_to_array(&empty, &ports, &n);
    assert_null(ports);
    assert_int_equal(n, 0);
}

static void
test_ports_fixture(void **state)
{
    char *root = dt_test_mkdtemp("dt-sysinfo");
    struct dt_port_set set;
    struct dt_error *err = NULL;
    json_t *j = NULL;
    char *s;

    /* No /proc at all: -EIO with a message naming the file. */
    assert_int_equal(dt_listening_ports(root, &set, &err), -EIO);
    assert_non_null(strstr(err->message, "/proc/net/tcp"));
    dt_error_free(err);
    err = NULL;

    put(root, "/proc/net/tcp", tcp_txt);
    /* tcp6 missing is fine. */
    assert_int_equal(dt_ports_json(root, &j, &err), 0);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"ports\":[22,80,85,631]}");
    free(s);
    json_decref(j);

    put(root, "/proc/net/tcp6", tcp6_txt);
    assert_int_equal(dt_ports_json(root, &j, &err), 0);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"ports\":[22,80,85,631,8080]}");
    free(s);
    json_decref(j);

    assert_int_equal(dt_port_in_use_json(root, "8080", &j, &err), 0);
    assert_true(json_is_true(json_object_get(j, "isInUse")));
    json_decref(j);
    assert_int_equal(dt_port_in_use_json(root, "8000", &j, &err), 0);
    assert_true(json_is_false(json_object_get(j, "isInUse")));
    json_decref(j);
    static const char *const bad[] = { "0", "65536", "abc", "", "-1", " 80", "99999999999999" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_int_equal(dt_port_in_use_json(root, bad[i], &j, &err), -EINVAL);
        assert_non_null(strstr(err->message, "invalid port"));
        dt_error_free(err);
        err = NULL;
    }

    /* A big file crossing many read chunks, with an over-long line in the middle. */
    {
        size_t cap = 6000 * 160 + 200000, len = 0;
        char *big = xmalloc(cap);
        len += (size_t) snprintf(big + len, cap - len, "  sl  local_address ...\n");
        for (unsigned port = 1000; port < 4000; port++)
            len += (size_t) snprintf(big + len, cap - len,
                                     "%5u: 00000000:%04X 00000000:0000 0A 00000000:00000000 "
                                     "00:00000000 00000000     0        0 %u 1 0 100 0 0 10 0\n",
                                     port, port, port);
        memset(big + len, 'z', 150000);
        len += 150000;
        len += (size_t) snprintf(big + len, cap - len, " 0: 00000000:0063 00000000:0000 0A\n");
        for (unsigned port = 4000; port < 6000; port++)
            len += (size_t) snprintf(big + len, cap - len,
                                     "%5u: 00000000:%04X 00000000:0000 0A 00000000:00000000\n",
                                     port, port);
        put(root, "/proc/net/tcp", big);
        free(big);
        assert_int_equal(dt_listening_ports(root, &set, &err), 0);
        for (unsigned port = 1000; port < 6000; port++)
            assert_true(dt_port_set_has(&set, port));
        assert_false(dt_port_set_has(&set, 0x63)); /* glued to the over-long line */
        assert_true(dt_port_set_has(&set, 8080));  /* from tcp6 */
        assert_false(dt_port_set_has(&set, 999));
    }

    dt_test_rm_rf(root);
    free(root);
}

static void
test_ports_real(void **state)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    struct dt_port_set set;
    struct dt_error *err = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &al), 0);
    unsigned port = ntohs(a.sin_port);
    assert_int_equal(dt_listening_ports("", &set, &err), 0);
    assert_false(dt_port_set_has(&set, port)); /* bound, not listening */
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(dt_listening_ports("/", &set, &err), 0);
    assert_true(dt_port_set_has(&set, port));
    close(fd);
    assert_int_equal(dt_listening_ports(NULL, &set, &err), 0);
    assert_false(dt_port_set_has(&set, port));

    /* IPv6, when the kernel has it. */
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    socklen_t al6 = sizeof(a6);
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *) &a6, sizeof(a6)) == 0) {
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a6, &al6), 0);
        assert_int_equal(listen(fd, 1), 0);
        assert_int_equal(dt_listening_ports("", &set, &err), 0);
        assert_true(dt_port_set_has(&set, ntohs(a6.sin6_port)));
    }
    if (fd >= 0)
        close(fd);
    assert_null(err);
}

static void
test_cpu_sampler(void **state)
{
    char *root = dt_test_mkdtemp("dt-sysinfo");
    struct dt_cpu_sampler s = { 0 };
    const uint64_t sec = 1000000;

    /* Nothing readable: 0 and no source. */
    assert_true(dt_cpu_sampler_sample_at(&s, root, 1, 0) == 0);
    assert_int_equal(s.source, DT_CPU_SOURCE_NONE);

    /* cgroup v2. */
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 1000000\nuser_usec 5\nsystem_usec 6\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 1, 10 * sec) == 0); /* baseline */
    assert_int_equal(s.source, DT_CPU_SOURCE_CGROUP2);
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 1500000\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 1, 11 * sec) == 50);
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 9999999\n");
    /* Too close to the previous sample: the last figure, baseline kept. */
    assert_true(dt_cpu_sampler_sample_at(&s, root, 1, 11 * sec + 50000) == 50);
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 2500000\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 2, 12 * sec) == 50); /* 1 s of 2 CPUs */
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 9500000\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 2, 13 * sec) == 100); /* clamped */
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 10\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 2, 14 * sec) == 0); /* reset: new baseline */
    put(root, "/sys/fs/cgroup/cpu.stat", "usage_usec 250010\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 1, 15 * sec) == 25);
    del(root, "/sys/fs/cgroup/cpu.stat");

    /* cgroup v1, co-mounted cpu,cpuacct, nanoseconds. */
    put(root, "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "1000000000\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 4, 20 * sec) == 0); /* new source */
    assert_int_equal(s.source, DT_CPU_SOURCE_CGROUP1);
    put(root, "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "3000000000\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 4, 21 * sec) == 50);
    del(root, "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage");

    /* /proc/stat: busy = total - idle - iowait. */
    put(root, "/proc/stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\nintr 1 2 3\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 4, 30 * sec) == 0);
    assert_int_equal(s.source, DT_CPU_SOURCE_PROC_STAT);
    put(root, "/proc/stat", "cpu  200 0 200 1200 200 0 0 0 0 0\n");
    /* busy +200 of total +800 */
    assert_true(dt_cpu_sampler_sample_at(&s, root, 4, 31 * sec) == 25);
    put(root, "/proc/stat", "cpux 1 2 3 4\n");
    assert_true(dt_cpu_sampler_sample_at(&s, root, 4, 32 * sec) == 0);
    assert_int_equal(s.source, DT_CPU_SOURCE_NONE);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_cpu_count(void **state)
{
    char *root = dt_test_mkdtemp("dt-sysinfo");
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    unsigned aff = (unsigned) CPU_COUNT(&set);

    assert_int_equal(dt_cpu_count(root), aff);
    put(root, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    put(root, "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(dt_cpu_count(root), aff);
    put(root, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "50000\n");
    assert_int_equal(dt_cpu_count(root), 1); /* half a CPU rounds up */
    put(root, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000000\n");
    assert_int_equal(dt_cpu_count(root), aff); /* quota above the affinity mask */
    /* v2 takes precedence. */
    put(root, "/sys/fs/cgroup/cpu.max", "max 100000\n");
    assert_int_equal(dt_cpu_count(root), aff);
    put(root, "/sys/fs/cgroup/cpu.max", "100000 100000\n");
    assert_int_equal(dt_cpu_count(root), 1);
    put(root, "/sys/fs/cgroup/cpu.max", "garbage\n");
    assert_int_equal(dt_cpu_count(root), aff);
    assert_int_equal(dt_cpu_count(""), dt_cpu_count("/"));
    assert_true(dt_cpu_count("") >= 1 && dt_cpu_count("") <= aff);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_metrics_fixture(void **state)
{
    char *root = dt_test_mkdtemp("dt-sysinfo");
    struct dt_cpu_sampler s = { 0 };
    struct dt_system_metrics m;

    put(root, "/proc/meminfo",
        "MemTotal:           1000 kB\nMemFree:              10 kB\nMemAvailable:     400 kB\n"
        "Buffers:               5 kB\nCached:              100 kB\nSwapCached: 0 kB\nbad line\n");
    dt_system_metrics_collect(&s, root, root, &m);
    assert_int_equal(m.mem_total, 1024000);
    assert_int_equal(m.mem_used, 614400);
    assert_int_equal(m.mem_cache, 102400);
    assert_true(m.cpu_used_pct == 0);
    assert_true(m.disk_total > 0 && m.disk_used <= m.disk_total && m.disk_free <= m.disk_total);

    /* No MemAvailable: free + buffers + cached. */
    put(root, "/proc/meminfo", "MemTotal: 1000 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 100 kB");
    dt_system_metrics_collect(&s, root, root, &m);
    assert_int_equal(m.mem_used, (1000 - 115) * 1024);

    /* Unreadable parts are zero, and the JSON still has every field. */
    del(root, "/proc/meminfo");
    dt_system_metrics_collect(&s, root, "/nonexistent/dir", &m);
    assert_int_equal(m.mem_total, 0);
    assert_int_equal(m.disk_total, 0);
    json_t *j = dt_system_metrics_to_json(&m);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 10);
    assert_int_equal(json_integer_value(json_object_get(j, "memTotal")), 0);
    json_decref(j);

    /* Fixed values render exactly. */
    m = (struct dt_system_metrics) { .cpu_count = 2, .cpu_used_pct = 12.3456, .mem_total = 5,
                                     .timestamp_unix = 1700000000 };
    j = dt_system_metrics_to_json(&m);
    assert_string_equal(json_string_value(json_object_get(j, "timestamp")),
                        "2023-11-14T22:13:20Z");
    assert_true(json_real_value(json_object_get(j, "cpuUsedPct")) == 12.35);
    assert_int_equal(json_integer_value(json_object_get(j, "cpuCount")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "timestampUnix")), 1700000000);
    json_decref(j);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_metrics_real(void **state)
{
    struct dt_cpu_sampler s = { 0 };
    json_t *j;
    static const char *const keys[] = { "cpuCount", "memTotal", "memUsed", "memCache",
                                        "diskTotal", "diskUsed", "diskFree", "timestampUnix" };

    (void) dt_cpu_sampler_sample(&s, "", dt_cpu_count(""));
    assert_int_not_equal(s.source, DT_CPU_SOURCE_NONE); /* some source is readable here */
    /* Burn ~150 ms of CPU so the second sample sees usage. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (unsigned long) i;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        (void) x;
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 150000000L);

    j = dt_system_metrics_json(&s, "", NULL);
    assert_non_null(j);
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        assert_true(json_is_integer(json_object_get(j, keys[i])));
    double pct = json_real_value(json_object_get(j, "cpuUsedPct"));
    assert_true(pct > 0 && pct <= 100);
    assert_true(json_integer_value(json_object_get(j, "cpuCount")) >= 1);
    json_int_t total = json_integer_value(json_object_get(j, "memTotal"));
    json_int_t used = json_integer_value(json_object_get(j, "memUsed"));
    assert_true(total > 16 << 20 && used > 0 && used < total);
    assert_true(json_integer_value(json_object_get(j, "diskTotal")) > 0);
    json_int_t ts = json_integer_value(json_object_get(j, "timestampUnix"));
    assert_true(ts >= time(NULL) - 5 && ts <= time(NULL));
    const char *stamp = json_string_value(json_object_get(j, "timestamp"));
    assert_non_null(stamp);
    assert_int_equal(strlen(stamp), 20);
    assert_int_equal(stamp[19], 'Z');
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ports),   cmocka_unit_test(test_ports_fixture),
        cmocka_unit_test(test_ports_real),    cmocka_unit_test(test_cpu_sampler),
        cmocka_unit_test(test_cpu_count),     cmocka_unit_test(test_metrics_fixture),
        cmocka_unit_test(test_metrics_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
