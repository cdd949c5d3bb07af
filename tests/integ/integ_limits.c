/*
 * integ_limits: what one client may cost riven (issue 12, items 1-3).
 *
 * One memcached and one riven (client_max_buffer 8 MiB,
 * client_write_timeout_ms 3000) for the group:
 *
 *   long_get_lines   get lines of 10,000, 100,000 and 500,000 keys, the
 *                    same bytes from riven as from memcached; riven's RSS
 *                    after each within client_max_buffer + 16 MiB of before
 *   never_reads      400 gets of 1,000,000-byte values, never read: riven's
 *                    RSS grows by at most client_max_buffer + 4 MiB, another
 *                    client's set/get round trips stay under 10 ms, the
 *                    connection closes after client_write_timeout_ms; a
 *                    client that reads gets all 400 values byte-exact
 *   two_servers      a pool of two memcached behind a riven with
 *                    client_max_buffer 2 MiB: pipelined gets and a get line
 *                    of 400 KB values from both servers, a set and a
 *                    flush_all among them; every byte exact while each
 *                    handler pauses after a value or two
 *   http_hangup      memcached's t/malicious-commands.t lines (and POST, an
 *                    unknown m-command): closed with no byte, by memcached
 *                    and by riven alike; errors_hangup counts them
 *
 * RSS bounds are scaled by harness_rss_scale() under a sanitizer, and the
 * 10 ms latency bound by 10 there (ThreadSanitizer runs code 5-15x slower).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define MB             (1024L * 1024L)
#define CLIENT_MAX     (8 * MB)
#define WRITE_MS       3000
#define BIG_VALUE      1000000
#define BIG_KEYS       8
#define NEVER_GETS     400
#define LINE_KEYS      "abcdefghijklmnopqrstuvwxyz0123456789"
#define LINE_MISSING   6 /* the last of LINE_KEYS are never set */
#define SLOW_MS        60000
#define CLOSE_SLACK_MS 5000 /* past client_write_timeout_ms (sanitizers) */
#define NELEMS(a)      (sizeof(a) / sizeof((a)[0]))
#define MAX(a, b)      ((a) > (b) ? (a) : (b))

static struct harness_proc mc, rv;
static int rv_port;
static char conf_path[64];

static long
rss(void)
{
    return harness_proc_status(rv.pid, "VmRSS");
}

static int
group_setup(void **state)
{
    FILE *f;
    int fd;

    (void)state;
    harness_nofile_limit();
    if (harness_memcached_start(&mc, 0, NULL) != 0) {
        return -1;
    }
    snprintf(conf_path, sizeof(conf_path), "/tmp/riven-limits-XXXXXX");
    fd = mkstemp(conf_path);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        rv_port = harness_free_port();
        rewind(f);
        fprintf(f,
                "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\n"
                "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
                "client_max_buffer: %ld\nclient_write_timeout_ms: %d\n"
                "metrics:\n  listen: \"off\"\n",
                rv_port, mc.port, CLIENT_MAX, WRITE_MS);
        fflush(f);
        if (harness_riven_start(&rv, 0, conf_path, rv_port, NULL) == 0) {
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc, 5000);
    unlink(conf_path);
    return 0;
}

/* ---- long get lines ------------------------------------------------ */

/* "get k k k ...\r\n" of n one-byte keys cycling through LINE_KEYS. */
static char *
get_line(size_t n, size_t *len)
{
    size_t nk = strlen(LINE_KEYS), off = 3;
    char *line = malloc(4 + 2 * n + 2);

    assert_non_null(line);
    memcpy(line, "get", 3);
    for (size_t i = 0; i < n; i++) {
        line[off++] = ' ';
        line[off++] = LINE_KEYS[i % nk];
    }
    memcpy(line + off, "\r\n", 2);
    *len = off + 2;
    return line;
}

/* Send line on a new connection to port and read the reply through the
 * final "END\r\n" (no key or value here holds one). */
static char *
line_reply(int port, const char *line, size_t len, size_t *rlen)
{
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    char *reply;

    assert_non_null(c);
    assert_int_equal(harness_send(c, line, len), 0);
    reply = harness_recv_until(c, "END\r\n", 5, SLOW_MS, rlen);
    assert_non_null(reply);
    /* nothing more follows: the next reply comes next */
    assert_true(harness_roundtrip(c, "mn\r\n", "MN\r\n"));
    harness_conn_close(c);
    return reply;
}

