/*
 * integ_chunked: riven's chunked storage (issue 15) in front of real
 * memcached processes. Each case starts its own memcached and a riven
 * whose pool is chunked (`chunked: {chunk_size: 256}` unless it says),
 * talks to riven over raw sockets in the text, meta and binary protocols,
 * and reads memcached directly (`mg KEY v f t c`) to see the metadata item
 * and the chunk items (keys from chunk.h's chunk_keyid/chunk_key, bytes
 * checked with chunk_meta_decode/chunk_check): the metadata item is 48
 * bytes and carries the client's flags as memcached's flags too (riven
 * answers mg's f from memcached's reply); chunk items are 24 + chunk_size
 * bytes, flags 0, with the metadata's TTL.
 *
 * 1. sizes: every size 0..514 (2 * 256 + 2) written and read back byte
 *    for byte in each protocol (and read across protocols), the storage
 *    layout checked for the chunk boundaries, then a sweep to
 *    item_size_max (1 MiB; steps of 7919 plus k*256-1, k*256, k*256+1),
 *    and 1 MiB + 1 refused. Values carry a position-dependent pattern, so
 *    a chunk in the wrong place is caught; flags 0xdeadbeef^size;
 * 2. concurrency: 32 threads, a connection each, set and get 10 keys with
 *    values of 100 B..20 KiB that check themselves (length, FNV-1a of the
 *    rest, flags = length) for INTEG_CHUNKED_CONC_MS (default 10,000 ms):
 *    no read ever fails its check, and some hit; again for 5,000 ms with
 *    half the threads through a second riven on the same memcached (key
 *    locks do not span rivens: only the token keeps reads whole);
 * 3. damage: a chunk deleted on memcached makes the key a miss (END,
 *    EN, binary not found) and chunked_chunk_misses rise by one a read; a
 *    chunk of an older write of the key, a chunk of another key and a
 *    right-sized garbage chunk each make it a miss and count a token
 *    mismatch; a 10-byte chunk counts once as one of the two; the
 *    metadata deleted counts neither; a multi-key get leaves the damaged
 *    keys out; counters in `stats proxy` and on /metrics;
 * 4. cas: gets returns the metadata item's CAS, cas with it stores, stale
 *    EXISTS, missing NOT_FOUND; add/replace; incr, decr, append,
 *    prepend, ma, ms MA/MP/I/N, mg N/R and the binary ones (status 0x83)
 *    refused with "not supported on chunked storage", nothing changed on
 *    memcached (mg E: memcached 1.6.18's "invalid flag"; mg h, l: the
 *    metadata item's);
 * 5. touch: touch, gat, gats, mg T, binary touch and gat move the TTL of
 *    the metadata and of every chunk (checked with `mg KEY t` on
 *    memcached, within one second);
 * 6. foreign: a value riven did not write chunked (a plain set on
 *    memcached, a 48-byte non-metadata value, a chunk under a client key)
 *    reads as a miss, and a set through riven then works;
 * 7. calcify: memcached -m 64; through riven (`chunked: true`, 1068-byte
 *    chunks) 600,000 values of 100 bytes then 5,000 of 4,000 bytes: at
 *    least 95% of the 5,000 readable; the same on a fresh memcached
 *    directly: under 20% (one slab page of the 4,000-byte class, 230
 *    values, 4.6%). INTEG_CHUNKED_CALCIFY_SMALL scales the small count
 *    (the big count stays 5,000: the direct result is 230 values whatever
 *    the scale, so fewer big values would not show calcification);
 * 8. meta: the same meta requests (b, k, O, q, f, s, t, v, c; mn) on a
 *    chunked riven and on a plain memcached give the same bytes but for
 *    the CAS, which is the metadata item's;
 * 9. binary: quiet and k variants (getq, getk, getkq, setq, deleteq,
 *    gatkq), noop; flush_all, stats, version pass through;
 * 10. counters: chunked_gets/sets/deletes/touches/refused and their
 *    riven_chunked_items_total{op=...} move exactly;
 * 11. config forms: --chunked, --chunked --chunk-size 300, pool.chunked:
 *    true, pools.NAME.chunked beside a plain pool under routes: each
 *    stores chunks of its own size (or none).
 *
 * About 40 s in all (10 s of case 2, 5 s of its second part, 10 s of
 * calcify). Needs riven: every case is skipped with RIVEN_DIRECT=1. To
 * debug one case: INTEG_CHUNKED_ONLY=test_name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "binpkt.h"
#include "chunk.h"
#include "harness.h"

#define CS           256u /* chunk_size of most cases */
#define WAIT_MS      5000 /* deadline of every polled condition */
#define TMO          HARNESS_TIMEOUT_MS
#define ITEM_MAX     1048576u /* riven's default item_size_max */
#define REFUSED      "CLIENT_ERROR not supported on chunked storage\r\n"
#define REFUSED_MSG  "not supported on chunked storage"
#define TOO_LARGE    "SERVER_ERROR object too large for cache\r\n"
#define CONC_THREADS 32
#define CONC_KEYS    10
#define CONC_MIN     100
#define CONC_MAX     20480
#define CONC_MS      10000
#define CONC_TWO_MS  5000 /* the same over two rivens */
#define CAL_SMALL    600000
#define CAL_SMALL_SZ 100
#define CAL_BIG      5000
#define CAL_BIG_SZ   4000
#define CAL_BATCH    1000 /* sets per pipelined write */
#define CAL_GET_KEYS 100  /* keys per get */

/* binary status codes */
enum {
    BS_OK = 0x0000,
    BS_NOT_FOUND = 0x0001,
    BS_EXISTS = 0x0002,
    BS_TOO_LARGE = 0x0003,
    BS_EINVAL = 0x0004,
    BS_NOT_STORED = 0x0005,
    BS_NOT_SUPPORTED = 0x0083, /* riven: with "not supported on chunked..." */
};

enum proto { P_TEXT, P_META, P_BIN, P_N };
static const char *const proto_name[P_N] = {"text", "meta", "binary"};

/* A case's processes: memcached (the chunked pool), riven, and a client
 * connection to each. */
struct ck {
    struct harness_proc mc;
    struct harness_proc rv;
    int port;               /* riven's listener */
    int mport;              /* riven's /metrics */
    char path[64];          /* riven's YAML config */
    struct harness_conn *c; /* client -> riven, text and meta */
    struct harness_conn *b; /* client -> riven, binary (a connection
                               speaks the protocol of its first byte) */
    struct harness_conn *d; /* client -> memcached, direct */
};

/* A value read back: malloc'd bytes and what came with them. */
struct val {
    char *data; /* owned; NULL on a miss */
    size_t n;
    uint32_t flags;
    uint64_t cas;
};

/* One item as `mg KEY v f t c` on memcached shows it. */
struct item {
    bool hit;
    uint32_t flags;
    long ttl; /* -1: never expires */
    uint64_t cas;
    size_t n;
    char *data; /* owned */
};

/* One binary response. */
struct bres {
    uint8_t op;
    uint16_t status;
    uint16_t klen;
    uint8_t elen;
    uint32_t blen;
    uint32_t opaque;
    uint64_t cas;
    char *body; /* owned, blen bytes (+ NUL) */
};

static void
val_free(struct val *v)
{
    free(v->data);
    memset(v, 0, sizeof(*v));
}

static void
item_free(struct item *it)
{
    free(it->data);
    memset(it, 0, sizeof(*it));
}

/* ---- values -------------------------------------------------------------- */

static uint64_t
mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* n bytes (all 256 values occur) that depend on seed and on their
 * offset: a chunk moved, repeated or misaligned does not match. */
static void
pattern(char *p, size_t n, uint64_t seed)
{
    uint64_t x = 0;

    for (size_t j = 0; j < n; j++) {
        if ((j & 7) == 0) {
            x = mix64(seed * 0x100000001b3ull ^ (uint64_t)j);
        }
        p[j] = (char)(x >> (8 * (j & 7)));
    }
}

/* Printable variant, for the values of the threads and of calcify. */
static void
pattern_text(char *p, size_t n, uint64_t seed)
{
    pattern(p, n, seed);
    for (size_t j = 0; j < n; j++) {
        p[j] = (char)('a' + (uint8_t)p[j] % 26);
    }
}

static uint32_t
fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    }
    return h;
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    assert_non_null(p);
    return p;
}

/* Compare a value read back with the one written; on a difference, say
 * where (and in which chunk) and fail. */
static void
same_bytes(const char *what, const char *want, size_t wn, const char *got,
           size_t gn)
{
    long at;

    if (wn == gn && (wn == 0 || memcmp(want, got, wn) == 0)) {
        return;
    }
    at = harness_diff("want", want, wn, "got", got, gn);
    fail_msg("%s: %zu bytes read back as %zu, first difference at %ld "
             "(chunk %ld of %u bytes)",
             what, wn, gn, at, at / (long)CS, CS);
}

/* ---- processes ----------------------------------------------------------- */

/* riven -t -c path: its exit status, and its output in out. */
static int
check_config(const char *path, char *out, size_t outlen)
{
    char cmd[256];
    size_t n = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "%s -t -c %s 2>&1", harness_riven_bin(), path);
    p = popen(cmd, "r");
    if (p == NULL) {
        snprintf(out, outlen, "popen failed");
        return -1;
    }
    while (n + 1 < outlen && fgets(out + n, (int)(outlen - n), p) != NULL) {
        n = strlen(out);
    }
    out[n] = '\0';
    return pclose(p);
}

/* Start riven with the YAML config "listen: [...]\n" + body (fmt, ...),
 * /metrics on a free port; open t->c. */
static void __attribute__((format(printf, 2, 3)))
riven_with(struct ck *t, const char *fmt, ...)
{
    char body[4096], maddr[32];
    const char *extra[] = {"-m", maddr, NULL};
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    harness_conn_close(t->c);
    harness_conn_close(t->b);
    t->c = t->b = NULL;
    harness_proc_stop(&t->rv, 5000);
    for (int attempt = 0; attempt < 5; attempt++) {
        FILE *f;

        t->port = harness_free_port();
        t->mport = harness_free_port();
        assert_true(t->port > 0 && t->mport > 0);
        f = fopen(t->path, "w");
        assert_non_null(f);
        fprintf(f, "listen: [\"127.0.0.1:%d\"]\nlog_level: warn\n%s", t->port,
                body);
        assert_int_equal(fclose(f), 0);
        if (attempt == 0) { /* a config riven refuses: say why, once */
            char out[1024];
            int st = check_config(t->path, out, sizeof(out));

            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fail_msg("riven -t -c %s refuses:\n%s---\n%s", t->path, body,
                         out);
            }
        }
        snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", t->mport);
        if (harness_riven_start(&t->rv, 0, t->path, t->port, extra) == 0 &&
            harness_wait_ready(&t->rv, t->mport, WAIT_MS) == 0) {
            t->c = harness_conn_open(t->port, TMO);
            t->b = harness_conn_open(t->port, TMO);
            assert_non_null(t->c);
            assert_non_null(t->b);
            return;
        }
        harness_proc_stop(&t->rv, 5000);
    }
    fail_msg("cannot start riven with %s", t->path);
}

