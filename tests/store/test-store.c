/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the store on a real SQLite file in a temporary directory: migrations, keys
 * stored hashed, sandbox CRUD and optimistic concurrency, list filters and pagination, engine
 * queries, snapshots and volumes, and crash safety with a child that dies mid-transaction. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "testlib.h"

struct fixture {
    char *dir;
    struct dt_store *s;
    struct dt_store_org *org;
};

static int
setup(void **state)
{
    struct dt_error *err = NULL;
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->dir = dt_test_mkdtemp("dt-store");
    if (dt_store_open(f->dir, &f->s, &err) < 0)
        fail_msg("open: %s", err->message);
    if (dt_store_org_create(f->s, "default", &f->org, &err) < 0)
        fail_msg("org: %s", err->message);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    dt_store_org_free(f->org);
    dt_store_close(f->s);
    dt_test_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        struct dt_error *_e = NULL;                                                                \
        int _r = (expr);                                                                           \
        if (_r < 0)                                                                                \
            fail_msg("%s: %d %s", #expr, _r, _e ? _e->message : "");                               \
        dt_error_free(_e);                                                                         \
    } while (0)

/* Call EXPR (which uses `&e`), expect ERRNO, and print the message for the log. */
#define ASSERT_ERR(expr, errnum)                                                                   \
    do {                                                                                           \
        struct dt_error *e = NULL;                                                                 \
        int _r = (expr);                                                                           \
        if (_r != -(errnum))                                                                       \
            fail_msg("%s: want %d got %d (%s)", #expr, -(errnum), _r, e ? e->message : "");     \
        assert_non_null(e);                                                                        \
        assert_non_null(e->message);                                                               \
        print_message("  expected error: %s\n", e->message);                                      \
        dt_error_free(e);                                                                          \
    } while (0)

static struct dt_store_sandbox *
make_sandbox(struct dt_store *s, const char *org, const char *name, const char *labels)
{
    struct dt_error *err = NULL;
    struct dt_store_sandbox *sb = dt_store_sandbox_new(org);
    sb->name = name ? xstrdup(name) : NULL;
    sb->labels_json = labels ? xstrdup(labels) : NULL;
    if (dt_store_sandbox_insert(s, sb, &err) < 0)
        fail_msg("insert %s: %s", name ? name : "(anon)", err->message);
    return sb;
}

static void
test_migrations(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    struct dt_store *s2 = NULL;

    assert_int_equal(dt_store_schema_version(f->s), dt_store_schema_version_latest());
    assert_true(dt_store_schema_version_latest() >= 1);

    /* Reopening (twice, even while the first is open) applies nothing and loses nothing. */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(dt_store_open(f->dir, &s2, &_e));
        assert_int_equal(dt_store_schema_version(s2), dt_store_schema_version_latest());
        struct dt_store_org *o = NULL;
        ASSERT_OK(dt_store_org_get(s2, f->org->id, &o, &_e));
        assert_string_equal(o->name, "default");
        dt_store_org_free(o);
        dt_store_close(s2);
    }

    /* Exactly one row per migration. */
    _cleanup_free_ char *path = xasprintf("%s/daytona.db", f->dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(version) FROM schema_migrations",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), dt_store_schema_version_latest());
    assert_int_equal(sqlite3_column_int(st, 1), dt_store_schema_version_latest());
    sqlite3_finalize(st);

    /* A schema from the future is refused, and the file is left as it was. */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (999, 0)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ASSERT_ERR(dt_store_open(f->dir, &s2, &e), EPROTO);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_migrations", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 999);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM schema_migrations WHERE version = 999", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    (void) err;
}

static void
test_open_errors(void **state)
{
    _cleanup_free_ char *dir = dt_test_mkdtemp("dt-store-bad");
    _cleanup_free_ char *missing = xasprintf("%s/nope", dir);
    struct dt_store *s = NULL;

    ASSERT_ERR(dt_store_open(missing, &s, &e), ENOENT);
    ASSERT_ERR(dt_store_open("postgresql://localhost/x", &s, &e), EPROTONOSUPPORT);

    /* Garbage where the database should be: a clear error, no crash. */
    _cleanup_free_ char *db = xasprintf("%s/daytona.db", dir);
    char junk[8192];
    memset(junk, 'x', sizeof(junk));
    assert_int_equal(write_file_at(AT_FDCWD, db, junk, sizeof(junk), 0600), 0);
    ASSERT_ERR(dt_store_open(dir, &s, &e), EIO);

    /* A database locked by another writer: -EBUSY after the busy timeout, not a hang. */
    assert_int_equal(unlink(db), 0);
    struct dt_error *err = NULL;
    ASSERT_OK(dt_store_open(dir, &s, &_e));
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_ERR(dt_store_org_create(s, "blocked", NULL, &e), EBUSY);
    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    ASSERT_OK(dt_store_org_create(s, "unblocked", NULL, &_e));
    dt_store_close(s);
    dt_error_free(err);
    dt_test_rm_rf(dir);
}

/* Whether NEEDLE occurs in any file of DIR (the database, its WAL and shm). */
static bool
dir_contains(const char *dir, const char *needle)
{
    static const char *const files[] = {"daytona.db", "daytona.db-wal", "daytona.db-shm"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, files[i]);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        if (read_file_at(AT_FDCWD, p, 64 << 20, &buf, &n) < 0)
            continue;
        if (memmem(buf, n, needle, strlen(needle)))
            return true;
    }
    return false;
}

static void
test_orgs_and_keys(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ char *plain = NULL, *admin = NULL;
    struct dt_store_api_key *k = NULL, *found = NULL;
    struct dt_store_org *other = NULL;
    struct dt_error *err = NULL;

    ASSERT_ERR(dt_store_org_get(f->s, "00000000-0000-4000-8000-000000000000", &other, &e), ENOENT);
    ASSERT_OK(dt_store_org_create(f->s, "other", &other, &_e));
    struct dt_store_org_array orgs = {0};
    ASSERT_OK(dt_store_org_list(f->s, &orgs, &_e));
    assert_int_equal(orgs.n, 2);
    dt_store_org_array_free(&orgs);

    ASSERT_OK(dt_store_api_key_create(f->s, f->org->id, "cli", NULL, &plain, &k, &_e));
    assert_true(strncmp(plain, "dtn_", 4) == 0);
    assert_int_equal(strlen(plain), 68);
    assert_int_equal(strlen(k->key_hash), 64);
    assert_true(strncmp(k->key_prefix, plain, strlen(k->key_prefix)) == 0);
    ASSERT_OK(dt_store_api_key_create(f->s, f->org->id, "admin", "my-admin-key-0123456789",
                                      &admin, NULL, &_e));
    assert_string_equal(admin, "my-admin-key-0123456789");
    ASSERT_ERR(dt_store_api_key_create(f->s, f->org->id, "cli", NULL, NULL, NULL, &e), EEXIST);
    ASSERT_ERR(dt_store_api_key_create(f->s, f->org->id, "short", "abc", NULL, NULL, &e), EINVAL);
    ASSERT_ERR(dt_store_api_key_create(f->s, "no-such-org", "x", NULL, NULL, NULL, &e), ENOENT);
    /* The same name in another organization is fine. */
    ASSERT_OK(dt_store_api_key_create(f->s, other->id, "cli", NULL, NULL, NULL, &_e));

    ASSERT_OK(dt_store_api_key_lookup(f->s, plain, &found, &_e));
    assert_string_equal(found->id, k->id);
    assert_string_equal(found->organization_id, f->org->id);
    dt_store_api_key_free(found);
    found = NULL;
    ASSERT_ERR(dt_store_api_key_lookup(f->s, "dtn_wrong", &found, &e), ENOENT);
    ASSERT_OK(dt_store_api_key_touch(f->s, k->id, 12345, &_e));
    ASSERT_OK(dt_store_api_key_lookup(f->s, admin, &found, &_e));
    assert_string_equal(found->name, "admin");
    dt_store_api_key_free(found);
    found = NULL;

    struct dt_store_api_key_array keys = {0};
    ASSERT_OK(dt_store_api_key_list(f->s, f->org->id, &keys, &_e));
    assert_int_equal(keys.n, 2);
    /* Two keys created within one millisecond are ordered by id: find the touched one. */
    {
        size_t touched = strcmp(keys.items[0]->id, k->id) == 0 ? 0 : 1;
        assert_string_equal(keys.items[touched]->id, k->id);
        assert_true(keys.items[touched]->last_used_at_ms == 12345);
        assert_true(keys.items[1 - touched]->last_used_at_ms != 12345);
    }
    dt_store_api_key_array_free(&keys);

    /* Neither plaintext is anywhere in the files, even before a checkpoint. */
    assert_false(dir_contains(f->dir, plain));
    assert_false(dir_contains(f->dir, admin));
    assert_false(dir_contains(f->dir, plain + 8)); /* the secret part beyond the prefix */
    assert_true(dir_contains(f->dir, k->key_hash)); /* the check can see what is there */

    ASSERT_ERR(dt_store_api_key_delete(f->s, other->id, k->id, &e), ENOENT);
    ASSERT_OK(dt_store_api_key_delete(f->s, f->org->id, k->id, &_e));
    ASSERT_ERR(dt_store_api_key_lookup(f->s, plain, &found, &e), ENOENT);

    dt_store_api_key_free(k);
    dt_store_org_free(other);
    dt_error_free(err);
}

static void
test_sha256(void **state)
{
    /* FIPS 180-4 / NIST CAVP vectors, on our wrapper. */
    char h[65];
    dt_store_key_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    dt_store_key_hash("", h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dt_store_key_hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    char u[37];
    dt_store_uuid(u);
    assert_true(dt_store_is_uuid(u));
    assert_int_equal(u[14], '4');
    assert_false(dt_store_is_uuid("not-a-uuid"));
}

static void
test_sandbox_crud(void **state)
{
    struct fixture *f = *state;
    struct dt_store_sandbox *got = NULL;
    struct dt_store_org *other = NULL;
    struct dt_error *err = NULL;

    struct dt_store_sandbox *sb = dt_store_sandbox_new(f->org->id);
    sb->name = xstrdup("my-sb");
    sb->env_json = xstrdup("{\"A\":\"1\"}");
    sb->labels_json = xstrdup("{\"team\":\"x\",\"code-toolbox-language\":\"python\"}");
    sb->user = xstrdup("daytona");
    sb->snapshot = xstrdup("default");
    sb->volumes_json = xstrdup("[{\"volumeId\":\"v\",\"mountPath\":\"/data\"}]");
    sb->runtime_plan_json = xstrdup("{\"rootfs\":\"/x\"}");
    sb->public_ = true;
    sb->auto_delete_interval = -1;
    sb->runner_slot = 7;
    ASSERT_OK(dt_store_sandbox_insert(f->s, sb, &_e));
    assert_true(dt_store_is_uuid(sb->id));
    assert_int_equal(sb->version, 1);
    assert_true(sb->created_at_ms > 0);

    /* By id, by name; not from another org. */
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, sb->id, &got, &_e));
    assert_string_equal(got->name, "my-sb");
    assert_string_equal(got->env_json, "{\"A\":\"1\"}");
    assert_string_equal(got->user, "daytona");
    assert_true(got->public_);
    assert_false(got->ephemeral);
    assert_int_equal(got->state, DT_SANDBOX_CREATING);
    assert_int_equal(got->desired_state, DT_DESIRED_STARTED);
    assert_int_equal(got->auto_delete_interval, -1);
    assert_int_equal(got->auto_stop_interval, 15);
    assert_int_equal(got->runner_slot, 7);
    assert_int_equal(got->cpu, 1);
    assert_int_equal(got->memory_gib, 1);
    assert_int_equal(got->disk_gib, 3);
    assert_string_equal(got->backup_state, "None");
    assert_null(got->error_reason);
    assert_true(got->created_at_ms == sb->created_at_ms);
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "my-sb", &got, &_e));
    assert_string_equal(got->id, sb->id);
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_OK(dt_store_sandbox_find(f->s, NULL, sb->id, &got, &_e));
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_ERR(dt_store_sandbox_find(f->s, NULL, "my-sb", &got, &e), ENOENT);
    ASSERT_ERR(dt_store_sandbox_find(f->s, f->org->id, "nope", &got, &e), ENOENT);

    ASSERT_OK(dt_store_org_create(f->s, "other", &other, &_e));
    ASSERT_ERR(dt_store_sandbox_find(f->s, other->id, sb->id, &got, &e), ENOENT);
    ASSERT_ERR(dt_store_sandbox_find(f->s, other->id, "my-sb", &got, &e), ENOENT);

    /* Names: unique per org, not across orgs; a name may equal another sandbox's id. */
    struct dt_store_sandbox *dup = dt_store_sandbox_new(f->org->id);
    dup->name = xstrdup("my-sb");
    ASSERT_ERR(dt_store_sandbox_insert(f->s, dup, &e), EEXIST);
    dt_store_sandbox_free(dup);
    struct dt_store_sandbox *o2 = make_sandbox(f->s, other->id, "my-sb", NULL);
    assert_string_not_equal(o2->id, sb->id);
    struct dt_store_sandbox *anon = make_sandbox(f->s, f->org->id, NULL, NULL);
    assert_string_equal(anon->name, anon->id); /* name defaults to the id */

    /* Bad input. */
    struct dt_store_sandbox *bad = dt_store_sandbox_new(f->org->id);
    bad->labels_json = xstrdup("{\"a\":1}");
    ASSERT_ERR(dt_store_sandbox_insert(f->s, bad, &e), EINVAL);
    free(bad->labels_json);
    bad->labels_json = xstrdup("{nope");
    ASSERT_ERR(dt_store_sandbox_insert(f->s, bad, &e), EINVAL);
    free(bad->labels_json);
    bad->labels_json = NULL;
    bad->name = xstrdup("a/b");
    ASSERT_ERR(dt_store_sandbox_insert(f->s, bad, &e), EINVAL);
    free(bad->name);
    bad->name = xstrdup("orphan");
    free(bad->organization_id);
    bad->organization_id = xstrdup("no-such-org");
    ASSERT_ERR(dt_store_sandbox_insert(f->s, bad, &e), ENOENT);
    dt_store_sandbox_free(bad);

    /* Update with the version check. */
    struct dt_store_sandbox *a = NULL, *b = NULL;
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "my-sb", &a, &_e));
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "my-sb", &b, &_e));
    free(a->labels_json);
    a->labels_json = xstrdup("{\"team\":\"y\"}");
    a->state = DT_SANDBOX_STARTED;
    ASSERT_OK(dt_store_sandbox_update(f->s, a, &_e));
    assert_int_equal(a->version, 2);
    b->cpu = 4;
    ASSERT_ERR(dt_store_sandbox_update(f->s, b, &e), ESTALE);
    assert_int_equal(b->version, 1); /* untouched on failure */
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "my-sb", &got, &_e));
    assert_int_equal(got->version, 2);
    assert_int_equal(got->cpu, 1);
    assert_int_equal(got->state, DT_SANDBOX_STARTED);
    assert_string_equal(got->labels_json, "{\"team\":\"y\"}");
    dt_store_sandbox_free(got);
    got = NULL;
    /* Renaming onto a taken name. */
    free(a->name);
    a->name = xstrdup(anon->name);
    ASSERT_ERR(dt_store_sandbox_update(f->s, a, &e), EEXIST);
    assert_int_equal(a->version, 2);

    /* Transitions with the expected state. */
    ASSERT_OK(dt_store_sandbox_transition(f->s, sb->id, DT_SANDBOX_STARTED, DT_SANDBOX_STOPPING,
                                          NULL, &got, &_e));
    assert_int_equal(got->state, DT_SANDBOX_STOPPING);
    assert_int_equal(got->version, 3);
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_ERR(dt_store_sandbox_transition(f->s, sb->id, DT_SANDBOX_STARTED, DT_SANDBOX_STOPPED,
                                           NULL, NULL, &e),
               ESTALE);
    ASSERT_OK(dt_store_sandbox_transition(f->s, sb->id, DT_SANDBOX_STOPPING, DT_SANDBOX_ERROR,
                                          "disk full", &got, &_e));
    assert_string_equal(got->error_reason, "disk full");
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_ERR(dt_store_sandbox_transition(f->s, "nope", DT_SANDBOX_STARTED, DT_SANDBOX_STOPPED,
                                           NULL, NULL, &e),
               ENOENT);
    /* The old copy is now stale. */
    ASSERT_ERR(dt_store_sandbox_update(f->s, a, &e), ESTALE);

    /* Touch: no version bump, never backwards. */
    ASSERT_OK(dt_store_sandbox_touch(f->s, sb->id, INT64_C(4000000000000), &_e));
    ASSERT_OK(dt_store_sandbox_touch(f->s, sb->id, 1, &_e));
    ASSERT_OK(dt_store_sandbox_find(f->s, NULL, sb->id, &got, &_e));
    assert_true(got->last_activity_at_ms == INT64_C(4000000000000));
    assert_int_equal(got->version, 4);
    dt_store_sandbox_free(got);
    got = NULL;
    ASSERT_ERR(dt_store_sandbox_touch(f->s, "nope", 1, &e), ENOENT);

    /* Delete. */
    ASSERT_OK(dt_store_sandbox_delete(f->s, sb->id, &_e));
    ASSERT_ERR(dt_store_sandbox_delete(f->s, sb->id, &e), ENOENT);
    ASSERT_ERR(dt_store_sandbox_find(f->s, f->org->id, "my-sb", &got, &e), ENOENT);
    /* The name is free again. */
    dt_store_sandbox_free(make_sandbox(f->s, f->org->id, "my-sb", NULL));

    dt_store_sandbox_free(a);
    dt_store_sandbox_free(b);
    dt_store_sandbox_free(sb);
    dt_store_sandbox_free(o2);
    dt_store_sandbox_free(anon);
    dt_store_org_free(other);
    dt_error_free(err);
}

