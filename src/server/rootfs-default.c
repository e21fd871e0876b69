/* SPDX-License-Identifier: Apache-2.0 */
/* The default snapshot's root filesystem, a stand-in until real OCI snapshots exist (issue 6): a
 * skeleton directory (merged-usr symlinks, /etc, home) whose /usr is the host's, bound read-only
 * into every sandbox. Built once under DATA_DIR/images/default, rebuilt when the recipe changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "server/runner.h"
#include "dt/banned.h"

/* Bump when the skeleton below changes: existing data dirs then rebuild it. */
#define RECIPE "daytona default rootfs 1\n"

#define SANDBOX_UID 1000

static const char PASSWD[] =
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "daytona:x:1000:1000:daytona:/home/daytona:/bin/bash\n";
static const char GROUP[] =
        "root:x:0:\n"
        "daemon:x:1:\n"
        "users:x:100:daytona\n"
        "nogroup:x:65534:\n"
        "daytona:x:1000:\n";
static const char HOSTS[] =
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n";
static const char NSSWITCH[] =
        "passwd:         files\n"
        "group:          files\n"
        "shadow:         files\n"
        "hosts:          files dns\n"
        "networks:       files\n"
        "protocols:      files\n"
        "services:       files\n";
/* Debian 12's python is "externally managed" (PEP 668): without this, `pip install` refuses to
 * run at all. The host's site-packages are read-only here anyway, so pip installs per user. */
static const char PIP_CONF[] =
        "[global]\n"
        "break-system-packages = true\n";

struct skel_dir {
    const char *path;
    mode_t mode;
    bool sandbox_user;
};

static const struct skel_dir skel_dirs[] = {
        {"usr", 0755, false},     {"etc", 0755, false},    {"etc/ssl", 0755, false},
        {"etc/ssl/certs", 0755, false},
        {"etc/alternatives", 0755, false},                 {"home", 0755, false},
        {"home/daytona", 0755, true},                      {"root", 0700, false},
        {"tmp", 01777, false},    {"var", 0755, false},    {"var/tmp", 01777, false},
        {"var/cache", 0755, false},                        {"var/lib", 0755, false},
        {"var/log", 0755, false}, {"run", 0755, false},    {"proc", 0555, false},
        {"sys", 0555, false},     {"dev", 0755, false},    {"mnt", 0755, false},
        {"opt", 0755, false},     {"srv", 0755, false},    {"media", 0755, false},
};

static const char *const skel_links[][2] = {
        {"bin", "usr/bin"},
        {"sbin", "usr/sbin"},
        {"lib", "usr/lib"},
        {"lib64", "usr/lib64"},
        {"etc/os-release", "../usr/lib/os-release"},
};

static const struct {
    const char *path;
    const char *content;
} skel_files[] = {
        {"etc/passwd", PASSWD},
        {"etc/group", GROUP},
        {"etc/hosts", HOSTS},
        {"etc/nsswitch.conf", NSSWITCH},
        {"etc/pip.conf", PIP_CONF},
        {"etc/hostname", "sandbox\n"},
        {"etc/resolv.conf", ""},
        {"etc/ssl/openssl.cnf", ""},
};

/* Fill the fresh, empty directory DFD. Everything is created relative to DFD, which we just
 * made under a 0700 parent: nothing else can have planted symlinks in it. */
