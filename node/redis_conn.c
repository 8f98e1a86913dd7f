/* A pipelined Redis connection on an h2o event loop (see redis_conn.h). */
#include "node/redis_conn.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "broker/functions.h"
#include "common/buf.h"
#include "common/log.h"

#define TICK_MS 100
#define CONNECT_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A link that drops packets silently looks healthy forever: every ready
 * connection is PINGed each PROBE_INTERVAL_MS and reset when no answer
 * comes within PROBE_TIMEOUT_MS, so a dead link is noticed within about
 * 3 s (TCP keepalive is a slower second line). */
#define PROBE_INTERVAL_MS 1000
#define PROBE_TIMEOUT_MS 2000

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_HANDSHAKE, CONN_READY };

typedef struct pending_reply {
    redis_reply_cb cb;
    void *data;
    uint64_t queued_ns; /* monotonic time the command was queued */
} pending_reply_t;

/* Monotonic nanoseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct redis_conn {
    h2o_evloop_t *loop;
    redis_url_t url;
    char name[32];
    int load_functions;
    redis_conn_callbacks_t cbs;
    void *data;

    enum conn_state state;
    h2o_socket_t *sock;
    redisReader *reader;
    buf_t out;      /* formatted commands not yet handed to the socket */
    buf_t inflight; /* bytes the socket is writing */
    int writing;

    pending_reply_t *fifo; /* ring of callbacks awaiting replies, in order */
    size_t fifo_head, fifo_len, fifo_cap;
    int handshake_left;

    h2o_timeout_t tick;
    h2o_timeout_entry_t timer;
    uint64_t deadline; /* next reconnect attempt, or connect timeout */
    uint64_t probe_sent_at; /* 0: no probe outstanding */
    uint64_t last_probe;
    unsigned backoff_ms;
    unsigned generation; /* bumped on every reset so callbacks can tell */
    int in_dispatch;
    int free_requested;
};

static void conn_connect(redis_conn_t *c);
static void conn_fail(redis_conn_t *c, const char *why);

/* ---- pending-reply ring ---------------------------------------------- */

/* Appends a callback to the ring; returns 0 or -ENOMEM. */
static int fifo_push(redis_conn_t *c, redis_reply_cb cb, void *data)
{
    if (c->fifo_len == c->fifo_cap) {
        size_t cap = c->fifo_cap ? c->fifo_cap * 2 : 64;
        pending_reply_t *n = malloc(cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < c->fifo_len; i++)
            n[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
        free(c->fifo);
        c->fifo = n;
        c->fifo_cap = cap;
        c->fifo_head = 0;
    }
    c->fifo[(c->fifo_head + c->fifo_len) % c->fifo_cap] =
        (pending_reply_t){cb, data, c->cbs.on_latency != NULL ? now_ns() : 0};
    c->fifo_len++;
    return 0;
}

/* Removes and returns the oldest callback. */
static pending_reply_t fifo_pop(redis_conn_t *c)
{
    pending_reply_t p = c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
    c->fifo_len--;
    return p;
}

/* ---- writing ----------------------------------------------------------- */

static void on_write_done(h2o_socket_t *sock, const char *err);

/* Hands whatever is queued to the socket unless a write is in flight. */
static void conn_flush(redis_conn_t *c)
{
    if (c->writing || c->out.len == 0 || c->sock == NULL)
        return;
    buf_t t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    buf_clear(&c->out);
    c->writing = 1;
    h2o_iovec_t v = h2o_iovec_init(c->inflight.base, c->inflight.len);
    h2o_socket_write(c->sock, &v, 1, on_write_done);
}

static void on_write_done(h2o_socket_t *sock, const char *err)
{
    redis_conn_t *c = sock->data;
    c->writing = 0;
    buf_clear(&c->inflight);
    if (err != NULL) {
        conn_fail(c, err);
        return;
    }
    conn_flush(c);
}

/* Formats and queues one command; returns 0 or -ENOMEM. */
static int conn_queue(redis_conn_t *c, redis_reply_cb cb, void *data, int argc, const char **argv,
                      const size_t *argvlen, int expect_reply)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0)
        return -ENOMEM;
    int r = buf_append(&c->out, cmd, (size_t)n);
    free(cmd);
    if (r == 0 && expect_reply)
        r = fifo_push(c, cb, data);
    if (r != 0)
        return r;
    conn_flush(c);
    return 0;
}

