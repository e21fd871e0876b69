/* SPDX-License-Identifier: Apache-2.0 */
/* Idmapped layers, the overlay root filesystem and user lookup: see rootfs.h. */
#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/parse-util.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "safe-open.h"
#include "dt/banned.h"

int
dt_rootfs_idmapped_clone(const char *path, int userns_fd, bool readonly, struct dt_error **err)
{
    _cleanup_close_ int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "clone mount of '%s'", path);
    struct mount_attr a = {
            .attr_set = MOUNT_ATTR_IDMAP | (readonly ? MOUNT_ATTR_RDONLY : 0),
            .userns_fd = (uint64_t) userns_fd,
    };
    if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return dt_error_errno(err, errno,
                              "idmap '%s' (the kernel and filesystem must support idmapped mounts)",
                              path);
    return TAKE_FD(fd);
}

int
dt_rootfs_bind_clone(const char *path, bool readonly, int userns_fd, struct dt_error **err)
{
    _cleanup_close_ int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "clone mount of '%s'", path);
    struct mount_attr a = {
            .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0) |
                        (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0),
            .userns_fd = userns_fd >= 0 ? (uint64_t) userns_fd : 0,
    };
    if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return dt_error_errno(err, errno, "set attributes of bind mount '%s'", path);
    return TAKE_FD(fd);
}

int
dt_rootfs_overlay(char *const *layers, int userns_fd, int upper_fd, int work_fd,
                  struct dt_error **err)
{
    size_t n = strv_length(layers);
    _cleanup_free_ int *fds = xcalloc(n, sizeof(int));
    int r = 0;

    for (size_t i = 0; i < n; i++)
        fds[i] = -EBADF;
    /* Layers are passed as /proc/self/fd/N paths: overlayfs resolves them at mount time to the
     * idmapped clones, which are in no mount namespace at all. */
    char *lower = xstrdup("");
    for (size_t i = 0; i < n && r >= 0; i++) {
        r = dt_rootfs_idmapped_clone(layers[i], userns_fd, true, err);
        if (r < 0)
            break;
        fds[i] = r;
        char *l = xasprintf("%s%s/proc/self/fd/%d", lower, i ? ":" : "", fds[i]);
        free(lower);
        lower = l;
    }

    int fsfd = -EBADF, mfd = -EBADF;
    if (r >= 0) {
        char upper[64], work[64];
        snprintf(upper, sizeof(upper), "/proc/self/fd/%d", upper_fd);
        snprintf(work, sizeof(work), "/proc/self/fd/%d", work_fd);
        fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fsfd < 0)
            r = dt_error_errno(err, errno, "open overlay filesystem");
        else if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0)
            r = dt_error_errno(err, errno, "set overlay lower layers");
        else if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0)
            r = dt_error_errno(err, errno, "set overlay upper directory");
        else if (fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0)
            r = dt_error_errno(err, errno, "set overlay work directory");
        else if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
            /* The kernel explains refusals in the fs context's log: pass the first line on. */
            char msg[256] = "";
            ssize_t k = read(fsfd, msg, sizeof(msg) - 1);
            msg[k > 0 ? k : 0] = 0;
            if (k > 0 && msg[k - 1] == '\n')
                msg[k - 1] = 0;
            r = dt_error_errno(err, errno, "create overlay%s%s", *msg ? ": " : "", msg);
        } else {
            mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
            if (mfd < 0)
                r = dt_error_errno(err, errno, "mount overlay");
        }
    }
    safe_close(fsfd);
    for (size_t i = 0; i < n; i++)
        safe_close(fds[i]);
    free(lower);
    return r < 0 ? r : mfd;
}

static int
parse_passwd(const char *buf, const char *name, uid_t want_uid, bool by_uid, struct dt_user *ret)
{
    const char *line = buf;
    while (*line) {
        const char *end = strchrnul(line, '\n');
        /* name:x:uid:gid:gecos:home:shell */
        const char *f[7];
        size_t fl[7];
        int nf = 0;
        const char *s = line;
        while (nf < 7) {
            const char *c = memchr(s, ':', (size_t) (end - s));
            f[nf] = s;
            fl[nf] = c ? (size_t) (c - s) : (size_t) (end - s);
            nf++;
            if (!c)
                break;
            s = c + 1;
        }
        if (nf >= 6) {
            char ubuf[16], gbuf[16];
            uint32_t uid, gid;
            if (fl[2] < sizeof(ubuf) && fl[3] < sizeof(gbuf)) {
                memcpy(ubuf, f[2], fl[2]);
                ubuf[fl[2]] = 0;
                memcpy(gbuf, f[3], fl[3]);
                gbuf[fl[3]] = 0;
                if (parse_u32(ubuf, &uid) == 0 && parse_u32(gbuf, &gid) == 0 &&
                    ((by_uid && uid == want_uid) ||
                     (!by_uid && fl[0] == strlen(name) && memcmp(f[0], name, fl[0]) == 0))) {
                    ret->uid = uid;
                    ret->gid = gid;
                    size_t hl = fl[5] < sizeof(ret->home) ? fl[5] : 0;
                    memcpy(ret->home, f[5], hl);
                    ret->home[hl] = 0;
                    if (hl == 0 || ret->home[0] != '/')
                        memcpy(ret->home, "/", 2);
                    return 0;
                }
            }
        }
        line = *end ? end + 1 : end;
    }
    return -ENOENT;
}

int
dt_rootfs_lookup_user(char *const *dirs, const char *spec, struct dt_user *ret,
                      struct dt_error **err)
{
    _cleanup_free_ char *passwd = NULL;
    for (size_t i = 0; dirs && dirs[i] && !passwd; i++) {
        _cleanup_close_ int root = open(dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
            continue;
        /* The upper directory belongs to the sandbox: a FIFO or device planted at /etc/passwd
         * must neither block nor be read. Only a regular file, read through the fd that was
         * resolved inside the root. */
        _cleanup_close_ int fd = dt_open_in_root(root, "/etc/passwd", O_RDONLY | O_NONBLOCK, 0);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        (void) read_fd_all(fd, 4 << 20, &passwd, NULL);
    }

    const char *sp = spec && *spec ? spec : "0";
    uint32_t uid, gid;
    const char *colon = strchr(sp, ':');
    _cleanup_free_ char *ustr = colon ? xstrndup(sp, (size_t) (colon - sp)) : xstrdup(sp);

    if (parse_u32(ustr, &uid) == 0) {
        if (!passwd || parse_passwd(passwd, NULL, uid, true, ret) < 0) {
            ret->uid = uid;
            ret->gid = uid;
            memcpy(ret->home, uid == 0 ? "/root" : "/", uid == 0 ? 6 : 2);
        }
    } else if (!passwd || parse_passwd(passwd, ustr, 0, false, ret) < 0)
        return dt_error_set(err, ENOENT, "no user '%s' in the image's /etc/passwd", ustr);

    if (colon) {
        if (parse_u32(colon + 1, &gid) < 0)
            return dt_error_set(err, EINVAL, "invalid group in user '%s'", sp);
        ret->gid = gid;
    }
    if (ret->uid >= DT_UID_RANGE || ret->gid >= DT_UID_RANGE)
        return dt_error_set(err, EINVAL, "user '%s' is outside the sandbox's id range (< %u)", sp,
                            DT_UID_RANGE);
    return 0;
}
