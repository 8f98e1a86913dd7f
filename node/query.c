/* URL query strings: decoding and iteration. */
#include "node/query.h"

#include <string.h>

#include "common/text.h"

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
        if (text_percent_decode(name, p, (size_t)(name_end - p), 1) != 0)
            return -1;
        if (eq != NULL && text_percent_decode(value, eq + 1, (size_t)(stop - eq - 1), 1) != 0)
            return -1;
        return 1;
    }
    return 0;
}
