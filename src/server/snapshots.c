/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots in daytonad: the /api/snapshots API (contract §2.7), the image jobs that make them
 * (`daytonad image-job` child processes: pull, build, import, the default snapshot), their build
 * logs (followable), and what sandbox creation asks of them. The server stays the only writer
 * of the store: a job reports through its exit status, its stdout (the image JSON) and its
 * stderr (the build log). See docs/design/images.md. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/image.h"
#include "dt/log.h"
#include "dt/macros.h"
#include "dt/oci.h"
#include "dt/parse-util.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "server/objstore.h"
#include "server/registries.h"
#include "server/runner.h"
#include "server/server-int.h"
#include "dt/banned.h"

#define MAX_DOCKERFILE   (1u << 20)
#define MAX_CPU          4
#define MAX_MEMORY_GIB   8
#define MAX_DISK_GIB     10
#define FOLLOW_POLL_MS   200
#define LOG_CHUNK        (64 * 1024)
#define DEFAULT_NAME     "daytona-default"
#define FORK_PREFIX      "fork-of-"

struct dt_snapshots;

struct job {
    struct job *next;
    struct dt_snapshots *sn;
    char *snapshot_id;
    bool build;          /* failures are build_failed, not error */
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t wr;
    char *spec;          /* the job's stdin */
    int64_t exit_status;
    int term_signal;
    char *sandbox_id;     /* a sandbox snapshot: the sandbox, to give back its state */
    enum dt_sandbox_state sandbox_state;
    bool resume;          /* it was running: paused for the copy */
    bool exited;
    int closing;         /* handles still closing */
};

struct follower {
    struct follower *next;
    struct dt_snapshots *sn;
    struct call *c;
    struct dt_httpd_req *req;
    char *snapshot_id;
    int fd;
    bool follow;
    uv_timer_t *timer;
};

struct dt_snapshots {
    struct dt_server *s;
    struct dt_imgstore *images;
    char *dir;           /* DATA_DIR/snapshots: <id>/build.log, <id>/result.json */
    char *self;          /* our own binary, for image jobs */
    struct job *jobs;
    struct follower *followers;
    uv_timer_t *progress;  /* echoes the default snapshot's build to our log */
    char *progress_id;     /* that snapshot */
    char *progress_last;
};

/* ---- rendering ---- */

static json_t *
snapshot_json(const struct dt_store_snapshot *sn)
{
    json_t *o = json_object();
    dt_json_set_str(o, "id", sn->id);
    dt_json_set_str(o, "organizationId", sn->organization_id);
    json_object_set_new(o, "general", json_boolean(sn->general));
    dt_json_set_str(o, "name", sn->name);
    dt_json_set_str(o, "imageName", sn->image_name ? sn->image_name : "");
    dt_json_set_str(o, "state", dt_snapshot_state_to_string(sn->state));
    /* Daytona reports sizes in GB. */
    json_object_set_new(o, "size", sn->size_bytes >= 0
                                           ? json_real((double) sn->size_bytes / 1e9)
                                           : json_null());
    json_object_set_new(o, "entrypoint", dt_json_or(sn->entrypoint_json, json_null()));
    json_object_set_new(o, "cpu", json_integer(sn->cpu));
    json_object_set_new(o, "gpu", json_integer(sn->gpu));
    json_object_set_new(o, "mem", json_integer(sn->memory_gib));
    json_object_set_new(o, "disk", json_integer(sn->disk_gib));
    dt_json_set_str(o, "errorReason", sn->error_reason);
    dt_json_set_time(o, "createdAt", sn->created_at_ms);
    dt_json_set_time(o, "updatedAt", sn->updated_at_ms);
    if (sn->last_used_at_ms > 0)
        dt_json_set_time(o, "lastUsedAt", sn->last_used_at_ms);
    else
        json_object_set_new(o, "lastUsedAt", json_null());
    if (sn->build_info_json)
        json_object_set_new(o, "buildInfo", dt_json_or(sn->build_info_json, json_null()));
    json_object_set_new(o, "sourceSandboxId", json_null());
    json_object_set_new(o, "regionIds", json_array());
    return o;
}

static char *
snapshot_dir(struct dt_snapshots *sn, const char *id)
{
    return xasprintf("%s/%s", sn->dir, id);
}

/* ---- jobs ---- */

static struct job *
find_job(struct dt_snapshots *sn, const char *snapshot_id)
{
    for (struct job *j = sn->jobs; j; j = j->next)
        if (strcmp(j->snapshot_id, snapshot_id) == 0 && !j->exited)
            return j;
    return NULL;
}

static void
job_free(struct job *j)
{
    free(j->sandbox_id);
    free(j->snapshot_id);
    free(j->spec);
    free(j);
}

static void
job_unlink(struct job *j)
{
    for (struct job **p = &j->sn->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

static void
job_handle_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    if (--j->closing == 0)
        job_free(j);
}

/* The last non-empty line of the log, without a leading "error: ": the reason a job failed. */
static char *
last_log_line(const char *log_path)
{
    _cleanup_close_ int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    char buf[4096];
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0)
        return NULL;
    off_t off = st.st_size > (off_t) sizeof(buf) - 1 ? st.st_size - (off_t) sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, off);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    if (strncmp(line, "error: ", 7) == 0)
        line += 7;
    return *line ? xstrdup(line) : NULL;
}

static void wake_followers(struct dt_snapshots *sn, const char *snapshot_id);
static void gc_layers(struct dt_snapshots *sn);

static void
job_finish(struct job *j)
{
    struct dt_snapshots *sn = j->sn;
    struct dt_server *s = sn->s;
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *dir = snapshot_dir(sn, j->snapshot_id);
    _cleanup_free_ char *log = xasprintf("%s/build.log", dir);
    _cleanup_free_ char *json = NULL;
    struct dt_image img;
    int r;

    dt_image_init(&img);
    if (dt_store_snapshot_find(s->store, NULL, j->snapshot_id, &snap, NULL) < 0)
        return; /* deleted meanwhile */
    if (snap->state == DT_SNAPSHOT_REMOVING)
        return;
    if (j->exit_status == 0 && j->term_signal == 0) {
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = dfd < 0 ? -errno : read_file_at(dfd, "result.json", 16u << 20, &json, NULL);
        if (r < 0)
            r = dt_error_errno(&err, r, "read the result of the image job");
        else
            r = dt_image_from_json(json, &img, &err);
        if (r >= 0) {
            free(snap->image_json);
            snap->image_json = dt_image_to_json(&img);
            snap->size_bytes = (int64_t) img.size_bytes;
            if (!snap->entrypoint_json && (img.entrypoint || img.cmd)) {
                json_t *a = json_array();
                for (char **v = img.entrypoint ? img.entrypoint : img.cmd; v && *v; v++)
                    json_array_append_new(a, json_string(*v));
                snap->entrypoint_json = json_dumps(a, JSON_COMPACT);
                json_decref(a);
            }
            snap->state = DT_SNAPSHOT_ACTIVE;
            free(snap->error_reason);
            snap->error_reason = NULL;
            /* An imported archive is in the store now. */
            _cleanup_free_ char *upload = xasprintf("%s/upload.tar", dir);
            (void) unlink(upload);
        } else {
            snap->state = DT_SNAPSHOT_ERROR;
            free(snap->error_reason);
            snap->error_reason = xstrdup(err->message);
        }
    } else {
        _cleanup_free_ char *why = last_log_line(log);
        snap->state = j->build ? DT_SNAPSHOT_BUILD_FAILED : DT_SNAPSHOT_ERROR;
        free(snap->error_reason);
        if (j->term_signal)
            snap->error_reason = xasprintf("the image job was killed by signal %d", j->term_signal);
        else
            snap->error_reason = why ? TAKE_PTR(why) : xstrdup("the image job failed");
    }
    dt_image_done(&img);
    dt_error_freep(&err);
    if (dt_store_snapshot_update(s->store, snap, &err) < 0) {
        log_warning("snapshot %s: %s", snap->name, err->message);
        return;
    }
    if (snap->general)
        log_info("snapshot %s: %s%s%s", snap->name, dt_snapshot_state_to_string(snap->state),
                    snap->error_reason ? ": " : "", snap->error_reason ? snap->error_reason : "");
    dt_server_snapshot_ready(s, snap);
}

