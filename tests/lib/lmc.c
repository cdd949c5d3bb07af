/*
 * lmc: libmemcached helpers shared by integ_client (text protocol) and
 * integ_binary (binary protocol).
 */
#include "lmc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "group.h"
#include "harness.h"

#define MGET_KEYS 500

memcached_st *
lmc_new(int port, bool binary, bool noreply)
{
    memcached_st *m = memcached_create(NULL);

    assert_non_null(m);
    assert_int_equal(memcached_server_add(m, "127.0.0.1", (in_port_t)port),
                     MEMCACHED_SUCCESS);
    if (binary) {
        assert_int_equal(
            memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1),
            MEMCACHED_SUCCESS);
    } else {
        memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0);
    }
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 5000);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 5000);
    if (noreply) {
        memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    }
    return m;
}

int
lmc_text_setup(void **state)
{
    *state = lmc_new(group_stack.port, false, false);
    return 0;
}

int
lmc_binary_setup(void **state)
{
    *state = lmc_new(group_stack.port, true, false);
    return 0;
}

int
lmc_teardown(void **state)
{
    memcached_free(*state);
    return harness_stack_alive(&group_stack) ? 0 : -1;
}

void
lmc_check_rc(memcached_st *m, memcached_return_t rc, memcached_return_t want,
             const char *what, int line)
{
    if (rc != want) {
        fprintf(stderr, "line %d: %s: got %s (%s), want %s\n", line, what,
                memcached_strerror(m, rc), memcached_last_error_message(m),
                memcached_strerror(m, want));
        fail();
    }
}

void
lmc_put(memcached_st *m, const char *key, const void *val, size_t len,
        uint32_t flags)
{
    LMC_CHECK_RC(m, memcached_set(m, key, strlen(key), val, len, 0, flags),
                 MEMCACHED_SUCCESS);
}

void
lmc_want_value(memcached_st *m, const char *key, const void *want, size_t len,
               uint32_t want_flags)
{
    memcached_return_t rc;
    uint32_t flags = 0;
    size_t vlen = 0;
    char *v = memcached_get(m, key, strlen(key), &vlen, &flags, &rc);

    LMC_CHECK_RC(m, rc, MEMCACHED_SUCCESS);
    if (vlen != len || (len > 0 && memcmp(v, want, len) != 0)) {
        harness_diff("expected", want, len, "got", v, vlen);
        fail_msg("value of %s differs", key);
    }
    assert_int_equal(flags, want_flags);
    free(v);
}

void
lmc_want_miss(memcached_st *m, const char *key)
{
    memcached_return_t rc;
    uint32_t flags;
    size_t vlen;
    char *v = memcached_get(m, key, strlen(key), &vlen, &flags, &rc);

    LMC_CHECK_RC(m, rc, MEMCACHED_NOTFOUND);
    assert_null(v);
}

void
lmc_fetch_end(memcached_st *m, memcached_return_t rc)
{
    if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND) {
        LMC_CHECK_RC(m, rc, MEMCACHED_END);
    }
}

uint64_t
lmc_get_cas(memcached_st *m, const char *key)
{
    const char *keys[1] = {key};
    size_t lens[1] = {strlen(key)};
    memcached_result_st *r;
    memcached_return_t rc;
    uint64_t cas;

    LMC_CHECK_RC(m, memcached_mget(m, keys, lens, 1), MEMCACHED_SUCCESS);
    r = memcached_fetch_result(m, NULL, &rc);
    assert_non_null(r);
    cas = memcached_result_cas(r);
    memcached_result_free(r);
    assert_null(memcached_fetch_result(m, NULL, &rc));
    lmc_fetch_end(m, rc);
    return cas;
}

/* "<key><suffix>" into buf. */
static const char *
key_with(char *buf, size_t cap, const char *key, const char *suffix)
{
    int n = snprintf(buf, cap, "%s%s", key, suffix);

    assert_true(n > 0 && (size_t)n < cap);
    return buf;
}

