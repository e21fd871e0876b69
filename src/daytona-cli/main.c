/* SPDX-License-Identifier: Apache-2.0 */
/* `daytona`: the command-line client of a Daytona-compatible server. This file holds the command
 * table and everything generated from it: argument parsing (getopt_long per command), --help,
 * shell completion for bash, zsh and fish, and the Markdown reference in docs/cli.md. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daytona-cli/cli.h"
#include "dt/banned.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"

const char *cli_profile;

static int run_help(struct cli_args *a);
static int run_gen_docs(struct cli_args *a);

static const struct cli_command cli_cmd_help = {
    .name = "help",
    .args_usage = "[COMMAND...]",
    .summary = "show help for a command",
    .example = "daytona help sandbox create",
    .max_args = -1,
    .run = run_help,
};

/* Prints docs/cli.md's command reference; hidden. */
static const struct cli_command cli_cmd_gen_docs = {
    .name = "gen-docs",
    .summary = "print the Markdown command reference",
    .flags = CLI_CMD_HIDDEN,
    .run = run_gen_docs,
};

const struct cli_command *const cli_top_commands[] = {
    &cli_cmd_sandbox,
    &cli_cmd_snapshot,
    &cli_cmd_volume,
    &cli_cmd_organization,
    /* Sandbox commands as top-level shortcuts: the same table entries as in the group. */
    &cli_cmd_create,
    &cli_cmd_list,
    &cli_cmd_info,
    &cli_cmd_start,
    &cli_cmd_stop,
    &cli_cmd_delete,
    &cli_cmd_archive,
    &cli_cmd_exec,
    &cli_cmd_ssh,
    &cli_cmd_preview_url,
    &cli_cmd_login,
    &cli_cmd_logout,
    &cli_cmd_autocomplete,
    &cli_cmd_docs,
    &cli_cmd_version,
    &cli_cmd_help,
    &cli_cmd_gen_docs,
    &cli_cmd_session_reaper,
    NULL,
};

/* The root pseudo-command, so groups and the root share the help code. */
static const struct cli_command cli_root = {
    .name = "daytona",
    .summary = "manage Daytona sandboxes, snapshots and volumes",
    .subcommands = cli_top_commands,
};

int
cli_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("daytona: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAILURE;
}

int
cli_usage_error(const struct cli_args *a, const char *fmt, ...)
{
    va_list ap;
    _cleanup_free_ char *msg = NULL;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "daytona: %s (see '%s --help')\n", msg, a && a->path ? a->path : "daytona");
    return CLI_EXIT_USAGE;
}

static int
option_index(const struct cli_command *cmd, const char *name)
{
    if (!cmd->options)
        return -1;
    for (int i = 0; cmd->options[i].name; i++)
        if (!strcmp(cmd->options[i].name, name))
            return i;
    return -1;
}

char *const *
cli_optv(const struct cli_args *a, const char *name)
{
    int i = option_index(a->cmd, name);
    DT_ASSERT(i >= 0); /* a command asking for an option it does not declare */
    return a->values[i];
}

const char *
cli_opt(const struct cli_args *a, const char *name)
{
    char *const *v = cli_optv(a, name);
    if (!v)
        return NULL;
    size_t n = strv_length(v);
    return n ? v[n - 1] : NULL;
}

bool
cli_flag(const struct cli_args *a, const char *name)
{
    return cli_optv(a, name) != NULL;
}

int
cli_opt_u64(const struct cli_args *a, const char *name, uint64_t *ret)
{
    const char *s = cli_opt(a, name);
    if (!s)
        return 0;
    if (parse_u64(s, ret) < 0) {
        cli_usage_error(a, "invalid value '%s' for --%s: expected a non-negative integer", s, name);
        return -EINVAL;
    }
    return 0;
}

int
cli_opt_i64(const struct cli_args *a, const char *name, int64_t *ret)
{
    const char *s = cli_opt(a, name);
    if (!s)
        return 0;
    if (parse_i64(s, ret) < 0) {
        cli_usage_error(a, "invalid value '%s' for --%s: expected an integer", s, name);
        return -EINVAL;
    }
    return 0;
}

/* ---- help ---- */

