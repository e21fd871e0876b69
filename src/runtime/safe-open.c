/* SPDX-License-Identifier: Apache-2.0 */
/* Path resolution confined to a root directory (see safe-open.h). openat2(RESOLVE_IN_ROOT) when
 * the kernel has it and seccomp lets us use it; otherwise a userspace walk that opens one
 * component at a time with O_NOFOLLOW and expands symlinks itself, never letting "..", an
 * absolute link or a rename race take it above the root. No allocation: runs in forked children. */
#include "runtime/safe-open.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/banned.h"

/* The kernel's limit on symlinks followed in one lookup (MAXSYMLINKS). */
#define MAX_SYMLINKS 40

bool dt_safe_open_force_fallback = false;

enum walk_mode {
    WALK_OPEN,  /* open the final component with the caller's flags */
    WALK_MKDIR, /* create missing components as directories; return the final one */
};

/* State of one fallback walk. Three PATH_MAX buffers live on the caller's stack (~12 KiB). */
struct walk {
    int rootfd;
    int cur;             /* O_PATH fd of the directory reached so far, owned */
    char todo[PATH_MAX]; /* what is left to resolve; symlink bodies are spliced in */
    char done[PATH_MAX]; /* components below the root that lead to CUR, "/a/b" or "" */
    size_t done_len;
    unsigned links; /* symlinks followed so far */
};

