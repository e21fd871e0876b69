/* SPDX-License-Identifier: Apache-2.0 */
/* The file-system endpoints (contract 3.4): thin HTTP glue over fs.c, plus the streaming
 * transfers: bulk upload (multipart request parsed as it arrives, each file written to a temp
 * file and renamed into place when complete), bulk download (a multipart/form-data response
 * generated file by file under backpressure), and the raw download/upload-v2 used by signed
 * URLs. No file is ever held whole in memory. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/fs.h"
#include "dt/fd-util.h"
#include "dt/multipart.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define HIGH_WATER   (1u << 20)   /* response bytes queued before we stop reading files */
#define READ_CHUNK   (256u << 10)
#define MAX_UPLOADS  10000u       /* files in one bulk upload */
#define MAX_PATHS    10000u       /* paths in one bulk download */
#define MAX_PATH_VAL 4096u

static void
fs_ctx(struct dt_agent *a, struct dt_fs_ctx *c)
{
    bool root = getuid() == 0;

    *c = (struct dt_fs_ctx) {
        .root = a->cfg.root,
        .workdir = a->workdir,
        .uid = root ? a->user.uid : (uid_t) -1,
        .gid = root ? a->user.gid : (gid_t) -1,
    };
}

/* The "path" query parameter, resolved; NULL after answering 400. */
static char *
query_path(struct dt_agent *a, struct dt_httpd_req *req, const char *name)
{
    _cleanup_error_ struct dt_error *err = NULL;
    const char *p = dt_httpd_req_query(req, name);
    struct dt_fs_ctx c;
    char *out = NULL;
    int r;

    if (!p || !*p) {
        dt_agent_error(req, 400, "INVALID_FILE_PATH", "query parameter '%s' is required", name);
        return NULL;
    }
    fs_ctx(a, &c);
    r = dt_fs_resolve(&c, p, (size_t) -1, &out, &err);
    if (r < 0) {
        dt_agent_error_errno(req, r, err);
        return NULL;
    }
    return out;
}

static bool
query_bool(struct dt_httpd_req *req, const char *name)
{
    const char *v = dt_httpd_req_query(req, name);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void
reply_result(struct dt_httpd_req *req, int r, struct dt_error *err, json_t *j)
{
    if (r < 0) {
        json_decref(j);
        return dt_agent_error_errno(req, r, err);
    }
    if (j)
        dt_httpd_reply_json(req, 200, j);
    else
        dt_agent_ok(req);
}

static void
route_list(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = NULL;
    const char *d = dt_httpd_req_query(req, "depth");
    struct dt_fs_ctx c;
    uint32_t depth = 1;
    json_t *j = NULL;
    int r;

    if (d && *d && (parse_u32(d, &depth) < 0 || depth < 1 || depth > 256))
        return dt_agent_error(req, 400, "BAD_REQUEST", "depth must be an integer from 1 to 256");
    if (!dt_httpd_req_query(req, "path")) /* the SDK's default: the work dir */
        path = xstrdup(a->workdir);
    else if (!(path = query_path(a, req, "path")))
        return;
    fs_ctx(a, &c);
    r = dt_fs_list(&c, path, depth, &j, &err);
    reply_result(req, r, err, j);
}

static void
route_info(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    struct dt_fs_ctx c;
    json_t *j = NULL;
    int r;

    if (!path)
        return;
    fs_ctx(a, &c);
    r = dt_fs_info(&c, path, &j, &err);
    reply_result(req, r, err, j);
}

static void
route_mkdir(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    const char *mode = dt_httpd_req_query(req, "mode");
    struct dt_fs_ctx c;

    if (!path)
        return;
    fs_ctx(a, &c);
    reply_result(req, dt_fs_mkdir(&c, path, mode && *mode ? mode : "755", &err), err, NULL);
}

static void
route_delete(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    struct dt_fs_ctx c;

    if (!path)
        return;
    fs_ctx(a, &c);
    reply_result(req, dt_fs_delete(&c, path, query_bool(req, "recursive"), &err), err, NULL);
}

static void
route_move(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *src = query_path(a, req, "source");
    _cleanup_free_ char *dst = src ? query_path(a, req, "destination") : NULL;
    struct dt_fs_ctx c;

    if (!src || !dst)
        return;
    fs_ctx(a, &c);
    reply_result(req, dt_fs_move(&c, src, dst, &err), err, NULL);
}

static void
route_permissions(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    struct dt_fs_ctx c;
    const char *owner = dt_httpd_req_query(req, "owner"), *group = dt_httpd_req_query(req, "group");
    const char *mode = dt_httpd_req_query(req, "mode");

    if (!path)
        return;
    fs_ctx(a, &c);
    reply_result(req,
                 dt_fs_set_permissions(&c, path, owner && *owner ? owner : NULL,
                                       group && *group ? group : NULL, mode && *mode ? mode : NULL,
                                       &err),
                 err, NULL);
}

/* find (content) and search (names) take the same query: path and pattern. */
typedef int (*pattern_fn)(const struct dt_fs_ctx *c, const char *path, const char *pattern,
                          json_t **ret, bool *truncated, struct dt_error **err);

static void
route_pattern(struct dt_agent *a, struct dt_httpd_req *req, pattern_fn fn)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    const char *pattern = dt_httpd_req_query(req, "pattern");
    struct dt_fs_ctx c;
    json_t *j = NULL;
    int r;

    if (!path)
        return;
    if (!pattern || !*pattern)
        return dt_agent_error(req, 400, "BAD_REQUEST", "query parameter 'pattern' is required");
    fs_ctx(a, &c);
    r = fn(&c, path, pattern, &j, NULL, &err);
    reply_result(req, r, err, j);
}

