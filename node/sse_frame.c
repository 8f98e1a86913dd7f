/* SSE wire framing (the bytes a node writes once per event) and the
 * streaming client-side parser that reads them back exactly as a browser's
 * EventSource does (WHATWG HTML, "server-sent events"). */
#include "node/sse_frame.h"

#include "common/text.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* ---------------------------------------------------------------- framing */

/* Enough for the decimal digits of any long. */

/* Returns nonzero when s holds CR, LF or NUL: the bytes that would end a
 * field early or, for an id, make the client ignore it. */
static int has_break_or_nul(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

/* Returns how many times c occurs in s; memchr keeps this a fast scan for
 * the large, break-free payloads that are the common case. */
static size_t count_byte(const char *s, size_t len, char c)
{
    size_t n = 0;
    const char *end = s + len, *q;
    while (s < end && (q = memchr(s, c, (size_t)(end - s))) != NULL) {
        n++;
        s = q + 1;
    }
    return n;
}

/* Returns the first c in [s, end), or end when there is none. */
static const char *find_byte(const char *s, const char *end, char c)
{
    const char *q = memchr(s, c, (size_t)(end - s));
    return q ? q : end;
}

/* Copies n bytes to p; returns the position after them, so writes chain. */
static char *put(char *p, const void *s, size_t n)
{
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* Writes one "data: " line per line of data at p, splitting at CR, LF and
 * CRLF exactly where a client parser splits; returns the end of the output.
 * The caller has reserved the room. */
static char *put_data_lines(char *p, const char *data, size_t len)
{
    const char *s = data, *end = data + len;
    const char *cr = find_byte(s, end, '\r'), *lf = find_byte(s, end, '\n');
    for (;;) {
        const char *brk = cr < lf ? cr : lf;
        p = put(p, "data: ", 6);
        p = put(p, s, (size_t)(brk - s));
        *p++ = '\n';
        if (brk == end)
            return p;
        s = brk + 1;
        if (brk == cr && s < end && *s == '\n')
            s++;
        if (cr < s)
            cr = find_byte(s, end, '\r');
        if (lf < s)
            lf = find_byte(s, end, '\n');
    }
}

/* Returns 0, -EINVAL for a type with CR, LF or NUL, or -ENOMEM; on error
 * out is unchanged. Room is reserved once, for the worst case (a CRLF
 * counted as two breaks), so the write pass needs no checks. */
int sse_frame_body(buf_t *out, const char *type, size_t type_len, long retry, const char *data,
                   size_t data_len)
{
    if (has_break_or_nul(type, type_len))
        return -EINVAL;
    if (data_len == 0)
        data = ""; /* NULL is allowed for empty data; pointer math on it is not */
    char retry_text[TEXT_U64_DIGITS];
    size_t retry_len = retry >= 0 ? text_format_u64((uint64_t)retry, retry_text) : 0;
    size_t max_lines = 1 + count_byte(data, data_len, '\r') + count_byte(data, data_len, '\n');
    size_t need = (type_len ? sizeof("event: \n") - 1 + type_len : 0) +
                  (retry >= 0 ? sizeof("retry: \n") - 1 + retry_len : 0) +
                  max_lines * (sizeof("data: \n") - 1) + data_len + 1;
    if (buf_reserve(out, need) != 0)
        return -ENOMEM;
    char *p = out->base + out->len;
    if (type_len) {
        p = put(p, "event: ", 7);
        p = put(p, type, type_len);
        *p++ = '\n';
    }
    if (retry >= 0) {
        p = put(p, "retry: ", 7);
        p = put(p, retry_text, retry_len);
        *p++ = '\n';
    }
    p = put_data_lines(p, data, data_len);
    *p++ = '\n';
    *p = '\0';
    out->len = (size_t)(p - out->base);
    return 0;
}

/* Returns 0, -EINVAL for an id with CR, LF or NUL (it would break the
 * frame or be ignored by the client), or -ENOMEM. */
int sse_frame_id(buf_t *out, const char *id, size_t len)
{
    if (has_break_or_nul(id, len))
        return -EINVAL;
    if (buf_reserve(out, 4 + len + 1) != 0)
        return -ENOMEM;
    char *p = put(out->base + out->len, "id: ", 4);
    p = put(p, id, len);
    *p++ = '\n';
    *p = '\0';
    out->len = (size_t)(p - out->base);
    return 0;
}

/* Returns 0, -EINVAL for ms < 0 (the client would ignore it), or -ENOMEM. */
int sse_frame_retry(buf_t *out, long ms)
{
    if (ms < 0)
        return -EINVAL;
    char text[TEXT_U64_DIGITS];
    size_t n = text_format_u64((uint64_t)ms, text);
    if (buf_reserve(out, 7 + n + 2) != 0)
        return -ENOMEM;
    char *p = put(out->base + out->len, "retry: ", 7);
    p = put(p, text, n);
    p = put(p, "\n\n", 2);
    *p = '\0';
    out->len = (size_t)(p - out->base);
    return 0;
}

/* Returns 0 or -ENOMEM; CR, LF and NUL become spaces so the text stays one
 * comment line whatever it holds. */
int sse_frame_comment(buf_t *out, const char *text, size_t len)
{
    if (buf_reserve(out, 2 + len + 2) != 0)
        return -ENOMEM;
    char *p = put(out->base + out->len, ": ", 2);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\r' || c == '\n' || c == '\0')
            c = ' ';
        *p++ = c;
    }
    p = put(p, "\n\n", 2);
    *p = '\0';
    out->len = (size_t)(p - out->base);
    return 0;
}

/* ----------------------------------------------------------------- parser */

/* The parser works on bytes and passes field values through undecoded. A
 * browser also replaces invalid UTF-8 with U+FFFD, but that never moves a
 * line, field or event boundary: CR, LF and ':' are ASCII and the decoder
 * never swallows an ASCII byte. */

static const unsigned char UTF8_BOM[3] = {0xEF, 0xBB, 0xBF};

/* Starts a parser at the beginning of a stream: no BOM seen yet, empty
 * buffers, no retry; returns nothing because it cannot fail. */
void sse_parser_init(sse_parser_t *p, void (*on_event)(void *, const sse_event_t *), void *ctx)
{
    memset(p, 0, sizeof(*p));
    p->on_event = on_event;
    p->ctx = ctx;
    p->retry = -1;
}

/* Releases the parser's buffers; returns nothing, and a pending event is
 * dropped as the spec drops one cut off by the end of the stream. */
void sse_parser_free(sse_parser_t *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->type);
    buf_free(&p->id);
}

