/* SPDX-License-Identifier: Apache-2.0 */
/* The runner: sandbox records become sandboxes of the runtime library, each with daytona-agent as
 * init. Plans are persisted under DATA_DIR/sandboxes/<id>/plan so that a restarted daytonad
 * re-adopts running sandboxes; each init is watched (pidfd on the loop) to notice crashes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "server/agent-launch.h"
#include "server/runner.h"
#include "dt/banned.h"

#define GIB                (UINT64_C(1) << 30)
#define STOP_GRACE_USEC    (UINT64_C(5) * 1000 * 1000)
#define PIDS_MAX           4096
#define PLAN_FILE          "plan"
#define PLAN_VERSION       1
#define PLAN_MAX_BYTES     (1024 * 1024)
#define AGENT_LOG_MAX      (1024 * 1024)
#define ID_MAX             64

struct watch;

/* One sandbox this runner has opened. */
struct entry {
    struct entry *next;
    struct dt_runner *runner;
    char *id;
    struct dt_sandbox *sb;
    int lockfd;           /* holds the slot while the sandbox exists */
    struct watch *watch;  /* while the init runs; NULL otherwise */
};

/* A pidfd watch. Allocated apart from the entry: libuv frees handles asynchronously (close
 * callback), possibly after the entry is gone. */
struct watch {
    uv_poll_t h;
    struct entry *e; /* NULL once detached */
};

struct dt_runner {
    char *data_dir;
    char *sandboxes_dir;
    uv_loop_t *loop;
    void (*on_exit)(const char *id, const struct dt_exit *e, void *userdata);
    void *userdata;
    struct dt_runtime *rt;
    int agent_fd;
    struct entry *entries;
};

/* ---- small helpers ----------------------------------------------------------------------- */

/* Ids name directories and cgroups: the runtime's charset, and never "." or "..". */
static bool
id_is_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static char *
sandbox_dir(struct dt_runner *r, const char *id)
{
    return xasprintf("%s/%s", r->sandboxes_dir, id);
}

