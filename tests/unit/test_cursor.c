/* Unit tests for node/cursor.c: topic hashes, exact cursor bytes, format and
 * parse round trips for 1..256 topics, every invalid form, short and long
 * hash lookup, and random mutations that must never read out of bounds. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "node/cursor.h"
#include "tests/unit/check.h"

#define LOW28 ((uint64_t)0xFFFFFFF)

/* Parses an exact-size heap copy of s[0..len), so AddressSanitizer catches
 * any read past the given length. */
static void parse_exact(const char *s, size_t len, cursor_t *out)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    cursor_parse(copy, len, out);
    free(copy);
}

/* Returns the kind a C string parses to (npos is checked to be 0 for
 * every kind but CURSOR_MULTI). */
static cursor_kind_t kind_of(const char *s)
{
    cursor_t c;
    parse_exact(s, strlen(s), &c);
    if (c.kind != CURSOR_MULTI)
        CHECK(c.npos == 0);
    return c.kind;
}

/* Returns nonzero when every byte is one of [A-Za-z0-9._~-]. */
static int url_safe(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '~' || c == '-'))
            return 0;
    }
    return 1;
}

/* Returns the next value of a xorshift64* generator. */
static uint64_t next_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

/* Returns a random id part, often 0 or UINT64_MAX. */
static uint64_t rand_part(uint64_t *st)
{
    switch (next_rand(st) % 6) {
    case 0:
        return 0;
    case 1:
        return UINT64_MAX;
    case 2:
        return 1732190000000ULL + next_rand(st) % 100000000;
    case 3:
        return next_rand(st) % 40;
    default:
        return next_rand(st) >> (next_rand(st) % 64);
    }
}

/* Returns nonzero when two group arrays are equal field by field (memcmp
 * would also compare the padding). */
static int same_groups(const cursor_pos_t *a, const cursor_pos_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].hash != b[i].hash || a[i].hash_chars != b[i].hash_chars ||
            stream_id_cmp(a[i].id, b[i].id) != 0)
            return 0;
    return 1;
}

/* Orders 64-bit values for qsort. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ tests */

static void test_topic_hash(void)
{
    CHECK(cursor_topic_hash("", 0) == 0xcbf29ce484222325ULL);
    CHECK(cursor_topic_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(cursor_topic_hash("foobar", 6) == 0x85944171f73967e8ULL);
    CHECK(cursor_topic_hash("news", 4) == 0xe5495bbaa03a6526ULL);
    CHECK(cursor_topic_hash("\xff\x80", 2) != cursor_topic_hash("\x7f\x80", 2));
}

static void test_format_exact(void)
{
    buf_t b = BUF_INIT;
    uint64_t h0 = 0;
    stream_id_t id00 = {0, 0};
    CHECK(cursor_format(&b, &h0, &id00, 1, 0) == 0);
    CHECK_MEM(b.base, b.len, "1.AAAAAA~0-0");
    CHECK(b.base[b.len] == '\0');

    uint64_t h = 0x0123456789abcdefULL;
    stream_id_t id = {1732190000000ULL, 0};
    buf_clear(&b);
    CHECK(cursor_format(&b, &h, &id, 1, 0) == 0);
    CHECK_MEM(b.base, b.len, "1.ASNFZ4~m3r97a0w-0");
    buf_clear(&b);
    CHECK(cursor_format(&b, &h, &id, 1, 1) == 0);
    CHECK_MEM(b.base, b.len, "1.AEjRWeJq83v~m3r97a0w-0");

    uint64_t hmax = UINT64_MAX;
    stream_id_t idmax = {UINT64_MAX, UINT64_MAX};
    buf_clear(&b);
    CHECK(cursor_format(&b, &hmax, &idmax, 1, 0) == 0);
    CHECK_MEM(b.base, b.len, "1.______~3w5e11264sgsf-3w5e11264sgsf");
    buf_clear(&b);
    CHECK(cursor_format(&b, &hmax, &idmax, 1, 1) == 0);
    CHECK_MEM(b.base, b.len, "1.P__________~3w5e11264sgsf-3w5e11264sgsf");

    /* Two topics, sorted by hash ("sports" < "news"), appended after what
     * the buffer already holds. */
    uint64_t hs[2] = {cursor_topic_hash("sports", 6), cursor_topic_hash("news", 4)};
    stream_id_t ids[2] = {{1, 2}, {35, 36}};
    buf_clear(&b);
    buf_append_str(&b, "id: ");
    CHECK(cursor_format(&b, hs, ids, 2, 0) == 0);
    CHECK_MEM(b.base, b.len, "id: 1.oamovn~1-2.5Ulbuq~z-10");
    buf_clear(&b);
    CHECK(cursor_format(&b, hs, ids, 2, 1) == 0);
    CHECK_MEM(b.base, b.len, "1.KGpqL5699j6~1-2.OVJW7qgOmUm~z-10");
    buf_free(&b);
}

static void test_format_invalid(void)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, "keep");
    uint64_t hs[CURSOR_MAX_TOPICS + 1];
    stream_id_t ids[CURSOR_MAX_TOPICS + 1];
    for (size_t i = 0; i <= CURSOR_MAX_TOPICS; i++) {
        hs[i] = (uint64_t)(i + 1) << 40;
        ids[i] = (stream_id_t){i, i};
    }
    CHECK(cursor_format(&b, hs, ids, 0, 0) == -EINVAL);
    CHECK(cursor_format(&b, hs, ids, CURSOR_MAX_TOPICS + 1, 0) == -EINVAL);
    CHECK(cursor_format(&b, hs, ids, CURSOR_MAX_TOPICS + 1, 1) == -EINVAL);
    uint64_t unsorted[2] = {2ULL << 40, 1ULL << 40};
    CHECK(cursor_format(&b, unsorted, ids, 2, 0) == -EINVAL);
    CHECK(cursor_format(&b, unsorted, ids, 2, 1) == -EINVAL);
    uint64_t dup[2] = {5ULL << 40, 5ULL << 40};
    CHECK(cursor_format(&b, dup, ids, 2, 1) == -EINVAL);
    uint64_t collide[2] = {(5ULL << 40) | 1, (5ULL << 40) | LOW28};
    CHECK(cursor_format(&b, collide, ids, 2, 0) == -EINVAL);
    CHECK_MEM(b.base, b.len, "keep");
    /* The same pair is fine with long hashes. */
    CHECK(cursor_format(&b, collide, ids, 2, 1) == 0);
    CHECK(cursor_format(&b, hs, ids, CURSOR_MAX_TOPICS, 0) == 0);
    buf_free(&b);
}

