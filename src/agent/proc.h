/* SPDX-License-Identifier: Apache-2.0 */
/* Child processes of the agent: spawning user commands (as the sandbox user, in their own process
 * group or session, optionally on a pseudo-terminal), reaping every child of PID 1 (orphans of
 * the sandbox are re-parented to us), and reading their output through libuv pipes.
 *
 * The agent is PID 1 of the sandbox, so it reaps with waitpid(-1): this module owns SIGCHLD and
 * nothing else in the agent may call uv_spawn(). */
#ifndef DT_AGENT_PROC_H
#define DT_AGENT_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "dt/error.h"

struct dt_agent;
struct dt_proc;

/* How a child ended. */
struct dt_proc_exit {
    int code;        /* exit status, or 128 + signal (the shell convention) */
    int signal;      /* terminating signal or 0 */
    bool oom_killed; /* SIGKILL and the cgroup's OOM kill counter went up meanwhile */
};

typedef void (*dt_proc_exit_fn)(struct dt_proc *p, const struct dt_proc_exit *e, void *userdata);

struct dt_spawn {
    char *const *argv;       /* argv[0] is looked up in PATH of ENV when it has no '/' */
    char *const *env;        /* complete environment (dt_agent_env) */
    const char *cwd;         /* NULL = the user's home; a missing cwd fails the spawn (-ENOENT) */
    bool as_root;            /* run as root of the sandbox instead of the sandbox user */
    /* stdio: each is an fd to dup into 0/1/2 in the child, or -1 for /dev/null. With pty set they
     * are ignored: the pty's slave becomes 0/1/2 and the child gets a session and controlling
     * terminal. */
    int stdio[3];
    bool pty;
    uint16_t cols, rows;     /* initial pty size (0 = 80x24) */
    /* Extra fds handed to the child as 3, 4, ... (e.g. the interpreter's channels). */
    const int *extra_fds;
    int n_extra_fds;
};

/* Start a child. *RET_PTY_MASTER (when pty) gets the master side (O_CLOEXEC|O_NONBLOCK, owned by
 * the caller). Returns once the child has exec'd, or -errno with *err naming the failing step
 * (e.g. "no such command: git"). EXIT_CB runs once when the child has been reaped; the handle
 * stays valid until dt_proc_free(), which may be called from EXIT_CB or earlier (then the child
 * is still reaped, silently). */
int dt_proc_spawn(struct dt_agent *a, const struct dt_spawn *sp, dt_proc_exit_fn exit_cb,
                  void *userdata, struct dt_proc **ret, int *ret_pty_master, struct dt_error **err);
pid_t dt_proc_pid(const struct dt_proc *p);
bool dt_proc_running(const struct dt_proc *p);
/* Signal the child's whole process group (or session, for a pty). No-op once reaped. */
void dt_proc_kill(struct dt_proc *p, int sig);
void dt_proc_free(struct dt_proc *p);

/* Install the SIGCHLD reaper on A's loop (called once at start). Children nobody spawned
 * (orphans) are reaped and forgotten. */
int dt_proc_init(struct dt_agent *a, struct dt_error **err);
/* On shutdown: SIGTERM to every child process group, then SIGKILL after GRACE_MS. */
void dt_proc_terminate_all(struct dt_agent *a, uint64_t grace_ms);

/* A pipe whose read end is a uv_pipe_t on A's loop and whose write end is returned in
 * *RET_WRITE_FD (O_CLOEXEC, to pass as a child's stdio and close afterwards). */
int dt_proc_pipe(struct dt_agent *a, uv_pipe_t *reader, int *ret_write_fd, struct dt_error **err);

/* Look up CMD in the PATH of ENV (or the default PATH); returns a malloc'ed path or NULL. */
char *dt_proc_which(const char *cmd, char *const *env);

#endif
