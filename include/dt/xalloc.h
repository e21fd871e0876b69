/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation that aborts on out-of-memory (as crun, git, redis and h2o do). What makes this safe
 * is that every size an outside party controls has a hard limit before it reaches here. */
#ifndef DT_XALLOC_H
#define DT_XALLOC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "dt/macros.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow an array of NMEMB elements of SIZE, checking the multiplication. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A malloc'ed copy of N bytes of P. */
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

/* Free a NULL-terminated array of strings and the array itself; accepts NULL. */
void strv_free(char **v);
static inline void
strv_freep(char ***v)
{
    strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *v);
/* A deep copy of V: NULL for NULL, an empty (non-NULL) list for an empty one. */
char **strv_copy(char *const *v);
/* Append a copy of S to the NULL-terminated array *V (which may be NULL). */
void strv_push(char ***v, const char *s);

#endif
