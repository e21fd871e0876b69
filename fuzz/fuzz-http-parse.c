/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the HTTP/1.1 parser layer: the input is parsed once in one feed and once in pieces whose
 * sizes derive from the input; both must report the same events (heads, body bytes, message
 * ends, upgrade offset, error), and nothing may crash or leak.
 * Input: byte 0 = flags (bit 0 response, bit 1 small limits, bit 2 unlimited body),
 *        byte 1 = seed for piece sizes, the rest = bytes on the wire. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/http.h"
#include "dt/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct trace {
    uint64_t h;
};

static void
mix(struct trace *t, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        t->h = (t->h ^ b[i]) * 0x100000001b3ULL; /* FNV-1a: independent of how bytes are split */
}

static void
mix_str(struct trace *t, const char *s, size_t n)
{
    if (!s) {
        mix(t, "\xff", 1);
        return;
    }
    DT_ASSERT(s[n] == '\0');
    mix(t, s, n + 1);
}

static int
on_head(struct dt_http_parser *p, void *userdata)
{
    const struct dt_http_head *h = dt_http_parser_head(p);
    struct trace *t = userdata;
    uint64_t nums[] = { (uint64_t) h->status, h->version_major, h->version_minor, h->n_headers,
                        h->has_content_length, h->content_length, h->chunked, h->keep_alive,
                        h->upgrade };
    char dec[8192 + 1];
    size_t n;

    DT_ASSERT(h == dt_http_parser_head(p));
    mix(t, "H", 1);
    mix(t, nums, sizeof(nums));
    mix_str(t, h->method, h->method ? strlen(h->method) : 0);
    mix_str(t, h->target, h->target_len);
    mix_str(t, h->path, h->path_len);
    mix_str(t, h->query, h->query_len);
    mix_str(t, h->reason, h->reason ? strlen(h->reason) : 0);
    for (size_t i = 0; i < h->n_headers; i++) {
        mix_str(t, h->headers[i].name, h->headers[i].name_len);
        mix_str(t, h->headers[i].value, h->headers[i].value_len);
        DT_ASSERT(dt_http_head_get(h, h->headers[i].name) != NULL);
    }
    (void) dt_http_head_has_token(h, "connection", "upgrade");
    if (h->path && h->path_len < sizeof(dec) &&
        dt_http_percent_decode(h->path, h->path_len, dec, &n, false) == 0)
        DT_ASSERT(n <= h->path_len && strlen(dec) == n);
    return 0;
}

static int
on_body(struct dt_http_parser *p, const char *data, size_t len, void *userdata)
{
    DT_ASSERT(len > 0);
    mix(userdata, data, len);
    return 0;
}

static int
on_complete(struct dt_http_parser *p, void *userdata)
{
    mix(userdata, "E", 1);
    return 0;
}

static const struct dt_http_callbacks cbs = { on_head, on_body, on_complete };

/* Parse DATA in pieces: SEED 0 means one feed. Returns the trace hash. */
static uint64_t
run(enum dt_http_kind kind, const struct dt_http_limits *lim, const uint8_t *data, size_t size,
    unsigned seed)
{
    struct trace t = { 0xcbf29ce484222325ULL };
    struct dt_http_parser *p = dt_http_parser_new(kind, lim, &cbs, &t);
    size_t off = 0;
    unsigned rnd = seed;
    int r = 0, messages = 0;

    while (off < size) {
        size_t n = size - off, used;
        if (seed) {
            rnd = rnd * 1103515245u + 12345u;
            n = 1 + (rnd >> 16) % 17;
            if (n > size - off)
                n = size - off;
        }
        r = dt_http_parser_feed(p, data + off, n, &used);
        DT_ASSERT(used <= n);
        off += used;
        if (r < 0) {
            DT_ASSERT(dt_http_error_status(r) >= 400);
            DT_ASSERT(dt_http_parser_feed(p, "x", 1, NULL) == r);
            break;
        }
        if (r == DT_HTTP_FEED_MORE) {
            DT_ASSERT(used == n);
            continue;
        }
        DT_ASSERT(dt_http_parser_head(p) != NULL);
        mix(&t, &off, sizeof(off));
        if (r == DT_HTTP_FEED_UPGRADE || ++messages > 1000)
            break;
        dt_http_parser_next(p);
    }
    if (r >= 0 && r != DT_HTTP_FEED_UPGRADE)
        r = dt_http_parser_finish(p);
    mix(&t, &r, sizeof(r));
    dt_http_parser_free(p);
    return t.h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_http_limits lim = {};
    enum dt_http_kind kind;
    unsigned seed;
    uint64_t a, b;

    if (size < 2)
        return 0;
    kind = data[0] & 1 ? DT_HTTP_RESPONSE : DT_HTTP_REQUEST;
    if (data[0] & 2)
        lim = (struct dt_http_limits) { .max_head_size = 256, .max_headers = 4,
                                        .max_target_size = 32, .max_header_name = 16,
                                        .max_header_value = 64, .max_body_size = 100 };
    if (data[0] & 4)
        lim.max_body_size = DT_HTTP_UNLIMITED;
    seed = data[1] | 1u << 8;
    a = run(kind, &lim, data + 2, size - 2, 0);
    b = run(kind, &lim, data + 2, size - 2, seed);
    DT_ASSERT(a == b);
    return 0;
}
