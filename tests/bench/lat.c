/*
 * lat: a closed-loop memcached load that times every request, for the
 * latency table of `make bench` (p50, p99 and p99.9 per target at c=64).
 * memaslap's -S histogram has log2 buckets, so its p99 is known only
 * within a factor of 2; lat keeps every request's time (CLOCK_MONOTONIC,
 * ns) and sorts them, so its percentiles are exact.
 *
 * The load is memaslap's default (`memcaslap -T 1`): 64-byte keys,
 * 1,024-byte values, 90% get and 10% set, a key drawn at random for each
 * request, over KEYS keys (default 10,000) that are all set before the
 * clock starts (each connection sets a slice, one set at a time), so that
 * every get hits. CONNS connections to 127.0.0.1:PORT are served by
 * THREADS event loops (epoll; default 1, as memaslap -T 1), each
 * connection with one request at a time: it sends the next as soon as the
 * last is answered. A request's time is from just
 * before its write to the read that completes its answer.
 *
 * Every answer is checked byte for byte as it arrives: a set must get
 * "STORED\r\n", a get "VALUE key flags 1024\r\n" with the key's own value
 * (its number in its first bytes, so that no two keys' values are alike)
 * and "END\r\n". A wrong byte, a closed connection or an answer still
 * missing GRACE (2) seconds after the end is an error, and that
 * connection stops: a fast wrong answer must not pass.
 *
 * After the keys are set, WARM seconds (-W, default 0.5) of the same load
 * run untimed. With -w it then prints "lat: ready" and waits for a line
 * on stdin before it starts the clock, so that the caller can read
 * counters (CPU ticks, memcached's commands) around the timed part only.
 * Then it runs SECONDS and prints one line (with -w it then waits for
 * a second line, or the end of stdin, before it closes its connections,
 * so that the counters read after the run leave their closing out):
 *
 *   lat: conns C threads T secs S ops N rate R gets G sets S p50_us A
 *       p99_us B p999_us C max_us M get_p99_us X set_p99_us Y errors E
 *
 * with the percentiles of get and set together (nearest rank), and the
 * errors' kinds on stderr when there are any. Exit status 0 when there
 * were none, 1 when there were, 2 on a usage or setup error.
 *
 *   lat [-w] [-t THREADS] [-k KEYS] [-W WARM] PORT CONNS SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LAT_KLEN   64   /* memaslap's default key size */
#define LAT_VLEN   1024 /* and value size */
#define LAT_REQ    (LAT_KLEN + LAT_VLEN + 64)
#define LAT_GRACE  2000000000L  /* ns an answer may take after the end */
#define LAT_FILL   60000000000L /* ns to set the keys in */
#define LAT_EVENTS 256

struct conn {
    int fd;
    int dead;          /* stopped after an error */
    int busy;          /* a request is out */
    int isset;         /* it is a set */
    char req[LAT_REQ]; /* the request */
    size_t reqlen, sent;
    char want[LAT_REQ]; /* its answer, byte for byte */
    size_t wantlen, got;
    int64_t t0; /* ns, when its first byte was written */
    uint64_t rng;
    long fill, fill_end; /* the keys it sets first */
};

struct loop {
    pthread_t tid;
    int ep;
    struct conn *conns;
    long nconns;
    int64_t *ns; /* the timed requests' latencies */
    long n, cap;
    long gets, sets;
    long wrong, closed, unanswered;
    int64_t last; /* when the last timed answer came */
    int filling;  /* setting the keys, each connection its own */
};

static long keys = 10000;
static char value_block[2 * LAT_VLEN]; /* values are windows of it */
static pthread_barrier_t ready, go;
static int64_t start_ns, end_ns; /* the timed part */
static int64_t warm_ns;

static int64_t
now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000L + t.tv_nsec;
}

static uint64_t
next_rand(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void
key_of(char *k, long i)
{
    int n = snprintf(k, LAT_KLEN + 1, "lat:%ld:", i);

    memset(k + n, 'k', (size_t)(LAT_KLEN - n));
    k[LAT_KLEN] = '\0';
}

/* Key i's value: its number, then a window of the random block. */
static void
value_of(char *v, long i)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%ld:", i);

    memcpy(v, num, (size_t)n);
    memcpy(v + n, value_block + (size_t)(i * 7919 % LAT_VLEN),
           (size_t)(LAT_VLEN - n));
}

static unsigned
flags_of(long i)
{
    return (unsigned)(i * 2654435761UL % 65536);
}

