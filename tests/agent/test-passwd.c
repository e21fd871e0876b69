/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the agent's /etc/passwd and /etc/group parser, on fixture roots in temp dirs:
 * lookups, first-wins duplicates, garbage lines, limits and non-regular files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/passwd.h"
#include "dt/xalloc.h"
#include "testlib.h"
#include "dt/banned.h"

static const char passwd_txt[] =
        "# a comment\n"
        "   \n"
        "root:x:0:0:root:/root:/bin/bash\n"
        "garbage line without colons\n"
        "bad:x:notanumber:0::/x:/bin/sh\n"
        "toomany:x:5:5:g:/h:/bin/sh:extra\n"
        "toofew:x:6:6:g:/h\n"
        "neg:x:4294967295:0::/:/bin/sh\n"
        ":x:7:7::/:/bin/sh\n"
        "daytona:x:1000:1000:Daytona,,,:/home/daytona:/bin/bash\r\n"
        "daytona:x:2000:2000::/other:/bin/sh\n"
        "dup:x:1000:3:::\n"
        "  spaced:x:1001:1001::/home/spaced:/bin/sh\n"
        "nohome:x:1002:1002:::"; /* no trailing newline */

static const char group_txt[] =
        "root:x:0:\n"
        "#wheel:x:10:daytona\n"
        "daytona:x:1000:\n"
        "sudo:x:27:alice,daytona\n"
        "docker:x:999: bob , daytona \n"
        "daytona:x:1234:\n"
        "dupgid:x:27:daytona\n"
        "bad:x::daytona\n"
        "users:x:100:daytonax,xdaytona\n"
        "last:x:500:daytona"; /* no trailing newline */

