/* The node's per-thread world: one h2o loop, listener, Redis link and topic
 * table per worker thread, sharing only read-only configuration. */
#ifndef SSEHUB_NODE_SERVER_H
#define SSEHUB_NODE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "common/config.h"
#include "common/redis_url.h"
#include "node/auth.h"
#include "node/conn_starts.h"
#include "node/metrics.h"
#include "node/redis_conn.h"
#include "node/router.h"
#include "node/topic.h"

/* Read-only after start-up; one per process. */
typedef struct node_shared {
    const ssehub_config_t *cfg;
    redis_url_t redis;
    h2o_globalconf_t h2o;
    SSL_CTX *ssl_ctx;         /* TLS on `listen`, or NULL */
    auth_keys_t keys;         /* JWT keys of publishers and subscribers */
    atomic_long connections;  /* open streams, all threads */
    atomic_int stopping;      /* set by SIGTERM/SIGINT: drain, then exit */
    atomic_int stop_now;      /* a second signal: end every stream at once */
    atomic_int fast_drain;    /* SIGINT: the same drain, faster */
    struct node_thread *threads; /* every worker thread (for /metrics) */
    int nthreads;
    char node_id[160];        /* node_id, or <hostname>:<listen port> (registry.h) */
    int64_t started_ms;       /* wall clock at start-up */
} node_shared_t;

/* Everything one worker thread owns. h2o's context is embedded so request
 * handlers find their thread from req->conn->ctx. */
/* One listening socket of a thread: `listen` (TLS when configured) and
 * `listen_plain`. */
typedef struct node_listener {
    struct node_thread *th;
    int fd;
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept_ctx;
} node_listener_t;

#define NODE_MAX_LISTENERS 2

typedef struct node_thread {
    h2o_context_t ctx;
    node_shared_t *shared;
    int index;
    pthread_t tid;
    h2o_evloop_t *loop;
    node_listener_t listeners[NODE_MAX_LISTENERS];
    int nlisteners;

    router_t router; /* Redis: one shard per master (commands, pub/sub) */
    int link_ready;  /* Redis usable: the map is known and a shard is up (router.c) */
    int redis_all_up; /* every shard is up */

    topic_table_t topics;
    h2o_linklist_t pattern_clients; /* client_ext_t.pattern_link of streams with pattern selectors */
    unsigned npattern;              /* how many: the pattern subscription is held while > 0 */
    int pattern_state;              /* TOPIC_* state of the PSUBSCRIBE P{*}:l */
    h2o_linklist_t expiring;        /* client_ext_t.expiry_link of streams whose token expires */
    h2o_linklist_t clients;   /* every open client_t (client.h) */
    h2o_linklist_t dirty;     /* clients with output queued since the last flush pass */
    h2o_timeout_t heartbeat_timeout;
    h2o_timeout_entry_t heartbeat;
    uint64_t heartbeat_tick;
    h2o_timeout_t housekeeping_timeout;
    h2o_timeout_entry_t housekeeping; /* once a second */
    unsigned accepted;                /* connections since the last heap trim */
    conn_starts_t starts;             /* HTTP/2 stream starts per connection and second */
    uint64_t cut_logged_at;           /* when a Rapid Reset cut was last logged (one a second) */
    uint64_t cut_unlogged;            /* cuts since */
    buf_t scratch;            /* reused while framing live events */
    history_stats_t hstats;
    node_stats_t stats;       /* this thread's counters (metrics.h) */
    node_stats_pub_t pub;     /* their snapshot, read by /metrics on any thread */
    frame_t *heartbeat_frame; /* ":\n\n", shared by every stream's heartbeats */
    h2o_iovec_t *wvecs;       /* iovec scratch for writes (h2o copies the array) */
    uint32_t wveccap;
} node_thread_t;

/* Returns the thread that owns a request. */
static inline node_thread_t *node_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(node_thread_t, ctx, req->conn->ctx);
}

/* Refuses a stream for a passing reason: 200 (any other status stops a
 * browser's EventSource for good), a jittered retry:, a comment (why) and
 * Retry-After; 503 {"error": code} when the client accepts only JSON. */
int server_stream_refusal(node_thread_t *th, h2o_req_t *req, const char *code, const char *why);
/* Registers the HTTP routes on the host configuration. */
void server_register_routes(node_shared_t *shared, h2o_hostconf_t *host);
/* Runs one worker thread until the process stops (pthread entry point). */
void *server_thread_main(void *arg);

#endif
