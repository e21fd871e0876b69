/* SPDX-License-Identifier: Apache-2.0 */
/* key=value logging to stderr: see include/dt/log.h. */
#include "dt/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum dt_log_level dt_log_max_level = DT_LOG_INFO;
static const char *log_component = "daytona";

static const char *const level_names[] = {
        [DT_LOG_ERROR] = "error",
        [DT_LOG_WARNING] = "warn",
        [DT_LOG_INFO] = "info",
        [DT_LOG_DEBUG] = "debug",
};

void
dt_log_set_component(const char *comp)
{
    log_component = comp;
}

int
dt_log_parse_level(const char *s, enum dt_log_level *ret)
{
    for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *ret = (enum dt_log_level) i;
            return 0;
        }
    if (strcasecmp(s, "warning") == 0) {
        *ret = DT_LOG_WARNING;
        return 0;
    }
    return -EINVAL;
}

int
dt_log_internal(enum dt_log_level level, int errnum, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    int saved = errno;

    if (errnum < 0)
        errnum = -errnum;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    /* Quote the message: escape backslashes, quotes and control characters so one event stays one
     * line. */
    char quoted[sizeof(msg) * 2 + 1];
    size_t q = 0;
    for (const char *p = msg; *p && q + 4 < sizeof(quoted); p++) {
        unsigned char c = (unsigned char) *p;
        if (c == '"' || c == '\\') {
            quoted[q++] = '\\';
            quoted[q++] = (char) c;
        } else if (c < 0x20) {
            quoted[q++] = '\\';
            quoted[q++] = c == '\n' ? 'n' : c == '\t' ? 't' : '?';
        } else
            quoted[q++] = (char) c;
    }
    quoted[q] = 0;

    fprintf(stderr, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=\"%s%s%s\"\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[level], log_component, quoted, errnum ? ": " : "",
            errnum ? strerror(errnum) : "");
    errno = saved;
    return -errnum;
}
