/* SPDX-License-Identifier: Apache-2.0 */
/* `daytonad run [OPTIONS] ROOTFS -- CMD [ARG...]`: parse options into a plan, create and start a
 * sandbox, pass signals on, wait, destroy, and exit with the command's status. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daytonad.h"
#include "dt/error.h"
#include "dt/parse-util.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "server/agent-launch.h"
#include "dt/banned.h"

#define EXIT_SETUP 125

static void
run_usage(FILE *f)
{
    fprintf(f,
            "Usage: daytonad run [OPTIONS] ROOTFS [--] CMD [ARG...]\n"
            "\n"
            "Run CMD in a fresh sandbox whose root filesystem is the directory ROOTFS (used as a\n"
            "read-only lower layer; writes go to a throwaway layer in memory, or to a disk image\n"
            "with --disk), then remove it.\n"
            "\n"
            "Options:\n"
            "  --memory SIZE        memory limit (e.g. 512M, 1G)\n"
            "  --swap SIZE          swap allowed on top of memory (default 0)\n"
            "  --cpus N             CPU limit, fractional allowed (e.g. 0.5, 2)\n"
            "  --pids N             process limit\n"
            "  --disk SIZE          disk quota for the writable layer (ENOSPC past it)\n"
            "  --network MODE       none (loopback only, default) or bridge (NAT to the uplink)\n"
            "  --block-egress       with bridge: no outbound traffic except --allow-cidr\n"
            "  --allow-cidr CIDR    with bridge: allow outbound traffic to CIDR (repeatable)\n"
            "  --hostname NAME      hostname inside (default: the sandbox id)\n"
            "  --user USER          NAME, UID or UID:GID inside (default root)\n"
            "  --cwd DIR            working directory inside\n"
            "  --env K=V, -e K=V    environment variable (repeatable)\n"
            "  --bind SRC:DST[:ro]  bind a host path into the sandbox (repeatable; nosuid, nodev;\n"
            "                       the sandbox writes there as its unprivileged host uids)\n"
            "  --layer DIR          extra read-only layer below ROOTFS (repeatable)\n"
            "  --state-dir DIR      runtime state (default $DAYTONA_RUN_STATE_DIR or /run/daytona/run)\n"
            "  --agent SOCKET       run daytona-agent as the sandbox's init, serving the toolbox API\n"
            "                       on the unix socket SOCKET (created here, on the host); CMD is\n"
            "                       then optional and runs as the entrypoint session; --user and\n"
            "                       --cwd become the agent's user and work directory\n"
            "\n"
            "Exit status: CMD's, 128+N when killed by signal N, 125 when the sandbox could not be\n"
            "created.\n");
}

struct run_opts {
    struct dt_plan plan;
    char *state_dir;
    char *agent_socket;
};

static int
parse_bind(const char *s, struct dt_bind *b, struct dt_error **err)
{
    _cleanup_free_ char *copy = xstrdup(s);
    char *c1 = strchr(copy, ':');
    if (!c1)
        return dt_error_set(err, EINVAL, "invalid --bind '%s': expected SRC:DST[:ro]", s);
    *c1 = 0;
    char *dst = c1 + 1;
    char *c2 = strchr(dst, ':');
    bool ro = false;
    if (c2) {
        *c2 = 0;
        if (strcmp(c2 + 1, "ro") == 0)
            ro = true;
        else if (strcmp(c2 + 1, "rw") != 0)
            return dt_error_set(err, EINVAL, "invalid --bind option '%s': expected ro or rw",
                                c2 + 1);
    }
    b->source = realpath(copy, NULL);
    if (!b->source)
        return dt_error_errno(err, errno, "bind source '%s'", copy);
    b->destination = xstrdup(dst);
    b->readonly = ro;
    return 0;
}

static int
parse_args(int argc, char **argv, struct run_opts *o, struct dt_error **err)
{
    enum {
        OPT_MEMORY = 256, OPT_SWAP, OPT_CPUS, OPT_PIDS, OPT_DISK, OPT_NETWORK, OPT_HOSTNAME,
        OPT_USER, OPT_CWD, OPT_BIND, OPT_LAYER, OPT_STATE_DIR, OPT_BLOCK_EGRESS, OPT_ALLOW_CIDR,
        OPT_AGENT,
    };
    static const struct option longopts[] = {
            {"memory", required_argument, NULL, OPT_MEMORY},
            {"swap", required_argument, NULL, OPT_SWAP},
            {"cpus", required_argument, NULL, OPT_CPUS},
            {"pids", required_argument, NULL, OPT_PIDS},
            {"disk", required_argument, NULL, OPT_DISK},
            {"network", required_argument, NULL, OPT_NETWORK},
            {"hostname", required_argument, NULL, OPT_HOSTNAME},
            {"user", required_argument, NULL, OPT_USER},
            {"cwd", required_argument, NULL, OPT_CWD},
            {"env", required_argument, NULL, 'e'},
            {"bind", required_argument, NULL, OPT_BIND},
            {"layer", required_argument, NULL, OPT_LAYER},
            {"state-dir", required_argument, NULL, OPT_STATE_DIR},
            {"block-egress", no_argument, NULL, OPT_BLOCK_EGRESS},
            {"allow-cidr", required_argument, NULL, OPT_ALLOW_CIDR},
            {"agent", required_argument, NULL, OPT_AGENT},
            {"help", no_argument, NULL, 'h'},
            {},
    };
    _cleanup_strv_free_ char **extra_layers = NULL;
    int c, r;

    optind = 1;
    opterr = 0;
    /* "+": stop at the first non-option (ROOTFS), so CMD's own options are left alone. */
    while ((c = getopt_long(argc, argv, "+he:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h':
            run_usage(stdout);
            exit(0);
        case OPT_MEMORY:
            if (parse_size(optarg, &o->plan.memory_bytes) < 0)
                return dt_error_set(err, EINVAL, "invalid --memory '%s'", optarg);
            break;
        case OPT_SWAP:
            if (parse_size(optarg, &o->plan.swap_bytes) < 0)
                return dt_error_set(err, EINVAL, "invalid --swap '%s'", optarg);
            break;
        case OPT_CPUS:
            if (parse_millicpus(optarg, &o->plan.cpu_millicpus) < 0)
                return dt_error_set(err, EINVAL, "invalid --cpus '%s'", optarg);
            break;
        case OPT_PIDS:
            if (parse_u64(optarg, &o->plan.pids_max) < 0 || o->plan.pids_max == 0)
                return dt_error_set(err, EINVAL, "invalid --pids '%s'", optarg);
            break;
        case OPT_DISK:
            if (parse_size(optarg, &o->plan.disk_bytes) < 0 || o->plan.disk_bytes == 0)
                return dt_error_set(err, EINVAL, "invalid --disk '%s'", optarg);
            break;
        case OPT_NETWORK:
            if (strcmp(optarg, "none") == 0)
                o->plan.net_mode = DT_NET_NONE;
            else if (strcmp(optarg, "bridge") == 0)
                o->plan.net_mode = DT_NET_BRIDGE;
            else
                return dt_error_set(err, EINVAL, "invalid --network '%s': use none or bridge",
                                    optarg);
            break;
        case OPT_HOSTNAME:
            free(o->plan.hostname);
            o->plan.hostname = xstrdup(optarg);
            break;
        case OPT_USER:
            free(o->plan.user);
            o->plan.user = xstrdup(optarg);
            break;
        case OPT_CWD:
            free(o->plan.cwd);
            o->plan.cwd = xstrdup(optarg);
            break;
        case 'e':
            if (!strchr(optarg, '='))
                return dt_error_set(err, EINVAL, "invalid --env '%s': expected K=V", optarg);
            strv_push(&o->plan.env, optarg);
            break;
        case OPT_BIND:
            if (o->plan.n_binds >= DT_MAX_MOUNTS)
                return dt_error_set(err, EINVAL, "too many --bind options (at most %d)",
                                    DT_MAX_MOUNTS);
            o->plan.binds = xreallocarray(o->plan.binds, o->plan.n_binds + 1, sizeof(struct dt_bind));
            o->plan.binds[o->plan.n_binds] = (struct dt_bind){0};
            r = parse_bind(optarg, &o->plan.binds[o->plan.n_binds], err);
            o->plan.n_binds++;
            if (r < 0)
                return r;
            break;
        case OPT_LAYER: {
            char *p = realpath(optarg, NULL);
            if (!p)
                return dt_error_errno(err, errno, "layer '%s'", optarg);
            strv_push(&extra_layers, p);
            free(p);
            break;
        }
        case OPT_STATE_DIR:
            free(o->state_dir);
            o->state_dir = xstrdup(optarg);
            break;
        case OPT_BLOCK_EGRESS:
            o->plan.block_all_egress = true;
            break;
        case OPT_ALLOW_CIDR:
            strv_push(&o->plan.allow_cidrs, optarg);
            break;
        case OPT_AGENT:
            free(o->agent_socket);
            o->agent_socket = xstrdup(optarg);
            break;
        default:
            return dt_error_set(err, EINVAL, "unknown or incomplete option '%s'",
                                argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return dt_error_set(err, EINVAL, "missing ROOTFS (see 'daytonad run --help')");
    char *rootfs = realpath(argv[optind], NULL);
    if (!rootfs)
        return dt_error_errno(err, errno, "root filesystem '%s'", argv[optind]);
    strv_push(&o->plan.layers, rootfs);
    free(rootfs);
    for (char **l = extra_layers; l && *l; l++)
        strv_push(&o->plan.layers, *l);
    optind++;
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc && !o->agent_socket)
        return dt_error_set(err, EINVAL, "missing CMD (see 'daytonad run --help')");
    if (o->agent_socket) {
        /* The agent is init (as root of the sandbox); the user and cwd are its business. */
        dt_agent_plan(&o->plan, o->plan.user, o->plan.cwd);
        free(o->plan.user);
        o->plan.user = NULL;
        if (optind < argc)
            strv_push(&o->plan.args, "--");
    }
    for (int i = optind; i < argc; i++)
        strv_push(&o->plan.args, argv[i]);
    if (!o->plan.env)
        o->plan.env = xcalloc(1, sizeof(char *));
    /* A throwaway sandbox keeps its writes in memory, unless it has a disk quota. */
    o->plan.ephemeral = o->plan.disk_bytes == 0;
    return 0;
}

/* The signals `daytonad run` passes on to the sandbox's init. */
static void
forwarded_signals(sigset_t *ss)
{
    sigemptyset(ss);
    sigaddset(ss, SIGINT);
    sigaddset(ss, SIGTERM);
    sigaddset(ss, SIGHUP);
    sigaddset(ss, SIGQUIT);
}

/* Wait for the sandbox's init, passing the forwarded signals on to it. */
static int
wait_forwarding_signals(struct dt_sandbox *sb, struct dt_exit *e, struct dt_error **err)
{
    sigset_t ss;
    forwarded_signals(&ss);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    for (;;) {
        struct pollfd p[2] = {{.fd = dt_sandbox_pidfd(sb), .events = POLLIN},
                              {.fd = sfd, .events = POLLIN}};
        int k = poll(p, sfd >= 0 ? 2 : 1, -1);
        if (k < 0 && errno != EINTR)
            break;
        if (sfd >= 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si))
                (void) syscall(SYS_pidfd_send_signal, dt_sandbox_pidfd(sb), (int) si.ssi_signo,
                               NULL, 0);
        }
        if (p[0].revents & POLLIN)
            break;
    }
    if (sfd >= 0)
        close(sfd);
    return dt_sandbox_wait(sb, false, e, err);
}