/* memcached (-m 64 [mc_extra...]) and a direct connection to it. */
static void
mc_start(struct ck *t, const char *const *mc_extra)
{
    assert_int_equal(harness_memcached_start(&t->mc, 0, mc_extra), 0);
    t->d = harness_conn_open(t->mc.port, TMO);
    assert_non_null(t->d);
}

/* The usual pair: memcached, and riven whose one pool is chunked with
 * chunk_size cs. */
static void
ck_start(struct ck *t, const char *const *mc_extra, uint32_t cs)
{
    mc_start(t, mc_extra);
    riven_with(t,
               "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
               "  chunked: {chunk_size: %u}\n",
               t->mc.port, cs);
}

static int
setup(void **state)
{
    struct ck *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return -1;
    }
    t->mc.pid = t->rv.pid = -1;
    snprintf(t->path, sizeof(t->path), "/tmp/riven-chunked-%d.yml",
             (int)getpid());
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    struct ck *t = *state;
    bool alive = true;

    if (t->rv.pid > 0) {
        alive = harness_proc_alive(&t->rv);
    }
    harness_conn_close(t->c);
    harness_conn_close(t->b);
    harness_conn_close(t->d);
    harness_proc_stop(&t->rv, 5000);
    harness_proc_stop(&t->mc, 5000);
    unlink(t->path);
    free(t);
    if (!alive) {
        fprintf(stderr, "riven died during the test\n");
    }
    return alive ? 0 : -1;
}

