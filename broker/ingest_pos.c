/* Ingest positions "M.n" and sync messages "M tag": text forms and order. */
#include "broker/ingest_pos.h"

#include "common/text.h"

#include <stdio.h>

/* Parses a canonical decimal below INGEST_POS_MAX; returns 0 or -1. */
static int parse_number(const char *s, size_t len, uint64_t *out)
{
    return text_parse_u64(s, len, out) == 0 && *out < INGEST_POS_MAX ? 0 : -1;
}

size_t ingest_pos_format(char out[INGEST_POS_TEXT_MAX], ingest_pos_t pos)
{
    int n = snprintf(out, INGEST_POS_TEXT_MAX, "%llu.%llu", (unsigned long long)pos.mark,
                     (unsigned long long)pos.n);
    return n < 0 ? 0 : (size_t)n;
}

int ingest_pos_parse(const char *s, size_t len, ingest_pos_t *out)
{
    size_t dot = 0;
    while (dot < len && s[dot] != '.')
        dot++;
    ingest_pos_t p;
    if (dot == len || parse_number(s, dot, &p.mark) != 0 ||
        parse_number(s + dot + 1, len - dot - 1, &p.n) != 0)
        return -1;
    *out = p;
    return 0;
}

int ingest_pos_cmp(ingest_pos_t a, ingest_pos_t b)
{
    if (a.mark != b.mark)
        return a.mark < b.mark ? -1 : 1;
    if (a.n != b.n)
        return a.n < b.n ? -1 : 1;
    return 0;
}

int ingest_sync_parse(const char *s, size_t len, uint64_t *mark, const char **tag, size_t *tag_len)
{
    size_t sp = 0;
    while (sp < len && s[sp] != ' ')
        sp++;
    uint64_t m;
    if (sp == len || parse_number(s, sp, &m) != 0 || m == 0)
        return -1;
    *mark = m;
    *tag = s + sp + 1;
    *tag_len = len - sp - 1;
    return 0;
}
