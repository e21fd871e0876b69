/* SPDX-License-Identifier: Apache-2.0 */
/* libdt-runtime: turns a root filesystem into an isolated, resource-limited sandbox.
 *
 * Parse, validate, plan, apply: callers fill a `struct dt_plan` (plain data), dt_plan_validate()
 * checks it without side effects, and the dt_sandbox_* calls apply it. One `struct dt_runtime` per
 * process holds what all sandboxes share: the state directory, the cgroup manager, the compiled
 * seccomp filter and the host network.
 *
 * Threads: every call here is synchronous and may be made from the event loop thread; none may be
 * made from a forked child. dt_sandbox_start()/dt_sandbox_exec() block for the few milliseconds
 * the kernel needs to build the sandbox. See docs/design/runtime.md. */
#ifndef DT_RUNTIME_H
#define DT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dt/error.h"

#define DT_LIMIT_UNLIMITED UINT64_MAX
#define DT_UID_RANGE       65536u        /* uids per sandbox user namespace */
#define DT_UID_BASE        0x1000000u    /* host uid of root in slot 0's sandbox */
#define DT_MAX_SLOTS       60000u
#define DT_MAX_ARGS        4096
#define DT_MAX_ENV         4096
#define DT_MAX_MOUNTS      64
#define DT_MAX_LAYERS      128
#define DT_SLOTS_DIR       "/run/daytona/slots"

enum dt_net_mode {
    DT_NET_NONE = 0, /* loopback only */
    DT_NET_BRIDGE,   /* veth to the host bridge, NAT, DNS */
};

struct dt_bind {
    char *source;      /* host path (absolute, must exist) */
    char *destination; /* path inside the sandbox (absolute) */
    bool readonly;
    bool idmap;        /* seen through the sandbox's id mapping, as image layers are: the
                        * files' owners are the sandbox's uids (0..65535) on the host too, so
                        * every sandbox that mounts SOURCE sees the same owners (volumes) */
};

struct dt_plan {
    char *id;            /* [A-Za-z0-9_.-]{1,64}; names the state dir and cgroup */
    char **layers;       /* NULL-terminated; read-only lower layers, topmost first (>= 1) */
    uint32_t slot;       /* selects the uid range (DT_UID_BASE + slot*DT_UID_RANGE) and address */
    uint64_t memory_bytes;      /* DT_LIMIT_UNLIMITED or >= 4 MiB */
    uint64_t swap_bytes;        /* swap allowed on top of memory; 0 = none (default) */
    uint64_t cpu_millicpus;     /* DT_LIMIT_UNLIMITED or 10..(host CPUs * 1000) */
    uint64_t pids_max;          /* DT_LIMIT_UNLIMITED or >= 1 */
    uint64_t disk_bytes;        /* 0 = no quota (upper dir on the host fs); else >= 16 MiB */
    bool init_leaf;             /* the cgroup gets two leaves: "init" for the init (a server such
                                 * as the agent) and "workload" for every other process
                                 * (dt_sandbox_exec puts them there; see dt_start_opts for how
                                 * init moves its own children): the server's memory and pids are
                                 * accounted apart and OOM kills are counted where they happen */
    bool ephemeral;             /* writable layer on a tmpfs of its own (charged to the sandbox's
                                 * memory), gone at stop: for throwaway sandboxes; no disk quota */
    char *hostname;             /* NULL = the id (truncated to 63) */
    char **args;                /* NULL-terminated argv of the init process (>= 1 element) */
    char **env;                 /* NULL-terminated "K=V"; PATH/HOME/HOSTNAME/TERM added if absent */
    char *cwd;                  /* absolute; NULL = the user's home or "/" */
    char *user;                 /* "name", "uid" or "uid:gid"; NULL = root */
    struct dt_bind *binds;      /* n_binds volume mounts */
    size_t n_binds;
    enum dt_net_mode net_mode;
    bool block_all_egress;      /* bridge mode: no egress except allow_cidrs */
    char **allow_cidrs;         /* NULL-terminated "a.b.c.d/n"; egress only there when set */
};

/* Initialise PLAN with defaults (unlimited, no quota, network none). Strings are NULL. */
void dt_plan_init(struct dt_plan *plan);
/* Free the strings and arrays a plan owns (all of them are malloc'ed when filled by helpers). */
void dt_plan_done(struct dt_plan *plan);
/* Check PLAN without side effects beyond stat() of paths: ids, paths absolute and free of "..",
 * layers exist and are directories, limits sane, sizes of arrays bounded, env entries "K=V".
 * Returns 0 or -EINVAL/-ENOENT with *err saying which field is wrong. */
int dt_plan_validate(const struct dt_plan *plan, struct dt_error **err);

struct dt_runtime_config {
    const char *state_dir;      /* e.g. /var/lib/daytona/runtime; created if missing */
    const char *cgroup_root;    /* NULL = /sys/fs/cgroup */
    const char *cgroup_subdir;  /* NULL = "daytona" */
    bool need_bridge;           /* set up the host bridge and nftables at startup */
};

