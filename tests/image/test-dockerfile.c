/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Dockerfile parser and word expansion: cases taken from Docker's documented
 * semantics (continuations, comments in continuations, the escape directive, JSON vs shell form,
 * ENV forms, ARG scope, expansion operators, heredocs) and error reporting with line numbers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#include "dt/dockerfile.h"
#include "dt/error.h"
#include "dt/xalloc.h"

#include "dt/banned.h"

static struct dt_dockerfile *
parse_ok(const char *text)
{
    struct dt_dockerfile *df = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_parse(text, strlen(text), &df, &err);
    if (r < 0)
        fail_msg("parse failed: %s\n--- input:\n%s", err ? err->message : "?", text);
    assert_null(err);
    assert_non_null(df);
    return df;
}

/* Parse expecting failure with ERRNUM and a message containing WANT. */
static void
parse_fail(const char *text, int errnum, const char *want)
{
    struct dt_dockerfile *df = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_parse(text, strlen(text), &df, &err);
    if (r >= 0)
        fail_msg("parse unexpectedly succeeded:\n%s", text);
    assert_int_equal(r, -errnum);
    assert_null(df);
    assert_non_null(err);
    if (!strstr(err->message, want))
        fail_msg("message '%s' does not contain '%s'", err->message, want);
    dt_error_free(err);
}

/* Variables for expansion tests: "NAME=value" pairs; "NAME" alone is unset. */
static const char *
lookup(const char *name, void *userdata)
{
    const char *const *vars = userdata;
    size_t n = strlen(name);
    for (size_t i = 0; vars && vars[i]; i++)
        if (strncmp(vars[i], name, n) == 0 && vars[i][n] == '=')
            return vars[i] + n + 1;
    return NULL;
}

static const char *const test_vars[] = {"HOME=/home/daytona", "EMPTY=", "V=3.20", "B=bee",
                                        "SP=a b", NULL};

static char *
expand_ok(const char *word, char esc)
{
    char *out = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_expand(word, esc, lookup, (void *) test_vars, &out, &err);
    if (r < 0)
        fail_msg("expand '%s' failed: %s", word, err ? err->message : "?");
    return out;
}

static void
check_expand(const char *word, const char *want)
{
    char *out = expand_ok(word, '\\');
    if (strcmp(out, want) != 0)
        fail_msg("expand '%s' = '%s', want '%s'", word, out, want);
    free(out);
}

static void
check_expand_fail(const char *word, int errnum, const char *want)
{
    char *out = NULL;
    struct dt_error *err = NULL;
    int r = dt_dockerfile_expand(word, '\\', lookup, (void *) test_vars, &out, &err);
    if (r >= 0)
        fail_msg("expand '%s' unexpectedly gave '%s'", word, out);
    assert_int_equal(r, -errnum);
    assert_null(out);
    if (!strstr(err->message, want))
        fail_msg("message '%s' does not contain '%s'", err->message, want);
    dt_error_free(err);
}

static const struct dt_dockerfile_instr *
instr(const struct dt_dockerfile *df, size_t stage, size_t i)
{
    assert_true(stage < df->n_stages);
    assert_true(i < df->stages[stage].n_instrs);
    return &df->stages[stage].instrs[i];
}

