/* A topic's recent history on one thread: the anchored ring of frames and
 * coalesced reads of the topic's stream (see history.h). */
#include "node/history.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "broker/envelope.h"
#include "broker/functions.h"
#include "common/log.h"
#include "node/client.h"
#include "node/server.h"
#include "node/topic.h"

/* A Redis read in flight and the subscriptions waiting for its answer. */
struct history_read {
    history_read_t *next;
    node_thread_t *th;
    topic_t *topic;           /* NULL once the topic went away: the reply is dropped */
    enum history_from from;
    stream_id_t after;
    unsigned anchor : 1;      /* this read anchors the ring */
    unsigned done : 1;        /* answered: no more joiners */
    sub_t **waiters;
    uint32_t n, cap;
};

/* ---- the ring ---------------------------------------------------------------- */

static frame_t *ring_at(const history_t *h, uint32_t i)
{
    return h->ring[(h->head + i) % h->size];
}

/* Makes room for one more frame below the cap, growing the slot array
 * geometrically (quiet topics stay small); returns 0, or -1 when full or
 * out of memory. */
static int ring_grow(history_t *h)
{
    if (h->len < h->size)
        return 0;
    if (h->size >= h->cap)
        return -1;
    uint32_t size = h->size ? h->size * 2 : 8;
    if (size > h->cap)
        size = h->cap;
    frame_t **next = malloc(size * sizeof(*next));
    if (next == NULL)
        return -1;
    for (uint32_t i = 0; i < h->len; i++)
        next[i] = ring_at(h, i);
    free(h->ring);
    h->ring = next;
    h->size = size;
    h->head = 0;
    return 0;
}

/* Drops every frame. */
static void ring_clear(history_t *h)
{
    for (uint32_t i = 0; i < h->len; i++)
        frame_release(ring_at(h, i));
    h->len = 0;
    h->head = 0;
}

/* Appends a frame, dropping the oldest when full (the anchor moves up to
 * it: the ring no longer holds it). */
static void ring_push(history_t *h, frame_t *f)
{
    if (ring_grow(h) != 0) {
        if (h->len == 0)
            return;
        frame_t *old = ring_at(h, 0);
        h->from = old->id;
        frame_release(old);
        h->head = (h->head + 1) % h->size;
        h->len--;
    }
    h->ring[(h->head + h->len) % h->size] = frame_ref(f);
    h->len++;
}

