/* SPDX-License-Identifier: Apache-2.0 */
/* The backend-independent half of the store: enum strings, record lifetimes, validation of
 * names and JSON, defaults, and the public calls that check their arguments and then dispatch
 * to the backend (store-sqlite.c). */
#include "dt/store.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

/* ---- enums -------------------------------------------------------------------------------- */

static const char *const sandbox_state_names[_DT_SANDBOX_STATE_MAX] = {
    [DT_SANDBOX_CREATING] = "creating",
    [DT_SANDBOX_RESTORING] = "restoring",
    [DT_SANDBOX_DESTROYED] = "destroyed",
    [DT_SANDBOX_DESTROYING] = "destroying",
    [DT_SANDBOX_STARTED] = "started",
    [DT_SANDBOX_STOPPED] = "stopped",
    [DT_SANDBOX_STARTING] = "starting",
    [DT_SANDBOX_STOPPING] = "stopping",
    [DT_SANDBOX_ERROR] = "error",
    [DT_SANDBOX_BUILD_FAILED] = "build_failed",
    [DT_SANDBOX_PENDING_BUILD] = "pending_build",
    [DT_SANDBOX_BUILDING_SNAPSHOT] = "building_snapshot",
    [DT_SANDBOX_UNKNOWN] = "unknown",
    [DT_SANDBOX_PULLING_SNAPSHOT] = "pulling_snapshot",
    [DT_SANDBOX_ARCHIVED] = "archived",
    [DT_SANDBOX_ARCHIVING] = "archiving",
    [DT_SANDBOX_RESIZING] = "resizing",
    [DT_SANDBOX_SNAPSHOTTING] = "snapshotting",
    [DT_SANDBOX_FORKING] = "forking",
    [DT_SANDBOX_PAUSING] = "pausing",
    [DT_SANDBOX_PAUSED] = "paused",
    [DT_SANDBOX_RESUMING] = "resuming",
};

static const char *const desired_state_names[_DT_DESIRED_STATE_MAX] = {
    [DT_DESIRED_DESTROYED] = "destroyed", [DT_DESIRED_STARTED] = "started",
    [DT_DESIRED_STOPPED] = "stopped",     [DT_DESIRED_RESIZED] = "resized",
    [DT_DESIRED_ARCHIVED] = "archived",   [DT_DESIRED_PAUSED] = "paused",
};

static const char *const snapshot_state_names[_DT_SNAPSHOT_STATE_MAX] = {
    [DT_SNAPSHOT_BUILDING] = "building",         [DT_SNAPSHOT_PENDING] = "pending",
    [DT_SNAPSHOT_PULLING] = "pulling",           [DT_SNAPSHOT_SNAPSHOTTING] = "snapshotting",
    [DT_SNAPSHOT_ACTIVE] = "active",             [DT_SNAPSHOT_INACTIVE] = "inactive",
    [DT_SNAPSHOT_ERROR] = "error",               [DT_SNAPSHOT_BUILD_FAILED] = "build_failed",
    [DT_SNAPSHOT_REMOVING] = "removing",
};

static const char *const volume_state_names[_DT_VOLUME_STATE_MAX] = {
    [DT_VOLUME_CREATING] = "creating",
    [DT_VOLUME_READY] = "ready",
    [DT_VOLUME_PENDING_CREATE] = "pending_create",
    [DT_VOLUME_PENDING_DELETE] = "pending_delete",
    [DT_VOLUME_DELETING] = "deleting",
    [DT_VOLUME_DELETED] = "deleted",
    [DT_VOLUME_ERROR] = "error",
};

static const char *
enum_to_string(const char *const *names, size_t n, int v)
{
    if (v < 0 || (size_t) v >= n)
        return "unknown";
    return names[v];
}

static int
enum_from_string(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int) i;
    return -EINVAL;
}

#define ENUM_FUNCS(prefix, type, names)                                                            \
    const char *prefix##_to_string(type v)                                                         \
    {                                                                                              \
        return enum_to_string(names, ELEMENTSOF(names), (int) v);                                  \
    }                                                                                              \
    int prefix##_from_string(const char *s)                                                        \
    {                                                                                              \
        return enum_from_string(names, ELEMENTSOF(names), s);                                      \
    }