/* ---- replies ------------------------------------------------------------ */

/* True for the unsolicited replies of a connection in subscribed mode. */
static int is_push(const redisReply *r)
{
    static const char *kinds[] = {"message", "subscribe", "unsubscribe", "pmessage", "psubscribe",
                                  "punsubscribe", "smessage", "ssubscribe", "sunsubscribe", "pong"};
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcasecmp(r->element[0]->str, kinds[i]) == 0)
            return 1;
    return 0;
}

static int probe_reply(redis_conn_t *c, redisReply *r, void *data);
static int handshake_reply(redis_conn_t *c, redisReply *r, void *data);

/* Routes one reply to its waiting callback or to on_push; returns nonzero
 * when the callback kept the reply. */
static int conn_dispatch(redis_conn_t *c, redisReply *r)
{
    /* in subscribed mode a PING is answered by a "pong" push */
    if (c->fifo_len > 0 && c->fifo[c->fifo_head].cb == probe_reply && r->type == REDIS_REPLY_ARRAY &&
        r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING && strcasecmp(r->element[0]->str, "pong") == 0) {
        fifo_pop(c);
        return probe_reply(c, r, NULL);
    }
    if (c->cbs.on_push != NULL && is_push(r)) {
        c->cbs.on_push(c, r, c->data);
        return 0;
    }
    if (c->fifo_len == 0 && r->type == REDIS_REPLY_ERROR && c->cbs.on_error_reply != NULL) {
        /* a pub/sub command refused (e.g. SSUBSCRIBE answered MOVED) */
        c->cbs.on_error_reply(c, r, c->data);
        return 0;
    }
    if (c->fifo_len == 0) {
        log_warn("redis", "unexpected reply", json_pack("{s:s,s:i}", "conn", c->name, "type", r->type));
        return 0;
    }
    pending_reply_t p = fifo_pop(c);
    if (c->cbs.on_latency != NULL && p.queued_ns != 0)
        c->cbs.on_latency(c, now_ns() - p.queued_ns, c->data);
    if (r->type == REDIS_REPLY_ERROR && c->cbs.on_error_reply != NULL && p.cb != handshake_reply)
        c->cbs.on_error_reply(c, r, c->data);
    return p.cb != NULL ? p.cb(c, r, p.data) : 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    redis_conn_t *c = sock->data;
    if (err != NULL) {
        conn_fail(c, err);
        return;
    }
    if (redisReaderFeed(c->reader, sock->input->bytes, sock->input->size) != REDIS_OK) {
        conn_fail(c, "reader");
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    unsigned gen = c->generation;
    c->in_dispatch++;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            c->in_dispatch--;
            conn_fail(c, c->reader->errstr[0] ? c->reader->errstr : "protocol error");
            return;
        }
        if (reply == NULL)
            break;
        if (!conn_dispatch(c, reply))
            freeReplyObject(reply);
        if (c->generation != gen || c->free_requested)
            break;
    }
    if (c->cbs.on_batch_end != NULL && !c->free_requested)
        c->cbs.on_batch_end(c, c->data);
    c->in_dispatch--;
    if (c->free_requested && c->in_dispatch == 0)
        redis_conn_free(c);
}

/* ---- connecting ----------------------------------------------------------- */

/* Arms the 100 ms tick that drives reconnects and connect timeouts. */
static void conn_arm(redis_conn_t *c, uint64_t deadline)
{
    c->deadline = deadline;
    if (!h2o_timeout_is_linked(&c->timer))
        h2o_timeout_link(c->loop, &c->tick, &c->timer);
}

