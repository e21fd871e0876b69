/* SPDX-License-Identifier: Apache-2.0 */
/* daytonad's subcommands. Each returns the process exit status. */
#ifndef DT_DAYTONAD_H
#define DT_DAYTONAD_H

#define DT_VERSION "0.1.0"

/* `daytonad run`: run a command in a throwaway sandbox (what `crun run` is to crun).
 * Exit status: the command's (128+signal when killed); 125 for bad input or a setup failure. */
int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_org(int argc, char **argv);
/* Internal: one image job of `daytonad serve` (see cmd-image-job.c). */
int cmd_image_job(int argc, char **argv);

#endif
