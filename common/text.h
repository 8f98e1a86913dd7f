/* Small text codecs several parsers share: hex digits, decimal numbers,
 * percent-encoding. Pure functions. */
#ifndef SSEHUB_COMMON_TEXT_H
#define SSEHUB_COMMON_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Most digits of a uint64_t in decimal. */
#define TEXT_U64_DIGITS 20

/* Parses exactly len bytes as a canonical decimal: 1..20 digits, no sign,
 * no leading zero unless it is "0", no overflow. Returns 0 and sets *out,
 * or -1, so every number has one accepted spelling. */
int text_parse_u64(const char *s, size_t len, uint64_t *out);
/* FNV-1a 64: folds n bytes into h (start with TEXT_FNV1A64_SEED; chain
 * calls to hash several parts). Cheap and stable across processes. */
#define TEXT_FNV1A64_SEED 0xcbf29ce484222325ULL
uint64_t text_fnv1a64(uint64_t h, const void *p, size_t n);
/* Returns the 6-bit value of a base64url character (RFC 4648 section 5),
 * or -1 for any other byte, including '+', '/' and the padding '='. */
int text_base64url_value(char c);
/* Returns the value 0..15 of a hex digit, or -1 when c is not one. */
int text_hex_value(char c);
/* Writes v in decimal at p (no NUL, at most TEXT_U64_DIGITS bytes);
 * returns the number of digits so the caller can write on after them. */
size_t text_format_u64(uint64_t v, char *p);
/* Appends the percent-decoded bytes of s to out ('+' becomes a space when
 * plus_is_space). Returns 0, or -1 on a malformed escape ('%' not followed
 * by two hex digits) or when out of memory; out is unchanged on failure. */
int text_percent_decode(buf_t *out, const char *s, size_t len, int plus_is_space);

#endif
