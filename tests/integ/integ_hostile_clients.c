/*
 * integ_hostile_clients: clients that attack riven (issue 9, items 3, 5).
 *
 * Each case starts a fresh riven (its own YAML file: listen port, the one
 * memcached of the group, the limits the case needs) so its peak RSS
 * (VmHWM) and open fds belong to that case alone. While the case runs, an
 * observer thread on its own connection does exact set/get round trips:
 * it must never see a wrong byte and its slowest round trip is reported.
 *
 *   slowloris        a byte per 200 ms, client_idle_timeout_ms 1000: closed
 *                    (EOF, nothing said) 1 s after connecting
 *   conn_flood       max_connections 50: 20,000 more attempts, each
 *                    "SERVER_ERROR too many open connections" then EOF; the
 *                    fd count returns to its baseline
 *   never_reads      pipelined gets of a 500 KB value, never read: riven
 *                    stops reading (EAGAIN), closes after
 *                    client_write_timeout_ms 1000, RSS < 100 MB over start
 *   bad_lengths      2^32-1, negative lengths, NUL and control bytes in
 *                    keys: memcached's exact answers (checked on memcached
 *                    directly in the same case where they agree)
 *   huge_get_line    20 MB "get aaa..." then "\r\n": CLIENT_ERROR, usable,
 *                    RSS < 16 MB over start
 *   bin_short_body   body length < key + extras: the same bytes and close
 *                    as memcached
 *   setq_flood       100,000 binary setq then a noop: one noop reply only,
 *                    every value stored
 *   load_reload      64 clients, /metrics scraped by two threads, two
 *                    SIGHUP reloads: every operation exact; riven's stderr
 *                    (captured) has no ThreadSanitizer report
 *   idle_reload      a reload sets client_idle_timeout_ms 1000 on a
 *                    connection idle longer: a request in two parts is
 *                    answered, then EOF 1 s after the answer
 *
 * Needs riven: every case is skipped with RIVEN_DIRECT=1 (bad_lengths and
 * bin_short_body compare with memcached inside the case instead).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "binpkt.h"
#include "harness.h"
#include "observer.h"

#define MB          (1024L * 1024L)
#define TOO_MANY    "SERVER_ERROR too many open connections\r\n"
#define BAD_FORMAT  "CLIENT_ERROR bad command line format\r\n"
#define DEADLINE_MS 5000
#define IDLE_MS     1000 /* client_idle_timeout_ms of slowloris */
#define WRITE_MS    1000 /* client_write_timeout_ms of never_reads */
#define CLOSE_SLACK 1500 /* ms allowed past a timeout (TSan builds) */
#define STALL_SLACK                                                            \
    700                  /* ms allowed past client_write_timeout_ms,           \
                            counted from the client's first EAGAIN */
#define OBS_SLOW_MS 1000 /* an observer round trip slower: not served */

static struct harness_proc mc; /* the group's memcached */

/* ---- one riven per case ------------------------------------------------ */

struct rv_conf {
    uint32_t max_conns; /* 0: left out (nofile - 64) */
    uint32_t idle_ms;   /* client_idle_timeout_ms, 0: off */
    uint32_t write_ms;  /* client_write_timeout_ms, 0: left out */
    bool metrics;       /* -m 127.0.0.1:<free port> */
    bool capture;       /* riven's stderr into a file */
};

struct fixture {
    struct rv_conf conf;
    struct harness_proc rv;
    int port;
    int mport;        /* /metrics, 0 if off */
    char path[64];    /* YAML file */
    char errpath[64]; /* captured stderr, "" if none */
    long rss0;        /* VmRSS once serving */
    struct observer *ob;
};

static void
conf_write(const struct fixture *fx)
{
    char tmp[80];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", fx->path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\npool:\n"
            "  servers: [\"127.0.0.1:%d\"]\n",
            fx->port, mc.port);
    if (fx->conf.max_conns != 0) {
        fprintf(f, "max_connections: %u\n", fx->conf.max_conns);
    }
    fprintf(f, "client_idle_timeout_ms: %u\n", fx->conf.idle_ms);
    if (fx->conf.write_ms != 0) {
        fprintf(f, "client_write_timeout_ms: %u\n", fx->conf.write_ms);
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, fx->path), 0);
}

/* Start riven for fx; stderr goes to fx->errpath when capturing. */
static int
rv_start(struct fixture *fx)
{
    char maddr[32];
    const char *extra[] = {"-m", maddr, NULL};
    int saved = -1, efd = -1, rc = -1;

    if (fx->conf.capture) {
        snprintf(fx->errpath, sizeof(fx->errpath),
                 "/tmp/riven-hostile-err-XXXXXX");
        efd = mkstemp(fx->errpath);
        if (efd < 0) {
            return -1;
        }
    }
    for (int attempt = 0; attempt < 5 && rc != 0; attempt++) {
        fx->port = harness_free_port();
        fx->mport = fx->conf.metrics ? harness_free_port() : 0;
        snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", fx->mport);
        conf_write(fx);
        fflush(stderr);
        if (efd >= 0) {
            saved = dup(STDERR_FILENO);
            dup2(efd, STDERR_FILENO);
        }
        rc = harness_riven_start(&fx->rv, 0, fx->path, fx->port,
                                 fx->conf.metrics ? extra : NULL);
        if (efd >= 0) {
            fflush(stderr);
            dup2(saved, STDERR_FILENO);
            close(saved);
        }
        if (rc == 0 && fx->mport != 0 &&
            harness_wait_ready(&fx->rv, fx->mport, DEADLINE_MS) != 0) {
            harness_proc_stop(&fx->rv, 2000);
            rc = -1;
        }
    }
    if (efd >= 0) {
        close(efd);
    }
    return rc;
}

