/* The broker leader lease: a small state machine on the command connection
 * (see lease.h). One step at a time is in flight (a look, an acquisition,
 * a renewal or a release); each answer decides the next step and when. */
#include "broker/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "broker/functions.h"
#include "broker/lease_value.h"
#include "common/buf.h"
#include "common/log.h"

#define COMPONENT "broker"
#define RETRY_MS 100      /* after a refused or failed lease command */
#define STALL_MIN_MS 5000 /* a step unanswered this long (or 3 leases) = stuck link */

/* Which command an answer belongs to. */
enum lease_op_kind { OP_GET, OP_PTTL, OP_EPOCH, OP_SET, OP_RENEW, OP_RELEASE };

/* One command in flight: answers for an older connection are ignored. */
typedef struct lease_op {
    struct lease *l;
    unsigned gen;
    enum lease_op_kind kind;
    uint64_t epoch; /* OP_SET, OP_RENEW: the epoch it is about */
    double sent;    /* lease_now() when it was sent */
} lease_op_t;

struct lease {
    struct ev_loop *loop;
    long lease_ms;
    lease_callbacks_t cb;
    buf_t key, epoch_key, channel; /* P broker:leader, P broker:epoch, P broker:sync */
    char host[256];
    long pid;
    buf_t value;     /* "host:pid:epoch" of the lease we hold or held last */
    buf_t candidate; /* the value an acquisition in flight tries to set */
    uint64_t epoch;
    enum lease_role role;
    int confirmed;      /* leader, and renewed (or acquired) on the current connection */
    int stale;          /* stepped down: our value may still be in the key, release it */
    double valid_until; /* leader: lease_now() before which we may write */
    redisAsyncContext *ac;
    redisAsyncContext *epoch_ac; /* Redis Cluster: the epoch key's master, when not ac's */
    unsigned gen; /* bumped when the connection changes */
    int busy;     /* a step is in flight */
    double busy_since;
    int hurry;      /* look again as soon as the step in flight ends */
    int seen_state; /* answer of the last GET: 0 none, 1 value, 2 no key, 3 error */
    buf_t seen;     /* its value */
    buf_t holder;   /* the holder last reported through cb.standby */
    int releasing;  /* clean shutdown: release, then done */
    void (*release_done)(void *arg);
    void *release_arg;
    double last_error_log;
    ev_timer next;     /* the next step */
    ev_timer expiry;   /* leader: the local deadline */
    ev_timer watchdog; /* a step unanswered for too long */
};

static void lease_kick(struct lease *l);

/* ---- helpers ------------------------------------------------------------- */

