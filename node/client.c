/* SSE client streams: output queue, replay from the stream, live delivery,
 * heartbeats and the end of a stream (see client.h). */
#include "node/client.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <h2o/http1.h>

#include "common/log.h"
#include "node/ip_limit.h"
#include "node/server.h"
#include "node/sse_frame.h"

static void client_flush(client_t *c);
static void client_detach(client_t *c);
static void client_pump_reads(client_t *c);
static void client_write_done(client_t *c);
static void sub_read(sub_t *s);
static void client_send_head(client_t *c);

/* ---- output queue ------------------------------------------------------------ */

/* Adds a piece to the queue; returns 0 or -1 when out of memory. */
static int out_push(out_queue_t *q, frame_t *f, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (f == NULL && q->n > 0) {
        out_piece_t *last = &q->pieces[q->n - 1];
        if (last->frame == NULL && last->off + last->len == off) {
            last->len += (uint32_t)len;
            q->bytes += (uint32_t)len;
            return 0;
        }
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 2; /* idle streams hold little */
        out_piece_t *p = realloc(q->pieces, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        q->pieces = p;
        q->cap = cap;
    }
    q->pieces[q->n++] = (out_piece_t){f != NULL ? frame_ref(f) : NULL, (uint32_t)off, (uint32_t)len};
    q->bytes += (uint32_t)len;
    return 0;
}

/* Queues the own bytes appended since `start`. */
static void out_commit_own(out_queue_t *q, size_t start)
{
    out_push(q, NULL, start, q->own.len - start);
}

/* Drops every piece, releasing frames; keeps the memory for reuse. */
static void out_clear(out_queue_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        frame_release(q->pieces[i].frame);
    q->n = 0;
    q->bytes = 0;
    buf_clear(&q->own);
}

static void out_free(out_queue_t *q)
{
    out_clear(q);
    free(q->pieces);
    buf_free(&q->own);
}

/* ---- lifetime ---------------------------------------------------------------- */

static void client_free(client_t *c)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        free(c->subs[i].held);
        for (uint32_t k = 0; k < c->subs[i].nfirst; k++)
            frame_release(c->subs[i].first[k]);
        free(c->subs[i].first);
    }
    out_free(&c->pending);
    out_free(&c->inflight);
    if (c->ext != NULL) {
        for (size_t i = 0; i < c->ext->npatterns; i++)
            selector_free(c->ext->patterns[i]);
        free(c->ext->patterns);
        auth_grant_free(c->ext->grant);
        free(c->ext->requested_id);
        free(c->ext);
    }
    free(c);
}

static void client_unref(client_t *c)
{
    if (--c->refcnt == 0)
        client_free(c);
}

void client_hold(client_t *c)
{
    c->refcnt++;
}

void client_release(client_t *c)
{
    client_unref(c);
}

static void client_mark_dirty(client_t *c)
{
    if (!h2o_linklist_is_linked(&c->dirty_link))
        h2o_linklist_insert(&c->th->dirty, &c->dirty_link);
}

/* Releases held live frames of a subscription. */
static void sub_drop_held(sub_t *s)
{
    for (size_t i = 0; i < s->nheld; i++) {
        s->client->held_bytes -= s->held[i]->len;
        frame_release(s->held[i]);
    }
    s->nheld = 0;
}

/* Leaves every topic and forgets the request; the struct lives on until
 * the last Redis read referring to it has answered. */
static void client_detach(client_t *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    c->req = NULL;
    if (c->ticket != NULL)
        *c->ticket = NULL;
    if (c->sock != NULL) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    h2o_linklist_unlink(&c->link);
    if (h2o_linklist_is_linked(&c->dirty_link))
        h2o_linklist_unlink(&c->dirty_link);
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_t *s = &c->subs[i];
        sub_drop_held(s);
        if (h2o_linklist_is_linked(&s->topic_link)) {
            h2o_linklist_unlink(&s->topic_link);
            s->topic->nsubs--;
            topic_release_if_unused(c->th, s->topic);
        }
    }
    if (c->ext != NULL) {
        if (h2o_linklist_is_linked(&c->ext->pattern_link)) {
            h2o_linklist_unlink(&c->ext->pattern_link);
            topics_pattern_release(c->th);
        }
        if (h2o_linklist_is_linked(&c->ext->expiry_link))
            h2o_linklist_unlink(&c->ext->expiry_link);
    }
    out_clear(&c->pending);
    out_clear(&c->inflight);
    atomic_fetch_sub(&c->th->shared->connections, 1);
    ip_limit_release(c->ip);
    c->ip = NULL;
    c->th->stats.v[c->is_h2 ? STAT_CONN_HTTP2 : STAT_CONN_HTTP1]--;
    c->th->stats.v[STAT_SUBSCRIPTIONS] -= c->nsubs;
    client_unref(c);
}