/* ---- the observer -------------------------------------------------- */

/* One observer round trip: a set and a get of it in one write, exact
 * replies. */
static bool
obs_trip(struct harness_conn *c, unsigned long i)
{
    char req[128], val[64], want[160];
    int n = snprintf(val, sizeof(val), "obs-%lu", i * 2654435761ul);

    snprintf(req, sizeof(req), "set obs%lu 0 0 %d\r\n%s\r\nget obs%lu\r\n",
             i % 16, n, val, i % 16);
    snprintf(want, sizeof(want), "STORED\r\nVALUE obs%lu 0 %d\r\n%s\r\nEND\r\n",
             i % 16, n, val);
    return harness_roundtrip(c, req, want);
}

/* ---- fixtures ------------------------------------------------------ */

static int
case_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    int fd;

    if (fx == NULL) {
        return -1;
    }
    fx->conf = *(const struct rv_conf *)*state;
    fx->rv.pid = -1;
    *state = fx;
    if (harness_direct()) {
        return 0;
    }
    snprintf(fx->path, sizeof(fx->path), "/tmp/riven-hostile-XXXXXX.yml");
    fd = mkstemps(fx->path, 4);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    if (rv_start(fx) != 0) {
        return -1;
    }
    fx->ob = observer_start(fx->port, obs_trip, 5);
    fx->rss0 = harness_proc_status(fx->rv.pid, "VmRSS");
    return fx->rss0 > 0 ? 0 : -1;
}

/* Print riven's captured stderr; true if it holds a TSan report. */
static bool
tsan_reported(const char *path)
{
    char line[512];
    bool hit = false;
    FILE *f;

    if (path[0] == '\0' || (f = fopen(path, "r")) == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        hit = hit || strstr(line, "ThreadSanitizer") != NULL;
        fprintf(stderr, "    riven stderr: %s", line);
    }
    fclose(f);
    return hit;
}

static int
case_teardown(void **state)
{
    struct fixture *fx = *state;
    bool ok = observer_finish(fx->ob, OBS_SLOW_MS);

    if (fx->rv.pid > 0) {
        long hwm = harness_proc_status(fx->rv.pid, "VmHWM");

        printf("    riven RSS: %ld KiB at start, peak %ld KiB (+%ld KiB)\n",
               fx->rss0 / 1024, hwm / 1024, (hwm - fx->rss0) / 1024);
        if (!harness_proc_alive(&fx->rv)) {
            fprintf(stderr, "integ_hostile_clients: riven died\n");
            ok = false;
        }
    }
    harness_proc_stop(&fx->rv, DEADLINE_MS);
    if (tsan_reported(fx->errpath)) {
        fprintf(stderr, "integ_hostile_clients: ThreadSanitizer report\n");
        ok = false;
    }
    if (fx->errpath[0] != '\0') {
        unlink(fx->errpath);
    }
    if (fx->path[0] != '\0') {
        unlink(fx->path);
    }
    free(fx);
    return ok ? 0 : -1;
}

static struct fixture *
fixture_of(void **state)
{
    if (harness_direct()) {
        skip();
    }
    return *state;
}

/* Peak RSS growth since the case started, in bytes, divided by
 * harness_rss_scale(). */
static long
rss_growth(const struct fixture *fx)
{
    long hwm = harness_proc_status(fx->rv.pid, "VmHWM");

    assert_true(hwm > 0);
    return (hwm - fx->rss0) / harness_rss_scale();
}

static void
still_usable(struct harness_conn *c)
{
    assert_true(harness_roundtrip(c, "set vk 0 0 2\r\nok\r\nget vk\r\n",
                                  "STORED\r\nVALUE vk 0 2\r\nok\r\nEND\r\n"));
}

/* ---- slowloris ------------------------------------------------------ */

#define SLOW_CONNS 10
#define SLOW_PACE  200 /* ms between bytes */

