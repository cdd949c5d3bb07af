/*
 * calcify: memcached's slab calcification, measured (issue 15, item 1).
 * Over one text-protocol connection to 127.0.0.1:PORT it
 *   1. sets SMALL values of SMALL_SIZE bytes (keys small:<i>),
 *   2. sets BIG values of BIG_SIZE bytes (keys big:<i>),
 *   3. gets the BIG back and counts the hits whose bytes are right;
 * with -w SECONDS it then waits that long, sets BIG more (big2:<i>) and
 * counts those. Sets are pipelined: a batch of up to 256 KiB of requests
 * is written, then its replies are read (every one counted: STORED or
 * not); gets ask for 100 keys at a time. Every value's bytes depend on
 * its key, so a value read under the wrong key is not a hit.
 *
 * With -c CHUNK_SIZE calcify chunks the values itself with riven's chunk
 * module, as a chunked pool will (chunks, then the metadata under the
 * key; reads check the metadata and every chunk): what riven's chunked
 * mode should measure, before riven does it.
 *
 * With -M MCPORT (the memcached at 127.0.0.1:MCPORT behind the server at
 * PORT, riven's backend; or PORT itself) calcify reads that memcached's
 * cmd_set and cmd_get before and after each phase, on a connection of its
 * own, and prints how many memcached commands each request of the phase
 * cost: through riven's chunked pool a set of v bytes is
 * chunk_count(v, chunk_size) chunk sets and a metadata set, a get the
 * metadata's and the chunks' gets (riven asks for the metadata and chunk 0
 * together: a miss costs 2). Its evictions and slabs_moved are then that
 * memcached's too (a riven answers "stats" with its own).
 *
 * stdout, one line per round, and with -M one more per round:
 *   calcify: small 600000 big 5000 readable N (P%)
 *   calcify: memcached commands: small sets S (R a set), big sets S
 *       (R a set), big gets G (R a get), get_hits H
 *   calcify: after S s: big 5000 readable N (P%)
 * stderr: what each phase stored, how long it took, and the server's
 * evictions and slabs_moved, for the reader who wants to know why.
 *
 *   calcify [-c CHUNK_SIZE] [-M MCPORT] [-n SMALL] [-s SMALL_SIZE]
 *           [-N BIG] [-S BIG_SIZE] [-w SECONDS] PORT
 *   (defaults 600000, 100, 5000, 4000, no second round)
 *
 * Exit status 0 when every phase could talk to the server (however few
 * values were readable), 1 on a connection or protocol failure, 2 on
 * bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunk.h"

#define BATCH_BYTES (256 * 1024) /* requests written before replies read */
#define GET_KEYS    100          /* keys per get */
#define RBUF_SIZE   (4 * 1024 * 1024)
#define WBUF_SIZE   (4 * 1024 * 1024) /* a batch, or one value's sets */
#define VALUE_MAX   (1024 * 1024)

static int fd = -1;
static char *rbuf;          /* read buffer: [rpos, rlen) unread */
static size_t rpos, rlen;   /* offsets in rbuf */
static char *wbuf;          /* a batch of requests */
static char *val;           /* a value to write or compare */
static char *asmb;          /* -c: a value assembled from its chunks */
static uint32_t chunk_size; /* -c: the client chunks values; 0: plain */
static int mfd = -1;        /* -M: the memcached whose stats are read */

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "calcify: %s%s%s\n", what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    exit(1);
}

/* The value of key prefix:i, n bytes: printable and a function of both. */
static void
make_value(char *p, size_t n, unsigned salt, unsigned long i)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (salt * 0x9e3779b9u);

    for (size_t j = 0; j < n; j++) {
        x = x * 1103515245u + 12345u;
        p[j] = (char)('a' + (x >> 16) % 26);
    }
}