/* Fill c's request (a set when isset) of key i and the answer it wants. */
static void
make_request(struct conn *c, long i, int isset)
{
    char key[LAT_KLEN + 1];
    int n;

    key_of(key, i);
    c->isset = isset;
    if (isset) {
        n = snprintf(c->req, sizeof(c->req), "set %s %u 0 %d\r\n", key,
                     flags_of(i), LAT_VLEN);
        value_of(c->req + n, i);
        memcpy(c->req + n + LAT_VLEN, "\r\n", 2);
        c->reqlen = (size_t)n + LAT_VLEN + 2;
        memcpy(c->want, "STORED\r\n", 8);
        c->wantlen = 8;
    } else {
        c->reqlen = (size_t)snprintf(c->req, sizeof(c->req), "get %s\r\n", key);
        n = snprintf(c->want, sizeof(c->want), "VALUE %s %u %d\r\n", key,
                     flags_of(i), LAT_VLEN);
        value_of(c->want + n, i);
        memcpy(c->want + n + LAT_VLEN, "\r\nEND\r\n", 7);
        c->wantlen = (size_t)n + LAT_VLEN + 7;
    }
    c->sent = c->got = 0;
}

static void
kill_conn(struct loop *l, struct conn *c, long *why)
{
    (*why)++;
    c->dead = 1;
    c->busy = 0;
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Write what is left of c's request; ask for EPOLLOUT when the socket
 * takes only part. 0 when it went or is on its way. */
static int
push(struct loop *l, struct conn *c)
{
    while (c->sent < c->reqlen) {
        ssize_t w = write(c->fd, c->req + c->sent, c->reqlen - c->sent);

        if (w < 0 && errno == EAGAIN) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                                     .data.ptr = c};

            epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        if (w <= 0) {
            return -1;
        }
        c->sent += (size_t)w;
    }
    return 0;
}

static void
send_next(struct loop *l, struct conn *c)
{
    if (l->filling && c->fill >= c->fill_end) {
        return; /* its keys are set */
    } else if (l->filling) {
        make_request(c, c->fill++, 1);
    } else {
        uint64_t r = next_rand(&c->rng);

        make_request(c, (long)(r % (uint64_t)keys),
                     r / (uint64_t)keys % 10 == 0);
    }
    c->busy = 1;
    c->t0 = now_ns();
    if (push(l, c) != 0) {
        kill_conn(l, c, &l->closed);
    }
}

/* Read c's answer as far as it has come, checking each byte. 1 when it is
 * complete, 0 when more is to come, -1 when it is wrong (-2: closed). */
static int
pull(struct conn *c)
{
    char buf[LAT_REQ];

    while (c->got < c->wantlen) {
        /* never past this answer: a byte too many is the next one's */
        ssize_t r = read(c->fd, buf, c->wantlen - c->got);

        if (r < 0 && errno == EAGAIN) {
            return 0;
        }
        if (r <= 0) {
            return -2;
        }
        if (memcmp(buf, c->want + c->got, (size_t)r) != 0) {
            return -1;
        }
        c->got += (size_t)r;
    }
    return 1;
}

/* ns in the upper bits, 1 for a set in the lowest: sorted, they are in
 * the order of their times */
static void
record(struct loop *l, int64_t ns, int isset)
{
    if (l->n == l->cap) { /* more than was made room for */
        long cap = 2 * l->cap + 1024;
        int64_t *p = realloc(l->ns, (size_t)cap * sizeof(*p));

        if (p == NULL) {
            return; /* fewer samples; the count of ops still holds */
        }
        l->ns = p;
        l->cap = cap;
    }
    l->ns[l->n++] = ns * 2 + isset;
}

/* Run the load until `until` (ns), then let the answers that are out come
 * in (for GRACE at most). Times and counts the requests when timed. */
