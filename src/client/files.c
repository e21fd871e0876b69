/* SPDX-License-Identifier: Apache-2.0 */
/* Toolbox file system calls (contract §3.4). Uploads stream a multipart/form-data body built on
 * the fly from a prefix, the caller's fd and a suffix (the SDK's bulk-upload shape), so memory
 * does not grow with the file; downloads stream GET /files/download into the caller's fd. */
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

/* ---- upload ---- */

struct upload {
    int fd;
    const void *mem;            /* upload from memory instead of fd */
    size_t mem_len, mem_off;
    char *prefix, *suffix;
    size_t prefix_len, prefix_off, suffix_len, suffix_off;
    bool data_done;
    bool sized;                 /* Content-Length announced: exactly `remaining` data bytes */
    uint64_t remaining;
    int error;                  /* -errno from read(), or -EPROTO for a file that shrank */
};

static size_t
copy_part(char *dst, size_t room, const char *src, size_t len, size_t *off)
{
    size_t n = len - *off < room ? len - *off : room;

    memcpy(dst, src + *off, n);
    *off += n;
    return n;
}

static size_t
upload_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload *u = ud;
    size_t room = size * nitems;

    if (u->prefix_off < u->prefix_len)
        return copy_part(buf, room, u->prefix, u->prefix_len, &u->prefix_off);
    if (!u->data_done) {
        ssize_t n;

        if (u->sized && u->remaining < room)
            room = (size_t) u->remaining;
        if (room == 0)
            n = 0;
        else if (u->mem)
            n = (ssize_t) copy_part(buf, room, u->mem, u->mem_len, &u->mem_off);
        else {
            do
                n = read(u->fd, buf, room);
            while (n < 0 && errno == EINTR);
        }
        if (n < 0) {
            u->error = -errno;
            return CURL_READFUNC_ABORT;
        }
        if (n > 0) {
            if (u->sized)
                u->remaining -= (uint64_t) n;
            return (size_t) n;
        }
        if (u->sized && u->remaining > 0) {
            /* The file shrank after we announced its length: the body would be short. */
            u->error = -EPROTO;
            return CURL_READFUNC_ABORT;
        }
        u->data_done = true;
    }
    return copy_part(buf, size * nitems, u->suffix, u->suffix_len, &u->suffix_off);
}

/* A quoted-string value for Content-Disposition: no CR/LF, '"' and '\' escaped. */
static char *
quote_filename(const char *path)
{
    const char *base = strrchr(path, '/');
    size_t n;
    char *o, *p;

    base = base && base[1] ? base + 1 : path;
    n = strlen(base);
    o = p = xmalloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++) {
        if (base[i] == '\r' || base[i] == '\n')
            continue;
        if (base[i] == '"' || base[i] == '\\')
            *p++ = '\\';
        *p++ = base[i];
    }
    *p = 0;
    return o;
}

