/*
 * integ_fault: an allocation that fails on one connection's thread closes
 * that connection and nothing else (issue 12, item 8).
 *
 * riven-fault (tests/fault/riven_fault.c) is riven whose Nth allocation
 * on connection thread K fails when RIVEN_FAULT_ALLOC=N@K. Connection 1
 * is the harness's readiness probe, so client 2 below is connection 3:
 * it is created after client 1's whole session, and the probe's thread
 * before client 1 connected. For N = 1, 2,
 * 3... a fresh riven-fault serves three clients the same session (sets,
 * gets, a multi-get, a 100 KB value, incr, meta): client 1 before and
 * after client 2, client 3 while client 2 is broken. Each N must leave:
 *
 *   client 2   its replies exact up to where the fault hit, then
 *              "SERVER_ERROR out of memory" or nothing, then EOF (or, where
 *              the orca absorbed the fault into one request's answer, that
 *              line and a connection that still answers)
 *   clients 1, 3   every byte exact
 *   riven      alive, and exits 0 on SIGTERM (under ASan: no leak on any
 *              fault path)
 *
 * The sweep ends at the first N the session never reaches (the fault did
 * not fire): every allocation of the session has then failed once.
 *
 * thread_exhaustion: riven in a pids cgroup of its own, pids.max one task
 * above what it runs with one client: a second client is served, a third
 * gets "SERVER_ERROR out of memory" and EOF, the first two keep exact
 * answers, and once a client leaves the next is served again. Skipped
 * where no pids cgroup can be made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libgen.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "group.h"
#include "harness.h"

#define N_MAX    400 /* more allocations than any session makes */
#define BIG      100000
#define OOM_LINE "SERVER_ERROR out of memory\r\n"

static char fault_bin[512];
static char riven_bin[512]; /* RIVEN_BIN as the suite gave it */

static void
append(char **buf, size_t *len, const void *p, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

#define ADD(b, l, s) append((b), (l), (s), strlen(s))

/* The session every client runs, on keys of its own (tag), and the exact
 * bytes memcached answers it with. */
static void
session(char tag, char **req, size_t *nreq, char **want, size_t *nwant)
{
    char line[256], *big = malloc(BIG);

    assert_non_null(big);
    memset(big, tag, BIG);
    *req = *want = NULL;
    *nreq = *nwant = 0;
    snprintf(line, sizeof(line),
             "set %c1 0 0 5\r\nhello\r\nset %c2 7 0 3\r\nabc\r\n"
             "get %c1\r\nget %c1 %c2 %cx\r\nincr %c3 1\r\n"
             "set %c3 0 0 1\r\n5\r\nincr %c3 2\r\nmg %c2 v f\r\n"
             "delete %c1\r\nget %c1\r\nset %cbig 0 0 %d\r\n",
             tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag,
             BIG);
    ADD(req, nreq, line);
    append(req, nreq, big, BIG);
    snprintf(line, sizeof(line), "\r\nget %cbig\r\n", tag);
    ADD(req, nreq, line);
    snprintf(line, sizeof(line),
             "STORED\r\nSTORED\r\nVALUE %c1 0 5\r\nhello\r\nEND\r\n"
             "VALUE %c1 0 5\r\nhello\r\nVALUE %c2 7 3\r\nabc\r\nEND\r\n"
             "NOT_FOUND\r\nSTORED\r\n7\r\nVA 3 f7\r\nabc\r\n"
             "DELETED\r\nEND\r\nSTORED\r\nVALUE %cbig 0 %d\r\n",
             tag, tag, tag, tag, BIG);
    ADD(want, nwant, line);
    append(want, nwant, big, BIG);
    ADD(want, nwant, "\r\nEND\r\n");
    free(big);
}

/* Run the session of tag on c, every byte exact. */
static void
exact_session(struct harness_conn *c, char tag)
{
    char *req, *want;
    size_t nreq, nwant;

    session(tag, &req, &nreq, &want, &nwant);
    assert_int_equal(harness_send(c, req, nreq), 0);
    assert_true(harness_expect_n(c, want, nwant, HARNESS_TIMEOUT_MS));
    free(req);
    free(want);
}

/* Client 2's session: exact up to the fault. Returns 1 if the fault
 * closed the connection, 0 if it was answered whole (no fault, or one
 * absorbed into a request's answer). */
static int
broken_session(struct harness_conn *c)
{
    char *req, *want, *got;
    size_t nreq, nwant, len;

    session('b', &req, &nreq, &want, &nwant);
    append(&req, &nreq, "mn\r\n", 4); /* "MN\r\n" ends the replies */
    /* the peer may close before it read everything */
    (void)harness_send(c, req, nreq);
    got = harness_recv_until(c, "MN\r\n", 4, HARNESS_TIMEOUT_MS * 4, &len);
    if (got == NULL) { /* closed: exact, then the line or nothing */
        size_t n = c->len, k = strlen(OOM_LINE);

        assert_true(harness_wait_eof(c, HARNESS_TIMEOUT_MS));
        if (n >= k && memcmp(c->buf + n - k, OOM_LINE, k) == 0) {
            n -= k;
        }
        if (n > nwant || memcmp(c->buf, want, n) != 0) {
            harness_diff("expected", want, nwant, "client 2", c->buf, c->len);
            fail_msg("client 2: not a prefix of its replies and an error");
        }
        free(req);
        free(want);
        return 1;
    }
    /* still open: exact, or one request answered "SERVER_ERROR out of
     * memory" in place (the replies after it may then differ) */
    if (!(len == nwant + 4 && memcmp(got, want, nwant) == 0) &&
        strstr(got, OOM_LINE) == NULL) {
        harness_diff("expected", want, nwant, "client 2", got, len);
        fail_msg("client 2: open, but neither exact nor an error line");
    }
    free(got);
    free(req);
    free(want);
    return 0;
}

static int
group_setup(void **state)
{
    char path[512];

    (void)state;
    snprintf(riven_bin, sizeof(riven_bin), "%s", harness_riven_bin());
    snprintf(path, sizeof(path), "%s", harness_riven_bin());
    snprintf(fault_bin, sizeof(fault_bin), "%s/tests/riven-fault",
             dirname(path));
    if (access(fault_bin, X_OK) != 0) {
        fprintf(stderr, "integ_fault: %s not built\n", fault_bin);
        return -1;
    }
    return group_mc_setup(state);
}

/* Did riven-fault's stderr (errpath) say that the fault fired? */
static bool
fired(const char *errpath)
{
    char buf[4096];
    FILE *f = fopen(errpath, "r");
    bool yes = false;

    assert_non_null(f);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        yes = yes || strstr(buf, "riven-fault: allocation") != NULL;
    }
    fclose(f);
    return yes;
}

