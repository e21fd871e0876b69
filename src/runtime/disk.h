/* SPDX-License-Identifier: Apache-2.0 */
/* Disk quotas: each sandbox that has a disk limit keeps its writable layer (overlay upper and work
 * directories) in an ext4 filesystem image of that size, attached through a loop device. Writing
 * past the quota fails with ENOSPC inside the sandbox; the quota can grow later (online or
 * offline). The filesystem is mounted as a *detached* mount (fsopen/fsmount) that is referenced
 * only by the sandbox's overlay mount, and the loop device is set to autoclear: when the sandbox's
 * mount namespace goes away, the mount and the loop device go with it, so nothing is left on the
 * host. Not async-signal-safe; dt_disk_create() forks mkfs.ext4 (once per sandbox). */
#ifndef DT_RUNTIME_DISK_H
#define DT_RUNTIME_DISK_H

#include <stdint.h>
#include <sys/types.h>

#include "dt/error.h"

/* Create IMAGE (a sparse file of SIZE_BYTES, >= 16 MiB) holding an empty ext4 filesystem whose
 * root directory is owned by ROOT_UID:ROOT_GID, with no reserved blocks. -EEXIST if IMAGE exists.
 * On failure IMAGE is removed. */
int dt_disk_create(const char *image, uint64_t size_bytes, uid_t root_uid, gid_t root_gid,
                   struct dt_error **err);

/* Attach IMAGE to a free loop device (autoclear) and mount its ext4 filesystem as a detached
 * mount; returns the mount fd (O_CLOEXEC) in *ret_mntfd. If a loop device from an earlier mount of
 * IMAGE is still being torn down, waits up to ~2 s, then -EBUSY (mounting one image twice would
 * corrupt it). If the image file is larger than the filesystem (grown while unmounted), the
 * filesystem is grown to fill it. */
int dt_disk_mount(const char *image, int *ret_mntfd, struct dt_error **err);

/* Grow IMAGE to NEW_SIZE_BYTES (-EINVAL if smaller than now). When MNTFD >= 0 (a mount from
 * dt_disk_mount()) the mounted filesystem is resized online (LOOP_SET_CAPACITY +
 * EXT4_IOC_RESIZE_FS); otherwise the next dt_disk_mount() grows it. */
int dt_disk_grow(const char *image, uint64_t new_size_bytes, int mntfd, struct dt_error **err);

/* Bytes used and total of the filesystem mounted at MNTFD (statfs). */
int dt_disk_usage(int mntfd, uint64_t *ret_used, uint64_t *ret_total);

#endif
