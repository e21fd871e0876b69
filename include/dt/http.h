/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 message parsing (on http-parser) and response formatting for the agent, daytonad and
 * the proxy. Pure codec: bytes in, callbacks and a parsed head out; no sockets, no logging. */
#ifndef DT_HTTP_H
#define DT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Parse errors, as negative errno values returned by dt_http_parser_feed() and mapped to a
 * status by dt_http_error_status():
 *   -EBADMSG          malformed message, smuggling attempt (CL+chunked, duplicate CL,
 *                     obs-fold, bare LF, missing/duplicate Host on 1.1)         -> 400
 *   -ENAMETOOLONG     request target longer than max_target_size                -> 414
 *   -EMSGSIZE         head, a header name/value or the header count over limit  -> 431
 *   -EFBIG            body over max_body_size (declared or streamed)            -> 413
 *   -EOPNOTSUPP       Transfer-Encoding other than exactly "chunked"            -> 501
 *   -EPROTONOSUPPORT  HTTP major version other than 1                           -> 505
 * A negative value returned by a callback is passed through unchanged. */

#define DT_HTTP_UNLIMITED UINT64_MAX

/* Hard limits. A zero field means "use the default" (in brackets). */
struct dt_http_limits {
    size_t max_head_size;    /* start line + headers + final CRLF [64 KiB]; trailers are dropped
                              * and bounded by http-parser (80 KiB) */
    size_t max_headers;      /* header fields [100] */
    size_t max_target_size;  /* request target [8 KiB] */
    size_t max_header_name;  /* one header name [256] */
    size_t max_header_value; /* one header value [16 KiB] */
    uint64_t max_body_size;  /* decoded body bytes [1 MiB]; DT_HTTP_UNLIMITED for proxies */
};

struct dt_http_header {
    const char *name; /* NUL-terminated, as received (compare case-insensitively) */
    const char *value; /* NUL-terminated, surrounding whitespace removed */
    size_t name_len;
    size_t value_len;
};

/* The parsed head of one message. All pointers are borrowed from the parser and stay valid
 * from the on_head callback until dt_http_parser_next() or dt_http_parser_free(). */
struct dt_http_head {
    /* Requests. */
    const char *method;     /* "GET", ... (static string) */
    const char *target;     /* raw request target, NUL-terminated */
    size_t target_len;
    const char *path;       /* raw (still percent-encoded) path, NUL-terminated; "/" for
                             * absolute-form without a path; NULL for CONNECT */
    size_t path_len;
    const char *query;      /* after '?', without it, NUL-terminated; NULL when there is none */
    size_t query_len;
    /* Responses. */
    int status;             /* 100..999 */
    const char *reason;     /* reason phrase, NUL-terminated, may be "" */

    unsigned version_major, version_minor;
    struct dt_http_header *headers; /* in arrival order; repeated headers kept */
    size_t n_headers;

    bool has_content_length;
    uint64_t content_length;
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* connection may be reused after this message (http_should_keep_alive) */
    bool upgrade;           /* Upgrade (with Connection: upgrade) or CONNECT */
};

struct dt_http_parser;

/* Callbacks run from inside dt_http_parser_feed(). Each returns 0 to go on or -errno to stop the
 * parse (feed returns that value and the parser is dead). All may be NULL.
 * on_head: the head is complete; dt_http_parser_head() is valid. For a response it may return
 *   DT_HTTP_SKIP_BODY (e.g. the answer to HEAD, or 1xx/204/304, which http-parser handles).
 * on_body: a piece of the decoded body (chunked framing removed); DATA points into the buffer
 *   given to feed and is valid only during the call. Never buffered by the parser.
 * on_complete: the message (including trailers) is complete. */
#define DT_HTTP_SKIP_BODY 1
struct dt_http_callbacks {
    int (*on_head)(struct dt_http_parser *p, void *userdata);
    int (*on_body)(struct dt_http_parser *p, const char *data, size_t len, void *userdata);
    int (*on_complete)(struct dt_http_parser *p, void *userdata);
};

enum dt_http_kind {
    DT_HTTP_REQUEST,
    DT_HTTP_RESPONSE,
};

/* Returns a new parser; free with dt_http_parser_free(). LIMITS and CBS may be NULL and are
 * copied. */
struct dt_http_parser *dt_http_parser_new(enum dt_http_kind kind, const struct dt_http_limits *limits,
                                          const struct dt_http_callbacks *cbs, void *userdata);
void dt_http_parser_free(struct dt_http_parser *p);
static inline void
dt_http_parser_freep(struct dt_http_parser **p)
{
    dt_http_parser_free(*p);
}

/* Return values of dt_http_parser_feed() (besides negative errors). */
enum {
    DT_HTTP_FEED_MORE = 0,     /* all LEN bytes consumed, message not complete yet */
    DT_HTTP_FEED_DONE = 1,     /* a message completed after *ret_consumed bytes */
    DT_HTTP_FEED_UPGRADE = 2,  /* an Upgrade/CONNECT message completed: bytes from
                                * *ret_consumed on belong to the new protocol */
};

