/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite backend of the store: one file DIR/daytona.db in WAL mode, statements prepared
 * once and kept, every call synchronous and short. Records map to rows through small column
 * tables, so insert, update and select of one entity cannot disagree about column order. */
#include "dt/store.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dt/xalloc.h"
#include "dt/banned.h"

/* A daemon loop must not stall for long on a lock held by someone else (the sqlite3 shell, a
 * backup); two seconds is long enough for any of our own transactions to finish. */
#define BUSY_TIMEOUT_MS 2000

/* ---- column tables ------------------------------------------------------------------------ */

enum col_type {
    COL_TEXT, /* char * */
    COL_I64,  /* int64_t */
    COL_BOOL, /* bool, stored as INTEGER 0/1 */
    COL_SANDBOX_STATE,
    COL_DESIRED_STATE,
    COL_SNAPSHOT_STATE,
    COL_VOLUME_STATE,
};

/* Enum columns are read and written through an int. */
_Static_assert(sizeof(enum dt_sandbox_state) == sizeof(int), "enum size");
_Static_assert(sizeof(enum dt_sandbox_desired_state) == sizeof(int), "enum size");
_Static_assert(sizeof(enum dt_snapshot_state) == sizeof(int), "enum size");
_Static_assert(sizeof(enum dt_volume_state) == sizeof(int), "enum size");

struct col {
    const char *name;
    enum col_type type;
    size_t off;
};

struct table {
    const char *name; /* SQL table */
    const char *what; /* for messages: "sandbox" */
    const struct col *cols;
    size_t n_cols;
    size_t size;
    void (*free)(void *);
};

#define C(s, field, col, type) { col, type, offsetof(struct s, field) }

/* Column 0 is always the id: updates use it in their WHERE clause. */
static const struct col org_cols[] = {
    C(dt_store_org, id, "id", COL_TEXT),
    C(dt_store_org, name, "name", COL_TEXT),
    C(dt_store_org, created_at_ms, "created_at", COL_I64),
};

static const struct col key_cols[] = {
    C(dt_store_api_key, id, "id", COL_TEXT),
    C(dt_store_api_key, organization_id, "organization_id", COL_TEXT),
    C(dt_store_api_key, name, "name", COL_TEXT),
    C(dt_store_api_key, key_hash, "key_hash", COL_TEXT),
    C(dt_store_api_key, key_prefix, "key_prefix", COL_TEXT),
    C(dt_store_api_key, created_at_ms, "created_at", COL_I64),
    C(dt_store_api_key, last_used_at_ms, "last_used_at", COL_I64),
};

/* "version" must stay last: the update binds the old version right after the columns. */
static const struct col sandbox_cols[] = {
    C(dt_store_sandbox, id, "id", COL_TEXT),
    C(dt_store_sandbox, organization_id, "organization_id", COL_TEXT),
    C(dt_store_sandbox, name, "name", COL_TEXT),
    C(dt_store_sandbox, snapshot, "snapshot", COL_TEXT),
    /* "user" is reserved in PostgreSQL. */
    C(dt_store_sandbox, user, "os_user", COL_TEXT),
    C(dt_store_sandbox, env_json, "env", COL_TEXT),
    C(dt_store_sandbox, labels_json, "labels", COL_TEXT),
    C(dt_store_sandbox, public_, "public", COL_BOOL),
    C(dt_store_sandbox, network_block_all, "network_block_all", COL_BOOL),
    C(dt_store_sandbox, network_allow_list, "network_allow_list", COL_TEXT),
    C(dt_store_sandbox, target, "target", COL_TEXT),
    C(dt_store_sandbox, cpu, "cpu", COL_I64),
    C(dt_store_sandbox, gpu, "gpu", COL_I64),
    C(dt_store_sandbox, memory_gib, "memory_gib", COL_I64),
    C(dt_store_sandbox, disk_gib, "disk_gib", COL_I64),
    C(dt_store_sandbox, state, "state", COL_SANDBOX_STATE),
    C(dt_store_sandbox, desired_state, "desired_state", COL_DESIRED_STATE),
    C(dt_store_sandbox, error_reason, "error_reason", COL_TEXT),
    C(dt_store_sandbox, backup_state, "backup_state", COL_TEXT),
    C(dt_store_sandbox, auto_stop_interval, "auto_stop_interval", COL_I64),
    C(dt_store_sandbox, auto_archive_interval, "auto_archive_interval", COL_I64),
    C(dt_store_sandbox, auto_delete_interval, "auto_delete_interval", COL_I64),
    C(dt_store_sandbox, auto_destroy_at_ms, "auto_destroy_at", COL_I64),
    C(dt_store_sandbox, ephemeral, "ephemeral", COL_BOOL),
    C(dt_store_sandbox, volumes_json, "volumes", COL_TEXT),
    C(dt_store_sandbox, build_info_json, "build_info", COL_TEXT),
    C(dt_store_sandbox, runner_slot, "runner_slot", COL_I64),
    C(dt_store_sandbox, runtime_plan_json, "runtime_plan", COL_TEXT),
    C(dt_store_sandbox, created_at_ms, "created_at", COL_I64),
    C(dt_store_sandbox, updated_at_ms, "updated_at", COL_I64),
    C(dt_store_sandbox, last_activity_at_ms, "last_activity_at", COL_I64),
    C(dt_store_sandbox, version, "version", COL_I64),
};

static const struct col snapshot_cols[] = {
    C(dt_store_snapshot, id, "id", COL_TEXT),
    C(dt_store_snapshot, organization_id, "organization_id", COL_TEXT),
    C(dt_store_snapshot, name, "name", COL_TEXT),
    C(dt_store_snapshot, image_name, "image_name", COL_TEXT),
    C(dt_store_snapshot, state, "state", COL_SNAPSHOT_STATE),
    C(dt_store_snapshot, size_bytes, "size_bytes", COL_I64),
    C(dt_store_snapshot, entrypoint_json, "entrypoint", COL_TEXT),
    C(dt_store_snapshot, cpu, "cpu", COL_I64),
    C(dt_store_snapshot, gpu, "gpu", COL_I64),
    C(dt_store_snapshot, memory_gib, "memory_gib", COL_I64),
    C(dt_store_snapshot, disk_gib, "disk_gib", COL_I64),
    C(dt_store_snapshot, error_reason, "error_reason", COL_TEXT),
    C(dt_store_snapshot, build_info_json, "build_info", COL_TEXT),
    C(dt_store_snapshot, created_at_ms, "created_at", COL_I64),
    C(dt_store_snapshot, updated_at_ms, "updated_at", COL_I64),
    C(dt_store_snapshot, last_used_at_ms, "last_used_at", COL_I64),
    C(dt_store_snapshot, image_json, "image", COL_TEXT),
    C(dt_store_snapshot, general, "general", COL_BOOL),
};

static const struct col volume_cols[] = {
    C(dt_store_volume, id, "id", COL_TEXT),
    C(dt_store_volume, organization_id, "organization_id", COL_TEXT),
    C(dt_store_volume, name, "name", COL_TEXT),
    C(dt_store_volume, state, "state", COL_VOLUME_STATE),
    C(dt_store_volume, size_bytes, "size_bytes", COL_I64),
    C(dt_store_volume, error_reason, "error_reason", COL_TEXT),
    C(dt_store_volume, created_at_ms, "created_at", COL_I64),
    C(dt_store_volume, updated_at_ms, "updated_at", COL_I64),
    C(dt_store_volume, last_used_at_ms, "last_used_at", COL_I64),
};

static void
org_free_v(void *p)
{
    dt_store_org_free(p);
}
static void
key_free_v(void *p)
{
    dt_store_api_key_free(p);
}
static void
sandbox_free_v(void *p)
{
    dt_store_sandbox_free(p);
}
static void
snapshot_free_v(void *p)
{
    dt_store_snapshot_free(p);
}
static void
volume_free_v(void *p)
{
    dt_store_volume_free(p);
}

#define TABLE(var, tbl, w, cols, type, fr)                                                         \
    static const struct table var = {tbl, w, cols, ELEMENTSOF(cols), sizeof(struct type), fr}
