/*
 * integ_health: backend health end to end (issue 12).
 *
 * - a probe that cannot even connect for riven's own reasons (socket()
 *   fails with EMFILE while idle clients hold every descriptor of a riven
 *   started with a low RLIMIT_NOFILE) counts as a failed probe: once the
 *   descriptors are free again and the memcached is back, the server
 *   returns to service within retry_timeout_ms, instead of staying ejected
 *   with nobody probing it;
 * - with one backend black-holed (a listening socket nobody accepts on:
 *   first connections hang unanswered, then SYNs are dropped), /metrics
 *   answers 100 scrapes in a row, each in under 250 ms, while a client
 *   polls /healthz all along; /healthz/<server> says 503 for that backend
 *   only, /healthz/backends lists both, /healthz stays 200.
 *
 * Every riven gets a YAML file in /tmp. Needs riven: every case is skipped
 * with RIVEN_DIRECT=1. INTEG_HEALTH_LOG=debug sets riven's log_level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define POLL_MS     10   /* period of every "is it back yet" poll */
#define NOFILE      64   /* riven's RLIMIT_NOFILE in the fd case */
#define RETRY_MS    1000 /* retry_timeout_ms */
#define BACK_SLACK  500  /* return to service: RETRY_MS plus this, at most */
#define SCRAPES     100
/* ms, each: half the probes' 500 ms timeout, so that a scrape that waited
 * on the black-holed backend cannot pass, while a busy machine's
 * scheduling (a 130 ms scrape was seen under a load of 15) does not fail
 * it */
#define SCRAPE_MAX 250
#define MAX_IDLE   256

#define NEED_RIVEN()                                                           \
    do {                                                                       \
        if (harness_direct() || !harness_riven_available()) {                  \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* A riven config: two servers on ports a and b, failure_limit 1,
 * retry_timeout_ms RETRY_MS, 500 ms timeouts, enough max_connections to
 * exhaust a low descriptor limit. Written to a new file named in path. */
static void
conf_write(char *path, size_t pathlen, int listen, int a, int b)
{
    const char *level = getenv("INTEG_HEALTH_LOG");
    FILE *f;
    int fd;

    snprintf(path, pathlen, "/tmp/riven-health-XXXXXX.yml");
    fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: %s\n"
            "max_connections: 1000\n"
            "pool:\n  servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
            "  failure_limit: 1\n  retry_timeout_ms: %d\n"
            "timeouts: {connect_ms: 500, request_ms: 500}\n",
            listen, level ? level : "warn", a, b, RETRY_MS);
    assert_int_equal(fclose(f), 0);
}

/* Start riven with the config at path (listening on a free port, written
 * there), extra arguments as in harness_riven_start. */
static void
riven_start(struct harness_proc *rv, char *path, size_t pathlen, int a, int b,
            const char *const *extra)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = harness_free_port();

        assert_true(port > 0);
        conf_write(path, pathlen, port, a, b);
        if (harness_riven_start(rv, 0, path, port, extra) == 0) {
            return;
        }
        unlink(path);
    }
    fail_msg("cannot start riven");
}

/* A key that riven stores on the memcached at port (found by a get on
 * that memcached directly). */
static void
key_on(struct harness_conn *c, int port, char *key, size_t keylen)
{
    struct harness_conn *d = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    char req[128], want[128];

    assert_non_null(d);
    for (int i = 0; i < 1000; i++) {
        char *r;

        snprintf(key, keylen, "health-%d", i);
        snprintf(req, sizeof(req), "set %s 0 0 1\r\nx\r\n", key);
        assert_true(harness_roundtrip(c, req, "STORED\r\n"));
        snprintf(want, sizeof(want), "VALUE %s 0 1\r\nx\r\nEND\r\n", key);
        r = harness_get_reply(d, key, HARNESS_TIMEOUT_MS);
        assert_non_null(r);
        if (strcmp(r, want) == 0) {
            free(r);
            harness_conn_close(d);
            return;
        }
        free(r);
    }
    fail_msg("no key lands on port %d", port);
}

