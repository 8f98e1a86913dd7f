/* Settings for ssehub-node and ssehub-broker. One table describes every
 * setting (type, place in ssehub_config_t, default, range, checks, help);
 * each layer -- default, JSON file, SSEHUB_* environment, --flags -- turns
 * its values into text and feeds them through the same setter, so every
 * value is validated the same way and every error names its source. */
#include "common/config.h"

#include "common/redis_url.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* ---- the table ---------------------------------------------------------- */

typedef enum { OPT_STRING, OPT_INT, OPT_LONG, OPT_BOOL } opt_type_t;

/* An extra check on a string value: returns 0 when it is fine, or -1 with
 * a phrase for "<name>: <value> <phrase>" in why. */
typedef int (*opt_check_fn)(const char *value, char *why, size_t whylen);

/* One setting. Numbers live in an int or long at `offset`, booleans in an
 * int (0/1), strings in a heap char * owned by the config. */
typedef struct opt {
    const char *name;    /* JSON key; flag and env names derive from it */
    opt_type_t type;
    size_t offset;       /* into ssehub_config_t */
    const char *def;     /* default, as text, validated like any value */
    unsigned used_by;    /* CONFIG_FOR_* bits: which --help lists it */
    long min, max;       /* inclusive range for numbers */
    opt_check_fn check;  /* extra check for strings, or NULL */
    int secret;          /* never echo the value in messages */
    const char *metavar; /* placeholder in --help */
    const char *help;
} opt_t;

static int check_listen(const char *v, char *why, size_t whylen);
static int check_listen_optional(const char *v, char *why, size_t whylen);
static int check_redis_url(const char *v, char *why, size_t whylen);
static int check_prefix(const char *v, char *why, size_t whylen);
static int check_log_level(const char *v, char *why, size_t whylen);
static int check_jwt_algorithm(const char *v, char *why, size_t whylen);
static int check_cors_origins(const char *v, char *why, size_t whylen);
static int check_node_id(const char *v, char *why, size_t whylen);

#define NODE CONFIG_FOR_NODE
#define BROKER CONFIG_FOR_BROKER
#define BOTH (CONFIG_FOR_NODE | CONFIG_FOR_BROKER)
#define STR(f) OPT_STRING, offsetof(ssehub_config_t, f)
#define INT(f) OPT_INT, offsetof(ssehub_config_t, f)
#define LONG(f) OPT_LONG, offsetof(ssehub_config_t, f)
#define BOOL(f) OPT_BOOL, offsetof(ssehub_config_t, f)

