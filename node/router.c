/* Shards, discovery and the slot map of a worker thread (see router.h). */
#include "node/router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/stream_keys.h"
#include "common/log.h"
#include "node/client.h"
#include "node/metrics.h"
#include "node/server.h"
#include "node/topic.h"

/* A map read or Sentinel question at most this often while something is
 * down (a failover takes a few seconds), and no sooner after the last. */
#define REFRESH_MIN_MS 250

/* ---- readiness ------------------------------------------------------------------------- */

/* The thread's link is ready (new streams may come, /readyz) when the
 * mode is known, every slot has a shard and every shard has come up; after
 * that, while one shard at least is up: on a cluster, one master failing
 * over refuses only the streams of its topics (router_topics_up), not
 * every stream of every node. redis_all_up says every shard is up. */
static void update_ready(node_thread_t *th)
{
    router_t *r = &th->router;
    int known = r->mode != ROUTER_DISCOVERING && r->complete;
    int any = 0, all = 1;
    for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
        if (r->shards[i] != NULL) {
            any |= r->shards[i]->up;
            all &= r->shards[i]->up;
        }
    }
    int was_up = th->redis_all_up, was_ready = th->link_ready;
    th->redis_all_up = known && any && all;
    if (th->redis_all_up)
        r->all_up_once = 1;
    th->link_ready = known && any && r->all_up_once;
    /* the registry, /metrics and /readyz read the snapshots of every
     * thread: a change of link state shows at once, not at the next second */
    if (th->redis_all_up != was_up || th->link_ready != was_ready)
        metrics_publish(th);
}

static void request_refresh(node_thread_t *th);

/* ---- one shard ------------------------------------------------------------------------- */

