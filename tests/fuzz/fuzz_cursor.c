/* Fuzz target for resume cursors (node/cursor.c): cursor_parse on any
 * bytes; an entry id must be canonical (it formats back to the input); a
 * MULTI cursor must find each of its groups by lookup and, when its hashes
 * are all one length, format to text that parses back to the same groups. */
#include <string.h>

#include "broker/stream_id.h"
#include "common/buf.h"
#include "node/cursor.h"
#include "tests/fuzz/fuzz.h"

/* Returns nonzero when two MULTI cursors hold the same groups in order. */
static int same_groups(const cursor_t *a, const cursor_t *b)
{
    if (a->npos != b->npos)
        return 0;
    for (size_t i = 0; i < a->npos; i++)
        if (a->pos[i].hash != b->pos[i].hash || a->pos[i].hash_chars != b->pos[i].hash_chars ||
            stream_id_cmp(a->pos[i].id, b->pos[i].id) != 0)
            return 0;
    return 1;
}

/* Checks that every group of c is what a lookup by its hash returns. */
static void check_lookups(const cursor_t *c)
{
    for (size_t i = 0; i < c->npos; i++) {
        stream_id_t id;
        FUZZ_CHECK(cursor_lookup(c, c->pos[i].hash, &id) == 0);
        FUZZ_CHECK(stream_id_cmp(id, c->pos[i].id) == 0);
    }
}

/* Formats c (all hashes of one length) and checks the round trip. */
static void check_format_round_trip(const cursor_t *c)
{
    static uint64_t hashes[CURSOR_MAX_TOPICS];
    static stream_id_t ids[CURSOR_MAX_TOPICS];
    static cursor_t again;
    int long_hashes = c->pos[0].hash_chars == CURSOR_LONG_HASH_CHARS;
    for (size_t i = 0; i < c->npos; i++) {
        if ((c->pos[i].hash_chars == CURSOR_LONG_HASH_CHARS) != long_hashes)
            return; /* mixed lengths: cursor_format writes one length */
        hashes[i] = c->pos[i].hash;
        ids[i] = c->pos[i].id;
    }
    buf_t text = BUF_INIT;
    FUZZ_CHECK(cursor_format(&text, hashes, ids, c->npos, long_hashes) == 0);
    FUZZ_CHECK(text.len <= CURSOR_MAX_LEN);
    char *exact = fuzz_copy((const uint8_t *)text.base, text.len);
    cursor_parse(exact, text.len, &again);
    free(exact);
    FUZZ_CHECK(again.kind == CURSOR_MULTI);
    FUZZ_CHECK(same_groups(c, &again));
    buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cursor_t c; /* 6 KB: kept off the stack */
    char *s = fuzz_copy(data, size);
    cursor_parse(s, size, &c);
    FUZZ_CHECK(c.kind >= CURSOR_NONE && c.kind <= CURSOR_INVALID);
    FUZZ_CHECK(c.kind == CURSOR_MULTI || c.npos == 0);
    if (c.kind == CURSOR_ENTRY) {
        char text[STREAM_ID_MAX_TEXT];
        size_t n = stream_id_format(c.id, text);
        FUZZ_CHECK(n == size && memcmp(text, s, n) == 0);
    } else if (c.kind == CURSOR_MULTI) {
        FUZZ_CHECK(c.npos >= 1 && c.npos <= CURSOR_MAX_TOPICS);
        check_lookups(&c);
        check_format_round_trip(&c);
    }
    free(s);
    return 0;
}
