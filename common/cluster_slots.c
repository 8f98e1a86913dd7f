/* Redis Cluster routing data: CRC16 key slots, the slot map read from
 * CLUSTER SLOTS, and MOVED / ASK / retryable error replies. Strict like the
 * other parsers: a reply not understood is an error, never half-used. */
#include "common/cluster_slots.h"

#include "common/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key hashing -------------------------------------------------------- */

#define CRC16_POLY 0x1021

uint16_t cluster_crc16(const char *buf, size_t len)
{
    /* Bitwise, not table-driven: keys are short and this keeps no table. */
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (uint16_t)((crc & 0x8000) ? (crc << 1) ^ CRC16_POLY : crc << 1);
    }
    return crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
    const char *open = len > 0 ? memchr(key, '{', len) : NULL;
    if (open != NULL) {
        const char *tag = open + 1;
        const char *close = memchr(tag, '}', len - (size_t)(tag - key));
        if (close != NULL && close > tag)
            return cluster_crc16(tag, (size_t)(close - tag)) & (CLUSTER_SLOTS - 1);
    }
    return cluster_crc16(key, len) & (CLUSTER_SLOTS - 1);
}

/* Returns nonzero when s[0..len) can be a host: non-empty room for its NUL,
 * and no space, control byte or NUL (each would break a message or a
 * connect call). */
