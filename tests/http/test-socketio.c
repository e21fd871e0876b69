/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the Socket.IO / Engine.IO v4 codec: what socket.io-client 4.8 sends for the SDK's
 * connect, the contract's Appendix A exchange byte for byte, every packet type both ways,
 * malformed input, and (when DT_TEST_NODE_MODULES names a node_modules with socket.io-parser and
 * engine.io-parser) interop with the real JavaScript parser in both directions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dt/macros.h"
#include "dt/socketio.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

/* ---- helpers ---- */

static void
parse_ok(const char *s, struct dt_sio_packet *p)
{
    struct dt_error *err = NULL;
    int r = dt_sio_parse(s, strlen(s), p, &err);

    if (r < 0)
        fail_msg("parse '%s': %s", s, err ? err->message : "?");
    assert_null(err);
}

/* Parse S as a MESSAGE and check its header; returns the packet (caller frees). */
static void
expect_msg(const char *s, enum dt_sio_type type, const char *nsp, int64_t ack_id,
           const char *data_json, struct dt_sio_packet *p)
{
    parse_ok(s, p);
    assert_int_equal(p->eio_type, DT_EIO_MESSAGE);
    assert_int_equal(p->sio_type, type);
    assert_string_equal(p->nsp, nsp);
    assert_int_equal(p->ack_id, ack_id);
    if (!data_json) {
        assert_null(p->data);
        assert_int_equal(p->raw_len, 0);
    } else {
        json_t *want = json_loads(data_json, JSON_DECODE_ANY, NULL);
        assert_non_null(want);
        assert_non_null(p->data);
        if (!json_equal(want, p->data))
            fail_msg("'%s': payload differs from %s", s, data_json);
        json_decref(want);
        assert_non_null(p->raw);
        assert_int_equal(p->raw_len, strlen(data_json));
    }
}

/* Parse S, re-encode it, and require the same bytes back. */
static void
roundtrip_exact(const char *s)
{
    struct dt_sio_packet p;
    _cleanup_free_ char *out = NULL;
    struct dt_error *err = NULL;
    size_t len = 0;

    parse_ok(s, &p);
    if (dt_sio_encode(&p, &out, &len, &err) < 0)
        fail_msg("encode '%s': %s", s, err->message);
    assert_string_equal(out, s);
    assert_int_equal(len, strlen(s));
    dt_sio_packet_done(&p);
}

static void
expect_fail_len(const char *s, size_t len, int errnum)
{
    struct dt_sio_packet p;
    struct dt_error *err = NULL;
    int r = dt_sio_parse(s, len, &p, &err);

    if (r != -errnum)
        fail_msg("'%.*s': got %d, want -%d", (int) (len > 80 ? 80 : len), s, r, errnum);
    assert_non_null(err);
    assert_int_equal(err->code, errnum);
    assert_null(p.data);
    dt_error_free(err);
}

static void
expect_fail(const char *s, int errnum)
{
    expect_fail_len(s, strlen(s), errnum);
}

/* ---- what the SDK sends ---- */

static void
test_sdk_connect(void **state)
{
    struct dt_sio_packet p;

    /* socket.io-client 4.8 with socket.auth = { token } (observed against a ws server). */
    expect_msg("40{\"token\":\"testkey\"}", DT_SIO_CONNECT, "/", -1, "{\"token\":\"testkey\"}", &p);
    assert_string_equal(json_string_value(json_object_get(p.data, "token")), "testkey");
    dt_sio_packet_done(&p);
    dt_sio_packet_done(&p); /* idempotent */

    /* A JWT instead of an API key; no token at all ({token: undefined} stringifies to {}). */
    expect_msg("40{\"token\":\"eyJhbGciOiJSUzI1NiJ9.e30.c2ln\"}", DT_SIO_CONNECT, "/", -1,
               "{\"token\":\"eyJhbGciOiJSUzI1NiJ9.e30.c2ln\"}", &p);
    dt_sio_packet_done(&p);
    expect_msg("40{}", DT_SIO_CONNECT, "/", -1, "{}", &p);
    dt_sio_packet_done(&p);
    expect_msg("40", DT_SIO_CONNECT, "/", -1, NULL, &p);
    dt_sio_packet_done(&p);

    /* Connection-state recovery adds pid/offset after a server sent a pid (we never do). */
    expect_msg("40{\"pid\":\"p1\",\"offset\":\"o1\",\"token\":\"k\"}", DT_SIO_CONNECT, "/", -1,
               "{\"pid\":\"p1\",\"offset\":\"o1\",\"token\":\"k\"}", &p);
    dt_sio_packet_done(&p);

    /* Other namespaces: the encoder always writes the ','. */
    expect_msg("40/admin,{\"token\":\"t\"}", DT_SIO_CONNECT, "/admin", -1, "{\"token\":\"t\"}",
               &p);
    dt_sio_packet_done(&p);
    expect_msg("40/admin,", DT_SIO_CONNECT, "/admin", -1, NULL, &p);
    dt_sio_packet_done(&p);
    expect_msg("40/a/b-c_d.e~,{}", DT_SIO_CONNECT, "/a/b-c_d.e~", -1, "{}", &p);
    dt_sio_packet_done(&p);

    /* Client heartbeat answer and its own disconnect (socket.disconnect()). */
    parse_ok("3", &p);
    assert_int_equal(p.eio_type, DT_EIO_PONG);
    assert_null(p.raw);
    expect_msg("41", DT_SIO_DISCONNECT, "/", -1, NULL, &p);
    dt_sio_packet_done(&p);
}

