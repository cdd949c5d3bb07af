/*
 * integ_binary: libmemcached in binary-protocol mode through riven.
 *
 * A real memcached on a free loopback port with riven in front (or the
 * memcached alone with RIVEN_DIRECT=1, to check the expectations, which
 * are memcached 1.6.18's). Every operation libmemcached can send with
 * MEMCACHED_BEHAVIOR_BINARY_PROTOCOL is driven through a memcached_st and
 * its return code and values are checked exactly: storage commands, CAS,
 * incr/decr with initial values, touch, flush, version, verbosity, stats,
 * multi-get with many keys and misses, and the quiet opcodes libmemcached
 * uses for NOREPLY (read back afterwards on the same connection).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>

#include "group.h"
#include "harness.h"
#include "lmc.h"

/* memcached 1.6.18 -I 1m, binary set, flags 0: the largest value stored
 * under a 4-byte key (as MAX_VALUE in integ_client: the item header and
 * the trailing "\r\n" count against the 1 MiB item). */
#define MAX_VALUE4 (1048576u - 59u - 4u)

/* ---- tests ---------------------------------------------------------- */

static void
test_set_get(void **state)
{
    memcached_st *m = *state;

    lmc_put(m, "b:sg", "hello", 5, 0);
    lmc_want_value(m, "b:sg", "hello", 5, 0);
    lmc_put(m, "b:sg", "world!", 6, 4294967295u);
    lmc_want_value(m, "b:sg", "world!", 6, 4294967295u);
    lmc_want_miss(m, "b:sg-missing");
    lmc_put(m, "b:empty", "", 0, 17);
    lmc_want_value(m, "b:empty", "", 0, 17);
}

static void
test_add_replace(void **state)
{
    lmc_check_add_replace(*state, "b:ar", MEMCACHED_DATA_EXISTS,
                          MEMCACHED_NOTFOUND);
}

static void
test_append_prepend(void **state)
{
    lmc_check_append_prepend(*state, "b:ap");
}

static void
test_cas(void **state)
{
    lmc_check_cas(*state, "b:cas");
}

