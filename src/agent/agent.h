/* SPDX-License-Identifier: Apache-2.0 */
/* The toolbox agent's shared state and the helpers every endpoint module uses: the agent
 * context, route registration, replies in the daemon's error envelope, and the user commands run
 * as. One libuv loop, one thread: every function here runs on the loop. See
 * docs/design/agent.md. */
#ifndef DT_AGENT_H
#define DT_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "dt/error.h"
#include "dt/httpd.h"

#define DT_AGENT_VERSION "0.1.0"
#define DT_AGENT_SOURCE  "DAYTONA_DAEMON"
#define DT_AGENT_MAX_JSON (8u << 20) /* largest JSON request body */

struct dt_session;
struct dt_pty;
struct dt_interp_ctx;

struct dt_agent_config {
    const char *root;        /* "" in production; a directory prefix for passwd lookups in tests */
    const char *user;        /* sandbox user name [daytona]; root when the image has none */
    const char *workdir;     /* NULL = the user's home */
    const char *state_dir;   /* private runtime files (session FIFOs) [/tmp/.daytona] */
    int oom_fd;              /* fd of the cgroup's memory.events / memory.oom_control, or -1 */
    int workload_fds[16];    /* write fds of the "workload" cgroup's cgroup.procs (one per
                              * hierarchy): children move there before they exec */
    int n_workload_fds;
};

/* The user commands run as (resolved once at start; the image's passwd decides). */
struct dt_agent_user {
    char *name;
    uid_t uid;
    gid_t gid;
    gid_t groups[64];
    int n_groups;
    char *home;
    char *shell;             /* a shell that exists: the user's, else /bin/bash, else /bin/sh */
};

struct dt_agent {
    uv_loop_t *loop;
    struct dt_httpd *httpd;
    struct dt_agent_config cfg;
    struct dt_agent_user user;
    char *workdir;
    char *state_dir;
    char **base_env;         /* NULL-terminated "K=V": the agent's environment for commands, as
                              * changed by POST /env */
    uint64_t next_id;        /* for command and context ids */
    struct dt_session *sessions;
    struct dt_pty *ptys;
    struct dt_interp_ctx *contexts;
    void *sysinfo;           /* struct dt_cpu_sampler (sysinfo.h) */
};

/* A route handler. PARAMS holds the segments matched by "*" in the route pattern, in order. */
typedef void (*dt_route_fn)(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params);

struct dt_route {
    const char *method;  /* "GET", "POST", "DELETE", ... */
    const char *pattern; /* "/process/session/{*}": a "*" segment matches any one segment */
    dt_route_fn fn;
};

/* Route tables of the endpoint modules (each NULL-terminated by a zeroed entry). */
extern const struct dt_route dt_info_routes[];
extern const struct dt_route dt_files_routes[];
extern const struct dt_route dt_process_routes[];
extern const struct dt_route dt_session_routes[];
extern const struct dt_route dt_pty_routes[];
extern const struct dt_route dt_interp_routes[];
extern const struct dt_route dt_git_routes[];
extern const struct dt_route dt_lsp_routes[];

/* Set up A on LOOP: resolve the user, the work dir and the environment, install the reaper and
 * create the HTTP server (the caller adds listeners to a->httpd). */
int dt_agent_init(struct dt_agent *a, uv_loop_t *loop, const struct dt_agent_config *cfg,
                  struct dt_error **err);
/* Free what dt_agent_init and the modules hold (children must be gone). */
void dt_agent_done(struct dt_agent *a);

/* Work in progress that should keep the sandbox from being auto-stopped although no request
 * arrives: a running session command, a PTY with a socket attached, a running interpreter cell
 * (GET /activity reports them to daytonad's lifecycle engine; Daytona ignores them:
 * daytona#5154). */
int dt_session_busy(struct dt_agent *a);
int dt_pty_busy(struct dt_agent *a);
int dt_interp_busy(struct dt_agent *a);

/* ---- replies ---- */

/* Error in the daemon's envelope: {statusCode, message, code, source: "DAYTONA_DAEMON", ...}. */
void dt_agent_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
    _printf_(4, 5);
/* Map an errno (negative or positive) and its message to a status and file error code:
 * ENOENT 404 FILE_NOT_FOUND, EACCES/EPERM 403 FILE_ACCESS_DENIED, EINVAL/ENAMETOOLONG/ELOOP 400
 * INVALID_FILE_PATH, EEXIST/ENOTEMPTY/EBUSY/EISDIR/ENOTDIR 409 CONFLICT..., else 500. */
void dt_agent_error_errno(struct dt_httpd_req *req, int r, const struct dt_error *err);
/* 200 with an empty body (void operations). */
void dt_agent_ok(struct dt_httpd_req *req);

/* Read the request body as a JSON object (at most DT_AGENT_MAX_JSON) and call FN with it
 * (borrowed; freed after FN returns). Malformed JSON or a non-object gets 400 here. */
typedef void (*dt_agent_json_fn)(struct dt_agent *a, struct dt_httpd_req *req, json_t *body,
                                 const char *const *params);
void dt_agent_read_json(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params,
                        dt_agent_json_fn fn);

/* A fresh id "<prefix><counter>-<random hex>", malloc'ed. */
char *dt_agent_new_id(struct dt_agent *a, const char *prefix);

/* Resolve PATH (absolute, or relative to the work dir) into a malloc'ed absolute path; NULL
 * (after answering 400) when it is empty or holds a NUL. */
char *dt_agent_path(struct dt_agent *a, struct dt_httpd_req *req, const char *path);

/* Environment for a user command: base_env with HOME/USER/LOGNAME/SHELL/PATH of the sandbox user,
 * then EXTRA (a JSON object of string values, may be NULL) on top. NULL-terminated, malloc'ed
 * (strv_free). */
char **dt_agent_env(struct dt_agent *a, json_t *extra);

/* Whether the last process that died of SIGKILL was killed by the OOM killer: compares the
 * cgroup's oom_kill counter with the value seen before (reads cfg.oom_fd). */
bool dt_agent_oom_killed_since(struct dt_agent *a, uint64_t *counter);
uint64_t dt_agent_oom_count(struct dt_agent *a);

/* JSON helpers that never fail on invalid UTF-8 (file names and command output may hold any
 * bytes): invalid sequences become U+FFFD. */
json_t *dt_json_string_lossy(const char *s, size_t len);

#endif