#define NEED_RIVEN()                                                           \
    do {                                                                       \
        if (harness_direct()) {                                                \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* ---- text and meta ------------------------------------------------------- */

static void
send_all(struct harness_conn *c, const void *p, size_t n)
{
    assert_int_equal(harness_send(c, p, n), 0);
}

static void
rt(struct harness_conn *c, const char *req, const char *want)
{
    if (!harness_roundtrip(c, req, want)) {
        fail_msg("request %s: reply differs (above)", req);
    }
}

/* Send the command line head (without "\r\n"), then n bytes of data and
 * "\r\n" (a storage command, text or meta). */
static int
send_storage(struct harness_conn *c, const char *head, const char *data,
             size_t n)
{
    size_t hl = strlen(head);
    char *p = malloc(hl + n + 4);
    int rc;

    if (p == NULL) {
        return -1;
    }
    memcpy(p, head, hl);
    memcpy(p + hl, "\r\n", 2);
    if (n > 0) {
        memcpy(p + hl + 2, data, n);
    }
    memcpy(p + hl + 2 + n, "\r\n", 2);
    rc = harness_send(c, p, hl + n + 4);
    free(p);
    return rc;
}

/* Read n value bytes and their "\r\n" into *out (malloc'd). 0 or -1. */
static int
read_data(struct harness_conn *c, size_t n, char **out)
{
    char *d = harness_recv_n(c, n + 2, TMO);

    *out = NULL;
    if (d == NULL) {
        return -1;
    }
    if (d[n] != '\r' || d[n + 1] != '\n') {
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

/* Read one text retrieval reply for key (get, gets, gat, gats of one
 * key): 1 hit (v filled; v->cas when gets), 0 miss, -1 protocol error or
 * timeout (err says what). Does not assert: threads use it. */
static int
text_read(struct harness_conn *c, const char *key, struct val *v, char *err,
          size_t errlen)
{
    char k[256];
    size_t len = 0;
    char *line = harness_recv_until(c, "\r\n", 2, TMO, &len);
    unsigned long long cas = 0;
    int fields;

    memset(v, 0, sizeof(*v));
    if (line == NULL) {
        snprintf(err, errlen, "no reply");
        return -1;
    }
    if (strcmp(line, "END\r\n") == 0) {
        free(line);
        return 0;
    }
    fields = sscanf(line, "VALUE %255s %" SCNu32 " %zu %llu", k, &v->flags,
                    &v->n, &cas);
    if (fields < 3 || strcmp(k, key) != 0) {
        snprintf(err, errlen, "unexpected reply line: %.200s", line);
        free(line);
        return -1;
    }
    free(line);
    v->cas = cas;
    if (read_data(c, v->n, &v->data) != 0) {
        snprintf(err, errlen, "value of %zu bytes not read whole", v->n);
        return -1;
    }
    line = harness_recv_n(c, 5, TMO);
    if (line == NULL || memcmp(line, "END\r\n", 5) != 0) {
        snprintf(err, errlen, "no END after the value");
        free(line);
        val_free(v);
        return -1;
    }
    free(line);
    return 1;
}

/* Main thread: send cmd (e.g. "get KEY"), read the reply for key. */
static int
text_get(struct harness_conn *c, const char *cmd, const char *key,
         struct val *v)
{
    char req[512], err[256];
    int r;

    snprintf(req, sizeof(req), "%s\r\n", cmd);
    assert_int_equal(harness_sends(c, req), 0);
    r = text_read(c, key, v, err, sizeof(err));
    if (r < 0) {
        fail_msg("%s: %s", cmd, err);
    }
    return r;
}

/* Read the reply to "mg KEY v f [...]": 1 hit ("VA n f<flags> ..."), 0
 * miss ("EN"), -1 anything else. */
static int
meta_read(struct harness_conn *c, struct val *v, char *err, size_t errlen)
{
    size_t len = 0;
    char *line = harness_recv_until(c, "\r\n", 2, TMO, &len), *f;

    memset(v, 0, sizeof(*v));
    if (line == NULL) {
        snprintf(err, errlen, "no reply");
        return -1;
    }
    if (strcmp(line, "EN\r\n") == 0) {
        free(line);
        return 0;
    }
    if (sscanf(line, "VA %zu", &v->n) != 1 ||
        (f = strstr(line, " f")) == NULL) {
        snprintf(err, errlen, "unexpected reply line: %.200s", line);
        free(line);
        return -1;
    }
    v->flags = (uint32_t)strtoul(f + 2, NULL, 10);
    free(line);
    if (read_data(c, v->n, &v->data) != 0) {
        snprintf(err, errlen, "value of %zu bytes not read whole", v->n);
        return -1;
    }
    return 1;
}

static int
meta_get(struct harness_conn *c, const char *key, struct val *v)
{
    char req[512], err[256];
    int r;

    snprintf(req, sizeof(req), "mg %s v f\r\n", key);
    assert_int_equal(harness_sends(c, req), 0);
    r = meta_read(c, v, err, sizeof(err));
    if (r < 0) {
        fail_msg("mg %s: %s", key, err);
    }
    return r;
}

/* ---- binary -------------------------------------------------------------- */

static int
bin_send(struct harness_conn *c, uint8_t op, const char *key, const void *ext,
         uint8_t elen, const void *val, size_t vlen, uint32_t opaque,
         uint64_t cas)
{
    size_t klen = key != NULL ? strlen(key) : 0;
    size_t n = BINPKT_HEADER_LEN + elen + klen + vlen;
    uint8_t *p = malloc(n);
    int rc;

    if (p == NULL) {
        return -1;
    }
    binpkt_header(p, op, (uint16_t)klen, elen, (uint32_t)(elen + klen + vlen),
                  opaque, cas);
    if (elen > 0) {
        memcpy(p + BINPKT_HEADER_LEN, ext, elen);
    }
    if (klen > 0) {
        memcpy(p + BINPKT_HEADER_LEN + elen, key, klen);
    }
    if (vlen > 0) {
        memcpy(p + BINPKT_HEADER_LEN + elen + klen, val, vlen);
    }
    rc = harness_send(c, p, n);
    free(p);
    return rc;
}

static int
bin_recv(struct harness_conn *c, struct bres *r)
{
    char *h = harness_recv_n(c, BINPKT_HEADER_LEN, TMO);
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;

    memset(r, 0, sizeof(*r));
    if (h == NULL) {
        return -1;
    }
    if ((uint8_t)h[0] != 0x81) {
        free(h);
        return -1;
    }
    r->op = (uint8_t)h[1];
    memcpy(&v16, h + 2, 2);
    r->klen = ntohs(v16);
    r->elen = (uint8_t)h[4];
    memcpy(&v16, h + 6, 2);
    r->status = ntohs(v16);
    memcpy(&v32, h + 8, 4);
    r->blen = ntohl(v32);
    memcpy(&v32, h + 12, 4);
    r->opaque = ntohl(v32);
    memcpy(&v64, h + 16, 8);
    r->cas = be64toh(v64);
    free(h);
    r->body = harness_recv_n(c, r->blen, TMO);
    return r->body != NULL ? 0 : -1;
}

static void
bin_rt(struct harness_conn *c, uint8_t op, const char *key, const void *ext,
       uint8_t elen, const void *val, size_t vlen, uint64_t cas, struct bres *r)
{
    assert_int_equal(bin_send(c, op, key, ext, elen, val, vlen, 0xabcd, cas),
                     0);
    assert_int_equal(bin_recv(c, r), 0);
    assert_int_equal(r->op, op);
    assert_int_equal(r->opaque, 0xabcd);
}

static void
set_extras(uint8_t ext[8], uint32_t flags, uint32_t exptime)
{
    uint32_t f = htonl(flags), e = htonl(exptime);

    memcpy(ext, &f, 4);
    memcpy(ext + 4, &e, 4);
}

static uint16_t
bin_set(struct harness_conn *c, uint8_t op, const char *key, uint32_t flags,
        uint32_t exptime, const char *val, size_t n, uint64_t cas)
{
    uint8_t ext[8];
    struct bres r;
    uint16_t st;

    set_extras(ext, flags, exptime);
    bin_rt(c, op, key, ext, 8, val, n, cas, &r);
    st = r.status;
    free(r.body);
    return st;
}

/* Binary get: 1 hit (v filled, v->cas from the header), 0 not found. */
static int
bin_get(struct harness_conn *c, const char *key, struct val *v)
{
    struct bres r;
    uint32_t f;

    memset(v, 0, sizeof(*v));
    bin_rt(c, OP_GET, key, NULL, 0, NULL, 0, 0, &r);
    if (r.status == BS_NOT_FOUND) {
        free(r.body);
        return 0;
    }
    if (r.status != BS_OK || r.elen != 4) {
        harness_dump("body", r.body, r.blen, 200);
        fail_msg("binary get %s: status 0x%04x, extras %u", key, r.status,
                 r.elen);
    }
    memcpy(&f, r.body, 4);
    v->flags = ntohl(f);
    v->n = r.blen - 4;
    v->cas = r.cas;
    v->data = xmalloc(v->n);
    memcpy(v->data, r.body + 4, v->n);
    free(r.body);
    return 1;
}

/* ---- one value through each protocol ------------------------------------- */

static void
proto_set(struct ck *t, enum proto p, const char *key, uint32_t flags,
          uint32_t exptime, const char *val, size_t n)
{
    struct harness_conn *c = p == P_BIN ? t->b : t->c;
    char head[512];

    switch (p) {
    case P_TEXT:
        snprintf(head, sizeof(head), "set %s %" PRIu32 " %" PRIu32 " %zu", key,
                 flags, exptime, n);
        assert_int_equal(send_storage(c, head, val, n), 0);
        if (!harness_expect(c, "STORED\r\n")) {
            fail_msg("text set %s of %zu bytes: not STORED", key, n);
        }
        break;
    case P_META:
        snprintf(head, sizeof(head), "ms %s %zu F%" PRIu32 " T%" PRIu32, key, n,
                 flags, exptime);
        assert_int_equal(send_storage(c, head, val, n), 0);
        if (!harness_expect(c, "HD\r\n")) {
            fail_msg("ms %s of %zu bytes: not HD", key, n);
        }
        break;
    default: {
        uint16_t st = bin_set(c, OP_SET, key, flags, exptime, val, n, 0);

        if (st != BS_OK) {
            fail_msg("binary set %s of %zu bytes: status 0x%04x", key, n, st);
        }
        break;
    }
    }
}

static int
proto_get(struct ck *t, enum proto p, const char *key, struct val *v)
{
    struct harness_conn *c = p == P_BIN ? t->b : t->c;
    char cmd[300];

    switch (p) {
    case P_TEXT:
        snprintf(cmd, sizeof(cmd), "get %s", key);
        return text_get(c, cmd, key, v);
    case P_META:
        return meta_get(c, key, v);
    default:
        return bin_get(c, key, v);
    }
}

/* Read key through protocol p and require exactly (val, n, flags). */
static void
want_value(struct ck *t, enum proto p, const char *key, const char *val,
           size_t n, uint32_t flags)
{
    struct val v;
    char what[400];

    if (proto_get(t, p, key, &v) != 1) {
        fail_msg("%s get %s (%zu bytes): a miss", proto_name[p], key, n);
    }
    snprintf(what, sizeof(what), "%s get %s", proto_name[p], key);
    same_bytes(what, val, n, v.data, v.n);
    if (v.flags != flags) {
        fail_msg("%s: flags %" PRIu32 ", expected %" PRIu32, what, v.flags,
                 flags);
    }
    val_free(&v);
}

static void
want_miss(struct ck *t, enum proto p, const char *key)
{
    struct val v;

    if (proto_get(t, p, key, &v) != 0) {
        fail_msg("%s get %s: a hit of %zu bytes, expected a miss",
                 proto_name[p], key, v.n);
    }
}

/* ---- memcached, directly ------------------------------------------------- */

/* `mg KEY v f t c` on memcached. */
static void
direct_item(struct harness_conn *d, const char *key, struct item *it)
{
    char req[300];
    size_t len = 0;
    char *line, *tok, *save = NULL;

    memset(it, 0, sizeof(*it));
    snprintf(req, sizeof(req), "mg %s v f t c\r\n", key);
    assert_int_equal(harness_sends(d, req), 0);
    line = harness_recv_until(d, "\r\n", 2, TMO, &len);
    assert_non_null(line);
    if (strcmp(line, "EN\r\n") == 0) {
        free(line);
        return;
    }
    if (strncmp(line, "VA ", 3) != 0) {
        fail_msg("memcached: mg %s: %s", key, line);
    }
    it->hit = true;
    line[len - 2] = '\0';
    it->n = strtoul(line + 3, NULL, 10);
    strtok_r(line + 3, " ", &save);
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        switch (tok[0]) {
        case 'f':
            it->flags = (uint32_t)strtoul(tok + 1, NULL, 10);
            break;
        case 't':
            it->ttl = strtol(tok + 1, NULL, 10);
            break;
        case 'c':
            it->cas = strtoull(tok + 1, NULL, 10);
            break;
        default:
            break;
        }
    }
    free(line);
    assert_int_equal(read_data(d, it->n, &it->data), 0);
}

/* chunk key index of client key (NUL-terminated in out). */
static void
ckey(const char *key, size_t nkey, uint32_t index, char out[CHUNK_KEY_LEN + 1])
{
    struct chunk_keyid id;

    chunk_keyid(key, nkey, &id);
    assert_int_equal(chunk_key(out, CHUNK_KEY_LEN, &id, index), CHUNK_KEY_LEN);
    out[CHUNK_KEY_LEN] = '\0';
}

static void
ckey_s(const char *key, uint32_t index, char out[CHUNK_KEY_LEN + 1])
{
    ckey(key, strlen(key), index, out);
}

/* The metadata item of key on memcached (it: as memcached shows it),
 * decoded into m. riven stores it with the client's flags as memcached's
 * flags too (mg's f comes from memcached's reply), so they must agree
 * with the flags in its bytes. */
static void
direct_meta(struct harness_conn *d, const char *key, struct chunk_meta *m,
            struct item *it)
{
    direct_item(d, key, it);
    if (!it->hit) {
        fail_msg("memcached has no metadata item under %s", key);
    }
    if (it->n != CHUNK_META_LEN) {
        fail_msg("metadata item %s: %zu bytes, expected %u", key, it->n,
                 CHUNK_META_LEN);
    }
    if (chunk_meta_decode(it->data, it->n, m) != ST_OK) {
        harness_dump("metadata", it->data, it->n, 100);
        fail_msg("metadata item %s does not decode", key);
    }
    if (it->flags != m->flags) {
        fail_msg("metadata item %s: memcached's flags %" PRIu32
                 ", its bytes' %" PRIu32,
                 key, it->flags, m->flags);
    }
}

static bool
ttl_in(long ttl, long want)
{
    if (want <= 0) {
        return ttl == -1;
    }
    return ttl >= want - 1 && ttl <= want;
}

/* What riven stored for key (nkey bytes, as memcached holds it) on
 * memcached: one metadata item (48 bytes, the client's flags, TTL ttl:
 * within a second, -1 for 0) and chunk_count(n, cs) chunk items of 24 + cs
 * bytes, flags 0, TTL ttl, whose payloads are val; none past the last when
 * fresh (a key never written with a longer value). */
static void
check_layout(struct harness_conn *d, const char *key, size_t nkey,
             const char *val, size_t n, uint32_t flags, long ttl, uint32_t cs,
             bool fresh)
{
    struct chunk_keyid id;
    struct chunk_meta m;
    struct item it;
    char k[CHUNK_KEY_LEN + 1], mkey[300];

    memcpy(mkey, key, nkey);
    mkey[nkey] = '\0';
    direct_meta(d, mkey, &m, &it);
    if (!ttl_in(it.ttl, ttl)) {
        fail_msg("metadata %s: TTL %ld, expected %ld", mkey, it.ttl, ttl);
    }
    item_free(&it);
    assert_int_equal(m.total, n);
    assert_int_equal(m.flags, flags);
    assert_int_equal(m.chunk_size, cs);
    assert_int_equal(m.nchunks, chunk_count(n, cs));
    chunk_keyid(key, nkey, &id);
    for (uint32_t i = 0; i < m.nchunks; i++) {
        const char *pl = NULL;
        size_t npl = 0;
        uint64_t off;
        uint32_t len;

        ckey(key, nkey, i, k);
        direct_item(d, k, &it);
        if (!it.hit) {
            fail_msg("%s: chunk %" PRIu32 " (%s) absent", mkey, i, k);
        }
        if (it.n != CHUNK_VALUE_LEN(cs) || it.flags != 0 ||
            !ttl_in(it.ttl, ttl)) {
            fail_msg("%s chunk %" PRIu32 ": %zu bytes flags %" PRIu32
                     " TTL %ld, expected %u bytes flags 0 TTL %ld",
                     mkey, i, it.n, it.flags, it.ttl, CHUNK_VALUE_LEN(cs), ttl);
        }
        if (chunk_check(it.data, it.n, &m, &id, i, &pl, &npl) != ST_OK) {
            fail_msg("%s chunk %" PRIu32 ": chunk_check fails", mkey, i);
        }
        chunk_span(&m, i, &off, &len);
        assert_int_equal(npl, len);
        same_bytes("chunk payload", val + off, len, pl, npl);
        item_free(&it);
    }
    if (fresh) {
        ckey(key, nkey, m.nchunks, k);
        direct_item(d, k, &it);
        if (it.hit) {
            fail_msg("%s: a chunk %" PRIu32 " past the last", mkey, m.nchunks);
        }
    }
}

/* ---- counters ------------------------------------------------------------ */

enum { C_CMISS, C_TOKEN, C_GET, C_SET, C_DEL, C_TOUCH, C_REFUSED, C_N };

static const struct {
    const char *stat; /* in `stats proxy` */
    const char *prom; /* series on /metrics */
} ctr_names[C_N] = {
    {"chunked_chunk_misses", "riven_chunked_chunk_misses_total"},
    {"chunked_token_mismatches", "riven_chunked_token_mismatches_total"},
    {"chunked_gets", "riven_chunked_items_total{op=\"get\"}"},
    {"chunked_sets", "riven_chunked_items_total{op=\"set\"}"},
    {"chunked_deletes", "riven_chunked_items_total{op=\"delete\"}"},
    {"chunked_touches", "riven_chunked_items_total{op=\"touch\"}"},
    {"chunked_refused", "riven_chunked_items_total{op=\"refused\"}"},
};

struct ctrs {
    long long s[C_N]; /* stats proxy; -1 absent */
    long long p[C_N]; /* /metrics; -1 absent */
};

/* GET /metrics from 127.0.0.1:port: the body, malloc'd, or NULL. */
static char *
metrics_body(int port)
{
    struct harness_conn *c = harness_conn_open(port, TMO);
    char req[128], *all, *sep, *body = NULL;

    if (c == NULL) {
        return NULL;
    }
    snprintf(req, sizeof(req),
             "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Connection: close\r\n\r\n",
             port);
    if (harness_sends(c, req) == 0 && harness_wait_eof(c, TMO)) {
        all = harness_take(c, c->len);
        if (all != NULL && (sep = strstr(all, "\r\n\r\n")) != NULL) {
            body = strdup(sep + 4);
        }
        free(all);
    }
    harness_conn_close(c);
    return body;
}

/* The value of the line "name value" in text (lines of "name value"),
 * or -1. */
static long long
line_value(const char *text, const char *prefix, const char *name)
{
    size_t pl = strlen(prefix), nl = strlen(name);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, pl) == 0 && strncmp(p + pl, name, nl) == 0 &&
            p[pl + nl] == ' ') {
            return (long long)strtod(p + pl + nl + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static void
ctrs_read(struct ck *t, struct ctrs *out)
{
    struct harness_conn *s = harness_conn_open(t->port, TMO);
    size_t n = 0;
    char *text, *body;

    assert_non_null(s);
    assert_int_equal(harness_sends(s, "stats proxy\r\n"), 0);
    text = harness_recv_until(s, "END\r\n", 5, TMO, &n);
    assert_non_null(text);
    harness_conn_close(s);
    body = metrics_body(t->mport);
    assert_non_null(body);
    for (int i = 0; i < C_N; i++) {
        out->s[i] = line_value(text, "STAT ", ctr_names[i].stat);
        out->p[i] = line_value(body, "", ctr_names[i].prom);
    }
    free(text);
    free(body);
}

/* Wait until every counter i with delta[i] >= 0 is base + delta[i] in
 * both stats proxy and /metrics (riven counts a batch after replying),
 * then require it exactly. */
static void
ctrs_expect(struct ck *t, const struct ctrs *base, const long long delta[C_N])
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    struct ctrs now;
    bool ok;
    char msg[2048];
    size_t m = 0;

    for (;;) {
        ctrs_read(t, &now);
        ok = true;
        for (int i = 0; i < C_N; i++) {
            if (delta[i] >= 0 && (now.s[i] != base->s[i] + delta[i] ||
                                  now.p[i] != base->p[i] + delta[i])) {
                ok = false;
            }
        }
        if (ok || harness_now_ms() >= deadline) {
            break;
        }
        poll(NULL, 0, 20);
    }
    if (ok) {
        poll(NULL, 0, 50); /* and not more afterwards */
        ctrs_read(t, &now);
    }
    msg[0] = '\0';
    for (int i = 0; i < C_N; i++) {
        if (delta[i] < 0 || (now.s[i] == base->s[i] + delta[i] &&
                             now.p[i] == base->p[i] + delta[i])) {
            continue;
        }
        m +=
            (size_t)snprintf(msg + m, sizeof(msg) - m,
                             "\n  %s: %lld -> %lld, %s: %lld -> %lld "
                             "(expected +%lld; -1 = absent)",
                             ctr_names[i].stat, base->s[i], now.s[i],
                             ctr_names[i].prom, base->p[i], now.p[i], delta[i]);
        if (m >= sizeof(msg)) {
            break;
        }
    }
    if (msg[0] != '\0') {
        fail_msg("counters off:%s", msg);
    }
}

/* ---- 1. sizes ------------------------------------------------------------ */

static void
size_key(char *out, size_t cap, const char *tag, size_t n)
{
    snprintf(out, cap, "sz:%s:%zu", tag, n);
}

/* Size n: written in each protocol and read back in the same one; the
 * text write also read through the other two. */
static void
roundtrip_all(struct ck *t, char *buf, size_t n, bool layout)
{
    char key[64];
    uint32_t flags = 0xdeadbeefu ^ (uint32_t)n;

    pattern(buf, n, n);
    size_key(key, sizeof(key), "t", n);
    proto_set(t, P_TEXT, key, flags, 0, buf, n);
    for (int p = 0; p < P_N; p++) {
        want_value(t, (enum proto)p, key, buf, n, flags);
    }
    if (layout) {
        check_layout(t->d, key, strlen(key), buf, n, flags, 0, CS, true);
    }
    for (int p = P_META; p < P_N; p++) {
        pattern(buf, n, n * 7 + (size_t)p);
        size_key(key, sizeof(key), proto_name[p], n);
        proto_set(t, (enum proto)p, key, flags + 1, 0, buf, n);
        want_value(t, (enum proto)p, key, buf, n, flags + 1);
    }
}

static int
cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

/* Sizes of the sweep: 515 + 7919 j, k*CS-1..k*CS+1, up to max. */
static size_t
sweep_sizes(size_t *out, size_t cap, size_t max)
{
    static const size_t ks[] = {3,    4,    5,    8,    16,   17,
                                64,   100,  255,  256,  1000, 1024,
                                2047, 2048, 3000, 4000, 4095, 4096};
    size_t n = 0, u = 0;

    for (size_t s = 515; s <= max && n < cap; s += 7919) {
        out[n++] = s;
    }
    for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
        for (size_t d = 0; d < 3 && n < cap; d++) {
            size_t s = ks[i] * CS - 1 + d;

            if (s <= max) {
                out[n++] = s;
            }
        }
    }
    if (n + 2 <= cap) {
        out[n++] = max - 1;
        out[n++] = max;
    }
    qsort(out, n, sizeof(*out), cmp_size);
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || out[u - 1] != out[i]) {
            out[u++] = out[i];
        }
    }
    return u;
}

