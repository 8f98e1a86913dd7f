/* ssehub-node: settings, listeners (one SO_REUSEPORT socket per worker
 * thread), the worker threads, and signals. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "node/registry.h"
#include "node/server.h"

static node_shared_t shared;

/* Worker threads that have finished: each posts once, then waits for the
 * process to end. They are not joined: h2o 2.2.5 keeps freed memory-pool
 * chunks in a thread-local list it never releases, which an exited thread
 * leaves unreachable (a leak to LeakSanitizer) and a waiting one keeps
 * reachable until exit. */
static sem_t workers_done;

static void *worker_main(void *arg)
{
    server_thread_main(arg);
    sem_post(&workers_done);
    for (;;)
        pause();
    return NULL;
}

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

/* Opens listener number `slot` of n threads on addr. SO_REUSEPORT would
 * silently share the port with another process, so a plain bind first
 * proves the port is free. Returns 0, or -1 with a message. */
static int open_listeners(const char *addr, node_thread_t *threads, int n, int slot, SSL_CTX *ssl_ctx)
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
        threads[i].listeners[slot].accept_ctx.ssl_ctx = ssl_ctx;
        threads[i].nlisteners = slot + 1;
        if ((threads[i].listeners[slot].fd = open_listener(ai, 1)) < 0) {
            fprintf(stderr, "ssehub-node: listen: cannot bind %s: %s\n", addr, strerror(errno));
            freeaddrinfo(ai);
            return -1;
        }
    }
    freeaddrinfo(ai);
    return 0;
}

/* Prints the first queued OpenSSL error after a message about a setting. */
static void tls_error(const char *setting, const char *what, const char *path)
{
    char reason[256] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    fprintf(stderr, "ssehub-node: %s: %s %s%s%s\n", setting, what, path, reason[0] ? ": " : "", reason);
    ERR_clear_error();
}

/* Builds the TLS context of `listen` from tls_cert and tls_key: TLS 1.2+,
 * ALPN h2 and http/1.1, buffers released while a connection is idle.
 * Returns it, or NULL after a message naming the setting. */
static SSL_CTX *tls_setup(const ssehub_config_t *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_error("tls_cert", "cannot create a TLS context for", cfg->tls_cert);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        tls_error("tls_cert", "cannot load the certificate chain", cfg->tls_cert);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        tls_error("tls_key", "cannot load the private key", cfg->tls_key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error("tls_key", "does not match the certificate in tls_cert:", cfg->tls_key);
    } else {
        h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

/* Checks the settings that depend on each other and builds the TLS
 * context; returns 0, or -1 after a message naming the setting. */
static int setup(ssehub_config_t *cfg)
{
    char err[512];
    if ((cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0')) {
        fprintf(stderr, "ssehub-node: %s: set tls_cert and tls_key together\n",
                cfg->tls_cert[0] ? "tls_key" : "tls_cert");
        return -1;
    }
    if (cfg->listen_plain[0] != '\0' && cfg->tls_cert[0] == '\0') {
        fprintf(stderr, "ssehub-node: listen_plain: only with tls_cert (`listen` is already cleartext)\n");
        return -1;
    }
    if (redis_url_parse(cfg->redis_url, &shared.redis, err, sizeof(err)) != 0) {
        fprintf(stderr, "ssehub-node: redis_url: %s\n", err);
        return -1;
    }
    if (redis_url_set_sentinel_password(&shared.redis, cfg->redis_sentinel_password, err, sizeof(err)) != 0) {
        fprintf(stderr, "ssehub-node: %s\n", err);
        return -1;
    }
    if (auth_keys_load(cfg, &shared.keys, err, sizeof(err)) != 0) {
        fprintf(stderr, "ssehub-node: %s\n", err);
        return -1;
    }
    if (cfg->tls_cert[0] != '\0' && (shared.ssl_ctx = tls_setup(cfg)) == NULL)
        return -1;
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
    if (setup(&cfg) != 0) {
        auth_keys_free(&shared.keys);
        config_free(&cfg);
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
    /* publish bodies: an event of up to 1 MiB, form-encoded (413 beyond) */
    shared.h2o.max_request_entity_size = 3 * 1024 * 1024;
    h2o_hostconf_t *host = h2o_config_register_host(&shared.h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    server_register_routes(&shared, host);

    int n = cfg.threads, rc = 0;
    sem_init(&workers_done, 0, 0);
    node_thread_t *threads = calloc((size_t)n, sizeof(*threads));
    if (threads == NULL || open_listeners(cfg.listen, threads, n, 0, shared.ssl_ctx) != 0 ||
        (cfg.listen_plain[0] != '\0' && open_listeners(cfg.listen_plain, threads, n, 1, NULL) != 0)) {
        rc = 1;
        goto out;
    }
    shared.threads = threads;
    shared.nthreads = n;
    registry_init(&shared);
    for (int i = 0; i < n; i++) {
        threads[i].shared = &shared;
        threads[i].index = i;
        pthread_create(&threads[i].tid, NULL, worker_main, &threads[i]);
    }
    log_info("node", "listening",
             json_pack("{s:s,s:s,s:s,s:i,s:s}", "listen", cfg.listen, "tls", shared.ssl_ctx ? "on" : "off",
                       "listen_plain", cfg.listen_plain, "threads", n, "redis", shared.redis.host));
    for (int i = 0; i < n; i++)
        while (sem_wait(&workers_done) != 0 && errno == EINTR)
            ;
    log_info("node", "stopped", NULL);
out:
    if (threads != NULL && rc != 0) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < threads[i].nlisteners; k++)
                if (threads[i].listeners[k].fd > 0)
                    close(threads[i].listeners[k].fd);
    }
    free(threads);
    h2o_config_dispose(&shared.h2o);
    if (shared.ssl_ctx != NULL)
        SSL_CTX_free(shared.ssl_ctx);
    auth_keys_free(&shared.keys);
    config_free(&cfg);
    return rc;
}