static int probe_reply(redis_conn_t *c, redisReply *r, void *data)
{
    (void)r;
    (void)data;
    c->probe_sent_at = 0;
    return 0;
}

/* Sends a probe, or fails the link when the last one went unanswered. */
static void conn_probe(redis_conn_t *c, uint64_t now)
{
    if (c->probe_sent_at != 0) {
        if (now - c->probe_sent_at > PROBE_TIMEOUT_MS)
            conn_fail(c, "probe timeout");
        return;
    }
    if (now - c->last_probe < PROBE_INTERVAL_MS)
        return;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    if (conn_queue(c, probe_reply, NULL, 1, argv, lens, 1) == 0) {
        c->probe_sent_at = now;
        c->last_probe = now;
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    redis_conn_t *c = H2O_STRUCT_FROM_MEMBER(redis_conn_t, timer, entry);
    uint64_t now = h2o_now(c->loop);
    if (c->state == CONN_READY) {
        h2o_timeout_link(c->loop, &c->tick, &c->timer);
        conn_probe(c, now); /* may fail the link, which re-arms the tick */
        return;
    }
    if (now < c->deadline) {
        h2o_timeout_link(c->loop, &c->tick, &c->timer);
        return;
    }
    if (c->state == CONN_DOWN)
        conn_connect(c);
    else
        conn_fail(c, "connect timeout");
}

static int handshake_reply(redis_conn_t *c, redisReply *r, void *data)
{
    const char *step = data;
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis", "handshake failed",
                  json_pack("{s:s,s:s,s:s}", "conn", c->name, "step", step, "error", r->str));
        conn_fail(c, "handshake");
        return 0;
    }
    if (--c->handshake_left > 0)
        return 0;
    c->state = CONN_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->probe_sent_at = 0;
    c->last_probe = h2o_now(c->loop);
    log_info("redis", "connected", json_pack("{s:s,s:s,s:i}", "conn", c->name, "host", c->url.host, "port", c->url.port));
    if (c->cbs.on_ready != NULL)
        c->cbs.on_ready(c, c->data);
    return 0;
}

/* Sends AUTH, SELECT and FUNCTION LOAD as needed; READY follows the last reply. */
static void conn_handshake(redis_conn_t *c)
{
    c->state = CONN_HANDSHAKE;
    c->handshake_left = 0;
    if (c->url.password[0]) {
        const char *argv[3] = {"AUTH", c->url.user[0] ? c->url.user : c->url.password, c->url.password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(argv[2])};
        conn_queue(c, handshake_reply, "AUTH", c->url.user[0] ? 3 : 2, argv, lens, 1);
        c->handshake_left++;
    }
    if (c->url.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        conn_queue(c, handshake_reply, "SELECT", 2, argv, lens, 1);
        c->handshake_left++;
    }
    if (c->load_functions) {
        const char *argv[3] = {"FUNCTION", "LOAD", "REPLACE"};
        size_t srclen;
        const char *src = functions_source(c->load_functions == REDIS_CONN_FUNCTIONS_SHARDED, &srclen);
        const char *a4[4] = {argv[0], argv[1], argv[2], src};
        size_t lens[4] = {8, 4, 7, srclen};
        conn_queue(c, handshake_reply, "FUNCTION LOAD", 4, a4, lens, 1);
        c->handshake_left++;
    }
    /* A PING closes the handshake so READY never depends on an empty list. */
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    conn_queue(c, handshake_reply, "PING", 1, ping, plen, 1);
    c->handshake_left++;
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    redis_conn_t *c = sock->data;
    if (err != NULL) {
        conn_fail(c, err);
        return;
    }
    int fd = h2o_socket_get_fd(sock), one = 1, idle = 10, intvl = 5, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    h2o_socket_read_start(sock, on_read);
    conn_handshake(c);
}

