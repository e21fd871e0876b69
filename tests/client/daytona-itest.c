/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona against a real `daytonad serve` (started by run-client-itests, which passes
 * DAYTONA_API_URL / DAYTONA_API_KEY): sandbox lifecycle, labels and listing, a 20 MiB file up
 * and down byte-exact, the other file calls, execute exit codes and timeouts, sessions with log
 * follow, the PTY (echo, resize, exit code), snapshots/volumes (or their clean 501) and build
 * context uploads. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daytona/daytona.h"

static int failures;
static daytona_error *err;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s%s%s\n", __FILE__, __LINE__, #cond,                     \
                    err ? " -- " : "", err ? err->message : "");                                  \
            failures++;                                                                            \
        }                                                                                          \
        daytona_error_free(err);                                                                   \
        err = NULL;                                                                                \
    } while (0)

static void
step(const char *what)
{
    printf("== %s\n", what);
    fflush(stdout);
}

static void
test_files(daytona_client *c, const char *sb)
{
    const size_t size = 20u << 20;
    char up[] = "/tmp/daytona-itest-up-XXXXXX", down[] = "/tmp/daytona-itest-down-XXXXXX";
    int ufd = mkstemp(up), dfd = mkstemp(down), rfd;
    uint8_t *a = malloc(size), *b = malloc(size);
    struct daytona_file_info *fi = NULL, *list = NULL;
    struct daytona_match *m = NULL;
    struct daytona_replace_result *rr = NULL;
    char **found = NULL, *small = NULL;
    uint64_t got = 0;
    size_t n = 0, len = 0;
    bool seen = false;

    step("files: 20 MiB up and down");
    rfd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    CHECK(rfd >= 0 && ufd >= 0 && dfd >= 0 && a && b);
    for (size_t off = 0; off < size;) {
        ssize_t k = read(rfd, a + off, size - off);
        CHECK(k > 0);
        if (k <= 0)
            break;
        off += (size_t) k;
    }
    close(rfd);
    CHECK(write(ufd, a, size) == (ssize_t) size);
    CHECK(lseek(ufd, 0, SEEK_SET) == 0);
    CHECK(daytona_fs_upload_fd(c, sb, ufd, "/tmp/big.bin", NULL, NULL, &err) == 0);
    CHECK(daytona_fs_download_fd(c, sb, "/tmp/big.bin", dfd, &got, NULL, NULL, &err) == 0);
    CHECK(daytona_fs_upload_file(c, sb, up, "/tmp/big2.bin", &err) == 0);
    CHECK(daytona_fs_download_file(c, sb, "/tmp/big2.bin", down, &err) == 0);
    CHECK(got == size);
    CHECK(pread(dfd, b, size, 0) == (ssize_t) size);
    CHECK(memcmp(a, b, size) == 0);
    close(ufd);
    close(dfd);
    unlink(up);
    unlink(down);
    free(a);
    free(b);

    step("files: other calls");
    CHECK(daytona_fs_info(c, sb, "/tmp/big.bin", &fi, &err) == 0);
    CHECK(fi && fi->size == size && !fi->is_dir);
    daytona_file_info_free(fi);
    fi = NULL;
    CHECK(daytona_fs_mkdir(c, sb, "/tmp/d", "750", &err) == 0);
    CHECK(daytona_fs_upload_buffer(c, sb, "alpha beta\ngamma\n", 17, "/tmp/d/a.txt", &err) == 0);
    CHECK(daytona_fs_upload_buffer(c, sb, "", 0, "/tmp/d/empty.txt", &err) == 0);
    CHECK(daytona_fs_list(c, sb, "/tmp/d", &list, &n, &err) == 0);
    CHECK(n == 2);
    for (size_t i = 0; i < n; i++)
        if (list[i].name && strcmp(list[i].name, "a.txt") == 0 && list[i].size == 17)
            seen = true;
    CHECK(seen);
    daytona_file_infos_free(list, n);
    CHECK(daytona_fs_find(c, sb, "/tmp/d", "gamma", &m, &n, &err) == 0);
    CHECK(n == 1 && m && m[0].line == 2 && strstr(m[0].file, "a.txt"));
    daytona_matches_free(m, n);
    CHECK(daytona_fs_search(c, sb, "/tmp/d", "*.txt", &found, &err) == 0);
    CHECK(found && found[0] && found[1] && !found[2]);
    daytona_strv_free(found);
    CHECK(daytona_fs_replace(c, sb, (const char *[]) { "/tmp/d/a.txt", NULL }, "beta", "BETA",
                             &rr, &n, &err) == 0);
    CHECK(n == 1 && rr && rr[0].success);
    daytona_replace_results_free(rr, n);
    CHECK(daytona_fs_move(c, sb, "/tmp/d/a.txt", "/tmp/d/b.txt", &err) == 0);
    CHECK(daytona_fs_download_buffer(c, sb, "/tmp/d/b.txt", 100, &small, &len, &err) == 0);
    CHECK(small && strcmp(small, "alpha BETA\ngamma\n") == 0);
    free(small);
    small = NULL;
    CHECK(daytona_fs_set_permissions(c, sb, "/tmp/d/b.txt", NULL, NULL, "600", &err) == 0);
    CHECK(daytona_fs_info(c, sb, "/tmp/d/b.txt", &fi, &err) == 0);
    CHECK(fi && fi->permissions && strcmp(fi->permissions, "0600") == 0);
    daytona_file_info_free(fi);
    CHECK(daytona_fs_download_buffer(c, sb, "/tmp/nope", 100, &small, &len, &err) == -ENOENT);
    CHECK(daytona_fs_delete(c, sb, "/tmp/d", true, &err) == 0);
    CHECK(daytona_fs_info(c, sb, "/tmp/d", &fi, &err) == -ENOENT);
}

