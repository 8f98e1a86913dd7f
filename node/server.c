/* HTTP routes of the node and the life of one worker thread: its h2o
 * context and listener, its Redis link (a command and a pub/sub
 * connection, up or down together), heartbeats and shutdown. */
#include "node/server.h"

#include <malloc.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "broker/stream_keys.h"
#include "common/log.h"
#include "node/client.h"
#include "node/cursor.h"
#include "node/http_reply.h"
#include "node/ip_limit.h"
#include "node/publish.h"
#include "node/resume.h"
#include "node/query.h"
#include "node/registry.h"

extern const char ssehub_demo_html[];
extern const size_t ssehub_demo_html_len;

/* ---- responses ---------------------------------------------------------------- */

/* True when the request asks for JSON and not for an event stream: a
 * script or probe rather than an EventSource (which always sends
 * Accept: text/event-stream). */
static int wants_json_refusal(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    return h2o_strstr(v.base, v.len, H2O_STRLIT("application/json")) != SIZE_MAX &&
           h2o_strstr(v.base, v.len, H2O_STRLIT("text/event-stream")) == SIZE_MAX;
}

/* A stream refused for a passing reason: 200 (any other status stops a
 * browser's EventSource for good), a jittered retry: and a comment, and
 * Retry-After in whole seconds. A client that asked for JSON only gets
 * 503 with the error code and the same Retry-After. */
int server_stream_refusal(node_thread_t *th, h2o_req_t *req, const char *code, const char *why)
{
    long ms = th->shared->cfg->retry_ms;
    ms += ms > 0 ? rand() % (ms + 1) : 0;
    req->http1_is_persistent = 0; /* the client is to come back later, maybe elsewhere */
    if (wants_json_refusal(req))
        return http_reply_error_retry(req, 503, "Service Unavailable", code, why, (ms + 999) / 1000);
    char *after = h2o_mem_alloc_pool(&req->pool, 24);
    int an = snprintf(after, 24, "%ld", ms > 999 ? (ms + 999) / 1000 : 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, after, (size_t)an);
    char body[256];
    int n = snprintf(body, sizeof(body), "retry: %ld\n: %s\n\n", ms, why);
    return http_reply_text(req, 200, "OK", "text/event-stream", body, (size_t)n);
}

/* ---- streams: /events and GET /.well-known/mercure ------------------------------------ */

#define MAX_PATTERNS 32

/* The parsed query of a stream request. */
typedef struct stream_query {
    int mercure;          /* topic= are Mercure selectors: `*` and URI templates are patterns */
    h2o_iovec_t topics[CURSOR_MAX_TOPICS];
    size_t ntopics;
    selector_t *patterns[MAX_PATTERNS];
    size_t npatterns;
    buf_t store;          /* decoded topic bytes, NUL-separated */
    buf_t last_event_id;  /* from lastEventID */
    int has_last_event_id;
    buf_t token;          /* from authorization= */
} stream_query_t;

static void stream_query_free(stream_query_t *q)
{
    for (size_t i = 0; i < q->npatterns; i++)
        selector_free(q->patterns[i]);
    buf_free(&q->store);
    buf_free(&q->last_event_id);
    buf_free(&q->token);
}

/* Takes one topic= value: an exact topic, or on the Mercure endpoint a
 * pattern selector. Returns NULL, or the error code with a message. */
static const char *take_topic(node_thread_t *th, stream_query_t *q, size_t *offsets, const buf_t *value, char *msg,
                              size_t msglen)
{
    const ssehub_config_t *cfg = th->shared->cfg;
    int v = topic_validate(value->base, value->len, (size_t)cfg->max_topic_length);
    if (v != TOPIC_OK) {
        snprintf(msg, msglen, "topic is %s", topic_error_name(v));
        return "bad_topic";
    }
    if (q->ntopics + q->npatterns >= (size_t)cfg->max_topics_per_connection) {
        snprintf(msg, msglen, "at most %ld topics per connection", cfg->max_topics_per_connection);
        return "too_many_topics";
    }
    if (q->mercure) {
        selector_t *sel = selector_new(value->base, value->len);
        if (sel == NULL) {
            snprintf(msg, msglen, "out of memory");
            return "out_of_memory";
        }
        if (selector_kind(sel) != 0) {
            if (q->npatterns == MAX_PATTERNS) {
                selector_free(sel);
                snprintf(msg, msglen, "at most %d `*` or URI template selectors per connection", MAX_PATTERNS);
                return "too_many_topics";
            }
            q->patterns[q->npatterns++] = sel;
            return NULL;
        }
        selector_free(sel);
    }
    offsets[q->ntopics++] = q->store.len;
    buf_append(&q->store, value->base, value->len + 1);
    return NULL;
}

