/* SPDX-License-Identifier: Apache-2.0 */
/* Small macros used everywhere: cleanup attributes and ownership transfer (systemd style),
 * array sizes, errno helpers. No dependencies beyond libc. */
#ifndef DT_MACROS_H
#define DT_MACROS_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Upper bound on the decimal length of an integer type, including sign and NUL. */
#define DECIMAL_STR_MAX(type) (2 + (sizeof(type) <= 1 ? 3 : sizeof(type) <= 2 ? 5 : sizeof(type) <= 4 ? 10 : 20))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_     __attribute__((unused))
#define _noreturn_   __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x)   __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

/* Hand ownership of a pointer or fd out of a cleanup variable. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p_ = (p);                                                                   \
        (p) = NULL;                                                                                \
        _p_;                                                                                       \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _fd_ = (fd);                                                                           \
        (fd) = -EBADF;                                                                             \
        _fd_;                                                                                      \
    })

/* Turn a libc-style "-1 and errno" return into "-errno"; keeps non-negative results. */
#define RET_NERRNO(expr)                                                                           \
    ({                                                                                             \
        __typeof__(expr) _r_ = (expr);                                                             \
        _r_ < 0 ? -errno : _r_;                                                                    \
    })

static inline void
freep(void *p)
{
    free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Close preserving errno; accepts negative fds. Safe in a forked child. */
static inline int
safe_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void) close(fd);
        errno = saved;
    }
    return -EBADF;
}
static inline void
closep(int *fd)
{
    safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Always-on invariant checks: for programmer errors only, never for bad input. */
void dt_assert_fail(const char *expr, const char *file, int line, const char *func)
        __attribute__((noreturn));
#define DT_ASSERT(expr)                                                                            \
    do {                                                                                           \
        if (_unlikely_(!(expr)))                                                                   \
            dt_assert_fail(#expr, __FILE__, __LINE__, __func__);                                   \
    } while (0)
#define DT_BUG(msg) dt_assert_fail(msg, __FILE__, __LINE__, __func__)

#endif
