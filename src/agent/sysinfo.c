/* SPDX-License-Identifier: Apache-2.0 */
/* Listening ports from /proc/net/tcp{,6} and CPU/memory/disk metrics from /proc, the cgroup
 * filesystem and statvfs(), for the agent's /port and /system/metrics endpoints. Inside a sandbox
 * /proc/meminfo is already virtualised to its memory limit and the cgroup namespace puts its own
 * cgroup at the root of /sys/fs/cgroup, so the plain files give the sandbox's own view. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent/sysinfo.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define TCP_LISTEN       0x0A
#define PORTS_CHUNK      (64u << 10)

/* ROOT joined with REL (which starts with '/'); "" and "/" mean the real root. */
static char *
root_path(const char *root, const char *rel)
{
    if (!root || !*root || (root[0] == '/' && root[1] == 0))
        root = "";
    return xasprintf("%s%s", root, rel);
}

/* Open a kernel file for reading. O_NONBLOCK and the S_ISREG check only matter for fixture trees
 * (a FIFO must not hang the agent); /proc, /sys and cgroupfs files are all regular. */
static int
open_regular(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    return TAKE_FD(fd);
}

/* Read at most SIZE - 1 bytes from the start of ROOT REL into BUF and NUL-terminate. Only the
 * head matters to the callers (the "cpu" line of /proc/stat precedes a possibly huge "intr"
 * line), so a longer file is cut, not refused. Returns the length or -errno. */
static ssize_t
read_head(const char *root, const char *rel, char *buf, size_t size)
{
    _cleanup_free_ char *path = root_path(root, rel);
    _cleanup_close_ int fd = open_regular(path);
    ssize_t n;

    if (fd < 0)
        return fd;
    n = read_full(fd, buf, size - 1);
    if (n < 0)
        return n;
    buf[n] = 0;
    return n;
}

/* ---- Listening TCP ports ---- */


/* Parse LEN hex digits at P (1..8 of them) into *ret. */
static bool
parse_hex(const char *p, size_t len, uint32_t *ret)
{
    uint32_t v = 0;

    if (len == 0 || len > 8)
        return false;
    for (size_t i = 0; i < len; i++) {
        int d = unhex(p[i]);
        if (d < 0)
            return false;
        v = v << 4 | (uint32_t) d;
    }
    *ret = v;
    return true;
}

/* Next blank-separated token of [*p, end): sets *tok and *toklen, advances *p. */
static bool
next_token(const char **p, const char *end, const char **tok, size_t *toklen)
{
    const char *s = *p;

    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s == end)
        return false;
    *tok = s;
    while (s < end && *s != ' ' && *s != '\t')
        s++;
    *toklen = (size_t) (s - *tok);
    *p = s;
    return true;
}

/* One line of /proc/net/tcp{,6}:
 *   "  12: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1234 ..."
 * Returns the local port when the socket listens, else 0 (also for the header and garbage). */
static unsigned
parse_tcp_line(const char *p, const char *end)
{
    const char *tok;
    size_t len;
    uint32_t v, port, state;

    /* "sl": a decimal slot number followed by ':'. */
    if (!next_token(&p, end, &tok, &len) || len < 2 || tok[len - 1] != ':' ||
        strspn(tok, "0123456789") != len - 1)
        return 0;
    /* local_address: 8 (IPv4) or 32 (IPv6) hex digits, ':', 4 hex digits of port. */
    if (!next_token(&p, end, &tok, &len) || (len != 8 + 1 + 4 && len != 32 + 1 + 4) ||
        tok[len - 5] != ':' || !parse_hex(tok + len - 4, 4, &port))
        return 0;
    for (size_t i = 0; i < len - 5; i += 8)
        if (!parse_hex(tok + i, 8, &v))
            return 0;
    /* rem_address, not needed. */
    if (!next_token(&p, end, &tok, &len))
        return 0;
    /* st: two hex digits. */
    if (!next_token(&p, end, &tok, &len) || len != 2 || !parse_hex(tok, 2, &state))
        return 0;
    return state == TCP_LISTEN ? port : 0;
}

