/*
 * integ_batched: a batched pool (backend: {mode: batched}, --batched)
 * against real memcached processes, exact bytes: the basic commands in
 * the three protocols, pipelining and a multi-get over three servers in
 * request order, 200 clients each reading only its own values, a killed
 * backend under 200 clients (each gets SERVER_ERROR for its own
 * requests, never another client's reply, and service resumes after a
 * restart), a client that stops reading beside busy ones, riven's fd
 * count with 1000 clients, an l1l2 orca over a batched L1, reloads
 * under load between batched and per-connection modes, and one stalled
 * shared connection counted as one failure of its server.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>
#include <cmocka.h>

#include "binpkt.h"
#include "harness.h"

#define T_MS 5000

static struct harness_proc mc[3], rv;

static void
start_riven(const char *const *extra)
{
    assert_int_equal(harness_riven_start(&rv, mc[0].port, NULL, 0, extra), 0);
}

static int
setup(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        if (harness_memcached_start(&mc[i], 0, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    harness_proc_stop(&rv, T_MS);
    for (int i = 0; i < 3; i++) {
        harness_proc_stop(&mc[i], T_MS);
    }
    return 0;
}

/* Write riven's config to path: listen on lp, the three memcacheds as
 * the pool, its backend: as given. */
static void
write_conf(const char *path, int lp, const char *backend)
{
    char tmp[96];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nmetrics: {listen: off}\n"
            "pool:\n  servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\", "
            "\"127.0.0.1:%d\"]\n  backend: %s\n"
            /* these tests count errors, not time: a loaded machine's
             * stall of a second must not fail a request */
            "timeouts: {request_ms: 10000}\n",
            lp, mc[0].port, mc[1].port, mc[2].port, backend);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0); /* atomic for the reader */
}

static char three_path[64];

/* riven, batched, over the three memcacheds. */
static void
start_three(void)
{
    int port = harness_free_port();

    snprintf(three_path, sizeof(three_path), "/tmp/riven-batched-3-%d.yml",
             (int)getpid());
    write_conf(three_path, port, "{mode: batched}");
    assert_int_equal(harness_riven_start(&rv, 0, three_path, port, NULL), 0);
    unlink(three_path); /* read at start; no reload here */
}

/* riven over mc[0] alone through one shared connection, from a file:
 * top and pool are more YAML lines at the top level and in pool:. */
static void
start_one_shared(const char *top, const char *pool)
{
    char cfg[] = "/tmp/riven-batched-XXXXXX.yml";
    int fd = mkstemps(cfg, 4), lp = harness_free_port();
    FILE *f = fdopen(fd, "w");

    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nmetrics: {listen: off}\n%s"
            "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
            "  backend: {mode: batched, connections: 1}\n%s",
            lp, top, mc[0].port, pool);
    fclose(f);
    assert_int_equal(harness_riven_start(&rv, 0, cfg, lp, NULL), 0);
    unlink(cfg); /* read at start; no reload here */
}