/* The answer to CONFIG GET maxmemory-policy: history must not be evicted. */
static int on_policy(redis_conn_t *conn, redisReply *rep, void *data)
{
    (void)conn, (void)data;
    if (rep == NULL)
        return 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        const char *policy = rep->element[1]->str;
        if (strcmp(policy, "noeviction") != 0)
            log_warn(
                "node", "redis may evict history",
                json_pack(
                    "{s:s,s:s}", "maxmemory_policy", policy, "hint",
                    "set maxmemory-policy noeviction: under memory pressure this policy may delete topic "
                    "streams (they carry a TTL), and resumes would then get ssehub.gap"));
    } else {
        log_info("node", "cannot check maxmemory-policy",
                 json_pack("{s:s}", "error", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply"));
    }
    return 0;
}

static void on_shard_ready(redis_conn_t *conn, void *data)
{
    shard_t *s = data;
    node_thread_t *th = s->th;
    (void)conn;
    if (s->up || !redis_conn_is_ready(s->cmd) || !redis_conn_is_ready(s->sub))
        return;
    s->up = 1;
    if (s->was_up) {
        th->stats.v[STAT_REDIS_RECONNECTS]++;
    } else if (th->index == 0) {
        const char *argv[3] = {"CONFIG", "GET", "maxmemory-policy"};
        size_t lens[3] = {6, 3, 16};
        redis_conn_command(s->cmd, on_policy, NULL, 3, argv, lens);
    }
    s->was_up = 1;
    update_ready(th);
    topics_on_shard_up(th, s->index);
}

/* Either connection failing takes the shard down, so its subscriptions and
 * history reads always restart together. */
static void on_shard_down(redis_conn_t *conn, void *data)
{
    shard_t *s = data;
    node_thread_t *th = s->th;
    int was_up = s->up;
    s->up = 0;
    update_ready(th);
    if (was_up) {
        clients_on_shard_down(th, s->index);
        topics_on_shard_down(th, s->index);
        clients_flush_dirty(th);
    }
    redis_conn_t *other = conn == s->cmd ? s->sub : s->cmd;
    if (other != NULL && redis_conn_is_ready(other))
        redis_conn_reset(other);
    if (th->router.mode == ROUTER_CLUSTER || th->shared->redis.sentinel_master[0] != '\0')
        request_refresh(th); /* a failover, perhaps: the map says */
}

static void on_shard_push(redis_conn_t *conn, redisReply *reply, void *data)
{
    shard_t *s = data;
    (void)conn;
    topics_on_push(s->th, s->index, reply);
}

static void on_shard_latency(redis_conn_t *conn, uint64_t ns, void *data)
{
    shard_t *s = data;
    (void)conn;
    metrics_observe_redis(&s->th->stats, ns);
}

static void on_shard_batch_end(redis_conn_t *conn, void *data)
{
    shard_t *s = data;
    (void)conn;
    clients_flush_dirty(s->th);
}

/* MOVED, ASK, CLUSTERDOWN, TRYAGAIN: the caller sees the error (its
 * request fails and is retried by its client); the map is read again. */
static void on_shard_error(redis_conn_t *conn, const redisReply *reply, void *data)
{
    shard_t *s = data;
    (void)conn;
    if (cluster_error_kind(reply->str, reply->len) != CLUSTER_ERROR_OTHER ||
        strncmp(reply->str, "READONLY", 8) == 0)
        request_refresh(s->th);
}

/* A pub/sub command was refused (SSUBSCRIBE answered MOVED or
 * CLUSTERDOWN): which topic is not known, so the shard's subscriptions
 * start over, and the map is read again. */
static void on_sub_error(redis_conn_t *conn, const redisReply *reply, void *data)
{
    shard_t *s = data;
    log_warn("node", "subscription refused",
             json_pack("{s:s,s:s#}", "shard", s->url.host, "error", reply->str, (int)reply->len));
    request_refresh(s->th);
    redis_conn_reset(conn);
}

static shard_t *shard_new(node_thread_t *th, int index, const char *host, int port)
{
    shard_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->th = th;
    s->index = index;
    s->url = th->shared->redis;
    snprintf(s->url.host, sizeof(s->url.host), "%s", host);
    s->url.port = port;
    int sharded = th->router.mode == ROUTER_CLUSTER;
    redis_conn_callbacks_t cmd_cbs = {on_shard_ready,     on_shard_down,    NULL,
                                      on_shard_batch_end, on_shard_latency, on_shard_error};
    redis_conn_callbacks_t sub_cbs = {on_shard_ready,     on_shard_down,    on_shard_push,
                                      on_shard_batch_end, on_shard_latency, on_sub_error};
    char name[32];
    if (sharded)
        snprintf(name, sizeof(name), "cmd-%d-%d", th->index, index);
    else
        snprintf(name, sizeof(name), "cmd-%d", th->index);
    s->cmd = redis_conn_new(th->loop, &s->url, name,
                            sharded ? REDIS_CONN_FUNCTIONS_SHARDED : REDIS_CONN_FUNCTIONS, &cmd_cbs, s);
    if (sharded)
        snprintf(name, sizeof(name), "sub-%d-%d", th->index, index);
    else
        snprintf(name, sizeof(name), "sub-%d", th->index);
    s->sub = redis_conn_new(th->loop, &s->url, name, REDIS_CONN_NO_FUNCTIONS, &sub_cbs, s);
    return s;
}

static void shard_free(shard_t *s)
{
    redis_conn_free(s->cmd);
    redis_conn_free(s->sub);
    free(s);
}

/* Takes a shard out: its topics and clients go down first. */
static void shard_remove(node_thread_t *th, int i)
{
    shard_t *s = th->router.shards[i];
    if (s->up) {
        s->up = 0;
        clients_on_shard_down(th, i);
        topics_on_shard_down(th, i);
    }
    th->router.shards[i] = NULL;
    shard_free(s);
}

/* ---- the map --------------------------------------------------------------------------- */

/* The index of the shard at host:port, creating it when new; -1 when
 * every index is taken or memory is out. */
static int shard_for(node_thread_t *th, const char *host, int port)
{
    router_t *r = &th->router;
    int free_at = -1;
    for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
        shard_t *s = r->shards[i];
        if (s == NULL) {
            if (free_at < 0)
                free_at = i;
        } else if (s->url.port == port && strcmp(s->url.host, host) == 0) {
            return i;
        }
    }
    if (free_at < 0)
        return -1;
    r->shards[free_at] = shard_new(th, free_at, host, port);
    return r->shards[free_at] != NULL ? free_at : -1;
}