size_t
dt_port_set_parse(struct dt_port_set *set, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    size_t n = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        const char *eol = nl ? nl : end;
        unsigned port = parse_tcp_line(p, eol);

        if (port > 0) {
            set->bits[port / 64] |= UINT64_C(1) << (port % 64);
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    return n;
}

bool
dt_port_set_has(const struct dt_port_set *set, unsigned port)
{
    return port < 65536 && (set->bits[port / 64] >> (port % 64) & 1);
}

void
dt_port_set_to_array(const struct dt_port_set *set, uint16_t **ret, size_t *ret_n)
{
    size_t n = 0, k = 0;
    uint16_t *a = NULL;

    for (size_t i = 0; i < ELEMENTSOF(set->bits); i++)
        n += (size_t) __builtin_popcountll(set->bits[i]);
    if (n > 0) {
        a = xreallocarray(NULL, n, sizeof(*a));
        for (unsigned port = 1; port < 65536; port++)
            if (dt_port_set_has(set, port))
                a[k++] = (uint16_t) port;
    }
    *ret = a;
    *ret_n = n;
}

/* Stream FD through the line parser in chunks: /proc/net/tcp grows with the socket count, so it is
 * not read whole. A line that does not fit in a chunk is dropped. */
static int
parse_ports_fd(int fd, struct dt_port_set *set)
{
    _cleanup_free_ char *buf = xmalloc(PORTS_CHUNK);
    size_t have = 0;
    bool skip = false; /* inside an over-long line, until the next newline */

    for (;;) {
        ssize_t n = read(fd, buf + have, PORTS_CHUNK - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (!skip)
                (void) dt_port_set_parse(set, buf, have);
            return 0;
        }
        have += (size_t) n;

        size_t start = 0;
        if (skip) {
            const char *nl = memchr(buf, '\n', have);
            if (!nl) {
                have = 0;
                continue;
            }
            start = (size_t) (nl - buf) + 1;
            skip = false;
        }
        const char *last = memrchr(buf + start, '\n', have - start);
        if (last) {
            size_t stop = (size_t) (last - buf) + 1;
            (void) dt_port_set_parse(set, buf + start, stop - start);
            start = stop;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == PORTS_CHUNK) {
            skip = true;
            have = 0;
        }
    }
}

int
dt_listening_ports(const char *root, struct dt_port_set *set, struct dt_error **err)
{
    static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };

    memset(set, 0, sizeof(*set));
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *path = root_path(root, files[i]);
        _cleanup_close_ int fd = open_regular(path);
        int r;

        if (fd == -ENOENT && i == 1)
            continue; /* IPv6 disabled */
        if (fd == -ENOENT)
            return dt_error_set(err, EIO, "cannot list listening ports: no %s (is /proc mounted?)",
                                path);
        if (fd < 0)
            return dt_error_errno(err, fd, "cannot list listening ports: open %s", path);
        r = parse_ports_fd(fd, set);
        if (r < 0)
            return dt_error_errno(err, r, "cannot list listening ports: read %s", path);
    }
    return 0;
}

int
dt_ports_json(const char *root, json_t **ret, struct dt_error **err)
{
    struct dt_port_set set;
    _cleanup_free_ uint16_t *ports = NULL;
    size_t n;
    json_t *arr, *obj;
    int r;

    r = dt_listening_ports(root, &set, err);
    if (r < 0)
        return r;
    dt_port_set_to_array(&set, &ports, &n);
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_integer(ports[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    obj = arr ? json_pack("{s:o}", "ports", arr) : NULL;
    if (!obj)
        return dt_error_set(err, ENOMEM, "cannot list listening ports: out of memory");
    *ret = obj;
    return 0;
}

int
dt_port_in_use_json(const char *root, const char *port, json_t **ret, struct dt_error **err)
{
    struct dt_port_set set;
    uint32_t p;
    json_t *obj;
    int r;

    if (!port || parse_u32(port, &p) < 0 || p == 0 || p > 65535)
        return dt_error_set(err, EINVAL, "invalid port '%.32s': expected a number from 1 to 65535",
                            port ? port : "");
    r = dt_listening_ports(root, &set, err);
    if (r < 0)
        return r;
    obj = json_pack("{s:b}", "isInUse", dt_port_set_has(&set, p));
    if (!obj)
        return dt_error_set(err, ENOMEM, "cannot check port %u: out of memory", p);
    *ret = obj;
    return 0;
}

/* ---- CPU ---- */

/* "usage_usec N" from a cgroup v2 cpu.stat. */
static bool
read_cgroup2_usage(const char *root, uint64_t *ret)
{
    char buf[4096], *line, *save = NULL;

    if (read_head(root, "/sys/fs/cgroup/cpu.stat", buf, sizeof(buf)) < 0)
        return false;
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "usage_usec ", 11) == 0)
            return parse_u64(line + 11, ret) == 0;
    return false;
}

/* Strip trailing blanks and newlines in place. */
static char *
strip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* cpuacct.usage (nanoseconds) of a cgroup v1 hierarchy, in microseconds. The controller may be
 * mounted alone or co-mounted with cpu, under either name. */
