/*
 * integ_systemd: riven as a systemd service, with real processes.
 *
 * - the notify protocol against a test NOTIFY_SOCKET (a unix datagram
 *   socket): READY=1, then RELOADING=1 + MONOTONIC_USEC and READY=1 around
 *   a SIGHUP, then STOPPING=1 on SIGTERM and exit status 0;
 * - socket activation under systemd-socket-activate: riven serves on the
 *   passed socket and binds nothing else (its -l address stays closed);
 * - SIGTERM with requests in flight: memcached is stopped (SIGSTOP) so a
 *   get from each of several clients is held; riven is told to stop, the
 *   backend continues, each client gets its exact reply, then EOF, and
 *   riven exits 0;
 * - journal priorities: with JOURNAL_STREAM naming riven's stderr, every
 *   line starts "<N>"; without it, none does;
 * - systemd-analyze verify on both units, installed with make install
 *   into a temporary prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "group.h"
#include "harness.h"

#define CLIENTS 8

/* A datagram socket at a fresh path; the path is written to path. */
static int
notify_socket(char *path, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    snprintf(path, len, "/tmp/riven-notify-%d-%lld", (int)getpid(),
             (long long)harness_now_ms());
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Read datagrams until one contains want (and also want2, if given). */
static bool
await_notify(int fd, const char *want, const char *want2, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    char msg[4096];

    while (harness_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, (int)(deadline - harness_now_ms())) <= 0) {
            continue;
        }
        n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0) {
            continue;
        }
        msg[n] = '\0';
        if (strstr(msg, want) != NULL &&
            (want2 == NULL || strstr(msg, want2) != NULL)) {
            return true;
        }
    }
    fprintf(stderr, "no notify message with %s\n", want);
    return false;
}

static int
write_config(char *path, size_t len, int listen_port, int request_ms)
{
    FILE *f;

    snprintf(path, len, "/tmp/riven-sd-%d-%d.yml", (int)getpid(), listen_port);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f,
            "listen: [127.0.0.1:%d]\n"
            "pool:\n  servers: [127.0.0.1:%d]\n"
            "timeouts: {connect_ms: 1000, request_ms: %d}\n",
            listen_port, group_mc.port, request_ms);
    return fclose(f);
}

static void
test_notify(void **state)
{
    char sock[108], conf[128];
    int fd, port = harness_free_port(), status;
    struct harness_proc rv;

    (void)state;
    fd = notify_socket(sock, sizeof(sock));
    assert_int_equal(write_config(conf, sizeof(conf), port, 1000), 0);
    setenv("NOTIFY_SOCKET", sock, 1);
    assert_int_equal(harness_riven_start(&rv, group_mc.port, conf, port, NULL),
                     0);
    unsetenv("NOTIFY_SOCKET");
    assert_true(await_notify(fd, "READY=1", NULL, 5000));
    assert_int_equal(harness_proc_signal(&rv, SIGHUP), 0);
    assert_true(await_notify(fd, "RELOADING=1", "MONOTONIC_USEC=", 5000));
    assert_true(await_notify(fd, "READY=1", NULL, 5000));
    assert_int_equal(harness_proc_signal(&rv, SIGTERM), 0);
    assert_true(await_notify(fd, "STOPPING=1", NULL, 5000));
    status = harness_proc_wait(&rv, 5000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
    unlink(sock);
    unlink(conf);
}

static void
test_socket_activation(void **state)
{
    int port = harness_free_port(), other = harness_free_port();
    char lst[64], lother[64], back[64];
    struct harness_proc sa;
    struct harness_conn *c;

    (void)state;
    if (access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
        skip();
    }
    snprintf(lst, sizeof(lst), "127.0.0.1:%d", port);
    snprintf(lother, sizeof(lother), "127.0.0.1:%d", other);
    snprintf(back, sizeof(back), "127.0.0.1:%d", group_mc.port);
    const char *argv[] = {"systemd-socket-activate",
                          "-l",
                          lst,
                          harness_riven_bin(),
                          "-q",
                          "-m",
                          "off",
                          "-l",
                          lother,
                          "-b",
                          back,
                          NULL};
    assert_int_equal(harness_spawn(&sa, "activate", argv), 0);
    assert_int_equal(harness_wait_ready(&sa, port, 5000), 0);
    c = harness_conn_open(port, 2000);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set sa 1 0 2\r\nok\r\n", "STORED\r\n"));
    assert_true(
        harness_roundtrip(c, "get sa\r\n", "VALUE sa 1 2\r\nok\r\nEND\r\n"));
    harness_conn_close(c);
    /* riven binds nothing but what systemd passed */
    assert_null(harness_conn_open(other, 300));
    assert_true(WIFEXITED(harness_proc_stop(&sa, 5000)));
}

static void
test_drain_in_flight(void **state)
{
    struct harness_conn *c[CLIENTS];
    struct harness_proc rv;
    char conf[128], key[32], want[64];
    int port = harness_free_port(), status;
    int64_t t0;

    (void)state;
    assert_int_equal(write_config(conf, sizeof(conf), port, 5000), 0);
    assert_int_equal(harness_riven_start(&rv, group_mc.port, conf, port, NULL),
                     0);
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = harness_conn_open(port, 2000);
        assert_non_null(c[i]);
        snprintf(key, sizeof(key), "set d%d 0 0 1\r\n%d\r\n", i, i);
        assert_true(harness_roundtrip(c[i], key, "STORED\r\n"));
    }
    assert_int_equal(harness_proc_signal(&group_mc, SIGSTOP), 0);
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(key, sizeof(key), "get d%d\r\n", i);
        assert_int_equal(harness_sends(c[i], key), 0);
    }
    /* every get is in flight: nothing can answer while memcached sleeps */
    assert_true(harness_quiet(c[0], 200));
    t0 = harness_now_ms();
    assert_int_equal(harness_proc_signal(&rv, SIGTERM), 0);
    assert_int_equal(harness_proc_signal(&group_mc, SIGCONT), 0);
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(want, sizeof(want), "VALUE d%d 0 1\r\n%d\r\nEND\r\n", i, i);
        assert_true(harness_expect(c[i], want));
        assert_true(harness_wait_eof(c[i], 5000));
        harness_conn_close(c[i]);
    }
    status = harness_proc_wait(&rv, 10000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    printf("drain: %d in-flight gets answered, riven exited 0 after %lld ms\n",
           CLIENTS, (long long)(harness_now_ms() - t0));
    unlink(conf);
}

