/* SPDX-License-Identifier: Apache-2.0 */
/* Streaming multipart/form-data parser and part-header encoder. Part data is handed out straight
 * from the caller's buffer; the only bytes held back are a possible delimiter prefix, which is
 * always a prefix of the constant "\r\n--B" and so needs no copy. See include/dt/multipart.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "dt/http.h"
#include "dt/macros.h"
#include "dt/multipart.h"
#include "dt/ws.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define DEFAULT_MAX_PARTS        10000
#define DEFAULT_MAX_HEADER_LINES 32
/* Transport padding (RFC 2046 section 5.1.1: LWSP after a boundary) we skip before CRLF. */
#define MAX_PADDING              256

/* ---- Boundary syntax ---- */

static bool
is_bchar(unsigned char c)
{
    /* RFC 2046 section 5.1.1 bcharsnospace plus space. */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}

static bool
boundary_valid(const char *b, size_t n)
{
    if (n < 1 || n > DT_MULTIPART_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_bchar((unsigned char) b[i]))
            return false;
    return true;
}

bool
dt_multipart_boundary_valid(const char *b)
{
    return b && boundary_valid(b, strlen(b));
}

static bool
is_tchar(unsigned char c)
{
    /* RFC 7230 section 3.2.6 token characters. */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static const char *
skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Parse a parameter value at *S: a quoted-string (quoted-pairs unescaped) or a run of bytes up
 * to ';', whitespace or the end. Writes the value NUL-terminated to OUT (room for strlen(*S) + 1)
 * and advances *S. Returns the length, or -EINVAL. */
static int
param_value(const char **s, char *out)
{
    const char *p = *s;
    size_t n = 0;

    if (*p == '"') {
        for (p++;; p++) {
            unsigned char c = (unsigned char) *p;

            /* node's form-data writes filename="<basename>" without escaping, so a name with
             * a '"' in it arrives as filename="say "hi".txt". A quote that is not followed by
             * the end of the parameter is taken as part of the value: such input would be an
             * error otherwise, and a well-formed value never has one. */
            if (c == '"') {
                const char *after = skip_ows(p + 1);
                if (*after == '\0' || *after == ';')
                    break;
            }
            if (c == '\\') {
                p++;
                c = (unsigned char) *p;
            }
            /* No control characters other than HT (RFC 7230 qdtext / quoted-pair). */
            if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
                return -EINVAL;
            out[n++] = (char) c;
        }
        p++;
    } else {
        while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t') {
            unsigned char c = (unsigned char) *p;
            if (c < 0x20 || c == 0x7f || c == '"')
                return -EINVAL;
            out[n++] = *p++;
        }
        if (n == 0)
            return -EINVAL;
    }
    out[n] = '\0';
    *s = p;
    return (int) n;
}

/* Parse the parameter list after a media or disposition type: calls FN for each
 * (name, name_len, value). Returns 0 or -EINVAL (or FN's negative value). SCRATCH has room for
 * strlen(S) + 1 bytes. */
typedef int (*param_fn)(const char *name, size_t name_len, const char *value, size_t value_len,
                        void *userdata);

static int
parse_params(const char *s, char *scratch, param_fn fn, void *userdata)
{
    for (;;) {
        const char *name;
        size_t name_len;
        int n, r;

        s = skip_ows(s);
        if (*s == '\0')
            return 0;
        if (*s != ';')
            return -EINVAL;
        s = skip_ows(s + 1);
        if (*s == '\0')
            return 0; /* a trailing ';' is harmless */
        name = s;
        while (is_tchar((unsigned char) *s))
            s++;
        name_len = (size_t) (s - name);
        if (name_len == 0)
            return -EINVAL;
        s = skip_ows(s);
        if (*s != '=')
            return -EINVAL;
        s = skip_ows(s + 1);
        n = param_value(&s, scratch);
        if (n < 0)
            return n;
        r = fn(name, name_len, scratch, (size_t) n, userdata);
        if (r < 0)
            return r;
    }
}

