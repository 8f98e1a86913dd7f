/* Complete HTTP answers (see http_reply.h). */
#include "node/http_reply.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int http_reply_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg)
{
    json_t *o = json_pack("{s:s,s:s}", "error", code, "message", msg);
    char *body = json_dumps(o, JSON_COMPACT);
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, strlen(body));
    free(body);
    json_decref(o);
    return 0;
}

int http_reply_error_retry(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg,
                           long seconds)
{
    char *v = h2o_mem_alloc_pool(&req->pool, 24);
    int n = snprintf(v, 24, "%ld", seconds > 0 ? seconds : 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
    return http_reply_error(req, status, reason, code, msg);
}

int http_reply_text(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
    return 0;
}
