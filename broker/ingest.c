/* The broker's ingest (DESIGN §2): a subscriber connection PSUBSCRIBEd to
 * <ingest_prefix>* and <ingest_json_prefix>* (and SUBSCRIBEd to the sync
 * channel P broker:sync), and a command connection that turns every valid
 * message into one pipelined FCALL ssehub_publish. Both connections are
 * hiredis async contexts on the libev loop and reconnect with capped,
 * jittered back-off; messages wait in one bounded queue, ordered by
 * arrival, while the command connection is down or the Function library is
 * being reloaded, so per-topic order survives both.
 *
 * Several brokers: only the holder of the leader lease (lease.c) sends.
 * Every broker gives each message its ingest position (ingest_pos.h); a
 * standby keeps the messages of the last 2 leases + 5 s in the same queue
 * and, when it takes over, sends them all: the publish function stores
 * those the old leader had not stored and answers DUPLICATE for the rest. */
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
#include "broker/ingest_pos.h"
#include "broker/lease.h"
#include "broker/stream_keys.h"
#include "common/buf.h"
#include "common/cluster_slots.h"
#include "common/log.h"
#include "common/redis_url.h"

#define COMPONENT "broker"
#define INFLIGHT_MAX 10000 /* FCALLs sent on one link and not yet answered */
#define MAX_ATTEMPTS 3      /* "function not found" answers before giving up */
#define DRAIN_SECONDS 5.0   /* shutdown waits this long for replies */
#define CONNECT_TIMEOUT 5.0 /* connect + handshake deadline */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STATS_SECONDS 60.0
#define LOG_LIMIT_SLOTS 16               /* distinct rate-limited log reasons tracked */
#define LOG_TEXT_MAX 256                 /* bytes of a channel or error kept in a log line */
#define MSG_MAX_ARGS 19                  /* FCALL, name, 2, keys, data, 6 options with values */
#define SEND_MAX_ARGS (MSG_MAX_ARGS + 4) /* + fence EPOCH in POSITION */
#define MARK_RETRY_SECONDS 1.0           /* ask for a sync mark again when none came */
#define TRIM_SECONDS 0.5                 /* standby: how often old messages are forgotten */
#define MAX_SHARDS 64                    /* Redis Cluster masters followed */
#define TOPOLOGY_SECONDS 1.0             /* re-read the slot map / ask Sentinel while something is off */
#define CLUSTER_PAUSE_SECONDS 0.1        /* after MOVED, ASK, TRYAGAIN, CLUSTERDOWN: send again after */

/* What redis_url turned out to name. */
enum redis_mode { MODE_UNKNOWN, MODE_SINGLE, MODE_CLUSTER };

/* ---- types --------------------------------------------------------------- */

/* Where a message's ingest position stands. */
enum msg_placed {
    MSG_UNPLACED = 0, /* arrived before the subscription's first sync mark */
    MSG_EXACT,        /* mark and delivery count known */
    MSG_FLOOR,        /* a leader's message from before its first mark: after every exact one of that mark */
};

/* One publish call: the FCALL arguments, owned in one allocation. */
typedef struct msg {
    struct msg *next;
    struct ingest *in;
    uint64_t seq;     /* arrival order; the queue is sorted by it */
    double arrived;   /* lease_now() at arrival: a standby forgets old ones */
    size_t size;      /* bytes it takes, counted against broker_queue_bytes */
    ingest_pos_t pos; /* its ingest position, once placed */
    enum msg_placed placed;
    int attempts; /* "function not found" answers so far */
    unsigned refused : 1;   /* re-queued after a cluster refusal (CLUSTERDOWN, MOVED, ...) */
    unsigned unordered : 1; /* a later message of its topic was stored meanwhile: sent without
                               its position, else the function would take it for a duplicate */
    int shard;              /* in flight: the index of the command link it went on */
    uint64_t conn;          /* ... and that link's connection number (redis_link.conn) */
    int argc;
    const char *argv[MSG_MAX_ARGS];
    size_t argvlen[MSG_MAX_ARGS];
    char bytes[]; /* key, data, type, retry, id copied here */
} msg_t;

/* Messages not sent yet, oldest first. */
typedef struct msg_queue {
    msg_t *head, *tail;
    size_t len;
    size_t bytes; /* sum of the queued messages' size */
    msg_t *hint; /* the last re-queued message still queued: where the next one goes */
    msg_t *skip; /* pump: the last message found waiting for a link that could not take
                    it; every one before it waits too. NULL: look from the head */
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
    const char *name;            /* "subscriber", "command", "lease", "discovery" or "sentinel", for logs */
    char host[CLUSTER_HOST_MAX]; /* where it connects */
    int port;
    int shard;             /* command links: index in ingest.shards; -1 for the others */
    int reloading;         /* command links: FUNCTION LOAD after "not found" in flight */
    size_t inflight;       /* command links: publish calls sent on this connection, unanswered */
    int full;              /* command links: reached INFLIGHT_MAX; takes more below half of it */
    uint64_t conn;         /* this connection's number (ingest.next_conn): late answers of a
                              closed one are not counted against the next */
    redisAsyncContext *ac; /* NULL while down */
    int ready;             /* handshake complete */
    int was_ready;         /* has been ready before: a reconnect */
    int pending;           /* subscribe confirmations still due */
    unsigned attempts;     /* failed tries since the last ready, for back-off */
    ev_timer backoff;      /* next connect attempt */
    ev_timer deadline;     /* connect + handshake timeout */
    void (*handshake)(struct redis_link *link);
} redis_link_t;

/* What the messages buffered before a takeover came to. */
typedef struct handover {
    int active;      /* counting since the last acquisition */
    uint64_t upto;   /* messages with seq <= upto were buffered as standby */
    size_t left;     /* of those, not answered for good yet */
    size_t buffered; /* how many there were */
    unsigned long long stored, duplicates, other;
} handover_t;

struct ingest {
    struct ev_loop *loop;
    const ssehub_config_t *cfg;
    redis_url_t url;
    /* sub: pattern subscription and sync marks; shards: one command link
     * per master (one for a single Redis) for the pipelined publish calls;
     * lease_link: the lease alone, so a renewal never waits behind
     * thousands of publish calls in flight; boot: finds out what redis_url
     * names (CLUSTER SLOTS, or Sentinel) and re-reads it */
    redis_link_t sub, lease_link, boot;
    redis_link_t *shards[MAX_SHARDS];
    int8_t slot_shard[CLUSTER_SLOTS]; /* slot -> shards index, -1: not served */
    enum redis_mode mode;
    unsigned boot_next;  /* the address the next discovery tries */
    int topology_wanted; /* read the map (or ask Sentinel) again */
    int topology_inflight;
    int paused; /* after a cluster error: pump resumes on the pause timer */
    size_t refused_queued; /* queued messages with `refused` set (a hint: may run high) */
    ev_timer topology_timer, pause_timer;
    buf_t leader_key, epoch_key; /* the lease's keys, for routing */
    buf_t pattern_plain, pattern_json;
    char maxlen_text[24], maxage_text[24], maxbytes_text[24];
    msg_queue_t queue;
    size_t inflight;    /* publish calls unanswered, over every link */
    uint64_t next_conn; /* redis_link.conn numbers */
    uint64_t next_seq;
    int ready_logged;
    ingest_counters_t counters, logged;
    log_limit_t limits[LOG_LIMIT_SLOTS];
    ev_timer stats_timer, drain_timer;
    int stopping, finished, aborting;
    /* several brokers */
    lease_t *lease;
    char epoch_text[24];  /* the lease epoch sent as "fence" */
    buf_t sync_channel;   /* P broker:sync: sync marks and release notices (also the counter key) */
    buf_t sync_tag;       /* "<plain pattern> <json pattern>": brokers must agree on them */
    int placed;           /* this subscription has seen a sync mark: positions are known */
    uint64_t mark, count; /* position of the last ingest delivery */
    uint64_t last_mark;   /* highest mark seen */
    uint64_t floor_next;  /* next floor count */
    int leader_since_sub; /* leader without a break since this subscription started */
    int mark_inflight;    /* ssehub_next for a mark sent, not answered */
    double window;        /* seconds a standby keeps messages */
    int releasing;        /* shutdown: the lease release is in flight */
    handover_t handover;
    ev_timer mark_timer, trim_timer;
    void (*done)(void *arg);
    void *done_arg;
    buf_t scratch; /* key building */
    uint32_t rng;  /* back-off jitter */
};

