/* SPDX-License-Identifier: Apache-2.0 */
/* File-descriptor helpers: see include/dt/fd-util.h. */
#include "dt/fd-util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/xalloc.h"

int
write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

ssize_t
read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t) n;
    }
    return (ssize_t) got;
}

int
write_string_at(int dirfd, const char *name, const char *value)
{
    int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, value, strlen(value));
    safe_close(fd);
    return r;
}

int
write_file_at(int dirfd, const char *name, const void *data, size_t len, int mode)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                    mode);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, data, len);
    safe_close(fd);
    return r;
}

int
read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    return read_fd_all(fd, max, ret, ret_len);
}

int
read_fd_all(int fd, size_t max, char **ret, size_t *ret_len)
{
    size_t cap = max < 4096 ? max : 4096, len = 0;
    _cleanup_free_ char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                /* Full at the limit: fine only if the file ends exactly here. */
                char probe;
                ssize_t k;
                do
                    k = read(fd, &probe, 1);
                while (k < 0 && errno == EINTR);
                if (k < 0)
                    return -errno;
                if (k > 0)
                    return -EFBIG;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t) n;
    }
    buf[len] = 0;
    if (ret_len)
        *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

char *
fmt_u64(char *buf, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return buf;
}

char *
fmt_i64(char *buf, long long v)
{
    if (v < 0) {
        buf[0] = '-';
        fmt_u64(buf + 1, 0ULL - (unsigned long long) v);
    } else
        fmt_u64(buf, (unsigned long long) v);
    return buf;
}

int
copy_fd_all(int in, int out)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -errno;
        break;
    }
    /* Fallback: plain read/write (old kernels, special file systems). */
    char *buf = xmalloc(1u << 16);
    int r = 0;
    for (;;) {
        ssize_t n = read(in, buf, 1u << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        r = write_all(out, buf, (size_t) n);
        if (r < 0)
            break;
    }
    free(buf);
    return r;
}

void
fd_printf(int fd, const char *fmt, ...)
{
    va_list ap;

    if (fd < 0)
        return;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    (void) write_all(fd, m, strlen(m));
    free(m);
}
