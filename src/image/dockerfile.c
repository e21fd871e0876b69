/* SPDX-License-Identifier: Apache-2.0 */
/* Dockerfile parser and word expansion, following BuildKit's frontend/dockerfile/parser and
 * shell lexer semantics (line continuations, comments inside continuations, parser directives,
 * JSON-or-shell forms, ENV/LABEL pair forms, heredocs). Input is untrusted: every size is bounded
 * and every error names the line. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dt/dockerfile.h"
#include "dt/error.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"

#include "dt/banned.h"

/* ---- small helpers ---------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
};

static void
buf_putn(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void
buf_putc(struct buf *b, char c)
{
    buf_putn(b, &c, 1);
}

static char *
buf_detach(struct buf *b)
{
    char *p = b->p ? b->p : xstrdup("");
    *b = (struct buf){0};
    return p;
}

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Append one element to a growable array; *CAP tracks the allocation. */
static void *
grow(void *p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 4;
    return xreallocarray(p, *cap, size);
}

static char *
trim_dup(const char *s, size_t n)
{
    while (n > 0 && is_ws(*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_ws(s[n - 1]))
        n--;
    return xstrndup(s, n);
}

/* Split on runs of whitespace (BuildKit parseStringsWhitespaceDelimited). */
static char **
split_ws(const char *s)
{
    char **v = xcalloc(1, sizeof(char *));
    size_t n = 0, cap = 1;
    for (;;) {
        while (*s && is_ws(*s))
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && !is_ws(*e))
            e++;
        v = grow(v, n + 1, &cap, sizeof(char *));
        v[n++] = xstrndup(s, (size_t) (e - s));
        v[n] = NULL;
        s = e;
    }
    return v;
}

/* BuildKit parseWords: split on whitespace outside quotes; quotes and escapes are kept (they are
 * removed later by expansion). An escape token at the very end is dropped. */
static char **
parse_words(const char *s, char esc)
{
    char **v = xcalloc(1, sizeof(char *));
    size_t n = 0, cap = 1, len = strlen(s);
    struct buf w = {0};
    bool blank_ok = false, in_word = false;
    char quote = 0;

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : 0;
        if (!in_word && !quote) {
            if (i == len)
                break;
            if (is_ws(c))
                continue;
            in_word = true;
        }
        if (i == len) {
            if (blank_ok || w.n > 0) {
                v = grow(v, n + 1, &cap, sizeof(char *));
                v[n++] = buf_detach(&w);
                v[n] = NULL;
            }
            break;
        }
        if (!quote) {
            if (is_ws(c)) {
                in_word = false;
                if (blank_ok || w.n > 0) {
                    v = grow(v, n + 1, &cap, sizeof(char *));
                    v[n++] = buf_detach(&w);
                    v[n] = NULL;
                }
                w.n = 0;
                blank_ok = false;
                continue;
            }
            if (c == '\'' || c == '"') {
                quote = c;
                blank_ok = true;
            } else if (c == esc) {
                if (i + 1 == len)
                    continue;
                buf_putc(&w, c);
                c = s[++i];
            }
            buf_putc(&w, c);
            continue;
        }
        /* inside quotes */
        if (c == quote) {
            quote = 0;
            in_word = true;
        } else if (c == esc && quote != '\'') {
            if (i + 1 == len) {
                quote = 0;
                in_word = true;
                continue;
            }
            buf_putc(&w, c);
            c = s[++i];
        }
        buf_putc(&w, c);
    }
    free(w.p);
    return v;
}

/* ---- word expansion --------------------------------------------------------------------- */

#define EXPAND_MAX_DEPTH 32

struct expander {
    const char *s;
    size_t pos;
    char esc;
    dt_dockerfile_lookup_t lookup;
    void *userdata;
    size_t total;
    unsigned depth;
    struct dt_error **err;
};

static int
exp_put(struct expander *e, struct buf *b, const char *s, size_t n)
{
    if (n > DT_DOCKERFILE_MAX_EXPAND - e->total)
        return dt_error_set(e->err, E2BIG, "expansion of '%.64s' is larger than %u bytes", e->s,
                            DT_DOCKERFILE_MAX_EXPAND);
    e->total += n;
    buf_putn(b, s, n);
    return 0;
}

static const char *
exp_lookup(struct expander *e, const char *name)
{
    return e->lookup ? e->lookup(name, e->userdata) : NULL;
}

static bool
is_special_param(char c)
{
    return c != 0 && strchr("@*#?-$!", c) != NULL;
}

static char *
exp_name(struct expander *e)
{
    const char *s = e->s + e->pos;
    size_t n = 0;
    if (is_digit(s[0])) {
        while (is_digit(s[n]))
            n++;
    } else if (is_special_param(s[0])) {
        n = 1;
    } else {
        while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '_')
            n++;
    }
    e->pos += n;
    return xstrndup(s, n);
}

static int exp_word(struct expander *e, struct buf *out, char stop);

