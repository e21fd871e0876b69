/* SPDX-License-Identifier: Apache-2.0 */
/* Dockerfile parser: turns untrusted Dockerfile text into a validated plain-data plan (stages of
 * instructions) for the image builder, following Docker/BuildKit lexing rules. Variable expansion
 * is a separate step (dt_dockerfile_expand) because values depend on the ARG/ENV scope at build
 * time. */
#ifndef DT_DOCKERFILE_H
#define DT_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "dt/error.h"

#define DT_DOCKERFILE_MAX_SIZE   (1024u * 1024u) /* input bytes */
#define DT_DOCKERFILE_MAX_INSTRS 10000u          /* instructions, FROM and global ARG included */
#define DT_DOCKERFILE_MAX_STAGES 128u
#define DT_DOCKERFILE_MAX_HEREDOCS 16u           /* per instruction */
#define DT_DOCKERFILE_MAX_EXPAND (4u * 1024u * 1024u) /* bytes produced by one expansion */

enum dt_dockerfile_kind {
    DT_DF_FROM,
    DT_DF_RUN,
    DT_DF_ENV,
    DT_DF_ARG,
    DT_DF_WORKDIR,
    DT_DF_USER,
    DT_DF_LABEL, /* also MAINTAINER, recorded as LABEL maintainer=... */
    DT_DF_EXPOSE,
    DT_DF_ENTRYPOINT,
    DT_DF_CMD,
    DT_DF_COPY,
    DT_DF_ADD,
    DT_DF_SHELL,
    DT_DF_STOPSIGNAL,
    DT_DF_HEALTHCHECK,
    DT_DF_VOLUME,
    _DT_DF_KIND_MAX,
};

/* "RUN", "COPY", ... (static storage). */
const char *dt_dockerfile_kind_name(enum dt_dockerfile_kind k);

/* A builder flag, quote-removed, unexpanded: "--chown=a:b" is {"chown", "a:b"}; a bare "--link"
 * has value NULL. */
struct dt_dockerfile_flag {
    char *name;
    char *value;
};

/* ENV/LABEL pair or ARG declaration. KEY and VALUE are as written (quotes kept, unexpanded):
 * pass them through dt_dockerfile_expand() at build time, which also removes quotes. For ARG
 * without a default, value is NULL. */
struct dt_dockerfile_kv {
    char *key;
    char *value;
};

/* A BuildKit heredoc (RUN/COPY/ADD <<EOF). */
struct dt_dockerfile_heredoc {
    char *name;    /* terminator word, quotes removed ("EOF") */
    char *content; /* body, every line ending in "\n"; leading tabs removed for <<- */
    bool expand;   /* terminator was unquoted: expand variables in content */
    bool chomp;    /* <<- form */
};

struct dt_dockerfile_instr {
    enum dt_dockerfile_kind kind;
    unsigned line;     /* 1-based line of the instruction keyword */
    unsigned end_line; /* last line of the instruction (continuations, heredocs) */
    char *raw;         /* logical line: continuation lines joined, comments dropped */
    char *args;        /* argument text after the flags, trimmed */
    /* Arguments, always a NULL-terminated vector (possibly empty):
     * - json: the JSON string array (exec form);
     * - !json, RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD/WORKDIR/USER/STOPSIGNAL: one element, the
     *   shell-form string;
     * - !json, COPY/ADD/VOLUME/EXPOSE: whitespace-separated words, unexpanded;
     * - ENV/LABEL/ARG: empty (see kv). */
    bool json;
    char **argv;
    struct dt_dockerfile_flag *flags;
    size_t n_flags;
    struct dt_dockerfile_kv *kv; /* ENV, LABEL, ARG */
    size_t n_kv;
    struct dt_dockerfile_heredoc *heredocs; /* RUN/COPY/ADD shell form */
    size_t n_heredocs;
    bool healthcheck_none; /* HEALTHCHECK NONE (argv empty) */
};

struct dt_dockerfile_stage {
    unsigned line;
    char *raw;      /* the FROM line */
    char *base;     /* image reference or earlier stage name, unexpanded (may use global ARGs) */
    char *name;     /* "AS name", lowercased; NULL when absent */
    char *platform; /* --platform value, unexpanded; NULL when absent */
    struct dt_dockerfile_instr *instrs;
    size_t n_instrs;
};

struct dt_dockerfile {
    char escape;  /* '\\' or '`' (from "# escape=" directive) */
    char *syntax; /* "# syntax=" directive value, or NULL; recorded only */
    struct dt_dockerfile_instr *global_args; /* ARG instructions before the first FROM */
    size_t n_global_args;
    struct dt_dockerfile_stage *stages; /* at least one */
    size_t n_stages;
};

/* Parse LEN bytes of TEXT (need not be NUL-terminated; at most DT_DOCKERFILE_MAX_SIZE).
 * On success returns 0 and *ret a new object; free with dt_dockerfile_free().
 * On failure returns -errno and fills *err with "Dockerfile line N: ...":
 * -EINVAL syntax errors and unknown instructions or flags, -ENOTSUP ONBUILD and flags Docker
 * knows but this builder does not implement (RUN --network/--security, COPY --parents/--exclude,
 * ADD --checksum/--keep-git-dir/--exclude), -E2BIG limits. */
int dt_dockerfile_parse(const char *text, size_t len, struct dt_dockerfile **ret,
                        struct dt_error **err);

/* Accepts NULL. */
void dt_dockerfile_free(struct dt_dockerfile *df);
static inline void
dt_dockerfile_freep(struct dt_dockerfile **df)
{
    dt_dockerfile_free(*df);
}

/* Index of the stage named NAME (case-insensitive) among the first LIMIT stages, or -1. */
int dt_dockerfile_find_stage(const struct dt_dockerfile *df, const char *name, size_t limit);

/* The value of variable NAME, or NULL when it is not set. The returned pointer is borrowed and
 * only needs to stay valid until the callback is next called or dt_dockerfile_expand returns. */
typedef const char *(*dt_dockerfile_lookup_t)(const char *name, void *userdata);

/* Expand one word the way Docker does for ENV, ARG, WORKDIR, USER, LABEL, EXPOSE, COPY/ADD
 * sources and destination, FROM and STOPSIGNAL (never RUN/CMD/ENTRYPOINT shell strings):
 * $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR:?msg}, ${VAR?msg}; ESCAPE
 * ('\\' or '`', dt_dockerfile.escape) makes the next character literal; single quotes prevent
 * expansion; double quotes allow it. Quotes are removed and whitespace is kept (no word
 * splitting), so this is also the quote removal for ENV/LABEL/ARG values. LOOKUP may be NULL
 * (nothing set). Returns 0 and *ret a new string (free()), or -EINVAL (bad syntax, unset
 * ${VAR?msg}) / -E2BIG (result larger than DT_DOCKERFILE_MAX_EXPAND) with *err set. */
int dt_dockerfile_expand(const char *word, char escape, dt_dockerfile_lookup_t lookup,
                         void *userdata, char **ret, struct dt_error **err);

#endif
