/*
 * integ_route: riven's routes (issue 13) in front of real memcached
 * processes, each a pool of its own (hash tags: a pool of three).
 *
 * Every case starts its memcacheds on free loopback ports, writes a YAML
 * config (pools:, routes:) to /tmp, starts riven with it, talks to riven
 * and reads each memcached directly to see where each write landed:
 *
 * 1. all_sync: writes on both pools, the worst answer, read: failover;
 *    the first pool killed: a write answers one SERVER_ERROR line, reads
 *    come from the live pool;
 * 2. all_fastest: one child SIGSTOPped, sets answer within 10 ms (the
 *    median of 10; none near request_ms) and the 100 gets between them
 *    are each answered with its own reply, also once the late child
 *    answers; the slower answers are counted, one per write;
 * 3. failover: miss: true reads the second pool after a miss; the first
 *    pool killed, 100 sets and 100 gets all succeed; a gutter child's
 *    ttl_max clamps exptime 0 and 5000 to 300;
 * 4. longest prefix wins, in either file order; a 100-key get over three
 *    routes answers in request order;
 * 5. shadow fraction 0.1 over 10,000 keys: 900..1100 keys on the shadow,
 *    the same keys after a restart, every copy counted once; a stopped
 *    shadow neither fails nor delays the client, and its copies are all
 *    counted (as timeouts) while the connection sits idle;
 * 6. warm_up: a cold miss is read from warm and filled into cold with
 *    warm's flags and TTL; a delete removes both;
 * 7. hash_tag "{}": user:{N}:x and user:{N}:y share a server, and the
 *    pairs cover all three;
 * 8. route and failover counters on /metrics move exactly;
 * 9. riven -t -c on a route naming an unknown pool: exit 1, a message
 *    with file, line and pool; and the issue's own example passes;
 * 10. SIGHUP swaps the tree under an open connection, which keeps
 *    working; a bad file keeps the running tree.
 *
 * The shadow test assumes what riven's design gives: a connection's
 * requests reach one backend over one socket, in order (the barrier key).
 * Needs riven: every case is skipped with RIVEN_DIRECT=1. To debug one
 * case: INTEG_ROUTE_ONLY=test_name, INTEG_ROUTE_LOG=debug (log_level).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define TIMEOUT     "SERVER_ERROR backend timeout\r\n"
#define BACKEND_ERR "SERVER_ERROR backend error\r\n"
#define MAX_MC      4
#define POLL_MS     10   /* period of every "is it there yet" poll */
#define WAIT_MS     5000 /* deadline of those polls, unless said */
#define CHUNK       100  /* requests per pipelined write, keys per get */
#define REQUEST_MS  1000 /* timeouts.request_ms unless a case says */
#define MAX(a, b)   ((a) > (b) ? (a) : (b))

/* A case's processes: memcacheds (one pool each, or one pool of all),
 * riven with the YAML file at path, its /metrics port (0 = off). */
struct rt {
    struct harness_proc mc[MAX_MC];
    size_t nmc;
    struct harness_proc rv;
    int port;  /* riven's listener */
    int mport; /* riven's /metrics, 0 when off */
    char path[64];
};

/* Builds the key of index i into out (cap bytes). */
typedef void (*key_fn)(char *out, size_t cap, size_t i);

/* Latency slack under a sanitizer (ASan, TSan slow riven several times). */
static int
san_scale(void)
{
    return harness_rss_scale() > 1 ? 5 : 1;
}

/* ---- fixture ---------------------------------------------------------- */

static void
rt_start_mcs(struct rt *t)
{
    for (size_t i = 0; i < t->nmc; i++) {
        assert_int_equal(harness_memcached_start(&t->mc[i], 0, NULL), 0);
    }
}

static int
rt_setup(void **state, size_t nmc)
{
    struct rt *t;
    int fd;

    *state = NULL;
    if (harness_direct()) {
        return 0; /* the case skips */
    }
    t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    t->rv.pid = -1;
    for (size_t i = 0; i < MAX_MC; i++) {
        t->mc[i].pid = -1;
    }
    t->nmc = nmc;
    snprintf(t->path, sizeof(t->path), "/tmp/riven-route-XXXXXX.yml");
    fd = mkstemps(t->path, 4);
    assert_true(fd >= 0);
    close(fd);
    rt_start_mcs(t);
    return 0;
}

static int
setup1(void **state)
{
    return rt_setup(state, 1);
}

static int
setup2(void **state)
{
    return rt_setup(state, 2);
}

static int
setup3(void **state)
{
    return rt_setup(state, 3);
}

static int
setup4(void **state)
{
    return rt_setup(state, 4);
}

static void
rt_stop_all(struct rt *t)
{
    harness_proc_stop(&t->rv, 5000);
    for (size_t i = 0; i < t->nmc; i++) {
        harness_proc_stop(&t->mc[i], 5000);
    }
}

static int
teardown(void **state)
{
    struct rt *t = *state;

    if (t != NULL) {
        rt_stop_all(t);
        unlink(t->path);
        free(t);
    }
    return 0;
}

static struct rt *
fixture(void **state)
{
    if (*state == NULL) {
        skip();
    }
    return *state;
}

/* riven -t -c path; its exit status, its stdout and stderr in out. */
static int
check_config(const char *path, char *out, size_t cap)
{
    char log[] = "/tmp/riven-route-out-XXXXXX";
    const char *argv[] = {harness_riven_bin(), "-t", "-c", path, NULL};
    struct harness_proc p;
    int fd = mkstemp(log), saved_out, saved_err, st;
    ssize_t n;

    assert_true(fd >= 0);
    fflush(NULL);
    saved_out = dup(STDOUT_FILENO);
    saved_err = dup(STDERR_FILENO);
    assert_true(saved_out >= 0 && saved_err >= 0);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    st = harness_spawn(&p, "riven", argv);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    assert_int_equal(st, 0);
    st = harness_proc_wait(&p, 5000);
    if (st == -1) { /* -t never serves: a riven still running is a failure */
        harness_proc_stop(&p, 1000);
    }
    n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(log);
    return st;
}

/* Write listen, log_level, timeouts and body (printf-style) to t->path
 * and (re)start riven on it; metrics: serve /metrics on a free port. */
static void __attribute__((format(printf, 4, 5)))
rt_riven(struct rt *t, bool metrics, unsigned request_ms, const char *fmt, ...)
{
    const char *level = getenv("INTEG_ROUTE_LOG");
    char body[4096], maddr[32];
    const char *extra[] = {"-m", maddr, NULL};
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    harness_proc_stop(&t->rv, 5000);
    for (int attempt = 0; attempt < 5; attempt++) {
        FILE *f;

        t->port = harness_free_port();
        t->mport = metrics ? harness_free_port() : 0;
        assert_true(t->port > 0 && (!metrics || t->mport > 0));
        f = fopen(t->path, "w");
        assert_non_null(f);
        fprintf(f,
                "listen: [\"127.0.0.1:%d\"]\nlog_level: %s\n"
                "timeouts: {connect_ms: 1000, request_ms: %u}\n%s",
                t->port, level ? level : "warn", request_ms, body);
        assert_int_equal(fclose(f), 0);
        if (attempt == 0) { /* a config riven refuses: say why, once */
            char out[1024];
            int st = check_config(t->path, out, sizeof(out));

            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fail_msg("riven -t -c %s refuses the config: %s", t->path, out);
            }
        }
        snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", t->mport);
        if (harness_riven_start(&t->rv, 0, t->path, t->port,
                                metrics ? extra : NULL) == 0) {
            return;
        }
    }
    fail_msg("cannot start riven with %s", t->path);
}

/* ---- memcached text helpers ------------------------------------------ */

