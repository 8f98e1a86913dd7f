/* The broker's small HTTP port (metrics_listen): GET /metrics (Prometheus
 * text format) and GET /healthz, one short request per connection, on the
 * broker's libev loop. */
#ifndef SSEHUB_BROKER_METRICS_HTTP_H
#define SSEHUB_BROKER_METRICS_HTTP_H

#include <stddef.h>

#include "broker/ingest.h"

struct ev_loop;
typedef struct metrics_http metrics_http_t;

/* Listens on HOST:PORT and answers from the ingest's counters and status;
 * returns NULL with a one-line reason in err when the address cannot be
 * bound. */
metrics_http_t *metrics_http_start(struct ev_loop *loop, const char *listen, const ingest_t *in, char *err,
                                   size_t errlen);
/* Closes the port and every connection still open. */
void metrics_http_stop(metrics_http_t *m);

/* Appends the broker's exposition (exposed for tests). */
struct buf;
void metrics_http_render(const ingest_t *in, struct buf *out);

#endif
