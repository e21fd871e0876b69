/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the multipart/form-data codec: Content-Type boundary extraction, a body exactly as
 * node's form-data sends it fed whole, byte by byte and in random splits, delimiter look-alikes
 * in data, a 5 MB part streamed with a bounded hold-back, every malformed-input error and limit,
 * RFC 5987 filenames, and encoder/parser round trips (node checks the percent-encoding when it
 * is installed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/multipart.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

#define NODE_BOUNDARY "--------------------------8f3c2a9b1d4e5f60718293a4"

/* ---- collector ---- */

#define MAX_REC 16

struct rec {
    char *name, *filename, *content_type;
    size_t n_headers;
    char *data;
    size_t len, cap;
    bool ended;
};

struct coll {
    struct rec r[MAX_REC];
    size_t n;
    size_t delivered;      /* all data bytes */
    int fail_begin_at;     /* -1: never; else index of the part whose begin returns -ECANCELED */
};

static char *
dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int
on_begin(const struct dt_multipart_part *part, void *userdata)
{
    struct coll *c = userdata;
    struct rec *r;

    assert_true(c->n < MAX_REC);
    assert_int_equal(part->index, c->n);
    assert_non_null(part->name);
    if (c->fail_begin_at == (int) c->n)
        return -ECANCELED;
    r = &c->r[c->n++];
    r->name = xstrdup(part->name);
    r->filename = dup_or_null(part->filename);
    r->content_type = dup_or_null(part->content_type);
    r->n_headers = part->n_headers;
    /* The raw block ends with the CRLF of its last line. */
    if (part->raw_headers_len > 0)
        assert_memory_equal(part->raw_headers + part->raw_headers_len - 2, "\r\n", 2);
    return 0;
}

static int
on_data(const char *data, size_t len, void *userdata)
{
    struct coll *c = userdata;
    struct rec *r = &c->r[c->n - 1];

    assert_true(len > 0);
    assert_false(r->ended);
    if (r->len + len + 1 > r->cap) {
        r->cap = (r->len + len + 1) * 2;
        r->data = xrealloc(r->data, r->cap);
    }
    memcpy(r->data + r->len, data, len);
    r->len += len;
    r->data[r->len] = '\0';
    c->delivered += len;
    return 0;
}

static int
on_end(void *userdata)
{
    struct coll *c = userdata;

    assert_true(c->n > 0);
    assert_false(c->r[c->n - 1].ended);
    c->r[c->n - 1].ended = true;
    return 0;
}

static const struct dt_multipart_callbacks CBS = { on_begin, on_data, on_end };

static void
coll_init(struct coll *c)
{
    memset(c, 0, sizeof(*c));
    c->fail_begin_at = -1;
}

static void
coll_done(struct coll *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->r[i].name);
        free(c->r[i].filename);
        free(c->r[i].content_type);
        free(c->r[i].data);
    }
    coll_init(c);
}

static void
coll_equal(const struct coll *a, const struct coll *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct rec *x = &a->r[i], *y = &b->r[i];

        assert_string_equal(x->name, y->name);
        assert_true((x->filename == NULL) == (y->filename == NULL));
        if (x->filename)
            assert_string_equal(x->filename, y->filename);
        assert_true((x->content_type == NULL) == (y->content_type == NULL));
        if (x->content_type)
            assert_string_equal(x->content_type, y->content_type);
        assert_int_equal(x->len, y->len);
        if (x->len)
            assert_memory_equal(x->data, y->data, x->len);
        assert_int_equal(x->ended, y->ended);
    }
}

/* Parse BODY in pieces: STEP 0 = whole, STEP > 0 = fixed size, STEP < 0 = random sizes from
 * seed -STEP. Returns the first error of feed/finish (0 on success). */
