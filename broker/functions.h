/* The project's Redis Function library (broker/functions.lua, compiled in).
 * Both binaries load it on connect with FUNCTION LOAD REPLACE and again
 * when Redis answers that a function is not found. Apps may FCALL it. */
#ifndef SSEHUB_BROKER_FUNCTIONS_H
#define SSEHUB_BROKER_FUNCTIONS_H

#include <stddef.h>

extern const char ssehub_functions_lua[];
extern const size_t ssehub_functions_lua_len;

/* Library name; the suffix is the format version of entries and live
 * messages it writes. */
#define SSEHUB_FUNCTION_LIBRARY "ssehub_1"
/* FCALL ssehub_publish 1 <stream key> <data> [type T] [retry MS] [id MID]
 *       [maxlen N] [maxage SECONDS]
 * -> the new entry id. */
#define SSEHUB_FN_PUBLISH "ssehub_publish"
/* FCALL_RO ssehub_read 1 <stream key> <after> <count>
 * -> see functions.lua. */
#define SSEHUB_FN_READ "ssehub_read"

/* True when a Redis error reply means the library is not loaded. */
int functions_missing_error(const char *errstr, size_t len);

#endif
