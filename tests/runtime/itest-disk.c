/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test for disk quotas (src/runtime/disk.c): real ext4 images on real loop devices,
 * mounted detached. Needs root, /dev/loop-control and mkfs.ext4; skips (77) otherwise. */
#include "testlib.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "runtime/disk.h"
#include "dt/banned.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define SANDBOX_UID 100000

static char *tmpdir;

/* Mount fds still open, closed by the per-test teardown when an assertion jumps out early. */
static int open_mounts[16];
static size_t n_open_mounts;

static void
close_mount(int fd)
{
    for (size_t i = 0; i < n_open_mounts; i++)
        if (open_mounts[i] == fd) {
            open_mounts[i] = open_mounts[--n_open_mounts];
            break;
        }
    close(fd);
}

/* EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE; some container sandboxes drop it. */
static bool
have_cap_sys_resource(void)
{
    char *buf, *p;
    size_t len;
    unsigned long long eff = 0;
    assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &buf, &len), 0);
    p = strstr(buf, "\nCapEff:");
    assert_non_null(p);
    eff = strtoull(p + 8, NULL, 16);
    free(buf);
    return eff & (1ULL << 24); /* CAP_SYS_RESOURCE */
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static char *
img_path(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

/* Number of loop devices backed by a file under our temp dir (so other users of loop devices
 * on this machine cannot disturb the count). */
static int
count_our_loops(void)
{
    DIR *d = opendir("/sys/block");
    struct dirent *de;
    size_t plen = strlen(tmpdir);
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        char p[300], *buf = NULL;
        size_t len;
        if (strncmp(de->d_name, "loop", 4) != 0)
            continue;
        snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
        if (read_file_at(AT_FDCWD, p, 8192, &buf, &len) < 0)
            continue;
        if (strncmp(buf, tmpdir, plen) == 0 && buf[plen] == '/')
            n++;
        free(buf);
    }
    closedir(d);
    return n;
}

/* Wait up to MS for count_our_loops() to reach 0; returns the count seen last. */
static int
wait_no_loops(int ms)
{
    int n;
    for (int i = 0; (n = count_our_loops()) > 0 && i < ms / 10; i++)
        usleep(10 * 1000);
    return n;
}

/* The loop device under the mount MNTFD: "/sys/dev/block/M:m". */
static void
mount_sysdir(int mntfd, char *buf, size_t size, char *majmin, size_t mm_size)
{
    struct stat st;
    assert_int_equal(fstat(mntfd, &st), 0);
    snprintf(majmin, mm_size, "%u:%u", major(st.st_dev), minor(st.st_dev));
    snprintf(buf, size, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
}

/* True when some line of /proc/self/mountinfo is for device MAJMIN. */
static bool
mountinfo_has(const char *majmin)
{
    char *buf, needle[64];
    size_t len;
    assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 24, &buf, &len), 0);
    snprintf(needle, sizeof(needle), " %s ", majmin);
    bool found = strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

static void
fill(uint64_t *buf, size_t words, uint64_t off, uint64_t seed)
{
    for (size_t i = 0; i < words; i++)
        buf[i] = ((off / 8 + i) * 0x9E3779B97F4A7C15ULL) ^ seed;
}

/* Write a pattern into NAME on the mount until ENOSPC; returns bytes written. */
static uint64_t
write_until_enospc(int mntfd, const char *name, uint64_t seed)
{
    static uint64_t buf[MiB / 8];
    uint64_t off = 0;
    int fd = openat(mntfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    for (;;) {
        fill(buf, ELEMENTSOF(buf), off, seed);
        ssize_t n = write(fd, buf, sizeof(buf));
        if (n < 0 && errno == ENOSPC)
            break;
        assert_true(n > 0);
        if ((size_t) n < sizeof(buf)) {
            off += (uint64_t) n;
            break; /* short write: the next would be ENOSPC; keep the pattern aligned */
        }
        off += (uint64_t) n;
        assert_true(off <= 512 * MiB); /* the quota must stop us long before this */
    }
    assert_int_equal(fsync(fd), 0);
    close(fd);
    return off;
}

static void
verify_file(int mntfd, const char *name, uint64_t size, uint64_t seed)
{
    static uint64_t want[MiB / 8], got[MiB / 8];
    struct stat st;
    int fd = openat(mntfd, name, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t) st.st_size, size);
    for (uint64_t off = 0; off < size; off += sizeof(got)) {
        size_t chunk = size - off < sizeof(got) ? (size_t) (size - off) : sizeof(got);
        fill(want, ELEMENTSOF(want), off, seed);
        assert_int_equal(read_full(fd, got, chunk), (ssize_t) chunk);
        assert_memory_equal(got, want, chunk);
    }
    close(fd);
}