static void pump(struct ingest *in);
static void ingest_maybe_finish(struct ingest *in);
static void link_drop(redis_link_t *link);
static void maybe_log_ready(struct ingest *in);
static void request_mark(struct ingest *in);

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
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ingested", (json_int_t)c->ingested,
                     "refused_topic", (json_int_t)c->refused_topic, "malformed_json",
                     (json_int_t)c->malformed_json, "oversized", (json_int_t)c->oversized, "publish_errors",
                     (json_int_t)c->publish_errors,
                     "dropped", (json_int_t)c->dropped, "sent", (json_int_t)c->sent, "duplicates",
                     (json_int_t)c->duplicates, "fenced", (json_int_t)c->fenced);
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
    q->bytes += m->size;
}

/* Removes m, which follows prev (NULL: m is the head). */
static void queue_unlink(msg_queue_t *q, msg_t *prev, msg_t *m)
{
    if (prev == NULL)
        q->head = m->next;
    else
        prev->next = m->next;
    if (q->tail == m)
        q->tail = prev;
    if (q->hint == m)
        q->hint = NULL;
    if (q->skip == m)
        q->skip = prev;
    q->len--;
    q->bytes -= m->size;
    m->next = NULL;
}

/* Removes and returns the oldest message, or NULL. */
static msg_t *queue_pop(msg_queue_t *q)
{
    msg_t *m = q->head;
    if (m != NULL)
        queue_unlink(q, NULL, m);
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
    if (q->skip != NULL && m->seq < q->skip->seq)
        q->skip = NULL; /* its link may take it: look from the head again */
    m->next = next;
    if (prev)
        prev->next = m;
    else
        q->head = m;
    if (next == NULL)
        q->tail = m;
    q->hint = m;
    q->len++;
    q->bytes += m->size;
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

/* Keeps the queued messages for which keep(m, arg) is nonzero, in order,
 * and frees the others; returns how many were freed. O(n): for the rare
 * moments positions are settled. */
static size_t queue_filter(msg_queue_t *q, int (*keep)(msg_t *m, void *arg), void *arg)
{
    msg_t *m = q->head, *next;
    size_t freed = 0;
    q->head = q->tail = q->hint = q->skip = NULL;
    q->len = 0;
    q->bytes = 0;
    for (; m != NULL; m = next) {
        next = m->next;
        if (keep(m, arg)) {
            queue_push(q, m);
        } else {
            free(m);
            freed++;
        }
    }
    return freed;
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

/* Returns the FCALL ssehub_publish 2 <stream> <meta> call for one event on
 * a topic (fence and in are added when it is sent), or NULL when memory
 * ran out. */
static msg_t *msg_new(struct ingest *in, const char *topic, size_t tlen, const envelope_t *ev)
{
    buf_clear(&in->scratch);
    if (topic_key(&in->scratch, in->cfg->prefix, topic, tlen, TOPIC_KEY_STREAM) != 0)
        return NULL;
    size_t klen = in->scratch.len; /* the metadata key has the same length: ...:m */
    char retry[24];
    size_t rlen = ev->retry >= 0 ? (size_t)snprintf(retry, sizeof retry, "%ld", ev->retry) : 0;
    size_t total = 2 * klen + ev->data_len + ev->type_len + ev->mid_len + rlen;
    msg_t *m = malloc(sizeof *m + total);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->in = in;
    m->size = sizeof *m + total;
    m->shard = -1;
    char *p = m->bytes;
    msg_arg(m, "FCALL", 5);
    msg_arg(m, SSEHUB_FN_PUBLISH, strlen(SSEHUB_FN_PUBLISH));
    msg_arg(m, "2", 1);
    msg_copy(m, &p, in->scratch.base, klen);
    msg_copy(m, &p, in->scratch.base, klen);
    p[-1] = TOPIC_KEY_META;
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
    msg_arg(m, "maxbytes", 8);
    msg_arg(m, in->maxbytes_text, strlen(in->maxbytes_text));
    return m;
}

/* ---- sending ------------------------------------------------------------- */

/* Returns nonzero when publish calls may go out now (the lease is checked
 * again on the clock before each one, the shard's link per message). */
static int can_send(const struct ingest *in)
{
    return !in->finished && !in->paused && lease_role(in->lease) == LEASE_LEADER;
}

/* Nonzero when a command link can take commands now. */
static int link_usable(const redis_link_t *link)
{
    return link != NULL && link->ac != NULL && link->ready && !link->reloading;
}

/* The command link of the master serving key's slot (the only one on a
 * single Redis), or NULL while that is not known. */
static redis_link_t *shard_for_key(const struct ingest *in, const char *key, size_t len)
{
    if (in->mode == MODE_UNKNOWN)
        return NULL;
    int k = in->slot_shard[cluster_key_slot(key, len)];
    return k >= 0 ? in->shards[k] : NULL;
}

/* Nonzero when every command link is ready (and there is one). */
static int shards_ready(const struct ingest *in)
{
    int any = 0;
    for (int i = 0; i < MAX_SHARDS; i++) {
        if (in->shards[i] == NULL)
            continue;
        if (!in->shards[i]->ready)
            return 0;
        any = 1;
    }
    return any;
}

static void request_topology(struct ingest *in);
static void update_epoch_link(struct ingest *in);
static void cluster_pause(struct ingest *in, const redisReply *reply, const msg_t *m);

/* Starts FUNCTION LOAD REPLACE after a "function not found" answer; later
 * messages wait in the queue until it is answered. */
static void start_reload(struct ingest *in, redisAsyncContext *ac);

/* Counts what became of a message buffered before a takeover, and logs the
 * takeover's outcome when the last one is settled. */
static void handover_settle(struct ingest *in, const msg_t *m, const char *outcome)
{
    handover_t *h = &in->handover;
    if (!h->active || m->seq > h->upto || h->left == 0)
        return;
    if (strcmp(outcome, "stored") == 0)
        h->stored++;
    else if (strcmp(outcome, "duplicate") == 0)
        h->duplicates++;
    else
        h->other++;
    if (--h->left > 0)
        return;
    h->active = 0;
    log_info(COMPONENT, "handover complete",
             json_pack("{s:I, s:I, s:I, s:I}", "buffered", (json_int_t)h->buffered, "stored",
                       (json_int_t)h->stored, "duplicates", (json_int_t)h->duplicates, "not_stored",
                       (json_int_t)h->other));
}

/* Returns nonzero when an error reply is the publish function's fencing. */
static int fenced_error(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, SSEHUB_FENCED_ERROR, reply->len) == 0 &&
           reply->len == strlen(SSEHUB_FENCED_ERROR);
}

/* A message was stored while earlier ones of its topic wait after a
 * cluster refusal: a cluster that refused one pipelined call and took the
 * next (CLUSTERDOWN ends between them). Sent with their positions those
 * would be answered DUPLICATE and lost; they go without, after it. */
static void mark_overtaken(struct ingest *in, const msg_t *stored)
{
    size_t refused = 0;
    for (msg_t *q = in->queue.head; q != NULL; q = q->next) {
        if (!q->refused)
            continue;
        refused++;
        if (q->seq < stored->seq && !q->unordered && q->argvlen[3] == stored->argvlen[3] &&
            memcmp(q->argv[3], stored->argv[3], q->argvlen[3]) == 0) {
            q->unordered = 1;
            unsigned long long held;
            if (log_allowed(in, "overtaken", &held))
                log_warn(COMPONENT,
                         "message stored after a later one of its topic (cluster refused it first)",
                         json_pack("{s:o, s:I}", "key", json_bytes(q->argv[3], q->argvlen[3]), "suppressed",
                                   (json_int_t)held));
        }
    }
    in->refused_queued = refused;
}

static int send_publish(struct ingest *in, redis_link_t *link, msg_t *m);

/* A publish call came back (answered, or its connection closed): one
 * fewer in flight, on its link too while that connection lasts. A full
 * link takes messages again once half of its calls are answered (not at
 * each answer: pump would look through the waiting ones every time), and
 * pump then looks from the head. */
static void answered(struct ingest *in, const msg_t *m)
{
    in->inflight--;
    redis_link_t *link = m->shard >= 0 && m->shard < MAX_SHARDS ? in->shards[m->shard] : NULL;
    if (link == NULL || link->conn != m->conn || link->inflight == 0)
        return;
    link->inflight--;
    if (link->full && link->inflight <= INFLIGHT_MAX / 2) {
        link->full = 0;
        in->queue.skip = NULL;
    }
}

/* Nonzero when the command link can take a publish call now. */
static int link_open(const redis_link_t *link)
{
    return link_usable(link) && !link->full;
}

/* ASK: the message's slot is migrating and its keys have moved already:
 * this one call goes to the importing master, after ASKING (its later
 * messages are answered ASK too, in order, and follow it). Returns 1 when
 * it went; its answer comes back here. */
static int follow_ask(struct ingest *in, const redisReply *reply, msg_t *m)
{
    cluster_redirect_t rd;
    if (in->mode != MODE_CLUSTER ||
        cluster_parse_redirect(reply->str, reply->len, &rd) != CLUSTER_ERROR_ASK ||
        rd.host_kind != CLUSTER_HOST_NAMED)
        return 0;
    redis_link_t *to = NULL;
    for (int i = 0; i < MAX_SHARDS && to == NULL; i++)
        if (in->shards[i] != NULL && in->shards[i]->port == rd.port &&
            strcmp(in->shards[i]->host, rd.host) == 0)
            to = in->shards[i];
    if (!link_usable(to) || !can_send(in) || !lease_may_write(in->lease))
        return 0;
    if (redisAsyncCommand(to->ac, NULL, NULL, "ASKING") != REDIS_OK || send_publish(in, to, m) != 0)
        return 0;
    return 1;
}

/* Handles the answer to one publish call: counts it, or puts the message
 * back for a resend (connection lost, library missing) or for a later
 * takeover (fenced: a newer leader wrote the topic, so we step down). */
static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    msg_t *m = privdata;
    struct ingest *in = m->in;
    redisReply *reply = r;
    answered(in, m);
    if (in->aborting) {
        in->counters.dropped++;
        free(m);
        return;
    }
    if (reply == NULL) { /* connection gone: resend after reconnecting */
        queue_requeue(&in->queue, m);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && follow_ask(in, reply, m))
        return;
    if (reply->type == REDIS_REPLY_ERROR &&
        (cluster_error_kind(reply->str, reply->len) != CLUSTER_ERROR_OTHER ||
         strncmp(reply->str, "READONLY", 8) == 0)) {
        /* MOVED, ASK, TRYAGAIN, CLUSTERDOWN (a cluster resharding or failing
         * over), READONLY (a Sentinel master turned replica): not stored;
         * hold it, in order, and send again once the map is read again */
        m->refused = 1;
        in->refused_queued++;
        queue_requeue(&in->queue, m);
        cluster_pause(in, reply, m);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR &&
        (functions_missing_error(reply->str, reply->len) ||
         functions_outdated_error(reply->str, reply->len)) &&
        ++m->attempts < MAX_ATTEMPTS) {
        queue_requeue(&in->queue, m);
        start_reload(in, ac);
        return;
    }
    if (fenced_error(reply)) {
        in->counters.fenced++;
        queue_requeue(&in->queue, m);
        lease_step_down(in->lease, "fenced");
        ingest_maybe_finish(in);
        return;
    }
    const char *outcome = "stored";
    if (reply->type == REDIS_REPLY_ERROR) {
        unsigned long long held;
        in->counters.publish_errors++;
        outcome = "error";
        if (log_allowed(in, "publish error", &held))
            log_warn(COMPONENT, "publish error",
                     json_pack("{s:o, s:o, s:I}", "error", json_bytes(reply->str, reply->len), "key",
                               json_bytes(m->argv[3], m->argvlen[3]), "suppressed", (json_int_t)held));
    } else if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, SSEHUB_DUPLICATE_STATUS) == 0) {
        in->counters.duplicates++;
        outcome = "duplicate";
    } else {
        in->counters.ingested++;
        if (in->refused_queued > 0)
            mark_overtaken(in, m);
    }
    handover_settle(in, m, outcome);
    free(m);
    pump(in);
    ingest_maybe_finish(in);
}

