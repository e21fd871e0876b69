/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket (RFC 6455) codec: upgrade-handshake checks, an incremental frame parser that hands
 * out payload pieces straight from the caller's buffer (unmasked in place) so that proxied binary
 * streams are never buffered, and a frame encoder. No I/O; see include/dt/ws.h for the API. */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "dt/sha1.h"
#include "dt/ws.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_HEADER, ST_PAYLOAD, ST_CLOSED };

/* ---- UTF-8 ---- */

/* Incremental validator. The state packs the number of continuation bytes still expected and
 * the allowed range of the next one; the ranges after E0, ED, F0 and F4 are what exclude
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF (RFC 3629 section 4), and
 * checking them on the first continuation byte makes the parser fail as early as the RFC asks. */
#define U8_STATE(need, lo, hi) ((uint32_t) (need) | (uint32_t) (lo) << 8 | (uint32_t) (hi) << 16)

static bool
utf8_feed(uint32_t *state, const uint8_t *d, size_t n)
{
    uint32_t st = *state;

    for (size_t i = 0; i < n; i++) {
        uint8_t b = d[i];

        if (st == 0) {
            if (b < 0x80)
                continue;
            if (b >= 0xC2 && b <= 0xDF)
                st = U8_STATE(1, 0x80, 0xBF);
            else if (b == 0xE0)
                st = U8_STATE(2, 0xA0, 0xBF);
            else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
                st = U8_STATE(2, 0x80, 0xBF);
            else if (b == 0xED)
                st = U8_STATE(2, 0x80, 0x9F);
            else if (b == 0xF0)
                st = U8_STATE(3, 0x90, 0xBF);
            else if (b >= 0xF1 && b <= 0xF3)
                st = U8_STATE(3, 0x80, 0xBF);
            else if (b == 0xF4)
                st = U8_STATE(3, 0x80, 0x8F);
            else
                return false;
        } else {
            uint8_t need = st & 0xff, lo = (st >> 8) & 0xff, hi = (st >> 16) & 0xff;

            if (b < lo || b > hi)
                return false;
            need--;
            st = need == 0 ? 0 : U8_STATE(need, 0x80, 0xBF);
        }
    }
    *state = st;
    return true;
}

bool
dt_ws_utf8_valid(const uint8_t *data, size_t len)
{
    uint32_t st = 0;

    return utf8_feed(&st, data, len) && st == 0;
}

/* ---- Handshake ---- */

