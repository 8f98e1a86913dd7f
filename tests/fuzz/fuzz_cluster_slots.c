/* Fuzz target for Redis Cluster routing (common/cluster_slots.c): the bytes
 * are read as RESP by hiredis' reader and each reply becomes a slot map
 * with and without a fallback host; the same bytes are an error reply for
 * cluster_parse_redirect and cluster_error_kind, and a key for
 * cluster_key_slot. An accepted map routes every slot to a shard it has,
 * every shard serves a slot, addresses are valid and distinct, and the map
 * equals itself and the build with a fallback; an accepted redirect has
 * its fields in range and formats back to exactly its input. */
#include <string.h>

#include "common/cluster_slots.h"
#include "tests/fuzz/fuzz.h"

#define FALLBACK_HOST "fallback.example"

/* Returns nonzero when the array headers ("*N") anywhere in the input ask
 * for few elements in all: hiredis 0.14 allocates an array's element
 * vector as soon as it reads the header, so "*2000000000" is an
 * allocation failure in hiredis, not a finding here. */
static int arrays_are_small(const uint8_t *data, size_t size)
{
    unsigned long total = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*')
            continue;
        unsigned long n = 0;
        for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= 1UL << 16; j++)
            n = n * 10 + (unsigned long)(data[j] - '0');
        total += n;
        if (total > 1UL << 16)
            return 0;
    }
    return 1;
}

/* Checks a host as the map and redirects store it. */
static void check_host(const char *host)
{
    size_t n = strnlen(host, CLUSTER_HOST_MAX);
    FUZZ_CHECK(n > 0 && n < CLUSTER_HOST_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)host[i] > ' ' && host[i] != 0x7f);
}

/* Returns nonzero when two addresses are the same. */
static int same(const char *host_a, int port_a, const char *host_b, int port_b)
{
    return port_a == port_b && strcmp(host_a, host_b) == 0;
}

/* Checks the addresses of shard s: valid, and its replicas distinct from
 * each other and from the master. */
static void check_shard(const cluster_shard_t *s)
{
    check_host(s->host);
    FUZZ_CHECK(s->port >= 1 && s->port <= 65535);
    FUZZ_CHECK((s->nreplicas == 0) == (s->replicas == NULL));
    for (size_t i = 0; i < s->nreplicas; i++) {
        check_host(s->replicas[i].host);
        FUZZ_CHECK(s->replicas[i].port >= 1 && s->replicas[i].port <= 65535);
        FUZZ_CHECK(!same(s->replicas[i].host, s->replicas[i].port, s->host, s->port));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(
                !same(s->replicas[i].host, s->replicas[i].port, s->replicas[j].host, s->replicas[j].port));
    }
}

/* Checks everything an accepted map promises. */
static void check_map(const cluster_map_t *m)
{
    static size_t served[CLUSTER_MAX_SHARDS];
    int all = 1;
    FUZZ_CHECK(m->nshards <= CLUSTER_MAX_SHARDS);
    FUZZ_CHECK((m->nshards == 0) == (m->shards == NULL));
    memset(served, 0, m->nshards * sizeof served[0]);
    for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++) {
        int s = m->slots[slot];
        FUZZ_CHECK(s >= -1 && s < (int)m->nshards);
        FUZZ_CHECK(cluster_map_shard_of(m, slot) == s);
        if (s >= 0)
            served[s]++;
        else
            all = 0;
    }
    FUZZ_CHECK(cluster_map_covers_all(m) == all);
    FUZZ_CHECK(cluster_map_shard_of(m, CLUSTER_SLOTS) == -1);
    for (size_t i = 0; i < m->nshards; i++) {
        FUZZ_CHECK(served[i] > 0);
        check_shard(&m->shards[i]);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(!same(m->shards[i].host, m->shards[i].port, m->shards[j].host, m->shards[j].port));
    }
    FUZZ_CHECK(cluster_map_equal(m, m));
}

