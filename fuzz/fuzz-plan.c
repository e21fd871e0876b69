/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the sandbox plan validator (the gate every user-supplied field passes before any side
 * effect) and the CIDR parser: fields come from NUL-separated input, limits from its bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "runtime/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = xmalloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *f[10] = {0};
    size_t nf = 0;
    for (char *p = buf; nf < 10 && p <= buf + size; p += strlen(p) + 1)
        f[nf++] = p;

    struct dt_plan plan;
    dt_plan_init(&plan);
    plan.id = f[0];
    char *layers[] = {nf > 1 ? f[1] : (char *) "/", NULL};
    plan.layers = layers;
    char *args[] = {nf > 2 ? f[2] : (char *) "", NULL};
    plan.args = args;
    char *env[] = {nf > 3 ? f[3] : NULL, NULL};
    plan.env = env;
    plan.hostname = nf > 4 ? f[4] : NULL;
    plan.user = nf > 5 ? f[5] : NULL;
    plan.cwd = nf > 6 ? f[6] : NULL;
    char *cidrs[] = {nf > 7 ? f[7] : NULL, NULL};
    plan.allow_cidrs = cidrs;
    if (size > 0) {
        plan.memory_bytes = (uint64_t) data[0] << (data[0] % 40);
        plan.cpu_millicpus = data[size - 1] * 10u;
        plan.net_mode = data[0] & 1 ? DT_NET_BRIDGE : DT_NET_NONE;
    }
    struct dt_error *err = NULL;
    if (dt_plan_validate(&plan, &err) < 0)
        DT_ASSERT(err && err->message);
    dt_error_free(err);

    uint32_t a;
    unsigned pfx;
    if (nf > 7 && dt_net_parse_cidr(f[7], &a, &pfx) == 0)
        DT_ASSERT(pfx <= 32);
    free(buf);
    return 0;
}
