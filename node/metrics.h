/* The node's counters and gauges, and /metrics (Prometheus text format).
 * Each worker thread counts in plain integers it alone writes
 * (node_stats_t, on the hot path: no atomics); once a second, and when a
 * scrape comes, it copies them into relaxed atomics (the published
 * snapshot) that the scraping thread sums over all threads. */
#ifndef SSEHUB_NODE_METRICS_H
#define SSEHUB_NODE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"

struct node_thread;
struct node_shared;

/* Upper bounds of the Redis round-trip histogram, in microseconds (the
 * last bucket, +Inf, follows them). */
#define METRICS_LATENCY_BUCKETS 11
#define METRICS_LATENCY_BOUNDS_US {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000}

enum node_stat {
    STAT_CONN_HTTP1,      /* open streams over HTTP/1.x (gauge) */
    STAT_CONN_HTTP2,      /* open streams over HTTP/2 (gauge) */
    STAT_SUBSCRIPTIONS,   /* (stream, exact topic) pairs (gauge) */
    STAT_PATTERN_STREAMS, /* streams with pattern selectors (gauge, derived) */
    STAT_TOPICS,          /* topics in the thread's table (gauge, derived) */
    STAT_REDIS_UP,        /* the thread's Redis link is up (gauge, derived) */
    STAT_LINK_READY,      /* the thread takes new streams (derived; for /readyz) */
    STAT_EVENTS_IN,
    STAT_EVENTS_OUT,
    STAT_BYTES_OUT,
    STAT_REPLAY_MEMORY, /* derived from the history counters */
    STAT_REPLAY_REDIS,
    STAT_SLOW_DROPS,
    STAT_REDIS_RECONNECTS,
    STAT_H2_CUTS,
    STAT_PUBLISH_OK,
    STAT_PUBLISH_ERROR,
    STAT_REFUSED_LIMIT,
    STAT_REFUSED_DRAINING,
    STAT_REFUSED_REDIS,
    STAT_REFUSED_AUTH,
    STAT_REFUSED_BAD_REQUEST,
    STAT_REDIS_LAT_SUM_US,
    STAT_REDIS_LAT_COUNT,
    STAT_REDIS_LAT_BUCKET, /* METRICS_LATENCY_BUCKETS + 1 cumulative-later counts follow */
    STAT_N = STAT_REDIS_LAT_BUCKET + METRICS_LATENCY_BUCKETS + 1,
};

typedef struct node_stats {
    uint64_t v[STAT_N];
} node_stats_t;

typedef struct node_stats_pub {
    _Atomic uint64_t v[STAT_N];
} node_stats_pub_t;

/* Records one Redis round trip of ns nanoseconds. */
void metrics_observe_redis(node_stats_t *s, uint64_t ns);
/* Copies the thread's counters (and derived gauges) into its snapshot. */
void metrics_publish(struct node_thread *th);
/* The sum of one stat over every thread's snapshot. */
uint64_t metrics_sum(const struct node_shared *sh, enum node_stat k);
/* The least of one stat over every thread's snapshot ("every link is up"). */
uint64_t metrics_min(const struct node_shared *sh, enum node_stat k);
/* Appends the whole exposition, summed over every thread, to out. */
void metrics_render(const struct node_shared *sh, buf_t *out);

#endif