/* "get key" on c: true if the reply is want. */
static bool
get_is(struct harness_conn *c, const char *key, const char *want)
{
    char *r = harness_get_reply(c, key, HARNESS_TIMEOUT_MS);
    bool ok = r != NULL && strcmp(r, want) == 0;

    if (!ok) {
        harness_dump("integ_health: reply", r, r ? strlen(r) : 0, 200);
    }
    free(r);
    return ok;
}

/* ---- 1. a probe without a descriptor ------------------------------- */

/* Open idle connections to rv until it holds NOFILE descriptors; each
 * is waited for until riven has accepted it: its thread answers a
 * "version". (Not by riven's descriptor count growing: the /healthz
 * prober's sockets come and go every 500 ms, and one closing as a client
 * is accepted left the count where it was.) Returns how many. */
static size_t
exhaust_fds(struct harness_proc *rv, struct harness_conn **idle)
{
    size_t n = 0;

    while (harness_proc_fds(rv->pid) < NOFILE) {
        size_t len = 0;
        char *r;

        assert_true(n < MAX_IDLE);
        idle[n] = harness_conn_open(rv->port, HARNESS_TIMEOUT_MS);
        assert_non_null(idle[n]);
        n++;
        r = harness_sends(idle[n - 1], "version\r\n") == 0
                ? harness_recv_until(idle[n - 1], "\r\n", 2, HARNESS_TIMEOUT_MS,
                                     &len)
                : NULL;
        if (r == NULL || strncmp(r, "VERSION ", 8) != 0) {
            free(r);
            fail_msg("riven did not accept idle connection %zu", n);
        }
        free(r);
    }
    return n;
}

static void
test_probe_without_fds(void **state)
{
    struct harness_proc mc[2], rv = {.pid = -1};
    struct harness_conn *c, *idle[MAX_IDLE];
    char path[64], key[32];
    int64_t eject_at, window_end, freed_at, back = -1;
    size_t nidle, asked = 0;
    long fds_full;
    int port0;

    (void)state;
    NEED_RIVEN();
    assert_int_equal(harness_memcached_start(&mc[0], 0, NULL), 0);
    assert_int_equal(harness_memcached_start(&mc[1], 0, NULL), 0);
    port0 = mc[0].port;
    harness_child_nofile(NOFILE);
    riven_start(&rv, path, sizeof(path), mc[0].port, mc[1].port, NULL);
    harness_child_nofile(0);
    c = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    key_on(c, port0, key, sizeof(key));

    /* server 0 dies; one failure ejects it (failure_limit 1) */
    harness_proc_kill(&mc[0]);
    assert_true(get_is(c, key, UNAVAILABLE));
    eject_at = harness_now_ms();
    assert_true(get_is(c, key, UNAVAILABLE)); /* fail fast */

    /* every descriptor of riven held by idle clients; the server back */
    nidle = exhaust_fds(&rv, idle);
    fds_full = harness_proc_fds(rv.pid);
    assert_int_equal(harness_memcached_start(&mc[0], port0, NULL), 0);

    /* past the retry time, requests make riven probe: socket() fails */
    window_end = eject_at + RETRY_MS + 300;
    while (harness_now_ms() < window_end) {
        assert_true(get_is(c, key, UNAVAILABLE));
        asked++;
        poll(NULL, 0, POLL_MS);
    }
    assert_int_equal(harness_proc_fds(rv.pid), NOFILE);

    /* descriptors free again: back within retry_timeout_ms */
    for (size_t i = 0; i < nidle; i++) {
        harness_conn_close(idle[i]);
    }
    /* counted from when riven has descriptors again: its connection
     * threads close theirs as they see EOF, later under load */
    freed_at = harness_now_ms() + HARNESS_TIMEOUT_MS;
    while (harness_proc_fds(rv.pid) >= NOFILE && harness_now_ms() < freed_at) {
        poll(NULL, 0, 1);
    }
    assert_true(harness_proc_fds(rv.pid) < NOFILE);
    freed_at = harness_now_ms();
    for (;;) {
        char *r = harness_get_reply(c, key, HARNESS_TIMEOUT_MS);
        bool ok = r != NULL && strcmp(r, "END\r\n") == 0;

        if (ok) {
            back = harness_now_ms() - freed_at;
            free(r);
            break;
        }
        if (r == NULL || strcmp(r, UNAVAILABLE) != 0) {
            harness_dump("integ_health: unexpected reply", r, r ? strlen(r) : 0,
                         200);
            free(r);
            break;
        }
        free(r);
        if (harness_now_ms() - freed_at > 4 * RETRY_MS) {
            break;
        }
        poll(NULL, 0, POLL_MS);
    }
    printf("    fd case: %zu idle clients filled riven's %ld descriptors "
           "(limit %d); %zu requests during the EMFILE window; back in "
           "service %lld ms after the descriptors were freed "
           "(retry_timeout_ms %d)\n",
           nidle, fds_full, NOFILE, asked, (long long)back, RETRY_MS);
    harness_conn_close(c);
    assert_true(harness_proc_alive(&rv));
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc[0], 5000);
    harness_proc_stop(&mc[1], 5000);
    unlink(path);
    if (back < 0) {
        fail_msg("server still ejected %d ms after the descriptors were "
                 "freed (retry_timeout_ms %d): nobody probes it",
                 4 * RETRY_MS, RETRY_MS);
    }
    assert_true(back <= RETRY_MS + BACK_SLACK);
}

