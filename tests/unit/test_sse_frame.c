/* Unit tests for node/sse_frame.c: exact frame bytes, the client parser's
 * WHATWG edge cases under every chunking, and a round-trip property test
 * showing that no payload can inject a field or end an event early. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "node/sse_frame.h"
#include "tests/unit/check.h"

/* ----------------------------------------------------------- the event log */

/* Appends bytes to a log, escaped so every log is printable and two logs
 * are equal exactly when the recorded bytes are. */
static void log_escaped(buf_t *log, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            buf_append_str(log, "\\\\");
        else if (c == '\n')
            buf_append_str(log, "\\n");
        else if (c == '\r')
            buf_append_str(log, "\\r");
        else if (c == '\0')
            buf_append_str(log, "\\0");
        else if (c < 0x20 || c >= 0x7f)
            buf_printf(log, "\\x%02x", c);
        else
            buf_append_char(log, (char)c);
    }
}

/* Logs one event as "[t=TYPE id=ID r=RETRY d=DATA]". */
static void log_event(buf_t *log, const char *type, size_t type_len, const char *id, size_t id_len,
                      long retry, const char *data, size_t data_len)
{
    buf_append_str(log, "[t=");
    log_escaped(log, type, type_len);
    buf_append_str(log, " id=");
    log_escaped(log, id, id_len);
    buf_printf(log, " r=%ld d=", retry);
    log_escaped(log, data, data_len);
    buf_append_str(log, "]");
}

/* Logs one comment as "(c=TEXT)". */
static void log_comment(buf_t *log, const char *text, size_t len)
{
    buf_append_str(log, "(c=");
    log_escaped(log, text, len);
    buf_append_str(log, ")");
}

/* Logs each parsed event (the pointers must be valid even when empty). */
static void on_event_log(void *ctx, const sse_event_t *ev)
{
    log_event(ctx, ev->type, ev->type_len, ev->id, ev->id_len, ev->retry, ev->data, ev->data_len);
}

/* Logs each parsed comment. */
static void on_comment_log(void *ctx, const char *text, size_t len)
{
    log_comment(ctx, text, len);
}

/* Feeds s to a fresh parser as a first chunk of `first` bytes and then
 * chunks of `step` bytes (0: the rest at once), each an exact-size heap
 * copy so AddressSanitizer catches reads past a chunk; returns the log. */
static void parse_chunked(const char *s, size_t len, size_t first, size_t step, int comments, buf_t *log)
{
    sse_parser_t p;
    sse_parser_init(&p, on_event_log, log);
    if (comments)
        p.on_comment = on_comment_log;
    size_t off = 0;
    int first_chunk = 1, ok = 1;
    while (off < len || first_chunk) {
        size_t n = first_chunk ? first : (step ? step : len - off);
        if (n > len - off)
            n = len - off;
        char *chunk = malloc(n ? n : 1);
        memcpy(chunk, s + off, n);
        ok &= sse_parser_feed(&p, chunk, n) == 0;
        free(chunk);
        off += n;
        first_chunk = 0;
    }
    CHECK(ok);
    sse_parser_free(&p);
}

/* Checks that the stream parses to the wanted log whole, byte by byte and
 * split in two at every position. */
static void check_parse(const char *s, size_t len, const char *want, size_t want_len, int line)
{
    buf_t whole = BUF_INIT;
    parse_chunked(s, len, 0, 0, 1, &whole);
    int ok = whole.len == want_len && memcmp(whole.base ? whole.base : "", want, want_len) == 0;
    if (!ok)
        fprintf(stderr, "line %d: got  %.*s\n         want %.*s\n", line, (int)whole.len,
                whole.base ? whole.base : "", (int)want_len, want);
    CHECK(ok);
    for (size_t split = 0; split <= len + 1; split++) {
        buf_t other = BUF_INIT;
        if (split == len + 1)
            parse_chunked(s, len, 0, 1, 1, &other);
        else
            parse_chunked(s, len, split, 0, 1, &other);
        int same =
            other.len == whole.len && (whole.len == 0 || memcmp(other.base, whole.base, whole.len) == 0);
        if (!same)
            fprintf(stderr, "line %d: chunking %zu differs: %.*s\n", line, split, (int)other.len,
                    other.base ? other.base : "");
        CHECK(same);
        buf_free(&other);
    }
    buf_free(&whole);
}

