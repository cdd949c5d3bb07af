/*
 * integ_listener: the accept loop at its limits, with real processes.
 *
 * - fd exhaustion: riven under a low RLIMIT_NOFILE (prlimit) with a high
 *   max_connections is filled with clients until accept4 fails (its
 *   /proc/PID/fd holds exactly the limit); while more clients connect for
 *   2 s riven uses under 5% of one core and writes one log line about it;
 *   a client connected before gets exact set/get bytes; once half the
 *   clients leave, a new client is served, and so is the other half;
 * - socket activation with more sockets (80) than the listener's old
 *   fixed array (64): riven serves exact set/get bytes on every one;
 * - unix sockets: a regular file at the path makes riven exit 1 naming the
 *   path, and the file keeps its bytes; a stale socket file is replaced,
 *   the new one has unix_socket_mode and serves, and is gone after a stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "group.h"
#include "harness.h"

#define NOFILE           64  /* riven's RLIMIT_NOFILE in the exhaustion test */
#define MAX_FILL         200 /* bound on the clients that fill it */
#define WINDOW_MS        2000
#define CONNECT_EVERY_MS 10
#define MAX_WAITING      (WINDOW_MS / CONNECT_EVERY_MS + 1)
#define CPU_PCT_MAX      5.0
#define NSOCKETS         80 /* systemd sockets: more than the old array's 64 */

static char version[128]; /* riven's exact reply to "version\r\n" */

/* Reply timeouts: longer under a sanitizer, where everything is slower. */
static int
scaled(int ms)
{
    return harness_rss_scale() > 1 ? ms * 4 : ms;
}

static void
tmp_path(char *path, size_t len, const char *what)
{
    snprintf(path, len, "/tmp/riven-lst-%d-%s", (int)getpid(), what);
}

/* A config: listen on 127.0.0.1:port (and unix:path if not NULL). */
static void
write_config(const char *conf, int port, const char *unix_path,
             const char *extra)
{
    FILE *f = fopen(conf, "w");

    assert_non_null(f);
    fprintf(f, "listen: [\"127.0.0.1:%d\"", port);
    if (unix_path != NULL) {
        fprintf(f, ", \"unix:%s\"", unix_path);
    }
    fprintf(f,
            "]\npool:\n  servers: [127.0.0.1:%d]\n"
            "client_idle_timeout_ms: 0\nbackend_idle_timeout_ms: 0\n%s",
            group_mc.port, extra != NULL ? extra : "");
    assert_int_equal(fclose(f), 0);
}

/* Start riven (after prefix, e.g. a prlimit command) with stderr to
 * errpath; does not wait. Without statuspath riven replaces sh, so rv->pid
 * is riven's. With it, sh writes riven's exit status there (the status
 * harness_proc_wait returns is not riven's), and riven runs under
 * timeout(1): one that does not exit is killed, never left behind. */
static void
spawn_riven(struct harness_proc *rv, const char *prefix, const char *conf,
            const char *errpath, const char *statuspath)
{
    char cmd[1024];

    if (statuspath == NULL) {
        snprintf(cmd, sizeof(cmd), "exec %s%s -q -m off -c %s 2>%s", prefix,
                 harness_riven_bin(), conf, errpath);
    } else {
        snprintf(cmd, sizeof(cmd),
                 "timeout -s KILL %d %s%s -q -m off -c %s 2>%s; echo $? >%s",
                 scaled(5000) / 1000, prefix, harness_riven_bin(), conf,
                 errpath, statuspath);
    }
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    assert_int_equal(harness_spawn(rv, "riven", argv), 0);
}

/*
 * SIGTERM riven and wait for it to exit by itself. Not harness_proc_stop:
 * its SIGCONT right after SIGTERM can land when riven, already exiting,
 * is in LeakSanitizer's stop-the-world, and discard the SIGSTOP of the
 * tracer's PTRACE_ATTACH, which then waits forever (seen under ASan, with
 * gdb). harness_proc_wait reports no exit status (it compares with the pid
 * after resetting it), so this proves only that riven exits in time.
 */
