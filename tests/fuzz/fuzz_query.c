/* Fuzz target for topic lists in query strings: query_next walks any bytes
 * pair by pair and always ends; text_percent_decode agrees with a plain
 * reference decoder and leaves its output unchanged on failure;
 * topic_validate accepts only short, control-free UTF-8, and the Redis key
 * of an accepted topic (broker/stream_keys.c) gives the topic back. */
#include <string.h>

#include "broker/stream_keys.h"
#include "common/buf.h"
#include "common/text.h"
#include "node/query.h"
#include "tests/fuzz/fuzz.h"

#define MAX_TOPIC_LEN 1024 /* the max_topic_length default */

/* Writes the bytes s[0..len) decode to into out (room for len bytes);
 * returns 0, or -1 on a malformed escape. The definition
 * text_percent_decode must agree with, written differently. */
static int reference_decode(const char *s, size_t len, int plus_is_space, char *out, size_t *outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (len - i < 3)
                return -1;
            int hi = text_hex_value(s[i + 1]), lo = text_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    *outlen = n;
    return 0;
}

/* Checks text_percent_decode against the reference, appending after a
 * prefix that must survive both success and failure. */
static void check_decode(const char *s, size_t len, int plus_is_space)
{
    buf_t out = BUF_INIT;
    char *want = malloc(len + 1);
    size_t want_len = 0;
    FUZZ_CHECK(want != NULL && buf_append(&out, "prefix", 6) == 0);
    int rc = text_percent_decode(&out, s, len, plus_is_space);
    FUZZ_CHECK(rc == reference_decode(s, len, plus_is_space, want, &want_len));
    if (rc == 0) {
        FUZZ_CHECK(out.len == 6 + want_len && memcmp(out.base + 6, want, want_len) == 0);
    } else {
        FUZZ_CHECK(out.len == 6);
    }
    FUZZ_CHECK(memcmp(out.base, "prefix", 6) == 0 && out.base[out.len] == '\0');
    free(want);
    buf_free(&out);
}

/* Walks every pair; each call consumes at least one byte, so the walk ends
 * within len + 1 calls. */
static void check_query_walk(const char *s, size_t len)
{
    buf_t name = BUF_INIT, value = BUF_INIT;
    const char *cur = s, *end = s + len;
    size_t calls = 0;
    int rc;
    while ((rc = query_next(&cur, end, &name, &value)) == 1) {
        FUZZ_CHECK(++calls <= len);
        FUZZ_CHECK(cur > s && cur <= end);
        FUZZ_CHECK(name.len + value.len <= len);
    }
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(cur >= s && cur <= end);
    FUZZ_CHECK(rc == -1 || cur == end);
    buf_free(&name);
    buf_free(&value);
}

/* Checks topic_validate's verdict against the bytes it must refuse, and
 * the key round trip of an accepted topic. */
static void check_topic(const char *s, size_t len)
{
    int rc = topic_validate(s, len, MAX_TOPIC_LEN);
    FUZZ_CHECK(rc <= TOPIC_OK && rc >= TOPIC_CONTROL_CHAR);
    FUZZ_CHECK(topic_error_name(rc) != NULL);
    FUZZ_CHECK((rc == TOPIC_EMPTY) == (len == 0));
    FUZZ_CHECK(len <= MAX_TOPIC_LEN || rc == TOPIC_TOO_LONG);
    if (rc != TOPIC_OK)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != 0xc0 && c != 0xc1 && c < 0xf5);
        FUZZ_CHECK(!(c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)); /* C1 */
    }
    buf_t key = BUF_INIT, topic = BUF_INIT;
    FUZZ_CHECK(topic_key(&key, "ssehub:", s, len, TOPIC_KEY_LIVE) == 0);
    FUZZ_CHECK(topic_from_key(&topic, "ssehub:", key.base, key.len) == TOPIC_KEY_LIVE);
    FUZZ_CHECK(topic.len == len && memcmp(topic.base, s, len) == 0);
    buf_free(&key);
    buf_free(&topic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy(data, size);
    check_query_walk(s, size);
    check_decode(s, size, 0);
    check_decode(s, size, 1);
    check_topic(s, size);
    free(s);
    return 0;
}
