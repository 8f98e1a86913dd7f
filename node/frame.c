/* Refcounted SSE frames. */
#include "node/frame.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "node/sse_frame.h"

void frame_release(frame_t *f)
{
    if (f != NULL && --f->refcnt == 0) {
        free(f->topics);
        free(f);
    }
}

frame_t *frame_from_bytes(const char *bytes, size_t len)
{
    frame_t *f = malloc(sizeof(*f) + len);
    if (f == NULL)
        return NULL;
    *f = (frame_t){.refcnt = 1, .len = (uint32_t)len, .body_end = (uint32_t)len};
    memcpy(f->bytes, bytes, len);
    return f;
}

/* Parses the topics field (a JSON array of strings) into one allocation
 * holding the pointers and the strings; NULL when absent or malformed. */
static frame_topics_t *topics_parse(const char *json, size_t len)
{
    if (json == NULL)
        return NULL;
    json_t *a = json_loadb(json, len, 0, NULL);
    frame_topics_t *out = NULL;
    size_t n = json_is_array(a) ? json_array_size(a) : 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!json_is_string(json_array_get(a, i))) {
            n = 0;
            break;
        }
        bytes += json_string_length(json_array_get(a, i));
    }
    if (n > 1 && (out = malloc(sizeof(*out) + n * sizeof(out->t[0]) + bytes)) != NULL) {
        char *p = (char *)&out->t[n];
        out->n = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_array_get(a, i);
            size_t l = json_string_length(s);
            memcpy(p, json_string_value(s), l);
            out->t[i].base = p;
            out->t[i].len = l;
            p += l;
        }
    }
    json_decref(a);
    return out;
}

frame_t *frame_new(buf_t *scratch, const envelope_t *ev)
{
    char text[STREAM_ID_MAX_TEXT];
    size_t n = stream_id_format(ev->id, text);
    buf_clear(scratch);
    if (sse_frame_id(scratch, text, n) != 0)
        return NULL;
    size_t id_line = scratch->len;
    if (sse_frame_body(scratch, ev->type, ev->type_len, ev->retry, ev->data, ev->data_len) != 0)
        return NULL;
    size_t body_end = scratch->len;
    if (ev->mid != NULL && sse_frame_id(scratch, ev->mid, ev->mid_len) != 0)
        return NULL;
    frame_t *f = frame_from_bytes(scratch->base, scratch->len);
    if (f != NULL) {
        f->id = ev->id;
        f->id_len = (uint32_t)id_line;
        f->body_end = (uint32_t)body_end;
        f->has_mid = ev->mid != NULL;
        f->is_private = ev->is_private != 0;
        f->topics = topics_parse(ev->topics, ev->topics_len);
    }
    return f;
}
