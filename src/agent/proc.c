/* SPDX-License-Identifier: Apache-2.0 */
/* Spawning and reaping the agent's children. fork + exec by hand (not uv_spawn) because the agent
 * is PID 1 and must reap every process with waitpid(-1), and because a PTY child needs a session
 * and a controlling terminal. Between fork and exec the child only makes syscalls. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <grp.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "dt/fd-util.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct dt_proc {
    struct dt_proc *next;
    pid_t pid;
    bool running;
    bool freed;  /* the owner let go: forget it when reaped */
    uint64_t oom_before;
    dt_proc_exit_fn exit_cb;
    void *userdata;
    struct dt_agent *agent;
};

/* One agent per process: the reaper's table is module state. */
static struct dt_proc *procs;
static uv_signal_t sigchld;

static void
unlink_proc(struct dt_proc *p)
{
    for (struct dt_proc **pp = &procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static void
reap(uv_signal_t *h, int signum)
{
    for (;;) {
        struct dt_proc_exit e = { 0 };
        struct dt_proc *p;
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0)
            break;
        for (p = procs; p; p = p->next)
            if (p->pid == pid && p->running)
                break;
        if (!p)
            continue; /* an orphan re-parented to PID 1 */
        p->running = false;
        if (WIFEXITED(status))
            e.code = WEXITSTATUS(status);
        else {
            e.signal = WTERMSIG(status);
            e.code = 128 + e.signal;
            if (e.signal == SIGKILL)
                e.oom_killed = dt_agent_oom_count(p->agent) > p->oom_before;
        }
        if (p->freed) {
            unlink_proc(p);
            free(p);
            continue;
        }
        if (p->exit_cb)
            p->exit_cb(p, &e, p->userdata);
    }
}

int
dt_proc_init(struct dt_agent *a, struct dt_error **err)
{
    int r = uv_signal_init(a->loop, &sigchld);
    if (r == 0)
        r = uv_signal_start(&sigchld, reap, SIGCHLD);
    if (r < 0)
        return dt_error_errno(err, -r, "watch SIGCHLD");
    uv_unref((uv_handle_t *) &sigchld);
    return 0;
}

char *
dt_proc_which(const char *cmd, char *const *env)
{
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    if (!cmd || !*cmd)
        return NULL;
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 ? xstrdup(cmd) : NULL;
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], "PATH=", 5) == 0) {
            path = env[i] + 5;
            break;
        }
    while (*path) {
        const char *e = strchrnul(path, ':');
        _cleanup_free_ char *cand = NULL;
        struct stat st;

        if (e > path) {
            cand = xasprintf("%.*s/%s", (int) (e - path), path, cmd);
            if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
                return TAKE_PTR(cand);
        }
        path = *e ? e + 1 : e;
    }
    return NULL;
}

/* What the child reports through the error pipe before it dies. */
struct child_err {
    int step;
    int err;
};
enum {
    STEP_SETUP = 1,
    STEP_PTY,
    STEP_STDIO,
    STEP_CREDS,
    STEP_CWD,
    STEP_EXEC,
};

_noreturn_ static void
child_fail(int fd, int step)
{
    struct child_err ce = { step, errno };
    (void) !write(fd, &ce, sizeof(ce));
    _exit(127);
}

/* The child between clone and exec: syscalls only. It runs on its own stack in the parent's
 * memory (CLONE_VM|CLONE_VFORK, like posix_spawn) while the parent waits, so it must not
 * allocate, take locks or change anything the parent owns; errno is the only shared state it
 * writes, and the parent does not read it meanwhile. */