double lease_now(void)
{
    struct timespec ts;
#ifdef CLOCK_BOOTTIME
    if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the next step after ms milliseconds (0: on the next loop turn). */
static void lease_schedule(struct lease *l, double ms)
{
    ev_timer_stop(l->loop, &l->next);
    ev_timer_set(&l->next, ms / 1000.0, 0.);
    ev_timer_start(l->loop, &l->next);
}

/* Ends the step in flight and schedules the next one after ms. */
static void lease_step_done(struct lease *l, double ms)
{
    l->busy = 0;
    ev_timer_stop(l->loop, &l->watchdog);
    if (l->hurry || l->releasing) {
        l->hurry = 0;
        ms = 0;
    }
    lease_schedule(l, ms);
}

/* Logs a refused lease command at most once a second. */
static void lease_log_error(struct lease *l, const char *what, const redisReply *reply)
{
    double now = lease_now();
    if (now - l->last_error_log < 1.0)
        return;
    l->last_error_log = now;
    const char *text = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected answer";
    log_warn(COMPONENT, "lease command failed", json_pack("{s:s, s:s}", "command", what, "error", text));
}

/* Handles an error answer: reload the library when it is missing. */
static void lease_refused(struct lease *l, const char *what, const redisReply *reply)
{
    lease_log_error(l, what, reply);
    if (reply->type == REDIS_REPLY_ERROR && functions_missing_error(reply->str, reply->len) &&
        l->cb.missing_functions)
        l->cb.missing_functions(l->cb.arg);
}

static void on_lease_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends one command of the current step; returns 0, or -1 when the
 * connection does not take it (it is closing). */
static int lease_send(struct lease *l, enum lease_op_kind kind, uint64_t epoch, int argc, const char **argv,
                      const size_t *lens)
{
    redisAsyncContext *ac = kind == OP_EPOCH && l->epoch_ac != NULL ? l->epoch_ac : l->ac;
    lease_op_t *op = malloc(sizeof *op);
    if (op == NULL)
        return -1;
    *op = (lease_op_t){.l = l, .gen = l->gen, .kind = kind, .epoch = epoch, .sent = lease_now()};
    if (redisAsyncCommandArgv(ac, on_lease_reply, op, argc, argv, lens) != REDIS_OK) {
        free(op);
        return -1;
    }
    return 0;
}

/* Starts a step: marks it in flight and arms the watchdog. */
static void lease_step_begin(struct lease *l)
{
    double stall = 3.0 * (double)l->lease_ms / 1000.0;
    l->busy = 1;
    l->busy_since = lease_now();
    ev_timer_stop(l->loop, &l->next);
    ev_timer_stop(l->loop, &l->watchdog);
    ev_timer_set(&l->watchdog, stall > STALL_MIN_MS / 1000.0 ? stall : STALL_MIN_MS / 1000.0, 0.);
    ev_timer_start(l->loop, &l->watchdog);
}

/* ---- leading ------------------------------------------------------------- */

/* Arms the local deadline timer at valid_until. */
static void lease_arm_expiry(struct lease *l)
{
    double left = l->valid_until - lease_now();
    ev_timer_stop(l->loop, &l->expiry);
    ev_timer_set(&l->expiry, left > 0 ? left : 0., 0.);
    ev_timer_start(l->loop, &l->expiry);
}

void lease_step_down(lease_t *l, const char *reason)
{
    if (l->role != LEASE_LEADER)
        return;
    l->role = LEASE_STANDBY;
    l->confirmed = 0;
    l->stale = 1;
    ev_timer_stop(l->loop, &l->expiry);
    buf_clear(&l->holder); /* report the next holder, even if it is us again */
    if (!l->busy && l->ac != NULL)
        lease_schedule(l, 0);
    if (l->cb.lost)
        l->cb.lost(l->cb.arg, reason);
}

int lease_may_write(lease_t *l)
{
    if (l->role != LEASE_LEADER || !l->confirmed)
        return 0;
    if (lease_now() < l->valid_until)
        return 1;
    lease_step_down(l, "expired");
    return 0;
}

/* The local deadline came: step down unless a renewal moved it. */
static void on_expiry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct lease *l = w->data;
    if (l->role != LEASE_LEADER)
        return;
    if (lease_now() >= l->valid_until)
        lease_step_down(l, "expired");
    else
        lease_arm_expiry(l);
}

/* Sends the renewal of the lease we hold. */
static void send_renew(struct lease *l)
{
    char ms[24];
    const char *argv[6] = {"FCALL", SSEHUB_FN_LEASE_RENEW, "1", l->key.base, l->value.base, ms};
    size_t lens[6] = {5,
                      strlen(SSEHUB_FN_LEASE_RENEW),
                      1,
                      l->key.len,
                      l->value.len,
                      (size_t)snprintf(ms, sizeof ms, "%ld", l->lease_ms)};
    lease_step_begin(l);
    if (lease_send(l, OP_RENEW, l->epoch, 6, argv, lens) != 0)
        lease_step_done(l, RETRY_MS);
}

/* Renewal answered: 1 extends the deadline (from when it was sent), 0 means
 * the key is gone or someone else's. */
static void on_renewed(struct lease *l, const redisReply *reply, const lease_op_t *op)
{
    long every = lease_renew_ms(l->lease_ms);
    if (l->role != LEASE_LEADER || op->epoch != l->epoch) {
        lease_step_done(l, 0);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER) {
        lease_refused(l, "renew", reply);
        lease_step_done(l, RETRY_MS < every ? RETRY_MS : every);
        return;
    }
    if (reply->integer != 1) {
        lease_step_done(l, 0);
        lease_step_down(l, "taken");
        return;
    }
    double until = lease_valid_until(op->sent, l->lease_ms);
    if (until > l->valid_until)
        l->valid_until = until;
    lease_arm_expiry(l);
    lease_step_done(l, every);
    if (!l->confirmed) {
        l->confirmed = 1;
        if (l->cb.confirmed)
            l->cb.confirmed(l->cb.arg);
    }
}

