/* SPDX-License-Identifier: Apache-2.0 */
/* The image store (layers appear by rename, sizes, GC, cache), the image JSON round trip, and
 * turning a sandbox's upper directory into a layer (owners shifted, overlay xattrs dropped). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/image.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "testlib.h"

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
test_image_json(void **state)
{
    struct dt_error *err = NULL;
    struct dt_image img, back;

    dt_image_init(&img);
    strv_push(&img.layers, ID_A);
    strv_push(&img.layers, ID_B);
    strv_push(&img.env, "PATH=/usr/bin");
    strv_push(&img.cmd, "sleep");
    strv_push(&img.cmd, "infinity");
    img.working_dir = xstrdup("/work");
    img.user = xstrdup("1000:1000");
    img.size_bytes = 12345;
    _cleanup_free_ char *j = dt_image_to_json(&img);
    assert_int_equal(dt_image_from_json(j, &back, &err), 0);
    assert_int_equal(strv_length(back.layers), 2);
    assert_string_equal(back.layers[1], ID_B);
    assert_string_equal(back.cmd[1], "infinity");
    assert_null(back.entrypoint);
    assert_string_equal(back.working_dir, "/work");
    assert_true(back.size_bytes == 12345);
    dt_image_done(&back);
    dt_image_done(&img);

    /* Hostile input: bad layer ids, wrong types. */
    assert_int_equal(dt_image_from_json("{\"layers\":[\"../../etc\"]}", &back, &err), -EINVAL);
    assert_non_null(strstr(err->message, "layer id"));
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_image_from_json("{\"env\":[1]}", &back, &err), -EINVAL);
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_image_from_json("[", &back, &err), -EINVAL);
    dt_error_free(err);
    err = NULL;
    assert_false(dt_layer_id_is_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(dt_layer_id_is_valid(ID_A "a"));
    assert_true(dt_layer_id_is_valid(ID_A));
}