/* Sends one message with the lease epoch (fence) and its position (in). */
static int send_publish(struct ingest *in, redis_link_t *link, msg_t *m)
{
    const char *argv[SEND_MAX_ARGS];
    size_t lens[SEND_MAX_ARGS];
    char pos[INGEST_POS_TEXT_MAX];
    memcpy(argv, m->argv, sizeof m->argv[0] * (size_t)m->argc);
    memcpy(lens, m->argvlen, sizeof m->argvlen[0] * (size_t)m->argc);
    int argc = m->argc;
    argv[argc] = "fence", lens[argc++] = 5;
    argv[argc] = in->epoch_text, lens[argc++] = strlen(in->epoch_text);
    if (!m->unordered) {
        argv[argc] = "in", lens[argc++] = 2;
        argv[argc] = pos, lens[argc++] = ingest_pos_format(pos, m->pos);
    }
    if (redisAsyncCommandArgv(link->ac, on_publish_reply, m, argc, argv, lens) != REDIS_OK)
        return -1;
    if (m->refused) {
        m->refused = 0;
        in->refused_queued -= in->refused_queued > 0;
    }
    m->shard = link->shard;
    m->conn = link->conn;
    link->inflight++;
    in->inflight++;
    in->counters.sent++;
    return 0;
}

/* Sends queued messages in arrival order while the lease still runs by
 * our own clock, each on the command link of its topic's master; stops at
 * a message whose position is not known yet (it waits for the sync mark).
 * A message whose link cannot take it now (down, reloading the library,
 * full, or its slot has no master) waits, and so does
 * every later one of that link, but the other masters' messages go on: a
 * master failing over holds up only its own topics. A topic's messages all
 * go to one link, so none overtakes an earlier one of its topic. The
 * messages found waiting are remembered (queue.skip) so a long wait is not
 * scanned again; anything that may free them (a link ready, a new map, a
 * full link answering, a message put back before them) forgets it. */
static void pump(struct ingest *in)
{
    int open = 0, want_map = 0;
    for (int i = 0; i < MAX_SHARDS; i++)
        open += link_open(in->shards[i]);
    msg_t *prev = in->queue.skip;
    msg_t *m = prev != NULL ? prev->next : in->queue.head;
    while (open > 0 && m != NULL && m->placed != MSG_UNPLACED && can_send(in)) {
        redis_link_t *link = shard_for_key(in, m->argv[3], m->argvlen[3]);
        if (!link_open(link)) {
            want_map |= link == NULL && in->mode == MODE_CLUSTER;
            in->queue.skip = prev = m;
            m = m->next;
            continue;
        }
        if (!lease_may_write(in->lease))
            break;
        msg_t *next = m->next;
        queue_unlink(&in->queue, prev, m);
        if (send_publish(in, link, m) != 0) {
            queue_requeue(&in->queue, m);
            break;
        }
        if (link->inflight >= INFLIGHT_MAX) {
            link->full = 1;
            open--;
        }
        m = next;
    }
    if (want_map)
        request_topology(in);
}

/* Standby: forgets buffered messages older than the window, and the oldest
 * beyond broker_queue_bytes. */
static void trim_buffer(struct ingest *in)
{
    double oldest = lease_now() - in->window;
    while (in->queue.head != NULL && (in->queue.bytes > (size_t)in->cfg->broker_queue_bytes || in->queue.head->arrived < oldest))
        free(queue_pop(&in->queue));
}

/* Standby: trims the buffer every TRIM_SECONDS. */
static void on_trim_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct ingest *in = w->data;
    if (lease_role(in->lease) != LEASE_LEADER)
        trim_buffer(in);
}

/* Queues one message for sending, or, as standby, buffers it for a
 * takeover. A leader's full queue drops the new message; a standby's
 * forgets its oldest. */
