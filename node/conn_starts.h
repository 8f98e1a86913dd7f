/* Stream starts per HTTP/2 connection and second, to cut connections that
 * open and reset streams in a loop (HTTP/2 Rapid Reset, CVE-2023-44487),
 * which h2o 2.2.5 does not limit itself. One table per worker thread,
 * keyed by h2o's connection id; an entry lives while its connection keeps
 * starting streams and is forgotten a second or two after it stops. */
#ifndef SSEHUB_NODE_CONN_STARTS_H
#define SSEHUB_NODE_CONN_STARTS_H

#include <stdint.h>

typedef struct conn_starts_slot {
    uint64_t id;     /* h2o connection id + 1; 0 = free */
    uint64_t second; /* the second counted */
    uint32_t n;      /* starts in that second */
} conn_starts_slot_t;

typedef struct conn_starts {
    conn_starts_slot_t *slots;
    uint32_t cap, used;
} conn_starts_t;

/* Counts one stream start of connection id at now_ms; returns 1 when the
 * connection started more than limit streams in this second (every later
 * start in it answers 1 too), 0 otherwise (also when out of memory). */
int conn_starts_hit(conn_starts_t *t, uint64_t id, uint64_t now_ms, uint32_t limit);
/* Forgets connections that started nothing in the last second. */
void conn_starts_expire(conn_starts_t *t, uint64_t now_ms);
void conn_starts_dispose(conn_starts_t *t);

#endif
