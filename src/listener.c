/*
 * listener: poll() over the listening sockets, accept4(), one detached
 * pthread per connection.
 *
 *   listen fds ──poll──▶ accept4 ──▶ limit check ──▶ pthread_create
 *        ▲                               │                 │
 *   systemd (sd_listen_fds)   "SERVER_ERROR too many     server_run(conn)
 *   or bind()                  open connections"          (registered)
 *
 * The registry of open connections is a list under conns_lock; it is
 * touched once when a connection opens and once when it closes, and by a
 * drain. When accept4 fails for lack of fds (EMFILE, ENFILE) or memory,
 * poll() watches only the wake pipe for a pause of 10 ms doubling to 1 s;
 * open connections are served meanwhile and nothing spins.
 */
#include "listener.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "request.h"
#include "server.h"

#define LISTEN_BACKLOG 1024
#define FD_RESERVE     64 /* fds kept for listeners, logs, metrics */

/* Out of fds (or memory) accept4 fails and leaves the connection queued,
 * so a level-triggered poll() reports it again at once. The listening
 * sockets then rest for a pause that doubles from MIN to MAX, and an
 * accept that works resets it (nginx and memcached do the same). */
#define ACCEPT_PAUSE_MIN_MS 10
#define ACCEPT_PAUSE_MAX_MS 1000
#define ACCEPT_LOG_MS       10000 /* at most one line per 10 s about it */

static const char too_many[] = "SERVER_ERROR too many open connections\r\n";
/* no thread (EAGAIN: RLIMIT_NPROC, pids.max, memory) for a connection */
static const char no_thread[] = "SERVER_ERROR " MSG_OUT_OF_MEMORY "\r\n";

static _Atomic uint64_t nconns;
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_empty;
static struct server_conn *conns; /* registry, guarded by conns_lock */

struct listen_sock {
    int fd;
    bool tcp;
    bool batch;     /* a batch_listen address (l1l2batch) */
    bool tls;       /* listen[i].tls at start: every client speaks TLS */
    char path[108]; /* unix socket file we created, or "" */
    char name[CFG_ADDR_NAME_MAX]; /* as written in listen:, or "" */
};

struct listener {
    struct listen_sock *socks;
    struct pollfd *pfds; /* [0] is the wake pipe */
    size_t n;            /* listening sockets */
    size_t cap;          /* entries of socks (pfds has cap + 1) */
    bool activated;      /* sockets came from systemd */
    size_t stack_size;
    uint32_t max_conns;
    int wake[2];
    _Atomic int stop;
    uint32_t pause_ms;  /* last accept pause; 0 after an accept works */
    uint64_t resume_at; /* util_now_ms() to poll the listeners again, or 0 */
    uint64_t nfailed;   /* accepts failed since the last line about it */
    uint64_t logged_at; /* when that line was written; 0: never */
};

uint64_t
listener_connections(void)
{
    return atomic_load_explicit(&nconns, memory_order_relaxed);
}

uint32_t
listener_max_connections(const struct listener *l)
{
    return l->max_conns;
}

size_t
listener_count(const struct listener *l)
{
    return l->n;
}

bool
listener_activated(const struct listener *l)
{
    return l->activated;
}

/* Without max_connections: the open-file limit less a reserve. Backend
 * sockets open lazily, so idle clients cost one fd each; a busy client
 * that finds no fd left for a backend gets SERVER_ERROR for that request,
 * and the server's health is not blamed. */
static uint32_t
derive_max_conns(const struct config *cfg)
{
    struct rlimit rl;
    uint64_t avail;

    if (cfg->max_connections > 0) {
        return cfg->max_connections;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return 1024;
    }
    avail = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 1;
    return (uint32_t)MIN(avail, UINT32_MAX);
}

/* Make room for a unix socket at path: nothing there, or a socket (left
 * by an earlier run: unlinked, as before). Anything else is not riven's
 * to remove: refused with a message naming the path. 0 or -1. */
