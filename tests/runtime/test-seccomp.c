/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the default seccomp filter: the compiled program is run through a small classic-BPF
 * interpreter for every ABI (x86_64, i386, x32) and every rule, then loaded for real in a forked
 * child that checks denied syscalls fail with EPERM/ENOSYS and ordinary ones still work. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "runtime/seccomp.h"
#include "testlib.h"
#include "dt/banned.h"

static struct sock_fprog prog;

static int
setup(void **state)
{
    _cleanup_error_ struct dt_error *err = NULL;
    int r = dt_seccomp_build_default(&prog, &err);
    if (r < 0) {
        fprintf(stderr, "build: %s\n", err ? err->message : "?");
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    free(prog.filter);
    prog.filter = NULL;
    return 0;
}

/* ---- A classic BPF interpreter, enough for what libseccomp emits. ---- */

static uint32_t
run_bpf(const struct sock_fprog *p, const struct seccomp_data *d)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    const unsigned char *data = (const unsigned char *) d;

    for (size_t pc = 0; pc < p->len; pc++) {
        const struct sock_filter *f = &p->filter[pc];
        uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
        switch (BPF_CLASS(f->code)) {
        case BPF_LD:
            if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
                assert_true(f->k % 4 == 0 && f->k + 4 <= sizeof(*d));
                memcpy(&a, data + f->k, 4);
            } else if (f->code == (BPF_LD | BPF_IMM))
                a = f->k;
            else if (f->code == (BPF_LD | BPF_MEM))
                a = mem[f->k];
            else
                fail_msg("unhandled BPF_LD %#x", f->code);
            break;
        case BPF_LDX:
            if (f->code == (BPF_LDX | BPF_IMM))
                x = f->k;
            else if (f->code == (BPF_LDX | BPF_MEM))
                x = mem[f->k];
            else
                fail_msg("unhandled BPF_LDX %#x", f->code);
            break;
        case BPF_ST:
            mem[f->k] = a;
            break;
        case BPF_STX:
            mem[f->k] = x;
            break;
        case BPF_ALU:
            switch (BPF_OP(f->code)) {
            case BPF_ADD:
                a += src;
                break;
            case BPF_SUB:
                a -= src;
                break;
            case BPF_AND:
                a &= src;
                break;
            case BPF_OR:
                a |= src;
                break;
            case BPF_XOR:
                a ^= src;
                break;
            case BPF_LSH:
                a <<= src;
                break;
            case BPF_RSH:
                a >>= src;
                break;
            case BPF_NEG:
                a = -a;
                break;
            default:
                fail_msg("unhandled BPF_ALU %#x", f->code);
            }
            break;
        case BPF_JMP: {
            bool t;
            switch (BPF_OP(f->code)) {
            case BPF_JA:
                pc += f->k;
                continue;
            case BPF_JEQ:
                t = a == src;
                break;
            case BPF_JGT:
                t = a > src;
                break;
            case BPF_JGE:
                t = a >= src;
                break;
            case BPF_JSET:
                t = (a & src) != 0;
                break;
            default:
                fail_msg("unhandled BPF_JMP %#x", f->code);
                return 0;
            }
            pc += t ? f->jt : f->jf;
            break;
        }
        case BPF_RET:
            return BPF_RVAL(f->code) == BPF_A ? a : f->k;
        case BPF_MISC:
            if (BPF_MISCOP(f->code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        }
    }
    fail_msg("BPF program fell off the end");
    return 0;
}

struct abi {
    const char *name;
    uint32_t scmp_arch;
    uint32_t audit_arch;
};

static const struct abi abis[] = {
        {"x86_64", SCMP_ARCH_X86_64, AUDIT_ARCH_X86_64},
        {"x86", SCMP_ARCH_X86, AUDIT_ARCH_I386},
        /* x32 shares the x86_64 audit arch; libseccomp's x32 numbers carry __X32_SYSCALL_BIT. */
        {"x32", SCMP_ARCH_X32, AUDIT_ARCH_X86_64},
};

static uint32_t
eval(const struct abi *abi, int nr, uint64_t arg0)
{
    struct seccomp_data d = {.nr = nr, .arch = abi->audit_arch};
    d.args[0] = arg0;
    return run_bpf(&prog, &d);
}

static int
nr_of(const struct abi *abi, const char *name)
{
    return seccomp_syscall_resolve_name_arch(abi->scmp_arch, name);
}

#define RET_EPERM  (SECCOMP_RET_ERRNO | EPERM)
#define RET_ENOSYS (SECCOMP_RET_ERRNO | ENOSYS)

static void
test_program_shape(void **state)
{
    assert_non_null(prog.filter);
    assert_true(prog.len > 10 && prog.len <= BPF_MAXINSNS);
    /* The list names what we promise to block. */
    size_t n = 0;
    for (; dt_seccomp_denied_syscalls[n]; n++)
        ;
    assert_true(n >= 50);
}

static void
test_denied_on_every_abi(void **state)
{
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        skip();
    for (size_t a = 0; a < ELEMENTSOF(abis); a++) {
        size_t checked = 0;
        for (size_t i = 0; dt_seccomp_denied_syscalls[i]; i++) {
            int nr = nr_of(&abis[a], dt_seccomp_denied_syscalls[i]);
            if (nr < 0)
                continue;
            uint32_t ret = eval(&abis[a], nr, 0);
            if (ret != RET_EPERM)
                fail_msg("%s %s (%d): got %#x", abis[a].name, dt_seccomp_denied_syscalls[i], nr,
                         ret);
            checked++;
        }
        assert_true(checked >= 40);
        /* One 32-bit-only name each, so a wrong-ABI resolution would show. */
        if (abis[a].scmp_arch == SCMP_ARCH_X86) {
            assert_int_equal(eval(&abis[a], nr_of(&abis[a], "vm86"), 0), RET_EPERM);
            assert_int_equal(eval(&abis[a], nr_of(&abis[a], "clock_settime64"), 0), RET_EPERM);
        }
    }
}

static void
test_allowed_on_every_abi(void **state)
{
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        skip();
    static const char *const allowed[] = {"read",   "write",  "openat", "close", "getpid",
                                          "ptrace", "execve", "mmap",   "wait4", "exit_group",
                                          "socket", "chown",  "fork",   "vfork", NULL};
    for (size_t a = 0; a < ELEMENTSOF(abis); a++) {
        for (size_t i = 0; allowed[i]; i++) {
            int nr = nr_of(&abis[a], allowed[i]);
            if (nr < 0)
                continue;
            if (eval(&abis[a], nr, 0) != SECCOMP_RET_ALLOW)
                fail_msg("%s %s should be allowed", abis[a].name, allowed[i]);
        }
        /* A syscall number no rule names. */
        assert_int_equal(eval(&abis[a], nr_of(&abis[a], "getppid"), 0xdead), SECCOMP_RET_ALLOW);
    }
    /* A foreign ABI is killed, not allowed. */
    struct seccomp_data d = {.nr = 0, .arch = AUDIT_ARCH_AARCH64};
    uint32_t ret = run_bpf(&prog, &d) & SECCOMP_RET_ACTION_FULL;
    assert_true(ret == SECCOMP_RET_KILL_THREAD || ret == SECCOMP_RET_KILL_PROCESS);
    /* x86_64 numbers with the x32 bit are x32 calls, filtered as such (keyctl above); numbers
     * carrying only the bit but no x32 syscall stay harmless (the kernel returns ENOSYS). */
}

static void
test_clone_rules(void **state)
{
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        skip();
    static const uint64_t ns[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                  CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};
    uint64_t all = 0;
    for (size_t i = 0; i < ELEMENTSOF(ns); i++)
        all |= ns[i];
    assert_int_equal(all, 0x7E020000);

    for (size_t a = 0; a < ELEMENTSOF(abis); a++) {
        int nr = nr_of(&abis[a], "clone");
        int nr3 = nr_of(&abis[a], "clone3");
        assert_true(nr >= 0 && nr3 >= 0);
        /* What glibc's fork() and pthread_create() pass. */
        uint64_t fork_flags = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD;
        uint64_t thread_flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID |
                                CLONE_CHILD_CLEARTID;
        assert_int_equal(eval(&abis[a], nr, fork_flags), SECCOMP_RET_ALLOW);
        assert_int_equal(eval(&abis[a], nr, thread_flags), SECCOMP_RET_ALLOW);
        for (size_t i = 0; i < ELEMENTSOF(ns); i++) {
            assert_int_equal(eval(&abis[a], nr, ns[i] | SIGCHLD), RET_EPERM);
            assert_int_equal(eval(&abis[a], nr, ns[i] | fork_flags), RET_EPERM);
        }
        assert_int_equal(eval(&abis[a], nr3, 0), RET_ENOSYS);
    }
}

static bool
personality_allowed(uint64_t v)
{
    uint32_t lo = (uint32_t) v;
    return lo == 0 || lo == 8 || lo == 0x20000 || lo == 0x20008 || lo == 0xffffffff;
}

static void
check_personality(const struct abi *abi, int nr, uint64_t v)
{
    uint32_t want = personality_allowed(v) ? SECCOMP_RET_ALLOW : RET_EPERM;
    /* The i386 ABI has 32-bit arguments: the kernel zero-extends them. */
    if (abi->audit_arch == AUDIT_ARCH_I386)
        v = (uint32_t) v;
    uint32_t got = eval(abi, nr, v);
    if (got != want)
        fail_msg("%s personality(%#llx): got %#x, want %#x", abi->name, (unsigned long long) v, got,
                 want);
}

static void
test_personality_rules(void **state)
{
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        skip();
    for (size_t a = 0; a < ELEMENTSOF(abis); a++) {
        int nr = nr_of(&abis[a], "personality");
        assert_true(nr >= 0);
        static const uint64_t fixed[] = {0,
                                         8,
                                         0x20000,
                                         0x20008,
                                         0xffffffff,
                                         1,
                                         7,
                                         9,
                                         0x1ffff,
                                         0x20001,
                                         0x20007,
                                         0x20009,
                                         0x400000 /* READ_IMPLIES_EXEC */,
                                         0x0040000 /* ADDR_NO_RANDOMIZE */,
                                         0xfffffffe,
                                         0xfffffff7,
                                         0xfffdffff,
                                         0xfffdfff7,
                                         0x7fffffff,
                                         0x80000000,
                                         0x100000000ULL,
                                         0x100000008ULL,
                                         0x1ffffffffULL,
                                         0xffffffff00000001ULL};
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
            check_personality(&abis[a], nr, fixed[i]);
        /* Every value with one or two bits set, and their complements. */
        for (unsigned i = 0; i < 32; i++)
            for (unsigned j = i; j < 32; j++) {
                uint32_t v = (1U << i) | (1U << j);
                check_personality(&abis[a], nr, v);
                check_personality(&abis[a], nr, ~v);
            }
        /* And some pseudo-random ones. */
        uint64_t s = 0x9e3779b97f4a7c15ULL;
        for (int i = 0; i < 20000; i++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            check_personality(&abis[a], nr, s);
            check_personality(&abis[a], nr, s & 0x20008);
        }
    }
}

/* ---- The real kernel, in a forked child. ---- */

static char report[4096];
static size_t report_len;

_printf_(1, 2) static void child_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + report_len, sizeof(report) - report_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        report_len += (size_t) n < sizeof(report) - report_len ? (size_t) n
                                                               : sizeof(report) - report_len - 1;
}

