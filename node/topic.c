/* The topic table of one worker thread and the topics' Redis subscriptions
 * (see topic.h). Live messages are decoded and framed here, once per topic
 * and thread, and handed to the subscribers in client.c. */
#include "node/topic.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker/envelope.h"
#include "broker/stream_keys.h"
#include "common/log.h"
#include "common/text.h"
#include "node/client.h"
#include "node/cursor.h"
#include "node/server.h"
#include "node/sse_frame.h"

/* ---- the table ----------------------------------------------------------------- */

/* FNV-1a over a channel name: the table's key. */
static uint64_t chan_hash(const char *s, size_t len)
{
    return text_fnv1a64(TEXT_FNV1A64_SEED, s, len);
}

void topic_table_init(topic_table_t *t)
{
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->count = 0;
}

/* Returns the topic whose live channel is (chan, len), or NULL. */
static topic_t *table_find(topic_table_t *t, const char *chan, size_t len)
{
    uint64_t h = chan_hash(chan, len);
    for (topic_t *p = t->buckets[h & (t->nbuckets - 1)]; p != NULL; p = p->next)
        if (p->chan_hash == h && p->channel.len == len && memcmp(p->channel.base, chan, len) == 0)
            return p;
    return NULL;
}

/* Doubles the bucket array when the table gets crowded. */
static void table_grow(topic_table_t *t)
{
    size_t n = t->nbuckets * 2;
    topic_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (topic_t *p = t->buckets[i], *next; p != NULL; p = next) {
            next = p->next;
            p->next = b[p->chan_hash & (n - 1)];
            b[p->chan_hash & (n - 1)] = p;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void table_insert(topic_table_t *t, topic_t *p)
{
    if (t->count >= t->nbuckets)
        table_grow(t);
    topic_t **b = &t->buckets[p->chan_hash & (t->nbuckets - 1)];
    p->next = *b;
    *b = p;
    t->count++;
}

static void table_remove(topic_table_t *t, topic_t *p)
{
    for (topic_t **pp = &t->buckets[p->chan_hash & (t->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            t->count--;
            return;
        }
    }
}

static void topic_free(topic_t *p)
{
    history_dispose(&p->history);
    buf_free(&p->channel);
    buf_free(&p->stream_key);
    free(p->name);
    free(p);
}

void topic_table_dispose(topic_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (topic_t *p = t->buckets[i], *next; p != NULL; p = next) {
            next = p->next;
            topic_free(p);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->count = 0;
}

/* ---- subscriptions ------------------------------------------------------------- */

/* Sends (UN)SUBSCRIBE for one topic on its shard (SSUBSCRIBE,
 * SUNSUBSCRIBE on a Redis Cluster); returns 0, or -1 when the shard is down. */
static int topic_send(node_thread_t *th, topic_t *p, int subscribe)
{
    if (!router_shard_up(th, p->shard))
        return -1;
    int sharded = router_sharded(th);
    const char *verb =
        subscribe ? (sharded ? "SSUBSCRIBE" : "SUBSCRIBE") : (sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE");
    const char *argv[2] = {verb, p->channel.base};
    size_t lens[2] = {strlen(verb), p->channel.len};
    return redis_conn_command(router_sub(th, p->shard), NULL, NULL, 2, argv, lens);
}

static void topic_subscribe(node_thread_t *th, topic_t *p)
{
    if (topic_send(th, p, 1) == 0)
        p->state = TOPIC_SUBSCRIBING;
}

topic_t *topic_acquire(node_thread_t *th, const char *name, size_t len)
{
    const char *prefix = th->shared->cfg->prefix;
    buf_t chan = BUF_INIT;
    if (topic_key(&chan, prefix, name, len, TOPIC_KEY_LIVE) != 0)
        return NULL;
    topic_t *p = table_find(&th->topics, chan.base, chan.len);
    if (p != NULL) {
        buf_free(&chan);
        p->idle_since = 0;
        return p;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->name = malloc(len + 1)) == NULL ||
        topic_key(&p->stream_key, prefix, name, len, TOPIC_KEY_STREAM) != 0) {
        buf_free(&chan);
        if (p != NULL)
            topic_free(p);
        return NULL;
    }
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    p->name_len = len;
    p->hash = cursor_topic_hash(name, len);
    p->channel = chan;
    p->chan_hash = chan_hash(chan.base, chan.len);
    p->state = TOPIC_UNSUBSCRIBED;
    p->slot = cluster_key_slot(p->stream_key.base, p->stream_key.len);
    p->shard = router_shard_of_key(th, p->stream_key.base, p->stream_key.len);
    h2o_linklist_init_anchor(&p->subs);
    history_init(&p->history, (uint32_t)th->shared->cfg->replay_memory_events);
    table_insert(&th->topics, p);
    topic_subscribe(th, p);
    return p;
}

/* Unsubscribes (or frees) a topic nobody uses. */
static void topic_drop(node_thread_t *th, topic_t *p)
{
    p->idle_since = 0;
    switch (p->state) {
    case TOPIC_SUBSCRIBED:
        if (topic_send(th, p, 0) == 0) {
            p->state = TOPIC_UNSUBSCRIBING;
            return;
        }
        break;
    case TOPIC_SUBSCRIBING:
    case TOPIC_UNSUBSCRIBING:
        return; /* decided when the confirmation arrives */
    case TOPIC_UNSUBSCRIBED:
        break;
    }
    table_remove(&th->topics, p);
    topic_free(p);
}

void topic_release_if_unused(node_thread_t *th, topic_t *p)
{
    if (p->nsubs > 0)
        return;
    long linger = th->shared->cfg->topic_linger_ms;
    if (linger > 0 && p->state == TOPIC_SUBSCRIBED && !atomic_load(&th->shared->stopping)) {
        if (p->idle_since == 0)
            p->idle_since = h2o_now(th->loop);
        return;
    }
    topic_drop(th, p);
}

void topics_expire_idle(node_thread_t *th)
{
    uint64_t now = h2o_now(th->loop), linger = (uint64_t)th->shared->cfg->topic_linger_ms;
    for (size_t i = 0; i < th->topics.nbuckets; i++) {
        for (topic_t *p = th->topics.buckets[i], *next; p != NULL; p = next) {
            next = p->next; /* topic_drop may free p */
            if (p->nsubs == 0 && p->idle_since != 0 && (now - p->idle_since >= linger || atomic_load(&th->shared->stopping)))
                topic_drop(th, p);
        }
    }
}

/* ---- the pattern subscription -------------------------------------------------- */

/* Sends (P)SUBSCRIBE or PUNSUBSCRIBE for P{*}:l; returns 0 or -1. */
static int pattern_send(node_thread_t *th, const char *verb)
{
    buf_t pat = BUF_INIT;
    int r = buf_printf(&pat, "%s{*}:l", th->shared->cfg->prefix);
    const char *argv[2] = {verb, pat.base};
    size_t lens[2] = {strlen(verb), pat.len};
    r = r == 0 && router_shard_up(th, 0) ? redis_conn_command(router_sub(th, 0), NULL, NULL, 2, argv, lens)
                                         : -1;
    buf_free(&pat);
    return r;
}

static void pattern_subscribe(node_thread_t *th)
{
    if (!router_sharded(th) && th->pattern_state == TOPIC_UNSUBSCRIBED && pattern_send(th, "PSUBSCRIBE") == 0)
        th->pattern_state = TOPIC_SUBSCRIBING;
}

void topics_pattern_acquire(node_thread_t *th)
{
    if (th->npattern++ == 0)
        pattern_subscribe(th);
}

void topics_pattern_release(node_thread_t *th)
{
    if (--th->npattern == 0 && th->pattern_state == TOPIC_SUBSCRIBED && pattern_send(th, "PUNSUBSCRIBE") == 0)
        th->pattern_state = TOPIC_UNSUBSCRIBING;
}

/* A push about the pattern subscription: confirmations and messages. */
static void pattern_on_push(node_thread_t *th, const redisReply *r)
{
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "psubscribe") == 0) {
        th->pattern_state = TOPIC_SUBSCRIBED;
        if (th->npattern == 0 && pattern_send(th, "PUNSUBSCRIBE") == 0)
            th->pattern_state = TOPIC_UNSUBSCRIBING;
        else
            clients_on_pattern_subscribed(th);
    } else if (strcmp(kind, "punsubscribe") == 0) {
        th->pattern_state = TOPIC_UNSUBSCRIBED;
        if (th->npattern > 0)
            pattern_subscribe(th);
    } else if (r->elements == 4 && r->element[2]->type == REDIS_REPLY_STRING &&
               r->element[3]->type == REDIS_REPLY_STRING) {
        buf_t topic = BUF_INIT;
        envelope_t ev;
        frame_t *f = NULL;
        if (topic_from_key(&topic, th->shared->cfg->prefix, r->element[2]->str, r->element[2]->len) == TOPIC_KEY_LIVE &&
            envelope_decode_live(r->element[3]->str, r->element[3]->len, &ev) == 0 &&
            (f = frame_new(&th->scratch, &ev)) != NULL) {
            th->stats.v[STAT_EVENTS_IN]++;
            clients_on_pattern_live(th, topic.base, topic.len, f);
        }
        frame_release(f);
        buf_free(&topic);
    }
}

void topics_on_shard_up(node_thread_t *th, int shard)
{
    if (shard == 0 && th->npattern > 0)
        pattern_subscribe(th);
    for (size_t i = 0; i < th->topics.nbuckets; i++)
        for (topic_t *p = th->topics.buckets[i]; p != NULL; p = p->next)
            if (p->shard == shard && p->state == TOPIC_UNSUBSCRIBED)
                topic_subscribe(th, p);
}

/* The topic's subscription is gone (its shard's link, or its slot moved):
 * forget it; an unused topic goes. Returns 1 when p was freed. */
static int topic_lost(node_thread_t *th, topic_t *p)
{
    p->state = TOPIC_UNSUBSCRIBED;
    history_on_link_down(&p->history);
    if (p->nsubs > 0)
        return 0;
    table_remove(&th->topics, p);
    topic_free(p);
    return 1;
}

void topics_on_shard_down(node_thread_t *th, int shard)
{
    if (shard == 0 && !router_sharded(th))
        th->pattern_state = TOPIC_UNSUBSCRIBED;
    for (size_t i = 0; i < th->topics.nbuckets; i++) {
        for (topic_t *p = th->topics.buckets[i], *next; p != NULL; p = next) {
            next = p->next;
            if (p->shard == shard)
                topic_lost(th, p);
        }
    }
}

void topics_on_map(node_thread_t *th)
{
    for (size_t i = 0; i < th->topics.nbuckets; i++) {
        for (topic_t *p = th->topics.buckets[i], *next; p != NULL; p = next) {
            next = p->next;
            int shard = router_shard_of_key(th, p->stream_key.base, p->stream_key.len);
            if (shard == p->shard)
                continue;
            if (p->shard >= 0) {
                clients_on_topic_down(th, p);
                if (topic_lost(th, p))
                    continue;
            }
            p->shard = shard;
            topic_subscribe(th, p);
        }
    }
}

/* The subscription is active: every waiting subscriber may read history. */
static void topic_on_subscribed(node_thread_t *th, topic_t *p)
{
    if (p->state == TOPIC_UNSUBSCRIBING)
        return; /* a late duplicate; the unsubscribe decides */
    p->state = TOPIC_SUBSCRIBED;
    if (p->nsubs == 0) {
        topic_release_if_unused(th, p);
        return;
    }
    for (h2o_linklist_t *l = p->subs.next, *next; l != &p->subs; l = next) {
        next = l->next;
        client_on_subscribed(H2O_STRUCT_FROM_MEMBER(sub_t, topic_link, l));
    }
}

static void topic_on_unsubscribed(node_thread_t *th, topic_t *p)
{
    if (p->state != TOPIC_UNSUBSCRIBING)
        return;
    p->state = TOPIC_UNSUBSCRIBED;
    if (p->nsubs > 0)
        topic_subscribe(th, p);
    else
        topic_release_if_unused(th, p);
}

/* Decodes a live message, frames it once and hands it to every subscriber. */
static void topic_on_message(node_thread_t *th, topic_t *p, const char *msg, size_t len)
{
    envelope_t ev;
    if (envelope_decode_live(msg, len, &ev) != 0) {
        log_warn("node", "malformed live message", json_pack("{s:s}", "topic", p->name));
        return;
    }
    frame_t *f = frame_new(&th->scratch, &ev);
    if (f == NULL) {
        log_error("node", "cannot frame event", json_pack("{s:s}", "topic", p->name));
        return;
    }
    th->stats.v[STAT_EVENTS_IN]++;
    history_on_live(&p->history, f);
    for (h2o_linklist_t *l = p->subs.next, *next; l != &p->subs; l = next) {
        next = l->next;
        client_on_live(H2O_STRUCT_FROM_MEMBER(sub_t, topic_link, l), f);
    }
    frame_release(f);
}

/* A sharded subscription ended by Redis, not by us: the slot moved to
 * another shard (a migration). The topic goes down and the map is read
 * again; it comes back up on the slot's new shard. */
static void topic_on_moved(node_thread_t *th, topic_t *p)
{
    log_info("node", "subscription ended by redis: slot moved",
             json_pack("{s:s,s:i}", "topic", p->name, "slot", (int)p->slot));
    clients_on_topic_down(th, p);
    clients_flush_dirty(th);
    if (topic_lost(th, p))
        return;
    p->shard = -1;
    router_request_refresh(th);
}

void topics_on_push(node_thread_t *th, int shard, const void *reply)
{
    const redisReply *r = reply;
    if (r->elements < 2 || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (kind[0] == 'p') {
        pattern_on_push(th, r);
        return;
    }
    if (strcmp(kind, "smessage") == 0 || strcmp(kind, "ssubscribe") == 0 || strcmp(kind, "sunsubscribe") == 0)
        kind++; /* sharded pub/sub on a cluster: the same pushes */
    topic_t *p = table_find(&th->topics, r->element[1]->str, r->element[1]->len);
    if (p == NULL || p->shard != shard)
        return;
    if (strcmp(kind, "message") == 0 && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
        topic_on_message(th, p, r->element[2]->str, r->element[2]->len);
    else if (strcmp(kind, "subscribe") == 0)
        topic_on_subscribed(th, p);
    else if (strcmp(kind, "unsubscribe") == 0 && p->state != TOPIC_UNSUBSCRIBING && router_sharded(th))
        topic_on_moved(th, p);
    else if (strcmp(kind, "unsubscribe") == 0)
        topic_on_unsubscribed(th, p);
}
