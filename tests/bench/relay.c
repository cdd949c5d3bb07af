/*
 * relay: the floor of riven's design, for `make bench`. One thread per
 * client connection, no parsing: read what the client sent, write it to
 * the backend, read the backend's answer, write it back. Whatever riven
 * adds on top (parsing, translation, metrics) is measured against this.
 *
 *   relay LISTEN_PORT BACKEND_PORT      (127.0.0.1 only)
 *
 * The one read of the answer assumes a request's reply arrives in one
 * segment, true on loopback for the value sizes memaslap uses; a larger
 * reply is still forwarded, one read per request behind.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_BUF (64 * 1024)

static struct sockaddr_in backend;

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

int
main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    pthread_attr_t attr;
    int lfd, one = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: relay LISTEN_PORT BACKEND_PORT\n");
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
        pthread_t tid;

        if (cfd < 0) {
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (pthread_create(&tid, &attr, relay_conn, (void *)(intptr_t)cfd)) {
            close(cfd);
        }
    }
}