static void
test_exec(daytona_client *c, const char *sb)
{
    struct daytona_exec_result r = { 0 };

    step("process: execute");
    CHECK(daytona_process_exec(c, sb, "echo $FOO; pwd; exit 42", "/tmp",
                               (const char *[]) { "FOO=bar baz", NULL }, 30, &r, &err) == 0);
    CHECK(r.exit_code == 42);
    CHECK(r.output && strcmp(r.output, "bar baz\n/tmp\n") == 0);
    daytona_exec_result_done(&r);
    CHECK(daytona_process_exec(c, sb, "true", NULL, NULL, -1, &r, &err) == 0);
    CHECK(r.exit_code == 0);
    daytona_exec_result_done(&r);
    CHECK(daytona_process_exec(c, sb, "sleep 10", NULL, NULL, 1, &r, &err) == -ETIMEDOUT);

    /* code-run needs the language's interpreter in the image: only when python3 is there. */
    CHECK(daytona_process_exec(c, sb, "command -v python3 >/dev/null", NULL, NULL, 30, &r,
                               &err) == 0);
    if (r.exit_code == 0) {
        daytona_exec_result_done(&r);
        step("process: code run");
        CHECK(daytona_process_code_run(c, sb, "import sys\nprint(sys.argv[1:], 6 * 7)", NULL,
                                       (const char *[]) { "a", NULL }, NULL, 30, &r, &err) == 0);
        CHECK(r.exit_code == 0 && r.output && strstr(r.output, "['a'] 42"));
    }
    daytona_exec_result_done(&r);
}

struct collect {
    char out[4096], err[4096];
    size_t ol, el;
};

static int
col_out(const char *d, size_t n, void *ud)
{
    struct collect *c = ud;
    if (c->ol + n < sizeof(c->out)) {
        memcpy(c->out + c->ol, d, n);
        c->ol += n;
    }
    return 0;
}

static int
col_err(const char *d, size_t n, void *ud)
{
    struct collect *c = ud;
    if (c->el + n < sizeof(c->err)) {
        memcpy(c->err + c->el, d, n);
        c->el += n;
    }
    return 0;
}

