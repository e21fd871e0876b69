/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox cgroups behind one interface (see cgroup.h): cgroup v2 is one directory per cgroup,
 * cgroup v1 is one directory per controller hierarchy, all kept in the same list so most code
 * just loops. docs/design/cgroups.md lists the files written and the failure modes. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/time-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define CG_READ_MAX          (4u << 20) /* cgroup.procs of a big cgroup; limits are far lower */
#define CG_NAME_MAX          128
#define CG_MAX_DEPTH         16 /* how deep kill/destroy recurse below a sandbox cgroup */
#define CG_FREEZE_TIMEOUT_MS 1000
#define CG_EMPTY_TIMEOUT_MS  2000
#define CG_POLL_MS           10
#define CG_DEFAULT_PERIOD    100000
#define CG_MIN_QUOTA         1000 /* the kernel rejects CFS quotas under 1 ms */

/* Controller bits. On v1 each hierarchy directory carries the bits of the controllers mounted
 * there; on v2 the single directory carries all of them. */
enum {
    CG_MEMORY = 1u << 0,
    CG_CPU = 1u << 1,
    CG_CPUACCT = 1u << 2,
    CG_PIDS = 1u << 3,
    CG_FREEZER = 1u << 4,
    CG_CPUSET = 1u << 5,
};
#define CG_N_CONTROLLERS 6
static const char *const v1_controller_names[CG_N_CONTROLLERS] = {
        "memory", "cpu", "cpuacct", "pids", "freezer", "cpuset",
};
/* cpuacct only feeds cpu_usage_usec and cpuset is only needed when a sandbox asks for one. */
#define CG_V1_REQUIRED (CG_MEMORY | CG_CPU | CG_PIDS | CG_FREEZER)

static const char *const v2_base_controllers[] = {"memory", "cpu", "pids", NULL};
static const char *const v2_cpuset_controllers[] = {"memory", "cpu", "pids", "cpuset", NULL};

struct cg_hier {
    unsigned mask;
    char *ctrls;    /* v1: "cpu,cpuacct" as in /proc/self/cgroup; v2: "" */
    char *self_dir; /* the directory of our own cgroup in this hierarchy */
};

struct dt_cgroup_manager {
    enum dt_cgroup_version version;
    char *subdir;
    bool self_is_root; /* v2: our cgroup is "/", exempt from the no-internal-process rule */
    size_t n_hier;
    struct cg_hier hier[CG_N_CONTROLLERS];
};

struct dt_cgroup {
    enum dt_cgroup_version version;
    char *name; /* for messages: "box" or "box/agent" */
    char *rel;  /* path below our own cgroup: "<subdir>/box[/agent]" */
    bool self_is_root;
    int fd; /* v2: the cgroup directory, for clone3(CLONE_INTO_CGROUP) */
    size_t n_hier;
    struct cg_hier hier[CG_N_CONTROLLERS];
    char *dir[CG_N_CONTROLLERS]; /* hier[i].self_dir + "/" + rel */
};

static bool
streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static char *
path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    if (!*b)
        return xstrndup(a, la);
    if (la == 1 && a[0] == '/')
        return xasprintf("/%s", b);
    return xasprintf("%.*s/%s", (int) la, a, b);
}

static char *
strip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

static bool
is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether WORD is one of the tokens of S separated by any of SEPS. A leading '+' on a token is
 * ignored, so "+memory +cpu" (what we write to subtree_control) and "memory cpu" (what the
 * kernel reads back) compare alike. */
static bool
tokens_contain(const char *s, const char *seps, const char *word)
{
    size_t wl = strlen(word);
    while (*s) {
        size_t n = strcspn(s, seps);
        const char *t = s;
        size_t tl = n;
        if (tl > 0 && *t == '+') {
            t++;
            tl--;
        }
        if (tl == wl && memcmp(t, word, wl) == 0)
            return true;
        s += n;
        if (*s)
            s++;
    }
    return false;
}

/* One path component of [A-Za-z0-9_.-], not "." or "..", at most 128 bytes. */
static bool
name_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > CG_NAME_MAX || streq(s, ".") || streq(s, ".."))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* --- Control-file I/O. Leaf helpers return -errno; cg_write() also names the file in *err. --- */

static int
cg_read(const char *dir, const char *file, char **ret)
{
    _cleanup_free_ char *p = path_join(dir, file);
    return read_file_at(AT_FDCWD, p, CG_READ_MAX, ret, NULL);
}

static bool
cg_exists(const char *dir, const char *file)
{
    _cleanup_free_ char *p = path_join(dir, file);
    return access(p, F_OK) == 0;
}

/* Control files take one value per write(2); write_string_at() does a single write for short
 * values. O_TRUNC is accepted (and ignored) by cgroupfs. */
static int
cg_write(const char *dir, const char *file, const char *value, struct dt_error **err)
{
    _cleanup_free_ char *p = path_join(dir, file);
    int r = write_string_at(AT_FDCWD, p, value);
    if (r < 0)
        return dt_error_errno(err, r, "write '%s' to '%s'", value, p);
    return 0;
}

/* "max" (v2) and "-1" (v1) mean no limit. */
static int
parse_limit(const char *s, uint64_t *ret)
{
    if (streq(s, "max") || streq(s, "-1")) {
        *ret = DT_CGROUP_UNLIMITED;
        return 0;
    }
    return parse_u64(s, ret);
}

static int
cg_read_u64(const char *dir, const char *file, uint64_t *ret)
{
    _cleanup_free_ char *buf = NULL;
    int r = cg_read(dir, file, &buf);
    if (r < 0)
        return r;
    return parse_limit(strip(buf), ret);
}

/* The value of the line "KEY N" of a flat-keyed file (memory.events, cpu.stat, cgroup.events,
 * memory.oom_control); -ENODATA when the key is absent (older kernels). */
static int
cg_read_key(const char *dir, const char *file, const char *key, uint64_t *ret)
{
    _cleanup_free_ char *buf = NULL;
    int r = cg_read(dir, file, &buf);
    if (r < 0)
        return r;
    size_t kl = strlen(key);
    char *line = buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            return parse_u64(strip(line + kl + 1), ret);
        line = nl ? nl + 1 : NULL;
    }
    return -ENODATA;
}

static char *
fmt_limit(char buf[static DECIMAL_STR_MAX(uint64_t)], uint64_t v, const char *unlimited)
{
    if (v == DT_CGROUP_UNLIMITED)
        snprintf(buf, DECIMAL_STR_MAX(uint64_t), "%s", unlimited);
    else
        fmt_u64(buf, v);
    return buf;
}