static void
on_job_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct job *j = p->data;

    j->exit_status = exit_status;
    j->term_signal = term_signal;
    j->exited = true;
    if (j->sandbox_id) {
        /* A sandbox snapshot: the copy is done, the sandbox goes on as it was. */
        struct dt_server *s = j->sn->s;
        struct dt_store_sandbox *sb = NULL;
        if (j->resume)
            (void) dt_runner_resume(s->runner, j->sandbox_id, NULL);
        if (dt_store_sandbox_find(s->store, NULL, j->sandbox_id, &sb, NULL) == 0) {
            if (sb->state == DT_SANDBOX_SNAPSHOTTING)
                (void) dt_server_save_state(s, sb, j->sandbox_state, NULL, NULL);
            dt_store_sandbox_free(sb);
        }
    }
    job_finish(j);
    wake_followers(j->sn, j->snapshot_id);
    job_unlink(j);
    uv_close((uv_handle_t *) &j->proc, job_handle_closed);
    if (!j->sn->jobs)
        gc_layers(j->sn);
}

static void
on_spec_written(uv_write_t *w, int status)
{
    struct job *j = w->data;
    /* EOF for the job; at shutdown the handle may be closing already (status ECANCELED). */
    if (!uv_is_closing((uv_handle_t *) &j->in))
        uv_close((uv_handle_t *) &j->in, job_handle_closed);
}

/* Start the job of SNAPSHOT_ID with SPEC (JSON, stolen), EXTRA_FD (>= 0) as its fd 3. Its log
 * is truncated. Returns the job (NULL when one runs already) in *RET (may be NULL). */
static int
job_start_full(struct dt_snapshots *sn, const char *snapshot_id, json_t *spec, bool build,
               int extra_fd, struct job **ret, struct dt_error **err)
{
    _cleanup_free_ char *dir = snapshot_dir(sn, snapshot_id);
    _cleanup_close_ int logfd = -EBADF, outfd = -EBADF;
    struct job *j;
    int r;

    if (ret)
        *ret = NULL;
    if (find_job(sn, snapshot_id)) {
        json_decref(spec);
        return 0;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        json_decref(spec);
        return dt_error_errno(err, errno, "create '%s'", dir);
    }
    _cleanup_free_ char *log = xasprintf("%s/build.log", dir);
    _cleanup_free_ char *result = xasprintf("%s/result.json", dir);
    logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    outfd = open(result, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0 || outfd < 0) {
        json_decref(spec);
        return dt_error_errno(err, errno, "open the logs of snapshot %s", snapshot_id);
    }
    json_object_set_new(spec, "dataDir", json_string(sn->s->data_dir));
    json_t *ins = json_array();
    for (char *const *h = sn->s->cfg.insecure_registries; h && *h; h++)
        json_array_append_new(ins, json_string(*h));
    json_object_set_new(spec, "insecureRegistries", ins);
    j = xcalloc(1, sizeof(*j));
    j->sn = sn;
    j->snapshot_id = xstrdup(snapshot_id);
    j->build = build;
    j->spec = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    uv_pipe_init(sn->s->loop, &j->in, 0);
    j->in.data = j;
    j->proc.data = j;
    char *args[] = { sn->self, (char *) "image-job", NULL };
    uv_stdio_container_t stdio[4] = {
        { .flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *) &j->in },
        { .flags = UV_INHERIT_FD, .data.fd = outfd },
        { .flags = UV_INHERIT_FD, .data.fd = logfd },
        { .flags = UV_INHERIT_FD, .data.fd = extra_fd },
    };
    uv_process_options_t o = {
        .exit_cb = on_job_exit,
        .file = sn->self,
        .args = args,
        .stdio_count = extra_fd >= 0 ? 4 : 3,
        .stdio = stdio,
    };
    r = uv_spawn(sn->s->loop, &j->proc, &o);
    if (r < 0) {
        j->closing = 2;
        uv_close((uv_handle_t *) &j->in, job_handle_closed);
        uv_close((uv_handle_t *) &j->proc, job_handle_closed);
        return dt_error_errno(err, -r, "start the image job of snapshot %s", snapshot_id);
    }
    j->closing = 2;
    j->next = sn->jobs;
    sn->jobs = j;
    uv_buf_t b = uv_buf_init(j->spec, (unsigned) strlen(j->spec));
    j->wr.data = j;
    r = uv_write(&j->wr, (uv_stream_t *) &j->in, &b, 1, on_spec_written);
    if (r < 0) {
        uv_close((uv_handle_t *) &j->in, job_handle_closed);
        uv_process_kill(&j->proc, SIGKILL);
    }
    if (ret)
        *ret = j;
    return 0;
}

static int
job_start(struct dt_snapshots *sn, const char *snapshot_id, json_t *spec, bool build,
          struct dt_error **err)
{
    return job_start_full(sn, snapshot_id, spec, build, -1, NULL, err);
}

/* The job that makes SNAP, from its record. */
static int
start_snapshot_job(struct dt_snapshots *sn, struct dt_store_snapshot *snap, struct dt_error **err)
{
    json_t *spec;
    bool build = false;

    if (snap->general && strcmp(snap->name, DEFAULT_NAME) == 0) {
        spec = json_pack("{s:s}", "kind", "default");
    } else if (snap->build_info_json) {
        json_t *bi = json_loads(snap->build_info_json, 0, NULL);
        const char *df = json_string_value(json_object_get(bi, "dockerfileContent"));
        spec = json_pack("{s:s, s:s}", "kind", "build", "dockerfile", df ? df : "");
        json_t *ctxs = json_array(), *h;
        size_t hi;
        json_array_foreach(json_object_get(bi, "contextHashes"), hi, h) {
            char *path = dt_objstore_context_path(sn->s->objstore, snap->organization_id,
                                                  json_string_value(h));
            if (path)
                json_array_append_new(ctxs, json_string(path));
            free(path);
        }
        json_object_set_new(spec, "contexts", ctxs);
        /* FROM may name one of the organization's active snapshots. */
        struct dt_store_snapshot_array all = {0};
        uint64_t total = 0;
        json_t *bases = json_object();
        if (dt_store_snapshot_list(sn->s->store, snap->organization_id, 1, 1000, &all, &total,
                                   NULL) >= 0)
            for (size_t i = 0; i < all.n; i++)
                if (all.items[i]->state == DT_SNAPSHOT_ACTIVE && all.items[i]->image_json &&
                    !json_object_get(bases, all.items[i]->name))
                    json_object_set_new(bases, all.items[i]->name,
                                        json_loads(all.items[i]->image_json, 0, NULL));
        dt_store_snapshot_array_free(&all);
        json_object_set_new(spec, "bases", bases);
        json_decref(bi);
        build = true;
    } else if (snap->image_name) {
        spec = json_pack("{s:s, s:s}", "kind", "pull", "image", snap->image_name);
        /* The organization's credentials for that registry (the docker-registry API), over
         * the job's stdin only. */
        struct dt_image_ref *ref = NULL;
        if (dt_image_ref_parse(snap->image_name, &ref, NULL) >= 0) {
            char *user = NULL, *pw = NULL;
            if (dt_registries_credentials(sn->s, snap->organization_id, ref->registry, &user, &pw,
                                          NULL) >= 0) {
                json_object_set_new(spec, "auth", json_pack("{s:s, s:s, s:s}", "registry",
                                                             ref->registry, "username", user,
                                                             "password", pw));
                explicit_bzero(pw, strlen(pw));
            }
            free(user);
            free(pw);
            dt_image_ref_free(ref);
        }
    } else {
        return dt_error_set(err, EINVAL, "snapshot '%s' has neither an image nor a build",
                            snap->name);
    }
    snap->state = build ? DT_SNAPSHOT_BUILDING : DT_SNAPSHOT_PULLING;
    free(snap->error_reason);
    snap->error_reason = NULL;
    int r = dt_store_snapshot_update(sn->s->store, snap, err);
    if (r < 0) {
        json_decref(spec);
        return r;
    }
    return job_start(sn, snap->id, spec, build, err);
}

