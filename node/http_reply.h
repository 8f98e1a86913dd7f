/* Complete (non-stream) HTTP answers of the node: JSON errors with a
 * stable `error` code (DESIGN §5), and small texts. */
#ifndef SSEHUB_NODE_HTTP_REPLY_H
#define SSEHUB_NODE_HTTP_REPLY_H

#include <stddef.h>

#include <h2o.h>

/* Sends {"error": code, "message": msg} with the status; returns 0. */
int http_reply_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg);
/* The same with a Retry-After header of seconds (503 and 429 answers to
 * passing conditions: the client should come back later). */
int http_reply_error_retry(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg,
                           long seconds);
/* Sends body with the content type and Cache-Control: no-store; returns 0. */
int http_reply_text(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len);

#endif