static bool
read_cgroup1_usage(const char *root, uint64_t *ret)
{
    static const char *const paths[] = {
        "/sys/fs/cgroup/cpuacct/cpuacct.usage",
        "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
        "/sys/fs/cgroup/cpu/cpuacct.usage",
    };
    char buf[64];
    uint64_t ns;

    for (size_t i = 0; i < ELEMENTSOF(paths); i++)
        if (read_head(root, paths[i], buf, sizeof(buf)) > 0 && parse_u64(strip(buf), &ns) == 0) {
            *ret = ns / 1000;
            return true;
        }
    return false;
}

/* The aggregate "cpu" line of /proc/stat: busy and total ticks (idle = idle + iowait; guest time
 * is already included in user and nice). */
static bool
read_proc_stat(const char *root, uint64_t *ret_busy, uint64_t *ret_total)
{
    char buf[1024], *p, *tok, *save = NULL;
    uint64_t v[8] = { 0 }, total = 0;
    size_t n = 0;

    if (read_head(root, "/proc/stat", buf, sizeof(buf)) < 0 || strncmp(buf, "cpu ", 4) != 0)
        return false;
    p = strchr(buf, '\n');
    if (p)
        *p = 0;
    for (tok = strtok_r(buf + 4, " ", &save); tok && n < ELEMENTSOF(v);
         tok = strtok_r(NULL, " ", &save), n++)
        if (parse_u64(tok, &v[n]) < 0)
            return false;
    if (n < 4)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (total + v[i] < total)
            return false;
        total += v[i];
    }
    *ret_total = total;
    *ret_busy = total - v[3] - v[4];
    return true;
}

double
dt_cpu_sampler_sample_at(struct dt_cpu_sampler *s, const char *root, unsigned ncpu,
                         uint64_t now_usec)
{
    enum dt_cpu_source src;
    uint64_t busy = 0, total = 0;
    double pct = 0;

    if (read_cgroup2_usage(root, &busy))
        src = DT_CPU_SOURCE_CGROUP2;
    else if (read_cgroup1_usage(root, &busy))
        src = DT_CPU_SOURCE_CGROUP1;
    else if (read_proc_stat(root, &busy, &total))
        src = DT_CPU_SOURCE_PROC_STAT;
    else {
        *s = (struct dt_cpu_sampler) { 0 };
        return 0;
    }

    if (src == s->source && now_usec >= s->at_usec && busy >= s->busy && total >= s->total) {
        uint64_t dt = now_usec - s->at_usec;
        if (dt < DT_CPU_SAMPLE_MIN_USEC)
            return s->last_pct; /* too close: keep the older baseline */
        if (src == DT_CPU_SOURCE_PROC_STAT) {
            if (total > s->total)
                pct = 100.0 * (double) (busy - s->busy) / (double) (total - s->total);
        } else
            pct = 100.0 * (double) (busy - s->busy) / ((double) dt * (ncpu > 0 ? ncpu : 1));
        pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    }
    /* else: first sample, new source or a counter reset (cgroup recreated): only a baseline. */
    *s = (struct dt_cpu_sampler) {
        .source = src, .at_usec = now_usec, .busy = busy, .total = total, .last_pct = pct
    };
    return pct;
}

double
dt_cpu_sampler_sample(struct dt_cpu_sampler *s, const char *root, unsigned ncpu)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return dt_cpu_sampler_sample_at(s, root, ncpu,
                                    (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000);
}