static const opt_t options[] = {
    {"listen", STR(listen), "0.0.0.0:8080", NODE, 0, 0, check_listen, 0, "HOST:PORT",
     "address the node serves SSE and its HTTP API on"},
    {"redis_url", STR(redis_url), "redis://127.0.0.1:6379", BOTH, 0, 0, check_redis_url, 1, "URL",
     "Redis to use: redis://[[user]:password@]host[:port][/db]; several host:port (comma-separated): Redis "
     "Cluster seeds; redis-sentinel://host:port[,...]/master: Sentinels"},
    {"redis_sentinel_password", STR(redis_sentinel_password), "", BOTH, 0, 0, NULL, 1, "PASSWORD",
     "password of the Sentinels a redis-sentinel:// redis_url names (their requirepass; the URL's "
     "password is the data nodes'); empty = none"},
    {"threads", INT(threads), "0", NODE, 0, 256, NULL, 0, "N",
     "node worker threads; 0 = one per CPU core"},
    {"prefix", STR(prefix), "ssehub:", BOTH, 0, 0, check_prefix, 0, "PREFIX",
     "prefix of every internal Redis key and channel"},
    {"ingest_prefix", STR(ingest_prefix), "sse:", BROKER, 0, 0, check_prefix, 0, "PREFIX",
     "channel prefix apps PUBLISH plain event data to"},
    {"ingest_json_prefix", STR(ingest_json_prefix), "ssejson:", BROKER, 0, 0, check_prefix, 0,
     "PREFIX", "channel prefix apps PUBLISH JSON events to"},
    {"history_max_events", LONG(history_max_events), "1000", BOTH, 1, 10000000, NULL, 0, "N",
     "about how many events each topic's history keeps"},
    {"history_max_age", LONG(history_max_age), "86400", BOTH, 1, 31536000, NULL, 0, "SECONDS",
     "how long an event stays in its topic's history"},
    {"heartbeat_interval", LONG(heartbeat_interval), "15", NODE, 1, 3600, NULL, 0, "SECONDS",
     "time between comment heartbeats on a stream"},
    {"retry_ms", LONG(retry_ms), "3000", NODE, 0, 86400000, NULL, 0, "MS",
     "reconnect delay sent to clients in the SSE retry: field"},
    {"max_connections", LONG(max_connections), "100000", NODE, 1, 10000000, NULL, 0, "N",
     "most streams one node serves at once"},
    {"max_connections_per_ip", LONG(max_connections_per_ip), "0", NODE, 0, 10000000, NULL, 0, "N",
     "streams one client address may hold open on a node; 0 = no cap (behind a load balancer every stream comes from it)"},
    {"max_topics_per_connection", LONG(max_topics_per_connection), "64", NODE, 1, 256, NULL, 0,
     "N", "most topics one stream may subscribe to"},
    {"max_topic_length", LONG(max_topic_length), "1024", BOTH, 1, 65536, NULL, 0, "BYTES",
     "longest topic name accepted"},
    {"client_buffer_bytes", LONG(client_buffer_bytes), "1048576", NODE, 1024, 1073741824, NULL, 0,
     "BYTES", "outbound bytes queued for one client before it is disconnected"},
    {"replay_batch", LONG(replay_batch), "500", NODE, 1, 100000, NULL, 0, "N",
     "history entries read from Redis per round trip during replay"},
    {"drain_seconds", LONG(drain_seconds), "30", NODE, 0, 3600, NULL, 0, "SECONDS",
     "on shutdown, time over which clients are sent elsewhere"},
    {"broker_lease_ms", LONG(broker_lease_ms), "5000", BROKER, 100, 600000, NULL, 0, "MS",
     "leader lease; a standby broker takes over within this time"},
    {"max_request_header_bytes", LONG(max_request_header_bytes), "32768", NODE, 1024, 1048576, NULL, 0, "BYTES",
     "request target and headers a node accepts (431 beyond); tokens in headers or cookies count"},
    {"max_event_bytes", LONG(max_event_bytes), "1048576", BOTH, 1024, 67108864, NULL, 0, "BYTES",
     "largest event data accepted (broker: refused and counted; HTTP publish: 413; FCALL: refused)"},
    {"broker_queue_bytes", LONG(broker_queue_bytes), "268435456", BROKER, 1048576, 68719476736L, NULL, 0,
     "BYTES", "messages the broker holds while Redis is slower than publishers or away; beyond it new ones are dropped (counted and logged)"},
    {"metrics_listen", STR(metrics_listen), "", BROKER, 0, 0, check_listen_optional, 0,
     "HOST:PORT", "the broker's HTTP port for metrics and health; empty = off"},
    {"log_level", STR(log_level), "info", BOTH, 0, 0, check_log_level, 0, "LEVEL",
     "lowest level logged: debug, info, warn or error"},
    {"http1_takeover", BOOL(http1_takeover), "true", NODE, 0, 1, NULL, 0, "BOOL",
     "HTTP/1.1 streams leave h2o after the response head (about 0.4 KB per idle stream instead of 10 KB)"},
    {"topic_linger_ms", LONG(topic_linger_ms), "5000", NODE, 0, 3600000, NULL, 0, "MS",
     "how long a topic stays subscribed, its recent events in memory, after its last client left (about, to the second)"},
    {"tls_cert", STR(tls_cert), "", NODE, 0, 0, NULL, 0, "FILE",
     "PEM certificate chain; when set, `listen` serves TLS (HTTP/2 and HTTP/1.1 by ALPN)"},
    {"tls_key", STR(tls_key), "", NODE, 0, 0, NULL, 0, "FILE", "PEM private key of tls_cert"},
    {"listen_plain", STR(listen_plain), "", NODE, 0, 0, check_listen_optional, 0, "HOST:PORT",
     "with tls_cert: an extra cleartext port (HTTP/1.1, h2c) for a load balancer; empty = none"},
    {"http2_max_stream_starts", LONG(http2_max_stream_starts), "200", NODE, 1, 1000000, NULL, 0, "N",
     "HTTP/2 streams one connection may start in a second; beyond it the connection is cut (Rapid Reset)"},
    {"jwt_key", STR(jwt_key), "", NODE, 0, 0, NULL, 1, "KEY",
     "JWT key: the HS256 secret, or for RS256 the path of a PEM public key; empty = no tokens (publishing over HTTP off)"},
    {"jwt_algorithm", STR(jwt_algorithm), "HS256", NODE, 0, 0, check_jwt_algorithm, 0, "ALG",
     "JWT signature algorithm: HS256 or RS256"},
    {"jwt_publisher_key", STR(jwt_publisher_key), "", NODE, 0, 0, NULL, 1, "KEY",
     "publishers' JWT key when it differs from jwt_key"},
    {"jwt_subscriber_key", STR(jwt_subscriber_key), "", NODE, 0, 0, NULL, 1, "KEY",
     "subscribers' JWT key when it differs from jwt_key"},
    {"jwt_key_previous", STR(jwt_key_previous), "", NODE, 0, 0, NULL, 1, "KEY",
     "a second key accepted for publishers and subscribers while keys are rotated"},
    {"subscribe_anonymous", BOOL(subscribe_anonymous), "true", NODE, 0, 1, NULL, 0, "BOOL",
     "streams without a token are allowed (they get public updates only)"},
    {"cors_origins", STR(cors_origins), "", NODE, 0, 0, check_cors_origins, 0, "ORIGINS",
     "origins allowed to subscribe and publish from pages elsewhere: * or a space-separated list; empty = none"},
    {"node_id", STR(node_id), "", NODE, 0, 0, check_node_id, 0, "ID",
     "the node's name in the cluster registry and dashboard; empty = <hostname>:<listen port>"},
    {"replay_memory_events", LONG(replay_memory_events), "256", NODE, 0, 100000, NULL, 0, "N",
     "last events of each active topic a node keeps in memory to serve resumes without Redis; 0 = off"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* ---- messages ----------------------------------------------------------- */

/* Formats a one-line message into err (when there is room) and returns -1,
 * so callers can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Returns s in double quotes in buf, cut at 80 bytes and with control bytes
 * shown as '?', so a message always stays one readable line. */
static const char *quote(const char *s, char *buf, size_t len)
{
    size_t o = 0, max = len > 8 ? len - 6 : 0;
    buf[o++] = '"';
    for (; *s && o < max && o < 81; s++)
        buf[o++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (*s)
        o += (size_t)snprintf(buf + o, len - o, "...");
    snprintf(buf + o, len - o, "\"");
    return buf;
}

/* ---- names -------------------------------------------------------------- */

/* Returns the setting called name[0..n) (with '-' for '_' when dashed), or
 * NULL when there is none. */
static const opt_t *find_option(const char *name, size_t n, int dashed)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *o = options[i].name;
        size_t k = 0;
        for (; k < n && o[k]; k++)
            if (name[k] != (dashed && o[k] == '_' ? '-' : o[k]))
                break;
        if (k == n && o[k] == '\0')
            return &options[i];
    }
    return NULL;
}

/* Returns the setting whose SSEHUB_ variable has this suffix (upper case,
 * suffix[0..n)), or NULL. */
static const opt_t *find_env_option(const char *suffix, size_t n)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *o = options[i].name;
        size_t k = 0;
        for (; k < n && o[k]; k++)
            if (suffix[k] != toupper((unsigned char)o[k]))
                break;
        if (k == n && o[k] == '\0')
            return &options[i];
    }
    return NULL;
}