TABLE(t_org, "organizations", "organization", org_cols, dt_store_org, org_free_v);
TABLE(t_key, "api_keys", "api key", key_cols, dt_store_api_key, key_free_v);
TABLE(t_sandbox, "sandboxes", "sandbox", sandbox_cols, dt_store_sandbox, sandbox_free_v);
TABLE(t_snapshot, "snapshots", "snapshot", snapshot_cols, dt_store_snapshot, snapshot_free_v);
TABLE(t_volume, "volumes", "volume", volume_cols, dt_store_volume, volume_free_v);

/* ---- the store object and its statements -------------------------------------------------- */

enum q {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_ORG_INSERT,
    Q_ORG_GET,
    Q_ORG_LIST,
    Q_KEY_INSERT,
    Q_KEY_BY_HASH,
    Q_KEY_TOUCH,
    Q_KEY_LIST,
    Q_KEY_DELETE,
    Q_SB_INSERT,
    Q_SB_BY_ID,
    Q_SB_BY_ID_ORG,
    Q_SB_BY_NAME_ORG,
    Q_SB_UPDATE,
    Q_SB_STATE,
    Q_SB_TRANSITION,
    Q_SB_TOUCH,
    Q_SB_DELETE,
    Q_SB_LIST_ALL,
    Q_SB_LIST_ALL_ORG,
    Q_SB_DUE_AUTOSTOP,
    Q_LABEL_INSERT,
    Q_LABEL_CLEAR,
    Q_SN_INSERT,
    Q_SN_BY_ID,
    Q_SN_BY_ID_ORG,
    Q_SN_BY_NAME_ORG,
    Q_SN_UPDATE,
    Q_SN_DELETE,
    Q_SN_LIST,
    Q_SN_COUNT,
    Q_VOL_INSERT,
    Q_VOL_BY_ID,
    Q_VOL_BY_ID_ORG,
    Q_VOL_BY_NAME_ORG,
    Q_VOL_UPDATE,
    Q_VOL_DELETE,
    Q_VOL_LIST,
    _Q_MAX,
};

struct sqlite_store {
    struct dt_store base;
    sqlite3 *db;
    char *path;
    int version;
    char *sql[_Q_MAX];
    sqlite3_stmt *stmt[_Q_MAX]; /* prepared on first use, kept until close */
};

static struct sqlite_store *
to_sq(struct dt_store *s)
{
    return (struct sqlite_store *) s;
}

/* Map an SQLite result code to an errno and fill *err with CONTEXT and SQLite's message. */
_printf_(4, 5) static int
db_error(struct sqlite_store *st, int rc, struct dt_error **err, const char *fmt, ...)
{
    int e;

    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        e = rc == SQLITE_CONSTRAINT_FOREIGNKEY ? ENOENT
            : (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) ? EEXIST
                                                                                      : EINVAL;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        e = EBUSY;
        break;
    case SQLITE_NOMEM:
        e = ENOMEM;
        break;
    case SQLITE_FULL:
        e = ENOSPC;
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        e = EACCES;
        break;
    default:
        e = EIO;
    }

    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        msg = "its organization does not exist";
    return dt_error_set(err, e, "%s: %s (%s)", ctx, msg, st->path);
}

static int
get_stmt(struct sqlite_store *st, enum q q, sqlite3_stmt **ret, struct dt_error **err)
{
    if (!st->stmt[q]) {
        int rc = sqlite3_prepare_v3(st->db, st->sql[q], -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmt[q], NULL);
        if (rc != SQLITE_OK) {
            st->stmt[q] = NULL;
            return db_error(st, rc, err, "prepare statement %d", (int) q);
        }
    }
    *ret = st->stmt[q];
    return 0;
}

/* A bound value. */
struct bv {
    enum { BV_NULL, BV_TEXT, BV_I64 } t;
    const char *s;
    int64_t i;
};
#define BT(x) ((struct bv){.t = (x) ? BV_TEXT : BV_NULL, .s = (x)})
#define BI(x) ((struct bv){.t = BV_I64, .i = (x)})