static int
mount_ok(const char *img)
{
    struct dt_error *err = NULL;
    int mntfd = -1;
    int r = dt_disk_mount(img, &mntfd, &err);
    if (r < 0)
        fail_msg("dt_disk_mount(%s): %s", img, err ? err->message : "?");
    dt_error_free(err);
    assert_true(n_open_mounts < ELEMENTSOF(open_mounts));
    open_mounts[n_open_mounts++] = mntfd;
    return mntfd;
}

static void
create_ok(const char *img, uint64_t size)
{
    struct dt_error *err = NULL;
    int r = dt_disk_create(img, size, SANDBOX_UID, SANDBOX_UID, &err);
    if (r < 0)
        fail_msg("dt_disk_create(%s): %s", img, err ? err->message : "?");
}

static void
test_create(void **state)
{
    struct dt_error *err = NULL;
    struct stat st;
    static const uint64_t sizes[] = {1 * GiB, 10 * GiB};

    for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
        char *img = img_path("big.img");
        double t0 = now_ms();
        create_ok(img, sizes[i]);
        double dt = now_ms() - t0;
        assert_int_equal(stat(img, &st), 0);
        print_message("create %llu GiB image: %.1f ms (%llu KiB allocated)\n",
                      (unsigned long long) (sizes[i] / GiB), dt,
                      (unsigned long long) st.st_blocks / 2);
        assert_int_equal((uint64_t) st.st_size, sizes[i]);
        assert_true((uint64_t) st.st_blocks * 512 < 64 * MiB); /* sparse */
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_true(dt < 5000);

        t0 = now_ms();
        int mntfd = mount_ok(img);
        double mount_ms = now_ms() - t0;
        uint64_t used, total;
        assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
        t0 = now_ms();
        close_mount(mntfd);
        assert_int_equal(wait_no_loops(2000), 0);
        print_message("  mount %.1f ms, unmount+detach %.1f ms, %.2f GiB usable, %.1f MiB used\n",
                      mount_ms, now_ms() - t0, (double) total / GiB, (double) used / MiB);
        assert_true(total > sizes[i] * 9 / 10);
        unlink(img);
        free(img);
    }

    /* -EEXIST, and the existing file is left alone (only files we made are removed). */
    char *img = img_path("exists.img");
    assert_int_equal(write_file_at(AT_FDCWD, img, "keep", 4, 0600), 0);
    assert_int_equal(dt_disk_create(img, 64 * MiB, 0, 0, &err), -EEXIST);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "exists.img"));
    dt_error_freep(&err);
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal(st.st_size, 4);
    unlink(img);

    /* Too small / too big: refused before anything is created. */
    assert_int_equal(dt_disk_create(img, 1 * MiB, 0, 0, &err), -EINVAL);
    dt_error_freep(&err);
    assert_int_equal(dt_disk_create(img, 1ULL << 60, 0, 0, &err), -EFBIG);
    dt_error_freep(&err);
    assert_int_equal(stat(img, &st), -1);
    free(img);

    /* A failing create (mkfs cannot use a path inside a missing dir) leaves nothing behind. */
    img = img_path("nodir/x.img");
    assert_true(dt_disk_create(img, 64 * MiB, 0, 0, &err) < 0);
    dt_error_freep(&err);
    free(img);
}

