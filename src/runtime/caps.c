/* SPDX-License-Identifier: Apache-2.0 */
/* Capability sets for the sandbox's init process: Docker's default mask, names, and the drop
 * itself, done with raw prctl(2)/capset(2) so it can run in a forked child right before
 * execve() (no libcap: it allocates). */
#include "runtime/caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <stddef.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dt/macros.h"
#include "dt/banned.h"

#define CAP_BIT(c) (UINT64_C(1) << (c))

/* The kernel's names without the CAP_ prefix, indexed by number (include/uapi/linux/capability.h).
 * Numbers past CAP_LAST_CAP of our headers are unknown by name but still dropped by number. */
static const char *const cap_names[] = {
        [CAP_CHOWN] = "chown",
        [CAP_DAC_OVERRIDE] = "dac_override",
        [CAP_DAC_READ_SEARCH] = "dac_read_search",
        [CAP_FOWNER] = "fowner",
        [CAP_FSETID] = "fsetid",
        [CAP_KILL] = "kill",
        [CAP_SETGID] = "setgid",
        [CAP_SETUID] = "setuid",
        [CAP_SETPCAP] = "setpcap",
        [CAP_LINUX_IMMUTABLE] = "linux_immutable",
        [CAP_NET_BIND_SERVICE] = "net_bind_service",
        [CAP_NET_BROADCAST] = "net_broadcast",
        [CAP_NET_ADMIN] = "net_admin",
        [CAP_NET_RAW] = "net_raw",
        [CAP_IPC_LOCK] = "ipc_lock",
        [CAP_IPC_OWNER] = "ipc_owner",
        [CAP_SYS_MODULE] = "sys_module",
        [CAP_SYS_RAWIO] = "sys_rawio",
        [CAP_SYS_CHROOT] = "sys_chroot",
        [CAP_SYS_PTRACE] = "sys_ptrace",
        [CAP_SYS_PACCT] = "sys_pacct",
        [CAP_SYS_ADMIN] = "sys_admin",
        [CAP_SYS_BOOT] = "sys_boot",
        [CAP_SYS_NICE] = "sys_nice",
        [CAP_SYS_RESOURCE] = "sys_resource",
        [CAP_SYS_TIME] = "sys_time",
        [CAP_SYS_TTY_CONFIG] = "sys_tty_config",
        [CAP_MKNOD] = "mknod",
        [CAP_LEASE] = "lease",
        [CAP_AUDIT_WRITE] = "audit_write",
        [CAP_AUDIT_CONTROL] = "audit_control",
        [CAP_SETFCAP] = "setfcap",
        [CAP_MAC_OVERRIDE] = "mac_override",
        [CAP_MAC_ADMIN] = "mac_admin",
        [CAP_SYSLOG] = "syslog",
        [CAP_WAKE_ALARM] = "wake_alarm",
        [CAP_BLOCK_SUSPEND] = "block_suspend",
        [CAP_AUDIT_READ] = "audit_read",
        [CAP_PERFMON] = "perfmon",
        [CAP_BPF] = "bpf",
        [CAP_CHECKPOINT_RESTORE] = "checkpoint_restore",
};

uint64_t
dt_caps_default_mask(void)
{
    /* moby's oci/caps/defaults.go. */
    return CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FSETID) |
           CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_MKNOD) | CAP_BIT(CAP_NET_RAW) | CAP_BIT(CAP_SETGID) |
           CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_SETPCAP) |
           CAP_BIT(CAP_NET_BIND_SERVICE) | CAP_BIT(CAP_SYS_CHROOT) | CAP_BIT(CAP_KILL) |
           CAP_BIT(CAP_AUDIT_WRITE);
}

int
dt_caps_from_name(const char *name)
{
    if (!name)
        return -EINVAL;
    if (strncasecmp(name, "CAP_", 4) == 0)
        name += 4;
    for (size_t i = 0; i < ELEMENTSOF(cap_names); i++)
        if (cap_names[i] && strcasecmp(name, cap_names[i]) == 0)
            return (int) i;
    return -EINVAL;
}

/* Only raw syscalls below: this runs between fork() and execve(). */

int
dt_caps_apply(uint64_t keep, bool ambient)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
    uint64_t known = 0;
    int r;

    /* After setresuid() away from root with PR_SET_KEEPCAPS the kernel keeps the permitted set
     * but empties the effective one. Raise effective to permitted so the steps below (which
     * need CAP_SETPCAP) work in that case too. */
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    if (data[0].effective != data[0].permitted || data[1].effective != data[1].permitted) {
        data[0].effective = data[0].permitted;
        data[1].effective = data[1].permitted;
        if (syscall(SYS_capset, &hdr, data) < 0)
            return -errno;
    }

    /* The bounding set first: dropping from it needs CAP_SETPCAP in the effective set, which the
     * capset() below may remove. It is what limits a later execve() of a setuid-root or
     * file-capability binary, and what uid 0 gets back on every execve(), so it is the part that
     * matters most. The kernel's last capability is found by asking until EINVAL rather than
     * from /proc/sys/kernel/cap_last_cap, which may not be mounted here; a kernel newer than our
     * headers then still gets its new capabilities dropped. */
    for (unsigned cap = 0; cap < 64; cap++) {
        r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0) {
            if (errno == EINVAL)
                break;
            return -errno;
        }
        known |= CAP_BIT(cap);
        /* Dropping what is already gone would still need CAP_SETPCAP; skip it. */
        if (r == 1 && !(keep & CAP_BIT(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -errno;
    }
    /* Bits for capabilities this kernel does not have would make capset() fail with EPERM. */
    keep &= known;

    /* Ambient capabilities survive execve() for non-root users; none unless asked for.
     * EINVAL: kernel older than 4.3, which has no ambient set to clear. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;

    /* Permitted and effective become KEEP. Inheritable stays empty unless ambient capabilities
     * are wanted (raising one requires it in permitted and inheritable): a non-empty
     * inheritable set lets a non-root user gain capabilities by executing a program with
     * inheritable file capabilities (CVE-2022-24769; Docker and runc leave it empty since). */
    uint64_t inheritable = ambient ? keep : 0;
    hdr.version = _LINUX_CAPABILITY_VERSION_3; /* capget() may have rewritten it */
    hdr.pid = 0;
    for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        data[i].effective = (uint32_t) (keep >> (32 * i));
        data[i].permitted = (uint32_t) (keep >> (32 * i));
        data[i].inheritable = (uint32_t) (inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;

    if (ambient)
        for (unsigned cap = 0; cap < 64; cap++)
            if ((keep & CAP_BIT(cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                return -errno;

    return 0;
}

int
dt_caps_get_effective(uint64_t *ret)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};

    DT_ASSERT(ret);
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    *ret = (uint64_t) data[0].effective | ((uint64_t) data[1].effective << 32);
    return 0;
}