/* Collects topic=, lastEventID= and authorization= parameters; returns
 * NULL, or the error code with a message in msg. */
static const char *parse_stream_query(node_thread_t *th, h2o_req_t *req, stream_query_t *q, char *msg, size_t msglen)
{
    size_t offsets[CURSOR_MAX_TOPICS + 1];
    buf_t name = BUF_INIT, value = BUF_INIT;
    const char *err = NULL;
    if (req->query_at != SIZE_MAX) {
        const char *cur = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        int r;
        while (err == NULL && (r = query_next(&cur, end, &name, &value)) != 0) {
            if (r < 0) {
                err = "bad_query";
                snprintf(msg, msglen, "malformed percent-encoding in the query string");
            } else if (strcmp(name.base, "topic") == 0) {
                err = take_topic(th, q, offsets, &value, msg, msglen);
            } else if (strcmp(name.base, "lastEventID") == 0) {
                buf_clear(&q->last_event_id);
                buf_append(&q->last_event_id, value.base, value.len);
                q->has_last_event_id = 1;
            } else if (strcmp(name.base, "authorization") == 0) {
                buf_clear(&q->token);
                buf_append(&q->token, value.base, value.len);
            }
        }
    }
    buf_free(&name);
    buf_free(&value);
    if (err == NULL && q->ntopics == 0 && q->npatterns == 0) {
        err = "missing_topic";
        snprintf(msg, msglen, "give at least one topic= parameter");
    }
    /* pointers only now: the store may have moved while growing */
    size_t kept = 0;
    for (size_t i = 0; err == NULL && i < q->ntopics; i++) {
        h2o_iovec_t t = h2o_iovec_init(q->store.base + offsets[i], strlen(q->store.base + offsets[i]));
        int dup = 0;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = q->topics[j].len == t.len && memcmp(q->topics[j].base, t.base, t.len) == 0;
        if (!dup)
            q->topics[kept++] = t;
    }
    if (err == NULL)
        q->ntopics = kept;
    return err;
}

/* Returns the client's cursor: the Last-Event-ID header wins over the
 * lastEventID query parameter; *given says whether there was one. */
static void stream_cursor(h2o_req_t *req, const stream_query_t *q, cursor_t *cur, h2o_iovec_t *given)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    *given = h2o_iovec_init(NULL, 0);
    if (i >= 0) {
        *given = req->headers.entries[i].value;
        cursor_parse(given->base, given->len, cur);
    } else if (q->has_last_event_id) {
        *given = h2o_iovec_init(q->last_event_id.base, q->last_event_id.len);
        cursor_parse(given->base, given->len, cur);
    } else {
        cursor_parse("", 0, cur);
    }
}

/* Verifies the subscriber's token, if any; returns 0 with *grant (NULL:
 * anonymous), or sends the 401 and returns 1. */
static int stream_auth(node_thread_t *th, h2o_req_t *req, const stream_query_t *q, auth_grant_t **grant)
{
    node_shared_t *sh = th->shared;
    h2o_iovec_t token;
    int has = sh->keys.nsubscriber > 0 && auth_find_token(req, &q->token, &token);
    *grant = NULL;
    if (!has) {
        if (sh->cfg->subscribe_anonymous)
            return 0;
        http_reply_error(req, 401, "Unauthorized", "unauthorized",
                         "a token is required (Authorization: Bearer, authorization= or the mercureAuthorization cookie)");
        return 1;
    }
    int r = auth_subscriber(&sh->keys, token, (int64_t)time(NULL), grant);
    if (r != 0) {
        http_reply_error(req, 401, "Unauthorized", auth_error_name(r), "the token is not valid");
        return 1;
    }
    return 0;
}