static void
write_fd(int to, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(to, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

static void
write_all(const char *p, size_t n)
{
    write_fd(fd, p, n);
}

/* At least need unread bytes in rbuf, contiguous from rbuf + rpos. */
static void
fill(size_t need)
{
    if (need > RBUF_SIZE) {
        errno = 0;
        die("reply larger than the read buffer");
    }
    if (rpos + need > RBUF_SIZE) {
        memmove(rbuf, rbuf + rpos, rlen - rpos);
        rlen -= rpos;
        rpos = 0;
    }
    while (rlen - rpos < need) {
        ssize_t r = read(fd, rbuf + rlen, RBUF_SIZE - rlen);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            if (r == 0) {
                errno = 0;
            }
            die("read (the server closed the connection?)");
        }
        rlen += (size_t)r;
    }
}

/* The next line without its "\r\n", NUL-terminated in place; valid until
 * the next read. */
static char *
read_line(void)
{
    for (size_t scanned = 0;;) {
        char *s = rbuf + rpos, *nl;

        nl = memchr(s + scanned, '\n', rlen - rpos - scanned);
        if (nl != NULL) {
            size_t n = (size_t)(nl - s);

            if (n == 0 || s[n - 1] != '\r') {
                errno = 0;
                die("reply line without \\r\\n");
            }
            s[n - 1] = '\0';
            rpos += n + 1;
            return s;
        }
        scanned = rlen - rpos;
        fill(scanned + 1);
    }
}

/* Append the set(s) of value prefix:i (size bytes) to wbuf at w: one
 * set, or with -c its chunks then its metadata, as riven's chunked pool
 * writes them. Returns the new w; adds the number of sets to *nreq. */
static size_t
emit_value(size_t w, const char *prefix, unsigned salt, unsigned long i,
           size_t size, unsigned long *nreq)
{
    char key[64];
    int nkey = snprintf(key, sizeof(key), "%s:%lu", prefix, i);
    struct chunk_keyid id;
    struct chunk_meta m;

    if (chunk_size == 0) {
        w += (size_t)sprintf(wbuf + w, "set %s 0 0 %zu\r\n", key, size);
        make_value(wbuf + w, size, salt, i);
        memcpy(wbuf + w + size, "\r\n", 2);
        (*nreq)++;
        return w + size + 2;
    }
    make_value(val, size, salt, i);
    chunk_keyid(key, (size_t)nkey, &id);
    if (chunk_meta_init(&m, size, 0, 0, chunk_size, chunk_token()) != ST_OK) {
        errno = 0;
        die("chunk_meta_init");
    }
    for (uint32_t c = 0; c < m.nchunks; c++) {
        w += (size_t)sprintf(wbuf + w, "set ");
        w += chunk_key(wbuf + w, CHUNK_KEY_LEN, &id, c);
        w += (size_t)sprintf(wbuf + w, " 0 0 %u\r\n",
                             CHUNK_VALUE_LEN(chunk_size));
        w += chunk_encode(wbuf + w, CHUNK_VALUE_LEN(chunk_size), &m, &id, c,
                          val);
        memcpy(wbuf + w, "\r\n", 2);
        w += 2;
    }
    w += (size_t)sprintf(wbuf + w, "set %s 0 0 %u\r\n", key, CHUNK_META_LEN);
    w += chunk_meta_encode(wbuf + w, CHUNK_META_LEN, &m);
    memcpy(wbuf + w, "\r\n", 2);
    *nreq += m.nchunks + 1;
    return w + 2;
}

/* Set count values "prefix:<i>" of size bytes; returns how many were
 * stored (with -c: all of their sets). The first other reply is shown on
 * stderr. */
static unsigned long
set_phase(const char *prefix, unsigned salt, unsigned long count, size_t size)
{
    unsigned long i = 0, stored = 0, other = 0;
    size_t bound = size + 128; /* the bytes of one value's sets, at most */
    char first[128] = "";

    if (chunk_size > 0) {
        bound = (size_t)(chunk_count(size, chunk_size) + 1) *
                (CHUNK_VALUE_LEN(chunk_size) + 128);
    }
    while (i < count) {
        size_t w = 0;
        unsigned long nval = 0, nreq = 0;

        while (i < count && (w == 0 || w + bound <= BATCH_BYTES)) {
            w = emit_value(w, prefix, salt, i, size, &nreq);
            nval++;
            i++;
        }
        write_all(wbuf, w);
        for (unsigned long v = 0; v < nval; v++) {
            bool ok = true;

            for (unsigned long r = 0; r < nreq / nval; r++) {
                const char *l = read_line();

                if (strcmp(l, "STORED") != 0) {
                    ok = false;
                    if (other++ == 0) {
                        snprintf(first, sizeof(first), "%s", l);
                    }
                }
            }
            stored += ok;
        }
    }
    if (other > 0) {
        fprintf(stderr, "calcify: %s: %lu sets not stored, the first: %s\n",
                prefix, other, first);
    }
    return stored;
}

/* The next reply of a get: false at END, else true with *key (copied),
 * *len and the value's bytes at rbuf + rpos (the caller skips them). */
static bool
next_value(char key[300], unsigned long *len)
{
    char *l = read_line();
    unsigned long flags;

    if (strcmp(l, "END") == 0) {
        return false;
    }
    if (sscanf(l, "VALUE %250s %lu %lu", key, &flags, len) != 3 ||
        *len > VALUE_MAX) {
        errno = 0;
        fprintf(stderr, "calcify: unexpected reply: %s\n", l);
        die("get");
    }
    fill(*len + 2);
    if (memcmp(rbuf + rpos + *len, "\r\n", 2) != 0) {
        errno = 0;
        die("a value not followed by \\r\\n");
    }
    return true;
}

/* i if key is "prefix:<i>" with base <= i < end, else -1. */
static long
key_index(const char *key, const char *prefix, unsigned long base,
          unsigned long end)
{
    size_t np = strlen(prefix);
    unsigned long i;
    int n = 0;

    if (strncmp(key, prefix, np) != 0 || key[np] != ':' ||
        sscanf(key + np + 1, "%lu%n", &i, &n) != 1 ||
        (size_t)n != strlen(key + np + 1) || i < base || i >= end) {
        return -1;
    }
    return (long)i;
}

/* With -c: read value i back from its metadata m (decoded) and chunks;
 * 1 if it is whole and right, 0 if a chunk is missing or refused, -1 if
 * its bytes are wrong (chunks assembled into asmb). */
static int
get_chunked(const char *prefix, unsigned salt, unsigned long i, size_t size,
            const struct chunk_meta *m)
{
    char key[300], ckey[CHUNK_KEY_LEN];
    int nkey = snprintf(key, sizeof(key), "%s:%lu", prefix, i);
    size_t w = (size_t)sprintf(wbuf, "get");
    struct chunk_keyid id;
    uint32_t next = 0, good = 0;
    unsigned long len;

    chunk_keyid(key, (size_t)nkey, &id);
    for (uint32_t c = 0; c < m->nchunks; c++) {
        wbuf[w++] = ' ';
        w += chunk_key(wbuf + w, CHUNK_KEY_LEN, &id, c);
    }
    memcpy(wbuf + w, "\r\n", 2);
    write_all(wbuf, w + 2);
    while (next_value(key, &len)) { /* hits come in the keys' order */
        const char *pl;
        size_t npl;

        while (next < m->nchunks &&
               (chunk_key(ckey, sizeof(ckey), &id, next) != strlen(key) ||
                memcmp(ckey, key, CHUNK_KEY_LEN) != 0)) {
            next++;
        }
        if (next < m->nchunks &&
            chunk_check(rbuf + rpos, len, m, &id, next, &pl, &npl) == ST_OK) {
            memcpy(asmb + (size_t)next * m->chunk_size, pl, npl);
            good++;
        }
        rpos += len + 2;
    }
    if (good != m->nchunks) {
        return 0;
    }
    make_value(val, size, salt, i);
    return m->total == size && memcmp(asmb, val, size) == 0 ? 1 : -1;
}

/* Get count values "prefix:<i>", GET_KEYS per request (with -c: their
 * metadata so, then each one's chunks); returns the hits whose length and
 * bytes are right. */
static unsigned long
get_phase(const char *prefix, unsigned salt, unsigned long count, size_t size)
{
    static struct chunk_meta meta[GET_KEYS];
    static bool have[GET_KEYS];
    unsigned long hits = 0, wrong = 0, len;
    char key[300];

    for (unsigned long base = 0; base < count; base += GET_KEYS) {
        unsigned long end = base + GET_KEYS < count ? base + GET_KEYS : count;
        size_t w = (size_t)sprintf(wbuf, "get");

        for (unsigned long i = base; i < end; i++) {
            w += (size_t)sprintf(wbuf + w, " %s:%lu", prefix, i);
        }
        memcpy(wbuf + w, "\r\n", 2);
        write_all(wbuf, w + 2);
        memset(have, 0, sizeof(have));
        while (next_value(key, &len)) {
            long i = key_index(key, prefix, base, end);

            if (i < 0) {
                wrong++;
            } else if (chunk_size > 0) {
                have[i - base] = chunk_meta_decode(rbuf + rpos, len,
                                                   &meta[i - base]) == ST_OK;
            } else if (len == size) {
                make_value(val, size, salt, (unsigned long)i);
                if (memcmp(rbuf + rpos, val, size) == 0) {
                    hits++;
                } else {
                    wrong++;
                }
            } else {
                wrong++;
            }
            rpos += len + 2;
        }
        for (unsigned long i = base; chunk_size > 0 && i < end; i++) {
            int r = have[i - base]
                        ? get_chunked(prefix, salt, i, size, &meta[i - base])
                        : 0;

            hits += r == 1;
            wrong += r == -1;
        }
    }
    if (wrong > 0) {
        fprintf(stderr, "calcify: %s: %lu values with wrong bytes\n", prefix,
                wrong);
    }
    return hits;
}

/* -M: the counters of the memcached's "stats" that calcify reads */
struct mc_counts {
    unsigned long cmd_get, cmd_set, get_hits, evictions, slabs_moved;
};

/* -M: read them on mfd, calcify's own connection to that memcached. */
static void
mc_counts(struct mc_counts *c)
{
    static char b[64 * 1024];
    size_t n = 0;

    write_fd(mfd, "stats\r\n", 7);
    while (n < 5 || memcmp(b + n - 5, "END\r\n", 5) != 0) {
        ssize_t r = read(mfd, b + n, sizeof(b) - 1 - n);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            if (r == 0) {
                errno = 0;
            }
            die("read the stats of the memcached of -M");
        }
        n += (size_t)r;
        if (n == sizeof(b) - 1) {
            errno = 0;
            die("the stats of the memcached of -M are over 64 KiB");
        }
    }
    b[n] = '\0';
    memset(c, 0, sizeof(*c));
    for (const char *l = b; l != NULL && *l != '\0';) {
        char name[64];
        unsigned long v;

        if (sscanf(l, "STAT %63s %lu", name, &v) == 2) {
            if (strcmp(name, "cmd_get") == 0) {
                c->cmd_get = v;
            } else if (strcmp(name, "cmd_set") == 0) {
                c->cmd_set = v;
            } else if (strcmp(name, "get_hits") == 0) {
                c->get_hits = v;
            } else if (strcmp(name, "evictions") == 0) {
                c->evictions = v;
            } else if (strcmp(name, "slabs_moved") == 0) {
                c->slabs_moved = v;
            }
        }
        l = strchr(l, '\n');
        l = l != NULL ? l + 1 : NULL;
    }
}

