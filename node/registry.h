/* The node registry (DESIGN §3): every node keeps `Pnode:<node-id>` in
 * Redis, a JSON summary of itself (streams, topics, traffic, state)
 * rewritten every second with a short TTL, and its id in the sorted set
 * `Pnodes` scored by when it last wrote. A node that stops writing (killed,
 * partitioned) expires within REGISTRY_TTL_MS; the index remembers it for
 * REGISTRY_FORGET_MS so the dashboard can show it as gone.
 * GET /cluster answers the registry as JSON for the dashboard page. */
#ifndef SSEHUB_NODE_REGISTRY_H
#define SSEHUB_NODE_REGISTRY_H

#include <h2o.h>

struct node_thread;
struct node_shared;

#define REGISTRY_TTL_MS 5000
#define REGISTRY_FORGET_MS 300000

/* Sets shared->node_id from node_id, or <hostname>:<port of listen>. */
void registry_init(struct node_shared *sh);
/* Writes this node's entry (thread 0, once a second, while its link is up). */
void registry_beat(struct node_thread *th);
/* GET /cluster: {"self": id, "now_ms": .., "nodes": [entry + "alive", ...]}. */
int registry_handle(struct node_thread *th, h2o_req_t *req);

#endif