static int
bind_values(sqlite3_stmt *stmt, int first, const struct bv *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int idx = first + (int) i, rc;
        switch (b[i].t) {
        case BV_TEXT:
            rc = sqlite3_bind_text(stmt, idx, b[i].s, -1, SQLITE_STATIC);
            break;
        case BV_I64:
            rc = sqlite3_bind_int64(stmt, idx, b[i].i);
            break;
        default:
            rc = sqlite3_bind_null(stmt, idx);
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static const char *
enum_string(enum col_type t, int v)
{
    switch (t) {
    case COL_SANDBOX_STATE:
        return dt_sandbox_state_to_string(v);
    case COL_DESIRED_STATE:
        return dt_sandbox_desired_state_to_string(v);
    case COL_SNAPSHOT_STATE:
        return dt_snapshot_state_to_string(v);
    case COL_VOLUME_STATE:
        return dt_volume_state_to_string(v);
    default:
        DT_BUG("not an enum column");
    }
}

static int
enum_parse(enum col_type t, const char *s)
{
    switch (t) {
    case COL_SANDBOX_STATE:
        return dt_sandbox_state_from_string(s);
    case COL_DESIRED_STATE:
        return dt_sandbox_desired_state_from_string(s);
    case COL_SNAPSHOT_STATE:
        return dt_snapshot_state_from_string(s);
    case COL_VOLUME_STATE:
        return dt_volume_state_from_string(s);
    default:
        DT_BUG("not an enum column");
    }
}

/* Bind column I of T from OBJ to parameter IDX. */
static int
bind_col(sqlite3_stmt *stmt, int idx, const struct table *t, size_t i, const void *obj)
{
    const struct col *c = &t->cols[i];
    const char *p = (const char *) obj + c->off;

    switch (c->type) {
    case COL_TEXT: {
        const char *s;
        memcpy(&s, p, sizeof(s));
        if (!s)
            return sqlite3_bind_null(stmt, idx);
        return sqlite3_bind_text(stmt, idx, s, -1, SQLITE_STATIC);
    }
    case COL_I64: {
        int64_t v;
        memcpy(&v, p, sizeof(v));
        return sqlite3_bind_int64(stmt, idx, v);
    }
    case COL_BOOL: {
        bool v;
        memcpy(&v, p, sizeof(v));
        return sqlite3_bind_int(stmt, idx, v ? 1 : 0);
    }
    default: {
        int v;
        /* All four enums have int size and no negative members. */
        memcpy(&v, p, sizeof(v));
        return sqlite3_bind_text(stmt, idx, enum_string(c->type, v), -1, SQLITE_STATIC);
    }
    }
}

/* A new object of T from the current row of STMT (columns in table order). -EIO for a value
 * this binary cannot read (an unknown state: a newer binary wrote it, or the file is damaged). */
static int
row_to_obj(struct sqlite_store *st, const struct table *t, sqlite3_stmt *stmt, void **ret,
           struct dt_error **err)
{
    char *obj = xcalloc(1, t->size);

    for (size_t i = 0; i < t->n_cols; i++) {
        const struct col *c = &t->cols[i];
        char *p = obj + c->off;
        switch (c->type) {
        case COL_TEXT: {
            const unsigned char *s = sqlite3_column_text(stmt, (int) i);
            char *v = s ? xstrdup((const char *) s) : NULL;
            memcpy(p, &v, sizeof(v));
            break;
        }
        case COL_I64: {
            int64_t v = sqlite3_column_int64(stmt, (int) i);
            memcpy(p, &v, sizeof(v));
            break;
        }
        case COL_BOOL: {
            bool v = sqlite3_column_int(stmt, (int) i) != 0;
            memcpy(p, &v, sizeof(v));
            break;
        }
        default: {
            const char *s = (const char *) sqlite3_column_text(stmt, (int) i);
            int v = enum_parse(c->type, s);
            if (v < 0) {
                const char *id = (const char *) sqlite3_column_text(stmt, 0);
                int r = dt_error_set(err, EIO, "%s '%s': unknown %s '%s' in %s", t->what,
                                     id ? id : "?", c->name, s ? s : "NULL", st->path);
                t->free(obj);
                return r;
            }
            memcpy(p, &v, sizeof(v));
        }
        }
    }
    *ret = obj;
    return 0;
}

/* Run STMT (already bound) to completion, collecting rows as objects of T when T is not NULL.
 * Always resets the statement and clears its bindings. Returns the number of rows (or of
 * changed rows when T is NULL). */
static int
run(struct sqlite_store *st, sqlite3_stmt *stmt, const struct table *t, void ***ret_items,
    size_t *ret_n, struct dt_error **err, const char *ctx)
{
    void **items = NULL;
    size_t n = 0;
    int rc, r = 0;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!t)
            continue;
        void *o = NULL;
        r = row_to_obj(st, t, stmt, &o, err);
        if (r < 0)
            break;
        items = xreallocarray(items, n + 1, sizeof(void *));
        items[n++] = o;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = db_error(st, rc, err, "%s", ctx);
    if (r == 0 && !t)
        r = sqlite3_changes(st->db);
    (void) sqlite3_reset(stmt);
    (void) sqlite3_clear_bindings(stmt);
    if (r < 0 || !ret_items) {
        for (size_t i = 0; i < n; i++)
            t->free(items[i]);
        free(items);
        return r;
    }
    *ret_items = items;
    if (ret_n)
        *ret_n = n;
    return r < 0 ? r : (int) n;
}

/* Prepare (cached) Q, bind B, run it. */
static int
exec_q(struct sqlite_store *st, enum q q, const struct bv *b, size_t nb, const struct table *t,
       void ***ret_items, size_t *ret_n, struct dt_error **err, const char *ctx)
{
    sqlite3_stmt *stmt;
    int r, rc;

    r = get_stmt(st, q, &stmt, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", ctx);
    rc = bind_values(stmt, 1, b, nb);
    if (rc != SQLITE_OK) {
        (void) sqlite3_clear_bindings(stmt);
        return db_error(st, rc, err, "%s", ctx);
    }
    return run(st, stmt, t, ret_items, ret_n, err, ctx);
}

static int
tx_begin(struct sqlite_store *st, struct dt_error **err)
{
    /* IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
     * then writes can fail with SQLITE_BUSY without waiting for the busy timeout. */
    return exec_q(st, Q_BEGIN, NULL, 0, NULL, NULL, NULL, err, "begin transaction");
}

static int
tx_commit(struct sqlite_store *st, struct dt_error **err)
{
    int r = exec_q(st, Q_COMMIT, NULL, 0, NULL, NULL, NULL, err, "commit");
    if (r < 0 && !sqlite3_get_autocommit(st->db))
        (void) exec_q(st, Q_ROLLBACK, NULL, 0, NULL, NULL, NULL, NULL, "rollback");
    return r;
}

static void
tx_rollback(struct sqlite_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void) exec_q(st, Q_ROLLBACK, NULL, 0, NULL, NULL, NULL, NULL, "rollback");
}

/* Insert OBJ (all columns of T) with Q. */
static int
insert_obj(struct sqlite_store *st, enum q q, const struct table *t, const void *obj,
           struct dt_error **err, const char *ctx)
{
    sqlite3_stmt *stmt;
    int r, rc = SQLITE_OK;

    r = get_stmt(st, q, &stmt, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", ctx);
    for (size_t i = 0; i < t->n_cols && rc == SQLITE_OK; i++)
        rc = bind_col(stmt, (int) i + 1, t, i, obj);
    if (rc != SQLITE_OK) {
        (void) sqlite3_clear_bindings(stmt);
        return db_error(st, rc, err, "%s", ctx);
    }
    r = run(st, stmt, NULL, NULL, NULL, err, ctx);
    return r < 0 ? r : 0;
}

/* Update OBJ by id with Q: "SET col1 = ?, ... WHERE id = ?" and EXTRA values after that. */
static int
update_obj(struct sqlite_store *st, enum q q, const struct table *t, const void *obj,
           const struct bv *extra, size_t n_extra, struct dt_error **err, const char *ctx)
{
    sqlite3_stmt *stmt;
    int r, rc = SQLITE_OK;

    r = get_stmt(st, q, &stmt, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", ctx);
    for (size_t i = 1; i < t->n_cols && rc == SQLITE_OK; i++)
        rc = bind_col(stmt, (int) i, t, i, obj);
    if (rc == SQLITE_OK)
        rc = bind_col(stmt, (int) t->n_cols, t, 0, obj);
    if (rc == SQLITE_OK)
        rc = bind_values(stmt, (int) t->n_cols + 1, extra, n_extra);
    if (rc != SQLITE_OK) {
        (void) sqlite3_clear_bindings(stmt);
        return db_error(st, rc, err, "%s", ctx);
    }
    return run(st, stmt, NULL, NULL, NULL, err, ctx);
}

/* The single object Q with B returns, or -ENOENT (no message: callers decide). */
static int
get_one(struct sqlite_store *st, enum q q, const struct bv *b, size_t nb, const struct table *t,
        void **ret, struct dt_error **err, const char *ctx)
{
    void **items = NULL;
    size_t n = 0;
    int r;

    r = exec_q(st, q, b, nb, t, &items, &n, err, ctx);
    if (r < 0)
        return r;
    if (n == 0) {
        free(items);
        return -ENOENT;
    }
    for (size_t i = 1; i < n; i++)
        t->free(items[i]);
    *ret = items[0];
    free(items);
    return 0;
}

/* Find by id (in ORG_ID when given), then by name in ORG_ID. */
static int
find_obj(struct sqlite_store *st, const struct table *t, enum q by_id, enum q by_id_org,
         enum q by_name_org, const char *org_id, const char *id_or_name, void **ret,
         struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("look up %s '%s'", t->what, id_or_name);
    int r;

    if (!org_id)
        r = get_one(st, by_id, (struct bv[]){BT(id_or_name)}, 1, t, ret, err, ctx);
    else {
        const struct bv b[] = {BT(id_or_name), BT(org_id)};
        r = get_one(st, by_id_org, b, 2, t, ret, err, ctx);
        if (r == -ENOENT)
            r = get_one(st, by_name_org, b, 2, t, ret, err, ctx);
    }
    if (r == -ENOENT)
        return dt_error_set(err, ENOENT, "%s '%s' not found", t->what, id_or_name);
    return r;
}

/* -ENOENT or -EEXIST with a message naming the object, for a write that changed nothing or
 * hit a unique constraint. */
static int
write_result(int r, const struct table *t, const char *name, struct dt_error **err)
{
    if (r == 0)
        return dt_error_set(err, ENOENT, "%s '%s' not found", t->what, name);
    return r < 0 ? r : 0;
}

static int
unique_taken(int r, const char *what, const char *name, struct dt_error **err)
{
    if (r == -EEXIST && err && *err) {
        dt_error_free(*err);
        *err = NULL;
        return dt_error_set(err, EEXIST, "%s name '%s' is already taken", what, name);
    }
    return r;
}

/* ---- schema ------------------------------------------------------------------------------- */

static void
sql_append(char **s, const char *fmt, ...) _printf_(2, 3);
static void
sql_append(char **s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *add = xvasprintf(fmt, ap);
    va_end(ap);
    char *n = xasprintf("%s%s", *s ? *s : "", add);
    free(add);
    free(*s);
    *s = n;
}

static char *
col_list(const struct table *t)
{
    char *s = NULL;
    for (size_t i = 0; i < t->n_cols; i++)
        sql_append(&s, "%s%s", i ? ", " : "", t->cols[i].name);
    return s;
}

static char *
sql_insert(const struct table *t)
{
    _cleanup_free_ char *cols = col_list(t);
    char *s = xasprintf("INSERT INTO %s (%s) VALUES (", t->name, cols);
    for (size_t i = 0; i < t->n_cols; i++)
        sql_append(&s, "%s?", i ? ", " : "");
    sql_append(&s, ")");
    return s;
}

static char *
sql_update(const struct table *t, const char *extra_where)
{
    char *s = xasprintf("UPDATE %s SET ", t->name);
    for (size_t i = 1; i < t->n_cols; i++)
        sql_append(&s, "%s%s = ?", i > 1 ? ", " : "", t->cols[i].name);
    sql_append(&s, " WHERE id = ?%s", extra_where);
    return s;
}

static char *
sql_select(const struct table *t, const char *rest)
{
    _cleanup_free_ char *cols = col_list(t);
    return xasprintf("SELECT %s FROM %s %s", cols, t->name, rest);
}

static void
build_sql(struct sqlite_store *st)
{
    char **q = st->sql;

    q[Q_BEGIN] = xstrdup("BEGIN IMMEDIATE");
    q[Q_COMMIT] = xstrdup("COMMIT");
    q[Q_ROLLBACK] = xstrdup("ROLLBACK");
    q[Q_ORG_INSERT] = sql_insert(&t_org);
    q[Q_ORG_GET] = sql_select(&t_org, "WHERE id = ?");
    q[Q_ORG_LIST] = sql_select(&t_org, "ORDER BY created_at, id");
    q[Q_KEY_INSERT] = sql_insert(&t_key);
    q[Q_KEY_BY_HASH] = sql_select(&t_key, "WHERE key_hash = ?");
    q[Q_KEY_TOUCH] = xstrdup("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
    q[Q_KEY_LIST] = sql_select(&t_key, "WHERE organization_id = ? ORDER BY created_at, id");
    q[Q_KEY_DELETE] = xstrdup("DELETE FROM api_keys WHERE id = ? AND organization_id = ?");
    q[Q_SB_INSERT] = sql_insert(&t_sandbox);
    q[Q_SB_BY_ID] = sql_select(&t_sandbox, "WHERE id = ?");
    q[Q_SB_BY_ID_ORG] = sql_select(&t_sandbox, "WHERE id = ? AND organization_id = ?");
    q[Q_SB_BY_NAME_ORG] = sql_select(&t_sandbox, "WHERE name = ? AND organization_id = ?");
    q[Q_SB_UPDATE] = sql_update(&t_sandbox, " AND version = ?");
    q[Q_SB_STATE] = xstrdup("SELECT state FROM sandboxes WHERE id = ?");
    q[Q_SB_TRANSITION] = xstrdup("UPDATE sandboxes SET state = ?, error_reason = ?, "
                                 "updated_at = ?, version = version + 1 "
                                 "WHERE id = ? AND state = ?");
    q[Q_SB_TOUCH] = xstrdup("UPDATE sandboxes SET last_activity_at = ? "
                            "WHERE id = ? AND last_activity_at < ?");
    q[Q_SB_DELETE] = xstrdup("DELETE FROM sandboxes WHERE id = ?");
    q[Q_SB_LIST_ALL] = sql_select(&t_sandbox, "ORDER BY created_at, id");
    q[Q_SB_LIST_ALL_ORG] = sql_select(&t_sandbox, "WHERE organization_id = ? "
                                                  "ORDER BY created_at, id");
    q[Q_SB_DUE_AUTOSTOP] = sql_select(&t_sandbox, "WHERE state = ? AND auto_stop_interval > 0 "
                                                  "AND last_activity_at + auto_stop_interval * "
                                                  "60000 <= ? ORDER BY last_activity_at, id");
    q[Q_LABEL_INSERT] = xstrdup("INSERT INTO sandbox_labels (sandbox_id, key, value) "
                                "VALUES (?, ?, ?)");
    q[Q_LABEL_CLEAR] = xstrdup("DELETE FROM sandbox_labels WHERE sandbox_id = ?");
    q[Q_SN_INSERT] = sql_insert(&t_snapshot);
    q[Q_SN_BY_ID] = sql_select(&t_snapshot, "WHERE id = ?");
    /* General snapshots (the default one) are visible to every organization; an
     * organization's own snapshot of the same name comes first. */
    q[Q_SN_BY_ID_ORG] = sql_select(&t_snapshot, "WHERE id = ? AND (organization_id = ? OR "
                                                "general = 1)");
    q[Q_SN_BY_NAME_ORG] = sql_select(&t_snapshot, "WHERE name = ? AND (organization_id = ? OR "
                                                  "general = 1) ORDER BY general LIMIT 1");
    q[Q_SN_UPDATE] = sql_update(&t_snapshot, "");
    q[Q_SN_DELETE] = xstrdup("DELETE FROM snapshots WHERE id = ?");
    /* A NULL organization lists every snapshot (the server's own bookkeeping). */
    q[Q_SN_LIST] = sql_select(&t_snapshot, "WHERE COALESCE(?, organization_id) = organization_id "
                                           "OR general = 1 "
                                           "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
    q[Q_SN_COUNT] = xstrdup("SELECT COUNT(*) FROM snapshots WHERE COALESCE(?, organization_id) "
                            "= organization_id OR general = 1");
    q[Q_VOL_INSERT] = sql_insert(&t_volume);
    q[Q_VOL_BY_ID] = sql_select(&t_volume, "WHERE id = ?");
    q[Q_VOL_BY_ID_ORG] = sql_select(&t_volume, "WHERE id = ? AND organization_id = ?");
    q[Q_VOL_BY_NAME_ORG] = sql_select(&t_volume, "WHERE name = ? AND organization_id = ?");
    q[Q_VOL_UPDATE] = sql_update(&t_volume, "");
    q[Q_VOL_DELETE] = xstrdup("DELETE FROM volumes WHERE id = ?");
    q[Q_VOL_LIST] = sql_select(&t_volume, "WHERE organization_id = ? "
                                          "ORDER BY created_at DESC, id DESC");
}

/* Run SQL (possibly several statements) that returns no rows. */
static int
exec_sql(struct sqlite_store *st, const char *sql, struct dt_error **err, const char *ctx)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, err, "%s", ctx);
    return 0;
}

/* One integer from SQL, or -errno. */
static int
query_int(struct sqlite_store *st, const char *sql, const struct bv *b, size_t nb, int64_t *ret,
          struct dt_error **err, const char *ctx)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = bind_values(stmt, 1, b, nb);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            *ret = sqlite3_column_int64(stmt, 0);
            rc = SQLITE_OK;
        }
    }
    int r = rc == SQLITE_OK ? 0 : db_error(st, rc, err, "%s", ctx);
    sqlite3_finalize(stmt);
    return r;
}