static void test_parse_kinds(void)
{
    cursor_t c;
    CHECK(kind_of("") == CURSOR_NONE);
    cursor_parse(NULL, 0, &c);
    CHECK(c.kind == CURSOR_NONE);
    CHECK(kind_of("earliest") == CURSOR_EARLIEST);

    parse_exact("1732190000000-5", 15, &c);
    CHECK(c.kind == CURSOR_ENTRY && c.id.ms == 1732190000000ULL && c.id.seq == 5 && c.npos == 0);
    parse_exact("0-0", 3, &c);
    CHECK(c.kind == CURSOR_ENTRY && c.id.ms == 0 && c.id.seq == 0);
    const char *max = "18446744073709551615-18446744073709551615";
    parse_exact(max, strlen(max), &c);
    CHECK(c.kind == CURSOR_ENTRY && c.id.ms == UINT64_MAX && c.id.seq == UINT64_MAX);
    /* "1-0" is an entry id, not a version-1 cursor. */
    CHECK(kind_of("1-0") == CURSOR_ENTRY);

    parse_exact("1.ASNFZ4~m3r97a0w-0", 19, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == 1);
    CHECK(c.pos[0].hash == (0x0123456789abcdefULL & ~LOW28));
    CHECK(c.pos[0].hash_chars == CURSOR_SHORT_HASH_CHARS);
    CHECK(c.pos[0].id.ms == 1732190000000ULL && c.pos[0].id.seq == 0);
    parse_exact("1.AEjRWeJq83v~m3r97a0w-0", 24, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == 1);
    CHECK(c.pos[0].hash == 0x0123456789abcdefULL);
    CHECK(c.pos[0].hash_chars == CURSOR_LONG_HASH_CHARS);
    CHECK(kind_of("1.P__________~3w5e11264sgsf-3w5e11264sgsf") == CURSOR_MULTI);
    CHECK(kind_of("1.______~3w5e11264sgsf-3w5e11264sgsf") == CURSOR_MULTI);
    /* Any order parses; groups come out sorted. */
    parse_exact("1.5Ulbuq~z-10.oamovn~1-2", 24, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == 2 && c.pos[0].hash < c.pos[1].hash);
    /* Mixed lengths parse when no topic could match two groups. */
    CHECK(kind_of("1.AAAAAB~0-0.AAAAAAAAAAA~0-0") == CURSOR_MULTI);

    /* Only len bytes are read. */
    cursor_parse("earliest-and-more", 8, &c);
    CHECK(c.kind == CURSOR_EARLIEST);
    cursor_parse("1.AAAAAA~0-0.junk", 12, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == 1);
    cursor_parse("5-6.junk", 3, &c);
    CHECK(c.kind == CURSOR_ENTRY && c.id.ms == 5 && c.id.seq == 6);
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        /* not a cursor at all */
        "EARLIEST",
        "Earliest",
        " earliest",
        "earliest ",
        "earliest\n",
        "earlies",
        "latest",
        "$",
        "-",
        "0",
        "1",
        "1-",
        "-1",
        "01-0",
        "1-0 ",
        "+1-0",
        "18446744073709551616-0",
        /* version and structure */
        "1.",
        "2.AAAAAA~0-0",
        "0.AAAAAA~0-0",
        "11.AAAAAA~0-0",
        ".AAAAAA~0-0",
        "1AAAAAA~0-0",
        "1.AAAAAA~0-0.",
        "1..AAAAAA~0-0",
        "1.AAAAAA~0-0..AAAAAB~0-0",
        "1.AAAAAA~0-0 ",
        "1.AAAAAA~0-0\n",
        "1-AAAAAA~0-0",
        "1~AAAAAA~0-0",
        /* duplicate or overlapping hashes */
        "1.AAAAAA~0-0.AAAAAA~1-1",
        "1.AAAAAAAAAAA~0-0.AAAAAAAAAAA~1-1",
        "1.AAAAAA~0-0.AAAAAAAAAAB~0-0",
        "1.AAAAAAAAAAB~0-0.AAAAAA~0-0",
        "1.ASNFZ4~0-0.AEjRWeJq83v~0-0",
        "1.AEjRWeJq83v~0-0.ASNFZ4~0-0",
        "1.oamovn~1-2.5Ulbuq~z-10.oamovn~1-2",
        /* hash lengths and characters */
        "1.~0-0",
        "1.A~0-0",
        "1.AAAAA~0-0",
        "1.AAAAAAA~0-0",
        "1.AAAAAAAAAA~0-0",
        "1.AAAAAAAAAAAA~0-0",
        "1.AAAA.A~0-0",
        "1.AAAA+A~0-0",
        "1.AAAA/A~0-0",
        "1.AAAA=A~0-0",
        "1.AAAA~A~0-0",
        "1.AAAA A~0-0",
        "1.AAAA\xc3\xa9~0-0",
        /* a long hash must have its top 2 of 66 bits zero */
        "1.Q__________~0-0",
        "1.QAAAAAAAAAA~0-0",
        "1.g__________~0-0",
        "1.___________~0-0",
        "1.-AAAAAAAAAA~0-0",
        "1.9AAAAAAAAAA~0-0",
        /* base 36 */
        "1.AAAAAA~00-0",
        "1.AAAAAA~0-00",
        "1.AAAAAA~01-0",
        "1.AAAAAA~0-01",
        "1.AAAAAA~A-0",
        "1.AAAAAA~0-Z",
        "1.AAAAAA~Zz-0",
        "1.AAAAAA~-0",
        "1.AAAAAA~0-",
        "1.AAAAAA~0",
        "1.AAAAAA~",
        "1.AAAAAA",
        "1.AAAAAA0-0",
        "1.AAAAAA~0--0",
        "1.AAAAAA~0-0-0",
        "1.AAAAAA~0~0",
        "1.AAAAAA~~0-0",
        "1.AAAAAA~+1-0",
        "1.AAAAAA~ 1-0",
        "1.AAAAAA~1.5-0",
        "1.AAAAAA~0-_",
        "1.AAAAAA~0-0~0",
        /* values beyond 64 bits */
        "1.AAAAAA~3w5e11264sgsg-0",
        "1.AAAAAA~0-3w5e11264sgsg",
        "1.AAAAAA~zzzzzzzzzzzzz-0",
        "1.AAAAAA~10000000000000-0",
        "1.AAAAAA~0-10000000000000",
        "1.AAAAAA~3w5e11264sgt0-0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cursor_kind_t k = kind_of(bad[i]);
        if (k != CURSOR_INVALID)
            fprintf(stderr, "kind %d for [%s]\n", (int)k, bad[i]);
        CHECK(k == CURSOR_INVALID);
    }
    /* Embedded NULs. */
    cursor_t c;
    parse_exact("earliest\0", 9, &c);
    CHECK(c.kind == CURSOR_INVALID);
    parse_exact("1.AAAA\0A~0-0", 12, &c);
    CHECK(c.kind == CURSOR_INVALID);
    parse_exact("1.AAAAAA~0-0\0", 13, &c);
    CHECK(c.kind == CURSOR_INVALID);
    parse_exact("1-0\0", 4, &c);
    CHECK(c.kind == CURSOR_INVALID);
}