static int
unix_prepare(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "unix:%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen,
                 "unix:%s: %s exists and is not a socket; "
                 "refusing to replace it",
                 path, path);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "unix:%s: unlink: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * bind(2) creates a unix socket file with mode 0777 & ~umask, so the
 * configured mode is in force from the first instant by setting the umask
 * around the bind; a chmod after it left a window with the default mode.
 * umask is per process, but listener_create runs on the main thread before
 * any other thread exists (main.c starts them after it), so no other file
 * is created under the temporary mask. 0 or -1 with errno.
 */
static int
bind_unix(int fd, const struct cfg_addr *a, uint32_t mode)
{
    mode_t old = umask((mode_t)(~mode & 0777));
    int rc = bind(fd, (const struct sockaddr *)&a->ss, a->sslen);
    int saved = errno;

    umask(old);
    errno = saved;
    return rc;
}

static int
bind_one(const struct cfg_addr *a, uint32_t mode, char *err, size_t errlen)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
    bool unix_path = a->ss.ss_family == AF_UNIX && un->sun_path[0] != '\0';
    int fd, one = 1, rc;

    if (unix_path && unix_prepare(un->sun_path, err, errlen) != 0) {
        return -1;
    }
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", a->name, strerror(errno));
        return -1;
    }
    if (a->ss.ss_family != AF_UNIX) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (a->ss.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (a->ss.ss_family == AF_UNIX) {
        rc = bind_unix(fd, a, mode);
    } else {
        rc = bind(fd, (const struct sockaddr *)&a->ss, a->sslen);
    }
    if (rc != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "%s: %s: %s", a->name, rc ? "bind" : "listen",
                 strerror(errno));
        close(fd);
        if (unix_path && rc == 0) {
            (void)unlink(un->sun_path);
        }
        return -1;
    }
    return fd;
}

static bool
is_tcp(int fd)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(ss);

    return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
           (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* Take the n sockets systemd passed (n from sd_listen_fds, > 0); the
 * arrays hold them. 0 or -1 with a message. */
static int
adopt_systemd(struct listener *l, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;

        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            snprintf(err, errlen,
                     "systemd socket %d is not a listening "
                     "stream socket",
                     fd);
            return -1;
        }
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        assert(l->n < l->cap);
        l->socks[l->n].fd = fd;
        l->socks[l->n].tcp = is_tcp(fd);
        l->n++;
    }
    l->activated = true;
    return 0;
}

static int
bind_list(struct listener *l, const struct cfg_addr *addrs,
          const struct cfg_tls *tls, size_t n, bool batch, uint32_t mode,
          char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_addr *a = &addrs[i];
        int fd = bind_one(a, mode, err, errlen);

        if (fd < 0) {
            return -1;
        }
        assert(l->n < l->cap);
        l->socks[l->n].fd = fd;
        l->socks[l->n].batch = batch;
        l->socks[l->n].tcp = a->ss.ss_family != AF_UNIX;
        l->socks[l->n].tls = tls != NULL && tls[i].on;
        snprintf(l->socks[l->n].name, sizeof(l->socks[l->n].name), "%s",
                 a->name);
        if (a->ss.ss_family == AF_UNIX) {
            snprintf(l->socks[l->n].path, sizeof(l->socks[l->n].path), "%s",
                     ((const struct sockaddr_un *)&a->ss)->sun_path);
        }
        l->n++;
    }
    return 0;
}

/* The arrays, sized for every socket: systemd may pass any number. */
static struct listener *
listener_alloc(size_t cap)
{
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    l->wake[0] = l->wake[1] = -1;
    l->cap = cap;
    l->socks = calloc(cap + 1, sizeof(*l->socks));
    l->pfds = calloc(cap + 1, sizeof(*l->pfds));
    if (l->socks == NULL || l->pfds == NULL) {
        listener_destroy(l);
        return NULL;
    }
    return l;
}