/* Check that R (a raw syscall result) is -1 with errno WANT. */
static void
expect_errno(const char *what, long r, int want)
{
    if (r != -1 || errno != want)
        child_fail("%s: got r=%ld errno=%s, want %s\n", what, r,
                   r == -1 ? dt_errno_name(errno) : "-", dt_errno_name(want));
}

/* Before the filter: the same calls with harmless arguments fail with something other than
 * EPERM, so the EPERM seen afterwards is the filter's (only meaningful as root). */
static void
expect_not_eperm(const char *what, long r)
{
    if (r == -1 && errno == EPERM && geteuid() == 0)
        child_fail("%s: EPERM even without the filter, test is meaningless\n", what);
}

static void *
thread_main(void *arg)
{
    return arg;
}

static void
child_checks(void)
{
    struct dt_error *err = NULL;
    long r;

    /* Baseline. */
    expect_not_eperm("pre keyctl",
                     syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    expect_not_eperm("pre bpf", syscall(SYS_bpf, -1, NULL, 0));
    expect_not_eperm("pre perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    expect_not_eperm("pre mount", mount("none", "/nonexistent-dt-seccomp", "tmpfs", 0, NULL));
    expect_not_eperm("pre open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    expect_not_eperm("pre personality", personality(0xffffffff));

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        child_fail("PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
        return;
    }
    int k = dt_seccomp_load(&prog);
    if (k < 0) {
        child_fail("dt_seccomp_load: %s\n", strerror(-k));
        return;
    }
    (void) err;

    expect_errno("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
                 EPERM);
    expect_errno("add_key",
                 syscall(SYS_add_key, "user", "dt-test", "x", 1, KEY_SPEC_PROCESS_KEYRING), EPERM);
    expect_errno("bpf", syscall(SYS_bpf, -1, NULL, 0), EPERM);
    expect_errno("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
    expect_errno("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER), EPERM);
    expect_errno("mount", mount("none", "/nonexistent-dt-seccomp", "tmpfs", 0, NULL), EPERM);
    expect_errno("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);
    expect_errno("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
    expect_errno("setns", setns(-1, 0), EPERM);
    expect_errno("personality(ADDR_NO_RANDOMIZE)", personality(ADDR_NO_RANDOMIZE), EPERM);

    struct clone_args ca = {.exit_signal = SIGCHLD};
    r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0)
        _exit(0);
    if (r > 0)
        (void) waitpid((pid_t) r, NULL, 0);
    expect_errno("clone3", r, ENOSYS);

    r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        (void) waitpid((pid_t) r, NULL, 0);
    expect_errno("clone(CLONE_NEWNS)", r, EPERM);

    /* Ordinary life goes on: fork (clone without namespace flags), threads (clone3 -> ENOSYS
     * -> clone fallback in glibc), files, personality queries. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 7)
        child_fail("fork: pid=%d status=%#x errno=%s\n", (int) pid, status, dt_errno_name(errno));

    pthread_t th;
    void *res = NULL;
    int e = pthread_create(&th, NULL, thread_main, (void *) 0x42);
    if (e != 0)
        child_fail("pthread_create: %s\n", strerror(e));
    else if (pthread_join(th, &res) != 0 || res != (void *) 0x42)
        child_fail("pthread_join failed\n");

    if (getpid() != (pid_t) syscall(SYS_getpid))
        child_fail("getpid mismatch\n");
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char buf[64];
    if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
        child_fail("open/read /proc/self/status: %s\n", strerror(errno));
    safe_close(fd);
    if (personality(0xffffffff) == -1)
        child_fail("personality(query): %s\n", strerror(errno));
    if (personality(PER_LINUX) == -1)
        child_fail("personality(PER_LINUX): %s\n", strerror(errno));
}

static void
test_kernel_enforces(void **state)
{
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        safe_close(pfd[0]);
        report_len = 0;
        child_checks();
        (void) write_all(pfd[1], report, report_len);
        _exit(report_len == 0 ? 0 : 1);
    }
    safe_close(pfd[1]);
    char out[4096] = {0};
    ssize_t n = read_full(pfd[0], out, sizeof(out) - 1);
    safe_close(pfd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (n > 0)
        fprintf(stderr, "%s", out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(n, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_program_shape),        cmocka_unit_test(test_denied_on_every_abi),
            cmocka_unit_test(test_allowed_on_every_abi), cmocka_unit_test(test_clone_rules),
            cmocka_unit_test(test_personality_rules),    cmocka_unit_test(test_kernel_enforces),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
