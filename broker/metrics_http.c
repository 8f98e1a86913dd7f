/* The broker's metrics port (see metrics_http.h). Requests are tiny and
 * rare (a scrape every few seconds), so each connection reads one request
 * head, writes one answer and closes; at most MAX_CONNS are open, each for
 * at most DEADLINE seconds. */
#include "broker/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "common/buf.h"
#include "common/log.h"

#define MAX_CONNS 16
#define HEAD_MAX 4096
#define DEADLINE 5.0

typedef struct metrics_conn {
    struct metrics_http *m;
    ev_io io;
    ev_timer timer;
    char head[HEAD_MAX];
    size_t len;
    buf_t out;
    size_t sent;
    int open;
} metrics_conn_t;

struct metrics_http {
    struct ev_loop *loop;
    const ingest_t *in;
    int fd;
    ev_io accept_io;
    metrics_conn_t conns[MAX_CONNS];
};

/* ---- the exposition ------------------------------------------------------------ */

static void counter(buf_t *out, const char *name, const char *help, unsigned long long v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, v);
}

static void gauge(buf_t *out, const char *name, const char *help, unsigned long long v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, v);
}

void metrics_http_render(const ingest_t *in, buf_t *out)
{
    ingest_counters_t c = ingest_counters(in);
    ingest_status_t s = ingest_status(in);
    buf_printf(out, "# HELP ssehub_broker_info Always 1; the labels describe the broker.\n"
                    "# TYPE ssehub_broker_info gauge\nssehub_broker_info{version=\"%s\"} 1\n",
               SSEHUB_VERSION);
    counter(out, "ssehub_broker_ingested_total", "Messages stored (the publish function returned an id).", c.ingested);
    counter(out, "ssehub_broker_refused_topic_total", "Messages on a channel naming an invalid topic; not stored.",
            c.refused_topic);
    counter(out, "ssehub_broker_malformed_json_total", "ssejson: payloads refused; not stored.", c.malformed_json);
    counter(out, "ssehub_broker_oversized_total", "Messages whose data is over max_event_bytes; not stored.",
            c.oversized);
    counter(out, "ssehub_broker_publish_errors_total", "Publish calls Redis refused.", c.publish_errors);
    counter(out, "ssehub_broker_dropped_total", "Messages dropped: queue full (broker_queue_bytes) or left at shutdown.",
            c.dropped);
    counter(out, "ssehub_broker_duplicates_total", "Messages already stored (a resend, or by another broker).",
            c.duplicates);
    counter(out, "ssehub_broker_fenced_total", "Writes refused because a newer leader had written the topic.", c.fenced);
    gauge(out, "ssehub_broker_queued_messages", "Messages waiting to be sent (or buffered as standby).", s.queued);
    gauge(out, "ssehub_broker_queued_bytes", "Bytes of those messages (bounded by broker_queue_bytes).", s.queued_bytes);
    gauge(out, "ssehub_broker_lease_held", "1 while this broker holds the leader lease and ingests.", (unsigned)s.leader);
    gauge(out, "ssehub_broker_redis_up", "1 while both Redis connections are ready.", (unsigned)s.redis_up);
}

/* ---- connections ------------------------------------------------------------------ */

static void conn_close(metrics_conn_t *c)
{
    if (!c->open)
        return;
    ev_io_stop(c->m->loop, &c->io);
    ev_timer_stop(c->m->loop, &c->timer);
    close(c->io.fd);
    buf_free(&c->out);
    c->open = 0;
}

