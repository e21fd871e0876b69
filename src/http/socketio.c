/* SPDX-License-Identifier: Apache-2.0 */
/* Socket.IO over Engine.IO v4 codec (WebSocket transport only): the strict parser for what
 * socket.io-client sends and the encoders for what daytonad sends on /api/socket.io/. Pure
 * string work on top of jansson; the WebSocket server around it lives elsewhere. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>

#include "dt/macros.h"
#include "dt/sha1.h"
#include "dt/socketio.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* Event names socket.io-parser refuses in an EVENT: a packet carrying one makes the client's
 * decoder throw and drop the connection, so we neither accept nor produce them. */
static const char *const reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

static const char *const sio_type_names[] = {
    "CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK",
};

/* "/" followed by printable ASCII other than ','; LEN bytes, ',' not included. Namespaces are
 * compared byte for byte by the server, so we keep them to unambiguous characters. */
static bool
nsp_valid(const char *s, size_t len)
{
    if (len < 1 || len > DT_SIO_MAX_NSP || s[0] != '/')
        return false;
    for (size_t i = 1; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return false;
    return true;
}

/* Nesting depth of JSON text, counted before jansson sees it: jansson's own limit (2048 levels,
 * fixed at build time) is far above what we want a peer to make us allocate and recurse into.
 * Brackets inside strings do not count; malformed text is left for jansson to reject. */
static bool
json_text_depth_ok(const char *s, size_t len)
{
    bool in_str = false, esc = false;
    size_t depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > DT_SIO_MAX_JSON_DEPTH)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

/* The same limit on a json_t we are asked to encode; stops descending past the limit, so a
 * (forbidden, but constructible) cyclic value cannot make it loop. */
static bool
json_value_depth_ok(json_t *j, size_t depth)
{
    if (!json_is_object(j) && !json_is_array(j))
        return true;
    if (depth + 1 > DT_SIO_MAX_JSON_DEPTH)
        return false;
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            if (!json_value_depth_ok(v, depth + 1))
                return false;
        }
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (!json_value_depth_ok(v, depth + 1))
                return false;
        }
    }
    return true;
}

/* The payload rules of socket.io-parser's isPayloadValid(), plus: EVENT and CONNECT_ERROR
 * need a payload, ACK needs an id, and ids appear only on EVENT and ACK. */
static int
check_message(enum dt_sio_type type, int64_t ack_id, json_t *data, struct dt_error **err)
{
    const char *name = sio_type_names[type];

    if (ack_id >= 0 && type != DT_SIO_EVENT && type != DT_SIO_ACK)
        return dt_error_set(err, EINVAL, "socket.io %s packet must not carry an ack id", name);
    if (ack_id > DT_SIO_MAX_ACK_ID)
        return dt_error_set(err, EINVAL, "socket.io ack id is larger than %lld",
                            DT_SIO_MAX_ACK_ID);

    switch (type) {
    case DT_SIO_CONNECT:
        if (data && !json_is_object(data))
            return dt_error_set(err, EINVAL, "socket.io CONNECT payload is not a JSON object");
        return 0;
    case DT_SIO_DISCONNECT:
        if (data)
            return dt_error_set(err, EINVAL, "socket.io DISCONNECT packet must have no payload");
        return 0;
    case DT_SIO_EVENT: {
        json_t *first = json_array_get(data, 0);
        if (!json_is_array(data) || !first)
            return dt_error_set(err, EINVAL,
                                "socket.io EVENT payload is not a non-empty JSON array");
        if (json_is_number(first))
            return 0;
        if (!json_is_string(first))
            return dt_error_set(err, EINVAL, "socket.io EVENT name is not a string or number");
        for (size_t i = 0; i < ELEMENTSOF(reserved_events); i++)
            if (strcmp(json_string_value(first), reserved_events[i]) == 0)
                return dt_error_set(err, EINVAL, "socket.io EVENT uses reserved name '%s'",
                                    reserved_events[i]);
        return 0;
    }
    case DT_SIO_ACK:
        if (ack_id < 0)
            return dt_error_set(err, EINVAL, "socket.io ACK packet has no ack id");
        if (!json_is_array(data))
            return dt_error_set(err, EINVAL, "socket.io ACK payload is not a JSON array");
        return 0;
    case DT_SIO_CONNECT_ERROR:
        if (!json_is_object(data) && !json_is_string(data))
            return dt_error_set(err, EINVAL,
                                "socket.io CONNECT_ERROR payload is not a JSON object or string");
        return 0;
    case DT_SIO_BINARY_EVENT:
    case DT_SIO_BINARY_ACK:
        break;
    }
    return dt_error_set(err, EOPNOTSUPP, "socket.io %s packets are not supported", name);
}

