/* Fuzz target for SSE framing (node/sse_frame.c). The first byte picks a
 * mode. Even: a frame round trip -- the rest is "type NUL id NUL data"
 * (fewer NULs leave the leading parts empty), framed by sse_frame_comment,
 * sse_frame_id and sse_frame_body and read back by sse_parser in chunks:
 * exactly one event with the same type, id and retry, and the data with
 * every CR and CRLF turned into LF. Odd: the rest is a raw byte stream fed
 * to sse_parser whole and in pseudo-random chunks; both must report the
 * same events and comments, and no field may hold a line break. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "common/buf.h"
#include "node/sse_frame.h"
#include "tests/fuzz/fuzz.h"

/* ---- what the parser reported ------------------------------------------- */

/* Appends a length and the bytes, so a record reads back unambiguously. */
static void put_field(buf_t *b, const char *s, size_t len)
{
    FUZZ_CHECK(buf_printf(b, "%zu:", len) == 0 && buf_append(b, s, len) == 0);
}

static int has_byte(const char *s, size_t len, char c)
{
    return len > 0 && memchr(s, c, len) != NULL;
}

/* Records an event after checking what no event can hold. */
static void on_event(void *ctx, const sse_event_t *ev)
{
    FUZZ_CHECK(ev->data != NULL && ev->type != NULL && ev->id != NULL);
    FUZZ_CHECK(!has_byte(ev->data, ev->data_len, '\r'));
    FUZZ_CHECK(!has_byte(ev->type, ev->type_len, '\r') && !has_byte(ev->type, ev->type_len, '\n'));
    FUZZ_CHECK(!has_byte(ev->id, ev->id_len, '\r') && !has_byte(ev->id, ev->id_len, '\n'));
    FUZZ_CHECK(!has_byte(ev->id, ev->id_len, '\0'));
    FUZZ_CHECK(ev->retry >= -1);
    buf_t *log = ctx;
    FUZZ_CHECK(buf_append_char(log, 'E') == 0);
    put_field(log, ev->data, ev->data_len);
    put_field(log, ev->type, ev->type_len);
    put_field(log, ev->id, ev->id_len);
    FUZZ_CHECK(buf_printf(log, "%ld;", ev->retry) == 0);
}

static void on_comment(void *ctx, const char *text, size_t len)
{
    FUZZ_CHECK(!has_byte(text, len, '\r') && !has_byte(text, len, '\n'));
    FUZZ_CHECK(buf_append_char(ctx, 'C') == 0);
    put_field(ctx, text, len);
}

/* Returns the next value of a xorshift32 generator (never 0 from non-0). */
static uint32_t next_rand(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

/* Parses bytes[0..len) in chunks of 1..64 bytes drawn from seed (the whole
 * at once when seed is 0), recording events and comments into *log. */
static void parse_chunked(const char *bytes, size_t len, uint32_t seed, buf_t *log)
{
    sse_parser_t p;
    sse_parser_init(&p, on_event, log);
    p.on_comment = on_comment;
    uint32_t state = seed | 1;
    for (size_t i = 0; i < len || i == 0;) {
        size_t n = seed == 0 ? len : 1 + next_rand(&state) % 64;
        if (n > len - i)
            n = len - i;
        char *chunk = fuzz_copy((const uint8_t *)bytes + i, n); /* exact size: ASan sees over-reads */
        FUZZ_CHECK(sse_parser_feed(&p, chunk, n) == 0);
        free(chunk);
        i += n;
        if (n == 0)
            break;
    }
    sse_parser_free(&p);
}

/* ---- mode 1: raw streams -------------------------------------------------- */

static void check_raw_stream(const char *bytes, size_t len, uint32_t seed)
{
    buf_t whole = BUF_INIT, chunked = BUF_INIT;
    parse_chunked(bytes, len, 0, &whole);
    parse_chunked(bytes, len, seed, &chunked);
    FUZZ_CHECK(whole.len == chunked.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.base, chunked.base, whole.len) == 0);
    buf_free(&whole);
    buf_free(&chunked);
}

/* ---- mode 0: frame round trips -------------------------------------------- */

/* Returns the data as the client must see it: CR and CRLF become LF. */
static void normalise_breaks(const char *s, size_t len, buf_t *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
            i++;
        FUZZ_CHECK(buf_append_char(out, s[i] == '\r' ? '\n' : s[i]) == 0);
    }
}

/* Returns the comment text as the client must see it: CR, LF and NUL
 * become spaces. */
static void blank_breaks(const char *s, size_t len, buf_t *out)
{
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(buf_append_char(out, s[i] == '\r' || s[i] == '\n' || s[i] == '\0' ? ' ' : s[i]) == 0);
}

/* Cuts s at its first NUL: the part before goes to *head, the rest stays. */
static void cut_at_nul(const char **s, size_t *len, const char **head, size_t *head_len)
{
    const char *nul = memchr(*s, '\0', *len);
    *head = *s;
    *head_len = 0;
    if (nul == NULL)
        return;
    *head_len = (size_t)(nul - *s);
    *len -= *head_len + 1;
    *s = nul + 1;
}

static void check_round_trip(uint8_t flags, const char *rest, size_t len)
{
    const char *type, *id, *data = rest;
    size_t type_len, id_len, data_len = len;
    cut_at_nul(&data, &data_len, &type, &type_len);
    cut_at_nul(&data, &data_len, &id, &id_len);
    long retry = !(flags & 2) ? -1 : (flags & 4) ? LONG_MAX : (long)flags * 997;

    buf_t frame = BUF_INIT;
    FUZZ_CHECK(sse_frame_comment(&frame, data, data_len) == 0);
    size_t before = frame.len;
    int id_bad = has_byte(id, id_len, '\r') || has_byte(id, id_len, '\n');
    int type_bad = has_byte(type, type_len, '\r') || has_byte(type, type_len, '\n');
    FUZZ_CHECK(sse_frame_id(&frame, id, id_len) == (id_bad ? -EINVAL : 0));
    FUZZ_CHECK(frame.len == before + (id_bad ? 0 : sizeof("id: \n") - 1 + id_len));
    before = frame.len;
    FUZZ_CHECK(sse_frame_body(&frame, type, type_len, retry, data, data_len) == (type_bad ? -EINVAL : 0));
    FUZZ_CHECK(!type_bad || frame.len == before); /* refused: nothing written */
    if (id_bad || type_bad) {
        buf_free(&frame);
        return;
    }

    buf_t want = BUF_INIT, got = BUF_INIT, text = BUF_INIT;
    blank_breaks(data, data_len, &text);
    FUZZ_CHECK(buf_append_char(&want, 'C') == 0);
    put_field(&want, text.base ? text.base : "", text.len);
    buf_clear(&text);
    normalise_breaks(data, data_len, &text);
    FUZZ_CHECK(buf_append_char(&want, 'E') == 0);
    put_field(&want, text.base ? text.base : "", text.len);
    put_field(&want, type, type_len);
    put_field(&want, id, id_len);
    FUZZ_CHECK(buf_printf(&want, "%ld;", retry) == 0);
    parse_chunked(frame.base, frame.len, flags >> 3, &got);
    FUZZ_CHECK(got.len == want.len && memcmp(got.base, want.base, want.len) == 0);
    buf_free(&frame);
    buf_free(&want);
    buf_free(&got);
    buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *rest = fuzz_copy(data + 1, size - 1);
    if (data[0] & 1)
        check_raw_stream(rest, size - 1, (uint32_t)data[0] << 8 | (uint32_t)size);
    else
        check_round_trip(data[0], rest, size - 1);
    free(rest);
    return 0;
}
