/* ssehub-loadgen: holds thousands of SSE streams on epoll and measures what
 * arrives. Each connection reads one topic; payloads are "<seq> <unix_ns>
 * <padding>" from ssehub-benchpub, which gives latency, holes and
 * duplicates per connection. Modes: idle (hold open streams while the
 * server's memory is measured), fanout (count deliveries), storm (close
 * every stream and reconnect them all with Last-Event-ID). Not part of the
 * test suite; see tests/bench/README.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "node/sse_frame.h"
#include "tests/bench/bench_common.h"
#include "tests/bench/histogram.h"
#include "tests/bench/http_resp.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_HEADERS 32
#define MAX_ID 256    /* longest Last-Event-ID kept */
#define READ_BUDGET 8 /* reads per readiness event, for fairness */
#define FD_RESERVE 64 /* descriptors kept for everything but streams */
#define NS 1000000000LL

/* ------------------------------------------------------------ types -- */

typedef enum lg_mode { MODE_IDLE, MODE_FANOUT, MODE_STORM } lg_mode_t;

/* What the main thread tells the workers to do; only ever moves forward. */
typedef enum phase {
    PH_OPEN,      /* open every connection, paced */
    PH_RUN,       /* keep reading */
    PH_CLOSE,     /* storm: close every connection */
    PH_RECONNECT, /* storm: reopen with Last-Event-ID, paced */
    PH_DONE,      /* stop */
} phase_t;

enum err_kind { ERR_CONNECT, ERR_HTTP_STATUS, ERR_CLOSED_EARLY, ERR_PARSE, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "http_status", "closed_early", "parse"};

enum conn_state { CS_NEW, CS_CONNECTING, CS_SENDING, CS_RECEIVING, CS_CLOSED };

/* Per-connection flags: each "settled" flag is set once and counted once
 * in the matching loadgen counter, so the main thread can tell when every
 * connection is either done or gone. */
enum {
    F_READY = 1,       /* got its response head (and first body bytes) */
    F_READY_SET = 2,   /* ready or failed before it: counted in ready_settled */
    F_G1_SET = 4,      /* fanout: got --expect events; storm: saw --storm-from */
    F_G2_SET = 8,      /* storm: saw --storm-to after reconnecting (or will not) */
    F_DEAD = 16,       /* failed or closed by the server */
    F_INFLIGHT = 32,   /* counted in the worker's connects in flight */
    F_RECONNECTED = 64 /* storm: reopened after the close */
};

typedef struct worker worker_t;

/* One SSE stream. */
typedef struct conn {
    worker_t *w;
    int fd;
    unsigned index; /* global connection number i: topic i % topics */
    unsigned char state;
    unsigned char flags;
    unsigned short last_id_len;
    int64_t started_ns; /* when its connect began (monotonic) */
    char *req;          /* the request while it is being written */
    size_t req_len, req_off;
    http_resp_t resp;
    sse_parser_t sse;
    uint64_t events;   /* data events with a valid payload */
    uint64_t last_seq; /* highest seq seen, kept across a storm reconnect */
    char last_id[MAX_ID + 1];
} conn_t;

/* Settings and the state the threads share; the counters are atomics
 * because workers bump them and the main thread reads them. */
typedef struct loadgen {
    lg_mode_t mode;
    const char *url_template;
    bench_url_t *urls; /* one per topic */
    long topics, connections, threads, sources, max_inflight;
    double connect_rate, hold_s, duration_s, ready_timeout_s, connect_timeout_s;
    long expect, storm_from, storm_to, seq_start;
    const char *between;
    int ready_on_head;
    const char *headers[MAX_HEADERS];
    int nheaders;

    _Atomic int phase;
    _Atomic long ready, ready_settled, g1_settled, g2_settled, workers_closed;
    _Atomic int64_t reconnect_t0; /* first reconnect, monotonic ns, 0 = none */
    pthread_mutex_t error_lock;
    char first_error[256];
} loadgen_t;

/* One thread's epoll loop and its share of the connections (i % threads). */
struct worker {
    loadgen_t *lg;
    int id;
    int ep;
    pthread_t thread;
    conn_t *conns;
    size_t nconns;
    /* opening, per phase */
    size_t next_open, opened, inflight, max_inflight;
    double rate;
    int64_t open_t0;
    int closed_done, reconnect_started;
    int64_t next_timeout_scan;
    /* clocks taken once per read */
    int64_t now_mono, now_real;
    /* results, merged by the main thread after join */
    hist_t hist;
    uint64_t events, holes, missing, duplicates, caught_up;
    uint64_t errors[ERR_KINDS];
    int64_t first_event, last_event, last_caught_up;
    _Atomic uint64_t events_seen;  /* events, published for progress lines */
    _Atomic size_t inflight_seen;  /* inflight, published for progress lines */
    _Atomic size_t caught_up_seen; /* caught_up, published for progress lines */
    char rbuf[65536];
};