static struct harness_conn *
conn(int port)
{
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);

    assert_non_null(c);
    return c;
}

/* Send req on c; the first reply line (malloc'd), or NULL. */
static char *
line_of(struct harness_conn *c, const char *req)
{
    if (harness_sends(c, req) != 0) {
        return NULL;
    }
    return harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, NULL);
}

/* "set key flags exptime n\r\nval\r\n" into req. */
static void
set_req(char *req, size_t cap, const char *cmd, const char *key, unsigned flags,
        long exptime, const char *val)
{
    int n = snprintf(req, cap, "%s %s %u %ld %zu\r\n%s\r\n", cmd, key, flags,
                     exptime, strlen(val), val);

    assert_true(n > 0 && (size_t)n < cap);
}

/* Store key on c with cmd (set, add...) and expect exactly want. */
static void
store(struct harness_conn *c, const char *cmd, const char *key, unsigned flags,
      long exptime, const char *val, const char *want)
{
    char req[1024];

    set_req(req, sizeof(req), cmd, key, flags, exptime, val);
    assert_true(harness_roundtrip(c, req, want));
}

/* "VALUE key flags n\r\nval\r\n" appended to out at off; the new length. */
static size_t
value_block(char *out, size_t off, size_t cap, const char *key, unsigned flags,
            const char *val)
{
    int n = snprintf(out + off, cap - off, "VALUE %s %u %zu\r\n%s\r\n", key,
                     flags, strlen(val), val);

    assert_true(n > 0 && (size_t)n < cap - off);
    return off + (size_t)n;
}

/* The exact reply to "get key": its value, or a miss (val NULL). */
static void
hit_reply(char *out, size_t cap, const char *key, unsigned flags,
          const char *val)
{
    size_t n = val != NULL ? value_block(out, 0, cap, key, flags, val) : 0;

    assert_true(n + 6 <= cap);
    memcpy(out + n, "END\r\n", 6);
}

/* get key on c; true when the reply is exactly the value (or the miss). */
static bool
get_is(struct harness_conn *c, const char *key, unsigned flags, const char *val)
{
    char want[1200], *r = harness_get_reply(c, key, HARNESS_TIMEOUT_MS);
    bool ok;

    hit_reply(want, sizeof(want), key, flags, val);
    ok = r != NULL && strcmp(r, want) == 0;
    if (!ok) {
        fprintf(stderr, "integ_route: get %s\n", key);
        harness_diff("expected", want, strlen(want), "received", r,
                     r ? strlen(r) : 0);
    }
    free(r);
    return ok;
}

/* The same on the memcached (or riven) at port, over a fresh connection. */
static bool
direct_is(int port, const char *key, unsigned flags, const char *val)
{
    struct harness_conn *c = conn(port);
    bool ok = get_is(c, key, flags, val);

    harness_conn_close(c);
    return ok;
}

/* Poll port every POLL_MS until get key is exactly val; elapsed ms, or -1
 * after timeout_ms. */
static int64_t
wait_direct(int port, const char *key, unsigned flags, const char *val,
            int timeout_ms)
{
    int64_t start = harness_now_ms();
    char want[1200];
    struct harness_conn *c = conn(port);

    hit_reply(want, sizeof(want), key, flags, val);
    for (;;) {
        char *r = harness_get_reply(c, key, HARNESS_TIMEOUT_MS);
        bool ok = r != NULL && strcmp(r, want) == 0;

        free(r);
        if (ok) {
            harness_conn_close(c);
            return harness_now_ms() - start;
        }
        if (harness_now_ms() - start > timeout_ms) {
            harness_conn_close(c);
            return -1;
        }
        poll(NULL, 0, POLL_MS);
    }
}

/* `mg key t` on port: the TTL in `HD t<N>`, -2 for EN, -3 otherwise. */
static long
mg_ttl(int port, const char *key)
{
    struct harness_conn *c = conn(port);
    char req[300], *line;
    long ttl = -3;

    snprintf(req, sizeof(req), "mg %s t\r\n", key);
    line = line_of(c, req);
    if (line != NULL && strcmp(line, "EN\r\n") == 0) {
        ttl = -2;
    } else if (line != NULL && strncmp(line, "HD t", 4) == 0) {
        char *end;

        ttl = strtol(line + 4, &end, 10);
        if (strcmp(end, "\r\n") != 0) {
            ttl = -3;
        }
    }
    if (ttl == -3) {
        harness_dump("integ_route: mg t reply", line, line ? strlen(line) : 0,
                     200);
    }
    free(line);
    harness_conn_close(c);
    return ttl;
}

/* One item as `mg key f t v` shows it. */
struct item {
    bool hit;
    unsigned flags;
    long ttl;
    char val[256];
};

/* `mg key f t v` on port into *it; false on a malformed reply. */
static bool
mg_item(int port, const char *key, struct item *it)
{
    struct harness_conn *c = conn(port);
    char req[300], *line, *data = NULL;
    size_t n;
    int used = 0;
    bool ok = false;

    memset(it, 0, sizeof(*it));
    snprintf(req, sizeof(req), "mg %s f t v\r\n", key);
    line = line_of(c, req);
    if (line != NULL && strcmp(line, "EN\r\n") == 0) {
        ok = true;
    } else if (line != NULL &&
               sscanf(line, "VA %zu f%u t%ld\r\n%n", &n, &it->flags, &it->ttl,
                      &used) == 3 &&
               (size_t)used == strlen(line) && n < sizeof(it->val) &&
               (data = harness_recv_n(c, n + 2, HARNESS_TIMEOUT_MS)) != NULL &&
               memcmp(data + n, "\r\n", 2) == 0) {
        it->hit = true;
        memcpy(it->val, data, n);
        it->val[n] = '\0';
        ok = true;
    }
    if (!ok) {
        harness_dump("integ_route: mg f t v reply", line,
                     line ? strlen(line) : 0, 200);
    }
    free(data);
    free(line);
    harness_conn_close(c);
    return ok;
}

/* ---- pipelined sets and direct scans --------------------------------- */

/* Set keys 0..n-1 (value "v-<i>") on c, CHUNK per write; the number
 * answered STORED. */
static size_t
pipe_set(struct harness_conn *c, key_fn key, size_t n)
{
    static char req[CHUNK * 320];
    static char want[CHUNK * 8 + 1];
    size_t stored = 0;

    for (size_t i = 0; i < CHUNK; i++) {
        memcpy(want + i * 8, "STORED\r\n", 8);
    }
    for (size_t from = 0; from < n; from += CHUNK) {
        size_t len = 0, cnt = n - from < CHUNK ? n - from : CHUNK;

        for (size_t i = from; i < from + cnt; i++) {
            char k[256], v[32];

            key(k, sizeof(k), i);
            snprintf(v, sizeof(v), "v-%zu", i);
            set_req(req + len, sizeof(req) - len, "set", k, 0, 0, v);
            len += strlen(req + len);
        }
        assert_int_equal(harness_send(c, req, len), 0);
        if (harness_expect_n(c, want, cnt * 8, HARNESS_TIMEOUT_MS)) {
            stored += cnt;
        }
    }
    return stored;
}

/* Mark bit `bit` of owner[i] for every key i (0..n-1) memcached on port
 * holds, with value "v-<i>" or "bar-<i>" (a barrier); fails on any other
 * value or a malformed reply. The number found. */
