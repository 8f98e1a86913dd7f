/* Topic names and the Redis key and channel names derived from them
 * (DESIGN §3): validation, percent-escaping of %, { and }, and the inverse. */
#include "broker/stream_keys.h"

#include <errno.h>
#include <string.h>

/* ---- validation ---------------------------------------------------------- */

/* Returns the length (2..4) of the well-formed UTF-8 sequence at s (s[0] >=
 * 0x80) and its code point in *cp, or 0 when it is not well-formed: bad lead
 * byte, missing continuation, overlong form, surrogate, or above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t avail, unsigned *cp)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    unsigned v = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* Returns nonzero for C0 controls, DEL and C1 controls, which would break
 * SSE framing, logs or terminals. */
static int is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

int topic_validate(const char *topic, size_t len, size_t max_len)
{
    if (len == 0)
        return TOPIC_EMPTY;
    if (len > max_len)
        return TOPIC_TOO_LONG;
    const unsigned char *s = (const unsigned char *)topic;
    for (size_t i = 0; i < len;) {
        unsigned cp = s[i];
        size_t n = 1;
        if (cp >= 0x80 && (n = utf8_sequence(s + i, len - i, &cp)) == 0)
            return TOPIC_BAD_UTF8;
        if (is_control(cp))
            return TOPIC_CONTROL_CHAR;
        i += n;
    }
    return TOPIC_OK;
}

const char *topic_error_name(int err)
{
    switch (err) {
    case TOPIC_OK:
        return "ok";
    case TOPIC_EMPTY:
        return "empty";
    case TOPIC_TOO_LONG:
        return "too_long";
    case TOPIC_BAD_UTF8:
        return "bad_utf8";
    case TOPIC_CONTROL_CHAR:
        return "control_char";
    default:
        return "unknown";
    }
}

/* ---- names --------------------------------------------------------------- */

/* Returns the escape for a topic byte that must not appear raw in a name
 * (it would break the hash tag or the escaping itself), or NULL. */
static const char *escape_of(char c)
{
    switch (c) {
    case '%':
        return "%25";
    case '{':
        return "%7B";
    case '}':
        return "%7D";
    default:
        return NULL;
    }
}

int topic_key(buf_t *out, const char *prefix, const char *topic, size_t len, enum topic_key_kind kind)
{
    size_t start = out->len;
    int r = buf_append_str(out, prefix);
    r = r ? r : buf_append_char(out, '{');
    size_t run = 0; /* bytes copied in one append between escapes */
    for (size_t i = 0; r == 0 && i < len; i++) {
        const char *esc = escape_of(topic[i]);
        if (esc == NULL) {
            run++;
            continue;
        }
        r = buf_append(out, topic + i - run, run);
        r = r ? r : buf_append(out, esc, 3);
        run = 0;
    }
    r = r ? r : buf_append(out, topic + len - run, run);
    char tail[3] = {'}', ':', (char)kind};
    r = r ? r : buf_append(out, tail, sizeof tail);
    if (r != 0) {
        buf_truncate(out, start);
        return -ENOMEM;
    }
    return 0;
}

/* Returns the byte an escape at s (3 bytes available) stands for, or -1
 * when it is not one topic_key writes (only upper-case %25, %7B, %7D). */
static int unescape_at(const char *s)
{
    if (memcmp(s, "%25", 3) == 0)
        return '%';
    if (memcmp(s, "%7B", 3) == 0)
        return '{';
    if (memcmp(s, "%7D", 3) == 0)
        return '}';
    return -1;
}

/* Appends the unescaped form of an escaped topic; returns 0, or -1 when it
 * holds a raw brace, a bad escape, or memory ran out. */
static int unescape_topic(buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '{' || c == '}')
            return -1;
        if (c == '%') {
            if (len - i < 3 || (c = unescape_at(s + i)) < 0)
                return -1;
            i += 2;
        }
        if (buf_append_char(out, (char)c) != 0)
            return -1;
    }
    return 0;
}

int topic_from_key(buf_t *out, const char *prefix, const char *name, size_t len)
{
    size_t plen = strlen(prefix);
    /* prefix + "{" + at least one byte + "}:" + kind */
    if (len < plen + 5 || memcmp(name, prefix, plen) != 0 || name[plen] != '{')
        return -1;
    char kind = name[len - 1];
    if (name[len - 3] != '}' || name[len - 2] != ':')
        return -1;
    if (kind != TOPIC_KEY_STREAM && kind != TOPIC_KEY_LIVE && kind != TOPIC_KEY_META)
        return -1;
    size_t start = out->len;
    if (unescape_topic(out, name + plen + 1, len - plen - 4) != 0) {
        buf_truncate(out, start);
        return -1;
    }
    return kind;
}
