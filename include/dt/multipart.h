/* SPDX-License-Identifier: Apache-2.0 */
/* multipart/form-data (RFC 7578 on RFC 2046) codec for the agent's bulk upload (bodies from the
 * npm `form-data` package, curl) and bulk download (responses read by busboy): a streaming
 * parser that hands out part data without buffering it, and encoder helpers for part headers.
 * No I/O, no logging; see daytona-wire-contract.md sections 3.4.1 and 3.4.2. */
#ifndef DT_MULTIPART_H
#define DT_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* RFC 2046 section 5.1.1: a boundary is 1..70 characters. */
#define DT_MULTIPART_BOUNDARY_MAX 70
/* Length of the boundaries made by dt_multipart_new_boundary(). */
#define DT_MULTIPART_NEW_BOUNDARY_LEN 40

/* From a Content-Type header VALUE, check that the media type is multipart/form-data
 * (case-insensitive, parameters in any order) and copy its boundary parameter (token or
 * quoted-string, unescaped) NUL-terminated into OUT of SIZE bytes; DT_MULTIPART_BOUNDARY_MAX + 1
 * is always enough. The boundary must be 1..70 characters of the RFC 2046 set (bchars) and
 * must not end in a space. Returns the boundary length, -EINVAL when the value is not
 * multipart/form-data with exactly one valid boundary, -ENOBUFS when OUT is too small. */
int dt_multipart_boundary(const char *content_type, char *out, size_t size);

/* Whether B (NUL-terminated) is a valid RFC 2046 boundary. */
bool dt_multipart_boundary_valid(const char *b);

/* ---- Parser ----
 *
 * Errors, as negative errno values from dt_multipart_feed() / dt_multipart_finish():
 *   -EBADMSG   malformed body: bad delimiter line, bare CR or LF, NUL or obs-fold in a part
 *              header, a missing or non-form-data Content-Disposition, a part without a name,
 *              a bad filename* value, truncated input (from dt_multipart_finish())  -> 400
 *   -EMSGSIZE  a part's header block or its line count over the limit             -> 431
 *   -E2BIG     more parts than max_parts                                          -> 413
 * A negative value returned by a callback is passed through unchanged. Errors are sticky:
 * every later call returns the same value; dt_multipart_errmsg() says why. */

#define DT_MULTIPART_MAX_HEADER_SIZE (16 * 1024)

/* A zero field means "use the default" (in brackets). */
struct dt_multipart_limits {
    size_t max_parts;        /* parts in the body [10000] */
    size_t max_header_size;  /* one part's header block including CRLFs [and at most 16 KiB] */
    size_t max_header_lines; /* header lines of one part [32] */
};

/* One header line of a part, NUL-terminated copies (value without surrounding whitespace). */
struct dt_multipart_header {
    const char *name;
    const char *value;
};

/* What on_part_begin sees. Everything is borrowed from the parser and valid only during the
 * callback: copy what you need. */
struct dt_multipart_part {
    size_t index;                /* 0-based position of the part in the body */
    const char *name;            /* form field name (Content-Disposition name=), never NULL */
    const char *filename;        /* NULL when absent. Decoded: filename*=UTF-8''... (RFC 5987,
                                  * valid UTF-8 required) wins over filename="..." (backslash
                                  * escapes removed, bytes passed as sent: form-data sends raw
                                  * UTF-8). Never contains NUL; may contain '/' or "..": the
                                  * caller must not trust it as a path. */
    const char *content_type;    /* Content-Type value, NULL when absent */
    const struct dt_multipart_header *headers; /* all header lines, in order */
    size_t n_headers;
    const char *raw_headers;     /* the header block as received, each line ending in CRLF,
                                  * without the empty line that ends it; not NUL-terminated */
    size_t raw_headers_len;
};

/* Callbacks, run from inside dt_multipart_feed(). Each returns 0 to go on or -errno to stop the
 * parse (the parser is then dead and returns that value). All may be NULL.
 * on_part_data: a piece of the current part's body; DATA points into the buffer given to
 *   feed, or into the parser's constant delimiter text for bytes that were held back because
 *   they looked like the start of a delimiter. Valid only during the call. A part may get no
 *   data call at all (empty part) or many small ones.
 * on_part_end: the current part's delimiter was seen; its data is complete. */