/* Counts the stream against max_connections_per_ip; returns the count's
 * entry, or NULL when the address has its share open already. */
static ip_entry_t *stream_ip(node_thread_t *th, h2o_req_t *req)
{
    struct sockaddr_storage sa;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&sa);
    if (len == 0)
        return NULL;
    return ip_limit_acquire((struct sockaddr *)&sa, len, (unsigned)th->shared->cfg->max_connections_per_ip);
}

static int on_stream(node_thread_t *th, h2o_req_t *req, int mercure)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return http_reply_error(req, 405, "Method Not Allowed", "method_not_allowed",
                                mercure ? "use GET to subscribe, POST to publish" : "use GET");
    stream_query_t q = {.mercure = mercure};
    char msg[160];
    const char *err = parse_stream_query(th, req, &q, msg, sizeof(msg));
    auth_grant_t *grant = NULL;
    ip_entry_t *ip = NULL; /* the max_connections_per_ip count, while this function holds it */
    int ret;
    if (err == NULL && q.npatterns > 0 && router_sharded(th)) {
        err = "patterns_unavailable";
        snprintf(msg, sizeof(msg),
                 "`*` and URI template selectors are not served on a Redis Cluster; name topics");
    }
    if (err != NULL) {
        th->stats.v[STAT_REFUSED_BAD_REQUEST]++;
        ret = http_reply_error(req, 400, "Bad Request", err, msg);
    } else if (stream_auth(th, req, &q, &grant)) {
        th->stats.v[STAT_REFUSED_AUTH]++;
        ret = 0;
    } else if (atomic_load(&th->shared->stopping)) {
        th->stats.v[STAT_REFUSED_DRAINING]++;
        ret = server_stream_refusal(th, req, "draining", "node shutting down, retry later");
    } else if (!router_topics_up(th, q.topics, q.ntopics)) {
        th->stats.v[STAT_REFUSED_REDIS]++;
        ret = server_stream_refusal(th, req, "redis_unavailable", "redis unavailable, retry later");
    } else if (atomic_load(&th->shared->connections) >= th->shared->cfg->max_connections) {
        th->stats.v[STAT_REFUSED_LIMIT]++;
        ret = server_stream_refusal(th, req, "too_many_connections", "connection limit reached, retry later");
    } else if (th->shared->cfg->max_connections_per_ip > 0 && (ip = stream_ip(th, req)) == NULL) {
        th->stats.v[STAT_REFUSED_LIMIT]++;
        ret = server_stream_refusal(th, req, "too_many_connections_from_address", "too many streams from this address, retry later");
    } else {
        cursor_t *cur = malloc(sizeof(*cur));
        if (cur == NULL) {
            ret = server_stream_refusal(th, req, "out_of_memory", "out of memory, retry later");
        } else {
            h2o_iovec_t given;
            stream_cursor(req, &q, cur, &given);
            char *requested = given.base != NULL ? strndup(given.base, given.len) : NULL;
            selector_t **pats = q.npatterns ? malloc(q.npatterns * sizeof(*pats)) : NULL;
            if (pats != NULL)
                memcpy(pats, q.patterns, q.npatterns * sizeof(*pats));
            client_opts_t opts = {.mercure = mercure, .patterns = pats, .npatterns = pats ? q.npatterns : 0,
                                  .grant = grant, .requested_id = requested, .ip = ip};
            ip = NULL; /* in opts now */
            int r;
            if (q.npatterns && pats == NULL)
                r = -1;
            else if (mercure && cur->kind == CURSOR_INVALID && q.ntopics > 0 &&
                     resume_by_mid(th, req, q.topics, q.ntopics, given, &opts) == 0)
                r = 0, requested = NULL; /* answered once the id is looked up; it owns requested now */
            else
                r = client_open(th, req, q.topics, q.ntopics, cur, &opts);
            if (pats != NULL && opts.patterns == NULL)
                q.npatterns = 0; /* the selectors moved into the client */
            else
                free(pats);
            grant = opts.grant;
            ip = opts.ip; /* still ours when the stream did not open */
            if (r == -2)
                ret = http_reply_error(req, 400, "Bad Request", "topic_hash_collision",
                                       "two of these topics have the same hash; subscribe to them separately");
            else
                ret = r == 0 ? 0 : server_stream_refusal(th, req, "out_of_memory", "out of memory, retry later");
            free(requested);
            free(cur);
        }
    }
    auth_grant_free(grant);
    ip_limit_release(ip);
    stream_query_free(&q);
    return ret;
}

