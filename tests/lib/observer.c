/*
 * observer: one thread, one connection, round trips until told to stop.
 * The counters are atomics: the test's thread reads them while the
 * observer's thread runs.
 */
#include "observer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <poll.h>
#include <pthread.h>
#include <cmocka.h>

#include "group.h"

#define MORE_TRIPS 20 /* round trips owed after a case */

struct observer {
    pthread_t tid;
    int port;
    observer_trip_fn trip;
    atomic_bool stop;
    atomic_ulong rounds; /* completed exact round trips */
    atomic_int errors;
    _Atomic int64_t worst; /* slowest round trip, ms */
};

static void *
observer_main(void *arg)
{
    struct observer *ob = arg;
    struct harness_conn *c = harness_conn_open(ob->port, HARNESS_TIMEOUT_MS);

    if (c == NULL) {
        atomic_fetch_add(&ob->errors, 1);
        return NULL;
    }
    for (unsigned long i = 0; !atomic_load(&ob->stop); i++) {
        int64_t t0 = harness_now_ms(), dt;

        if (!ob->trip(c, i)) {
            atomic_fetch_add(&ob->errors, 1);
            break;
        }
        dt = harness_now_ms() - t0;
        if (dt > atomic_load(&ob->worst)) {
            atomic_store(&ob->worst, dt);
        }
        atomic_fetch_add(&ob->rounds, 1);
    }
    harness_conn_close(c);
    return NULL;
}

/* Wait until the observer has made `more` more round trips (or failed). */
static void
observer_wait(struct observer *ob, unsigned long more)
{
    unsigned long want = atomic_load(&ob->rounds) + more;
    int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

    while (atomic_load(&ob->rounds) < want && atomic_load(&ob->errors) == 0 &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, 2);
    }
}

struct observer *
observer_start(int port, observer_trip_fn trip, unsigned long warmup)
{
    struct observer *ob = calloc(1, sizeof(*ob));

    assert_non_null(ob);
    ob->port = port;
    ob->trip = trip;
    atomic_init(&ob->stop, false);
    atomic_init(&ob->rounds, 0);
    atomic_init(&ob->errors, 0);
    atomic_init(&ob->worst, 0);
    assert_int_equal(pthread_create(&ob->tid, NULL, observer_main, ob), 0);
    if (warmup > 0) {
        observer_wait(ob, warmup);
        atomic_store(&ob->worst, 0); /* judge what follows the first trips */
    }
    return ob;
}

bool
observer_finish(struct observer *ob, int64_t slow_ms)
{
    unsigned long base;
    bool ok;

    if (ob == NULL) {
        return true;
    }
    base = atomic_load(&ob->rounds);
    observer_wait(ob, MORE_TRIPS);
    atomic_store(&ob->stop, true);
    pthread_join(ob->tid, NULL);
    ok = atomic_load(&ob->errors) == 0 &&
         atomic_load(&ob->rounds) >= base + MORE_TRIPS &&
         (slow_ms <= 0 || atomic_load(&ob->worst) < slow_ms);
    printf("    observer: %lu exact round trips, %d errors, slowest %lld "
           "ms%s\n",
           atomic_load(&ob->rounds), atomic_load(&ob->errors),
           (long long)atomic_load(&ob->worst),
           ok ? "" : ": the other connection was NOT served");
    free(ob);
    return ok;
}

int
observer_setup(void **state)
{
    const struct observer_conf *conf = *state;

    *state = observer_start(group_stack.port, conf->trip, 0);
    return 0;
}

int
observer_teardown(void **state)
{
    return observer_finish(*state, 0) ? 0 : -1;
}
