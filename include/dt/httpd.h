/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 + WebSocket server on a libuv loop, shared by the in-sandbox agent and daytonad.
 * Built on the dt-http codecs: it owns sockets, buffers, timers and the request/response state
 * machine; handlers see one request at a time per connection (pipelined requests wait their turn)
 * and answer whole (dt_httpd_reply*) or streamed (dt_httpd_start/write/end), now or later.
 * Nothing here blocks or logs. See docs/design/httpd.md.
 *
 * Lifetimes: a request object lives from the handler call until its close callback (set with
 * dt_httpd_req_set_close_cb) has run: after the response has been written and its body read, or
 * when the connection is lost first. After the close callback the pointer is dead; a handler that
 * answers later must keep the pointer only until then. Every function taking a request may be
 * called from any libuv callback of the same loop, including from inside the handler. */
#ifndef DT_HTTPD_H
#define DT_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dt/error.h"
#include "dt/http.h"
#include "dt/ws.h"

struct dt_httpd;
struct dt_httpd_req;
struct dt_httpd_ws;

typedef void (*dt_httpd_handler_fn)(struct dt_httpd_req *req, void *userdata);

struct dt_httpd_config {
    struct dt_http_limits limits; /* parser limits; max_body_size [DT_HTTP_UNLIMITED]: bodies are
                                   * streamed or capped per request by the handler */
    uint64_t idle_timeout_ms;     /* keep-alive idle connection [75 s]: the SDK reuses sockets
                                   * after 5 s idle, so this must be well above that */
    uint64_t head_timeout_ms;     /* a started request head must be complete within [30 s] */
    unsigned max_connections;     /* further connections are closed at once [4096] */
    size_t ws_max_message;        /* largest WebSocket message accepted [1 MiB] */
    dt_httpd_handler_fn handler;  /* called once per request when its head is complete */
    void *userdata;
};

/* Create a server on LOOP; nothing listens yet. Free with dt_httpd_free(). */
int dt_httpd_new(uv_loop_t *loop, const struct dt_httpd_config *cfg, struct dt_httpd **ret,
                 struct dt_error **err);
/* Listen on a new unix socket at PATH (an existing socket file there is replaced; anything
 * else there is an error), mode 0600. */
int dt_httpd_listen_unix(struct dt_httpd *s, const char *path, struct dt_error **err);
/* Serve on FD, a socket that is already bound and listening (socket activation). Takes FD. */
int dt_httpd_listen_fd(struct dt_httpd *s, int fd, struct dt_error **err);
/* Listen on TCP ADDR:PORT (numeric IPv4 or IPv6 address). PORT 0 picks one: see
 * dt_httpd_port(). */
int dt_httpd_listen_tcp(struct dt_httpd *s, const char *addr, uint16_t port, struct dt_error **err);
/* The port of the first TCP listener, or 0. */
uint16_t dt_httpd_port(const struct dt_httpd *s);
/* Close listeners and every connection (close callbacks of live requests and WebSockets run
 * from here, with completed = false). The memory is released once the loop has run the libuv
 * close callbacks; run the loop afterwards until it stops. */
void dt_httpd_free(struct dt_httpd *s);
/* Open connections (for tests and metrics). */
unsigned dt_httpd_connections(const struct dt_httpd *s);

/* ---- Requests ---- */

const struct dt_http_head *dt_httpd_req_head(const struct dt_httpd_req *req);
const char *dt_httpd_req_method(const struct dt_httpd_req *req);
/* Request header NAME (case-insensitive, first one), or NULL. */
const char *dt_httpd_req_header(const struct dt_httpd_req *req, const char *name);
/* The path split at '/' into percent-decoded segments (empty segments dropped), e.g.
 * "/files/a%20b/" -> {"files", "a b"}. NULL-terminated array owned by the request; *RET_N gets
 * the count. NULL when the path does not decode (the server already answered 400 then, so
 * handlers never see it). */
const char *const *dt_httpd_req_segments(const struct dt_httpd_req *req, size_t *ret_n);
/* Decoded value of the first query parameter NAME ('+' is a space), "" for a bare "?name", or
 * NULL when absent. dt_httpd_req_query_next iterates over repeated keys (*IDX starts at 0). */