static void
route_find(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    route_pattern(a, req, dt_fs_find);
}

static void
route_search(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    route_pattern(a, req, dt_fs_search);
}

static void
replace_body(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_fs_ctx c;
    json_t *j = NULL;

    fs_ctx(a, &c);
    int r = dt_fs_replace(&c, body, &j, &err);

    reply_result(req, r, err, j);
}

static void
route_replace(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, replace_body);
}

/* ---- uploads ---- */

enum part_kind {
    PART_NONE,
    PART_PATH,   /* files[i].path: collect the value */
    PART_FILE,   /* files[i].file or the upload-v2 "file": stream into an upload */
    PART_SKIP,
};

struct upload_ctx {
    struct dt_agent *a;
    struct dt_httpd_req *req;
    struct dt_multipart_parser *mp;
    struct dt_fs_ctx fs;
    char **paths;           /* index -> resolved destination */
    size_t n_paths;
    enum part_kind kind;
    size_t index;
    char value[MAX_PATH_VAL + 1];
    size_t value_len;
    struct dt_fs_upload up;
    bool up_open;
    bool seen_file;         /* upload-v2: only the first "file" part is written */
    char *single_path;      /* upload-v2: the destination from the query */
    bool raw;               /* upload-v2 with a non-multipart body */
    uint64_t bytes;
    int error;              /* first failure: -errno */
    struct dt_error *err;
    int status;             /* HTTP status for the failure */
    const char *code;
    bool replied;
};

static void
upload_free(struct upload_ctx *u)
{
    if (u->up_open)
        dt_fs_create_abort(&u->up);
    for (size_t i = 0; i < u->n_paths; i++)
        free(u->paths[i]);
    free(u->paths);
    free(u->single_path);
    dt_multipart_parser_free(u->mp);
    dt_error_free(u->err);
    free(u);
}

static void
on_upload_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    upload_free(ud);
    malloc_trim(0);
}

static int
upload_fail(struct upload_ctx *u, int status, const char *code, int r)
{
    if (!u->error) {
        u->error = r < 0 ? r : -EIO;
        u->status = status;
        u->code = code;
    }
    if (u->up_open) {
        dt_fs_create_abort(&u->up);
        u->up_open = false;
    }
    return u->error;
}

/* "files[12].path" -> 12, FIELD "path". */
static bool
parse_field(const char *name, size_t *index, const char **field)
{
    const char *p;
    uint64_t v = 0;

    if (strncmp(name, "files[", 6) != 0)
        return false;
    p = name + 6;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t) (*p++ - '0');
        if (v >= MAX_UPLOADS)
            return false;
    }
    if (p[0] != ']' || p[1] != '.')
        return false;
    *index = (size_t) v;
    *field = p + 2;
    return true;
}

static int
begin_file(struct upload_ctx *u, const char *path)
{
    int r = dt_fs_create_begin(&u->fs, path, &u->up, &u->err);
    if (r < 0)
        return upload_fail(u, 0, NULL, r);
    u->up_open = true;
    return 0;
}

