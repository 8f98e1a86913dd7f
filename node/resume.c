/* Mercure resumes by publisher id (see resume.h). */
#include "node/resume.h"

#include <stdlib.h>
#include <string.h>

#include "broker/functions.h"
#include "broker/stream_keys.h"
#include "common/log.h"
#include "node/cursor.h"
#include "node/http_reply.h"
#include "node/ip_limit.h"
#include "node/server.h"

/* A stream waiting for its lookups; the request may go away meanwhile. */
typedef struct resume_call {
    node_thread_t *th;
    h2o_req_t *req; /* NULL once gone */
    struct resume_call **ticket;
    client_opts_t opts;
    size_t ntopics, left;
    h2o_iovec_t *topics;  /* into names */
    stream_id_t *found;   /* per topic: the position, when has[i] */
    char *has;
    char *names;
} resume_call_t;

/* One lookup's answer for the i-th topic. */
typedef struct resume_slot {
    resume_call_t *call;
    size_t i;
} resume_slot_t;

static void resume_free(resume_call_t *r)
{
    if (r->opts.patterns != NULL) {
        for (size_t i = 0; i < r->opts.npatterns; i++)
            selector_free(r->opts.patterns[i]);
        free(r->opts.patterns);
    }
    auth_grant_free(r->opts.grant);
    ip_limit_release(r->opts.ip);
    free((char *)r->opts.requested_id);
    free(r->topics);
    free(r->found);
    free(r->has);
    free(r->names);
    free(r);
}

static void on_request_gone(void *p)
{
    resume_call_t *r = *(resume_call_t **)p;
    if (r != NULL)
        r->req = NULL;
}

/* Builds the cursor of the positions found: each topic's own, the
 * millisecond before the earliest one for the others. */
static void resume_cursor(const resume_call_t *r, cursor_t *cur)
{
    stream_id_t first = {UINT64_MAX, UINT64_MAX};
    int any = 0;
    for (size_t i = 0; i < r->ntopics; i++) {
        if (r->has[i] && stream_id_cmp(r->found[i], first) < 0)
            first = r->found[i];
        any |= r->has[i];
    }
    if (!any) {
        cursor_parse("-", 1, cur); /* CURSOR_INVALID: replay what is retained, with ssehub.gap */
        return;
    }
    stream_id_t before = first.ms > 0 ? (stream_id_t){first.ms - 1, UINT64_MAX} : STREAM_ID_ZERO;
    uint64_t hashes[CURSOR_MAX_TOPICS];
    stream_id_t ids[CURSOR_MAX_TOPICS];
    for (size_t i = 0; i < r->ntopics; i++) {
        hashes[i] = cursor_topic_hash(r->topics[i].base, r->topics[i].len);
        ids[i] = r->has[i] ? r->found[i] : before;
    }
    /* sorted by hash, as cursor_format wants (few topics: insertion sort) */
    for (size_t i = 1; i < r->ntopics; i++) {
        for (size_t k = i; k > 0 && hashes[k - 1] > hashes[k]; k--) {
            uint64_t h = hashes[k];
            stream_id_t id = ids[k];
            hashes[k] = hashes[k - 1], ids[k] = ids[k - 1];
            hashes[k - 1] = h, ids[k - 1] = id;
        }
    }
    buf_t text = BUF_INIT;
    if (cursor_format(&text, hashes, ids, r->ntopics, 1) == 0)
        cursor_parse(text.base, text.len, cur);
    else
        cursor_parse("-", 1, cur);
    buf_free(&text);
}

static void resume_finish(resume_call_t *r)
{
    h2o_req_t *req = r->req;
    if (req != NULL) {
        *r->ticket = NULL;
        cursor_t *cur = malloc(sizeof(*cur));
        int rc = -1;
        if (cur != NULL && router_topics_up(r->th, r->topics, r->ntopics)) {
            resume_cursor(r, cur);
            rc = client_open(r->th, req, r->topics, r->ntopics, cur, &r->opts);
        }
        free(cur);
        if (rc == -2)
            http_reply_error(req, 400, "Bad Request", "topic_hash_collision",
                             "two of these topics have the same hash; subscribe to them separately");
        else if (rc != 0)
            server_stream_refusal(r->th, req, "redis_unavailable", "redis unavailable, retry later");
    }
    resume_free(r);
}

static int on_resolved(redis_conn_t *conn, redisReply *rep, void *data)
{
    resume_slot_t *slot = data;
    resume_call_t *r = slot->call;
    (void)conn;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
        stream_id_parse(rep->str, rep->len, &r->found[slot->i]) == 0)
        r->has[slot->i] = 1;
    else if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        log_warn("node", "publisher id lookup failed", json_pack("{s:s}", "error", rep->str));
    free(slot);
    if (--r->left == 0)
        resume_finish(r);
    return 0;
}

int resume_by_mid(node_thread_t *th, h2o_req_t *req, const h2o_iovec_t *topics, size_t ntopics, h2o_iovec_t mid,
                  client_opts_t *opts)
{
    if (!th->link_ready || ntopics == 0 || ntopics > CURSOR_MAX_TOPICS)
        return -1;
    resume_call_t *r = calloc(1, sizeof(*r));
    size_t bytes = 0;
    for (size_t i = 0; i < ntopics; i++)
        bytes += topics[i].len;
    if (r == NULL || (r->topics = calloc(ntopics, sizeof(*r->topics))) == NULL ||
        (r->found = calloc(ntopics, sizeof(*r->found))) == NULL || (r->has = calloc(ntopics, 1)) == NULL ||
        (r->names = malloc(bytes + 1)) == NULL) {
        if (r != NULL) {
            free(r->topics);
            free(r->found);
            free(r->has);
            free(r);
        }
        return -1;
    }
    char *p = r->names;
    for (size_t i = 0; i < ntopics; i++) {
        memcpy(p, topics[i].base, topics[i].len);
        r->topics[i] = h2o_iovec_init(p, topics[i].len);
        p += topics[i].len;
    }
    r->th = th;
    r->ntopics = ntopics;
    buf_t key = BUF_INIT;
    size_t sent = 0;
    for (size_t i = 0; i < ntopics; i++) {
        resume_slot_t *slot = malloc(sizeof(*slot));
        buf_clear(&key);
        if (slot == NULL || topic_key(&key, th->shared->cfg->prefix, topics[i].base, topics[i].len, TOPIC_KEY_META) != 0) {
            free(slot);
            break;
        }
        *slot = (resume_slot_t){r, i};
        const char *argv[5] = {"FCALL_RO", SSEHUB_FN_RESOLVE, "1", key.base, mid.base};
        size_t lens[5] = {8, strlen(SSEHUB_FN_RESOLVE), 1, key.len, mid.len};
        if (router_command(th, key.base, key.len, on_resolved, slot, 5, argv, lens) != 0) {
            free(slot);
            break;
        }
        sent++;
    }
    buf_free(&key);
    if (sent == 0) {
        resume_free(r);
        return -1;
    }
    /* from here on the request is ours */
    r->opts = *opts;
    *opts = (client_opts_t){0};
    r->req = req;
    r->ticket = h2o_mem_alloc_shared(&req->pool, sizeof(*r->ticket), on_request_gone);
    *r->ticket = r;
    r->left = sent; /* the lookups not sent count as "not found" */
    return 0;
}
