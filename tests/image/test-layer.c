/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the OCI layer extractor: tar streams are built in memory with libarchive's writer,
 * unpacked into a temp dir and checked on disk (needs root: chown, mknod, trusted.* xattrs). */
#include "testlib.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/layer.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define BUF_CAP (8u << 20)

enum filt { F_NONE, F_GZIP, F_ZSTD };

struct tb {
    struct archive *a;
    char *buf;
    size_t used;
};

static void
tb_start(struct tb *t, enum filt f, bool raw)
{
    t->a = archive_write_new();
    t->buf = xmalloc(BUF_CAP);
    t->used = 0;
    assert_non_null(t->a);
    if (raw)
        assert_int_equal(archive_write_set_format_raw(t->a), ARCHIVE_OK);
    else
        assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
    if (f == F_GZIP)
        assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
    else if (f == F_ZSTD)
        assert_int_equal(archive_write_add_filter_zstd(t->a), ARCHIVE_OK);
    /* No block padding: the exact bytes are what the digests are checked against. */
    archive_write_set_bytes_in_last_block(t->a, 1);
    assert_int_equal(archive_write_open_memory(t->a, t->buf, BUF_CAP, &t->used), ARCHIVE_OK);
}

struct ent {
    const char *path;
    mode_t type; /* AE_IF* */
    mode_t mode;
    int64_t uid, gid;
    const char *data;
    const char *symlink;
    const char *hardlink;
    time_t mtime;
    const char *xname[4];
    const char *xval[4];
    dev_t rdev;
};

static void
tb_add(struct tb *t, const struct ent *e)
{
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, e->path);
    archive_entry_set_filetype(ae, e->type ? e->type : AE_IFREG);
    archive_entry_set_perm(ae, e->mode ? e->mode : 0644);
    archive_entry_set_uid(ae, e->uid);
    archive_entry_set_gid(ae, e->gid);
    archive_entry_set_mtime(ae, e->mtime ? e->mtime : 1600000000, 0);
    size_t len = e->data ? strlen(e->data) : 0;
    archive_entry_set_size(ae, (e->type == 0 || e->type == AE_IFREG) && !e->hardlink
                                       ? (la_int64_t) len : 0);
    if (e->symlink)
        archive_entry_set_symlink(ae, e->symlink);
    if (e->hardlink) {
        archive_entry_set_hardlink(ae, e->hardlink);
        archive_entry_set_size(ae, 0);
    }
    if (e->rdev)
        archive_entry_set_rdev(ae, e->rdev);
    for (int i = 0; i < 4 && e->xname[i]; i++)
        archive_entry_xattr_add_entry(ae, e->xname[i], e->xval[i], strlen(e->xval[i]));
    assert_int_equal(archive_write_header(t->a, ae), ARCHIVE_OK);
    if (len && !e->hardlink)
        assert_int_equal(archive_write_data(t->a, e->data, len), (la_ssize_t) len);
    archive_entry_free(ae);
}

static void
tb_add_raw(struct tb *t, const void *data, size_t len)
{
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, "data");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_size(ae, (la_int64_t) len);
    assert_int_equal(archive_write_header(t->a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t) len);
    archive_entry_free(ae);
}

/* Finish; returns the malloc'ed stream and its size. */
static char *
tb_finish(struct tb *t, size_t *len)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    *len = t->used;
    return t->buf;
}

static char *
compress(const char *tar, size_t len, enum filt f, size_t *out_len)
{
    struct tb t;
    tb_start(&t, f, true);
    tb_add_raw(&t, tar, len);
    return tb_finish(&t, out_len);
}

static void
sha256_str(const void *p, size_t n, char out[72])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(c, p, n), 1);
    assert_int_equal(EVP_DigestFinal_ex(c, d, &dl), 1);
    EVP_MD_CTX_free(c);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