static int
migrate(struct sqlite_store *st, struct dt_error **err)
{
    int64_t v = 0;
    int r;

    r = exec_sql(st, "BEGIN IMMEDIATE", err, "begin migration");
    if (r < 0)
        return r;
    r = exec_sql(st,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                 err, "create schema_migrations");
    if (r >= 0)
        r = query_int(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0,
                      &v, err, "read schema version");
    if (r >= 0 && v > (int64_t) dt__store_n_migrations)
        r = dt_error_set(err, EPROTO,
                         "database '%s' has schema version %" PRId64 ", newer than the %zu "
                         "this daytonad knows: refusing to touch it (upgrade daytonad)",
                         st->path, v, dt__store_n_migrations);
    for (size_t i = (size_t) (v > 0 ? v : 0); r >= 0 && i < dt__store_n_migrations; i++) {
        _cleanup_free_ char *ctx = xasprintf("apply schema migration %zu", i + 1);
        r = exec_sql(st, dt__store_migrations[i], err, ctx);
        if (r >= 0) {
            _cleanup_free_ char *ins =
                    xasprintf("INSERT INTO schema_migrations (version, applied_at) "
                              "VALUES (%zu, %" PRId64 ")", i + 1, dt_store_now_ms());
            r = exec_sql(st, ins, err, ctx);
        }
        if (r >= 0)
            v = (int64_t) i + 1;
    }
    if (r >= 0)
        r = exec_sql(st, "COMMIT", err, "commit migration");
    if (r < 0) {
        if (!sqlite3_get_autocommit(st->db))
            (void) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    st->version = (int) v;
    return 0;
}

/* ---- backend operations ------------------------------------------------------------------- */

static void
sq_close(struct dt_store *s)
{
    struct sqlite_store *st = to_sq(s);

    for (size_t i = 0; i < _Q_MAX; i++) {
        sqlite3_finalize(st->stmt[i]);
        free(st->sql[i]);
    }
    /* sqlite3_close (not _v2) fails while statements are open; all are finalized above. The
     * last connection's close checkpoints the WAL and removes it. */
    if (st->db)
        (void) sqlite3_close(st->db);
    free(st->path);
    free(st);
}

static int
sq_schema_version(struct dt_store *s)
{
    return to_sq(s)->version;
}

/* Rare writes whose loss after a power cut would hurt (the admin key has been printed and
 * saved by then) are committed with synchronous=FULL; everything else uses NORMAL. */
static int
with_full_sync(struct sqlite_store *st, enum q q, const struct table *t, const void *obj,
               struct dt_error **err, const char *ctx)
{
    int r;

    r = exec_sql(st, "PRAGMA synchronous = FULL", err, ctx);
    if (r < 0)
        return r;
    r = insert_obj(st, q, t, obj, err, ctx);
    (void) sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    return r;
}

static int
sq_org_create(struct dt_store *s, struct dt_store_org *o, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("create organization '%s'", o->name);
    return with_full_sync(to_sq(s), Q_ORG_INSERT, &t_org, o, err, ctx);
}

static int
sq_org_get(struct dt_store *s, const char *id, struct dt_store_org **ret, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("look up organization '%s'", id);
    void *o = NULL;
    int r = get_one(to_sq(s), Q_ORG_GET, (struct bv[]){BT(id)}, 1, &t_org, &o, err, ctx);
    if (r == -ENOENT)
        return dt_error_set(err, ENOENT, "organization '%s' not found", id);
    if (r >= 0)
        *ret = o;
    return r;
}

static int
sq_org_list(struct dt_store *s, struct dt_store_org_array *ret, struct dt_error **err)
{
    void **items = NULL;
    size_t n = 0;
    int r = exec_q(to_sq(s), Q_ORG_LIST, NULL, 0, &t_org, &items, &n, err, "list organizations");
    if (r < 0)
        return r;
    ret->items = (struct dt_store_org **) items;
    ret->n = n;
    return 0;
}

static int
sq_api_key_create(struct dt_store *s, struct dt_store_api_key *k, struct dt_error **err)
{
    _cleanup_free_ char *ctx =
            xasprintf("create api key '%s' in organization '%s'", k->name, k->organization_id);
    int r = with_full_sync(to_sq(s), Q_KEY_INSERT, &t_key, k, err, ctx);
    return unique_taken(r, "api key", k->name, err);
}

static int
sq_api_key_by_hash(struct dt_store *s, const char *hash, struct dt_store_api_key **ret,
                   struct dt_error **err)
{
    void *k = NULL;
    int r = get_one(to_sq(s), Q_KEY_BY_HASH, (struct bv[]){BT(hash)}, 1, &t_key, &k, err,
                    "look up api key");
    if (r == -ENOENT)
        return dt_error_set(err, ENOENT, "api key not found");
    if (r >= 0)
        *ret = k;
    return r;
}

static int
sq_api_key_touch(struct dt_store *s, const char *id, int64_t now_ms, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("record use of api key '%s'", id);
    int r = exec_q(to_sq(s), Q_KEY_TOUCH, (struct bv[]){BI(now_ms), BT(id)}, 2, NULL, NULL, NULL,
                   err, ctx);
    return write_result(r, &t_key, id, err);
}

static int
sq_api_key_list(struct dt_store *s, const char *org_id, struct dt_store_api_key_array *ret,
                struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("list api keys of organization '%s'", org_id);
    void **items = NULL;
    size_t n = 0;
    int r = exec_q(to_sq(s), Q_KEY_LIST, (struct bv[]){BT(org_id)}, 1, &t_key, &items, &n, err,
                   ctx);
    if (r < 0)
        return r;
    ret->items = (struct dt_store_api_key **) items;
    ret->n = n;
    return 0;
}

static int
sq_api_key_delete(struct dt_store *s, const char *org_id, const char *id, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("delete api key '%s'", id);
    int r = exec_q(to_sq(s), Q_KEY_DELETE, (struct bv[]){BT(id), BT(org_id)}, 2, NULL, NULL, NULL,
                   err, ctx);
    return write_result(r, &t_key, id, err);
}

static int
set_labels(struct sqlite_store *st, const char *id, char **labels, bool clear,
           struct dt_error **err, const char *ctx)
{
    int r = 0;

    if (clear)
        r = exec_q(st, Q_LABEL_CLEAR, (struct bv[]){BT(id)}, 1, NULL, NULL, NULL, err, ctx);
    for (size_t i = 0; r >= 0 && labels && labels[i] && labels[i + 1]; i += 2)
        r = exec_q(st, Q_LABEL_INSERT, (struct bv[]){BT(id), BT(labels[i]), BT(labels[i + 1])}, 3,
                   NULL, NULL, NULL, err, ctx);
    return r < 0 ? r : 0;
}

static int
sq_sandbox_insert(struct dt_store *s, struct dt_store_sandbox *sb, char **labels,
                  struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("create sandbox '%s'", sb->name);
    int r;

    r = tx_begin(st, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", ctx);
    r = insert_obj(st, Q_SB_INSERT, &t_sandbox, sb, err, ctx);
    if (r >= 0)
        r = set_labels(st, sb->id, labels, false, err, ctx);
    if (r >= 0)
        r = tx_commit(st, err);
    if (r < 0) {
        tx_rollback(st);
        if (r == -EEXIST && err && *err) {
            dt_error_free(*err);
            *err = NULL;
            return dt_error_set(err, EEXIST, "sandbox name '%s' is already taken", sb->name);
        }
    }
    return r;
}

static int
sq_sandbox_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                struct dt_store_sandbox **ret, struct dt_error **err)
{
    void *o = NULL;
    int r = find_obj(to_sq(s), &t_sandbox, Q_SB_BY_ID, Q_SB_BY_ID_ORG, Q_SB_BY_NAME_ORG, org_id,
                     id_or_name, &o, err);
    if (r >= 0)
        *ret = o;
    return r;
}

/* After a write that matched no row: -ENOENT if ID is gone, else -ESTALE naming WHY. */
static int
sandbox_conflict(struct sqlite_store *st, const char *id, enum dt_sandbox_state *expected,
                 struct dt_error **err)
{
    sqlite3_stmt *stmt;
    int r, rc;

    r = get_stmt(st, Q_SB_STATE, &stmt, err);
    if (r < 0)
        return r;
    (void) sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        r = dt_error_set(err, ENOENT, "sandbox '%s' not found", id);
    else if (rc != SQLITE_ROW)
        r = db_error(st, rc, err, "read state of sandbox '%s'", id);
    else if (expected)
        r = dt_error_set(err, ESTALE, "sandbox '%s' is '%s', not '%s'", id,
                         (const char *) sqlite3_column_text(stmt, 0),
                         dt_sandbox_state_to_string(*expected));
    else
        r = dt_error_set(err, ESTALE, "sandbox '%s' was changed meanwhile", id);
    (void) sqlite3_reset(stmt);
    (void) sqlite3_clear_bindings(stmt);
    return r;
}

static int
sq_sandbox_update(struct dt_store *s, struct dt_store_sandbox *sb, char **labels,
                  struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("update sandbox '%s'", sb->id);
    int64_t old_version = sb->version, old_updated = sb->updated_at_ms;
    int r;

    r = tx_begin(st, err);
    if (r < 0)
        return dt_error_wrap(err, "%s", ctx);
    sb->version = old_version + 1;
    sb->updated_at_ms = dt_store_now_ms();
    r = update_obj(st, Q_SB_UPDATE, &t_sandbox, sb, (struct bv[]){BI(old_version)}, 1, err, ctx);
    if (r == 0)
        r = sandbox_conflict(st, sb->id, NULL, err);
    if (r >= 0)
        r = set_labels(st, sb->id, labels, true, err, ctx);
    if (r >= 0)
        r = tx_commit(st, err);
    if (r < 0) {
        tx_rollback(st);
        sb->version = old_version;
        sb->updated_at_ms = old_updated;
        if (r == -EEXIST && err && *err) {
            dt_error_free(*err);
            *err = NULL;
            return dt_error_set(err, EEXIST, "sandbox name '%s' is already taken", sb->name);
        }
        return r;
    }
    return 0;
}

static int
sq_sandbox_transition(struct dt_store *s, const char *id, enum dt_sandbox_state from,
                      enum dt_sandbox_state to, const char *error_reason, int64_t now_ms,
                      struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("move sandbox '%s' from '%s' to '%s'", id,
                                         dt_sandbox_state_to_string(from),
                                         dt_sandbox_state_to_string(to));
    const struct bv b[] = {BT(dt_sandbox_state_to_string(to)), BT(error_reason), BI(now_ms),
                           BT(id), BT(dt_sandbox_state_to_string(from))};
    int r = exec_q(st, Q_SB_TRANSITION, b, ELEMENTSOF(b), NULL, NULL, NULL, err, ctx);
    if (r == 0)
        r = sandbox_conflict(st, id, &from, err);
    return r < 0 ? r : 0;
}

static int
sq_sandbox_touch(struct dt_store *s, const char *id, int64_t now_ms, struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("record activity of sandbox '%s'", id);
    const struct bv b[] = {BI(now_ms), BT(id), BI(now_ms)};
    int r = exec_q(st, Q_SB_TOUCH, b, ELEMENTSOF(b), NULL, NULL, NULL, err, ctx);
    if (r == 0) {
        /* Nothing changed: gone, or already at least as recent. */
        _cleanup_error_ struct dt_error *e = NULL;
        r = sandbox_conflict(st, id, NULL, &e);
        if (r == -ENOENT || (r < 0 && r != -ESTALE))
            return dt_error_set(err, -r, "%s", e->message);
        r = 0;
    }
    return r < 0 ? r : 0;
}

static int
sq_sandbox_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("delete sandbox '%s'", id);
    /* Labels go with it: ON DELETE CASCADE (foreign keys are on). */
    int r = exec_q(to_sq(s), Q_SB_DELETE, (struct bv[]){BT(id)}, 1, NULL, NULL, NULL, err, ctx);
    return write_result(r, &t_sandbox, id, err);
}