static int host_is_valid(const char *s, size_t len)
{
    if (len >= CLUSTER_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

/* ---- the slot map: queries ---------------------------------------------- */

void cluster_map_init(cluster_map_t *m)
{
    m->shards = NULL;
    m->nshards = 0;
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        m->slots[i] = -1;
}

void cluster_map_free(cluster_map_t *m)
{
    for (size_t i = 0; i < m->nshards; i++)
        free(m->shards[i].replicas);
    free(m->shards);
    cluster_map_init(m);
}

int cluster_map_shard_of(const cluster_map_t *m, unsigned slot)
{
    return slot < CLUSTER_SLOTS ? m->slots[slot] : -1;
}

int cluster_map_shard_of_key(const cluster_map_t *m, const char *key, size_t len)
{
    return cluster_map_shard_of(m, cluster_key_slot(key, len));
}

int cluster_map_covers_all(const cluster_map_t *m)
{
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        if (m->slots[i] < 0)
            return 0;
    return 1;
}

/* Returns nonzero when two host:port addresses are the same. */
static int same_address(const char *host_a, int port_a, const char *host_b, int port_b)
{
    return port_a == port_b && strcmp(host_a, host_b) == 0;
}

/* Returns nonzero when n is the master or one of the replicas of s. */
static int shard_has_node(const cluster_shard_t *s, const cluster_node_t *n)
{
    if (same_address(s->host, s->port, n->host, n->port))
        return 1;
    for (size_t i = 0; i < s->nreplicas; i++)
        if (same_address(s->replicas[i].host, s->replicas[i].port, n->host, n->port))
            return 1;
    return 0;
}

/* Returns nonzero when two shards have the same master and the same set of
 * replicas (replicas of a shard are distinct, so counting is enough). */
static int shard_equal(const cluster_shard_t *a, const cluster_shard_t *b)
{
    if (!same_address(a->host, a->port, b->host, b->port) || a->nreplicas != b->nreplicas)
        return 0;
    for (size_t i = 0; i < a->nreplicas; i++)
        if (!shard_has_node(b, &a->replicas[i]))
            return 0;
    return 1;
}

int cluster_map_equal(const cluster_map_t *a, const cluster_map_t *b)
{
    if (a->nshards != b->nshards)
        return 0;
    int last_a = -1, last_b = -1; /* the pair compared last: ranges repeat it */
    for (size_t i = 0; i < CLUSTER_SLOTS; i++) {
        int sa = a->slots[i], sb = b->slots[i];
        if ((sa < 0) != (sb < 0))
            return 0;
        if (sa < 0 || (sa == last_a && sb == last_b))
            continue;
        if (!shard_equal(&a->shards[sa], &b->shards[sb]))
            return 0;
        last_a = sa;
        last_b = sb;
    }
    return 1;
}

/* ---- the slot map: reading CLUSTER SLOTS -------------------------------- */

/* State while one reply is read into a map. */
typedef struct slots_reader {
    cluster_map_t *m;
    size_t shards_cap;         /* room in m->shards */
    const char *fallback_host; /* for NULL and "" hosts; may be NULL */
    size_t entry;              /* the range being read, 0-based; messages name it */
    int in_entry;              /* 0 while checking the reply as a whole */
    char *err;
    size_t errlen;
} slots_reader_t;

/* Writes "CLUSTER SLOTS[ entry N]: <message>" into err and returns -1, so
 * every message says which range was wrong. */
__attribute__((format(printf, 2, 3))) static int reject(slots_reader_t *rd, const char *fmt, ...)
{
    if (rd->err == NULL || rd->errlen == 0)
        return -1;
    int n = rd->in_entry ? snprintf(rd->err, rd->errlen, "CLUSTER SLOTS entry %zu: ", rd->entry)
                         : snprintf(rd->err, rd->errlen, "CLUSTER SLOTS: ");
    if (n > 0 && (size_t)n < rd->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rd->err + n, rd->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Returns element i of array r, or NULL when r is not an array or has no
 * such element, so any reply shape can be walked without checks at every
 * step. */
static const redisReply *element(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements || r->element == NULL)
        return NULL;
    return r->element[i];
}

/* Returns nonzero when r is an integer in min..max. */
static int is_integer_in(const redisReply *r, long long min, long long max)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= min && r->integer <= max;
}

/* Copies a node's host into out: the fallback host for NULL or "". Returns
 * 0, 1 for "?" (no reachable address), or -1 with a message. */
static int read_host(slots_reader_t *rd, const redisReply *h, char *out)
{
    const char *s;
    size_t len;
    if (h != NULL && (h->type == REDIS_REPLY_NIL || (h->type == REDIS_REPLY_STRING && h->len == 0))) {
        if (rd->fallback_host == NULL || rd->fallback_host[0] == '\0')
            return reject(rd, "a node has no host and the caller gave no fallback host");
        s = rd->fallback_host;
        len = strlen(s);
    } else if (h != NULL && h->type == REDIS_REPLY_STRING && h->str != NULL) {
        if (h->len == 1 && h->str[0] == '?')
            return 1;
        s = h->str;
        len = h->len;
    } else {
        return reject(rd, "a node's host is not a string");
    }
    if (!host_is_valid(s, len))
        return reject(rd, "a node's host is longer than %d bytes or holds a space or control byte",
                      CLUSTER_HOST_MAX - 1);
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* Reads [host, port, id, ...] into out (what follows the id, such as the
 * hostname metadata of Redis 7, is not needed). Returns 0, 1 when the host
 * is "?", or -1 with a message. */
static int read_node(slots_reader_t *rd, const redisReply *n, cluster_node_t *out)
{
    const redisReply *id = element(n, 2);
    if (n == NULL || n->type != REDIS_REPLY_ARRAY || n->elements < 2)
        return reject(rd, "a node is not an array of host, port and id");
    if (!is_integer_in(element(n, 1), 1, 65535))
        return reject(rd, "a node's port is not a number in 1..65535");
    if (n->elements > 2 && (id == NULL || id->type != REDIS_REPLY_STRING))
        return reject(rd, "a node's id is not a string");
    out->port = (int)element(n, 1)->integer;
    return read_host(rd, element(n, 0), out->host);
}

/* Returns the index of the shard whose master is at `master`, adding one
 * when there is none; -1 with a message when out of memory. */
static int shard_for_master(slots_reader_t *rd, const cluster_node_t *master)
{
    cluster_map_t *m = rd->m;
    for (size_t i = 0; i < m->nshards; i++)
        if (same_address(m->shards[i].host, m->shards[i].port, master->host, master->port))
            return (int)i;
    if (m->nshards == rd->shards_cap) {
        size_t cap = rd->shards_cap ? rd->shards_cap * 2 : 8;
        cluster_shard_t *grown = realloc(m->shards, cap * sizeof *grown);
        if (grown == NULL)
            return reject(rd, "out of memory");
        m->shards = grown;
        rd->shards_cap = cap;
    }
    cluster_shard_t *s = &m->shards[m->nshards];
    memcpy(s->host, master->host, sizeof s->host);
    s->port = master->port;
    s->replicas = NULL;
    s->nreplicas = 0;
    return (int)m->nshards++;
}

/* Adds a replica to s unless s already has that address; returns 0, or -1
 * with a message when out of memory. */
static int add_replica(slots_reader_t *rd, cluster_shard_t *s, const cluster_node_t *replica)
{
    if (shard_has_node(s, replica))
        return 0;
    cluster_node_t *grown = realloc(s->replicas, (s->nreplicas + 1) * sizeof *grown);
    if (grown == NULL)
        return reject(rd, "out of memory");
    s->replicas = grown;
    s->replicas[s->nreplicas++] = *replica;
    return 0;
}

/* Reads one [start, end, master, replica...] entry into the map; returns 0
 * or -1 with a message. */
static int read_range(slots_reader_t *rd, const redisReply *e)
{
    cluster_node_t node;
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return reject(rd, "not an array of start, end and master");
    if (!is_integer_in(element(e, 0), 0, CLUSTER_SLOTS - 1) ||
        !is_integer_in(element(e, 1), element(e, 0)->integer, CLUSTER_SLOTS - 1))
        return reject(rd, "start and end are not slots with start <= end <= %d", CLUSTER_SLOTS - 1);
    int rc = read_node(rd, element(e, 2), &node);
    if (rc > 0)
        return reject(rd, "the master's host is \"?\": it is set to announce a hostname "
                          "(cluster-preferred-endpoint-type) but has none (cluster-announce-hostname)");
    int shard = rc == 0 ? shard_for_master(rd, &node) : -1;
    if (shard < 0)
        return -1;
    for (size_t i = 3; i < e->elements; i++) {
        rc = read_node(rd, element(e, i), &node);
        if (rc < 0 || (rc == 0 && add_replica(rd, &rd->m->shards[shard], &node) != 0))
            return -1;
    }
    for (long long slot = element(e, 0)->integer; slot <= element(e, 1)->integer; slot++) {
        if (rd->m->slots[slot] >= 0)
            return reject(rd, "slot %lld is in an earlier range too", slot);
        rd->m->slots[slot] = (int16_t)shard;
    }
    return 0;
}

int cluster_map_from_slots_reply(cluster_map_t *m, const redisReply *r, const char *fallback_host, char *err,
                                 size_t errlen)
{
    slots_reader_t rd = {.m = m, .fallback_host = fallback_host, .err = err, .errlen = errlen};
    int rc = 0;
    cluster_map_init(m);
    if (r == NULL)
        rc = reject(&rd, "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        rc = reject(&rd, "error reply: %.*s", r->str ? (int)(r->len > 200 ? 200 : r->len) : 0,
                    r->str ? r->str : "");
    else if (r->type != REDIS_REPLY_ARRAY)
        rc = reject(&rd, "the reply is not an array");
    rd.in_entry = 1;
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        rd.entry = i;
        rc = read_range(&rd, element(r, i));
    }
    if (rc != 0)
        cluster_map_free(m);
    return rc;
}

/* ---- error replies ------------------------------------------------------ */

/* Returns nonzero when err[0..len) starts with word followed by a space or
 * the end: error replies start with an upper-case code word. */
static int starts_with_word(const char *err, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(err, word, n) == 0 && (len == n || err[n] == ' ');
}

cluster_error_kind_t cluster_parse_redirect(const char *err, size_t len, cluster_redirect_t *out)
{
    cluster_error_kind_t kind;
    uint64_t slot, port;
    memset(out, 0, sizeof *out);
    if (starts_with_word(err, len, "MOVED"))
        kind = CLUSTER_ERROR_MOVED;
    else if (starts_with_word(err, len, "ASK"))
        kind = CLUSTER_ERROR_ASK;
    else
        return CLUSTER_ERROR_OTHER;
    const char *end = err + len;
    const char *num = err + (kind == CLUSTER_ERROR_MOVED ? 6 : 4); /* past "MOVED " / "ASK " */
    if (num >= end)
        return CLUSTER_ERROR_OTHER;
    const char *space = memchr(num, ' ', (size_t)(end - num));
    if (space == NULL || text_parse_u64(num, (size_t)(space - num), &slot) != 0 || slot >= CLUSTER_SLOTS)
        return CLUSTER_ERROR_OTHER;
    const char *host = space + 1;
    const char *colon = memrchr(host, ':', (size_t)(end - host)); /* IPv6 hosts hold colons too */
    if (colon == NULL || text_parse_u64(colon + 1, (size_t)(end - colon - 1), &port) != 0 || port < 1 ||
        port > 65535 || !host_is_valid(host, (size_t)(colon - host)))
        return CLUSTER_ERROR_OTHER;
    size_t hlen = (size_t)(colon - host);
    if (hlen == 0) {
        out->host_kind = CLUSTER_HOST_SAME;
    } else if (hlen == 1 && host[0] == '?') {
        out->host_kind = CLUSTER_HOST_UNKNOWN;
    } else {
        out->host_kind = CLUSTER_HOST_NAMED;
        memcpy(out->host, host, hlen);
        out->host[hlen] = '\0';
    }
    out->kind = kind;
    out->slot = (unsigned)slot;
    out->port = (int)port;
    return kind;
}

cluster_error_kind_t cluster_error_kind(const char *err, size_t len)
{
    static const char *const retry_codes[] = {"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING"};
    cluster_redirect_t redirect;
    cluster_error_kind_t kind = cluster_parse_redirect(err, len, &redirect);
    if (kind != CLUSTER_ERROR_OTHER)
        return kind;
    for (size_t i = 0; i < sizeof retry_codes / sizeof retry_codes[0]; i++)
        if (starts_with_word(err, len, retry_codes[i]))
            return CLUSTER_ERROR_RETRY;
    return CLUSTER_ERROR_OTHER;
}
