/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of src/runtime/cgroup.c against fake cgroup trees in a temp dir (v1, v2, hybrid):
 * control files are regular files, and mkdir()/rmdir() are interposed below so that a new
 * directory gets the control files the kernel would create and rmdir() behaves like cgroupfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/testlib.h"
#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "runtime/cgroup.h"

/* --- A fake cgroupfs. --- */

static struct {
    char *root;        /* directories made under here get control files */
    int version;       /* 1 or 2 */
    bool no_swap;      /* no memory.memsw.* / memory.swap.max (no swap accounting) */
    bool no_kill_file; /* no cgroup.kill (Linux < 5.14) */
    const char *skip;  /* a control file that new directories do not get */
} fake;

static bool
streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void
put(const char *path, const char *content)
{
    int r = write_file_at(AT_FDCWD, path, content, strlen(content), 0644);
    if (r < 0) {
        fprintf(stderr, "write %s: %s\n", path, strerror(-r));
        abort();
    }
}

static void
putf(const char *dir, const char *file, const char *content)
{
    char *p = xasprintf("%s/%s", dir, file);
    put(p, content);
    free(p);
}

/* Content of DIR/FILE without trailing newlines (new string), or NULL. */
static char *
get(const char *dir, const char *file)
{
    return dt_test_read_trimmed(dir, file);
}

#define assert_file(dir, file, expected)                                                           \
    do {                                                                                           \
        char *_v = get(dir, file);                                                                 \
        if (!_v)                                                                                   \
            fail_msg("%s/%s does not exist", dir, file);                                           \
        if (strcmp(_v, expected) != 0)                                                             \
            fail_msg("%s/%s is '%s', expected '%s'", dir, file, _v, expected);                     \
        free(_v);                                                                                  \
    } while (0)

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool
has_word(const char *s, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = s; (p = strstr(p, w)); p += wl)
        if ((p == s || p[-1] == ' ' || p[-1] == '+' || p[-1] == ',') &&
            (p[wl] == 0 || p[wl] == ' ' || p[wl] == '\n' || p[wl] == ','))
            return true;
    return false;
}

static void
fake_file(const char *dir, const char *name, const char *content)
{
    if (fake.skip && streq(name, fake.skip))
        return;
    if (fake.no_swap && (strstr(name, ".memsw.") || streq(name, "memory.swap.max")))
        return;
    if (fake.no_kill_file && streq(name, "cgroup.kill"))
        return;
    putf(dir, name, content);
}

