/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket (RFC 6455) codec: handshake helpers, an incremental frame parser that streams
 * payload without buffering whole messages, and a frame encoder. No sockets and no event loop:
 * the caller (agent, daytonad proxy/API, client library) owns I/O. No extensions are supported
 * (RSV bits must be zero). Everything here may be called from a libuv callback; nothing blocks
 * except dt_ws_client_key()/dt_ws_random_mask(), which read getrandom() (non-blocking once the
 * kernel pool is initialised). See docs/design/websocket.md. */
#ifndef DT_WS_H
#define DT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

enum dt_ws_opcode {
    DT_WS_OP_CONT = 0x0,
    DT_WS_OP_TEXT = 0x1,
    DT_WS_OP_BINARY = 0x2,
    DT_WS_OP_CLOSE = 0x8,
    DT_WS_OP_PING = 0x9,
    DT_WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1) used by this module. */
enum {
    DT_WS_CLOSE_NORMAL = 1000,
    DT_WS_CLOSE_GOING_AWAY = 1001,
    DT_WS_CLOSE_PROTOCOL_ERROR = 1002,
    DT_WS_CLOSE_UNSUPPORTED = 1003,
    DT_WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    DT_WS_CLOSE_ABNORMAL = 1006,  /* never sent: "connection dropped without a close frame" */
    DT_WS_CLOSE_INVALID_PAYLOAD = 1007,
    DT_WS_CLOSE_POLICY = 1008,
    DT_WS_CLOSE_TOO_BIG = 1009,
    DT_WS_CLOSE_INTERNAL_ERROR = 1011,
};

#define DT_WS_MAX_CONTROL_PAYLOAD 125
#define DT_WS_MAX_HEADER          14 /* 2 + 8 (64-bit length) + 4 (mask key) */
#define DT_WS_KEY_LEN             24 /* base64 of 16 bytes */
#define DT_WS_ACCEPT_LEN          28 /* base64 of a 20-byte SHA-1 */

/* ---- Handshake (RFC 6455 section 4) ---- */

/* One request or response header as the HTTP parser saw it; not NUL-terminated. Header names
 * are compared case-insensitively. A header that appeared several times may be passed several
 * times; list-valued headers (Connection, Upgrade, Sec-WebSocket-Protocol) are then combined. */
struct dt_ws_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Validate the WebSocket headers of a client's upgrade request (the caller checks method GET and
 * HTTP/1.1): Upgrade contains the token "websocket", Connection contains "upgrade", exactly one
 * Sec-WebSocket-Version equal to 13, exactly one Sec-WebSocket-Key that is base64 of 16 bytes.
 * On success writes the Sec-WebSocket-Accept value (NUL-terminated) to ACCEPT and returns 0.
 * Returns -EPROTONOSUPPORT when the version is present but not 13 (reply 426 with
 * "Sec-WebSocket-Version: 13"), -EINVAL for any other problem (reply 400); *err says which. */
int dt_ws_server_check_request(const struct dt_ws_header *h, size_t n,
                               char accept[DT_WS_ACCEPT_LEN + 1], struct dt_error **err);

/* Compute Sec-WebSocket-Accept for KEY (KEY_LEN bytes, surrounding whitespace already trimmed):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). Writes 28 chars + NUL. */
void dt_ws_accept(const char *key, size_t key_len, char accept[DT_WS_ACCEPT_LEN + 1]);

/* Pick a subprotocol: the first token, in the client's order of preference, across all its
 * Sec-WebSocket-Protocol headers, that is in SUPPORTED (N_SUPPORTED entries; compared
 * case-sensitively, as tokens are). Returns a borrowed pointer to the SUPPORTED entry, or NULL
 * when the client offered none we support (then send no Sec-WebSocket-Protocol header). */
const char *dt_ws_select_protocol(const struct dt_ws_header *h, size_t n,
                                  const char *const *supported, size_t n_supported);

/* Client side: generate a fresh Sec-WebSocket-Key (base64 of 16 getrandom() bytes, 24 chars +
 * NUL). Returns 0 or -errno from getrandom(). */
int dt_ws_client_key(char key[DT_WS_KEY_LEN + 1]);

/* Client side: check the server's Sec-WebSocket-Accept value (VALUE_LEN bytes, surrounding
 * whitespace ignored) against the KEY we sent. Returns 0 or -EPROTO. */
int dt_ws_client_check_accept(const char *key, const char *value, size_t value_len);

/* Client side: four getrandom() bytes for masking a frame. Returns 0 or -errno. */
int dt_ws_random_mask(uint8_t mask[4]);

/* ---- Frame parser ---- */

enum dt_ws_role {
    DT_WS_SERVER, /* parses client frames: they must be masked */
    DT_WS_CLIENT, /* parses server frames: they must not be masked */
};

enum dt_ws_event_type {
    /* A piece of a text or binary message. opcode is TEXT or BINARY (never CONT); first is set on
     * the message's first piece and last on its final one. Pieces follow the input (a message
     * may arrive as many pieces, possibly empty ones at fragment boundaries); text is UTF-8
     * validated incrementally, so a piece may end inside a code point. */
    DT_WS_EV_DATA,
    /* A whole ping, pong or close frame (payload <= 125 bytes, already unmasked). For close,
     * close_code is the code (DT_WS_CLOSE_NO_STATUS when the payload was empty) and data/len
     * is the UTF-8 reason. */
    DT_WS_EV_CONTROL,
};

