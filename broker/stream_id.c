/* Redis Stream entry IDs ("<ms>-<seq>"): strict parsing, formatting,
 * ordering and the successor of an id. */
#include "broker/stream_id.h"

#include "common/text.h"

/* Digits of UINT64_MAX (18446744073709551615). */

/* Parses one decimal part: 1..20 digits, no leading zero unless the part is
 * "0", no overflow. Returns 0 and sets *out, or -1, so the caller can reject
 * any text Redis would not have written. */
static int parse_u64_decimal(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > TEXT_U64_DIGITS || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Returns 0 only for the exact text form Redis writes, so every id has one
 * accepted spelling and junk never passes for a position. */
int stream_id_parse(const char *s, size_t len, stream_id_t *out)
{
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len)
        return -1;
    stream_id_t id;
    if (parse_u64_decimal(s, dash, &id.ms) != 0 ||
        parse_u64_decimal(s + dash + 1, len - dash - 1, &id.seq) != 0)
        return -1;
    *out = id;
    return 0;
}

/* Returns the length of the text form written into buf (NUL added), so
 * callers can frame it without a strlen. */
size_t stream_id_format(stream_id_t id, char *buf)
{
    size_t n = text_format_u64(id.ms, buf);
    buf[n++] = '-';
    n += text_format_u64(id.seq, buf + n);
    buf[n] = '\0';
    return n;
}

/* Returns the sign of a - b in stream order (ms first, then seq). */
int stream_id_cmp(stream_id_t a, stream_id_t b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

/* Returns the smallest id after id, the exclusive start of a replay. The
 * largest id, UINT64_MAX-UINT64_MAX, has no successor and is returned
 * unchanged: wrapping to 0-0 would make "after this id" mean "everything". */
stream_id_t stream_id_next(stream_id_t id)
{
    if (id.seq != UINT64_MAX)
        return (stream_id_t){id.ms, id.seq + 1};
    if (id.ms != UINT64_MAX)
        return (stream_id_t){id.ms + 1, 0};
    return id;
}