static void
fake_v1_controller(const char *dir, const char *ctrl)
{
    if (streq(ctrl, "memory")) {
        fake_file(dir, "memory.limit_in_bytes", "9223372036854771712\n");
        fake_file(dir, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
        fake_file(dir, "memory.usage_in_bytes", "0\n");
        fake_file(dir, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        fake_file(dir, "memory.use_hierarchy", "1\n");
    } else if (streq(ctrl, "cpu")) {
        fake_file(dir, "cpu.cfs_period_us", "100000\n");
        fake_file(dir, "cpu.cfs_quota_us", "-1\n");
    } else if (streq(ctrl, "cpuacct")) {
        fake_file(dir, "cpuacct.usage", "0\n");
    } else if (streq(ctrl, "pids")) {
        fake_file(dir, "pids.max", "max\n");
        fake_file(dir, "pids.current", "0\n");
    } else if (streq(ctrl, "freezer")) {
        fake_file(dir, "freezer.state", "THAWED\n");
    } else if (streq(ctrl, "cpuset")) {
        /* The kernel starts a v1 cpuset with both lists empty. */
        fake_file(dir, "cpuset.cpus", "\n");
        fake_file(dir, "cpuset.mems", "\n");
    }
}

/* Give the new directory DIR the control files the kernel would. */
static void
fake_populate(const char *dir)
{
    fake_file(dir, "cgroup.procs", "");
    if (fake.version == 1) {
        /* The hierarchy is the first component below the root, through a co-mount symlink. */
        const char *rel = dir + strlen(fake.root) + 1;
        char *first = xstrndup(rel, strcspn(rel, "/"));
        char *top = xasprintf("%s/%s", fake.root, first);
        char *real = realpath(top, NULL);
        assert_non_null(real);
        char *ctrls = xstrdup(strrchr(real, '/') + 1);
        for (char *c = ctrls, *next; c; c = next) {
            next = strchr(c, ',');
            if (next)
                *next++ = 0;
            fake_v1_controller(dir, c);
        }
        free(ctrls);
        free(real);
        free(top);
        free(first);
        return;
    }

    /* v2: a child gets the controllers enabled in its parent's cgroup.subtree_control (here
     * written by us with '+' prefixes, which the library tolerates on reading). */
    char *parent = xstrndup(dir, (size_t) (strrchr(dir, '/') - dir));
    char *sc = get(parent, "cgroup.subtree_control");
    char *ctrls = xstrdup("");
    for (char *p = sc; p && *p;) {
        size_t n = strcspn(p, " \n");
        const char *t = p[0] == '+' ? p + 1 : p;
        size_t tl = p[0] == '+' ? n - 1 : n;
        if (tl > 0) {
            char *nc = xasprintf("%s%s%.*s", ctrls, *ctrls ? " " : "", (int) tl, t);
            free(ctrls);
            ctrls = nc;
        }
        p += n;
        p += strspn(p, " \n");
    }
    /* The kernel keeps cgroup.controllers in step with the parent's subtree_control. */
    char *link = xasprintf("%s/cgroup.controllers", dir);
    if (symlink("../cgroup.subtree_control", link) < 0)
        abort();
    free(link);
    fake_file(dir, "cgroup.subtree_control", "");
    fake_file(dir, "cgroup.events", "populated 0\nfrozen 0\n");
    fake_file(dir, "cgroup.freeze", "0\n");
    fake_file(dir, "cgroup.kill", "");
    fake_file(dir, "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    if (has_word(ctrls, "memory")) {
        fake_file(dir, "memory.max", "max\n");
        fake_file(dir, "memory.swap.max", "max\n");
        fake_file(dir, "memory.current", "0\n");
        fake_file(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    }
    if (has_word(ctrls, "cpu"))
        fake_file(dir, "cpu.max", "max 100000\n");
    if (has_word(ctrls, "pids")) {
        fake_file(dir, "pids.max", "max\n");
        fake_file(dir, "pids.current", "0\n");
    }
    if (has_word(ctrls, "cpuset")) {
        fake_file(dir, "cpuset.cpus", "\n");
        fake_file(dir, "cpuset.mems", "\n");
    }
    free(ctrls);
    free(sc);
    free(parent);
}

static bool
under_fake(const char *path)
{
    size_t n = fake.root ? strlen(fake.root) : 0;
    return n && strncmp(path, fake.root, n) == 0 && path[n] == '/';
}

/* Interposed: the executable's definitions win over libc's for calls from cgroup.c, which is
 * linked into this executable. */
int mkdir(const char *path, mode_t mode);
int rmdir(const char *path);

int
mkdir(const char *path, mode_t mode)
{
    if (syscall(SYS_mkdirat, AT_FDCWD, path, mode) < 0)
        return -1;
    if (under_fake(path))
        fake_populate(path);
    return 0;
}

int
rmdir(const char *path)
{
    if (under_fake(path)) {
        /* cgroupfs: a cgroup with processes is busy; its control files go with it. */
        char *procs = get(path, "cgroup.procs");
        bool busy = procs && *procs;
        free(procs);
        if (busy) {
            errno = EBUSY;
            return -1;
        }
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)))
                if (de->d_type == DT_REG || de->d_type == DT_LNK)
                    (void) unlinkat(dirfd(d), de->d_name, 0);
            closedir(d);
        }
    }
    return (int) syscall(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
}

/* FAKE.root/REL[/NAME] (new string). */
static char *
fx2(const char *rel, const char *name)
{
    return name ? xasprintf("%s/%s/%s", fake.root, rel, name) : xasprintf("%s/%s", fake.root, rel);
}

static char *
fx(const char *rel)
{
    return fx2(rel, NULL);
}

