/* Resume cursors (DESIGN §4): topic hashes, the strict parser of every
 * Last-Event-ID a client can send, lookup of a topic's position, and the
 * formatter that writes a multi-topic connection's id for every event. */
#include "node/cursor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* Short hashes keep the top 36 of the 64 bits. */
#define SHORT_HASH_SHIFT 28
#define SHORT_HASH_MASK (~(uint64_t)0 << SHORT_HASH_SHIFT)
/* Base-36 digits of UINT64_MAX ("3w5e11264sgsf"). */
#define BASE36_MAX_DIGITS 13
/* The longest group: "." HASH "~" MS36 "-" SEQ36. */
#define GROUP_MAX_LEN (1 + CURSOR_LONG_HASH_CHARS + 1 + BASE36_MAX_DIGITS + 1 + BASE36_MAX_DIGITS)

_Static_assert(1 + CURSOR_MAX_TOPICS * GROUP_MAX_LEN <= CURSOR_MAX_LEN,
               "every cursor cursor_format writes must parse");

static const char BASE64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char BASE36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* ------------------------------------------------------------------ hashes */

/* Returns FNV-1a 64 of the topic: cheap, stable across nodes and releases,
 * and spread well enough that 36 bits rarely collide within a connection. */
uint64_t cursor_topic_hash(const char *topic, size_t len)
{
    return text_fnv1a64(TEXT_FNV1A64_SEED, topic, len);
}

/* Returns nonzero when a and b agree in their top 36 bits, the part a short
 * hash keeps. */
static int same_short_hash(uint64_t a, uint64_t b)
{
    return ((a ^ b) & SHORT_HASH_MASK) == 0;
}

/* Returns nonzero when two of the hashes share a short hash. Sorted input
 * (what cursor_format takes) needs one pass, since equal top bits are then
 * adjacent; other input falls back to comparing every pair, which is fine
 * for the few hundred topics a connection may hold, once per connection. */