/* Returns a buffer's bytes, or "" for one never written, so events always
 * carry valid pointers. */
static const char *buf_bytes(const buf_t *b)
{
    return b->base ? b->base : "";
}

/* Returns nonzero when a field name of n bytes is exactly the literal. */
static int field_is(const char *name, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(name, lit, n) == 0;
}

/* Returns the reconnection time a retry value gives, or -1 when the value
 * is not all ASCII digits and the spec says to ignore it. Values beyond
 * LONG_MAX saturate. */
static long parse_retry(const char *v, size_t n)
{
    if (n == 0)
        return -1;
    long ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        long d = v[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
    }
    return ms;
}

/* Dispatches the event collected since the last blank line, as the spec's
 * "dispatch the event" step does; returns nothing because it cannot fail.
 * The last event id is kept; data, type and retry start over. */
static void dispatch_event(sse_parser_t *p)
{
    if (p->has_data) {
        p->data.len--; /* every data field appended a "\n"; drop the last */
        p->data.base[p->data.len] = '\0';
        sse_event_t ev = {
            .data = buf_bytes(&p->data),
            .data_len = p->data.len,
            .type = buf_bytes(&p->type),
            .type_len = p->type.len,
            .id = buf_bytes(&p->id),
            .id_len = p->id.len,
            .retry = p->retry,
        };
        if (p->on_event)
            p->on_event(p->ctx, &ev);
    }
    buf_clear(&p->data);
    buf_clear(&p->type);
    p->retry = -1;
    p->has_data = 0;
}