/* Escape LIKE metacharacters of a prefix, lowercase it, append '%'. */
static char *
like_prefix(const char *p)
{
    size_t n = strlen(p);
    char *s = xmalloc(2 * n + 2), *o = s;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%' || c == '_' || c == '\\')
            *o++ = '\\';
        *o++ = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
    }
    *o++ = '%';
    *o = '\0';
    return s;
}

static int
sq_sandbox_list(struct dt_store *s, const struct dt_store_sandbox_filter *f, char **labels,
                int64_t cursor_ms, const char *cursor_id, struct dt_store_sandbox_page *ret,
                struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *where = NULL, *count_sql = NULL, *list_sql = NULL, *idp = NULL,
                        *namep = NULL, *cursor_s = NULL;
    _cleanup_free_ struct bv *b = NULL;
    size_t n_labels = labels ? strv_length(labels) / 2 : 0, nb = 0;
    _cleanup_free_ char *ctx = xasprintf("list sandboxes of organization '%s'", f->organization_id);
    int64_t total = 0;
    sqlite3_stmt *stmt = NULL;
    int r, rc;

    b = xcalloc(8 + f->n_states + 2 * n_labels, sizeof(*b));
    sql_append(&where, "WHERE organization_id = ?");
    b[nb++] = BT(f->organization_id);
    if (f->n_states > 0) {
        sql_append(&where, " AND state IN (");
        for (size_t i = 0; i < f->n_states; i++) {
            sql_append(&where, "%s?", i ? ", " : "");
            b[nb++] = BT(dt_sandbox_state_to_string(f->states[i]));
        }
        sql_append(&where, ")");
    } else if (!f->include_destroyed) {
        sql_append(&where, " AND state <> ?");
        b[nb++] = BT(dt_sandbox_state_to_string(DT_SANDBOX_DESTROYED));
    }
    if (f->id_prefix && *f->id_prefix) {
        idp = like_prefix(f->id_prefix);
        sql_append(&where, " AND lower(id) LIKE ? ESCAPE '\\'");
        b[nb++] = BT(idp);
    }
    if (f->name_prefix && *f->name_prefix) {
        namep = like_prefix(f->name_prefix);
        sql_append(&where, " AND lower(name) LIKE ? ESCAPE '\\'");
        b[nb++] = BT(namep);
    }
    if (n_labels > 0) {
        /* Every pair must match: count the matching pairs per sandbox. */
        sql_append(&where, " AND id IN (SELECT sandbox_id FROM sandbox_labels WHERE ");
        for (size_t i = 0; i < n_labels; i++) {
            sql_append(&where, "%s(key = ? AND value = ?)", i ? " OR " : "");
            b[nb++] = BT(labels[2 * i]);
            b[nb++] = BT(labels[2 * i + 1]);
        }
        sql_append(&where, " GROUP BY sandbox_id HAVING COUNT(*) = %zu)", n_labels);
    }

    count_sql = xasprintf("SELECT COUNT(*) FROM sandboxes %s", where);
    r = query_int(st, count_sql, b, nb, &total, err, ctx);
    if (r < 0)
        return r;

    size_t nb_filter = nb;
    if (cursor_id) {
        sql_append(&where, " AND (created_at < ? OR (created_at = ? AND id < ?))");
        b[nb++] = BI(cursor_ms);
        b[nb++] = BI(cursor_ms);
        b[nb++] = BT(cursor_id);
    }
    /* One row more than asked tells whether there is a next page. */
    list_sql = sql_select(&t_sandbox, where);
    sql_append(&list_sql, " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
    b[nb++] = BI((int64_t) f->limit + 1);
    b[nb++] = BI(cursor_id ? 0 : (int64_t) ((f->page - 1) * f->limit));
    (void) nb_filter;

    rc = sqlite3_prepare_v2(st->db, list_sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = bind_values(stmt, 1, b, nb);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return db_error(st, rc, err, "%s", ctx);
    }
    void **items = NULL;
    size_t n = 0;
    r = run(st, stmt, &t_sandbox, &items, &n, err, ctx);
    sqlite3_finalize(stmt);
    if (r < 0)
        return r;
    if (n > f->limit) {
        struct dt_store_sandbox *last = items[f->limit - 1];
        cursor_s = xasprintf("%" PRId64 ".%s", last->created_at_ms, last->id);
        for (size_t i = f->limit; i < n; i++)
            dt_store_sandbox_free(items[i]);
        n = f->limit;
    }
    ret->items.items = (struct dt_store_sandbox **) items;
    ret->items.n = n;
    ret->total = (uint64_t) total;
    ret->next_cursor = TAKE_PTR(cursor_s);
    return 0;
}

static int
sandbox_array(struct sqlite_store *st, enum q q, const struct bv *b, size_t nb,
              struct dt_store_sandbox_array *ret, struct dt_error **err, const char *ctx)
{
    void **items = NULL;
    size_t n = 0;
    int r = exec_q(st, q, b, nb, &t_sandbox, &items, &n, err, ctx);
    if (r < 0)
        return r;
    ret->items = (struct dt_store_sandbox **) items;
    ret->n = n;
    return 0;
}

static int
sq_sandbox_list_all(struct dt_store *s, const char *org_id, struct dt_store_sandbox_array *ret,
                    struct dt_error **err)
{
    if (!org_id)
        return sandbox_array(to_sq(s), Q_SB_LIST_ALL, NULL, 0, ret, err, "list all sandboxes");
    _cleanup_free_ char *ctx = xasprintf("list sandboxes of organization '%s'", org_id);
    return sandbox_array(to_sq(s), Q_SB_LIST_ALL_ORG, (struct bv[]){BT(org_id)}, 1, ret, err,
                         ctx);
}

static int
sq_sandbox_list_due_autostop(struct dt_store *s, int64_t now_ms,
                             struct dt_store_sandbox_array *ret, struct dt_error **err)
{
    const struct bv b[] = {BT(dt_sandbox_state_to_string(DT_SANDBOX_STARTED)), BI(now_ms)};
    return sandbox_array(to_sq(s), Q_SB_DUE_AUTOSTOP, b, 2, ret, err,
                         "list sandboxes due for auto-stop");
}

static int
sq_snapshot_insert(struct dt_store *s, struct dt_store_snapshot *sn, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("create snapshot '%s'", sn->name);
    int r = insert_obj(to_sq(s), Q_SN_INSERT, &t_snapshot, sn, err, ctx);
    return unique_taken(r, "snapshot", sn->name, err);
}

static int
sq_snapshot_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                 struct dt_store_snapshot **ret, struct dt_error **err)
{
    void *o = NULL;
    int r = find_obj(to_sq(s), &t_snapshot, Q_SN_BY_ID, Q_SN_BY_ID_ORG, Q_SN_BY_NAME_ORG, org_id,
                     id_or_name, &o, err);
    if (r >= 0)
        *ret = o;
    return r;
}