/* Names of the subdirectories of DIR (a new strv, possibly NULL when there are none). */
static int
list_subdirs(const char *dir, char ***ret)
{
    DIR *d = opendir(dir); /* glibc opens it O_CLOEXEC */
    if (!d)
        return -errno;
    char **v = NULL;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        bool sub = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            sub = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                  S_ISDIR(st.st_mode);
        }
        if (sub)
            strv_push(&v, de->d_name);
        errno = 0;
    }
    int r = errno ? -errno : 0;
    closedir(d);
    if (r < 0) {
        strv_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

/* Append the pids in DIR/cgroup.procs and in every cgroup below DIR to *PIDS. */
static int
collect_pids(const char *dir, unsigned depth, pid_t **pids, size_t *n)
{
    _cleanup_free_ char *buf = NULL;
    int r = cg_read(dir, "cgroup.procs", &buf);
    if (r < 0)
        return r;
    char *line = buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        uint64_t v;
        if (parse_u64(strip(line), &v) == 0 && v > 0 && v <= INT32_MAX) {
            *pids = xreallocarray(*pids, *n + 1, sizeof(pid_t));
            (*pids)[(*n)++] = (pid_t) v;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (depth >= CG_MAX_DEPTH)
        return 0;
    _cleanup_strv_free_ char **subs = NULL;
    r = list_subdirs(dir, &subs);
    if (r < 0)
        return r;
    for (char **s = subs; s && *s; s++) {
        _cleanup_free_ char *p = path_join(dir, *s);
        r = collect_pids(p, depth + 1, pids, n);
        if (r < 0 && r != -ENOENT) /* a child removed under us is fine */
            return r;
    }
    return 0;
}

/* Sum of the "oom_kill" counts of DIR and every cgroup below it. v1 counts an OOM kill only in
 * the victim's own memory cgroup (no propagation to ancestors, unlike v2's memory.events), so a
 * sandbox with child cgroups needs the sum. Kernels before 4.13 have no such line: 0. */
static int
v1_sum_oom_kills(const char *dir, unsigned depth, uint64_t *sum)
{
    uint64_t v = 0;
    int r = cg_read_key(dir, "memory.oom_control", "oom_kill", &v);
    if (r < 0 && r != -ENODATA)
        return r;
    *sum += v;
    if (depth >= CG_MAX_DEPTH)
        return 0;
    _cleanup_strv_free_ char **subs = NULL;
    r = list_subdirs(dir, &subs);
    if (r < 0)
        return r;
    for (char **s = subs; s && *s; s++) {
        _cleanup_free_ char *p = path_join(dir, *s);
        r = v1_sum_oom_kills(p, depth + 1, sum);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    return 0;
}

/* rmdir DIR after its child cgroups (a cgroup with children cannot be removed). EBUSY is retried
 * until DEADLINE: a killed process leaves its cgroup only once it has fully exited. */
static int
rmdir_tree(const char *dir, unsigned depth, uint64_t deadline, struct dt_error **err)
{
    _cleanup_strv_free_ char **subs = NULL;
    int r = list_subdirs(dir, &subs);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return dt_error_errno(err, r, "list '%s'", dir);
    if (depth < CG_MAX_DEPTH)
        for (char **s = subs; s && *s; s++) {
            _cleanup_free_ char *p = path_join(dir, *s);
            r = rmdir_tree(p, depth + 1, deadline, err);
            if (r < 0)
                return r;
        }
    for (;;) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || now_msec() >= deadline)
            return dt_error_errno(err, errno, "remove '%s'", dir);
        sleep_msec(CG_POLL_MS);
    }
}

/* --- Finding our own cgroup. --- */

/* Find in the /proc/self/cgroup text BUF the line "ID:CTRLS:PATH" whose CTRLS lists CTRL (or,
 * for CTRL "", the cgroup2 line "0::PATH"). Returns 0 with new strings, or -ENOENT. */
static int
self_find(const char *buf, const char *ctrl, char **ret_ctrls, char **ret_path)
{
    const char *line = buf;
    while (*line) {
        const char *end = strchrnul(line, '\n');
        const char *c1 = memchr(line, ':', (size_t) (end - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t) (end - c1 - 1)) : NULL;
        if (c2) {
            _cleanup_free_ char *ctrls = xstrndup(c1 + 1, (size_t) (c2 - c1 - 1));
            bool match = *ctrl ? tokens_contain(ctrls, ",", ctrl)
                               : (!*ctrls && c1 - line == 1 && line[0] == '0');
            if (match) {
                *ret_path = xstrndup(c2 + 1, (size_t) (end - c2 - 1));
                *ret_ctrls = TAKE_PTR(ctrls);
                return 0;
            }
        }
        line = *end ? end + 1 : end;
    }
    return -ENOENT;
}

static void
hier_clear(struct cg_hier *h)
{
    free(h->ctrls);
    free(h->self_dir);
    h->ctrls = h->self_dir = NULL;
}

void
dt_cgroup_manager_free(struct dt_cgroup_manager *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_hier; i++)
        hier_clear(&m->hier[i]);
    free(m->subdir);
    free(m);
}

static void
dt_cgroup_manager_freep(struct dt_cgroup_manager **m)
{
    dt_cgroup_manager_free(*m);
}

enum dt_cgroup_version
dt_cgroup_manager_version(const struct dt_cgroup_manager *m)
{
    return m->version;
}

/* --- cgroup v2 helpers. --- */

static int
v2_busy_error(const char *dir, bool ours, struct dt_error **err)
{
    if (ours)
        return dt_error_set(err, EBUSY,
                            "cannot enable controllers in our own cgroup '%s': it holds processes, "
                            "which cgroup v2 forbids for a cgroup with controllers enabled below "
                            "it (no-internal-process rule); daytonad must run in a delegated "
                            "cgroup whose processes sit in a leaf child cgroup",
                            dir);
    return dt_error_set(err, EBUSY,
                        "cannot enable controllers in '%s': it holds processes (cgroup v2 "
                        "no-internal-process rule); put its processes into leaf child cgroups",
                        dir);
}

/* Enable the controllers WANT in DIR/cgroup.subtree_control so that DIR's children get them.
 * Unavailable controllers are an -ENOTSUP error, or skipped with SKIP_UNAVAILABLE. Nothing is
 * written when all are enabled already. OURS: DIR is our own cgroup (for the message);
 * CHECK_PROCS: look for processes first, to report the no-internal-process rule clearly (the
 * root cgroup is exempt from it). */