static void
print_option_line(FILE *f, int short_name, const char *name, const char *metavar, const char *help)
{
    char left[128];
    if (short_name)
        snprintf(left, sizeof(left), "-%c, --%s%s%s", short_name, name, metavar ? " " : "",
                 metavar ? metavar : "");
    else
        snprintf(left, sizeof(left), "    --%s%s%s", name, metavar ? " " : "",
                 metavar ? metavar : "");
    if (strlen(left) < 28)
        fprintf(f, "  %-28s %s\n", left, help);
    else
        fprintf(f, "  %s\n  %-28s %s\n", left, "", help);
}

/* Print TEXT word-wrapped at WIDTH columns (descriptions are single long strings). */
static void
print_wrapped(FILE *f, const char *text, size_t width)
{
    size_t col = 0;
    const char *p = text;

    while (*p) {
        size_t n = strcspn(p, " ");
        if (col > 0 && col + 1 + n > width) {
            fputc('\n', f);
            col = 0;
        } else if (col > 0) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int) n, p);
        col += n;
        p += n;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

static bool
cmd_visible(const struct cli_command *c)
{
    return !(c->flags & CLI_CMD_HIDDEN);
}

void
cli_print_help(FILE *f, const char *path, const struct cli_command *cmd)
{
    fprintf(f, "%c%s\n\n",
            cmd->summary[0] >= 'a' && cmd->summary[0] <= 'z' ? cmd->summary[0] - 'a' + 'A'
                                                             : cmd->summary[0],
            cmd->summary + 1);
    if (cmd->description) {
        print_wrapped(f, cmd->description, 78);
        fputc('\n', f);
    }
    if (cmd->subcommands) {
        fprintf(f, "Usage:\n  %s%sCOMMAND [OPTIONS]\n\nCommands:\n", path, *path ? " " : "");
        for (const struct cli_command *const *s = cmd->subcommands; *s; s++)
            if (cmd_visible(*s))
                fprintf(f, "  %-14s %s\n", (*s)->name, (*s)->summary);
        fprintf(f, "\nOptions:\n");
        if (cmd == &cli_root) {
            print_option_line(f, 0, "profile", "NAME", "use the named profile of the config file");
            print_option_line(f, 'v', "version", NULL, "print the version and exit");
        }
        print_option_line(f, 'h', "help", NULL, "show this help");
        fprintf(f, "\nRun '%s COMMAND --help' for more about a command.\n", path);
        return;
    }
    fprintf(f, "Usage:\n  %s [OPTIONS]%s%s\n\nOptions:\n", path, cmd->args_usage ? " " : "",
            cmd->args_usage ? cmd->args_usage : "");
    for (const struct cli_option *o = cmd->options; o && o->name; o++)
        print_option_line(f, o->short_name, o->name, o->kind == CLI_FLAG ? NULL : o->metavar,
                          o->help);
    if (cmd->flags & CLI_CMD_FORMAT)
        print_option_line(f, 'f', "format", "FORMAT", "output format: table (default), json, yaml");
    print_option_line(f, 'h', "help", NULL, "show this help");
    if (cmd->example) {
        fprintf(f, "\nExample:\n");
        const char *p = cmd->example;
        while (*p) {
            size_t n = strcspn(p, "\n");
            fprintf(f, "  %.*s\n", (int) n, p);
            p += n;
            if (*p)
                p++;
        }
    }
}

/* ---- parsing ---- */

static void
args_done(struct cli_args *a)
{
    for (size_t i = 0; i < CLI_MAX_OPTIONS; i++)
        strv_free(a->values[i]);
    free(a->path);
}

static int
parse_format(struct cli_args *a, const char *s)
{
    if (!strcmp(s, "table") || !strcmp(s, "text"))
        a->format = CLI_FORMAT_TABLE;
    else if (!strcmp(s, "json"))
        a->format = CLI_FORMAT_JSON;
    else if (!strcmp(s, "yaml") || !strcmp(s, "yml"))
        a->format = CLI_FORMAT_YAML;
    else
        return cli_usage_error(a, "unknown format '%s': expected table, json or yaml", s);
    return 0;
}

#define OPT_HELP   0x10000
#define OPT_FORMAT 0x10001
#define OPT_BASE   0x20000

/* Parse ARGV (ARGV[0] is the command's own name) for CMD into A. Returns 0 to run, or an exit
 * status + 1000 when the command line was answered (help) or wrong. */