/* Builds "1" + n groups "." HASH "~" ID of the given text into b. */
static void repeat_groups(buf_t *b, size_t n, int long_hashes, const char *id)
{
    buf_clear(b);
    buf_append_char(b, '1');
    for (size_t i = 0; i < n; i++) {
        uint64_t h = (uint64_t)i << 40;
        buf_t one = BUF_INIT;
        stream_id_t zero = STREAM_ID_ZERO;
        cursor_format(&one, &h, &zero, 1, long_hashes);
        size_t tilde = (size_t)(strchr(one.base, '~') - one.base);
        buf_append(b, one.base + 1, tilde - 1);
        buf_append_str(b, id);
        buf_free(&one);
    }
}

static void test_limits(void)
{
    cursor_t c;
    buf_t b = BUF_INIT;
    repeat_groups(&b, CURSOR_MAX_TOPICS, 0, "~0-0");
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == CURSOR_MAX_TOPICS);
    repeat_groups(&b, CURSOR_MAX_TOPICS + 1, 0, "~0-0");
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_INVALID && c.npos == 0);
    repeat_groups(&b, 1000, 1, "~0-0");
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_INVALID);

    /* The longest cursor the formatter can write is exactly the cap. */
    repeat_groups(&b, CURSOR_MAX_TOPICS, 1, "~3w5e11264sgsf-3w5e11264sgsf");
    CHECK(b.len == CURSOR_MAX_LEN);
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_MULTI && c.npos == CURSOR_MAX_TOPICS);
    /* Anything longer is refused before it is looked at. */
    buf_append_char(&b, '0');
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_INVALID);
    buf_clear(&b);
    for (size_t i = 0; i <= CURSOR_MAX_LEN; i++)
        buf_append_char(&b, 'a');
    parse_exact(b.base, b.len, &c);
    CHECK(c.kind == CURSOR_INVALID);
    buf_free(&b);
}