static int
v2_enable(const char *dir, const char *const *want, bool skip_unavailable, bool check_procs,
          bool ours, struct dt_error **err)
{
    _cleanup_free_ char *avail = NULL, *enabled = NULL, *value = NULL;
    int r;

    r = cg_read(dir, "cgroup.controllers", &avail);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/cgroup.controllers'", dir);
    r = cg_read(dir, "cgroup.subtree_control", &enabled);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/cgroup.subtree_control'", dir);

    bool missing = false;
    for (const char *const *w = want; *w; w++) {
        if (!tokens_contain(avail, " \n", *w)) {
            if (skip_unavailable)
                continue;
            return dt_error_set(err, ENOTSUP,
                                "cgroup v2 controller '%s' is not available in '%s' (not enabled "
                                "in its parent's cgroup.subtree_control, i.e. not delegated to us)",
                                *w, dir);
        }
        if (!tokens_contain(enabled, " \n", *w))
            missing = true;
        /* Write every wanted controller, not just the missing ones: enabling an enabled
         * controller is a no-op for the kernel. */
        char *nv = value ? xasprintf("%s +%s", value, *w) : xasprintf("+%s", *w);
        free(value);
        value = nv;
    }
    if (!missing)
        return 0;

    if (check_procs) {
        _cleanup_free_ char *procs = NULL;
        r = cg_read(dir, "cgroup.procs", &procs);
        if (r < 0)
            return dt_error_errno(err, r, "read '%s/cgroup.procs'", dir);
        if (*strip(procs))
            return v2_busy_error(dir, ours, err);
    }
    _cleanup_free_ char *p = path_join(dir, "cgroup.subtree_control");
    r = write_string_at(AT_FDCWD, p, value);
    if (r == -EBUSY)
        return v2_busy_error(dir, ours, err);
    if (r < 0)
        return dt_error_errno(err, r, "write '%s' to '%s'", value, p);
    return 0;
}

/* Enable WANT in every cgroup from our own down to the parent of CG (whose REL need not exist
 * yet): each level's subtree_control decides what the level below gets. */
static int
v2_enable_chain(const struct dt_cgroup *cg, const char *const *want, struct dt_error **err)
{
    _cleanup_free_ char *dir = xstrdup(cg->hier[0].self_dir);
    const char *p = cg->rel;
    bool ours = true;
    for (;;) {
        int r = v2_enable(dir, want, /* skip_unavailable= */ false,
                          /* check_procs= */ !(ours && cg->self_is_root), ours, err);
        if (r < 0)
            return r;
        const char *slash = strchr(p, '/');
        if (!slash)
            return 0;
        char *next = xasprintf("%s/%.*s", dir, (int) (slash - p), p);
        free(dir);
        dir = next;
        p = slash + 1;
        ours = false;
    }
}

static int
manager_init_v2(struct dt_cgroup_manager *m, const char *mount_root, const char *self_cgroup,
                const char *self_buf, struct dt_error **err)
{
    _cleanup_free_ char *ctrls = NULL, *path = NULL, *self_dir = NULL, *sub = NULL;
    _cleanup_free_ char *avail = NULL;
    int r;

    if (self_find(self_buf, "", &ctrls, &path) < 0)
        return dt_error_set(err, ENOENT, "no cgroup v2 line \"0::/path\" in '%s'", self_cgroup);
    self_dir = path_join(mount_root, path);
    if (!is_dir(self_dir))
        return dt_error_set(err, ENOENT, "our cgroup '%s' does not exist", self_dir);
    m->self_is_root = streq(path, "/");

    r = v2_enable(self_dir, v2_base_controllers, false, !m->self_is_root, /* ours= */ true, err);
    if (r < 0)
        return r;
    sub = path_join(self_dir, m->subdir);
    if (mkdir(sub, 0755) < 0 && errno != EEXIST)
        return dt_error_errno(err, errno, "create '%s'", sub);
    r = v2_enable(sub, v2_base_controllers, false, /* check_procs= */ true, false, err);
    if (r < 0)
        return r;

    m->n_hier = 1;
    m->hier[0].mask = CG_MEMORY | CG_CPU | CG_CPUACCT | CG_PIDS | CG_FREEZER;
    r = cg_read(self_dir, "cgroup.controllers", &avail);
    if (r >= 0 && tokens_contain(avail, " \n", "cpuset"))
        m->hier[0].mask |= CG_CPUSET;
    m->hier[0].ctrls = xstrdup("");
    m->hier[0].self_dir = TAKE_PTR(self_dir);
    m->version = DT_CGROUP_V2;
    return 0;
}

/* --- cgroup v1 helpers. --- */

/* v1 cpuset cgroups start with empty cpuset.cpus/cpuset.mems and refuse tasks until both are
 * set (unless the rarely used cgroup.clone_children is on), so copy the parent's. ONLY_IF_EMPTY
 * keeps a value someone set already. */
static int
v1_cpuset_inherit(const char *dir, const char *parent, const char *file, bool only_if_empty,
                  struct dt_error **err)
{
    _cleanup_free_ char *cur = NULL, *val = NULL;
    int r;
    if (only_if_empty) {
        r = cg_read(dir, file, &cur);
        if (r < 0)
            return dt_error_errno(err, r, "read '%s/%s'", dir, file);
        if (*strip(cur))
            return 0;
    }
    r = cg_read(parent, file, &val);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/%s'", parent, file);
    if (!*strip(val))
        return 0;
    return cg_write(dir, file, val, err);
}

