/*
 * duplex: the floor of any process in the middle, for the big-values
 * rows of `make bench` (issue 16, "Done when" 4). Per client connection
 * a backend connection and two threads, one a direction, each moving
 * whatever arrives on one socket to the other, with no framing and no
 * lockstep: the least work a proxy can do with each byte.
 *
 *   duplex LISTEN_PORT BACKEND_PORT copy|splice      (127.0.0.1 only)
 *
 * copy     read(2) into a buffer, write(2) it on: two copies a byte, as
 *          any proxy that looks at the bytes makes (riven, twemproxy)
 * splice   splice(2) through a pipe: the pages move between the sockets
 *          without a copy to user space, the most the kernel offers
 *
 * What a byte costs above this is the proxy's own; what this costs is
 * the machine's: two more trips through loopback TCP for every value.
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

#define DUPLEX_BUF  (256 * 1024)
#define DUPLEX_PIPE (1024 * 1024)

struct dir {
    int from;
    int to;
};

static struct sockaddr_in backend;
static int use_splice;

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

    (void)(use_splice ? splice_all(d->from, d->to) : copy_all(d->from, d->to));
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
    setsockopt(up->from, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

    if (argc != 4 ||
        (strcmp(argv[3], "copy") != 0 && strcmp(argv[3], "splice") != 0)) {
        fprintf(stderr, "usage: duplex LISTEN_PORT BACKEND_PORT copy|splice\n");
        return 2;
    }
    use_splice = strcmp(argv[3], "splice") == 0;
    signal(SIGPIPE, SIG_IGN);
    backend.sin_family = AF_INET;
    backend.sin_port = htons((uint16_t)atoi(argv[2]));
    backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 1024) != 0) {
        perror("duplex: listen");
        return 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        struct dir *up = malloc(sizeof(*up));
        pthread_t tid;

        if (up == NULL || (up->from = accept(lfd, NULL, NULL)) < 0) {
            free(up);
            continue;
        }
        up->to = -1;
        if (pthread_create(&tid, &attr, duplex_conn, up) != 0) {
            close(up->from);
            free(up);
        }
    }
}