static int
exp_dollar(struct expander *e, struct buf *out)
{
    int r;

    e->pos++; /* '$' */
    if (e->s[e->pos] != '{') {
        _cleanup_free_ char *name = exp_name(e);
        if (!name[0])
            return exp_put(e, out, "$", 1);
        const char *v = exp_lookup(e, name);
        return v ? exp_put(e, out, v, strlen(v)) : 0;
    }
    e->pos++;
    _cleanup_free_ char *name = exp_name(e);
    char c = e->s[e->pos];
    if (c == '}') {
        e->pos++;
        if (!name[0])
            return dt_error_set(e->err, EINVAL, "bad substitution in '%.64s'", e->s);
        const char *v = exp_lookup(e, name);
        return v ? exp_put(e, out, v, strlen(v)) : 0;
    }
    if (c == 0)
        return dt_error_set(e->err, EINVAL, "missing '}' in '%.64s'", e->s);
    if (!name[0])
        return dt_error_set(e->err, EINVAL, "bad substitution in '%.64s'", e->s);
    bool colon = false;
    if (c == ':') {
        colon = true;
        e->pos++;
        c = e->s[e->pos];
    }
    if (c != '-' && c != '+' && c != '?') {
        if (c == 0)
            return dt_error_set(e->err, EINVAL, "missing '}' in '%.64s'", e->s);
        return dt_error_set(e->err, EINVAL, "unsupported modifier (%c) in substitution in '%.64s'",
                            c, e->s);
    }
    e->pos++;
    if (e->depth >= EXPAND_MAX_DEPTH)
        return dt_error_set(e->err, EINVAL, "substitutions nested too deeply in '%.64s'", e->s);
    struct buf w = {0};
    e->depth++;
    r = exp_word(e, &w, '}');
    e->depth--;
    if (r != 0) {
        free(w.p);
        if (r > 0)
            return dt_error_set(e->err, EINVAL, "missing '}' in '%.64s'", e->s);
        return r;
    }
    /* The word is expanded before NAME is looked up: the callback's result only needs to live
     * until the next call. */
    const char *v = exp_lookup(e, name);
    bool set = v != NULL, nonempty = v && v[0];
    const char *w_s = w.p ? w.p : "";
    switch (c) {
    case '-':
        if (colon ? !nonempty : !set)
            r = exp_put(e, out, w_s, w.n);
        else
            r = exp_put(e, out, v, strlen(v));
        break;
    case '+':
        if (colon ? nonempty : set)
            r = exp_put(e, out, w_s, w.n);
        break;
    default: /* '?' */
        if (colon ? !nonempty : !set)
            r = dt_error_set(e->err, EINVAL, "%s: %s", name,
                             w.n > 0 ? w_s : "is not allowed to be unset");
        else
            r = exp_put(e, out, v, strlen(v));
        break;
    }
    free(w.p);
    return r;
}

/* Expand until STOP (consumed; returns 0) or the end of the word (returns 1; 0 when STOP is 0).
 */
static int
exp_word(struct expander *e, struct buf *out, char stop)
{
    int r;

    for (;;) {
        char c = e->s[e->pos];
        if (c == 0)
            return stop ? 1 : 0;
        if (stop && c == stop) {
            e->pos++;
            return 0;
        }
        if (c == '\'') {
            const char *q = strchr(e->s + e->pos + 1, '\'');
            if (!q)
                return dt_error_set(e->err, EINVAL,
                                    "unexpected end of statement while looking for matching "
                                    "single-quote in '%.64s'", e->s);
            r = exp_put(e, out, e->s + e->pos + 1, (size_t) (q - (e->s + e->pos + 1)));
            if (r < 0)
                return r;
            e->pos = (size_t) (q - e->s) + 1;
        } else if (c == '"') {
            e->pos++;
            for (;;) {
                c = e->s[e->pos];
                if (c == 0)
                    return dt_error_set(e->err, EINVAL,
                                        "unexpected end of statement while looking for matching "
                                        "double-quote in '%.64s'", e->s);
                if (c == '"') {
                    e->pos++;
                    break;
                }
                if (c == '$') {
                    r = exp_dollar(e, out);
                    if (r < 0)
                        return r;
                    continue;
                }
                if (c == e->esc) {
                    char n = e->s[e->pos + 1];
                    if (n == 0) {
                        e->pos++;
                        continue;
                    }
                    if (n == '"' || n == '$' || n == e->esc) {
                        c = n;
                        e->pos++;
                    }
                }
                r = exp_put(e, out, &c, 1);
                if (r < 0)
                    return r;
                e->pos++;
            }
        } else if (c == '$') {
            r = exp_dollar(e, out);
            if (r < 0)
                return r;
        } else if (c == e->esc) {
            e->pos++;
            c = e->s[e->pos];
            if (c == 0)
                continue; /* an escape at the end is dropped */
            r = exp_put(e, out, &c, 1);
            if (r < 0)
                return r;
            e->pos++;
        } else {
            r = exp_put(e, out, &c, 1);
            if (r < 0)
                return r;
            e->pos++;
        }
    }
}

int
dt_dockerfile_expand(const char *word, char escape, dt_dockerfile_lookup_t lookup,
                     void *userdata, char **ret, struct dt_error **err)
{
    struct expander e = {
        .s = word ? word : "",
        .esc = escape ? escape : '\\',
        .lookup = lookup,
        .userdata = userdata,
        .err = err,
    };
    struct buf out = {0};
    int r = exp_word(&e, &out, 0);
    if (r < 0) {
        free(out.p);
        return r;
    }
    *ret = buf_detach(&out);
    return 0;
}

/* ---- instruction tables ----------------------------------------------------------------- */

static const char *const kind_names[_DT_DF_KIND_MAX] = {
    [DT_DF_FROM] = "FROM",         [DT_DF_RUN] = "RUN",
    [DT_DF_ENV] = "ENV",           [DT_DF_ARG] = "ARG",
    [DT_DF_WORKDIR] = "WORKDIR",   [DT_DF_USER] = "USER",
    [DT_DF_LABEL] = "LABEL",       [DT_DF_EXPOSE] = "EXPOSE",
    [DT_DF_ENTRYPOINT] = "ENTRYPOINT", [DT_DF_CMD] = "CMD",
    [DT_DF_COPY] = "COPY",         [DT_DF_ADD] = "ADD",
    [DT_DF_SHELL] = "SHELL",       [DT_DF_STOPSIGNAL] = "STOPSIGNAL",
    [DT_DF_HEALTHCHECK] = "HEALTHCHECK", [DT_DF_VOLUME] = "VOLUME",
};

