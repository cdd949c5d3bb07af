/*
 * integ_badinput: hostile input on one connection, service on another.
 *
 * Each case sends bad bytes on a "victim" connection and checks the exact
 * reply (memcached 1.6.18's own answer, checked against memcached directly
 * with RIVEN_DIRECT=1) and whether the connection stays open. Meanwhile an
 * observer thread on its own connection keeps doing set/get round trips
 * with exact replies; after each case it must have completed more round
 * trips and never have seen a wrong byte: riven keeps serving.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "group.h"
#include "harness.h"
#include "observer.h"

/* One observer round trip: a set and a get of it, exact replies. */
static bool
text_trip(struct harness_conn *c, unsigned long i)
{
    char req[128], val[64], want[128];
    int n = snprintf(val, sizeof(val), "obs-%lu", i * 2654435761ul);

    snprintf(req, sizeof(req), "set obs%lu 0 0 %d\r\n%s\r\n", i % 16, n, val);
    if (!harness_roundtrip(c, req, "STORED\r\n")) {
        return false;
    }
    snprintf(req, sizeof(req), "get obs%lu\r\n", i % 16);
    snprintf(want, sizeof(want), "VALUE obs%lu 0 %d\r\n%s\r\nEND\r\n", i % 16,
             n, val);
    return harness_roundtrip(c, req, want);
}

static const struct observer_conf text_observer = {.trip = text_trip};

static struct harness_conn *
victim(void)
{
    struct harness_conn *c =
        harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);

    assert_non_null(c);
    return c;
}

/* The victim connection still works after its error. */
static void
still_usable(struct harness_conn *c)
{
    assert_true(harness_roundtrip(c, "set vk 0 0 2\r\nok\r\nget vk\r\n",
                                  "STORED\r\nVALUE vk 0 2\r\nok\r\nEND\r\n"));
}

static void
test_garbage(void **state)
{
    struct harness_conn *c;
    char junk[512];

    (void)state;
    c = victim();
    assert_true(harness_roundtrip(c, "\x01\x02garbage\xff\r\n", "ERROR\r\n"));
    for (size_t i = 0; i < sizeof(junk); i++) {
        uint8_t b = (uint8_t)(i * 131 + 7);

        junk[i] = (char)(b == '\n' || b == '\r' || b == ' ' ? 'x' : b);
    }
    junk[0] = 'Z';
    assert_int_equal(harness_send(c, junk, sizeof(junk)), 0);
    assert_true(harness_roundtrip(c, "\r\n", "ERROR\r\n"));
    assert_true(harness_roundtrip(c, "\r\n\r\n", "ERROR\r\nERROR\r\n"));
    still_usable(c);
    harness_conn_close(c);
}

static void
test_huge_line(void **state)
{
    struct harness_conn *c;
    char *line = malloc(3000);

    (void)state;
    assert_non_null(line);
    memset(line, 'x', 3000);
    c = victim();
    /* a 3000-byte line without newline: memcached closes, says nothing */
    assert_int_equal(harness_send(c, line, 3000), 0);
    assert_true(harness_wait_eof(c, HARNESS_TIMEOUT_MS));
    assert_int_equal(c->len, 0);
    harness_conn_close(c);
    /* same with a storage command prefix */
    memcpy(line, "set ", 4);
    c = victim();
    assert_int_equal(harness_send(c, line, 3000), 0);
    assert_true(harness_wait_eof(c, HARNESS_TIMEOUT_MS));
    assert_int_equal(c->len, 0);
    harness_conn_close(c);
    free(line);
}

static void
test_huge_length(void **state)
{
    struct harness_conn *c;

    (void)state;
    c = victim();
    assert_true(harness_roundtrip(c, "set k 0 0 4294967295\r\n",
                                  "CLIENT_ERROR bad command line format\r\n"));
    assert_true(harness_roundtrip(c, "set k 0 0 -1\r\n",
                                  "CLIENT_ERROR bad command line format\r\n"));
    assert_true(harness_roundtrip(c, "set k 0 0 99999999999999999999\r\n",
                                  "CLIENT_ERROR bad command line format\r\n"));
    still_usable(c);
    harness_conn_close(c);
}

