/*
 * integ_l1l2: riven's l1l2 orca in front of two real memcached processes,
 * L1 `memcached -m 16` (RAM) and L2 `memcached -m 16 -o ext_path=FILE:512m,
 * ext_item_size=512` (extstore, FILE in a temporary directory removed at
 * teardown). Each case starts its own three processes on loopback and reads
 * the layers' state directly (`mg KEY v t f` on each memcached).
 *
 * - bulk: 30 MB (3000 values of 10 KB) written through riven all read back
 *   intact although L1 holds only 16 MB;
 * - refill: a key deleted from L1 is refilled on read with L2's remaining
 *   TTL (within 1 s), also when that TTL is over 30 days;
 * - L2 down (SIGKILL): L1 hits are still served, sets answer
 *   SERVER_ERROR backend unavailable and leave L1 alone;
 * - differential: one table row per command (and layer state before it):
 *   the client's exact reply and both layers' state after it, on the
 *   l1l2 listener and on the l1l2batch listener (--batch-listen);
 * - key locks: 32 threads set/get 10 keys for 2 s; afterwards every key
 *   L1 holds equals L2's;
 * - metrics: the per-layer counters of `stats proxy` move exactly;
 * - conf/l1l2-example.yml passes `riven -t -c`;
 * - routes (issue 13): refill, L2 down, differential (l1l2 rows), multi,
 *   L1 set failing and key locks again through the route
 *   `{l1l2: {l1: l1, l2: {all_sync: [l2, l2b]}}}`, a fourth memcached
 *   (l2b) as L2's replica holding every write L2 holds.
 * - chunked L1 (issue 15): bulk again with L1 a chunked pool, as Rend's
 *   chunked L1, by --chunked and by a route's pool with chunked: true.
 *
 * Needs riven and a memcached built with extstore: every case is skipped
 * with RIVEN_DIRECT=1. To debug one case: INTEG_L1L2_ONLY=test_name; to
 * see the key-lock case catch the race it guards: INTEG_L1L2_KEY_LOCKS=0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define UNAVAILABLE  "SERVER_ERROR backend unavailable\r\n"
#define BULK_KEYS    3000
#define BULK_SIZE    10240 /* 3000 x 10 KB = 30 MB */
#define BULK_PIPE    50    /* requests per pipelined write */
#define VAL_MAX      256   /* values read by layer_read */
#define CONC_THREADS 32
#define CONC_KEYS    10
#define CONC_MS      2000

/* Three processes and the directory of L2's extstore file. */
struct l1l2 {
    struct harness_proc l1;
    struct harness_proc l2;
    struct harness_proc l2b; /* routes: L2's replica (all_sync), else -1 */
    struct harness_proc rv;
    int batch_port; /* riven's --batch-listen port */
    int l1_items;   /* memcached items L1 spends on one bulk value: 1, or
                       with a chunked L1, 1 + its chunks */
    char dir[64];   /* mkdtemp; removed at teardown */
    char ext[96];   /* dir/extstore */
    char conf[96];  /* dir/riven.yml, when used */
};

/* One layer's copy of a key, as `mg KEY v t f` returns it. */
struct item {
    bool hit;
    long ttl; /* -1: never expires */
    uint32_t flags;
    size_t n;
    char val[VAL_MAX]; /* NUL-terminated */
};

/* ---- fixture --------------------------------------------------------- */

/* true when `memcached -h` lists ext_path (built with extstore). */
static bool
memcached_has_extstore(void)
{
    char line[512];
    bool found = false;
    FILE *p = popen("memcached -h 2>&1", "r");

    if (p == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), p) != NULL) {
        found = found || strstr(line, "ext_path") != NULL;
    }
    pclose(p);
    return found;
}

static void
fixture_free(struct l1l2 *t)
{
    harness_proc_stop(&t->rv, 5000);
    harness_proc_stop(&t->l1, 5000);
    harness_proc_stop(&t->l2, 5000);
    if (t->l2b.pid > 0) {
        harness_proc_stop(&t->l2b, 5000);
    }
    if (t->dir[0] != '\0') {
        unlink(t->ext);
        unlink(t->conf);
        if (rmdir(t->dir) != 0) {
            fprintf(stderr, "integ_l1l2: rmdir %s: %s\n", t->dir,
                    strerror(errno));
        }
    }
    free(t);
}

/* L1 (memcached -m 16 [l1_more...]) and L2 memcached; riven not yet.
 * NULL (and a message) on failure. */
static struct l1l2 *
backends_start(const char *const *l1_more)
{
    const char *l1_args[8] = {"-m", "16"};
    struct l1l2 *t = calloc(1, sizeof(*t));
    char ext_opt[160];
    const char *l2_args[] = {"-m", "16", "-o", ext_opt, NULL};

    if (t == NULL) {
        return NULL;
    }
    t->l1.pid = t->l2.pid = t->l2b.pid = t->rv.pid = -1;
    t->l1_items = 1;
    for (size_t i = 0; l1_more != NULL && l1_more[i] != NULL && i < 5; i++) {
        l1_args[2 + i] = l1_more[i];
    }
    if (!memcached_has_extstore()) {
        fprintf(stderr, "integ_l1l2: this memcached has no extstore "
                        "(`memcached -h` lists no ext_path); L2 needs "
                        "memcached >= 1.6 built with extstore\n");
        fixture_free(t);
        return NULL;
    }
    snprintf(t->dir, sizeof(t->dir), "/tmp/riven-l1l2-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        fprintf(stderr, "integ_l1l2: mkdtemp: %s\n", strerror(errno));
        t->dir[0] = '\0';
        fixture_free(t);
        return NULL;
    }
    /* memcached drops root for nobody, who must create the file */
    chmod(t->dir, 0777);
    snprintf(t->ext, sizeof(t->ext), "%s/extstore", t->dir);
    snprintf(t->conf, sizeof(t->conf), "%s/riven.yml", t->dir);
    snprintf(ext_opt, sizeof(ext_opt), "ext_path=%s:512m,ext_item_size=512",
             t->ext);
    if (harness_memcached_start(&t->l1, 0, l1_args) != 0 ||
        harness_memcached_start(&t->l2, 0, l2_args) != 0) {
        fprintf(stderr,
                "integ_l1l2: cannot start L1/L2 memcached "
                "(L2: memcached -m 16 -o %s)\n",
                ext_opt);
        fixture_free(t);
        return NULL;
    }
    return t;
}

/* riven --orca l1l2 --l2 L2 --batch-listen PORT [--chunked] in front of
 * L1 and L2 (L1 started with l1_more). */
