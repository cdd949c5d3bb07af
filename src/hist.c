/*
 * hist: log-linear latency buckets behind a writer-preferring rwlock.
 *
 * Bucket index of a value v (ns, clamped to HIST_MAX_NS):
 *   v < 64:   idx = v                                  (exact)
 *   v >= 64:  e = floor(log2 v), s = e - 5
 *             idx = s * 32 + (v >> s)                  (v >> s in [32, 64))
 * so each power of two holds 32 buckets of width 2^s, and the index grows
 * with v. The inverse: e = idx / 32 + 4, lowest = (idx % 32 + 32) << s.
 *
 * Locking: HIST_STRIPES rwlocks, each with its own partial sum on its own
 * cache line. A thread is given a stripe on its first record (round
 * robin) and always read-locks that one, so recorders on different
 * stripes share no lock or sum cache line (only a bucket line when they
 * record similar values). A snapshot or reset write-locks every stripe,
 * in index order (two writers cannot deadlock), which excludes every
 * recorder.
 *
 * Invariants: count is never stored; it is the sum of the buckets, read
 * under all write locks, so a snapshot's count always equals its buckets.
 */
#include "hist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64

/* One lock and one sum per cache line, so threads recording on different
 * stripes never write the same line for them. */
struct stripe {
    _Alignas(CACHE_LINE) pthread_rwlock_t lock; /* read: record; write:
                                                   snapshot, reset */
    _Atomic uint64_t sum_ns;                    /* of this stripe's records */
};

struct hist {
    struct stripe stripes[HIST_STRIPES];
    _Atomic uint64_t buckets[HIST_NBUCKETS]; /* records per bucket */
};

static _Atomic unsigned next_stripe; /* round-robin over threads */
static _Thread_local unsigned my_stripe = HIST_STRIPES; /* unset */

/* The calling thread's stripe, assigned on its first record. */
static inline unsigned
stripe_of_thread(void)
{
    if (my_stripe == HIST_STRIPES) {
        my_stripe =
            atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) %
            HIST_STRIPES;
    }
    return my_stripe;
}

static void
lock_all(struct hist *h)
{
    for (size_t i = 0; i < HIST_STRIPES; i++) {
        pthread_rwlock_wrlock(&h->stripes[i].lock);
    }
}

static void
unlock_all(struct hist *h)
{
    for (size_t i = HIST_STRIPES; i-- > 0;) {
        pthread_rwlock_unlock(&h->stripes[i].lock);
    }
}

static size_t
hist_size(void)
{
    return (sizeof(struct hist) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
}

struct hist *
hist_create(void)
{
    struct hist *h = aligned_alloc(CACHE_LINE, hist_size());
    pthread_rwlockattr_t attr;
    size_t i;

    if (h == NULL) {
        return NULL;
    }
    memset(h, 0, hist_size());
    if (pthread_rwlockattr_init(&attr) != 0) {
        free(h);
        return NULL;
    }
    /* glibc's default prefers readers: a scrape could starve. */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (i = 0; i < HIST_STRIPES; i++) {
        if (pthread_rwlock_init(&h->stripes[i].lock, &attr) != 0) {
            break;
        }
        atomic_init(&h->stripes[i].sum_ns, 0);
    }
    pthread_rwlockattr_destroy(&attr);
    if (i < HIST_STRIPES) {
        while (i-- > 0) {
            pthread_rwlock_destroy(&h->stripes[i].lock);
        }
        free(h);
        return NULL;
    }
    for (i = 0; i < HIST_NBUCKETS; i++) {
        atomic_init(&h->buckets[i], 0);
    }
    return h;
}

void
hist_destroy(struct hist *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < HIST_STRIPES; i++) {
        pthread_rwlock_destroy(&h->stripes[i].lock);
    }
    free(h);
}

