/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for local image archives: docker-save and OCI archives built here with libarchive
 * (two layers each), an OCI layout directory, hostile archives, and, when umoci and skopeo are
 * installed, layouts and archives made by those tools. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/oci.h"
#include "dt/xalloc.h"
#include "testlib.h"

struct buf {
    char *p;
    size_t len;
};

struct ent {
    const char *name;
    const char *data; /* NULL → use BUF */
    const struct buf *buf;
    const char *symlink;
};

/* A tar (optionally gzip'ed) of ENTS in memory. */
static struct buf
make_tar(const struct ent *ents, size_t n, bool gzip)
{
    size_t cap = 8 * 1024 * 1024, used = 0;
    struct buf b = { .p = xmalloc(cap) };
    struct archive *a = archive_write_new();

    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gzip)
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    archive_write_set_bytes_in_last_block(a, 1);
    assert_int_equal(archive_write_open_memory(a, b.p, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        const char *d = ents[i].data ? ents[i].data : (ents[i].buf ? ents[i].buf->p : "");
        size_t len = ents[i].data ? strlen(d) : (ents[i].buf ? ents[i].buf->len : 0);
        archive_entry_set_pathname(e, ents[i].name);
        if (ents[i].symlink) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ents[i].symlink);
            len = 0;
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
        }
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, d, len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    b.len = used;
    return b;
}

static char *
write_tmp(const char *dir, const char *name, const struct buf *b)
{
    char *p = xasprintf("%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, b->p, b->len), 0);
    close(fd);
    return p;
}

/* Read a window fully through dt_oci_stream and compare with WANT. */
static void
check_stream(const struct dt_oci_window *w, const char *digest, const struct buf *want)
{
    struct dt_oci_stream *s = NULL;
    struct dt_error *err = NULL;
    char *got = NULL;
    size_t len = 0;
    int fd = -1;

    assert_int_equal(dt_oci_stream_open(w, digest, &fd, &s, NULL), 0);
    assert_int_equal(read_fd_all(fd, 64 << 20, &got, &len), 0);
    close(fd);
    if (dt_oci_stream_finish(s, &err) < 0)
        fail_msg("%s", err->message);
    assert_int_equal(len, want->len);
    assert_memory_equal(got, want->p, len);
    free(got);
}

struct fixture {
    char *dir;
    struct buf layer1, layer2, layer2gz;
    char d1[DT_DIGEST_BUFSZ], d2[DT_DIGEST_BUFSZ], d2gz[DT_DIGEST_BUFSZ];
    char *config;
    char cfgd[DT_DIGEST_BUFSZ];
};

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const struct ent l1[] = { { .name = "etc/hello", .data = "hello\n" } };
    const struct ent l2[] = { { .name = "etc/.wh.hello", .data = "" },
                              { .name = "usr/bin/tool", .data = "#!/bin/sh\necho hi\n" } };

    f->dir = dt_test_mkdtemp("oci-archive");
    f->layer1 = make_tar(l1, 1, false);
    f->layer2 = make_tar(l2, 2, false);
    f->layer2gz = make_tar(l2, 2, true);
    dt_digest_buffer(f->layer1.p, f->layer1.len, f->d1);
    dt_digest_buffer(f->layer2.p, f->layer2.len, f->d2);
    dt_digest_buffer(f->layer2gz.p, f->layer2gz.len, f->d2gz);
    f->config = xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":"
                          "[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":"
                          "[\"%s\",\"%s\"]}}",
                          f->d1, f->d2);
    dt_digest_buffer(f->config, strlen(f->config), f->cfgd);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    dt_test_rm_rf(f->dir);
    free(f->dir);
    free(f->layer1.p);
    free(f->layer2.p);
    free(f->layer2gz.p);
    free(f->config);
    free(f);
    return 0;
}

