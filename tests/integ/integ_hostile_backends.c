/*
 * integ_hostile_backends: a backend that misbehaves (issue 9, item 4).
 *
 * riven runs with a pool of two servers: a real memcached and a fake
 * backend played by a thread of this test, with request_ms 300 and a
 * failure_limit high enough to keep the fake in the pool. The fake speaks
 * enough meta protocol to serve (ms stores, mg answers VA/EN, mn) and
 * misbehaves by the key's prefix:
 *
 *   swap-   two pipelined requests answered in the wrong order
 *   trunc-  "VA 10 f0\r\nabc", then close (FIN)
 *   short-  "VA 10 f0\r\nabc\r\n", then nothing (a wrong, short length)
 *   long-   "VA 3 f0\r\nabcdefgh\r\n" (a wrong, long length)
 *   reset-  "VA 500000 f0\r\n" and 100,000 value bytes, then a reset
 *           (SO_LINGER 0 close)
 *   hang-   nothing at all
 *
 * In every case two clients, A and B, each with its own keys and values on
 * the fake, alternate good requests and the hostile one: the hostile one
 * gets the SERVER_ERROR line riven sends for it (asserted exactly), the
 * good ones their exact values, and neither ever sees a byte of the
 * other's data. A bystander on the real memcached's key sees no error,
 * riven's peak RSS stays within 32 MB of its RSS before the case, and
 * riven is alive after it.
 *
 * Key placement follows libmemcached (ketama), as riven's does. Needs
 * riven: every case is skipped with RIVEN_DIRECT=1. INTEG_POOL_BACKEND
 * sets the pool's backend: (run-tests.sh runs it again with "{mode:
 * batched, connections: 2}", the servers through shared connections, A
 * and B on one each).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <libmemcached/memcached.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define MB          (1024L * 1024L)
#define DEADLINE_MS 5000
#define REQUEST_MS  300
#define ROUNDS      5
#define BACKEND_ERR "SERVER_ERROR backend error\r\n"
#define UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define TIMEOUT     "SERVER_ERROR backend timeout\r\n"

/* ---- the fake backend -------------------------------------------------- */

#define FAKE_CONNS 32
#define FAKE_KEYS  64
#define RESET_SENT 100000

struct fconn {
    int fd;
    char *buf; /* owned: bytes not yet parsed */
    size_t len;
    size_t cap;
};

struct fake {
    pthread_t tid;
    int lfd;
    int port;
    pthread_mutex_t lock; /* guards keys/vals */
    char keys[FAKE_KEYS][64];
    char vals[FAKE_KEYS][64];
    size_t nkeys;
    _Atomic int accepts;
    _Atomic int stop;
};

struct out {
    char *p;
    size_t len, cap;
};

static void
out_add(struct out *o, const void *p, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->p = realloc(o->p, o->cap);
        if (o->p == NULL) {
            abort(); /* not cmocka's assert: this is the fake's thread */
        }
    }
    if (n > 0) {
        memcpy(o->p + o->len, p, n);
        o->len += n;
    }
}