const char *
dt_dockerfile_kind_name(enum dt_dockerfile_kind k)
{
    if ((unsigned) k >= _DT_DF_KIND_MAX)
        return "?";
    return kind_names[k];
}

enum flag_type { FLAG_VALUE, FLAG_BOOL, FLAG_UNSUPPORTED };

static const struct {
    enum dt_dockerfile_kind kind;
    const char *name;
    enum flag_type type;
} flag_table[] = {
    {DT_DF_FROM, "platform", FLAG_VALUE},
    {DT_DF_RUN, "mount", FLAG_VALUE},
    {DT_DF_RUN, "network", FLAG_UNSUPPORTED},
    {DT_DF_RUN, "security", FLAG_UNSUPPORTED},
    {DT_DF_COPY, "from", FLAG_VALUE},
    {DT_DF_COPY, "chown", FLAG_VALUE},
    {DT_DF_COPY, "chmod", FLAG_VALUE},
    {DT_DF_COPY, "link", FLAG_BOOL},
    {DT_DF_COPY, "parents", FLAG_UNSUPPORTED},
    {DT_DF_COPY, "exclude", FLAG_UNSUPPORTED},
    {DT_DF_ADD, "chown", FLAG_VALUE},
    {DT_DF_ADD, "chmod", FLAG_VALUE},
    {DT_DF_ADD, "link", FLAG_BOOL},
    {DT_DF_ADD, "checksum", FLAG_UNSUPPORTED},
    {DT_DF_ADD, "keep-git-dir", FLAG_UNSUPPORTED},
    {DT_DF_ADD, "exclude", FLAG_UNSUPPORTED},
    {DT_DF_HEALTHCHECK, "interval", FLAG_VALUE},
    {DT_DF_HEALTHCHECK, "timeout", FLAG_VALUE},
    {DT_DF_HEALTHCHECK, "start-period", FLAG_VALUE},
    {DT_DF_HEALTHCHECK, "start-interval", FLAG_VALUE},
    {DT_DF_HEALTHCHECK, "retries", FLAG_VALUE},
};

/* ---- parser state ----------------------------------------------------------------------- */

struct lexer {
    const char *text;
    size_t len, pos;
    unsigned lineno;
};

/* The next physical line without its "\n" or "\r\n". */
static bool
next_line(struct lexer *lx, const char **ret, size_t *ret_len)
{
    if (lx->pos >= lx->len)
        return false;
    const char *s = lx->text + lx->pos;
    const char *nl = memchr(s, '\n', lx->len - lx->pos);
    size_t n = nl ? (size_t) (nl - s) : lx->len - lx->pos;
    lx->pos += n + (nl ? 1 : 0);
    if (n > 0 && s[n - 1] == '\r')
        n--;
    lx->lineno++;
    *ret = s;
    *ret_len = n;
    return true;
}

struct parser {
    struct dt_dockerfile *df;
    struct lexer lx;
    size_t n_total, cap_global, cap_stages, cap_instrs;
    bool dir_done, seen_escape, seen_syntax, seen_check;
    struct dt_error **err;
};

static void
instr_done(struct dt_dockerfile_instr *in)
{
    free(in->raw);
    free(in->args);
    strv_free(in->argv);
    for (size_t i = 0; i < in->n_flags; i++) {
        free(in->flags[i].name);
        free(in->flags[i].value);
    }
    free(in->flags);
    for (size_t i = 0; i < in->n_kv; i++) {
        free(in->kv[i].key);
        free(in->kv[i].value);
    }
    free(in->kv);
    for (size_t i = 0; i < in->n_heredocs; i++) {
        free(in->heredocs[i].name);
        free(in->heredocs[i].content);
    }
    free(in->heredocs);
}

void
dt_dockerfile_free(struct dt_dockerfile *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->n_global_args; i++)
        instr_done(&df->global_args[i]);
    free(df->global_args);
    for (size_t s = 0; s < df->n_stages; s++) {
        struct dt_dockerfile_stage *st = &df->stages[s];
        for (size_t i = 0; i < st->n_instrs; i++)
            instr_done(&st->instrs[i]);
        free(st->instrs);
        free(st->raw);
        free(st->base);
        free(st->name);
        free(st->platform);
    }
    free(df->stages);
    free(df->syntax);
    free(df);
}

int
dt_dockerfile_find_stage(const struct dt_dockerfile *df, const char *name, size_t limit)
{
    if (!df || !name)
        return -1;
    for (size_t i = 0; i < df->n_stages && i < limit; i++)
        if (df->stages[i].name && strcasecmp(df->stages[i].name, name) == 0)
            return (int) i;
    return -1;
}

