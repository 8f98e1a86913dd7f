/* POST /.well-known/mercure (see publish.h). */
#include "node/publish.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "broker/envelope.h"
#include "broker/functions.h"
#include "broker/stream_keys.h"
#include "common/log.h"
#include "node/auth.h"
#include "node/http_reply.h"
#include "node/query.h"
#include "node/server.h"

#define PUBLISH_MAX_TOPICS 64
#define MID_MAX 256

/* A publish waiting for its FCALLs; the request may go away meanwhile. */
typedef struct publish_call {
    node_thread_t *th;
    h2o_req_t *req;       /* NULL once the request is gone */
    struct publish_call **ticket;
    unsigned left;        /* replies still due */
    unsigned failed;      /* error replies */
    char error[160];      /* the first error */
    char mid[MID_MAX + 1];
} publish_call_t;

/* The fields of a publish form. */
/* A decoded value: its place in the form's store (len bytes, which may
 * hold NUL, followed by a NUL); off < 0 when absent. */
typedef struct form_value {
    long off;
    size_t len;
} form_value_t;

typedef struct publish_form {
    buf_t store;                         /* decoded values */
    form_value_t topics[PUBLISH_MAX_TOPICS];
    size_t ntopics;
    form_value_t data, id, type, retry;
    int is_private;
} publish_form_t;

static form_value_t form_keep(publish_form_t *f, const buf_t *value)
{
    form_value_t v = {(long)f->store.len, value->len};
    buf_append(&f->store, value->base ? value->base : "", value->len);
    buf_append_char(&f->store, '\0');
    return v;
}

/* Parses the urlencoded body; returns NULL, or an error code with msg. */
static const char *form_parse(const h2o_iovec_t body, publish_form_t *f, char *msg, size_t msglen)
{
    buf_t name = BUF_INIT, value = BUF_INIT;
    const char *cur = body.base, *end = body.base + body.len, *err = NULL;
    int r;
    f->data = f->id = f->type = f->retry = (form_value_t){-1, 0};
    while (err == NULL && (r = query_next(&cur, end, &name, &value)) != 0) {
        if (r < 0) {
            err = "bad_body";
            snprintf(msg, msglen, "malformed percent-encoding in the form");
        } else if (strcmp(name.base, "topic") == 0) {
            if (f->ntopics == PUBLISH_MAX_TOPICS) {
                err = "too_many_topics";
                snprintf(msg, msglen, "at most %d topics per update", PUBLISH_MAX_TOPICS);
            } else {
                f->topics[f->ntopics++] = form_keep(f, &value);
            }
        } else if (strcmp(name.base, "data") == 0) {
            f->data = form_keep(f, &value);
        } else if (strcmp(name.base, "id") == 0) {
            f->id = form_keep(f, &value);
        } else if (strcmp(name.base, "type") == 0) {
            f->type = form_keep(f, &value);
        } else if (strcmp(name.base, "retry") == 0) {
            f->retry = form_keep(f, &value);
        } else if (strcmp(name.base, "private") == 0) {
            f->is_private = 1;
        }
    }
    buf_free(&name);
    buf_free(&value);
    return err;
}

/* The n-th topic of the form. */
static h2o_iovec_t form_topic(const publish_form_t *f, size_t i)
{
    return h2o_iovec_init(f->store.base + f->topics[i].off, f->topics[i].len);
}

/* A value's bytes (NUL-terminated too), or NULL when absent. */
static const char *form_str(const publish_form_t *f, form_value_t v)
{
    return v.off < 0 ? NULL : f->store.base + v.off;
}

/* Checks the form's values; returns NULL, or an error code with msg. */
static const char *form_check(node_thread_t *th, const publish_form_t *f, char *msg, size_t msglen)
{
    const ssehub_config_t *cfg = th->shared->cfg;
    if (f->ntopics == 0) {
        snprintf(msg, msglen, "give at least one topic");
        return "missing_topic";
    }
    for (size_t i = 0; i < f->ntopics; i++) {
        h2o_iovec_t t = form_topic(f, i);
        int v = topic_validate(t.base, t.len, (size_t)cfg->max_topic_length);
        if (v != TOPIC_OK) {
            snprintf(msg, msglen, "topic is %s", topic_error_name(v));
            return "bad_topic";
        }
    }
    if (f->data.off >= 0 && f->data.len > (size_t)cfg->max_event_bytes) {
        snprintf(msg, msglen, "data is %zu bytes, more than max_event_bytes (%ld)", f->data.len, cfg->max_event_bytes);
        return "too_large";
    }
    const char *id = form_str(f, f->id), *type = form_str(f, f->type), *retry = form_str(f, f->retry);
    if (id != NULL && (f->id.len > MID_MAX || envelope_check_mid(id, f->id.len) != 0)) {
        snprintf(msg, msglen, "id must be 1..%d bytes without CR, LF or NUL, not starting with #", MID_MAX);
        return "bad_id";
    }
    if (type != NULL && envelope_check_type(type, f->type.len) != 0) {
        snprintf(msg, msglen, "type must be 1..256 bytes without CR, LF or NUL");
        return "bad_type";
    }
    if (retry != NULL) {
        size_t n = f->retry.len;
        int ok = n >= 1 && n <= 10;
        for (size_t i = 0; ok && i < n; i++)
            ok = retry[i] >= '0' && retry[i] <= '9';
        if (!ok) {
            snprintf(msg, msglen, "retry must be milliseconds (1..10 digits)");
            return "bad_retry";
        }
    }
    return NULL;
}

