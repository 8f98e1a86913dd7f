/* An incremental HTTP/1.1 response reader for the benchmark clients: the
 * status line, the headers that frame the body, then the body decoded from
 * Content-Length, chunked transfer coding, or read until the connection
 * closes (a stream taken over from the HTTP server). Feed bytes in any
 * chunking. */
#ifndef SSEHUB_BENCH_HTTP_RESP_H
#define SSEHUB_BENCH_HTTP_RESP_H

#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

#define HTTP_RESP_HEAD_MAX 16384 /* longest response head accepted */

typedef enum http_body_mode {
    HTTP_BODY_NONE,    /* no body (204, 304) */
    HTTP_BODY_LENGTH,  /* Content-Length bytes */
    HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HTTP_BODY_CLOSE,   /* everything until the server closes */
} http_body_mode_t;

/* Called with decoded body bytes; a negative return stops the feed and is
 * returned by http_resp_feed. */
typedef int (*http_body_cb)(void *ctx, const char *bytes, size_t len);

typedef struct http_resp {
    int head_done;              /* the status line and headers are read */
    int done;                   /* the whole response is read (never in CLOSE mode) */
    int status;                 /* the status code, once head_done */
    int keep_alive;             /* the connection may carry another request */
    http_body_mode_t body_mode; /* how the body ends, once head_done */
    uint64_t body_bytes;        /* decoded body bytes so far */
    /* private */
    buf_t head;          /* the head while it is incomplete; freed once read */
    uint64_t left;       /* bytes left of the body (LENGTH) or of the chunk */
    int chunk_state;     /* where in the chunked framing we are */
    int chunk_digits;    /* hex digits of the current chunk size */
    size_t trailer_line; /* bytes of the current trailer line */
} http_resp_t;

void http_resp_init(http_resp_t *r);
/* Forgets the last response (keeping nothing) for the next one. */
void http_resp_reset(http_resp_t *r);
void http_resp_free(http_resp_t *r);

/* Consumes bytes of the response; returns how many were used (fewer than
 * len only once the response is done: the rest belongs to the next one),
 * -EPROTO for a malformed response, -E2BIG for a head over
 * HTTP_RESP_HEAD_MAX, -ENOMEM, or the callback's negative return. */
ssize_t http_resp_feed(http_resp_t *r, const char *bytes, size_t len, http_body_cb on_body, void *ctx);

#endif
