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

#include "harness.h"

/* memcached 1.6.18 -I 1m, binary set, flags 0: the largest value stored
 * under a 4-byte key (as MAX_VALUE in integ_client: the item header and
 * the trailing "\r\n" count against the 1 MiB item). */
#define MAX_VALUE4 (1048576u - 59u - 4u)

static struct harness_stack stack;

static memcached_st *
client_new(bool noreply)
{
    memcached_st *m = memcached_create(NULL);

    assert_non_null(m);
    assert_int_equal(
        memcached_server_add(m, "127.0.0.1", (in_port_t)stack.port),
        MEMCACHED_SUCCESS);
    assert_int_equal(
        memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1),
        MEMCACHED_SUCCESS);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 5000);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 5000);
    if (noreply) {
        memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    }
    return m;
}

static void
check_rc(memcached_st *m, memcached_return_t rc, memcached_return_t want,
         const char *what, int line)
{
    if (rc != want) {
        fprintf(stderr, "line %d: %s: got %s (%s), want %s\n", line, what,
                memcached_strerror(m, rc), memcached_last_error_message(m),
                memcached_strerror(m, want));
        fail();
    }
}
#define CHECK_RC(m, rc, want) check_rc((m), (rc), (want), #rc, __LINE__)

static void
put(memcached_st *m, const char *key, const void *val, size_t len,
    uint32_t flags)
{
    CHECK_RC(m, memcached_set(m, key, strlen(key), val, len, 0, flags),
             MEMCACHED_SUCCESS);
}

static void
want_value(memcached_st *m, const char *key, const void *want, size_t len,
           uint32_t want_flags)
{
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t vlen = 0;
    char *v = memcached_get(m, key, strlen(key), &vlen, &flags, &rc);

    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    if (vlen != len || (len > 0 && memcmp(v, want, len) != 0)) {
        harness_diff("expected", want, len, "got", v, vlen);
        fail_msg("value of %s differs", key);
    }
    assert_int_equal(flags, want_flags);
    free(v);
}

static void
want_miss(memcached_st *m, const char *key)
{
    memcached_return_t rc;
    uint32_t flags;
    size_t vlen;
    char *v = memcached_get(m, key, strlen(key), &vlen, &flags, &rc);

    CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
    assert_null(v);
}

/* End of a fetch: libmemcached 1.1 reports NOTFOUND, older ones END. */
static void
check_fetch_end(memcached_st *m, memcached_return_t rc)
{
    if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND) {
        CHECK_RC(m, rc, MEMCACHED_END);
    }
}

static uint64_t
get_cas(memcached_st *m, const char *key)
{
    const char *keys[1] = {key};
    size_t lens[1] = {strlen(key)};
    memcached_result_st *r;
    memcached_return_t rc;
    uint64_t cas;

    CHECK_RC(m, memcached_mget(m, keys, lens, 1), MEMCACHED_SUCCESS);
    r = memcached_fetch_result(m, NULL, &rc);
    assert_non_null(r);
    cas = memcached_result_cas(r);
    memcached_result_free(r);
    assert_null(memcached_fetch_result(m, NULL, &rc));
    check_fetch_end(m, rc);
    return cas;
}

/* ---- tests ---------------------------------------------------------- */

static void
test_set_get(void **state)
{
    memcached_st *m = *state;

    put(m, "b:sg", "hello", 5, 0);
    want_value(m, "b:sg", "hello", 5, 0);
    put(m, "b:sg", "world!", 6, 4294967295u);
    want_value(m, "b:sg", "world!", 6, 4294967295u);
    want_miss(m, "b:sg-missing");
    put(m, "b:empty", "", 0, 17);
    want_value(m, "b:empty", "", 0, 17);
}

static void
test_add_replace(void **state)
{
    memcached_st *m = *state;

    put(m, "b:ar", "one", 3, 0);
    CHECK_RC(m, memcached_add(m, "b:ar", 4, "two", 3, 0, 0),
             MEMCACHED_DATA_EXISTS);
    want_value(m, "b:ar", "one", 3, 0);
    CHECK_RC(m, memcached_add(m, "b:ar-new", 8, "two", 3, 0, 7),
             MEMCACHED_SUCCESS);
    want_value(m, "b:ar-new", "two", 3, 7);
    CHECK_RC(m, memcached_replace(m, "b:ar", 4, "three", 5, 0, 1),
             MEMCACHED_SUCCESS);
    want_value(m, "b:ar", "three", 5, 1);
    CHECK_RC(m, memcached_replace(m, "b:ar-none", 9, "x", 1, 0, 0),
             MEMCACHED_NOTFOUND);
    want_miss(m, "b:ar-none");
}

