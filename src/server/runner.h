/* SPDX-License-Identifier: Apache-2.0 */
/* The runner: turns sandbox records into running sandboxes on this machine with the runtime
 * library, each with daytona-agent as its init serving the toolbox API on a unix socket that
 * daytonad created (DATA_DIR/sandboxes/<id>/agent.sock). Synchronous (the runtime's calls take
 * milliseconds; a stop waits up to its grace); called from daytonad's loop thread only.
 *
 * On disk, below DATA_DIR:
 *   runtime/               the runtime's state dir (writable layers, disk images)
 *   sandboxes/<id>/plan    the sandbox's plan (JSON), what a restarted daytonad re-adopts from
 *   sandboxes/<id>/agent.sock, agent.log   the agent's socket and its stdout/stderr
 *   images/default/        the default root filesystem (see dt_rootfs_default_ensure()) */
#ifndef DT_SERVER_RUNNER_H
#define DT_SERVER_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "dt/error.h"
#include "dt/runtime.h"

struct dt_runner;

struct dt_runner_config {
    const char *data_dir;     /* daytonad's data dir: sandboxes/, runtime/, images/ below it */
    const char *agent_binary; /* daytona-agent to run as init (NULL: next to our own binary) */
    const char *cgroup_subdir; /* NULL = "daytona" */
    uv_loop_t *loop;          /* watches each sandbox's init (pidfd) to notice it exiting */
    /* Called from LOOP when a sandbox's init exited on its own (the agent crashed or was killed,
     * e.g. by the OOM killer): the sandbox is stopped then (files kept; dt_runner_start brings it
     * back). Not called for dt_runner_stop/destroy. ID is borrowed for the call. May be NULL. */
    void (*on_exit)(const char *id, const struct dt_exit *e, void *userdata);
    void *userdata;
};

/* What a sandbox is made of: from the API's create request, validated by the caller. */
struct dt_runner_spec {
    const char *id;           /* the sandbox id (uuid): names its state dir and cgroup */
    const char *snapshot;     /* informational; what runs is LAYERS (or the default rootfs) */
    char *const *layers;      /* NULL-terminated image layer paths, TOPMOST first; NULL: the
                               * built-in default root filesystem (see dt_rootfs_default_ensure) */
    char *const *image_env;   /* the image's "K=V" env (ENV), overridden by ENV below; or NULL */
    char *const *entrypoint;  /* the image's ENTRYPOINT + CMD, run in the agent's "entrypoint"
                               * session; NULL or empty: none */
    const char *workdir;      /* the image's WORKDIR; NULL: the user's home */
    uint32_t cpu;             /* vCPUs (1..; capped to the host's CPUs); 0 = unlimited */
    uint32_t memory_gib;      /* GiB; 0 = unlimited */
    uint32_t disk_gib;        /* GiB of writable disk (an ext4 image); 0 = no quota */
    const char *user;         /* sandbox user ("name", "uid[:gid]"); NULL = "daytona" */
    char **env;               /* NULL-terminated "K=V" (the sandbox's env), or NULL */
    bool network_block_all;
    char **network_allow;     /* NULL-terminated CIDRs, or NULL */
    const struct dt_bind *binds; /* volumes (copied into the plan) */
    size_t n_binds;
};

/* Returns a new runner; free with dt_runner_free(). Creates DATA_DIR/{sandboxes,runtime} (0700),
 * the runtime (bridge networking) and opens the agent binary (a clear error when missing). Does
 * not build the default root filesystem: the first dt_runner_start() does. */
int dt_runner_new(const struct dt_runner_config *cfg, struct dt_runner **ret,
                  struct dt_error **err);
/* Free the runner and its handles, WITHOUT stopping any sandbox: they keep running and a new
 * runner on the same data dir (a restarted daytonad) re-adopts them with dt_runner_start().
 * Slot locks are released. Accepts NULL. Call with the loop still alive (handles are closed). */
void dt_runner_free(struct dt_runner *r);

/* Create the sandbox if it does not exist (writable disk, cgroup) and start it: the agent runs
 * and its socket accepts connections when this returns. A sandbox that exists on disk (plan file
 * under DATA_DIR/sandboxes/<id>) is taken from its persisted plan, and SPEC's resources are then
 * ignored: one whose init still runs (after a daytonad restart) is only re-adopted; a stopped one
 * is started again with its files intact. Already running in this runner: 0.
 * Returns 0, -EAGAIN when no slot is left, -EBUSY when the
 * sandbox's slot is held by another process, or -errno with *err set. */