static void
test_sessions(daytona_client *c, const char *sb)
{
    struct daytona_session_exec_result r = { 0 };
    struct daytona_command *cmd = NULL;
    struct daytona_session *s = NULL, *list = NULL;
    struct collect col = { 0 };
    char *so = NULL, *se = NULL;
    size_t n = 0;

    step("sessions");
    CHECK(daytona_session_create(c, sb, "itest", &err) == 0);
    CHECK(daytona_session_exec(c, sb, "itest", "export X=42; cd /tmp", false, 30, &r, &err) == 0);
    daytona_session_exec_result_done(&r);
    CHECK(daytona_session_exec(c, sb, "itest", "echo $X $(pwd); echo e >&2; false", false, 30, &r,
                               &err) == 0);
    CHECK(r.has_exit_code && r.exit_code == 1);
    CHECK(r.std_out && strcmp(r.std_out, "42 /tmp\n") == 0);
    CHECK(r.std_err && strcmp(r.std_err, "e\n") == 0);
    daytona_session_exec_result_done(&r);

    CHECK(daytona_session_exec(c, sb, "itest",
                               "for i in 1 2 3; do echo o$i; echo e$i >&2; sleep 0.1; done; (exit 3)",
                               true, 0, &r, &err) == 0);
    CHECK(r.cmd_id && !r.has_exit_code);
    CHECK(daytona_session_command_follow(c, sb, "itest", r.cmd_id, col_out, col_err, &col,
                                        &err) == 0);
    col.out[col.ol] = col.err[col.el] = 0;
    CHECK(strcmp(col.out, "o1\no2\no3\n") == 0);
    CHECK(strcmp(col.err, "e1\ne2\ne3\n") == 0);
    CHECK(daytona_session_command_get(c, sb, "itest", r.cmd_id, &cmd, &err) == 0);
    CHECK(cmd && cmd->has_exit_code && cmd->exit_code == 3);
    daytona_command_free(cmd);
    CHECK(daytona_session_command_logs(c, sb, "itest", r.cmd_id, &so, &se, &err) == 0);
    CHECK(so && strcmp(so, "o1\no2\no3\n") == 0 && se && strcmp(se, "e1\ne2\ne3\n") == 0);
    free(so);
    free(se);
    daytona_session_exec_result_done(&r);

    /* Input to a running command. */
    CHECK(daytona_session_exec(c, sb, "itest", "read line; echo got:$line", true, 0, &r,
                               &err) == 0);
    CHECK(daytona_session_command_input(c, sb, "itest", r.cmd_id, "hello\n", &err) == 0);
    memset(&col, 0, sizeof(col));
    CHECK(daytona_session_command_follow(c, sb, "itest", r.cmd_id, col_out, col_err, &col,
                                        &err) == 0);
    col.out[col.ol] = 0;
    CHECK(strstr(col.out, "got:hello") != NULL);
    daytona_session_exec_result_done(&r);

    CHECK(daytona_session_get(c, sb, "itest", &s, &err) == 0);
    CHECK(s && s->n_commands == 4);
    daytona_session_free(s);
    CHECK(daytona_session_list(c, sb, &list, &n, &err) == 0);
    CHECK(n >= 1);
    daytona_sessions_free(list, n);
    CHECK(daytona_session_delete(c, sb, "itest", &err) == 0);
    CHECK(daytona_session_get(c, sb, "itest", &s, &err) == -ENOENT);
}

struct screen {
    char buf[65536];
    size_t len;
};

static void
on_screen(const void *d, size_t n, void *ud)
{
    struct screen *s = ud;
    if (s->len + n < sizeof(s->buf)) {
        memcpy(s->buf + s->len, d, n);
        s->len += n;
        s->buf[s->len] = 0;
    }
}

/* Drive the PTY until NEEDLE shows up (or 10 s pass). */
static bool
pty_expect(daytona_pty *pty, struct screen *s, const char *needle)
{
    for (int i = 0; i < 100; i++) {
        struct pollfd p = { .fd = daytona_pty_fd(pty), .events = POLLIN };
        if (strstr(s->buf, needle))
            return true;
        if (!daytona_pty_pending(pty))
            (void) poll(&p, 1, 100);
        if (daytona_pty_step(pty, on_screen, s, &err) <= 0)
            return strstr(s->buf, needle) != NULL;
    }
    return strstr(s->buf, needle) != NULL;
}