static void
run_loop(struct loop *l, int64_t until, int timed)
{
    struct epoll_event evs[LAT_EVENTS];
    long out = 0;

    for (long i = 0; i < l->nconns; i++) {
        if (!l->conns[i].dead) {
            send_next(l, &l->conns[i]);
            out += l->conns[i].busy;
        }
    }
    while (out > 0) {
        int n = epoll_wait(l->ep, evs, LAT_EVENTS, 10);
        int64_t t = now_ns();

        if (t >= until + LAT_GRACE) {
            for (long i = 0; i < l->nconns; i++) {
                if (l->conns[i].busy) {
                    kill_conn(l, &l->conns[i], &l->unanswered);
                }
            }
            break;
        }
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            int st;

            if (c->dead || !c->busy) {
                continue;
            }
            if ((evs[e].events & EPOLLOUT) && c->sent < c->reqlen) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

                epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (push(l, c) != 0) {
                    kill_conn(l, c, &l->closed);
                    out--;
                    continue;
                }
            }
            st = pull(c);
            if (st == 0) {
                continue;
            }
            if (st < 0) {
                kill_conn(l, c, st == -1 ? &l->wrong : &l->closed);
                out--;
                continue;
            }
            t = now_ns();
            c->busy = 0;
            if (timed) {
                record(l, t - c->t0, c->isset);
                *(c->isset ? &l->sets : &l->gets) += 1;
                l->last = t;
            }
            if (t < until) {
                send_next(l, c);
            }
            if (!c->busy) {
                out--;
            }
        }
    }
}

static void *
thread_main(void *arg)
{
    struct loop *l = arg;

    /* the keys first, one request at a time as in the load (the relay
     * reads one answer per read), within LAT_FILL (a key left unset is a
     * wrong answer later), then the untimed load */
    l->filling = 1;
    run_loop(l, now_ns() + LAT_FILL, 0);
    l->filling = 0;
    run_loop(l, now_ns() + warm_ns, 0);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&go);
    run_loop(l, end_ns, 1);
    return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank p-th percentile (0 < p <= 100) of n sorted values, us. */
static double
pct(const int64_t *v, long n, double p)
{
    long k = (long)((double)n * p / 100.0 + 0.999999);

    if (n == 0) {
        return 0;
    }
    k = k < 1 ? 1 : k > n ? n : k;
    return (double)v[k - 1] / 1e3;
}

/* Wait for a line on stdin. 0 when one came, -1 at its end. */
static int
read_line(void)
{
    char line[16];

    return fgets(line, sizeof(line), stdin) != NULL ? 0 : -1;
}

