/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parsers for numbers and sizes: the whole string must parse and fit, else -EINVAL or
 * -ERANGE. Never use atoi() (see banned.h). */
#ifndef DT_PARSE_UTIL_H
#define DT_PARSE_UTIL_H

#include <stdint.h>

/* Decimal unsigned integer, no sign, no whitespace. */
/* The value of hex digit C (either case), or -1. */
int unhex(char c);
int parse_u64(const char *s, uint64_t *ret);
int parse_u32(const char *s, uint32_t *ret);
/* Signed decimal integer. */
int parse_i64(const char *s, int64_t *ret);
/* A byte size: a decimal number with an optional suffix K, M, G, T (powers of 1024, optionally
 * followed by "i" and/or "B", case-insensitive), e.g. "512M", "1.5G", "1GiB", "4096". */
int parse_size(const char *s, uint64_t *ret);
/* A CPU count as a decimal with up to three fractional digits ("1", "0.5", "2.25"), returned in
 * thousandths of a CPU. Zero is rejected with -EINVAL. */
int parse_millicpus(const char *s, uint64_t *ret);

#endif