static void
test_sizes(void **state)
{
    struct ck *t = *state;
    const char *const mc_extra[] = {"-m", "256", NULL};
    size_t sizes[512], ns;
    char *buf = xmalloc(ITEM_MAX + 1);
    int64_t t0;

    NEED_RIVEN();
    ck_start(t, mc_extra, CS);
    t0 = harness_now_ms();
    for (size_t n = 0; n <= 2 * CS + 2; n++) {
        bool edge = n <= 2 || n % CS <= 1 || n % CS == CS - 1;

        roundtrip_all(t, buf, n, edge);
    }
    printf("integ_chunked: sizes 0..%u, 8 requests each: %lld ms\n", 2 * CS + 2,
           (long long)(harness_now_ms() - t0));

    /* the sweep: write in protocol i % 3, read in all three */
    t0 = harness_now_ms();
    ns = sweep_sizes(sizes, sizeof(sizes) / sizeof(sizes[0]), ITEM_MAX);
    for (size_t i = 0; i < ns; i++) {
        size_t n = sizes[i];
        enum proto w = (enum proto)(i % P_N);
        uint32_t flags = 0xdeadbeefu ^ (uint32_t)n;
        char key[64];

        pattern(buf, n, n ^ 0x5a5a);
        snprintf(key, sizeof(key), "sweep:%zu", n);
        proto_set(t, w, key, flags, 0, buf, n);
        for (int p = 0; p < P_N; p++) {
            want_value(t, (enum proto)p, key, buf, n, flags);
        }
        if (n == ITEM_MAX || n == 4096 * CS - 1) {
            check_layout(t->d, key, strlen(key), buf, n, flags, 0, CS, true);
        }
    }
    printf("integ_chunked: sweep of %zu sizes to %u: %lld ms\n", ns, ITEM_MAX,
           (long long)(harness_now_ms() - t0));

    /* one byte over item_size_max: refused in each protocol, in sync */
    {
        char head[64];
        struct bres r;
        uint8_t ext[8];

        snprintf(head, sizeof(head), "set big:over 0 0 %u", ITEM_MAX + 1);
        assert_int_equal(send_storage(t->c, head, buf, ITEM_MAX + 1), 0);
        assert_true(harness_expect(t->c, TOO_LARGE));
        snprintf(head, sizeof(head), "ms big:over %u", ITEM_MAX + 1);
        assert_int_equal(send_storage(t->c, head, buf, ITEM_MAX + 1), 0);
        assert_true(harness_expect(t->c, TOO_LARGE));
        set_extras(ext, 0, 0);
        bin_rt(t->b, OP_SET, "big:over", ext, 8, buf, ITEM_MAX + 1, 0, &r);
        assert_int_equal(r.status, BS_TOO_LARGE);
        free(r.body);
        rt(t->c, "get big:over\r\n", "END\r\n");
    }
    free(buf);
}

/* ---- 2. concurrency ------------------------------------------------------ */

struct conc {
    int port[2]; /* even threads on port[0], odd on port[1] */
    int64_t until;
    atomic_ullong sets, reads, hits, misses, failures, errors;
    atomic_int reported;
};

struct conc_arg {
    struct conc *cc;
    int id;
};

static void __attribute__((format(printf, 2, 3)))
conc_report(struct conc *cc, const char *fmt, ...)
{
    va_list ap;

    if (atomic_fetch_add(&cc->reported, 1) >= 5) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A self-checking value: "%08zx:%08x:" (length, FNV-1a of the rest),
 * then printable bytes. */
static void
conc_value(char *p, size_t n, uint64_t seed)
{
    char hdr[40];

    pattern_text(p + 18, n - 18, seed);
    snprintf(hdr, sizeof(hdr), "%08zx:%08x:", n, fnv1a(p + 18, n - 18));
    memcpy(p, hdr, 18);
}

/* NULL when v is a value conc_value made, else what is wrong. */
static const char *
conc_check(const struct val *v)
{
    char hdr[40];

    if (v->n < 18) {
        return "shorter than its header";
    }
    snprintf(hdr, sizeof(hdr), "%08zx:%08x:", v->n,
             fnv1a(v->data + 18, v->n - 18));
    if (memcmp(hdr, v->data, 18) != 0) {
        return "header does not match length and checksum";
    }
    if (v->flags != (uint32_t)v->n) {
        return "flags are not the length";
    }
    return NULL;
}

static void *
conc_main(void *p)
{
    struct conc_arg *a = p;
    struct conc *cc = a->cc;
    struct harness_conn *c = harness_conn_open(cc->port[a->id % 2], TMO);
    uint64_t rnd = mix64((uint64_t)a->id + 1), seq = 0;
    char *buf = malloc(CONC_MAX);

    if (c == NULL || buf == NULL) {
        atomic_fetch_add(&cc->errors, 1);
        conc_report(cc, "thread %d: no connection", a->id);
        goto out;
    }
    while (harness_now_ms() < cc->until) {
        char key[32], head[96], err[256];
        unsigned k;
        struct val v;
        int r;

        rnd = mix64(rnd);
        k = (unsigned)(rnd % CONC_KEYS);
        snprintf(key, sizeof(key), "conc:%u", k);
        if ((rnd >> 8) % 2 == 0) {
            size_t n = CONC_MIN + (size_t)((rnd >> 16) % (CONC_MAX - CONC_MIN));

            conc_value(buf, n, ((uint64_t)a->id << 32) | seq++);
            if ((rnd >> 40) % 2 == 0) {
                snprintf(head, sizeof(head), "set %s %zu 0 %zu", key, n, n);
            } else {
                snprintf(head, sizeof(head), "ms %s %zu F%zu", key, n, n);
            }
            if (send_storage(c, head, buf, n) != 0 ||
                !harness_expect(c, head[0] == 's' ? "STORED\r\n" : "HD\r\n")) {
                atomic_fetch_add(&cc->errors, 1);
                conc_report(cc, "thread %d: %s: no STORED/HD", a->id, head);
                break;
            }
            atomic_fetch_add(&cc->sets, 1);
            continue;
        }
        if ((rnd >> 40) % 2 == 0) {
            snprintf(head, sizeof(head), "get %s\r\n", key);
            r = harness_sends(c, head) == 0
                    ? text_read(c, key, &v, err, sizeof(err))
                    : -1;
        } else {
            snprintf(head, sizeof(head), "mg %s f v\r\n", key);
            r = harness_sends(c, head) == 0 ? meta_read(c, &v, err, sizeof(err))
                                            : -1;
        }
        if (r < 0) {
            atomic_fetch_add(&cc->errors, 1);
            conc_report(cc, "thread %d: %s: %s", a->id, head, err);
            break;
        }
        atomic_fetch_add(&cc->reads, 1);
        if (r == 0) {
            atomic_fetch_add(&cc->misses, 1);
            continue;
        }
        atomic_fetch_add(&cc->hits, 1);
        {
            const char *why = conc_check(&v);

            if (why != NULL) {
                atomic_fetch_add(&cc->failures, 1);
                conc_report(cc,
                            "thread %d: %s: %zu bytes flags %" PRIu32 ": %s",
                            a->id, key, v.n, v.flags, why);
                harness_dump("value", v.data, v.n, 64);
            }
        }
        val_free(&v);
    }
out:
    free(buf);
    harness_conn_close(c);
    return NULL;
}

/* CONC_THREADS threads on t's riven (port2 0) or half of them on a
 * second riven at port2, for INTEG_CHUNKED_CONC_MS or ms_default. */
static void
conc_run(struct ck *t, int port2, long ms_default, const char *what)
{
    const char *env = getenv("INTEG_CHUNKED_CONC_MS");
    long ms = env != NULL ? strtol(env, NULL, 10) : ms_default;
    pthread_t th[CONC_THREADS];
    struct conc_arg args[CONC_THREADS];
    struct conc cc;
    struct ctrs base, now;
    int64_t t0;

    memset(&cc, 0, sizeof(cc));
    cc.port[0] = t->port;
    cc.port[1] = port2 > 0 ? port2 : t->port;
    ctrs_read(t, &base);
    t0 = harness_now_ms();
    cc.until = t0 + (ms > 0 ? ms : ms_default);
    for (int i = 0; i < CONC_THREADS; i++) {
        args[i].cc = &cc;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &args[i]), 0);
    }
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    ctrs_read(t, &now);
    printf("integ_chunked: %s: %d threads, %lld ms: %llu sets, %llu reads "
           "(%llu hits, %llu misses), %llu failed checks, %llu errors; "
           "first riven's chunk misses +%lld, token mismatches +%lld\n",
           what, CONC_THREADS, (long long)(harness_now_ms() - t0),
           (unsigned long long)cc.sets, (unsigned long long)cc.reads,
           (unsigned long long)cc.hits, (unsigned long long)cc.misses,
           (unsigned long long)cc.failures, (unsigned long long)cc.errors,
           now.s[C_CMISS] - base.s[C_CMISS], now.s[C_TOKEN] - base.s[C_TOKEN]);
    assert_int_equal(cc.errors, 0);
    assert_int_equal(cc.failures, 0);
    assert_true(cc.hits > 0);
    assert_true(cc.sets > 0);
}

