/* Unit tests for common/cluster_slots.c: CRC16 and key slots against what
 * a real Redis Cluster node answers, slot maps built from CLUSTER SLOTS
 * replies (real ones, variations and malformed ones, parsed from RESP by
 * hiredis' reader), and MOVED / ASK / retryable error replies. */
#include "common/cluster_slots.h"

#include "check.h"
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

/* Maps are 32 KB each: kept off the stack. */
static cluster_map_t map_a, map_b;

/* ---- building replies --------------------------------------------------- */

/* Appends the RESP of one value written in a short notation to out:
 * [a b c] is an array, #5 an integer, ~ a nil, "" an empty string, any
 * other word a bulk string. Returns 0, or -1 on a bad notation. */
static int notation_value(const char **p, buf_t *out)
{
    while (**p == ' ')
        (*p)++;
    if (**p == '[') {
        buf_t items = BUF_INIT;
        size_t n = 0;
        for ((*p)++; **p != ']'; n++) {
            while (**p == ' ')
                (*p)++;
            if (**p == ']')
                break;
            if (**p == '\0' || notation_value(p, &items) != 0) {
                buf_free(&items);
                return -1;
            }
        }
        (*p)++;
        buf_printf(out, "*%zu\r\n", n);
        if (items.len > 0)
            buf_append(out, items.base, items.len);
        buf_free(&items);
        return 0;
    }
    const char *w = *p;
    size_t len = strcspn(w, " []");
    *p += len;
    if (len == 0)
        return -1;
    if (w[0] == '#')
        return buf_printf(out, ":%.*s\r\n", (int)len - 1, w + 1);
    if (len == 1 && w[0] == '~')
        return buf_printf(out, "$-1\r\n");
    if (len == 2 && memcmp(w, "\"\"", 2) == 0)
        return buf_printf(out, "$0\r\n\r\n");
    return buf_printf(out, "$%zu\r\n%.*s\r\n", len, (int)len, w);
}

/* Returns the reply hiredis reads from RESP text (free it with
 * freeReplyObject), or NULL when the text is not exactly one reply. */
static redisReply *reply_from_resp(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL, *extra = NULL;
    if (redisReaderFeed(rd, resp, len) != REDIS_OK || redisReaderGetReply(rd, &reply) != REDIS_OK ||
        redisReaderGetReply(rd, &extra) != REDIS_OK || extra != NULL) {
        freeReplyObject(reply);
        freeReplyObject(extra);
        reply = NULL;
    }
    redisReaderFree(rd);
    return reply;
}

/* Returns the reply written in the notation of notation_value, or NULL. */
static redisReply *reply_of(const char *notation)
{
    buf_t resp = BUF_INIT;
    const char *p = notation;
    redisReply *r = NULL;
    if (notation_value(&p, &resp) == 0 && *p == '\0')
        r = reply_from_resp(resp.base, resp.len);
    buf_free(&resp);
    if (r == NULL)
        fprintf(stderr, "  bad test notation: %s\n", notation);
    return r;
}

/* Builds m from a reply in notation; returns cluster_map_from_slots_reply's
 * result, with its message in err. */
static int map_of(cluster_map_t *m, const char *notation, const char *fallback, char *err, size_t errlen)
{
    redisReply *r = reply_of(notation);
    int rc = cluster_map_from_slots_reply(m, r, fallback, err, errlen);
    freeReplyObject(r);
    return rc;
}

/* Checks that a reply in notation is rejected with a message holding
 * needle, leaving the map empty. */
static void expect_bad_map(const char *notation, const char *needle)
{
    char err[256] = "";
    CHECK(map_of(&map_a, notation, "10.0.0.9", err, sizeof err) == -1);
    CHECK(strstr(err, needle) != NULL);
    if (strstr(err, needle) == NULL)
        fprintf(stderr, "  %s: message [%s] lacks [%s]\n", notation, err, needle);
    CHECK(map_a.nshards == 0 && map_a.shards == NULL && cluster_map_shard_of(&map_a, 0) == -1);
}