static int
on_part_begin(const struct dt_multipart_part *part, void *ud)
{
    struct upload_ctx *u = ud;
    const char *field;
    size_t idx;

    u->kind = PART_SKIP;
    u->value_len = 0;
    if (u->single_path) {
        if (strcmp(part->name, "file") != 0)
            return 0;
        if (u->seen_file)
            return 0; /* only the first "file" part counts */
        u->seen_file = true;
        u->kind = PART_FILE;
        return begin_file(u, u->single_path);
    }
    if (!parse_field(part->name, &idx, &field))
        return 0;
    u->index = idx;
    if (strcmp(field, "path") == 0) {
        u->kind = PART_PATH;
        return 0;
    }
    if (strcmp(field, "file") != 0)
        return 0;
    if (idx >= u->n_paths || !u->paths[idx]) {
        dt_error_set(&u->err, EINVAL, "part files[%zu].file came without a files[%zu].path before it",
                     idx, idx);
        return upload_fail(u, 400, "BAD_REQUEST", -EINVAL);
    }
    u->kind = PART_FILE;
    return begin_file(u, u->paths[idx]);
}

static int
write_data(struct upload_ctx *u, const char *data, size_t len)
{
    int r = write_all(u->up.fd, data, len);
    if (r < 0) {
        dt_error_errno(&u->err, r, "write %s", u->up.path);
        return upload_fail(u, 0, NULL, r);
    }
    u->bytes += len;
    return 0;
}

static int
on_part_data(const char *data, size_t len, void *ud)
{
    struct upload_ctx *u = ud;

    switch (u->kind) {
    case PART_PATH:
        if (u->value_len + len > MAX_PATH_VAL) {
            dt_error_set(&u->err, ENAMETOOLONG, "files[%zu].path is too long", u->index);
            return upload_fail(u, 400, "INVALID_FILE_PATH", -ENAMETOOLONG);
        }
        memcpy(u->value + u->value_len, data, len);
        u->value_len += len;
        return 0;
    case PART_FILE:
        return write_data(u, data, len);
    default:
        return 0;
    }
}

static int
on_part_end(void *ud)
{
    struct upload_ctx *u = ud;
    int r;

    if (u->kind == PART_PATH) {
        char *resolved = NULL;

        u->value[u->value_len] = 0;
        if (memchr(u->value, 0, u->value_len)) {
            dt_error_set(&u->err, EINVAL, "files[%zu].path holds a NUL byte", u->index);
            return upload_fail(u, 400, "INVALID_FILE_PATH", -EINVAL);
        }
        r = dt_fs_resolve(&u->fs, u->value, u->value_len, &resolved, &u->err);
        if (r < 0)
            return upload_fail(u, 400, "INVALID_FILE_PATH", r);
        if (u->index >= u->n_paths) {
            u->paths = xreallocarray(u->paths, u->index + 1, sizeof(char *));
            memset(u->paths + u->n_paths, 0, (u->index + 1 - u->n_paths) * sizeof(char *));
            u->n_paths = u->index + 1;
        }
        free(u->paths[u->index]);
        u->paths[u->index] = resolved;
    } else if (u->kind == PART_FILE && u->up_open) {
        u->up_open = false;
        r = dt_fs_create_commit(&u->up, &u->err);
        if (r < 0)
            return upload_fail(u, 0, NULL, r);
    }
    u->kind = PART_NONE;
    return 0;
}

static const struct dt_multipart_callbacks mp_cbs = {
    .on_part_begin = on_part_begin,
    .on_part_data = on_part_data,
    .on_part_end = on_part_end,
};

static void
upload_reply_error(struct upload_ctx *u)
{
    const char *msg = u->err && u->err->message ? u->err->message : NULL;

    if (u->replied)
        return;
    u->replied = true;
    if (u->status)
        dt_agent_error(u->req, u->status, u->code, "%s", msg ? msg : "bad upload");
    else
        dt_agent_error_errno(u->req, u->error, u->err);
}

