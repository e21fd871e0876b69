/* SPDX-License-Identifier: Apache-2.0 */
/* The `daytona` CLI's internal interface: the command table (one struct per command, from which
 * parsing, --help, shell completion and docs/cli.md are all generated), parsed arguments, and
 * the output helpers (tables, JSON, YAML, colour and progress only on a terminal). */
#ifndef DAYTONA_CLI_H
#define DAYTONA_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dt/macros.h"

#define CLI_VERSION     "0.1.0"
#define CLI_DOCS_URL    "https://www.daytona.io/docs"
#define CLI_MAX_OPTIONS 48

/* Exit statuses: 0 ok, 1 an operation failed, 2 the command line was wrong. */
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE   2

enum cli_arg_kind {
    CLI_FLAG,  /* --force: no value */
    CLI_VALUE, /* --name NAME: one value, the last one given wins */
    CLI_LIST,  /* --env K=V: repeatable, every value kept in order */
};

struct cli_option {
    const char *name; /* long name without the dashes */
    int short_name;   /* 0 when there is none */
    enum cli_arg_kind kind;
    const char *metavar; /* shown in help: "NAME", "K=V" */
    const char *help;
};

struct cli_args;

/* Command flags. */
#define CLI_CMD_FORMAT (1u << 0) /* accepts -f/--format table|json|yaml */
#define CLI_CMD_HIDDEN (1u << 1) /* left out of help, completion and docs */

struct cli_command {
    const char *name;
    const char *args_usage;           /* positional part of the usage line, e.g. "SANDBOX" */
    const char *summary;              /* one line, lowercase, no full stop */
    const char *description;          /* optional longer text for --help and the docs */
    const char *example;              /* one or more command lines, "\n"-separated */
    const struct cli_option *options; /* terminated by an entry with name == NULL */
    int min_args, max_args;           /* positional count bounds; max -1 = unlimited */
    unsigned flags;
    int (*run)(struct cli_args *a);               /* returns the exit status */
    const struct cli_command *const *subcommands; /* groups: NULL-terminated; run is NULL */
};

enum cli_format {
    CLI_FORMAT_TABLE,
    CLI_FORMAT_JSON,
    CLI_FORMAT_YAML,
};

struct cli_args {
    const struct cli_command *cmd;
    char *path;                     /* "sandbox create", for messages */
    char **values[CLI_MAX_OPTIONS]; /* per option of cmd->options: a strv, NULL when absent */
    int argc;                       /* positionals (borrowed from main's argv) */
    char **argv;
    enum cli_format format;
};

/* Commands, defined next to their implementation (cmd-*.c) and assembled in main.c. */
extern const struct cli_command cli_cmd_login, cli_cmd_logout, cli_cmd_version, cli_cmd_docs,
        cli_cmd_autocomplete;
extern const struct cli_command cli_cmd_sandbox, cli_cmd_create, cli_cmd_list, cli_cmd_info,
        cli_cmd_start, cli_cmd_stop, cli_cmd_delete, cli_cmd_archive, cli_cmd_exec, cli_cmd_ssh,
        cli_cmd_preview_url;
extern const struct cli_command cli_cmd_snapshot, cli_cmd_volume, cli_cmd_organization;
extern const struct cli_command cli_cmd_session_reaper; /* hidden helper of exec */

/* The top-level table (main.c). */
extern const struct cli_command *const cli_top_commands[];

/* Global options given before the command (`daytona --profile NAME COMMAND`). */
extern const char *cli_profile;

/* Accessors by long option name. cli_opt() returns the last value or NULL (borrowed, valid
 * as long as A); cli_optv() the NULL-terminated list or NULL; cli_flag() whether given. */
const char *cli_opt(const struct cli_args *a, const char *name);
char *const *cli_optv(const struct cli_args *a, const char *name);
bool cli_flag(const struct cli_args *a, const char *name);
/* Parse option NAME as an unsigned number into *ret; absent leaves *ret alone and returns 0.
 * On a bad value, prints the error and returns -EINVAL. */
int cli_opt_u64(const struct cli_args *a, const char *name, uint64_t *ret);
int cli_opt_i64(const struct cli_args *a, const char *name, int64_t *ret);