/* Installs a slot map: shards for its masters (kept when their address is
 * unchanged), topics moved to their slot's shard, shards no longer in it
 * closed. */
static void apply_map(node_thread_t *th, const cluster_map_t *m)
{
    router_t *r = &th->router;
    int used[ROUTER_MAX_SHARDS] = {0};
    int *of_map = calloc(m->nshards ? m->nshards : 1, sizeof(*of_map));
    if (of_map == NULL)
        return;
    for (size_t i = 0; i < m->nshards; i++) {
        of_map[i] = shard_for(th, m->shards[i].host, m->shards[i].port);
        if (of_map[i] >= 0)
            used[of_map[i]] = 1;
    }
    int complete = 1;
    for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++) {
        int k = m->slots[slot];
        r->slot_shard[slot] = (int8_t)(k >= 0 && (size_t)k < m->nshards ? of_map[k] : -1);
        if (r->slot_shard[slot] < 0)
            complete = 0;
    }
    free(of_map);
    r->complete = complete;
    topics_on_map(th);
    for (int i = 0; i < ROUTER_MAX_SHARDS; i++)
        if (r->shards[i] != NULL && !used[i])
            shard_remove(th, i);
    update_ready(th);
}

/* A single Redis: one shard owns every slot. */
static void become_single(node_thread_t *th, const char *host, int port)
{
    router_t *r = &th->router;
    if (r->shards[0] != NULL &&
        (r->shards[0]->url.port != port || strcmp(r->shards[0]->url.host, host) != 0)) {
        log_info("node", "redis master moved",
                 json_pack("{s:s,s:i,s:s,s:i}", "from_host", r->shards[0]->url.host, "from_port",
                           r->shards[0]->url.port, "host", host, "port", port));
        shard_remove(th, 0);
    }
    r->mode = ROUTER_SINGLE;
    memset(r->slot_shard, 0, sizeof(r->slot_shard));
    r->complete = 1;
    if (r->shards[0] == NULL)
        r->shards[0] = shard_new(th, 0, host, port);
    topics_on_map(th);
    update_ready(th);
}

/* ---- discovery and refreshes ----------------------------------------------------------- */

static void boot_drop(node_thread_t *th)
{
    router_t *r = &th->router;
    if (r->boot != NULL) {
        redis_conn_free(r->boot);
        r->boot = NULL;
    }
}

