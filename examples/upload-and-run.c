/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona example: upload a local script into a new sandbox (streamed from its file
 * descriptor), run it, download what it wrote, then delete the sandbox.
 * Usage: upload-and-run [SCRIPT]   (without SCRIPT a small shell script is generated) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <daytona/daytona.h>

static const char default_script[] = "#!/bin/sh\n"
                                     "echo \"running as $(id -un) in $(pwd)\"\n"
                                     "echo 'result: 42' > /tmp/result.txt\n";

int
main(int argc, char **argv)
{
    char tmpl[] = "/tmp/daytona-example-XXXXXX";
    const char *script = argc > 1 ? argv[1] : NULL;
    daytona_client *client = NULL;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    struct daytona_exec_result res = { 0 };
    char *result = NULL;
    int fd = -1, status = 1;

    if (!script) {
        fd = mkstemp(tmpl);
        if (fd < 0 || write(fd, default_script, strlen(default_script)) < 0) {
            perror("upload-and-run: temp script");
            return 1;
        }
        close(fd);
        script = tmpl;
    }
    fd = open(script, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(script);
        goto finish;
    }

    if (daytona_client_new(NULL, &client, &err) < 0 ||
        daytona_sandbox_create(client, NULL, 60, &sb, &err) < 0)
        goto finish;
    printf("sandbox %s started\n", sb->id);

    /* Streams the file: memory use does not depend on its size. */
    if (daytona_fs_upload_fd(client, sb->id, fd, "/tmp/script.sh", NULL, NULL, &err) < 0)
        goto finish;
    if (daytona_process_exec(client, sb->id, "sh /tmp/script.sh", "/tmp", NULL, 60, &res,
                             &err) < 0)
        goto finish;
    printf("script said: %s", res.output);
    printf("exit code: %d\n", res.exit_code);

    if (daytona_fs_download_buffer(client, sb->id, "/tmp/result.txt", 4096, &result, NULL,
                                   &err) < 0)
        goto finish;
    printf("/tmp/result.txt: %s", result);
    status = res.exit_code;

finish:
    if (sb)
        (void) daytona_sandbox_delete(client, sb->id, 60, err ? NULL : &err);
    if (err) {
        fprintf(stderr, "upload-and-run: %s\n", err->message);
        status = 1;
    }
    if (fd >= 0)
        close(fd);
    if (script == tmpl)
        unlink(tmpl);
    free(result);
    daytona_exec_result_done(&res);
    daytona_sandbox_free(sb);
    daytona_error_free(err);
    daytona_client_free(client);
    return status;
}