/* ---- Appendix A of the wire contract, byte for byte ---- */

static void
test_appendix_a(void **state)
{
    _cleanup_free_ char *open = dt_eio_encode_open("eio1", DT_EIO_PING_INTERVAL_MS,
                                                   DT_EIO_PING_TIMEOUT_MS, DT_EIO_MAX_PAYLOAD);
    _cleanup_free_ char *ack = dt_sio_encode_connect_ack(NULL, "sio1");
    _cleanup_free_ char *ev = NULL;
    const char *sandbox = "{\"sandbox\":{\"id\":\"sb-1\",\"organizationId\":\"org1\","
                          "\"labels\":{\"code-toolbox-language\":\"python\"},\"cpu\":1,"
                          "\"state\":\"started\"},\"oldState\":\"creating\","
                          "\"newState\":\"started\"}";
    json_t *payload = json_loads(sandbox, 0, NULL);
    _cleanup_free_ char *want = xasprintf("42[\"sandbox.state.updated\",%s]", sandbox);
    struct dt_sio_packet p;

    assert_string_equal(open, "0{\"sid\":\"eio1\",\"upgrades\":[],\"pingInterval\":25000,"
                              "\"pingTimeout\":20000,\"maxPayload\":1000000}");
    parse_ok(open, &p);
    assert_int_equal(p.eio_type, DT_EIO_OPEN);
    assert_int_equal(p.raw_len, strlen(open) - 1);
    assert_ptr_equal(p.raw, open + 1);

    parse_ok("40{\"token\":\"testkey\"}", &p);
    dt_sio_packet_done(&p);

    assert_string_equal(ack, "40{\"sid\":\"sio1\"}");
    expect_msg(ack, DT_SIO_CONNECT, "/", -1, "{\"sid\":\"sio1\"}", &p);
    dt_sio_packet_done(&p);

    assert_non_null(payload);
    ev = dt_sio_encode_event(NULL, -1, "sandbox.state.updated", payload);
    assert_string_equal(ev, want);
    json_decref(payload);

    assert_string_equal(DT_EIO_PING_MSG, "2");
    assert_string_equal(DT_EIO_PONG_MSG, "3");
}

/* ---- every packet type ---- */

static void
test_engine_types(void **state)
{
    static const struct {
        const char *s;
        enum dt_eio_type type;
        const char *raw;
    } cases[] = {
        { "0{\"sid\":\"x\"}", DT_EIO_OPEN, "{\"sid\":\"x\"}" },
        { "1", DT_EIO_CLOSE, NULL },
        { "2", DT_EIO_PING, NULL },
        { "2probe", DT_EIO_PING, "probe" },
        { "3", DT_EIO_PONG, NULL },
        { "3probe", DT_EIO_PONG, "probe" },
        { "5", DT_EIO_UPGRADE, NULL },
        { "6", DT_EIO_NOOP, NULL },
    };

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct dt_sio_packet p;
        parse_ok(cases[i].s, &p);
        assert_int_equal(p.eio_type, cases[i].type);
        assert_null(p.data);
        if (cases[i].raw) {
            assert_int_equal(p.raw_len, strlen(cases[i].raw));
            assert_memory_equal(p.raw, cases[i].raw, p.raw_len);
        } else {
            assert_null(p.raw);
            assert_int_equal(p.raw_len, 0);
        }
        roundtrip_exact(cases[i].s);
    }
}

