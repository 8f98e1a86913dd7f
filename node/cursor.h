/* Resume cursors (DESIGN §4, contract). A single-topic connection's SSE id
 * is the bare stream entry ID. A multi-topic connection's id is
 *
 *     "1" ( "." HASH "~" MS36 "-" SEQ36 )+
 *
 * "1" is the format version; per topic HASH is the topic's short hash in
 * base64url ([A-Za-z0-9_-]; 6 characters = the top 36 bits of FNV-1a 64,
 * or 11 characters = all 64 bits when two topics of one connection share
 * their top 36 bits), and MS36/SEQ36 are the entry id's parts in lowercase
 * base 36. Every character is URL-safe ([A-Za-z0-9._~-]). Groups are
 * written sorted by hash; any order parses. */
#ifndef SSEHUB_NODE_CURSOR_H
#define SSEHUB_NODE_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "broker/stream_id.h"
#include "common/buf.h"

#define CURSOR_MAX_TOPICS 256
/* The longest cursor cursor_format writes: "1" and 256 groups of
 * "." + 11 + "~" + 13 + "-" + 13 (13 = base-36 digits of UINT64_MAX). */
#define CURSOR_MAX_LEN 10241
#define CURSOR_SHORT_HASH_CHARS 6
#define CURSOR_LONG_HASH_CHARS 11

typedef enum cursor_kind {
    CURSOR_NONE = 0,   /* empty string: no cursor given */
    CURSOR_EARLIEST,   /* "earliest": all retained history */
    CURSOR_ENTRY,      /* a bare entry id: after it, in every topic */
    CURSOR_MULTI,      /* the versioned multi-topic form */
    CURSOR_INVALID,    /* anything else (too long, malformed, duplicates) */
} cursor_kind_t;

typedef struct cursor_pos {
    uint64_t hash;        /* top bits as written; low bits zero for short hashes */
    unsigned hash_chars;  /* CURSOR_SHORT_HASH_CHARS or CURSOR_LONG_HASH_CHARS */
    stream_id_t id;
} cursor_pos_t;

typedef struct cursor {
    cursor_kind_t kind;
    stream_id_t id;       /* for CURSOR_ENTRY */
    size_t npos;          /* for CURSOR_MULTI */
    cursor_pos_t pos[CURSOR_MAX_TOPICS]; /* sorted by hash (short first on ties) */
} cursor_t;

/* The 64-bit FNV-1a hash of a topic name. */
uint64_t cursor_topic_hash(const char *topic, size_t len);
/* Parses any cursor text into *out (kind CURSOR_INVALID when it is not a
 * cursor; never fails otherwise). */
void cursor_parse(const char *s, size_t len, cursor_t *out);
/* Finds the position of a topic (by its full 64-bit hash) in a
 * CURSOR_MULTI cursor; returns 0 and sets *id, or -1 when absent. */
int cursor_lookup(const cursor_t *c, uint64_t topic_hash, stream_id_t *id);
/* Appends the multi-topic form for n topics: hashes[i] (full 64-bit) at
 * ids[i]. long_hashes selects 11-character hashes. The caller passes them
 * sorted by hash. Returns 0, -EINVAL when n is 0 or above CURSOR_MAX_TOPICS
 * or the hashes are not strictly increasing (or, without long_hashes, two
 * share their top 36 bits), or -ENOMEM. */
int cursor_format(buf_t *out, const uint64_t *hashes, const stream_id_t *ids, size_t n,
                  int long_hashes);
/* Returns nonzero when two of the n hashes agree in their top 36 bits, so
 * the connection must use long hashes. */
int cursor_needs_long_hashes(const uint64_t *hashes, size_t n);

#endif
