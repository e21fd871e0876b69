/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's configuration file ($XDG_CONFIG_HOME/daytona/config.json): profiles holding an API
 * URL, key and target. Kept as a JSON tree so keys we do not know survive a load/save cycle;
 * saved 0600 through a temp file and rename() so a crash never leaves half a file (with the key
 * in it) behind. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client-int.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_CONFIG_SIZE (1u << 20)

struct daytona_config_file {
    char *path;
    json_t *root;     /* object */
};

int
daytona_config_file_default_path(char **ret, daytona_error **err)
{
    const char *xdg = secure_getenv("XDG_CONFIG_HOME"), *home = secure_getenv("HOME");

    /* The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored. */
    if (xdg && xdg[0] == '/')
        *ret = xasprintf("%s/daytona/config.json", xdg);
    else if (home && home[0])
        *ret = xasprintf("%s/.config/daytona/config.json", home);
    else
        return dc_error(err, ENOENT, "cannot find the config file: neither XDG_CONFIG_HOME nor "
                                     "HOME is set");
    return 0;
}

static json_t *
profiles_obj(daytona_config_file *cf, bool create)
{
    json_t *p = json_object_get(cf->root, "profiles");

    if (!json_is_object(p) && create) {
        p = json_object();
        json_object_set_new(cf->root, "profiles", p);
    }
    return json_is_object(p) ? p : NULL;
}

int
daytona_config_file_load(const char *path, daytona_config_file **ret, daytona_error **err)
{
    _cleanup_free_ char *p = NULL, *data = NULL;
    _cleanup_close_ int fd = -EBADF;
    daytona_config_file *cf;
    json_error_t je;
    json_t *root, *profs;
    size_t len = 0;
    int r;

    if (path)
        p = xstrdup(path);
    else {
        r = daytona_config_file_default_path(&p, err);
        if (r < 0)
            return r;
    }
    fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno != ENOENT)
        return dc_error_errno(err, errno, "open config file '%s'", p);
    if (fd < 0)
        root = json_object();
    else {
        r = read_fd_all(fd, MAX_CONFIG_SIZE, &data, &len);
        if (r < 0)
            return dc_error_errno(err, r, "read config file '%s'", p);
        if (len == 0)
            root = json_object();
        else {
            root = json_loadb(data, len, 0, &je);
            if (!root)
                return dc_error(err, EINVAL, "config file '%s' is not valid JSON: line %d: %s", p,
                                je.line, je.text);
        }
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return dc_error(err, EINVAL, "config file '%s': expected a JSON object", p);
    }
    profs = json_object_get(root, "profiles");
    if (profs && !json_is_object(profs)) {
        json_decref(root);
        return dc_error(err, EINVAL, "config file '%s': \"profiles\" must be an object", p);
    }
    if (json_object_get(root, "activeProfile") &&
        !json_is_string(json_object_get(root, "activeProfile")) &&
        !json_is_null(json_object_get(root, "activeProfile"))) {
        json_decref(root);
        return dc_error(err, EINVAL, "config file '%s': \"activeProfile\" must be a string", p);
    }
    cf = xcalloc(1, sizeof(*cf));
    cf->path = TAKE_PTR(p);
    cf->root = root;
    *ret = cf;
    return 0;
}

void
daytona_config_file_free(daytona_config_file *cf)
{
    if (!cf)
        return;
    json_decref(cf->root);
    free(cf->path);
    free(cf);
}

const char *
daytona_config_file_path(const daytona_config_file *cf)
{
    return cf->path;
}

const char *
daytona_config_file_active(const daytona_config_file *cf)
{
    json_t *a = json_object_get(cf->root, "activeProfile");
    return json_is_string(a) && json_string_length(a) > 0 ? json_string_value(a) : NULL;
}

size_t
daytona_config_file_n_profiles(const daytona_config_file *cf)
{
    json_t *p = json_object_get(cf->root, "profiles");
    return json_is_object(p) ? json_object_size(p) : 0;
}