static void
test_socketio_types(void **state)
{
    struct dt_sio_packet p;

    expect_msg("42[\"hello\",{\"a\":1}]", DT_SIO_EVENT, "/", -1, "[\"hello\",{\"a\":1}]", &p);
    dt_sio_packet_done(&p);
    expect_msg("420[\"withack\",1]", DT_SIO_EVENT, "/", 0, "[\"withack\",1]", &p);
    dt_sio_packet_done(&p);
    expect_msg("42/admin,17[\"x\"]", DT_SIO_EVENT, "/admin", 17, "[\"x\"]", &p);
    dt_sio_packet_done(&p);
    expect_msg("422147483647[\"x\"]", DT_SIO_EVENT, "/", DT_SIO_MAX_ACK_ID, "[\"x\"]", &p);
    dt_sio_packet_done(&p);
    expect_msg("42[7,\"numeric name\"]", DT_SIO_EVENT, "/", -1, "[7,\"numeric name\"]", &p);
    dt_sio_packet_done(&p);
    expect_msg("42[\"a\\\"]{\",\"]]]}}}\"]", DT_SIO_EVENT, "/", -1, "[\"a\\\"]{\",\"]]]}}}\"]",
               &p);
    dt_sio_packet_done(&p);
    expect_msg("431[\"ok\"]", DT_SIO_ACK, "/", 1, "[\"ok\"]", &p);
    dt_sio_packet_done(&p);
    expect_msg("43/x,0[]", DT_SIO_ACK, "/x", 0, "[]", &p);
    dt_sio_packet_done(&p);
    expect_msg("44{\"message\":\"bad token\"}", DT_SIO_CONNECT_ERROR, "/", -1,
               "{\"message\":\"bad token\"}", &p);
    dt_sio_packet_done(&p);
    expect_msg("44\"Invalid namespace\"", DT_SIO_CONNECT_ERROR, "/", -1, "\"Invalid namespace\"",
               &p);
    dt_sio_packet_done(&p);
    expect_msg("41/admin,", DT_SIO_DISCONNECT, "/admin", -1, NULL, &p);
    dt_sio_packet_done(&p);
    /* An explicit "/" namespace is the default one. */
    expect_msg("40/,{}", DT_SIO_CONNECT, "/", -1, "{}", &p);
    dt_sio_packet_done(&p);
    /* Non-ASCII survives as UTF-8. */
    expect_msg("42[\"\xc3\xa9v\xc3\xa9nement\",\"\xf0\x9f\x98\x80\"]", DT_SIO_EVENT, "/", -1,
               "[\"\xc3\xa9v\xc3\xa9nement\",\"\xf0\x9f\x98\x80\"]", &p);
    dt_sio_packet_done(&p);

    /* Exactly DT_SIO_MAX_JSON_DEPTH levels and a DT_SIO_MAX_NSP-byte namespace are accepted. */
    {
        char deep[2 + 2 * DT_SIO_MAX_JSON_DEPTH + 8];
        char nsp[DT_SIO_MAX_NSP + 16];
        size_t n = 0;

        deep[n++] = '4';
        deep[n++] = '3';
        deep[n++] = '1';
        for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH; i++)
            deep[n++] = '[';
        for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH; i++)
            deep[n++] = ']';
        deep[n] = '\0';
        parse_ok(deep, &p);
        dt_sio_packet_done(&p);
        roundtrip_exact(deep);

        n = 0;
        nsp[n++] = '4';
        nsp[n++] = '0';
        nsp[n++] = '/';
        while (n < 2 + DT_SIO_MAX_NSP)
            nsp[n++] = 'n';
        nsp[n++] = ',';
        nsp[n] = '\0';
        parse_ok(nsp, &p);
        assert_int_equal(strlen(p.nsp), DT_SIO_MAX_NSP);
        dt_sio_packet_done(&p);
        roundtrip_exact(nsp);
    }

    /* Canonical (compact) messages come back byte for byte. */
    static const char *const exact[] = {
        "40",
        "40{}",
        "40{\"token\":\"testkey\"}",
        "40/admin,",
        "40/admin,{\"token\":\"t\"}",
        "41",
        "41/admin,",
        "42[\"a\"]",
        "420[\"a\",null,true,false,1.5,-3,{\"k\":[]}]",
        "42/admin,99[\"a\",\"\\n\\t\\\"\\\\\"]",
        "43/x,0[]",
        "4312[{\"ok\":true}]",
        "44{\"message\":\"m\",\"data\":{\"code\":401}}",
        "44\"str\"",
    };
    for (size_t i = 0; i < ELEMENTSOF(exact); i++)
        roundtrip_exact(exact[i]);
}