/* ---- garbage collection ---- */

static void
keep_image_layers(char ***keep, const char *image_json)
{
    struct dt_image img;
    if (!image_json || dt_image_from_json(image_json, &img, NULL) < 0)
        return;
    for (char **l = img.layers; l && *l; l++)
        strv_push(keep, *l);
    dt_image_done(&img);
}

/* Remove layers no snapshot and no sandbox uses. Only while no job runs: a job's finished
 * layers are not in any record until it reports. */
static void
gc_layers(struct dt_snapshots *sn)
{
    struct dt_store_snapshot_array all = {0};
    struct dt_store_sandbox_array sbs = {0};
    _cleanup_strv_free_ char **keep = NULL;
    uint64_t total = 0, freed = 0;

    if (sn->jobs)
        return;
    if (dt_store_snapshot_list(sn->s->store, NULL, 1, 1u << 20, &all, &total, NULL) < 0)
        return;
    for (size_t i = 0; i < all.n; i++)
        keep_image_layers(&keep, all.items[i]->image_json);
    dt_store_snapshot_array_free(&all);
    /* A sandbox keeps its layers even when its snapshot is gone: its plan names their paths. */
    if (dt_store_sandbox_list_all(sn->s->store, NULL, &sbs, NULL) < 0)
        return;
    for (size_t i = 0; i < sbs.n; i++) {
        _cleanup_free_ char *plan = xasprintf("%s/sandboxes/%s/plan", sn->s->data_dir,
                                              sbs.items[i]->id);
        _cleanup_free_ char *text = NULL;
        json_t *p, *layers, *l;
        size_t k;
        if (read_file_at(AT_FDCWD, plan, 1u << 20, &text, NULL) < 0)
            continue;
        p = json_loads(text, 0, NULL);
        layers = json_object_get(p, "layers");
        json_array_foreach(layers, k, l) {
            const char *path = json_string_value(l), *slash = path ? strrchr(path, '/') : NULL;
            if (slash && dt_layer_id_is_valid(slash + 1))
                strv_push(&keep, slash + 1);
        }
        json_decref(p);
    }
    dt_store_sandbox_array_free(&sbs);
    if (!keep)
        keep = xcalloc(1, sizeof(char *));
    if (dt_imgstore_gc(sn->images, keep, &freed, NULL) >= 0 && freed)
        log_info("image store: removed unused layers (%llu bytes)", (unsigned long long) freed);
}

/* ---- build logs ---- */

static void follower_pump(struct follower *f);

static void
follower_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void
follower_free(struct follower *f)
{
    for (struct follower **p = &f->sn->followers; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->timer)
        uv_close((uv_handle_t *) f->timer, follower_timer_closed);
    safe_close(f->fd);
    free(f->snapshot_id);
    free(f);
}

static void
on_follower_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct follower *f = ud;
    struct call *c = f->c;
    follower_free(f);
    dt_call_closed(req, completed, c);
}

static void
on_follower_timer(uv_timer_t *t)
{
    follower_pump(t->data);
}

static void
on_follower_drain(struct dt_httpd_req *req, void *ud)
{
    follower_pump(ud);
}

/* Send what the log has; end when the job is over (or when not following). */
static void
follower_pump(struct follower *f)
{
    char *buf = xmalloc(LOG_CHUNK);
    ssize_t n;

    while (dt_httpd_queued(f->req) < 4 * LOG_CHUNK) {
        n = read(f->fd, buf, LOG_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dt_httpd_write(f->req, buf, (size_t) n) < 0) {
            free(buf);
            return;
        }
    }
    free(buf);
    if (dt_httpd_queued(f->req) >= 4 * LOG_CHUNK)
        return; /* the drain callback goes on */
    if (!f->follow || !find_job(f->sn, f->snapshot_id)) {
        /* Everything up to the job's end is in the file: one last read above got it. */
        if (f->timer)
            uv_timer_stop(f->timer);
        dt_httpd_end(f->req);
        return;
    }
    uv_timer_start(f->timer, on_follower_timer, FOLLOW_POLL_MS, 0);
}

static void
wake_followers(struct dt_snapshots *sn, const char *snapshot_id)
{
    for (struct follower *f = sn->followers, *next; f; f = next) {
        next = f->next;
        if (strcmp(f->snapshot_id, snapshot_id) == 0)
            follower_pump(f);
    }
}

static void
serve_log(struct dt_snapshots *sn, struct call *c, const struct dt_store_snapshot *snap)
{
    _cleanup_free_ char *log = xasprintf("%s/%s/build.log", sn->dir, snap->id);
    const char *fq = dt_httpd_req_query(c->req, "follow");
    int fd = open(log, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno != ENOENT)
            return dt_api_error(c->req, 500, "INTERNAL_SERVER_ERROR", "open the build log: %s",
                                strerror(errno));
        /* Nothing made it yet (an active general snapshot, say): an empty log. */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    struct follower *f = xcalloc(1, sizeof(*f));
    f->sn = sn;
    f->c = c;
    f->req = c->req;
    f->fd = fd;
    f->snapshot_id = xstrdup(snap->id);
    f->follow = fq && (strcmp(fq, "true") == 0 || strcmp(fq, "1") == 0);
    f->timer = xcalloc(1, sizeof(*f->timer));
    uv_timer_init(sn->s->loop, f->timer);
    f->timer->data = f;
    f->next = sn->followers;
    sn->followers = f;
    const struct dt_http_header h[] = {
        { .name = "Content-Type", .value = "text/plain; charset=utf-8" },
        { .name = "Cache-Control", .value = "no-cache" },
    };
    dt_httpd_req_set_close_cb(c->req, on_follower_close, f);
    dt_httpd_req_set_drain_cb(c->req, on_follower_drain, f);
    if (dt_httpd_start(c->req, 200, h, ELEMENTSOF(h), -1) < 0)
        return;
    follower_pump(f);
}

/* ---- API ---- */

static struct dt_store_snapshot *
find_snapshot(struct call *c, const char *id_or_name)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_snapshot *snap = NULL;
    int r = dt_store_snapshot_find(c->s->store, c->org, id_or_name, &snap, &err);

    if (r == -ENOENT) {
        dt_api_error(c->req, 404, "NOT_FOUND", "snapshot '%s' not found", id_or_name);
        return NULL;
    }
    if (r < 0) {
        dt_api_error_errno(c->req, r, err);
        return NULL;
    }
    return snap;
}

