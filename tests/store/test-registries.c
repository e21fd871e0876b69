/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for docker registries in the store and for sealed secrets: CRUD, names unique per
 * organization, the default flag, URL normalisation, AES-256-GCM round trips, tampering and
 * wrong keys or contexts detected, and the key file created once with mode 0600. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "testlib.h"

struct fixture {
    char *dir;
    struct dt_store *s;
    struct dt_store_org *org, *org2;
    uint8_t key[DT_SECRET_KEY_SIZE];
};

static int
setup(void **state)
{
    struct dt_error *err = NULL;
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->dir = dt_test_mkdtemp("dt-registries");
    if (dt_store_open(f->dir, &f->s, &err) < 0)
        fail_msg("open: %s", err->message);
    if (dt_store_org_create(f->s, "a", &f->org, &err) < 0 ||
        dt_store_org_create(f->s, "b", &f->org2, &err) < 0)
        fail_msg("org: %s", err->message);
    _cleanup_free_ char *kp = xasprintf("%s/registry-key", f->dir);
    if (dt_store_secret_key_load(kp, f->key, &err) < 0)
        fail_msg("key: %s", err->message);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    dt_store_org_free(f->org);
    dt_store_org_free(f->org2);
    dt_store_close(f->s);
    dt_test_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* A new registry record of ORG with PASSWORD sealed for its id. */
static struct dt_store_registry *
new_registry(struct fixture *f, const char *org, const char *name, const char *url,
             const char *password)
{
    struct dt_store_registry *r = xcalloc(1, sizeof(*r));
    struct dt_error *err = NULL;
    char id[37];

    dt_store_uuid(id);
    r->id = xstrdup(id);
    r->organization_id = xstrdup(org);
    r->name = xstrdup(name);
    r->url = xstrdup(url);
    r->username = xstrdup("alice");
    if (dt_store_secret_seal(f->key, r->id, password, &r->password_enc, &err) < 0)
        fail_msg("seal: %s", err->message);
    return r;
}

static void
test_crud(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    struct dt_store_registry *r = new_registry(f, f->org->id, "hub", "docker.io", "s3cret");
    struct dt_store_registry *got = NULL;
    struct dt_store_registry_array a = { 0 };

    assert_int_equal(dt_store_registry_insert(f->s, r, &err), 0);
    assert_string_equal(r->registry_type, "organization");
    assert_string_equal(r->project, "");
    assert_true(r->created_at_ms > 0);

    /* By id and by name in the org; never from another org. */
    assert_int_equal(dt_store_registry_find(f->s, f->org->id, r->id, &got, &err), 0);
    assert_string_equal(got->url, "docker.io");
    assert_string_equal(got->username, "alice");
    assert_string_equal(got->password_enc, r->password_enc);
    dt_store_registry_free(got);
    assert_int_equal(dt_store_registry_find(f->s, f->org->id, "hub", &got, &err), 0);
    dt_store_registry_free(got);
    assert_int_equal(dt_store_registry_find(f->s, f->org2->id, r->id, &got, &err), -ENOENT);
    assert_non_null(strstr(err->message, "not found"));
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_store_registry_delete(f->s, f->org2->id, r->id, &err), -ENOENT);
    dt_error_free(err);
    err = NULL;

    /* Unique names per org; the same name in another org is fine. */
    struct dt_store_registry *dup = new_registry(f, f->org->id, "hub", "ghcr.io", "x");
    assert_int_equal(dt_store_registry_insert(f->s, dup, &err), -EEXIST);
    assert_non_null(strstr(err->message, "already taken"));
    dt_error_free(err);
    err = NULL;
    dt_store_registry_free(dup);
    struct dt_store_registry *other = new_registry(f, f->org2->id, "hub", "docker.io", "y");
    assert_int_equal(dt_store_registry_insert(f->s, other, &err), 0);

    /* Bad input never reaches the database. */
    struct dt_store_registry *bad = new_registry(f, f->org->id, "bad", "https://x.io/path", "z");
    assert_int_equal(dt_store_registry_insert(f->s, bad, &err), -EINVAL);
    dt_error_free(err);
    err = NULL;
    free(bad->url);
    bad->url = xstrdup("x.io");
    free(bad->password_enc);
    bad->password_enc = xstrdup("plaintext");
    assert_int_equal(dt_store_registry_insert(f->s, bad, &err), -EINVAL);
    assert_non_null(strstr(err->message, "not sealed"));
    dt_error_free(err);
    err = NULL;
    dt_store_registry_free(bad);

    /* Update (rename, new url) and the default flag. */
    struct dt_store_registry *r2 = new_registry(f, f->org->id, "local", "127.0.0.1:5000", "p");
    assert_int_equal(dt_store_registry_insert(f->s, r2, &err), 0);
    free(r2->name);
    r2->name = xstrdup("hub");
    assert_int_equal(dt_store_registry_update(f->s, r2, &err), -EEXIST);
    dt_error_free(err);
    err = NULL;
    free(r2->name);
    r2->name = xstrdup("loopback");
    assert_int_equal(dt_store_registry_update(f->s, r2, &err), 0);
    assert_int_equal(dt_store_registry_set_default(f->s, f->org->id, r2->id, &err), 0);
    assert_int_equal(dt_store_registry_set_default(f->s, f->org->id, r->id, &err), 0);
    assert_int_equal(dt_store_registry_set_default(f->s, f->org2->id, r->id, &err), -ENOENT);
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_store_registry_list(f->s, f->org->id, &a, &err), 0);
    assert_int_equal(a.n, 2);
    int defaults = 0;
    for (size_t i = 0; i < a.n; i++) {
        defaults += a.items[i]->is_default;
        if (strcmp(a.items[i]->id, r->id) == 0)
            assert_true(a.items[i]->is_default);
        else
            assert_string_equal(a.items[i]->name, "loopback");
    }
    assert_int_equal(defaults, 1);
    dt_store_registry_array_free(&a);

    assert_int_equal(dt_store_registry_delete(f->s, f->org->id, r->id, &err), 0);
    assert_int_equal(dt_store_registry_delete(f->s, f->org->id, r->id, &err), -ENOENT);
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_store_registry_list(f->s, f->org->id, &a, &err), 0);
    assert_int_equal(a.n, 1);
    dt_store_registry_array_free(&a);

    dt_store_registry_free(r);
    dt_store_registry_free(r2);
    dt_store_registry_free(other);
}

