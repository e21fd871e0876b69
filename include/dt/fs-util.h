/* SPDX-License-Identifier: Apache-2.0 */
/* Filesystem helpers that return -errno and never log. Not async-signal-safe. */
#ifndef DT_FS_UTIL_H
#define DT_FS_UTIL_H

#include <sys/types.h>

/* Remove NAME under DIRFD recursively, like `rm -rf --one-file-system`: never crosses into another
 * filesystem (a mount point below is left alone and reported as -EBUSY at the end), never follows
 * symlinks. A missing NAME is success. */
int rm_rf_at(int dirfd, const char *name);

/* mkdir -p for a host path; existing directories are fine. */
int mkdir_p(const char *path, mode_t mode);

/* Read field 22 (start time in clock ticks) of /proc/PID/stat; -ESRCH when gone. */
int proc_start_time(pid_t pid, unsigned long long *ret);

#endif
