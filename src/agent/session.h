/* SPDX-License-Identifier: Apache-2.0 */
/* Stateful shell sessions of the toolbox (contract 3.6): one long-lived shell per session, its
 * commands run in order in that shell with their output kept in memory for the logs endpoints.
 * The HTTP side is the route table dt_session_routes (agent.h); this header is for main. */
#ifndef DT_AGENT_SESSION_H
#define DT_AGENT_SESSION_H

#include "agent/agent.h"
#include "dt/error.h"

/* The reserved session that runs the sandbox's entrypoint. */
#define DT_SESSION_ENTRYPOINT "entrypoint"

/* Create the "entrypoint" session and run ARGV (argv[0] looked up in PATH, each argument quoted
 * for the shell) in it as an asynchronous command, as the sandbox user. ARGV is borrowed. Call
 * once, on the loop, after dt_agent_init(). Returns 0, or -errno with *err set (shell could not
 * start, state directory not writable). Its logs are served at /process/session/entrypoint/logs. */
int dt_session_start_entrypoint(struct dt_agent *a, char **argv, struct dt_error **err);

#endif
