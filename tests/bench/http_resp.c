/* Incremental HTTP/1.1 response reader. */
#include "common/text.h"
#include "tests/bench/http_resp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { CS_SIZE, CS_EXT, CS_DATA, CS_DATA_END, CS_TRAILER };

void http_resp_init(http_resp_t *r)
{
    memset(r, 0, sizeof(*r));
}

void http_resp_reset(http_resp_t *r)
{
    buf_free(&r->head);
    http_resp_init(r);
}

void http_resp_free(http_resp_t *r)
{
    buf_free(&r->head);
}

/* ------------------------------------------------------------- head -- */

/* Returns nonzero when the header line of len bytes is `name: ...`,
 * pointing *value at its trimmed value. */
static int header_is(const char *line, size_t len, const char *name, const char **value, size_t *value_len)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *value_len = (size_t)(end - v);
    return 1;
}

/* Returns nonzero when the comma-separated value holds the token word
 * (case-insensitive). */
static int value_has(const char *v, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(v + i, word, n) == 0)
            return 1;
    return 0;
}

/* Interprets a complete head (status line and headers, each ending in
 * CRLF); returns 0 or -EPROTO. */
static int parse_head(http_resp_t *r, const char *head, size_t len)
{
    const char *eol = memmem(head, len, "\r\n", 2);
    if (eol == NULL || eol - head < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        return -EPROTO;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return -EPROTO;
        status = status * 10 + (head[i] - '0');
    }
    r->status = status;
    r->keep_alive = head[7] == '1';
    int chunked = 0;
    long long length = -1;
    for (const char *line = eol + 2; line < head + len;) {
        const char *end = memmem(line, (size_t)(head + len - line), "\r\n", 2);
        if (end == NULL)
            return -EPROTO;
        const char *v;
        size_t vlen;
        if (header_is(line, (size_t)(end - line), "transfer-encoding", &v, &vlen)) {
            chunked = value_has(v, vlen, "chunked");
        } else if (header_is(line, (size_t)(end - line), "content-length", &v, &vlen)) {
            if (vlen == 0 || vlen > 15)
                return -EPROTO;
            length = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -EPROTO;
                length = length * 10 + (v[i] - '0');
            }
        } else if (header_is(line, (size_t)(end - line), "connection", &v, &vlen)) {
            if (value_has(v, vlen, "close"))
                r->keep_alive = 0;
            else if (value_has(v, vlen, "keep-alive"))
                r->keep_alive = 1;
        }
        line = end + 2;
    }
    if (status == 204 || status == 304) {
        r->body_mode = HTTP_BODY_NONE;
    } else if (chunked) {
        r->body_mode = HTTP_BODY_CHUNKED;
    } else if (length >= 0) {
        r->body_mode = HTTP_BODY_LENGTH;
        r->left = (uint64_t)length;
    } else {
        r->body_mode = HTTP_BODY_CLOSE;
        r->keep_alive = 0;
    }
    r->head_done = 1;
    r->done = r->body_mode == HTTP_BODY_NONE || (r->body_mode == HTTP_BODY_LENGTH && r->left == 0);
    return 0;
}

/* Collects head bytes; returns how many were used, or a negative error.
 * Interim 1xx responses (but 101) are skipped. */
static ssize_t read_head(http_resp_t *r, const char *bytes, size_t len)
{
    size_t old = r->head.len;
    size_t take = len;
    if (take > HTTP_RESP_HEAD_MAX + 4 - old)
        take = HTTP_RESP_HEAD_MAX + 4 - old;
    if (buf_append(&r->head, bytes, take) != 0)
        return -ENOMEM;
    size_t from = old >= 3 ? old - 3 : 0;
    const char *end = memmem(r->head.base + from, r->head.len - from, "\r\n\r\n", 4);
    if (end == NULL)
        return r->head.len >= HTTP_RESP_HEAD_MAX ? -E2BIG : (ssize_t)take;
    size_t head_len = (size_t)(end - r->head.base) + 2; /* keep the last header's CRLF */
    size_t used = head_len + 2 - old;
    int rc = parse_head(r, r->head.base, head_len);
    buf_free(&r->head);
    if (rc != 0)
        return rc;
    if (r->status >= 100 && r->status < 200 && r->status != 101)
        http_resp_init(r);
    return (ssize_t)used;
}

/* ------------------------------------------------------------- body -- */


/* Decodes chunked framing; returns bytes used or a negative error. Chunk
 * extensions and trailers are skipped; a bare LF is taken for CRLF. */
static ssize_t feed_chunked(http_resp_t *r, const char *p, size_t len, http_body_cb on_body, void *ctx)
{
    size_t i = 0;
    while (i < len && !r->done) {
        char c = p[i];
        switch (r->chunk_state) {
        case CS_SIZE: {
            int d = text_hex_value(c);
            if (d < 0) {
                if (r->chunk_digits == 0)
                    return -EPROTO;
                r->chunk_state = CS_EXT;
                break;
            }
            if (++r->chunk_digits > 15)
                return -EPROTO;
            r->left = r->left * 16 + (uint64_t)d;
            i++;
            break;
        }
        case CS_EXT:
            i++;
            if (c == '\n') {
                r->chunk_state = r->left ? CS_DATA : CS_TRAILER;
                r->trailer_line = 0;
            }
            break;
        case CS_DATA: {
            size_t take = len - i < r->left ? len - i : (size_t)r->left;
            int rc = on_body ? on_body(ctx, p + i, take) : 0;
            if (rc < 0)
                return rc;
            r->body_bytes += take;
            r->left -= take;
            i += take;
            if (r->left == 0)
                r->chunk_state = CS_DATA_END;
            break;
        }
        case CS_DATA_END:
            i++;
            if (c == '\n') {
                r->chunk_state = CS_SIZE;
                r->chunk_digits = 0;
            } else if (c != '\r') {
                return -EPROTO;
            }
            break;
        case CS_TRAILER:
            i++;
            if (c == '\n') {
                if (r->trailer_line == 0)
                    r->done = 1;
                r->trailer_line = 0;
            } else if (c != '\r') {
                r->trailer_line++;
            }
            break;
        }
    }
    return (ssize_t)i;
}

/* Passes plain body bytes on, up to the end of a Content-Length body;
 * returns bytes used or the callback's negative return. */
static ssize_t feed_plain(http_resp_t *r, const char *p, size_t len, http_body_cb on_body, void *ctx)
{
    size_t take = len;
    if (r->body_mode == HTTP_BODY_LENGTH && take > r->left)
        take = (size_t)r->left;
    int rc = on_body && take ? on_body(ctx, p, take) : 0;
    if (rc < 0)
        return rc;
    r->body_bytes += take;
    if (r->body_mode == HTTP_BODY_LENGTH) {
        r->left -= take;
        r->done = r->left == 0;
    }
    return (ssize_t)take;
}

ssize_t http_resp_feed(http_resp_t *r, const char *bytes, size_t len, http_body_cb on_body, void *ctx)
{
    size_t used = 0;
    while (used < len && !r->done) {
        ssize_t n;
        if (!r->head_done)
            n = read_head(r, bytes + used, len - used);
        else if (r->body_mode == HTTP_BODY_CHUNKED)
            n = feed_chunked(r, bytes + used, len - used, on_body, ctx);
        else
            n = feed_plain(r, bytes + used, len - used, on_body, ctx);
        if (n < 0)
            return n;
        used += (size_t)n;
    }
    return (ssize_t)used;
}