static void
test_pty(daytona_client *c, const char *sb)
{
    struct daytona_pty_params prm = { .cols = 100, .rows = 40,
                                      .env = (const char *[]) { "ITEST=pty-env-ok", NULL } };
    struct screen *s = calloc(1, sizeof(*s));
    daytona_pty *pty = NULL;
    int code = -1;

    step("pty");
    CHECK(daytona_pty_create(c, sb, &prm, &pty, &err) == 0);
    if (!pty) {
        free(s);
        return;
    }
    CHECK(daytona_pty_write(pty, "echo hi-$((40+2)) $ITEST\n", 25, &err) == 0);
    CHECK(pty_expect(pty, s, "hi-42 pty-env-ok"));
    CHECK(daytona_pty_resize(pty, 120, 50, &err) == 0);
    CHECK(daytona_pty_write(pty, "stty size\n", 10, &err) == 0);
    CHECK(pty_expect(pty, s, "50 120"));
    {
        /* Detach and reattach: the shell keeps running, with its state. */
        char *id = strdup(daytona_pty_id(pty));
        CHECK(daytona_pty_write(pty, "PTYVAR=kept\n", 12, &err) == 0);
        CHECK(pty_expect(pty, s, "PTYVAR=kept"));
        daytona_pty_close(pty);
        pty = NULL;
        s->len = 0;
        s->buf[0] = 0;
        CHECK(daytona_pty_connect(c, sb, id, &pty, &err) == 0);
        free(id);
        if (!pty) {
            free(s);
            return;
        }
        CHECK(daytona_pty_write(pty, "echo v=$PTYVAR\n", 15, &err) == 0);
        CHECK(pty_expect(pty, s, "v=kept"));
    }
    CHECK(daytona_pty_write(pty, "exit 7\n", 7, &err) == 0);
    CHECK(daytona_pty_wait(pty, on_screen, s, 10000, &err) == 0);
    CHECK(daytona_pty_exit_code(pty, &code, NULL) == 0 && code == 7);
    daytona_pty_close(pty);

    /* A second PTY, killed from the outside. */
    pty = NULL;
    CHECK(daytona_pty_create(c, sb, NULL, &pty, &err) == 0);
    if (pty) {
        CHECK(daytona_pty_kill(pty, &err) == 0);
        (void) daytona_pty_wait(pty, NULL, NULL, 10000, &err);
        daytona_error_free(err);
        err = NULL;
        daytona_pty_close(pty);
    }
    free(s);
}

static void
test_snapshots_volumes(daytona_client *c)
{
    struct daytona_snapshot_list *sl = NULL;
    struct daytona_volume **vols = NULL, *v = NULL;
    size_t n = 0;
    int r;

    step("snapshots and volumes (a clean 501 is accepted)");
    r = daytona_snapshot_list(c, 1, 10, &sl, &err);
    if (r == -EOPNOTSUPP) {
        CHECK(strchr(err->message, '\n') == NULL && strstr(err->message, "list snapshots"));
    } else {
        CHECK(r == 0);
        daytona_snapshot_list_free(sl);
    }
    r = daytona_volume_list(c, &vols, &n, &err);
    if (r == -EOPNOTSUPP) {
        CHECK(strstr(err->message, "list volumes") != NULL);
        return;
    }
    CHECK(r == 0);
    daytona_volumes_free(vols, n);
    CHECK(daytona_volume_create(c, "itest-vol", 0, &v, &err) == 0);
    daytona_volume_free(v);
    v = NULL;
    CHECK(daytona_volume_get(c, "itest-vol", &v, &err) == 0);
    CHECK(v && v->name && strcmp(v->name, "itest-vol") == 0);
    daytona_volume_free(v);
    v = NULL;
    CHECK(daytona_volume_delete(c, "itest-vol", &err) == 0);
}

/* Build contexts through the server's S3 subset (SigV4 checked there): a directory uploaded,
 * the same again (already present: ListObjectsV2 finds it), a Dockerfile's COPY sources. */
static void
test_contexts(daytona_client *c)
{
    char dir[] = "/tmp/itest-ctx-XXXXXX", path[256], h1[33], h2[33];
    char *df = NULL, **hashes = NULL;
    int fd;

    step("build contexts: upload, dedup, Dockerfile COPY sources");
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    (void) snprintf(path, sizeof(path), "%s/f.txt", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "ctx\n", 4) == 4);
    if (fd >= 0)
        close(fd);
    CHECK(daytona_context_upload(c, dir, h1, &err) == 0);
    CHECK(strlen(h1) == 32 && strspn(h1, "0123456789abcdef") == 32);
    CHECK(daytona_context_upload(c, dir, h2, &err) == 0);
    CHECK(strcmp(h1, h2) == 0);
    CHECK(daytona_context_upload(c, path, h2, &err) == 0);
    CHECK(strcmp(h1, h2) != 0);
    CHECK(daytona_dockerfile_prepare(c, "FROM x\nCOPY f.txt /f.txt\n", dir, &df, &hashes,
                                     &err) == 0);
    CHECK(hashes && hashes[0] && strcmp(hashes[0], h2) == 0 && !hashes[1]);
    CHECK(df && strstr(df, path) && strstr(df, "COPY ") == strstr(df, "\n") + 1);
    free(df);
    daytona_strv_free(hashes);
    CHECK(daytona_context_upload(c, "/no/such/ctx", h2, &err) == -ENOENT);
    (void) unlink(path);
    (void) rmdir(dir);
}

