/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the server-side WebSocket frame parser: no crash, and feeding the input in pieces (sizes
 * taken from the input itself) gives the same completed messages, control frames and final result
 * as feeding it whole. Each completed event is folded into an FNV-1a hash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
fnv(uint64_t h, const void *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *) d)[i]) * 0x100000001b3ULL;
    return h;
}

/* Parse DATA in pieces of 1 + data[k] % MOD bytes (MOD 0: whole); returns the transcript hash. */
static uint64_t
run(const uint8_t *data, size_t size, unsigned mod, int *result)
{
    struct dt_ws_parser p;
    struct dt_ws_event ev;
    uint8_t *buf = malloc(size + 1);
    uint64_t h = 0xcbf29ce484222325ULL, msg = h;
    size_t off = 0, k = 0, c;
    int r = 0;

    memcpy(buf, data, size);
    dt_ws_parser_init(&p, DT_WS_SERVER, 1 << 16);
    while (off < size && r >= 0) {
        size_t end = mod ? off + 1 + data[k++ % size] % mod : size;
        if (end > size)
            end = size;
        while (off < end && (r = dt_ws_parse(&p, buf + off, end - off, &c, &ev)) > 0) {
            off += c;
            if (ev.type == DT_WS_EV_DATA) {
                msg = ev.first ? fnv(0xcbf29ce484222325ULL, &ev.opcode, 1) : msg;
                msg = fnv(msg, ev.data, ev.len);
                h = ev.last ? fnv(h, &msg, sizeof(msg)) : h;
            } else {
                h = fnv(fnv(fnv(h, &ev.opcode, 1), &ev.close_code, 2), ev.data, ev.len);
            }
        }
        if (r == 0)
            off = end; /* 0 means all of the piece was consumed */
    }
    free(buf);
    *result = r > 0 ? 0 : r;
    return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int r1, r2;
    uint64_t whole = run(data, size, 0, &r1);
    uint64_t split = run(data, size, 7 + (size ? data[0] % 64 : 0), &r2);

    DT_ASSERT(whole == split);
    DT_ASSERT(r1 == r2);
    return 0;
}
