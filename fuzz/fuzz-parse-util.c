/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the strict number/size parsers: no crash, and accepted sizes round-trip sanely. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/parse-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    uint64_t v;
    int64_t i;
    uint32_t u;
    (void) parse_u64(s, &v);
    (void) parse_i64(s, &i);
    (void) parse_u32(s, &u);
    if (parse_millicpus(s, &v) == 0)
        DT_ASSERT(v > 0);
    (void) parse_size(s, &v);
    free(s);
    return 0;
}