#define LERR(p, line, errnum, fmt, ...)                                                          \
    dt_error_set((p)->err, errnum, "Dockerfile line %u: " fmt, line, ##__VA_ARGS__)

/* Match "#[ \t]*KEY[ \t]*=[ \t]*VALUE[ \t]*" (KEY alphanumeric, lowercased into KEY). */
static bool
match_directive(const char *l, size_t n, char key[static 16], const char **ret_v, size_t *ret_vn)
{
    size_t i = 0;
    while (i < n && is_ws(l[i]))
        i++;
    if (i >= n || l[i] != '#')
        return false;
    i++;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    size_t ks = i;
    if (i >= n || !is_alpha(l[i]))
        return false;
    while (i < n && (is_alpha(l[i]) || is_digit(l[i])))
        i++;
    size_t ke = i;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    if (i >= n || l[i] != '=')
        return false;
    i++;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    size_t ve = n;
    while (ve > i && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    if (ve == i || ke - ks >= 16)
        return false;
    for (size_t k = 0; k < ke - ks; k++)
        key[k] = (char) (l[ks + k] | 0x20);
    key[ke - ks] = 0;
    *ret_v = l + i;
    *ret_vn = ve - i;
    return true;
}

/* Parser directives (BuildKit directives.go): "# key=value" lines at the very top; the first
 * line that is not a known directive ends the directive section. */
static int
parse_directive(struct parser *p, const char *l, size_t n)
{
    char key[16];
    const char *v;
    size_t vn;
    bool *seen = NULL;

    if (match_directive(l, n, key, &v, &vn)) {
        if (strcmp(key, "escape") == 0)
            seen = &p->seen_escape;
        else if (strcmp(key, "syntax") == 0)
            seen = &p->seen_syntax;
        else if (strcmp(key, "check") == 0)
            seen = &p->seen_check;
    }
    if (!seen) {
        p->dir_done = true;
        return 0;
    }
    if (*seen)
        return LERR(p, p->lx.lineno, EINVAL, "only one %s parser directive can be used", key);
    *seen = true;
    if (seen == &p->seen_escape) {
        if (vn != 1 || (v[0] != '\\' && v[0] != '`'))
            return LERR(p, p->lx.lineno, EINVAL,
                        "invalid escape token '%.*s' does not match ` or \\",
                        (int) (vn > 64 ? 64 : vn), v);
        p->df->escape = v[0];
    } else if (seen == &p->seen_syntax) {
        p->df->syntax = xstrndup(v, vn);
    }
    return 0;
}

/* Remove "ESC[ \t]*" at the end of a line; returns true when the line continues. */
static bool
trim_continuation(const char *l, size_t *n, char esc)
{
    size_t e = *n;
    while (e > 0 && (l[e - 1] == ' ' || l[e - 1] == '\t'))
        e--;
    if (e > 0 && l[e - 1] == esc) {
        *n = e - 1;
        return true;
    }
    return false;
}

/* BuildKit extractBuilderFlags: leading "--name[=value]" words (quotes and '\' escapes removed),
 * ending at the first word not starting with "--" or at a lone "--". */
static const char *
extract_flags(const char *line, char ***ret_words)
{
    char **v = xcalloc(1, sizeof(char *));
    size_t n = 0, cap = 1, len = strlen(line);
    struct buf w = {0};
    bool blank_ok = false, in_word = false;
    char quote = 0;
    const char *rest = line + len;

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? line[i] : 0;
        if (!in_word) {
            if (i == len)
                break;
            if (is_ws(c))
                continue;
            if (c != '-' || i + 1 == len || line[i + 1] != '-') {
                rest = line + i;
                break;
            }
            in_word = true;
        }
        if (i == len) {
            if (!(w.n == 2 && memcmp(w.p, "--", 2) == 0) && (blank_ok || w.n > 0)) {
                v = grow(v, n + 1, &cap, sizeof(char *));
                v[n++] = buf_detach(&w);
                v[n] = NULL;
            }
            break;
        }
        if (!quote) {
            if (is_ws(c)) {
                in_word = false;
                if (w.n == 2 && memcmp(w.p, "--", 2) == 0) {
                    rest = line + i;
                    break;
                }
                if (blank_ok || w.n > 0) {
                    v = grow(v, n + 1, &cap, sizeof(char *));
                    v[n++] = buf_detach(&w);
                    v[n] = NULL;
                }
                w.n = 0;
                blank_ok = false;
                continue;
            }
            if (c == '\'' || c == '"') {
                quote = c;
                blank_ok = true;
                continue;
            }
            if (c == '\\') {
                if (i + 1 == len)
                    continue;
                c = line[++i];
            }
            buf_putc(&w, c);
            continue;
        }
        if (c == quote) {
            quote = 0;
            continue;
        }
        if (c == '\\') {
            if (i + 1 == len) {
                quote = 0;
                continue;
            }
            c = line[++i];
        }
        buf_putc(&w, c);
    }
    free(w.p);
    *ret_words = v;
    return rest;
}

static int
parse_flags(struct parser *p, struct dt_dockerfile_instr *in, char **words)
{
    const char *kname = dt_dockerfile_kind_name(in->kind);
    size_t nw = strv_length(words);
    if (nw == 0)
        return 0;
    in->flags = xcalloc(nw, sizeof(struct dt_dockerfile_flag));
    for (size_t i = 0; i < nw; i++) {
        const char *w = words[i];
        if (strncmp(w, "--", 2) != 0)
            return LERR(p, in->line, EINVAL, "%s: invalid flag '%.64s'", kname, w);
        const char *eq = strchr(w + 2, '=');
        _cleanup_free_ char *name = eq ? xstrndup(w + 2, (size_t) (eq - (w + 2))) : xstrdup(w + 2);
        const char *value = eq ? eq + 1 : NULL;
        if (!name[0])
            return LERR(p, in->line, EINVAL, "%s: invalid flag '%.64s'", kname, w);
        int t = -1;
        for (size_t k = 0; k < ELEMENTSOF(flag_table); k++)
            if (flag_table[k].kind == in->kind && strcmp(flag_table[k].name, name) == 0)
                t = (int) flag_table[k].type;
        if (t < 0)
            return LERR(p, in->line, EINVAL, "unknown flag for %s: --%.64s", kname, name);
        if (t == FLAG_UNSUPPORTED)
            return LERR(p, in->line, ENOTSUP, "%s --%s is not supported by this builder", kname,
                        name);
        for (size_t k = 0; k < in->n_flags; k++)
            if (strcmp(in->flags[k].name, name) == 0)
                return LERR(p, in->line, EINVAL, "%s: duplicate flag specified: --%s", kname,
                            name);
        if (t == FLAG_VALUE && !value)
            return LERR(p, in->line, EINVAL, "%s: missing a value on flag --%s", kname, name);
        if (t == FLAG_BOOL && value && strcasecmp(value, "true") != 0 &&
            strcasecmp(value, "false") != 0)
            return LERR(p, in->line, EINVAL,
                        "%s: expecting boolean value for flag --%s, not '%.64s'", kname, name,
                        value);
        in->flags[in->n_flags].name = TAKE_PTR(name);
        in->flags[in->n_flags].value = value ? xstrdup(value) : NULL;
        in->n_flags++;
    }
    return 0;
}

static const char *
flag_value(const struct dt_dockerfile_instr *in, const char *name)
{
    for (size_t k = 0; k < in->n_flags; k++)
        if (strcmp(in->flags[k].name, name) == 0)
            return in->flags[k].value;
    return NULL;
}

/* Go time.ParseDuration syntax ("1m30s", "0.5s", "0"). */
static bool
valid_duration(const char *s)
{
    if (strcmp(s, "0") == 0)
        return true;
    if (!*s)
        return false;
    while (*s) {
        bool digits = false;
        while (is_digit(*s)) {
            s++;
            digits = true;
        }
        if (*s == '.') {
            s++;
            while (is_digit(*s)) {
                s++;
                digits = true;
            }
        }
        if (!digits)
            return false;
        if (strncmp(s, "ns", 2) == 0 || strncmp(s, "us", 2) == 0 || strncmp(s, "ms", 2) == 0)
            s += 2;
        else if (strncmp(s, "\xc2\xb5s", 3) == 0)
            s += 3;
        else if (*s == 's' || *s == 'm' || *s == 'h')
            s++;
        else
            return false;
    }
    return true;
}

/* 1: JSON string array (*ret set); 0: not JSON; <0: a JSON array with non-strings. */
static int
parse_json(struct parser *p, const struct dt_dockerfile_instr *in, const char *s, char ***ret)
{
    while (is_ws(*s))
        s++;
    if (*s != '[')
        return 0;
    json_error_t jerr;
    json_t *a = json_loads(s, 0, &jerr);
    if (!a)
        return 0;
    if (!json_is_array(a)) {
        json_decref(a);
        return 0;
    }
    size_t n = json_array_size(a);
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e)) {
            strv_free(v);
            json_decref(a);
            return LERR(p, in->line, EINVAL,
                        "%s: when using JSON array syntax, arrays must be comprised of strings "
                        "only", dt_dockerfile_kind_name(in->kind));
        }
        v[i] = xstrdup(json_string_value(e));
    }
    json_decref(a);
    *ret = v;
    return 1;
}