static int
parse(const char *boundary, const void *body, size_t len, long step, struct coll *c,
      const struct dt_multipart_limits *limits)
{
    struct dt_multipart_parser *p = NULL;
    const char *b = body;
    unsigned long seed = step < 0 ? (unsigned long) -step : 0;
    size_t off = 0;
    int r;

    assert_int_equal(dt_multipart_parser_new(boundary, limits, &CBS, c, &p), 0);
    while (off < len) {
        size_t n = len - off;

        if (step > 0 && (size_t) step < n)
            n = (size_t) step;
        else if (step < 0) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            n = 1 + (size_t) (seed >> 33) % (n < 97 ? n : 97);
        }
        r = dt_multipart_feed(p, b + off, n);
        if (r < 0) {
            /* Sticky. */
            assert_int_equal(dt_multipart_feed(p, "x", 1), r);
            assert_int_equal(dt_multipart_finish(p), r);
            assert_true(dt_multipart_errmsg(p)[0] != '\0');
            dt_multipart_parser_free(p);
            return r;
        }
        off += n;
    }
    r = dt_multipart_finish(p);
    if (r == 0)
        assert_true(dt_multipart_done(p));
    dt_multipart_parser_free(p);
    return r;
}

/* ---- body builder ---- */

struct buf {
    char *d;
    size_t len, cap;
};

