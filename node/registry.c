/* The node registry and GET /cluster (see registry.h). */
#include "node/registry.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "node/http_reply.h"
#include "node/metrics.h"
#include "node/server.h"

/* Most registry entries GET /cluster reads (the newest). */
#define REGISTRY_MAX_LISTED 1000

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void registry_init(node_shared_t *sh)
{
    const ssehub_config_t *cfg = sh->cfg;
    sh->started_ms = wall_ms();
    if (cfg->node_id[0] != '\0') {
        snprintf(sh->node_id, sizeof(sh->node_id), "%s", cfg->node_id);
        return;
    }
    char host[128] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "node");
    const char *port = strrchr(cfg->listen, ':');
    snprintf(sh->node_id, sizeof(sh->node_id), "%s:%s", host, port != NULL ? port + 1 : cfg->listen);
}

/* `Pnode:<id>` into out. */
static void entry_key(const node_shared_t *sh, const char *id, size_t idlen, buf_t *out)
{
    buf_clear(out);
    buf_printf(out, "%snode:", sh->cfg->prefix);
    buf_append(out, id, idlen);
}

/* This node's entry: who it is and what it serves now. */
static char *entry_json(const node_shared_t *sh, int64_t now)
{
    const ssehub_config_t *cfg = sh->cfg;
    uint64_t refused = 0;
    for (int k = STAT_REFUSED_LIMIT; k <= STAT_REFUSED_BAD_REQUEST; k++)
        refused += metrics_sum(sh, (enum node_stat)k);
    uint64_t h1 = metrics_sum(sh, STAT_CONN_HTTP1), h2 = metrics_sum(sh, STAT_CONN_HTTP2);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:i,s:I,s:I,s:b,s:b}", "id", sh->node_id, "version",
                          SSEHUB_VERSION, "listen", cfg->listen, "pid", (json_int_t)getpid(), "threads",
                          sh->nthreads, "started_ms", (json_int_t)sh->started_ms, "seen_ms", (json_int_t)now,
                          "draining", atomic_load(&sh->stopping) ? 1 : 0, "redis_up",
                          metrics_sum(sh, STAT_REDIS_UP) == (uint64_t)sh->nthreads);
    struct {
        const char *name;
        uint64_t v;
    } counts[] = {{"streams", h1 + h2},
                  {"streams_http1", h1},
                  {"streams_http2", h2},
                  {"subscriptions", metrics_sum(sh, STAT_SUBSCRIPTIONS)},
                  {"topics", metrics_sum(sh, STAT_TOPICS)},
                  {"pattern_streams", metrics_sum(sh, STAT_PATTERN_STREAMS)},
                  {"events_in", metrics_sum(sh, STAT_EVENTS_IN)},
                  {"events_out", metrics_sum(sh, STAT_EVENTS_OUT)},
                  {"bytes_out", metrics_sum(sh, STAT_BYTES_OUT)},
                  {"slow_consumer_drops", metrics_sum(sh, STAT_SLOW_DROPS)},
                  {"redis_reconnects", metrics_sum(sh, STAT_REDIS_RECONNECTS)},
                  {"refused", refused}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        json_object_set_new(o, counts[i].name, json_integer((json_int_t)counts[i].v));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int on_beat_reply(redis_conn_t *conn, redisReply *rep, void *data)
{
    (void)conn, (void)data;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        log_warn("node", "registry write failed", json_pack("{s:s}", "error", rep->str));
    return 0;
}

void registry_beat(node_thread_t *th)
{
    node_shared_t *sh = th->shared;
    if (!th->link_ready)
        return;
    int64_t now = wall_ms();
    char *json = entry_json(sh, now);
    if (json == NULL)
        return;
    buf_t key = BUF_INIT, index = BUF_INIT;
    entry_key(sh, sh->node_id, strlen(sh->node_id), &key);
    buf_printf(&index, "%snodes", sh->cfg->prefix);
    char ttl[24], score[24], forget[32];
    snprintf(ttl, sizeof(ttl), "%d", REGISTRY_TTL_MS);
    snprintf(score, sizeof(score), "%lld", (long long)now);
    snprintf(forget, sizeof(forget), "(%lld", (long long)(now - REGISTRY_FORGET_MS));
    const char *set[5] = {"SET", key.base, json, "PX", ttl};
    size_t setl[5] = {3, key.len, strlen(json), 2, strlen(ttl)};
    const char *zadd[4] = {"ZADD", index.base, score, sh->node_id};
    size_t zaddl[4] = {4, index.len, strlen(score), strlen(sh->node_id)};
    const char *prune[4] = {"ZREMRANGEBYSCORE", index.base, "-inf", forget};
    size_t prunel[4] = {16, index.len, 4, strlen(forget)};
    router_command(th, key.base, key.len, on_beat_reply, NULL, 5, set, setl);
    router_command(th, index.base, index.len, on_beat_reply, NULL, 4, zadd, zaddl);
    router_command(th, index.base, index.len, on_beat_reply, NULL, 4, prune, prunel);
    buf_free(&key);
    buf_free(&index);
    free(json);
}

/* ---- GET /cluster ------------------------------------------------------------------ */

typedef struct listed {
    char *id;
    int64_t seen_ms;
    json_t *entry; /* parsed Pnode:<id>, or NULL when it expired */
} listed_t;

/* One GET /cluster: the index read, then one GET per listed node. The
 * request may go away meanwhile (ticket, as in publish.c). */
typedef struct cluster_call {
    node_thread_t *th;
    h2o_req_t *req;
    struct cluster_call **ticket;
    listed_t *nodes;
    size_t n;
    size_t left; /* GET replies still due */
    int failed;
    struct cluster_get {
        struct cluster_call *call;
        size_t i;
    } * gets;
} cluster_call_t;

static void on_request_gone(void *p)
{
    cluster_call_t *call = *(cluster_call_t **)p;
    if (call != NULL)
        call->req = NULL;
}

static void call_free(cluster_call_t *call)
{
    for (size_t i = 0; i < call->n; i++) {
        free(call->nodes[i].id);
        json_decref(call->nodes[i].entry);
    }
    free(call->nodes);
    free(call->gets);
    free(call);
}

/* Answers the request (if still there) and frees the call. */
static void call_finish(cluster_call_t *call)
{
    h2o_req_t *req = call->req;
    if (req != NULL) {
        *call->ticket = NULL;
        if (call->failed) {
            http_reply_error_retry(req, 503, "Service Unavailable", "redis_unavailable",
                                   "the registry could not be read, retry later", 1);
        } else {
            json_t *nodes = json_array();
            for (size_t i = 0; i < call->n; i++) {
                listed_t *l = &call->nodes[i];
                json_t *o = l->entry != NULL ? json_incref(l->entry) : json_pack("{s:s}", "id", l->id);
                json_object_set_new(o, "alive", json_boolean(l->entry != NULL));
                json_object_set_new(o, "seen_ms", json_integer((json_int_t)l->seen_ms));
                json_array_append_new(nodes, o);
            }
            json_t *top = json_pack("{s:s,s:I,s:i,s:o}", "self", call->th->shared->node_id, "now_ms",
                                    (json_int_t)wall_ms(), "ttl_ms", REGISTRY_TTL_MS, "nodes", nodes);
            char *body = json_dumps(top, JSON_COMPACT);
            http_reply_text(req, 200, "OK", "application/json", body, strlen(body));
            free(body);
            json_decref(top);
        }
    }
    call_free(call);
}

static int on_entry(redis_conn_t *conn, redisReply *rep, void *data)
{
    (void)conn;
    struct cluster_get *g = data;
    cluster_call_t *call = g->call;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        call->failed = 1;
    else if (rep->type == REDIS_REPLY_STRING)
        call->nodes[g->i].entry = json_loadb(rep->str, rep->len, 0, NULL);
    if (call->nodes[g->i].entry != NULL && !json_is_object(call->nodes[g->i].entry)) {
        json_decref(call->nodes[g->i].entry);
        call->nodes[g->i].entry = NULL;
    }
    if (--call->left == 0)
        call_finish(call);
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const listed_t *)a)->id, ((const listed_t *)b)->id);
}