static void
mkdirs(const char *rel)
{
    char *p = xasprintf("%s/%s", fake.root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

static char *
write_self(const char *content)
{
    char *p = xasprintf("%s/proc-self-cgroup", fake.root);
    put(p, content);
    return p;
}

/* Check a failed call's return value and error (whose message contains NEEDLE), then free the
 * error. Takes the error by address: the call has run by the time it is read. */
static void
assert_err(int r, struct dt_error **e, int code, const char *needle)
{
    assert_int_equal(r, -code);
    assert_non_null(*e);
    assert_int_equal((*e)->code, code);
    if (needle && !strstr((*e)->message, needle))
        fail_msg("error '%s' lacks '%s'", (*e)->message, needle);
    dt_error_free(*e);
    *e = NULL;
}

static pid_t
spawn_sleeper(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a missed SIGKILL shows up as SIGALRM, not as a hang */
        for (;;)
            pause();
    }
    return pid;
}

static void
assert_killed(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static int
teardown_fake(void **state)
{
    if (fake.root) {
        dt_test_rm_rf(fake.root);
        free(fake.root);
    }
    fake.root = NULL;
    fake.no_swap = fake.no_kill_file = false;
    fake.skip = NULL;
    return 0;
}

/* --- v1 (hybrid: an empty cgroup2 at unified/, v1 hierarchies beside it). --- */

static const char v1_self[] = "12:pids:/\n"
                              "11:freezer:/\n"
                              "10:memory:/a/b\n"
                              "9:cpu,cpuacct:/a\n"
                              "8:cpuset:/\n"
                              "7:name=systemd:/x\n"
                              "0::/\n";

static int
setup_v1(void **state)
{
    fake.root = dt_test_mkdtemp("dt-test-cgroup");
    fake.version = 1;
    mkdirs("unified");
    putf(fake.root, "unified/cgroup.controllers", "\n");
    mkdirs("memory");
    mkdirs("memory/a");
    mkdirs("memory/a/b");
    /* Co-mounted cpu,cpuacct with the usual per-controller symlinks. */
    mkdirs("cpu,cpuacct");
    mkdirs("cpu,cpuacct/a");
    char *p = fx("cpu");
    assert_int_equal(symlink("cpu,cpuacct", p), 0);
    free(p);
    p = fx("cpuacct");
    assert_int_equal(symlink("cpu,cpuacct", p), 0);
    free(p);
    mkdirs("pids");
    mkdirs("freezer");
    mkdirs("cpuset");
    putf(fake.root, "cpuset/cpuset.cpus", "0-3\n");
    putf(fake.root, "cpuset/cpuset.mems", "0\n");
    mkdirs("systemd");
    mkdirs("systemd/x");
    return 0;
}

static struct dt_cgroup_manager *
new_manager(const char *self_content)
{
    _cleanup_free_ char *self = write_self(self_content);
    struct dt_cgroup_manager *m = NULL;
    struct dt_error *e = NULL;
    int r = dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e);
    if (r < 0)
        fail_msg("manager: %s", e->message);
    return m;
}

static void
test_v1_detect_and_nesting(void **state)
{
    struct dt_cgroup_manager *m = new_manager(v1_self);
    assert_int_equal(dt_cgroup_manager_version(m), DT_CGROUP_V1);

    /* SUBDIR under our own path in each hierarchy; the co-mount is one directory. */
    static const char *const dirs[] = {"memory/a/b/daytona", "cpu,cpuacct/a/daytona",
                                       "pids/daytona", "freezer/daytona", "cpuset/daytona"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *p = fx(dirs[i]);
        assert_true(exists(p));
        free(p);
    }
    char *p = fx("systemd/x/daytona");
    assert_false(exists(p)); /* named hierarchies are not ours */
    free(p);
    p = fx("unified/daytona");
    assert_false(exists(p));
    free(p);
    /* v1 cpusets start empty: SUBDIR got a copy of the parent's lists. */
    p = fx("cpuset/daytona");
    assert_file(p, "cpuset.cpus", "0-3");
    assert_file(p, "cpuset.mems", "0");
    free(p);
    dt_cgroup_manager_free(m);

    /* A second manager reuses the existing SUBDIR. */
    m = new_manager(v1_self);
    dt_cgroup_manager_free(m);
}

static void
test_v1_create_limits(void **state)
{
    struct dt_cgroup_manager *m = new_manager(v1_self);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;

    dt_cgroup_limits_init(&l);
    l.memory_max_bytes = 64 << 20;
    l.memory_swap_max_bytes = 32 << 20;
    l.cpu_millicpus = 1500;
    l.pids_max = 100;
    snprintf(l.cpuset_cpus, sizeof(l.cpuset_cpus), "1");
    assert_int_equal(dt_cgroup_create(m, "box1", &l, &cg, &e), 0);
    assert_null(e);
    assert_int_equal(dt_cgroup_fd(cg), -EOPNOTSUPP);

    char *mem = fx("memory/a/b/daytona/box1"), *cpu = fx("cpu,cpuacct/a/daytona/box1");
    char *pids = fx("pids/daytona/box1"), *cs = fx("cpuset/daytona/box1");
    char *frz = fx("freezer/daytona/box1");
    assert_file(mem, "memory.limit_in_bytes", "67108864");
    assert_file(mem, "memory.memsw.limit_in_bytes", "100663296");
    assert_file(cpu, "cpu.cfs_period_us", "100000");
    assert_file(cpu, "cpu.cfs_quota_us", "150000");
    assert_file(pids, "pids.max", "100");
    assert_file(cs, "cpuset.cpus", "1");
    assert_file(cs, "cpuset.mems", "0");
    assert_true(exists(frz));

    /* Back to unlimited; the cpuset goes back to a copy of the parent's. */
    dt_cgroup_limits_init(&l);
    l.cpu_period_usec = 50000;
    assert_int_equal(dt_cgroup_set_limits(cg, &l, &e), 0);
    assert_file(mem, "memory.limit_in_bytes", "-1");
    assert_file(mem, "memory.memsw.limit_in_bytes", "-1");
    assert_file(cpu, "cpu.cfs_period_us", "50000");
    assert_file(cpu, "cpu.cfs_quota_us", "-1");
    assert_file(pids, "pids.max", "max");
    assert_file(cs, "cpuset.cpus", "0-3");

    /* Tiny CPU shares are raised to the kernel's 1 ms minimum quota. */
    l.cpu_millicpus = 1;
    l.memory_max_bytes = 1 << 20;
    l.memory_swap_max_bytes = 0;
    assert_int_equal(dt_cgroup_set_limits(cg, &l, &e), 0);
    assert_file(cpu, "cpu.cfs_quota_us", "1000");
    assert_file(mem, "memory.limit_in_bytes", "1048576");
    assert_file(mem, "memory.memsw.limit_in_bytes", "1048576");

    /* Attach goes to every hierarchy. */
    assert_int_equal(dt_cgroup_attach(cg, 4242, &e), 0);
    assert_file(mem, "cgroup.procs", "4242");
    assert_file(cpu, "cgroup.procs", "4242");
    assert_file(pids, "cgroup.procs", "4242");
    assert_file(frz, "cgroup.procs", "4242");
    assert_file(cs, "cgroup.procs", "4242");
    assert_int_equal(dt_cgroup_is_empty(cg), 0);
    putf(mem, "cgroup.procs", "");
    putf(cpu, "cgroup.procs", "");
    putf(pids, "cgroup.procs", "");
    putf(frz, "cgroup.procs", "");
    putf(cs, "cgroup.procs", "");
    assert_int_equal(dt_cgroup_is_empty(cg), 1);

    /* Creating it again: EEXIST, and the existing one stays. */
    struct dt_cgroup *dup = NULL;
    assert_err(dt_cgroup_create(m, "box1", &l, &dup, &e), &e, EEXIST, "box1");
    assert_true(exists(mem) && exists(cpu) && exists(pids) && exists(frz) && exists(cs));

    /* Re-adoption. */
    struct dt_cgroup *again = NULL;
    assert_int_equal(dt_cgroup_open(m, "box1", &again, &e), 0);
    dt_cgroup_free(again);

    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    assert_false(exists(mem) || exists(cpu) || exists(pids) || exists(frz) || exists(cs));
    char *sub = fx("memory/a/b/daytona");
    assert_true(exists(sub)); /* SUBDIR stays */
    free(sub);
    /* Idempotent. */
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    assert_null(e);
    assert_err(dt_cgroup_open(m, "box1", &again, &e), &e, ENOENT, "box1");

    free(mem);
    free(cpu);
    free(pids);
    free(cs);
    free(frz);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v1_freeze_kill_stats(void **state)
{
    struct dt_cgroup_manager *m = new_manager(v1_self);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL, *child = NULL;
    struct dt_error *e = NULL;

    dt_cgroup_limits_init(&l);
    assert_int_equal(dt_cgroup_create(m, "box", &l, &cg, &e), 0);
    assert_int_equal(dt_cgroup_create_child(cg, "agent", &child, &e), 0);
    char *frz = fx("freezer/daytona/box"), *mem = fx("memory/a/b/daytona/box");
    char *cs_child = fx("cpuset/daytona/box/agent");
    char *mem_child = fx("memory/a/b/daytona/box/agent");
    char *frz_child = fx("freezer/daytona/box/agent");
    assert_true(exists(mem_child));
    assert_file(cs_child, "cpuset.cpus", "0-3");
    assert_file(cs_child, "cpuset.mems", "0");
    /* create_child opens an existing child. */
    struct dt_cgroup *child2 = NULL;
    assert_int_equal(dt_cgroup_create_child(cg, "agent", &child2, &e), 0);
    dt_cgroup_free(child2);

    assert_int_equal(dt_cgroup_freeze(cg, true, &e), 0);
    assert_file(frz, "freezer.state", "FROZEN");
    assert_int_equal(dt_cgroup_freeze(cg, false, &e), 0);
    assert_file(frz, "freezer.state", "THAWED");

    /* Kill reaches processes in the cgroup and in its children. */
    pid_t a = spawn_sleeper(), b = spawn_sleeper();
    char buf[32];
    snprintf(buf, sizeof(buf), "%d\n", (int) a);
    putf(frz, "cgroup.procs", buf);
    snprintf(buf, sizeof(buf), "%d\n", (int) b);
    putf(frz_child, "cgroup.procs", buf);
    assert_int_equal(dt_cgroup_is_empty(cg), 0);
    assert_int_equal(dt_cgroup_kill(cg, &e), 0);
    assert_null(e);
    assert_killed(a);
    assert_killed(b);
    assert_file(frz, "freezer.state", "THAWED");
    putf(frz, "cgroup.procs", "");
    putf(frz_child, "cgroup.procs", "");

    /* Stats: the v1 OOM-kill count is per cgroup, so the children's add up. */
    putf(mem, "memory.usage_in_bytes", "8192\n");
    putf(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    putf(mem_child, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
    char *p = fx("pids/daytona/box");
    putf(p, "pids.current", "3\n");
    free(p);
    p = fx("cpu,cpuacct/a/daytona/box");
    putf(p, "cpuacct.usage", "5000000\n");
    free(p);
    struct dt_cgroup_stats st;
    assert_int_equal(dt_cgroup_stats(cg, &st, &e), 0);
    assert_int_equal(st.memory_current_bytes, 8192);
    assert_true(st.memory_max_bytes == DT_CGROUP_UNLIMITED);
    assert_int_equal(st.oom_kills, 3);
    assert_int_equal(st.pids_current, 3);
    assert_int_equal(st.cpu_usage_usec, 5000);
    putf(mem, "memory.limit_in_bytes", "1048576\n");
    assert_int_equal(dt_cgroup_stats(cg, &st, &e), 0);
    assert_int_equal(st.memory_max_bytes, 1048576);

    /* Destroy removes children first; a busy cgroup makes it fail after its timeout. */
    pid_t zombie = fork(); /* an unreaped child: its pid stays ours and SIGKILL does nothing */
    assert_true(zombie >= 0);
    if (zombie == 0)
        _exit(0);
    snprintf(buf, sizeof(buf), "%d\n", (int) zombie);
    putf(frz_child, "cgroup.procs", buf);
    assert_err(dt_cgroup_destroy(cg, &e), &e, EBUSY, "agent");
    int status;
    assert_int_equal(waitpid(zombie, &status, 0), zombie);
    putf(frz_child, "cgroup.procs", "");
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    assert_false(exists(mem_child) || exists(mem) || exists(frz));

    free(frz);
    free(mem);
    free(cs_child);
    free(mem_child);
    free(frz_child);
    dt_cgroup_free(child);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v1_rollback_and_no_swap(void **state)
{
    struct dt_cgroup_manager *m = new_manager(v1_self);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    static const char *const dirs[] = {"memory/a/b/daytona", "cpu,cpuacct/a/daytona",
                                       "pids/daytona", "freezer/daytona", "cpuset/daytona"};

    /* A control file missing in the new cgroup: the error names it, nothing is left. */
    fake.skip = "pids.max";
    dt_cgroup_limits_init(&l);
    l.memory_max_bytes = 1 << 30;
    int r = dt_cgroup_create(m, "box", &l, &cg, &e);
    assert_non_null(e);
    assert_non_null(strstr(e->message, "cgroup 'box'"));
    assert_err(r, &e, ENOENT, "pids.max");
    assert_null(cg);
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *p = fx2(dirs[i], "box");
        assert_false(exists(p));
        free(p);
    }

    /* The same when preparing the directories fails (the v1 cpuset copy). */
    fake.skip = "cpuset.cpus";
    assert_err(dt_cgroup_create(m, "box", &l, &cg, &e), &e, ENOENT, "cpuset.cpus");
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *p = fx2(dirs[i], "box");
        assert_false(exists(p));
        free(p);
    }
    fake.skip = NULL;

    /* Without swap accounting there is no memsw file and none is created. */
    fake.no_swap = true;
    l.memory_swap_max_bytes = 0;
    assert_int_equal(dt_cgroup_create(m, "noswap", &l, &cg, &e), 0);
    char *mem = fx2(dirs[0], "noswap");
    assert_file(mem, "memory.limit_in_bytes", "1073741824");
    char *sw = xasprintf("%s/memory.memsw.limit_in_bytes", mem);
    assert_false(exists(sw));
    free(sw);
    free(mem);
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    dt_cgroup_free(cg);
    cg = NULL;

    /* Invalid limits are refused before anything is created. */
    struct dt_cgroup_limits bad = l;
    bad.cpu_period_usec = 500;
    assert_err(dt_cgroup_create(m, "bad", &bad, &cg, &e), &e, EINVAL, "period");
    bad = l;
    bad.cpu_millicpus = 0;
    assert_err(dt_cgroup_create(m, "bad", &bad, &cg, &e), &e, EINVAL, "cpu");
    bad = l;
    snprintf(bad.cpuset_cpus, sizeof(bad.cpuset_cpus), "0;1");
    assert_err(dt_cgroup_create(m, "bad", &bad, &cg, &e), &e, EINVAL, "cpuset");
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *p = fx2(dirs[i], "bad");
        assert_false(exists(p));
        free(p);
    }
    dt_cgroup_manager_free(m);
}

static void
test_bad_names(void **state)
{
    struct dt_cgroup_manager *m = new_manager(v1_self);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    char long_name[130];

    dt_cgroup_limits_init(&l);
    memset(long_name, 'x', 129);
    long_name[129] = 0;
    const char *const bad[] = {"", ".", "..", "a/b", "/a", "a b", "a\nb", "caf\xc3\xa9", long_name};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_err(dt_cgroup_create(m, bad[i], &l, &cg, &e), &e, EINVAL, "invalid");
        assert_err(dt_cgroup_open(m, bad[i], &cg, &e), &e, EINVAL, "invalid");
    }
    assert_err(dt_cgroup_create(m, NULL, &l, &cg, &e), &e, EINVAL, "invalid");

    /* 128 characters of every allowed kind is fine. */
    long_name[128] = 0;
    memcpy(long_name, "Az09_.-", 7);
    assert_int_equal(dt_cgroup_create(m, long_name, &l, &cg, &e), 0);
    struct dt_cgroup *c = NULL;
    assert_err(dt_cgroup_create_child(cg, "..", &c, &e), &e, EINVAL, "invalid");
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);

    /* The manager's SUBDIR follows the same rule. */
    _cleanup_free_ char *self = write_self(v1_self);
    struct dt_cgroup_manager *m2 = NULL;
    assert_err(dt_cgroup_manager_new(fake.root, self, "../x", &m2, &e), &e, EINVAL, "invalid");
}

