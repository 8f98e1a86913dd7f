/* Ingest positions: names for plain PUBLISH messages that every broker
 * agrees on, so a message is stored once whichever broker sends it and
 * however often (README "Brokers and failover").
 *
 * Every broker subscribes, on one connection, to the ingest patterns and to
 * the sync channel P broker:sync. Redis delivers to all subscribers in one
 * order, and a sync message carries a number from one counter (INCR and
 * PUBLISH in one function call), so "the n-th ingest delivery after sync
 * mark M" is the same message for every broker subscribed from M on. The
 * publish function keeps the highest position stored per topic and refuses
 * positions not above it. */
#ifndef SSEHUB_BROKER_INGEST_POS_H
#define SSEHUB_BROKER_INGEST_POS_H

#include <stddef.h>
#include <stdint.h>

/* A message's position: the sync mark before it and its delivery count
 * after that mark (1 for the first). */
typedef struct ingest_pos {
    uint64_t mark;
    uint64_t n;
} ingest_pos_t;

/* Counts from here on are "floor" positions: after every exact position of
 * their mark. A leader gives them to messages it received before it saw
 * its first mark (it knows the mark they follow, not their count). */
#define INGEST_POS_FLOOR 1000000000000000ULL
/* Marks and counts stay below 2^53 so Lua compares them exactly. */
#define INGEST_POS_MAX 9007199254740992ULL
/* Bytes of the longest text form "M.n" plus its NUL. */
#define INGEST_POS_TEXT_MAX 40

/* Writes "<mark>.<n>" into out; returns its length. */
size_t ingest_pos_format(char out[INGEST_POS_TEXT_MAX], ingest_pos_t pos);

/* Parses "<mark>.<n>" (decimal, no sign, no leading zeros, each below
 * INGEST_POS_MAX) from exactly len bytes; returns 0, or -1 with *out left
 * alone. */
int ingest_pos_parse(const char *s, size_t len, ingest_pos_t *out);

/* Returns <0, 0 or >0 as a is before, at or after b. */
int ingest_pos_cmp(ingest_pos_t a, ingest_pos_t b);

/* Parses a sync message "<mark> <tag>" (the tag may be empty: "<mark> ");
 * returns 0 with the mark and the tag (pointing into s), or -1 when s is
 * something else (e.g. a "released ..." notice) or the mark is 0 or too big. */
int ingest_sync_parse(const char *s, size_t len, uint64_t *mark, const char **tag, size_t *tag_len);

#endif