/* Resolves the host and starts a non-blocking connect. */
static void conn_connect(redis_conn_t *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", c->url.port);
    c->state = CONN_CONNECTING;
    conn_arm(c, h2o_now(c->loop) + CONNECT_TIMEOUT_MS);
    if (getaddrinfo(c->url.host, port, &hints, &res) != 0 || res == NULL) {
        conn_fail(c, "cannot resolve host");
        return;
    }
    c->sock = h2o_socket_connect(c->loop, res->ai_addr, res->ai_addrlen, on_connect);
    freeaddrinfo(res);
    if (c->sock == NULL) {
        conn_fail(c, "connect");
        return;
    }
    c->sock->data = c;
}

/* Tears the link down, fails every waiting callback and schedules a retry. */
static void conn_fail(redis_conn_t *c, const char *why)
{
    int was_ready = c->state == CONN_READY;
    if (c->state == CONN_DOWN)
        return;
    c->generation++;
    c->state = CONN_DOWN;
    if (c->sock != NULL) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    c->writing = 0;
    buf_clear(&c->out);
    buf_clear(&c->inflight);
    redisReaderFree(c->reader);
    c->reader = redisReaderCreate();
    unsigned jitter = (unsigned)(rand() % (c->backoff_ms / 2 + 1));
    conn_arm(c, h2o_now(c->loop) + c->backoff_ms / 2 + jitter);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    int closing = strcmp(why, "closing") == 0;
    log_write(was_ready && !closing ? LOG_WARN : LOG_INFO, "redis", was_ready ? "disconnected" : "connect failed",
              json_pack("{s:s,s:s,s:s,s:i}", "conn", c->name, "reason", why, "host", c->url.host, "port",
                        c->url.port));
    c->in_dispatch++;
    while (c->fifo_len > 0) {
        pending_reply_t p = fifo_pop(c);
        if (p.cb != NULL && p.cb != handshake_reply)
            p.cb(c, NULL, p.data);
    }
    if (c->cbs.on_down != NULL)
        c->cbs.on_down(c, c->data);
    if (--c->in_dispatch == 0 && c->free_requested)
        redis_conn_free(c);
}

/* ---- public ------------------------------------------------------------------ */

redis_conn_t *redis_conn_new(h2o_evloop_t *loop, const redis_url_t *url, const char *name,
                             int load_functions, const redis_conn_callbacks_t *cbs, void *data)
{
    redis_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->url = *url;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->load_functions = load_functions;
    c->cbs = *cbs;
    c->data = data;
    c->reader = redisReaderCreate();
    c->backoff_ms = BACKOFF_MIN_MS;
    c->state = CONN_DOWN;
    h2o_timeout_init(loop, &c->tick, TICK_MS);
    c->timer.cb = on_tick;
    conn_connect(c);
    return c;
}

void redis_conn_free(redis_conn_t *c)
{
    if (c == NULL)
        return;
    if (c->in_dispatch) {
        c->free_requested = 1;
        return;
    }
    c->cbs = (redis_conn_callbacks_t){0};
    if (c->state != CONN_DOWN)
        conn_fail(c, "closing");
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    h2o_timeout_dispose(c->loop, &c->tick);
    redisReaderFree(c->reader);
    buf_free(&c->out);
    buf_free(&c->inflight);
    free(c->fifo);
    free(c);
}

int redis_conn_is_ready(const redis_conn_t *c)
{
    return c->state == CONN_READY;
}

void redis_conn_reset(redis_conn_t *c)
{
    conn_fail(c, "reset");
}

int redis_conn_command(redis_conn_t *c, redis_reply_cb cb, void *data, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (c->state != CONN_READY)
        return -1;
    int expect = !(cb == NULL && c->cbs.on_push != NULL);
    return conn_queue(c, cb, data, argc, argv, argvlen, expect) == 0 ? 0 : -1;
}
