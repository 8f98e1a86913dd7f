/* ssehub-broker: reads the settings, runs the ingest on libev's default
 * loop until SIGTERM/SIGINT, then drains, releases the leader lease if it
 * holds it (a standby takes over at once) and exits. Exit codes: 0 after a
 * clean stop (or --help), 1 when start-up fails, 2 for bad settings. */
#include <signal.h>
#include <stdio.h>

#include <ev.h>
#include <jansson.h>

#include "broker/ingest.h"
#include "broker/metrics_http.h"
#include "common/config.h"
#include "common/log.h"

#define EXIT_BAD_CONFIG 2

/* The one broker context: everything main owns while the loop runs. */
typedef struct broker {
    struct ev_loop *loop;
    ssehub_config_t cfg;
    ingest_t *ingest;
    metrics_http_t *metrics; /* the metrics_listen port, or NULL */
    ev_signal sigterm, sigint;
} broker_t;

/* Called by the ingest once drained: ends the loop. */
static void on_ingest_done(void *arg)
{
    broker_t *b = arg;
    ev_break(b->loop, EVBREAK_ALL);
}

/* SIGTERM/SIGINT: stop reading and drain; a second signal gives up waiting. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop, (void)revents;
    broker_t *b = w->data;
    log_info("broker", "signal received, stopping", json_pack("{s:i}", "signal", w->signum));
    ingest_stop(b->ingest, on_ingest_done, b);
}

/* Reads the settings and applies the log level; returns 0 to go on, or the
 * process exit code (0 after --help, 2 for a bad setting). */
static int broker_configure(broker_t *b, int argc, char **argv, int *exit_code)
{
    char err[512];
    int r = config_load(&b->cfg, CONFIG_FOR_BROKER, argc, argv, err, sizeof err);
    if (r == 1) {
        *exit_code = 0;
        return -1;
    }
    if (r < 0) {
        fprintf(stderr, "ssehub-broker: %s\n", err);
        *exit_code = EXIT_BAD_CONFIG;
        return -1;
    }
    if (log_set_level(b->cfg.log_level) != 0) {
        fprintf(stderr, "ssehub-broker: log_level: unknown level \"%s\"\n", b->cfg.log_level);
        config_free(&b->cfg);
        *exit_code = EXIT_BAD_CONFIG;
        return -1;
    }
    return 0;
}

/* Installs the stop signals on the loop. */
static void broker_watch_signals(broker_t *b)
{
    ev_signal_init(&b->sigterm, on_signal, SIGTERM);
    ev_signal_init(&b->sigint, on_signal, SIGINT);
    b->sigterm.data = b->sigint.data = b;
    ev_signal_start(b->loop, &b->sigterm);
    ev_signal_start(b->loop, &b->sigint);
}

int main(int argc, char **argv)
{
    broker_t b = {0};
    int code = 0;
    if (broker_configure(&b, argc, argv, &code) != 0)
        return code;
    signal(SIGPIPE, SIG_IGN); /* a write to a dead Redis socket must not kill us */
    b.loop = ev_default_loop(EVFLAG_AUTO);
    char err[512];
    b.ingest = b.loop ? ingest_create(b.loop, &b.cfg, err, sizeof err) : NULL;
    if (b.ingest == NULL) {
        fprintf(stderr, "ssehub-broker: %s\n", b.loop ? err : "cannot create the event loop");
        config_free(&b.cfg);
        return b.loop ? EXIT_BAD_CONFIG : 1;
    }
    if (b.cfg.metrics_listen[0] != '\0' &&
        (b.metrics = metrics_http_start(b.loop, b.cfg.metrics_listen, b.ingest, err, sizeof err)) == NULL) {
        fprintf(stderr, "ssehub-broker: %s\n", err);
        ingest_free(b.ingest);
        ev_loop_destroy(b.loop);
        config_free(&b.cfg);
        return 1;
    }
    broker_watch_signals(&b);
    log_info("broker", "starting",
             json_pack("{s:s, s:s, s:s}", "ingest_prefix", b.cfg.ingest_prefix, "ingest_json_prefix",
                       b.cfg.ingest_json_prefix, "prefix", b.cfg.prefix));
    ingest_start(b.ingest);
    ev_run(b.loop, 0);
    ev_signal_stop(b.loop, &b.sigterm);
    ev_signal_stop(b.loop, &b.sigint);
    metrics_http_stop(b.metrics);
    ingest_free(b.ingest);
    ev_loop_destroy(b.loop);
    config_free(&b.cfg);
    return 0;
}
