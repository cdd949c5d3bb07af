/*
 * integ_client: libmemcached (text protocol) through riven.
 *
 * A real memcached on a free loopback port with riven in front (or the
 * memcached alone with RIVEN_DIRECT=1). Every classic command is driven
 * through libmemcached's memcached_st and its return code and values are
 * checked exactly; what libmemcached cannot send (gat, gats, raw error
 * lines) goes through a raw socket with exact expected bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>

#include "group.h"
#include "harness.h"
#include "lmc.h"

/* memcached 1.6.18 -I 1m: the largest value stored under a key of length
 * L with flags 0 (found by bisecting against memcached itself). */
#define MAX_VALUE(keylen) (1048576u - 59u - (keylen))

/* ---- tests ---------------------------------------------------------- */

static void
test_set_get(void **state)
{
    memcached_st *m = *state;

    lmc_put(m, "sg", "hello", 5, 0);
    lmc_want_value(m, "sg", "hello", 5, 0);
    lmc_put(m, "sg", "world!", 6, 4294967295u);
    lmc_want_value(m, "sg", "world!", 6, 4294967295u);
    lmc_put(m, "sg2", "x", 1, 12345);
    lmc_want_value(m, "sg2", "x", 1, 12345);
    lmc_want_miss(m, "sg-missing");
}

static void
test_add_replace(void **state)
{
    lmc_check_add_replace(*state, "ar", MEMCACHED_NOTSTORED,
                          MEMCACHED_NOTSTORED);
}

static void
test_append_prepend(void **state)
{
    lmc_check_append_prepend(*state, "ap");
}

static void
test_cas(void **state)
{
    lmc_check_cas(*state, "cas");
}

static void
test_incr_decr(void **state)
{
    memcached_st *m = *state;
    struct harness_conn *c;
    uint64_t v = 77;

    lmc_put(m, "n", "10", 2, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n", 1, 5, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 15);
    LMC_CHECK_RC(m, memcached_decrement(m, "n", 1, 3, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 12);
    /* decr below zero clamps to 0 */
    LMC_CHECK_RC(m, memcached_decrement(m, "n", 1, 100, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    lmc_want_value(m, "n", "0 ", 2, 0); /* memcached pads shorter results */
    /* 2^64-1 + 1 wraps to 0 */
    lmc_put(m, "n", "18446744073709551615", 20, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    lmc_put(m, "n", "18446744073709551614", 20, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_true(v == UINT64_MAX);
    /* growth past the stored length */
    lmc_put(m, "n", "99", 2, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 100);
    lmc_want_value(m, "n", "100", 3, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n-none", 6, 1, &v),
                 MEMCACHED_NOTFOUND);
    /* non-numeric value */
    lmc_put(m, "n", "abc", 3, 0);
    LMC_CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v),
                 MEMCACHED_CLIENT_ERROR);
    c = harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(
        c, "incr n 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    assert_true(harness_roundtrip(
        c, "decr n 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    assert_true(harness_roundtrip(
        c, "incr n x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"));
    harness_conn_close(c);
}

static void
test_delete(void **state)
{
    lmc_check_delete(*state, "del");
}

static void
test_touch_gat(void **state)
{
    memcached_st *m = *state;
    struct harness_conn *c;
    char want[256];
    uint64_t cas;

    lmc_put(m, "tch", "tv", 2, 5);
    LMC_CHECK_RC(m, memcached_touch(m, "tch", 3, 1000), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_touch(m, "tch-none", 8, 1000),
                 MEMCACHED_NOTFOUND);
    lmc_want_value(m, "tch", "tv", 2, 5);
    cas = lmc_get_cas(m, "tch");

    c = harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "gat 100 tch\r\n",
                                  "VALUE tch 5 2\r\ntv\r\nEND\r\n"));
    snprintf(want, sizeof(want), "VALUE tch 5 2 %llu\r\ntv\r\nEND\r\n",
             (unsigned long long)cas);
    assert_true(harness_roundtrip(c, "gats 100 tch tch-none\r\n", want));
    assert_true(harness_roundtrip(c, "gat 100 tch-none\r\n", "END\r\n"));
    assert_true(harness_roundtrip(c, "gat abc tch\r\n",
                                  "CLIENT_ERROR invalid exptime argument\r\n"));
    assert_true(harness_roundtrip(c, "touch tch 10\r\n", "TOUCHED\r\n"));
    assert_true(harness_roundtrip(c, "touch tch-none 10\r\n", "NOT_FOUND\r\n"));
    harness_conn_close(c);
}

static void
test_flush(void **state)
{
    memcached_st *m = *state;

    lmc_check_flush(m, "fl1", "fl2");
}

static void
test_version_verbosity(void **state)
{
    memcached_st *m = *state;
    struct harness_conn *c;
    size_t len;
    char *line;

    lmc_check_version(m);
    LMC_CHECK_RC(m, memcached_verbosity(m, 1), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_verbosity(m, 0), MEMCACHED_SUCCESS);

    c = harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_sends(c, "version\r\n") == 0);
    line = harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, &len);
    assert_non_null(line);
    printf("    version line: %s", line);
    assert_true(strncmp(line, "VERSION 1.6.18", 14) == 0);
    assert_true(strchr(line, '\r') == line + len - 2);
    free(line);
    assert_true(harness_roundtrip(c, "verbosity 1\r\n", "OK\r\n"));
    assert_true(harness_roundtrip(c, "verbosity 0 noreply\r\nverbosity 0\r\n",
                                  "OK\r\n"));
    assert_true(harness_roundtrip(c, "verbosity\r\n", "ERROR\r\n"));
    harness_conn_close(c);
}