static size_t
scan(int port, key_fn key, size_t n, uint8_t *owner, unsigned bit)
{
    static char keys[CHUNK * 260];
    struct harness_conn *c = conn(port);
    size_t found = 0;

    for (size_t from = 0; from < n; from += CHUNK) {
        size_t len = 0, next = from;
        char *r, *p;

        for (size_t i = from; i < from + CHUNK && i < n; i++) {
            char k[256];

            key(k, sizeof(k), i);
            len += (size_t)snprintf(keys + len, sizeof(keys) - len, "%s%s",
                                    len ? " " : "", k);
        }
        r = harness_get_reply(c, keys, HARNESS_TIMEOUT_MS);
        assert_non_null(r);
        for (p = r; strncmp(p, "VALUE ", 6) == 0;) {
            char k[256], want_k[256], val[32], v1[32], v2[32];
            unsigned bytes;

            assert_int_equal(sscanf(p, "VALUE %255s 0 %u\r\n", k, &bytes), 2);
            p = strstr(p, "\r\n") + 2;
            assert_true(bytes < sizeof(val));
            memcpy(val, p, bytes);
            val[bytes] = '\0';
            p += bytes + 2;
            /* replies come in request order: find the key from next on */
            for (; next < n; next++) {
                key(want_k, sizeof(want_k), next);
                if (strcmp(want_k, k) == 0) {
                    break;
                }
            }
            assert_true(next < n);
            snprintf(v1, sizeof(v1), "v-%zu", next);
            snprintf(v2, sizeof(v2), "bar-%zu", next);
            if (strcmp(val, v1) != 0 && strcmp(val, v2) != 0) {
                fail_msg("%s holds '%s' on port %d", k, val, port);
            }
            owner[next] |= (uint8_t)(1u << bit);
            found++;
            next++;
        }
        assert_string_equal(p, "END\r\n");
        free(r);
    }
    harness_conn_close(c);
    return found;
}

/* ---- /metrics ---------------------------------------------------------- */

/* GET /metrics from port; the body (malloc'd), or NULL unless status 200. */
static char *
metrics_body(int port)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    char *body = NULL;

    if (c == NULL) {
        return NULL;
    }
    if (harness_sends(c, req) == 0 && harness_wait_eof(c, HARNESS_TIMEOUT_MS) &&
        c->len > 12 && memcmp(c->buf, "HTTP/1.1 200", 12) == 0) {
        char *sep = memmem(c->buf, c->len, "\r\n\r\n", 4);

        if (sep != NULL) {
            size_t n = c->len - (size_t)(sep + 4 - c->buf);

            body = malloc(n + 1);
            assert_non_null(body);
            memcpy(body, sep + 4, n);
            body[n] = '\0';
        }
    }
    harness_conn_close(c);
    return body;
}

/* The value of the series name{...} whose labels include l1 and l2 (each
 * `k="v"`, l2 may be NULL) and no others; -1 when there is none. */
