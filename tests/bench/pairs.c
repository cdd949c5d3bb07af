/*
 * pairs: a closed-loop memcached load for the all_sync rows of `make
 * bench`, which can also play a client that writes its sets to two
 * memcacheds itself, in parallel or one after the other: what this
 * machine allows a parallel write with no proxy in between, measured in
 * the same run as riven's all_sync.
 *
 * It opens CONNS connections to 127.0.0.1:PORT, a thread each, and each
 * sends its next request as soon as it has the last answer, for SECONDS.
 * One request in ten is a set of a 1,024-byte value, the others are gets,
 * over 16 keys of 64 bytes per connection, set before the clock starts.
 * Every reply is checked byte for byte; a connection whose reply is wrong
 * stops and is counted in errors.
 *
 * With PORT2, every set also goes to 127.0.0.1:PORT2 on a second
 * connection: written to both before either answer is read (parallel),
 * or to the second after the first has answered (serial). Gets go to PORT
 * only. A set's time is from its first write to its last answer.
 *
 * With -s it speaks TLS to PORT (no certificate checked: a load, not a
 * test of who the server is). With -w it prints "pairs: ready" once the
 * keys are set, and waits for a
 * line on stdin before it starts the clock, so that the caller can read
 * counters that leave the connections' first requests out. Then it prints:
 *
 *   pairs: ops N rate R sets S set_mean_us M set_p99_us P gets G
 *       get_mean_us M get_p99_us P errors E
 *
 *   pairs [-w] [-s] PORT CONNS SECONDS [PORT2 parallel|serial]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS_KEYS     16
#define PAIRS_KLEN     64
#define PAIRS_VLEN     1024
#define PAIRS_RATE_MAX 200000 /* requests a second whose times are kept */

struct worker {
    pthread_t tid;
    int id;
    int fd;
    int fd2;  /* the second server of a pair, or -1 */
    SSL *ssl; /* -s: TLS on fd, else NULL */
    long nset, nget, errors;
    long *set_ns, *get_ns; /* latencies, as many as fit */
    long cap;
};

static struct sockaddr_in addr, addr2;
static struct timespec start;
static long duration_ns;
static int serial; /* a pair's sets one after the other, not together */
static pthread_barrier_t set_done, go; /* keys set; start known */

static long
ns_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static void
key_of(char *k, int id, int i)
{
    int n = snprintf(k, PAIRS_KLEN + 1, "pairs:%d:%d:", id, i);

    memset(k + n, 'k', (size_t)(PAIRS_KLEN - n));
    k[PAIRS_KLEN] = '\0';
}

/* Read until the reply is exactly want (len bytes), over ssl when it is
 * not NULL. 0 when it is. */
static int
expect(int fd, SSL *ssl, const char *want, size_t len)
{
    char buf[PAIRS_VLEN + 256];
    size_t got = 0, n;

    while (got < len) {
        if (ssl != NULL) {
            if (SSL_read_ex(ssl, buf + got, len - got, &n) != 1) {
                return -1;
            }
        } else {
            ssize_t r = read(fd, buf + got, len - got);

            if (r <= 0) {
                return -1;
            }
            n = (size_t)r;
        }
        got += n;
    }
    return memcmp(buf, want, len) != 0 ? -1 : 0;
}