/* Fills hashes[0..n) with distinct sorted values; when `collide`, some
 * share their top 36 bits so long hashes are needed. */
static void random_hashes(uint64_t *st, uint64_t *hashes, size_t n, int collide)
{
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            if (collide && i > 0 && next_rand(st) % 4 == 0)
                hashes[i] = (hashes[i - 1] & ~LOW28) | (next_rand(st) & LOW28);
            else if (next_rand(st) % 16 == 0)
                hashes[i] = next_rand(st) % 2 ? UINT64_MAX - i : i;
            else
                hashes[i] = next_rand(st);
        }
        qsort(hashes, n, sizeof(hashes[0]), cmp_u64);
        int distinct = 1;
        for (size_t i = 1; i < n; i++)
            distinct &= hashes[i - 1] != hashes[i];
        if (distinct)
            return;
    }
}

/* Rewrites a cursor with its groups in random order (the parser must not
 * care); returns the rewritten text in out. */
static void shuffle_groups(uint64_t *st, const char *s, size_t len, buf_t *out)
{
    size_t starts[CURSOR_MAX_TOPICS + 1], n = 0;
    for (size_t i = 1; i < len; i++)
        if (s[i] == '.')
            starts[n++] = i;
    starts[n] = len;
    size_t order[CURSOR_MAX_TOPICS];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = next_rand(st) % i, t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    buf_clear(out);
    buf_append_char(out, '1');
    for (size_t i = 0; i < n; i++)
        buf_append(out, s + starts[order[i]], starts[order[i] + 1] - starts[order[i]]);
}

