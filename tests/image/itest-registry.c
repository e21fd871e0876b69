/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test of the registry client against the real CNCF registry (docker-registry):
 * registry-fixture/fixture.py runs plain, htpasswd+TLS and token-auth registries plus a JWT token
 * server on loopback and pushes an image with skopeo; we fetch it back through the C API. */
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "testlib.h"

#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/registry.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

static pid_t fixture_pid = -1;
static int fixture_in = -1;
static json_t *info;

static const char *
s(const char *key)
{
    const char *v = json_string_value(json_object_get(info, key));
    DT_ASSERT(v);
    return v;
}

static const char *
blob_field(const char *which, int layer, const char *field)
{
    json_t *b = layer < 0 ? json_object_get(info, which)
                          : json_array_get(json_object_get(info, "layers"), (size_t) layer);
    json_t *v = json_object_get(b, field);
    DT_ASSERT(v);
    return json_string_value(v);
}

static uint64_t
blob_size(const char *which, int layer)
{
    json_t *b = layer < 0 ? json_object_get(info, which)
                          : json_array_get(json_object_get(info, "layers"), (size_t) layer);
    return (uint64_t) json_integer_value(json_object_get(b, "size"));
}

/* noinline: inlined, gcc 12 takes pointers into the result for pointers to this frame's
 * `buf` variable (-Wdangling-pointer false positive). */
static __attribute__((noinline)) char *
read_path(const char *path, size_t *len)
{
    char *buf = NULL;
    int k = read_file_at(AT_FDCWD, path, 64 * 1024 * 1024, &buf, len);
    DT_ASSERT(k >= 0);
    return buf;
}

static char *
fixture_path(void)
{
    const char *e = getenv("DT_REGISTRY_FIXTURE");
    _cleanup_free_ char *f = xstrdup(__FILE__);

    if (e)
        return xstrdup(e);
    return xasprintf("%s/registry-fixture/fixture.py", dirname(f));
}

static void
stop_fixture(void)
{
    int status;

    if (fixture_pid <= 0)
        return;
    /* EOF on its stdin makes the fixture kill the registries and remove its temp dir. */
    fixture_in = safe_close(fixture_in);
    (void) waitpid(fixture_pid, &status, 0);
    fixture_pid = -1;
}

static int
setup(void **state)
{
    _cleanup_free_ char *path = fixture_path();
    int in[2], out[2], status;
    char line[16384];
    size_t n = 0;

    if (access(path, R_OK) < 0 || access("/usr/bin/python3", X_OK) < 0)
        dt_test_skip("registry fixture or /usr/bin/python3 not found (set DT_REGISTRY_FIXTURE)");
    DT_ASSERT(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    fixture_pid = fork();
    DT_ASSERT(fixture_pid >= 0);
    if (fixture_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/usr/bin/python3", "python3", path, (char *) NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fixture_in = in[1];
    while (n < sizeof(line) - 1) {
        ssize_t k = read(out[0], line + n, 1);
        if (k <= 0)
            break;
        if (line[n++] == '\n')
            break;
    }
    line[n] = 0;
    close(out[0]);
    if (n == 0 || line[n - 1] != '\n') {
        (void) waitpid(fixture_pid, &status, 0);
        fixture_pid = -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            dt_test_skip("registry fixture skipped (docker-registry, skopeo, apache2-utils, "
                         "python3-jwt needed)");
        fprintf(stderr, "registry fixture failed (status %d)\n", status);
        return -1;
    }
    info = json_loads(line, 0, NULL);
    DT_ASSERT(info);
    return 0;
}

static int
teardown(void **state)
{
    stop_fixture();
    json_decref(info);
    return 0;
}

static struct dt_registry *
client(const char *user, const char *pw, enum dt_registry_scheme scheme, const char *ca)
{
    struct dt_registry_opts o = {
        .user_agent = "dt-test", .username = user, .password = pw, .scheme = scheme,
        .timeout_s = 10, .ca_file = ca,
    };
    struct dt_registry *r = NULL;
    struct dt_error *err = NULL;

    assert_int_equal(dt_registry_new(&o, &r, &err), 0);
    return r;
}

static void
check_manifest(struct dt_registry *r, const char *host, const char *ref)
{
    _cleanup_free_ char *body = NULL, *mt = NULL, *dg = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    size_t len = 0;
    json_t *m;

    int k = dt_registry_get_manifest(r, host, s("repo"), ref, NULL, &body, &len, &mt, &dg, &err);
    if (k < 0)
        fprintf(stderr, "get_manifest: %s\n", err ? err->message : "?");
    assert_int_equal(k, 0);
    assert_string_equal(mt, "application/vnd.oci.image.manifest.v1+json");
    assert_string_equal(dg, s("pushed_digest"));
    m = json_loadb(body, len, 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "config"), "digest")),
                        blob_field("config", -1, "digest"));
    json_decref(m);
}