struct listener *
listener_create(const struct config *cfg, char *err, size_t errlen)
{
    /* once: it unsets LISTEN_FDS; a negative (bad LISTEN_*) counts as none */
    int nsd = sd_listen_fds(1);
    size_t nmain = nsd > 0 ? (size_t)nsd : cfg->nlisten;
    struct listener *l = listener_alloc(nmain + cfg->nbatch_listen);
    pthread_condattr_t ca;

    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->stack_size = cfg->thread_stack_size;
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto error;
    }
    if (nsd > 0) {
        if (adopt_systemd(l, nsd, err, errlen) != 0) {
            goto error;
        }
    } else if (bind_list(l, cfg->listen, cfg->listen_tls, cfg->nlisten, false,
                         cfg->unix_mode, err, errlen) != 0) {
        goto error;
    }
    if (bind_list(l, cfg->batch_listen, NULL, cfg->nbatch_listen, true,
                  cfg->unix_mode, err, errlen) != 0) {
        goto error;
    }
    l->pfds[0].fd = l->wake[0];
    l->pfds[0].events = POLLIN;
    for (size_t i = 0; i < l->n; i++) {
        l->pfds[i + 1].fd = l->socks[i].fd;
        l->pfds[i + 1].events = POLLIN;
    }
    l->max_conns = derive_max_conns(cfg);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&conns_empty, &ca);
    pthread_condattr_destroy(&ca);
    return l;

error:
    listener_destroy(l);
    return NULL;
}

static void
close_listeners(struct listener *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->socks[i].fd < 0) {
            continue;
        }
        close(l->socks[i].fd);
        l->socks[i].fd = -1;
        l->pfds[i + 1].fd = -1;
        if (l->socks[i].path[0] != '\0') {
            (void)unlink(l->socks[i].path);
        }
    }
}

void
listener_destroy(struct listener *l)
{
    if (l == NULL) {
        return;
    }
    if (l->socks != NULL) {
        close_listeners(l);
    }
    if (l->wake[0] >= 0) {
        close(l->wake[0]);
        close(l->wake[1]);
    }
    free(l->socks);
    free(l->pfds);
    free(l);
}

void
listener_wake(struct listener *l)
{
    int saved = errno;

    (void)!write(l->wake[1], "x", 1);
    errno = saved;
}

void
listener_stop(struct listener *l)
{
    atomic_store(&l->stop, 1);
    listener_wake(l);
}

static void
registry_add(struct server_conn *c)
{
    pthread_mutex_lock(&conns_lock);
    c->prev = NULL;
    c->next = conns;
    if (conns != NULL) {
        conns->prev = c;
    }
    conns = c;
    atomic_fetch_add_explicit(&nconns, 1, memory_order_relaxed);
    metrics_gauge_add(M_CONNECTIONS_CURRENT, 1);
    metrics_gauge_add(M_THREADS_CURRENT, 1);
    pthread_mutex_unlock(&conns_lock);
}

static void
registry_remove(struct server_conn *c)
{
    pthread_mutex_lock(&conns_lock);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    metrics_gauge_sub(M_CONNECTIONS_CURRENT, 1);
    metrics_gauge_sub(M_THREADS_CURRENT, 1);
    if (atomic_fetch_sub_explicit(&nconns, 1, memory_order_relaxed) == 1) {
        pthread_cond_broadcast(&conns_empty);
    }
    pthread_mutex_unlock(&conns_lock);
}

static void *
conn_main(void *p)
{
    struct server_conn *c = p;

    server_run(c);
    registry_remove(c);
    close(c->fd);
    free(c);
    return NULL;
}

static void
spawn(struct listener *l, int fd, const struct listen_sock *ls)
{
    struct server_conn *c = calloc(1, sizeof(*c));
    pthread_attr_t attr;
    pthread_t tid;
    int rc = ENOMEM;

    if (c != NULL) {
        c->fd = fd;
        c->batch = ls->batch;
        c->tls = ls->tls;
        c->listen_name = ls->name;
        atomic_init(&c->busy, 1);
        registry_add(c);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, l->stack_size);
        rc = pthread_create(&tid, &attr, conn_main, c);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        if (c != NULL) {
            registry_remove(c);
        }
        log_warnx("%s: cannot start a connection thread: %s", __func__,
                  strerror(rc));
        metrics_inc(M_CONNECTIONS_REJECTED);
        (void)!send(fd, no_thread, sizeof(no_thread) - 1,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
        free(c);
        close(fd);
    }
}

