/* Growable byte buffers: the one dynamic-string type every part shares. */
#ifndef SSEHUB_COMMON_BUF_H
#define SSEHUB_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

/* A heap byte buffer. `base` is NUL-terminated whenever cap > 0 (the NUL is
 * not counted in len), so it can be handed to C string functions. Owned by
 * whoever embeds it; release with buf_free. */
typedef struct buf {
    char *base;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

/* Makes room for `extra` more bytes; returns 0, or -ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
/* Appends bytes; returns 0 or -ENOMEM. */
int buf_append(buf_t *b, const void *p, size_t n);
/* Appends a NUL-terminated string; returns 0 or -ENOMEM. */
int buf_append_str(buf_t *b, const char *s);
/* Appends one byte; returns 0 or -ENOMEM. */
int buf_append_char(buf_t *b, char c);
/* Appends printf output; returns 0 or -ENOMEM. */
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Cuts the contents back to len bytes (len <= b->len), e.g. to undo a
 * partly appended record. */
void buf_truncate(buf_t *b, size_t len);
/* Forgets the contents but keeps the memory. */
void buf_clear(buf_t *b);
/* Releases the memory; the buffer is empty and reusable afterwards. */
void buf_free(buf_t *b);

#endif