static void test_round_trip(void)
{
    uint64_t hashes[CURSOR_MAX_TOPICS];
    stream_id_t ids[CURSOR_MAX_TOPICS];
    cursor_t c, c2;
    uint64_t st = 0x5EED5EED5EEDULL;
    buf_t b = BUF_INIT, shuffled = BUF_INIT;
    int ok = 1;
    for (size_t round = 0; round < 3 && ok; round++) {
        for (size_t n = 1; n <= CURSOR_MAX_TOPICS && ok; n++) {
            int collide = (n + round) % 3 == 0;
            random_hashes(&st, hashes, n, collide);
            for (size_t i = 0; i < n; i++)
                ids[i] = (stream_id_t){rand_part(&st), rand_part(&st)};
            ids[0] = STREAM_ID_ZERO;
            ids[n - 1] = (stream_id_t){UINT64_MAX, UINT64_MAX};
            int needs = cursor_needs_long_hashes(hashes, n);
            int long_hashes = needs || (n + round) % 2;
            buf_clear(&b);
            ok &= cursor_format(&b, hashes, ids, n, long_hashes) == 0;
            ok &= url_safe(b.base, b.len) && b.len <= CURSOR_MAX_LEN;
            ok &= strlen(b.base) == b.len;
            parse_exact(b.base, b.len, &c);
            ok &= c.kind == CURSOR_MULTI && c.npos == n;
            for (size_t i = 0; i < n && ok; i++) {
                stream_id_t got = {7, 7};
                ok &= cursor_lookup(&c, hashes[i], &got) == 0 && stream_id_cmp(got, ids[i]) == 0;
                ok &= c.pos[i].hash_chars ==
                      (unsigned)(long_hashes ? CURSOR_LONG_HASH_CHARS : CURSOR_SHORT_HASH_CHARS);
            }
            /* A hash absent from the cursor (for short hashes, absent in its
             * top 36 bits) is not found. */
            uint64_t other = next_rand(&st);
            int present = 0;
            for (size_t i = 0; i < n; i++)
                present |= long_hashes ? other == hashes[i] : ((other ^ hashes[i]) & ~LOW28) == 0;
            stream_id_t unused;
            ok &= present || cursor_lookup(&c, other, &unused) == -1;
            /* Group order does not matter. */
            shuffle_groups(&st, b.base, b.len, &shuffled);
            parse_exact(shuffled.base, shuffled.len, &c2);
            ok &= c2.kind == CURSOR_MULTI && c2.npos == n && same_groups(c.pos, c2.pos, n);
            if (!ok)
                fprintf(stderr, "round trip failed: n=%zu long=%d cursor=%s\n", n, long_hashes, b.base);
        }
    }
    CHECK(ok);
    buf_free(&b);
    buf_free(&shuffled);
}

static void test_lookup(void)
{
    cursor_t c;
    stream_id_t id = {9, 9};
    const uint64_t h = 0x0123456789abcdefULL;

    parse_exact("1.ASNFZ4~1-2", 12, &c);
    CHECK(cursor_lookup(&c, h, &id) == 0 && id.ms == 1 && id.seq == 2);
    /* A short hash matches any topic with the same top 36 bits... */
    CHECK(cursor_lookup(&c, h & ~LOW28, &id) == 0);
    CHECK(cursor_lookup(&c, h | LOW28, &id) == 0);
    /* ...and none that differs above them. */
    id = (stream_id_t){9, 9};
    CHECK(cursor_lookup(&c, h ^ (LOW28 + 1), &id) == -1);
    CHECK(cursor_lookup(&c, h ^ (1ULL << 63), &id) == -1);
    CHECK(id.ms == 9 && id.seq == 9);

    /* A long hash matches only all 64 bits. */
    parse_exact("1.AEjRWeJq83v~3-4", 17, &c);
    CHECK(cursor_lookup(&c, h, &id) == 0 && id.ms == 3 && id.seq == 4);
    id = (stream_id_t){9, 9};
    CHECK(cursor_lookup(&c, h ^ 1, &id) == -1);
    CHECK(cursor_lookup(&c, h & ~LOW28, &id) == -1);
    CHECK(cursor_lookup(&c, h ^ (1ULL << 28), &id) == -1);
    CHECK(id.ms == 9 && id.seq == 9);

    /* Two topics sharing their top 36 bits, told apart by long hashes. */
    uint64_t hs[2] = {h & ~LOW28, h | LOW28};
    stream_id_t ids[2] = {{10, 0}, {20, 0}};
    CHECK(cursor_needs_long_hashes(hs, 2));
    buf_t b = BUF_INIT;
    CHECK(cursor_format(&b, hs, ids, 2, 1) == 0);
    parse_exact(b.base, b.len, &c);
    CHECK(cursor_lookup(&c, hs[0], &id) == 0 && id.ms == 10);
    CHECK(cursor_lookup(&c, hs[1], &id) == 0 && id.ms == 20);
    CHECK(cursor_lookup(&c, h, &id) == -1);
    buf_free(&b);

    /* Mixed lengths: each topic finds its own group. */
    parse_exact("1.AAAAAB~1-0.AAAAAAAAAAA~2-0", 28, &c);
    CHECK(cursor_lookup(&c, 1ULL << 28, &id) == 0 && id.ms == 1);
    CHECK(cursor_lookup(&c, (1ULL << 28) | 5, &id) == 0 && id.ms == 1);
    CHECK(cursor_lookup(&c, 0, &id) == 0 && id.ms == 2);
    CHECK(cursor_lookup(&c, 1, &id) == -1);

    /* Other kinds hold no per-topic positions. */
    const char *others[] = {"", "earliest", "1-0", "junk"};
    for (size_t i = 0; i < 4; i++) {
        parse_exact(others[i], strlen(others[i]), &c);
        id = (stream_id_t){9, 9};
        CHECK(cursor_lookup(&c, h, &id) == -1 && id.ms == 9);
    }
}