static void
test_slowloris(void **state)
{
    struct fixture *fx = fixture_of(state);
    static const char drip[] = "get slowloris-key-that-never-ends-";
    struct harness_conn *c[SLOW_CONNS];
    int64_t t0[SLOW_CONNS], closed[SLOW_CONNS];
    size_t sent[SLOW_CONNS], got[SLOW_CONNS];
    int open = SLOW_CONNS;
    int64_t end;

    for (int i = 0; i < SLOW_CONNS; i++) {
        c[i] = harness_conn_open(fx->port, DEADLINE_MS);
        assert_non_null(c[i]);
        t0[i] = harness_now_ms();
        closed[i] = -1;
        sent[i] = got[i] = 0;
    }
    end = harness_now_ms() + IDLE_MS + CLOSE_SLACK + 1000;
    while (open > 0 && harness_now_ms() < end) {
        struct pollfd pfd[SLOW_CONNS];
        int64_t next = harness_now_ms() + SLOW_PACE;

        for (int i = 0; i < SLOW_CONNS; i++) {
            pfd[i] = (struct pollfd){.fd = closed[i] < 0 ? c[i]->fd : -1,
                                     .events = POLLIN};
            if (closed[i] < 0 &&
                send(c[i]->fd, &drip[sent[i] % (sizeof(drip) - 1)], 1,
                     MSG_NOSIGNAL) == 1) {
                sent[i]++;
            }
        }
        /* the pacing wait, cut short by a close */
        while (open > 0 && harness_now_ms() < next) {
            if (poll(pfd, SLOW_CONNS, (int)(next - harness_now_ms())) <= 0) {
                continue;
            }
            for (int i = 0; i < SLOW_CONNS; i++) {
                char b[64];
                ssize_t n;

                if (pfd[i].fd < 0 || pfd[i].revents == 0) {
                    continue;
                }
                n = read(c[i]->fd, b, sizeof(b));
                if (n > 0) {
                    got[i] += (size_t)n;
                    continue;
                }
                closed[i] = harness_now_ms();
                pfd[i].fd = -1;
                open--;
            }
        }
    }
    for (int i = 0; i < SLOW_CONNS; i++) {
        int64_t after = closed[i] - t0[i];

        if (i == 0 || closed[i] < 0 || got[i] != 0) {
            printf("    slow client %d: %zu bytes sent, %zu received, "
                   "closed after %lld ms\n",
                   i, sent[i], got[i], closed[i] < 0 ? -1LL : (long long)after);
        }
        assert_true(closed[i] >= 0);
        assert_int_equal(got[i], 0); /* closed without a word */
        assert_true(after >= IDLE_MS - 20);
        assert_true(after <= IDLE_MS + CLOSE_SLACK);
        harness_conn_close(c[i]);
    }
    assert_true(rss_growth(fx) < 16 * MB);
    /* a prompt client on a fresh connection meanwhile and after */
    c[0] = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c[0]);
    still_usable(c[0]);
    harness_conn_close(c[0]);
}

/* ---- connection flood ----------------------------------------------- */

#define FLOOD_MAX      50
#define FLOOD_ATTEMPTS 20000
#define FLOOD_BATCH    100

/* Wait until riven's fd count is want; the last count seen. */
static int
fds_settle(pid_t pid, int want)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;
    int n;

    while ((n = (int)harness_proc_fds(pid)) != want &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, 5);
    }
    return n;
}

/* One batch of refused attempts; the number answered exactly. */
static int
flood_batch(int port, int n, int *dumped)
{
    struct harness_conn *c[FLOOD_BATCH];
    int ok = 0;

    for (int i = 0; i < n; i++) {
        c[i] = harness_conn_open(port, DEADLINE_MS);
    }
    for (int i = 0; i < n; i++) {
        bool good =
            c[i] != NULL &&
            harness_expect_n(c[i], TOO_MANY, strlen(TOO_MANY), DEADLINE_MS) &&
            harness_wait_eof(c[i], DEADLINE_MS) && c[i]->len == 0;

        if (!good && (*dumped)++ < 3 && c[i] != NULL) {
            harness_dump("integ_hostile_clients: refused attempt got",
                         c[i]->buf, c[i]->len, 200);
        }
        ok += good;
        harness_conn_close(c[i]);
    }
    return ok;
}

