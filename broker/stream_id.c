/* Redis Stream entry IDs ("<ms>-<seq>"): strict parsing, formatting,
 * ordering and the successor of an id. */
#include "broker/stream_id.h"

#include "common/text.h"

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
    if (text_parse_u64(s, dash, &id.ms) != 0 ||
        text_parse_u64(s + dash + 1, len - dash - 1, &id.seq) != 0)
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