/* ---- looking and acquiring ----------------------------------------------- */

/* Sends GET and PTTL of the key, pipelined; the PTTL answer decides. */
static void send_look(struct lease *l)
{
    const char *get[2] = {"GET", l->key.base}, *pttl[2] = {"PTTL", l->key.base};
    size_t get_lens[2] = {3, l->key.len}, pttl_lens[2] = {4, l->key.len};
    lease_step_begin(l);
    l->seen_state = 0;
    if (lease_send(l, OP_GET, 0, 2, get, get_lens) != 0 || lease_send(l, OP_PTTL, 0, 2, pttl, pttl_lens) != 0)
        lease_step_done(l, RETRY_MS);
}

/* Keeps the GET answer for the PTTL answer that follows it. */
static void on_got(struct lease *l, const redisReply *reply)
{
    buf_clear(&l->seen);
    if (reply->type == REDIS_REPLY_STRING && buf_append(&l->seen, reply->str, reply->len) == 0)
        l->seen_state = 1;
    else if (reply->type == REDIS_REPLY_NIL)
        l->seen_state = 2;
    else
        l->seen_state = 3;
}

/* Asks for the next epoch (the key was free). */
static void send_epoch(struct lease *l)
{
    const char *argv[4] = {"FCALL", SSEHUB_FN_NEXT, "1", l->epoch_key.base};
    size_t lens[4] = {5, strlen(SSEHUB_FN_NEXT), 1, l->epoch_key.len};
    if (lease_send(l, OP_EPOCH, 0, 4, argv, lens) != 0)
        lease_step_done(l, RETRY_MS);
}

/* Someone else holds the lease: report it when it changed, look again later. */
static void on_held_elsewhere(struct lease *l, long long pttl)
{
    int changed = l->role != LEASE_STANDBY || l->holder.len != l->seen.len ||
                  (l->seen.len > 0 && memcmp(l->holder.base, l->seen.base, l->seen.len) != 0);
    l->role = LEASE_STANDBY;
    lease_step_done(l, (double)lease_poll_ms(l->lease_ms, pttl));
    if (changed) {
        buf_clear(&l->holder);
        buf_append(&l->holder, l->seen.base, l->seen.len);
        if (l->cb.standby)
            l->cb.standby(l->cb.arg, l->seen.base, l->seen.len);
    }
}

/* The look is complete: try to acquire a free key, release our own stale
 * value, or wait for the holder's expiry. */
static void on_looked(struct lease *l, const redisReply *reply)
{
    if (l->releasing) {
        lease_step_done(l, 0);
    } else if (l->seen_state == 3 || reply->type != REDIS_REPLY_INTEGER) {
        lease_refused(l, "look", reply);
        lease_step_done(l, RETRY_MS);
    } else if (l->seen_state == 2) {
        send_epoch(l);
    } else if (l->value.len > 0 && l->seen.len == l->value.len &&
               memcmp(l->seen.base, l->value.base, l->value.len) == 0) {
        l->stale = 1; /* ours from before a step-down: free it first */
        lease_step_done(l, 0);
    } else {
        on_held_elsewhere(l, reply->integer);
    }
}

/* A new epoch came: try SET NX PX with it. */
static void on_epoch(struct lease *l, const redisReply *reply)
{
    if (l->releasing) {
        lease_step_done(l, 0);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
        lease_refused(l, "epoch", reply);
        lease_step_done(l, RETRY_MS);
        return;
    }
    uint64_t epoch = (uint64_t)reply->integer;
    char ms[24];
    buf_clear(&l->candidate);
    if (lease_value_format(&l->candidate, l->host, l->pid, epoch) != 0) {
        lease_step_done(l, RETRY_MS);
        return;
    }
    const char *argv[6] = {"SET", l->key.base, l->candidate.base, "NX", "PX", ms};
    size_t lens[6] = {3, l->key.len, l->candidate.len,
                      2, 2,          (size_t)snprintf(ms, sizeof ms, "%ld", l->lease_ms)};
    if (lease_send(l, OP_SET, epoch, 6, argv, lens) != 0)
        lease_step_done(l, RETRY_MS);
}

