/* SPDX-License-Identifier: Apache-2.0 */
/* Socket.IO at /api/socket.io/ (contract §2.9): Engine.IO v4 over WebSocket only. The server
 * opens with `0{sid,...}`, pings every 25 s and drops a client that does not answer within 20 s;
 * the client authenticates with `40{"token":"<API key>"}` and then receives its organization's
 * events (`sandbox.state.updated`, `sandbox.created`). Without this endpoint the SDK's process
 * hangs for minutes at exit. */
#include <errno.h>
#include <string.h>

#include "dt/socketio.h"
#include "dt/xalloc.h"
#include "server/server-int.h"
#include "dt/banned.h"

#define MAX_CLIENTS 4096

struct client {
    struct dt_events *ev;
    struct dt_httpd_ws *ws;
    struct client *prev, *next;
    uv_timer_t timer;   /* ping interval, then pong deadline */
    bool awaiting_pong;
    bool connected;     /* Socket.IO CONNECT accepted */
    char *org;
    char nsp[DT_SIO_MAX_NSP + 1];
};

struct dt_events {
    struct dt_server *s;
    struct client *clients;
    unsigned n;
};

struct dt_events *
dt_events_new(struct dt_server *s)
{
    struct dt_events *ev = xcalloc(1, sizeof(*ev));
    ev->s = s;
    return ev;
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    free(c->org);
    free(c);
}

static void
client_gone(struct client *c)
{
    struct dt_events *ev = c->ev;

    if (c->prev)
        c->prev->next = c->next;
    else
        ev->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ev->n--;
    uv_close((uv_handle_t *) &c->timer, on_timer_closed);
}

static void
send_text(struct client *c, char *msg)
{
    if (msg)
        (void) dt_httpd_ws_send(c->ws, DT_WS_OP_TEXT, msg, strlen(msg));
    free(msg);
}

static void
on_ping_timer(uv_timer_t *t)
{
    struct client *c = t->data;

    if (c->awaiting_pong) {
        /* No pong within pingTimeout: the client is gone (socket.io's own rule). */
        dt_httpd_ws_close(c->ws, DT_WS_CLOSE_GOING_AWAY, "ping timeout");
        return;
    }
    (void) dt_httpd_ws_send(c->ws, DT_WS_OP_TEXT, DT_EIO_PING_MSG, 1);
    c->awaiting_pong = true;
    uv_timer_start(&c->timer, on_ping_timer, DT_EIO_PING_TIMEOUT_MS, 0);
}

static void
handle_connect(struct client *c, const struct dt_sio_packet *p)
{
    struct dt_server *s = c->ev->s;
    const char *token = json_string_value(json_object_get(p->data, "token"));
    struct dt_store_api_key *key = NULL;
    char sid[DT_SIO_ID_LEN + 1];

    if (!token || dt_store_api_key_lookup(s->store, token, &key, NULL) < 0) {
        send_text(c, dt_sio_encode_connect_error(p->nsp, "invalid API key", NULL));
        return;
    }
    free(c->org);
    c->org = xstrdup(key->organization_id);
    dt_store_api_key_free(key);
    memcpy(c->nsp, p->nsp, strlen(p->nsp) + 1);
    c->connected = true;
    if (dt_sio_generate_id(sid) < 0)
        memcpy(sid, "sio0000000000000000000", DT_SIO_ID_LEN + 1);
    send_text(c, dt_sio_encode_connect_ack(p->nsp, sid));
}

static void
on_message(struct dt_httpd_ws *ws, enum dt_ws_opcode op, const uint8_t *data, size_t len, void *ud)
{
    struct client *c = ud;
    struct dt_sio_packet p;

    if (op != DT_WS_OP_TEXT || dt_sio_parse((const char *) data, len, &p, NULL) < 0) {
        dt_httpd_ws_close(ws, DT_WS_CLOSE_PROTOCOL_ERROR, "not an Engine.IO v4 packet");
        return;
    }
    switch (p.eio_type) {
    case DT_EIO_PONG:
        c->awaiting_pong = false;
        uv_timer_start(&c->timer, on_ping_timer, DT_EIO_PING_INTERVAL_MS, 0);
        break;
    case DT_EIO_PING: /* v3 clients ping; answer anyway */
        (void) dt_httpd_ws_send(ws, DT_WS_OP_TEXT, DT_EIO_PONG_MSG, 1);
        break;
    case DT_EIO_CLOSE:
        dt_httpd_ws_close(ws, DT_WS_CLOSE_NORMAL, NULL);
        break;
    case DT_EIO_MESSAGE:
        if (p.sio_type == DT_SIO_CONNECT)
            handle_connect(c, &p);
        else if (p.sio_type == DT_SIO_DISCONNECT)
            c->connected = false;
        /* Events from clients: the SDK sends none; ignore others. */
        break;
    default:
        break;
    }
    dt_sio_packet_done(&p);
}

static void
on_close(struct dt_httpd_ws *ws, uint16_t code, void *ud)
{
    client_gone(ud);
}

static const struct dt_httpd_ws_callbacks ws_cbs = {
    .on_message = on_message,
    .on_close = on_close,
};

void
dt_events_accept(struct dt_events *ev, struct dt_httpd_req *req)
{
    const char *eio = dt_httpd_req_query(req, "EIO"), *transport = dt_httpd_req_query(req, "transport");
    char sid[DT_SIO_ID_LEN + 1];
    struct client *c;

    if (!eio || strcmp(eio, "4") != 0)
        return dt_httpd_reply_error(req, 400, "DAYTONA_API", "BAD_REQUEST",
                                    "only Engine.IO protocol 4 is supported");
    if (!transport || strcmp(transport, "websocket") != 0 || !dt_httpd_req_is_websocket(req))
        return dt_httpd_reply_error(req, 400, "DAYTONA_API", "BAD_REQUEST",
                                    "only the websocket transport is supported");
    if (ev->n >= MAX_CLIENTS)
        return dt_httpd_reply_error(req, 503, "DAYTONA_API", "SERVICE_UNAVAILABLE",
                                    "too many event subscribers");
    c = xcalloc(1, sizeof(*c));
    c->ev = ev;
    memcpy(c->nsp, "/", 2);
    if (dt_httpd_ws_accept(req, NULL, &ws_cbs, c, &c->ws) < 0) {
        free(c);
        return;
    }
    uv_timer_init(ev->s->loop, &c->timer);
    c->timer.data = c;
    c->next = ev->clients;
    if (ev->clients)
        ev->clients->prev = c;
    ev->clients = c;
    ev->n++;
    if (dt_sio_generate_id(sid) < 0)
        memcpy(sid, "eio0000000000000000000", DT_SIO_ID_LEN + 1);
    send_text(c, dt_eio_encode_open(sid, DT_EIO_PING_INTERVAL_MS, DT_EIO_PING_TIMEOUT_MS,
                                    DT_EIO_MAX_PAYLOAD));
    uv_timer_start(&c->timer, on_ping_timer, DT_EIO_PING_INTERVAL_MS, 0);
}

void
dt_events_emit(struct dt_events *ev, const char *org, const char *name, json_t *payload)
{
    for (struct client *c = ev ? ev->clients : NULL; c; c = c->next) {
        if (!c->connected || !c->org || strcmp(c->org, org) != 0)
            continue;
        send_text(c, dt_sio_encode_event(c->nsp, -1, name, payload));
    }
    json_decref(payload);
}

void
dt_events_free(struct dt_events *ev)
{
    if (!ev)
        return;
    /* The connections themselves close with the HTTP server (their on_close frees them). */
    free(ev);
}
