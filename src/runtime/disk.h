/* SPDX-License-Identifier: Apache-2.0 */
/* Disk quotas: each sandbox that has a disk limit keeps its writable layer (overlay upper and work
 * directories) in an ext4 filesystem image of that size, attached through a loop device. Writing
 * past the quota fails with ENOSPC inside the sandbox; the quota can grow later (online or
 * offline). The filesystem is mounted as a *detached* mount (fsopen/fsmount) that is referenced
 * only by the sandbox's overlay mount, and the loop device is set to autoclear: when the sandbox's
 * mount namespace goes away, the mount and the loop device go with it, so nothing is left on the
 * host. Needs root (CAP_SYS_ADMIN for loop devices and mounts) and e2fsprogs (mkfs.ext4,
 * resize2fs). None of these calls is async-signal-safe or usable in a forked child; all block
 * (fork+exec of e2fsprogs, up to ~2 s of waiting in dt_disk_mount()), so keep them off an event
 * loop thread. Design notes and measurements: docs/design/disk.md. */
#ifndef DT_RUNTIME_DISK_H
#define DT_RUNTIME_DISK_H

#include <stdint.h>
#include <sys/types.h>

#include "dt/error.h"

/* Create IMAGE (a sparse file of SIZE_BYTES, 16 MiB .. 16 TiB, mode 0600) holding an empty ext4
 * filesystem (4 KiB blocks, one inode per 16 KiB, journal, no reserved blocks) whose root
 * directory is owned by ROOT_UID:ROOT_GID. Takes ~10-30 ms whatever the size (lazy init).
 * Errors: -EEXIST if IMAGE exists (it is left alone), -EINVAL/-EFBIG for a size out of range,
 * -ENOENT if mkfs.ext4 is not installed, -EIO if mkfs.ext4 fails (its stderr is in the message).
 * On failure IMAGE is removed. */
int dt_disk_create(const char *image, uint64_t size_bytes, uid_t root_uid, gid_t root_gid,
                   struct dt_error **err);

/* Attach IMAGE to a free loop device (autoclear, direct I/O) and mount its ext4 filesystem as a
 * detached mount (nodev, nosuid); returns the mount fd (O_CLOEXEC, owned by the caller) in
 * *ret_mntfd. Closing it (and every other reference to the mount) unmounts the filesystem and
 * frees the loop device. If a loop device is still backed by IMAGE (another mount, or one being
 * torn down), waits up to ~2 s, then -EBUSY: mounting one image twice would corrupt it. Mounts of
 * one image from several processes are serialised by an flock on IMAGE. If the image file is
 * larger than the filesystem (grown while unmounted, or while mounted without CAP_SYS_RESOURCE),
 * the filesystem is first grown to fill it with resize2fs (offline, no capability needed).
 * Errors: -ENOENT (no IMAGE), -EINVAL (not a regular file, no ext4 in it), -EBUSY, or the
 * kernel's error for a corrupt filesystem (e.g. -EBADMSG). */
int dt_disk_mount(const char *image, int *ret_mntfd, struct dt_error **err);

/* Grow IMAGE to NEW_SIZE_BYTES (-EINVAL if smaller than now, -EFBIG above 16 TiB). When
 * MNTFD >= 0 (IMAGE's mount from dt_disk_mount(); -EINVAL, with nothing changed, if it is the
 * mount of something else) the mounted filesystem is resized online (LOOP_SET_CAPACITY +
 * EXT4_IOC_RESIZE_FS). The kernel allows online resizing only with CAP_SYS_RESOURCE: without it
 * this returns -EPERM after growing the file, and the filesystem grows at the next mount.
 * When MNTFD < 0 the next dt_disk_mount() grows the filesystem. Growing to the current size
 * retries a failed online resize. */
int dt_disk_grow(const char *image, uint64_t new_size_bytes, int mntfd, struct dt_error **err);

/* Bytes used and total of the filesystem mounted at MNTFD (fstatfs; the total leaves out the
 * journal and other metadata). Either pointer may be NULL. Returns 0 or -errno. Safe to call
 * from an event loop. */
int dt_disk_usage(int mntfd, uint64_t *ret_used, uint64_t *ret_total);

#endif