static int
parse_args(const struct cli_command *cmd, int argc, char **argv, struct cli_args *a)
{
    struct option longopts[CLI_MAX_OPTIONS + 3] = {};
    char shortopts[3 * CLI_MAX_OPTIONS + 8];
    size_t n = 0, sp = 0;

    shortopts[sp++] = ':';
    shortopts[sp++] = 'h';
    for (int i = 0; cmd->options && cmd->options[i].name; i++) {
        const struct cli_option *o = &cmd->options[i];
        DT_ASSERT(i < CLI_MAX_OPTIONS);
        longopts[n++] = (struct option){
                o->name, o->kind == CLI_FLAG ? no_argument : required_argument, NULL, OPT_BASE + i};
        if (o->short_name) {
            shortopts[sp++] = (char) o->short_name;
            if (o->kind != CLI_FLAG)
                shortopts[sp++] = ':';
        }
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    if (cmd->flags & CLI_CMD_FORMAT) {
        longopts[n++] = (struct option){"format", required_argument, NULL, OPT_FORMAT};
        shortopts[sp++] = 'f';
        shortopts[sp++] = ':';
    }
    shortopts[sp] = '\0';

    optind = 0; /* full re-initialisation (GNU) */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h' || c == OPT_HELP) {
            cli_print_help(stdout, a->path, cmd);
            return 1000;
        }
        if (c == '?') {
            if (optopt)
                return 1000 + cli_usage_error(a, "unknown option '-%c'", optopt);
            return 1000 + cli_usage_error(a, "unknown option '%s'", argv[optind - 1]);
        }
        if (c == ':') {
            if (optopt && optopt < 0x10000)
                return 1000 + cli_usage_error(a, "option '-%c' needs a value", optopt);
            return 1000 + cli_usage_error(a, "option '%s' needs a value", argv[optind - 1]);
        }
        if (c == 'f' || c == OPT_FORMAT) {
            if (parse_format(a, optarg) != 0)
                return 1000 + CLI_EXIT_USAGE;
            continue;
        }
        int idx = -1;
        if (c >= OPT_BASE)
            idx = c - OPT_BASE;
        else
            for (int i = 0; cmd->options && cmd->options[i].name; i++)
                if (cmd->options[i].short_name == c)
                    idx = i;
        DT_ASSERT(idx >= 0);
        const struct cli_option *o = &cmd->options[idx];
        if (o->kind != CLI_LIST) {
            strv_free(a->values[idx]);
            a->values[idx] = NULL;
        }
        strv_push(&a->values[idx], o->kind == CLI_FLAG ? "true" : optarg);
    }

    a->argc = argc - optind;
    a->argv = argv + optind;
    if (a->argc < cmd->min_args)
        return 1000 + cli_usage_error(a, "missing argument%s%s", cmd->args_usage ? " " : "",
                                      cmd->args_usage ? cmd->args_usage : "");
    if (cmd->max_args >= 0 && a->argc > cmd->max_args)
        return 1000 + cli_usage_error(a, "unexpected argument '%s'", a->argv[cmd->max_args]);
    return 0;
}

static const struct cli_command *
find_sub(const struct cli_command *group, const char *name)
{
    for (const struct cli_command *const *s = group->subcommands; *s; s++)
        if (!strcmp((*s)->name, name))
            return *s;
    return NULL;
}

/* Walk ARGV through groups; returns the command found and how many words were consumed in
 * *used, with its full path ("daytona sandbox create") in *path. */
static const struct cli_command *
resolve(int argc, char **argv, int *used, char **path)
{
    const struct cli_command *cur = &cli_root;
    char *p = xstrdup("daytona");
    int i = 0;

    while (i < argc && cur->subcommands) {
        const struct cli_command *next = find_sub(cur, argv[i]);
        if (!next)
            break;
        char *np = xasprintf("%s %s", p, next->name);
        free(p);
        p = np;
        cur = next;
        i++;
    }
    *used = i;
    *path = p;
    return cur;
}

static int
run_help(struct cli_args *a)
{
    int used;
    _cleanup_free_ char *path = NULL;
    const struct cli_command *cmd = resolve(a->argc, a->argv, &used, &path);
    if (used < a->argc)
        return cli_error("unknown command '%s'", a->argv[used]);
    cli_print_help(stdout, path, cmd);
    return 0;
}

