/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona example: create a sandbox, run a command in it, delete it. Configuration comes
 * from DAYTONA_API_KEY / DAYTONA_API_URL (or the CLI's config file). */
#include <stdio.h>

#include <daytona/daytona.h>

int
main(void)
{
    daytona_client *client = NULL;
    daytona_error *err = NULL;
    struct daytona_sandbox *sb = NULL;
    struct daytona_create_params params = { .labels = (const char *[]) { "example=crd", NULL } };
    struct daytona_exec_result res = { 0 };
    int status = 1;

    if (daytona_client_new(NULL, &client, &err) < 0)
        goto finish;
    /* Wait up to 60 s for the sandbox to be started. */
    if (daytona_sandbox_create(client, &params, 60, &sb, &err) < 0)
        goto finish;
    printf("created sandbox %s (%s)\n", sb->id, sb->state);

    if (daytona_process_exec(client, sb->id, "echo hello from $(uname -s); exit 3", NULL, NULL,
                             30, &res, &err) < 0)
        goto finish;
    printf("output: %s", res.output);
    printf("exit code: %d\n", res.exit_code);
    status = res.exit_code == 3 ? 0 : 1;

finish:
    if (sb && daytona_sandbox_delete(client, sb->id, 60, err ? NULL : &err) == 0)
        printf("deleted sandbox %s\n", sb->id);
    if (err) {
        fprintf(stderr, "create-run-delete: %s\n", err->message);
        status = 1;
    }
    daytona_exec_result_done(&res);
    daytona_sandbox_free(sb);
    daytona_error_free(err);
    daytona_client_free(client);
    return status;
}