static const char *
sfield(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
fill_profile(const char *name, json_t *o, struct daytona_profile *ret)
{
    ret->name = name;
    ret->api_url = sfield(o, "apiUrl");
    ret->api_key = sfield(o, "apiKey");
    ret->target = sfield(o, "target");
}

int
daytona_config_file_profile_at(const daytona_config_file *cf, size_t i,
                               struct daytona_profile *ret)
{
    json_t *p = json_object_get(cf->root, "profiles"), *v;
    const char *k;
    size_t n = 0;

    if (!json_is_object(p))
        return -ENOENT;
    /* jansson keeps insertion order (2.8+), which is the file's order. */
    json_object_foreach(p, k, v) {
        if (n++ == i) {
            fill_profile(k, v, ret);
            return 0;
        }
    }
    return -ENOENT;
}

int
daytona_config_file_get(const daytona_config_file *cf, const char *name,
                        struct daytona_profile *ret)
{
    json_t *p = json_object_get(cf->root, "profiles"), *o;
    const char *k;

    if (!name)
        name = daytona_config_file_active(cf);
    if (!name || !json_is_object(p))
        return -ENOENT;
    o = json_object_get(p, name);
    if (!json_is_object(o))
        return -ENOENT;
    /* Borrow the key from the object so it lives as long as the tree. */
    json_object_foreach(p, k, o) {
        if (strcmp(k, name) == 0) {
            fill_profile(k, o, ret);
            return 0;
        }
    }
    return -ENOENT;
}

static void
set_field(json_t *o, const char *key, const char *value)
{
    if (!value)
        return;
    if (!value[0])
        (void) json_object_del(o, key);
    else
        json_object_set_new(o, key, json_string(value));
}

int
daytona_config_file_set_profile(daytona_config_file *cf, const char *name, const char *api_url,
                                const char *api_key, const char *target, daytona_error **err)
{
    json_t *profs, *o;

    if (!name || !name[0])
        return dc_error(err, EINVAL, "empty profile name");
    profs = profiles_obj(cf, true);
    o = json_object_get(profs, name);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(profs, name, o);
    }
    set_field(o, "apiUrl", api_url);
    set_field(o, "apiKey", api_key);
    set_field(o, "target", target);
    if (!daytona_config_file_active(cf))
        json_object_set_new(cf->root, "activeProfile", json_string(name));
    return 0;
}

int
daytona_config_file_set_active(daytona_config_file *cf, const char *name, daytona_error **err)
{
    json_t *profs = profiles_obj(cf, false);

    if (!name || !json_is_object(json_object_get(profs, name)))
        return dc_error(err, ENOENT, "no profile '%s' in '%s'", name ? name : "", cf->path);
    json_object_set_new(cf->root, "activeProfile", json_string(name));
    return 0;
}

int
daytona_config_file_remove_profile(daytona_config_file *cf, const char *name, daytona_error **err)
{
    json_t *profs = profiles_obj(cf, false);
    const char *active = daytona_config_file_active(cf);
    bool was_active;

    if (!name || !json_is_object(json_object_get(profs, name)))
        return dc_error(err, ENOENT, "no profile '%s' in '%s'", name ? name : "", cf->path);
    was_active = active && strcmp(active, name) == 0;
    (void) json_object_del(profs, name);
    if (was_active)
        (void) json_object_del(cf->root, "activeProfile");
    return 0;
}

/* mkdir -p for the parents of PATH, new directories 0700 (the file holds credentials). */
static int
mkdir_parents(const char *path)
{
    _cleanup_free_ char *p = xstrdup(path);
    char *s = p;

    while ((s = strchr(s + 1, '/'))) {
        *s = 0;
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return 0;
}

int
daytona_config_file_save(daytona_config_file *cf, daytona_error **err)
{
    _cleanup_free_ char *text = NULL, *tmp = NULL;
    _cleanup_close_ int fd = -EBADF;
    int r;

    text = json_dumps(cf->root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return dc_error(err, ENOMEM, "encode config file '%s'", cf->path);
    r = mkdir_parents(cf->path);
    if (r < 0)
        return dc_error_errno(err, r, "create the directory of '%s'", cf->path);
    tmp = xasprintf("%s.tmp.%d", cf->path, (int) getpid());
    /* O_EXCL with mode 0600: the key is never readable by others, not even for a moment. */
    (void) unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return dc_error_errno(err, errno, "create '%s'", tmp);
    r = write_all(fd, text, strlen(text));
    if (r >= 0)
        r = write_all(fd, "\n", 1);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlink(tmp);
        return dc_error_errno(err, r, "write '%s'", tmp);
    }
    fd = safe_close(fd);
    if (rename(tmp, cf->path) < 0) {
        r = -errno;
        (void) unlink(tmp);
        return dc_error_errno(err, r, "rename '%s' to '%s'", tmp, cf->path);
    }
    return 0;
}