/* Writes the flag ("--redis-url") or env var ("SSEHUB_REDIS_URL") name of o
 * into buf and returns buf. */
static const char *option_alias(const opt_t *o, int env, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "%s", env ? "SSEHUB_" : "--");
    for (const char *c = o->name; *c && k + 1 < len; c++)
        buf[k++] = env ? (char)toupper((unsigned char)*c) : (*c == '_' ? '-' : *c);
    buf[k] = '\0';
    return buf;
}

/* ---- setting one value -------------------------------------------------- */

/* Returns a pointer to the field of cfg that o describes. */
static void *field_of(ssehub_config_t *cfg, const opt_t *o)
{
    return (char *)cfg + o->offset;
}

/* Parses text as a whole decimal integer; returns 0, -1 when it is not
 * one, or -2 when it overflows a long. */
static int parse_long(const char *text, long *out)
{
    char *end;
    if (!isdigit((unsigned char)text[0]) && text[0] != '-' && text[0] != '+')
        return -1;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0')
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

/* Stores an integer setting; returns 0, or -1 with a message when text is
 * not a whole number in the setting's range. */
static int set_number(ssehub_config_t *cfg, const opt_t *o, const char *text, const char *from,
                      char *err, size_t errlen)
{
    char q[96];
    long v = 0;
    int rc = parse_long(text, &v);
    if (rc == -1)
        return fail(err, errlen, "%s: %s is not an integer (from %s)", o->name,
                    quote(text, q, sizeof q), from);
    if (rc == -2 || v < o->min || v > o->max)
        return fail(err, errlen, "%s: %s is out of range %ld..%ld (from %s)", o->name,
                    quote(text, q, sizeof q), o->min, o->max, from);
    if (o->type == OPT_INT)
        *(int *)field_of(cfg, o) = (int)v;
    else
        *(long *)field_of(cfg, o) = v;
    return 0;
}

/* Stores a boolean setting; returns 0, or -1 with a message when text is
 * not true/false/1/0. */
static int set_bool(ssehub_config_t *cfg, const opt_t *o, const char *text, const char *from,
                    char *err, size_t errlen)
{
    char q[96];
    int *field = field_of(cfg, o);
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
        *field = 1;
    else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
        *field = 0;
    else
        return fail(err, errlen, "%s: %s is not a boolean (true, false, 1 or 0) (from %s)",
                    o->name, quote(text, q, sizeof q), from);
    return 0;
}

/* Replaces a string setting with a checked copy of text, freeing the old
 * copy; returns 0, or -1 with a message. */
static int set_string(ssehub_config_t *cfg, const opt_t *o, const char *text, const char *from,
                      char *err, size_t errlen)
{
    char why[200], q[96];
    char **field = field_of(cfg, o);
    if (o->check != NULL && o->check(text, why, sizeof why) != 0) {
        if (o->secret)
            return fail(err, errlen, "%s: invalid value: %s (from %s)", o->name, why, from);
        return fail(err, errlen, "%s: %s %s (from %s)", o->name, quote(text, q, sizeof q), why,
                    from);
    }
    char *copy = strdup(text);
    if (copy == NULL)
        return fail(err, errlen, "%s: out of memory (from %s)", o->name, from);
    free(*field);
    *field = copy;
    return 0;
}

/* Sets one setting from text; returns 0, or -1 with a message naming the
 * setting and `from`, the layer the value came from. */
static int set_option(ssehub_config_t *cfg, const opt_t *o, const char *text, const char *from,
                      char *err, size_t errlen)
{
    switch (o->type) {
    case OPT_STRING:
        return set_string(cfg, o, text, from, err, errlen);
    case OPT_BOOL:
        return set_bool(cfg, o, text, from, err, errlen);
    default:
        return set_number(cfg, o, text, from, err, errlen);
    }
}

/* ---- checks on string values -------------------------------------------- */

/* Returns nonzero when c may appear in a host name or IPv4 address. */
static int is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Returns 0 when h[0..n) is a host name, IPv4 address or [IPv6] literal. */
static int check_host(const char *h, size_t n)
{
    int v6 = n >= 2 && h[0] == '[' && h[n - 1] == ']';
    if (v6) {
        h++;
        n -= 2;
    }
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int ok = v6 ? (isxdigit((unsigned char)h[i]) || h[i] == ':' || h[i] == '.')
                    : is_host_char(h[i]);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Accepts HOST:PORT with a port in 1..65535 and a host name, IPv4 address
 * or bracketed IPv6 address. */
static int check_listen(const char *v, char *why, size_t whylen)
{
    const char *colon = strrchr(v, ':');
    long port;
    if (colon == NULL || check_host(v, (size_t)(colon - v)) != 0)
        return fail(why, whylen, "is not HOST:PORT (host name, IPv4 address or [IPv6])");
    if (!isdigit((unsigned char)colon[1]) || parse_long(colon + 1, &port) != 0 || port < 1 ||
        port > 65535)
        return fail(why, whylen, "has a port that is not a number in 1..65535");
    return 0;
}

/* Like check_listen, but "" (off) is also fine. */
static int check_listen_optional(const char *v, char *why, size_t whylen)
{
    return v[0] == '\0' ? 0 : check_listen(v, why, whylen);
}

/* Accepts what redis_url_parse accepts; its message becomes the reason. */
static int check_redis_url(const char *v, char *why, size_t whylen)
{
    redis_url_t u;
    return redis_url_parse(v, &u, why, whylen);
}

/* Accepts a non-empty prefix without spaces, control bytes, hash-tag braces
 * (they would break Redis Cluster slots) or glob characters (the broker
 * pattern-subscribes to the ingest prefixes). */
static int check_prefix(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0')
        return fail(why, whylen, "is empty");
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f || strchr("{}*?[]\\", *c) != NULL)
            return fail(why, whylen, "may not contain spaces, control characters or {}*?[]\\");
    return 0;
}

/* Accepts the four level names log_set_level understands. */
static int check_log_level(const char *v, char *why, size_t whylen)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(v, levels[i]) == 0)
            return 0;
    return fail(why, whylen, "is not one of debug, info, warn, error");
}

