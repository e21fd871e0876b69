/* SPDX-License-Identifier: Apache-2.0 */
/* daytona-agent: the toolbox server inside every sandbox, started as its PID 1. Thin: options,
 * signals and the listening socket here; everything else in src/agent/. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/proc.h"
#include "agent/session.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

static struct dt_agent agent;
static uv_poll_t sig_poll;
static int sig_fd = -1;
static int exit_status;

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: daytona-agent [OPTIONS] [-- ENTRYPOINT [ARGS...]]\n"
            "Serve the Daytona toolbox API inside a sandbox.\n\n"
            "  --socket PATH     listen on a new unix socket at PATH (default: the socket passed\n"
            "                    as fd 3 with LISTEN_FDS=1, systemd style)\n"
            "  --user NAME       run commands as NAME (default: daytona, else the agent's user)\n"
            "  --workdir DIR     work directory for relative paths (default: the user's home)\n"
            "  --state-dir DIR   private runtime files (default: /tmp/.daytona)\n"
            "  --oom-fd N        fd of the cgroup's memory.events or memory.oom_control\n"
            "  --cgroup-fds-from N  fds N, N+1, ... (while open) are cgroup.procs files of the\n"
            "                    cgroup where commands belong (the agent keeps its own)\n"
            "  --version         print the version\n"
            "ENTRYPOINT runs in the \"entrypoint\" session.\n");
}

static void
on_signal(uv_poll_t *h, int status, int events)
{
    struct signalfd_siginfo si;

    while (read(sig_fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        /* As PID 1, only signals from outside the sandbox count (the runtime's stop): inside the
         * pid namespace a sender has a pid, outside it shows as 0. A process in the sandbox cannot
         * stop the agent. */
        if (getpid() == 1 && si.ssi_pid != 0)
            continue;
        uv_stop(agent.loop);
        return;
    }
}

static int
setup_signals(struct dt_error **err)
{
    sigset_t set;
    int r;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return dt_error_errno(err, errno, "block signals");
    sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0)
        return dt_error_errno(err, errno, "signalfd");
    r = uv_poll_init(agent.loop, &sig_poll, sig_fd);
    if (r == 0)
        r = uv_poll_start(&sig_poll, UV_READABLE, on_signal);
    if (r < 0)
        return dt_error_errno(err, -r, "watch signals");
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int
main(int argc, char **argv)
{
    enum {
        OPT_SOCKET = 256, OPT_USER, OPT_WORKDIR, OPT_STATE, OPT_OOM, OPT_VERSION, OPT_ROOT,
        OPT_CGFDS,
    };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, OPT_SOCKET },
        { "user", required_argument, NULL, OPT_USER },
        { "workdir", required_argument, NULL, OPT_WORKDIR },
        { "state-dir", required_argument, NULL, OPT_STATE },
        { "oom-fd", required_argument, NULL, OPT_OOM },
        { "cgroup-fds-from", required_argument, NULL, OPT_CGFDS },
        { "passwd-root", required_argument, NULL, OPT_ROOT },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    struct dt_agent_config cfg = { .oom_fd = -1 };
    _cleanup_error_ struct dt_error *err = NULL;
    const char *socket_path = NULL;
    uv_loop_t loop;
    int c, r;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            socket_path = optarg;
            break;
        case OPT_USER:
            cfg.user = optarg;
            break;
        case OPT_WORKDIR:
            cfg.workdir = optarg;
            break;
        case OPT_STATE:
            cfg.state_dir = optarg;
            break;
        case OPT_ROOT:
            cfg.root = optarg;
            break;
        case OPT_OOM: {
            uint32_t fd;
            if (parse_u32(optarg, &fd) < 0 || fd > 1 << 20) {
                fprintf(stderr, "daytona-agent: bad --oom-fd: %s\n", optarg);
                return 2;
            }
            cfg.oom_fd = (int) fd;
            break;
        }
        case OPT_CGFDS: {
            uint32_t fd;
            if (parse_u32(optarg, &fd) < 0 || fd < 3 || fd > 1024) {
                fprintf(stderr, "daytona-agent: bad --cgroup-fds-from: %s\n", optarg);
                return 2;
            }
            /* The runtime passes one fd per cgroup hierarchy, consecutively. */
            for (int f = (int) fd; f < (int) fd + 16 && fcntl(f, F_GETFD) >= 0; f++) {
                (void) fcntl(f, F_SETFD, FD_CLOEXEC);
                cfg.workload_fds[cfg.n_workload_fds++] = f;
            }
            break;
        }
        case OPT_VERSION:
            printf("daytona-agent %s\n", DT_AGENT_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (cfg.oom_fd >= 0)
        (void) fcntl(cfg.oom_fd, F_SETFD, FD_CLOEXEC);

    /* Transfers allocate and free 256 KiB buffers at a high rate: serve them from the heap and
     * do not hand memory back after every free (each round trip through the kernel costs a page
     * fault per page). Modules call malloc_trim() when a big transfer is over, so the idle agent
     * stays small. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    uv_loop_init(&loop);
    r = dt_agent_init(&agent, &loop, &cfg, &err);
    if (r == 0)
        r = setup_signals(&err);
    if (r == 0) {
        const char *lfds = getenv("LISTEN_FDS");
        if (socket_path)
            r = dt_httpd_listen_unix(agent.httpd, socket_path, &err);
        else if (lfds && strcmp(lfds, "1") == 0)
            r = dt_httpd_listen_fd(agent.httpd, 3, &err);
        else
            r = dt_error_set(&err, EINVAL, "no socket: pass --socket PATH or a socket as fd 3 "
                                           "with LISTEN_FDS=1");
    }
    if (r == 0 && optind < argc &&
        dt_session_start_entrypoint(&agent, argv + optind, &err) < 0) {
        /* The image's ENTRYPOINT/CMD cannot run (a minimal image without a shell, say): the
         * toolbox is still useful, so say why and serve. */
        fprintf(stderr, "daytona-agent: entrypoint not started: %s\n", err->message);
        dt_error_freep(&err);
    }
    if (r < 0) {
        fprintf(stderr, "daytona-agent: %s\n", err ? err->message : strerror(-r));
        return 1;
    }

    uv_run(&loop, UV_RUN_DEFAULT);

    /* Stopped by SIGTERM: the sandbox's processes get SIGTERM, then SIGKILL after a grace. */
    dt_httpd_free(agent.httpd);
    dt_proc_terminate_all(&agent, 3000);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    (void) uv_loop_close(&loop);
    safe_close(sig_fd);
    dt_agent_done(&agent);
    return exit_status;
}
