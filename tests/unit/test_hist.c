/*
 * test_hist: the latency histogram. Bucket edges are contiguous and the
 * index is their inverse; every value from 1 us to 60 s lands in a bucket
 * no wider than 5% of the value (3.2% by construction); quantiles and
 * cumulative counts of known data; reset; 8 threads recording while a
 * scraper snapshots lose no record. Run it under -fsanitize=thread too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "hist.h"

#define US UINT64_C(1000)
#define MS UINT64_C(1000000)
#define S  UINT64_C(1000000000)

static struct hist_snapshot snap; /* 8 KiB: off the stack */

static void
test_bucket_edges(void **state)
{
    size_t top = hist_bucket_index(HIST_MAX_NS);

    (void)state;
    assert_true(top < HIST_NBUCKETS);
    assert_int_equal(hist_bucket_index(UINT64_MAX), top);
    assert_int_equal(hist_bucket_index(HIST_MAX_NS + 1), top);
    for (size_t i = 0; i <= top; i++) {
        uint64_t lo = hist_bucket_lowest(i), hi = hist_bucket_highest(i);

        assert_true(lo <= hi);
        assert_int_equal(hist_bucket_index(lo), i);
        assert_int_equal(hist_bucket_index(hi), i);
        if (i > 0) {
            assert_int_equal(lo, hist_bucket_highest(i - 1) + 1);
        }
    }
    /* exact below 64 ns, then widths double every 32 buckets */
    assert_int_equal(hist_bucket_index(0), 0);
    assert_int_equal(hist_bucket_index(63), 63);
    assert_int_equal(hist_bucket_index(64), 64);
    assert_int_equal(hist_bucket_index(65), 64);
    assert_int_equal(hist_bucket_index(66), 65);
    assert_int_equal(hist_bucket_lowest(96), 128);
    assert_int_equal(hist_bucket_highest(96), 131);
}

/* Every value v in [1 us, 60 s] (a geometric sweep plus every bucket
 * edge): its bucket is at most 5% of v wide, the bucket's midpoint (what
 * quantiles report) is within 5% of v, and a histogram holding only v
 * reports that midpoint as every quantile. */
static void
check_value(struct hist *h, uint64_t v, bool record)
{
    size_t idx = hist_bucket_index(v);
    uint64_t lo = hist_bucket_lowest(idx), hi = hist_bucket_highest(idx);
    uint64_t mid = lo + (hi - lo) / 2;
    double err = (double)(mid > v ? mid - v : v - mid) / (double)v;

    if ((double)(hi - lo + 1) / (double)lo > 0.05 || err > 0.05) {
        fail_msg("v=%llu bucket [%llu, %llu] err %.4f", (unsigned long long)v,
                 (unsigned long long)lo, (unsigned long long)hi, err);
    }
    if (record) {
        hist_record(h, v);
        hist_snapshot(h, &snap, true);
        assert_int_equal(snap.count, 1);
        assert_int_equal(snap.sum_ns, v);
        assert_int_equal(hist_quantile(&snap, 0.0), mid);
        assert_int_equal(hist_quantile(&snap, 0.5), mid);
        assert_int_equal(hist_quantile(&snap, 1.0), mid);
    }
}

static void
test_relative_error(void **state)
{
    struct hist *h = hist_create();
    size_t n = 0;

    (void)state;
    assert_non_null(h);
    for (double v = (double)HIST_MIN_NS; v <= (double)HIST_MAX_NS;
         v *= 1.0007) {
        check_value(h, (uint64_t)v, n++ % 64 == 0);
    }
    for (size_t i = hist_bucket_index(HIST_MIN_NS);
         i <= hist_bucket_index(HIST_MAX_NS); i++) {
        uint64_t lo = hist_bucket_lowest(i), hi = hist_bucket_highest(i);

        check_value(h, lo < HIST_MIN_NS ? HIST_MIN_NS : lo, true);
        check_value(h, hi > HIST_MAX_NS ? HIST_MAX_NS : hi, true);
    }
    check_value(h, HIST_MIN_NS, true);
    check_value(h, HIST_MAX_NS, true);
    assert_true(n > 25000); /* ln(6e7) / ln(1.0007) */
    hist_destroy(h);
}

static void
assert_near(uint64_t got, uint64_t want)
{
    double err = (double)(got > want ? got - want : want - got) / (double)want;

    if (err > 0.05) {
        fail_msg("got %llu, want %llu (err %.4f)", (unsigned long long)got,
                 (unsigned long long)want, err);
    }
}

static void
test_quantiles(void **state)
{
    struct hist *h = hist_create();

    (void)state;
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.count, 0);
    assert_int_equal(hist_quantile(&snap, 0.5), 0);

    for (uint64_t v = 1; v <= 1000; v++) { /* 1 us .. 1 ms, once each */
        hist_record(h, v * US);
    }
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.count, 1000);
    assert_int_equal(snap.sum_ns, 500500 * US);
    assert_near(hist_quantile(&snap, 0.0), 1 * US);
    assert_near(hist_quantile(&snap, 0.001), 1 * US);
    assert_near(hist_quantile(&snap, 0.25), 250 * US);
    assert_near(hist_quantile(&snap, 0.5), 500 * US);
    assert_near(hist_quantile(&snap, 0.9), 900 * US);
    assert_near(hist_quantile(&snap, 0.99), 990 * US);
    assert_near(hist_quantile(&snap, 0.999), 999 * US);
    assert_near(hist_quantile(&snap, 1.0), 1000 * US);
    assert_near(hist_quantile(&snap, 7.0), 1000 * US); /* clamped */
    assert_near(hist_quantile(&snap, -1.0), 1 * US);   /* clamped */

    /* a skewed set: 990 fast, 10 slow; p99 is fast, p99.1 slow */
    hist_reset(h);
    for (int i = 0; i < 990; i++) {
        hist_record(h, 100 * US);
    }
    for (int i = 0; i < 10; i++) {
        hist_record(h, 2 * S);
    }
    hist_snapshot(h, &snap, false);
    assert_near(hist_quantile(&snap, 0.99), 100 * US);
    assert_near(hist_quantile(&snap, 0.991), 2 * S);

    /* beyond 60 s: counted in the top bucket, summed unclamped */
    hist_reset(h);
    hist_record(h, 120 * S);
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.buckets[hist_bucket_index(HIST_MAX_NS)], 1);
    assert_int_equal(snap.sum_ns, 120 * S);
    hist_destroy(h);
}

