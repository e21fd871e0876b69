/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox plan: defaults, ownership, and validation without side effects. Everything that
 * comes from a user passes through dt_plan_validate() before any namespace, mount or cgroup
 * exists. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "net.h"
#include "dt/banned.h"

void
dt_plan_init(struct dt_plan *plan)
{
    *plan = (struct dt_plan){
            .memory_bytes = DT_LIMIT_UNLIMITED,
            .swap_bytes = 0,
            .cpu_millicpus = DT_LIMIT_UNLIMITED,
            .pids_max = DT_LIMIT_UNLIMITED,
            .net_mode = DT_NET_NONE,
    };
}

void
dt_plan_done(struct dt_plan *plan)
{
    free(plan->id);
    strv_free(plan->layers);
    free(plan->hostname);
    strv_free(plan->args);
    strv_free(plan->env);
    free(plan->cwd);
    free(plan->user);
    for (size_t i = 0; i < plan->n_binds; i++) {
        free(plan->binds[i].source);
        free(plan->binds[i].destination);
    }
    free(plan->binds);
    strv_free(plan->allow_cidrs);
    dt_plan_init(plan);
}

static bool
id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* An absolute path without "." or ".." components and without control characters. */
static bool
path_clean_absolute(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) >= 4096)
        return false;
    for (const char *s = p; *s; s++)
        if ((unsigned char) *s < 0x20)
            return false;
    const char *c = p;
    while (*c) {
        while (*c == '/')
            c++;
        const char *e = strchrnul(c, '/');
        size_t len = (size_t) (e - c);
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c = e;
    }
    return true;
}

static bool
hostname_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 63 || h[0] == '-' || h[0] == '.')
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

static bool
user_valid(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = u; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.' || *p == ':' || *p == '$'))
            return false;
    return true;
}

