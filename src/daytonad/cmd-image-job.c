/* SPDX-License-Identifier: Apache-2.0 */
/* `daytonad image-job`: makes one snapshot's image, as a child of `daytonad serve` (see
 * docs/design/images.md). Its stdin is the job (JSON), its stderr the build log, its stdout the
 * resulting image (JSON), its exit status whether it worked. Its last log line says why not. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "daytonad.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/image.h"
#include "dt/macros.h"
#include "dt/oci.h"
#include "dt/runtime.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define MAX_SPEC (4u << 20)

/* The default snapshot. Bump DEFAULT_RECIPE_VERSION when anything below changes: the new recipe
 * hash makes every data dir build it again. */
#define DEFAULT_RECIPE_VERSION "2"
#define DEFAULT_SUITE  "bookworm"
#define DEFAULT_MIRROR "http://deb.debian.org/debian"
static const char DEFAULT_PACKAGES[] =
        "bash,coreutils,findutils,grep,sed,tar,gzip,xz-utils,bzip2,unzip,zip,less,procps,"
        "iproute2,iputils-ping,netbase,ca-certificates,curl,wget,git,openssh-client,"
        "python3,python3-pip,python3-venv,python3-numpy,python3-pandas,python3-matplotlib,"
        "nodejs,npm,ts-node,node-typescript,sudo,locales,tzdata,passwd";
static const char DEFAULT_DOCKERFILE[] =
        "FROM debian-base\n"
        "RUN useradd -m -u 1000 -U -s /bin/bash daytona"
        " && printf 'daytona ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/daytona"
        " && chmod 0440 /etc/sudoers.d/daytona\n"
        /* Debian's python is "externally managed" (PEP 668): let pip install anyway. */
        "RUN printf '[global]\\nbreak-system-packages = true\\n' > /etc/pip.conf\n"
        "ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "WORKDIR /home/daytona\n";

struct job {
    json_t *spec;
    struct dt_imgstore *store;
    struct dt_runtime *rt;
    char *data_dir;
    struct dt_image base; /* for the default snapshot's FROM */
};

static void
say(const char *fmt, ...) _printf_(1, 2);

static void
say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static bool
insecure_registry(struct job *j, const char *ref)
{
    json_t *list = json_object_get(j->spec, "insecureRegistries"), *v;
    size_t i;
    json_array_foreach(list, i, v) {
        const char *h = json_string_value(v);
        size_t n = h ? strlen(h) : 0;
        if (n && strncmp(ref, h, n) == 0 && ref[n] == '/')
            return true;
    }
    return false;
}

static int
pull(struct job *j, const char *ref, struct dt_image *img, struct dt_error **err)
{
    struct dt_pull_opts o = { .insecure = insecure_registry(j, ref), .log_fd = STDERR_FILENO };
    json_t *auth = json_object_get(j->spec, "auth");
    struct dt_image_ref *r = NULL;
    /* Credentials go only to the registry they are for (a build's FROM may name another). */
    if (auth && dt_image_ref_parse(ref, &r, NULL) >= 0 &&
        strcmp(r->registry, json_string_value(json_object_get(auth, "registry")) ?: "") == 0) {
        o.username = json_string_value(json_object_get(auth, "username"));
        o.password = json_string_value(json_object_get(auth, "password"));
    }
    dt_image_ref_free(r);
    return dt_image_pull(j->store, ref, &o, img, err);
}

/* FROM in a build: one of the organization's snapshots, the default recipe's base, or a pull. */
static int
resolve_base(const char *ref, struct dt_image *ret, void *ud, struct dt_error **err)
{
    struct job *j = ud;
    json_t *bases = json_object_get(j->spec, "bases");
    json_t *b = json_object_get(bases, ref);

    if (j->base.layers && strcmp(ref, "debian-base") == 0) {
        dt_image_copy(ret, &j->base);
        return 0;
    }
    if (b) {
        _cleanup_free_ char *text = json_dumps(b, JSON_COMPACT);
        say("Using snapshot %s", ref);
        return dt_image_from_json(text, ret, err);
    }
    return pull(j, ref, ret, err);
}

static int
need_runtime(struct job *j, struct dt_error **err)
{
    if (j->rt)
        return 0;
    _cleanup_free_ char *state = xasprintf("%s/runtime", j->data_dir);
    struct dt_runtime_config rc = { .state_dir = state, .need_bridge = true };
    return dt_runtime_new(&rc, &j->rt, err);
}