const char *dt_httpd_req_query(const struct dt_httpd_req *req, const char *name);
const char *dt_httpd_req_query_next(const struct dt_httpd_req *req, const char *name, size_t *idx);
/* Peer credentials of a unix-socket connection (uid -1 when unknown). */
uid_t dt_httpd_req_peer_uid(const struct dt_httpd_req *req);

/* Called exactly once when REQ goes away: COMPLETED is true when the response was fully written,
 * false when the connection was lost or the server freed first. Replaces a previous callback. */
typedef void (*dt_httpd_close_fn)(struct dt_httpd_req *req, bool completed, void *userdata);
void dt_httpd_req_set_close_cb(struct dt_httpd_req *req, dt_httpd_close_fn cb, void *userdata);

/* ---- Request bodies ---- */
/* A handler picks one body mode from inside its handler call; by default the body is read and
 * dropped. Callbacks get ERROR 0 and data, or a negative errno when the body failed (the client
 * went away, a chunked body was malformed, or -EFBIG over MAX: the server then answers 413 itself
 * unless a response was started). */
typedef void (*dt_httpd_body_fn)(struct dt_httpd_req *req, int error, const char *data, size_t len,
                                 void *userdata);
/* Collect the body (at most MAX bytes) and call CB once with all of it (NUL-terminated). */
void dt_httpd_req_read_body(struct dt_httpd_req *req, size_t max, dt_httpd_body_fn cb, void *userdata);
/* Stream the body: CB for every piece as it arrives, then once with (0, NULL, 0) at its end.
 * Backpressure: dt_httpd_req_pause() stops reading the socket; at most one more slice (64 KiB)
 * is delivered after it. dt_httpd_req_resume() goes on. */
void dt_httpd_req_stream_body(struct dt_httpd_req *req, dt_httpd_body_fn cb, void *userdata);
void dt_httpd_req_pause(struct dt_httpd_req *req);
void dt_httpd_req_resume(struct dt_httpd_req *req);

/* ---- Responses ---- */

/* A whole response: BODY (LEN bytes, copied) with Content-Type CONTENT_TYPE (NULL: none). Adds
 * Date, Content-Length and Connection. No body is sent for HEAD, 1xx, 204 and 304. */
void dt_httpd_reply(struct dt_httpd_req *req, int status, const char *content_type, const void *body,
                    size_t len);
/* BODY as compact JSON (stolen; NULL means an empty body). */
void dt_httpd_reply_json(struct dt_httpd_req *req, int status, json_t *body);
/* The error envelope the Daytona SDK parses (contract section 4.1): {statusCode, message, error,
 * code?, source?, path, timestamp}. CODE and SOURCE may be NULL. */
void dt_httpd_reply_error(struct dt_httpd_req *req, int status, const char *source, const char *code,
                          const char *fmt, ...) _printf_(5, 6);

/* A streamed response: head now, body with dt_httpd_write*, then dt_httpd_end. CONTENT_LENGTH -1
 * means chunked. Returns 0, -EALREADY when a response was already started, -EINVAL for headers
 * that would split the response. */
int dt_httpd_start(struct dt_httpd_req *req, int status, const struct dt_http_header *headers,
                   size_t n_headers, int64_t content_length);
/* Queue LEN bytes (copied). Returns 0 or -EPIPE when the connection is gone. */
int dt_httpd_write(struct dt_httpd_req *req, const void *data, size_t len);
/* Queue LEN bytes of DATA, taking ownership of the malloc'ed buffer (freed after writing, also on
 * failure). */
int dt_httpd_write_owned(struct dt_httpd_req *req, void *data, size_t len);
/* Bytes queued and not yet written to the socket; producers stop above a bound of their choice
 * and continue from the drain callback, called when the queue becomes empty. */
size_t dt_httpd_queued(const struct dt_httpd_req *req);
typedef void (*dt_httpd_drain_fn)(struct dt_httpd_req *req, void *userdata);
void dt_httpd_req_set_drain_cb(struct dt_httpd_req *req, dt_httpd_drain_fn cb, void *userdata);
/* Finish the response. The close callback runs once everything is written. */
int dt_httpd_end(struct dt_httpd_req *req);
/* The status of the response started for REQ, or 0 when none was started yet. */
int dt_httpd_req_status(const struct dt_httpd_req *req);
/* Abort: close the connection at once (e.g. a streamed response whose source failed midway, so
 * the client sees a truncated body rather than a wrong one). */