/* Builds the answer to the request head in c->head. */
static void conn_answer(metrics_conn_t *c)
{
    const char *status = "200 OK", *type = "text/plain; version=0.0.4; charset=utf-8";
    buf_t body = BUF_INIT;
    if (strncmp(c->head, "GET /metrics ", 13) == 0 || strncmp(c->head, "GET /metrics?", 13) == 0) {
        metrics_http_render(c->m->in, &body);
    } else if (strncmp(c->head, "GET /healthz ", 13) == 0) {
        ingest_status_t s = ingest_status(c->m->in);
        type = "application/json";
        if (!s.redis_up)
            status = "503 Service Unavailable";
        buf_printf(&body, "{\"status\":\"%s\",\"role\":\"%s\",\"redis\":%s}", s.redis_up ? "ok" : "redis_unavailable",
                   s.leader ? "leader" : "standby", s.redis_up ? "true" : "false");
    } else if (strncmp(c->head, "GET ", 4) != 0) {
        status = "405 Method Not Allowed";
        type = "application/json";
        buf_printf(&body, "{\"error\":\"method_not_allowed\",\"message\":\"use GET\"}");
    } else {
        status = "404 Not Found";
        type = "application/json";
        buf_printf(&body, "{\"error\":\"not_found\",\"message\":\"GET /metrics or /healthz\"}");
    }
    buf_printf(&c->out, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                        "Connection: close\r\n\r\n", status, type, body.len);
    buf_append(&c->out, body.base ? body.base : "", body.len);
    buf_free(&body);
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    metrics_conn_t *c = w->data;
    (void)revents;
    if (c->out.len == 0) {
        ssize_t n = read(w->fd, c->head + c->len, HEAD_MAX - 1 - c->len);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            conn_close(c);
            return;
        }
        c->len += (size_t)n;
        c->head[c->len] = '\0';
        if (strstr(c->head, "\r\n\r\n") == NULL && strstr(c->head, "\n\n") == NULL) {
            if (c->len == HEAD_MAX - 1)
                conn_close(c); /* a head this large is not a scrape */
            return;
        }
        conn_answer(c);
        ev_io_stop(loop, w);
        ev_io_set(w, w->fd, EV_WRITE);
        ev_io_start(loop, w);
        return;
    }
    ssize_t n = write(w->fd, c->out.base + c->sent, c->out.len - c->sent);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || (c->sent += (size_t)n) == c->out.len)
        conn_close(c);
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    conn_close(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    metrics_http_t *m = w->data;
    (void)revents;
    for (;;) {
        int fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        metrics_conn_t *c = NULL;
        for (int i = 0; i < MAX_CONNS && c == NULL; i++)
            if (!m->conns[i].open)
                c = &m->conns[i];
        if (c == NULL) {
            close(fd); /* scrapes are rare: more at once is abuse */
            continue;
        }
        *c = (metrics_conn_t){.m = m, .open = 1, .out = BUF_INIT};
        ev_io_init(&c->io, on_conn_io, fd, EV_READ);
        c->io.data = c;
        ev_timer_init(&c->timer, on_conn_timeout, DEADLINE, 0);
        c->timer.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_start(loop, &c->timer);
    }
}

/* ---- the port ------------------------------------------------------------------------ */

metrics_http_t *metrics_http_start(struct ev_loop *loop, const char *listen_addr, const ingest_t *in, char *err,
                                   size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen_addr, ':');
    if (colon == NULL || (size_t)(colon - listen_addr) >= sizeof(host)) {
        snprintf(err, errlen, "metrics_listen: %s is not HOST:PORT", listen_addr);
        return NULL;
    }
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0) {
        snprintf(err, errlen, "metrics_listen: cannot resolve %s", listen_addr);
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "metrics_listen: cannot bind %s: %s", listen_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    metrics_http_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->in = in;
    m->fd = fd;
    ev_io_init(&m->accept_io, on_accept, fd, EV_READ);
    m->accept_io.data = m;
    ev_io_start(loop, &m->accept_io);
    return m;
}

void metrics_http_stop(metrics_http_t *m)
{
    if (m == NULL)
        return;
    ev_io_stop(m->loop, &m->accept_io);
    close(m->fd);
    for (int i = 0; i < MAX_CONNS; i++)
        conn_close(&m->conns[i]);
    free(m);
}