static void
test_quota_grow_remount(void **state)
{
    struct dt_error *err = NULL;
    char sysdir[96], majmin[32], backing[256], *buf;
    uint64_t used, total, a, b = 0;
    size_t len;
    int r;
    struct stat st;
    struct statvfs vfs;
    char *img = img_path("q.img");

    create_ok(img, 64 * MiB);
    int mntfd = mount_ok(img);

    /* Root directory of the filesystem belongs to the sandbox's root. */
    assert_int_equal(fstat(mntfd, &st), 0);
    assert_int_equal(st.st_uid, SANDBOX_UID);
    assert_int_equal(st.st_gid, SANDBOX_UID);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fstatvfs(mntfd, &vfs), 0);
    assert_true(vfs.f_flag & ST_NODEV);
    assert_true(vfs.f_flag & ST_NOSUID);

    mount_sysdir(mntfd, sysdir, sizeof(sysdir), majmin, sizeof(majmin));
    assert_false(mountinfo_has(majmin));
    snprintf(backing, sizeof(backing), "%s/loop/backing_file", sysdir);
    assert_int_equal(read_file_at(AT_FDCWD, backing, 8192, &buf, &len), 0);
    assert_non_null(strstr(buf, "/q.img"));
    free(buf);
    snprintf(backing, sizeof(backing), "%s/loop/dio", sysdir);
    assert_int_equal(read_file_at(AT_FDCWD, backing, 64, &buf, &len), 0);
    print_message("loop device %s, direct I/O %s", majmin, buf);
    free(buf);
    snprintf(backing, sizeof(backing), "%s/loop/autoclear", sysdir);
    assert_int_equal(read_file_at(AT_FDCWD, backing, 64, &buf, &len), 0);
    assert_int_equal(buf[0], '1');
    free(buf);

    assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
    assert_true(total > 48 * MiB && total <= 64 * MiB);

    /* The quota: ENOSPC close to 64 MiB. */
    a = write_until_enospc(mntfd, "a", 1);
    print_message("64 MiB image: wrote %.1f MiB before ENOSPC\n", (double) a / MiB);
    assert_true(a >= 48 * MiB);
    assert_true(a <= 64 * MiB);
    assert_false(mountinfo_has(majmin));

    /* Growth to 128 MiB while mounted: online where we may (CAP_SYS_RESOURCE), else refused
     * with the image grown, so that the filesystem grows at the next mount. */
    bool online = have_cap_sys_resource();
    r = dt_disk_grow(img, 128 * MiB, mntfd, &err);
    if (online) {
        if (r < 0)
            fail_msg("online grow: %s", err ? err->message : "?");
        assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
        assert_true(total > 112 * MiB && total <= 128 * MiB);
        b = write_until_enospc(mntfd, "b", 2);
        print_message("grown to 128 MiB online: wrote %.1f MiB more\n", (double) b / MiB);
    } else {
        assert_int_equal(r, -EPERM);
        assert_non_null(strstr(err->message, "CAP_SYS_RESOURCE"));
        print_message("no CAP_SYS_RESOURCE here, online growth refused: %s\n", err->message);
        dt_error_freep(&err);
        assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
        assert_true(total <= 64 * MiB);
        assert_int_equal(stat(img, &st), 0);
        assert_int_equal((uint64_t) st.st_size, 128 * MiB);
    }
    assert_int_equal(dt_disk_grow(img, 64 * MiB, mntfd, &err), -EINVAL); /* no shrinking */
    dt_error_freep(&err);
    assert_false(mountinfo_has(majmin));

    /* Closing the only reference unmounts, and autoclear releases the loop device. */
    close_mount(mntfd);
    double t0 = now_ms();
    assert_int_equal(wait_no_loops(2000), 0);
    print_message("loop device released %.1f ms after close\n", now_ms() - t0);
    assert_false(mountinfo_has(majmin));

    /* Remount: the data is intact. */
    mntfd = mount_ok(img);
    mount_sysdir(mntfd, sysdir, sizeof(sysdir), majmin, sizeof(majmin));
    assert_false(mountinfo_has(majmin));
    verify_file(mntfd, "a", a, 1);
    if (!online) {
        assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
        assert_true(total > 112 * MiB && total <= 128 * MiB);
        b = write_until_enospc(mntfd, "b", 2);
        print_message("grown to 128 MiB at remount: wrote %.1f MiB more\n", (double) b / MiB);
    }
    assert_true(b >= 56 * MiB);
    assert_true(a + b <= 128 * MiB);
    verify_file(mntfd, "b", b, 2);

    /* A second concurrent mount of the same image is refused, not made. */
    int fd2 = -1;
    t0 = now_ms();
    assert_int_equal(dt_disk_mount(img, &fd2, &err), -EBUSY);
    double waited = now_ms() - t0;
    assert_int_equal(fd2, -1);
    assert_non_null(err);
    print_message("second mount: %s (after %.0f ms)\n", err->message, waited);
    assert_non_null(strstr(err->message, "q.img"));
    dt_error_freep(&err);
    assert_true(waited >= 1500 && waited < 5000);
    assert_int_equal(count_our_loops(), 1);

    close_mount(mntfd);
    assert_int_equal(wait_no_loops(2000), 0);
    unlink(img);
    free(img);
}

