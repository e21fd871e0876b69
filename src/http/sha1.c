/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-1 (RFC 3174) and strict base64 (RFC 4648) used by the WebSocket handshake (ws.c). Small and
 * dependency-free so that the static in-sandbox agent needs no libcrypto. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "dt/sha1.h"
#include "dt/banned.h"

static inline uint32_t
rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void
sha1_block(struct dt_sha1 *c, const uint8_t *p)
{
    uint32_t w[80], a, b, cc, d, e, f, k, t;

    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16 |
               (uint32_t) p[4 * i + 2] << 8 | (uint32_t) p[4 * i + 3];
    for (unsigned i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);

    a = c->h[0];
    b = c->h[1];
    cc = c->h[2];
    d = c->h[3];
    e = c->h[4];
    for (unsigned i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ cc ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ cc ^ d;
            k = 0xCA62C1D6;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = rol32(b, 30);
        b = a;
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

void
dt_sha1_init(struct dt_sha1 *c)
{
    static const uint32_t h0[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };

    memcpy(c->h, h0, sizeof(h0));
    c->total = 0;
    c->n = 0;
}

void
dt_sha1_update(struct dt_sha1 *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    c->total += len;
    while (len > 0) {
        size_t take = sizeof(c->buf) - c->n;
        if (take > len)
            take = len;
        memcpy(c->buf + c->n, p, take);
        c->n += take;
        p += take;
        len -= take;
        if (c->n == sizeof(c->buf)) {
            sha1_block(c, c->buf);
            c->n = 0;
        }
    }
}

void
dt_sha1_final(struct dt_sha1 *c, uint8_t out[DT_SHA1_LEN])
{
    uint64_t bits = c->total * 8;
    uint8_t pad[72] = { 0x80 };
    size_t padlen = (c->n < 56 ? 56 : 120) - c->n;
    uint8_t lenbuf[8];

    for (unsigned i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t) (bits >> (56 - 8 * i));
    dt_sha1_update(c, pad, padlen);
    dt_sha1_update(c, lenbuf, sizeof(lenbuf));
    for (unsigned i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t) (c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t) (c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t) (c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t) c->h[i];
    }
}

void
dt_sha1(const void *data, size_t len, uint8_t out[DT_SHA1_LEN])
{
    struct dt_sha1 c;

    dt_sha1_init(&c);
    dt_sha1_update(&c, data, len);
    dt_sha1_final(&c, out);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
dt_base64_encode(const void *data, size_t len, char *out)
{
    const uint8_t *p = data;
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16;
        size_t rest = len - i;

        if (rest > 1)
            v |= (uint32_t) p[i + 1] << 8;
        if (rest > 2)
            v |= p[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = rest > 1 ? b64[(v >> 6) & 63] : '=';
        out[o++] = rest > 2 ? b64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static int
b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

long
dt_base64_decode(const char *in, size_t len, uint8_t *out)
{
    size_t o = 0;

    if (len % 4 != 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        unsigned pad = 0;

        for (unsigned j = 0; j < 4; j++) {
            char ch = in[i + j];
            /* '=' is only allowed as the last one or two characters of the whole input. */
            if (ch == '=' && last && j >= 2 && (j == 3 || in[i + 3] == '=')) {
                v[j] = 0;
                pad++;
                continue;
            }
            v[j] = b64_value(ch);
            if (v[j] < 0)
                return -EINVAL;
        }
        uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 |
                     (uint32_t) v[3];
        /* Canonical form only: the bits dropped by padding must be zero. */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
            return -EINVAL;
        out[o++] = (uint8_t) (w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t) (w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t) w;
    }
    return (long) o;
}