static void
test_incr_decr(void **state)
{
    memcached_st *m = *state;
    uint64_t v = 77;

    lmc_put(m, "b:n", "10", 2, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "b:n", 3, 5, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 15);
    LMC_CHECK_RC(m, memcached_decrement(m, "b:n", 3, 3, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 12);
    LMC_CHECK_RC(m, memcached_decrement(m, "b:n", 3, 100, &v),
                 MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    lmc_want_value(m, "b:n", "0 ", 2, 0); /* memcached pads shorter results */
    lmc_put(m, "b:n", "18446744073709551615", 20, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    lmc_put(m, "b:n", "99", 2, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 100);
    lmc_want_value(m, "b:n", "100", 3, 0);
    /* a miss without an initial value: libmemcached sends expiration
     * 0xffffffff, so the miss fails */
    LMC_CHECK_RC(m, memcached_increment(m, "b:n-none", 8, 1, &v),
                 MEMCACHED_NOTFOUND);
    LMC_CHECK_RC(m, memcached_decrement(m, "b:n-none", 8, 1, &v),
                 MEMCACHED_NOTFOUND);
    lmc_want_miss(m, "b:n-none");
    /* status 0x0006 (non-numeric value): libmemcached 1.1 has no code
     * for it and reports a read failure; the connection stays usable */
    lmc_put(m, "b:n", "abc", 3, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v),
                 MEMCACHED_UNKNOWN_READ_FAILURE);
    lmc_want_value(m, "b:n", "abc", 3, 0);
}

static void
test_incr_initial(void **state)
{
    memcached_st *m = *state;
    uint64_t v = 1;

    /* a miss with an initial value creates the item with it */
    LMC_CHECK_RC(m,
                 memcached_increment_with_initial(m, "b:ni", 4, 5, 42, 0, &v),
                 MEMCACHED_SUCCESS);
    assert_int_equal(v, 42);
    LMC_CHECK_RC(m,
                 memcached_increment_with_initial(m, "b:ni", 4, 5, 42, 0, &v),
                 MEMCACHED_SUCCESS);
    assert_int_equal(v, 47);
    lmc_want_value(m, "b:ni", "47", 2, 0);
    LMC_CHECK_RC(m,
                 memcached_decrement_with_initial(m, "b:nd", 4, 5, 9, 1000, &v),
                 MEMCACHED_SUCCESS);
    assert_int_equal(v, 9);
    LMC_CHECK_RC(
        m, memcached_decrement_with_initial(m, "b:nd", 4, 50, 9, 1000, &v),
        MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    /* expiration in the past (an absolute time in 1970): created expired */
    LMC_CHECK_RC(
        m, memcached_increment_with_initial(m, "b:np", 4, 1, 3, 2592001, &v),
        MEMCACHED_SUCCESS);
    assert_int_equal(v, 3);
    lmc_want_miss(m, "b:np");
    /* MEMCACHED_EXPIRATION_NOT_ADD (0xffffffff): fail on a miss */
    LMC_CHECK_RC(m,
                 memcached_increment_with_initial(
                     m, "b:nx", 4, 1, 3, MEMCACHED_EXPIRATION_NOT_ADD, &v),
                 MEMCACHED_NOTFOUND);
    lmc_want_miss(m, "b:nx");
}

static void
test_delete(void **state)
{
    lmc_check_delete(*state, "b:del");
}

static void
test_touch(void **state)
{
    memcached_st *m = *state;
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t vlen = 0;
    char *v;

    lmc_put(m, "b:tch", "tv", 2, 5);
    LMC_CHECK_RC(m, memcached_touch(m, "b:tch", 5, 1000), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_touch(m, "b:tch-none", 10, 1000),
                 MEMCACHED_NOTFOUND);
    lmc_want_value(m, "b:tch", "tv", 2, 5);
    /* a touch into the past expires the item (libmemcached has no gat
     * call: integ_diff_proto covers gat, gatq, gatk and gatkq) */
    LMC_CHECK_RC(m, memcached_touch(m, "b:tch", 5, 2592001), MEMCACHED_SUCCESS);
    v = memcached_get(m, "b:tch", 5, &vlen, &flags, &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
    assert_null(v);
}

static void
test_flush(void **state)
{
    memcached_st *m = *state;

    lmc_check_flush(m, "b:fl1", "b:fl2");
    /* a delay far in the future flushes nothing now */
    LMC_CHECK_RC(m, memcached_flush(m, 100000), MEMCACHED_SUCCESS);
    lmc_want_value(m, "b:fl1", "c", 1, 0);
    LMC_CHECK_RC(m, memcached_flush(m, 0), MEMCACHED_SUCCESS);
    lmc_want_miss(m, "b:fl1");
}

static void
test_version_verbosity(void **state)
{
    memcached_st *m = *state;

    lmc_check_version(m);
    /* memcached 1.6.18 has no binary verbosity opcode (0x0081), yet this
     * succeeds and does set memcached's verbosity: libmemcached 1.1 sends
     * verbosity as a text line on the binary connection */
    LMC_CHECK_RC(m, memcached_verbosity(m, 1), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_verbosity(m, 0), MEMCACHED_SUCCESS);
    lmc_put(m, "b:vb", "v", 1, 0);
    lmc_want_value(m, "b:vb", "v", 1, 0);
}

static void
test_stats(void **state)
{
    memcached_st *m = *state;
    memcached_return_t rc;
    memcached_stat_st *st;
    char *v;

    st = memcached_stat(m, NULL, &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    v = memcached_stat_get_value(m, st, "curr_connections", &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(v);
    assert_true(atol(v) >= 1);
    free(v);
    v = memcached_stat_get_value(m, st, "version", &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_string_equal(v, "1.6.18");
    free(v);
    memcached_stat_free(m, st);
    st = memcached_stat(m, (char *)"settings", &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    memcached_stat_free(m, st);
}

static void
test_noreply(void **state)
{
    memcached_st *m = lmc_new(group_stack.port, true, true);

    (void)state;
    lmc_noreply_burst(m, "b:");
    for (int i = 0; i < 200; i++) {
        char key[32], val[32];
        int n = snprintf(val, sizeof(val), "flood-%d", i);

        snprintf(key, sizeof(key), "b:flood%d", i);
        LMC_CHECK_RC(
            m,
            memcached_set(m, key, strlen(key), val, (size_t)n, 0, (uint32_t)i),
            MEMCACHED_SUCCESS);
    }
    lmc_noreply_check(m, "b:");
    for (int i = 0; i < 200; i += 37) {
        char key[32], val[32];
        int n = snprintf(val, sizeof(val), "flood-%d", i);

        snprintf(key, sizeof(key), "b:flood%d", i);
        lmc_want_value(m, key, val, (size_t)n, (uint32_t)i);
    }
    memcached_free(m);
}

static void
test_mget_many(void **state)
{
    lmc_mget_many(*state, "b:mget:", true);
}

static void
test_value_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 1000, 100000, 1000000, MAX_VALUE4};
    memcached_st *m = *state;
    char *v = malloc(MAX_VALUE4 + 2);

    assert_non_null(v);
    for (size_t i = 0; i < MAX_VALUE4 + 1; i++) {
        v[i] = (char)(i * 7 + i / 13); /* every byte value */
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        lmc_put(m, "size", v, sizes[i], 0);
        lmc_want_value(m, "size", v, sizes[i], 0);
    }
    /* one byte more than memcached stores under this key */
    LMC_CHECK_RC(m, memcached_set(m, "size", 4, v, MAX_VALUE4 + 1, 0, 0),
                 MEMCACHED_E2BIG);
    lmc_want_miss(m, "size"); /* a failed set drops the old value */
    free(v);
}

static void
test_binary_safe(void **state)
{
    memcached_st *m = *state;
    static const char tricky[] = "a\r\nEND\r\nVALUE x 0 1\r\n\0\0b\r\n\x80\x81";
    char all[256];

    for (int i = 0; i < 256; i++) {
        all[i] = (char)i;
    }
    lmc_put(m, "b:bin", all, sizeof(all), 0);
    lmc_want_value(m, "b:bin", all, sizeof(all), 0);
    lmc_put(m, "b:bin2", tricky, sizeof(tricky), 0);
    lmc_want_value(m, "b:bin2", tricky, sizeof(tricky), 0);
    lmc_put(m, "b:bin3", "\0", 1, 0);
    lmc_want_value(m, "b:bin3", "\0", 1, 0);
}

/* a fresh binary-protocol client of group_stack per case */
#define T(f) cmocka_unit_test_setup_teardown(f, lmc_binary_setup, lmc_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_set_get),        T(test_add_replace),
        T(test_append_prepend), T(test_cas),
        T(test_incr_decr),      T(test_incr_initial),
        T(test_delete),         T(test_touch),
        T(test_flush),          T(test_version_verbosity),
        T(test_stats),          T(test_noreply),
        T(test_mget_many),      T(test_value_sizes),
        T(test_binary_safe),
    };

    return cmocka_run_group_tests(tests, group_stack_setup,
                                  group_stack_teardown);
}
