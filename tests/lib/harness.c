/*
 * harness: start/stop memcached and riven by pid, raw socket helpers.
 *
 * Every child pid goes into a small registry (reg[]) the moment fork
 * returns, and leaves it when it is reaped. The atexit hook and the fatal
 * signal handler only call kill(2) and waitpid(2) on registered pids, so
 * they stop exactly what this process started. Readiness and stop are
 * conditions polled against a monotonic deadline.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REG_MAX 64

/* stdout line by line, so a test's printf lines and harness's stderr
 * lines keep their order in a log both go to */
__attribute__((constructor)) static void
harness_line_buffered(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static volatile pid_t reg[REG_MAX]; /* started and not yet reaped */
static bool inited;
static long child_nofile; /* > 0: RLIMIT_NOFILE of the next children */

static void
reg_add(pid_t pid)
{
    for (int i = 0; i < REG_MAX; i++) {
        if (reg[i] == 0) {
            reg[i] = pid;
            return;
        }
    }
    fprintf(stderr, "harness: registry full, pid %d not tracked\n", pid);
}

static void
reg_del(pid_t pid)
{
    for (int i = 0; i < REG_MAX; i++) {
        if (reg[i] == pid) {
            reg[i] = 0;
        }
    }
}

/* Kill and reap everything still registered; async-signal-safe. */
static void
reg_kill_all(void)
{
    for (int i = 0; i < REG_MAX; i++) {
        pid_t pid = reg[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            reg[i] = 0;
        }
    }
}

static void
on_exit_cleanup(void)
{
    reg_kill_all();
}

static void
on_fatal_signal(int sig)
{
    reg_kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
harness_init(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT};
    struct sigaction sa;

    if (inited) {
        return;
    }
    inited = true;
    atexit(on_exit_cleanup);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
}

int64_t
harness_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
harness_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

bool
harness_direct(void)
{
    const char *s = getenv("RIVEN_DIRECT");

    return s != NULL && s[0] != '\0' && strcmp(s, "0") != 0;
}

const char *
harness_riven_bin(void)
{
    const char *s = getenv("RIVEN_BIN");

    return (s != NULL && s[0] != '\0') ? s : "build/riven";
}

bool
harness_riven_available(void)
{
    return access(harness_riven_bin(), X_OK) == 0;
}

int
harness_free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0) {
        port = ntohs(sin.sin_port);
    }
    close(fd);
    return port;
}

long
harness_nofile_limit(void)
{
    static bool printed;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return -1;
    }
    if (!printed) {
        printed = true;
        fprintf(stderr, "harness: ulimit -n = %ld (hard %ld)\n",
                (long)rl.rlim_cur, (long)rl.rlim_max);
    }
    return (long)rl.rlim_cur;
}

void
harness_child_nofile(long n)
{
    child_nofile = n > 0 ? n : 0;
}

long
harness_proc_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

int
harness_spawn(struct harness_proc *p, const char *name, const char *const *argv)
{
    pid_t parent = getpid();
    pid_t pid;

    harness_init();
    p->pid = -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("harness: fork");
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        signal(SIGPIPE, SIG_DFL);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
        }
        if (close_range(3, ~0U, 0) != 0) {
            for (int fd = 3; fd < 1024; fd++) {
                close(fd);
            }
        }
        if (child_nofile > 0) {
            struct rlimit rl = {.rlim_cur = (rlim_t)child_nofile,
                                .rlim_max = (rlim_t)child_nofile};

            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                fprintf(stderr, "harness: setrlimit: %s\n", strerror(errno));
                _exit(127);
            }
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    reg_add(pid);
    p->pid = pid;
    return 0;
}

bool
harness_proc_alive(struct harness_proc *p)
{
    int status;
    pid_t r;

    if (p->pid <= 0) {
        return false;
    }
    r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0) {
        return true;
    }
    if (r == p->pid) {
        if (WIFEXITED(status)) {
            fprintf(stderr, "harness: %s (pid %d) exited with %d\n", p->name,
                    p->pid, WEXITSTATUS(status));
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "harness: %s (pid %d) killed by signal %d\n",
                    p->name, p->pid, WTERMSIG(status));
        }
        reg_del(p->pid);
        p->pid = -1;
    }
    return false;
}

