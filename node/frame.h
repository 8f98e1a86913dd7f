/* Refcounted SSE frames: one event framed once per topic and thread and
 * shared, by reference, by every stream that sends it. */
#ifndef SSEHUB_NODE_FRAME_H
#define SSEHUB_NODE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "broker/stream_id.h"
#include "common/buf.h"

/* "id: <entry id>\n" then the body (event:, retry:, data: lines and the
 * blank line). Single-topic streams send all of it; multi-topic streams
 * send their own cursor id line and the body. Freed with the last
 * reference; never shared across threads. */
typedef struct frame {
    unsigned refcnt;
    stream_id_t id;
    uint32_t id_len;  /* bytes of the id line at the start of bytes */
    uint32_t len;     /* all bytes */
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
 * first; NULL when out of memory or the type holds CR, LF or NUL. */
frame_t *frame_new(buf_t *scratch, stream_id_t id, const char *type, size_t type_len, long retry,
                   const char *data, size_t data_len);
/* Returns a frame holding exactly the given bytes (e.g. a comment line). */
frame_t *frame_from_bytes(const char *bytes, size_t len);

#endif