static int
sq_snapshot_update(struct dt_store *s, struct dt_store_snapshot *sn, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("update snapshot '%s'", sn->id);
    int r = update_obj(to_sq(s), Q_SN_UPDATE, &t_snapshot, sn, NULL, 0, err, ctx);
    return write_result(unique_taken(r, "snapshot", sn->name, err), &t_snapshot, sn->id, err);
}

static int
sq_snapshot_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("delete snapshot '%s'", id);
    int r = exec_q(to_sq(s), Q_SN_DELETE, (struct bv[]){BT(id)}, 1, NULL, NULL, NULL, err, ctx);
    return write_result(r, &t_snapshot, id, err);
}

static int
sq_snapshot_list(struct dt_store *s, const char *org_id, uint64_t page, uint64_t limit,
                 struct dt_store_snapshot_array *ret, uint64_t *ret_total, struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("list snapshots of organization '%s'",
                                         org_id ? org_id : "(all)");
    void **items = NULL;
    size_t n = 0;
    int r;

    const struct bv b[] = {BT(org_id), BI((int64_t) limit), BI((int64_t) ((page - 1) * limit))};
    r = exec_q(st, Q_SN_LIST, b, 3, &t_snapshot, &items, &n, err, ctx);
    if (r < 0)
        return r;
    /* The count and the page are two reads; without a transaction around them a concurrent
     * writer could make them disagree, which only skews "totalPages" for one response. */
    sqlite3_stmt *stmt;
    r = get_stmt(st, Q_SN_COUNT, &stmt, err);
    if (r >= 0) {
        (void) sqlite3_bind_text(stmt, 1, org_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW && ret_total)
            *ret_total = (uint64_t) sqlite3_column_int64(stmt, 0);
        else if (rc != SQLITE_ROW)
            r = db_error(st, rc, err, "%s", ctx);
        (void) sqlite3_reset(stmt);
        (void) sqlite3_clear_bindings(stmt);
    }
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            dt_store_snapshot_free(items[i]);
        free(items);
        return r;
    }
    ret->items = (struct dt_store_snapshot **) items;
    ret->n = n;
    return 0;
}

