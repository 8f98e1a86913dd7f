/* Unit tests for redis_url_parse: accepted forms, defaults, percent-decoding
 * of credentials, and a message for every kind of rejection. */
#include "common/redis_url.h"

#include "check.h"

#include <string.h>

/* Returns 0 after checking that url parses to the given parts. */
static int expect_ok(const char *url, const char *host, int port, const char *user,
                     const char *password, int db)
{
    redis_url_t u;
    char err[256] = "";
    int rc = redis_url_parse(url, &u, err, sizeof err);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  %s: unexpected error: %s\n", url, err);
        return 0;
    }
    CHECK(strcmp(u.host, host) == 0);
    CHECK(u.port == port);
    CHECK(strcmp(u.user, user) == 0);
    CHECK(strcmp(u.password, password) == 0);
    CHECK(u.db == db);
    return 0;
}

/* Returns 0 after checking that url is rejected with a message holding
 * `needle`. */
static int expect_bad(const char *url, const char *needle)
{
    redis_url_t u;
    char err[256] = "";
    CHECK(redis_url_parse(url, &u, err, sizeof err) == -1);
    CHECK(err[0] != '\0' && strstr(err, needle) != NULL);
    if (strstr(err, needle) == NULL)
        fprintf(stderr, "  %s: message [%s] lacks [%s]\n", url ? url : "(null)", err, needle);
    return 0;
}

/* Checks the forms hiredis users write, and the defaults. */
static void test_good(void)
{
    expect_ok("redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", 0);
    expect_ok("redis://localhost", "localhost", 6379, "", "", 0);
    expect_ok("REDIS://redis-1.example.com:7000", "redis-1.example.com", 7000, "", "", 0);
    expect_ok("redis://h/", "h", 6379, "", "", 0);
    expect_ok("redis://h:1/15", "h", 1, "", "", 15);
    expect_ok("redis://h:65535/2147483647", "h", 65535, "", "", 2147483647);
    expect_ok("redis://[::1]:6380/2", "::1", 6380, "", "", 2);
    expect_ok("redis://[::1]", "::1", 6379, "", "", 0);
    expect_ok("redis://[2001:db8::7]:1", "2001:db8::7", 1, "", "", 0);
}

/* Checks user/password splitting and percent-decoding. */
static void test_credentials(void)
{
    expect_ok("redis://:secret@h:7000/3", "h", 7000, "", "secret", 3);
    expect_ok("redis://onlypass@h", "h", 6379, "", "onlypass", 0);
    expect_ok("redis://alice:p%40ss%3Aw%2F@h/1", "h", 6379, "alice", "p@ss:w/", 1);
    expect_ok("redis://al%69ce:x@h", "h", 6379, "alice", "x", 0);
    expect_ok("redis://u:p@ss@h", "h", 6379, "u", "p@ss", 0);
    expect_ok("redis://u:a:b@h", "h", 6379, "u", "a:b", 0);
    expect_ok("redis://u:@h", "h", 6379, "u", "", 0);
    expect_ok("redis://:@h", "h", 6379, "", "", 0);
}

/* Checks that each kind of junk is rejected with a message saying why. */
static void test_bad(void)
{
    expect_bad(NULL, "missing");
    expect_bad("", "redis://");
    expect_bad("http://h", "redis://");
    expect_bad("redis:/h", "redis://");
    expect_bad("rediss://h:6380", "TLS");
    expect_bad("redis://", "host is empty");
    expect_bad("redis://:6379", "host is empty");
    expect_bad("redis://u:p@", "host is empty");
    expect_bad("redis://h:0", "port");
    expect_bad("redis://h:65536", "port");
    expect_bad("redis://h:abc", "port");
    expect_bad("redis://h:", "port");
    expect_bad("redis://h:-1", "port");
    expect_bad("redis://h:99999999999999999999999", "port");
    expect_bad("redis://h/abc", "database");
    expect_bad("redis://h/-1", "database");
    expect_bad("redis://h/2147483648", "database");
    expect_bad("redis://h/1/2", "database");
    expect_bad("redis://h?db=1", "query");
    expect_bad("redis://h/0?timeout=1", "query");
    expect_bad("redis://h#frag", "query");
    expect_bad("redis://::1", "brackets");
    expect_bad("redis://[::1", "']'");
    expect_bad("redis://[::1]x", "after ']'");
    expect_bad("redis://[]:1", "host is empty");
    expect_bad("redis://[::g]", "invalid character");
    expect_bad("redis://ho$t", "invalid character");
    expect_bad("redis://h h", "space");
    expect_bad("redis://@h", "empty credentials");
    expect_bad("redis://u:%zz@h", "password");
    expect_bad("redis://u:%4@h", "password");
    expect_bad("redis://u:%00@h", "password");
    expect_bad("redis://%zz:p@h", "user name");
}