static void
out_str(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

static bool
has_prefix(const char *s, size_t n, const char *pre)
{
    size_t pl = strlen(pre);

    return n >= pl && memcmp(s, pre, pl) == 0;
}

/* The stored value of key, copied into val; false if none. */
static bool
fake_lookup(struct fake *f, const char *key, size_t nkey, char *val)
{
    bool hit = false;

    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nkeys && !hit; i++) {
        if (strlen(f->keys[i]) == nkey && memcmp(f->keys[i], key, nkey) == 0) {
            strcpy(val, f->vals[i]);
            hit = true;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return hit;
}

static void
fake_store(struct fake *f, const char *key, size_t nkey, const char *val,
           size_t nval)
{
    size_t i;

    if (nkey >= 64 || nval >= 64) {
        return;
    }
    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->nkeys; i++) {
        if (strlen(f->keys[i]) == nkey && memcmp(f->keys[i], key, nkey) == 0) {
            break;
        }
    }
    if (i < FAKE_KEYS) {
        memcpy(f->keys[i], key, nkey);
        f->keys[i][nkey] = '\0';
        memcpy(f->vals[i], val, nval);
        f->vals[i][nval] = '\0';
        f->nkeys += i == f->nkeys;
    }
    pthread_mutex_unlock(&f->lock);
}

enum fake_act { ACT_KEEP, ACT_CLOSE, ACT_RESET };

/* The reply to one mg; what to do with the connection after it. */
static enum fake_act
fake_mg(struct fake *f, const char *key, size_t nkey, const char *opq,
        struct out *o)
{
    char val[128], line[96];

    /* like memcached, echo the request's O<opaque> on the status line */
    if (has_prefix(key, nkey, "trunc-")) {
        snprintf(line, sizeof(line), "VA 10 f0%s\r\nabc", opq);
        out_str(o, line);
        return ACT_CLOSE;
    }
    if (has_prefix(key, nkey, "short-")) {
        snprintf(line, sizeof(line), "VA 10 f0%s\r\nabc\r\n", opq);
        out_str(o, line);
        return ACT_KEEP;
    }
    if (has_prefix(key, nkey, "long-")) {
        snprintf(line, sizeof(line), "VA 3 f0%s\r\nabcdefgh\r\n", opq);
        out_str(o, line);
        return ACT_KEEP;
    }
    if (has_prefix(key, nkey, "reset-")) {
        static char junk[RESET_SENT];

        memset(junk, 'r', RESET_SENT);
        snprintf(line, sizeof(line), "VA 500000 f0%s\r\n", opq);
        out_str(o, line);
        out_add(o, junk, RESET_SENT);
        return ACT_RESET;
    }
    if (has_prefix(key, nkey, "hang-")) {
        return ACT_KEEP;
    }
    if (has_prefix(key, nkey, "swap-")) {
        snprintf(val, sizeof(val), "val-of-%.*s", (int)nkey, key);
    } else if (!fake_lookup(f, key, nkey, val)) {
        snprintf(line, sizeof(line), "EN%s\r\n", opq);
        out_str(o, line);
        return ACT_KEEP;
    }
    snprintf(line, sizeof(line), "VA %zu f0%s\r\n", strlen(val), opq);
    out_str(o, line);
    out_str(o, val);
    out_str(o, "\r\n");
    return ACT_KEEP;
}

/* Length of one complete command at p (line and data), 0 if incomplete. */
static size_t
fake_cmd_len(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t line, dlen;

    if (nl == NULL) {
        return 0;
    }
    line = (size_t)(nl - p) + 1;
    if (n >= 3 && memcmp(p, "ms ", 3) == 0) {
        const char *sp = memchr(p + 3, ' ', line - 3);

        dlen = sp != NULL ? strtoul(sp + 1, NULL, 10) + 2 : 0;
        return n >= line + dlen ? line + dlen : 0;
    }
    return line;
}

/* Answer one command at p of length n into its own reply slot. */
static enum fake_act
fake_cmd(struct fake *f, const char *p, size_t n, struct out *o)
{
    const char *key = p + 3, *end;
    size_t nkey;

    if (n >= 4 && memcmp(p, "mn\r\n", 4) == 0) {
        out_str(o, "MN\r\n");
        return ACT_KEEP;
    }
    if (n < 6) {
        out_str(o, "ERROR\r\n");
        return ACT_KEEP;
    }
    end = memchr(key, ' ', n - 3);
    if (end == NULL) {
        end = memchr(key, '\r', n - 3);
    }
    nkey = end != NULL ? (size_t)(end - key) : 0;
    if (memcmp(p, "mg ", 3) == 0) {
        char opq[40] = "";
        const char *o0 = memmem(p, n, " O", 2);

        if (o0 != NULL) {
            size_t k = 0;

            opq[k++] = ' ';
            for (o0++;
                 k < sizeof(opq) - 1 && o0 < p + n && *o0 != ' ' && *o0 != '\r';
                 o0++) {
                opq[k++] = *o0;
            }
            opq[k] = '\0';
        }
        return fake_mg(f, key, nkey, opq, o);
    }
    if (memcmp(p, "ms ", 3) == 0) {
        const char *data = (const char *)memchr(p, '\n', n) + 1;

        if (!has_prefix(key, nkey, "swap-")) {
            fake_store(f, key, nkey, data, (size_t)(p + n - 2 - data));
        }
        out_str(o, "HD\r\n");
        return ACT_KEEP;
    }
    out_str(o, "SERVER_ERROR fake: unsupported\r\n");
    return ACT_KEEP;
}

/* Answer the complete commands buffered on c. Swap- commands go in pairs:
 * an unpaired one waits for its partner; a batch holding them is answered
 * in reverse order. The action for the connection. */
static enum fake_act
fake_serve(struct fake *f, struct fconn *c)
{
    struct out slot[64] = {{0}}, all = {0};
    size_t off = 0, nslot = 0, nswap = 0, last_swap = 0;
    enum fake_act act = ACT_KEEP;

    while (nslot < 64) {
        size_t n = fake_cmd_len(c->buf + off, c->len - off);

        if (n == 0) {
            break;
        }
        if (n > 3 && has_prefix(c->buf + off + 3, n - 3, "swap-")) {
            nswap++;
            last_swap = off;
        }
        if (act == ACT_KEEP) {
            act = fake_cmd(f, c->buf + off, n, &slot[nslot]);
        }
        nslot++;
        off += n;
    }
    if (nswap % 2 == 1) { /* wait for the partner of the last one */
        off = last_swap;
        free(slot[--nslot].p);
    }
    for (size_t i = 0; i < nslot; i++) {
        struct out *s = &slot[nswap >= 2 ? nslot - 1 - i : i];

        out_add(&all, s->p != NULL ? s->p : "", s->len);
        free(s->p);
    }
    if (all.len > 0) {
        size_t done = 0;

        while (done < all.len) {
            ssize_t w = send(c->fd, all.p + done, all.len - done, MSG_NOSIGNAL);

            if (w <= 0) {
                break;
            }
            done += (size_t)w;
        }
    }
    free(all.p);
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return act;
}

static void
fconn_close(struct fconn *c, enum fake_act act)
{
    if (act == ACT_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Read what c has; false when it is to be closed (with *act). */
static bool
fconn_read(struct fake *f, struct fconn *c, enum fake_act *act)
{
    ssize_t r;

    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
        if (c->buf == NULL) {
            abort();
        }
    }
    r = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (r <= 0) {
        *act = ACT_CLOSE;
        return false;
    }
    c->len += (size_t)r;
    *act = fake_serve(f, c);
    return *act == ACT_KEEP;
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    struct fconn conns[FAKE_CONNS];
    struct pollfd pfd[FAKE_CONNS + 1];

    for (int i = 0; i < FAKE_CONNS; i++) {
        conns[i] = (struct fconn){.fd = -1};
    }
    while (!atomic_load(&f->stop)) {
        pfd[0] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        for (int i = 0; i < FAKE_CONNS; i++) {
            pfd[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        }
        if (poll(pfd, FAKE_CONNS + 1, 10) <= 0) {
            continue;
        }
        for (int i = 0; i < FAKE_CONNS; i++) {
            enum fake_act act;

            if (conns[i].fd >= 0 && pfd[i + 1].revents != 0 &&
                !fconn_read(f, &conns[i], &act)) {
                fconn_close(&conns[i], act);
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            int i = 0;

            while (i < FAKE_CONNS && conns[i].fd >= 0) {
                i++;
            }
            if (fd >= 0 && i == FAKE_CONNS) {
                close(fd);
            } else if (fd >= 0) {
                atomic_fetch_add(&f->accepts, 1);
                conns[i] = (struct fconn){.fd = fd};
            }
        }
    }
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (conns[i].fd >= 0) {
            fconn_close(&conns[i], ACT_CLOSE);
        }
    }
    return NULL;
}

static int
fake_start(struct fake *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
        listen(f->lfd, 64) ||
        getsockname(f->lfd, (struct sockaddr *)&sin, &len)) {
        return -1;
    }
    f->port = ntohs(sin.sin_port);
    return pthread_create(&f->tid, NULL, fake_main, f) == 0 ? 0 : -1;
}

static void
fake_stop(struct fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->tid, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->lock);
}

/* ---- the group: memcached, the fake, riven ------------------------------ */

static struct {
    struct harness_proc mc;
    struct harness_proc rv;
    struct fake fake;
    int port;
    char path[64];
    memcached_st *lmc; /* placement as libmemcached sees the pool */
} g;

/* A key "<prefix><n>" that libmemcached places on port. */
static void
key_on(const char *prefix, int port, char *out, size_t cap)
{
    for (unsigned n = 0; n < 100000; n++) {
        const memcached_instance_st *inst;
        memcached_return_t rc;

        snprintf(out, cap, "%s%u", prefix, n);
        inst = memcached_server_by_key(g.lmc, out, strlen(out), &rc);
        assert_non_null(inst);
        if (memcached_server_port(inst) == port) {
            return;
        }
    }
    fail_msg("no key with prefix %s on port %d", prefix, port);
}

static int
riven_start(void)
{
    const char *backend = getenv("INTEG_POOL_BACKEND");

    if (backend == NULL || backend[0] == '\0') {
        backend = "{mode: per_connection}";
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        FILE *f = fopen(g.path, "w");

        g.port = harness_free_port();
        if (f == NULL) {
            return -1;
        }
        fprintf(f,
                "listen: [\"127.0.0.1:%d\"]\nlog_level: error\npool:\n"
                "  servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                "  failure_limit: 1000\n  retry_timeout_ms: 100\n"
                "  backend: %s\n"
                "timeouts: {connect_ms: %d, request_ms: %d}\n",
                g.port, g.mc.port, g.fake.port, backend, REQUEST_MS,
                REQUEST_MS);
        fclose(f);
        if (harness_riven_start(&g.rv, 0, g.path, g.port, NULL) == 0) {
            return 0;
        }
    }
    return -1;
}

static int
group_setup(void **state)
{
    int fd;

    (void)state;
    g.rv.pid = g.mc.pid = -1;
    if (harness_direct()) {
        return 0;
    }
    if (!harness_riven_available()) {
        fprintf(stderr, "integ_hostile_backends: %s not found\n",
                harness_riven_bin());
        return -1;
    }
    if (harness_memcached_start(&g.mc, 0, NULL) != 0 ||
        fake_start(&g.fake) != 0) {
        return -1;
    }
    snprintf(g.path, sizeof(g.path), "/tmp/riven-hostile-be-XXXXXX.yml");
    fd = mkstemps(g.path, 4);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    g.lmc = memcached_create(NULL);
    if (g.lmc == NULL ||
        memcached_behavior_set(g.lmc, MEMCACHED_BEHAVIOR_KETAMA, 1) !=
            MEMCACHED_SUCCESS ||
        memcached_server_add(g.lmc, "127.0.0.1", (in_port_t)g.mc.port) !=
            MEMCACHED_SUCCESS ||
        memcached_server_add(g.lmc, "127.0.0.1", (in_port_t)g.fake.port) !=
            MEMCACHED_SUCCESS) {
        return -1;
    }
    if (riven_start() != 0) {
        return -1;
    }
    printf("integ_hostile_backends: riven %d, memcached %d, fake %d\n", g.port,
           g.mc.port, g.fake.port);
    return 0;
}

static int
group_teardown(void **state)
{
    bool alive = true;

    (void)state;
    if (g.rv.pid > 0) {
        alive = harness_proc_alive(&g.rv);
    }
    harness_proc_stop(&g.rv, DEADLINE_MS);
    harness_proc_stop(&g.mc, DEADLINE_MS);
    if (!harness_direct()) {
        fake_stop(&g.fake);
        memcached_free(g.lmc);
        unlink(g.path);
    }
    if (!alive) {
        fprintf(stderr, "integ_hostile_backends: riven died\n");
    }
    return alive ? 0 : -1;
}

/* ---- the bystander on the real memcached ------------------------------ */

struct bystander {
    pthread_t tid;
    char key[32];
    _Atomic uint64_t ok;
    _Atomic uint64_t errors;
    atomic_bool stop;
};

static void *
bystander_main(void *arg)
{
    struct bystander *b = arg;
    struct harness_conn *c = harness_conn_open(g.port, DEADLINE_MS);
    char req[96], want[128];

    if (c == NULL) {
        atomic_fetch_add(&b->errors, 1);
        return NULL;
    }
    for (unsigned i = 0; !atomic_load(&b->stop); i++) {
        snprintf(req, sizeof(req), "set %s 0 0 8\r\nby%06u\r\nget %s\r\n",
                 b->key, i % 1000000, b->key);
        snprintf(want, sizeof(want),
                 "STORED\r\nVALUE %s 0 8\r\nby%06u\r\nEND\r\n", b->key,
                 i % 1000000);
        if (!harness_roundtrip(c, req, want)) {
            atomic_fetch_add(&b->errors, 1);
            break;
        }
        atomic_fetch_add(&b->ok, 1);
    }
    harness_conn_close(c);
    return NULL;
}

static void
bystander_wait(struct bystander *b, uint64_t more)
{
    uint64_t want = atomic_load(&b->ok) + more;
    int64_t deadline = harness_now_ms() + DEADLINE_MS;

    while (atomic_load(&b->ok) < want && atomic_load(&b->errors) == 0 &&
           harness_now_ms() < deadline) {
        poll(NULL, 0, 2);
    }
}

/* ---- the two clients -------------------------------------------------- */

/* A hostile request and the exact replies riven may give to it. */
struct hostile {
    const char *name;
    const char *prefix; /* of the keys that trigger the fake */
    int nkeys;          /* hostile keys in the request (2 for swap) */
    /* the request for keys k[] */
    void (*build)(char (*k)[48], char *req, size_t cap);
    /* NULL or a further acceptable reply for keys k[] */
    void (*right)(char (*k)[48], char *out, size_t cap);
    const char *want[3]; /* acceptable replies, NULL-terminated */
};

struct client {
    pthread_t tid;
    char tag; /* 'a' or 'b' */
    const struct hostile *h;
    char good[48];       /* its key on the fake */
    char k[2][48];       /* its hostile keys */
    const char *foreign; /* the other client's tag marker */
    int rounds;
    int errors;
    int foreign_seen;
    char first_bad[256];
};

static bool
reply_ok(struct client *cl, const char *got, const char *const *want,
         const char *what)
{
    bool ok = false;

    for (size_t i = 0; want[i] != NULL && !ok; i++) {
        ok = strcmp(got, want[i]) == 0;
    }
    if (strstr(got, cl->foreign) != NULL) {
        cl->foreign_seen++;
    }
    if (!ok) {
        if (cl->errors++ == 0) {
            snprintf(cl->first_bad, sizeof(cl->first_bad), "%s: %s", what, got);
        }
    }
    return ok;
}

/* Send req and take the reply: the bytes that arrive until they equal one
 * of want[] (NULL-terminated), or stop being a prefix of any (then 50 ms
 * more, so a message shows the rest), or the peer closes, or 5 s pass.
 * The reply malloc'd, NULL if the send failed. */
static char *
exchange(struct harness_conn *c, const char *req, const char *const *want)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;

    if (harness_sends(c, req) != 0) {
        return NULL;
    }
    for (;;) {
        bool prefix = false;
        size_t before = c->len;

        for (size_t i = 0; want[i] != NULL; i++) {
            size_t wl = strlen(want[i]);

            if (c->len == wl && memcmp(c->buf, want[i], wl) == 0) {
                return harness_recv_n(c, wl, 0);
            }
            prefix = prefix || c->len == 0 ||
                     (c->len < wl && memcmp(c->buf, want[i], c->len) == 0);
        }
        if (!prefix) {
            (void)harness_quiet(c, 50);
            return harness_recv_n(c, c->len, 0);
        }
        /* false with new bytes: look again; true, or no bytes: EOF or
         * the deadline */
        if (harness_now_ms() >= deadline ||
            harness_quiet(c, (int)(deadline - harness_now_ms())) ||
            c->len == before) {
            return harness_recv_n(c, c->len, 0);
        }
    }
}