static void on_pool_dispose(void *p)
{
    client_t *c = *(client_t **)p;
    if (c != NULL) {
        c->ticket = NULL;
        client_detach(c);
    }
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    client_detach(H2O_STRUCT_FROM_MEMBER(client_t, generator, g));
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    client_t *c = H2O_STRUCT_FROM_MEMBER(client_t, generator, g);
    client_write_done(c);
    client_pump_reads(c);
    client_flush(c);
}

/* ---- writing ------------------------------------------------------------------- */

/* 1 once the response head is out (or being written): output may flow.
 * The head waits until the stream is live -- subscribed, its position
 * fixed by the first reads, and for pattern selectors the pattern
 * subscription confirmed -- so that an event published after the client
 * saw the stream open is never missed, and a Mercure resume can answer
 * its Last-Event-ID header. */
static int client_head_started(const client_t *c)
{
    return !c->upgrading && (c->sock != NULL || (c->req != NULL && c->generator.proceed != NULL));
}

static void on_sock_written(h2o_socket_t *sock, const char *err);

/* Hands the queued output to the socket or h2o unless a write is in
 * flight; ends the stream once everything queued before the end is out. */
static void client_flush(client_t *c)
{
    if (c->sending || !client_head_started(c))
        return;
    if (c->pending.n == 0) {
        if (!c->final_pending)
            return;
        if (c->sock != NULL) {
            client_detach(c);
            return;
        }
    }
    out_queue_t t = c->inflight;
    c->inflight = c->pending;
    c->pending = t;
    /* h2o copies the iovec array of every write (the evloop's do_write,
     * HTTP/1's and HTTP/2's finalostream_send), so all streams of a thread
     * share one; only the bytes it points to must live until the write
     * completes */
    h2o_iovec_t **vecs = &c->th->wvecs;
    uint32_t *cap = &c->th->wveccap;
    if (*cap < c->inflight.n) {
        h2o_iovec_t *v = realloc(*vecs, c->inflight.n * sizeof(*v));
        if (v == NULL)
            return;
        *vecs = v;
        *cap = c->inflight.n;
    }
    for (size_t i = 0; i < c->inflight.n; i++) {
        out_piece_t *p = &c->inflight.pieces[i];
        const char *base = p->frame != NULL ? p->frame->bytes : c->inflight.own.base;
        (*vecs)[i] = h2o_iovec_init(base + p->off, p->len);
    }
    c->th->stats.v[STAT_BYTES_OUT] += c->inflight.bytes;
    c->sending = 1;
    c->last_write_tick = (uint32_t)c->th->heartbeat_tick;
    if (c->sock != NULL) {
        h2o_socket_write(c->sock, *vecs, c->inflight.n, on_sock_written);
        return;
    }
    h2o_send_state_t state = c->final_pending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS;
    h2o_send(c->req, *vecs, c->inflight.n, state);
}

/* A write completed: release what it referenced. An idle stream keeps one
 * piece array; a busy one keeps both for reuse. Single-topic streams need
 * own bytes only now and then (control lines, gaps), so they free them;
 * multi-topic streams write a cursor line per event and keep theirs until
 * they have been idle for a heartbeat interval. */
static void client_write_done(client_t *c)
{
    c->sending = 0;
    out_clear(&c->inflight);
    if (c->nsubs == 1)
        buf_free(&c->inflight.own);
    if (c->pending.n == 0) {
        out_piece_t *p = c->pending.pieces;
        c->pending.pieces = c->inflight.pieces;
        c->pending.cap = c->inflight.cap;
        c->inflight.pieces = NULL;
        c->inflight.cap = 0;
        free(p);
    }
}

/* Reads more history for subscriptions that paused while output queued. */
static void client_pump_reads(client_t *c)
{
    if (!c->ready)
        return;
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_t *s = &c->subs[i];
        if (s->state == SUB_READING && !s->read_inflight)
            sub_read(s);
    }
}

/* ---- the takeover back-end ------------------------------------------------------ */

static void on_sock_written(h2o_socket_t *sock, const char *err)
{
    client_t *c = sock->data;
    client_write_done(c);
    if (err != NULL) {
        client_detach(c);
        return;
    }
    client_pump_reads(c);
    client_flush(c);
}

/* A taken-over stream reads only to notice the peer leaving (EOF or
 * error); anything it sends is discarded. */
