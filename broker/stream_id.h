/* Redis Stream entry IDs ("<ms>-<seq>"), the position of every event. */
#ifndef SSEHUB_BROKER_STREAM_ID_H
#define SSEHUB_BROKER_STREAM_ID_H

#include <stddef.h>
#include <stdint.h>

typedef struct stream_id {
    uint64_t ms;
    uint64_t seq;
} stream_id_t;

#define STREAM_ID_ZERO ((stream_id_t){0, 0})
/* Longest text form: 20 digits, '-', 20 digits, NUL. */
#define STREAM_ID_MAX_TEXT 42

/* Parses exactly "<ms>-<seq>" (decimal, no sign, no spaces, each part fits
 * in 64 bits, no leading zeros except "0"); returns 0, or -1. */
int stream_id_parse(const char *s, size_t len, stream_id_t *out);
/* Writes the text form and a NUL into buf (>= STREAM_ID_MAX_TEXT bytes);
 * returns its length. */
size_t stream_id_format(stream_id_t id, char *buf);
/* Returns <0, 0, >0 like memcmp. */
int stream_id_cmp(stream_id_t a, stream_id_t b);
/* Returns the smallest id greater than id (seq+1, carrying into ms); the
 * largest id, which has none, is returned unchanged. */
stream_id_t stream_id_next(stream_id_t id);

#endif
