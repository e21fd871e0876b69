/* SPDX-License-Identifier: Apache-2.0 */
/* A sandbox's former overlayfs upper directory turned into an image layer in place: owners back
 * to the image's numbering, overlayfs' bookkeeping xattrs dropped. The tree was written by
 * untrusted code: nothing here follows a symlink or opens a file for reading. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dt/image.h"
#include "dt/macros.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_DEPTH 1024

/* Inodes with several names, so each is shifted once. */
struct inode_set {
    ino_t *v;
    size_t n, cap;
};

static bool
inode_set_add(struct inode_set *s, ino_t ino)
{
    if (s->n * 2 >= s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        ino_t *nv = xcalloc(ncap, sizeof(*nv));
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i]) {
                size_t j = s->v[i] % ncap;
                while (nv[j])
                    j = (j + 1) % ncap;
                nv[j] = s->v[i];
            }
        free(s->v);
        s->v = nv;
        s->cap = ncap;
    }
    size_t j = ino % s->cap;
    while (s->v[j]) {
        if (s->v[j] == ino)
            return false;
        j = (j + 1) % s->cap;
    }
    s->v[j] = ino;
    s->n++;
    return true;
}

/* Drop trusted.overlay.* except "opaque" from the object at PATH (a /proc/self/fd path of an
 * O_PATH fd, which the *xattr calls resolve to that very object, symlinks included). */
static int
strip_xattrs(const char *path, const char *name, struct dt_error **err)
{
    char buf[64 * 1024];
    ssize_t n = listxattr(path, buf, sizeof(buf));

    if (n < 0) {
        if (errno == ENOTSUP || errno == EPERM)
            return 0;
        return dt_error_errno(err, errno, "list xattrs of '%s'", name);
    }
    for (ssize_t off = 0; off < n; off += (ssize_t) strlen(buf + off) + 1) {
        const char *x = buf + off;
        if (strncmp(x, "trusted.overlay.", 16) != 0 || strcmp(x, "trusted.overlay.opaque") == 0)
            continue;
        if (removexattr(path, x) < 0 && errno != ENODATA)
            return dt_error_errno(err, errno, "remove xattr %s of '%s'", x, name);
    }
    return 0;
}

static int
shift_one(int dirfd, const char *name, const struct stat *st, uint32_t base,
          struct inode_set *seen, struct dt_error **err)
{
    char path[64];
    uid_t uid = st->st_uid;
    gid_t gid = st->st_gid;
    int r;

    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && !inode_set_add(seen, st->st_ino))
        return 0;
    /* What the sandbox created is owned by its range; what overlayfs made with the mounter's
     * credentials (whiteouts) is owned by host root: that is the image's root. */
    uid = uid >= base && uid - base < DT_UID_RANGE ? uid - base : 0;
    gid = gid >= base && gid - base < DT_UID_RANGE ? gid - base : 0;

    _cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "open '%s'", name);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return dt_error_errno(err, errno, "chown '%s'", name);
    /* chown cleared setuid/setgid: put the mode back (not for symlinks, which have none). */
    if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
        chmod(path, st->st_mode & 07777) < 0)
        return dt_error_errno(err, errno, "chmod '%s'", name);
    r = strip_xattrs(path, name, err);
    return r;
}

static int
walk(int dirfd, uint32_t base, struct inode_set *seen, unsigned depth, struct dt_error **err)
{
    if (depth > MAX_DEPTH)
        return dt_error_set(err, ELOOP, "layer directory nested deeper than %d", MAX_DEPTH);
    /* A new open file description: a dup would share (and move) the caller's offset. */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "dup");
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        safe_close(fd);
        return dt_error_errno(err, e, "read directory");
    }
    struct dirent *de;
    int r = 0;
    while (r >= 0 && (de = readdir(d))) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = dt_error_errno(err, errno, "stat '%s'", de->d_name);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = dt_error_errno(err, errno, "open '%s'", de->d_name);
                break;
            }
            r = walk(sub, base, seen, depth + 1, err);
            safe_close(sub);
            if (r < 0)
                break;
        }
        r = shift_one(dirfd, de->d_name, &st, base, seen, err);
    }
    closedir(d);
    return r;
}

int
dt_layer_from_upper(int dirfd, uint32_t uid_base, struct dt_error **err)
{
    struct inode_set seen = {0};
    struct stat st;
    int r;

    if (fstat(dirfd, &st) < 0)
        return dt_error_errno(err, errno, "stat the upper directory");
    r = walk(dirfd, uid_base, &seen, 0, err);
    if (r >= 0) {
        /* The root itself: "/" of the image. */
        if (fchown(dirfd, st.st_uid >= uid_base && st.st_uid - uid_base < DT_UID_RANGE
                                  ? st.st_uid - uid_base : 0,
                   st.st_gid >= uid_base && st.st_gid - uid_base < DT_UID_RANGE
                                  ? st.st_gid - uid_base : 0) < 0)
            r = dt_error_errno(err, errno, "chown the layer's root");
        else {
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/fd/%d", dirfd);
            r = strip_xattrs(path, "/", err);
        }
    }
    free(seen.v);
    if (r < 0)
        return dt_error_wrap(err, "turn a sandbox's writable layer into an image layer");
    return r;
}
