/* The broker's ingest (DESIGN §2): a subscriber connection PSUBSCRIBEd to
 * <ingest_prefix>* and <ingest_json_prefix>*, and a command connection that
 * turns every valid message into one pipelined FCALL ssehub_publish. Both
 * connections are hiredis async contexts on the libev loop and reconnect
 * with capped, jittered back-off; messages wait in one bounded queue,
 * ordered by arrival, while the command connection is down or the Function
 * library is being reloaded, so per-topic order survives both. */
#include "broker/ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>
#include <jansson.h>

#include "broker/envelope.h"
#include "broker/functions.h"
#include "broker/stream_keys.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/redis_url.h"

#define COMPONENT "broker"
#define QUEUE_MAX 100000    /* messages waiting to be sent */
#define INFLIGHT_MAX 10000  /* FCALLs sent and not yet answered */
#define MAX_ATTEMPTS 3      /* "function not found" answers before giving up */
#define DRAIN_SECONDS 5.0   /* shutdown waits this long for replies */
#define CONNECT_TIMEOUT 5.0 /* connect + handshake deadline */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STATS_SECONDS 60.0
#define LOG_LIMIT_SLOTS 16 /* distinct rate-limited log reasons tracked */
#define LOG_TEXT_MAX 256   /* bytes of a channel or error kept in a log line */
#define MSG_MAX_ARGS 15

/* ---- types --------------------------------------------------------------- */

/* One publish call: the FCALL arguments, owned in one allocation. */
typedef struct msg {
    struct msg *next;
    struct ingest *in;
    uint64_t seq; /* arrival order; the queue is sorted by it */
    int attempts; /* "function not found" answers so far */
    int argc;
    const char *argv[MSG_MAX_ARGS];
    size_t argvlen[MSG_MAX_ARGS];
    char bytes[]; /* key, data, type, retry, id copied here */
} msg_t;

/* Messages not sent yet, oldest first. */
typedef struct msg_queue {
    msg_t *head, *tail;
    size_t len;
    msg_t *hint; /* the last re-queued message still queued: where the next one goes */
} msg_queue_t;

/* Rate limit state of one log reason. */
typedef struct log_limit {
    char reason[96];
    ev_tstamp last;
    unsigned long long suppressed;
} log_limit_t;

/* One Redis connection with its reconnect state. */
typedef struct redis_link {
    struct ingest *in;
    const char *name;      /* "subscriber" or "command", for logs */
    redisAsyncContext *ac; /* NULL while down */
    int ready;             /* handshake complete */
    int was_ready;         /* has been ready before: a reconnect */
    int pending;           /* subscribe confirmations still due */
    unsigned attempts;     /* failed tries since the last ready, for back-off */
    ev_timer backoff;      /* next connect attempt */
    ev_timer deadline;     /* connect + handshake timeout */
    void (*handshake)(struct redis_link *link);
} redis_link_t;

struct ingest {
    struct ev_loop *loop;
    const ssehub_config_t *cfg;
    redis_url_t url;
    redis_link_t sub, cmd;
    buf_t pattern_plain, pattern_json;
    char maxlen_text[24], maxage_text[24];
    msg_queue_t queue;
    size_t inflight;
    uint64_t next_seq;
    int reloading; /* FUNCTION LOAD after "not found" in flight */
    int ready_logged;
    ingest_counters_t counters, logged;
    log_limit_t limits[LOG_LIMIT_SLOTS];
    ev_timer stats_timer, drain_timer;
    int stopping, finished, aborting;
    void (*done)(void *arg);
    void *done_arg;
    buf_t scratch; /* key building */
    uint32_t rng;  /* back-off jitter */
};

static void pump(struct ingest *in);
static void ingest_maybe_finish(struct ingest *in);
static void link_drop(redis_link_t *link);

/* ---- logging helpers ----------------------------------------------------- */

/* Returns a JSON string for arbitrary bytes (cut to LOG_TEXT_MAX): as is
 * when valid UTF-8, else with every non-ASCII byte written as \xHH, so a
 * log line never fails on what a publisher sent. */
static json_t *json_bytes(const char *s, size_t n)
{
    if (n > LOG_TEXT_MAX)
        n = LOG_TEXT_MAX;
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            buf_printf(&b, "\\x%02X", c);
        else
            buf_append_char(&b, (char)c);
    }
    j = json_stringn(b.base ? b.base : "", b.len);
    buf_free(&b);
    return j;
}

