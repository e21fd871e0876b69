/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the libdaytona sources: the client object, the HTTP request core on top of
 * one reused libcurl easy handle, error helpers, JSON field readers and the WebSocket client
 * connection used by log follow and the PTY. Not installed. */
#ifndef DAYTONA_CLIENT_INT_H
#define DAYTONA_CLIENT_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daytona/daytona.h"
#include "dt/macros.h"
#include "dt/ws.h"

/* Error bodies and other small responses are read up to this size. */
#define DC_MAX_SMALL_BODY (8u << 20)
#define DC_MAX_ERROR_BODY (64u << 10)
#define DC_CACHE_SLOTS    8

struct dc_resolved {
    char *key;      /* the id or name the caller used */
    char *id;
    char *base;     /* "{toolboxProxyUrl}/{id}" */
};

struct daytona_client {
    CURL *curl;
    char *api_url;
    char *api_key;
    char *target;
    char *organization_id;
    char *user_agent;
    long request_timeout_ms;
    long connect_timeout_ms;
    struct dc_resolved cache[DC_CACHE_SLOTS];
    unsigned cache_next;
};

/* ---- errors ---- */

/* Set *ERR (if ERR and not already set) to a new error. Returns -ERRNUM (ERRNUM either sign). */
int dc_error(daytona_error **err, int errnum, const char *fmt, ...) _printf_(3, 4);
/* Like dc_error with ": strerror" appended. */
int dc_error_errno(daytona_error **err, int errnum, const char *fmt, ...) _printf_(3, 4);
/* Prefix the message of *ERR with "context: ". Returns -(*err)->code or -EIO. */
int dc_error_wrap(daytona_error **err, const char *fmt, ...) _printf_(2, 3);
/* Build the error for an HTTP failure STATUS with response BODY (may be NULL/non-JSON). */
int dc_error_http(daytona_error **err, long status, const char *body, size_t len,
                  const char *what);
/* The errno for an HTTP status. */
int dc_status_errno(long status);

/* ---- HTTP core ---- */

typedef int (*dc_sink_fn)(const char *data, size_t len, void *ud);

struct dc_req {
    const char *method;
    const char *url;            /* full URL */
    const char *body;           /* request body (JSON unless content_type says otherwise) */
    size_t body_len;
    const char *content_type;   /* default application/json when body is set */
    const char *accept;         /* default application/json */
    curl_read_callback read_fn; /* streaming request body (instead of body) */
    void *read_ud;
    int64_t upload_size;        /* with read_fn: length, or -1 for chunked */
    dc_sink_fn sink;            /* streaming 2xx response body (instead of collecting it) */
    void *sink_ud;
    size_t max_body;            /* collected body limit; 0 = DC_MAX_SMALL_BODY */
    long timeout_ms;            /* 0 = the client's request timeout, < 0 = none */
    /* When set, these headers replace ours (no bearer key, no Daytona headers): requests to
     * object storage, which signs with SigV4 instead. */
    const struct curl_slist *raw_headers;
    daytona_progress_cb progress;
    void *progress_ud;
    int64_t progress_total;
};

struct dc_resp {
    long status;
    char *body;                 /* collected body, NUL-terminated (also for errors) */
    size_t len;
    int64_t content_length;     /* -1 when unknown */
};

void dc_resp_done(struct dc_resp *r);

/* Perform R. Non-2xx answers fail with dc_error_http(WHAT); transport errors map to -errno.
 * On success RESP holds the status and collected body (unless sink was used). */
int dc_perform(daytona_client *c, const struct dc_req *r, struct dc_resp *resp, const char *what,
               daytona_error **err);

/* Convenience: request a JSON answer. BODY may be NULL. *RET gets the parsed JSON (or NULL when
 * the body was empty); RET may be NULL. */
int dc_json_call(daytona_client *c, const char *method, const char *url, json_t *body,
                 long timeout_ms, json_t **ret, const char *what, daytona_error **err);

/* Percent-encode S for a path segment or query value. Returns a new string. */
char *dc_escape(const char *s);
/* api_url + formatted path. */
char *dc_api_url(daytona_client *c, const char *fmt, ...) _printf_(2, 3);

