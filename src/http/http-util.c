/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP helpers without I/O: percent-decoding, errno to status mapping, status texts, the Date
 * header, response head formatting and chunked-coding frame headers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dt/http.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/banned.h"


int
dt_http_percent_decode(const char *in, size_t len, char *out, size_t *ret_len, bool plus_as_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];

        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return -EINVAL;
            hi = unhex(in[i + 1]);
            lo = unhex(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char) (hi << 4 | lo);
            /* A NUL would truncate the path for every C consumer after the check. */
            if (c == '\0')
                return -EINVAL;
            i += 2;
        } else if (c == '\0') {
            return -EINVAL;
        } else if (c == '+' && plus_as_space) {
            c = ' ';
        }
        out[o++] = c; /* o <= i, so OUT == IN is safe */
    }
    out[o] = '\0';
    if (ret_len)
        *ret_len = o;
    return 0;
}

int
dt_http_error_status(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return 200;
    case ENOENT:
        return 404;
    case EEXIST:
    case EBUSY:
        return 409;
    case EINVAL:
    case EBADMSG:
        return 400;
    case EPERM:
    case EACCES:
        return 403;
    case ETIMEDOUT:
        return 504;
    case E2BIG:
    case EFBIG:
        return 413;
    case ENAMETOOLONG:
        return 414;
    case EMSGSIZE:
        return 431;
    case EOPNOTSUPP:
        return 501;
    case EPROTONOSUPPORT:
        return 505;
    default:
        return 500;
    }
}

const char *
dt_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

int
dt_http_format_date(time_t t, char buf[static DT_HTTP_DATE_SIZE])
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    int n;

    /* strftime("%a") would follow the locale; the names are fixed by RFC 7231. */
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        return -EINVAL;
    n = snprintf(buf, DT_HTTP_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
    if (n != DT_HTTP_DATE_SIZE - 1)
        return -EINVAL;
    return 0;
}

static bool
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* Copy into BUF as far as it fits, always counting the full length. */
static void
put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (*pos < size) {
        size_t k = size - *pos;
        memcpy(buf + *pos, s, n < k ? n : k);
    }
    *pos += n;
}

ssize_t
dt_http_format_response_head(char *buf, size_t size, int status,
                             const struct dt_http_header *headers, size_t n_headers)
{
    char line[64];
    size_t pos = 0;
    int n;

    if (status < 100 || status > 999)
        return -EINVAL;
    for (size_t i = 0; i < n_headers; i++) {
        const char *name = headers[i].name, *value = headers[i].value;
        size_t nl = headers[i].name_len ? headers[i].name_len : strlen(name);
        size_t vl = headers[i].value_len ? headers[i].value_len : strlen(value);
        if (nl == 0)
            return -EINVAL;
        for (size_t j = 0; j < nl; j++)
            if (!is_tchar((unsigned char) name[j]))
                return -EINVAL;
        for (size_t j = 0; j < vl; j++)
            if (value[j] == '\r' || value[j] == '\n' || value[j] == '\0')
                return -EINVAL;
    }

    n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, dt_http_status_text(status));
    put(buf, size, &pos, line, (size_t) n);
    for (size_t i = 0; i < n_headers; i++) {
        const char *name = headers[i].name, *value = headers[i].value;
        size_t nl = headers[i].name_len ? headers[i].name_len : strlen(name);
        size_t vl = headers[i].value_len ? headers[i].value_len : strlen(value);
        put(buf, size, &pos, name, nl);
        put(buf, size, &pos, ": ", 2);
        put(buf, size, &pos, value, vl);
        put(buf, size, &pos, "\r\n", 2);
    }
    put(buf, size, &pos, "\r\n", 2);
    if (size > 0)
        buf[pos < size ? pos : size - 1] = '\0';
    return (ssize_t) pos;
}

int
dt_http_chunk_header(char buf[static DT_HTTP_CHUNK_HEADER_MAX], size_t len)
{
    if (len == 0)
        return -EINVAL;
    return snprintf(buf, DT_HTTP_CHUNK_HEADER_MAX, "%zx\r\n", len);
}
