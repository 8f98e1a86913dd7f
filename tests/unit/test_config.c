/* Unit tests for config_load: the four layers and their precedence (with a
 * temporary JSON file, SSEHUB_* variables and argv), every kind of error
 * message naming its setting and source, --help, and threads resolution.
 * Run under ASan/LSan, these also catch leaks when layers replace strings. */
#include "common/config.h"

#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* argv for config_load: the program name, the given arguments, NULL. */
#define ARGV(...) ((char *[]){"ssehub-node", __VA_ARGS__, NULL})
#define NOARGS ((char *[]){"ssehub-node", NULL})

/* ---- helpers ------------------------------------------------------------ */

static char err[512];

/* Returns argc for a NULL-terminated argv. */
static int count_args(char **argv)
{
    int n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

/* Returns config_load's result for the node with argv, message in err. */
static int load(ssehub_config_t *cfg, char **argv)
{
    err[0] = '\0';
    return config_load(cfg, CONFIG_FOR_NODE, count_args(argv), argv, err, sizeof err);
}

/* Checks that argv fails to load with a message holding every needle
 * (NULL-terminated), and that nothing was left allocated. */
static void expect_fail(char **argv, const char *const *needles)
{
    ssehub_config_t cfg;
    CHECK(load(&cfg, argv) == -1);
    CHECK(strchr(err, '\n') == NULL && err[0] != '\0');
    for (; *needles; needles++) {
        CHECK(strstr(err, *needles) != NULL);
        if (strstr(err, *needles) == NULL)
            fprintf(stderr, "  message [%s] lacks [%s]\n", err, *needles);
    }
    CHECK(cfg.listen == NULL && cfg.redis_url == NULL && cfg.log_level == NULL);
    config_free(&cfg);
}

#define EXPECT_FAIL(argv, ...) expect_fail((argv), (const char *const[]){__VA_ARGS__, NULL})

/* Writes text to a new temporary file and returns its path (static). */
static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ssehub-test-config-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return "/nonexistent";
    size_t n = strlen(text);
    CHECK(write(fd, text, n) == (ssize_t)n);
    close(fd);
    return path;
}

/* Removes every SSEHUB_* variable so the host environment cannot leak in. */
static void clear_env(void)
{
    char name[256];
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "SSEHUB_", 7) != 0)
                continue;
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
            again = 1;
            break;
        }
    }
}

/* Returns the thread count "0" must resolve to. */
static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* ---- layers ------------------------------------------------------------- */

/* Checks every default from the header. */
static void test_defaults(void)
{
    ssehub_config_t c;
    CHECK(load(&c, NOARGS) == 0);
    CHECK(strcmp(c.listen, "0.0.0.0:8080") == 0);
    CHECK(strcmp(c.redis_url, "redis://127.0.0.1:6379") == 0);
    CHECK(c.threads == cores());
    CHECK(strcmp(c.prefix, "ssehub:") == 0);
    CHECK(strcmp(c.ingest_prefix, "sse:") == 0);
    CHECK(strcmp(c.ingest_json_prefix, "ssejson:") == 0);
    CHECK(c.history_max_events == 1000 && c.history_max_age == 86400);
    CHECK(c.heartbeat_interval == 15 && c.retry_ms == 3000);
    CHECK(c.max_connections == 100000 && c.max_topics_per_connection == 64);
    CHECK(c.max_topic_length == 1024 && c.client_buffer_bytes == 1048576);
    CHECK(c.replay_batch == 500 && c.drain_seconds == 30 && c.broker_lease_ms == 5000);
    CHECK(c.broker_queue_bytes == 268435456L);
    CHECK(c.http1_takeover == 1 && c.replay_memory_events == 256 && c.topic_linger_ms == 5000);
    CHECK(strcmp(c.metrics_listen, "") == 0 && strcmp(c.log_level, "info") == 0);
    config_free(&c);
    CHECK(c.listen == NULL && c.log_level == NULL);
    config_free(&c); /* twice is harmless */
}

