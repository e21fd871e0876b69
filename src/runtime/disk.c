/* SPDX-License-Identifier: Apache-2.0 */
/* Per-sandbox disk quotas: sparse ext4 images made by mkfs.ext4, attached to autoclear loop
 * devices and mounted as detached mounts (fsopen/fsmount), grown online or offline. See disk.h;
 * the design notes are in docs/design/disk.md. */
#include "runtime/disk.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* Not in the uapi headers (it lives in fs/ext4/ext4.h); the ABI is fixed. */
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

#define DISK_MIN_BYTES   (16ULL << 20)
#define DISK_MAX_BYTES   (16ULL << 40) /* a hard limit on a caller-controlled size */
#define DISK_BLOCK_SIZE  "4096"
#define DISK_INODE_RATIO "16384" /* one inode per 16 KiB: 4096 inodes in 64 MiB, 655360 in 10 GiB */
#define BUSY_WAIT_MSEC   2000
#define BUSY_POLL_MSEC   20
#define LOOP_ATTACH_TRIES 16
#define TOOL_STDERR_MAX  1024

/* ---- small helpers ---- */

static inline void
closedirp(DIR **d)
{
    if (*d)
        (void) closedir(*d);
}

static inline void
unlockp(int *fd)
{
    if (*fd >= 0)
        (void) flock(*fd, LOCK_UN);
}

/* Move FD to a number above 2 (keeping O_CLOEXEC) so that the dup2() calls that set up a
 * child's stdio can never clobber it, nor become a no-op that leaves FD_CLOEXEC set. */
static int
fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int r = nfd < 0 ? -errno : nfd;
    safe_close(fd);
    return r;
}

/* The path of the file open at FD as the kernel prints it (d_path), which is also what the loop
 * driver shows in /sys/block/loopN/loop/backing_file. Falls back to realpath() without /proc. */
static int
fd_get_path(int fd, const char *fallback, char **ret)
{
    char link[sizeof("/proc/self/fd/") + DECIMAL_STR_MAX(int)];
    char buf[PATH_MAX + 1];

    (void) snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n > 0 && (size_t) n < sizeof(buf) - 1) {
        buf[n] = '\0';
        *ret = xstrdup(buf);
        return 0;
    }
    char *p = realpath(fallback, NULL);
    if (!p)
        return -errno;
    *ret = p;
    return 0;
}

/* Read the backing file of the loop device whose sysfs directory is DIR (relative to DIRFD);
 * -ENOENT when the device is not bound. *ret is malloc'ed without the trailing newline. */
static int
loop_read_backing(int dirfd, const char *dir, char **ret)
{
    char path[PATH_MAX];
    char *buf = NULL;
    size_t len = 0;
    int r;

    if ((size_t) snprintf(path, sizeof(path), "%s/loop/backing_file", dir) >= sizeof(path))
        return -ENAMETOOLONG;
    r = read_file_at(dirfd, path, PATH_MAX + 64, &buf, &len);
    if (r < 0)
        return r;
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    *ret = buf;
    return 0;
}

/* Is some loop device backed by the file at PATH? Returns 1 (and its name in RET_NAME, when not
 * NULL) or 0, or -errno when sysfs cannot be read. Only sysfs is read: opening a loop device to
 * ask LOOP_GET_STATUS64 could, on the last close, auto-clear another process's device that it has
 * configured but not yet mounted. */
static int
loop_find_backing(const char *path, char *ret_name, size_t name_size)
{
    _cleanup_(closedirp) DIR *d = opendir("/sys/block");
    struct dirent *de;

    if (!d)
        return -errno;
    while ((errno = 0, de = readdir(d))) {
        _cleanup_free_ char *backing = NULL;
        if (strncmp(de->d_name, "loop", 4) != 0)
            continue;
        /* ENOENT: unbound; other errors: the device is being torn down right now. */
        if (loop_read_backing(dirfd(d), de->d_name, &backing) < 0)
            continue;
        if (strcmp(backing, path) != 0)
            continue;
        if (ret_name && (size_t) snprintf(ret_name, name_size, "/dev/%s", de->d_name) >= name_size)
            ret_name[0] = '\0'; /* only used in messages */
        return 1;
    }
    return errno > 0 ? -errno : 0;
}