/* SET NX answered: OK makes us leader, nil means another broker was first. */
static void on_set(struct lease *l, const redisReply *reply, const lease_op_t *op)
{
    if (reply->type == REDIS_REPLY_NIL) {
        lease_step_done(l, 0); /* look again: report who won */
        return;
    }
    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0) {
        lease_refused(l, "acquire", reply);
        lease_step_done(l, RETRY_MS);
        return;
    }
    buf_t swap = l->value;
    l->value = l->candidate;
    l->candidate = swap;
    l->epoch = op->epoch;
    if (l->releasing) { /* won it while shutting down: give it back */
        l->stale = 1;
        lease_step_done(l, 0);
        return;
    }
    l->role = LEASE_LEADER;
    l->confirmed = 1;
    l->stale = 0;
    l->valid_until = lease_valid_until(op->sent, l->lease_ms);
    lease_arm_expiry(l);
    lease_step_done(l, (double)lease_renew_ms(l->lease_ms));
    if (l->cb.acquired)
        l->cb.acquired(l->cb.arg);
}

/* ---- releasing ----------------------------------------------------------- */

/* Sends the compare-and-delete of our value, announcing it to standbys. */
static void send_release(struct lease *l)
{
    const char *argv[6] = {"FCALL",     SSEHUB_FN_LEASE_RELEASE, "1",
                           l->key.base, l->value.base,           l->channel.base};
    size_t lens[6] = {5, strlen(SSEHUB_FN_LEASE_RELEASE), 1, l->key.len, l->value.len, l->channel.len};
    lease_step_begin(l);
    if (lease_send(l, OP_RELEASE, l->epoch, 6, argv, lens) != 0)
        lease_step_done(l, RETRY_MS);
}

/* Calls the release callback once. */
static void lease_released(struct lease *l)
{
    void (*done)(void *) = l->release_done;
    l->release_done = NULL;
    if (done)
        done(l->release_arg);
}

/* Release answered (1: it was ours and is gone; 0: it was not ours). */
static void on_release(struct lease *l, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_INTEGER) {
        lease_refused(l, "release", reply);
        if (!l->releasing) {
            lease_step_done(l, RETRY_MS);
            return;
        }
    }
    l->stale = 0;
    if (l->releasing && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        log_info(COMPONENT, "lease released", json_pack("{s:s}", "leader", l->value.base));
    lease_step_done(l, 0);
    if (l->releasing)
        lease_released(l);
}

/* ---- the step machine ----------------------------------------------------- */

/* Routes an answer to its step; answers for an older connection, and the
 * empty answers of a closing one, are dropped. */
static void on_lease_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    lease_op_t *op = privdata;
    struct lease *l = op->l;
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL && op->kind == OP_EPOCH && op->gen == l->gen && ac == l->epoch_ac && l->busy) {
        free(op); /* the epoch key's own connection went away: try again */
        lease_step_done(l, RETRY_MS);
        return;
    }
    if (reply == NULL || op->gen != l->gen) {
        free(op);
        return;
    }
    switch (op->kind) {
    case OP_GET:
        on_got(l, reply);
        break;
    case OP_PTTL:
        on_looked(l, reply);
        break;
    case OP_EPOCH:
        on_epoch(l, reply);
        break;
    case OP_SET:
        on_set(l, reply, op);
        break;
    case OP_RENEW:
        on_renewed(l, reply, op);
        break;
    case OP_RELEASE:
        on_release(l, reply);
        break;
    }
    free(op);
}

/* Starts the step the state calls for, unless one is in flight. */
static void lease_kick(struct lease *l)
{
    if (l->ac == NULL || l->busy)
        return;
    if (l->role == LEASE_LEADER)
        send_renew(l);
    else if (l->stale)
        send_release(l);
    else if (l->releasing)
        lease_released(l);
    else
        send_look(l);
}