/* Returns nonzero when shard s has address host:port and nreplicas. */
static int shard_is(const cluster_map_t *m, int s, const char *host, int port, size_t nreplicas)
{
    return s >= 0 && (size_t)s < m->nshards && strcmp(m->shards[s].host, host) == 0 &&
           m->shards[s].port == port && m->shards[s].nreplicas == nreplicas;
}

/* ---- key hashing -------------------------------------------------------- */

static void test_crc16(void)
{
    CHECK(cluster_crc16("123456789", 9) == 0x31C3); /* the CRC16/XMODEM check value */
    CHECK(cluster_crc16("", 0) == 0);
    CHECK(cluster_crc16(NULL, 0) == 0);
    CHECK(cluster_crc16("\0", 1) == 0);
}

static void test_key_slots(void)
{
    /* The answers of CLUSTER KEYSLOT from a throwaway Redis 7.0.15 started
     * with --cluster-enabled yes (keys sent through redis-cli, "\xNN"
     * escapes for the binary ones). */
    static const struct {
        const char *key;
        size_t len;
        unsigned slot;
    } cases[] = {
        {"", 0, 0},
        {"foo", 3, 12182},
        {"bar", 3, 5061},
        {"hello", 5, 866},
        {"123456789", 9, 12739},
        {"{user1000}.following", 20, 3443},
        {"{user1000}.followers", 20, 3443},
        {"user1000", 8, 3443},
        {"foo{}{bar}", 10, 8363}, /* "{}" is no tag; the first '{' decides: whole key */
        {"{}x", 3, 10595},        /* empty tag: whole key */
        {"{", 1, 4092},           /* no '}' */
        {"}{", 2, 12793},         /* '}' before the '{' does not count */
        {"}{a}", 4, 15495},       /* the tag "a" */
        {"a", 1, 15495},
        {"foo{{bar}}zap", 13, 4015}, /* first '{' to first '}': the tag is "{bar" */
        {"{bar", 4, 4015},
        {"foo{bar}{zap}", 13, 5061}, /* only the first tag */
        {"bar}", 4, 6624},
        {"{{}}", 4, 4092},            /* the tag "{" */
        {"ssehub:{demo}:s", 15, 903}, /* a topic's stream and live channel share a slot */
        {"ssehub:{demo}:l", 15, 903},
        {"demo", 4, 903},
        {"ssehub:demo:s", 13, 11559},
        {"\x00\xff\x80{\x01\x02}", 7, 4979}, /* binary bytes, a binary tag */
        {"\x01\x02", 2, 4979},
        {"\x00\x00\x00", 3, 0},
        {"{\x00}z", 4, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned got = cluster_key_slot(cases[i].key, cases[i].len);
        CHECK(got == cases[i].slot);
        if (got != cases[i].slot)
            fprintf(stderr, "  case %zu: slot %u, want %u\n", i, got, cases[i].slot);
    }
    CHECK(cluster_key_slot(NULL, 0) == 0);
}

/* ---- the slot map ------------------------------------------------------- */

/* A reply as Redis 7.0.15 sent it, byte for byte: three nodes, one a
 * replica of the first; the second announces a hostname (the map after the
 * id), which the map does not need. */
static const char real_reply[] =
    "*2\r\n*4\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:27101\r\n$40\r\n"
    "39f6fcc81f823985270cb129a62a2e215d45cf59\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:27103\r\n$40\r\n"
    "8f77e6a45ac380af0abb9b1c0f7026824dafdf93\r\n*0\r\n*3\r\n:8192\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":27102\r\n$40\r\n58890dd65818225fe73c7937ebd89def31604428\r\n*2\r\n$8\r\nhostname\r\n$9\r\nb."
    "example\r\n";

static void test_real_reply(void)
{
    char err[256] = "";
    redisReply *r = reply_from_resp(real_reply, sizeof real_reply - 1);
    CHECK(r != NULL);
    CHECK(cluster_map_from_slots_reply(&map_a, r, NULL, err, sizeof err) == 0);
    CHECK(map_a.nshards == 2);
    CHECK(shard_is(&map_a, 0, "127.0.0.1", 27101, 1));
    CHECK(strcmp(map_a.shards[0].replicas[0].host, "127.0.0.1") == 0 &&
          map_a.shards[0].replicas[0].port == 27103);
    CHECK(shard_is(&map_a, 1, "127.0.0.1", 27102, 0) && map_a.shards[1].replicas == NULL);
    CHECK(cluster_map_covers_all(&map_a));
    CHECK(cluster_map_shard_of(&map_a, 0) == 0 && cluster_map_shard_of(&map_a, 8191) == 0);
    CHECK(cluster_map_shard_of(&map_a, 8192) == 1 && cluster_map_shard_of(&map_a, 16383) == 1);
    CHECK(cluster_map_shard_of(&map_a, 16384) == -1);
    CHECK(cluster_map_shard_of_key(&map_a, "foo", 3) == 1); /* slot 12182 */
    CHECK(cluster_map_shard_of_key(&map_a, "bar", 3) == 0); /* slot 5061 */
    CHECK(cluster_map_equal(&map_a, &map_a));
    cluster_map_free(&map_a);
    CHECK(map_a.nshards == 0 && map_a.shards == NULL && !cluster_map_covers_all(&map_a));
    cluster_map_free(&map_a); /* twice is fine */

    /* A single node of Redis 7.0.15 started with --port 0: its own address
     * is "" (it has not met another node) and its port 0. */
    static const char lone[] = "*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$0\r\n\r\n:0\r\n$40\r\n"
                               "b226f5ac69ddaf8ad6bb5818e52f2463fc7d8b5d\r\n*0\r\n";
    freeReplyObject(r);
    r = reply_from_resp(lone, sizeof lone - 1);
    CHECK(cluster_map_from_slots_reply(&map_a, r, "h", err, sizeof err) == -1);
    CHECK(strstr(err, "port") != NULL);
    freeReplyObject(r);
}

/* NULL and "" hosts are the host asked; "?" names no reachable node. */
static void test_hosts(void)
{
    char err[256] = "";
    CHECK(map_of(&map_a, "[[#0 #16383 [\"\" #7000 id1] [~ #7001 id2]]]", "10.0.0.9", err, sizeof err) == 0);
    CHECK(shard_is(&map_a, 0, "10.0.0.9", 7000, 1));
    CHECK(strcmp(map_a.shards[0].replicas[0].host, "10.0.0.9") == 0 &&
          map_a.shards[0].replicas[0].port == 7001);
    cluster_map_free(&map_a);

    CHECK(map_of(&map_a, "[[#0 #16383 [::1 #7000 id1] [? #7001 id2] [fe80::2 #7002 id3]]]", NULL, err,
                 sizeof err) == 0);
    CHECK(shard_is(&map_a, 0, "::1", 7000, 1)); /* the "?" replica is dropped */
    CHECK(strcmp(map_a.shards[0].replicas[0].host, "fe80::2") == 0);
    cluster_map_free(&map_a);

    CHECK(map_of(&map_a, "[[#0 #16383 [\"\" #7000 id1]]]", NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "no fallback host") != NULL);
    CHECK(map_of(&map_a, "[[#0 #16383 [h #7000 id1] [~ #7001 id2]]]", "", err, sizeof err) == -1);
    CHECK(strstr(err, "no fallback host") != NULL);
    expect_bad_map("[[#0 #16383 [? #7000 id1]]]", "cluster-announce-hostname");
    /* Redis 3.0 sent no node id */
    CHECK(map_of(&map_a, "[[#0 #16383 [h #7000]]]", NULL, err, sizeof err) == 0 &&
          shard_is(&map_a, 0, "h", 7000, 0));
    cluster_map_free(&map_a);
}

/* Ranges of one master are one shard; replicas are merged; gaps stay -1. */
static void test_shards(void)
{
    char err[256] = "";
    CHECK(
        map_of(&map_a,
               "[[#0 #100 [a #1 x] [r1 #1 y]] [#150 #150 [b #2 z]] [#200 #16383 [a #1 x] [r2 #1 w] [r1 #1 y]]"
               " [#151 #199 [a #2 v]]]",
               NULL, err, sizeof err) == 0);
    CHECK(map_a.nshards == 3);
    CHECK(shard_is(&map_a, 0, "a", 1, 2) && shard_is(&map_a, 1, "b", 2, 0) && shard_is(&map_a, 2, "a", 2, 0));
    CHECK(strcmp(map_a.shards[0].replicas[0].host, "r1") == 0 &&
          strcmp(map_a.shards[0].replicas[1].host, "r2") == 0);
    CHECK(cluster_map_shard_of(&map_a, 100) == 0 && cluster_map_shard_of(&map_a, 101) == -1);
    CHECK(cluster_map_shard_of(&map_a, 149) == -1 && cluster_map_shard_of(&map_a, 150) == 1);
    CHECK(cluster_map_shard_of(&map_a, 151) == 2 && cluster_map_shard_of(&map_a, 200) == 0);
    CHECK(!cluster_map_covers_all(&map_a));
    cluster_map_free(&map_a);

    CHECK(map_of(&map_a, "[]", NULL, err, sizeof err) == 0); /* a cluster with no slots yet */
    CHECK(map_a.nshards == 0 && !cluster_map_covers_all(&map_a) && cluster_map_shard_of(&map_a, 5) == -1);
    cluster_map_free(&map_a);
}

/* Anything but a well-formed reply is refused, with the entry named. */
static void test_bad_replies(void)
{
    char err[256] = "";
    redisReply *r = reply_from_resp("-ERR This instance has cluster support disabled\r\n", 49);
    CHECK(r != NULL && cluster_map_from_slots_reply(&map_a, r, NULL, err, sizeof err) == -1);
    CHECK(strcmp(err, "CLUSTER SLOTS: error reply: ERR This instance has cluster support disabled") == 0);
    freeReplyObject(r);
    CHECK(cluster_map_from_slots_reply(&map_a, NULL, NULL, err, sizeof err) == -1 && strstr(err, "no reply"));
    CHECK(cluster_map_from_slots_reply(&map_a, NULL, NULL, NULL, 0) == -1); /* no room for a message */

    expect_bad_map("#1", "not an array");
    expect_bad_map("OK", "not an array");
    expect_bad_map("[#1]", "entry 0: not an array");
    expect_bad_map("[[#0 #10 [a #1 x]] [#0 #10]]", "entry 1: not an array of start, end and master");
    expect_bad_map("[[#10 #9 [a #1 x]]]", "start <= end");
    expect_bad_map("[[#0 #16384 [a #1 x]]]", "start <= end <= 16383");
    expect_bad_map("[[#-1 #5 [a #1 x]]]", "start <= end");
    expect_bad_map("[[0 #5 [a #1 x]]]", "start <= end");
    expect_bad_map("[[#0 5 [a #1 x]]]", "start <= end");
    expect_bad_map("[[#0 #5 a]]", "not an array of host, port and id");
    expect_bad_map("[[#0 #5 [a]]]", "not an array of host, port and id");
    expect_bad_map("[[#0 #5 []]]", "not an array of host, port and id");
    expect_bad_map("[[#0 #5 [a 1 x]]]", "port");
    expect_bad_map("[[#0 #5 [a #0 x]]]", "port");
    expect_bad_map("[[#0 #5 [a #65536 x]]]", "port");
    expect_bad_map("[[#0 #5 [a #-1 x]]]", "port");
    expect_bad_map("[[#0 #5 [#1 #1 x]]]", "host is not a string");
    expect_bad_map("[[#0 #5 [[a] #1 x]]]", "host is not a string");
    expect_bad_map("[[#0 #5 [a #1 #7]]]", "id is not a string");
    expect_bad_map("[[#0 #5 [a #1 ~]]]", "id is not a string");
    expect_bad_map("[[#0 #5 [a #1 x] [b #2]] [#6 #7 [c #1 x] #3]]", "entry 1: a node is not an array");
    expect_bad_map("[[#0 #5 [a #1 x] [b ~ y]]]", "port");
    expect_bad_map("[[#0 #5 [a #1 x]] [#5 #9 [b #1 x]]]", "entry 1: slot 5 is in an earlier range too");
    expect_bad_map("[[#0 #5 [a #1 x]] [#3 #3 [a #1 x]]]", "slot 3 is in an earlier range");

    /* hosts: a space, a control byte, too long */
    static const char space[] = "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na b\r\n:1\r\n";
    static const char nul[] = "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na\0b\r\n:1\r\n";
    const char *bad_hosts[] = {space, nul};
    size_t bad_lens[] = {sizeof space - 1, sizeof nul - 1};
    for (size_t i = 0; i < 2; i++) {
        r = reply_from_resp(bad_hosts[i], bad_lens[i]);
        CHECK(r != NULL && cluster_map_from_slots_reply(&map_a, r, NULL, err, sizeof err) == -1);
        CHECK(strstr(err, "space or control byte") != NULL);
        freeReplyObject(r);
    }
    char notation[400];
    snprintf(notation, sizeof notation, "[[#0 #5 [%0255d #1 x]]]", 0);
    CHECK(map_of(&map_a, notation, NULL, err, sizeof err) == 0); /* 255 bytes fit */
    cluster_map_free(&map_a);
    snprintf(notation, sizeof notation, "[[#0 #5 [%0256d #1 x]]]", 0);
    expect_bad_map(notation, "longer than 255 bytes");
    char longer[300];
    memset(longer, 'h', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    CHECK(map_of(&map_a, "[[#0 #5 [\"\" #1 x]]]", longer, err, sizeof err) == -1); /* a bad fallback too */
    CHECK(strstr(err, "longer than") != NULL);

    /* a tree no reader makes: an array with a missing element */
    redisReply *missing[1] = {NULL};
    redisReply hollow = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = missing};
    CHECK(cluster_map_from_slots_reply(&map_a, &hollow, NULL, err, sizeof err) == -1);
    redisReply range = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = NULL};
    redisReply *ranges[1] = {&range};
    redisReply outer = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = ranges};
    CHECK(cluster_map_from_slots_reply(&map_a, &outer, NULL, err, sizeof err) == -1);
    CHECK(map_a.nshards == 0);
}