/* Light checks of an image reference before a job resolves it properly. */
static bool
image_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 512)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) s[i] <= ' ' || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
            return false;
    return true;
}

/* The resources of a snapshot from a create body; -1 after answering 400. */
static int
get_resources(struct call *c, json_t *body, struct dt_store_snapshot *snap)
{
    int64_t v;
    int r;

    snap->cpu = 1;
    snap->memory_gib = 1;
    snap->disk_gib = 3;
    if ((r = dt_api_get_int(c, body, "cpu", 1, MAX_CPU, &v)) < 0)
        return -1;
    if (r)
        snap->cpu = v;
    if ((r = dt_api_get_int(c, body, "memory", 1, MAX_MEMORY_GIB, &v)) < 0)
        return -1;
    if (r)
        snap->memory_gib = v;
    if ((r = dt_api_get_int(c, body, "disk", 1, MAX_DISK_GIB, &v)) < 0)
        return -1;
    if (r)
        snap->disk_gib = v;
    if ((r = dt_api_get_int(c, body, "gpu", 0, 0, &v)) < 0)
        return -1;
    return 0;
}

/* A buildInfo object, validated, as compact JSON; NULL after answering 400. */
static char *
get_build_info(struct call *c, json_t *bi)
{
    json_t *df = json_object_get(bi, "dockerfileContent");
    json_t *hashes = json_object_get(bi, "contextHashes"), *h;
    size_t i;

    if (!json_is_object(bi) || !json_is_string(df) || json_string_length(df) == 0 ||
        json_string_length(df) > MAX_DOCKERFILE ||
        strlen(json_string_value(df)) != json_string_length(df)) {
        dt_api_error(c->req, 400, "BAD_REQUEST",
                     "buildInfo.dockerfileContent must be a non-empty string of at most 1 MiB");
        return NULL;
    }
    if (hashes && !json_is_null(hashes)) {
        if (!json_is_array(hashes) || json_array_size(hashes) > 256) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "buildInfo.contextHashes must be an array");
            return NULL;
        }
        json_array_foreach(hashes, i, h) {
            if (!json_is_string(h) || json_string_length(h) > 128) {
                dt_api_error(c->req, 400, "BAD_REQUEST",
                             "buildInfo.contextHashes must hold short strings");
                return NULL;
            }
            /* Uploaded by the SDK to our object storage (contract §2.8) before this call. */
            _cleanup_free_ char *path = dt_objstore_context_path(c->s->objstore, c->org,
                                                                 json_string_value(h));
            if (!path) {
                dt_api_error(c->req, 400, "BAD_REQUEST", "build context '%s' was not uploaded",
                             json_string_value(h));
                return NULL;
            }
        }
    }
    json_t *o = json_pack("{s:O}", "dockerfileContent", df);
    if (hashes && json_is_array(hashes))
        json_object_set(o, "contextHashes", hashes);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static void
create_snapshot(struct call *c, json_t *body, const char *const *params)
{
    struct dt_snapshots *sn = c->s->snapshots;
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name = json_string_value(json_object_get(body, "name"));
    json_t *image = json_object_get(body, "imageName");
    json_t *bi = json_object_get(body, "buildInfo");
    json_t *ep = json_object_get(body, "entrypoint"), *e;
    size_t i;
    int r;

    if (!name || dt_store_check_name("snapshot name", name, &err) < 0)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "%s",
                            err ? err->message : "name is required");
    if (strcmp(name, DEFAULT_NAME) == 0)
        return dt_api_error(c->req, 409, "CONFLICT", "snapshot name '%s' is reserved", name);
    if ((!image || json_is_null(image)) && (!bi || json_is_null(bi)))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "imageName or buildInfo is required");
    if (image && !json_is_null(image)) {
        struct dt_image_ref *ref = NULL;
        if (!json_is_string(image) || !image_name_ok(json_string_value(image)))
            return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid imageName");
        if (dt_image_ref_parse(json_string_value(image), &ref, &err) < 0)
            return dt_api_error(c->req, 400, "BAD_REQUEST", "%s", err->message);
        dt_image_ref_free(ref);
    }
    if (ep && !json_is_null(ep)) {
        if (!json_is_array(ep) || json_array_size(ep) > 256)
            return dt_api_error(c->req, 400, "BAD_REQUEST", "entrypoint must be an array of strings");
        json_array_foreach(ep, i, e) if (!json_is_string(e))
            return dt_api_error(c->req, 400, "BAD_REQUEST", "entrypoint must be an array of strings");
    }
    snap = xcalloc(1, sizeof(*snap));
    snap->organization_id = xstrdup(c->org);
    snap->name = xstrdup(name);
    snap->state = DT_SNAPSHOT_PENDING;
    snap->size_bytes = -1;
    if (get_resources(c, body, snap) < 0)
        return;
    if (bi && !json_is_null(bi)) {
        if (!(snap->build_info_json = get_build_info(c, bi)))
            return;
    } else
        snap->image_name = xstrdup(json_string_value(image));
    if (ep && json_is_array(ep) && json_array_size(ep) > 0)
        snap->entrypoint_json = json_dumps(ep, JSON_COMPACT);
    r = dt_store_snapshot_insert(c->s->store, snap, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    r = start_snapshot_job(sn, snap, &err);
    if (r < 0) {
        snap->state = DT_SNAPSHOT_ERROR;
        snap->error_reason = xstrdup(err->message);
        (void) dt_store_snapshot_update(c->s->store, snap, NULL);
    }
    dt_httpd_reply_json(c->req, 200, snapshot_json(snap));
}

/* POST /snapshots/push?name=NAME[&image=REF]: a `docker save` / OCI archive as the body (our
 * extension, what `daytona snapshot push` uses), streamed to disk, then imported by a job. */
#define MAX_UPLOAD (64ull << 30)

struct upload {
    struct call *c;
    struct dt_store_snapshot *snap;
    int fd;
    uint64_t n;
    bool failed;
};

static void
upload_fail(struct upload *u, int status, const char *msg)
{
    struct dt_snapshots *sn = u->c->s->snapshots;
    _cleanup_free_ char *dir = snapshot_dir(sn, u->snap->id);

    u->failed = true;
    u->fd = safe_close(u->fd);
    (void) dt_store_snapshot_delete(u->c->s->store, u->snap->id, NULL);
    (void) rm_rf_at(AT_FDCWD, dir);
    if (status)
        dt_api_error(u->c->req, status, status == 413 ? "PAYLOAD_TOO_LARGE"
                                        : status == 507 ? "INSUFFICIENT_STORAGE" : "BAD_REQUEST",
                     "%s", msg);
}

static void
on_upload_close(struct dt_httpd_req *req, bool completed, void *ud)
{
    struct upload *u = ud;
    if (u->fd >= 0 && !u->failed)
        upload_fail(u, 0, ""); /* the client went away mid-upload: nothing stays */
    dt_store_snapshot_free(u->snap);
    struct call *c = u->c;
    free(u);
    dt_call_closed(req, completed, c);
}