/* One run of the sweep. Returns whether the fault fired; counts closes. */
static bool
run_one(unsigned n, unsigned *closed)
{
    char env[32], errpath[] = "/tmp/riven-fault-XXXXXX";
    struct harness_proc rv = {.pid = -1};
    struct harness_conn *c1, *c2, *c3;
    int efd = mkstemp(errpath), saved, rc, status;
    bool yes;

    assert_true(efd >= 0);
    c1 = harness_conn_open(group_mc.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c1);
    assert_true(harness_roundtrip(c1, "flush_all\r\n", "OK\r\n"));
    harness_conn_close(c1);
    snprintf(env, sizeof(env), "%u@3", n);
    setenv("RIVEN_FAULT_ALLOC", env, 1);
    setenv("RIVEN_BIN", fault_bin, 1);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(efd, STDERR_FILENO);
    rc = harness_riven_start(&rv, group_mc.port, NULL, 0, NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(efd);
    assert_int_equal(rc, 0);

    c1 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c1);
    exact_session(c1, 'a'); /* c1 is connection 1 */
    c2 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c2);
    *closed += (unsigned)broken_session(c2);
    c3 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c3);
    exact_session(c3, 'c');
    exact_session(c1, 'd');
    assert_true(harness_proc_alive(&rv));
    harness_conn_close(c1);
    harness_conn_close(c2);
    harness_conn_close(c3);
    status = harness_proc_stop(&rv, 5000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    yes = fired(errpath);
    unlink(errpath);
    return yes;
}

static void
test_alloc_faults(void **state)
{
    unsigned n = 1, closed = 0;

    (void)state;
    while (n <= N_MAX && run_one(n, &closed)) {
        n++;
    }
    unsetenv("RIVEN_FAULT_ALLOC");
    printf("alloc_faults: client 2 (connection 3) makes %u allocations; "
           "each failed once: %u closed it, %u were answered in place\n",
           n - 1, closed, n - 1 - closed);
    assert_true(n > 1);      /* the session allocates at all */
    assert_true(n <= N_MAX); /* and the sweep reached its end */
}

