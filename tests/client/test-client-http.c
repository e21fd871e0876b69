/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona against a local HTTP fixture: error bodies (JSON, NestJS-style, HTML) become
 * daytona_error fields, timeouts, refused connections, truncated downloads, the create body,
 * list pagination, the state wait, and a 64 MiB upload streamed with constant memory. */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daytona/daytona.h"
#include "fixture.h"
#include "testlib.h"

#define SANDBOX_JSON                                                                               \
    "{\"id\":\"sb1\",\"name\":\"one\",\"state\":\"started\",\"env\":{},"                        \
    "\"labels\":{\"code-toolbox-language\":\"python\"},\"toolboxProxyUrl\":\"http://127.0.0.1:%d/" \
    "toolbox\"}"

static daytona_client *
new_client(struct fixture *fx, long timeout_ms)
{
    struct daytona_config cfg = { .api_key = "k", .ignore_env = true, .ignore_config_file = true,
                                  .request_timeout_ms = timeout_ms };
    char url[128];
    daytona_client *c = NULL;
    daytona_error *err = NULL;

    fx_url(fx, url, sizeof(url));
    cfg.api_url = url;
    assert_int_equal(daytona_client_new(&cfg, &c, &err), 0);
    assert_null(err);
    return c;
}

/* Routes shared by several tests. */
static bool
handler(struct fixture *fx, int fd, struct fx_req *r)
{
    const char *mode = fx->ud;
    char buf[1024];

    if (strcmp(mode, "json404") == 0) {
        fx_respond(fd, 404, "application/json",
                   "{\"statusCode\":404,\"message\":\"Sandbox not found\",\"error\":\"Not Found\","
                   "\"code\":\"NOT_FOUND\",\"source\":\"DAYTONA_API\"}");
        return true;
    }
    if (strcmp(mode, "html500") == 0) {
        fx_respond(fd, 500, "text/html", "<html>\n<body>\n  Internal\n  Error\n</body></html>\n");
        return true;
    }
    if (strcmp(mode, "nest400") == 0) {
        fx_respond(fd, 400, "application/json",
                   "{\"statusCode\":400,\"message\":[\"name must be a string\"],"
                   "\"error\":\"Bad Request\"}");
        return true;
    }
    if (strcmp(mode, "501") == 0) {
        fx_respond(fd, 501, "application/json",
                   "{\"statusCode\":501,\"message\":\"volumes are not implemented\","
                   "\"code\":\"NOT_IMPLEMENTED\"}");
        return true;
    }
    if (strcmp(mode, "slow") == 0) {
        sleep(2);
        fx_respond(fd, 200, "application/json", "{}");
        return false;
    }
    if (strcmp(mode, "empty") == 0)
        return false; /* close without any answer */
    /* "api": a small fake API. */
    if (strncmp(r->target, "/api/sandbox/sb1", 16) == 0 && strcmp(r->method, "GET") == 0) {
        snprintf(buf, sizeof(buf), SANDBOX_JSON, fx->port);
        fx_respond(fd, 200, "application/json", buf);
        return true;
    }
    if (strcmp(r->target, "/api/sandbox") == 0 && strcmp(r->method, "POST") == 0) {
        snprintf(buf, sizeof(buf), SANDBOX_JSON, fx->port);
        fx_respond(fd, 200, "application/json", buf);
        return true;
    }
    if (strncmp(r->target, "/api/sandbox?", 13) == 0) {
        if (strstr(r->target, "cursor=c2"))
            fx_respond(fd, 200, "application/json",
                       "{\"items\":[{\"id\":\"b\",\"state\":\"stopped\"}],\"nextCursor\":null}");
        else
            fx_respond(fd, 200, "application/json",
                       "{\"items\":[{\"id\":\"a\",\"state\":\"started\",\"labels\":{\"x\":\"1\"}}],"
                       "\"nextCursor\":\"c2\"}");
        return true;
    }
    if (strncmp(r->target, "/toolbox/sb1/files/download", 27) == 0) {
        if (strstr(r->target, "missing")) {
            fx_respond(fd, 404, "application/json",
                       "{\"message\":\"no such file\",\"code\":\"FILE_NOT_FOUND\","
                       "\"source\":\"DAYTONA_DAEMON\",\"statusCode\":404}");
            return true;
        }
        /* Announce 1000 bytes, send 10, hang up: a truncated stream. */
        fx_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        return false;
    }
    if (strncmp(r->target, "/toolbox/sb1/files/bulk-upload", 30) == 0) {
        fx_respond(fd, 200, "application/json", "{}");
        return true;
    }
    fx_respond(fd, 404, "text/plain", "no route");
    return true;
}