static void
on_upload_body(struct dt_httpd_req *req, int error, const char *data, size_t len, void *ud)
{
    struct upload *u = ud;
    struct dt_snapshots *sn = u->c->s->snapshots;
    _cleanup_error_ struct dt_error *err = NULL;

    if (u->failed)
        return;
    if (error < 0)
        return upload_fail(u, 0, "");
    if (len > 0) {
        u->n += len;
        if (u->n > MAX_UPLOAD)
            return upload_fail(u, 413, "the archive is larger than 64 GiB");
        if (write_all(u->fd, data, len) < 0)
            return upload_fail(u, 507, strerror(errno));
        return;
    }
    /* The end of the body. */
    u->fd = safe_close(u->fd);
    if (u->n == 0)
        return upload_fail(u, 400, "the request body must be the image archive");
    _cleanup_free_ char *path = xasprintf("%s/%s/upload.tar", sn->dir, u->snap->id);
    const char *image = dt_httpd_req_query(req, "image");
    json_t *spec = json_pack("{s:s, s:s, s:s?}", "kind", "import", "archive", path, "name",
                             image && *image ? image : NULL);
    u->snap->state = DT_SNAPSHOT_PULLING;
    if (dt_store_snapshot_update(u->c->s->store, u->snap, &err) < 0 ||
        job_start(sn, u->snap->id, spec, false, &err) < 0) {
        dt_api_error_errno(req, -ENOMEM, err);
        return;
    }
    dt_httpd_reply_json(req, 200, snapshot_json(u->snap));
}

static void
push_snapshot(struct call *c)
{
    struct dt_snapshots *sn = c->s->snapshots;
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name = dt_httpd_req_query(c->req, "name");
    const char *image = dt_httpd_req_query(c->req, "image");
    struct dt_store_snapshot *snap;
    int r;

    if (!name || dt_store_check_name("snapshot name", name, &err) < 0)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "%s",
                            err ? err->message : "the name query parameter is required");
    if (strcmp(name, DEFAULT_NAME) == 0)
        return dt_api_error(c->req, 409, "CONFLICT", "snapshot name '%s' is reserved", name);
    if (image && *image && !image_name_ok(image))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "invalid image name");
    snap = xcalloc(1, sizeof(*snap));
    snap->organization_id = xstrdup(c->org);
    snap->name = xstrdup(name);
    snap->image_name = xstrdup(image && *image ? image : name);
    snap->state = DT_SNAPSHOT_PENDING;
    snap->size_bytes = -1;
    snap->cpu = 1;
    snap->memory_gib = 1;
    snap->disk_gib = 3;
    r = dt_store_snapshot_insert(c->s->store, snap, &err);
    if (r < 0) {
        dt_store_snapshot_free(snap);
        return dt_api_error_errno(c->req, r, err);
    }
    _cleanup_free_ char *dir = snapshot_dir(sn, snap->id);
    _cleanup_free_ char *path = xasprintf("%s/upload.tar", dir);
    int fd = -EBADF;
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        (void) dt_store_snapshot_delete(c->s->store, snap->id, NULL);
        dt_store_snapshot_free(snap);
        return dt_api_error(c->req, 500, "INTERNAL_SERVER_ERROR", "store the upload: %s",
                            strerror(-r));
    }
    /* The upload outlives this handler; its close callback ends the call. */
    struct upload *u = xcalloc(1, sizeof(*u));
    u->c = c;
    u->snap = snap;
    u->fd = fd;
    dt_httpd_req_set_close_cb(c->req, on_upload_close, u);
    dt_httpd_req_stream_body(c->req, on_upload_body, u);
}

static void
list_snapshots(struct call *c)
{
    _cleanup_error_ struct dt_error *err = NULL;
    struct dt_store_snapshot_array a = {0};
    uint64_t page = 1, limit = 100, total = 0;
    const char *v;
    json_t *items;

    if ((v = dt_httpd_req_query(c->req, "page")) && *v && (parse_u64(v, &page) < 0 || page < 1))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "page must be a positive integer");
    if ((v = dt_httpd_req_query(c->req, "limit")) && *v &&
        (parse_u64(v, &limit) < 0 || limit < 1 || limit > 200))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "limit must be between 1 and 200");
    if (page > (1u << 20))
        return dt_api_error(c->req, 400, "BAD_REQUEST", "page is too large");
    int r = dt_store_snapshot_list(c->s->store, c->org, page, limit, &a, &total, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    items = json_array();
    for (size_t i = 0; i < a.n; i++)
        json_array_append_new(items, snapshot_json(a.items[i]));
    dt_store_snapshot_array_free(&a);
    dt_httpd_reply_json(c->req, 200,
                        json_pack("{s:o, s:I, s:I, s:I}", "items", items, "total",
                                  (json_int_t) total, "page", (json_int_t) page, "totalPages",
                                  (json_int_t) ((total + limit - 1) / limit)));
}

static bool
owned(struct call *c, const struct dt_store_snapshot *snap)
{
    if (strcmp(snap->organization_id, c->org) == 0)
        return true;
    dt_api_error(c->req, 403, "FORBIDDEN", "snapshot '%s' is shared by the server and cannot be "
                                           "changed", snap->name);
    return false;
}

static void
delete_snapshot(struct call *c, const char *id)
{
    struct dt_snapshots *sn = c->s->snapshots;
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = find_snapshot(c, id);
    _cleanup_error_ struct dt_error *err = NULL;
    struct job *j;
    int r;

    if (!snap || !owned(c, snap))
        return;
    if ((j = find_job(sn, snap->id)))
        uv_process_kill(&j->proc, SIGKILL);
    r = dt_store_snapshot_delete(c->s->store, snap->id, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    _cleanup_free_ char *dir = snapshot_dir(sn, snap->id);
    (void) rm_rf_at(AT_FDCWD, dir);
    /* Sandboxes still waiting for it fail now, with a reason. */
    snap->state = DT_SNAPSHOT_ERROR;
    free(snap->error_reason);
    snap->error_reason = xasprintf("snapshot '%s' was deleted", snap->name);
    dt_server_snapshot_ready(c->s, snap);
    gc_layers(sn);
    dt_httpd_reply(c->req, 200, NULL, "", 0);
}

static void
set_active(struct call *c, const char *id, bool active)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = find_snapshot(c, id);
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!snap || !owned(c, snap))
        return;
    if (active && snap->state == DT_SNAPSHOT_INACTIVE)
        snap->state = snap->image_json ? DT_SNAPSHOT_ACTIVE : DT_SNAPSHOT_ERROR;
    else if (!active && snap->state == DT_SNAPSHOT_ACTIVE)
        snap->state = DT_SNAPSHOT_INACTIVE;
    else if (snap->state != (active ? DT_SNAPSHOT_ACTIVE : DT_SNAPSHOT_INACTIVE))
        return dt_api_error(c->req, 409, "CONFLICT", "snapshot '%s' is %s", snap->name,
                            dt_snapshot_state_to_string(snap->state));
    r = dt_store_snapshot_update(c->s->store, snap, &err);
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_httpd_reply_json(c->req, 200, snapshot_json(snap));
}

static void
logs_url(struct call *c, const char *kind, const char *id)
{
    _cleanup_free_ char *url = xasprintf("%s/api/%s/%s/build-logs", c->s->public_url, kind, id);
    dt_httpd_reply_json(c->req, 200, json_pack("{s:s}", "url", url));
}

