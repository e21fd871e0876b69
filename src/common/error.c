/* SPDX-License-Identifier: Apache-2.0 */
/* Error values with context: see include/dt/error.h. */
#include "dt/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dt/xalloc.h"

_printf_(4, 0) static int
error_vset(struct dt_error **err, int errnum, bool with_strerror, const char *fmt, va_list ap)
{
    if (errnum < 0)
        errnum = -errnum;
    if (errnum == 0)
        errnum = EIO;
    if (!err || *err)
        return -errnum;

    char *msg = xvasprintf(fmt, ap);
    struct dt_error *e = xmalloc(sizeof(*e));
    e->code = errnum;
    if (with_strerror) {
        e->message = xasprintf("%s: %s", msg, strerror(errnum));
        free(msg);
    } else
        e->message = msg;
    *err = e;
    return -errnum;
}

int
dt_error_errno(struct dt_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(err, errnum, true, fmt, ap);
    va_end(ap);
    return r;
}

int
dt_error_set(struct dt_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(err, errnum, false, fmt, ap);
    va_end(ap);
    return r;
}

int
dt_error_wrap(struct dt_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -EIO;

    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);

    char *msg = xasprintf("%s: %s", ctx, (*err)->message);
    free(ctx);
    free((*err)->message);
    (*err)->message = msg;
    return -(*err)->code;
}

void
dt_error_free(struct dt_error *e)
{
    if (!e)
        return;
    free(e->message);
    free(e);
}

const char *
dt_errno_name(int errnum)
{
    if (errnum < 0)
        errnum = -errnum;
    const char *n = strerrorname_np(errnum);
    return n ? n : "EIO";
}

void
dt_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "assertion '%s' failed at %s:%d, function %s(); aborting\n", expr, file, line,
            func);
    abort();
}
