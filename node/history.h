/* The recent history of one topic on one worker thread, and every read of
 * its stream. Each subscribed topic keeps its last replay_memory_events
 * frames in a ring, "anchored" so that it provably holds every event after
 * `from`: right after the SUBSCRIBE is confirmed, one read after the
 * first requester's position (or of the current position) fixes `from`,
 * and from then on every live message is appended. A resume whose cursor
 * is at or after `from` is served from the ring at once, with shared
 * frames and no Redis read. Other reads are coalesced per (topic, start)
 * and their results backfill the ring. This is what makes thousands of
 * clients reconnecting with nearly the same Last-Event-ID cheap. */
#ifndef SSEHUB_NODE_HISTORY_H
#define SSEHUB_NODE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "broker/stream_id.h"
#include "node/frame.h"

struct node_thread;
struct topic;
struct sub;

/* Where a read starts. */
enum history_from {
    HISTORY_AFTER,    /* after a given entry id */
    HISTORY_EARLIEST, /* all retained history */
    HISTORY_NOW,      /* no events: just the current position */
};

enum history_status { HISTORY_OK, HISTORY_GAP, HISTORY_EXPIRED };

/* One answer to a request. frames are borrowed for the duration of the
 * callback: take a reference to keep one. */
typedef struct history_batch {
    enum history_status status; /* GAP/EXPIRED: events after the start were lost */
    stream_id_t position;       /* newest entry id known for the topic */
    frame_t *const *frames;     /* in stream order, all after the start */
    size_t n;
    int more;                   /* a full batch: ask again after the last frame */
} history_batch_t;

typedef struct history_read history_read_t;

/* A request that came while the ring was being anchored. */
typedef struct history_waiting {
    struct sub *sub;
    enum history_from from;
    stream_id_t after;
} history_waiting_t;

typedef struct history {
    frame_t **ring;          /* ring[(head + i) % size], oldest first */
    uint32_t cap;            /* most frames kept */
    uint32_t size;           /* slots allocated: grows with use up to cap */
    uint32_t head, len;
    stream_id_t from;        /* anchored: the ring holds every event after it */
    stream_id_t last;        /* newest id seen (read or live) */
    unsigned anchored : 1;
    unsigned anchoring : 1;  /* the anchoring read is in flight */
    history_read_t *reads;   /* Redis reads in flight */
    history_waiting_t *waiting; /* requests made while anchoring, answered after */
    uint32_t nwaiting, capwaiting;
} history_t;

/* Sets up an empty, unanchored history keeping up to cap frames (0: no
 * ring; every request reads Redis, still coalesced). */
void history_init(history_t *h, uint32_t cap);
/* Frees the ring; replies of reads still in flight are dropped. */
void history_dispose(history_t *h);
/* A live event arrived on the topic's channel. */
void history_on_live(history_t *h, frame_t *f);
/* The Redis link went down: the ring can no longer prove it is complete,
 * and queued requests are dropped (the client layer asks again). */
void history_on_link_down(history_t *h);

/* Asks for the events of s's topic after a point; the answer comes through
 * client_on_history() (at once when the ring can serve it) or
 * client_on_history_failed(). Only called while the topic is SUBSCRIBEd. */
void history_request(struct node_thread *th, struct topic *t, struct sub *s, enum history_from from,
                     stream_id_t after);

/* Counters for /metrics and the benchmark: requests served from memory,
 * and Redis reads issued, by this thread. */
typedef struct history_stats {
    uint64_t served_from_memory;
    uint64_t redis_reads;
    uint64_t coalesced;
} history_stats_t;

#endif