static int
sq_volume_insert(struct dt_store *s, struct dt_store_volume *v, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("create volume '%s'", v->name);
    int r = insert_obj(to_sq(s), Q_VOL_INSERT, &t_volume, v, err, ctx);
    return unique_taken(r, "volume", v->name, err);
}

static int
sq_volume_find(struct dt_store *s, const char *org_id, const char *id_or_name,
               struct dt_store_volume **ret, struct dt_error **err)
{
    void *o = NULL;
    int r = find_obj(to_sq(s), &t_volume, Q_VOL_BY_ID, Q_VOL_BY_ID_ORG, Q_VOL_BY_NAME_ORG, org_id,
                     id_or_name, &o, err);
    if (r >= 0)
        *ret = o;
    return r;
}

static int
sq_volume_update(struct dt_store *s, struct dt_store_volume *v, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("update volume '%s'", v->id);
    int r = update_obj(to_sq(s), Q_VOL_UPDATE, &t_volume, v, NULL, 0, err, ctx);
    return write_result(unique_taken(r, "volume", v->name, err), &t_volume, v->id, err);
}

static int
sq_volume_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("delete volume '%s'", id);
    int r = exec_q(to_sq(s), Q_VOL_DELETE, (struct bv[]){BT(id)}, 1, NULL, NULL, NULL, err, ctx);
    return write_result(r, &t_volume, id, err);
}

static int
sq_volume_list(struct dt_store *s, const char *org_id, struct dt_store_volume_array *ret,
               struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("list volumes of organization '%s'", org_id);
    void **items = NULL;
    size_t n = 0;
    int r = exec_q(to_sq(s), Q_VOL_LIST, (struct bv[]){BT(org_id)}, 1, &t_volume, &items, &n, err,
                   ctx);
    if (r < 0)
        return r;
    ret->items = (struct dt_store_volume **) items;
    ret->n = n;
    return 0;
}

/* Docker registries: defined in their own section at the end of this file. */
static int sq_registry_insert(struct dt_store *s, struct dt_store_registry *r,
                              struct dt_error **err);
static int sq_registry_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                            struct dt_store_registry **ret, struct dt_error **err);
static int sq_registry_update(struct dt_store *s, struct dt_store_registry *r,
                              struct dt_error **err);
static int sq_registry_delete(struct dt_store *s, const char *org_id, const char *id,
                              struct dt_error **err);
static int sq_registry_list(struct dt_store *s, const char *org_id,
                            struct dt_store_registry_array *ret, struct dt_error **err);
static int sq_registry_set_default(struct dt_store *s, const char *org_id, const char *id,
                                   int64_t now_ms, struct dt_error **err);

static const struct dt_store_backend sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .org_create = sq_org_create,
    .org_get = sq_org_get,
    .org_list = sq_org_list,
    .api_key_create = sq_api_key_create,
    .api_key_by_hash = sq_api_key_by_hash,
    .api_key_touch = sq_api_key_touch,
    .api_key_list = sq_api_key_list,
    .api_key_delete = sq_api_key_delete,
    .sandbox_insert = sq_sandbox_insert,
    .sandbox_find = sq_sandbox_find,
    .sandbox_update = sq_sandbox_update,
    .sandbox_transition = sq_sandbox_transition,
    .sandbox_touch = sq_sandbox_touch,
    .sandbox_delete = sq_sandbox_delete,
    .sandbox_list = sq_sandbox_list,
    .sandbox_list_all = sq_sandbox_list_all,
    .sandbox_list_due_autostop = sq_sandbox_list_due_autostop,
    .snapshot_insert = sq_snapshot_insert,
    .snapshot_find = sq_snapshot_find,
    .snapshot_update = sq_snapshot_update,
    .snapshot_delete = sq_snapshot_delete,
    .snapshot_list = sq_snapshot_list,
    .volume_insert = sq_volume_insert,
    .volume_find = sq_volume_find,
    .volume_update = sq_volume_update,
    .volume_delete = sq_volume_delete,
    .volume_list = sq_volume_list,
    .registry_insert = sq_registry_insert,
    .registry_find = sq_registry_find,
    .registry_update = sq_registry_update,
    .registry_delete = sq_registry_delete,
    .registry_list = sq_registry_list,
    .registry_set_default = sq_registry_set_default,
};

/* ---- open --------------------------------------------------------------------------------- */

static int
open_db(struct sqlite_store *st, struct dt_error **err)
{
    int64_t v;
    int rc, r;

    /* NOMUTEX: one connection per thread (daytonad's loop). SQLite's unix VFS opens its files
     * with O_CLOEXEC, so sandbox processes never inherit the database. */
    rc = sqlite3_open_v2(st->path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                         NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, err, "open database");
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

    /* The first statement reads the header: a file that is not a database fails here with
     * SQLITE_NOTADB ("file is not a database"). WAL: readers never block the writer, and a
     * commit is one append. synchronous=NORMAL in WAL mode keeps the database consistent on
     * any crash and loses nothing on a process crash (kill -9); only an OS crash or power cut
     * can lose the last commits before a checkpoint, which is the price of not fsyncing on
     * every state change of every sandbox. The rare writes that must survive power loss (the
     * first organization and the admin key) use FULL. */
    r = exec_sql(st, "PRAGMA journal_mode = WAL", err, "enable WAL");
    if (r < 0)
        return r;
    r = exec_sql(st, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", err,
                 "set pragmas");
    if (r < 0)
        return r;
    r = query_int(st, "PRAGMA foreign_keys", NULL, 0, &v, err, "check foreign keys");
    if (r < 0)
        return r;
    if (v != 1)
        return dt_error_set(err, ENOTSUP, "open database '%s': foreign keys are not supported "
                                          "by this SQLite", st->path);
    return migrate(st, err);
}