/* Writes a random (version 4) UUID URN, as Mercure hubs name updates. */
static void uuid_urn(char out[MID_MAX + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)rand();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, MID_MAX + 1,
             "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- answering ------------------------------------------------------------------ */

static void on_request_gone(void *p)
{
    publish_call_t *call = *(publish_call_t **)p;
    if (call != NULL)
        call->req = NULL;
}

static void publish_finish(publish_call_t *call)
{
    h2o_req_t *req = call->req;
    call->th->stats.v[call->failed ? STAT_PUBLISH_ERROR : STAT_PUBLISH_OK]++;
    if (req != NULL) {
        *call->ticket = NULL;
        if (call->failed)
            http_reply_error_retry(req, 503, "Service Unavailable", "store_failed", call->error, 1);
        else
            http_reply_text(req, 200, "OK", "text/plain; charset=utf-8", call->mid, strlen(call->mid));
    }
    free(call);
}

static int on_publish_reply(redis_conn_t *conn, redisReply *rep, void *data)
{
    publish_call_t *call = data;
    (void)conn;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        if (call->failed++ == 0)
            snprintf(call->error, sizeof(call->error), "storing the update failed: %s",
                     rep == NULL ? "Redis link lost" : rep->str);
        if (rep != NULL)
            log_warn("node", "publish failed", json_pack("{s:s}", "error", rep->str));
    }
    if (--call->left == 0)
        publish_finish(call);
    return 0;
}

/* Sends one FCALL ssehub_publish per topic; returns how many were sent. */
static unsigned publish_send(node_thread_t *th, const publish_form_t *f, publish_call_t *call, const char *topics_json)
{
    const ssehub_config_t *cfg = th->shared->cfg;
    char maxlen[24], maxage[24], maxbytes[24];
    snprintf(maxbytes, sizeof(maxbytes), "%ld", cfg->max_event_bytes);
    snprintf(maxlen, sizeof(maxlen), "%ld", cfg->history_max_events);
    snprintf(maxage, sizeof(maxage), "%ld", cfg->history_max_age);
    buf_t skey = BUF_INIT, mkey = BUF_INIT;
    unsigned sent = 0;
    const char *data = form_str(f, f->data), *type = form_str(f, f->type), *retry = form_str(f, f->retry);
    for (size_t i = 0; i < f->ntopics; i++) {
        h2o_iovec_t t = form_topic(f, i);
        buf_clear(&skey);
        buf_clear(&mkey);
        if (topic_key(&skey, cfg->prefix, t.base, t.len, TOPIC_KEY_STREAM) != 0 ||
            topic_key(&mkey, cfg->prefix, t.base, t.len, TOPIC_KEY_META) != 0)
            break;
        const char *argv[20];
        size_t lens[20];
        int argc = 0;
#define ARG(s, n) (argv[argc] = (s), lens[argc] = (n), argc++)
#define ARGS(s) ARG((s), strlen(s))
        ARGS("FCALL");
        ARGS(SSEHUB_FN_PUBLISH);
        ARGS("2");
        ARG(skey.base, skey.len);
        ARG(mkey.base, mkey.len);
        ARG(data != NULL ? data : "", f->data.len);
        if (type != NULL) {
            ARGS("type");
            ARG(type, f->type.len);
        }
        if (retry != NULL) {
            ARGS("retry");
            ARG(retry, f->retry.len);
        }
        ARGS("id");
        ARGS(call->mid);
        if (f->is_private) {
            ARGS("private");
            ARGS("1");
        }
        if (topics_json != NULL) {
            ARGS("topics");
            ARGS(topics_json);
        }
        ARGS("maxlen");
        ARGS(maxlen);
        ARGS("maxage");
        ARGS(maxage);
        ARGS("maxbytes");
        ARGS(maxbytes);
#undef ARG
#undef ARGS
        if (router_command(th, skey.base, skey.len, on_publish_reply, call, argc, argv, lens) != 0)
            break;
        sent++;
    }
    buf_free(&skey);
    buf_free(&mkey);
    return sent;
}