/* ---- encoders ---- */

static void
test_encoders(void **state)
{
    json_t *data = json_pack("{s:i}", "code", 401);
    json_t *obj = json_pack("{s:s,s:[i,i]}", "id", "sb-1", "list", 1, 2);
    json_t *args = json_pack("[s]", "done");
    struct {
        char *got;
        const char *want;
    } cases[] = {
        { dt_eio_encode_open("abc", 300, 200, 4096),
          "0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":300,\"pingTimeout\":200,"
          "\"maxPayload\":4096}" },
        { dt_sio_encode_connect_ack("/", "s1"), "40{\"sid\":\"s1\"}" },
        { dt_sio_encode_connect_ack("/admin", "s1"), "40/admin,{\"sid\":\"s1\"}" },
        { dt_sio_encode_connect_error(NULL, "invalid token", NULL),
          "44{\"message\":\"invalid token\"}" },
        { dt_sio_encode_connect_error("/admin", "nope", data),
          "44/admin,{\"message\":\"nope\",\"data\":{\"code\":401}}" },
        { dt_sio_encode_event(NULL, -1, "sandbox.created", obj),
          "42[\"sandbox.created\",{\"id\":\"sb-1\",\"list\":[1,2]}]" },
        { dt_sio_encode_event("/admin", 5, "ping-me", NULL), "42/admin,5[\"ping-me\"]" },
        { dt_sio_encode_event(NULL, -7, "quote\"d", NULL), "42[\"quote\\\"d\"]" },
        { dt_sio_encode_ack(NULL, 0, NULL), "430[]" },
        { dt_sio_encode_ack("/x", 42, args), "43/x,42[\"done\"]" },
        { dt_sio_encode_disconnect(NULL), "41" },
        { dt_sio_encode_disconnect("/admin"), "41/admin," },
    };

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct dt_sio_packet p;
        assert_string_equal(cases[i].got, cases[i].want);
        /* Everything we send is something we would accept. */
        parse_ok(cases[i].got, &p);
        dt_sio_packet_done(&p);
        roundtrip_exact(cases[i].got);
        free(cases[i].got);
    }
    /* Borrowed arguments keep exactly the caller's references. */
    assert_int_equal(data->refcount, 1);
    assert_int_equal(obj->refcount, 1);
    assert_int_equal(args->refcount, 1);
    json_decref(data);
    json_decref(obj);
    json_decref(args);
}

static void
expect_encode_fail(const struct dt_sio_packet *p, int errnum)
{
    struct dt_error *err = NULL;
    char *out = (char *) 0x1;

    assert_int_equal(dt_sio_encode(p, &out, NULL, &err), -errnum);
    assert_ptr_equal(out, (char *) 0x1);
    assert_non_null(err);
    dt_error_free(err);
}

