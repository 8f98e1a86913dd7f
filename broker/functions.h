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
 * -> the new entry id. The broker's form adds the topic's metadata key:
 * FCALL ssehub_publish 2 <stream key> <meta key> <data> [...]
 *       [fence EPOCH] [in POSITION]
 * -> the new entry id; the status DUPLICATE when the topic already stored
 * that ingest position or a later one; "ERR ssehub: fenced" when a higher
 * leader epoch has written the topic. */
#define SSEHUB_FN_PUBLISH "ssehub_publish"
/* FCALL ssehub_lease_renew 1 <lease key> <value> <ms> -> 1 renewed, 0 not ours.
 * FCALL ssehub_lease_release 1 <lease key> <value> [<channel>] -> 1 deleted
 *   (and "released <value>" published on channel), 0 not ours. */
#define SSEHUB_FN_LEASE_RENEW "ssehub_lease_renew"
#define SSEHUB_FN_LEASE_RELEASE "ssehub_lease_release"
/* FCALL ssehub_next 1 <counter key> [<channel> [<tag>]] -> the counter's
 * next value, max(value + 1, Redis time in ms): it never goes back. With a
 * channel, "<value> <tag>" is published there in the same step (sync marks). */
#define SSEHUB_FN_NEXT "ssehub_next"
/* The fencing refusal and the duplicate answer of the broker's form. */
#define SSEHUB_FENCED_ERROR "ERR ssehub: fenced"
#define SSEHUB_DUPLICATE_STATUS "DUPLICATE"
/* FCALL_RO ssehub_read 1 <stream key> <after> <count>
 * -> see functions.lua. */
#define SSEHUB_FN_READ "ssehub_read"
/* FCALL_RO ssehub_resolve 1 <P{topic}:m> <mid> -> the entry id last
 * published with that publisher id, or nil. */
#define SSEHUB_FN_RESOLVE "ssehub_resolve"

/* The library's text for FUNCTION LOAD: as compiled in for a single Redis;
 * for a Redis Cluster (sharded != 0) with live messages sent by SPUBLISH.
 * Thread-safe; the text lives as long as the process. */
const char *functions_source(int sharded, size_t *len);

/* True when a Redis error reply means the library is not loaded. */
int functions_missing_error(const char *errstr, size_t len);
/* True when a Redis error reply means an older library is loaded (one that
 * does not know the broker's fence/in options): reload it. */
int functions_outdated_error(const char *errstr, size_t len);

#endif