static void
upload_finish(struct upload_ctx *u)
{
    json_t *j;

    if (u->replied)
        return;
    u->replied = true;
    if (!u->single_path) {
        dt_agent_ok(u->req);
        return;
    }
    {
        const char *slash = strrchr(u->single_path, '/');
        j = json_pack("{s:o,s:o,s:s,s:I}", "name",
                      dt_json_string_lossy(slash ? slash + 1 : u->single_path,
                                           strlen(slash ? slash + 1 : u->single_path)),
                      "path", dt_json_string_lossy(u->single_path, strlen(u->single_path)), "type",
                      "file", "size", (json_int_t) u->bytes);
    }
    dt_httpd_reply_json(u->req, 200, j);
}

static void
on_upload_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct upload_ctx *u = ud;
    int r;

    if (error < 0) {
        /* The client went away or the body was malformed: nothing half-written stays. */
        (void) upload_fail(u, 400, "BAD_REQUEST", error);
        if (error != -ECONNRESET && !u->err)
            dt_error_set(&u->err, -error, "malformed request body");
        if (error != -ECONNRESET && error != -EFBIG)
            upload_reply_error(u);
        return;
    }
    if (u->error)
        return; /* already failed: drain the rest */
    if (data) {
        if (u->raw)
            r = write_data(u, data, len);
        else {
            r = dt_multipart_feed(u->mp, data, len);
            if (r < 0 && !u->error) {
                dt_error_set(&u->err, EINVAL, "malformed multipart body: %s",
                             dt_multipart_errmsg(u->mp));
                (void) upload_fail(u, r == -E2BIG ? 413 : 400, "BAD_REQUEST", r);
            }
        }
        if (u->error)
            upload_reply_error(u);
        return;
    }
    /* End of the body. */
    if (u->raw) {
        u->up_open = false;
        r = dt_fs_create_commit(&u->up, &u->err);
        if (r < 0)
            (void) upload_fail(u, 0, NULL, r);
    } else if (dt_multipart_finish(u->mp) < 0) {
        dt_error_set(&u->err, EINVAL, "truncated multipart body: %s", dt_multipart_errmsg(u->mp));
        (void) upload_fail(u, 400, "BAD_REQUEST", -EBADMSG);
    } else if (u->single_path && dt_multipart_n_parts(u->mp) > 0 && u->bytes == 0 &&
               !u->up_open && !u->error) {
        /* upload-v2 without a "file" part: nothing was written. */
    }
    if (u->error)
        upload_reply_error(u);
    else
        upload_finish(u);
}

static void
start_upload(struct dt_agent *a, struct dt_httpd_req *req, char *single_path)
{
    const char *ct = dt_httpd_req_header(req, "content-type");
    char boundary[DT_MULTIPART_BOUNDARY_MAX + 1];
    struct upload_ctx *u = xcalloc(1, sizeof(*u));
    int r;

    u->a = a;
    u->req = req;
    u->single_path = single_path;
    fs_ctx(a, &u->fs);
    dt_httpd_req_set_close_cb(req, on_upload_close, u);
    if (ct && dt_multipart_boundary(ct, boundary, sizeof(boundary)) > 0) {
        r = dt_multipart_parser_new(boundary, NULL, &mp_cbs, u, &u->mp);
        if (r < 0)
            return dt_agent_error(req, 400, "BAD_REQUEST", "invalid multipart boundary");
    } else if (single_path) {
        u->raw = true;
        r = begin_file(u, single_path);
        if (r < 0) {
            upload_reply_error(u);
            return;
        }
    } else
        return dt_agent_error(req, 400, "BAD_REQUEST",
                              "expected a multipart/form-data body (Content-Type: %s)",
                              ct ? ct : "none");
    dt_httpd_req_stream_body(req, on_upload_body, u);
}

static void
route_bulk_upload(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    start_upload(a, req, NULL);
}

static void
route_upload_v2(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    char *path = query_path(a, req, "path");

    if (path)
        start_upload(a, req, path);
}

/* ---- downloads ---- */

struct download {
    struct dt_agent *a;
    struct dt_httpd_req *req;
    struct dt_fs_ctx fs;
    char boundary[DT_MULTIPART_NEW_BOUNDARY_LEN + 1];
    json_t *paths;         /* bulk: the requested strings (own reference) */
    size_t next;           /* bulk: next path to open */
    bool first;
    bool multipart;
    bool head_only;        /* HEAD: the response has no body */
    bool pumping;          /* inside pump(): the close callback defers the free */
    bool dead;             /* the request is gone: free when pump() returns */
    int fd;                /* the file being sent, or -1 */
    uint64_t remaining;    /* raw download: bytes promised by Content-Length still to send */
    bool ended;
};