/* CLUSTER SLOTS, from the boot connection or a shard's command connection. */
static int on_slots(redis_conn_t *conn, redisReply *rep, void *data)
{
    node_thread_t *th = data;
    router_t *r = &th->router;
    int from_boot = conn == r->boot;
    r->refresh_inflight = 0;
    if (rep == NULL)
        return 0;
    if (rep->type == REDIS_REPLY_ERROR && r->mode == ROUTER_DISCOVERING &&
        strcasestr(rep->str, "cluster support disabled") != NULL) {
        /* a single Redis, at the address the boot connection used */
        become_single(th, r->boot_addr.host, r->boot_addr.port);
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        cluster_map_t m;
        char err[160];
        const char *fallback = from_boot ? th->shared->redis.hosts[0].host : NULL;
        for (int i = 0; fallback == NULL && i < ROUTER_MAX_SHARDS; i++)
            if (r->shards[i] != NULL && r->shards[i]->cmd == conn)
                fallback = r->shards[i]->url.host;
        if (cluster_map_from_slots_reply(&m, rep, fallback != NULL ? fallback : "127.0.0.1", err,
                                         sizeof(err)) == 0) {
            if (r->mode == ROUTER_DISCOVERING)
                log_info("node", "redis cluster",
                         json_pack("{s:i,s:i}", "thread", th->index, "masters", (int)m.nshards));
            r->mode = ROUTER_CLUSTER;
            apply_map(th, &m);
            cluster_map_free(&m);
        } else {
            log_warn("node", "bad CLUSTER SLOTS reply", json_pack("{s:s}", "error", err));
        }
    } else {
        log_warn("node", "cannot read the cluster's slot map",
                 json_pack("{s:s}", "error", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply"));
        r->refresh_wanted = 1;
    }
    if (from_boot)
        r->boot_drop_pending = 1;
    return 0;
}

/* SENTINEL get-master-addr-by-name: [host, port], or nil while unknown. */
static int on_sentinel(redis_conn_t *conn, redisReply *rep, void *data)
{
    node_thread_t *th = data;
    router_t *r = &th->router;
    (void)conn;
    r->refresh_inflight = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING) {
        int port = atoi(rep->element[1]->str);
        if (port > 0 && port < 65536 && rep->element[0]->len < sizeof(((redis_addr_t *)0)->host))
            become_single(th, rep->element[0]->str, port);
    } else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        /* NOAUTH, WRONGPASS (redis_sentinel_password), an ACL refusal */
        log_error("node", "sentinel refused the question",
                  json_pack("{s:s,s:s}", "master", th->shared->redis.sentinel_master, "error", rep->str));
        r->boot_drop_pending = 1; /* ask another Sentinel */
    } else if (rep != NULL) {
        log_warn("node", "sentinel does not know the master",
                 json_pack("{s:s}", "master", th->shared->redis.sentinel_master));
        r->boot_drop_pending = 1; /* ask another Sentinel */
    }
    return 0;
}

static void on_boot_ready(redis_conn_t *conn, void *data)
{
    node_thread_t *th = data;
    router_t *r = &th->router;
    if (r->boot_sentinel) {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", th->shared->redis.sentinel_master};
        size_t lens[3] = {8, 23, strlen(argv[2])};
        if (redis_conn_command(conn, on_sentinel, th, 3, argv, lens) == 0)
            r->refresh_inflight = 1;
        return;
    }
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, 5};
    if (redis_conn_command(conn, on_slots, th, 2, argv, lens) == 0)
        r->refresh_inflight = 1;
}

static void on_boot_down(redis_conn_t *conn, void *data)
{
    node_thread_t *th = data;
    (void)conn;
    th->router.refresh_inflight = 0;
    th->router.boot_drop_pending = 1; /* try the next address */
}

/* Opens the boot connection to the next address: a Sentinel, a seed or a
 * master known from an earlier map. */
static void boot_open(node_thread_t *th)
{
    router_t *r = &th->router;
    const redis_url_t *u = &th->shared->redis;
    redis_url_t a = *u;
    r->boot_sentinel = u->sentinel_master[0] != '\0';
    unsigned n = (unsigned)u->nhosts, known = 0;
    for (int i = 0; i < ROUTER_MAX_SHARDS && !r->boot_sentinel; i++)
        known += r->shards[i] != NULL;
    unsigned pick = r->boot_next++ % (n + known);
    if (pick < n) {
        snprintf(a.host, sizeof(a.host), "%s", u->hosts[pick].host);
        a.port = u->hosts[pick].port;
    } else {
        for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
            if (r->shards[i] != NULL && pick-- == n) {
                snprintf(a.host, sizeof(a.host), "%s", r->shards[i]->url.host);
                a.port = r->shards[i]->url.port;
                break;
            }
        }
    }
    if (r->boot_sentinel) {
        /* Sentinels take their own password (redis_sentinel_password), not
         * the data nodes', nor SELECT */
        a.user[0] = '\0';
        snprintf(a.password, sizeof(a.password), "%s", u->sentinel_password);
        a.db = 0;
    }
    snprintf(r->boot_addr.host, sizeof(r->boot_addr.host), "%s", a.host);
    r->boot_addr.port = a.port;
    redis_conn_callbacks_t cbs = {on_boot_ready, on_boot_down, NULL, NULL, NULL, NULL};
    char name[32];
    snprintf(name, sizeof(name), "%s-%d", r->boot_sentinel ? "sentinel" : "discover", th->index);
    r->boot = redis_conn_new(th->loop, &a, name, REDIS_CONN_NO_FUNCTIONS, &cbs, th);
}