/* Returns nonzero when a line for reason may be written now (one a second
 * per reason), with the number held back since the last one in *held. */
static int log_allowed(struct ingest *in, const char *reason, unsigned long long *held)
{
    ev_tstamp now = ev_now(in->loop);
    log_limit_t *slot = NULL, *oldest = &in->limits[0];
    for (int i = 0; i < LOG_LIMIT_SLOTS && slot == NULL; i++) {
        if (strcmp(in->limits[i].reason, reason) == 0)
            slot = &in->limits[i];
        else if (in->limits[i].last < oldest->last)
            oldest = &in->limits[i];
    }
    if (slot == NULL) {
        slot = oldest;
        snprintf(slot->reason, sizeof slot->reason, "%s", reason);
        slot->last = 0;
        slot->suppressed = 0;
    }
    if (now - slot->last < 1.0) {
        slot->suppressed++;
        return 0;
    }
    *held = slot->suppressed;
    slot->suppressed = 0;
    slot->last = now;
    return 1;
}

/* Logs a refused message (rate-limited per msg and reason); returns nothing
 * because refusals are counted by the caller. */
static void log_refused(struct ingest *in, const char *msg, const char *reason, const char *channel,
                        size_t len)
{
    char key[128];
    unsigned long long held;
    snprintf(key, sizeof key, "%s/%s", msg, reason);
    if (!log_allowed(in, key, &held))
        return;
    log_warn(COMPONENT, msg,
             json_pack("{s:s, s:o, s:I}", "reason", reason, "channel", json_bytes(channel, len), "suppressed",
                       (json_int_t)held));
}

/* Returns the counters as a JSON object for the stats and stopped lines. */
static json_t *counters_json(const ingest_counters_t *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "ingested", (json_int_t)c->ingested, "refused_topic",
                     (json_int_t)c->refused_topic, "malformed_json", (json_int_t)c->malformed_json,
                     "publish_errors", (json_int_t)c->publish_errors, "dropped", (json_int_t)c->dropped);
}

/* Logs the counters every STATS_SECONDS when they changed. */
static void on_stats_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct ingest *in = w->data;
    if (memcmp(&in->counters, &in->logged, sizeof in->counters) == 0)
        return;
    in->logged = in->counters;
    log_info(COMPONENT, "stats", counters_json(&in->counters));
}

/* ---- the queue ----------------------------------------------------------- */

/* Appends a new message at the tail. */
static void queue_push(msg_queue_t *q, msg_t *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->len++;
}

/* Removes and returns the oldest message, or NULL. */
static msg_t *queue_pop(msg_queue_t *q)
{
    msg_t *m = q->head;
    if (m == NULL)
        return NULL;
    q->head = m->next;
    if (q->head == NULL)
        q->tail = NULL;
    if (q->hint == m)
        q->hint = NULL;
    q->len--;
    m->next = NULL;
    return m;
}

/* Puts a sent message back in arrival order, so a resend after a reconnect
 * or a library reload keeps per-topic order. Failures come in send order,
 * so starting at the last re-queued one makes this O(1) in practice. */
static void queue_requeue(msg_queue_t *q, msg_t *m)
{
    msg_t *prev = (q->hint && q->hint->seq < m->seq) ? q->hint : NULL;
    msg_t *next = prev ? prev->next : q->head;
    while (next && next->seq < m->seq) {
        prev = next;
        next = next->next;
    }
    m->next = next;
    if (prev)
        prev->next = m;
    else
        q->head = m;
    if (next == NULL)
        q->tail = m;
    q->hint = m;
    q->len++;
}

/* Frees every queued message; returns how many there were. */
static size_t queue_clear(msg_queue_t *q)
{
    size_t n = 0;
    msg_t *m;
    while ((m = queue_pop(q)) != NULL) {
        free(m);
        n++;
    }
    return n;
}

/* ---- building publish calls ---------------------------------------------- */

/* Adds an argument that lives elsewhere (literals, the ingest's numbers). */
static void msg_arg(msg_t *m, const char *s, size_t n)
{
    m->argv[m->argc] = s;
    m->argvlen[m->argc] = n;
    m->argc++;
}

/* Copies an argument into the message's own bytes at *p. */
static void msg_copy(msg_t *m, char **p, const char *s, size_t n)
{
    if (n)
        memcpy(*p, s, n);
    msg_arg(m, *p, n);
    *p += n;
}