static double
metric(int mport, const char *name, const char *l1, const char *l2)
{
    char *body = metrics_body(mport), *save = NULL;
    size_t nl = strlen(name);
    int want_labels = 1 + (l2 != NULL);
    double v = -1;

    assert_non_null(body);
    for (char *line = strtok_r(body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *close, *sp;
        int labels = 1;

        if (strncmp(line, name, nl) != 0 || line[nl] != '{' ||
            (close = strstr(line, "} ")) == NULL) {
            continue;
        }
        *close = '\0';
        for (char *q = line + nl; (q = strstr(q, "\",")) != NULL; q++) {
            labels++;
        }
        if (labels != want_labels || strstr(line + nl, l1) == NULL ||
            (l2 != NULL && strstr(line + nl, l2) == NULL)) {
            continue;
        }
        sp = close + 2;
        v = strtod(sp, NULL);
        break;
    }
    free(body);
    return v;
}

/* Poll until the series reaches at least want (WAIT_MS); its value then
 * (or the last seen). */
static double
metric_wait(int mport, const char *name, const char *l1, const char *l2,
            double want)
{
    int64_t start = harness_now_ms();
    double v;

    while ((v = metric(mport, name, l1, l2)) < want &&
           harness_now_ms() - start < WAIT_MS) {
        poll(NULL, 0, POLL_MS);
    }
    return v;
}

static const char *const shadow_results[] = {"ok", "error", "timeout",
                                             "dropped"};

/* riven_shadow_requests_total{route="default",result=...} into res[4]
 * (an absent series is 0); their sum. */
static double
shadow_counts(int mport, double *res)
{
    double sum = 0;

    for (size_t r = 0; r < 4; r++) {
        char label[32];

        snprintf(label, sizeof(label), "result=\"%s\"", shadow_results[r]);
        res[r] = metric(mport, "riven_shadow_requests_total",
                        "route=\"default\"", label);
        res[r] = res[r] < 0 ? 0 : res[r];
        sum += res[r];
    }
    return sum;
}

/* Poll until the shadow results sum to want (WAIT_MS); the sum then. */
static double
shadow_wait_sum(int mport, double want, double *res)
{
    int64_t start = harness_now_ms();
    double sum;

    while ((sum = shadow_counts(mport, res)) != want &&
           harness_now_ms() - start < WAIT_MS) {
        poll(NULL, 0, POLL_MS);
    }
    return sum;
}

/* ---- 1. all_sync ------------------------------------------------------- */

static void
test_all_sync(void **state)
{
    struct rt *t = fixture(state);
    struct harness_conn *c;
    int main_port = t->mc[0].port, rep_port = t->mc[1].port;
    char *line;
    int64_t t0;
    bool err_ok;

    rt_riven(t, false, REQUEST_MS,
             "pools:\n"
             "  main: {servers: [\"127.0.0.1:%d\"]}\n"
             "  replica: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - prefix: \"sess:\"\n"
             "    route: {all_sync: [main, replica], read: failover}\n"
             "  - default: main\n",
             main_port, rep_port);
    c = conn(t->port);

    /* a set lands on both */
    store(c, "set", "sess:1", 3, 0, "both-1", "STORED\r\n");
    assert_true(direct_is(main_port, "sess:1", 3, "both-1"));
    assert_true(direct_is(rep_port, "sess:1", 3, "both-1"));
    /* the worst answer: replica's NOT_STORED beats main's STORED */
    {
        struct harness_conn *d = conn(rep_port);

        store(d, "set", "sess:add", 0, 0, "rep", "STORED\r\n");
        harness_conn_close(d);
    }
    store(c, "add", "sess:add", 0, 0, "new", "NOT_STORED\r\n");
    assert_true(direct_is(main_port, "sess:add", 0, "new"));
    assert_true(direct_is(rep_port, "sess:add", 0, "rep"));
    /* reads go to main first; read: failover takes replica's on a miss */
    assert_true(get_is(c, "sess:add", 0, "new"));
    {
        struct harness_conn *d = conn(rep_port);

        store(d, "set", "sess:only-rep", 5, 0, "from-replica", "STORED\r\n");
        harness_conn_close(d);
    }
    assert_true(get_is(c, "sess:only-rep", 5, "from-replica"));
    /* NOT_FOUND beats DELETED: the key only on replica */
    assert_true(
        harness_roundtrip(c, "delete sess:only-rep\r\n", "NOT_FOUND\r\n"));
    assert_true(direct_is(rep_port, "sess:only-rep", 0, NULL));

    /* main killed: a write is one SERVER_ERROR line, reads fail over */
    harness_proc_kill(&t->mc[0]);
    t0 = harness_now_ms();
    line = line_of(c, "set sess:2 0 0 6\r\nboth-2\r\n");
    assert_non_null(line);
    err_ok = strcmp(line, UNAVAILABLE) == 0 || strcmp(line, TIMEOUT) == 0 ||
             strcmp(line, BACKEND_ERR) == 0;
    printf("    all_sync: set/add/delete exact on both pools; main killed: "
           "set answered %.*s in %lld ms\n",
           (int)strlen(line) - 2, line, (long long)(harness_now_ms() - t0));
    if (!err_ok) {
        harness_dump("integ_route: set with main killed", line, strlen(line),
                     200);
    }
    assert_true(err_ok);
    free(line);
    /* the write reached the live replica all the same */
    assert_true(direct_is(rep_port, "sess:2", 0, "both-2"));
    assert_true(get_is(c, "sess:1", 3, "both-1"));
    assert_true(get_is(c, "sess:2", 0, "both-2"));
    /* and again once main is ejected */
    for (int i = 0; i < 5; i++) {
        line = line_of(c, "set sess:3 0 0 1\r\nx\r\n");
        assert_non_null(line);
        assert_true(strncmp(line, "SERVER_ERROR ", 13) == 0);
        free(line);
        assert_true(get_is(c, "sess:1", 3, "both-1"));
    }
    harness_conn_close(c);
}

/* ---- 2. all_fastest ---------------------------------------------------- */

#define FAST_KEYS    100
#define FAST_SETS    10 /* sets while a child is stopped */
#define FAST_MS      10 /* their median answers within this */
#define COUNTED_SETS 50

/* The value of key fast:i. */
static void
fast_val(char *out, size_t cap, int i)
{
    snprintf(out, cap, "value-%d-%.*s", i, i % 17, "abcdefghijklmnopq");
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void
test_all_fastest(void **state)
{
    struct rt *t = fixture(state);
    struct harness_conn *c;
    int64_t t0, el2_us, late_ms, set_us[FAST_SETS];
    int own = 0, own_after = 0, late_ok = 0;
    double counts[4], sum;

    rt_riven(t, true, REQUEST_MS,
             "pools:\n"
             "  a: {servers: [\"127.0.0.1:%d\"]}\n"
             "  b: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - default: {all_fastest: [a, b]}\n",
             t->mc[0].port, t->mc[1].port);
    c = conn(t->port);
    for (int i = 0; i < FAST_KEYS; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "fast:%d", i);
        fast_val(v, sizeof(v), i);
        store(c, "set", k, (unsigned)i, 0, v, "STORED\r\n");
    }
    /* both children have every key (the slower answer was awaited too) */
    for (int i = 0; i < FAST_KEYS; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "fast:%d", i);
        fast_val(v, sizeof(v), i);
        assert_true(wait_direct(t->mc[0].port, k, (unsigned)i, v, WAIT_MS) >=
                    0);
        assert_true(wait_direct(t->mc[1].port, k, (unsigned)i, v, WAIT_MS) >=
                    0);
    }

    /* b stopped: FAST_SETS sets, each followed by FAST_KEYS / FAST_SETS
     * gets, every reply its own while b's answers are pending */
    assert_int_equal(harness_proc_signal(&t->mc[1], SIGSTOP), 0);
    for (int n = 0; n < FAST_SETS; n++) {
        char k[32], v[32], req[96];

        snprintf(k, sizeof(k), "fast:new%d", n);
        snprintf(v, sizeof(v), "new-%d", n);
        set_req(req, sizeof(req), "set", k, 0, 0, v);
        t0 = harness_now_us();
        assert_true(harness_roundtrip(c, req, "STORED\r\n"));
        set_us[n] = harness_now_us() - t0;
        for (int g = n * FAST_KEYS / FAST_SETS;
             g < (n + 1) * FAST_KEYS / FAST_SETS; g++) {
            fast_val(v, sizeof(v), g);
            snprintf(k, sizeof(k), "fast:%d", g);
            own += get_is(c, k, (unsigned)g, v);
        }
    }
    qsort(set_us, FAST_SETS, sizeof(set_us[0]), cmp_i64);
    /* b answers late now; what follows is still each request's own */
    assert_int_equal(harness_proc_signal(&t->mc[1], SIGCONT), 0);
    t0 = harness_now_ms();
    for (int n = 0; n < FAST_SETS; n++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "fast:new%d", n);
        snprintf(v, sizeof(v), "new-%d", n);
        late_ok += wait_direct(t->mc[1].port, k, 0, v, WAIT_MS) >= 0;
    }
    late_ms = harness_now_ms() - t0;
    t0 = harness_now_us();
    assert_true(harness_roundtrip(c, "set fast:after 0 0 5\r\nafter\r\n",
                                  "STORED\r\n"));
    el2_us = harness_now_us() - t0;
    for (int i = FAST_KEYS - 1; i >= 0; i--) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "fast:%d", i);
        fast_val(v, sizeof(v), i);
        own_after += get_is(c, k, (unsigned)i, v);
    }
    assert_true(get_is(c, "fast:new0", 0, "new-0"));
    assert_true(get_is(c, "fast:after", 0, "after"));
    assert_true(harness_quiet(c, 50));
    /* both children's answers to every set are read and counted, each
     * once (the winner's too) */
    sum = shadow_wait_sum(t->mport, 2 * (FAST_KEYS + FAST_SETS + 1), counts);
    printf("    all_fastest: b stopped: %d sets STORED in median %.2f ms "
           "(limit %d), max %.2f ms; %d/%d gets exact; b resumed, holds "
           "%d/%d sets (%lld ms): set in %.2f ms, %d/%d gets exact; "
           "answers counted: ok %.0f error %.0f timeout %.0f dropped "
           "%.0f (want %d in all)\n",
           FAST_SETS, (double)set_us[FAST_SETS / 2] / 1000.0,
           FAST_MS * san_scale(), (double)set_us[FAST_SETS - 1] / 1000.0, own,
           FAST_KEYS, late_ok, FAST_SETS, (long long)late_ms,
           (double)el2_us / 1000.0, own_after, FAST_KEYS, counts[0], counts[1],
           counts[2], counts[3], 2 * (FAST_KEYS + FAST_SETS + 1));
    harness_conn_close(c);
    assert_true(sum == 2 * (FAST_KEYS + FAST_SETS + 1));
    assert_true(set_us[FAST_SETS / 2] < (int64_t)FAST_MS * 1000 * san_scale());
    assert_true(set_us[FAST_SETS - 1] < (int64_t)REQUEST_MS * 1000 / 2);
    assert_int_equal(own, FAST_KEYS);
    assert_int_equal(late_ok, FAST_SETS);
    assert_int_equal(own_after, FAST_KEYS);
}

/* all_fastest's answers are read and counted, one per child and write
 * (the winner's too), in riven_shadow_requests_total (as README's Routes
 * says). */
static void
test_all_fastest_counted(void **state)
{
    struct rt *t = fixture(state);
    struct harness_conn *c;
    double counts[4], sum;

    rt_riven(t, true, REQUEST_MS,
             "pools:\n"
             "  a: {servers: [\"127.0.0.1:%d\"]}\n"
             "  b: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - default: {all_fastest: [a, b]}\n",
             t->mc[0].port, t->mc[1].port);
    c = conn(t->port);
    for (int i = 0; i < COUNTED_SETS; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "cnt:%d", i);
        fast_val(v, sizeof(v), i);
        store(c, "set", k, 0, 0, v, "STORED\r\n");
    }
    /* both children answered every set (each holds every key) */
    for (int i = 0; i < COUNTED_SETS; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "cnt:%d", i);
        fast_val(v, sizeof(v), i);
        assert_true(wait_direct(t->mc[0].port, k, 0, v, WAIT_MS) >= 0);
        assert_true(wait_direct(t->mc[1].port, k, 0, v, WAIT_MS) >= 0);
    }
    /* one more batch on the connection takes every answer still unread */
    assert_true(get_is(c, "cnt:0", 0, "value-0-"));
    sum = shadow_wait_sum(t->mport, 2 * COUNTED_SETS, counts);
    printf("    all_fastest: %d sets to 2 children; answers counted: ok %.0f "
           "error %.0f timeout %.0f dropped %.0f (want ok %d)\n",
           COUNTED_SETS, counts[0], counts[1], counts[2], counts[3],
           2 * COUNTED_SETS);
    harness_conn_close(c);
    assert_true(sum == 2 * COUNTED_SETS);
    assert_true(counts[0] == 2 * COUNTED_SETS);
}