static void
download_free(struct download *d)
{
    safe_close(d->fd);
    json_decref(d->paths);
    free(d);
    malloc_trim(0); /* give the transfer buffers back (main keeps them during transfers) */
}

static void
on_download_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct download *d = ud;

    if (d->pumping) {
        d->dead = true; /* a write failed inside pump(): it frees d on its way out */
        return;
    }
    download_free(d);
}

static void
write_part_header(struct download *d, const char *name, const char *filename, const char *ctype,
                  int64_t len)
{
    ssize_t n = dt_multipart_format_part_header(NULL, 0, d->boundary, d->first, name, filename,
                                                ctype, len);
    char *buf;

    if (n < 0) /* a filename the encoder refuses cannot happen (it encodes everything) */
        return;
    buf = xmalloc((size_t) n + 1);
    dt_multipart_format_part_header(buf, (size_t) n + 1, d->boundary, d->first, name, filename,
                                    ctype, len);
    d->first = false;
    (void) dt_httpd_write_owned(d->req, buf, (size_t) n);
}

static void
write_error_part(struct download *d, const char *filename, int r, const struct dt_error *err)
{
    int e = r < 0 ? -r : r;
    int status = e == ENOENT ? 404 : (e == EACCES || e == EPERM) ? 403 : e == EISDIR || e == EINVAL ? 400 : 500;
    const char *code = e == ENOENT ? "FILE_NOT_FOUND"
                       : (e == EACCES || e == EPERM) ? "FILE_ACCESS_DENIED"
                       : status == 400 ? "INVALID_FILE_PATH" : "FILE_READ_FAILED";
    json_t *j = json_pack("{s:s,s:i,s:s,s:s}", "message", err && err->message ? err->message : strerror(e),
                          "statusCode", status, "code", code, "source", DT_AGENT_SOURCE);
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    write_part_header(d, "error", filename, "application/json", (int64_t) strlen(s));
    if (d->dead) {
        free(s);
        return;
    }
    (void) dt_httpd_write_owned(d->req, s, strlen(s));
}

/* Open the next requested path: a file part header (or an error part). */
static void
open_next(struct download *d)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = NULL;
    const char *want = json_string_value(json_array_get(d->paths, d->next));
    struct stat st;
    int r;

    d->next++;
    r = dt_fs_resolve(&d->fs, want, (size_t) -1, &path, &err);
    if (r == 0)
        r = dt_fs_open_read(&d->fs, path, &d->fd, &st, &err);
    if (r < 0) {
        d->fd = -1;
        write_error_part(d, want, r, err);
        return;
    }
    write_part_header(d, "file", want, "application/octet-stream", (int64_t) st.st_size);
}

static void pump_locked(struct download *d);

static void
pump(struct download *d)
{
    d->pumping = true;
    pump_locked(d);
    d->pumping = false;
    if (d->dead)
        download_free(d);
}

static void
pump_locked(struct download *d)
{
    if (d->head_only && !d->ended) {
        d->ended = true;
        dt_httpd_end(d->req);
        return;
    }
    while (!d->ended && !d->dead && dt_httpd_queued(d->req) < HIGH_WATER) {
        if (d->fd < 0) {
            if (d->multipart && d->next < json_array_size(d->paths)) {
                open_next(d);
                continue;
            }
            if (d->multipart) {
                char close_buf[DT_MULTIPART_BOUNDARY_MAX + 16];
                ssize_t n = dt_multipart_format_close(close_buf, sizeof(close_buf), d->boundary);
                if (n > 0)
                    (void) dt_httpd_write(d->req, close_buf, (size_t) n);
            }
            d->ended = true;
            dt_httpd_end(d->req);
            return;
        }
        {
            size_t want = READ_CHUNK;
            char *buf;
            ssize_t n;

            if (!d->multipart && d->remaining < want)
                want = (size_t) d->remaining; /* a file that grew: send what we announced */
            buf = xmalloc(READ_CHUNK);
            n = want ? read(d->fd, buf, want) : 0;
            if (n <= 0) {
                free(buf);
                d->fd = safe_close(d->fd);
                if ((n < 0 || d->remaining > 0) && !d->multipart) {
                    /* A read error or a file that shrank under a raw download: cut the
                     * connection so the client sees a short body, never a wrong one. */
                    d->ended = true;
                    dt_httpd_abort(d->req);
                    return;
                }
                continue;
            }
            d->remaining -= d->multipart ? 0 : (uint64_t) n;
            if (dt_httpd_write_owned(d->req, buf, (size_t) n) < 0)
                return;
        }
    }
}

