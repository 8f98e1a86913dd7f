/* The broker leader lease (DESIGN §3, §7): any number of ssehub-broker
 * processes run; the one holding P broker:leader ("host:pid:epoch") ingests,
 * the others stand by and take over when the key is gone.
 *
 * Acquire: the epoch is the next value of P broker:epoch (ssehub_next, it
 * never goes back), then SET NX PX broker_lease_ms. Renew: every lease/3,
 * ssehub_lease_renew extends the key only while it still holds our value.
 * Release (clean shutdown, or after losing it): ssehub_lease_release deletes
 * it only while it holds our value and tells the standbys on P broker:sync.
 * Standbys look every lease/4, and just after the key's expiry.
 *
 * The leader writes only while its own monotonic clock says the lease it
 * last renewed still runs, less a margin (lease_may_write before every
 * write); the epoch it passes to the publish function fences it in Redis
 * once a newer leader has written a topic. All commands go on the caller's
 * command connection. */
#ifndef SSEHUB_BROKER_LEASE_H
#define SSEHUB_BROKER_LEASE_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct redisAsyncContext;
typedef struct lease lease_t;

enum lease_role {
    LEASE_UNKNOWN = 0, /* not looked at the key yet */
    LEASE_STANDBY,     /* another broker holds it, or we are about to try */
    LEASE_LEADER,      /* we hold it */
};

/* What the lease tells its owner; every function gets arg. */
typedef struct lease_callbacks {
    void *arg;
    /* We hold the lease now (lease_epoch): writes may start. */
    void (*acquired)(void *arg);
    /* Writes may resume: the lease was renewed on a new command connection. */
    void (*confirmed)(void *arg);
    /* We no longer hold the lease; nothing more may be written. reason:
     * "expired" (not renewed in time), "taken" (the key is gone or someone
     * else's), or what the owner passed to lease_step_down. */
    void (*lost)(void *arg, const char *reason);
    /* Another broker holds the lease (its value); called when that changes. */
    void (*standby)(void *arg, const char *holder, size_t len);
    /* Redis answered that the Function library is missing. */
    void (*missing_functions)(void *arg);
    /* A lease command went unanswered for max(3 leases, 5 s): the command
     * connection is stuck and should be dropped. */
    void (*stalled)(void *arg);
} lease_callbacks_t;

/* Returns a lease for the keys under prefix ("ssehub:" -> ssehub:broker:leader),
 * with no connection yet; NULL when out of memory. */
lease_t *lease_create(struct ev_loop *loop, const char *prefix, long lease_ms, const lease_callbacks_t *cb);

/* The command connection is ready (handshake done, library loaded): look
 * at the key, or, as leader, renew before writing again. */
void lease_link_up(lease_t *l, struct redisAsyncContext *ac);
/* On a Redis Cluster the epoch key may live on another master than the
 * lease key: its connection (NULL: use the lease connection). The caller
 * sets it again (or NULL) whenever that connection changes. */
void lease_set_epoch_link(lease_t *l, struct redisAsyncContext *ac);
/* The command connection is gone; answers still due are ignored. */
void lease_link_down(lease_t *l);

enum lease_role lease_role(const lease_t *l);
/* The epoch of the lease we hold or held last (0 before the first). */
uint64_t lease_epoch(const lease_t *l);
/* Our value "host:pid:epoch" (of the last lease we held) as a C string. */
const char *lease_value(const lease_t *l);

/* Returns nonzero when we may write now: leader, renewed on the current
 * connection, and the local clock is before the renewal's deadline. When
 * the deadline has passed, steps down first (lost "expired"). */
int lease_may_write(lease_t *l);

/* Stops leading now (e.g. reason "fenced": a newer leader wrote); the key
 * is released if it still holds our value. No-op when not leader. */
void lease_step_down(lease_t *l, const char *reason);

/* Looks at the key again as soon as possible (the leader said it let go). */
void lease_poll_soon(lease_t *l);

/* Clean shutdown: stops acquiring and renewing, releases the lease when we
 * hold it, then calls done(arg) (at once when there is nothing to release
 * or no connection). */
void lease_release(lease_t *l, void (*done)(void *arg), void *arg);

/* Releases the lease object; the connection must be closed first (its
 * pending answers come back before this). */
void lease_free(lease_t *l);

/* Seconds on the clock every lease decision uses: CLOCK_BOOTTIME (monotonic,
 * and it also counts time suspended), else CLOCK_MONOTONIC. */
double lease_now(void);

#endif
