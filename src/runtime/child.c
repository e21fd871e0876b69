/* SPDX-License-Identifier: Apache-2.0 */
/* Child-side sandbox setup between clone3() and execve(): see child.h. Only syscalls and stack
 * buffers here. The order of steps matters and each step says why it sits where it does. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

#include "caps.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "safe-open.h"
#include "seccomp.h"
#include "dt/banned.h"

#define CHILD_MAX_FDS (DT_MAX_MOUNTS + 4)

/* ---- messages ---------------------------------------------------------------------------- */

int
dt_child_send(int sock, const struct dt_child_msg *m, const int *fds, size_t n_fds)
{
    struct iovec iov = {.iov_base = (void *) m, .iov_len = sizeof(*m)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * CHILD_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n_fds > CHILD_MAX_FDS)
        return -E2BIG;
    if (n_fds > 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int
dt_child_recv(int sock, struct dt_child_msg *m, int *fds, size_t max_fds, size_t *n_fds)
{
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * CHILD_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf)};
    ssize_t n;

    if (n_fds)
        *n_fds = 0;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int tmp[CHILD_MAX_FDS];
        memcpy(tmp, CMSG_DATA(c), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (got < max_fds && fds)
                fds[got++] = tmp[i];
            else
                safe_close(tmp[i]);
        }
    }
    if ((size_t) n != sizeof(*m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (size_t i = 0; i < got; i++)
            safe_close(fds[i]);
        return -EBADMSG;
    }
    m->text[sizeof(m->text) - 1] = 0;
    if (n_fds)
        *n_fds = got;
    return 1;
}

/* Append S to BUF (size N) without overflowing; async-signal-safe. */
static void
buf_append(char *buf, size_t n, const char *s)
{
    size_t l = strnlen(buf, n);
    while (*s && l + 1 < n)
        buf[l++] = *s++;
    buf[l] = 0;
}

/* Report a failed step to the parent and exit. ERRNUM is positive or negative. */
_Noreturn static void
child_fail(int sock, int errnum, const char *what, const char *arg)
{
    struct dt_child_msg m = {.type = DT_MSG_ERROR, .err = errnum < 0 ? -errnum : errnum};
    m.text[0] = 0;
    buf_append(m.text, sizeof(m.text), what);
    if (arg) {
        buf_append(m.text, sizeof(m.text), " '");
        buf_append(m.text, sizeof(m.text), arg);
        buf_append(m.text, sizeof(m.text), "'");
    }
    if (m.err == 0)
        m.err = EIO;
    (void) dt_child_send(sock, &m, NULL, 0);
    _exit(127);
}

/* ---- mounts ------------------------------------------------------------------------------ */

/* Attach the detached mount MNTFD on TARGETFD (an O_PATH fd). */
static int
attach_mount(int mntfd, int targetfd)
{
    return RET_NERRNO(move_mount(mntfd, "", targetfd, "",
                                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
}

/* Create a new filesystem instance FSTYPE with string options (name=value pairs, NULL-ended) and
 * return a detached mount of it with ATTRS. */
static int
new_fs_mount(const char *fstype, const char *const *opts, unsigned attrs)
{
    int fsfd = fsopen(fstype, FSOPEN_CLOEXEC);
    if (fsfd < 0)
        return -errno;
    for (size_t i = 0; opts && opts[i]; i += 2) {
        int r = opts[i + 1] ? fsconfig(fsfd, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0)
                            : fsconfig(fsfd, FSCONFIG_SET_FLAG, opts[i], NULL, 0);
        if (r < 0) {
            r = -errno;
            safe_close(fsfd);
            return r;
        }
    }
    if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int r = -errno;
        safe_close(fsfd);
        return r;
    }
    int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, attrs);
    int r = mfd < 0 ? -errno : mfd;
    safe_close(fsfd);
    return r;
}