static void ingest_enqueue(struct ingest *in, msg_t *m)
{
    unsigned long long held;
    int leader = lease_role(in->lease) == LEASE_LEADER;
    size_t limit = (size_t)in->cfg->broker_queue_bytes;
    if (leader && in->queue.bytes + m->size > limit) {
        in->counters.dropped++;
        free(m);
        if (log_allowed(in, "queue full", &held))
            log_warn(
                COMPONENT, "queue full, message dropped",
                json_pack("{s:I, s:I, s:I}", "queued", (json_int_t)in->queue.len, "queued_bytes",
                          (json_int_t)in->queue.bytes, "suppressed", (json_int_t)held));
        return;
    }
    m->seq = in->next_seq++;
    m->arrived = lease_now();
    queue_push(&in->queue, m);
    if (leader)
        pump(in);
    else
        while (in->queue.bytes > limit && in->queue.head != NULL)
            free(queue_pop(&in->queue));
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

/* Validates one ingest message and queues its publish call with its
 * position; refusals are counted and logged, never stored. */
static void ingest_message(struct ingest *in, const redisReply *pattern, const redisReply *channel,
                           const redisReply *payload, enum msg_placed placed, ingest_pos_t pos)
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
    if (ev.data_len > (size_t)in->cfg->max_event_bytes) {
        json_decref(owner);
        in->counters.oversized++;
        char size[64];
        snprintf(size, sizeof size, "%zu bytes of data, more than max_event_bytes", ev.data_len);
        log_refused(in, "event too large", size, channel->str, channel->len);
        return;
    }
    msg_t *m = msg_new(in, topic, tlen, &ev);
    json_decref(owner);
    if (m == NULL) {
        in->counters.dropped++;
        return;
    }
    m->placed = placed;
    m->pos = pos;
    ingest_enqueue(in, m);
}

/* One delivery through an ingest pattern: it takes the next position
 * (refused ones too, so every broker counts the same), then is handled. */
static void ingest_delivery(struct ingest *in, const redisReply *pattern, const redisReply *channel,
                            const redisReply *payload)
{
    ingest_pos_t pos = {0, 0};
    if (reply_is(channel, &in->sync_channel))
        return; /* the sync channel under an ingest pattern: not a message */
    if (in->placed) {
        pos.mark = in->mark;
        pos.n = ++in->count;
    }
    ingest_message(in, pattern, channel, payload, in->placed ? MSG_EXACT : MSG_UNPLACED, pos);
}

/* ---- sync marks ---------------------------------------------------------- */

/* queue_filter: places a leader's unplaced message after every exact
 * position of the mark before the first one it saw. */
static int keep_as_floor(msg_t *m, void *arg)
{
    struct ingest *in = arg;
    if (m->placed == MSG_UNPLACED) {
        m->placed = MSG_FLOOR;
        m->pos.mark = in->mark - 1;
        m->pos.n = INGEST_POS_FLOOR + in->floor_next++;
    }
    return 1;
}

/* queue_filter: forgets unplaced messages. */
static int keep_placed(msg_t *m, void *arg)
{
    (void)arg;
    return m->placed != MSG_UNPLACED;
}

/* queue_filter: forgets placed messages (their marks are from before a
 * counter that went back). */
static int keep_unplaced(msg_t *m, void *arg)
{
    (void)arg;
    return m->placed == MSG_UNPLACED;
}

/* The subscription's first mark: the messages that came before it get a
 * place. A broker that has led without a break since it subscribed knows
 * no other broker can have stored them: they become floor positions after
 * every exact one of the mark before. Anyone else forgets them (the leader
 * may have stored them; a standby cannot know), counted as dropped when
 * leading. */
static void place_unplaced(struct ingest *in)
{
    if (lease_role(in->lease) == LEASE_LEADER && in->leader_since_sub) {
        queue_filter(&in->queue, keep_as_floor, in);
        return;
    }
    size_t forgotten = queue_filter(&in->queue, keep_placed, NULL);
    if (lease_role(in->lease) == LEASE_LEADER)
        in->counters.dropped += forgotten;
    if (forgotten > 0)
        log_info(COMPONENT, "messages from before the first sync mark forgotten",
                 json_pack("{s:I}", "count", (json_int_t)forgotten));
}

/* Handles a message on the sync channel: a mark restarts the delivery
 * count; a release notice makes a standby look at the lease at once. */
static void on_sync_message(struct ingest *in, const redisReply *payload)
{
    uint64_t mark;
    const char *tag;
    size_t tag_len;
    if (payload->len > 9 && memcmp(payload->str, "released ", 9) == 0) {
        lease_poll_soon(in->lease);
        return;
    }
    if (ingest_sync_parse(payload->str, payload->len, &mark, &tag, &tag_len) != 0)
        return;
    unsigned long long held;
    if ((tag_len != in->sync_tag.len || memcmp(tag, in->sync_tag.base, tag_len) != 0) &&
        log_allowed(in, "sync tag", &held))
        log_error(COMPONENT, "another broker uses other ingest prefixes: a takeover may store messages twice",
                  json_pack("{s:o, s:s}", "theirs", json_bytes(tag, tag_len), "ours", in->sync_tag.base));
    if (mark <= in->last_mark) {
        size_t n = queue_filter(&in->queue, keep_unplaced, NULL);
        if (lease_role(in->lease) == LEASE_LEADER)
            in->counters.dropped += n;
        log_warn(COMPONENT, "sync mark went back (Redis lost data?): buffered messages forgotten",
                 json_pack("{s:I, s:I, s:I}", "mark", (json_int_t)mark, "last", (json_int_t)in->last_mark,
                           "forgotten", (json_int_t)n));
    }
    in->last_mark = mark;
    in->mark = mark;
    in->count = 0;
    if (in->placed)
        return;
    in->placed = 1;
    ev_timer_stop(in->loop, &in->mark_timer);
    place_unplaced(in);
    log_info(COMPONENT, in->sub.was_ready ? "resubscribed" : "subscribed",
             json_pack("{s:[s,s], s:I}", "patterns", in->pattern_plain.base, in->pattern_json.base, "mark",
                       (json_int_t)mark));
    in->sub.was_ready = 1;
    maybe_log_ready(in);
    pump(in);
    ingest_maybe_finish(in);
}

/* The answer to a mark request: nothing to do but retry on failure (the
 * mark itself arrives on the subscriber connection). */
static void on_mark_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ingest *in = privdata;
    redisReply *reply = r;
    in->mark_inflight = 0;
    if (reply == NULL || in->finished)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        unsigned long long held;
        if (functions_missing_error(reply->str, reply->len))
            start_reload(in, ac);
        else if (log_allowed(in, "sync mark", &held))
            log_warn(COMPONENT, "sync mark refused",
                     json_pack("{s:o}", "error", json_bytes(reply->str, reply->len)));
    }
    if (!in->placed) {
        ev_timer_stop(in->loop, &in->mark_timer);
        ev_timer_start(in->loop, &in->mark_timer);
    }
}

/* Asks for a sync mark when the subscription needs one and the command
 * connection can send it. */
static void request_mark(struct ingest *in)
{
    redis_link_t *link = shard_for_key(in, in->sync_channel.base, in->sync_channel.len);
    if (in->placed || in->mark_inflight || !in->sub.ready || !link_usable(link) || in->finished)
        return;
    const char *argv[6] = {
        "FCALL", SSEHUB_FN_NEXT, "1", in->sync_channel.base, in->sync_channel.base, in->sync_tag.base};
    size_t lens[6] = {
        5, strlen(SSEHUB_FN_NEXT), 1, in->sync_channel.len, in->sync_channel.len, in->sync_tag.len};
    if (redisAsyncCommandArgv(link->ac, on_mark_reply, in, 6, argv, lens) == REDIS_OK)
        in->mark_inflight = 1;
}

