/* Unit tests for broker/stream_id.c: strict parsing, formatting, order and
 * successor of Redis Stream entry IDs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/stream_id.h"
#include "tests/unit/check.h"

/* Returns stream_id_parse's result on an exact-size heap copy of s, so
 * AddressSanitizer catches any read past the given length. */
static int parse_exact(const char *s, stream_id_t *out)
{
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    int rc = stream_id_parse(copy, len, out);
    free(copy);
    return rc;
}

/* Returns nonzero when s parses to exactly (ms, seq). */
static int parses_to(const char *s, uint64_t ms, uint64_t seq)
{
    stream_id_t id = {12345, 678};
    return parse_exact(s, &id) == 0 && id.ms == ms && id.seq == seq;
}

/* Returns nonzero when s is rejected and the output is left alone. */
static int rejected(const char *s)
{
    stream_id_t id = {12345, 678};
    return parse_exact(s, &id) == -1 && id.ms == 12345 && id.seq == 678;
}

static void test_parse_valid(void)
{
    CHECK(parses_to("0-0", 0, 0));
    CHECK(parses_to("1-0", 1, 0));
    CHECK(parses_to("0-1", 0, 1));
    CHECK(parses_to("1732190000000-0", 1732190000000ULL, 0));
    CHECK(parses_to("1732190000000-42", 1732190000000ULL, 42));
    CHECK(parses_to("18446744073709551615-0", UINT64_MAX, 0));
    CHECK(parses_to("0-18446744073709551615", 0, UINT64_MAX));
    CHECK(parses_to("18446744073709551615-18446744073709551615", UINT64_MAX, UINT64_MAX));
    CHECK(parses_to("10-10", 10, 10));

    /* Only len bytes are read. */
    stream_id_t id;
    CHECK(stream_id_parse("5-7xyz", 3, &id) == 0 && id.ms == 5 && id.seq == 7);
    CHECK(stream_id_parse("5-77", 3, &id) == 0 && id.seq == 7);
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        "-",
        "0",
        "1",
        "0-",
        "-0",
        "--",
        "1--0",
        "1-0-0",
        "1-0-",
        "00-0",
        "0-00",
        "01-1",
        "1-01",
        "+1-0",
        "1-+0",
        "-1-0",
        "1--1",
        " 1-0",
        "1-0 ",
        "1 -0",
        "1- 0",
        "1-a",
        "a-1",
        "1.5-0",
        "1-0.5",
        "0x1-0",
        "1e3-0",
        "1_0-0",
        "١-0",
        "1-0\n",
        "18446744073709551616-0", /* UINT64_MAX + 1 */
        "0-18446744073709551616",
        "99999999999999999999-0", /* 20 digits, too big */
        "0-99999999999999999999",
        "100000000000000000000-0", /* 21 digits */
        "018446744073709551615-0", /* leading zero, 21 chars */
        "184467440737095516150-0",
        "18446744073709551615-18446744073709551616",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!rejected(bad[i]))
            fprintf(stderr, "accepted: [%s]\n", bad[i]);
        CHECK(rejected(bad[i]));
    }
    stream_id_t id;
    CHECK(stream_id_parse("1\0-0", 4, &id) == -1);
    CHECK(stream_id_parse("1-\0", 3, &id) == -1);
    CHECK(stream_id_parse(NULL, 0, &id) == -1);
}

static void test_format(void)
{
    char text[STREAM_ID_MAX_TEXT];
    memset(text, 'x', sizeof(text));
    size_t n = stream_id_format((stream_id_t){0, 0}, text);
    CHECK_MEM(text, n, "0-0");
    CHECK(text[n] == '\0');
    n = stream_id_format((stream_id_t){1732190000000ULL, 7}, text);
    CHECK_MEM(text, n, "1732190000000-7");
    CHECK(strlen(text) == n);
    n = stream_id_format((stream_id_t){UINT64_MAX, UINT64_MAX}, text);
    CHECK_MEM(text, n, "18446744073709551615-18446744073709551615");
    CHECK(n == STREAM_ID_MAX_TEXT - 1 && text[n] == '\0');
    n = stream_id_format((stream_id_t){10, 100}, text);
    CHECK_MEM(text, n, "10-100");
}