static int
try_connect(int port)
{
    struct sockaddr_in sin;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
harness_unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Until a connect to port (path == NULL) or to the unix socket at path
 * succeeds, p exits, or the deadline passes. */
static int
wait_accepting(struct harness_proc *p, int port, const char *path,
               int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    char what[160];

    if (path != NULL) {
        snprintf(what, sizeof(what), "unix:%s", path);
    } else {
        snprintf(what, sizeof(what), "port %d", port);
    }
    for (;;) {
        int fd = path != NULL ? harness_unix_connect(path) : try_connect(port);

        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (p != NULL && !harness_proc_alive(p)) {
            fprintf(stderr, "harness: %s died before accepting on %s\n",
                    p->name, what);
            return -1;
        }
        if (harness_now_ms() >= deadline) {
            fprintf(stderr, "harness: %s not ready after %d ms\n", what,
                    timeout_ms);
            return -1;
        }
        pause_ms(5);
    }
}

int
harness_wait_ready(struct harness_proc *p, int port, int timeout_ms)
{
    return wait_accepting(p, port, NULL, timeout_ms);
}

int
harness_wait_ready_unix(struct harness_proc *p, const char *path,
                        int timeout_ms)
{
    return wait_accepting(p, 0, path, timeout_ms);
}

int
harness_proc_wait(struct harness_proc *p, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    pid_t pid = p->pid;
    int status;

    if (pid <= 0) {
        return -1;
    }
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid || (r < 0 && errno == ECHILD)) {
            reg_del(pid);
            p->pid = -1;
            return r == pid ? status : 0;
        }
        if (harness_now_ms() >= deadline) {
            return -1;
        }
        pause_ms(2);
    }
}

int
harness_proc_stop(struct harness_proc *p, int timeout_ms)
{
    pid_t pid = p->pid;
    int status = -1;

    if (pid <= 0) {
        return -1;
    }
    if (harness_rss_scale() > 1) {
        timeout_ms *= 4;
    }
    /* a stopped process cannot act on SIGTERM; a SIGCONT after it could
     * break LeakSanitizer's stop of the exiting process */
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    status = harness_proc_wait(p, timeout_ms);
    if (p->pid > 0) {
        fprintf(stderr,
                "harness: %s (pid %d) ignored SIGTERM for %d ms, "
                "killing\n",
                p->name, pid, timeout_ms);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        reg_del(pid);
        p->pid = -1;
    }
    return status;
}

long
harness_proc_status(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* True if every task of pid is in state T (stopped). */
static bool
all_stopped(pid_t pid)
{
    char path[320], line[512];
    DIR *d;
    struct dirent *e;
    bool all = true;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if ((d = opendir(path)) == NULL) {
        return false;
    }
    while (all && (e = readdir(d)) != NULL) {
        FILE *f;
        char *rp;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid,
                 e->d_name);
        if ((f = fopen(path, "r")) == NULL) {
            continue;
        }
        if (fgets(line, sizeof(line), f) != NULL &&
            (rp = strrchr(line, ')')) != NULL && rp[1] == ' ') {
            all = rp[2] == 'T' || rp[2] == 't';
        }
        fclose(f);
    }
    closedir(d);
    return all;
}

static int
wait_all_stopped(pid_t pid, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;

    while (!all_stopped(pid)) {
        if (harness_now_ms() >= deadline) {
            fprintf(stderr, "harness: pid %d did not stop\n", (int)pid);
            return -1;
        }
        sched_yield();
    }
    return 0;
}

int
harness_proc_signal(struct harness_proc *p, int sig)
{
    if (p->pid <= 0 || kill(p->pid, sig) != 0) {
        return -1;
    }
    /* SIGSTOP takes effect thread by thread: wait until every thread of
     * the process is stopped, or a thread could still serve a request. */
    return sig == SIGSTOP ? wait_all_stopped(p->pid, HARNESS_TIMEOUT_MS) : 0;
}

void
harness_proc_kill(struct harness_proc *p)
{
    if (p->pid <= 0) {
        return;
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    reg_del(p->pid);
    p->pid = -1;
}

static int
start_and_wait(struct harness_proc *p, const char *name,
               const char *const *argv, int port)
{
    if (harness_spawn(p, name, argv) != 0) {
        return -1;
    }
    p->port = port;
    if (harness_wait_ready(p, port, HARNESS_TIMEOUT_MS) != 0) {
        harness_proc_stop(p, 1000);
        return -1;
    }
    return 0;
}

/* Append a NULL-terminated list to argv at *n (bounded by max - 1). */
static int
append_args(const char **argv, size_t *n, size_t max, const char *const *extra)
{
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (*n + 1 >= max) {
            fprintf(stderr, "harness: too many arguments\n");
            return -1;
        }
        argv[(*n)++] = extra[i];
    }
    argv[*n] = NULL;
    return 0;
}

