/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona example: start a command asynchronously in a session and follow its output live,
 * stdout and stderr apart, then print its exit code. */
#include <stdio.h>

#include <daytona/daytona.h>

static int
on_stdout(const char *data, size_t len, void *userdata)
{
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int
on_stderr(const char *data, size_t len, void *userdata)
{
    fprintf(stdout, "[stderr] %.*s", (int) len, data);
    fflush(stdout);
    return 0;
}

int
main(void)
{
    daytona_client *client = NULL;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    struct daytona_session_exec_result run = { 0 };
    struct daytona_command *cmd = NULL;
    int status = 1;

    if (daytona_client_new(NULL, &client, &err) < 0 ||
        daytona_sandbox_create(client, NULL, 60, &sb, &err) < 0 ||
        daytona_session_create(client, sb->id, "demo", &err) < 0)
        goto finish;

    if (daytona_session_exec(client, sb->id, "demo",
                             "for i in 1 2 3; do echo line $i; echo oops $i >&2; sleep 0.2; done;"
                             " (exit 7)",
                             /* run_async= */ true, 0, &run, &err) < 0)
        goto finish;
    printf("command %s started\n", run.cmd_id);

    /* Blocks until the command has exited and its output has been delivered. */
    if (daytona_session_command_follow(client, sb->id, "demo", run.cmd_id, on_stdout, on_stderr,
                                       NULL, &err) < 0)
        goto finish;
    if (daytona_session_command_get(client, sb->id, "demo", run.cmd_id, &cmd, &err) < 0)
        goto finish;
    printf("exit code: %d\n", cmd->has_exit_code ? cmd->exit_code : -1);
    status = cmd->exit_code == 7 ? 0 : 1;

finish:
    if (sb)
        (void) daytona_sandbox_delete(client, sb->id, 60, err ? NULL : &err);
    if (err) {
        fprintf(stderr, "follow-logs: %s\n", err->message);
        status = 1;
    }
    daytona_command_free(cmd);
    daytona_session_exec_result_done(&run);
    daytona_sandbox_free(sb);
    daytona_error_free(err);
    daytona_client_free(client);
    return status;
}
