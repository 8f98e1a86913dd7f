/* ssehub-benchpub: publishes "<seq> <unix_ns> <padding>" payloads at a
 * steady rate, round-robin over topics, for ssehub-loadgen to measure. Three
 * ways in: Redis PUBLISH on sse:<topic> (through ssehub-broker), Redis
 * FCALL ssehub_publish (no broker on the path), or HTTP POST (nchan's
 * publisher location). Redis commands are pipelined on non-blocking sockets
 * (our own RESP writer, hiredis' reply reader); HTTP requests go over
 * keep-alive connections, optionally pipelined. Every topic always uses the
 * same connection, so each topic's events stay in order. With --cluster the
 * Redis named is a seed of a Redis Cluster: every master gets its own
 * connections and each topic goes to the master of its key's slot. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <hiredis/hiredis.h>

#include "common/buf.h"
#include "common/cluster_slots.h"
#include "tests/bench/bench_common.h"
#include "tests/bench/http_resp.h"

#define NS 1000000000LL
#define MAX_CONNS 256       /* in all, over every master */
#define MAX_RECONNECTS 10   /* per connection, then its topics count as errors */
#define COMPACT_BYTES 65536 /* acknowledged bytes kept before the buffer is compacted */

/* ------------------------------------------------------------ types -- */

typedef enum pub_mode { PUB_PUBLISH, PUB_FCALL, PUB_HTTP } pub_mode_t;

/* One connection to Redis or to the HTTP publisher. Requests are queued in
 * `out` and stay there until answered: HTTP requests a server announced it
 * would not read (Connection: close) are sent again on a new connection. */
typedef struct pubconn {
    struct sockaddr_in addr; /* where it connects */
    long master;             /* index into pub_t.masters */
    int fd;                  /* -1 while down */
    int dead;                /* gave up reconnecting */
    int closing;             /* the server said Connection: close */
    int reconnects;
    buf_t out;        /* requests not yet answered, from `acked_off` */
    size_t acked_off; /* bytes of `out` already answered */
    size_t sent_off;  /* bytes of `out` already written */
    size_t *lens;     /* ring of the unanswered requests' lengths */
    size_t ring_head, ring_count, ring_cap;
    redisReader *reader;
    http_resp_t resp;
} pubconn_t;

/* A Redis the connections go to: the one --redis names, or with --cluster
 * each master of the slot map; with what it was sent and answered. */
typedef struct pubmaster {
    struct sockaddr_in addr;
    char name[CLUSTER_HOST_MAX + 8]; /* "host:port" as the slot map gives it */
    long topics, sent, acked;
} pubmaster_t;

/* Settings, per-topic names and results; owned by main. */
typedef struct pub {
    pub_mode_t mode;
    int cluster; /* --redis is a cluster seed */
    struct sockaddr_in addr;
    const char *redis, *channel_template, *key_template, *http_template;
    long topics, count, size, seq_start, window;
    long conns_per_master, nconns; /* nconns = conns_per_master x nmasters */
    double rate, timeout_s;
    char **names;     /* per topic: channel, key or path */
    long *topic_conn; /* per topic: the index of its connection */
    char host[64];    /* HTTP Host header */
    pubmaster_t masters[MAX_CONNS];
    long nmasters;
    pubconn_t conns[MAX_CONNS];
    /* results */
    long sent, acked, errors, unheard;
    int64_t start, last_sent, last_reply;
    char first_error[256];
    char rbuf[65536];
} pub_t;

/* Records the first error text; later ones only count. */
static void note_error(pub_t *p, const char *what, size_t len)
{
    p->errors++;
    if (p->first_error[0] == '\0')
        snprintf(p->first_error, sizeof(p->first_error), "%.*s", (int)len, what);
}

/* ----------------------------------------------------- connections -- */

/* Connects (blocking, it is loopback) and makes the socket non-blocking;
 * returns 0 or -errno. */
static int conn_open(pub_t *p, pubconn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) != 0) {
        int err = errno;
        close(c->fd);
        c->fd = -1;
        return -err;
    }
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    if (p->mode != PUB_HTTP) {
        if (c->reader)
            redisReaderFree(c->reader);
        c->reader = redisReaderCreate();
        if (c->reader == NULL)
            return -ENOMEM;
    }
    http_resp_reset(&c->resp);
    c->closing = 0;
    c->sent_off = c->acked_off;
    return 0;
}