static void
test_sdk_output(void **state)
{
    struct dt_dockerfile *df = parse_ok(
            "FROM python:3.12-slim-bookworm\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends build-essential\n"
            "RUN python -m pip install numpy pandas\n"
            "COPY /Users/alice/proj/req.txt /.requirements.txt\n"
            "RUN python -m pip install -r /.requirements.txt\n"
            "ENV A='x y'\n"
            "WORKDIR '/home/daytona'\n"
            "ENTRYPOINT [\"sleep\", \"infinity\"]\n"
            "CMD [\"a\"]\n");
    assert_int_equal(df->n_stages, 1);
    assert_int_equal(df->n_global_args, 0);
    assert_int_equal(df->escape, '\\');
    const struct dt_dockerfile_stage *st = &df->stages[0];
    assert_string_equal(st->base, "python:3.12-slim-bookworm");
    assert_null(st->name);
    assert_null(st->platform);
    assert_int_equal(st->line, 1);
    assert_int_equal(st->n_instrs, 8);

    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_int_equal(in->kind, DT_DF_RUN);
    assert_int_equal(in->line, 2);
    assert_false(in->json);
    assert_string_equal(in->argv[0],
                        "apt-get update && apt-get install -y --no-install-recommends "
                        "build-essential");
    assert_null(in->argv[1]);
    assert_int_equal(in->n_flags, 0);

    in = instr(df, 0, 2);
    assert_int_equal(in->kind, DT_DF_COPY);
    assert_string_equal(in->argv[0], "/Users/alice/proj/req.txt");
    assert_string_equal(in->argv[1], "/.requirements.txt");
    assert_null(in->argv[2]);
    assert_string_equal(in->raw, "COPY /Users/alice/proj/req.txt /.requirements.txt");

    in = instr(df, 0, 4);
    assert_int_equal(in->kind, DT_DF_ENV);
    assert_int_equal(in->n_kv, 1);
    assert_string_equal(in->kv[0].key, "A");
    assert_string_equal(in->kv[0].value, "'x y'");
    char *v = expand_ok(in->kv[0].value, df->escape);
    assert_string_equal(v, "x y");
    free(v);

    in = instr(df, 0, 5);
    assert_int_equal(in->kind, DT_DF_WORKDIR);
    v = expand_ok(in->argv[0], df->escape);
    assert_string_equal(v, "/home/daytona");
    free(v);

    in = instr(df, 0, 6);
    assert_int_equal(in->kind, DT_DF_ENTRYPOINT);
    assert_true(in->json);
    assert_string_equal(in->argv[0], "sleep");
    assert_string_equal(in->argv[1], "infinity");
    assert_null(in->argv[2]);

    in = instr(df, 0, 7);
    assert_int_equal(in->kind, DT_DF_CMD);
    assert_true(in->json);
    assert_string_equal(in->argv[0], "a");
    assert_int_equal(in->line, 9);
    dt_dockerfile_free(df);

    df = parse_ok("FROM alpine:3.20\n");
    assert_string_equal(df->stages[0].base, "alpine:3.20");
    assert_int_equal(df->stages[0].n_instrs, 0);
    dt_dockerfile_free(df);

    /* No final newline, CRLF line ends, a byte order mark, lower case. */
    df = parse_ok("\xef\xbb\xbf" "from alpine\r\nrun echo hi\r\nCmd [\"sh\"]");
    assert_string_equal(df->stages[0].base, "alpine");
    assert_string_equal(instr(df, 0, 0)->argv[0], "echo hi");
    assert_int_equal(instr(df, 0, 1)->kind, DT_DF_CMD);
    assert_true(instr(df, 0, 1)->json);
    dt_dockerfile_free(df);
}

static void
test_continuations(void **state)
{
    struct dt_dockerfile *df = parse_ok("FROM a\n"
                                        "RUN echo a \\\n"
                                        "  b\n"
                                        "RUN x \\ \t\n"          /* whitespace after the escape */
                                        "# a comment inside\n"
                                        "    # indented comment\n"
                                        "\n"
                                        "   \n"
                                        "y\n"
                                        "RUN z\n");
    assert_int_equal(df->stages[0].n_instrs, 3);
    assert_string_equal(instr(df, 0, 0)->argv[0], "echo a   b");
    assert_int_equal(instr(df, 0, 0)->line, 2);
    assert_int_equal(instr(df, 0, 0)->end_line, 3);
    assert_string_equal(instr(df, 0, 1)->argv[0], "x y");
    assert_int_equal(instr(df, 0, 1)->line, 4);
    assert_int_equal(instr(df, 0, 2)->line, 10);
    dt_dockerfile_free(df);

    /* A continuation at the end of the file just ends the instruction. */
    df = parse_ok("FROM a\nRUN a \\");
    assert_string_equal(instr(df, 0, 0)->argv[0], "a");
    dt_dockerfile_free(df);

    /* Leading whitespace and comments between instructions. */
    df = parse_ok("  # comment\n\n   FROM a\n\t  RUN  b  \n  # x\n");
    assert_string_equal(instr(df, 0, 0)->argv[0], "b");
    assert_int_equal(instr(df, 0, 0)->line, 4);
    dt_dockerfile_free(df);
}

