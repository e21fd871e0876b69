/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time and sleeping, for the short polling loops of library code. */
#ifndef DT_TIME_UTIL_H
#define DT_TIME_UTIL_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. Async-signal-safe. */
uint64_t now_msec(void);
/* Sleep MSEC milliseconds, resuming after signals. */
void sleep_msec(unsigned msec);

#endif
