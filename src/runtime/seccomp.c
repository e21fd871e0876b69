/* SPDX-License-Identifier: Apache-2.0 */
/* Builds the sandbox's default seccomp filter with libseccomp (a deny list on top of ALLOW, after
 * Docker's default profile) and loads the compiled BPF with a bare seccomp(2) call, so the load
 * itself can run in a forked child between fork() and execve(). */
#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/banned.h"

/* Denied with EPERM whatever their arguments. Docker's profile allows most of these only with a
 * capability the sandbox never has (CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_BOOT, ...), which in a
 * deny list amounts to denying them. Names only one ABI has (vm86, umount, the 32-bit time64
 * setters) are listed too: they are skipped on the ABIs where libseccomp does not know them. */
/* clang-format off */
const char *const dt_seccomp_denied_syscalls[] = {
    /* Accounting, kernel keyring. */
    "acct", "add_key", "keyctl", "request_key",
    /* eBPF, perf, userfaultfd and io_uring: large kernel attack surface (Docker blocks io_uring
     * since 25.0). */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
    /* Clocks: the time is shared with the host. stime and the *64 variants are the 32-bit
     * entry points to the same operations. */
    "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64", "settimeofday",
    "stime",
    /* Kernel modules and kexec. */
    "create_module", "delete_module", "init_module", "finit_module", "get_kernel_syms",
    "query_module", "kexec_file_load", "kexec_load",
    /* Raw I/O ports, vm86 mode. */
    "ioperm", "iopl", "vm86", "vm86old",
    /* Peeking at other processes' kernel objects; file handles bypass path permissions
     * (the "shocker" container escape). */
    "kcmp", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at",
    /* Mounts, old and new API, and namespaces. */
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "open_tree", "move_mount", "mount_setattr", "setns", "unshare",
    /* Host-wide knobs. */
    "nfsservctl", "quotactl", "quotactl_fd", "reboot", "swapon", "swapoff", "sysfs", "_sysctl",
    "uselib", "ustat", "fanotify_init",
    NULL,
};
/* clang-format on */

/* The namespace flags of clone(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
 * Together they make the mask 0x7E020000. CLONE_NEWTIME (0x80) is not here: in clone(2) that bit
 * belongs to the exit signal, and only unshare (denied) and clone3 (ENOSYS) accept it. */
static const uint64_t clone_ns_flags[] = {
        CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
        CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
};

static void
seccomp_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}
#define _cleanup_seccomp_ _cleanup_(seccomp_releasep)

/* personality(2) is allowed only for the values Docker allows: 0 (PER_LINUX), 8 (PER_LINUX32),
 * 0x20000 (UNAME26), 0x20008 (PER_LINUX32|UNAME26) and 0xffffffff (query). Everything else
 * (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weakens the process's own hardening.
 *
 * With default ALLOW this is "EPERM unless the argument is one of five values", which libseccomp
 * 2.5 cannot say directly: it rejects two comparisons of one argument in a rule (-EINVAL), and an
 * unconditional EPERM rule swallows any conditional rule on the same syscall. So the complement
 * is written as a union of single "(arg & mask) == datum" rules, each matching "bit i set and bit
 * j clear":
 *   - for the bits other than 3 and 17 taken in a cycle, "bit s[k] set and bit s[k+1] clear":
 *     any value whose bits outside {3,17} are not all equal has such a 1->0 step somewhere;
 *   - "bit 0 set and bit 3 clear", "bit 0 set and bit 17 clear": values whose other bits are
 *     all ones, but that are not 0xffffffff.
 * What is left are the values whose other bits are all zero (0, 8, 0x20000, 0x20008) and
 * 0xffffffff, exactly the allowed set. None of the rules can match an allowed value, since each
 * requires a set bit outside {3,17} and a clear bit. Only the low 32 bits are compared: the kernel
 * takes the argument as an unsigned int and ignores the rest. The unit test checks this against
 * the compiled program. */
static int
add_personality_rules(scmp_filter_ctx ctx, int nr)
{
    unsigned bits[30];
    size_t n = 0;
    int r;

    for (unsigned b = 0; b < 32; b++)
        if (b != 3 && b != 17)
            bits[n++] = b;

    for (size_t k = 0; k < n + 2; k++) {
        unsigned set, clear;
        if (k < n) {
            set = bits[k];
            clear = bits[(k + 1) % n];
        } else {
            set = 0;
            clear = k == n ? 3 : 17;
        }
        uint64_t mask = (UINT64_C(1) << set) | (UINT64_C(1) << clear);
        r = seccomp_rule_add_exact(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, mask, UINT64_C(1) << set));
        if (r < 0)
            return r;
    }
    return 0;
}

/* The number to give libseccomp for NAME in a context holding only ARCH, or -1 when ARCH has no
 * such syscall. libseccomp's rule calls take the number in the *native* numbering and translate
 * it for each architecture in the context (for a name the native ABI lacks, such as vm86 on
 * x86_64, that is a negative pseudo-number). Skipping names ARCH does not have (whether
 * __NR_SCMP_ERROR or a pseudo-number there) keeps dead comparisons out of the program. */
static int
resolve(uint32_t arch, const char *name)
{
    if (seccomp_syscall_resolve_name_arch(arch, name) < 0)
        return -1;
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}