/* Maps are equal when they route alike, whatever the shard order. */
static void test_equal(void)
{
    static const char *const base = "[[#0 #8191 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8192 #16383 [b #1 w]]]";
    static const struct {
        const char *other;
        int equal;
    } cases[] = {
        {"[[#0 #8191 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8192 #16383 [b #1 w]]]", 1},
        {"[[#8192 #16383 [b #1 w]] [#0 #8191 [a #1 x] [r2 #1 z] [r1 #1 y]]]", 1}, /* other orders */
        {"[[#0 #99 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8192 #16383 [b #1 w]] [#100 #8191 [a #1 x] [r2 #1 z]]]",
         1},
        {"[[#0 #8191 [a #1 x] [r1 #1 y]] [#8192 #16383 [b #1 w]]]", 0},           /* a replica less */
        {"[[#0 #8191 [a #1 x] [r1 #1 y] [r3 #1 z]] [#8192 #16383 [b #1 w]]]", 0}, /* another replica */
        {"[[#0 #8191 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8192 #16383 [b #2 w]]]", 0}, /* another port */
        {"[[#0 #8190 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8191 #16383 [b #1 w]]]", 0}, /* a slot moved */
        {"[[#0 #8191 [a #1 x] [r1 #1 y] [r2 #1 z]] [#8192 #16382 [b #1 w]]]", 0}, /* a slot lost */
        {"[[#0 #8191 [b #1 w]] [#8192 #16383 [a #1 x] [r1 #1 y] [r2 #1 z]]]", 0}, /* swapped */
        {"[[#0 #16383 [a #1 x] [r1 #1 y] [r2 #1 z]]]", 0},
    };
    char err[256] = "";
    CHECK(map_of(&map_a, base, NULL, err, sizeof err) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(map_of(&map_b, cases[i].other, NULL, err, sizeof err) == 0);
        CHECK(cluster_map_equal(&map_a, &map_b) == cases[i].equal);
        CHECK(cluster_map_equal(&map_b, &map_a) == cases[i].equal);
        if (cluster_map_equal(&map_a, &map_b) != cases[i].equal)
            fprintf(stderr, "  equal case %zu: got %d\n", i, !cases[i].equal);
        cluster_map_free(&map_b);
    }
    cluster_map_free(&map_a);
    cluster_map_init(&map_b);
    CHECK(cluster_map_equal(&map_a, &map_b)); /* two empty maps */
}

