/* JSON logs: one object a line on stderr, safe to call from any thread. */
#ifndef SSEHUB_COMMON_LOG_H
#define SSEHUB_COMMON_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the lowest level written, from "debug"|"info"|"warn"|"error";
 * returns 0, or -1 for an unknown name. */
int log_set_level(const char *name);
/* Returns nonzero when a message of this level would be written. */
int log_enabled(enum log_level level);

/* Writes {"ts":"2026-11-21T06:46:46.123Z","level":"info","component":...,
 * "msg":..., <fields>} and a newline with one write(2). `fields` is a JSON
 * object or NULL; the call takes (steals) its reference, so
 * log_write(LOG_INFO, "node", "listening", json_pack("{s:s}", "listen", a))
 * leaks nothing. */
void log_write(enum log_level level, const char *component, const char *msg, json_t *fields);
/* Warnings and errors are flood-controlled: at most 20 lines a second for
 * one component and message; the next line written for it carries
 * "suppressed": <lines left out>. */

#define log_debug(c, m, f) log_write(LOG_DEBUG, (c), (m), (f))
#define log_info(c, m, f) log_write(LOG_INFO, (c), (m), (f))
#define log_warn(c, m, f) log_write(LOG_WARN, (c), (m), (f))
#define log_error(c, m, f) log_write(LOG_ERROR, (c), (m), (f))

#endif