/* ---- thread exhaustion ------------------------------------------------ */

/* A pids cgroup of our own (v1 pids hierarchy or v2 with the pids
 * controller), or false with the reason. */
static bool
cgroup_make(char *dir, size_t len)
{
    static const char *const roots[] = {"/sys/fs/cgroup/pids",
                                        "/sys/fs/cgroup"};

    for (size_t i = 0; i < 2; i++) {
        char probe[256];

        snprintf(probe, sizeof(probe), "%s/pids.max", roots[i]);
        snprintf(dir, len, "%s/riven-test-%d", roots[i], (int)getpid());
        if (mkdir(dir, 0755) == 0) {
            snprintf(probe, sizeof(probe), "%s/pids.max", dir);
            if (access(probe, W_OK) == 0) {
                return true;
            }
            rmdir(dir);
        }
    }
    return false;
}

static void
cg_write(const char *dir, const char *file, long v)
{
    char path[300];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%ld\n", v);
    assert_int_equal(fclose(f), 0);
}

static long
cg_read(const char *dir, const char *file)
{
    char path[300];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &v), 1);
    fclose(f);
    return v;
}

/* "stats proxy" on c until its connection threads number want. */
static void
wait_threads(struct harness_conn *c, long want)
{
    int64_t end = harness_now_ms() + HARNESS_TIMEOUT_MS;
    long n = -1;

    while (n != want && harness_now_ms() < end) {
        size_t len;
        char *r, *p;

        assert_int_equal(harness_sends(c, "stats proxy\r\n"), 0);
        r = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &len);
        assert_non_null(r);
        p = strstr(r, "STAT threads ");
        n = p ? strtol(p + 13, NULL, 10) : -1;
        free(r);
    }
    assert_int_equal(n, want);
}

static void
test_thread_exhaustion(void **state)
{
    struct harness_proc rv = {.pid = -1};
    struct harness_conn *c1, *c2, *c3;
    char dir[200];
    long base;

    (void)state;
    if (!cgroup_make(dir, sizeof(dir))) {
        printf("thread_exhaustion: no writable pids cgroup here; skipped\n");
        skip();
    }
    setenv("RIVEN_BIN", riven_bin, 1);
    assert_int_equal(harness_riven_start(&rv, group_mc.port, NULL, 0, NULL), 0);
    cg_write(dir, "cgroup.procs", rv.pid);
    c1 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c1);
    wait_threads(c1, 1); /* c1's thread alone: the readiness probe left */
    base = cg_read(dir, "pids.current");
    cg_write(dir, "pids.max", base + 1); /* room for one more thread */
    printf("thread_exhaustion: riven has %ld tasks, pids.max %ld\n", base,
           base + 1);

    c2 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c2);
    assert_true(harness_roundtrip(c2, "set t2 0 0 2\r\nok\r\n", "STORED\r\n"));
    c3 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c3);
    assert_true(harness_expect(c3, OOM_LINE)); /* no thread for c3 */
    assert_true(harness_wait_eof(c3, HARNESS_TIMEOUT_MS));
    harness_conn_close(c3);
    assert_true(
        harness_roundtrip(c1, "get t2\r\n", "VALUE t2 0 2\r\nok\r\nEND\r\n"));
    assert_true(
        harness_roundtrip(c2, "get t2\r\n", "VALUE t2 0 2\r\nok\r\nEND\r\n"));
    /* a thread freed is a client served again */
    harness_conn_close(c2);
    wait_threads(c1, 1);
    c3 = harness_conn_open(rv.port, HARNESS_TIMEOUT_MS);
    assert_non_null(c3);
    assert_true(
        harness_roundtrip(c3, "get t2\r\n", "VALUE t2 0 2\r\nok\r\nEND\r\n"));
    harness_conn_close(c3);
    harness_conn_close(c1);
    assert_true(harness_proc_alive(&rv));
    harness_proc_stop(&rv, 5000);
    assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_faults),
        cmocka_unit_test(test_thread_exhaustion),
    };

    if (harness_direct()) {
        printf("integ_fault: riven's own faults; nothing to check direct\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, group_setup, group_mc_teardown);
}
