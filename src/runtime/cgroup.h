/* SPDX-License-Identifier: Apache-2.0 */
/* Cgroups for sandboxes, v1 and v2 behind one interface: create a sandbox's cgroup(s) nested under
 * the calling process's own cgroup, write limits, attach processes, freeze/thaw, kill everything,
 * read stats (including the OOM-kill count), and destroy. Used by sandbox.c; knows nothing of HTTP.
 *
 * Layout: for a manager created with SUBDIR "daytona" by a process whose cgroup is /a/b:
 *   v2: <mount>/a/b/daytona/<name>          (controllers enabled in subtree_control on the way)
 *   v1: <mount>/<ctrl>/a/b/daytona/<name> for ctrl in memory, cpu, cpuacct, pids, freezer,
 *       cpuset (/a/b being our path in that hierarchy; co-mounted controllers share a directory)
 * All calls may be made from a loop callback (they do short synchronous filesystem I/O), except
 * dt_cgroup_freeze() and dt_cgroup_kill() on v1 / pre-5.14 v2 (up to about a second) and
 * dt_cgroup_destroy() (up to about two seconds). None is safe in a forked child.
 * See docs/design/cgroups.md for the files written and the failure modes. */
#ifndef DT_RUNTIME_CGROUP_H
#define DT_RUNTIME_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dt/error.h"

enum dt_cgroup_version {
    DT_CGROUP_V1 = 1,
    DT_CGROUP_V2 = 2,
};

#define DT_CGROUP_UNLIMITED UINT64_MAX

struct dt_cgroup_limits {
    uint64_t memory_max_bytes;      /* DT_CGROUP_UNLIMITED or bytes */
    uint64_t memory_swap_max_bytes; /* swap on top of memory: DT_CGROUP_UNLIMITED, 0 = no swap */
    uint64_t cpu_millicpus;         /* 1000 = one CPU; DT_CGROUP_UNLIMITED = no quota */
    uint64_t cpu_period_usec;       /* 0 = default 100000 */
    uint64_t pids_max;              /* DT_CGROUP_UNLIMITED or a count */
    char cpuset_cpus[64];           /* "" = inherit; else a cpuset list like "0-1" or "1" */
};

/* Limits with everything unlimited. */
void dt_cgroup_limits_init(struct dt_cgroup_limits *l);

struct dt_cgroup_stats {
    uint64_t memory_current_bytes;
    uint64_t memory_max_bytes; /* the effective limit, DT_CGROUP_UNLIMITED if none */
    uint64_t oom_kills;        /* processes killed by the OOM killer in this cgroup so far */
    uint64_t pids_current;
    uint64_t cpu_usage_usec;
};

struct dt_cgroup_manager;
struct dt_cgroup;

/* Detect the cgroup layout and where the calling process sits.
 * MOUNT_ROOT: normally "/sys/fs/cgroup"; tests pass a fake tree. SELF_CGROUP: normally
 * "/proc/self/cgroup"; tests pass a file. SUBDIR: the directory under our own cgroup that holds
 * all sandboxes (e.g. "daytona"), created if missing.
 * Detection: v2 when MOUNT_ROOT contains "cgroup.controllers" and the controllers we need
 * (memory, cpu, pids) are available there; else v1 when MOUNT_ROOT/memory etc. exist (a hybrid
 * layout with an empty unified mount counts as v1).
 * Returns a new manager (free with dt_cgroup_manager_free()). Errors: -ENOENT/-ENOTSUP with
 * *err naming what is missing. */
int dt_cgroup_manager_new(const char *mount_root, const char *self_cgroup, const char *subdir,
                          struct dt_cgroup_manager **ret, struct dt_error **err);
void dt_cgroup_manager_free(struct dt_cgroup_manager *m);
enum dt_cgroup_version dt_cgroup_manager_version(const struct dt_cgroup_manager *m);

/* Create the cgroup NAME (a single path component, [A-Za-z0-9_.-]) and apply LIMITS.
 * -EEXIST if it exists. On failure nothing is left behind.
 * Returns a new handle (free with dt_cgroup_free(), which does not remove the cgroup). */
