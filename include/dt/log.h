/* SPDX-License-Identifier: Apache-2.0 */
/* Logging for programs (libraries return errors and log at debug level at most).
 * One line per event on stderr in key=value form:
 *   ts=2026-11-24T00:00:00.123Z level=warn comp=runtime msg="..." */
#ifndef DT_LOG_H
#define DT_LOG_H

#include "dt/macros.h"

enum dt_log_level {
    DT_LOG_ERROR = 0,
    DT_LOG_WARNING,
    DT_LOG_INFO,
    DT_LOG_DEBUG,
};

extern enum dt_log_level dt_log_max_level;

/* Set the component name shown as comp=...; the string must outlive logging. */
void dt_log_set_component(const char *comp);
/* Parse "error|warning|info|debug"; returns 0 or -EINVAL. */
int dt_log_parse_level(const char *s, enum dt_log_level *ret);

/* Log a message; when ERRNUM is non-zero, ": strerror" is appended. Returns -|ERRNUM| (or 0). */
int dt_log_internal(enum dt_log_level level, int errnum, const char *fmt, ...) _printf_(3, 4);

#define dt_log_full(level, errnum, ...)                                                            \
    ((level) <= dt_log_max_level ? dt_log_internal(level, errnum, __VA_ARGS__)                     \
                                 : ((errnum) > 0 ? -(errnum) : (errnum)))
#define log_error(...)   dt_log_full(DT_LOG_ERROR, 0, __VA_ARGS__)
#define log_warning(...) dt_log_full(DT_LOG_WARNING, 0, __VA_ARGS__)
#define log_info(...)    dt_log_full(DT_LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)   dt_log_full(DT_LOG_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(r, ...)   dt_log_full(DT_LOG_ERROR, r, __VA_ARGS__)
#define log_warning_errno(r, ...) dt_log_full(DT_LOG_WARNING, r, __VA_ARGS__)
#define log_debug_errno(r, ...)   dt_log_full(DT_LOG_DEBUG, r, __VA_ARGS__)

#endif