static int
setup_opts(void **state, const char *const *l1_more, bool chunked)
{
    char l2addr[32], baddr[32];
    struct l1l2 *t;

    *state = NULL;
    if (harness_direct()) {
        return 0; /* the case skips */
    }
    t = backends_start(l1_more);
    assert_non_null(t);
    *state = t;
    t->batch_port = harness_free_port();
    assert_true(t->batch_port > 0);
    snprintf(l2addr, sizeof(l2addr), "127.0.0.1:%d", t->l2.port);
    snprintf(baddr, sizeof(baddr), "127.0.0.1:%d", t->batch_port);
    {
        const char *const extra[] = {"--orca",
                                     "l1l2",
                                     "--l2",
                                     l2addr,
                                     "--batch-listen",
                                     baddr,
                                     chunked ? "--chunked" : NULL,
                                     NULL};

        assert_int_equal(
            harness_riven_start(&t->rv, t->l1.port, NULL, 0, extra), 0);
    }
    assert_int_equal(harness_wait_ready(&t->rv, t->batch_port, 5000), 0);
    /* 10,240 bytes in chunks of 1,068 */
    t->l1_items = chunked ? 1 + (BULK_SIZE + 1067) / 1068 : 1;
    return 0;
}

static int
setup_with(void **state, const char *const *l1_more)
{
    return setup_opts(state, l1_more, false);
}

/* Issue 15: L1 a chunked pool (--chunked applies to l1). */
static int
setup_chunked(void **state)
{
    return setup_opts(state, NULL, true);
}

static int
setup_cli(void **state)
{
    return setup_with(state, NULL);
}

/* L1 refusing items over 512 KB (L2 and riven take up to 1 MB). */
static int
setup_small_l1(void **state)
{
    static const char *const small[] = {"-I", "512k", NULL};

    return setup_with(state, small);
}

/* The same through a YAML file: l1:, l2:, orca:, key_locks:. */
static int
setup_yaml(void **state)
{
    const char *locks = getenv("INTEG_L1L2_KEY_LOCKS");
    struct l1l2 *t;
    FILE *f;
    int port;

    *state = NULL;
    if (harness_direct()) {
        return 0;
    }
    t = backends_start(NULL);
    assert_non_null(t);
    *state = t;
    port = harness_free_port();
    assert_true(port > 0);
    f = fopen(t->conf, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\norca: l1l2\n"
            "key_locks: %s\nl1:\n  servers: [\"127.0.0.1:%d\"]\n"
            "l2:\n  servers: [\"127.0.0.1:%d\"]\n",
            port, locks != NULL ? locks : "1024", t->l1.port, t->l2.port);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(harness_riven_start(&t->rv, 0, t->conf, port, NULL), 0);
    return 0;
}

/*
 * The l1l2 rule of routes (issue 13): the same semantics with each layer a
 * route, L2 replicated over two pools:
 *   routes: [{default: {l1l2: {l1: l1, l2: {all_sync: [l2, l2b]}}}}]
 * No batch listener (routes have none): the l1l2batch rows are left out.
 */
static int
setup_route_opts(void **state, const char *const *l1_more, bool chunked)
{
    static const char *const l2b_args[] = {"-m", "16", NULL};
    struct l1l2 *t;
    FILE *f;
    int port;

    *state = NULL;
    if (harness_direct()) {
        return 0;
    }
    t = backends_start(l1_more);
    assert_non_null(t);
    *state = t;
    assert_int_equal(harness_memcached_start(&t->l2b, 0, l2b_args), 0);
    port = harness_free_port();
    assert_true(port > 0);
    f = fopen(t->conf, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\nkey_locks: 1024\n"
            "pools:\n  l1: {servers: [\"127.0.0.1:%d\"]%s}\n"
            "  l2: {servers: [\"127.0.0.1:%d\"]}\n"
            "  l2b: {servers: [\"127.0.0.1:%d\"]}\n"
            "routes:\n"
            "  - default: {l1l2: {l1: l1, l2: {all_sync: [l2, l2b]}}}\n",
            port, t->l1.port, chunked ? ", chunked: true" : "", t->l2.port,
            t->l2b.port);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(harness_riven_start(&t->rv, 0, t->conf, port, NULL), 0);
    t->l1_items = chunked ? 1 + (BULK_SIZE + 1067) / 1068 : 1;
    return 0;
}

static int
setup_route_with(void **state, const char *const *l1_more)
{
    return setup_route_opts(state, l1_more, false);
}

static int
setup_route(void **state)
{
    return setup_route_with(state, NULL);
}

static int
setup_route_chunked(void **state)
{
    return setup_route_opts(state, NULL, true);
}

static int
setup_route_small_l1(void **state)
{
    static const char *const small[] = {"-I", "512k", NULL};

    return setup_route_with(state, small);
}

static int
teardown(void **state)
{
    if (*state != NULL) {
        fixture_free(*state);
    }
    return 0;
}

/* The fixture of a case; skips the case in direct mode (no riven). */
static struct l1l2 *
fixture(void **state)
{
    if (*state == NULL) {
        skip();
    }
    return *state;
}

/* ---- direct reads of one layer --------------------------------------- */

static struct harness_conn *
conn(int port)
{
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);

    assert_non_null(c);
    return c;
}

/* `mg key v t f` on c into *it; false on a malformed or missing reply. */
static bool
layer_read(struct harness_conn *c, const char *key, struct item *it)
{
    char req[300], *line, *tok, *save = NULL, *data;
    bool ok = false;

    memset(it, 0, sizeof(*it));
    snprintf(req, sizeof(req), "mg %s v t f\r\n", key);
    if (harness_sends(c, req) != 0 ||
        (line = harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, NULL)) ==
            NULL) {
        return false;
    }
    if (strcmp(line, "EN\r\n") == 0) {
        free(line);
        return true;
    }
    tok = strtok_r(line, " \r\n", &save);
    if (tok == NULL || strcmp(tok, "VA") != 0 ||
        (tok = strtok_r(NULL, " \r\n", &save)) == NULL) {
        harness_dump("integ_l1l2: mg reply", line, strlen(line), 200);
        free(line);
        return false;
    }
    it->hit = true;
    it->n = strtoul(tok, NULL, 10);
    while ((tok = strtok_r(NULL, " \r\n", &save)) != NULL) {
        if (tok[0] == 't') {
            it->ttl = strtol(tok + 1, NULL, 10);
        } else if (tok[0] == 'f') {
            it->flags = (uint32_t)strtoul(tok + 1, NULL, 10);
        }
    }
    free(line);
    if (it->n + 1 > sizeof(it->val) ||
        (data = harness_recv_n(c, it->n + 2, HARNESS_TIMEOUT_MS)) == NULL) {
        return false;
    }
    ok = memcmp(data + it->n, "\r\n", 2) == 0;
    memcpy(it->val, data, it->n);
    it->val[it->n] = '\0';
    free(data);
    return ok;
}

/* Read key from the layer on port (a fresh connection). */
static void
read_layer(int port, const char *key, struct item *it)
{
    struct harness_conn *c = conn(port);

    assert_true(layer_read(c, key, it));
    harness_conn_close(c);
}