static void
test_escape_directive(void **state)
{
    /* Docker's documented Windows example: with the default escape, "c:\" continues the line. */
    struct dt_dockerfile *df = parse_ok("FROM microsoft/nanoserver\n"
                                        "COPY testfile.txt c:\\\n"
                                        "RUN dir c:\\\n");
    assert_int_equal(df->stages[0].n_instrs, 1);
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_int_equal(in->kind, DT_DF_COPY);
    assert_string_equal(in->argv[0], "testfile.txt");
    assert_string_equal(in->argv[1], "c:RUN");
    assert_string_equal(in->argv[2], "dir");
    assert_string_equal(in->argv[3], "c:");
    dt_dockerfile_free(df);

    df = parse_ok("# escape=`\n"
                  "\n"
                  "FROM microsoft/nanoserver\n"
                  "COPY testfile.txt c:\\\n"
                  "RUN dir c:\\\n"
                  "RUN a `\n"
                  "  b\n");
    assert_int_equal(df->escape, '`');
    assert_int_equal(df->stages[0].n_instrs, 3);
    assert_string_equal(instr(df, 0, 0)->argv[1], "c:\\");
    assert_string_equal(instr(df, 0, 1)->argv[0], "dir c:\\");
    assert_string_equal(instr(df, 0, 2)->argv[0], "a   b");
    char *v = expand_ok("c:\\a`$b", df->escape);
    assert_string_equal(v, "c:\\a$b");
    free(v);
    dt_dockerfile_free(df);

    /* Syntax and escape together, spaces allowed, case-insensitive keys. */
    df = parse_ok("# syntax=docker/dockerfile:1\n#  ESCAPE = ` \nFROM a\n");
    assert_int_equal(df->escape, '`');
    assert_string_equal(df->syntax, "docker/dockerfile:1");
    dt_dockerfile_free(df);

    /* A directive after an instruction, a blank line or an unknown directive is a comment. */
    df = parse_ok("FROM a\n# escape=`\nRUN x \\\ny\n");
    assert_int_equal(df->escape, '\\');
    assert_string_equal(instr(df, 0, 0)->argv[0], "x y");
    dt_dockerfile_free(df);
    df = parse_ok("\n# escape=`\nFROM a\n");
    assert_int_equal(df->escape, '\\');
    dt_dockerfile_free(df);
    df = parse_ok("# unknown=1\n# escape=`\nFROM a\n");
    assert_int_equal(df->escape, '\\');
    dt_dockerfile_free(df);

    parse_fail("# escape=`\n# escape=\\\nFROM a\n", EINVAL,
               "Dockerfile line 2: only one escape parser directive");
    parse_fail("# escape=x\nFROM a\n", EINVAL, "Dockerfile line 1: invalid escape token 'x'");
}

static void
test_json_forms(void **state)
{
    struct dt_dockerfile *df = parse_ok("FROM a\n"
                                        "CMD [ \"a\", \n"          /* broken JSON: shell form */
                                        "ENTRYPOINT ['a', 'b']\n"  /* not JSON: shell form */
                                        "RUN [\"echo\",\"x y\",\"\\u00e9\\n\"]\n"
                                        "RUN []\n"
                                        "CMD echo $HOME\n"
                                        "SHELL [\"/bin/bash\", \"-c\"]\n"
                                        "VOLUME [\"/data\", \"/d 2\"]\n"
                                        "VOLUME /a  /b\n"
                                        "COPY [\"a b\", \"/c d/\"]\n");
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_false(in->json);
    assert_string_equal(in->argv[0], "[ \"a\",");
    in = instr(df, 0, 1);
    assert_false(in->json);
    assert_string_equal(in->argv[0], "['a', 'b']");
    in = instr(df, 0, 2);
    assert_true(in->json);
    assert_string_equal(in->argv[1], "x y");
    assert_string_equal(in->argv[2], "\xc3\xa9\n");
    in = instr(df, 0, 3);
    assert_true(in->json);
    assert_null(in->argv[0]);
    in = instr(df, 0, 4);
    assert_false(in->json);
    assert_string_equal(in->argv[0], "echo $HOME");
    in = instr(df, 0, 5);
    assert_int_equal(in->kind, DT_DF_SHELL);
    assert_string_equal(in->argv[0], "/bin/bash");
    in = instr(df, 0, 6);
    assert_true(in->json);
    assert_string_equal(in->argv[1], "/d 2");
    in = instr(df, 0, 7);
    assert_false(in->json);
    assert_string_equal(in->argv[0], "/a");
    assert_string_equal(in->argv[1], "/b");
    in = instr(df, 0, 8);
    assert_true(in->json);
    assert_string_equal(in->argv[0], "a b");
    assert_string_equal(in->argv[1], "/c d/");
    dt_dockerfile_free(df);

    parse_fail("FROM a\nCMD [\"a\", 1]\n", EINVAL,
               "Dockerfile line 2: CMD: when using JSON array syntax, arrays must be comprised "
               "of strings only");
    parse_fail("FROM a\nSHELL bash -c\n", EINVAL,
               "Dockerfile line 2: SHELL requires the arguments to be in JSON form");
    parse_fail("FROM a\nCOPY [\"a\"]\n", EINVAL, "Dockerfile line 2: COPY requires at least two");
    parse_fail("FROM a\nADD a\n", EINVAL, "Dockerfile line 2: ADD requires at least two");
}