/* Unpack the build context tars (uploaded by the SDK, contract §2.8: each holds files under
 * their absolute local paths without the leading '/') into one directory, safely: no "..", no
 * absolute names, no writing through symlinks, no owners or devices from the archive. */
static int
unpack_contexts(json_t *contexts, const char *dir, struct dt_error **err)
{
    json_t *v;
    size_t i;

    json_array_foreach(contexts, i, v) {
        const char *path = json_string_value(v);
        struct archive *in = archive_read_new(), *out = archive_write_disk_new();
        struct archive_entry *e;
        int r = 0, k;

        archive_read_support_format_tar(in);
        /* Names are checked before DIR is put in front of them (which makes them absolute:
         * hence no SECURE_NOABSOLUTEPATHS here). */
        archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM);
        if (!path || archive_read_open_filename(in, path, 65536) != ARCHIVE_OK)
            r = dt_error_set(err, EINVAL, "build context '%s': %s", path ? path : "",
                             archive_error_string(in));
        while (r >= 0 && (k = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
            mode_t type = archive_entry_filetype(e);
            if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
                continue;
            const char *name = archive_entry_pathname(e);
            size_t nl = name ? strlen(name) : 0;
            if (!name || name[0] == '/' || strcmp(name, "..") == 0 ||
                strncmp(name, "../", 3) == 0 || strstr(name, "/../") ||
                (nl >= 3 && strcmp(name + nl - 3, "/..") == 0)) {
                r = dt_error_set(err, EINVAL, "build context: refusing entry '%s'",
                                 name ? name : "");
                break;
            }
            const char *hl = archive_entry_hardlink(e);
            if (hl && (hl[0] == '/' || strncmp(hl, "../", 3) == 0 || strstr(hl, "/../"))) {
                r = dt_error_set(err, EINVAL, "build context: refusing hard link '%s'", hl);
                break;
            }
            _cleanup_free_ char *dst = xasprintf("%s/%s", dir, name);
            archive_entry_set_pathname(e, dst);
            if (archive_entry_hardlink(e)) {
                _cleanup_free_ char *t = xasprintf("%s/%s", dir, archive_entry_hardlink(e));
                archive_entry_set_hardlink(e, t);
            }
            if (archive_write_header(out, e) != ARCHIVE_OK) {
                r = dt_error_set(err, EINVAL, "build context: %s", archive_error_string(out));
                break;
            }
            const void *buf;
            size_t len;
            int64_t off;
            while ((k = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
                if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK) {
                    k = ARCHIVE_FATAL;
                    break;
                }
            if (k != ARCHIVE_EOF) {
                r = dt_error_set(err, EINVAL, "build context: %s", archive_error_string(in));
                break;
            }
            archive_write_finish_entry(out);
        }
        if (r >= 0 && k != ARCHIVE_EOF)
            r = dt_error_set(err, EINVAL, "build context '%s': %s", path,
                             archive_error_string(in));
        archive_read_free(in);
        archive_write_free(out);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
build(struct job *j, const char *dockerfile, struct dt_image *img, struct dt_error **err)
{
    _cleanup_free_ char *ctx = NULL;
    json_t *contexts = json_object_get(j->spec, "contexts");
    int r = need_runtime(j, err);
    if (r < 0)
        return r;
    if (json_array_size(contexts) > 0) {
        ctx = xasprintf("%s/images/tmp/context-XXXXXX", j->data_dir);
        if (!mkdtemp(ctx))
            return dt_error_errno(err, errno, "create a build context directory");
        say("Unpacking %zu build context(s)", json_array_size(contexts));
        r = unpack_contexts(contexts, ctx, err);
        if (r < 0) {
            (void) rm_rf_at(AT_FDCWD, ctx);
            return r;
        }
    }
    struct dt_build_opts o = {
        .context_dir = ctx,
        .dockerfile = dockerfile,
        .dockerfile_len = strlen(dockerfile),
        .resolve_base = resolve_base,
        .userdata = j,
        .log_fd = STDERR_FILENO,
        .rt = j->rt,
    };
    r = dt_image_build(j->store, &o, img, err);
    if (ctx)
        (void) rm_rf_at(AT_FDCWD, ctx);
    return r;
}

/* mmdebstrap into a new layer keyed by the recipe's hash (built once per recipe). */
static int
debian_base(struct job *j, struct dt_error **err)
{
    _cleanup_free_ char *recipe = xasprintf("daytona default snapshot %s\n%s\n%s\n%s\n",
                                            DEFAULT_RECIPE_VERSION, DEFAULT_SUITE,
                                            DEFAULT_MIRROR, DEFAULT_PACKAGES);
    unsigned char md[32];
    char id[65];
    int r;

    EVP_Digest(recipe, strlen(recipe), md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", md[i]);
    dt_image_init(&j->base);
    strv_push(&j->base.layers, id);
    if (dt_imgstore_has_layer(j->store, id)) {
        say("Debian base (%.12s): already built", id);
        return 0;
    }
    if (access("/usr/bin/mmdebstrap", X_OK) < 0)
        return dt_error_set(err, ENOENT, "the default snapshot needs mmdebstrap (apt-get install "
                            "mmdebstrap)");
    _cleanup_free_ char *tmp = NULL;
    int dfd = -EBADF;
    r = dt_imgstore_layer_begin(j->store, &tmp, &dfd, err);
    if (r < 0)
        return r;
    safe_close(dfd);
    say("Debian base: mmdebstrap %s (%s) — a few minutes, once", DEFAULT_SUITE, DEFAULT_MIRROR);
    _cleanup_free_ char *include = xasprintf("--include=%s", DEFAULT_PACKAGES);
    char *argv[] = {
        (char *) "/usr/bin/mmdebstrap", (char *) "--variant=apt", (char *) "--mode=root",
        (char *) "--format=directory", (char *) "--verbose",
        /* No fsync per file: the layer is synced once at commit, and a crash before that
         * throws the half-made directory away anyway. */
        (char *) "--dpkgopt=force-unsafe-io",
        (char *) "--dpkgopt=path-exclude=/usr/share/man/*",
        (char *) "--dpkgopt=path-exclude=/usr/share/doc/*",
        (char *) "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        (char *) "--customize-hook=rm -f \"$1\"/etc/resolv.conf \"$1\"/etc/hostname",
        (char *) "--customize-hook=rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
        include, (char *) DEFAULT_SUITE, tmp, (char *) DEFAULT_MIRROR, NULL,
    };
    pid_t pid = fork();
    if (pid < 0) {
        r = dt_error_errno(err, errno, "fork");
        dt_imgstore_layer_abort(j->store, tmp);
        return r;
    }
    if (pid == 0) {
        /* The log is our stderr; mmdebstrap's stdout goes there too (ours is the result). */
        dup2(STDERR_FILENO, STDOUT_FILENO);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        dt_imgstore_layer_abort(j->store, tmp);
        return dt_error_set(err, EIO, "mmdebstrap failed (status %d): see the lines above",
                            WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    return dt_imgstore_layer_commit(j->store, tmp, id, err);
}

/* A sandbox snapshot: the sandbox's writable layer (our fd 3, the sandbox paused meanwhile)
 * copied into a new layer on top of its image. */
static int
commit(struct job *j, struct dt_image *img, struct dt_error **err)
{
    json_t *base = json_object_get(j->spec, "base");
    json_t *ub = json_object_get(j->spec, "uidBase");
    _cleanup_free_ char *tmp = NULL, *bj = NULL;
    unsigned char rnd[32];
    char id[65];
    int dfd = -EBADF, r;

    if (!json_is_object(base) || !json_is_integer(ub) || json_integer_value(ub) < 0 ||
        fcntl(3, F_GETFD) < 0)
        return dt_error_set(err, EINVAL, "job: commit needs base, uidBase and fd 3");
    bj = json_dumps(base, JSON_COMPACT);
    r = dt_image_from_json(bj, img, err);
    if (r < 0)
        return r;
    r = dt_imgstore_layer_begin(j->store, &tmp, &dfd, err);
    if (r < 0)
        return r;
    say("Copying the sandbox's files");
    /* cp -a: owners, modes, times, xattrs (overlayfs' opaque marks), hard links, and the
     * whiteouts (char 0/0 devices) as they are. */
    char *argv[] = { (char *) "/bin/cp", (char *) "-a", (char *) "--reflink=auto",
                     (char *) "/proc/self/fd/3/.", tmp, NULL };
    pid_t pid = fork();
    if (pid == 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        r = dt_error_set(err, EIO, "copying the sandbox's files failed (see above)");
    if (r >= 0)
        r = dt_layer_from_upper(dfd, (uint32_t) json_integer_value(ub), err);
    safe_close(dfd);
    if (r >= 0 && getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
        r = dt_error_errno(err, errno, "getrandom");
    if (r < 0) {
        dt_imgstore_layer_abort(j->store, tmp);
        return r;
    }
    for (int i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    r = dt_imgstore_layer_commit(j->store, tmp, id, err);
    if (r < 0)
        return r;
    strv_push(&img->layers, id);
    img->size_bytes = 0;
    for (char **l = img->layers; *l; l++) {
        uint64_t sz = 0;
        if (dt_imgstore_layer_size(j->store, *l, &sz) >= 0)
            img->size_bytes += sz;
    }
    free(img->digest);
    img->digest = xasprintf("layer:%s", id);
    say("Snapshot layer %.12s", id);
    return 0;
}

static int
run_job(struct job *j, struct dt_image *img, struct dt_error **err)
{
    const char *kind = json_string_value(json_object_get(j->spec, "kind"));
    int r;

    if (!kind)
        return dt_error_set(err, EINVAL, "job: no kind");
    if (strcmp(kind, "pull") == 0) {
        const char *ref = json_string_value(json_object_get(j->spec, "image"));
        if (!ref)
            return dt_error_set(err, EINVAL, "job: no image");
        return pull(j, ref, img, err);
    }
    if (strcmp(kind, "import") == 0) {
        const char *path = json_string_value(json_object_get(j->spec, "archive"));
        const char *name = json_string_value(json_object_get(j->spec, "name"));
        if (!path)
            return dt_error_set(err, EINVAL, "job: no archive");
        return dt_image_import(j->store, path, name, STDERR_FILENO, img, err);
    }
    if (strcmp(kind, "build") == 0) {
        const char *df = json_string_value(json_object_get(j->spec, "dockerfile"));
        if (!df)
            return dt_error_set(err, EINVAL, "job: no dockerfile");
        return build(j, df, img, err);
    }
    if (strcmp(kind, "commit") == 0)
        return commit(j, img, err);
    if (strcmp(kind, "default") == 0) {
        r = debian_base(j, err);
        if (r < 0)
            return r;
        return build(j, DEFAULT_DOCKERFILE, img, err);
    }
    return dt_error_set(err, EINVAL, "job: unknown kind '%s'", kind);
}

int
cmd_image_job(int argc, char **argv)
{
    _cleanup_free_ char *text = NULL;
    struct dt_error *err = NULL;
    struct job j = {0};
    struct dt_image img;
    json_error_t jerr;
    int r;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: daytonad image-job < JOB.json\n"
               "Internal: makes one snapshot's image for `daytonad serve`.\n");
        return 0;
    }
    /* Die with the server (it restarts unfinished jobs), and never of a closed pipe. */
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    dt_image_init(&img);
    r = read_fd_all(STDIN_FILENO, MAX_SPEC, &text, NULL);
    if (r < 0) {
        say("error: read the job: %s", strerror(-r));
        return 1;
    }
    j.spec = json_loads(text, 0, &jerr);
    const char *dir = json_string_value(json_object_get(j.spec, "dataDir"));
    if (!j.spec || !dir || dir[0] != '/') {
        say("error: invalid job: %s", j.spec ? "no dataDir" : jerr.text);
        json_decref(j.spec);
        return 1;
    }
    j.data_dir = xstrdup(dir);
    _cleanup_free_ char *images = xasprintf("%s/images", dir);
    r = dt_imgstore_open(images, &j.store, &err);
    if (r >= 0)
        r = run_job(&j, &img, &err);
    if (r >= 0) {
        _cleanup_free_ char *out = dt_image_to_json(&img);
        if (write_all(STDOUT_FILENO, out, strlen(out)) < 0) {
            say("error: write the result: %s", strerror(errno));
            r = -EIO;
        }
    } else
        say("error: %s", err && err->message ? err->message : strerror(-r));
    dt_error_free(err);
    dt_image_done(&img);
    dt_image_done(&j.base);
    dt_imgstore_free(j.store);
    dt_runtime_free(j.rt);
    json_decref(j.spec);
    free(j.data_dir);
    return r < 0 ? 1 : 0;
}