/* Returns the FCALL ssehub_publish call for one event on a topic, or NULL
 * when memory ran out. */
static msg_t *msg_new(struct ingest *in, const char *topic, size_t tlen, const envelope_t *ev)
{
    buf_clear(&in->scratch);
    if (topic_key(&in->scratch, in->cfg->prefix, topic, tlen, TOPIC_KEY_STREAM) != 0)
        return NULL;
    char retry[24];
    size_t rlen = ev->retry >= 0 ? (size_t)snprintf(retry, sizeof retry, "%ld", ev->retry) : 0;
    size_t total = in->scratch.len + ev->data_len + ev->type_len + ev->mid_len + rlen;
    msg_t *m = malloc(sizeof *m + total);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->in = in;
    char *p = m->bytes;
    msg_arg(m, "FCALL", 5);
    msg_arg(m, SSEHUB_FN_PUBLISH, strlen(SSEHUB_FN_PUBLISH));
    msg_arg(m, "1", 1);
    msg_copy(m, &p, in->scratch.base, in->scratch.len);
    msg_copy(m, &p, ev->data, ev->data_len);
    if (ev->type) {
        msg_arg(m, "type", 4);
        msg_copy(m, &p, ev->type, ev->type_len);
    }
    if (ev->retry >= 0) {
        msg_arg(m, "retry", 5);
        msg_copy(m, &p, retry, rlen);
    }
    if (ev->mid) {
        msg_arg(m, "id", 2);
        msg_copy(m, &p, ev->mid, ev->mid_len);
    }
    msg_arg(m, "maxlen", 6);
    msg_arg(m, in->maxlen_text, strlen(in->maxlen_text));
    msg_arg(m, "maxage", 6);
    msg_arg(m, in->maxage_text, strlen(in->maxage_text));
    return m;
}

/* ---- sending ------------------------------------------------------------- */

/* Returns nonzero when publish calls may go out now. */
static int can_send(const struct ingest *in)
{
    return in->cmd.ac != NULL && in->cmd.ready && !in->reloading && !in->finished;
}

/* Starts FUNCTION LOAD REPLACE after a "function not found" answer; later
 * messages wait in the queue until it is answered. */
static void start_reload(struct ingest *in, redisAsyncContext *ac);

/* Handles the answer to one publish call: counts it, or puts the message
 * back for a resend (connection lost, library missing). */
static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    msg_t *m = privdata;
    struct ingest *in = m->in;
    redisReply *reply = r;
    in->inflight--;
    if (in->aborting) {
        in->counters.dropped++;
        free(m);
        return;
    }
    if (reply == NULL) { /* connection gone: resend after reconnecting */
        queue_requeue(&in->queue, m);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && functions_missing_error(reply->str, reply->len) &&
        ++m->attempts < MAX_ATTEMPTS) {
        queue_requeue(&in->queue, m);
        start_reload(in, ac);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        unsigned long long held;
        in->counters.publish_errors++;
        if (log_allowed(in, "publish error", &held))
            log_warn(COMPONENT, "publish error",
                     json_pack("{s:o, s:o, s:I}", "error", json_bytes(reply->str, reply->len), "key",
                               json_bytes(m->argv[3], m->argvlen[3]), "suppressed", (json_int_t)held));
    } else {
        in->counters.ingested++;
    }
    free(m);
    pump(in);
    ingest_maybe_finish(in);
}

/* Sends queued messages, oldest first, while the command connection can
 * take them and fewer than INFLIGHT_MAX are unanswered. */
static void pump(struct ingest *in)
{
    while (can_send(in) && in->inflight < INFLIGHT_MAX && in->queue.head != NULL) {
        msg_t *m = queue_pop(&in->queue);
        if (redisAsyncCommandArgv(in->cmd.ac, on_publish_reply, m, m->argc, m->argv, m->argvlen) !=
            REDIS_OK) {
            queue_requeue(&in->queue, m);
            return;
        }
        in->inflight++;
    }
}

/* Queues one message for sending (or drops it when the queue is full) and
 * sends what can go. */