static int
do_upload(daytona_client *c, const char *sandbox, struct upload *u, int64_t data_size,
          const char *remote_path, daytona_progress_cb progress, void *userdata,
          daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL, *fname = NULL, *ct = NULL;
    char boundary[64];
    uint8_t rnd[12];
    struct dc_resp resp;
    struct dc_req req = { .method = "POST", .accept = "*/*" };
    int r;

    if (!remote_path || !remote_path[0])
        return dc_error(err, EINVAL, "upload: no destination path given");
    if (strchr(remote_path, '\r') || strchr(remote_path, '\n'))
        return dc_error(err, EINVAL, "upload: invalid destination path");
    what = xasprintf("upload '%s'", remote_path);
    url = dc_toolbox_url(c, sandbox, err, &r, "/files/bulk-upload");
    if (!url)
        return r;

    r = dt_ws_random_mask(rnd) < 0 ? -EIO : 0;
    if (r == 0)
        r = dt_ws_random_mask(rnd + 4) < 0 ? -EIO : 0;
    if (r == 0)
        r = dt_ws_random_mask(rnd + 8) < 0 ? -EIO : 0;
    if (r < 0)
        return dc_error(err, EIO, "%s: no random bytes for the multipart boundary", what);
    (void) snprintf(boundary, sizeof(boundary),
                    "--------------------------%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x",
                    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9],
                    rnd[10], rnd[11]);
    fname = quote_filename(remote_path);
    u->prefix = xasprintf("--%s\r\n"
                          "Content-Disposition: form-data; name=\"files[0].path\"\r\n\r\n"
                          "%s\r\n"
                          "--%s\r\n"
                          "Content-Disposition: form-data; name=\"files[0].file\"; "
                          "filename=\"%s\"\r\n"
                          "Content-Type: application/octet-stream\r\n\r\n",
                          boundary, remote_path, boundary, fname);
    u->suffix = xasprintf("\r\n--%s--\r\n", boundary);
    u->prefix_len = strlen(u->prefix);
    u->suffix_len = strlen(u->suffix);
    ct = xasprintf("multipart/form-data; boundary=%s", boundary);

    req.url = url;
    req.content_type = ct;
    req.read_fn = upload_read;
    req.read_ud = u;
    if (data_size >= 0) {
        u->sized = true;
        u->remaining = (uint64_t) data_size;
        req.upload_size = (int64_t) (u->prefix_len + u->suffix_len) + data_size;
    } else
        req.upload_size = -1;
    req.progress = progress;
    req.progress_ud = userdata;
    req.progress_total = req.upload_size;
    r = dc_perform(c, &req, &resp, what, err);
    free(u->prefix);
    free(u->suffix);
    if (r < 0) {
        if (u->error == -EPROTO)
            return dc_error(err, EPROTO, "%s: the local file shrank while it was sent", what);
        if (u->error < 0)
            return dc_error_errno(err, u->error, "%s: read the local file", what);
        return r;
    }
    dc_resp_done(&resp);
    return 0;
}

