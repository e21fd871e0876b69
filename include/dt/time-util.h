/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time and sleeping, for the short polling loops of library code; wall-clock time as
 * the ISO-8601 strings the APIs speak. */
#ifndef DT_TIME_UTIL_H
#define DT_TIME_UTIL_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. Async-signal-safe. */
uint64_t now_msec(void);
/* Sleep MSEC milliseconds, resuming after signals. */
void sleep_msec(unsigned msec);
/* CLOCK_REALTIME in milliseconds since the epoch. */
int64_t realtime_msec(void);

/* UNIX_MS as "2026-01-02T03:04:05.678Z" (UTC, milliseconds) into BUF. Times outside years
 * 0..9999 print as the epoch rather than overflow. */
#define ISO8601_MSEC_SIZE 64 /* 25 used; room for what gcc cannot rule out */
void format_iso8601_msec(int64_t unix_ms, char buf[static ISO8601_MSEC_SIZE]);

#endif
