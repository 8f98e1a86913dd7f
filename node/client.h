/* One SSE client stream and its topic subscriptions. Fan-out, replay and
 * heartbeats write to this interface, never to h2o directly: output is a
 * queue of references to shared frames and of the client's own bytes (id
 * lines, replayed events, comments), flushed in one write whenever the
 * previous write has completed.
 *
 * Delivery is exact per topic: a subscription is SUBSCRIBEd first, then its
 * history is read after the client's position, and live frames that arrive
 * meanwhile are held and delivered only above the last replayed id. */
#ifndef SSEHUB_NODE_CLIENT_H
#define SSEHUB_NODE_CLIENT_H

#include <stddef.h>

#include <h2o.h>
#include <hiredis/hiredis.h>

#include "broker/stream_id.h"
#include "node/cursor.h"
#include "node/topic.h"

struct node_thread;
struct client;

enum sub_state {
    SUB_WAIT_SUB, /* the topic's SUBSCRIBE is not confirmed yet */
    SUB_READING,  /* history after pos is being read */
    SUB_LIVE,     /* caught up: live frames go straight out */
};

/* Why a topic's history could not be followed exactly. */
enum gap_reason { GAP_NONE, GAP_BAD_CURSOR, GAP_CURSOR_TOPICS, GAP_TRIMMED, GAP_EXPIRED, GAP_NREASONS };

/* One (client, topic) pair. */
typedef struct sub {
    struct client *client;
    topic_t *topic;
    h2o_linklist_t topic_link; /* in topic->subs */
    enum sub_state state;
    stream_id_t pos;         /* last event delivered (or the start position) */
    int from_earliest;       /* first read: all retained history */
    int from_now;            /* first read: just the current position */
    int read_inflight;
    int first_done;          /* first read completed (before the client is ready) */
    enum gap_reason gap;
    redisReply *first;       /* first batch, held until every topic is read */
    frame_t **held;          /* live frames that came while reading */
    size_t nheld, capheld;
} sub_t;

/* A piece of queued output: a slice of a shared frame, or (frame NULL) of
 * the client's own byte buffer. */
typedef struct out_piece {
    frame_t *frame;
    uint32_t off, len;
} out_piece_t;

typedef struct out_queue {
    out_piece_t *pieces;
    size_t n, cap;
    buf_t own;
    size_t bytes;
} out_queue_t;

typedef struct client {
    h2o_linklist_t link;       /* in th->clients */
    h2o_linklist_t dirty_link; /* in th->dirty while output waits for a flush */
    struct node_thread *th;
    h2o_req_t *req;            /* NULL once h2o has stopped the stream */
    h2o_generator_t generator;
    struct client **ticket;    /* in the request pool; cleared when the pool goes */
    unsigned refcnt;           /* the stream + each Redis read in flight */
    int closed;                /* detached from topics; waiting for refs to drop */
    int ready;                 /* every topic's first read is done */
    int sending;               /* a write is in flight (h2o's proceed pending) */
    int final_pending;         /* end the response after the current write */
    int no_cursor;             /* send ssehub.cursor once ready */
    int cursor_extra;          /* the cursor named topics this stream lacks */
    int long_hashes;
    size_t first_left;
    size_t nsubs;
    sub_t *subs;               /* sorted by topic hash */
    out_queue_t pending, inflight;
    h2o_iovec_t *vecs;
    size_t veccap;
    size_t held_bytes;
    uint64_t last_write_tick;
} client_t;

/* Starts a stream on req for the given (validated, distinct) topics,
 * resuming after cursor. Sends the response head and retry: at once.
 * Returns 0; -1 when out of memory, -2 when two topics have the same
 * 64-bit hash and cannot share a cursor (nothing was sent either way). */
int client_open(struct node_thread *th, h2o_req_t *req, const h2o_iovec_t *topics, size_t ntopics,
                const cursor_t *cursor);

/* Callbacks from the topic layer. */
void client_on_subscribed(sub_t *s);
void client_on_live(sub_t *s, frame_t *f);

/* The thread's Redis link was lost: streams not yet started are refused
 * (they come back later); started ones re-read their history after the
 * link is back, so nothing is missed. */
void clients_on_link_down(struct node_thread *th);
/* Writes whatever was queued for the clients marked dirty. */
void clients_flush_dirty(struct node_thread *th);
/* Queues a heartbeat comment to clients idle since the last tick. */
void clients_heartbeat(struct node_thread *th);
/* Ends every stream (shutdown). */
void clients_close_all(struct node_thread *th, const char *why);

#endif