/* Run riven with stderr to a file, optionally as the "journal". */
static void
log_lines(bool journal, char *out, size_t len)
{
    char path[128], cmd[512], conf[128];
    int port = harness_free_port();
    struct harness_proc rv;
    struct stat st;
    FILE *f;
    size_t n;
    int status;

    snprintf(path, sizeof(path), "/tmp/riven-log-%d-%d", (int)getpid(), port);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(write_config(conf, sizeof(conf), port, 1000), 0);
    snprintf(cmd, sizeof(cmd), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    if (journal) {
        setenv("JOURNAL_STREAM", cmd, 1);
    }
    snprintf(cmd, sizeof(cmd), "exec %s -m off -c %s 2>>%s",
             harness_riven_bin(), conf, path);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    assert_int_equal(harness_spawn(&rv, "riven", argv), 0);
    unsetenv("JOURNAL_STREAM");
    assert_int_equal(harness_wait_ready(&rv, port, 5000), 0);
    status = harness_proc_stop(&rv, 5000);
    /* exited, not killed: its SIGTERM handler ran and it logged "stopped" */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    unlink(conf);
}

static void
test_journal_prefix(void **state)
{
    /* the three lines of a quiet run, each with the journal's <6> (info) */
    static const char *const want[] = {
        "<6>riven ", "<6>shutting down: draining ", "<6>stopped\n"};
    char text[8192];
    int lines = 0;

    (void)state;
    log_lines(true, text, sizeof(text));
    for (char *l = text; *l != '\0'; lines++) {
        char *nl = strchr(l, '\n');

        if (lines < 3 && strncmp(l, want[lines], strlen(want[lines])) != 0) {
            fail_msg("journal line %d: %.*s", lines + 1,
                     nl ? (int)(nl - l) : (int)strlen(l), l);
        }
        l = nl ? nl + 1 : l + strlen(l);
    }
    assert_int_equal(lines, 3);
    log_lines(false, text, sizeof(text));
    assert_true(text[0] != '<');
    assert_non_null(strstr(text, "info: riven "));
}

static void
test_units_verify(void **state)
{
    char cmd[1024], dir[64];
    int rc;

    (void)state;
    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
        skip();
    }
    snprintf(dir, sizeof(dir), "/tmp/riven-inst-%d", (int)getpid());
    snprintf(cmd, sizeof(cmd),
             "make -s install BIN=%s PREFIX=%s/usr SYSCONFDIR=%s/etc "
             "UNITDIR=%s/units >/dev/null && "
             "systemd-analyze verify %s/units/riven.service "
             "%s/units/riven.socket",
             harness_riven_bin(), dir, dir, dir, dir, dir);
    rc = system(cmd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
    assert_int_equal(rc, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_socket_activation),
        cmocka_unit_test(test_drain_in_flight),
        cmocka_unit_test(test_journal_prefix),
        cmocka_unit_test(test_units_verify),
    };

    if (harness_direct()) {
        printf("integ_systemd: needs riven, skipped under RIVEN_DIRECT\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, group_mc_setup, group_mc_teardown);
}