struct dt_multipart_callbacks {
    int (*on_part_begin)(const struct dt_multipart_part *part, void *userdata);
    int (*on_part_data)(const char *data, size_t len, void *userdata);
    int (*on_part_end)(void *userdata);
};

struct dt_multipart_parser;

/* Make a parser for BOUNDARY (as from dt_multipart_boundary()). LIMITS and CBS may be NULL and
 * are copied. Returns 0 and *ret, or -EINVAL for an invalid boundary. Aborts on OOM. The parser
 * holds back at most strlen(boundary) + 3 bytes of part data between calls (a possible
 * delimiter start) and buffers only the current part's header block. */
int dt_multipart_parser_new(const char *boundary, const struct dt_multipart_limits *limits,
                            const struct dt_multipart_callbacks *cbs, void *userdata,
                            struct dt_multipart_parser **ret);
void dt_multipart_parser_free(struct dt_multipart_parser *p);
static inline void
dt_multipart_parser_freep(struct dt_multipart_parser **p)
{
    dt_multipart_parser_free(*p);
}

/* Feed LEN bytes as they arrive, in pieces of any size. The preamble (before the first
 * delimiter) and the epilogue (after the closing one) are ignored. Returns 0 (all consumed) or
 * a negative error (see above). */
int dt_multipart_feed(struct dt_multipart_parser *p, const void *data, size_t len);

/* The input ended. Returns 0 when the closing delimiter was seen, else -EBADMSG (truncated)
 * or the earlier sticky error. */
int dt_multipart_finish(struct dt_multipart_parser *p);

/* Whether the closing delimiter has been seen. */
bool dt_multipart_done(const struct dt_multipart_parser *p);
/* Parts begun so far. */
size_t dt_multipart_n_parts(const struct dt_multipart_parser *p);
/* A static, human-readable reason for the error ("" if none). */
const char *dt_multipart_errmsg(const struct dt_multipart_parser *p);

/* ---- Encoder (bulk-download responses) ----
 *
 * A body is: part header (FIRST = true), data, part header (FIRST = false), data, ...,
 * closing delimiter. A part header for a later part starts with the CRLF that ends the previous
 * part's data (RFC 2046: that CRLF belongs to the delimiter), so data is written as is. The
 * response Content-Type is "multipart/form-data; boundary=<B>" (busboy accepts nothing else). */

/* Fill OUT with DT_MULTIPART_NEW_BOUNDARY_LEN random characters from [0-9A-Za-z] and a NUL
 * (getrandom; never found in a file by chance). Returns 0 or -errno. */
int dt_multipart_new_boundary(char out[DT_MULTIPART_NEW_BOUNDARY_LEN + 1]);

/* Format into BUF of SIZE bytes (NUL-terminated when SIZE > 0):
 *   ["\r\n" unless FIRST] "--B\r\n"
 *   "Content-Disposition: form-data; name=\"<NAME>\"[; filename=...]\r\n"
 *   ["Content-Type: <CONTENT_TYPE>\r\n"] ["Content-Length: <N>\r\n"] "\r\n"
 * NAME is quoted with '"' and '\' backslash-escaped. FILENAME (NULL: none) is sent as
 * filename="<escaped>" when it is pure printable ASCII, else as filename*=UTF-8''<pct> (RFC 5987
 * attr-chars kept, every other byte %XX), which busboy decodes as UTF-8. CONTENT_TYPE may be
 * NULL; CONTENT_LENGTH < 0 means no Content-Length line.
 * Returns the full length like snprintf (>= SIZE: BUF was too small, call again), or -EINVAL for
 * an invalid boundary, or CR, LF, NUL or another control character in NAME or CONTENT_TYPE. */
ssize_t dt_multipart_format_part_header(char *buf, size_t size, const char *boundary, bool first,
                                        const char *name, const char *filename,
                                        const char *content_type, int64_t content_length);

/* Format the closing delimiter "\r\n--B--\r\n" (also valid for a body with no part: the CRLF
 * is then preamble). Returns the length like snprintf, or -EINVAL for an invalid boundary. */
ssize_t dt_multipart_format_close(char *buf, size_t size, const char *boundary);

#endif