struct fixture {
    char *tmp;
    char root[4096];
    char outside[4096];
    int rootfd;
};

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->tmp = dt_test_mkdtemp("layer");
    snprintf(f->root, sizeof(f->root), "%s/root", f->tmp);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->tmp);
    assert_int_equal(mkdir(f->root, 0755), 0);
    assert_int_equal(mkdir(f->outside, 0755), 0);
    f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->rootfd >= 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    safe_close(f->rootfd);
    dt_test_rm_rf(f->tmp);
    free(f->tmp);
    free(f);
    return 0;
}

/* Unpack BUF through a memfd; returns dt_layer_unpack's result, *msg = error message. */
static int
unpack_buf(struct fixture *f, const void *buf, size_t len, const struct dt_layer_opts *o,
           struct dt_layer_result *res, char **msg)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t) len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    struct dt_error *err = NULL;
    int r = dt_layer_unpack(fd, f->rootfd, o, res, &err);
    close(fd);
    if (r < 0) {
        assert_non_null(err);
        assert_int_equal(err->code, -r);
        if (msg)
            *msg = xstrdup(err->message);
    } else {
        assert_null(err);
    }
    dt_error_free(err);
    return r;
}

static int
unpack_ents(struct fixture *f, const struct ent *e, size_t n, const struct dt_layer_opts *o,
            struct dt_layer_result *res, char **msg)
{
    struct tb t;
    tb_start(&t, F_NONE, false);
    for (size_t i = 0; i < n; i++)
        tb_add(&t, &e[i]);
    size_t len;
    char *tar = tb_finish(&t, &len);
    int r = unpack_buf(f, tar, len, o, res, msg);
    free(tar);
    return r;
}

/* Empty the layer directory between cases (fresh dir, fresh fd). */
static int
clear_root(struct fixture *f)
{
    safe_close(f->rootfd);
    dt_test_rm_rf(f->root);
    if (mkdir(f->root, 0755) < 0)
        return -errno;
    f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return f->rootfd < 0 ? -errno : 0;
}