static void
test_concurrent(void **state)
{
    struct ck *t = *state;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    conc_run(t, 0, CONC_MS, "one riven");
}

/* Two rivens on one memcached: their key locks do not see each other, so
 * writes of a key interleave on memcached and only the token keeps a
 * read whole: a loser's value is a miss, never mixed bytes. */
static void
test_concurrent_two(void **state)
{
    struct ck *t = *state;
    struct harness_proc rv2 = {.pid = -1};
    const char *const extra[] = {"--chunk-size", "256", NULL};

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    assert_int_equal(harness_riven_start(&rv2, t->mc.port, NULL, 0, extra), 0);
    conc_run(t, rv2.port, CONC_TWO_MS, "two rivens");
    assert_true(harness_proc_alive(&rv2));
    harness_proc_stop(&rv2, 5000);
}

/* ---- 3. damage ----------------------------------------------------------- */

/* Overwrite item key on memcached with n bytes of p (flags 0, no TTL). */
static void
direct_set(struct harness_conn *d, const char *key, const char *p, size_t n)
{
    char head[300];

    snprintf(head, sizeof(head), "set %s 0 0 %zu", key, n);
    assert_int_equal(send_storage(d, head, p, n), 0);
    assert_true(harness_expect(d, "STORED\r\n"));
}

/* Read key through the three protocols: each a miss; the counters rise
 * by 3 in ctr (and nothing else of the two). */
static void
miss_counted(struct ck *t, const char *key, int ctr)
{
    struct ctrs base;
    long long delta[C_N] = {-1, -1, -1, -1, -1, -1, -1};
    char req[300];

    ctrs_read(t, &base);
    snprintf(req, sizeof(req), "get %s\r\n", key);
    rt(t->c, req, "END\r\n");
    snprintf(req, sizeof(req), "mg %s v\r\n", key);
    rt(t->c, req, "EN\r\n");
    want_miss(t, P_BIN, key);
    delta[C_CMISS] = ctr == C_CMISS ? 3 : 0;
    delta[C_TOKEN] = ctr == C_TOKEN ? 3 : 0;
    ctrs_expect(t, &base, delta);
}

static void
test_damage(void **state)
{
    struct ck *t = *state;
    size_t n = 2 * CS + 188; /* 3 chunks, the last one short */
    char *a = xmalloc(n), *b = xmalloc(n), k1[CHUNK_KEY_LEN + 1];
    struct item saved;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    pattern(a, n, 1);
    pattern(b, n, 2);

    /* a chunk deleted */
    proto_set(t, P_TEXT, "dmg:a", 5, 0, a, n);
    want_value(t, P_TEXT, "dmg:a", a, n, 5);
    ckey_s("dmg:a", 1, k1);
    {
        char req[64];

        snprintf(req, sizeof(req), "delete %s\r\n", k1);
        rt(t->d, req, "DELETED\r\n");
    }
    miss_counted(t, "dmg:a", C_CMISS);
    proto_set(t, P_TEXT, "dmg:a", 5, 0, a, n); /* a set heals it */
    want_value(t, P_TEXT, "dmg:a", a, n, 5);

    /* chunk 1 of the key's previous write */
    proto_set(t, P_TEXT, "dmg:b", 6, 0, a, n);
    ckey_s("dmg:b", 1, k1);
    direct_item(t->d, k1, &saved);
    assert_true(saved.hit);
    proto_set(t, P_TEXT, "dmg:b", 6, 0, b, n);
    want_value(t, P_TEXT, "dmg:b", b, n, 6);
    direct_set(t->d, k1, saved.data, saved.n);
    item_free(&saved);
    miss_counted(t, "dmg:b", C_TOKEN);

    /* chunk 2 of another key (same length, same index) */
    proto_set(t, P_TEXT, "dmg:c", 7, 0, a, n);
    proto_set(t, P_TEXT, "dmg:d", 7, 0, a, n); /* same bytes, not key */
    ckey_s("dmg:d", 2, k1);
    direct_item(t->d, k1, &saved);
    assert_true(saved.hit);
    ckey_s("dmg:c", 2, k1);
    direct_set(t->d, k1, saved.data, saved.n);
    item_free(&saved);
    miss_counted(t, "dmg:c", C_TOKEN);
    want_value(t, P_TEXT, "dmg:d", a, n, 7);

    /* right-sized garbage as chunk 0 */
    proto_set(t, P_TEXT, "dmg:e", 8, 0, a, n);
    {
        char junk[CHUNK_VALUE_LEN(CS)];

        memset(junk, 'x', sizeof(junk));
        ckey_s("dmg:e", 0, k1);
        direct_set(t->d, k1, junk, sizeof(junk));
    }
    miss_counted(t, "dmg:e", C_TOKEN);

    /* a truncated chunk (10 bytes): a miss, counted once as one of the
     * two */
    proto_set(t, P_TEXT, "dmg:f", 9, 0, a, n);
    ckey_s("dmg:f", 2, k1);
    direct_set(t->d, k1, "0123456789", 10);
    {
        struct ctrs base, now;

        int64_t deadline = harness_now_ms() + WAIT_MS;
        long long moved = 0;

        ctrs_read(t, &base);
        rt(t->c, "get dmg:f\r\n", "END\r\n");
        while (moved < 1 && harness_now_ms() < deadline) {
            poll(NULL, 0, 20);
            ctrs_read(t, &now);
            moved = now.s[C_CMISS] + now.s[C_TOKEN] - base.s[C_CMISS] -
                    base.s[C_TOKEN];
        }
        poll(NULL, 0, 50);
        ctrs_read(t, &now);
        moved =
            now.s[C_CMISS] + now.s[C_TOKEN] - base.s[C_CMISS] - base.s[C_TOKEN];
        if (moved != 1) {
            fail_msg("a 10-byte chunk: chunk misses + token mismatches "
                     "moved by %lld, expected 1",
                     moved);
        }
    }

    /* the metadata deleted: a miss, no chunk counted */
    proto_set(t, P_TEXT, "dmg:g", 9, 0, a, n);
    rt(t->d, "delete dmg:g\r\n", "DELETED\r\n");
    miss_counted(t, "dmg:g", -1);

    /* a multi-key get leaves the damaged keys out, in order */
    proto_set(t, P_TEXT, "dmg:h", 3, 0, a, 10);
    {
        size_t len = 0;
        char *line, *d = NULL;

        assert_int_equal(harness_sends(t->c, "get dmg:a dmg:b dmg:h dmg:e\r\n"),
                         0);
        line = harness_recv_until(t->c, "\r\n", 2, TMO, &len);
        assert_non_null(line);
        assert_string_equal(line, "VALUE dmg:a 5 700\r\n"); /* healed */
        free(line);
        assert_int_equal(read_data(t->c, n, &d), 0);
        same_bytes("multi-get dmg:a", a, n, d, n);
        free(d);
        assert_true(harness_expect(t->c, "VALUE dmg:h 3 10\r\n"));
        assert_int_equal(read_data(t->c, 10, &d), 0);
        same_bytes("multi-get dmg:h", a, 10, d, 10);
        free(d);
        assert_true(harness_expect(t->c, "END\r\n"));
    }
    free(a);
    free(b);
}

/* ---- 4. cas, add, replace, refused --------------------------------------- */

/* The metadata item of key, raw, for before/after comparisons. */
static void
direct_raw(struct harness_conn *d, const char *key, struct item *it)
{
    direct_item(d, key, it);
    assert_true(it->hit);
}

static void
same_item(const char *key, const struct item *a, const struct item *b)
{
    if (a->hit != b->hit || a->n != b->n || a->cas != b->cas ||
        a->flags != b->flags || memcmp(a->data, b->data, a->n) != 0) {
        fail_msg("%s changed on memcached (CAS %" PRIu64 " -> %" PRIu64 ")",
                 key, a->cas, b->cas);
    }
}