static void
test_env_label(void **state)
{
    struct dt_dockerfile *df = parse_ok(
            "FROM a\n"
            "ENV K=V K2=\"v 2\" K3=a\\ b\n"
            "ENV MY_NAME John Doe  Jr\n"
            "LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 multi.line=\"a \\\n"
            "b\"\n"
            "ENV E= F=''\n"
            "MAINTAINER Jane \"J\" $Doe\n");
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_int_equal(in->n_kv, 3);
    assert_string_equal(in->kv[0].key, "K");
    assert_string_equal(in->kv[0].value, "V");
    assert_string_equal(in->kv[1].key, "K2");
    assert_string_equal(in->kv[1].value, "\"v 2\"");
    assert_string_equal(in->kv[2].value, "a\\ b");
    char *v = expand_ok(in->kv[2].value, '\\');
    assert_string_equal(v, "a b");
    free(v);
    assert_non_null(in->argv);
    assert_null(in->argv[0]);

    in = instr(df, 0, 1);
    assert_int_equal(in->n_kv, 1);
    assert_string_equal(in->kv[0].key, "MY_NAME");
    assert_string_equal(in->kv[0].value, "John Doe  Jr");

    in = instr(df, 0, 2);
    assert_int_equal(in->kind, DT_DF_LABEL);
    assert_int_equal(in->n_kv, 3);
    v = expand_ok(in->kv[0].key, '\\');
    assert_string_equal(v, "com.example.vendor");
    free(v);
    v = expand_ok(in->kv[0].value, '\\');
    assert_string_equal(v, "ACME Inc");
    free(v);
    v = expand_ok(in->kv[2].value, '\\');
    assert_string_equal(v, "a b");
    free(v);

    in = instr(df, 0, 3);
    assert_string_equal(in->kv[0].value, "");
    assert_string_equal(in->kv[1].value, "''");

    in = instr(df, 0, 4);
    assert_int_equal(in->kind, DT_DF_LABEL);
    assert_string_equal(in->kv[0].key, "maintainer");
    v = expand_ok(in->kv[0].value, '\\');
    assert_string_equal(v, "Jane \"J\" $Doe");
    free(v);
    dt_dockerfile_free(df);

    parse_fail("FROM a\nENV K\n", EINVAL, "Dockerfile line 2: ENV must have two arguments");
    parse_fail("FROM a\nENV a=1 b\n", EINVAL, "Dockerfile line 2: ENV: syntax error - can't find =");
    parse_fail("FROM a\nLABEL =x\n", EINVAL, "Dockerfile line 2: LABEL names can not be blank");
    parse_fail("FROM a\nENV\n", EINVAL, "Dockerfile line 2: ENV requires at least one argument");
}

