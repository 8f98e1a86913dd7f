/* One Redis connection on a worker thread's h2o event loop (no extra
 * thread): commands are RESP-formatted by hiredis and pipelined through an
 * h2o socket; replies are parsed by hiredis' redisReader. Handling the
 * protocol ourselves (rather than hiredis' async layer) gives pub/sub
 * connections exact control: subscribe confirmations, messages and PING
 * replies all reach one push callback, which hiredis 0.14 gets wrong. */
#ifndef SSEHUB_NODE_REDIS_CONN_H
#define SSEHUB_NODE_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <hiredis/hiredis.h>

#include "common/redis_url.h"

typedef struct redis_conn redis_conn_t;

/* Called with the reply to one command, or with NULL when the connection
 * was lost before it came. Returns nonzero to keep the reply (the callee
 * then frees it with freeReplyObject); otherwise it is freed on return. */
typedef int (*redis_reply_cb)(redis_conn_t *conn, redisReply *reply, void *data);

typedef struct redis_conn_callbacks {
    /* The connection is usable: connected, authenticated, db selected and
     * (when load_functions) the function library loaded. */
    void (*on_ready)(redis_conn_t *conn, void *data);
    /* The connection was lost or never came up; it retries by itself. */
    void (*on_down)(redis_conn_t *conn, void *data);
    /* Pub/sub connections: every subscribe/unsubscribe confirmation and
     * message (an array reply); the reply is freed after the call. */
    void (*on_push)(redis_conn_t *conn, redisReply *reply, void *data);
    /* All replies that arrived in one read have been handled (a good
     * moment to flush output batched by them). May be NULL. */
    void (*on_batch_end)(redis_conn_t *conn, void *data);
    /* The round trip of one command, from queueing to its reply, in
     * nanoseconds (for the latency histogram). May be NULL. */
    void (*on_latency)(redis_conn_t *conn, uint64_t ns, void *data);
    /* Every error reply to a command, before its callback gets it (e.g. a
     * Redis Cluster's MOVED: the slot map is stale). May be NULL. */
    void (*on_error_reply)(redis_conn_t *conn, const redisReply *reply, void *data);
} redis_conn_callbacks_t;

/* What the handshake loads (FUNCTION LOAD REPLACE) before READY. */
enum redis_conn_functions {
    REDIS_CONN_NO_FUNCTIONS,
    REDIS_CONN_FUNCTIONS,         /* the library for a single Redis */
    REDIS_CONN_FUNCTIONS_SHARDED, /* the library for a Redis Cluster (SPUBLISH) */
};

/* Starts connecting at once to url's host and port; reconnects with
 * capped, jittered back-off (100 ms .. 5 s) whenever the link is lost.
 * name appears in logs; functions is a redis_conn_functions value. */
redis_conn_t *redis_conn_new(h2o_evloop_t *loop, const redis_url_t *url, const char *name, int functions,
                             const redis_conn_callbacks_t *cbs, void *data);
/* Closes the link, fails pending commands (their callbacks get NULL) and
 * frees the connection. */
void redis_conn_free(redis_conn_t *conn);
/* Nonzero when commands may be sent. */
int redis_conn_is_ready(const redis_conn_t *conn);
/* Drops the link now (as if it failed) and reconnects later. */
void redis_conn_reset(redis_conn_t *conn);

/* Queues a command; cb (may be NULL) gets its reply. Returns 0, or -1 when
 * the connection is not ready (nothing is queued, cb is not called). On a
 * pub/sub connection pass cb NULL for (UN)SUBSCRIBE: their confirmations
 * arrive through on_push. */
int redis_conn_command(redis_conn_t *conn, redis_reply_cb cb, void *data, int argc,
                       const char **argv, const size_t *argvlen);

#endif
