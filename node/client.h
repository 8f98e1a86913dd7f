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

#include "broker/stream_id.h"
#include "node/auth.h"
#include "node/cursor.h"
#include "node/history.h"
#include "node/selector.h"
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
    frame_t **first;         /* first batch, held until every topic is read */
    uint32_t nfirst;
    unsigned first_more : 1; /* the first batch was full */
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
    uint32_t n, cap;
    uint32_t bytes; /* queued bytes; client_buffer_bytes caps this below 2^30 */
    buf_t own;
} out_queue_t;

/* What a stream has beyond exact topics, allocated only for the streams
 * that need it: the Mercure endpoint's ids and resume header, `*` and URI
 * template selectors (live only, through the thread's pattern
 * subscription), and a verified token (private updates, expiry). */
typedef struct client_ext {
    struct client *owner;
    unsigned mercure : 1;          /* Mercure endpoint: publisher ids as SSE ids */
    unsigned resume_requested : 1; /* the request named a Last-Event-ID */
    char *requested_id;            /* that id, for the response header */
    selector_t **patterns;         /* non-exact selectors */
    size_t npatterns;
    h2o_linklist_t pattern_link;   /* in th->pattern_clients while npatterns > 0 */
    auth_grant_t *grant;           /* verified token, or NULL: anonymous */
    h2o_linklist_t expiry_link;    /* in th->expiring while the token has an exp */
} client_ext_t;

/* How a stream was asked for, besides its exact topics and cursor. */
typedef struct client_opts {
    int mercure;
    selector_t **patterns; /* moved into the client on success */
    size_t npatterns;
    auth_grant_t *grant;   /* moved into the client on success */
    const char *requested_id; /* the Last-Event-ID given, or NULL */
    struct ip_entry *ip;   /* max_connections_per_ip count, moved into the client on success */
} client_opts_t;

/* A stream has one of two back-ends: h2o's response generator (HTTP/2,
 * HTTP/1.0, or with http1_takeover off), or, for HTTP/1.1, the socket
 * itself, taken over from h2o once the response head is written, which
 * frees h2o's request, pool and input buffer (~10 KB per idle stream). */
typedef struct client {
    h2o_linklist_t link;       /* in th->clients */
    h2o_linklist_t dirty_link; /* in th->dirty while output waits for a flush */
    struct node_thread *th;
    h2o_req_t *req;            /* generator back-end; NULL once h2o stopped the stream */
    h2o_socket_t *sock;        /* takeover back-end: ours after the head */
    h2o_generator_t generator;
    struct client **ticket;    /* generator: in the request pool, cleared when the pool goes */
    unsigned refcnt;           /* the stream + each Redis read in flight */
    unsigned closed : 1;       /* detached from topics; waiting for refs to drop */
    unsigned ready : 1;        /* every topic's first read is done */
    unsigned sending : 1;      /* a write is in flight */
    unsigned final_pending : 1; /* end the stream after what is queued */
    unsigned upgrading : 1;    /* takeover: h2o is still writing the head */
    unsigned no_cursor : 1;    /* send ssehub.cursor once ready */
    unsigned cursor_extra : 1; /* the cursor named topics this stream lacks */
    unsigned long_hashes : 1;
    unsigned is_h2 : 1;        /* counted as an HTTP/2 stream in the metrics */
    uint32_t first_left;
    uint32_t nsubs;
    uint32_t held_bytes;
    uint32_t last_write_tick;  /* heartbeat tick of the last write (low bits) */
    out_queue_t pending, inflight;
    client_ext_t *ext;         /* NULL for a plain anonymous /events stream */
    struct ip_entry *ip;       /* counted against max_connections_per_ip, or NULL */
    sub_t subs[];              /* sorted by topic hash, allocated with the client */
} client_t;

/* Starts a stream on req for the given (validated, distinct) topics,
 * resuming after cursor. The response head and retry: go out once the
 * stream is live (subscribed and its first reads done).
 * Returns 0; -1 when out of memory, -2 when two topics have the same
 * 64-bit hash and cannot share a cursor (nothing was sent either way). */
int client_open(struct node_thread *th, h2o_req_t *req, const h2o_iovec_t *topics, size_t ntopics,
                const cursor_t *cursor, client_opts_t *opts);
/* A live event matched by the thread's pattern subscription, on topic. */
void clients_on_pattern_live(struct node_thread *th, const char *topic, size_t len, frame_t *f);
/* The thread's pattern subscription is confirmed: streams waiting for it
 * send their head. */
void clients_on_pattern_subscribed(struct node_thread *th);
/* Ends the streams whose token expired (called once a second). */
void clients_expire_tokens(struct node_thread *th);

/* Callbacks from the topic layer. */
void client_on_subscribed(sub_t *s);
void client_on_live(sub_t *s, frame_t *f);
/* Callbacks from the history layer: an answer to a subscription's request
 * (history_request), or its failure (link_lost: the link broke and the
 * request is made again when it is back). */
void client_on_history(sub_t *s, const history_batch_t *b);
void client_on_history_failed(sub_t *s, int link_lost);
/* Keep a client struct alive across an asynchronous call (the stream may
 * end meanwhile: check closed). */
void client_hold(client_t *c);
void client_release(client_t *c);

/* A shard's Redis link was lost: streams still replaying that need it end
 * (with retry:), pattern streams end (live only: a gap cannot be filled),
 * and every subscription to its topics waits for the topic to be
 * subscribed again, then fills the hole from the stream. */
void clients_on_shard_down(struct node_thread *th, int shard);
/* The same for one topic (its slot moved to another shard). */
void clients_on_topic_down(struct node_thread *th, topic_t *p);
/* Writes whatever was queued for the clients marked dirty. */
void clients_flush_dirty(struct node_thread *th);
/* Queues a heartbeat comment to clients idle since the last tick. */
void clients_heartbeat(struct node_thread *th);
/* Ends every stream (shutdown). */
void clients_close_all(struct node_thread *th, const char *why);
/* Ends up to n of the streams not yet ending, oldest first; returns how
 * many streams are still open (ending or not). */
size_t clients_close_some(struct node_thread *th, size_t n, const char *why);

#endif
