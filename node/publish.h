/* POST /.well-known/mercure: publishing over HTTP, Mercure's form (DESIGN
 * §5). Each topic of an update is stored in its own stream with the same
 * publisher id; the answer is that id. */
#ifndef SSEHUB_NODE_PUBLISH_H
#define SSEHUB_NODE_PUBLISH_H

#include <h2o.h>

struct node_thread;

/* Handles one publish request (method already checked to be POST). */
int publish_handle(struct node_thread *th, h2o_req_t *req);

#endif