/* Store (val != NULL) or delete key on the layer on port, directly. */
static void
put_layer(int port, const char *key, const char *val)
{
    struct harness_conn *c = conn(port);
    char req[512];

    if (val != NULL) {
        snprintf(req, sizeof(req), "set %s 0 0 %zu\r\n%s\r\n", key, strlen(val),
                 val);
        assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    } else {
        char *line;

        snprintf(req, sizeof(req), "delete %s\r\n", key);
        assert_int_equal(harness_sends(c, req), 0);
        line = harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, NULL);
        assert_non_null(line);
        assert_true(strcmp(line, "DELETED\r\n") == 0 ||
                    strcmp(line, "NOT_FOUND\r\n") == 0);
        free(line);
    }
    harness_conn_close(c);
}

/* The integer after "STAT name " in a `stats [arg]` reply from port. */
static uint64_t
stat_of(int port, const char *cmd, const char *name)
{
    struct harness_conn *c = conn(port);
    char pat[96], *r, *p;
    uint64_t v;

    assert_int_equal(harness_sends(c, cmd), 0);
    r = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, NULL);
    assert_non_null(r);
    snprintf(pat, sizeof(pat), "STAT %s ", name);
    p = strstr(r, pat);
    if (p == NULL) {
        fail_msg("no %s in the reply to %s", name, cmd);
    }
    v = strtoull(p + strlen(pat), NULL, 10);
    free(r);
    harness_conn_close(c);
    return v;
}

/* ---- 1. 30 MB through a 16 MB L1 -------------------------------------- */

/* Value i: "v%05d:" then a pattern that depends on i and the offset. */
static void
bulk_value(char *out, int i)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    int n = snprintf(out, BULK_SIZE, "v%05d:", i);

    for (size_t j = (size_t)n; j < BULK_SIZE; j++) {
        out[j] = alpha[((size_t)i * 31 + j * 7 + (j >> 6)) % 36];
    }
}

static void
test_bulk_30mb(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    size_t cap = BULK_PIPE * (BULK_SIZE + 64);
    char *wbuf = malloc(cap), *val = malloc(BULK_SIZE + 1);
    char want_stored[BULK_PIPE * 8 + 1] = "";
    int stored = 0, intact = 0, bad = 0;
    bool ok;
    uint64_t l1_items, l1_evict, l2_ext, l2_evict;

    assert_non_null(wbuf);
    assert_non_null(val);
    for (int i = 0; i < BULK_PIPE; i++) {
        strcat(want_stored, "STORED\r\n");
    }
    for (int i = 0; i < BULK_KEYS; i += BULK_PIPE) {
        size_t len = 0;

        for (int k = i; k < i + BULK_PIPE; k++) {
            len += (size_t)snprintf(wbuf + len, cap - len,
                                    "set bulk:%d 0 0 %d\r\n", k, BULK_SIZE);
            bulk_value(wbuf + len, k);
            len += BULK_SIZE;
            memcpy(wbuf + len, "\r\n", 2);
            len += 2;
        }
        assert_int_equal(harness_send(c, wbuf, len), 0);
        if (harness_expect_n(c, want_stored, BULK_PIPE * 8,
                             HARNESS_TIMEOUT_MS)) {
            stored += BULK_PIPE;
        }
    }
    /* read back one get per key, pipelined BULK_PIPE at a time */
    for (int i = 0; i < BULK_KEYS; i += BULK_PIPE) {
        size_t len = 0;

        for (int k = i; k < i + BULK_PIPE; k++) {
            len +=
                (size_t)snprintf(wbuf + len, cap - len, "get bulk:%d\r\n", k);
        }
        assert_int_equal(harness_send(c, wbuf, len), 0);
        for (int k = i; k < i + BULK_PIPE; k++) {
            char hdr[64];
            int hl = snprintf(hdr, sizeof(hdr), "VALUE bulk:%d 0 %d\r\n", k,
                              BULK_SIZE);
            size_t rl = 0;
            char *r =
                harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &rl);

            assert_non_null(r);
            bulk_value(val, k);
            ok = rl == (size_t)hl + BULK_SIZE + 7 &&
                 memcmp(r, hdr, (size_t)hl) == 0 &&
                 memcmp(r + hl, val, BULK_SIZE) == 0 &&
                 memcmp(r + hl + BULK_SIZE, "\r\nEND\r\n", 7) == 0;
            if (!ok && bad++ < 3) {
                fprintf(stderr, "  bulk:%d: ", k);
                harness_dump("reply", r, rl, 120);
            }
            intact += ok;
            free(r);
        }
    }
    l1_items = stat_of(t->l1.port, "stats\r\n", "curr_items");
    l1_evict = stat_of(t->l1.port, "stats\r\n", "evictions");
    l2_ext = stat_of(t->l2.port, "stats\r\n", "extstore_objects_written");
    l2_evict = stat_of(t->l2.port, "stats\r\n", "evictions");
    printf("    30 MB: %d/%d stored, %d/%d read back intact; L1 holds %llu "
           "items (%llu evictions), L2 wrote %llu to extstore (%llu "
           "evictions)\n",
           stored, BULK_KEYS, intact, BULK_KEYS, (unsigned long long)l1_items,
           (unsigned long long)l1_evict, (unsigned long long)l2_ext,
           (unsigned long long)l2_evict);
    free(wbuf);
    free(val);
    harness_conn_close(c);
    assert_int_equal(stored, BULK_KEYS);
    assert_int_equal(intact, BULK_KEYS);
    /* the case means something: L1 could not hold every value */
    assert_true(l1_items < (uint64_t)BULK_KEYS * (uint64_t)t->l1_items);
    if (t->l1_items > 1) { /* chunked: L1 holds chunks, not whole values */
        assert_true(l1_items > BULK_KEYS);
    }
    assert_true(l2_ext > 0);
}

/* ---- 2. refill with L2's remaining TTL -------------------------------- */

static void
test_refill_ttl(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    struct harness_conn *d2 = conn(t->l2.port);
    struct item i1, i2;

    assert_true(
        harness_roundtrip(c, "set refill 7 1000 5\r\nhello\r\n", "STORED\r\n"));
    /* L2's TTL now differs from what the client set, L1 loses its copy */
    assert_true(harness_roundtrip(d2, "touch refill 500\r\n", "TOUCHED\r\n"));
    put_layer(t->l1.port, "refill", NULL);
    read_layer(t->l1.port, "refill", &i1);
    assert_false(i1.hit);

    assert_true(harness_roundtrip(c, "get refill\r\n",
                                  "VALUE refill 7 5\r\nhello\r\nEND\r\n"));
    read_layer(t->l1.port, "refill", &i1);
    assert_true(layer_read(d2, "refill", &i2));
    printf("    refill: L1 t%ld f%u \"%s\", L2 t%ld f%u \"%s\"\n", i1.ttl,
           i1.flags, i1.val, i2.ttl, i2.flags, i2.val);
    assert_true(i1.hit);
    assert_true(i2.hit);
    assert_string_equal(i1.val, "hello");
    assert_int_equal(i1.flags, 7);
    assert_true(i2.ttl > 490 && i2.ttl <= 500);
    assert_true(labs(i1.ttl - i2.ttl) <= 1);
    /* the refilled copy serves the next read: L2 is not asked again */
    assert_true(harness_roundtrip(d2, "delete refill\r\n", "DELETED\r\n"));
    assert_true(harness_roundtrip(c, "get refill\r\n",
                                  "VALUE refill 7 5\r\nhello\r\nEND\r\n"));
    harness_conn_close(d2);
    harness_conn_close(c);
}