static void
test_long_get_lines(void **state)
{
    static const size_t sizes[] = {10000, 100000, 500000};
    struct harness_conn *c = harness_conn_open(mc.port, HARNESS_TIMEOUT_MS);
    size_t nset = strlen(LINE_KEYS) - LINE_MISSING;
    long bound = (CLIENT_MAX + 16 * MB) * harness_rss_scale();

    (void)state;
    assert_non_null(c);
    for (size_t i = 0; i < nset; i++) {
        char req[64];

        snprintf(req, sizeof(req), "set %c 0 0 5\r\nval-%c\r\n", LINE_KEYS[i],
                 LINE_KEYS[i]);
        assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    }
    harness_conn_close(c);
    for (size_t s = 0; s < NELEMS(sizes); s++) {
        size_t len, dlen, rlen;
        char *line = get_line(sizes[s], &len);
        char *direct = line_reply(mc.port, line, len, &dlen);
        long before = rss(), after;
        char *proxied = line_reply(rv_port, line, len, &rlen);

        after = rss();
        printf("long_get_lines: %zu keys, %zu-byte line, %zu-byte reply; "
               "riven RSS %ld -> %ld KiB (bound +%ld KiB)\n",
               sizes[s], len, dlen, before / 1024, after / 1024, bound / 1024);
        assert_int_equal(
            harness_diff("memcached", direct, dlen, "riven", proxied, rlen),
            -1);
        assert_true(after - before <= bound);
        free(line);
        free(direct);
        free(proxied);
    }
}

/* ---- a client that never reads --------------------------------------- */

static char *
big_value(int k)
{
    char *v = malloc(BIG_VALUE);

    assert_non_null(v);
    for (size_t i = 0; i < BIG_VALUE; i++) {
        v[i] = (char)('a' + (i * 7 + (size_t)k * 13) % 26);
    }
    return v;
}

/* "VALUE bigK 0 1000000\r\n<value>\r\nEND\r\n" */
static char *
big_reply(int k, const char *v, size_t *len)
{
    char *r = malloc(BIG_VALUE + 64);
    int n;

    assert_non_null(r);
    n = snprintf(r, 64, "VALUE big%d 0 %d\r\n", k, BIG_VALUE);
    memcpy(r + n, v, BIG_VALUE);
    memcpy(r + n + BIG_VALUE, "\r\nEND\r\n", 7);
    *len = (size_t)n + BIG_VALUE + 7;
    return r;
}

static void
send_gets(struct harness_conn *c)
{
    char *req = malloc(NEVER_GETS * 16);
    size_t off = 0;

    assert_non_null(req);
    for (int i = 0; i < NEVER_GETS; i++) {
        off += (size_t)sprintf(req + off, "get big%d\r\n", i % BIG_KEYS);
    }
    assert_int_equal(harness_send(c, req, off), 0);
    free(req);
}

/* One exact set/get round trip; its time in ms. */
static int64_t
observe(struct harness_conn *c, unsigned i)
{
    char req[96], want[96];
    int64_t t0 = harness_now_ms();

    snprintf(req, sizeof(req), "set obs 0 0 8\r\n%08u\r\nget obs\r\n", i);
    snprintf(want, sizeof(want), "STORED\r\nVALUE obs 0 8\r\n%08u\r\nEND\r\n",
             i);
    assert_true(harness_roundtrip(c, req, want));
    return harness_now_ms() - t0;
}