static void
check_blob_file(struct dt_registry *r, const char *host, const char *which, int layer)
{
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *want = NULL, *got = NULL;
    _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
    size_t wlen, glen;
    int k;

    want = read_path(blob_field(which, layer, "path"), &wlen);
    k = dt_registry_get_blob(r, host, s("repo"), blob_field(which, layer, "digest"), fd,
                             blob_size(which, layer), NULL, NULL, &err);
    if (k < 0)
        fprintf(stderr, "get_blob: %s\n", err->message);
    assert_int_equal(k, 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(read_fd_all(fd, 64 * 1024 * 1024, &got, &glen), 0);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
}

static void
test_plain_manifest(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);

    check_manifest(r, s("plain"), s("tag"));
    check_manifest(r, s("plain"), s("pushed_digest"));
    dt_registry_free(r);
}

static void
test_plain_blobs(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_HTTP, NULL);

    check_blob_file(r, s("plain"), "config", -1);
    check_blob_file(r, s("plain"), NULL, 0);
    check_blob_file(r, s("plain"), NULL, 1);
    dt_registry_free(r);
}

struct pipe_reader {
    int fd;
    char *buf;
    size_t len;
};

static void *
reader(void *p)
{
    struct pipe_reader *pr = p;
    DT_ASSERT(read_fd_all(pr->fd, 64 * 1024 * 1024, &pr->buf, &pr->len) == 0);
    return NULL;
}

struct prog {
    unsigned calls;
    uint64_t last, total;
    bool monotonic;
};

static int
progress(uint64_t done, uint64_t total, void *userdata)
{
    struct prog *p = userdata;

    if (done < p->last)
        p->monotonic = false;
    p->calls++;
    p->last = done;
    p->total = total;
    return 0;
}

static int
cancel_progress(uint64_t done, uint64_t total, void *userdata)
{
    return done > 100000 ? -ECANCELED : 0;
}

static void
test_blob_pipe_progress(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *want = NULL;
    struct pipe_reader pr = { 0 };
    struct prog pg = { .monotonic = true };
    pthread_t t;
    size_t wlen;
    int p[2], k;

    want = read_path(blob_field(NULL, 1, "path"), &wlen);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pr.fd = p[0];
    assert_int_equal(pthread_create(&t, NULL, reader, &pr), 0);
    k = dt_registry_get_blob(r, s("plain"), s("repo"), blob_field(NULL, 1, "digest"), p[1],
                             DT_REGISTRY_SIZE_UNKNOWN, progress, &pg, &err);
    close(p[1]);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(p[0]);
    assert_int_equal(k, 0);
    assert_int_equal(pr.len, wlen);
    assert_memory_equal(pr.buf, want, wlen);
    assert_true(pg.calls > 1);
    assert_true(pg.monotonic);
    assert_int_equal(pg.last, wlen);
    assert_int_equal(pg.total, wlen); /* from Content-Length */
    free(pr.buf);

    /* A progress callback can cancel. */
    _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
    k = dt_registry_get_blob(r, s("plain"), s("repo"), blob_field(NULL, 1, "digest"), fd,
                             blob_size(NULL, 1), cancel_progress, NULL, &err);
    assert_int_equal(k, -ECANCELED);
    dt_registry_free(r);
}