static void
test_conn_flood(void **state)
{
    struct fixture *fx = fixture_of(state);
    struct harness_conn *hold[FLOOD_MAX];
    long nofile = harness_nofile_limit();
    int attempts = FLOOD_ATTEMPTS, refused = 0, dumped = 0;
    int base, peak, after;
    int64_t t0, dt;

    /* this process holds FLOOD_MAX + FLOOD_BATCH sockets at most, riven
     * FLOOD_MAX clients and their backend sockets */
    if (nofile > 0 && nofile < 2 * (FLOOD_MAX + FLOOD_BATCH) + 64) {
        printf("    ulimit -n %ld is too low for %d connections: skipped\n",
               nofile, FLOOD_MAX);
        skip();
    }
    base = (int)harness_proc_fds(fx->rv.pid);
    /* the observer holds one slot: fill the others, each proven counted */
    for (int i = 0; i < FLOOD_MAX - 1; i++) {
        hold[i] = harness_conn_open(fx->port, DEADLINE_MS);
        assert_non_null(hold[i]);
        assert_true(harness_roundtrip(hold[i], "get hold\r\n", "END\r\n"));
    }
    peak = (int)harness_proc_fds(fx->rv.pid);
    t0 = harness_now_ms();
    for (int done = 0; done < attempts; done += FLOOD_BATCH) {
        int n = attempts - done < FLOOD_BATCH ? attempts - done : FLOOD_BATCH;

        refused += flood_batch(fx->port, n, &dumped);
        if (dumped > 3) {
            break;
        }
    }
    dt = harness_now_ms() - t0;
    printf("    %d of %d attempts beyond max_connections %d refused exactly "
           "in %lld ms\n",
           refused, attempts, FLOOD_MAX, (long long)dt);
    assert_int_equal(refused, attempts);
    assert_true(rss_growth(fx) < 32 * MB);
    /* the held connections still work, then go */
    for (int i = 0; i < FLOOD_MAX - 1; i++) {
        assert_true(harness_roundtrip(hold[i], "get hold\r\n", "END\r\n"));
        harness_conn_close(hold[i]);
    }
    after = fds_settle(fx->rv.pid, base);
    printf("    riven fds: %d before, %d with %d clients, %d after\n", base,
           peak, FLOOD_MAX, after);
    assert_int_equal(after, base);
    hold[0] = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(hold[0]);
    still_usable(hold[0]);
    harness_conn_close(hold[0]);
}

/* ---- a client that never reads -------------------------------------- */

#define BIG_VALUE 500000

static void
set_big(int port)
{
    struct harness_conn *c = harness_conn_open(port, DEADLINE_MS);
    char *req = malloc(BIG_VALUE + 64);
    int n;

    assert_non_null(c);
    assert_non_null(req);
    n = snprintf(req, 64, "set big 0 0 %d\r\n", BIG_VALUE);
    memset(req + n, 'b', BIG_VALUE);
    memcpy(req + n + BIG_VALUE, "\r\n", 2);
    assert_int_equal(harness_send(c, req, (size_t)n + BIG_VALUE + 2), 0);
    assert_true(harness_expect(c, "STORED\r\n"));
    harness_conn_close(c);
    free(req);
}

static void
test_never_reads(void **state)
{
    struct fixture *fx = fixture_of(state);
    char chunk[9 * 455];
    struct harness_conn *c;
    size_t sent = 0, sent_stalled = 0;
    int64_t t0, stall = -1, closed = -1, deadline;
    long rss_max = 0;
    int err = 0;

    set_big(fx->port);
    for (size_t i = 0; i < sizeof(chunk); i += 9) {
        memcpy(chunk + i, "get big\r\n", 9);
    }
    c = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c);
    assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
    t0 = harness_now_ms();
    deadline = t0 + WRITE_MS + CLOSE_SLACK + 3000;
    while (closed < 0 && harness_now_ms() < deadline) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        ssize_t n = send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        long rss = harness_proc_status(fx->rv.pid, "VmRSS");

        rss_max = rss > rss_max ? rss : rss_max;
        if (n > 0) {
            sent += (size_t)n;
            sent_stalled += stall >= 0 ? (size_t)n : 0;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err = errno;
            closed = harness_now_ms();
            break;
        }
        if (stall < 0) {
            stall = harness_now_ms();
        }
        /* blocked: wait for room or for the reset, whichever comes */
        (void)poll(&pfd, 1, 20);
    }
    printf("    never-reading client: %zu bytes of gets sent (%zu after the "
           "first EAGAIN at %lld ms), closed at %lld ms (%s); riven RSS max "
           "+%ld KiB\n",
           sent, sent_stalled, (long long)(stall - t0),
           (long long)(closed - t0), strerror(err),
           (rss_max - fx->rss0) / 1024);
    assert_true(stall >= 0);  /* riven stopped reading */
    assert_true(closed >= 0); /* and closed it */
    assert_true(err == ECONNRESET || err == EPIPE);
    assert_true(closed - t0 >= WRITE_MS - 20);
    /* replies now go out as they are read, in several writes: under a
     * sanitizer riven takes a while to fill the socket buffers after the
     * client's first EAGAIN, and the timeout counts from its own stall */
    assert_true(closed - stall <=
                WRITE_MS + STALL_SLACK * (harness_rss_scale() > 1 ? 3 : 1));
    assert_true(sent < 64 * MB);
    assert_true(rss_growth(fx) < 100 * MB);
    harness_conn_close(c);
}

/* ---- bad lengths and keys ------------------------------------------ */

#define REQ(lit) (lit), sizeof(lit) - 1

