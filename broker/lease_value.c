/* The leader lease's value "host:pid:epoch" and its timing rules. */
#include "broker/lease_value.h"

#include "common/text.h"

#include <errno.h>
#include <string.h>

/* Parses a canonical decimal in 1..10^18-1 (well below 2^63); returns 0
 * or -1. */
static int parse_positive(const char *s, size_t len, uint64_t *out)
{
    return text_parse_u64(s, len, out) == 0 && *out > 0 && *out < 1000000000000000000ULL ? 0 : -1;
}

int lease_value_format(buf_t *out, const char *host, long pid, uint64_t epoch)
{
    size_t start = out->len;
    for (const char *p = host; *p; p++) {
        char c = (*p == ':' || *p <= ' ' || *p > '~') ? '_' : *p;
        if (buf_append_char(out, c) != 0)
            goto oom;
    }
    if (buf_printf(out, ":%ld:%llu", pid, (unsigned long long)epoch) != 0)
        goto oom;
    return 0;
oom:
    buf_truncate(out, start);
    return -ENOMEM;
}

int lease_value_parse(const char *s, size_t len, lease_holder_t *out)
{
    const char *end = s + len, *c2 = NULL, *c1 = NULL;
    for (const char *p = end; p > s; p--) {
        if (p[-1] != ':')
            continue;
        if (c2 == NULL) {
            c2 = p - 1;
        } else {
            c1 = p - 1;
            break;
        }
    }
    uint64_t pid, epoch;
    if (c1 == NULL || parse_positive(c1 + 1, (size_t)(c2 - c1 - 1), &pid) != 0 ||
        parse_positive(c2 + 1, (size_t)(end - c2 - 1), &epoch) != 0 || pid > 0x7fffffff)
        return -1;
    out->host = s;
    out->host_len = (size_t)(c1 - s);
    out->pid = (long)pid;
    out->epoch = epoch;
    return 0;
}

long lease_margin_ms(long lease_ms)
{
    return lease_ms / 5 > 0 ? lease_ms / 5 : 1;
}

long lease_renew_ms(long lease_ms)
{
    return lease_ms / 3 > 0 ? lease_ms / 3 : 1;
}

double lease_valid_until(double sent, long lease_ms)
{
    return sent + (double)(lease_ms - lease_margin_ms(lease_ms)) / 1000.0;
}

long lease_poll_ms(long lease_ms, long long pttl_ms)
{
    long every = lease_ms / 4 > 0 ? lease_ms / 4 : 1;
    if (pttl_ms < 0 || pttl_ms + 2 >= every)
        return every;
    return (long)pttl_ms + 2;
}