static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    client_t *c = sock->data;
    if (err != NULL) {
        client_detach(c);
        return;
    }
    h2o_buffer_dispose(&sock->input);
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
}

/* h2o wrote the response head and handed over the socket (NULL when the
 * write failed; h2o closed it then). */
static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    client_t *c = data;
    (void)reqsize;
    c->upgrading = 0;
    if (sock == NULL) {
        client_detach(c);
        return;
    }
    c->sock = sock;
    sock->data = c;
    /* the request was parsed in place; drop it and the 8 KB buffer */
    h2o_buffer_dispose(&sock->input);
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_socket_read_start(sock, on_sock_read);
    client_flush(c);
}

/* A jittered retry: between retry_ms and twice it, so refused clients do
 * not all come back at once. */
static long retry_jitter(const client_t *c)
{
    long ms = c->th->shared->cfg->retry_ms;
    return ms + (ms > 0 ? rand() % (ms + 1) : 0);
}

/* Ends the stream after what is queued, with a comment saying why and a
 * jittered retry: so the browser comes back (status stays 200). */
static void client_end(client_t *c, const char *why)
{
    if (c->closed || c->final_pending)
        return;
    size_t start = c->pending.own.len;
    sse_frame_comment(&c->pending.own, why, strlen(why));
    sse_frame_retry(&c->pending.own, retry_jitter(c));
    out_commit_own(&c->pending, start);
    c->final_pending = 1;
    client_send_head(c);
    /* written (and the stream ended) in the thread's next flush pass, never
     * inside the caller's own walk over topics or reads */
    client_mark_dirty(c);
}

/* Drops a client that cannot keep up: its socket is shut down so h2o
 * stops the stream; it reconnects and catches up from history. */
static void client_abort(client_t *c, const char *why)
{
    if (c->closed || c->final_pending)
        return;
    log_info("node", "client dropped", json_pack("{s:s,s:I}", "reason", why, "queued",
                                                  (json_int_t)(c->pending.bytes + c->held_bytes)));
    /* Shutting the socket down makes the next read or write fail, so the
     * stream ends from a fresh callback, not inside the topic's fan-out. */
    h2o_socket_t *sock = c->sock;
    if (sock == NULL && c->req != NULL)
        sock = c->req->conn->callbacks->get_socket(c->req->conn);
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    out_clear(&c->pending);
    c->final_pending = 1;
    client_send_head(c); /* an HTTP/1 request notices the shutdown only by writing */
    if (c->req != NULL)
        client_flush(c);
}

/* Over the outbound cap (live bytes queued or held): drop the client. */
static void client_check_cap(client_t *c)
{
    if (c->pending.bytes + c->held_bytes > (size_t)c->th->shared->cfg->client_buffer_bytes) {
        if (!c->closed && !c->final_pending)
            c->th->stats.v[STAT_SLOW_DROPS]++;
        client_abort(c, "slow consumer");
    }
}

/* ---- framing ------------------------------------------------------------------- */

/* Appends the id line a multi-topic stream sends with every event: the
 * cursor of every topic's position. */
static void client_cursor_line(client_t *c, buf_t *out)
{
    uint64_t hashes[CURSOR_MAX_TOPICS];
    stream_id_t ids[CURSOR_MAX_TOPICS];
    for (size_t i = 0; i < c->nsubs; i++) {
        hashes[i] = c->subs[i].topic->hash;
        ids[i] = c->subs[i].pos;
    }
    buf_append(out, "id: ", 4);
    /* cannot fail: client_open refused equal hashes and too many topics */
    cursor_format(out, hashes, ids, c->nsubs, c->long_hashes);
    buf_append(out, "\n", 1);
}

/* Appends this stream's id line for the current positions. */
static void client_id_line(client_t *c, const sub_t *s, buf_t *out)
{
    if (c->nsubs > 1) {
        client_cursor_line(c, out);
    } else {
        char id[STREAM_ID_MAX_TEXT];
        size_t n = stream_id_format(s->pos, id);
        sse_frame_id(out, id, n);
    }
}

/* 1 when the stream selects a topic: one of its exact topics, or a match
 * of one of its patterns; *exact tells which. */
static int client_selects(const client_t *c, const char *t, size_t len, int *exact)
{
    *exact = 0;
    for (size_t i = 0; i < c->nsubs; i++) {
        const topic_t *p = c->subs[i].topic;
        if (p->name_len == len && memcmp(p->name, t, len) == 0)
            return *exact = 1;
    }
    for (size_t i = 0; c->ext != NULL && i < c->ext->npatterns; i++)
        if (selector_match(c->ext->patterns[i], t, len))
            return 1;
    return 0;
}