/* Mount a new FSTYPE on PATH (created as a directory) inside ROOTFD. */
static void
mount_fs_at(const struct dt_child_plan *cp, int rootfd, const char *path, const char *fstype,
            const char *const *opts, unsigned attrs)
{
    int t = dt_mkdir_p_in_root(rootfd, path, 0755);
    if (t < 0)
        child_fail(cp->sock, t, "create mount point", path);
    int m = new_fs_mount(fstype, opts, attrs);
    if (m < 0)
        child_fail(cp->sock, m, "create filesystem for", path);
    int r = attach_mount(m, t);
    if (r < 0)
        child_fail(cp->sock, r, "mount on", path);
    safe_close(m);
    safe_close(t);
}

/* Clone the host path SRC (a file or directory in our not yet pivoted mount namespace) as a
 * detached mount, optionally read-only. Called while we still carry the parent's host ids, which
 * own the state directory (0700): as root of the user namespace we could not even look inside. */
static int
clone_host_path(const char *src, bool readonly)
{
    int m = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (m < 0)
        return -errno;
    if (readonly) {
        struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
        if (mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
            int r = -errno;
            safe_close(m);
            return r;
        }
    }
    return m;
}

/* Attach the detached mount M onto PATH inside ROOTFD, creating the target as a file or a
 * directory as IS_DIR says. */
static int
bind_clone(int m, int rootfd, const char *path, bool is_dir)
{
    int t = is_dir ? dt_mkdir_p_in_root(rootfd, path, 0755) : dt_touch_in_root(rootfd, path, 0644);
    if (t == -ELOOP && !is_dir) {
        /* The image has a symlink there (e.g. /etc/resolv.conf -> ../run/...): replace it, as
         * Docker does, rather than follow it anywhere. */
        char parent[4096];
        const char *slash = strrchr(path, '/');
        size_t pl = slash ? (size_t) (slash - path) : 0;
        if (pl < sizeof(parent)) {
            memcpy(parent, path, pl);
            parent[pl] = 0;
            int pfd = dt_open_in_root(rootfd, pl ? parent : "/", O_PATH | O_DIRECTORY, 0);
            if (pfd >= 0) {
                (void) unlinkat(pfd, slash ? slash + 1 : path, 0);
                safe_close(pfd);
            }
        }
        t = dt_touch_in_root(rootfd, path, 0644);
    }
    if (t < 0)
        return t;
    int r = attach_mount(m, t);
    safe_close(t);
    return r;
}

/* Host paths cloned before we drop the parent's ids (see clone_host_path()). */
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *const etc_files[] = {"hostname", "hosts", "resolv.conf"};

struct host_clones {
    int dev[ELEMENTSOF(dev_nodes)];
    int etc[ELEMENTSOF(etc_files)];
    int null_mask; /* /dev/null, for masking /proc files */
    int meminfo;
    int cpu_online;
};

