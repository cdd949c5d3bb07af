/*
 * test_route: the route table and the rules' pure parts (src/route.c).
 *
 * - the longest matching prefix wins whatever the file order, a key no
 *   prefix starts (or shorter than every prefix) takes the default, and
 *   a 1,000-prefix table finds each prefix's own entry;
 * - shadow fractions: the same keys every time, 0 and 1 exact, 0.1 of
 *   100,000 keys between 9% and 11%;
 * - ttl_max clamps: 0 (never) and longer TTLs become ttl_max, shorter
 *   ones stay, a Unix time is read as memcached reads it;
 * - hash tags: the part between the two characters, or the whole key;
 * - writes and severities as all_sync ranks answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "route.h"

static struct config *
load(const char *yaml)
{
    char err[256];
    struct config *cfg =
        config_load_string(yaml, strlen(yaml), "t.yml", err, sizeof(err));

    if (cfg == NULL) {
        fail_msg("%s", err);
    }
    return cfg;
}

/* The routes entry index route_lookup picks for key. */
static size_t
lookup(const struct route_table *t, const char *key)
{
    return route_lookup(t, key, strlen(key));
}

static void
longest_in(const char *yaml, size_t ia, size_t iab, size_t idef)
{
    struct config *cfg = load(yaml);
    char err[128];
    struct route_table *t = route_table_create(cfg, err, sizeof(err));

    assert_non_null(t);
    assert_int_equal(lookup(t, "abc"), iab);
    assert_int_equal(lookup(t, "ab"), iab);
    assert_int_equal(lookup(t, "axy"), ia);
    assert_int_equal(lookup(t, "a"), ia);
    assert_int_equal(lookup(t, "zzz"), idef);
    assert_int_equal(lookup(t, ""), idef);
    assert_int_equal(lookup(t, "b"), idef);
    route_table_destroy(t);
    config_unref(cfg);
}

#define POOLS "pools:\n  p: {servers: [\"127.0.0.1:1\"]}\nroutes:\n"

static void
test_longest_prefix(void **state)
{
    (void)state;
    longest_in(POOLS "  - {prefix: a, route: p}\n"
                     "  - {prefix: ab, route: p}\n"
                     "  - default: p\n",
               0, 1, 2);
    longest_in(POOLS "  - default: p\n"
                     "  - {prefix: ab, route: p}\n"
                     "  - {prefix: a, route: p}\n",
               2, 1, 0);
}

static void
test_thousand_prefixes(void **state)
{
    size_t cap = 1024 * 64, n = 0;
    char *yaml = malloc(cap), err[128], key[80];
    struct config *cfg;
    struct route_table *t;

    (void)state;
    assert_non_null(yaml);
    n += (size_t)snprintf(yaml + n, cap - n, "%s", POOLS);
    for (int i = 0; i < 1000; i++) {
        n += (size_t)snprintf(yaml + n, cap - n,
                              "  - {prefix: \"k%d:\", route: p}\n", i);
    }
    snprintf(yaml + n, cap - n, "  - default: p\n");
    cfg = load(yaml);
    t = route_table_create(cfg, err, sizeof(err));
    assert_non_null(t);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d:some:key", i);
        assert_int_equal(lookup(t, key), (size_t)i);
        snprintf(key, sizeof(key), "k%d", i); /* no ':': no prefix */
        assert_int_equal(lookup(t, key), 1000);
    }
    route_table_destroy(t);
    config_unref(cfg);
    free(yaml);
}

static void
test_fraction(void **state)
{
    char key[32];
    size_t in = 0, n = 100000;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "key:%zu", i);
        bool a = route_in_fraction(key, len, 0.1);

        assert_true(a == route_in_fraction(key, len, 0.1)); /* stable */
        assert_false(route_in_fraction(key, len, 0.0));
        assert_true(route_in_fraction(key, len, 1.0));
        in += a;
    }
    printf("    fraction 0.1: %zu of %zu keys\n", in, n);
    assert_true(in >= 9000 && in <= 11000);
}

static void
test_clamp_ttl(void **state)
{
    int64_t now = 1800000000;

    (void)state;
    assert_int_equal(route_clamp_ttl(0, 300, now), 300);
    assert_int_equal(route_clamp_ttl(5000, 300, now), 300);
    assert_int_equal(route_clamp_ttl(100, 300, now), 100);
    assert_int_equal(route_clamp_ttl(300, 300, now), 300);
    assert_int_equal(route_clamp_ttl(-1, 300, now), -1);
    assert_int_equal(route_clamp_ttl(5000, 0, now), 5000); /* no clamp */
    /* a Unix time: 100 s from now stays, a day from now becomes 300 s */
    assert_int_equal(route_clamp_ttl(now + 100, 300, now), now + 100);
    assert_int_equal(route_clamp_ttl(now + 86400, 300, now), 300);
}

static void
hash_part_is(const char *tag, const char *key, const char *want)
{
    struct cfg_pool pool = {0};
    const char *k = key;
    size_t n = strlen(key);

    memcpy(pool.hash_tag, tag, strlen(tag) + 1);
    route_hash_part(&pool, &k, &n);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(k, want, n);
}

static void
test_hash_tag(void **state)
{
    (void)state;
    hash_part_is("{}", "user:{42}:name", "42");
    hash_part_is("{}", "user:{42}:mail", "42");
    hash_part_is("{}", "user:42", "user:42");     /* no tag */
    hash_part_is("{}", "user:{42", "user:{42");   /* not closed */
    hash_part_is("{}", "user:{}:x", "user:{}:x"); /* nothing between */
    hash_part_is("::", "a:b:c", "b");
    hash_part_is("", "user:{42}:name", "user:{42}:name");
}

static void
test_kinds(void **state)
{
    static const enum req_cmd writes[] = {
        REQ_SET, REQ_ADD,  REQ_REPLACE, REQ_APPEND, REQ_PREPEND,
        REQ_CAS, REQ_INCR, REQ_DECR,    REQ_DELETE, REQ_TOUCH,
        REQ_MS,  REQ_MD,   REQ_MA};
    static const enum req_cmd reads[] = {REQ_GET,  REQ_GETS, REQ_GAT,
                                         REQ_GATS, REQ_MG,   REQ_ME};
    struct response r = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        struct request q = {.cmd = writes[i]};

        assert_true(route_is_write(&q));
    }
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        struct request q = {.cmd = reads[i]};

        assert_false(route_is_write(&q));
    }
    assert_true(route_is_plain_read(&(struct request){.cmd = REQ_GET}));
    assert_false(route_is_plain_read(
        &(struct request){.cmd = REQ_GET, .rflags = REQ_F_RET_CAS}));
    r.kind = RES_STORED;
    assert_int_equal(route_severity(&r), 0);
    r.kind = RES_NOT_STORED;
    assert_int_equal(route_severity(&r), 1);
    r.kind = RES_MISS;
    assert_int_equal(route_severity(&r), 1);
    r.kind = RES_SERVER_ERROR;
    assert_int_equal(route_severity(&r), 2);
    r.kind = RES_NONE; /* never answered */
    assert_int_equal(route_severity(&r), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_longest_prefix),
        cmocka_unit_test(test_thousand_prefixes),
        cmocka_unit_test(test_fraction),
        cmocka_unit_test(test_clamp_ttl),
        cmocka_unit_test(test_hash_tag),
        cmocka_unit_test(test_kinds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
