/* SPDX-License-Identifier: Apache-2.0 */
/* Aborting allocators and string-vector helpers: see include/dt/xalloc.h. */
#include "dt/xalloc.h"

#include <stdio.h>
#include <string.h>

_noreturn_ static void
oom(void)
{
    static const char msg[] = "out of memory, aborting\n";
    (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n))
        oom();
    return xrealloc(p, n);
}

char *
xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

void *
xmemdup(const void *p, size_t n)
{
    void *q = xmalloc(n ? n : 1);
    if (n)
        memcpy(q, p, n);
    return q;
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
    char *p;
    if (vasprintf(&p, fmt, ap) < 0)
        oom();
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void
strv_free(char **v)
{
    if (!v)
        return;
    for (char **i = v; *i; i++)
        free(*i);
    free(v);
}

size_t
strv_length(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void
strv_push(char ***v, const char *s)
{
    size_t n = strv_length(*v);
    *v = xreallocarray(*v, n + 2, sizeof(char *));
    (*v)[n] = xstrdup(s);
    (*v)[n + 1] = NULL;
}

char **
strv_copy(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = strv_length(v);
    char **c = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}
