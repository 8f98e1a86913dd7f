/* Topic names and the Redis names derived from them (DESIGN §3, contract):
 * stream P{topic}:s, live channel P{topic}:l, metadata P{topic}:m, where the
 * bytes %, { and } of the topic are percent-encoded so the braces form a
 * real Redis Cluster hash tag. */
#ifndef SSEHUB_BROKER_STREAM_KEYS_H
#define SSEHUB_BROKER_STREAM_KEYS_H

#include <stddef.h>

#include "common/buf.h"

/* Why a topic name was refused; 0 means valid. */
enum topic_error {
    TOPIC_OK = 0,
    TOPIC_EMPTY = -1,
    TOPIC_TOO_LONG = -2,
    TOPIC_BAD_UTF8 = -3,
    TOPIC_CONTROL_CHAR = -4, /* C0 controls, DEL, and C1 controls U+0080..U+009F */
};

/* Returns TOPIC_OK when the topic is non-empty, valid UTF-8 (no overlongs,
 * no surrogates, nothing above U+10FFFF), free of control characters and at
 * most max_len bytes; otherwise the first problem found. */
int topic_validate(const char *topic, size_t len, size_t max_len);
/* A short stable text for a topic_error ("empty", "too_long", ...). */
const char *topic_error_name(int err);

/* Which name of a topic. */
enum topic_key_kind { TOPIC_KEY_STREAM = 's', TOPIC_KEY_LIVE = 'l', TOPIC_KEY_META = 'm' };

/* Appends prefix + "{" + escaped topic + "}:" + kind to out; returns 0 or -ENOMEM. */
int topic_key(buf_t *out, const char *prefix, const char *topic, size_t len, enum topic_key_kind kind);

/* Inverse of topic_key for any kind: given a full key or channel name,
 * checks it starts with prefix and "{", ends with "}:" + one kind letter,
 * and appends the unescaped topic to out. Returns the kind letter, or -1
 * when the name is not one of ours. */
int topic_from_key(buf_t *out, const char *prefix, const char *name, size_t len);

#endif