/* ---- 3. failover ------------------------------------------------------- */

#define FO_N 100

static void
test_failover(void **state)
{
    struct rt *t = fixture(state);
    struct harness_conn *c, *d;
    int first = t->mc[0].port, second = t->mc[1].port, gutter = t->mc[2].port;
    int sets = 0, gets = 0, on_second = 0;
    long ttl0, ttl5000, ttl100;

    rt_riven(t, false, REQUEST_MS,
             "pools:\n"
             "  first: {servers: [\"127.0.0.1:%d\"]}\n"
             "  second: {servers: [\"127.0.0.1:%d\"]}\n"
             "  gutter: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - prefix: \"fo:\"\n"
             "    route: {failover: [first, second], miss: true}\n"
             "  - prefix: \"gt:\"\n"
             "    route: {failover: [first, {pool: gutter, ttl_max: 300}]}\n"
             "  - default: first\n",
             first, second, gutter);
    c = conn(t->port);

    /* miss: true: a key deleted on first is still read from second */
    d = conn(first);
    store(d, "set", "fo:m", 1, 0, "on-first", "STORED\r\n");
    harness_conn_close(d);
    d = conn(second);
    store(d, "set", "fo:m", 2, 0, "on-second", "STORED\r\n");
    harness_conn_close(d);
    assert_true(get_is(c, "fo:m", 1, "on-first"));
    d = conn(first);
    assert_true(harness_roundtrip(d, "delete fo:m\r\n", "DELETED\r\n"));
    harness_conn_close(d);
    assert_true(get_is(c, "fo:m", 2, "on-second"));
    /* writes go to the first child only while it lives */
    store(c, "set", "fo:w", 0, 0, "w", "STORED\r\n");
    assert_true(direct_is(first, "fo:w", 0, "w"));
    assert_true(direct_is(second, "fo:w", 0, NULL));

    /* first killed: every set and get succeeds on second */
    harness_proc_kill(&t->mc[0]);
    for (int i = 0; i < FO_N; i++) {
        char k[32], v[32], req[96], *line;

        snprintf(k, sizeof(k), "fo:d%d", i);
        snprintf(v, sizeof(v), "dead-%d", i);
        set_req(req, sizeof(req), "set", k, 0, 0, v);
        line = line_of(c, req);
        if (line != NULL && strcmp(line, "STORED\r\n") == 0) {
            sets++;
        } else {
            harness_dump("integ_route: failover set", line,
                         line ? strlen(line) : 0, 200);
        }
        free(line);
    }
    for (int i = 0; i < FO_N; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "fo:d%d", i);
        snprintf(v, sizeof(v), "dead-%d", i);
        gets += get_is(c, k, 0, v);
        on_second += direct_is(second, k, 0, v);
    }

    /* the gutter child clamps the TTL of writes to ttl_max */
    store(c, "set", "gt:zero", 0, 0, "g0", "STORED\r\n");
    store(c, "set", "gt:long", 0, 5000, "g5000", "STORED\r\n");
    store(c, "set", "gt:short", 0, 100, "g100", "STORED\r\n");
    ttl0 = mg_ttl(gutter, "gt:zero");
    ttl5000 = mg_ttl(gutter, "gt:long");
    ttl100 = mg_ttl(gutter, "gt:short");
    assert_true(get_is(c, "gt:zero", 0, "g0"));
    printf("    failover: miss read second's copy; first killed: %d/%d sets, "
           "%d/%d gets, %d/%d on second; gutter TTLs: exptime 0 -> %ld, "
           "5000 -> %ld, 100 -> %ld\n",
           sets, FO_N, gets, FO_N, on_second, FO_N, ttl0, ttl5000, ttl100);
    harness_conn_close(c);
    assert_int_equal(sets, FO_N);
    assert_int_equal(gets, FO_N);
    assert_int_equal(on_second, FO_N);
    assert_true(ttl0 > 0 && ttl0 <= 300);
    assert_true(ttl5000 > 0 && ttl5000 <= 300);
    assert_true(ttl100 >= 99 && ttl100 <= 100);
}

/* ---- 4. longest prefix ------------------------------------------------- */

#define MIX_KEYS 100

/* Key i of the mixed get: families "ab" (B), "ax" (A), "z" (C). */
static void
mix_key(char *out, size_t cap, int i, int *pool)
{
    static const char *const fam[] = {"ab", "ax", "z"};
    static const int owner[] = {1, 0, 2};

    snprintf(out, cap, "%s%d", fam[i % 3], i);
    *pool = owner[i % 3];
}

static void
prefix_run(struct rt *t, int run, bool short_first)
{
    static char keys[MIX_KEYS * 8], want[MIX_KEYS * 48];
    static char direct_want[3][MIX_KEYS * 48];
    char v[32];
    size_t kl = 0, wl = 0, dl[3] = {0};
    struct harness_conn *c;
    int exact_placed = 0;
    static const char *const probe[] = {"abc", "axy", "zzz"};
    static const int probe_on[] = {1, 0, 2};

    /* empty the memcacheds between runs */
    for (size_t s = 0; s < 3; s++) {
        struct harness_conn *d = conn(t->mc[s].port);

        assert_true(harness_roundtrip(d, "flush_all\r\n", "OK\r\n"));
        harness_conn_close(d);
    }
    rt_riven(t, false, REQUEST_MS,
             "pools:\n"
             "  A: {servers: [\"127.0.0.1:%d\"]}\n"
             "  B: {servers: [\"127.0.0.1:%d\"]}\n"
             "  C: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n%s%s"
             "  - default: C\n",
             t->mc[0].port, t->mc[1].port, t->mc[2].port,
             short_first ? "  - {prefix: \"a\", route: A}\n"
                         : "  - {prefix: \"ab\", route: B}\n",
             short_first ? "  - {prefix: \"ab\", route: B}\n"
                         : "  - {prefix: \"a\", route: A}\n");
    c = conn(t->port);
    for (int p = 0; p < 3; p++) {
        snprintf(v, sizeof(v), "run%d-%s", run, probe[p]);
        store(c, "set", probe[p], 0, 0, v, "STORED\r\n");
        for (int s = 0; s < 3; s++) {
            exact_placed += direct_is(t->mc[s].port, probe[p], 0,
                                      s == probe_on[p] ? v : NULL);
        }
    }
    for (int i = 0; i < MIX_KEYS; i++) {
        char k[16];
        int pool;

        mix_key(k, sizeof(k), i, &pool);
        snprintf(v, sizeof(v), "run%d-%s-%.*s", run, k, i % 11, "0123456789a");
        store(c, "set", k, (unsigned)i, 0, v, "STORED\r\n");
        kl += (size_t)snprintf(keys + kl, sizeof(keys) - kl, " %s", k);
        wl = value_block(want, wl, sizeof(want), k, (unsigned)i, v);
        dl[pool] = value_block(direct_want[pool], dl[pool],
                               sizeof(direct_want[pool]), k, (unsigned)i, v);
    }
    memcpy(want + wl, "END\r\n", 6);
    assert_int_equal(harness_sends(c, "get"), 0);
    assert_int_equal(harness_sends(c, keys), 0);
    assert_int_equal(harness_sends(c, "\r\n"), 0);
    assert_true(harness_expect_n(c, want, wl + 5, HARNESS_TIMEOUT_MS));
    assert_true(harness_quiet(c, 50));
    harness_conn_close(c);
    /* each memcached holds exactly its family, in request order */
    for (int s = 0; s < 3; s++) {
        struct harness_conn *d = conn(t->mc[s].port);
        char *r = harness_get_reply(d, keys + 1, HARNESS_TIMEOUT_MS);

        memcpy(direct_want[s] + dl[s], "END\r\n", 6);
        assert_non_null(r);
        if (strcmp(r, direct_want[s]) != 0) {
            harness_diff("expected", direct_want[s], strlen(direct_want[s]),
                         "received", r, strlen(r));
            fail_msg("pool %c does not hold exactly its family", 'A' + s);
        }
        free(r);
        harness_conn_close(d);
    }
    printf("    prefix (%s first): abc on B, axy on A, zzz on C: %d/9 direct "
           "checks; 100-key get over three routes exact (%zu bytes)\n",
           short_first ? "\"a\"" : "\"ab\"", exact_placed, wl + 5);
    assert_int_equal(exact_placed, 9);
}

