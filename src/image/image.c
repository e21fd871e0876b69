/* SPDX-License-Identifier: Apache-2.0 */
/* struct dt_image: the layers and runtime config of an image, and its JSON form (what snapshot
 * records store). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dt/image.h"
#include "dt/macros.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_STRV 4096
#define MAX_STR  (64 * 1024)

void
dt_image_init(struct dt_image *img)
{
    *img = (struct dt_image){0};
}

void
dt_image_done(struct dt_image *img)
{
    strv_free(img->layers);
    strv_free(img->env);
    strv_free(img->entrypoint);
    strv_free(img->cmd);
    free(img->working_dir);
    free(img->user);
    strv_free(img->exposed_ports);
    strv_free(img->labels);
    free(img->digest);
    dt_image_init(img);
}


static char *
strdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void
dt_image_copy(struct dt_image *dst, const struct dt_image *src)
{
    dst->layers = strv_copy(src->layers);
    dst->env = strv_copy(src->env);
    dst->entrypoint = strv_copy(src->entrypoint);
    dst->cmd = strv_copy(src->cmd);
    dst->working_dir = strdup_or_null(src->working_dir);
    dst->user = strdup_or_null(src->user);
    dst->exposed_ports = strv_copy(src->exposed_ports);
    dst->labels = strv_copy(src->labels);
    dst->digest = strdup_or_null(src->digest);
    dst->size_bytes = src->size_bytes;
}

static json_t *
strv_json(char *const *v)
{
    if (!v)
        return json_null();
    json_t *a = json_array();
    for (size_t i = 0; v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *
str_json(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *
dt_image_to_json(const struct dt_image *img)
{
    json_t *o = json_object();
    json_object_set_new(o, "layers", strv_json(img->layers));
    json_object_set_new(o, "env", strv_json(img->env));
    json_object_set_new(o, "entrypoint", strv_json(img->entrypoint));
    json_object_set_new(o, "cmd", strv_json(img->cmd));
    json_object_set_new(o, "workingDir", str_json(img->working_dir));
    json_object_set_new(o, "user", str_json(img->user));
    json_object_set_new(o, "exposedPorts", strv_json(img->exposed_ports));
    json_object_set_new(o, "labels", strv_json(img->labels));
    json_object_set_new(o, "digest", str_json(img->digest));
    json_object_set_new(o, "size", json_integer((json_int_t) img->size_bytes));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        abort();
    /* jansson's allocator is malloc: callers free() it like our own strings. */
    return s;
}

static int
get_strv(json_t *o, const char *key, char ***ret, struct dt_error **err)
{
    json_t *a = json_object_get(o, key);
    char **v = NULL;
    size_t i;
    json_t *e;

    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > MAX_STRV)
        return dt_error_set(err, EINVAL, "image: '%s' must be an array of at most %d strings",
                            key, MAX_STRV);
    json_array_foreach(a, i, e) {
        if (!json_is_string(e) || json_string_length(e) > MAX_STR ||
            strlen(json_string_value(e)) != json_string_length(e)) {
            strv_free(v);
            return dt_error_set(err, EINVAL, "image: '%s'[%zu] must be a string", key, i);
        }
        strv_push(&v, json_string_value(e));
    }
    if (!v) /* an empty array stays an empty (non-NULL) list */
        v = xcalloc(1, sizeof(char *));
    *ret = v;
    return 0;
}

static int
get_str(json_t *o, const char *key, char **ret, struct dt_error **err)
{
    json_t *s = json_object_get(o, key);
    if (!s || json_is_null(s))
        return 0;
    if (!json_is_string(s) || json_string_length(s) > MAX_STR ||
        strlen(json_string_value(s)) != json_string_length(s))
        return dt_error_set(err, EINVAL, "image: '%s' must be a string", key);
    *ret = xstrdup(json_string_value(s));
    return 0;
}

int
dt_image_from_json(const char *text, struct dt_image *img, struct dt_error **err)
{
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    struct dt_image im;
    int r;

    if (!o)
        return dt_error_set(err, EINVAL, "image: invalid JSON: %s", jerr.text);
    dt_image_init(&im);
    if (!json_is_object(o))
        r = dt_error_set(err, EINVAL, "image: not a JSON object");
    else
        r = get_strv(o, "layers", &im.layers, err);
    if (r >= 0)
        r = get_strv(o, "env", &im.env, err);
    if (r >= 0)
        r = get_strv(o, "entrypoint", &im.entrypoint, err);
    if (r >= 0)
        r = get_strv(o, "cmd", &im.cmd, err);
    if (r >= 0)
        r = get_str(o, "workingDir", &im.working_dir, err);
    if (r >= 0)
        r = get_str(o, "user", &im.user, err);
    if (r >= 0)
        r = get_strv(o, "exposedPorts", &im.exposed_ports, err);
    if (r >= 0)
        r = get_strv(o, "labels", &im.labels, err);
    if (r >= 0)
        r = get_str(o, "digest", &im.digest, err);
    if (r >= 0) {
        json_t *sz = json_object_get(o, "size");
        if (json_is_integer(sz) && json_integer_value(sz) >= 0)
            im.size_bytes = (uint64_t) json_integer_value(sz);
    }
    if (r >= 0 && strv_length(im.layers) > DT_MAX_LAYERS)
        r = dt_error_set(err, EINVAL, "image: more than %d layers", DT_MAX_LAYERS);
    for (size_t i = 0; r >= 0 && im.layers && im.layers[i]; i++)
        if (!dt_layer_id_is_valid(im.layers[i]))
            r = dt_error_set(err, EINVAL, "image: invalid layer id '%s'", im.layers[i]);
    json_decref(o);
    if (r < 0) {
        dt_image_done(&im);
        return r;
    }
    *img = im;
    return 0;
}