/* ---- ext4 superblock ---- */

struct ext4_geometry {
    uint64_t blocks;     /* s_blocks_count */
    uint32_t block_size; /* bytes */
    bool needs_recovery; /* the journal has transactions to replay (unclean shutdown) */
};

static uint32_t
le32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

/* Read the block count and block size of the (unmounted) ext4 filesystem in the image open at
 * FD. -EINVAL when there is no ext4 superblock. Offsets are from the on-disk format
 * (Documentation/filesystems/ext4/super.rst). */
static int
ext4_read_geometry(int fd, struct ext4_geometry *ret)
{
    uint8_t sb[1024];
    ssize_t n;

    do
        n = pread(fd, sb, sizeof(sb), 1024);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t) n != sizeof(sb))
        return -EINVAL;

    uint16_t magic = (uint16_t) (sb[0x38] | (sb[0x39] << 8));
    uint32_t log_block_size = le32_at(sb + 0x18);
    if (magic != 0xEF53 || log_block_size > 6)
        return -EINVAL;

    uint32_t incompat = le32_at(sb + 0x60);
    uint64_t blocks = le32_at(sb + 0x04);
    if (incompat & 0x80) /* INCOMPAT_64BIT: s_blocks_count_hi is valid */
        blocks |= (uint64_t) le32_at(sb + 0x150) << 32;
    ret->blocks = blocks;
    ret->block_size = 1024U << log_block_size;
    ret->needs_recovery = incompat & 0x4; /* INCOMPAT_RECOVER */
    return 0;
}

/* ---- e2fsprogs ---- */

static const char *const mkfs_paths[] = {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", NULL};
static const char *const resize2fs_paths[] = {"/usr/sbin/resize2fs", "/sbin/resize2fs", NULL};

static const char *
find_executable(const char *const *paths)
{
    for (; *paths; paths++)
        if (access(*paths, X_OK) == 0)
            return *paths;
    return NULL;
}

/* Strip trailing whitespace and fold newlines so a tool's stderr fits in a one-line message. */
static void
one_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
            s[i] = ' ';
}

/* Run the e2fsprogs tool ARGV[0] (NAME in messages) on IMAGE with no shell, stdin and stdout on
 * /dev/null and stderr captured for the error message. The environment is replaced so that
 * MKE2FS_CONFIG, MKE2FS_SYNC and the like cannot change what gets made, and LC_ALL=C keeps the
 * messages stable. */
static int
run_e2fs_tool(const char *name, const char *const argv[], const char *image, struct dt_error **err)
{
    _cleanup_close_ int devnull = -EBADF, rpipe = -EBADF, wpipe = -EBADF;
    char out[TOOL_STDERR_MAX + 1];
    size_t out_len = 0;
    sigset_t all;
    int pfd[2], status, r;
    const char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

    devnull = fd_above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (devnull < 0)
        return dt_error_errno(err, devnull, "open /dev/null");
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return dt_error_errno(err, errno, "create pipe for %s", name);
    rpipe = pfd[0];
    wpipe = fd_above_stdio(pfd[1]);
    if (wpipe < 0)
        return dt_error_errno(err, wpipe, "create pipe for %s", name);
    sigemptyset(&all);

    pid_t pid = fork();
    if (pid < 0)
        return dt_error_errno(err, errno, "fork %s", name);
    if (pid == 0) {
        /* Child: async-signal-safe calls only. Both fds are > 2, so dup2 always clears
         * FD_CLOEXEC on the copies and everything else is closed by exec. */
        if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
            dup2(wpipe, STDERR_FILENO) < 0)
            _exit(127);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        (void) signal(SIGPIPE, SIG_DFL);
        execve(argv[0], (char *const *) argv, (char *const *) envp);
        _exit(127);
    }

    wpipe = safe_close(wpipe);
    for (;;) {
        char drain[256];
        ssize_t n;
        /* Keep the first TOOL_STDERR_MAX bytes, drain the rest so the tool never blocks. */
        if (out_len < TOOL_STDERR_MAX)
            n = read(rpipe, out + out_len, TOOL_STDERR_MAX - out_len);
        else
            n = read(rpipe, drain, sizeof(drain));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (out_len < TOOL_STDERR_MAX)
            out_len += (size_t) n;
    }
    out[out_len] = '\0';

    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return dt_error_errno(err, errno, "wait for %s on '%s'", name, image);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;

    one_line(out);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && out_len == 0)
        return dt_error_set(err, ENOEXEC, "run %s on '%s': exec failed", argv[0], image);
    if (WIFEXITED(status))
        return dt_error_set(err, EIO, "%s on '%s' failed with status %d%s%s", name, image,
                            WEXITSTATUS(status), out_len ? ": " : "", out);
    return dt_error_set(err, EIO, "%s on '%s' killed by signal %d%s%s", name, image,
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0, out_len ? ": " : "", out);
}