static void
test_v1_missing_controllers(void **state)
{
    _cleanup_free_ char *self = NULL;
    struct dt_cgroup_manager *m = NULL;
    struct dt_error *e = NULL;

    /* pids not in /proc/self/cgroup. */
    self = write_self("11:freezer:/\n10:memory:/a/b\n9:cpu,cpuacct:/a\n8:cpuset:/\n0::/\n");
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOTSUP, "'pids'");
    free(self);

    /* Listed but not mounted under the root. */
    self = write_self("13:blkio:/\n12:pids:/\n11:freezer:/\n10:memory:/a/b\n9:cpu,cpuacct:/a\n");
    char *p = fx("pids");
    assert_int_equal(rmdir(p), 0);
    free(p);
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOENT, "pids");
    free(self);
    mkdirs("pids");

    /* Our own cgroup missing in a hierarchy. */
    self = write_self("12:pids:/gone\n11:freezer:/\n10:memory:/a/b\n9:cpu,cpuacct:/a\n");
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOENT, "gone");
    free(self);

    /* cpuset is optional, until a sandbox asks for one. */
    self = write_self("12:pids:/\n11:freezer:/\n10:memory:/a/b\n9:cpu,cpuacct:/a\n");
    assert_int_equal(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), 0);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    dt_cgroup_limits_init(&l);
    snprintf(l.cpuset_cpus, sizeof(l.cpuset_cpus), "0");
    assert_err(dt_cgroup_create(m, "box", &l, &cg, &e), &e, ENOTSUP, "cpuset");
    p = fx("memory/a/b/daytona/box");
    assert_false(exists(p));
    free(p);
    l.cpuset_cpus[0] = 0;
    assert_int_equal(dt_cgroup_create(m, "box", &l, &cg, &e), 0);
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v1_comount_without_symlinks(void **state)
{
    char *p = fx("cpu");
    assert_int_equal(unlink(p), 0);
    free(p);
    p = fx("cpuacct");
    assert_int_equal(unlink(p), 0);
    free(p);
    struct dt_cgroup_manager *m = new_manager(v1_self);
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;
    dt_cgroup_limits_init(&l);
    l.cpu_millicpus = 250;
    assert_int_equal(dt_cgroup_create(m, "box", &l, &cg, &e), 0);
    p = fx("cpu,cpuacct/a/daytona/box");
    assert_file(p, "cpu.cfs_quota_us", "25000");
    free(p);
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

/* --- Detection. --- */

static int
setup_empty(void **state)
{
    fake.root = dt_test_mkdtemp("dt-test-cgroup");
    fake.version = 2;
    return 0;
}

static void
test_detect_errors(void **state)
{
    _cleanup_free_ char *self = write_self("0::/\n");
    struct dt_cgroup_manager *m = NULL;
    struct dt_error *e = NULL;

    /* Nothing at all. */
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOENT, NULL);

    /* v2 without the controllers we need, no v1 to fall back to. */
    putf(fake.root, "cgroup.controllers", "cpu io\n");
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOTSUP, "memory");

    /* A missing /proc/self/cgroup. */
    char *missing = fx("nope");
    assert_err(dt_cgroup_manager_new(fake.root, missing, "daytona", &m, &e), &e, ENOENT, "nope");
    free(missing);
}