static void *
client_main(void *arg)
{
    struct client *cl = arg;
    struct harness_conn *c = harness_conn_open(g.port, DEADLINE_MS);
    char req[256], val[40], set_want[160], get_want[160], right[256];
    const char *sw[] = {set_want, NULL}, *gw[] = {get_want, NULL};

    if (c == NULL) {
        cl->errors++;
        return NULL;
    }
    for (int r = 0; r < ROUNDS; r++) {
        char *got;
        const char *hw[4] = {NULL};

        snprintf(val, sizeof(val), "%c-value-%d-%c%c%c", cl->tag, r, cl->tag,
                 cl->tag, cl->tag);
        snprintf(req, sizeof(req), "set %s 0 0 %zu\r\n%s\r\nget %s\r\n",
                 cl->good, strlen(val), val, cl->good);
        snprintf(set_want, sizeof(set_want),
                 "STORED\r\nVALUE %s 0 %zu\r\n%s\r\nEND\r\n", cl->good,
                 strlen(val), val);
        got = exchange(c, req, sw);
        if (got == NULL || !reply_ok(cl, got, sw, "set+get")) {
            free(got);
            break;
        }
        free(got);
        /* the hostile request */
        cl->h->build(cl->k, req, sizeof(req));
        for (int i = 0; i < 2 && cl->h->want[i] != NULL; i++) {
            hw[i] = cl->h->want[i];
        }
        if (cl->h->right != NULL) {
            cl->h->right(cl->k, right, sizeof(right));
            hw[cl->h->want[1] != NULL ? 2 : cl->h->want[0] != NULL] = right;
        }
        got = exchange(c, req, hw);
        (void)reply_ok(cl, got ? got : "(nothing)", hw, cl->h->name);
        free(got);
        /* the good key again: riven reconnected */
        snprintf(req, sizeof(req), "get %s\r\n", cl->good);
        snprintf(get_want, sizeof(get_want), "VALUE %s 0 %zu\r\n%s\r\nEND\r\n",
                 cl->good, strlen(val), val);
        got = exchange(c, req, gw);
        if (got == NULL || !reply_ok(cl, got, gw, "get after")) {
            free(got);
            break;
        }
        free(got);
        cl->rounds++;
    }
    harness_conn_close(c);
    return NULL;
}

