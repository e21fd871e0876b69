/* SPDX-License-Identifier: Apache-2.0 */
/* The default seccomp program, compiled at build time by tools/gen-seccomp.c, and its loader:
 * all a sandbox start needs, without libseccomp (see seccomp.h). */
#include "seccomp.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp-default.h"

void
dt_seccomp_default(struct sock_fprog *ret)
{
    ret->len = (unsigned short) ELEMENTSOF(dt_seccomp_default_insns);
    ret->filter = (struct sock_filter *) dt_seccomp_default_insns;
}

int
dt_seccomp_load(const struct sock_fprog *prog)
{
    /* A bare syscall: no allocation, nothing libseccomp might do behind our back after fork().
     * Flags 0: no TSYNC, the child is single-threaded. */
    return RET_NERRNO((int) syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog));
}