/* Drops the oldest unanswered request from the queue. */
static void pop_request(pubconn_t *c)
{
    c->acked_off += c->lens[c->ring_head];
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_count--;
    if (c->ring_count == 0) {
        buf_clear(&c->out);
        c->acked_off = c->sent_off = 0;
    } else if (c->acked_off > COMPACT_BYTES && c->acked_off * 2 > c->out.len) {
        memmove(c->out.base, c->out.base + c->acked_off, c->out.len - c->acked_off);
        c->out.len -= c->acked_off;
        c->sent_off -= c->acked_off;
        c->acked_off = 0;
    }
}

/* Takes a connection down and opens a new one. Unanswered requests are
 * lost (counted as errors), except after a clean Connection: close, when
 * they are sent again; only unclean losses count toward MAX_RECONNECTS. */
static void conn_down(pub_t *p, pubconn_t *c, const char *why)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    int clean = c->closing;
    if (!clean) {
        char what[160];
        int n = snprintf(what, sizeof(what), "connection lost: %s", why);
        while (c->ring_count > 0) {
            note_error(p, what, (size_t)n);
            pop_request(c);
        }
    }
    if ((!clean && c->reconnects++ >= MAX_RECONNECTS) || conn_open(p, c) != 0) {
        c->dead = 1;
        while (c->ring_count > 0) {
            note_error(p, "connection lost for good", 24);
            pop_request(c);
        }
    }
}

/* ---------------------------------------------------------- requests -- */

/* Formats the start of a payload, "<seq> <ns>", into head; returns its
 * length. */
static int payload_head(char *head, size_t cap, unsigned long long seq)
{
    return snprintf(head, cap, "%llu %lld", seq, (long long)bench_real_ns());
}

/* Appends the payload "<seq> <ns> <padding>" of --size bytes (never
 * shorter than "<seq> <ns>"); returns 0 or -ENOMEM. */
static int append_payload(pub_t *p, buf_t *b, const char *head, int head_len)
{
    if (buf_append(b, head, (size_t)head_len) != 0)
        return -ENOMEM;
    if (p->size > head_len) {
        size_t pad = (size_t)(p->size - head_len - 1);
        if (buf_reserve(b, pad + 1) != 0)
            return -ENOMEM;
        b->base[b->len++] = ' ';
        memset(b->base + b->len, 'x', pad);
        b->len += pad;
        b->base[b->len] = '\0';
    }
    return 0;
}

/* Queues event k (topic k % topics, seq counted per topic) on its
 * connection; returns 0 or -ENOMEM. */
static int queue_event(pub_t *p, pubconn_t *c, long k)
{
    long topic = k % p->topics;
    unsigned long long seq = (unsigned long long)(p->seq_start + k / p->topics);
    const char *name = p->names[topic];
    size_t before = c->out.len;
    char head[48];
    int head_len = payload_head(head, sizeof(head), seq);
    size_t plen = p->size > head_len ? (size_t)p->size : (size_t)head_len;
    int rc;
    if (p->mode == PUB_PUBLISH)
        rc = buf_printf(&c->out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(name), name, plen);
    else if (p->mode == PUB_FCALL)
        rc = buf_printf(&c->out,
                        "*5\r\n$5\r\nFCALL\r\n$14\r\nssehub_publish\r\n$1\r\n1\r\n$%zu\r\n%s\r\n$%zu\r\n",
                        strlen(name), name, plen);
    else
        rc = buf_printf(
            &c->out,
            "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", name,
            p->host, plen);
    if (rc == 0)
        rc = append_payload(p, &c->out, head, head_len);
    if (rc == 0 && p->mode != PUB_HTTP)
        rc = buf_append(&c->out, "\r\n", 2);
    if (rc != 0) {
        buf_truncate(&c->out, before);
        return -ENOMEM;
    }
    c->lens[(c->ring_head + c->ring_count) % c->ring_cap] = c->out.len - before;
    c->ring_count++;
    return 0;
}

/* Writes what is queued; returns nothing (failures take the connection
 * down). */