static int
run_mkfs(const char *mkfs, const char *image, uid_t uid, gid_t gid, struct dt_error **err)
{
    char ext[160];

    (void) snprintf(ext, sizeof(ext),
                    "root_owner=%u:%u,lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                    (unsigned) uid, (unsigned) gid);
    /* -b 4096 and -I 256 are explicit because mke2fs.conf's "small" type (< 512 MiB) would pick
     * 1 KiB blocks, which cap growth and waste space on metadata. The journal is kept;
     * resize_inode (a default feature) reserves descriptor blocks for online growth. Lazy init
     * is safe because the file is sparse: the skipped tables already read as zeroes. */
    const char *argv[] = {mkfs, "-q", "-F", "-m", "0", "-b", DISK_BLOCK_SIZE, "-I", "256",
                          "-i", DISK_INODE_RATIO, "-E", ext, "--", image, NULL};
    return run_e2fs_tool("mkfs.ext4", argv, image, err);
}

/* Grow the unmounted filesystem in IMAGE to BLOCKS blocks. Offline resizing needs no capability
 * (online resizing needs CAP_SYS_RESOURCE), and the image is locked and attached nowhere. -f
 * skips resize2fs's "run e2fsck -f first" demand, which fires after any mount even when the
 * filesystem was cleanly unmounted (the superblock records it as clean). */
static int
run_resize2fs(const char *image, uint64_t blocks, struct dt_error **err)
{
    const char *resize2fs = find_executable(resize2fs_paths);
    char count[DECIMAL_STR_MAX(uint64_t)];

    if (!resize2fs)
        return dt_error_set(err, ENOENT, "grow disk image '%s': resize2fs not found in /usr/sbin "
                            "or /sbin (install e2fsprogs)", image);
    (void) snprintf(count, sizeof(count), "%llu", (unsigned long long) blocks);
    const char *argv[] = {resize2fs, "-f", "--", image, count, NULL};
    return run_e2fs_tool("resize2fs", argv, image, err);
}

int
dt_disk_create(const char *image, uint64_t size_bytes, uid_t root_uid, gid_t root_gid,
               struct dt_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    const char *mkfs;
    int r;

    if (size_bytes < DISK_MIN_BYTES)
        return dt_error_set(err, EINVAL, "disk image '%s': size %llu is below the minimum %llu",
                            image, (unsigned long long) size_bytes, DISK_MIN_BYTES);
    if (size_bytes > DISK_MAX_BYTES)
        return dt_error_set(err, EFBIG, "disk image '%s': size %llu is above the maximum %llu",
                            image, (unsigned long long) size_bytes, DISK_MAX_BYTES);
    mkfs = find_executable(mkfs_paths);
    if (!mkfs)
        return dt_error_set(err, ENOENT, "create disk image '%s': mkfs.ext4 not found in "
                            "/usr/sbin or /sbin (install e2fsprogs)", image);

    /* O_EXCL: never reuse (or later remove) a file we did not create; it also refuses to follow
     * a symlink at IMAGE. 0600: the image holds the sandbox's files. */
    fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return dt_error_errno(err, errno, "create disk image '%s'", image);

    /* Sparse: the host pays only for blocks the sandbox writes (and mkfs's metadata). */
    if (ftruncate(fd, (off_t) size_bytes) < 0) {
        r = dt_error_errno(err, errno, "size disk image '%s' to %llu bytes", image,
                           (unsigned long long) size_bytes);
        (void) unlink(image);
        return r;
    }
    fd = safe_close(fd);

    r = run_mkfs(mkfs, image, root_uid, root_gid, err);
    if (r < 0) {
        (void) unlink(image);
        return r;
    }
    return 0;
}

/* ---- loop devices ---- */

/* Bind the image open at IMGFD to the loop device open at FD: autoclear, so the device unbinds
 * itself when its last opener (our fd, then the mounted filesystem) goes away; direct I/O, so
 * the image's pages are not cached twice (once for the file, once for the filesystem on top),
 * which also halved write+fsync time in our measurements (docs/design/disk.md). */
static int
loop_configure(int fd, int imgfd)
{
    struct loop_config cfg = {
        .fd = (uint32_t) imgfd,
        .info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
    };
    struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
    int r;

    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
        return 0;
    r = -errno;
    if (r == -EINVAL) {
        /* Some kernels refuse direct I/O when the backing filesystem cannot do it. */
        cfg.info.lo_flags &= ~(uint32_t) LO_FLAGS_DIRECT_IO;
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
            return 0;
        r = -errno;
    }
    if (r != -EINVAL && r != -ENOTTY)
        return r;

    /* Kernels before 5.8 have no LOOP_CONFIGURE (and answer EINVAL). Until SET_STATUS64 lands
     * the device is not autoclear, so undo by hand on failure. */
    if (ioctl(fd, LOOP_SET_FD, imgfd) < 0)
        return -errno;
    if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0) {
        r = -errno;
        (void) ioctl(fd, LOOP_CLR_FD, 0);
        return r;
    }
    (void) ioctl(fd, LOOP_SET_DIRECT_IO, 1UL); /* an optimisation only, ignoring failure */
    return 0;
}

