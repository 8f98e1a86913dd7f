/* Helpers shared by ssehub-loadgen and ssehub-benchpub. */
#include "tests/bench/bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ clocks -- */

int64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ----------------------------------------------------- option values -- */

int bench_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int bench_parse_double(const char *s, double max, double *out)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0) || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* --------------------------------------------------------- templates -- */

int bench_template_check(const char *tmpl)
{
    int conversions = 0;
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '%') {
            p++;
        } else if (p[1] == 'd') {
            conversions++;
            p++;
        } else {
            return -EINVAL;
        }
    }
    return conversions <= 1 ? 0 : -EINVAL;
}

int bench_template_expand(const char *tmpl, long n, char *out, size_t cap)
{
    char num[24];
    int num_len = snprintf(num, sizeof(num), "%ld", n);
    size_t len = 0;
    for (const char *p = tmpl; *p; p++) {
        const char *piece = p;
        size_t piece_len = 1;
        if (p[0] == '%' && p[1] == 'd') {
            piece = num;
            piece_len = (size_t)num_len;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            p++;
        }
        if (len + piece_len >= cap)
            return -ENAMETOOLONG;
        memcpy(out + len, piece, piece_len);
        len += piece_len;
    }
    if (cap == 0)
        return -ENAMETOOLONG;
    out[len] = '\0';
    return (int)len;
}

/* ------------------------------------------------ loopback addresses -- */

/* Parses a loopback host name into addr; returns 0 or -EINVAL. */
static int parse_loopback_host(const char *host, struct in_addr *addr)
{
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, addr) != 1)
        return -EINVAL;
    return (ntohl(addr->s_addr) >> 24) == 127 ? 0 : -EINVAL;
}

/* Splits "HOST:PORT" (PORT optional when dflt_port > 0) into addr; returns
 * 0 or -EINVAL. */
static int parse_host_and_port(const char *s, size_t len, int dflt_port, struct sockaddr_in *addr)
{
    char host[64];
    long port = dflt_port;
    const char *colon = memchr(s, ':', len);
    size_t host_len = colon ? (size_t)(colon - s) : len;
    if (host_len == 0 || host_len >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    if (colon) {
        char num[8];
        size_t num_len = len - host_len - 1;
        if (num_len == 0 || num_len >= sizeof(num))
            return -EINVAL;
        memcpy(num, colon + 1, num_len);
        num[num_len] = '\0';
        if (bench_parse_long(num, 1, 65535, &port) != 0)
            return -EINVAL;
    } else if (dflt_port <= 0) {
        return -EINVAL;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return parse_loopback_host(host, &addr->sin_addr);
}

int bench_parse_hostport(const char *s, struct sockaddr_in *out)
{
    return parse_host_and_port(s, strlen(s), 0, out);
}

int bench_parse_url(const char *url, bench_url_t *out)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -EINVAL;
    const char *authority = url + sizeof(scheme) - 1;
    const char *slash = strchr(authority, '/');
    size_t auth_len = slash ? (size_t)(slash - authority) : strlen(authority);
    if (auth_len >= sizeof(out->host) || parse_host_and_port(authority, auth_len, 80, &out->addr) != 0)
        return -EINVAL;
    memcpy(out->host, authority, auth_len);
    out->host[auth_len] = '\0';
    const char *path = slash ? slash : "/";
    if (strlen(path) >= sizeof(out->path) || strpbrk(path, " \r\n") != NULL)
        return -EINVAL;
    strcpy(out->path, path);
    return 0;
}

/* ------------------------------------------------------------- JSON -- */

void bench_json_string(FILE *f, const char *s)
{
    if (s == NULL || *s == '\0') {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}