static char **
strv_one(const char *s)
{
    char **v = xcalloc(2, sizeof(char *));
    v[0] = xstrdup(s);
    return v;
}

/* Shell form or exec form for RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK CMD. */
static int
parse_maybe_json(struct parser *p, struct dt_dockerfile_instr *in, const char *s)
{
    int r = parse_json(p, in, s, &in->argv);
    if (r < 0)
        return r;
    in->json = r > 0;
    if (!in->json)
        in->argv = strv_one(s);
    return 0;
}

/* Exec form or whitespace-separated words for COPY/ADD/VOLUME. */
static int
parse_maybe_json_list(struct parser *p, struct dt_dockerfile_instr *in, const char *s)
{
    int r = parse_json(p, in, s, &in->argv);
    if (r < 0)
        return r;
    in->json = r > 0;
    if (!in->json)
        in->argv = split_ws(s);
    return 0;
}

static void
kv_add(struct dt_dockerfile_instr *in, size_t *cap, char *key, char *value)
{
    in->kv = grow(in->kv, in->n_kv, cap, sizeof(struct dt_dockerfile_kv));
    in->kv[in->n_kv].key = key;
    in->kv[in->n_kv].value = value;
    in->n_kv++;
}

/* ENV and LABEL: "K=V K2=V2" or the legacy "K value with spaces". */
static int
parse_name_val(struct parser *p, struct dt_dockerfile_instr *in)
{
    const char *kname = dt_dockerfile_kind_name(in->kind);
    _cleanup_strv_free_ char **words = parse_words(in->args, p->df->escape);
    size_t cap = 0;

    if (!words[0])
        return LERR(p, in->line, EINVAL, "%s requires at least one argument", kname);
    if (!strchr(words[0], '=')) {
        const char *s = in->args, *e = s;
        while (*e && !is_ws(*e))
            e++;
        const char *v = e;
        while (*v && is_ws(*v))
            v++;
        if (!*v)
            return LERR(p, in->line, EINVAL, "%s must have two arguments", kname);
        kv_add(in, &cap, xstrndup(s, (size_t) (e - s)), xstrdup(v));
    } else {
        for (size_t i = 0; words[i]; i++) {
            char *eq = strchr(words[i], '=');
            if (!eq)
                return LERR(p, in->line, EINVAL,
                            "%s: syntax error - can't find = in '%.64s'. Must be of the form: "
                            "name=value", kname, words[i]);
            kv_add(in, &cap, xstrndup(words[i], (size_t) (eq - words[i])), xstrdup(eq + 1));
            if (!in->kv[in->n_kv - 1].key[0])
                return LERR(p, in->line, EINVAL, "%s names can not be blank", kname);
        }
    }
    if (!in->kv[0].key[0])
        return LERR(p, in->line, EINVAL, "%s names can not be blank", kname);
    return 0;
}

static int
parse_arg(struct parser *p, struct dt_dockerfile_instr *in)
{
    _cleanup_strv_free_ char **words = parse_words(in->args, p->df->escape);
    size_t cap = 0;

    if (!words[0])
        return LERR(p, in->line, EINVAL, "ARG requires at least one argument");
    for (size_t i = 0; words[i]; i++) {
        char *eq = strchr(words[i], '=');
        char *key = eq ? xstrndup(words[i], (size_t) (eq - words[i])) : xstrdup(words[i]);
        kv_add(in, &cap, key, eq ? xstrdup(eq + 1) : NULL);
        if (!key[0])
            return LERR(p, in->line, EINVAL, "ARG names can not be blank");
    }
    return 0;
}

