/* URL query strings (application/x-www-form-urlencoded, as browsers'
 * URLSearchParams writes them): pure functions. */
#ifndef SSEHUB_NODE_QUERY_H
#define SSEHUB_NODE_QUERY_H

#include <stddef.h>

#include "common/buf.h"

/* Walks "a=1&b=2" pair by pair: *cur starts at the query (without '?') and
 * advances. On each call, returns 1 with the decoded name and value in the
 * (cleared) bufs, 0 when no pairs are left, -1 on a malformed escape.
 * Empty pairs ("a=1&&b=2") are skipped; a pair without '=' has an empty
 * value. */
int query_next(const char **cur, const char *end, buf_t *name, buf_t *value);

#endif