struct dt_runtime;
/* Returns a new runtime; free with dt_runtime_free(). Fails with a clear message when the kernel
 * lacks something we need (user namespaces, idmapped mounts, cgroups). */
int dt_runtime_new(const struct dt_runtime_config *cfg, struct dt_runtime **ret,
                   struct dt_error **err);
void dt_runtime_free(struct dt_runtime *rt);
const char *dt_runtime_state_dir(const struct dt_runtime *rt);

/* Take a free slot for a sandbox by locking DT_SLOTS_DIR "/<n>.lock" (host-wide: slots name
 * host-wide resources); the lock is held by the returned fd (close it to release). Every user of
 * the runtime on a host takes its slots here. */
int dt_runtime_acquire_slot(struct dt_runtime *rt, uint32_t *ret_slot, int *ret_lockfd,
                            struct dt_error **err);

/* The IPv4 address (dotted, into BUF) of the sandbox in SLOT on the runtime's bridge: how the
 * host reaches a port a sandbox listens on. -ERANGE when the slot does not fit the subnet. */
int dt_runtime_slot_address(const struct dt_runtime *rt, uint32_t slot, char buf[16]);

struct dt_exit {
    int code;        /* exit status when exited */
    int signal;      /* terminating signal, or 0 */
    bool oom_killed; /* killed by the OOM killer of the sandbox's cgroup */
};
/* The shell convention: code, or 128 + signal. */
int dt_exit_status(const struct dt_exit *e);

struct dt_sandbox;

/* Create a sandbox from a validated PLAN (copied): state dir, writable layer (directory, or an ext4
 * image when disk_bytes > 0), cgroup with limits. Nothing runs yet. -EEXIST if the id exists.
 * On failure nothing is left behind. Returns a new handle (free with dt_sandbox_free()). */
int dt_sandbox_create(struct dt_runtime *rt, const struct dt_plan *plan, struct dt_sandbox **ret,
                      struct dt_error **err);

/* Open the existing sandbox PLAN->id (after a restart; the caller keeps plans in its store). Its
 * init, if still alive, is re-adopted (pid verified against its start time); a re-adopted init
 * is not our child, so dt_sandbox_wait() then reports SIGKILL without the real status. */
int dt_sandbox_load(struct dt_runtime *rt, const struct dt_plan *plan, struct dt_sandbox **ret,
                    struct dt_error **err);

/* Start the init process (plan->args) with STDIO_FDS[0..2] as its stdin/stdout/stderr (-1 means
 * /dev/null). Returns once the init has been exec'd, or an error that names the failing step (in
 * which case nothing keeps running). -EBUSY if already running. */
int dt_sandbox_start(struct dt_sandbox *sb, const int stdio_fds[3], struct dt_error **err);

#define DT_MAX_EXTRA_FDS 8
/* dt_sandbox_start() with more control, for an init that serves the sandbox (the agent). */
struct dt_start_opts {
    int stdio_fds[3];      /* -1 = /dev/null */
    const int *extra_fds;  /* given to init as fds 3, 4, ... (at most DT_MAX_EXTRA_FDS); the
                            * caller keeps its own copies */
    size_t n_extra_fds;
    int exec_fd;           /* >= 0: execute this host file (a static binary, opened O_RDONLY or
                            * O_PATH) instead of looking args[0] up in the image: nothing needs to
                            * be installed in the image, and nothing in it can replace the file */
    bool protect_init;     /* init gets oom_score_adj -1000 (through the legacy oom_adj, so its
                            * children are not allowed to go below 0 again): the OOM killer picks
                            * the workload, never the sandbox's server */
    int protect_result;    /* out: 0, or -errno when protect_init could not be applied (it
                            * needs CAP_SYS_RESOURCE); the sandbox runs anyway */
    size_t n_workload_fds; /* out: with plan.init_leaf, init gets write fds of the workload
                            * leaf's cgroup.procs (one per hierarchy) after the extra fds, i.e.
                            * from fd 3 + n_extra_fds up, to move its children there itself
                            * (write "0" before exec); this says how many */
};
int dt_sandbox_start_opts(struct dt_sandbox *sb, struct dt_start_opts *o, struct dt_error **err);
/* A read-only fd of the file with the "oom_kill N" counter (memory.events or memory.oom_control)
 * of the cgroup where the sandbox's processes run (the workload leaf with plan.init_leaf), so a
 * process inside can tell an OOM kill from another SIGKILL. */
int dt_sandbox_open_oom_file(struct dt_sandbox *sb, int *ret_fd, struct dt_error **err);

/* The init's pid (in our pid namespace) and a pidfd for it (owned by the handle), or -ESRCH when
 * not running. */