static void
test_basic(void **state)
{
    const char *one[] = {"--batched", NULL};
    struct harness_conn *c;

    (void)state;
    start_riven(one);
    c = harness_conn_open(rv.port, T_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set b:1 5 0 3\r\nabc\r\n", "STORED\r\n"));
    assert_true(
        harness_roundtrip(c, "get b:1\r\n", "VALUE b:1 5 3\r\nabc\r\nEND\r\n"));
    assert_true(
        harness_roundtrip(c, "add b:1 0 0 1\r\nx\r\n", "NOT_STORED\r\n"));
    assert_true(
        harness_roundtrip(c, "append b:1 0 0 2\r\nde\r\n", "STORED\r\n"));
    assert_true(harness_roundtrip(c, "get b:1 b:none\r\n",
                                  "VALUE b:1 5 5\r\nabcde\r\nEND\r\n"));
    assert_true(harness_roundtrip(c, "set n 0 0 2\r\n41\r\n", "STORED\r\n"));
    assert_true(harness_roundtrip(c, "incr n 1\r\n", "42\r\n"));
    assert_true(harness_roundtrip(c, "touch n 100\r\n", "TOUCHED\r\n"));
    assert_true(harness_roundtrip(c, "delete n\r\n", "DELETED\r\n"));
    assert_true(harness_roundtrip(c, "delete n\r\n", "NOT_FOUND\r\n"));
    /* meta */
    assert_true(harness_roundtrip(c, "ms m:1 2 T0 F7\r\nhi\r\n", "HD\r\n"));
    assert_true(harness_roundtrip(c, "mg m:1 v f\r\n", "VA 2 f7\r\nhi\r\n"));
    assert_true(harness_roundtrip(c, "mg m:2 v\r\n", "EN\r\n"));
    assert_true(harness_roundtrip(c, "md m:1\r\n", "HD\r\n"));
    assert_true(harness_roundtrip(c, "mn\r\n", "MN\r\n"));
    /* noreply, then a request that must come back alone */
    assert_true(harness_roundtrip(c, "set q 0 0 1 noreply\r\nz\r\nget q\r\n",
                                  "VALUE q 0 1\r\nz\r\nEND\r\n"));
    harness_conn_close(c);
    /* binary: set then get */
    c = harness_conn_open(rv.port, T_MS);
    assert_non_null(c);
    {
        static const uint8_t ext[8] = {0, 0, 0, 9, 0, 0, 0, 0};
        uint8_t req[256];
        size_t n = binpkt_request(req, 0x01, "bk", ext, 8, "val", 3, 11);
        char *got;

        assert_int_equal(harness_send(c, req, n), 0);
        got = harness_recv_n(c, 24, T_MS);
        assert_non_null(got);
        assert_int_equal((uint8_t)got[0], 0x81);
        assert_int_equal(got[6], 0);
        assert_int_equal(got[7], 0); /* status: no error */
        free(got);
        n = binpkt_request(req, 0x00, "bk", NULL, 0, NULL, 0, 12);
        assert_int_equal(harness_send(c, req, n), 0);
        got = harness_recv_n(c, 24 + 4 + 3, T_MS); /* flags and value */
        assert_non_null(got);
        assert_int_equal((uint8_t)got[0], 0x81);
        assert_int_equal(got[7], 0);
        assert_memory_equal(got + 24, "\0\0\0\x09val", 7);
        free(got);
    }
    harness_conn_close(c);
    harness_proc_stop(&rv, T_MS);
}

/* 100 keys over three servers, set pipelined in one write, then one get
 * line for all of them and 100 pipelined single gets: order kept. */
static void
test_pipeline_three(void **state)
{
    struct harness_conn *c;
    char *req = malloc(65536), *want = malloc(65536), *line = malloc(8192);
    size_t rl = 0, wl = 0, ll = 4;

    (void)state;
    assert_non_null(req);
    start_three();
    c = harness_conn_open(rv.port, T_MS);
    assert_non_null(c);
    memcpy(line, "get ", 4);
    for (int i = 0; i < 100; i++) {
        /* "v" and i in i % 7 + 3 digits: i % 7 + 4 bytes */
        rl += (size_t)sprintf(req + rl, "set p:%d %d 0 %d\r\nv%0*d\r\n", i, i,
                              i % 7 + 4, i % 7 + 3, i);
        wl += (size_t)sprintf(want + wl, "STORED\r\n");
        ll += (size_t)sprintf(line + ll, "p:%d ", i);
    }
    assert_int_equal(harness_send(c, req, rl), 0);
    assert_true(harness_expect_n(c, want, wl, T_MS));
    line[ll - 1] = '\r';
    line[ll++] = '\n';
    rl = wl = 0;
    memcpy(req, line, ll);
    rl = ll;
    for (int i = 0; i < 100; i++) {
        wl += (size_t)sprintf(want + wl, "VALUE p:%d %d %d\r\nv%0*d\r\n", i, i,
                              i % 7 + 4, i % 7 + 3, i);
    }
    wl += (size_t)sprintf(want + wl, "END\r\n");
    for (int i = 99; i >= 0; i--) {
        rl += (size_t)sprintf(req + rl, "get p:%d\r\n", i);
        wl += (size_t)sprintf(want + wl, "VALUE p:%d %d %d\r\nv%0*d\r\nEND\r\n",
                              i, i, i % 7 + 4, i % 7 + 3, i);
    }
    assert_int_equal(harness_send(c, req, rl), 0);
    assert_true(harness_expect_n(c, want, wl, T_MS));
    /* each memcached holds some of them */
    for (int s = 0; s < 3; s++) {
        struct harness_conn *d = harness_conn_open(mc[s].port, T_MS);
        size_t n = 0;
        char *st;

        assert_non_null(d);
        assert_int_equal(harness_sends(d, "stats\r\n"), 0);
        st = harness_recv_until(d, "END\r\n", 5, T_MS, &n);
        assert_non_null(st);
        assert_null(strstr(st, "STAT curr_items 0\r\n"));
        free(st);
        harness_conn_close(d);
    }
    harness_conn_close(c);
    harness_proc_stop(&rv, T_MS);
    free(req);
    free(want);
    free(line);
}

/* ---- many clients ---- */

static _Atomic long n_ok, n_err, n_foreign, n_other;
static _Atomic int stop_flag;
static pthread_barrier_t bar;

struct wk {
    int id;
    bool verify_resume; /* the last requests after the restart succeed */
    bool last_ok;
    long lat_us[4096];
    size_t nlat;
};

/* A SERVER_ERROR line riven sends when a backend dies or stalls (not
 * "backend error": that would say a reply was misframed). */
static bool
down_error(const char *line)
{
    return strcmp(line, "SERVER_ERROR backend unavailable\r\n") == 0 ||
           strcmp(line, "SERVER_ERROR backend timeout\r\n") == 0;
}

/* One set and one get of the worker's own key; returns 1 ok, 0 a
 * SERVER_ERROR for a dead or stalled backend, -1 something else
 * (counted). */
static int
one_round(struct harness_conn *c, struct wk *w, int iter)
{
    char req[256], val[64], want[256], key[32];
    size_t n = 0;
    int vl = snprintf(val, sizeof(val), "w%d-i%d", w->id, iter);
    char *got;
    int64_t t0 = harness_now_us();
    int rc = 1;

    snprintf(key, sizeof(key), "c:%d", w->id);
    snprintf(req, sizeof(req), "set %s %d 0 %d\r\n%s\r\nget %s\r\n", key, w->id,
             vl, val, key);
    if (harness_sends(c, req) != 0) {
        return -1;
    }
    got = harness_recv_until(c, "\r\n", 2, T_MS, &n);
    if (got == NULL) {
        atomic_fetch_add(&n_other, 1);
        return -1;
    }
    if (down_error(got)) {
        rc = 0;
    } else if (strcmp(got, "STORED\r\n") != 0) {
        atomic_fetch_add(&n_other, 1);
        rc = -1;
    }
    free(got);
    got = harness_recv_until(c, "\r\n", 2, T_MS, &n);
    if (got == NULL) {
        atomic_fetch_add(&n_other, 1);
        return -1;
    }
    if (down_error(got) || strcmp(got, "END\r\n") == 0) {
        rc = 0;
    } else if (strncmp(got, "SERVER_ERROR ", 13) == 0) {
        atomic_fetch_add(&n_other, 1);
        fprintf(stderr, "worker %d: %s", w->id, got);
        free(got);
        return -1;
    } else {
        snprintf(want, sizeof(want), "VALUE %s %d %d\r\n", key, w->id, vl);
        if (strcmp(got, want) != 0) {
            atomic_fetch_add(&n_foreign, 1);
            fprintf(stderr, "worker %d: foreign reply %s", w->id, got);
            free(got);
            return -1;
        }
        free(got);
        got = harness_recv_n(c, (size_t)vl + 7, T_MS);
        if (got == NULL || memcmp(got, val, (size_t)vl) != 0 ||
            memcmp(got + vl, "\r\nEND\r\n", 7) != 0) {
            atomic_fetch_add(&n_foreign, 1);
            free(got);
            return -1;
        }
    }
    free(got);
    if (w->nlat < 4096) {
        w->lat_us[w->nlat++] = (long)(harness_now_us() - t0);
    }
    return rc;
}

static void *
worker(void *arg)
{
    struct wk *w = arg;
    struct harness_conn *c = harness_conn_open(rv.port, T_MS);

    pthread_barrier_wait(&bar);
    for (int i = 0; c != NULL && !atomic_load(&stop_flag); i++) {
        int r = one_round(c, w, i);

        w->last_ok = r == 1;
        atomic_fetch_add(r == 1 ? &n_ok : &n_err, 1);
        if (r < 0) {
            harness_conn_close(c);
            c = harness_conn_open(rv.port, T_MS);
        }
    }
    harness_conn_close(c);
    return NULL;
}

static int
run_workers(struct wk *w, int n, int ms, void (*during)(void))
{
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    pthread_attr_t attr;

    atomic_store(&stop_flag, 0);
    atomic_store(&n_ok, 0);
    atomic_store(&n_err, 0);
    atomic_store(&n_foreign, 0);
    atomic_store(&n_other, 0);
    pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        w[i].nlat = 0;
        assert_int_equal(pthread_create(&t[i], &attr, worker, &w[i]), 0);
    }
    pthread_barrier_wait(&bar);
    if (during != NULL) {
        during();
    } else {
        usleep((useconds_t)ms * 1000);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&bar);
    free(t);
    return n;
}