static void
test_longest_prefix(void **state)
{
    struct rt *t = fixture(state);

    prefix_run(t, 1, true);
    prefix_run(t, 2, false);
}

/* ---- 5. shadow --------------------------------------------------------- */

#define SHADOW_KEYS  10000
#define SHADOW_REQMS 300
#define STOPPED_OPS  1000

static void
shadow_key(char *out, size_t cap, size_t i)
{
    snprintf(out, cap, "sh:%zu", i);
}

#define SHADOW_CONF                                                            \
    "pools:\n"                                                                 \
    "  main: {servers: [\"127.0.0.1:%d\"]}\n"                                  \
    "  new: {servers: [\"127.0.0.1:%d\"]}\n"                                   \
    "routes:\n"                                                                \
    "  - default: {shadow: {route: main, to: new, fraction: 0.1}}\n"

/* Set the keys through riven on one connection, then wait for a barrier:
 * a key the shadow already holds, set again on the same connection,
 * reaches the shadow after every earlier copy (one socket per connection
 * and backend, in order). The keys on the shadow are marked in owner;
 * their number. */
static size_t
shadow_fill(struct rt *t, uint8_t *owner)
{
    static uint8_t first[SHADOW_KEYS];
    struct harness_conn *c;
    int64_t start;
    size_t found, barrier = SIZE_MAX;
    char k[32], v[32];

    memset(owner, 0, SHADOW_KEYS);
    rt_riven(t, true, SHADOW_REQMS, SHADOW_CONF, t->mc[0].port, t->mc[1].port);
    c = conn(t->port);
    assert_int_equal(pipe_set(c, shadow_key, SHADOW_KEYS), SHADOW_KEYS);
    start = harness_now_ms();
    while (barrier == SIZE_MAX) {
        memset(first, 0, sizeof(first));
        scan(t->mc[1].port, shadow_key, SHADOW_KEYS, first, 0);
        for (size_t i = 0; i < SHADOW_KEYS && barrier == SIZE_MAX; i++) {
            barrier = first[i] ? i : SIZE_MAX;
        }
        if (barrier == SIZE_MAX) {
            assert_true(harness_now_ms() - start < WAIT_MS);
            poll(NULL, 0, POLL_MS);
        }
    }
    shadow_key(k, sizeof(k), barrier);
    snprintf(v, sizeof(v), "bar-%zu", barrier);
    store(c, "set", k, 0, 0, v, "STORED\r\n");
    harness_conn_close(c);
    assert_true(wait_direct(t->mc[1].port, k, 0, v, WAIT_MS) >= 0);
    found = scan(t->mc[1].port, shadow_key, SHADOW_KEYS, owner, 0);
    /* main holds every key */
    memset(first, 0, sizeof(first));
    assert_int_equal(scan(t->mc[0].port, shadow_key, SHADOW_KEYS, first, 0),
                     SHADOW_KEYS);
    return found;
}

static void
test_shadow(void **state)
{
    struct rt *t = fixture(state);
    uint8_t *run1 = calloc(SHADOW_KEYS, 1), *run2 = calloc(SHADOW_KEYS, 1);
    size_t n1, n2, same = 0, copies = 0;
    int64_t slowest = 0, t0, idle_ms;
    int ok = 0;
    double before[4], after[4], sum0, sum, want;
    struct harness_conn *c;

    assert_true(run1 != NULL && run2 != NULL);
    n1 = shadow_fill(t, run1);
    /* everything anew: new memcacheds, new riven */
    rt_stop_all(t);
    rt_start_mcs(t);
    n2 = shadow_fill(t, run2);
    for (size_t i = 0; i < SHADOW_KEYS; i++) {
        same += run1[i] == run2[i];
    }
    /* every copy counted once: n2 keys and the barrier's second set */
    sum0 = shadow_wait_sum(t->mport, (double)n2 + 1, before);
    printf("    shadow 0.1: %zu then %zu of %d keys on the shadow, %zu/%d "
           "placed alike; copies counted %.0f (ok %.0f error %.0f timeout "
           "%.0f dropped %.0f), want %zu\n",
           n1, n2, SHADOW_KEYS, same, SHADOW_KEYS, sum0, before[0], before[1],
           before[2], before[3], n2 + 1);
    assert_true(n1 >= 900 && n1 <= 1100);
    assert_int_equal(same, SHADOW_KEYS);
    assert_true(sum0 == (double)n2 + 1);

    /* the shadow stopped: the client neither fails nor waits. The keys
     * are the first STOPPED_OPS of the fill, so the copies (a set and a
     * get of each key in the fraction) are known; the connection stays
     * open and idle while they time out (its close would count them
     * dropped). */
    assert_int_equal(harness_proc_signal(&t->mc[1], SIGSTOP), 0);
    c = conn(t->port);
    for (int i = 0; i < STOPPED_OPS; i++) {
        char k[32], v[32], req[96], *line;
        bool good;

        shadow_key(k, sizeof(k), (size_t)i);
        snprintf(v, sizeof(v), "stopped-%d", i);
        set_req(req, sizeof(req), "set", k, 0, 0, v);
        t0 = harness_now_ms();
        line = line_of(c, req);
        slowest = MAX(slowest, harness_now_ms() - t0);
        ok += line != NULL && strcmp(line, "STORED\r\n") == 0;
        free(line);
        t0 = harness_now_ms();
        good = get_is(c, k, 0, v);
        slowest = MAX(slowest, harness_now_ms() - t0);
        ok += good;
        copies += run2[i] ? 2 : 0;
    }
    t0 = harness_now_ms();
    want = sum0 + (double)copies;
    sum = shadow_wait_sum(t->mport, want, after);
    idle_ms = harness_now_ms() - t0;
    printf("    shadow stopped: %d/%d requests exact, slowest %lld ms "
           "(request_ms %d); %zu copies, counted %.0f after %lld ms idle: "
           "ok +%.0f error +%.0f timeout +%.0f dropped +%.0f\n",
           ok, 2 * STOPPED_OPS, (long long)slowest, SHADOW_REQMS, copies,
           sum - sum0, (long long)idle_ms, after[0] - before[0],
           after[1] - before[1], after[2] - before[2], after[3] - before[3]);
    if (sum != want) { /* for the report: does a request count them? */
        assert_true(get_is(c, "sh:0", 0, "stopped-0"));
        printf("    after one more request on the connection: timeout "
               "+%.0f\n",
               metric_wait(t->mport, "riven_shadow_requests_total",
                           "route=\"default\"", "result=\"timeout\"",
                           before[2] + 1) -
                   before[2]);
    }
    harness_conn_close(c);
    assert_int_equal(harness_proc_signal(&t->mc[1], SIGCONT), 0);
    free(run1);
    free(run2);
    assert_int_equal(ok, 2 * STOPPED_OPS);
    assert_true(slowest < SHADOW_REQMS / 2);
    assert_true(sum == want);
    assert_true(after[2] > before[2]);  /* timeouts among them */
    assert_true(after[0] == before[0]); /* nothing answered by a stopped one */
}