/* Attach the image open at IMGFD to a free loop device. Returns the open loop fd in *RET_FD and
 * its /dev path in RET_NAME. */
static int
loop_attach(int imgfd, const char *image, int *ret_fd, char *ret_name, size_t name_size,
            struct dt_error **err)
{
    _cleanup_close_ int ctl = -EBADF;

    ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return dt_error_errno(err, errno, "open /dev/loop-control");

    for (int i = 0; i < LOOP_ATTACH_TRIES; i++) {
        _cleanup_close_ int fd = -EBADF;
        int n, r;

        n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            return dt_error_errno(err, errno, "get a free loop device");
        (void) snprintf(ret_name, name_size, "/dev/loop%d", n);
        fd = open(ret_name, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return dt_error_errno(err, errno, "open %s", ret_name);
        r = loop_configure(fd, imgfd);
        /* EBUSY: another process bound the device between GET_FREE and CONFIGURE. */
        if (r == -EBUSY)
            continue;
        if (r < 0)
            return dt_error_errno(err, r, "attach disk image '%s' to %s", image, ret_name);
        *ret_fd = TAKE_FD(fd);
        return 0;
    }
    return dt_error_set(err, EBUSY, "attach disk image '%s': every free loop device was taken "
                        "by another process %d times", image, LOOP_ATTACH_TRIES);
}

/* Take an exclusive flock on the image and make sure no loop device is backed by it, waiting up
 * to BUSY_WAIT_MSEC for an earlier mount's device to be torn down (autoclear runs when the last
 * reference to the mount goes, which may be in another process). The lock makes check-then-attach
 * atomic among dt_disk_mount() callers: the winner's device shows in sysfs before it unlocks. */
static int
disk_lock_unused(int imgfd, const char *path, const char *image, struct dt_error **err)
{
    uint64_t deadline = now_msec() + BUSY_WAIT_MSEC;
    char name[64] = "";

    for (;;) {
        if (flock(imgfd, LOCK_EX | LOCK_NB) == 0) {
            int r = loop_find_backing(path, name, sizeof(name));
            if (r == 0)
                return 0;
            (void) flock(imgfd, LOCK_UN);
            if (r < 0)
                return dt_error_errno(err, r, "scan /sys/block for loop devices");
        } else if (errno != EWOULDBLOCK && errno != EINTR)
            return dt_error_errno(err, errno, "lock disk image '%s'", image);

        if (now_msec() >= deadline) {
            if (name[0])
                return dt_error_set(err, EBUSY, "disk image '%s' is in use by %s", image, name);
            return dt_error_set(err, EBUSY, "disk image '%s' is locked by another mount", image);
        }
        sleep_msec(BUSY_POLL_MSEC);
    }
}

/* Find the loop device under the filesystem mounted at MNTFD and check that it is backed by the
 * image at PATH. */
static int
loop_of_mount(int mntfd, const char *path, const char *image, char *ret_name, size_t name_size,
              struct dt_error **err)
{
    _cleanup_free_ char *backing = NULL;
    char dir[64], link[PATH_MAX];
    struct stat st;
    ssize_t n;
    int r;