static bool
valid_port_num(const char *s, size_t n, unsigned *ret)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned) (s[i] - '0');
    }
    *ret = v;
    return v <= 65535;
}

/* "80", "80/tcp", "53/udp", "8000-8010/tcp"; words using variables are checked after expansion
 * by the builder. */
static bool
valid_expose(const char *w)
{
    if (strchr(w, '$'))
        return true;
    const char *slash = strchr(w, '/');
    size_t n = slash ? (size_t) (slash - w) : strlen(w);
    if (slash && strcasecmp(slash + 1, "tcp") != 0 && strcasecmp(slash + 1, "udp") != 0 &&
        strcasecmp(slash + 1, "sctp") != 0)
        return false;
    const char *dash = memchr(w, '-', n);
    unsigned a, b;
    if (!dash)
        return valid_port_num(w, n, &a);
    return valid_port_num(w, (size_t) (dash - w), &a) &&
           valid_port_num(dash + 1, n - (size_t) (dash - w) - 1, &b) && a <= b;
}

/* Remove quotes and escapes from a heredoc terminator word. */
static char *
unquote_simple(const char *s, size_t n, char esc, bool *quoted)
{
    struct buf b = {0};
    char q = 0;
    *quoted = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (q) {
            if (c == q) {
                q = 0;
                continue;
            }
        } else if (c == '\'' || c == '"') {
            q = c;
            *quoted = true;
            continue;
        } else if (c == esc && i + 1 < n) {
            c = s[++i];
            *quoted = true;
        }
        buf_putc(&b, c);
    }
    return buf_detach(&b);
}

/* BuildKit heredocs: words of the form [n]<<[-]WORD in shell-form RUN/COPY/ADD; bodies follow
 * the instruction line, each up to a line equal to WORD (leading tabs ignored for <<-). */
static int
parse_heredocs(struct parser *p, struct dt_dockerfile_instr *in)
{
    _cleanup_strv_free_ char **words = parse_words(in->args, p->df->escape);
    size_t cap = 0;

    for (size_t i = 0; words[i]; i++) {
        const char *w = words[i];
        while (is_digit(*w))
            w++;
        if (strncmp(w, "<<", 2) != 0)
            continue;
        w += 2;
        bool chomp = *w == '-';
        if (chomp)
            w++;
        if (strchr(w, '<'))
            continue;
        bool quoted;
        char *name = unquote_simple(w, strlen(w), p->df->escape, &quoted);
        if (!name[0]) {
            free(name);
            continue;
        }
        if (in->n_heredocs >= DT_DOCKERFILE_MAX_HEREDOCS) {
            free(name);
            return LERR(p, in->line, E2BIG, "more than %u heredocs", DT_DOCKERFILE_MAX_HEREDOCS);
        }
        in->heredocs = grow(in->heredocs, in->n_heredocs, &cap,
                            sizeof(struct dt_dockerfile_heredoc));
        struct dt_dockerfile_heredoc *h = &in->heredocs[in->n_heredocs++];
        *h = (struct dt_dockerfile_heredoc){
            .name = name, .content = NULL, .expand = !quoted, .chomp = chomp};
    }
    for (size_t i = 0; i < in->n_heredocs; i++) {
        struct dt_dockerfile_heredoc *h = &in->heredocs[i];
        struct buf b = {0};
        const char *l;
        size_t n;
        bool found = false;
        while (next_line(&p->lx, &l, &n)) {
            if (h->chomp)
                while (n > 0 && *l == '\t') {
                    l++;
                    n--;
                }
            if (n == strlen(h->name) && memcmp(l, h->name, n) == 0) {
                found = true;
                break;
            }
            buf_putn(&b, l, n);
            buf_putc(&b, '\n');
        }
        h->content = buf_detach(&b);
        if (!found)
            return LERR(p, in->line, EINVAL, "unterminated heredoc '%.64s'", h->name);
    }
    in->end_line = p->lx.lineno;
    return 0;
}

static bool
valid_stage_name(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || is_digit(*s) || *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static int
parse_from(struct parser *p, struct dt_dockerfile_instr *in)
{
    struct dt_dockerfile *df = p->df;
    _cleanup_strv_free_ char **w = split_ws(in->args);
    size_t n = strv_length(w);

    if (!(n == 1 || (n == 3 && strcasecmp(w[1], "as") == 0)))
        return LERR(p, in->line, EINVAL, "FROM requires either one or three arguments");
    if (df->n_stages >= DT_DOCKERFILE_MAX_STAGES)
        return LERR(p, in->line, E2BIG, "more than %u build stages", DT_DOCKERFILE_MAX_STAGES);
    _cleanup_free_ char *name = NULL;
    if (n == 3) {
        name = xstrdup(w[2]);
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char) (*c | 0x20);
        if (!valid_stage_name(name))
            return LERR(p, in->line, EINVAL,
                        "invalid name for build stage: '%.64s', name can't start with a number "
                        "or contain symbols", w[2]);
        if (dt_dockerfile_find_stage(df, name, df->n_stages) >= 0)
            return LERR(p, in->line, EINVAL, "duplicate stage name '%s'", name);
    }
    df->stages = grow(df->stages, df->n_stages, &p->cap_stages,
                      sizeof(struct dt_dockerfile_stage));
    struct dt_dockerfile_stage *st = &df->stages[df->n_stages++];
    const char *plat = flag_value(in, "platform");
    *st = (struct dt_dockerfile_stage){
        .line = in->line,
        .raw = TAKE_PTR(in->raw),
        .base = xstrdup(w[0]),
        .name = TAKE_PTR(name),
        .platform = plat ? xstrdup(plat) : NULL,
    };
    p->cap_instrs = 0;
    return 0;
}