void
dt_sio_packet_done(struct dt_sio_packet *p)
{
    if (!p)
        return;
    json_decref(p->data);
    p->data = NULL;
}

static int
parse_message(const char *msg, size_t len, struct dt_sio_packet *p, struct dt_error **err)
{
    size_t i = 2;
    json_t *data = NULL;
    json_error_t jerr;
    int r;

    if (len < 2)
        return dt_error_set(err, EINVAL, "engine.io message carries no socket.io packet");
    if (msg[1] == '5' || msg[1] == '6')
        /* "5N-..." / "6N-...": the N attachments would follow as binary frames. */
        return dt_error_set(err, EOPNOTSUPP, "socket.io %s packets are not supported",
                            sio_type_names[msg[1] - '0']);
    if (msg[1] < '0' || msg[1] > '4')
        return dt_error_set(err, EINVAL, "unknown socket.io packet type 0x%02x",
                            (unsigned char) msg[1]);
    p->sio_type = msg[1] - '0';

    /* socket.io-parser also takes a namespace that runs to the end of the message; its
     * encoder always writes the ',' and so do we, so anything else is a broken peer. */
    if (i < len && msg[i] == '/') {
        const char *comma = memchr(msg + i, ',', len - i);
        size_t n;

        if (!comma)
            return dt_error_set(err, EINVAL, "socket.io namespace is not followed by ','");
        n = comma - (msg + i);
        if (!nsp_valid(msg + i, n))
            return dt_error_set(err, EINVAL,
                                "socket.io namespace is longer than %d bytes or has a byte "
                                "other than printable ASCII",
                                DT_SIO_MAX_NSP);
        memcpy(p->nsp, msg + i, n);
        p->nsp[n] = '\0';
        i += n + 1;
    }

    if (i < len && msg[i] >= '0' && msg[i] <= '9') {
        int64_t id = 0;

        if (msg[i] == '0' && i + 1 < len && msg[i + 1] >= '0' && msg[i + 1] <= '9')
            return dt_error_set(err, EINVAL, "socket.io ack id has a leading zero");
        for (; i < len && msg[i] >= '0' && msg[i] <= '9'; i++) {
            id = id * 10 + (msg[i] - '0');
            if (id > DT_SIO_MAX_ACK_ID)
                return dt_error_set(err, EINVAL, "socket.io ack id is larger than %lld",
                                    DT_SIO_MAX_ACK_ID);
        }
        p->ack_id = id;
    }

    if (i < len) {
        /* JSON.parse and jansson both skip leading whitespace; socket.io-parser would read a
         * space as part of an ack id. Require the value to start right after the header. */
        if (msg[i] != '{' && msg[i] != '[' && msg[i] != '"')
            return dt_error_set(err, EINVAL, "unexpected byte 0x%02x at offset %zu of socket.io "
                                "packet", (unsigned char) msg[i], i);
        if (!json_text_depth_ok(msg + i, len - i))
            return dt_error_set(err, EINVAL, "socket.io payload nests deeper than %d levels",
                                DT_SIO_MAX_JSON_DEPTH);
        data = json_loadb(msg + i, len - i, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!data)
            /* jerr.text quotes the input ("near '...'"), which may be an auth token: give
             * only the position. */
            return dt_error_set(err, EINVAL, "socket.io payload is not valid JSON (at byte %d)",
                                jerr.position);
        p->raw = msg + i;
        p->raw_len = len - i;
    }

    r = check_message(p->sio_type, p->ack_id, data, err);
    if (r < 0) {
        json_decref(data);
        return r;
    }
    p->data = data;
    return 0;
}