/* Accept until the queue is empty. Returns the errno that stopped it for
 * lack of fds or memory (the connection stays queued), else 0. */
static int
accept_all(struct listener *l, const struct listen_sock *ls)
{
    for (;;) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC), one = 1;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                return errno;
            }
            return 0; /* EAGAIN: drained; others: try again on next poll */
        }
        l->pause_ms = 0;
        if (listener_connections() >= l->max_conns) {
            metrics_inc(M_CONNECTIONS_REJECTED);
            (void)!send(fd, too_many, sizeof(too_many) - 1,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        if (ls->tcp) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        metrics_inc(M_CONNECTIONS_TOTAL);
        spawn(l, fd, ls);
    }
}

/* An accept failed with err (EMFILE...): rest the listening sockets for
 * the next pause, and say so at most once per ACCEPT_LOG_MS. */
static void
accept_pause(struct listener *l, int err)
{
    uint64_t now = util_now_ms();

    l->pause_ms = l->pause_ms == 0 ? ACCEPT_PAUSE_MIN_MS
                                   : MIN(l->pause_ms * 2, ACCEPT_PAUSE_MAX_MS);
    l->resume_at = now + l->pause_ms;
    l->nfailed++;
    if (l->logged_at != 0 && now - l->logged_at < ACCEPT_LOG_MS) {
        return;
    }
    errno = err;
    log_warn("%s: accept failed %llu time(s) since the last report; "
             "pausing accepts for up to %d ms at a time",
             __func__, (unsigned long long)l->nfailed, ACCEPT_PAUSE_MAX_MS);
    l->nfailed = 0;
    l->logged_at = now;
}

/* What the next poll() watches: the wake pipe and the listening sockets,
 * or only the pipe during an accept pause (its end bounds *timeout). */
static nfds_t
poll_set(struct listener *l, int tick_ms, int *timeout)
{
    uint64_t now, left;

    *timeout = tick_ms;
    if (l->resume_at == 0) {
        return l->n + 1;
    }
    now = util_now_ms();
    if (now >= l->resume_at) {
        l->resume_at = 0;
        return l->n + 1;
    }
    left = l->resume_at - now;
    if (tick_ms < 0 || left < (uint64_t)tick_ms) {
        *timeout = (int)left;
    }
    return 1;
}

enum status
listener_run(struct listener *l, listener_tick_fn tick, void *arg, int tick_ms)
{
    char drain[64];

    while (!atomic_load(&l->stop)) {
        int timeout, err;
        nfds_t nfds = poll_set(l, tick_ms, &timeout);
        int r = poll(l->pfds, nfds, timeout);

        if (r < 0 && errno != EINTR) {
            log_error("%s: poll", __func__);
            return ST_ERROR;
        }
        if (r > 0 && (l->pfds[0].revents & POLLIN)) {
            while (read(l->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        for (size_t i = 0; r > 0 && i + 1 < nfds; i++) {
            if (!(l->pfds[i + 1].revents & POLLIN)) {
                continue;
            }
            if ((err = accept_all(l, &l->socks[i])) != 0) {
                accept_pause(l, err);
                break;
            }
        }
        if (tick != NULL) {
            tick(arg);
        }
    }
    return ST_OK;
}

/* Shut the read side of every idle connection: its thread sees EOF. */
static void
close_idle(void)
{
    pthread_mutex_lock(&conns_lock);
    for (struct server_conn *c = conns; c != NULL; c = c->next) {
        if (atomic_load(&c->busy) == 0) {
            (void)shutdown(c->fd, SHUT_RD);
        }
    }
    pthread_mutex_unlock(&conns_lock);
}

uint64_t
listener_drain(struct listener *l, uint32_t timeout_ms)
{
    struct timespec deadline;
    uint64_t left;

    close_listeners(l);
    server_drain();
    close_idle();
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&conns_lock);
    while (atomic_load(&nconns) > 0) {
        if (pthread_cond_timedwait(&conns_empty, &conns_lock, &deadline) ==
            ETIMEDOUT) {
            break;
        }
    }
    left = atomic_load(&nconns);
    pthread_mutex_unlock(&conns_lock);
    return left;
}