static void
test_docker_save(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ char *manifest = NULL, *cfgname = NULL, *path = NULL;
    struct dt_oci_archive *a = NULL;
    const struct dt_oci_archive_image *img;
    struct dt_error *err = NULL;
    struct buf tar, copy;
    char copyname[] = "/tmp/oci-copy-XXXXXX";
    int fd;

    cfgname = xasprintf("%s.json", f->cfgd + 7);
    /* Legacy shape; the second image's layer is a symlink to a duplicate, as docker does. */
    manifest = xasprintf("[{\"Config\":\"%s\",\"RepoTags\":[\"myapp:1\"],"
                         "\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]},"
                         "{\"Config\":\"%s\",\"RepoTags\":[\"ghcr.io/x/y:2\",\"other:3\"],"
                         "\"Layers\":[\"./l1/layer.tar\",\"l3/layer.tar\"]}]",
                         cfgname, cfgname);
    const struct ent ents[] = {
        { .name = "l1/VERSION", .data = "1.0" },
        { .name = "l1/layer.tar", .buf = &f->layer1 },
        { .name = "l2/layer.tar", .buf = &f->layer2 },
        { .name = "l3/layer.tar", .symlink = "../l2/layer.tar" },
        { .name = cfgname, .data = f->config },
        { .name = "manifest.json", .data = manifest },
        { .name = "repositories", .data = "{}" },
    };
    tar = make_tar(ents, ELEMENTSOF(ents), false);
    path = write_tmp(f->dir, "docker.tar", &tar);
    free(tar.p);

    if (dt_oci_archive_open(path, &a, &err) < 0)
        fail_msg("%s", err->message);
    assert_int_equal(dt_oci_archive_n_images(a), 2);
    assert_null(dt_oci_archive_image(a, 2));
    assert_int_equal(dt_oci_archive_select(a, NULL, &img, &err), -EINVAL);
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_oci_archive_select(a, "docker.io/library/myapp:1", &img, NULL), 0);
    assert_ptr_equal(img, dt_oci_archive_image(a, 0));
    assert_int_equal(dt_oci_archive_select(a, "other:3", &img, NULL), 0);
    assert_ptr_equal(img, dt_oci_archive_image(a, 1));
    assert_int_equal(dt_oci_archive_select(a, "nope", &img, &err), -ENOENT);
    assert_non_null(strstr(err->message, "'myapp:1'"));
    dt_error_free(err);
    err = NULL;

    assert_string_equal(img->config_digest, f->cfgd);
    assert_string_equal(img->config_json, f->config);
    assert_string_equal(img->config->cmd[0], "/bin/sh");
    assert_int_equal(img->n_layers, 2);
    assert_string_equal(img->layers[0].digest, f->d1);
    assert_string_equal(img->layers[1].diff_id, f->d2);
    assert_int_equal(img->layers[1].compression, DT_OCI_COMPRESSION_NONE);
    check_stream(&img->layers[0].blob, img->layers[0].digest, &f->layer1);
    check_stream(&img->layers[1].blob, img->layers[1].digest, &f->layer2);

    /* Window copy into a file, with digest verification. */
    fd = mkostemp(copyname, O_CLOEXEC);
    assert_true(fd >= 0);
    unlink(copyname);
    assert_int_equal(dt_oci_window_copy(&img->layers[1].blob, fd, f->d2, NULL), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(read_fd_all(fd, 1 << 20, &copy.p, &copy.len), 0);
    assert_int_equal(copy.len, f->layer2.len);
    assert_memory_equal(copy.p, f->layer2.p, copy.len);
    free(copy.p);
    assert_int_equal(dt_oci_window_copy(&img->layers[1].blob, fd, f->d1, &err), -EBADMSG);
    assert_non_null(strstr(err->message, "expected"));
    dt_error_free(err);
    err = NULL;
    close(fd);

    /* Wrong digest through a stream, and a reader that gives up early. */
    {
        struct dt_oci_stream *s = NULL;
        char *got = NULL;
        size_t len;
        assert_int_equal(dt_oci_stream_open(&img->layers[0].blob, f->d2, &fd, &s, NULL), 0);
        assert_int_equal(read_fd_all(fd, 1 << 20, &got, &len), 0);
        free(got);
        close(fd);
        assert_int_equal(dt_oci_stream_finish(s, &err), -EBADMSG);
        dt_error_free(err);
        err = NULL;
        /* A 3 MiB window (bigger than a pipe buffer) whose reader gives up. */
        char bigname[] = "/tmp/oci-big-XXXXXX";
        int bfd = mkostemp(bigname, O_CLOEXEC);
        assert_true(bfd >= 0);
        unlink(bigname);
        assert_int_equal(ftruncate(bfd, 3u << 20), 0);
        struct dt_oci_window big = { .fd = bfd, .offset = 0, .length = 3u << 20 };
        assert_int_equal(dt_oci_stream_open(&big, NULL, &fd, &s, NULL), 0);
        close(fd);
        assert_int_equal(dt_oci_stream_finish(s, &err), -EPIPE);
        dt_error_free(err);
        err = NULL;
        /* A window past the end of the file: a short read is an error. */
        big.offset = 1u << 20;
        assert_int_equal(dt_oci_stream_open(&big, NULL, &fd, &s, NULL), 0);
        assert_int_equal(read_fd_all(fd, 8u << 20, &got, &len), 0);
        free(got);
        close(fd);
        assert_int_equal(dt_oci_stream_finish(s, &err), -EIO);
        dt_error_free(err);
        err = NULL;
        close(bfd);
    }
    dt_oci_archive_free(a);
}