void dt_httpd_abort(struct dt_httpd_req *req);

/* ---- WebSocket ---- */

struct dt_httpd_ws_callbacks {
    /* A whole text or binary message (at most ws_max_message bytes). */
    void (*on_message)(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len,
                       void *userdata);
    /* The socket's write queue became empty. May be NULL. */
    void (*on_drain)(struct dt_httpd_ws *ws, void *userdata);
    /* The connection is gone (CODE is the peer's close code, or DT_WS_CLOSE_ABNORMAL). Called
     * exactly once; WS is dead afterwards. */
    void (*on_close)(struct dt_httpd_ws *ws, uint16_t code, void *userdata);
};

/* Whether REQ asks for a WebSocket upgrade (GET with Upgrade: websocket). */
bool dt_httpd_req_is_websocket(const struct dt_httpd_req *req);
/* Accept the upgrade: check the handshake, answer 101 (with SUBPROTOCOL when not NULL) and turn
 * the connection into a WebSocket. REQ is consumed either way: its close callback runs before
 * this returns. On a bad handshake answers 400/426 and returns -EINVAL/-EPROTONOSUPPORT. */
int dt_httpd_ws_accept(struct dt_httpd_req *req, const char *subprotocol,
                       const struct dt_httpd_ws_callbacks *cbs, void *userdata,
                       struct dt_httpd_ws **ret);
/* Send one message (copied). Returns 0 or -EPIPE once the socket is closing. */
int dt_httpd_ws_send(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const void *data, size_t len);
/* Start the closing handshake with CODE and REASON; the connection closes when the peer answers
 * (or after 2 s) and on_close runs then. Further sends fail. */
void dt_httpd_ws_close(struct dt_httpd_ws *ws, uint16_t code, const char *reason);
size_t dt_httpd_ws_queued(const struct dt_httpd_ws *ws);
/* The request headers are gone after accept; the few a WebSocket user needs are copied. */
const char *dt_httpd_ws_path(const struct dt_httpd_ws *ws);

/* ---- Raw connections (tunnels) ---- */

/* A proxy that forwards an upgrade (or CONNECT) takes the client connection over once the
 * upstream agreed, and splices bytes both ways. */
struct dt_httpd_raw;
struct dt_httpd_raw_callbacks {
    /* Bytes from the client (first those already received after the request head). DATA NULL,
     * LEN 0: the client closed its side; the connection closes after this call. */
    void (*on_data)(struct dt_httpd_raw *raw, const char *data, size_t len, void *userdata);
    /* The write queue became empty. May be NULL. */
    void (*on_drain)(struct dt_httpd_raw *raw, void *userdata);
    /* Gone (either side). Called exactly once; RAW is dead afterwards. */
    void (*on_close)(struct dt_httpd_raw *raw, void *userdata);
};
/* Take over REQ's connection, which must be an upgrade request (dt_http_head.upgrade) whose
 * response was not started. REQ is consumed (its close callback runs, completed). httpd sends
 * nothing: the caller writes the upstream's response head itself. -EINVAL otherwise. */
int dt_httpd_req_take_raw(struct dt_httpd_req *req, const struct dt_httpd_raw_callbacks *cbs,
                          void *userdata, struct dt_httpd_raw **ret);
/* Queue LEN bytes (copied). 0, or -EPIPE when closing. */
int dt_httpd_raw_write(struct dt_httpd_raw *raw, const void *data, size_t len);
size_t dt_httpd_raw_queued(const struct dt_httpd_raw *raw);
/* Stop / restart reading from the client (backpressure towards the upstream). */
void dt_httpd_raw_pause(struct dt_httpd_raw *raw);
void dt_httpd_raw_resume(struct dt_httpd_raw *raw);
/* Close once the queued bytes are written; on_close follows. */
void dt_httpd_raw_close(struct dt_httpd_raw *raw);

#endif
