/* The node's metrics (see metrics.h). */
#include "node/metrics.h"

#include <stdio.h>

#include "node/server.h"

static const uint64_t latency_bounds_us[METRICS_LATENCY_BUCKETS] = METRICS_LATENCY_BOUNDS_US;

void metrics_observe_redis(node_stats_t *s, uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t b = 0;
    while (b < METRICS_LATENCY_BUCKETS && us > latency_bounds_us[b])
        b++;
    s->v[STAT_REDIS_LAT_BUCKET + b]++;
    s->v[STAT_REDIS_LAT_SUM_US] += us;
    s->v[STAT_REDIS_LAT_COUNT]++;
}

void metrics_publish(node_thread_t *th)
{
    node_stats_t *s = &th->stats;
    s->v[STAT_PATTERN_STREAMS] = th->npattern;
    s->v[STAT_TOPICS] = th->topics.count;
    s->v[STAT_REDIS_UP] = th->redis_all_up ? 1 : 0;
    s->v[STAT_LINK_READY] = th->link_ready ? 1 : 0;
    s->v[STAT_REPLAY_MEMORY] = th->hstats.served_from_memory;
    s->v[STAT_REPLAY_REDIS] = th->hstats.redis_reads;
    for (size_t i = 0; i < STAT_N; i++)
        atomic_store_explicit(&th->pub.v[i], s->v[i], memory_order_relaxed);
}

uint64_t metrics_sum(const node_shared_t *sh, enum node_stat k)
{
    uint64_t t = 0;
    for (int i = 0; i < sh->nthreads; i++)
        t += atomic_load_explicit(&sh->threads[i].pub.v[k], memory_order_relaxed);
    return t;
}

uint64_t metrics_min(const node_shared_t *sh, enum node_stat k)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < sh->nthreads; i++) {
        uint64_t v = atomic_load_explicit(&sh->threads[i].pub.v[k], memory_order_relaxed);
        if (v < m)
            m = v;
    }
    return sh->nthreads > 0 ? m : 0;
}

static void family(buf_t *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(buf_t *out, const char *name, const char *labels, uint64_t v)
{
    buf_printf(out, "%s%s %llu\n", name, labels, (unsigned long long)v);
}

static void one(buf_t *out, const node_shared_t *sh, const char *name, const char *type, const char *help,
                enum node_stat k)
{
    family(out, name, type, help);
    sample(out, name, "", metrics_sum(sh, k));
}

void metrics_render(const node_shared_t *sh, buf_t *out)
{
    family(out, "ssehub_node_info", "gauge", "Always 1; the labels describe the node.");
    buf_printf(out, "ssehub_node_info{version=\"%s\",threads=\"%d\"} 1\n", SSEHUB_VERSION, sh->nthreads);
    family(out, "ssehub_node_connections", "gauge", "Open SSE streams by protocol.");
    sample(out, "ssehub_node_connections", "{protocol=\"http1\"}", metrics_sum(sh, STAT_CONN_HTTP1));
    sample(out, "ssehub_node_connections", "{protocol=\"http2\"}", metrics_sum(sh, STAT_CONN_HTTP2));
    one(out, sh, "ssehub_node_subscriptions", "gauge", "Pairs of an open stream and one of its exact topics.",
        STAT_SUBSCRIPTIONS);
    one(out, sh, "ssehub_node_pattern_streams", "gauge", "Open streams with `*` or URI template selectors (live only).",
        STAT_PATTERN_STREAMS);
    one(out, sh, "ssehub_node_topics", "gauge", "Topics subscribed in Redis, summed over worker threads.", STAT_TOPICS);
    family(out, "ssehub_node_redis_up", "gauge", "1 when every worker thread's Redis link is up.");
    sample(out, "ssehub_node_redis_up", "", metrics_min(sh, STAT_REDIS_UP));
    family(out, "ssehub_node_draining", "gauge", "1 while the node shuts down.");
    sample(out, "ssehub_node_draining", "", atomic_load(&((node_shared_t *)sh)->stopping) ? 1 : 0);
    one(out, sh, "ssehub_node_events_in_total", "counter", "Live messages received from Redis.", STAT_EVENTS_IN);
    one(out, sh, "ssehub_node_events_out_total", "counter", "Events queued to streams, live and replayed.",
        STAT_EVENTS_OUT);
    one(out, sh, "ssehub_node_bytes_out_total", "counter", "Bytes written to streams.", STAT_BYTES_OUT);
    family(out, "ssehub_node_replays_total", "counter",
           "History requests answered from the in-memory window or by a Redis read.");
    sample(out, "ssehub_node_replays_total", "{source=\"memory\"}", metrics_sum(sh, STAT_REPLAY_MEMORY));
    sample(out, "ssehub_node_replays_total", "{source=\"redis\"}", metrics_sum(sh, STAT_REPLAY_REDIS));
    one(out, sh, "ssehub_node_slow_consumer_drops_total", "counter",
        "Streams dropped for having more than client_buffer_bytes queued.", STAT_SLOW_DROPS);
    one(out, sh, "ssehub_node_redis_reconnects_total", "counter", "Redis links established again after a loss.",
        STAT_REDIS_RECONNECTS);
    one(out, sh, "ssehub_node_http2_cuts_total", "counter",
        "HTTP/2 connections cut for starting streams too fast (Rapid Reset guard).", STAT_H2_CUTS);
    family(out, "ssehub_node_publishes_total", "counter", "HTTP (Mercure) publishes by result.");
    sample(out, "ssehub_node_publishes_total", "{result=\"ok\"}", metrics_sum(sh, STAT_PUBLISH_OK));
    sample(out, "ssehub_node_publishes_total", "{result=\"error\"}", metrics_sum(sh, STAT_PUBLISH_ERROR));
    family(out, "ssehub_node_refused_total", "counter", "Stream and publish requests refused, by reason.");
    static const struct {
        const char *label;
        enum node_stat k;
    } refused[] = {{"limit", STAT_REFUSED_LIMIT},
                   {"draining", STAT_REFUSED_DRAINING},
                   {"redis", STAT_REFUSED_REDIS},
                   {"auth", STAT_REFUSED_AUTH},
                   {"bad_request", STAT_REFUSED_BAD_REQUEST}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "{reason=\"%s\"}", refused[i].label);
        sample(out, "ssehub_node_refused_total", labels, metrics_sum(sh, refused[i].k));
    }
    family(out, "ssehub_node_redis_command_seconds", "histogram",
           "Round trips of Redis commands (reads, publishes, probes), from queueing to reply.");
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
        cumulative += metrics_sum(sh, STAT_REDIS_LAT_BUCKET + b);
        if (b < METRICS_LATENCY_BUCKETS)
            buf_printf(out, "ssehub_node_redis_command_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds_us[b] / 1e6,
                       (unsigned long long)cumulative);
        else
            buf_printf(out, "ssehub_node_redis_command_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    buf_printf(out, "ssehub_node_redis_command_seconds_sum %.6f\n", metrics_sum(sh, STAT_REDIS_LAT_SUM_US) / 1e6);
    sample(out, "ssehub_node_redis_command_seconds_count", "", metrics_sum(sh, STAT_REDIS_LAT_COUNT));
}