/* --- v2. --- */

static int
setup_v2(void **state)
{
    fake.root = dt_test_mkdtemp("dt-test-cgroup");
    fake.version = 2;
    putf(fake.root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
    putf(fake.root, "cgroup.subtree_control", "cpuset cpu io memory pids\n");
    putf(fake.root, "cgroup.procs", "1\n");
    mkdirs("a"); /* gets cgroup.controllers from the root's subtree_control */
    return 0;
}

static void
test_v2_enable_and_limits(void **state)
{
    assert_true(exists(fake.root)); /* keep cmocka from complaining about unused state */
    struct dt_cgroup_manager *m = new_manager("0::/a\n");
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL, *cs = NULL;
    struct dt_error *e = NULL;
    char *self = fx("a"), *sub = fx("a/daytona");

    assert_int_equal(dt_cgroup_manager_version(m), DT_CGROUP_V2);
    assert_file(self, "cgroup.subtree_control", "+memory +cpu +pids");
    assert_file(sub, "cgroup.subtree_control", "+memory +cpu +pids");

    dt_cgroup_limits_init(&l);
    l.memory_max_bytes = 64 << 20;
    l.memory_swap_max_bytes = 0;
    l.cpu_millicpus = 500;
    l.cpu_period_usec = 50000;
    l.pids_max = 10;
    assert_int_equal(dt_cgroup_create(m, "box1", &l, &cg, &e), 0);
    char *box = fx("a/daytona/box1");
    assert_file(box, "memory.max", "67108864");
    assert_file(box, "memory.swap.max", "0");
    assert_file(box, "cpu.max", "25000 50000");
    assert_file(box, "pids.max", "10");
    char *cpus = xasprintf("%s/cpuset.cpus", box);
    assert_false(exists(cpus)); /* cpuset only on request */
    free(cpus);

    /* The handle's fd is the cgroup directory. */
    struct stat a, b;
    int fd = dt_cgroup_fd(cg);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &a), 0);
    assert_int_equal(stat(box, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    dt_cgroup_limits_init(&l);
    assert_int_equal(dt_cgroup_set_limits(cg, &l, &e), 0);
    assert_file(box, "memory.max", "max");
    assert_file(box, "memory.swap.max", "max");
    assert_file(box, "cpu.max", "max 100000");
    assert_file(box, "pids.max", "max");

    /* A cpuset request enables +cpuset from our own cgroup down. */
    snprintf(l.cpuset_cpus, sizeof(l.cpuset_cpus), "0-1");
    assert_int_equal(dt_cgroup_create(m, "box2", &l, &cs, &e), 0);
    assert_file(self, "cgroup.subtree_control", "+memory +cpu +pids +cpuset");
    assert_file(sub, "cgroup.subtree_control", "+memory +cpu +pids +cpuset");
    char *box2 = fx("a/daytona/box2");
    assert_file(box2, "cpuset.cpus", "0-1");

    assert_int_equal(dt_cgroup_attach(cg, 777, &e), 0);
    assert_file(box, "cgroup.procs", "777");
    putf(box, "cgroup.procs", "");

    assert_int_equal(dt_cgroup_destroy(cs, &e), 0);
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    assert_null(e);
    assert_false(exists(box) || exists(box2));
    assert_true(exists(sub));
    assert_true(dt_cgroup_fd(cg) < 0);

    free(box);
    free(box2);
    free(self);
    free(sub);
    dt_cgroup_free(cs);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v2_freeze_kill_stats(void **state)
{
    struct dt_cgroup_manager *m = new_manager("0::/a\n");
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL;
    struct dt_error *e = NULL;

    dt_cgroup_limits_init(&l);
    assert_int_equal(dt_cgroup_create(m, "box", &l, &cg, &e), 0);
    char *box = fx("a/daytona/box");

    putf(box, "cgroup.events", "populated 1\nfrozen 1\n");
    assert_int_equal(dt_cgroup_freeze(cg, true, &e), 0);
    assert_file(box, "cgroup.freeze", "1");
    putf(box, "cgroup.events", "populated 1\nfrozen 0\n");
    assert_int_equal(dt_cgroup_freeze(cg, false, &e), 0);
    assert_file(box, "cgroup.freeze", "0");

    assert_int_equal(dt_cgroup_is_empty(cg), 0);
    putf(box, "cgroup.events", "populated 0\nfrozen 0\n");
    assert_int_equal(dt_cgroup_is_empty(cg), 1);

    /* cgroup.kill when the kernel has it. */
    assert_int_equal(dt_cgroup_kill(cg, &e), 0);
    assert_file(box, "cgroup.kill", "1");

    putf(box, "memory.current", "12345\n");
    putf(box, "memory.max", "1048576\n");
    putf(box, "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n");
    putf(box, "pids.current", "7\n");
    putf(box, "cpu.stat", "usage_usec 777\nuser_usec 700\nsystem_usec 77\n");
    struct dt_cgroup_stats st;
    assert_int_equal(dt_cgroup_stats(cg, &st, &e), 0);
    assert_int_equal(st.memory_current_bytes, 12345);
    assert_int_equal(st.memory_max_bytes, 1048576);
    assert_int_equal(st.oom_kills, 2);
    assert_int_equal(st.pids_current, 7);
    assert_int_equal(st.cpu_usage_usec, 777);
    putf(box, "memory.max", "max\n");
    assert_int_equal(dt_cgroup_stats(cg, &st, &e), 0);
    assert_true(st.memory_max_bytes == DT_CGROUP_UNLIMITED);
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    dt_cgroup_free(cg);
    cg = NULL;

    /* Without cgroup.kill: freeze, SIGKILL each pid, thaw. */
    fake.no_kill_file = true;
    assert_int_equal(dt_cgroup_create(m, "old", &l, &cg, &e), 0);
    char *old = fx("a/daytona/old");
    pid_t pid = spawn_sleeper();
    char buf[32];
    snprintf(buf, sizeof(buf), "%d\n", (int) pid);
    putf(old, "cgroup.procs", buf);
    putf(old, "cgroup.events", "populated 1\nfrozen 1\n");
    /* Thaw times out in the fake (nothing flips "frozen" back): the timeout path, which kill
     * reports after the SIGKILLs. */
    int r = dt_cgroup_kill(cg, &e);
    assert_killed(pid);
    assert_err(r, &e, ETIMEDOUT, "thawed");
    assert_file(old, "cgroup.freeze", "0");
    putf(old, "cgroup.procs", "");
    putf(old, "cgroup.events", "populated 0\nfrozen 0\n");
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);

    free(old);
    free(box);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v2_children_and_busy(void **state)
{
    struct dt_cgroup_manager *m = new_manager("0::/a\n");
    struct dt_cgroup_limits l;
    struct dt_cgroup *cg = NULL, *child = NULL;
    struct dt_error *e = NULL;

    dt_cgroup_limits_init(&l);
    assert_int_equal(dt_cgroup_create(m, "box", &l, &cg, &e), 0);
    char *box = fx("a/daytona/box");

    /* A child needs the controllers enabled in its parent. */
    assert_int_equal(dt_cgroup_create_child(cg, "agent", &child, &e), 0);
    assert_file(box, "cgroup.subtree_control", "+memory +cpu +pids");
    char *agent = fx("a/daytona/box/agent");
    assert_file(agent, "pids.max", "max");
    dt_cgroup_free(child);
    child = NULL;

    /* The no-internal-process rule: a cgroup with processes cannot get controllers for
     * children. */
    struct dt_cgroup *busy = NULL, *c2 = NULL;
    assert_int_equal(dt_cgroup_create(m, "busy", &l, &busy, &e), 0);
    char *bdir = fx("a/daytona/busy");
    putf(bdir, "cgroup.procs", "1234\n");
    assert_err(dt_cgroup_create_child(busy, "leaf", &c2, &e), &e, EBUSY, "no-internal-process");
    putf(bdir, "cgroup.procs", "");
    assert_int_equal(dt_cgroup_destroy(busy, &e), 0);
    dt_cgroup_free(busy);

    /* Destroy removes the child first. */
    assert_int_equal(dt_cgroup_destroy(cg, &e), 0);
    assert_false(exists(agent) || exists(box));

    free(bdir);
    free(agent);
    free(box);
    dt_cgroup_free(cg);
    dt_cgroup_manager_free(m);
}

static void
test_v2_delegation_errors(void **state)
{
    _cleanup_free_ char *self = write_self("0::/a\n");
    struct dt_cgroup_manager *m = NULL;
    struct dt_error *e = NULL;
    char *a = fx("a");

    /* Our own cgroup holds processes (daytonad itself): enabling controllers would be EBUSY. */
    putf(a, "cgroup.procs", "42\n");
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, EBUSY, "delegated");
    putf(a, "cgroup.procs", "");

    /* A controller not delegated to us. */
    char *ctrls = fx("a/cgroup.controllers");
    assert_int_equal(unlink(ctrls), 0);
    put(ctrls, "memory cpu\n");
    free(ctrls);
    assert_err(dt_cgroup_manager_new(fake.root, self, "daytona", &m, &e), &e, ENOTSUP, "'pids'");

    /* At the root (or a cgroup namespace's root) processes are allowed. */
    _cleanup_free_ char *root_self = write_self("0::/\n");
    assert_int_equal(dt_cgroup_manager_new(fake.root, root_self, "daytona", &m, &e), 0);
    assert_int_equal(dt_cgroup_manager_version(m), DT_CGROUP_V2);
    char *sub = fx("daytona");
    assert_file(sub, "cgroup.controllers", "cpuset cpu io memory pids");
    assert_file(sub, "cgroup.subtree_control", "+memory +cpu +pids");
    free(sub);
    dt_cgroup_manager_free(m);
    free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_v1_detect_and_nesting, setup_v1, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v1_create_limits, setup_v1, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v1_freeze_kill_stats, setup_v1, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v1_rollback_and_no_swap, setup_v1,
                                            teardown_fake),
            cmocka_unit_test_setup_teardown(test_bad_names, setup_v1, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v1_missing_controllers, setup_v1, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v1_comount_without_symlinks, setup_v1,
                                            teardown_fake),
            cmocka_unit_test_setup_teardown(test_detect_errors, setup_empty, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v2_enable_and_limits, setup_v2, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v2_freeze_kill_stats, setup_v2, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v2_children_and_busy, setup_v2, teardown_fake),
            cmocka_unit_test_setup_teardown(test_v2_delegation_errors, setup_v2, teardown_fake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