int
dt_sio_parse(const char *msg, size_t len, struct dt_sio_packet *ret, struct dt_error **err)
{
    struct dt_sio_packet p = {
        .eio_type = DT_EIO_MESSAGE,
        .sio_type = DT_SIO_CONNECT,
        .nsp = "/",
        .ack_id = -1,
    };
    int r;

    DT_ASSERT(ret);
    *ret = p;

    if (len > DT_EIO_MAX_PAYLOAD)
        return dt_error_set(err, EMSGSIZE, "engine.io packet of %zu bytes exceeds %d", len,
                            DT_EIO_MAX_PAYLOAD);
    if (len == 0)
        return dt_error_set(err, EINVAL, "empty engine.io packet");
    if (msg[0] == 'b')
        return dt_error_set(err, EINVAL,
                            "base64 engine.io packet ('b'), which only HTTP long-polling uses");
    if (msg[0] < '0' || msg[0] > '6')
        return dt_error_set(err, EINVAL, "unknown engine.io packet type 0x%02x",
                            (unsigned char) msg[0]);
    if (memchr(msg, '\0', len))
        return dt_error_set(err, EINVAL, "engine.io packet contains a NUL byte");
    p.eio_type = msg[0] - '0';

    if (p.eio_type != DT_EIO_MESSAGE) {
        if (len > 1) {
            p.raw = msg + 1;
            p.raw_len = len - 1;
        }
        *ret = p;
        return 0;
    }

    r = parse_message(msg, len, &p, err);
    if (r < 0)
        return r;
    *ret = p;
    return 0;
}

int
dt_sio_encode(const struct dt_sio_packet *p, char **ret, size_t *ret_len, struct dt_error **err)
{
    /* "4" + type + nsp + "," + up to 19 digits + NUL */
    char head[2 + DT_SIO_MAX_NSP + 1 + DECIMAL_STR_MAX(int64_t)];
    size_t hlen = 0, dlen = 0, total;
    _cleanup_free_ char *json = NULL;
    char *out;
    int r;

    DT_ASSERT(p && ret);

    if ((unsigned) p->eio_type > DT_EIO_NOOP)
        return dt_error_set(err, EINVAL, "unknown engine.io packet type %d", (int) p->eio_type);

    if (p->eio_type != DT_EIO_MESSAGE) {
        if (p->raw_len > 0 && memchr(p->raw, '\0', p->raw_len))
            return dt_error_set(err, EINVAL, "engine.io packet data contains a NUL byte");
        if (p->raw_len + 1 > DT_EIO_MAX_PAYLOAD)
            return dt_error_set(err, EMSGSIZE, "engine.io packet of %zu bytes exceeds %d",
                                p->raw_len + 1, DT_EIO_MAX_PAYLOAD);
        out = xmalloc(p->raw_len + 2);
        out[0] = '0' + p->eio_type;
        if (p->raw_len > 0)
            memcpy(out + 1, p->raw, p->raw_len);
        out[p->raw_len + 1] = '\0';
        if (ret_len)
            *ret_len = p->raw_len + 1;
        *ret = out;
        return 0;
    }

    if ((unsigned) p->sio_type > DT_SIO_BINARY_ACK)
        return dt_error_set(err, EINVAL, "unknown socket.io packet type %d", (int) p->sio_type);
    r = check_message(p->sio_type, p->ack_id, p->data, err);
    if (r < 0)
        return r;
    if (p->data && !json_value_depth_ok(p->data, 0))
        return dt_error_set(err, EINVAL, "socket.io payload nests deeper than %d levels",
                            DT_SIO_MAX_JSON_DEPTH);

    head[hlen++] = '4';
    head[hlen++] = '0' + p->sio_type;
    if (strcmp(p->nsp, "/") != 0) {
        size_t n = strnlen(p->nsp, sizeof(p->nsp));
        if (!nsp_valid(p->nsp, n))
            return dt_error_set(err, EINVAL, "invalid socket.io namespace");
        memcpy(head + hlen, p->nsp, n);
        hlen += n;
        head[hlen++] = ',';
    }
    if (p->ack_id >= 0)
        hlen += snprintf(head + hlen, sizeof(head) - hlen, "%" PRId64, p->ack_id);

    if (p->data) {
        json = json_dumps(p->data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                                           JSON_REAL_PRECISION(17));
        if (!json)
            return dt_error_set(err, EINVAL, "socket.io payload cannot be encoded as JSON");
        dlen = strlen(json);
    }

    total = hlen + dlen;
    if (total > DT_EIO_MAX_PAYLOAD)
        return dt_error_set(err, EMSGSIZE, "engine.io packet of %zu bytes exceeds %d", total,
                            DT_EIO_MAX_PAYLOAD);
    out = xmalloc(total + 1);
    memcpy(out, head, hlen);
    if (dlen > 0)
        memcpy(out + hlen, json, dlen);
    out[total] = '\0';
    if (ret_len)
        *ret_len = total;
    *ret = out;
    return 0;
}

