/* The event envelope: what travels on a topic's live channel P{topic}:l
 * (written by the publish function in functions.lua, read by nodes), and
 * the ssejson: ingest payload. Both directions are pure functions.
 *
 * Live message format (version 1): a sequence of netstrings
 * "<decimal length>:<bytes>," — first the entry ID, then field name/value
 * pairs in the order stored in the stream entry (data, type, retry, mid,
 * ...). Lengths are byte counts, so any payload bytes (CR, LF, NUL, commas)
 * are carried exactly. */
#ifndef SSEHUB_BROKER_ENVELOPE_H
#define SSEHUB_BROKER_ENVELOPE_H

#include <stddef.h>

#include "broker/stream_id.h"
#include "common/buf.h"

/* A decoded event. All pointers point into the buffer that was decoded
 * (no copies); a field that was absent has ptr NULL and len 0. */
typedef struct envelope {
    stream_id_t id;
    const char *data; size_t data_len;   /* required; may be empty */
    const char *type; size_t type_len;   /* SSE event type */
    const char *mid; size_t mid_len;     /* publisher-supplied id */
    long retry;                          /* -1 when absent */
    int is_private;                      /* Mercure private update (field private) */
    const char *topics; size_t topics_len; /* JSON array of all topics of a multi-topic update */
} envelope_t;

/* Decodes a live message; unknown field names are skipped (forward
 * compatible). Returns 0, or -1 when malformed or `data` or the id is
 * missing. */
int envelope_decode_live(const char *msg, size_t len, envelope_t *out);

/* Stores one stored-entry or live-message field (data, type, retry, mid,
 * private, topics) into *ev, pointing into v; returns 0, or -1 for a
 * repeated or invalid known field. Unknown names (prev) are ignored. */
int envelope_take_field(envelope_t *ev, const char *name, size_t nlen, const char *v, size_t vlen);

/* Encodes an event the same way the Lua publish function does (used by
 * tests and the fuzz target to round-trip); returns 0 or -ENOMEM. */
int envelope_encode_live(buf_t *out, const envelope_t *ev);

/* Checks a publisher-supplied field. Event type: 1..256 bytes, no CR, LF
 * or NUL. Publisher id (mid): 1..256 bytes, no CR, LF or NUL, not starting
 * with '#'. Return 0 when acceptable, -1 otherwise. */
int envelope_check_type(const char *s, size_t len);
int envelope_check_mid(const char *s, size_t len);

/* Parses an ssejson: payload {"data": "...", "type": "...", "retry": 5000,
 * "id": "..."} into *out (pointers into *owner, a jansson object the
 * caller must json_decref after use; id/ms of out->id are left zero).
 * Only "data" is required and must be a string; "retry" a non-negative
 * integer; "type"/"id" strings passing the checks above; unknown keys are
 * refused. Returns 0, or -1 with a short reason in err. */
struct json_t;
int envelope_parse_json(const char *payload, size_t len, envelope_t *out, struct json_t **owner,
                        char *err, size_t errlen);

#endif