/* Whether the stream takes an event that came on topic `via` (as an exact
 * topic when via_exact, else through a pattern). A private update needs a
 * token allowing one of the update's topics. An update stored in several
 * topics goes out once: by the first of its topics the stream selects, and
 * through that topic's own path. */
static int client_takes(const client_t *c, const frame_t *f, const char *via, size_t vialen, int via_exact)
{
    if (f->is_private) {
        const auth_grant_t *g = c->ext != NULL ? c->ext->grant : NULL;
        int ok = 0;
        if (f->topics != NULL)
            for (uint32_t i = 0; i < f->topics->n && !ok; i++)
                ok = auth_grant_allows(g, f->topics->t[i].base, f->topics->t[i].len);
        else
            ok = auth_grant_allows(g, via, vialen);
        if (!ok)
            return 0;
    }
    if (f->topics != NULL) {
        for (uint32_t i = 0; i < f->topics->n; i++) {
            int exact;
            if (client_selects(c, f->topics->t[i].base, f->topics->t[i].len, &exact))
                return f->topics->t[i].len == vialen && memcmp(f->topics->t[i].base, via, vialen) == 0 &&
                       exact == via_exact;
        }
    }
    return 1;
}

/* Queues one event for a Mercure stream: its publisher id line (or entry
 * id line) and the shared body. */
static void client_push_mercure(client_t *c, frame_t *f)
{
    if (!f->has_mid && c->nsubs > 1 && c->ext->npatterns == 0) {
        /* no publisher id: the exact multi-topic cursor, as on /events */
        size_t start = c->pending.own.len;
        client_cursor_line(c, &c->pending.own);
        out_commit_own(&c->pending, start);
    } else {
        out_push(&c->pending, f, frame_mercure_id_off(f), frame_mercure_id_len(f));
    }
    out_push(&c->pending, f, f->id_len, f->body_end - f->id_len);
}

/* Delivers one live frame above the subscription's position. */
static void sub_deliver(sub_t *s, frame_t *f)
{
    client_t *c = s->client;
    if (stream_id_cmp(f->id, s->pos) <= 0)
        return;
    s->pos = f->id;
    if ((f->is_private || f->topics != NULL) && !client_takes(c, f, s->topic->name, s->topic->name_len, 1))
        return; /* the position moves on all the same */
    c->th->stats.v[STAT_EVENTS_OUT]++;
    if (c->ext != NULL && c->ext->mercure) {
        client_push_mercure(c, f);
    } else if (c->nsubs == 1) {
        out_push(&c->pending, f, 0, f->body_end);
    } else {
        size_t start = c->pending.own.len;
        client_cursor_line(c, &c->pending.own);
        out_commit_own(&c->pending, start);
        out_push(&c->pending, f, f->id_len, f->body_end - f->id_len);
    }
    client_mark_dirty(c);
}

static const char *gap_reason_names[GAP_NREASONS] = {"", "bad_cursor", "cursor_topics", "trimmed", "expired"};

/* Queues an ssehub.gap event naming the topics that had this reason. */
static void client_gap_event(client_t *c, enum gap_reason reason, int only_sub)
{
    json_t *topics = json_array();
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].gap == reason && (only_sub < 0 || (size_t)only_sub == i))
            json_array_append_new(topics, json_stringn(c->subs[i].topic->name, c->subs[i].topic->name_len));
    if (json_array_size(topics) == 0 && !(reason == GAP_CURSOR_TOPICS && c->cursor_extra)) {
        json_decref(topics);
        return;
    }
    json_t *o = json_pack("{s:s,s:o}", "reason", gap_reason_names[reason], "topics", topics);
    char *text = json_dumps(o, JSON_COMPACT);
    size_t start = c->pending.own.len;
    sse_frame_body(&c->pending.own, "ssehub.gap", 10, -1, text, strlen(text));
    out_commit_own(&c->pending, start);
    free(text);
    json_decref(o);
}

/* ---- replay ---------------------------------------------------------------------- */

/* History is read; hand over the live frames held meanwhile (those above
 * the replayed position) and go live. */
static void sub_go_live(sub_t *s)
{
    s->state = SUB_LIVE;
    for (size_t i = 0; i < s->nheld; i++)
        sub_deliver(s, s->held[i]);
    sub_drop_held(s);
}

/* Delivers a batch of history; a full batch means more may follow. */
static void sub_take_frames(sub_t *s, frame_t *const *frames, size_t n, int more)
{
    for (size_t i = 0; i < n; i++)
        sub_deliver(s, frames[i]);
    client_mark_dirty(s->client);
    if (more)
        s->state = SUB_READING;
    else
        sub_go_live(s);
}