    if (fstat(mntfd, &st) < 0)
        return dt_error_errno(err, errno, "stat mount of disk image '%s'", image);
    (void) snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
    r = loop_read_backing(AT_FDCWD, dir, &backing);
    if (r == -ENOENT)
        return dt_error_set(err, EINVAL, "mount fd %d is not on a loop device", mntfd);
    if (r < 0)
        return dt_error_errno(err, r, "read %s/loop/backing_file", dir);
    if (strcmp(backing, path) != 0)
        return dt_error_set(err, EINVAL, "mount fd %d is of '%s', not of disk image '%s'", mntfd,
                            backing, image);

    n = readlink(dir, link, sizeof(link) - 1);
    if (n < 0)
        return dt_error_errno(err, errno, "read link %s", dir);
    link[n] = '\0';
    const char *base = strrchr(link, '/');
    if ((size_t) snprintf(ret_name, name_size, "/dev/%s", base ? base + 1 : link) >= name_size)
        return dt_error_set(err, ENAMETOOLONG, "device name of %s is too long", dir);
    return 0;
}

/* ---- ext4 ---- */

/* Turn a failed fsconfig()/fsmount() into an error, adding the kernel's own message when the fs
 * context queued one (read from the fsopen fd as "e <text>"). */
static int
fs_context_error(int fsfd, int errnum, const char *what, const char *dev, struct dt_error **err)
{
    char msg[sizeof(" ()") + 256] = "", buf[256];
    ssize_t n;

    while ((n = read(fsfd, buf, sizeof(buf) - 1)) > 0) {
        buf[n] = '\0';
        if (buf[0] == 'e' && buf[1] == ' ')
            (void) snprintf(msg, sizeof(msg), " (%s)", buf + 2);
    }
    one_line(msg);
    return dt_error_errno(err, errnum, "%s ext4 on %s%s", what, dev, msg);
}

/* Mount the ext4 filesystem on DEV as a detached mount: it is attached to no mount namespace, so
 * it shows in no mountinfo and goes away (with the autoclear loop device under it) when the last
 * fd or mount referring to it is closed. nodev,nosuid: the sandbox owns everything on it. */
static int
ext4_mount_detached(const char *dev, int *ret_mntfd, struct dt_error **err)
{
    _cleanup_close_ int fsfd = -EBADF;
    int mntfd;

    fsfd = fsopen("ext4", FSOPEN_CLOEXEC);
    if (fsfd < 0)
        return dt_error_errno(err, errno, "fsopen ext4");
    if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", dev, 0) < 0)
        return fs_context_error(fsfd, errno, "set source of", dev, err);
    if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return fs_context_error(fsfd, errno, "mount", dev, err);
    mntfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
    if (mntfd < 0)
        return fs_context_error(fsfd, errno, "create detached mount of", dev, err);
    *ret_mntfd = mntfd;
    return 0;
}

/* Grow the ext4 filesystem mounted at MNTFD to BLOCKS blocks. The fd from fsmount() is O_PATH-like
 * and cannot take ioctls, so open the root directory through it. Needs CAP_SYS_RESOURCE. */
static int
ext4_resize(int mntfd, uint64_t blocks, const char *image, struct dt_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    uint64_t n = blocks;

    fd = openat(mntfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "open root of disk image '%s'", image);
    if (ioctl(fd, EXT4_IOC_RESIZE_FS, &n) < 0) {
        if (errno == EPERM)
            return dt_error_set(err, EPERM, "resize mounted filesystem of disk image '%s': online "
                                "resizing needs CAP_SYS_RESOURCE (an image grown while mounted "
                                "is grown offline at its next mount)", image);
        return dt_error_errno(err, errno, "resize filesystem of disk image '%s' to %llu blocks",
                              image, (unsigned long long) blocks);
    }
    return 0;
}

int
dt_disk_mount(const char *image, int *ret_mntfd, struct dt_error **err)
{
    _cleanup_close_ int imgfd = -EBADF, loopfd = -EBADF, mntfd = -EBADF;
    _cleanup_free_ char *path = NULL;
    _cleanup_(unlockp) int locked = -EBADF; /* declared after imgfd: unlocks before it closes */
    struct ext4_geometry geo = {};
    struct stat st;
    char dev[64];
    int r;

    imgfd = open(image, O_RDWR | O_CLOEXEC);
    if (imgfd < 0)
        return dt_error_errno(err, errno, "open disk image '%s'", image);
    if (fstat(imgfd, &st) < 0)
        return dt_error_errno(err, errno, "stat disk image '%s'", image);
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL, "disk image '%s' is not a regular file", image);
    r = fd_get_path(imgfd, image, &path);
    if (r < 0)
        return dt_error_errno(err, r, "resolve path of disk image '%s'", image);

