/* Unit tests for the JSON logger: stderr is redirected to a pipe or a
 * temporary file and every line read back must be one valid JSON object
 * holding the standard keys and the fields; the level filter is checked,
 * and lines from many threads must never interleave. */
#include "common/log.h"

#include "check.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- capturing stderr --------------------------------------------------- */

static int saved_stderr = -1;

/* Points stderr at fd and remembers the real one. */
static void capture_to(int fd)
{
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
}

/* Puts the real stderr back. */
static void restore_stderr(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
}

/* Runs fn with stderr on a pipe and returns what it wrote (malloc'd, NUL-
 * terminated); fine for the few small lines of one test. */
static char *captured(void (*fn)(void))
{
    int fds[2];
    static char buf[65536];
    if (pipe(fds) != 0)
        return strdup("");
    capture_to(fds[1]);
    fn();
    restore_stderr();
    close(fds[1]);
    ssize_t n, total = 0;
    while ((n = read(fds[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0)
        total += n;
    close(fds[0]);
    buf[total] = '\0';
    return strdup(buf);
}

/* Returns the parsed JSON object of the only line in out, or NULL. */
static json_t *only_line(const char *out)
{
    size_t n = strlen(out);
    CHECK(n > 0 && out[n - 1] == '\n');
    CHECK(strchr(out, '\n') == out + n - 1);
    json_t *o = json_loads(out, 0, NULL);
    CHECK(json_is_object(o));
    if (!json_is_object(o))
        fprintf(stderr, "  not a JSON object: [%s]\n", out);
    return o;
}

/* Returns the string member key of o, or "" when absent. */
static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- one line ----------------------------------------------------------- */

/* Writes an info line with two fields. */
static void write_with_fields(void)
{
    log_info("node", "listening", json_pack("{s:s,s:i}", "listen", "0.0.0.0:8080", "fd", 7));
}

/* Checks that ts is YYYY-MM-DDTHH:MM:SS.mmmZ. */
static void check_timestamp(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    CHECK(strlen(ts) == sizeof shape - 1);
    for (size_t i = 0; i < sizeof shape - 1 && ts[i]; i++)
        CHECK(shape[i] == 'd' ? (ts[i] >= '0' && ts[i] <= '9') : ts[i] == shape[i]);
}

/* Checks the standard keys and merged fields of one line. */
static void test_line(void)
{
    char *out = captured(write_with_fields);
    json_t *o = only_line(out);
    CHECK(strcmp(str_of(o, "level"), "info") == 0);
    CHECK(strcmp(str_of(o, "component"), "node") == 0);
    CHECK(strcmp(str_of(o, "msg"), "listening") == 0);
    CHECK(strcmp(str_of(o, "listen"), "0.0.0.0:8080") == 0);
    CHECK(json_integer_value(json_object_get(o, "fd")) == 7);
    check_timestamp(str_of(o, "ts"));
    CHECK(strncmp(out, "{\"ts\":", 6) == 0); /* ts first, for people reading raw logs */
    json_decref(o);
    free(out);
}

/* Writes lines with unusual fields: none, a non-object, clashing keys,
 * bad UTF-8 and a NULL component. */
static void write_odd_fields(void)
{
    log_warn("broker", "no fields", NULL);
    log_error("broker", "array", json_pack("[i,i]", 1, 2));
    log_info("node", "clash", json_pack("{s:s,s:s}", "msg", "overridden?", "level", "x"));
    log_info(NULL, "bad \xff utf8 \"quoted\"\nnewline", NULL);
}

/* Returns line i (0-based) of out parsed as JSON, or NULL. */
static json_t *line_at(const char *out, int i)
{
    const char *p = out;
    for (; i > 0 && p; i--)
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    if (p == NULL || *p == '\0')
        return NULL;
    const char *nl = strchr(p, '\n');
    return json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
}

/* Checks fields==NULL, non-object fields, key clashes and escaping. */
static void test_odd_fields(void)
{
    char *out = captured(write_odd_fields);
    json_t *a = line_at(out, 0), *b = line_at(out, 1), *c = line_at(out, 2), *d = line_at(out, 3);
    CHECK(a && b && c && d && line_at(out, 4) == NULL);
    CHECK(strcmp(str_of(a, "level"), "warn") == 0 && json_object_size(a) == 4);
    CHECK(strcmp(str_of(b, "level"), "error") == 0);
    CHECK(json_array_size(json_object_get(b, "fields")) == 2);
    CHECK(strcmp(str_of(c, "msg"), "clash") == 0 && strcmp(str_of(c, "level"), "info") == 0);
    CHECK(strcmp(str_of(d, "component"), "") == 0);
    CHECK(strstr(str_of(d, "msg"), "\"quoted\"\nnewline") != NULL);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    free(out);
}

/* ---- level filter ------------------------------------------------------- */

/* Writes one line at each level. */
static void write_each_level(void)
{
    log_debug("t", "d", json_pack("{s:i}", "n", 1)); /* dropped lines free their fields too */
    log_info("t", "i", NULL);
    log_warn("t", "w", NULL);
    log_error("t", "e", NULL);
}

/* Returns how many lines out holds. */
static int count_lines(const char *out)
{
    int n = 0;
    for (; *out; out++)
        n += *out == '\n';
    return n;
}

/* Checks log_set_level, log_enabled and that filtered lines are dropped. */
static void test_levels(void)
{
    CHECK(log_enabled(LOG_INFO) && !log_enabled(LOG_DEBUG)); /* the default is info */
    char *out = captured(write_each_level);
    CHECK(count_lines(out) == 3 && strstr(out, "\"msg\":\"d\"") == NULL);
    free(out);
    CHECK(log_set_level("debug") == 0 && log_enabled(LOG_DEBUG));
    out = captured(write_each_level);
    CHECK(count_lines(out) == 4);
    free(out);
    CHECK(log_set_level("error") == 0 && !log_enabled(LOG_WARN) && log_enabled(LOG_ERROR));
    out = captured(write_each_level);
    CHECK(count_lines(out) == 1 && strstr(out, "\"level\":\"error\"") != NULL);
    free(out);
    CHECK(log_set_level("verbose") == -1 && log_set_level(NULL) == -1);
    CHECK(log_enabled(LOG_ERROR) && !log_enabled(LOG_WARN)); /* unchanged by bad names */
    CHECK(log_set_level("warn") == 0 && log_enabled(LOG_WARN) && !log_enabled(LOG_INFO));
    CHECK(log_set_level("info") == 0);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 8
#define LINES_PER_THREAD 200

/* Writes LINES_PER_THREAD long lines tagged with the thread's number. */
static void *writer(void *arg)
{
    char msg[3000];
    memset(msg, 'a' + (int)(long)arg, sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("t", msg, json_pack("{s:i,s:i}", "thread", (int)(long)arg, "i", i));
    return NULL;
}

/* Returns the number of lines in f that are whole JSON objects whose msg
 * is made of one letter only. */
static int count_whole_lines(FILE *f)
{
    static char line[8192];
    int good = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        json_t *o = json_loads(line, 0, NULL);
        const char *m = str_of(o, "msg");
        good += o && strlen(m) == 2999 && strspn(m, (char[]){m[0], 0}) == 2999;
        json_decref(o);
    }
    return good;
}

/* Checks that lines written by many threads at once come out whole. */
static void test_threads(void)
{
    pthread_t t[THREADS];
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f == NULL)
        return;
    capture_to(fileno(f));
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    restore_stderr();
    rewind(f);
    CHECK(count_whole_lines(f) == THREADS * LINES_PER_THREAD);
    fclose(f);
}

/* ---- flood control ------------------------------------------------------- */

static void write_flood(void)
{
    for (int i = 0; i < 500; i++)
        log_warn("flood", "same warning", json_pack("{s:i}", "i", i));
    for (int i = 0; i < 50; i++)
        log_info("flood", "same info", NULL);
}

static void write_after_flood(void)
{
    time_t t = time(NULL);
    while (time(NULL) == t)
        usleep(10000);
    log_warn("flood", "same warning", NULL);
}

/* A flood of one warning is cut to a few lines a second; the next line
 * written says how many were left out; info lines are not limited. */
static void test_flood(void)
{
    char *out = captured(write_flood);
    int warns = 0, infos = 0;
    json_int_t reported = 0; /* if the flood crossed a second, a line in it reports some */
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        warns += strstr(line, "same warning") != NULL;
        infos += strstr(line, "same info") != NULL;
        json_t *l = json_loads(line, 0, NULL);
        reported += json_integer_value(json_object_get(l, "suppressed"));
        json_decref(l);
    }
    CHECK(warns >= 20 && warns <= 40);
    CHECK(infos == 50);
    free(out);
    out = captured(write_after_flood);
    json_t *o = only_line(out);
    json_int_t suppressed = json_integer_value(json_object_get(o, "suppressed"));
    CHECK(reported + suppressed == 500 - warns);
    json_decref(o);
    free(out);
}

int main(void)
{
    test_flood();
    test_line();
    test_odd_fields();
    test_levels();
    test_threads();
    return CHECK_DONE();
}