/* ---- error replies ------------------------------------------------------ */

/* Checks that text (read from an exact-size copy, so ASan sees any read
 * past it) is a redirect with these parts. */
static void expect_redirect(const char *text, cluster_error_kind_t kind, unsigned slot,
                            cluster_host_kind_t hk, const char *host, int port)
{
    size_t len = strlen(text);
    char *copy = malloc(len);
    memcpy(copy, text, len);
    cluster_redirect_t r;
    CHECK(cluster_parse_redirect(copy, len, &r) == kind);
    CHECK(r.kind == kind && r.slot == slot && r.host_kind == hk && strcmp(r.host, host) == 0 &&
          r.port == port);
    CHECK(cluster_error_kind(copy, len) == kind);
    if (r.kind != kind || r.slot != slot || strcmp(r.host, host) != 0 || r.port != port)
        fprintf(stderr, "  %s: got %d %u [%s] %d\n", text, (int)r.kind, r.slot, r.host, r.port);
    free(copy);
}

/* Checks that text is not a redirect (and out is left zeroed). */
static void expect_not_redirect(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    cluster_redirect_t r;
    memset(&r, 0x55, sizeof r);
    CHECK(cluster_parse_redirect(copy, len, &r) == CLUSTER_ERROR_OTHER);
    CHECK(r.kind == CLUSTER_ERROR_OTHER && r.slot == 0 && r.port == 0 && r.host[0] == '\0');
    free(copy);
}
#define NOT_REDIRECT(lit) expect_not_redirect((lit), sizeof(lit) - 1)

