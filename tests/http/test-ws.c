/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the WebSocket codec: SHA-1 (RFC 3174) and base64 (RFC 4648) vectors, the RFC 6455
 * handshake example and request checks, the section 5.7 frames byte-exact in both directions,
 * every protocol error with its close code, identical results for any split of the input, UTF-8
 * edge cases, 64-bit lengths and masking. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/sha1.h"
#include "dt/ws.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- transcript of a parse: completed messages and control frames, then the result ---- */

struct transcript {
    uint8_t *b;
    size_t len, cap;
    int result;
    size_t n_events;
};

static void
tr_put(struct transcript *t, const void *d, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->b = xrealloc(t->b, t->cap);
    }
    if (n > 0)
        memcpy(t->b + t->len, d, n);
    t->len += n;
}

static void
tr_record(struct transcript *t, uint8_t tag, uint16_t code, const uint8_t *d, size_t n)
{
    uint64_t len = n;

    tr_put(t, &tag, 1);
    tr_put(t, &code, 2);
    tr_put(t, &len, 8);
    tr_put(t, d, n);
}

/* Parse BUF (copied, since parsing unmasks in place) cut into pieces: piece i has size
 * sizes[i % n_sizes] (n_sizes 0: one piece). */
static void
run(enum dt_ws_role role, uint64_t max, const uint8_t *in, size_t len, const size_t *sizes,
    size_t n_sizes, struct transcript *t)
{
    struct dt_ws_parser p;
    struct dt_ws_msgbuf mb = DT_WS_MSGBUF_INIT;
    uint8_t *buf = xmalloc(len + 1);
    size_t off = 0, k = 0;
    int r = 0;

    memcpy(buf, in, len);
    memset(t, 0, sizeof(*t));
    dt_ws_parser_init(&p, role, max);
    while (off < len && r >= 0) {
        size_t piece = n_sizes ? sizes[k++ % n_sizes] : len;
        if (piece > len - off)
            piece = len - off;
        size_t used = 0;
        while (used < piece || piece == 0) {
            struct dt_ws_event ev;
            size_t c;

            r = dt_ws_parse(&p, buf + off + used, piece - used, &c, &ev);
            used += c;
            if (r <= 0)
                break;
            t->n_events++;
            if (ev.type == DT_WS_EV_CONTROL) {
                tr_record(t, ev.opcode, ev.close_code, ev.data, ev.len);
            } else if (dt_ws_msgbuf_add(&mb, &ev)) {
                tr_record(t, mb.opcode, 0, mb.data, mb.len);
            }
            if (piece == 0)
                break;
        }
        if (r == 0)
            assert_int_equal(used, piece);
        off += piece;
    }
    t->result = r > 0 ? 0 : r;
    dt_ws_msgbuf_done(&mb);
    free(buf);
}

static void
assert_same(const struct transcript *a, const struct transcript *b)
{
    assert_int_equal(a->result, b->result);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->b, b->b, a->len);
}

/* Parse IN whole and expect result R (0 = needs more / ok). Returns the transcript's length. */
static int
parse_all(enum dt_ws_role role, uint64_t max, const uint8_t *in, size_t len, int expect,
          struct dt_ws_parser *pout)
{
    struct dt_ws_parser p;
    uint8_t *buf = xmalloc(len + 1);
    size_t off = 0, c;
    struct dt_ws_event ev;
    int r, n = 0;

    memcpy(buf, in, len);
    dt_ws_parser_init(&p, role, max);
    for (;;) {
        r = dt_ws_parse(&p, buf + off, len - off, &c, &ev);
        off += c;
        if (r <= 0)
            break;
        n++;
    }
    assert_int_equal(r, expect);
    if (pout)
        *pout = p;
    free(buf);
    return n;
}

/* ---- SHA-1 and base64 ---- */

