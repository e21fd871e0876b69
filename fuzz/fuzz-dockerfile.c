/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the Dockerfile parser with arbitrary text, then run every value the builder would expand
 * (ENV/LABEL/ARG pairs, FROM bases, COPY words, WORKDIR...) through dt_dockerfile_expand with a
 * small variable table, as the builder does at execution time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dt/dockerfile.h"
#include "dt/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
lookup(const char *name, void *userdata)
{
    if (strcmp(name, "A") == 0)
        return "alpha";
    if (strcmp(name, "E") == 0)
        return "";
    if (strcmp(name, "L") == 0)
        return "a long value with spaces 'quotes' \"dq\" $NOT ${EXPANDED}";
    return NULL;
}

static void
expand_one(const char *w, char esc)
{
    char *out = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_expand(w, esc, lookup, NULL, &out, &err);
    if (r < 0) {
        if (!err || out)
            abort();
        dt_error_free(err);
        return;
    }
    if (!out || err)
        abort();
    free(out);
}

static void
expand_instr(const struct dt_dockerfile_instr *in, char esc)
{
    if (!in->raw || !in->args || !in->argv)
        abort();
    for (size_t i = 0; in->argv[i]; i++)
        expand_one(in->argv[i], esc);
    for (size_t i = 0; i < in->n_kv; i++) {
        expand_one(in->kv[i].key, esc);
        if (in->kv[i].value)
            expand_one(in->kv[i].value, esc);
    }
    for (size_t i = 0; i < in->n_flags; i++)
        if (in->flags[i].value)
            expand_one(in->flags[i].value, esc);
    for (size_t i = 0; i < in->n_heredocs; i++)
        if (in->heredocs[i].expand)
            expand_one(in->heredocs[i].content, esc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_dockerfile *df = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_parse((const char *) data, size, &df, &err);
    if (r < 0) {
        if (!err || !err->message || df)
            abort();
        dt_error_free(err);
    } else {
        if (!df || err || df->n_stages == 0)
            abort();
        for (size_t i = 0; i < df->n_global_args; i++)
            expand_instr(&df->global_args[i], df->escape);
        for (size_t s = 0; s < df->n_stages; s++) {
            expand_one(df->stages[s].base, df->escape);
            for (size_t i = 0; i < df->stages[s].n_instrs; i++)
                expand_instr(&df->stages[s].instrs[i], df->escape);
        }
        dt_dockerfile_free(df);
    }

    /* The raw input as one word, both escape characters. */
    char *w = malloc(size + 1);
    if (!w)
        return 0;
    memcpy(w, data, size);
    w[size] = 0;
    expand_one(w, '\\');
    expand_one(w, '`');
    free(w);
    return 0;
}