static void
test_grow_offline(void **state)
{
    struct dt_error *err = NULL;
    uint64_t used, total;
    struct stat st;
    char *img = img_path("off.img"), *other = img_path("other.img");

    create_ok(img, 64 * MiB);
    assert_int_equal(dt_disk_grow(img, 256 * MiB, -1, &err), 0);
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal((uint64_t) st.st_size, 256 * MiB);
    assert_int_equal(dt_disk_grow(img, 128 * MiB, -1, &err), -EINVAL);
    dt_error_freep(&err);

    int mntfd = mount_ok(img);
    assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
    print_message("grown offline to 256 MiB: %.1f MiB total after mount\n", (double) total / MiB);
    assert_true(total > 240 * MiB && total <= 256 * MiB);
    assert_true(used < 16 * MiB);

    /* A mount fd that is not of this image is refused, and the other image stays as it was. */
    create_ok(other, 64 * MiB);
    assert_int_equal(dt_disk_grow(other, 128 * MiB, mntfd, &err), -EINVAL);
    assert_non_null(err);
    dt_error_freep(&err);
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal((uint64_t) st.st_size, 64 * MiB);

    close_mount(mntfd);
    assert_int_equal(wait_no_loops(2000), 0);

    /* Remount after growth leaves the size alone. */
    mntfd = mount_ok(img);
    assert_int_equal(dt_disk_usage(mntfd, &used, &total), 0);
    assert_true(total > 240 * MiB && total <= 256 * MiB);
    close_mount(mntfd);
    assert_int_equal(wait_no_loops(2000), 0);
    unlink(img);
    unlink(other);
    free(img);
    free(other);
}

static void
test_bad_images(void **state)
{
    struct dt_error *err = NULL;
    int mntfd = -1;
    struct stat st;
    char *img = img_path("zero.img");

    /* No ext4 at all: refused before a loop device is taken. */
    int fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 32 * MiB), 0);
    close(fd);
    assert_int_equal(dt_disk_mount(img, &mntfd, &err), -EINVAL);
    assert_non_null(strstr(err->message, "no ext4"));
    dt_error_freep(&err);
    unlink(img);

    /* A corrupt superblock (checksum mismatch): the kernel refuses it after the loop device is
     * attached; the device must be released and the image kept. */
    create_ok(img, 64 * MiB);
    fd = open(img, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "corrupt!", 8, 1024 + 0x78), 8); /* s_volume_name */
    close(fd);
    assert_true(dt_disk_mount(img, &mntfd, &err) < 0);
    assert_int_equal(mntfd, -1);
    assert_non_null(err);
    print_message("corrupt image: %s\n", err->message);
    dt_error_freep(&err);
    assert_int_equal(wait_no_loops(2000), 0);
    assert_int_equal(stat(img, &st), 0);
    unlink(img);

    assert_int_equal(dt_disk_mount(img, &mntfd, &err), -ENOENT);
    dt_error_freep(&err);
    free(img);
}

/* One create/mount/write/unmount cycle; returns 0 or a line number for the child to report. */
static int
cycle(const char *img)
{
    struct dt_error *err = NULL;
    int mntfd = -1, line = 0;

    if (dt_disk_create(img, 32 * MiB, SANDBOX_UID, SANDBOX_UID, &err) < 0)
        line = __LINE__;
    else if (dt_disk_mount(img, &mntfd, &err) < 0)
        line = __LINE__;
    else if (write_file_at(mntfd, "hello", "world", 5, 0644) < 0)
        line = __LINE__;
    if (mntfd >= 0)
        close(mntfd);
    if (!line && unlink(img) < 0)
        line = __LINE__;
    if (err)
        fprintf(stderr, "cycle %s: %s\n", img, err->message);
    dt_error_free(err);
    return line;
}