#define CHECK_PARSE(stream, want) check_parse(stream, sizeof(stream) - 1, want, sizeof(want) - 1, __LINE__)

/* ------------------------------------------------------------- frame bytes */

/* Returns the body frame of data (a string literal may hold NULs). */
#define BODY(out, type, retry, lit) sse_frame_body(out, type, strlen(type), retry, lit, sizeof(lit) - 1)

static void test_frame_body(void)
{
    buf_t b = BUF_INIT;
#define EXPECT_BODY(type, retry, data, want)                                                                 \
    do {                                                                                                     \
        buf_clear(&b);                                                                                       \
        CHECK(BODY(&b, type, retry, data) == 0);                                                             \
        CHECK_MEM(b.base, b.len, want);                                                                      \
        CHECK(b.base[b.len] == '\0');                                                                        \
    } while (0)
    EXPECT_BODY("", -1, "hello", "data: hello\n\n");
    EXPECT_BODY("update", -1, "a\r\nb", "event: update\ndata: a\ndata: b\n\n");
    EXPECT_BODY("", -1, "a\rb", "data: a\ndata: b\n\n");
    EXPECT_BODY("", -1, "a\nb", "data: a\ndata: b\n\n");
    EXPECT_BODY("", -1, "a\n\nb", "data: a\ndata: \ndata: b\n\n");
    EXPECT_BODY("", -1, "", "data: \n\n");
    EXPECT_BODY("", -1, "x\n", "data: x\ndata: \n\n");
    EXPECT_BODY("", -1, "x\r", "data: x\ndata: \n\n");
    EXPECT_BODY("", -1, "x\r\n", "data: x\ndata: \n\n");
    EXPECT_BODY("", -1, "\r\n", "data: \ndata: \n\n");
    EXPECT_BODY("", -1, "\n\r", "data: \ndata: \ndata: \n\n");
    EXPECT_BODY("", -1, "\r\r\n", "data: \ndata: \ndata: \n\n");
    EXPECT_BODY("", -1, "\r\n\r\n", "data: \ndata: \ndata: \n\n");
    EXPECT_BODY("", -1, "\n\n", "data: \ndata: \ndata: \n\n");
    EXPECT_BODY("", -1, "a\r\n\nb\r", "data: a\ndata: \ndata: b\ndata: \n\n");
    EXPECT_BODY("", -1, ": x", "data: : x\n\n");
    EXPECT_BODY("", -1, " lead", "data:  lead\n\n");
    EXPECT_BODY("", -1, "a\0b", "data: a\0b\n\n");
    EXPECT_BODY("", -1, "x\nid: evil\n\nevent: e", "data: x\ndata: id: evil\ndata: \ndata: event: e\n\n");
    EXPECT_BODY("t", 3000, "x", "event: t\nretry: 3000\ndata: x\n\n");
    EXPECT_BODY("", 0, "x", "retry: 0\ndata: x\n\n");
    EXPECT_BODY("", LONG_MAX, "x", "retry: 9223372036854775807\ndata: x\n\n");
    EXPECT_BODY(" sp:ace ", -1, "x", "event:  sp:ace \ndata: x\n\n");
#undef EXPECT_BODY

    /* NULL is fine for empty data and an empty type. */
    buf_clear(&b);
    CHECK(sse_frame_body(&b, NULL, 0, -1, NULL, 0) == 0);
    CHECK_MEM(b.base, b.len, "data: \n\n");

    /* Frames append to what the buffer holds. */
    buf_clear(&b);
    CHECK(sse_frame_id(&b, "7-0", 3) == 0);
    CHECK(BODY(&b, "t", -1, "x") == 0);
    CHECK_MEM(b.base, b.len, "id: 7-0\nevent: t\ndata: x\n\n");

    /* A bad type is refused and leaves the buffer alone. */
    const char *bad_types[] = {"a\nb", "a\rb", "\n", "\r"};
    for (size_t i = 0; i < 4; i++) {
        buf_clear(&b);
        buf_append_str(&b, "keep");
        CHECK(sse_frame_body(&b, bad_types[i], strlen(bad_types[i]), -1, "x", 1) == -EINVAL);
        CHECK_MEM(b.base, b.len, "keep");
    }
    CHECK(sse_frame_body(&b, "a\0b", 3, -1, "x", 1) == -EINVAL);
    CHECK_MEM(b.base, b.len, "keep");
    buf_free(&b);
}