static void
buf_add(struct buf *b, const void *d, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->d = xrealloc(b->d, b->cap);
    }
    memcpy(b->d + b->len, d, n);
    b->len += n;
    b->d[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Exactly what form-data 4.x writes for uploadFiles([{a.txt}, {b.bin}]): each part is header,
 * value, CRLF; then "--B--\r\n". */
static void
node_body(struct buf *b)
{
    static const char *paths[] = { "/home/daytona/a.txt", "/home/daytona/dir/b.bin" };
    static const char *names[] = { "a.txt", "b.bin" };
    static const char *types[] = { "text/plain", "application/octet-stream" };
    static const char *values[] = { "hello world", "\x00\x01\r\n--\r\n\xff" };
    static const size_t value_len[] = { 11, 9 };
    char line[256];

    for (int i = 0; i < 2; i++) {
        buf_str(b, "--" NODE_BOUNDARY "\r\n");
        (void) snprintf(line, sizeof(line),
                        "Content-Disposition: form-data; name=\"files[%d].path\"\r\n\r\n", i);
        buf_str(b, line);
        buf_str(b, paths[i]);
        buf_str(b, "\r\n--" NODE_BOUNDARY "\r\n");
        (void) snprintf(line, sizeof(line),
                        "Content-Disposition: form-data; name=\"files[%d].file\"; "
                        "filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
                        i, names[i], types[i]);
        buf_str(b, line);
        buf_add(b, values[i], value_len[i]);
        buf_str(b, "\r\n");
    }
    buf_str(b, "--" NODE_BOUNDARY "--\r\n");
}

/* ---- tests ---- */

static void
test_boundary(void **state)
{
    char b[DT_MULTIPART_BOUNDARY_MAX + 1];

    assert_int_equal(dt_multipart_boundary("multipart/form-data; boundary=" NODE_BOUNDARY, b,
                                           sizeof(b)),
                     strlen(NODE_BOUNDARY));
    assert_string_equal(b, NODE_BOUNDARY);
    assert_int_equal(dt_multipart_boundary("Multipart/Form-Data;charset=utf-8;BOUNDARY=abc", b,
                                           sizeof(b)), 3);
    assert_string_equal(b, "abc");
    assert_int_equal(dt_multipart_boundary(" multipart/form-data ; x=\"y;z\" ; "
                                           "boundary=\"a b:c=d\\\"\" ", b, sizeof(b)), -EINVAL);
    assert_int_equal(dt_multipart_boundary("multipart/form-data; boundary=\"a b:c=d?\"", b,
                                           sizeof(b)), 8);
    assert_string_equal(b, "a b:c=d?");
    assert_int_equal(dt_multipart_boundary("multipart/form-data; boundary=\"ab\"; x=1", b,
                                           sizeof(b)), 2);

    /* 70 is the maximum; 71 is too long. */
    char ct[200], s71[72];
    memset(s71, 'x', 71);
    s71[71] = '\0';
    (void) snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%.70s", s71);
    assert_int_equal(dt_multipart_boundary(ct, b, sizeof(b)), 70);
    (void) snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", s71);
    assert_int_equal(dt_multipart_boundary(ct, b, sizeof(b)), -EINVAL);
    assert_int_equal(dt_multipart_boundary("multipart/form-data; boundary=abcdef", b, 4), -ENOBUFS);

    static const char *bad[] = {
        "multipart/mixed; boundary=abc",
        "multipart/form-datax; boundary=abc",
        "text/plain; boundary=abc",
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=\"abc \"",
        "multipart/form-data; boundary=ab<c",
        "multipart/form-data; boundary=\"abc",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data boundary=abc",
        "multipart/form-data; =abc",
        "",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(dt_multipart_boundary(bad[i], b, sizeof(b)), -EINVAL);
    assert_int_equal(dt_multipart_boundary(NULL, b, sizeof(b)), -EINVAL);

    assert_true(dt_multipart_boundary_valid("a"));
    assert_false(dt_multipart_boundary_valid(""));
    assert_false(dt_multipart_boundary_valid("a\r"));
    struct dt_multipart_parser *p = NULL;
    assert_int_equal(dt_multipart_parser_new("bad\nboundary", NULL, NULL, NULL, &p), -EINVAL);
    assert_null(p);
}

static void
check_node_parts(const struct coll *c)
{
    assert_int_equal(c->n, 4);
    assert_string_equal(c->r[0].name, "files[0].path");
    assert_null(c->r[0].filename);
    assert_null(c->r[0].content_type);
    assert_string_equal(c->r[0].data, "/home/daytona/a.txt");
    assert_string_equal(c->r[1].name, "files[0].file");
    assert_string_equal(c->r[1].filename, "a.txt");
    assert_string_equal(c->r[1].content_type, "text/plain");
    assert_int_equal(c->r[1].n_headers, 2);
    assert_int_equal(c->r[1].len, 11);
    assert_memory_equal(c->r[1].data, "hello world", 11);
    assert_string_equal(c->r[2].data, "/home/daytona/dir/b.bin");
    assert_string_equal(c->r[3].name, "files[1].file");
    assert_string_equal(c->r[3].filename, "b.bin");
    assert_string_equal(c->r[3].content_type, "application/octet-stream");
    assert_int_equal(c->r[3].len, 9);
    assert_memory_equal(c->r[3].data, "\x00\x01\r\n--\r\n\xff", 9);
    for (size_t i = 0; i < c->n; i++)
        assert_true(c->r[i].ended);
}

static void
test_node_body_splits(void **state)
{
    struct buf b = { 0 };
    struct coll whole, other;

    node_body(&b);
    coll_init(&whole);
    assert_int_equal(parse(NODE_BOUNDARY, b.d, b.len, 0, &whole, NULL), 0);
    check_node_parts(&whole);

    long steps[] = { 1, 2, 3, 7, 54, -1, -2, -3, -42, -1000, -77777 };
    for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
        coll_init(&other);
        assert_int_equal(parse(NODE_BOUNDARY, b.d, b.len, steps[i], &other, NULL), 0);
        coll_equal(&whole, &other);
        coll_done(&other);
    }

    /* A delimiter in the preamble followed by something else than "--" or CRLF is an error. */
    struct buf b2 = { 0 };
    buf_str(&b2, "This is a preamble\r\n--" NODE_BOUNDARY "-not-it\r\n\r\n");
    buf_add(&b2, b.d, b.len);
    buf_str(&b2, "epilogue --" NODE_BOUNDARY " garbage");
    coll_init(&other);
    assert_int_equal(parse(NODE_BOUNDARY, b2.d, b2.len, 1, &other, NULL), -EBADMSG);
    coll_done(&other);
    /* Preamble and epilogue are ignored, even when they look like boundaries. */
    b2.len = 0;
    buf_str(&b2, "preamble \r\n-- " NODE_BOUNDARY "\r\n");
    buf_add(&b2, b.d, b.len);
    buf_str(&b2, "epilogue\r\n--" NODE_BOUNDARY "\r\ngarbage");
    coll_init(&other);
    assert_int_equal(parse(NODE_BOUNDARY, b2.d, b2.len, -5, &other, NULL), 0);
    coll_equal(&whole, &other);
    coll_done(&other);

    /* Transport padding after a boundary is tolerated, and the final CRLF is optional. */
    b2.len = 0;
    buf_str(&b2, "--" NODE_BOUNDARY " \t \r\nContent-Disposition: form-data; name=x\r\n\r\nv"
                 "\r\n--" NODE_BOUNDARY "--");
    coll_init(&other);
    assert_int_equal(parse(NODE_BOUNDARY, b2.d, b2.len, 1, &other, NULL), 0);
    assert_int_equal(other.n, 1);
    assert_string_equal(other.r[0].name, "x");
    assert_string_equal(other.r[0].data, "v");
    coll_done(&other);

    free(b2.d);
    free(b.d);
    coll_done(&whole);
}

static void
test_lookalikes(void **state)
{
    /* Data full of delimiter prefixes: only the real delimiter ends the part. */
    const char *B = "AaB03x";
    const char *data = "\r\n--AaB03\r\n--AaB0\r\r\n-\r\n--\r\n--AaB03y\r\r\n\r\n--A\r";
    struct buf b = { 0 };
    struct coll c;

    buf_str(&b, "--AaB03x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
    buf_str(&b, data);
    buf_str(&b, "\r\n--AaB03x\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n");
    buf_str(&b, "\r\n--AaB03x\r\nContent-Disposition: form-data; name=\"e2\"\r\n"
                "Content-Type: text/plain\r\n\r\n\r\n--AaB03x--\r\n");
    for (long step = -20; step <= 5; step++) {
        coll_init(&c);
        assert_int_equal(parse(B, b.d, b.len, step, &c, NULL), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(c.r[0].len, strlen(data));
        assert_memory_equal(c.r[0].data, data, strlen(data));
        assert_int_equal(c.r[1].len, 0);
        assert_null(c.r[1].data);
        assert_true(c.r[1].ended);
        assert_int_equal(c.r[2].len, 0);
        assert_string_equal(c.r[2].content_type, "text/plain");
        coll_done(&c);
    }
    free(b.d);
}

/* ---- 5 MB streamed in 3-byte pieces ---- */

struct big {
    size_t delivered;
    uint64_t hash;
};

static uint64_t
fnv(uint64_t h, const void *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *) d)[i]) * 0x100000001b3ULL;
    return h;
}