static void
test_append_prepend(void **state)
{
    memcached_st *m = *state;

    put(m, "b:ap", "mid", 3, 9);
    CHECK_RC(m, memcached_append(m, "b:ap", 4, "-end", 4, 0, 0),
             MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_prepend(m, "b:ap", 4, "start-", 6, 0, 0),
             MEMCACHED_SUCCESS);
    want_value(m, "b:ap", "start-mid-end", 13, 9); /* flags kept */
    CHECK_RC(m, memcached_append(m, "b:ap-none", 9, "x", 1, 0, 0),
             MEMCACHED_NOTSTORED);
    CHECK_RC(m, memcached_prepend(m, "b:ap-none", 9, "x", 1, 0, 0),
             MEMCACHED_NOTSTORED);
    want_miss(m, "b:ap-none");
}

static void
test_cas(void **state)
{
    memcached_st *m = *state;
    uint64_t cas, cas2;

    put(m, "b:cas", "v1", 2, 0);
    cas = get_cas(m, "b:cas");
    assert_true(cas != 0);
    CHECK_RC(m, memcached_cas(m, "b:cas", 5, "v2", 2, 0, 3, cas),
             MEMCACHED_SUCCESS);
    want_value(m, "b:cas", "v2", 2, 3);
    cas2 = get_cas(m, "b:cas");
    assert_true(cas2 != cas);
    /* stale CAS: EXISTS, value untouched */
    CHECK_RC(m, memcached_cas(m, "b:cas", 5, "v3", 2, 0, 0, cas),
             MEMCACHED_DATA_EXISTS);
    want_value(m, "b:cas", "v2", 2, 3);
    CHECK_RC(m, memcached_cas(m, "b:cas-none", 10, "v", 1, 0, 0, cas2),
             MEMCACHED_NOTFOUND);
    want_miss(m, "b:cas-none");
}