int dt_runner_start(struct dt_runner *r, const struct dt_runner_spec *spec, struct dt_error **err);
/* Stop the sandbox (SIGTERM to the agent, which stops everything; SIGKILL after a 5 s grace, or
 * at once when FORCE). Files are kept. Idempotent; -ENOENT for an unknown id. */
int dt_runner_stop(struct dt_runner *r, const char *id, bool force, struct dt_error **err);
/* Stop if needed and remove everything of the sandbox (runtime state, disk, cgroup, its
 * DATA_DIR/sandboxes/<id>) and release its slot. Works on sandboxes this runner has not opened
 * yet (after a restart). Idempotent (an unknown id is success). */
int dt_runner_destroy(struct dt_runner *r, const char *id, struct dt_error **err);
/* Freeze / thaw every process of a running sandbox (the cgroup freezer). */
int dt_runner_pause(struct dt_runner *r, const char *id, struct dt_error **err);
int dt_runner_resume(struct dt_runner *r, const char *id, struct dt_error **err);
/* An fd of the sandbox's writable layer (see dt_sandbox_open_upper) and its uid base. */
int dt_runner_open_upper(struct dt_runner *r, const char *id, int *ret_fd, uid_t *ret_uid_base,
                         struct dt_error **err);
/* New resources for sandbox ID (0 = unchanged): CPU and memory at once (also while running),
 * the disk only grows. The persisted plan follows. */
int dt_runner_resize(struct dt_runner *r, const char *id, uint32_t cpu, uint32_t memory_gib,
                     uint32_t disk_gib, struct dt_error **err);
/* The address (dotted IPv4, into BUF) at which the host reaches sandbox ID's ports. */
int dt_runner_address(struct dt_runner *r, const char *id, char buf[16], struct dt_error **err);
/* Whether sandbox ID exists on disk (has a persisted plan): starting it needs no snapshot. */
bool dt_runner_has_plan(struct dt_runner *r, const char *id);
/* Whether the sandbox runs, as far as this runner knows: only sandboxes it opened count, so
 * after a restart daytonad calls dt_runner_start() for each sandbox it believes started (that
 * re-adopts it, or restarts it if its init died meanwhile). */
bool dt_runner_is_running(struct dt_runner *r, const char *id);
/* The init's pid of a running sandbox (opened by this runner), or -ESRCH. */
pid_t dt_runner_pid(struct dt_runner *r, const char *id);
/* The agent's socket path of a sandbox (whether or not it runs); static per id, malloc'ed. */
char *dt_runner_agent_socket(struct dt_runner *r, const char *id);

/* The default snapshot's root filesystem, a stand-in until real OCI snapshots exist (issue 6):
 * DATA_DIR/images/default, built once (rebuilt when DATA_DIR/images/default.recipe differs from
 * the current recipe version). It holds merged-usr symlinks (bin, sbin, lib, lib64 -> usr/...),
 * an /etc with passwd/group (root, and daytona 1000:1000 home /home/daytona shell /bin/bash; no
 * shadow), hosts, nsswitch.conf, /home/daytona (1000:1000), /tmp (1777), /root and the mount
 * points /proc /sys /dev /usr.
 *
 * IMPORTANT: the image's /usr is EMPTY: every sandbox sees the HOST's /usr bound read-only (and
 * the host's /etc/ssl/certs, /etc/ssl/openssl.cnf and /etc/alternatives, read-only, when they
 * exist: CA certificates for python/node/curl, Debian's alternatives links), i.e. what a Debian
 * image with the host's packages would contain. Issue 6 replaces this with snapshots. It also
 * has /etc/pip.conf allowing `pip install` despite Debian's PEP 668 marker in the host's /usr
 * (packages go to the user's ~/.local, since /usr is read-only).
 *
 * Returns 0 with *ret_path (malloc'ed) the rootfs directory, or -errno with *err set. */
int dt_rootfs_default_ensure(const char *data_dir, char **ret_path, struct dt_error **err);
/* Append to PLAN the binds the default rootfs needs (host /usr, /etc/ssl/certs,
 * /etc/ssl/openssl.cnf, /etc/alternatives; all read-only; the /etc ones only when they exist on
 * the host). */
void dt_rootfs_default_binds(struct dt_plan *plan);

#endif