/* Every topic's first read is in: gaps first, then the cursor event for
 * a stream that came without one, then the history, then live. */
static void client_become_ready(client_t *c)
{
    c->ready = 1;
    if (c->ext == NULL || c->ext->npatterns == 0 || c->th->pattern_state == TOPIC_SUBSCRIBED)
        client_send_head(c);
    for (int reason = GAP_BAD_CURSOR; reason < GAP_NREASONS; reason++)
        client_gap_event(c, reason, -1);
    if (c->no_cursor && c->nsubs > 0) {
        size_t start = c->pending.own.len;
        client_id_line(c, &c->subs[0], &c->pending.own);
        sse_frame_body(&c->pending.own, "ssehub.cursor", 13, -1, "", 0);
        out_commit_own(&c->pending, start);
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_t *s = &c->subs[i];
        sub_take_frames(s, s->first, s->nfirst, s->first_more);
        for (uint32_t k = 0; k < s->nfirst; k++)
            frame_release(s->first[k]);
        free(s->first);
        s->first = NULL;
        s->nfirst = 0;
    }
    client_pump_reads(c);
    client_mark_dirty(c);
}

/* Holds references to a first batch until every topic has one. */
static void sub_keep_first(sub_t *s, const history_batch_t *b)
{
    if (b->n > 0 && (s->first = malloc(b->n * sizeof(*s->first))) != NULL) {
        for (size_t i = 0; i < b->n; i++)
            s->first[i] = frame_ref(b->frames[i]);
        s->nfirst = (uint32_t)b->n;
    }
    s->first_more = b->more || (b->n > 0 && s->first == NULL);
}

static enum gap_reason gap_of(enum history_status st)
{
    return st == HISTORY_GAP ? GAP_TRIMMED : st == HISTORY_EXPIRED ? GAP_EXPIRED : GAP_NONE;
}

void client_on_history(sub_t *s, const history_batch_t *b)
{
    client_t *c = s->client;
    s->read_inflight = 0;
    if (c->closed)
        return;
    enum gap_reason gap = gap_of(b->status);
    if (!s->first_done) {
        s->first_done = 1;
        if (gap != GAP_NONE && s->gap == GAP_NONE)
            s->gap = gap;
        if (s->from_now)
            s->pos = b->position;
        sub_keep_first(s, b);
        if (--c->first_left == 0)
            client_become_ready(c);
        return;
    }
    if (gap != GAP_NONE) {
        s->gap = gap;
        client_gap_event(c, gap, (int)(s - c->subs));
    }
    sub_take_frames(s, b->frames, b->n, b->more);
    if (s->state == SUB_READING && c->pending.bytes < (size_t)c->th->shared->cfg->client_buffer_bytes / 2)
        sub_read(s);
}

void client_on_history_failed(sub_t *s, int link_lost)
{
    s->read_inflight = 0;
    if (s->client->closed)
        return;
    if (link_lost)
        s->state = SUB_WAIT_SUB; /* asked again once the link and subscription are back */
    else
        client_end(s->client, "history unavailable, retry later");
}

/* Asks the topic's history for what follows the subscription's position. */
static void sub_read(sub_t *s)
{
    enum history_from from = HISTORY_AFTER;
    if (!s->first_done && s->from_now)
        from = HISTORY_NOW;
    else if (!s->first_done && s->from_earliest)
        from = HISTORY_EARLIEST;
    s->state = SUB_READING;
    s->read_inflight = 1;
    history_request(s->client->th, s->topic, s, from, s->pos);
}

/* ---- topic-layer callbacks -------------------------------------------------------- */

void client_on_subscribed(sub_t *s)
{
    if (s->client->closed || s->state != SUB_WAIT_SUB)
        return;
    sub_read(s);
}

void client_on_live(sub_t *s, frame_t *f)
{
    client_t *c = s->client;
    if (c->closed || c->final_pending)
        return;
    if (!c->ready || s->state != SUB_LIVE) {
        if (s->nheld == s->capheld) {
            size_t cap = s->capheld ? s->capheld * 2 : 8;
            frame_t **h = realloc(s->held, cap * sizeof(*h));
            if (h == NULL) {
                client_abort(c, "out of memory");
                return;
            }
            s->held = h;
            s->capheld = cap;
        }
        s->held[s->nheld++] = frame_ref(f);
        c->held_bytes += (uint32_t)f->len;
    } else {
        sub_deliver(s, f);
    }
    client_check_cap(c);
}