static void
test_arg_scope(void **state)
{
    struct dt_dockerfile *df = parse_ok("ARG V=3.20\n"
                                        "ARG BASE\n"
                                        "FROM alpine:${V} AS Build\n"
                                        "ARG V\n"
                                        "ARG X Y=2 Z=\"a b\"\n"
                                        "FROM --platform=linux/amd64 build\n"
                                        "COPY --from=build --chown=1000:1000 --link /a /b\n");
    assert_int_equal(df->n_global_args, 2);
    assert_int_equal(df->global_args[0].kind, DT_DF_ARG);
    assert_string_equal(df->global_args[0].kv[0].key, "V");
    assert_string_equal(df->global_args[0].kv[0].value, "3.20");
    assert_null(df->global_args[1].kv[0].value);
    assert_int_equal(df->n_stages, 2);
    assert_string_equal(df->stages[0].name, "build");
    char *v = expand_ok(df->stages[0].base, '\\');
    assert_string_equal(v, "alpine:3.20");
    free(v);
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_null(in->kv[0].value);
    in = instr(df, 0, 1);
    assert_int_equal(in->n_kv, 3);
    assert_null(in->kv[0].value);
    assert_string_equal(in->kv[1].value, "2");
    assert_string_equal(in->kv[2].value, "\"a b\"");

    assert_string_equal(df->stages[1].platform, "linux/amd64");
    assert_string_equal(df->stages[1].base, "build");
    assert_int_equal(dt_dockerfile_find_stage(df, df->stages[1].base, 1), 0);
    assert_int_equal(dt_dockerfile_find_stage(df, "nope", 2), -1);
    in = instr(df, 1, 0);
    assert_int_equal(in->n_flags, 3);
    assert_string_equal(in->flags[0].name, "from");
    assert_string_equal(in->flags[0].value, "build");
    assert_string_equal(in->flags[1].value, "1000:1000");
    assert_string_equal(in->flags[2].name, "link");
    assert_null(in->flags[2].value);
    assert_string_equal(in->args, "/a /b");
    dt_dockerfile_free(df);

    parse_fail("ARG A\nRUN x\nFROM a\n", EINVAL,
               "Dockerfile line 2: RUN before the first FROM");
    parse_fail("FROM a AS 1x\n", EINVAL, "Dockerfile line 1: invalid name for build stage");
    parse_fail("FROM a AS x\nFROM b AS X\n", EINVAL, "Dockerfile line 2: duplicate stage name");
    parse_fail("FROM a b\n", EINVAL, "FROM requires either one or three arguments");
    parse_fail("ARG\nFROM a\n", EINVAL, "Dockerfile line 1: ARG requires at least one argument");
}

static void
test_flags(void **state)
{
    struct dt_dockerfile *df = parse_ok(
            "FROM a\n"
            "RUN --mount=type=cache,target=/root/.cache pip install x\n"
            "COPY --chmod=755 --link=\"false\" a b\n"
            "HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://x/ || exit 1\n"
            "HEALTHCHECK NONE\n"
            "HEALTHCHECK CMD [\"/bin/check\"]\n"
            "USER daytona\n"
            "STOPSIGNAL SIGKILL\n"
            "EXPOSE 80 80/tcp 53/udp 8000-8010 ${PORT}\n");
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_string_equal(in->flags[0].name, "mount");
    assert_string_equal(in->flags[0].value, "type=cache,target=/root/.cache");
    assert_string_equal(in->argv[0], "pip install x");
    in = instr(df, 0, 1);
    assert_string_equal(in->flags[0].value, "755");
    assert_string_equal(in->flags[1].value, "false");
    in = instr(df, 0, 2);
    assert_int_equal(in->kind, DT_DF_HEALTHCHECK);
    assert_int_equal(in->n_flags, 3);
    assert_false(in->json);
    assert_string_equal(in->argv[0], "curl -f http://x/ || exit 1");
    assert_true(instr(df, 0, 3)->healthcheck_none);
    assert_true(instr(df, 0, 4)->json);
    assert_string_equal(instr(df, 0, 4)->argv[0], "/bin/check");
    assert_string_equal(instr(df, 0, 5)->argv[0], "daytona");
    assert_string_equal(instr(df, 0, 6)->argv[0], "SIGKILL");
    in = instr(df, 0, 7);
    assert_int_equal(strv_length(in->argv), 5);
    assert_string_equal(in->argv[2], "53/udp");
    dt_dockerfile_free(df);

    parse_fail("FROM a\nRUN --network=none x\n", ENOTSUP,
               "Dockerfile line 2: RUN --network is not supported");
    parse_fail("FROM a\nCOPY --bogus=1 a b\n", EINVAL,
               "Dockerfile line 2: unknown flag for COPY: --bogus");
    parse_fail("FROM a\nCOPY --from a b\n", EINVAL, "missing a value on flag --from");
    parse_fail("FROM a\nCOPY --link=maybe a b\n", EINVAL, "expecting boolean value");
    parse_fail("FROM a\nCOPY --from=x --from=y a b\n", EINVAL, "duplicate flag");
    parse_fail("FROM a\nWORKDIR --from=x /a\n", EINVAL, "unknown flag for WORKDIR");
    parse_fail("FROM a\nHEALTHCHECK --interval=5x CMD a\n", EINVAL, "invalid --interval '5x'");
    parse_fail("FROM a\nHEALTHCHECK NONE x\n", EINVAL, "HEALTHCHECK NONE takes no arguments");
    parse_fail("FROM a\nHEALTHCHECK RUN x\n", EINVAL, "unknown type 'RUN' in HEALTHCHECK");
    parse_fail("FROM a\nEXPOSE 80/foo\n", EINVAL, "Dockerfile line 2: invalid EXPOSE port '80/foo'");
    parse_fail("FROM a\nEXPOSE 70000\n", EINVAL, "invalid EXPOSE port");
    parse_fail("FROM a\nWORKDIR\n", EINVAL, "WORKDIR requires exactly one argument");
}