static bool
name_eq(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

struct boundary_ctx {
    char *out;
    size_t size;
    int len; /* -1 until found */
    int error;
};

static int
boundary_param(const char *name, size_t name_len, const char *value, size_t value_len,
               void *userdata)
{
    struct boundary_ctx *c = userdata;

    if (!name_eq(name, name_len, "boundary"))
        return 0;
    if (c->len >= 0 || !boundary_valid(value, value_len))
        return -EINVAL;
    if (value_len + 1 > c->size)
        c->error = -ENOBUFS;
    else
        memcpy(c->out, value, value_len + 1);
    c->len = (int) value_len;
    return 0;
}

int
dt_multipart_boundary(const char *content_type, char *out, size_t size)
{
    static const char type[] = "multipart/form-data";
    struct boundary_ctx c = { .out = out, .size = size, .len = -1 };
    const char *s;
    int r;

    if (!content_type)
        return -EINVAL;
    /* Bound the work and the scratch buffer: a real Content-Type is a few dozen bytes. */
    size_t len = strnlen(content_type, 1025);
    if (len > 1024)
        return -EINVAL;
    s = skip_ows(content_type);
    if (strncasecmp(s, type, strlen(type)) != 0)
        return -EINVAL;
    s += strlen(type);
    if (*s != '\0' && *s != ';' && *s != ' ' && *s != '\t')
        return -EINVAL;

    char scratch[1025];
    r = parse_params(s, scratch, boundary_param, &c);
    if (r < 0 || c.len < 0)
        return -EINVAL;
    if (c.error < 0)
        return c.error;
    return c.len;
}

/* ---- Parser ---- */

enum state {
    ST_DATA,        /* preamble or part body, looking for "\r\n--B" */
    ST_DELIM_TAIL,  /* after "\r\n--B": "--", padding or CRLF */
    ST_CLOSE_DASH,  /* after "\r\n--B-" */
    ST_PADDING,     /* transport padding after the boundary */
    ST_DELIM_LF,    /* CR seen after the boundary */
    ST_HEADERS,     /* collecting a part's header block */
    ST_EPILOGUE,    /* after the closing delimiter: everything ignored */
};

struct dt_multipart_parser {
    struct dt_multipart_limits limits;
    struct dt_multipart_callbacks cbs;
    void *userdata;

    char delim[4 + DT_MULTIPART_BOUNDARY_MAX + 1]; /* "\r\n--B" */
    size_t dlen;
    size_t match;     /* bytes of delim matched and held back */
    enum state state;
    bool in_part;     /* the data being scanned belongs to a part (not the preamble) */
    size_t padding;
    size_t n_parts;

    char *hdr;        /* the current header block, max_header_size bytes */
    size_t hdr_len, hdr_lines;
    char *strs;       /* NUL-terminated copies for struct dt_multipart_part */
    size_t strs_cap, strs_len;
    struct dt_multipart_header *headers;

    int error;        /* sticky -errno */
    const char *errmsg;
};

static int
fail(struct dt_multipart_parser *p, int r, const char *msg)
{
    p->error = r;
    p->errmsg = msg;
    return r;
}

int
dt_multipart_parser_new(const char *boundary, const struct dt_multipart_limits *limits,
                        const struct dt_multipart_callbacks *cbs, void *userdata,
                        struct dt_multipart_parser **ret)
{
    struct dt_multipart_parser *p;
    size_t blen;

    if (!dt_multipart_boundary_valid(boundary))
        return -EINVAL;
    blen = strlen(boundary);

    p = xcalloc(1, sizeof(*p));
    if (limits)
        p->limits = *limits;
    if (p->limits.max_parts == 0)
        p->limits.max_parts = DEFAULT_MAX_PARTS;
    if (p->limits.max_header_size == 0 || p->limits.max_header_size > DT_MULTIPART_MAX_HEADER_SIZE)
        p->limits.max_header_size = DT_MULTIPART_MAX_HEADER_SIZE;
    if (p->limits.max_header_lines == 0)
        p->limits.max_header_lines = DEFAULT_MAX_HEADER_LINES;
    /* A line holds at least "x:" CRLF, so more lines than that cannot fit anyway. */
    if (p->limits.max_header_lines > p->limits.max_header_size / 4)
        p->limits.max_header_lines = p->limits.max_header_size / 4 + 1;
    if (cbs)
        p->cbs = *cbs;
    p->userdata = userdata;

    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, blen + 1);
    p->dlen = 4 + blen;
    /* Pretend the body starts with CRLF: then a first boundary at offset 0 (no preamble) is
     * matched like every other delimiter. */
    p->match = 2;
    p->state = ST_DATA;

    p->hdr = xmalloc(p->limits.max_header_size);
    /* Header copies take at most the block's size (each line loses ':' and CRLF, gains two
     * NULs); name and filename decode to at most the Content-Disposition value's size. */
    p->strs_cap = 2 * p->limits.max_header_size + 16;
    p->strs = xmalloc(p->strs_cap);
    p->headers = xreallocarray(NULL, p->limits.max_header_lines, sizeof(*p->headers));
    *ret = p;
    return 0;
}