static void conn_flush(pub_t *p, pubconn_t *c)
{
    for (int i = 0; i < 64 && c->fd >= 0 && c->sent_off < c->out.len; i++) {
        ssize_t n = write(c->fd, c->out.base + c->sent_off, c->out.len - c->sent_off);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_down(p, c, n < 0 ? strerror(errno) : "write returned 0");
            return;
        }
        c->sent_off += (size_t)n;
    }
}

/* ----------------------------------------------------------- replies -- */

/* Counts Redis replies; returns 0, or -1 when the stream is broken. */
static int read_redis_replies(pub_t *p, pubconn_t *c, const char *bytes, size_t len)
{
    if (redisReaderFeed(c->reader, bytes, len) != REDIS_OK)
        return -1;
    for (long i = 0; i < p->window + 1; i++) {
        redisReply *r = NULL;
        if (redisReaderGetReply(c->reader, (void **)&r) != REDIS_OK)
            return -1;
        if (r == NULL)
            return 0;
        if (c->ring_count == 0) {
            freeReplyObject(r);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            note_error(p, r->str, r->len);
        } else {
            p->acked++;
            p->masters[c->master].acked++;
            if (p->mode == PUB_PUBLISH && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
                p->unheard++;
        }
        freeReplyObject(r);
        pop_request(c);
        p->last_reply = bench_mono_ns();
    }
    return 0;
}

/* Counts HTTP responses; returns 0, or -1 when the stream is broken. */
static int read_http_responses(pub_t *p, pubconn_t *c, const char *bytes, size_t len)
{
    while (len > 0) {
        if (c->closing)
            return -1; /* bytes after a Connection: close response */
        ssize_t used = http_resp_feed(&c->resp, bytes, len, NULL, NULL);
        if (used < 0)
            return -1;
        bytes += used;
        len -= (size_t)used;
        if (!c->resp.done)
            continue;
        if (c->ring_count == 0)
            return -1;
        if (c->resp.status >= 200 && c->resp.status < 300) {
            p->acked++;
        } else {
            char what[32];
            note_error(p, what, (size_t)snprintf(what, sizeof(what), "HTTP status %d", c->resp.status));
        }
        pop_request(c);
        p->last_reply = bench_mono_ns();
        c->closing = !c->resp.keep_alive;
        http_resp_reset(&c->resp);
    }
    return 0;
}

/* Reads what a socket has, a bounded number of times. */
static void conn_read(pub_t *p, pubconn_t *c)
{
    for (int i = 0; i < 16 && c->fd >= 0; i++) {
        ssize_t n = read(c->fd, p->rbuf, sizeof(p->rbuf));
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_down(p, c, n < 0 ? strerror(errno) : "closed by the server");
            return;
        }
        int rc = p->mode == PUB_HTTP ? read_http_responses(p, c, p->rbuf, (size_t)n)
                                     : read_redis_replies(p, c, p->rbuf, (size_t)n);
        if (rc != 0) {
            c->closing = 0;
            conn_down(p, c, "unexpected reply");
            return;
        }
        if (c->closing && c->ring_count == 0)
            conn_down(p, c, "Connection: close");
        if ((size_t)n < sizeof(p->rbuf))
            return;
    }
}

/* -------------------------------------------------------------- loop -- */

/* Returns the number of requests still unanswered on all connections. */
static long outstanding(const pub_t *p)
{
    long n = 0;
    for (long i = 0; i < p->nconns; i++)
        n += (long)p->conns[i].ring_count;
    return n;
}

/* Queues every event that is due (pacing), as long as connection windows
 * allow; returns the number of the next event to queue. */
static long queue_due(pub_t *p, long next, int64_t now)
{
    long due = p->count;
    if (p->rate > 0) {
        double d = p->rate * (double)(now - p->start) / NS + 1;
        if (d < (double)due)
            due = (long)d;
    }
    while (next < due) {
        pubconn_t *c = &p->conns[p->topic_conn[next % p->topics]];
        if (c->dead) {
            note_error(p, "connection lost for good", 24);
            next++;
            continue;
        }
        if (c->fd < 0 || (long)c->ring_count >= p->window)
            break;
        if (queue_event(p, c, next) != 0) {
            note_error(p, "out of memory", 13);
        } else {
            p->sent++;
            p->masters[c->master].sent++;
        }
        next++;
        if (next == p->count)
            p->last_sent = now;
    }
    return next;
}