static void
test_missing(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    struct dt_error *err = NULL;
    _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
    int k;

    k = dt_registry_get_manifest(r, s("plain"), s("repo"), "nope", NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -ENOENT);
    fprintf(stderr, "# %s\n", err->message);
    assert_non_null(strstr(err->message, "MANIFEST_UNKNOWN"));
    assert_non_null(strstr(err->message, "test/img:nope"));
    assert_non_null(strstr(err->message, s("plain")));
    dt_error_freep(&err);

    k = dt_registry_get_manifest(r, s("plain"), "no/such/repo", "v1", NULL, NULL, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(k, -ENOENT);
    dt_error_freep(&err);

    k = dt_registry_get_blob(r, s("plain"), s("repo"),
                             "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                             fd, DT_REGISTRY_SIZE_UNKNOWN, NULL, NULL, &err);
    assert_int_equal(k, -ENOENT);
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);

    /* Input validation happens before any request. */
    k = dt_registry_get_manifest(r, s("plain"), "Test/../x", "v1", NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EINVAL);
    dt_error_freep(&err);
    static const char *const bad_repos[] = { "a/./b", "-a", "a_", "a//b", "/a", "a/", "A", "a b" };
    for (size_t i = 0; i < ELEMENTSOF(bad_repos); i++) {
        k = dt_registry_get_manifest(r, s("plain"), bad_repos[i], "v1", NULL, NULL, NULL, NULL,
                                     NULL, &err);
        assert_int_equal(k, -EINVAL);
        dt_error_freep(&err);
    }
    k = dt_registry_get_manifest(r, s("plain"), s("repo"), "sha512:abcd", NULL, NULL, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(k, -EINVAL);
    dt_error_freep(&err);
    k = dt_registry_get_manifest(r, "evil/host?x=", s("repo"), "v1", NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EINVAL);
    dt_error_freep(&err);
    dt_registry_free(r);
}

static void
test_wrong_size(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    struct dt_error *err = NULL;
    uint64_t size = blob_size("config", -1);
    int k;

    for (int delta = -1; delta <= 1; delta += 2) {
        _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
        k = dt_registry_get_blob(r, s("plain"), s("repo"), blob_field("config", -1, "digest"), fd,
                                 size + (uint64_t) (int64_t) delta, NULL, NULL, &err);
        assert_int_equal(k, -EBADMSG);
        fprintf(stderr, "# %s\n", err->message);
        dt_error_freep(&err);
    }
    dt_registry_free(r);
}

static void
test_connection_refused(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    struct dt_error *err = NULL;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    char host[64];
    int fd, k;

    /* A port that was just free: bound but never listening, so nothing accepts there. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
    snprintf(host, sizeof(host), "127.0.0.1:%u", ntohs(sa.sin_port));
    k = dt_registry_get_manifest(r, host, "library/x", "latest", NULL, NULL, NULL, NULL, NULL,
                                 &err);
    close(fd);
    assert_int_equal(k, -ECONNREFUSED);
    assert_non_null(strstr(err->message, "cannot reach registry 127.0.0.1:"));
    dt_error_freep(&err);
    dt_registry_free(r);
}

static void
test_basic_auth(void **state)
{
    struct dt_registry *r;
    struct dt_error *err = NULL;
    int k;

    /* Right credentials, TLS verified against the fixture's CA. */
    r = client(s("user"), s("password"), DT_REGISTRY_SCHEME_HTTPS, s("ca_file"));
    check_manifest(r, s("basic"), s("tag"));
    check_blob_file(r, s("basic"), NULL, 0);
    dt_registry_free(r);

    r = client(s("user"), "wrong", DT_REGISTRY_SCHEME_HTTPS, s("ca_file"));
    k = dt_registry_get_manifest(r, s("basic"), s("repo"), s("tag"), NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EACCES);
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);
    dt_registry_free(r);

    r = client(NULL, NULL, DT_REGISTRY_SCHEME_HTTPS, s("ca_file"));
    k = dt_registry_get_manifest(r, s("basic"), s("repo"), s("tag"), NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EACCES);
    assert_non_null(strstr(err->message, "requires authentication; add credentials"));
    dt_error_freep(&err);
    dt_registry_free(r);

    /* Without the CA the certificate is not trusted. */
    r = client(s("user"), s("password"), DT_REGISTRY_SCHEME_HTTPS, NULL);
    k = dt_registry_get_manifest(r, s("basic"), s("repo"), s("tag"), NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EPROTO);
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);
    dt_registry_free(r);
}