static void
test_store(void **state)
{
    _cleanup_free_ char *dir = dt_test_mkdtemp("imgstore");
    _cleanup_free_ char *sdir = xasprintf("%s/images", dir);
    struct dt_imgstore *s = NULL;
    struct dt_error *err = NULL;
    char *tmp = NULL;
    int fd;
    uint64_t sz = 0, freed = 0;
    struct stat st;

    assert_int_equal(dt_imgstore_open(sdir, &s, &err), 0);
    assert_int_equal(stat(sdir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    assert_int_equal(dt_imgstore_layer_begin(s, &tmp, &fd, &err), 0);
    assert_int_equal(write_file_at(fd, "hello", "hello\n", 6, 0644), 0);
    assert_int_equal(mkdirat(fd, "d", 0755), 0);
    assert_int_equal(symlinkat("hello", fd, "d/link"), 0);
    close(fd);
    assert_false(dt_imgstore_has_layer(s, ID_A));
    assert_int_equal(dt_imgstore_layer_commit(s, tmp, ID_A, &err), 0);
    free(tmp);
    assert_true(dt_imgstore_has_layer(s, ID_A));
    assert_int_equal(dt_imgstore_layer_size(s, ID_A, &sz), 0);
    assert_true(sz == 6 + 5); /* the file and the symlink's target */

    /* The same layer committed twice (two jobs): the second is dropped, not an error. */
    assert_int_equal(dt_imgstore_layer_begin(s, &tmp, &fd, &err), 0);
    close(fd);
    _cleanup_free_ char *tmp2 = xstrdup(tmp);
    assert_int_equal(dt_imgstore_layer_commit(s, tmp, ID_A, &err), 0);
    free(tmp);
    assert_int_not_equal(access(tmp2, F_OK), 0);
    _cleanup_free_ char *hello = xasprintf("%s/layers/" ID_A "/hello", sdir);
    assert_int_equal(access(hello, F_OK), 0);

    /* An invalid id is refused and the temporary dir removed. */
    assert_int_equal(dt_imgstore_layer_begin(s, &tmp, &fd, &err), 0);
    close(fd);
    assert_int_equal(dt_imgstore_layer_commit(s, tmp, "../x", &err), -EINVAL);
    dt_error_free(err);
    err = NULL;
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(tmp);

    assert_int_equal(dt_imgstore_layer_begin(s, &tmp, &fd, &err), 0);
    close(fd);
    assert_int_equal(dt_imgstore_layer_commit(s, tmp, ID_B, &err), 0);
    free(tmp);
    assert_true(dt_imgstore_usage(s) == 11);

    /* The runtime's order: topmost first. */
    struct dt_image img;
    dt_image_init(&img);
    strv_push(&img.layers, ID_A);
    strv_push(&img.layers, ID_B);
    char **paths = NULL;
    assert_int_equal(dt_imgstore_image_layers(s, &img, &paths, &err), 0);
    assert_non_null(strstr(paths[0], ID_B));
    assert_non_null(strstr(paths[1], ID_A));
    strv_free(paths);

    /* GC keeps what is listed. */
    char *keep[] = { (char *) ID_B, NULL };
    assert_int_equal(dt_imgstore_gc(s, keep, &freed, &err), 0);
    assert_true(freed == 11);
    assert_false(dt_imgstore_has_layer(s, ID_A));
    assert_true(dt_imgstore_has_layer(s, ID_B));
    assert_int_equal(dt_imgstore_image_layers(s, &img, &paths, &err), -ENOENT);
    assert_non_null(strstr(err->message, "aaaaaaaaaaaa"));
    dt_error_free(err);
    err = NULL;
    dt_image_done(&img);

    /* The step cache. */
    char *v = NULL;
    assert_int_equal(dt_imgstore_cache_get(s, ID_A, &v), -ENOENT);
    assert_int_equal(dt_imgstore_cache_put(s, ID_A, "{\"layer\":1}", &err), 0);
    assert_int_equal(dt_imgstore_cache_get(s, ID_A, &v), 0);
    assert_string_equal(v, "{\"layer\":1}");
    free(v);
    assert_int_equal(dt_imgstore_cache_get(s, "../../etc/passwd", &v), -EINVAL);

    dt_imgstore_free(s);
    dt_test_rm_rf(dir);
}

static void
test_from_upper(void **state)
{
    dt_test_require_root();
    _cleanup_free_ char *dir = dt_test_mkdtemp("imgstore");
    struct dt_error *err = NULL;
    const uid_t base = 0x1000000 + 7 * 65536;
    struct stat st;
    char buf[8];

    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, base, base), 0);
    assert_int_equal(write_file_at(fd, "suid", "x", 1, 0755), 0);
    assert_int_equal(fchownat(fd, "suid", base + 0, base + 0, 0), 0);
    assert_int_equal(fchmodat(fd, "suid", 04755, 0), 0);
    assert_int_equal(mkdirat(fd, "home", 0755), 0);
    assert_int_equal(fchownat(fd, "home", base + 1000, base + 1000, 0), 0);
    assert_int_equal(write_file_at(fd, "home/f", "y", 1, 0644), 0);
    assert_int_equal(fchownat(fd, "home/f", base + 1000, base + 1001, 0), 0);
    assert_int_equal(linkat(fd, "home/f", fd, "home/f2", 0), 0);
    assert_int_equal(symlinkat("/etc/shadow", fd, "home/ln"), 0);
    assert_int_equal(fchownat(fd, "home/ln", base + 1000, base + 1000, AT_SYMLINK_NOFOLLOW), 0);
    /* A whiteout overlayfs made with the mounter's (host root's) credentials. */
    assert_int_equal(mknodat(fd, "gone", S_IFCHR | 0000, makedev(0, 0)), 0);
    /* Opaque directory, and overlay bookkeeping that must go. */
    assert_int_equal(mkdirat(fd, "opq", 0755), 0);
    _cleanup_free_ char *opq = xasprintf("%s/opq", dir);
    assert_int_equal(fchownat(fd, "opq", base, base, 0), 0);
    if (setxattr(opq, "trusted.overlay.opaque", "y", 1, 0) < 0) {
        close(fd);
        dt_test_rm_rf(dir);
        skip();
    }
    assert_int_equal(setxattr(opq, "trusted.overlay.origin", "zz", 2, 0), 0);
    assert_int_equal(setxattr(opq, "user.keep", "k", 1, 0), 0);

    assert_int_equal(dt_layer_from_upper(fd, base, &err), 0);
    /* The caller's fd still lists the tree from the start: the walk used its own open file
     * description (a dup shares the offset, and the builder then saw an empty layer). */
    {
        DIR *d = fdopendir(dup(fd));
        int n = 0;
        assert_non_null(d);
        while (readdir(d))
            n++;
        closedir(d);
        assert_true(n > 2);
    }

    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(fstatat(fd, "suid", &st, 0), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_mode & 07777, 04755);
    assert_int_equal(fstatat(fd, "home", &st, 0), 0);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(fstatat(fd, "home/f", &st, 0), 0);
    assert_int_equal(st.st_uid, 1000); /* shifted once, though it has two names */
    assert_int_equal(st.st_gid, 1001);
    assert_int_equal(fstatat(fd, "home/ln", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(fstatat(fd, "gone", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
    assert_int_equal(getxattr(opq, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
    assert_int_equal(getxattr(opq, "trusted.overlay.origin", buf, sizeof(buf)), -1);
    assert_int_equal(errno, ENODATA);
    assert_int_equal(getxattr(opq, "user.keep", buf, sizeof(buf)), 1);
    close(fd);
    dt_test_rm_rf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_image_json),
            cmocka_unit_test(test_store),
            cmocka_unit_test(test_from_upper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