static void
stop_riven(struct harness_proc *rv)
{
    assert_int_equal(harness_proc_signal(rv, SIGTERM), 0);
    if (harness_proc_wait(rv, scaled(10000)) == -1) {
        harness_proc_stop(rv, 1000);
        fail_msg("riven did not exit within %d ms of SIGTERM", scaled(10000));
    }
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 1 << 20);
    size_t n;

    assert_non_null(f);
    assert_non_null(s);
    n = fread(s, 1, (1 << 20) - 1, f);
    fclose(f);
    if (len != NULL) {
        *len = n;
    }
    return s;
}

/* Lines of the file at path that contain needle. */
static int
count_lines(const char *path, const char *needle)
{
    char *s = slurp(path, NULL), *l = s;
    int n = 0;

    for (char *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
        *nl = '\0';
        n += strstr(l, needle) != NULL;
    }
    free(s);
    return n;
}

/* set then get key with value on c; the exact replies. */
static void
set_get(struct harness_conn *c, const char *key, const char *value)
{
    char req[256], want[256];

    snprintf(req, sizeof(req), "set %s 7 0 %zu\r\n%s\r\n", key, strlen(value),
             value);
    assert_true(harness_roundtrip(c, req, "STORED\r\n"));
    snprintf(req, sizeof(req), "get %s\r\n", key);
    snprintf(want, sizeof(want), "VALUE %s 7 %zu\r\n%s\r\nEND\r\n", key,
             strlen(value), value);
    assert_true(harness_roundtrip(c, req, want));
}

/* Learn riven's exact version line from a client on port. */
static void
learn_version(struct harness_conn *c)
{
    size_t n;
    char *line;

    assert_int_equal(harness_sends(c, "version\r\n"), 0);
    line = harness_recv_until(c, "\r\n", 2, scaled(HARNESS_TIMEOUT_MS), &n);
    assert_non_null(line);
    assert_true(strncmp(line, "VERSION ", 8) == 0);
    assert_true(n < sizeof(version));
    memcpy(version, line, n + 1);
    free(line);
}

/* ---- fd exhaustion ---------------------------------------------------- */