/* ---- opening a stream --------------------------------------------------------------- */

static int sub_cmp_hash(const void *a, const void *b)
{
    uint64_t x = ((const sub_t *)a)->topic->hash, y = ((const sub_t *)b)->topic->hash;
    return x < y ? -1 : x > y;
}

/* Sets each subscription's starting point from the client's cursor. */
static void client_apply_cursor(client_t *c, const cursor_t *cur)
{
    size_t matched = 0;
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_t *s = &c->subs[i];
        switch (cur->kind) {
        case CURSOR_NONE:
            s->from_now = 1;
            c->no_cursor = 1;
            break;
        case CURSOR_EARLIEST:
            s->from_earliest = 1;
            break;
        case CURSOR_ENTRY:
            s->pos = cur->id;
            break;
        case CURSOR_MULTI:
            if (cursor_lookup(cur, s->topic->hash, &s->pos) == 0) {
                matched++;
            } else {
                s->from_earliest = 1;
                s->gap = GAP_CURSOR_TOPICS;
            }
            break;
        case CURSOR_INVALID:
            s->from_earliest = 1;
            s->gap = GAP_BAD_CURSOR;
            break;
        }
    }
    if (cur->kind == CURSOR_MULTI && cur->npos > matched)
        c->cursor_extra = 1;
}

/* Ties the client to its request: a dispose hook of the request pool
 * detaches it if the request goes away first, and the first retry: line
 * is queued. */
static void client_prepare(client_t *c, h2o_req_t *req)
{
    c->ticket = h2o_mem_alloc_shared(&req->pool, sizeof(*c->ticket), on_pool_dispose);
    *c->ticket = c;
    size_t start = c->pending.own.len;
    sse_frame_retry(&c->pending.own, c->th->shared->cfg->retry_ms);
    out_commit_own(&c->pending, start);
}

/* The Last-Event-ID response header of a Mercure resume: the id asked for
 * when everything after it is sent, else `earliest` (some of it was lost
 * or cannot be replayed: the subscriber should re-fetch). */
static const char *mercure_resume_header(const client_t *c)
{
    int whole = c->ext->npatterns == 0 && c->ext->requested_id != NULL;
    for (size_t i = 0; i < c->nsubs && whole; i++)
        whole = c->subs[i].gap == GAP_NONE && !c->subs[i].from_earliest;
    return whole ? c->ext->requested_id : "earliest";
}

/* Sends the response head (200, text/event-stream, no caching or proxy
 * buffering), unless it went out already. An HTTP/1.1 stream then leaves
 * h2o (the head carries "Connection: upgrade", which h2o adds; the body is
 * not chunked and ends when the connection closes). */
static void client_send_head(client_t *c)
{
    h2o_req_t *req = c->req;
    if (req == NULL || c->generator.proceed != NULL || c->upgrading || c->sock != NULL)
        return;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    if (c->ext != NULL && c->ext->mercure && c->ext->resume_requested) {
        const char *id = mercure_resume_header(c);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("last-event-id"), 0, NULL, id, strlen(id));
    }
    if (req->version == 0x101 && c->th->shared->cfg->http1_takeover) {
        /* h2o frees the request, and its pool, once the head is out */
        *c->ticket = NULL;
        c->ticket = NULL;
        c->req = NULL;
        c->upgrading = 1;
        h2o_http1_upgrade(req, NULL, 0, on_upgraded, c);
        return;
    }
    c->generator.proceed = on_proceed;
    c->generator.stop = on_stop;
    h2o_start_response(req, &c->generator);
}

/* Gives a refused stream's options back to the caller and frees it. */
static void client_free_opts_back(client_t *c, client_opts_t *o)
{
    if (c->ext != NULL) {
        o->patterns = c->ext->patterns;
        o->npatterns = c->ext->npatterns;
        o->grant = c->ext->grant;
        free(c->ext->requested_id);
        free(c->ext);
    }
    free(c);
}

/* Takes over what the request asked for besides exact topics; returns 0,
 * or -1 when out of memory (nothing taken). */
static int client_take_opts(client_t *c, client_opts_t *o)
{
    if (o == NULL || (!o->mercure && o->npatterns == 0 && o->grant == NULL))
        return 0;
    client_ext_t *x = calloc(1, sizeof(*x));
    if (x == NULL || (o->requested_id != NULL && (x->requested_id = strdup(o->requested_id)) == NULL)) {
        free(x);
        return -1;
    }
    x->owner = c;
    x->mercure = o->mercure != 0;
    x->resume_requested = o->requested_id != NULL;
    x->patterns = o->patterns;
    x->npatterns = o->npatterns;
    x->grant = o->grant;
    o->patterns = NULL;
    o->npatterns = 0;
    o->grant = NULL;
    c->ext = x;
    return 0;
}