static const struct {
    const char *req;
    size_t len;
    const char *want;
} bad_lengths[] = {
    {REQ("set k 0 0 4294967295\r\n"), BAD_FORMAT},
    {REQ("set k 0 0 -1\r\n"), BAD_FORMAT},
    {REQ("add k 0 0 -1\r\n"), BAD_FORMAT},
    {REQ("append k 0 0 4294967295\r\n"), BAD_FORMAT},
    {REQ("cas k 0 0 -1 1\r\n"), BAD_FORMAT},
    {REQ("set k 0 0 99999999999999999999\r\n"), BAD_FORMAT},
    {REQ("ms k 4294967295\r\n"), BAD_FORMAT},
    {REQ("ms k -1\r\n"), BAD_FORMAT},
    {REQ("ms k 4294967295 T0\r\n"), BAD_FORMAT},
    /* a NUL ends the line for memcached: "set k" is an ERROR, and so is
     * the data line after it; "get nk\0zz" is "get nk" */
    {REQ("set k\0z 0 0 1\r\nx\r\n"), "ERROR\r\nERROR\r\n"},
    {REQ("set nk 0 0 2\r\nhi\r\nget nk\0zz\r\n"),
     "STORED\r\nVALUE nk 0 2\r\nhi\r\nEND\r\n"},
    {REQ("get nk\0\r\n"), "VALUE nk 0 2\r\nhi\r\nEND\r\n"},
};

/* Send req to port on a fresh connection; the exact reply, usable after. */
static void
expect_on(int port, const char *who, const char *req, size_t len,
          const char *want)
{
    struct harness_conn *c = harness_conn_open(port, DEADLINE_MS);

    assert_non_null(c);
    assert_int_equal(harness_send(c, req, len), 0);
    if (!harness_expect(c, want)) {
        harness_dump(who, req, len, 80);
        fail();
    }
    still_usable(c);
    harness_conn_close(c);
}

static void
test_bad_lengths(void **state)
{
    struct fixture *fx = harness_direct() ? NULL : *state;
    struct harness_conn *c;

    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        size_t len = bad_lengths[i].len;

        expect_on(mc.port, "  memcached, request", bad_lengths[i].req, len,
                  bad_lengths[i].want);
        if (fx != NULL) {
            expect_on(fx->port, "  riven, request", bad_lengths[i].req, len,
                      bad_lengths[i].want);
        }
    }
    if (fx == NULL) {
        return;
    }
    /* control bytes in keys are key bytes, as memcached takes them */
    c = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "get a\x01z\r\n", "END\r\n"));
    assert_true(
        harness_roundtrip(c, "set a\x1fz 0 0 1\r\nx\r\n", "STORED\r\n"));
    assert_true(harness_roundtrip(c, "mg a\x7fz v\r\n", "EN\r\n"));
    assert_true(harness_roundtrip(c, "mg a\x1fz v\r\n", "VA 1\r\nx\r\n"));
    still_usable(c);
    harness_conn_close(c);
    assert_true(rss_growth(fx) < 16 * MB);
}

/* ---- 20 MB get line -------------------------------------------------- */

static void
test_huge_get_line(void **state)
{
    struct fixture *fx = fixture_of(state);
    size_t n = 20u * 1024 * 1024;
    struct harness_conn *c;
    char *line = malloc(n);
    int64_t t0;

    assert_non_null(line);
    memcpy(line, "get ", 4);
    memset(line + 4, 'a', n - 4);
    c = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c);
    t0 = harness_now_ms();
    assert_int_equal(harness_send(c, line, n), 0);
    assert_true(harness_quiet(c, 0));
    assert_int_equal(harness_send(c, "\r\n", 2), 0);
    assert_true(harness_expect_n(c, BAD_FORMAT, strlen(BAD_FORMAT), 20000));
    printf("    20 MB get line answered in %lld ms\n",
           (long long)(harness_now_ms() - t0));
    still_usable(c);
    harness_conn_close(c);
    free(line);
    assert_true(rss_growth(fx) < 16 * MB);
}

/* ---- binary: body shorter than key + extras ------------------------- */

/* Everything port sends back for req until it closes (or 2 s). */
static char *
bin_exchange(int port, const uint8_t *req, size_t len, size_t *outlen,
             bool *eof)
{
    struct harness_conn *c = harness_conn_open(port, DEADLINE_MS);
    char *out;

    assert_non_null(c);
    assert_int_equal(harness_send(c, req, len), 0);
    *eof = harness_wait_eof(c, 2000);
    out = malloc(c->len + 1);
    assert_non_null(out);
    memcpy(out, c->buf, c->len);
    *outlen = c->len;
    harness_conn_close(c);
    return out;
}