/* Applies one field; returns 0 or -ENOMEM. Unknown fields are ignored, as
 * the spec says. */
static int process_field(sse_parser_t *p, const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
    if (field_is(name, name_len, "data")) {
        if (buf_append(&p->data, value, value_len) != 0 || buf_append_char(&p->data, '\n') != 0)
            return -ENOMEM;
        p->has_data = 1;
    } else if (field_is(name, name_len, "event")) {
        buf_clear(&p->type);
        return buf_append(&p->type, value, value_len);
    } else if (field_is(name, name_len, "id")) {
        if (memchr(value, '\0', value_len) != NULL)
            return 0;
        buf_clear(&p->id);
        return buf_append(&p->id, value, value_len);
    } else if (field_is(name, name_len, "retry")) {
        long ms = parse_retry(value, value_len);
        if (ms >= 0)
            p->retry = ms;
    }
    return 0;
}

/* Interprets one complete line (without its line end); returns 0 or
 * -ENOMEM. */
static int process_line(sse_parser_t *p, const char *line, size_t len)
{
    if (len == 0) {
        dispatch_event(p);
        return 0;
    }
    if (line[0] == ':') {
        size_t skip = (len > 1 && line[1] == ' ') ? 2 : 1;
        if (p->on_comment)
            p->on_comment(p->ctx, line + skip, len - skip);
        return 0;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return process_field(p, line, len, "", 0);
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    return process_field(p, line, name_len, value, value_len);
}

/* Consumes the bytes of a leading UTF-8 BOM, however the chunks split it,
 * keeping a partial match in p->line and setting *used to the bytes taken;
 * returns 0 or -ENOMEM. On a mismatch the kept bytes are ordinary line
 * content (none is CR or LF) and parsing goes on from the mismatching byte. */
static int skip_bom(sse_parser_t *p, const char *bytes, size_t len, size_t *used)
{
    size_t i = 0;
    while (!p->bom_checked && i < len) {
        if ((unsigned char)bytes[i] != UTF8_BOM[p->line.len]) {
            p->bom_checked = 1;
            break;
        }
        if (buf_append_char(&p->line, bytes[i]) != 0)
            return -ENOMEM;
        i++;
        if (p->line.len == sizeof(UTF8_BOM)) {
            buf_clear(&p->line);
            p->bom_checked = 1;
        }
    }
    *used = i;
    return 0;
}

/* Returns 0, or -ENOMEM (the parser is then unusable and must be freed).
 * Complete lines inside a chunk are processed in place; only a line split
 * across chunks is copied. Event and comment pointers passed to the
 * callbacks are valid only during the call. */
int sse_parser_feed(sse_parser_t *p, const char *bytes, size_t len)
{
    size_t i = 0;
    if (!p->bom_checked && skip_bom(p, bytes, len, &i) != 0)
        return -ENOMEM;
    while (i < len) {
        if (p->last_was_cr) {
            p->last_was_cr = 0;
            if (bytes[i] == '\n') { /* the LF of a CRLF split across chunks */
                i++;
                continue;
            }
        }
        size_t end = i;
        while (end < len && bytes[end] != '\r' && bytes[end] != '\n')
            end++;
        if (end == len)
            return buf_append(&p->line, bytes + i, len - i);
        int rc;
        if (p->line.len == 0) {
            rc = process_line(p, bytes + i, end - i);
        } else {
            rc = buf_append(&p->line, bytes + i, end - i);
            if (rc == 0)
                rc = process_line(p, p->line.base, p->line.len);
            buf_clear(&p->line);
        }
        if (rc != 0)
            return rc;
        p->last_was_cr = bytes[end] == '\r';
        i = end + 1;
    }
    return 0;
}