/* Write the OCI shape (gzip'ed second layer) either as a tar or into DIR. */
static void
oci_members(struct fixture *f, char **manifest, char **index, char *md)
{
    *manifest = xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"" DT_OCI_MT_MANIFEST "\","
        "\"config\":{\"mediaType\":\"" DT_OCI_MT_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":"
        "\"%s\",\"size\":%zu},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
        "\"digest\":\"%s\",\"size\":%zu}]}",
        f->cfgd, strlen(f->config), f->d1, f->layer1.len, f->d2gz, f->layer2gz.len);
    dt_digest_buffer(*manifest, strlen(*manifest), md);
    *index = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" DT_OCI_MT_MANIFEST
                       "\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{"
                       "\"org.opencontainers.image.ref.name\":\"localhost/app:v1\"}}]}",
                       md, strlen(*manifest));
}

static void
check_oci_image(struct fixture *f, struct dt_oci_archive *a)
{
    const struct dt_oci_archive_image *img;

    assert_int_equal(dt_oci_archive_n_images(a), 1);
    assert_int_equal(dt_oci_archive_select(a, NULL, &img, NULL), 0);
    assert_int_equal(dt_oci_archive_select(a, "localhost/app:v1", &img, NULL), 0);
    assert_string_equal(img->names[0], "localhost/app:v1");
    assert_string_equal(img->config_digest, f->cfgd);
    assert_int_equal(img->n_layers, 2);
    assert_string_equal(img->layers[1].digest, f->d2gz);
    assert_string_equal(img->layers[1].diff_id, f->d2);
    assert_int_equal(img->layers[1].compression, DT_OCI_COMPRESSION_GZIP);
    check_stream(&img->layers[0].blob, img->layers[0].digest, &f->layer1);
    check_stream(&img->layers[1].blob, img->layers[1].digest, &f->layer2gz);
}

