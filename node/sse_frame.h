/* SSE wire framing (WHATWG HTML "server-sent events"), pure functions.
 * Framing is exact: CR, LF and CRLF in data all end a line, as the client
 * parser splits them, and each line becomes its own "data:" field, so no
 * payload can inject a field or end an event early. */
#ifndef SSEHUB_NODE_SSE_FRAME_H
#define SSEHUB_NODE_SSE_FRAME_H

#include <stddef.h>

#include "common/buf.h"

/* Appends the shared part of an event: "event: <type>\n" when type_len > 0,
 * "retry: <ms>\n" when retry >= 0, one "data: <line>\n" per line of data
 * (an empty payload gives one "data: \n"; a trailing line break gives a
 * final empty data line, so the client sees the payload exactly, except that
 * every CR and CRLF comes back as LF), then the blank line that dispatches
 * the event. The caller has validated type (no CR/LF/NUL); returns 0,
 * -EINVAL if type holds CR, LF or NUL, or -ENOMEM. */
int sse_frame_body(buf_t *out, const char *type, size_t type_len, long retry, const char *data,
                   size_t data_len);
/* Appends "id: <id>\n" (no blank line: it goes before a body). Returns 0,
 * -EINVAL if id holds CR, LF or NUL, or -ENOMEM. */
int sse_frame_id(buf_t *out, const char *id, size_t len);
/* Appends "retry: <ms>\n\n". Returns 0, -EINVAL if ms < 0, or -ENOMEM. */
int sse_frame_retry(buf_t *out, long ms);
/* Appends ": <text>\n\n" with every CR, LF and NUL of text replaced by a
 * space. Returns 0 or -ENOMEM. */
int sse_frame_comment(buf_t *out, const char *text, size_t len);

/* A streaming client-side parser, as browsers parse (used by tests, fuzz
 * targets and the benchmark client). Feed bytes in any chunking; every
 * dispatched event calls on_event. Fields: data lines joined with "\n",
 * event type ("" when none), last event id as the spec keeps it (it
 * persists across events), retry (-1 unless set by this event). */
typedef struct sse_event {
    const char *data; size_t data_len;
    const char *type; size_t type_len;
    const char *id; size_t id_len;
    long retry;
} sse_event_t;

typedef struct sse_parser {
    void (*on_event)(void *ctx, const sse_event_t *ev);
    void (*on_comment)(void *ctx, const char *text, size_t len); /* may be NULL */
    void *ctx;
    /* private state */
    buf_t line, data, type, id;
    long retry;
    int has_data;
    int last_was_cr;
    int bom_checked;
} sse_parser_t;

void sse_parser_init(sse_parser_t *p, void (*on_event)(void *, const sse_event_t *), void *ctx);
/* Returns 0, or -ENOMEM. */
int sse_parser_feed(sse_parser_t *p, const char *bytes, size_t len);
void sse_parser_free(sse_parser_t *p);

#endif
