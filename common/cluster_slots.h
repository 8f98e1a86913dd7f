/* Redis Cluster routing without a cluster client (hiredis 0.14 has none):
 * the key -> hash slot function, the slot -> shard map built from a
 * CLUSTER SLOTS reply, and the reading of MOVED / ASK / CLUSTERDOWN-style
 * error replies. Pure functions: no I/O, no global state. */
#ifndef SSEHUB_COMMON_CLUSTER_SLOTS_H
#define SSEHUB_COMMON_CLUSTER_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* Hash slots of a Redis Cluster; a slot is 0..CLUSTER_SLOTS-1. */
#define CLUSTER_SLOTS 16384
/* Most shards a map can have: each serves at least one slot. */
#define CLUSTER_MAX_SHARDS CLUSTER_SLOTS
/* Room for a host name or address and its NUL (names are at most 255). */
#define CLUSTER_HOST_MAX 256

/* ---- key hashing -------------------------------------------------------- */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection),
 * the checksum Redis Cluster hashes keys with; "123456789" gives 0x31C3. */
uint16_t cluster_crc16(const char *buf, size_t len);

/* Returns the hash slot of a key: the CRC16 of the bytes between the first
 * '{' and the first '}' after it when there is at least one such byte (a
 * hash tag), else of the whole key; & 16383. */
unsigned cluster_key_slot(const char *key, size_t len);

/* ---- the slot map ------------------------------------------------------- */

/* A replica's address as clients should use it. */
typedef struct cluster_node {
    char host[CLUSTER_HOST_MAX]; /* name or address as announced (IPv6 bare, "::1"); never empty */
    int port;                    /* 1..65535 */
} cluster_node_t;

/* A master and the replicas serving its slots. */
typedef struct cluster_shard {
    char host[CLUSTER_HOST_MAX]; /* the master's, as for a replica; no two shards of a map */
    int port;                    /* share host and port */
    cluster_node_t *replicas;    /* nreplicas entries, owned by the map; NULL when none */
    size_t nreplicas;            /* distinct addresses, in the order the reply gave them */
} cluster_shard_t;

/* Which shard serves each slot. 32 KB: keep it off small stacks. The map
 * owns shards and their replicas; cluster_map_free releases them. */
typedef struct cluster_map {
    cluster_shard_t *shards;      /* nshards entries, each serving at least one slot */
    size_t nshards;               /* at most CLUSTER_MAX_SHARDS */
    int16_t slots[CLUSTER_SLOTS]; /* index into shards, or -1 when no shard serves the slot */
} cluster_map_t;

/* Makes m an empty map (no shards, every slot unassigned). */
void cluster_map_init(cluster_map_t *m);

/* Builds m (its old contents are not looked at, so free them first) from a
 * CLUSTER SLOTS reply: [start, end, [host, port, id, ...], replica...]...
 * Ranges of one master become one shard. A NULL or "" host means the host
 * the command was sent to, fallback_host (NULL when unknown); a "?" host (a
 * node set to announce a hostname that has none) names no reachable node,
 * so it fails for a master and drops a replica. Returns 0, or -1 with a
 * message in err and m left empty, for any reply that is not a well-formed
 * map (an error reply, wrong types, a slot outside 0..16383, start > end,
 * a port outside 1..65535, a slot in two ranges) or when out of memory. */
int cluster_map_from_slots_reply(cluster_map_t *m, const redisReply *r, const char *fallback_host, char *err,
                                 size_t errlen);

/* Returns the index of the shard serving slot, or -1 when none does or the
 * slot is out of range. */
int cluster_map_shard_of(const cluster_map_t *m, unsigned slot);

/* Returns the index of the shard serving the key's slot, or -1. */
int cluster_map_shard_of_key(const cluster_map_t *m, const char *key, size_t len);

/* Returns nonzero when every slot is served (the cluster can take any key). */
int cluster_map_covers_all(const cluster_map_t *m);

/* Returns nonzero when a and b route every slot to the same master address
 * with the same set of replica addresses, whatever the order of their
 * shards: a refresh that changed nothing keeps its connections. */
int cluster_map_equal(const cluster_map_t *a, const cluster_map_t *b);

/* Releases the shards and leaves m empty (safe on an empty map). */
void cluster_map_free(cluster_map_t *m);

/* ---- error replies ------------------------------------------------------ */

/* What a cluster error reply asks of the client. */
typedef enum cluster_error_kind {
    CLUSTER_ERROR_OTHER = 0, /* not a (well-formed) cluster error: hand it to the caller */
    CLUSTER_ERROR_MOVED,     /* the slot lives elsewhere now: resend there and refresh the map */
    CLUSTER_ERROR_ASK,       /* slot migrating: send ASKING then this one command there; keep the map */
    CLUSTER_ERROR_RETRY,     /* CLUSTERDOWN, TRYAGAIN, MASTERDOWN, LOADING: same node, a bit later */
} cluster_error_kind_t;

/* How a redirect names the node to go to. */
typedef enum cluster_host_kind {
    CLUSTER_HOST_NAMED,   /* host holds it */
    CLUSTER_HOST_SAME,    /* ":port": the host of the connection that got the error */
    CLUSTER_HOST_UNKNOWN, /* "?:port": the node announces no hostname; refresh the map instead */
} cluster_host_kind_t;

/* A MOVED or ASK error reply, read. */
typedef struct cluster_redirect {
    cluster_error_kind_t kind; /* CLUSTER_ERROR_MOVED or _ASK */
    unsigned slot;             /* 0..16383 */
    cluster_host_kind_t host_kind;
    char host[CLUSTER_HOST_MAX]; /* "" unless host_kind is CLUSTER_HOST_NAMED; IPv6 bare */
    int port;                    /* 1..65535 */
} cluster_redirect_t;

/* Reads err[0..len) (an error reply's text, no NUL needed) as
 * "MOVED <slot> <host>:<port>" or "ASK ..."; the port follows the last
 * colon, so bare IPv6 hosts work. Returns the kind, or CLUSTER_ERROR_OTHER
 * (out zeroed) for anything else, including a malformed redirect: every
 * accepted one formats back to exactly its input. */
cluster_error_kind_t cluster_parse_redirect(const char *err, size_t len, cluster_redirect_t *out);

/* Classifies an error reply's text by its first word: a well-formed MOVED
 * or ASK, CLUSTERDOWN / TRYAGAIN / MASTERDOWN / LOADING (retry), or other. */
cluster_error_kind_t cluster_error_kind(const char *err, size_t len);

#endif
