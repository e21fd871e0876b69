/* SPDX-License-Identifier: Apache-2.0 */
/* The S3 request parsers (src/server/s3-parse.c) and registry URL normalisation on valid input
 * as the AWS SDK sends it and on hostile input: repeated and missing fields, huge values,
 * embedded NULs, parts out of order, entity-encoded ETags. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dt/store.h"
#include "dt/xalloc.h"
#include "server/s3-parse.h"

#define SIG "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SH "amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;" \
           "x-amz-security-token;x-amz-user-agent"
#define CRED "DTNorg-1/20261124/us-east-1/s3/aws4_request"
#define MD5A "9e107d9d372bb6826bd81d3542a419d6"
#define MD5B "e4d909c290d0fb1ca068ffaddf22cbd0"

static int
auth(const char *value, struct dt_s3_auth *a)
{
    struct dt_error *err = NULL;
    int r = dt_s3_parse_authorization(value, a, &err);

    assert_true((r == 0) == (err == NULL));
    if (err)
        assert_non_null(err->message);
    dt_error_free(err);
    return r;
}

static void
test_authorization_valid(void **state)
{
    struct dt_s3_auth a;

    assert_int_equal(auth("AWS4-HMAC-SHA256 Credential=" CRED ", SignedHeaders=" SH
                          ", Signature=" SIG, &a), 0);
    assert_string_equal(a.access_key, "DTNorg-1");
    assert_string_equal(a.org, "org-1");
    assert_string_equal(a.date, "20261124");
    assert_string_equal(a.region, "us-east-1");
    assert_string_equal(a.signed_headers, SH);
    assert_string_equal(a.signature, SIG);
    dt_s3_auth_done(&a);
    assert_null(a.signed_headers);

    /* No spaces after the commas, fields in another order, unknown fields ignored. */
    assert_int_equal(auth("AWS4-HMAC-SHA256 Signature=" SIG ",Foo=bar,SignedHeaders=host,"
                          "Credential=" CRED, &a), 0);
    assert_string_equal(a.signed_headers, "host");
    dt_s3_auth_done(&a);

    /* A repeated field: the first one counts. */
    assert_int_equal(auth("AWS4-HMAC-SHA256 Credential=" CRED ", Credential=DTNevil/20261124/"
                          "us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" SIG, &a), 0);
    assert_string_equal(a.org, "org-1");
    dt_s3_auth_done(&a);

    /* A signature of the wrong length parses (it is checked later) but can never match. */
    assert_int_equal(auth("AWS4-HMAC-SHA256 Credential=" CRED ", SignedHeaders=host, "
                          "Signature=abc", &a), 0);
    assert_string_equal(a.signature, "");
    dt_s3_auth_done(&a);
}

static void
test_authorization_hostile(void **state)
{
    static const char *const malformed[] = {
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=" CRED ", Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=" CRED ", SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=DTNorg/20261124/us-east-1/s3, SignedHeaders=host, "
        "Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNorg/20261124/us-east-1/s3/aws4_request/x, "
        "SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNorg/20261124/us-east-1/sts/aws4_request, "
        "SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNorg/2026112/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNorg/20261124//s3/aws4_request, SignedHeaders=host, "
        "Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNorg/20261124/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/s3/"
        "aws4_request, SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential, SignedHeaders, Signature",
        "AWS4-HMAC-SHA256 ,,,,   ,,",
    };
    static const char *const foreign[] = {
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261124/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTN/20261124/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" SIG,
        "AWS4-HMAC-SHA256 Credential=DTNa.b/20261124/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" SIG,
    };
    struct dt_s3_auth a;
    char *huge;

    assert_int_equal(auth(NULL, &a), -EPROTONOSUPPORT);
    assert_int_equal(auth("", &a), -EPROTONOSUPPORT);
    assert_int_equal(auth("Bearer abc", &a), -EPROTONOSUPPORT);
    assert_int_equal(auth("AWS4-HMAC-SHA1 Credential=" CRED, &a), -EPROTONOSUPPORT);
    for (size_t i = 0; i < ELEMENTSOF(malformed); i++) {
        assert_int_equal(auth(malformed[i], &a), -EINVAL);
        assert_null(a.signed_headers);
    }
    for (size_t i = 0; i < ELEMENTSOF(foreign); i++)
        assert_int_equal(auth(foreign[i], &a), -EACCES);

    /* An access key with an organization id longer than 64 bytes. */
    huge = xasprintf("AWS4-HMAC-SHA256 Credential=DTN%0100d/20261124/us-east-1/s3/aws4_request, "
                     "SignedHeaders=host, Signature=" SIG, 0);
    assert_int_equal(auth(huge, &a), -EACCES);
    free(huge);

    /* Longer than 4 KiB in all. */
    huge = xmalloc(8192);
    memset(huge, 'a', 8191);
    huge[8191] = '\0';
    memcpy(huge, "AWS4-HMAC-SHA256 Credential=", 28);
    assert_int_equal(auth(huge, &a), -EPROTONOSUPPORT);
    free(huge);
}