static int
nclients(int want, int per)
{
    long nofile = harness_nofile_limit();

    if (nofile > 0 && nofile < (long)want * per + 64) {
        printf("    ulimit -n %ld: %d clients instead of %d\n", nofile,
               (int)((nofile - 64) / per), want);
        return (int)((nofile - 64) / per);
    }
    return want;
}

static void
test_200_own_values(void **state)
{
    int n = nclients(200, 1);
    struct wk *w = calloc((size_t)n, sizeof(*w));

    (void)state;
    start_three();
    run_workers(w, n, 2000, NULL);
    printf(
        "    %d clients: %ld rounds ok, %ld failed, %ld foreign, %ld other\n",
        n, atomic_load(&n_ok), atomic_load(&n_err), atomic_load(&n_foreign),
        atomic_load(&n_other));
    assert_int_equal(atomic_load(&n_foreign), 0);
    assert_int_equal(atomic_load(&n_other), 0);
    assert_int_equal(atomic_load(&n_err), 0);
    assert_true(atomic_load(&n_ok) >= n);
    harness_proc_stop(&rv, T_MS);
    free(w);
}

static void
kill_and_restart(void)
{
    int port = mc[0].port;

    usleep(700 * 1000);
    harness_proc_kill(&mc[0]);
    usleep(1000 * 1000);
    assert_int_equal(harness_memcached_start(&mc[0], port, NULL), 0);
    usleep(3000 * 1000); /* retry_timeout 1 s, then a probe */
}