/* Checks the file layer in all three ways of naming the file. */
static void test_file(void)
{
    ssehub_config_t c;
    const char *path = write_file("{\"listen\": \"127.0.0.1:9000\", \"history_max_events\": 5000,"
                                  " \"retry_ms\": \"2500\", \"prefix\": \"x:\","
                                  " \"log_level\": \"debug\", \"threads\": 3}");
    char eq[128];
    snprintf(eq, sizeof eq, "--config=%s", path);
    CHECK(load(&c, ARGV("--config", (char *)path)) == 0);
    CHECK(strcmp(c.listen, "127.0.0.1:9000") == 0 && c.history_max_events == 5000);
    CHECK(c.retry_ms == 2500 && strcmp(c.prefix, "x:") == 0 && c.threads == 3);
    CHECK(strcmp(c.log_level, "debug") == 0 && c.max_connections == 100000);
    config_free(&c);
    CHECK(load(&c, ARGV(eq)) == 0 && c.history_max_events == 5000);
    config_free(&c);
    setenv("SSEHUB_CONFIG", path, 1);
    CHECK(load(&c, NOARGS) == 0 && c.history_max_events == 5000);
    config_free(&c);
    unsetenv("SSEHUB_CONFIG");
    unlink(path);
}

/* Checks default < file < environment < flags, replacing strings in every
 * layer (LSan reports any copy that was not freed). */
static void test_precedence(void)
{
    ssehub_config_t c;
    const char *path = write_file("{\"history_max_events\": 5000, \"prefix\": \"file:\","
                                  " \"retry_ms\": 1, \"replay_batch\": 7}");
    setenv("SSEHUB_HISTORY_MAX_EVENTS", "6000", 1);
    setenv("SSEHUB_PREFIX", "env:", 1);
    setenv("SSEHUB_REDIS_URL", "redis://env-host:7000/1", 1);
    setenv("SSEHUB_RETRY_MS", "2", 1);
    CHECK(load(&c, ARGV("--config", (char *)path, "--history-max-events", "7000",
                        "--prefix=flag:", "--threads", "5")) == 0);
    CHECK(c.history_max_events == 7000 && strcmp(c.prefix, "flag:") == 0); /* flag wins */
    CHECK(strcmp(c.redis_url, "redis://env-host:7000/1") == 0 && c.retry_ms == 2); /* env */
    CHECK(c.replay_batch == 7);                                                      /* file */
    CHECK(c.heartbeat_interval == 15 && c.threads == 5);
    config_free(&c);
    CHECK(load(&c, ARGV("--config", (char *)path)) == 0);
    CHECK(c.history_max_events == 6000 && strcmp(c.prefix, "env:") == 0);
    config_free(&c);
    clear_env();
    unlink(path);
}

/* Checks that the variables tests and harnesses set are not settings but
 * are not errors either. */
static void test_ignored_env(void)
{
    ssehub_config_t c;
    setenv("SSEHUB_TEST_ANYTHING", "1", 1);
    setenv("SSEHUB_BUILD_DIR", "/tmp/build", 1);
    setenv("SSEHUB_SOURCE_DIR", "/work/main", 1);
    setenv("SSEHUB_CONFIG", "", 1); /* empty = no file */
    CHECK(load(&c, NOARGS) == 0);
    config_free(&c);
    clear_env();
}

/* Checks boundaries and the accepted forms of addresses. */
static void test_accepted_values(void)
{
    ssehub_config_t c;
    CHECK(load(&c, ARGV("--listen", "[::1]:8080", "--metrics-listen=", "--retry-ms", "0",
                        "--client-buffer-bytes", "1024", "--drain-seconds=0", "--log-level",
                        "debug", "--threads", "256", "--history-max-events", "+10")) == 0);
    CHECK(strcmp(c.listen, "[::1]:8080") == 0 && strcmp(c.metrics_listen, "") == 0);
    CHECK(c.retry_ms == 0 && c.client_buffer_bytes == 1024 && c.drain_seconds == 0);
    CHECK(c.threads == 256 && c.history_max_events == 10 && strcmp(c.log_level, "debug") == 0);
    config_free(&c);
    CHECK(load(&c, ARGV("--metrics-listen", "localhost:9100", "--broker-lease-ms", "600000",
                        "--redis-url", "redis://u:p%40w@h:1/2", "--threads", "0")) == 0);
    CHECK(strcmp(c.metrics_listen, "localhost:9100") == 0 && c.broker_lease_ms == 600000);
    CHECK(c.threads == cores());
    config_free(&c);
    CHECK(load(&c, ARGV("--node-id", "edge-a:8080", "--redis-url", "redis-sentinel://s1,s2:26380/mymaster")) == 0);
    CHECK(strcmp(c.node_id, "edge-a:8080") == 0);
    config_free(&c);
}

