/* SPDX-License-Identifier: Apache-2.0 */
/* File-descriptor helpers. All return >= 0 on success and -errno on failure, never log, and
 * (except read_file_at, read_fd_all, copy_fd_all and fd_printf, which allocate) are
 * async-signal-safe, usable in a forked child. */
#ifndef DT_FD_UTIL_H
#define DT_FD_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "dt/macros.h"

/* Write all of BUF, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
/* Read until LEN bytes or EOF; returns the number of bytes read. */
ssize_t read_full(int fd, void *buf, size_t len);
/* Write the string VALUE to the file NAME under DIRFD (O_WRONLY|O_TRUNC, no create). */
int write_string_at(int dirfd, const char *name, const char *value);
/* Create or truncate NAME under DIRFD with MODE and write LEN bytes of DATA. */
int write_file_at(int dirfd, const char *name, const void *data, size_t len, int mode);
/* Read NAME under DIRFD into a new NUL-terminated buffer (at most MAX bytes, else -EFBIG).
 * *ret is owned by the caller (free()). Not async-signal-safe. */
int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);
/* Like read_file_at() but from FD's current position to EOF. Not async-signal-safe. */
int read_fd_all(int fd, size_t max, char **ret, size_t *ret_len);
/* Format an unsigned/signed number into BUF (at least 21/22 bytes); returns BUF. Async-signal-safe. */
/* Copy everything from IN (from its offset) to OUT: copy_file_range (a reflink or an in-kernel
 * copy where the filesystem can), else read/write. Returns 0 or -errno. */
int copy_fd_all(int in, int out);
/* printf to FD for logs and progress: best effort (errors ignored), nothing when FD < 0. */
void fd_printf(int fd, const char *fmt, ...) _printf_(2, 3);
char *fmt_u64(char *buf, unsigned long long v);
char *fmt_i64(char *buf, long long v);

#endif
