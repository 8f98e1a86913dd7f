/* Refcounted SSE frames. */
#include "node/frame.h"

#include <stdlib.h>
#include <string.h>

#include "node/sse_frame.h"

void frame_release(frame_t *f)
{
    if (f != NULL && --f->refcnt == 0)
        free(f);
}

frame_t *frame_from_bytes(const char *bytes, size_t len)
{
    frame_t *f = malloc(sizeof(*f) + len);
    if (f == NULL)
        return NULL;
    *f = (frame_t){.refcnt = 1, .len = (uint32_t)len};
    memcpy(f->bytes, bytes, len);
    return f;
}

frame_t *frame_new(buf_t *scratch, stream_id_t id, const char *type, size_t type_len, long retry,
                   const char *data, size_t data_len)
{
    char text[STREAM_ID_MAX_TEXT];
    size_t n = stream_id_format(id, text);
    buf_clear(scratch);
    if (sse_frame_id(scratch, text, n) != 0)
        return NULL;
    size_t id_line = scratch->len;
    if (sse_frame_body(scratch, type, type_len, retry, data, data_len) != 0)
        return NULL;
    frame_t *f = frame_from_bytes(scratch->base, scratch->len);
    if (f != NULL) {
        f->id = id;
        f->id_len = (uint32_t)id_line;
    }
    return f;
}
