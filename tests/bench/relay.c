/*
 * relay: the floors of `make bench`, for a client connection each with a
 * backend connection of its own (127.0.0.1 only):
 *
 *   relay LISTEN_PORT BACKEND_PORT [lockstep|copy|splice]
 *
 * lockstep (the default) is the floor of riven's design. One thread per
 *          client connection, no parsing: read what the client sent,
 *          write it to the backend, read the backend's answer, write it
 *          back. Whatever riven adds on top (parsing, translation,
 *          metrics) is measured against this. The one read of the answer
 *          assumes a request's reply arrives in one segment, true on
 *          loopback for the value sizes memaslap uses; a larger reply is
 *          still forwarded, one read per request behind.
 * copy     the floor of any process in the middle, for the big-values
 *          rows (issue 16, "Done when" 4): two threads a connection, one
 *          a direction, each moving whatever arrives on one socket to
 *          the other with read(2) and write(2), no framing, no lockstep:
 *          two copies a byte, as any proxy that looks at the bytes makes.
 * splice   as copy, by splice(2) through a pipe: the pages move between
 *          the sockets without a copy to user space, the most the kernel
 *          offers.
 *
 * What a byte costs above copy or splice is the proxy's own; what they
 * cost is the machine's: two more trips through loopback TCP.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_BUF   (64 * 1024)
#define DUPLEX_BUF  (256 * 1024)
#define DUPLEX_PIPE (1024 * 1024)

enum mode { LOCKSTEP, COPY, SPLICE };

struct dir {
    int from;
    int to;
};

static struct sockaddr_in backend;
static enum mode mode;

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *
relay_conn(void *arg)
{
    int cfd = (int)(intptr_t)arg, bfd, one = 1;
    char *buf = malloc(RELAY_BUF);

    bfd = socket(AF_INET, SOCK_STREAM, 0);
    if (buf == NULL || bfd < 0 ||
        connect(bfd, (struct sockaddr *)&backend, sizeof(backend)) != 0) {
        goto done;
    }
    setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
        ssize_t n = read(cfd, buf, RELAY_BUF);

        if (n <= 0 || write_all(bfd, buf, (size_t)n) != 0) {
            break;
        }
        n = read(bfd, buf, RELAY_BUF);
        if (n <= 0 || write_all(cfd, buf, (size_t)n) != 0) {
            break;
        }
    }
done:
    if (bfd >= 0) {
        close(bfd);
    }
    close(cfd);
    free(buf);
    return NULL;
}

static int
copy_all(int from, int to)
{
    char *buf = malloc(DUPLEX_BUF);
    ssize_t n = -1;

    while (buf != NULL && (n = read(from, buf, DUPLEX_BUF)) > 0) {
        for (char *p = buf; n > 0;) {
            ssize_t w = write(to, p, (size_t)n);

            if (w <= 0) {
                free(buf);
                return -1;
            }
            p += w;
            n -= w;
        }
    }
    free(buf);
    return n == 0 ? 0 : -1;
}

static int
splice_all(int from, int to)
{
    int p[2];
    ssize_t n = -1;

    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    (void)fcntl(p[1], F_SETPIPE_SZ, DUPLEX_PIPE);
    while ((n = splice(from, NULL, p[1], NULL, DUPLEX_PIPE, SPLICE_F_MOVE)) >
           0) {
        while (n > 0) {
            ssize_t w = splice(p[0], NULL, to, NULL, (size_t)n, SPLICE_F_MOVE);

            if (w <= 0) {
                n = -1;
                goto out;
            }
            n -= w;
        }
    }
out:
    close(p[0]);
    close(p[1]);
    return n == 0 ? 0 : -1;
}

static void *
pump(void *arg)
{
    struct dir *d = arg;

    (void)(mode == SPLICE ? splice_all(d->from, d->to)
                          : copy_all(d->from, d->to));
    /* one side ended: end the other, so its thread ends too */
    (void)shutdown(d->to, SHUT_RDWR);
    (void)shutdown(d->from, SHUT_RDWR);
    return NULL;
}

static void *
duplex_conn(void *arg)
{
    struct dir *up = arg, down;
    int one = 1;
    pthread_t t;

    up->to = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (up->to < 0 ||
        connect(up->to, (struct sockaddr *)&backend, sizeof(backend)) != 0) {
        goto done;
    }
    setsockopt(up->to, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    down.from = up->to;
    down.to = up->from;
    if (pthread_create(&t, NULL, pump, &down) != 0) {
        goto done;
    }
    (void)pump(up);
    pthread_join(t, NULL);
done:
    if (up->to >= 0) {
        close(up->to);
    }
    close(up->from);
    free(up);
    return NULL;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    pthread_attr_t attr;
    int lfd, one = 1;

    if (argc == 4 && strcmp(argv[3], "copy") == 0) {
        mode = COPY;
    } else if (argc == 4 && strcmp(argv[3], "splice") == 0) {
        mode = SPLICE;
    } else if (argc != 3 && (argc != 4 || strcmp(argv[3], "lockstep") != 0)) {
        fprintf(
            stderr,
            "usage: relay LISTEN_PORT BACKEND_PORT [lockstep|copy|splice]\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    backend.sin_family = AF_INET;
    backend.sin_port = htons((uint16_t)atoi(argv[2]));
    backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 4096) != 0) {
        perror("relay: bind");
        return 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        struct dir *up;
        pthread_t tid;

        if (cfd < 0) {
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (mode == LOCKSTEP) {
            if (pthread_create(&tid, &attr, relay_conn,
                               (void *)(intptr_t)cfd) != 0) {
                close(cfd);
            }
            continue;
        }
        if ((up = malloc(sizeof(*up))) == NULL) {
            close(cfd);
            continue;
        }
        up->from = cfd;
        up->to = -1;
        if (pthread_create(&tid, &attr, duplex_conn, up) != 0) {
            close(cfd);
            free(up);
        }
    }
}