int
harness_memcached_start(struct harness_proc *p, int port,
                        const char *const *extra)
{
    const char *argv[64];
    char portstr[16];
    size_t n = 0;
    bool pick = port == 0;

    for (int attempt = 0; attempt < 5; attempt++) {
        if (pick) {
            port = harness_free_port();
        }
        if (port <= 0) {
            return -1;
        }
        snprintf(portstr, sizeof(portstr), "%d", port);
        n = 0;
        argv[n++] = "memcached";
        argv[n++] = "-U";
        argv[n++] = "0";
        argv[n++] = "-l";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = portstr;
        argv[n++] = "-m";
        argv[n++] = "64";
        if (geteuid() == 0) { /* memcached refuses root without -u */
            argv[n++] = "-u";
            argv[n++] = getpwnam("nobody") != NULL ? "nobody" : "root";
        }
        if (append_args(argv, &n, 64, extra) != 0) {
            return -1;
        }
        if (start_and_wait(p, "memcached", argv, port) == 0) {
            return 0;
        }
        if (!pick) {
            break;
        }
    }
    fprintf(stderr, "harness: cannot start memcached\n");
    return -1;
}

bool
harness_batched(void)
{
    const char *v = getenv("RIVEN_BATCHED");

    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

int
harness_riven_start(struct harness_proc *p, int backend_port,
                    const char *config, int listen_port,
                    const char *const *extra)
{
    const char *argv[64];
    char laddr[32], baddr[32];
    int attempts = config != NULL ? 1 : 5;
    size_t n;

    for (int attempt = 0; attempt < attempts; attempt++) {
        int port = config != NULL ? listen_port : harness_free_port();

        if (port <= 0) {
            return -1;
        }
        n = 0;
        argv[n++] = harness_riven_bin();
        argv[n++] = "-q";
        argv[n++] = "-m"; /* no /metrics unless extra asks: ports clash */
        argv[n++] = "off";
        if (config != NULL) {
            argv[n++] = "-c";
            argv[n++] = config;
        } else {
            snprintf(laddr, sizeof(laddr), "127.0.0.1:%d", port);
            snprintf(baddr, sizeof(baddr), "127.0.0.1:%d", backend_port);
            argv[n++] = "-l";
            argv[n++] = laddr;
            argv[n++] = "-b";
            argv[n++] = baddr;
        }
        /* no /metrics listener: its fixed default port would collide
         * between concurrent test runs */
        argv[n++] = "-m";
        argv[n++] = "off";
        if (config == NULL && harness_batched()) {
            argv[n++] = "--batched";
        }
        if (append_args(argv, &n, 64, extra) != 0) {
            return -1;
        }
        if (start_and_wait(p, "riven", argv, port) == 0) {
            return 0;
        }
    }
    fprintf(stderr, "harness: cannot start %s\n", harness_riven_bin());
    return -1;
}

int
harness_stack_start(struct harness_stack *s, const char *const *riven_extra)
{
    s->mc.pid = -1;
    s->rv.pid = -1;
    s->port = -1;
    if (harness_memcached_start(&s->mc, 0, NULL) != 0) {
        return -1;
    }
    if (harness_direct()) {
        s->port = s->mc.port;
        return 0;
    }
    if (harness_riven_start(&s->rv, s->mc.port, NULL, 0, riven_extra) != 0) {
        harness_proc_stop(&s->mc, 2000);
        return -1;
    }
    s->port = s->rv.port;
    return 0;
}

void
harness_stack_stop(struct harness_stack *s)
{
    harness_proc_stop(&s->rv, 5000);
    harness_proc_stop(&s->mc, 5000);
}

bool
harness_stack_alive(struct harness_stack *s)
{
    bool ok = true;

    if (!harness_direct() && !harness_proc_alive(&s->rv)) {
        fprintf(stderr, "harness: riven is not running\n");
        ok = false;
    }
    if (!harness_proc_alive(&s->mc)) {
        fprintf(stderr, "harness: memcached is not running\n");
        ok = false;
    }
    return ok;
}

/* ---- raw connections ------------------------------------------------ */

struct harness_conn *
harness_conn_open(int port, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    struct harness_conn *c;
    int one = 1;
    int fd;

    harness_init();
    while ((fd = try_connect(port)) < 0) {
        if (harness_now_ms() >= deadline) {
            fprintf(stderr, "harness: connect 127.0.0.1:%d: %s\n", port,
                    strerror(errno));
            return NULL;
        }
        pause_ms(5);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    return c;
}

void
harness_conn_close(struct harness_conn *c)
{
    if (c == NULL) {
        return;
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

int
harness_send(struct harness_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
harness_sends(struct harness_conn *c, const char *s)
{
    return harness_send(c, s, strlen(s));
}

int
harness_conn_reserve(struct harness_conn *c, size_t room)
{
    if (c->cap - c->len < room) {
        size_t ncap =
            c->cap * 2 > c->len + 2 * room ? c->cap * 2 : c->len + 2 * room;
        char *nbuf = realloc(c->buf, ncap);

        if (nbuf == NULL) {
            return -1;
        }
        c->buf = nbuf;
        c->cap = ncap;
    }
    return 0;
}

/* One read into the buffer, waiting at most until deadline.
 * >0 bytes read, 0 EOF, -1 error, -2 timeout. */
static ssize_t
fill(struct harness_conn *c, void *arg, int64_t deadline)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int64_t left;
    ssize_t n;

    (void)arg;
    if (harness_conn_reserve(c, 65536) != 0) {
        return -1;
    }
    for (;;) {
        left = deadline - harness_now_ms();
        if (left <= 0) {
            return -2;
        }
        n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 ? -2 : -1;
        }
        n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno == ECONNRESET ? 0 : -1;
        }
        c->len += (size_t)n;
        return n;
    }
}

char *
harness_take(struct harness_conn *c, size_t n)
{
    char *out = malloc(n + 1);

    if (out == NULL) {
        return NULL;
    }
    if (n == 0) {
        out[0] = '\0';
        return out;
    }
    memcpy(out, c->buf, n);
    out[n] = '\0';
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    return out;
}

char *
harness_recv_until(struct harness_conn *c, const char *term, size_t termlen,
                   int timeout_ms, size_t *outlen)
{
    return harness_recv_until_by(c, fill, NULL, term, termlen, timeout_ms,
                                 outlen);
}

char *
harness_recv_until_by(struct harness_conn *c, harness_fill_fn by, void *arg,
                      const char *term, size_t termlen, int timeout_ms,
                      size_t *outlen)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    size_t from = 0;

    for (;;) {
        if (c->len >= termlen) {
            const char *hit =
                memmem(c->buf + from, c->len - from, term, termlen);

            if (hit != NULL) {
                size_t n = (size_t)(hit - c->buf) + termlen;

                if (outlen != NULL) {
                    *outlen = n;
                }
                return harness_take(c, n);
            }
            from = c->len - termlen + 1;
        }
        if (by(c, arg, deadline) <= 0) {
            return NULL;
        }
    }
}

char *
harness_get_reply(struct harness_conn *c, const char *keys, int timeout_ms)
{
    char *req, *line, *rest, *all;
    size_t len, rlen, n = strlen(keys) + 7;

    req = malloc(n);
    if (req == NULL) {
        return NULL;
    }
    snprintf(req, n, "get %s\r\n", keys);
    if (harness_sends(c, req) != 0) {
        free(req);
        return NULL;
    }
    free(req);
    line = harness_recv_until(c, "\r\n", 2, timeout_ms, &len);
    if (line == NULL || strncmp(line, "VALUE ", 6) != 0) {
        return line;
    }
    rest = harness_recv_until(c, "END\r\n", 5, timeout_ms, &rlen);
    if (rest == NULL) {
        free(line);
        return NULL;
    }
    all = malloc(len + rlen + 1);
    if (all != NULL) {
        memcpy(all, line, len);
        memcpy(all + len, rest, rlen + 1);
    }
    free(line);
    free(rest);
    return all;
}

char *
harness_recv_n(struct harness_conn *c, size_t n, int timeout_ms)
{
    return harness_recv_n_by(c, fill, NULL, n, timeout_ms);
}

char *
harness_recv_n_by(struct harness_conn *c, harness_fill_fn by, void *arg,
                  size_t n, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;

    while (c->len < n) {
        if (by(c, arg, deadline) <= 0) {
            return NULL;
        }
    }
    return harness_take(c, n);
}

bool
harness_expect_n(struct harness_conn *c, const void *want, size_t len,
                 int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    ssize_t r = 1;

    /* Read until len bytes, or until what we have already differs. */
    while (c->len < len && (c->len == 0 || memcmp(c->buf, want, c->len) == 0)) {
        r = fill(c, NULL, deadline);
        if (r <= 0) {
            break;
        }
    }
    if (c->len >= len && (len == 0 || memcmp(c->buf, want, len) == 0)) {
        if (len == 0) {
            return true;
        }
        memmove(c->buf, c->buf + len, c->len - len);
        c->len -= len;
        return true;
    }
    fprintf(stderr, "harness: unexpected reply (%s)\n",
            r == 0    ? "connection closed"
            : r == -2 ? "timeout"
            : r < 0   ? "error"
                      : "mismatch");
    harness_diff("expected", want, len, "received", c->buf,
                 c->len < len ? c->len : len);
    return false;
}

bool
harness_expect(struct harness_conn *c, const char *want)
{
    return harness_expect_n(c, want, strlen(want), HARNESS_TIMEOUT_MS);
}

bool
harness_roundtrip(struct harness_conn *c, const char *req, const char *want)
{
    if (harness_sends(c, req) != 0) {
        fprintf(stderr, "harness: send failed: %s\n", strerror(errno));
        return false;
    }
    return harness_expect(c, want);
}

bool
harness_wait_eof(struct harness_conn *c, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;

    for (;;) {
        ssize_t r = fill(c, NULL, deadline);

        if (r == 0) {
            return true;
        }
        if (r < 0) {
            return r == -1 && (errno == ECONNRESET || errno == EPIPE);
        }
        if (c->len > (1u << 20)) { /* keep only a tail */
            memmove(c->buf, c->buf + c->len - 1024, 1024);
            c->len = 1024;
        }
    }
}

bool
harness_quiet(struct harness_conn *c, int timeout_ms)
{
    size_t before = c->len;
    ssize_t r = fill(c, NULL, harness_now_ms() + timeout_ms);

    return r == -2 && c->len == before;
}

void
harness_dump(const char *label, const void *data, size_t len, size_t max)
{
    const unsigned char *p = data;
    size_t n = len < max ? len : max;

    fprintf(stderr, "%s (%zu bytes%s): \"", label, len,
            n < len ? ", truncated" : "");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];

        if (ch == '\r') {
            fputs("\\r", stderr);
        } else if (ch == '\n') {
            fputs("\\n\"\n    \"", stderr);
        } else if (ch == '\\' || ch == '"') {
            fprintf(stderr, "\\%c", ch);
        } else if (isprint(ch)) {
            fputc(ch, stderr);
        } else {
            fprintf(stderr, "\\x%02x", ch);
        }
    }
    fputs("\"\n", stderr);
}

long
harness_diff(const char *name_a, const void *a, size_t alen, const char *name_b,
             const void *b, size_t blen)
{
    const unsigned char *pa = a, *pb = b;
    size_t min = alen < blen ? alen : blen;
    size_t i = 0, from;
    char label[96];

    while (i < min && pa[i] == pb[i]) {
        i++;
    }
    if (i == min && alen == blen) {
        return -1;
    }
    from = i > 160 ? i - 160 : 0;
    fprintf(stderr,
            "harness: first difference at byte %zu (%s has %zu "
            "bytes, %s has %zu); showing from byte %zu\n",
            i, name_a, alen, name_b, blen, from);
    snprintf(label, sizeof(label), "  %s", name_a);
    harness_dump(label, pa + from, alen - from, 400);
    snprintf(label, sizeof(label), "  %s", name_b);
    harness_dump(label, pb + from, blen - from, 400);
    return (long)i;
}

long
harness_rss_scale(void)
{
    const char *san = getenv("SANITIZER");
    const char *bin = harness_riven_bin();

    if ((san != NULL && san[0] != '\0') || strstr(bin, "/thread/") != NULL ||
        strstr(bin, "/address/") != NULL) {
        return 16;
    }
    return 1;
}