static void
collect_names(const struct dt_store_sandbox_array *a, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, "%s%s", i ? "," : "", a->items[i]->name);
    }
}

static void
test_sandbox_list(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    struct dt_store_org *other = NULL;
    char names[512];

    ASSERT_OK(dt_store_org_create(f->s, "other", &other, &_e));
    /* sb0..sb9, created 1 ms apart (explicit timestamps keep the order deterministic). */
    for (int i = 0; i < 10; i++) {
        struct dt_store_sandbox *sb = dt_store_sandbox_new(f->org->id);
        sb->name = xasprintf("sb%d", i);
        sb->labels_json = xasprintf("{\"env\":\"%s\",\"n\":\"%d\",\"x\":\"_%%\"}",
                                    i % 2 ? "dev" : "prod", i);
        sb->created_at_ms = 1000 + i;
        sb->state = i < 3 ? DT_SANDBOX_STOPPED : DT_SANDBOX_STARTED;
        if (i == 9)
            sb->state = DT_SANDBOX_DESTROYED;
        ASSERT_OK(dt_store_sandbox_insert(f->s, sb, &_e));
        dt_store_sandbox_free(sb);
    }
    dt_store_sandbox_free(make_sandbox(f->s, other->id, "sb-other", "{\"env\":\"dev\"}"));

    struct dt_store_sandbox_page p = {0};
    struct dt_store_sandbox_filter flt = {.organization_id = f->org->id};

    /* Default: newest first, destroyed left out, other org left out. */
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb8,sb7,sb6,sb5,sb4,sb3,sb2,sb1,sb0");
    assert_int_equal(p.total, 9);
    assert_null(p.next_cursor);
    dt_store_sandbox_page_free(&p);

    /* Labels: all pairs must match. */
    flt.labels_json = "{\"env\":\"dev\"}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb7,sb5,sb3,sb1");
    dt_store_sandbox_page_free(&p);
    flt.labels_json = "{\"env\":\"dev\",\"n\":\"3\"}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb3");
    dt_store_sandbox_page_free(&p);
    flt.labels_json = "{\"env\":\"dev\",\"n\":\"4\"}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    assert_int_equal(p.items.n, 0);
    assert_int_equal(p.total, 0);
    dt_store_sandbox_page_free(&p);
    flt.labels_json = "{}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    assert_int_equal(p.total, 9);
    dt_store_sandbox_page_free(&p);
    flt.labels_json = "[1]";
    ASSERT_ERR(dt_store_sandbox_list(f->s, &flt, &p, &e), EINVAL);
    flt.labels_json = NULL;

    /* States. */
    enum dt_sandbox_state st[] = {DT_SANDBOX_STOPPED, DT_SANDBOX_DESTROYED};
    flt.states = st;
    flt.n_states = 2;
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb9,sb2,sb1,sb0");
    dt_store_sandbox_page_free(&p);
    flt.n_states = 1;
    flt.labels_json = "{\"env\":\"prod\"}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb2,sb0");
    dt_store_sandbox_page_free(&p);
    flt.states = NULL;
    flt.n_states = 0;
    flt.labels_json = NULL;

    /* Name prefix, case-insensitive, LIKE metacharacters taken literally. */
    flt.name_prefix = "SB";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    assert_int_equal(p.total, 9);
    dt_store_sandbox_page_free(&p);
    flt.name_prefix = "s_";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    assert_int_equal(p.total, 0);
    dt_store_sandbox_page_free(&p);
    flt.name_prefix = NULL;

    /* Page mode: 1-based pages with the total. */
    flt.limit = 4;
    flt.page = 3;
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb0");
    assert_int_equal(p.total, 9);
    dt_store_sandbox_page_free(&p);
    flt.page = 0;

    /* Cursor mode: walk until next_cursor is NULL; every item exactly once. */
    char all[1024] = "";
    _cleanup_free_ char *cursor = NULL;
    int pages = 0;
    do {
        flt.cursor = cursor;
        ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
        assert_int_equal(p.total, 9);
        collect_names(&p.items, names, sizeof(names));
        size_t l = strlen(all);
        snprintf(all + l, sizeof(all) - l, "%s%s", l ? "," : "", names);
        free(cursor);
        cursor = TAKE_PTR(p.next_cursor);
        dt_store_sandbox_page_free(&p);
        pages++;
    } while (cursor);
    assert_string_equal(all, "sb8,sb7,sb6,sb5,sb4,sb3,sb2,sb1,sb0");
    assert_int_equal(pages, 3);
    flt.cursor = "garbage";
    ASSERT_ERR(dt_store_sandbox_list(f->s, &flt, &p, &e), EINVAL);
    flt.cursor = NULL;

    /* Labels follow updates (the label index is rewritten). */
    struct dt_store_sandbox *sb = NULL;
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "sb0", &sb, &_e));
    free(sb->labels_json);
    sb->labels_json = xstrdup("{\"env\":\"dev\"}");
    ASSERT_OK(dt_store_sandbox_update(f->s, sb, &_e));
    dt_store_sandbox_free(sb);
    flt.limit = 0;
    flt.labels_json = "{\"env\":\"dev\"}";
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    collect_names(&p.items, names, sizeof(names));
    assert_string_equal(names, "sb7,sb5,sb3,sb1,sb0");
    dt_store_sandbox_page_free(&p);

    struct dt_store_sandbox_array a = {0};
    ASSERT_OK(dt_store_sandbox_list_all(f->s, NULL, &a, &_e));
    assert_int_equal(a.n, 11);
    dt_store_sandbox_array_free(&a);
    ASSERT_OK(dt_store_sandbox_list_all(f->s, other->id, &a, &_e));
    assert_int_equal(a.n, 1);
    dt_store_sandbox_array_free(&a);

    dt_store_org_free(other);
    dt_error_free(err);
}

