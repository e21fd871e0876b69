/* SPDX-License-Identifier: Apache-2.0 */
/* The code that runs in a freshly cloned child, between clone3() and execve(): the sandbox's init
 * (finish the mounts, pivot_root, drop privileges, exec) and the intermediate + grandchild of
 * dt_sandbox_exec() (join namespaces and cgroup, exec). The parent prepares everything as plain
 * data in a `struct dt_child_plan` before cloning; the child only makes syscalls: no malloc, no
 * stdio, no locks, because the parent may be multi-threaded (libuv's thread pool) and raw clone3
 * runs no atfork handlers. Errors go back to the parent as a `struct dt_child_msg` on a
 * SOCK_SEQPACKET socket whose EOF (close-on-exec) means success. */
#ifndef DT_RUNTIME_CHILD_H
#define DT_RUNTIME_CHILD_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dt/runtime.h"

enum dt_child_msg_type {
    DT_MSG_GO = 1, /* parent -> child: namespaces are set up; carries the rootfs + bind fds */
    DT_MSG_ERROR,  /* child -> parent: a step failed (err, text) */
    DT_MSG_PID,    /* intermediate -> parent: the exec'd process's pid */
    DT_MSG_PTY,    /* grandchild -> parent: the pty master, as SCM_RIGHTS */
    DT_MSG_EXECING, /* child -> parent: setup done, execve() next (EOF then means success) */
};

struct dt_child_msg {
    int type;
    int err;       /* positive errno for DT_MSG_ERROR */
    pid_t pid;     /* DT_MSG_PID */
    char text[512];
};

struct dt_child_bind {
    const char *target; /* path inside the sandbox */
    bool is_dir;
    int fd_index;       /* index into the fds received with DT_MSG_GO */
};

/* Everything the process setup needs, shared by init and exec. */
struct dt_child_proc {
    int stdio[3];              /* -1 = /dev/null (opened inside the sandbox) */
    uid_t uid;                 /* inside the sandbox */
    gid_t gid;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *path;          /* PATH used to look up argv[0] */
    uint64_t caps;
    const struct sock_fprog *seccomp; /* NULL = none */
    bool no_new_privs;
    bool pty;
    unsigned short rows, cols;
    const int *extra_fds;      /* become 3, 4, ... */
    int n_extra_fds;
    int exec_fd;               /* >= 0: execveat() this fd instead of looking up argv[0] */
};

struct dt_child_plan {
    int sock;                  /* child end of the sync socket */
    /* init only */
    const char *rootfs_dir;    /* host path to attach the rootfs mount on, then pivot into */
    const char *files_dir;     /* host directory with the generated files: hostname, hosts,
                                * resolv.conf, meminfo, cpu-online... */
    int files_dirfd;           /* ...or, when >= 0, a detached mount holding them (inherited at
                                * clone). A path is needed otherwise: open_tree() clones only
                                * mounts of our own namespace, and an fd opened before clone
                                * points into the parent's. */
    const char *hostname;
    size_t n_binds;
    const struct dt_child_bind *binds;
    bool meminfo;              /* bind "meminfo" over /proc/meminfo */
    bool cpu_online;           /* bind "cpu-online" over /sys/devices/system/cpu/online */
    /* exec only */
    int ns_pidfd;              /* pidfd of the sandbox init, to setns() into */
    struct dt_child_proc proc;
};

/* Runs in the sandbox's init after clone3(). Never returns. */
_Noreturn void dt_child_init_main(const struct dt_child_plan *cp);
/* Runs in the intermediate child of dt_sandbox_exec(). Never returns. */
_Noreturn void dt_child_exec_main(const struct dt_child_plan *cp);

/* Send / receive one message with up to N_FDS fds (SCM_RIGHTS). recv returns the number of fds
 * received in *FDS (CLOEXEC), 0 on EOF... see child.c. Async-signal-safe. */
int dt_child_send(int sock, const struct dt_child_msg *m, const int *fds, size_t n_fds);
/* Returns 1 when a message was read, 0 on EOF, -errno on error. *n_fds receives the count. */
int dt_child_recv(int sock, struct dt_child_msg *m, int *fds, size_t max_fds, size_t *n_fds);

#endif