/* ---- 2. a black-holed backend and /metrics ------------------------ */

/* GET path from 127.0.0.1:port over HTTP/1.0. The status code, or -1;
 * the body (truncated to bodylen - 1 bytes) in body; the time from
 * connect to the end of the answer in *us. Thread-safe. */
static int
http_get(int port, const char *path, char *body, size_t bodylen, int64_t *us)
{
    int64_t t0 = harness_now_us();
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    char req[256];
    const char *sep;
    int code = -1;

    body[0] = '\0';
    if (c == NULL) {
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    if (harness_sends(c, req) == 0 && harness_wait_eof(c, HARNESS_TIMEOUT_MS) &&
        c->len > 12 && sscanf(c->buf, "HTTP/1.%*d %d", &code) == 1 &&
        (sep = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL) {
        size_t n = c->len - (size_t)(sep + 4 - c->buf);

        n = n < bodylen - 1 ? n : bodylen - 1;
        memcpy(body, sep + 4, n);
        body[n] = '\0';
    }
    *us = harness_now_us() - t0;
    harness_conn_close(c);
    return code;
}

/* A black hole on loopback: a socket listening with a backlog of 1 that
 * nobody accepts on. The first connections complete in the kernel and
 * are never answered; after them SYNs are dropped. */
static int
blackhole_open(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A client asking /healthz all along, as a load balancer does. */
struct hammer {
    int port;
    _Atomic bool stop;
    int n, ok, max_ms; /* read after join */
};

static void *
hammer_main(void *arg)
{
    struct hammer *hm = arg;
    char body[64];
    int64_t us;

    while (!atomic_load(&hm->stop)) {
        int code = http_get(hm->port, "/healthz", body, sizeof(body), &us);

        hm->n++;
        hm->ok += code == 200;
        hm->max_ms =
            (int)(us / 1000) > hm->max_ms ? (int)(us / 1000) : hm->max_ms;
        poll(NULL, 0, POLL_MS);
    }
    return NULL;
}

/* Poll GET path until it answers code, up to HARNESS_TIMEOUT_MS. */
static int
wait_status(int port, const char *path, int code)
{
    int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
    char body[256];
    int64_t us;
    int got;

    while ((got = http_get(port, path, body, sizeof(body), &us)) != code &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, POLL_MS);
    }
    return got;
}

static void
test_blackhole_scrapes(void **state)
{
    struct harness_proc mc, rv = {.pid = -1};
    struct hammer hm = {0};
    pthread_t tid;
    char path[64], maddr[32], body[256], url[64], hole[32], good[32];
    int hole_port, hole_fd, mport, code[2], slow = 0, bad = 0;
    int64_t us, max_us = 0, sum_us = 0;

    (void)state;
    NEED_RIVEN();
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    hole_fd = blackhole_open(&hole_port);
    mport = harness_free_port();
    assert_true(mport > 0);
    snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", mport);
    {
        const char *const extra[] = {"-m", maddr, NULL};

        riven_start(&rv, path, sizeof(path), hole_port, mc.port, extra);
    }
    assert_int_equal(harness_wait_ready(&rv, mport, HARNESS_TIMEOUT_MS), 0);
    snprintf(hole, sizeof(hole), "127.0.0.1:%d", hole_port);
    snprintf(good, sizeof(good), "127.0.0.1:%d", mc.port);

    /* 100 scrapes in a row while /healthz is asked all along */
    hm.port = mport;
    assert_int_equal(pthread_create(&tid, NULL, hammer_main, &hm), 0);
    for (int i = 0; i < SCRAPES; i++) {
        int c = http_get(mport, "/metrics", body, sizeof(body), &us);

        bad += c != 200 || strncmp(body, "# HELP riven_build_info ", 24) != 0;
        slow += us >= SCRAPE_MAX * 1000;
        max_us = us > max_us ? us : max_us;
        sum_us += us;
        poll(NULL, 0, POLL_MS); /* spread over rounds of probes */
    }
    atomic_store(&hm.stop, true);
    assert_int_equal(pthread_join(tid, NULL), 0);
    printf("    %d scrapes of /metrics with %s black-holed: max %lld us, "
           "mean %lld us, %d at or over %d ms, %d not 200; meanwhile %d "
           "GET /healthz, %d of them 200, max %d ms\n",
           SCRAPES, hole, (long long)max_us, (long long)(sum_us / SCRAPES),
           slow, SCRAPE_MAX, bad, hm.n, hm.ok, hm.max_ms);

    /* 503 for the black hole only */
    snprintf(url, sizeof(url), "/healthz/%s", hole);
    code[0] = wait_status(mport, url, 503);
    snprintf(url, sizeof(url), "/healthz/%s", good);
    code[1] = wait_status(mport, url, 200);
    printf("    /healthz/%s %d, /healthz/%s %d\n", hole, code[0], good,
           code[1]);
    assert_int_equal(code[0], 503);
    assert_int_equal(code[1], 200);
    {
        struct {
            char path[64];
            int code;
            char body[128];
        } want[4] = {{"/healthz", 200, "ok\n"},
                     {"/healthz/backends", 200, ""},
                     {"", 200, "up\n"},
                     {"", 503, "down\n"}};

        snprintf(want[1].body, sizeof(want[1].body), "%s down\n%s up\n", hole,
                 good);
        snprintf(want[2].path, sizeof(want[2].path), "/healthz/%s", good);
        snprintf(want[3].path, sizeof(want[3].path), "/healthz/%s", hole);
        for (int i = 0; i < 4; i++) {
            int c = http_get(mport, want[i].path, body, sizeof(body), &us);

            printf("    GET %s: %d in %lld us\n", want[i].path, c,
                   (long long)us);
            assert_int_equal(c, want[i].code);
            assert_string_equal(body, want[i].body);
            assert_true(us < SCRAPE_MAX * 1000);
        }
    }
    assert_int_equal(
        http_get(mport, "/healthz/127.0.0.1:1", body, sizeof(body), &us), 404);

    assert_true(harness_proc_alive(&rv));
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc, 5000);
    close(hole_fd);
    unlink(path);
    assert_int_equal(bad, 0);
    assert_int_equal(slow, 0);
    assert_true(hm.max_ms < SCRAPE_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_without_fds),
        cmocka_unit_test(test_blackhole_scrapes),
    };

    if (getenv("INTEG_HEALTH_ONLY") != NULL) { /* one case, to debug it */
        cmocka_set_test_filter(getenv("INTEG_HEALTH_ONLY"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
