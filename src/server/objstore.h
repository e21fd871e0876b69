/* SPDX-License-Identifier: Apache-2.0 */
/* The minimal S3 subset the Daytona SDK uses to upload image build contexts (contract §2.8),
 * served by daytonad itself under /s3/ and backed by a local directory, so `Image` objects with
 * local files work without MinIO. Credentials are per organization and derived (HMAC) from a
 * server secret; every S3 request is checked with AWS Signature Version 4. See
 * docs/design/objstore.md. Internal to libdt-server; everything runs on the server's loop. */
#ifndef DT_SERVER_OBJSTORE_H
#define DT_SERVER_OBJSTORE_H

#include <stddef.h>

#include "server/server-int.h"

struct dt_objstore;

/* The bucket push-access hands out (the only one served) and the region it names. */
#define DT_OBJSTORE_BUCKET "daytona-volume-builds"
#define DT_OBJSTORE_REGION "us-east-1"

/* Open (creating) the store in DIR (e.g. DATA_DIR/objects, 0700) and the server secret
 * S->data_dir/objstore-secret (32 random bytes, 0600, created once). Leftover temporary files of
 * an earlier run are removed. S is borrowed and must outlive the store (its public_url is read
 * at each push-access). Returns 0 with *RET (free with dt_objstore_free()), or -errno with *err. */
int dt_objstore_new(struct dt_server *s, const char *dir, struct dt_objstore **ret,
                    struct dt_error **err);
/* Accepts NULL. Requests still streaming into the store keep working until their connections
 * close: call this after dt_httpd_free() of the server's httpd. */
void dt_objstore_free(struct dt_objstore *o);

/* GET /api/object-storage/push-access, already API-key authenticated (C->org is the caller's
 * organization): answers {accessKey, secret, sessionToken, storageUrl, organizationId, bucket,
 * region} for that organization. Answers the request; C stays the caller's. */
void dt_objstore_push_access(struct dt_objstore *o, struct call *c);

/* Any request whose path starts with /s3 (SEG[0] == "s3", N segments as from
 * dt_httpd_req_segments). Not API-key authenticated: checks SigV4 itself. Answers REQ now or
 * later and sets REQ's close callback (replacing the caller's). */
void dt_objstore_handle(struct dt_objstore *o, struct dt_httpd_req *req, const char *const *seg,
                        size_t n);

/* The uploaded context.tar of context HASH (32 lowercase hex digits, from
 * buildInfo.contextHashes) of organization ORG: a new absolute path (free()), or NULL when there
 * is none or ORG/HASH are malformed. */
char *dt_objstore_context_path(struct dt_objstore *o, const char *org, const char *hash);

#endif