static void
test_autostop(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    const int64_t t0 = INT64_C(1700000000000), min = 60000;

    /* idle: started 20 min ago, auto-stop 15 -> due. fresh: 5 min ago -> not yet.
     * never: auto-stop 0 -> never. stopped: not started -> never. */
    struct {
        const char *name;
        enum dt_sandbox_state state;
        int64_t interval, idle_min;
    } cases[] = {
        {"idle", DT_SANDBOX_STARTED, 15, 20},
        {"fresh", DT_SANDBOX_STARTED, 15, 5},
        {"never", DT_SANDBOX_STARTED, 0, 600},
        {"stopped", DT_SANDBOX_STOPPED, 15, 600},
        {"exact", DT_SANDBOX_STARTED, 1, 1},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct dt_store_sandbox *sb = dt_store_sandbox_new(f->org->id);
        sb->name = xstrdup(cases[i].name);
        sb->state = cases[i].state;
        sb->auto_stop_interval = cases[i].interval;
        sb->last_activity_at_ms = t0 - cases[i].idle_min * min;
        ASSERT_OK(dt_store_sandbox_insert(f->s, sb, &_e));
        dt_store_sandbox_free(sb);
    }
    struct dt_store_sandbox_array a = {0};
    ASSERT_OK(dt_store_sandbox_list_due_autostop(f->s, t0, &a, &_e));
    assert_int_equal(a.n, 2);
    assert_string_equal(a.items[0]->name, "idle");
    assert_string_equal(a.items[1]->name, "exact");
    dt_store_sandbox_array_free(&a);

    /* Activity resets the clock. */
    struct dt_store_sandbox *idle = NULL;
    ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, "idle", &idle, &_e));
    ASSERT_OK(dt_store_sandbox_touch(f->s, idle->id, t0, &_e));
    ASSERT_OK(dt_store_sandbox_list_due_autostop(f->s, t0, &a, &_e));
    assert_int_equal(a.n, 1);
    dt_store_sandbox_array_free(&a);
    ASSERT_OK(dt_store_sandbox_list_due_autostop(f->s, t0 + 15 * min, &a, &_e));
    assert_int_equal(a.n, 3); /* idle, exact, and fresh (5 + 15 >= 15) */
    dt_store_sandbox_array_free(&a);
    dt_store_sandbox_free(idle);
    dt_error_free(err);
}

