/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox lifecycle, parent side: create the state directory, writable layer and cgroup; start
 * the init with clone3() into fresh namespaces and finish its setup from outside (uid maps,
 * cgroup, network, the idmapped overlay); exec more processes into it; stop, pause, destroy.
 * The child side is child.c. See docs/design/runtime.md. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "child.h"
#include "disk.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/runtime.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "net.h"
#include "rootfs.h"
#include "seccomp.h"
#include "dt/banned.h"

#define START_TIMEOUT_MS 30000

struct dt_runtime {
    char *state_dir;
    int state_fd;
    struct dt_cgroup_manager *cgm;
    struct sock_fprog seccomp;
    struct dt_net_host net;
    bool net_ready;
    long ncpus;
};

struct dt_sandbox {
    struct dt_runtime *rt;
    struct dt_plan plan; /* deep copy */
    char *dir;           /* <state>/<id> */
    int dirfd;
    uid_t uid_base;
    struct dt_cgroup *cg;
    struct dt_cgroup *cg_init;     /* with init_leaf: init's own leaf */
    struct dt_cgroup *cg_workload; /* with init_leaf: where every other process goes */
    pid_t pid;                  /* init, 0 when not running */
    int pidfd;
    bool is_child;              /* init is our child (else re-adopted: no exit status) */
    /* Processes from dt_sandbox_exec() not yet waited for. They are our children, and the
     * kernel lets a dying pid namespace's init finish only once every process of the namespace
     * is reaped: stopping reaps them here and keeps their status for dt_process_wait(). */
    struct exec_record {
        pid_t pid;
        bool reaped;
        siginfo_t si;
    } *execs;
    size_t n_execs;
    uint64_t oom_kills_at_start;
    bool paused;
    int disk_mntfd;             /* the writable layer's own mount while running (disk image or
                                 * ephemeral tmpfs), else -EBADF */
};

/* ---- runtime ----------------------------------------------------------------------------- */

int
dt_runtime_new(const struct dt_runtime_config *cfg, struct dt_runtime **ret, struct dt_error **err)
{
    struct dt_runtime *rt = xcalloc(1, sizeof(*rt));
    int r;

    rt->state_fd = -EBADF;
    rt->state_dir = xstrdup(cfg->state_dir);
    rt->ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (rt->ncpus < 1)
        rt->ncpus = 1;
    dt_net_host_init_default(&rt->net);

    r = mkdir_p(rt->state_dir, 0700);
    if (r < 0) {
        r = dt_error_errno(err, r, "create state directory '%s'", rt->state_dir);
        goto fail;
    }
    rt->state_fd = open(rt->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rt->state_fd < 0) {
        r = dt_error_errno(err, errno, "open state directory '%s'", rt->state_dir);
        goto fail;
    }
    r = dt_cgroup_manager_new(cfg->cgroup_root ? cfg->cgroup_root : "/sys/fs/cgroup",
                              "/proc/self/cgroup", cfg->cgroup_subdir ? cfg->cgroup_subdir : "daytona",
                              &rt->cgm, err);
    if (r < 0)
        goto fail;
    dt_seccomp_default(&rt->seccomp);
    if (cfg->need_bridge) {
        r = dt_net_host_setup(&rt->net, err);
        if (r < 0)
            goto fail;
        rt->net_ready = true;
    }
    *ret = rt;
    return 0;
fail:
    dt_runtime_free(rt);
    return r;
}

void
dt_runtime_free(struct dt_runtime *rt)
{
    if (!rt)
        return;
    safe_close(rt->state_fd);
    dt_cgroup_manager_free(rt->cgm);
    free(rt->state_dir);
    free(rt);
}

int
dt_runtime_slot_address(const struct dt_runtime *rt, uint32_t slot, char buf[16])
{
    uint32_t a;
    int r = dt_net_address_for_slot(&rt->net, slot, &a);
    if (r < 0)
        return r;
    dt_net_format_ip4(a, buf);
    return 0;
}

const char *
dt_runtime_state_dir(const struct dt_runtime *rt)
{
    return rt->state_dir;
}

int
dt_runtime_acquire_slot(struct dt_runtime *rt, uint32_t *ret_slot, int *ret_lockfd,
                        struct dt_error **err)
{
    /* Slots name host-wide resources (uid range, address, veth, cgroup of `daytonad run`), so
     * the locks live in one host-wide place, whatever the state directory. */
    int r = mkdir_p(DT_SLOTS_DIR, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create slot directory '%s'", DT_SLOTS_DIR);
    _cleanup_close_ int dfd = open(DT_SLOTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return dt_error_errno(err, errno, "open slot directory '%s'", DT_SLOTS_DIR);
    for (uint32_t s = 0; s < DT_MAX_SLOTS; s++) {
        char name[32];
        snprintf(name, sizeof(name), "%u.lock", s);
        int fd = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return dt_error_errno(err, errno, "open slot lock '%s'", name);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *ret_slot = s;
            *ret_lockfd = fd;
            return 0;
        }
        safe_close(fd);
        if (errno != EWOULDBLOCK)
            return dt_error_errno(err, errno, "lock slot '%s'", name);
    }
    return dt_error_set(err, EAGAIN, "all %u sandbox slots are in use", DT_MAX_SLOTS);
}

int
dt_exit_status(const struct dt_exit *e)
{
    return e->signal ? 128 + e->signal : e->code;
}

/* ---- plan copy --------------------------------------------------------------------------- */

/* A copy that is never NULL (what the plan's lists are after validation). */
static char **
strv_copy_nonnull(char *const *v)
{
    return v ? strv_copy(v) : xcalloc(1, sizeof(char *));
}

static char *
strdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void
plan_copy(struct dt_plan *dst, const struct dt_plan *src)
{
    *dst = *src;
    dst->id = xstrdup(src->id);
    dst->layers = strv_copy_nonnull(src->layers);
    dst->hostname = strdup_or_null(src->hostname);
    dst->args = strv_copy_nonnull(src->args);
    dst->env = strv_copy_nonnull(src->env);
    dst->cwd = strdup_or_null(src->cwd);
    dst->user = strdup_or_null(src->user);
    dst->binds = src->n_binds ? xcalloc(src->n_binds, sizeof(struct dt_bind)) : NULL;
    for (size_t i = 0; i < src->n_binds; i++) {
        dst->binds[i].source = xstrdup(src->binds[i].source);
        dst->binds[i].destination = xstrdup(src->binds[i].destination);
        dst->binds[i].readonly = src->binds[i].readonly;
    }
    dst->allow_cidrs = src->allow_cidrs ? strv_copy_nonnull(src->allow_cidrs) : NULL;
}

/* ---- create / load / free ---------------------------------------------------------------- */

static void
cgroup_limits_from_plan(const struct dt_runtime *rt, const struct dt_plan *p,
                        struct dt_cgroup_limits *l)
{
    dt_cgroup_limits_init(l);
    l->memory_max_bytes = p->memory_bytes;
    l->memory_swap_max_bytes = p->memory_bytes == DT_LIMIT_UNLIMITED ? DT_CGROUP_UNLIMITED
                                                                       : p->swap_bytes;
    l->cpu_millicpus = p->cpu_millicpus;
    l->pids_max = p->pids_max;
    if (p->cpu_millicpus != DT_LIMIT_UNLIMITED) {
        /* Pin to ceil(cpus) CPUs, spread by slot, so nproc inside tells the truth and sandboxes
         * do not all pile onto CPU 0. */
        long n = (long) ((p->cpu_millicpus + 999) / 1000);
        if (n > rt->ncpus)
            n = rt->ncpus;
        if (n < rt->ncpus) {
            size_t off = 0;
            for (long i = 0; i < n; i++) {
                long cpu = ((long) p->slot * n + i) % rt->ncpus;
                off += (size_t) snprintf(l->cpuset_cpus + off, sizeof(l->cpuset_cpus) - off,
                                         "%s%ld", i ? "," : "", cpu);
                if (off >= sizeof(l->cpuset_cpus))
                    break;
            }
        }
    }
}

static long
plan_ncpus(const struct dt_runtime *rt, const struct dt_plan *p)
{
    if (p->cpu_millicpus == DT_LIMIT_UNLIMITED)
        return rt->ncpus;
    long n = (long) ((p->cpu_millicpus + 999) / 1000);
    return n > rt->ncpus ? rt->ncpus : n;
}

static struct dt_sandbox *
sandbox_new(struct dt_runtime *rt, const struct dt_plan *plan)
{
    struct dt_sandbox *sb = xcalloc(1, sizeof(*sb));
    sb->rt = rt;
    plan_copy(&sb->plan, plan);
    sb->dir = xasprintf("%s/%s", rt->state_dir, plan->id);
    sb->dirfd = -EBADF;
    sb->pidfd = -EBADF;
    sb->disk_mntfd = -EBADF;
    sb->uid_base = DT_UID_BASE + plan->slot * DT_UID_RANGE;
    return sb;
}

void
dt_sandbox_free(struct dt_sandbox *sb)
{
    if (!sb)
        return;
    safe_close(sb->dirfd);
    safe_close(sb->pidfd);
    safe_close(sb->disk_mntfd);
    dt_cgroup_free(sb->cg);
    dt_cgroup_free(sb->cg_init);
    dt_cgroup_free(sb->cg_workload);
    free(sb->execs);
    dt_plan_done(&sb->plan);
    free(sb->dir);
    free(sb);
}

/* Create the sandbox's cgroup with the plan's limits. Called right after the state directory was
 * created, so no sandbox of this id exists: an existing cgroup of that name is a crash's leftover,
 * which is emptied and replaced. */
static int
create_cgroup(struct dt_runtime *rt, const struct dt_plan *plan, struct dt_cgroup **ret,
              struct dt_error **err)
{
    struct dt_cgroup_limits lim;
    struct dt_error *cg_err = NULL;

