/* Where a worker thread's Redis commands and subscriptions go. redis_url
 * names one Redis, the seed nodes of a Redis Cluster, or Sentinels; the
 * router finds out which (CLUSTER SLOTS on a seed; Sentinel's
 * get-master-addr-by-name) and keeps one shard per master: a command
 * connection (function library loaded) and a pub/sub connection. A single
 * Redis is a cluster of one shard that owns every slot.
 *
 * In a Redis Cluster a topic's keys and live channel share one slot
 * (DESIGN §3), so each topic lives on one shard: its channel is
 * SSUBSCRIBEd there (sharded pub/sub: a message travels only inside that
 * shard) and its history read there. The slot map is read again when a
 * shard's link fails, when Redis answers MOVED/ASK/CLUSTERDOWN and when a
 * sharded subscription is ended by a slot migration; topics whose slot
 * moved are taken down and brought up on their new shard, and their
 * clients' holes are filled from the stream, as after a reconnect. */
#ifndef SSEHUB_NODE_ROUTER_H
#define SSEHUB_NODE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/cluster_slots.h"
#include "common/redis_url.h"
#include "node/redis_conn.h"

struct node_thread;

#define ROUTER_MAX_SHARDS 64

enum router_mode {
    ROUTER_DISCOVERING, /* not yet known: a single Redis or a cluster */
    ROUTER_SINGLE,      /* one Redis (found directly or through Sentinel) */
    ROUTER_CLUSTER,     /* a Redis Cluster: one shard per master */
};

typedef struct shard {
    struct node_thread *th;
    int index;         /* in router.shards */
    redis_url_t url;   /* the master's address, with redis_url's credentials */
    redis_conn_t *cmd; /* commands (history reads, publishes); the library is loaded on it */
    redis_conn_t *sub; /* pub/sub: the live channels of the topics on this shard */
    int up;            /* both connections ready and announced to the topics */
    int was_up;        /* up before: the next up is a reconnect */
} shard_t;

typedef struct router {
    enum router_mode mode;
    redis_conn_t *boot;     /* discovery: a seed, a known master or a Sentinel */
    redis_addr_t boot_addr; /* where boot connects */
    int boot_drop_pending;  /* boot failed or answered: close it at the next tick */
    unsigned boot_next;     /* the address the next discovery tries */
    int boot_sentinel;      /* boot is a Sentinel connection */
    int refresh_wanted;     /* read the slot map (or ask Sentinel) again soon */
    int refresh_inflight;   /* a CLUSTER SLOTS is out */
    uint64_t last_refresh;  /* loop time of the last map read */
    shard_t *shards[ROUTER_MAX_SHARDS];
    int8_t slot_shard[CLUSTER_SLOTS]; /* slot -> shard index, -1 = not served */
    int complete;                     /* every slot has a shard */
    int all_up_once;                  /* every shard has been up together (start-up is over) */
} router_t;

/* Starts discovery (the thread's loop exists). */
void router_start(struct node_thread *th);
/* Closes every connection. */
void router_stop(struct node_thread *th);
/* Once a second: retries discovery and map reads while something is down. */
void router_tick(struct node_thread *th);

/* Something says the slot map is stale (a slot migration ended a sharded
 * subscription): read it again soon. */
void router_request_refresh(struct node_thread *th);
/* The shard serving a key (any key of a topic: they share a slot), or -1
 * while that is not known. */
int router_shard_of_key(const struct node_thread *th, const char *key, size_t len);
/* The shard's command / pub/sub connection, or NULL (index -1 or gone). */
redis_conn_t *router_cmd(const struct node_thread *th, int shard);
redis_conn_t *router_sub(const struct node_thread *th, int shard);
/* The command connection for a key: NULL when its shard is unknown or down. */
redis_conn_t *router_cmd_for_key(const struct node_thread *th, const char *key, size_t len);
/* Sends a command to the shard serving key (redis_conn_command); -1 when
 * that shard is not known or down. */
int router_command(const struct node_thread *th, const char *key, size_t keylen, redis_reply_cb cb,
                   void *data, int argc, const char **argv, const size_t *argvlen);
/* True when the shard is up. */
int router_shard_up(const struct node_thread *th, int shard);
/* True when the shard of every topic is up (new streams of these topics
 * may start). */
int router_topics_up(struct node_thread *th, const h2o_iovec_t *topics, size_t n);
/* True in cluster mode: live channels use SSUBSCRIBE. */
int router_sharded(const struct node_thread *th);

#endif