/* Reads the map again (or asks Sentinel): on a shard's command connection
 * when one is up, else through the boot connection. */
static void refresh_now(node_thread_t *th)
{
    router_t *r = &th->router;
    if (r->refresh_inflight)
        return;
    r->refresh_wanted = 0;
    r->last_refresh = h2o_now(th->loop);
    if (r->mode == ROUTER_CLUSTER) {
        for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
            shard_t *s = r->shards[i];
            if (s != NULL && s->up) {
                const char *argv[2] = {"CLUSTER", "SLOTS"};
                size_t lens[2] = {7, 5};
                if (redis_conn_command(s->cmd, on_slots, th, 2, argv, lens) == 0) {
                    r->refresh_inflight = 1;
                    return;
                }
            }
        }
    }
    if (r->boot == NULL)
        boot_open(th);
    else if (redis_conn_is_ready(r->boot))
        on_boot_ready(r->boot, th);
}

void router_request_refresh(node_thread_t *th)
{
    request_refresh(th);
}

static void request_refresh(node_thread_t *th)
{
    router_t *r = &th->router;
    if (r->mode == ROUTER_SINGLE && th->shared->redis.sentinel_master[0] == '\0')
        return;
    if (h2o_now(th->loop) - r->last_refresh >= REFRESH_MIN_MS)
        refresh_now(th);
    else
        r->refresh_wanted = 1;
}

/* ---- public ------------------------------------------------------------------------------ */

void router_start(node_thread_t *th)
{
    router_t *r = &th->router;
    memset(r, 0, sizeof(*r));
    memset(r->slot_shard, -1, sizeof(r->slot_shard));
    r->mode = ROUTER_DISCOVERING;
    boot_open(th);
}

void router_stop(node_thread_t *th)
{
    router_t *r = &th->router;
    boot_drop(th);
    for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
        if (r->shards[i] != NULL) {
            shard_free(r->shards[i]);
            r->shards[i] = NULL;
        }
    }
    th->link_ready = 0;
}

void router_tick(node_thread_t *th)
{
    router_t *r = &th->router;
    if (r->boot_drop_pending) {
        r->boot_drop_pending = 0;
        boot_drop(th);
    }
    int sentinel = th->shared->redis.sentinel_master[0] != '\0';
    int want =
        r->refresh_wanted || r->mode == ROUTER_DISCOVERING || (r->mode != ROUTER_SINGLE && !r->complete);
    for (int i = 0; i < ROUTER_MAX_SHARDS && !want; i++)
        want = r->shards[i] != NULL && !r->shards[i]->up && (r->mode == ROUTER_CLUSTER || sentinel);
    /* with Sentinel, ask once a second anyway: an old master that comes
     * back is a replica, and its connection would look healthy */
    if (sentinel)
        want = 1;
    if (want && h2o_now(th->loop) - r->last_refresh >= REFRESH_MIN_MS)
        refresh_now(th);
}

int router_shard_of_key(const node_thread_t *th, const char *key, size_t len)
{
    const router_t *r = &th->router;
    if (r->mode == ROUTER_DISCOVERING)
        return -1;
    return r->slot_shard[cluster_key_slot(key, len)];
}

redis_conn_t *router_cmd(const node_thread_t *th, int shard)
{
    shard_t *s = shard >= 0 && shard < ROUTER_MAX_SHARDS ? th->router.shards[shard] : NULL;
    return s != NULL ? s->cmd : NULL;
}

redis_conn_t *router_sub(const node_thread_t *th, int shard)
{
    shard_t *s = shard >= 0 && shard < ROUTER_MAX_SHARDS ? th->router.shards[shard] : NULL;
    return s != NULL ? s->sub : NULL;
}

int router_shard_up(const node_thread_t *th, int shard)
{
    shard_t *s = shard >= 0 && shard < ROUTER_MAX_SHARDS ? th->router.shards[shard] : NULL;
    return s != NULL && s->up;
}