static void
test_kill_backend(void **state)
{
    int n = nclients(200, 1);
    struct wk *w = calloc((size_t)n, sizeof(*w));
    const char *one[] = {"--batched", NULL};
    int resumed = 0;

    (void)state;
    start_riven(one);
    run_workers(w, n, 0, kill_and_restart);
    for (int i = 0; i < n; i++) {
        resumed += w[i].last_ok;
    }
    printf("    %d clients: %ld rounds ok, %ld SERVER_ERROR, %ld foreign, "
           "%ld other, %d ended ok\n",
           n, atomic_load(&n_ok), atomic_load(&n_err), atomic_load(&n_foreign),
           atomic_load(&n_other), resumed);
    assert_int_equal(atomic_load(&n_foreign), 0);
    assert_int_equal(atomic_load(&n_other), 0);
    assert_true(atomic_load(&n_err) > 0);
    assert_int_equal(resumed, n);
    assert_true(harness_proc_alive(&rv));
    harness_proc_stop(&rv, T_MS);
    free(w);
}

static int
cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

static long
p99(struct wk *w, int n)
{
    size_t tot = 0, k = 0;
    long *all;
    long r;

    for (int i = 0; i < n; i++) {
        tot += w[i].nlat;
    }
    all = malloc(tot * sizeof(*all));
    for (int i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat_us, w[i].nlat * sizeof(long));
        k += w[i].nlat;
    }
    qsort(all, tot, sizeof(*all), cmp_long);
    r = tot ? all[tot * 99 / 100] : 0;
    free(all);
    return r;
}

