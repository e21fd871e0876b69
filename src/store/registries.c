/* SPDX-License-Identifier: Apache-2.0 */
/* Docker registries in the store: record lifetimes, validation of addresses and credentials, the
 * public calls (which then dispatch to the backend), and the sealing of secrets at rest with
 * AES-256-GCM under a key file that lives beside the database, never inside it. */
#include "dt/store.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define SEAL_PREFIX "v1:"
#define NONCE_SIZE 12
#define TAG_SIZE 16

/* ---- records ------------------------------------------------------------------------------ */

void
dt_store_registry_free(struct dt_store_registry *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->organization_id);
    free(r->name);
    free(r->url);
    free(r->username);
    /* Sealed, but there is no reason to leave even that lying in freed memory. */
    if (r->password_enc)
        explicit_bzero(r->password_enc, strlen(r->password_enc));
    free(r->password_enc);
    free(r->project);
    free(r->registry_type);
    free(r);
}

void
dt_store_registry_array_free(struct dt_store_registry_array *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        dt_store_registry_free(a->items[i]);
    free(a->items);
    a->items = NULL;
    a->n = 0;
}

/* ---- public calls ------------------------------------------------------------------------- */

/* Printable text of at most MAX bytes: credentials travel to pull jobs line by line, so a
 * control character could forge a second field. */