/* Returns the next value of a xorshift64* generator (deterministic, so a
 * failure reproduces). */
static uint64_t next_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

/* Returns a random id part with extremes and small numbers mixed in, so
 * edges are hit often. */
static uint64_t rand_part(uint64_t *state)
{
    uint64_t r = next_rand(state);
    switch (r % 8) {
    case 0:
        return 0;
    case 1:
        return UINT64_MAX;
    case 2:
        return UINT64_MAX - 1;
    case 3:
        return next_rand(state) % 100;
    case 4:
        return next_rand(state) >> (next_rand(state) % 64);
    default:
        return next_rand(state);
    }
}

static void test_round_trip(void)
{
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        stream_id_t id = {rand_part(&state), rand_part(&state)}, back;
        char text[STREAM_ID_MAX_TEXT];
        size_t n = stream_id_format(id, text);
        if (stream_id_parse(text, n, &back) != 0 || stream_id_cmp(id, back) != 0 || strlen(text) != n) {
            fprintf(stderr, "round trip failed for %s\n", text);
            ok = 0;
            break;
        }
    }
    CHECK(ok);
}

static void test_cmp(void)
{
    stream_id_t a = {1, 5}, b = {2, 0}, c = {1, 6};
    CHECK(stream_id_cmp(a, a) == 0);
    CHECK(stream_id_cmp(a, b) < 0);
    CHECK(stream_id_cmp(b, a) > 0);
    CHECK(stream_id_cmp(a, c) < 0);
    CHECK(stream_id_cmp(c, a) > 0);
    CHECK(stream_id_cmp((stream_id_t){1, UINT64_MAX}, (stream_id_t){2, 0}) < 0);
    CHECK(stream_id_cmp((stream_id_t){UINT64_MAX, 0}, (stream_id_t){0, UINT64_MAX}) > 0);
    CHECK(stream_id_cmp(STREAM_ID_ZERO, (stream_id_t){0, 1}) < 0);
    CHECK(stream_id_cmp((stream_id_t){UINT64_MAX, UINT64_MAX}, (stream_id_t){UINT64_MAX, UINT64_MAX}) == 0);
    /* The sign must not come from a truncated subtraction. */
    CHECK(stream_id_cmp((stream_id_t){0, 0}, (stream_id_t){0x100000000ULL, 0}) < 0);
    CHECK(stream_id_cmp((stream_id_t){0, 0x100000000ULL}, (stream_id_t){0, 0}) > 0);
}

static void test_next(void)
{
    stream_id_t n = stream_id_next((stream_id_t){1, 2});
    CHECK(n.ms == 1 && n.seq == 3);
    n = stream_id_next(STREAM_ID_ZERO);
    CHECK(n.ms == 0 && n.seq == 1);
    n = stream_id_next((stream_id_t){1, UINT64_MAX});
    CHECK(n.ms == 2 && n.seq == 0);
    n = stream_id_next((stream_id_t){UINT64_MAX, 7});
    CHECK(n.ms == UINT64_MAX && n.seq == 8);
    n = stream_id_next((stream_id_t){UINT64_MAX - 1, UINT64_MAX});
    CHECK(n.ms == UINT64_MAX && n.seq == 0);
    /* The largest id has no successor: it saturates instead of wrapping. */
    n = stream_id_next((stream_id_t){UINT64_MAX, UINT64_MAX});
    CHECK(n.ms == UINT64_MAX && n.seq == UINT64_MAX);

    uint64_t state = 12345;
    int ok = 1;
    for (int i = 0; i < 10000; i++) {
        stream_id_t id = {rand_part(&state), rand_part(&state)};
        if (id.ms == UINT64_MAX && id.seq == UINT64_MAX)
            continue;
        if (stream_id_cmp(stream_id_next(id), id) <= 0)
            ok = 0;
    }
    CHECK(ok);
}

int main(void)
{
    test_parse_valid();
    test_parse_invalid();
    test_format();
    test_round_trip();
    test_cmp();
    test_next();
    return CHECK_DONE();
}
