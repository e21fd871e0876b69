/* SPDX-License-Identifier: Apache-2.0 */
/* The default seccomp program, compiled at build time by tools/gen-seccomp.c (see seccomp.h). */
#include "seccomp.h"

#include "seccomp-default.h"

void
dt_seccomp_default(struct sock_fprog *ret)
{
    ret->len = (unsigned short) ELEMENTSOF(dt_seccomp_default_insns);
    ret->filter = (struct sock_filter *) dt_seccomp_default_insns;
}
