/* Unit tests for broker/ingest_pos.c: ingest positions "M.n" (text forms,
 * strict parsing, order, floor positions) and sync messages "M tag". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/ingest_pos.h"
#include "tests/unit/check.h"

/* Parses an exact-size heap copy of s, so ASan catches reads past len. */
static int parse_exact(const char *s, ingest_pos_t *out)
{
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    int rc = ingest_pos_parse(copy, len, out);
    free(copy);
    return rc;
}

static void test_format_parse(void)
{
    char text[INGEST_POS_TEXT_MAX];
    ingest_pos_t p = {1795248212585ULL, 40}, q;
    size_t n = ingest_pos_format(text, p);
    CHECK_MEM(text, n, "1795248212585.40");
    CHECK(parse_exact(text, &q) == 0 && q.mark == p.mark && q.n == p.n);
    ingest_pos_t big = {INGEST_POS_MAX - 1, INGEST_POS_MAX - 1};
    n = ingest_pos_format(text, big);
    CHECK(n < INGEST_POS_TEXT_MAX);
    CHECK(parse_exact(text, &q) == 0 && q.mark == big.mark && q.n == big.n);
    CHECK(parse_exact("0.0", &q) == 0 && q.mark == 0 && q.n == 0);
    CHECK(ingest_pos_parse("7.8xyz", 3, &q) == 0 && q.mark == 7 && q.n == 8);
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        ".",
        "1",
        "1.",
        ".1",
        "1..1",
        "1.1.1",
        "01.1",
        "1.01",
        "-1.1",
        "1.-1",
        "+1.1",
        "1 .1",
        "1.1 ",
        "a.1",
        "1.a",
        "9007199254740992.1",
        "1.9007199254740992",
        "12345678901234567.1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ingest_pos_t p = {11, 22};
        int rc = parse_exact(bad[i], &p);
        CHECK(rc == -1 && p.mark == 11 && p.n == 22);
        if (rc != -1)
            fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
    }
}

static void test_order(void)
{
    ingest_pos_t a = {5, 9}, b = {5, 10}, c = {6, 1}, floor = {5, INGEST_POS_FLOOR + 1};
    CHECK(ingest_pos_cmp(a, b) < 0 && ingest_pos_cmp(b, a) > 0 && ingest_pos_cmp(a, a) == 0);
    /* a later mark is after every count of an earlier one */
    CHECK(ingest_pos_cmp(b, c) < 0);
    CHECK(ingest_pos_cmp((ingest_pos_t){5, INGEST_POS_MAX - 1}, c) < 0);
    /* a floor position is after every exact one of its mark, before the next mark */
    CHECK(ingest_pos_cmp(b, floor) < 0 && ingest_pos_cmp(floor, c) < 0);
    CHECK(ingest_pos_cmp(floor, (ingest_pos_t){5, INGEST_POS_FLOOR + 2}) < 0);
    /* comparing numbers, not texts: 10 after 9 */
    char ta[INGEST_POS_TEXT_MAX], tb[INGEST_POS_TEXT_MAX];
    ingest_pos_format(ta, a);
    ingest_pos_format(tb, b);
    CHECK(strcmp(ta, tb) > 0 && ingest_pos_cmp(a, b) < 0);
    CHECK(INGEST_POS_FLOOR * 2 < INGEST_POS_MAX);
}

static void test_sync_parse(void)
{
    uint64_t mark = 0;
    const char *tag = NULL;
    size_t tag_len = 0;
    const char *s = "1795248212585 sse:* ssejson:*";
    CHECK(ingest_sync_parse(s, strlen(s), &mark, &tag, &tag_len) == 0);
    CHECK(mark == 1795248212585ULL);
    CHECK_MEM(tag, tag_len, "sse:* ssejson:*");
    CHECK(ingest_sync_parse("12 ", 3, &mark, &tag, &tag_len) == 0 && mark == 12 && tag_len == 0);
    static const char *const bad[] = {
        "", "12", " 12", "0 x", "x 1", "released vm:1:2", "-1 x", "01 x", "9007199254740992 x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mark = 77;
        CHECK(ingest_sync_parse(bad[i], strlen(bad[i]), &mark, &tag, &tag_len) == -1 && mark == 77);
    }
}

int main(void)
{
    test_format_parse();
    test_parse_invalid();
    test_order();
    test_sync_parse();
    return CHECK_DONE();
}
