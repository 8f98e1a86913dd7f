/* Unit tests for broker/stream_keys.c: topic validation (strict UTF-8,
 * controls, length), key naming with %, {, } escaped, and the inverse. */
#include <stdint.h>
#include <stdlib.h>

#include "broker/stream_keys.h"
#include "check.h"

#define V(lit) topic_validate((lit), sizeof(lit) - 1, 1024)

/* Writes the UTF-8 encoding of cp into out; returns its length. */
static size_t utf8_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Valid names, and the first problem reported for invalid ones. */
static void test_validate_cases(void)
{
    CHECK(V("news") == TOPIC_OK);
    CHECK(V("a/b c:d{e}%f") == TOPIC_OK);
    CHECK(V("\xE6\x97\xA5\xE6\x9C\xAC") == TOPIC_OK); /* 日本 */
    CHECK(V("\xF0\x9F\x98\x80") == TOPIC_OK);         /* U+1F600 */
    CHECK(V("\xF4\x8F\xBF\xBF") == TOPIC_OK);         /* U+10FFFF */
    CHECK(V("\xC2\xA0") == TOPIC_OK);                 /* U+00A0, first after C1 */
    CHECK(V("\xEE\x80\x80\xEF\xBF\xBD") == TOPIC_OK); /* U+E000 U+FFFD */
    CHECK(V("") == TOPIC_EMPTY);
    CHECK(V("\x80") == TOPIC_BAD_UTF8);             /* lone continuation */
    CHECK(V("\xC0\x80") == TOPIC_BAD_UTF8);         /* overlong NUL */
    CHECK(V("\xC1\xBF") == TOPIC_BAD_UTF8);         /* overlong */
    CHECK(V("\xE0\x80\x80") == TOPIC_BAD_UTF8);     /* overlong */
    CHECK(V("\xE0\x9F\xBF") == TOPIC_BAD_UTF8);     /* overlong U+07FF */
    CHECK(V("\xED\xA0\x80") == TOPIC_BAD_UTF8);     /* surrogate U+D800 */
    CHECK(V("\xED\xBF\xBF") == TOPIC_BAD_UTF8);     /* surrogate U+DFFF */
    CHECK(V("\xF0\x80\x80\x80") == TOPIC_BAD_UTF8); /* overlong */
    CHECK(V("\xF0\x8F\xBF\xBF") == TOPIC_BAD_UTF8); /* overlong U+FFFF */
    CHECK(V("\xF4\x90\x80\x80") == TOPIC_BAD_UTF8); /* U+110000 */
    CHECK(V("\xF5\x80\x80\x80") == TOPIC_BAD_UTF8);
    CHECK(V("\xFF") == TOPIC_BAD_UTF8);
    CHECK(V("ok\xE6\x97") == TOPIC_BAD_UTF8); /* truncated at the end */
    CHECK(V("\xF0\x9F\x98") == TOPIC_BAD_UTF8);
    CHECK(V("\xC2"
            "A") == TOPIC_BAD_UTF8);
    CHECK(V("\xE6\x97"
            "A") == TOPIC_BAD_UTF8);
    CHECK(V("a\x01") == TOPIC_CONTROL_CHAR);
    CHECK(V("a\nb") == TOPIC_CONTROL_CHAR);
    CHECK(V("a\rb") == TOPIC_CONTROL_CHAR);
    CHECK(V("a\x7f") == TOPIC_CONTROL_CHAR);    /* DEL */
    CHECK(V("a\x00z") == TOPIC_CONTROL_CHAR);   /* NUL inside the length */
    CHECK(V("\xC2\x80") == TOPIC_CONTROL_CHAR); /* U+0080 (C1) */
    CHECK(V("\xC2\x9F") == TOPIC_CONTROL_CHAR); /* U+009F (C1) */
    CHECK(V("\x01\x80") == TOPIC_CONTROL_CHAR); /* the first problem wins */
    CHECK(V("\x80\x01") == TOPIC_BAD_UTF8);
}