/* A JSON array of the form's topics, for an update with several. */
static char *topics_json(const publish_form_t *f)
{
    if (f->ntopics < 2)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < f->ntopics; i++) {
        h2o_iovec_t t = form_topic(f, i);
        json_array_append_new(a, json_stringn(t.base, t.len));
    }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* The `authorization` query parameter of the request URL, decoded. */
static void query_token(h2o_req_t *req, buf_t *out)
{
    if (req->query_at == SIZE_MAX)
        return;
    const char *cur = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    buf_t name = BUF_INIT, value = BUF_INIT;
    while (query_next(&cur, end, &name, &value) == 1) {
        if (strcmp(name.base, "authorization") == 0) {
            buf_clear(out);
            buf_append(out, value.base, value.len);
        }
    }
    buf_free(&name);
    buf_free(&value);
}

int publish_handle(node_thread_t *th, h2o_req_t *req)
{
    node_shared_t *sh = th->shared;
    if (sh->keys.npublisher == 0)
        return http_reply_error(req, 403, "Forbidden", "publishing_off",
                                "publishing over HTTP is off: the node has no jwt_key");
    ssize_t ct = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct >= 0 && !h2o_lcstris(req->headers.entries[ct].value.base,
                                 req->headers.entries[ct].value.len < 33 ? req->headers.entries[ct].value.len : 33,
                                 H2O_STRLIT("application/x-www-form-urlencoded")))
        return http_reply_error(req, 415, "Unsupported Media Type", "bad_content_type",
                                "send the update as application/x-www-form-urlencoded");
    publish_form_t form = {.store = BUF_INIT};
    buf_t qtoken = BUF_INIT;
    char msg[200];
    int ret;
    const char *err = form_parse(req->entity, &form, msg, sizeof(msg));
    if (err == NULL)
        err = form_check(th, &form, msg, sizeof(msg));
    query_token(req, &qtoken);
    h2o_iovec_t token;
    h2o_iovec_t topics[PUBLISH_MAX_TOPICS];
    for (size_t i = 0; i < form.ntopics; i++)
        topics[i] = form_topic(&form, i);
    int a = auth_find_token(req, &qtoken, &token) ? auth_publisher(&sh->keys, token, (int64_t)time(NULL), topics,
                                                                   form.ntopics)
                                                  : JWT_MALFORMED;
    if (a != 0)
        th->stats.v[STAT_REFUSED_AUTH]++;
    else if (err != NULL)
        th->stats.v[STAT_REFUSED_BAD_REQUEST]++;
    if (a == AUTH_FORBIDDEN) {
        ret = http_reply_error(req, 403, "Forbidden", "forbidden",
                               "the token's mercure.publish does not allow every topic of the update");
    } else if (a != 0) {
        ret = http_reply_error(req, 401, "Unauthorized", auth_error_name(a),
                               "publishing needs a valid token (Authorization: Bearer, authorization= or the mercureAuthorization cookie)");
    } else if (err != NULL && strcmp(err, "too_large") == 0) {
        ret = http_reply_error(req, 413, "Payload Too Large", err, msg);
    } else if (err != NULL) {
        ret = http_reply_error(req, 400, "Bad Request", err, msg);
    } else if (!th->link_ready || atomic_load(&sh->stopping)) {
        ret = http_reply_error_retry(req, 503, "Service Unavailable", "redis_unavailable", "no Redis link, retry later", 1);
    } else {
        publish_call_t *call = calloc(1, sizeof(*call));
        char *tj = topics_json(&form);
        if (call == NULL) {
            ret = http_reply_error_retry(req, 503, "Service Unavailable", "out_of_memory", "retry later", 1);
        } else {
            const char *id = form_str(&form, form.id);
            if (id != NULL)
                snprintf(call->mid, sizeof(call->mid), "%s", id);
            else
                uuid_urn(call->mid);
            call->th = th;
            call->req = req;
            call->ticket = h2o_mem_alloc_shared(&req->pool, sizeof(*call->ticket), on_request_gone);
            *call->ticket = call;
            call->left = (unsigned)form.ntopics;
            unsigned sent = publish_send(th, &form, call, tj);
            if (sent < form.ntopics) {
                /* the rest will never answer */
                call->failed++;
                snprintf(call->error, sizeof(call->error), "the Redis link went down while storing the update");
                call->left -= (unsigned)form.ntopics - sent;
                if (call->left == 0)
                    publish_finish(call);
            }
            ret = 0;
        }
        free(tj);
    }
    buf_free(&form.store);
    buf_free(&qtoken);
    return ret;
}