static int
big_data(const char *data, size_t len, void *userdata)
{
    struct big *g = userdata;

    g->delivered += len;
    g->hash = fnv(g->hash, data, len);
    return 0;
}

static void
test_big_part(void **state)
{
    const char *B = NODE_BOUNDARY;
    const size_t size = 5 * 1024 * 1024, blen = strlen(B);
    struct dt_multipart_callbacks cbs = { .on_part_data = big_data };
    struct big g = { .hash = 0xcbf29ce484222325ULL };
    struct dt_multipart_parser *p = NULL;
    struct buf b = { 0 };
    char *data = xmalloc(size);
    unsigned long seed = 1;
    size_t head_len, off;

    for (size_t i = 0; i < size; i++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        data[i] = (char) (seed >> 56);
        if (i % 997 == 0 && i + 80 < size) {
            /* "\r\n--" and a growing prefix of the boundary. */
            size_t k = (i / 997) % blen;
            memcpy(data + i, "\r\n--", 4);
            memcpy(data + i + 4, B, k);
            /* Never the boundary's next character: the prefix must stay a prefix. */
            data[i + 4 + k] = 'Z';
            i += 4 + k;
        }
    }
    buf_str(&b, "--" NODE_BOUNDARY "\r\nContent-Disposition: form-data; name=\"files[0].file\"; "
                "filename=\"big\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    head_len = b.len;
    buf_add(&b, data, size);
    buf_str(&b, "\r\n--" NODE_BOUNDARY "--\r\n");

    assert_int_equal(dt_multipart_parser_new(B, NULL, &cbs, &g, &p), 0);
    for (off = 0; off < b.len; off += 3) {
        size_t n = b.len - off < 3 ? b.len - off : 3;

        assert_int_equal(dt_multipart_feed(p, b.d + off, n), 0);
        if (off + n > head_len && off + n <= head_len + size)
            assert_true(g.delivered + blen + 8 >= off + n - head_len);
    }
    assert_int_equal(dt_multipart_finish(p), 0);
    assert_int_equal(g.delivered, size);
    assert_true(g.hash == fnv(0xcbf29ce484222325ULL, data, size));
    dt_multipart_parser_free(p);
    free(data);
    free(b.d);
}

static void
expect_error(const char *B, const char *body, int want)
{
    struct coll c;

    for (long step = -3; step <= 1; step++) {
        coll_init(&c);
        assert_int_equal(parse(B, body, strlen(body), step, &c, NULL), want);
        coll_done(&c);
    }
}

static void
test_malformed(void **state)
{
    const char *cd = "Content-Disposition: form-data; name=\"a\"\r\n";
    char body[512];

    /* Truncated anywhere before the closing delimiter. */
    struct buf b = { 0 };
    node_body(&b);
    for (size_t cut = 0; cut < b.len - 2; cut += 7) {
        struct coll c;
        coll_init(&c);
        assert_int_equal(parse(NODE_BOUNDARY, b.d, cut, -9, &c, NULL), -EBADMSG);
        coll_done(&c);
    }
    free(b.d);

    expect_error("abc", "", -EBADMSG);
    expect_error("abc", "just garbage, no boundary at all", -EBADMSG);
    expect_error("abc", "--abcx\r\n", -EBADMSG);
    expect_error("abc", "--abc\n", -EBADMSG);
    expect_error("abc", "--abc\r\r", -EBADMSG);
    expect_error("abc", "--abc-x", -EBADMSG);
    expect_error("abc", "--abc  x\r\n", -EBADMSG);
    /* Part headers. */
    expect_error("abc", "--abc\r\nContent-Disposition: form-data; name=a\n\r\n\r\n--abc--",
                 -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: form-data; name=a\rx\r\n\r\n--abc--",
                 -EBADMSG);
    expect_error("abc", "--abc\r\n\r\nx\r\n--abc--", -EBADMSG); /* no Content-Disposition */
    expect_error("abc", "--abc\r\nContent-Type: text/plain\r\n\r\nx\r\n--abc--", -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: attachment; name=a\r\n\r\n\r\n--abc--",
                 -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: form-data\r\n\r\n\r\n--abc--", -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: form-data; name=\"a\r\n\r\n\r\n--abc--",
                 -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n\r\n"
                        "--abc--", -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition: form-data; name=a\r\n"
                        " folded\r\n\r\n\r\n--abc--", -EBADMSG);
    expect_error("abc", "--abc\r\nContent-Disposition : form-data; name=a\r\n\r\n\r\n--abc--",
                 -EBADMSG);
    expect_error("abc", "--abc\r\nno colon\r\n\r\n\r\n--abc--", -EBADMSG);
    (void) snprintf(body, sizeof(body), "--abc\r\n%s%s\r\n\r\n--abc--", cd, cd);
    expect_error("abc", body, -EBADMSG);
    (void) snprintf(body, sizeof(body), "--abc\r\n%sX: a\001b\r\n\r\n\r\n--abc--", cd);
    expect_error("abc", body, -EBADMSG);
    char nul[] = "--abc\r\nContent-Disposition: form-data; name=a\r\nX: \0\r\n\r\n\r\n--abc--";
    struct coll c;
    coll_init(&c);
    assert_int_equal(parse("abc", nul, sizeof(nul) - 1, 1, &c, NULL), -EBADMSG);
    coll_done(&c);
    /* The real delimiter inside data followed by garbage. */
    (void) snprintf(body, sizeof(body), "--abc\r\n%s\r\nda\r\n--abcta\r\n--abc--", cd);
    expect_error("abc", body, -EBADMSG);

    /* A callback error stops the parse and is returned as is. */
    (void) snprintf(body, sizeof(body), "--abc\r\n%s\r\nx\r\n--abc\r\n%s\r\ny\r\n--abc--", cd, cd);
    coll_init(&c);
    c.fail_begin_at = 1;
    assert_int_equal(parse("abc", body, strlen(body), 0, &c, NULL), -ECANCELED);
    assert_int_equal(c.n, 1);
    assert_true(c.r[0].ended);
    coll_done(&c);
    coll_init(&c);
    assert_int_equal(parse("abc", body, strlen(body), 0, &c, NULL), 0);
    assert_int_equal(c.n, 2);
    coll_done(&c);
}

static void
test_limits(void **state)
{
    struct buf b = { 0 };
    struct coll c;
    char line[64];

    /* A 17 KiB header block. */
    buf_str(&b, "--abc\r\nContent-Disposition: form-data; name=a\r\nX-Big: ");
    for (int i = 0; i < 17 * 1024; i++)
        buf_str(&b, "y");
    buf_str(&b, "\r\n\r\n\r\n--abc--\r\n");
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, -100, &c, NULL), -EMSGSIZE);
    coll_done(&c);

    /* Just under 16 KiB passes. */
    b.len = 0;
    buf_str(&b, "--abc\r\nContent-Disposition: form-data; name=a\r\nX-Big: ");
    /* The block starts after "--abc\r\n" (7 bytes) and ends with "\r\n\r\n": exactly 16 KiB. */
    while (b.len < 16 * 1024 + 3)
        buf_str(&b, "y");
    buf_str(&b, "\r\n\r\nv\r\n--abc--\r\n");
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, 0, &c, NULL), 0);
    assert_int_equal(c.n, 1);
    coll_done(&c);

    /* Too many header lines (default 32). */
    b.len = 0;
    buf_str(&b, "--abc\r\nContent-Disposition: form-data; name=a\r\n");
    for (int i = 0; i < 40; i++)
        buf_str(&b, "X: 1\r\n");
    buf_str(&b, "\r\n\r\n--abc--\r\n");
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, 0, &c, NULL), -EMSGSIZE);
    coll_done(&c);
    struct dt_multipart_limits lines = { .max_header_lines = 41 };
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, 0, &c, &lines), 0);
    assert_int_equal(c.r[0].n_headers, 41);
    coll_done(&c);

    /* max_parts. */
    b.len = 0;
    for (int i = 0; i < 5; i++) {
        (void) snprintf(line, sizeof(line), "--abc\r\nContent-Disposition: form-data; name=p%d\r\n"
                                            "\r\nv\r\n", i);
        buf_str(&b, line);
    }
    buf_str(&b, "--abc--\r\n");
    struct dt_multipart_limits parts = { .max_parts = 4 };
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, 1, &c, &parts), -E2BIG);
    assert_int_equal(c.n, 4);
    coll_done(&c);
    parts.max_parts = 5;
    coll_init(&c);
    assert_int_equal(parse("abc", b.d, b.len, 1, &c, &parts), 0);
    assert_int_equal(c.n, 5);
    coll_done(&c);
    free(b.d);
}

