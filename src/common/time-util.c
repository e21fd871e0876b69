/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time and sleeping: see include/dt/time-util.h. */
#include "dt/time-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dt/banned.h"

uint64_t
now_msec(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void
sleep_msec(unsigned msec)
{
    struct timespec ts = {.tv_sec = msec / 1000, .tv_nsec = (long) (msec % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int64_t
realtime_msec(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
format_iso8601_msec(int64_t unix_ms, char buf[static ISO8601_MSEC_SIZE])
{
    int64_t ms = unix_ms % 1000 < 0 ? unix_ms % 1000 + 1000 : unix_ms % 1000;
    time_t t = (time_t) ((unix_ms - ms) / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
        ms = 0;
    }
    snprintf(buf, ISO8601_MSEC_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) ms);
}
