/* SPDX-License-Identifier: Apache-2.0 */
/* Output of the `daytona` CLI: Daytona-like aligned tables and key/value records for people,
 * JSON and YAML with stable field names for scripts, and colour and progress bars only when
 * stdout is a terminal and NO_COLOR is unset (https://no-color.org). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daytona-cli/cli.h"
#include "dt/banned.h"
#include "dt/xalloc.h"

static bool stdout_tty;
static bool use_color;
static bool progress_shown;

void
cli_output_init(void)
{
    const char *term = getenv("TERM");

    stdout_tty = isatty(STDOUT_FILENO) == 1;
    /* NO_COLOR: any non-empty value disables colour. */
    const char *nc = getenv("NO_COLOR");
    use_color = stdout_tty && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

bool
cli_stdout_is_tty(void)
{
    return stdout_tty;
}

bool
cli_color(void)
{
    return use_color;
}

const char *
cli_c_bold(void)
{
    return use_color ? "\033[1m" : "";
}
const char *
cli_c_dim(void)
{
    return use_color ? "\033[2m" : "";
}
const char *
cli_c_red(void)
{
    return use_color ? "\033[31m" : "";
}
const char *
cli_c_green(void)
{
    return use_color ? "\033[32m" : "";
}
const char *
cli_c_yellow(void)
{
    return use_color ? "\033[33m" : "";
}
const char *
cli_c_reset(void)
{
    return use_color ? "\033[0m" : "";
}

void
cli_print_json(json_t *value)
{
    _cleanup_free_ char *s =
            json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s)
        printf("%s\n", s);
}

/* YAML scalars: plain when unambiguous, else a JSON-style double-quoted string (valid YAML). */
static bool
yaml_needs_quotes(const char *s)
{
    static const char *const reserved[] = {"true", "false", "yes", "no", "on",
                                           "off",  "null",  "~",   "y",  "n"};
    if (!*s)
        return true;
    for (size_t i = 0; i < ELEMENTSOF(reserved); i++)
        if (!strcasecmp(s, reserved[i]))
            return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]))
        return true;
    /* Dates, versions and numbers: YAML 1.1 readers would turn them into other types. */
    if ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '+')
        return true;
    size_t n = strlen(s);
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return true;
    if (strstr(s, ": ") || strstr(s, " #"))
        return true;
    /* Anything that looks like a number must stay a string. */
    char *end;
    (void) strtod(s, &end);
    if (*end == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static void
yaml_scalar(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        if (yaml_needs_quotes(s)) {
            _cleanup_free_ char *q = json_dumps(v, JSON_ENCODE_ANY);
            fputs(q ? q : "\"\"", stdout);
        } else
            fputs(s, stdout);
        break;
    }
    case JSON_INTEGER:
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        _cleanup_free_ char *q = json_dumps(v, JSON_ENCODE_ANY);
        fputs(q ? q : "0", stdout);
        break;
    }
    case JSON_TRUE:
        fputs("true", stdout);
        break;
    case JSON_FALSE:
        fputs("false", stdout);
        break;
    default:
        fputs("null", stdout);
        break;
    }
}

static bool
yaml_is_container(json_t *v)
{
    return (json_is_object(v) && json_object_size(v) > 0) ||
           (json_is_array(v) && json_array_size(v) > 0);
}

static void yaml_node(json_t *v, int indent);

static void
yaml_key(const char *k)
{
    json_t *tmp = json_string(k);
    if (tmp && yaml_needs_quotes(k)) {
        _cleanup_free_ char *q = json_dumps(tmp, JSON_ENCODE_ANY);
        fputs(q, stdout);
    } else
        fputs(k, stdout);
    json_decref(tmp);
}

/* Print V at INDENT spaces; the caller has already positioned the cursor for the first line
 * of a container (after "key:" + newline, or after "- "). */
static void
yaml_node(json_t *v, int indent)
{
    if (json_is_object(v)) {
        if (json_object_size(v) == 0) {
            fputs("{}\n", stdout);
            return;
        }
        const char *k;
        json_t *child;
        bool first = true;
        json_object_foreach(v, k, child)
        {
            if (!first)
                printf("%*s", indent, "");
            first = false;
            yaml_key(k);
            if (yaml_is_container(child)) {
                fputs(":\n", stdout);
                printf("%*s", indent + 2, "");
                yaml_node(child, indent + 2);
            } else {
                fputs(": ", stdout);
                yaml_node(child, indent + 2);
            }
        }
    } else if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            fputs("[]\n", stdout);
            return;
        }
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (i > 0)
                printf("%*s", indent, "");
            fputs("- ", stdout);
            yaml_node(child, indent + 2);
        }
    } else {
        yaml_scalar(v);
        fputc('\n', stdout);
    }
}

void
cli_print_yaml(json_t *value)
{
    yaml_node(value, 0);
}

/* Look up "a.b.c" in OBJ. Borrowed. */
static json_t *
field_get(json_t *obj, const char *field)
{
    const char *dot = strchr(field, '.');
    if (!dot)
        return json_object_get(obj, field);
    _cleanup_free_ char *head = xstrndup(field, dot - field);
    json_t *sub = json_object_get(obj, head);
    return sub ? field_get(sub, dot + 1) : NULL;
}