/* ---------------------------------------------------------- helpers -- */

/* Records the first error text of the run (later ones only count). */
static void note_error(loadgen_t *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(loadgen_t *lg, const char *fmt, ...)
{
    pthread_mutex_lock(&lg->error_lock);
    if (lg->first_error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(lg->first_error, sizeof(lg->first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&lg->error_lock);
}

/* Sets a settled flag once and counts it; returns nothing. */
static void settle(conn_t *c, unsigned char flag, _Atomic long *counter)
{
    if (c->flags & flag)
        return;
    c->flags |= flag;
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Takes a connection out of the in-flight count once it is ready or gone. */
static void leave_inflight(conn_t *c)
{
    if (c->flags & F_INFLIGHT) {
        c->flags &= ~F_INFLIGHT;
        c->w->inflight--;
    }
}

/* Returns nonzero when the connection has reached the goal of the current
 * phase, so the server ending it is not an error. */
static int goal_reached(const conn_t *c)
{
    const loadgen_t *lg = c->w->lg;
    if (lg->mode == MODE_FANOUT)
        return lg->expect > 0 && c->events >= (uint64_t)lg->expect;
    if (lg->mode == MODE_STORM)
        return (c->flags & F_RECONNECTED) && c->last_seq >= (uint64_t)lg->storm_to;
    return 0;
}

/* Closes the socket and frees what only an open stream needs; the
 * counters, last id and last seq stay. */
static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CS_CLOSED;
    free(c->req);
    c->req = NULL;
    http_resp_reset(&c->resp);
    sse_parser_free(&c->sse);
    leave_inflight(c);
}

/* Ends a connection that failed or that the server closed: counts the
 * error by kind and settles every goal it can no longer reach. */
static void conn_fail(conn_t *c, enum err_kind kind, const char *what)
{
    worker_t *w = c->w;
    loadgen_t *lg = w->lg;
    w->errors[kind]++;
    note_error(lg, "connection %u: %s: %s", c->index, err_names[kind], what);
    conn_close(c);
    c->flags |= F_DEAD;
    settle(c, F_READY_SET, &lg->ready_settled);
    settle(c, F_G1_SET, &lg->g1_settled);
    if (c->flags & F_RECONNECTED)
        settle(c, F_G2_SET, &lg->g2_settled);
}

/* Marks a connection ready (response head, and first body bytes unless
 * --ready-on head). */
static void conn_ready(conn_t *c)
{
    if (c->flags & F_READY) {
        leave_inflight(c);
        return;
    }
    c->flags |= F_READY;
    atomic_fetch_add_explicit(&c->w->lg->ready, 1, memory_order_relaxed);
    settle(c, F_READY_SET, &c->w->lg->ready_settled);
    leave_inflight(c);
}

/* ------------------------------------------------------------ events -- */

/* Parses "<seq> <ns>[ <padding>]"; returns 0, or -1 for other data (such
 * as ssehub.cursor's empty data). */
static int parse_payload(const char *p, size_t len, uint64_t *seq, int64_t *ns)
{
    size_t i = 0;
    uint64_t a = 0, b = 0;
    size_t start = i;
    while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 19)
        a = a * 10 + (uint64_t)(p[i++] - '0');
    if (i == start || i >= len || p[i] != ' ')
        return -1;
    start = ++i;
    while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 19)
        b = b * 10 + (uint64_t)(p[i++] - '0');
    if (i == start || (i < len && p[i] != ' '))
        return -1;
    *seq = a;
    *ns = (int64_t)b;
    return 0;
}

/* Checks a connection's goals after an event moved it forward. */
static void check_goals(conn_t *c)
{
    worker_t *w = c->w;
    loadgen_t *lg = w->lg;
    if (lg->mode == MODE_FANOUT && lg->expect > 0 && c->events >= (uint64_t)lg->expect &&
        !(c->flags & F_G1_SET)) {
        settle(c, F_G1_SET, &lg->g1_settled);
        w->caught_up++;
        w->last_caught_up = w->now_mono;
    } else if (lg->mode == MODE_STORM) {
        if (c->last_seq >= (uint64_t)lg->storm_from)
            settle(c, F_G1_SET, &lg->g1_settled);
        if ((c->flags & F_RECONNECTED) && c->last_seq >= (uint64_t)lg->storm_to && !(c->flags & F_G2_SET)) {
            settle(c, F_G2_SET, &lg->g2_settled);
            w->caught_up++;
            w->last_caught_up = w->now_mono;
        }
    }
}

/* sse_parser callback: keeps the last event id, then for a benchmark
 * payload records latency and checks the seq against the last one. */
static void on_event(void *ctx, const sse_event_t *ev)
{
    conn_t *c = ctx;
    worker_t *w = c->w;
    if (ev->id_len <= MAX_ID) {
        memcpy(c->last_id, ev->id, ev->id_len);
        c->last_id[ev->id_len] = '\0';
        c->last_id_len = (unsigned short)ev->id_len;
    } else {
        c->last_id_len = 0;
        w->errors[ERR_PARSE]++;
        note_error(w->lg, "connection %u: event id longer than %d bytes", c->index, MAX_ID);
    }
    uint64_t seq;
    int64_t ns;
    if (parse_payload(ev->data, ev->data_len, &seq, &ns) != 0)
        return;
    int64_t lat = w->now_real - ns;
    hist_record(&w->hist, lat > 0 ? (uint64_t)lat / 1000 : 0);
    if (seq <= c->last_seq) {
        w->duplicates++;
    } else {
        if (seq > c->last_seq + 1) {
            w->holes++;
            w->missing += seq - c->last_seq - 1;
        }
        c->last_seq = seq;
    }
    c->events++;
    w->events++;
    if (w->first_event == 0)
        w->first_event = w->now_mono;
    w->last_event = w->now_mono;
    check_goals(c);
}

/* http_resp body callback: a 200 stream's bytes go to the SSE parser. */
static int on_body(void *ctx, const char *bytes, size_t len)
{
    conn_t *c = ctx;
    if (c->resp.status != 200)
        return -EBADMSG;
    if (!c->w->lg->ready_on_head)
        conn_ready(c);
    return sse_parser_feed(&c->sse, bytes, len);
}

/* ------------------------------------------------------- connecting -- */

/* Builds the GET request of connection c; returns 0 or -ENOMEM. */
static int build_request(conn_t *c)
{
    loadgen_t *lg = c->w->lg;
    const bench_url_t *u = &lg->urls[c->index % (unsigned long)lg->topics];
    buf_t b = BUF_INIT;
    int rc = buf_printf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n", u->path, u->host);
    for (int i = 0; rc == 0 && i < lg->nheaders; i++)
        rc = buf_printf(&b, "%s\r\n", lg->headers[i]);
    if (rc == 0 && c->last_id_len > 0)
        rc = buf_printf(&b, "Last-Event-ID: %s\r\n", c->last_id);
    if (rc == 0)
        rc = buf_append_str(&b, "\r\n");
    if (rc != 0) {
        buf_free(&b);
        return -ENOMEM;
    }
    c->req = b.base;
    c->req_len = b.len;
    c->req_off = 0;
    return 0;
}

/* Starts a non-blocking connect from source address 127.0.0.(2 + i %
 * sources); returns 0, or -1 after counting the failure. */
static int conn_start(conn_t *c)
{
    worker_t *w = c->w;
    loadgen_t *lg = w->lg;
    const bench_url_t *u = &lg->urls[c->index % (unsigned long)lg->topics];
    http_resp_init(&c->resp);
    sse_parser_init(&c->sse, on_event, c);
    c->started_ns = w->now_mono;
    c->flags |= F_INFLIGHT;
    w->inflight++;
    if (build_request(c) != 0) {
        conn_fail(c, ERR_CONNECT, "out of memory");
        return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(c, ERR_CONNECT, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + c->index % (unsigned long)lg->sources);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        conn_fail(c, ERR_CONNECT, strerror(errno));
        return -1;
    }
    if (connect(c->fd, (const struct sockaddr *)&u->addr, sizeof(u->addr)) != 0 && errno != EINPROGRESS) {
        conn_fail(c, ERR_CONNECT, strerror(errno));
        return -1;
    }
    c->state = CS_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_fail(c, ERR_CONNECT, strerror(errno));
        return -1;
    }
    return 0;
}

