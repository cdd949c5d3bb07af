/*
 * test_health: ejection, probes and the connect gate.
 *
 * - failure_limit failures eject; the retry time up, exactly one caller
 *   wins HEALTH_PROBE; a success brings the server back, a failure or a
 *   probe that never reached the server (health_probe_failed) ejects it
 *   for another retry_timeout_ms, after which it is probed again: a
 *   server is never left ejected with nobody probing it;
 * - health_probe_failed is a no-op without a probe (no step toward
 *   ejection);
 * - the connect gate: HEALTH_GATE_MAX places, the next enter waits until
 *   its deadline (false) or until a place is given back (true, from
 *   another thread); indexes past METRICS_SERVERS_MAX always pass.
 * Run it under -fsanitize=thread too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "health.h"
#include "metrics.h"
#include "util.h"

#define RETRY 1000 /* ms */

static struct cfg_server servers[2];
static struct cfg_pool pool = {.servers = servers,
                               .nservers = 2,
                               .failure_limit = 2,
                               .retry_timeout_ms = RETRY};

static struct health *
health_new(void)
{
    struct health *h;

    strcpy(servers[0].addr.name, "127.0.0.1:1");
    strcpy(servers[1].addr.name, "127.0.0.1:2");
    h = health_create(&pool, 0, NULL);
    assert_non_null(h);
    return h;
}

static void
test_eject_and_probe(void **state)
{
    struct health *h = health_new();
    uint64_t t = 1000000;

    (void)state;
    assert_int_equal(health_check(h, 0, t), HEALTH_USE);
    health_failure(h, 0, t);
    assert_int_equal(health_check(h, 0, t), HEALTH_USE);
    health_failure(h, 0, t);
    assert_int_equal(health_check(h, 0, t), HEALTH_EJECTED);
    assert_true(health_ejected(h, 0, t + RETRY - 1));
    assert_int_equal(health_check(h, 1, t), HEALTH_USE);

    /* retry time up: one prober, everybody else fails fast */
    assert_int_equal(health_check(h, 0, t + RETRY), HEALTH_PROBE);
    assert_int_equal(health_check(h, 0, t + RETRY), HEALTH_EJECTED);
    assert_int_equal(health_check(h, 0, t + 5 * RETRY), HEALTH_EJECTED);

    /* the probe never reached the server: ejected for another retry */
    health_probe_failed(h, 0, t + RETRY);
    assert_int_equal(health_check(h, 0, t + 2 * RETRY - 1), HEALTH_EJECTED);
    assert_int_equal(health_check(h, 0, t + 2 * RETRY), HEALTH_PROBE);

    /* a failed probe: the same */
    health_failure(h, 0, t + 2 * RETRY);
    assert_int_equal(health_check(h, 0, t + 3 * RETRY - 1), HEALTH_EJECTED);
    assert_int_equal(health_check(h, 0, t + 3 * RETRY), HEALTH_PROBE);

    /* a successful one: back */
    health_success(h, 0);
    assert_int_equal(health_check(h, 0, t + 3 * RETRY), HEALTH_USE);
    assert_false(health_ejected(h, 0, t + 3 * RETRY));
    health_destroy(h);
}

static void
test_probe_failed_without_probe(void **state)
{
    struct health *h = health_new();
    uint64_t t = 1000000;

    (void)state;
    /* not ejected: no step toward ejection */
    for (int i = 0; i < 10; i++) {
        health_probe_failed(h, 1, t);
    }
    assert_int_equal(health_check(h, 1, t), HEALTH_USE);
    /* ejected, not probing: the deadline does not move */
    health_failure(h, 1, t);
    health_failure(h, 1, t);
    health_probe_failed(h, 1, t + RETRY - 1);
    assert_int_equal(health_check(h, 1, t + RETRY), HEALTH_PROBE);
    health_success(h, 1);
    /* a probe ended by another thread's report: no-op */
    health_failure(h, 1, t);
    health_failure(h, 1, t);
    assert_int_equal(health_check(h, 1, t + RETRY), HEALTH_PROBE);
    health_success(h, 1);
    health_probe_failed(h, 1, t + RETRY);
    assert_int_equal(health_check(h, 1, t + RETRY), HEALTH_USE);
    health_destroy(h);
}

static _Atomic int waiter_done;

static void *
gate_waiter(void *arg)
{
    bool ok = health_gate_enter(7, util_now_ms() + 10000);

    (void)arg;
    atomic_store(&waiter_done, ok ? 1 : -1);
    return NULL;
}

static void
test_gate(void **state)
{
    uint64_t start;
    pthread_t tid;

    (void)state;
    for (unsigned i = 0; i < HEALTH_GATE_MAX; i++) {
        assert_true(health_gate_enter(7, util_now_ms()));
    }
    /* full: a wait bounded by the deadline */
    start = util_now_ms();
    assert_false(health_gate_enter(7, start + 50));
    assert_true(util_now_ms() >= start + 50);
    /* another server's gate and the probes' index are not affected */
    assert_true(health_gate_enter(8, util_now_ms()));
    health_gate_leave(8);
    assert_true(health_gate_enter(METRICS_SERVERS_MAX, util_now_ms()));
    health_gate_leave(METRICS_SERVERS_MAX);

    /* a waiter gets the place given back */
    assert_int_equal(pthread_create(&tid, NULL, gate_waiter, NULL), 0);
    health_gate_leave(7);
    assert_int_equal(pthread_join(tid, NULL), 0);
    assert_int_equal(atomic_load(&waiter_done), 1);
    for (unsigned i = 0; i < HEALTH_GATE_MAX; i++) {
        health_gate_leave(7);
    }
    /* empty again */
    assert_true(health_gate_enter(7, util_now_ms()));
    health_gate_leave(7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eject_and_probe),
        cmocka_unit_test(test_probe_failed_without_probe),
        cmocka_unit_test(test_gate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