static void
test_stats(void **state)
{
    memcached_st *m = *state;
    memcached_return_t rc;
    memcached_stat_st *st;
    struct harness_conn *c;
    char *v, *all, *p;
    size_t len;
    int lines = 0;

    st = memcached_stat(m, NULL, &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    v = memcached_stat_get_value(m, st, "curr_connections", &rc);
    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(v);
    assert_true(atol(v) >= 1);
    free(v);
    memcached_stat_free(m, st);

    /* raw: every line is "STAT name value", then END */
    c = harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_sends(c, "stats\r\n") == 0);
    all = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &len);
    assert_non_null(all);
    for (p = all; strncmp(p, "END\r\n", 5) != 0; lines++) {
        char *eol = strstr(p, "\r\n");

        assert_non_null(eol);
        assert_true(strncmp(p, "STAT ", 5) == 0);
        assert_non_null(memchr(p + 5, ' ', (size_t)(eol - p - 5)));
        p = eol + 2;
    }
    assert_true(lines > 20);
    printf("    stats: %d STAT lines\n", lines);
    free(all);
    harness_conn_close(c);
}

static void
test_noreply(void **state)
{
    memcached_st *m = lmc_new(group_stack.port, false, true);

    (void)state;
    lmc_noreply_burst(m, "");
    lmc_noreply_check(m, "");
    memcached_free(m);
}

static void
test_mget_many(void **state)
{
    lmc_mget_many(*state, "mget:", false);
}

static void
test_value_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 1000, 100000, 1000000, MAX_VALUE(4)};
    memcached_st *m = *state;
    size_t max = MAX_VALUE(4);
    char *v = malloc(max + 2);

    assert_non_null(v);
    for (size_t i = 0; i < max + 1; i++) {
        v[i] = (char)('A' + (i * 7 + i / 13) % 58);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        lmc_put(m, "size", v, sizes[i], 0);
        lmc_want_value(m, "size", v, sizes[i], 0);
    }
    /* one byte more than memcached stores under this key */
    LMC_CHECK_RC(m, memcached_set(m, "size", 4, v, max + 1, 0, 0),
                 MEMCACHED_E2BIG);
    lmc_want_miss(m, "size"); /* a failed set drops the old value */
    printf("    largest value stored under a 4-byte key: %zu bytes\n", max);
    free(v);
}

