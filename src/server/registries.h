/* SPDX-License-Identifier: Apache-2.0 */
/* Docker registries (contract: the API's /docker-registry): per-organization credentials for
 * the registries images are pulled from, their passwords sealed at rest under
 * DATA_DIR/registry-key, and the lookup the image jobs use at pull time. */
#ifndef DT_SERVER_REGISTRIES_H
#define DT_SERVER_REGISTRIES_H

#include <stddef.h>

#include "dt/error.h"

struct call;
struct dt_server;

/* /api/docker-registry[/...] (SEG[1] == "docker-registry"): list (GET), create (POST),
 * {id} get, PATCH, DELETE, {id}/set-default (POST). Responses never carry the password. */
void dt_registries_route(struct call *c, const char *const *seg, size_t n);

/* The credentials organization ORG keeps for registry HOST (host[:port], exact match after
 * normalisation; docker.io, registry-1.docker.io and index.docker.io are one registry). When
 * several match, the organization's default wins, then the newest. Returns 0 with the
 * decrypted pair (malloc'ed; wipe the password with explicit_bzero() before freeing),
 * -ENOENT when there is none, or another -errno with *err (-EBADMSG: the sealed password does
 * not authenticate under the key; -EPERM: the key file's mode is not 0600). */
int dt_registries_credentials(struct dt_server *s, const char *org, const char *host,
                              char **ret_user, char **ret_password, struct dt_error **err);

#endif