redis_conn_t *router_cmd_for_key(const node_thread_t *th, const char *key, size_t len)
{
    int k = router_shard_of_key(th, key, len);
    return router_shard_up(th, k) ? router_cmd(th, k) : NULL;
}

int router_sharded(const node_thread_t *th)
{
    return th->router.mode == ROUTER_CLUSTER;
}

/* A command on a cluster, kept so a MOVED or ASK answer can send it again
 * where the answer says (ASK: after ASKING, this once). */
typedef struct routed {
    const node_thread_t *th;
    redis_reply_cb cb;
    void *data;
    int redirects;
    int argc;
    const char **argv;
    size_t *lens;
} routed_t;

#define ROUTED_MAX_REDIRECTS 3

/* The command connection of the master at host:port, when it is up. */
static redis_conn_t *cmd_at(const node_thread_t *th, const char *host, int port)
{
    for (int i = 0; i < ROUTER_MAX_SHARDS; i++) {
        shard_t *s = th->router.shards[i];
        if (s != NULL && s->up && s->url.port == port && strcmp(s->url.host, host) == 0)
            return s->cmd;
    }
    return NULL;
}

static int on_routed(redis_conn_t *conn, redisReply *rep, void *data)
{
    routed_t *r = data;
    cluster_redirect_t rd;
    cluster_error_kind_t k;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && r->redirects < ROUTED_MAX_REDIRECTS &&
        ((k = cluster_parse_redirect(rep->str, rep->len, &rd)) == CLUSTER_ERROR_MOVED ||
         k == CLUSTER_ERROR_ASK) &&
        rd.host_kind == CLUSTER_HOST_NAMED) {
        redis_conn_t *to = cmd_at(r->th, rd.host, rd.port);
        const char *asking[1] = {"ASKING"};
        size_t asking_len[1] = {6};
        if (to != NULL &&
            (k != CLUSTER_ERROR_ASK || redis_conn_command(to, NULL, NULL, 1, asking, asking_len) == 0) &&
            redis_conn_command(to, on_routed, r, r->argc, r->argv, r->lens) == 0) {
            r->redirects++;
            return 0; /* this answer is freed; the next one comes here */
        }
    }
    int keep = r->cb != NULL ? r->cb(conn, rep, r->data) : 0;
    free(r);
    return keep;
}

int router_command(const node_thread_t *th, const char *key, size_t keylen, redis_reply_cb cb, void *data,
                   int argc, const char **argv, const size_t *argvlen)
{
    redis_conn_t *c = router_cmd_for_key(th, key, keylen);
    if (c == NULL)
        return -1;
    if (!router_sharded(th))
        return redis_conn_command(c, cb, data, argc, argv, argvlen);
    /* one allocation: the struct, the pointers, the lengths, the bytes */
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argvlen[i];
    routed_t *r = malloc(sizeof(*r) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + bytes);
    if (r == NULL)
        return -1;
    *r = (routed_t){.th = th, .cb = cb, .data = data, .argc = argc};
    r->argv = (const char **)(r + 1);
    r->lens = (size_t *)(r->argv + argc);
    char *p = (char *)(r->lens + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], argvlen[i]);
        r->argv[i] = p;
        r->lens[i] = argvlen[i];
        p += argvlen[i];
    }
    if (redis_conn_command(c, on_routed, r, argc, r->argv, r->lens) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

int router_topics_up(node_thread_t *th, const h2o_iovec_t *topics, size_t n)
{
    if (!th->link_ready)
        return 0;
    if (th->redis_all_up)
        return 1;
    int up = 1;
    for (size_t i = 0; i < n && up; i++) {
        buf_clear(&th->scratch);
        up = topic_key(&th->scratch, th->shared->cfg->prefix, topics[i].base, topics[i].len,
                       TOPIC_KEY_STREAM) == 0 &&
             router_shard_up(th, router_shard_of_key(th, th->scratch.base, th->scratch.len));
    }
    return up;
}