static void
test_stalled_reader(void **state)
{
    struct wk *w = calloc(16, sizeof(*w));
    struct harness_conn *big, *stall;
    char *val = malloc(512 * 1024 + 64), *req = malloc(64 * 20);
    long base, with;
    size_t rl = 0;

    (void)state;
    /* one shared connection per server: the stalled client shares it */
    start_one_shared("", "");
    big = harness_conn_open(rv.port, T_MS);
    assert_non_null(big);
    memset(val, 'x', 512 * 1024);
    snprintf(req, 64, "set big 0 0 %d\r\n", 512 * 1024);
    assert_int_equal(harness_sends(big, req), 0);
    assert_int_equal(harness_send(big, val, 512 * 1024), 0);
    assert_true(harness_roundtrip(big, "\r\n", "STORED\r\n"));
    run_workers(w, 16, 1500, NULL);
    base = p99(w, 16);
    stall = harness_conn_open(rv.port, T_MS);
    assert_non_null(stall);
    for (int i = 0; i < 20; i++) {
        rl += (size_t)sprintf(req + rl, "get big\r\n");
    }
    assert_int_equal(harness_send(stall, req, rl), 0); /* never read */
    usleep(200 * 1000);
    run_workers(w, 16, 1500, NULL);
    with = p99(w, 16);
    printf("    p99 of 16 clients: %ld us alone, %ld us beside a client "
           "that stopped reading 10 MB of replies (%.2fx)\n",
           base, with, (double)with / (double)(base > 0 ? base : 1));
    assert_int_equal(atomic_load(&n_foreign), 0);
    assert_int_equal(atomic_load(&n_err), 0);
    assert_true(with <= 2 * base + 2000); /* 2x, 2 ms of a 2-core box's noise */
    harness_conn_close(stall);
    harness_conn_close(big);
    harness_proc_stop(&rv, T_MS);
    free(val);
    free(req);
    free(w);
}

/* Read c until riven closes it (EOF or reset) within timeout_ms: the
 * bytes that came, or -1 on a timeout. */
static ssize_t
drain_to_eof(struct harness_conn *c, int timeout_ms)
{
    size_t total = c->len;
    char buf[65536];

    c->len = 0;
    for (int64_t end = harness_now_ms() + timeout_ms;;) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int64_t left = end - harness_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            return -1;
        }
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return (ssize_t)total;
        }
        if (n < 0 && errno != EINTR) {
            return -1;
        }
        total += n > 0 ? (size_t)n : 0;
    }
}

/* The most a TCP send buffer grows to (tcp_wmem's third field). */
static size_t
wmem_max(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    unsigned long lo, def, max = 4u << 20;

    if (f != NULL) {
        if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3) {
            max = 4u << 20;
        }
        fclose(f);
    }
    return max;
}

/* A client that stops reading after one get line of a 768 KiB value's
 * key, repeated to 2 MiB more than its socket takes (the kernel's send
 * buffer grows to tcp_wmem's max, 4 MiB here), so the I/O thread that
 * answered it (the async path: a plain client's whole batch, every key
 * within its client_max_buffer) writes the rest as the client drains it,
 * polling the client beside the shared socket. Its 16 neighbours on the same
 * shared connection keep their p99; reading at last, the client gets every byte
 * of its reply; another that never reads is cut off after
 * client_write_timeout_ms with part of it, and riven serves on. */