int
dt__store_sqlite_open(const char *dir, struct dt_store **ret, struct dt_error **err)
{
    struct stat sb;
    int r;

    if (stat(dir, &sb) < 0)
        return dt_error_errno(err, errno, "open store directory '%s'", dir);
    if (!S_ISDIR(sb.st_mode))
        return dt_error_set(err, ENOTDIR, "store location '%s' is not a directory", dir);

    struct sqlite_store *st = xcalloc(1, sizeof(*st));
    st->base.ops = &sqlite_backend;
    st->path = xasprintf("%s/daytona.db", dir);
    r = open_db(st, err);
    if (r < 0) {
        sq_close(&st->base);
        return r;
    }
    build_sql(st);
    *ret = &st->base;
    return 0;
}

/* ==== docker registries ====================================================================== */
/* Kept apart from the statement cache above: registries are read and written a few times per
 * image pull or API call, so each call prepares its statement (about 20 µs) and finalizes it. */

static const struct col registry_cols[] = {
    C(dt_store_registry, id, "id", COL_TEXT),
    C(dt_store_registry, organization_id, "organization_id", COL_TEXT),
    C(dt_store_registry, name, "name", COL_TEXT),
    C(dt_store_registry, url, "url", COL_TEXT),
    C(dt_store_registry, username, "username", COL_TEXT),
    C(dt_store_registry, password_enc, "password_enc", COL_TEXT),
    C(dt_store_registry, project, "project", COL_TEXT),
    C(dt_store_registry, registry_type, "registry_type", COL_TEXT),
    C(dt_store_registry, is_default, "is_default", COL_BOOL),
    C(dt_store_registry, created_at_ms, "created_at", COL_I64),
    C(dt_store_registry, updated_at_ms, "updated_at", COL_I64),
};

static void
registry_free_v(void *p)
{
    dt_store_registry_free(p);
}

TABLE(t_registry, "docker_registries", "docker registry", registry_cols, dt_store_registry,
      registry_free_v);

/* Prepare SQL, bind OBJ's columns FIRST_COL.. of T (when OBJ) then B, run (collecting rows of
 * T into *RET_ITEMS when given), finalize. Returns rows or changed rows like run(). */
static int
reg_exec(struct sqlite_store *st, const char *sql, const void *obj, size_t first_col,
         const struct bv *b, size_t nb, void ***ret_items, size_t *ret_n, struct dt_error **err,
         const char *ctx)
{
    sqlite3_stmt *stmt = NULL;
    int rc, r, idx = 1;

    rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, err, "%s", ctx);
    for (size_t i = first_col; obj && i < t_registry.n_cols && rc == SQLITE_OK; i++)
        rc = bind_col(stmt, idx++, &t_registry, i, obj);
    if (rc == SQLITE_OK)
        rc = bind_values(stmt, idx, b, nb);
    if (rc != SQLITE_OK) {
        r = db_error(st, rc, err, "%s", ctx);
        sqlite3_finalize(stmt);
        return r;
    }
    r = run(st, stmt, ret_items ? &t_registry : NULL, ret_items, ret_n, err, ctx);
    sqlite3_finalize(stmt);
    return r;
}

static int
sq_registry_insert(struct dt_store *s, struct dt_store_registry *r, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("create docker registry '%s'", r->name);
    _cleanup_free_ char *sql = sql_insert(&t_registry);
    int k = reg_exec(to_sq(s), sql, r, 0, NULL, 0, NULL, NULL, err, ctx);
    return unique_taken(k < 0 ? k : 0, "docker registry", r->name, err);
}

static int
sq_registry_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                 struct dt_store_registry **ret, struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("look up docker registry '%s'", id_or_name);
    _cleanup_free_ char *by_id = sql_select(&t_registry, "WHERE id = ?");
    _cleanup_free_ char *by_id_org = sql_select(&t_registry, "WHERE id = ? AND organization_id = ?");
    _cleanup_free_ char *by_name_org = sql_select(&t_registry, "WHERE name = ? AND "
                                                               "organization_id = ?");
    const struct bv b[] = {BT(id_or_name), BT(org_id)};
    void **items = NULL;
    size_t n = 0;
    int r;

    r = reg_exec(st, org_id ? by_id_org : by_id, NULL, 0, b, org_id ? 2 : 1, &items, &n, err, ctx);
    if (r >= 0 && n == 0 && org_id) {
        free(items);
        items = NULL;
        r = reg_exec(st, by_name_org, NULL, 0, b, 2, &items, &n, err, ctx);
    }
    if (r < 0)
        return r;
    if (n == 0) {
        free(items);
        return dt_error_set(err, ENOENT, "docker registry '%s' not found", id_or_name);
    }
    for (size_t i = 1; i < n; i++)
        dt_store_registry_free(items[i]);
    *ret = items[0];
    free(items);
    return 0;
}

static int
sq_registry_update(struct dt_store *s, struct dt_store_registry *r, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("update docker registry '%s'", r->id);
    /* Everything but id, organization, is_default and created_at; scoped to the organization so
     * a record can never move between organizations. */
    const char *sql = "UPDATE docker_registries SET name = ?, url = ?, username = ?, "
                      "password_enc = ?, project = ?, registry_type = ?, updated_at = ? "
                      "WHERE id = ? AND organization_id = ?";
    const struct bv b[] = {BT(r->name),         BT(r->url),     BT(r->username),
                           BT(r->password_enc), BT(r->project), BT(r->registry_type),
                           BI(r->updated_at_ms), BT(r->id),     BT(r->organization_id)};
    int k = reg_exec(to_sq(s), sql, NULL, 0, b, ELEMENTSOF(b), NULL, NULL, err, ctx);
    return write_result(unique_taken(k, "docker registry", r->name, err), &t_registry, r->id,
                        err);
}

static int
sq_registry_delete(struct dt_store *s, const char *org_id, const char *id, struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("delete docker registry '%s'", id);
    const struct bv b[] = {BT(id), BT(org_id)};
    int k = reg_exec(to_sq(s), "DELETE FROM docker_registries WHERE id = ? AND organization_id = ?",
                     NULL, 0, b, 2, NULL, NULL, err, ctx);
    return write_result(k, &t_registry, id, err);
}

static int
sq_registry_list(struct dt_store *s, const char *org_id, struct dt_store_registry_array *ret,
                 struct dt_error **err)
{
    _cleanup_free_ char *ctx = xasprintf("list docker registries of organization '%s'", org_id);
    _cleanup_free_ char *sql = sql_select(&t_registry, "WHERE organization_id = ? "
                                                       "ORDER BY created_at, id");
    void **items = NULL;
    size_t n = 0;
    int r = reg_exec(to_sq(s), sql, NULL, 0, (struct bv[]){BT(org_id)}, 1, &items, &n, err, ctx);
    if (r < 0)
        return r;
    ret->items = (struct dt_store_registry **) items;
    ret->n = n;
    return 0;
}

static int
sq_registry_set_default(struct dt_store *s, const char *org_id, const char *id, int64_t now_ms,
                        struct dt_error **err)
{
    struct sqlite_store *st = to_sq(s);
    _cleanup_free_ char *ctx = xasprintf("make docker registry '%s' the default", id);
    int r;

    /* One transaction: readers never see two defaults, or none in between. */
    r = tx_begin(st, err);
    if (r < 0)
        return r;
    r = reg_exec(st, "UPDATE docker_registries SET is_default = 1, updated_at = ? "
                     "WHERE id = ? AND organization_id = ?",
                 NULL, 0, (struct bv[]){BI(now_ms), BT(id), BT(org_id)}, 3, NULL, NULL, err, ctx);
    r = write_result(r, &t_registry, id, err);
    if (r >= 0)
        r = reg_exec(st, "UPDATE docker_registries SET is_default = 0 "
                         "WHERE organization_id = ? AND id <> ? AND is_default = 1",
                     NULL, 0, (struct bv[]){BT(org_id), BT(id)}, 2, NULL, NULL, err, ctx);
    if (r < 0) {
        tx_rollback(st);
        return r;
    }
    r = tx_commit(st, err);
    return r < 0 ? r : 0;
}
/* ==== end of docker registries =============================================================== */
