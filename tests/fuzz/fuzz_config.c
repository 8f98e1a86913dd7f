/* Fuzz target for the settings file (common/config.c): each input is
 * written to one memfd and read through config_load's --config FILE, as
 * ssehub-node reads it. config_load must never crash; on success every
 * setting is within the range and checks the table promises, on failure
 * there is a message; config_free runs every time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "common/redis_url.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The file every input is written to, as /proc/self/fd/N. */
static int file_fd = -1;
static char file_path[64];

/* A numeric setting and its promised range (common/config.c's table). */
struct range {
    size_t offset;
    long min, max;
};

/* clang-format off */
#define LONG_FIELD(f, lo, hi) {offsetof(ssehub_config_t, f), lo, hi}
static const struct range long_ranges[] = {
    LONG_FIELD(history_max_events, 1, 10000000),
    LONG_FIELD(history_max_age, 1, 31536000),
    LONG_FIELD(heartbeat_interval, 1, 3600),
    LONG_FIELD(retry_ms, 0, 86400000),
    LONG_FIELD(max_connections, 1, 10000000),
    LONG_FIELD(max_topics_per_connection, 1, 256),
    LONG_FIELD(max_topic_length, 1, 65536),
    LONG_FIELD(client_buffer_bytes, 1024, 1073741824),
    LONG_FIELD(replay_batch, 1, 100000),
    LONG_FIELD(drain_seconds, 0, 3600),
    LONG_FIELD(broker_lease_ms, 100, 600000),
    LONG_FIELD(broker_queue_bytes, 1048576, 68719476736L),
    LONG_FIELD(topic_linger_ms, 0, 3600000),
    LONG_FIELD(http2_max_stream_starts, 1, 1000000),
    LONG_FIELD(replay_memory_events, 0, 100000),
};
/* clang-format on */

/* Every string setting: always a heap string after a successful load. */
#define STRING_FIELD(f) offsetof(ssehub_config_t, f)
static const size_t string_fields[] = {
    STRING_FIELD(listen),
    STRING_FIELD(redis_url),
    STRING_FIELD(prefix),
    STRING_FIELD(ingest_prefix),
    STRING_FIELD(ingest_json_prefix),
    STRING_FIELD(metrics_listen),
    STRING_FIELD(log_level),
    STRING_FIELD(tls_cert),
    STRING_FIELD(tls_key),
    STRING_FIELD(listen_plain),
    STRING_FIELD(jwt_key),
    STRING_FIELD(jwt_algorithm),
    STRING_FIELD(jwt_publisher_key),
    STRING_FIELD(jwt_subscriber_key),
    STRING_FIELD(jwt_key_previous),
    STRING_FIELD(cors_origins),
};

/* Removes every SSEHUB_ variable, so only the file decides the outcome. */
static void clear_ssehub_environment(void)
{
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e != NULL; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "SSEHUB_", 7) != 0 || eq == NULL)
                continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
            unsetenv(name);
            again = 1;
            break;
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    clear_ssehub_environment();
    file_fd = memfd_create("ssehub-fuzz-config", 0);
    FUZZ_CHECK(file_fd >= 0);
    snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
    return 0;
}

/* Returns nonzero when s is one of the NULL-terminated names. */
static int one_of(const char *s, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(s, *names) == 0)
            return 1;
    return 0;
}

/* Returns nonzero for a prefix check_prefix accepts. */
static int good_prefix(const char *p)
{
    if (p[0] == '\0')
        return 0;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("{}*?[]\\", *p) != NULL)
            return 0;
    return 1;
}

/* Checks a loaded configuration against what the table promises. */
static void check_loaded(const ssehub_config_t *c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    static const char *const algs[] = {"HS256", "RS256", NULL};
    for (size_t i = 0; i < sizeof long_ranges / sizeof long_ranges[0]; i++) {
        long v = *(const long *)((const char *)c + long_ranges[i].offset);
        FUZZ_CHECK(v >= long_ranges[i].min && v <= long_ranges[i].max);
    }
    for (size_t i = 0; i < sizeof string_fields / sizeof string_fields[0]; i++)
        FUZZ_CHECK(*(char *const *)((const char *)c + string_fields[i]) != NULL);
    FUZZ_CHECK(c->threads >= 1 && c->threads <= 256);
    FUZZ_CHECK(c->http1_takeover == 0 || c->http1_takeover == 1);
    FUZZ_CHECK(c->subscribe_anonymous == 0 || c->subscribe_anonymous == 1);
    FUZZ_CHECK(one_of(c->log_level, levels) && one_of(c->jwt_algorithm, algs));
    FUZZ_CHECK(good_prefix(c->prefix) && good_prefix(c->ingest_prefix) && good_prefix(c->ingest_json_prefix));
    FUZZ_CHECK(strchr(c->listen, ':') != NULL);
    FUZZ_CHECK(c->metrics_listen[0] == '\0' || strchr(c->metrics_listen, ':') != NULL);
    FUZZ_CHECK(c->listen_plain[0] == '\0' || strchr(c->listen_plain, ':') != NULL);
    redis_url_t url;
    char why[256];
    FUZZ_CHECK(redis_url_parse(c->redis_url, &url, why, sizeof why) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(file_fd, 0) == 0);
    FUZZ_CHECK(size == 0 || pwrite(file_fd, data, size, 0) == (ssize_t)size);
    char *argv[] = {"ssehub-node", "--config", file_path, NULL};
    ssehub_config_t cfg;
    char err[512];
    int rc = config_load(&cfg, CONFIG_FOR_NODE, 3, argv, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0)
        check_loaded(&cfg);
    else
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof err);
    config_free(&cfg);
    return 0;
}