/* The length limit counts bytes, inclusive. */
static void test_validate_length(void)
{
    char big[1100];
    memset(big, 'a', sizeof big);
    CHECK(topic_validate(big, 1024, 1024) == TOPIC_OK);
    CHECK(topic_validate(big, 1025, 1024) == TOPIC_TOO_LONG);
    CHECK(topic_validate(big, 1, 0) == TOPIC_TOO_LONG);
    /* a 4-byte character counts 4 */
    CHECK(topic_validate("\xF0\x9F\x98\x80", 4, 3) == TOPIC_TOO_LONG);
    CHECK_MEM(topic_error_name(TOPIC_OK), strlen(topic_error_name(TOPIC_OK)), "ok");
    CHECK_MEM(topic_error_name(TOPIC_EMPTY), strlen(topic_error_name(TOPIC_EMPTY)), "empty");
    CHECK_MEM(topic_error_name(TOPIC_TOO_LONG), strlen(topic_error_name(TOPIC_TOO_LONG)), "too_long");
    CHECK_MEM(topic_error_name(TOPIC_BAD_UTF8), strlen(topic_error_name(TOPIC_BAD_UTF8)), "bad_utf8");
    CHECK_MEM(topic_error_name(TOPIC_CONTROL_CHAR), strlen(topic_error_name(TOPIC_CONTROL_CHAR)),
              "control_char");
}

/* Every scalar value encodes to an accepted topic unless it is a control. */
static void test_validate_every_code_point(void)
{
    unsigned char enc[4];
    int wrong = 0;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        int want = (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) ? TOPIC_CONTROL_CHAR : TOPIC_OK;
        size_t n = utf8_encode(cp, enc);
        if (topic_validate((const char *)enc, n, 16) != want)
            wrong++;
    }
    CHECK(wrong == 0);
    for (uint32_t cp = 0xD800; cp <= 0xDFFF; cp++) { /* CESU-style surrogates refused */
        size_t n = utf8_encode(cp, enc);
        if (topic_validate((const char *)enc, n, 16) != TOPIC_BAD_UTF8)
            wrong++;
    }
    CHECK(wrong == 0);
}

/* Counts the 2- and 3-byte strings accepted as topics: exactly the number
 * of well-formed, control-free sequences, so no ill-formed string slips
 * through (95 printable ASCII bytes, 1888 two-byte scalars after the 32 C1
 * controls, 61440 three-byte scalars without surrogates). */
static void test_validate_exhaustive_short(void)
{
    unsigned long ok2 = 0, ok3 = 0;
    unsigned char s[3];
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            s[0] = (unsigned char)a, s[1] = (unsigned char)b;
            ok2 += topic_validate((const char *)s, 2, 8) == TOPIC_OK;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                ok3 += topic_validate((const char *)s, 3, 8) == TOPIC_OK;
            }
        }
    CHECK(ok2 == 95UL * 95 + 1888);
    CHECK(ok3 == 95UL * 95 * 95 + 2UL * 95 * 1888 + (0x10000 - 0x800 - 0x800));
}

/* Builds a key into a fresh buffer and compares it. */
#define KEY_IS(prefix, topic, kind, want)                                                                    \
    do {                                                                                                     \
        buf_t b_ = BUF_INIT;                                                                                 \
        CHECK(topic_key(&b_, prefix, topic, sizeof(topic) - 1, kind) == 0);                                  \
        CHECK_MEM(b_.base, b_.len, want);                                                                    \
        buf_free(&b_);                                                                                       \
    } while (0)

static void test_key_names(void)
{
    KEY_IS("ssehub:", "news", TOPIC_KEY_STREAM, "ssehub:{news}:s");
    KEY_IS("ssehub:", "news", TOPIC_KEY_LIVE, "ssehub:{news}:l");
    KEY_IS("ssehub:", "news", TOPIC_KEY_META, "ssehub:{news}:m");
    KEY_IS("p:", "a{b}c", TOPIC_KEY_STREAM, "p:{a%7Bb%7Dc}:s");
    KEY_IS("p:", "100%", TOPIC_KEY_STREAM, "p:{100%25}:s");
    KEY_IS("p:", "%7B", TOPIC_KEY_STREAM, "p:{%257B}:s"); /* an escape-looking topic stays distinct */
    KEY_IS("p:", "{}%", TOPIC_KEY_STREAM, "p:{%7B%7D%25}:s");
    KEY_IS("p:", "a/b:c d\xE6\x97\xA5", TOPIC_KEY_STREAM, "p:{a/b:c d\xE6\x97\xA5}:s");
    /* appends to what the buffer holds */
    buf_t b = BUF_INIT;
    buf_append_str(&b, "X");
    CHECK(topic_key(&b, "P", "t", 1, TOPIC_KEY_LIVE) == 0);
    CHECK_MEM(b.base, b.len, "XP{t}:l");
    buf_free(&b);
}