int
main(void)
{
    struct daytona_create_params p = { .name = "libdaytona-itest",
                                       .labels = (const char *[]) { "suite=libdaytona", NULL },
                                       .has_auto_stop = true, .auto_stop_interval = 30 };
    struct daytona_list_params lp = { .labels = (const char *[]) { "suite=libdaytona", NULL },
                                      .limit = 1 };
    daytona_client *c = NULL;
    struct daytona_sandbox *sb = NULL, *g = NULL;
    struct daytona_sandbox_list *l = NULL;
    char *id = NULL, *tb = NULL;
    int r;

    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK(daytona_client_new(NULL, &c, &err) == 0);
    if (!c)
        return 1;

    step("sandbox: create, get by name, list, labels, intervals");
    CHECK(daytona_sandbox_create(c, &p, 120, &sb, &err) == 0);
    if (!sb) {
        daytona_client_free(c);
        return 1;
    }
    id = strdup(sb->id);
    CHECK(strcmp(sb->state, "started") == 0);
    CHECK(sb->auto_stop_interval == 30);
    CHECK(daytona_sandbox_get(c, "libdaytona-itest", &g, &err) == 0);
    CHECK(g && strcmp(g->id, id) == 0);
    daytona_sandbox_free(g);
    g = NULL;
    CHECK(daytona_sandbox_get(c, "no-such-sandbox", &g, &err) == -ENOENT);
    CHECK(daytona_sandbox_list_all(c, &lp, &l, &err) == 0);
    CHECK(l && l->n == 1 && strcmp(l->items[0]->id, id) == 0);
    daytona_sandbox_list_free(l);
    CHECK(daytona_sandbox_set_labels(c, id, (const char *[]) { "suite=libdaytona", "k=v", NULL },
                                     &err) == 0);
    CHECK(daytona_sandbox_set_interval(c, id, DAYTONA_AUTO_STOP, 60, &err) == 0);
    CHECK(daytona_sandbox_get(c, id, &g, &err) == 0);
    CHECK(g && g->auto_stop_interval == 60 && daytona_sandbox_label(g, "k") &&
          strcmp(daytona_sandbox_label(g, "k"), "v") == 0);
    daytona_sandbox_free(g);
    g = NULL;
    {
        char *url = NULL, *token = NULL;
        r = daytona_sandbox_preview_url(c, id, 8080, 0, &url, &token, &err);
        /* Not every server has preview URLs yet: a clean 501 is accepted. */
        CHECK(r == 0 ? url != NULL : r == -EOPNOTSUPP);
        free(url);
        free(token);
        CHECK(daytona_sandbox_set_public(c, id, true, &err) == 0);
        CHECK(daytona_sandbox_get(c, id, &g, &err) == 0);
        CHECK(g && g->is_public);
        daytona_sandbox_free(g);
        g = NULL;
    }
    CHECK(daytona_sandbox_toolbox_url(c, "libdaytona-itest", &tb, &err) == 0);
    CHECK(tb && strstr(tb, id));
    free(tb);

    test_files(c, id);
    test_exec(c, id);
    test_sessions(c, id);
    test_pty(c, id);
    test_snapshots_volumes(c);
    test_contexts(c);

    step("sandbox: stop, archive, start, delete");
    CHECK(daytona_sandbox_stop(c, id, false, 60, &err) == 0);
    CHECK(daytona_sandbox_get(c, id, &g, &err) == 0);
    CHECK(g && strcmp(g->state, "stopped") == 0);
    daytona_sandbox_free(g);
    g = NULL;
    r = daytona_sandbox_archive(c, id, &err);
    if (r == -EOPNOTSUPP) {
        CHECK(err && strstr(err->message, "archive sandbox"));
    } else {
        static const char *const archived[] = { "archived", NULL };
        CHECK(r == 0);
        CHECK(daytona_sandbox_wait(c, id, archived, 60, NULL, &err) == 0);
    }
    CHECK(daytona_sandbox_start(c, id, 120, &err) == 0);
    {
        struct daytona_exec_result er = { 0 };
        CHECK(daytona_process_exec(c, id, "cat /tmp/big.bin | wc -c", NULL, NULL, 30, &er,
                                   &err) == 0);
        CHECK(er.output && strtol(er.output, NULL, 10) == 20 << 20);
        daytona_exec_result_done(&er);
    }
    CHECK(daytona_sandbox_delete(c, id, 60, &err) == 0);
    CHECK(daytona_sandbox_get(c, id, &g, &err) == -ENOENT || (g && !strcmp(g->state, "destroyed")));
    daytona_sandbox_free(g);

    daytona_sandbox_free(sb);
    free(id);
    daytona_client_free(c);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
}