struct dt_ws_event {
    enum dt_ws_event_type type;
    enum dt_ws_opcode opcode;
    bool first, last;
    uint16_t close_code;
    /* Borrowed: points into the caller's input (data pieces, unmasked in place) or into the
     * parser (control frames). Valid until the next call on the parser or until the caller
     * reuses its buffer. */
    const uint8_t *data;
    size_t len;
};

/* Parser state. Plain data, embed it; no allocation, no cleanup. Fields are private. */
struct dt_ws_parser {
    enum dt_ws_role role;
    uint64_t max_message;
    int state;
    int error;               /* sticky -errno once failed */
    const char *error_msg;   /* static string saying why */
    uint8_t hdr[DT_WS_MAX_HEADER];
    size_t hdr_have, hdr_need;
    uint8_t opcode;          /* of the current frame */
    bool fin;
    bool masked;
    uint8_t mask[4];
    uint64_t remaining;      /* payload bytes of the current frame still to come */
    uint64_t mask_pos;       /* payload bytes of the current frame already seen */
    uint8_t msg_opcode;      /* TEXT/BINARY while a message is open, else 0 */
    bool msg_first;          /* no piece of the open message delivered yet */
    uint64_t msg_size;       /* payload bytes of the open message so far */
    uint32_t utf8;           /* incremental UTF-8 validator state */
    uint8_t ctrl[DT_WS_MAX_CONTROL_PAYLOAD];
    size_t ctrl_len;
};

/* Initialise P for ROLE. MAX_MESSAGE bounds the total payload of one data message across its
 * fragments (UINT64_MAX for streaming consumers that never buffer); a message that would exceed
 * it fails with -EMSGSIZE as soon as the frame header announcing it is seen. */
void dt_ws_parser_init(struct dt_ws_parser *p, enum dt_ws_role role, uint64_t max_message);

/* Feed LEN bytes of BUF (modified: masked payload is unmasked in place). Sets *consumed to the
 * number of bytes used; the caller calls again with the rest.
 * Returns 1 when *ev was filled (consumed may be less than len), 0 when all input was consumed
 * and more is needed, or a negative errno on a protocol violation:
 *   -EPROTO    framing error (close code 1002),
 *   -EILSEQ    invalid UTF-8 in a text message or close reason (1007),
 *   -EMSGSIZE  message larger than max_message (1009).
 * Errors are sticky. dt_ws_parser_error() gives a static message; dt_ws_error_close_code() the
 * code to send to the peer. After a close frame has been returned, further input is consumed
 * and ignored (RFC 6455 section 5.5.1: nothing may follow a close frame). */
int dt_ws_parse(struct dt_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                struct dt_ws_event *ev);

/* Static description of the parser's error, or NULL when it has not failed. */
const char *dt_ws_parser_error(const struct dt_ws_parser *p);

/* The close code matching an error returned by dt_ws_parse(): 1002, 1007, 1009, else 1011. */
uint16_t dt_ws_error_close_code(int r);

/* Whether CODE may appear in a close frame on the wire (1000-1003, 1007-1014, 3000-4999). */
bool dt_ws_close_code_valid(uint16_t code);

/* Whether [DATA, DATA+LEN) is complete, valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool dt_ws_utf8_valid(const uint8_t *data, size_t len);

/* ---- Whole-message helper on top of the parser ---- */

/* Collects DT_WS_EV_DATA pieces into one buffer. Zero-initialise (or DT_WS_MSGBUF_INIT); free
 * data with dt_ws_msgbuf_done(). Its size is bounded by the parser's max_message. */
struct dt_ws_msgbuf {
    uint8_t *data; /* owned; NUL-terminated for convenience with text */
    size_t len, cap;
    enum dt_ws_opcode opcode;
};
#define DT_WS_MSGBUF_INIT { NULL, 0, 0, DT_WS_OP_CONT }

/* Append a data event. Returns 1 when EV completed the message (data/len/opcode hold it until
 * the next add, which starts afresh), else 0. Aborts on OOM (xalloc). */
int dt_ws_msgbuf_add(struct dt_ws_msgbuf *b, const struct dt_ws_event *ev);
void dt_ws_msgbuf_done(struct dt_ws_msgbuf *b);

/* ---- Encoder ---- */

/* Write a frame header for OPCODE with FIN and payload length LEN into OUT, masked with MASK
 * (4 bytes; clients must mask) or unmasked when MASK is NULL (servers). Uses the minimal length
 * encoding. Returns the header length (2..14). The caller masks the payload with dt_ws_mask(). */
size_t dt_ws_frame_header(uint8_t out[DT_WS_MAX_HEADER], enum dt_ws_opcode opcode, bool fin,
                          uint64_t len, const uint8_t *mask);

/* XOR LEN bytes of DATA in place with MASK, starting at payload offset OFFSET (so a payload may
 * be masked piecewise). Masking twice unmasks. */
void dt_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Build a whole close frame with CODE and REASON (REASON_LEN bytes, truncated to 123 at a UTF-8
 * boundary) into OUT, masked when MASK is not NULL. CODE 0 means "no code" (empty payload,
 * reason ignored). Returns the frame length (<= DT_WS_MAX_CLOSE_FRAME). */
#define DT_WS_MAX_CLOSE_FRAME (6 + DT_WS_MAX_CONTROL_PAYLOAD)
size_t dt_ws_close_frame(uint8_t out[DT_WS_MAX_CLOSE_FRAME], uint16_t code, const char *reason,
                         size_t reason_len, const uint8_t *mask);

#endif