/* Encode a MESSAGE built from the server's own values; any failure is a caller bug. */
static char *
encode_own(const char *nsp, enum dt_sio_type type, int64_t ack_id, json_t *data)
{
    struct dt_sio_packet p = {
        .eio_type = DT_EIO_MESSAGE,
        .sio_type = type,
        .nsp = "/",
        .ack_id = ack_id,
        .data = data,
    };
    char *out = NULL;
    int r;

    if (nsp) {
        size_t n = strlen(nsp);
        DT_ASSERT(nsp_valid(nsp, n));
        memcpy(p.nsp, nsp, n + 1);
    }
    r = dt_sio_encode(&p, &out, NULL, NULL);
    DT_ASSERT(r == 0);
    return out;
}

char *
dt_eio_encode_open(const char *sid, uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                   uint64_t max_payload)
{
    json_t *o = json_object();
    char *json, *out;
    size_t n;

    DT_ASSERT(o && sid);
    /* The key order is socket.io's; clients do not care, but byte-exact output is testable.
     * Engine.IO over WebSocket-only offers no upgrades. */
    DT_ASSERT(json_object_set_new(o, "sid", json_string(sid)) == 0);
    DT_ASSERT(json_object_set_new(o, "upgrades", json_array()) == 0);
    DT_ASSERT(json_object_set_new(o, "pingInterval", json_integer(ping_interval_ms)) == 0);
    DT_ASSERT(json_object_set_new(o, "pingTimeout", json_integer(ping_timeout_ms)) == 0);
    DT_ASSERT(json_object_set_new(o, "maxPayload", json_integer((json_int_t) max_payload)) == 0);
    json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    DT_ASSERT(json);

    n = strlen(json);
    out = xmalloc(n + 2);
    out[0] = '0';
    memcpy(out + 1, json, n + 1);
    free(json);
    return out;
}

char *
dt_sio_encode_connect_ack(const char *nsp, const char *sid)
{
    json_t *o = json_object();
    char *out;

    DT_ASSERT(o && sid);
    DT_ASSERT(json_object_set_new(o, "sid", json_string(sid)) == 0);
    out = encode_own(nsp, DT_SIO_CONNECT, -1, o);
    json_decref(o);
    return out;
}

char *
dt_sio_encode_connect_error(const char *nsp, const char *message, json_t *data)
{
    json_t *o = json_object();
    char *out;

    DT_ASSERT(o && message);
    DT_ASSERT(json_object_set_new(o, "message", json_string(message)) == 0);
    if (data)
        DT_ASSERT(json_object_set(o, "data", data) == 0);
    out = encode_own(nsp, DT_SIO_CONNECT_ERROR, -1, o);
    json_decref(o);
    return out;
}

char *
dt_sio_encode_event(const char *nsp, int64_t ack_id, const char *name, json_t *payload)
{
    json_t *a = json_array();
    char *out;

    DT_ASSERT(a && name);
    DT_ASSERT(json_array_append_new(a, json_string(name)) == 0);
    if (payload)
        DT_ASSERT(json_array_append(a, payload) == 0);
    out = encode_own(nsp, DT_SIO_EVENT, ack_id < 0 ? -1 : ack_id, a);
    json_decref(a);
    return out;
}

char *
dt_sio_encode_ack(const char *nsp, int64_t ack_id, json_t *args)
{
    json_t *empty = NULL;
    char *out;

    DT_ASSERT(ack_id >= 0);
    if (!args)
        args = empty = json_array();
    out = encode_own(nsp, DT_SIO_ACK, ack_id, args);
    json_decref(empty);
    return out;
}

char *
dt_sio_encode_disconnect(const char *nsp)
{
    return encode_own(nsp, DT_SIO_DISCONNECT, -1, NULL);
}

int
dt_sio_generate_id(char out[DT_SIO_ID_LEN + 1])
{
    uint8_t raw[16];
    char b64[DT_BASE64_LEN(16) + 1];
    ssize_t got;

    /* 16 bytes is below getrandom()'s 256-byte atomic limit: never a short read. */
    do
        got = getrandom(raw, sizeof(raw), 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    if ((size_t) got != sizeof(raw))
        return -EIO;

    (void) dt_base64_encode(raw, sizeof(raw), b64);
    /* base64url (RFC 4648 section 5) without padding: safe in URLs and JSON as is. */
    for (size_t i = 0; i < DT_SIO_ID_LEN; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[DT_SIO_ID_LEN] = '\0';
    return 0;
}