    /* Two loop devices on one image would be two independent ext4 instances writing the same
     * blocks: certain corruption. The lock is dropped explicitly on return: the loop device
     * keeps a reference to imgfd's open file description, so closing imgfd would not drop it. */
    r = disk_lock_unused(imgfd, path, image, err);
    if (r < 0)
        return r;
    locked = imgfd;

    /* Read before attaching, while nothing can write the image. st_size is also taken before
     * attaching, so the loop device is never smaller than the size we grow to. */
    r = ext4_read_geometry(imgfd, &geo);
    if (r == -EINVAL)
        return dt_error_set(err, EINVAL, "disk image '%s' holds no ext4 filesystem", image);
    if (r < 0)
        return dt_error_errno(err, r, "read superblock of disk image '%s'", image);

    /* Grown while unmounted (dt_disk_grow with mntfd < 0): fill the file. Offline with
     * resize2fs while we hold the lock, because it needs no capability; except when the journal
     * needs replaying, which resize2fs refuses and mounting does: then online after mounting. */
    uint64_t want = (uint64_t) st.st_size / geo.block_size;
    bool grow_online = false;
    if (want > geo.blocks) {
        if (geo.needs_recovery)
            grow_online = true;
        else {
            r = run_resize2fs(image, want, err);
            if (r < 0)
                return r;
        }
    }

    r = loop_attach(imgfd, image, &loopfd, dev, sizeof(dev), err);
    if (r < 0)
        return r;

    r = ext4_mount_detached(dev, &mntfd, err);
    if (r < 0) {
        /* Our fd is the only opener: closing it would autoclear too, but say so explicitly. */
        (void) ioctl(loopfd, LOOP_CLR_FD, 0);
        return dt_error_wrap(err, "mount disk image '%s'", image);
    }
    /* From now on the mounted filesystem holds the loop device open; with autoclear it unbinds
     * when the filesystem is unmounted, i.e. when the last reference to MNTFD's mount goes. */
    loopfd = safe_close(loopfd);

