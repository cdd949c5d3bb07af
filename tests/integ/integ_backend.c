/*
 * integ_backend: riven when its memcached is down, dies, comes back or
 * hangs.
 *
 * - down from the start: requests get "SERVER_ERROR backend unavailable";
 *   once a memcached starts on that port, riven serves (polled, deadline);
 * - memcached killed by pid mid-test: SERVER_ERROR, riven still runs;
 *   restarted on the same port: riven serves again;
 * - memcached SIGSTOPped: a get answers "SERVER_ERROR backend timeout"
 *   after about request_ms (300 ms, from a temporary YAML config); after
 *   SIGCONT riven serves again.
 *
 * Needs riven: every case is skipped with RIVEN_DIRECT=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define TIMEOUT     "SERVER_ERROR backend timeout\r\n"
#define RECOVER_MS  15000 /* deadline for riven to use a backend again */

/* Poll "get key" on c until the reply is want, or the deadline. */
static bool
wait_reply(struct harness_conn *c, const char *key, const char *want,
           int timeout_ms)
{
    int64_t start = harness_now_ms();
    char *r = NULL;

    for (;;) {
        free(r);
        r = harness_get_reply(c, key, HARNESS_TIMEOUT_MS);
        if (r != NULL && strcmp(r, want) == 0) {
            printf("    serving again after %lld ms\n",
                   (long long)(harness_now_ms() - start));
            free(r);
            return true;
        }
        if (harness_now_ms() - start > timeout_ms) {
            fprintf(stderr, "integ_backend: still not serving after %d ms\n",
                    timeout_ms);
            if (r != NULL) {
                harness_dump("  last reply", r, strlen(r), 200);
            }
            free(r);
            return false;
        }
        poll(NULL, 0, 20);
    }
}

static bool
is_server_error(const char *r)
{
    return r != NULL &&
           (strcmp(r, UNAVAILABLE) == 0 || strcmp(r, TIMEOUT) == 0);
}

static void
test_down_from_start(void **state)
{
    struct harness_proc mc = {.pid = -1}, rv = {.pid = -1};
    struct harness_conn *c;
    int mport;
    char *r;

    (void)state;
    if (harness_direct()) {
        skip();
    }
    mport = harness_free_port();
    assert_true(mport > 0);
    assert_int_equal(harness_riven_start(&rv, mport, NULL, 0, NULL), 0);
    /* a multi-key get is one request: one error line, nothing after it
     * (first, before riven ejects the backend and fails fast) */
    {
        struct harness_conn *c2 =
            harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
        bool ok;

        assert_non_null(c2);
        ok = harness_roundtrip(c2, "get a b c\r\n", UNAVAILABLE) &&
             harness_roundtrip(c2, "delete k\r\n", UNAVAILABLE);
        harness_conn_close(c2);
        assert_true(ok);
    }

    c = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "get k\r\n", UNAVAILABLE));
    /* the value of a failed set is swallowed, not read as a command */
    assert_true(harness_roundtrip(c, "set k 0 0 5\r\nhello\r\n", UNAVAILABLE));
    assert_true(harness_roundtrip(c, "delete k\r\n", UNAVAILABLE));
    assert_true(harness_proc_alive(&rv));

    assert_int_equal(harness_memcached_start(&mc, mport, NULL), 0);
    assert_true(wait_reply(c, "k", "END\r\n", RECOVER_MS));
    assert_true(harness_roundtrip(c, "set k 0 0 1\r\nx\r\nget k\r\n",
                                  "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"));
    r = harness_get_reply(c, "k", HARNESS_TIMEOUT_MS);
    assert_string_equal(r, "VALUE k 0 1\r\nx\r\nEND\r\n");
    free(r);
    harness_conn_close(c);
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc, 5000);
}