/* ---- the Markdown reference ---- */

static void
gen_docs_cmd(const char *path, const struct cli_command *cmd)
{
    if (!cmd_visible(cmd) || cmd == &cli_cmd_help)
        return;
    if (cmd->subcommands) {
        for (const struct cli_command *const *s = cmd->subcommands; *s; s++) {
            _cleanup_free_ char *p = xasprintf("%s %s", path, (*s)->name);
            gen_docs_cmd(p, *s);
        }
        return;
    }
    printf("### `%s`\n\n", path);
    printf("%c%s.\n\n",
           cmd->summary[0] >= 'a' && cmd->summary[0] <= 'z' ? cmd->summary[0] - 'a' + 'A'
                                                            : cmd->summary[0],
           cmd->summary + 1);
    if (cmd->description)
        printf("%s\n\n", cmd->description);
    printf("```\n%s [OPTIONS]%s%s\n```\n\n", path, cmd->args_usage ? " " : "",
           cmd->args_usage ? cmd->args_usage : "");
    bool any = (cmd->options && cmd->options[0].name) || (cmd->flags & CLI_CMD_FORMAT);
    if (any) {
        printf("| Option | Meaning |\n|---|---|\n");
        for (const struct cli_option *o = cmd->options; o && o->name; o++) {
            char s[8] = "";
            if (o->short_name)
                snprintf(s, sizeof(s), "-%c, ", o->short_name);
            printf("| `%s--%s%s%s` | %s%s |\n", s, o->name, o->kind == CLI_FLAG ? "" : " ",
                   o->kind == CLI_FLAG ? "" : o->metavar, o->help,
                   o->kind == CLI_LIST ? " (repeatable)" : "");
        }
        if (cmd->flags & CLI_CMD_FORMAT)
            printf("| `-f, --format FORMAT` | output format: `table` (default), `json`, "
                   "`yaml` |\n");
        printf("\n");
    }
    if (cmd->example)
        printf("Example:\n\n```sh\n%s\n```\n\n", cmd->example);
}

static int
run_gen_docs(struct cli_args *a)
{
    /* Shortcuts are documented once, under their group. */
    for (const struct cli_command *const *c = cli_top_commands; *c; c++) {
        if (find_sub(&cli_cmd_sandbox, (*c)->name) == *c)
            continue;
        _cleanup_free_ char *p = xasprintf("daytona %s", (*c)->name);
        gen_docs_cmd(p, *c);
    }
    return 0;
}

/* ---- shell completion ---- */

struct walk_ctx {
    FILE *f;
    const char *shell;
};

static void
emit_words(FILE *f, const struct cli_command *cmd, bool with_desc_sep)
{
    bool first = true;
    if (cmd->subcommands) {
        for (const struct cli_command *const *s = cmd->subcommands; *s; s++)
            if (cmd_visible(*s)) {
                fprintf(f, "%s%s", first ? "" : " ", (*s)->name);
                first = false;
            }
    }
    for (const struct cli_option *o = cmd->options; o && o->name; o++) {
        fprintf(f, "%s--%s", first ? "" : " ", o->name);
        first = false;
    }
    if (cmd->flags & CLI_CMD_FORMAT)
        fprintf(f, " --format");
    fprintf(f, "%s--help", first ? "" : " ");
    (void) with_desc_sep;
}

/* Calls FN for every visible command with its path below the root ("" for the root). */
static void
walk(const char *path, const struct cli_command *cmd,
     void (*fn)(const char *, const struct cli_command *, void *), void *ud)
{
    if (!cmd_visible(cmd))
        return;
    fn(path, cmd, ud);
    for (const struct cli_command *const *s = cmd->subcommands; s && *s; s++) {
        _cleanup_free_ char *p = *path ? xasprintf("%s %s", path, (*s)->name) : xstrdup((*s)->name);
        walk(p, *s, fn, ud);
    }
}

static void
bash_transitions(const char *path, const struct cli_command *cmd, void *ud)
{
    FILE *f = ud;
    for (const struct cli_command *const *s = cmd->subcommands; s && *s; s++)
        if (cmd_visible(*s))
            fprintf(f, "            \"%s:%s\") p=\"%s%s%s\" ;;\n", path, (*s)->name, path,
                    *path ? " " : "", (*s)->name);
}