char *
cli_format_value(json_t *v)
{
    if (!v || json_is_null(v))
        return xstrdup("-");
    switch (json_typeof(v)) {
    case JSON_STRING:
        return xstrdup(*json_string_value(v) ? json_string_value(v) : "-");
    case JSON_INTEGER:
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return xasprintf("%g", json_real_value(v));
    case JSON_TRUE:
        return xstrdup("yes");
    case JSON_FALSE:
        return xstrdup("no");
    case JSON_OBJECT: {
        /* Labels and env: "k=v, k2=v2". */
        if (json_object_size(v) == 0)
            return xstrdup("-");
        char *out = xstrdup("");
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child)
        {
            _cleanup_free_ char *cv = cli_format_value(child);
            char *n = xasprintf("%s%s%s=%s", out, *out ? ", " : "", k, cv);
            free(out);
            out = n;
        }
        return out;
    }
    case JSON_ARRAY: {
        if (json_array_size(v) == 0)
            return xstrdup("-");
        char *out = xstrdup("");
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            _cleanup_free_ char *cv = json_is_string(child)
                                              ? xstrdup(json_string_value(child))
                                              : json_dumps(child, JSON_COMPACT | JSON_ENCODE_ANY);
            char *n = xasprintf("%s%s%s", out, *out ? ", " : "", cv ? cv : "");
            free(out);
            out = n;
        }
        return out;
    }
    default:
        return xstrdup("-");
    }
}

/* Display width of a UTF-8 string: count code points (good enough for ids, names, states). */
static size_t
display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            w++;
    return w;
}

/* Colour for a state value, so "started" stands out like in Daytona's CLI. */
static const char *
state_color(const char *field, const char *value)
{
    if (!use_color || !field || strcmp(field, "state") != 0)
        return "";
    if (!strcmp(value, "started") || !strcmp(value, "active"))
        return cli_c_green();
    if (!strcmp(value, "error") || !strcmp(value, "build_failed"))
        return cli_c_red();
    if (!strcmp(value, "stopped") || !strcmp(value, "archived"))
        return cli_c_dim();
    return cli_c_yellow();
}

void
cli_print_table(json_t *items, const struct cli_column *cols, const char *empty_msg)
{
    size_t ncols = 0, nrows = json_array_size(items);

    if (nrows == 0) {
        if (empty_msg)
            printf("%s\n", empty_msg);
        return;
    }
    while (cols[ncols].header)
        ncols++;

    char **cells = xcalloc(nrows * ncols, sizeof(char *));
    size_t *width = xcalloc(ncols, sizeof(size_t));
    for (size_t c = 0; c < ncols; c++)
        width[c] = display_width(cols[c].header);
    for (size_t r = 0; r < nrows; r++) {
        json_t *item = json_array_get(items, r);
        for (size_t c = 0; c < ncols; c++) {
            char *cell = cli_format_value(field_get(item, cols[c].field));
            cells[r * ncols + c] = cell;
            size_t w = display_width(cell);
            if (w > width[c])
                width[c] = w;
        }
    }

    /* Daytona-style: bold headers, three spaces between columns, no trailing padding. */
    for (size_t c = 0; c < ncols; c++) {
        bool last = c + 1 == ncols;
        printf("%s%s%s", cli_c_bold(), cols[c].header, cli_c_reset());
        if (!last)
            printf("%*s", (int) (width[c] - display_width(cols[c].header) + 3), "");
    }
    fputc('\n', stdout);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *cell = cells[r * ncols + c];
            const char *color = state_color(cols[c].field, cell);
            printf("%s%s%s", color, cell, *color ? cli_c_reset() : "");
            if (c + 1 < ncols)
                printf("%*s", (int) (width[c] - display_width(cell) + 3), "");
        }
        fputc('\n', stdout);
    }

    for (size_t i = 0; i < nrows * ncols; i++)
        free(cells[i]);
    free(cells);
    free(width);
}

void
cli_print_record(json_t *obj, const struct cli_column *fields)
{
    size_t width = 0;
    for (const struct cli_column *f = fields; f->header; f++) {
        size_t w = display_width(f->header) + 1;
        if (w > width)
            width = w;
    }
    for (const struct cli_column *f = fields; f->header; f++) {
        _cleanup_free_ char *v = cli_format_value(field_get(obj, f->field));
        const char *color = state_color(f->field, v);
        printf("%s%s:%s%*s%s%s%s\n", cli_c_bold(), f->header, cli_c_reset(),
               (int) (width - display_width(f->header) - 1 + 3), "", color, v,
               *color ? cli_c_reset() : "");
    }
}

void
cli_output(const struct cli_args *a, json_t *value, const struct cli_column *cols,
           const char *empty_msg)
{
    switch (a->format) {
    case CLI_FORMAT_JSON:
        cli_print_json(value);
        break;
    case CLI_FORMAT_YAML:
        cli_print_yaml(value);
        break;
    case CLI_FORMAT_TABLE:
        if (json_is_array(value))
            cli_print_table(value, cols, empty_msg);
        else
            cli_print_record(value, cols);
        break;
    }
    fflush(stdout);
}

static void
human_bytes(char *buf, size_t n, uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double) v;
    size_t u = 0;
    while (d >= 1024 && u + 1 < ELEMENTSOF(units)) {
        d /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", d, units[u]);
}

void
cli_progress(const char *label, uint64_t done, uint64_t total)
{
    char a[32], b[32];

    if (!stdout_tty || isatty(STDERR_FILENO) != 1)
        return;
    progress_shown = true;
    human_bytes(a, sizeof(a), done);
    if (total == 0) {
        fprintf(stderr, "\r\033[K%s %s", label, a);
    } else {
        const int barw = 30;
        uint64_t pct = done >= total ? 100 : done * 100 / total;
        int fill = (int) (pct * barw / 100);
        human_bytes(b, sizeof(b), total);
        fprintf(stderr, "\r\033[K%s [", label);
        for (int i = 0; i < barw; i++)
            fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %3" PRIu64 "%% %s / %s", pct, a, b);
    }
    fflush(stderr);
}

void
cli_progress_done(void)
{
    if (progress_shown)
        fputc('\n', stderr);
    progress_shown = false;
}