int client_open(node_thread_t *th, h2o_req_t *req, const h2o_iovec_t *topics, size_t ntopics,
                const cursor_t *cursor, client_opts_t *opts)
{
    client_t *c = calloc(1, sizeof(*c) + ntopics * sizeof(c->subs[0]));
    if (c == NULL)
        return -1;
    if (client_take_opts(c, opts) != 0) {
        free(c);
        return -1;
    }
    c->th = th;
    c->req = req;
    c->refcnt = 1;
    c->nsubs = (uint32_t)ntopics;
    for (size_t i = 0; i < ntopics; i++) {
        c->subs[i].client = c;
        if ((c->subs[i].topic = topic_acquire(th, topics[i].base, topics[i].len)) == NULL) {
            for (size_t j = 0; j < i; j++) {
                c->subs[j].topic->nsubs--;
                topic_release_if_unused(th, c->subs[j].topic);
            }
            client_free_opts_back(c, opts);
            return -1;
        }
        c->subs[i].topic->nsubs++; /* hold it while the others are acquired */
    }
    qsort(c->subs, ntopics, sizeof(*c->subs), sub_cmp_hash);
    uint64_t hashes[CURSOR_MAX_TOPICS];
    for (size_t i = 0; i < ntopics; i++) {
        hashes[i] = c->subs[i].topic->hash;
        if (i > 0 && hashes[i] == hashes[i - 1]) {
            /* FNV-1a can be made to collide on purpose; such a pair cannot
             * share one cursor, so the request is refused outright */
            for (size_t j = 0; j < ntopics; j++) {
                c->subs[j].topic->nsubs--;
                topic_release_if_unused(th, c->subs[j].topic);
            }
            client_free_opts_back(c, opts);
            return -2;
        }
    }
    c->long_hashes = cursor_needs_long_hashes(hashes, ntopics);
    client_apply_cursor(c, cursor);

    h2o_linklist_insert(&th->clients, &c->link);
    atomic_fetch_add(&th->shared->connections, 1);
    if (opts != NULL) {
        c->ip = opts->ip;
        opts->ip = NULL;
    }
    c->is_h2 = req->version >= 0x200;
    th->stats.v[c->is_h2 ? STAT_CONN_HTTP2 : STAT_CONN_HTTP1]++;
    th->stats.v[STAT_SUBSCRIPTIONS] += ntopics;
    client_prepare(c, req);
    if (c->ext != NULL) {
        if (c->ext->npatterns > 0) {
            h2o_linklist_insert(&th->pattern_clients, &c->ext->pattern_link);
            topics_pattern_acquire(th);
        }
        if (c->ext->grant != NULL && c->ext->grant->exp > 0)
            h2o_linklist_insert(&th->expiring, &c->ext->expiry_link);
    }
    c->first_left = (uint32_t)ntopics;
    for (size_t i = 0; i < ntopics; i++) {
        sub_t *s = &c->subs[i];
        s->state = SUB_WAIT_SUB;
        h2o_linklist_insert(&s->topic->subs, &s->topic_link);
        if (s->topic->state == TOPIC_SUBSCRIBED)
            client_on_subscribed(s);
    }
    if (ntopics == 0)
        client_become_ready(c); /* patterns only: live from now on */
    client_flush(c);
    return 0;
}

/* ---- thread-wide ------------------------------------------------------------------------ */

void clients_on_pattern_live(node_thread_t *th, const char *topic, size_t len, frame_t *f)
{
    for (h2o_linklist_t *l = th->pattern_clients.next, *next; l != &th->pattern_clients; l = next) {
        next = l->next;
        client_ext_t *x = H2O_STRUCT_FROM_MEMBER(client_ext_t, pattern_link, l);
        client_t *c = x->owner;
        int exact;
        if (c->closed || c->final_pending || !client_selects(c, topic, len, &exact) || exact)
            continue; /* an exact topic of the stream comes through its own subscription */
        if ((f->is_private || f->topics != NULL) && !client_takes(c, f, topic, len, 0))
            continue;
        client_push_mercure(c, f);
        th->stats.v[STAT_EVENTS_OUT]++;
        client_mark_dirty(c);
        client_check_cap(c);
    }
}