/* Publishes every event and waits for the answers, within --timeout. */
static void run(pub_t *p)
{
    struct pollfd pfds[MAX_CONNS];
    p->start = bench_mono_ns();
    int64_t deadline = p->start + (int64_t)(p->timeout_s * NS);
    long next = 0;
    for (int64_t now = p->start; now < deadline; now = bench_mono_ns()) {
        next = queue_due(p, next, now);
        if (next >= p->count && outstanding(p) == 0)
            break;
        for (long i = 0; i < p->nconns; i++) {
            pubconn_t *c = &p->conns[i];
            conn_flush(p, c);
            pfds[i].fd = c->fd;
            pfds[i].events = POLLIN | (c->fd >= 0 && c->sent_off < c->out.len ? POLLOUT : 0);
        }
        int timeout = p->rate > 0 && next < p->count ? 1 : 10;
        if (poll(pfds, (nfds_t)p->nconns, timeout) <= 0)
            continue;
        for (long i = 0; i < p->nconns; i++)
            if (pfds[i].fd >= 0 && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                conn_read(p, &p->conns[i]);
    }
    for (long i = 0; i < p->nconns; i++)
        while (p->conns[i].ring_count > 0) {
            note_error(p, "no answer before --timeout", 26);
            pop_request(&p->conns[i]);
        }
    if (next < p->count) {
        p->errors += p->count - next;
        if (p->first_error[0] == '\0')
            snprintf(p->first_error, sizeof(p->first_error), "not all events sent before --timeout");
    }
}

/* Prints, with --cluster, what each master was given and answered:
 * ,"masters":[{"addr":"127.0.0.1:7001","topics":..,"sent":..,"acked":..},...] */
static void print_masters(const pub_t *p)
{
    if (!p->cluster)
        return;
    printf(",\"masters\":[");
    for (long i = 0; i < p->nmasters; i++) {
        const pubmaster_t *m = &p->masters[i];
        printf("%s{\"addr\":", i ? "," : "");
        bench_json_string(stdout, m->name);
        printf(",\"topics\":%ld,\"sent\":%ld,\"acked\":%ld}", m->topics, m->sent, m->acked);
    }
    printf("]");
}

/* Prints the result line. */
static void print_result(const pub_t *p)
{
    static const char *const names[] = {"publish", "fcall", "http"};
    int64_t end = p->last_reply > p->start ? p->last_reply : bench_mono_ns();
    double elapsed = (double)(end - p->start) / NS;
    double send_s = p->last_sent > p->start ? (double)(p->last_sent - p->start) / NS : elapsed;
    printf("{\"mode\":\"%s\",\"sent\":%ld,\"acked\":%ld,\"errors\":%ld,\"first_error\":", names[p->mode],
           p->sent, p->acked, p->errors);
    bench_json_string(stdout, p->first_error);
    if (p->mode == PUB_PUBLISH)
        printf(",\"unheard\":%ld", p->unheard);
    printf(",\"elapsed_s\":%.3f,\"send_s\":%.3f,\"rate\":%.1f,\"send_rate\":%.1f", elapsed, send_s,
           elapsed > 0 ? (double)p->acked / elapsed : 0.0, send_s > 0 ? (double)p->sent / send_s : 0.0);
    print_masters(p);
    printf("}\n");
    fflush(stdout);
}

/* ---------------------------------------------------------- options -- */

static void usage(FILE *f)
{
    fputs("Usage: ssehub-benchpub (--redis HOST:PORT | --http-template URL) [options]\n"
          "  --mode publish|fcall|http  how to publish (default: publish, or http with\n"
          "                             --http-template)\n"
          "  --redis HOST:PORT          Redis on 127.0.0.0/8 (publish, fcall)\n"
          "  --cluster                  --redis is a seed of a Redis Cluster: connect to every\n"
          "                             master and send each topic to its slot's master\n"
          "  --channel-template T       publish: channel per topic (default sse:t%d)\n"
          "  --key-template T           fcall: stream key per topic (default ssehub:{t%d}:s)\n"
          "  --http-template URL        http: POST URL per topic (http://127.x.x.x:PORT/pub/t%d)\n"
          "  --topics K                 topics, events go round-robin (default 1)\n"
          "  --rate R                   events per second in total, 0 = unpaced (default 1000)\n"
          "  --count C                  events in total (default 1000)\n"
          "  --size B                   payload bytes (default 100)\n"
          "  --seq-start N              first seq of every topic (default 1)\n"
          "  --redis-conns N            Redis connections, per master with --cluster (default 1)\n"
          "  --http-conns N             HTTP keep-alive connections (default 8)\n"
          "  --window N                 unanswered requests per connection (default 10000\n"
          "                             for Redis, 1 = no pipelining for HTTP)\n"
          "  --timeout S                give up after S seconds (default C/R + 30, or 300)\n",
          f);
}

/* Parses the command line into p; returns 0, or -1 after printing why. */
static int parse_options(pub_t *p, int argc, char **argv)
{
    enum {
        O_MODE = 256,
        O_REDIS,
        O_CHAN,
        O_KEY,
        O_HTTP,
        O_TOPICS,
        O_RATE,
        O_COUNT,
        O_SIZE,
        O_SEQ,
        O_RCONNS,
        O_HCONNS,
        O_WINDOW,
        O_TIMEOUT,
        O_CLUSTER,
        O_HELP
    };
    static const struct option opts[] = {{"mode", 1, 0, O_MODE},
                                         {"redis", 1, 0, O_REDIS},
                                         {"channel-template", 1, 0, O_CHAN},
                                         {"key-template", 1, 0, O_KEY},
                                         {"http-template", 1, 0, O_HTTP},
                                         {"topics", 1, 0, O_TOPICS},
                                         {"rate", 1, 0, O_RATE},
                                         {"count", 1, 0, O_COUNT},
                                         {"size", 1, 0, O_SIZE},
                                         {"seq-start", 1, 0, O_SEQ},
                                         {"redis-conns", 1, 0, O_RCONNS},
                                         {"http-conns", 1, 0, O_HCONNS},
                                         {"window", 1, 0, O_WINDOW},
                                         {"timeout", 1, 0, O_TIMEOUT},
                                         {"cluster", 0, 0, O_CLUSTER},
                                         {"help", 0, 0, O_HELP},
                                         {0, 0, 0, 0}};
    long rconns = 1, hconns = 8, window = 0;
    int opt, bad = 0, mode = -1;
    p->timeout_s = -1;
    while (!bad && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_MODE:
            mode = strcmp(optarg, "publish") == 0 ? PUB_PUBLISH
                   : strcmp(optarg, "fcall") == 0 ? PUB_FCALL
                   : strcmp(optarg, "http") == 0  ? PUB_HTTP
                                                  : -1;
            bad = mode < 0;
            break;
        case O_REDIS:
            p->redis = optarg;
            break;
        case O_CHAN:
            p->channel_template = optarg;
            break;
        case O_KEY:
            p->key_template = optarg;
            break;
        case O_HTTP:
            p->http_template = optarg;
            break;
        case O_TOPICS:
            bad = bench_parse_long(optarg, 1, 1000000, &p->topics);
            break;
        case O_RATE:
            bad = bench_parse_double(optarg, 1e9, &p->rate);
            break;
        case O_COUNT:
            bad = bench_parse_long(optarg, 0, 2000000000, &p->count);
            break;
        case O_SIZE:
            bad = bench_parse_long(optarg, 1, 16 * 1024 * 1024, &p->size);
            break;
        case O_SEQ:
            bad = bench_parse_long(optarg, 1, 1000000000000L, &p->seq_start);
            break;
        case O_RCONNS:
            bad = bench_parse_long(optarg, 1, MAX_CONNS, &rconns);
            break;
        case O_HCONNS:
            bad = bench_parse_long(optarg, 1, MAX_CONNS, &hconns);
            break;
        case O_WINDOW:
            bad = bench_parse_long(optarg, 1, 1000000, &window);
            break;
        case O_TIMEOUT:
            bad = bench_parse_double(optarg, 86400, &p->timeout_s);
            break;
        case O_CLUSTER:
            p->cluster = 1;
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
                fprintf(stderr, "ssehub-benchpub: bad value for --%s\n", opts[i].name);
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "ssehub-benchpub: unexpected argument %s\n", argv[optind]);
        bad = 1;
    }
    p->mode = mode >= 0 ? (pub_mode_t)mode : p->http_template ? PUB_HTTP : PUB_PUBLISH;
    if (!bad && p->mode == PUB_HTTP && p->http_template == NULL) {
        fprintf(stderr, "ssehub-benchpub: http needs --http-template\n");
        bad = 1;
    }
    if (!bad && p->mode == PUB_HTTP && p->cluster) {
        fprintf(stderr, "ssehub-benchpub: --cluster is for Redis (publish, fcall)\n");
        bad = 1;
    }
    if (!bad && p->mode != PUB_HTTP && (p->redis == NULL || bench_parse_hostport(p->redis, &p->addr) != 0)) {
        fprintf(stderr, "ssehub-benchpub: --redis HOST:PORT on 127.0.0.0/8 is required\n");
        bad = 1;
    }
    if (bad) {
        usage(stderr);
        return -1;
    }
    p->conns_per_master = p->mode == PUB_HTTP ? hconns : rconns;
    p->window = window ? window : p->mode == PUB_HTTP ? 1 : 10000;
    if (p->timeout_s < 0)
        p->timeout_s = p->rate > 0 ? (double)p->count / p->rate + 30 : 300;
    return 0;
}