static void test_redirects(void)
{
    expect_redirect("MOVED 3999 127.0.0.1:6381", CLUSTER_ERROR_MOVED, 3999, CLUSTER_HOST_NAMED, "127.0.0.1",
                    6381);
    expect_redirect("ASK 3999 127.0.0.1:6381", CLUSTER_ERROR_ASK, 3999, CLUSTER_HOST_NAMED, "127.0.0.1",
                    6381);
    expect_redirect("MOVED 3999 ::1:6381", CLUSTER_ERROR_MOVED, 3999, CLUSTER_HOST_NAMED, "::1", 6381);
    expect_redirect("ASK 1 2001:db8::7:1", CLUSTER_ERROR_ASK, 1, CLUSTER_HOST_NAMED, "2001:db8::7", 1);
    expect_redirect("MOVED 0 h:65535", CLUSTER_ERROR_MOVED, 0, CLUSTER_HOST_NAMED, "h", 65535);
    expect_redirect("MOVED 16383 h.example:1", CLUSTER_ERROR_MOVED, 16383, CLUSTER_HOST_NAMED, "h.example",
                    1);
    /* as Redis 7.0.15 sent them with cluster-preferred-endpoint-type ip,
     * unknown-endpoint and hostname (the last without a hostname set) */
    expect_redirect("MOVED 12182 127.0.0.1:27102", CLUSTER_ERROR_MOVED, 12182, CLUSTER_HOST_NAMED,
                    "127.0.0.1", 27102);
    expect_redirect("ASK 5061 127.0.0.1:27102", CLUSTER_ERROR_ASK, 5061, CLUSTER_HOST_NAMED, "127.0.0.1",
                    27102);
    expect_redirect("MOVED 12182 :27102", CLUSTER_ERROR_MOVED, 12182, CLUSTER_HOST_SAME, "", 27102);
    expect_redirect("ASK 5061 :27102", CLUSTER_ERROR_ASK, 5061, CLUSTER_HOST_SAME, "", 27102);
    expect_redirect("MOVED 12182 ?:27102", CLUSTER_ERROR_MOVED, 12182, CLUSTER_HOST_UNKNOWN, "", 27102);
    expect_redirect("MOVED 12182 b.example:27102", CLUSTER_ERROR_MOVED, 12182, CLUSTER_HOST_NAMED,
                    "b.example", 27102);

    NOT_REDIRECT("");
    NOT_REDIRECT("MOVED");
    NOT_REDIRECT("MOVED ");
    NOT_REDIRECT("ASK");
    NOT_REDIRECT("MOVED 1");
    NOT_REDIRECT("MOVED 1 ");
    NOT_REDIRECT("MOVED 1 h");
    NOT_REDIRECT("MOVED 1 h:");
    NOT_REDIRECT("MOVED 1 :");
    NOT_REDIRECT("MOVED 16384 h:1");
    NOT_REDIRECT("MOVED -1 h:1");
    NOT_REDIRECT("MOVED 01 h:1");
    NOT_REDIRECT("MOVED +1 h:1");
    NOT_REDIRECT("MOVED 99999999999999999999999 h:1");
    NOT_REDIRECT("MOVED 1 h:0");
    NOT_REDIRECT("MOVED 1 h:65536");
    NOT_REDIRECT("MOVED 1 h:06379");
    NOT_REDIRECT("MOVED 1 h:1 ");
    NOT_REDIRECT("MOVED 1 h:1 extra");
    NOT_REDIRECT("MOVED 1 a b:1");
    NOT_REDIRECT("MOVED  1 h:1");
    NOT_REDIRECT("MOVED 1  h:1");
    NOT_REDIRECT("MOVEDX 1 h:1");
    NOT_REDIRECT("moved 1 h:1");
    NOT_REDIRECT(" MOVED 1 h:1");
    NOT_REDIRECT("ASK 1 h\x01:1");
    NOT_REDIRECT("ASK 1 h\0:1");
    NOT_REDIRECT("ERR MOVED 1 h:1");
    char text[400], host[256];
    snprintf(host, sizeof host, "%0255d", 0);
    snprintf(text, sizeof text, "MOVED 1 %s:1", host);
    expect_redirect(text, CLUSTER_ERROR_MOVED, 1, CLUSTER_HOST_NAMED, host, 1);
    snprintf(text, sizeof text, "MOVED 1 %0256d:1", 0);
    expect_not_redirect(text, strlen(text));
    /* only len bytes count: "MOVED 1 h:12" cut after "h:1" */
    cluster_redirect_t r;
    CHECK(cluster_parse_redirect("MOVED 1 h:12", 11, &r) == CLUSTER_ERROR_MOVED && r.port == 1);
}

