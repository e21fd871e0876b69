/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time and sleeping: see include/dt/time-util.h. */
#include "dt/time-util.h"

#include <errno.h>
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
