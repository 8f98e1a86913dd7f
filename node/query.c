/* URL query strings: decoding and iteration. */
#include "node/query.h"

#include <string.h>

/* Returns the value of a hex digit, or -1. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int percent_decode(buf_t *out, const char *s, size_t len, int plus_is_space)
{
    if (buf_reserve(out, len) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out->base[out->len++] = c;
    }
    out->base[out->len] = '\0';
    return 0;
}

int query_next(const char **cur, const char *end, buf_t *name, buf_t *value)
{
    while (*cur < end) {
        const char *p = *cur;
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        *cur = amp != NULL ? amp + 1 : end;
        if (stop == p)
            continue;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *name_end = eq != NULL ? eq : stop;
        buf_clear(name);
        buf_clear(value);
        if (percent_decode(name, p, (size_t)(name_end - p), 1) != 0)
            return -1;
        if (eq != NULL && percent_decode(value, eq + 1, (size_t)(stop - eq - 1), 1) != 0)
            return -1;
        return 1;
    }
    return 0;
}
