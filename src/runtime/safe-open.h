/* SPDX-License-Identifier: Apache-2.0 */
/* Path resolution confined to a root directory, for paths inside a sandbox's root filesystem:
 * symlinks (absolute or relative) and ".." never leave ROOTFD. Uses
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS); where openat2 is missing (ENOSYS) or
 * blocked (EPERM by seccomp), a component-by-component walk with O_PATH|O_NOFOLLOW that
 * resolves symlinks itself, with the same semantics (at most 40 symlinks, then -ELOOP).
 * Everything here is async-signal-safe (no malloc, buffers on the stack, about 16 KiB of it):
 * it runs in the forked child while setting up mounts. */
#ifndef DT_RUNTIME_SAFE_OPEN_H
#define DT_RUNTIME_SAFE_OPEN_H

#include <stdbool.h>
#include <sys/types.h>

/* Tests set this to force the fallback walk. Not thread-safe; leave it alone elsewhere. */
extern bool dt_safe_open_force_fallback;

/* Open PATH (absolute or relative, both taken relative to ROOTFD) with FLAGS (O_CLOEXEC is
 * added; O_CREAT creates only the last component, with MODE, never following a symlink there:
 * O_NOFOLLOW is added, so a symlink there, dangling or not, gives -ELOOP). A trailing slash
 * requires a directory (and gives -EISDIR with O_CREAT), as in the kernel. Magic links
 * (/proc/<pid>/fd/N and friends) are refused with -ELOOP. Returns a new fd owned by the caller,
 * or -errno: -ELOOP (more than 40 symlinks, or a refused one), -ENOENT (also for ""),
 * -ENOTDIR, -EISDIR, -ENAMETOOLONG (PATH >= PATH_MAX or a component > NAME_MAX; the fallback
 * also when spliced symlink bodies exceed PATH_MAX, which the kernel would allow). */
int dt_open_in_root(int rootfd, const char *path, int flags, mode_t mode);

/* mkdir -p PATH inside ROOTFD with MODE for created directories; returns an O_PATH|O_DIRECTORY
 * fd of the final directory (owned by the caller), or -errno (-ENOTDIR if a component is not a
 * directory). Symlinks anywhere in PATH, the last component included, are followed inside the
 * root; a missing link target is created there. Always uses the component walk. */
int dt_mkdir_p_in_root(int rootfd, const char *path, mode_t mode);

/* Make sure a file exists at PATH inside ROOTFD (creating parents as dt_mkdir_p_in_root() does,
 * with 0755, and the file with MODE when missing) and return an O_PATH fd of it (owned by the
 * caller), for use as a bind-mount target. An existing non-directory (a device node, say) is
 * accepted as it is. The last component is never followed: -ELOOP if it is a symlink (the
 * caller may replace it), -EISDIR if it is a directory or PATH ends in "/", "." or "..". */
int dt_touch_in_root(int rootfd, const char *path, mode_t mode);

#endif