static void
test_encode_rejects(void **state)
{
    json_t *reserved = json_pack("[s]", "disconnect");
    json_t *obj = json_object();
    json_t *arr = json_array();
    json_t *deep = json_array();
    struct dt_sio_packet p = { .eio_type = DT_EIO_MESSAGE, .nsp = "/", .ack_id = -1 };

    for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, deep);
        deep = outer;
    }

    p.sio_type = DT_SIO_EVENT;
    p.data = reserved;
    expect_encode_fail(&p, EINVAL);
    p.data = obj;
    expect_encode_fail(&p, EINVAL); /* not an array */
    p.data = arr;
    expect_encode_fail(&p, EINVAL); /* empty */
    p.data = deep;
    expect_encode_fail(&p, EINVAL); /* depth 33 */
    p.sio_type = DT_SIO_ACK;
    p.data = arr;
    expect_encode_fail(&p, EINVAL); /* no id */
    p.ack_id = DT_SIO_MAX_ACK_ID + 1;
    expect_encode_fail(&p, EINVAL);
    p.ack_id = 3;
    p.sio_type = DT_SIO_CONNECT;
    p.data = obj;
    expect_encode_fail(&p, EINVAL); /* id on CONNECT */
    p.ack_id = -1;
    p.sio_type = DT_SIO_DISCONNECT;
    expect_encode_fail(&p, EINVAL); /* payload on DISCONNECT */
    p.sio_type = DT_SIO_CONNECT_ERROR;
    p.data = NULL;
    expect_encode_fail(&p, EINVAL);
    p.sio_type = DT_SIO_BINARY_EVENT;
    p.data = arr;
    expect_encode_fail(&p, EOPNOTSUPP);
    p.sio_type = DT_SIO_CONNECT;
    p.data = NULL;
    memcpy(p.nsp, "admin", 6);
    expect_encode_fail(&p, EINVAL); /* no leading '/' */
    memcpy(p.nsp, "/a,b", 5);
    expect_encode_fail(&p, EINVAL);
    memcpy(p.nsp, "/", 2);
    p.sio_type = 9;
    expect_encode_fail(&p, EINVAL);
    p.eio_type = 7;
    expect_encode_fail(&p, EINVAL);
    p.eio_type = DT_EIO_PING;
    p.raw = "a\0b";
    p.raw_len = 3;
    expect_encode_fail(&p, EINVAL);

    json_decref(reserved);
    json_decref(obj);
    json_decref(arr);
    json_decref(deep);
}

/* ---- malformed input ---- */

