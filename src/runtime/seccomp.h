/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox's seccomp filter, modelled on Docker's default profile: dangerous syscalls (kernel
 * keyring, bpf, perf_event_open, kexec, modules, open_by_handle_at, mount API, namespace
 * creation, clock setting, swap, reboot, ...) fail with EPERM; clone3 fails with ENOSYS so libc
 * falls back to clone(), whose namespace flags are then checked; foreign architectures (x86, x32)
 * get the same rules. The filter is compiled once (libseccomp) into a BPF program in memory and
 * loaded in the child with a bare syscall, so loading is async-signal-safe. */
#ifndef DT_RUNTIME_SECCOMP_H
#define DT_RUNTIME_SECCOMP_H

#include <linux/filter.h>

#include "dt/error.h"
#include "dt/macros.h"

/* Compile the default profile. On success *ret holds a program whose ->filter is malloc'ed and
 * owned by the caller (free(ret->filter)). Not async-signal-safe. */
int dt_seccomp_build_default(struct sock_fprog *ret, struct dt_error **err);

/* The default profile as compiled at build time (the same program dt_seccomp_build_default()
 * returns on the build machine; a unit test checks they agree). *ret points at static storage:
 * do not free. Costs nothing: use this on the sandbox start path. */
void dt_seccomp_default(struct sock_fprog *ret);

/* Load PROG into the calling thread (SECCOMP_SET_MODE_FILTER with TSYNC off). The caller must
 * have set no_new_privs or hold CAP_SYS_ADMIN. Async-signal-safe; returns 0 or -errno. */
int dt_seccomp_load(const struct sock_fprog *prog);

/* The names of the syscalls the default profile denies with EPERM whatever their arguments (for
 * docs and tests), NULL-terminated. Names an ABI lacks are skipped for it. Not listed, because
 * they depend on arguments or return another errno: clone with a CLONE_NEW* flag (EPERM),
 * personality other than 0, 8, 0x20000, 0x20008, 0xffffffff (EPERM), clone3 (ENOSYS). */
extern const char *const dt_seccomp_denied_syscalls[];

#endif