/* ---- errors ------------------------------------------------------------- */

/* Checks messages for bad numbers from flags. */
static void test_bad_numbers(void)
{
    ssehub_config_t c;
    CHECK(load(&c, ARGV("--history-max-events", "abc")) == -1);
    CHECK(strcmp(err, "history_max_events: \"abc\" is not an integer "
                      "(from --history-max-events)") == 0);
    config_free(&c);
    EXPECT_FAIL(ARGV("--threads=300"), "threads: \"300\" is out of range 0..256 (from --threads)");
    EXPECT_FAIL(ARGV("--threads", "12x"), "threads: \"12x\" is not an integer");
    EXPECT_FAIL(ARGV("--threads", " 5"), "threads:", "not an integer");
    EXPECT_FAIL(ARGV("--threads", ""), "threads:", "not an integer");
    EXPECT_FAIL(ARGV("--threads", "-1"), "threads:", "out of range");
    EXPECT_FAIL(ARGV("--max-connections", "99999999999999999999999"), "max_connections:",
                "out of range 1..10000000");
    EXPECT_FAIL(ARGV("--client-buffer-bytes", "1023"), "client_buffer_bytes:", "1024..");
    EXPECT_FAIL(ARGV("--broker-lease-ms", "99"), "broker_lease_ms:", "100..600000");
    EXPECT_FAIL(ARGV("--broker-queue-bytes", "1000"), "broker_queue_bytes:", "1048576..");
    EXPECT_FAIL(ARGV("--history-max-age", "0"), "history_max_age:", "out of range");
    EXPECT_FAIL(ARGV("--heartbeat-interval", "3601"), "heartbeat_interval:");
    EXPECT_FAIL(ARGV("--replay-batch", "1.5"), "replay_batch:", "not an integer");
    EXPECT_FAIL(ARGV("--max-topic-length", "0x10"), "max_topic_length:", "not an integer");
}