pid_t dt_sandbox_pid(const struct dt_sandbox *sb);
int dt_sandbox_pidfd(const struct dt_sandbox *sb);
const char *dt_sandbox_id(const struct dt_sandbox *sb);
bool dt_sandbox_is_running(const struct dt_sandbox *sb);

/* Wait for the init to exit (blocking, or WNOHANG when NOHANG: -EAGAIN if still running), and fill
 * *ret. After the init exits, the sandbox is stopped: its other processes are killed, network and
 * cgroup processes gone; files are kept. */
int dt_sandbox_wait(struct dt_sandbox *sb, bool nohang, struct dt_exit *ret, struct dt_error **err);

struct dt_exec {
    char **args;   /* NULL-terminated, >= 1 */
    char **env;    /* NULL-terminated "K=V", or NULL for the plan's env */
    const char *cwd;   /* NULL = the user's home, or "/" */
    const char *user;  /* NULL = the plan's user */
    bool pty;          /* run on a new pseudo-terminal of the sandbox's devpts */
    unsigned short rows, cols;   /* initial window size when pty */
    int stdio_fds[3];  /* when !pty: the process's 0,1,2 (-1 = /dev/null) */
};

struct dt_process {
    pid_t pid;       /* a child of the caller: reap it with dt_process_wait() */
    int pidfd;       /* owned by the caller */
    int pty_master;  /* owned by the caller, when pty; else -1 */
    uint64_t oom_kills_at_start;
};

/* Run another process inside the running sandbox (all its namespaces and its cgroup), as USER,
 * with the sandbox's capabilities, seccomp filter and no_new_privs. Returns once exec'd. */
int dt_sandbox_exec(struct dt_sandbox *sb, const struct dt_exec *spec, struct dt_process *ret,
                    struct dt_error **err);
/* Wait for a process from dt_sandbox_exec() (blocking unless NOHANG: then -EAGAIN while it runs)
 * and close its pidfd. */
int dt_process_wait(struct dt_sandbox *sb, struct dt_process *p, bool nohang, struct dt_exit *ret,
                    struct dt_error **err);

/* Stop: SIGTERM to the init, then SIGKILL to everything after GRACE_USEC. Keeps the writable
 * layer, so dt_sandbox_start() brings it back with files intact. Idempotent. */
int dt_sandbox_stop(struct dt_sandbox *sb, uint64_t grace_usec, struct dt_error **err);
/* Freeze / thaw every process of the sandbox (cgroup freezer). */
int dt_sandbox_pause(struct dt_sandbox *sb, struct dt_error **err);
int dt_sandbox_resume(struct dt_sandbox *sb, struct dt_error **err);
/* Change the memory and CPU limits (running or not): the cgroup's, and what the sandbox's
 * /proc/meminfo and /sys/devices/system/cpu/online say. Validated like a plan; a limit can be
 * changed but not added or removed. Lowering memory below what is in use may fail (-EBUSY on
 * cgroup v1) or make the kernel reclaim (v2). */
int dt_sandbox_set_resources(struct dt_sandbox *sb, uint64_t memory_bytes, uint64_t cpu_millicpus,
                             struct dt_error **err);
/* Grow the disk quota (only with disk_bytes > 0 at create); works while running. */
int dt_sandbox_resize_disk(struct dt_sandbox *sb, uint64_t new_bytes, struct dt_error **err);
/* The writable layer of a sandbox, for turning it into an image layer: an O_RDONLY
 * O_DIRECTORY fd of its upper directory (inside the disk image when there is a quota: the fd
 * keeps that detached mount alive until closed) and the host uid of the sandbox's root (files
 * the sandbox wrote are owned by that range). Of a running sandbox it is the live layer: pause
 * it first for a consistent copy. -ENOTSUP for a stopped ephemeral sandbox (its layer went with
 * its tmpfs). */
int dt_sandbox_open_upper(struct dt_sandbox *sb, int *ret_fd, uid_t *ret_uid_base,
                          struct dt_error **err);
/* Like dt_sandbox_open_upper(), but MOVE the upper directory to DEST (same filesystem as the
 * runtime's state dir; must not exist) and leave an empty one: no copy. -EXDEV when the layer
 * lives in a disk image (copy from dt_sandbox_open_upper() instead). */
int dt_sandbox_take_upper(struct dt_sandbox *sb, const char *dest, uid_t *ret_uid_base,
                          struct dt_error **err);
/* Rewrite the sandbox's /proc/meminfo view from current cgroup usage (cheap; callers may do it
 * periodically). */
int dt_sandbox_refresh_meminfo(struct dt_sandbox *sb, struct dt_error **err);
/* Stop and remove everything: processes, cgroup, network, writable layer, state dir. Leaves
 * nothing behind. Idempotent. Does not free the handle. */
int dt_sandbox_destroy(struct dt_sandbox *sb, struct dt_error **err);
void dt_sandbox_free(struct dt_sandbox *sb);

#endif