/* Returns whether two of the hashes share their top 36 bits, by brute
 * force, to check the function under test. */
static int brute_needs_long(const uint64_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (((h[i] ^ h[j]) & ~LOW28) == 0)
                return 1;
    return 0;
}

static void test_needs_long_hashes(void)
{
    uint64_t h[4] = {0};
    CHECK(!cursor_needs_long_hashes(h, 0));
    CHECK(!cursor_needs_long_hashes(h, 1));
    h[0] = 5ULL << 28;
    h[1] = (5ULL << 28) | LOW28;
    CHECK(cursor_needs_long_hashes(h, 2));
    h[1] = 6ULL << 28;
    CHECK(!cursor_needs_long_hashes(h, 2));
    h[1] = h[0];
    CHECK(cursor_needs_long_hashes(h, 2));
    /* Unsorted input with the colliding pair far apart. */
    uint64_t u[4] = {(9ULL << 28) | 3, 1ULL << 50, 2ULL << 28, (9ULL << 28) | 7};
    CHECK(cursor_needs_long_hashes(u, 4));
    u[3] = 10ULL << 28;
    CHECK(!cursor_needs_long_hashes(u, 4));

    uint64_t st = 42;
    uint64_t r[300];
    int ok = 1;
    for (int round = 0; round < 2000; round++) {
        size_t n = next_rand(&st) % 300;
        for (size_t i = 0; i < n; i++)
            r[i] = (i > 0 && next_rand(&st) % 50 == 0) ? (r[i - 1] & ~LOW28) | (next_rand(&st) & LOW28)
                                                       : next_rand(&st);
        if (round % 2)
            qsort(r, n, sizeof(r[0]), cmp_u64);
        ok &= !cursor_needs_long_hashes(r, n) == !brute_needs_long(r, n);
    }
    CHECK(ok);
}

/* Returns nonzero when a parsed cursor keeps its promises: groups sorted,
 * no two a topic could both match, lengths 6 or 11, and (for one length)
 * formatting it again gives text of the same length that parses the same,
 * so every accepted group had its one canonical spelling. */
static int multi_is_sound(const cursor_t *c, size_t text_len)
{
    cursor_t again;
    uint64_t hashes[CURSOR_MAX_TOPICS];
    stream_id_t ids[CURSOR_MAX_TOPICS];
    if (c->npos < 1 || c->npos > CURSOR_MAX_TOPICS)
        return 0;
    int all_long = 1, all_short = 1;
    for (size_t i = 0; i < c->npos; i++) {
        unsigned k = c->pos[i].hash_chars;
        if (k != CURSOR_SHORT_HASH_CHARS && k != CURSOR_LONG_HASH_CHARS)
            return 0;
        if (k == CURSOR_SHORT_HASH_CHARS && (c->pos[i].hash & LOW28) != 0)
            return 0;
        all_long &= k == CURSOR_LONG_HASH_CHARS;
        all_short &= k == CURSOR_SHORT_HASH_CHARS;
        if (i > 0) {
            const cursor_pos_t *a = &c->pos[i - 1], *b = &c->pos[i];
            if (a->hash > b->hash)
                return 0;
            if (((a->hash ^ b->hash) & ~LOW28) == 0 &&
                (a->hash_chars == CURSOR_SHORT_HASH_CHARS || b->hash_chars == CURSOR_SHORT_HASH_CHARS ||
                 a->hash == b->hash))
                return 0;
        }
        hashes[i] = c->pos[i].hash;
        ids[i] = c->pos[i].id;
    }
    if (!all_long && !all_short)
        return 1;
    buf_t b = BUF_INIT;
    int ok = cursor_format(&b, hashes, ids, c->npos, all_long) == 0 && b.len == text_len;
    parse_exact(b.base, b.len, &again);
    ok &= again.kind == CURSOR_MULTI && again.npos == c->npos && same_groups(again.pos, c->pos, c->npos);
    buf_free(&b);
    return ok;
}

