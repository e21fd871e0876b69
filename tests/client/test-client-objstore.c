/* SPDX-License-Identifier: Apache-2.0 */
/* Build contexts: AWS SigV4 against AWS's published test vectors, the SDK's MD5 context hash,
 * and daytona_dockerfile_prepare()/daytona_context_upload() against a local fixture standing in
 * for push-access and the S3 service (ListObjectsV2 skip, PutObject body, headers, S3 errors). */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client-int.h"
#include "fixture.h"
#include "testlib.h"

static void
write_file(const char *dir, const char *name, const char *content)
{
    char p[4096];
    int fd;

    (void) snprintf(p, sizeof(p), "%s/%s", dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
    close(fd);
}

static void
md5_hex(const char *const *parts, char out[33])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[16];
    unsigned int n = 0;

    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    for (size_t i = 0; parts[i]; i++)
        EVP_DigestUpdate(md, parts[i], strlen(parts[i]));
    EVP_DigestFinal_ex(md, d, &n);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 16; i++)
        (void) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* AWS's "Signature Version 4 examples" for S3 (GetObject with a Range, and ListObjects). */
static void
test_sigv4_vectors(void **state)
{
    static const char empty[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const char *h1[] = { "Host: examplebucket.s3.amazonaws.com", "Range: bytes=0-9",
                         "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca"
                         "495991b7852b855",
                         "X-Amz-Date: 20130524T000000Z", NULL };
    const char *h2[] = { "Host: examplebucket.s3.amazonaws.com",
                         "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca"
                         "495991b7852b855",
                         "x-amz-date: 20130524T000000Z", NULL };
    struct dc_sigv4 s = {
        .method = "GET", .path = "/test.txt", .amz_date = "20130524T000000Z",
        .region = "us-east-1", .service = "s3", .access_key = "AKIAIOSFODNN7EXAMPLE",
        .secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", .payload_hash = empty,
        .headers = h1,
    };
    char *auth = NULL;

    assert_int_equal(dc_sigv4_authorization(&s, &auth), 0);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                              "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
                              "x-amz-content-sha256;x-amz-date, Signature="
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);

    /* The query is canonicalised (sorted) whatever order it was given in. */
    s.path = "/";
    s.query = "prefix=J&max-keys=2";
    s.headers = h2;
    assert_int_equal(dc_sigv4_authorization(&s, &auth), 0);
    assert_non_null(strstr(auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
                                 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    free(auth);

    s.amz_date = "2013";
    assert_int_equal(dc_sigv4_authorization(&s, &auth), -EINVAL);
}

static void
test_context_hash(void **state)
{
    char *dir = dt_test_mkdtemp("dc-hash");
    char path[4096], got[33], want[33];
    daytona_error *err = NULL;

    write_file(dir, "a.txt", "A");
    (void) snprintf(path, sizeof(path), "%s/sub", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    write_file(dir, "sub/b.txt", "B");
    (void) snprintf(path, sizeof(path), "%s/empty", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    (void) snprintf(path, sizeof(path), "%s/link", dir);
    assert_int_equal(symlink("a.txt", path), 0); /* symlinks are not hashed (Dirent types) */

    /* ObjectStorage.computeHashForPathMd5: archive path, then files (relative path, content)
     * in name order, empty directories as their relative path. */
    assert_int_equal(dc_context_hash(dir, got, &err), 0);
    md5_hex((const char *[]) { dir, "a.txt", "A", "empty", "sub/b.txt", "B", NULL }, want);
    assert_string_equal(got, want);

    (void) snprintf(path, sizeof(path), "%s/a.txt", dir);
    assert_int_equal(dc_context_hash(path, got, &err), 0);
    md5_hex((const char *[]) { path, "A", NULL }, want);
    assert_string_equal(got, want);

    (void) snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(dc_context_hash(path, got, &err), -ENOENT);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "missing"));
    daytona_error_free(err);

    dt_test_rm_rf(dir);
    free(dir);
}

static void
test_abs_path(void **state)
{
    char *p = dc_abs_path("/a/./b//c/../d/");
    assert_string_equal(p, "/a/b/d");
    free(p);
    p = dc_abs_path("/..");
    assert_string_equal(p, "/");
    free(p);
}

/* The fixture: push-access, ListObjectsV2 (empty or with Contents), PutObject (kept). */
struct s3fx {
    bool present;
    bool put_fails;
    int lists, puts;
    char put_target[4096];
    char put_head[16384];
    char *put_body;
    size_t put_len;
};

static bool
s3_handler(struct fixture *fx, int fd, struct fx_req *r)
{
    struct s3fx *s = fx->ud;
    char buf[1024];

    if (strcmp(r->target, "/api/object-storage/push-access") == 0) {
        (void) snprintf(buf, sizeof(buf),
                        "{\"accessKey\":\"AK\",\"secret\":\"SEC\",\"sessionToken\":\"TOK\","
                        "\"storageUrl\":\"http://127.0.0.1:%d/s3\",\"organizationId\":\"org1\","
                        "\"bucket\":\"bkt\",\"region\":\"us-east-1\"}", fx->port);
        fx_respond(fd, 200, "application/json", buf);
        return true;
    }
    if (strcmp(r->method, "GET") == 0 && strncmp(r->target, "/s3/bkt/?", 9) == 0) {
        s->lists++;
        fx_respond(fd, 200, "application/xml",
                   s->present ? "<ListBucketResult><KeyCount>1</KeyCount><Contents><Key>x</Key>"
                                "</Contents></ListBucketResult>"
                              : "<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>");
        return true;
    }
    if (strcmp(r->method, "PUT") == 0) {
        s->puts++;
        (void) snprintf(s->put_target, sizeof(s->put_target), "%s", r->target);
        (void) snprintf(s->put_head, sizeof(s->put_head), "%s", r->head);
        free(s->put_body);
        s->put_body = malloc(r->body_kept + 1);
        memcpy(s->put_body, r->body, r->body_kept);
        s->put_len = r->body_kept;
        if (s->put_fails) {
            fx_respond(fd, 403, "application/xml",
                       "<Error><Code>SignatureDoesNotMatch</Code><Message>bad</Message></Error>");
            return true;
        }
        fx_writes(fd, "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\n\r\n");
        return true;
    }
    fx_respond(fd, 404, "application/json", "{\"statusCode\":404,\"message\":\"no route\"}");
    return true;
}

static daytona_client *
new_client(struct fixture *fx)
{
    struct daytona_config cfg = { .api_key = "k", .ignore_env = true, .ignore_config_file = true };
    char url[128];
    daytona_client *c = NULL;
    daytona_error *err = NULL;

    fx_url(fx, url, sizeof(url));
    cfg.api_url = url;
    assert_int_equal(daytona_client_new(&cfg, &c, &err), 0);
    return c;
}

static const char *
header(const char *head, const char *name, char *out, size_t n)
{
    for (const char *p = head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, strlen(name)) == 0 && p[strlen(name)] == ':') {
            const char *v = p + strlen(name) + 1;
            while (*v == ' ')
                v++;
            (void) snprintf(out, n, "%.*s", (int) strcspn(v, "\r\n"), v);
            return out;
        }
    }
    return NULL;
}