int
daytona_fs_upload_fd(daytona_client *c, const char *sandbox, int fd, const char *remote_path,
                     daytona_progress_cb progress, void *userdata, daytona_error **err)
{
    struct upload u = { .fd = fd };
    struct stat st;
    int64_t size = -1;

    /* A regular file gets a Content-Length (from its current offset); pipes go chunked. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t off = lseek(fd, 0, SEEK_CUR);
        if (off >= 0 && off <= st.st_size)
            size = (int64_t) (st.st_size - off);
    }
    return do_upload(c, sandbox, &u, size, remote_path, progress, userdata, err);
}

int
daytona_fs_upload_file(daytona_client *c, const char *sandbox, const char *local_path,
                       const char *remote_path, daytona_error **err)
{
    _cleanup_close_ int fd = open(local_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return dc_error_errno(err, errno, "open '%s'", local_path);
    return daytona_fs_upload_fd(c, sandbox, fd, remote_path, NULL, NULL, err);
}

int
daytona_fs_upload_buffer(daytona_client *c, const char *sandbox, const void *data, size_t len,
                         const char *remote_path, daytona_error **err)
{
    struct upload u = { .fd = -EBADF, .mem = data ? data : "", .mem_len = len };

    return do_upload(c, sandbox, &u, (int64_t) len, remote_path, NULL, NULL, err);
}

/* ---- download ---- */

struct download_sink {
    int fd;
    uint64_t bytes;
    char *buf;          /* to memory instead */
    size_t len, max;
    daytona_error **err;
    const char *what;
};

static int
download_write(const char *data, size_t len, void *ud)
{
    struct download_sink *d = ud;
    int r;

    if (d->fd < 0) {
        if (d->len + len > d->max)
            return dc_error(d->err, EFBIG, "%s: larger than %zu bytes", d->what, d->max);
        d->buf = xrealloc(d->buf, d->len + len + 1);
        memcpy(d->buf + d->len, data, len);
        d->len += len;
        d->buf[d->len] = 0;
    } else {
        r = write_all(d->fd, data, len);
        if (r < 0)
            return dc_error_errno(d->err, r, "%s: write", d->what);
    }
    d->bytes += len;
    return 0;
}

static int
do_download(daytona_client *c, const char *sandbox, const char *remote_path,
            struct download_sink *d, daytona_progress_cb progress, void *userdata,
            daytona_error **err)
{
    _cleanup_free_ char *url = NULL, *what = NULL, *e = NULL;
    struct dc_resp resp;
    struct dc_req req = { .method = "GET", .accept = "*/*" };
    int r;

    if (!remote_path || !remote_path[0])
        return dc_error(err, EINVAL, "download: no path given");
    what = xasprintf("download '%s'", remote_path);
    e = dc_escape(remote_path);
    url = dc_toolbox_url(c, sandbox, err, &r, "/files/download?path=%s", e);
    if (!url)
        return r;
    d->err = err;
    d->what = what;
    req.url = url;
    req.sink = download_write;
    req.sink_ud = d;
    req.progress = progress;
    req.progress_ud = userdata;
    req.progress_total = -1;
    r = dc_perform(c, &req, &resp, what, err);
    if (r < 0)
        return r;
    dc_resp_done(&resp);
    return 0;
}

int
daytona_fs_download_fd(daytona_client *c, const char *sandbox, const char *remote_path, int fd,
                       uint64_t *size, daytona_progress_cb progress, void *userdata,
                       daytona_error **err)
{
    struct download_sink d = { .fd = fd };
    int r;

    if (fd < 0)
        return dc_error(err, EBADF, "download '%s': invalid fd", remote_path);
    r = do_download(c, sandbox, remote_path, &d, progress, userdata, err);
    if (r < 0)
        return r;
    if (size)
        *size = d.bytes;
    return 0;
}

int
daytona_fs_download_file(daytona_client *c, const char *sandbox, const char *remote_path,
                         const char *local_path, daytona_error **err)
{
    _cleanup_free_ char *tmp = xasprintf("%s.daytona-tmp.%d", local_path, (int) getpid());
    _cleanup_close_ int fd = -EBADF;
    int r;

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return dc_error_errno(err, errno, "create '%s'", tmp);
    r = daytona_fs_download_fd(c, sandbox, remote_path, fd, NULL, NULL, NULL, err);
    if (r >= 0 && close(TAKE_FD(fd)) < 0)
        r = dc_error_errno(err, errno, "close '%s'", tmp);
    if (r >= 0 && rename(tmp, local_path) < 0)
        r = dc_error_errno(err, errno, "rename '%s' to '%s'", tmp, local_path);
    if (r < 0)
        (void) unlink(tmp);
    return r;
}

int
daytona_fs_download_buffer(daytona_client *c, const char *sandbox, const char *remote_path,
                           size_t max, char **data, size_t *len, daytona_error **err)
{
    struct download_sink d = { .fd = -EBADF, .max = max };
    int r = do_download(c, sandbox, remote_path, &d, NULL, NULL, err);

    if (r < 0) {
        free(d.buf);
        return r;
    }
    *data = d.buf ? d.buf : xstrdup("");
    if (len)
        *len = d.len;
    return 0;
}

/* ---- the other file operations ---- */

void
daytona_file_info_free(struct daytona_file_info *fi)
{
    if (!fi)
        return;
    daytona_file_infos_free(fi, 1);
}

static void
file_info_clear(struct daytona_file_info *fi)
{
    free(fi->name);
    free(fi->path);
    free(fi->mode);
    free(fi->permissions);
    free(fi->owner);
    free(fi->group);
    free(fi->mod_time);
}

void
daytona_file_infos_free(struct daytona_file_info *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        file_info_clear(&v[i]);
    free(v);
}

static void
file_info_from_json(json_t *o, struct daytona_file_info *fi)
{
    double sz = dc_jnum(o, "size");

    fi->name = dc_jstr(o, "name");
    fi->path = dc_jstr(o, "path");
    fi->is_dir = dc_jbool(o, "isDir");
    fi->size = sz > 0 ? (uint64_t) sz : 0;
    fi->mode = dc_jstr(o, "mode");
    fi->permissions = dc_jstr(o, "permissions");
    fi->owner = dc_jstr(o, "owner");
    fi->group = dc_jstr(o, "group");
    fi->mod_time = dc_jstr(o, "modTime");
    if (!fi->mod_time)
        fi->mod_time = dc_jstr(o, "modifiedAt");
}

/* A toolbox call with a JSON answer: URL = base + "/files..." built by the caller. */
static int
tb_call(daytona_client *c, const char *sandbox, const char *method, json_t *body, json_t **ret,
        const char *what, daytona_error **err, char *suffix)
{
    _cleanup_free_ char *url = NULL, *sfx = suffix;
    int r;

    url = dc_toolbox_url(c, sandbox, err, &r, "%s", sfx);
    if (!url)
        return r;
    return dc_json_call(c, method, url, body, 0, ret, what, err);
}

int
daytona_fs_list(daytona_client *c, const char *sandbox, const char *path,
                struct daytona_file_info **ret, size_t *n, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path ? path : "."), *what = NULL;
    struct daytona_file_info *v;
    json_t *j = NULL, *x;
    size_t i, k = 0;
    int r;

    what = xasprintf("list '%s'", path ? path : ".");
    r = tb_call(c, sandbox, "GET", NULL, &j, what, err, xasprintf("/files?path=%s", e));
    if (r < 0)
        return r;
    if (!json_is_array(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON array", what);
    }
    v = xcalloc(json_array_size(j) + 1, sizeof(*v));
    json_array_foreach(j, i, x) {
        if (json_is_object(x))
            file_info_from_json(x, &v[k++]);
    }
    json_decref(j);
    *ret = v;
    *n = k;
    return 0;
}

int
daytona_fs_info(daytona_client *c, const char *sandbox, const char *path,
                struct daytona_file_info **ret, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path), *what = xasprintf("stat '%s'", path);
    json_t *j = NULL;
    int r;

    r = tb_call(c, sandbox, "GET", NULL, &j, what, err, xasprintf("/files/info?path=%s", e));
    if (r < 0)
        return r;
    if (!json_is_object(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON object", what);
    }
    *ret = xcalloc(1, sizeof(**ret));
    file_info_from_json(j, *ret);
    json_decref(j);
    return 0;
}

int
daytona_fs_mkdir(daytona_client *c, const char *sandbox, const char *path, const char *mode,
                 daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path), *m = dc_escape(mode ? mode : "755");
    _cleanup_free_ char *what = xasprintf("create directory '%s'", path);

    return tb_call(c, sandbox, "POST", NULL, NULL, what, err,
                   xasprintf("/files/folder?path=%s&mode=%s", e, m));
}