/* Expands the template of the mode for every topic; returns 0 or -1. */
static int prepare_names(pub_t *p)
{
    const char *tmpl = p->mode == PUB_PUBLISH ? (p->channel_template ? p->channel_template : "sse:t%d")
                       : p->mode == PUB_FCALL ? (p->key_template ? p->key_template : "ssehub:{t%d}:s")
                                              : p->http_template;
    if (bench_template_check(tmpl) != 0) {
        fprintf(stderr, "ssehub-benchpub: %s: a template holds at most one %%d\n", tmpl);
        return -1;
    }
    p->names = calloc((size_t)p->topics, sizeof(*p->names));
    if (p->names == NULL)
        return -1;
    for (long t = 0; t < p->topics; t++) {
        char name[2200];
        if (bench_template_expand(tmpl, t, name, sizeof(name)) < 0)
            return -1;
        if (p->mode == PUB_HTTP) {
            bench_url_t u;
            if (bench_parse_url(name, &u) != 0) {
                fprintf(stderr, "ssehub-benchpub: %s is not an http:// URL on 127.0.0.0/8\n", name);
                return -1;
            }
            if (t > 0 &&
                (u.addr.sin_addr.s_addr != p->addr.sin_addr.s_addr || u.addr.sin_port != p->addr.sin_port)) {
                fprintf(stderr, "ssehub-benchpub: every topic's URL must name the same server\n");
                return -1;
            }
            p->addr = u.addr;
            snprintf(p->host, sizeof(p->host), "%s", u.host);
            p->names[t] = strdup(u.path);
        } else {
            p->names[t] = strdup(name);
        }
        if (p->names[t] == NULL)
            return -1;
    }
    return 0;
}