void clients_on_pattern_subscribed(node_thread_t *th)
{
    for (h2o_linklist_t *l = th->pattern_clients.next; l != &th->pattern_clients; l = l->next) {
        client_t *c = H2O_STRUCT_FROM_MEMBER(client_ext_t, pattern_link, l)->owner;
        if (c->ready && !client_head_started(c) && !c->closed) {
            client_send_head(c);
            client_mark_dirty(c);
        }
    }
}

void clients_expire_tokens(node_thread_t *th)
{
    int64_t now = (int64_t)time(NULL);
    for (h2o_linklist_t *l = th->expiring.next, *next; l != &th->expiring; l = next) {
        next = l->next;
        client_ext_t *x = H2O_STRUCT_FROM_MEMBER(client_ext_t, expiry_link, l);
        if (x->grant->exp <= now) {
            h2o_linklist_unlink(&x->expiry_link);
            client_end(x->owner, "token expired");
        }
    }
}

/* The subscription waits for its topic's SUBSCRIBE again, then reads what
 * it missed after its position. */
static void sub_wait_again(sub_t *s)
{
    sub_drop_held(s);
    s->state = SUB_WAIT_SUB;
}

void clients_on_shard_down(node_thread_t *th, int shard)
{
    int patterns_lost = shard == 0 && !router_sharded(th);
    for (h2o_linklist_t *l = th->clients.next, *next; l != &th->clients; l = next) {
        next = l->next;
        client_t *c = H2O_STRUCT_FROM_MEMBER(client_t, link, l);
        int hit = 0;
        for (size_t i = 0; i < c->nsubs && !hit; i++)
            hit = c->subs[i].topic->shard == shard;
        if (patterns_lost && c->ext != NULL && c->ext->npatterns > 0) {
            /* pattern selectors are live only: what is published while
             * the link is down cannot be replayed to them, so the client
             * comes back (a Mercure resume then answers Last-Event-ID:
             * earliest) rather than miss events silently */
            client_end(c, "redis unavailable, reconnect");
            continue;
        }
        if (!hit)
            continue;
        if (!c->ready) {
            client_end(c, "redis unavailable, retry later");
            continue;
        }
        for (size_t i = 0; i < c->nsubs; i++)
            if (c->subs[i].topic->shard == shard)
                sub_wait_again(&c->subs[i]);
    }
}

void clients_on_topic_down(node_thread_t *th, topic_t *p)
{
    (void)th;
    for (h2o_linklist_t *l = p->subs.next, *next; l != &p->subs; l = next) {
        next = l->next;
        sub_t *s = H2O_STRUCT_FROM_MEMBER(sub_t, topic_link, l);
        if (!s->client->ready)
            client_end(s->client, "redis cluster changed, retry later");
        else
            sub_wait_again(s);
    }
}

void clients_flush_dirty(node_thread_t *th)
{
    while (!h2o_linklist_is_empty(&th->dirty)) {
        client_t *c = H2O_STRUCT_FROM_MEMBER(client_t, dirty_link, th->dirty.next);
        h2o_linklist_unlink(&c->dirty_link);
        client_flush(c);
    }
}

void clients_heartbeat(node_thread_t *th)
{
    for (h2o_linklist_t *l = th->clients.next; l != &th->clients; l = l->next) {
        client_t *c = H2O_STRUCT_FROM_MEMBER(client_t, link, l);
        /* last_write_tick is the tick of the client's last write: older
         * than the current one means idle for a whole interval; the
         * heartbeat is a reference to the thread's shared comment frame */
        if (c->last_write_tick != (uint32_t)th->heartbeat_tick && c->pending.n == 0 && !c->sending) {
            buf_free(&c->pending.own);
            buf_free(&c->inflight.own);
            out_push(&c->pending, th->heartbeat_frame, 0, th->heartbeat_frame->len);
            client_flush(c);
        }
    }
    th->heartbeat_tick++;
}

size_t clients_close_some(node_thread_t *th, size_t n, const char *why)
{
    size_t open = 0;
    /* new streams are inserted at the head: the tail holds the oldest */
    for (h2o_linklist_t *l = th->clients.prev, *prev; l != &th->clients; l = prev) {
        prev = l->prev;
        client_t *c = H2O_STRUCT_FROM_MEMBER(client_t, link, l);
        open++;
        if (n > 0 && !c->final_pending) {
            client_end(c, why);
            n--;
        }
    }
    return open;
}

void clients_close_all(node_thread_t *th, const char *why)
{
    for (h2o_linklist_t *l = th->clients.next, *next; l != &th->clients; l = next) {
        next = l->next;
        client_end(H2O_STRUCT_FROM_MEMBER(client_t, link, l), why);
    }
}