static int check_jwt_algorithm(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "HS256") == 0 || strcmp(v, "RS256") == 0)
        return 0;
    return fail(why, whylen, "is not one of HS256, RS256");
}

/* "*", or origins "scheme://host[:port]" separated by spaces or commas. */
static int check_cors_origins(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "*") == 0)
        return 0;
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *e = p;
        while (*e && *e != ' ' && *e != ',')
            e++;
        const char *sep = strstr(p, "://");
        if (sep == NULL || sep >= e || sep == p || sep + 3 == e || e[-1] == '/')
            return fail(why, whylen, "holds %.*s, not an origin like https://example.com", (int)(e - p), p);
        p = e;
    }
    return 0;
}

/* Empty (derived at start-up), or up to 128 printable ASCII bytes without
 * spaces: it is a Redis key part and is shown on the dashboard. */
static int check_node_id(const char *v, char *why, size_t whylen)
{
    if (strlen(v) > 128)
        return fail(why, whylen, "is longer than 128 bytes");
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return fail(why, whylen, "may hold only printable ASCII without spaces");
    return 0;
}

/* ---- layer 1: defaults -------------------------------------------------- */

/* Sets every setting to its default; returns 0, or -1 if the table holds a
 * default its own checks reject (a bug caught by the unit tests). */