static void
test_heredocs(void **state)
{
    struct dt_dockerfile *df = parse_ok("FROM a\n"
                                        "RUN <<EOF\n"
                                        "echo hi\n"
                                        "  # not a comment here\n"
                                        "echo $HOME \\\n"
                                        "EOF\n"
                                        "RUN <<-'X' cat > /f\n"
                                        "\t\tfoo $a\n"
                                        "\tX\n"
                                        "COPY <<A <<\"B\" /dst/\n"
                                        "a\n"
                                        "A\n"
                                        "b\n"
                                        "B\n"
                                        "RUN echo done\n");
    assert_int_equal(df->stages[0].n_instrs, 4);
    const struct dt_dockerfile_instr *in = instr(df, 0, 0);
    assert_int_equal(in->n_heredocs, 1);
    assert_string_equal(in->heredocs[0].name, "EOF");
    assert_string_equal(in->heredocs[0].content,
                        "echo hi\n  # not a comment here\necho $HOME \\\n");
    assert_true(in->heredocs[0].expand);
    assert_false(in->heredocs[0].chomp);
    assert_int_equal(in->line, 2);
    assert_int_equal(in->end_line, 6);
    in = instr(df, 0, 1);
    assert_string_equal(in->heredocs[0].name, "X");
    assert_string_equal(in->heredocs[0].content, "foo $a\n");
    assert_false(in->heredocs[0].expand);
    assert_true(in->heredocs[0].chomp);
    in = instr(df, 0, 2);
    assert_int_equal(in->kind, DT_DF_COPY);
    assert_int_equal(in->n_heredocs, 2);
    assert_string_equal(in->heredocs[0].content, "a\n");
    assert_true(in->heredocs[0].expand);
    assert_string_equal(in->heredocs[1].content, "b\n");
    assert_false(in->heredocs[1].expand);
    assert_int_equal(instr(df, 0, 3)->line, 15);
    dt_dockerfile_free(df);

    /* Exec form and "<<" inside a word are not heredocs. */
    df = parse_ok("FROM a\nRUN [\"cat\", \"<<EOF\"]\nRUN echo a<<b\n");
    assert_int_equal(instr(df, 0, 0)->n_heredocs, 0);
    assert_int_equal(instr(df, 0, 1)->n_heredocs, 0);
    dt_dockerfile_free(df);

    parse_fail("FROM a\nRUN <<EOF\necho\n", EINVAL, "Dockerfile line 2: unterminated heredoc 'EOF'");
}

