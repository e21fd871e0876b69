/* SPDX-License-Identifier: Apache-2.0 */
/* Starting a sandbox with daytona-agent as its init: the one place that knows the agent's
 * start-up contract. Shared by the runner (daytonad serve) and `daytonad run --agent`.
 * The init gets fd 3 = the listening socket (LISTEN_FDS=1, created here on the host: it never
 * appears inside the sandbox), fd 4 = the cgroup's OOM counter file, and from fd 5 the workload
 * leaf's cgroup.procs (plan.init_leaf); the binary is executed from a host fd. */
#ifndef DT_SERVER_AGENT_LAUNCH_H
#define DT_SERVER_AGENT_LAUNCH_H

#include "dt/error.h"
#include "dt/runtime.h"

/* Make P's init the agent: its argv (with --user USER and --workdir WORKDIR when not NULL), the
 * LISTEN_FDS environment, and the init/workload cgroup leaves. Arguments the caller pushes
 * afterwards follow; an entrypoint goes after a "--". */
void dt_agent_plan(struct dt_plan *p, const char *user, const char *workdir);

/* Open the agent binary PATH (NULL: daytona-agent-static next to our own binary when there is
 * one — sanitizer builds — else daytona-agent there) for exec_fd:
 * O_RDONLY|O_CLOEXEC, a regular executable file, else -ENOEXEC. */
int dt_agent_open_binary(const char *path, int *ret_fd, struct dt_error **err);

/* A listening unix socket at PATH, mode 0600 (root only: it is the sandbox's control channel),
 * bound under a temporary name and renamed, so whoever sees PATH can connect. A socket already
 * at PATH is replaced; anything else there is -EEXIST. */
int dt_agent_listen(const char *path, int *ret_fd, struct dt_error **err);

/* Start SB (created with dt_agent_plan) running the agent from EXE_FD, serving on a new socket
 * at SOCKET_PATH, with STDIO as its stdin/stdout/stderr (-1 = /dev/null), OOM-protected when the
 * host allows: *RET_PROTECT (may be NULL) gets 0 or the -errno that prevented it. On failure the
 * socket is removed. */
int dt_agent_start(struct dt_sandbox *sb, int exe_fd, const char *socket_path, const int stdio[3],
                   int *ret_protect, struct dt_error **err);

#endif