static void
test_signed_headers(void **state)
{
    struct dt_error *err = NULL;

    assert_int_equal(dt_s3_check_signed_headers(SH, true, NULL), 0);
    assert_int_equal(dt_s3_check_signed_headers("host;x-amz-content-sha256;x-amz-date", false,
                                                NULL), 0);
    assert_int_equal(dt_s3_check_signed_headers("host;x-amz-content-sha256;x-amz-date", true,
                                                NULL), -EACCES);
    assert_int_equal(dt_s3_check_signed_headers("host;x-amz-date", false, NULL), -EACCES);
    assert_int_equal(dt_s3_check_signed_headers("", false, NULL), -EACCES);
    /* Substrings do not count: "xhost" is not "host". */
    assert_int_equal(dt_s3_check_signed_headers("xhost;x-amz-content-sha256;x-amz-date", false,
                                                NULL), -EACCES);
    assert_int_equal(dt_s3_check_signed_headers("Host;host;x-amz-content-sha256;x-amz-date",
                                                false, &err), -EINVAL);
    assert_non_null(err);
    dt_error_free(err);
}

static void
test_amz_date(void **state)
{
    time_t t = 0;

    assert_int_equal(dt_s3_parse_amz_date("20261124T061953Z", &t), 0);
    assert_int_equal((long long) t, 1795501193LL);
    assert_int_equal(dt_s3_parse_amz_date("19700101T000000Z", &t), 0);
    assert_int_equal((long long) t, 0);
    assert_int_equal(dt_s3_parse_amz_date("20240229T235960Z", &t), 0);

    assert_int_equal(dt_s3_parse_amz_date(NULL, &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("2026-11-24T06:19:53Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261124T061953", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261124T061953ZZ", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261324T061953Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261100T061953Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261124T241953Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("20261124T066053Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("2026112 T061953Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("+0261124T061953Z", &t), -EINVAL);
    assert_int_equal(dt_s3_parse_amz_date("19691231T235959Z", &t), -EINVAL);
}

static void
test_keys(void **state)
{
    char *long_key = xmalloc(DT_S3_MAX_KEY + 2), *long_comp = xmalloc(300);

    assert_true(dt_s3_key_valid("org/abc/context.tar"));
    assert_true(dt_s3_key_valid("org/a b/ü.tar"));
    assert_true(dt_s3_key_valid("org/...")); /* only "." and ".." are special */
    assert_false(dt_s3_key_valid(""));
    assert_false(dt_s3_key_valid(NULL));
    assert_false(dt_s3_key_valid("/org/a"));
    assert_false(dt_s3_key_valid("org//a"));
    assert_false(dt_s3_key_valid("org/a/"));
    assert_false(dt_s3_key_valid("org/./a"));
    assert_false(dt_s3_key_valid("org/../a"));
    assert_false(dt_s3_key_valid("org/.."));
    assert_false(dt_s3_key_valid("org/a\nb"));
    assert_false(dt_s3_key_valid("org/a\x7f"));

    memset(long_comp, 'x', 299);
    long_comp[255] = '\0';
    assert_true(dt_s3_key_valid(long_comp));
    long_comp[255] = 'x';
    long_comp[256] = '\0';
    assert_false(dt_s3_key_valid(long_comp));
    for (size_t i = 0; i < DT_S3_MAX_KEY + 1; i++)
        long_key[i] = i % 100 == 99 ? '/' : 'k';
    long_key[DT_S3_MAX_KEY] = '\0';
    assert_true(dt_s3_key_valid(long_key));
    long_key[DT_S3_MAX_KEY] = 'k';
    long_key[DT_S3_MAX_KEY + 1] = '\0';
    assert_false(dt_s3_key_valid(long_key));

    assert_true(dt_s3_prefix_valid(""));
    assert_true(dt_s3_prefix_valid("org/"));
    assert_true(dt_s3_prefix_valid("org/ab"));
    assert_false(dt_s3_prefix_valid("org/.."));
    assert_false(dt_s3_prefix_valid("org/."));
    assert_false(dt_s3_prefix_valid("org/../"));
    assert_false(dt_s3_prefix_valid("org//"));
    assert_false(dt_s3_prefix_valid("/org"));
    free(long_key);
    free(long_comp);
}

static int
key(const char *raw, char **out)
{
    struct dt_error *err = NULL;
    int r;

    *out = NULL;
    r = dt_s3_parse_key(raw, out, &err);
    assert_true((r == 0) == (err == NULL));
    dt_error_free(err);
    return r;
}

static void
test_parse_key(void **state)
{
    char *k, *huge;

    assert_int_equal(key("org/a%20b/c.tar", &k), 0);
    assert_string_equal(k, "org/a b/c.tar");
    free(k);
    assert_int_equal(key("org/a+b", &k), 0);
    assert_string_equal(k, "org/a+b"); /* '+' is not a space in paths */
    free(k);
    assert_int_equal(key("org/a%00b", &k), -EINVAL);
    assert_null(k);
    assert_int_equal(key("org/%2e%2e/x", &k), -EINVAL);
    assert_int_equal(key("org/%2", &k), -EINVAL);
    assert_int_equal(key("org/%zz", &k), -EINVAL);
    assert_int_equal(key("org/a%0Ab", &k), -EINVAL);
    assert_int_equal(key("org%2F%2Fa", &k), -EINVAL);

    /* 1025 decoded bytes, and far too many raw ones. */
    huge = xmalloc(4 * DT_S3_MAX_KEY);
    memset(huge, 'a', DT_S3_MAX_KEY + 1);
    huge[DT_S3_MAX_KEY + 1] = '\0';
    assert_int_equal(key(huge, &k), -ENAMETOOLONG);
    memset(huge, 'a', 4 * DT_S3_MAX_KEY - 1);
    huge[4 * DT_S3_MAX_KEY - 1] = '\0';
    assert_int_equal(key(huge, &k), -ENAMETOOLONG);
    free(huge);
}

static void
test_part_number_and_org(void **state)
{
    uint32_t n = 0;

    assert_int_equal(dt_s3_parse_part_number("1", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dt_s3_parse_part_number("10000", &n), 0);
    assert_int_equal(n, 10000);
    assert_int_equal(dt_s3_parse_part_number("0", &n), -EINVAL);
    assert_int_equal(dt_s3_parse_part_number("10001", &n), -EINVAL);
    assert_int_equal(dt_s3_parse_part_number("-1", &n), -EINVAL);
    assert_int_equal(dt_s3_parse_part_number("", &n), -EINVAL);
    assert_int_equal(dt_s3_parse_part_number(NULL, &n), -EINVAL);
    assert_int_equal(dt_s3_parse_part_number("99999999999999999999999", &n), -EINVAL);

    assert_true(dt_s3_org_valid("a1_b-C"));
    assert_false(dt_s3_org_valid(""));
    assert_false(dt_s3_org_valid("a/b"));
    assert_false(dt_s3_org_valid("a.b"));
#define ORG64 "0123456789012345678901234567890123456789012345678901234567890123"
    assert_true(dt_s3_org_valid(ORG64));
    assert_false(dt_s3_org_valid(ORG64 "4"));
}

static void
expect_query(const char *in, const char *want)
{
    char *out = NULL;

    assert_int_equal(dt_s3_canonical_query(in, &out, NULL), 0);
    assert_string_equal(out, want);
    free(out);
}

static void
test_canonical_query(void **state)
{
    char *out = NULL, *many;
    size_t o = 0;

    expect_query(NULL, "");
    expect_query("", "");
    expect_query("uploads", "uploads=");
    expect_query("uploadId=abc&partNumber=2", "partNumber=2&uploadId=abc");
    expect_query("list-type=2&prefix=org%2Fa%20b&max-keys=5",
                 "list-type=2&max-keys=5&prefix=org%2Fa%20b");
    /* Repeated names sort by value; empty pieces vanish; '+' stays literal. */
    expect_query("a=2&&a=1&", "a=1&a=2");
    expect_query("k=a+b", "k=a%2Bb");
    expect_query("k=%7e", "k=~");
    assert_int_equal(dt_s3_canonical_query("a=%zz", &out, NULL), -EINVAL);
    assert_int_equal(dt_s3_canonical_query("%4=1", &out, NULL), -EINVAL);
    assert_null(out);

    many = xmalloc(65 * 4 + 1);
    for (int i = 0; i < 65; i++)
        o += (size_t) snprintf(many + o, 65 * 4 + 1 - o, "%c%c=&", 'a' + i / 26, 'a' + i % 26);
    assert_int_equal(dt_s3_canonical_query(many, &out, NULL), -EINVAL);
    many[64 * 4] = '\0';
    assert_int_equal(dt_s3_canonical_query(many, &out, NULL), 0);
    free(out);
    free(many);
}

static int
complete(const char *xml, size_t len, struct dt_s3_part **parts, size_t *n)
{
    struct dt_error *err = NULL;
    int r;

    *parts = NULL;
    *n = 0;
    r = dt_s3_parse_complete(xml, len, parts, n, &err);
    assert_true((r == 0) == (err == NULL));
    dt_error_free(err);
    return r;
}

#define COMPLETE(body) "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload " \
                       "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" body \
                       "</CompleteMultipartUpload>"

static void
test_complete_valid(void **state)
{
    static const char sdk[] = COMPLETE(
        "<Part><ETag>\"" MD5A "\"</ETag><PartNumber>1</PartNumber></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>&quot;" MD5B "&quot;</ETag></Part>"
        "<Part><ETag>&#34;9E107D9D372BB6826BD81D3542A419D6&#34;</ETag>"
        "<PartNumber>7</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
        "<Part><PartNumber>8</PartNumber><ETag>\n  " MD5A "\t</ETag></Part>");
    struct dt_s3_part *p;
    size_t n;

    assert_int_equal(complete(sdk, strlen(sdk), &p, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(p[0].number, 1);
    assert_string_equal(p[0].etag, MD5A);
    assert_int_equal(p[1].number, 2);
    assert_string_equal(p[1].etag, MD5B);
    assert_int_equal(p[2].number, 7);
    assert_string_equal(p[2].etag, MD5A);
    assert_int_equal(p[3].number, 8);
    assert_string_equal(p[3].etag, MD5A);
    free(p);
}

static void
test_complete_hostile(void **state)
{
    static const struct {
        const char *xml;
        int want;
    } cases[] = {
        { "", -EINVAL },
        { "<Part><PartNumber>1</PartNumber><ETag>" MD5A "</ETag></Part>", -EINVAL },
        { COMPLETE(""), -EINVAL },
        { COMPLETE("<Part><ETag>" MD5A "</ETag></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber>1</PartNumber></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber>0</PartNumber><ETag>" MD5A "</ETag></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber>10001</PartNumber><ETag>" MD5A "</ETag></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber> 1</PartNumber><ETag>" MD5A "</ETag></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber>99999999999999999999</PartNumber><ETag>" MD5A
                   "</ETag></Part>"), -EINVAL },
        { COMPLETE("<Part><PartNumber>1</PartNumber><ETag>" MD5A "</ETag>"), -EINVAL },
        /* Out of order, and duplicates. */
        { COMPLETE("<Part><PartNumber>2</PartNumber><ETag>" MD5A "</ETag></Part>"
                   "<Part><PartNumber>1</PartNumber><ETag>" MD5A "</ETag></Part>"), -ERANGE },
        { COMPLETE("<Part><PartNumber>3</PartNumber><ETag>" MD5A "</ETag></Part>"
                   "<Part><PartNumber>3</PartNumber><ETag>" MD5B "</ETag></Part>"), -ERANGE },
    };
    struct dt_s3_part *p;
    size_t n;

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        assert_int_equal(complete(cases[i].xml, strlen(cases[i].xml), &p, &n), cases[i].want);
        assert_null(p);
    }

    /* ETags that normalise to anything but 32 hex digits parse, but match nothing. */
    {
        static const char odd[] = COMPLETE(
            "<Part><PartNumber>1</PartNumber><ETag>\"" MD5A "-2\"</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>" MD5A MD5A "</ETag></Part>"
            "<Part><PartNumber>3</PartNumber><ETag>&amp;quot;" MD5A "</ETag></Part>"
            "<Part><PartNumber>4</PartNumber><ETag></ETag></Part>"
            "<Part><PartNumber>5</PartNumber><ETag>9e107d9d372bb6826bd81d3542a419dg</ETag></Part>");
        assert_int_equal(complete(odd, strlen(odd), &p, &n), 0);
        assert_int_equal(n, 5);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(p[i].etag, "");
        free(p);
    }

    /* A NUL inside a part: the number is refused, the ETag cannot match; length counts, not
     * the terminator. */
    {
        static const char nul[] = COMPLETE("<Part><PartNumber>1\0</PartNumber><ETag>" MD5A
                                           "</ETag></Part>");
        static const char nul2[] = COMPLETE("<Part><PartNumber>1</PartNumber><ETag>9e107d9d\0"
                                            "72bb6826bd81d3542a419d6</ETag></Part>");
        assert_int_equal(complete(nul, sizeof(nul) - 1, &p, &n), -EINVAL);
        assert_int_equal(complete(nul2, sizeof(nul2) - 1, &p, &n), 0);
        assert_string_equal(p[0].etag, "");
        free(p);
    }

    /* 10,000 parts is the most; a huge ascending list stops being accepted past that because
     * numbers run out, and a huge ETag value is handled. */
    {
        size_t cap = 10001 * 96 + 256, o = 0;
        char *big = xmalloc(cap);
        o += (size_t) snprintf(big + o, cap - o, "<CompleteMultipartUpload>");
        for (int i = 1; i <= 10000; i++)
            o += (size_t) snprintf(big + o, cap - o,
                                   "<Part><PartNumber>%d</PartNumber><ETag>" MD5B "</ETag></Part>",
                                   i);
        assert_int_equal(complete(big, o, &p, &n), 0);
        assert_int_equal(n, 10000);
        assert_int_equal(p[9999].number, 10000);
        assert_string_equal(p[9999].etag, MD5B);
        free(p);
        o += (size_t) snprintf(big + o, cap - o,
                               "<Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part>");
        assert_int_equal(complete(big, o, &p, &n), -EINVAL);
        free(big);

        big = xmalloc(1 << 20);
        memset(big, 'a', 1 << 20);
        {
            static const char head[] = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                                       "<ETag>";
            memcpy(big, head, sizeof(head) - 1);
        }
        memcpy(big + (1 << 20) - 20, "</ETag></Part>", 14);
        assert_int_equal(complete(big, (1 << 20) - 6, &p, &n), 0);
        assert_string_equal(p[0].etag, "");
        free(p);
        free(big);
    }
}

static void
test_uri_encode(void **state)
{
    char *e = dt_s3_uri_encode("a b/c~d_e-f.g\xff%", 15, false);
    assert_string_equal(e, "a%20b%2Fc~d_e-f.g%FF%25");
    free(e);
    e = dt_s3_uri_encode("org/a b", 7, true);
    assert_string_equal(e, "org/a%20b");
    free(e);
}

static void
test_registry_url(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        { "docker.io", "docker.io" },
        { "https://GHCR.io/", "ghcr.io" },
        { "http://localhost:5000", "localhost:5000" },
        { "[::1]:5000", "[::1]:5000" },
    };
    static const char *const bad[] = {
        "", "https://", "ghcr.io/path", "ghcr.io:0", "ghcr.io:65536", "ghcr.io:", "-a.io",
        "a..b", "a.io.", "user@a.io", "[::1", "[]", "a.io:123456", "a.io//", "ftp://a.io",
    };
    char *out, *huge;

    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        assert_int_equal(dt_store_registry_normalize_url(ok[i].in, &out, NULL), 0);
        assert_string_equal(out, ok[i].out);
        free(out);
    }
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        struct dt_error *err = NULL;
        assert_int_equal(dt_store_registry_normalize_url(bad[i], &out, &err), -EINVAL);
        assert_non_null(err);
        dt_error_free(err);
    }
    assert_int_equal(dt_store_registry_normalize_url(NULL, &out, NULL), -EINVAL);
    huge = xmalloc(300);
    memset(huge, 'a', 299);
    huge[299] = '\0';
    assert_int_equal(dt_store_registry_normalize_url(huge, &out, NULL), -EINVAL);
    free(huge);

    assert_true(dt_store_registry_host_matches("docker.io", "Registry-1.Docker.io"));
    assert_true(dt_store_registry_host_matches("ghcr.io", "GHCR.io"));
    assert_false(dt_store_registry_host_matches("ghcr.io", "docker.io"));
    assert_false(dt_store_registry_host_matches(NULL, "docker.io"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authorization_valid),
        cmocka_unit_test(test_authorization_hostile),
        cmocka_unit_test(test_signed_headers),
        cmocka_unit_test(test_amz_date),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_parse_key),
        cmocka_unit_test(test_part_number_and_org),
        cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_complete_valid),
        cmocka_unit_test(test_complete_hostile),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_registry_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