static void
test_killed_and_restarted(void **state)
{
    struct harness_stack s;
    struct harness_conn *c, *c2;
    int mport;
    char *r;

    (void)state;
    if (harness_direct()) {
        skip();
    }
    assert_int_equal(harness_stack_start(&s, NULL), 0);
    mport = s.mc.port;
    c = harness_conn_open(s.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set k 0 0 2\r\nv1\r\n", "STORED\r\n"));

    harness_proc_kill(&s.mc); /* by pid, SIGKILL */
    r = harness_get_reply(c, "k", HARNESS_TIMEOUT_MS);
    if (!is_server_error(r)) {
        harness_dump("reply with the backend killed", r, r ? strlen(r) : 0,
                     200);
        fail();
    }
    free(r);
    /* a new connection too, and a storage command */
    c2 = harness_conn_open(s.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c2);
    assert_true(harness_roundtrip(c2, "set k 0 0 2\r\nv2\r\n", UNAVAILABLE));
    assert_true(harness_proc_alive(&s.rv));

    assert_int_equal(harness_memcached_start(&s.mc, mport, NULL), 0);
    assert_true(wait_reply(c, "k", "END\r\n", RECOVER_MS));
    assert_true(wait_reply(c2, "k", "END\r\n", RECOVER_MS));
    assert_true(harness_roundtrip(c2, "set k 0 0 2\r\nv3\r\n", "STORED\r\n"));
    r = harness_get_reply(c, "k", HARNESS_TIMEOUT_MS);
    assert_string_equal(r, "VALUE k 0 2\r\nv3\r\nEND\r\n");
    free(r);
    harness_conn_close(c);
    harness_conn_close(c2);
    harness_stack_stop(&s);
}

static void
test_stopped_backend(void **state)
{
    struct harness_proc mc = {.pid = -1}, rv = {.pid = -1};
    char path[] = "/tmp/riven-integ-XXXXXX.yml";
    struct harness_conn *c;
    int64_t t0, elapsed;
    int fd, rport;
    FILE *f;
    char *r;

    (void)state;
    if (harness_direct()) {
        skip();
    }
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    rport = harness_free_port();
    fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: [\"127.0.0.1:%d\"]\n"
            "pool: {servers: [\"127.0.0.1:%d\"]}\n"
            "timeouts: {connect_ms: 300, request_ms: 300}\n",
            rport, mc.port);
    fclose(f);
    assert_int_equal(harness_riven_start(&rv, mc.port, path, rport, NULL), 0);
    c = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set k 0 0 1\r\nx\r\n", "STORED\r\n"));

    assert_int_equal(harness_proc_signal(&mc, SIGSTOP), 0);
    t0 = harness_now_ms();
    r = harness_get_reply(c, "k", HARNESS_TIMEOUT_MS);
    elapsed = harness_now_ms() - t0;
    printf("    get with a stopped backend answered after %lld ms\n",
           (long long)elapsed);
    assert_non_null(r);
    assert_string_equal(r, TIMEOUT);
    free(r);
    assert_true(elapsed >= 250 && elapsed < 2000);
    assert_true(harness_proc_alive(&rv));
    /* another connection is not stuck behind the hung backend: riven
     * answers version itself */
    {
        struct harness_conn *c2 =
            harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
        char *line;

        assert_non_null(c2);
        assert_int_equal(harness_sends(c2, "version\r\n"), 0);
        line = harness_recv_until(c2, "\r\n", 2, 1000, NULL);
        assert_non_null(line);
        assert_true(strncmp(line, "VERSION 1.6.18", 14) == 0);
        free(line);
        harness_conn_close(c2);
    }

    assert_int_equal(harness_proc_signal(&mc, SIGCONT), 0);
    assert_true(wait_reply(c, "k", "VALUE k 0 1\r\nx\r\nEND\r\n", RECOVER_MS));
    harness_conn_close(c);
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc, 5000);
    unlink(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_down_from_start),
        cmocka_unit_test(test_killed_and_restarted),
        cmocka_unit_test(test_stopped_backend),
    };

    if (harness_direct()) {
        printf("integ_backend: RIVEN_DIRECT set: every case needs riven, "
               "skipping\n");
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
