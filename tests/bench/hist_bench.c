/*
 * hist_bench: what one hist_record costs, alone and contended.
 *
 * For 1, 2, 8 and 64 threads, each thread records N values (a fixed cycle
 * of log-spread latencies from 1 us to 100 ms) into one shared histogram,
 * first with no reader, then while a scraper snapshots it 10 times a
 * second (what a Prometheus scrape does). Prints, per run:
 *   cpu ns/rec   CPU time of a recording thread / N (what a record costs
 *                the thread; immune to oversubscription)
 *   wall ns/rec  wall time of a recording thread / N
 *   Mrec/s       all records / wall time of the run (aggregate throughput)
 * and a baseline row: a bare relaxed atomic add on one shared counter.
 *
 * Usage: hist_bench [N]   (default 2000000 records per thread)
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Iinclude src/util.c
 *        src/hist.c tests/bench/hist_bench.c -o build/hist_bench
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#define NVALUES   4096 /* cycle of values; a power of two */
#define MAX_THR   64
#define SCRAPE_NS UINT64_C(100000000) /* 10 per second */

struct run {
    struct hist *h; /* NULL: bare atomic baseline */
    unsigned nthreads;
    uint64_t n; /* records per thread */
    pthread_barrier_t start;
    _Atomic uint64_t cpu_ns;  /* summed over threads */
    _Atomic uint64_t wall_ns; /* summed over threads */
    _Atomic int stop_scrape;
    _Atomic uint64_t scrapes;
};

static uint64_t values[NVALUES];
static _Atomic uint64_t baseline_counter;

static uint64_t
clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
recorder(void *arg)
{
    struct run *r = arg;
    uint64_t w0, c0;

    pthread_barrier_wait(&r->start);
    w0 = clock_ns(CLOCK_MONOTONIC);
    c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (r->h != NULL) {
        for (uint64_t i = 0; i < r->n; i++) {
            hist_record(r->h, values[i & (NVALUES - 1)]);
        }
    } else {
        for (uint64_t i = 0; i < r->n; i++) {
            atomic_fetch_add_explicit(&baseline_counter,
                                      values[i & (NVALUES - 1)],
                                      memory_order_relaxed);
        }
    }
    atomic_fetch_add(&r->cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0);
    atomic_fetch_add(&r->wall_ns, clock_ns(CLOCK_MONOTONIC) - w0);
    return NULL;
}

static void *
scraper(void *arg)
{
    struct run *r = arg;
    struct hist_snapshot *s = malloc(sizeof(*s));
    struct timespec pause = {0, (long)SCRAPE_NS};

    if (s == NULL) {
        return NULL;
    }
    while (!atomic_load(&r->stop_scrape)) {
        hist_snapshot(r->h, s, false);
        atomic_fetch_add(&r->scrapes, 1);
        nanosleep(&pause, NULL);
    }
    free(s);
    return NULL;
}

static int
bench(const char *label, unsigned nthreads, uint64_t n, bool scrape,
      bool baseline)
{
    struct run r = {.nthreads = nthreads, .n = n};
    pthread_t tid[MAX_THR], sc;
    uint64_t t0, wall;
    double total = (double)nthreads * (double)n;

    r.h = baseline ? NULL : hist_create();
    if ((!baseline && r.h == NULL) ||
        pthread_barrier_init(&r.start, NULL, nthreads + 1) != 0) {
        return -1;
    }
    if (scrape && pthread_create(&sc, NULL, scraper, &r) != 0) {
        return -1;
    }
    for (unsigned t = 0; t < nthreads; t++) {
        if (pthread_create(&tid[t], NULL, recorder, &r) != 0) {
            return -1;
        }
    }
    pthread_barrier_wait(&r.start);
    t0 = clock_ns(CLOCK_MONOTONIC);
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
    }
    wall = clock_ns(CLOCK_MONOTONIC) - t0;
    atomic_store(&r.stop_scrape, 1);
    if (scrape) {
        pthread_join(sc, NULL);
    }
    printf("%-14s %7u %8s %11.1f %12.1f %9.1f %8llu\n", label, nthreads,
           scrape ? "10/s" : "-", (double)r.cpu_ns / total,
           (double)r.wall_ns / total, total / (double)wall * 1e3,
           (unsigned long long)r.scrapes);
    pthread_barrier_destroy(&r.start);
    hist_destroy(r.h);
    return 0;
}

int
main(int argc, char **argv)
{
    static const unsigned threads[] = {1, 2, 8, 64};
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    uint64_t x = 88172645463325252u;

    for (size_t i = 0; i < NVALUES; i++) { /* log-spread 1 us .. ~100 ms */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        values[i] = UINT64_C(1000) << (x % 17);
        values[i] += x % values[i];
    }
    printf("hist_record, %llu records per thread, %ld CPUs\n",
           (unsigned long long)n, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-14s %7s %8s %11s %12s %9s %8s\n", "run", "threads", "scrape",
           "cpu ns/rec", "wall ns/rec", "Mrec/s", "scrapes");
    if (bench("atomic add", 1, n, false, true) != 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        if (bench("hist_record", threads[i], n, false, false) != 0 ||
            bench("hist_record", threads[i], n, true, false) != 0) {
            fprintf(stderr, "hist_bench: cannot start threads\n");
            return 1;
        }
    }
    return 0;
}