/* Builds maps from one reply, with and without the fallback host. */
static void check_reply(const redisReply *r)
{
    static cluster_map_t with, without; /* 32 KB each: kept off the stack */
    char err[256] = "";
    int rc_with = cluster_map_from_slots_reply(&with, r, FALLBACK_HOST, err, sizeof err);
    FUZZ_CHECK(rc_with == 0 || (rc_with == -1 && err[0] != '\0' && with.nshards == 0 && with.shards == NULL));
    err[0] = '\0';
    int rc_without = cluster_map_from_slots_reply(&without, r, NULL, err, sizeof err);
    FUZZ_CHECK(rc_without == 0 || (rc_without == -1 && err[0] != '\0' && without.nshards == 0));
    if (rc_with == 0)
        check_map(&with);
    if (rc_without == 0) {
        /* no host was left out, so the fallback changed nothing */
        check_map(&without);
        FUZZ_CHECK(rc_with == 0 && cluster_map_equal(&with, &without));
    }
    cluster_map_free(&with);
    cluster_map_free(&without);
}

/* Reads the input as RESP and checks each reply it holds. */
static void check_resp(const char *s, size_t size)
{
    redisReader *rd = redisReaderCreate();
    FUZZ_CHECK(rd != NULL);
    if (redisReaderFeed(rd, s, size) == REDIS_OK) {
        for (int i = 0; i < 16; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            check_reply(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
}

/* Checks the redirect read from the input, and its formatting back. */
static void check_redirect(const char *s, size_t size)
{
    static char again[CLUSTER_HOST_MAX + 64];
    cluster_redirect_t r;
    cluster_error_kind_t kind = cluster_parse_redirect(s, size, &r);
    cluster_error_kind_t classified = cluster_error_kind(s, size);
    FUZZ_CHECK(r.kind == kind);
    if (kind == CLUSTER_ERROR_OTHER) {
        FUZZ_CHECK(classified == CLUSTER_ERROR_OTHER || classified == CLUSTER_ERROR_RETRY);
        return;
    }
    FUZZ_CHECK(classified == kind && (kind == CLUSTER_ERROR_MOVED || kind == CLUSTER_ERROR_ASK));
    FUZZ_CHECK(r.slot < CLUSTER_SLOTS && r.port >= 1 && r.port <= 65535);
    const char *host = r.host;
    if (r.host_kind == CLUSTER_HOST_NAMED) {
        check_host(r.host);
        FUZZ_CHECK(strcmp(r.host, "?") != 0);
    } else {
        FUZZ_CHECK(r.host[0] == '\0');
        host = r.host_kind == CLUSTER_HOST_UNKNOWN ? "?" : "";
    }
    int n = snprintf(again, sizeof again, "%s %u %s:%d", kind == CLUSTER_ERROR_MOVED ? "MOVED" : "ASK",
                     r.slot, host, r.port);
    FUZZ_CHECK(n > 0 && (size_t)n == size && memcmp(again, s, size) == 0);
}

/* Checks the key's slot against the hash-tag rule written out plainly. */
static void check_key_slot(const char *s, size_t size)
{
    size_t from = 0, to = size;
    for (size_t open = 0; open < size; open++) {
        if (s[open] != '{')
            continue;
        for (size_t close = open + 1; close < size; close++) {
            if (s[close] == '}') {
                if (close > open + 1) {
                    from = open + 1;
                    to = close;
                }
                break;
            }
        }
        break;
    }
    unsigned slot = cluster_key_slot(s, size);
    FUZZ_CHECK(slot < CLUSTER_SLOTS);
    FUZZ_CHECK(slot == (cluster_crc16(s + from, to - from) & (CLUSTER_SLOTS - 1)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy(data, size);
    if (arrays_are_small(data, size))
        check_resp(s, size);
    check_redirect(s, size);
    check_key_slot(s, size);
    free(s);
    return 0;
}