void
dt_multipart_parser_free(struct dt_multipart_parser *p)
{
    if (!p)
        return;
    free(p->hdr);
    free(p->strs);
    free(p->headers);
    free(p);
}

static int
cb_result(struct dt_multipart_parser *p, int r)
{
    if (r < 0)
        return fail(p, r, "stopped by callback");
    return 0;
}

static int
emit_data(struct dt_multipart_parser *p, const char *d, size_t n)
{
    /* Preamble bytes are dropped (RFC 2046: "to be ignored"). */
    if (n == 0 || !p->in_part || !p->cbs.on_part_data)
        return 0;
    return cb_result(p, p->cbs.on_part_data(d, n, p->userdata));
}

static char *
strs_add(struct dt_multipart_parser *p, const char *s, size_t n)
{
    char *r = p->strs + p->strs_len;

    DT_ASSERT(p->strs_len + n + 1 <= p->strs_cap);
    memcpy(r, s, n);
    r[n] = '\0';
    p->strs_len += n + 1;
    return r;
}

struct disp_ctx {
    struct dt_multipart_parser *p;
    const char *name, *filename, *filename_ext;
    bool have_ext;
};

/* RFC 5987 ext-value: charset "'" [language] "'" value-chars. Only UTF-8 is decoded; another
 * charset leaves the plain filename in charge (curl and form-data never send one). */
static int
decode_ext_value(struct disp_ctx *c, const char *v, size_t n)
{
    const char *q1 = memchr(v, '\'', n), *q2;
    size_t rest, out_len;
    char *out;

    if (!q1)
        return -EINVAL;
    q2 = memchr(q1 + 1, '\'', n - (size_t) (q1 + 1 - v));
    if (!q2)
        return -EINVAL;
    if (!name_eq(v, (size_t) (q1 - v), "UTF-8"))
        return 0;
    rest = n - (size_t) (q2 + 1 - v);
    out = c->p->strs + c->p->strs_len;
    DT_ASSERT(c->p->strs_len + rest + 1 <= c->p->strs_cap);
    if (dt_http_percent_decode(q2 + 1, rest, out, &out_len, false) < 0)
        return -EINVAL;
    if (!dt_ws_utf8_valid((const uint8_t *) out, out_len))
        return -EINVAL;
    c->p->strs_len += out_len + 1;
    c->filename_ext = out;
    return 0;
}

static int
disp_param(const char *name, size_t name_len, const char *value, size_t value_len, void *userdata)
{
    struct disp_ctx *c = userdata;

    if (name_eq(name, name_len, "name")) {
        if (c->name)
            return -EINVAL;
        c->name = strs_add(c->p, value, value_len);
    } else if (name_eq(name, name_len, "filename")) {
        if (c->filename)
            return -EINVAL;
        c->filename = strs_add(c->p, value, value_len);
    } else if (name_eq(name, name_len, "filename*")) {
        if (c->have_ext)
            return -EINVAL;
        c->have_ext = true;
        return decode_ext_value(c, value, value_len);
    }
    return 0;
}

/* The header block hdr[0..hdr_len) is complete (ends with an empty line): split it into
 * headers, read Content-Disposition and Content-Type, and start the part. */