static void
test_stalled_async(void **state)
{
    const size_t vlen = 768 * 1024;
    size_t nkeys = wmem_max() / vlen + 3, glen = 3;
    struct wk *w = calloc(16, sizeof(*w));
    struct harness_conn *big, *stall, *cut;
    char *val = malloc(vlen), *get = malloc(4 * nkeys + 8), head[64];
    char top[128];
    long base, with, fds;
    int64_t t0, elapsed;
    ssize_t got;

    (void)state;
    memcpy(get, "get", 3);
    for (size_t i = 0; i < nkeys; i++) {
        glen += (size_t)sprintf(get + glen, " big");
    }
    memcpy(get + glen, "\r\n", 3);
    /* the line's keys in one batch: client_max_buffer over their sizes */
    snprintf(top, sizeof(top),
             "client_write_timeout_ms: 2500\nclient_max_buffer: %zu\n",
             (nkeys + 2) << 20);
    printf("    tcp_wmem max %zu: a get of %zu keys\n", wmem_max(), nkeys);
    start_one_shared(top, "");
    big = harness_conn_open(rv.port, T_MS);
    assert_non_null(big);
    memset(val, 'y', vlen);
    snprintf(head, sizeof(head), "set big 0 0 %zu\r\n", vlen);
    assert_int_equal(harness_sends(big, head), 0);
    assert_int_equal(harness_send(big, val, vlen), 0);
    assert_true(harness_roundtrip(big, "\r\n", "STORED\r\n"));
    run_workers(w, 16, 1000, NULL);
    base = p99(w, 16);
    stall = harness_conn_open(rv.port, T_MS);
    assert_non_null(stall);
    assert_int_equal(harness_sends(stall, get), 0);
    run_workers(w, 16, 1000, NULL);
    with = p99(w, 16);
    printf("    p99 of 16 clients: %ld us alone, %ld us beside a client "
           "that stopped reading a %zu KiB reply (%.2fx)\n",
           base, with, nkeys * vlen / 1024,
           (double)with / (double)(base > 0 ? base : 1));
    assert_int_equal(atomic_load(&n_foreign), 0);
    assert_int_equal(atomic_load(&n_err), 0);
    assert_true(with <= 2 * base + 2000); /* as test_stalled_reader */
    snprintf(head, sizeof(head), "VALUE big 0 %zu\r\n", vlen);
    for (size_t i = 0; i < nkeys; i++) {
        assert_true(harness_expect(stall, head));
        assert_true(harness_expect_n(stall, val, vlen, T_MS));
        assert_true(harness_expect(stall, "\r\n"));
    }
    assert_true(harness_expect(stall, "END\r\n"));
    assert_true(harness_roundtrip(stall, "get nope\r\n", "END\r\n"));
    fds = harness_proc_fds(rv.pid);
    cut = harness_conn_open(rv.port, T_MS);
    assert_non_null(cut);
    assert_true(harness_roundtrip(cut, "get nope\r\n", "END\r\n"));
    assert_int_equal(harness_proc_fds(rv.pid), fds + 1); /* accepted */
    t0 = harness_now_ms();
    assert_int_equal(harness_sends(cut, get), 0);
    /* not read meanwhile: riven closes its end when it cuts it off */
    while (harness_proc_fds(rv.pid) > fds &&
           harness_now_ms() < t0 + 2500 + T_MS) {
        usleep(20 * 1000);
    }
    elapsed = harness_now_ms() - t0;
    got = drain_to_eof(cut, T_MS);
    printf("    a client that never read: cut off after %lld ms, %zd of its "
           "%zu bytes reached it\n",
           (long long)elapsed, got, nkeys * (strlen(head) + vlen + 2) + 5);
    assert_int_equal(harness_proc_fds(rv.pid), fds);
    assert_true(elapsed >= 2500);
    assert_true(got >= 0 && (size_t)got < nkeys * vlen);
    assert_true(harness_roundtrip(big, "get nope\r\n", "END\r\n"));
    harness_conn_close(cut);
    harness_conn_close(stall);
    harness_conn_close(big);
    harness_proc_stop(&rv, T_MS);
    free(get);
    free(val);
    free(w);
}