static struct stat
lst(struct fixture *f, const char *rel)
{
    struct stat st;
    if (fstatat(f->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
        fail_msg("lstat %s: %s", rel, strerror(errno));
    return st;
}

static bool
exists(struct fixture *f, const char *rel)
{
    struct stat st;
    return fstatat(f->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static char *
content(struct fixture *f, const char *rel)
{
    char *s = dt_test_read_trimmed(f->root, rel);
    assert_non_null(s);
    return s;
}

static void
assert_outside_empty(struct fixture *f)
{
    assert_int_equal(dt_test_count_dir(f->outside), 0);
}

static void
test_basic(void **state)
{
    struct fixture *f = *state;
    struct vfs_cap_data cap = {
        .magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        .data = { { .permitted = 1u << CAP_NET_BIND_SERVICE } },
    };
    /* libarchive's xattr API takes a C string here; build it with explicit length below. */
    const struct ent e[] = {
        { .path = "etc", .type = AE_IFDIR, .mode = 0751, .mtime = 1000000 },
        { .path = "/etc/x", .data = "hello", .mode = 0640, .uid = 1000, .gid = 1001,
          .mtime = 1234567890, .xname = { "user.foo", "trusted.evil", "security.selinux" },
          .xval = { "bar", "1", "system_u:object_r:bin_t:s0" } },
        { .path = "./usr/bin/su", .data = "#!", .mode = 04755 },
        { .path = "usr/bin/sg", .data = "#!", .mode = 02755, .gid = 42 },
        { .path = "lnk", .type = AE_IFLNK, .symlink = "/etc/x", .uid = 7, .mtime = 5000 },
        { .path = "hl", .hardlink = "./etc/x" },
        { .path = "fifo", .type = AE_IFIFO, .mode = 0620 },
        { .path = "dev/null", .type = AE_IFCHR, .rdev = makedev(1, 3) },
        { .path = "dev/sda", .type = AE_IFBLK, .rdev = makedev(8, 0) },
        { .path = "a/b/c/deep", .data = "d" },
    };
    struct tb t;
    tb_start(&t, F_NONE, false);
    for (size_t i = 0; i < ELEMENTSOF(e); i++)
        tb_add(&t, &e[i]);
    /* An entry with a binary security.capability value. */
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, "usr/bin/ping");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0755);
    archive_entry_set_size(ae, 0);
    archive_entry_xattr_add_entry(ae, "security.capability", &cap, sizeof(cap));
    assert_int_equal(archive_write_header(t.a, ae), ARCHIVE_OK);
    archive_entry_free(ae);
    size_t len;
    char *tar = tb_finish(&t, &len);
    struct dt_layer_result res;
    char *msg = NULL;
    int r = unpack_buf(f, tar, len, NULL, &res, &msg);
    if (r < 0)
        fail_msg("unpack: %s", msg);
    free(tar);

    assert_int_equal(res.entries, ELEMENTSOF(e) + 1);
    assert_int_equal(res.skipped_devices, 2);
    assert_int_equal(res.unpacked_bytes, 5 + 2 + 2 + 1);

    struct stat st = lst(f, "etc/x");
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_gid, 1001);
    assert_int_equal(st.st_mtim.tv_sec, 1234567890);
    assert_int_equal(st.st_nlink, 2);
    char *s = content(f, "etc/x");
    assert_string_equal(s, "hello");
    free(s);
    char v[64];
    char p[8192];
    snprintf(p, sizeof(p), "%s/etc/x", f->root);
    assert_int_equal(lgetxattr(p, "user.foo", v, sizeof(v)), 3);
    assert_memory_equal(v, "bar", 3);
    assert_int_equal(lgetxattr(p, "trusted.evil", v, sizeof(v)), -1);
    assert_int_equal(errno, ENODATA);
    /* security.selinux may be synthesised by an LSM; it must not be the image's value. */
    ssize_t n = lgetxattr(p, "security.selinux", v, sizeof(v));
    assert_true(n < 0 || memcmp(v, "system_u", 8) != 0);

    st = lst(f, "hl");
    assert_int_equal(st.st_ino, lst(f, "etc/x").st_ino);

    st = lst(f, "etc");
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0751);
    assert_int_equal(st.st_mtim.tv_sec, 1000000); /* kept although etc/x came later */

    st = lst(f, "usr/bin/su");
    assert_int_equal(st.st_mode & 07777, 04755);
    st = lst(f, "usr/bin/sg");
    assert_int_equal(st.st_mode & 07777, 02755);
    assert_int_equal(st.st_gid, 42);
    st = lst(f, "usr");
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_uid, 0);
    st = lst(f, "a/b/c");
    assert_true(S_ISDIR(st.st_mode));

    snprintf(p, sizeof(p), "%s/usr/bin/ping", f->root);
    struct vfs_cap_data got;
    assert_int_equal(getxattr(p, "security.capability", &got, sizeof(got)), sizeof(cap));
    assert_int_equal(got.data[0].permitted, 1u << CAP_NET_BIND_SERVICE);

    st = lst(f, "lnk");
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(st.st_uid, 7);
    assert_int_equal(st.st_mtim.tv_sec, 5000);
    char target[64] = { 0 };
    assert_int_equal(readlinkat(f->rootfd, "lnk", target, sizeof(target) - 1), 6);
    assert_string_equal(target, "/etc/x");

    st = lst(f, "fifo");
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0620);
    assert_false(exists(f, "dev/null"));
    assert_false(exists(f, "dev/sda"));
    assert_outside_empty(f);
}

static void
assert_whiteout(struct fixture *f, const char *rel)
{
    struct stat st = lst(f, rel);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
}

static void
test_whiteouts(void **state)
{
    struct fixture *f = *state;
    const struct ent e[] = {
        { .path = "a/gone", .data = "x" },
        { .path = "a/gonedir/sub", .data = "y" },
        { .path = "a/.wh.gone" },
        { .path = "a/.wh.gonedir" },
        { .path = "a/.wh..wh..opq" },
        { .path = "b/.wh.other" },
        { .path = ".wh.top" },
    };
    char *msg = NULL;
    struct dt_layer_result res;
    int r = unpack_ents(f, e, ELEMENTSOF(e), NULL, &res, &msg);
    if (r < 0)
        fail_msg("unpack: %s", msg);
    assert_whiteout(f, "a/gone");
    assert_whiteout(f, "a/gonedir");
    assert_whiteout(f, "b/other");
    assert_whiteout(f, "top");
    assert_false(exists(f, "a/.wh.gone"));
    assert_false(exists(f, "a/.wh..wh..opq"));
    char p[8192], v[8];
    snprintf(p, sizeof(p), "%s/a", f->root);
    assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
    assert_int_equal(v[0], 'y');
    snprintf(p, sizeof(p), "%s/b", f->root);
    assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), -1);
    assert_int_equal(res.entries, ELEMENTSOF(e));
}