static void
test_oci_archive_and_dir(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ char *manifest = NULL, *index = NULL, *path = NULL, *layout = NULL;
    char md[DT_DIGEST_BUFSZ];
    char names[4][100];
    struct dt_oci_archive *a = NULL;
    struct dt_error *err = NULL;
    struct buf tar;
    int fd;

    oci_members(f, &manifest, &index, md);
    snprintf(names[0], sizeof(names[0]), "blobs/sha256/%s", md + 7);
    snprintf(names[1], sizeof(names[1]), "blobs/sha256/%s", f->cfgd + 7);
    snprintf(names[2], sizeof(names[2]), "blobs/sha256/%s", f->d1 + 7);
    snprintf(names[3], sizeof(names[3]), "./blobs/sha256/%s", f->d2gz + 7);
    const struct ent ents[] = {
        { .name = "oci-layout", .data = "{\"imageLayoutVersion\":\"1.0.0\"}" },
        { .name = "index.json", .data = index },
        { .name = names[0], .data = manifest },
        { .name = names[1], .data = f->config },
        { .name = names[2], .buf = &f->layer1 },
        { .name = names[3], .buf = &f->layer2gz },
    };
    tar = make_tar(ents, ELEMENTSOF(ents), false);
    path = write_tmp(f->dir, "oci.tar", &tar);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (dt_oci_archive_open_fd(fd, "oci.tar", &a, &err) < 0)
        fail_msg("%s", err->message);
    close(fd);
    check_oci_image(f, a);
    dt_oci_archive_free(a);
    a = NULL;

    /* The same as a layout directory. */
    layout = xasprintf("%s/layout", f->dir);
    assert_int_equal(mkdir(layout, 0755), 0);
    {
        char *cmd[] = { (char *)"/bin/tar", (char *)"-xf", path, (char *)"-C", layout, NULL };
        assert_int_equal(dt_test_run(cmd, NULL), 0);
    }
    if (dt_oci_archive_open(layout, &a, &err) < 0)
        fail_msg("%s", err->message);
    check_oci_image(f, a);
    dt_oci_archive_free(a);
    a = NULL;

    /* A config blob that does not match its digest. */
    {
        struct ent bad[ELEMENTSOF(ents)];
        struct buf t2;
        _cleanup_free_ char *p2 = NULL, *cfg = xstrdup(f->config);
        memcpy(bad, ents, sizeof(bad));
        cfg[strlen(cfg) - 3] = 'X';
        bad[3].data = cfg;
        t2 = make_tar(bad, ELEMENTSOF(bad), false);
        p2 = write_tmp(f->dir, "bad.tar", &t2);
        free(t2.p);
        assert_int_equal(dt_oci_archive_open(p2, &a, &err), -EBADMSG);
        assert_non_null(strstr(err->message, "expected"));
        dt_error_free(err);
        err = NULL;
        /* A missing layer blob. */
        t2 = make_tar(ents, ELEMENTSOF(ents) - 1, false);
        free(p2);
        p2 = write_tmp(f->dir, "bad.tar", &t2);
        free(t2.p);
        assert_int_equal(dt_oci_archive_open(p2, &a, &err), -ENOENT);
        assert_non_null(strstr(err->message, "missing"));
        dt_error_free(err);
        err = NULL;
    }
    /* A layout listing platforms side by side: the host's is kept, others are not read. */
    {
        struct ent e2[ELEMENTSOF(ents)];
        struct buf t2;
        _cleanup_free_ char *p2 = NULL, *idx2 = NULL;
        idx2 = xasprintf("{\"schemaVersion\":2,\"manifests\":["
                         "{\"mediaType\":\"" DT_OCI_MT_MANIFEST "\",\"digest\":\"sha256:%064d\","
                         "\"size\":5,\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x\"}},"
                         "{\"mediaType\":\"" DT_OCI_MT_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
                         "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
                         "\"annotations\":{"
                         "\"io.containerd.image.name\":\"docker.io/library/app:v1\","
                         "\"org.opencontainers.image.ref.name\":\"v1\"}}]}",
                         0, md, strlen(manifest));
        memcpy(e2, ents, sizeof(e2));
        e2[1].data = idx2;
        t2 = make_tar(e2, ELEMENTSOF(e2), false);
        p2 = write_tmp(f->dir, "plat.tar", &t2);
        free(t2.p);
#if defined(__x86_64__)
        const struct dt_oci_archive_image *im;
        if (dt_oci_archive_open(p2, &a, &err) < 0)
            fail_msg("%s", err->message);
        assert_int_equal(dt_oci_archive_n_images(a), 1);
        assert_int_equal(dt_oci_archive_select(a, "app:v1", &im, NULL), 0);
        assert_string_equal(im->names[1], "v1");
        dt_oci_archive_free(a);
        a = NULL;
#endif
    }
    /* A gzip'ed archive: a clear refusal. */
    {
        struct buf t2 = make_tar(ents, ELEMENTSOF(ents), true);
        _cleanup_free_ char *p2 = write_tmp(f->dir, "oci.tar.gz", &t2);
        free(t2.p);
        assert_int_equal(dt_oci_archive_open(p2, &a, &err), -ENOTSUP);
        assert_non_null(strstr(err->message, "decompress"));
        dt_error_free(err);
        err = NULL;
    }
    free(tar.p);
}

static void
expect_fail(struct fixture *f, const struct ent *ents, size_t n, int code, const char *needle)
{
    struct buf t = make_tar(ents, n, false);
    _cleanup_free_ char *p = write_tmp(f->dir, "hostile.tar", &t);
    struct dt_oci_archive *a = NULL;
    struct dt_error *err = NULL;

    free(t.p);
    assert_int_equal(dt_oci_archive_open(p, &a, &err), code);
    assert_null(a);
    if (!strstr(err->message, needle))
        fail_msg("'%s' lacks '%s'", err->message, needle);
    dt_error_free(err);
}

