/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers: see testlib.h. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"

_Noreturn void
dt_test_skip(const char *why)
{
    fprintf(stderr, "SKIP: %s\n", why);
    exit(DT_TEST_SKIP);
}

void
dt_test_require_root(void)
{
    if (geteuid() != 0)
        dt_test_skip("needs root");
}

char *
dt_test_mkdtemp(const char *prefix)
{
    char *t = xasprintf("/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(t)) {
        perror("mkdtemp");
        abort();
    }
    return t;
}

void
dt_test_rm_rf(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", "--one-file-system", (char *) path, NULL};
    (void) dt_test_run(argv, NULL);
}

static void
must_symlink(const char *target, const char *path)
{
    if (symlink(target, path) < 0 && errno != EEXIST) {
        fprintf(stderr, "symlink %s: %s\n", path, strerror(errno));
        abort();
    }
}

static void
must_copy(const char *src, const char *dst, mode_t mode)
{
    char *buf;
    size_t len;
    if (read_file_at(AT_FDCWD, src, 64 << 20, &buf, &len) < 0) {
        fprintf(stderr, "read %s failed\n", src);
        abort();
    }
    if (write_file_at(AT_FDCWD, dst, buf, len, (int) mode) < 0) {
        fprintf(stderr, "write %s failed\n", dst);
        abort();
    }
    free(buf);
}

char *
dt_test_make_rootfs(void)
{
    const char *probe = getenv("DT_PROBE");
    const char *busybox = "/bin/busybox";
    if (!probe || access(probe, X_OK) < 0)
        dt_test_skip("DT_PROBE not set or not executable");
    if (access(busybox, X_OK) < 0)
        dt_test_skip("busybox-static is not installed");

    char *root = dt_test_mkdtemp("dt-rootfs");
    static const char *const dirs[] = {"bin", "etc", "tmp", "proc", "sys", "dev", "root",
                                       "home", "home/daytona", "usr", "usr/bin", "var"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *p = xasprintf("%s/%s", root, dirs[i]);
        (void) mkdir(p, 0755);
        free(p);
    }
    char *p = xasprintf("%s/tmp", root);
    chmod(p, 01777);
    free(p);
    p = xasprintf("%s/home/daytona", root);
    if (chown(p, 1000, 1000) < 0)
        abort();
    free(p);

    p = xasprintf("%s/bin/busybox", root);
    must_copy(busybox, p, 0755);
    free(p);
    p = xasprintf("%s/probe", root);
    must_copy(probe, p, 0755);
    free(p);

    static const char *const applets[] = {"sh", "cat", "echo", "ls", "id", "hostname", "sleep",
                                          "true", "false", "dd", "mount", "ps", "touch", "mkdir",
                                          "rm", "stat", "head", "nproc", "free", "kill", "env",
                                          "wc", "grep", "ip", "ping", "nc", "wget", "pwd",
                                          "seq", "yes", "df", "sync", "chown", "ln", "cp"};
    for (size_t i = 0; i < ELEMENTSOF(applets); i++) {
        p = xasprintf("%s/bin/%s", root, applets[i]);
        must_symlink("busybox", p);
        free(p);
    }
    p = xasprintf("%s/etc/passwd", root);
    const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                          "daytona:x:1000:1000:daytona:/home/daytona:/bin/sh\n"
                          "nobody:x:65534:65534:nobody:/:/bin/false\n";
    write_file_at(AT_FDCWD, p, passwd, sizeof(passwd) - 1, 0644);
    free(p);
    p = xasprintf("%s/etc/group", root);
    const char group[] = "root:x:0:\ntty:x:5:\ndaytona:x:1000:\nnogroup:x:65534:\n";
    write_file_at(AT_FDCWD, p, group, sizeof(group) - 1, 0644);
    free(p);
    return root;
}

int
dt_test_run(char *const argv[], char **out)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        if (out)
            dup2(pfd[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t n = read(pfd[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    buf[len] = 0;
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (out)
        *out = buf;
    else
        free(buf);
    return status;
}

int
dt_test_count_lines(const char *path)
{
    char *buf;
    size_t len;
    if (read_file_at(AT_FDCWD, path, 64 << 20, &buf, &len) < 0)
        return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    free(buf);
    return n;
}

int
dt_test_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

char *
dt_test_read_trimmed(const char *dir, const char *file)
{
    char *p = xasprintf("%s/%s", dir, file), *buf = NULL;
    int r = read_file_at(AT_FDCWD, p, 1 << 20, &buf, NULL);
    free(p);
    if (r < 0)
        return NULL;
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    return buf;
}