static void
test_fd_count(void **state)
{
    int n = nclients(1000, 1);
    struct harness_conn **c = calloc((size_t)n, sizeof(*c));
    long before, after;

    (void)state;
    start_three();
    before = harness_proc_fds(rv.pid);
    for (int i = 0; i < n; i++) {
        char k[64];

        c[i] = harness_conn_open(rv.port, T_MS);
        assert_non_null(c[i]);
        snprintf(k, sizeof(k), "get fd:%d fd:%d:a fd:%d:b\r\n", i, i, i);
        assert_true(harness_roundtrip(c[i], k, "END\r\n"));
    }
    after = harness_proc_fds(rv.pid);
    printf("    riven fds: %ld idle, %ld with %d clients over 3 servers "
           "(%.3f per client)\n",
           before, after, n, (double)(after - before) / n);
    /* one per client, plus the default 1 shared connection per server,
     * each a socket and the eventfd that wakes its I/O thread (a
     * sanitizer's runtime may hold one of the idle count's fds and
     * close it meanwhile) */
    assert_true(after >= before + n - 1 && after <= before + n + 6);
    for (int i = 0; i < n; i++) {
        harness_conn_close(c[i]);
    }
    harness_proc_stop(&rv, T_MS);
    free(c);
}

/* A config file over the three memcacheds, listening on lp. */

static const char *const reload_modes[] = {
    "{mode: batched, connections: 2}",
    "{mode: batched, connections: 1, batch_max: 4}",
    "{mode: per_connection}",
    "{mode: batched, connections: 3}",
};
static char reload_path[64];
static int reload_port;
static _Atomic int reloads;
#define NELEMS_MODES (sizeof(reload_modes) / sizeof(reload_modes[0]))

/* Reload every 150 ms for 2.4 s, through every mode, ending batched. */
static void
reload_loop(void)
{
    for (int i = 1; i <= 16; i++) {
        usleep(150 * 1000);
        write_conf(reload_path, reload_port, reload_modes[i % NELEMS_MODES]);
        assert_int_equal(harness_proc_signal(&rv, SIGHUP), 0);
        atomic_fetch_add(&reloads, 1);
    }
    usleep(300 * 1000);
}

/* SIGHUP under 100 clients, switching between batched (with other
 * connection counts) and per-connection pools: every round answers its
 * own client, none fails, the old snapshots' I/O threads stop and their
 * sockets close, and riven exits cleanly (a sanitizer's report would
 * make the exit status non-zero). */
