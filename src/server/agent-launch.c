/* SPDX-License-Identifier: Apache-2.0 */
/* Starting a sandbox with daytona-agent as its init (see agent-launch.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/xalloc.h"
#include "server/agent-launch.h"
#include "dt/banned.h"

void
dt_agent_plan(struct dt_plan *p, const char *user, const char *workdir)
{
    /* The agent is init (as root of the sandbox); it runs processes as the user itself. */
    strv_push(&p->args, "daytona-agent");
    strv_push(&p->args, "--oom-fd");
    strv_push(&p->args, "4");
    strv_push(&p->args, "--cgroup-fds-from");
    strv_push(&p->args, "5");
    if (user) {
        strv_push(&p->args, "--user");
        strv_push(&p->args, user);
    }
    if (workdir) {
        strv_push(&p->args, "--workdir");
        strv_push(&p->args, workdir);
    }
    strv_push(&p->env, "LISTEN_FDS=1");
    p->init_leaf = true;
}

int
dt_agent_open_binary(const char *path, int *ret_fd, struct dt_error **err)
{
    _cleanup_free_ char *self = NULL, *def = NULL;
    struct stat st;
    int fd;

    if (!path) {
        char *slash;
        self = realpath("/proc/self/exe", NULL);
        slash = self ? strrchr(self, '/') : NULL;
        if (!slash)
            return dt_error_errno(err, errno, "find our own binary");
        *slash = 0;
        /* A sanitizer build's agent needs the sanitizer runtime, which images lack: such a
         * build puts a static, plain copy beside it (src/daytona-agent/CMakeLists.txt). */
        def = xasprintf("%s/daytona-agent-static", self);
        if (access(def, X_OK) < 0) {
            free(def);
            def = xasprintf("%s/daytona-agent", self);
        }
        path = def;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "open agent binary '%s'", path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
        safe_close(fd);
        return dt_error_set(err, ENOEXEC, "agent binary '%s' is not an executable file", path);
    }
    *ret_fd = fd;
    return 0;
}

int
dt_agent_listen(const char *path, int *ret_fd, struct dt_error **err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    _cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", path, (int) getpid());
    _cleanup_close_ int fd = -EBADF;
    struct stat st;
    mode_t old;
    int r;

    if (strlen(tmp) >= sizeof(sa.sun_path))
        return dt_error_set(err, ENAMETOOLONG, "socket path too long: %s", tmp);
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return dt_error_set(err, EEXIST, "%s exists and is not a socket", path);
    memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
    (void) unlink(tmp);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dt_error_errno(err, errno, "socket");
    old = umask(0077);
    r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return dt_error_errno(err, errno, "bind %s", tmp);
    if (chmod(tmp, 0600) < 0 || listen(fd, 128) < 0 || rename(tmp, path) < 0) {
        r = dt_error_errno(err, errno, "listen on %s", path);
        (void) unlink(tmp);
        return r;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int
dt_agent_start(struct dt_sandbox *sb, int exe_fd, const char *socket_path, const int stdio[3],
               int *ret_protect, struct dt_error **err)
{
    _cleanup_close_ int lfd = -EBADF, oomfd = -EBADF;
    struct dt_start_opts so = { .stdio_fds = { stdio[0], stdio[1], stdio[2] } };
    int fds[2];
    int r;

    r = dt_sandbox_open_oom_file(sb, &oomfd, err);
    if (r < 0)
        return r;
    r = dt_agent_listen(socket_path, &lfd, err);
    if (r < 0)
        return r;
    fds[0] = lfd;
    fds[1] = oomfd;
    so.extra_fds = fds;
    so.n_extra_fds = ELEMENTSOF(fds);
    so.exec_fd = exe_fd;
    /* The OOM killer picks the workload, never the agent (protect_result < 0 without
     * CAP_SYS_RESOURCE: the sandbox works anyway). */
    so.protect_init = true;
    r = dt_sandbox_start_opts(sb, &so, err);
    if (r < 0) {
        (void) unlink(socket_path);
        return r;
    }
    if (ret_protect)
        *ret_protect = so.protect_result;
    return 0;
}