    cgroup_limits_from_plan(rt, plan, &lim);
    int r = dt_cgroup_create(rt->cgm, plan->id, &lim, ret, &cg_err);
    if (r == -EEXIST) {
        struct dt_cgroup *stale = NULL;
        if (dt_cgroup_open(rt->cgm, plan->id, &stale, NULL) == 0) {
            (void) dt_cgroup_destroy(stale, NULL);
            dt_cgroup_free(stale);
        }
        dt_error_free(cg_err);
        cg_err = NULL;
        r = dt_cgroup_create(rt->cgm, plan->id, &lim, ret, &cg_err);
    }
    if (r < 0 && err && !*err)
        *err = TAKE_PTR(cg_err);
    dt_error_free(cg_err);
    return r;
}

int
dt_sandbox_create(struct dt_runtime *rt, const struct dt_plan *plan, struct dt_sandbox **ret,
                  struct dt_error **err)
{
    int r = dt_plan_validate(plan, err);
    if (r < 0)
        return r;

    if (mkdirat(rt->state_fd, plan->id, 0700) < 0) {
        if (errno == EEXIST)
            return dt_error_set(err, EEXIST, "sandbox '%s' already exists", plan->id);
        return dt_error_errno(err, errno, "create state directory of sandbox '%s'", plan->id);
    }

    struct dt_sandbox *sb = sandbox_new(rt, plan);
    sb->dirfd = openat(rt->state_fd, plan->id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sb->dirfd < 0) {
        r = dt_error_errno(err, errno, "open '%s'", sb->dir);
        goto fail;
    }
    if (mkdirat(sb->dirfd, "rootfs", 0700) < 0) {
        r = dt_error_errno(err, errno, "create '%s/rootfs'", sb->dir);
        goto fail;
    }
    if (plan->disk_bytes > 0) {
        char *img = xasprintf("%s/disk.img", sb->dir);
        r = dt_disk_create(img, plan->disk_bytes, sb->uid_base, sb->uid_base, err);
        free(img);
        if (r < 0)
            goto fail;
    } else if (!plan->ephemeral) {
        /* The upper directory's owner is what "/" shows inside: root of the sandbox. */
        if (mkdirat(sb->dirfd, "upper", 0755) < 0 || mkdirat(sb->dirfd, "work", 0700) < 0 ||
            fchownat(sb->dirfd, "upper", sb->uid_base, sb->uid_base, 0) < 0) {
            r = dt_error_errno(err, errno, "create the writable layer in '%s'", sb->dir);
            goto fail;
        }
    }

    r = create_cgroup(rt, plan, &sb->cg, err);
    if (r < 0)
        goto fail;
    if (plan->init_leaf) {
        r = dt_cgroup_create_child(sb->cg, "init", &sb->cg_init, err);
        if (r >= 0)
            r = dt_cgroup_create_child(sb->cg, "workload", &sb->cg_workload, err);
        if (r < 0) {
            (void) dt_cgroup_destroy(sb->cg, NULL);
            goto fail;
        }
    }

    *ret = sb;
    return 0;
fail:
    dt_error_wrap(err, "create sandbox '%s'", plan->id);
    (void) rm_rf_at(rt->state_fd, plan->id);
    dt_sandbox_free(sb);
    return r;
}

static int
state_write(struct dt_sandbox *sb, unsigned long long start_time)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "pid=%d\nstarttime=%llu\n", (int) sb->pid, start_time);
    if (write_file_at(sb->dirfd, "state.tmp", buf, (size_t) n, 0600) < 0)
        return -errno;
    return RET_NERRNO(renameat(sb->dirfd, "state.tmp", sb->dirfd, "state"));
}

int
dt_sandbox_load(struct dt_runtime *rt, const struct dt_plan *plan, struct dt_sandbox **ret,
                struct dt_error **err)
{
    int r = dt_plan_validate(plan, err);
    if (r < 0)
        return r;
    struct dt_sandbox *sb = sandbox_new(rt, plan);
    sb->dirfd = openat(rt->state_fd, plan->id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sb->dirfd < 0) {
        r = dt_error_errno(err, errno, "open sandbox '%s'", plan->id);
        dt_sandbox_free(sb);
        return r;
    }
    r = dt_cgroup_open(rt->cgm, plan->id, &sb->cg, err);
    if (r >= 0 && plan->init_leaf) {
        r = dt_cgroup_create_child(sb->cg, "init", &sb->cg_init, err);
        if (r >= 0)
            r = dt_cgroup_create_child(sb->cg, "workload", &sb->cg_workload, err);
    }
    if (r < 0) {
        dt_sandbox_free(sb);
        return r;
    }