/* No mark came in time (or the request failed): ask again. */
static void on_mark_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    request_mark(w->data);
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
    link->inflight = 0; /* its calls come back unanswered, not counted on the next connection */
    link->full = 0;
    ev_timer_stop(link->in->loop, &link->deadline);
    struct ingest *in = link->in;
    if (link == &in->lease_link) {
        if (in->lease != NULL)
            lease_link_down(in->lease);
    } else if (link->shard >= 0) {
        link->reloading = 0;
        if (in->lease != NULL)
            lease_set_epoch_link(in->lease, NULL); /* set again when it is back */
        if (in->mode == MODE_CLUSTER && !in->finished)
            request_topology(in); /* a failover, perhaps: the map says */
    } else if (link == &in->boot) {
        in->topology_inflight = 0;
        /* the next attempt tries the next address */
        const redis_url_t *u = &in->url;
        const redis_addr_t *a = &u->hosts[++in->boot_next % (unsigned)u->nhosts];
        snprintf(link->host, sizeof link->host, "%s", a->host);
        link->port = a->port;
    } else {
        link->in->placed = 0; /* the next subscription counts from its first mark */
        ev_timer_stop(link->in->loop, &link->in->mark_timer);
    }
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
    log_write(level, COMPONENT, msg,
              json_pack("{s:s, s:s, s:i, s:o}", "link", link->name, "host", link->host, "port", link->port,
                        "error", json_bytes(error, strlen(error))));
}

/* Logs "ready" once: both links up, the subscription placed by a sync
 * mark, and the lease looked at (we lead, or know who does). */
static void maybe_log_ready(struct ingest *in)
{
    enum lease_role role = lease_role(in->lease);
    if (in->ready_logged || !in->sub.ready || !in->placed || !shards_ready(in) || role == LEASE_UNKNOWN)
        return;
    in->ready_logged = 1;
    int masters = 0;
    for (int i = 0; i < MAX_SHARDS; i++)
        masters += in->shards[i] != NULL;
    log_info(COMPONENT, "ready",
             json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:i}", "host", in->sub.host, "port", in->sub.port,
                       "db", in->url.db, "prefix", in->cfg->prefix, "role",
                       role == LEASE_LEADER ? "leader" : "standby", "redis",
                       in->mode == MODE_CLUSTER ? "cluster" : "single", "masters", masters));
}

/* The answer to CONFIG GET maxmemory-policy: history must not be evicted. */
static void on_policy(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *rep = r;
    (void)ac, (void)privdata;
    if (rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(rep->element[1]->str, "noeviction") != 0)
            log_warn(COMPONENT, "redis may evict history",
                     json_pack("{s:s,s:s}", "maxmemory_policy", rep->element[1]->str, "hint",
                               "set maxmemory-policy noeviction: under memory pressure this policy may delete topic "
                               "streams (they carry a TTL)"));
    } else {
        log_info(COMPONENT, "cannot check maxmemory-policy",
                 json_pack("{s:s}", "error", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply"));
    }
}

/* Marks the link ready after its handshake. The command link hands itself
 * to the lease; the subscriber link is logged once its first sync mark
 * arrives (on_sync_message), which it asks for now. */
static void link_ready(redis_link_t *link)
{
    struct ingest *in = link->in;
    link->ready = 1;
    link->attempts = 0;
    ev_timer_stop(in->loop, &link->deadline);
    if (link == &in->lease_link) {
        lease_link_up(in->lease, link->ac);
        return;
    }
    if (link->shard >= 0) {
        log_info(COMPONENT, "function library loaded",
                 json_pack("{s:s, s:s, s:i}", "library", SSEHUB_FUNCTION_LIBRARY, "host", link->host, "port",
                           link->port));
        if (!link->was_ready)
            redisAsyncCommand(link->ac, on_policy, NULL, "CONFIG GET maxmemory-policy");
        link->was_ready = 1;
        in->queue.skip = NULL; /* its messages may go now */
        update_epoch_link(in);
    } else {
        in->placed = 0;
        in->leader_since_sub = lease_role(in->lease) == LEASE_LEADER;
    }
    request_mark(in);
    maybe_log_ready(in);
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

/* Sends AUTH when there is a password: AUTH user password for an ACL
 * user, AUTH password otherwise. */
static void link_auth_as(redis_link_t *link, const char *user, const char *password)
{
    const char *argv[3] = {"AUTH", user, password};
    size_t lens[3] = {4, strlen(user), strlen(password)};
    if (password[0] == '\0')
        return;
    if (user[0] == '\0') {
        argv[1] = argv[2], lens[1] = lens[2];
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 2, argv, lens);
    } else {
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 3, argv, lens);
    }
}

/* AUTH with the URL's credentials (the data nodes'). */
static void link_auth(redis_link_t *link)
{
    link_auth_as(link, link->in->url.user, link->in->url.password);
}

/* Sends SELECT when the URL names a database other than 0. */
static void link_select(redis_link_t *link)
{
    if (link->in->url.db != 0) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, (size_t)snprintf(db, sizeof db, "%d", link->in->url.db)};
        redisAsyncCommandArgv(link->ac, on_setup_reply, link, 2, argv, lens);
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
    if (!link->reloading) {
        link_ready(link);
        return;
    }
    link->reloading = 0;
    in->queue.skip = NULL;
    log_info(COMPONENT, "function library reloaded", json_pack("{s:s}", "library", SSEHUB_FUNCTION_LIBRARY));
    request_mark(in);
    pump(in);
    ingest_maybe_finish(in);
}

/* Sends FUNCTION LOAD REPLACE with the compiled-in library (its Redis
 * Cluster form on a cluster). */
static void send_library(redis_link_t *link)
{
    size_t len;
    const char *src = functions_source(link->in->mode == MODE_CLUSTER, &len);
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", src};
    size_t lens[4] = {8, 4, 7, len};
    redisAsyncCommandArgv(link->ac, on_library_loaded, link, 4, argv, lens);
}

/* Reloads the library once per "not found" episode on the live context
 * (answers from an older context are ignored). */
static void start_reload(struct ingest *in, redisAsyncContext *ac)
{
    redis_link_t *link = NULL;
    for (int i = 0; i < MAX_SHARDS && link == NULL && ac != NULL; i++)
        if (in->shards[i] != NULL && in->shards[i]->ac == ac)
            link = in->shards[i];
    if (link == NULL || link->reloading)
        return;
    link->reloading = 1;
    log_warn(COMPONENT, "function library missing, reloading",
             json_pack("{s:s, s:s, s:i}", "library", SSEHUB_FUNCTION_LIBRARY, "host", link->host, "port",
                       link->port));
    send_library(link);
}

/* Command link handshake: AUTH, SELECT, FUNCTION LOAD, pipelined. */
static void cmd_handshake(redis_link_t *link)
{
    link_auth(link);
    link_select(link);
    send_library(link);
}

/* The lease link's handshake answered its closing PING: hand it to the lease. */
static void on_lease_link_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_link_t *link = privdata;
    redisReply *reply = r;
    if (reply == NULL || ac != link->ac || reply->type == REDIS_REPLY_ERROR)
        return;
    link_ready(link);
}

/* Lease link handshake: AUTH, SELECT and a PING, pipelined (the library is
 * loaded by the command link; a lease call that finds it missing asks for
 * a reload there). */
static void lease_handshake(redis_link_t *link)
{
    link_auth(link);
    link_select(link);
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    redisAsyncCommandArgv(link->ac, on_lease_link_ping, link, 1, ping, plen);
}