/* The sum of the named fields of "stats" (for stderr only): the
 * memcached's of -M, else the server's at PORT. */
static void
show_stats(const char *when)
{
    unsigned long ev = 0, moved = 0, v;
    char name[64];

    if (mfd >= 0) {
        struct mc_counts c;

        mc_counts(&c);
        fprintf(stderr,
                "calcify: %s: memcached evictions %lu slabs_moved %lu\n", when,
                c.evictions, c.slabs_moved);
        return;
    }
    write_all("stats\r\n", 7);
    for (;;) {
        const char *l = read_line();

        if (strcmp(l, "END") == 0) {
            break;
        }
        if (sscanf(l, "STAT %63s %lu", name, &v) == 2) {
            if (strcmp(name, "evictions") == 0) {
                ev = v;
            } else if (strcmp(name, "slabs_moved") == 0) {
                moved = v;
            }
        }
    }
    fprintf(stderr, "calcify: %s: evictions %lu slabs_moved %lu\n", when, ev,
            moved);
}

static void
report(const char *what, unsigned long n, unsigned long total)
{
    printf("calcify: %s readable %lu (%.1f%%)\n", what, n,
           total ? 100.0 * (double)n / (double)total : 0.0);
    fflush(stdout);
}

static void
usage(void)
{
    fprintf(stderr, "usage: calcify [-c CHUNK_SIZE] [-M MCPORT] [-n SMALL] "
                    "[-s SMALL_SIZE] [-N BIG] [-S BIG_SIZE] [-w SECONDS] "
                    "PORT\n");
    exit(2);
}