/* Checks length limits and that the password never shows up in messages. */
static void test_limits(void)
{
    char url[600], pw[300], err[256] = "";
    redis_url_t u;
    memset(pw, 'p', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", pw);
    expect_bad(url, "password");
    char host[300];
    memset(host, 'a', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(url, sizeof url, "redis://%s", host);
    expect_bad(url, "longer than");
    CHECK(redis_url_parse("redis://u:topsecret@h:0", &u, err, sizeof err) == -1);
    CHECK(strstr(err, "topsecret") == NULL);
    CHECK(redis_url_parse("redis://h:0", &u, NULL, 0) == -1); /* no buffer for the message */
}

/* Several hosts (Redis Cluster seeds) and Sentinel URLs. */
static void test_hosts(void)
{
    redis_url_t u;
    char err[256] = "";
    CHECK(redis_url_parse("redis://:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002", &u, err, sizeof err) == 0);
    CHECK(u.nhosts == 3);
    CHECK(strcmp(u.host, "10.0.0.1") == 0 && u.port == 7000);
    CHECK(strcmp(u.hosts[0].host, "10.0.0.1") == 0 && u.hosts[0].port == 7000);
    CHECK(strcmp(u.hosts[1].host, "10.0.0.2") == 0 && u.hosts[1].port == 6379);
    CHECK(strcmp(u.hosts[2].host, "::1") == 0 && u.hosts[2].port == 7002);
    CHECK(strcmp(u.password, "pw") == 0 && u.sentinel_master[0] == '\0');
    CHECK(redis_url_parse("redis://h", &u, err, sizeof err) == 0 && u.nhosts == 1);
    expect_bad("redis://a,,b", "host is empty");
    expect_bad("redis://a,", "host is empty");
    expect_bad("redis://a,b:x", "port");
    expect_bad("redis://h1,h2,h3,h4,h5,h6,h7,h8,h9,h10,h11,h12,h13,h14,h15,h16,h17", "more than 16 hosts");

    CHECK(redis_url_parse("redis-sentinel://s1,s2:26380/mymaster/2", &u, err, sizeof err) == 0);
    CHECK(u.nhosts == 2 && u.hosts[0].port == 26379 && u.hosts[1].port == 26380);
    CHECK(strcmp(u.sentinel_master, "mymaster") == 0 && u.db == 2);
    CHECK(redis_url_parse("REDIS-SENTINEL://u:p@s1/m", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.sentinel_master, "m") == 0 && u.db == 0 && strcmp(u.user, "u") == 0);
    expect_bad("redis-sentinel://s1", "master's name");
    expect_bad("redis-sentinel://s1/", "master's name");
    expect_bad("redis-sentinel://s1/a:b", "invalid character");
    expect_bad("redis-sentinel://s1/m/x", "database");

    /* the Sentinels' own password comes from redis_sentinel_password */
    CHECK(u.sentinel_password[0] == '\0');
    CHECK(redis_url_set_sentinel_password(&u, "s3cret", err, sizeof err) == 0);
    CHECK(strcmp(u.sentinel_password, "s3cret") == 0 && strcmp(u.password, "p") == 0);
    CHECK(redis_url_set_sentinel_password(&u, "", err, sizeof err) == 0 && u.sentinel_password[0] == '\0');
    char long_pw[300];
    memset(long_pw, 'x', sizeof long_pw - 1);
    long_pw[sizeof long_pw - 1] = '\0';
    CHECK(redis_url_set_sentinel_password(&u, long_pw, err, sizeof err) == -1 &&
          strstr(err, "longer than 255") != NULL);
    CHECK(redis_url_parse("redis://h", &u, err, sizeof err) == 0);
    CHECK(redis_url_set_sentinel_password(&u, "", err, sizeof err) == 0);
    CHECK(redis_url_set_sentinel_password(&u, "pw", err, sizeof err) == -1 &&
          strstr(err, "only for a redis-sentinel:// redis_url") != NULL);
}

int main(void)
{
    test_hosts();
    test_good();
    test_credentials();
    test_bad();
    test_limits();
    return CHECK_DONE();
}
