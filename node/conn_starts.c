/* Stream starts per connection and second (see conn_starts.h): a linear
 * probing table rebuilt when it grows or expires entries. */
#include "node/conn_starts.h"

#include <stdlib.h>
#include <string.h>

static uint32_t slot_of(const conn_starts_t *t, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key & (t->cap - 1);
}

/* Moves the entries still counting at `second` or later into a table of cap
 * slots; returns 0 or -1 (nothing changed). */
static int rebuild(conn_starts_t *t, uint32_t cap, uint64_t second)
{
    conn_starts_slot_t *slots = calloc(cap, sizeof(*slots)), *old = t->slots;
    if (slots == NULL)
        return -1;
    uint32_t oldcap = t->cap;
    t->slots = slots;
    t->cap = cap;
    t->used = 0;
    for (uint32_t i = 0; i < oldcap; i++) {
        if (old[i].id == 0 || old[i].second < second)
            continue;
        uint32_t k = slot_of(t, old[i].id);
        while (slots[k].id != 0)
            k = (k + 1) & (cap - 1);
        slots[k] = old[i];
        t->used++;
    }
    free(old);
    return 0;
}

int conn_starts_hit(conn_starts_t *t, uint64_t id, uint64_t now_ms, uint32_t limit)
{
    uint64_t key = id + 1, second = now_ms / 1000;
    if ((t->used + 1) * 2 > t->cap && rebuild(t, t->cap ? t->cap * 2 : 64, second) != 0)
        return 0;
    uint32_t k = slot_of(t, key);
    while (t->slots[k].id != 0 && t->slots[k].id != key)
        k = (k + 1) & (t->cap - 1);
    conn_starts_slot_t *s = &t->slots[k];
    if (s->id == 0) {
        *s = (conn_starts_slot_t){.id = key, .second = second};
        t->used++;
    } else if (s->second != second) {
        s->second = second;
        s->n = 0;
    }
    if (s->n <= limit)
        s->n++;
    return s->n > limit;
}

void conn_starts_expire(conn_starts_t *t, uint64_t now_ms)
{
    if (t->used == 0)
        return;
    uint64_t since = now_ms / 1000 > 0 ? now_ms / 1000 - 1 : 0;
    uint32_t live = 0, cap = t->cap;
    for (uint32_t i = 0; i < t->cap; i++)
        live += t->slots[i].id != 0 && t->slots[i].second >= since;
    if (live == t->used)
        return;
    /* shrink a table that grew during a burst */
    while (cap > 64 && live * 8 < cap)
        cap /= 2;
    rebuild(t, cap, since);
}

void conn_starts_dispose(conn_starts_t *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