static void
test_snapshots_volumes(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    struct dt_store_org *other = NULL;

    ASSERT_OK(dt_store_org_create(f->s, "other", &other, &_e));

    struct dt_store_snapshot *sn = xcalloc(1, sizeof(*sn));
    sn->organization_id = xstrdup(f->org->id);
    sn->name = xstrdup("daytonaio/sandbox:0.1");
    sn->image_name = xstrdup("daytonaio/sandbox:0.1");
    sn->state = DT_SNAPSHOT_PENDING;
    sn->size_bytes = -1;
    sn->entrypoint_json = xstrdup("[\"sleep\",\"infinity\"]");
    sn->cpu = 1;
    sn->memory_gib = 1;
    sn->disk_gib = 3;
    ASSERT_ERR(dt_store_snapshot_insert(f->s, sn, &e), EINVAL); /* '/' in the name */
    free(sn->name);
    sn->name = xstrdup("sandbox-0.1");
    ASSERT_OK(dt_store_snapshot_insert(f->s, sn, &_e));
    assert_true(dt_store_is_uuid(sn->id));

    struct dt_store_snapshot *g = NULL;
    ASSERT_OK(dt_store_snapshot_find(f->s, f->org->id, "sandbox-0.1", &g, &_e));
    assert_string_equal(g->id, sn->id);
    assert_int_equal(g->state, DT_SNAPSHOT_PENDING);
    assert_true(g->size_bytes == -1);
    assert_string_equal(g->entrypoint_json, "[\"sleep\",\"infinity\"]");
    assert_null(g->build_info_json);
    g->state = DT_SNAPSHOT_ACTIVE;
    g->size_bytes = 1 << 20;
    ASSERT_OK(dt_store_snapshot_update(f->s, g, &_e));
    dt_store_snapshot_free(g);
    g = NULL;
    ASSERT_OK(dt_store_snapshot_find(f->s, f->org->id, sn->id, &g, &_e));
    assert_int_equal(g->state, DT_SNAPSHOT_ACTIVE);
    assert_true(g->size_bytes == 1 << 20);
    dt_store_snapshot_free(g);
    g = NULL;
    ASSERT_ERR(dt_store_snapshot_find(f->s, other->id, "sandbox-0.1", &g, &e), ENOENT);

    /* Unique per org only. */
    free(sn->id);
    sn->id = NULL;
    ASSERT_ERR(dt_store_snapshot_insert(f->s, sn, &e), EEXIST);
    free(sn->organization_id);
    sn->organization_id = xstrdup(other->id);
    ASSERT_OK(dt_store_snapshot_insert(f->s, sn, &_e));

    for (int i = 0; i < 5; i++) {
        struct dt_store_snapshot *x = xcalloc(1, sizeof(*x));
        x->organization_id = xstrdup(f->org->id);
        x->name = xasprintf("snap-%d", i);
        x->state = DT_SNAPSHOT_ACTIVE;
        x->created_at_ms = 5000 + i;
        ASSERT_OK(dt_store_snapshot_insert(f->s, x, &_e));
        dt_store_snapshot_free(x);
    }
    struct dt_store_snapshot_array sa = {0};
    uint64_t total = 0;
    ASSERT_OK(dt_store_snapshot_list(f->s, f->org->id, 2, 2, &sa, &total, &_e));
    assert_int_equal(total, 6);
    assert_int_equal(sa.n, 2);
    dt_store_snapshot_array_free(&sa);
    ASSERT_OK(dt_store_snapshot_list(f->s, f->org->id, 4, 2, &sa, &total, &_e));
    assert_int_equal(sa.n, 0);
    dt_store_snapshot_array_free(&sa);

    /* A general snapshot: every organization finds and lists it; its own name wins. */
    struct dt_store_snapshot *gen = xcalloc(1, sizeof(*gen));
    gen->organization_id = xstrdup(other->id);
    gen->name = xstrdup("shared");
    gen->state = DT_SNAPSHOT_ACTIVE;
    gen->general = true;
    gen->image_json = xstrdup("{\"layers\":[]}");
    ASSERT_OK(dt_store_snapshot_insert(f->s, gen, &_e));
    ASSERT_OK(dt_store_snapshot_find(f->s, f->org->id, "shared", &g, &_e));
    assert_true(g->general);
    assert_string_equal(g->image_json, "{\"layers\":[]}");
    assert_string_equal(g->organization_id, other->id);
    dt_store_snapshot_free(g);
    g = NULL;
    ASSERT_OK(dt_store_snapshot_find(f->s, f->org->id, gen->id, &g, &_e));
    dt_store_snapshot_free(g);
    g = NULL;
    ASSERT_OK(dt_store_snapshot_list(f->s, f->org->id, 1, 100, &sa, &total, &_e));
    assert_int_equal(total, 7);
    dt_store_snapshot_array_free(&sa);
    ASSERT_OK(dt_store_snapshot_list(f->s, NULL, 1, 100, &sa, &total, &_e));
    assert_int_equal(total, 8); /* and the other organization's own */
    dt_store_snapshot_array_free(&sa);
    struct dt_store_snapshot *own = xcalloc(1, sizeof(*own));
    own->organization_id = xstrdup(f->org->id);
    own->name = xstrdup("shared");
    own->state = DT_SNAPSHOT_PENDING;
    ASSERT_OK(dt_store_snapshot_insert(f->s, own, &_e));
    ASSERT_OK(dt_store_snapshot_find(f->s, f->org->id, "shared", &g, &_e));
    assert_string_equal(g->id, own->id);
    assert_false(g->general);
    dt_store_snapshot_free(g);
    g = NULL;
    ASSERT_OK(dt_store_snapshot_delete(f->s, own->id, &_e));
    ASSERT_OK(dt_store_snapshot_delete(f->s, gen->id, &_e));
    dt_store_snapshot_free(own);
    dt_store_snapshot_free(gen);

    ASSERT_OK(dt_store_snapshot_delete(f->s, sn->id, &_e));
    ASSERT_ERR(dt_store_snapshot_delete(f->s, sn->id, &e), ENOENT);
    ASSERT_ERR(dt_store_snapshot_update(f->s, sn, &e), ENOENT);
    dt_store_snapshot_free(sn);

    struct dt_store_volume *v = xcalloc(1, sizeof(*v));
    v->organization_id = xstrdup(f->org->id);
    v->name = xstrdup("data");
    v->state = DT_VOLUME_PENDING_CREATE;
    ASSERT_OK(dt_store_volume_insert(f->s, v, &_e));
    struct dt_store_volume *vg = NULL;
    ASSERT_OK(dt_store_volume_find(f->s, f->org->id, "data", &vg, &_e));
    assert_string_equal(vg->id, v->id);
    assert_int_equal(vg->state, DT_VOLUME_PENDING_CREATE);
    vg->state = DT_VOLUME_READY;
    ASSERT_OK(dt_store_volume_update(f->s, vg, &_e));
    dt_store_volume_free(vg);
    vg = NULL;
    ASSERT_OK(dt_store_volume_find(f->s, f->org->id, v->id, &vg, &_e));
    assert_int_equal(vg->state, DT_VOLUME_READY);
    dt_store_volume_free(vg);
    vg = NULL;
    free(v->id);
    v->id = NULL;
    ASSERT_ERR(dt_store_volume_insert(f->s, v, &e), EEXIST);
    struct dt_store_volume_array va = {0};
    ASSERT_OK(dt_store_volume_list(f->s, f->org->id, &va, &_e));
    assert_int_equal(va.n, 1);
    ASSERT_OK(dt_store_volume_delete(f->s, va.items[0]->id, &_e));
    ASSERT_ERR(dt_store_volume_delete(f->s, va.items[0]->id, &e), ENOENT);
    dt_store_volume_array_free(&va);
    ASSERT_ERR(dt_store_volume_find(f->s, f->org->id, "data", &vg, &e), ENOENT);
    dt_store_volume_free(v);
    dt_store_org_free(other);
    dt_error_free(err);
}