static void
test_reload(void **state)
{
    int n = nclients(100, 2);
    struct wk *w = calloc((size_t)n, sizeof(*w));
    long idle, after;
    int st;

    (void)state;
    snprintf(reload_path, sizeof(reload_path), "/tmp/riven-batched-%d.yml",
             (int)getpid());
    reload_port = harness_free_port();
    write_conf(reload_path, reload_port, reload_modes[0]);
    assert_int_equal(
        harness_riven_start(&rv, 0, reload_path, reload_port, NULL), 0);
    idle = harness_proc_fds(rv.pid);
    run_workers(w, n, 0, reload_loop);
    printf("    %d clients, %d reloads: %ld rounds ok, %ld failed, %ld "
           "foreign, %ld other\n",
           n, atomic_load(&reloads), atomic_load(&n_ok), atomic_load(&n_err),
           atomic_load(&n_foreign), atomic_load(&n_other));
    assert_int_equal(atomic_load(&n_foreign), 0);
    assert_int_equal(atomic_load(&n_other), 0);
    assert_int_equal(atomic_load(&n_err), 0);
    assert_true(atomic_load(&n_ok) >= n);
    /* the clients are gone: only the last snapshot's shared connections
     * (3 servers x 2 fds x 2 connections: 12) may stay open */
    {
        int64_t deadline = harness_now_ms() + T_MS;

        while ((after = harness_proc_fds(rv.pid)) > idle + 12 &&
               harness_now_ms() < deadline) {
            usleep(20 * 1000);
        }
    }
    printf("    riven fds: %ld at start, %ld after\n", idle, after);
    assert_true(after <= idle + 12);
    st = harness_proc_stop(&rv, T_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unlink(reload_path);
    free(w);
}

/* One stall of a shared connection is one failure of its server, however
 * many clients' requests it fails: 8 clients' gets on one connection to a
 * stopped memcached each time out, and the server, with failure_limit 3,
 * is not ejected (counted per client, 8 failures would have ejected it
 * for a minute). The gets stall at most twice: the first alone, the
 * others written together after it failed, as none is written while the
 * connection waits for a reply. */
static void
test_one_stall_one_failure(void **state)
{
    struct harness_conn *c[8], *d;

    (void)state;
    start_one_shared("timeouts: {request_ms: 1000}\n",
                     "  failure_limit: 3\n  retry_timeout_ms: 60000\n");
    d = harness_conn_open(rv.port, T_MS);
    assert_non_null(d);
    assert_true(harness_roundtrip(d, "set st:1 0 0 2\r\nok\r\n", "STORED\r\n"));
    for (int i = 0; i < 8; i++) {
        c[i] = harness_conn_open(rv.port, T_MS);
        assert_non_null(c[i]);
    }
    assert_int_equal(harness_proc_signal(&mc[0], SIGSTOP), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(harness_sends(c[i], "get st:1\r\n"), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_true(harness_expect(c[i], "SERVER_ERROR backend timeout\r\n"));
        harness_conn_close(c[i]);
    }
    assert_int_equal(harness_proc_signal(&mc[0], SIGCONT), 0);
    /* not ejected: the next get reaches memcached */
    assert_true(harness_roundtrip(d, "get st:1\r\n",
                                  "VALUE st:1 0 2\r\nok\r\nEND\r\n"));
    printf("    8 clients timed out on one shared connection; the server "
           "stayed in the pool\n");
    harness_conn_close(d);
    harness_proc_stop(&rv, T_MS);
}

static void
test_l1l2(void **state)
{
    char l2[32];
    const char *args[] = {"--batched", "--orca", "l1l2", "--l2", l2, NULL};
    struct harness_conn *c, *d;

    (void)state;
    snprintf(l2, sizeof(l2), "127.0.0.1:%d", mc[1].port);
    start_riven(args);
    c = harness_conn_open(rv.port, T_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set l:1 3 0 2\r\nok\r\n", "STORED\r\n"));
    assert_true(
        harness_roundtrip(c, "get l:1\r\n", "VALUE l:1 3 2\r\nok\r\nEND\r\n"));
    d = harness_conn_open(mc[1].port, T_MS); /* L2 has it */
    assert_true(
        harness_roundtrip(d, "get l:1\r\n", "VALUE l:1 3 2\r\nok\r\nEND\r\n"));
    assert_true(harness_roundtrip(d, "set l:2 4 0 1\r\nz\r\n", "STORED\r\n"));
    harness_conn_close(d);
    /* an L1 miss is filled from L2 */
    assert_true(
        harness_roundtrip(c, "get l:2\r\n", "VALUE l:2 4 1\r\nz\r\nEND\r\n"));
    d = harness_conn_open(mc[0].port, T_MS);
    assert_true(
        harness_roundtrip(d, "get l:2\r\n", "VALUE l:2 4 1\r\nz\r\nEND\r\n"));
    harness_conn_close(d);
    assert_true(harness_roundtrip(c, "delete l:1\r\n", "DELETED\r\n"));
    assert_true(harness_roundtrip(c, "get l:1\r\n", "END\r\n"));
    harness_conn_close(c);
    harness_proc_stop(&rv, T_MS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_pipeline_three),
        cmocka_unit_test(test_200_own_values),
        cmocka_unit_test(test_kill_backend),
        cmocka_unit_test(test_stalled_reader),
        cmocka_unit_test(test_stalled_async),
        cmocka_unit_test(test_fd_count),
        cmocka_unit_test(test_l1l2),
        cmocka_unit_test(test_one_stall_one_failure),
        cmocka_unit_test(test_reload),
    };

    signal(SIGPIPE, SIG_IGN);
    if (getenv("INTEG_BATCHED_ONLY") != NULL) { /* one case, to debug it */
        cmocka_set_test_filter(getenv("INTEG_BATCHED_ONLY"));
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
