/* Settings shared by ssehub-node and ssehub-broker, read in layers:
 * built-in defaults < JSON file (--config FILE) < SSEHUB_* environment <
 * command-line flags. The names are part of the contract (DESIGN §6). */
#ifndef SSEHUB_COMMON_CONFIG_H
#define SSEHUB_COMMON_CONFIG_H

#include <stddef.h>

/* Which binary is reading the settings: --help lists only what it uses,
 * but every known name is accepted by both so one file can serve both. */
enum {
    CONFIG_FOR_NODE = 1,
    CONFIG_FOR_BROKER = 2,
};

/* Every setting, already validated. Strings are heap copies owned by the
 * struct (config_free releases them); numbers are in the unit named. */
typedef struct ssehub_config {
    char *listen;                    /* HOST:PORT the node serves on; "0.0.0.0:8080" */
    char *redis_url;                 /* redis://[user:password@]host:port[/db] */
    char *redis_sentinel_password;   /* the Sentinels' requirepass (redis-sentinel:// URLs), "" */
    int threads;                     /* node worker threads; 0 in defaults = number of cores */
    char *prefix;                    /* internal key prefix, "ssehub:" */
    char *ingest_prefix;             /* plain ingest channel prefix, "sse:" */
    char *ingest_json_prefix;        /* JSON ingest channel prefix, "ssejson:" */
    long history_max_events;         /* ~events kept per topic stream, 1000 */
    long history_max_age;            /* seconds an event is kept, 86400 */
    long heartbeat_interval;         /* seconds between comment heartbeats, 15 */
    long retry_ms;                   /* SSE retry: sent to clients, 3000 */
    long max_connections;            /* streams per node, 100000 */
    long max_connections_per_ip;     /* streams per client address and node, 0 = no cap */
    long max_topics_per_connection;  /* 64 */
    long max_topic_length;           /* bytes, 1024 */
    long client_buffer_bytes;        /* outbound cap per client, 1048576 */
    long replay_batch;               /* entries per Redis read during replay, 500 */
    long drain_seconds;              /* 30 */
    long broker_lease_ms;            /* 5000 */
    long broker_queue_bytes;         /* 268435456 */
    long max_event_bytes;            /* largest event data accepted on any publish path, 1048576 */
    long max_request_header_bytes;   /* request line + headers a node accepts, 32768 */
    char *metrics_listen;            /* broker's HTTP port, "" = off */
    char *log_level;                 /* debug|info|warn|error, "info" */
    int http1_takeover;              /* HTTP/1.1 streams leave h2o after the head (~0.4 KB idle), 1 */
    long replay_memory_events;       /* last events of each active topic kept in node memory, 256 */
    long topic_linger_ms;            /* a topic stays subscribed this long after its last client, 5000 */
    char *tls_cert;                  /* PEM certificate chain; set: `listen` serves TLS, "" */
    char *tls_key;                   /* PEM private key of tls_cert, "" */
    char *listen_plain;              /* with TLS: extra cleartext HTTP/1.1 + h2c port, "" = none */
    long http2_max_stream_starts;    /* HTTP/2 streams one connection may start per second, 200 */
    char *jwt_key;                   /* HS256 secret or RS256 PEM public key file; "" = tokens off */
    char *jwt_algorithm;             /* HS256 | RS256 */
    char *jwt_publisher_key;         /* publishers' key when different from jwt_key, "" */
    char *jwt_subscriber_key;        /* subscribers' key when different from jwt_key, "" */
    char *jwt_key_previous;          /* also accepted, for both roles, during a key rotation, "" */
    int subscribe_anonymous;         /* streams without a token (public updates only), 1 */
    char *cors_origins;              /* origins allowed cross-origin ("*" or a list), "" = none */
    char *node_id;                   /* name in the node registry, "" = <hostname>:<listen port> */
} ssehub_config_t;

/* Fills *cfg from all layers. argv may hold --config FILE, --help, and
 * --name-with-dashes VALUE or --name-with-dashes=VALUE for every setting.
 * Returns 0 on success; 1 when --help was printed (to stdout) and the
 * program should exit 0; -1 on a bad value, unknown key or unknown flag,
 * with a one-line message naming the setting written to err. */
int config_load(ssehub_config_t *cfg, unsigned for_binary, int argc, char **argv,
                char *err, size_t errlen);

/* Releases the strings of *cfg. */
void config_free(ssehub_config_t *cfg);

#endif