/* ---- hostile requests ------------------------------------------------- */

static void
build_get(char (*k)[48], char *req, size_t cap)
{
    snprintf(req, cap, "get %s\r\n", k[0]);
}

static void
build_get2(char (*k)[48], char *req, size_t cap)
{
    snprintf(req, cap, "get %s %s\r\n", k[0], k[1]);
}

static void
build_get_set(char (*k)[48], char *req, size_t cap)
{
    snprintf(req, cap, "get %s\r\nset %s 0 0 1\r\nx\r\n", k[0], k[1]);
}

/* Two gets answered swapped: the only right answers are an error (one
 * line, or misses as a failed multi-get gives) or both values in place;
 * never one key's value under the other's name. */
static void
right_swap(char (*k)[48], char *out, size_t cap)
{
    snprintf(out, cap,
             "VALUE %s 0 %zu\r\nval-of-%s\r\nVALUE %s 0 %zu\r\nval-of-%s\r\n"
             "END\r\n",
             k[0], strlen(k[0]) + 7, k[0], k[1], strlen(k[1]) + 7, k[1]);
}

static void
run_case(const struct hostile *h)
{
    struct client cl[2];
    struct bystander b;
    long rss0, hwm;
    int accepts0 = atomic_load(&g.fake.accepts);
    char pre[32];

    if (harness_direct()) {
        skip();
    }
    memset(&b, 0, sizeof(b));
    key_on("bystander-", g.mc.port, b.key, sizeof(b.key));
    assert_true(harness_proc_alive(&g.rv));
    rss0 = harness_proc_status(g.rv.pid, "VmRSS");
    assert_true(rss0 > 0);
    assert_int_equal(pthread_create(&b.tid, NULL, bystander_main, &b), 0);
    bystander_wait(&b, 10);
    for (int i = 0; i < 2; i++) {
        memset(&cl[i], 0, sizeof(cl[i]));
        cl[i].tag = i == 0 ? 'a' : 'b';
        cl[i].h = h;
        cl[i].foreign = i == 0 ? "b-value" : "a-value";
        snprintf(pre, sizeof(pre), "good-%c-", cl[i].tag);
        key_on(pre, g.fake.port, cl[i].good, sizeof(cl[i].good));
        for (int j = 0; j < h->nkeys; j++) {
            snprintf(pre, sizeof(pre), "%s%c%d-", h->prefix, cl[i].tag, j);
            key_on(pre, g.fake.port, cl[i].k[j], sizeof(cl[i].k[j]));
        }
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&cl[i].tid, NULL, client_main, &cl[i]),
                         0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(cl[i].tid, NULL);
    }
    bystander_wait(&b, 10);
    atomic_store(&b.stop, true);
    pthread_join(b.tid, NULL);
    hwm = harness_proc_status(g.rv.pid, "VmHWM");
    for (int i = 0; i < 2; i++) {
        printf("    client %c: %d/%d rounds, %d wrong replies, %d with the "
               "other client's data%s%s\n",
               cl[i].tag, cl[i].rounds, ROUNDS, cl[i].errors,
               cl[i].foreign_seen, cl[i].errors ? "; first: " : "",
               cl[i].first_bad);
    }
    printf("    fake accepted %d connections; bystander %llu exact round "
           "trips, %llu errors; riven RSS %ld KiB, peak +%ld KiB\n",
           atomic_load(&g.fake.accepts) - accepts0,
           (unsigned long long)atomic_load(&b.ok),
           (unsigned long long)atomic_load(&b.errors), rss0 / 1024,
           (hwm - rss0) / 1024);
    assert_true(harness_proc_alive(&g.rv));
    assert_int_equal(atomic_load(&b.errors), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cl[i].foreign_seen, 0);
        assert_int_equal(cl[i].errors, 0);
        assert_int_equal(cl[i].rounds, ROUNDS);
    }
    assert_true(hwm - rss0 < harness_rss_scale() * 32 * MB);
}

