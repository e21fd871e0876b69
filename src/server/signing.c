/* SPDX-License-Identifier: Apache-2.0 */
/* Signed file URLs (contract §3.4.3): a per-sandbox signing key (DATA_DIR/signing/<id>, 0600)
 * handed to the SDK, which signs `v1:files:{METHOD}:{path}:{expires}` with HMAC-SHA256 into
 * `v1_` + unpadded base64url; the toolbox proxy lets such a request through without an API key
 * when the signature matches and has not expired. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "server/server-int.h"
#include "dt/banned.h"

#define KEY_BYTES 32

static char *
key_path(struct dt_server *s, const char *id)
{
    return xasprintf("%s/signing/%s", s->data_dir, id);
}

int
dt_signing_key(struct dt_server *s, const char *id, bool rotate, char **ret, struct dt_error **err)
{
    _cleanup_free_ char *dir = xasprintf("%s/signing", s->data_dir), *path = key_path(s, id);
    _cleanup_free_ char *text = NULL;
    uint8_t raw[KEY_BYTES];
    char hex[2 * KEY_BYTES + 1];
    int r;

    if (strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return dt_error_set(err, EINVAL, "invalid sandbox id");
    if (!rotate && read_file_at(AT_FDCWD, path, 4096, &text, NULL) == 0 &&
        strlen(text) == 2 * KEY_BYTES) {
        *ret = TAKE_PTR(text);
        return 0;
    }
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
        return dt_error_errno(err, errno, "random signing key");
    for (size_t i = 0; i < KEY_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    r = mkdir_p(dir, 0700);
    if (r < 0)
        return dt_error_errno(err, r, "create %s", dir);
    r = write_file_at(AT_FDCWD, path, hex, strlen(hex), 0600);
    if (r < 0)
        return dt_error_errno(err, r, "write %s", path);
    *ret = xstrdup(hex);
    return 0;
}

void
dt_signing_forget(struct dt_server *s, const char *id)
{
    _cleanup_free_ char *path = key_path(s, id);
    (void) unlink(path);
}

static void
base64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t) in[i] << 16;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
    }
    out[o] = 0;
}

bool
dt_signing_verify(const char *key, const char *method, const char *path, const char *expires,
                  const char *signature, int64_t now_s)
{
    _cleanup_free_ char *canon = NULL;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char want[3 + 4 * EVP_MAX_MD_SIZE / 3 + 8];
    int64_t exp;

    if (!key || !path || !expires || !signature || parse_i64(expires, &exp) < 0 || exp < 0)
        return false;
    if (exp != 0 && now_s > exp)
        return false; /* 0 means "never expires" (the SDK's ttl <= 0) */
    canon = xasprintf("v1:files:%s:%s:%s", method, path, expires);
    if (!HMAC(EVP_sha256(), key, (int) strlen(key), (const uint8_t *) canon, strlen(canon), mac,
              &mac_len))
        return false;
    memcpy(want, "v1_", 3);
    base64url(mac, mac_len, want + 3);
    return strlen(signature) == strlen(want) &&
           CRYPTO_memcmp(signature, want, strlen(want)) == 0;
}