static int
open_root(int rootfd)
{
    return RET_NERRNO(openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
}

/* Go to the root again, as for an absolute path or symlink. */
static int
walk_restart(struct walk *w)
{
    int fd = open_root(w->rootfd);
    if (fd < 0)
        return fd;
    safe_close(w->cur);
    w->cur = fd;
    w->done_len = 0;
    w->done[0] = 0;
    return 0;
}

/* "..": the parent of CUR is found by name from the root, walking DONE minus its last component,
 * never with openat(cur, ".."). If CUR had been moved out of the root meanwhile (a rename race
 * by whoever controls the rootfs), ".." from it would lead outside; walking down from the root
 * by plain names cannot. This is O(depth) per "..", which is fine for paths bounded by
 * PATH_MAX. At the root, ".." stays at the root, as with RESOLVE_IN_ROOT. */
static int
walk_up(struct walk *w)
{
    if (w->done_len == 0)
        return 0;

    char *slash = memrchr(w->done, '/', w->done_len);
    DT_ASSERT(slash);
    w->done_len = (size_t) (slash - w->done);
    w->done[w->done_len] = 0;

    int fd = open_root(w->rootfd);
    if (fd < 0)
        return fd;
    const char *p = w->done;
    while (*p) {
        char name[NAME_MAX + 1];
        const char *start = p + 1; /* DONE is "/a/b": skip the slash */
        const char *end = strchrnul(start, '/');
        size_t len = (size_t) (end - start);
        memcpy(name, start, len);
        name[len] = 0;
        /* Every entry of DONE was a directory when we went through it. If it is not one now,
         * somebody changed the tree under us: fail rather than guess. */
        int next = RET_NERRNO(openat(fd, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
        safe_close(fd);
        if (next < 0)
            return next;
        fd = next;
        p = end;
    }
    safe_close(w->cur);
    w->cur = fd;
    return 0;
}

/* Descend into the directory DIRFD (taking ownership) named NAME. */
static int
walk_down(struct walk *w, int dirfd, const char *name, size_t len)
{
    if (w->done_len + 1 + len >= sizeof(w->done)) {
        safe_close(dirfd);
        return -ENAMETOOLONG;
    }
    w->done[w->done_len++] = '/';
    memcpy(w->done + w->done_len, name, len);
    w->done_len += len;
    w->done[w->done_len] = 0;
    safe_close(w->cur);
    w->cur = dirfd;
    return 0;
}

/* Magic links (/proc/<pid>/fd/N, /proc/<pid>/exe, cwd, root, ns/...) are what
 * RESOLVE_NO_MAGICLINKS refuses: in the kernel they jump to an object rather than name a path.
 * The walk below never performs such a jump (it only splices readlink() text), so it cannot
 * escape through one, but it should still refuse them to behave like openat2. They exist only in
 * procfs; there the ordinary symlinks (/proc/self, /proc/thread-self, /proc/mounts,
 * /proc/net) read as relative paths of plain names, while magic links read as absolute paths or
 * as "type:[inode]" (pipe:[123], anon_inode:[eventfd], mnt:[4026531841]). */
static bool
is_magic_link(int linkfd, const char *target, size_t len)
{
    struct statfs sfs;

    if (fstatfs(linkfd, &sfs) < 0)
        return true; /* cannot tell: refuse */
    if (sfs.f_type != PROC_SUPER_MAGIC)
        return false;
    if (len == 0 || target[0] == '/')
        return true;
    for (size_t i = 0; i < len; i++) {
        char c = target[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '.' || c == '-' || c == '_'))
            return true;
    }
    return false;
}

/* LINKFD is an O_PATH|O_NOFOLLOW fd of a symlink met at TODO[0..AFTER): replace that part of
 * TODO with the link's body, keeping TODO[AFTER..] (the slashes and components that followed).
 * An absolute body restarts at the root. */
static int
walk_follow(struct walk *w, int linkfd, size_t after)
{
    char target[PATH_MAX];
    ssize_t n;
    int r;

    /* At exactly 40 links openat2(RESOLVE_IN_ROOT) answers either way from run to run (the
     * fuzzer found it: fuzz/corpus/safe-open/chain39); we follow plain open(), which takes 40. */
    if (++w->links > MAX_SYMLINKS)
        return -ELOOP;

    /* readlinkat() on the O_PATH fd itself reads the very inode we looked at, not whatever
     * might have been renamed over the name since. */
    n = readlinkat(linkfd, "", target, sizeof(target));
    if (n < 0)
        return -errno;
    if ((size_t) n >= sizeof(target))
        return -ENAMETOOLONG;
    if (n == 0)
        return -ENOENT; /* an empty symlink, as the kernel treats it */
    if (is_magic_link(linkfd, target, (size_t) n))
        return -ELOOP;

    size_t rest = strlen(w->todo + after);
    if ((size_t) n + rest >= sizeof(w->todo))
        return -ENAMETOOLONG;
    memmove(w->todo + n, w->todo + after, rest + 1);
    memcpy(w->todo, target, (size_t) n);

    if (target[0] == '/') {
        r = walk_restart(w);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The final open of the walk, on the directory CUR itself (for "/", "a/.", "a/..", "a/"). */
static int
open_cur(struct walk *w, int flags, mode_t mode, enum walk_mode wm)
{
    if (wm == WALK_MKDIR)
        return TAKE_FD(w->cur);
    return RET_NERRNO(openat(w->cur, ".", flags, mode));
}

/* The fallback: resolve W->todo under W->rootfd. */
static int
walk(struct walk *w, int flags, mode_t mode, enum walk_mode wm)
{
    bool follow_last = !(flags & (O_NOFOLLOW | O_CREAT));
    int r;

    w->cur = open_root(w->rootfd);
    if (w->cur < 0)
        return w->cur;
    w->done_len = 0;
    w->done[0] = 0;
    w->links = 0;

    size_t pos = 0;
    for (;;) {
        /* Skip slashes; a leading one means the root, which CUR already is (or the walk was
         * restarted there). */
        while (w->todo[pos] == '/')
            pos++;
        if (w->todo[pos] == 0)
            return open_cur(w, flags, mode, wm);

        const char *comp = w->todo + pos;
        size_t len = strcspn(comp, "/");
        size_t after = pos + len;
        size_t next = after;
        while (w->todo[next] == '/')
            next++;
        bool last = w->todo[next] == 0;
        /* "name/" must be a directory: the kernel then follows a final symlink even with
         * O_NOFOLLOW, and refuses O_CREAT with EISDIR. */
        bool trailing_slash = last && next > after;

        if (len > NAME_MAX)
            return -ENAMETOOLONG;
        char name[NAME_MAX + 1];
        memcpy(name, comp, len);
        name[len] = 0;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            if (name[1] == '.') {
                r = walk_up(w);
                if (r < 0)
                    return r;
            }
            pos = next;
            continue;
        }

        if (last && !trailing_slash && wm == WALK_OPEN && !follow_last)
            /* Not following a symlink here: one open with O_NOFOLLOW does it all, including
             * O_CREAT, which then can never create through a dangling symlink (the kernel
             * returns ELOOP for a symlink with O_NOFOLLOW). */
            return RET_NERRNO(openat(w->cur, name, flags | O_NOFOLLOW, mode));
        if (last && trailing_slash && wm == WALK_OPEN && (flags & O_CREAT))
            return -EISDIR;

        int fd = RET_NERRNO(openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (fd == -ENOENT && wm == WALK_MKDIR) {
            r = RET_NERRNO(mkdirat(w->cur, name, mode));
            if (r < 0 && r != -EEXIST) /* EEXIST: raced with someone; look again */
                return r;
            fd = RET_NERRNO(openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        }
        if (fd < 0)
            return fd;

        struct stat st;
        if (fstat(fd, &st) < 0) {
            r = -errno;
            safe_close(fd);
            return r;
        }

        if (S_ISLNK(st.st_mode)) {
            r = walk_follow(w, fd, after);
            safe_close(fd);
            if (r < 0)
                return r;
            pos = 0;
            continue;
        }

        if (last && !trailing_slash && wm == WALK_OPEN) {
            safe_close(fd);
            /* Open by name again with the real flags. O_NOFOLLOW: if the name was replaced
             * by a symlink since we looked, fail (ELOOP) instead of following it unchecked. */
            return RET_NERRNO(openat(w->cur, name, flags | O_NOFOLLOW, mode));
        }

        if (!S_ISDIR(st.st_mode)) {
            safe_close(fd);
            return -ENOTDIR;
        }
        r = walk_down(w, fd, name, len);
        if (r < 0)
            return r;
        pos = next;
    }
}

/* Set up W for PATH and run the walk; CUR is always closed or handed out. */
static int
walk_path(int rootfd, const char *path, int flags, mode_t mode, enum walk_mode wm)
{
    struct walk w = {.rootfd = rootfd, .cur = -EBADF};
    size_t len = strlen(path);

    if (len >= sizeof(w.todo))
        return -ENAMETOOLONG;
    memcpy(w.todo, path, len + 1);

    int r = walk(&w, flags, mode, wm);
    safe_close(w.cur);
    return r;
}

static int
openat2_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
            .flags = (uint64_t) (unsigned) flags,
            /* openat2 rejects a mode without O_CREAT/O_TMPFILE, and mode bits above 07777. */
            .mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode & 07777) : 0,
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long r;

    /* EAGAIN: RESOLVE_IN_ROOT saw a rename or mount change during a ".." and refuses to
     * guess; retrying is what the kernel documentation suggests. */
    for (int i = 0; i < 16; i++) {
        r = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        if (r >= 0 || errno != EAGAIN)
            break;
    }
    return r < 0 ? -errno : (int) r;
}

int
dt_open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    int r;

    if (strlen(path) >= PATH_MAX)
        return -ENAMETOOLONG;
    if (path[0] == 0)
        return -ENOENT;

    flags |= O_CLOEXEC;
    /* O_CREAT never follows a symlink in the last component: with RESOLVE_IN_ROOT the kernel
     * would create the target inside the root, but the fallback could not do that without a
     * race, and callers never need it. */
    if (flags & O_CREAT)
        flags |= O_NOFOLLOW;

    if (!dt_safe_open_force_fallback) {
        r = openat2_in_root(rootfd, path, flags, mode);
        /* ENOSYS: kernel < 5.6. EPERM: a seccomp filter (Docker's older profiles, or ours in a
         * nested sandbox) blocks it; a genuine EPERM comes back from the walk as well. EAGAIN:
         * persistent races, where the walk's own ".." handling is the safe answer. */
        if (r != -ENOSYS && r != -EPERM && r != -EAGAIN)
            return r;
    }
    return walk_path(rootfd, path, flags, mode, WALK_OPEN);
}

int
dt_mkdir_p_in_root(int rootfd, const char *path, mode_t mode)
{
    /* Always the walk: it creates as it goes, and each of its steps is an O_NOFOLLOW open under
     * a directory it already holds, so it is as confined as openat2. Symlinks in the path
     * (including the last component) are followed inside the root, so a missing link target
     * is created there, never on the host. */
    return walk_path(rootfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC, mode, WALK_MKDIR);
}

int
dt_touch_in_root(int rootfd, const char *path, mode_t mode)
{
    size_t len = strlen(path);
    int r;

    if (len >= PATH_MAX)
        return -ENAMETOOLONG;

    /* Split off the last component; the parent goes through mkdir -p. A path ending in '/',
     * "." or ".." names a directory. */
    const char *slash = memrchr(path, '/', len);
    const char *name = slash ? slash + 1 : path;
    if (name[0] == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EISDIR;

    /* "" (no slash) and "/" both resolve to the root. */
    char parent[PATH_MAX];
    size_t plen = slash ? (size_t) (slash - path) : 0;
    memcpy(parent, path, plen);
    parent[plen] = 0;

    int dirfd = dt_mkdir_p_in_root(rootfd, parent, 0755);
    if (dirfd < 0)
        return dirfd;

    /* The last component is never followed: a symlink there gives -ELOOP, so the caller can
     * decide what to do (replace it, as Docker does for /etc/resolv.conf). */
    for (int attempt = 0;; attempt++) {
        int fd = RET_NERRNO(openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (fd >= 0) {
            struct stat st;
            if (fstat(fd, &st) < 0)
                r = -errno;
            else if (S_ISLNK(st.st_mode))
                r = -ELOOP;
            else if (S_ISDIR(st.st_mode))
                r = -EISDIR;
            else
                r = fd;
            if (r < 0)
                safe_close(fd);
            safe_close(dirfd);
            return r;
        }
        if (fd != -ENOENT || attempt > 0) {
            safe_close(dirfd);
            return fd;
        }
        fd = RET_NERRNO(
                openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode));
        if (fd < 0 && fd != -EEXIST) { /* EEXIST: created meanwhile; look again */
            safe_close(dirfd);
            return fd;
        }
        safe_close(fd);
    }
}