static void
test_filename_star(void **state)
{
    static const struct {
        const char *disp;
        const char *filename; /* NULL: error expected */
    } cases[] = {
        { "form-data; name=\"f\"; filename=\"fallback.txt\"; "
          "filename*=UTF-8''%E2%82%AC%20rates.txt", "\xE2\x82\xAC rates.txt" },
        { "form-data; filename*=utf-8'en'%C3%BC.txt; name=f; filename=\"x\"", "\xC3\xBC.txt" },
        { "form-data; name=f; filename=\"a\\\"b\\\\c\"", "a\"b\\c" },
        { "form-data; name=f; filename=\"caf\xC3\xA9.txt\"", "caf\xC3\xA9.txt" },
        { "form-data; name=f; filename=\"\"", "" },
        { "form-data; name=f; filename=plain.txt", "plain.txt" },
        { "FORM-DATA; NAME=f; FILENAME=\"x\"", "x" },
        { "form-data; name=f; filename=\"x\"; filename*=ISO-8859-1''%E9", "x" },
        { "form-data; name=f; filename*=UTF-8''%ZZ", NULL },
        { "form-data; name=f; filename*=UTF-8''%00", NULL },
        { "form-data; name=f; filename*=UTF-8''%C3", NULL },
        { "form-data; name=f; filename*=UTF-8%C3", NULL },
        { "form-data; name=f; filename*=a'b'c; filename*=a'b'c", NULL },
        { "form-data; name=f; filename=\"x\" y", NULL },
        /* form-data does not escape quotes in basenames. */
        { "form-data; name=f; filename=\"say \"hi\".txt\"", "say \"hi\".txt" },
        { "form-data; name=f; filename=\"a\"b\" ; x=1", "a\"b" },
        { "form-data; name=f; filename=\"a\"; b\"", NULL },
    };

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char body[512];
        struct coll c;
        int r;

        (void) snprintf(body, sizeof(body),
                        "--abc\r\nContent-Disposition: %s\r\n\r\nv\r\n--abc--\r\n", cases[i].disp);
        coll_init(&c);
        r = parse("abc", body, strlen(body), 0, &c, NULL);
        if (!cases[i].filename) {
            assert_int_equal(r, -EBADMSG);
        } else {
            assert_int_equal(r, 0);
            assert_string_equal(c.r[0].name, "f");
            assert_non_null(c.r[0].filename);
            assert_string_equal(c.r[0].filename, cases[i].filename);
        }
        coll_done(&c);
    }
}

