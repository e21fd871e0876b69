/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox's root filesystem, built by the (host-privileged) parent: each read-only image layer
 * is cloned as a detached mount idmapped to the sandbox's user namespace (host uid N appears as
 * uid N inside, while the kernel sees DT_UID_BASE+slot*65536+N), and an overlay of those layers
 * with a per-sandbox upper directory is created as a detached mount for the child to attach.
 * Nothing is mounted in the host's mount namespace. Also: user lookup in an image's /etc/passwd. */
#ifndef DT_RUNTIME_ROOTFS_H
#define DT_RUNTIME_ROOTFS_H

#include <stdbool.h>
#include <sys/types.h>

#include "dt/error.h"

/* Clone the host directory PATH as a detached mount idmapped through USERNS_FD, optionally
 * read-only. Returns the mount fd (O_CLOEXEC) or -errno with *err set. */
int dt_rootfs_idmapped_clone(const char *path, int userns_fd, bool readonly,
                             struct dt_error **err);

/* Clone the host path PATH for a bind mount into a sandbox; nosuid and nodev, optionally
 * read-only. With USERNS_FD < 0 it is not idmapped: the sandbox's root writes there as its
 * unprivileged host uid (DT_UID_BASE + slot * 65536) and sees host-root files as nobody. With a
 * user namespace fd it is idmapped like image layers (volumes shared by sandboxes of different
 * slots): the sandbox's root then creates host-root-owned files, setuid ones too, so PATH must
 * sit below a directory no unprivileged host user can enter (daytonad's 0700 data dir). */
int dt_rootfs_bind_clone(const char *path, bool readonly, int userns_fd, struct dt_error **err);

/* Build the overlay: LAYERS (topmost first), UPPER and WORK given as directory fds (on the same
 * filesystem). Returns the detached overlay mount fd (O_CLOEXEC). */
int dt_rootfs_overlay(char *const *layers, int userns_fd, int upper_fd, int work_fd,
                      struct dt_error **err);

struct dt_user {
    uid_t uid;
    gid_t gid;
    char home[256];
};

/* Resolve SPEC ("name", "uid" or "uid:gid"; NULL = root) against the passwd file of the first of
 * DIRS (NULL-terminated host directories, e.g. upper dir then layers) that has /etc/passwd.
 * Numeric uids need not exist in passwd (home "/" then). -ENOENT: no such user. */
int dt_rootfs_lookup_user(char *const *dirs, const char *spec, struct dt_user *ret,
                          struct dt_error **err);

#endif