static void
test_errors(void **state)
{
    parse_fail("FROM a\n\nRUN x\n# c\n\n\nFOO bar\n", EINVAL,
               "Dockerfile line 7: unknown instruction FOO");
    parse_fail("", EINVAL, "Dockerfile is empty");
    parse_fail("# only a comment\n\n", EINVAL, "no FROM");
    parse_fail("ARG A=1\n", EINVAL, "Dockerfile has no FROM instruction");
    parse_fail("RUN x\nFROM a\n", EINVAL, "Dockerfile line 1: RUN before the first FROM");
    parse_fail("FROM a\nONBUILD RUN x\n", ENOTSUP, "Dockerfile line 2: ONBUILD is not supported");
    parse_fail("FROM a\nRUN\n", EINVAL, "Dockerfile line 2: RUN requires at least one argument");
    parse_fail("FROM a\nRUN \\\n  \\\n", EINVAL, "RUN requires at least one argument");

    const char nul[] = "FROM a\nRUN a\0b\n";
    struct dt_dockerfile *df = NULL;
    struct dt_error *err = NULL;
    assert_int_equal(dt_dockerfile_parse(nul, sizeof(nul) - 1, &df, &err), -EINVAL);
    assert_string_equal(err->message, "Dockerfile line 2: NUL byte");
    dt_error_free(err);
    err = NULL;

    /* Limits. */
    char *big = xmalloc(DT_DOCKERFILE_MAX_SIZE + 2);
    memset(big, '#', DT_DOCKERFILE_MAX_SIZE + 1);
    big[DT_DOCKERFILE_MAX_SIZE + 1] = 0;
    assert_int_equal(dt_dockerfile_parse(big, DT_DOCKERFILE_MAX_SIZE + 1, &df, &err), -E2BIG);
    dt_error_free(err);
    err = NULL;
    free(big);

    char *many = NULL;
    size_t n = 0;
    for (unsigned i = 0; i < DT_DOCKERFILE_MAX_STAGES + 1; i++) {
        char *m = xasprintf("%sFROM a\n", many ? many : "");
        free(many);
        many = m;
    }
    assert_int_equal(dt_dockerfile_parse(many, strlen(many), &df, &err), -E2BIG);
    assert_non_null(strstr(err->message, "Dockerfile line 129: more than 128 build stages"));
    dt_error_free(err);
    err = NULL;
    free(many);

    size_t cap = 16 * (DT_DOCKERFILE_MAX_INSTRS + 10);
    many = xmalloc(cap);
    n = 0;
    n += (size_t) snprintf(many + n, cap - n, "FROM a\n");
    for (unsigned i = 0; i < DT_DOCKERFILE_MAX_INSTRS; i++)
        n += (size_t) snprintf(many + n, cap - n, "RUN x\n");
    assert_int_equal(dt_dockerfile_parse(many, n, &df, &err), -E2BIG);
    assert_non_null(strstr(err->message, "more than 10000 instructions"));
    dt_error_free(err);
    err = NULL;
    /* Exactly at the limit is fine. */
    n -= strlen("RUN x\n");
    assert_int_equal(dt_dockerfile_parse(many, n, &df, &err), 0);
    assert_int_equal(df->stages[0].n_instrs, DT_DOCKERFILE_MAX_INSTRS - 1);
    dt_dockerfile_free(df);
    free(many);
}

