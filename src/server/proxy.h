/* SPDX-License-Identifier: Apache-2.0 */
/* The toolbox proxy: a request daytonad received for /toolbox/{sandboxId}/... is forwarded to
 * that sandbox's agent over its unix socket, streamed in both directions with backpressure (a
 * 1 GiB upload is never buffered), and WebSocket upgrades are tunnelled byte for byte once the
 * agent answered 101. */
#ifndef DT_SERVER_PROXY_H
#define DT_SERVER_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <uv.h>

#include "dt/httpd.h"

typedef void (*dt_proxy_activity_fn)(void *userdata);
typedef void (*dt_proxy_done_fn)(void *userdata);

/* Forward REQ to the agent listening on SOCKET_PATH as PATH_AND_QUERY (e.g. "/files?path=a",
 * already stripped of the "/toolbox/{id}" prefix, query kept verbatim; it must start with '/'
 * and hold no space, tab, CR or LF, else 400). Call from the request handler on LOOP, the loop
 * REQ's server runs on; the proxy owns REQ (its close, drain and body callbacks) until it is
 * done. Nothing is returned: every outcome is an HTTP answer.
 *
 * - One new agent connection per request (connect timeout 10 s). Request headers are passed on
 *   except hop-by-hop ones (Connection and what it names, Keep-Alive, Transfer-Encoding, TE,
 *   Trailer, Proxy-*, Upgrade unless upgrading), Host (sent as "sandbox"), Expect (httpd
 *   already answered 100-continue) and Authorization. A Content-Length body is streamed as is,
 *   a chunked one re-chunked.
 * - The agent's status, headers and body come back as they are (the SDK's error envelopes
 *   included), minus hop-by-hop headers and Date (httpd writes its own).
 * - The agent cannot be reached: 503 in the SDK's envelope, source "DAYTONA_PROXY". It fails
 *   before answering: 502, same envelope. It fails mid-body: the client connection is cut
 *   (a truncated body, never a wrong one).
 * - The client goes away: the agent connection is closed at once (the agent cancels its work).
 * - An upgrade request (dt_http_head.upgrade) that the agent answers with 101 becomes a tunnel:
 *   the agent's 101 head goes to the client and bytes are spliced both ways until either side
 *   closes. Any other answer is passed on as a normal response.
 * ACTIVITY (may be NULL) is called when the request starts and while bytes flow (at most once a
 * second), so auto-stop sees a busy sandbox as busy.
 * The process must ignore SIGPIPE (libuv writes to unix sockets without MSG_NOSIGNAL). */
void dt_proxy_forward(uv_loop_t *loop, struct dt_httpd_req *req, const char *socket_path,
                      const char *path_and_query, dt_proxy_activity_fn activity, void *userdata);

/* Where dt_proxy_forward_to() sends a request, and how. */
struct dt_proxy_target {
    const char *socket_path;        /* the agent's unix socket, or NULL and: */
    const struct sockaddr_in *addr; /* a TCP port in the sandbox (previews). A refused or timed
                                     * out connect is a 502 naming the port (not a 503) */
    const char *path_and_query;     /* as for dt_proxy_forward */
    const char *host;               /* the Host header sent; NULL: "sandbox" */
    const char *drop_header;        /* one more request header not passed on (a credential of
                                     * ours, e.g. the preview token), or NULL */
    bool keep_authorization;        /* pass Authorization on (it is the previewed app's) */
    dt_proxy_activity_fn activity;  /* as for dt_proxy_forward; may be NULL */
    dt_proxy_done_fn done;          /* called once when the proxy is finished with USERDATA
                                     * (also when it answered at once); may be NULL */
    void *userdata;
};

/* dt_proxy_forward, generalized: to a unix socket or a TCP address, with the Host header and
 * the credentials to drop chosen by the caller. T and its strings are only read during the
 * call. */
void dt_proxy_forward_to(uv_loop_t *loop, struct dt_httpd_req *req,
                         const struct dt_proxy_target *t);

#endif