static void ingest_enqueue(struct ingest *in, msg_t *m)
{
    unsigned long long held;
    if (in->queue.len >= QUEUE_MAX) {
        in->counters.dropped++;
        free(m);
        if (log_allowed(in, "queue full", &held))
            log_warn(
                COMPONENT, "queue full, message dropped",
                json_pack("{s:I, s:I}", "queued", (json_int_t)in->queue.len, "suppressed", (json_int_t)held));
        return;
    }
    m->seq = in->next_seq++;
    queue_push(&in->queue, m);
    pump(in);
}

/* ---- incoming messages --------------------------------------------------- */

/* Returns nonzero when the reply element is a string equal to b. */
static int reply_is(const redisReply *r, const buf_t *b)
{
    return r->type == REDIS_REPLY_STRING && r->len == b->len && memcmp(r->str, b->base, b->len) == 0;
}

/* Returns nonzero when s (n bytes) starts with prefix. */
static int has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    return n >= p && memcmp(s, prefix, p) == 0;
}

/* Decides whether a channel is JSON ingest (*json) by its longest matching
 * prefix; returns nonzero only for the copy that arrived through that
 * prefix's pattern (a channel matching both patterns arrives twice). */
static int message_kind(const struct ingest *in, const redisReply *pattern, const redisReply *channel,
                        int *json)
{
    const char *pj = in->cfg->ingest_json_prefix, *pp = in->cfg->ingest_prefix;
    int j = has_prefix(channel->str, channel->len, pj);
    int p = has_prefix(channel->str, channel->len, pp);
    if (!j && !p)
        return 0;
    *json = j && (!p || strlen(pj) > strlen(pp));
    return reply_is(pattern, *json ? &in->pattern_json : &in->pattern_plain);
}

/* Validates one ingest message and queues its publish call; refusals are
 * counted and logged, never stored. */
static void ingest_message(struct ingest *in, const redisReply *pattern, const redisReply *channel,
                           const redisReply *payload)
{
    int json;
    if (!message_kind(in, pattern, channel, &json))
        return;
    size_t plen = strlen(json ? in->cfg->ingest_json_prefix : in->cfg->ingest_prefix);
    const char *topic = channel->str + plen;
    size_t tlen = channel->len - plen;
    int terr = topic_validate(topic, tlen, (size_t)in->cfg->max_topic_length);
    if (terr != TOPIC_OK) {
        in->counters.refused_topic++;
        log_refused(in, "refused topic", topic_error_name(terr), channel->str, channel->len);
        return;
    }
    envelope_t ev = {.data = payload->str, .data_len = payload->len, .retry = -1};
    json_t *owner = NULL;
    char why[128];
    if (json && envelope_parse_json(payload->str, payload->len, &ev, &owner, why, sizeof why) != 0) {
        in->counters.malformed_json++;
        log_refused(in, "malformed json", why, channel->str, channel->len);
        return;
    }
    msg_t *m = msg_new(in, topic, tlen, &ev);
    json_decref(owner);
    if (m == NULL) {
        in->counters.dropped++;
        return;
    }
    ingest_enqueue(in, m);
}

/* ---- connections --------------------------------------------------------- */

/* Returns the next back-off delay in seconds: 100 ms doubling to 5 s, with
 * the top quarter jittered so restarted brokers do not reconnect in step. */
static double backoff_seconds(redis_link_t *link)
{
    struct ingest *in = link->in;
    unsigned shift = link->attempts < 6 ? link->attempts : 6;
    unsigned base = BACKOFF_MIN_MS << shift;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    in->rng ^= in->rng << 13, in->rng ^= in->rng >> 17, in->rng ^= in->rng << 5;
    unsigned ms = base - base / 4 + in->rng % (base / 4 + 1);
    return (ms < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : ms) / 1000.0;
}

/* Forgets the link's connection state (the context is gone or going). */
static void link_lost(redis_link_t *link)
{
    link->ac = NULL;
    link->ready = 0;
    link->pending = 0;
    ev_timer_stop(link->in->loop, &link->deadline);
    if (link == &link->in->cmd)
        link->in->reloading = 0;
}

/* Schedules the next connect attempt, unless the link is no longer wanted. */
static void link_retry(redis_link_t *link)
{
    struct ingest *in = link->in;
    if (in->finished || (in->stopping && link == &in->sub))
        return;
    double delay = backoff_seconds(link);
    link->attempts++;
    ev_timer_stop(in->loop, &link->backoff);
    ev_timer_set(&link->backoff, delay, 0.);
    ev_timer_start(in->loop, &link->backoff);
}