static void test_frame_body_large(void)
{
    /* A large payload with a break every 1000 bytes frames in one pass, and
     * the output size is exact. */
    size_t len = 1 << 20;
    char *data = malloc(len);
    size_t breaks = 0;
    for (size_t i = 0; i < len; i++) {
        data[i] = (char)('a' + i % 26);
        if (i % 1000 == 999) {
            data[i] = '\n';
            breaks++;
        }
    }
    buf_t b = BUF_INIT;
    CHECK(sse_frame_body(&b, "big", 3, -1, data, len) == 0);
    CHECK(b.len == strlen("event: big\n") + (breaks + 1) * strlen("data: \n") + (len - breaks) + 1);
    CHECK(memcmp(b.base + b.len - 2, "\n\n", 2) == 0);

    /* All line breaks: the worst case for the reservation. */
    memset(data, '\n', len);
    buf_clear(&b);
    CHECK(sse_frame_body(&b, "", 0, -1, data, len) == 0);
    CHECK(b.len == (len + 1) * strlen("data: \n") + 1);
    memset(data, '\r', len);
    buf_clear(&b);
    CHECK(sse_frame_body(&b, "", 0, -1, data, len) == 0);
    CHECK(b.len == (len + 1) * strlen("data: \n") + 1);
    for (size_t i = 0; i < len; i += 2) {
        data[i] = '\r';
        data[i + 1] = '\n';
    }
    buf_clear(&b);
    CHECK(sse_frame_body(&b, "", 0, -1, data, len) == 0);
    CHECK(b.len == (len / 2 + 1) * strlen("data: \n") + 1);
    free(data);
    buf_free(&b);
}

static void test_frame_id_retry_comment(void)
{
    buf_t b = BUF_INIT;
    CHECK(sse_frame_id(&b, "1732190000000-0", 15) == 0);
    CHECK_MEM(b.base, b.len, "id: 1732190000000-0\n");
    buf_clear(&b);
    CHECK(sse_frame_id(&b, "", 0) == 0);
    CHECK_MEM(b.base, b.len, "id: \n");
    buf_clear(&b);
    CHECK(sse_frame_id(&b, NULL, 0) == 0);
    CHECK_MEM(b.base, b.len, "id: \n");
    buf_clear(&b);
    CHECK(sse_frame_id(&b, "1.AAAAAA~0-0", 12) == 0);
    CHECK_MEM(b.base, b.len, "id: 1.AAAAAA~0-0\n");

    buf_clear(&b);
    buf_append_str(&b, "keep");
    CHECK(sse_frame_id(&b, "a\nb", 3) == -EINVAL);
    CHECK(sse_frame_id(&b, "a\rb", 3) == -EINVAL);
    CHECK(sse_frame_id(&b, "a\0b", 3) == -EINVAL);
    CHECK(sse_frame_id(&b, "\n", 1) == -EINVAL);
    CHECK_MEM(b.base, b.len, "keep");

    buf_clear(&b);
    CHECK(sse_frame_retry(&b, 5000) == 0);
    CHECK_MEM(b.base, b.len, "retry: 5000\n\n");
    buf_clear(&b);
    CHECK(sse_frame_retry(&b, 0) == 0);
    CHECK_MEM(b.base, b.len, "retry: 0\n\n");
    buf_clear(&b);
    CHECK(sse_frame_retry(&b, LONG_MAX) == 0);
    CHECK_MEM(b.base, b.len, "retry: 9223372036854775807\n\n");
    buf_clear(&b);
    buf_append_str(&b, "keep");
    CHECK(sse_frame_retry(&b, -1) == -EINVAL);
    CHECK(sse_frame_retry(&b, LONG_MIN) == -EINVAL);
    CHECK_MEM(b.base, b.len, "keep");

    buf_clear(&b);
    CHECK(sse_frame_comment(&b, "hi", 2) == 0);
    CHECK_MEM(b.base, b.len, ": hi\n\n");
    buf_clear(&b);
    CHECK(sse_frame_comment(&b, "", 0) == 0);
    CHECK_MEM(b.base, b.len, ": \n\n");
    buf_clear(&b);
    CHECK(sse_frame_comment(&b, "a\r\nb\0c\rd\ne", 10) == 0);
    CHECK_MEM(b.base, b.len, ": a  b c d e\n\n");
    buf_clear(&b);
    CHECK(sse_frame_comment(&b, "\ndata: evil\n", 12) == 0);
    CHECK_MEM(b.base, b.len, ":  data: evil \n\n");
    buf_free(&b);
}

