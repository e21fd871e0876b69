/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the multipart/form-data parser and encoder. Input layout (also of the seed files in
 * fuzz/corpus/multipart/): the first line, up to '\n', is either a Content-Type value starting
 * with "multipart/" (its boundary is extracted with dt_multipart_boundary()) or the boundary
 * itself; the rest is the body. The body is parsed whole and then in pieces whose sizes come from
 * the input, each piece copied into its own exact-size allocation so that ASan catches any read
 * past it; both runs must give the same transcript (FNV-1a of parts, data and ends) and result.
 * Then the body's first bytes, used as a filename, must survive an encode/parse round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/multipart.h"
#include "dt/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
fnv(uint64_t h, const void *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *) d)[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t
fnv_str(uint64_t h, const char *s)
{
    return s ? fnv(h, s, strlen(s) + 1) : fnv(h, "\xff", 1);
}

struct state {
    uint64_t h;
    char filename[256];
};

static int
on_begin(const struct dt_multipart_part *part, void *userdata)
{
    struct state *s = userdata;

    s->h = fnv(s->h, "B", 1);
    s->h = fnv_str(s->h, part->name);
    s->h = fnv_str(s->h, part->filename);
    s->h = fnv_str(s->h, part->content_type);
    for (size_t i = 0; i < part->n_headers; i++)
        s->h = fnv_str(fnv_str(s->h, part->headers[i].name), part->headers[i].value);
    s->h = fnv(s->h, part->raw_headers, part->raw_headers_len);
    if (part->filename && strlen(part->filename) < sizeof(s->filename))
        memcpy(s->filename, part->filename, strlen(part->filename) + 1);
    return 0;
}

static int
on_data(const char *d, size_t len, void *userdata)
{
    struct state *s = userdata;

    if (len == 0)
        abort();
    s->h = fnv(s->h, d, len);
    return 0;
}

static int
on_end(void *userdata)
{
    struct state *s = userdata;

    s->h = fnv(s->h, "E", 1);
    return 0;
}

static const struct dt_multipart_callbacks CBS = { on_begin, on_data, on_end };

/* Parse BODY with pieces of 1 + sizes[k] % MOD bytes (MOD 0: whole). */
static uint64_t
run(const char *boundary, const uint8_t *body, size_t len, const uint8_t *sizes, size_t n_sizes,
    unsigned mod, int *result, struct state *st)
{
    struct dt_multipart_limits limits = { .max_parts = 20, .max_header_lines = 8,
                                          .max_header_size = 1024 };
    struct dt_multipart_parser *p = NULL;
    size_t off = 0, k = 0;
    int r = 0;

    memset(st, 0, sizeof(*st));
    st->h = 0xcbf29ce484222325ULL;
    if (dt_multipart_parser_new(boundary, &limits, &CBS, st, &p) < 0)
        abort(); /* the boundary was validated by the caller */
    while (off < len && r >= 0) {
        size_t n = mod && n_sizes ? 1 + sizes[k++ % n_sizes] % mod : len - off;
        if (n > len - off)
            n = len - off;
        uint8_t *piece = malloc(n);
        memcpy(piece, body + off, n);
        r = dt_multipart_feed(p, piece, n);
        free(piece);
        off += n;
    }
    if (r >= 0)
        r = dt_multipart_finish(p);
    if (r < 0 && dt_multipart_errmsg(p)[0] == '\0')
        abort();
    dt_multipart_parser_free(p);
    *result = r;
    return st->h;
}

static void
round_trip(const char *boundary, const uint8_t *data, size_t size)
{
    char filename[128], buf[1024], close[128];
    struct state st;
    size_t n = 0;
    ssize_t h, c;
    int r;

    while (n < size && n < sizeof(filename) - 1 && data[n] != 0) {
        filename[n] = (char) data[n];
        n++;
    }
    filename[n] = '\0';
    h = dt_multipart_format_part_header(buf, sizeof(buf), boundary, true, "file", filename,
                                        "application/octet-stream", (int64_t) n);
    c = dt_multipart_format_close(close, sizeof(close), boundary);
    if (h < 0 || c < 0 || (size_t) h + n + (size_t) c >= sizeof(buf))
        abort();
    memcpy(buf + h, filename, n);
    memcpy(buf + h + n, close, (size_t) c);
    (void) run(boundary, (const uint8_t *) buf, (size_t) h + n + (size_t) c, NULL, 0, 0, &r, &st);
    /* A filename that is not UTF-8 goes out as filename*, which the parser rejects (busboy
     * would decode it with replacement characters); everything else must come back intact.
     * The data may contain the delimiter itself, which also fails. */
    if (!dt_ws_utf8_valid((const uint8_t *) filename, n) ||
        memmem(filename, n, boundary, strlen(boundary)))
        return;
    if (r != 0 || strcmp(st.filename, filename) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[256], boundary[DT_MULTIPART_BOUNDARY_MAX + 1];
    const uint8_t *nl = memchr(data, '\n', size < sizeof(line) ? size : sizeof(line));
    struct state st;
    size_t ll, blen;
    int r1, r2;

    if (!nl)
        return 0;
    ll = (size_t) (nl - data);
    memcpy(line, data, ll);
    line[ll] = '\0';
    if (strncmp(line, "multipart/", 10) == 0) {
        if (dt_multipart_boundary(line, boundary, sizeof(boundary)) < 0)
            return 0;
    } else {
        if (strlen(line) != ll || !dt_multipart_boundary_valid(line))
            return 0;
        memcpy(boundary, line, ll + 1);
    }
    blen = strlen(boundary);
    if (blen == 0)
        abort();

    const uint8_t *body = nl + 1;
    size_t len = size - ll - 1;
    uint64_t h1 = run(boundary, body, len, NULL, 0, 0, &r1, &st);
    uint64_t h2 = run(boundary, body, len, data, size, 1 + (size % 13) * 7, &r2, &st);
    if (h1 != h2 || r1 != r2)
        abort();
    uint64_t h3 = run(boundary, body, len, data, size, 1, &r2, &st);
    if (h1 != h3 || r1 != r2)
        abort();

    round_trip(boundary, body, len);
    return 0;
}
