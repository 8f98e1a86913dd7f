/* Mercure authorization on the node: where a request's JWT comes from (the
 * Authorization header, else the `authorization` query parameter, else the
 * mercureAuthorization cookie), the keys that verify it, and what its
 * claims allow (mercure.subscribe / mercure.publish topic selectors). */
#ifndef SSEHUB_NODE_AUTH_H
#define SSEHUB_NODE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/jwt.h"
#include "node/selector.h"

#define AUTH_FORBIDDEN (-100) /* valid token, but the claims do not allow it */

/* The keys of each role: its own key (or jwt_key) and jwt_key_previous. */
typedef struct auth_keys {
    jwt_key_t *publisher[2];
    size_t npublisher;
    jwt_key_t *subscriber[2];
    size_t nsubscriber;
} auth_keys_t;

/* Loads the keys the settings name (for RS256 reading the PEM files);
 * returns 0, or -1 with a message naming the setting. No jwt_key gives no
 * keys: tokens cannot be verified and publishing over HTTP is off. */
int auth_keys_load(const ssehub_config_t *cfg, auth_keys_t *keys, char *err, size_t errlen);
void auth_keys_free(auth_keys_t *keys);

/* What a subscriber's verified token allows. */
typedef struct auth_grant {
    int64_t exp;             /* seconds since the epoch; 0: no expiry */
    selector_t **subscribe;  /* mercure.subscribe */
    size_t nsubscribe;
} auth_grant_t;

/* Finds the request's token; query_token is the decoded `authorization`
 * query parameter (len 0: none). Returns 1 with *token pointing into the
 * request or query_token, 0 when the request carries none. */
int auth_find_token(h2o_req_t *req, const buf_t *query_token, h2o_iovec_t *token);
/* Verifies a subscriber's token; returns 0 with *grant (free with
 * auth_grant_free), or a JWT_* error. */
int auth_subscriber(const auth_keys_t *keys, h2o_iovec_t token, int64_t now, auth_grant_t **grant);
void auth_grant_free(auth_grant_t *g);
/* 1 when the grant's subscribe selectors match the topic. */
int auth_grant_allows(const auth_grant_t *g, const char *topic, size_t len);
/* Verifies a publisher's token and checks that mercure.publish allows
 * every topic; returns 0, a JWT_* error, or AUTH_FORBIDDEN. */
int auth_publisher(const auth_keys_t *keys, h2o_iovec_t token, int64_t now, const h2o_iovec_t *topics, size_t n);
/* A stable error code for a result of the two above. */
const char *auth_error_name(int err);

#endif