/* utime + stime of pid, in ms. */
static int64_t
cpu_ms(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces */
    assert_non_null(p);
    /* after ")": state(3) ... utime(14) stime(15) */
    assert_int_equal(sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu",
                            &ut, &st),
                     2);
    return (int64_t)((ut + st) * 1000 /
                     (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Open fds of pid. */
static int
fd_count(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* A connection to 127.0.0.1:port that does not wait for the handshake. */
static int
connect_nb(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        assert_int_equal(errno, EINPROGRESS);
    }
    return fd;
}

/* Fill riven's fds with clients that each got their exact VERSION line;
 * the first client that gets nothing within probe_ms is left queued in
 * *queued. Returns the clients served. */
static int
fill(int port, struct harness_conn **c, struct harness_conn **queued)
{
    int n = 0;

    for (; n < MAX_FILL; n++) {
        c[n] = harness_conn_open(port, 2000);
        assert_non_null(c[n]);
        assert_int_equal(harness_sends(c[n], "version\r\n"), 0);
        if (!harness_quiet(c[n], scaled(500))) {
            assert_true(harness_expect(c[n], version));
            continue;
        }
        *queued = c[n];
        return n;
    }
    fail_msg("riven accepted %d clients under a limit of %d fds", n, NOFILE);
    return n;
}

/* Connect every CONNECT_EVERY_MS for WINDOW_MS; riven's CPU share in %. */
static double
connect_window(pid_t pid, int port, int *fds, int *nfds)
{
    int64_t t0 = harness_now_ms(), c0 = cpu_ms(pid), t1, c1;

    *nfds = 0;
    while (harness_now_ms() - t0 < WINDOW_MS && *nfds < MAX_WAITING) {
        fds[(*nfds)++] = connect_nb(port);
        usleep(CONNECT_EVERY_MS * 1000);
    }
    t1 = harness_now_ms();
    c1 = cpu_ms(pid);
    printf("fd exhaustion: riven used %lld ms of CPU in %lld ms (%.2f%% of "
           "one core) while %d clients connected\n",
           (long long)(c1 - c0), (long long)(t1 - t0),
           100.0 * (double)(c1 - c0) / (double)(t1 - t0), *nfds);
    return 100.0 * (double)(c1 - c0) / (double)(t1 - t0);
}

static void
test_fd_exhaustion(void **state)
{
    struct harness_conn *a, *b, *queued = NULL, *c[MAX_FILL];
    struct harness_proc rv;
    char conf[128], errpath[128], prefix[64], comm[64] = "";
    int port = harness_free_port(), n, waiting[MAX_WAITING], nwaiting;
    FILE *f;

    (void)state;
    tmp_path(conf, sizeof(conf), "emfile.yml");
    tmp_path(errpath, sizeof(errpath), "emfile.err");
    write_config(conf, port, NULL, "max_connections: 100000\n");
    snprintf(prefix, sizeof(prefix), "prlimit --nofile=%d:%d ", NOFILE, NOFILE);
    spawn_riven(&rv, prefix, conf, errpath, NULL);
    assert_int_equal(harness_wait_ready(&rv, port, scaled(5000)), 0);
    snprintf(comm, sizeof(comm), "/proc/%d/comm", (int)rv.pid);
    f = fopen(comm, "r");
    assert_non_null(f);
    assert_non_null(fgets(comm, sizeof(comm), f));
    fclose(f);
    assert_string_equal(comm, "riven\n"); /* the pid is riven's, not sh's */

    a = harness_conn_open(port, 2000);
    assert_non_null(a);
    learn_version(a);
    set_get(a, "before", "served before the limit");
    n = fill(port, c, &queued);
    /* accept4 failed: every fd below the limit is in use */
    assert_int_equal(fd_count(rv.pid), NOFILE);
    assert_true(connect_window(rv.pid, port, waiting, &nwaiting) < CPU_PCT_MAX);
    assert_int_equal(count_lines(errpath, "accept failed"), 1);
    assert_true(harness_proc_alive(&rv));
    /* clients connected before are served, exact bytes */
    set_get(a, "during", "served at the fd limit");
    assert_true(harness_roundtrip(c[n / 2], "version\r\n", version));
    assert_int_equal(fd_count(rv.pid), NOFILE);

    /* the waiting and half the filling clients leave: riven accepts again
     * (the queued connections, then b) */
    for (int i = 0; i < nwaiting; i++) {
        close(waiting[i]);
    }
    harness_conn_close(queued);
    for (int i = 0; i < n / 2; i++) {
        harness_conn_close(c[i]);
    }
    b = harness_conn_open(port, 2000);
    assert_non_null(b);
    assert_int_equal(harness_sends(b, "version\r\n"), 0);
    assert_true(harness_expect_n(b, version, strlen(version), scaled(10000)));
    set_get(b, "after", "served after the limit");
    set_get(a, "after2", "still served");
    for (int i = n / 2; i < n; i++) { /* the other half kept theirs */
        assert_true(harness_roundtrip(c[i], "version\r\n", version));
        harness_conn_close(c[i]);
    }
    printf("fd exhaustion: %d clients filled %d fds; served again after\n", n,
           NOFILE);
    harness_conn_close(a);
    harness_conn_close(b);
    stop_riven(&rv);
    unlink(conf);
    unlink(errpath);
}

/* ---- many systemd sockets --------------------------------------------- */

/* NSOCKETS distinct free ports. */
static void
free_ports(int *ports)
{
    for (int i = 0; i < NSOCKETS; i++) {
        bool dup;

        do {
            ports[i] = harness_free_port();
            assert_true(ports[i] > 0);
            dup = false;
            for (int j = 0; j < i; j++) {
                dup = dup || ports[j] == ports[i];
            }
        } while (dup);
    }
}

/* systemd-socket-activate -l each port... riven -b memcached. */
static int
activate(struct harness_proc *sa, const int *ports)
{
    static char addrs[NSOCKETS][32];
    const char *argv[2 * NSOCKETS + 16];
    char back[32];
    size_t n = 0;

    argv[n++] = "systemd-socket-activate";
    for (int i = 0; i < NSOCKETS; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", ports[i]);
        argv[n++] = "-l";
        argv[n++] = addrs[i];
    }
    snprintf(back, sizeof(back), "127.0.0.1:%d", group_mc.port);
    argv[n++] = harness_riven_bin();
    argv[n++] = "-q";
    argv[n++] = "-m";
    argv[n++] = "off";
    argv[n++] = "-b";
    argv[n++] = back;
    argv[n] = NULL;
    if (harness_spawn(sa, "activate", argv) != 0) {
        return -1;
    }
    if (harness_wait_ready(sa, ports[NSOCKETS - 1], scaled(5000)) != 0) {
        harness_proc_stop(sa, 2000);
        return -1;
    }
    return 0;
}

static void
test_many_systemd_sockets(void **state)
{
    int ports[NSOCKETS], attempt = 0;
    struct harness_proc sa;
    char key[32], value[32];

    (void)state;
    if (access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
        skip();
    }
    do { /* a port taken between harness_free_port and the bind: retry */
        free_ports(ports);
    } while (activate(&sa, ports) != 0 && ++attempt < 3);
    assert_true(attempt < 3);
    for (int i = 0; i < NSOCKETS; i++) {
        struct harness_conn *c = harness_conn_open(ports[i], 2000);

        assert_non_null(c);
        snprintf(key, sizeof(key), "sock%d", i);
        snprintf(value, sizeof(value), "port %d", ports[i]);
        set_get(c, key, value);
        harness_conn_close(c);
    }
    printf("socket activation: %d sockets, each served set/get\n", NSOCKETS);
    assert_true(harness_proc_alive(&sa));
    stop_riven(&sa);
}

/* ---- unix sockets ----------------------------------------------------- */

static struct harness_conn *
unix_open(const char *path)
{
    struct harness_conn *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->fd = harness_unix_connect(path);
    assert_true(c->fd >= 0);
    return c;
}

static void
test_unix_refuses_file(void **state)
{
    static const char content[] = "not a socket: keep me\n";
    char path[108], conf[128], errpath[128], statuspath[128], want[512];
    char *got;
    struct harness_proc rv;
    struct stat st;
    size_t len;
    FILE *f;

    (void)state;
    tmp_path(path, sizeof(path), "file.sock");
    tmp_path(statuspath, sizeof(statuspath), "file.status");
    tmp_path(conf, sizeof(conf), "file.yml");
    tmp_path(errpath, sizeof(errpath), "file.err");
    f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(content, f) >= 0);
    fclose(f);
    write_config(conf, harness_free_port(), path, NULL);
    spawn_riven(&rv, "", conf, errpath, statuspath);
    assert_true(harness_proc_wait(&rv, scaled(5000) + 2000) != -1);
    got = slurp(statuspath, NULL);
    assert_string_equal(got, "1\n"); /* riven's exit status */
    free(got);
    snprintf(want, sizeof(want),
             "listen: unix:%s: %s exists and is not a socket; refusing to "
             "replace it\n",
             path, path);
    got = slurp(errpath, NULL);
    if (strstr(got, want) == NULL) {
        fail_msg("stderr: %s", got);
    }
    free(got);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    got = slurp(path, &len);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(got, content, len);
    free(got);
    unlink(path);
    unlink(conf);
    unlink(errpath);
    unlink(statuspath);
}

/* A socket file nobody listens on, as a killed riven leaves. */
static void
stale_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct stat st;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
}

