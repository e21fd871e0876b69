/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking OCI distribution v2 registry client (libcurl easy interface): fetch manifests and
 * stream blobs with digest verification, Basic and Bearer-token authentication, retries on 429 and
 * 5xx. Knows nothing about image references or manifest formats (that is oci.h): callers pass an
 * already-resolved registry host and repository. */
#ifndef DT_REGISTRY_H
#define DT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

/* Hard limits on what a registry (an outside party) can make us hold in memory. */
#define DT_REGISTRY_MANIFEST_MAX (4u * 1024 * 1024)
#define DT_REGISTRY_TOKEN_MAX    (1u * 1024 * 1024)
#define DT_REGISTRY_CHALLENGE_MAX 8192 /* WWW-Authenticate, all headers together */

/* dt_registry_get_blob(): the size is not known in advance. */
#define DT_REGISTRY_SIZE_UNKNOWN UINT64_MAX

enum dt_registry_scheme {
    /* https, except plain http for loopback hosts (localhost, 127.0.0.0/8, [::1]), which is
     * Docker's default notion of an insecure registry. */
    DT_REGISTRY_SCHEME_AUTO = 0,
    DT_REGISTRY_SCHEME_HTTPS, /* https for every host, loopback included */
    DT_REGISTRY_SCHEME_HTTP,  /* plain http for every host ("insecure registry") */
};

struct dt_registry_opts {
    const char *user_agent; /* NULL: "daytona" */
    /* Credentials, used for Basic auth and sent to the token realm for Bearer auth. Both NULL:
     * anonymous. They are only ever sent after the registry asked for them (a 401). */
    const char *username;
    const char *password;
    enum dt_registry_scheme scheme;
    long timeout_s;      /* connect timeout, and abort when no byte arrives for this long; 0: 30 */
    const char *ca_file; /* PEM bundle to trust instead of the system's; NULL: system */
    unsigned max_retries; /* on 429/5xx/transient network errors; 0: 3 */
};

struct dt_registry;

/* Called from dt_registry_get_blob() after each chunk written: DONE bytes so far out of TOTAL
 * (expected_size, else the Content-Length, else DT_REGISTRY_SIZE_UNKNOWN). Return 0 to continue
 * or a negative errno to abort the download with that errno. */
typedef int (*dt_registry_progress_fn)(uint64_t done, uint64_t total, void *userdata);

/* Create a client. The strings in O are copied. Returns 0 and a new client in *ret (free with
 * dt_registry_free()), or -errno. One client per thread: a client is not thread-safe, distinct
 * clients are (curl_global_init runs once, under pthread_once). The client caches bearer tokens
 * per host+repository and keeps connections alive between calls. */
int dt_registry_new(const struct dt_registry_opts *o, struct dt_registry **ret,
                    struct dt_error **err);
/* Accepts NULL. */
void dt_registry_free(struct dt_registry *r);
static inline void
dt_registry_freep(struct dt_registry **r)
{
    dt_registry_free(*r);
    *r = NULL;
}

/* GET /v2/REPO/manifests/REF from HOST ("127.0.0.1:5000", "registry-1.docker.io"). REF is a tag
 * or a "sha256:<hex>" digest. ACCEPT is the Accept header value (comma-separated media types);
 * NULL: OCI and Docker v2 manifests and indexes.
 * On success returns 0 and:
 *   *ret_body        the raw bytes (malloc'ed, NUL-terminated for convenience, caller frees);
 *   *ret_len         their length (at most DT_REGISTRY_MANIFEST_MAX);
 *   *ret_media_type  the Content-Type without parameters, or NULL when absent (caller frees);
 *   *ret_digest      "sha256:<hex>" of the bytes (caller frees). Any output pointer may be NULL.
 * The digest is verified: against REF when REF is a digest and against Docker-Content-Digest when
 * the registry sent a sha256 one; a mismatch is -EBADMSG.
 * Errors: -ENOENT (unknown repository or manifest), -EACCES (authentication failed or refused),
 * -EAGAIN (still rate-limited after retries), -EIO (server errors), -ECONNREFUSED (cannot
 * connect), -EHOSTUNREACH (cannot resolve), -ETIMEDOUT, -EFBIG (manifest over the limit), -EINVAL
 * (bad host/repo/ref), -EPROTO (TLS failure, malformed challenge or token response).
 * 429/5xx and transient network errors are retried max_retries times, sleeping 250 ms, 1 s, 4 s
 * (or the server's Retry-After, at most 10 s): this call can block for a while. *err names host, repository and reference and
 * carries the registry's own error code and message when it sent one. */
int dt_registry_get_manifest(struct dt_registry *r, const char *host, const char *repo,
                             const char *ref, const char *accept, char **ret_body, size_t *ret_len,
                             char **ret_media_type, char **ret_digest, struct dt_error **err);

/* GET /v2/REPO/blobs/DIGEST from HOST, following redirects to blob storage (credentials are
 * never sent to another host), and stream the bytes into OUT_FD (a file or a pipe; not closed).
 * DIGEST must be "sha256:<64 lowercase hex>". EXPECTED_SIZE, unless DT_REGISTRY_SIZE_UNKNOWN,
 * is enforced while streaming. PROGRESS may be NULL.
 * Returns 0 when the size and sha256 matched. -EBADMSG on a digest or size mismatch: the bytes
 * HAVE BEEN WRITTEN to OUT_FD by then (streaming), so callers must discard what they wrote.
 * On any other error some bytes may also have been written. Other errors as for
 * dt_registry_get_manifest(), plus the errno of a failed write() and of PROGRESS. */
int dt_registry_get_blob(struct dt_registry *r, const char *host, const char *repo,
                         const char *digest, int out_fd, uint64_t expected_size,
                         dt_registry_progress_fn progress, void *userdata, struct dt_error **err);

/* --- Exposed for tests and the fuzzer --- */

enum dt_registry_auth_scheme {
    DT_REGISTRY_AUTH_NONE = 0, /* no usable challenge */
    DT_REGISTRY_AUTH_BASIC,
    DT_REGISTRY_AUTH_BEARER,
};

struct dt_registry_challenge {
    enum dt_registry_auth_scheme scheme;
    char *realm;   /* malloc'ed or NULL, unescaped */
    char *service; /* malloc'ed or NULL */
    char *scope;   /* malloc'ed or NULL */
};

/* Parse a WWW-Authenticate value (RFC 9110 section 11.6.1: one or more challenges, auth-params
 * with token or quoted-string values, case-insensitive scheme and parameter names). Picks the
 * first Bearer challenge, else the first Basic one. LEN bytes of VALUE (need not be
 * NUL-terminated; at most DT_REGISTRY_CHALLENGE_MAX). Returns 0 and fills *ret (release with
 * dt_registry_challenge_done()), -ENOENT when there is no Basic or Bearer challenge, or -EINVAL
 * on a syntax error. *ret is left zeroed on failure. Pure function, safe anywhere. */
int dt_registry_parse_challenge(const char *value, size_t len, struct dt_registry_challenge *ret);
void dt_registry_challenge_done(struct dt_registry_challenge *c);

#endif