static int
build_skeleton(int dfd)
{
    int r;

    for (size_t i = 0; i < ELEMENTSOF(skel_dirs); i++) {
        const struct skel_dir *d = &skel_dirs[i];
        if (mkdirat(dfd, d->path, 0700) < 0)
            return -errno;
        /* Explicitly, not through mkdir's mode: the umask would strip the sticky/other bits. */
        if (fchmodat(dfd, d->path, d->mode, AT_SYMLINK_NOFOLLOW) < 0 && errno != EOPNOTSUPP)
            return -errno;
        if (d->sandbox_user &&
            fchownat(dfd, d->path, SANDBOX_UID, SANDBOX_UID, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
    }
    for (size_t i = 0; i < ELEMENTSOF(skel_links); i++)
        if (symlinkat(skel_links[i][1], dfd, skel_links[i][0]) < 0)
            return -errno;
    for (size_t i = 0; i < ELEMENTSOF(skel_files); i++) {
        r = write_file_at(dfd, skel_files[i].path, skel_files[i].content,
                          strlen(skel_files[i].content), 0644);
        if (r < 0)
            return r;
    }
    if (fchmod(dfd, 0755) < 0)
        return -errno;
    return 0;
}

int
dt_rootfs_default_ensure(const char *data_dir, char **ret_path, struct dt_error **err)
{
    _cleanup_free_ char *images = xasprintf("%s/images", data_dir);
    _cleanup_free_ char *path = xasprintf("%s/default", images);
    _cleanup_free_ char *recipe = NULL;
    _cleanup_close_ int ifd = -EBADF, dfd = -EBADF;
    char tmp[64], old[64];
    int r;

    r = mkdir_p(images, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create image directory '%s'", images);
    ifd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ifd < 0)
        return dt_error_errno(err, errno, "open image directory '%s'", images);

    struct stat st;
    if (read_file_at(ifd, "default.recipe", 4096, &recipe, NULL) == 0 &&
        strcmp(recipe, RECIPE) == 0 && fstatat(ifd, "default", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode)) {
        *ret_path = TAKE_PTR(path);
        return 0;
    }

    /* Build under a temporary name and rename into place, so a crash never leaves a half-built
     * rootfs under the real name; the recipe file is written last. */
    snprintf(tmp, sizeof(tmp), "default.new.%d", (int) getpid());
    snprintf(old, sizeof(old), "default.old.%d", (int) getpid());
    (void) rm_rf_at(ifd, tmp);
    if (mkdirat(ifd, tmp, 0700) < 0)
        return dt_error_errno(err, errno, "create '%s/%s'", images, tmp);
    dfd = openat(ifd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    r = dfd < 0 ? -errno : build_skeleton(dfd);
    if (r < 0) {
        (void) rm_rf_at(ifd, tmp);
        return dt_error_errno(err, r, "build the default root filesystem in '%s/%s'", images, tmp);
    }
    /* An older build may still be the lower layer of running sandboxes: move it aside and
     * remove it; their overlay mounts keep what they use alive. */
    (void) unlinkat(ifd, "default.recipe", 0);
    if (renameat(ifd, "default", ifd, old) < 0 && errno != ENOENT) {
        r = -errno;
        (void) rm_rf_at(ifd, tmp);
        return dt_error_errno(err, r, "move the old default root filesystem '%s' aside", path);
    }
    if (renameat(ifd, tmp, ifd, "default") < 0) {
        r = -errno;
        (void) rm_rf_at(ifd, tmp);
        return dt_error_errno(err, r, "rename '%s/%s' to '%s'", images, tmp, path);
    }
    (void) rm_rf_at(ifd, old);
    r = write_file_at(ifd, "default.recipe", RECIPE, strlen(RECIPE), 0600);
    if (r < 0)
        return dt_error_errno(err, r, "write '%s/default.recipe'", images);
    *ret_path = TAKE_PTR(path);
    return 0;
}

static void
add_bind(struct dt_plan *plan, const char *src, const char *dst, bool readonly)
{
    plan->binds = xreallocarray(plan->binds, plan->n_binds + 1, sizeof(struct dt_bind));
    plan->binds[plan->n_binds++] = (struct dt_bind){
            .source = xstrdup(src), .destination = xstrdup(dst), .readonly = readonly};
}

void
dt_rootfs_default_binds(struct dt_plan *plan)
{
    /* Not all of /etc/ssl: its private/ holds the host's keys. The skeleton has the mount
     * points, so nothing is created in the sandbox's writable layer for them. */
    static const char *const optional[] = {"/etc/ssl/certs", "/etc/ssl/openssl.cnf",
                                           "/etc/alternatives"};
    struct stat st;

    add_bind(plan, "/usr", "/usr", true);
    for (size_t i = 0; i < ELEMENTSOF(optional); i++)
        if (stat(optional[i], &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
            add_bind(plan, optional[i], optional[i], true);
}