/* An L2 TTL over 30 days: memcached reads such an exptime as a Unix time,
 * so the fill must not send the remaining seconds as they are. */
static void
test_refill_long_ttl(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    long exp = (long)time(NULL) + 40 * 86400;
    char req[96];
    struct item i1, i2;

    snprintf(req, sizeof(req), "set longttl 0 %ld 3\r\nabc\r\n", exp);
    assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    put_layer(t->l1.port, "longttl", NULL);
    assert_true(harness_roundtrip(c, "get longttl\r\n",
                                  "VALUE longttl 0 3\r\nabc\r\nEND\r\n"));
    read_layer(t->l1.port, "longttl", &i1);
    read_layer(t->l2.port, "longttl", &i2);
    printf("    40-day TTL: L1 %s t%ld, L2 t%ld\n", i1.hit ? "hit" : "miss",
           i1.ttl, i2.ttl);
    harness_conn_close(c);
    assert_true(i2.hit);
    assert_true(i1.hit); /* filled, and not already expired */
    assert_true(labs(i1.ttl - i2.ttl) <= 1);
}

/* ---- 3. L2 down -------------------------------------------------------- */

static void
test_l2_down(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port), *c2;
    struct item it;

    assert_true(
        harness_roundtrip(c, "set hot 3 0 6\r\nin-ram\r\n", "STORED\r\n"));
    assert_true(harness_roundtrip(c, "get hot\r\n",
                                  "VALUE hot 3 6\r\nin-ram\r\nEND\r\n"));
    harness_proc_kill(&t->l2);
    assert_false(harness_proc_alive(&t->l2));

    /* the connection that had an L2 socket, then a fresh one */
    assert_true(harness_roundtrip(c, "get hot\r\n",
                                  "VALUE hot 3 6\r\nin-ram\r\nEND\r\n"));
    assert_true(
        harness_roundtrip(c, "set hot 0 0 5\r\nnewer\r\n", UNAVAILABLE));
    c2 = conn(t->rv.port);
    assert_true(
        harness_roundtrip(c2, "set hot 0 0 5\r\nnewer\r\n", UNAVAILABLE));
    assert_true(
        harness_roundtrip(c2, "set cold 0 0 5\r\nnewer\r\n", UNAVAILABLE));
    for (int i = 0; i < 5; i++) { /* ejected or not, L1 still serves */
        assert_true(harness_roundtrip(c2, "get hot\r\n",
                                      "VALUE hot 3 6\r\nin-ram\r\nEND\r\n"));
    }
    read_layer(t->l1.port, "hot", &it);
    assert_true(it.hit);
    assert_string_equal(it.val, "in-ram");
    assert_int_equal(it.flags, 3);
    read_layer(t->l1.port, "cold", &it);
    assert_false(it.hit);
    /* an L1 miss has nowhere to go; a failed delete drops L1's copy */
    assert_true(harness_roundtrip(c2, "get cold\r\n", UNAVAILABLE));
    assert_true(harness_roundtrip(c2, "delete hot\r\n", UNAVAILABLE));
    read_layer(t->l1.port, "hot", &it);
    assert_false(it.hit);
    harness_conn_close(c2);
    harness_conn_close(c);
}

/* ---- 4. differential: one row per command ----------------------------- */

enum cas_use {
    CAS_NONE,
    CAS_GOOD, /* $C in req and reply: L2's CAS of the key */
    CAS_BAD,  /* $C in req: L2's CAS + 1000 */
};

/*
 * One command on a key "diff:NAME" whose copies are l1 and l2 before
 * (NULL: absent; stored directly with flags 0 and no expiry). req goes
 * through riven ($K is the key, $C a CAS); reply is the exact answer
 * ($K, $C expanded). Afterwards L1 holds l1_after and L2 l2_after (NULL:
 * absent); where ttl is not 0, each copy's TTL is ttl (-1: none, else
 * within 1 s).
 */
struct diff_case {
    const char *name;
    bool batch; /* through the l1l2batch listener */
    const char *l1;
    const char *l2;
    enum cas_use cas;
    const char *req;
    const char *reply;
    const char *l1_after;
    const char *l2_after;
    long ttl;
};

