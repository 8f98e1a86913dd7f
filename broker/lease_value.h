/* The broker leader lease's pure parts (DESIGN §3, §6): the value of
 * P broker:leader, "host:pid:epoch", and the timing derived from
 * broker_lease_ms. The state machine that uses them is broker/lease.c. */
#ifndef SSEHUB_BROKER_LEASE_VALUE_H
#define SSEHUB_BROKER_LEASE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Who holds the lease, as read from its value. host points into the
 * parsed text (not NUL-terminated). */
typedef struct lease_holder {
    const char *host;
    size_t host_len;
    long pid;
    uint64_t epoch;
} lease_holder_t;

/* Appends "host:pid:epoch" to out; a ':' or byte outside printable ASCII
 * in host is written as '_' so the value always parses back. Returns 0 or
 * -ENOMEM. */
int lease_value_format(buf_t *out, const char *host, long pid, uint64_t epoch);

/* Parses "host:pid:epoch" from exactly len bytes, splitting at the last two
 * colons; pid and epoch are positive decimals. Returns 0, or -1 with *out
 * left alone. */
int lease_value_parse(const char *s, size_t len, lease_holder_t *out);

/* The leader stops writing this long before the lease it last renewed
 * would run out in Redis: covers a write still travelling to Redis and
 * clock rate differences. lease_ms / 5. */
long lease_margin_ms(long lease_ms);

/* The leader renews this often: lease_ms / 3, so two renewals may fail
 * before the lease runs out. */
long lease_renew_ms(long lease_ms);

/* Seconds after the renewal (or acquisition) was sent at time sent (a
 * monotonic clock in seconds) until which the leader may write. Counting
 * from the send, not the answer, keeps it before the key's expiry in Redis. */
double lease_valid_until(double sent, long lease_ms);

/* Milliseconds a standby waits before looking at the lease again, given
 * the key's remaining time to live (PTTL: -1 no expiry, -2 no key):
 * just past its expiry, but at least every lease_ms / 4. */
long lease_poll_ms(long lease_ms, long long pttl_ms);

#endif