/* The cgroup CPU quota in CPUs rounded up, or 0 when none is set or readable. */
static unsigned
cgroup_quota_cpus(const char *root)
{
    static const char *const v1_dirs[] = { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct" };
    char buf[128], *sp;
    uint64_t quota, period;

    /* v2: "max 100000" (no limit) or "<quota> <period>". */
    if (read_head(root, "/sys/fs/cgroup/cpu.max", buf, sizeof(buf)) > 0) {
        strip(buf);
        sp = strchr(buf, ' ');
        if (!sp)
            return 0;
        *sp = 0;
        if (parse_u64(buf, &quota) < 0 || parse_u64(sp + 1, &period) < 0 || period == 0 ||
            quota == 0)
            return 0;
        return (unsigned) ((quota + period - 1) / period);
    }
    /* v1: cpu.cfs_quota_us is -1 when unlimited, which parse_u64 refuses. */
    for (size_t i = 0; i < ELEMENTSOF(v1_dirs); i++) {
        char path[64];
        (void) snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", v1_dirs[i]);
        if (read_head(root, path, buf, sizeof(buf)) <= 0)
            continue;
        if (parse_u64(strip(buf), &quota) < 0 || quota == 0)
            return 0;
        (void) snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", v1_dirs[i]);
        if (read_head(root, path, buf, sizeof(buf)) <= 0 ||
            parse_u64(strip(buf), &period) < 0 || period == 0)
            return 0;
        return (unsigned) ((quota + period - 1) / period);
    }
    return 0;
}

unsigned
dt_cpu_count(const char *root)
{
    cpu_set_t set;
    long n = 0;
    unsigned quota;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    else
        n = sysconf(_SC_NPROCESSORS_ONLN); /* more CPUs than a cpu_set_t holds */
    if (n < 1)
        n = 1;
    quota = cgroup_quota_cpus(root);
    if (quota > 0 && quota < (unsigned long) n)
        n = quota;
    return (unsigned) n;
}

/* ---- Memory, disk, JSON ---- */

/* The "KEY:   N kB" lines of /proc/meminfo, in bytes. */
static void
read_meminfo(const char *root, struct dt_system_metrics *m)
{
    char buf[8192], *line, *save = NULL;
    uint64_t total = 0, avail = 0, cached = 0, memfree = 0, buffers = 0;
    bool have_total = false, have_avail = false;

    if (read_head(root, "/proc/meminfo", buf, sizeof(buf)) < 0)
        return;
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':'), *num, *unit;
        uint64_t v;

        if (!colon)
            continue;
        *colon = 0;
        num = colon + 1;
        while (*num == ' ' || *num == '\t')
            num++;
        unit = strchr(num, ' ');
        if (unit)
            *unit++ = 0;
        if (parse_u64(num, &v) < 0)
            continue;
        if (unit && strcmp(unit, "kB") == 0) {
            if (v > UINT64_MAX / 1024)
                continue;
            v *= 1024;
        }
        if (strcmp(line, "MemTotal") == 0) {
            total = v;
            have_total = true;
        } else if (strcmp(line, "MemAvailable") == 0) {
            avail = v;
            have_avail = true;
        } else if (strcmp(line, "MemFree") == 0)
            memfree = v;
        else if (strcmp(line, "Buffers") == 0)
            buffers = v;
        else if (strcmp(line, "Cached") == 0)
            cached = v;
    }
    if (!have_total)
        return;
    /* Kernels before 3.14 (and some virtualised meminfo) lack MemAvailable: estimate it. */
    if (!have_avail)
        avail = memfree + buffers + cached;
    m->mem_total = total;
    m->mem_used = avail < total ? total - avail : 0;
    m->mem_cache = cached;
}

void
dt_system_metrics_collect(struct dt_cpu_sampler *s, const char *root, const char *disk_path,
                          struct dt_system_metrics *ret)
{
    struct dt_system_metrics m = { 0 };
    struct statvfs sv;
    struct timespec ts;

    m.cpu_count = dt_cpu_count(root);
    m.cpu_used_pct = dt_cpu_sampler_sample(s, root, m.cpu_count);
    read_meminfo(root, &m);
    if (statvfs(disk_path ? disk_path : "/", &sv) == 0) {
        uint64_t bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
        m.disk_total = (uint64_t) sv.f_blocks * bs;
        m.disk_used = (uint64_t) (sv.f_blocks - sv.f_bfree) * bs;
        m.disk_free = (uint64_t) sv.f_bavail * bs;
    }
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        m.timestamp_unix = ts.tv_sec;
    *ret = m;
}

static json_int_t
clamp_int(uint64_t v)
{
    return v > (uint64_t) INT64_MAX ? INT64_MAX : (json_int_t) v;
}

/* Round a non-negative percentage to two decimals, without needing libm. */
static double
round2(double v)
{
    return v > 0 ? (double) (long long) (v * 100 + 0.5) / 100 : 0;
}

json_t *
dt_system_metrics_to_json(const struct dt_system_metrics *m)
{
    char stamp[32] = "";
    time_t t = (time_t) m->timestamp_unix;
    struct tm tm;

    if (gmtime_r(&t, &tm))
        (void) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* Two decimals are plenty for a percentage and keep the JSON short. */
    return json_pack("{s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}",
                     "cpuCount", (json_int_t) m->cpu_count,
                     "cpuUsedPct", round2(m->cpu_used_pct),
                     "memTotal", clamp_int(m->mem_total),
                     "memUsed", clamp_int(m->mem_used),
                     "memCache", clamp_int(m->mem_cache),
                     "diskTotal", clamp_int(m->disk_total),
                     "diskUsed", clamp_int(m->disk_used),
                     "diskFree", clamp_int(m->disk_free),
                     "timestamp", stamp,
                     "timestampUnix", (json_int_t) m->timestamp_unix);
}

json_t *
dt_system_metrics_json(struct dt_cpu_sampler *s, const char *root, const char *disk_path)
{
    struct dt_system_metrics m;

    dt_system_metrics_collect(s, root, disk_path, &m);
    return dt_system_metrics_to_json(&m);
}
