/* Refcounted SSE frames: one event framed once per topic and thread and
 * shared, by reference, by every stream that sends it. */
#ifndef SSEHUB_NODE_FRAME_H
#define SSEHUB_NODE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "broker/envelope.h"
#include "broker/stream_id.h"
#include "common/buf.h"

/* The other topics of a Mercure update stored in several topics' streams
 * (the entry field `topics`), canonical first. */
typedef struct frame_topics {
    uint32_t n;
    struct {
        const char *base;
        size_t len;
    } t[];
} frame_topics_t;

/* bytes: "id: <entry id>\n", the body (event:, retry:, data: lines and
 * the blank line), then, for an event with a publisher id, "id: <mid>\n".
 * Native single-topic streams send the entry id line and the body;
 * multi-topic streams their own cursor line and the body; Mercure streams
 * the publisher id line (the entry id line when there is none) and the
 * body. Freed with the last reference; never shared across threads. */
typedef struct frame {
    unsigned refcnt;
    stream_id_t id;
    uint32_t id_len;   /* bytes of the entry id line at the start of bytes */
    uint32_t body_end; /* end of the body */
    uint32_t len;      /* all bytes */
    unsigned has_mid : 1;    /* bytes[body_end, len) is the publisher id line */
    unsigned is_private : 1; /* Mercure private update */
    frame_topics_t *topics;  /* NULL unless the update has several topics */
    char bytes[];
} frame_t;

static inline frame_t *frame_ref(frame_t *f)
{
    f->refcnt++;
    return f;
}
/* Drops one reference (NULL is ignored). */
void frame_release(frame_t *f);

/* Returns a new frame (one reference) for an event, framing it in scratch
 * first; NULL when out of memory or the type or mid holds CR, LF or NUL.
 * A topics field that is not a JSON array of strings is ignored. */
frame_t *frame_new(buf_t *scratch, const envelope_t *ev);
/* Returns a frame holding exactly the given bytes (e.g. a comment line). */
frame_t *frame_from_bytes(const char *bytes, size_t len);

/* The id line a Mercure stream sends with f: its offset and length. */
static inline uint32_t frame_mercure_id_off(const frame_t *f)
{
    return f->has_mid ? f->body_end : 0;
}
static inline uint32_t frame_mercure_id_len(const frame_t *f)
{
    return f->has_mid ? f->len - f->body_end : f->id_len;
}

#endif
