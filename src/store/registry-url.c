/* SPDX-License-Identifier: Apache-2.0 */
/* Registry addresses as users type them ("https://GHCR.io/", "localhost:5000"): validation into
 * the lowercase host[:port] the store keeps, and host matching with Docker Hub's aliases. Pure
 * string code on untrusted input, built into the fuzz configuration too (fuzz/fuzz-s3.c). */
#include "dt/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* ---- addresses ---------------------------------------------------------------------------- */

static bool
host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
}

int
dt_store_registry_normalize_url(const char *url, char **ret, struct dt_error **err)
{
    const char *p = url;
    size_t n;

    if (!url || !*url)
        return dt_error_set(err, EINVAL, "registry url is required");
    if (strncasecmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncasecmp(p, "http://", 7) == 0)
        p += 7;
    n = strlen(p);
    if (n > 0 && p[n - 1] == '/')
        n--;
    if (n == 0 || n > 255)
        return dt_error_set(err, EINVAL, "registry url '%s' is not a host[:port]", url);

    /* host: DNS labels (letters, digits, '-', '.'), or a bracketed IPv6 literal. */
    size_t i = 0;
    if (p[0] == '[') {
        while (i < n && p[i] != ']')
            i++;
        if (i >= n || i == 1)
            return dt_error_set(err, EINVAL, "registry url '%s': unterminated IPv6 address", url);
        for (size_t k = 1; k < i; k++)
            if (!(host_char_ok(p[k]) || p[k] == ':') || p[k] == '-')
                return dt_error_set(err, EINVAL, "registry url '%s': bad IPv6 address", url);
        i++;
    } else {
        while (i < n && host_char_ok(p[i]))
            i++;
        if (i == 0 || p[0] == '.' || p[0] == '-' || p[i - 1] == '.' || p[i - 1] == '-')
            return dt_error_set(err, EINVAL, "registry url '%s': bad host name", url);
        for (size_t k = 1; k < i; k++)
            if (p[k] == '.' && p[k - 1] == '.')
                return dt_error_set(err, EINVAL, "registry url '%s': bad host name", url);
    }
    if (i < n) {
        if (p[i] != ':')
            return dt_error_set(err, EINVAL,
                                "registry url '%s' must be host[:port] (with an optional "
                                "http:// or https://), without a path", url);
        size_t k = i + 1;
        unsigned long port = 0;
        if (k == n || n - k > 5)
            return dt_error_set(err, EINVAL, "registry url '%s': bad port", url);
        for (; k < n; k++) {
            if (p[k] < '0' || p[k] > '9')
                return dt_error_set(err, EINVAL, "registry url '%s': bad port", url);
            port = port * 10 + (unsigned long) (p[k] - '0');
        }
        if (port == 0 || port > 65535)
            return dt_error_set(err, EINVAL, "registry url '%s': port out of range", url);
    }
    char *h = xstrndup(p, n);
    for (char *c = h; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char) (*c - 'A' + 'a');
    *ret = h;
    return 0;
}

static bool
is_docker_hub(const char *h)
{
    return strcmp(h, "docker.io") == 0 || strcmp(h, "registry-1.docker.io") == 0 ||
           strcmp(h, "index.docker.io") == 0;
}

bool
dt_store_registry_host_matches(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    if (strcasecmp(a, b) == 0)
        return true;
    /* Docker Hub has one account behind three names: what users type, what the v1 index was
     * called, and where the v2 API actually lives. */
    _cleanup_free_ char *la = xstrdup(a), *lb = xstrdup(b);
    for (char *c = la; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char) (*c - 'A' + 'a');
    for (char *c = lb; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char) (*c - 'A' + 'a');
    return is_docker_hub(la) && is_docker_hub(lb);
}