int
daytona_fs_delete(daytona_client *c, const char *sandbox, const char *path, bool recursive,
                  daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path), *what = xasprintf("delete '%s'", path);

    return tb_call(c, sandbox, "DELETE", NULL, NULL, what, err,
                   xasprintf("/files?path=%s%s", e, recursive ? "&recursive=true" : ""));
}

int
daytona_fs_move(daytona_client *c, const char *sandbox, const char *source,
                const char *destination, daytona_error **err)
{
    _cleanup_free_ char *s = dc_escape(source), *d = dc_escape(destination);
    _cleanup_free_ char *what = xasprintf("move '%s' to '%s'", source, destination);

    return tb_call(c, sandbox, "POST", NULL, NULL, what, err,
                   xasprintf("/files/move?source=%s&destination=%s", s, d));
}

int
daytona_fs_set_permissions(daytona_client *c, const char *sandbox, const char *path,
                           const char *owner, const char *group, const char *mode,
                           daytona_error **err)
{
    _cleanup_free_ char *q = NULL, *what = xasprintf("set permissions of '%s'", path);
    _cleanup_free_ char *e = dc_escape(path);
    _cleanup_free_ char *eo = owner ? dc_escape(owner) : NULL;
    _cleanup_free_ char *eg = group ? dc_escape(group) : NULL;
    _cleanup_free_ char *em = mode ? dc_escape(mode) : NULL;

    q = xasprintf("%s%s%s%s%s%s", eo ? "&owner=" : "", eo ? eo : "", eg ? "&group=" : "",
                  eg ? eg : "", em ? "&mode=" : "", em ? em : "");
    return tb_call(c, sandbox, "POST", NULL, NULL, what, err,
                   xasprintf("/files/permissions?path=%s%s", e, q));
}

