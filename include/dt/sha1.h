/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-1 (RFC 3174) and base64 (RFC 4648) for the WebSocket handshake, so that static binaries
 * (the in-sandbox agent) need no libcrypto. SHA-1 is used here only for Sec-WebSocket-Accept,
 * where RFC 6455 mandates it; never use it for anything that needs collision resistance. */
#ifndef DT_SHA1_H
#define DT_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define DT_SHA1_LEN 20

/* Streaming context; initialise with dt_sha1_init(). Plain data, no cleanup needed. */
struct dt_sha1 {
    uint32_t h[5];
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[64];
    size_t n; /* bytes pending in buf */
};

void dt_sha1_init(struct dt_sha1 *c);
void dt_sha1_update(struct dt_sha1 *c, const void *data, size_t len);
/* Write the 20-byte digest to OUT. The context must be re-initialised before reuse. */
void dt_sha1_final(struct dt_sha1 *c, uint8_t out[DT_SHA1_LEN]);
/* One-shot convenience. */
void dt_sha1(const void *data, size_t len, uint8_t out[DT_SHA1_LEN]);

/* Length of the padded base64 encoding of N bytes, without the terminating NUL. */
#define DT_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode LEN bytes of DATA as padded standard base64 (RFC 4648 section 4) into OUT, which must
 * hold DT_BASE64_LEN(len) + 1 bytes. Writes a terminating NUL; returns the length written. */
size_t dt_base64_encode(const void *data, size_t len, char *out);

/* Strictly decode padded standard base64: length a multiple of 4, '=' only as final padding,
 * unused trailing bits zero, no whitespace. OUT must hold (len / 4) * 3 bytes.
 * Returns the decoded length, or -EINVAL for input that is not canonical base64. */
long dt_base64_decode(const char *in, size_t len, uint8_t *out);

#endif
