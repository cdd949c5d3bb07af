/*
 * listener: poll() over the listening sockets, accept4(), one detached
 * pthread per connection.
 *
 *   listen fds ──poll──▶ accept4 ──▶ limit check ──▶ pthread_create
 *                                        │                 │
 *                            "SERVER_ERROR too many        server_run(fd)
 *                             open connections"
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define LISTEN_BACKLOG 1024
#define FD_RESERVE     64 /* fds kept for listeners, logs, metrics */

static const char too_many[] = "SERVER_ERROR too many open connections\r\n";

static _Atomic uint64_t nconns;

struct listener {
    const struct config *cfg;   /* ref: owned by main */
    const struct ring   *ring;  /* ref: owned by main */
    struct pollfd       *pfds;
    size_t               n;
    uint32_t             max_conns;
    int                  wake[2]; /* self-pipe for listener_stop */
    volatile sig_atomic_t stop;
};

struct conn_arg {
    int                  fd;
    const struct config *cfg;
    const struct ring   *ring;
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

static uint32_t
derive_max_conns(const struct config *cfg)
{
    struct rlimit rl;
    uint64_t per = 1 + cfg->nservers, avail;

    if (cfg->max_connections > 0) {
        return cfg->max_connections;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return 1024;
    }
    avail = rl.rlim_cur > FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 1;
    return (uint32_t)MAX(avail / per, 1);
}

static int
bind_one(const struct cfg_addr *a, uint32_t mode, char *err, size_t errlen)
{
    int fd, one = 1;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", a->name, strerror(errno));
        return -1;
    }
    if (a->ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;

        (void)unlink(un->sun_path);
    } else {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (a->ss.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "%s: bind: %s", a->name, strerror(errno));
        close(fd);
        return -1;
    }
    if (a->ss.ss_family == AF_UNIX &&
        chmod(((const struct sockaddr_un *)&a->ss)->sun_path, mode) != 0) {
        snprintf(err, errlen, "%s: chmod: %s", a->name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct listener *
listener_create(const struct config *cfg, const struct ring *ring, char *err,
                size_t errlen)
{
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL || (l->pfds = calloc(cfg->nlisten + 1,
                                       sizeof(*l->pfds))) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(l);
        return NULL;
    }
    l->cfg = cfg;
    l->ring = ring;
    l->wake[0] = l->wake[1] = -1;
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto error;
    }
    l->pfds[0].fd = l->wake[0];
    l->pfds[0].events = POLLIN;
    l->n = 1;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        int fd = bind_one(&cfg->listen[i], cfg->unix_mode, err, errlen);

        if (fd < 0) {
            goto error;
        }
        l->pfds[l->n].fd = fd;
        l->pfds[l->n].events = POLLIN;
        l->n++;
    }
    l->max_conns = derive_max_conns(cfg);
    return l;

error:
    listener_destroy(l);
    return NULL;
}

void
listener_destroy(struct listener *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 1; i < l->n; i++) {
        const struct cfg_addr *a = &l->cfg->listen[i - 1];

        close(l->pfds[i].fd);
        if (a->ss.ss_family == AF_UNIX) {
            (void)unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
        }
    }
    if (l->wake[0] >= 0) {
        close(l->wake[0]);
        close(l->wake[1]);
    }
    free(l->pfds);
    free(l);
}

void
listener_stop(struct listener *l)
{
    int saved = errno;

    l->stop = 1;
    (void)!write(l->wake[1], "x", 1);
    errno = saved;
}

static void *
conn_main(void *p)
{
    struct conn_arg arg = *(struct conn_arg *)p;

    free(p);
    server_run(arg.fd, arg.cfg, arg.ring);
    atomic_fetch_sub_explicit(&nconns, 1, memory_order_relaxed);
    return NULL;
}

static void
spawn(struct listener *l, int fd)
{
    struct conn_arg *arg = malloc(sizeof(*arg));
    pthread_attr_t attr;
    pthread_t tid;
    int rc = ENOMEM;

    if (arg != NULL) {
        arg->fd = fd;
        arg->cfg = l->cfg;
        arg->ring = l->ring;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, l->cfg->thread_stack_size);
        atomic_fetch_add_explicit(&nconns, 1, memory_order_relaxed);
        rc = pthread_create(&tid, &attr, conn_main, arg);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        if (arg != NULL) {
            atomic_fetch_sub_explicit(&nconns, 1, memory_order_relaxed);
        }
        log_warnx("%s: cannot start a connection thread: %s", __func__,
                  strerror(rc));
        free(arg);
        close(fd);
    }
}

static void
accept_all(struct listener *l, int lfd, bool tcp)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_warn("%s: accept", __func__);
            }
            return; /* EAGAIN: drained; others: try again on next poll */
        }
        if (listener_connections() >= l->max_conns) {
            (void)!send(fd, too_many, sizeof(too_many) - 1,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        if (tcp) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        spawn(l, fd);
    }
}

enum status
listener_run(struct listener *l)
{
    while (!l->stop) {
        int r = poll(l->pfds, l->n, -1);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("%s: poll", __func__);
            return ST_ERROR;
        }
        for (size_t i = 1; i < l->n; i++) {
            if (l->pfds[i].revents & POLLIN) {
                accept_all(l, l->pfds[i].fd,
                           l->cfg->listen[i - 1].ss.ss_family != AF_UNIX);
            }
        }
    }
    return ST_OK;
}