/* Run the agent (next to our binary, or $DAYTONA_AGENT_BIN) as SB's init on SOCKET_PATH. */
static int
start_agent(struct dt_sandbox *sb, const char *socket_path, struct dt_error **err)
{
    static const int stdio[3] = {0, 1, 2};
    const char *bin = secure_getenv("DAYTONA_AGENT_BIN");
    _cleanup_close_ int exe = -EBADF;
    int protect = 0, r;

    r = dt_agent_open_binary(bin && *bin ? bin : NULL, &exe, err);
    if (r < 0)
        return dt_error_wrap(err, "set DAYTONA_AGENT_BIN to the daytona-agent binary");
    r = dt_agent_start(sb, exe, socket_path, stdio, &protect, err);
    if (r < 0)
        return r;
    if (protect < 0)
        fprintf(stderr, "daytonad: warning: the agent is not protected from the OOM killer "
                        "(oom_adj: %s; this needs CAP_SYS_RESOURCE)\n", strerror(-protect));
    return 0;
}

int
cmd_run(int argc, char **argv)
{
    struct run_opts o = {0};
    struct dt_error *err = NULL;
    struct dt_runtime *rt = NULL;
    struct dt_sandbox *sb = NULL;
    struct dt_sandbox *stale = NULL;
    struct dt_runtime_config cfg = {0};
    struct dt_exit e;
    sigset_t ss;
    int lockfd = -1, status = EXIT_SETUP, r;
    static const int stdio[3] = {0, 1, 2};

    dt_plan_init(&o.plan);
    r = parse_args(argc, argv, &o, &err);
    if (r < 0)
        goto finish;

    /* Block the signals we forward before any child exists, so none is lost in between. */
    forwarded_signals(&ss);
    sigprocmask(SIG_BLOCK, &ss, NULL);

    cfg.state_dir = o.state_dir ? o.state_dir
                    : secure_getenv("DAYTONA_RUN_STATE_DIR") ? secure_getenv("DAYTONA_RUN_STATE_DIR")
                                                             : "/run/daytona/run";
    r = dt_runtime_new(&cfg, &rt, &err);
    if (r < 0)
        goto finish;
    r = dt_runtime_acquire_slot(rt, &o.plan.slot, &lockfd, &err);
    if (r < 0)
        goto finish;
    o.plan.id = xasprintf("run-%u", o.plan.slot);

    r = dt_plan_validate(&o.plan, &err);
    if (r < 0)
        goto finish;

    /* We hold the slot's lock, so a sandbox left under this id is a crashed run's: remove it. */
    if (dt_sandbox_load(rt, &o.plan, &stale, NULL) == 0) {
        (void) dt_sandbox_destroy(stale, NULL);
        dt_sandbox_free(stale);
    }

    r = dt_sandbox_create(rt, &o.plan, &sb, &err);
    if (r < 0)
        goto finish;
    if (o.agent_socket)
        r = start_agent(sb, o.agent_socket, &err);
    else
        r = dt_sandbox_start(sb, stdio, &err);
    if (r < 0)
        goto finish;

    r = wait_forwarding_signals(sb, &e, &err);
    if (r < 0)
        goto finish;
    status = dt_exit_status(&e);
    if (e.oom_killed)
        fprintf(stderr, "daytonad: '%s' was killed by the OOM killer (memory limit %llu bytes)\n",
                o.plan.args[0], (unsigned long long) o.plan.memory_bytes);

finish:
    if (err)
        fprintf(stderr, "daytonad: %s\n", err->message);
    if (sb) {
        struct dt_error *derr = NULL;
        if (dt_sandbox_destroy(sb, &derr) < 0) {
            fprintf(stderr, "daytonad: %s\n", derr->message);
            dt_error_free(derr);
            if (status == 0)
                status = EXIT_SETUP;
        }
        dt_sandbox_free(sb);
    }
    if (lockfd >= 0)
        close(lockfd);
    if (o.agent_socket)
        (void) unlink(o.agent_socket);
    dt_runtime_free(rt);
    dt_error_free(err);
    dt_plan_done(&o.plan);
    free(o.state_dir);
    free(o.agent_socket);
    return status;
}