    /* Re-adopt the init when the pid still names the same process (same start time). */
    _cleanup_free_ char *state = NULL;
    if (read_file_at(sb->dirfd, "state", 4096, &state, NULL) == 0) {
        int pid = 0;
        unsigned long long st = 0, now = 0;
        /* pidfd first, then the start time, then "still alive": a pid recycled in between
         * would otherwise give us a pidfd for someone else's process. */
        int pfd = -EBADF;
        if (sscanf(state, "pid=%d\nstarttime=%llu", &pid, &st) == 2 && pid > 0)
            pfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pfd >= 0 && proc_start_time(pid, &now) == 0 && now == st &&
            syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) == 0) {
            sb->pid = pid;
            sb->pidfd = pfd;
            sb->is_child = false;
        } else
            safe_close(pfd);
    }
    *ret = sb;
    return 0;
}

pid_t
dt_sandbox_pid(const struct dt_sandbox *sb)
{
    return sb->pid > 0 ? sb->pid : -ESRCH;
}

int
dt_sandbox_pidfd(const struct dt_sandbox *sb)
{
    return sb->pid > 0 ? sb->pidfd : -ESRCH;
}

const char *
dt_sandbox_id(const struct dt_sandbox *sb)
{
    return sb->plan.id;
}

bool
dt_sandbox_is_running(const struct dt_sandbox *sb)
{
    return sb->pid > 0;
}

/* ---- start ------------------------------------------------------------------------------- */

/* The cgroup's OOM-kill count, 0 when unreadable: compared before and after a process runs. */
static uint64_t
oom_kills(struct dt_sandbox *sb)
{
    uint64_t n = 0;
    (void) dt_cgroup_oom_kills(sb->cg, &n, NULL);
    return n;
}

static bool
oom_since(struct dt_sandbox *sb, uint64_t before)
{
    return oom_kills(sb) > before;
}

/* Where the generated files live: on the writable layer's own mount when there is one (an
 * ephemeral tmpfs: no disk I/O, gone with the sandbox; a disk image: writes to /etc/hosts count
 * against the quota), else in the state directory. */
static int
files_dirfd(const struct dt_sandbox *sb)
{
    return sb->disk_mntfd >= 0 ? sb->disk_mntfd : sb->dirfd;
}

/* Write the files the sandbox sees as /etc/hostname, /etc/hosts, /etc/resolv.conf and, with
 * limits, /proc/meminfo and /sys/devices/system/cpu/online. Owned by the sandbox's root. */
static int
write_generated_files(struct dt_sandbox *sb, const char *hostname, uint32_t address,
                      struct dt_error **err)
{
    const struct dt_plan *p = &sb->plan;
    int r;
    char ip[16];

    _cleanup_free_ char *hn = xasprintf("%s\n", hostname);
    _cleanup_free_ char *hosts =
            address ? xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                                "%s\t%s\n",
                                dt_net_format_ip4(address, ip), hostname)
                    : xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                                "127.0.1.1\t%s\n",
                                hostname);
    _cleanup_free_ char *resolv = p->net_mode == DT_NET_BRIDGE
                                          ? dt_net_resolv_conf("/etc/resolv.conf")
                                          : xstrdup("# no network: loopback only\n");
    struct {
        const char *name;
        const char *data;
    } files[] = {{"hostname", hn}, {"hosts", hosts}, {"resolv.conf", resolv}};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        r = write_file_at(files_dirfd(sb), files[i].name, files[i].data, strlen(files[i].data),
                          0644);
        if (r < 0 || fchownat(files_dirfd(sb), files[i].name, sb->uid_base, sb->uid_base, 0) < 0)
            return dt_error_errno(err, r < 0 ? r : -errno, "write '%s/%s'", sb->dir,
                                  files[i].name);
    }

    if (p->cpu_millicpus != DT_LIMIT_UNLIMITED) {
        long n = plan_ncpus(sb->rt, p);
        char buf[32];
        int k = n > 1 ? snprintf(buf, sizeof(buf), "0-%ld\n", n - 1) : snprintf(buf, sizeof(buf), "0\n");
        r = write_file_at(files_dirfd(sb), "cpu-online", buf, (size_t) k, 0444);
        if (r < 0)
            return dt_error_errno(err, r, "write '%s/cpu-online'", sb->dir);
    }
    if (p->memory_bytes != DT_LIMIT_UNLIMITED) {
        r = dt_sandbox_refresh_meminfo(sb, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
dt_sandbox_refresh_meminfo(struct dt_sandbox *sb, struct dt_error **err)
{
    const struct dt_plan *p = &sb->plan;
    if (p->memory_bytes == DT_LIMIT_UNLIMITED)
        return 0;
    struct dt_cgroup_stats st = {0};
    if (sb->cg)
        (void) dt_cgroup_stats(sb->cg, &st, NULL);
    unsigned long long total = p->memory_bytes / 1024, used = st.memory_current_bytes / 1024;
    if (used > total)
        used = total;
    unsigned long long swap = p->swap_bytes == DT_LIMIT_UNLIMITED ? 0 : p->swap_bytes / 1024;
    /* Fixed-width numbers keep the file's size constant, so it can be rewritten in place (the
     * sandbox sees it through a bind mount of this very inode). */
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "MemTotal:       %12llu kB\n"
                     "MemFree:        %12llu kB\n"
                     "MemAvailable:   %12llu kB\n"
                     "Buffers:        %12llu kB\n"
                     "Cached:         %12llu kB\n"
                     "SwapCached:     %12llu kB\n"
                     "Shmem:          %12llu kB\n"
                     "SReclaimable:   %12llu kB\n"
                     "SwapTotal:      %12llu kB\n"
                     "SwapFree:       %12llu kB\n",
                     total, total - used, total - used, 0ULL, 0ULL, 0ULL, 0ULL, 0ULL, swap, swap);
    _cleanup_close_ int fd =
            openat(files_dirfd(sb), "meminfo", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0)
        return dt_error_errno(err, errno, "open '%s/meminfo'", sb->dir);
    if (pwrite(fd, buf, (size_t) n, 0) != n)
        return dt_error_errno(err, errno, "write '%s/meminfo'", sb->dir);
    return 0;
}

/* The environment of a process: the given entries plus defaults for what a shell expects. */
static char **
build_env(char *const *env, const char *home, const char *hostname, bool pty)
{
    char **e = strv_copy_nonnull(env);
    static const char *const keys[] = {"PATH=", "HOME=", "HOSTNAME=", "TERM="};
    for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
        bool found = false;
        for (char **i = e; *i; i++)
            if (strncmp(*i, keys[k], strlen(keys[k])) == 0)
                found = true;
        if (found)
            continue;
        _cleanup_free_ char *v = NULL;
        switch (k) {
        case 0:
            v = xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            break;
        case 1:
            v = xasprintf("HOME=%s", home);
            break;
        case 2:
            v = xasprintf("HOSTNAME=%s", hostname);
            break;
        default:
            if (pty)
                v = xstrdup("TERM=xterm-256color");
            break;
        }
        if (v)
            strv_push(&e, v);
    }
    return e;
}