static int
usage(void)
{
    fprintf(stderr,
            "usage: lat [-w] [-t THREADS] [-k KEYS] [-W WARM] PORT CONNS "
            "SECONDS\n");
    return 2;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct loop *ls;
    struct conn *conns;
    struct rlimit rl;
    long conns_n, threads = 1, n = 0, gets = 0, sets = 0, wrong = 0, closed = 0,
                  unanswered = 0, pos;
    double secs, warm = 0.5, elapsed, type_p99[2];
    int64_t *all, *part, last = 0;
    int wait_go = 0, opt;
    uint64_t seed = 88172645463325252ULL;

    while ((opt = getopt(argc, argv, "wt:k:W:")) != -1) {
        switch (opt) {
        case 'w':
            wait_go = 1;
            break;
        case 't':
            threads = atol(optarg);
            break;
        case 'k':
            keys = atol(optarg);
            break;
        case 'W':
            warm = atof(optarg);
            break;
        default:
            return usage();
        }
    }
    if (argc - optind != 3) {
        return usage();
    }
    addr.sin_port = htons((uint16_t)atoi(argv[optind]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    conns_n = atol(argv[optind + 1]);
    secs = atof(argv[optind + 2]);
    if (conns_n < 1 || secs <= 0 || threads < 1 || keys < 1 || warm < 0) {
        return usage();
    }
    if (threads > conns_n) {
        threads = conns_n;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        (rlim_t)conns_n + 16 > rl.rlim_cur) {
        fprintf(stderr, "lat: %ld connections need %ld fds; the limit is %lu\n",
                conns_n, conns_n + 16, (unsigned long)rl.rlim_cur);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(value_block); i++) {
        value_block[i] = (char)('!' + next_rand(&seed) % 94);
    }
    warm_ns = (int64_t)(warm * 1e9);

    /* connect; each connection will set a slice of the keys */
    conns = calloc((size_t)conns_n, sizeof(*conns));
    ls = calloc((size_t)threads, sizeof(*ls));
    if (conns == NULL || ls == NULL) {
        return 2;
    }
    for (long i = 0; i < conns_n; i++) {
        struct conn *c = &conns[i];
        int one = 1;

        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 ||
            connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            perror("lat: connect");
            return 2;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->rng = seed ^ (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL;
        next_rand(&c->rng);
        c->fill = keys * i / conns_n;
        c->fill_end = keys * (i + 1) / conns_n;
    }
    /* the event loops: THREADS, the connections shared out in turn */
    pos = 0;
    for (long t = 0; t < threads; t++) {
        struct loop *l = &ls[t];

        l->nconns = conns_n * (t + 1) / threads - pos;
        l->conns = conns + pos;
        pos += l->nconns;
        /* room for 400,000 requests a second, touched now: no realloc
         * or page fault in the timed part */
        l->cap = (long)(secs * 400000.0 / (double)threads) + 1024;
        l->ns = malloc((size_t)l->cap * sizeof(*l->ns));
        if (l->ns == NULL) {
            return 2;
        }
        memset(l->ns, 0, (size_t)l->cap * sizeof(*l->ns));
        l->ep = epoll_create1(0);
        if (l->ep < 0) {
            perror("lat: epoll_create1");
            return 2;
        }
        for (long i = 0; i < l->nconns; i++) {
            struct epoll_event ev = {.events = EPOLLIN,
                                     .data.ptr = &l->conns[i]};

            fcntl(l->conns[i].fd, F_SETFL,
                  fcntl(l->conns[i].fd, F_GETFL) | O_NONBLOCK);
            epoll_ctl(l->ep, EPOLL_CTL_ADD, l->conns[i].fd, &ev);
        }
    }
    pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (long t = 0; t < threads; t++) {
        pthread_create(&ls[t].tid, NULL, thread_main, &ls[t]);
    }
    pthread_barrier_wait(&ready);        /* the warm-up is over */
    for (long t = 0; t < threads; t++) { /* its errors count too */
        wrong += ls[t].wrong;
        closed += ls[t].closed;
        unanswered += ls[t].unanswered;
        ls[t].wrong = ls[t].closed = ls[t].unanswered = 0;
    }
    if (wait_go) { /* the caller reads its counters, then says go */
        printf("lat: ready\n");
        fflush(stdout);
        if (read_line() != 0) {
            return 2;
        }
    }
    start_ns = now_ns();
    end_ns = start_ns + (int64_t)(secs * 1e9);
    pthread_barrier_wait(&go);
    for (long t = 0; t < threads; t++) {
        pthread_join(ls[t].tid, NULL);
        n += ls[t].n;
        gets += ls[t].gets;
        sets += ls[t].sets;
        wrong += ls[t].wrong;
        closed += ls[t].closed;
        unanswered += ls[t].unanswered;
        last = ls[t].last > last ? ls[t].last : last;
    }
    elapsed = (double)((last > end_ns ? last : end_ns) - start_ns) / 1e9;

    /* every time, sorted, then the gets' and the sets' apart */
    all = malloc(((size_t)n + 1) * sizeof(*all));
    part = malloc(((size_t)n + 1) * sizeof(*part));
    if (all == NULL || part == NULL) {
        return 2;
    }
    pos = 0;
    for (long t = 0; t < threads; t++) {
        memcpy(all + pos, ls[t].ns, (size_t)ls[t].n * sizeof(*all));
        pos += ls[t].n;
    }
    qsort(all, (size_t)n, sizeof(*all), cmp_i64);
    for (int isset = 0; isset < 2; isset++) {
        long np = 0;

        for (long i = 0; i < n; i++) {
            if ((all[i] & 1) == isset) {
                part[np++] = all[i] / 2;
            }
        }
        type_p99[isset] = pct(part, np, 99);
    }
    for (long i = 0; i < n; i++) {
        all[i] /= 2;
    }
    printf("lat: conns %ld threads %ld secs %.2f ops %ld rate %.0f gets %ld "
           "sets %ld p50_us %.1f p99_us %.1f p999_us %.1f max_us %.1f "
           "get_p99_us %.1f set_p99_us %.1f errors %ld\n",
           conns_n, threads, elapsed, gets + sets,
           elapsed > 0 ? (double)(gets + sets) / elapsed : 0, gets, sets,
           pct(all, n, 50), pct(all, n, 99), pct(all, n, 99.9),
           n ? (double)all[n - 1] / 1e3 : 0, type_p99[0], type_p99[1],
           wrong + closed + unanswered);
    fflush(stdout);
    if (wait_go) {
        (void)read_line(); /* the end of stdin says the same */
    }
    if (wrong + closed + unanswered > 0) {
        fprintf(stderr,
                "lat: errors: %ld wrong answers, %ld connections closed or "
                "failed, %ld answers missing %ld s after the end\n",
                wrong, closed, unanswered, LAT_GRACE / 1000000000L);
    }
    return wrong + closed + unanswered > 0;
}