static void
test_replace(void **state)
{
    struct fixture *f = *state;
    const struct ent e[] = {
        { .path = "f", .data = "one" },
        { .path = "f", .data = "two", .mode = 0600 },
        { .path = "s", .data = "file" },
        { .path = "s", .type = AE_IFLNK, .symlink = "f" },
        { .path = "d", .data = "file" },
        { .path = "d", .type = AE_IFDIR, .mode = 0711 },
        { .path = "k", .type = AE_IFDIR, .mode = 0700, .uid = 5 },
        { .path = "k/child", .data = "c" },
        { .path = "k", .type = AE_IFDIR, .mode = 0750, .uid = 6, .mtime = 777 },
        { .path = "r/child", .data = "c" },
        { .path = "r", .data = "now a file" },
        { .path = "l", .type = AE_IFLNK, .symlink = "f" },
        { .path = "l", .data = "plain" },
    };
    char *msg = NULL;
    int r = unpack_ents(f, e, ELEMENTSOF(e), NULL, NULL, &msg);
    if (r < 0)
        fail_msg("unpack: %s", msg);
    char *s = content(f, "f");
    assert_string_equal(s, "two");
    free(s);
    assert_int_equal(lst(f, "f").st_mode & 07777, 0600);
    assert_true(S_ISLNK(lst(f, "s").st_mode));
    struct stat st = lst(f, "d");
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0711);
    st = lst(f, "k");
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_uid, 6);
    assert_int_equal(st.st_mtim.tv_sec, 777);
    assert_true(exists(f, "k/child"));
    assert_true(S_ISREG(lst(f, "r").st_mode));
    st = lst(f, "l");
    assert_true(S_ISREG(st.st_mode));
    s = content(f, "l");
    assert_string_equal(s, "plain");
    free(s);
    s = content(f, "f");
    assert_string_equal(s, "two"); /* writing "l" did not go through the old symlink */
    free(s);
}

static void
expect_fail(struct fixture *f, const struct ent *e, size_t n, int code, const char *needle)
{
    char *msg = NULL;
    assert_int_equal(clear_root(f), 0);
    int r = unpack_ents(f, e, n, NULL, NULL, &msg);
    if (r != -code)
        fail_msg("expected -%s, got %d (%s)", dt_errno_name(code), r, msg ? msg : "");
    if (needle && !strstr(msg, needle))
        fail_msg("message '%s' lacks '%s'", msg, needle);
    free(msg);
    assert_outside_empty(f);
}

