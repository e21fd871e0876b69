/* SPDX-License-Identifier: Apache-2.0 */
/* daytonad serve: the control plane the official Daytona SDK drives. One object on one libuv
 * loop: the REST API under /api, the toolbox proxy under /toolbox/{id}, Socket.IO under
 * /api/socket.io, the store and the runner. See docs/design/daytonad-serve.md. */
#ifndef DT_SERVER_H
#define DT_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "dt/error.h"

struct dt_server_config {
    const char *listen_addr; /* numeric IP [127.0.0.1] */
    uint16_t port;           /* [3000]; 0 picks one (see dt_server_port) */
    const char *data_dir;    /* [/var/lib/daytona] */
    const char *admin_key;   /* the first start's admin API key; NULL: $DAYTONA_ADMIN_API_KEY, else
                              * generated, written to DATA_DIR/admin-api-key (0600) and printed */
    const char *public_url;  /* base URL clients reach us at, for toolboxProxyUrl
                              * [http://LISTEN:PORT] */
    int warm_pool;           /* started default sandboxes kept ready for plain creates [-1 = 2] */
    const char *default_snapshot; /* "debian": the default snapshot is built from Debian
                                   * packages at first start; "host" (or NULL): a built-in root
                                   * filesystem whose /usr is the host's (fast, for tests) */
    char *const *insecure_registries; /* NULL-terminated "host[:port]" pulled over plain HTTP */
};

struct dt_server;

/* Open the store (creating the default organization and the admin key on first start), set up
 * the runner, re-adopt the sandboxes that still run, and listen. */
int dt_server_new(uv_loop_t *loop, const struct dt_server_config *cfg, struct dt_server **ret,
                  struct dt_error **err);
uint16_t dt_server_port(const struct dt_server *s);
/* Stop listening and free; sandboxes keep running (the next start re-adopts them). Run the
 * loop afterwards until it stops, for libuv's close callbacks. */
void dt_server_free(struct dt_server *s);

#endif
