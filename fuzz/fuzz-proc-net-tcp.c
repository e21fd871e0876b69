/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the /proc/net/tcp{,6} listener parser: no crash, and the port array is sorted, unique,
 * non-zero and agrees with the set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sysinfo.h"
#include "dt/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_port_set set = { 0 };
    uint16_t *ports;
    size_t n, taken;

    taken = dt_port_set_parse(&set, (const char *) data, size);
    dt_port_set_to_array(&set, &ports, &n);
    DT_ASSERT(n <= taken);
    DT_ASSERT(!dt_port_set_has(&set, 0));
    for (size_t i = 0; i < n; i++) {
        DT_ASSERT(ports[i] > 0 && dt_port_set_has(&set, ports[i]));
        DT_ASSERT(i == 0 || ports[i - 1] < ports[i]);
    }
    free(ports);
    return 0;
}
