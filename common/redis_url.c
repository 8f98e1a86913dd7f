/* Parsing of redis://[[user]:password@]host[:port][,host[:port]...][/db] and
 * redis-sentinel://[[user]:password@]host[:port][,...]/master[/db] URLs into
 * the parts hiredis needs. Strict: anything not understood is an error, never ignored.
 * Messages never quote the password. */
#include "common/redis_url.h"

#include "common/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_DEFAULT_PORT 6379
#define SENTINEL_DEFAULT_PORT 26379

/* ---- small helpers ------------------------------------------------------ */

/* Formats a message into err (when there is room) and returns -1 so callers
 * can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated); returns 0, or -1 for a
 * bad escape, an encoded NUL or a result that does not fit in outlen. */
static int percent_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = text_hex_value(s[i + 1]), l = text_hex_value(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses s[0..n) as a decimal number in min..max; returns 0 and sets *out,
 * or -1 when it is empty, has a non-digit or is out of range. */
static int parse_decimal(const char *s, size_t n, long min, long max, long *out)
{
    long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    if (v < min)
        return -1;
    *out = v;
    return 0;
}

/* ---- the parts of the URL ----------------------------------------------- */

/* Splits "[user:]password" (or ":password") into out->user and
 * out->password, percent-decoded; returns 0 or -1 with a message. */
static int parse_userinfo(const char *s, size_t n, redis_url_t *out, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    const char *pw = colon ? colon + 1 : s; /* a lone part is the AUTH password */
    size_t ulen = colon ? (size_t)(colon - s) : 0;
    if (n == 0)
        return fail(err, errlen, "empty credentials before '@'");
    if (percent_decode(s, ulen, out->user, sizeof out->user) != 0)
        return fail(err, errlen, "user name has a bad %%-escape, a %%00 or is too long");
    if (percent_decode(pw, (size_t)(s + n - pw), out->password, sizeof out->password) != 0)
        return fail(err, errlen, "password has a bad %%-escape, a %%00 or is too long");
    return 0;
}

/* Returns nonzero when c may appear in a host name or IPv4 address. */
static int is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Returns nonzero when c may appear inside an IPv6 literal's brackets. */
static int is_v6_char(char c)
{
    return isxdigit((unsigned char)c) || c == ':' || c == '.';
}

/* Copies s[0..n) (not empty) into dst of size dstlen after checking every
 * byte with ok(); returns 0 or -1 with a message naming `what`. */
static int store_name(const char *what, const char *s, size_t n, int (*ok)(char), char *dst, size_t dstlen,
                      char *err, size_t errlen)
{
    if (n >= dstlen)
        return fail(err, errlen, "%s is longer than %zu bytes", what, dstlen - 1);
    for (size_t i = 0; i < n; i++)
        if (!ok(s[i]))
            return fail(err, errlen, "%s \"%.*s\" has an invalid character", what, (int)n, s);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Copies s[0..n) into out->host after checking every byte with ok();
 * returns 0 or -1 with a message. */
static int store_host(const char *s, size_t n, int (*ok)(char), redis_url_t *out, char *err,
                      size_t errlen)
{
    if (n == 0)
        return fail(err, errlen, "host is empty");
    return store_name("host", s, n, ok, out->host, sizeof out->host, err, errlen);
}

/* Parses the port text after ':'; returns 0 or -1 with a message. */
static int parse_port(const char *s, size_t n, redis_url_t *out, char *err, size_t errlen)
{
    long v;
    if (parse_decimal(s, n, 1, 65535, &v) != 0)
        return fail(err, errlen, "port \"%.*s\" is not a number in 1..65535", (int)n, s);
    out->port = (int)v;
    return 0;
}

/* Parses "host[:port]" or "[v6][:port]"; returns 0 or -1 with a message. */
static int parse_hostport(const char *s, size_t n, redis_url_t *out, char *err, size_t errlen)
{
    const char *end = s + n, *colon;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return fail(err, errlen, "IPv6 address is missing its closing ']'");
        if (store_host(s + 1, (size_t)(close - s - 1), is_v6_char, out, err, errlen) != 0)
            return -1;
        if (close + 1 == end)
            return 0;
        if (close[1] != ':')
            return fail(err, errlen, "unexpected text after ']'");
        return parse_port(close + 2, (size_t)(end - close - 2), out, err, errlen);
    }
    colon = memchr(s, ':', n);
    if (colon == NULL)
        return store_host(s, n, is_host_char, out, err, errlen);
    if (memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
        return fail(err, errlen, "IPv6 addresses must be written in brackets, e.g. [::1]");
    if (store_host(s, (size_t)(colon - s), is_host_char, out, err, errlen) != 0)
        return -1;
    return parse_port(colon + 1, (size_t)(end - colon - 1), out, err, errlen);
}

/* Parses the database number after '/' ("" means 0); returns 0 or -1. */
static int parse_db(const char *s, redis_url_t *out, char *err, size_t errlen)
{
    long v;
    size_t n = strlen(s);
    if (n == 0)
        return 0;
    if (parse_decimal(s, n, 0, 2147483647L, &v) != 0)
        return fail(err, errlen, "database \"%.*s\" is not a number in 0..2147483647",
                    (int)(n > 32 ? 32 : n), s);
    out->db = (int)v;
    return 0;
}

/* ---- entry point -------------------------------------------------------- */

/* Checks the scheme and returns a pointer just after "redis://" or
 * "redis-sentinel://" (*sentinel set), or NULL with a message (rediss://
 * gets its own, since users will try it). */
static const char *skip_scheme(const char *url, int *sentinel, char *err, size_t errlen)
{
    *sentinel = 0;
    if (strncasecmp(url, "rediss://", 9) == 0) {
        fail(err, errlen, "rediss:// (TLS to Redis) is not supported by hiredis 0.14; "
                          "use redis:// or a local TLS tunnel");
        return NULL;
    }
    if (strncasecmp(url, "redis-sentinel://", 17) == 0) {
        *sentinel = 1;
        return url + 17;
    }
    if (strncasecmp(url, "redis://", 8) != 0) {
        fail(err, errlen, "URL must start with redis:// (or redis-sentinel://)");
        return NULL;
    }
    return url + 8;
}

/* Parses the comma-separated "host[:port]" list s[0..n) into out->hosts
 * (and the first into out->host/port); returns 0 or -1 with a message. */
static int parse_hosts(const char *s, size_t n, int default_port, redis_url_t *out, char *err, size_t errlen)
{
    const char *end = s + n;
    for (const char *item = s;;) {
        const char *comma = memchr(item, ',', (size_t)(end - item));
        const char *iend = comma ? comma : end;
        if (out->nhosts == REDIS_URL_MAX_HOSTS)
            return fail(err, errlen, "more than %d hosts", REDIS_URL_MAX_HOSTS);
        redis_url_t one = {.port = default_port};
        if (parse_hostport(item, (size_t)(iend - item), &one, err, errlen) != 0)
            return -1;
        redis_addr_t *a = &out->hosts[out->nhosts++];
        memcpy(a->host, one.host, sizeof a->host);
        a->port = one.port;
        if (comma == NULL)
            break;
        item = comma + 1;
    }
    memcpy(out->host, out->hosts[0].host, sizeof out->host);
    out->port = out->hosts[0].port;
    return 0;
}

/* The "/master[/db]" path of a Sentinel URL; returns 0 or -1. */
static int parse_sentinel_path(const char *s, redis_url_t *out, char *err, size_t errlen)
{
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0)
        return fail(err, errlen,
                    "redis-sentinel:// needs the master's name: redis-sentinel://host:26379/mymaster");
    if (store_name("master name", s, n, is_host_char, out->sentinel_master, sizeof out->sentinel_master, err,
                   errlen) != 0)
        return -1;
    return slash ? parse_db(slash + 1, out, err, errlen) : 0;
}

int redis_url_parse(const char *url, redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = REDIS_DEFAULT_PORT;
    if (url == NULL)
        return fail(err, errlen, "URL is missing");
    int sentinel;
    const char *p = skip_scheme(url, &sentinel, err, errlen);
    if (p == NULL)
        return -1;
    if (strpbrk(p, "?#") != NULL)
        return fail(err, errlen, "query strings and fragments (?...#...) are not supported");
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return fail(err, errlen, "URL contains a space or control character");
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *c = p; c < end; c++) /* the last '@' ends the credentials */
        if (*c == '@')
            at = c;
    if (at != NULL && parse_userinfo(p, (size_t)(at - p), out, err, errlen) != 0)
        return -1;
    const char *host = at ? at + 1 : p;
    if (parse_hosts(host, (size_t)(end - host), sentinel ? SENTINEL_DEFAULT_PORT : REDIS_DEFAULT_PORT, out,
                    err, errlen) != 0)
        return -1;
    if (sentinel)
        return parse_sentinel_path(slash ? slash + 1 : "", out, err, errlen);
    return slash ? parse_db(slash + 1, out, err, errlen) : 0;
}

int redis_url_set_sentinel_password(redis_url_t *u, const char *password, char *err, size_t errlen)
{
    if (password[0] == '\0') {
        u->sentinel_password[0] = '\0';
        return 0;
    }
    if (u->sentinel_master[0] == '\0')
        return fail(err, errlen, "redis_sentinel_password is only for a redis-sentinel:// redis_url");
    if (strlen(password) >= sizeof(u->sentinel_password))
        return fail(err, errlen, "redis_sentinel_password is longer than %zu bytes",
                    sizeof(u->sentinel_password) - 1);
    snprintf(u->sentinel_password, sizeof(u->sentinel_password), "%s", password);
    return 0;
}