/* Returns nonzero when connection c is to be (re)opened in this phase. */
static int wants_open(const conn_t *c, phase_t phase)
{
    if (phase == PH_OPEN)
        return c->state == CS_NEW;
    return (c->flags & F_READY) && !(c->flags & F_RECONNECTED);
}

/* Opens as many connections as --connect-rate and --max-inflight allow
 * right now; returns nothing. */
static void open_some(worker_t *w, phase_t phase)
{
    loadgen_t *lg = w->lg;
    double allowed = (double)w->nconns;
    if (w->rate > 0)
        allowed = 1 + w->rate * (double)(w->now_mono - w->open_t0) / NS;
    while (w->next_open < w->nconns && w->inflight < w->max_inflight && (double)w->opened < allowed) {
        conn_t *c = &w->conns[w->next_open++];
        if (!wants_open(c, phase))
            continue;
        if (phase == PH_RECONNECT) {
            c->flags |= F_RECONNECTED;
            int64_t zero = 0;
            atomic_compare_exchange_strong(&lg->reconnect_t0, &zero, w->now_mono);
        }
        w->opened++;
        conn_start(c);
    }
}

/* Fails connections that have waited longer than --connect-timeout for
 * their response (and first body bytes); returns nothing. */
static void scan_timeouts(worker_t *w)
{
    int64_t limit = (int64_t)(w->lg->connect_timeout_s * NS);
    for (size_t i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[i];
        if ((c->flags & F_INFLIGHT) && w->now_mono - c->started_ns > limit)
            conn_fail(c, ERR_CONNECT, "timed out waiting for the response");
    }
}

