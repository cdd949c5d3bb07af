/*
 * hist: a latency histogram with log-linear buckets, in the manner of
 * HdrHistogram.
 *
 * Values are nanoseconds. Below 64 ns every value has its own bucket; above,
 * each power of two [2^e, 2^(e+1)) is cut into 32 equal sub-buckets, so a
 * bucket's width is at most 1/32 of its lowest value: any value reported for
 * a bucket is within 3.2% of every value recorded in it (the requirement is
 * 5% from 1 us to 60 s). Values above HIST_MAX_NS (60 s) are counted in the
 * top bucket; the sum keeps their real value. 1024 buckets: 8 KiB, plus
 * 512 bytes of locks.
 *
 * Data flow: many threads call hist_record; a scraper calls hist_snapshot
 * and reads counts, sum, quantiles and cumulative counts from the copy.
 *
 * Thread-safety: hist_record takes the READ side of a pthread rwlock and
 * adds to one bucket and a sum with relaxed atomic adds, so recorders
 * never wait for each other. The lock is striped (HIST_STRIPES rwlocks,
 * each with its own sum on its own cache line, one per thread), so
 * recorders on different threads do not even share the lock's cache line.
 * hist_snapshot and hist_reset take the WRITE side of every stripe, so a
 * snapshot is consistent: its count is exactly the sum of its buckets and
 * its sum belongs to the same records. The locks prefer writers so a
 * steady stream of recorders cannot starve a scrape. Snapshots are plain
 * data owned by the caller.
 */
#ifndef RIVEN_HIST_H
#define RIVEN_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define HIST_SUB_BITS 5 /* 32 sub-buckets per 2^e */
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_MIN_NS   UINT64_C(1000)        /* 1 us: accuracy holds from */
#define HIST_MAX_NS   UINT64_C(60000000000) /* 60 s: larger is clamped */
#define HIST_NBUCKETS 1024                  /* index(HIST_MAX_NS) < this */
#define HIST_STRIPES  8                     /* rwlocks, threads spread */

struct hist;

/* A consistent copy of a histogram. Large (8 KiB): allocate it, or keep it
 * off small thread stacks. */
struct hist_snapshot {
    uint64_t count;                  /* records; == sum of buckets */
    uint64_t sum_ns;                 /* sum of recorded values (unclamped) */
    uint64_t buckets[HIST_NBUCKETS]; /* records per bucket */
};

/* An empty histogram. NULL when memory runs out. */
struct hist *hist_create(void) WUR;
/* Free it; no recorder may still use it. NULL-safe. */
void hist_destroy(struct hist *h);

/* Count one value of ns nanoseconds. Never fails, never blocks on other
 * recorders (only, briefly, on a snapshot in progress). h must not be
 * NULL. Thread-safe. */
void hist_record(struct hist *h, uint64_t ns);

/* Copy the histogram into out and, if reset, zero it in the same critical
 * section (no record is lost or counted twice). Thread-safe. */
void hist_snapshot(struct hist *h, struct hist_snapshot *out, bool reset);

/* Zero the histogram. Thread-safe. */
void hist_reset(struct hist *h);

/* The bucket a value falls in: 0..HIST_NBUCKETS-1, monotonic in ns. */
size_t hist_bucket_index(uint64_t ns);
/* Lowest and highest value (inclusive) of bucket idx < HIST_NBUCKETS. */
uint64_t hist_bucket_lowest(size_t idx);
uint64_t hist_bucket_highest(size_t idx);

/* The value at quantile q (0 <= q <= 1; clamped) of a snapshot: the
 * midpoint of the bucket holding the ceil(q * count)-th smallest record
 * (q == 0: the smallest record). 0 for an empty snapshot. */
uint64_t hist_quantile(const struct hist_snapshot *s, double q);

/* Cumulative counts for Prometheus "le" buckets: out[i] = records in the
 * buckets up to and including the one holding bounds_ns[i]. Every record
 * <= bounds_ns[i] is counted; so are records of that same bucket above the
 * bound (at most 3.2% above it). bounds_ns must be ascending; out[i] is
 * then non-decreasing and at most s->count. */
void hist_cumulative(const struct hist_snapshot *s, const uint64_t *bounds_ns,
                     size_t n, uint64_t *out);

#endif /* RIVEN_HIST_H */