static void
test_symlink_escape(void **state)
{
    struct fixture *f = *state;
    const struct ent e1[] = {
        { .path = "a", .type = AE_IFLNK, .symlink = f->outside },
        { .path = "a/x", .data = "pwned" },
    };
    expect_fail(f, e1, ELEMENTSOF(e1), ELOOP, "a/x");
    const struct ent e2[] = {
        { .path = "b", .type = AE_IFLNK, .symlink = "../outside" },
        { .path = "b/sub/x", .data = "pwned" },
    };
    expect_fail(f, e2, ELEMENTSOF(e2), ELOOP, "symlink");
    /* A symlink as the target of a whiteout's directory and of an opaque marker. */
    const struct ent e3[] = {
        { .path = "c", .type = AE_IFLNK, .symlink = "../outside" },
        { .path = "c/.wh.foo" },
    };
    expect_fail(f, e3, ELEMENTSOF(e3), ELOOP, NULL);
    const struct ent e4[] = {
        { .path = "d", .type = AE_IFLNK, .symlink = "../outside" },
        { .path = "d/.wh..wh..opq" },
    };
    expect_fail(f, e4, ELEMENTSOF(e4), ELOOP, NULL);
    const struct ent e5[] = { { .path = "../outside/x", .data = "pwned" } };
    expect_fail(f, e5, 1, EINVAL, "climbs out");
    const struct ent e6[] = { { .path = "a/../../outside/x", .data = "pwned" } };
    expect_fail(f, e6, 1, EINVAL, "climbs out");
    /* ".." that stays inside is folded. */
    const struct ent e7[] = { { .path = "/q/../inside", .data = "ok" } };
    assert_int_equal(unpack_ents(f, e7, 1, NULL, NULL, NULL), 0);
    assert_true(exists(f, "inside"));
    /* A file in the way of a directory. */
    const struct ent e8[] = {
        { .path = "plain", .data = "f" },
        { .path = "plain/x", .data = "f" },
    };
    expect_fail(f, e8, ELEMENTSOF(e8), ENOTDIR, "plain/x");
    assert_outside_empty(f);
}

static void
test_hardlink_escape(void **state)
{
    struct fixture *f = *state;
    const struct ent e1[] = { { .path = "h", .hardlink = "../../etc/passwd" } };
    expect_fail(f, e1, 1, EINVAL, "climbs out");
    const struct ent e2[] = {
        { .path = "s", .type = AE_IFLNK, .symlink = "/etc/passwd" },
        { .path = "h", .hardlink = "s" },
    };
    expect_fail(f, e2, ELEMENTSOF(e2), EINVAL, "not a regular file");
    const struct ent e3[] = {
        { .path = "dir", .type = AE_IFLNK, .symlink = "/etc" },
        { .path = "h", .hardlink = "dir/passwd" },
    };
    expect_fail(f, e3, ELEMENTSOF(e3), ELOOP, NULL);
    const struct ent e4[] = { { .path = "h2", .hardlink = "missing" } };
    expect_fail(f, e4, 1, ENOENT, "missing");
    const struct ent e5[] = {
        { .path = "adir", .type = AE_IFDIR },
        { .path = "h3", .hardlink = "adir" },
    };
    expect_fail(f, e5, ELEMENTSOF(e5), EINVAL, "not a regular file");
    struct stat st;
    assert_int_equal(stat("/etc/passwd", &st), 0);
    assert_int_equal(st.st_nlink, 1);
}

static void
test_uid_range(void **state)
{
    struct fixture *f = *state;
    const struct ent e1[] = { { .path = "big/uid", .data = "x", .uid = 65536 } };
    expect_fail(f, e1, 1, EINVAL, "big/uid");
    const struct ent e2[] = { { .path = "bgid", .type = AE_IFDIR, .gid = 100000 } };
    expect_fail(f, e2, 1, EINVAL, "bgid");
    const struct ent e3[] = { { .path = "max", .data = "x", .uid = 65535, .gid = 65535 } };
    assert_int_equal(unpack_ents(f, e3, 1, NULL, NULL, NULL), 0);
    assert_int_equal(lst(f, "max").st_uid, 65535);
}

