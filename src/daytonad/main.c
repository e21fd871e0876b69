/* SPDX-License-Identifier: Apache-2.0 */
/* daytonad: the Daytona control plane and runner. This file only dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "daytonad.h"
#include "dt/log.h"
#include "dt/banned.h"

static void
usage(FILE *f)
{
    fprintf(f, "Usage: daytonad COMMAND [OPTIONS]\n"
               "\n"
               "Commands:\n"
               "  serve     run the API server (see 'daytonad serve --help')\n"
               "  org       create an organization with its own API key ('daytonad org --help')\n"
               "  run       run a command in a throwaway sandbox (see 'daytonad run --help')\n"
               "  version   print the version\n");
}

int
main(int argc, char **argv)
{
    dt_log_set_component("daytonad");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
        printf("daytonad %s\n", DT_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "org"))
        return cmd_org(argc - 1, argv + 1);
    if (!strcmp(cmd, "image-job"))
        return cmd_image_job(argc - 1, argv + 1);
    fprintf(stderr, "daytonad: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