/* Returns nonzero when elements first..last of an array reply are strings. */
static int reply_strings(const redisReply *r, size_t first, size_t last)
{
    for (size_t i = first; i <= last; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

/* Handles everything on the subscriber connection: subscription
 * confirmations, pmessages of the ingest patterns and messages of the sync
 * channel, in the one order Redis delivered them. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_link_t *link = privdata;
    struct ingest *in = link->in;
    redisReply *reply = r;
    if (reply == NULL || ac != link->ac || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        !reply_strings(reply, 0, 1))
        return;
    const char *kind = reply->element[0]->str;
    if (strcasecmp(kind, "pmessage") == 0 && reply->elements == 4 && reply_strings(reply, 2, 3))
        ingest_delivery(in, reply->element[1], reply->element[2], reply->element[3]);
    else if (strcasecmp(kind, "message") == 0 && reply_strings(reply, 2, 2) &&
             reply_is(reply->element[1], &in->sync_channel))
        on_sync_message(in, reply->element[2]);
    else if ((strcasecmp(kind, "psubscribe") == 0 || strcasecmp(kind, "subscribe") == 0) &&
             link->pending > 0 && --link->pending == 0)
        link_ready(link);
}

/* Subscriber handshake: AUTH, both ingest patterns in one PSUBSCRIBE, and
 * the sync channel. */
static void sub_handshake(redis_link_t *link)
{
    struct ingest *in = link->in;
    const char *argv[3] = {"PSUBSCRIBE", in->pattern_plain.base, in->pattern_json.base};
    size_t lens[3] = {10, in->pattern_plain.len, in->pattern_json.len};
    const char *sync[2] = {"SUBSCRIBE", in->sync_channel.base};
    size_t sync_lens[2] = {9, in->sync_channel.len};
    link_auth(link);
    link->pending = 3;
    redisAsyncCommandArgv(link->ac, on_sub_reply, link, 3, argv, lens);
    redisAsyncCommandArgv(link->ac, on_sub_reply, link, 2, sync, sync_lens);
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
             json_pack("{s:s, s:s, s:i}", "link", link->name, "host", link->host, "port", link->port));
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
    redisAsyncContext *ac = redisAsyncConnect(link->host, link->port);
    if (ac == NULL || ac->err) {
        link_log(link, LOG_WARN, "connect failed", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        link_lost(link); /* the discovery link moves on to the next address */
        link_retry(link);
        return;
    }
    ac->data = link;
    link->conn = ++in->next_conn;
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
    link->shard = -1;
    snprintf(link->host, sizeof link->host, "%s", in->url.host);
    link->port = in->url.port;
    link->handshake = handshake;
    ev_timer_init(&link->backoff, on_backoff_timer, 0., 0.);
    ev_timer_init(&link->deadline, on_deadline_timer, 0., 0.);
    link->backoff.data = link;
    link->deadline.data = link;
}

/* ---- what redis_url names: one Redis, a cluster, Sentinels ------------------ */

/* On a cluster the lease's epoch key may live on another master than the
 * lease key: the lease sends its one epoch call there. */
static void update_epoch_link(struct ingest *in)
{
    if (in->lease == NULL)
        return;
    redis_link_t *link =
        in->mode == MODE_CLUSTER ? shard_for_key(in, in->epoch_key.base, in->epoch_key.len) : NULL;
    lease_set_epoch_link(in->lease, link_usable(link) ? link->ac : NULL);
}

/* Points a link at host:port, reconnecting when that is a change (or when
 * it never connected). */
static void link_target(redis_link_t *link, const char *host, int port)
{
    int same = link->port == port && strcmp(link->host, host) == 0;
    if (same && (link->ac != NULL || ev_is_active(&link->backoff)))
        return;
    if (link->in->finished || (link->in->stopping && link == &link->in->sub))
        return;
    if (!same)
        log_info(COMPONENT, "redis moved",
                 json_pack("{s:s, s:s, s:i}", "link", link->name, "host", host, "port", port));
    link_close(link);
    snprintf(link->host, sizeof link->host, "%s", host);
    link->port = port;
    link->attempts = 0;
    link_connect(link);
}

/* A command link for a master (shard index i). */
static redis_link_t *shard_link_new(struct ingest *in, int i, const char *host, int port)
{
    redis_link_t *link = malloc(sizeof *link);
    if (link == NULL)
        return NULL;
    link_init(link, in, "command", cmd_handshake);
    link->shard = i;
    snprintf(link->host, sizeof link->host, "%s", host);
    link->port = port;
    link_connect(link);
    return link;
}

static void shard_link_free(struct ingest *in, int i)
{
    redis_link_t *link = in->shards[i];
    in->shards[i] = NULL;
    if (link->ac != NULL)
        link->ac->data = NULL; /* hiredis may call back later (a deferred free): not about this link */
    link_close(link);          /* its unanswered calls come back NULL: re-queued */
    ev_timer_stop(in->loop, &link->backoff);
    free(link);
}

/* The index of the command link for host:port, made when new; -1 when
 * every index is taken or memory ran out. */
static int shard_index(struct ingest *in, const char *host, int port)
{
    int free_at = -1;
    for (int i = 0; i < MAX_SHARDS; i++) {
        redis_link_t *l = in->shards[i];
        if (l == NULL) {
            if (free_at < 0)
                free_at = i;
        } else if (l->port == port && strcmp(l->host, host) == 0) {
            return i;
        }
    }
    if (free_at < 0 || (in->shards[free_at] = shard_link_new(in, free_at, host, port)) == NULL)
        return -1;
    return free_at;
}

/* A single Redis at host:port (found directly or through Sentinel): one
 * command link owns every slot. A Sentinel failover moves every link. */
static void become_single(struct ingest *in, const char *host, int port)
{
    if (in->mode == MODE_UNKNOWN)
        log_info(COMPONENT, "redis found",
                 json_pack("{s:s, s:s, s:i}", "redis", "single", "host", host, "port", port));
    in->mode = MODE_SINGLE;
    memset(in->slot_shard, 0, sizeof in->slot_shard);
    in->queue.skip = NULL; /* messages may map to other links now */
    if (in->shards[0] == NULL)
        in->shards[0] = shard_link_new(in, 0, host, port);
    else
        link_target(in->shards[0], host, port);
    link_target(&in->sub, host, port);
    link_target(&in->lease_link, host, port);
}

/* A cluster's slot map: a command link per master (kept when its address
 * is unchanged); the subscriber on the first replica of the sync key's
 * shard (its master when it has none): every broker subscribes on that one
 * node, so all see one order of messages and marks, and a failover of its
 * master (the replica is promoted) does not break the subscription; the
 * lease link on the master of the lease key. */
static void apply_cluster(struct ingest *in, const cluster_map_t *m)
{
    if (in->mode == MODE_UNKNOWN)
        log_info(COMPONENT, "redis found",
                 json_pack("{s:s, s:i}", "redis", "cluster", "masters", (int)m->nshards));
    in->mode = MODE_CLUSTER;
    int used[MAX_SHARDS] = {0};
    int *of = calloc(m->nshards ? m->nshards : 1, sizeof *of);
    if (of == NULL)
        return;
    for (size_t i = 0; i < m->nshards; i++)
        if ((of[i] = shard_index(in, m->shards[i].host, m->shards[i].port)) >= 0)
            used[of[i]] = 1;
    for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++)
        in->slot_shard[slot] = (int8_t)(m->slots[slot] >= 0 ? of[m->slots[slot]] : -1);
    in->queue.skip = NULL; /* messages may map to other links now */
    free(of);
    for (int i = 0; i < MAX_SHARDS; i++)
        if (in->shards[i] != NULL && !used[i])
            shard_link_free(in, i);
    int sync = m->slots[cluster_key_slot(in->sync_channel.base, in->sync_channel.len)];
    int lease = m->slots[cluster_key_slot(in->leader_key.base, in->leader_key.len)];
    if (sync >= 0) {
        /* stay where the subscription is while that node still serves the
         * shard: moving it loses what is published meanwhile */
        const cluster_shard_t *sh = &m->shards[sync];
        int stay = in->sub.port == sh->port && strcmp(in->sub.host, sh->host) == 0;
        for (size_t i = 0; i < sh->nreplicas && !stay; i++)
            stay = in->sub.port == sh->replicas[i].port && strcmp(in->sub.host, sh->replicas[i].host) == 0;
        if (!stay || (in->sub.ac == NULL && !ev_is_active(&in->sub.backoff))) {
            if (sh->nreplicas > 0)
                link_target(&in->sub, sh->replicas[0].host, sh->replicas[0].port);
            else
                link_target(&in->sub, sh->host, sh->port);
        }
    }
    if (lease >= 0)
        link_target(&in->lease_link, m->shards[lease].host, m->shards[lease].port);
    update_epoch_link(in);
    pump(in);
}

/* CLUSTER SLOTS: a map, or (a single Redis) "cluster support disabled". */
static void on_slots_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ingest *in = privdata;
    redisReply *reply = r;
    int from_boot = ac == in->boot.ac;
    in->topology_inflight = 0;
    if (reply == NULL || in->finished)
        return;
    if (reply->type == REDIS_REPLY_ERROR && in->mode == MODE_UNKNOWN && from_boot &&
        strcasestr(reply->str, "cluster support disabled") != NULL) {
        become_single(in, in->boot.host, in->boot.port);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        cluster_map_t *m = malloc(sizeof *m);
        char err[160];
        if (m != NULL &&
            cluster_map_from_slots_reply(m, reply, from_boot ? in->boot.host : NULL, err, sizeof err) == 0) {
            apply_cluster(in, m);
            cluster_map_free(m);
        } else {
            log_warn(COMPONENT, "bad CLUSTER SLOTS reply",
                     json_pack("{s:s}", "error", m ? err : "out of memory"));
            in->topology_wanted = 1;
        }
        free(m);
    } else {
        unsigned long long held;
        if (log_allowed(in, "slot map", &held))
            log_warn(COMPONENT, "cannot read the cluster's slot map",
                     json_pack("{s:o}", "error",
                               reply->type == REDIS_REPLY_ERROR ? json_bytes(reply->str, reply->len)
                                                                : json_string("unexpected reply")));
        in->topology_wanted = 1;
    }
    if (from_boot && in->url.sentinel_master[0] == '\0')
        link_close(&in->boot); /* found: the command links read the map from now on */
}