static void
test_cumulative(void **state)
{
    static const uint64_t bounds[] = {50 * US, 100 * US, 1 * MS,    10 * MS,
                                      1 * S,   10 * S,   UINT64_MAX};
    static const uint64_t want[] = {2, 3, 5, 5, 6, 6, 7};
    uint64_t cum[NELEMS(bounds)];
    struct hist *h = hist_create();

    (void)state;
    hist_record(h, 10 * US);
    hist_record(h, 50 * US); /* exactly on a bound: counted in it */
    hist_record(h, 70 * US);
    hist_record(h, 200 * US);
    hist_record(h, 999 * US);
    hist_record(h, 500 * MS);
    hist_record(h, 30 * S);
    hist_snapshot(h, &snap, false);
    hist_cumulative(&snap, bounds, NELEMS(bounds), cum);
    for (size_t i = 0; i < NELEMS(bounds); i++) {
        assert_int_equal(cum[i], want[i]);
    }
    assert_int_equal(cum[NELEMS(bounds) - 1], snap.count);

    /* values just above a bound share its bucket (< 3.2% above) */
    hist_reset(h);
    hist_record(h, 1 * MS + 1);
    hist_record(h, 1 * MS * 104 / 100);
    hist_snapshot(h, &snap, false);
    hist_cumulative(&snap, &bounds[2], 1, cum);
    assert_true(cum[0] <= 1);
    hist_destroy(h);
}

static void
test_reset(void **state)
{
    struct hist *h = hist_create();

    (void)state;
    for (int i = 0; i < 100; i++) {
        hist_record(h, (uint64_t)i * MS);
    }
    hist_snapshot(h, &snap, true); /* snapshot and reset at once */
    assert_int_equal(snap.count, 100);
    assert_int_equal(snap.sum_ns, 4950 * MS);
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.count, 0);
    assert_int_equal(snap.sum_ns, 0);
    hist_record(h, 5 * US);
    hist_reset(h);
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.count, 0);
    for (size_t i = 0; i < HIST_NBUCKETS; i++) {
        assert_int_equal(snap.buckets[i], 0);
    }
    hist_destroy(h);
    hist_destroy(NULL);
}

/* ---- concurrency ---- */

#define THREADS    8
#define PER_THREAD 200000

struct worker {
    struct hist *h;
    unsigned seed;
};

static void *
record_many(void *arg)
{
    struct worker *w = arg;

    for (uint64_t i = 0; i < PER_THREAD; i++) {
        hist_record(w->h, US + (i * 7919 + w->seed) % (100 * MS));
    }
    return NULL;
}

static _Atomic int done;
static _Atomic int torn; /* set by the scraper: cmocka asserts only on the
                            main thread */

/* Snapshots as fast as it can; each must be consistent and the running
 * total (with reset) must never go backwards. */
static void *
scrape_many(void *arg)
{
    struct hist *h = arg;
    struct hist_snapshot *s = malloc(sizeof(*s));
    uint64_t last = 0;

    if (s == NULL) {
        atomic_store(&torn, 1);
        return NULL;
    }
    while (!atomic_load(&done)) {
        uint64_t sum = 0;

        hist_snapshot(h, s, false);
        for (size_t i = 0; i < HIST_NBUCKETS; i++) {
            sum += s->buckets[i];
        }
        if (sum != s->count || s->count < last) {
            atomic_store(&torn, 1);
        }
        last = s->count;
    }
    free(s);
    return NULL;
}

static void
test_concurrent(void **state)
{
    struct hist *h = hist_create();
    pthread_t tid[THREADS], scraper;
    struct worker w[THREADS];
    uint64_t want_sum = 0;

    (void)state;
    atomic_store(&done, 0);
    atomic_store(&torn, 0);
    assert_int_equal(pthread_create(&scraper, NULL, scrape_many, h), 0);
    for (unsigned t = 0; t < THREADS; t++) {
        w[t].h = h;
        w[t].seed = t * 104729u;
        assert_int_equal(pthread_create(&tid[t], NULL, record_many, &w[t]), 0);
        for (uint64_t i = 0; i < PER_THREAD; i++) {
            want_sum += US + (i * 7919 + w[t].seed) % (100 * MS);
        }
    }
    for (unsigned t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
    }
    atomic_store(&done, 1);
    assert_int_equal(pthread_join(scraper, NULL), 0);
    assert_int_equal(atomic_load(&torn), 0);
    hist_snapshot(h, &snap, false);
    assert_int_equal(snap.count, (uint64_t)THREADS * PER_THREAD);
    assert_int_equal(snap.sum_ns, want_sum);
    hist_destroy(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_cumulative),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_concurrent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
