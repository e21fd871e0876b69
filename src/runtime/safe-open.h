/* SPDX-License-Identifier: Apache-2.0 */
/* Path resolution confined to a root directory, for paths inside a sandbox's root filesystem:
 * symlinks (absolute or relative) and ".." never leave ROOTFD. Uses
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS); where openat2 is missing (ENOSYS) or
 * blocked (EPERM by seccomp), a component-by-component walk with O_PATH|O_NOFOLLOW that
 * resolves symlinks itself, with the same semantics (at most 40 symlinks, then -ELOOP).
 * Everything here is async-signal-safe (no malloc, buffers on the stack): it runs in the
 * forked child while setting up mounts. */
#ifndef DT_RUNTIME_SAFE_OPEN_H
#define DT_RUNTIME_SAFE_OPEN_H

#include <stdbool.h>
#include <sys/types.h>

/* Tests set this to force the fallback walk. */
extern bool dt_safe_open_force_fallback;

/* Open PATH (absolute or relative, both taken relative to ROOTFD) with FLAGS (O_CLOEXEC is
 * added; O_CREAT creates only the last component, with MODE, never following a symlink there).
 * Returns a new fd or -errno (-ELOOP, -ENOENT, -ENOTDIR, -ENAMETOOLONG if PATH >= PATH_MAX). */
int dt_open_in_root(int rootfd, const char *path, int flags, mode_t mode);

/* mkdir -p PATH inside ROOTFD with MODE for created directories; returns an O_PATH|O_DIRECTORY
 * fd of the final directory, or -errno (-ENOTDIR if a component is not a directory). */
int dt_mkdir_p_in_root(int rootfd, const char *path, mode_t mode);

/* Make sure a regular file exists at PATH inside ROOTFD (creating parents with 0755 and the file
 * with MODE when missing) and return an O_PATH fd of it, for use as a bind-mount target. */
int dt_touch_in_root(int rootfd, const char *path, mode_t mode);

#endif