/* SENTINEL get-master-addr-by-name: [host, port], or nil. */
static void on_sentinel_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ingest *in = privdata;
    redisReply *reply = r;
    (void)ac;
    in->topology_inflight = 0;
    if (reply == NULL || in->finished)
        return;
    in->boot.ready = 1;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply_strings(reply, 0, 1) &&
        reply->element[0]->len < CLUSTER_HOST_MAX) {
        int port = atoi(reply->element[1]->str);
        if (port > 0 && port < 65536)
            become_single(in, reply->element[0]->str, port);
        return;
    }
    unsigned long long held;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOAUTH, WRONGPASS (redis_sentinel_password), an ACL refusal */
        if (log_allowed(in, "sentinel", &held))
            log_error(COMPONENT, "sentinel refused the question",
                      json_pack("{s:s,s:s}", "master", in->url.sentinel_master, "error", reply->str));
    } else if (log_allowed(in, "sentinel", &held)) {
        log_warn(COMPONENT, "sentinel does not know the master",
                 json_pack("{s:s}", "master", in->url.sentinel_master));
    }
    link_drop(&in->boot); /* ask another Sentinel */
}

static void ask_sentinel(struct ingest *in)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", in->url.sentinel_master};
    size_t lens[3] = {8, 23, strlen(in->url.sentinel_master)};
    if (redisAsyncCommandArgv(in->boot.ac, on_sentinel_reply, in, 3, argv, lens) == REDIS_OK)
        in->topology_inflight = 1;
}

/* Discovery handshake: a Sentinel is asked for the master (with its own
 * password, redis_sentinel_password: the data nodes' is not a Sentinel's);
 * a data node for its slot map. */
static void boot_handshake(redis_link_t *link)
{
    struct ingest *in = link->in;
    if (in->url.sentinel_master[0] != '\0') {
        link_auth_as(link, "", in->url.sentinel_password);
        ask_sentinel(in);
        return;
    }
    link_auth(link);
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, 5};
    if (redisAsyncCommandArgv(link->ac, on_slots_reply, in, 2, argv, lens) == REDIS_OK)
        in->topology_inflight = 1;
}

/* Reads the topology again: the slot map from a master that is up, else
 * through the discovery link (seeds, then known masters); Sentinel on its
 * link. */
static void refresh_topology(struct ingest *in)
{
    if (in->topology_inflight || in->finished)
        return;
    in->topology_wanted = 0;
    if (in->url.sentinel_master[0] != '\0') {
        if (in->boot.ac != NULL && in->boot.ready)
            ask_sentinel(in);
        else if (in->boot.ac == NULL && !ev_is_active(&in->boot.backoff))
            link_connect(&in->boot);
        return;
    }
    if (in->mode != MODE_CLUSTER)
        return;
    for (int i = 0; i < MAX_SHARDS; i++) {
        redis_link_t *l = in->shards[i];
        if (link_usable(l)) {
            const char *argv[2] = {"CLUSTER", "SLOTS"};
            size_t lens[2] = {7, 5};
            if (redisAsyncCommandArgv(l->ac, on_slots_reply, in, 2, argv, lens) == REDIS_OK)
                in->topology_inflight = 1;
            return;
        }
    }
    if (in->boot.ac == NULL && !ev_is_active(&in->boot.backoff))
        link_connect(&in->boot);
}

static void request_topology(struct ingest *in)
{
    in->topology_wanted = 1;
    if (in->mode == MODE_CLUSTER)
        refresh_topology(in);
}

/* Once a second: re-read the map while a master's link is down or a slot
 * has no master; ask Sentinel anyway (a demoted master still accepts
 * connections). */
static void on_topology_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct ingest *in = w->data;
    int want = in->topology_wanted || in->url.sentinel_master[0] != '\0' ||
               (in->mode == MODE_CLUSTER && (!in->sub.ready || !in->lease_link.ready));
    for (int i = 0; i < MAX_SHARDS && !want && in->mode == MODE_CLUSTER; i++)
        want = in->shards[i] != NULL && !in->shards[i]->ready;
    for (unsigned slot = 0; slot < CLUSTER_SLOTS && !want && in->mode == MODE_CLUSTER; slot++)
        want = in->slot_shard[slot] < 0;
    if (want)
        refresh_topology(in);
}

/* A publish call was redirected or refused for a cluster change: hold
 * sending for a moment, and read the map again. */
static void cluster_pause(struct ingest *in, const redisReply *reply, const msg_t *m)
{
    unsigned long long held;
    if (log_allowed(in, "cluster retry", &held))
        log_info(COMPONENT, "publish held for a cluster change",
                 json_pack("{s:o, s:o, s:I}", "error", json_bytes(reply->str, reply->len), "key",
                           json_bytes(m->argv[3], m->argvlen[3]), "suppressed", (json_int_t)held));
    if (!in->paused) {
        in->paused = 1;
        ev_timer_set(&in->pause_timer, CLUSTER_PAUSE_SECONDS, 0.);
        ev_timer_start(in->loop, &in->pause_timer);
    }
    request_topology(in);
}

static void on_pause_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct ingest *in = w->data;
    in->paused = 0;
    pump(in);
    ingest_maybe_finish(in);
}

/* ---- the lease ----------------------------------------------------------- */

/* We lead now: every buffered message goes out (the publish function
 * stores those the old leader had not stored, in order). */
static void on_lease_acquired(void *arg)
{
    struct ingest *in = arg;
    in->leader_since_sub = 0; /* the subscription is older than this lease */
    ev_timer_stop(in->loop, &in->trim_timer);
    snprintf(in->epoch_text, sizeof in->epoch_text, "%llu", (unsigned long long)lease_epoch(in->lease));
    size_t placed = 0;
    for (const msg_t *m = in->queue.head; m != NULL; m = m->next)
        placed += m->placed != MSG_UNPLACED;
    in->handover = (handover_t){.active = placed > 0,
                                .upto = in->next_seq ? in->next_seq - 1 : 0,
                                .left = placed,
                                .buffered = placed};
    log_info(COMPONENT, "lease acquired",
             json_pack("{s:s, s:I, s:I}", "leader", lease_value(in->lease), "epoch",
                       (json_int_t)lease_epoch(in->lease), "buffered", (json_int_t)in->queue.len));
    maybe_log_ready(in);
    pump(in);
}

/* Renewed on a new command connection: sending may resume. */
static void on_lease_confirmed(void *arg)
{
    pump(arg);
}

/* We no longer lead: what is queued stays as the standby buffer (in-flight
 * answers still count), and nothing more is sent. */
static void on_lease_lost(void *arg, const char *reason)
{
    struct ingest *in = arg;
    in->leader_since_sub = 0;
    in->handover.active = 0;
    json_t *fields = counters_json(&in->counters);
    json_object_set_new(fields, "reason", json_string(reason));
    json_object_set_new(fields, "epoch", json_integer((json_int_t)lease_epoch(in->lease)));
    json_object_set_new(fields, "in_flight", json_integer((json_int_t)in->inflight));
    json_object_set_new(fields, "queued", json_integer((json_int_t)in->queue.len));
    log_warn(COMPONENT, "lease lost", fields);
    ev_timer_again(in->loop, &in->trim_timer);
    ingest_maybe_finish(in);
}