static void
test_prepare_and_upload(void **state)
{
    struct s3fx s = { 0 };
    struct fixture fx;
    char *dir = dt_test_mkdtemp("dc-ctx");
    char *df = NULL, **hashes = NULL, want_hash[33], path[4096], want[8192], val[256];
    daytona_error *err = NULL;
    daytona_client *c;

    write_file(dir, "hello.txt", "hello context\n");
    fx_start(&fx, s3_handler, &s);
    c = new_client(&fx);

    assert_int_equal(daytona_dockerfile_prepare(c,
                                                "FROM base\n"
                                                "# COPY nothing.txt /x\n"
                                                "COPY --chown=1:1 hello.txt \\\n   /hello.txt\n"
                                                "COPY --from=build /out /out\n"
                                                "ADD https://example.com/x /x\n"
                                                "RUN cat /hello.txt",
                                                dir, &df, &hashes, &err),
                     0);
    assert_null(err);
    (void) snprintf(path, sizeof(path), "%s/hello.txt", dir);
    (void) snprintf(want, sizeof(want),
                    "FROM base\n# COPY nothing.txt /x\nCOPY --chown=1:1 %s /hello.txt\n"
                    "COPY --from=build /out /out\nADD https://example.com/x /x\n"
                    "RUN cat /hello.txt\n", path);
    assert_string_equal(df, want);
    md5_hex((const char *[]) { path, "hello context\n", NULL }, want_hash);
    assert_non_null(hashes[0]);
    assert_string_equal(hashes[0], want_hash);
    assert_null(hashes[1]);
    assert_int_equal(s.lists, 1);
    assert_int_equal(s.puts, 1);

    /* PutObject: the key, the signed headers, the body's sha256, a ustar entry at the absolute
     * path without its '/'. */
    (void) snprintf(want, sizeof(want), "/s3/bkt/org1/%s/context.tar?x-id=PutObject", want_hash);
    assert_string_equal(s.put_target, want);
    assert_non_null(header(s.put_head, "x-amz-security-token", val, sizeof(val)));
    assert_string_equal(val, "TOK");
    assert_non_null(header(s.put_head, "authorization", val, sizeof(val)));
    assert_non_null(strstr(val, "AWS4-HMAC-SHA256 Credential=AK/"));
    assert_non_null(strstr(val, "/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-"
                                "sha256;x-amz-date;x-amz-security-token, Signature="));
    assert_non_null(header(s.put_head, "x-amz-content-sha256", val, sizeof(val)));
    {
        char sha[65];
        dc_sha256_hex(s.put_body, s.put_len, sha);
        assert_string_equal(val, sha);
    }
    assert_int_equal(s.put_len, 512 + 512 + 1024);
    assert_string_equal(s.put_body, path + 1);
    assert_memory_equal(s.put_body + 257, "ustar", 6);
    assert_int_equal(s.put_body[156], '0');
    assert_memory_equal(s.put_body + 512, "hello context\n", 14);
    daytona_strv_free(hashes);
    free(df);

    /* Present already (ListObjectsV2 has Contents): no second upload, same hash. */
    s.present = true;
    {
        char h[33];
        assert_int_equal(daytona_context_upload(c, path, h, &err), 0);
        assert_string_equal(h, want_hash);
        assert_int_equal(s.lists, 2);
        assert_int_equal(s.puts, 1);
    }

    /* A missing source names itself; a directory source is archived recursively. */
    assert_int_equal(daytona_dockerfile_prepare(c, "COPY nope.txt /x\n", dir, &df, &hashes, &err),
                     -ENOENT);
    assert_non_null(strstr(err->message, "nope.txt"));
    daytona_error_free(err);
    err = NULL;

    /* S3 errors carry the status. */
    s.present = false;
    s.put_fails = true;
    {
        char h[33];
        assert_true(daytona_context_upload(c, dir, h, &err) < 0);
        assert_non_null(err);
        assert_int_equal(err->http_status, 403);
        daytona_error_free(err);
        err = NULL;
        assert_int_equal(s.put_body[156], '5'); /* the directory entry comes first */
    }

    daytona_client_free(c);
    fx_stop(&fx);
    free(s.put_body);
    dt_test_rm_rf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigv4_vectors),
        cmocka_unit_test(test_context_hash),
        cmocka_unit_test(test_abs_path),
        cmocka_unit_test(test_prepare_and_upload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