static struct entry *
find_entry(struct dt_runner *r, const char *id)
{
    for (struct entry *e = r->entries; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void
watch_close_cb(uv_handle_t *h)
{
    free(h);
}

static void
unwatch(struct entry *e)
{
    if (!e->watch)
        return;
    /* Closing now also removes the pidfd from epoll while the fd is still open. */
    e->watch->e = NULL;
    uv_close((uv_handle_t *) &e->watch->h, watch_close_cb);
    e->watch = NULL;
}

/* Detach E from the runner and free it; the sandbox itself is left as it is. */
static void
entry_free(struct dt_runner *r, struct entry *e)
{
    for (struct entry **p = &r->entries; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    unwatch(e);
    dt_sandbox_free(e->sb);
    safe_close(e->lockfd);
    free(e->id);
    free(e);
}

static struct entry *
entry_add(struct dt_runner *r, const char *id, struct dt_sandbox *sb, int lockfd)
{
    struct entry *e = xcalloc(1, sizeof(*e));
    e->runner = r;
    e->id = xstrdup(id);
    e->sb = sb;
    e->lockfd = lockfd;
    e->next = r->entries;
    r->entries = e;
    return e;
}

/* The pidfd turned readable: the init exited without us asking. */
static void
on_pidfd(uv_poll_t *h, int status, int events)
{
    struct watch *w = (struct watch *) h;
    struct entry *e = w->e;
    struct dt_exit ex = {0};

    if (!e)
        return;
    struct dt_runner *r = e->runner;
    int k = dt_sandbox_wait(e->sb, /* nohang= */ true, &ex, NULL);
    if (k == -EAGAIN)
        return;
    if (k < 0)
        ex = (struct dt_exit){.signal = SIGKILL};
    unwatch(e);
    if (r->on_exit) {
        /* The callback may destroy the sandbox (and free E): hand it a copy of the id. */
        _cleanup_free_ char *id = xstrdup(e->id);
        r->on_exit(id, &ex, r->userdata);
    }
}

static int
watch(struct dt_runner *r, struct entry *e, struct dt_error **err)
{
    int pfd = dt_sandbox_pidfd(e->sb);
    if (pfd < 0)
        return 0;
    struct watch *w = xcalloc(1, sizeof(*w));
    int k = uv_poll_init(r->loop, &w->h, pfd);
    if (k < 0) {
        free(w);
        return dt_error_errno(err, -k, "watch the init of sandbox '%s'", e->id);
    }
    k = uv_poll_start(&w->h, UV_READABLE, on_pidfd);
    if (k < 0) {
        uv_close((uv_handle_t *) &w->h, watch_close_cb);
        return dt_error_errno(err, -k, "watch the init of sandbox '%s'", e->id);
    }
    w->e = e;
    e->watch = w;
    return 0;
}

/* Take the lock of slot SLOT (a sandbox's own slot, after a restart). */
static int
lock_slot(uint32_t slot, int *ret_fd, struct dt_error **err)
{
    char path[64];
    int r = mkdir_p(DT_SLOTS_DIR, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create slot directory '%s'", DT_SLOTS_DIR);
    snprintf(path, sizeof(path), DT_SLOTS_DIR "/%u.lock", slot);
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return dt_error_errno(err, errno, "open slot lock '%s'", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return dt_error_set(err, EBUSY, "slot %u is held by another process", slot);
        return dt_error_errno(err, errno, "lock slot '%s'", path);
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* ---- plan persistence -------------------------------------------------------------------- */

static json_t *
json_u64(uint64_t v)
{
    return v == DT_LIMIT_UNLIMITED ? json_null() : json_integer((json_int_t) v);
}

static json_t *
json_strv(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *
json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *
plan_to_json(const struct dt_plan *p)
{
    json_t *binds = json_array();
    for (size_t i = 0; i < p->n_binds; i++)
        json_array_append_new(binds, json_pack("{s:s, s:s, s:b, s:b}", "source", p->binds[i].source,
                                               "destination", p->binds[i].destination,
                                               "readonly", (int) p->binds[i].readonly,
                                               "idmap", (int) p->binds[i].idmap));
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(PLAN_VERSION));
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "layers", json_strv(p->layers));
    json_object_set_new(o, "slot", json_integer(p->slot));
    json_object_set_new(o, "memory_bytes", json_u64(p->memory_bytes));
    json_object_set_new(o, "swap_bytes", json_u64(p->swap_bytes));
    json_object_set_new(o, "cpu_millicpus", json_u64(p->cpu_millicpus));
    json_object_set_new(o, "pids_max", json_u64(p->pids_max));
    json_object_set_new(o, "disk_bytes", json_u64(p->disk_bytes));
    json_object_set_new(o, "init_leaf", json_boolean(p->init_leaf));
    json_object_set_new(o, "ephemeral", json_boolean(p->ephemeral));
    json_object_set_new(o, "hostname", json_str_or_null(p->hostname));
    json_object_set_new(o, "args", json_strv(p->args));
    json_object_set_new(o, "env", json_strv(p->env));
    json_object_set_new(o, "cwd", json_str_or_null(p->cwd));
    json_object_set_new(o, "user", json_str_or_null(p->user));
    json_object_set_new(o, "binds", binds);
    json_object_set_new(o, "net_mode",
                        json_string(p->net_mode == DT_NET_BRIDGE ? "bridge" : "none"));
    json_object_set_new(o, "block_all_egress", json_boolean(p->block_all_egress));
    json_object_set_new(o, "allow_cidrs", json_strv(p->allow_cidrs));
    return o;
}

/* Write the plan to DIR/plan atomically (temp file, fsync, rename). */
static int
plan_save(const char *dir, const struct dt_plan *p, struct dt_error **err)
{
    _cleanup_free_ char *path = xasprintf("%s/" PLAN_FILE, dir);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    json_t *o = plan_to_json(p);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return dt_error_set(err, ENOMEM, "serialise the plan of sandbox '%s'", p->id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r = fd < 0 ? -errno : write_all(fd, s, strlen(s));
    free(s);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    safe_close(fd);
    if (r >= 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlink(tmp);
        return dt_error_errno(err, r, "write plan '%s'", path);
    }
    return 0;
}

static int
get_u64(json_t *o, const char *key, uint64_t *ret)
{
    json_t *v = json_object_get(o, key);
    if (json_is_null(v)) {
        *ret = DT_LIMIT_UNLIMITED;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -EINVAL;
    *ret = (uint64_t) json_integer_value(v);
    return 0;
}

static int
get_strv(json_t *o, const char *key, char ***ret)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return -EINVAL;
    char **l = xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v) {
        if (!json_is_string(v)) {
            strv_free(l);
            return -EINVAL;
        }
        l[i] = xstrdup(json_string_value(v));
    }
    *ret = l;
    return 0;
}

static int
get_str(json_t *o, const char *key, char **ret)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -EINVAL;
    *ret = xstrdup(json_string_value(v));
    return 0;
}

static int
plan_from_json(json_t *o, struct dt_plan *p)
{
    json_t *binds = json_object_get(o, "binds"), *b;
    json_int_t slot = json_integer_value(json_object_get(o, "slot"));
    const char *net = json_string_value(json_object_get(o, "net_mode"));
    size_t i;
    int r = 0;

    if (json_integer_value(json_object_get(o, "version")) != PLAN_VERSION || !net ||
        slot < 0 || slot >= DT_MAX_SLOTS)
        return -EINVAL;
    p->slot = (uint32_t) slot;
    p->net_mode = strcmp(net, "bridge") == 0 ? DT_NET_BRIDGE : DT_NET_NONE;
    p->init_leaf = json_is_true(json_object_get(o, "init_leaf"));
    p->ephemeral = json_is_true(json_object_get(o, "ephemeral"));
    p->block_all_egress = json_is_true(json_object_get(o, "block_all_egress"));
    if (r >= 0)
        r = get_str(o, "id", &p->id);
    if (r >= 0)
        r = get_str(o, "hostname", &p->hostname);
    if (r >= 0)
        r = get_str(o, "cwd", &p->cwd);
    if (r >= 0)
        r = get_str(o, "user", &p->user);
    if (r >= 0)
        r = get_strv(o, "layers", &p->layers);
    if (r >= 0)
        r = get_strv(o, "args", &p->args);
    if (r >= 0)
        r = get_strv(o, "env", &p->env);
    if (r >= 0)
        r = get_strv(o, "allow_cidrs", &p->allow_cidrs);
    if (r >= 0)
        r = get_u64(o, "memory_bytes", &p->memory_bytes);
    if (r >= 0)
        r = get_u64(o, "swap_bytes", &p->swap_bytes);
    if (r >= 0)
        r = get_u64(o, "cpu_millicpus", &p->cpu_millicpus);
    if (r >= 0)
        r = get_u64(o, "pids_max", &p->pids_max);
    if (r >= 0)
        r = get_u64(o, "disk_bytes", &p->disk_bytes);
    if (r < 0)
        return r;
    if (p->disk_bytes == DT_LIMIT_UNLIMITED || p->swap_bytes == DT_LIMIT_UNLIMITED)
        return -EINVAL;
    if (binds && !json_is_array(binds))
        return -EINVAL;
    json_array_foreach(binds, i, b) {
        const char *src = json_string_value(json_object_get(b, "source"));
        const char *dst = json_string_value(json_object_get(b, "destination"));
        if (!src || !dst || p->n_binds >= DT_MAX_MOUNTS)
            return -EINVAL;
        p->binds = xreallocarray(p->binds, p->n_binds + 1, sizeof(struct dt_bind));
        p->binds[p->n_binds++] = (struct dt_bind){
                .source = xstrdup(src),
                .destination = xstrdup(dst),
                .readonly = json_is_true(json_object_get(b, "readonly")),
                .idmap = json_is_true(json_object_get(b, "idmap")),
        };
    }
    if (!p->env)
        p->env = xcalloc(1, sizeof(char *));
    return 0;
}

/* Read DIR/plan into PLAN (initialised by the caller). -ENOENT when there is none. */
static int
plan_load(const char *dir, const char *id, struct dt_plan *plan, struct dt_error **err)
{
    _cleanup_free_ char *path = xasprintf("%s/" PLAN_FILE, dir);
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    json_error_t jerr;
    int r;

    if (dfd < 0)
        return dt_error_errno(err, errno, "sandbox '%s' not found", id);
    r = read_file_at(dfd, PLAN_FILE, PLAN_MAX_BYTES, &text, NULL);
    if (r < 0)
        return dt_error_errno(err, r, "read plan '%s'", path);
    json_t *o = json_loads(text, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return dt_error_set(err, EINVAL, "invalid plan '%s': %s", path, jerr.text);
    }
    r = plan_from_json(o, plan);
    json_decref(o);
    if (r < 0)
        return dt_error_set(err, EINVAL, "invalid plan '%s'", path);
    if (!plan->id || strcmp(plan->id, id) != 0)
        return dt_error_set(err, EINVAL, "plan '%s' is for another sandbox", path);
    return dt_plan_validate(plan, err);
}

/* ---- runner ------------------------------------------------------------------------------ */

static int
runner_init(struct dt_runner *r, const struct dt_runner_config *cfg, struct dt_error **err)
{
    _cleanup_free_ char *state = xasprintf("%s/runtime", cfg->data_dir);
    int k;

    k = mkdir_p(r->sandboxes_dir, 0700);
    if (k < 0)
        return dt_error_errno(err, k, "create '%s'", r->sandboxes_dir);
    k = mkdir_p(state, 0700);
    if (k < 0)
        return dt_error_errno(err, k, "create '%s'", state);
    k = dt_agent_open_binary(cfg->agent_binary, &r->agent_fd, err);
    if (k < 0)
        return k;
    struct dt_runtime_config rc = {
            .state_dir = state,
            .cgroup_subdir = cfg->cgroup_subdir,
            .need_bridge = true, /* sandboxes get NAT networking: `pip install` works */
    };
    return dt_runtime_new(&rc, &r->rt, err);
}

int
dt_runner_new(const struct dt_runner_config *cfg, struct dt_runner **ret, struct dt_error **err)
{
    if (!cfg->data_dir || cfg->data_dir[0] != '/')
        return dt_error_set(err, EINVAL, "data directory must be an absolute path");
    if (!cfg->loop)
        return dt_error_set(err, EINVAL, "the runner needs an event loop");
    /* Each sandbox's agent socket lives at DATA/sandboxes/<uuid>/agent.sock (bound under a
     * temporary name with our pid first): a unix socket path must fit sun_path. Say so now
     * rather than fail every create. */
    char tmpname[64];
    snprintf(tmpname, sizeof(tmpname), "/agent.sock.%ld.tmp", (long) getpid());
    size_t longest = strlen(cfg->data_dir) + strlen("/sandboxes/") + 36 /* a uuid */ +
                     strlen(tmpname);
    if (longest >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
        return dt_error_set(err, ENAMETOOLONG, "data directory '%s' is too long: sandbox "
                            "sockets below it would not fit the %zu bytes of a unix socket path "
                            "(at most %zu bytes)", cfg->data_dir,
                            sizeof(((struct sockaddr_un *) NULL)->sun_path),
                            sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1 -
                                    (longest - strlen(cfg->data_dir)));
    struct dt_runner *r = xcalloc(1, sizeof(*r));
    r->agent_fd = -EBADF;
    r->data_dir = xstrdup(cfg->data_dir);
    r->sandboxes_dir = xasprintf("%s/sandboxes", cfg->data_dir);
    r->loop = cfg->loop;
    r->on_exit = cfg->on_exit;
    r->userdata = cfg->userdata;
    int k = runner_init(r, cfg, err);
    if (k < 0) {
        dt_runner_free(r);
        return k;
    }
    *ret = r;
    return 0;
}

void
dt_runner_free(struct dt_runner *r)
{
    if (!r)
        return;
    while (r->entries)
        entry_free(r, r->entries);
    dt_runtime_free(r->rt);
    safe_close(r->agent_fd);
    free(r->sandboxes_dir);
    free(r->data_dir);
    free(r);
}

char *
dt_runner_agent_socket(struct dt_runner *r, const char *id)
{
    return xasprintf("%s/%s/agent.sock", r->sandboxes_dir, id);
}

/* The agent's stdout/stderr: DIR/agent.log, appended to, restarted when past AGENT_LOG_MAX. */
static int
open_agent_log(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/agent.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > AGENT_LOG_MAX)
        (void) ftruncate(fd, 0);
    return fd;
}

/* Start the opened, stopped sandbox of E with the agent as init (agent-launch.h), its output
 * going to the sandbox's agent.log. */
static int
start_agent(struct dt_runner *r, struct entry *e, struct dt_error **err)
{
    _cleanup_free_ char *dir = sandbox_dir(r, e->id);
    _cleanup_free_ char *sock = dt_runner_agent_socket(r, e->id);
    _cleanup_close_ int logfd = open_agent_log(dir);
    int stdio[3] = { -1, logfd < 0 ? -1 : logfd, logfd < 0 ? -1 : logfd };
    int k;

    k = dt_agent_start(e->sb, r->agent_fd, sock, stdio, NULL, err);
    if (k < 0)
        return dt_error_wrap(err, "start sandbox '%s'", e->id);
    k = watch(r, e, err);
    if (k < 0) {
        (void) dt_sandbox_stop(e->sb, 0, NULL);
        return k;
    }
    return 0;
}

/* The plan of a new sandbox from SPEC. */
static void
build_plan(const struct dt_runner_spec *spec, const char *rootfs, struct dt_plan *p)
{
    bool own_image = spec->layers && spec->layers[0];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t max_mcpu = (uint64_t) (ncpu > 0 ? ncpu : 1) * 1000;

    p->id = xstrdup(spec->id);
    if (own_image)
        for (char *const *l = spec->layers; *l; l++)
            strv_push(&p->layers, *l);
    else
        strv_push(&p->layers, rootfs);
    p->memory_bytes = spec->memory_gib ? (uint64_t) spec->memory_gib * GIB : DT_LIMIT_UNLIMITED;
    p->cpu_millicpus = DT_LIMIT_UNLIMITED;
    if (spec->cpu)
        p->cpu_millicpus = (uint64_t) spec->cpu * 1000 < max_mcpu ? (uint64_t) spec->cpu * 1000
                                                                   : max_mcpu;
    p->pids_max = PIDS_MAX;
    /* An ext4 image: the quota holds, and the writable layer survives stop/start. */
    p->disk_bytes = (uint64_t) spec->disk_gib * GIB;
    /* The hostname is the runtime's default, the sandbox id: what Daytona shows, and it lets a
     * user match a shell prompt to a sandbox. */
    /* The image's ENV first, then the sandbox's: the sandbox's value of a name wins. */
    for (char *const *v = spec->image_env; v && *v; v++) {
        size_t k = strcspn(*v, "=");
        bool overridden = false;
        for (char **w = spec->env; w && *w && !overridden; w++)
            overridden = strncmp(*w, *v, k + 1) == 0;
        if (!overridden)
            strv_push(&p->env, *v);
    }
    for (char **v = spec->env; v && *v; v++)
        strv_push(&p->env, *v);
    p->net_mode = DT_NET_BRIDGE;
    p->block_all_egress = spec->network_block_all;
    for (char **v = spec->network_allow; v && *v; v++)
        strv_push(&p->allow_cidrs, *v);
    /* The agent's own cwd; it runs commands in the user's home or the image's WORKDIR. An
     * image need not have a home for its user. */
    p->cwd = xstrdup("/");
    for (size_t i = 0; i < spec->n_binds; i++) {
        p->binds = xreallocarray(p->binds, p->n_binds + 1, sizeof(*p->binds));
        p->binds[p->n_binds++] = (struct dt_bind){
                .source = xstrdup(spec->binds[i].source),
                .destination = xstrdup(spec->binds[i].destination),
                .readonly = spec->binds[i].readonly,
                .idmap = spec->binds[i].idmap,
        };
    }
    if (!own_image)
        dt_rootfs_default_binds(p);
    dt_agent_plan(p, spec->user && *spec->user ? spec->user : "daytona", spec->workdir);
    if (spec->entrypoint && spec->entrypoint[0]) {
        strv_push(&p->args, "--");
        for (char *const *a = spec->entrypoint; *a; a++)
            strv_push(&p->args, *a);
    }
}

/* Open the existing sandbox ID from its persisted plan: lock its slot, load it from the runtime
 * (re-adopting a running init). When the runtime has no state for it (a crash right after the
 * plan was written, a wiped state dir) and CREATE is set, create it from the plan; else -ENOENT.
 * -ENOENT also when there is no plan. */
static int
open_existing(struct dt_runner *r, const char *id, bool create, struct entry **ret,
              struct dt_error **err)
{
    _cleanup_free_ char *dir = sandbox_dir(r, id);
    struct dt_sandbox *sb = NULL;
    struct dt_error *lerr = NULL;
    struct dt_plan plan;
    int lockfd = -EBADF, k;

    dt_plan_init(&plan);
    k = plan_load(dir, id, &plan, err);
    if (k >= 0)
        k = lock_slot(plan.slot, &lockfd, err);
    if (k >= 0) {
        k = dt_sandbox_load(r->rt, &plan, &sb, &lerr);
        if (k == -ENOENT && create) {
            dt_error_free(lerr);
            lerr = NULL;
            k = dt_sandbox_create(r->rt, &plan, &sb, err);
        } else if (k < 0) {
            if (err && !*err)
                *err = TAKE_PTR(lerr);
        }
        dt_error_free(lerr);
    }
    dt_plan_done(&plan);
    if (k < 0) {
        safe_close(lockfd);
        return k;
    }
    *ret = entry_add(r, id, sb, lockfd);
    return 0;
}

/* Create the runtime sandbox of PLAN, whose plan goes to DIR first. */
static int
create_sandbox(struct dt_runner *r, const char *dir, const struct dt_plan *plan,
               struct dt_sandbox **ret, struct dt_error **err)
{
    struct dt_error *lerr = NULL;
    int k;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return dt_error_errno(err, errno, "create '%s'", dir);
    /* The plan goes to disk before the sandbox exists, so a crash in between leaves something
     * that open_existing() completes rather than an orphan nobody knows the slot of. */
    k = plan_save(dir, plan, err);
    if (k < 0)
        return k;
    k = dt_sandbox_create(r->rt, plan, ret, &lerr);
    if (k == -EEXIST) {
        /* Runtime state without a plan: a leftover of an earlier life of this id (we hold the
         * slot now, and the data dir had no plan for it). Remove it and create afresh. */
        struct dt_sandbox *stale = NULL;
        if (dt_sandbox_load(r->rt, plan, &stale, NULL) == 0) {
            (void) dt_sandbox_destroy(stale, NULL);
            dt_sandbox_free(stale);
        }
        dt_error_free(lerr);
        lerr = NULL;
        k = dt_sandbox_create(r->rt, plan, ret, &lerr);
    }
    if (k < 0 && err && !*err)
        *err = TAKE_PTR(lerr);
    dt_error_free(lerr);
    return k;
}

/* Create a new sandbox from SPEC: slot, plan (persisted first), runtime sandbox. */
static int
create_new(struct dt_runner *r, const struct dt_runner_spec *spec, struct entry **ret,
           struct dt_error **err)
{
    _cleanup_free_ char *dir = sandbox_dir(r, spec->id);
    _cleanup_free_ char *rootfs = NULL;
    struct dt_sandbox *sb = NULL;
    struct dt_plan plan;
    int lockfd = -EBADF, k;

    if (!spec->layers || !spec->layers[0]) {
        k = dt_rootfs_default_ensure(r->data_dir, &rootfs, err);
        if (k < 0)
            return k;
    }
    dt_plan_init(&plan);
    k = dt_runtime_acquire_slot(r->rt, &plan.slot, &lockfd, err);
    if (k >= 0) {
        build_plan(spec, rootfs, &plan);
        k = dt_plan_validate(&plan, err);
    }
    if (k >= 0) {
        k = create_sandbox(r, dir, &plan, &sb, err);
        if (k < 0)
            (void) rm_rf_at(AT_FDCWD, dir);
    }
    dt_plan_done(&plan);
    if (k < 0) {
        safe_close(lockfd);
        return k;
    }
    *ret = entry_add(r, spec->id, sb, lockfd);
    return 0;
}

static int get_entry(struct dt_runner *r, const char *id, struct entry **ret,
                     struct dt_error **err);

int
dt_runner_pause(struct dt_runner *r, const char *id, struct dt_error **err)
{
    struct entry *e;
    int k = get_entry(r, id, &e, err);
    if (k < 0)
        return k;
    if (!dt_sandbox_is_running(e->sb))
        return dt_error_set(err, EINVAL, "sandbox '%s' is not running", id);
    return dt_sandbox_pause(e->sb, err);
}

int
dt_runner_resume(struct dt_runner *r, const char *id, struct dt_error **err)
{
    struct entry *e;
    int k = get_entry(r, id, &e, err);
    if (k < 0)
        return k;
    return dt_sandbox_resume(e->sb, err);
}

int
dt_runner_open_upper(struct dt_runner *r, const char *id, int *ret_fd, uid_t *ret_uid_base,
                     struct dt_error **err)
{
    struct entry *e;
    int k = get_entry(r, id, &e, err);
    if (k < 0)
        return k;
    return dt_sandbox_open_upper(e->sb, ret_fd, ret_uid_base, err);
}

int
dt_runner_resize(struct dt_runner *r, const char *id, uint32_t cpu, uint32_t memory_gib,
                 uint32_t disk_gib, struct dt_error **err)
{
    _cleanup_free_ char *dir = sandbox_dir(r, id);
    struct entry *e;
    struct dt_plan plan;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t max_mcpu = (uint64_t) (ncpu > 0 ? ncpu : 1) * 1000;
    int k = get_entry(r, id, &e, err);

    if (k < 0)
        return k;
    dt_plan_init(&plan);
    k = plan_load(dir, id, &plan, err);
    if (k >= 0 && (cpu || memory_gib)) {
        uint64_t mem = memory_gib ? (uint64_t) memory_gib * GIB : plan.memory_bytes;
        uint64_t mcpu = plan.cpu_millicpus;
        if (cpu)
            mcpu = (uint64_t) cpu * 1000 < max_mcpu ? (uint64_t) cpu * 1000 : max_mcpu;
        k = dt_sandbox_set_resources(e->sb, mem, mcpu, err);
        if (k >= 0) {
            plan.memory_bytes = mem;
            plan.cpu_millicpus = mcpu;
        }
    }
    if (k >= 0 && disk_gib && (uint64_t) disk_gib * GIB != plan.disk_bytes) {
        if ((uint64_t) disk_gib * GIB < plan.disk_bytes)
            k = dt_error_set(err, EINVAL, "sandbox '%s': the disk can only grow", id);
        else if (plan.disk_bytes == 0)
            k = dt_error_set(err, EINVAL, "sandbox '%s' has no disk quota to grow", id);
        else {
            k = dt_sandbox_resize_disk(e->sb, (uint64_t) disk_gib * GIB, err);
            /* -EPERM: the image grew, the filesystem grows at the next start (no
             * CAP_SYS_RESOURCE for an online resize here). */
            if (k == -EPERM && err && *err) {
                dt_error_free(*err);
                *err = NULL;
                k = 0;
            }
            if (k >= 0)
                plan.disk_bytes = (uint64_t) disk_gib * GIB;
        }
    }
    if (k >= 0)
        k = plan_save(dir, &plan, err);
    dt_plan_done(&plan);
    return k;
}

int
dt_runner_address(struct dt_runner *r, const char *id, char buf[16], struct dt_error **err)
{
    _cleanup_free_ char *dir = sandbox_dir(r, id);
    struct dt_plan plan;
    int k;

    if (!id_is_valid(id))
        return dt_error_set(err, ENOENT, "sandbox '%s' not found", id ? id : "");
    dt_plan_init(&plan);
    k = plan_load(dir, id, &plan, err);
    if (k >= 0 && plan.net_mode != DT_NET_BRIDGE)
        k = dt_error_set(err, ENETUNREACH, "sandbox '%s' has no network", id);
    if (k >= 0) {
        k = dt_runtime_slot_address(r->rt, plan.slot, buf);
        if (k < 0)
            k = dt_error_errno(err, k, "address of sandbox '%s'", id);
    }
    dt_plan_done(&plan);
    return k;
}

bool
dt_runner_has_plan(struct dt_runner *r, const char *id)
{
    struct stat st;

    if (!id_is_valid(id))
        return false;
    _cleanup_free_ char *plan = xasprintf("%s/%s/" PLAN_FILE, r->sandboxes_dir, id);
    return stat(plan, &st) == 0;
}

int
dt_runner_start(struct dt_runner *r, const struct dt_runner_spec *spec, struct dt_error **err)
{
    struct entry *e;
    bool fresh = false;
    int k;

    if (!id_is_valid(spec->id))
        return dt_error_set(err, EINVAL, "invalid sandbox id '%s'", spec->id ? spec->id : "");
    e = find_entry(r, spec->id);
    if (!e) {
        _cleanup_free_ char *dir = sandbox_dir(r, spec->id);
        struct stat st;
        _cleanup_free_ char *plan = xasprintf("%s/" PLAN_FILE, dir);
        if (stat(plan, &st) == 0)
            k = open_existing(r, spec->id, /* create= */ true, &e, err);
        else {
            k = create_new(r, spec, &e, err);
            fresh = true;
        }
        if (k < 0)
            return k;
    }
    if (dt_sandbox_is_running(e->sb)) {
        if (!e->watch) {
            /* Re-adopted: nothing to create, only watch it. */
            k = watch(r, e, err);
            if (k < 0)
                return k;
        }
        return 0;
    }
    k = start_agent(r, e, err);
    if (k < 0 && fresh) {
        /* Leave nothing behind of a sandbox that never ran: the caller may retry. */
        (void) dt_runner_destroy(r, spec->id, NULL);
    }
    return k;
}

/* The entry of ID, opening it when this runner has not yet (after a restart). */
static int
get_entry(struct dt_runner *r, const char *id, struct entry **ret, struct dt_error **err)
{
    if (!id_is_valid(id))
        return dt_error_set(err, ENOENT, "sandbox '%s' not found", id ? id : "");
    *ret = find_entry(r, id);
    if (*ret)
        return 0;
    return open_existing(r, id, /* create= */ false, ret, err);
}

int
dt_runner_stop(struct dt_runner *r, const char *id, bool force, struct dt_error **err)
{
    struct entry *e;
    int k = get_entry(r, id, &e, err);
    if (k < 0)
        return k;
    unwatch(e);
    k = dt_sandbox_stop(e->sb, force ? 0 : STOP_GRACE_USEC, err);
    if (k >= 0) {
        _cleanup_free_ char *sock = dt_runner_agent_socket(r, id);
        (void) unlink(sock);
    }
    return k;
}

int
dt_runner_destroy(struct dt_runner *r, const char *id, struct dt_error **err)
{
    struct entry *e;
    struct dt_error *lerr = NULL;
    int k;

    if (!id_is_valid(id))
        return 0;
    k = get_entry(r, id, &e, &lerr);
    if (k == -ENOENT) {
        /* No plan, or runtime state the runtime cannot open: a create cut short (kill -9
         * between its steps). What it left is a state directory (a never-started sandbox has
         * no mounts and no processes; its disk image is a plain file): remove it too. */
        _cleanup_free_ char *state = xasprintf("%s/runtime/%s", r->data_dir, id);
        dt_error_free(lerr);
        (void) rm_rf_at(AT_FDCWD, state);
    } else if (k < 0) {
        if (err && !*err)
            *err = lerr;
        else
            dt_error_free(lerr);
        return k;
    } else {
        unwatch(e);
        k = dt_sandbox_destroy(e->sb, err);
        if (k < 0)
            return k;
        entry_free(r, e); /* releases the slot */
    }
    _cleanup_free_ char *dir = sandbox_dir(r, id);
    k = rm_rf_at(AT_FDCWD, dir);
    if (k < 0)
        return dt_error_errno(err, k, "remove '%s'", dir);
    return 0;
}

bool
dt_runner_is_running(struct dt_runner *r, const char *id)
{
    struct entry *e = id ? find_entry(r, id) : NULL;
    return e && dt_sandbox_is_running(e->sb);
}

pid_t
dt_runner_pid(struct dt_runner *r, const char *id)
{
    struct entry *e = id ? find_entry(r, id) : NULL;
    return e ? dt_sandbox_pid(e->sb) : -ESRCH;
}