ENUM_FUNCS(dt_sandbox_state, enum dt_sandbox_state, sandbox_state_names)
ENUM_FUNCS(dt_sandbox_desired_state, enum dt_sandbox_desired_state, desired_state_names)
ENUM_FUNCS(dt_snapshot_state, enum dt_snapshot_state, snapshot_state_names)
ENUM_FUNCS(dt_volume_state, enum dt_volume_state, volume_state_names)

/* ---- records ------------------------------------------------------------------------------ */

void
dt_store_org_free(struct dt_store_org *o)
{
    if (!o)
        return;
    free(o->id);
    free(o->name);
    free(o);
}

void
dt_store_api_key_free(struct dt_store_api_key *k)
{
    if (!k)
        return;
    free(k->id);
    free(k->organization_id);
    free(k->name);
    free(k->key_hash);
    free(k->key_prefix);
    free(k);
}

/* The owned strings of a sandbox record, for free and dup. */
#define SANDBOX_STRINGS(X)                                                                         \
    X(id)                                                                                          \
    X(organization_id)                                                                             \
    X(name)                                                                                        \
    X(snapshot)                                                                                    \
    X(user)                                                                                        \
    X(env_json)                                                                                    \
    X(labels_json)                                                                                 \
    X(network_allow_list)                                                                          \
    X(target)                                                                                      \
    X(error_reason)                                                                                \
    X(backup_state)                                                                                \
    X(volumes_json)                                                                                \
    X(build_info_json)                                                                             \
    X(runtime_plan_json)

void
dt_store_sandbox_free(struct dt_store_sandbox *s)
{
    if (!s)
        return;
#define FREE_FIELD(f) free(s->f);
    SANDBOX_STRINGS(FREE_FIELD)
#undef FREE_FIELD
    free(s);
}

struct dt_store_sandbox *
dt_store_sandbox_dup(const struct dt_store_sandbox *s)
{
    struct dt_store_sandbox *c = xmemdup(s, sizeof(*s));
#define DUP_FIELD(f) c->f = s->f ? xstrdup(s->f) : NULL;
    SANDBOX_STRINGS(DUP_FIELD)
#undef DUP_FIELD
    return c;
}

struct dt_store_sandbox *
dt_store_sandbox_new(const char *organization_id)
{
    struct dt_store_sandbox *s = xcalloc(1, sizeof(*s));
    s->organization_id = organization_id ? xstrdup(organization_id) : NULL;
    s->cpu = 1;
    s->memory_gib = 1;
    s->disk_gib = 3;
    s->state = DT_SANDBOX_CREATING;
    s->desired_state = DT_DESIRED_STARTED;
    s->auto_stop_interval = 15;
    s->auto_archive_interval = 7 * 24 * 60;
    s->auto_delete_interval = -1;
    s->runner_slot = -1;
    return s;
}

void
dt_store_snapshot_free(struct dt_store_snapshot *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->organization_id);
    free(s->name);
    free(s->image_name);
    free(s->entrypoint_json);
    free(s->error_reason);
    free(s->build_info_json);
    free(s->image_json);
    free(s);
}

void
dt_store_volume_free(struct dt_store_volume *v)
{
    if (!v)
        return;
    free(v->id);
    free(v->organization_id);
    free(v->name);
    free(v->error_reason);
    free(v);
}

#define ARRAY_FREE(fn, type, item_free)                                                            \
    void fn(type *a)                                                                               \
    {                                                                                              \
        if (!a)                                                                                    \
            return;                                                                                \
        for (size_t i = 0; i < a->n; i++)                                                          \
            item_free(a->items[i]);                                                                \
        free(a->items);                                                                            \
        a->items = NULL;                                                                           \
        a->n = 0;                                                                                  \
    }

ARRAY_FREE(dt_store_sandbox_array_free, struct dt_store_sandbox_array, dt_store_sandbox_free)
ARRAY_FREE(dt_store_snapshot_array_free, struct dt_store_snapshot_array, dt_store_snapshot_free)
ARRAY_FREE(dt_store_volume_array_free, struct dt_store_volume_array, dt_store_volume_free)
ARRAY_FREE(dt_store_org_array_free, struct dt_store_org_array, dt_store_org_free)
ARRAY_FREE(dt_store_api_key_array_free, struct dt_store_api_key_array, dt_store_api_key_free)

