/* SPDX-License-Identifier: Apache-2.0 */
/* daytona_error: building errors for the caller, including the translation of an HTTP error
 * response (contract §4.1 body shape, or anything else a proxy may send) into one line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client-int.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

void
daytona_error_free(daytona_error *e)
{
    if (!e)
        return;
    free(e->server_code);
    free(e->source);
    free(e->message);
    free(e);
}

_printf_(4, 0) static int
verror(daytona_error **err, int errnum, bool with_strerror, const char *fmt, va_list ap)
{
    daytona_error *e;
    char *msg;

    if (errnum < 0)
        errnum = -errnum;
    if (errnum == 0)
        errnum = EIO;
    if (!err || *err)
        return -errnum;
    msg = xvasprintf(fmt, ap);
    e = xcalloc(1, sizeof(*e));
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
dc_error(daytona_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = verror(err, errnum, false, fmt, ap);
    va_end(ap);
    return r;
}

int
dc_error_errno(daytona_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = verror(err, errnum, true, fmt, ap);
    va_end(ap);
    return r;
}

int
dc_error_wrap(daytona_error **err, const char *fmt, ...)
{
    _cleanup_free_ char *ctx = NULL;
    va_list ap;
    char *m;

    if (!err || !*err)
        return -EIO;
    va_start(ap, fmt);
    ctx = xvasprintf(fmt, ap);
    va_end(ap);
    m = xasprintf("%s: %s", ctx, (*err)->message);
    free((*err)->message);
    (*err)->message = m;
    return -(*err)->code;
}

int
dc_status_errno(long status)
{
    switch (status) {
    case 400:
    case 422:
        return EINVAL;
    case 401:
    case 403:
        return EACCES;
    case 404:
        return ENOENT;
    case 408:
    case 504:
        return ETIMEDOUT;
    case 409:
        return EBUSY;
    case 410:
        return ESRCH;
    case 413:
        return EFBIG;
    case 429:
    case 503:
        return EAGAIN;
    case 501:
        return EOPNOTSUPP;
    default:
        return EIO;
    }
}

/* Make TEXT one printable line of at most 300 bytes: error bodies come from servers and proxies
 * we do not control (HTML pages, stack traces) and end up on a terminal. */
static char *
one_line(const char *text, size_t len)
{
    size_t n = len > 300 ? 300 : len, o = 0;
    char *out = xmalloc(n + 4);
    bool space = false;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) text[i];
        if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
            space = o > 0;
            continue;
        }
        if (ch < 0x20 || ch == 0x7f)
            ch = '?';
        if (space) {
            out[o++] = ' ';
            space = false;
        }
        out[o++] = (char) ch;
    }
    if (len > n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
    return out;
}

int
dc_error_http(daytona_error **err, long status, const char *body, size_t len, const char *what)
{
    _cleanup_free_ char *msg = NULL;
    char *code = NULL, *source = NULL;
    daytona_error *e;
    json_t *j = NULL;
    int errnum = dc_status_errno(status);

    if (!err || *err)
        return -errnum;
    if (body && len > 0)
        j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (j && json_is_object(j)) {
        json_t *m = json_object_get(j, "message"), *ee = json_object_get(j, "error");
        json_t *c = json_object_get(j, "code");

        /* Our own daemon style is {"error": {"code", "message"}}: accept it too. */
        if (!json_is_string(m) && json_is_object(ee)) {
            m = json_object_get(ee, "message");
            if (!json_is_string(c))
                c = json_object_get(ee, "code");
        }
        if (json_is_string(m))
            msg = one_line(json_string_value(m), json_string_length(m));
        else if (json_is_array(m) && json_array_size(m) > 0 &&
                 json_is_string(json_array_get(m, 0))) {
            /* NestJS validation errors: a list of messages, more useful than "Bad Request". */
            json_t *m0 = json_array_get(m, 0);
            msg = one_line(json_string_value(m0), json_string_length(m0));
        } else if (json_is_string(ee))
            msg = one_line(json_string_value(ee), json_string_length(ee));
        if (!json_is_string(c))
            c = json_object_get(j, "error_code");
        if (json_is_string(c))
            code = xstrdup(json_string_value(c));
        if (json_is_string(json_object_get(j, "source")))
            source = xstrdup(json_string_value(json_object_get(j, "source")));
        if (!msg) {
            _cleanup_free_ char *t = json_dumps(j, JSON_COMPACT);
            if (t)
                msg = one_line(t, strlen(t));
        }
    } else if (j && json_is_string(j))
        msg = one_line(json_string_value(j), json_string_length(j));
    else if (body && len > 0)
        msg = one_line(body, len);
    json_decref(j);
    if (!msg || !msg[0]) {
        free(msg);
        msg = xasprintf("HTTP status %ld", status);
    }

    e = xcalloc(1, sizeof(*e));
    e->code = errnum;
    e->http_status = (int) status;
    e->server_code = code;
    e->source = source;
    e->message = code ? xasprintf("%s: %s (HTTP %ld, %s)", what, msg, status, code)
                      : xasprintf("%s: %s (HTTP %ld)", what, msg, status);
    *err = e;
    return -errnum;
}
