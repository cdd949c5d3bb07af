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

#include "harness.h"

/* memcached 1.6.18 -I 1m: the largest value stored under a key of length
 * L with flags 0 (found by bisecting against memcached itself). */
#define MAX_VALUE(keylen) (1048576u - 59u - (keylen))

static struct harness_stack stack;

static memcached_st *
client_new(bool noreply)
{
    memcached_st *m = memcached_create(NULL);

    assert_non_null(m);
    assert_int_equal(
        memcached_server_add(m, "127.0.0.1", (in_port_t)stack.port),
        MEMCACHED_SUCCESS);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
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

/* get key and compare value and flags exactly. */
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

    put(m, "sg", "hello", 5, 0);
    want_value(m, "sg", "hello", 5, 0);
    put(m, "sg", "world!", 6, 4294967295u);
    want_value(m, "sg", "world!", 6, 4294967295u);
    put(m, "sg2", "x", 1, 12345);
    want_value(m, "sg2", "x", 1, 12345);
    want_miss(m, "sg-missing");
}

static void
test_add_replace(void **state)
{
    memcached_st *m = *state;

    put(m, "ar", "one", 3, 0);
    CHECK_RC(m, memcached_add(m, "ar", 2, "two", 3, 0, 0), MEMCACHED_NOTSTORED);
    want_value(m, "ar", "one", 3, 0);
    CHECK_RC(m, memcached_add(m, "ar-new", 6, "two", 3, 0, 7),
             MEMCACHED_SUCCESS);
    want_value(m, "ar-new", "two", 3, 7);
    CHECK_RC(m, memcached_replace(m, "ar", 2, "three", 5, 0, 1),
             MEMCACHED_SUCCESS);
    want_value(m, "ar", "three", 5, 1);
    CHECK_RC(m, memcached_replace(m, "ar-none", 7, "x", 1, 0, 0),
             MEMCACHED_NOTSTORED);
    want_miss(m, "ar-none");
}

static void
test_append_prepend(void **state)
{
    memcached_st *m = *state;

    put(m, "ap", "mid", 3, 9);
    CHECK_RC(m, memcached_append(m, "ap", 2, "-end", 4, 0, 0),
             MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_prepend(m, "ap", 2, "start-", 6, 0, 0),
             MEMCACHED_SUCCESS);
    want_value(m, "ap", "start-mid-end", 13, 9); /* flags kept */
    CHECK_RC(m, memcached_append(m, "ap-none", 7, "x", 1, 0, 0),
             MEMCACHED_NOTSTORED);
    CHECK_RC(m, memcached_prepend(m, "ap-none", 7, "x", 1, 0, 0),
             MEMCACHED_NOTSTORED);
    want_miss(m, "ap-none");
}

static void
test_cas(void **state)
{
    memcached_st *m = *state;
    uint64_t cas, cas2;

    put(m, "cas", "v1", 2, 0);
    cas = get_cas(m, "cas");
    assert_true(cas != 0);
    CHECK_RC(m, memcached_cas(m, "cas", 3, "v2", 2, 0, 3, cas),
             MEMCACHED_SUCCESS);
    want_value(m, "cas", "v2", 2, 3);
    cas2 = get_cas(m, "cas");
    assert_true(cas2 != cas);
    /* stale cas: EXISTS, value untouched */
    CHECK_RC(m, memcached_cas(m, "cas", 3, "v3", 2, 0, 0, cas),
             MEMCACHED_DATA_EXISTS);
    want_value(m, "cas", "v2", 2, 3);
    CHECK_RC(m, memcached_cas(m, "cas-none", 8, "v", 1, 0, 0, cas2),
             MEMCACHED_NOTFOUND);
    want_miss(m, "cas-none");
}