static void
test_unix_stale_and_mode(void **state)
{
    char path[108], conf[128];
    struct harness_proc rv;
    struct harness_conn *c;
    struct stat st;
    int port = harness_free_port();
    mode_t old = umask(0); /* riven inherits it; its mode must not */

    (void)state;
    tmp_path(path, sizeof(path), "stale.sock");
    tmp_path(conf, sizeof(conf), "stale.yml");
    stale_socket(path);
    write_config(conf, port, path, "unix_socket_mode: 0620\n");
    assert_int_equal(harness_riven_start(&rv, group_mc.port, conf, port, NULL),
                     0);
    /* the port is ready first: the path follows it in the list */
    assert_int_equal(harness_wait_ready_unix(&rv, path, HARNESS_TIMEOUT_MS), 0);
    umask(old);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0620);
    c = unix_open(path);
    set_get(c, "unix", "over the unix socket");
    harness_conn_close(c);
    stop_riven(&rv);
    /* riven removes the socket it created */
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    unlink(conf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_exhaustion),
        cmocka_unit_test(test_many_systemd_sockets),
        cmocka_unit_test(test_unix_refuses_file),
        cmocka_unit_test(test_unix_stale_and_mode),
    };

    if (harness_direct()) {
        printf("integ_listener: needs riven, skipped under RIVEN_DIRECT\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, group_mc_setup, group_mc_teardown);
}