/* ---- routes ----------------------------------------------------------------------- */

static int path_is(h2o_req_t *req, const char *p)
{
    size_t n = strlen(p);
    return req->path_normalized.len == n && memcmp(req->path_normalized.base, p, n) == 0;
}

/* HTTP/2 Rapid Reset (CVE-2023-44487): h2o 2.2.5 runs a handler for every
 * stream a client opens, however fast it resets them. A connection that
 * starts more than http2_max_stream_starts streams in a second is cut:
 * its socket is shut down, which ends all its streams. */
static int rapid_reset_guard(node_thread_t *th, h2o_req_t *req)
{
    if (req->version < 0x200)
        return 0;
    uint64_t now = h2o_now(th->loop);
    if (!conn_starts_hit(&th->starts, req->conn->id, now, (uint32_t)th->shared->cfg->http2_max_stream_starts))
        return 0;
    /* the peer's address first: a socket shut down may not know it */
    char peer[64] = "";
    struct sockaddr_storage sa;
    socklen_t salen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&sa);
    if (salen > 0)
        h2o_socket_getnumerichost((struct sockaddr *)&sa, salen, peer);
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    th->cut_unlogged++;
    th->stats.v[STAT_H2_CUTS]++;
    if (now - th->cut_logged_at >= 1000 || th->cut_logged_at == 0) {
        log_warn("node", "connection cut: too many HTTP/2 stream starts",
                 json_pack("{s:s,s:I,s:I}", "peer", peer, "limit_per_second",
                           (json_int_t)th->shared->cfg->http2_max_stream_starts, "cuts", (json_int_t)th->cut_unlogged));
        th->cut_logged_at = now;
        th->cut_unlogged = 0;
    }
    return 1;
}

/* ---- CORS ---------------------------------------------------------------------------- */