/* Returns the index of the first frame with an id after `after`. */
static uint32_t ring_first_after(const history_t *h, stream_id_t after)
{
    uint32_t lo = 0, hi = h->len;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (stream_id_cmp(ring_at(h, mid)->id, after) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Replaces the ring with `older` (in order, all after new_from) followed by
 * the ring's frames newer than the last of them, keeping the newest cap. */
static void ring_rebuild(history_t *h, frame_t *const *older, size_t n, stream_id_t new_from)
{
    stream_id_t edge = n > 0 ? older[n - 1]->id : new_from;
    uint32_t keep_from = ring_first_after(h, edge);
    size_t total = n + (h->len - keep_from);
    uint32_t size = total < h->cap ? (uint32_t)total : h->cap;
    if (size < 8)
        size = h->cap < 8 ? h->cap : 8;
    frame_t **next = calloc(size ? size : 1, sizeof(*next));
    if (next == NULL)
        return;
    size_t skip = total > h->cap ? total - h->cap : 0, k = 0;
    stream_id_t from = new_from;
    for (size_t i = 0; i < total; i++) {
        frame_t *f = i < n ? older[i] : ring_at(h, keep_from + (uint32_t)(i - n));
        if (i < skip)
            from = f->id; /* not kept: the anchor moves past it */
        else
            next[k++] = frame_ref(f);
    }
    ring_clear(h);
    free(h->ring);
    h->ring = next;
    h->size = size ? size : 1;
    h->head = 0;
    h->len = (uint32_t)k;
    h->from = from;
}

/* ---- public: life ---------------------------------------------------------------- */

void history_init(history_t *h, uint32_t cap)
{
    memset(h, 0, sizeof(*h));
    h->cap = cap;
}

/* Forgets the requests queued during anchoring, releasing their clients. */
static void drop_waiting(history_t *h)
{
    history_waiting_t *w = h->waiting;
    for (uint32_t i = 0; i < h->nwaiting; i++)
        client_release(w[i].sub->client);
    h->nwaiting = 0;
}

void history_dispose(history_t *h)
{
    for (history_read_t *r = h->reads; r != NULL; r = r->next)
        r->topic = NULL;
    h->reads = NULL;
    drop_waiting(h);
    free(h->waiting);
    ring_clear(h);
    free(h->ring);
    memset(h, 0, sizeof(*h));
}

void history_on_live(history_t *h, frame_t *f)
{
    if (stream_id_cmp(f->id, h->last) > 0)
        h->last = f->id;
    if (h->cap > 0 && (h->anchored || h->anchoring) && (h->len == 0 || stream_id_cmp(f->id, ring_at(h, h->len - 1)->id) > 0))
        ring_push(h, f);
}

void history_on_link_down(history_t *h)
{
    h->anchored = 0;
    h->anchoring = 0;
    ring_clear(h);
    drop_waiting(h);
}

/* ---- answering ----------------------------------------------------------------- */

/* Answers a request from the ring (the caller checked it can). */
static void serve_from_ring(node_thread_t *th, history_t *h, sub_t *s, enum history_from from, stream_id_t after)
{
    history_batch_t b = {.status = HISTORY_OK, .position = h->last};
    frame_t **frames = NULL;
    if (from == HISTORY_AFTER) {
        uint32_t i = ring_first_after(h, after);
        b.n = h->len - i;
        if (b.n > 0 && (frames = malloc(b.n * sizeof(*frames))) != NULL) {
            for (uint32_t k = 0; k < b.n; k++)
                frames[k] = ring_at(h, i + k);
        } else {
            b.n = 0;
        }
    }
    b.frames = frames;
    th->hstats.served_from_memory++;
    client_on_history(s, &b);
    free(frames);
}

/* Builds one frame per stream entry of an ssehub_read reply; returns how
 * many were built into out (entries that are not well-formed are skipped). */
static size_t frames_from_entries(node_thread_t *th, const redisReply *entries, frame_t **out)
{
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        stream_id_t id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_ARRAY || stream_id_parse(e->element[0]->str, e->element[0]->len, &id) != 0)
            continue;
        const redisReply *fields = e->element[1];
        envelope_t ev = {.id = id, .retry = -1};
        int bad = 0;
        for (size_t k = 0; k + 1 < fields->elements && !bad; k += 2) {
            const redisReply *name = fields->element[k], *value = fields->element[k + 1];
            if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
                continue;
            bad = envelope_take_field(&ev, name->str, name->len, value->str, value->len) != 0;
        }
        if (bad)
            continue;
        if (ev.data == NULL)
            ev.data = "";
        frame_t *f = frame_new(&th->scratch, &ev);
        if (f != NULL)
            out[n++] = f;
    }
    return n;
}

/* The ring's anchor for a read that found no stream: events can only come
 * later, with ids from about now on. */
