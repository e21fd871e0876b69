/* SPDX-License-Identifier: Apache-2.0 */
/* Socket.IO (protocol 5) over Engine.IO v4 codec, WebSocket transport only: parse one WebSocket
 * text message into a packet and encode the packets daytonad sends (OPEN, ping, CONNECT ack,
 * CONNECT_ERROR, EVENT, ACK, DISCONNECT). No sockets and no event loop; see the wire contract
 * section 2.9. Everything here may be called from a libuv callback; only dt_sio_generate_id()
 * reads getrandom(). JSON values are jansson's json_t. */
#ifndef DT_SOCKETIO_H
#define DT_SOCKETIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

/* Engine.IO packet types: the first byte of every WebSocket text message. Over WebSocket each
 * Engine.IO packet is exactly one message; the 0x1e record separator and the 'b' (base64 binary)
 * prefix exist only on HTTP long-polling and are rejected here. In v4 the server sends PING and
 * the client answers PONG. */
enum dt_eio_type {
    DT_EIO_OPEN = 0,
    DT_EIO_CLOSE = 1,
    DT_EIO_PING = 2,
    DT_EIO_PONG = 3,
    DT_EIO_MESSAGE = 4,
    DT_EIO_UPGRADE = 5,
    DT_EIO_NOOP = 6,
};

/* Socket.IO packet types: the byte after an Engine.IO MESSAGE's '4'. */
enum dt_sio_type {
    DT_SIO_CONNECT = 0,
    DT_SIO_DISCONNECT = 1,
    DT_SIO_EVENT = 2,
    DT_SIO_ACK = 3,
    DT_SIO_CONNECT_ERROR = 4,
    DT_SIO_BINARY_EVENT = 5, /* never accepted: the SDK sends no binary (see dt_sio_parse) */
    DT_SIO_BINARY_ACK = 6,
};

/* Hard limits on what a peer controls. */
#define DT_EIO_MAX_PAYLOAD   1000000 /* bytes per message; advertise the same as maxPayload */
#define DT_SIO_MAX_NSP       255     /* namespace length in bytes, leading '/' included */
#define DT_SIO_MAX_ACK_ID    2147483647LL /* socket.io-client counts acks up from 0 */
#define DT_SIO_MAX_JSON_DEPTH 32     /* nesting of arrays/objects in a payload */

/* Default timings (the values socket.io's server uses). Keep interval + timeout below 2^31 ms:
 * the client adds them and hands the sum to setTimeout(). */
#define DT_EIO_PING_INTERVAL_MS 25000
#define DT_EIO_PING_TIMEOUT_MS  20000

/* Messages that need no encoder: the server's heartbeat and the client's answer. */
#define DT_EIO_PING_MSG "2"
#define DT_EIO_PONG_MSG "3"

/* Engine.IO and Socket.IO ids (sid): unpadded base64url of 16 random bytes. */
#define DT_SIO_ID_LEN 22

/* One parsed message. Fill with dt_sio_parse() or by hand for dt_sio_encode(); release what
 * dt_sio_parse() filled with dt_sio_packet_done(). */
struct dt_sio_packet {
    enum dt_eio_type eio_type;

    /* The bytes after the header: for Engine.IO types other than MESSAGE everything after the
     * type byte ("probe" in "2probe", the JSON of OPEN), for MESSAGE the JSON payload text.
     * Borrowed: points into the buffer given to dt_sio_parse() (NULL/0 when empty); not
     * NUL-terminated. dt_sio_encode() reads it only for non-MESSAGE types. */
    const char *raw;
    size_t raw_len;

    /* The rest applies to MESSAGE only. */
    enum dt_sio_type sio_type;
    char nsp[DT_SIO_MAX_NSP + 1]; /* "/" unless the packet names one; NUL-terminated */
    int64_t ack_id;               /* -1 when absent */
    json_t *data;                 /* owned reference; NULL when the packet has no payload */
};