/* ----------------------------------------------------------- parser cases */

static void test_parse_basics(void)
{
    CHECK_PARSE("data: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("data: a\ndata: b\n\n", "[t= id= r=-1 d=a\\nb]");
    CHECK_PARSE("data:x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("data:  x\n\n", "[t= id= r=-1 d= x]");
    CHECK_PARSE("data:\n\n", "[t= id= r=-1 d=]");
    CHECK_PARSE("data: \n\n", "[t= id= r=-1 d=]");
    CHECK_PARSE("data: a:b: c\n\n", "[t= id= r=-1 d=a:b: c]");
    CHECK_PARSE("data: a\0b\n\n", "[t= id= r=-1 d=a\\0b]");
    CHECK_PARSE("data: \xff\xfe\n\n", "[t= id= r=-1 d=\\xff\\xfe]");
    /* A line without a colon is a field with an empty value. */
    CHECK_PARSE("data\n\n", "[t= id= r=-1 d=]");
    CHECK_PARSE("data\ndata\n\n", "[t= id= r=-1 d=\\n]");
    CHECK_PARSE("data: a\ndata\n\n", "[t= id= r=-1 d=a\\n]");
    /* Field names are exact and case-sensitive; unknown fields are ignored. */
    CHECK_PARSE("Data: x\n\n", "");
    CHECK_PARSE("data : x\n\n", "");
    CHECK_PARSE(" data: x\n\n", "");
    CHECK_PARSE("foo: bar\ndata: x\n\n", "[t= id= r=-1 d=x]");
    /* An event is only dispatched by a blank line. */
    CHECK_PARSE("data: x\n", "");
    CHECK_PARSE("data: x", "");
    CHECK_PARSE("", "");
    CHECK_PARSE("\n\n\n", "");
    CHECK_PARSE("data: a\n\ndata: b\n\n", "[t= id= r=-1 d=a][t= id= r=-1 d=b]");
}

static void test_parse_line_ends(void)
{
    CHECK_PARSE("data: a\r\n\r\n", "[t= id= r=-1 d=a]");
    CHECK_PARSE("data: a\r\r", "[t= id= r=-1 d=a]");
    CHECK_PARSE("data: a\rdata: b\r\r", "[t= id= r=-1 d=a\\nb]");
    CHECK_PARSE("data: a\r\ndata: b\r\n\r\n", "[t= id= r=-1 d=a\\nb]");
    CHECK_PARSE("data: a\n\r\n", "[t= id= r=-1 d=a]");
    CHECK_PARSE("data: a\r\n\n", "[t= id= r=-1 d=a]");
    CHECK_PARSE("data: a\n\r", "[t= id= r=-1 d=a]");
    /* LF CR is two line ends (a blank line), CR LF one. */
    CHECK_PARSE("data: a\n\rdata: b\n\n", "[t= id= r=-1 d=a][t= id= r=-1 d=b]");
    CHECK_PARSE("data: a\r\ndata: b\n\n", "[t= id= r=-1 d=a\\nb]");
    CHECK_PARSE("data: a\r\r\ndata: b\r\n\r\n", "[t= id= r=-1 d=a][t= id= r=-1 d=b]");

    /* A CR ending one chunk and an LF starting the next are one line end. */
    buf_t log = BUF_INIT;
    sse_parser_t p;
    sse_parser_init(&p, on_event_log, &log);
    const char *chunks[] = {"data: a\r", "\ndata: b\r", "\n\r", "\n"};
    for (size_t i = 0; i < 4; i++)
        CHECK(sse_parser_feed(&p, chunks[i], strlen(chunks[i])) == 0);
    CHECK_MEM(log.base, log.len, "[t= id= r=-1 d=a\\nb]");
    /* A CR ending a chunk before a non-LF byte is a line end by itself. */
    buf_clear(&log);
    const char *chunks2[] = {"data: c\r", "data: d\r", "\r"};
    for (size_t i = 0; i < 3; i++)
        CHECK(sse_parser_feed(&p, chunks2[i], strlen(chunks2[i])) == 0);
    CHECK_MEM(log.base, log.len, "[t= id= r=-1 d=c\\nd]");
    /* Empty feeds change nothing, even between a CR and its LF. */
    buf_clear(&log);
    CHECK(sse_parser_feed(&p, "data: e\r", 8) == 0);
    CHECK(sse_parser_feed(&p, "", 0) == 0);
    CHECK(sse_parser_feed(&p, NULL, 0) == 0);
    CHECK(sse_parser_feed(&p, "\n\n", 2) == 0);
    CHECK_MEM(log.base, log.len, "[t= id= r=-1 d=e]");
    sse_parser_free(&p);
    buf_free(&log);
}

static void test_parse_bom(void)
{
    CHECK_PARSE("\xEF\xBB\xBF"
                "data: x\n\n",
                "[t= id= r=-1 d=x]");
    CHECK_PARSE("\xEF\xBB\xBF"
                "\n"
                "data: x\n\n",
                "[t= id= r=-1 d=x]");
    CHECK_PARSE("\xEF\xBB\xBF"
                ":c\n",
                "(c=c)");
    /* Only one BOM is skipped: a second makes the first field unknown. */
    CHECK_PARSE("\xEF\xBB\xBF\xEF\xBB\xBF"
                "data: x\n\n",
                "");
    CHECK_PARSE("\xEF\xBB\xBF\xEF\xBB\xBF"
                "data: x\n\ndata: y\n\n",
                "[t= id= r=-1 d=y]");
    /* A partial BOM is ordinary bytes of the first line. */
    CHECK_PARSE("\xEF\xBB"
                "data: x\n\n",
                "");
    CHECK_PARSE("\xEF"
                "data: x\n\n",
                "");
    CHECK_PARSE("\xEF\n"
                "data: x\n\n",
                "[t= id= r=-1 d=x]");
    CHECK_PARSE("\xEF\xBB\r"
                "data: x\n\n",
                "[t= id= r=-1 d=x]");
    CHECK_PARSE("\xEF\xBB\xBE"
                "\ndata: x\n\n",
                "[t= id= r=-1 d=x]");
    /* A BOM later in the stream is data. */
    CHECK_PARSE("data: x\n\n\xEF\xBB\xBF"
                "data: y\n\n",
                "[t= id= r=-1 d=x]");
    CHECK_PARSE("data: \xEF\xBB\xBF\n\n", "[t= id= r=-1 d=\\xef\\xbb\\xbf]");
    /* Without a BOM the first byte is kept. */
    CHECK_PARSE("data: x\n\n", "[t= id= r=-1 d=x]");
}

static void test_parse_comments(void)
{
    CHECK_PARSE(":hello\n", "(c=hello)");
    CHECK_PARSE(": hello\n", "(c=hello)");
    CHECK_PARSE(":  two\n", "(c= two)");
    CHECK_PARSE(":\n", "(c=)");
    CHECK_PARSE(": \n", "(c=)");
    CHECK_PARSE("::\r", "(c=:)");
    CHECK_PARSE(": data: x\n\n", "(c=data: x)");
    CHECK_PARSE("data: a\n: c\ndata: b\n\n", "(c=c)[t= id= r=-1 d=a\\nb]");
    CHECK_PARSE(": a\n\n: b\n\n", "(c=a)(c=b)");

    /* Without on_comment, comments are skipped silently. */
    buf_t log = BUF_INIT;
    parse_chunked(": x\ndata: y\n\n", 13, 0, 1, 0, &log);
    CHECK_MEM(log.base, log.len, "[t= id= r=-1 d=y]");
    buf_free(&log);
}

static void test_parse_fields(void)
{
    /* event sets the type of one event only. */
    CHECK_PARSE("event: foo\ndata: x\n\ndata: y\n\n", "[t=foo id= r=-1 d=x][t= id= r=-1 d=y]");
    CHECK_PARSE("event: a\nevent: b\ndata: x\n\n", "[t=b id= r=-1 d=x]");
    CHECK_PARSE("event:  sp\ndata: x\n\n", "[t= sp id= r=-1 d=x]");
    CHECK_PARSE("event\ndata: x\n\n", "[t= id= r=-1 d=x]");
    /* An event without data is not dispatched, and its type is dropped. */
    CHECK_PARSE("event: foo\n\n", "");
    CHECK_PARSE("event: foo\n\ndata: x\n\n", "[t= id= r=-1 d=x]");
    /* id persists across events; "id" alone empties it; NUL voids it. */
    CHECK_PARSE("id: 5\ndata: a\n\ndata: b\n\n", "[t= id=5 r=-1 d=a][t= id=5 r=-1 d=b]");
    CHECK_PARSE("id: 1\n\ndata: x\n\n", "[t= id=1 r=-1 d=x]");
    CHECK_PARSE("id: 1\ndata: a\n\nid\ndata: b\n\n", "[t= id=1 r=-1 d=a][t= id= r=-1 d=b]");
    CHECK_PARSE("id: 1\ndata: a\n\nid:\ndata: b\n\n", "[t= id=1 r=-1 d=a][t= id= r=-1 d=b]");
    CHECK_PARSE("id: 1\nid: a\0b\ndata: x\n\n", "[t= id=1 r=-1 d=x]");
    CHECK_PARSE("id: \0\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("id: 1\nid: 2\ndata: x\n\n", "[t= id=2 r=-1 d=x]");
    CHECK_PARSE("id:  sp\ndata: x\n\n", "[t= id= sp r=-1 d=x]");
    /* retry: only ASCII digits count, and only for this event. */
    CHECK_PARSE("retry: 100\ndata: x\n\n", "[t= id= r=100 d=x]");
    CHECK_PARSE("retry: 100\ndata: x\n\ndata: y\n\n", "[t= id= r=100 d=x][t= id= r=-1 d=y]");
    CHECK_PARSE("retry: 1\n\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: 007\ndata: x\n\n", "[t= id= r=7 d=x]");
    CHECK_PARSE("retry: 0\ndata: x\n\n", "[t= id= r=0 d=x]");
    CHECK_PARSE("retry:5\ndata: x\n\n", "[t= id= r=5 d=x]");
    CHECK_PARSE("retry: 10a\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: -5\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: +5\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: 5 \ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry:  5\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: 1.5\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: 0x10\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry:\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry\ndata: x\n\n", "[t= id= r=-1 d=x]");
    CHECK_PARSE("retry: 1\nretry: x\ndata: x\n\n", "[t= id= r=1 d=x]");
    CHECK_PARSE("retry: 1\nretry: 2\ndata: x\n\n", "[t= id= r=2 d=x]");
    CHECK_PARSE("retry: 99999999999999999999999\ndata: x\n\n", "[t= id= r=9223372036854775807 d=x]");
    CHECK_PARSE("event: e\nid: 9\nretry: 3\ndata: a\ndata: b\n\n", "[t=e id=9 r=3 d=a\\nb]");
}

static void test_parse_long_line(void)
{
    size_t len = 100000;
    char *s = malloc(len + 16);
    memcpy(s, "data: ", 6);
    for (size_t i = 6; i < len; i++)
        s[i] = (char)('a' + i % 26);
    memcpy(s + len, "\n\n", 2);
    buf_t log = BUF_INIT;
    parse_chunked(s, len + 2, 3, 7, 1, &log);
    buf_t want = BUF_INIT;
    log_event(&want, "", 0, "", 0, -1, s + 6, len - 6);
    CHECK(log.len == want.len && memcmp(log.base, want.base, want.len) == 0);
    buf_free(&log);
    buf_free(&want);
    free(s);
}

/* ---------------------------------------------------------- property test */

/* Returns the next value of a xorshift64* generator (deterministic, so a
 * failure reproduces). */
static uint64_t next_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

/* Returns a random value below n. */
static size_t rand_below(uint64_t *state, size_t n)
{
    return (size_t)(next_rand(state) % n);
}

/* Appends a random payload rich in the bytes that matter to the framing:
 * CR, LF, CRLF, NUL, ':', spaces, BOM bytes and field-looking text. */
static void random_payload(uint64_t *st, buf_t *out)
{
    static const char *const pieces[] = {
        "\r",       "\n",           "\r\n",        "\n\r",     "\r\r",
        "\n\n",     "\0",           ":",           " ",        ": ",
        "data: x",  "id: evil",     "event: evil", "retry: 1", "\ndata: injected\n\n",
        "\r\n\r\n", "\xEF\xBB\xBF", "id",          "data",
    };
    size_t n = rand_below(st, 10) == 0 ? 0 : rand_below(st, rand_below(st, 8) == 0 ? 300 : 24);
    for (size_t i = 0; i < n; i++) {
        size_t k = rand_below(st, 4);
        if (k == 0) {
            const char *p = pieces[rand_below(st, sizeof(pieces) / sizeof(pieces[0]))];
            buf_append(out, p, *p ? strlen(p) : 1);
        } else if (k == 1) {
            buf_append_char(out, (char)rand_below(st, 256));
        } else {
            buf_append_char(out, (char)('a' + rand_below(st, 26)));
        }
    }
}

/* Appends random text with no CR, LF or NUL (a valid type or id). */
static void random_token(uint64_t *st, buf_t *out, size_t max)
{
    size_t n = rand_below(st, max + 1);
    for (size_t i = 0; i < n; i++) {
        char c = (char)rand_below(st, 256);
        if (c == '\r' || c == '\n' || c == '\0')
            c = rand_below(st, 2) ? ':' : ' ';
        buf_append_char(out, c);
    }
}

/* Appends text with every CR and CRLF turned into LF: what a client parser
 * reproduces from a framed payload. */
static void normalise_breaks(const char *s, size_t len, buf_t *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            buf_append_char(out, '\n');
            if (i + 1 < len && s[i + 1] == '\n')
                i++;
        } else {
            buf_append_char(out, s[i]);
        }
    }
}

/* Returns nonzero when every line of a framed stream is blank or starts
 * with a field the framer writes, and no CR appears: nothing a payload
 * holds became a field of its own. */
static int stream_is_well_formed(const char *s, size_t len)
{
    static const char *const starts[] = {"id: ", "event: ", "retry: ", "data: ", ": "};
    if (memchr(s, '\r', len) != NULL)
        return 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(s + i, '\n', len - i);
        if (nl == NULL)
            return 0;
        size_t n = (size_t)(nl - (s + i));
        int ok = n == 0;
        for (size_t k = 0; k < 5 && !ok; k++)
            ok = n >= strlen(starts[k]) && memcmp(s + i, starts[k], strlen(starts[k])) == 0;
        if (!ok)
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Rewrites each LF line end of a framed stream (which holds no CR) as LF,
 * CRLF or CR at random; a CR is never followed by an LF that would fuse
 * with it, so the rewritten stream means the same. */
static void vary_line_ends(uint64_t *st, const char *s, size_t len, buf_t *out)
{
    int prev_lone_cr = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\n') {
            buf_append_char(out, s[i]);
            prev_lone_cr = 0;
            continue;
        }
        size_t k = rand_below(st, 3);
        if (k == 0 && prev_lone_cr)
            k = 1 + rand_below(st, 2);
        prev_lone_cr = k == 2;
        buf_append_str(out, k == 0 ? "\n" : k == 1 ? "\r\n" : "\r");
    }
}