static void
test_hostile(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ char *cfgname = xasprintf("%s.json", f->cfgd + 7), *big = NULL;
    _cleanup_free_ char *m1 = xasprintf("[{\"Config\":\"%s\",\"Layers\":[\"../l1/layer.tar\","
                                        "\"l2/layer.tar\"]}]",
                                        cfgname);
    _cleanup_free_ char *m2 = xasprintf("[{\"Config\":\"%s\",\"Layers\":[\"l1/layer.tar\","
                                        "\"l2/layer.tar\"]}]",
                                        cfgname);
    _cleanup_free_ char *m3 = xasprintf("[{\"Config\":\"%s\",\"Layers\":[\"l1/layer.tar\"]}]",
                                        cfgname);
    struct dt_oci_archive *a = NULL;
    struct dt_error *err = NULL;

    {
        const struct ent e[] = { { .name = "../evil", .data = "x" },
                                 { .name = "manifest.json", .data = m2 } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "unsafe name");
    }
    {
        const struct ent e[] = { { .name = cfgname, .data = f->config },
                                 { .name = "manifest.json", .data = m1 } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "unsafe layer path");
    }
    {
        const struct ent e[] = { { .name = cfgname, .data = f->config },
                                 { .name = "l1/layer.tar", .buf = &f->layer1 },
                                 { .name = "manifest.json", .data = m2 } };
        expect_fail(f, e, ELEMENTSOF(e), -ENOENT, "l2/layer.tar");
    }
    {
        const struct ent e[] = { { .name = cfgname, .data = f->config },
                                 { .name = "l1/layer.tar", .buf = &f->layer1 },
                                 { .name = "manifest.json", .data = m3 } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "lists 2");
    }
    {
        const struct ent e[] = { { .name = cfgname, .data = "{}" },
                                 { .name = "manifest.json", .data = m3 } };
        expect_fail(f, e, ELEMENTSOF(e), -EBADMSG, "digest");
    }
    {
        const struct ent e[] = { { .name = "l3/layer.tar", .symlink = "../../etc/passwd" },
                                 { .name = "manifest.json", .data = m3 } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "points outside");
    }
    {
        const struct ent e[] = { { .name = "a", .symlink = "b" }, { .name = "b", .symlink = "a" },
                                 { .name = "manifest.json",
                                   .data = "[{\"Config\":\"a\",\"Layers\":[]}]" } };
        expect_fail(f, e, ELEMENTSOF(e), -ELOOP, "symlinks");
    }
    {
        const struct ent e[] = { { .name = "manifest.json", .data = "[" },
                                 { .name = "manifest.json", .data = "[]" } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "twice");
    }
    {
        const struct ent e[] = { { .name = "foo", .data = "bar" } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "neither");
    }
    {
        const struct ent e[] = { { .name = "manifest.json", .data = "{\"x\":1}" } };
        expect_fail(f, e, ELEMENTSOF(e), -EINVAL, "not a JSON array");
    }
    big = xmalloc(DT_OCI_MANIFEST_MAX + 2);
    memset(big, ' ', DT_OCI_MANIFEST_MAX + 1);
    big[DT_OCI_MANIFEST_MAX + 1] = '\0';
    {
        const struct ent e[] = { { .name = "manifest.json", .data = big } };
        expect_fail(f, e, ELEMENTSOF(e), -EFBIG, "too large");
    }
    {
        struct buf junk = { .p = xstrdup("this is not a tar archive at all, sorry"), .len = 40 };
        _cleanup_free_ char *p = write_tmp(f->dir, "junk.tar", &junk);
        free(junk.p);
        assert_true(dt_oci_archive_open(p, &a, &err) < 0);
        assert_non_null(err);
        dt_error_free(err);
        err = NULL;
        /* Truncated archive. */
        struct buf t = make_tar((const struct ent[]){ { .name = "big", .buf = &f->layer1 } }, 1,
                                false);
        t.len = 700;
        free(p);
        p = write_tmp(f->dir, "trunc.tar", &t);
        free(t.p);
        assert_true(dt_oci_archive_open(p, &a, &err) < 0);
        dt_error_free(err);
        err = NULL;
    }
    assert_int_equal(dt_oci_archive_open("/nonexistent/x.tar", &a, &err), -ENOENT);
    assert_non_null(strstr(err->message, "/nonexistent/x.tar"));
    dt_error_free(err);
}