static void
test_incr_decr(void **state)
{
    memcached_st *m = *state;
    uint64_t v = 77;

    put(m, "b:n", "10", 2, 0);
    CHECK_RC(m, memcached_increment(m, "b:n", 3, 5, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 15);
    CHECK_RC(m, memcached_decrement(m, "b:n", 3, 3, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 12);
    CHECK_RC(m, memcached_decrement(m, "b:n", 3, 100, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    want_value(m, "b:n", "0 ", 2, 0); /* memcached pads shorter results */
    put(m, "b:n", "18446744073709551615", 20, 0);
    CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    put(m, "b:n", "99", 2, 0);
    CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 100);
    want_value(m, "b:n", "100", 3, 0);
    /* a miss without an initial value: libmemcached sends expiration
     * 0xffffffff, so the miss fails */
    CHECK_RC(m, memcached_increment(m, "b:n-none", 8, 1, &v),
             MEMCACHED_NOTFOUND);
    CHECK_RC(m, memcached_decrement(m, "b:n-none", 8, 1, &v),
             MEMCACHED_NOTFOUND);
    want_miss(m, "b:n-none");
    /* status 0x0006 (non-numeric value): libmemcached 1.1 has no code
     * for it and reports a read failure; the connection stays usable */
    put(m, "b:n", "abc", 3, 0);
    CHECK_RC(m, memcached_increment(m, "b:n", 3, 1, &v),
             MEMCACHED_UNKNOWN_READ_FAILURE);
    want_value(m, "b:n", "abc", 3, 0);
}

static void
test_incr_initial(void **state)
{
    memcached_st *m = *state;
    uint64_t v = 1;

    /* a miss with an initial value creates the item with it */
    CHECK_RC(m, memcached_increment_with_initial(m, "b:ni", 4, 5, 42, 0, &v),
             MEMCACHED_SUCCESS);
    assert_int_equal(v, 42);
    CHECK_RC(m, memcached_increment_with_initial(m, "b:ni", 4, 5, 42, 0, &v),
             MEMCACHED_SUCCESS);
    assert_int_equal(v, 47);
    want_value(m, "b:ni", "47", 2, 0);
    CHECK_RC(m, memcached_decrement_with_initial(m, "b:nd", 4, 5, 9, 1000, &v),
             MEMCACHED_SUCCESS);
    assert_int_equal(v, 9);
    CHECK_RC(m, memcached_decrement_with_initial(m, "b:nd", 4, 50, 9, 1000, &v),
             MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    /* expiration in the past (an absolute time in 1970): created expired */
    CHECK_RC(m,
             memcached_increment_with_initial(m, "b:np", 4, 1, 3, 2592001, &v),
             MEMCACHED_SUCCESS);
    assert_int_equal(v, 3);
    want_miss(m, "b:np");
    /* MEMCACHED_EXPIRATION_NOT_ADD (0xffffffff): fail on a miss */
    CHECK_RC(m,
             memcached_increment_with_initial(m, "b:nx", 4, 1, 3,
                                              MEMCACHED_EXPIRATION_NOT_ADD, &v),
             MEMCACHED_NOTFOUND);
    want_miss(m, "b:nx");
}

static void
test_delete(void **state)
{
    memcached_st *m = *state;

    put(m, "b:del", "x", 1, 0);
    CHECK_RC(m, memcached_delete(m, "b:del", 5, 0), MEMCACHED_SUCCESS);
    want_miss(m, "b:del");
    CHECK_RC(m, memcached_delete(m, "b:del", 5, 0), MEMCACHED_NOTFOUND);
}

static void
test_touch(void **state)
{
    memcached_st *m = *state;
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t vlen = 0;
    char *v;

    put(m, "b:tch", "tv", 2, 5);
    CHECK_RC(m, memcached_touch(m, "b:tch", 5, 1000), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_touch(m, "b:tch-none", 10, 1000), MEMCACHED_NOTFOUND);
    want_value(m, "b:tch", "tv", 2, 5);
    /* a touch into the past expires the item (libmemcached has no gat
     * call: integ_diff_proto covers gat, gatq, gatk and gatkq) */
    CHECK_RC(m, memcached_touch(m, "b:tch", 5, 2592001), MEMCACHED_SUCCESS);
    v = memcached_get(m, "b:tch", 5, &vlen, &flags, &rc);
    CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
    assert_null(v);
}

static void
test_flush(void **state)
{
    memcached_st *m = *state;

    put(m, "b:fl1", "a", 1, 0);
    put(m, "b:fl2", "b", 1, 0);
    CHECK_RC(m, memcached_flush(m, 0), MEMCACHED_SUCCESS);
    want_miss(m, "b:fl1");
    want_miss(m, "b:fl2");
    put(m, "b:fl1", "c", 1, 0);
    want_value(m, "b:fl1", "c", 1, 0);
    /* a delay far in the future flushes nothing now */
    CHECK_RC(m, memcached_flush(m, 100000), MEMCACHED_SUCCESS);
    want_value(m, "b:fl1", "c", 1, 0);
    CHECK_RC(m, memcached_flush(m, 0), MEMCACHED_SUCCESS);
    want_miss(m, "b:fl1");
}

static void
test_version_verbosity(void **state)
{
    memcached_st *m = *state;
    const memcached_instance_st *inst;

    CHECK_RC(m, memcached_version(m), MEMCACHED_SUCCESS);
    inst = memcached_server_instance_by_position(m, 0);
    assert_non_null(inst);
    assert_int_equal(memcached_server_major_version(inst), 1);
    assert_int_equal(memcached_server_minor_version(inst), 6);
    assert_int_equal(memcached_server_micro_version(inst), 18);
    /* memcached 1.6.18 has no binary verbosity opcode (0x0081), yet this
     * succeeds and does set memcached's verbosity: libmemcached 1.1 sends
     * verbosity as a text line on the binary connection */
    CHECK_RC(m, memcached_verbosity(m, 1), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_verbosity(m, 0), MEMCACHED_SUCCESS);
    put(m, "b:vb", "v", 1, 0);
    want_value(m, "b:vb", "v", 1, 0);
}

static void
test_stats(void **state)
{
    memcached_st *m = *state;
    memcached_return_t rc;
    memcached_stat_st *st;
    char *v;

    st = memcached_stat(m, NULL, &rc);
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    v = memcached_stat_get_value(m, st, "curr_connections", &rc);
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(v);
    assert_true(atol(v) >= 1);
    free(v);
    v = memcached_stat_get_value(m, st, "version", &rc);
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_string_equal(v, "1.6.18");
    free(v);
    memcached_stat_free(m, st);
    st = memcached_stat(m, (char *)"settings", &rc);
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    memcached_stat_free(m, st);
}

static void
test_noreply(void **state)
{
    memcached_st *m = client_new(true);
    uint64_t v;

    (void)state;
    CHECK_RC(m, memcached_set(m, "b:nr", 4, "a", 1, 0, 1), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_add(m, "b:nr", 4, "X", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_append(m, "b:nr", 4, "b", 1, 0, 0),
             MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_prepend(m, "b:nr", 4, "_", 1, 0, 0),
             MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_set(m, "b:nrc", 5, "40", 2, 0, 0), MEMCACHED_SUCCESS);
    memcached_increment(m, "b:nrc", 5, 5, &v);
    memcached_decrement(m, "b:nrc", 5, 3, &v);
    CHECK_RC(m, memcached_set(m, "b:nrd", 5, "d", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_delete(m, "b:nrd", 5, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_replace(m, "b:nrr", 5, "r", 1, 0, 0),
             MEMCACHED_SUCCESS);
    for (int i = 0; i < 200; i++) {
        char key[32], val[32];
        int n = snprintf(val, sizeof(val), "flood-%d", i);

        snprintf(key, sizeof(key), "b:flood%d", i);
        CHECK_RC(
            m,
            memcached_set(m, key, strlen(key), val, (size_t)n, 0, (uint32_t)i),
            MEMCACHED_SUCCESS);
    }
    /* back to replies on the same connection: the get is answered only
     * after every quiet command before it was processed */
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 0);
    want_value(m, "b:nr", "_ab", 3, 1);
    want_value(m, "b:nrc", "42", 2, 0);
    want_miss(m, "b:nrd");
    want_miss(m, "b:nrr");
    for (int i = 0; i < 200; i += 37) {
        char key[32], val[32];
        int n = snprintf(val, sizeof(val), "flood-%d", i);

        snprintf(key, sizeof(key), "b:flood%d", i);
        want_value(m, key, val, (size_t)n, (uint32_t)i);
    }
    memcached_free(m);
}

#define MGET_KEYS 500

static void
test_mget_many(void **state)
{
    memcached_st *m = *state;
    const char *keys[MGET_KEYS + 100];
    size_t lens[MGET_KEYS + 100];
    char names[MGET_KEYS + 100][32];
    bool seen[MGET_KEYS] = {false};
    memcached_result_st *r;
    memcached_return_t rc;
    int hits = 0;

    for (int i = 0; i < MGET_KEYS + 100; i++) {
        snprintf(names[i], sizeof(names[i]), "b:mget:%d", i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
        if (i < MGET_KEYS) {
            char val[64];
            int n = snprintf(val, sizeof(val), "value-%d-%0*d", i, i % 40, i);

            put(m, names[i], val, (size_t)n, (uint32_t)i);
        } else {
            memcached_delete(m, names[i], lens[i], 0);
        }
    }
    CHECK_RC(m, memcached_mget(m, keys, lens, MGET_KEYS + 100),
             MEMCACHED_SUCCESS);
    while ((r = memcached_fetch_result(m, NULL, &rc)) != NULL) {
        char want[64];
        int i, n;

        assert_int_equal(sscanf(memcached_result_key_value(r), "b:mget:%d", &i),
                         1);
        assert_true(i >= 0 && i < MGET_KEYS);
        assert_false(seen[i]);
        seen[i] = true;
        n = snprintf(want, sizeof(want), "value-%d-%0*d", i, i % 40, i);
        assert_int_equal(memcached_result_length(r), (size_t)n);
        assert_memory_equal(memcached_result_value(r), want, (size_t)n);
        assert_int_equal(memcached_result_flags(r), (uint32_t)i);
        assert_true(memcached_result_cas(r) != 0);
        hits++;
        memcached_result_free(r);
    }
    check_fetch_end(m, rc);
    assert_int_equal(hits, MGET_KEYS);
    printf("    mget: %d keys asked, %d hits, all values exact\n",
           MGET_KEYS + 100, hits);
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
        put(m, "size", v, sizes[i], 0);
        want_value(m, "size", v, sizes[i], 0);
    }
    /* one byte more than memcached stores under this key */
    CHECK_RC(m, memcached_set(m, "size", 4, v, MAX_VALUE4 + 1, 0, 0),
             MEMCACHED_E2BIG);
    want_miss(m, "size"); /* a failed set drops the old value */
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
    put(m, "b:bin", all, sizeof(all), 0);
    want_value(m, "b:bin", all, sizeof(all), 0);
    put(m, "b:bin2", tricky, sizeof(tricky), 0);
    want_value(m, "b:bin2", tricky, sizeof(tricky), 0);
    put(m, "b:bin3", "\0", 1, 0);
    want_value(m, "b:bin3", "\0", 1, 0);
}

/* ---- setup ---------------------------------------------------------- */

static int
setup(void **state)
{
    *state = client_new(false);
    return 0;
}

static int
teardown(void **state)
{
    memcached_free(*state);
    return harness_stack_alive(&stack) ? 0 : -1;
}

static int
group_setup(void **state)
{
    (void)state;
    if (harness_stack_start(&stack, NULL) != 0) {
        return -1;
    }
    printf("integ_binary: %s on port %d, memcached on %d\n",
           harness_direct() ? "memcached (direct)" : "riven", stack.port,
           stack.mc.port);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    harness_stack_stop(&stack);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

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

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