void
dt_snapshots_route(struct call *c, const char *const *seg, size_t n)
{
    const char *m = dt_httpd_req_method(c->req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;

    if (n == 2 && post)
        return dt_api_with_json(c, NULL, create_snapshot, false);
    if (n == 3 && post && strcmp(seg[2], "push") == 0)
        return push_snapshot(c);
    if (n == 2 && get)
        return list_snapshots(c);
    if (n == 3 && get) {
        _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = find_snapshot(c, seg[2]);
        if (snap)
            dt_httpd_reply_json(c->req, 200, snapshot_json(snap));
        return;
    }
    if (n == 3 && strcmp(m, "DELETE") == 0)
        return delete_snapshot(c, seg[2]);
    if (n == 4 && post && strcmp(seg[3], "activate") == 0)
        return set_active(c, seg[2], true);
    if (n == 4 && post && strcmp(seg[3], "deactivate") == 0)
        return set_active(c, seg[2], false);
    if (n == 4 && get && strcmp(seg[3], "build-logs-url") == 0) {
        _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = find_snapshot(c, seg[2]);
        if (snap)
            logs_url(c, "snapshots", snap->id);
        return;
    }
    if (n == 4 && get && strcmp(seg[3], "build-logs") == 0) {
        _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = find_snapshot(c, seg[2]);
        if (snap)
            serve_log(c->s->snapshots, c, snap);
        return;
    }
    dt_api_error(c->req, 404, "NOT_FOUND", "no such endpoint: %s %s", m,
                 dt_httpd_req_head(c->req)->path);
}

void
dt_snapshots_sandbox_logs(struct call *c, const struct dt_store_sandbox *sb, bool url)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;

    if (url)
        return logs_url(c, "sandbox", sb->id);
    if (!sb->snapshot || dt_store_snapshot_find(c->s->store, sb->organization_id, sb->snapshot,
                                                &snap, NULL) < 0)
        return dt_api_error(c->req, 404, "NOT_FOUND", "sandbox '%s' has no build logs", sb->id);
    serve_log(c->s->snapshots, c, snap);
}

/* ---- snapshots of sandboxes ---- */

/* A sandbox snapshot that could not start: its row goes, the error is answered. */
static void
from_sandbox_failed(struct call *c, const struct dt_store_snapshot *snap, struct dt_image *img,
                    int r, const struct dt_error *err)
{
    if (snap->id)
        (void) dt_store_snapshot_delete(c->s->store, snap->id, NULL);
    dt_image_done(img);
    free(img);
    dt_api_error_errno(c->req, r, err);
}

/* Start a job copying SB's files into the new snapshot NAME (IMAGE_NAME for display). True
 * with *RET_ID (malloc'ed) the snapshot's id, or false after answering the error. */
static bool
commit_sandbox(struct call *c, struct dt_store_sandbox *sb, const char *name,
               const char *image_name, char **ret_id)
{
    struct dt_snapshots *sn = c->s->snapshots;
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_strv_free_ char **layers = NULL;
    struct dt_image *img = NULL;
    struct job *j = NULL;
    bool running = sb->state == DT_SANDBOX_STARTED;
    uid_t base = 0;
    int fd = -EBADF, r;

    if (!name || dt_store_check_name("snapshot name", name, &err) < 0) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "%s", err ? err->message : "name is required");
        return false;
    }
    if (strcmp(name, DEFAULT_NAME) == 0) {
        dt_api_error(c->req, 409, "CONFLICT", "snapshot name '%s' is reserved", name);
        return false;
    }
    if (sb->state != DT_SANDBOX_STARTED && sb->state != DT_SANDBOX_STOPPED) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "sandbox '%s' is %s: only started or stopped "
                     "sandboxes can be copied", sb->id, dt_sandbox_state_to_string(sb->state));
        return false;
    }
    r = dt_snapshots_image(sn, sb, &img, &layers, &err);
    if (r < 0) {
        dt_api_error_errno(c->req, r, err);
        return false;
    }
    if (!img) {
        dt_api_error(c->req, 400, "BAD_REQUEST", "sandbox '%s' runs on the built-in root "
                     "filesystem (whose /usr is the host's): it cannot be copied; start daytonad "
                     "with --default-snapshot debian", sb->id);
        return false;
    }
    snap = xcalloc(1, sizeof(*snap));
    snap->organization_id = xstrdup(c->org);
    snap->name = xstrdup(name);
    snap->image_name = xstrdup(image_name);
    snap->state = DT_SNAPSHOT_SNAPSHOTTING;
    snap->size_bytes = -1;
    snap->cpu = sb->cpu;
    snap->memory_gib = sb->memory_gib;
    snap->disk_gib = sb->disk_gib;
    r = dt_store_snapshot_insert(c->s->store, snap, &err);
    if (r < 0) {
        free(snap->id);
        snap->id = NULL;
        from_sandbox_failed(c, snap, img, r, err);
        return false;
    }
    /* A consistent copy: nothing writes while the job copies. */
    if (running && (r = dt_runner_pause(c->s->runner, sb->id, &err)) < 0) {
        from_sandbox_failed(c, snap, img, r, err);
        return false;
    }
    r = dt_runner_open_upper(c->s->runner, sb->id, &fd, &base, &err);
    if (r >= 0) {
        _cleanup_free_ char *ij = dt_image_to_json(img);
        json_t *spec = json_pack("{s:s, s:o, s:I}", "kind", "commit", "base",
                                 json_loads(ij, 0, NULL), "uidBase", (json_int_t) base);
        r = job_start_full(sn, snap->id, spec, false, fd, &j, &err);
        safe_close(fd);
    }
    if (r < 0 || !j) {
        if (running)
            (void) dt_runner_resume(c->s->runner, sb->id, NULL);
        if (r >= 0)
            r = dt_error_set(&err, EBUSY, "a job for snapshot '%s' runs already", name);
        from_sandbox_failed(c, snap, img, r, err);
        return false;
    }
    j->sandbox_id = xstrdup(sb->id);
    j->sandbox_state = sb->state;
    j->resume = running;
    dt_image_done(img);
    free(img);
    r = dt_server_save_state(c->s, sb, DT_SANDBOX_SNAPSHOTTING, NULL, &err);
    if (r < 0) {
        dt_api_error_errno(c->req, r, err);
        return false;
    }
    *ret_id = xstrdup(snap->id);
    return true;
}

void
dt_snapshots_from_sandbox(struct call *c, struct dt_store_sandbox *sb, const char *name)
{
    _cleanup_free_ char *image = xasprintf("sandbox-%s", sb->id), *id = NULL;

    if (commit_sandbox(c, sb, name, image, &id))
        dt_httpd_reply_json(c->req, 200, dt_sandbox_json(c->s, sb, false));
}

bool
dt_snapshots_is_fork(const struct dt_store_snapshot *snap)
{
    return snap->image_name && strncmp(snap->image_name, FORK_PREFIX, strlen(FORK_PREFIX)) == 0;
}

void
dt_snapshots_fork(struct call *c, struct dt_store_sandbox *sb, const char *name)
{
    _cleanup_(dt_store_sandbox_freep) struct dt_store_sandbox *nsb = dt_store_sandbox_new(c->org);
    _cleanup_free_ char *image = xasprintf(FORK_PREFIX "%s", sb->id), *id = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    char snap_name[64], uuid[37];
    int r;

    if (name && *name && dt_store_check_name("sandbox name", name, &err) < 0)
        return dt_api_error(c->req, 400, "BAD_REQUEST", "%s", err->message);
    /* The copy goes through a snapshot nobody sees for long: it is removed once the fork
     * started (the fork's own plan keeps the layers). */
    dt_store_uuid(uuid);
    snprintf(snap_name, sizeof(snap_name), "fork-%s", uuid);
    if (!commit_sandbox(c, sb, snap_name, image, &id))
        return;
    nsb->name = name && *name ? xstrdup(name) : NULL;
    nsb->snapshot = TAKE_PTR(id);
    nsb->user = sb->user ? xstrdup(sb->user) : NULL;
    free(nsb->env_json);
    nsb->env_json = xstrdup(sb->env_json ? sb->env_json : "{}");
    free(nsb->labels_json);
    nsb->labels_json = xstrdup(sb->labels_json ? sb->labels_json : "{}");
    nsb->cpu = sb->cpu;
    nsb->memory_gib = sb->memory_gib;
    nsb->disk_gib = sb->disk_gib;
    nsb->auto_stop_interval = sb->auto_stop_interval;
    nsb->auto_archive_interval = sb->auto_archive_interval;
    nsb->auto_delete_interval = sb->auto_delete_interval;
    nsb->network_block_all = sb->network_block_all;
    nsb->public_ = sb->public_;
    free(nsb->volumes_json);
    nsb->volumes_json = xstrdup(sb->volumes_json ? sb->volumes_json : "[]");
    nsb->state = DT_SANDBOX_PULLING_SNAPSHOT;
    nsb->desired_state = DT_DESIRED_STARTED;
    r = dt_store_sandbox_insert(c->s->store, nsb, &err);
    if (r == -EEXIST)
        return dt_api_error(c->req, 409, "CONFLICT", "a sandbox named '%s' already exists",
                            name ? name : "");
    if (r < 0)
        return dt_api_error_errno(c->req, r, err);
    dt_httpd_reply_json(c->req, 200, dt_sandbox_json(c->s, nsb, false));
}