static int
check_field(const char *what, const char *v, size_t max, bool required, struct dt_error **err)
{
    if (!v)
        return required ? dt_error_set(err, EINVAL, "%s is required", what) : 0;
    size_t n = strlen(v);
    if (required && n == 0)
        return dt_error_set(err, EINVAL, "%s must not be empty", what);
    if (n > max)
        return dt_error_set(err, EINVAL, "%s is longer than %zu bytes", what, max);
    for (const unsigned char *c = (const unsigned char *) v; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return dt_error_set(err, EINVAL, "%s must not contain control characters", what);
    return 0;
}

static int
registry_prepare(struct dt_store_registry *r, struct dt_error **err)
{
    const char *what = r->name ? r->name : "(new)";
    int k;

    if (!r->organization_id)
        return dt_error_set(err, EINVAL, "docker registry '%s': organization id missing", what);
    k = dt_store_check_name("registry name", r->name, err);
    if (k >= 0) {
        _cleanup_free_ char *norm = NULL;
        k = dt_store_registry_normalize_url(r->url, &norm, err);
        if (k >= 0 && strcmp(norm, r->url) != 0)
            k = dt_error_set(err, EINVAL, "docker registry '%s': url '%s' is not normalised",
                             what, r->url);
    }
    if (k >= 0)
        k = check_field("registry username", r->username, DT_REGISTRY_FIELD_MAX, true, err);
    if (k >= 0 && (!r->password_enc || strncmp(r->password_enc, SEAL_PREFIX, 3) != 0))
        k = dt_error_set(err, EINVAL, "docker registry '%s': password is not sealed", what);
    if (k >= 0)
        k = check_field("registry project", r->project, 255, false, err);
    if (k >= 0 && !r->project)
        r->project = xstrdup("");
    if (k >= 0 && !r->registry_type)
        r->registry_type = xstrdup("organization");
    return k;
}

int
dt_store_registry_insert(struct dt_store *s, struct dt_store_registry *r, struct dt_error **err)
{
    int k = registry_prepare(r, err);
    if (k < 0)
        return k;
    dt__store_stamp_new(&r->id, &r->created_at_ms, &r->updated_at_ms);
    return s->ops->registry_insert(s, r, err);
}

int
dt_store_registry_find(struct dt_store *s, const char *org_id, const char *id_or_name,
                       struct dt_store_registry **ret, struct dt_error **err)
{
    if (!id_or_name || !*id_or_name)
        return dt_error_set(err, ENOENT, "docker registry '' not found");
    return s->ops->registry_find(s, org_id, id_or_name, ret, err);
}

int
dt_store_registry_update(struct dt_store *s, struct dt_store_registry *r, struct dt_error **err)
{
    int k = registry_prepare(r, err);
    if (k < 0)
        return k;
    if (!r->id)
        return dt_error_set(err, EINVAL, "docker registry '%s': id missing", r->name);
    r->updated_at_ms = dt_store_now_ms();
    return s->ops->registry_update(s, r, err);
}

int
dt_store_registry_delete(struct dt_store *s, const char *org_id, const char *id,
                         struct dt_error **err)
{
    if (!org_id || !id)
        return dt_error_set(err, EINVAL, "docker registry delete needs an organization and id");
    return s->ops->registry_delete(s, org_id, id, err);
}

int
dt_store_registry_list(struct dt_store *s, const char *org_id,
                       struct dt_store_registry_array *ret, struct dt_error **err)
{
    if (!org_id)
        return dt_error_set(err, EINVAL, "docker registry list: organization id missing");
    return s->ops->registry_list(s, org_id, ret, err);
}

int
dt_store_registry_set_default(struct dt_store *s, const char *org_id, const char *id,
                              struct dt_error **err)
{
    if (!org_id || !id)
        return dt_error_set(err, EINVAL, "docker registry default needs an organization and id");
    return s->ops->registry_set_default(s, org_id, id, dt_store_now_ms(), err);
}

/* ---- secrets ------------------------------------------------------------------------------ */

static int
read_key(int fd, const char *path, uint8_t key[static DT_SECRET_KEY_SIZE], struct dt_error **err)
{
    struct stat st;
    uint8_t buf[DT_SECRET_KEY_SIZE + 1];
    ssize_t n;

    if (fstat(fd, &st) < 0)
        return dt_error_errno(err, errno, "stat registry key '%s'", path);
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL, "registry key '%s' is not a regular file", path);
    /* Whoever can read the key can read every stored password: refuse a loosened file
     * rather than use it and pretend the passwords are protected. */
    if (st.st_mode & 077)
        return dt_error_set(err, EPERM,
                            "registry key '%s' is accessible to group or others (mode %03o); "
                            "it must be 0600", path, (unsigned) (st.st_mode & 0777));
    do
        n = pread(fd, buf, sizeof(buf), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return dt_error_errno(err, errno, "read registry key '%s'", path);
    if (n != DT_SECRET_KEY_SIZE) {
        explicit_bzero(buf, sizeof(buf));
        return dt_error_set(err, EINVAL, "registry key '%s' has %zd bytes, not %d", path, n,
                            DT_SECRET_KEY_SIZE);
    }
    memcpy(key, buf, DT_SECRET_KEY_SIZE);
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

static void
fill_random(uint8_t *p, size_t n)
{
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

/* A new key written to a temporary file (fsync'ed) and linked to PATH: link() fails with
 * EEXIST instead of replacing, so two creators agree on one key and no reader sees a short
 * file. */
static int
create_key(const char *path, struct dt_error **err)
{
    _cleanup_free_ char *tmp = xasprintf("%s.XXXXXX", path);
    uint8_t key[DT_SECRET_KEY_SIZE];
    int r = 0;

    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return dt_error_errno(err, errno, "create registry key '%s'", path);
    fill_random(key, sizeof(key));
    if (fchmod(fd, 0600) < 0 || (r = write_all(fd, key, sizeof(key))) < 0 || fsync(fd) < 0)
        r = dt_error_errno(err, r < 0 ? -r : errno, "write registry key '%s'", tmp);
    explicit_bzero(key, sizeof(key));
    if (r >= 0 && link(tmp, path) < 0 && errno != EEXIST)
        r = dt_error_errno(err, errno, "install registry key '%s'", path);
    (void) unlink(tmp);
    if (r < 0)
        return r;
    /* The link must survive a power cut before any password is sealed with the key. */
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    _cleanup_close_ int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return dt_error_errno(err, errno, "sync the directory of registry key '%s'", path);
    return 0;
}

int
dt_store_secret_key_load(const char *path, uint8_t key[static DT_SECRET_KEY_SIZE],
                         struct dt_error **err)
{
    int r;

    for (int attempt = 0; attempt < 2; attempt++) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            return read_key(fd, path, key, err);
        if (errno != ENOENT)
            return dt_error_errno(err, errno, "open registry key '%s'", path);
        r = create_key(path, err);
        if (r < 0)
            return r;
    }
    return dt_error_set(err, EIO, "registry key '%s' vanished while being created", path);
}

int
dt_store_secret_seal(const uint8_t key[static DT_SECRET_KEY_SIZE], const char *context,
                     const char *plaintext, char **ret, struct dt_error **err)
{
    size_t n = strlen(plaintext);
    int len = 0, fin = 0, ok;

    if (n > 64 * 1024)
        return dt_error_set(err, EINVAL, "secret too long to seal (%zu bytes)", n);
    _cleanup_free_ uint8_t *raw = xmalloc(NONCE_SIZE + n + TAG_SIZE);
    fill_random(raw, NONCE_SIZE);

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return dt_error_set(err, ENOMEM, "seal secret: no cipher context");
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_SIZE, NULL) == 1 &&
         EVP_EncryptInit_ex(ctx, NULL, NULL, key, raw) == 1;
    if (ok && context && *context)
        ok = EVP_EncryptUpdate(ctx, NULL, &len, (const uint8_t *) context,
                               (int) strlen(context)) == 1;
    if (ok)
        ok = EVP_EncryptUpdate(ctx, raw + NONCE_SIZE, &len, (const uint8_t *) plaintext,
                               (int) n) == 1 &&
             EVP_EncryptFinal_ex(ctx, raw + NONCE_SIZE + len, &fin) == 1 &&
             (size_t) (len + fin) == n &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, raw + NONCE_SIZE + n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return dt_error_set(err, EIO, "seal secret: AES-256-GCM failed");

    size_t raw_n = NONCE_SIZE + n + TAG_SIZE;
    char *out = xmalloc(3 + 4 * ((raw_n + 2) / 3) + 1);
    memcpy(out, SEAL_PREFIX, 3);
    EVP_EncodeBlock((unsigned char *) out + 3, raw, (int) raw_n);
    *ret = out;
    return 0;
}

int
dt_store_secret_open(const uint8_t key[static DT_SECRET_KEY_SIZE], const char *context,
                     const char *sealed, char **ret, struct dt_error **err)
{
    int len = 0, fin = 0, ok;

    if (!sealed || strncmp(sealed, SEAL_PREFIX, 3) != 0)
        return dt_error_set(err, EBADMSG, "sealed secret: unknown format");
    const char *b64 = sealed + 3;
    size_t bn = strlen(b64);
    if (bn == 0 || bn % 4 != 0 || bn > 128 * 1024)
        return dt_error_set(err, EBADMSG, "sealed secret: bad base64 length");
    size_t pad = (b64[bn - 1] == '=') + (bn >= 2 && b64[bn - 2] == '=');
    _cleanup_free_ uint8_t *raw = xmalloc(bn / 4 * 3);
    int dn = EVP_DecodeBlock(raw, (const unsigned char *) b64, (int) bn);
    if (dn < 0 || (size_t) dn < pad)
        return dt_error_set(err, EBADMSG, "sealed secret: bad base64");
    size_t raw_n = (size_t) dn - pad;
    if (raw_n < NONCE_SIZE + TAG_SIZE)
        return dt_error_set(err, EBADMSG, "sealed secret: too short");
    size_t n = raw_n - NONCE_SIZE - TAG_SIZE;
    char *out = xmalloc(n + 1);

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        free(out);
        return dt_error_set(err, ENOMEM, "open secret: no cipher context");
    }
    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_SIZE, NULL) == 1 &&
         EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw) == 1;
    if (ok && context && *context)
        ok = EVP_DecryptUpdate(ctx, NULL, &len, (const uint8_t *) context,
                               (int) strlen(context)) == 1;
    if (ok)
        ok = EVP_DecryptUpdate(ctx, (uint8_t *) out, &len, raw + NONCE_SIZE, (int) n) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE,
                                 raw + NONCE_SIZE + n) == 1 &&
             /* Only the final call checks the tag: until it succeeds the output is
              * unauthenticated and must not escape. */
             EVP_DecryptFinal_ex(ctx, (uint8_t *) out + len, &fin) == 1 &&
             (size_t) (len + fin) == n;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok || memchr(out, '\0', n)) {
        explicit_bzero(out, n + 1);
        free(out);
        return dt_error_set(err, EBADMSG, "sealed secret does not authenticate (tampered, or "
                                          "sealed under another key)");
    }
    out[n] = '\0';
    *ret = out;
    return 0;
}
