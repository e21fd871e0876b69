/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the Socket.IO / Engine.IO v4 message parser: no crash or leak on any bytes, errors are
 * only -EINVAL/-EOPNOTSUPP/-EMSGSIZE with a message, and every accepted message re-encodes to
 * a string that parses back to an equal packet and encodes to the very same string again. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/socketio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_sio_packet p, q;
    struct dt_error *err = NULL;
    char *buf, *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    int r;

    /* An exact-size copy, so that reading past the message is caught by ASan. */
    buf = malloc(size ? size : 1);
    DT_ASSERT(buf);
    if (size)
        memcpy(buf, data, size);

    r = dt_sio_parse(buf, size, &p, &err);
    if (r < 0) {
        DT_ASSERT(r == -EINVAL || r == -EOPNOTSUPP || r == -EMSGSIZE);
        DT_ASSERT(err && err->code == -r && err->message);
        DT_ASSERT(!p.data);
        dt_error_free(err);
        free(buf);
        return 0;
    }
    DT_ASSERT(!err);
    DT_ASSERT(!p.raw || (p.raw >= buf && p.raw + p.raw_len <= buf + size));

    r = dt_sio_encode(&p, &enc, &len, &err);
    if (r == -EMSGSIZE) {
        /* Compact JSON can still be longer than the input ("1e2" becomes "100.0"), so a
         * message near the size cap may not fit once re-encoded. */
        dt_error_free(err);
        dt_sio_packet_done(&p);
        free(buf);
        return 0;
    }
    DT_ASSERT(r == 0);
    DT_ASSERT(len == strlen(enc) && len <= DT_EIO_MAX_PAYLOAD);
    DT_ASSERT(dt_sio_parse(enc, len, &q, NULL) == 0);
    DT_ASSERT(q.eio_type == p.eio_type);
    if (p.eio_type == DT_EIO_MESSAGE) {
        DT_ASSERT(q.sio_type == p.sio_type);
        DT_ASSERT(strcmp(q.nsp, p.nsp) == 0);
        DT_ASSERT(q.ack_id == p.ack_id);
        DT_ASSERT(!q.data == !p.data);
        DT_ASSERT(!p.data || json_equal(q.data, p.data));
        /* Ours is canonical: a second trip gives the same bytes. */
        DT_ASSERT(dt_sio_encode(&q, &enc2, &len2, NULL) == 0);
        DT_ASSERT(len2 == len && memcmp(enc2, enc, len) == 0);
    } else {
        /* Non-message packets are copied through byte for byte. */
        DT_ASSERT(len == size && memcmp(enc, buf, size) == 0);
    }

    free(enc2);
    free(enc);
    dt_sio_packet_done(&q);
    dt_sio_packet_done(&p);
    free(buf);
    return 0;
}