static void
test_expand(void **state)
{
    check_expand("$HOME", "/home/daytona");
    check_expand("${HOME}/x", "/home/daytona/x");
    check_expand("a$HOME.b", "a/home/daytona.b");
    check_expand("$NOPE|", "|");
    check_expand("\\$HOME", "$HOME");
    check_expand("'$HOME'", "$HOME");
    check_expand("\"$HOME\"", "/home/daytona");
    check_expand("\"'$HOME'\"", "'/home/daytona'");
    check_expand("'a\\b'", "a\\b");
    check_expand("\"a\\b\\\"c\\$d\\\\\"", "a\\b\"c$d\\");
    check_expand("a\\ b", "a b");
    check_expand("$", "$");
    check_expand("$-x", "x");
    check_expand("$1x", "x");
    check_expand("tail\\", "tail");
    check_expand("${NOPE:-def}", "def");
    check_expand("${EMPTY:-def}", "def");
    check_expand("${EMPTY-def}", "");
    check_expand("${NOPE-def}", "def");
    check_expand("${V:-def}", "3.20");
    check_expand("${V:+alt}", "alt");
    check_expand("${EMPTY:+alt}", "");
    check_expand("${EMPTY+alt}", "alt");
    check_expand("${NOPE+alt}", "");
    check_expand("${NOPE:-${B:-c}}", "bee");
    check_expand("${NOPE:-${NOPE2:-'c }'}}", "c }");
    check_expand("${NOPE:-a b}", "a b");
    check_expand("${V:?must be set}", "3.20");
    check_expand("$SP", "a b");
    check_expand("", "");
    check_expand_fail("${NOPE:?must be set}", EINVAL, "NOPE: must be set");
    check_expand_fail("${NOPE?}", EINVAL, "NOPE: is not allowed to be unset");
    check_expand_fail("${HOME", EINVAL, "missing '}'");
    check_expand_fail("${HOME:-x", EINVAL, "missing '}'");
    check_expand_fail("${HOME%x}", EINVAL, "unsupported modifier (%)");
    check_expand_fail("${}", EINVAL, "bad substitution");
    check_expand_fail("'abc", EINVAL, "single-quote");
    check_expand_fail("\"abc", EINVAL, "double-quote");

    /* NULL lookup: nothing is set. */
    char *out = NULL;
    struct dt_error *err = NULL;
    assert_int_equal(dt_dockerfile_expand("x${A:-y}$B", '\\', NULL, NULL, &out, &err), 0);
    assert_string_equal(out, "xy");
    free(out);

    /* Output bound. */
    char *bigv = xmalloc(1024 * 1024 + 3);
    memcpy(bigv, "X=", 2);
    memset(bigv + 2, 'a', 1024 * 1024);
    bigv[1024 * 1024 + 2] = 0;
    const char *vars[] = {bigv, NULL};
    out = NULL;
    assert_int_equal(dt_dockerfile_expand("$X$X$X$X$X", '\\', lookup, vars, &out, &err), -E2BIG);
    assert_null(out);
    dt_error_free(err);
    err = NULL;
    assert_int_equal(dt_dockerfile_expand("$X$X$X", '\\', lookup, vars, &out, &err), 0);
    assert_int_equal(strlen(out), 3 * 1024 * 1024);
    free(out);
    free(bigv);

    /* Deep nesting is refused rather than recursing without bound. */
    char deep[64 * 8 + 1] = "";
    for (int i = 0; i < 64; i++)
        memcpy(deep + 5 * i, "${A:-", 6);
    assert_int_equal(dt_dockerfile_expand(deep, '\\', NULL, NULL, &out, &err), -EINVAL);
    dt_error_free(err);
}

static void
test_multistage(void **state)
{
    struct dt_dockerfile *df = parse_ok("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
                                        "ARG TARGETOS\n"
                                        "RUN --mount=type=cache,target=/go/pkg \\\n"
                                        "    # download deps\n"
                                        "    go mod download\n"
                                        "COPY --link . .\n"
                                        "FROM scratch\n"
                                        "COPY --from=build /out /\n");
    assert_int_equal(df->n_stages, 2);
    assert_string_equal(df->stages[0].platform, "$BUILDPLATFORM");
    assert_string_equal(df->stages[0].raw,
                        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build");
    const struct dt_dockerfile_instr *in = instr(df, 0, 1);
    assert_string_equal(in->flags[0].value, "type=cache,target=/go/pkg");
    assert_string_equal(in->argv[0], "go mod download");
    assert_int_equal(in->line, 3);
    assert_int_equal(in->end_line, 5);
    assert_int_equal(instr(df, 0, 2)->line, 6);
    assert_int_equal(df->stages[1].line, 7);
    assert_string_equal(instr(df, 1, 0)->flags[0].value, "build");
    assert_int_equal(dt_dockerfile_find_stage(df, "BUILD", 1), 0);
    assert_string_equal(dt_dockerfile_kind_name(instr(df, 1, 0)->kind), "COPY");
    dt_dockerfile_free(df);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sdk_output),   cmocka_unit_test(test_continuations),
            cmocka_unit_test(test_escape_directive), cmocka_unit_test(test_json_forms),
            cmocka_unit_test(test_env_label),    cmocka_unit_test(test_arg_scope),
            cmocka_unit_test(test_flags),        cmocka_unit_test(test_heredocs),
            cmocka_unit_test(test_errors),       cmocka_unit_test(test_expand),
            cmocka_unit_test(test_multistage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