static void
test_never_reads(void **state)
{
    struct harness_conn *c = harness_conn_open(rv_port, HARNESS_TIMEOUT_MS);
    struct harness_conn *obs, *h, *r;
    char *vals[BIG_KEYS], *want[BIG_KEYS];
    size_t wlen[BIG_KEYS];
    long rss0, peak, bound = (CLIENT_MAX + 4 * MB) * harness_rss_scale();
    int64_t slow = 0, limit = harness_rss_scale() > 1 ? 100 : 10, end, t_send;
    long fds0;
    unsigned trips = 0;

    (void)state;
    assert_non_null(c);
    for (int k = 0; k < BIG_KEYS; k++) {
        char hdr[64];

        vals[k] = big_value(k);
        want[k] = big_reply(k, vals[k], &wlen[k]);
        snprintf(hdr, sizeof(hdr), "set big%d 0 0 %d\r\n", k, BIG_VALUE);
        assert_int_equal(harness_sends(c, hdr), 0);
        assert_int_equal(harness_send(c, vals[k], BIG_VALUE), 0);
        assert_true(harness_roundtrip(c, "\r\n", "STORED\r\n"));
    }
    /* warm riven's allocator with one big reply before the baseline */
    assert_int_equal(harness_sends(c, "get big0\r\n"), 0);
    assert_true(harness_expect_n(c, want[0], wlen[0], SLOW_MS));
    obs = harness_conn_open(rv_port, HARNESS_TIMEOUT_MS);
    assert_non_null(obs);
    observe(obs, 0);
    rss0 = peak = rss();

    fds0 = harness_proc_fds(rv.pid);
    h = harness_conn_open(rv_port, HARNESS_TIMEOUT_MS);
    assert_non_null(h);
    t_send = harness_now_ms();
    send_gets(h);
    end = harness_now_ms() + 2000;
    while (harness_now_ms() < end) {
        slow = MAX(slow, observe(obs, ++trips));
        peak = MAX(peak, rss());
        poll(NULL, 0, 5);
    }
    printf("never_reads: riven RSS %ld KiB, peak %ld KiB (+%ld KiB, bound "
           "+%ld KiB); %u round trips, slowest %lld ms\n",
           rss0 / 1024, peak / 1024, (peak - rss0) / 1024, bound / 1024, trips,
           (long long)slow);
    assert_true(peak - rss0 <= bound);
    assert_true(slow < limit);

    /* closed by client_write_timeout_ms: riven's fds fall back to what
     * they were before h, and h then reads part of the reply and EOF */
    while (harness_proc_fds(rv.pid) > fds0 &&
           harness_now_ms() < t_send + WRITE_MS + CLOSE_SLACK_MS) {
        poll(NULL, 0, 20);
    }
    printf("never_reads: closed %lld ms after the gets were sent\n",
           (long long)(harness_now_ms() - t_send));
    assert_int_equal(harness_proc_fds(rv.pid), fds0);
    assert_true(harness_wait_eof(h, HARNESS_TIMEOUT_MS));
    assert_true(h->len < (size_t)NEVER_GETS * wlen[0]);
    harness_conn_close(h);

    r = harness_conn_open(rv_port, HARNESS_TIMEOUT_MS);
    assert_non_null(r);
    send_gets(r);
    for (int i = 0; i < NEVER_GETS; i++) {
        assert_true(harness_expect_n(r, want[i % BIG_KEYS], wlen[i % BIG_KEYS],
                                     SLOW_MS));
    }
    assert_true(harness_roundtrip(r, "mn\r\n", "MN\r\n"));
    harness_conn_close(r);
    harness_conn_close(obs);
    harness_conn_close(c);
    for (int k = 0; k < BIG_KEYS; k++) {
        free(vals[k]);
        free(want[k]);
    }
}

/* ---- two servers, a small budget ------------------------------------ */

#define MID_VALUE 400000
#define MID_KEYS  12

/* "VALUE midK 0 400000\r\n<value>" then tail; returns the length. */
static size_t
mid_value(char *out, int k, char *v, const char *tail)
{
    size_t n = (size_t)sprintf(out, "VALUE mid%d 0 %d\r\n", k, MID_VALUE);

    memset(v, 'A' + k, MID_VALUE);
    memcpy(out + n, v, MID_VALUE);
    n += MID_VALUE;
    return n + (size_t)sprintf(out + n, "%s", tail);
}

