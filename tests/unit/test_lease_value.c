/* Unit tests for broker/lease_value.c: the leader lease's value
 * "host:pid:epoch" (format, strict parsing) and its timing rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/lease_value.h"
#include "tests/unit/check.h"

/* Parses an exact-size heap copy of s, so ASan catches reads past len. */
static int parse_exact(const char *s, lease_holder_t *out)
{
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    int rc = lease_value_parse(copy, len, out);
    if (rc == 0)
        out->host = out->host - copy + s; /* point into s, which outlives the copy */
    free(copy);
    return rc;
}

static void test_format(void)
{
    buf_t b = BUF_INIT;
    CHECK(lease_value_format(&b, "broker-1.example", 4242, 17) == 0);
    CHECK_MEM(b.base, b.len, "broker-1.example:4242:17");
    buf_clear(&b);
    /* a colon, a space or a control byte in the host cannot break parsing */
    CHECK(lease_value_format(&b, "a:b c\n", 1, 1795248212080ULL) == 0);
    CHECK_MEM(b.base, b.len, "a_b_c_:1:1795248212080");
    buf_clear(&b);
    CHECK(lease_value_format(&b, "", 7, 9) == 0);
    CHECK_MEM(b.base, b.len, ":7:9");
    buf_free(&b);
}

static void test_parse_valid(void)
{
    lease_holder_t h;
    CHECK(parse_exact("vm:26339:1795248212080", &h) == 0);
    CHECK_MEM(h.host, h.host_len, "vm");
    CHECK(h.pid == 26339 && h.epoch == 1795248212080ULL);
    /* splits at the last two colons: an IPv6-looking host stays whole */
    CHECK(parse_exact("fe80::1:12:3", &h) == 0);
    CHECK_MEM(h.host, h.host_len, "fe80::1");
    CHECK(h.pid == 12 && h.epoch == 3);
    CHECK(parse_exact(":1:1", &h) == 0 && h.host_len == 0);
    /* only len bytes are read */
    CHECK(lease_value_parse("h:5:6xyz", 5, &h) == 0 && h.pid == 5 && h.epoch == 6);
    /* round trip */
    buf_t b = BUF_INIT;
    lease_value_format(&b, "node-7", 123456, 999999999999ULL);
    CHECK(lease_value_parse(b.base, b.len, &h) == 0 && h.pid == 123456 && h.epoch == 999999999999ULL);
    CHECK_MEM(h.host, h.host_len, "node-7");
    buf_free(&b);
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        "host",
        "host:1",
        "host::1",
        "host:1:",
        "host:0:1",
        "host:1:0",
        "host:01:1",
        "host:1:01",
        "host:-1:1",
        "host:1:x",
        "host:x:1",
        "host:1:1 ",
        "host: 1:1",
        "host:1:1234567890123456789",
        "host:99999999999:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lease_holder_t h = {.pid = -5};
        int rc = parse_exact(bad[i], &h);
        CHECK(rc == -1 && h.pid == -5);
        if (rc != -1)
            fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
    }
}

static void test_timing(void)
{
    CHECK(lease_margin_ms(5000) == 1000);
    CHECK(lease_margin_ms(1000) == 200);
    CHECK(lease_margin_ms(3) == 1);
    CHECK(lease_renew_ms(5000) == 1666);
    CHECK(lease_renew_ms(1000) == 333);
    CHECK(lease_renew_ms(2) == 1);
    /* the leader's deadline counts from the renewal's send time, less the margin */
    CHECK(lease_valid_until(100.0, 1000) > 100.79 && lease_valid_until(100.0, 1000) < 100.81);
    CHECK(lease_valid_until(100.0, 5000) > 103.99 && lease_valid_until(100.0, 5000) < 104.01);
    /* two renewals can fail before the leader stops */
    CHECK(2 * lease_renew_ms(1000) < 1000 - lease_margin_ms(1000));
    CHECK(2 * lease_renew_ms(100) < 100 - lease_margin_ms(100));
    /* standbys look just after the holder's expiry, and at least every lease/4 */
    CHECK(lease_poll_ms(1000, 100) == 102);
    CHECK(lease_poll_ms(1000, 0) == 2);
    CHECK(lease_poll_ms(1000, 900) == 250);
    CHECK(lease_poll_ms(1000, 248) == 250);
    CHECK(lease_poll_ms(1000, -1) == 250);
    CHECK(lease_poll_ms(1000, -2) == 250);
    CHECK(lease_poll_ms(2, 5) == 1);
}

int main(void)
{
    test_format();
    test_parse_valid();
    test_parse_invalid();
    test_timing();
    return CHECK_DONE();
}