/* Print "daytona: <message>" on stderr; returns CLI_EXIT_FAILURE. */
int cli_error(const char *fmt, ...) _printf_(1, 2);
/* Same, returning CLI_EXIT_USAGE and pointing at --help. */
int cli_usage_error(const struct cli_args *a, const char *fmt, ...) _printf_(2, 3);

/* Help, completion and docs generation (main.c). */
void cli_print_help(FILE *f, const char *path, const struct cli_command *cmd);

/* ---- common.c: the client and its errors ---- */

struct daytona_client;
struct daytona_error;

/* Open a client from the environment and the config file (profile cli_profile). On failure
 * prints the error and returns CLI_EXIT_FAILURE; 0 on success with *ret set (free with
 * daytona_client_free()). */
int cli_client_open(struct daytona_client **ret);
/* `delete` of several objects by id or name with DEL (daytona_snapshot_delete, ...): one line per
 * object ("Snapshot 'x' deleted" with WHAT "Snapshot"), one error line per failure; returns 0 or
 * the last failure's exit status. */
int cli_delete_each(struct cli_args *a, const char *what,
                    int (*del)(struct daytona_client *c, const char *id_or_name,
                               struct daytona_error **err));

/* Print a libdaytona failure R as one line ("daytona: <E's message>", or strerror(-R) after
 * CONTEXT when E is NULL), free E, and return CLI_EXIT_FAILURE. */
int cli_fail(int r, struct daytona_error *e, const char *context);

/* --dockerfile with local files: check --context (at most one directory; default: the
 * Dockerfile's directory), then rewrite COPY/ADD sources of *DOCKERFILE (replaced) and upload
 * them (daytona_dockerfile_prepare). *HASHES gets the context hashes (daytona_strv_free()).
 * Returns 0 or an exit code after printing the error. */
int cli_dockerfile_context(const struct cli_args *a, struct daytona_client *c,
                           char **dockerfile, char ***hashes);

/* Parse a record's compact JSON text (a libdaytona `json` member) into a new json_t (decref);
 * NULL text gives an empty object. */
json_t *cli_json_record(const char *text);

/* Parse a decimal number (cpu, memory) strictly; -EINVAL on junk. */
int cli_parse_double(const char *s, double *ret);

/* ---- output.c ---- */

/* Decide once whether stdout is a terminal and colour is allowed (NO_COLOR unset, TERM not
 * "dumb"). */
void cli_output_init(void);
bool cli_stdout_is_tty(void);
bool cli_color(void);

/* ANSI helpers; empty strings when colour is off. */
const char *cli_c_bold(void);
const char *cli_c_dim(void);
const char *cli_c_red(void);
const char *cli_c_green(void);
const char *cli_c_yellow(void);
const char *cli_c_reset(void);

struct cli_column {
    const char *header; /* "STATE" */
    const char *field;  /* JSON key of each item, "a.b" for nested objects */
};

/* Print VALUE (borrowed) as JSON (indented, keys in insertion order) or YAML on stdout. */
void cli_print_json(json_t *value);
void cli_print_yaml(json_t *value);
/* Print ITEMS (a JSON array of objects, borrowed) as an aligned table with COLS
 * (terminated by {NULL, NULL}); an empty array prints EMPTY_MSG instead. */
void cli_print_table(json_t *items, const struct cli_column *cols, const char *empty_msg);
/* Print one object as aligned "Label:  value" lines, with FIELDS choosing and naming them. */
void cli_print_record(json_t *obj, const struct cli_column *fields);
/* Dispatch on A's format: json, yaml, or (table) cli_print_table / cli_print_record depending
 * on whether VALUE is an array. */
void cli_output(const struct cli_args *a, json_t *value, const struct cli_column *cols,
                const char *empty_msg);

/* A one-line progress bar on stderr, drawn only when both stdout and stderr are terminals.
 * TOTAL 0 means unknown (a byte counter is shown). cli_progress_done() ends the line. */
void cli_progress(const char *label, uint64_t done, uint64_t total);
void cli_progress_done(void);

/* Human formatting helpers used by tables. Return new strings (free()). */
char *cli_format_value(json_t *v);

#endif
