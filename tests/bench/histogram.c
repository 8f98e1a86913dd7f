/* Log-linear latency histogram. */
#include "tests/bench/histogram.h"

#include <math.h>

/* Returns the bucket of a value (already clamped to HIST_MAX_US). */
static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
    unsigned shift = e - HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - (1u << HIST_SUB_BITS);
    return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * (1u << HIST_SUB_BITS) + sub;
}

/* Returns the largest value that falls in bucket b. */
static uint64_t bucket_top(unsigned b)
{
    if (b < HIST_LINEAR)
        return b;
    unsigned k = b - HIST_LINEAR;
    unsigned e = k / (1u << HIST_SUB_BITS) + HIST_SUB_BITS + 1;
    unsigned sub = k % (1u << HIST_SUB_BITS);
    unsigned shift = e - HIST_SUB_BITS;
    return ((uint64_t)(sub + (1u << HIST_SUB_BITS) + 1) << shift) - 1;
}

void hist_record(hist_t *h, uint64_t us)
{
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
    h->buckets[bucket_of(us > HIST_MAX_US ? HIST_MAX_US : us)]++;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    dst->count += src->count;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max_us ? top : h->max_us;
        }
    }
    return h->max_us;
}