static void
test_cas(void **state)
{
    struct ck *t = *state;
    size_t n1 = 600, n2 = 700;
    char *v1 = xmalloc(n1), *v2 = xmalloc(n2), head[128];
    struct val v;
    struct item m0, m1;
    struct chunk_meta meta;
    struct ctrs base;
    long long delta[C_N] = {-1, -1, -1, -1, -1, -1, -1};
    uint64_t cas;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    pattern(v1, n1, 11);
    pattern(v2, n2, 12);
    proto_set(t, P_TEXT, "cas:k", 7, 0, v1, n1);

    /* gets: the metadata item's CAS */
    assert_int_equal(text_get(t->c, "gets cas:k", "cas:k", &v), 1);
    same_bytes("gets cas:k", v1, n1, v.data, v.n);
    assert_int_equal(v.flags, 7);
    cas = v.cas;
    val_free(&v);
    direct_meta(t->d, "cas:k", &meta, &m0);
    if (m0.cas != cas) {
        fail_msg("gets CAS %" PRIu64 ", metadata item's %" PRIu64, cas, m0.cas);
    }
    item_free(&m0);

    /* cas with it: stored; stale: EXISTS; missing: NOT_FOUND */
    snprintf(head, sizeof(head), "cas cas:k 9 0 %zu %" PRIu64, n2, cas);
    assert_int_equal(send_storage(t->c, head, v2, n2), 0);
    assert_true(harness_expect(t->c, "STORED\r\n"));
    want_value(t, P_TEXT, "cas:k", v2, n2, 9);
    check_layout(t->d, "cas:k", 5, v2, n2, 9, 0, CS, true);
    snprintf(head, sizeof(head), "cas cas:k 9 0 %zu %" PRIu64, n1, cas);
    assert_int_equal(send_storage(t->c, head, v1, n1), 0); /* cas stale */
    assert_true(harness_expect(t->c, "EXISTS\r\n"));
    want_value(t, P_TEXT, "cas:k", v2, n2, 9);
    rt(t->c, "cas cas:none 0 0 5 1\r\nhello\r\n", "NOT_FOUND\r\n");

    /* meta and binary CAS */
    assert_int_equal(text_get(t->c, "gets cas:k", "cas:k", &v), 1);
    cas = v.cas;
    val_free(&v);
    snprintf(head, sizeof(head), "ms cas:k %zu C%" PRIu64 " F10", n1, cas);
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "HD\r\n"));
    assert_int_equal(send_storage(t->c, head, v2, n1), 0);
    assert_true(harness_expect(t->c, "EX\r\n"));
    want_value(t, P_META, "cas:k", v1, n1, 10);
    assert_int_equal(bin_get(t->b, "cas:k", &v), 1);
    cas = v.cas;
    val_free(&v);
    assert_int_equal(bin_set(t->b, OP_SET, "cas:k", 11, 0, v2, n2, cas + 1),
                     BS_EXISTS);
    assert_int_equal(bin_set(t->b, OP_SET, "cas:k", 11, 0, v2, n2, cas), BS_OK);
    want_value(t, P_BIN, "cas:k", v2, n2, 11);

    /* add on an existing key, replace on a missing one: not stored */
    snprintf(head, sizeof(head), "add cas:k 0 0 %zu", n1);
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "NOT_STORED\r\n"));
    want_value(t, P_TEXT, "cas:k", v2, n2, 11);
    rt(t->c, "replace cas:none 0 0 2\r\nhi\r\n", "NOT_STORED\r\n");
    rt(t->c, "get cas:none\r\n", "END\r\n");
    snprintf(head, sizeof(head), "add cas:new 3 0 %zu", n1);
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "STORED\r\n"));
    want_value(t, P_TEXT, "cas:new", v1, n1, 3);
    snprintf(head, sizeof(head), "replace cas:new 4 0 %zu", n2);
    assert_int_equal(send_storage(t->c, head, v2, n2), 0);
    assert_true(harness_expect(t->c, "STORED\r\n"));
    want_value(t, P_TEXT, "cas:new", v2, n2, 4);
    snprintf(head, sizeof(head), "ms cas:k %zu ME", n1); /* add mode */
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "NS\r\n"));
    snprintf(head, sizeof(head), "ms cas:none %zu MR", n1); /* replace */
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "NS\r\n"));
    snprintf(head, sizeof(head), "ms cas:k %zu MS F12", n1); /* set */
    assert_int_equal(send_storage(t->c, head, v1, n1), 0);
    assert_true(harness_expect(t->c, "HD\r\n"));
    want_value(t, P_TEXT, "cas:k", v1, n1, 12);
    assert_int_equal(bin_set(t->b, OP_ADD, "cas:k", 0, 0, v2, n2, 0),
                     BS_EXISTS);
    assert_int_equal(bin_set(t->b, OP_REPLACE, "cas:none", 0, 0, v2, n2, 0),
                     BS_NOT_FOUND);
    want_value(t, P_TEXT, "cas:k", v1, n1, 12);

    /* refused: the exact error, nothing changed on memcached */
    direct_raw(t->d, "cas:k", &m0);
    ctrs_read(t, &base);
    rt(t->c, "incr cas:k 1\r\n", REFUSED);
    rt(t->c, "decr cas:k 1\r\n", REFUSED);
    rt(t->c, "append cas:k 0 0 3\r\nabc\r\n", REFUSED);
    rt(t->c, "prepend cas:k 0 0 3\r\nabc\r\n", REFUSED);
    rt(t->c, "ma cas:k\r\n", REFUSED);
    rt(t->c, "ms cas:k 3 MA\r\nabc\r\n", REFUSED);
    rt(t->c, "ms cas:k 3 MP\r\nabc\r\n", REFUSED);
    rt(t->c, "ms cas:k 3 I\r\nabc\r\n", REFUSED);
    rt(t->c, "mg cas:k N30 v\r\n", REFUSED);
    /* E is no mg flag in memcached 1.6.18: its parser's answer, not
     * refused by the chunked pool */
    rt(t->c, "mg cas:k E5 v\r\n", "CLIENT_ERROR invalid flag\r\n");
    rt(t->c, "mg cas:k R30 v\r\n", REFUSED);
    rt(t->c, "ms cas:k 3 N30\r\nabc\r\n", REFUSED);
    {
        uint8_t ext[20] = {0};
        static const uint8_t ops[] = {OP_INCR, OP_DECR, OP_APPEND, OP_PREPEND};

        for (size_t i = 0; i < sizeof(ops); i++) {
            struct bres r;
            bool arith = ops[i] == OP_INCR || ops[i] == OP_DECR;

            ext[7] = 1;
            bin_rt(t->b, ops[i], "cas:k", arith ? ext : NULL, arith ? 20 : 0,
                   arith ? NULL : "abc", arith ? 0 : 3, 0, &r);
            if (r.status != BS_NOT_SUPPORTED || r.blen != strlen(REFUSED_MSG) ||
                memcmp(r.body, REFUSED_MSG, r.blen) != 0) {
                harness_dump("body", r.body, r.blen, 200);
                fail_msg("binary op 0x%02x: status 0x%04x, expected 0x%04x "
                         "\"%s\"",
                         ops[i], r.status, BS_NOT_SUPPORTED, REFUSED_MSG);
            }
            free(r.body);
        }
    }
    want_value(t, P_TEXT, "cas:k", v1, n1, 12);
    direct_raw(t->d, "cas:k", &m1);
    same_item("cas:k", &m0, &m1);
    item_free(&m0);
    item_free(&m1);
    delta[C_REFUSED] = 15;
    delta[C_SET] = 0;
    delta[C_DEL] = 0;
    delta[C_TOUCH] = 0;
    ctrs_expect(t, &base, delta);

    /* h and l go to the metadata item (fetched before, just now) */
    {
        char want[64], *d = NULL, *line;
        size_t len = 0;

        snprintf(want, sizeof(want), "VA %zu h1 l", n1);
        assert_int_equal(harness_sends(t->c, "mg cas:k h l v\r\n"), 0);
        line = harness_recv_until(t->c, "\r\n", 2, TMO, &len);
        assert_non_null(line);
        /* l: 0, or 1 if memcached's clock ticked meanwhile */
        if (strncmp(line, want, strlen(want)) != 0 ||
            strspn(line + strlen(want), "01") != 1 ||
            strcmp(line + strlen(want) + 1, "\r\n") != 0) {
            fail_msg("mg cas:k h l v: %s, expected %s0 (or 1)", line, want);
        }
        free(line);
        assert_int_equal(read_data(t->c, n1, &d), 0);
        same_bytes("mg h l", v1, n1, d, n1);
        free(d);
    }

    /* delete: the metadata item goes, the chunks stay */
    rt(t->c, "delete cas:k\r\n", "DELETED\r\n");
    rt(t->c, "delete cas:k\r\n", "NOT_FOUND\r\n");
    rt(t->c, "get cas:k\r\n", "END\r\n");
    direct_item(t->d, "cas:k", &m0);
    assert_false(m0.hit);
    {
        char k0[CHUNK_KEY_LEN + 1];

        ckey_s("cas:k", 0, k0);
        direct_item(t->d, k0, &m0);
        assert_true(m0.hit);
        item_free(&m0);
    }
    rt(t->c, "md cas:new q\r\nmn\r\n", "MN\r\n");
    rt(t->c, "mg cas:new v\r\n", "EN\r\n");
    free(v1);
    free(v2);
}

/* ---- 5. touch ------------------------------------------------------------ */

/* The TTL of key's metadata and of each of its chunks is ttl (within a
 * second). */
static void
ttl_everywhere(struct ck *t, const char *key, long ttl)
{
    struct chunk_meta m;
    struct item it;
    char k[CHUNK_KEY_LEN + 1];

    direct_meta(t->d, key, &m, &it);
    if (!ttl_in(it.ttl, ttl)) {
        fail_msg("%s: metadata TTL %ld, expected %ld..%ld", key, it.ttl,
                 ttl - 1, ttl);
    }
    item_free(&it);
    assert_true(m.nchunks > 0);
    for (uint32_t i = 0; i < m.nchunks; i++) {
        ckey_s(key, i, k);
        direct_item(t->d, k, &it);
        if (!it.hit || !ttl_in(it.ttl, ttl)) {
            fail_msg("%s: chunk %" PRIu32 " %s TTL %ld, expected %ld..%ld", key,
                     i, it.hit ? "has" : "absent,", it.ttl, ttl - 1, ttl);
        }
        item_free(&it);
    }
}

static void
test_touch(void **state)
{
    struct ck *t = *state;
    size_t n = 700;
    char *a = xmalloc(n), head[128];
    struct val v;
    struct item it;
    struct chunk_meta m;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    pattern(a, n, 21);
    proto_set(t, P_TEXT, "tt:k", 13, 100, a, n);
    ttl_everywhere(t, "tt:k", 100);
    check_layout(t->d, "tt:k", 4, a, n, 13, 100, CS, true);

    rt(t->c, "touch tt:k 1000\r\n", "TOUCHED\r\n");
    ttl_everywhere(t, "tt:k", 1000);

    assert_int_equal(text_get(t->c, "gat 2000 tt:k", "tt:k", &v), 1);
    same_bytes("gat", a, n, v.data, v.n);
    assert_int_equal(v.flags, 13);
    val_free(&v);
    ttl_everywhere(t, "tt:k", 2000);

    assert_int_equal(text_get(t->c, "gats 3000 tt:k", "tt:k", &v), 1);
    same_bytes("gats", a, n, v.data, v.n);
    direct_meta(t->d, "tt:k", &m, &it);
    assert_int_equal(v.cas, it.cas);
    item_free(&it);
    val_free(&v);
    ttl_everywhere(t, "tt:k", 3000);

    snprintf(head, sizeof(head), "VA %zu f13 t4000\r\n", n);
    assert_int_equal(harness_sends(t->c, "mg tt:k T4000 v f t\r\n"), 0);
    assert_true(harness_expect(t->c, head));
    {
        char *d = NULL;

        assert_int_equal(read_data(t->c, n, &d), 0);
        same_bytes("mg T", a, n, d, n);
        free(d);
    }
    ttl_everywhere(t, "tt:k", 4000);
    rt(t->c, "mg tt:k T4500\r\n", "HD\r\n");
    ttl_everywhere(t, "tt:k", 4500);

    {
        uint8_t ext[4];
        uint32_t e = htonl(5000);
        struct bres r;

        memcpy(ext, &e, 4);
        bin_rt(t->b, OP_TOUCH, "tt:k", ext, 4, NULL, 0, 0, &r);
        assert_int_equal(r.status, BS_OK);
        free(r.body);
        ttl_everywhere(t, "tt:k", 5000);
        e = htonl(6000);
        memcpy(ext, &e, 4);
        bin_rt(t->b, OP_GAT, "tt:k", ext, 4, NULL, 0, 0, &r);
        assert_int_equal(r.status, BS_OK);
        assert_int_equal(r.elen, 4);
        same_bytes("binary gat", a, n, r.body + 4, r.blen - 4);
        free(r.body);
        ttl_everywhere(t, "tt:k", 6000);
        bin_rt(t->b, OP_TOUCH, "tt:none", ext, 4, NULL, 0, 0, &r);
        assert_int_equal(r.status, BS_NOT_FOUND);
        free(r.body);
    }
    rt(t->c, "touch tt:none 10\r\n", "NOT_FOUND\r\n");
    rt(t->c, "gat 10 tt:none\r\n", "END\r\n");
    /* back to no expiry */
    rt(t->c, "touch tt:k 0\r\n", "TOUCHED\r\n");
    check_layout(t->d, "tt:k", 4, a, n, 13, 0, CS, true);
    free(a);
}

/* ---- 6. foreign values --------------------------------------------------- */