/* ---------------------------------------------------------- reading -- */

/* Writes what is left of the request; returns 0, or -1 after failing c. */
static int conn_write(conn_t *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            conn_fail(c, ERR_CONNECT, n < 0 ? strerror(errno) : "write returned 0");
            return -1;
        }
        c->req_off += (size_t)n;
    }
    free(c->req);
    c->req = NULL;
    c->state = CS_RECEIVING;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/* Handles the end of a stream (EOF, or the end of a framed body). */
static void conn_ended(conn_t *c, const char *why)
{
    if (goal_reached(c)) {
        conn_close(c);
        c->flags |= F_DEAD;
        return;
    }
    conn_fail(c, ERR_CLOSED_EARLY, why);
}

/* Feeds one read's bytes to the response reader; returns 0, or -1 after
 * the connection was ended. */
static int conn_consume(conn_t *c, const char *bytes, size_t len)
{
    ssize_t used = http_resp_feed(&c->resp, bytes, len, on_body, c);
    if (used == -EBADMSG || (c->resp.head_done && c->resp.status != 200)) {
        char what[32];
        snprintf(what, sizeof(what), "HTTP status %d", c->resp.status);
        conn_fail(c, ERR_HTTP_STATUS, what);
        return -1;
    }
    if (used < 0) {
        conn_fail(c, ERR_PARSE, used == -ENOMEM ? "out of memory" : "malformed HTTP response");
        return -1;
    }
    if (c->resp.head_done && c->w->lg->ready_on_head)
        conn_ready(c);
    if (c->resp.done) {
        conn_ended(c, "the response body ended");
        return -1;
    }
    return 0;
}

/* Reads what the socket has, a bounded number of times. */
static void conn_read(conn_t *c)
{
    worker_t *w = c->w;
    for (int i = 0; i < READ_BUDGET; i++) {
        ssize_t n = read(c->fd, w->rbuf, sizeof(w->rbuf));
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            conn_fail(c, c->resp.head_done ? ERR_CLOSED_EARLY : ERR_CONNECT, strerror(errno));
            return;
        }
        if (n == 0) {
            conn_ended(c, c->resp.head_done ? "the server closed the stream" : "closed before the response");
            return;
        }
        w->now_real = bench_real_ns();
        w->now_mono = bench_mono_ns();
        if (conn_consume(c, w->rbuf, (size_t)n) != 0)
            return;
        if ((size_t)n < sizeof(w->rbuf))
            return;
    }
}

/* Dispatches one epoll readiness event. */
static void conn_handle(conn_t *c, uint32_t events)
{
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_fail(c, ERR_CONNECT, strerror(err));
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR)))
            return;
        c->state = CS_SENDING;
    }
    if (c->state == CS_SENDING && conn_write(c) != 0)
        return;
    if (c->state == CS_RECEIVING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        conn_read(c);
}

/* ----------------------------------------------------------- worker -- */

/* Storm: closes every connection of this worker (our own close, not an
 * error); connections that never reached --storm-from are settled. */
static void close_all(worker_t *w)
{
    for (size_t i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[i];
        settle(c, F_G1_SET, &w->lg->g1_settled);
        if (c->fd >= 0)
            conn_close(c);
    }
    w->closed_done = 1;
    atomic_fetch_add(&w->lg->workers_closed, 1);
}

/* Storm: starts the reconnect phase; connections that were never ready are
 * not reopened and count as settled for --storm-to. */
static void begin_reconnect(worker_t *w)
{
    for (size_t i = 0; i < w->nconns; i++)
        if (!wants_open(&w->conns[i], PH_RECONNECT))
            settle(&w->conns[i], F_G2_SET, &w->lg->g2_settled);
    w->next_open = 0;
    w->opened = 0;
    w->open_t0 = w->now_mono;
    w->reconnect_started = 1;
}

/* The worker's loop: opens, reads and follows the phases until PH_DONE or
 * a hard deadline. */