static void
test_bin_short_body(void **state)
{
    static const struct {
        uint8_t op;
        uint16_t klen;
        uint8_t elen;
        uint32_t blen;
        const char *what;
    } cases[] = {
        {0x01, 3, 8, 5, "set: key 3 + extras 8, body 5"},
        {0x01, 3, 8, 10, "set: key 3 + extras 8, body 10"},
        {0x00, 6, 0, 3, "get: key 6, body 3"},
        {0x00, 0, 4, 0, "get: extras 4, body 0"},
        {0x11, 10, 8, 17, "setq: key 10 + extras 8, body 17"},
        {0x05, 2, 20, 21, "incr: key 2 + extras 20, body 21"},
    };
    struct fixture *fx = harness_direct() ? NULL : *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t req[24 + 64 + 24];
        uint8_t want[24 + 15];
        size_t len, mlen, rlen;
        char *m, *r = NULL;
        bool meof, reof = true;

        len = binpkt_header(req, cases[i].op, cases[i].klen, cases[i].elen,
                            cases[i].blen, 0x1000u + (uint32_t)i, 0);
        memset(req + len, 'k', cases[i].blen);
        len += cases[i].blen;
        len += binpkt_header(req + len, 0x0a, 0, 0, 0, 7, 0); /* a noop after */
        /* memcached: "Unknown command" (status 0x81), then it closes */
        binpkt_header(want, cases[i].op, 0, 0, 15, 0x1000u + (uint32_t)i, 0);
        want[0] = 0x81;
        want[7] = 0x81;
        memcpy(want + 24, "Unknown command", 15);
        m = bin_exchange(mc.port, req, len, &mlen, &meof);
        if (fx != NULL) {
            r = bin_exchange(fx->port, req, len, &rlen, &reof);
        }
        printf("    %-34s memcached %zu bytes%s, riven %zu bytes%s\n",
               cases[i].what, mlen, meof ? " + close" : "",
               r != NULL ? rlen : 0, reof ? " + close" : "");
        assert_true(meof);
        assert_int_equal(
            harness_diff("expected", want, sizeof(want), "memcached", m, mlen),
            -1);
        if (r != NULL) {
            assert_true(reof);
            assert_int_equal(
                harness_diff("memcached", m, mlen, "riven", r, rlen), -1);
        }
        free(m);
        free(r);
    }
}

/* ---- a flood of quiet sets ------------------------------------------ */

#define SETQ_N 100000

/* One binary setq "fq<6 digits>" = "v<6 digits>" at p. */
static size_t
setq_packet(uint8_t *p, unsigned i)
{
    char kv[16];
    size_t n = binpkt_header(p, 0x11, 8, 8, 8 + 8 + 7, i, 0);

    memset(p + n, 0, 8); /* flags 0, exptime 0 */
    n += 8;
    snprintf(kv, sizeof(kv), "fq%06u", i);
    memcpy(p + n, kv, 8);
    n += 8;
    snprintf(kv, sizeof(kv), "v%06u", i);
    memcpy(p + n, kv, 7);
    return n + 7;
}

static void
test_setq_flood(void **state)
{
    struct fixture *fx = fixture_of(state);
    size_t per = 24 + 8 + 8 + 7, len = 0;
    uint8_t *req = malloc((size_t)SETQ_N * per + 64), want[24 + 4 + 8 + 7];
    struct harness_conn *c;
    uint32_t flags = 0;
    int64_t t0;
    char get[512], hit[1024];

    assert_non_null(req);
    for (unsigned i = 0; i < SETQ_N; i++) {
        len += setq_packet(req + len, i);
    }
    len += binpkt_header(req + len, 0x0a, 0, 0, 0, 0xabcd, 0);
    /* then getk of the last key: its reply must follow the noop's at once */
    len += binpkt_header(req + len, 0x0c, 8, 0, 8, 0xbeef, 0);
    memcpy(req + len, "fq099999", 8);
    len += 8;
    c = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c);
    t0 = harness_now_ms();
    assert_int_equal(harness_send(c, req, len), 0);
    binpkt_header(want, 0x0a, 0, 0, 0, 0xabcd, 0);
    want[0] = 0x81;
    assert_true(harness_expect_n(c, want, 24, 30000));
    /* getk hit: key 8, extras 4 (flags), value "v099999" */
    binpkt_header(want, 0x0c, 8, 4, 4 + 8 + 7, 0xbeef, 0);
    want[0] = 0x81;
    {
        char *r = harness_recv_n(c, sizeof(want), DEADLINE_MS);

        assert_non_null(r);
        assert_int_equal(memcmp(r, want, 16), 0); /* CAS differs */
        assert_int_equal(memcmp(r + 24, &flags, 4), 0);
        assert_int_equal(memcmp(r + 28, "fq099999v099999", 15), 0);
        free(r);
    }
    assert_true(harness_quiet(c, 100));
    printf("    %d setq + noop + getk answered in %lld ms\n", SETQ_N,
           (long long)(harness_now_ms() - t0));
    harness_conn_close(c);
    free(req);
    /* spot check: every 1000th key, 25 keys per get */
    c = harness_conn_open(fx->port, DEADLINE_MS);
    assert_non_null(c);
    for (unsigned g = 0; g < 4; g++) {
        size_t gl = (size_t)snprintf(get, sizeof(get), "get"), hl = 0;

        for (unsigned k = 0; k < 25; k++) {
            unsigned i = (g * 25 + k) * 1000 + 999 * (k % 2);

            gl += (size_t)snprintf(get + gl, sizeof(get) - gl, " fq%06u", i);
            hl += (size_t)snprintf(hit + hl, sizeof(hit) - hl,
                                   "VALUE fq%06u 0 7\r\nv%06u\r\n", i, i);
        }
        snprintf(get + gl, sizeof(get) - gl, "\r\n");
        snprintf(hit + hl, sizeof(hit) - hl, "END\r\n");
        assert_true(harness_roundtrip(c, get, hit));
    }
    harness_conn_close(c);
    assert_true(rss_growth(fx) < 32 * MB);
}

