/* The broker's ingest: pattern-subscribes to the ingest channel prefixes
 * (sse:*, ssejson:*), validates each message and stores it through the
 * publish Function (XADD + live PUBLISH in one call), pipelined, in order,
 * surviving Redis restarts, FUNCTION DELETE and reconnects (DESIGN §2).
 * Any number may run: the holder of the leader lease (lease.h) stores, the
 * others buffer recent messages and hand them over when they take over. */
#ifndef SSEHUB_BROKER_INGEST_H
#define SSEHUB_BROKER_INGEST_H

#include <stddef.h>

#include "common/config.h"

struct ev_loop;
typedef struct ingest ingest_t;

/* What the ingest has done since it started; logged every 60 s when it
 * changed and when it stops. */
typedef struct ingest_counters {
    unsigned long long ingested;       /* stored: the publish Function returned an id */
    unsigned long long refused_topic;  /* channel named an invalid topic; not stored */
    unsigned long long malformed_json; /* ssejson: payload refused; not stored */
    unsigned long long oversized;      /* data over max_event_bytes; not stored */
    unsigned long long publish_errors; /* Redis refused the publish call */
    unsigned long long dropped;        /* queue full, or still queued at shutdown */
    unsigned long long sent;           /* publish calls sent (as leader) */
    unsigned long long duplicates;     /* already stored (a resend, or by another broker): not stored again */
    unsigned long long fenced;         /* refused: a newer leader had written the topic */
} ingest_counters_t;

/* Returns a new ingest bound to loop and cfg (both must outlive it), not yet
 * connected; NULL with a one-line reason in err when the settings cannot
 * work (bad redis_url, ingest prefixes equal). */
ingest_t *ingest_create(struct ev_loop *loop, const ssehub_config_t *cfg, char *err, size_t errlen);

/* Starts connecting both Redis connections (subscriber and command); they
 * reconnect by themselves with capped, jittered back-off. Logs
 * {"msg":"ready","role":"leader"|"standby"} once the Function library is
 * loaded, both ingest patterns are subscribed (and placed by a sync mark)
 * and the leader lease has been looked at. */
void ingest_start(ingest_t *in);

/* Stops reading new messages, sends what is queued and waits for in-flight
 * replies (at most 5 s; a second call gives up at once), releases the
 * lease when leading (a standby takes over at once), logs the counters,
 * then calls done(arg). */
void ingest_stop(ingest_t *in, void (*done)(void *arg), void *arg);

/* Returns the counters so far. */
ingest_counters_t ingest_counters(const ingest_t *in);

/* What the broker is doing now, for /metrics and /healthz. */
typedef struct ingest_status {
    size_t queued, queued_bytes; /* messages waiting to be sent (or buffered as standby) */
    int leader;                  /* holds the leader lease */
    int redis_up;                /* both Redis connections are ready */
} ingest_status_t;
ingest_status_t ingest_status(const ingest_t *in);

/* Closes any connection left and releases everything; call outside hiredis
 * callbacks (e.g. after ev_run returned). */
void ingest_free(ingest_t *in);

#endif