static unsigned long
arg_ul(const char *s, unsigned long lo, unsigned long hi)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        usage();
    }
    return v;
}

static int
connect_to(unsigned long port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    int one = 1, s;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        die("connect to 127.0.0.1");
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return s;
}

/* -M: what the phases between a and b (sets of nsmall values "small";
 * none when small is NULL), b and c (sets of nbig values "big") and c and
 * d (gets of the big ones) cost the memcached. */
static void
report_commands(const char *small, unsigned long nsmall, const char *big,
                unsigned long nbig, const struct mc_counts *a,
                const struct mc_counts *b, const struct mc_counts *c,
                const struct mc_counts *d)
{
    unsigned long ss = b->cmd_set - a->cmd_set, bs = c->cmd_set - b->cmd_set;
    unsigned long bg = d->cmd_get - c->cmd_get;

    printf("calcify: memcached commands: ");
    if (small != NULL) {
        printf("%s sets %lu (%.2f a set), ", small, ss,
               nsmall ? (double)ss / (double)nsmall : 0.0);
    }
    printf("%s sets %lu (%.2f a set), %s gets %lu (%.2f a get), "
           "get_hits %lu\n",
           big, bs, (double)bs / (double)nbig, big, bg,
           (double)bg / (double)nbig, d->get_hits - c->get_hits);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    unsigned long nsmall = 600000, nbig = 5000, wait = 0, port, mport = 0, n;
    struct mc_counts m0, m1, m2, m3;
    size_t ssmall = 100, sbig = 4000;
    bool second = false;
    char what[128];
    double t;
    int c;

    while ((c = getopt(argc, argv, "c:M:n:s:N:S:w:")) != -1) {
        switch (c) {
        case 'M':
            mport = arg_ul(optarg, 1, 65535);
            break;
        case 'c':
            chunk_size =
                (uint32_t)arg_ul(optarg, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX);
            break;
        case 'n':
            nsmall = arg_ul(optarg, 0, 100000000);
            break;
        case 's':
            ssmall = arg_ul(optarg, 1, VALUE_MAX);
            break;
        case 'N':
            nbig = arg_ul(optarg, 1, 10000000);
            break;
        case 'S':
            sbig = arg_ul(optarg, 1, VALUE_MAX);
            break;
        case 'w':
            wait = arg_ul(optarg, 0, 86400);
            second = true;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1) {
        usage();
    }
    port = arg_ul(argv[optind], 1, 65535);
    rbuf = malloc(RBUF_SIZE);
    wbuf = malloc(WBUF_SIZE);
    asmb = malloc(VALUE_MAX);
    val = malloc(VALUE_MAX + 2);
    if (rbuf == NULL || wbuf == NULL || val == NULL || asmb == NULL) {
        die("malloc");
    }
    fd = connect_to(port);
    if (mport != 0) {
        mfd = connect_to(mport);
    }
    if (chunk_size > 0) {
        fprintf(stderr,
                "calcify: values chunked by calcify itself, "
                "chunk_size %u (riven's chunk layout)\n",
                chunk_size);
    }

    if (mfd >= 0) {
        mc_counts(&m0);
    }
    t = now();
    n = set_phase("small", 1, nsmall, ssmall);
    fprintf(stderr, "calcify: set %lu small (%zu bytes): %lu stored, %.1f s\n",
            nsmall, ssmall, n, now() - t);
    if (mfd >= 0) {
        mc_counts(&m1);
    }
    t = now();
    n = set_phase("big", 2, nbig, sbig);
    fprintf(stderr, "calcify: set %lu big (%zu bytes): %lu stored, %.1f s\n",
            nbig, sbig, n, now() - t);
    if (mfd >= 0) {
        mc_counts(&m2);
    }
    n = get_phase("big", 2, nbig, sbig);
    if (mfd >= 0) {
        mc_counts(&m3);
    }
    show_stats("after round 1");
    snprintf(what, sizeof(what), "small %lu big %lu", nsmall, nbig);
    report(what, n, nbig);
    if (mfd >= 0) {
        report_commands(nsmall > 0 ? "small" : NULL, nsmall, "big", nbig, &m0,
                        &m1, &m2, &m3);
    }
    if (second) {
        sleep((unsigned)wait);
        if (mfd >= 0) {
            mc_counts(&m0);
        }
        n = set_phase("big2", 3, nbig, sbig);
        fprintf(stderr, "calcify: set %lu big2: %lu stored\n", nbig, n);
        if (mfd >= 0) {
            mc_counts(&m2);
        }
        n = get_phase("big2", 3, nbig, sbig);
        if (mfd >= 0) {
            mc_counts(&m3);
        }
        show_stats("after round 2");
        snprintf(what, sizeof(what), "after %lu s: big %lu", wait, nbig);
        report(what, n, nbig);
        if (mfd >= 0) {
            report_commands(NULL, 0, "big2", nbig, &m0, &m0, &m2, &m3);
        }
    }
    close(fd);
    if (mfd >= 0) {
        close(mfd);
    }
    free(rbuf);
    free(wbuf);
    free(val);
    free(asmb);
    return 0;
}