/* Parse one WebSocket text message MSG of LEN bytes (need not be NUL-terminated) into *RET,
 * which is overwritten (not freed first). On success *RET holds a new reference in ->data and
 * borrowed pointers into MSG in ->raw; release with dt_sio_packet_done().
 *
 * Validation is strict, stricter than socket.io-parser where no real client needs the slack:
 * - the Engine.IO type is one byte '0'..'6' ('b' base64 binary and 0x1e batches are polling
 *   only); the data of non-MESSAGE types may be anything without a NUL byte;
 * - MESSAGE: Socket.IO type '0'..'4'; '5'/'6' (binary packets with an "N-" attachment count)
 *   fail with -EOPNOTSUPP, since over WebSocket their attachments are separate binary frames
 *   that this codec does not reassemble and the SDK never sends them;
 * - a namespace starts with '/', is followed by ',' (",", not the end of the message, even
 *   when nothing follows it), is at most DT_SIO_MAX_NSP bytes of printable ASCII without ',';
 * - an ack id is decimal digits without a leading zero, at most DT_SIO_MAX_ACK_ID, and only on
 *   EVENT and ACK (where ACK requires one);
 * - the payload is JSON (no duplicate keys, no NUL, nesting at most DT_SIO_MAX_JSON_DEPTH)
 *   whose shape fits the type: CONNECT an optional object; DISCONNECT none; EVENT a non-empty
 *   array whose first element is a number or a string other than the reserved names
 *   ("connect", "connect_error", "disconnect", "disconnecting", "newListener",
 *   "removeListener"); ACK an array; CONNECT_ERROR an object or a string.
 * Returns 0; -EMSGSIZE when LEN > DT_EIO_MAX_PAYLOAD; -EOPNOTSUPP for binary packets; -EINVAL
 * for anything else, with *ERR saying what was wrong (never echoing payload bytes). On failure
 * *RET holds nothing that needs releasing. */
int dt_sio_parse(const char *msg, size_t len, struct dt_sio_packet *ret, struct dt_error **err);

/* Drop the reference in P->data; accepts NULL and a packet that holds nothing. */
void dt_sio_packet_done(struct dt_sio_packet *p);

/* Encode P into one WebSocket text message: for MESSAGE "4" + type + ["/nsp,"] + [ack id] +
 * [compact JSON of P->data]; otherwise the type digit + P->raw. Applies the same rules as
 * dt_sio_parse() (binary types, namespace, ack id, payload shape), so whatever it produces
 * parses back to an equal packet. On success *RET is a new NUL-terminated string (free()),
 * *RET_LEN (may be NULL) its length; returns 0, or -EINVAL / -EOPNOTSUPP / -EMSGSIZE with *ERR
 * set. JSON is written as JSON.stringify would, except that reals use up to 17 significant
 * digits. */
int dt_sio_encode(const struct dt_sio_packet *p, char **ret, size_t *ret_len,
                  struct dt_error **err);

/* The helpers below encode what the server sends. Their arguments are the server's own values;
 * invalid ones (a namespace dt_sio_parse() would reject, a reserved event name) are a bug and
 * trip DT_ASSERT. NSP NULL means "/". Each returns a new NUL-terminated string (free()). */

/* Engine.IO OPEN, the first message on the WebSocket:
 * 0{"sid":SID,"upgrades":[],"pingInterval":N,"pingTimeout":N,"maxPayload":N}. */
char *dt_eio_encode_open(const char *sid, uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                         uint64_t max_payload);

/* CONNECT ack: 40{"sid":SID} or 40/nsp,{"sid":SID}. socket.io-client treats an ack without
 * sid as a v2 server and fails the connect. */
char *dt_sio_encode_connect_ack(const char *nsp, const char *sid);

/* CONNECT_ERROR: 44{"message":MESSAGE} or 44{"message":MESSAGE,"data":DATA}; DATA borrowed, may
 * be NULL. The client emits connect_error with err.message = MESSAGE and err.data = DATA and
 * stops (it does not reconnect after a server refusal). */
char *dt_sio_encode_connect_error(const char *nsp, const char *message, json_t *data);

/* EVENT: 42["NAME",PAYLOAD] (42["NAME"] when PAYLOAD is NULL), with "/nsp," when NSP is not "/"
 * and the ack id when ACK_ID >= 0. PAYLOAD borrowed. */
char *dt_sio_encode_event(const char *nsp, int64_t ack_id, const char *name, json_t *payload);

/* ACK: 43<id>ARGS where ARGS is a JSON array (borrowed; NULL means []). */
char *dt_sio_encode_ack(const char *nsp, int64_t ack_id, json_t *args);

/* DISCONNECT: 41 or 41/nsp,. Note (contract 2.9): socket.io-client reconnects at once after a
 * server-side disconnect, so send it only when closing the WebSocket too. */
char *dt_sio_encode_disconnect(const char *nsp);

/* Write a fresh id (unpadded base64url of 16 getrandom() bytes, DT_SIO_ID_LEN chars + NUL) to
 * OUT, for the Engine.IO sid and the Socket.IO socket id. Returns 0 or -errno from getrandom(). */
int dt_sio_generate_id(char out[DT_SIO_ID_LEN + 1]);

#endif