static const struct diff_case diff_cases[] = {
    /* reads: L1 first (copies differ to show who answered) */
    {"get-l1-hit", false, "one", "two", CAS_NONE, "get $K\r\n",
     "VALUE $K 0 3\r\none\r\nEND\r\n", "one", "two", -1},
    {"get-l1-miss", false, NULL, "two", CAS_NONE, "get $K\r\n",
     "VALUE $K 0 3\r\ntwo\r\nEND\r\n", "two", "two", -1},
    {"get-both-miss", false, NULL, NULL, CAS_NONE, "get $K\r\n", "END\r\n",
     NULL, NULL, 0},
    {"gets-l2-cas", false, "one", "two", CAS_GOOD, "gets $K\r\n",
     "VALUE $K 0 3 $C\r\ntwo\r\nEND\r\n", "one", "two", -1},
    {"mg-l2-only", false, "one", "two", CAS_NONE, "mg $K v\r\n",
     "VA 3\r\ntwo\r\n", "one", "two", -1},
    {"gat-l1-hit", false, "val", "val", CAS_NONE, "gat 300 $K\r\n",
     "VALUE $K 0 3\r\nval\r\nEND\r\n", "val", "val", 300},
    {"gat-l1-miss", false, NULL, "val", CAS_NONE, "gat 300 $K\r\n",
     "VALUE $K 0 3\r\nval\r\nEND\r\n", "val", "val", 300},
    {"gat-both-miss", false, NULL, NULL, CAS_NONE, "gat 300 $K\r\n", "END\r\n",
     NULL, NULL, 0},
    {"gats", false, "val", "val", CAS_GOOD, "gats 300 $K\r\n",
     "VALUE $K 0 3 $C\r\nval\r\nEND\r\n", "val", "val", 300},
    /* set: L2 then L1 */
    {"set-both", false, "old", "old", CAS_NONE, "set $K 0 0 3\r\nnew\r\n",
     "STORED\r\n", "new", "new", -1},
    {"set-none", false, NULL, NULL, CAS_NONE, "set $K 0 0 3\r\nnew\r\n",
     "STORED\r\n", "new", "new", -1},
    {"set-ttl", false, "old", NULL, CAS_NONE, "set $K 0 300 3\r\nnew\r\n",
     "STORED\r\n", "new", "new", 300},
    /* add: L2 decides */
    {"add-l2-has", false, NULL, "old", CAS_NONE, "add $K 0 0 3\r\nnew\r\n",
     "NOT_STORED\r\n", NULL, "old", -1},
    {"add-both-have", false, "old", "old", CAS_NONE, "add $K 0 0 3\r\nnew\r\n",
     "NOT_STORED\r\n", "old", "old", -1},
    {"add-none", false, NULL, NULL, CAS_NONE, "add $K 0 0 3\r\nnew\r\n",
     "STORED\r\n", "new", "new", -1},
    {"add-l1-stale", false, "old", NULL, CAS_NONE, "add $K 0 0 3\r\nnew\r\n",
     "STORED\r\n", "new", "new", -1},
    /* replace, append, prepend: L2, then L1 (a miss ignored) */
    {"replace-both", false, "old", "old", CAS_NONE,
     "replace $K 0 0 3\r\nnew\r\n", "STORED\r\n", "new", "new", -1},
    {"replace-l1-miss", false, NULL, "old", CAS_NONE,
     "replace $K 0 0 3\r\nnew\r\n", "STORED\r\n", NULL, "new", -1},
    {"replace-l2-miss", false, "old", NULL, CAS_NONE,
     "replace $K 0 0 3\r\nnew\r\n", "NOT_STORED\r\n", NULL, NULL, 0},
    {"append-both", false, "abc", "abc", CAS_NONE, "append $K 0 0 3\r\ndef\r\n",
     "STORED\r\n", "abcdef", "abcdef", -1},
    {"append-l1-miss", false, NULL, "abc", CAS_NONE,
     "append $K 0 0 3\r\ndef\r\n", "STORED\r\n", NULL, "abcdef", -1},
    {"append-l2-miss", false, "abc", NULL, CAS_NONE,
     "append $K 0 0 3\r\ndef\r\n", "NOT_STORED\r\n", NULL, NULL, 0},
    {"prepend-both", false, "abc", "abc", CAS_NONE,
     "prepend $K 0 0 3\r\ndef\r\n", "STORED\r\n", "defabc", "defabc", -1},
    {"prepend-l1-miss", false, NULL, "abc", CAS_NONE,
     "prepend $K 0 0 3\r\ndef\r\n", "STORED\r\n", NULL, "defabc", -1},
    /* delete, touch: L2 answers, L1 follows */
    {"delete-both", false, "old", "old", CAS_NONE, "delete $K\r\n",
     "DELETED\r\n", NULL, NULL, 0},
    {"delete-l2-miss", false, "old", NULL, CAS_NONE, "delete $K\r\n",
     "NOT_FOUND\r\n", NULL, NULL, 0},
    {"delete-l1-miss", false, NULL, "old", CAS_NONE, "delete $K\r\n",
     "DELETED\r\n", NULL, NULL, 0},
    {"touch-both", false, "val", "val", CAS_NONE, "touch $K 300\r\n",
     "TOUCHED\r\n", "val", "val", 300},
    {"touch-l1-miss", false, NULL, "val", CAS_NONE, "touch $K 300\r\n",
     "TOUCHED\r\n", NULL, "val", 300},
    /* L2 no longer has it: L1's copy is dropped, never kept alive */
    {"touch-l2-miss", false, "val", NULL, CAS_NONE, "touch $K 300\r\n",
     "NOT_FOUND\r\n", NULL, NULL, 0},
    /* incr, decr, cas, meta writes: L2, then L1's copy dropped */
    {"incr", false, "10", "10", CAS_NONE, "incr $K 5\r\n", "15\r\n", NULL, "15",
     -1},
    {"decr", false, "17", "17", CAS_NONE, "decr $K 5\r\n", "12\r\n", NULL, "12",
     -1},
    {"incr-l2-miss", false, "10", NULL, CAS_NONE, "incr $K 5\r\n",
     "NOT_FOUND\r\n", NULL, NULL, 0},
    {"cas-ok", false, "old", "old", CAS_GOOD, "cas $K 0 0 3 $C\r\nnew\r\n",
     "STORED\r\n", NULL, "new", -1},
    {"cas-exists", false, "old", "old", CAS_BAD, "cas $K 0 0 3 $C\r\nnew\r\n",
     "EXISTS\r\n", NULL, "old", -1},
    {"cas-l2-miss", false, "old", NULL, CAS_BAD, "cas $K 0 0 3 $C\r\nnew\r\n",
     "NOT_FOUND\r\n", NULL, NULL, 0},
    {"ms", false, "old", "old", CAS_NONE, "ms $K 3\r\nnew\r\n", "HD\r\n", NULL,
     "new", -1},
    {"md", false, "old", "old", CAS_NONE, "md $K\r\n", "HD\r\n", NULL, NULL, 0},
    {"ma", false, "10", "10", CAS_NONE, "ma $K\r\n", "HD\r\n", NULL, "11", -1},
    /* noreply and quiet mode: the same effects, no answer ("mn" syncs) */
    {"set-noreply", false, "old", "old", CAS_NONE,
     "set $K 0 0 3 noreply\r\nnew\r\nmn\r\n", "MN\r\n", "new", "new", -1},
    {"delete-noreply", false, "old", "old", CAS_NONE,
     "delete $K noreply\r\nmn\r\n", "MN\r\n", NULL, NULL, 0},
    {"incr-noreply", false, "10", "10", CAS_NONE, "incr $K 5 noreply\r\nmn\r\n",
     "MN\r\n", NULL, "15", -1},
    {"touch-noreply", false, "val", "val", CAS_NONE,
     "touch $K 300 noreply\r\nmn\r\n", "MN\r\n", "val", "val", 300},
    {"ms-quiet", false, "old", "old", CAS_NONE, "ms $K 3 q\r\nnew\r\nmn\r\n",
     "MN\r\n", NULL, "new", -1},
    /* l1l2batch: sets refresh only keys already in L1, gets never fill */
    {"batch-set-l1-hit", true, "old", "old", CAS_NONE,
     "set $K 0 0 3\r\nnew\r\n", "STORED\r\n", "new", "new", -1},
    {"batch-set-l1-miss", true, NULL, "old", CAS_NONE,
     "set $K 0 0 3\r\nnew\r\n", "STORED\r\n", NULL, "new", -1},
    {"batch-get-l1-hit", true, "one", "two", CAS_NONE, "get $K\r\n",
     "VALUE $K 0 3\r\none\r\nEND\r\n", "one", "two", -1},
    {"batch-get-l1-miss", true, NULL, "two", CAS_NONE, "get $K\r\n",
     "VALUE $K 0 3\r\ntwo\r\nEND\r\n", NULL, "two", -1},
};