static void
test_limits(void **state)
{
    struct fixture *f = *state;
    char *msg = NULL;
    struct dt_layer_opts o = { .max_bytes = 10 };
    const struct ent e1[] = { { .path = "a", .data = "12345" }, { .path = "b", .data = "123456" } };
    assert_int_equal(unpack_ents(f, e1, 2, &o, NULL, &msg), -EFBIG);
    assert_non_null(strstr(msg, "'b'"));
    free(msg);
    o = (struct dt_layer_opts) { .max_bytes = 11 };
    assert_int_equal(unpack_ents(f, e1, 2, &o, NULL, NULL), 0);

    o = (struct dt_layer_opts) { .max_entries = 2 };
    const struct ent e2[] = { { .path = "x" }, { .path = "y" }, { .path = "z" } };
    assert_int_equal(unpack_ents(f, e2, 3, &o, NULL, &msg), -E2BIG);
    assert_non_null(strstr(msg, "entries"));
    free(msg);

    char name[300];
    memset(name, 'n', 256);
    name[256] = 0;
    const struct ent e3[] = { { .path = name, .data = "x" } };
    assert_int_equal(unpack_ents(f, e3, 1, NULL, NULL, &msg), -E2BIG);
    free(msg);
    name[255] = 0;
    assert_int_equal(unpack_ents(f, e3, 1, NULL, NULL, NULL), 0);

    /* 17 components of 250 bytes: 4266 bytes. */
    char *lp = xmalloc(17 * 251 + 1);
    for (int i = 0; i < 17; i++) {
        memset(lp + i * 251, 'a' + i, 250);
        lp[i * 251 + 250] = '/';
    }
    lp[17 * 251 - 1] = 0;
    const struct ent e4[] = { { .path = lp, .data = "x" } };
    assert_int_equal(unpack_ents(f, e4, 1, NULL, NULL, &msg), -E2BIG);
    assert_non_null(strstr(msg, "4096"));
    free(msg);
    free(lp);
}

static void
test_digests(void **state)
{
    struct fixture *f = *state;
    const struct ent e[] = {
        { .path = "etc/os-release", .data = "ID=test\n" },
        { .path = "bin/sh", .data = "#!/bin/false\n", .mode = 0755 },
    };
    struct tb t;
    tb_start(&t, F_NONE, false);
    for (size_t i = 0; i < ELEMENTSOF(e); i++)
        tb_add(&t, &e[i]);
    size_t tar_len;
    char *tar0 = tb_finish(&t, &tar_len);
    /* Docker-style padding after the end-of-archive marker. */
    char *tar = xmalloc(tar_len + 8192);
    memcpy(tar, tar0, tar_len);
    free(tar0);
    char want_plain[72], want_padded[72];
    sha256_str(tar, tar_len, want_plain);
    memset(tar + tar_len, 0, 8192);
    sha256_str(tar, tar_len + 8192, want_padded);

    for (int pad = 0; pad < 2; pad++) {
        size_t tl = tar_len + (pad ? 8192 : 0);
        for (enum filt fl = F_NONE; fl <= F_ZSTD; fl++) {
            size_t blen = tl;
            char *blob = fl == F_NONE ? xmemdup(tar, tl) : compress(tar, tl, fl, &blen);
            char want_digest[72];
            sha256_str(blob, blen, want_digest);
            assert_int_equal(clear_root(f), 0);
            struct dt_layer_result res;
            char *msg = NULL;
            int r = unpack_buf(f, blob, blen, NULL, &res, &msg);
            if (r < 0)
                fail_msg("unpack filter %d pad %d: %s", fl, pad, msg);
            assert_string_equal(res.diff_id, pad ? want_padded : want_plain);
            assert_string_equal(res.digest, want_digest);
            assert_int_equal(res.tar_bytes, tl);
            assert_int_equal(res.compressed_bytes, blen);
            assert_int_equal(res.entries, 2);
            char *s = content(f, "etc/os-release");
            assert_string_equal(s, "ID=test");
            free(s);
            if (fl != F_NONE)
                assert_true(blen != tl);
            free(blob);
        }
    }
    free(tar);
}