static int
begin_part(struct dt_multipart_parser *p)
{
    struct dt_multipart_part part = {
        .index = p->n_parts,
        .headers = p->headers,
        .raw_headers = p->hdr,
        .raw_headers_len = p->hdr_len - 2,
    };
    const char *disp = NULL;
    size_t pos = 0, end = p->hdr_len - 2;
    struct disp_ctx c = { .p = p };

    p->strs_len = 0;
    while (pos < end) {
        const char *line = p->hdr + pos;
        const char *eol = memchr(line, '\r', end - pos); /* CR always starts CRLF here */
        size_t len = (size_t) (eol - line), nlen = 0;
        const char *v, *vend;

        DT_ASSERT(eol);
        pos += len + 2;
        /* obs-fold (RFC 7230 section 3.2.4) and whitespace before the colon are refused, as
         * in the HTTP parser. */
        while (nlen < len && is_tchar((unsigned char) line[nlen]))
            nlen++;
        if (nlen == 0 || nlen == len || line[nlen] != ':')
            return fail(p, -EBADMSG, "malformed part header line");
        v = skip_ows(line + nlen + 1);
        vend = eol;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        for (const char *x = v; x < vend; x++)
            if ((unsigned char) *x < 0x20 && *x != '\t')
                return fail(p, -EBADMSG, "control character in part header");

        struct dt_multipart_header *h = &p->headers[part.n_headers++];
        h->name = strs_add(p, line, nlen);
        h->value = strs_add(p, v, (size_t) (vend - v));
        if (strcasecmp(h->name, "Content-Disposition") == 0) {
            if (disp)
                return fail(p, -EBADMSG, "repeated Content-Disposition in part");
            disp = h->value;
        } else if (strcasecmp(h->name, "Content-Type") == 0) {
            if (part.content_type)
                return fail(p, -EBADMSG, "repeated Content-Type in part");
            part.content_type = h->value;
        }
    }

    /* RFC 7578 section 4.2: every part has Content-Disposition: form-data with a name. */
    if (!disp)
        return fail(p, -EBADMSG, "part without Content-Disposition");
    const char *s = disp;
    while (is_tchar((unsigned char) *s))
        s++;
    if (!name_eq(disp, (size_t) (s - disp), "form-data"))
        return fail(p, -EBADMSG, "part disposition is not form-data");
    /* A raw parameter value is unquoted into SCRATCH (at most strlen(disp) + 1 bytes), then
     * kept in strs by disp_param(). */
    char *scratch = xmalloc(strlen(disp) + 1);
    int r = parse_params(s, scratch, disp_param, &c);
    free(scratch);
    if (r < 0)
        return fail(p, -EBADMSG, "malformed Content-Disposition parameters in part");
    if (!c.name)
        return fail(p, -EBADMSG, "part without a name");
    part.name = c.name;
    part.filename = c.filename_ext ? c.filename_ext : c.filename;

    p->n_parts++;
    p->in_part = true;
    if (p->cbs.on_part_begin)
        return cb_result(p, p->cbs.on_part_begin(&part, p->userdata));
    return 0;
}

/* Scan part data (or preamble) in BUF[*OFF..LEN) for the delimiter. Returns 1 when the whole
 * delimiter was consumed, 0 when the input is used up, or a negative error. */
static int
scan_data(struct dt_multipart_parser *p, const char *buf, size_t len, size_t *off)
{
    size_t o = *off, start;
    int r;

    /* Bytes matched in an earlier call: resolve them one byte at a time. They are a prefix of
     * delim, so on a mismatch they are handed out from delim itself. */
    while (p->match > 0 && o < len) {
        if (buf[o] == p->delim[p->match]) {
            o++;
            if (++p->match == p->dlen) {
                p->match = 0;
                *off = o;
                return 1;
            }
            continue;
        }
        /* The delimiter holds one CR only, at its start, so no suffix of the held bytes can
         * begin a new match: they are all data. buf[o] is looked at again below. */
        r = emit_data(p, p->delim, p->match);
        p->match = 0;
        if (r < 0)
            return r;
    }

    start = o;
    while (o < len) {
        const char *cr = memchr(buf + o, '\r', len - o);
        size_t k;

        if (!cr) {
            o = len;
            break;
        }
        o = (size_t) (cr - buf);
        k = len - o < p->dlen ? len - o : p->dlen;
        if (memcmp(buf + o, p->delim, k) != 0) {
            o++;
            continue;
        }
        r = emit_data(p, buf + start, o - start);
        if (r < 0)
            return r;
        if (k == p->dlen) {
            *off = o + k;
            return 1;
        }
        /* A delimiter prefix at the end of the input: hold it back (it is in delim). */
        p->match = k;
        *off = len;
        return 0;
    }
    r = emit_data(p, buf + start, o - start);
    if (r < 0)
        return r;
    *off = o;
    return 0;
}

