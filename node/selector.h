/* Mercure topic selectors: `*`, an exact topic, or an RFC 6570 URI template
 * (levels 1-4) that a topic matches when some variable values expand to it.
 * Pure functions; a compiled selector is immutable and shareable. */
#ifndef SSEHUB_NODE_SELECTOR_H
#define SSEHUB_NODE_SELECTOR_H

#include <stddef.h>

/* Templates longer than this, or with more expressions, are taken as plain
 * strings so that compiling and matching stay cheap. */
#define SELECTOR_MAX_TEMPLATE 4096
#define SELECTOR_MAX_EXPRESSIONS 64

/* A compiled topic selector. */
typedef struct selector selector_t;

/* Compiles a selector (len bytes, any bytes); NULL only when out of memory.
 * A string that is not a valid URI template is kept as a plain string. */
selector_t *selector_new(const char *s, size_t len);
void selector_free(selector_t *sel);
/* 1 when the topic matches: the selector is `*`, the topic is byte-identical
 * to it, or the selector is a template some expansion of which is the topic.
 * Time is O(template size * topic length); memory O(template size).
 * Thread-safe on a shared compiled selector (no mutation during match);
 * 0 when a template's match state cannot be allocated. */
int selector_match(const selector_t *sel, const char *topic, size_t len);
/* 1 for the selector `*`, 2 for a valid URI template that contains at least
 * one expression, 0 for a plain string (matches only itself). */
int selector_kind(const selector_t *sel);

#endif