static void
test_incr_decr(void **state)
{
    memcached_st *m = *state;
    struct harness_conn *c;
    uint64_t v = 77;

    put(m, "n", "10", 2, 0);
    CHECK_RC(m, memcached_increment(m, "n", 1, 5, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 15);
    CHECK_RC(m, memcached_decrement(m, "n", 1, 3, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 12);
    /* decr below zero clamps to 0 */
    CHECK_RC(m, memcached_decrement(m, "n", 1, 100, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    want_value(m, "n", "0 ", 2, 0); /* memcached pads shorter results */
    /* 2^64-1 + 1 wraps to 0 */
    put(m, "n", "18446744073709551615", 20, 0);
    CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 0);
    put(m, "n", "18446744073709551614", 20, 0);
    CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_true(v == UINT64_MAX);
    /* growth past the stored length */
    put(m, "n", "99", 2, 0);
    CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_SUCCESS);
    assert_int_equal(v, 100);
    want_value(m, "n", "100", 3, 0);
    CHECK_RC(m, memcached_increment(m, "n-none", 6, 1, &v), MEMCACHED_NOTFOUND);
    /* non-numeric value */
    put(m, "n", "abc", 3, 0);
    CHECK_RC(m, memcached_increment(m, "n", 1, 1, &v), MEMCACHED_CLIENT_ERROR);
    c = harness_conn_open(stack.port, HARNESS_TIMEOUT_MS);
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
    memcached_st *m = *state;

    put(m, "del", "x", 1, 0);
    CHECK_RC(m, memcached_delete(m, "del", 3, 0), MEMCACHED_SUCCESS);
    want_miss(m, "del");
    CHECK_RC(m, memcached_delete(m, "del", 3, 0), MEMCACHED_NOTFOUND);
}

static void
test_touch_gat(void **state)
{
    memcached_st *m = *state;
    struct harness_conn *c;
    char want[256];
    uint64_t cas;

    put(m, "tch", "tv", 2, 5);
    CHECK_RC(m, memcached_touch(m, "tch", 3, 1000), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_touch(m, "tch-none", 8, 1000), MEMCACHED_NOTFOUND);
    want_value(m, "tch", "tv", 2, 5);
    cas = get_cas(m, "tch");

    c = harness_conn_open(stack.port, HARNESS_TIMEOUT_MS);
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

    put(m, "fl1", "a", 1, 0);
    put(m, "fl2", "b", 1, 0);
    CHECK_RC(m, memcached_flush(m, 0), MEMCACHED_SUCCESS);
    want_miss(m, "fl1");
    want_miss(m, "fl2");
    put(m, "fl1", "c", 1, 0);
    want_value(m, "fl1", "c", 1, 0);
}

static void
test_version_verbosity(void **state)
{
    memcached_st *m = *state;
    const memcached_instance_st *inst;
    struct harness_conn *c;
    size_t len;
    char *line;

    CHECK_RC(m, memcached_version(m), MEMCACHED_SUCCESS);
    inst = memcached_server_instance_by_position(m, 0);
    assert_non_null(inst);
    assert_int_equal(memcached_server_major_version(inst), 1);
    assert_int_equal(memcached_server_minor_version(inst), 6);
    assert_int_equal(memcached_server_micro_version(inst), 18);
    CHECK_RC(m, memcached_verbosity(m, 1), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_verbosity(m, 0), MEMCACHED_SUCCESS);

    c = harness_conn_open(stack.port, HARNESS_TIMEOUT_MS);
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
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(st);
    v = memcached_stat_get_value(m, st, "curr_connections", &rc);
    CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    assert_non_null(v);
    assert_true(atol(v) >= 1);
    free(v);
    memcached_stat_free(m, st);

    /* raw: every line is "STAT name value", then END */
    c = harness_conn_open(stack.port, HARNESS_TIMEOUT_MS);
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
    memcached_st *m = client_new(true);
    uint64_t v;

    (void)state;
    CHECK_RC(m, memcached_set(m, "nr", 2, "a", 1, 0, 1), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_add(m, "nr", 2, "X", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_append(m, "nr", 2, "b", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_prepend(m, "nr", 2, "_", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_set(m, "nrc", 3, "40", 2, 0, 0), MEMCACHED_SUCCESS);
    memcached_increment(m, "nrc", 3, 5, &v);
    memcached_decrement(m, "nrc", 3, 3, &v);
    CHECK_RC(m, memcached_set(m, "nrd", 3, "d", 1, 0, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_delete(m, "nrd", 3, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_replace(m, "nrr", 3, "r", 1, 0, 0),
             MEMCACHED_SUCCESS);
    /* back to replies on the same connection: a get is answered only
     * after every earlier noreply command was processed */
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 0);
    want_value(m, "nr", "_ab", 3, 1);
    want_value(m, "nrc", "42", 2, 0);
    want_miss(m, "nrd");
    want_miss(m, "nrr");
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
        snprintf(names[i], sizeof(names[i]), "mget:%d", i);
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

        assert_int_equal(sscanf(memcached_result_key_value(r), "mget:%d", &i),
                         1);
        assert_true(i >= 0 && i < MGET_KEYS);
        assert_false(seen[i]);
        seen[i] = true;
        n = snprintf(want, sizeof(want), "value-%d-%0*d", i, i % 40, i);
        assert_int_equal(memcached_result_length(r), (size_t)n);
        assert_memory_equal(memcached_result_value(r), want, (size_t)n);
        assert_int_equal(memcached_result_flags(r), (uint32_t)i);
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
    static const size_t sizes[] = {0, 1, 1000, 100000, 1000000, MAX_VALUE(4)};
    memcached_st *m = *state;
    size_t max = MAX_VALUE(4);
    char *v = malloc(max + 2);

    assert_non_null(v);
    for (size_t i = 0; i < max + 1; i++) {
        v[i] = (char)('A' + (i * 7 + i / 13) % 58);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        put(m, "size", v, sizes[i], 0);
        want_value(m, "size", v, sizes[i], 0);
    }
    /* one byte more than memcached stores under this key */
    CHECK_RC(m, memcached_set(m, "size", 4, v, max + 1, 0, 0), MEMCACHED_E2BIG);
    want_miss(m, "size"); /* a failed set drops the old value */
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
    c = harness_conn_open(stack.port, HARNESS_TIMEOUT_MS);
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
    put(m, "bin", all, sizeof(all), 0);
    want_value(m, "bin", all, sizeof(all), 0);
    put(m, "bin2", tricky, sizeof(tricky), 0);
    want_value(m, "bin2", tricky, sizeof(tricky), 0);
    put(m, "bin3", "\r\n", 2, 0);
    want_value(m, "bin3", "\r\n", 2, 0);
    put(m, "bin4", "\0", 1, 0);
    want_value(m, "bin4", "\0", 1, 0);
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

    CHECK_RC(m, memcached_set(m, "ttl", 3, "t", 1, 1, 0), MEMCACHED_SUCCESS);
    CHECK_RC(m, memcached_set(m, "ttl-long", 8, "l", 1, 100, 0),
             MEMCACHED_SUCCESS);
    start = harness_now_ms();
    deadline = start + 4000;
    v = memcached_get(m, "ttl", 3, &vlen, &flags, &rc);
    hit_first = v != NULL; /* false only if memcached's clock ticked */
    free(v);
    for (;;) {
        v = memcached_get(m, "ttl", 3, &vlen, &flags, &rc);
        if (v == NULL) {
            CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
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
    want_value(m, "ttl-long", "l", 1, 0);
    /* negative TTL: expired immediately */
    CHECK_RC(m, memcached_set(m, "ttl-neg", 7, "n", 1, (time_t)-1, 0),
             MEMCACHED_SUCCESS);
    want_miss(m, "ttl-neg");
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
    printf("integ_client: %s on port %d, memcached on %d\n",
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
        T(test_set_get),     T(test_add_replace),   T(test_append_prepend),
        T(test_cas),         T(test_incr_decr),     T(test_delete),
        T(test_touch_gat),   T(test_flush),         T(test_version_verbosity),
        T(test_stats),       T(test_noreply),       T(test_mget_many),
        T(test_value_sizes), T(test_too_large_raw), T(test_binary_safe),
        T(test_expiry),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