static void *worker_main(void *arg)
{
    worker_t *w = arg;
    loadgen_t *lg = w->lg;
    struct epoll_event evs[256];
    w->now_mono = bench_mono_ns();
    w->open_t0 = w->now_mono;
    /* the main thread ends every run with PH_DONE; this is only a safety
     * net (an hour more than the longest run, --between included) */
    double longest_s =
        lg->ready_timeout_s + 3 * lg->duration_s + lg->hold_s + 2 * lg->connect_timeout_s + 3600;
    int64_t hard_deadline = w->now_mono + (int64_t)(longest_s * NS);
    while (w->now_mono < hard_deadline) {
        phase_t phase = (phase_t)atomic_load(&lg->phase);
        if (phase == PH_DONE)
            break;
        if (phase >= PH_CLOSE && !w->closed_done)
            close_all(w);
        if (phase == PH_RECONNECT && !w->reconnect_started)
            begin_reconnect(w);
        if (phase == PH_OPEN || phase == PH_RECONNECT || phase == PH_RUN)
            open_some(w, phase == PH_RECONNECT ? PH_RECONNECT : PH_OPEN);
        int n = epoll_wait(w->ep, evs, 256, w->next_open < w->nconns ? 1 : 10);
        w->now_mono = bench_mono_ns();
        w->now_real = bench_real_ns();
        for (int i = 0; i < n; i++)
            conn_handle(evs[i].data.ptr, evs[i].events);
        if (w->now_mono >= w->next_timeout_scan) {
            scan_timeouts(w);
            w->next_timeout_scan = w->now_mono + NS / 4;
        }
        atomic_store_explicit(&w->events_seen, w->events, memory_order_relaxed);
        atomic_store_explicit(&w->inflight_seen, w->inflight, memory_order_relaxed);
        atomic_store_explicit(&w->caught_up_seen, w->caught_up, memory_order_relaxed);
    }
    return NULL;
}

/* ------------------------------------------------------ main thread -- */

/* The main thread's view of stdin: commands arrive as lines. */
typedef struct stdin_reader {
    int open;      /* cleared at EOF */
    size_t len;    /* bytes of the line so far */
    char line[64]; /* longer lines are cut */
} stdin_reader_t;

/* Reads stdin without blocking; returns 1 when a whole line starting with
 * the word has arrived. */
static int stdin_said(stdin_reader_t *in, const char *word)
{
    if (!in->open || word == NULL)
        return 0;
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    for (int i = 0; i < 64 && poll(&pfd, 1, 0) == 1; i++) {
        char ch;
        ssize_t n = read(0, &ch, 1);
        if (n <= 0) {
            in->open = 0;
            return 0;
        }
        if (ch != '\n') {
            if (in->len < sizeof(in->line) - 1)
                in->line[in->len++] = ch;
            continue;
        }
        in->line[in->len] = '\0';
        in->len = 0;
        size_t wl = strlen(word);
        if (strncmp(in->line, word, wl) == 0 && (unsigned char)in->line[wl] <= ' ')
            return 1;
    }
    return 0;
}

/* Prints one progress line to stderr from the workers' published counts. */
static void print_progress(loadgen_t *lg, worker_t *ws, const char *label, double t)
{
    uint64_t events = 0, inflight = 0, caught_up = 0;
    for (long i = 0; i < lg->threads; i++) {
        events += atomic_load_explicit(&ws[i].events_seen, memory_order_relaxed);
        inflight += atomic_load_explicit(&ws[i].inflight_seen, memory_order_relaxed);
        caught_up += atomic_load_explicit(&ws[i].caught_up_seen, memory_order_relaxed);
    }
    pthread_mutex_lock(&lg->error_lock);
    fprintf(stderr,
            "loadgen %s %.0fs: ready %ld/%ld, in flight %llu, events %llu, caught up %llu, first error: %s\n",
            label, t, atomic_load(&lg->ready), lg->connections, (unsigned long long)inflight,
            (unsigned long long)events, (unsigned long long)caught_up,
            lg->first_error[0] ? lg->first_error : "none");
    pthread_mutex_unlock(&lg->error_lock);
}

/* Waits until *counter reaches target (counter may be NULL), the timeout
 * passes, or stdin says word; prints a progress line to stderr every
 * second. Returns 1 when the target was reached, 0 otherwise. */
static int wait_for(loadgen_t *lg, worker_t *ws, const char *label, _Atomic long *counter, long target,
                    double timeout_s, const char *word, stdin_reader_t *in)
{
    int64_t start = bench_mono_ns(), deadline = start + (int64_t)(timeout_s * NS), next_progress = start + NS;
    for (;;) {
        if (counter && atomic_load(counter) >= target)
            return 1;
        int64_t now = bench_mono_ns();
        if (now >= deadline || stdin_said(in, word))
            return 0;
        if (now >= next_progress) {
            print_progress(lg, ws, label, (double)(now - start) / NS);
            next_progress += NS;
        }
        usleep(5000);
    }
}