/* Another broker leads: say so (once per holder). */
static void on_lease_standby(void *arg, const char *holder, size_t len)
{
    struct ingest *in = arg;
    log_info(COMPONENT, "standby", json_pack("{s:o}", "leader", json_bytes(holder, len)));
    ev_timer_again(in->loop, &in->trim_timer);
    maybe_log_ready(in);
}

/* A lease command found the library missing. */
static void on_lease_missing_functions(void *arg)
{
    struct ingest *in = arg;
    redis_link_t *link = shard_for_key(in, in->leader_key.base, in->leader_key.len);
    if (link != NULL)
        start_reload(in, link->ac);
}

/* A lease command went unanswered: the lease connection is stuck. */
static void on_lease_stalled(void *arg)
{
    struct ingest *in = arg;
    link_drop(&in->lease_link);
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
    ev_timer_stop(in->loop, &in->mark_timer);
    ev_timer_stop(in->loop, &in->trim_timer);
    ev_timer_stop(in->loop, &in->topology_timer);
    ev_timer_stop(in->loop, &in->pause_timer);
    link_close(&in->sub);
    link_close(&in->lease_link);
    link_close(&in->boot);
    for (int i = 0; i < MAX_SHARDS; i++)
        if (in->shards[i] != NULL)
            shard_link_free(in, i);
    in->counters.dropped += queue_clear(&in->queue);
    log_info(COMPONENT, "stopped", counters_json(&in->counters));
    if (in->done)
        in->done(in->done_arg);
}

/* The lease is released (or could not be): finish. */
static void on_lease_released(void *arg)
{
    struct ingest *in = arg;
    if (!in->finished)
        ingest_finish(in);
}

/* Finishes a stop once nothing is in flight and nothing more can be sent:
 * a leader first sends its queue and then releases the lease. */
static void ingest_maybe_finish(struct ingest *in)
{
    if (!in->stopping || in->finished || in->releasing || in->inflight > 0)
        return;
    if (lease_role(in->lease) == LEASE_LEADER) {
        /* the subscription is closed, so no sync mark will place these */
        size_t n = queue_filter(&in->queue, keep_placed, NULL);
        in->counters.dropped += n;
        if (in->queue.len > 0)
            return;
        in->releasing = 1;
        lease_release(in->lease, on_lease_released, in);
        return;
    }
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

/* Fills the patterns, names and number texts derived from the settings;
 * returns 0 or -1 with a reason. */
static int ingest_derive(struct ingest *in, char *err, size_t errlen)
{
    const ssehub_config_t *cfg = in->cfg;
    if (redis_url_parse(cfg->redis_url, &in->url, err, errlen) != 0 ||
        redis_url_set_sentinel_password(&in->url, cfg->redis_sentinel_password, err, errlen) != 0)
        return -1;
    if (strcmp(cfg->ingest_prefix, cfg->ingest_json_prefix) == 0) {
        snprintf(err, errlen, "ingest_prefix and ingest_json_prefix must differ");
        return -1;
    }
    /* config_load refuses glob characters in prefixes, so prefix + "*" is exact. */
    if (buf_printf(&in->pattern_plain, "%s*", cfg->ingest_prefix) != 0 ||
        buf_printf(&in->pattern_json, "%s*", cfg->ingest_json_prefix) != 0 ||
        buf_printf(&in->sync_channel, "%sbroker:sync", cfg->prefix) != 0 ||
        buf_printf(&in->leader_key, "%sbroker:leader", cfg->prefix) != 0 ||
        buf_printf(&in->epoch_key, "%sbroker:epoch", cfg->prefix) != 0 ||
        buf_printf(&in->sync_tag, "%s %s", in->pattern_plain.base, in->pattern_json.base) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(in->maxlen_text, sizeof in->maxlen_text, "%ld", cfg->history_max_events);
    snprintf(in->maxage_text, sizeof in->maxage_text, "%ld", cfg->history_max_age);
    snprintf(in->maxbytes_text, sizeof in->maxbytes_text, "%ld", cfg->max_event_bytes);
    in->window = 2.0 * (double)cfg->broker_lease_ms / 1000.0 + 5.0;
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
    lease_callbacks_t cb = {.arg = in,
                            .acquired = on_lease_acquired,
                            .confirmed = on_lease_confirmed,
                            .lost = on_lease_lost,
                            .standby = on_lease_standby,
                            .missing_functions = on_lease_missing_functions,
                            .stalled = on_lease_stalled};
    in->lease = lease_create(loop, cfg->prefix, cfg->broker_lease_ms, &cb);
    if (in->lease == NULL) {
        snprintf(err, errlen, "out of memory");
        ingest_free(in);
        return NULL;
    }
    link_init(&in->sub, in, "subscriber", sub_handshake);
    link_init(&in->lease_link, in, "lease", lease_handshake);
    link_init(&in->boot, in, in->url.sentinel_master[0] ? "sentinel" : "discovery", boot_handshake);
    memset(in->slot_shard, -1, sizeof in->slot_shard);
    ev_timer_init(&in->topology_timer, on_topology_timer, TOPOLOGY_SECONDS, TOPOLOGY_SECONDS);
    ev_timer_init(&in->pause_timer, on_pause_timer, CLUSTER_PAUSE_SECONDS, 0.);
    in->topology_timer.data = in;
    in->pause_timer.data = in;
    ev_timer_init(&in->stats_timer, on_stats_timer, STATS_SECONDS, STATS_SECONDS);
    ev_timer_init(&in->drain_timer, on_drain_timer, DRAIN_SECONDS, 0.);
    ev_timer_init(&in->mark_timer, on_mark_timer, MARK_RETRY_SECONDS, 0.);
    ev_timer_init(&in->trim_timer, on_trim_timer, 0., TRIM_SECONDS);
    in->stats_timer.data = in;
    in->drain_timer.data = in;
    in->mark_timer.data = in;
    in->trim_timer.data = in;
    in->rng = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    return in;
}

void ingest_start(ingest_t *in)
{
    ev_timer_start(in->loop, &in->stats_timer);
    ev_timer_again(in->loop, &in->trim_timer);
    ev_timer_again(in->loop, &in->topology_timer);
    /* the links follow once discovery says where (become_single, apply_cluster) */
    link_connect(&in->boot);
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
    if (lease_role(in->lease) != LEASE_LEADER)
        queue_clear(&in->queue); /* a standby's buffer: the leader stores these */
    log_info(COMPONENT, "stopping",
             json_pack("{s:I, s:I, s:s}", "in_flight", (json_int_t)in->inflight, "queued",
                       (json_int_t)in->queue.len, "role",
                       lease_role(in->lease) == LEASE_LEADER ? "leader" : "standby"));
    ev_timer_start(in->loop, &in->drain_timer);
    ingest_maybe_finish(in);
}

ingest_counters_t ingest_counters(const ingest_t *in)
{
    return in->counters;
}

ingest_status_t ingest_status(const ingest_t *in)
{
    return (ingest_status_t){.queued = in->queue.len,
                             .queued_bytes = in->queue.bytes,
                             .leader = lease_role(in->lease) == LEASE_LEADER,
                             .redis_up = in->sub.ready && shards_ready(in)};
}

void ingest_free(ingest_t *in)
{
    if (in == NULL)
        return;
    in->finished = 1;
    in->aborting = 1;
    if (in->sub.in != NULL) { /* links were initialised */
        link_close(&in->sub);
        link_close(&in->lease_link);
        link_close(&in->boot);
        for (int i = 0; i < MAX_SHARDS; i++)
            if (in->shards[i] != NULL)
                shard_link_free(in, i);
        ev_timer_stop(in->loop, &in->topology_timer);
        ev_timer_stop(in->loop, &in->pause_timer);
        ev_timer_stop(in->loop, &in->stats_timer);
        ev_timer_stop(in->loop, &in->drain_timer);
        ev_timer_stop(in->loop, &in->mark_timer);
        ev_timer_stop(in->loop, &in->trim_timer);
    }
    lease_free(in->lease);
    queue_clear(&in->queue);
    buf_free(&in->pattern_plain);
    buf_free(&in->pattern_json);
    buf_free(&in->sync_channel);
    buf_free(&in->leader_key);
    buf_free(&in->epoch_key);
    buf_free(&in->sync_tag);
    buf_free(&in->scratch);
    free(in);
}