/* Fill CTX, which holds the single architecture ARCH, with the profile's rules. */
static int
add_rules(scmp_filter_ctx ctx, uint32_t arch, const char **ret_name)
{
    int nr, r;

    for (size_t i = 0; dt_seccomp_denied_syscalls[i]; i++) {
        *ret_name = dt_seccomp_denied_syscalls[i];
        nr = resolve(arch, *ret_name);
        if (nr == -1)
            continue;
        r = seccomp_rule_add_exact(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0)
            return r;
    }

    /* clone3 passes its flags in a struct that BPF cannot read. ENOSYS makes glibc (>= 2.34)
     * and musl fall back to clone(), whose flags are checked below. */
    *ret_name = "clone3";
    nr = resolve(arch, *ret_name);
    if (nr != -1) {
        r = seccomp_rule_add_exact(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
        if (r < 0)
            return r;
    }

    /* clone(2) with any namespace flag: a new namespace is what unshare(2) would give, and
     * CLONE_NEWUSER in particular hands out a full capability set over fresh namespaces. The
     * flags are the first argument on the x86 family (s390 would differ; we do not build for
     * it). One rule per flag, since a rule cannot test "any of these bits". */
    *ret_name = "clone";
    nr = resolve(arch, *ret_name);
    if (nr != -1) {
        for (size_t i = 0; i < ELEMENTSOF(clone_ns_flags); i++) {
            r = seccomp_rule_add_exact(
                    ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                    SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
            if (r < 0)
                return r;
        }
    }

    *ret_name = "personality";
    nr = resolve(arch, *ret_name);
    if (nr != -1) {
        r = add_personality_rules(ctx, nr);
        if (r < 0)
            return r;
    }

    /* ptrace stays allowed, as in Docker on kernels >= 4.8, where a seccomp filter can no longer
     * be bypassed by rewriting a traced process's syscall. */
    *ret_name = NULL;
    return 0;
}

static const char *
arch_name(uint32_t arch)
{
    switch (arch) {
    case SCMP_ARCH_X86_64:
        return "x86_64";
    case SCMP_ARCH_X86:
        return "x86";
    case SCMP_ARCH_X32:
        return "x32";
    case SCMP_ARCH_AARCH64:
        return "aarch64";
    case SCMP_ARCH_ARM:
        return "arm";
    default:
        return "native";
    }
}

/* A context holding only ARCH, filled with the profile. */
static int
build_arch(uint32_t arch, scmp_filter_ctx *ret, struct dt_error **err)
{
    _cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
    const char *name = NULL;
    int r;

    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return dt_error_set(err, ENOMEM, "create seccomp filter");

    if (arch != seccomp_arch_native()) {
        r = seccomp_arch_add(ctx, arch);
        if (r < 0)
            return dt_error_errno(err, r, "add architecture %s to seccomp filter", arch_name(arch));
        r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
        if (r < 0)
            return dt_error_errno(err, r, "remove native architecture from seccomp filter");
    }

    r = add_rules(ctx, arch, &name);
    if (r < 0)
        return dt_error_errno(err, r, "add seccomp rule for '%s' on %s", name ? name : "?",
                              arch_name(arch));

    *ret = TAKE_PTR(ctx);
    return 0;
}

/* Compile CTX and read the program back. libseccomp 2.5 can only export to an fd
 * (seccomp_export_bpf_mem is 2.6), so it goes through a memfd. */
static int
export_bpf(scmp_filter_ctx ctx, struct sock_fprog *ret, struct dt_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    _cleanup_free_ struct sock_filter *insns = NULL;
    struct stat st;
    ssize_t n;
    int r;

    fd = memfd_create("dt-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "create memfd for seccomp program");

    r = seccomp_export_bpf(ctx, fd);
    if (r < 0)
        return dt_error_errno(err, r, "export seccomp program");

    if (fstat(fd, &st) < 0)
        return dt_error_errno(err, errno, "stat seccomp program");
    if (st.st_size <= 0 || st.st_size % (off_t) sizeof(struct sock_filter) != 0 ||
        st.st_size / (off_t) sizeof(struct sock_filter) > BPF_MAXINSNS)
        return dt_error_set(err, EINVAL, "seccomp program has a bad size (%lld bytes)",
                            (long long) st.st_size);

    insns = malloc((size_t) st.st_size);
    if (!insns)
        return dt_error_set(err, ENOMEM, "allocate seccomp program");

    if (lseek(fd, 0, SEEK_SET) < 0)
        return dt_error_errno(err, errno, "rewind seccomp program");
    n = read_full(fd, insns, (size_t) st.st_size);
    if (n < 0)
        return dt_error_errno(err, (int) n, "read seccomp program");
    if (n != st.st_size)
        return dt_error_set(err, EIO, "short read of seccomp program");

    ret->len = (unsigned short) (st.st_size / (off_t) sizeof(struct sock_filter));
    ret->filter = TAKE_PTR(insns);
    return 0;
}

int
dt_seccomp_build_default(struct sock_fprog *ret, struct dt_error **err)
{
    _cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
    uint32_t native = seccomp_arch_native();
    int r;

    DT_ASSERT(ret);

    r = build_arch(native, &ctx, err);
    if (r < 0)
        return r;

    /* On x86_64 a process can still enter the kernel through the i386 (int $0x80) and x32 ABIs,
     * with their own syscall numbers. Without rules for them a denied syscall would be one ABI
     * away. Each ABI is built in its own context, with numbers resolved for it, and merged.
     * Any other architecture hits libseccomp's bad-arch action (kill). */
    if (native == SCMP_ARCH_X86_64) {
        static const uint32_t extra[] = {SCMP_ARCH_X86, SCMP_ARCH_X32};
        for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
            _cleanup_seccomp_ scmp_filter_ctx other = NULL;

            r = build_arch(extra[i], &other, err);
            if (r < 0)
                return r;
            r = seccomp_merge(ctx, other);
            if (r < 0)
                return dt_error_errno(err, r, "merge %s seccomp rules", arch_name(extra[i]));
            /* seccomp_merge() released OTHER. */
            other = NULL;
        }
    }

    return export_bpf(ctx, ret, err);
}