static const char *
env_get(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return env[i] + kl + 1;
    return NULL;
}

static int
write_id_maps(pid_t pid, uid_t base, struct dt_error **err)
{
    char path[64], map[64];
    int n = snprintf(map, sizeof(map), "0 %u %u\n", base, DT_UID_RANGE);
    static const char *const files[] = {"uid_map", "gid_map"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, files[i]);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all(fd, map, (size_t) n) < 0)
            return dt_error_errno(err, errno, "write %s of the sandbox's user namespace",
                                  files[i]);
    }
    return 0;
}

static int
open_ns(pid_t pid, const char *ns)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, ns);
    return RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
}

/* Wait for the child's verdict on SOCK: an error message, or EOF after "about to exec" (the
 * socket is close-on-exec). EOF without it means the child died during setup. Other messages
 * (pid, pty) are handed back through the out parameters. */
static int
await_child(int sock, pid_t *ret_pid, int *ret_pty, struct dt_error **err)
{
    bool execing = false;
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        int k = poll(&pfd, 1, START_TIMEOUT_MS);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return dt_error_set(err, ETIMEDOUT, "sandbox setup did not finish in %d s",
                                START_TIMEOUT_MS / 1000);
        struct dt_child_msg m;
        int fd = -EBADF;
        size_t nfd = 0;
        int r = dt_child_recv(sock, &m, &fd, 1, &nfd);
        if (r < 0)
            return dt_error_errno(err, r, "read from sandbox setup");
        if (r == 0)
            return execing ? 0
                           : dt_error_set(err, ECHILD, "sandbox setup ended before exec");
        switch (m.type) {
        case DT_MSG_EXECING:
            execing = true;
            break;
        case DT_MSG_ERROR:
            safe_close(fd);
            return dt_error_errno(err, m.err, "%s", m.text);
        case DT_MSG_PID:
            if (ret_pid)
                *ret_pid = m.pid;
            break;
        case DT_MSG_PTY:
            if (ret_pty && nfd == 1)
                *ret_pty = fd;
            else
                safe_close(fd);
            break;
        default:
            safe_close(fd);
            break;
        }
    }
}

