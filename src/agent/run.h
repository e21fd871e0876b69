/* SPDX-License-Identifier: Apache-2.0 */
/* Run a command to completion and collect its output: what /process/execute, /process/code-run
 * and the git routes need. Output is captured through pipes on the loop (bounded: beyond the cap
 * it is dropped and the result says so), input comes from a memfd, a timeout kills the process
 * group. */
#ifndef DT_AGENT_RUN_H
#define DT_AGENT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proc.h"
#include "dt/error.h"

struct dt_agent;
struct dt_run;

struct dt_run_opts {
    char *const *argv;
    char *const *env;        /* complete environment */
    const char *cwd;         /* NULL = the user's home */
    bool as_root;
    const char *input;       /* bytes for the child to read (stdin, or fd 3 with input_on_fd3) */
    size_t input_len;
    bool input_on_fd3;       /* give INPUT as fd 3 and /dev/null as stdin */
    bool merge_stderr;       /* stderr goes to the stdout capture (2>&1) */
    bool side_channel;       /* capture fd 4 of the child into result.side (max_side bytes) */
    size_t max_out, max_err, max_side; /* caps [64 MiB, 64 KiB (the tail is kept), 16 MiB] */
    uint64_t timeout_ms;     /* 0 = none */
};

struct dt_run_result {
    struct dt_proc_exit exit;
    bool timed_out;          /* killed by the timeout (exit says SIGKILL) */
    char *out, *err, *side;  /* NUL-terminated; owned by the run (valid during the callback) */
    size_t out_len, err_len, side_len;
    bool out_truncated;
};

typedef void (*dt_run_fn)(struct dt_run *run, const struct dt_run_result *res, void *userdata);

/* Start; CB runs once when the process has exited and its output pipes are drained (or 100 ms
 * after its exit when a background process keeps them open). The run frees itself after CB.
 * Errors (no such command, bad cwd) are returned here and CB never runs. */
int dt_run_start(struct dt_agent *a, const struct dt_run_opts *o, dt_run_fn cb, void *userdata,
                 struct dt_run **ret, struct dt_error **err);
/* Kill the process group and forget the run: CB will not run. */
void dt_run_cancel(struct dt_run *run);

#endif