static void
trim_ows(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool
name_is(const struct dt_ws_header *h, const char *name)
{
    size_t n = strlen(name);

    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Take the next element of the comma-separated list *V (*LEFT bytes); *T and *TL get it, optional
 * whitespace trimmed. Returns false when the list is exhausted. */
static bool
next_list_item(const char **v, size_t *left, const char **t, size_t *tl)
{
    if (*left == 0)
        return false;
    const char *comma = memchr(*v, ',', *left);
    size_t len = comma ? (size_t) (comma - *v) : *left;

    *t = *v;
    *tl = len;
    trim_ows(t, tl);
    *v += len;
    *left -= len;
    if (*left > 0) {
        (*v)++;
        (*left)--;
    }
    return true;
}

/* Whether any header called NAME has TOKEN in its comma-separated value. */
static bool
list_has_token(const struct dt_ws_header *h, size_t n, const char *name, const char *token,
               bool icase)
{
    size_t tlen = strlen(token);

    for (size_t i = 0; i < n; i++) {
        const char *v = h[i].value, *t;
        size_t left = h[i].value_len, tl;

        if (!name_is(&h[i], name))
            continue;
        while (next_list_item(&v, &left, &t, &tl))
            if (tl == tlen && (icase ? strncasecmp(t, token, tl) : memcmp(t, token, tl)) == 0)
                return true;
    }
    return false;
}

/* The only header called NAME, trimmed. Returns 1 when found once, 0 when absent, -EINVAL
 * when repeated. */
static int
single_header(const struct dt_ws_header *h, size_t n, const char *name, const char **v,
              size_t *vlen)
{
    int found = 0;

    for (size_t i = 0; i < n; i++) {
        if (!name_is(&h[i], name))
            continue;
        if (found)
            return -EINVAL;
        found = 1;
        *v = h[i].value;
        *vlen = h[i].value_len;
        trim_ows(v, vlen);
    }
    return found;
}

void
dt_ws_accept(const char *key, size_t key_len, char accept[DT_WS_ACCEPT_LEN + 1])
{
    struct dt_sha1 c;
    uint8_t digest[DT_SHA1_LEN];

    dt_sha1_init(&c);
    dt_sha1_update(&c, key, key_len);
    dt_sha1_update(&c, WS_GUID, strlen(WS_GUID));
    dt_sha1_final(&c, digest);
    (void) dt_base64_encode(digest, sizeof(digest), accept);
}

int
dt_ws_server_check_request(const struct dt_ws_header *h, size_t n,
                           char accept[DT_WS_ACCEPT_LEN + 1], struct dt_error **err)
{
    const char *v = NULL;
    size_t vlen = 0;
    uint8_t raw[DT_WS_KEY_LEN];
    int r;

    if (!list_has_token(h, n, "Upgrade", "websocket", /* icase= */ true))
        return dt_error_set(err, EINVAL, "websocket upgrade: missing 'Upgrade: websocket'");
    if (!list_has_token(h, n, "Connection", "upgrade", /* icase= */ true))
        return dt_error_set(err, EINVAL, "websocket upgrade: 'Connection' lacks 'upgrade'");

    r = single_header(h, n, "Sec-WebSocket-Version", &v, &vlen);
    if (r <= 0)
        return dt_error_set(err, EINVAL, "websocket upgrade: %s Sec-WebSocket-Version",
                            r == 0 ? "missing" : "repeated");
    if (vlen != 2 || memcmp(v, "13", 2) != 0)
        return dt_error_set(err, EPROTONOSUPPORT,
                            "websocket upgrade: unsupported Sec-WebSocket-Version '%.*s'",
                            (int) (vlen > 16 ? 16 : vlen), v);

    r = single_header(h, n, "Sec-WebSocket-Key", &v, &vlen);
    if (r <= 0)
        return dt_error_set(err, EINVAL, "websocket upgrade: %s Sec-WebSocket-Key",
                            r == 0 ? "missing" : "repeated");
    /* The key must be exactly base64 of 16 bytes (RFC 6455 section 4.2.1 item 5). */
    if (vlen != DT_WS_KEY_LEN || dt_base64_decode(v, vlen, raw) != 16)
        return dt_error_set(err, EINVAL,
                            "websocket upgrade: Sec-WebSocket-Key is not base64 of 16 bytes");

    dt_ws_accept(v, vlen, accept);
    return 0;
}

const char *
dt_ws_select_protocol(const struct dt_ws_header *h, size_t n, const char *const *supported,
                      size_t n_supported)
{
    /* Walk the client's tokens in order and test each against our list, so that the client's
     * preference wins. */
    for (size_t i = 0; i < n; i++) {
        const char *v = h[i].value, *t;
        size_t left = h[i].value_len, tl;

        if (!name_is(&h[i], "Sec-WebSocket-Protocol"))
            continue;
        while (next_list_item(&v, &left, &t, &tl))
            for (size_t j = 0; j < n_supported; j++)
                if (strlen(supported[j]) == tl && memcmp(supported[j], t, tl) == 0)
                    return supported[j];
    }
    return NULL;
}

static int
random_bytes(void *buf, size_t len)
{
    ssize_t r;

    /* Requests of at most 256 bytes are never short once the pool is ready; retry EINTR. */
    do
        r = getrandom(buf, len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if ((size_t) r != len)
        return -EIO;
    return 0;
}

int
dt_ws_client_key(char key[DT_WS_KEY_LEN + 1])
{
    uint8_t raw[16];
    int r;

    r = random_bytes(raw, sizeof(raw));
    if (r < 0)
        return r;
    (void) dt_base64_encode(raw, sizeof(raw), key);
    return 0;
}

int
dt_ws_client_check_accept(const char *key, const char *value, size_t value_len)
{
    char want[DT_WS_ACCEPT_LEN + 1];

    trim_ows(&value, &value_len);
    dt_ws_accept(key, strlen(key), want);
    if (value_len != DT_WS_ACCEPT_LEN || memcmp(value, want, DT_WS_ACCEPT_LEN) != 0)
        return -EPROTO;
    return 0;
}

int
dt_ws_random_mask(uint8_t mask[4])
{
    return random_bytes(mask, 4);
}

/* ---- Parser ---- */

void
dt_ws_parser_init(struct dt_ws_parser *p, enum dt_ws_role role, uint64_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->role = role;
    p->max_message = max_message;
    p->state = ST_HEADER;
    p->hdr_need = 2;
}

static int
fail(struct dt_ws_parser *p, int r, const char *msg)
{
    p->error = r;
    p->error_msg = msg;
    return r;
}

bool
dt_ws_close_code_valid(uint16_t code)
{
    /* 1004-1006 and 1015 are reserved for local use and must never be sent; 1016-2999 are
     * unassigned in the IANA registry; 3000-4999 belong to libraries and applications. */
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

/* Checks that need only the first two header bytes, done before the extended length arrives so
 * that garbage is rejected at once. */
static int
check_first_bytes(struct dt_ws_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1], op = b0 & 0x0f, len7 = b1 & 0x7f;

    p->fin = b0 & 0x80;
    p->opcode = op;
    p->masked = b1 & 0x80;
    if (b0 & 0x70)
        return fail(p, -EPROTO, "reserved bits set (no extension negotiated)");
    if (op != DT_WS_OP_CONT && op != DT_WS_OP_TEXT && op != DT_WS_OP_BINARY &&
        op != DT_WS_OP_CLOSE && op != DT_WS_OP_PING && op != DT_WS_OP_PONG)
        return fail(p, -EPROTO, "reserved opcode");
    /* RFC 6455 section 5.1: a server must close on an unmasked client frame, and a client on a
     * masked server frame. */
    if (p->role == DT_WS_SERVER && !p->masked)
        return fail(p, -EPROTO, "unmasked frame from client");
    if (p->role == DT_WS_CLIENT && p->masked)
        return fail(p, -EPROTO, "masked frame from server");
    if (op & 0x08) {
        if (!p->fin)
            return fail(p, -EPROTO, "fragmented control frame");
        if (len7 > DT_WS_MAX_CONTROL_PAYLOAD)
            return fail(p, -EPROTO, "control frame payload longer than 125 bytes");
    } else if (op == DT_WS_OP_CONT) {
        if (p->msg_opcode == 0)
            return fail(p, -EPROTO, "continuation frame without a message to continue");
    } else if (p->msg_opcode != 0)
        return fail(p, -EPROTO, "new data frame while a fragmented message is open");
    return 0;
}

static size_t
header_size(const uint8_t *hdr)
{
    uint8_t len7 = hdr[1] & 0x7f;

    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((hdr[1] & 0x80) ? 4 : 0);
}

static void
data_event(struct dt_ws_parser *p, struct dt_ws_event *ev, const uint8_t *d, size_t n)
{
    *ev = (struct dt_ws_event) {
        .type = DT_WS_EV_DATA,
        .opcode = p->msg_opcode,
        .first = p->msg_first,
        .last = p->remaining == 0 && p->fin,
        .data = d,
        .len = n,
    };
    p->msg_first = false;
}

/* The frame's payload is all there: finish the frame, and the message when FIN was set. */
static int
end_data_frame(struct dt_ws_parser *p)
{
    p->state = ST_HEADER;
    p->hdr_have = 0;
    p->hdr_need = 2;
    if (!p->fin)
        return 0;
    if (p->msg_opcode == DT_WS_OP_TEXT && p->utf8 != 0)
        return fail(p, -EILSEQ, "text message ends inside a UTF-8 sequence");
    p->msg_opcode = 0;
    return 0;
}

static int
end_control_frame(struct dt_ws_parser *p, struct dt_ws_event *ev)
{
    *ev = (struct dt_ws_event) {
        .type = DT_WS_EV_CONTROL,
        .opcode = p->opcode,
        .first = true,
        .last = true,
        .data = p->ctrl,
        .len = p->ctrl_len,
    };
    p->state = ST_HEADER;
    p->hdr_have = 0;
    p->hdr_need = 2;
    if (p->opcode != DT_WS_OP_CLOSE)
        return 1;

    /* RFC 6455 section 5.5.1: empty, or a 2-byte code followed by a UTF-8 reason. */
    if (p->ctrl_len == 1)
        return fail(p, -EPROTO, "close frame with a 1-byte payload");
    if (p->ctrl_len == 0) {
        ev->close_code = DT_WS_CLOSE_NO_STATUS;
    } else {
        ev->close_code = (uint16_t) (p->ctrl[0] << 8 | p->ctrl[1]);
        if (!dt_ws_close_code_valid(ev->close_code))
            return fail(p, -EPROTO, "invalid close code");
        if (!dt_ws_utf8_valid(p->ctrl + 2, p->ctrl_len - 2))
            return fail(p, -EILSEQ, "close reason is not valid UTF-8");
        ev->data = p->ctrl + 2;
        ev->len = p->ctrl_len - 2;
    }
    p->state = ST_CLOSED;
    return 1;
}

/* The whole header is in p->hdr. Returns 1 with *ev set for an empty frame worth reporting. */
static int
header_complete(struct dt_ws_parser *p, struct dt_ws_event *ev)
{
    uint8_t len7 = p->hdr[1] & 0x7f;
    size_t pos = 2;
    uint64_t len = len7;

    /* RFC 6455 section 5.2: "the minimal number of bytes MUST be used to encode the length",
     * and the 64-bit form has its most significant bit clear. */
    if (len7 == 126) {
        len = (uint64_t) p->hdr[2] << 8 | p->hdr[3];
        pos = 4;
        if (len < 126)
            return fail(p, -EPROTO, "non-minimal 16-bit payload length");
    } else if (len7 == 127) {
        len = 0;
        for (unsigned i = 0; i < 8; i++)
            len = len << 8 | p->hdr[2 + i];
        pos = 10;
        if (len >> 63)
            return fail(p, -EPROTO, "64-bit payload length with the top bit set");
        if (len <= 0xffff)
            return fail(p, -EPROTO, "non-minimal 64-bit payload length");
    }
    if (p->masked)
        memcpy(p->mask, p->hdr + pos, 4);
    p->remaining = len;
    p->mask_pos = 0;
    p->state = ST_PAYLOAD;

    if (p->opcode & 0x08) {
        p->ctrl_len = 0;
        if (len == 0)
            return end_control_frame(p, ev);
        return 0;
    }

    if (p->opcode != DT_WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->msg_first = true;
        p->msg_size = 0;
        p->utf8 = 0;
    }
    if (len > p->max_message - p->msg_size)
        return fail(p, -EMSGSIZE, "message too big");
    p->msg_size += len;
    if (len > 0)
        return 0;

    /* An empty frame: report it only when it opens or closes a message, so that every message
     * yields at least one event with first and one with last. */
    bool report = p->msg_first || p->fin;
    if (report)
        data_event(p, ev, NULL, 0);
    int r = end_data_frame(p);
    if (r < 0)
        return r;
    return report;
}

int
dt_ws_parse(struct dt_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
            struct dt_ws_event *ev)
{
    size_t off = 0;
    int r;

    *consumed = 0;
    if (p->error)
        return p->error;

    for (;;) {
        if (p->state == ST_CLOSED) {
            *consumed = len;
            return 0;
        }

        if (p->state == ST_HEADER) {
            while (p->hdr_have < p->hdr_need && off < len)
                p->hdr[p->hdr_have++] = buf[off++];
            *consumed = off;
            if (p->hdr_have < p->hdr_need)
                return 0;
            if (p->hdr_need == 2) {
                r = check_first_bytes(p);
                if (r < 0)
                    return r;
                p->hdr_need = header_size(p->hdr);
                if (p->hdr_need > 2)
                    continue;
            }
            r = header_complete(p, ev);
            if (r != 0)
                return r;
            continue;
        }

        /* ST_PAYLOAD */
        size_t avail = len - off;
        size_t take = p->remaining < avail ? (size_t) p->remaining : avail;
        uint8_t *d = buf + off;

        if (take == 0)
            return 0;
        if (p->masked)
            dt_ws_mask(d, take, p->mask, p->mask_pos);
        p->mask_pos += take;
        p->remaining -= take;
        off += take;
        *consumed = off;

        if (p->opcode & 0x08) {
            memcpy(p->ctrl + p->ctrl_len, d, take);
            p->ctrl_len += take;
            if (p->remaining == 0)
                return end_control_frame(p, ev);
            continue;
        }

        /* Validate before handing out, so a consumer never sees bytes of a bad text message
         * beyond the piece that broke it (fail fast, RFC 6455 section 8.1). */
        if (p->msg_opcode == DT_WS_OP_TEXT && !utf8_feed(&p->utf8, d, take))
            return fail(p, -EILSEQ, "invalid UTF-8 in text message");
        data_event(p, ev, d, take);
        if (p->remaining == 0) {
            r = end_data_frame(p);
            if (r < 0)
                return r;
        }
        return 1;
    }
}

const char *
dt_ws_parser_error(const struct dt_ws_parser *p)
{
    return p->error ? p->error_msg : NULL;
}

uint16_t
dt_ws_error_close_code(int r)
{
    switch (r) {
    case -EPROTO:
        return DT_WS_CLOSE_PROTOCOL_ERROR;
    case -EILSEQ:
        return DT_WS_CLOSE_INVALID_PAYLOAD;
    case -EMSGSIZE:
        return DT_WS_CLOSE_TOO_BIG;
    default:
        return DT_WS_CLOSE_INTERNAL_ERROR;
    }
}

/* ---- Whole-message helper ---- */

int
dt_ws_msgbuf_add(struct dt_ws_msgbuf *b, const struct dt_ws_event *ev)
{
    if (ev->type != DT_WS_EV_DATA)
        return 0;
    if (ev->first) {
        b->len = 0;
        b->opcode = ev->opcode;
    }
    if (b->cap < b->len + ev->len + 1) {
        size_t cap = b->cap ? b->cap : 64;

        while (cap < b->len + ev->len + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (ev->len > 0)
        memcpy(b->data + b->len, ev->data, ev->len);
    b->len += ev->len;
    b->data[b->len] = 0;
    return ev->last ? 1 : 0;
}

void
dt_ws_msgbuf_done(struct dt_ws_msgbuf *b)
{
    free(b->data);
    *b = (struct dt_ws_msgbuf) DT_WS_MSGBUF_INIT;
}

/* ---- Encoder ---- */

size_t
dt_ws_frame_header(uint8_t out[DT_WS_MAX_HEADER], enum dt_ws_opcode opcode, bool fin,
                   uint64_t len, const uint8_t *mask)
{
    size_t n = 2;

    out[0] = (uint8_t) ((fin ? 0x80 : 0) | (opcode & 0x0f));
    out[1] = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t) len;
    } else if (len <= 0xffff) {
        out[1] |= 126;
        out[2] = (uint8_t) (len >> 8);
        out[3] = (uint8_t) len;
        n = 4;
    } else {
        out[1] |= 127;
        for (unsigned i = 0; i < 8; i++)
            out[2 + i] = (uint8_t) (len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void
dt_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

size_t
dt_ws_close_frame(uint8_t out[DT_WS_MAX_CLOSE_FRAME], uint16_t code, const char *reason,
                  size_t reason_len, const uint8_t *mask)
{
    size_t plen = 0, n;

    if (code != 0) {
        /* Cut an overlong reason before a continuation byte so the result stays UTF-8. */
        if (reason_len > DT_WS_MAX_CONTROL_PAYLOAD - 2) {
            reason_len = DT_WS_MAX_CONTROL_PAYLOAD - 2;
            while (reason_len > 0 && ((uint8_t) reason[reason_len] & 0xC0) == 0x80)
                reason_len--;
        }
        plen = 2 + reason_len;
    }
    n = dt_ws_frame_header(out, DT_WS_OP_CLOSE, /* fin= */ true, plen, mask);
    if (code != 0) {
        out[n] = (uint8_t) (code >> 8);
        out[n + 1] = (uint8_t) code;
        if (reason_len > 0)
            memcpy(out + n + 2, reason, reason_len);
        if (mask)
            dt_ws_mask(out + n, plen, mask, 0);
    }
    return n + plen;
}