static void
test_foreign(void **state)
{
    struct ck *t = *state;
    char meta48[CHUNK_META_LEN], k0[CHUNK_KEY_LEN + 1];
    struct item chunk;
    char *a = xmalloc(600);

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    rt(t->d, "set plain:k 0 0 5\r\nhello\r\n", "STORED\r\n");
    rt(t->c, "get plain:k\r\n", "END\r\n");
    rt(t->c, "gets plain:k\r\n", "END\r\n");
    rt(t->c, "mg plain:k v\r\n", "EN\r\n");
    want_miss(t, P_BIN, "plain:k");

    /* 48 bytes that are not metadata */
    memset(meta48, 'm', sizeof(meta48));
    direct_set(t->d, "plain:48", meta48, sizeof(meta48));
    rt(t->c, "get plain:48\r\n", "END\r\n");

    /* a chunk of a riven value, copied under a client key */
    pattern(a, 600, 31);
    proto_set(t, P_TEXT, "plain:src", 0, 0, a, 600);
    ckey_s("plain:src", 0, k0);
    direct_item(t->d, k0, &chunk);
    assert_true(chunk.hit);
    direct_set(t->d, "plain:chunk", chunk.data, chunk.n);
    item_free(&chunk);
    rt(t->c, "get plain:chunk\r\n", "END\r\n");

    /* the metadata of one key under another: its chunks are not there */
    direct_item(t->d, "plain:src", &chunk);
    direct_set(t->d, "plain:copy", chunk.data, chunk.n);
    item_free(&chunk);
    rt(t->c, "get plain:copy\r\n", "END\r\n");

    /* a set through riven takes the key over */
    proto_set(t, P_TEXT, "plain:k", 1, 0, a, 600);
    want_value(t, P_TEXT, "plain:k", a, 600, 1);
    check_layout(t->d, "plain:k", 7, a, 600, 1, 0, CS, true);
    free(a);
}

/* ---- 7. calcification ---------------------------------------------------- */

/* Pipelined sets of count values of size bytes, keys prefix:<i>: the
 * number STORED. */
static size_t
cal_set(struct harness_conn *c, const char *prefix, size_t count, size_t size)
{
    size_t per = size + 64, stored = 0;
    char *batch = xmalloc(CAL_BATCH * per);

    for (size_t i = 0; i < count; i += CAL_BATCH) {
        size_t m = count - i < CAL_BATCH ? count - i : CAL_BATCH, len = 0;

        for (size_t j = i; j < i + m; j++) {
            len += (size_t)snprintf(batch + len, per, "set %s:%zu 0 0 %zu\r\n",
                                    prefix, j, size);
            pattern_text(batch + len, size, j * 31 + size);
            memcpy(batch + len + size, "\r\n", 2);
            len += size + 2;
        }
        send_all(c, batch, len);
        for (size_t j = 0; j < m; j++) {
            size_t ln = 0;
            char *line = harness_recv_until(c, "\r\n", 2, 30000, &ln);

            assert_non_null(line);
            stored += strcmp(line, "STORED\r\n") == 0;
            free(line);
        }
    }
    free(batch);
    return stored;
}

/* Get the count values back, CAL_GET_KEYS a request: how many are there
 * with the right bytes. */
static size_t
cal_read(struct harness_conn *c, const char *prefix, size_t count, size_t size)
{
    char *req = xmalloc(CAL_GET_KEYS * 32 + 8), *want = xmalloc(size);
    size_t good = 0;

    for (size_t i = 0; i < count; i += CAL_GET_KEYS) {
        size_t m = count - i < CAL_GET_KEYS ? count - i : CAL_GET_KEYS, len;

        len = (size_t)sprintf(req, "get");
        for (size_t j = i; j < i + m; j++) {
            len += (size_t)sprintf(req + len, " %s:%zu", prefix, j);
        }
        memcpy(req + len, "\r\n", 3);
        assert_int_equal(harness_sends(c, req), 0);
        for (;;) {
            size_t ln = 0, n = 0, j = 0;
            char *line = harness_recv_until(c, "\r\n", 2, 30000, &ln), *d;
            char k[64];
            unsigned f;

            assert_non_null(line);
            if (strcmp(line, "END\r\n") == 0) {
                free(line);
                break;
            }
            assert_int_equal(sscanf(line, "VALUE %63s %u %zu", k, &f, &n), 3);
            free(line);
            assert_int_equal(read_data(c, n, &d), 0);
            j = strtoul(strrchr(k, ':') + 1, NULL, 10);
            pattern_text(want, size, j * 31 + size);
            good += n == size && memcmp(d, want, size) == 0;
            free(d);
        }
    }
    free(req);
    free(want);
    return good;
}

/* One round on port: small values, then big, then read the big: the
 * number readable. */
static size_t
cal_round(const char *who, int port, size_t nsmall)
{
    struct harness_conn *c = harness_conn_open(port, TMO);
    int64_t t0 = harness_now_ms();
    size_t s, b, good;

    assert_non_null(c);
    s = cal_set(c, "small", nsmall, CAL_SMALL_SZ);
    b = cal_set(c, "big", CAL_BIG, CAL_BIG_SZ);
    good = cal_read(c, "big", CAL_BIG, CAL_BIG_SZ);
    printf("integ_chunked: calcify %s: small %zu (%zu stored) big %d "
           "(%zu stored) readable %zu (%.1f%%), %lld ms\n",
           who, nsmall, s, CAL_BIG, b, good, 100.0 * (double)good / CAL_BIG,
           (long long)(harness_now_ms() - t0));
    harness_conn_close(c);
    return good;
}

static void
test_calcify(void **state)
{
    struct ck *t = *state;
    const char *env = getenv("INTEG_CHUNKED_CALCIFY_SMALL");
    size_t nsmall = env != NULL ? strtoul(env, NULL, 10) : CAL_SMALL;
    struct harness_proc plain = {.pid = -1};
    size_t chunked, direct;

    NEED_RIVEN();
    mc_start(t, NULL); /* -m 64 */
    riven_with(t,
               "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
               "  chunked: true\n",
               t->mc.port);
    chunked = cal_round("riven chunked (1068)", t->port, nsmall);
    assert_int_equal(harness_memcached_start(&plain, 0, NULL), 0);
    direct = cal_round("memcached directly", plain.port, nsmall);
    harness_proc_stop(&plain, 5000);
    assert_true(chunked * 100 >= 95 * CAL_BIG);
    assert_true(direct * 100 < 20 * CAL_BIG);
}

/* ---- 8. meta flags, against memcached ------------------------------------ */

/* Send req (which ends with mn) to c; everything up to and including
 * the "MN\r\n" (no value here holds those bytes), malloc'd. */
static char *
meta_exchange(struct harness_conn *c, const char *req)
{
    size_t n = 0;
    char *all;

    assert_int_equal(harness_sends(c, req), 0);
    all = harness_recv_until(c, "MN\r\n", 4, TMO, &n);
    assert_non_null(all);
    return all;
}

/* Replace " c<digits>" by " c#" in place; the CASes, in order, in cas. */
static size_t
cas_out(char *s, uint64_t *cas, size_t max)
{
    size_t n = 0;
    char *p = s, *w = s;

    while (*p != '\0') {
        if (p[0] == ' ' && p[1] == 'c' && p[2] >= '0' && p[2] <= '9') {
            char *end;
            uint64_t v = strtoull(p + 2, &end, 10);

            if (n < max) {
                cas[n] = v;
            }
            n++;
            memcpy(w, " c#", 3);
            w += 3;
            p = end;
            continue;
        }
        *w++ = *p++;
    }
    *w = '\0';
    return n;
}

static void
test_meta(void **state)
{
    struct ck *t = *state;
    struct harness_proc ref = {.pid = -1};
    struct harness_conn *r;
    /* each line a request (values after ms), and an mn to close */
    static const char *const steps[] = {
        "ms Zm9v 3 b T0 F5\r\nbar\r\nmn\r\n",
        "mg Zm9v b k v O123 f c\r\nmn\r\n",
        "mg Zm9v k b v O123 f c s t\r\nmn\r\n",
        "mg foo v\r\nmg foo s v q\r\nmn\r\n",
        "mg bm9wZQ== b v q k O9\r\nmn\r\n",
        "mg nope v q\r\nmg nope v\r\nmg nope v k O5\r\nmn\r\n",
        "ms foo 2 q\r\nhi\r\nmn\r\n",
        "mg foo v f k\r\nmg foo\r\nmg foo k q\r\nmn\r\n",
        "ms big 600 F7 T0 k O1\r\n%PATTERN600%\r\nmn\r\n",
        "mg big s f v\r\nmn\r\n",
        "ms foo 3 c\r\nabc\r\nmn\r\n",
        "md foo q\r\nmd foo q\r\nmn\r\n",
        "md foo\r\nmg foo v\r\nmn\r\n",
        "ms Zm9v 5 b MS T0 q\r\nhello\r\nmg Zm9v b v\r\nmn\r\n",
    };
    char *val600 = xmalloc(600);

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    assert_int_equal(harness_memcached_start(&ref, 0, NULL), 0);
    r = harness_conn_open(ref.port, TMO);
    assert_non_null(r);
    pattern_text(val600, 600, 41);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char req[1024], *pat = strstr(steps[i], "%PATTERN600%");
        char *got, *want;
        uint64_t gc[8], wc[8];
        size_t ng, nw;

        if (pat != NULL) {
            size_t pre = (size_t)(pat - steps[i]);

            memcpy(req, steps[i], pre);
            memcpy(req + pre, val600, 600);
            strcpy(req + pre + 600, pat + strlen("%PATTERN600%"));
        } else {
            snprintf(req, sizeof(req), "%s", steps[i]);
        }
        want = meta_exchange(r, req);
        got = meta_exchange(t->c, req);
        nw = cas_out(want, wc, 8);
        ng = cas_out(got, gc, 8);
        if (strcmp(want, got) != 0 || nw != ng) {
            harness_diff("memcached", want, strlen(want), "riven chunked", got,
                         strlen(got));
            fail_msg("step %zu: riven chunked answers otherwise than "
                     "memcached",
                     i);
        }
        /* a CAS riven returns is the metadata item's */
        if (ng > 0 && strstr(req, "Zm9v") != NULL) {
            struct item it;
            struct chunk_meta m;

            direct_meta(t->d, "foo", &m, &it);
            for (size_t j = 0; j < ng && j < 8; j++) {
                assert_int_equal(gc[j], it.cas);
            }
            item_free(&it);
        }
        free(want);
        free(got);
    }
    /* the base64 key is stored decoded: chunks of "foo" */
    {
        char hello[5] = {'h', 'e', 'l', 'l', 'o'};

        check_layout(t->d, "foo", 3, hello, 5, 0, 0, CS, true);
        rt(t->c, "get foo\r\n", "VALUE foo 0 5\r\nhello\r\nEND\r\n");
    }
    /* me goes to the metadata item: what memcached says of it */
    {
        size_t ln = 0, dn = 0;
        char *got, *want;

        assert_int_equal(harness_sends(t->c, "me foo\r\n"), 0);
        got = harness_recv_until(t->c, "\r\n", 2, TMO, &ln);
        assert_int_equal(harness_sends(t->d, "me foo\r\n"), 0);
        want = harness_recv_until(t->d, "\r\n", 2, TMO, &dn);
        assert_non_null(got);
        assert_non_null(want);
        assert_memory_equal(want, "ME ", 3);
        assert_string_equal(got, want);
        free(got);
        free(want);
    }
    harness_conn_close(r);
    harness_proc_stop(&ref, 5000);
    free(val600);
}