static void
test_encoder(void **state)
{
    char buf[512], small[10];
    ssize_t n;

    n = dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "file", "/home/a.txt",
                                        "application/octet-stream", 5);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "--B1\r\nContent-Disposition: form-data; name=\"file\"; "
                             "filename=\"/home/a.txt\"\r\nContent-Type: application/octet-stream"
                             "\r\nContent-Length: 5\r\n\r\n");
    n = dt_multipart_format_part_header(buf, sizeof(buf), "B1", false, "error", "/q\"\\/\xC3\xBC x",
                                        "application/json", -1);
    assert_string_equal(buf, "\r\n--B1\r\nContent-Disposition: form-data; name=\"error\"; "
                             "filename*=UTF-8''%2Fq%22%5C%2F%C3%BC%20x\r\n"
                             "Content-Type: application/json\r\n\r\n");
    n = dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "a\"b", "q\"\\", NULL, -1);
    assert_string_equal(buf, "--B1\r\nContent-Disposition: form-data; name=\"a\\\"b\"; "
                             "filename=\"q\\\"\\\\\"\r\n\r\n");
    n = dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "x", "tab\there", NULL, -1);
    assert_non_null(strstr(buf, "filename*=UTF-8''tab%09here\r\n"));

    /* snprintf semantics. */
    n = dt_multipart_format_part_header(small, sizeof(small), "B1", true, "x", NULL, NULL, -1);
    assert_int_equal(n, strlen("--B1\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, "--B1\r\nCon", 9);
    assert_int_equal(dt_multipart_format_part_header(NULL, 0, "B1", true, "x", NULL, NULL, -1), n);

    /* Injection and bad boundaries. */
    assert_int_equal(dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "a\r\nX: y",
                                                     NULL, NULL, -1), -EINVAL);
    assert_int_equal(dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "a", NULL,
                                                     "text/plain\r\nX: y", -1), -EINVAL);
    assert_int_equal(dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, "a\n", NULL,
                                                     NULL, -1), -EINVAL);
    assert_int_equal(dt_multipart_format_part_header(buf, sizeof(buf), "B\r", true, "a", NULL,
                                                     NULL, -1), -EINVAL);
    assert_int_equal(dt_multipart_format_part_header(buf, sizeof(buf), "B1", true, NULL, NULL,
                                                     NULL, -1), -EINVAL);

    assert_int_equal(dt_multipart_format_close(buf, sizeof(buf), "B1"), 10);
    assert_string_equal(buf, "\r\n--B1--\r\n");
    assert_int_equal(dt_multipart_format_close(buf, sizeof(buf), ""), -EINVAL);

    /* Random boundaries: right length and charset, and different each time. */
    char b1[DT_MULTIPART_NEW_BOUNDARY_LEN + 1], b2[DT_MULTIPART_NEW_BOUNDARY_LEN + 1];
    assert_int_equal(dt_multipart_new_boundary(b1), 0);
    assert_int_equal(dt_multipart_new_boundary(b2), 0);
    assert_int_equal(strlen(b1), DT_MULTIPART_NEW_BOUNDARY_LEN);
    assert_string_not_equal(b1, b2);
    assert_true(dt_multipart_boundary_valid(b1));
    assert_int_equal(strspn(b1, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
                     DT_MULTIPART_NEW_BOUNDARY_LEN);
}