/* Prints the result line from the merged worker results. */
static void print_result(loadgen_t *lg, worker_t *ws)
{
    hist_t hist = {0};
    uint64_t events = 0, holes = 0, missing = 0, dups = 0, caught_up = 0, errors[ERR_KINDS] = {0};
    int64_t first = 0, last = 0, last_caught = 0;
    long alive = 0, failed = 0;
    for (long t = 0; t < lg->threads; t++) {
        worker_t *w = &ws[t];
        hist_merge(&hist, &w->hist);
        events += w->events;
        holes += w->holes;
        missing += w->missing;
        dups += w->duplicates;
        caught_up += w->caught_up;
        for (int k = 0; k < ERR_KINDS; k++)
            errors[k] += w->errors[k];
        if (w->first_event && (first == 0 || w->first_event < first))
            first = w->first_event;
        if (w->last_event > last)
            last = w->last_event;
        if (w->last_caught_up > last_caught)
            last_caught = w->last_caught_up;
        for (size_t i = 0; i < w->nconns; i++) {
            const conn_t *c = &w->conns[i];
            alive += c->fd >= 0;
            failed += (c->flags & F_DEAD) && !(c->flags & F_READY);
        }
    }
    static const char *const mode_names[] = {"idle", "fanout", "storm"};
    double window = last > first ? (double)(last - first) / NS : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    FILE *f = stdout;
    fprintf(f, "{\"mode\":\"%s\",\"connections\":%ld,\"connected\":%ld,\"failed\":%ld,\"first_error\":",
            mode_names[lg->mode], lg->connections, atomic_load(&lg->ready), failed);
    bench_json_string(f, lg->first_error);
    fprintf(f, ",\"alive\":%ld,\"events\":%llu,\"rate\":%.1f,\"window_s\":%.3f", alive,
            (unsigned long long)events, window > 0 ? (double)events / window : 0.0, window);
    fprintf(f, ",\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu}",
            (unsigned long long)hist_quantile(&hist, 0.5), (unsigned long long)hist_quantile(&hist, 0.9),
            (unsigned long long)hist_quantile(&hist, 0.99), (unsigned long long)hist_quantile(&hist, 0.999),
            (unsigned long long)hist.max_us);
    fprintf(f, ",\"holes\":%llu,\"missing\":%llu,\"duplicates\":%llu", (unsigned long long)holes,
            (unsigned long long)missing, (unsigned long long)dups);
    if (lg->mode == MODE_IDLE)
        fputs(",\"caught_up\":null", f);
    else
        fprintf(f, ",\"caught_up\":%llu", (unsigned long long)caught_up);
    int64_t t0 = atomic_load(&lg->reconnect_t0);
    if (lg->mode == MODE_STORM && t0 && last_caught > t0)
        fprintf(f, ",\"catchup_ms\":%.1f", (double)(last_caught - t0) / 1e6);
    else
        fputs(",\"catchup_ms\":null", f);
    fprintf(f, ",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"errors\":{",
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    for (int k = 0; k < ERR_KINDS; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", err_names[k], (unsigned long long)errors[k]);
    fputs("}}\n", f);
    fflush(f);
}

/* Runs the mode's phases on the main thread while the workers read. */
static void run_phases(loadgen_t *lg, worker_t *ws)
{
    stdin_reader_t in = {.open = 1};
    wait_for(lg, ws, "open", &lg->ready_settled, lg->connections, lg->ready_timeout_s, NULL, &in);
    printf("{\"event\":\"ready\",\"connected\":%ld}\n", atomic_load(&lg->ready));
    fflush(stdout);
    atomic_store(&lg->phase, PH_RUN);
    if (lg->mode == MODE_IDLE) {
        wait_for(lg, ws, "hold", NULL, 0, lg->hold_s, "stop", &in);
    } else if (lg->mode == MODE_FANOUT) {
        if (lg->expect > 0)
            wait_for(lg, ws, "fanout", &lg->g1_settled, lg->connections, lg->duration_s, "stop", &in);
        else
            wait_for(lg, ws, "fanout", NULL, 0, lg->duration_s, "stop", &in);
    } else {
        wait_for(lg, ws, "storm-from", &lg->g1_settled, lg->connections, lg->duration_s, "stop", &in);
        atomic_store(&lg->phase, PH_CLOSE);
        wait_for(lg, ws, "closing", &lg->workers_closed, lg->threads, 30, NULL, &in);
        printf("{\"event\":\"closed\"}\n");
        fflush(stdout);
        if (lg->between) {
            /* its stdout goes to our stderr: our stdout carries only JSON lines */
            buf_t cmd = BUF_INIT;
            int rc = buf_printf(&cmd, "( %s\n) 1>&2", lg->between) == 0 ? system(cmd.base) : -1;
            buf_free(&cmd);
            if (rc != 0)
                fprintf(stderr, "loadgen: --between command exited with status %d\n", rc);
        } else {
            wait_for(lg, ws, "wait-go", NULL, 0, lg->duration_s, "go", &in);
        }
        atomic_store(&lg->phase, PH_RECONNECT);
        wait_for(lg, ws, "storm-to", &lg->g2_settled, lg->connections, lg->duration_s, "stop", &in);
    }
    atomic_store(&lg->phase, PH_DONE);
}

/* ---------------------------------------------------------- options -- */

static void usage(FILE *f)
{
    fputs("Usage: ssehub-loadgen --url-template URL [options]\n"
          "  --mode idle|fanout|storm   what to measure (default fanout)\n"
          "  --url-template URL         http://127.x.x.x:PORT/path, %d = i % topics\n"
          "  --topics K                 topics (default 1)\n"
          "  --connections N            streams (default 1000)\n"
          "  --header 'Name: value'     extra request header (repeatable)\n"
          "  --connect-rate R           connects started per second (0 = no pacing)\n"
          "  --max-inflight N           connects awaiting their response at once (default 500)\n"
          "  --sources N                source addresses 127.0.0.2.. (default 50)\n"
          "  --threads N                epoll threads (default 1)\n"
          "  --ready-on head|body       a stream is ready at its response head, or at its\n"
          "                             first body bytes (default body)\n"
          "  --ready-timeout S          longest wait for all to be ready (default 60)\n"
          "  --connect-timeout S        one connection's wait for readiness (default 20)\n"
          "  --hold S                   idle: seconds to hold once ready (default 10)\n"
          "  --expect E                 fanout: data events per connection to wait for\n"
          "  --duration S               longest wait of each measured phase (default 60)\n"
          "  --seq-start N              first seq each connection expects (default 1)\n"
          "  --storm-from S0            storm: seq every stream must see before the close\n"
          "  --storm-to S1              storm: seq every stream must see after reconnecting\n"
          "  --between CMD              storm: shell command run while closed (else wait\n"
          "                             for a line \"go\" on stdin)\n",
          f);
}

/* Parses the command line into lg; returns 0, or -1 after printing why. */
static int parse_options(loadgen_t *lg, int argc, char **argv)
{
    enum {
        O_MODE = 256,
        O_URL,
        O_TOPICS,
        O_CONNS,
        O_HEADER,
        O_RATE,
        O_INFLIGHT,
        O_SOURCES,
        O_THREADS,
        O_HOLD,
        O_EXPECT,
        O_DURATION,
        O_FROM,
        O_TO,
        O_BETWEEN,
        O_SEQ,
        O_READY_ON,
        O_READY_TO,
        O_CONN_TO,
        O_HELP
    };
    static const struct option opts[] = {{"mode", 1, 0, O_MODE},
                                         {"url-template", 1, 0, O_URL},
                                         {"topics", 1, 0, O_TOPICS},
                                         {"connections", 1, 0, O_CONNS},
                                         {"header", 1, 0, O_HEADER},
                                         {"connect-rate", 1, 0, O_RATE},
                                         {"max-inflight", 1, 0, O_INFLIGHT},
                                         {"sources", 1, 0, O_SOURCES},
                                         {"threads", 1, 0, O_THREADS},
                                         {"hold", 1, 0, O_HOLD},
                                         {"expect", 1, 0, O_EXPECT},
                                         {"duration", 1, 0, O_DURATION},
                                         {"storm-from", 1, 0, O_FROM},
                                         {"storm-to", 1, 0, O_TO},
                                         {"between", 1, 0, O_BETWEEN},
                                         {"seq-start", 1, 0, O_SEQ},
                                         {"ready-on", 1, 0, O_READY_ON},
                                         {"ready-timeout", 1, 0, O_READY_TO},
                                         {"connect-timeout", 1, 0, O_CONN_TO},
                                         {"help", 0, 0, O_HELP},
                                         {0, 0, 0, 0}};
    int opt, bad = 0;
    while (!bad && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_MODE:
            if (strcmp(optarg, "idle") == 0)
                lg->mode = MODE_IDLE;
            else if (strcmp(optarg, "fanout") == 0)
                lg->mode = MODE_FANOUT;
            else if (strcmp(optarg, "storm") == 0)
                lg->mode = MODE_STORM;
            else
                bad = 1;
            break;
        case O_URL:
            lg->url_template = optarg;
            break;
        case O_TOPICS:
            bad = bench_parse_long(optarg, 1, 1000000, &lg->topics);
            break;
        case O_CONNS:
            bad = bench_parse_long(optarg, 1, 1000000, &lg->connections);
            break;
        case O_HEADER:
            bad = lg->nheaders == MAX_HEADERS || strpbrk(optarg, "\r\n") || !strchr(optarg, ':');
            if (!bad)
                lg->headers[lg->nheaders++] = optarg;
            break;
        case O_RATE:
            bad = bench_parse_double(optarg, 1e7, &lg->connect_rate);
            break;
        case O_INFLIGHT:
            bad = bench_parse_long(optarg, 1, 1000000, &lg->max_inflight);
            break;
        case O_SOURCES:
            bad = bench_parse_long(optarg, 1, 65000, &lg->sources);
            break;
        case O_THREADS:
            bad = bench_parse_long(optarg, 1, 64, &lg->threads);
            break;
        case O_HOLD:
            bad = bench_parse_double(optarg, 86400, &lg->hold_s);
            break;
        case O_EXPECT:
            bad = bench_parse_long(optarg, 0, 1000000000, &lg->expect);
            break;
        case O_DURATION:
            bad = bench_parse_double(optarg, 86400, &lg->duration_s);
            break;
        case O_FROM:
            bad = bench_parse_long(optarg, 1, 1000000000, &lg->storm_from);
            break;
        case O_TO:
            bad = bench_parse_long(optarg, 1, 1000000000, &lg->storm_to);
            break;
        case O_BETWEEN:
            lg->between = optarg;
            break;
        case O_SEQ:
            bad = bench_parse_long(optarg, 1, 1000000000, &lg->seq_start);
            break;
        case O_READY_ON:
            bad = strcmp(optarg, "head") != 0 && strcmp(optarg, "body") != 0;
            lg->ready_on_head = strcmp(optarg, "head") == 0;
            break;
        case O_READY_TO:
            bad = bench_parse_double(optarg, 86400, &lg->ready_timeout_s);
            break;
        case O_CONN_TO:
            bad = bench_parse_double(optarg, 3600, &lg->connect_timeout_s);
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            bad = 1;
        }
        for (int i = 0; bad && opt != '?' && opts[i].name; i++)
            if (opts[i].val == opt)
                fprintf(stderr, "ssehub-loadgen: bad value for --%s\n", opts[i].name);
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "ssehub-loadgen: unexpected argument %s\n", argv[optind]);
        bad = 1;
    }
    if (!bad && (lg->url_template == NULL || bench_template_check(lg->url_template) != 0)) {
        fprintf(stderr, "ssehub-loadgen: --url-template is required, with at most one %%d\n");
        bad = 1;
    }
    if (!bad && lg->mode == MODE_STORM && (lg->storm_from == 0 || lg->storm_to <= lg->storm_from)) {
        fprintf(stderr, "ssehub-loadgen: storm needs --storm-from S0 and --storm-to S1 > S0\n");
        bad = 1;
    }
    if (!bad && lg->threads > lg->connections)
        lg->threads = lg->connections;
    if (bad)
        usage(stderr);
    return bad ? -1 : 0;
}