/* Mutates a valid cursor at random: replace, insert or delete bytes, or
 * duplicate a stretch. */
static void mutate(uint64_t *st, buf_t *b)
{
    static const char alphabet[] = "01az.~-_AZPQ9\0 +/";
    size_t edits = 1 + next_rand(st) % 3;
    for (size_t e = 0; e < edits; e++) {
        size_t pos = b->len ? next_rand(st) % b->len : 0;
        char c = alphabet[next_rand(st) % (sizeof(alphabet) - 1)];
        if (next_rand(st) % 5 == 0)
            c = (char)(next_rand(st) & 0xff);
        buf_t out = BUF_INIT;
        switch (next_rand(st) % 4) {
        case 0: /* replace */
            if (b->len)
                b->base[pos] = c;
            break;
        case 1: /* insert */
            buf_append(&out, b->base, pos);
            buf_append_char(&out, c);
            buf_append(&out, b->base + pos, b->len - pos);
            buf_clear(b);
            buf_append(b, out.base, out.len);
            break;
        case 2: /* delete */
            if (b->len) {
                memmove(b->base + pos, b->base + pos + 1, b->len - pos - 1);
                b->len--;
            }
            break;
        default: { /* duplicate a stretch (can repeat a group) */
            size_t n = b->len - pos < 30 ? b->len - pos : 30;
            buf_append(&out, b->base, pos + n);
            buf_append(&out, b->base + pos, b->len - pos);
            buf_clear(b);
            buf_append(b, out.base, out.len);
            break;
        }
        }
        buf_free(&out);
    }
}

static void test_mutations(void)
{
    uint64_t hashes[8];
    stream_id_t ids[8];
    cursor_t c;
    uint64_t st = 0xBADC0FFEEULL;
    buf_t b = BUF_INIT;
    int ok = 1;
    size_t multi = 0, invalid = 0;
    for (int round = 0; round < 200000 && ok; round++) {
        size_t n = 1 + next_rand(&st) % 8;
        random_hashes(&st, hashes, n, round % 3 == 0);
        for (size_t i = 0; i < n; i++)
            ids[i] = (stream_id_t){rand_part(&st), rand_part(&st)};
        buf_clear(&b);
        cursor_format(&b, hashes, ids, n, cursor_needs_long_hashes(hashes, n) || round % 2);
        mutate(&st, &b);
        parse_exact(b.base, b.len, &c);
        switch (c.kind) {
        case CURSOR_MULTI:
            multi++;
            ok &= multi_is_sound(&c, b.len);
            break;
        case CURSOR_INVALID:
            invalid++;
            ok &= c.npos == 0;
            break;
        case CURSOR_NONE:
            ok &= b.len == 0;
            break;
        case CURSOR_EARLIEST:
            ok &= b.len == 8;
            break;
        case CURSOR_ENTRY:
            ok &= memchr(b.base, '.', b.len) == NULL;
            break;
        default:
            ok = 0;
        }
        if (!ok)
            fprintf(stderr, "mutation %d: kind %d for [%.*s]\n", round, (int)c.kind, (int)b.len, b.base);
    }
    CHECK(ok);
    /* Both outcomes must be common, or the mutations test nothing. */
    CHECK(multi > 1000 && invalid > 1000);
    buf_free(&b);
}

int main(void)
{
    test_topic_hash();
    test_format_exact();
    test_format_invalid();
    test_parse_kinds();
    test_parse_invalid();
    test_limits();
    test_round_trip();
    test_lookup();
    test_needs_long_hashes();
    test_mutations();
    return CHECK_DONE();
}