/* Feeds a stream to a parser in random chunk sizes (some empty); returns
 * the log. */
static void parse_random_chunks(uint64_t *st, const char *s, size_t len, buf_t *log)
{
    sse_parser_t p;
    sse_parser_init(&p, on_event_log, log);
    p.on_comment = on_comment_log;
    size_t off = 0;
    int ok = 1;
    while (off < len) {
        size_t max = rand_below(st, 4) == 0 ? 2 : 40;
        size_t n = rand_below(st, max);
        if (n > len - off)
            n = len - off;
        char *chunk = malloc(n ? n : 1);
        memcpy(chunk, s + off, n);
        ok &= sse_parser_feed(&p, chunk, n) == 0;
        free(chunk);
        off += n;
    }
    CHECK(ok);
    sse_parser_free(&p);
}

/* Builds a random stream of frames (ids, bodies, comments, retry frames)
 * with the log a client must produce, then checks the parser agrees under
 * random chunking, with LF line ends and with mixed CR/CRLF/LF. */
static int round_trip_once(uint64_t *st, unsigned iteration)
{
    buf_t stream = BUF_INIT, want = BUF_INIT, payload = BUF_INIT, type = BUF_INIT, id = BUF_INIT,
          last_id = BUF_INIT, norm = BUF_INIT, got = BUF_INIT, varied = BUF_INIT;
    int ok = 1;
    if (rand_below(st, 4) == 0)
        buf_append(&stream, "\xEF\xBB\xBF", 3);
    size_t nframes = 1 + rand_below(st, 12);
    for (size_t f = 0; f < nframes; f++) {
        size_t extra = rand_below(st, 6);
        if (extra == 0) {
            buf_t text = BUF_INIT;
            random_payload(st, &text);
            ok &= sse_frame_comment(&stream, text.base ? text.base : "", text.len) == 0;
            for (size_t i = 0; i < text.len; i++)
                if (text.base[i] == '\r' || text.base[i] == '\n' || text.base[i] == '\0')
                    text.base[i] = ' ';
            log_comment(&want, text.base ? text.base : "", text.len);
            buf_free(&text);
        } else if (extra == 1) {
            ok &= sse_frame_retry(&stream, (long)rand_below(st, 100000)) == 0;
        }
        buf_clear(&payload);
        buf_clear(&type);
        random_payload(st, &payload);
        if (rand_below(st, 2))
            random_token(st, &type, 12);
        if (rand_below(st, 4) != 0) {
            buf_clear(&id);
            random_token(st, &id, 20);
            ok &= sse_frame_id(&stream, id.base ? id.base : "", id.len) == 0;
            buf_clear(&last_id);
            buf_append(&last_id, id.base ? id.base : "", id.len);
        }
        long retry = rand_below(st, 4) == 0 ? (long)rand_below(st, 1000000) : -1;
        ok &= sse_frame_body(&stream, type.base ? type.base : "", type.len, retry,
                             payload.base ? payload.base : "", payload.len) == 0;
        buf_clear(&norm);
        normalise_breaks(payload.base ? payload.base : "", payload.len, &norm);
        log_event(&want, type.base ? type.base : "", type.len, last_id.base ? last_id.base : "", last_id.len,
                  retry, norm.base ? norm.base : "", norm.len);
    }
    size_t body = stream.len >= 3 && memcmp(stream.base, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    ok &= stream_is_well_formed(stream.base + body, stream.len - body);

    parse_random_chunks(st, stream.base, stream.len, &got);
    ok &= got.len == want.len && memcmp(got.base, want.base, want.len) == 0;

    vary_line_ends(st, stream.base, stream.len, &varied);
    buf_clear(&got);
    parse_random_chunks(st, varied.base, varied.len, &got);
    ok &= got.len == want.len && memcmp(got.base, want.base, want.len) == 0;

    if (!ok)
        fprintf(stderr, "round trip %u failed\n  want %s\n  got  %s\n", iteration, want.base,
                got.base ? got.base : "");
    buf_free(&stream);
    buf_free(&want);
    buf_free(&payload);
    buf_free(&type);
    buf_free(&id);
    buf_free(&last_id);
    buf_free(&norm);
    buf_free(&got);
    buf_free(&varied);
    return ok;
}

/* Runs many random streams; the seed can be changed with SSEHUB_TEST_SEED. */
static void test_round_trip_property(void)
{
    uint64_t state = 0xC0FFEE1234567ULL;
    const char *seed = getenv("SSEHUB_TEST_SEED");
    if (seed)
        state = strtoull(seed, NULL, 0) | 1;
    int ok = 1;
    for (unsigned i = 0; i < 5000 && ok; i++)
        ok = round_trip_once(&state, i);
    CHECK(ok);
}

int main(void)
{
    test_frame_body();
    test_frame_body_large();
    test_frame_id_retry_comment();
    test_parse_basics();
    test_parse_line_ends();
    test_parse_bom();
    test_parse_comments();
    test_parse_fields();
    test_parse_long_line();
    test_round_trip_property();
    return CHECK_DONE();
}