int
dt_plan_validate(const struct dt_plan *p, struct dt_error **err)
{
    struct stat st;

    if (!id_valid(p->id))
        return dt_error_set(err, EINVAL, "invalid sandbox id '%s': use 1-64 of [A-Za-z0-9_.-]",
                            p->id ? p->id : "");
    size_t nl = strv_length(p->layers);
    if (nl == 0)
        return dt_error_set(err, EINVAL, "no root filesystem layer given");
    if (nl > DT_MAX_LAYERS)
        return dt_error_set(err, EINVAL, "too many layers (%zu, at most %d)", nl, DT_MAX_LAYERS);
    for (size_t i = 0; i < nl; i++) {
        if (!path_clean_absolute(p->layers[i]) || strchr(p->layers[i], ':') ||
            strchr(p->layers[i], ','))
            return dt_error_set(err, EINVAL,
                                "invalid layer path '%s': must be absolute, without '..', ':' or ','",
                                p->layers[i]);
        if (stat(p->layers[i], &st) < 0)
            return dt_error_errno(err, errno, "root filesystem '%s'", p->layers[i]);
        if (!S_ISDIR(st.st_mode))
            return dt_error_set(err, ENOTDIR, "root filesystem '%s' is not a directory",
                                p->layers[i]);
    }
    if (p->slot >= DT_MAX_SLOTS)
        return dt_error_set(err, EINVAL, "slot %u out of range (< %u)", p->slot, DT_MAX_SLOTS);

    if (p->memory_bytes != DT_LIMIT_UNLIMITED && p->memory_bytes < (4ULL << 20))
        return dt_error_set(err, EINVAL, "memory limit %llu bytes is below the minimum of 4 MiB",
                            (unsigned long long) p->memory_bytes);
    if (p->swap_bytes != 0 && p->swap_bytes != DT_LIMIT_UNLIMITED &&
        p->memory_bytes == DT_LIMIT_UNLIMITED)
        return dt_error_set(err, EINVAL, "a swap limit needs a memory limit");
    if (p->cpu_millicpus != DT_LIMIT_UNLIMITED) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (p->cpu_millicpus < 10)
            return dt_error_set(err, EINVAL, "cpu limit must be at least 0.01");
        if (ncpu > 0 && p->cpu_millicpus > (uint64_t) ncpu * 1000)
            return dt_error_set(err, EINVAL, "cpu limit %.3f exceeds the host's %ld CPUs",
                                (double) p->cpu_millicpus / 1000.0, ncpu);
    }
    if (p->pids_max == 0)
        return dt_error_set(err, EINVAL, "pids limit must be at least 1");
    if (p->disk_bytes != 0 && p->disk_bytes < (16ULL << 20))
        return dt_error_set(err, EINVAL, "disk limit %llu bytes is below the minimum of 16 MiB",
                            (unsigned long long) p->disk_bytes);
    if (p->ephemeral && p->disk_bytes)
        return dt_error_set(err, EINVAL, "an ephemeral sandbox has no disk quota");
    if (p->disk_bytes > (16ULL << 40))
        return dt_error_set(err, EINVAL, "disk limit above 16 TiB");
    if (p->hostname && !hostname_valid(p->hostname))
        return dt_error_set(err, EINVAL, "invalid hostname '%s'", p->hostname);

    size_t na = strv_length(p->args);
    if (na == 0)
        return dt_error_set(err, EINVAL, "no command given");
    if (na > DT_MAX_ARGS)
        return dt_error_set(err, EINVAL, "too many arguments (at most %d)", DT_MAX_ARGS);
    if (p->args[0][0] == 0)
        return dt_error_set(err, EINVAL, "empty command");
    size_t ne = strv_length(p->env);
    if (ne > DT_MAX_ENV)
        return dt_error_set(err, EINVAL, "too many environment variables (at most %d)",
                            DT_MAX_ENV);
    for (size_t i = 0; i < ne; i++) {
        const char *eq = strchr(p->env[i], '=');
        if (!eq || eq == p->env[i])
            return dt_error_set(err, EINVAL, "invalid environment entry '%s': expected K=V",
                                p->env[i]);
    }
    if (p->cwd && !path_clean_absolute(p->cwd))
        return dt_error_set(err, EINVAL, "invalid working directory '%s': must be absolute",
                            p->cwd);
    if (p->user && !user_valid(p->user))
        return dt_error_set(err, EINVAL, "invalid user '%s'", p->user);

    if (p->n_binds > DT_MAX_MOUNTS)
        return dt_error_set(err, EINVAL, "too many bind mounts (at most %d)", DT_MAX_MOUNTS);
    for (size_t i = 0; i < p->n_binds; i++) {
        const struct dt_bind *b = &p->binds[i];
        if (!path_clean_absolute(b->source))
            return dt_error_set(err, EINVAL, "invalid bind source '%s': must be absolute",
                                b->source ? b->source : "");
        if (!path_clean_absolute(b->destination) || strcmp(b->destination, "/") == 0)
            return dt_error_set(err, EINVAL, "invalid bind destination '%s'",
                                b->destination ? b->destination : "");
        if (stat(b->source, &st) < 0)
            return dt_error_errno(err, errno, "bind source '%s'", b->source);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            return dt_error_set(err, EINVAL, "bind source '%s' is not a file or directory",
                                b->source);
    }

    if (p->net_mode != DT_NET_NONE && p->net_mode != DT_NET_BRIDGE)
        return dt_error_set(err, EINVAL, "unknown network mode");
    size_t nc = strv_length(p->allow_cidrs);
    if (nc > DT_NET_MAX_ALLOW)
        return dt_error_set(err, EINVAL, "too many allowed CIDRs (at most %d)", DT_NET_MAX_ALLOW);
    for (size_t i = 0; i < nc; i++) {
        uint32_t a;
        unsigned pfx;
        if (dt_net_parse_cidr(p->allow_cidrs[i], &a, &pfx) < 0)
            return dt_error_set(err, EINVAL, "invalid CIDR '%s'", p->allow_cidrs[i]);
    }
    if ((nc > 0 || p->block_all_egress) && p->net_mode != DT_NET_BRIDGE)
        return dt_error_set(err, EINVAL, "egress rules need the bridge network mode");
    return 0;
}