/* Checks messages for bad strings from flags. */
static void test_bad_strings(void)
{
    EXPECT_FAIL(ARGV("--listen", "8080"), "listen: \"8080\"", "HOST:PORT", "(from --listen)");
    EXPECT_FAIL(ARGV("--listen", ":8080"), "listen:", "HOST:PORT");
    EXPECT_FAIL(ARGV("--listen", "::1:8080"), "listen:", "HOST:PORT");
    EXPECT_FAIL(ARGV("--listen", "host:0"), "listen:", "port");
    EXPECT_FAIL(ARGV("--listen", "[::1]:70000"), "listen:", "port");
    EXPECT_FAIL(ARGV("--listen", "host:"), "listen:", "port");
    EXPECT_FAIL(ARGV("--listen", ""), "listen:", "HOST:PORT");
    EXPECT_FAIL(ARGV("--metrics-listen", "bad"), "metrics_listen:", "(from --metrics-listen)");
    EXPECT_FAIL(ARGV("--redis-url", "rediss://h"), "redis_url:", "TLS", "(from --redis-url)");
    EXPECT_FAIL(ARGV("--redis-url", "redis://h:6379?x=1"), "redis_url:", "query");
    EXPECT_FAIL(ARGV("--prefix", ""), "prefix: \"\" is empty (from --prefix)");
    EXPECT_FAIL(ARGV("--prefix", "a b"), "prefix:", "spaces");
    EXPECT_FAIL(ARGV("--ingest-prefix", "sse{"), "ingest_prefix:", "{}*?[]");
    EXPECT_FAIL(ARGV("--ingest-json-prefix", "x*"), "ingest_json_prefix:");
    EXPECT_FAIL(ARGV("--prefix", "a\tb"), "prefix: \"a?b\"");
    EXPECT_FAIL(ARGV("--log-level", "verbose"), "log_level: \"verbose\"", "debug, info");
    EXPECT_FAIL(ARGV("--node-id", "edge a"), "node_id:", "printable ASCII without spaces");
    EXPECT_FAIL(ARGV("--node-id", "caf\xc3\xa9"), "node_id:", "printable ASCII");
    char long_id[140];
    memset(long_id, 'n', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    EXPECT_FAIL(ARGV("--node-id", long_id), "node_id:", "longer than 128 bytes");
    EXPECT_FAIL(ARGV("--redis-url", "redis://a,,b"), "redis_url:", "host is empty");
    EXPECT_FAIL(ARGV("--redis-url", "redis-sentinel://s1"), "redis_url:", "master's name");
}

/* Checks that the Redis password never appears in a message. */
static void test_secret_not_echoed(void)
{
    EXPECT_FAIL(ARGV("--redis-url", "redis://u:topsecret@h:0"), "redis_url:", "port");
    CHECK(strstr(err, "topsecret") == NULL);
}

/* Checks messages for malformed command lines. */
static void test_bad_flags(void)
{
    EXPECT_FAIL(ARGV("--no-such-flag", "1"), "--no-such-flag: unknown flag");
    EXPECT_FAIL(ARGV("--redis_url", "redis://h"), "--redis_url: unknown flag");
    EXPECT_FAIL(ARGV("--redis-url"), "redis_url: missing value after --redis-url");
    EXPECT_FAIL(ARGV("--redis-url", "--threads", "2"), "redis_url: missing value");
    EXPECT_FAIL(ARGV("foo"), "unexpected argument \"foo\"");
    EXPECT_FAIL(ARGV("-x"), "unexpected argument \"-x\"");
    EXPECT_FAIL(ARGV("--"), "unexpected argument \"--\"");
    EXPECT_FAIL(ARGV("--config"), "config: missing file name after --config");
    EXPECT_FAIL(ARGV("--config="), "config: missing file name");
}

/* Checks messages for bad environment variables. */
static void test_bad_env(void)
{
    setenv("SSEHUB_THREADS", "abc", 1);
    EXPECT_FAIL(NOARGS, "threads: \"abc\" is not an integer (from SSEHUB_THREADS)");
    unsetenv("SSEHUB_THREADS");
    setenv("SSEHUB_NO_SUCH", "1", 1);
    EXPECT_FAIL(NOARGS, "SSEHUB_NO_SUCH: unknown setting");
    unsetenv("SSEHUB_NO_SUCH");
    setenv("SSEHUB_redis_url", "redis://h", 1);
    EXPECT_FAIL(NOARGS, "SSEHUB_redis_url: unknown setting");
    unsetenv("SSEHUB_redis_url");
    setenv("SSEHUB_LISTEN", "", 1);
    EXPECT_FAIL(NOARGS, "listen: \"\"", "(from SSEHUB_LISTEN)");
    unsetenv("SSEHUB_LISTEN");
    setenv("SSEHUB_CONFIG", "/nonexistent/ssehub.json", 1);
    EXPECT_FAIL(NOARGS, "config:", "/nonexistent/ssehub.json", "(from SSEHUB_CONFIG)");
    clear_env();
}

/* Checks that a file holding `json` fails with a message holding needle,
 * the file's path and "config file" or the flag. */
static void expect_file_fail(const char *json, const char *needle)
{
    const char *path = write_file(json);
    char p[128];
    snprintf(p, sizeof p, "%s", path);
    EXPECT_FAIL(ARGV("--config", p), needle, p);
    unlink(p);
}

/* Checks messages for bad files and bad values in files. */
static void test_bad_file(void)
{
    expect_file_fail("{\"nope\": 1}", "nope: unknown setting (from config file ");
    expect_file_fail("{\"redis-url\": \"redis://h\"}", "redis-url: unknown setting");
    expect_file_fail("{\"listen\": 8080}", "listen: 8080 is not a string (from config file ");
    expect_file_fail("{\"threads\": 1.5}", "threads: 1.5 is not an integer");
    expect_file_fail("{\"threads\": true}", "threads: true is not an integer");
    expect_file_fail("{\"threads\": null}", "threads: null is not an integer");
    expect_file_fail("{\"threads\": [1]}", "threads: [1] is not an integer");
    expect_file_fail("{\"threads\": \"abc\"}", "threads: \"abc\" is not an integer (from config");
    expect_file_fail("{\"threads\": 1000}", "threads: \"1000\" is out of range 0..256");
    expect_file_fail("{\"prefix\": \"a\\u0000b\"}", "not valid JSON"); /* NUL rejected */
    expect_file_fail("{\"threads\": ", "config:");
    expect_file_fail("{\"threads\": 1, \"threads\": 2}", "config:");
    expect_file_fail("[1, 2]", "JSON object");
    expect_file_fail("", "not valid JSON");
    EXPECT_FAIL(ARGV("--config", "/nonexistent/x.json"), "config: cannot read /nonexistent/x.json",
                "(from --config)");
}

/* Checks that a file with a string number works, and that NULL err is
 * allowed. */
static void test_misc(void)
{
    ssehub_config_t c;
    const char *path = write_file("{\"threads\": \"7\"}");
    CHECK(load(&c, ARGV("--config", (char *)path)) == 0 && c.threads == 7);
    config_free(&c);
    unlink(path);
    CHECK(config_load(&c, CONFIG_FOR_NODE, 2, ARGV("--threads=x"), NULL, 0) == -1);
    config_free(&c);
}

/* ---- --help ------------------------------------------------------------- */

/* Runs config_load for `binary` with argv, stdout going to a temporary
 * file; returns the result and leaves the output in out. */
static int load_help(unsigned binary, char **argv, char *out, size_t outlen)
{
    ssehub_config_t c;
    FILE *f = tmpfile();
    int saved = dup(STDOUT_FILENO);
    fflush(stdout);
    dup2(fileno(f), STDOUT_FILENO);
    int rc = config_load(&c, binary, count_args(argv), argv, err, sizeof err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    config_free(&c);
    return rc;
}

/* Checks --help and -h: exit code 1 and what is listed for each binary. */
/* Checks the boolean setting in every layer and its refusal. */
static void test_booleans(void)
{
    ssehub_config_t c;
    CHECK(load(&c, ARGV("--http1-takeover", "false")) == 0 && c.http1_takeover == 0);
    config_free(&c);
    CHECK(load(&c, ARGV("--http1-takeover=0", "--http1-takeover", "true")) == 0 && c.http1_takeover == 1);
    config_free(&c);
    setenv("SSEHUB_HTTP1_TAKEOVER", "0", 1);
    CHECK(load(&c, NOARGS) == 0 && c.http1_takeover == 0);
    config_free(&c);
    unsetenv("SSEHUB_HTTP1_TAKEOVER");
    const char *path = write_file("{\"http1_takeover\": false}");
    CHECK(load(&c, ARGV("--config", (char *)path)) == 0 && c.http1_takeover == 0);
    config_free(&c);
    CHECK(load(&c, ARGV("--http1-takeover", "maybe")) == -1);
    CHECK(strstr(err, "http1_takeover") != NULL && strstr(err, "not a boolean") != NULL);
}

static void test_help(void)
{
    static char out[16384];
    CHECK(load_help(CONFIG_FOR_NODE, ARGV("--help"), out, sizeof out) == 1);
    CHECK(strstr(out, "--redis-url URL") && strstr(out, "SSEHUB_REDIS_URL"));
    CHECK(strstr(out, "redis://127.0.0.1:6379") && strstr(out, "--listen HOST:PORT"));
    CHECK(strstr(out, "--history-max-events N") && strstr(out, "SSEHUB_HISTORY_MAX_EVENTS"));
    CHECK(strstr(out, "default 1000, range 1..10000000") && strstr(out, "--config FILE"));
    CHECK(strstr(out, "Usage: ssehub-node") && !strstr(out, "--broker-lease-ms"));
    CHECK(load_help(CONFIG_FOR_BROKER, ARGV("-h"), out, sizeof out) == 1);
    CHECK(strstr(out, "Usage: ssehub-broker") && strstr(out, "--broker-lease-ms MS"));
    CHECK(strstr(out, "--metrics-listen") && !strstr(out, "--listen HOST:PORT"));
    CHECK(load_help(CONFIG_FOR_NODE, ARGV("--no-such", "--help"), out, sizeof out) == 1);
    CHECK(load_help(CONFIG_FOR_NODE, ARGV("--threads", "5", "-h"), out, sizeof out) == 1);
}

int main(void)
{
    clear_env();
    test_defaults();
    test_file();
    test_precedence();
    test_ignored_env();
    test_accepted_values();
    test_bad_numbers();
    test_bad_strings();
    test_secret_not_echoed();
    test_bad_flags();
    test_bad_env();
    test_bad_file();
    test_misc();
    test_booleans();
    test_help();
    return CHECK_DONE();
}