static void
test_two_servers(void **state)
{
    struct harness_proc mc2 = {.pid = -1}, rv2 = {.pid = -1};
    char path[] = "/tmp/riven-limits2-XXXXXX", hdr[64];
    struct harness_conn *c;
    char *req = NULL, *want = NULL, *v = malloc(MID_VALUE);
    size_t nreq = 0, nwant = 0, cap = 64 * (MID_VALUE + 128);
    int fd = mkstemp(path), port = harness_free_port();
    FILE *f;

    (void)state;
    assert_non_null(v);
    assert_true(fd >= 0 && (f = fdopen(fd, "w")) != NULL);
    assert_int_equal(harness_memcached_start(&mc2, 0, NULL), 0);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\n"
            "pool:\n  servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
            "client_max_buffer: %ld\nmetrics:\n  listen: \"off\"\n",
            port, mc.port, mc2.port, 2 * MB);
    fclose(f);
    assert_int_equal(harness_riven_start(&rv2, 0, path, port, NULL), 0);
    c = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    req = malloc(cap);
    want = malloc(cap);
    assert_non_null(req);
    assert_non_null(want);
    for (int k = 0; k < MID_KEYS; k++) { /* spread over both servers */
        memset(v, 'A' + k, MID_VALUE);
        snprintf(hdr, sizeof(hdr), "set mid%d 0 0 %d\r\n", k, MID_VALUE);
        assert_int_equal(harness_sends(c, hdr), 0);
        assert_int_equal(harness_send(c, v, MID_VALUE), 0);
        assert_true(harness_roundtrip(c, "\r\n", "STORED\r\n"));
    }
    /* one pipeline: single gets, a set, a get line, a set, a flush_all
     * and a get */
    for (int k = 0; k < MID_KEYS; k++) {
        nreq += (size_t)sprintf(req + nreq, "get mid%d\r\n", k);
        nwant += mid_value(want + nwant, k, v, "\r\nEND\r\n");
    }
    nreq += (size_t)sprintf(req + nreq, "set small 0 0 2\r\nhi\r\nget");
    nwant += (size_t)sprintf(want + nwant, "STORED\r\n");
    for (int k = 0; k < MID_KEYS; k++) {
        nreq += (size_t)sprintf(req + nreq, " mid%d", k);
        nwant += mid_value(want + nwant, k, v, "\r\n");
    }
    nreq += (size_t)sprintf(req + nreq, "\r\nset small 0 0 2\r\nhi\r\n");
    nwant += (size_t)sprintf(want + nwant, "END\r\nSTORED\r\n");
    nreq += (size_t)sprintf(req + nreq, "flush_all\r\nget mid0 small\r\n");
    nwant += (size_t)sprintf(want + nwant, "OK\r\nEND\r\n");
    assert_int_equal(harness_send(c, req, nreq), 0);
    assert_true(harness_expect_n(c, want, nwant, SLOW_MS));
    printf("two_servers: %zu request bytes, %zu reply bytes exact\n", nreq,
           nwant);
    harness_conn_close(c);
    free(req);
    free(want);
    free(v);
    assert_true(harness_proc_alive(&rv2));
    harness_proc_stop(&rv2, 5000);
    harness_proc_stop(&mc2, 5000);
    unlink(path);
}

/* ---- HTTP request lines ---------------------------------------------- */

/* Send line; true if the peer closes having sent nothing. */
static bool
hangs_up(int port, const char *line)
{
    struct harness_conn *c = harness_conn_open(port, HARNESS_TIMEOUT_MS);
    bool ok;

    assert_non_null(c);
    assert_int_equal(harness_sends(c, line), 0);
    ok = harness_wait_eof(c, HARNESS_TIMEOUT_MS) && c->len == 0;
    if (!ok) {
        harness_dump(line, c->buf, c->len, 80);
    }
    harness_conn_close(c);
    return ok;
}

static long
stat_value(const char *reply, const char *name)
{
    const char *p = strstr(reply, name);

    return p != NULL ? strtol(p + strlen(name), NULL, 10) : -1;
}

static long
hangups(void)
{
    struct harness_conn *c = harness_conn_open(rv_port, HARNESS_TIMEOUT_MS);
    size_t len;
    char *reply;
    long n;

    assert_non_null(c);
    assert_int_equal(harness_sends(c, "stats proxy\r\n"), 0);
    reply = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &len);
    assert_non_null(reply);
    n = stat_value(reply, "STAT errors_hangup ");
    free(reply);
    harness_conn_close(c);
    return n;
}

static void
test_http_hangup(void **state)
{
    static const char *const lines[] = {
        /* memcached's t/malicious-commands.t */
        "GET / HTTP/1.0\r\n",
        "PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1\r\n",
        "DELETE HTTP/1.1\r\n",
        /* the same rule on other lines */
        "POST /x HTTP/1.1\r\nHost: a\r\n\r\n",
        "mkcol /x HTTP/1.1\r\n",
    };
    long before = hangups();

    (void)state;
    for (size_t i = 0; i < NELEMS(lines); i++) {
        assert_true(hangs_up(mc.port, lines[i]));
        assert_true(hangs_up(rv_port, lines[i]));
    }
    assert_int_equal(hangups() - before, (long)NELEMS(lines));
    /* known commands with such a last token are answered as usual */
    for (int port = 0; port < 2; port++) {
        struct harness_conn *c =
            harness_conn_open(port ? rv_port : mc.port, HARNESS_TIMEOUT_MS);

        assert_non_null(c);
        assert_true(harness_roundtrip(c, "get / HTTP/1.0\r\n", "END\r\n"));
        assert_true(harness_roundtrip(c, "gimme / HTTP/1.0\r\n", "ERROR\r\n"));
        harness_conn_close(c);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_get_lines),
        cmocka_unit_test(test_never_reads),
        cmocka_unit_test(test_two_servers),
        cmocka_unit_test(test_http_hangup),
    };

    if (harness_direct()) {
        printf("integ_limits: riven's own limits; nothing to check direct\n");
        return 0;
    }
    if (!harness_riven_available()) {
        fprintf(stderr, "integ_limits: %s not found (set RIVEN_BIN)\n",
                harness_riven_bin());
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