static void
test_round_trip(void **state)
{
    static const struct {
        const char *name, *filename, *ct, *data;
    } parts[] = {
        { "file", "/home/daytona/a.txt", "application/octet-stream", "hello" },
        { "file", "/tmp/\xC3\xBCnic\xC3\xB6" "de \xE2\x82\xAC.txt", "application/octet-stream",
          "\r\n--x\r\n" },
        { "file", "/tmp/q\"uo\\te's.txt", "application/octet-stream", "" },
        { "error", "/nope", "application/json",
          "{\"message\":\"no such file: /nope\",\"statusCode\":404,\"code\":\"FILE_NOT_FOUND\","
          "\"source\":\"DAYTONA_DAEMON\"}" },
        { "file", "/tmp/ctl\x01\x7f.bin", NULL, "z" },
        { "plain", NULL, NULL, "v" },
    };
    char B[DT_MULTIPART_NEW_BOUNDARY_LEN + 1], hdr[1024];
    struct buf b = { 0 };
    struct coll c;

    assert_int_equal(dt_multipart_new_boundary(B), 0);
    for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
        ssize_t n = dt_multipart_format_part_header(hdr, sizeof(hdr), B, i == 0, parts[i].name,
                                                    parts[i].filename, parts[i].ct,
                                                    (int64_t) strlen(parts[i].data));
        assert_true(n > 0 && (size_t) n < sizeof(hdr));
        buf_add(&b, hdr, (size_t) n);
        buf_str(&b, parts[i].data);
    }
    assert_int_equal(dt_multipart_format_close(hdr, sizeof(hdr), B), strlen(B) + 8);
    buf_str(&b, hdr);

    for (long step = -4; step <= 2; step++) {
        coll_init(&c);
        assert_int_equal(parse(B, b.d, b.len, step, &c, NULL), 0);
        assert_int_equal(c.n, ELEMENTSOF(parts));
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
            assert_string_equal(c.r[i].name, parts[i].name);
            if (parts[i].filename)
                assert_string_equal(c.r[i].filename, parts[i].filename);
            else
                assert_null(c.r[i].filename);
            if (parts[i].ct)
                assert_string_equal(c.r[i].content_type, parts[i].ct);
            assert_int_equal(c.r[i].len, strlen(parts[i].data));
            if (c.r[i].len)
                assert_memory_equal(c.r[i].data, parts[i].data, c.r[i].len);
            assert_true(c.r[i].ended);
        }
        coll_done(&c);
    }
    free(b.d);
}