size_t
hist_bucket_index(uint64_t ns)
{
    unsigned e, s;

    if (ns > HIST_MAX_NS) {
        ns = HIST_MAX_NS;
    }
    if (ns < 2 * HIST_SUB) {
        return (size_t)ns;
    }
    e = 63u - (unsigned)__builtin_clzll(ns);
    s = e - HIST_SUB_BITS;
    return (size_t)s * HIST_SUB + (size_t)(ns >> s);
}

uint64_t
hist_bucket_lowest(size_t idx)
{
    unsigned s;

    if (idx < 2 * HIST_SUB) {
        return idx;
    }
    s = (unsigned)(idx / HIST_SUB) - 1;
    return (uint64_t)(idx % HIST_SUB + HIST_SUB) << s;
}

uint64_t
hist_bucket_highest(size_t idx)
{
    if (idx < 2 * HIST_SUB) {
        return idx;
    }
    return hist_bucket_lowest(idx) + (UINT64_C(1) << (idx / HIST_SUB - 1)) - 1;
}

void
hist_record(struct hist *h, uint64_t ns)
{
    size_t idx = hist_bucket_index(ns);
    struct stripe *st = &h->stripes[stripe_of_thread()];

    if (pthread_rwlock_rdlock(&st->lock) != 0) {
        return; /* EAGAIN: too many readers; drop rather than block */
    }
    atomic_fetch_add_explicit(&h->buckets[idx], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum_ns, ns, memory_order_relaxed);
    pthread_rwlock_unlock(&st->lock);
}

/* Caller holds every write lock. */
static void
zero_locked(struct hist *h)
{
    for (size_t i = 0; i < HIST_NBUCKETS; i++) {
        atomic_store_explicit(&h->buckets[i], 0, memory_order_relaxed);
    }
    for (size_t i = 0; i < HIST_STRIPES; i++) {
        atomic_store_explicit(&h->stripes[i].sum_ns, 0, memory_order_relaxed);
    }
}

void
hist_snapshot(struct hist *h, struct hist_snapshot *out, bool reset)
{
    uint64_t count = 0, sum = 0;

    lock_all(h);
    for (size_t i = 0; i < HIST_NBUCKETS; i++) {
        out->buckets[i] =
            atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        count += out->buckets[i];
    }
    for (size_t i = 0; i < HIST_STRIPES; i++) {
        sum +=
            atomic_load_explicit(&h->stripes[i].sum_ns, memory_order_relaxed);
    }
    out->sum_ns = sum;
    out->count = count;
    if (reset) {
        zero_locked(h);
    }
    unlock_all(h);
}

void
hist_reset(struct hist *h)
{
    lock_all(h);
    zero_locked(h);
    unlock_all(h);
}

uint64_t
hist_quantile(const struct hist_snapshot *s, double q)
{
    uint64_t rank, seen = 0;
    double want;

    if (s->count == 0) {
        return 0;
    }
    q = q < 0.0 ? 0.0 : (q > 1.0 ? 1.0 : q);
    want = q * (double)s->count;
    rank = (uint64_t)want;
    if ((double)rank < want || rank == 0) {
        rank++; /* ceil, and at least the first record */
    }
    for (size_t i = 0; i < HIST_NBUCKETS; i++) {
        seen += s->buckets[i];
        if (seen >= rank) {
            uint64_t lo = hist_bucket_lowest(i);

            return lo + (hist_bucket_highest(i) - lo) / 2;
        }
    }
    return hist_bucket_highest(HIST_NBUCKETS - 1); /* not reached */
}

void
hist_cumulative(const struct hist_snapshot *s, const uint64_t *bounds_ns,
                size_t n, uint64_t *out)
{
    uint64_t acc = 0;
    size_t next = 0; /* first bucket not yet in acc */

    for (size_t i = 0; i < n; i++) {
        size_t last = hist_bucket_index(bounds_ns[i]);

        for (; next <= last; next++) {
            acc += s->buckets[next];
        }
        out[i] = acc;
    }
}