static void
test_error_json(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;

    fx_start(&fx, handler, "json404");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_get(c, "nope", &sb, &err), -ENOENT);
    assert_non_null(err);
    assert_int_equal(err->code, ENOENT);
    assert_int_equal(err->http_status, 404);
    assert_string_equal(err->server_code, "NOT_FOUND");
    assert_string_equal(err->source, "DAYTONA_API");
    assert_non_null(strstr(err->message, "get sandbox 'nope'"));
    assert_non_null(strstr(err->message, "Sandbox not found"));
    /* The request carried our headers. */
    assert_non_null(strstr(fx.last.head, "Authorization: Bearer k\r\n"));
    assert_non_null(strstr(fx.last.head, "GET /api/sandbox/nope HTTP/1.1"));
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

static void
test_error_other_bodies(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    struct daytona_volume **v = NULL;
    size_t n = 0;

    fx_start(&fx, handler, "html500");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_get(c, "x", &sb, &err), -EIO);
    assert_int_equal(err->http_status, 500);
    assert_null(err->server_code);
    assert_null(strchr(err->message, '\n'));
    assert_non_null(strstr(err->message, "<html> <body> Internal Error"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    fx_start(&fx, handler, "nest400");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_get(c, "x", &sb, &err), -EINVAL);
    assert_non_null(strstr(err->message, "name must be a string"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    fx_start(&fx, handler, "501");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_volume_list(c, &v, &n, &err), -EOPNOTSUPP);
    assert_string_equal(err->server_code, "NOT_IMPLEMENTED");
    assert_non_null(strstr(err->message, "list volumes: volumes are not implemented"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    /* The server hangs up without answering. */
    fx_start(&fx, handler, "empty");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_get(c, "x", &sb, &err), -ECONNRESET);
    assert_int_equal(err->http_status, 0);
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

static void
test_timeout_and_refused(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    int port;

    fx_start(&fx, handler, "slow");
    c = new_client(&fx, 300);
    assert_int_equal(daytona_sandbox_get(c, "x", &sb, &err), -ETIMEDOUT);
    assert_non_null(strstr(err->message, "get sandbox 'x'"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    port = fx.port;
    fx_stop(&fx);

    /* Nobody listens on the port any more. */
    fx.port = port;
    c = new_client(&fx, 300);
    assert_int_equal(daytona_sandbox_get(c, "x", &sb, &err), -ECONNREFUSED);
    daytona_error_free(err);
    daytona_client_free(c);
}

static void
test_create_body(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    struct daytona_volume_mount vols[] = { { "v1", "/data", NULL } };
    struct daytona_create_params p = {
        .name = "n", .image = "alpine:3", .env = (const char *[]) { "A=1", "B=x=y", NULL },
        .labels = (const char *[]) { "team=x", NULL }, .is_public = true, .cpu = 2,
        .memory = 4, .has_auto_stop = true, .auto_stop_interval = 0, .ephemeral = true,
        .volumes = vols, .n_volumes = 1, .network_block_all = true, .target = "eu",
        .user = "daytona",
    };
    json_t *j;

    fx_start(&fx, handler, "api");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_create(c, &p, -1, &sb, &err), 0);
    assert_string_equal(sb->id, "sb1");
    assert_string_equal(daytona_sandbox_label(sb, "code-toolbox-language"), "python");
    daytona_sandbox_free(sb);
    j = json_loads(fx.last.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "n");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "buildInfo"), "dockerfileContent")),
        "FROM alpine:3\n");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "env"), "B")), "x=y");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "labels"), "code-toolbox-language")),
        "python");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "labels"), "team")),
                        "x");
    assert_true(json_is_true(json_object_get(j, "public")));
    assert_true(json_is_true(json_object_get(j, "networkBlockAll")));
    assert_int_equal(json_integer_value(json_object_get(j, "autoStopInterval")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "autoDeleteInterval")), 0);
    assert_int_equal((int) json_number_value(json_object_get(j, "cpu")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "target")), "eu");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "volumes"), 0), "mountPath")),
                        "/data");
    assert_null(json_object_get(j, "snapshot"));
    json_decref(j);

    /* Contradictions are refused before any request. */
    p.snapshot = "s";
    fx.n_requests = 0;
    assert_int_equal(daytona_sandbox_create(c, &p, -1, &sb, &err), -EINVAL);
    assert_int_equal(fx.n_requests, 0);
    daytona_error_free(err);
    err = NULL;
    p.snapshot = NULL;
    p.env = (const char *[]) { "NOEQUALS", NULL };
    assert_int_equal(daytona_sandbox_create(c, &p, -1, &sb, &err), -EINVAL);
    assert_non_null(strstr(err->message, "NOEQUALS"));
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

static void
test_list_pages(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox_list *l = NULL;
    struct daytona_list_params p = { .limit = 1, .labels = (const char *[]) { "x=1", NULL },
                                     .states = (const char *[]) { "started", "stopped", NULL } };

    fx_start(&fx, handler, "api");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_list(c, &p, &l, &err), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->next_cursor, "c2");
    assert_string_equal(daytona_sandbox_label(l->items[0], "x"), "1");
    assert_non_null(strstr(fx.last.target, "labels=%7B%22x%22%3A%221%22%7D"));
    assert_non_null(strstr(fx.last.target, "states=started&states=stopped"));
    daytona_sandbox_list_free(l);
    assert_int_equal(daytona_sandbox_list_all(c, &p, &l, &err), 0);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->items[1]->id, "b");
    assert_null(l->next_cursor);
    daytona_sandbox_list_free(l);
    daytona_client_free(c);
    fx_stop(&fx);
}