/* Expands the URL template for every topic; returns 0 or -1. */
static int prepare_urls(loadgen_t *lg)
{
    lg->urls = calloc((size_t)lg->topics, sizeof(*lg->urls));
    if (lg->urls == NULL)
        return -1;
    for (long t = 0; t < lg->topics; t++) {
        char url[2200];
        if (bench_template_expand(lg->url_template, t, url, sizeof(url)) < 0 ||
            bench_parse_url(url, &lg->urls[t]) != 0) {
            fprintf(stderr, "ssehub-loadgen: %s is not an http:// URL on 127.0.0.0/8\n", url);
            return -1;
        }
    }
    return 0;
}

/* Raises the open-files soft limit to the hard one; returns 0, or -1 when
 * the connections cannot fit. */
static int raise_fd_limit(long connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)connections + FD_RESERVE > rl.rlim_cur) {
        fprintf(stderr,
                "ssehub-loadgen: %ld connections need more than the open-files limit %llu allows; "
                "run several load generators\n",
                connections, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    loadgen_t lg = {.mode = MODE_FANOUT,
                    .topics = 1,
                    .connections = 1000,
                    .threads = 1,
                    .sources = 50,
                    .max_inflight = 500,
                    .hold_s = 10,
                    .duration_s = 60,
                    .ready_timeout_s = 60,
                    .connect_timeout_s = 20,
                    .seq_start = 1};
    if (parse_options(&lg, argc, argv) != 0 || prepare_urls(&lg) != 0 || raise_fd_limit(lg.connections) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&lg.error_lock, NULL);
    worker_t *ws = calloc((size_t)lg.threads, sizeof(*ws));
    if (ws == NULL)
        return 1;
    for (long t = 0; t < lg.threads; t++) {
        worker_t *w = &ws[t];
        w->lg = &lg;
        w->id = (int)t;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->nconns = (size_t)((lg.connections - t + lg.threads - 1) / lg.threads);
        w->conns = calloc(w->nconns, sizeof(conn_t));
        if (w->ep < 0 || w->conns == NULL)
            return 1;
        w->rate = lg.connect_rate / (double)lg.threads;
        w->max_inflight = (size_t)(lg.max_inflight / lg.threads > 0 ? lg.max_inflight / lg.threads : 1);
        for (size_t i = 0; i < w->nconns; i++) {
            conn_t *c = &w->conns[i];
            c->w = w;
            c->fd = -1;
            c->index = (unsigned)(t + (long)i * lg.threads);
            c->last_seq = (uint64_t)lg.seq_start - 1;
        }
    }
    for (long t = 0; t < lg.threads; t++)
        if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0)
            return 1;
    run_phases(&lg, ws);
    for (long t = 0; t < lg.threads; t++)
        pthread_join(ws[t].thread, NULL);
    print_result(&lg, ws);
    for (long t = 0; t < lg.threads; t++) {
        for (size_t i = 0; i < ws[t].nconns; i++)
            conn_close(&ws[t].conns[i]);
        free(ws[t].conns);
        close(ws[t].ep);
    }
    free(ws);
    free(lg.urls);
    return 0;
}