/* --------------------------------------------------------- routing -- */

/* Reads the slot map from the seed --redis names (blocking: it is
 * loopback); returns 0, or -1 after printing why. */
static int read_slot_map(const pub_t *p, cluster_map_t *m)
{
    char host[INET_ADDRSTRLEN], err[256];
    inet_ntop(AF_INET, &p->addr.sin_addr, host, sizeof(host));
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout(host, ntohs(p->addr.sin_port), tv);
    redisReply *r = NULL;
    if (ctx != NULL && ctx->err == 0 && redisSetTimeout(ctx, tv) == REDIS_OK)
        r = redisCommand(ctx, "CLUSTER SLOTS");
    int ok = r != NULL && cluster_map_from_slots_reply(m, r, host, err, sizeof(err)) == 0;
    if (!ok)
        fprintf(stderr, "ssehub-benchpub: %s: %s\n", p->redis,
                r != NULL                 ? err
                : ctx != NULL && ctx->err ? ctx->errstr
                                          : "cannot connect");
    freeReplyObject(r);
    redisFree(ctx);
    return ok ? 0 : -1;
}

/* Makes every master of the map a pubmaster; returns 0, or -1 after
 * printing why (too many connections, a master off loopback). */
static int masters_from_map(pub_t *p, const cluster_map_t *m)
{
    if ((long)m->nshards * p->conns_per_master > MAX_CONNS) {
        fprintf(stderr, "ssehub-benchpub: %zu masters x %ld connections is over %d\n", m->nshards,
                p->conns_per_master, MAX_CONNS);
        return -1;
    }
    p->nmasters = (long)m->nshards;
    for (long i = 0; i < p->nmasters; i++) {
        pubmaster_t *pm = &p->masters[i];
        snprintf(pm->name, sizeof(pm->name), "%s:%d", m->shards[i].host, m->shards[i].port);
        if (bench_parse_hostport(pm->name, &pm->addr) != 0) {
            fprintf(stderr, "ssehub-benchpub: master %s is not on 127.0.0.0/8\n", pm->name);
            return -1;
        }
    }
    return 0;
}