static void
test_length_mismatch(void **state)
{
    struct harness_conn *c;

    (void)state;
    c = victim();
    assert_true(
        harness_roundtrip(c, "set k 0 0 5\r\nabcdefgh\r\nget k\r\n",
                          "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"));
    /* shorter data: "abc\r\nge" is taken as the value, "t k" is a line */
    assert_true(harness_roundtrip(c, "set k 0 0 5\r\nabc\r\nget k\r\n",
                                  "CLIENT_ERROR bad data chunk\r\nERROR\r\n"));
    still_usable(c);
    harness_conn_close(c);
}

static void
test_long_key(void **state)
{
    struct harness_conn *c;
    char req[600];

    (void)state;
    c = victim();
    snprintf(req, sizeof(req), "set %0251d 0 0 1\r\nx\r\n", 7);
    assert_true(harness_roundtrip(
        c, req, "CLIENT_ERROR bad command line format\r\nERROR\r\n"));
    snprintf(req, sizeof(req), "get %0251d\r\n", 7);
    assert_true(
        harness_roundtrip(c, req, "CLIENT_ERROR bad command line format\r\n"));
    snprintf(req, sizeof(req), "set %0250d 0 0 1\r\nx\r\nget %0250d\r\n", 7, 7);
    assert_true(harness_sends(c, req) == 0);
    snprintf(req, sizeof(req), "STORED\r\nVALUE %0250d 0 1\r\nx\r\nEND\r\n", 7);
    assert_true(harness_expect(c, req));
    still_usable(c);
    harness_conn_close(c);
}

/* Control bytes are key bytes, as memcached takes them: a key set
 * through riven is the same item for a client of the backend. */
static void
test_control_key(void **state)
{
    static const char key[] = "a\x01\x10\tb\x7f";
    char req[128], want[128];
    struct harness_conn *c, *d;

    (void)state;
    c = victim();
    snprintf(req, sizeof(req), "set %s 0 0 1\r\nx\r\n", key);
    assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    d = harness_conn_open(group_stack.mc.port, HARNESS_TIMEOUT_MS);
    assert_non_null(d);
    snprintf(req, sizeof(req), "get %s\r\n", key);
    snprintf(want, sizeof(want), "VALUE %s 0 1\r\nx\r\nEND\r\n", key);
    assert_true(harness_roundtrip(d, req, want));
    snprintf(req, sizeof(req), "delete %s\r\n", key);
    assert_true(harness_roundtrip(d, req, "DELETED\r\n"));
    harness_conn_close(d);
    snprintf(req, sizeof(req), "get %s\r\n", key);
    assert_true(harness_roundtrip(c, req, "END\r\n"));
    still_usable(c);
    harness_conn_close(c);
}

static void
test_huge_get(void **state)
{
    size_t n = 20u * 1024 * 1024;
    struct harness_conn *c;
    char *line = malloc(n + 2);

    (void)state;
    assert_non_null(line);
    memcpy(line, "get ", 4);
    memset(line + 4, 'a', n - 4);
    memcpy(line + n, "\r\n", 2);
    c = victim();
    if (harness_send(c, line, n + 2) != 0) {
        fprintf(stderr,
                "integ_badinput: sending the 20 MB get line: %s "
                "(memcached reads it all, answers CLIENT_ERROR bad command "
                "line format and keeps the connection)\n",
                strerror(errno));
        fail();
    }
    assert_true(harness_expect_n(c, "CLIENT_ERROR bad command line format\r\n",
                                 38, 20000));
    still_usable(c);
    harness_conn_close(c);
    free(line);
}

static int
group_teardown(void **state)
{
    (void)state;
    /* riven must have survived everything */
    if (!harness_direct() && !harness_proc_alive(&group_stack.rv)) {
        fprintf(stderr, "integ_badinput: riven is gone\n");
        harness_stack_stop(&group_stack);
        return -1;
    }
    harness_stack_stop(&group_stack);
    return 0;
}

#define T(f)                                                                   \
    cmocka_unit_test_prestate_setup_teardown(                                  \
        f, observer_setup, observer_teardown, (void *)&text_observer)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_garbage),         T(test_huge_line), T(test_huge_length),
        T(test_length_mismatch), T(test_long_key),  T(test_huge_get),
        T(test_control_key),
    };

    return cmocka_run_group_tests(tests, group_stack_setup, group_teardown);
}