static int load_defaults(ssehub_config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (set_option(cfg, &options[i], options[i].def, "the built-in default", err, errlen))
            return -1;
    return 0;
}

/* ---- layer 2: the JSON file --------------------------------------------- */

/* Returns the JSON text of v (truncated) in buf, for type errors. */
static const char *json_brief(json_t *v, char *buf, size_t len)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, len, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
    return buf;
}

/* Turns a JSON value into the text form of o's type, in buf or pointing
 * into v; returns it, or NULL when the JSON type does not fit. */
static const char *json_as_text(const opt_t *o, json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v) && o->type != OPT_STRING) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v) && o->type == OPT_BOOL)
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

/* Sets one key of the file; returns 0, or -1 naming the key and file. */
static int load_file_key(ssehub_config_t *cfg, const char *key, json_t *v, const char *from,
                         char *err, size_t errlen)
{
    static const char *const kinds[] = {"a string", "an integer", "an integer", "a boolean"};
    char num[64], brief[80];
    const opt_t *o = find_option(key, strlen(key), 0);
    if (o == NULL)
        return fail(err, errlen, "%s: unknown setting (from %s)", key, from);
    const char *text = json_as_text(o, v, num, sizeof num);
    if (text == NULL)
        return fail(err, errlen, "%s: %s is not %s (from %s)", key,
                    json_brief(v, brief, sizeof brief), kinds[o->type], from);
    return set_option(cfg, o, text, from, err, errlen);
}

/* Reads the JSON file at path (named by `via`, the flag or env var) and
 * applies its keys; returns 0, or -1 with a message. */
static int load_file(ssehub_config_t *cfg, const char *path, const char *via, char *err,
                     size_t errlen)
{
    json_error_t jerr;
    char from[512];
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL && jerr.line < 1)
        return fail(err, errlen, "config: cannot read %s: %s (from %s)", path, jerr.text, via);
    if (root == NULL)
        return fail(err, errlen, "config: %s is not valid JSON: %s at line %d column %d (from %s)",
                    path, jerr.text, jerr.line, jerr.column, via);
    int rc = 0;
    if (!json_is_object(root))
        rc = fail(err, errlen, "config: %s must hold a JSON object of settings (from %s)", path,
                  via);
    snprintf(from, sizeof from, "config file %s", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (rc == 0)
            rc = load_file_key(cfg, key, v, from, err, errlen);
    }
    json_decref(root);
    return rc;
}

