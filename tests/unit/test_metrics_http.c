/*
 * test_metrics_http: the /metrics endpoint over real sockets. Starts it on
 * a free loopback port (port 0), sends raw HTTP/1.0 requests and checks
 * status lines, Content-Type and bodies: /metrics, /healthz,
 * /healthz/backends and /healthz/<server> (two backends, one of them
 * switched up and down), an unknown path, other methods; then the start
 * errors (address in use, unix address) and stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "metrics.h"
#include "metrics_http.h"

static _Atomic bool healthy_flag;

/* Two backends: "127.0.0.1:1", up while healthy_flag is set, and
 * "unix:/tmp/b", always down. */
static bool
backend(void *arg, size_t i, char *name, size_t namelen, bool *up)
{
    static const char *const names[] = {"127.0.0.1:1", "unix:/tmp/b"};

    /* runs on the endpoint's thread: no cmocka assert here; a wrong arg
     * shows as a 503 where the test expects 200 */
    if (i >= 2) {
        return false;
    }
    snprintf(name, namelen, "%s", names[i]);
    *up = i == 0 && arg == &healthy_flag && atomic_load(&healthy_flag);
    return true;
}

/* GET path: the status must be code and the body want. */
static void expect_get(const struct cfg_addr *a, uint16_t port,
                       const char *path, int code, const char *want);

static void
loopback(struct cfg_addr *a, int family, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_port = htons(port);
        a->sslen = sizeof(*sin);
        snprintf(a->name, sizeof(a->name), "127.0.0.1:%u", port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        sin6->sin6_port = htons(port);
        a->sslen = sizeof(*sin6);
        snprintf(a->name, sizeof(a->name), "[::1]:%u", port);
    }
}

/* Send one raw request, read the whole answer (HTTP/1.0: the server
 * closes). Returns a new NUL-terminated string. */
static char *
http(const struct cfg_addr *a, uint16_t port, const char *request)
{
    struct cfg_addr to = *a;
    size_t len = 0, cap = 65536;
    char *resp = malloc(cap);
    int fd = socket(a->ss.ss_family, SOCK_STREAM, 0);
    ssize_t n;

    assert_non_null(resp);
    assert_true(fd >= 0);
    if (a->ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&to.ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)&to.ss)->sin6_port = htons(port);
    }
    assert_int_equal(connect(fd, (struct sockaddr *)&to.ss, to.sslen), 0);
    assert_int_equal(write(fd, request, strlen(request)),
                     (ssize_t)strlen(request));
    while ((n = read(fd, resp + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            cap *= 2;
            resp = realloc(resp, cap);
            assert_non_null(resp);
        }
    }
    assert_int_equal(n, 0);
    close(fd);
    resp[len] = '\0';
    return resp;
}

/* The status code of a response ("HTTP/1.x NNN ..."). */
static int
status_of(const char *resp)
{
    assert_true(strncmp(resp, "HTTP/1.", 7) == 0);
    return atoi(resp + 9);
}

static const char *
body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");

    assert_non_null(p);
    return p + 4;
}

static void
expect_get(const struct cfg_addr *a, uint16_t port, const char *path, int code,
           const char *want)
{
    char req[256], *r;

    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    r = http(a, port, req);
    assert_int_equal(status_of(r), code);
    assert_string_equal(body_of(r), want);
    free(r);
}

static void
check_endpoints(const struct cfg_addr *a, uint16_t port)
{
    char *r;

    r = http(a, port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_non_null(
        strstr(r, "\r\nContent-Type: text/plain; version=0.0.4\r\n"));
    assert_true(strncmp(body_of(r), "# HELP riven_build_info ", 24) == 0);
    assert_non_null(strstr(r, "\nriven_connections_total 7\n"));
    free(r);

    r = http(a, port, "GET /metrics?x=1 HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    free(r);

    atomic_store(&healthy_flag, true);
    expect_get(a, port, "/healthz", 200, "ok\n");
    expect_get(a, port, "/healthz/backends", 200,
               "127.0.0.1:1 up\nunix:/tmp/b down\n");
    expect_get(a, port, "/healthz/127.0.0.1:1", 200, "up\n");
    expect_get(a, port, "/healthz/unix:/tmp/b", 503, "down\n");
    expect_get(a, port, "/healthz/127.0.0.1:2", 404, "unknown backend\n");
    expect_get(a, port, "/healthz/", 404, "unknown backend\n");

    atomic_store(&healthy_flag, false);
    expect_get(a, port, "/healthz", 503, "unavailable\n");
    expect_get(a, port, "/healthz/backends", 503,
               "127.0.0.1:1 down\nunix:/tmp/b down\n");
    expect_get(a, port, "/healthz/127.0.0.1:1", 503, "down\n");

    r = http(a, port, "GET /nope HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = http(a, port, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 404);
    free(r);

    r = http(a, port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
    free(r);
    r = http(a, port, "DELETE /healthz HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 405);
    free(r);

    r = http(a, port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "");
    free(r);
}

static void
test_ipv4(void **state)
{
    struct cfg_addr a;
    struct metrics_http *mh;
    char err[256];
    uint16_t port;

    (void)state;
    metrics_reset();
    metrics_add(M_CONNECTIONS_TOTAL, 7);
    loopback(&a, AF_INET, 0);
    mh = metrics_http_start(&a, backend, &healthy_flag, err, sizeof(err));
    if (mh == NULL) {
        fail_msg("%s", err);
    }
    port = metrics_http_port(mh);
    assert_true(port != 0);
    check_endpoints(&a, port);
    metrics_http_stop(mh);
}

static void
test_ipv6(void **state)
{
    struct cfg_addr a;
    struct metrics_http *mh;
    char err[256];
    int fd = socket(AF_INET6, SOCK_STREAM, 0);

    (void)state;
    if (fd < 0) {
        skip(); /* no IPv6 here */
    }
    close(fd);
    metrics_reset();
    metrics_add(M_CONNECTIONS_TOTAL, 7);
    loopback(&a, AF_INET6, 0);
    mh = metrics_http_start(&a, NULL, NULL, err, sizeof(err));
    if (mh == NULL) {
        skip(); /* ::1 not configured */
    }
    /* a NULL callback: always healthy */
    {
        char *r =
            http(&a, metrics_http_port(mh), "GET /healthz HTTP/1.0\r\n\r\n");

        assert_int_equal(status_of(r), 200);
        free(r);
    }
    metrics_http_stop(mh);
}

static void
test_start_errors(void **state)
{
    struct cfg_addr a, b;
    struct metrics_http *mh, *again;
    char err[400], want[400];

    (void)state;
    loopback(&a, AF_INET, 0);
    mh = metrics_http_start(&a, NULL, NULL, err, sizeof(err));
    assert_non_null(mh);
    loopback(&b, AF_INET, metrics_http_port(mh));
    again = metrics_http_start(&b, NULL, NULL, err, sizeof(err));
    assert_null(again);
    snprintf(want, sizeof(want),
             "metrics: cannot listen on %s: Address already in use", b.name);
    assert_string_equal(err, want);
    metrics_http_stop(mh);

    assert_int_equal(
        config_parse_addr("unix:/tmp/riven-m.sock", &b, err, sizeof(err)),
        ST_OK);
    assert_null(metrics_http_start(&b, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "metrics: cannot listen on unix:/tmp/riven-m.sock"
                             ": expected host:port or [v6addr]:port");
    metrics_http_stop(NULL);
    assert_int_equal(metrics_http_port(NULL), 0);
}

static int
setup(void **state)
{
    (void)state;
    return metrics_init() == ST_OK ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    metrics_fini();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_start_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