static void
test_malformed(void **state)
{
    static const struct {
        const char *s;
        int errnum;
    } cases[] = {
        { "", EINVAL },
        { "7", EINVAL },
        { "x", EINVAL },
        { "b", EINVAL },
        { "bNDJbImEiXQ==", EINVAL },       /* base64 binary: polling only */
        { "4", EINVAL },                   /* message without a socket.io packet */
        { "47", EINVAL },
        { "4a", EINVAL },
        { "4/", EINVAL },
        { "451-[\"up\",{\"_placeholder\":true,\"num\":0}]", EOPNOTSUPP },
        { "461-0[{\"_placeholder\":true,\"num\":0}]", EOPNOTSUPP },
        { "45", EOPNOTSUPP },
        { "40{", EINVAL },
        { "40{\"token\":}", EINVAL },
        { "40[1]", EINVAL },
        { "40\"s\"", EINVAL },
        { "40abc", EINVAL },
        { "40 {}", EINVAL },
        { "40{}x", EINVAL },
        { "40{}{}", EINVAL },
        { "40{\"a\":1,\"a\":2}", EINVAL },  /* duplicate key */
        { "400{}", EINVAL },                /* ack id on CONNECT */
        { "40/admin", EINVAL },             /* namespace without ',' */
        { "40/admin{\"token\":\"x\"}", EINVAL },
        { "40/ad min,", EINVAL },
        { "40/ad\x7fmin,", EINVAL },
        { "40/\xc3\xa9,", EINVAL },
        { "40admin,", EINVAL },
        { "40,{}", EINVAL },
        { "41{}", EINVAL },
        { "411", EINVAL },
        { "42", EINVAL },
        { "42{}", EINVAL },
        { "42[]", EINVAL },
        { "42\"x\"", EINVAL },
        { "42[null]", EINVAL },
        { "42[[\"a\"]]", EINVAL },
        { "42[\"connect\"]", EINVAL },
        { "42[\"connect_error\",{}]", EINVAL },
        { "42[\"disconnect\"]", EINVAL },
        { "42[\"disconnecting\"]", EINVAL },
        { "42[\"newListener\"]", EINVAL },
        { "42[\"removeListener\"]", EINVAL },
        { "42[\"a\"", EINVAL },
        { "42[\"a\",]", EINVAL },
        { "42['a']", EINVAL },
        { "42[\"\xff\"]", EINVAL },          /* invalid UTF-8 */
        { "42[\"\\u0000\"]", EINVAL },      /* NUL inside a string */
        { "42[\"\\ud800\"]", EINVAL },      /* lone surrogate */
        { "42[\"a\",NaN]", EINVAL },
        { "42[\"a\",1e999]", EINVAL },
        { "42[\"a\",99999999999999999999]", EINVAL },
        { "4201[\"a\"]", EINVAL },          /* leading zero */
        { "422147483648[\"a\"]", EINVAL },  /* > DT_SIO_MAX_ACK_ID */
        { "4299999999999999999999999999[\"a\"]", EINVAL },
        { "42-1[\"a\"]", EINVAL },
        { "421 [\"a\"]", EINVAL },
        { "431", EINVAL },                  /* ACK without payload */
        { "43[]", EINVAL },                 /* ACK without id */
        { "431{}", EINVAL },
        { "44", EINVAL },
        { "44[1]", EINVAL },
        { "441{}", EINVAL },
        { "4412", EINVAL },
    };
    struct dt_sio_packet p;

    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        expect_fail(cases[i].s, cases[i].errnum);

    /* The 0x1e batch separator means nothing on WebSocket: "2\x1e3" is one ping with data, and
     * a batched message fails as a message. */
    parse_ok("2\x1e" "3", &p);
    assert_int_equal(p.eio_type, DT_EIO_PING);
    assert_int_equal(p.raw_len, 2);
    expect_fail("42[\"a\"]\x1e" "42[\"b\"]", EINVAL);

    /* NUL bytes anywhere. */
    expect_fail_len("42[\"a\"]\0", 8, EINVAL);
    expect_fail_len("2\0", 2, EINVAL);
    expect_fail_len("\0", 1, EINVAL);

    /* Depth DT_SIO_MAX_JSON_DEPTH + 1, in an EVENT and in a CONNECT. */
    {
        char deep[8 + 4 * DT_SIO_MAX_JSON_DEPTH];
        size_t n = 0;

        memcpy(deep, "42[\"a\",", 7);
        n = 7;
        for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH; i++)
            deep[n++] = '[';
        for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH + 1; i++)
            deep[n++] = ']';
        deep[n] = '\0';
        expect_fail(deep, EINVAL);

        n = 2;
        memcpy(deep, "40", 2);
        for (int i = 0; i < DT_SIO_MAX_JSON_DEPTH + 1; i++) {
            memcpy(deep + n, "{\"\":", 4);
            n += 4;
            if (n + 8 > sizeof(deep))
                break;
        }
        deep[n] = '\0';
        expect_fail(deep, EINVAL); /* too deep is found before the truncation */
    }

    /* A namespace one byte too long. */
    {
        char nsp[DT_SIO_MAX_NSP + 16];
        size_t n = 0;

        nsp[n++] = '4';
        nsp[n++] = '0';
        nsp[n++] = '/';
        while (n < 3 + DT_SIO_MAX_NSP)
            nsp[n++] = 'n';
        nsp[n++] = ',';
        nsp[n] = '\0';
        expect_fail(nsp, EINVAL);
    }

    /* Size cap: DT_EIO_MAX_PAYLOAD is accepted, one more byte is not. */
    {
        size_t len = DT_EIO_MAX_PAYLOAD;
        _cleanup_free_ char *big = xmalloc(len + 2);

        memcpy(big, "42[\"", 4);
        memset(big + 4, 'a', len - 6);
        memcpy(big + len - 2, "\"]", 2);
        {
            struct dt_error *err = NULL;
            assert_int_equal(dt_sio_parse(big, len, &p, &err), 0);
            dt_sio_packet_done(&p);
        }
        memmove(big + 5, big + 4, len - 4);
        big[4] = 'a';
        expect_fail_len(big, len + 1, EMSGSIZE);
    }

    /* Errors never quote the payload (it may hold a token). */
    {
        struct dt_error *err = NULL;
        assert_int_equal(dt_sio_parse("40{\"token\":\"s3cret\"", 19, &p, &err), -EINVAL);
        assert_null(strstr(err->message, "s3cret"));
        dt_error_free(err);
    }
}

static void
test_generate_id(void **state)
{
    char a[DT_SIO_ID_LEN + 1], b[DT_SIO_ID_LEN + 1];

    assert_int_equal(dt_sio_generate_id(a), 0);
    assert_int_equal(dt_sio_generate_id(b), 0);
    assert_int_equal(strlen(a), DT_SIO_ID_LEN);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     DT_SIO_ID_LEN);
    assert_string_not_equal(a, b);
    /* Usable as sid in the open packet and the connect ack as is. */
    {
        _cleanup_free_ char *ack = dt_sio_encode_connect_ack(NULL, a);
        _cleanup_free_ char *want = xasprintf("40{\"sid\":\"%s\"}", a);
        assert_string_equal(ack, want);
    }
}

/* ---- interop with the JavaScript parsers (optional) ---- */