/* Returns the kind topic_from_key gives for a literal name, with the topic
 * in *b (cleared first). */
static int from_key(buf_t *b, const char *prefix, const char *name, size_t len)
{
    buf_clear(b);
    return topic_from_key(b, prefix, name, len);
}
#define FROM(b, name) from_key((b), "ssehub:", (name), sizeof(name) - 1)

static void test_from_key_cases(void)
{
    buf_t b = BUF_INIT;
    CHECK(FROM(&b, "ssehub:{news}:s") == 's');
    CHECK_MEM(b.base, b.len, "news");
    CHECK(FROM(&b, "ssehub:{a%7Bb%7Dc%25}:l") == 'l');
    CHECK_MEM(b.base, b.len, "a{b}c%");
    CHECK(FROM(&b, "ssehub:{x}:m") == 'm');
    CHECK(FROM(&b, "ssehub:{news}:x") == -1); /* unknown kind */
    CHECK(FROM(&b, "ssehub:{news}:") == -1);
    CHECK(FROM(&b, "ssehub:{news}s") == -1);
    CHECK(FROM(&b, "ssehub:{news:s") == -1);
    CHECK(FROM(&b, "ssehub:news}:s") == -1);
    CHECK(FROM(&b, "other:{news}:s") == -1); /* wrong prefix */
    CHECK(FROM(&b, "ssehub{news}:s") == -1);
    CHECK(FROM(&b, "ssehub:{}:s") == -1);    /* empty topic */
    CHECK(FROM(&b, "ssehub:{a{b}:s") == -1); /* raw braces are never written */
    CHECK(FROM(&b, "ssehub:{a}b}:s") == -1);
    CHECK(FROM(&b, "ssehub:{a%7bb}:s") == -1); /* escapes are upper case only */
    CHECK(FROM(&b, "ssehub:{a%41}:s") == -1);  /* only %, {, } are escaped */
    CHECK(FROM(&b, "ssehub:{a%2}:s") == -1);   /* truncated escape */
    CHECK(FROM(&b, "ssehub:{a%}:s") == -1);
    CHECK(FROM(&b, "ssehub:{%") == -1);
    CHECK(FROM(&b, "ssehub:") == -1);
    CHECK(FROM(&b, "") == -1);
    CHECK(b.len == 0); /* failures append nothing */
    buf_clear(&b);
    buf_append_str(&b, "keep");
    CHECK(topic_from_key(&b, "ssehub:", "ssehub:{a%zz}:s", 15) == -1);
    CHECK_MEM(b.base, b.len, "keep");
    buf_free(&b);
}

/* topic_key then topic_from_key gives back any byte string, for every kind. */
static void test_round_trip_random(void)
{
    static const char alphabet[] = "ab%{}:7BD25\x00\xff";
    const enum topic_key_kind kinds[3] = {TOPIC_KEY_STREAM, TOPIC_KEY_LIVE, TOPIC_KEY_META};
    buf_t key = BUF_INIT, back = BUF_INIT;
    unsigned seed = 12345;
    int bad = 0;
    for (int round = 0; round < 20000; round++) {
        char topic[40];
        size_t n = 1 + (size_t)(rand_r(&seed) % 39);
        for (size_t i = 0; i < n; i++)
            topic[i] = (rand_r(&seed) % 4 == 0) ? (char)rand_r(&seed)
                                                : alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        enum topic_key_kind kind = kinds[round % 3];
        buf_clear(&key);
        buf_clear(&back);
        if (topic_key(&key, "pre:", topic, n, kind) != 0 ||
            topic_from_key(&back, "pre:", key.base, key.len) != (int)kind || back.len != n ||
            memcmp(back.base, topic, n) != 0)
            bad++;
        /* exactly one '{' and one '}' in the key: a real hash tag */
        if (memchr(key.base + 5, '{', key.len - 5) || memchr(key.base, '}', key.len - 3))
            bad++;
    }
    CHECK(bad == 0);
    buf_free(&key);
    buf_free(&back);
}

int main(void)
{
    test_validate_cases();
    test_validate_length();
    test_validate_every_code_point();
    test_validate_exhaustive_short();
    test_key_names();
    test_from_key_cases();
    test_round_trip_random();
    return CHECK_DONE();
}