static int
send_all(int fd, SSL *ssl, const char *p, size_t len)
{
    size_t n;

    if (ssl != NULL) {
        return SSL_write_ex(ssl, p, len, &n) == 1 ? 0 : -1;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w <= 0) {
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void *
run(void *arg)
{
    struct worker *w = arg;
    char key[PAIRS_KLEN + 1], value[PAIRS_VLEN];
    char sets[PAIRS_KEYS][PAIRS_KLEN + PAIRS_VLEN + 64];
    char gets[PAIRS_KEYS][PAIRS_KLEN + 16];
    char hits[PAIRS_KEYS][PAIRS_KLEN + PAIRS_VLEN + 64];
    size_t setlen[PAIRS_KEYS], getlen[PAIRS_KEYS], hitlen[PAIRS_KEYS];
    long i = 0;

    memset(value, 'v', sizeof(value));
    for (int k = 0; k < PAIRS_KEYS; k++) {
        int n;

        key_of(key, w->id, k);
        n = snprintf(sets[k], sizeof(sets[k]), "set %s 0 0 %d\r\n", key,
                     PAIRS_VLEN);
        memcpy(sets[k] + n, value, PAIRS_VLEN);
        memcpy(sets[k] + n + PAIRS_VLEN, "\r\n", 2);
        setlen[k] = (size_t)n + PAIRS_VLEN + 2;
        getlen[k] =
            (size_t)snprintf(gets[k], sizeof(gets[k]), "get %s\r\n", key);
        n = snprintf(hits[k], sizeof(hits[k]), "VALUE %s 0 %d\r\n", key,
                     PAIRS_VLEN);
        memcpy(hits[k] + n, value, PAIRS_VLEN);
        memcpy(hits[k] + n + PAIRS_VLEN, "\r\nEND\r\n", 7);
        hitlen[k] = (size_t)n + PAIRS_VLEN + 7;
        if (send_all(w->fd, w->ssl, sets[k], setlen[k]) != 0 ||
            expect(w->fd, w->ssl, "STORED\r\n", 8) != 0) {
            w->errors++;
        }
    }
    pthread_barrier_wait(&set_done);
    pthread_barrier_wait(&go);
    for (;;) {
        long now, t0 = ns_since(&start);
        int k = (int)(i % PAIRS_KEYS), isset = i % 10 == 0, bad;

        if (t0 >= duration_ns) {
            break;
        }
        if (isset && w->fd2 >= 0 && serial) {
            bad = send_all(w->fd, w->ssl, sets[k], setlen[k]) != 0 ||
                  expect(w->fd, w->ssl, "STORED\r\n", 8) != 0 ||
                  send_all(w->fd2, NULL, sets[k], setlen[k]) != 0 ||
                  expect(w->fd2, NULL, "STORED\r\n", 8) != 0;
        } else if (isset && w->fd2 >= 0) {
            bad = send_all(w->fd, w->ssl, sets[k], setlen[k]) != 0 ||
                  send_all(w->fd2, NULL, sets[k], setlen[k]) != 0 ||
                  expect(w->fd, w->ssl, "STORED\r\n", 8) != 0 ||
                  expect(w->fd2, NULL, "STORED\r\n", 8) != 0;
        } else if (isset) {
            bad = send_all(w->fd, w->ssl, sets[k], setlen[k]) != 0 ||
                  expect(w->fd, w->ssl, "STORED\r\n", 8) != 0;
        } else {
            bad = send_all(w->fd, w->ssl, gets[k], getlen[k]) != 0 ||
                  expect(w->fd, w->ssl, hits[k], hitlen[k]) != 0;
        }
        now = ns_since(&start);
        if (bad) {
            w->errors++;
            break; /* the stream is out of step; stop this connection */
        }
        if (isset && w->nset < w->cap) {
            w->set_ns[w->nset++] = now - t0;
        } else if (!isset && w->nget < w->cap) {
            w->get_ns[w->nget++] = now - t0;
        }
        i++;
    }
    return NULL;
}

static int
cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

/* Mean and p99 in us of the n values at v (sorted here). */
static void
summary(long *v, long n, double *mean, double *p99)
{
    double sum = 0;

    *mean = *p99 = 0;
    if (n == 0) {
        return;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_long);
    for (long i = 0; i < n; i++) {
        sum += (double)v[i];
    }
    *mean = sum / (double)n / 1e3;
    *p99 = (double)v[(n * 99 + 99) / 100 - 1] / 1e3; /* the ceil(0.99n)th */
}

int
main(int argc, char **argv)
{
    struct worker *ws;
    long conns, secs, nset = 0, nget = 0, errors = 0;
    long *all_set, *all_get;
    double sm, sp, gm, gp, elapsed;
    int wait_go = 0;
    SSL_CTX *tls = NULL;

    for (; argc > 1 && argv[1][0] == '-'; argc--, argv++) {
        if (strcmp(argv[1], "-w") == 0) {
            wait_go = 1;
        } else if (strcmp(argv[1], "-s") == 0) {
            signal(SIGPIPE, SIG_IGN);
            tls = SSL_CTX_new(TLS_client_method());
            if (tls == NULL) {
                return 1;
            }
            SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL);
        } else {
            break;
        }
    }
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: pairs [-w] [-s] PORT CONNS SECONDS "
                        "[PORT2 parallel|serial]\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    conns = atol(argv[2]);
    secs = atol(argv[3]);
    if (conns < 1 || secs < 1) {
        fprintf(stderr, "pairs: CONNS and SECONDS must be positive\n");
        return 2;
    }
    addr2 = addr;
    if (argc == 6) {
        addr2.sin_port = htons((uint16_t)atoi(argv[4]));
        serial = strcmp(argv[5], "serial") == 0;
        if (!serial && strcmp(argv[5], "parallel") != 0) {
            fprintf(stderr, "pairs: %s: not parallel or serial\n", argv[5]);
            return 2;
        }
    }
    duration_ns = secs * 1000000000L;
    ws = calloc((size_t)conns, sizeof(*ws));
    for (long c = 0; c < conns; c++) {
        int one = 1;

        ws[c].id = (int)c;
        ws[c].cap = secs * PAIRS_RATE_MAX / conns + 1;
        ws[c].set_ns = calloc((size_t)ws[c].cap, sizeof(long));
        ws[c].get_ns = calloc((size_t)ws[c].cap, sizeof(long));
        ws[c].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (ws[c].fd < 0 ||
            connect(ws[c].fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            perror("pairs: connect");
            return 1;
        }
        setsockopt(ws[c].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (tls != NULL) {
            ws[c].ssl = SSL_new(tls);
            if (ws[c].ssl == NULL || SSL_set_fd(ws[c].ssl, ws[c].fd) != 1 ||
                SSL_connect(ws[c].ssl) != 1) {
                fprintf(stderr, "pairs: TLS handshake failed\n");
                return 1;
            }
        }
        ws[c].fd2 = -1;
        if (argc == 6) {
            ws[c].fd2 = socket(AF_INET, SOCK_STREAM, 0);
            if (ws[c].fd2 < 0 || connect(ws[c].fd2, (struct sockaddr *)&addr2,
                                         sizeof(addr2)) != 0) {
                perror("pairs: connect");
                return 1;
            }
            setsockopt(ws[c].fd2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
    pthread_barrier_init(&set_done, NULL, (unsigned)conns + 1);
    pthread_barrier_init(&go, NULL, (unsigned)conns + 1);
    for (long c = 0; c < conns; c++) {
        pthread_create(&ws[c].tid, NULL, run, &ws[c]);
    }
    pthread_barrier_wait(&set_done);
    if (wait_go) { /* the caller reads its counters, then says go */
        char line[16];

        printf("pairs: ready\n");
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL) {
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_barrier_wait(&go);
    for (long c = 0; c < conns; c++) {
        pthread_join(ws[c].tid, NULL);
        nset += ws[c].nset;
        nget += ws[c].nget;
        errors += ws[c].errors;
    }
    elapsed = (double)ns_since(&start) / 1e9;
    all_set = calloc((size_t)nset + 1, sizeof(long));
    all_get = calloc((size_t)nget + 1, sizeof(long));
    nset = nget = 0;
    for (long c = 0; c < conns; c++) {
        memcpy(all_set + nset, ws[c].set_ns, (size_t)ws[c].nset * sizeof(long));
        nset += ws[c].nset;
        memcpy(all_get + nget, ws[c].get_ns, (size_t)ws[c].nget * sizeof(long));
        nget += ws[c].nget;
        if (ws[c].ssl != NULL) {
            SSL_shutdown(ws[c].ssl);
            SSL_free(ws[c].ssl);
        }
        close(ws[c].fd);
        if (ws[c].fd2 >= 0) {
            close(ws[c].fd2);
        }
    }
    summary(all_set, nset, &sm, &sp);
    summary(all_get, nget, &gm, &gp);
    printf("pairs: ops %ld rate %.0f sets %ld set_mean_us %.1f set_p99_us %.1f "
           "gets %ld get_mean_us %.1f get_p99_us %.1f errors %ld\n",
           nset + nget, (double)(nset + nget) / elapsed, nset, sm, sp, nget, gm,
           gp, errors);
    return 0;
}