/* ---- 6. warm_up -------------------------------------------------------- */

static void
test_warm_up(void **state)
{
    struct rt *t = fixture(state);
    int cold = t->mc[0].port, warm = t->mc[1].port;
    struct harness_conn *c, *d;
    struct item it = {0};
    int64_t start, fill_ms;
    double fills;

    rt_riven(t, true, REQUEST_MS,
             "pools:\n"
             "  new: {servers: [\"127.0.0.1:%d\"]}\n"
             "  main: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - prefix: \"user:\"\n"
             "    route: {warm_up: {cold: new, warm: main}}\n"
             "  - default: main\n",
             cold, warm);
    d = conn(warm);
    store(d, "set", "user:7", 7, 100, "warm-value", "STORED\r\n");
    harness_conn_close(d);
    c = conn(t->port);
    start = harness_now_ms();
    assert_true(harness_roundtrip(c, "get user:7\r\n",
                                  "VALUE user:7 7 10\r\nwarm-value\r\n"
                                  "END\r\n"));
    /* the fill reaches cold: poll it directly */
    for (;;) {
        assert_true(mg_item(cold, "user:7", &it));
        if (it.hit || harness_now_ms() - start > 2000) {
            break;
        }
        poll(NULL, 0, POLL_MS);
    }
    fill_ms = harness_now_ms() - start;
    fills = metric_wait(t->mport, "riven_warmup_fills_total", "route=\"user:\"",
                        NULL, 1);
    /* other writes go to cold only */
    store(c, "set", "user:8", 0, 0, "cold-only", "STORED\r\n");
    assert_true(direct_is(cold, "user:8", 0, "cold-only"));
    assert_true(direct_is(warm, "user:8", 0, NULL));
    /* a delete removes both copies */
    assert_true(harness_roundtrip(c, "delete user:7\r\n", "DELETED\r\n"));
    printf("    warm_up: cold filled in %lld ms with flags %u, TTL %ld, "
           "'%s'; fills counted %.0f; delete removed both\n",
           (long long)fill_ms, it.flags, it.ttl, it.val, fills);
    assert_true(direct_is(cold, "user:7", 0, NULL));
    assert_true(direct_is(warm, "user:7", 0, NULL));
    harness_conn_close(c);
    assert_true(it.hit);
    assert_int_equal(it.flags, 7);
    assert_true(it.ttl >= 98 && it.ttl <= 100);
    assert_string_equal(it.val, "warm-value");
    assert_true(fills == 1);
}

/* ---- 7. hash tags ------------------------------------------------------ */

#define TAG_PAIRS 1000

static void
tag_key(char *out, size_t cap, size_t i)
{
    snprintf(out, cap, "user:{%zu}:%c", i / 2, i % 2 ? 'y' : 'x');
}

static void
test_hash_tag(void **state)
{
    struct rt *t = fixture(state);
    uint8_t *owner = calloc(2 * TAG_PAIRS, 1);
    struct harness_conn *c;
    size_t per[3] = {0}, one = 0, paired = 0;

    assert_non_null(owner);
    rt_riven(t, false, REQUEST_MS,
             "pools:\n"
             "  tagged:\n"
             "    servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\", "
             "\"127.0.0.1:%d\"]\n"
             "    hash_tag: \"{}\"\n"
             "routes:\n"
             "  - default: tagged\n",
             t->mc[0].port, t->mc[1].port, t->mc[2].port);
    c = conn(t->port);
    assert_int_equal(pipe_set(c, tag_key, 2 * TAG_PAIRS), 2 * TAG_PAIRS);
    harness_conn_close(c);
    for (unsigned s = 0; s < 3; s++) {
        scan(t->mc[s].port, tag_key, 2 * TAG_PAIRS, owner, s);
    }
    for (size_t i = 0; i < 2 * TAG_PAIRS; i++) {
        bool single = owner[i] == 1 || owner[i] == 2 || owner[i] == 4;

        one += single;
        if (i % 2 == 0) {
            paired += single && owner[i] == owner[i + 1];
            for (unsigned s = 0; s < 3; s++) {
                per[s] += owner[i] == (1u << s);
            }
        }
    }
    printf("    hash_tag: %zu/%d keys on exactly one server, %zu/%d pairs "
           "together; pairs per server %zu %zu %zu\n",
           one, 2 * TAG_PAIRS, paired, TAG_PAIRS, per[0], per[1], per[2]);
    free(owner);
    assert_int_equal(one, 2 * TAG_PAIRS);
    assert_int_equal(paired, TAG_PAIRS);
    for (size_t s = 0; s < 3; s++) {
        assert_true(per[s] >= 100); /* ketama: about a third each */
    }
}

/* ---- 8. metrics -------------------------------------------------------- */

static void
test_route_metrics(void **state)
{
    struct rt *t = fixture(state);
    struct harness_conn *c;
    static const struct {
        const char *label;
        double want;
    } routes[] = {
        {"route=\"m1:\"", 7},
        {"route=\"m2:\"", 5},
        {"route=\"fo:\"", 6},
        {"route=\"default\"", 4},
    };
    double got[4], fo_failovers, m1_failovers;
    int wrong = 0;

    /* pool D's memcached is gone before riven starts: refused */
    harness_proc_kill(&t->mc[3]);
    rt_riven(t, true, REQUEST_MS,
             "pools:\n"
             "  A: {servers: [\"127.0.0.1:%d\"]}\n"
             "  B: {servers: [\"127.0.0.1:%d\"]}\n"
             "  C: {servers: [\"127.0.0.1:%d\"]}\n"
             "  D: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - {prefix: \"m1:\", route: A}\n"
             "  - {prefix: \"m2:\", route: B}\n"
             "  - {prefix: \"fo:\", route: {failover: [D, B]}}\n"
             "  - default: C\n",
             t->mc[0].port, t->mc[1].port, t->mc[2].port, t->mc[3].port);
    c = conn(t->port);
    for (int i = 0; i < 7; i++) { /* m1: 7 sets */
        store(c, "set", "m1:k", 0, 0, "a", "STORED\r\n");
    }
    for (int i = 0; i < 3; i++) { /* m2: 3 sets, 2 gets */
        store(c, "set", "m2:k", 0, 0, "b", "STORED\r\n");
    }
    assert_true(get_is(c, "m2:k", 0, "b"));
    assert_true(get_is(c, "m2:k", 0, "b"));
    for (int i = 0; i < 3; i++) { /* fo: 3 sets, 3 gets, each a failover */
        store(c, "set", "fo:k", 0, 0, "f", "STORED\r\n");
        assert_true(get_is(c, "fo:k", 0, "f"));
    }
    store(c, "set", "other", 0, 0, "c", "STORED\r\n"); /* default: 4 */
    assert_true(get_is(c, "other", 0, "c"));
    assert_true(get_is(c, "other", 0, "c"));
    assert_true(get_is(c, "missing", 0, NULL));
    harness_conn_close(c);
    assert_true(direct_is(t->mc[1].port, "fo:k", 0, "f"));

    for (size_t i = 0; i < 4; i++) {
        got[i] = metric_wait(t->mport, "riven_route_requests_total",
                             routes[i].label, NULL, routes[i].want);
        printf("    riven_route_requests_total{%s} = %.0f (want %.0f)\n",
               routes[i].label, got[i], routes[i].want);
        wrong += got[i] != routes[i].want;
    }
    fo_failovers = metric_wait(t->mport, "riven_failovers_total",
                               "route=\"fo:\"", NULL, 6);
    m1_failovers =
        metric(t->mport, "riven_failovers_total", "route=\"m1:\"", NULL);
    printf("    riven_failovers_total{route=\"fo:\"} = %.0f (want 6); "
           "{route=\"m1:\"} = %.0f (want absent or 0)\n",
           fo_failovers, m1_failovers);
    assert_int_equal(wrong, 0);
    assert_true(fo_failovers == 6);
    assert_true(m1_failovers <= 0);
}