static long
fake_stat(const char *key)
{
    /* The token server's counter, fetched with a plain socket (no second HTTP client). */
    _cleanup_free_ char *req = xasprintf("GET /count HTTP/1.0\r\nHost: x\r\n\r\n");
    _cleanup_free_ char *resp = NULL;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    const char *ts = s("token_server"), *colon = strrchr(ts, ':'), *p;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t len;

    sa.sin_port = htons((uint16_t) strtoul(colon + 1, NULL, 10));
    DT_ASSERT(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
    DT_ASSERT(write_all(fd, req, strlen(req)) == 0);
    DT_ASSERT(read_fd_all(fd, 65536, &resp, &len) == 0);
    p = strstr(resp, "\r\n\r\n");
    DT_ASSERT(p);
    json_t *j = json_loads(p + 4, 0, NULL);
    long v = (long) json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static void
test_token_auth(void **state)
{
    struct dt_registry *r;
    struct dt_error *err = NULL;
    long before = fake_stat("issued");
    int k;

    r = client(s("user"), s("password"), DT_REGISTRY_SCHEME_AUTO, NULL);
    check_manifest(r, s("token"), s("tag"));
    check_manifest(r, s("token"), s("pushed_digest"));
    check_blob_file(r, s("token"), "config", -1);
    check_blob_file(r, s("token"), NULL, 1);
    /* One token for all four requests: it is cached per host+repository. */
    assert_int_equal(fake_stat("issued"), before + 1);
    dt_registry_free(r);

    r = client(s("user"), "wrong", DT_REGISTRY_SCHEME_AUTO, NULL);
    k = dt_registry_get_manifest(r, s("token"), s("repo"), s("tag"), NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EACCES);
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);
    dt_registry_free(r);

    r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    k = dt_registry_get_manifest(r, s("token"), s("repo"), s("tag"), NULL, NULL, NULL, NULL, NULL,
                                 &err);
    assert_int_equal(k, -EACCES);
    assert_non_null(strstr(err->message, "requires authentication; add credentials"));
    dt_error_freep(&err);
    dt_registry_free(r);
}

static char *
storage_blob_path(const char *digest)
{
    _cleanup_free_ char *ca = xstrdup(s("ca_file"));
    const char *hex = digest + 7;

    return xasprintf("%s/storage/docker/registry/v2/blobs/sha256/%.2s/%s/data", dirname(ca), hex,
                     hex);
}

static void
corrupt_storage_blob(const char *digest)
{
    /* Flip one byte of the blob in the registry's storage (same size), so the registry serves
     * bytes that do not match their digest. */
    _cleanup_free_ char *path = storage_blob_path(digest);
    char c;
    int fd;

    fd = open(path, O_RDWR | O_CLOEXEC);
    DT_ASSERT(fd >= 0 || !"storage blob");
    DT_ASSERT(pread(fd, &c, 1, 10) == 1);
    c ^= 0x55;
    DT_ASSERT(pwrite(fd, &c, 1, 10) == 1);
    close(fd);
}

static void
corrupt_storage_manifest(const char *digest)
{
    /* The registry parses manifests it serves, so keep it valid JSON: change one hex digit of
     * the config digest inside it. */
    _cleanup_free_ char *path = storage_blob_path(digest), *buf = NULL;
    size_t len, off;
    const char *p;

    buf = read_path(path, &len);
    p = strstr(buf, blob_field("config", -1, "digest") + 7);
    DT_ASSERT(p);
    off = (size_t) (p - buf);
    buf[off] = buf[off] == '0' ? '1' : '0';
    DT_ASSERT(write_file_at(AT_FDCWD, path, buf, len, 0644) == 0);
}

static void
test_retry_and_redirect(void **state)
{
    struct dt_registry *r = client(s("user"), s("password"), DT_REGISTRY_SCHEME_AUTO, NULL);
    _cleanup_free_ char *body = NULL;
    struct dt_error *err = NULL;
    long before;
    int k;

    /* 503, 503, 200: retried (the fake sends Retry-After: 0, so this is quick). */
    k = dt_registry_get_manifest(r, s("token_server"), "flaky", "twice", NULL, &body, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(k, 0);
    assert_string_equal(body, "{\"schemaVersion\":2}");

    before = fake_stat("flaky_always");
    k = dt_registry_get_manifest(r, s("token_server"), "flaky", "always", NULL, NULL, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(k, -EIO);
    assert_int_equal(fake_stat("flaky_always") - before, 4); /* 1 + 3 retries */
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);
    k = dt_registry_get_manifest(r, s("token_server"), "flaky", "limited", NULL, NULL, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(k, -EAGAIN);
    dt_error_freep(&err);

    /* Basic auth, then a redirect to another host: the blob arrives, the credentials do not. */
    {
        _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
        k = dt_registry_get_blob(r, s("token_server"), "redir", blob_field("config", -1, "digest"),
                                 fd, blob_size("config", -1), NULL, NULL, &err);
        if (k < 0)
            fprintf(stderr, "redirect: %s\n", err->message);
        assert_int_equal(k, 0);
        assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t) blob_size("config", -1));
    }
    assert_int_equal(fake_stat("leaked"), 0);
    dt_registry_free(r);
}

/* Runs last: it damages the registry's storage. */
static void
test_corrupt_content(void **state)
{
    struct dt_registry *r = client(NULL, NULL, DT_REGISTRY_SCHEME_AUTO, NULL);
    struct dt_error *err = NULL;
    _cleanup_close_ int fd = memfd_create("blob", MFD_CLOEXEC);
    int k;

    corrupt_storage_blob(blob_field("config", -1, "digest"));
    k = dt_registry_get_blob(r, s("plain"), s("repo"), blob_field("config", -1, "digest"), fd,
                             blob_size("config", -1), NULL, NULL, &err);
    assert_int_equal(k, -EBADMSG);
    fprintf(stderr, "# %s\n", err->message);
    assert_non_null(strstr(err->message, "content has digest"));
    dt_error_freep(&err);

    corrupt_storage_manifest(s("pushed_digest"));
    k = dt_registry_get_manifest(r, s("plain"), s("repo"), s("pushed_digest"), NULL, NULL, NULL,
                                 NULL, NULL, &err);
    assert_int_equal(k, -EBADMSG);
    fprintf(stderr, "# %s\n", err->message);
    dt_error_freep(&err);
    dt_registry_free(r);
}

static void
test_challenge_parser(void **state)
{
    struct dt_registry_challenge c;
    const char *v;

    v = "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
        "scope=\"repository:library/ubuntu:pull\"";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), 0);
    assert_int_equal(c.scheme, DT_REGISTRY_AUTH_BEARER);
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/ubuntu:pull");
    dt_registry_challenge_done(&c);

    v = "bAsIc REALM = \"a \\\"quoted\\\" realm, with comma\"";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), 0);
    assert_int_equal(c.scheme, DT_REGISTRY_AUTH_BASIC);
    assert_string_equal(c.realm, "a \"quoted\" realm, with comma");
    dt_registry_challenge_done(&c);

    /* Several challenges: Bearer wins over Basic wherever it is. */
    v = "Basic realm=\"r\", Negotiate abc==, Bearer realm=x,service=y";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), 0);
    assert_int_equal(c.scheme, DT_REGISTRY_AUTH_BEARER);
    assert_string_equal(c.realm, "x");
    assert_string_equal(c.service, "y");
    assert_null(c.scope);
    dt_registry_challenge_done(&c);

    v = "Negotiate abc";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), -ENOENT);
    v = "Bearer realm=\"unterminated";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), -EINVAL);
    v = "Bearer realm=\"a\r\nX-Injected: 1\"";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), -EINVAL);
    v = "Bearer realm=";
    assert_int_equal(dt_registry_parse_challenge(v, strlen(v), &c), -EINVAL);
    assert_null(c.realm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_parser),
        cmocka_unit_test(test_plain_manifest),
        cmocka_unit_test(test_plain_blobs),
        cmocka_unit_test(test_blob_pipe_progress),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_wrong_size),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_token_auth),
        cmocka_unit_test(test_retry_and_redirect),
        cmocka_unit_test(test_corrupt_content),
    };

    /* A dying test must not leave the fixture waiting forever: its stdin EOF handles that. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