static stream_id_t anchor_for_missing_stream(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (stream_id_t){(uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000, 0};
}

/* The anchoring read answered: fix `from` as far back as the answer proves
 * complete, then answer the requests that waited. */
static void anchor_complete(node_thread_t *th, topic_t *t, history_read_t *r, const history_batch_t *b)
{
    history_t *h = &t->history;
    h->anchoring = 0;
    h->anchored = 1;
    if (stream_id_cmp(b->position, STREAM_ID_ZERO) == 0) {
        ring_rebuild(h, NULL, 0, anchor_for_missing_stream());
    } else if (b->status == HISTORY_OK && !b->more && r->from != HISTORY_NOW) {
        /* everything after the start up to the read, then live */
        stream_id_t from = r->from == HISTORY_AFTER ? r->after : b->n > 0 ? b->frames[0]->id : b->position;
        ring_rebuild(h, b->frames, b->n, from);
    } else {
        /* the read was not complete: the ring starts at its position */
        ring_rebuild(h, NULL, 0, b->position);
    }
    if (stream_id_cmp(b->position, h->last) > 0)
        h->last = b->position;
    uint32_t n = h->nwaiting;
    history_waiting_t *w = h->waiting;
    h->waiting = NULL;
    h->nwaiting = h->capwaiting = 0;
    for (uint32_t i = 0; i < n; i++) {
        client_t *c = w[i].sub->client;
        if (!c->closed && r->topic != NULL)
            history_request(th, t, w[i].sub, w[i].from, w[i].after);
        client_release(c);
    }
    free(w);
}

/* A coalesced read's answer extends the ring backwards when it reaches the
 * anchored part. */
static void backfill(history_t *h, const history_read_t *r, const history_batch_t *b)
{
    if (!h->anchored || h->cap == 0 || r->from != HISTORY_AFTER || b->status != HISTORY_OK ||
        stream_id_cmp(r->after, h->from) >= 0)
        return;
    if (b->more && (b->n == 0 || stream_id_cmp(b->frames[b->n - 1]->id, h->from) < 0))
        return;
    ring_rebuild(h, b->frames, b->n, r->after);
}

static void read_unlink(history_t *h, history_read_t *r)
{
    for (history_read_t **pp = &h->reads; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

/* Fails every waiter of a read. */
static void read_fail(history_read_t *r, int link_lost)
{
    for (uint32_t i = 0; i < r->n; i++) {
        client_t *c = r->waiters[i]->client;
        if (!c->closed)
            client_on_history_failed(r->waiters[i], link_lost);
        client_release(c);
    }
    r->n = 0;
}

/* Parses the reply [status, position, entries] into a batch (frames
 * allocated into *frames); returns 0, or -1 when it has another shape. */
static int read_parse(node_thread_t *th, const redisReply *rep, history_batch_t *b, frame_t ***frames)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_ARRAY)
        return -1;
    const char *status = rep->element[0]->str;
    b->status = strcmp(status, "gap") == 0 ? HISTORY_GAP : strcmp(status, "expired") == 0 ? HISTORY_EXPIRED : HISTORY_OK;
    if (stream_id_parse(rep->element[1]->str, rep->element[1]->len, &b->position) != 0)
        return -1;
    size_t count = rep->element[2]->elements;
    *frames = count ? malloc(count * sizeof(**frames)) : NULL;
    if (count && *frames == NULL)
        return -1;
    b->n = frames_from_entries(th, rep->element[2], *frames);
    b->frames = *frames;
    b->more = count >= (size_t)th->shared->cfg->replay_batch;
    return 0;
}

static int on_read_reply(redis_conn_t *conn, redisReply *rep, void *data)
{
    history_read_t *r = data;
    node_thread_t *th = r->th;
    r->done = 1;
    history_t *h = r->topic != NULL ? &r->topic->history : NULL;
    history_batch_t b = {0};
    frame_t **frames = NULL;
    if (rep == NULL || read_parse(th, rep, &b, &frames) != 0) {
        const char *err = rep == NULL ? "link lost" : rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply";
        int missing = rep != NULL && rep->type == REDIS_REPLY_ERROR && functions_missing_error(rep->str, rep->len);
        if (rep != NULL)
            log_error("node", "history read failed", json_pack("{s:s}", "error", err));
        if (h != NULL) {
            read_unlink(h, r);
            if (r->anchor)
                h->anchoring = 0;
        }
        read_fail(r, rep == NULL || missing);
        if (missing && conn != NULL)
            redis_conn_reset(conn); /* reconnecting loads the library again */
    } else {
        if (h != NULL && stream_id_cmp(b.position, h->last) > 0)
            h->last = b.position;
        for (uint32_t i = 0; i < r->n; i++) {
            client_t *c = r->waiters[i]->client;
            if (!c->closed)
                client_on_history(r->waiters[i], &b);
            client_release(c);
        }
        if (r->topic != NULL) {
            h = &r->topic->history;
            read_unlink(h, r);
            if (r->anchor)
                anchor_complete(th, r->topic, r, &b);
            else
                backfill(h, r, &b);
        }
    }
    for (size_t i = 0; i < b.n; i++)
        frame_release(frames[i]);
    free(frames);
    free(r->waiters);
    free(r);
    return 0;
}

/* Adds a waiter to a read, holding its client; returns 0 or -1. */
static int read_add(history_read_t *r, sub_t *s)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 4;
        sub_t **w = realloc(r->waiters, cap * sizeof(*w));
        if (w == NULL)
            return -1;
        r->waiters = w;
        r->cap = cap;
    }
    r->waiters[r->n++] = s;
    client_hold(s->client);
    return 0;
}