static void
bash_words(const char *path, const struct cli_command *cmd, void *ud)
{
    FILE *f = ud;
    fprintf(f, "        \"%s\") words=\"", path);
    emit_words(f, cmd, false);
    if (!*path)
        fprintf(f, " --profile --version");
    fprintf(f, "\" ;;\n");
}

static void
fish_lines(const char *path, const struct cli_command *cmd, void *ud)
{
    FILE *f = ud;
    /* The condition: the words typed so far end with PATH's last word. */
    _cleanup_free_ char *cond = NULL;
    if (!*path)
        cond = xstrdup("__fish_use_subcommand");
    else {
        const char *last = strrchr(path, ' ');
        last = last ? last + 1 : path;
        if (cmd->subcommands)
            cond = xasprintf("__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from",
                             last);
        else
            cond = xasprintf("__fish_seen_subcommand_from %s", last);
    }
    if (cmd->subcommands) {
        if (*path) {
            /* "and not seen any of the subcommands" */
            _cleanup_free_ char *subs = xstrdup("");
            for (const struct cli_command *const *s = cmd->subcommands; *s; s++) {
                char *n = xasprintf("%s %s", subs, (*s)->name);
                free(subs);
                subs = n;
            }
            char *n = xasprintf("%s%s", cond, subs);
            free(cond);
            cond = n;
        }
        for (const struct cli_command *const *s = cmd->subcommands; *s; s++)
            if (cmd_visible(*s))
                fprintf(f, "complete -c daytona -f -n '%s' -a %s -d '%s'\n", cond, (*s)->name,
                        (*s)->summary);
        return;
    }
    for (const struct cli_option *o = cmd->options; o && o->name; o++) {
        fprintf(f, "complete -c daytona -n '%s' -l %s", cond, o->name);
        if (o->short_name)
            fprintf(f, " -s %c", o->short_name);
        fprintf(f, "%s -d '%s'\n", o->kind == CLI_FLAG ? "" : " -r", o->help);
    }
    if (cmd->flags & CLI_CMD_FORMAT)
        fprintf(f,
                "complete -c daytona -n '%s' -l format -s f -x -a 'table json yaml' -d "
                "'output format'\n",
                cond);
}

static int
run_autocomplete(struct cli_args *a)
{
    const char *shell = a->argv[0];

    if (!strcmp(shell, "bash") || !strcmp(shell, "zsh")) {
        bool zsh = !strcmp(shell, "zsh");
        if (zsh)
            printf("#compdef daytona\n"
                   "# zsh completion for daytona (generated by 'daytona autocomplete zsh').\n"
                   "# Load with: source <(daytona autocomplete zsh)\n");
        else
            printf("# bash completion for daytona (generated by 'daytona autocomplete bash').\n"
                   "# Load with: source <(daytona autocomplete bash)\n");
        /* One function for both shells: it finds the command path from the words typed so
         * far, then offers that command's subcommands and options. */
        printf("_daytona_words() {\n"
               "    local p=\"\" w words=\"\"\n"
               "    for w in \"$@\"; do\n"
               "        case \"$w\" in -*) continue ;; esac\n"
               "        case \"$p:$w\" in\n");
        walk("", &cli_root, bash_transitions, stdout);
        printf("            *) [ -n \"$p\" ] && break ;;\n"
               "        esac\n"
               "    done\n"
               "    case \"$p\" in\n");
        walk("", &cli_root, bash_words, stdout);
        printf("    esac\n"
               "    printf '%%s' \"$words\"\n"
               "}\n");
        if (zsh)
            printf("_daytona() {\n"
                   "    local -a cands\n"
                   "    cands=(${=$(_daytona_words \"${(@)words[2,CURRENT-1]}\")})\n"
                   "    compadd -- $cands\n"
                   "}\n"
                   "if (( $+functions[compdef] )); then\n"
                   "    compdef _daytona daytona\n"
                   "fi\n");
        else
            printf("_daytona() {\n"
                   "    local cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
                   "    COMPREPLY=($(compgen -W \"$(_daytona_words "
                   "\"${COMP_WORDS[@]:1:COMP_CWORD-1}\")\" -- \"$cur\"))\n"
                   "}\n"
                   "complete -F _daytona daytona\n");
        return 0;
    }
    if (!strcmp(shell, "fish")) {
        printf("# fish completion for daytona (generated by 'daytona autocomplete fish').\n"
               "# Load with: daytona autocomplete fish | source\n"
               "complete -c daytona -e\n"
               "complete -c daytona -n '__fish_use_subcommand' -l profile -r -d 'config profile'\n"
               "complete -c daytona -n '__fish_use_subcommand' -s v -l version -d 'print the "
               "version'\n"
               "complete -c daytona -s h -l help -d 'show help'\n");
        walk("", &cli_root, fish_lines, stdout);
        return 0;
    }
    return cli_usage_error(a, "unknown shell '%s': expected bash, zsh or fish", shell);
}