/* Closes the link's connection now (deferred by hiredis when inside one of
 * its callbacks); pending replies come back NULL and are re-queued. */
static void link_close(redis_link_t *link)
{
    redisAsyncContext *ac = link->ac;
    ev_timer_stop(link->in->loop, &link->backoff);
    link_lost(link);
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* Closes the connection and tries again after the back-off delay. */
static void link_drop(redis_link_t *link)
{
    link_close(link);
    link_retry(link);
}

/* Logs a connection problem of a link with Redis' or hiredis' text (never
 * the URL: it may hold the password). */
static void link_log(redis_link_t *link, enum log_level level, const char *msg, const char *error)
{
    const redis_url_t *u = &link->in->url;
    log_write(level, COMPONENT, msg,
              json_pack("{s:s, s:s, s:i, s:o}", "link", link->name, "host", u->host, "port", u->port, "error",
                        json_bytes(error, strlen(error))));
}

/* Marks the link ready after its handshake, logs it, and logs "ready" the
 * first time both links are. */
static void link_ready(redis_link_t *link)
{
    struct ingest *in = link->in;
    link->ready = 1;
    link->attempts = 0;
    ev_timer_stop(in->loop, &link->deadline);
    if (link == &in->cmd)
        log_info(COMPONENT, "function library loaded",
                 json_pack("{s:s}", "library", SSEHUB_FUNCTION_LIBRARY));
    else
        log_info(COMPONENT, link->was_ready ? "resubscribed" : "subscribed",
                 json_pack("{s:[s,s]}", "patterns", in->pattern_plain.base, in->pattern_json.base));
    link->was_ready = 1;
    if (!in->ready_logged && in->sub.ready && in->cmd.ready) {
        in->ready_logged = 1;
        log_info(COMPONENT, "ready",
                 json_pack("{s:s, s:i, s:i, s:s}", "host", in->url.host, "port", in->url.port, "db",
                           in->url.db, "prefix", in->cfg->prefix));
    }
    pump(in);
    ingest_maybe_finish(in);
}

/* Drops the link when a handshake command (AUTH, SELECT) was refused. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_link_t *link = privdata;
    redisReply *reply = r;
    if (reply == NULL || ac != link->ac || reply->type != REDIS_REPLY_ERROR)
        return;
    link_log(link, LOG_ERROR, "redis refused the connection setup", reply->str);
    link_drop(link);
}

/* Sends AUTH when the URL has a password: AUTH user password for an ACL
 * user, AUTH password otherwise. */
static void link_auth(redis_link_t *link)
{
    const redis_url_t *u = &link->in->url;
    const char *argv[3] = {"AUTH", u->user, u->password};
    size_t lens[3] = {4, strlen(u->user), strlen(u->password)};
    if (u->password[0] == '\0')
        return;
    if (u->user[0] == '\0') {
        argv[1] = argv[2], lens[1] = lens[2];
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 2, argv, lens);
    } else {
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 3, argv, lens);
    }
}

/* Handles the FUNCTION LOAD answer: the command link becomes ready (or
 * resumes sending after a reload); an error drops the connection. */
static void on_library_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_link_t *link = privdata;
    struct ingest *in = link->in;
    redisReply *reply = r;
    if (reply == NULL || ac != link->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        link_log(link, LOG_ERROR, "function library load failed", reply->str);
        link_drop(link);
        return;
    }
    if (!in->reloading) {
        link_ready(link);
        return;
    }
    in->reloading = 0;
    log_info(COMPONENT, "function library reloaded", json_pack("{s:s}", "library", SSEHUB_FUNCTION_LIBRARY));
    pump(in);
    ingest_maybe_finish(in);
}

/* Sends FUNCTION LOAD REPLACE with the compiled-in library. */
static void send_library(redis_link_t *link)
{
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", ssehub_functions_lua};
    size_t lens[4] = {8, 4, 7, ssehub_functions_lua_len};
    redisAsyncCommandArgv(link->ac, on_library_loaded, link, 4, argv, lens);
}

/* Reloads the library once per "not found" episode on the live context
 * (answers from an older context are ignored). */
static void start_reload(struct ingest *in, redisAsyncContext *ac)
{
    if (in->reloading || ac != in->cmd.ac)
        return;
    in->reloading = 1;
    log_warn(COMPONENT, "function library missing, reloading",
             json_pack("{s:s}", "library", SSEHUB_FUNCTION_LIBRARY));
    send_library(&in->cmd);
}