void
lmc_check_add_replace(memcached_st *m, const char *key,
                      memcached_return_t add_exists,
                      memcached_return_t replace_miss)
{
    char fresh[64], none[64];
    size_t klen = strlen(key);

    key_with(fresh, sizeof(fresh), key, "-new");
    key_with(none, sizeof(none), key, "-none");
    lmc_put(m, key, "one", 3, 0);
    LMC_CHECK_RC(m, memcached_add(m, key, klen, "two", 3, 0, 0), add_exists);
    lmc_want_value(m, key, "one", 3, 0);
    LMC_CHECK_RC(m, memcached_add(m, fresh, strlen(fresh), "two", 3, 0, 7),
                 MEMCACHED_SUCCESS);
    lmc_want_value(m, fresh, "two", 3, 7);
    LMC_CHECK_RC(m, memcached_replace(m, key, klen, "three", 5, 0, 1),
                 MEMCACHED_SUCCESS);
    lmc_want_value(m, key, "three", 5, 1);
    LMC_CHECK_RC(m, memcached_replace(m, none, strlen(none), "x", 1, 0, 0),
                 replace_miss);
    lmc_want_miss(m, none);
}

void
lmc_check_append_prepend(memcached_st *m, const char *key)
{
    char none[64];
    size_t klen = strlen(key), nlen;

    key_with(none, sizeof(none), key, "-none");
    nlen = strlen(none);
    lmc_put(m, key, "mid", 3, 9);
    LMC_CHECK_RC(m, memcached_append(m, key, klen, "-end", 4, 0, 0),
                 MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_prepend(m, key, klen, "start-", 6, 0, 0),
                 MEMCACHED_SUCCESS);
    lmc_want_value(m, key, "start-mid-end", 13, 9); /* flags kept */
    LMC_CHECK_RC(m, memcached_append(m, none, nlen, "x", 1, 0, 0),
                 MEMCACHED_NOTSTORED);
    LMC_CHECK_RC(m, memcached_prepend(m, none, nlen, "x", 1, 0, 0),
                 MEMCACHED_NOTSTORED);
    lmc_want_miss(m, none);
}

void
lmc_check_cas(memcached_st *m, const char *key)
{
    char none[64];
    size_t klen = strlen(key);
    uint64_t cas, cas2;

    key_with(none, sizeof(none), key, "-none");
    lmc_put(m, key, "v1", 2, 0);
    cas = lmc_get_cas(m, key);
    assert_true(cas != 0);
    LMC_CHECK_RC(m, memcached_cas(m, key, klen, "v2", 2, 0, 3, cas),
                 MEMCACHED_SUCCESS);
    lmc_want_value(m, key, "v2", 2, 3);
    cas2 = lmc_get_cas(m, key);
    assert_true(cas2 != cas);
    /* stale CAS: EXISTS, value untouched */
    LMC_CHECK_RC(m, memcached_cas(m, key, klen, "v3", 2, 0, 0, cas),
                 MEMCACHED_DATA_EXISTS);
    lmc_want_value(m, key, "v2", 2, 3);
    LMC_CHECK_RC(m, memcached_cas(m, none, strlen(none), "v", 1, 0, 0, cas2),
                 MEMCACHED_NOTFOUND);
    lmc_want_miss(m, none);
}

void
lmc_check_delete(memcached_st *m, const char *key)
{
    lmc_put(m, key, "x", 1, 0);
    LMC_CHECK_RC(m, memcached_delete(m, key, strlen(key), 0),
                 MEMCACHED_SUCCESS);
    lmc_want_miss(m, key);
    LMC_CHECK_RC(m, memcached_delete(m, key, strlen(key), 0),
                 MEMCACHED_NOTFOUND);
}

/* "<p><suffix>" into key (64 bytes); its length */
static size_t
nr_key(char *key, const char *p, const char *suffix)
{
    int n = snprintf(key, 64, "%s%s", p, suffix);

    assert_true(n > 0 && n < 64);
    return (size_t)n;
}