static void
test_cycles_no_leak(void **state)
{
    int before = count_our_loops();
    assert_int_equal(before, 0);
    double t0 = now_ms();

    /* A second process cycles at the same time so both race for the same free loop devices
     * (LOOP_CTL_GET_FREE hands both the same number; the loser must retry). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 10; i++) {
            char *img = xasprintf("%s/child-%d.img", tmpdir, i);
            int line = cycle(img);
            free(img);
            if (line)
                _exit(line > 255 ? 255 : line % 250 + 1);
        }
        _exit(0);
    }
    for (int i = 0; i < 10; i++) {
        char *img = xasprintf("%s/parent-%d.img", tmpdir, i);
        int line = cycle(img);
        if (line)
            fail_msg("cycle %d failed at line %d", i, line);
        free(img);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    print_message("20 create/mount/unmount cycles (2 processes): %.0f ms\n", now_ms() - t0);
    assert_int_equal(wait_no_loops(2000), 0);
}

/* Three processes mount one image at the same moment: exactly one gets it, the others -EBUSY
 * (the flock makes check-then-attach atomic). The winner holds on until the losers have
 * answered, so they cannot simply take it after. */
static void
test_concurrent_mount_race(void **state)
{
    char *img = img_path("race.img");
    int go[2], res[2], hold[2];
    pid_t pids[3];
    int results[3], wins = 0, busy = 0;

    create_ok(img, 32 * MiB);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(res, O_CLOEXEC), 0);
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct dt_error *err = NULL;
            char c;
            int mntfd = -1;
            close(go[1]);
            close(hold[1]);
            if (read(go[0], &c, 1) != 0) /* EOF: everyone starts now */
                _exit(1);
            int r = dt_disk_mount(img, &mntfd, &err);
            if (write(res[1], &r, sizeof(r)) != sizeof(r))
                _exit(1);
            if (read(hold[0], &c, 1) != 0)
                _exit(1);
            _exit(0);
        }
    }
    close(go[0]);
    close(res[1]);
    close(hold[0]);
    close(go[1]); /* start */
    for (size_t i = 0; i < ELEMENTSOF(results); i++) {
        assert_int_equal(read(res[0], &results[i], sizeof(int)), sizeof(int));
        wins += results[i] == 0;
        busy += results[i] == -EBUSY;
    }
    close(res[0]);
    int attached = count_our_loops();
    close(hold[1]); /* release the winner(s) before any assertion can jump out */
    for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    print_message("3 racing mounts: %d won, %d got -EBUSY\n", wins, busy);
    assert_int_equal(attached, 1);
    assert_int_equal(wins, 1);
    assert_int_equal(busy, 2);
    assert_int_equal(wait_no_loops(2000), 0);
    unlink(img);
    free(img);
}

/* More simultaneous mounts than the 8 loop devices most systems start with: new devices are made
 * on demand, each image gets its own, and all are released. */
static void
test_many_mounts(void **state)
{
    enum { N = 12 };
    char *imgs[N];
    int fds[N];
    char majmin[N][32], sysdir[96];

    for (int i = 0; i < N; i++) {
        imgs[i] = xasprintf("%s/many-%d.img", tmpdir, i);
        create_ok(imgs[i], 16 * MiB);
        fds[i] = mount_ok(imgs[i]);
        mount_sysdir(fds[i], sysdir, sizeof(sysdir), majmin[i], sizeof(majmin[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(majmin[i], majmin[j]);
    }
    assert_int_equal(count_our_loops(), N);
    for (int i = 0; i < N; i++) {
        close_mount(fds[i]);
        unlink(imgs[i]);
        free(imgs[i]);
    }
    assert_int_equal(wait_no_loops(2000), 0);
}

static int
test_teardown(void **state)
{
    while (n_open_mounts > 0)
        close(open_mounts[--n_open_mounts]);
    (void) wait_no_loops(2000);
    return 0;
}

static int
setup(void **state)
{
    dt_test_require_root();
    if (access("/dev/loop-control", F_OK) < 0)
        dt_test_skip("no /dev/loop-control");
    if (access("/usr/sbin/mkfs.ext4", X_OK) < 0 && access("/sbin/mkfs.ext4", X_OK) < 0)
        dt_test_skip("no mkfs.ext4 (e2fsprogs)");
    int fd = fsopen("ext4", FSOPEN_CLOEXEC);
    if (fd < 0)
        dt_test_skip("fsopen(ext4) is not available");
    close(fd);
    tmpdir = dt_test_mkdtemp("dt-disk");
    return 0;
}

static int
teardown(void **state)
{
    dt_test_rm_rf(tmpdir);
    free(tmpdir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_create, test_teardown),
        cmocka_unit_test_teardown(test_quota_grow_remount, test_teardown),
        cmocka_unit_test_teardown(test_grow_offline, test_teardown),
        cmocka_unit_test_teardown(test_bad_images, test_teardown),
        cmocka_unit_test_teardown(test_concurrent_mount_race, test_teardown),
        cmocka_unit_test_teardown(test_many_mounts, test_teardown),
        cmocka_unit_test_teardown(test_cycles_no_leak, test_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