#define CASE(fn, nm, pre, n, bld, rt, ...)                                     \
    static void fn(void **state)                                               \
    {                                                                          \
        static const struct hostile h = {nm, pre, n, bld, rt, {__VA_ARGS__}};  \
        (void)state;                                                           \
        run_case(&h);                                                          \
    }

CASE(test_swap_get_set, "swapped get/set replies", "swap-", 2, build_get_set,
     NULL, BACKEND_ERR BACKEND_ERR, NULL)
CASE(test_swap_gets, "swapped get replies", "swap-", 2, build_get2, right_swap,
     BACKEND_ERR, "END\r\n", NULL)
CASE(test_truncated, "truncated value", "trunc-", 1, build_get, NULL,
     UNAVAILABLE, NULL)
CASE(test_short_length, "VA 10 with 3 bytes", "short-", 1, build_get, NULL,
     TIMEOUT, NULL)
CASE(test_long_length, "VA 3 with 8 bytes", "long-", 1, build_get, NULL,
     BACKEND_ERR, NULL)
CASE(test_reset_mid_value, "reset mid-value", "reset-", 1, build_get, NULL,
     UNAVAILABLE, NULL)
CASE(test_never_answers, "never answers", "hang-", 1, build_get, NULL, TIMEOUT,
     NULL)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_get_set),
        cmocka_unit_test(test_swap_gets),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_short_length),
        cmocka_unit_test(test_long_length),
        cmocka_unit_test(test_reset_mid_value),
        cmocka_unit_test(test_never_answers),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
