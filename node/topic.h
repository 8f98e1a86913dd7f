/* The topics one worker thread serves: a table keyed by live channel name,
 * each topic with its Redis subscription state and its local subscribers.
 * A topic is SUBSCRIBEd on its first local subscriber and UNSUBSCRIBEd after
 * its last; live messages are framed once here and handed to every
 * subscriber. */
#ifndef SSEHUB_NODE_TOPIC_H
#define SSEHUB_NODE_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/linklist.h>

#include "broker/stream_id.h"
#include "common/buf.h"
#include "node/frame.h"
#include "node/history.h"

struct node_thread;

enum topic_state {
    TOPIC_UNSUBSCRIBED, /* no SUBSCRIBE on the current Redis link */
    TOPIC_SUBSCRIBING,  /* SUBSCRIBE sent, confirmation pending */
    TOPIC_SUBSCRIBED,
    TOPIC_UNSUBSCRIBING, /* UNSUBSCRIBE sent; SUBSCRIBE again after it if needed */
};

typedef struct topic {
    struct topic *next;   /* hash chain */
    uint64_t chan_hash;
    char *name;           /* the topic, NUL-terminated copy */
    size_t name_len;
    uint64_t hash;        /* cursor_topic_hash(name) */
    buf_t channel;        /* P{topic}:l */
    buf_t stream_key;     /* P{topic}:s */
    enum topic_state state;
    int shard;            /* router shard serving its slot; -1 while unknown */
    unsigned slot;        /* its Redis Cluster slot */
    h2o_linklist_t subs;  /* sub_t.topic_link of local subscribers */
    size_t nsubs;
    uint64_t idle_since;  /* loop time its last subscriber left; 0 while in use */
    history_t history;    /* recent frames and reads of the stream */
} topic_t;

typedef struct topic_table {
    topic_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
} topic_table_t;

void topic_table_init(topic_table_t *t);
/* Frees every topic (the caller has closed every client first). */
void topic_table_dispose(topic_table_t *t);

/* Returns the topic, creating it (and subscribing when the link is up)
 * on first use; NULL only when out of memory. */
topic_t *topic_acquire(struct node_thread *th, const char *name, size_t len);
/* Called after a subscriber left. An unused topic lingers, subscribed and
 * still recording its recent events, for topic_linger_ms (clients that
 * come back, e.g. after a reconnect, are served from memory); then it is
 * unsubscribed and freed. */
void topic_release_if_unused(struct node_thread *th, topic_t *t);
/* Unsubscribes the topics that have lingered long enough (called once a
 * second). */
void topics_expire_idle(struct node_thread *th);

/* A stream with `*` or URI template selectors came or left: the thread
 * holds one pattern subscription to every topic's live channel while it
 * has such streams (they are live only). */
void topics_pattern_acquire(struct node_thread *th);
void topics_pattern_release(struct node_thread *th);

/* A shard's link came (back) up: SUBSCRIBE its topics. */
void topics_on_shard_up(struct node_thread *th, int shard);
/* A shard's link was lost: its subscriptions are gone on the server. */
void topics_on_shard_down(struct node_thread *th, int shard);
/* The slot map changed: topics whose slot has another shard now are taken
 * down there (their clients wait and fill the hole) and subscribed on the
 * new one. */
void topics_on_map(struct node_thread *th);
/* A pub/sub push from a shard's connection (subscribe/unsubscribe
 * confirmation or message); pushes about topics now on another shard are
 * stale and ignored. */
void topics_on_push(struct node_thread *th, int shard, const void *redis_reply);

#endif
