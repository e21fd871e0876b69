/* SPDX-License-Identifier: Apache-2.0 */
/* Capabilities inside the sandbox: Docker's default set (CHOWN, DAC_OVERRIDE, FSETID, FOWNER,
 * MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL,
 * AUDIT_WRITE), as a bit mask. Applying is done with raw prctl/capset syscalls so it is
 * async-signal-safe and may run in a forked child just before execve(). */
#ifndef DT_RUNTIME_CAPS_H
#define DT_RUNTIME_CAPS_H

#include <stdbool.h>
#include <stdint.h>

/* Docker's default capability set as a mask of (1ULL << CAP_xxx). */
uint64_t dt_caps_default_mask(void);

/* Parse a capability name ("CAP_NET_ADMIN" or "net_admin", case-insensitive) into its number;
 * -EINVAL if unknown. */
int dt_caps_from_name(const char *name);

/* Reduce the calling thread's capabilities to KEEP: drop every other capability from the bounding
 * set, clear ambient capabilities, and set permitted/effective to KEEP. Inheritable is left
 * empty (as Docker does since CVE-2022-24769), except when AMBIENT is true: then it is KEEP and
 * KEEP is also raised as ambient capabilities (so a non-root user keeps them across execve;
 * Docker does not, and neither do we by default). Bits of KEEP the running kernel has no
 * capability for are ignored. Returns 0 or -errno (-EPERM without CAP_SETPCAP, or when KEEP
 * asks for a capability not in the permitted set). Async-signal-safe. Call after changing uid
 * (use PR_SET_KEEPCAPS around setresuid) or while still root in the user namespace. */
int dt_caps_apply(uint64_t keep, bool ambient);

/* Read the calling thread's effective set (for tests). */
int dt_caps_get_effective(uint64_t *ret);

#endif
