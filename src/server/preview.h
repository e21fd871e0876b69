/* SPDX-License-Identifier: Apache-2.0 */
/* Preview URLs (contract §2.1, docs/design/preview.md): the API that hands out preview links and
 * signed preview URLs, and the preview proxy that forwards a browser's or a program's requests
 * to a port a sandbox process listens on, over TCP on the host bridge. */
#ifndef DT_SERVER_PREVIEW_H
#define DT_SERVER_PREVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "dt/httpd.h"
#include "server/server-int.h"

/* GET  /api/sandbox/{id}/ports/{port}/preview-url          -> {sandboxId, url, token}
 * GET  /api/sandbox/{id}/ports/{port}/signed-preview-url?expiresInSeconds=S
 *                                                          -> {sandboxId, port, token, url}
 * POST /api/sandbox/{id}/ports/{port}/signed-preview-url/{token}/expire
 * SEG[0] == "api", SEG[3] == "ports"; the caller authenticated C. Answers every request (404
 * for another shape). */
void dt_preview_route_api(struct call *c, const char *const *seg, size_t n);

/* A request for a preview: the path /preview/{sandboxId or signed token}/{port}[/rest...] or a
 * Host header {port}-{sandboxId or signed token}.{anything}. Answers it (authenticating with the
 * x-daytona-preview-token header, the signed token, or the sandbox being public, then
 * forwarding) and returns true; false when REQ is not a preview request. Call first thing in
 * the server's request handler, before API-key authentication. */
bool dt_preview_handle(struct dt_server *s, struct dt_httpd_req *req);

/* Whether TOKEN is the standard preview token of sandbox ID's PORT (constant-time compare). For
 * the toolbox: browser runtimes authenticate WebSockets with the token of port 1 in a
 * DAYTONA_SANDBOX_AUTH_KEY query parameter (contract §3.9). */
bool dt_preview_token_valid(struct dt_server *s, const char *id, unsigned port,
                            const char *token);

#endif
