/*
 * integ_pipeline: 100 gets in one write, and what riven pays for them.
 *
 * test_pipeline_100: a client writes 100 "get kN\r\n" requests in ONE
 * write and reads the 100 replies, compared byte for byte.
 *
 * test_pipeline_syscalls: the same burst while strace -f -c is attached to
 * riven (by pid, after a warm-up request so the connection thread and its
 * backend socket exist). The total number of riven's syscalls during the
 * burst, minus a baseline window with one get on the same connection, must
 * stay under 30: pipelining means a few reads and writes per burst, not
 * per request. Needs riven and strace (skipped otherwise, with a message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "group.h"
#include "harness.h"

#define NGETS        100
#define MAX_SYSCALLS 30

/* Requests and expected replies: kN exists for even N only. */
static void
build_burst(char **req, size_t *reqlen, char **want, size_t *wantlen)
{
    size_t rcap = NGETS * 16, wcap = NGETS * 64, rl = 0, wl = 0;
    char *r = malloc(rcap), *w = malloc(wcap);

    assert_non_null(r);
    assert_non_null(w);
    for (int i = 0; i < NGETS; i++) {
        rl += (size_t)snprintf(r + rl, rcap - rl, "get k%d\r\n", i);
        if (i % 2 == 0) {
            wl += (size_t)snprintf(w + wl, wcap - wl,
                                   "VALUE k%d %d %d\r\nval%06d\r\nEND\r\n", i,
                                   i, 9, i);
        } else {
            wl += (size_t)snprintf(w + wl, wcap - wl, "END\r\n");
        }
    }
    *req = r;
    *reqlen = rl;
    *want = w;
    *wantlen = wl;
}

static struct harness_conn *
open_loaded(void)
{
    struct harness_conn *c =
        harness_conn_open(group_stack.port, HARNESS_TIMEOUT_MS);
    char buf[64];

    assert_non_null(c);
    for (int i = 0; i < NGETS; i += 2) {
        snprintf(buf, sizeof(buf), "set k%d %d 0 9\r\nval%06d\r\n", i, i, i);
        assert_true(harness_roundtrip(c, buf, "STORED\r\n"));
    }
    for (int i = 1; i < NGETS; i += 2) {
        snprintf(buf, sizeof(buf), "delete k%d\r\n", i);
        assert_int_equal(harness_sends(c, buf), 0);
        free(harness_recv_until(c, "\r\n", 2, HARNESS_TIMEOUT_MS, NULL));
    }
    return c;
}

static void
burst(struct harness_conn *c)
{
    char *req, *want;
    size_t rl, wl;

    build_burst(&req, &rl, &want, &wl);
    assert_int_equal(harness_send(c, req, rl), 0); /* one write */
    assert_true(harness_expect_n(c, want, wl, HARNESS_TIMEOUT_MS));
    free(req);
    free(want);
}

static void
test_pipeline_100(void **state)
{
    struct harness_conn *c = open_loaded();

    (void)state;
    burst(c);
    burst(c);
    printf("    %d pipelined gets in one write: replies exact\n", NGETS);
    harness_conn_close(c);
}

/* ---- strace -------------------------------------------------------- */

static bool
have_strace(void)
{
    return system("command -v strace >/dev/null 2>&1") == 0;
}

/* true when every thread of pid is traced by tracer. */
static bool
all_traced(pid_t pid, pid_t tracer)
{
    char path[64], line[256];
    struct dirent *de;
    bool all = true;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (d == NULL) {
        return false;
    }
    while (all && (de = readdir(d)) != NULL) {
        FILE *f;
        long tp = -1;

        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", pid,
                 de->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue; /* thread exited meanwhile */
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "TracerPid: %ld", &tp) == 1) {
                break;
            }
        }
        fclose(f);
        all = tp == tracer;
        n++;
    }
    closedir(d);
    return all && n > 0;
}

/* Attach strace -f -c to riven; 0, or -1 if it cannot trace here. */
static int
strace_attach(struct harness_proc *st, const char *out)
{
    char pidstr[16];
    const char *argv[] = {"strace", "-q", "-f",   "-c", "-o",
                          out,      "-p", pidstr, NULL};
    int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

    snprintf(pidstr, sizeof(pidstr), "%d", group_stack.rv.pid);
    if (harness_spawn(st, "strace", argv) != 0) {
        return -1;
    }
    while (!all_traced(group_stack.rv.pid, st->pid)) {
        if (!harness_proc_alive(st) || harness_now_ms() > deadline) {
            harness_proc_stop(st, 1000);
            return -1;
        }
        poll(NULL, 0, 2);
    }
    return 0;
}

/* Detach (SIGINT makes strace write its summary) and return the total
 * number of syscalls it counted, or -1. */
static long
strace_detach(struct harness_proc *st, const char *out, bool show)
{
    char line[512];
    long total = -1;
    FILE *f;

    harness_proc_signal(st, SIGINT);
    if (harness_proc_wait(st, HARNESS_TIMEOUT_MS) < 0) {
        harness_proc_stop(st, 1000);
    }
    f = fopen(out, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char tok[6][32];
        int n;

        if (show) {
            printf("      | %s", line);
        }
        n = sscanf(line, "%31s %31s %31s %31s %31s %31s", tok[0], tok[1],
                   tok[2], tok[3], tok[4], tok[5]);
        if (n >= 5 && strcmp(tok[n - 1], "total") == 0) {
            total = atol(tok[3]);
        }
    }
    fclose(f);
    if (total < 0) {
        total = 0; /* strace prints no total when nothing was traced */
    }
    return total;
}

static void
test_pipeline_syscalls(void **state)
{
    char out[] = "/tmp/riven-strace-XXXXXX";
    struct harness_proc st = {.pid = -1};
    struct harness_conn *c;
    long base, total;
    int fd;

    (void)state;
    if (harness_direct()) {
        printf("    RIVEN_DIRECT set: counting riven's syscalls needs "
               "riven, skipping\n");
        skip();
    }
    if (!have_strace()) {
        printf("    strace not installed: skipping the syscall count\n");
        skip();
    }
    fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    c = open_loaded();
    burst(c); /* warm: thread, buffers and backend socket exist */

    if (strace_attach(&st, out) != 0) {
        printf("    strace cannot attach to riven here (ptrace not "
               "permitted?): skipping\n");
        harness_conn_close(c);
        unlink(out);
        skip();
    }
    assert_true(harness_roundtrip(c, "get k0\r\n",
                                  "VALUE k0 0 9\r\nval000000\r\nEND\r\n"));
    base = strace_detach(&st, out, false);
    assert_true(base >= 0);

    assert_int_equal(strace_attach(&st, out), 0);
    burst(c);
    total = strace_detach(&st, out, true);
    assert_true(total >= 0);
    printf("    riven syscalls: %ld for %d pipelined gets, %ld for one get "
           "(baseline); difference %ld (limit %d)\n",
           total, NGETS, base, total - base, MAX_SYSCALLS);
    harness_conn_close(c);
    unlink(out);
    assert_true(total - base < MAX_SYSCALLS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_100),
        cmocka_unit_test(test_pipeline_syscalls),
    };

    return cmocka_run_group_tests(tests, group_stack_setup,
                                  group_stack_teardown);
}