/* tmpl with $K replaced by key and $C by cas. */
static void
expand(char *out, size_t cap, const char *tmpl, const char *key, uint64_t cas)
{
    size_t n = 0;

    for (const char *p = tmpl; *p != '\0'; p++) {
        int w = 0;

        if (p[0] == '$' && p[1] == 'K') {
            w = snprintf(out + n, cap - n, "%s", key);
            p++;
        } else if (p[0] == '$' && p[1] == 'C') {
            w = snprintf(out + n, cap - n, "%llu", (unsigned long long)cas);
            p++;
        } else {
            w = snprintf(out + n, cap - n, "%c", *p);
        }
        assert_true(w > 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
}

/* L2's CAS of key (`mg key c`). */
static uint64_t
l2_cas(int port, const char *key)
{
    struct harness_conn *c = conn(port);
    char req[300], *line, *p;
    uint64_t cas;

    snprintf(req, sizeof(req), "mg %s c\r\n", key);
    assert_int_equal(harness_sends(c, req), 0);
    line = harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, NULL);
    assert_non_null(line);
    p = strstr(line, " c");
    cas = p != NULL ? strtoull(p + 2, NULL, 10) : 0;
    free(line);
    harness_conn_close(c);
    return cas;
}

/* Does a layer's copy match the row? Messages name what differs. */
static bool
layer_matches(const struct diff_case *dc, const char *layer,
              const struct item *it, const char *want)
{
    if (want == NULL || !it->hit) {
        if ((want == NULL) != !it->hit) {
            fprintf(stderr, "  %s: %s: want %s%s, have %s%s\n", dc->name, layer,
                    want ? "\"" : "absent", want ? want : "",
                    it->hit ? "\"" : "absent", it->hit ? it->val : "");
            return false;
        }
        return true;
    }
    if (strcmp(it->val, want) != 0 || it->flags != 0) {
        fprintf(stderr, "  %s: %s: want \"%s\" f0, have \"%s\" f%u\n", dc->name,
                layer, want, it->val, it->flags);
        return false;
    }
    if (dc->ttl != 0 &&
        (dc->ttl < 0 ? it->ttl != -1
                     : it->ttl > dc->ttl || it->ttl < dc->ttl - 1)) {
        fprintf(stderr, "  %s: %s: want ttl %ld, have %ld\n", dc->name, layer,
                dc->ttl, it->ttl);
        return false;
    }
    return true;
}

/* Run one row; true when the reply and both layers match. */
static bool
diff_run(struct l1l2 *t, struct harness_conn *c, const struct diff_case *dc)
{
    char key[64], req[512], want[512];
    uint64_t cas = 0;
    struct item i1, i2;
    bool ok;

    snprintf(key, sizeof(key), "diff:%s", dc->name);
    put_layer(t->l1.port, key, dc->l1);
    put_layer(t->l2.port, key, dc->l2);
    if (t->l2b.pid > 0) {
        put_layer(t->l2b.port, key, dc->l2);
    }
    if (dc->cas != CAS_NONE) {
        cas = l2_cas(t->l2.port, key) + (dc->cas == CAS_BAD ? 1000 : 0);
    }
    expand(req, sizeof(req), dc->req, key, cas);
    expand(want, sizeof(want), dc->reply, key, cas);
    ok = harness_roundtrip(c, req, want);
    if (!ok) {
        fprintf(stderr, "  %s: reply differs (above)\n", dc->name);
    }
    read_layer(t->l1.port, key, &i1);
    read_layer(t->l2.port, key, &i2);
    ok = layer_matches(dc, "L1", &i1, dc->l1_after) && ok;
    ok = layer_matches(dc, "L2", &i2, dc->l2_after) && ok;
    if (t->l2b.pid > 0 && !(dc->cas != CAS_NONE)) {
        /* the replica took every write L2 took (a cas goes to L2 only) */
        read_layer(t->l2b.port, key, &i2);
        ok = layer_matches(dc, "L2b", &i2, dc->l2_after) && ok;
    }
    return ok;
}

static void
test_differential(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    struct harness_conn *cb = t->batch_port ? conn(t->batch_port) : NULL;
    size_t n = sizeof(diff_cases) / sizeof(diff_cases[0]), good = 0, run = 0;

    for (size_t i = 0; i < n; i++) {
        const struct diff_case *dc = &diff_cases[i];

        if (dc->batch && cb == NULL) {
            continue; /* routes: no l1l2batch listener */
        }
        good += diff_run(t, dc->batch ? cb : c, dc);
        run++;
    }
    printf("    differential: %zu/%zu rows match the semantics table%s\n", good,
           run, t->l2b.pid > 0 ? " (l1l2 route, L2 all_sync)" : "");
    /* flush_all: both layers, every key */
    put_layer(t->l1.port, "diff:flush", "val");
    put_layer(t->l2.port, "diff:flush", "val");
    assert_true(harness_roundtrip(c, "flush_all\r\n", "OK\r\n"));
    {
        struct item i1, i2;

        read_layer(t->l1.port, "diff:flush", &i1);
        read_layer(t->l2.port, "diff:flush", &i2);
        assert_false(i1.hit);
        assert_false(i2.hit);
    }
    harness_conn_close(cb);
    harness_conn_close(c);
    assert_int_equal(good, run);
    assert_true(run >= (t->batch_port ? n : n / 2));
}

/* A get line over keys in different layers, and one pipeline touching one
 * key many times (the phases must not reorder it). */
static void
test_multi_and_pipeline(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    struct item i1, i2;

    put_layer(t->l1.port, "mk:1", "L1");
    put_layer(t->l2.port, "mk:1", "L2");
    put_layer(t->l2.port, "mk:2", "two");
    assert_true(harness_roundtrip(c, "get mk:1 mk:2 mk:3 mk:2 mk:1\r\n",
                                  "VALUE mk:1 0 2\r\nL1\r\n"
                                  "VALUE mk:2 0 3\r\ntwo\r\n"
                                  "VALUE mk:2 0 3\r\ntwo\r\n"
                                  "VALUE mk:1 0 2\r\nL1\r\nEND\r\n"));
    read_layer(t->l1.port, "mk:2", &i1);
    assert_true(i1.hit);
    assert_string_equal(i1.val, "two");
    read_layer(t->l1.port, "mk:3", &i1);
    assert_false(i1.hit);
    /* a meta write with a base64 key drops L1's copy of the decoded key */
    put_layer(t->l1.port, "b64key", "old");
    put_layer(t->l2.port, "b64key", "old");
    assert_true(harness_roundtrip(c, "ms YjY0a2V5 3 b\r\nnew\r\n", "HD\r\n"));
    read_layer(t->l1.port, "b64key", &i1);
    read_layer(t->l2.port, "b64key", &i2);
    assert_false(i1.hit);
    assert_true(i2.hit);
    assert_string_equal(i2.val, "new");

    assert_true(harness_roundtrip(c,
                                  "set p 0 0 2\r\nv1\r\nget p\r\n"
                                  "set p 0 0 2\r\nv2\r\nappend p 0 0 1\r\n"
                                  "+\r\nget p\r\nincr p 1\r\n"
                                  "delete p\r\nget p\r\n"
                                  "add p 0 0 2\r\nv3\r\nget p\r\n",
                                  "STORED\r\nVALUE p 0 2\r\nv1\r\nEND\r\n"
                                  "STORED\r\nSTORED\r\n"
                                  "VALUE p 0 3\r\nv2+\r\nEND\r\n"
                                  "CLIENT_ERROR cannot increment or "
                                  "decrement non-numeric value\r\n"
                                  "DELETED\r\nEND\r\n"
                                  "STORED\r\nVALUE p 0 2\r\nv3\r\nEND\r\n"));
    read_layer(t->l1.port, "p", &i1);
    read_layer(t->l2.port, "p", &i2);
    assert_true(i1.hit && i2.hit);
    assert_string_equal(i1.val, "v3");
    assert_string_equal(i2.val, "v3");
    harness_conn_close(c);
}

/* L1 refuses a value L2 takes (L1 -I 512k): L1's old copy is deleted and
 * the client still hears STORED; reads come from L2. */
static void
test_l1_set_fails(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    struct harness_conn *cb = t->batch_port ? conn(t->batch_port) : NULL;
    size_t big = 600 * 1000, len;
    char *req = malloc(big + 64), *want = malloc(big + 64), *val;
    struct item it;

    assert_non_null(req);
    assert_non_null(want);
    for (int b = 0; b < (cb ? 2 : 1); b++) { /* l1l2, l1l2batch */
        const char *key = b == 0 ? "big" : "bigbatch";

        assert_true(harness_roundtrip(b ? cb : c, "set x 0 0 1\r\nx\r\n",
                                      "STORED\r\n")); /* warm sockets */
        put_layer(t->l1.port, key, "old");
        put_layer(t->l2.port, key, "old");
        len = (size_t)snprintf(req, 64, "set %s 0 0 %zu\r\n", key, big);
        val = req + len;
        memset(val, 'b', big);
        memcpy(val + big, "\r\n", 2);
        assert_int_equal(harness_send(b ? cb : c, req, len + big + 2), 0);
        assert_true(harness_expect(b ? cb : c, "STORED\r\n"));
        read_layer(t->l1.port, key, &it);
        assert_false(it.hit);
        /* L2 holds it: the get through riven answers it (the fill fails) */
        len = (size_t)snprintf(want, 64, "VALUE %s 0 %zu\r\n", key, big);
        memcpy(want + len, val, big);
        memcpy(want + len + big, "\r\nEND\r\n", 8);
        snprintf(req, 64, "get %s\r\n", key);
        assert_true(harness_roundtrip(c, req, want));
        read_layer(t->l1.port, key, &it);
        assert_false(it.hit);
    }
    free(req);
    free(want);
    harness_conn_close(cb);
    harness_conn_close(c);
}

/* ---- 5. key locks: 32 threads, 10 keys --------------------------------- */

struct worker {
    int rv_port;
    int l1_port;
    unsigned id;
    int64_t deadline;
    uint64_t sets, gets, evicts;
    uint64_t bad;   /* unexpected replies (printed once) */
    uint64_t fatal; /* connection failures */
};

static const char *
conc_key(unsigned i)
{
    static const char *const keys[CONC_KEYS] = {"lk:0", "lk:1", "lk:2", "lk:3",
                                                "lk:4", "lk:5", "lk:6", "lk:7",
                                                "lk:8", "lk:9"};

    return keys[i % CONC_KEYS];
}

/* A get reply must be one value of ours for key. */
static bool
conc_reply_ok(const char *r, size_t rl, const char *key)
{
    char hdr[64];
    unsigned long n;
    const char *p;
    int hl = snprintf(hdr, sizeof(hdr), "VALUE %s 0 ", key);

    if (rl < (size_t)hl || memcmp(r, hdr, (size_t)hl) != 0) {
        return false;
    }
    n = strtoul(r + hl, NULL, 10);
    p = strstr(r, "\r\n");
    return p != NULL && (size_t)(p + 2 - r) + n + 7 == rl && p[2] == 't' &&
           memcmp(p + 2 + n, "\r\nEND\r\n", 7) == 0;
}

static void *
worker_run(void *arg)
{
    struct worker *w = arg;
    struct harness_conn *c = harness_conn_open(w->rv_port, 2000);
    struct harness_conn *d = harness_conn_open(w->l1_port, 2000);
    unsigned seed = w->id * 7919u + 1;
    bool dumped = false;

    if (c == NULL || d == NULL) {
        w->fatal++;
        goto out;
    }
    for (uint64_t seq = 0; harness_now_ms() < w->deadline; seq++) {
        unsigned r = (unsigned)rand_r(&seed);
        const char *key = conc_key(r);
        unsigned op = (r >> 8) % 20;
        char req[256], *reply;
        size_t rl = 0;

        if (op < 10) { /* set, of a varying length */
            char val[96];
            int vl = snprintf(val, sizeof(val), "t%02u-%06llu-%.*s", w->id,
                              (unsigned long long)seq, (int)((r >> 16) % 40),
                              "0123456789abcdefghijklmnopqrstuvwxyzABCD");

            snprintf(req, sizeof(req), "set %s 0 0 %d\r\n%s\r\n", key, vl, val);
            if (harness_sends(c, req) != 0 ||
                (reply = harness_recv_until(c, "\r\n", 2, 5000, &rl)) == NULL) {
                w->fatal++;
                break;
            }
            w->bad += strcmp(reply, "STORED\r\n") != 0;
            w->sets++;
        } else if (op < 19) { /* get: L1 hit, or L2 and a fill */
            snprintf(req, sizeof(req), "get %s\r\n", key);
            if (harness_sends(c, req) != 0 ||
                (reply = harness_recv_until(c, "END\r\n", 5, 5000, &rl)) ==
                    NULL) {
                w->fatal++;
                break;
            }
            w->bad += !conc_reply_ok(reply, rl, key);
            w->gets++;
        } else { /* an L1 eviction, so gets fill */
            snprintf(req, sizeof(req), "delete %s\r\n", key);
            if (harness_sends(d, req) != 0 ||
                (reply = harness_recv_until(d, "\r\n", 2, 5000, &rl)) == NULL) {
                w->fatal++;
                break;
            }
            w->evicts++;
        }
        if (w->bad > 0 && !dumped) {
            harness_dump("integ_l1l2: unexpected reply", reply, rl, 200);
            dumped = true;
        }
        free(reply);
    }
out:
    harness_conn_close(c);
    harness_conn_close(d);
    return NULL;
}

static void
test_key_locks(void **state)
{
    struct l1l2 *t = fixture(state);
    struct worker w[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    uint64_t sets = 0, gets = 0, evicts = 0, bad = 0, fatal = 0;
    int64_t t0 = harness_now_ms();
    int in_l1 = 0, equal = 0, in_l2 = 0, served = 0;
    struct harness_conn *c = conn(t->rv.port);

    for (unsigned k = 0; k < CONC_KEYS; k++) {
        char req[64];

        snprintf(req, sizeof(req), "set %s 0 0 2\r\nt-\r\n", conc_key(k));
        assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    }
    for (unsigned i = 0; i < CONC_THREADS; i++) {
        w[i] = (struct worker){.rv_port = t->rv.port,
                               .l1_port = t->l1.port,
                               .id = i,
                               .deadline = t0 + CONC_MS};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
        sets += w[i].sets;
        gets += w[i].gets;
        evicts += w[i].evicts;
        bad += w[i].bad;
        fatal += w[i].fatal;
    }
    for (unsigned k = 0; k < CONC_KEYS; k++) {
        struct item i1, i2;
        char req[64], want[VAL_MAX + 64];

        read_layer(t->l1.port, conc_key(k), &i1);
        read_layer(t->l2.port, conc_key(k), &i2);
        in_l2 += i2.hit;
        in_l1 += i1.hit;
        if (i1.hit && i2.hit && strcmp(i1.val, i2.val) == 0 &&
            i1.flags == i2.flags) {
            equal++;
        } else if (i1.hit) {
            fprintf(stderr, "  %s: stale L1 \"%s\", L2 \"%s\"\n", conc_key(k),
                    i1.val, i2.val);
        }
        /* and riven serves L2's value */
        snprintf(req, sizeof(req), "get %s\r\n", conc_key(k));
        snprintf(want, sizeof(want), "VALUE %s 0 %zu\r\n%s\r\nEND\r\n",
                 conc_key(k), i2.n, i2.val);
        served += harness_roundtrip(c, req, want);
    }
    printf("    key locks: %d threads, %llu sets %llu gets %llu L1 "
           "evictions in %lld ms; %d/%d keys in L1, all equal to L2: %d\n",
           CONC_THREADS, (unsigned long long)sets, (unsigned long long)gets,
           (unsigned long long)evicts, (long long)(harness_now_ms() - t0),
           in_l1, CONC_KEYS, equal == in_l1);
    harness_conn_close(c);
    assert_int_equal(fatal, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(in_l2, CONC_KEYS);
    assert_int_equal(equal, in_l1);
    assert_int_equal(served, CONC_KEYS);
    assert_true(sets > 0 && gets > 0);
}

/* ---- 6. metrics -------------------------------------------------------- */

static const char *const layer_stats[] = {
    "l1_hits", "l1_misses", "l2_hits", "l2_misses", "l1_fills", "l2_errors",
};
#define NLAYER_STATS (sizeof(layer_stats) / sizeof(layer_stats[0]))

static void
proxy_stats(int port, uint64_t *out)
{
    for (size_t i = 0; i < NLAYER_STATS; i++) {
        out[i] = stat_of(port, "stats proxy\r\n", layer_stats[i]);
    }
}

static void
test_metrics(void **state)
{
    struct l1l2 *t = fixture(state);
    struct harness_conn *c = conn(t->rv.port);
    uint64_t before[NLAYER_STATS], after[NLAYER_STATS];
    /* l1_hits l1_misses l2_hits l2_misses l1_fills l2_errors */
    static const uint64_t want[NLAYER_STATS] = {2, 2, 1, 1, 1, 1};
    int diffs = 0;

    proxy_stats(t->rv.port, before);
    assert_true(harness_roundtrip(c, "set m 0 0 1\r\nx\r\n", "STORED\r\n"));
    /* L1 hit */
    assert_true(
        harness_roundtrip(c, "get m\r\n", "VALUE m 0 1\r\nx\r\nEND\r\n"));
    /* L1 miss, L2 hit, fill */
    put_layer(t->l1.port, "m", NULL);
    assert_true(
        harness_roundtrip(c, "get m\r\n", "VALUE m 0 1\r\nx\r\nEND\r\n"));
    /* L1 hit (the fill) */
    assert_true(
        harness_roundtrip(c, "get m\r\n", "VALUE m 0 1\r\nx\r\nEND\r\n"));
    /* L1 miss, L2 miss */
    assert_true(harness_roundtrip(c, "get nothere\r\n", "END\r\n"));
    /* an L2 error */
    harness_proc_kill(&t->l2);
    assert_true(harness_roundtrip(c, "set m 0 0 1\r\ny\r\n", UNAVAILABLE));
    proxy_stats(t->rv.port, after);
    for (size_t i = 0; i < NLAYER_STATS; i++) {
        printf("    %s +%llu (want +%llu)\n", layer_stats[i],
               (unsigned long long)(after[i] - before[i]),
               (unsigned long long)want[i]);
        diffs += after[i] - before[i] != want[i];
    }
    harness_conn_close(c);
    assert_int_equal(diffs, 0);
}

/* ---- 7. the README's example configuration ----------------------------- */

static void
test_example_config(void **state)
{
    struct harness_proc p;
    const char *argv[] = {harness_riven_bin(), "-t", "-c",
                          "conf/l1l2-example.yml", NULL};
    int st;

    (void)state;
    if (harness_direct()) {
        skip();
    }
    assert_int_equal(access("conf/l1l2-example.yml", R_OK), 0);
    assert_int_equal(harness_spawn(&p, "riven", argv), 0);
    st = harness_proc_wait(&p, 5000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bulk_30mb, setup_cli, teardown),
        cmocka_unit_test_setup_teardown(test_refill_ttl, setup_cli, teardown),
        cmocka_unit_test_setup_teardown(test_refill_long_ttl, setup_cli,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l2_down, setup_cli, teardown),
        cmocka_unit_test_setup_teardown(test_differential, setup_cli, teardown),
        cmocka_unit_test_setup_teardown(test_multi_and_pipeline, setup_cli,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l1_set_fails, setup_small_l1,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_locks, setup_yaml, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup_cli, teardown),
        cmocka_unit_test(test_example_config),
        /* the same rules as an l1l2 route over an all_sync L2 */
        cmocka_unit_test_setup_teardown(test_refill_ttl, setup_route, teardown),
        cmocka_unit_test_setup_teardown(test_refill_long_ttl, setup_route,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l2_down, setup_route, teardown),
        cmocka_unit_test_setup_teardown(test_differential, setup_route,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_multi_and_pipeline, setup_route,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l1_set_fails, setup_route_small_l1,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_locks, setup_route, teardown),
        /* issue 15: a chunked L1, as Rend's chunked L1 */
        cmocka_unit_test_setup_teardown(test_bulk_30mb, setup_chunked,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bulk_30mb, setup_route_chunked,
                                        teardown),
    };

    if (getenv("INTEG_L1L2_ONLY") != NULL) { /* one case, to debug it */
        cmocka_set_test_filter(getenv("INTEG_L1L2_ONLY"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
