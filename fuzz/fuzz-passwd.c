/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the agent's /etc/passwd and /etc/group parser: the input is the file text. No crash, and
 * a match really is the entry that was asked for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/passwd.h"
#include "dt/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *) data;
    struct dt_passwd pw = { 0 };
    gid_t gids[8], gid;
    char *name = NULL;
    int n;

    if (dt_passwd_parse_buffer(buf, size, "root", 0, &pw) == 0) {
        DT_ASSERT(strcmp(pw.name, "root") == 0 && pw.home && pw.shell);
        DT_ASSERT(pw.uid != (uid_t) -1 && pw.gid != (gid_t) -1);
    }
    dt_passwd_done(&pw);
    if (dt_passwd_parse_buffer(buf, size, NULL, 1000, &pw) == 0)
        DT_ASSERT(pw.uid == 1000 && pw.name[0] != 0);
    dt_passwd_done(&pw);

    if (dt_group_parse_buffer(buf, size, NULL, 0, &gid, &name) == 0)
        DT_ASSERT(gid == 0 && name && name[0] != 0);
    free(name);
    if (dt_group_parse_buffer(buf, size, "daytona", 0, &gid, NULL) == 0)
        DT_ASSERT(gid != (gid_t) -1);

    n = dt_group_list_buffer(buf, size, "daytona", 1000, gids, (int) ELEMENTSOF(gids));
    DT_ASSERT(n >= 1 && n <= (int) ELEMENTSOF(gids) && gids[0] == 1000);
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            DT_ASSERT(gids[i] != gids[k]);
    return 0;
}