static void
test_empty_and_pipe(void **state)
{
    struct fixture *f = *state;
    /* An empty layer as docker ships it: just the end-of-archive marker, gzipped. */
    char zeros[1024] = { 0 };
    char want[72];
    sha256_str(zeros, sizeof(zeros), want);
    size_t blen;
    char *blob = compress(zeros, sizeof(zeros), F_GZIP, &blen);
    struct dt_layer_result res;
    char *msg = NULL;
    int r = unpack_buf(f, blob, blen, NULL, &res, &msg);
    if (r < 0)
        fail_msg("empty layer: %s", msg);
    free(blob);
    assert_string_equal(res.diff_id, want);
    assert_int_equal(res.entries, 0);
    assert_int_equal(dt_test_count_dir(f->root), 0);

    /* A pipe (not seekable, short reads) works the same as a file. */
    const struct ent e[] = { { .path = "p/file", .data = "piped" } };
    struct tb t;
    tb_start(&t, F_ZSTD, false);
    tb_add(&t, &e[0]);
    char *z = tb_finish(&t, &blen);
    assert_true(blen < 65536);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], z, blen), (ssize_t) blen);
    close(p[1]);
    struct dt_error *err = NULL;
    assert_int_equal(dt_layer_unpack(p[0], f->rootfd, NULL, &res, &err), 0);
    assert_null(err);
    close(p[0]);
    char want_digest[72];
    sha256_str(z, blen, want_digest);
    assert_string_equal(res.digest, want_digest);
    assert_int_equal(res.compressed_bytes, blen);
    free(z);
    char *s = content(f, "p/file");
    assert_string_equal(s, "piped");
    free(s);
}

static void
test_bad_streams(void **state)
{
    struct fixture *f = *state;
    const struct ent e[] = { { .path = "big", .data = "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789abcdefghijklmnopqrstuvwxyz" } };
    struct tb t;
    tb_start(&t, F_NONE, false);
    tb_add(&t, &e[0]);
    size_t tar_len;
    char *tar = tb_finish(&t, &tar_len);
    char *msg = NULL;
    int r;

    /* Truncated inside the file data. */
    r = unpack_buf(f, tar, 512 * 2 + 100, NULL, NULL, &msg);
    assert_true(r == -EINVAL || r == -EIO);
    assert_non_null(strstr(msg, "layer"));
    free(msg);

    for (enum filt fl = F_GZIP; fl <= F_ZSTD; fl++) {
        size_t blen;
        char *blob = compress(tar, tar_len, fl, &blen);
        assert_int_equal(clear_root(f), 0);
        r = unpack_buf(f, blob, blen / 2, NULL, NULL, &msg);
        if (r != -EINVAL && r != -EIO)
            fail_msg("truncated filter %d: %d", fl, r);
        free(msg);
        /* Corrupt the middle of the compressed data. */
        for (size_t i = blen / 3; i < blen / 3 + 16 && i < blen; i++)
            blob[i] ^= 0x5a;
        assert_int_equal(clear_root(f), 0);
        r = unpack_buf(f, blob, blen, NULL, NULL, &msg);
        if (r != -EINVAL && r != -EIO)
            fail_msg("corrupt filter %d: %d", fl, r);
        free(msg);
        free(blob);
    }

    const char garbage[] = "this is not a tar file at all, not even close, really not....";
    r = unpack_buf(f, garbage, sizeof(garbage), NULL, NULL, &msg);
    assert_int_equal(r, -EINVAL);
    free(msg);
    r = unpack_buf(f, "", 0, NULL, NULL, &msg);
    assert_int_equal(r, -EINVAL);
    free(msg);
    free(tar);
    assert_outside_empty(f);
}

/* A sparse entry with a hole at its end keeps its declared size (the extractor truncates only
 * when the data written ends short of it). */
static void
test_sparse_trailing_hole(void **state)
{
    struct fixture *f = *state;
    struct dt_layer_result res;
    struct tb t;
    size_t len;
    struct stat st;
    char head[6] = {0};

    tb_start(&t, F_NONE, false);
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, "sparse.bin");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, 1 << 20);
    archive_entry_sparse_add_entry(ae, 0, 5);
    assert_int_equal(archive_write_header(t.a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(t.a, "hello", 5), 5);
    archive_entry_free(ae);
    char *tar = tb_finish(&t, &len);
    assert_int_equal(unpack_buf(f, tar, len, NULL, &res, NULL), 0);
    free(tar);
    assert_int_equal(fstatat(f->rootfd, "sparse.bin", &st, 0), 0);
    assert_int_equal(st.st_size, 1 << 20);
    int fd = openat(f->rootfd, "sparse.bin", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, head, 5), 5);
    close(fd);
    assert_string_equal(head, "hello");
}

int
main(void)
{
    dt_test_require_root();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sparse_trailing_hole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hardlink_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_streams, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