void
lmc_noreply_burst(memcached_st *m, const char *p)
{
    char k[64], kc[64], kd[64], kr[64];
    size_t n = nr_key(k, p, "nr"), nc = nr_key(kc, p, "nrc");
    size_t nd = nr_key(kd, p, "nrd"), nr = nr_key(kr, p, "nrr");
    uint64_t v;

    LMC_CHECK_RC(m, memcached_set(m, k, n, "a", 1, 0, 1), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_add(m, k, n, "X", 1, 0, 0), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_append(m, k, n, "b", 1, 0, 0), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_prepend(m, k, n, "_", 1, 0, 0),
                 MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_set(m, kc, nc, "40", 2, 0, 0), MEMCACHED_SUCCESS);
    memcached_increment(m, kc, nc, 5, &v);
    memcached_decrement(m, kc, nc, 3, &v);
    LMC_CHECK_RC(m, memcached_set(m, kd, nd, "d", 1, 0, 0), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_delete(m, kd, nd, 0), MEMCACHED_SUCCESS);
    LMC_CHECK_RC(m, memcached_replace(m, kr, nr, "r", 1, 0, 0),
                 MEMCACHED_SUCCESS);
}

void
lmc_noreply_check(memcached_st *m, const char *p)
{
    char k[64];

    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 0);
    nr_key(k, p, "nr");
    lmc_want_value(m, k, "_ab", 3, 1);
    nr_key(k, p, "nrc");
    lmc_want_value(m, k, "42", 2, 0);
    nr_key(k, p, "nrd");
    lmc_want_miss(m, k);
    nr_key(k, p, "nrr");
    lmc_want_miss(m, k);
}

void
lmc_check_flush(memcached_st *m, const char *k1, const char *k2)
{
    lmc_put(m, k1, "a", 1, 0);
    lmc_put(m, k2, "b", 1, 0);
    LMC_CHECK_RC(m, memcached_flush(m, 0), MEMCACHED_SUCCESS);
    lmc_want_miss(m, k1);
    lmc_want_miss(m, k2);
    lmc_put(m, k1, "c", 1, 0);
    lmc_want_value(m, k1, "c", 1, 0);
}

void
lmc_check_version(memcached_st *m)
{
    const memcached_instance_st *inst;

    LMC_CHECK_RC(m, memcached_version(m), MEMCACHED_SUCCESS);
    inst = memcached_server_instance_by_position(m, 0);
    assert_non_null(inst);
    assert_int_equal(memcached_server_major_version(inst), 1);
    assert_int_equal(memcached_server_minor_version(inst), 6);
    assert_int_equal(memcached_server_micro_version(inst), 18);
}

void
lmc_mget_many(memcached_st *m, const char *prefix, bool want_cas)
{
    const char *keys[MGET_KEYS + 100];
    size_t lens[MGET_KEYS + 100];
    char names[MGET_KEYS + 100][32];
    bool seen[MGET_KEYS] = {false};
    size_t plen = strlen(prefix);
    memcached_result_st *r;
    memcached_return_t rc;
    int hits = 0;

    for (int i = 0; i < MGET_KEYS + 100; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%d", prefix, i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
        if (i < MGET_KEYS) {
            char val[64];
            int n = snprintf(val, sizeof(val), "value-%d-%0*d", i, i % 40, i);

            lmc_put(m, names[i], val, (size_t)n, (uint32_t)i);
        } else {
            memcached_delete(m, names[i], lens[i], 0);
        }
    }
    LMC_CHECK_RC(m, memcached_mget(m, keys, lens, MGET_KEYS + 100),
                 MEMCACHED_SUCCESS);
    while ((r = memcached_fetch_result(m, NULL, &rc)) != NULL) {
        const char *key = memcached_result_key_value(r);
        char want[64];
        int i, n;

        /* "<prefix>%d", as sscanf with the prefix in its format */
        assert_int_equal(strncmp(key, prefix, plen) == 0 &&
                             sscanf(key + plen, "%d", &i) == 1,
                         1);
        assert_true(i >= 0 && i < MGET_KEYS);
        assert_false(seen[i]);
        seen[i] = true;
        n = snprintf(want, sizeof(want), "value-%d-%0*d", i, i % 40, i);
        assert_int_equal(memcached_result_length(r), (size_t)n);
        assert_memory_equal(memcached_result_value(r), want, (size_t)n);
        assert_int_equal(memcached_result_flags(r), (uint32_t)i);
        if (want_cas) {
            assert_true(memcached_result_cas(r) != 0);
        }
        hits++;
        memcached_result_free(r);
    }
    lmc_fetch_end(m, rc);
    assert_int_equal(hits, MGET_KEYS);
    printf("    mget: %d keys asked, %d hits, all values exact\n",
           MGET_KEYS + 100, hits);
}