/* ---- 9. validation ----------------------------------------------------- */

static void
test_validation(void **state)
{
    struct rt *t = fixture(state);
    int port = t->mc[0].port, st;
    char out[2048], want[128];
    bool named;
    FILE *f;

    /* line 5: an unknown pool inside a rule */
    f = fopen(t->path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:1\"]\n"
            "pools:\n"
            "  a: {servers: [\"127.0.0.1:%d\"]}\n"
            "routes:\n"
            "  - {prefix: \"x:\", route: {failover: [a, nosuchpool]}}\n"
            "  - default: a\n",
            port);
    assert_int_equal(fclose(f), 0);
    st = check_config(t->path, out, sizeof(out));
    snprintf(want, sizeof(want), "%s:5:", t->path);
    named = strstr(out, want) != NULL && strstr(out, "nosuchpool") != NULL;
    printf("    unknown pool in a rule: exit %d, '%.*s'\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)strcspn(out, "\n"), out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_true(named);

    /* line 5: an unknown pool as the default route */
    f = fopen(t->path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:1\"]\n"
            "pools:\n"
            "  a: {servers: [\"127.0.0.1:%d\"]}\n"
            "routes:\n"
            "  - default: otherpool\n",
            port);
    assert_int_equal(fclose(f), 0);
    st = check_config(t->path, out, sizeof(out));
    named = strstr(out, want) != NULL && strstr(out, "otherpool") != NULL;
    printf("    unknown default pool: exit %d, '%.*s'\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)strcspn(out, "\n"), out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_true(named);
}

/* The example of issue 13, every rule kind once: riven -t accepts it. */
static void
test_example_config(void **state)
{
    struct rt *t = fixture(state);
    int port = t->mc[0].port, st;
    char out[2048];
    FILE *f;

    f = fopen(t->path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:1\"]\n"
            "pools:\n"
            "  main: {servers: [\"127.0.0.1:%d\"]}\n"
            "  replica: {servers: [\"127.0.0.1:%d\"], hash_tag: \"{}\"}\n"
            "  gutter: {servers: [\"127.0.0.1:%d\"]}\n"
            "  new: {servers: [\"127.0.0.1:%d\"]}\n"
            "routes:\n"
            "  - prefix: \"sess:\"\n"
            "    route: {all_sync: [main, replica], read: failover}\n"
            "  - prefix: \"feed:\"\n"
            "    route: {failover: [main, {pool: gutter, ttl_max: 300}], "
            "miss: true}\n"
            "  - prefix: \"user:\"\n"
            "    route: {warm_up: {cold: new, warm: main}}\n"
            "  - prefix: \"x:\"\n"
            "    route: {all_fastest: [main, replica]}\n"
            "  - default: {shadow: {route: main, to: new, fraction: 0.1}}\n",
            port, port + 1, port + 2, port + 3);
    assert_int_equal(fclose(f), 0);
    st = check_config(t->path, out, sizeof(out));
    printf("    the issue's example: exit %d%s%.*s\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, out[0] ? ", " : "",
           (int)strcspn(out, "\n"), out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- 10. reload ------------------------------------------------------- */

/* Rewrite t->path for the running riven (same listener), body as
 * rt_riven's, and send it SIGHUP. */
static void __attribute__((format(printf, 2, 3)))
rt_reload(struct rt *t, const char *fmt, ...)
{
    char body[4096], tmp[80];
    va_list ap;
    FILE *f;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    snprintf(tmp, sizeof(tmp), "%s.new", t->path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: error\n"
            "timeouts: {connect_ms: 1000, request_ms: %u}\n%s",
            t->port, REQUEST_MS, body);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, t->path), 0); /* riven reads it whole */
    assert_int_equal(kill(t->rv.pid, SIGHUP), 0);
}

/* SIGHUP swaps the route tree under an open connection: r: moves from
 * pool a to all_sync [c, a], from the connection's first request after
 * the reload on; the connection is never dropped; a bad file (an unknown
 * pool) keeps the running tree. */
static void
test_reload(void **state)
{
    struct rt *t = fixture(state);
    int a = t->mc[0].port, b = t->mc[1].port, cc = t->mc[2].port;
    struct harness_conn *c;
    double ok, failed;

    rt_riven(t, true, REQUEST_MS,
             "pools:\n"
             "  a: {servers: [\"127.0.0.1:%d\"]}\n"
             "  b: {servers: [\"127.0.0.1:%d\"]}\n"
             "routes:\n"
             "  - {prefix: \"r:\", route: a}\n"
             "  - default: b\n",
             a, b);
    c = conn(t->port);
    store(c, "set", "r:old", 0, 0, "one", "STORED\r\n");
    store(c, "set", "z:old", 0, 0, "two", "STORED\r\n");
    assert_true(direct_is(a, "r:old", 0, "one"));
    assert_true(direct_is(b, "z:old", 0, "two"));

    rt_reload(t,
              "pools:\n"
              "  a: {servers: [\"127.0.0.1:%d\"]}\n"
              "  b: {servers: [\"127.0.0.1:%d\"]}\n"
              "  c: {servers: [\"127.0.0.1:%d\"]}\n"
              "routes:\n"
              "  - {prefix: \"r:\", route: {all_sync: [c, a]}}\n"
              "  - default: b\n",
              a, b, cc);
    ok = metric_wait(t->mport, "riven_config_reloads_total",
                     "result=\"success\"", NULL, 1);
    assert_true(ok == 1);
    /* the same connection: its next batch runs the new tree */
    store(c, "set", "r:new", 0, 0, "three", "STORED\r\n");
    assert_true(direct_is(cc, "r:new", 0, "three"));
    assert_true(direct_is(a, "r:new", 0, "three")); /* all_sync: both */
    /* reads of r: now go to c, the first child, which never had r:old */
    assert_true(get_is(c, "r:old", 0, NULL));
    store(c, "set", "z:new", 0, 0, "four", "STORED\r\n");
    assert_true(direct_is(b, "z:new", 0, "four"));

    /* a file naming an unknown pool: logged, the running tree stays */
    rt_reload(t,
              "pools:\n"
              "  a: {servers: [\"127.0.0.1:%d\"]}\n"
              "routes:\n"
              "  - {prefix: \"r:\", route: nosuchpool}\n"
              "  - default: a\n",
              a);
    failed = metric_wait(t->mport, "riven_config_reloads_total",
                         "result=\"failure\"", NULL, 1);
    assert_true(failed == 1);
    store(c, "set", "r:kept", 0, 0, "five", "STORED\r\n");
    assert_true(direct_is(cc, "r:kept", 0, "five"));
    assert_true(direct_is(a, "r:kept", 0, "five"));
    printf("    reload: r: on all_sync [c, a] from the first request after "
           "the reload, on one open connection; the bad file counted "
           "(failure %.0f) and the tree kept\n",
           failed);
    harness_conn_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_sync, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_all_fastest, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_all_fastest_counted, setup2,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_longest_prefix, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_shadow, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_warm_up, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_hash_tag, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_route_metrics, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_example_config, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup3, teardown),
    };

    if (getenv("INTEG_ROUTE_ONLY") != NULL) { /* one case, to debug it */
        cmocka_set_test_filter(getenv("INTEG_ROUTE_ONLY"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