    if (grow_online) {
        r = ext4_resize(mntfd, want, image, err);
        if (r < 0)
            return r; /* closing mntfd unmounts and detaches */
    }

    *ret_mntfd = TAKE_FD(mntfd);
    return 0;
}

int
dt_disk_grow(const char *image, uint64_t new_size_bytes, int mntfd, struct dt_error **err)
{
    _cleanup_close_ int imgfd = -EBADF, loopfd = -EBADF;
    _cleanup_free_ char *path = NULL;
    struct statfs sfs;
    struct stat st;
    char dev[64];
    int r;

    if (new_size_bytes > DISK_MAX_BYTES)
        return dt_error_set(err, EFBIG, "disk image '%s': size %llu is above the maximum %llu",
                            image, (unsigned long long) new_size_bytes, DISK_MAX_BYTES);
    imgfd = open(image, O_RDWR | O_CLOEXEC);
    if (imgfd < 0)
        return dt_error_errno(err, errno, "open disk image '%s'", image);
    if (fstat(imgfd, &st) < 0)
        return dt_error_errno(err, errno, "stat disk image '%s'", image);
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL, "disk image '%s' is not a regular file", image);
    if (new_size_bytes < (uint64_t) st.st_size)
        return dt_error_set(err, EINVAL, "cannot shrink disk image '%s' from %llu to %llu bytes",
                            image, (unsigned long long) st.st_size,
                            (unsigned long long) new_size_bytes);

    /* Check the mount before touching the file, so a wrong MNTFD changes nothing. */
    if (mntfd >= 0) {
        r = fd_get_path(imgfd, image, &path);
        if (r < 0)
            return dt_error_errno(err, r, "resolve path of disk image '%s'", image);
        r = loop_of_mount(mntfd, path, image, dev, sizeof(dev), err);
        if (r < 0)
            return dt_error_wrap(err, "grow disk image '%s'", image);
        if (fstatfs(mntfd, &sfs) < 0)
            return dt_error_errno(err, errno, "statfs mount of disk image '%s'", image);
    }

    if (new_size_bytes > (uint64_t) st.st_size && ftruncate(imgfd, (off_t) new_size_bytes) < 0)
        return dt_error_errno(err, errno, "grow disk image '%s' to %llu bytes", image,
                              (unsigned long long) new_size_bytes);
    if (mntfd < 0)
        return 0;

    /* Read-only open: the mounted filesystem has the device open exclusively, and kernels built
     * without CONFIG_BLK_DEV_WRITE_MOUNTED refuse a writable open of a mounted device.
     * LOOP_SET_CAPACITY then needs CAP_SYS_ADMIN. Our open cannot trigger autoclear: the mount
     * is another opener. */
    loopfd = open(dev, O_RDONLY | O_CLOEXEC);
    if (loopfd < 0)
        return dt_error_errno(err, errno, "open %s", dev);
    if (ioctl(loopfd, LOOP_SET_CAPACITY, 0) < 0)
        return dt_error_errno(err, errno, "update capacity of %s for disk image '%s'", dev, image);

    /* ext4 reports its block size as f_bsize. Equal sizes are a no-op in the kernel, which makes
     * a retry after a failed resize harmless. */
    return ext4_resize(mntfd, new_size_bytes / (uint64_t) sfs.f_bsize, image, err);
}

int
dt_disk_usage(int mntfd, uint64_t *ret_used, uint64_t *ret_total)
{
    struct statfs sfs;

    if (fstatfs(mntfd, &sfs) < 0)
        return -errno;
    if (ret_used)
        *ret_used = (uint64_t) (sfs.f_blocks - sfs.f_bfree) * (uint64_t) sfs.f_bsize;
    if (ret_total)
        *ret_total = (uint64_t) sfs.f_blocks * (uint64_t) sfs.f_bsize;
    return 0;
}
