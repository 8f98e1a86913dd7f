/* What both benchmark clients share: clocks, option values, "%d"
 * templates, loopback-only addresses and http:// URLs, JSON strings. */
#ifndef SSEHUB_BENCH_COMMON_H
#define SSEHUB_BENCH_COMMON_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------ clocks -- */

/* Returns CLOCK_MONOTONIC in nanoseconds: for deadlines and windows. */
int64_t bench_mono_ns(void);
/* Returns CLOCK_REALTIME in nanoseconds: what publishers stamp in payloads,
 * so latency is comparable across processes. */
int64_t bench_real_ns(void);

/* ----------------------------------------------------- option values -- */

/* Parses a whole decimal integer in [min, max]; returns 0 or -EINVAL. */
int bench_parse_long(const char *s, long min, long max, long *out);
/* Parses a non-negative decimal number (fractions allowed) up to max;
 * returns 0 or -EINVAL. */
int bench_parse_double(const char *s, double max, double *out);

/* --------------------------------------------------------- templates -- */

/* Returns 0 when the template holds at most one "%d" and no other "%"
 * conversion ("%%" is a literal percent sign), else -EINVAL. */
int bench_template_check(const char *tmpl);
/* Writes the template with "%d" replaced by n into out (NUL-terminated);
 * returns the length, or -ENAMETOOLONG when it does not fit in cap. */
int bench_template_expand(const char *tmpl, long n, char *out, size_t cap);

/* ------------------------------------------------ loopback addresses -- */

/* Parses "HOST:PORT" where HOST is a dotted IPv4 address in 127.0.0.0/8 or
 * "localhost"; returns 0, or -EINVAL for anything else (the benchmarks
 * never leave the machine). */
int bench_parse_hostport(const char *s, struct sockaddr_in *out);

/* A parsed http:// URL on a loopback address. */
typedef struct bench_url {
    struct sockaddr_in addr; /* where to connect */
    char host[64];           /* the Host header value: "host[:port]" */
    char path[2048];         /* path and query, at least "/" */
} bench_url_t;

/* Parses "http://HOST[:PORT][/path]"; returns 0, or -EINVAL (other
 * schemes, non-loopback hosts, too long). */
int bench_parse_url(const char *url, bench_url_t *out);

/* ------------------------------------------------------------- JSON -- */

/* Writes s as a JSON string literal, or null when s is NULL or empty. */
void bench_json_string(FILE *f, const char *s);

#endif
