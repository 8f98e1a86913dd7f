/* Unit tests of query-string decoding (node/query.c). */
#include "node/query.h"

#include <stdint.h>
#include "common/text.h"

#include "tests/unit/check.h"

/* Decodes s and compares with want; returns the decoder's result. */
static int decode(const char *s, int plus, buf_t *out)
{
    buf_clear(out);
    return text_percent_decode(out, s, strlen(s), plus);
}

int main(void)
{
    buf_t out = BUF_INIT, name = BUF_INIT, value = BUF_INIT;

    CHECK(decode("a%20b+c", 1, &out) == 0);
    CHECK_MEM(out.base, out.len, "a b c");
    CHECK(decode("a+b", 0, &out) == 0);
    CHECK_MEM(out.base, out.len, "a+b");
    CHECK(decode("%7B%7d%25", 1, &out) == 0);
    CHECK_MEM(out.base, out.len, "{}%");
    CHECK(decode("%00x", 1, &out) == 0);
    CHECK(out.len == 2 && out.base[0] == '\0' && out.base[1] == 'x');
    CHECK(decode("https%3A%2F%2Fexample.com%2Fbooks%2F1", 1, &out) == 0);
    CHECK_MEM(out.base, out.len, "https://example.com/books/1");
    /* malformed escapes, including at the very end */
    CHECK(decode("%", 1, &out) == -1);
    CHECK(decode("%4", 1, &out) == -1);
    CHECK(decode("ab%", 1, &out) == -1);
    CHECK(decode("%G0", 1, &out) == -1);
    CHECK(decode("%0G", 1, &out) == -1);

    const char *q = "topic=a&&topic=b%2Fc&lastEventID=1-0&flag&=v&topic=";
    const char *cur = q, *end = q + strlen(q);
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK_MEM(name.base, name.len, "topic");
    CHECK_MEM(value.base, value.len, "a");
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK_MEM(value.base, value.len, "b/c");
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK_MEM(name.base, name.len, "lastEventID");
    CHECK_MEM(value.base, value.len, "1-0");
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK_MEM(name.base, name.len, "flag");
    CHECK(value.len == 0);
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK(name.len == 0);
    CHECK_MEM(value.base, value.len, "v");
    CHECK(query_next(&cur, end, &name, &value) == 1);
    CHECK_MEM(name.base, name.len, "topic");
    CHECK(value.len == 0);
    CHECK(query_next(&cur, end, &name, &value) == 0);

    const char *bad = "topic=%zz&topic=ok";
    cur = bad;
    CHECK(query_next(&cur, bad + strlen(bad), &name, &value) == -1);

    /* the shared canonical decimal parser */
    uint64_t v = 0;
    CHECK(text_parse_u64("0", 1, &v) == 0 && v == 0);
    CHECK(text_parse_u64("18446744073709551615", 20, &v) == 0 && v == UINT64_MAX);
    CHECK(text_parse_u64("18446744073709551616", 20, &v) == -1);
    CHECK(text_parse_u64("007", 3, &v) == -1);
    CHECK(text_parse_u64("", 0, &v) == -1);
    CHECK(text_parse_u64("+1", 2, &v) == -1);
    CHECK(text_parse_u64("12a", 3, &v) == -1);
    CHECK(text_parse_u64("123456", 3, &v) == 0 && v == 123);

    buf_free(&out);
    buf_free(&name);
    buf_free(&value);
    return CHECK_DONE();
}