/* Fill IN (kind, line, raw, args and flags already set) from its arguments. */
static int
parse_args(struct parser *p, struct dt_dockerfile_instr *in)
{
    const char *kname = dt_dockerfile_kind_name(in->kind);
    const char *a = in->args;
    int r;

    switch (in->kind) {
    case DT_DF_RUN:
    case DT_DF_CMD:
    case DT_DF_ENTRYPOINT:
        if (in->kind == DT_DF_RUN && !a[0])
            return LERR(p, in->line, EINVAL, "RUN requires at least one argument");
        r = parse_maybe_json(p, in, a);
        if (r < 0)
            return r;
        if (in->kind == DT_DF_RUN && !in->json)
            return parse_heredocs(p, in);
        return 0;
    case DT_DF_SHELL:
        r = parse_json(p, in, a, &in->argv);
        if (r < 0)
            return r;
        if (r == 0)
            return LERR(p, in->line, EINVAL, "SHELL requires the arguments to be in JSON form");
        in->json = true;
        if (!in->argv[0])
            return LERR(p, in->line, EINVAL, "SHELL requires at least one argument");
        return 0;
    case DT_DF_COPY:
    case DT_DF_ADD:
        r = parse_maybe_json_list(p, in, a);
        if (r < 0)
            return r;
        if (strv_length(in->argv) < 2)
            return LERR(p, in->line, EINVAL,
                        "%s requires at least two arguments, but only %zu provided. Destination "
                        "could not be determined", kname, strv_length(in->argv));
        if (!in->json)
            return parse_heredocs(p, in);
        return 0;
    case DT_DF_VOLUME:
        r = parse_maybe_json_list(p, in, a);
        if (r < 0)
            return r;
        if (!in->argv[0])
            return LERR(p, in->line, EINVAL, "VOLUME requires at least one argument");
        for (size_t i = 0; in->argv[i]; i++)
            if (!in->argv[i][0])
                return LERR(p, in->line, EINVAL, "VOLUME specified can not be an empty string");
        return 0;
    case DT_DF_EXPOSE:
        in->argv = split_ws(a);
        if (!in->argv[0])
            return LERR(p, in->line, EINVAL, "EXPOSE requires at least one argument");
        for (size_t i = 0; in->argv[i]; i++)
            if (!valid_expose(in->argv[i]))
                return LERR(p, in->line, EINVAL, "invalid EXPOSE port '%.64s'", in->argv[i]);
        return 0;
    case DT_DF_ENV:
    case DT_DF_LABEL:
        in->argv = xcalloc(1, sizeof(char *));
        return parse_name_val(p, in);
    case DT_DF_ARG:
        in->argv = xcalloc(1, sizeof(char *));
        return parse_arg(p, in);
    case DT_DF_WORKDIR:
    case DT_DF_USER:
    case DT_DF_STOPSIGNAL:
        if (!a[0])
            return LERR(p, in->line, EINVAL, "%s requires exactly one argument", kname);
        in->argv = strv_one(a);
        return 0;
    case DT_DF_HEALTHCHECK: {
        const char *e = a;
        while (*e && !is_ws(*e))
            e++;
        size_t tl = (size_t) (e - a);
        while (*e && is_ws(*e))
            e++;
        if (tl == 4 && strncasecmp(a, "NONE", 4) == 0) {
            if (*e || in->n_flags > 0)
                return LERR(p, in->line, EINVAL, "HEALTHCHECK NONE takes no arguments");
            in->healthcheck_none = true;
            in->argv = xcalloc(1, sizeof(char *));
            return 0;
        }
        if (tl != 3 || strncasecmp(a, "CMD", 3) != 0)
            return LERR(p, in->line, EINVAL, "unknown type '%.*s' in HEALTHCHECK (try CMD)",
                        (int) (tl > 64 ? 64 : tl), a);
        if (!*e)
            return LERR(p, in->line, EINVAL, "missing command after HEALTHCHECK CMD");
        for (size_t k = 0; k < in->n_flags; k++) {
            const char *v = in->flags[k].value;
            bool ok;
            if (strcmp(in->flags[k].name, "retries") == 0) {
                uint64_t u;
                ok = parse_u64(v, &u) >= 0 && u <= INT32_MAX;
            } else
                ok = valid_duration(v);
            if (!ok)
                return LERR(p, in->line, EINVAL, "HEALTHCHECK: invalid --%s '%.64s'",
                            in->flags[k].name, v);
        }
        return parse_maybe_json(p, in, e);
    }
    default:
        DT_BUG("unexpected instruction kind");
    }
}

static const struct {
    const char *name;
    int kind; /* -1 MAINTAINER, -2 ONBUILD */
} instr_names[] = {
    {"FROM", DT_DF_FROM},       {"RUN", DT_DF_RUN},
    {"ENV", DT_DF_ENV},         {"ARG", DT_DF_ARG},
    {"WORKDIR", DT_DF_WORKDIR}, {"USER", DT_DF_USER},
    {"LABEL", DT_DF_LABEL},     {"EXPOSE", DT_DF_EXPOSE},
    {"ENTRYPOINT", DT_DF_ENTRYPOINT}, {"CMD", DT_DF_CMD},
    {"COPY", DT_DF_COPY},       {"ADD", DT_DF_ADD},
    {"SHELL", DT_DF_SHELL},     {"STOPSIGNAL", DT_DF_STOPSIGNAL},
    {"HEALTHCHECK", DT_DF_HEALTHCHECK}, {"VOLUME", DT_DF_VOLUME},
    {"MAINTAINER", -1},         {"ONBUILD", -2},
};

/* MAINTAINER text as a double-quoted word that dt_dockerfile_expand() turns back into TEXT. */
static char *
quote_literal(const char *s, char esc)
{
    struct buf b = {0};
    buf_putc(&b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '$' || *s == esc)
            buf_putc(&b, esc);
        buf_putc(&b, *s);
    }
    buf_putc(&b, '"');
    return buf_detach(&b);
}

