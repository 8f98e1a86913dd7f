/* Growable byte buffers. */
#include "common/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->base, cap);
    if (p == NULL)
        return -ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -ENOMEM;
    if (n)
        memcpy(b->base + b->len, p, n);
    b->len += n;
    b->base[b->len] = '\0';
    return 0;
}

int buf_append_str(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_char(buf_t *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    if (buf_reserve(b, (size_t)n) != 0)
        return -ENOMEM;
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

void buf_truncate(buf_t *b, size_t len)
{
    b->len = len;
    if (b->base)
        b->base[len] = '\0';
}

void buf_clear(buf_t *b)
{
    b->len = 0;
    if (b->base)
        b->base[0] = '\0';
}

void buf_free(buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}
