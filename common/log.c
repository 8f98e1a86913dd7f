/* JSON logs: one object a line on stderr, each line written with a single
 * write(2) so lines from different threads never interleave. The level
 * filter is the only global: set once at start-up, read relaxed. */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/text.h"

static atomic_int log_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- level filter ------------------------------------------------------- */

int log_set_level(const char *name)
{
    for (int i = LOG_DEBUG; name != NULL && i <= LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            atomic_store_explicit(&log_min_level, i, memory_order_relaxed);
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

/* ---- building the line -------------------------------------------------- */

/* Returns the current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" in buf. */
static const char *format_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    return buf;
}

/* Returns a JSON string for s; invalid UTF-8 bytes become '?' rather than
 * losing the whole message, and NULL becomes "". */
static json_t *json_text(const char *s)
{
    if (s == NULL)
        return json_string("");
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Returns the log object for one message (NULL when out of memory); fields
 * are merged in without overriding the four standard keys. */
static json_t *build_line(enum log_level level, const char *component, const char *msg,
                          json_t *fields)
{
    char ts[40];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ts", json_string(format_timestamp(ts, sizeof ts)));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "component", json_text(component));
    json_object_set_new(o, "msg", json_text(msg));
    if (json_is_object(fields))
        json_object_update_missing(o, fields);
    else if (fields != NULL)
        json_object_set(o, "fields", fields);
    return o;
}

/* ---- output ------------------------------------------------------------- */

/* Writes the whole buffer to stderr; returns 0, or -1 when stderr is gone.
 * The loop only matters for huge lines or a signal mid-write. */
static int write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Serialises o with a trailing newline; returns a malloc'd string or NULL. */
static char *dump_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* ---- flood control ------------------------------------------------------- */

/* Warnings and errors with the same component and message share a budget
 * of LOG_BURST lines a second; the rest are counted, and the next line
 * written for that message says how many were left out ("suppressed").
 * A few dozen distinct messages are tracked; beyond that lines go out. */
#define LOG_BURST 20
#define LOG_SLOTS 64

typedef struct log_slot {
    uint64_t key;    /* hash of component and message; 0 = free */
    time_t second;   /* the window counted */
    unsigned n;      /* lines written in it */
    unsigned long long suppressed;
} log_slot_t;

static log_slot_t log_slots[LOG_SLOTS];
static pthread_mutex_t log_slots_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t log_key(const char *component, const char *msg)
{
    const char *c = component ? component : "", *m = msg ? msg : "";
    /* the NUL between the parts keeps ("ab", "c") apart from ("a", "bc") */
    uint64_t h = text_fnv1a64(text_fnv1a64(TEXT_FNV1A64_SEED, c, strlen(c) + 1), m, strlen(m));
    return h ? h : 1;
}

/* Returns 1 when the line may be written (setting *suppressed to the lines
 * left out before it), 0 when it is over its budget. */
static int log_admit(const char *component, const char *msg, unsigned long long *suppressed)
{
    uint64_t key = log_key(component, msg);
    time_t now = time(NULL);
    int ok = 1;
    *suppressed = 0;
    pthread_mutex_lock(&log_slots_lock);
    log_slot_t *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < LOG_SLOTS && slot == NULL; i++) {
        if (log_slots[i].key == key)
            slot = &log_slots[i];
        else if (free_slot == NULL && (log_slots[i].key == 0 || (log_slots[i].second < now - 60 && log_slots[i].suppressed == 0)))
            free_slot = &log_slots[i];
    }
    if (slot == NULL && free_slot != NULL) {
        *free_slot = (log_slot_t){.key = key, .second = now};
        slot = free_slot;
    }
    if (slot != NULL) {
        if (slot->second != now) {
            slot->second = now;
            slot->n = 0;
        }
        if (slot->n >= LOG_BURST) {
            slot->suppressed++;
            ok = 0;
        } else {
            slot->n++;
            *suppressed = slot->suppressed;
            slot->suppressed = 0;
        }
    }
    pthread_mutex_unlock(&log_slots_lock);
    return ok;
}

void log_write(enum log_level level, const char *component, const char *msg, json_t *fields)
{
    static const char oom[] = "{\"level\":\"error\",\"msg\":\"log line lost: out of memory\"}\n";
    if ((unsigned)level > LOG_ERROR)
        level = LOG_ERROR;
    if (!log_enabled(level)) {
        json_decref(fields);
        return;
    }
    unsigned long long suppressed = 0;
    if (level >= LOG_WARN && !log_admit(component, msg, &suppressed)) {
        json_decref(fields);
        return;
    }
    json_t *o = build_line(level, component, msg, fields);
    json_decref(fields);
    if (o != NULL && suppressed > 0)
        json_object_set_new(o, "suppressed", json_integer((json_int_t)suppressed));
    char *line = o ? dump_line(o) : NULL;
    json_decref(o);
    if (line == NULL)
        (void)write_all(oom, sizeof oom - 1);
    else
        (void)write_all(line, strlen(line));
    free(line);
}
