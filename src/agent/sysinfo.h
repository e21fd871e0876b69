/* SPDX-License-Identifier: Apache-2.0 */
/* What the agent reports about its sandbox: listening TCP ports (GET /port, GET
 * /port/{port}/in-use) and CPU, memory and disk metrics (GET /system/metrics, contract section
 * 3.2). Plain functions reading /proc and /sys under a ROOT prefix ("" or "/" for the real ones;
 * tests pass a fixture tree); blocking reads of small kernel files only, so they may be called
 * from a loop callback. Not for a forked child (they allocate). */
#ifndef DT_AGENT_SYSINFO_H
#define DT_AGENT_SYSINFO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

/* ---- Listening TCP ports ---- */

/* The set of ports with a socket in state LISTEN (0A), on any address, IPv4 or IPv6. */
struct dt_port_set {
    uint64_t bits[65536 / 64];
};

/* Add to SET the listening ports found in BUF (LEN bytes, need not be NUL-terminated): the text
 * of /proc/net/tcp or /proc/net/tcp6. The header line and lines that do not parse are skipped.
 * Never fails; returns the number of LISTEN lines taken. */
size_t dt_port_set_parse(struct dt_port_set *set, const char *buf, size_t len);

/* Whether PORT is in SET. */
bool dt_port_set_has(const struct dt_port_set *set, unsigned port);

/* The ports of SET, sorted ascending and unique, as a new array in *ret (free()) of *ret_n
 * entries (*ret is NULL when empty). */
void dt_port_set_to_array(const struct dt_port_set *set, uint16_t **ret, size_t *ret_n);

/* Fill *SET from ROOT "/proc/net/tcp" and ROOT "/proc/net/tcp6" (a missing tcp6, as with IPv6
 * disabled, is fine). The files are read in chunks, so their size is not limited; a line longer
 * than 64 KiB (never produced by the kernel) is skipped. Returns 0, or -errno with *err set; a
 * missing /proc/net/tcp gives -EIO ("is /proc mounted?") rather than a misleading -ENOENT. */
int dt_listening_ports(const char *root, struct dt_port_set *set, struct dt_error **err);

/* GET /port: *ret = {"ports": [22, 8080, ...]} (a new reference, the caller json_decref()s it).
 * Returns 0 or -errno with *err set. */
int dt_ports_json(const char *root, json_t **ret, struct dt_error **err);

/* GET /port/{port}/in-use: PORT is the raw path segment, a decimal in 1..65535 (else -EINVAL,
 * "invalid port '...'"). *ret = {"isInUse": true|false}, a new reference. A port is in use when
 * a socket listens on it on any address. */
int dt_port_in_use_json(const char *root, const char *port, json_t **ret, struct dt_error **err);

/* ---- CPU, memory, disk ---- */

/* Where CPU usage is read from; picked afresh on each sample, in this order. */
enum dt_cpu_source {
    DT_CPU_SOURCE_NONE = 0,
    DT_CPU_SOURCE_CGROUP2, /* ROOT/sys/fs/cgroup/cpu.stat usage_usec */
    DT_CPU_SOURCE_CGROUP1, /* ROOT/sys/fs/cgroup/cpuacct{,cpu,cpuacct}/cpuacct.usage (ns) */
    DT_CPU_SOURCE_PROC_STAT, /* ROOT/proc/stat "cpu" line, busy and total ticks */
};

/* State between two CPU samples. Zero-initialise it ({ 0 }) and keep it for the agent's
 * lifetime; it owns nothing. Not thread-safe. */
struct dt_cpu_sampler {
    enum dt_cpu_source source; /* of the previous sample; NONE before the first */
    uint64_t at_usec;          /* monotonic time of the previous sample */
    uint64_t busy;             /* cgroup usage in usec, or /proc/stat busy ticks */
    uint64_t total;            /* /proc/stat total ticks (unused for cgroups) */
    double last_pct;           /* the last computed percentage */
};

/* Minimum time between two samples for a new percentage: closer calls return the last one and
 * keep the older baseline, so that back-to-back requests do not report noise. */
#define DT_CPU_SAMPLE_MIN_USEC 100000u

/* Take a CPU sample and return the usage, in percent (0..100) of the CPUs available to the
 * sandbox (NCPU, as from dt_cpu_count(); ignored for /proc/stat, which counts all CPUs), averaged
 * over the time since the previous sample.
 *
 * It never blocks: the first call only records a baseline and returns 0, as does a call after the
 * source changed or a counter went backwards. So the agent calls it once at startup and,
 * for a figure that reflects "now", from a timer every few seconds; each GET /system/metrics
 * then samples again (returning the last figure when under DT_CPU_SAMPLE_MIN_USEC since the
 * previous sample). Returns 0 when no source is readable. */
double dt_cpu_sampler_sample(struct dt_cpu_sampler *s, const char *root, unsigned ncpu);
/* The same at an explicit monotonic time NOW_USEC (for tests). */
double dt_cpu_sampler_sample_at(struct dt_cpu_sampler *s, const char *root, unsigned ncpu,
                                uint64_t now_usec);

/* CPUs available to the sandbox: the CPUs of this process's sched_getaffinity() mask, lowered
 * to the cgroup CPU quota rounded up (ROOT/sys/fs/cgroup/cpu.max for v2, else cpu.cfs_quota_us /
 * cpu.cfs_period_us under ROOT/sys/fs/cgroup/cpu or cpu,cpuacct for v1) when one is set.
 * At least 1. */
unsigned dt_cpu_count(const char *root);

struct dt_system_metrics {
    unsigned cpu_count;
    double cpu_used_pct;
    uint64_t mem_total; /* bytes, MemTotal of ROOT/proc/meminfo */
    uint64_t mem_used;  /* bytes, MemTotal - MemAvailable */
    uint64_t mem_cache; /* bytes, Cached */
    uint64_t disk_total, disk_used, disk_free; /* bytes, statvfs(); free = available to users */
    int64_t timestamp_unix;                    /* seconds, CLOCK_REALTIME */
};

/* Collect the metrics. Each part is best effort: what cannot be read stays 0, as the contract
 * allows ("missing fields become 0"). DISK_PATH is the path whose filesystem is measured (NULL
 * means "/"). Samples S for the CPU percentage (see dt_cpu_sampler_sample()). */
void dt_system_metrics_collect(struct dt_cpu_sampler *s, const char *root, const char *disk_path,
                               struct dt_system_metrics *ret);

/* Render M as the GET /system/metrics body: {cpuCount, cpuUsedPct, memTotal, memUsed, memCache,
 * diskTotal, diskUsed, diskFree, timestamp ("2025-01-31T12:34:56Z", UTC), timestampUnix}.
 * Returns a new reference (json_decref()), NULL only when out of memory. */
json_t *dt_system_metrics_to_json(const struct dt_system_metrics *m);

/* Collect and render in one call: the GET /system/metrics handler. Same ownership as above. */
json_t *dt_system_metrics_json(struct dt_cpu_sampler *s, const char *root, const char *disk_path);

#endif