/* ---- 64 clients, scrapes and reloads (the TSan case) ------------------ */

#define LOAD_CLIENTS  64
#define LOAD_SCRAPERS 2

struct load {
    int port;
    int mport;
    atomic_bool stop;
    _Atomic uint64_t ops; /* exact round trips */
    _Atomic uint64_t errors;
    _Atomic uint64_t scrapes; /* 200 replies with the reload counter */
    _Atomic uint64_t scrape_errors;
};

struct load_client {
    pthread_t tid;
    struct load *ld;
    int idx;
};

static void *
load_client_main(void *arg)
{
    struct load_client *lc = arg;
    struct load *ld = lc->ld;
    struct harness_conn *c = harness_conn_open(ld->port, DEADLINE_MS);
    char req[160], want[160], val[48];

    if (c == NULL) {
        atomic_fetch_add(&ld->errors, 1);
        return NULL;
    }
    for (unsigned i = 0; !atomic_load(&ld->stop); i++) {
        int n = snprintf(val, sizeof(val), "c%d-round-%u", lc->idx, i);

        snprintf(req, sizeof(req),
                 "set ld%d-%u 0 0 %d\r\n%s\r\nget ld%d-%u\r\n", lc->idx, i % 8,
                 n, val, lc->idx, i % 8);
        snprintf(want, sizeof(want),
                 "STORED\r\nVALUE ld%d-%u 0 %d\r\n%s\r\nEND\r\n", lc->idx,
                 i % 8, n, val);
        if (!harness_roundtrip(c, req, want)) {
            atomic_fetch_add(&ld->errors, 1);
            break;
        }
        atomic_fetch_add(&ld->ops, 1);
    }
    harness_conn_close(c);
    return NULL;
}

/* GET /metrics; the body, malloc'd, or NULL unless status 200. */
static char *
scrape(int port)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    struct harness_conn *c = harness_conn_open(port, DEADLINE_MS);
    char *body = NULL;

    if (c == NULL) {
        return NULL;
    }
    if (harness_sends(c, req) == 0 && harness_wait_eof(c, DEADLINE_MS) &&
        c->len > 12 && memcmp(c->buf, "HTTP/1.1 200", 12) == 0) {
        char *sep = memmem(c->buf, c->len, "\r\n\r\n", 4);

        if (sep != NULL) {
            size_t n = c->len - (size_t)(sep + 4 - c->buf);

            body = malloc(n + 1);
            if (body != NULL) {
                memcpy(body, sep + 4, n);
                body[n] = '\0';
            }
        }
    }
    harness_conn_close(c);
    return body;
}

static void *
scraper_main(void *arg)
{
    struct load *ld = arg;

    while (!atomic_load(&ld->stop)) {
        char *body = scrape(ld->mport);

        if (body != NULL &&
            strstr(body, "riven_config_reloads_total") != NULL) {
            atomic_fetch_add(&ld->scrapes, 1);
        } else {
            atomic_fetch_add(&ld->scrape_errors, 1);
        }
        free(body);
    }
    return NULL;
}

/* riven_config_reloads_total{result="success"} from one scrape, or -1. */
static long
reloads_ok(int mport)
{
    char *body = scrape(mport), *p;
    long v = -1;

    p = body ? strstr(body, "riven_config_reloads_total{result=\"success\"} ")
             : NULL;
    if (p != NULL) {
        v = strtol(strchr(p, '}') + 2, NULL, 10);
    }
    free(body);
    return v;
}

static void
load_wait_ops(struct load *ld, uint64_t more)
{
    uint64_t want = atomic_load(&ld->ops) + more;
    int64_t deadline = harness_now_ms() + 20000;

    while (atomic_load(&ld->ops) < want && atomic_load(&ld->errors) == 0 &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, 5);
    }
}