static void
clone_host_paths(const struct dt_child_plan *cp, struct host_clones *hc)
{
    for (size_t i = 0; i < ELEMENTSOF(dev_nodes); i++) {
        char src[64] = "/dev/";
        buf_append(src, sizeof(src), dev_nodes[i]);
        hc->dev[i] = clone_host_path(src, false);
        if (hc->dev[i] < 0)
            child_fail(cp->sock, hc->dev[i], "clone device", src);
    }
    hc->null_mask = clone_host_path("/dev/null", false);
    if (hc->null_mask < 0)
        child_fail(cp->sock, hc->null_mask, "clone device", "/dev/null");
    for (size_t i = 0; i < ELEMENTSOF(etc_files) + 2; i++) {
        const char *name = i < ELEMENTSOF(etc_files) ? etc_files[i]
                           : i == ELEMENTSOF(etc_files) ? "meminfo"
                                                        : "cpu-online";
        int *slot = i < ELEMENTSOF(etc_files) ? &hc->etc[i]
                    : i == ELEMENTSOF(etc_files) ? &hc->meminfo
                                                 : &hc->cpu_online;
        *slot = -EBADF;
        if ((i == ELEMENTSOF(etc_files) && !cp->meminfo) ||
            (i == ELEMENTSOF(etc_files) + 1 && !cp->cpu_online))
            continue;
        char src[4096] = "";
        if (cp->files_dirfd < 0) {
            buf_append(src, sizeof(src), cp->files_dir);
            buf_append(src, sizeof(src), "/");
        }
        buf_append(src, sizeof(src), name);
        *slot = open_tree(cp->files_dirfd >= 0 ? cp->files_dirfd : AT_FDCWD, src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (*slot >= 0 && i >= ELEMENTSOF(etc_files)) {
            struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
            if (mount_setattr(*slot, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
                *slot = -errno;
        } else if (*slot < 0)
            *slot = -errno;
        if (*slot < 0)
            child_fail(cp->sock, *slot, "clone generated file", name);
    }
}

/* Docker's masked and read-only /proc paths (moby/oci defaults). */
static const char *const proc_masked[] = {
        "asound", "acpi", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
        "sched_debug", "scsi",
};
static const char *const proc_readonly[] = {"bus", "fs", "irq", "sys", "sysrq-trigger"};

static void
setup_proc(const struct dt_child_plan *cp, int rootfd, const struct host_clones *hc)
{
    mount_fs_at(cp, rootfd, "/proc", "proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                           MOUNT_ATTR_NOEXEC);
    int procfd = dt_open_in_root(rootfd, "/proc", O_PATH | O_DIRECTORY, 0);
    if (procfd < 0)
        child_fail(cp->sock, procfd, "open", "/proc");

    /* One empty read-only tmpfs, cloned over each masked directory; /dev/null over files. */
    static const char *const tmpfs_opts[] = {"size", "0", "mode", "0555", NULL};
    int empty = new_fs_mount("tmpfs", tmpfs_opts, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                                          MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (empty < 0)
        child_fail(cp->sock, empty, "create tmpfs for masking /proc", NULL);
    for (size_t i = 0; i < ELEMENTSOF(proc_masked); i++) {
        int t = openat(procfd, proc_masked[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (t < 0)
            continue; /* not on this kernel */
        struct stat st;
        int src;
        if (fstat(t, &st) == 0 && S_ISDIR(st.st_mode))
            src = open_tree(empty, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        else
            src = open_tree(hc->null_mask, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (src < 0)
            child_fail(cp->sock, errno, "clone mask for /proc/", proc_masked[i]);
        int r = attach_mount(src, t);
        if (r < 0)
            child_fail(cp->sock, r, "mask /proc/", proc_masked[i]);
        safe_close(src);
        safe_close(t);
    }
    safe_close(empty);

    for (size_t i = 0; i < ELEMENTSOF(proc_readonly); i++) {
        int src = open_tree(procfd, proc_readonly[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (src < 0) {
            if (errno == ENOENT)
                continue;
            child_fail(cp->sock, errno, "clone /proc/", proc_readonly[i]);
        }
        struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                           MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
        if (mount_setattr(src, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
            child_fail(cp->sock, errno, "make read-only /proc/", proc_readonly[i]);
        int r = RET_NERRNO(move_mount(src, "", procfd, proc_readonly[i], MOVE_MOUNT_F_EMPTY_PATH));
        if (r < 0)
            child_fail(cp->sock, r, "mount read-only /proc/", proc_readonly[i]);
        safe_close(src);
    }

    if (hc->meminfo >= 0) {
        int r = bind_clone(hc->meminfo, rootfd, "/proc/meminfo", false);
        if (r < 0)
            child_fail(cp->sock, r, "bind", "/proc/meminfo");
    }
    safe_close(procfd);
}

static void
setup_sys(const struct dt_child_plan *cp, int rootfd, const struct host_clones *hc)
{
    mount_fs_at(cp, rootfd, "/sys", "sysfs", NULL,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    static const char *const tmpfs_opts[] = {"size", "0", "mode", "0555", NULL};
    static const char *const masked[] = {"/sys/firmware", "/sys/devices/virtual/powercap"};
    for (size_t i = 0; i < ELEMENTSOF(masked); i++) {
        int t = dt_open_in_root(rootfd, masked[i], O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
        if (t < 0)
            continue;
        int m = new_fs_mount("tmpfs", tmpfs_opts, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                                           MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (m < 0 || attach_mount(m, t) < 0)
            child_fail(cp->sock, errno, "mask", masked[i]);
        safe_close(m);
        safe_close(t);
    }
    if (hc->cpu_online >= 0) {
        int r = bind_clone(hc->cpu_online, rootfd, "/sys/devices/system/cpu/online", false);
        if (r < 0)
            child_fail(cp->sock, r, "bind", "/sys/devices/system/cpu/online");
    }
}

static void
setup_dev(const struct dt_child_plan *cp, int rootfd, const struct host_clones *hc)
{
    static const char *const dev_opts[] = {"mode", "0755", "size", "65536", NULL};
    mount_fs_at(cp, rootfd, "/dev", "tmpfs", dev_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);

    /* Device nodes cannot be created in a user namespace; bind the host's, as rootless runc and
     * crun do. The host's devtmpfs is not owned by our user namespace, so the nodes work. */
    for (size_t i = 0; i < ELEMENTSOF(dev_nodes); i++) {
        char dst[64] = "/dev/";
        buf_append(dst, sizeof(dst), dev_nodes[i]);
        int r = bind_clone(hc->dev[i], rootfd, dst, false);
        if (r < 0)
            child_fail(cp->sock, r, "bind device", dst);
    }

    static const char *const pts_opts[] = {"newinstance", NULL, "ptmxmode", "0666", "mode", "0620",
                                           "gid", "5", NULL};
    mount_fs_at(cp, rootfd, "/dev/pts", "devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    static const char *const shm_opts[] = {"mode", "1777", "size", "67108864", NULL};
    mount_fs_at(cp, rootfd, "/dev/shm", "tmpfs", shm_opts,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    mount_fs_at(cp, rootfd, "/dev/mqueue", "mqueue", NULL,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);

    int devfd = dt_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, 0);
    if (devfd < 0)
        child_fail(cp->sock, devfd, "open", "/dev");
    static const char *const links[][2] = {
            {"pts/ptmx", "ptmx"},         {"/proc/self/fd", "fd"},
            {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
            {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
    };
    for (size_t i = 0; i < ELEMENTSOF(links); i++)
        if (symlinkat(links[i][0], devfd, links[i][1]) < 0 && errno != EEXIST)
            child_fail(cp->sock, errno, "symlink /dev/", links[i][1]);
    safe_close(devfd);
}

static void
setup_etc(const struct dt_child_plan *cp, int rootfd, const struct host_clones *hc)
{
    for (size_t i = 0; i < ELEMENTSOF(etc_files); i++) {
        char dst[64] = "/etc/";
        buf_append(dst, sizeof(dst), etc_files[i]);
        int r = bind_clone(hc->etc[i], rootfd, dst, false);
        if (r < 0)
            child_fail(cp->sock, r, "bind", dst);
    }
}

static void
close_host_clones(struct host_clones *hc)
{
    for (size_t i = 0; i < ELEMENTSOF(hc->dev); i++)
        safe_close(hc->dev[i]);
    for (size_t i = 0; i < ELEMENTSOF(hc->etc); i++)
        safe_close(hc->etc[i]);
    safe_close(hc->null_mask);
    safe_close(hc->meminfo);
    safe_close(hc->cpu_online);
}

/* ---- process ----------------------------------------------------------------------------- */

/* Open PATH (inside the sandbox, whose root may have replaced it) as a character device: no
 * symlink, no blocking open of a FIFO. Returns the fd (O_CLOEXEC, blocking mode restored) or
 * -errno (-ENODEV when it is something else). */
static int
open_char_device(const char *path, int flags)
{
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
        safe_close(fd);
        return -ENODEV;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int r = -errno;
        safe_close(fd);
        return r;
    }
    return fd;
}

/* execve() ARGV[0], searching PATH when it has no slash (execvpe would search our own PATH,
 * not the sandbox's). Returns -errno of the most telling failure. */
static int
exec_path(const struct dt_child_proc *p)
{
    const char *file = p->argv[0];
    if (strchr(file, '/')) {
        execve(file, p->argv, p->envp);
        return -errno;
    }
    int best = -ENOENT;
    const char *s = p->path && *p->path ? p->path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (*s) {
        const char *e = strchrnul(s, ':');
        char buf[4096];
        size_t dl = (size_t) (e - s), fl = strlen(file);
        if (dl + fl + 2 < sizeof(buf)) {
            if (dl == 0)
                buf[0] = '.', dl = 1;
            else
                memcpy(buf, s, dl);
            buf[dl] = '/';
            memcpy(buf + dl + 1, file, fl + 1);
            execve(buf, p->argv, p->envp);
            if (errno == EACCES)
                best = -EACCES;
            else if (errno != ENOENT && errno != ENOTDIR)
                return -errno;
        }
        s = *e ? e + 1 : e;
    }
    return best;
}

/* Drop privileges and exec: the tail shared by init and exec'd processes. Runs inside every
 * namespace with the sandbox as root directory, as uid 0 of the sandbox. */
_Noreturn static void
exec_process(int sock, const struct dt_child_proc *p)
{
    int r;

    if (p->pty) {
        /* A new terminal from the sandbox's own devpts instance, so it is the sandbox's tty.
         * The master goes to the caller; the slave becomes our controlling terminal. */
        /* The sandbox's root owns /dev: open the devpts instance's own ptmx, refuse anything
         * that is not a character device, and never block on a planted FIFO. */
        int master = open_char_device("/dev/pts/ptmx", O_RDWR | O_NOCTTY);
        if (master < 0)
            child_fail(sock, master, "open", "/dev/pts/ptmx");
        int unlock = 0;
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
            child_fail(sock, errno, "unlock pty", NULL);
        if (p->rows && p->cols) {
            struct winsize ws = {.ws_row = p->rows, .ws_col = p->cols};
            (void) ioctl(master, TIOCSWINSZ, &ws);
        }
        int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
        if (slave < 0)
            child_fail(sock, errno, "open pty peer", NULL);
        struct dt_child_msg m = {.type = DT_MSG_PTY};
        r = dt_child_send(sock, &m, &master, 1);
        if (r < 0)
            child_fail(sock, r, "send pty", NULL);
        safe_close(master);
        if (setsid() < 0)
            child_fail(sock, errno, "setsid", NULL);
        if (ioctl(slave, TIOCSCTTY, 0) < 0)
            child_fail(sock, errno, "set controlling terminal", NULL);
        for (int i = 0; i < 3; i++)
            if (dup2(slave, i) < 0)
                child_fail(sock, errno, "dup2 pty", NULL);
        if (slave > 2)
            safe_close(slave);
    } else {
        /* Move the given fds out of the way first so dup2 onto 0..2 cannot clobber one another. */
        int tmp[3];
        for (int i = 0; i < 3; i++) {
            if (p->stdio[i] >= 0)
                tmp[i] = fcntl(p->stdio[i], F_DUPFD_CLOEXEC, 3);
            else
                tmp[i] = open_char_device("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (tmp[i] < 0)
                child_fail(sock, tmp[i] == -1 ? errno : tmp[i], "set up stdio", NULL);
        }
        for (int i = 0; i < 3; i++)
            if (dup2(tmp[i], i) < 0)
                child_fail(sock, errno, "dup2 stdio", NULL);
        if (setsid() < 0)
            child_fail(sock, errno, "setsid", NULL);
    }

    /* Extra fds go to 3, 4, ...: first move everything we still need (each extra, the exec fd,
     * the sync socket) above that range, then dup2 into place. */
    int exec_fd = p->exec_fd;
    int keep = 3 + p->n_extra_fds;
    if (p->n_extra_fds > 0 || exec_fd >= 0) {
        int tmpx[16];
        if (p->n_extra_fds > (int) ELEMENTSOF(tmpx))
            child_fail(sock, -EINVAL, "too many fds", NULL);
        int s2 = fcntl(sock, F_DUPFD_CLOEXEC, keep);
        if (s2 < 0)
            child_fail(sock, errno, "move sync socket", NULL);
        sock = s2;
        if (exec_fd >= 0 && (exec_fd = fcntl(exec_fd, F_DUPFD_CLOEXEC, keep)) < 0)
            child_fail(sock, errno, "move exec fd", NULL);
        for (int i = 0; i < p->n_extra_fds; i++)
            if ((tmpx[i] = fcntl(p->extra_fds[i], F_DUPFD_CLOEXEC, keep)) < 0)
                child_fail(sock, errno, "move fds", NULL);
        for (int i = 0; i < p->n_extra_fds; i++)
            if (dup2(tmpx[i], 3 + i) < 0)
                child_fail(sock, errno, "dup2 fds", NULL);
    }

    if (p->cwd && chdir(p->cwd) < 0)
        child_fail(sock, errno, "change directory to", p->cwd);

    /* Capabilities while still root (dropping from the bounding set needs CAP_SETPCAP). The
     * default set keeps SETUID/SETGID, so the switch to the user below still works; for a
     * non-root user the kernel then clears permitted and effective, as for Docker. */
    r = dt_caps_apply(p->caps, false);
    if (r < 0)
        child_fail(sock, r, "drop capabilities", NULL);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(sock, errno, "set no_new_privs", NULL);
    if (setgroups(0, NULL) < 0 || setresgid(p->gid, p->gid, p->gid) < 0)
        child_fail(sock, errno, "set group", NULL);
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        child_fail(sock, errno, "set user", NULL);

    /* The caller's signal mask and ignored signals would be inherited across exec (daytonad run
     * blocks the signals it forwards): start the process with a clean slate. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void) sigprocmask(SIG_SETMASK, &none, NULL);

    /* Last before exec: the filter denies calls made above (setns, mount...). */
    if (p->seccomp) {
        r = dt_seccomp_load(p->seccomp);
        if (r < 0)
            child_fail(sock, r, "load seccomp filter", NULL);
    }

    /* No inherited file descriptors beyond 0..2: everything else closes on exec, including the
     * sync socket, whose EOF tells the parent that exec succeeded. */
    if (syscall(SYS_close_range, (unsigned) keep, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = keep; fd < 65536; fd++)
            if (fd != sock && fd != exec_fd)
                (void) close(fd);

    struct dt_child_msg m = {.type = DT_MSG_EXECING};
    (void) dt_child_send(sock, &m, NULL, 0);
    if (exec_fd >= 0) {
        syscall(SYS_execveat, exec_fd, "", p->argv, p->envp, AT_EMPTY_PATH);
        r = -errno;
    } else
        r = exec_path(p);
    child_fail(sock, r, "execute", p->argv[0]);
}

/* Become uid/gid 0 of the user namespace we were cloned into (or joined): until then we carry the
 * parent's host ids, which do not map inside. */
static void
become_ns_root(int sock)
{
    if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
        child_fail(sock, errno, "become root of the user namespace", NULL);
}

_Noreturn void
dt_child_init_main(const struct dt_child_plan *cp)
{
    struct dt_child_msg m;
    int fds[CHILD_MAX_FDS];
    size_t nfds = 0;
    int r;

    /* Nothing in the sandbox may ptrace us or open our /proc/<pid>/fd while we still hold the
     * parent's fds; and die with the parent while we are being set up (cleared before exec). */
    (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

    r = dt_child_recv(cp->sock, &m, fds, ELEMENTSOF(fds), &nfds);
    if (r <= 0 || m.type != DT_MSG_GO || nfds != 1 + cp->n_binds)
        _exit(126); /* the parent gave up */

    /* The parent has moved us into our cgroup; a cgroup namespace now makes it our "/". */
    if (unshare(CLONE_NEWCGROUP) < 0)
        child_fail(cp->sock, errno, "create cgroup namespace", NULL);

    /* Nothing we mount may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(cp->sock, errno, "make mounts private", NULL);

    /* Until become_ns_root() we carry the parent's host ids: the only ids that may look into the
     * state directory. Take from the host what we need now: fds[0] is the overlay the parent
     * built from idmapped layers; attach it, and clone the host files we bind later. */
    int rootfd = open(cp->rootfs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        child_fail(cp->sock, errno, "open root filesystem mount point", cp->rootfs_dir);
    r = attach_mount(fds[0], rootfd);
    if (r < 0)
        child_fail(cp->sock, r, "attach root filesystem on", cp->rootfs_dir);
    safe_close(rootfd);
    rootfd = open(cp->rootfs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        child_fail(cp->sock, errno, "open root filesystem", cp->rootfs_dir);
    struct host_clones hc;
    clone_host_paths(cp, &hc);

    /* From here on, everything is created inside the new root as the sandbox's root, resolving
     * every path with the new root as "/". */
    become_ns_root(cp->sock);
    setup_proc(cp, rootfd, &hc);
    setup_sys(cp, rootfd, &hc);
    setup_dev(cp, rootfd, &hc);
    setup_etc(cp, rootfd, &hc);
    close_host_clones(&hc);

    for (size_t i = 0; i < cp->n_binds; i++) {
        const struct dt_child_bind *b = &cp->binds[i];
        int t = b->is_dir ? dt_mkdir_p_in_root(rootfd, b->target, 0755)
                          : dt_touch_in_root(rootfd, b->target, 0644);
        if (t < 0)
            child_fail(cp->sock, t, "create bind mount target", b->target);
        r = attach_mount(fds[b->fd_index], t);
        if (r < 0)
            child_fail(cp->sock, r, "bind mount on", b->target);
        safe_close(t);
    }
    for (size_t i = 0; i < nfds; i++)
        safe_close(fds[i]);

    /* pivot_root(".", "."): the old root ends up stacked on the new one and is detached at once,
     * so no path to the host remains. */
    if (fchdir(rootfd) < 0)
        child_fail(cp->sock, errno, "enter root filesystem", NULL);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(cp->sock, errno, "pivot_root", NULL);
    if (umount2(".", MNT_DETACH) < 0)
        child_fail(cp->sock, errno, "detach old root", NULL);
    if (chdir("/") < 0)
        child_fail(cp->sock, errno, "chdir /", NULL);
    safe_close(rootfd);

    if (cp->hostname && sethostname(cp->hostname, strlen(cp->hostname)) < 0)
        child_fail(cp->sock, errno, "set hostname", cp->hostname);

    (void) prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    exec_process(cp->sock, &cp->proc);
}

_Noreturn void
dt_child_exec_main(const struct dt_child_plan *cp)
{
    (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* as in dt_child_init_main() */
    /* The parent has moved us into the sandbox's cgroup already, so what we clone is accounted
     * there and the cgroup namespace we join shows it as "/". */
    if (setns(cp->ns_pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS |
                                    CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP) < 0)
        child_fail(cp->sock, errno, "join the sandbox namespaces", NULL);

    /* setns(CLONE_NEWPID) only applies to children: clone once more. CLONE_PARENT makes the new
     * process a child of our caller, which can then wait for it and get its exit status. */
    struct clone_args ca = {.flags = CLONE_PARENT, .exit_signal = 0};
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid < 0)
        child_fail(cp->sock, errno, "clone into the sandbox", NULL);
    if (pid > 0) {
        struct dt_child_msg m = {.type = DT_MSG_PID, .pid = (pid_t) pid};
        (void) dt_child_send(cp->sock, &m, NULL, 0);
        _exit(0);
    }

    become_ns_root(cp->sock);
    /* After setns(CLONE_NEWNS) our root and cwd are the sandbox's root. */
    exec_process(cp->sock, &cp->proc);
}