/* Sends FCALL_RO ssehub_read for a new read; returns it, or NULL when the
 * link is down or memory ran out. */
static history_read_t *read_start(node_thread_t *th, topic_t *t, enum history_from from, stream_id_t after, int anchor)
{
    const ssehub_config_t *cfg = th->shared->cfg;
    history_read_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    *r = (history_read_t){.th = th, .topic = t, .from = from, .after = after, .anchor = anchor};
    char start[STREAM_ID_MAX_TEXT], count[24], maxage[24];
    const char *a = from == HISTORY_NOW ? "$" : from == HISTORY_EARLIEST ? "earliest" : start;
    if (from == HISTORY_AFTER)
        stream_id_format(after, start);
    snprintf(count, sizeof(count), "%ld", cfg->replay_batch);
    snprintf(maxage, sizeof(maxage), "%ld", cfg->history_max_age);
    const char *argv[8] = {"FCALL_RO", SSEHUB_FN_READ, "1", t->stream_key.base, a, count, "maxage", maxage};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = i == 3 ? t->stream_key.len : strlen(argv[i]);
    if (!router_shard_up(th, t->shard) ||
        router_command(th, t->stream_key.base, t->stream_key.len, on_read_reply, r, 8, argv, lens) != 0) {
        free(r);
        return NULL;
    }
    r->next = t->history.reads;
    t->history.reads = r;
    th->hstats.redis_reads++;
    return r;
}

/* Joins a read in flight from the same start, or starts one. */
static void read_join(node_thread_t *th, topic_t *t, sub_t *s, enum history_from from, stream_id_t after, int anchor)
{
    for (history_read_t *r = t->history.reads; r != NULL; r = r->next) {
        if (!r->done && r->from == from && (from != HISTORY_AFTER || stream_id_cmp(r->after, after) == 0)) {
            if (read_add(r, s) == 0) {
                th->hstats.coalesced++;
                return;
            }
        }
    }
    history_read_t *r = read_start(th, t, from, after, anchor);
    if (r == NULL || read_add(r, s) != 0) {
        if (r != NULL)
            r->done = 1; /* the reply finds no waiter */
        client_on_history_failed(s, r == NULL);
        return;
    }
    if (anchor)
        t->history.anchoring = 1;
}

/* Queues a request until the anchoring read answers; returns 0 or -1. */
static int wait_for_anchor(history_t *h, sub_t *s, enum history_from from, stream_id_t after)
{
    if (h->nwaiting == h->capwaiting) {
        uint32_t cap = h->capwaiting ? h->capwaiting * 2 : 8;
        history_waiting_t *w = realloc(h->waiting, cap * sizeof(*w));
        if (w == NULL)
            return -1;
        h->waiting = w;
        h->capwaiting = cap;
    }
    h->waiting[h->nwaiting++] = (history_waiting_t){s, from, after};
    client_hold(s->client);
    return 0;
}

void history_request(node_thread_t *th, topic_t *t, sub_t *s, enum history_from from, stream_id_t after)
{
    history_t *h = &t->history;
    if (h->anchored && from != HISTORY_EARLIEST && (from == HISTORY_NOW || stream_id_cmp(after, h->from) >= 0)) {
        serve_from_ring(th, h, s, from, after);
        return;
    }
    if (h->anchoring) {
        if (wait_for_anchor(h, s, from, after) != 0)
            client_on_history_failed(s, 0);
        return;
    }
    read_join(th, t, s, from, after, !h->anchored && h->cap > 0);
}