static void
test_too_large_raw(void **state)
{
    size_t max = MAX_VALUE(4);
    struct harness_conn *c;
    char hdr[64];
    char *v = malloc(max + 1);

    (void)state;
    assert_non_null(v);
    memset(v, 'z', max + 1);
    c = harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    snprintf(hdr, sizeof(hdr), "set size 0 0 %zu\r\n", max + 1);
    assert_int_equal(harness_sends(c, hdr), 0);
    assert_int_equal(harness_send(c, v, max + 1), 0);
    assert_true(harness_roundtrip(
        c, "\r\nget size\r\n",
        "SERVER_ERROR object too large for cache\r\nEND\r\n"));
    snprintf(hdr, sizeof(hdr), "set size 0 0 %zu\r\n", max);
    assert_int_equal(harness_sends(c, hdr), 0);
    assert_int_equal(harness_send(c, v, max), 0);
    assert_true(harness_roundtrip(c, "\r\n", "STORED\r\n"));
    harness_conn_close(c);
    free(v);
}

static void
test_binary_safe(void **state)
{
    memcached_st *m = *state;
    char all[256];
    static const char tricky[] = "a\r\nEND\r\nVALUE x 0 1\r\n\0\0b\r\n";

    for (int i = 0; i < 256; i++) {
        all[i] = (char)i;
    }
    lmc_put(m, "bin", all, sizeof(all), 0);
    lmc_want_value(m, "bin", all, sizeof(all), 0);
    lmc_put(m, "bin2", tricky, sizeof(tricky), 0);
    lmc_want_value(m, "bin2", tricky, sizeof(tricky), 0);
    lmc_put(m, "bin3", "\r\n", 2, 0);
    lmc_want_value(m, "bin3", "\r\n", 2, 0);
    lmc_put(m, "bin4", "\0", 1, 0);
    lmc_want_value(m, "bin4", "\0", 1, 0);
}

static void
test_expiry(void **state)
{
    memcached_st *m = *state;
    int64_t start, deadline;
    memcached_return_t rc;
    bool hit_first;
    size_t vlen;
    uint32_t flags;
    char *v;

    LMC_CHECK_RC(m, memcached_set(m, "ttl", 3, "t", 1, 1, 0),
                 MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_set(m, "ttl-long", 8, "l", 1, 100, 0),
                 MEMCACHED_SUCCESS);
    start = harness_now_ms();
    deadline = start + 4000;
    v = memcached_get(m, "ttl", 3, &vlen, &flags, &rc);
    hit_first = v != NULL; /* false only if memcached's clock ticked */
    free(v);
    for (;;) {
        v = memcached_get(m, "ttl", 3, &vlen, &flags, &rc);
        if (v == NULL) {
            LMC_CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
            break;
        }
        assert_int_equal(vlen, 1);
        free(v);
        assert_true(harness_now_ms() < deadline);
        poll(NULL, 0, 20);
    }
    printf("    TTL 1 item %s, gone after %lld ms\n",
           hit_first ? "read back" : "expired at once",
           (long long)(harness_now_ms() - start));
    lmc_want_value(m, "ttl-long", "l", 1, 0);
    /* negative TTL: expired immediately */
    LMC_CHECK_RC(m, memcached_set(m, "ttl-neg", 7, "n", 1, (time_t)-1, 0),
                 MEMCACHED_SUCCESS);
    lmc_want_miss(m, "ttl-neg");
}

/* a fresh text-protocol client of group_stack per case */
#define T(f) cmocka_unit_test_setup_teardown(f, lmc_text_setup, lmc_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_set_get),     T(test_add_replace),   T(test_append_prepend),
        T(test_cas),         T(test_incr_decr),     T(test_delete),
        T(test_touch_gat),   T(test_flush),         T(test_version_verbosity),
        T(test_stats),       T(test_noreply),       T(test_mget_many),
        T(test_value_sizes), T(test_too_large_raw), T(test_binary_safe),
        T(test_expiry),
    };

    return cmocka_run_group_tests(tests, group_stack_setup,
                                  group_stack_teardown);
}
