/* A log-linear latency histogram in microseconds, 1 us .. 100 s: exact
 * below 128 us, then 64 buckets per power of two (under 1.6% error), so
 * p50 .. p999 come out right without keeping every sample. */
#ifndef SSEHUB_BENCH_HISTOGRAM_H
#define SSEHUB_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_LINEAR (2u << HIST_SUB_BITS) /* values below this are exact */
#define HIST_MAX_US 100000000ull          /* larger values are clamped */
#define HIST_BUCKETS (HIST_LINEAR + 20u * (1u << HIST_SUB_BITS))

typedef struct hist {
    uint64_t count;                 /* samples recorded */
    uint64_t max_us;                /* largest sample, exact (not clamped) */
    uint64_t buckets[HIST_BUCKETS]; /* samples per bucket */
} hist_t;

/* Adds one sample. */
void hist_record(hist_t *h, uint64_t us);
/* Adds every sample of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/* Returns the value at quantile q (0 < q <= 1) as the upper end of its
 * bucket (never above the maximum), or 0 for an empty histogram. */
uint64_t hist_quantile(const hist_t *h, double q);

#endif