static void
write_file(const char *dir, const char *rel, const char *data, size_t len)
{
    char *p = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(p, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(p);
}

static char *
make_root(void)
{
    char *root = dt_test_mkdtemp("dt-passwd");
    char *etc = xasprintf("%s/etc", root);
    assert_int_equal(mkdir(etc, 0755), 0);
    free(etc);
    write_file(root, "etc/passwd", passwd_txt, strlen(passwd_txt));
    write_file(root, "etc/group", group_txt, strlen(group_txt));
    return root;
}

static void
test_passwd_lookup(void **state)
{
    char *root = make_root();
    struct dt_passwd pw = { 0 };

    assert_int_equal(dt_passwd_lookup(root, "daytona", 0, &pw), 0);
    assert_string_equal(pw.name, "daytona");
    assert_int_equal(pw.uid, 1000);
    assert_int_equal(pw.gid, 1000);
    assert_string_equal(pw.home, "/home/daytona"); /* first wins, '\r' dropped */
    assert_string_equal(pw.shell, "/bin/bash");
    dt_passwd_done(&pw);
    dt_passwd_done(&pw); /* idempotent */

    assert_int_equal(dt_passwd_lookup(root, NULL, 1000, &pw), 0);
    assert_string_equal(pw.name, "daytona");
    dt_passwd_done(&pw);

    assert_int_equal(dt_passwd_lookup(root, NULL, 0, &pw), 0);
    assert_string_equal(pw.name, "root");
    assert_string_equal(pw.home, "/root");
    dt_passwd_done(&pw);

    assert_int_equal(dt_passwd_lookup(root, "spaced", 0, &pw), 0);
    assert_int_equal(pw.uid, 1001);
    dt_passwd_done(&pw);

    assert_int_equal(dt_passwd_lookup(root, "nohome", 0, &pw), 0);
    assert_string_equal(pw.home, "");
    assert_string_equal(pw.shell, "");
    dt_passwd_done(&pw);

    assert_int_equal(dt_passwd_lookup(root, "bad", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, "toomany", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, "toofew", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, "neg", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, "", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, "nobody", 0, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, NULL, 7, &pw), -ENOENT);
    assert_int_equal(dt_passwd_lookup(root, NULL, 4242, &pw), -ENOENT);
    assert_null(pw.name);

    /* Trailing slash on the root and the real root both work. */
    char *slash = xasprintf("%s/", root);
    assert_int_equal(dt_passwd_lookup(slash, "root", 0, &pw), 0);
    dt_passwd_done(&pw);
    free(slash);
    assert_int_equal(dt_passwd_lookup("/", NULL, 0, &pw), 0);
    assert_int_equal(pw.uid, 0);
    dt_passwd_done(&pw);
    assert_int_equal(dt_passwd_lookup("", NULL, 0, &pw), 0);
    dt_passwd_done(&pw);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_group(void **state)
{
    char *root = make_root();
    gid_t gid = 0, gids[16];
    char *name = NULL;

    assert_int_equal(dt_group_lookup(root, "sudo", 0, &gid, &name), 0);
    assert_int_equal(gid, 27);
    assert_string_equal(name, "sudo");
    free(name);
    name = NULL;
    assert_int_equal(dt_group_lookup(root, NULL, 27, &gid, &name), 0);
    assert_string_equal(name, "sudo"); /* first wins over dupgid */
    free(name);
    name = NULL;
    assert_int_equal(dt_group_lookup(root, "daytona", 0, &gid, NULL), 0);
    assert_int_equal(gid, 1000);
    assert_int_equal(dt_group_lookup(root, "wheel", 0, &gid, NULL), -ENOENT);
    assert_int_equal(dt_group_lookup(root, "bad", 0, &gid, NULL), -ENOENT);
    assert_int_equal(dt_group_lookup(root, NULL, 4242, &gid, NULL), -ENOENT);

    int n = dt_group_list(root, "daytona", 1000, gids, 16);
    assert_int_equal(n, 4);
    assert_int_equal(gids[0], 1000);
    assert_int_equal(gids[1], 27);
    assert_int_equal(gids[2], 999);
    assert_int_equal(gids[3], 500);
    assert_int_equal(dt_group_list(root, "daytona", 1000, gids, 2), 2);
    assert_int_equal(gids[1], 27);
    assert_int_equal(dt_group_list(root, "daytona", 1000, gids, 0), -EINVAL);
    assert_int_equal(dt_group_list(root, "bob", 50, gids, 16), 2);
    assert_int_equal(gids[0], 50);
    assert_int_equal(gids[1], 999);
    assert_int_equal(dt_group_list(root, "nobody", 50, gids, 16), 1);
    /* The primary group is not repeated when the user is also listed as a member. */
    assert_int_equal(dt_group_list(root, "alice", 27, gids, 16), 1);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_parse_spec(void **state)
{
    char *root = make_root();
    uid_t uid = 1;
    gid_t gid = 1;

    assert_int_equal(dt_passwd_parse_uid(root, "daytona", &uid), 0);
    assert_int_equal(uid, 1000);
    assert_int_equal(dt_passwd_parse_uid(root, "0", &uid), 0);
    assert_int_equal(uid, 0);
    assert_int_equal(dt_passwd_parse_uid(root, "12345", &uid), 0); /* ids need no entry */
    assert_int_equal(uid, 12345);
    assert_int_equal(dt_passwd_parse_uid(root, "", &uid), -EINVAL);
    assert_int_equal(dt_passwd_parse_uid(root, NULL, &uid), -EINVAL);
    assert_int_equal(dt_passwd_parse_uid(root, "4294967295", &uid), -EINVAL);
    assert_int_equal(dt_passwd_parse_uid(root, "99999999999", &uid), -EINVAL);
    assert_int_equal(dt_passwd_parse_uid(root, "a:b", &uid), -EINVAL);
    assert_int_equal(dt_passwd_parse_uid(root, "ghost", &uid), -ENOENT);
    assert_int_equal(dt_group_parse_gid(root, "docker", &gid), 0);
    assert_int_equal(gid, 999);
    assert_int_equal(dt_group_parse_gid(root, "77", &gid), 0);
    assert_int_equal(gid, 77);
    assert_int_equal(dt_group_parse_gid(root, "ghost", &gid), -ENOENT);
    assert_int_equal(dt_group_parse_gid(root, "", &gid), -EINVAL);

    dt_test_rm_rf(root);
    free(root);
}

static void
test_files(void **state)
{
    char *root = dt_test_mkdtemp("dt-passwd");
    char *etc = xasprintf("%s/etc", root);
    char *pw_path = xasprintf("%s/passwd", etc);
    char *gr_path = xasprintf("%s/group", etc);
    struct dt_passwd pw = { 0 };
    gid_t gids[4];

    /* No /etc at all. */
    assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), -ENOENT);
    assert_int_equal(dt_group_lookup(root, "root", 0, NULL, NULL), -ENOENT);
    assert_int_equal(dt_group_list(root, "root", 5, gids, 4), 1);
    assert_int_equal(gids[0], 5);
    assert_int_equal(dt_passwd_parse_uid(root, "root", &pw.uid), -ENOENT);

    /* A FIFO must not block and counts as no file. */
    assert_int_equal(mkdir(etc, 0755), 0);
    assert_int_equal(mkfifo(pw_path, 0644), 0);
    assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), -ENOENT);
    assert_int_equal(unlink(pw_path), 0);

    /* A directory neither. */
    assert_int_equal(mkdir(gr_path, 0755), 0);
    assert_int_equal(dt_group_lookup(root, "root", 0, NULL, NULL), -ENOENT);
    assert_int_equal(rmdir(gr_path), 0);

    /* A symlink to a regular file is followed (images link /etc/passwd elsewhere). */
    write_file(root, "etc/real-passwd", passwd_txt, strlen(passwd_txt));
    assert_int_equal(symlink("real-passwd", pw_path), 0);
    assert_int_equal(dt_passwd_lookup(root, "daytona", 0, &pw), 0);
    assert_int_equal(pw.uid, 1000);
    dt_passwd_done(&pw);
    assert_int_equal(unlink(pw_path), 0);

    /* Over the limit: -EFBIG, even though the user is on the first line. */
    {
        size_t big = DT_PASSWD_MAX_FILE + 1;
        char *data = xmalloc(big);
        const char line[] = "root:x:0:0::/root:/bin/sh\n";
        memset(data, '#', big);
        memcpy(data, line, sizeof(line) - 1);
        data[big - 1] = '\n';
        write_file(root, "etc/passwd", data, big);
        assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), -EFBIG);
        /* Exactly at the limit is fine. */
        write_file(root, "etc/passwd", data, big - 1);
        assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), 0);
        dt_passwd_done(&pw);
        free(data);
    }

    /* A very long line (1 MiB name) is parsed, and the next line still found. */
    {
        size_t n = 1u << 20;
        char *data = xmalloc(n + 64);
        memset(data, 'a', n);
        int k = snprintf(data + n, 64, ":x:5:5::/:/bin/sh\nb:x:6:6::/:/bin/sh\n");
        write_file(root, "etc/passwd", data, n + (size_t) k);
        assert_int_equal(dt_passwd_lookup(root, NULL, 5, &pw), 0);
        assert_int_equal(strlen(pw.name), n);
        dt_passwd_done(&pw);
        assert_int_equal(dt_passwd_lookup(root, "b", 0, &pw), 0);
        dt_passwd_done(&pw);
        free(data);
    }

    /* NUL bytes make their line invalid, not the rest of the file. */
    {
        const char data[] = "ro\0ot:x:0:0::/:/bin/sh\nroot:x:1:1::/:/bin/sh\n";
        write_file(root, "etc/passwd", data, sizeof(data) - 1);
        assert_int_equal(dt_passwd_lookup(root, NULL, 0, &pw), -ENOENT);
        assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), 0);
        assert_int_equal(pw.uid, 1);
        dt_passwd_done(&pw);
    }

    /* Empty file. */
    write_file(root, "etc/passwd", "", 0);
    assert_int_equal(dt_passwd_lookup(root, "root", 0, &pw), -ENOENT);

    free(etc);
    free(pw_path);
    free(gr_path);
    dt_test_rm_rf(root);
    free(root);
}

static void
test_buffer(void **state)
{
    struct dt_passwd pw = { 0 };
    gid_t gids[3];

    /* Not NUL-terminated: the length bounds the parse. */
    const char buf[] = "u:x:1:2:g:/h:/s" "XXXX";
    assert_int_equal(dt_passwd_parse_buffer(buf, 15, "u", 0, &pw), 0);
    assert_string_equal(pw.shell, "/s");
    dt_passwd_done(&pw);
    assert_int_equal(dt_passwd_parse_buffer(buf, 0, "u", 0, &pw), -ENOENT);
    assert_int_equal(dt_group_parse_buffer("g:x:3:u", 7, NULL, 3, NULL, NULL), 0);
    assert_int_equal(dt_group_list_buffer("g:x:3:u\nh:x:4:u\ni:x:5:u\n", 24, "u", 9, gids, 3),
                     3);
    assert_int_equal(gids[2], 4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passwd_lookup), cmocka_unit_test(test_group),
        cmocka_unit_test(test_parse_spec),    cmocka_unit_test(test_files),
        cmocka_unit_test(test_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