static int
parse_logical(struct parser *p, const char *line, unsigned lineno)
{
    struct dt_dockerfile *df = p->df;
    const char *s = line;
    int r;

    while (is_ws(*s))
        s++;
    const char *ce = s;
    while (*ce && !is_ws(*ce))
        ce++;
    size_t cl = (size_t) (ce - s);
    int kind = -3;
    for (size_t i = 0; i < ELEMENTSOF(instr_names); i++)
        if (strlen(instr_names[i].name) == cl && strncasecmp(instr_names[i].name, s, cl) == 0)
            kind = instr_names[i].kind;
    if (kind == -3)
        return LERR(p, lineno, EINVAL, "unknown instruction %.*s", (int) (cl > 64 ? 64 : cl), s);
    if (kind == -2)
        return LERR(p, lineno, ENOTSUP, "ONBUILD is not supported");
    if (++p->n_total > DT_DOCKERFILE_MAX_INSTRS)
        return LERR(p, lineno, E2BIG, "more than %u instructions", DT_DOCKERFILE_MAX_INSTRS);

    struct dt_dockerfile_instr in = {
        .kind = kind == -1 ? DT_DF_LABEL : (enum dt_dockerfile_kind) kind,
        .line = lineno,
        .end_line = p->lx.lineno,
        .raw = trim_dup(line, strlen(line)),
    };
    if (in.kind != DT_DF_ARG && in.kind != DT_DF_FROM && df->n_stages == 0) {
        instr_done(&in);
        return LERR(p, lineno, EINVAL, "%.*s before the first FROM (only ARG may come first)",
                    (int) (cl > 64 ? 64 : cl), s);
    }

    char **fwords = NULL;
    const char *rest = extract_flags(ce, &fwords);
    in.args = trim_dup(rest, strlen(rest));
    if (kind == -1) {
        strv_free(fwords);
        if (!in.args[0]) {
            instr_done(&in);
            return LERR(p, lineno, EINVAL, "MAINTAINER requires exactly one argument");
        }
        in.argv = xcalloc(1, sizeof(char *));
        in.kv = xcalloc(1, sizeof(struct dt_dockerfile_kv));
        in.kv[0].key = xstrdup("maintainer");
        in.kv[0].value = quote_literal(in.args, df->escape);
        in.n_kv = 1;
        r = 0;
    } else {
        r = parse_flags(p, &in, fwords);
        strv_free(fwords);
        if (r >= 0)
            r = in.kind == DT_DF_FROM ? parse_from(p, &in) : parse_args(p, &in);
    }
    if (r < 0 || in.kind == DT_DF_FROM) {
        instr_done(&in);
        return r;
    }

    if (df->n_stages == 0) {
        df->global_args = grow(df->global_args, df->n_global_args, &p->cap_global,
                               sizeof(struct dt_dockerfile_instr));
        df->global_args[df->n_global_args++] = in;
    } else {
        struct dt_dockerfile_stage *st = &df->stages[df->n_stages - 1];
        st->instrs = grow(st->instrs, st->n_instrs, &p->cap_instrs,
                          sizeof(struct dt_dockerfile_instr));
        st->instrs[st->n_instrs++] = in;
    }
    return 0;
}

static int
parse_all(struct parser *p)
{
    const char *l;
    size_t n;
    int r;

    while (next_line(&p->lx, &l, &n)) {
        unsigned start = p->lx.lineno;
        if (!p->dir_done) {
            r = parse_directive(p, l, n);
            if (r < 0)
                return r;
        }
        while (n > 0 && is_ws(*l)) {
            l++;
            n--;
        }
        if (n == 0 || *l == '#')
            continue;
        struct buf b = {0};
        bool cont = trim_continuation(l, &n, p->df->escape);
        buf_putn(&b, l, n);
        while (cont && next_line(&p->lx, &l, &n)) {
            /* Comment and empty lines inside a continuation are skipped (BuildKit). */
            size_t i = 0;
            while (i < n && is_ws(l[i]))
                i++;
            if (i == n || l[i] == '#')
                continue;
            cont = trim_continuation(l, &n, p->df->escape);
            buf_putn(&b, l, n);
        }
        char *line = buf_detach(&b);
        const char *t = line;
        while (is_ws(*t))
            t++;
        r = *t ? parse_logical(p, line, start) : 0;
        free(line);
        if (r < 0)
            return r;
    }
    if (p->df->n_stages == 0)
        return dt_error_set(p->err, EINVAL,
                            p->n_total == 0 ? "Dockerfile is empty: no FROM instruction"
                                            : "Dockerfile has no FROM instruction");
    return 0;
}

int
dt_dockerfile_parse(const char *text, size_t len, struct dt_dockerfile **ret,
                    struct dt_error **err)
{
    if (len > DT_DOCKERFILE_MAX_SIZE)
        return dt_error_set(err, E2BIG, "Dockerfile is larger than %u bytes",
                            DT_DOCKERFILE_MAX_SIZE);
    const char *nul = memchr(text, 0, len);
    if (nul) {
        unsigned line = 1;
        for (const char *c = text; c < nul; c++)
            line += *c == '\n';
        return dt_error_set(err, EINVAL, "Dockerfile line %u: NUL byte", line);
    }
    /* A UTF-8 byte order mark is ignored, as BuildKit does. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    struct parser p = {
        .df = xcalloc(1, sizeof(struct dt_dockerfile)),
        .lx = {.text = text, .len = len},
        .err = err,
    };
    p.df->escape = '\\';
    int r = parse_all(&p);
    if (r < 0) {
        dt_dockerfile_free(p.df);
        return r;
    }
    *ret = p.df;
    return 0;
}