static void test_error_kinds(void)
{
    static const struct {
        const char *text;
        cluster_error_kind_t kind;
    } cases[] = {
        {"CLUSTERDOWN The cluster is down", CLUSTER_ERROR_RETRY},
        {"CLUSTERDOWN Hash slot not served", CLUSTER_ERROR_RETRY},
        {"TRYAGAIN Multiple keys request during rehashing of slot", CLUSTER_ERROR_RETRY},
        {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         CLUSTER_ERROR_RETRY},
        {"LOADING Redis is loading the dataset in memory", CLUSTER_ERROR_RETRY},
        {"LOADING", CLUSTER_ERROR_RETRY},
        {"MOVED 1 h:1", CLUSTER_ERROR_MOVED},
        {"ASK 1 h:1", CLUSTER_ERROR_ASK},
        {"MOVED 1 h", CLUSTER_ERROR_OTHER}, /* a malformed redirect is not followed */
        {"CLUSTERDOWNX", CLUSTER_ERROR_OTHER},
        {"clusterdown The cluster is down", CLUSTER_ERROR_OTHER},
        {"ERR unknown command 'CLUSTER'", CLUSTER_ERROR_OTHER},
        {"READONLY You can't write against a read only replica.", CLUSTER_ERROR_OTHER},
        {"", CLUSTER_ERROR_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cluster_error_kind_t got = cluster_error_kind(cases[i].text, strlen(cases[i].text));
        CHECK(got == cases[i].kind);
        if (got != cases[i].kind)
            fprintf(stderr, "  %s: kind %d, want %d\n", cases[i].text, (int)got, (int)cases[i].kind);
    }
    CHECK(cluster_error_kind(NULL, 0) == CLUSTER_ERROR_OTHER);
    CHECK(cluster_error_kind("LOADINGX", 7) == CLUSTER_ERROR_RETRY); /* only len bytes count */
}

int main(void)
{
    test_crc16();
    test_key_slots();
    test_real_reply();
    test_hosts();
    test_shards();
    test_bad_replies();
    test_equal();
    test_redirects();
    test_error_kinds();
    return CHECK_DONE();
}