static void
test_load_reload(void **state)
{
    struct fixture *fx = fixture_of(state);
    struct load_client lc[LOAD_CLIENTS];
    pthread_t sc[LOAD_SCRAPERS];
    struct load ld;
    long reloads = -1;
    int64_t t0 = harness_now_ms();

    memset(&ld, 0, sizeof(ld));
    ld.port = fx->port;
    ld.mport = fx->mport;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        lc[i] = (struct load_client){.ld = &ld, .idx = i};
        assert_int_equal(
            pthread_create(&lc[i].tid, NULL, load_client_main, &lc[i]), 0);
    }
    for (int i = 0; i < LOAD_SCRAPERS; i++) {
        assert_int_equal(pthread_create(&sc[i], NULL, scraper_main, &ld), 0);
    }
    load_wait_ops(&ld, 500);
    for (long r = 1; r <= 2; r++) {
        int64_t deadline = harness_now_ms() + DEADLINE_MS;

        conf_write(fx); /* the same settings, a new file */
        assert_int_equal(harness_proc_signal(&fx->rv, SIGHUP), 0);
        while ((reloads = reloads_ok(fx->mport)) < r &&
               harness_now_ms() < deadline) {
            poll(NULL, 0, 5);
        }
        load_wait_ops(&ld, 500);
    }
    atomic_store(&ld.stop, true);
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(lc[i].tid, NULL);
    }
    for (int i = 0; i < LOAD_SCRAPERS; i++) {
        pthread_join(sc[i], NULL);
    }
    printf("    %d clients: %llu exact set+get round trips, %llu errors; "
           "%llu scrapes, %llu failed; %ld reloads; %lld ms\n",
           LOAD_CLIENTS, (unsigned long long)atomic_load(&ld.ops),
           (unsigned long long)atomic_load(&ld.errors),
           (unsigned long long)atomic_load(&ld.scrapes),
           (unsigned long long)atomic_load(&ld.scrape_errors), reloads,
           (long long)(harness_now_ms() - t0));
    assert_int_equal(atomic_load(&ld.errors), 0);
    assert_int_equal(atomic_load(&ld.scrape_errors), 0);
    assert_true(atomic_load(&ld.scrapes) > 0);
    assert_true(atomic_load(&ld.ops) >= 1500);
    assert_int_equal(reloads, 2);
    assert_true(harness_proc_alive(&fx->rv));
}

/* ---- an idle timeout that a reload sets ------------------------------ */

#define SPLIT_PACE 100 /* ms between a request's two parts */

/* With no idle timeout configured riven does not track when a connection
 * was last answered. A reload that sets one must count from the reload,
 * not from the connect: an old, quiet connection whose next request comes
 * in two reads is answered, and is closed IDLE_MS after that answer. */
static void
test_idle_reload(void **state)
{
    struct fixture *fx = fixture_of(state);
    struct harness_conn *c = harness_conn_open(fx->port, DEADLINE_MS);
    int64_t deadline = harness_now_ms() + DEADLINE_MS, t0, after;
    struct pollfd pfd;
    long reloads;

    assert_non_null(c);
    still_usable(c);
    fx->conf.idle_ms = IDLE_MS;
    conf_write(fx);
    assert_int_equal(harness_proc_signal(&fx->rv, SIGHUP), 0);
    while ((reloads = reloads_ok(fx->mport)) < 1 &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, 5);
    }
    assert_int_equal(reloads, 1);
    /* quiet for longer than the new timeout: riven says nothing */
    pfd = (struct pollfd){.fd = c->fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, IDLE_MS + 300), 0);
    /* the first part is read alone; the connection must stay open */
    assert_int_equal(harness_sends(c, "set vk 0 0 2\r\no"), 0);
    assert_int_equal(poll(&pfd, 1, SPLIT_PACE), 0);
    assert_true(harness_roundtrip(c, "k\r\nget vk\r\n",
                                  "STORED\r\nVALUE vk 0 2\r\nok\r\nEND\r\n"));
    t0 = harness_now_ms();
    assert_true(harness_wait_eof(c, IDLE_MS + CLOSE_SLACK));
    after = harness_now_ms() - t0;
    printf("    closed %lld ms after its last answer\n", (long long)after);
    assert_int_equal(c->len, 0); /* closed without a word */
    assert_true(after >= IDLE_MS - 20);
    assert_true(after <= IDLE_MS + CLOSE_SLACK);
    harness_conn_close(c);
}

/* ---- main ------------------------------------------------------------ */

static int
group_setup(void **state)
{
    (void)state;
    if (harness_memcached_start(&mc, 0, NULL) != 0) {
        return -1;
    }
    printf("integ_hostile_clients: memcached on %d, %s%s\n", mc.port,
           harness_direct() ? "direct (riven cases skipped)"
                            : harness_riven_bin(),
           harness_rss_scale() > 1 ? " (sanitizer: RSS bounds x16)" : "");
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    harness_proc_stop(&mc, DEADLINE_MS);
    return 0;
}

static const struct rv_conf conf_plain = {0};
static const struct rv_conf conf_slow = {.idle_ms = IDLE_MS};
static const struct rv_conf conf_flood = {.max_conns = FLOOD_MAX};
static const struct rv_conf conf_wr = {.write_ms = WRITE_MS};
static const struct rv_conf conf_load = {.metrics = true, .capture = true};
static const struct rv_conf conf_metrics = {.metrics = true};

#define T(f, conf)                                                             \
    cmocka_unit_test_prestate_setup_teardown(f, case_setup, case_teardown,     \
                                             (void *)&(conf))

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_slowloris, conf_slow),      T(test_conn_flood, conf_flood),
        T(test_never_reads, conf_wr),      T(test_bad_lengths, conf_plain),
        T(test_huge_get_line, conf_plain), T(test_bin_short_body, conf_plain),
        T(test_setq_flood, conf_plain),    T(test_load_reload, conf_load),
        T(test_idle_reload, conf_metrics),
    };

    if (!harness_direct() && !harness_riven_available()) {
        fprintf(stderr,
                "integ_hostile_clients: %s not found (set "
                "RIVEN_BIN)\n",
                harness_riven_bin());
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
