/* SPDX-License-Identifier: Apache-2.0 */
/* What the parts of daytonad serve share: the server object and the event hub. */
#ifndef DT_SERVER_INT_H
#define DT_SERVER_INT_H

#include <jansson.h>
#include <uv.h>

#include "dt/httpd.h"
#include "dt/store.h"
#include "server/server.h"

struct dt_events;

struct dt_server {
    uv_loop_t *loop;
    struct dt_server_config cfg;
    char *data_dir;
    char *public_url;
    struct dt_httpd *httpd;
    struct dt_store *store;
    struct dt_runner *runner;
    char *default_org;
    struct dt_events *events;
    uv_timer_t *engine_timer; /* the lifecycle engine's tick (own allocation: it is closed
                               * after the server is freed) */
    uv_timer_t *pool_timer;   /* refills the warm pool, one sandbox per tick */
    char *pool_org;           /* the hidden organization that owns pooled sandboxes */
    unsigned pool_size;
    struct touch *touches;    /* last activity written per sandbox (throttles store writes) */
    struct key_cache {
        char *key;            /* plaintext API key (in memory only, as it arrives anyway) */
        char *org;
        uint64_t expires_ms;
    } keys[64];               /* recently verified keys: most requests skip the store */
    struct {
        uint64_t by_class[6];     /* API responses by status class (index 1..5) */
        uint64_t toolbox;         /* requests handed to the toolbox proxy */
        uint64_t buckets[12];     /* API latency histogram (see metrics_bounds in server.c) */
        uint64_t count;
        double sum_s;
    } metrics;
};

/* ---- signed file URLs (signing.c) ---- */

/* The signing key of sandbox ID (64 hex digits, malloc'ed), created on first use; ROTATE makes a
 * new one (URLs signed with the old one stop working). */
int dt_signing_key(struct dt_server *s, const char *id, bool rotate, char **ret,
                   struct dt_error **err);
void dt_signing_forget(struct dt_server *s, const char *id);
/* Whether SIGNATURE signs METHOD ("GET" download, "POST" upload), PATH (exactly as sent) and
 * EXPIRES (Unix seconds, "0" = never) with KEY, and has not expired at NOW_S. */
bool dt_signing_verify(const char *key, const char *method, const char *path, const char *expires,
                       const char *signature, int64_t now_s);

/* ---- Socket.IO (events.c) ---- */

struct dt_events *dt_events_new(struct dt_server *s);
/* Close every client and free. */
void dt_events_free(struct dt_events *ev);
/* GET /api/socket.io/?EIO=4&transport=websocket: accept the WebSocket, run Engine.IO (open,
 * server pings) and Socket.IO (CONNECT with {token: API key}), and subscribe the client to its
 * organization's events. */
void dt_events_accept(struct dt_events *ev, struct dt_httpd_req *req);
/* Send event NAME with PAYLOAD (stolen) to every connected client of organization ORG. */
void dt_events_emit(struct dt_events *ev, const char *org, const char *name, json_t *payload);

#endif