int dt_cgroup_create(struct dt_cgroup_manager *m, const char *name,
                     const struct dt_cgroup_limits *limits, struct dt_cgroup **ret,
                     struct dt_error **err);
/* Open an existing cgroup NAME (re-adoption after a restart). -ENOENT if missing. */
int dt_cgroup_open(struct dt_cgroup_manager *m, const char *name, struct dt_cgroup **ret,
                   struct dt_error **err);
/* Create (or open, if it exists) a child cgroup CHILD under CG, e.g. a protected leaf for an
 * agent. On v2 CG then must hold no processes itself (no-internal-process rule): callers put
 * all processes into leaves. Returns a new handle. */
int dt_cgroup_create_child(struct dt_cgroup *cg, const char *child, struct dt_cgroup **ret,
                           struct dt_error **err);
/* Change limits of a live cgroup (growing or shrinking). */
int dt_cgroup_set_limits(struct dt_cgroup *cg, const struct dt_cgroup_limits *limits,
                         struct dt_error **err);
/* Move PID (all its threads) into the cgroup. */
/* Write CPUS ("0-1") to CG's cpuset.cpus only (a leaf kept in step with its parent: on v1 a
 * parent's set cannot shrink below what a child uses, so shrink children first and grow them
 * last). No-op without a cpuset controller. */
int dt_cgroup_set_cpus(struct dt_cgroup *cg, const char *cpus, struct dt_error **err);
int dt_cgroup_attach(struct dt_cgroup *cg, pid_t pid, struct dt_error **err);
/* v2: an O_DIRECTORY|O_CLOEXEC fd of the cgroup for clone3(CLONE_INTO_CGROUP), owned by the
 * handle (do not close); -EBADF after dt_cgroup_destroy(). v1: -EOPNOTSUPP. */
int dt_cgroup_fd(struct dt_cgroup *cg);
/* Freeze (true) or thaw (false) every process in the cgroup; returns once the kernel reports
 * the state reached (or -ETIMEDOUT after ~1 s). */
int dt_cgroup_freeze(struct dt_cgroup *cg, bool frozen, struct dt_error **err);
/* SIGKILL every process in the cgroup (v2: cgroup.kill when present; v1 and old v2: freeze,
 * signal each pid in cgroup.procs, thaw). Does not wait. */
int dt_cgroup_kill(struct dt_cgroup *cg, struct dt_error **err);
/* Whether the cgroup has no processes (1), has some (0), or -errno. */
int dt_cgroup_is_empty(struct dt_cgroup *cg);
/* Processes killed by the OOM killer in the cgroup and below so far (what dt_cgroup_stats()
 * reports as oom_kills, without reading the rest). */
int dt_cgroup_oom_kills(struct dt_cgroup *cg, uint64_t *ret, struct dt_error **err);
/* Open cgroup.procs of the cgroup for writing, once per hierarchy (1 on v2, one per mounted
 * controller hierarchy on v1), into FDS (room for MAX). A process given these fds moves itself
 * (or a child) there by writing "0" (or a pid): the kernel checks the opener's credentials, so
 * this works from inside the sandbox, where the cgroup tree is not visible. */
int dt_cgroup_open_procs(struct dt_cgroup *cg, int *fds, size_t max, size_t *ret_n,
                         struct dt_error **err);
/* Open (read-only) the file holding the cgroup's "oom_kill N" counter: memory.events on v2,
 * memory.oom_control on v1. For a process that cannot see the cgroup tree (the agent). */
int dt_cgroup_open_oom_file(struct dt_cgroup *cg, int *ret_fd, struct dt_error **err);
int dt_cgroup_stats(struct dt_cgroup *cg, struct dt_cgroup_stats *ret, struct dt_error **err);
/* Kill everything, wait (up to ~2 s) until empty, remove the cgroup directories (children first).
 * Idempotent: a cgroup already gone is success. Does not free the handle. */
int dt_cgroup_destroy(struct dt_cgroup *cg, struct dt_error **err);
void dt_cgroup_free(struct dt_cgroup *cg);
static inline void
dt_cgroup_freep(struct dt_cgroup **cg)
{
    dt_cgroup_free(*cg);
}

#endif