static void
test_download_errors(void **state)
{
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    char *data = NULL;
    size_t len = 0;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    fx_start(&fx, handler, "api");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_fs_download_fd(c, "sb1", "/trunc", fd, NULL, NULL, NULL, &err),
                     -EPROTO);
    assert_non_null(strstr(err->message, "download '/trunc'"));
    daytona_error_free(err);
    err = NULL;
    assert_int_equal(daytona_fs_download_buffer(c, "sb1", "/missing", 100, &data, &len, &err),
                     -ENOENT);
    assert_string_equal(err->server_code, "FILE_NOT_FOUND");
    assert_non_null(strstr(err->message, "no such file"));
    daytona_error_free(err);
    close(fd);
    daytona_client_free(c);
    fx_stop(&fx);
}

static long
max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void
test_upload_streams(void **state)
{
    const uint64_t size = 64ull << 20;
    char path[] = "/tmp/daytona-upload-XXXXXX";
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    uint8_t block[65536];
    long before;
    int fd = mkstemp(path), pfd[2];

    assert_true(fd >= 0);
    (void) unlink(path);
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (uint8_t) (i * 7 + 3);
    for (uint64_t off = 0; off < size; off += sizeof(block))
        assert_int_equal(write(fd, block, sizeof(block)), (ssize_t) sizeof(block));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

    fx_start(&fx, handler, "api");
    c = new_client(&fx, 60000);
    before = max_rss_kb();
    assert_int_equal(daytona_fs_upload_fd(c, "sb1", fd, "/home/daytona/big.bin", NULL, NULL,
                                          &err), 0);
    assert_null(err);
    /* Memory did not grow with the file (the fixture discards it too). */
    assert_true(max_rss_kb() - before < 16 * 1024);
    assert_false(fx.last.chunked);
    assert_non_null(strstr(fx.last.head, "multipart/form-data; boundary="));
    assert_non_null(
        strstr(fx.last.body, "name=\"files[0].path\"\r\n\r\n/home/daytona/big.bin\r\n"));
    assert_non_null(strstr(fx.last.body, "name=\"files[0].file\"; filename=\"big.bin\""));
    assert_true(fx.last.body_len > size && fx.last.body_len < size + 1024);
    close(fd);

    /* From a pipe: no length, so chunked. */
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    assert_int_equal(write(pfd[1], "hello pipe", 10), 10);
    close(pfd[1]);
    assert_int_equal(daytona_fs_upload_fd(c, "sb1", pfd[0], "p.txt", NULL, NULL, &err), 0);
    assert_true(fx.last.chunked);
    assert_non_null(strstr(fx.last.body, "\r\n\r\nhello pipe\r\n--"));
    close(pfd[0]);
    daytona_client_free(c);
    fx_stop(&fx);
}

/* GET /api/sandbox/w: creating twice, then started (or error when ud says so). */
static bool
wait_handler(struct fixture *fx, int fd, struct fx_req *r)
{
    const char *final = fx->ud;
    char buf[256];

    snprintf(buf, sizeof(buf),
             "{\"id\":\"w\",\"state\":\"%s\",\"errorReason\":\"disk on fire\"}",
             fx->n_requests < 3 ? "creating" : final);
    fx_respond(fd, 200, "application/json", buf);
    return true;
}

static void
test_wait(void **state)
{
    static const char *const started[] = { "started", NULL };
    struct fixture fx;
    daytona_client *c;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;

    fx_start(&fx, wait_handler, "started");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_wait(c, "w", started, 10, &sb, &err), 0);
    assert_string_equal(sb->state, "started");
    assert_int_equal(fx.n_requests, 3);
    daytona_sandbox_free(sb);
    daytona_client_free(c);
    fx_stop(&fx);

    fx_start(&fx, wait_handler, "error");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_wait(c, "w", started, 10, &sb, &err), -EIO);
    assert_non_null(strstr(err->message, "disk on fire"));
    daytona_error_free(err);
    err = NULL;
    daytona_client_free(c);
    fx_stop(&fx);

    fx_start(&fx, wait_handler, "creating");
    c = new_client(&fx, 5000);
    assert_int_equal(daytona_sandbox_wait(c, "w", started, 1, &sb, &err), -ETIMEDOUT);
    daytona_error_free(err);
    daytona_client_free(c);
    fx_stop(&fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_json),      cmocka_unit_test(test_error_other_bodies),
        cmocka_unit_test(test_timeout_and_refused), cmocka_unit_test(test_create_body),
        cmocka_unit_test(test_list_pages),      cmocka_unit_test(test_download_errors),
        cmocka_unit_test(test_upload_streams),  cmocka_unit_test(test_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