static void
test_enums(void **state)
{
    assert_string_equal(dt_sandbox_state_to_string(DT_SANDBOX_BUILD_FAILED), "build_failed");
    assert_int_equal(dt_sandbox_state_from_string("pulling_snapshot"), DT_SANDBOX_PULLING_SNAPSHOT);
    assert_int_equal(dt_sandbox_state_from_string("Started"), -EINVAL);
    assert_string_equal(dt_sandbox_state_to_string(_DT_SANDBOX_STATE_MAX), "unknown");
    for (int i = 0; i < _DT_SANDBOX_STATE_MAX; i++)
        assert_int_equal(dt_sandbox_state_from_string(dt_sandbox_state_to_string(i)), i);
    for (int i = 0; i < _DT_DESIRED_STATE_MAX; i++)
        assert_int_equal(
                dt_sandbox_desired_state_from_string(dt_sandbox_desired_state_to_string(i)), i);
    for (int i = 0; i < _DT_SNAPSHOT_STATE_MAX; i++)
        assert_int_equal(dt_snapshot_state_from_string(dt_snapshot_state_to_string(i)), i);
    for (int i = 0; i < _DT_VOLUME_STATE_MAX; i++)
        assert_int_equal(dt_volume_state_from_string(dt_volume_state_to_string(i)), i);
}