/* Feed LEN bytes as they arrive. Parsing stops at the end of each message, so with pipelining
 * the caller handles one message, calls dt_http_parser_next() and feeds the rest
 * (DATA + *ret_consumed). After DONE or UPGRADE, further feeds return -EBUSY until
 * dt_http_parser_next(). After an error every call returns the same error; the connection
 * must be closed (after sending dt_http_error_status()). RET_CONSUMED may be NULL. */
int dt_http_parser_feed(struct dt_http_parser *p, const void *data, size_t len, size_t *ret_consumed);

/* The peer closed its side. Completes a response whose body is delimited by EOF. Returns
 * DT_HTTP_FEED_DONE if that completed a message, 0 if the parser was idle between messages,
 * -EBADMSG if the message was truncated. */
int dt_http_parser_finish(struct dt_http_parser *p);

/* Forget the current message (head, body counters) and get ready for the next one on the same
 * connection. Cheap: the head buffer is kept for reuse. Also used to decline an upgrade. */
void dt_http_parser_next(struct dt_http_parser *p);

/* The head of the current message: valid from on_head until dt_http_parser_next(); NULL before. */
const struct dt_http_head *dt_http_parser_head(const struct dt_http_parser *p);
/* Decoded body bytes delivered so far for the current message. */
uint64_t dt_http_parser_body_bytes(const struct dt_http_parser *p);
/* A static, human-readable reason for the last error ("" if none). */
const char *dt_http_parser_errmsg(const struct dt_http_parser *p);

/* First value of header NAME (case-insensitive), or NULL. */
const char *dt_http_head_get(const struct dt_http_head *h, const char *name);
/* Iterate over repeated headers: *IDX starts at 0; returns the next value of NAME or NULL. */
const char *dt_http_head_get_next(const struct dt_http_head *h, const char *name, size_t *idx);
/* Whether any NAME header contains TOKEN in its comma-separated list (case-insensitive), e.g.
 * ("connection", "upgrade"). */
bool dt_http_head_has_token(const struct dt_http_head *h, const char *name, const char *token);

/* Percent-decode IN[0..LEN) into OUT (room for LEN+1 bytes; may equal IN), NUL-terminated;
 * *RET_LEN gets the decoded length. Rejects invalid escapes and %00 (and a raw NUL) with -EINVAL.
 * PLUS_AS_SPACE: decode '+' as ' ' (query strings only, never paths). */
int dt_http_percent_decode(const char *in, size_t len, char *out, size_t *ret_len, bool plus_as_space);

/* Map -errno (or errno) to an HTTP status (STYLE.md c.4 plus the parse errors above):
 * ENOENT 404, EEXIST/EBUSY 409, EINVAL/EBADMSG 400, EPERM/EACCES 403, ETIMEDOUT 504,
 * E2BIG/EFBIG 413, ENAMETOOLONG 414, EMSGSIZE 431, EOPNOTSUPP 501, EPROTONOSUPPORT 505,
 * anything else 500. */
int dt_http_error_status(int err);

/* Reason phrase for STATUS ("OK", "Not Found", ...); "Unknown" for codes not in the table. */
const char *dt_http_status_text(int status);

/* IMF-fixdate (RFC 7231 7.1.1.1), e.g. "Sun, 06 Nov 1994 08:49:37 GMT": 29 chars + NUL. */
#define DT_HTTP_DATE_SIZE 30
int dt_http_format_date(time_t t, char buf[static DT_HTTP_DATE_SIZE]);

/* Format "HTTP/1.1 STATUS Text\r\n", each header as "Name: value\r\n", then "\r\n" into BUF of
 * SIZE bytes (NUL-terminated when SIZE > 0); a header's name_len/value_len may be 0 to mean
 * strlen(). Returns the full length (without NUL) like snprintf: a value >= SIZE means BUF was
 * too small. Returns -EINVAL for a status outside 100..999, an empty
 * or non-token header name, or a value holding CR, LF or NUL (response splitting). */
ssize_t dt_http_format_response_head(char *buf, size_t size, int status,
                                     const struct dt_http_header *headers, size_t n_headers);

/* Chunked transfer coding (RFC 7230 4.1) for writev-style output: send
 * dt_http_chunk_header(len), the LEN data bytes, then DT_HTTP_CHUNK_END; finish the body with
 * DT_HTTP_CHUNK_LAST. A zero LEN is not a data chunk (it ends the body): the function returns
 * -EINVAL for it. Returns the header length (hex size + CRLF) written to BUF (NUL-terminated). */
#define DT_HTTP_CHUNK_HEADER_MAX 19
#define DT_HTTP_CHUNK_END "\r\n"
#define DT_HTTP_CHUNK_LAST "0\r\n\r\n"
int dt_http_chunk_header(char buf[static DT_HTTP_CHUNK_HEADER_MAX], size_t len);

#endif