/* Command link handshake: AUTH, SELECT, FUNCTION LOAD, pipelined. */
static void cmd_handshake(redis_link_t *link)
{
    link_auth(link);
    if (link->in->url.db != 0) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, (size_t)snprintf(db, sizeof db, "%d", link->in->url.db)};
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 2, argv, lens);
    }
    send_library(link);
}

/* Returns nonzero when elements first..last of an array reply are strings. */
static int reply_strings(const redisReply *r, size_t first, size_t last)
{
    for (size_t i = first; i <= last; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

/* Handles everything on the subscriber connection: pattern subscription
 * confirmations and pmessages. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_link_t *link = privdata;
    redisReply *reply = r;
    if (reply == NULL || ac != link->ac || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        !reply_strings(reply, 0, 1))
        return;
    const char *kind = reply->element[0]->str;
    if (strcasecmp(kind, "pmessage") == 0 && reply->elements == 4 && reply_strings(reply, 2, 3))
        ingest_message(link->in, reply->element[1], reply->element[2], reply->element[3]);
    else if (strcasecmp(kind, "psubscribe") == 0 && link->pending > 0 && --link->pending == 0)
        link_ready(link);
}

/* Subscriber handshake: AUTH, then both ingest patterns in one PSUBSCRIBE. */
static void sub_handshake(redis_link_t *link)
{
    struct ingest *in = link->in;
    const char *argv[3] = {"PSUBSCRIBE", in->pattern_plain.base, in->pattern_json.base};
    size_t lens[3] = {10, in->pattern_plain.len, in->pattern_json.len};
    link_auth(link);
    link->pending = 2;
    redisAsyncCommandArgv(link->ac, on_sub_reply, link, 3, argv, lens);
}

/* hiredis connect callback: start the handshake, or retry later. */
static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_link_t *link = ac->data;
    if (link == NULL || link->ac != ac)
        return;
    if (status != REDIS_OK) { /* hiredis frees the context after this */
        link_log(link, LOG_WARN, "connect failed", ac->c.errstr);
        link_lost(link);
        link_retry(link);
        return;
    }
    log_info(COMPONENT, "connected",
             json_pack("{s:s, s:s, s:i}", "link", link->name, "host", link->in->url.host, "port",
                       link->in->url.port));
    link->handshake(link);
}

/* hiredis disconnect callback for connections lost under us; our own
 * closes are ignored (link->ac no longer points at them). */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_link_t *link = ac->data;
    (void)status;
    if (link == NULL || link->ac != ac)
        return;
    link_log(link, LOG_WARN, "disconnected", ac->c.errstr[0] ? ac->c.errstr : "closed");
    link_lost(link);
    link_retry(link);
}

/* Opens a new connection for the link (the handshake follows on connect). */
static void link_connect(redis_link_t *link)
{
    struct ingest *in = link->in;
    redisAsyncContext *ac = redisAsyncConnect(in->url.host, in->url.port);
    if (ac == NULL || ac->err) {
        link_log(link, LOG_WARN, "connect failed", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        link_retry(link);
        return;
    }
    ac->data = link;
    redisLibevAttach(in->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    link->ac = ac;
    ev_timer_set(&link->deadline, CONNECT_TIMEOUT, 0.);
    ev_timer_start(in->loop, &link->deadline);
}

/* Back-off over: try connecting again. */
static void on_backoff_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    link_connect(w->data);
}

/* Gives up on a connection whose connect or handshake took too long. */
static void on_deadline_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    redis_link_t *link = w->data;
    if (link->ready)
        return;
    link_log(link, LOG_WARN, "connect timeout", "no answer in time");
    link_drop(link);
}

