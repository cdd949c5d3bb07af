/*
 * integ_stress: 200 libmemcached clients at once through riven.
 *
 * Each thread owns one memcached_st (one connection) and, for about 3 s or
 * ITER_MAX iterations, whichever comes first, sets its own keys to values
 * derived from (thread id, iteration) and reads each back at once. Every
 * value read must be exactly the one written: a proxy that mixes up
 * connections, replies or buffers shows up here. The thread count is
 * scaled down, with a message, when ulimit -n is too low.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <cmocka.h>
#include <libmemcached/memcached.h>

#include "group.h"
#include "harness.h"

#define THREADS     200
#define DURATION_MS 3000
#define ITER_MAX    5000
#define KEYS_PER    50

static pthread_barrier_t start_line;
static atomic_ulong total_sets, total_gets, total_errors, total_mismatches;

/* Value for (tid, iter): a header plus filler of a varying length. */
static size_t
make_value(char *buf, size_t cap, int tid, int iter)
{
    int n = snprintf(buf, cap, "t%d-i%d-", tid, iter);
    size_t len = (size_t)n + (size_t)((tid * 31 + iter * 17) % 400);

    assert_true(len < cap);
    for (size_t i = (size_t)n; i < len; i++) {
        buf[i] = (char)('a' + (tid + iter + (int)i) % 26);
    }
    return len;
}

static void *
worker(void *arg)
{
    int tid = (int)(intptr_t)arg;
    memcached_st *m = memcached_create(NULL);
    unsigned long sets = 0, gets = 0, errors = 0, bad = 0;
    char key[64], val[512];
    int64_t deadline;

    if (m == NULL ||
        memcached_server_add(m, "127.0.0.1", (in_port_t)group_stack.port) !=
            MEMCACHED_SUCCESS) {
        atomic_fetch_add(&total_errors, 1);
        pthread_barrier_wait(&start_line);
        memcached_free(m);
        return NULL;
    }
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 5000);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 5000);
    pthread_barrier_wait(&start_line);
    deadline = harness_now_ms() + DURATION_MS;
    for (int i = 0; i < ITER_MAX && harness_now_ms() < deadline; i++) {
        size_t klen = (size_t)snprintf(key, sizeof(key), "stress:%d:%d", tid,
                                       i % KEYS_PER);
        size_t vlen = make_value(val, sizeof(val), tid, i);
        memcached_return_t rc;
        uint32_t flags = 0;
        size_t glen = 0;
        char *got;

        rc = memcached_set(m, key, klen, val, vlen, 0, (uint32_t)tid);
        if (rc != MEMCACHED_SUCCESS) {
            if (errors++ < 3) {
                fprintf(stderr, "thread %d: set %s: %s\n", tid, key,
                        memcached_last_error_message(m));
            }
            continue;
        }
        sets++;
        got = memcached_get(m, key, klen, &glen, &flags, &rc);
        if (got == NULL) {
            if (errors++ < 3) {
                fprintf(stderr, "thread %d: get %s: %s\n", tid, key,
                        memcached_strerror(m, rc));
            }
            continue;
        }
        gets++;
        if (glen != vlen || memcmp(got, val, vlen) != 0 ||
            flags != (uint32_t)tid) {
            if (bad++ < 3) {
                fprintf(stderr, "thread %d iteration %d: wrong value\n", tid,
                        i);
                harness_diff("written", val, vlen, "read", got, glen);
            }
        }
        free(got);
    }
    atomic_fetch_add(&total_sets, sets);
    atomic_fetch_add(&total_gets, gets);
    atomic_fetch_add(&total_errors, errors);
    atomic_fetch_add(&total_mismatches, bad);
    memcached_free(m);
    return NULL;
}

static void
test_stress(void **state)
{
    long nofile = harness_nofile_limit();
    int threads = THREADS;
    pthread_t tids[THREADS];
    pthread_attr_t attr;
    int64_t t0, ms;

    (void)state;
    /* this process: one socket per thread; riven: two per client; keep
     * headroom for the rest */
    if (nofile > 0 && nofile < 2L * THREADS + 64) {
        threads = (int)((nofile - 64) / 2);
        if (threads < 1) {
            threads = 1;
        }
        printf("    ulimit -n is %ld: scaling down to %d threads "
               "(need %d for %d)\n",
               nofile, threads, 2 * THREADS + 64, THREADS);
    }
    assert_int_equal(
        pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1), 0);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < threads; i++) {
        assert_int_equal(
            pthread_create(&tids[i], &attr, worker, (void *)(intptr_t)i), 0);
    }
    pthread_barrier_wait(&start_line);
    t0 = harness_now_ms();
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
    }
    ms = harness_now_ms() - t0;
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&start_line);
    printf("    %d threads, %lld ms: %lu sets, %lu gets, %lu errors, "
           "%lu wrong values (%.0f ops/s)\n",
           threads, (long long)ms, atomic_load(&total_sets),
           atomic_load(&total_gets), atomic_load(&total_errors),
           atomic_load(&total_mismatches),
           (double)(atomic_load(&total_sets) + atomic_load(&total_gets)) *
               1000.0 / (double)(ms > 0 ? ms : 1));
    assert_int_equal(atomic_load(&total_mismatches), 0);
    assert_int_equal(atomic_load(&total_errors), 0);
    assert_true(atomic_load(&total_gets) >= (unsigned long)threads);
    assert_int_equal(atomic_load(&total_sets), atomic_load(&total_gets));
    if (!harness_direct()) {
        assert_true(harness_proc_alive(&group_stack.rv));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress),
    };

    return cmocka_run_group_tests(tests, group_stack_setup,
                                  group_stack_teardown);
}