/* ---- 9. binary quiet variants, pass-through commands --------------------- */

static void
test_binary_quiet(void **state)
{
    struct ck *t = *state;
    size_t n = 300;
    char *a = xmalloc(n);
    uint8_t ext[8], tx[4];
    uint32_t e = htonl(500);
    struct bres r;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    pattern(a, n, 51);
    set_extras(ext, 77, 0);
    memcpy(tx, &e, 4);

    /* setq: silent; getq miss: silent; getkq hit: key and value; noop */
    assert_int_equal(bin_send(t->b, OP_SETQ, "bq:a", ext, 8, a, n, 1, 0), 0);
    assert_int_equal(bin_send(t->b, OP_GETQ, "bq:none", NULL, 0, NULL, 0, 2, 0),
                     0);
    assert_int_equal(bin_send(t->b, OP_GETKQ, "bq:a", NULL, 0, NULL, 0, 3, 0),
                     0);
    assert_int_equal(bin_send(t->b, OP_GETK, "bq:a", NULL, 0, NULL, 0, 4, 0),
                     0);
    assert_int_equal(bin_send(t->b, OP_GATKQ, "bq:a", tx, 4, NULL, 0, 5, 0), 0);
    assert_int_equal(bin_send(t->b, OP_NOOP, NULL, NULL, 0, NULL, 0, 6, 0), 0);
    for (uint32_t want = 3; want <= 6; want++) {
        assert_int_equal(bin_recv(t->b, &r), 0);
        if (r.opaque != want) {
            fail_msg("binary reply opaque %" PRIu32 " (op 0x%02x), expected "
                     "%" PRIu32,
                     r.opaque, r.op, want);
        }
        if (want < 6) {
            uint32_t f;

            assert_int_equal(r.status, BS_OK);
            assert_int_equal(r.elen, 4);
            assert_int_equal(r.klen, 4);
            memcpy(&f, r.body, 4);
            assert_int_equal(ntohl(f), 77);
            assert_memory_equal(r.body + 4, "bq:a", 4);
            same_bytes("getk", a, n, r.body + 8, r.blen - 8);
        }
        free(r.body);
    }
    ttl_everywhere(t, "bq:a", 500);

    /* deleteq: silent, then a miss */
    assert_int_equal(bin_send(t->b, OP_DELETEQ, "bq:a", NULL, 0, NULL, 0, 7, 0),
                     0);
    assert_int_equal(bin_send(t->b, OP_NOOP, NULL, NULL, 0, NULL, 0, 8, 0), 0);
    assert_int_equal(bin_recv(t->b, &r), 0);
    assert_int_equal(r.opaque, 8);
    free(r.body);
    want_miss(t, P_BIN, "bq:a");

    /* version, stats, flush_all pass through */
    bin_rt(t->b, OP_VERSION, NULL, NULL, 0, NULL, 0, 0, &r);
    assert_int_equal(r.status, BS_OK);
    free(r.body);
    {
        size_t len = 0;
        char *s;

        assert_int_equal(harness_sends(t->c, "version\r\n"), 0);
        s = harness_recv_until(t->c, "\r\n", 2, TMO, &len);
        assert_non_null(s);
        assert_memory_equal(s, "VERSION ", 8);
        free(s);
        assert_int_equal(harness_sends(t->c, "stats\r\n"), 0);
        s = harness_recv_until(t->c, "END\r\n", 5, TMO, &len);
        assert_non_null(s);
        assert_memory_equal(s, "STAT pid ", 9);
        free(s);
    }
    proto_set(t, P_TEXT, "bq:b", 0, 0, a, n);
    rt(t->c, "flush_all\r\n", "OK\r\n");
    rt(t->c, "get bq:b\r\n", "END\r\n");
    proto_set(t, P_BIN, "bq:c", 0, 0, a, n);
    bin_rt(t->b, OP_FLUSH, NULL, NULL, 0, NULL, 0, 0, &r);
    assert_int_equal(r.status, BS_OK);
    free(r.body);
    want_miss(t, P_BIN, "bq:c");
    /* noreply */
    assert_int_equal(send_storage(t->c, "set bq:d 5 0 300 noreply", a, n), 0);
    want_value(t, P_TEXT, "bq:d", a, n, 5);
    rt(t->c, "delete bq:d noreply\r\nget bq:d\r\n", "END\r\n");
    free(a);
}

/* ---- 10. per-op counters ------------------------------------------------- */

static void
test_counters(void **state)
{
    struct ck *t = *state;
    char *a = xmalloc(600);
    struct ctrs base;
    long long delta[C_N] = {0, 0, 0, 0, 0, 0, 0};
    struct val v;

    NEED_RIVEN();
    ck_start(t, NULL, CS);
    pattern(a, 600, 61);
    ctrs_read(t, &base);
    for (int i = 0; i < C_N; i++) {
        if (base.s[i] < 0 || base.p[i] < 0) {
            fail_msg("%s absent from stats proxy (%lld) or %s from /metrics "
                     "(%lld)",
                     ctr_names[i].stat, base.s[i], ctr_names[i].prom,
                     base.p[i]);
        }
    }
    proto_set(t, P_TEXT, "cn:a", 0, 0, a, 600);
    proto_set(t, P_META, "cn:b", 0, 0, a, 600);
    proto_set(t, P_BIN, "cn:c", 0, 0, a, 600);
    delta[C_SET] = 3;
    ctrs_expect(t, &base, delta);
    for (int p = 0; p < P_N; p++) {
        want_value(t, (enum proto)p, "cn:a", a, 600, 0);
    }
    assert_int_equal(text_get(t->c, "gets cn:b", "cn:b", &v), 1);
    val_free(&v);
    delta[C_GET] = 4;
    ctrs_expect(t, &base, delta);
    rt(t->c, "touch cn:a 100\r\n", "TOUCHED\r\n");
    delta[C_TOUCH] = 1;
    ctrs_expect(t, &base, delta);
    rt(t->c, "delete cn:b\r\n", "DELETED\r\n");
    delta[C_DEL] = 1;
    ctrs_expect(t, &base, delta);
    rt(t->c, "incr cn:a 1\r\n", REFUSED);
    rt(t->c, "append cn:a 0 0 1\r\nx\r\n", REFUSED);
    delta[C_REFUSED] = 2;
    ctrs_expect(t, &base, delta);
    free(a);
}

/* ---- 11. config forms ---------------------------------------------------- */

/* Set a 700-byte value through t->c and check chunk 0 on memcached d:
 * CHUNK_VALUE_LEN(cs) bytes, or absent (and the value plain) when cs is
 * 0. */
static void
stored_as(struct ck *t, struct harness_conn *d, const char *key, uint32_t cs)
{
    char *a = xmalloc(700), k0[CHUNK_KEY_LEN + 1];
    struct item it;

    pattern(a, 700, 71);
    proto_set(t, P_TEXT, key, 3, 0, a, 700);
    want_value(t, P_TEXT, key, a, 700, 3);
    if (cs > 0) {
        check_layout(d, key, strlen(key), a, 700, 3, 0, cs, true);
    } else {
        ckey_s(key, 0, k0);
        direct_item(d, k0, &it);
        assert_false(it.hit);
        direct_item(d, key, &it);
        assert_true(it.hit && it.n == 700 && it.flags == 3);
        same_bytes("plain value", a, 700, it.data, it.n);
        item_free(&it);
    }
    free(a);
}

static void
riven_cli(struct ck *t, const char *const *extra)
{
    harness_conn_close(t->c);
    harness_conn_close(t->b);
    t->c = t->b = NULL;
    harness_proc_stop(&t->rv, 5000);
    if (harness_riven_start(&t->rv, t->mc.port, NULL, 0, extra) != 0) {
        fail_msg("riven %s %s %s refused (not on main yet?)", extra[0],
                 extra[1] != NULL ? extra[1] : "",
                 extra[1] != NULL && extra[2] != NULL ? extra[2] : "");
    }
    t->port = t->rv.port;
    t->c = harness_conn_open(t->port, TMO);
    t->b = harness_conn_open(t->port, TMO);
    assert_non_null(t->c);
    assert_non_null(t->b);
}

static void
test_config_forms(void **state)
{
    struct ck *t = *state;
    struct harness_proc mc2 = {.pid = -1};
    struct harness_conn *d2;

    NEED_RIVEN();
    mc_start(t, NULL);
    {
        const char *const e1[] = {"--chunked", NULL};
        const char *const e2[] = {"--chunked", "--chunk-size", "300", NULL};

        riven_cli(t, e1);
        stored_as(t, t->d, "cf:cli", CHUNK_SIZE_DEFAULT);
        riven_cli(t, e2);
        stored_as(t, t->d, "cf:cli300", 300);
    }
    riven_with(t, "pool:\n  servers: [\"127.0.0.1:%d\"]\n  chunked: true\n",
               t->mc.port);
    stored_as(t, t->d, "cf:true", CHUNK_SIZE_DEFAULT);
    riven_with(t,
               "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
               "  chunked: {chunk_size: 512}\n",
               t->mc.port);
    stored_as(t, t->d, "cf:512", 512);
    /* a value written with 300 stays readable under 512 */
    {
        char *a = xmalloc(700);

        pattern(a, 700, 71);
        want_value(t, P_TEXT, "cf:cli300", a, 700, 3);
        free(a);
    }

    /* pools: a chunked and a plain one, by prefix */
    assert_int_equal(harness_memcached_start(&mc2, 0, NULL), 0);
    d2 = harness_conn_open(mc2.port, TMO);
    assert_non_null(d2);
    riven_with(t,
               "pools:\n"
               "  ch: {servers: [\"127.0.0.1:%d\"], "
               "chunked: {chunk_size: 400}}\n"
               "  pl: {servers: [\"127.0.0.1:%d\"]}\n"
               "routes:\n"
               "  - prefix: \"plain:\"\n    route: pl\n"
               "  - default: ch\n",
               t->mc.port, mc2.port);
    stored_as(t, t->d, "cf:pools", 400);
    stored_as(t, d2, "plain:x", 0);
    rt(t->c, "incr cf:pools 1\r\n", REFUSED);
    rt(t->c, "set plain:n 0 0 1\r\n5\r\nincr plain:n 1\r\n", "STORED\r\n6\r\n");
    harness_conn_close(d2);
    harness_proc_stop(&mc2, 5000);
}

/* ---- main ---------------------------------------------------------------- */

int
main(void)
{
    const char *only = getenv("INTEG_CHUNKED_ONLY");
    struct CMUnitTest all[] = {
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_two, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calcify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_forms, setup, teardown),
    };
    struct CMUnitTest sel[sizeof(all) / sizeof(all[0])];
    size_t n = 0;

    if (!harness_direct() && !harness_riven_available()) {
        fprintf(stderr, "integ_chunked: %s not found (make first)\n",
                harness_riven_bin());
        return 1;
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (only == NULL || strcmp(only, all[i].name) == 0) {
            sel[n++] = all[i];
        }
    }
    return _cmocka_run_group_tests("integ_chunked", sel, n, NULL, NULL);
}