static int
header_byte(struct dt_multipart_parser *p, char c)
{
    char prev = p->hdr_len > 0 ? p->hdr[p->hdr_len - 1] : '\0';

    if (p->hdr_len >= p->limits.max_header_size)
        return fail(p, -EMSGSIZE, "part header block too large");
    if (c == '\0')
        return fail(p, -EBADMSG, "NUL in part header");
    if (prev == '\r' && c != '\n')
        return fail(p, -EBADMSG, "bare CR in part header");
    if (c == '\n' && prev != '\r')
        return fail(p, -EBADMSG, "bare LF in part header");
    p->hdr[p->hdr_len++] = c;
    if (c != '\n')
        return 0;
    if (p->hdr_len == 2 || (p->hdr_len >= 4 && memcmp(p->hdr + p->hdr_len - 4, "\r\n\r\n", 4) == 0))
        return 1;
    if (++p->hdr_lines > p->limits.max_header_lines)
        return fail(p, -EMSGSIZE, "too many part header lines");
    return 0;
}

/* The delimiter line is complete: a new part's headers follow. */
static int
start_headers(struct dt_multipart_parser *p)
{
    if (p->n_parts >= p->limits.max_parts)
        return fail(p, -E2BIG, "too many parts");
    p->state = ST_HEADERS;
    p->hdr_len = 0;
    p->hdr_lines = 0;
    return 0;
}

int
dt_multipart_feed(struct dt_multipart_parser *p, const void *data, size_t len)
{
    const char *buf = data;
    size_t off = 0;
    int r;

    if (p->error)
        return p->error;

    while (off < len) {
        char c;

        switch (p->state) {
        case ST_DATA:
            r = scan_data(p, buf, len, &off);
            if (r < 0)
                return r;
            if (r == 0)
                break;
            if (p->in_part) {
                p->in_part = false;
                if (p->cbs.on_part_end) {
                    r = cb_result(p, p->cbs.on_part_end(p->userdata));
                    if (r < 0)
                        return r;
                }
            }
            p->state = ST_DELIM_TAIL;
            break;

        case ST_DELIM_TAIL:
            c = buf[off++];
            if (c == '-')
                p->state = ST_CLOSE_DASH;
            else if (c == '\r')
                p->state = ST_DELIM_LF;
            else if (c == ' ' || c == '\t') {
                p->padding = 1;
                p->state = ST_PADDING;
            } else
                return fail(p, -EBADMSG, "boundary followed by garbage");
            break;

        case ST_CLOSE_DASH:
            if (buf[off++] != '-')
                return fail(p, -EBADMSG, "malformed closing delimiter");
            p->state = ST_EPILOGUE;
            break;

        case ST_PADDING:
            c = buf[off++];
            if (c == '\r')
                p->state = ST_DELIM_LF;
            else if ((c != ' ' && c != '\t') || ++p->padding > MAX_PADDING)
                return fail(p, -EBADMSG, "boundary followed by garbage");
            break;

        case ST_DELIM_LF:
            if (buf[off++] != '\n')
                return fail(p, -EBADMSG, "boundary line not ended by CRLF");
            r = start_headers(p);
            if (r < 0)
                return r;
            break;

        case ST_HEADERS:
            /* Header blocks are small and bounded: byte at a time keeps the CRLF checks
             * simple. */
            r = header_byte(p, buf[off++]);
            if (r < 0)
                return r;
            if (r == 0)
                break;
            p->state = ST_DATA;
            r = begin_part(p);
            if (r < 0)
                return r;
            break;

        case ST_EPILOGUE:
            /* RFC 2046: the epilogue is to be ignored. */
            return 0;
        }
    }
    return 0;
}

int
dt_multipart_finish(struct dt_multipart_parser *p)
{
    if (p->error)
        return p->error;
    if (p->state != ST_EPILOGUE)
        return fail(p, -EBADMSG, "truncated multipart body (no closing delimiter)");
    return 0;
}