/* The index: [id, score, id, score, ...], newest last. */
static int on_index(redis_conn_t *conn, redisReply *rep, void *data)
{
    (void)conn;
    cluster_call_t *call = data;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        call->failed = 1;
        call_finish(call);
        return 0;
    }
    size_t n = rep->elements / 2;
    call->nodes = calloc(n ? n : 1, sizeof(*call->nodes));
    call->gets = calloc(n ? n : 1, sizeof(*call->gets));
    if (call->nodes == NULL || call->gets == NULL) {
        call->failed = 1;
        call_finish(call);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *id = rep->element[2 * i], *score = rep->element[2 * i + 1];
        if (id->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING)
            continue;
        listed_t *l = &call->nodes[call->n];
        if ((l->id = strndup(id->str, id->len)) == NULL)
            continue;
        l->seen_ms = strtoll(score->str, NULL, 10);
        call->n++;
    }
    qsort(call->nodes, call->n, sizeof(*call->nodes), by_id);
    buf_t key = BUF_INIT;
    call->left = call->n + 1; /* + this function's own share, released below */
    for (size_t i = 0; i < call->n; i++) {
        entry_key(call->th->shared, call->nodes[i].id, strlen(call->nodes[i].id), &key);
        call->gets[i] = (struct cluster_get){call, i};
        const char *argv[2] = {"GET", key.base};
        size_t lens[2] = {3, key.len};
        if (router_command(call->th, key.base, key.len, on_entry, &call->gets[i], 2, argv, lens) != 0) {
            call->failed = 1;
            call->left--;
        }
    }
    buf_free(&key);
    if (--call->left == 0)
        call_finish(call);
    return 0;
}

int registry_handle(node_thread_t *th, h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return http_reply_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
    if (!th->link_ready)
        return http_reply_error_retry(req, 503, "Service Unavailable", "redis_unavailable", "no Redis link",
                                      1);
    cluster_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return http_reply_error_retry(req, 503, "Service Unavailable", "out_of_memory", "retry later", 1);
    call->th = th;
    call->req = req;
    call->ticket = h2o_mem_alloc_shared(&req->pool, sizeof(*call->ticket), on_request_gone);
    *call->ticket = call;
    buf_t index = BUF_INIT;
    buf_printf(&index, "%snodes", th->shared->cfg->prefix);
    char since[32], limit[16];
    snprintf(since, sizeof(since), "(%lld", (long long)(wall_ms() - REGISTRY_FORGET_MS));
    snprintf(limit, sizeof(limit), "%d", REGISTRY_MAX_LISTED);
    /* the newest REGISTRY_MAX_LISTED, by last write */
    const char *argv[10] = {"ZRANGE", index.base, "+inf", since, "BYSCORE",
                            "REV",    "LIMIT",    "0",    limit, "WITHSCORES"};
    size_t lens[10] = {6, index.len, 4, strlen(since), 7, 3, 5, 1, strlen(limit), 10};
    int r = router_command(th, index.base, index.len, on_index, call, 10, argv, lens);
    buf_free(&index);
    if (r != 0) {
        *call->ticket = NULL;
        call_free(call);
        return http_reply_error_retry(req, 503, "Service Unavailable", "redis_unavailable", "no Redis link",
                                      1);
    }
    return 0;
}