_noreturn_ static void
child(const struct dt_spawn *sp, const struct dt_agent_config *cfg, const struct dt_agent_user *u,
      const char *path, const char *cwd, int slave, int errfd)
{
    int base = 3 + sp->n_extra_fds + 8;
    int moved[3 + 64];
    int nfd = 3 + sp->n_extra_fds;
    sigset_t all;
    int fd;

    sigemptyset(&all);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &all, NULL);

    errfd = fcntl(errfd, F_DUPFD_CLOEXEC, base + nfd + 1);
    if (errfd < 0)
        _exit(127);
    /* Out of the agent's own cgroup leaf into the workload's ("0" = the writer), before any fd
     * is moved; best effort: without it the process still runs, accounted with the agent. */
    for (int i = 0; i < cfg->n_workload_fds; i++)
        (void) !write(cfg->workload_fds[i], "0", 1);
    if (sp->pty) {
        if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
            child_fail(errfd, STEP_PTY);
    } else if (setpgid(0, 0) < 0)
        child_fail(errfd, STEP_SETUP);

    /* Move every fd we hand over above the target range, then dup2 into place: no target can
     * clobber a source. */
    for (int i = 0; i < nfd; i++) {
        int src = i < 3 ? (sp->pty ? slave : sp->stdio[i]) : sp->extra_fds[i - 3];
        if (src < 0) {
            src = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (src < 0)
                child_fail(errfd, STEP_STDIO);
        }
        moved[i] = fcntl(src, F_DUPFD_CLOEXEC, base);
        if (moved[i] < 0)
            child_fail(errfd, STEP_STDIO);
    }
    for (int i = 0; i < nfd; i++)
        if (dup2(moved[i], i) < 0)
            child_fail(errfd, STEP_STDIO);
    if (syscall(SYS_close_range, (unsigned) nfd, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (fd = nfd; fd < 1024; fd++)
            if (fd != errfd)
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }

    /* We run at oom_score_adj -1000; the user's processes must be fair game (raising is always
     * allowed, and they cannot lower it again). */
    fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void) !write(fd, "0", 1);
        close(fd);
    }
    /* Raw syscalls: glibc's wrappers broadcast credential changes to every thread of the
     * process, and we share the parent's memory (vfork-style). */
    if (!sp->as_root && getuid() == 0) {
        if (syscall(SYS_setgroups, (size_t) u->n_groups, u->groups) < 0 ||
            syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0 ||
            syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0)
            child_fail(errfd, STEP_CREDS);
    }
    if (cwd && chdir(cwd) < 0)
        child_fail(errfd, STEP_CWD);
    execve(path, sp->argv, sp->env);
    child_fail(errfd, STEP_EXEC);
}

struct child_args {
    const struct dt_spawn *sp;
    const struct dt_agent_config *cfg;
    const struct dt_agent_user *u;
    const char *path;
    const char *cwd;
    int slave;
    int errfd;
};

static int
child_main(void *arg)
{
    const struct child_args *c = arg;
    child(c->sp, c->cfg, c->u, c->path, c->cwd, c->slave, c->errfd);
}

#define CHILD_STACK_SIZE (256u << 10)

/* vfork-style clone: no page-table copy, so spawning costs the same however large the agent is.
 * One stack serves every child: the parent is suspended until the child execs or exits. */
#if defined(__SANITIZE_ADDRESS__)
#define DT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DT_SANITIZED 1
#endif
#endif

static pid_t
spawn_child(struct child_args *args)
{
    static void *stack;
    sigset_t all, old;
    pid_t pid;

#ifdef DT_SANITIZED
    /* ASan intercepts signal() and friends and keeps state in memory a CLONE_VM child would
     * share with us: sanitizer builds pay for a real fork. */
    pid = fork();
    if (pid == 0)
        child_main(args);
    return pid;
#endif
    if (!stack) {
        stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            stack = NULL;
            return -1;
        }
    }
    /* No signal handler may run in the child while it shares our memory (a handler would write
     * to libuv's signal pipe as if it were us): block everything across the clone; the child
     * resets the handlers before it unblocks. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(child_main, (char *) stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD,
                args);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pid;
}

static int
open_pty(const struct dt_spawn *sp, int *ret_master, int *ret_slave, struct dt_error **err)
{
    struct winsize ws = { .ws_col = sp->cols ? sp->cols : 80, .ws_row = sp->rows ? sp->rows : 24 };
    int unlock = 0;
    int master, slave;

    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return dt_error_errno(err, errno, "open a pseudo-terminal (/dev/ptmx)");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) {
        int r = dt_error_errno(err, errno, "unlock the pseudo-terminal");
        close(master);
        return r;
    }
    /* TIOCGPTPEER opens the slave through the master: no path lookup an attacker could race. */
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        int r = dt_error_errno(err, errno, "open the pseudo-terminal's slave");
        close(master);
        return r;
    }
    (void) ioctl(master, TIOCSWINSZ, &ws);
    *ret_master = master;
    *ret_slave = slave;
    return 0;
}

static const char *
step_name(int step)
{
    switch (step) {
    case STEP_PTY:
        return "attach the terminal";
    case STEP_STDIO:
        return "set up stdio";
    case STEP_CREDS:
        return "switch to the sandbox user";
    case STEP_CWD:
        return "change to the working directory";
    case STEP_EXEC:
        return "execute";
    default:
        return "set up the process";
    }
}