/* 1 when cors_origins allows the origin (len bytes). */
static int cors_allowed(const char *list, const char *origin, size_t len)
{
    if (strcmp(list, "*") == 0)
        return 1;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ' ' && *e != ',')
            e++;
        if ((size_t)(e - p) == len && len > 0 && memcmp(p, origin, len) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* Adds the CORS headers of an allowed Origin (echoed, so that cookies and
 * Authorization work cross-origin); returns 1 when the request came from
 * an allowed origin, 0 when not or same-origin (no Origin header), -1 when
 * it named an origin that is not allowed. */
static int cors_apply(node_thread_t *th, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (i < 0)
        return 0;
    h2o_iovec_t o = req->headers.entries[i].value;
    /* browsers send Origin with same-origin POSTs too: the page's own node */
    size_t slen = req->scheme->name.len;
    if (o.len == slen + 3 + req->authority.len && memcmp(o.base, req->scheme->name.base, slen) == 0 &&
        memcmp(o.base + slen, "://", 3) == 0 && h2o_lcstris(o.base + slen + 3, req->authority.len, req->authority.base, req->authority.len))
        return 0;
    if (!cors_allowed(th->shared->cfg->cors_origins, o.base, o.len))
        return -1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, o.base, o.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                          H2O_STRLIT("true"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT("Last-Event-ID"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    return 1;
}

/* OPTIONS: a CORS preflight (for a publish with Authorization, or a
 * subscription with headers a polyfill sets). */
static int on_preflight(h2o_req_t *req, int cors)
{
    if (cors < 0)
        return http_reply_error(req, 403, "Forbidden", "origin_not_allowed", "this origin is not in cors_origins");
    if (cors > 0) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                              H2O_STRLIT("GET, POST, OPTIONS"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                              H2O_STRLIT("Authorization, Content-Type, Last-Event-ID, Cache-Control"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL,
                              H2O_STRLIT("600"));
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL, H2O_STRLIT("GET, POST, OPTIONS"));
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, NULL, 0);
    return 0;
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    node_thread_t *th = node_thread_of(req);
    if (rapid_reset_guard(th, req))
        return http_reply_error(req, 429, "Too Many Requests", "too_many_streams",
                               "too many streams started on this connection");
    /* h2o itself bounds only heads that arrive in pieces */
    size_t head = req->method.len + req->path.len + req->authority.len;
    for (size_t i = 0; i < req->headers.size; i++)
        head += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (head > (size_t)th->shared->cfg->max_request_header_bytes) {
        req->http1_is_persistent = 0;
        th->stats.v[STAT_REFUSED_BAD_REQUEST]++;
        return http_reply_error(req, 431, "Request Header Fields Too Large", "headers_too_large",
                                "the request target and headers are over max_request_header_bytes");
    }
    int cors = cors_apply(th, req);
    int options = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"));
    int mercure = path_is(req, "/.well-known/mercure");
    if (mercure || path_is(req, "/events")) {
        if (options)
            return on_preflight(req, cors);
        if (cors < 0)
            return http_reply_error(req, 403, "Forbidden", "origin_not_allowed", "this origin is not in cors_origins");
        if (mercure && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
            return publish_handle(th, req);
        return on_stream(th, req, mercure);
    }
    if (path_is(req, "/metrics")) {
        buf_t out = BUF_INIT;
        metrics_publish(th);
        metrics_render(th->shared, &out);
        http_reply_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out.base ? out.base : "", out.len);
        buf_free(&out);
        return 0;
    }
    if (path_is(req, "/cluster"))
        return registry_handle(th, req);
    if (path_is(req, "/healthz"))
        return http_reply_text(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
    if (path_is(req, "/readyz")) {
        if (atomic_load(&th->shared->stopping))
            return http_reply_error_retry(req, 503, "Service Unavailable", "draining", "node is shutting down",
                                          th->shared->cfg->retry_ms / 1000);
        /* ready when every thread takes streams: a probe answered by one
         * thread must not send streams to another still connecting */
        if (!th->link_ready || metrics_min(th->shared, STAT_LINK_READY) == 0)
            return http_reply_error_retry(req, 503, "Service Unavailable", "redis_unavailable", "no Redis link",
                                          th->shared->cfg->retry_ms / 1000);
        return http_reply_text(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ready\"}"));
    }
    if (path_is(req, "/"))
        return http_reply_text(req, 200, "OK", "text/html; charset=utf-8", ssehub_demo_html, ssehub_demo_html_len);
    return http_reply_error(req, 404, "Not Found", "not_found", "no such endpoint");
}

void server_register_routes(node_shared_t *shared, h2o_hostconf_t *host)
{
    (void)shared;
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_request;
}

/* ---- the thread --------------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    node_listener_t *l = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&l->accept_ctx, sock);
        l->th->accepted++;
    }
}

/* Stops accepting on every listener of the thread. */
static void listeners_close(node_thread_t *th)
{
    for (int i = 0; i < th->nlisteners; i++) {
        node_listener_t *l = &th->listeners[i];
        if (l->sock != NULL) {
            h2o_socket_read_stop(l->sock);
            h2o_socket_close(l->sock);
            l->sock = NULL;
        }
    }
}

/* Once a second: after a burst of new connections, give the pages h2o's
 * per-request memory (input buffer, pool: ~13 KB a connection while its
 * head is written) used back to the system. Taken-over streams keep under
 * 1 KB; without this the freed pages would stay resident. */
static void on_housekeeping(h2o_timeout_entry_t *entry)
{
    node_thread_t *th = H2O_STRUCT_FROM_MEMBER(node_thread_t, housekeeping, entry);
    topics_expire_idle(th);
    clients_expire_tokens(th);
    router_tick(th);
    metrics_publish(th);
    if (th->index == 0)
        registry_beat(th);
    conn_starts_expire(&th->starts, h2o_now(th->loop));
    if (th->accepted >= 256) {
        th->accepted = 0;
        malloc_trim(0);
    }
    h2o_timeout_link(th->loop, &th->housekeeping_timeout, &th->housekeeping);
}

static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    node_thread_t *th = H2O_STRUCT_FROM_MEMBER(node_thread_t, heartbeat, entry);
    clients_heartbeat(th);
    h2o_timeout_link(th->loop, &th->heartbeat_timeout, &th->heartbeat);
}

/* Sets up the loop, context, listener, Redis link and heartbeat timer. */
static void thread_setup(node_thread_t *th)
{
    node_shared_t *sh = th->shared;
    th->loop = h2o_evloop_create();
    h2o_context_init(&th->ctx, th->loop, &sh->h2o);
    for (int i = 0; i < th->nlisteners; i++) {
        node_listener_t *l = &th->listeners[i];
        l->th = th;
        l->accept_ctx.ctx = &th->ctx;
        l->accept_ctx.hosts = sh->h2o.hosts;
        l->sock = h2o_evloop_socket_create(th->loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }
    topic_table_init(&th->topics);
    h2o_linklist_init_anchor(&th->pattern_clients);
    h2o_linklist_init_anchor(&th->expiring);
    h2o_linklist_init_anchor(&th->clients);
    h2o_linklist_init_anchor(&th->dirty);
    router_start(th);
    th->heartbeat_frame = frame_from_bytes(":\n\n", 3);
    h2o_timeout_init(th->loop, &th->heartbeat_timeout, (uint64_t)sh->cfg->heartbeat_interval * 1000);
    th->heartbeat.cb = on_heartbeat;
    h2o_timeout_link(th->loop, &th->heartbeat_timeout, &th->heartbeat);
    h2o_timeout_init(th->loop, &th->housekeeping_timeout, 1000);
    th->housekeeping.cb = on_housekeeping;
    h2o_timeout_link(th->loop, &th->housekeeping_timeout, &th->housekeeping);
}

/* True when none of the h2o context's timeouts is armed: no HTTP
 * connection of h2o's is left on this thread. */
static int context_idle(h2o_context_t *ctx)
{
    /* HTTP/2's graceful-shutdown timer may be the one entry of the one-second
     * timeout; it is unlinked before disposal */
    h2o_linklist_t *one = &ctx->one_sec_timeout._entries, *grace = &ctx->http2._graceful_shutdown_timeout._link;
    int one_idle = h2o_linklist_is_empty(one) || (one->next == grace && grace->next == one);
    return one_idle && h2o_linklist_is_empty(&ctx->zero_timeout._entries) &&
           h2o_linklist_is_empty(&ctx->http1.req_timeout._entries) &&
           h2o_linklist_is_empty(&ctx->http2.idle_timeout._entries) && h2o_linklist_is_empty(&ctx->http2._conns);
}

/* Closes the listener, ends every stream, lets h2o finish writing (for at
 * most two seconds) and frees everything the thread owns. */
static void thread_teardown(node_thread_t *th)
{
    listeners_close(th);
    clients_close_all(th, "node shutting down, reconnect");
    clients_flush_dirty(th);
    h2o_context_request_shutdown(&th->ctx);
    /* idle keep-alive connections (health checks, refused requests) wait
     * on these timeouts; expire them now so they close before disposal */
    th->ctx.http1.req_timeout.timeout = 0;
    th->ctx.http2.idle_timeout.timeout = 0;
    uint64_t until = h2o_now(th->loop) + 2000;
    while ((!h2o_linklist_is_empty(&th->clients) || !context_idle(&th->ctx)) && h2o_now(th->loop) < until)
        h2o_evloop_run(th->loop, 50);
    h2o_timeout_unlink(&th->heartbeat);
    h2o_timeout_dispose(th->loop, &th->heartbeat_timeout);
    h2o_timeout_unlink(&th->housekeeping);
    h2o_timeout_dispose(th->loop, &th->housekeeping_timeout);
    router_stop(th);
    for (int i = 0; i < 10; i++)
        h2o_evloop_run(th->loop, 10);
    topic_table_dispose(&th->topics);
    buf_free(&th->scratch);
    conn_starts_dispose(&th->starts);
    frame_release(th->heartbeat_frame);
    free(th->wvecs);
    /* request_shutdown armed HTTP/2's graceful-shutdown timer on a context
     * timeout; dispose asserts that none is armed */
    if (h2o_timeout_is_linked(&th->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&th->ctx.http2._graceful_shutdown_timeout);
    if (!context_idle(&th->ctx)) {
        /* h2o asserts that no timeout is armed; leaving it to exit is safer */
        log_warn("node", "connections outlived the shutdown", json_pack("{s:i}", "thread", th->index));
        return;
    }
    h2o_multithread_queue_t *queue = th->ctx.queue;
    h2o_context_dispose(&th->ctx);
    h2o_evloop_run(th->loop, 0); /* finish closing the queue's socket */
    /* h2o 2.2.5's evloop build never frees the queue nor the per-thread
     * recycled socket buffers (each recycled chunk starts with its next
     * pointer); free them so the process ends with nothing leaked. Its
     * recycled memory-pool chunks are out of reach (a static thread-local
     * list): the thread waits for the process to end instead of exiting
     * (worker_main in main.c), which keeps them reachable. */
    free(queue);
    h2o_mem_recycle_t *r = &h2o_socket_buffer_prototype.allocator;
    while (r->_link != NULL) {
        void *chunk = r->_link;
        r->_link = *(void **)chunk;
        free(chunk);
    }
    r->cnt = 0;
    h2o_evloop_destroy(th->loop);
}

/* Runs the loop for up to ms, or until a second signal asks to stop now. */
static void run_for(node_thread_t *th, uint64_t ms)
{
    uint64_t until = h2o_now(th->loop) + ms;
    while (h2o_now(th->loop) < until && !atomic_load(&th->shared->stop_now))
        h2o_evloop_run(th->loop, (int32_t)(until - h2o_now(th->loop) < 100 ? until - h2o_now(th->loop) : 100));
}

/* Graceful drain (DESIGN §7): /readyz already answers 503 and new streams
 * are refused with retry:; after a short delay, so load balancers see it,
 * the listener closes; then open streams are ended evenly over
 * drain_seconds, each with a jittered retry:, so clients move to other
 * nodes without a thundering herd. SIGINT drains in at most a second. */
static void thread_drain(node_thread_t *th)
{
    const ssehub_config_t *cfg = th->shared->cfg;
    int fast = atomic_load(&th->shared->fast_drain);
    uint64_t drain_ms = (uint64_t)cfg->drain_seconds * 1000;
    uint64_t delay_ms = drain_ms == 0 || fast ? 0 : drain_ms / 10 < 2000 ? drain_ms / 10 : 2000;
    if (fast && drain_ms > 1000)
        drain_ms = 1000;
    log_info("node", "draining", json_pack("{s:i,s:I,s:I}", "thread", th->index, "delay_ms", (json_int_t)delay_ms,
                                           "drain_ms", (json_int_t)drain_ms));
    run_for(th, delay_ms);
    listeners_close(th);
    uint64_t end = h2o_now(th->loop) + drain_ms;
    while (!atomic_load(&th->shared->stop_now)) {
        uint64_t now = h2o_now(th->loop);
        uint64_t left = now < end ? end - now : 0;
        size_t open = clients_close_some(th, 0, NULL);
        if (open == 0)
            break;
        /* end a share of the streams each 100 ms tick, so the last ones go
         * as the drain time runs out */
        size_t n = left <= 100 ? open : (open * 100 + left - 1) / left;
        clients_close_some(th, n, "node draining, reconnect");
        clients_flush_dirty(th);
        run_for(th, 100);
        if (left == 0 && now > end + 2000)
            break; /* streams that cannot even take their last bytes */
    }
}

void *server_thread_main(void *arg)
{
    node_thread_t *th = arg;
    thread_setup(th);
    while (!atomic_load(&th->shared->stopping))
        h2o_evloop_run(th->loop, 100);
    thread_drain(th);
    thread_teardown(th);
    return NULL;
}