static void
kill_and_reap(pid_t pid, int pidfd)
{
    if (pid <= 0)
        return;
    if (pidfd >= 0)
        (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    else
        (void) kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The layers and upper dir, for user lookup before the sandbox runs. */
static char **
lookup_dirs(const struct dt_sandbox *sb)
{
    char **dirs = NULL;
    if (sb->plan.disk_bytes == 0 && !sb->plan.ephemeral) {
        _cleanup_free_ char *u = xasprintf("%s/upper", sb->dir);
        strv_push(&dirs, u);
    }
    for (char **l = sb->plan.layers; *l; l++)
        strv_push(&dirs, *l);
    return dirs;
}

/* Open the writable layer: upper and work directory fds (inside the disk image when there is a
 * quota; the image's mount fd is kept in sb->disk_mntfd). */
static int
open_writable_layer(struct dt_sandbox *sb, int *ret_upper, int *ret_work, struct dt_error **err)
{
    int base = sb->dirfd;
    if (sb->plan.ephemeral && sb->disk_mntfd < 0) {
        /* A detached tmpfs that only the overlay references: it goes when the sandbox goes. */
        /* Writes are charged to the sandbox's memory cgroup; size= also stops them at the
         * memory limit when there is one (tmpfs' default is half of the host's RAM). */
        char size[32];
        snprintf(size, sizeof(size), "%llu", (unsigned long long) sb->plan.memory_bytes);
        const char *const opts[] = {"mode", "0755",
                                    sb->plan.memory_bytes != DT_LIMIT_UNLIMITED ? "size" : NULL,
                                    size, NULL};
        _cleanup_close_ int fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
            return dt_error_errno(err, errno, "create the in-memory layer of '%s'", sb->plan.id);
        for (size_t i = 0; opts[i]; i += 2)
            if (fsconfig(fsfd, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0) < 0)
                return dt_error_errno(err, errno, "configure the in-memory layer");
        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
            return dt_error_errno(err, errno, "create the in-memory layer");
        sb->disk_mntfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
        if (sb->disk_mntfd < 0)
            return dt_error_errno(err, errno, "mount the in-memory layer");
    }
    if (sb->plan.disk_bytes > 0 && sb->disk_mntfd < 0) {
        char *img = xasprintf("%s/disk.img", sb->dir);
        int r = dt_disk_mount(img, &sb->disk_mntfd, err);
        free(img);
        if (r < 0)
            return r;
    }
    if (sb->disk_mntfd >= 0) {
        base = sb->disk_mntfd;
        if ((mkdirat(base, "upper", 0755) < 0 && errno != EEXIST) ||
            (mkdirat(base, "work", 0700) < 0 && errno != EEXIST) ||
            fchownat(base, "upper", sb->uid_base, sb->uid_base, 0) < 0)
            return dt_error_errno(err, errno, "prepare the writable layer of '%s'", sb->plan.id);
    }
    _cleanup_close_ int u = openat(base, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_close_ int w = openat(base, "work", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (u < 0 || w < 0)
        return dt_error_errno(err, errno, "open the writable layer of '%s'", sb->plan.id);
    *ret_upper = TAKE_FD(u);
    *ret_work = TAKE_FD(w);
    return 0;
}

/* The body of dt_sandbox_start(), with the writable layer open (UPPER, WORK; sb->disk_mntfd for
 * a disk image or an ephemeral tmpfs). Errors are returned unwrapped; the caller undoes the
 * writable layer. */
static int
start_init(struct dt_sandbox *sb, const struct dt_start_opts *o, int upper, int work,
           struct dt_error **err)
{
    const int *stdio_fds = o->stdio_fds;
    struct dt_runtime *rt = sb->rt;
    const struct dt_plan *p = &sb->plan;
    int r;

    /* Plan everything before cloning: the child may not allocate. */
    struct dt_user user;
    _cleanup_strv_free_ char **dirs = lookup_dirs(sb);
    r = dt_rootfs_lookup_user(dirs, p->user, &user, err);
    if (r < 0)
        return r;

    char hostname[64];
    snprintf(hostname, sizeof(hostname), "%s", p->hostname ? p->hostname : p->id);
    uint32_t address = 0;
    if (p->net_mode == DT_NET_BRIDGE) {
        r = dt_net_address_for_slot(&rt->net, p->slot, &address);
        if (r < 0)
            return dt_error_errno(err, r, "address for slot %u", p->slot);
    }
    r = write_generated_files(sb, hostname, address, err);
    if (r < 0)
        return r;

    _cleanup_strv_free_ char **env = build_env(p->env, user.home, hostname, false);
    _cleanup_free_ char *rootfs_dir = xasprintf("%s/rootfs", sb->dir);
    struct dt_child_bind binds[DT_MAX_MOUNTS];
    for (size_t i = 0; i < p->n_binds; i++) {
        struct stat st;
        if (stat(p->binds[i].source, &st) < 0)
            return dt_error_errno(err, errno, "bind source '%s'", p->binds[i].source);
        binds[i] = (struct dt_child_bind){.target = p->binds[i].destination,
                                          .is_dir = S_ISDIR(st.st_mode),
                                          .fd_index = (int) i + 1};
    }

    struct dt_child_plan cp = {
            .rootfs_dir = rootfs_dir,
            .files_dir = sb->dir,
            .files_dirfd = files_dirfd(sb) != sb->dirfd ? files_dirfd(sb) : -1,
            .hostname = hostname,
            .n_binds = p->n_binds,
            .binds = binds,
            .meminfo = p->memory_bytes != DT_LIMIT_UNLIMITED,
            .cpu_online = p->cpu_millicpus != DT_LIMIT_UNLIMITED,
            .ns_pidfd = -EBADF,
            .proc = {
                    .stdio = {stdio_fds ? stdio_fds[0] : -1, stdio_fds ? stdio_fds[1] : -1,
                              stdio_fds ? stdio_fds[2] : -1},
                    .uid = user.uid,
                    .gid = user.gid,
                    .argv = p->args,
                    .envp = env,
                    .cwd = p->cwd ? p->cwd : user.home,
                    .path = env_get(env, "PATH"),
                    .caps = dt_caps_default_mask(),
                    .seccomp = &rt->seccomp,
                    .no_new_privs = true,
                    .extra_fds = o->extra_fds,
                    .n_extra_fds = (int) o->n_extra_fds,
                    .exec_fd = o->exec_fd,
            },
    };

    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return dt_error_errno(err, errno, "create sync socket");
    cp.sock = sp[1];

    int pidfd = -EBADF;
    struct clone_args ca = {
            .flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
                     CLONE_NEWNET | CLONE_PIDFD,
            .pidfd = (uint64_t) (uintptr_t) &pidfd,
            .exit_signal = SIGCHLD,
    };
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid < 0) {
        r = dt_error_errno(err, errno, "clone sandbox init");
        safe_close(sp[0]);
        safe_close(sp[1]);
        return r;
    }
    if (pid == 0) {
        safe_close(sp[0]);
        dt_child_init_main(&cp);
    }
    safe_close(sp[1]);
    _cleanup_close_ int sock = sp[0];

    /* From outside: id maps, cgroup, network, root filesystem; then let the child go on. */
    int rootmnt = -EBADF, userns = -EBADF, netns = -EBADF;
    int fds[1 + DT_MAX_MOUNTS];
    size_t nfds = 0;
    bool net_attached = false;
    uint64_t oom_before = 0;

    r = write_id_maps((pid_t) pid, sb->uid_base, err);
    if (r >= 0)
        r = dt_cgroup_attach(sb->cg_init ? sb->cg_init : sb->cg, (pid_t) pid, err);
    if (r >= 0) {
        netns = open_ns((pid_t) pid, "net");
        if (netns < 0)
            r = dt_error_errno(err, netns, "open the sandbox's network namespace");
    }
    if (r >= 0) {
        if (p->net_mode == DT_NET_BRIDGE) {
            struct dt_net_policy pol = {.block_all = p->block_all_egress};
            for (size_t i = 0; p->allow_cidrs && p->allow_cidrs[i]; i++, pol.n_allow++)
                (void) dt_net_parse_cidr(p->allow_cidrs[i], &pol.allow[i].addr,
                                         &pol.allow[i].prefix);
            struct dt_net_attachment att;
            struct dt_error *net_err = NULL;
            r = dt_net_attach(&rt->net, p->slot, netns, &pol, &att, &net_err);
            if (r == -EEXIST) {
                /* We hold the slot, so its veth or policy is a crashed run's leftover. */
                dt_error_free(net_err);
                net_err = NULL;
                (void) dt_net_detach(&rt->net, p->slot, NULL);
                r = dt_net_attach(&rt->net, p->slot, netns, &pol, &att, &net_err);
            }
            if (r < 0 && err && !*err)
                *err = TAKE_PTR(net_err);
            dt_error_free(net_err);
            net_attached = r >= 0;
        } else
            r = dt_net_loopback_up(netns, err);
    }
    if (r >= 0) {
        userns = open_ns((pid_t) pid, "user");
        if (userns < 0)
            r = dt_error_errno(err, userns, "open the sandbox's user namespace");
    }
    if (r >= 0) {
        rootmnt = dt_rootfs_overlay(p->layers, userns, upper, work, err);
        r = rootmnt < 0 ? rootmnt : 0;
        if (r >= 0)
            fds[nfds++] = rootmnt;
    }
    for (size_t i = 0; r >= 0 && i < p->n_binds; i++) {
        int m = dt_rootfs_bind_clone(p->binds[i].source, p->binds[i].readonly,
                                     p->binds[i].idmap ? userns : -1, err);
        if (m < 0)
            r = m;
        else
            fds[nfds++] = m;
    }
    if (r >= 0)
        oom_before = oom_kills(sb);
    if (r >= 0) {
        struct dt_child_msg go = {.type = DT_MSG_GO};
        r = dt_child_send(sock, &go, fds, nfds);
        if (r < 0)
            r = dt_error_errno(err, r, "signal the sandbox init");
    }
    for (size_t i = 0; i < nfds; i++)
        safe_close(fds[i]);
    safe_close(userns);
    safe_close(netns);
    if (r >= 0)
        r = await_child(sock, NULL, NULL, err);
    if (r < 0) {
        kill_and_reap((pid_t) pid, pidfd);
        safe_close(pidfd);
        if (net_attached)
            (void) dt_net_detach(&rt->net, p->slot, NULL);
        (void) dt_cgroup_kill(sb->cg, NULL);
        return r;
    }

    sb->pid = (pid_t) pid;
    sb->pidfd = pidfd;
    sb->is_child = true;
    sb->oom_kills_at_start = oom_before;
    unsigned long long st = 0;
    (void) proc_start_time(sb->pid, &st);
    (void) state_write(sb, st);
    return 0;
}

int
dt_sandbox_start(struct dt_sandbox *sb, const int stdio_fds[3], struct dt_error **err)
{
    struct dt_start_opts o = { .stdio_fds = { -1, -1, -1 }, .exec_fd = -1 };

    for (int i = 0; stdio_fds && i < 3; i++)
        o.stdio_fds[i] = stdio_fds[i];
    return dt_sandbox_start_opts(sb, &o, err);
}

int
dt_sandbox_open_oom_file(struct dt_sandbox *sb, int *ret_fd, struct dt_error **err)
{
    return dt_cgroup_open_oom_file(sb->cg_workload ? sb->cg_workload : sb->cg, ret_fd, err);
}

/* oom_score_adj -1000 through the legacy oom_adj file: written by us (with CAP_SYS_RESOURCE) via
 * oom_score_adj it would also lower the process's oom_score_adj_min, which its children inherit
 * and could then use to make themselves unkillable; the legacy file leaves the minimum alone. */
static int
protect_from_oom(pid_t pid)
{
    char path[64];
    int fd, r = 0;

    snprintf(path, sizeof(path), "/proc/%d/oom_adj", (int) pid);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, "-17", 3) != 3)
        r = -errno;
    close(fd);
    return r;
}

int
dt_sandbox_start_opts(struct dt_sandbox *sb, struct dt_start_opts *o, struct dt_error **err)
{
    struct dt_start_opts *out = o;
    struct dt_runtime *rt = sb->rt;
    int upper = -EBADF, work = -EBADF, r;

    int all_fds[DT_MAX_EXTRA_FDS + 16];
    struct dt_start_opts o2;
    size_t n_work = 0;

    if (o->n_extra_fds > DT_MAX_EXTRA_FDS)
        return dt_error_set(err, EINVAL, "at most %d extra fds for init", DT_MAX_EXTRA_FDS);
    o->n_workload_fds = 0;
    if (sb->pid > 0)
        return dt_error_set(err, EBUSY, "sandbox '%s' is already running", sb->plan.id);
    if (sb->plan.net_mode == DT_NET_BRIDGE && !rt->net_ready) {
        r = dt_net_host_setup(&rt->net, err);
        if (r < 0)
            return dt_error_wrap(err, "start sandbox '%s'", sb->plan.id);
        rt->net_ready = true;
    }
    if (sb->cg_workload) {
        for (size_t i = 0; i < o->n_extra_fds; i++)
            all_fds[i] = o->extra_fds[i];
        r = dt_cgroup_open_procs(sb->cg_workload, all_fds + o->n_extra_fds, 16, &n_work, err);
        if (r < 0)
            return dt_error_wrap(err, "start sandbox '%s'", sb->plan.id);
        o2 = *o;
        o2.extra_fds = all_fds;
        o2.n_extra_fds = o->n_extra_fds + n_work;
        o = &o2;
    }
    r = open_writable_layer(sb, &upper, &work, err);
    if (r >= 0)
        r = start_init(sb, o, upper, work, err);
    safe_close(upper);
    safe_close(work);
    for (size_t i = 0; i < n_work; i++)
        safe_close(all_fds[o->n_extra_fds - n_work + i]);
    if (r < 0) {
        sb->disk_mntfd = safe_close(sb->disk_mntfd);
        return dt_error_wrap(err, "start sandbox '%s'", sb->plan.id);
    }
    out->protect_result = o->protect_init ? protect_from_oom(sb->pid) : 0;
    out->n_workload_fds = n_work;
    return 0;
}

/* ---- wait / stop ------------------------------------------------------------------------- */

static void
exit_from_siginfo(const siginfo_t *si, struct dt_exit *e)
{
    *e = (struct dt_exit){0};
    if (si->si_code == CLD_EXITED)
        e->code = si->si_status;
    else
        e->signal = si->si_status;
}

/* After the init is gone: make sure nothing of the sandbox runs or stays attached. */
static void
cleanup_after_exit(struct dt_sandbox *sb)
{
    /* A pid namespace's init exits only after the kernel has reaped everything else in it, so
     * the cgroup is normally empty by now; killing it anyway would cost a v1 freeze cycle. */
    if (dt_cgroup_is_empty(sb->cg) == 0)
        (void) dt_cgroup_kill(sb->cg, NULL);
    for (int i = 0; i < 1000 && dt_cgroup_is_empty(sb->cg) == 0; i++)
        sleep_msec(1);
    if (sb->plan.net_mode == DT_NET_BRIDGE)
        (void) dt_net_detach(&sb->rt->net, sb->plan.slot, NULL);
    sb->disk_mntfd = safe_close(sb->disk_mntfd);
    sb->pidfd = safe_close(sb->pidfd);
    sb->pid = 0;
    (void) unlinkat(sb->dirfd, "state", 0);
}


/* Reap exec'd processes that have exited, keeping their status (see struct exec_record). */
static void
reap_execs(struct dt_sandbox *sb)
{
    for (size_t i = 0; i < sb->n_execs; i++) {
        struct exec_record *x = &sb->execs[i];
        if (x->reaped)
            continue;
        siginfo_t si = {0};
        int k = waitid(P_PID, (id_t) x->pid, &si, WEXITED | WNOHANG);
        if (k == 0 && si.si_pid != 0) {
            x->si = si;
            x->reaped = true;
        } else if (k < 0 && errno == ECHILD) {
            x->reaped = true; /* reaped by someone else: no status to keep */
            x->si.si_code = CLD_KILLED;
            x->si.si_status = SIGKILL;
        }
    }
}

int
dt_sandbox_wait(struct dt_sandbox *sb, bool nohang, struct dt_exit *ret, struct dt_error **err)
{
    if (sb->pid <= 0)
        return dt_error_set(err, ESRCH, "sandbox '%s' is not running", sb->plan.id);

    /* The pidfd turns readable once the init is fully gone, which needs our exec'd children
     * reaped: poll in short steps, reaping them in between. */
    for (;;) {
        reap_execs(sb);
        struct pollfd pfd = {.fd = sb->pidfd, .events = POLLIN};
        int k = poll(&pfd, 1, nohang ? 0 : 10);
        if (k > 0)
            break;
        if (k < 0 && errno != EINTR)
            return dt_error_errno(err, errno, "wait for sandbox '%s'", sb->plan.id);
        if (k == 0 && nohang)
            return -EAGAIN;
    }

    struct dt_exit e = {0};
    if (sb->is_child) {
        siginfo_t si = {0};
        int r;
        do
            r = waitid(P_PIDFD, (id_t) sb->pidfd, &si, WEXITED);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return dt_error_errno(err, errno, "wait for sandbox '%s'", sb->plan.id);
        exit_from_siginfo(&si, &e);
    } else
        e.signal = SIGKILL; /* re-adopted: not our child, so no exit status */
    if (e.signal == SIGKILL && oom_since(sb, sb->oom_kills_at_start))
        e.oom_killed = true;
    cleanup_after_exit(sb);
    if (ret)
        *ret = e;
    return 0;
}

int
dt_sandbox_stop(struct dt_sandbox *sb, uint64_t grace_usec, struct dt_error **err)
{
    if (sb->pid <= 0)
        return 0;
    if (grace_usec > 0) {
        /* The init of a pid namespace only gets the signals it handles: SIGTERM asks politely. */
        (void) syscall(SYS_pidfd_send_signal, sb->pidfd, SIGTERM, NULL, 0);
        struct pollfd pfd = {.fd = sb->pidfd, .events = POLLIN};
        int ms = (int) (grace_usec / 1000);
        (void) poll(&pfd, 1, ms > 0 ? ms : 1);
    }
    /* Killing a pid namespace's init kills everything in it (thawed, if paused, so it can die);
     * once it is gone, cleanup_after_exit() kills whatever the cgroup still holds. */
    (void) syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
    (void) dt_cgroup_freeze(sb->cg, false, NULL);
    sb->paused = false;
    struct dt_exit e;
    int r = dt_sandbox_wait(sb, false, &e, err);
    return r < 0 ? dt_error_wrap(err, "stop sandbox '%s'", sb->plan.id) : 0;
}

int
dt_sandbox_pause(struct dt_sandbox *sb, struct dt_error **err)
{
    if (sb->pid <= 0)
        return dt_error_set(err, ESRCH, "sandbox '%s' is not running", sb->plan.id);
    int r = dt_cgroup_freeze(sb->cg, true, err);
    if (r < 0)
        return dt_error_wrap(err, "pause sandbox '%s'", sb->plan.id);
    sb->paused = true;
    return 0;
}

int
dt_sandbox_resume(struct dt_sandbox *sb, struct dt_error **err)
{
    int r = dt_cgroup_freeze(sb->cg, false, err);
    if (r < 0)
        return dt_error_wrap(err, "resume sandbox '%s'", sb->plan.id);
    sb->paused = false;
    return 0;
}

int
dt_sandbox_set_resources(struct dt_sandbox *sb, uint64_t memory_bytes, uint64_t cpu_millicpus,
                         struct dt_error **err)
{
    struct dt_plan np = sb->plan; /* shallow: only the two numbers differ */
    struct dt_cgroup_limits lim;
    int r;

    np.memory_bytes = memory_bytes;
    np.cpu_millicpus = cpu_millicpus;
    r = dt_plan_validate(&np, err);
    if (r < 0)
        return r;
    if ((memory_bytes == DT_LIMIT_UNLIMITED) != (sb->plan.memory_bytes == DT_LIMIT_UNLIMITED) ||
        (cpu_millicpus == DT_LIMIT_UNLIMITED) != (sb->plan.cpu_millicpus == DT_LIMIT_UNLIMITED))
        return dt_error_set(err, EINVAL, "sandbox '%s': a limit can be changed, not added or "
                            "removed", sb->plan.id);
    cgroup_limits_from_plan(sb->rt, &np, &lim);
    /* A re-adopted sandbox has not opened its leaves yet (create_child opens existing ones). */
    if (sb->plan.init_leaf && sb->cg && !sb->cg_init)
        (void) dt_cgroup_create_child(sb->cg, "init", &sb->cg_init, NULL);
    if (sb->plan.init_leaf && sb->cg && !sb->cg_workload)
        (void) dt_cgroup_create_child(sb->cg, "workload", &sb->cg_workload, NULL);
    /* The leaves hold the same CPUs as the sandbox: in step, children first when shrinking. */
    struct dt_cgroup *leaves[] = { sb->cg_init, sb->cg_workload };
    for (size_t i = 0; r >= 0 && lim.cpuset_cpus[0] && i < ELEMENTSOF(leaves); i++)
        if (leaves[i])
            (void) dt_cgroup_set_cpus(leaves[i], lim.cpuset_cpus, NULL); /* may fail: grows */
    r = dt_cgroup_set_limits(sb->cg, &lim, err);
    for (size_t i = 0; r >= 0 && lim.cpuset_cpus[0] && i < ELEMENTSOF(leaves); i++)
        if (leaves[i])
            r = dt_cgroup_set_cpus(leaves[i], lim.cpuset_cpus, err);
    if (r < 0)
        return dt_error_wrap(err, "resize sandbox '%s'", sb->plan.id);
    sb->plan.memory_bytes = memory_bytes;
    sb->plan.cpu_millicpus = cpu_millicpus;
    /* What the sandbox sees of its limits follows them. */
    if (cpu_millicpus != DT_LIMIT_UNLIMITED) {
        long n = plan_ncpus(sb->rt, &sb->plan);
        char buf[32];
        int k = n > 1 ? snprintf(buf, sizeof(buf), "0-%ld\n", n - 1)
                      : snprintf(buf, sizeof(buf), "0\n");
        r = write_file_at(files_dirfd(sb), "cpu-online", buf, (size_t) k, 0444);
        if (r < 0)
            return dt_error_errno(err, r, "write '%s/cpu-online'", sb->dir);
    }
    if (memory_bytes != DT_LIMIT_UNLIMITED)
        return dt_sandbox_refresh_meminfo(sb, err);
    return 0;
}

int
dt_sandbox_resize_disk(struct dt_sandbox *sb, uint64_t new_bytes, struct dt_error **err)
{
    if (sb->plan.disk_bytes == 0)
        return dt_error_set(err, EINVAL, "sandbox '%s' was created without a disk quota",
                            sb->plan.id);
    _cleanup_free_ char *img = xasprintf("%s/disk.img", sb->dir);
    int r = dt_disk_grow(img, new_bytes, sb->disk_mntfd, err);
    if (r < 0)
        return dt_error_wrap(err, "resize disk of sandbox '%s'", sb->plan.id);
    sb->plan.disk_bytes = new_bytes;
    return 0;
}

int
dt_sandbox_open_upper(struct dt_sandbox *sb, int *ret_fd, uid_t *ret_uid_base,
                      struct dt_error **err)
{
    int upper = -EBADF, work = -EBADF, r;

    if (sb->pid > 0) {
        /* Running: the live writable layer (the caller freezes the sandbox first if it wants
         * a consistent copy). */
        int base = sb->disk_mntfd >= 0 ? sb->disk_mntfd : sb->dirfd;
        int fd = openat(base, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return dt_error_errno(err, errno, "open the writable layer of '%s'", sb->plan.id);
        *ret_fd = fd;
        *ret_uid_base = sb->uid_base;
        return 0;
    }
    if (sb->plan.ephemeral)
        return dt_error_set(err, ENOTSUP, "sandbox '%s' is ephemeral: its files are gone",
                            sb->plan.id);
    r = open_writable_layer(sb, &upper, &work, err);
    if (r < 0)
        return r;
    safe_close(work);
    /* An O_PATH fd cannot be read as a directory: reopen it for the caller's walk. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", upper);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = fd < 0 ? dt_error_errno(err, errno, "open the writable layer of '%s'", sb->plan.id) : 0;
    safe_close(upper);
    /* The fd pins the disk image's mount: ours can go. */
    sb->disk_mntfd = safe_close(sb->disk_mntfd);
    if (r < 0)
        return r;
    *ret_fd = fd;
    *ret_uid_base = sb->uid_base;
    return 0;
}

int
dt_sandbox_take_upper(struct dt_sandbox *sb, const char *dest, uid_t *ret_uid_base,
                      struct dt_error **err)
{
    if (sb->pid > 0)
        return dt_error_set(err, EBUSY, "sandbox '%s' is running", sb->plan.id);
    if (sb->plan.ephemeral || sb->plan.disk_bytes > 0)
        return dt_error_set(err, EXDEV, "the writable layer of sandbox '%s' is not a plain "
                            "directory", sb->plan.id);
    if (renameat(sb->dirfd, "upper", AT_FDCWD, dest) < 0)
        return dt_error_errno(err, errno, "move the writable layer of '%s' to '%s'",
                              sb->plan.id, dest);
    if (mkdirat(sb->dirfd, "upper", 0755) < 0 ||
        fchownat(sb->dirfd, "upper", sb->uid_base, sb->uid_base, 0) < 0)
        return dt_error_errno(err, errno, "recreate the writable layer of '%s'", sb->plan.id);
    *ret_uid_base = sb->uid_base;
    return 0;
}

int
dt_sandbox_destroy(struct dt_sandbox *sb, struct dt_error **err)
{
    int r = dt_sandbox_stop(sb, 0, err);
    if (r < 0)
        return r;
    if (sb->plan.net_mode == DT_NET_BRIDGE)
        (void) dt_net_detach(&sb->rt->net, sb->plan.slot, NULL);
    if (sb->cg) {
        r = dt_cgroup_destroy(sb->cg, err);
        if (r < 0)
            return dt_error_wrap(err, "destroy sandbox '%s'", sb->plan.id);
    }
    r = rm_rf_at(sb->rt->state_fd, sb->plan.id);
    if (r < 0)
        return dt_error_errno(err, r, "remove state of sandbox '%s'", sb->plan.id);
    return 0;
}

/* ---- exec -------------------------------------------------------------------------------- */

int
dt_sandbox_exec(struct dt_sandbox *sb, const struct dt_exec *spec, struct dt_process *ret,
                struct dt_error **err)
{
    struct dt_runtime *rt = sb->rt;
    const struct dt_plan *p = &sb->plan;
    int r;

    if (sb->pid <= 0)
        return dt_error_set(err, ESRCH, "sandbox '%s' is not running", p->id);
    if (sb->paused) /* the new process would freeze on joining the cgroup */
        return dt_error_set(err, EBUSY, "sandbox '%s' is paused", p->id);
    size_t na = strv_length(spec->args);
    if (na == 0 || na > DT_MAX_ARGS || !spec->args[0][0])
        return dt_error_set(err, EINVAL, "invalid command");
    if (spec->env && strv_length(spec->env) > DT_MAX_ENV)
        return dt_error_set(err, EINVAL, "too many environment variables");
    if (spec->cwd && spec->cwd[0] != '/')
        return dt_error_set(err, EINVAL, "working directory '%s' is not absolute", spec->cwd);

    struct dt_user user;
    _cleanup_strv_free_ char **dirs = lookup_dirs(sb);
    r = dt_rootfs_lookup_user(dirs, spec->user ? spec->user : p->user, &user, err);
    if (r < 0)
        return r;
    char hostname[64];
    snprintf(hostname, sizeof(hostname), "%s", p->hostname ? p->hostname : p->id);
    _cleanup_strv_free_ char **env = build_env(spec->env ? spec->env : p->env, user.home, hostname,
                                               spec->pty);

    uint64_t oom_before = oom_kills(sb);

    struct dt_child_plan cp = {
            .ns_pidfd = sb->pidfd,
            .proc = {
                    .exec_fd = -1,
                    .stdio = {spec->stdio_fds[0], spec->stdio_fds[1], spec->stdio_fds[2]},
                    .uid = user.uid,
                    .gid = user.gid,
                    .argv = spec->args,
                    .envp = env,
                    .cwd = spec->cwd ? spec->cwd : user.home,
                    .path = env_get(env, "PATH"),
                    .caps = dt_caps_default_mask(),
                    .seccomp = &rt->seccomp,
                    .no_new_privs = true,
                    .pty = spec->pty,
                    .rows = spec->rows,
                    .cols = spec->cols,
            },
    };

    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return dt_error_errno(err, errno, "create sync socket");
    cp.sock = sp[1];
    /* A pipe holds the intermediate until the parent has moved it into the cgroup. */
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) < 0) {
        r = dt_error_errno(err, errno, "create pipe");
        safe_close(sp[0]);
        safe_close(sp[1]);
        return r;
    }

    struct clone_args ca = {.exit_signal = SIGCHLD};
    long mid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (mid < 0) {
        r = dt_error_errno(err, errno, "clone");
        safe_close(sp[0]);
        safe_close(sp[1]);
        safe_close(gate[0]);
        safe_close(gate[1]);
        return r;
    }
    if (mid == 0) {
        char c;
        safe_close(sp[0]);
        safe_close(gate[1]);
        if (read(gate[0], &c, 1) != 1)
            _exit(126);
        dt_child_exec_main(&cp);
    }
    safe_close(sp[1]);
    safe_close(gate[0]);
    _cleanup_close_ int sock = sp[0];

    r = dt_cgroup_attach(sb->cg_workload ? sb->cg_workload : sb->cg, (pid_t) mid, err);
    if (r >= 0 && write(gate[1], "g", 1) != 1)
        r = dt_error_errno(err, errno, "release exec helper");
    safe_close(gate[1]);

    pid_t child = 0;
    int pty = -EBADF;
    if (r >= 0)
        r = await_child(sock, &child, &pty, err);
    if (r < 0)
        (void) kill((pid_t) mid, SIGKILL); /* it may still be waiting or stuck: never block */
    while (waitpid((pid_t) mid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (r < 0 || child <= 0) {
        if (child > 0)
            kill_and_reap(child, -EBADF);
        safe_close(pty);
        if (r >= 0)
            r = dt_error_set(err, EIO, "exec helper exited early");
        return dt_error_wrap(err, "exec '%s' in sandbox '%s'", spec->args[0], p->id);
    }
    if (spec->pty && pty < 0) {
        kill_and_reap(child, -EBADF);
        return dt_error_set(err, EIO, "exec '%s' in sandbox '%s': no terminal received",
                            spec->args[0], p->id);
    }
    int pfd = (int) syscall(SYS_pidfd_open, child, 0);
    sb->execs = xreallocarray(sb->execs, sb->n_execs + 1, sizeof(*sb->execs));
    sb->execs[sb->n_execs++] = (struct exec_record){.pid = child};
    *ret = (struct dt_process){
            .pid = child,
            .pidfd = pfd,
            .pty_master = spec->pty ? pty : -1,
            .oom_kills_at_start = oom_before,
    };
    return 0;
}

int
dt_process_wait(struct dt_sandbox *sb, struct dt_process *proc, bool nohang, struct dt_exit *ret,
                struct dt_error **err)
{
    siginfo_t si = {0};
    size_t idx = SIZE_MAX;
    for (size_t i = 0; i < sb->n_execs; i++)
        if (sb->execs[i].pid == proc->pid)
            idx = i;

    if (idx != SIZE_MAX && sb->execs[idx].reaped)
        si = sb->execs[idx].si; /* reaped while the sandbox stopped */
    else {
        int r;
        do
            r = waitid(P_PID, (id_t) proc->pid, &si, WEXITED | (nohang ? WNOHANG : 0));
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return dt_error_errno(err, errno, "wait for process %d", (int) proc->pid);
        if (si.si_pid == 0)
            return -EAGAIN;
    }
    if (idx != SIZE_MAX)
        sb->execs[idx] = sb->execs[--sb->n_execs];

    struct dt_exit e;
    exit_from_siginfo(&si, &e);
    if (e.signal == SIGKILL && oom_since(sb, proc->oom_kills_at_start))
        e.oom_killed = true;
    proc->pidfd = safe_close(proc->pidfd);
    if (ret)
        *ret = e;
    return 0;
}
