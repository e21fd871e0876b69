/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the registry client's WWW-Authenticate parser: the input is the header value, which comes
 * from any registry we talk to. No crash, no leak, and what comes out is sane: a known scheme and
 * parameters without control characters (they end up in a URL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/macros.h"
#include "dt/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *s, size_t max)
{
    if (!s)
        return;
    DT_ASSERT(strlen(s) <= max);
    for (const char *p = s; *p; p++)
        DT_ASSERT((unsigned char) *p >= 0x20 || *p == '\t');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_registry_challenge c;
    /* An exact-size copy, so ASan sees any read past LEN. */
    char *buf = malloc(size ? size : 1);
    int r;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    r = dt_registry_parse_challenge(buf, size, &c);
    if (r == 0) {
        DT_ASSERT(c.scheme == DT_REGISTRY_AUTH_BASIC || c.scheme == DT_REGISTRY_AUTH_BEARER);
        check(c.realm, size);
        check(c.service, size);
        check(c.scope, size);
    } else {
        DT_ASSERT(r == -EINVAL || r == -ENOENT);
        DT_ASSERT(!c.realm && !c.service && !c.scope);
    }
    dt_registry_challenge_done(&c);
    free(buf);
    return 0;
}
