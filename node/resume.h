/* Mercure resumes by publisher id: a Last-Event-ID that is neither an
 * entry id nor a cursor is looked up in each exact topic's publisher-id
 * index (FCALL_RO ssehub_resolve) before the stream opens. */
#ifndef SSEHUB_NODE_RESUME_H
#define SSEHUB_NODE_RESUME_H

#include <h2o.h>

#include "node/client.h"

struct node_thread;

/* Resolves mid in every topic, then opens the stream with a cursor of what
 * was found: the event's own position in the topics it was published to,
 * the millisecond before it in the others (events of that millisecond may
 * come again; none is lost), or, when no topic knows the id, all retained
 * history with ssehub.gap and Last-Event-ID: earliest. opts is moved in.
 * Returns 0 (the request is answered later), or -1 when the lookups could
 * not be sent (opts untouched). */
int resume_by_mid(struct node_thread *th, h2o_req_t *req, const h2o_iovec_t *topics, size_t ntopics, h2o_iovec_t mid,
                  client_opts_t *opts);

#endif