/* Sets up a link's state and timers (not connected yet). */
static void link_init(redis_link_t *link, struct ingest *in, const char *name,
                      void (*handshake)(redis_link_t *))
{
    memset(link, 0, sizeof *link);
    link->in = in;
    link->name = name;
    link->handshake = handshake;
    ev_timer_init(&link->backoff, on_backoff_timer, 0., 0.);
    ev_timer_init(&link->deadline, on_deadline_timer, 0., 0.);
    link->backoff.data = link;
    link->deadline.data = link;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Ends the ingest: closes both links (in-flight and queued messages count
 * as dropped), logs the counters and calls the done callback. */
static void ingest_finish(struct ingest *in)
{
    in->finished = 1;
    in->aborting = 1;
    ev_timer_stop(in->loop, &in->drain_timer);
    ev_timer_stop(in->loop, &in->stats_timer);
    link_close(&in->sub);
    link_close(&in->cmd);
    in->counters.dropped += queue_clear(&in->queue);
    log_info(COMPONENT, "stopped", counters_json(&in->counters));
    if (in->done)
        in->done(in->done_arg);
}

/* Finishes a stop once nothing is queued or in flight. */
static void ingest_maybe_finish(struct ingest *in)
{
    if (in->stopping && !in->finished && in->inflight == 0 && in->queue.len == 0)
        ingest_finish(in);
}

/* The drain took DRAIN_SECONDS: stop waiting for Redis and finish. */
static void on_drain_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct ingest *in = w->data;
    log_warn(
        COMPONENT, "drain timeout, giving up on unanswered messages",
        json_pack("{s:I, s:I}", "in_flight", (json_int_t)in->inflight, "queued", (json_int_t)in->queue.len));
    ingest_finish(in);
}

/* Fills the patterns and number texts derived from the settings; returns 0
 * or -1 with a reason. */
static int ingest_derive(struct ingest *in, char *err, size_t errlen)
{
    const ssehub_config_t *cfg = in->cfg;
    if (redis_url_parse(cfg->redis_url, &in->url, err, errlen) != 0)
        return -1;
    if (strcmp(cfg->ingest_prefix, cfg->ingest_json_prefix) == 0) {
        snprintf(err, errlen, "ingest_prefix and ingest_json_prefix must differ");
        return -1;
    }
    /* config_load refuses glob characters in prefixes, so prefix + "*" is exact. */
    if (buf_printf(&in->pattern_plain, "%s*", cfg->ingest_prefix) != 0 ||
        buf_printf(&in->pattern_json, "%s*", cfg->ingest_json_prefix) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(in->maxlen_text, sizeof in->maxlen_text, "%ld", cfg->history_max_events);
    snprintf(in->maxage_text, sizeof in->maxage_text, "%ld", cfg->history_max_age);
    return 0;
}

ingest_t *ingest_create(struct ev_loop *loop, const ssehub_config_t *cfg, char *err, size_t errlen)
{
    struct ingest *in = calloc(1, sizeof *in);
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->loop = loop;
    in->cfg = cfg;
    if (ingest_derive(in, err, errlen) != 0) {
        ingest_free(in);
        return NULL;
    }
    link_init(&in->sub, in, "subscriber", sub_handshake);
    link_init(&in->cmd, in, "command", cmd_handshake);
    ev_timer_init(&in->stats_timer, on_stats_timer, STATS_SECONDS, STATS_SECONDS);
    ev_timer_init(&in->drain_timer, on_drain_timer, DRAIN_SECONDS, 0.);
    in->stats_timer.data = in;
    in->drain_timer.data = in;
    in->rng = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    return in;
}

void ingest_start(ingest_t *in)
{
    ev_timer_start(in->loop, &in->stats_timer);
    link_connect(&in->cmd);
    link_connect(&in->sub);
}

void ingest_stop(ingest_t *in, void (*done)(void *arg), void *arg)
{
    if (in->finished)
        return;
    in->done = done;
    in->done_arg = arg;
    if (in->stopping) {
        ingest_finish(in);
        return;
    }
    in->stopping = 1;
    link_close(&in->sub);
    log_info(
        COMPONENT, "stopping",
        json_pack("{s:I, s:I}", "in_flight", (json_int_t)in->inflight, "queued", (json_int_t)in->queue.len));
    ev_timer_start(in->loop, &in->drain_timer);
    ingest_maybe_finish(in);
}

ingest_counters_t ingest_counters(const ingest_t *in)
{
    return in->counters;
}

void ingest_free(ingest_t *in)
{
    if (in == NULL)
        return;
    in->finished = 1;
    in->aborting = 1;
    if (in->sub.in != NULL) { /* links were initialised */
        link_close(&in->sub);
        link_close(&in->cmd);
        ev_timer_stop(in->loop, &in->stats_timer);
        ev_timer_stop(in->loop, &in->drain_timer);
    }
    queue_clear(&in->queue);
    buf_free(&in->pattern_plain);
    buf_free(&in->pattern_json);
    buf_free(&in->scratch);
    free(in);
}