static void
test_urls(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        { "docker.io", "docker.io" },
        { "https://Registry.Example.COM/", "registry.example.com" },
        { "http://127.0.0.1:5000", "127.0.0.1:5000" },
        { "localhost:5000", "localhost:5000" },
        { "[::1]:5000", "[::1]:5000" },
    };
    static const char *const bad[] = {
        "", "https://", "ftp://x.io", "x.io/path", "x.io:", "x.io:0", "x.io:65536", "x.io:12a",
        "-x.io", "x..io", "user@x.io", "x.io?q", "http://x.io//", "x .io", "[::1",
    };
    char *out;

    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        struct dt_error *err = NULL;
        if (dt_store_registry_normalize_url(ok[i].in, &out, &err) < 0)
            fail_msg("%s: %s", ok[i].in, err->message);
        assert_string_equal(out, ok[i].out);
        free(out);
    }
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        struct dt_error *err = NULL;
        if (dt_store_registry_normalize_url(bad[i], &out, &err) == 0)
            fail_msg("'%s' accepted as '%s'", bad[i], out);
        dt_error_free(err);
    }
    assert_true(dt_store_registry_host_matches("docker.io", "registry-1.docker.io"));
    assert_true(dt_store_registry_host_matches("index.docker.io", "docker.io"));
    assert_true(dt_store_registry_host_matches("ghcr.io", "GHCR.io"));
    assert_false(dt_store_registry_host_matches("ghcr.io", "docker.io"));
    assert_false(dt_store_registry_host_matches("localhost:5000", "localhost:5001"));
}