static void
hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void
test_sha1_vectors(void **state)
{
    uint8_t md[DT_SHA1_LEN];
    char h[41];
    struct dt_sha1 c;

    dt_sha1("abc", 3, md);
    hex(md, 20, h);
    assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    dt_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, md);
    hex(md, 20, h);
    assert_string_equal(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    dt_sha1("", 0, md);
    hex(md, 20, h);
    assert_string_equal(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");

    /* RFC 3174 test 3: a million 'a's, fed in odd pieces to exercise buffering. */
    char a[997];
    memset(a, 'a', sizeof(a));
    dt_sha1_init(&c);
    for (size_t left = 1000000; left > 0;) {
        size_t n = left < sizeof(a) ? left : sizeof(a);
        dt_sha1_update(&c, a, n);
        left -= n;
    }
    dt_sha1_final(&c, md);
    hex(md, 20, h);
    assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

    /* RFC 3174 test 4. */
    dt_sha1_init(&c);
    for (int i = 0; i < 10; i++)
        dt_sha1_update(&c, "0123456701234567012345670123456701234567012345670123456701234567",
                       64);
    dt_sha1_final(&c, md);
    hex(md, 20, h);
    assert_string_equal(h, "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

static void
test_base64(void **state)
{
    static const char *const v[][2] = {
        { "", "" },           { "f", "Zg==" },         { "fo", "Zm8=" },    { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    char out[16];
    uint8_t dec[16];

    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        assert_int_equal(dt_base64_encode(v[i][0], strlen(v[i][0]), out), strlen(v[i][1]));
        assert_string_equal(out, v[i][1]);
        assert_int_equal(dt_base64_decode(v[i][1], strlen(v[i][1]), dec), strlen(v[i][0]));
        assert_memory_equal(dec, v[i][0], strlen(v[i][0]));
    }
    static const char *const bad[] = { "Zg=", "Zh==", "Zm9=", "Z===", "====", "Zm9v=",
                                       "Zg==Zg==", "Zm 9", "Zm9\n", "Zm-v", "=Zm9" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(dt_base64_decode(bad[i], strlen(bad[i]), dec), -EINVAL);
    /* The 8-bit range round-trips. */
    uint8_t all[256], back[256];
    char enc[DT_BASE64_LEN(256) + 1];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t) i;
    size_t n = dt_base64_encode(all, 256, enc);
    assert_int_equal(dt_base64_decode(enc, n, back), 256);
    assert_memory_equal(all, back, 256);
}

/* ---- handshake ---- */

#define H(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void
test_handshake_rfc_example(void **state)
{
    char accept[DT_WS_ACCEPT_LEN + 1];
    struct dt_ws_header h[] = {
        H("Host", "server.example.com"),
        H("upgrade", "websocket"),
        H("Connection", "keep-alive, Upgrade"),
        H("Sec-WebSocket-Key", " dGhlIHNhbXBsZSBub25jZQ== "),
        H("Origin", "http://example.com"),
        H("Sec-WebSocket-Protocol", "chat, superchat"),
        H("SEC-WEBSOCKET-VERSION", "13"),
    };
    _cleanup_error_ struct dt_error *err = NULL;

    dt_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(dt_ws_server_check_request(h, ELEMENTSOF(h), accept, &err), 0);
    assert_null(err);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    assert_int_equal(dt_ws_client_check_accept("dGhlIHNhbXBsZSBub25jZQ==",
                                                " s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 29), 0);
    assert_int_equal(dt_ws_client_check_accept("dGhlIHNhbXBsZSBub25jZQ==",
                                                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo", 27), -EPROTO);
    assert_int_equal(dt_ws_client_check_accept("dGhlIHNhbXBsZSBub25jZR==",
                                                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), -EPROTO);
}

static void
expect_bad_request(const struct dt_ws_header *h, size_t n, int r, const char *needle)
{
    _cleanup_error_ struct dt_error *err = NULL;
    char accept[DT_WS_ACCEPT_LEN + 1];

    assert_int_equal(dt_ws_server_check_request(h, n, accept, &err), r);
    assert_non_null(err);
    assert_int_equal(err->code, -r);
    if (!strstr(err->message, needle))
        fail_msg("message '%s' lacks '%s'", err->message, needle);
}

static void
test_handshake_errors(void **state)
{
    const struct dt_ws_header no_upgrade[] = {
        H("Upgrade", "h2c"), H("Connection", "upgrade"), H("Sec-WebSocket-Version", "13"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    const struct dt_ws_header no_conn[] = {
        H("Upgrade", "websocket"), H("Connection", "keep-alive, upgraded"),
        H("Sec-WebSocket-Version", "13"), H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    const struct dt_ws_header v8[] = {
        H("Upgrade", "websocket"), H("Connection", "Upgrade"), H("Sec-WebSocket-Version", "8"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    const struct dt_ws_header no_version[] = {
        H("Upgrade", "websocket"), H("Connection", "Upgrade"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    const struct dt_ws_header two_keys[] = {
        H("Upgrade", "websocket"), H("Connection", "Upgrade"), H("Sec-WebSocket-Version", "13"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    const struct dt_ws_header short_key[] = {
        H("Upgrade", "websocket"), H("Connection", "Upgrade"), H("Sec-WebSocket-Version", "13"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"),
    };
    const struct dt_ws_header key15[] = { /* base64 of 15 bytes plus junk padding */
        H("Upgrade", "websocket"), H("Connection", "Upgrade"), H("Sec-WebSocket-Version", "13"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=A"),
    };
    const struct dt_ws_header no_key[] = {
        H("Upgrade", "websocket"), H("Connection", "Upgrade"), H("Sec-WebSocket-Version", "13"),
    };

    expect_bad_request(no_upgrade, ELEMENTSOF(no_upgrade), -EINVAL, "Upgrade");
    expect_bad_request(no_conn, ELEMENTSOF(no_conn), -EINVAL, "Connection");
    expect_bad_request(v8, ELEMENTSOF(v8), -EPROTONOSUPPORT, "'8'");
    expect_bad_request(no_version, ELEMENTSOF(no_version), -EINVAL, "missing Sec-WebSocket-Ver");
    expect_bad_request(two_keys, ELEMENTSOF(two_keys), -EINVAL, "repeated Sec-WebSocket-Key");
    expect_bad_request(short_key, ELEMENTSOF(short_key), -EINVAL, "16 bytes");
    expect_bad_request(key15, ELEMENTSOF(key15), -EINVAL, "16 bytes");
    expect_bad_request(no_key, ELEMENTSOF(no_key), -EINVAL, "missing Sec-WebSocket-Key");
}

static void
test_select_protocol(void **state)
{
    const char *const ours[] = { "X-Daytona-Pty-Exit-Control", "superchat" };
    const struct dt_ws_header h[] = {
        H("Sec-WebSocket-Protocol", "chat , SuperChat"),
        H("Other", "superchat"),
        H("sec-websocket-protocol", "superchat,X-Daytona-Pty-Exit-Control"),
    };
    const struct dt_ws_header none[] = { H("Sec-WebSocket-Protocol", "chat, x-daytona-pty") };

    assert_ptr_equal(dt_ws_select_protocol(h, ELEMENTSOF(h), ours, 2), ours[1]);
    assert_ptr_equal(dt_ws_select_protocol(h + 2, 1, ours, 2), ours[1]);
    assert_null(dt_ws_select_protocol(none, 1, ours, 2));
    assert_null(dt_ws_select_protocol(h, 0, ours, 2));
    const struct dt_ws_header pty[] = { H("Sec-WebSocket-Protocol", "X-Daytona-Pty-Exit-Control") };
    assert_ptr_equal(dt_ws_select_protocol(pty, 1, ours, 2), ours[0]);
}

static void
test_client_key(void **state)
{
    char k1[DT_WS_KEY_LEN + 1], k2[DT_WS_KEY_LEN + 1], acc[DT_WS_ACCEPT_LEN + 1];
    uint8_t raw[24];

    assert_int_equal(dt_ws_client_key(k1), 0);
    assert_int_equal(dt_ws_client_key(k2), 0);
    assert_int_equal(strlen(k1), 24);
    assert_int_equal(dt_base64_decode(k1, 24, raw), 16);
    assert_string_not_equal(k1, k2);
    dt_ws_accept(k1, 24, acc);
    assert_int_equal(dt_ws_client_check_accept(k1, acc, strlen(acc)), 0);
    assert_int_equal(dt_ws_client_check_accept(k2, acc, strlen(acc)), -EPROTO);
}

/* ---- RFC 6455 section 5.7 ---- */

static void
expect_one(enum dt_ws_role role, const uint8_t *frame, size_t len, enum dt_ws_event_type type,
           enum dt_ws_opcode op, const char *payload)
{
    struct dt_ws_parser p;
    struct dt_ws_event ev;
    uint8_t buf[16];
    size_t c;

    memcpy(buf, frame, len);
    dt_ws_parser_init(&p, role, 1024);
    assert_int_equal(dt_ws_parse(&p, buf, len, &c, &ev), 1);
    assert_int_equal(c, len);
    assert_int_equal(ev.type, type);
    assert_int_equal(ev.opcode, op);
    assert_true(ev.first && ev.last);
    assert_int_equal(ev.len, strlen(payload));
    assert_memory_equal(ev.data, payload, ev.len);
    assert_int_equal(dt_ws_parse(&p, buf + c, 0, &c, &ev), 0);
}

static void
test_rfc_examples(void **state)
{
    static const uint8_t unmasked[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    static const uint8_t masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                      0x9f, 0x4d, 0x51, 0x58 };
    static const uint8_t frag[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
    static const uint8_t ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    static const uint8_t pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                    0x9f, 0x4d, 0x51, 0x58 };
    uint8_t out[DT_WS_MAX_HEADER + 8];
    size_t n;

    expect_one(DT_WS_CLIENT, unmasked, sizeof(unmasked), DT_WS_EV_DATA, DT_WS_OP_TEXT, "Hello");
    expect_one(DT_WS_SERVER, masked, sizeof(masked), DT_WS_EV_DATA, DT_WS_OP_TEXT, "Hello");
    expect_one(DT_WS_CLIENT, ping, sizeof(ping), DT_WS_EV_CONTROL, DT_WS_OP_PING, "Hello");
    expect_one(DT_WS_SERVER, pong, sizeof(pong), DT_WS_EV_CONTROL, DT_WS_OP_PONG, "Hello");

    /* Encoder, byte-exact. */
    n = dt_ws_frame_header(out, DT_WS_OP_TEXT, true, 5, NULL);
    memcpy(out + n, "Hello", 5);
    assert_int_equal(n + 5, sizeof(unmasked));
    assert_memory_equal(out, unmasked, sizeof(unmasked));
    n = dt_ws_frame_header(out, DT_WS_OP_TEXT, true, 5, MASK);
    memcpy(out + n, "Hello", 5);
    dt_ws_mask(out + n, 5, MASK, 0);
    assert_int_equal(n + 5, sizeof(masked));
    assert_memory_equal(out, masked, sizeof(masked));
    n = dt_ws_frame_header(out, DT_WS_OP_PONG, true, 5, MASK);
    memcpy(out + n, "Hello", 5);
    dt_ws_mask(out + n, 5, MASK, 0);
    assert_memory_equal(out, pong, sizeof(pong));
    n = dt_ws_frame_header(out, DT_WS_OP_TEXT, false, 3, NULL);
    n += dt_ws_frame_header(out + n + 3, DT_WS_OP_CONT, true, 2, NULL) + 3;
    memcpy(out + 2, "Hel", 3);
    memcpy(out + 7, "lo", 2);
    assert_int_equal(n + 2, sizeof(frag));
    assert_memory_equal(out, frag, sizeof(frag));

    /* Fragmented "Hel" + "lo": two pieces of one text message. */
    struct dt_ws_parser p;
    struct dt_ws_event ev;
    uint8_t buf[sizeof(frag)];
    size_t c;
    memcpy(buf, frag, sizeof(frag));
    dt_ws_parser_init(&p, DT_WS_CLIENT, 1024);
    assert_int_equal(dt_ws_parse(&p, buf, sizeof(buf), &c, &ev), 1);
    assert_int_equal(c, 5);
    assert_true(ev.first && !ev.last && ev.opcode == DT_WS_OP_TEXT && ev.len == 3);
    assert_memory_equal(ev.data, "Hel", 3);
    assert_int_equal(dt_ws_parse(&p, buf + 5, 4, &c, &ev), 1);
    assert_int_equal(c, 4);
    assert_true(!ev.first && ev.last && ev.opcode == DT_WS_OP_TEXT && ev.len == 2);
    assert_memory_equal(ev.data, "lo", 2);

    /* 256 bytes and 64 KiB binary, unmasked: 16-bit and 64-bit lengths. */
    static const uint8_t h256[] = { 0x82, 0x7e, 0x01, 0x00 };
    static const uint8_t h64k[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 };
    assert_int_equal(dt_ws_frame_header(out, DT_WS_OP_BINARY, true, 256, NULL), 4);
    assert_memory_equal(out, h256, 4);
    assert_int_equal(dt_ws_frame_header(out, DT_WS_OP_BINARY, true, 65536, NULL), 10);
    assert_memory_equal(out, h64k, 10);
    assert_int_equal(dt_ws_frame_header(out, DT_WS_OP_BINARY, true, 65535, MASK), 8);
    assert_int_equal(dt_ws_frame_header(out, DT_WS_OP_BINARY, true, 125, MASK), 6);
    assert_int_equal(dt_ws_frame_header(out, DT_WS_OP_BINARY, false, UINT64_C(1) << 40, MASK),
                     14);

    for (int big = 0; big < 2; big++) {
        size_t plen = big ? 65536 : 256, hl = big ? 10 : 4;
        uint8_t *f = xmalloc(plen + hl);
        struct dt_ws_msgbuf mb = DT_WS_MSGBUF_INIT;

        memcpy(f, big ? h64k : h256, hl);
        for (size_t i = 0; i < plen; i++)
            f[hl + i] = (uint8_t) (i * 7);
        dt_ws_parser_init(&p, DT_WS_CLIENT, 65536);
        /* Header then payload in two halves. */
        assert_int_equal(dt_ws_parse(&p, f, hl + plen / 2, &c, &ev), 1);
        assert_int_equal(c, hl + plen / 2);
        assert_int_equal(dt_ws_msgbuf_add(&mb, &ev), 0);
        assert_int_equal(dt_ws_parse(&p, f + c, plen - plen / 2, &c, &ev), 1);
        assert_int_equal(dt_ws_msgbuf_add(&mb, &ev), 1);
        assert_int_equal(mb.len, plen);
        assert_int_equal(mb.opcode, DT_WS_OP_BINARY);
        for (size_t i = 0; i < plen; i++)
            assert_int_equal(mb.data[i], (uint8_t) (i * 7));
        dt_ws_msgbuf_done(&mb);
        free(f);
    }
}

/* ---- errors ---- */

struct bad_case {
    const char *name;
    enum dt_ws_role role;
    uint64_t max;
    uint8_t bytes[24];
    size_t len;
    int r;
    uint16_t code;
};

static void
test_errors(void **state)
{
    /* Server role unless said; masks are all-zero so payload bytes read as written. */
#define M 0, 0, 0, 0
    static const struct bad_case cases[] = {
        { "rsv1", DT_WS_SERVER, 100, { 0xc1, 0x80, M }, 6, -EPROTO, 1002 },
        { "rsv2", DT_WS_SERVER, 100, { 0xa1, 0x80, M }, 6, -EPROTO, 1002 },
        { "rsv3", DT_WS_SERVER, 100, { 0x91, 0x80, M }, 6, -EPROTO, 1002 },
        { "opcode 3", DT_WS_SERVER, 100, { 0x83, 0x80, M }, 6, -EPROTO, 1002 },
        { "opcode 0xb", DT_WS_SERVER, 100, { 0x8b, 0x80, M }, 6, -EPROTO, 1002 },
        { "unmasked to server", DT_WS_SERVER, 100, { 0x81, 0x00 }, 2, -EPROTO, 1002 },
        { "masked to client", DT_WS_CLIENT, 100, { 0x81, 0x80, M }, 6, -EPROTO, 1002 },
        { "fragmented ping", DT_WS_SERVER, 100, { 0x09, 0x80, M }, 6, -EPROTO, 1002 },
        { "ping 126", DT_WS_SERVER, 100, { 0x89, 0xfe, 0, 126, M }, 8, -EPROTO, 1002 },
        { "close 1 byte", DT_WS_SERVER, 100, { 0x88, 0x81, M, 3 }, 7, -EPROTO, 1002 },
        { "close code 999", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xe7 }, 8, -EPROTO, 1002 },
        { "close code 0", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0, 0 }, 8, -EPROTO, 1002 },
        { "close code 1004", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xec }, 8, -EPROTO, 1002 },
        { "close code 1005", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xed }, 8, -EPROTO, 1002 },
        { "close code 1006", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xee }, 8, -EPROTO, 1002 },
        { "close code 1015", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xf7 }, 8, -EPROTO, 1002 },
        { "close code 1016", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x03, 0xf8 }, 8, -EPROTO, 1002 },
        { "close code 2999", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x0b, 0xb7 }, 8, -EPROTO, 1002 },
        { "close code 5000", DT_WS_SERVER, 100, { 0x88, 0x82, M, 0x13, 0x88 }, 8, -EPROTO, 1002 },
        { "close bad reason", DT_WS_SERVER, 100, { 0x88, 0x83, M, 0x03, 0xe8, 0xff }, 9, -EILSEQ,
          1007 },
        { "cont without start", DT_WS_SERVER, 100, { 0x80, 0x80, M }, 6, -EPROTO, 1002 },
        { "text inside fragmented", DT_WS_SERVER, 100, { 0x01, 0x80, M, 0x81, 0x80, M }, 12,
          -EPROTO, 1002 },
        { "16-bit non-minimal", DT_WS_SERVER, 1000, { 0x82, 0xfe, 0, 125, M }, 8, -EPROTO, 1002 },
        { "64-bit non-minimal", DT_WS_SERVER, 100000,
          { 0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, M }, 14, -EPROTO, 1002 },
        { "64-bit top bit", DT_WS_SERVER, UINT64_MAX,
          { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, M }, 14, -EPROTO, 1002 },
        { "too big", DT_WS_SERVER, 4, { 0x82, 0x85, M }, 6, -EMSGSIZE, 1009 },
        { "too big fragmented", DT_WS_SERVER, 4, { 0x02, 0x83, M, 1, 2, 3, 0x80, 0x82, M }, 15,
          -EMSGSIZE, 1009 },
        { "bad utf8", DT_WS_SERVER, 100, { 0x81, 0x82, M, 0xc0, 0x80 }, 8, -EILSEQ, 1007 },
        { "truncated utf8", DT_WS_SERVER, 100, { 0x81, 0x82, M, 0xe2, 0x82 }, 8, -EILSEQ, 1007 },
        { "truncated utf8 empty fin", DT_WS_SERVER, 100, { 0x01, 0x81, M, 0xe2, 0x80, 0x80, M },
          13, -EILSEQ, 1007 },
    };
#undef M
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        const struct bad_case *bc = &cases[i];
        struct dt_ws_parser p;
        struct dt_ws_event ev;
        size_t c;

        print_message("case %s\n", bc->name);
        parse_all(bc->role, bc->max, bc->bytes, bc->len, bc->r, &p);
        assert_int_equal(dt_ws_error_close_code(bc->r), bc->code);
        assert_non_null(dt_ws_parser_error(&p));
        /* Sticky. */
        uint8_t more[2] = { 0x81, 0x80 };
        assert_int_equal(dt_ws_parse(&p, more, 2, &c, &ev), bc->r);
        assert_int_equal(c, 0);
    }

    /* Valid close codes are accepted and reported. */
    static const uint16_t ok[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                   1012, 1013, 1014, 3000, 4999 };
    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        uint8_t f[DT_WS_MAX_CLOSE_FRAME];
        size_t n = dt_ws_close_frame(f, ok[i], "bye", 3, MASK), c;
        struct dt_ws_parser p;
        struct dt_ws_event ev;

        dt_ws_parser_init(&p, DT_WS_SERVER, 0);
        assert_int_equal(dt_ws_parse(&p, f, n, &c, &ev), 1);
        assert_int_equal(ev.type, DT_WS_EV_CONTROL);
        assert_int_equal(ev.opcode, DT_WS_OP_CLOSE);
        assert_int_equal(ev.close_code, ok[i]);
        assert_int_equal(ev.len, 3);
        assert_memory_equal(ev.data, "bye", 3);
        /* Anything after the close frame is ignored. */
        uint8_t junk[3] = { 0xff, 0xff, 0xff };
        assert_int_equal(dt_ws_parse(&p, junk, 3, &c, &ev), 0);
        assert_int_equal(c, 3);
    }
    assert_false(dt_ws_close_code_valid(1005));
    assert_false(dt_ws_close_code_valid(2000));

    /* An empty close frame means "no status". */
    static const uint8_t empty_close[] = { 0x88, 0x00 };
    struct dt_ws_parser p;
    struct dt_ws_event ev;
    uint8_t b[2];
    size_t c;
    memcpy(b, empty_close, 2);
    dt_ws_parser_init(&p, DT_WS_CLIENT, 0);
    assert_int_equal(dt_ws_parse(&p, b, 2, &c, &ev), 1);
    assert_int_equal(ev.close_code, DT_WS_CLOSE_NO_STATUS);
    assert_int_equal(ev.len, 0);

    /* Max message: exactly max is fine, across fragments too. */
    static const uint8_t at_max[] = { 0x02, 0x82, 0, 0, 0, 0, 1, 2, 0x80, 0x82, 0, 0, 0, 0, 3, 4 };
    assert_int_equal(parse_all(DT_WS_SERVER, 4, at_max, sizeof(at_max), 0, NULL), 2);
}

/* ---- splits ---- */

static size_t
build_stream(uint8_t *out)
{
    size_t n = 0;
    static const char euro[] = "price: \xe2\x82\xac 5, \xf0\x9f\x98\x80!";
    uint8_t mask[4] = { 0xa1, 0x02, 0x3c, 0x99 };
    uint8_t big[70000];

#define FRAME(op, fin, data, len)                                                                  \
    do {                                                                                           \
        n += dt_ws_frame_header(out + n, op, fin, len, mask);                                      \
        memcpy(out + n, data, len);                                                                \
        dt_ws_mask(out + n, len, mask, 0);                                                         \
        n += len;                                                                                  \
        mask[0] += 17;                                                                             \
        mask[3] ^= 0x5a;                                                                           \
    } while (0)

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t) (i ^ (i >> 8));
    FRAME(DT_WS_OP_TEXT, true, "Hello", 5);
    /* Text with multi-byte code points cut between fragments, a ping in the middle. */
    FRAME(DT_WS_OP_TEXT, false, euro, 8);                       /* ends after E2 */
    FRAME(DT_WS_OP_CONT, false, euro + 8, 1);                    /* 82 */
    FRAME(DT_WS_OP_PING, true, "p", 1);
    FRAME(DT_WS_OP_CONT, false, "", 0);
    FRAME(DT_WS_OP_CONT, false, euro + 9, 6);                   /* AC ... F0 */
    FRAME(DT_WS_OP_CONT, true, euro + 15, strlen(euro) - 15);
    FRAME(DT_WS_OP_BINARY, true, "", 0);
    FRAME(DT_WS_OP_TEXT, true, "", 0);
    FRAME(DT_WS_OP_BINARY, true, big, 300);
    FRAME(DT_WS_OP_PONG, true, "", 0);
    FRAME(DT_WS_OP_BINARY, false, big, 125);
    FRAME(DT_WS_OP_CONT, true, big + 125, sizeof(big) - 125); /* 64-bit length */
    FRAME(DT_WS_OP_PING, true, big, 125);
    n += dt_ws_close_frame(out + n, 1000, "done", 4, mask);
#undef FRAME
    return n;
}

static void
check_splits(enum dt_ws_role role, const uint8_t *s, size_t n, size_t expect_records)
{
    struct transcript whole, t;
    size_t one = 1;
    size_t sizes[64];

    run(role, 1 << 20, s, n, NULL, 0, &whole);
    run(role, 1 << 20, s, n, &one, 1, &t);
    assert_same(&whole, &t);
    free(t.b);
    srandom(42);
    for (int iter = 0; iter < 200; iter++) {
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
            sizes[i] = (size_t) (random() % ((iter % 4 == 0) ? 4000 : 20));
        run(role, 1 << 20, s, n, sizes, ELEMENTSOF(sizes), &t);
        assert_same(&whole, &t);
        free(t.b);
    }
    /* Records: each is tag(1) + code(2) + len(8) + data. Count them. */
    size_t count = 0;
    for (size_t off = 0; off < whole.len; count++) {
        uint64_t len;
        memcpy(&len, whole.b + off + 3, 8);
        off += 11 + len;
    }
    assert_int_equal(count, expect_records);
    free(whole.b);
}

static void
test_splits(void **state)
{
    uint8_t *s = xmalloc(80000);
    size_t n = build_stream(s);
    struct transcript t;

    check_splits(DT_WS_SERVER, s, n, 10);
    /* The decoded messages are the right ones. */
    run(DT_WS_SERVER, 1 << 20, s, n, NULL, 0, &t);
    assert_int_equal(t.result, 0);
    assert_memory_equal(t.b, "\x01\x00\x00\x05\0\0\0\0\0\0\0Hello", 16);
    assert_memory_equal(t.b + 16, "\x09\x00\x00\x01\0\0\0\0\0\0\0p", 12);
    static const char euro[] = "price: \xe2\x82\xac 5, \xf0\x9f\x98\x80!";
    assert_int_equal(t.b[28], DT_WS_OP_TEXT);
    assert_memory_equal(t.b + 28 + 11, euro, strlen(euro));
    free(t.b);
    free(s);
}

static void
test_split_errors(void **state)
{
    /* A text message whose second fragment breaks UTF-8 mid code point, then a bad opcode:
     * every split must stop at the UTF-8 error with the same transcript. */
    uint8_t s[64];
    size_t n = 0;

    n += dt_ws_frame_header(s + n, DT_WS_OP_TEXT, true, 2, MASK);
    memcpy(s + n, "ok", 2);
    dt_ws_mask(s + n, 2, MASK, 0);
    n += 2;
    n += dt_ws_frame_header(s + n, DT_WS_OP_TEXT, false, 3, MASK);
    memcpy(s + n, "a\xed\x9f", 3); /* ED 9F: fine so far (U+D7xx) */
    dt_ws_mask(s + n, 3, MASK, 0);
    n += 3;
    n += dt_ws_frame_header(s + n, DT_WS_OP_CONT, true, 3, MASK);
    memcpy(s + n, "b\xa0\x80", 3); /* "b" where a continuation was due */
    dt_ws_mask(s + n, 3, MASK, 0);
    n += 3;
    s[n++] = 0x83;
    s[n++] = 0x80;
    struct transcript whole;
    run(DT_WS_SERVER, 100, s, n, NULL, 0, &whole);
    assert_int_equal(whole.result, -EILSEQ);
    check_splits(DT_WS_SERVER, s, n, 1);
    free(whole.b);

    /* Client role, unmasked. */
    n = 0;
    n += dt_ws_frame_header(s + n, DT_WS_OP_BINARY, false, 3, NULL);
    memcpy(s + n, "abc", 3);
    n += 3;
    s[n++] = 0x8a;
    s[n++] = 0;
    n += dt_ws_frame_header(s + n, DT_WS_OP_CONT, true, 1, NULL);
    s[n++] = 'd';
    n += dt_ws_frame_header(s + n, DT_WS_OP_BINARY, true, 1, NULL);
    s[n++] = 0xff;
    s[n++] = 0x82;
    s[n++] = 0x7e; /* truncated header: needs more */
    run(DT_WS_CLIENT, 100, s, n, NULL, 0, &whole);
    assert_int_equal(whole.result, 0);
    check_splits(DT_WS_CLIENT, s, n, 3);
    free(whole.b);
}

/* ---- UTF-8 ---- */

static void
test_utf8(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } v[] = {
        { "", true },
        { "plain ascii", true },
        { "\x7f", true },
        { "\xc2\x80", true },                 /* U+0080 */
        { "\xdf\xbf", true },                 /* U+07FF */
        { "\xe0\xa0\x80", true },             /* U+0800 */
        { "\xed\x9f\xbf", true },             /* U+D7FF */
        { "\xee\x80\x80", true },             /* U+E000 */
        { "\xef\xbf\xbf", true },             /* U+FFFF */
        { "\xf0\x90\x80\x80", true },         /* U+10000 */
        { "\xf4\x8f\xbf\xbf", true },         /* U+10FFFF */
        { "\x80", false },                    /* lone continuation */
        { "\xc0\x80", false },                /* overlong NUL */
        { "\xc1\xbf", false },                /* overlong */
        { "\xe0\x9f\xbf", false },            /* overlong 3-byte */
        { "\xf0\x8f\xbf\xbf", false },        /* overlong 4-byte */
        { "\xed\xa0\x80", false },            /* U+D800 surrogate */
        { "\xed\xbf\xbf", false },            /* U+DFFF surrogate */
        { "\xf4\x90\x80\x80", false },        /* U+110000 */
        { "\xf5\x80\x80\x80", false },
        { "\xff", false },
        { "\xe2\x82", false },                /* truncated */
        { "\xe2\x28\xa1", false },
        { "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        size_t len = strlen(v[i].s);
        uint8_t f[32];

        assert_int_equal(dt_ws_utf8_valid((const uint8_t *) v[i].s, len), v[i].ok);
        /* Through the parser, each code point split in every way across two fragments. */
        for (size_t cut = 0; cut <= len; cut++) {
            size_t n = dt_ws_frame_header(f, DT_WS_OP_TEXT, false, cut, NULL);
            memcpy(f + n, v[i].s, cut);
            n += cut;
            n += dt_ws_frame_header(f + n, DT_WS_OP_CONT, true, len - cut, NULL);
            memcpy(f + n, v[i].s + cut, len - cut);
            n += len - cut;
            struct transcript t;
            run(DT_WS_CLIENT, 100, f, n, NULL, 0, &t);
            assert_int_equal(t.result, v[i].ok ? 0 : -EILSEQ);
            free(t.b);
        }
    }
}

/* ---- masking, close builder ---- */

static void
test_mask_roundtrip(void **state)
{
    uint8_t d[1000], orig[1000];
    static const uint8_t mask[4] = { 1, 2, 3, 0xf0 };

    for (size_t i = 0; i < sizeof(d); i++)
        d[i] = orig[i] = (uint8_t) (i * 31);
    dt_ws_mask(d, sizeof(d), mask, 0);
    assert_int_equal(d[0], orig[0] ^ 1);
    assert_int_equal(d[7], orig[7] ^ 0xf0);
    /* Unmasking piecewise from odd offsets equals unmasking at once. */
    dt_ws_mask(d, 3, mask, 0);
    dt_ws_mask(d + 3, 500, mask, 3);
    dt_ws_mask(d + 503, sizeof(d) - 503, mask, 503);
    assert_memory_equal(d, orig, sizeof(d));
}

static void
test_close_builder(void **state)
{
    uint8_t f[DT_WS_MAX_CLOSE_FRAME];
    char reason[200];
    size_t n;

    assert_int_equal(dt_ws_close_frame(f, 0, "ignored", 7, NULL), 2);
    assert_memory_equal(f, "\x88\x00", 2);
    n = dt_ws_close_frame(f, 1009, "message too big", 15, NULL);
    assert_int_equal(n, 2 + 2 + 15);
    assert_memory_equal(f, "\x88\x11\x03\xf1message too big", n);

    /* 61 x "é" (2 bytes) = 122 bytes, then "€" (3 bytes): 125 > 123, cut before the euro. */
    size_t rl = 0;
    for (int i = 0; i < 61; i++) {
        memcpy(reason + rl, "\xc3\xa9", 2);
        rl += 2;
    }
    memcpy(reason + rl, "\xe2\x82\xac", 3);
    rl += 3;
    n = dt_ws_close_frame(f, 1000, reason, rl, MASK);
    assert_int_equal(n, 6 + 2 + 122);
    struct dt_ws_parser p;
    struct dt_ws_event ev;
    size_t c;
    dt_ws_parser_init(&p, DT_WS_SERVER, 0);
    assert_int_equal(dt_ws_parse(&p, f, n, &c, &ev), 1);
    assert_int_equal(ev.close_code, 1000);
    assert_int_equal(ev.len, 122);
    assert_memory_equal(ev.data, reason, 122);

    /* Exactly 123 bytes fits whole. */
    memset(reason, 'x', 123);
    assert_int_equal(dt_ws_close_frame(f, 4000, reason, 123, NULL), 2 + 125);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_vectors),    cmocka_unit_test(test_base64),
        cmocka_unit_test(test_handshake_rfc_example), cmocka_unit_test(test_handshake_errors),
        cmocka_unit_test(test_select_protocol), cmocka_unit_test(test_client_key),
        cmocka_unit_test(test_rfc_examples),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_splits),          cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_utf8),            cmocka_unit_test(test_mask_roundtrip),
        cmocka_unit_test(test_close_builder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