/* With node installed, check that JavaScript's decodeURIComponent (what busboy applies to
 * filename*) gives back the UTF-8 path. busboy itself is not installed here, so the parse of the
 * whole response is covered by test_round_trip only. */
static void
test_node_decode(void **state)
{
    const char *path = "/home/daytona/\xC3\xBCml\xE2\x82\xAC \xF0\x9F\x98\x80 (1)'.txt";
    char hdr[512], script[1024];
    _cleanup_free_ char *out = NULL;
    const char *enc, *end;
    int r;

    if (access("/usr/bin/node", X_OK) < 0) {
        print_message("node not installed, skipping\n");
        return;
    }
    assert_true(dt_multipart_format_part_header(hdr, sizeof(hdr), "B", true, "file", path,
                                                NULL, -1) > 0);
    enc = strstr(hdr, "filename*=UTF-8''");
    assert_non_null(enc);
    enc += strlen("filename*=UTF-8''");
    end = strstr(enc, "\r\n");
    (void) snprintf(script, sizeof(script),
                    "process.stdout.write(Buffer.from(decodeURIComponent('%.*s')).toString('hex'))",
                    (int) (end - enc), enc);
    char *argv[] = { (char *) "/usr/bin/node", (char *) "-e", script, NULL };
    r = dt_test_run(argv, &out);
    assert_int_equal(r, 0);
    char hex[256] = "";
    for (size_t i = 0; path[i]; i++)
        (void) snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", (unsigned char) path[i]);
    assert_string_equal(out, hex);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_node_body_splits),
        cmocka_unit_test(test_lookalikes),
        cmocka_unit_test(test_big_part),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_filename_star),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_node_decode),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