void
dt_store_sandbox_page_free(struct dt_store_sandbox_page *p)
{
    if (!p)
        return;
    dt_store_sandbox_array_free(&p->items);
    free(p->next_cursor);
    p->next_cursor = NULL;
    p->total = 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void
random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;

    /* getrandom() on the urandom pool never fails for small sizes once the pool is
     * initialised; EINTR is the only thing to retry. A failure otherwise is a broken kernel. */
    while (n > 0) {
        ssize_t k = getrandom(p, n, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            DT_BUG("getrandom failed");
        }
        p += k;
        n -= (size_t) k;
    }
}

static void
hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
dt_store_uuid(char out[static 37])
{
    uint8_t b[16];

    random_bytes(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
    b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    char hex[33];
    hex_encode(b, sizeof(b), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

bool
dt_store_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                     (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

int
dt_store_check_name(const char *what, const char *name, struct dt_error **err)
{
    if (!name || !*name)
        return dt_error_set(err, EINVAL, "%s must not be empty", what);
    size_t n = strlen(name);
    if (n > 255)
        return dt_error_set(err, EINVAL, "%s is longer than 255 bytes", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return dt_error_set(err, EINVAL, "%s '%s' contains '/' or a control character",
                                what, c == '/' ? name : "…");
    }
    return 0;
}

void
dt_store_key_hash(const char *key, char out[static 65])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    /* EVP_Digest cannot fail for SHA-256 short of OOM inside libcrypto. */
    if (EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        DT_BUG("EVP_Digest(SHA-256) failed");
    hex_encode(md, 32, out);
}

int64_t
dt_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Check that JSON (when not NULL) parses and, when REQUIRE_STRINGS_OBJECT, is an object whose
 * values are all strings. With RET_PAIRS, return the pairs as a NULL-terminated key, value, ...
 * array (sorted as jansson iterates: insertion order). */
static int
check_json(const char *what, const char *json, int want, bool strings_only, char ***ret_pairs,
           struct dt_error **err)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return dt_error_set(err, EINVAL, "%s is not valid JSON: %s", what, jerr.text);
    if (want >= 0 && json_typeof(v) != (json_type) want) {
        json_decref(v);
        return dt_error_set(err, EINVAL, "%s must be a JSON %s", what,
                            want == JSON_OBJECT ? "object" : "array");
    }
    char **pairs = NULL;
    if (strings_only) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (!json_is_string(x)) {
                /* K belongs to V: format the message before letting go of V. */
                int r = dt_error_set(err, EINVAL, "%s: value of '%s' must be a string", what, k);
                json_decref(v);
                strv_free(pairs);
                return r;
            }
            if (ret_pairs) {
                strv_push(&pairs, k);
                strv_push(&pairs, json_string_value(x));
            }
        }
        if (ret_pairs && !pairs)
            pairs = xcalloc(1, sizeof(char *));
    }
    json_decref(v);
    if (ret_pairs)
        *ret_pairs = pairs;
    return 0;
}

static void
default_string(char **p, const char *def)
{
    if (!*p)
        *p = xstrdup(def);
}

/* ---- open / close ------------------------------------------------------------------------- */

int
dt_store_open(const char *where, struct dt_store **ret, struct dt_error **err)
{
    if (!where || !*where)
        return dt_error_set(err, EINVAL, "store location must not be empty");
    if (strncmp(where, "postgres://", 11) == 0 || strncmp(where, "postgresql://", 13) == 0)
        return dt_error_set(err, EPROTONOSUPPORT,
                            "open store '%s': the PostgreSQL backend is not built yet", where);
    return dt__store_sqlite_open(where, ret, err);
}

void
dt_store_close(struct dt_store *s)
{
    if (s)
        s->ops->close(s);
}

int
dt_store_schema_version(struct dt_store *s)
{
    return s->ops->schema_version(s);
}

int
dt_store_schema_version_latest(void)
{
    return (int) dt__store_n_migrations;
}

/* ---- organizations and keys --------------------------------------------------------------- */

int
dt_store_org_create(struct dt_store *s, const char *name, struct dt_store_org **ret,
                    struct dt_error **err)
{
    char id[37];
    int r;

    r = dt_store_check_name("organization name", name, err);
    if (r < 0)
        return r;
    dt_store_uuid(id);
    struct dt_store_org *o = xcalloc(1, sizeof(*o));
    o->id = xstrdup(id);
    o->name = xstrdup(name);
    o->created_at_ms = dt_store_now_ms();
    r = s->ops->org_create(s, o, err);
    if (r < 0 || !ret)
        dt_store_org_free(o);
    else
        *ret = o;
    return r < 0 ? r : 0;
}

int
dt_store_org_get(struct dt_store *s, const char *id, struct dt_store_org **ret,
                 struct dt_error **err)
{
    if (!id)
        return dt_error_set(err, EINVAL, "organization id must not be empty");
    return s->ops->org_get(s, id, ret, err);
}

int
dt_store_org_list(struct dt_store *s, struct dt_store_org_array *ret, struct dt_error **err)
{
    return s->ops->org_list(s, ret, err);
}

int
dt_store_api_key_create(struct dt_store *s, const char *org_id, const char *name,
                        const char *plaintext, char **ret_plaintext,
                        struct dt_store_api_key **ret_key, struct dt_error **err)
{
    _cleanup_free_ char *key = NULL;
    char hash[65], id[37];
    int r;

    r = dt_store_check_name("api key name", name, err);
    if (r < 0)
        return r;
    if (!org_id)
        return dt_error_set(err, EINVAL, "api key '%s': organization id missing", name);
    if (plaintext) {
        /* A short key is guessable whatever the hash; the admin key from the environment
         * is the only way to get here. */
        if (strlen(plaintext) < 16)
            return dt_error_set(err, EINVAL, "api key '%s': a key needs at least 16 bytes",
                                name);
        key = xstrdup(plaintext);
    } else {
        uint8_t b[32];
        char hex[65];
        random_bytes(b, sizeof(b));
        hex_encode(b, sizeof(b), hex);
        key = xasprintf("dtn_%s", hex);
    }

    dt_store_key_hash(key, hash);
    dt_store_uuid(id);
    struct dt_store_api_key *k = xcalloc(1, sizeof(*k));
    k->id = xstrdup(id);
    k->organization_id = xstrdup(org_id);
    k->name = xstrdup(name);
    k->key_hash = xstrdup(hash);
    /* Enough to tell keys apart in a list, far too little to help a guess: "dtn_" plus 4 hex
     * digits of a generated key, at most a quarter of a given one. */
    size_t plen = strlen(key) / 4;
    k->key_prefix = xstrndup(key, plen < 8 ? plen : 8);
    k->created_at_ms = dt_store_now_ms();
    r = s->ops->api_key_create(s, k, err);
    if (r < 0) {
        dt_store_api_key_free(k);
        return r;
    }
    if (ret_key)
        *ret_key = k;
    else
        dt_store_api_key_free(k);
    if (ret_plaintext)
        *ret_plaintext = TAKE_PTR(key);
    return 0;
}

int
dt_store_api_key_lookup(struct dt_store *s, const char *plaintext, struct dt_store_api_key **ret,
                        struct dt_error **err)
{
    char hash[65];

    if (!plaintext || !*plaintext)
        return dt_error_set(err, ENOENT, "api key not found");
    /* Looking up by the hash needs no constant-time comparison: timing can at best reveal
     * how a SHA-256 of the attacker's guess sorts against stored hashes, which says nothing
     * about any key (preimage resistance). */
    dt_store_key_hash(plaintext, hash);
    return s->ops->api_key_by_hash(s, hash, ret, err);
}

int
dt_store_api_key_touch(struct dt_store *s, const char *id, int64_t now_ms, struct dt_error **err)
{
    return s->ops->api_key_touch(s, id, now_ms, err);
}

int
dt_store_api_key_list(struct dt_store *s, const char *org_id, struct dt_store_api_key_array *ret,
                      struct dt_error **err)
{
    return s->ops->api_key_list(s, org_id, ret, err);
}

int
dt_store_api_key_delete(struct dt_store *s, const char *org_id, const char *id,
                        struct dt_error **err)
{
    return s->ops->api_key_delete(s, org_id, id, err);
}

/* ---- sandboxes ---------------------------------------------------------------------------- */

/* Validate SB and fill its defaults; return the parsed labels in *ret_labels. */
static int
sandbox_prepare(struct dt_store_sandbox *sb, char ***ret_labels, struct dt_error **err)
{
    const char *what = sb->name ? sb->name : sb->id ? sb->id : "(new)";
    int r;

    if (!sb->organization_id)
        return dt_error_set(err, EINVAL, "sandbox '%s': organization id missing", what);
    if ((unsigned) sb->state >= _DT_SANDBOX_STATE_MAX ||
        (unsigned) sb->desired_state >= _DT_DESIRED_STATE_MAX)
        return dt_error_set(err, EINVAL, "sandbox '%s': state out of range", what);
    if (sb->name) {
        r = dt_store_check_name("sandbox name", sb->name, err);
        if (r < 0)
            return r;
    }
    default_string(&sb->env_json, "{}");
    default_string(&sb->labels_json, "{}");
    default_string(&sb->volumes_json, "[]");
    default_string(&sb->backup_state, "None");

    _cleanup_free_ char *w1 = xasprintf("env of sandbox '%s'", what);
    r = check_json(w1, sb->env_json, JSON_OBJECT, true, NULL, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *w2 = xasprintf("labels of sandbox '%s'", what);
    r = check_json(w2, sb->labels_json, JSON_OBJECT, true, ret_labels, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *w3 = xasprintf("volumes of sandbox '%s'", what);
    r = check_json(w3, sb->volumes_json, JSON_ARRAY, false, NULL, err);
    if (r >= 0 && sb->build_info_json) {
        _cleanup_free_ char *w4 = xasprintf("build info of sandbox '%s'", what);
        r = check_json(w4, sb->build_info_json, JSON_OBJECT, false, NULL, err);
    }
    if (r >= 0 && sb->runtime_plan_json) {
        _cleanup_free_ char *w5 = xasprintf("runtime plan of sandbox '%s'", what);
        r = check_json(w5, sb->runtime_plan_json, -1, false, NULL, err);
    }
    if (r < 0) {
        strv_free(*ret_labels);
        *ret_labels = NULL;
    }
    return r;
}

void
dt__store_stamp_new(char **id, int64_t *created_at_ms, int64_t *updated_at_ms)
{
    int64_t now = dt_store_now_ms();

    if (!*id) {
        char buf[37];
        dt_store_uuid(buf);
        *id = xstrdup(buf);
    }
    if (*created_at_ms == 0)
        *created_at_ms = now;
    *updated_at_ms = now;
}

int
dt_store_sandbox_insert(struct dt_store *s, struct dt_store_sandbox *sb, struct dt_error **err)
{
    _cleanup_strv_free_ char **labels = NULL;
    int r;

    if (sb->id && !*sb->id)
        return dt_error_set(err, EINVAL, "sandbox id must not be empty");
    r = sandbox_prepare(sb, &labels, err);
    if (r < 0)
        return r;
    dt__store_stamp_new(&sb->id, &sb->created_at_ms, &sb->updated_at_ms);
    default_string(&sb->name, sb->id);
    if (sb->last_activity_at_ms == 0)
        sb->last_activity_at_ms = sb->created_at_ms;
    sb->version = 1;
    return s->ops->sandbox_insert(s, sb, labels, err);
}

int
dt_store_sandbox_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                      struct dt_store_sandbox **ret, struct dt_error **err)
{
    if (!id_or_name || !*id_or_name)
        return dt_error_set(err, ENOENT, "sandbox '' not found");
    return s->ops->sandbox_find(s, org_id, id_or_name, ret, err);
}

int
dt_store_sandbox_update(struct dt_store *s, struct dt_store_sandbox *sb, struct dt_error **err)
{
    _cleanup_strv_free_ char **labels = NULL;
    int r;

    if (!sb->id || !sb->name)
        return dt_error_set(err, EINVAL, "sandbox update needs an id and a name");
    r = sandbox_prepare(sb, &labels, err);
    if (r < 0)
        return r;
    return s->ops->sandbox_update(s, sb, labels, err);
}

int
dt_store_sandbox_transition(struct dt_store *s, const char *id, enum dt_sandbox_state from,
                            enum dt_sandbox_state to, const char *error_reason,
                            struct dt_store_sandbox **ret, struct dt_error **err)
{
    int r;

    if (!id)
        return dt_error_set(err, EINVAL, "sandbox id missing");
    if ((unsigned) from >= _DT_SANDBOX_STATE_MAX || (unsigned) to >= _DT_SANDBOX_STATE_MAX)
        return dt_error_set(err, EINVAL, "sandbox '%s': state out of range", id);
    r = s->ops->sandbox_transition(s, id, from, to, error_reason, dt_store_now_ms(), err);
    if (r < 0 || !ret)
        return r;
    return s->ops->sandbox_find(s, NULL, id, ret, err);
}

int
dt_store_sandbox_touch(struct dt_store *s, const char *id, int64_t now_ms, struct dt_error **err)
{
    return s->ops->sandbox_touch(s, id, now_ms, err);
}

int
dt_store_sandbox_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    return s->ops->sandbox_delete(s, id, err);
}

/* Cursors are "<created_at_ms>.<id>": the keyset of the last row of the previous page. They
 * are opaque to clients; anything else is -EINVAL. */
int
dt_store_sandbox_list(struct dt_store *s, const struct dt_store_sandbox_filter *f,
                      struct dt_store_sandbox_page *ret, struct dt_error **err)
{
    _cleanup_strv_free_ char **labels = NULL;
    struct dt_store_sandbox_filter g = *f;
    int64_t cursor_ms = 0;
    const char *cursor_id = NULL;
    int r;

    if (!f->organization_id)
        return dt_error_set(err, EINVAL, "sandbox list: organization id missing");
    if (f->labels_json) {
        r = check_json("labels filter", f->labels_json, JSON_OBJECT, true, &labels, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < f->n_states; i++)
        if ((unsigned) f->states[i] >= _DT_SANDBOX_STATE_MAX)
            return dt_error_set(err, EINVAL, "sandbox list: state out of range");
    if (g.limit == 0)
        g.limit = 100;
    if (g.limit > 1000)
        g.limit = 1000;
    if (g.page == 0)
        g.page = 1;
    if (g.page > INT64_MAX / g.limit)
        return dt_error_set(err, EINVAL, "sandbox list: page %" PRIu64 " out of range", g.page);
    if (f->cursor && *f->cursor) {
        const char *dot = strchr(f->cursor, '.');
        uint64_t v;
        _cleanup_free_ char *num = dot ? xstrndup(f->cursor, (size_t) (dot - f->cursor)) : NULL;
        if (!dot || parse_u64(num, &v) < 0 || v > INT64_MAX || !dot[1])
            return dt_error_set(err, EINVAL, "sandbox list: invalid cursor '%s'", f->cursor);
        cursor_ms = (int64_t) v;
        cursor_id = dot + 1;
    }
    return s->ops->sandbox_list(s, &g, labels, cursor_ms, cursor_id, ret, err);
}

int
dt_store_sandbox_list_all(struct dt_store *s, const char *org_id,
                          struct dt_store_sandbox_array *ret, struct dt_error **err)
{
    return s->ops->sandbox_list_all(s, org_id, ret, err);
}

int
dt_store_sandbox_list_due_autostop(struct dt_store *s, int64_t now_ms,
                                   struct dt_store_sandbox_array *ret, struct dt_error **err)
{
    return s->ops->sandbox_list_due_autostop(s, now_ms, ret, err);
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static int
snapshot_prepare(struct dt_store_snapshot *sn, struct dt_error **err)
{
    int r;

    if (!sn->organization_id)
        return dt_error_set(err, EINVAL, "snapshot '%s': organization id missing",
                            sn->name ? sn->name : "(new)");
    r = dt_store_check_name("snapshot name", sn->name, err);
    if (r < 0)
        return r;
    if ((unsigned) sn->state >= _DT_SNAPSHOT_STATE_MAX)
        return dt_error_set(err, EINVAL, "snapshot '%s': state out of range", sn->name);
    if (sn->entrypoint_json) {
        _cleanup_free_ char *w = xasprintf("entrypoint of snapshot '%s'", sn->name);
        r = check_json(w, sn->entrypoint_json, JSON_ARRAY, false, NULL, err);
        if (r < 0)
            return r;
    }
    if (sn->build_info_json) {
        _cleanup_free_ char *w = xasprintf("build info of snapshot '%s'", sn->name);
        r = check_json(w, sn->build_info_json, JSON_OBJECT, false, NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
dt_store_snapshot_insert(struct dt_store *s, struct dt_store_snapshot *sn, struct dt_error **err)
{
    int r = snapshot_prepare(sn, err);
    if (r < 0)
        return r;
    dt__store_stamp_new(&sn->id, &sn->created_at_ms, &sn->updated_at_ms);
    return s->ops->snapshot_insert(s, sn, err);
}

int
dt_store_snapshot_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                       struct dt_store_snapshot **ret, struct dt_error **err)
{
    if (!id_or_name || !*id_or_name)
        return dt_error_set(err, ENOENT, "snapshot '' not found");
    return s->ops->snapshot_find(s, org_id, id_or_name, ret, err);
}

int
dt_store_snapshot_update(struct dt_store *s, struct dt_store_snapshot *sn, struct dt_error **err)
{
    int r = snapshot_prepare(sn, err);
    if (r < 0)
        return r;
    if (!sn->id)
        return dt_error_set(err, EINVAL, "snapshot '%s': id missing", sn->name);
    sn->updated_at_ms = dt_store_now_ms();
    return s->ops->snapshot_update(s, sn, err);
}

int
dt_store_snapshot_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    return s->ops->snapshot_delete(s, id, err);
}

int
dt_store_snapshot_list(struct dt_store *s, const char *org_id, uint64_t page, uint64_t limit,
                       struct dt_store_snapshot_array *ret, uint64_t *ret_total,
                       struct dt_error **err)
{
    if (limit == 0)
        limit = 100;
    if (limit > 1000)
        limit = 1000;
    if (page == 0)
        page = 1;
    if (page > INT64_MAX / limit)
        return dt_error_set(err, EINVAL, "snapshot list: page %" PRIu64 " out of range", page);
    return s->ops->snapshot_list(s, org_id, page, limit, ret, ret_total, err);
}

/* ---- volumes ------------------------------------------------------------------------------ */

static int
volume_prepare(struct dt_store_volume *v, struct dt_error **err)
{
    int r;

    if (!v->organization_id)
        return dt_error_set(err, EINVAL, "volume '%s': organization id missing",
                            v->name ? v->name : "(new)");
    r = dt_store_check_name("volume name", v->name, err);
    if (r < 0)
        return r;
    if ((unsigned) v->state >= _DT_VOLUME_STATE_MAX)
        return dt_error_set(err, EINVAL, "volume '%s': state out of range", v->name);
    return 0;
}

int
dt_store_volume_insert(struct dt_store *s, struct dt_store_volume *v, struct dt_error **err)
{
    int r = volume_prepare(v, err);
    if (r < 0)
        return r;
    dt__store_stamp_new(&v->id, &v->created_at_ms, &v->updated_at_ms);
    return s->ops->volume_insert(s, v, err);
}

int
dt_store_volume_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                     struct dt_store_volume **ret, struct dt_error **err)
{
    if (!id_or_name || !*id_or_name)
        return dt_error_set(err, ENOENT, "volume '' not found");
    return s->ops->volume_find(s, org_id, id_or_name, ret, err);
}

int
dt_store_volume_update(struct dt_store *s, struct dt_store_volume *v, struct dt_error **err)
{
    int r = volume_prepare(v, err);
    if (r < 0)
        return r;
    if (!v->id)
        return dt_error_set(err, EINVAL, "volume '%s': id missing", v->name);
    v->updated_at_ms = dt_store_now_ms();
    return s->ops->volume_update(s, v, err);
}

int
dt_store_volume_delete(struct dt_store *s, const char *id, struct dt_error **err)
{
    return s->ops->volume_delete(s, id, err);
}

int
dt_store_volume_list(struct dt_store *s, const char *org_id, struct dt_store_volume_array *ret,
                     struct dt_error **err)
{
    return s->ops->volume_list(s, org_id, ret, err);
}