/* ---- layer 3: the environment ------------------------------------------- */

/* Returns nonzero for SSEHUB_ variables that are not settings but are
 * allowed anyway: the config file and what the test harnesses set. */
static int env_is_ignored(const char *suffix)
{
    return strncmp(suffix, "CONFIG=", 7) == 0 || strncmp(suffix, "TEST_", 5) == 0 ||
           strncmp(suffix, "BUILD_DIR=", 10) == 0 || strncmp(suffix, "SOURCE_DIR=", 11) == 0;
}

/* Applies every SSEHUB_<NAME> variable; returns 0, or -1 for a bad value
 * or an SSEHUB_ variable that names no setting (likely a typo). */
static int load_env(ssehub_config_t *cfg, char *err, size_t errlen)
{
    char from[128];
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "SSEHUB_", 7) != 0 || env_is_ignored(*e + 7))
            continue;
        const char *suffix = *e + 7, *eq = strchr(suffix, '=');
        size_t n = eq ? (size_t)(eq - suffix) : strlen(suffix);
        const opt_t *o = find_env_option(suffix, n);
        if (o == NULL)
            return fail(err, errlen, "SSEHUB_%.*s: unknown setting (from the environment)",
                        (int)(n > 64 ? 64 : n), suffix);
        if (set_option(cfg, o, eq ? eq + 1 : "", option_alias(o, 1, from, sizeof from), err,
                       errlen))
            return -1;
    }
    return 0;
}

/* ---- layer 4: command-line flags ---------------------------------------- */

/* One argument split into flag name and value. */
typedef struct flag {
    const char *arg;  /* the argument as given */
    const char *name; /* after "--"; "help" for -h */
    size_t namelen;
    const char *value; /* NULL when missing */
} flag_t;

/* Reads the flag at argv[*i] (and its value, when separate) and advances
 * *i; returns 0, or -1 for something that is not a flag at all. */
static int next_flag(int argc, char **argv, int *i, flag_t *f, char *err, size_t errlen)
{
    char q[96];
    const char *a = argv[(*i)++];
    *f = (flag_t){.arg = a, .name = "help", .namelen = 4, .value = NULL};
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
        return 0;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=')
        return fail(err, errlen, "unexpected argument %s: settings are --name VALUE or "
                                 "--name=VALUE (see --help)", quote(a, q, sizeof q));
    f->name = a + 2;
    f->namelen = strlen(f->name);
    const char *eq = strchr(f->name, '=');
    if (eq != NULL) {
        f->namelen = (size_t)(eq - f->name);
        f->value = eq + 1;
    } else if (*i < argc && strncmp(argv[*i], "--", 2) != 0) {
        f->value = argv[(*i)++];
    }
    return 0;
}

/* Returns nonzero when flag f is called name. */
static int flag_is(const flag_t *f, const char *name)
{
    return f->namelen == strlen(name) && strncmp(f->name, name, f->namelen) == 0;
}

/* What a first pass over argv found: --help and --config must be known
 * before the other layers are read. */
typedef struct prescan {
    int help;
    const char *config; /* last --config value, or NULL */
    int config_missing; /* --config without a file name */
} prescan_t;

/* Scans argv for --help and --config, ignoring everything else. */
static void prescan_argv(int argc, char **argv, prescan_t *p)
{
    flag_t f;
    *p = (prescan_t){0};
    for (int i = 1; i < argc;) {
        if (next_flag(argc, argv, &i, &f, NULL, 0) != 0)
            continue;
        if (flag_is(&f, "help"))
            p->help = 1;
        else if (flag_is(&f, "config") && (f.value == NULL || f.value[0] == '\0'))
            p->config_missing = 1;
        else if (flag_is(&f, "config"))
            p->config = f.value;
    }
}

/* Applies one flag; returns 0, or -1 for an unknown flag, a missing value
 * or a bad value. */