bool
dt_multipart_done(const struct dt_multipart_parser *p)
{
    return p->state == ST_EPILOGUE && p->error == 0;
}

size_t
dt_multipart_n_parts(const struct dt_multipart_parser *p)
{
    return p->n_parts;
}

const char *
dt_multipart_errmsg(const struct dt_multipart_parser *p)
{
    return p->error ? p->errmsg : "";
}

/* ---- Encoder ---- */

int
dt_multipart_new_boundary(char out[DT_MULTIPART_NEW_BOUNDARY_LEN + 1])
{
    static const char set[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t n = 0;

    while (n < DT_MULTIPART_NEW_BOUNDARY_LEN) {
        uint8_t raw[64];
        ssize_t got;

        do
            got = getrandom(raw, sizeof(raw), 0);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return -errno;
        /* Drop bytes >= 248 so that every character is equally likely (248 = 4 * 62). */
        for (ssize_t i = 0; i < got && n < DT_MULTIPART_NEW_BOUNDARY_LEN; i++)
            if (raw[i] < 248)
                out[n++] = set[raw[i] % 62];
    }
    out[n] = '\0';
    return 0;
}

/* snprintf-style output: counts everything, writes what fits, keeps room for the NUL. */
struct out {
    char *buf;
    size_t size, len;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->size) {
        size_t room = o->size - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static ssize_t
out_end(struct out *o)
{
    if (o->size > 0)
        o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
    return (ssize_t) o->len;
}

/* Append S quoted, with '"' and '\' backslash-escaped. */
static void
out_quoted(struct out *o, const char *s)
{
    out_put(o, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            out_put(o, "\\", 1);
        out_put(o, s, 1);
    }
    out_put(o, "\"", 1);
}

static bool
has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool
is_printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
            return false;
    return true;
}

static bool
is_attr_char(unsigned char c)
{
    /* RFC 5987 section 3.2.1 attr-char. */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL;
}

ssize_t
dt_multipart_format_part_header(char *buf, size_t size, const char *boundary, bool first,
                                const char *name, const char *filename, const char *content_type,
                                int64_t content_length)
{
    struct out o = { .buf = buf, .size = size };

    /* Header injection: a CR or LF would end the header line early. */
    if (!dt_multipart_boundary_valid(boundary) || !name || has_ctl(name) ||
        (content_type && has_ctl(content_type)))
        return -EINVAL;

    if (!first)
        out_str(&o, "\r\n");
    out_str(&o, "--");
    out_str(&o, boundary);
    out_str(&o, "\r\nContent-Disposition: form-data; name=");
    out_quoted(&o, name);
    if (filename && is_printable_ascii(filename)) {
        out_str(&o, "; filename=");
        out_quoted(&o, filename);
    } else if (filename) {
        /* busboy reads a quoted filename as Latin-1, which breaks UTF-8 paths; the RFC 5987
         * form is decoded as UTF-8 (contract section 3.4.2). Control bytes go this way too. */
        out_str(&o, "; filename*=UTF-8''");
        for (const unsigned char *s = (const unsigned char *) filename; *s; s++) {
            if (is_attr_char(*s)) {
                out_put(&o, (const char *) s, 1);
            } else {
                char pct[4];
                (void) snprintf(pct, sizeof(pct), "%%%02X", *s);
                out_put(&o, pct, 3);
            }
        }
    }
    out_str(&o, "\r\n");
    if (content_type) {
        out_str(&o, "Content-Type: ");
        out_str(&o, content_type);
        out_str(&o, "\r\n");
    }
    if (content_length >= 0) {
        char num[32];
        int n = snprintf(num, sizeof(num), "Content-Length: %" PRId64 "\r\n", content_length);
        out_put(&o, num, (size_t) n);
    }
    out_str(&o, "\r\n");
    return out_end(&o);
}

ssize_t
dt_multipart_format_close(char *buf, size_t size, const char *boundary)
{
    struct out o = { .buf = buf, .size = size };

    if (!dt_multipart_boundary_valid(boundary))
        return -EINVAL;
    out_str(&o, "\r\n--");
    out_str(&o, boundary);
    out_str(&o, "--\r\n");
    return out_end(&o);
}