/* ---- sandbox creation ---- */

bool
dt_snapshots_is_default(struct dt_snapshots *sn, const char *name)
{
    return !name || !*name || strcmp(name, "default") == 0 || strcmp(name, DEFAULT_NAME) == 0;
}

static enum dt_sandbox_state
waiting_state(enum dt_snapshot_state st, bool build)
{
    if (st == DT_SNAPSHOT_ACTIVE)
        return DT_SANDBOX_CREATING;
    if (build)
        return st == DT_SNAPSHOT_BUILDING ? DT_SANDBOX_BUILDING_SNAPSHOT : DT_SANDBOX_PENDING_BUILD;
    return DT_SANDBOX_PULLING_SNAPSHOT;
}

/* The snapshot for a create with buildInfo BI: found by the hash of its content, or made. */
static int
snapshot_for_build(struct call *c, json_t *bi, struct dt_store_snapshot **ret)
{
    struct dt_snapshots *sn = c->s->snapshots;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *info = get_build_info(c, bi);
    unsigned char md[32];
    char name[64];
    int r;

    if (!info)
        return -1;
    EVP_Digest(info, strlen(info), md, NULL, EVP_sha256(), NULL);
    memcpy(name, "image-", 6);
    for (int i = 0; i < 10; i++)
        snprintf(name + 6 + i * 2, 3, "%02x", md[i]);
    r = dt_store_snapshot_find(c->s->store, c->org, name, ret, &err);
    if (r == 0 && ((*ret)->state == DT_SNAPSHOT_ERROR || (*ret)->state == DT_SNAPSHOT_BUILD_FAILED)) {
        /* Build it again: the failure may have been a network hiccup. */
        r = start_snapshot_job(sn, *ret, &err);
        if (r < 0) {
            dt_store_snapshot_free(*ret);
            dt_api_error_errno(c->req, r, err);
            return -1;
        }
        return 0;
    }
    if (r != -ENOENT) {
        if (r < 0)
            dt_api_error_errno(c->req, r, err);
        return r < 0 ? -1 : 0;
    }
    dt_error_freep(&err);
    struct dt_store_snapshot *snap = xcalloc(1, sizeof(*snap));
    snap->organization_id = xstrdup(c->org);
    snap->name = xstrdup(name);
    snap->state = DT_SNAPSHOT_PENDING;
    snap->size_bytes = -1;
    snap->cpu = 1;
    snap->memory_gib = 1;
    snap->disk_gib = 3;
    snap->build_info_json = TAKE_PTR(info);
    r = dt_store_snapshot_insert(c->s->store, snap, &err);
    if (r >= 0)
        r = start_snapshot_job(sn, snap, &err);
    if (r < 0) {
        dt_store_snapshot_free(snap);
        dt_api_error_errno(c->req, r, err);
        return -1;
    }
    /* The sandbox shows pending_build first: the SDK streams the build log only then. */
    snap->state = DT_SNAPSHOT_PENDING;
    *ret = snap;
    return 0;
}

int
dt_snapshots_for_create(struct dt_snapshots *sn, struct call *c, json_t *body,
                        char **ret_snapshot, enum dt_sandbox_state *ret_state)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    const char *name = json_string_value(json_object_get(body, "snapshot"));
    json_t *bi = json_object_get(body, "buildInfo");
    bool build = bi && !json_is_null(bi);
    int r;

    if (build) {
        if (name && *name) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "give either a snapshot or an image");
            return -1;
        }
        if (snapshot_for_build(c, bi, &snap) < 0)
            return -1;
    } else if (dt_snapshots_is_default(sn, name)) {
        r = dt_store_snapshot_find(c->s->store, c->org, DEFAULT_NAME, &snap, &err);
        if (r == -ENOENT) {
            /* No default snapshot on this server: the built-in root filesystem. */
            *ret_snapshot = NULL;
            *ret_state = DT_SANDBOX_CREATING;
            return 0;
        }
        if (r < 0) {
            dt_api_error_errno(c->req, r, err);
            return -1;
        }
    } else {
        json_t *v = json_object_get(body, "snapshot");
        if (!json_is_string(v)) {
            dt_api_error(c->req, 400, "BAD_REQUEST", "snapshot must be a string");
            return -1;
        }
        if (!(snap = find_snapshot(c, name)))
            return -1;
    }
    switch (snap->state) {
    case DT_SNAPSHOT_ERROR:
    case DT_SNAPSHOT_BUILD_FAILED:
        dt_api_error(c->req, 400, "BAD_REQUEST", "snapshot '%s' failed: %s", snap->name,
                     snap->error_reason ? snap->error_reason : "unknown reason");
        return -1;
    case DT_SNAPSHOT_INACTIVE:
        dt_api_error(c->req, 400, "BAD_REQUEST", "snapshot '%s' is inactive: activate it first",
                     snap->name);
        return -1;
    case DT_SNAPSHOT_REMOVING:
        dt_api_error(c->req, 400, "BAD_REQUEST", "snapshot '%s' is being removed", snap->name);
        return -1;
    default:
        break;
    }
    *ret_state = waiting_state(snap->state, snap->build_info_json != NULL);
    *ret_snapshot = xstrdup(snap->id);
    snap->last_used_at_ms = dt_store_now_ms();
    (void) dt_store_snapshot_update(c->s->store, snap, NULL);
    return 0;
}

int
dt_snapshots_image(struct dt_snapshots *sn, const struct dt_store_sandbox *sb,
                   struct dt_image **ret_img, char ***ret_layers, struct dt_error **err)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    struct dt_image *img;
    int r;

    *ret_img = NULL;
    *ret_layers = NULL;
    if (!sb->snapshot || !*sb->snapshot || strcmp(sb->snapshot, "default") == 0)
        return 0;
    r = dt_store_snapshot_find(sn->s->store, sb->organization_id, sb->snapshot, &snap, err);
    if (r < 0)
        return r;
    if (snap->state != DT_SNAPSHOT_ACTIVE || !snap->image_json)
        return dt_error_set(err, EAGAIN, "snapshot '%s' is %s", snap->name,
                            dt_snapshot_state_to_string(snap->state));
    img = xcalloc(1, sizeof(*img));
    r = dt_image_from_json(snap->image_json, img, err);
    if (r >= 0)
        r = dt_imgstore_image_layers(sn->images, img, ret_layers, err);
    if (r < 0) {
        dt_image_done(img);
        free(img);
        return r;
    }
    *ret_img = img;
    return 0;
}