static int apply_flag(ssehub_config_t *cfg, const flag_t *f, char *err, size_t errlen)
{
    char from[128];
    if (flag_is(f, "help") || flag_is(f, "config"))
        return 0; /* handled by prescan_argv */
    const opt_t *o = find_option(f->name, f->namelen, 1);
    if (o == NULL)
        return fail(err, errlen, "--%.*s: unknown flag (see --help)",
                    (int)(f->namelen > 64 ? 64 : f->namelen), f->name);
    option_alias(o, 0, from, sizeof from);
    if (f->value == NULL)
        return fail(err, errlen, "%s: missing value after %s (use %s=VALUE for a value that "
                                 "starts with --)", o->name, from, from);
    return set_option(cfg, o, f->value, from, err, errlen);
}

/* Applies every flag in argv; returns 0, or -1 with a message. */
static int load_flags(ssehub_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    flag_t f;
    for (int i = 1; i < argc;) {
        if (next_flag(argc, argv, &i, &f, err, errlen) != 0)
            return -1;
        if (apply_flag(cfg, &f, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* ---- --help ------------------------------------------------------------- */

/* Prints one setting's two lines of --help. */
static void print_option(const opt_t *o)
{
    char flag[128], env[128], head[192], range[64] = "";
    snprintf(head, sizeof head, "%s %s", option_alias(o, 0, flag, sizeof flag), o->metavar);
    if (o->type == OPT_INT || o->type == OPT_LONG)
        snprintf(range, sizeof range, ", range %ld..%ld", o->min, o->max);
    printf("  %-36s %s\n", head, option_alias(o, 1, env, sizeof env));
    if (o->type == OPT_STRING)
        printf("      %s (default \"%s\")\n", o->help, o->def);
    else
        printf("      %s (default %s%s)\n", o->help, o->def, range);
}

/* Prints usage and every setting for_binary uses to stdout. */
static void print_help(unsigned for_binary)
{
    const char *prog = for_binary == CONFIG_FOR_BROKER ? "ssehub-broker" : "ssehub-node";
    printf("Usage: %s [--config FILE] [--NAME VALUE | --NAME=VALUE]...\n\n"
           "Each setting is taken from, in increasing precedence: its default, the JSON\n"
           "config file (an object keyed by setting name), the environment variable\n"
           "SSEHUB_<NAME>, and the command-line flag --name-with-dashes.\n\n"
           "  %-36s %s\n      %s\n  %s\n      %s\n",
           prog, "--config FILE", "SSEHUB_CONFIG", "JSON file of settings (default: none)",
           "--help, -h", "print this help and exit");
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (for_binary == 0 || (options[i].used_by & for_binary))
            print_option(&options[i]);
    fflush(stdout);
}

/* ---- entry points ------------------------------------------------------- */

/* Fills in settings derived from others: threads 0 means one per core,
 * capped at the setting's maximum. */
static void resolve_derived(ssehub_config_t *cfg)
{
    if (cfg->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n < 1 ? 1 : n > 256 ? 256 : (int)n;
    }
}

/* Reads the file layer, named by --config or else SSEHUB_CONFIG; returns 0
 * (also when there is none) or -1 with a message. */
static int load_config_file(ssehub_config_t *cfg, const prescan_t *p, char *err, size_t errlen)
{
    const char *env = getenv("SSEHUB_CONFIG");
    if (p->config_missing)
        return fail(err, errlen, "config: missing file name after --config");
    if (p->config != NULL)
        return load_file(cfg, p->config, "--config", err, errlen);
    if (env != NULL && env[0] != '\0')
        return load_file(cfg, env, "SSEHUB_CONFIG", err, errlen);
    return 0;
}

int config_load(ssehub_config_t *cfg, unsigned for_binary, int argc, char **argv, char *err,
                size_t errlen)
{
    prescan_t p;
    memset(cfg, 0, sizeof *cfg);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    prescan_argv(argc, argv, &p);
    if (p.help) {
        print_help(for_binary);
        return 1;
    }
    if (load_defaults(cfg, err, errlen) != 0 || load_config_file(cfg, &p, err, errlen) != 0 ||
        load_env(cfg, err, errlen) != 0 || load_flags(cfg, argc, argv, err, errlen) != 0) {
        config_free(cfg);
        return -1;
    }
    resolve_derived(cfg);
    return 0;
}

void config_free(ssehub_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type != OPT_STRING)
            continue;
        char **field = field_of(cfg, &options[i]);
        free(*field);
        *field = NULL;
    }
}