/* argv[1]: JSON {"encode":[packet objects], "decode":[engine.io strings]}. Prints one JSON line
 * per item: the engine.io string the real encoders produce, then for each string the engine.io
 * packet and the socket.io packet the real decoders make of it (or {"error":...}). */
static const char node_script[] =
    "const sp = require('socket.io-parser'); const ep = require('engine.io-parser');\n"
    "const job = JSON.parse(process.argv[1]);\n"
    "for (const p of job.encode) {\n"
    "  const parts = new sp.Encoder().encode(p);\n"
    "  ep.encodePacket({ type: 'message', data: parts[0] }, false, (s) =>\n"
    "    console.log(JSON.stringify(s)));\n"
    "}\n"
    "for (const s of job.decode) {\n"
    "  const e = ep.decodePacket(s);\n"
    "  let out = { eio: e.type };\n"
    "  if (e.type === 'message') {\n"
    "    const d = new sp.Decoder();\n"
    "    d.on('decoded', (p) => { out.sio = p; });\n"
    "    try { d.add(e.data); } catch (err) { out.error = String(err); }\n"
    "  } else if (e.data !== undefined) { out.data = e.data; }\n"
    "  console.log(JSON.stringify(out));\n"
    "}\n";

static void
test_node_interop(void **state)
{
    const char *nm = getenv("DT_TEST_NODE_MODULES");
    _cleanup_free_ char *path_sp = NULL, *path_ep = NULL, *node_path = NULL;
    _cleanup_free_ char *out = NULL, *job_s = NULL;
    json_t *enc, *job, *dec;
    /* Packets as socket.io-parser objects, and what we make of the encoded string. */
    static const char encode_json[] =
        "[{\"type\":0,\"nsp\":\"/\",\"data\":{\"token\":\"testkey\"}},"
        " {\"type\":0,\"nsp\":\"/\"},"
        " {\"type\":0,\"nsp\":\"/admin\",\"data\":{\"token\":\"t\"}},"
        " {\"type\":0,\"nsp\":\"/admin\"},"
        " {\"type\":1,\"nsp\":\"/\"},"
        " {\"type\":1,\"nsp\":\"/admin\"},"
        " {\"type\":2,\"nsp\":\"/\",\"data\":[\"hello\",{\"a\":[1,2.5,\"\xc3\xa9\\n\"]}]},"
        " {\"type\":2,\"nsp\":\"/\",\"id\":0,\"data\":[\"withack\",1]},"
        " {\"type\":2,\"nsp\":\"/admin\",\"id\":12,\"data\":[\"x\",null,true]},"
        " {\"type\":3,\"nsp\":\"/\",\"id\":3,\"data\":[]},"
        " {\"type\":3,\"nsp\":\"/x\",\"id\":0,\"data\":[{\"ok\":1}]},"
        " {\"type\":4,\"nsp\":\"/\",\"data\":{\"message\":\"bad\",\"data\":{\"c\":1}}}]";
    char *ours[16];
    size_t n_ours = 0;
    size_t i;
    json_t *v;
    int status;

    if (!nm)
        skip();
    path_sp = xasprintf("%s/socket.io-parser/package.json", nm);
    path_ep = xasprintf("%s/engine.io-parser/package.json", nm);
    if (access(path_sp, R_OK) < 0 || access(path_ep, R_OK) < 0 || access("/usr/bin/env", X_OK))
        skip();

    ours[n_ours++] = dt_eio_encode_open("eio1", 25000, 20000, 1000000);
    ours[n_ours++] = xstrdup(DT_EIO_PING_MSG);
    ours[n_ours++] = dt_sio_encode_connect_ack(NULL, "sio1");
    ours[n_ours++] = dt_sio_encode_connect_ack("/admin", "sio2");
    ours[n_ours++] = dt_sio_encode_connect_error(NULL, "invalid token", NULL);
    {
        json_t *d = json_pack("{s:s}", "code", "UNAUTHORIZED");
        ours[n_ours++] = dt_sio_encode_connect_error("/admin", "no", d);
        json_decref(d);
    }
    {
        json_t *d = json_pack("{s:{s:s,s:s},s:s,s:s}", "sandbox", "id", "sb-1", "state",
                              "started", "oldState", "creating", "newState", "started");
        ours[n_ours++] = dt_sio_encode_event(NULL, -1, "sandbox.state.updated", d);
        ours[n_ours++] = dt_sio_encode_event("/admin", 4, "sandbox.created", d);
        json_decref(d);
    }
    ours[n_ours++] = dt_sio_encode_ack(NULL, 7, NULL);
    ours[n_ours++] = dt_sio_encode_disconnect(NULL);
    ours[n_ours++] = dt_sio_encode_disconnect("/admin");

    enc = json_loads(encode_json, 0, NULL);
    assert_non_null(enc);
    dec = json_array();
    for (i = 0; i < n_ours; i++)
        json_array_append_new(dec, json_string(ours[i]));
    job = json_pack("{s:O,s:o}", "encode", enc, "decode", dec);
    job_s = json_dumps(job, JSON_COMPACT);
    json_decref(job);

    node_path = xasprintf("NODE_PATH=%s", nm);
    {
        char *argv[] = { (char *) "/usr/bin/env", node_path, (char *) "node", (char *) "-e",
                         (char *) node_script, job_s, NULL };
        status = dt_test_run(argv, &out);
    }
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 127)
        skip(); /* no node */
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Direction 1: what socket.io-parser encodes, we parse to the same packet and re-encode to
     * the same bytes. */
    {
        char *line = out, *nl;
        json_array_foreach(enc, i, v) {
            json_t *js;
            const char *s;
            struct dt_sio_packet p;
            struct dt_error *err = NULL;
            _cleanup_free_ char *re = NULL;
            json_t *id = json_object_get(v, "id"), *data = json_object_get(v, "data");

            nl = strchr(line, '\n');
            assert_non_null(nl);
            *nl = '\0';
            js = json_loads(line, JSON_DECODE_ANY, NULL);
            assert_true(json_is_string(js));
            s = json_string_value(js);
            parse_ok(s, &p);
            assert_int_equal(p.eio_type, DT_EIO_MESSAGE);
            assert_int_equal(p.sio_type, json_integer_value(json_object_get(v, "type")));
            assert_string_equal(p.nsp, json_string_value(json_object_get(v, "nsp")));
            assert_int_equal(p.ack_id, id ? json_integer_value(id) : -1);
            if (data)
                assert_true(json_equal(p.data, data));
            else
                assert_null(p.data);
            assert_int_equal(dt_sio_encode(&p, &re, NULL, &err), 0);
            assert_string_equal(re, s);
            dt_sio_packet_done(&p);
            json_decref(js);
            line = nl + 1;
        }

        /* Direction 2: what we encode, the JavaScript decoders accept as the intended packet. */
        for (i = 0; i < n_ours; i++) {
            json_t *got;
            struct dt_sio_packet p;

            nl = strchr(line, '\n');
            assert_non_null(nl);
            *nl = '\0';
            got = json_loads(line, 0, NULL);
            assert_non_null(got);
            if (json_object_get(got, "error"))
                fail_msg("socket.io-parser rejects '%s': %s", ours[i],
                         json_string_value(json_object_get(got, "error")));
            parse_ok(ours[i], &p);
            if (p.eio_type != DT_EIO_MESSAGE) {
                static const char *const names[] = { "open",    "close",   "ping", "pong",
                                                     "message", "upgrade", "noop" };
                assert_string_equal(json_string_value(json_object_get(got, "eio")),
                                    names[p.eio_type]);
            } else {
                json_t *sio = json_object_get(got, "sio");
                json_t *id = json_object_get(sio, "id");
                assert_string_equal(json_string_value(json_object_get(got, "eio")), "message");
                assert_non_null(sio);
                assert_int_equal(json_integer_value(json_object_get(sio, "type")), p.sio_type);
                assert_string_equal(json_string_value(json_object_get(sio, "nsp")), p.nsp);
                assert_int_equal(id ? json_integer_value(id) : -1, p.ack_id);
                if (p.data)
                    assert_true(json_equal(json_object_get(sio, "data"), p.data));
                else
                    assert_null(json_object_get(sio, "data"));
            }
            dt_sio_packet_done(&p);
            json_decref(got);
            line = nl + 1;
        }
        assert_string_equal(line, "");
    }

    for (i = 0; i < n_ours; i++)
        free(ours[i]);
    json_decref(enc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdk_connect),    cmocka_unit_test(test_appendix_a),
        cmocka_unit_test(test_engine_types),   cmocka_unit_test(test_socketio_types),
        cmocka_unit_test(test_encoders),       cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_generate_id),
        cmocka_unit_test(test_node_interop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