/* A child writes through the store and dies without closing it; another dies in the middle of
 * a transaction. After both, committed data is intact and the half-done write is gone. */
static void
test_crash_safety(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct dt_store *s = NULL;
        if (dt_store_open(f->dir, &s, NULL) < 0)
            _exit(2);
        for (int i = 0; i < 50; i++) {
            struct dt_store_sandbox *sb = dt_store_sandbox_new(f->org->id);
            sb->name = xasprintf("crash-%d", i);
            sb->labels_json = xstrdup("{\"k\":\"v\"}");
            if (dt_store_sandbox_insert(s, sb, NULL) < 0)
                _exit(3);
            dt_store_sandbox_free(sb);
        }
        _exit(0); /* no close, no checkpoint */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    _cleanup_free_ char *path = xasprintf("%s/daytona.db", f->dir);
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db;
        if (sqlite3_open(path, &db) != SQLITE_OK)
            _exit(2);
        if (sqlite3_exec(db,
                         "BEGIN IMMEDIATE; DELETE FROM sandbox_labels; DELETE FROM sandboxes;"
                         "UPDATE organizations SET name = 'torn'",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        /* Force the half transaction's pages out to the WAL, then die mid-transaction. */
        (void) sqlite3_db_cacheflush(db);
        (void) !write(pfd[1], "x", 1);
        pause();
        _exit(4);
    }
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(pfd[0]);
    close(pfd[1]);

    /* Our own open store and a fresh one both see exactly the committed state. */
    struct dt_store *s2 = NULL;
    ASSERT_OK(dt_store_open(f->dir, &s2, &_e));
    struct dt_store *stores[] = {f->s, s2};
    for (size_t k = 0; k < 2; k++) {
        struct dt_store_sandbox_filter flt = {.organization_id = f->org->id,
                                              .labels_json = "{\"k\":\"v\"}"};
        struct dt_store_sandbox_page p = {0};
        ASSERT_OK(dt_store_sandbox_list(stores[k], &flt, &p, &_e));
        assert_int_equal(p.total, 50);
        dt_store_sandbox_page_free(&p);
        struct dt_store_org *o = NULL;
        ASSERT_OK(dt_store_org_get(stores[k], f->org->id, &o, &_e));
        assert_string_equal(o->name, "default");
        dt_store_org_free(o);
    }
    dt_store_close(s2);
    dt_error_free(err);
}

static void
test_timing(void **state)
{
    struct fixture *f = *state;
    struct dt_error *err = NULL;
    enum { N = 10000 };
    char **ids = xcalloc(N, sizeof(char *));
    struct timespec t0, t1, t2;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        struct dt_store_sandbox *sb = dt_store_sandbox_new(f->org->id);
        sb->name = xasprintf("t-%d", i);
        sb->labels_json = xstrdup("{\"code-toolbox-language\":\"python\"}");
        ASSERT_OK(dt_store_sandbox_insert(f->s, sb, &_e));
        ids[i] = TAKE_PTR(sb->id);
        dt_store_sandbox_free(sb);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < N; i++) {
        struct dt_store_sandbox *sb = NULL;
        ASSERT_OK(dt_store_sandbox_find(f->s, f->org->id, (i & 1) ? ids[i] : "t-0", &sb, &_e));
        dt_store_sandbox_free(sb);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    struct dt_store_sandbox_filter flt = {.organization_id = f->org->id, .limit = 100};
    struct dt_store_sandbox_page p = {0};
    ASSERT_OK(dt_store_sandbox_list(f->s, &flt, &p, &_e));
    assert_int_equal(p.total, N);
    dt_store_sandbox_page_free(&p);
    struct timespec t3;
    clock_gettime(CLOCK_MONOTONIC, &t3);

    double ins = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double look = (double) (t2.tv_sec - t1.tv_sec) + (double) (t2.tv_nsec - t1.tv_nsec) / 1e9;
    double lst = (double) (t3.tv_sec - t2.tv_sec) + (double) (t3.tv_nsec - t2.tv_nsec) / 1e9;
    print_message("  timing: %d inserts %.3f s (%.1f us each), %d lookups %.3f s (%.1f us each), "
                  "first page of %d with total %.2f ms\n",
                  N, ins, ins * 1e6 / N, N, look, look * 1e6 / N, N, lst * 1e3);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    free(ids);
    dt_error_free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orgs_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autostop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_volumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