static bool
have(const char *tool)
{
    _cleanup_free_ char *p1 = xasprintf("/usr/bin/%s", tool);
    return access(p1, X_OK) == 0;
}

static int
run(const char *const argv[])
{
    return dt_test_run((char *const *)argv, NULL);
}

/* Layouts and archives made by real tools. */
static void
test_real_tools(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ char *layout = xasprintf("%s/umoci", f->dir),
                        *img = xasprintf("%s/umoci:latest", f->dir),
                        *src = xasprintf("%s/src", f->dir),
                        *file = xasprintf("%s/src/hello.txt", f->dir),
                        *oci_src = xasprintf("oci:%s/umoci:latest", f->dir),
                        *oci_ar = xasprintf("oci-archive:%s/sk-oci.tar:myimg:2", f->dir),
                        *dk_ar = xasprintf("docker-archive:%s/sk-docker.tar:myimg:3", f->dir),
                        *oci_path = xasprintf("%s/sk-oci.tar", f->dir),
                        *dk_path = xasprintf("%s/sk-docker.tar", f->dir);
    struct dt_oci_archive *a = NULL;
    const struct dt_oci_archive_image *im;
    struct dt_error *err = NULL;
    struct buf b = { .p = (char *)"hi\n", .len = 3 };

    if (!have("umoci") || !have("skopeo")) {
        skip();
        return;
    }
    assert_int_equal(mkdir(src, 0755), 0);
    free(write_tmp(src, "hello.txt", &b));
    (void)file;
    {
        const char *c1[] = { "/usr/bin/umoci", "init", "--layout", layout, NULL };
        const char *c2[] = { "/usr/bin/umoci", "new", "--image", img, NULL };
        const char *c3[] = { "/usr/bin/umoci", "insert", "--image", img, src, "/data", NULL };
        assert_int_equal(run(c1), 0);
        assert_int_equal(run(c2), 0);
        assert_int_equal(run(c3), 0);
    }
    if (dt_oci_archive_open(layout, &a, &err) < 0)
        fail_msg("%s", err->message);
    assert_int_equal(dt_oci_archive_select(a, "latest", &im, NULL), 0);
    assert_int_equal(im->n_layers, 1);
    {
        int fd;
        struct dt_oci_stream *s;
        char *got;
        size_t len;
        assert_int_equal(dt_oci_stream_open(&im->layers[0].blob, im->layers[0].digest, &fd, &s,
                                            NULL),
                         0);
        assert_int_equal(read_fd_all(fd, 1 << 20, &got, &len), 0);
        close(fd);
        assert_int_equal(dt_oci_stream_finish(s, NULL), 0);
        free(got);
    }
    dt_oci_archive_free(a);
    a = NULL;

    {
        const char *c4[] = { "/usr/bin/skopeo", "--insecure-policy", "copy", "-q", oci_src,
                             oci_ar, NULL };
        const char *c5[] = { "/usr/bin/skopeo", "--insecure-policy", "copy", "-q", oci_src,
                             dk_ar, NULL };
        assert_int_equal(run(c4), 0);
        assert_int_equal(run(c5), 0);
    }
    if (dt_oci_archive_open(oci_path, &a, &err) < 0)
        fail_msg("%s", err->message);
    assert_int_equal(dt_oci_archive_select(a, "myimg:2", &im, NULL), 0);
    assert_int_equal(im->n_layers, 1);
    dt_oci_archive_free(a);
    a = NULL;
    if (dt_oci_archive_open(dk_path, &a, &err) < 0)
        fail_msg("%s", err->message);
    assert_int_equal(dt_oci_archive_select(a, "docker.io/library/myimg:3", &im, &err), 0);
    assert_int_equal(im->n_layers, 1);
    {
        char tmpl[] = "/tmp/oci-real-XXXXXX";
        int fd = mkostemp(tmpl, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(tmpl);
        /* docker-archive layers are uncompressed: the diff_id is their digest. */
        assert_int_equal(dt_oci_window_copy(&im->layers[0].blob, fd, im->layers[0].diff_id, NULL),
                         0);
        close(fd);
    }
    dt_oci_archive_free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_save),
        cmocka_unit_test(test_oci_archive_and_dir),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_real_tools),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
