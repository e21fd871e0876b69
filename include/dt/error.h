/* SPDX-License-Identifier: Apache-2.0 */
/* Errors that reach a person: an errno plus a message that gathers context on its way up
 * (crun's crun_error_wrap). Leaf helpers return -errno only; operations take a trailing
 * `struct dt_error **err`; edges (main, HTTP layer, CLI) report once. */
#ifndef DT_ERROR_H
#define DT_ERROR_H

#include "dt/macros.h"

struct dt_error {
    int code;      /* positive errno */
    char *message; /* "outer context: inner context: strerror" */
};

/* Set *err (when err is not NULL and *err is NULL) to ERRNUM with a formatted message, to which
 * ": strerror(ERRNUM)" is appended. ERRNUM may be given positive or negative.
 * Returns -ERRNUM, so `return dt_error_errno(err, errno, "open '%s'", p);` reads naturally.
 * When *err is already set, it is kept (the first error wins) and only -ERRNUM is returned. */
int dt_error_errno(struct dt_error **err, int errnum, const char *fmt, ...) _printf_(3, 4);

/* Like dt_error_errno() but without the strerror suffix: for errors that are not a syscall's
 * (bad input, a limit exceeded). */
int dt_error_set(struct dt_error **err, int errnum, const char *fmt, ...) _printf_(3, 4);

/* Prefix the message of *err with "context: ". Returns -(*err)->code, or -EIO when err or *err
 * is NULL. */
int dt_error_wrap(struct dt_error **err, const char *fmt, ...) _printf_(2, 3);

/* Free an error; accepts NULL. */
void dt_error_free(struct dt_error *e);
static inline void
dt_error_freep(struct dt_error **e)
{
    dt_error_free(*e);
    *e = NULL;
}
#define _cleanup_error_ _cleanup_(dt_error_freep)

/* The symbolic name of an errno ("ENOENT"), or "EIO" for unknown values. Static storage. */
const char *dt_errno_name(int errnum);

#endif
