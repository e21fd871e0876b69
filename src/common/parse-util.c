/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number parsing: see include/dt/parse-util.h. */
#include "dt/parse-util.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <strings.h>

int
unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
parse_u64(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t) (*p - '0'), &v))
            return -ERANGE;
    }
    *ret = v;
    return 0;
}

int
parse_u32(const char *s, uint32_t *ret)
{
    uint64_t v;
    int r = parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v > UINT32_MAX)
        return -ERANGE;
    *ret = (uint32_t) v;
    return 0;
}

int
parse_i64(const char *s, int64_t *ret)
{
    uint64_t v;
    int r;
    if (!s)
        return -EINVAL;
    if (*s == '-') {
        r = parse_u64(s + 1, &v);
        if (r < 0)
            return r;
        if (v > (uint64_t) INT64_MAX + 1)
            return -ERANGE;
        *ret = (int64_t) (0 - v);
        return 0;
    }
    r = parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v > INT64_MAX)
        return -ERANGE;
    *ret = (int64_t) v;
    return 0;
}

/* Parse "INT[.FRAC]" into an integer scaled by 10^DIGITS; reject more fractional digits than that.
 * *end is set past the number. */
static int
parse_fixed(const char *s, unsigned digits, uint64_t *ret, const char **end)
{
    uint64_t ip = 0, fp = 0, scale = 1;
    const char *p = s;
    unsigned nfrac = 0;

    if (!isdigit((unsigned char) *p))
        return -EINVAL;
    for (; isdigit((unsigned char) *p); p++)
        if (__builtin_mul_overflow(ip, 10, &ip) || __builtin_add_overflow(ip, (uint64_t) (*p - '0'), &ip))
            return -ERANGE;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char) *p))
            return -EINVAL;
        for (; isdigit((unsigned char) *p); p++) {
            if (nfrac == digits)
                return -EINVAL;
            fp = fp * 10 + (uint64_t) (*p - '0');
            nfrac++;
        }
    }
    for (unsigned i = 0; i < digits; i++)
        scale *= 10;
    for (; nfrac < digits; nfrac++)
        fp *= 10;
    uint64_t v;
    if (__builtin_mul_overflow(ip, scale, &v) || __builtin_add_overflow(v, fp, &v))
        return -ERANGE;
    *ret = v;
    *end = p;
    return 0;
}

int
parse_size(const char *s, uint64_t *ret)
{
    uint64_t milli, mult = 1;
    const char *p;
    int r;

    if (!s)
        return -EINVAL;
    r = parse_fixed(s, 3, &milli, &p);
    if (r < 0)
        return r;
    switch (*p) {
    case 'k': case 'K': mult = 1ULL << 10; p++; break;
    case 'm': case 'M': mult = 1ULL << 20; p++; break;
    case 'g': case 'G': mult = 1ULL << 30; p++; break;
    case 't': case 'T': mult = 1ULL << 40; p++; break;
    default: break;
    }
    if (mult > 1 && (*p == 'i' || *p == 'I'))
        p++;
    if (*p == 'b' || *p == 'B')
        p++;
    if (*p)
        return -EINVAL;

    /* milli * mult / 1000, checking for overflow. */
    uint64_t v;
    if (__builtin_mul_overflow(milli / 1000, mult, &v))
        return -ERANGE;
    uint64_t frac = (milli % 1000) * mult / 1000;
    if (__builtin_add_overflow(v, frac, &v))
        return -ERANGE;
    if (mult == 1 && milli % 1000)
        return -EINVAL; /* fractional bytes */
    *ret = v;
    return 0;
}

int
parse_millicpus(const char *s, uint64_t *ret)
{
    uint64_t v;
    const char *p;
    if (!s)
        return -EINVAL;
    int r = parse_fixed(s, 3, &v, &p);
    if (r < 0)
        return r;
    if (*p || v == 0)
        return -EINVAL;
    *ret = v;
    return 0;
}
