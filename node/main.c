/* ssehub-node: settings, listeners (one SO_REUSEPORT socket per worker
 * thread), the worker threads, and signals. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "node/server.h"

static node_shared_t shared;

/* The first SIGTERM starts the drain (SIGINT a faster one); a second
 * signal of either kind ends every stream at once. */
static void on_signal(int sig)
{
    if (atomic_exchange(&shared.stopping, 1))
        atomic_store(&shared.stop_now, 1);
    else if (sig == SIGINT)
        atomic_store(&shared.fast_drain, 1);
}

/* Splits "HOST:PORT" (HOST may be [v6]) and resolves it for a listener;
 * returns 0 and *res, or -1. */
static int resolve_listen(const char *listen, struct addrinfo **res)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    return getaddrinfo(h, colon + 1, &hints, res) == 0 ? 0 : -1;
}

/* Opens one listening socket; with reuseport several threads share the
 * port and the kernel spreads accepts evenly. Returns the fd or -1. */
static int open_listener(const struct addrinfo *ai, int reuseport)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens n listeners on the configured address. SO_REUSEPORT would silently
 * share the port with another process, so a plain bind first proves the
 * port is free. Returns 0, or -1 with a log line. */
static int open_listeners(const char *addr, node_thread_t *threads, int n)
{
    struct addrinfo *ai = NULL;
    if (resolve_listen(addr, &ai) != 0) {
        fprintf(stderr, "ssehub-node: listen: cannot resolve %s\n", addr);
        return -1;
    }
    int probe = open_listener(ai, 0);
    if (probe < 0) {
        fprintf(stderr, "ssehub-node: listen: cannot bind %s: %s\n", addr, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    close(probe);
    for (int i = 0; i < n; i++) {
        if ((threads[i].listen_fd = open_listener(ai, 1)) < 0) {
            fprintf(stderr, "ssehub-node: listen: cannot bind %s: %s\n", addr, strerror(errno));
            freeaddrinfo(ai);
            return -1;
        }
    }
    freeaddrinfo(ai);
    return 0;
}

int main(int argc, char **argv)
{
    ssehub_config_t cfg;
    char err[512];
    int r = config_load(&cfg, CONFIG_FOR_NODE, argc, argv, err, sizeof(err));
    if (r == 1)
        return 0;
    if (r != 0) {
        fprintf(stderr, "ssehub-node: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    shared.cfg = &cfg;
    if (redis_url_parse(cfg.redis_url, &shared.redis, err, sizeof(err)) != 0) {
        fprintf(stderr, "ssehub-node: redis_url: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    srand((unsigned)getpid() ^ (unsigned)time(NULL));

    h2o_config_init(&shared.h2o);
    shared.h2o.server_name = h2o_iovec_init(H2O_STRLIT("ssehub"));
    shared.h2o.http2.graceful_shutdown_timeout = 2000;
    h2o_hostconf_t *host = h2o_config_register_host(&shared.h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    server_register_routes(&shared, host);

    int n = cfg.threads;
    node_thread_t *threads = calloc((size_t)n, sizeof(*threads));
    if (threads == NULL || open_listeners(cfg.listen, threads, n) != 0)
        return 1;
    for (int i = 0; i < n; i++) {
        threads[i].shared = &shared;
        threads[i].index = i;
        pthread_create(&threads[i].tid, NULL, server_thread_main, &threads[i]);
    }
    log_info("node", "listening", json_pack("{s:s,s:i,s:s}", "listen", cfg.listen, "threads", n, "redis",
                                            shared.redis.host));
    for (int i = 0; i < n; i++)
        pthread_join(threads[i].tid, NULL);
    log_info("node", "stopped", NULL);
    free(threads);
    h2o_config_dispose(&shared.h2o);
    config_free(&cfg);
    return 0;
}