int
dt_proc_spawn(struct dt_agent *a, const struct dt_spawn *sp, dt_proc_exit_fn exit_cb,
              void *userdata, struct dt_proc **ret, int *ret_pty_master, struct dt_error **err)
{
    _cleanup_free_ char *path = NULL;
    int errpipe[2], master = -1, slave = -1;
    const char *cwd = sp->cwd ? sp->cwd : a->user.home;
    struct child_err ce;
    struct dt_proc *p;
    ssize_t n;
    pid_t pid;
    int r;

    if (!sp->argv || !sp->argv[0])
        return dt_error_set(err, EINVAL, "no command");
    if (sp->n_extra_fds < 0 || sp->n_extra_fds > 64)
        return dt_error_set(err, EINVAL, "too many fds for a child");
    path = dt_proc_which(sp->argv[0], sp->env);
    if (!path)
        return dt_error_set(err, ENOENT, "no such command in this sandbox: %s", sp->argv[0]);
    if (cwd) {
        struct stat st;
        if (stat(cwd, &st) < 0)
            return dt_error_errno(err, errno, "working directory %s", cwd);
        if (!S_ISDIR(st.st_mode))
            return dt_error_set(err, ENOTDIR, "working directory %s is not a directory", cwd);
    }
    if (sp->pty) {
        r = open_pty(sp, &master, &slave, err);
        if (r < 0)
            return r;
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        r = dt_error_errno(err, errno, "pipe");
        safe_close(master);
        safe_close(slave);
        return r;
    }
    p = xcalloc(1, sizeof(*p));
    p->agent = a;
    p->oom_before = dt_agent_oom_count(a);
    {
        struct child_args ca = { sp, &a->cfg, &a->user, path, cwd, slave, errpipe[1] };
        pid = spawn_child(&ca);
    }
    if (pid < 0) {
        r = dt_error_errno(err, errno, "clone");
        free(p);
        close(errpipe[0]);
        close(errpipe[1]);
        safe_close(master);
        safe_close(slave);
        return r;
    }
    close(errpipe[1]);
    safe_close(slave);
    do
        n = read(errpipe[0], &ce, sizeof(ce));
    while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t) sizeof(ce)) {
        int status;
        (void) waitpid(pid, &status, 0);
        free(p);
        safe_close(master);
        if (ce.step == STEP_CWD)
            return dt_error_errno(err, ce.err, "%s %s", step_name(ce.step), cwd);
        return dt_error_errno(err, ce.err, "%s %s", step_name(ce.step), sp->argv[0]);
    }
    p->pid = pid;
    p->running = true;
    p->exit_cb = exit_cb;
    p->userdata = userdata;
    p->next = procs;
    procs = p;
    if (sp->pty) {
        int fl = fcntl(master, F_GETFL);
        (void) fcntl(master, F_SETFL, fl | O_NONBLOCK);
        if (ret_pty_master)
            *ret_pty_master = master;
        else
            close(master);
    }
    *ret = p;
    return 0;
}

pid_t
dt_proc_pid(const struct dt_proc *p)
{
    return p->pid;
}

bool
dt_proc_running(const struct dt_proc *p)
{
    return p->running;
}

void
dt_proc_kill(struct dt_proc *p, int sig)
{
    if (!p->running)
        return;
    if (kill(-p->pid, sig) < 0)
        (void) kill(p->pid, sig);
}

void
dt_proc_free(struct dt_proc *p)
{
    if (!p)
        return;
    if (p->running) {
        p->freed = true;
        p->exit_cb = NULL;
        return;
    }
    unlink_proc(p);
    free(p);
}

void
dt_proc_terminate_all(struct dt_agent *a, uint64_t grace_ms)
{
    uint64_t deadline = now_msec() + grace_ms;
    bool pid1 = getpid() == 1;

    /* SIGHUP first: an interactive shell on a terminal ignores SIGTERM but not a hangup. */
    for (struct dt_proc *p = procs; p; p = p->next) {
        dt_proc_kill(p, SIGHUP);
        dt_proc_kill(p, SIGTERM);
    }
    /* As PID 1, kill(-1) reaches every process of the sandbox (the kernel spares the caller). */
    if (pid1)
        (void) kill(-1, SIGTERM);
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid < 0 && errno == ECHILD)
            break;
        if (pid > 0)
            continue;
        if (now_msec() >= deadline) {
            for (struct dt_proc *p = procs; p; p = p->next)
                dt_proc_kill(p, SIGKILL);
            if (pid1)
                (void) kill(-1, SIGKILL);
            while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
                ;
            break;
        }
        sleep_msec(10);
    }
    /* Everything is reaped. Owners free their handles as their libuv handles close (the caller
     * runs the loop once more); handles nobody owns any more go now. */
    for (struct dt_proc **pp = &procs; *pp;) {
        struct dt_proc *p = *pp;
        p->running = false;
        if (p->freed) {
            *pp = p->next;
            free(p);
        } else
            pp = &p->next;
    }
}

int
dt_proc_pipe(struct dt_agent *a, uv_pipe_t *reader, int *ret_write_fd, struct dt_error **err)
{
    int fds[2];
    int r;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return dt_error_errno(err, errno, "pipe");
    r = uv_pipe_init(a->loop, reader, 0);
    if (r == 0)
        r = uv_pipe_open(reader, fds[0]);
    if (r < 0) {
        close(fds[0]);
        close(fds[1]);
        return dt_error_errno(err, -r, "watch a pipe");
    }
    *ret_write_fd = fds[1];
    return 0;
}