int cursor_needs_long_hashes(const uint64_t *hashes, size_t n)
{
    size_t i = 1;
    while (i < n && hashes[i - 1] <= hashes[i])
        i++;
    if (i >= n) {
        for (i = 1; i < n; i++)
            if (same_short_hash(hashes[i - 1], hashes[i]))
                return 1;
        return 0;
    }
    for (i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (same_short_hash(hashes[i], hashes[j]))
                return 1;
    return 0;
}

/* --------------------------------------------------------------- formatting */

/* Writes a hash in base64url at p: the top 36 bits as 6 characters, or all
 * 64 as 11 (the first carrying 4 bits); returns the end of the output. */
static char *put_hash(char *p, uint64_t hash, int long_hash)
{
    if (!long_hash) {
        uint64_t v = hash >> SHORT_HASH_SHIFT;
        for (int shift = 30; shift >= 0; shift -= 6)
            *p++ = BASE64URL[(v >> shift) & 63];
        return p;
    }
    for (int shift = 60; shift >= 0; shift -= 6)
        *p++ = BASE64URL[(hash >> shift) & 63];
    return p;
}

/* Writes v in lowercase base 36 at p; returns the end of the output. */
static char *put_base36(char *p, uint64_t v)
{
    char tmp[BASE36_MAX_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = BASE36[v % 36];
        v /= 36;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Returns 0, -EINVAL when the input could not give a cursor that parses
 * back (no topics, too many, hashes not strictly increasing, or two sharing
 * a short hash without long_hashes), or -ENOMEM; out is unchanged on error.
 * Room is reserved once, so the per-client work is one linear write. */
int cursor_format(buf_t *out, const uint64_t *hashes, const stream_id_t *ids, size_t n, int long_hashes)
{
    if (n == 0 || n > CURSOR_MAX_TOPICS)
        return -EINVAL;
    for (size_t i = 1; i < n; i++)
        if (hashes[i - 1] >= hashes[i] || (!long_hashes && same_short_hash(hashes[i - 1], hashes[i])))
            return -EINVAL;
    if (buf_reserve(out, 1 + n * GROUP_MAX_LEN) != 0)
        return -ENOMEM;
    char *p = out->base + out->len;
    *p++ = '1';
    for (size_t i = 0; i < n; i++) {
        *p++ = '.';
        p = put_hash(p, hashes[i], long_hashes);
        *p++ = '~';
        p = put_base36(p, ids[i].ms);
        *p++ = '-';
        p = put_base36(p, ids[i].seq);
    }
    *p = '\0';
    out->len = (size_t)(p - out->base);
    return 0;
}

/* ------------------------------------------------------------------ parsing */

/* Decodes a 6- or 11-character hash into pos (short hashes left-aligned);
 * returns 0, or -1 for any other length, a foreign character, or a long
 * hash whose 66 bits do not start with two zeros (it would not fit). */
static int parse_hash(const char *s, size_t len, cursor_pos_t *pos)
{
    if (len != CURSOR_SHORT_HASH_CHARS && len != CURSOR_LONG_HASH_CHARS)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = text_base64url_value(s[i]);
        if (d < 0 || (i == 0 && len == CURSOR_LONG_HASH_CHARS && d >= 16))
            return -1;
        v = (v << 6) | (uint64_t)d;
    }
    pos->hash = len == CURSOR_SHORT_HASH_CHARS ? v << SHORT_HASH_SHIFT : v;
    pos->hash_chars = (unsigned)len;
    return 0;
}

/* Returns the value of a lowercase base-36 digit, or -1 for any other byte. */
static int base36_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    return -1;
}

/* Decodes canonical lowercase base 36 (no leading zeros except "0", fits
 * in 64 bits); returns 0, or -1, so each value has exactly one spelling. */
static int parse_base36(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > BASE36_MAX_DIGITS || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = base36_value(s[i]);
        if (d < 0 || v > (UINT64_MAX - (uint64_t)d) / 36)
            return -1;
        v = v * 36 + (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Returns the index of the first c in s[from, len), or len when absent. */
static size_t index_of(const char *s, size_t from, size_t len, char c)
{
    while (from < len && s[from] != c)
        from++;
    return from;
}

/* Parses one group starting at s[*i] (just after its '.') up to the next
 * '.' or the end, advancing *i; returns 0, or -1 when it is malformed. */
static int parse_group(const char *s, size_t len, size_t *i, cursor_pos_t *pos)
{
    size_t tilde = index_of(s, *i, len, '~');
    if (tilde == len || parse_hash(s + *i, tilde - *i, pos) != 0)
        return -1;
    size_t dash = index_of(s, tilde + 1, len, '-');
    size_t end = index_of(s, dash, len, '.');
    if (dash == len || parse_base36(s + tilde + 1, dash - tilde - 1, &pos->id.ms) != 0 ||
        parse_base36(s + dash + 1, end - dash - 1, &pos->id.seq) != 0)
        return -1;
    *i = end;
    return 0;
}

/* Returns the order of two groups: by hash, then short before long, which
 * puts groups a topic could match next to each other. */
static int compare_pos(const void *a, const void *b)
{
    const cursor_pos_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->hash_chars > y->hash_chars) - (x->hash_chars < y->hash_chars);
}

/* Returns nonzero when one topic could match both groups: equal short
 * hashes, equal long hashes, or a short hash that prefixes a long one. */
static int groups_overlap(const cursor_pos_t *a, const cursor_pos_t *b)
{
    if (!same_short_hash(a->hash, b->hash))
        return 0;
    return a->hash_chars == CURSOR_SHORT_HASH_CHARS || b->hash_chars == CURSOR_SHORT_HASH_CHARS ||
           a->hash == b->hash;
}

/* Parses the versioned multi-topic form into out and sorts its groups;
 * returns 0, or -1 when anything is off, so lookups are unambiguous. */
static int parse_multi(const char *s, size_t len, cursor_t *out)
{
    if (len < 2 || s[0] != '1' || s[1] != '.')
        return -1;
    size_t n = 0, i = 1;
    while (i < len) {
        if (s[i] != '.' || n == CURSOR_MAX_TOPICS)
            return -1;
        i++;
        if (parse_group(s, len, &i, &out->pos[n]) != 0)
            return -1;
        n++;
    }
    qsort(out->pos, n, sizeof(out->pos[0]), compare_pos);
    for (size_t k = 1; k < n; k++)
        if (groups_overlap(&out->pos[k - 1], &out->pos[k]))
            return -1;
    out->npos = n;
    return 0;
}

/* Classifies and parses any text; never fails, because every outcome,
 * including "not a cursor", is a kind the caller acts on. */
void cursor_parse(const char *s, size_t len, cursor_t *out)
{
    out->id = STREAM_ID_ZERO;
    out->npos = 0;
    if (len == 0)
        out->kind = CURSOR_NONE;
    else if (len > CURSOR_MAX_LEN)
        out->kind = CURSOR_INVALID;
    else if (len == 8 && memcmp(s, "earliest", 8) == 0)
        out->kind = CURSOR_EARLIEST;
    else if (stream_id_parse(s, len, &out->id) == 0)
        out->kind = CURSOR_ENTRY;
    else
        out->kind = parse_multi(s, len, out) == 0 ? CURSOR_MULTI : CURSOR_INVALID;
}

/* ------------------------------------------------------------------- lookup */

/* Returns the group holding exactly this hash and length, or NULL. */
static const cursor_pos_t *find_pos(const cursor_t *c, uint64_t hash, unsigned chars)
{
    cursor_pos_t key = {.hash = hash, .hash_chars = chars};
    return bsearch(&key, c->pos, c->npos, sizeof(c->pos[0]), compare_pos);
}

/* Returns 0 and the topic's position, or -1 when the cursor has none. The
 * parser sorted the groups and refused overlapping ones, so at most one of
 * the long and the short spelling of the hash is present. */
int cursor_lookup(const cursor_t *c, uint64_t topic_hash, stream_id_t *id)
{
    if (c->kind != CURSOR_MULTI)
        return -1;
    const cursor_pos_t *pos = find_pos(c, topic_hash, CURSOR_LONG_HASH_CHARS);
    if (pos == NULL)
        pos = find_pos(c, topic_hash & SHORT_HASH_MASK, CURSOR_SHORT_HASH_CHARS);
    if (pos == NULL)
        return -1;
    *id = pos->id;
    return 0;
}