/* Resolve SANDBOX (id or name) to its toolbox base "{proxy}/{id}" (borrowed from the cache,
 * valid until the next resolution) and id. */
int dc_toolbox(daytona_client *c, const char *sandbox, const char **base, const char **id,
               daytona_error **err);
/* base + formatted suffix. */
char *dc_toolbox_url(daytona_client *c, const char *sandbox, daytona_error **err, int *r,
                     const char *fmt, ...) _printf_(5, 6);

/* ---- object storage (objstore.c) ---- */

/* An AWS SigV4 request to sign. PATH and QUERY are exactly as sent (already URI-encoded);
 * HEADERS are "Name: value" lines, all of them signed. */
struct dc_sigv4 {
    const char *method;
    const char *path;
    const char *query;          /* may be NULL */
    const char *amz_date;       /* YYYYMMDDTHHMMSSZ */
    const char *region, *service, *access_key, *secret;
    const char *payload_hash;   /* hex sha256 of the body, as in x-amz-content-sha256 */
    const char *const *headers; /* NULL-terminated */
};

/* *RET = the Authorization header value ("AWS4-HMAC-SHA256 Credential=..."). -EINVAL for a
 * malformed date or header. */
int dc_sigv4_authorization(const struct dc_sigv4 *s, char **ret);
void dc_sha256_hex(const void *data, size_t len, char out[65]);
/* The SDK's context hash (ObjectStorage.computeHashForPathMd5) of ABS_PATH archived under its
 * own absolute path. */
int dc_context_hash(const char *abs_path, char ret[33], daytona_error **err);
/* PATH made absolute against the cwd and normalised lexically (pathe.resolve). New string. */
char *dc_abs_path(const char *path);

/* ---- JSON helpers ---- */

/* {dockerfileContent, contextHashes?} for buildInfo. */
json_t *dc_build_info(const char *dockerfile, const char *const *context_hashes);

char *dc_jstr(json_t *o, const char *key);          /* new string or NULL */
double dc_jnum(json_t *o, const char *key);
long dc_jlong(json_t *o, const char *key);
bool dc_jbool(json_t *o, const char *key);
void dc_kv_from_json(json_t *o, struct daytona_kv **ret, size_t *n);
/* "K=V" list into a JSON object (added to O). Returns -EINVAL when an entry has no '='. */
int dc_kv_to_json(const char *const *kv, json_t *o, const char *what, daytona_error **err);
char *dc_json_text(json_t *j);                       /* compact dump, new string */
char **dc_strv_from_json(json_t *a);

struct daytona_sandbox *dc_sandbox_from_json(json_t *o);

/* ---- WebSocket client ---- */

struct dc_ws {
    int fd;
    struct dt_ws_parser parser;
    uint8_t *buf;               /* bytes read but not yet parsed */
    size_t buf_len, buf_off, buf_cap;
    bool closed;                /* close frame seen or sent */
    bool sent_close;
    uint16_t close_code;
    char *close_reason;
    struct dt_ws_msgbuf msg;
};

/* Open a WebSocket to the toolbox URL (http:// only) with our headers and, when PROTOCOLS is not
 * NULL, offer that Sec-WebSocket-Protocol value and require the server to pick EXPECT_PROTOCOL.
 * Blocking (connect and handshake bounded by the client's connect timeout, 10 s default). */
int dc_ws_connect(daytona_client *c, const char *url, const char *protocols,
                  const char *expect_protocol, struct dc_ws *ws, daytona_error **err);
void dc_ws_done(struct dc_ws *ws);
/* Send one frame (masked); blocks until written. */
int dc_ws_send(struct dc_ws *ws, enum dt_ws_opcode op, const void *data, size_t len);
/* Read available bytes into the buffer. BLOCKING: wait up to TIMEOUT_MS (-1 = forever) for data.
 * Returns >0 bytes read, 0 on EOF, -EAGAIN when nothing came in time, -errno. */
int dc_ws_fill(struct dc_ws *ws, int timeout_ms);
/* Next event from buffered bytes: 1 with *EV, 0 when more input is needed, -errno on protocol
 * errors. Answers pings and close frames itself (the events are still returned). */
int dc_ws_next(struct dc_ws *ws, struct dt_ws_event *ev);

#endif