static void
on_download_drain(struct dt_httpd_req *req, void *ud)
{
    pump(ud);
}

static struct download *
download_new(struct dt_agent *a, struct dt_httpd_req *req)
{
    struct download *d = xcalloc(1, sizeof(*d));

    d->a = a;
    d->req = req;
    d->fd = -1;
    d->first = true;
    d->head_only = strcmp(dt_httpd_req_method(req), "HEAD") == 0;
    fs_ctx(a, &d->fs);
    dt_httpd_req_set_close_cb(req, on_download_close, d);
    dt_httpd_req_set_drain_cb(req, on_download_drain, d);
    return d;
}

static void
bulk_download(struct dt_agent *a, struct dt_httpd_req *req, json_t *body, const char *const *params)
{
    json_t *paths = json_object_get(body, "paths"), *v;
    struct download *d;
    char ctype[DT_MULTIPART_NEW_BOUNDARY_LEN + 64];
    struct dt_http_header h = { .name = "Content-Type", .value = ctype };
    size_t i;

    if (!json_is_array(paths) || json_array_size(paths) == 0)
        return dt_agent_error(req, 400, "BAD_REQUEST", "paths must be a non-empty array of strings");
    if (json_array_size(paths) > MAX_PATHS)
        return dt_agent_error(req, 400, "BAD_REQUEST", "at most %u paths per request", MAX_PATHS);
    json_array_foreach(paths, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return dt_agent_error(req, 400, "INVALID_FILE_PATH",
                                  "paths[%zu] must be a non-empty string without NUL", i);
    }
    d = download_new(a, req);
    d->multipart = true;
    d->paths = json_incref(paths);
    if (dt_multipart_new_boundary(d->boundary) < 0)
        return dt_agent_error(req, 500, "INTERNAL_SERVER_ERROR", "no randomness for a boundary");
    snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", d->boundary);
    if (dt_httpd_start(req, 200, &h, 1, -1) < 0)
        return;
    pump(d);
}

static void
route_bulk_download(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    dt_agent_read_json(a, req, params, bulk_download);
}

static void
route_download(struct dt_agent *a, struct dt_httpd_req *req, const char *const *params)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *path = query_path(a, req, "path");
    struct dt_http_header h[2];
    _cleanup_free_ char *disp = NULL;
    struct download *d;
    const char *base;
    struct stat st;
    int fd = -1, r;

    if (!path)
        return;
    d = download_new(a, req);
    r = dt_fs_open_read(&d->fs, path, &fd, &st, &err);
    if (r < 0)
        return dt_agent_error_errno(req, r, err);
    d->fd = fd;
    d->remaining = (uint64_t) st.st_size;
    base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* Only a plain ASCII name goes into the header as is; others get no filename hint. */
    disp = xasprintf("attachment; filename=\"%s\"",
                     strpbrk(base, "\"\\\r\n") || !dt_ws_utf8_valid((const uint8_t *) base, strlen(base))
                         ? "download"
                         : base);
    h[0] = (struct dt_http_header) { .name = "Content-Type", .value = "application/octet-stream" };
    h[1] = (struct dt_http_header) { .name = "Content-Disposition", .value = disp };
    if (dt_httpd_start(req, 200, h, 2, (int64_t) st.st_size) < 0)
        return;
    pump(d);
}

const struct dt_route dt_files_routes[] = {
    { "GET", "/files", route_list },
    { "DELETE", "/files", route_delete },
    { "GET", "/files/info", route_info },
    { "POST", "/files/folder", route_mkdir },
    { "POST", "/files/move", route_move },
    { "POST", "/files/permissions", route_permissions },
    { "GET", "/files/find", route_find },
    { "GET", "/files/search", route_search },
    { "POST", "/files/replace", route_replace },
    { "POST", "/files/bulk-upload", route_bulk_upload },
    { "POST", "/files/upload", route_bulk_upload },
    { "POST", "/files/upload-v2", route_upload_v2 },
    { "POST", "/files/bulk-download", route_bulk_download },
    { "GET", "/files/download", route_download },
    {},
};