/* Gives every topic its connection: the master of its name's slot with
 * --cluster (the key's for fcall; a channel's slot just spreads classic
 * PUBLISH over the masters), else the one Redis or HTTP server; the topics
 * of a master take its connections in turn. Returns 0, or -1 after printing
 * why. */
static int route_topics(pub_t *p, const cluster_map_t *m)
{
    p->topic_conn = calloc((size_t)p->topics, sizeof(*p->topic_conn));
    if (p->topic_conn == NULL)
        return -1;
    for (long t = 0; t < p->topics; t++) {
        long master = 0;
        if (m != NULL) {
            master = cluster_map_shard_of_key(m, p->names[t], strlen(p->names[t]));
            if (master < 0) {
                fprintf(stderr, "ssehub-benchpub: no master serves the slot of %s\n", p->names[t]);
                return -1;
            }
        }
        pubmaster_t *pm = &p->masters[master];
        p->topic_conn[t] = master * p->conns_per_master + pm->topics++ % p->conns_per_master;
    }
    p->nconns = p->nmasters * p->conns_per_master;
    for (long i = 0; i < p->nconns; i++) {
        p->conns[i].master = i / p->conns_per_master;
        p->conns[i].addr = p->masters[p->conns[i].master].addr;
    }
    return 0;
}

/* Sets up the masters and the route of every topic: with --cluster from
 * the seed's slot map, else one "master", the address of --redis or of the
 * HTTP template. Returns 0, or -1 after printing why. */
static int prepare_routes(pub_t *p)
{
    if (!p->cluster) {
        p->nmasters = 1;
        p->masters[0].addr = p->addr;
        return route_topics(p, NULL);
    }
    cluster_map_t *m = malloc(sizeof(*m)); /* 32 KB */
    if (m == NULL)
        return -1;
    cluster_map_init(m);
    int rc = read_slot_map(p, m) == 0 && masters_from_map(p, m) == 0 && route_topics(p, m) == 0 ? 0 : -1;
    cluster_map_free(m);
    free(m);
    return rc;
}

int main(int argc, char **argv)
{
    pub_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return 1;
    p->topics = 1;
    p->count = 1000;
    p->size = 100;
    p->seq_start = 1;
    p->rate = 1000;
    if (parse_options(p, argc, argv) != 0 || prepare_names(p) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    if (prepare_routes(p) != 0)
        return 1;
    for (long i = 0; i < p->nconns; i++) {
        pubconn_t *c = &p->conns[i];
        c->fd = -1;
        c->ring_cap = (size_t)p->window;
        c->lens = calloc(c->ring_cap, sizeof(*c->lens));
        int rc = c->lens ? conn_open(p, c) : -ENOMEM;
        if (rc != 0) {
            fprintf(stderr, "ssehub-benchpub: cannot connect: %s\n", strerror(-rc));
            return 1;
        }
    }
    run(p);
    print_result(p);
    int status = p->errors == 0 ? 0 : 1;
    for (long i = 0; i < p->nconns; i++) {
        pubconn_t *c = &p->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        if (c->reader)
            redisReaderFree(c->reader);
        http_resp_free(&c->resp);
        buf_free(&c->out);
        free(c->lens);
    }
    for (long t = 0; t < p->topics; t++)
        free(p->names[t]);
    free(p->names);
    free(p->topic_conn);
    free(p);
    return status;
}