void
daytona_matches_free(struct daytona_match *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].file);
        free(v[i].content);
    }
    free(v);
}

int
daytona_fs_find(daytona_client *c, const char *sandbox, const char *path, const char *pattern,
                struct daytona_match **ret, size_t *n, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path), *p = dc_escape(pattern);
    _cleanup_free_ char *what = xasprintf("find '%s' in '%s'", pattern, path);
    struct daytona_match *v;
    json_t *j = NULL, *x;
    size_t i, k = 0;
    int r;

    r = tb_call(c, sandbox, "GET", NULL, &j, what, err,
                xasprintf("/files/find?path=%s&pattern=%s", e, p));
    if (r < 0)
        return r;
    if (!json_is_array(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON array", what);
    }
    v = xcalloc(json_array_size(j) + 1, sizeof(*v));
    json_array_foreach(j, i, x) {
        if (!json_is_object(x))
            continue;
        v[k].file = dc_jstr(x, "file");
        v[k].line = dc_jlong(x, "line");
        v[k].content = dc_jstr(x, "content");
        k++;
    }
    json_decref(j);
    *ret = v;
    *n = k;
    return 0;
}

int
daytona_fs_search(daytona_client *c, const char *sandbox, const char *path, const char *pattern,
                  char ***ret, daytona_error **err)
{
    _cleanup_free_ char *e = dc_escape(path), *p = dc_escape(pattern);
    _cleanup_free_ char *what = xasprintf("search '%s' in '%s'", pattern, path);
    json_t *j = NULL;
    int r;

    r = tb_call(c, sandbox, "GET", NULL, &j, what, err,
                xasprintf("/files/search?path=%s&pattern=%s", e, p));
    if (r < 0)
        return r;
    if (!json_is_array(json_object_get(j, "files"))) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: the answer has no \"files\" array", what);
    }
    *ret = dc_strv_from_json(json_object_get(j, "files"));
    json_decref(j);
    return 0;
}

void
daytona_replace_results_free(struct daytona_replace_result *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].file);
        free(v[i].error);
    }
    free(v);
}

int
daytona_fs_replace(daytona_client *c, const char *sandbox, const char *const *files,
                   const char *pattern, const char *new_value,
                   struct daytona_replace_result **ret, size_t *n, daytona_error **err)
{
    _cleanup_free_ char *what = xasprintf("replace '%s'", pattern);
    json_t *a = json_array(), *body, *j = NULL, *x;
    struct daytona_replace_result *v;
    size_t i, k = 0;
    int r;

    for (i = 0; files && files[i]; i++)
        json_array_append_new(a, json_string(files[i]));
    body = json_pack("{s:o,s:s,s:s}", "files", a, "pattern", pattern, "newValue", new_value);
    if (!body)
        return dc_error(err, EINVAL, "%s: invalid (non UTF-8) arguments", what);
    r = tb_call(c, sandbox, "POST", body, &j, what, err, xstrdup("/files/replace"));
    json_decref(body);
    if (r < 0)
        return r;
    if (!json_is_array(j)) {
        json_decref(j);
        return dc_error(err, EPROTO, "%s: expected a JSON array", what);
    }
    v = xcalloc(json_array_size(j) + 1, sizeof(*v));
    json_array_foreach(j, i, x) {
        if (!json_is_object(x))
            continue;
        v[k].file = dc_jstr(x, "file");
        v[k].success = dc_jbool(x, "success");
        v[k].error = dc_jstr(x, "error");
        k++;
    }
    json_decref(j);
    *ret = v;
    *n = k;
    return 0;
}
