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
    struct dt_snapshots *snapshots;
    struct dt_objstore *objstore;
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

/* Record activity on sandbox ID for auto-stop (throttled: cheap to call per request). */
void dt_server_record_activity(struct dt_server *s, const char *id);

/* ---- signed file URLs (signing.c) ---- */

/* The signing key of sandbox ID (64 hex digits, malloc'ed), created on first use; ROTATE makes a
 * new one (URLs signed with the old one stop working). */
/* A request after authentication. */
struct call {
    struct dt_server *s;
    struct dt_httpd_req *req;
    char *org; /* organization of the caller's key */
    uint64_t start_ns;
};

typedef void (*json_handler)(struct call *c, json_t *body, const char *const *params);

/* The close callback every API request starts with (metrics, frees the call). A handler that
 * sets its own close callback calls this from it, with the call. */
void dt_call_closed(struct dt_httpd_req *req, bool completed, void *call);

/* ---- server.c: shared by the API's files ---- */

/* Answer an error in the SDK's envelope (source DAYTONA_API). */
void dt_api_error(struct dt_httpd_req *req, int status, const char *code, const char *fmt, ...)
    _printf_(4, 5);
/* A store/runner error: status from the errno (ENOENT 404, EEXIST/ESTALE/EBUSY 409, EINVAL
 * 400, ENOSPC 503, else 500), message from ERR. */
void dt_api_error_errno(struct dt_httpd_req *req, int r, const struct dt_error *err);
/* Read the JSON object body (≤ 1 MiB; EMPTY_OK: an empty body is {}), then FN(c, body,
 * params); 400 when it is not an object. PARAMS (≤ 3) are copied. */
void dt_api_with_json(struct call *c, const char *const *params, json_handler fn, bool empty_ok);
/* An optional integer field in [MIN, MAX]: 1 set, 0 absent, -1 after answering 400. */
int dt_api_get_int(struct call *c, json_t *body, const char *key, int64_t min, int64_t max,
                   int64_t *out);
json_t *dt_json_or(const char *text, json_t *fallback);
void dt_json_set_str(json_t *o, const char *k, const char *v);
void dt_json_set_time(json_t *o, const char *k, int64_t ms);
json_t *dt_sandbox_json(struct dt_server *s, const struct dt_store_sandbox *sb, bool list_item);
/* Start SB with the runner (its snapshot resolved to layers). */
int dt_server_run_sandbox(struct dt_server *s, const struct dt_store_sandbox *sb,
                          struct dt_error **err);
/* Move SB to TO (with REASON for error states), save, emit sandbox.state.updated. */
int dt_server_save_state(struct dt_server *s, struct dt_store_sandbox *sb,
                         enum dt_sandbox_state to, const char *reason, struct dt_error **err);

/* ---- snapshots.c: the snapshot API, image jobs, the default snapshot ---- */

struct dt_snapshots;
struct dt_image;
/* Open DATA_DIR/images, restart jobs a crash interrupted, start the default snapshot's build
 * when it is missing. */
int dt_snapshots_new(struct dt_server *s, struct dt_snapshots **ret, struct dt_error **err);
/* Kill running jobs (their snapshots are restarted at the next start). */
void dt_snapshots_free(struct dt_snapshots *sn);
/* /api/snapshots[/...] (SEG[1] == "snapshots"). */
void dt_snapshots_route(struct call *c, const char *const *seg, size_t n);
/* GET /api/sandbox/{id}/build-logs[-url] for a sandbox created from an image. */
void dt_snapshots_sandbox_logs(struct call *c, const struct dt_store_sandbox *sb, bool url);
/* The snapshot a create asks for (BODY's snapshot or buildInfo; neither: the default), for
 * ORG. Returns 0 with *RET_SNAPSHOT (malloc'ed) the snapshot's id or name to record — or NULL
 * for the built-in default root filesystem — and *RET_STATE what the new sandbox shows:
 * started-able (DT_SANDBOX_CREATING), DT_SANDBOX_PULLING_SNAPSHOT / _PENDING_BUILD while the
 * snapshot is being made. After answering 4xx: -1. */
int dt_snapshots_for_create(struct dt_snapshots *sn, struct call *c, json_t *body,
                            char **ret_snapshot, enum dt_sandbox_state *ret_state);
/* The image of sandbox SB's snapshot (NULL: the built-in default rootfs) and its layer paths
 * (topmost first). -ENOENT / -EAGAIN (not active yet) with *err. */
int dt_snapshots_image(struct dt_snapshots *sn, const struct dt_store_sandbox *sb,
                       struct dt_image **ret_img, char ***ret_layers, struct dt_error **err);
/* The default snapshot for a new sandbox: 0 with *RET_ID NULL when the server has none (the
 * built-in root filesystem), 0 with its id when it is active, -EAGAIN while it is being made. */
int dt_snapshots_default(struct dt_snapshots *sn, char **ret_id);
struct dt_imgstore *dt_snapshots_images(struct dt_snapshots *sn);
/* POST /sandbox/{id}/snapshot: snapshot NAME of SB's files (its image plus its writable layer,
 * copied by a job while a running sandbox is paused); SB shows "snapshotting" meanwhile and
 * goes back to its state after. Answers the request. */
void dt_snapshots_from_sandbox(struct call *c, struct dt_store_sandbox *sb, const char *name);
/* POST /sandbox/{id}/fork: a new sandbox with a copy of SB's files (through a snapshot removed
 * once the fork started); answers with the new sandbox (pulling_snapshot until its copy is
 * made). */
void dt_snapshots_fork(struct call *c, struct dt_store_sandbox *sb, const char *name);
/* Whether SNAP is the temporary snapshot of a fork. */
bool dt_snapshots_is_fork(const struct dt_store_snapshot *snap);
/* Whether ID is the default snapshot's name, or NULL/"" (the default). */
bool dt_snapshots_is_default(struct dt_snapshots *sn, const char *name);
/* The server calls this when a sandbox waiting for its snapshot may start (the snapshot became
 * active or failed): implemented in server.c. */
void dt_server_snapshot_ready(struct dt_server *s, const struct dt_store_snapshot *snap);

/* ---- volumes.c ---- */

/* /api/volumes[/...] (SEG[1] == "volumes"). */
void dt_volumes_route(struct call *c, const char *const *seg, size_t n);
/* Validate a create's `volumes` (each volume of the caller's organization, mount paths
 * absolute and not over /proc, /sys, /dev; subpaths relative, created) into *RET_JSON (the
 * record's form, ids resolved). -1 after answering 4xx. */
int dt_volumes_for_create(struct call *c, json_t *vols, char **ret_json);
/* The runtime binds (idmapped) of a record's volumes_json. */
struct dt_bind;
int dt_volumes_binds(struct dt_server *s, const char *volumes_json, struct dt_bind **ret,
                     size_t *ret_n);
/* DATA_DIR/volumes/<id>, malloc'ed. */
char *dt_volume_path(struct dt_server *s, const char *id);

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