/* Prepare a new v1 directory DIR below PARENT for the controllers in MASK. */
static int
v1_init_dir(const char *dir, const char *parent, unsigned mask, struct dt_error **err)
{
    int r;
    if (mask & CG_CPUSET) {
        r = v1_cpuset_inherit(dir, parent, "cpuset.mems", true, err);
        if (r < 0)
            return r;
        r = v1_cpuset_inherit(dir, parent, "cpuset.cpus", true, err);
        if (r < 0)
            return r;
    }
    /* Without use_hierarchy (always on in current kernels, off by default in old ones), a
     * memory cgroup's limit would not cover its children. It can only be switched on before
     * children exist. */
    if ((mask & CG_MEMORY) && cg_exists(dir, "memory.use_hierarchy")) {
        _cleanup_free_ char *v = NULL;
        r = cg_read(dir, "memory.use_hierarchy", &v);
        if (r < 0)
            return dt_error_errno(err, r, "read '%s/memory.use_hierarchy'", dir);
        if (streq(strip(v), "0")) {
            r = cg_write(dir, "memory.use_hierarchy", "1", err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int
manager_init_v1(struct dt_cgroup_manager *m, const char *mount_root, const char *self_cgroup,
                const char *self_buf, struct dt_error **err)
{
    int r;

    for (unsigned i = 0; i < CG_N_CONTROLLERS; i++) {
        const char *ctrl = v1_controller_names[i];
        unsigned bit = 1u << i;
        bool required = bit & CG_V1_REQUIRED;
        _cleanup_free_ char *ctrls = NULL, *path = NULL, *mnt = NULL;

        if (self_find(self_buf, ctrl, &ctrls, &path) < 0) {
            if (!required)
                continue;
            return dt_error_set(err, ENOTSUP,
                                "cgroup v1 controller '%s' is not mounted (not in '%s')", ctrl,
                                self_cgroup);
        }
        /* Co-mounted controllers ("cpu,cpuacct") share one hierarchy, hence one directory. */
        bool seen = false;
        for (size_t h = 0; h < m->n_hier; h++)
            if (streq(m->hier[h].ctrls, ctrls)) {
                m->hier[h].mask |= bit;
                seen = true;
            }
        if (seen)
            continue;

        /* The mount is usually MOUNT_ROOT/<ctrl> (for co-mounts a symlink to "cpu,cpuacct"),
         * else the directory named after the whole list. */
        mnt = path_join(mount_root, ctrl);
        if (!is_dir(mnt)) {
            free(mnt);
            mnt = path_join(mount_root, ctrls);
            if (!is_dir(mnt)) {
                if (!required)
                    continue;
                return dt_error_set(err, ENOENT, "cgroup v1 hierarchy '%s' not found under '%s'",
                                    ctrls, mount_root);
            }
        }
        struct cg_hier *h = &m->hier[m->n_hier];
        h->self_dir = path_join(mnt, path);
        h->ctrls = TAKE_PTR(ctrls);
        h->mask = bit;
        m->n_hier++;
        if (!is_dir(h->self_dir))
            return dt_error_set(err, ENOENT, "our cgroup '%s' does not exist", h->self_dir);
    }

    for (size_t h = 0; h < m->n_hier; h++) {
        _cleanup_free_ char *sub = path_join(m->hier[h].self_dir, m->subdir);
        if (mkdir(sub, 0755) < 0) {
            if (errno != EEXIST)
                return dt_error_errno(err, errno, "create '%s'", sub);
        }
        r = v1_init_dir(sub, m->hier[h].self_dir, m->hier[h].mask, err);
        if (r < 0)
            return r;
    }
    m->version = DT_CGROUP_V1;
    return 0;
}

int
dt_cgroup_manager_new(const char *mount_root, const char *self_cgroup, const char *subdir,
                      struct dt_cgroup_manager **ret, struct dt_error **err)
{
    _cleanup_(dt_cgroup_manager_freep) struct dt_cgroup_manager *m = NULL;
    _cleanup_free_ char *self_buf = NULL, *root_ctrls = NULL, *ctrls = NULL, *path = NULL;
    int r;

    if (!name_valid(subdir))
        return dt_error_set(err, EINVAL, "invalid cgroup subdirectory name '%s'",
                            subdir ? subdir : "(null)");
    r = read_file_at(AT_FDCWD, self_cgroup, CG_READ_MAX, &self_buf, NULL);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s'", self_cgroup);

    m = xcalloc(1, sizeof(*m));
    m->subdir = xstrdup(subdir);

    /* Pure v2: the root of the mount lists the controllers. A hybrid layout mounts an empty
     * cgroup2 at MOUNT_ROOT/unified (MOUNT_ROOT itself being a tmpfs) and counts as v1. */
    r = cg_read(mount_root, "cgroup.controllers", &root_ctrls);
    bool v2_ok = r >= 0;
    for (const char *const *w = v2_base_controllers; v2_ok && *w; w++)
        v2_ok = tokens_contain(root_ctrls, " \n", *w);
    if (v2_ok)
        r = manager_init_v2(m, mount_root, self_cgroup, self_buf, err);
    else if (self_find(self_buf, "memory", &ctrls, &path) == 0)
        r = manager_init_v1(m, mount_root, self_cgroup, self_buf, err);
    else if (root_ctrls)
        r = dt_error_set(err, ENOTSUP,
                         "cgroup v2 at '%s' has controllers '%s', not memory cpu pids, and "
                         "there is no cgroup v1 memory controller",
                         mount_root, strip(root_ctrls));
    else
        r = dt_error_set(err, ENOENT,
                         "no cgroup v2 and no cgroup v1 memory controller (under '%s', per '%s')",
                         mount_root, self_cgroup);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(m);
    return 0;
}

/* --- Handles. --- */

void
dt_cgroup_free(struct dt_cgroup *cg)
{
    if (!cg)
        return;
    for (size_t i = 0; i < cg->n_hier; i++) {
        hier_clear(&cg->hier[i]);
        free(cg->dir[i]);
    }
    safe_close(cg->fd);
    free(cg->name);
    free(cg->rel);
    free(cg);
}

static struct dt_cgroup *
cgroup_new(enum dt_cgroup_version version, const struct cg_hier *hier, size_t n_hier,
           bool self_is_root, const char *name, const char *rel)
{
    struct dt_cgroup *cg = xcalloc(1, sizeof(*cg));
    cg->version = version;
    cg->fd = -EBADF;
    cg->self_is_root = self_is_root;
    cg->name = xstrdup(name);
    cg->rel = xstrdup(rel);
    cg->n_hier = n_hier;
    for (size_t i = 0; i < n_hier; i++) {
        cg->hier[i].mask = hier[i].mask;
        cg->hier[i].ctrls = xstrdup(hier[i].ctrls);
        cg->hier[i].self_dir = xstrdup(hier[i].self_dir);
        cg->dir[i] = path_join(hier[i].self_dir, rel);
    }
    return cg;
}

/* The directory holding controller CTRL's files, or NULL when that controller is unavailable. */
static const char *
cg_dir_for(const struct dt_cgroup *cg, unsigned ctrl)
{
    for (size_t i = 0; i < cg->n_hier; i++)
        if (cg->hier[i].mask & ctrl)
            return cg->dir[i];
    return NULL;
}

static char *
parent_dir(const char *dir)
{
    const char *slash = strrchr(dir, '/');
    return slash && slash != dir ? xstrndup(dir, (size_t) (slash - dir)) : xstrdup("/");
}

static int
v2_open_fd(struct dt_cgroup *cg, struct dt_error **err)
{
    if (cg->version != DT_CGROUP_V2)
        return 0;
    cg->fd = open(cg->dir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg->fd < 0)
        return dt_error_errno(err, errno, "open '%s'", cg->dir[0]);
    return 0;
}

static int
validate_limits(const struct dt_cgroup_limits *l, struct dt_error **err)
{
    uint64_t period = l->cpu_period_usec ? l->cpu_period_usec : CG_DEFAULT_PERIOD;
    uint64_t q;
    if (period < 1000 || period > 1000000)
        return dt_error_set(err, EINVAL, "cpu period %llu us out of range 1000-1000000",
                            (unsigned long long) period);
    if (l->cpu_millicpus == 0)
        return dt_error_set(err, EINVAL, "cpu limit of 0 millicpus");
    if (l->cpu_millicpus != DT_CGROUP_UNLIMITED &&
        __builtin_mul_overflow(l->cpu_millicpus, period, &q))
        return dt_error_set(err, EINVAL, "cpu limit of %llu millicpus too large",
                            (unsigned long long) l->cpu_millicpus);
    const char *end = memchr(l->cpuset_cpus, 0, sizeof(l->cpuset_cpus));
    if (!end)
        return dt_error_set(err, EINVAL, "cpuset is not NUL-terminated");
    for (const char *p = l->cpuset_cpus; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == ',' || *p == '-'))
            return dt_error_set(err, EINVAL, "invalid cpuset '%s'", l->cpuset_cpus);
    return 0;
}

static uint64_t
cpu_quota(const struct dt_cgroup_limits *l, uint64_t period)
{
    if (l->cpu_millicpus == DT_CGROUP_UNLIMITED)
        return DT_CGROUP_UNLIMITED;
    uint64_t q = l->cpu_millicpus * period / 1000; /* overflow ruled out by validate_limits() */
    return q < CG_MIN_QUOTA ? CG_MIN_QUOTA : q;
}

/* v1 memory: memory.memsw.limit_in_bytes (memory + swap) must never be below
 * memory.limit_in_bytes, or the write fails with EINVAL. So when raising the memory limit,
 * raise memsw first; when lowering, lower memory first. memsw exists only with swap
 * accounting; without it swap cannot be limited and is left alone. */
static int
v1_set_memory(const char *dir, const struct dt_cgroup_limits *l, struct dt_error **err)
{
    char mem[DECIMAL_STR_MAX(uint64_t)], memsw[DECIMAL_STR_MAX(uint64_t)];
    uint64_t sum = DT_CGROUP_UNLIMITED, cur;
    int r;

    if (l->memory_max_bytes != DT_CGROUP_UNLIMITED &&
        l->memory_swap_max_bytes != DT_CGROUP_UNLIMITED &&
        __builtin_add_overflow(l->memory_max_bytes, l->memory_swap_max_bytes, &sum))
        sum = DT_CGROUP_UNLIMITED;
    fmt_limit(mem, l->memory_max_bytes, "-1");
    fmt_limit(memsw, sum, "-1");

    if (!cg_exists(dir, "memory.memsw.limit_in_bytes"))
        return cg_write(dir, "memory.limit_in_bytes", mem, err);

    r = cg_read_u64(dir, "memory.limit_in_bytes", &cur);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/memory.limit_in_bytes'", dir);
    /* The kernel reports "unlimited" as a page-rounded LONG_MAX; any value we write is below. */
    bool raising = l->memory_max_bytes > cur;
    if (raising) {
        r = cg_write(dir, "memory.memsw.limit_in_bytes", memsw, err);
        if (r < 0)
            return r;
        return cg_write(dir, "memory.limit_in_bytes", mem, err);
    }
    r = cg_write(dir, "memory.limit_in_bytes", mem, err);
    if (r < 0)
        return r;
    return cg_write(dir, "memory.memsw.limit_in_bytes", memsw, err);
}

static int
apply_limits_v1(struct dt_cgroup *cg, const struct dt_cgroup_limits *l, struct dt_error **err)
{
    char buf[DECIMAL_STR_MAX(uint64_t)];
    const char *dir;
    int r;

    dir = cg_dir_for(cg, CG_MEMORY);
    r = v1_set_memory(dir, l, err);
    if (r < 0)
        return r;

    /* Period first: the quota is checked against the period in force. */
    dir = cg_dir_for(cg, CG_CPU);
    uint64_t period = l->cpu_period_usec ? l->cpu_period_usec : CG_DEFAULT_PERIOD;
    r = cg_write(dir, "cpu.cfs_period_us", fmt_u64(buf, period), err);
    if (r < 0)
        return r;
    r = cg_write(dir, "cpu.cfs_quota_us", fmt_limit(buf, cpu_quota(l, period), "-1"), err);
    if (r < 0)
        return r;

    r = cg_write(cg_dir_for(cg, CG_PIDS), "pids.max", fmt_limit(buf, l->pids_max, "max"), err);
    if (r < 0)
        return r;

    dir = cg_dir_for(cg, CG_CPUSET);
    if (!dir) {
        if (l->cpuset_cpus[0])
            return dt_error_set(err, ENOTSUP,
                                "cpuset '%s' requested but the v1 cpuset controller is missing",
                                l->cpuset_cpus);
        return 0;
    }
    if (l->cpuset_cpus[0])
        return cg_write(dir, "cpuset.cpus", l->cpuset_cpus, err);
    /* "Inherit" on v1 means a copy of the parent's list. */
    _cleanup_free_ char *parent = parent_dir(dir);
    return v1_cpuset_inherit(dir, parent, "cpuset.cpus", false, err);
}

static int
apply_limits_v2(struct dt_cgroup *cg, const struct dt_cgroup_limits *l, struct dt_error **err)
{
    char buf[DECIMAL_STR_MAX(uint64_t)], cpu[2 * DECIMAL_STR_MAX(uint64_t) + 1];
    const char *dir = cg->dir[0];
    int r;

    r = cg_write(dir, "memory.max", fmt_limit(buf, l->memory_max_bytes, "max"), err);
    if (r < 0)
        return r;
    /* memory.swap.max exists only with swap accounting (CONFIG_SWAP/CONFIG_MEMCG_SWAP); without
     * it swap cannot be limited, so it is left alone. */
    if (cg_exists(dir, "memory.swap.max")) {
        r = cg_write(dir, "memory.swap.max", fmt_limit(buf, l->memory_swap_max_bytes, "max"), err);
        if (r < 0)
            return r;
    }

    uint64_t period = l->cpu_period_usec ? l->cpu_period_usec : CG_DEFAULT_PERIOD;
    char pbuf[DECIMAL_STR_MAX(uint64_t)];
    snprintf(cpu, sizeof(cpu), "%s %s", fmt_limit(buf, cpu_quota(l, period), "max"),
             fmt_u64(pbuf, period));
    r = cg_write(dir, "cpu.max", cpu, err);
    if (r < 0)
        return r;

    r = cg_write(dir, "pids.max", fmt_limit(buf, l->pids_max, "max"), err);
    if (r < 0)
        return r;

    if (l->cpuset_cpus[0]) {
        if (!cg_exists(dir, "cpuset.cpus")) {
            r = v2_enable_chain(cg, v2_cpuset_controllers, err);
            if (r < 0)
                return r;
        }
        return cg_write(dir, "cpuset.cpus", l->cpuset_cpus, err);
    }
    /* On v2 an empty cpuset.cpus means "the parent's". */
    if (cg_exists(dir, "cpuset.cpus"))
        return cg_write(dir, "cpuset.cpus", "", err);
    return 0;
}

static int
apply_limits(struct dt_cgroup *cg, const struct dt_cgroup_limits *l, struct dt_error **err)
{
    int r = validate_limits(l, err);
    if (r < 0)
        return r;
    return cg->version == DT_CGROUP_V2 ? apply_limits_v2(cg, l, err) : apply_limits_v1(cg, l, err);
}

/* Remove the directories of CG that CREATED marks, children-free by construction. */
static void
rollback_dirs(struct dt_cgroup *cg, const bool *created)
{
    for (size_t i = cg->n_hier; i-- > 0;)
        if (created[i])
            (void) rmdir(cg->dir[i]);
}

/* mkdir CG's directory in every hierarchy, then initialise v1 ones. With OPEN_EXISTING, an
 * existing directory is used as is; otherwise it is -EEXIST. On failure, only directories made
 * here are removed. */
static int
make_dirs(struct dt_cgroup *cg, bool open_existing, struct dt_error **err)
{
    bool created[CG_N_CONTROLLERS] = {false};
    int r = 0;

    for (size_t i = 0; i < cg->n_hier && r >= 0; i++) {
        if (mkdir(cg->dir[i], 0755) == 0)
            created[i] = true;
        else if (errno == EEXIST && !open_existing)
            r = dt_error_set(err, EEXIST, "cgroup '%s' already exists ('%s')", cg->name,
                             cg->dir[i]);
        else if (errno != EEXIST)
            r = dt_error_errno(err, errno, "create '%s'", cg->dir[i]);
    }
    for (size_t i = 0; i < cg->n_hier && r >= 0; i++)
        if (created[i] && cg->version == DT_CGROUP_V1) {
            _cleanup_free_ char *parent = parent_dir(cg->dir[i]);
            r = v1_init_dir(cg->dir[i], parent, cg->hier[i].mask, err);
        }
    if (r >= 0)
        r = v2_open_fd(cg, err);
    if (r < 0)
        rollback_dirs(cg, created);
    return r;
}

int
dt_cgroup_create(struct dt_cgroup_manager *m, const char *name,
                 const struct dt_cgroup_limits *limits, struct dt_cgroup **ret,
                 struct dt_error **err)
{
    _cleanup_(dt_cgroup_freep) struct dt_cgroup *cg = NULL;
    _cleanup_free_ char *rel = NULL;
    int r;

    if (!name_valid(name))
        return dt_error_set(err, EINVAL, "invalid cgroup name '%s'", name ? name : "(null)");
    r = validate_limits(limits, err);
    if (r < 0)
        return dt_error_wrap(err, "create cgroup '%s'", name);

    rel = path_join(m->subdir, name);
    cg = cgroup_new(m->version, m->hier, m->n_hier, m->self_is_root, name, rel);

    /* v2 cpuset is enabled on demand, before mkdir, so the new directory gets its files. */
    if (m->version == DT_CGROUP_V2 && limits->cpuset_cpus[0]) {
        r = v2_enable_chain(cg, v2_cpuset_controllers, err);
        if (r < 0)
            return dt_error_wrap(err, "create cgroup '%s'", name);
    }
    r = make_dirs(cg, /* open_existing= */ false, err);
    if (r == -EEXIST)
        return r;
    if (r < 0)
        return dt_error_wrap(err, "create cgroup '%s'", name);

    r = apply_limits(cg, limits, err);
    if (r < 0) {
        bool all[CG_N_CONTROLLERS] = {true, true, true, true, true, true};
        rollback_dirs(cg, all);
        return dt_error_wrap(err, "set limits of cgroup '%s'", name);
    }
    *ret = TAKE_PTR(cg);
    return 0;
}

int
dt_cgroup_open(struct dt_cgroup_manager *m, const char *name, struct dt_cgroup **ret,
               struct dt_error **err)
{
    _cleanup_(dt_cgroup_freep) struct dt_cgroup *cg = NULL;
    _cleanup_free_ char *rel = NULL;

    if (!name_valid(name))
        return dt_error_set(err, EINVAL, "invalid cgroup name '%s'", name ? name : "(null)");
    rel = path_join(m->subdir, name);
    cg = cgroup_new(m->version, m->hier, m->n_hier, m->self_is_root, name, rel);
    for (size_t i = 0; i < cg->n_hier; i++)
        if (!is_dir(cg->dir[i]))
            return dt_error_set(err, ENOENT, "cgroup '%s' not found ('%s' is missing)", name,
                                cg->dir[i]);
    int r = v2_open_fd(cg, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(cg);
    return 0;
}

int
dt_cgroup_create_child(struct dt_cgroup *cg, const char *child, struct dt_cgroup **ret,
                       struct dt_error **err)
{
    _cleanup_(dt_cgroup_freep) struct dt_cgroup *c = NULL;
    _cleanup_free_ char *rel = NULL, *name = NULL;
    int r;

    if (!name_valid(child))
        return dt_error_set(err, EINVAL, "invalid cgroup name '%s'", child ? child : "(null)");
    rel = path_join(cg->rel, child);
    name = path_join(cg->name, child);
    c = cgroup_new(cg->version, cg->hier, cg->n_hier, cg->self_is_root, name, rel);
    if (cg->version == DT_CGROUP_V2) {
        /* Pass down whatever CG itself got (cpuset only when it was enabled for CG). */
        r = v2_enable(cg->dir[0], v2_cpuset_controllers, /* skip_unavailable= */ true,
                      /* check_procs= */ true, /* ours= */ false, err);
        if (r < 0)
            return dt_error_wrap(err, "create cgroup '%s'", name);
    }
    r = make_dirs(c, /* open_existing= */ true, err);
    if (r < 0)
        return dt_error_wrap(err, "create cgroup '%s'", name);
    *ret = TAKE_PTR(c);
    return 0;
}

int
dt_cgroup_set_cpus(struct dt_cgroup *cg, const char *cpus, struct dt_error **err)
{
    const char *dir = cg->version == DT_CGROUP_V2 ? cg->dir[0] : cg_dir_for(cg, CG_CPUSET);
    int r;

    if (!dir || !cg_exists(dir, "cpuset.cpus"))
        return 0; /* no cpuset here: nothing to keep in step */
    r = cg_write(dir, "cpuset.cpus", cpus, err);
    if (r < 0)
        return dt_error_wrap(err, "set the CPUs of cgroup '%s'", cg->name);
    return 0;
}

int
dt_cgroup_set_limits(struct dt_cgroup *cg, const struct dt_cgroup_limits *limits,
                     struct dt_error **err)
{
    int r = apply_limits(cg, limits, err);
    if (r < 0)
        return dt_error_wrap(err, "set limits of cgroup '%s'", cg->name);
    return 0;
}

int
dt_cgroup_attach(struct dt_cgroup *cg, pid_t pid, struct dt_error **err)
{
    char buf[DECIMAL_STR_MAX(pid_t)];
    if (pid <= 0)
        return dt_error_set(err, EINVAL, "attach invalid pid %d to cgroup '%s'", (int) pid,
                            cg->name);
    fmt_u64(buf, (unsigned long long) pid);
    /* Writing to cgroup.procs moves the whole thread group. */
    for (size_t i = 0; i < cg->n_hier; i++) {
        int r = cg_write(cg->dir[i], "cgroup.procs", buf, err);
        if (r < 0)
            return dt_error_wrap(err, "attach pid %d to cgroup '%s'", (int) pid, cg->name);
    }
    return 0;
}

int
dt_cgroup_fd(struct dt_cgroup *cg)
{
    if (cg->version != DT_CGROUP_V2)
        return -EOPNOTSUPP;
    return cg->fd;
}

static int
freeze_impl(struct dt_cgroup *cg, bool frozen, struct dt_error **err)
{
    bool v2 = cg->version == DT_CGROUP_V2;
    const char *dir = v2 ? cg->dir[0] : cg_dir_for(cg, CG_FREEZER);
    const char *want = frozen ? "FROZEN" : "THAWED";
    int r;

    r = v2 ? cg_write(dir, "cgroup.freeze", frozen ? "1" : "0", err)
           : cg_write(dir, "freezer.state", want, err);
    if (r < 0)
        return r;

    /* The write only starts the transition: v1 reports FREEZING until every task is frozen,
     * v2 flips "frozen" in cgroup.events once done. */
    uint64_t deadline = now_msec() + CG_FREEZE_TIMEOUT_MS;
    for (;;) {
        _cleanup_free_ char *state = NULL;
        bool done;
        if (v2) {
            uint64_t v;
            r = cg_read_key(dir, "cgroup.events", "frozen", &v);
            if (r < 0)
                return dt_error_errno(err, r, "read '%s/cgroup.events'", dir);
            done = v == (frozen ? 1 : 0);
        } else {
            r = cg_read(dir, "freezer.state", &state);
            if (r < 0)
                return dt_error_errno(err, r, "read '%s/freezer.state'", dir);
            done = streq(strip(state), want);
        }
        if (done)
            return 0;
        if (now_msec() >= deadline)
            return dt_error_set(err, ETIMEDOUT, "cgroup '%s' did not become %s within %d ms",
                                cg->name, frozen ? "frozen" : "thawed", CG_FREEZE_TIMEOUT_MS);
        sleep_msec(CG_POLL_MS);
    }
}

int
dt_cgroup_freeze(struct dt_cgroup *cg, bool frozen, struct dt_error **err)
{
    int r = freeze_impl(cg, frozen, err);
    if (r < 0)
        return dt_error_wrap(err, "%s cgroup '%s'", frozen ? "freeze" : "thaw", cg->name);
    return 0;
}

int
dt_cgroup_kill(struct dt_cgroup *cg, struct dt_error **err)
{
    int r;

    if (cg->version == DT_CGROUP_V2 && cg_exists(cg->dir[0], "cgroup.kill")) {
        /* Linux >= 5.14: atomic and recursive, no race with fork. */
        r = cg_write(cg->dir[0], "cgroup.kill", "1", err);
        if (r < 0)
            return dt_error_wrap(err, "kill cgroup '%s'", cg->name);
        return 0;
    }

    /* Freeze first so that nothing forks or exits between reading cgroup.procs and signalling
     * (a pid read could otherwise be reused). A failed freeze (e.g. a task stuck in D state)
     * still gets the SIGKILLs; the kill is delivered once the task runs again. */
    _cleanup_error_ struct dt_error *ferr = NULL;
    bool frozen = freeze_impl(cg, true, &ferr) >= 0;

    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    bool found = false;
    r = 0;
    for (size_t i = 0; i < cg->n_hier && r >= 0; i++) {
        /* Every hierarchy, in case a process was attached only partially. */
        int k = collect_pids(cg->dir[i], 0, &pids, &n);
        if (k == -ENOENT)
            continue;
        if (k < 0)
            r = dt_error_errno(err, k, "read processes of '%s'", cg->dir[i]);
        found = true;
    }
    for (size_t i = 0; i < n; i++)
        if (kill(pids[i], SIGKILL) < 0 && errno != ESRCH && r >= 0)
            r = dt_error_errno(err, errno, "kill pid %d", (int) pids[i]);
    if (frozen || found) {
        int t = freeze_impl(cg, false, r < 0 ? NULL : err);
        if (t < 0 && t != -ENOENT && r >= 0)
            r = t;
    }
    if (r >= 0 && !found)
        r = dt_error_set(err, ENOENT, "cgroup '%s' not found", cg->name);
    if (r < 0)
        return dt_error_wrap(err, "kill cgroup '%s'", cg->name);
    return 0;
}

int
dt_cgroup_is_empty(struct dt_cgroup *cg)
{
    if (cg->version == DT_CGROUP_V2) {
        uint64_t v;
        int r = cg_read_key(cg->dir[0], "cgroup.events", "populated", &v);
        return r < 0 ? r : v == 0;
    }
    bool found = false;
    for (size_t i = 0; i < cg->n_hier; i++) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        int r = collect_pids(cg->dir[i], 0, &pids, &n);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
        if (n > 0)
            return 0;
        found = true;
    }
    return found ? 1 : -ENOENT;
}

int
dt_cgroup_open_procs(struct dt_cgroup *cg, int *fds, size_t max, size_t *ret_n,
                     struct dt_error **err)
{
    size_t n = 0;

    for (size_t i = 0; i < cg->n_hier; i++) {
        _cleanup_free_ char *p = path_join(cg->dir[i], "cgroup.procs");
        int fd;

        if (n == max) {
            while (n > 0)
                close(fds[--n]);
            return dt_error_set(err, E2BIG, "cgroup '%s' has too many hierarchies", cg->name);
        }
        fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            int r = dt_error_errno(err, errno, "open '%s'", p);
            while (n > 0)
                close(fds[--n]);
            return r;
        }
        fds[n++] = fd;
    }
    *ret_n = n;
    return 0;
}

int
dt_cgroup_open_oom_file(struct dt_cgroup *cg, int *ret_fd, struct dt_error **err)
{
    _cleanup_free_ char *p = NULL;
    int fd;

    if (cg->version == DT_CGROUP_V2)
        p = xasprintf("%s/memory.events", cg->dir[0]);
    else
        p = xasprintf("%s/memory.oom_control", cg_dir_for(cg, CG_MEMORY));
    fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return dt_error_errno(err, errno, "open '%s'", p);
    *ret_fd = fd;
    return 0;
}

int
dt_cgroup_oom_kills(struct dt_cgroup *cg, uint64_t *ret, struct dt_error **err)
{
    uint64_t n = 0;
    int r;

    if (cg->version == DT_CGROUP_V2) {
        /* memory.events counts the whole subtree (unless mounted with memory_localevents). */
        r = cg_read_key(cg->dir[0], "memory.events", "oom_kill", &n);
        if (r < 0 && r != -ENODATA)
            return dt_error_errno(err, r, "read '%s/memory.events'", cg->dir[0]);
    } else {
        const char *mem = cg_dir_for(cg, CG_MEMORY);
        r = v1_sum_oom_kills(mem, 0, &n);
        if (r < 0)
            return dt_error_errno(err, r, "read '%s/memory.oom_control'", mem);
    }
    *ret = n;
    return 0;
}

static int
stats_v1(struct dt_cgroup *cg, struct dt_cgroup_stats *st, struct dt_error **err)
{
    const char *mem = cg_dir_for(cg, CG_MEMORY), *dir;
    uint64_t v;
    int r;

    r = cg_read_u64(mem, "memory.usage_in_bytes", &st->memory_current_bytes);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/memory.usage_in_bytes'", mem);
    r = cg_read_u64(mem, "memory.limit_in_bytes", &v);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/memory.limit_in_bytes'", mem);
    /* "No limit" reads back as the page counter maximum, LONG_MAX rounded down to a page. */
    long page = sysconf(_SC_PAGESIZE);
    uint64_t unlimited = page > 0 ? (uint64_t) (INT64_MAX / page) * (uint64_t) page : INT64_MAX;
    st->memory_max_bytes = v >= unlimited ? DT_CGROUP_UNLIMITED : v;
    r = dt_cgroup_oom_kills(cg, &st->oom_kills, err);
    if (r < 0)
        return r;

    dir = cg_dir_for(cg, CG_PIDS);
    r = cg_read_u64(dir, "pids.current", &st->pids_current);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/pids.current'", dir);

    dir = cg_dir_for(cg, CG_CPUACCT);
    if (dir) {
        r = cg_read_u64(dir, "cpuacct.usage", &v);
        if (r < 0)
            return dt_error_errno(err, r, "read '%s/cpuacct.usage'", dir);
        st->cpu_usage_usec = v / 1000; /* nanoseconds */
    }
    return 0;
}

static int
stats_v2(struct dt_cgroup *cg, struct dt_cgroup_stats *st, struct dt_error **err)
{
    const char *dir = cg->dir[0];
    int r;

    r = cg_read_u64(dir, "memory.current", &st->memory_current_bytes);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/memory.current'", dir);
    r = cg_read_u64(dir, "memory.max", &st->memory_max_bytes);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/memory.max'", dir);
    r = dt_cgroup_oom_kills(cg, &st->oom_kills, err);
    if (r < 0)
        return r;
    r = cg_read_u64(dir, "pids.current", &st->pids_current);
    if (r < 0)
        return dt_error_errno(err, r, "read '%s/pids.current'", dir);
    r = cg_read_key(dir, "cpu.stat", "usage_usec", &st->cpu_usage_usec);
    if (r < 0 && r != -ENODATA)
        return dt_error_errno(err, r, "read '%s/cpu.stat'", dir);
    return 0;
}

int
dt_cgroup_stats(struct dt_cgroup *cg, struct dt_cgroup_stats *ret, struct dt_error **err)
{
    struct dt_cgroup_stats st = {0};
    int r = cg->version == DT_CGROUP_V2 ? stats_v2(cg, &st, err) : stats_v1(cg, &st, err);
    if (r < 0)
        return dt_error_wrap(err, "read stats of cgroup '%s'", cg->name);
    *ret = st;
    return 0;
}

int
dt_cgroup_destroy(struct dt_cgroup *cg, struct dt_error **err)
{
    uint64_t start = now_msec(), deadline = start + CG_EMPTY_TIMEOUT_MS, last_kill = start;
    int r;

    /* Errors of the kill are not fatal by themselves (the cgroup may be half gone); whatever
     * remains makes rmdir fail below. An empty cgroup is not killed: on v1 that would be a
     * needless freeze/thaw cycle. */
    if (dt_cgroup_is_empty(cg) == 0)
        (void) dt_cgroup_kill(cg, NULL);
    for (;;) {
        r = dt_cgroup_is_empty(cg);
        if (r != 0 || now_msec() >= deadline)
            break;
        /* Kill again now and then: a v1 kill that could not freeze may have raced a fork. */
        if (now_msec() - last_kill >= 250) {
            (void) dt_cgroup_kill(cg, NULL);
            last_kill = now_msec();
        }
        sleep_msec(CG_POLL_MS);
    }
    if (cg->version == DT_CGROUP_V2)
        cg->fd = safe_close(cg->fd);
    for (size_t i = 0; i < cg->n_hier; i++) {
        r = rmdir_tree(cg->dir[i], 0, deadline, err);
        if (r < 0)
            return dt_error_wrap(err, "destroy cgroup '%s'", cg->name);
    }
    return 0;
}

void
dt_cgroup_limits_init(struct dt_cgroup_limits *l)
{
    *l = (struct dt_cgroup_limits){
            .memory_max_bytes = DT_CGROUP_UNLIMITED,
            .memory_swap_max_bytes = DT_CGROUP_UNLIMITED,
            .cpu_millicpus = DT_CGROUP_UNLIMITED,
            .cpu_period_usec = 0,
            .pids_max = DT_CGROUP_UNLIMITED,
            .cpuset_cpus = "",
    };
}