const struct cli_command cli_cmd_autocomplete = {
    .name = "autocomplete",
    .args_usage = "bash|zsh|fish",
    .summary = "print a shell completion script",
    .description = "Generated from the command table, so it always matches this binary.",
    .example = "source <(daytona autocomplete bash)\n"
               "daytona autocomplete fish > ~/.config/fish/completions/daytona.fish",
    .min_args = 1,
    .max_args = 1,
    .run = run_autocomplete,
};

static int
run_version(struct cli_args *a)
{
    printf("daytona %s\n", CLI_VERSION);
    return 0;
}

const struct cli_command cli_cmd_version = {
    .name = "version",
    .summary = "print the version",
    .example = "daytona version",
    .run = run_version,
};

static int
run_docs(struct cli_args *a)
{
    printf("%s\n", CLI_DOCS_URL);
    return 0;
}

const struct cli_command cli_cmd_docs = {
    .name = "docs",
    .summary = "print the URL of the Daytona documentation",
    .example = "daytona docs",
    .run = run_docs,
};

int
main(int argc, char **argv)
{
    int i = 1;

    cli_output_init();

    /* Global options come before the command. */
    while (i < argc && argv[i][0] == '-') {
        const char *o = argv[i];
        if (!strcmp(o, "-v") || !strcmp(o, "--version"))
            return run_version(NULL);
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            cli_print_help(stdout, "daytona", &cli_root);
            return 0;
        }
        if (!strcmp(o, "--profile") && i + 1 < argc) {
            cli_profile = argv[i + 1];
            i += 2;
            continue;
        }
        if (!strncmp(o, "--profile=", 10)) {
            cli_profile = o + 10;
            i++;
            continue;
        }
        if (!strcmp(o, "--"))
            break;
        if (!strcmp(o, "--profile")) {
            fprintf(stderr, "daytona: option '--profile' needs a value\n");
            return CLI_EXIT_USAGE;
        }
        fprintf(stderr, "daytona: unknown option '%s' (see 'daytona --help')\n", o);
        return CLI_EXIT_USAGE;
    }
    if (i >= argc) {
        cli_print_help(stderr, "daytona", &cli_root);
        return CLI_EXIT_USAGE;
    }

    int used;
    char *path = NULL;
    const struct cli_command *cmd = resolve(argc - i, argv + i, &used, &path);
    struct cli_args a = {.cmd = cmd, .path = path};
    int r;

    if (cmd->subcommands) {
        /* A group alone or with an unknown subcommand. */
        bool help = i + used < argc &&
                    (!strcmp(argv[i + used], "-h") || !strcmp(argv[i + used], "--help"));
        if (help) {
            cli_print_help(stdout, path, cmd);
            r = 0;
        } else if (i + used < argc) {
            r = cli_usage_error(&a, "unknown command '%s'", argv[i + used]);
        } else {
            cli_print_help(stderr, path, cmd);
            r = CLI_EXIT_USAGE;
        }
        args_done(&a);
        return r;
    }

    /* getopt_long wants argv[0] to be the program; give it the command's own word. */
    int cargc = argc - i - used + 1;
    char **cargv = argv + i + used - 1;
    r = parse_args(cmd, cargc, cargv, &a);
    if (r >= 1000)
        r -= 1000;
    else
        r = cmd->run(&a);
    fflush(stdout);
    args_done(&a);
    return r;
}