static void
test_seal(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    char *a = NULL, *b = NULL, *plain = NULL;

    assert_int_equal(dt_store_secret_seal(f->key, "ctx", "hunter2", &a, &err), 0);
    assert_int_equal(dt_store_secret_seal(f->key, "ctx", "hunter2", &b, &err), 0);
    assert_memory_equal(a, "v1:", 3);
    assert_null(strstr(a, "hunter2"));
    /* A fresh nonce each time. */
    assert_string_not_equal(a, b);
    assert_int_equal(dt_store_secret_open(f->key, "ctx", a, &plain, &err), 0);
    assert_string_equal(plain, "hunter2");
    free(plain);

    /* Empty and long values round-trip too. */
    char *e = NULL, *long_plain = xmalloc(1025);
    memset(long_plain, 'x', 1024);
    long_plain[1024] = '\0';
    for (int i = 0; i < 2; i++) {
        const char *v = i ? long_plain : "";
        assert_int_equal(dt_store_secret_seal(f->key, NULL, v, &e, &err), 0);
        assert_int_equal(dt_store_secret_open(f->key, NULL, e, &plain, &err), 0);
        assert_string_equal(plain, v);
        free(plain);
        free(e);
    }
    free(long_plain);

    /* Every single-character change of the base64 is caught. */
    size_t n = strlen(a);
    for (size_t i = 3; i < n; i++) {
        char *t = xstrdup(a);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        plain = NULL;
        int r = dt_store_secret_open(f->key, "ctx", t, &plain, &err);
        if (r != -EBADMSG)
            fail_msg("tampered at %zu: %d %s", i, r, plain ? plain : "");
        dt_error_free(err);
        err = NULL;
        free(t);
    }
    /* Wrong context, wrong key, truncation, junk. */
    assert_int_equal(dt_store_secret_open(f->key, "other", a, &plain, &err), -EBADMSG);
    dt_error_free(err);
    err = NULL;
    uint8_t k2[DT_SECRET_KEY_SIZE];
    memcpy(k2, f->key, sizeof(k2));
    k2[0] ^= 1;
    assert_int_equal(dt_store_secret_open(k2, "ctx", a, &plain, &err), -EBADMSG);
    dt_error_free(err);
    err = NULL;
    static const char *const junk[] = { "", "v1:", "v1:AAAA", "v2:AAAA", "hunter2", "v1:!!!!" };
    for (size_t i = 0; i < ELEMENTSOF(junk); i++) {
        assert_int_equal(dt_store_secret_open(f->key, "ctx", junk[i], &plain, &err), -EBADMSG);
        dt_error_free(err);
        err = NULL;
    }
    a[n - 4] = '\0';
    assert_int_equal(dt_store_secret_open(f->key, "ctx", a, &plain, &err), -EBADMSG);
    dt_error_free(err);
    free(a);
    free(b);
}

static void
test_key_file(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    _cleanup_free_ char *kp = xasprintf("%s/registry-key", f->dir);
    uint8_t again[DT_SECRET_KEY_SIZE], zero[DT_SECRET_KEY_SIZE] = { 0 };
    struct stat st;

    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, DT_SECRET_KEY_SIZE);
    assert_memory_not_equal(f->key, zero, sizeof(zero));
    /* Created once: loading again gives the same key, and no temporary files are left. */
    assert_int_equal(dt_store_secret_key_load(kp, again, &err), 0);
    assert_memory_equal(f->key, again, sizeof(again));
    assert_int_equal(dt_test_count_dir(f->dir), 4); /* db, -wal, -shm, key */

    /* A key others may read is refused, and so is a damaged one. */
    assert_int_equal(chmod(kp, 0644), 0);
    assert_int_equal(dt_store_secret_key_load(kp, again, &err), -EPERM);
    assert_non_null(strstr(err->message, "0600"));
    dt_error_free(err);
    err = NULL;
    assert_int_equal(chmod(kp, 0600), 0);
    assert_int_equal(truncate(kp, 16), 0);
    assert_int_equal(dt_store_secret_key_load(kp, again, &err), -EINVAL);
    dt_error_free(err);
    err = NULL;

    /* A missing directory is an error, not a crash. */
    _cleanup_free_ char *nodir = xasprintf("%s/missing/registry-key", f->dir);
    assert_int_equal(dt_store_secret_key_load(nodir, again, &err), -ENOENT);
    dt_error_free(err);
}

/* The sealed value is what reaches the database file; the plaintext never does. */
static void
test_not_in_clear(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    const char *secret = "correct-horse-battery-staple-42";
    struct dt_store_registry *r = new_registry(f, f->org->id, "r", "ghcr.io", secret);

    assert_int_equal(dt_store_registry_insert(f->s, r, &err), 0);
    dt_store_close(f->s);
    f->s = NULL;
    const char *files[] = { "daytona.db", "daytona.db-wal" };
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", f->dir, files[i]);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        _cleanup_free_ char *buf = xmalloc((size_t) st.st_size + 1);
        assert_int_equal(read_full(fd, buf, (size_t) st.st_size), st.st_size);
        assert_null(memmem(buf, (size_t) st.st_size, secret, strlen(secret)));
        assert_non_null(memmem(buf, (size_t) st.st_size, r->password_enc, 20));
    }
    assert_int_equal(dt_store_open(f->dir, &f->s, &err), 0);
    struct dt_store_registry *got = NULL;
    char *plain = NULL;
    assert_int_equal(dt_store_registry_find(f->s, f->org->id, "r", &got, &err), 0);
    assert_int_equal(dt_store_secret_open(f->key, got->id, got->password_enc, &plain, &err), 0);
    assert_string_equal(plain, secret);
    free(plain);
    dt_store_registry_free(got);
    dt_store_registry_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_in_clear, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