int
dt_snapshots_default(struct dt_snapshots *sn, char **ret_id)
{
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;

    *ret_id = NULL;
    if (dt_store_snapshot_find(sn->s->store, sn->s->default_org, DEFAULT_NAME, &snap, NULL) < 0)
        return 0;
    if (snap->state != DT_SNAPSHOT_ACTIVE)
        return -EAGAIN;
    *ret_id = xstrdup(snap->id);
    return 0;
}

struct dt_imgstore *
dt_snapshots_images(struct dt_snapshots *sn)
{
    return sn->images;
}

/* The default snapshot builds at first start, for minutes: whoever ran `make run` sees its
 * progress in our log, one line every few seconds when it changed. */
#define PROGRESS_MS 3000

static void
progress_closed(uv_handle_t *h)
{
    free(h);
}

static void
on_progress(uv_timer_t *t)
{
    struct dt_snapshots *sn = t->data;
    _cleanup_free_ char *log = xasprintf("%s/%s/build.log", sn->dir, sn->progress_id);
    _cleanup_free_ char *line = last_log_line(log);

    if (line && (!sn->progress_last || strcmp(line, sn->progress_last) != 0)) {
        if (strlen(line) > 160)
            memcpy(line + 157, "...", 4);
        log_info("default snapshot: %s", line);
        free(sn->progress_last);
        sn->progress_last = xstrdup(line);
    }
    if (!find_job(sn, sn->progress_id))
        uv_timer_stop(t);
}

static void
progress_start(struct dt_snapshots *sn, const char *id)
{
    if (!sn->progress) {
        sn->progress = xcalloc(1, sizeof(*sn->progress));
        uv_timer_init(sn->s->loop, sn->progress);
        sn->progress->data = sn;
    }
    free(sn->progress_id);
    sn->progress_id = xstrdup(id);
    uv_timer_start(sn->progress, on_progress, PROGRESS_MS, PROGRESS_MS);
}

/* ---- start-up ---- */

/* The default snapshot: a general snapshot built by a job from Debian packages. */
static void
ensure_default(struct dt_snapshots *sn)
{
    struct dt_server *s = sn->s;
    _cleanup_(dt_store_snapshot_freep) struct dt_store_snapshot *snap = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    int r;

    if (!s->cfg.default_snapshot || strcmp(s->cfg.default_snapshot, "host") == 0)
        return;
    r = dt_store_snapshot_find(s->store, s->default_org, DEFAULT_NAME, &snap, NULL);
    if (r == 0 && snap->state == DT_SNAPSHOT_ACTIVE) {
        struct dt_image img;
        if (snap->image_json && dt_image_from_json(snap->image_json, &img, NULL) >= 0) {
            bool ok = true;
            for (char **l = img.layers; l && *l && ok; l++)
                ok = dt_imgstore_has_layer(sn->images, *l);
            dt_image_done(&img);
            if (ok)
                return;
        }
    }
    if (r < 0) {
        snap = xcalloc(1, sizeof(*snap));
        snap->organization_id = xstrdup(s->default_org);
        snap->name = xstrdup(DEFAULT_NAME);
        snap->image_name = xstrdup("debian:bookworm (daytona default)");
        snap->state = DT_SNAPSHOT_PENDING;
        snap->size_bytes = -1;
        snap->cpu = 1;
        snap->memory_gib = 1;
        snap->disk_gib = 3;
        snap->general = true;
        if (dt_store_snapshot_insert(s->store, snap, &err) < 0) {
            log_warning("default snapshot: %s", err->message);
            return;
        }
    }
    log_info("default snapshot: building it from Debian packages (first start only; "
                "progress in %s/snapshots/%s/build.log)", s->data_dir, snap->id);
    if (start_snapshot_job(sn, snap, &err) < 0)
        log_warning("default snapshot: %s", err->message);
    else
        progress_start(sn, snap->id);
}

int
dt_snapshots_new(struct dt_server *s, struct dt_snapshots **ret, struct dt_error **err)
{
    struct dt_snapshots *sn = xcalloc(1, sizeof(*sn));
    _cleanup_free_ char *images = xasprintf("%s/images", s->data_dir);
    struct dt_store_snapshot_array all = {0};
    uint64_t total = 0;
    int r;

    sn->s = s;
    sn->dir = xasprintf("%s/snapshots", s->data_dir);
    sn->self = realpath("/proc/self/exe", NULL);
    if (!sn->self) {
        r = dt_error_errno(err, errno, "find our own binary");
        dt_snapshots_free(sn);
        return r;
    }
    if ((mkdir(sn->dir, 0700) < 0 && errno != EEXIST) ||
        (r = dt_imgstore_open(images, &sn->images, err)) < 0) {
        r = err && *err ? -(*err)->code : dt_error_errno(err, errno, "create '%s'", sn->dir);
        dt_snapshots_free(sn);
        return r;
    }
    /* No job runs yet: whatever a crashed one left half-made goes. */
    dt_imgstore_clean_tmp(sn->images);
    *ret = sn;
    s->snapshots = sn;
    /* Snapshots a crash left mid-job start over (finished layers are reused). */
    if (dt_store_snapshot_list(s->store, NULL, 1, 1u << 20, &all, &total, NULL) >= 0) {
        for (size_t i = 0; i < all.n; i++) {
            struct dt_store_snapshot *x = all.items[i];
            _cleanup_error_ struct dt_error *jerr = NULL;
            if (x->state == DT_SNAPSHOT_PENDING || x->state == DT_SNAPSHOT_PULLING ||
                x->state == DT_SNAPSHOT_BUILDING) {
                if (start_snapshot_job(sn, x, &jerr) < 0)
                    log_warning("snapshot %s: %s", x->name, jerr->message);
            } else if (x->state == DT_SNAPSHOT_REMOVING) {
                (void) dt_store_snapshot_delete(s->store, x->id, NULL);
            } else if (x->state == DT_SNAPSHOT_SNAPSHOTTING) {
                /* A copy of a sandbox's files cut short: its source was paused meanwhile and
                 * may have changed since; say so rather than guess. */
                x->state = DT_SNAPSHOT_ERROR;
                free(x->error_reason);
                x->error_reason = xstrdup("interrupted by a restart of daytonad: make it again");
                (void) dt_store_snapshot_update(s->store, x, NULL);
            }
        }
        dt_store_snapshot_array_free(&all);
    }
    ensure_default(sn);
    gc_layers(sn);
    return 0;
}

void
dt_snapshots_free(struct dt_snapshots *sn)
{
    if (!sn)
        return;
    while (sn->followers)
        follower_free(sn->followers);
    for (struct job *j = sn->jobs, *next; j; j = next) {
        next = j->next;
        /* The snapshot stays pulling/building: the next start runs its job again. */
        uv_process_kill(&j->proc, SIGKILL);
        j->sn = NULL;
        j->exited = true;
        if (!uv_is_closing((uv_handle_t *) &j->in))
            uv_close((uv_handle_t *) &j->in, job_handle_closed);
        uv_close((uv_handle_t *) &j->proc, job_handle_closed);
    }
    sn->jobs = NULL;
    if (sn->progress)
        uv_close((uv_handle_t *) sn->progress, progress_closed);
    free(sn->progress_id);
    free(sn->progress_last);
    if (sn->s && sn->s->snapshots == sn)
        sn->s->snapshots = NULL;
    dt_imgstore_free(sn->images);
    free(sn->dir);
    free(sn->self);
    free(sn);
}