static void on_next_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    lease_kick(w->data);
}

/* A step went unanswered too long: the owner drops the connection. */
static void on_watchdog_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct lease *l = w->data;
    if (!l->busy || l->ac == NULL)
        return;
    log_warn(COMPONENT, "lease command unanswered, dropping the connection",
             json_pack("{s:f}", "waited_s", lease_now() - l->busy_since));
    if (l->cb.stalled)
        l->cb.stalled(l->cb.arg);
}

/* ---- public -------------------------------------------------------------- */

lease_t *lease_create(struct ev_loop *loop, const char *prefix, long lease_ms, const lease_callbacks_t *cb)
{
    struct lease *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->loop = loop;
    l->lease_ms = lease_ms;
    l->cb = *cb;
    l->pid = (long)getpid();
    if (gethostname(l->host, sizeof l->host - 1) != 0 || l->host[0] == '\0')
        snprintf(l->host, sizeof l->host, "localhost");
    if (buf_printf(&l->key, "%sbroker:leader", prefix) != 0 ||
        buf_printf(&l->epoch_key, "%sbroker:epoch", prefix) != 0 ||
        buf_printf(&l->channel, "%sbroker:sync", prefix) != 0 || buf_append_str(&l->value, "") != 0) {
        lease_free(l);
        return NULL;
    }
    ev_timer_init(&l->next, on_next_timer, 0., 0.);
    ev_timer_init(&l->expiry, on_expiry_timer, 0., 0.);
    ev_timer_init(&l->watchdog, on_watchdog_timer, 0., 0.);
    l->next.data = l->expiry.data = l->watchdog.data = l;
    return l;
}

void lease_link_up(lease_t *l, struct redisAsyncContext *ac)
{
    l->ac = ac;
    l->gen++;
    l->busy = 0;
    l->confirmed = 0; /* a leader renews on the new connection before writing */
    ev_timer_stop(l->loop, &l->watchdog);
    lease_schedule(l, 0);
}

void lease_set_epoch_link(lease_t *l, struct redisAsyncContext *ac)
{
    l->epoch_ac = ac;
}

void lease_link_down(lease_t *l)
{
    l->ac = NULL;
    l->gen++;
    l->busy = 0;
    l->confirmed = 0;
    ev_timer_stop(l->loop, &l->next);
    ev_timer_stop(l->loop, &l->watchdog);
    if (l->releasing)
        lease_released(l); /* the key expires by itself */
}

enum lease_role lease_role(const lease_t *l)
{
    return l->role;
}

uint64_t lease_epoch(const lease_t *l)
{
    return l->epoch;
}

const char *lease_value(const lease_t *l)
{
    return l->value.base;
}

void lease_poll_soon(lease_t *l)
{
    if (l->role == LEASE_LEADER)
        return;
    if (l->busy)
        l->hurry = 1;
    else if (l->ac != NULL)
        lease_schedule(l, 0);
}

void lease_release(lease_t *l, void (*done)(void *arg), void *arg)
{
    l->releasing = 1;
    l->release_done = done;
    l->release_arg = arg;
    if (l->role == LEASE_LEADER) {
        l->role = LEASE_STANDBY;
        l->confirmed = 0;
        l->stale = 1;
        ev_timer_stop(l->loop, &l->expiry);
    }
    if (l->ac == NULL || (!l->stale && !l->busy)) {
        lease_released(l);
        return;
    }
    if (!l->busy)
        lease_schedule(l, 0);
}

void lease_free(lease_t *l)
{
    if (l == NULL)
        return;
    ev_timer_stop(l->loop, &l->next);
    ev_timer_stop(l->loop, &l->expiry);
    ev_timer_stop(l->loop, &l->watchdog);
    buf_free(&l->key);
    buf_free(&l->epoch_key);
    buf_free(&l->channel);
    buf_free(&l->value);
    buf_free(&l->candidate);
    buf_free(&l->seen);
    buf_free(&l->holder);
    free(l);
}
