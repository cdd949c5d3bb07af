/*
 * integ_metrics: riven's /metrics, /healthz and `stats proxy`, end to end.
 *
 * Each case starts a real memcached and a fresh riven with its metrics
 * endpoint on a free loopback port, sends a known set of requests in the
 * text, meta and binary protocols, and scrapes /metrics over a raw socket.
 * Counters are compared as deltas between a scrape before and a scrape
 * after the traffic, and must have moved by exactly what was sent.
 *
 * riven records a batch's counters after it has written the replies, so a
 * scrape taken right after a reply may miss the last increments: the
 * checks poll until every expected delta is reached (or a deadline
 * passes), then require each to be exact, never more.
 *
 * Needs riven: every case is skipped with RIVEN_DIRECT=1. The promtool case
 * is skipped when promtool is not installed (Debian package prometheus).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "binpkt.h"
#include "harness.h"

#define DEADLINE_MS  5000 /* for any condition polled below */
#define CONC_CLIENTS 100
#define CONC_MAX_OPS 400 /* set+get pairs per client, at most */
#define CONC_RUN_MS  2000
#define SCRAPE_EVERY 100 /* ms: 10 scrapes a second */

/* One riven with metrics on mport, in front of one memcached. */
struct fixture {
    struct harness_stack st;
    int mport;      /* /metrics port */
    char maddr[32]; /* "127.0.0.1:<mport>" */
    char dir[64];   /* temp dir for config files, "" if none */
};

/* Bytes exchanged with riven by the test itself. */
struct tally {
    uint64_t rx; /* bytes riven received from us */
    uint64_t tx; /* bytes riven sent us */
};

/* ---- HTTP over a raw socket ----------------------------------------- */

/* GET path from 127.0.0.1:port. The status code, or -1 on failure with a
 * message in err. On success *head and *body are malloc'd, NUL-terminated
 * (the header block without its blank line, and the body). Thread-safe. */
static int
http_get(int port, const char *path, char **head, char **body, char *err,
         size_t errlen)
{
    struct harness_conn *c = harness_conn_open(port, DEADLINE_MS);
    char req[256], *raw = NULL, *sep;
    int code = -1;

    *head = *body = NULL;
    if (c == NULL) {
        snprintf(err, errlen, "connect to metrics port %d failed", port);
        return -1;
    }
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Connection: close\r\n\r\n",
             path, port);
    if (harness_sends(c, req) != 0 || !harness_wait_eof(c, DEADLINE_MS)) {
        snprintf(err, errlen, "GET %s: no complete reply", path);
        goto out;
    }
    raw = malloc(c->len + 1);
    if (raw == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(raw, c->buf, c->len);
    raw[c->len] = '\0';
    sep = strstr(raw, "\r\n\r\n");
    if (sep == NULL || sscanf(raw, "HTTP/1.%*d %d", &code) != 1) {
        snprintf(err, errlen, "GET %s: malformed reply", path);
        code = -1;
        goto out;
    }
    *sep = '\0';
    *head = strdup(raw);
    *body = strdup(sep + 4);
    if (*head == NULL || *body == NULL) {
        free(*head);
        free(*body);
        *head = *body = NULL;
        snprintf(err, errlen, "out of memory");
        code = -1;
    }
out:
    free(raw);
    harness_conn_close(c);
    return code;
}

/* Main thread: GET, assert it worked, return the code. */
static int
http_get_ok(int port, const char *path, char **head, char **body)
{
    char err[160];
    int code = http_get(port, path, head, body, err, sizeof(err));

    if (code < 0) {
        fail_msg("%s", err);
    }
    return code;
}

/* ---- scrapes -------------------------------------------------------- */

struct series {
    char *key; /* name{labels}, as written */
    double v;
};

struct family {
    char *name;
    char *type; /* counter, gauge, histogram... */
};

struct scrape {
    char *body; /* owned: the text, cut in place */
    struct series *s;
    size_t ns;
    struct family *f;
    size_t nf;
};

static void
scrape_free(struct scrape *sc)
{
    if (sc == NULL) {
        return;
    }
    free(sc->body);
    free(sc->s);
    free(sc->f);
    free(sc);
}

/* Parse a text exposition (cut in place). NULL and err on a bad line. */
static struct scrape *
scrape_parse(char *body, char *err, size_t errlen)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    size_t lines = 1;
    char *line, *save = NULL;

    if (sc == NULL) {
        free(body);
        return NULL;
    }
    sc->body = body;
    for (const char *p = body; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    sc->s = calloc(lines, sizeof(*sc->s));
    sc->f = calloc(lines, sizeof(*sc->f));
    if (sc->s == NULL || sc->f == NULL) {
        goto error;
    }
    for (line = strtok_r(body, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp, *end;

        if (strncmp(line, "# TYPE ", 7) == 0) {
            sp = strchr(line + 7, ' ');
            if (sp == NULL) {
                snprintf(err, errlen, "bad TYPE line: %s", line);
                goto error;
            }
            *sp = '\0';
            sc->f[sc->nf].name = line + 7;
            sc->f[sc->nf++].type = sp + 1;
            continue;
        }
        if (line[0] == '#') {
            continue;
        }
        sp = strrchr(line, ' ');
        if (sp == NULL) {
            snprintf(err, errlen, "bad sample line: %s", line);
            goto error;
        }
        *sp = '\0';
        sc->s[sc->ns].key = line;
        sc->s[sc->ns].v = strtod(sp + 1, &end);
        if (end == sp + 1 || *end != '\0') {
            snprintf(err, errlen, "bad value in: %s %s", line, sp + 1);
            goto error;
        }
        sc->ns++;
    }
    return sc;
error:
    scrape_free(sc);
    return NULL;
}

/* GET /metrics and parse it. Thread-safe; NULL and err on failure. The
 * status must be 200 and the Content-Type Prometheus text 0.0.4. */
static struct scrape *
scrape_get(int port, char *err, size_t errlen)
{
    char *head, *body;
    int code = http_get(port, "/metrics", &head, &body, err, errlen);

    if (code < 0) {
        return NULL;
    }
    if (code != 200 ||
        strstr(head, "Content-Type: text/plain; version=0.0.4") == NULL) {
        snprintf(err, errlen, "GET /metrics: status %d, header:\n%s", code,
                 head);
        free(head);
        free(body);
        return NULL;
    }
    free(head);
    return scrape_parse(body, err, errlen);
}

static struct scrape *
scrape(int port)
{
    char err[512];
    struct scrape *sc = scrape_get(port, err, sizeof(err));

    if (sc == NULL) {
        fail_msg("%s", err);
    }
    return sc;
}

static const struct series *
scrape_find(const struct scrape *sc, const char *key)
{
    for (size_t i = 0; i < sc->ns; i++) {
        if (strcmp(sc->s[i].key, key) == 0) {
            return &sc->s[i];
        }
    }
    return NULL;
}

/* The value of a series; 0 when it is absent (riven leaves out the
 * command/protocol pairs never seen). */
static uint64_t
sval(const struct scrape *sc, const char *key)
{
    const struct series *s = scrape_find(sc, key);

    return s != NULL ? (uint64_t)s->v : 0;
}

/* The type of the family a sample belongs to, or NULL. */
static const char *
series_type(const struct scrape *sc, const char *key)
{
    static const char *const sfx[] = {"_bucket", "_count", "_sum"};
    size_t n = strcspn(key, "{");

    for (size_t k = 0; k <= 3; k++) {
        size_t cut = n;

        if (k > 0) {
            size_t l = strlen(sfx[k - 1]);

            if (n < l || memcmp(key + n - l, sfx[k - 1], l) != 0) {
                continue;
            }
            cut = n - l;
        }
        for (size_t i = 0; i < sc->nf; i++) {
            if (strlen(sc->f[i].name) == cut &&
                memcmp(sc->f[i].name, key, cut) == 0) {
                return sc->f[i].type;
            }
        }
    }
    return NULL;
}

/* Split a histogram sample key into its base "family{labels without le}"
 * (written to base) and its le bound (+Inf as INFINITY). Returns 1 for a
 * _bucket, 2 for a _count, 0 for anything else. */
static int
hist_part(const char *key, char *base, size_t size, double *le)
{
    size_t n = strcspn(key, "{");
    const char *lbl = key + n, *lp;
    int kind;

    if (n > 7 && memcmp(key + n - 7, "_bucket", 7) == 0) {
        kind = 1;
        n -= 7;
    } else if (n > 6 && memcmp(key + n - 6, "_count", 6) == 0) {
        kind = 2;
        n -= 6;
    } else {
        return 0;
    }
    snprintf(base, size, "%.*s%s", (int)n, key, lbl);
    lp = strstr(base, "le=\"");
    if (kind == 1) {
        if (lp == NULL) {
            return 0;
        }
        *le = strcmp(lp + 4, "+Inf\"}") == 0 ? INFINITY : strtod(lp + 4, NULL);
        /* drop ",le=..." or "le=..." (and "{}" if nothing is left) */
        if (lp[-1] == ',') {
            lp--;
        }
        base[lp - base] = '\0';
        if (base[strlen(base) - 1] == '{') {
            base[strlen(base) - 1] = '\0';
        } else {
            strcat(base, "}");
        }
    }
    return kind;
}

/*
 * Check one scrape on its own and against the previous one (may be NULL):
 * every sample has a # TYPE; every counter and histogram sample is >= its
 * previous value; riven's gauges are not negative; buckets are cumulative
 * with growing le; _count equals the +Inf bucket. 0, or -1
 * with the first problem in err. Thread-safe.
 */
static int
scrape_check(const struct scrape *prev, const struct scrape *cur, char *err,
             size_t errlen)
{
    char base[512], last_base[512] = "", inf_base[512] = "";
    double last_le = -1, last_v = 0, inf_v = -1, le;

    for (size_t i = 0; i < cur->ns; i++) {
        const struct series *s = &cur->s[i], *p;
        const char *type = series_type(cur, s->key);
        int kind;

        if (type == NULL) {
            snprintf(err, errlen, "%s: no # TYPE", s->key);
            return -1;
        }
        if (strcmp(type, "gauge") != 0 && prev != NULL &&
            (p = scrape_find(prev, s->key)) != NULL && s->v < p->v) {
            snprintf(err, errlen, "%s went down: %.17g -> %.17g", s->key, p->v,
                     s->v);
            return -1;
        }
        if (strcmp(type, "gauge") == 0 && s->v < 0 &&
            strncmp(s->key, "riven_", 6) == 0) {
            snprintf(err, errlen, "gauge %s is negative: %.17g", s->key, s->v);
            return -1;
        }
        if (strcmp(type, "histogram") != 0) {
            continue;
        }
        kind = hist_part(s->key, base, sizeof(base), &le);
        if (kind == 1) {
            if (strcmp(base, last_base) == 0 &&
                (le <= last_le || s->v < last_v)) {
                snprintf(err, errlen,
                         "%s: not cumulative (le %g count %.17g "
                         "after le %g count %.17g)",
                         s->key, le, s->v, last_le, last_v);
                return -1;
            }
            snprintf(last_base, sizeof(last_base), "%s", base);
            last_le = le;
            last_v = s->v;
            if (isinf(le)) {
                snprintf(inf_base, sizeof(inf_base), "%s", base);
                inf_v = s->v;
            }
        } else if (kind == 2) {
            if (strcmp(base, inf_base) != 0 || s->v != inf_v) {
                snprintf(err, errlen,
                         "%s = %.17g, but its +Inf bucket is "
                         "%.17g (%s)",
                         s->key, s->v, inf_v, inf_base);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- expected deltas ------------------------------------------------ */

struct expect {
    char key[160];
    uint64_t want; /* delta since the base scrape */
};

struct expects {
    struct expect e[96];
    size_t n;
};

static void __attribute__((format(printf, 3, 4)))
expect(struct expects *x, uint64_t want, const char *fmt, ...)
{
    va_list ap;

    assert_true(x->n < sizeof(x->e) / sizeof(x->e[0]));
    va_start(ap, fmt);
    vsnprintf(x->e[x->n].key, sizeof(x->e[x->n].key), fmt, ap);
    va_end(ap);
    x->e[x->n++].want = want;
}

/* A command's requests (one protocol) and its latency histogram count. */
static void
expect_cmd(struct expects *x, const char *cmd, const char *proto, uint64_t n)
{
    expect(x, n, "riven_requests_total{command=\"%s\",protocol=\"%s\"}", cmd,
           proto);
}

static void
expect_hist(struct expects *x, const char *cmd, uint64_t n)
{
    expect(x, n, "riven_request_duration_seconds_count{command=\"%s\"}", cmd);
    expect(x, n,
           "riven_request_duration_seconds_bucket{command=\"%s\",le=\"+Inf\"}",
           cmd);
}

/* Poll until every expected delta is reached (or the deadline passes),
 * then assert each is exact. Returns the last scrape (caller frees). */
static struct scrape *
expect_settle(int port, const struct scrape *base, const struct expects *x)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;
    struct scrape *sc;
    bool bad = false;

    for (;;) {
        bool reached = true;

        sc = scrape(port);
        for (size_t i = 0; i < x->n && reached; i++) {
            reached =
                sval(sc, x->e[i].key) - sval(base, x->e[i].key) >= x->e[i].want;
        }
        if (reached || harness_now_ms() >= deadline) {
            break;
        }
        scrape_free(sc);
        poll(NULL, 0, 10);
    }
    for (size_t i = 0; i < x->n; i++) {
        uint64_t d = sval(sc, x->e[i].key) - sval(base, x->e[i].key);

        if (d != x->e[i].want) {
            fprintf(stderr, "  %s moved by %llu, expected %llu\n", x->e[i].key,
                    (unsigned long long)d, (unsigned long long)x->e[i].want);
            bad = true;
        }
    }
    if (bad) {
        scrape_free(sc);
        fail_msg("counters did not move by exactly the requests sent");
    }
    return sc;
}

/* Poll scrapes until key == want; fail at the deadline. */
static void
wait_value(int port, const char *key, uint64_t want)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;
    uint64_t v;

    for (;;) {
        struct scrape *sc = scrape(port);

        v = sval(sc, key);
        scrape_free(sc);
        if (v == want || harness_now_ms() >= deadline) {
            break;
        }
        poll(NULL, 0, 10);
    }
    if (v != want) {
        fail_msg("%s is %llu after %d ms, expected %llu", key,
                 (unsigned long long)v, DEADLINE_MS, (unsigned long long)want);
    }
}

/* ---- fixture -------------------------------------------------------- */

static void
fixture_metrics_port(struct fixture *f)
{
    f->mport = harness_free_port();
    assert_true(f->mport > 0);
    snprintf(f->maddr, sizeof(f->maddr), "127.0.0.1:%d", f->mport);
}

/* Start memcached + riven with metrics on a free port, and wait until the
 * metrics endpoint accepts. A clash on the metrics port makes riven exit:
 * try again with another port. */
static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    *state = f;
    if (harness_direct()) {
        return 0;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *extra[] = {"-m", f->maddr, NULL};

        fixture_metrics_port(f);
        if (harness_stack_start(&f->st, extra) == 0 &&
            harness_wait_ready(&f->st.rv, f->mport, DEADLINE_MS) == 0) {
            return 0;
        }
        harness_stack_stop(&f->st);
    }
    return -1;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    bool alive = true;

    if (!harness_direct() && f->st.rv.pid > 0) {
        alive = harness_proc_alive(&f->st.rv);
    }
    harness_stack_stop(&f->st);
    if (f->dir[0] != '\0') {
        char path[128];

        snprintf(path, sizeof(path), "%s/riven.yml", f->dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/riven.yml.tmp", f->dir);
        unlink(path);
        rmdir(f->dir);
    }
    free(f);
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

/* ---- traffic helpers ------------------------------------------------ */

static void
rt(struct harness_conn *c, struct tally *t, const char *req, const char *want)
{
    assert_true(harness_roundtrip(c, req, want));
    t->rx += strlen(req);
    t->tx += strlen(want);
}

/* Send req, read up to and including "END\r\n", check its start. */
static void
rt_end(struct harness_conn *c, struct tally *t, const char *req,
       const char *prefix)
{
    size_t n = 0;
    char *got;

    assert_int_equal(harness_sends(c, req), 0);
    got = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &n);
    assert_non_null(got);
    if (strncmp(got, prefix, strlen(prefix)) != 0) {
        harness_dump("reply", got, n, 400);
        fail_msg("reply to %s does not start with %s", req, prefix);
    }
    free(got);
    t->rx += strlen(req);
    t->tx += n;
}

/* A binary request: header + extras + key + value. Returns its length. */
static size_t
bin_req(uint8_t *p, uint8_t op, const char *key, const void *extras,
        uint8_t extlen, const char *val)
{
    return binpkt_request(p, op, key, extras, extlen, val,
                          val != NULL ? strlen(val) : 0, 0x01020304);
}

/* One binary response packet; its header fields and malloc'd body. */
struct bin_res {
    uint8_t op;
    uint16_t status;
    uint16_t klen;
    uint8_t extlen;
    uint32_t blen;
    char *body; /* owned, NUL-terminated */
};

static void
bin_read(struct harness_conn *c, struct tally *t, struct bin_res *r)
{
    char *h = harness_recv_n(c, 24, HARNESS_TIMEOUT_MS);
    uint16_t v16;
    uint32_t v32;

    assert_non_null(h);
    assert_int_equal((uint8_t)h[0], 0x81);
    r->op = (uint8_t)h[1];
    memcpy(&v16, h + 2, 2);
    r->klen = ntohs(v16);
    r->extlen = (uint8_t)h[4];
    memcpy(&v16, h + 6, 2);
    r->status = ntohs(v16);
    memcpy(&v32, h + 8, 4);
    r->blen = ntohl(v32);
    free(h);
    r->body = harness_recv_n(c, r->blen, HARNESS_TIMEOUT_MS);
    assert_non_null(r->body);
    t->tx += 24 + r->blen;
}

/* Send one binary request and check the reply's opcode and status. */
static void
bin_rt(struct harness_conn *c, struct tally *t, uint8_t op, const char *key,
       const void *extras, uint8_t extlen, const char *val, uint16_t status)
{
    uint8_t pkt[512];
    size_t n = bin_req(pkt, op, key, extras, extlen, val);
    struct bin_res r;

    assert_int_equal(harness_send(c, pkt, n), 0);
    t->rx += n;
    bin_read(c, t, &r);
    assert_int_equal(r.op, op);
    assert_int_equal(r.status, status);
    free(r.body);
}

/* ---- tests ---------------------------------------------------------- */

/* A scrape after traffic in every protocol passes promtool. */
static void
test_promtool(void **state)
{
    struct fixture *f = *state;
    char path[] = "/tmp/riven-metrics-XXXXXX", cmd[256], err[256];
    struct harness_conn *c;
    struct tally t = {0};
    char *head, *body;
    int fd, rc;
    FILE *fp;

    NEED_RIVEN();
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("promtool not installed (Debian package prometheus): "
               "skipping\n");
        skip();
    }
    c = harness_conn_open(f->st.port, DEADLINE_MS);
    assert_non_null(c);
    rt(c, &t, "set p 0 0 1\r\nx\r\n", "STORED\r\n");
    rt(c, &t, "get p q\r\n", "VALUE p 0 1\r\nx\r\nEND\r\n");
    rt(c, &t, "mg p v\r\n", "VA 1\r\nx\r\n");
    rt(c, &t, "bogus\r\n", "ERROR\r\n");
    harness_conn_close(c);
    c = harness_conn_open(f->st.port, DEADLINE_MS); /* binary: a new one */
    assert_non_null(c);
    bin_rt(c, &t, 0x0a, "", NULL, 0, NULL, 0); /* noop */
    harness_conn_close(c);
    wait_value(f->mport,
               "riven_requests_total{command=\"noop\","
               "protocol=\"binary\"}",
               1);

    assert_int_equal(
        http_get(f->mport, "/metrics", &head, &body, err, sizeof(err)), 200);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(body, fp);
    fclose(fp);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    fp = popen(cmd, "r");
    assert_non_null(fp);
    while (fgets(err, sizeof(err), fp) != NULL) {
        fprintf(stderr, "promtool: %s", err);
    }
    rc = pclose(fp);
    unlink(path);
    free(head);
    free(body);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

/* Text requests with known replies, hits and misses; four client errors. */
static void
send_text(struct harness_conn *c, struct tally *t)
{
    for (int i = 1; i <= 4; i++) {
        char req[64];

        snprintf(req, sizeof(req), "set k%d 0 0 2\r\nv%d\r\n", i, i);
        rt(c, t, req, "STORED\r\n");
    }
    rt(c, t, "set n 0 0 2\r\n10\r\n", "STORED\r\n");
    rt(c, t, "get k1 k2 m1 m2 m3\r\n",
       "VALUE k1 0 2\r\nv1\r\nVALUE k2 0 2\r\nv2\r\nEND\r\n");
    rt(c, t, "get k3\r\n", "VALUE k3 0 2\r\nv3\r\nEND\r\n");
    rt(c, t, "get m4\r\n", "END\r\n");
    rt_end(c, t, "gets k4 m5\r\n", "VALUE k4 0 2 ");
    rt(c, t, "gat 100 k1 m6\r\n", "VALUE k1 0 2\r\nv1\r\nEND\r\n");
    rt(c, t, "delete k4\r\n", "DELETED\r\n");
    rt(c, t, "delete m7\r\n", "NOT_FOUND\r\n");
    rt(c, t, "incr n 5\r\n", "15\r\n");
    rt(c, t, "incr n 5\r\n", "20\r\n");
    rt(c, t, "incr n 1\r\n", "21\r\n");
    rt(c, t, "decr n 1\r\n", "20\r\n");
    rt(c, t, "touch k1 100\r\n", "TOUCHED\r\n");
    rt(c, t, "touch m8 100\r\n", "NOT_FOUND\r\n");
    /* errors: two unknown commands (no command counted), a bad delta
     * (answered by riven) and a non-numeric value (by memcached) */
    rt(c, t, "bogus\r\n", "ERROR\r\n");
    rt(c, t, "nonsense a b\r\n", "ERROR\r\n");
    rt(c, t, "incr k1 abc\r\n",
       "CLIENT_ERROR invalid numeric delta argument\r\n");
    rt(c, t, "incr k2 1\r\n",
       "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
}

static void
send_meta(struct harness_conn *c, struct tally *t)
{
    rt(c, t, "ms mk1 2\r\nhi\r\n", "HD\r\n");
    rt(c, t, "mg mk1 v\r\n", "VA 2\r\nhi\r\n");
    rt(c, t, "mg mk2 v\r\n", "EN\r\n");
    rt(c, t, "md mk1\r\n", "HD\r\n");
    rt(c, t, "ma n\r\n", "HD\r\n");
    rt(c, t, "mn\r\n", "MN\r\n");
}

static void
send_binary(struct harness_conn *c, struct tally *t)
{
    static const uint8_t set_extras[8] = {0}; /* flags 0, exptime 0 */

    bin_rt(c, t, 0x01, "bk1", set_extras, 8, "bv", 0); /* set */
    bin_rt(c, t, 0x00, "bk1", NULL, 0, NULL, 0);       /* get: hit */
    bin_rt(c, t, 0x00, "bm1", NULL, 0, NULL, 1);       /* get: miss */
    bin_rt(c, t, 0x04, "bk1", NULL, 0, NULL, 0);       /* delete */
    bin_rt(c, t, 0x0a, "", NULL, 0, NULL, 0);          /* noop */
}

/* The deltas send_text + send_meta + send_binary must cause. */
static void
exact_expects(struct expects *x, const char *server)
{
    static const struct {
        const char *cmd, *proto;
        uint64_t n;
    } reqs[] = {
        {"set", "text", 5},      {"get", "text", 7},    {"gets", "text", 2},
        {"gat", "text", 2},      {"delete", "text", 2}, {"incr", "text", 5},
        {"decr", "text", 1},     {"touch", "text", 2},  {"ms", "meta", 1},
        {"mg", "meta", 2},       {"md", "meta", 1},     {"ma", "meta", 1},
        {"mn", "meta", 1},       {"set", "binary", 1},  {"get", "binary", 2},
        {"delete", "binary", 1}, {"noop", "binary", 1},
    };
    static const struct {
        const char *cmd;
        uint64_t n;
    } hist[] = {
        {"set", 6},  {"get", 9},  {"gets", 2},  {"gat", 2},  {"delete", 3},
        {"incr", 5}, {"decr", 1}, {"touch", 2}, {"ms", 1},   {"mg", 2},
        {"md", 1},   {"ma", 1},   {"mn", 1},    {"noop", 1},
    };

    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        expect_cmd(x, reqs[i].cmd, reqs[i].proto, reqs[i].n);
    }
    /* pairs never used stay at 0 (absent) */
    expect_cmd(x, "get", "meta", 0);
    expect_cmd(x, "mg", "text", 0);
    expect_cmd(x, "add", "text", 0);
    for (size_t i = 0; i < sizeof(hist) / sizeof(hist[0]); i++) {
        expect_hist(x, hist[i].cmd, hist[i].n);
    }
    expect(x, 4, "riven_get_hits_total{command=\"get\"}");
    expect(x, 5, "riven_get_misses_total{command=\"get\"}");
    expect(x, 1, "riven_get_hits_total{command=\"gets\"}");
    expect(x, 1, "riven_get_misses_total{command=\"gets\"}");
    expect(x, 1, "riven_get_hits_total{command=\"gat\"}");
    expect(x, 1, "riven_get_misses_total{command=\"gat\"}");
    expect(x, 0, "riven_get_hits_total{command=\"gats\"}");
    expect(x, 1, "riven_get_hits_total{command=\"mg\"}");
    expect(x, 1, "riven_get_misses_total{command=\"mg\"}");
    expect(x, 4, "riven_errors_total{kind=\"client_error\"}");
    expect(x, 0, "riven_errors_total{kind=\"server_error\"}");
    expect(x, 0, "riven_errors_total{kind=\"backend_timeout\"}");
    expect(x, 0, "riven_errors_total{kind=\"backend_unavailable\"}");
    /* everything but bogus, nonsense, incr k1 abc, mn and noop */
    expect(x, 34, "riven_backend_requests_total{server=\"%s\"}", server);
    expect(x, 0, "riven_backend_errors_total{server=\"%s\"}", server);
    expect(x, 2, "riven_connections_total");
    expect(x, 0, "riven_connections_rejected_total");
    expect(x, 0, "riven_config_reloads_total{result=\"success\"}");
    expect(x, 0, "riven_config_reloads_total{result=\"failure\"}");
}

/* Every counter moves by exactly what was sent, per command, protocol,
 * result and error kind; bytes in and out match the wire exactly. */
static void
test_exact_counts(void **state)
{
    struct fixture *f = *state;
    struct harness_conn *c1, *c2;
    struct scrape *base, *after;
    struct expects *x = calloc(1, sizeof(*x));
    struct tally t = {0};
    char server[48];

    NEED_RIVEN();
    assert_non_null(x);
    snprintf(server, sizeof(server), "127.0.0.1:%d", f->st.mc.port);
    /* the harness's readiness probe (one connection) may not be accepted
     * yet, or may still be closing: it is counted before the baseline */
    wait_value(f->mport, "riven_connections_total", 1);
    wait_value(f->mport, "riven_connections_current", 0);
    base = scrape(f->mport);
    c1 = harness_conn_open(f->st.port, DEADLINE_MS);
    c2 = harness_conn_open(f->st.port, DEADLINE_MS);
    assert_non_null(c1);
    assert_non_null(c2);
    send_text(c1, &t);
    send_meta(c1, &t);
    send_binary(c2, &t);

    exact_expects(x, server);
    expect(x, t.rx, "riven_client_received_bytes_total");
    expect(x, t.tx, "riven_client_sent_bytes_total");
    after = expect_settle(f->mport, base, x);
    /* both clients are still connected */
    assert_int_equal(sval(after, "riven_connections_current"), 2);
    assert_int_equal(sval(after, "riven_threads_current"), 2);
    {
        char key[160];

        snprintf(key, sizeof(key), "riven_backend_up{server=\"%s\"}", server);
        assert_int_equal(sval(after, key), 1);
        /* one backend socket per client connection */
        snprintf(key, sizeof(key), "riven_backend_open_sockets{server=\"%s\"}",
                 server);
        assert_int_equal(sval(after, key), 2);
        snprintf(key, sizeof(key),
                 "riven_backend_request_duration_seconds_count{server=\"%s\"}",
                 server);
        assert_true(sval(after, key) > 0);
    }
    assert_true(sval(after, "riven_backend_sent_bytes_total") > 0);
    assert_true(sval(after, "riven_backend_received_bytes_total") > 0);
    {
        char err[256];

        if (scrape_check(base, after, err, sizeof(err)) != 0) {
            fail_msg("%s", err);
        }
    }
    harness_conn_close(c1);
    harness_conn_close(c2);
    wait_value(f->mport, "riven_connections_current", 0);
    wait_value(f->mport, "riven_threads_current", 0);
    {
        char key[160];

        snprintf(key, sizeof(key), "riven_backend_open_sockets{server=\"%s\"}",
                 server);
        wait_value(f->mport, key, 0);
    }
    scrape_free(after);
    scrape_free(base);
    free(x);
}

/* A /healthz body: "ok", with or without a final newline. */
static bool
body_is_ok(const char *body)
{
    return strcmp(body, "ok") == 0 || strcmp(body, "ok\n") == 0;
}

/* /healthz is 200 "ok" with a reachable backend, before any traffic. */
static void
test_healthz_fresh(void **state)
{
    struct fixture *f = *state;
    int64_t deadline = harness_now_ms() + DEADLINE_MS;
    char *head, *body;
    int code;

    NEED_RIVEN();
    for (;;) {
        code = http_get_ok(f->mport, "/healthz", &head, &body);
        if (code == 200 || harness_now_ms() >= deadline) {
            break;
        }
        free(head);
        free(body);
        poll(NULL, 0, 20);
    }
    if (code != 200 || !body_is_ok(body)) {
        char got[64];

        snprintf(got, sizeof(got), "%s", body);
        free(head);
        free(body);
        fail_msg("/healthz answers %d \"%s\" for %d ms with memcached up "
                 "and no request yet; want 200 \"ok\"",
                 code, got, DEADLINE_MS);
    }
    free(head);
    free(body);
}

/* 200 ok while the backend answers, 503 once it is gone and a request has
 * failed; any other path is 404. */
static void
test_healthz(void **state)
{
    struct fixture *f = *state;
    int64_t deadline;
    struct harness_conn *c;
    struct tally t = {0};
    char *head, *body;
    int code, mc_port;

    NEED_RIVEN();
    c = harness_conn_open(f->st.port, DEADLINE_MS);
    assert_non_null(c);
    rt(c, &t, "set h 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_int_equal(http_get_ok(f->mport, "/healthz", &head, &body), 200);
    assert_true(body_is_ok(body));
    free(head);
    free(body);
    assert_int_equal(http_get_ok(f->mport, "/nope", &head, &body), 404);
    free(head);
    free(body);

    mc_port = f->st.mc.port;
    harness_proc_kill(&f->st.mc);
    rt(c, &t, "get h\r\n", "SERVER_ERROR backend unavailable\r\n");
    deadline = harness_now_ms() + DEADLINE_MS;
    for (;;) {
        code = http_get_ok(f->mport, "/healthz", &head, &body);
        free(head);
        free(body);
        if (code == 503 || harness_now_ms() >= deadline) {
            break;
        }
        poll(NULL, 0, 20);
    }
    assert_int_equal(code, 503);
    {
        char key[96];
        struct scrape *sc = scrape(f->mport);

        snprintf(key, sizeof(key), "riven_backend_up{server=\"127.0.0.1:%d\"}",
                 mc_port);
        assert_int_equal(sval(sc, key), 0);
        snprintf(key, sizeof(key),
                 "riven_backend_errors_total{server=\"127.0.0.1:%d\"}",
                 mc_port);
        assert_int_equal(sval(sc, key), 1);
        assert_int_equal(
            sval(sc, "riven_errors_total{kind=\"backend_unavailable\"}"), 1);
        scrape_free(sc);
    }
    assert_int_equal(http_get_ok(f->mport, "/nope", &head, &body), 404);
    free(head);
    free(body);
    harness_conn_close(c);
}

/* Parse "STAT name value\r\n" lines up to END into a scrape-like list
 * (key = name). */
static struct scrape *
stats_parse(char *text)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    char *line, *save = NULL;
    size_t lines = 1;

    assert_non_null(sc);
    sc->body = text;
    for (const char *p = text; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    sc->s = calloc(lines, sizeof(*sc->s));
    assert_non_null(sc->s);
    for (line = strtok_r(text, "\r\n", &save); line != NULL;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *name, *val;

        if (strcmp(line, "END") == 0) {
            break;
        }
        assert_memory_equal(line, "STAT ", 5);
        name = line + 5;
        val = strchr(name, ' ');
        assert_non_null(val);
        *val++ = '\0';
        sc->s[sc->ns].key = name;
        sc->s[sc->ns++].v = strtod(val, NULL);
    }
    return sc;
}

/* Sum of riven_requests_total over protocols for one command. */
static uint64_t
cmd_total(const struct scrape *sc, const char *cmd)
{
    static const char *const protos[] = {"text", "meta", "binary"};
    uint64_t sum = 0;

    for (size_t p = 0; p < 3; p++) {
        char key[96];

        snprintf(key, sizeof(key),
                 "riven_requests_total{command=\"%s\",protocol=\"%s\"}", cmd,
                 protos[p]);
        sum += sval(sc, key);
    }
    return sum;
}

/* `stats proxy` (text) and the binary stat "proxy" report the counters
 * /metrics exports, under the same names in both protocols. */
static void
test_stats_proxy(void **state)
{
    struct fixture *f = *state;
    static const char *const same[] = {
        "total_connections",
        "rejected_connections",
        "bytes_read",
        "backend_bytes_read",
        "backend_bytes_written",
        "cmd_get",
        "cmd_set",
        "cmd_mg",
        "get_hits",
        "get_misses",
        "errors_client_error",
        "backend_0_requests",
        "config_reloads_success",
    };
    struct harness_conn *c, *b;
    struct scrape *st, *sc, *bs;
    struct tally t = {0};
    uint8_t pkt[64];
    size_t n, len = 0;
    char *text, key[96];

    NEED_RIVEN();
    wait_value(f->mport, "riven_connections_current", 0); /* probe gone */
    c = harness_conn_open(f->st.port, DEADLINE_MS);
    assert_non_null(c);
    send_text(c, &t);
    send_meta(c, &t);
    assert_int_equal(harness_sends(c, "stats proxy\r\n"), 0);
    text = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &len);
    assert_non_null(text);
    st = stats_parse(text);
    /* the stats request itself is counted after its reply */
    wait_value(f->mport,
               "riven_requests_total{command=\"stats\","
               "protocol=\"text\"}",
               1);
    sc = scrape(f->mport);

    assert_int_equal(sval(st, "curr_connections"),
                     sval(sc, "riven_connections_current"));
    assert_int_equal(sval(st, "curr_connections"), 1);
    assert_int_equal(sval(st, "total_connections"),
                     sval(sc, "riven_connections_total"));
    assert_int_equal(sval(st, "bytes_read"),
                     sval(sc, "riven_client_received_bytes_total"));
    assert_int_equal(sval(st, "bytes_read"), t.rx + strlen("stats proxy\r\n"));
    /* bytes_written does not hold the stats reply yet; /metrics does */
    assert_int_equal(sval(st, "bytes_written"), t.tx);
    assert_int_equal(sval(st, "bytes_written") + len,
                     sval(sc, "riven_client_sent_bytes_total"));
    assert_int_equal(sval(st, "cmd_get"), cmd_total(sc, "get"));
    assert_int_equal(sval(st, "cmd_set"), cmd_total(sc, "set"));
    assert_int_equal(sval(st, "cmd_incr"), cmd_total(sc, "incr"));
    assert_int_equal(sval(st, "cmd_mg"), cmd_total(sc, "mg"));
    assert_int_equal(sval(st, "cmd_stats"), 0);
    assert_int_equal(sval(st, "requests_meta"), 6);
    assert_int_equal(sval(st, "requests_text"), 26);
    assert_int_equal(sval(st, "get_hits"),
                     sval(sc, "riven_get_hits_total{command=\"get\"}") +
                         sval(sc, "riven_get_hits_total{command=\"gets\"}") +
                         sval(sc, "riven_get_hits_total{command=\"gat\"}") +
                         sval(sc, "riven_get_hits_total{command=\"mg\"}"));
    assert_int_equal(sval(st, "get_hits"), 6);
    assert_int_equal(sval(st, "get_misses"), 7);
    assert_int_equal(sval(st, "errors_client_error"),
                     sval(sc, "riven_errors_total{kind=\"client_error\"}"));
    assert_int_equal(sval(st, "errors_client_error"), 4);
    snprintf(key, sizeof(key),
             "riven_backend_requests_total{server="
             "\"127.0.0.1:%d\"}",
             f->st.mc.port);
    assert_int_equal(sval(st, "backend_0_requests"), sval(sc, key));
    assert_int_equal(sval(st, "backend_0_up"), 1);
    assert_int_equal(sval(st, "config_reloads_failure"),
                     sval(sc, "riven_config_reloads_total{result="
                              "\"failure\"}"));
    assert_int_equal(sval(st, "latency_get_count"),
                     sval(sc, "riven_request_duration_seconds_count"
                              "{command=\"get\"}"));

    /* The first stats proxy ran before any stats request was counted, so
     * it has no latency_stats_* lines: take a second one for the names. */
    scrape_free(st);
    assert_int_equal(harness_sends(c, "stats proxy\r\n"), 0);
    text = harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, &len);
    assert_non_null(text);
    st = stats_parse(text);
    wait_value(f->mport,
               "riven_requests_total{command=\"stats\","
               "protocol=\"text\"}",
               2);

    /* binary: stat with key "proxy", one packet per STAT, an empty one
     * last; the same names in the same order */
    b = harness_conn_open(f->st.port, DEADLINE_MS);
    assert_non_null(b);
    n = bin_req(pkt, 0x10, "proxy", NULL, 0, NULL);
    assert_int_equal(harness_send(b, pkt, n), 0);
    bs = calloc(1, sizeof(*bs));
    assert_non_null(bs);
    bs->s = calloc(st->ns + 64, sizeof(*bs->s));
    assert_non_null(bs->s);
    for (;;) {
        struct bin_res r;
        struct tally bt = {0};

        bin_read(b, &bt, &r);
        assert_int_equal(r.op, 0x10);
        assert_int_equal(r.status, 0);
        if (r.klen == 0) {
            assert_int_equal(r.blen, 0);
            free(r.body);
            break;
        }
        assert_true(bs->ns < st->ns + 64);
        /* body: key, then the value; both plain text */
        bs->s[bs->ns].v = strtod(r.body + r.klen, NULL);
        r.body[r.klen] = '\0';
        bs->s[bs->ns++].key = r.body;
    }
    assert_int_equal(bs->ns, st->ns);
    for (size_t i = 0; i < st->ns; i++) {
        assert_string_equal(bs->s[i].key, st->s[i].key);
    }
    /* nothing ran in between but the binary connection's accept */
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        uint64_t want = sval(st, same[i]);

        if (scrape_find(bs, same[i]) == NULL) {
            fail_msg("binary stat proxy lacks %s", same[i]);
        }
        if (strcmp(same[i], "total_connections") == 0) {
            want++;
        } else if (strcmp(same[i], "bytes_read") == 0) {
            want += n;
        }
        if (sval(bs, same[i]) != want) {
            fail_msg("binary stat proxy: %s = %llu, want %llu", same[i],
                     (unsigned long long)sval(bs, same[i]),
                     (unsigned long long)want);
        }
    }
    for (size_t i = 0; i < bs->ns; i++) {
        free(bs->s[i].key);
    }
    free(bs->s);
    free(bs);
    harness_conn_close(b);
    harness_conn_close(c);
    scrape_free(st);
    scrape_free(sc);
}

/* ---- concurrent scrapes --------------------------------------------- */

struct conc {
    int port;              /* riven */
    int mport;             /* /metrics */
    int64_t until;         /* clients stop at this monotonic ms */
    _Atomic uint64_t sets; /* completed set requests */
    _Atomic uint64_t gets; /* completed get requests (all hits) */
    _Atomic int failed;    /* a client or the scraper failed */
    _Atomic int stop;      /* tells the scraper to finish */
    uint64_t scrapes;      /* scraper: scrapes checked */
    char err[512];         /* first failure (set once) */
    pthread_mutex_t lock;
};

struct client_arg {
    struct conc *cc;
    int id;
};

static void
conc_fail(struct conc *cc, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&cc->lock);
    if (!atomic_load(&cc->failed)) {
        va_start(ap, fmt);
        vsnprintf(cc->err, sizeof(cc->err), fmt, ap);
        va_end(ap);
        atomic_store(&cc->failed, 1);
    }
    pthread_mutex_unlock(&cc->lock);
}

/* set c<id> then get it back, until the time or op budget is spent. No
 * cmocka calls here: failures are recorded for the main thread. */
static void *
client_main(void *p)
{
    struct client_arg *a = p;
    struct conc *cc = a->cc;
    struct harness_conn *c = harness_conn_open(cc->port, DEADLINE_MS);
    char req[160], want[96];

    if (c == NULL) {
        conc_fail(cc, "client %d: cannot connect", a->id);
        return NULL;
    }
    for (int i = 0; i < CONC_MAX_OPS && harness_now_ms() < cc->until &&
                    !atomic_load(&cc->failed);
         i++) {
        int vlen = snprintf(want, sizeof(want), "v%d-%d", a->id, i);

        snprintf(req, sizeof(req), "set c%d 0 0 %d\r\n%s\r\n", a->id, vlen,
                 want);
        if (!harness_roundtrip(c, req, "STORED\r\n")) {
            conc_fail(cc, "client %d: set %d failed", a->id, i);
            break;
        }
        atomic_fetch_add(&cc->sets, 1);
        snprintf(req, sizeof(req), "get c%d\r\n", a->id);
        snprintf(want, sizeof(want), "VALUE c%d 0 %d\r\nv%d-%d\r\nEND\r\n",
                 a->id, vlen, a->id, i);
        if (!harness_roundtrip(c, req, want)) {
            conc_fail(cc, "client %d: get %d failed", a->id, i);
            break;
        }
        atomic_fetch_add(&cc->gets, 1);
    }
    harness_conn_close(c);
    return NULL;
}

/* Scrape every SCRAPE_EVERY ms; check each scrape against the previous. */
static void *
scraper_main(void *p)
{
    struct conc *cc = p;
    struct scrape *prev = NULL;
    int64_t next = harness_now_ms();

    while (!atomic_load(&cc->stop) && !atomic_load(&cc->failed)) {
        char err[512];
        struct scrape *cur = scrape_get(cc->mport, err, sizeof(err));
        int64_t left;

        if (cur == NULL) {
            conc_fail(cc, "scrape %llu: %s", (unsigned long long)cc->scrapes,
                      err);
            break;
        }
        if (scrape_check(prev, cur, err, sizeof(err)) != 0) {
            conc_fail(cc, "scrape %llu: %s", (unsigned long long)cc->scrapes,
                      err);
            scrape_free(cur);
            break;
        }
        scrape_free(prev);
        prev = cur;
        cc->scrapes++;
        next += SCRAPE_EVERY; /* a fixed rate, not a wait for a condition */
        left = next - harness_now_ms();
        if (left > 0) {
            poll(NULL, 0, (int)left);
        }
    }
    scrape_free(prev);
    return NULL;
}

/* 100 clients hammer riven while /metrics is scraped 10 times a second: no
 * counter ever goes down, histograms stay consistent, and the final
 * counts equal the requests the clients completed. */
static void
test_concurrent_scrapes(void **state)
{
    struct fixture *f = *state;
    struct conc *cc = calloc(1, sizeof(*cc));
    struct client_arg args[CONC_CLIENTS];
    pthread_t tids[CONC_CLIENTS], scraper;
    struct scrape *base, *after;
    struct expects *x = calloc(1, sizeof(*x));
    uint64_t sets, gets;
    char server[48];
    int started = 0;

    NEED_RIVEN();
    assert_non_null(cc);
    assert_non_null(x);
    pthread_mutex_init(&cc->lock, NULL);
    cc->port = f->st.port;
    cc->mport = f->mport;
    /* the harness's readiness probe is counted before the baseline */
    wait_value(f->mport, "riven_connections_total", 1);
    wait_value(f->mport, "riven_connections_current", 0);
    base = scrape(f->mport);
    cc->until = harness_now_ms() + CONC_RUN_MS;
    assert_int_equal(pthread_create(&scraper, NULL, scraper_main, cc), 0);
    for (int i = 0; i < CONC_CLIENTS; i++) {
        args[i].cc = cc;
        args[i].id = i;
        if (pthread_create(&tids[i], NULL, client_main, &args[i]) != 0) {
            conc_fail(cc, "pthread_create %d: %s", i, strerror(errno));
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    atomic_store(&cc->stop, 1);
    pthread_join(scraper, NULL);
    if (atomic_load(&cc->failed)) {
        fail_msg("%s", cc->err);
    }
    sets = atomic_load(&cc->sets);
    gets = atomic_load(&cc->gets);
    printf("concurrent: %d clients, %llu sets, %llu gets, %llu scrapes\n",
           started, (unsigned long long)sets, (unsigned long long)gets,
           (unsigned long long)cc->scrapes);
    assert_true(cc->scrapes >= CONC_RUN_MS / SCRAPE_EVERY / 2);
    assert_true(sets > 0);

    snprintf(server, sizeof(server), "127.0.0.1:%d", f->st.mc.port);
    expect_cmd(x, "set", "text", sets);
    expect_cmd(x, "get", "text", gets);
    expect_hist(x, "set", sets);
    expect_hist(x, "get", gets);
    expect(x, gets, "riven_get_hits_total{command=\"get\"}");
    expect(x, 0, "riven_get_misses_total{command=\"get\"}");
    expect(x, 0, "riven_errors_total{kind=\"client_error\"}");
    expect(x, sets + gets, "riven_backend_requests_total{server=\"%s\"}",
           server);
    expect(x, CONC_CLIENTS, "riven_connections_total");
    after = expect_settle(f->mport, base, x);
    {
        char err[512];

        if (scrape_check(base, after, err, sizeof(err)) != 0) {
            fail_msg("%s", err);
        }
    }
    wait_value(f->mport, "riven_connections_current", 0);
    scrape_free(after);
    scrape_free(base);
    pthread_mutex_destroy(&cc->lock);
    free(cc);
    free(x);
}

/* ---- config reloads ------------------------------------------------- */

/* Write path atomically (a temp file renamed over it). */
static void
write_file(const char *path, const char *text)
{
    char tmp[160];
    FILE *fp;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void
write_config(const char *path, int listen, int backend, int connect_ms)
{
    char text[512];

    snprintf(text, sizeof(text),
             "listen:\n  - 127.0.0.1:%d\n"
             "pool:\n  servers:\n    - 127.0.0.1:%d\n"
             "timeouts:\n  connect_ms: %d\n",
             listen, backend, connect_ms);
    write_file(path, text);
}

/* SIGHUP with a good file counts a success, with a bad one a failure; the
 * bad one leaves riven serving with the previous configuration. */
static void
test_reload_counter(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"-m", f->maddr, NULL};
    struct harness_conn *c;
    struct tally t = {0};
    struct scrape *sc;
    char path[128];
    int lport = -1;

    NEED_RIVEN();
    /* replace the fixture's riven with one started from a file */
    harness_proc_stop(&f->st.rv, 5000);
    snprintf(f->dir, sizeof(f->dir), "/tmp/riven-metrics-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/riven.yml", f->dir);
    for (int attempt = 0; attempt < 3; attempt++) {
        lport = harness_free_port();
        fixture_metrics_port(f);
        write_config(path, lport, f->st.mc.port, 1000);
        if (harness_riven_start(&f->st.rv, f->st.mc.port, path, lport, extra) ==
                0 &&
            harness_wait_ready(&f->st.rv, f->mport, DEADLINE_MS) == 0) {
            break;
        }
        harness_proc_stop(&f->st.rv, 5000);
    }
    assert_true(f->st.rv.pid > 0);
    f->st.port = lport;
    c = harness_conn_open(lport, DEADLINE_MS);
    assert_non_null(c);
    /* a reply means riven is serving, so its SIGHUP handler is set */
    rt(c, &t, "set r 0 0 1\r\nx\r\n", "STORED\r\n");
    sc = scrape(f->mport);
    assert_int_equal(sval(sc, "riven_config_reloads_total{result=\"success\"}"),
                     0);
    assert_int_equal(sval(sc, "riven_config_reloads_total{result=\"failure\"}"),
                     0);
    scrape_free(sc);

    write_config(path, lport, f->st.mc.port, 500);
    assert_int_equal(harness_proc_signal(&f->st.rv, SIGHUP), 0);
    wait_value(f->mport, "riven_config_reloads_total{result=\"success\"}", 1);
    sc = scrape(f->mport);
    assert_int_equal(sval(sc, "riven_config_reloads_total{result=\"failure\"}"),
                     0);
    scrape_free(sc);
    rt(c, &t, "get r\r\n", "VALUE r 0 1\r\nx\r\nEND\r\n");

    write_file(path, "pool:\n  servers:\n    - 127.0.0.1:99999\n");
    assert_int_equal(harness_proc_signal(&f->st.rv, SIGHUP), 0);
    wait_value(f->mport, "riven_config_reloads_total{result=\"failure\"}", 1);
    sc = scrape(f->mport);
    assert_int_equal(sval(sc, "riven_config_reloads_total{result=\"success\"}"),
                     1);
    scrape_free(sc);
    rt(c, &t, "get r\r\n", "VALUE r 0 1\r\nx\r\nEND\r\n");
    rt(c, &t, "stats proxy\r\n", "");
    {
        char *text =
            harness_recv_until(c, "END\r\n", 5, HARNESS_TIMEOUT_MS, NULL);

        assert_non_null(text);
        assert_non_null(strstr(text, "STAT config_reloads_success 1\r\n"));
        assert_non_null(strstr(text, "STAT config_reloads_failure 1\r\n"));
        free(text);
    }
    harness_conn_close(c);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_promtool),       T(test_exact_counts),
        T(test_healthz_fresh),  T(test_healthz),
        T(test_stats_proxy),    T(test_concurrent_scrapes),
        T(test_reload_counter),
    };
#undef T

    if (!harness_direct() && !harness_riven_available()) {
        fprintf(stderr, "integ_metrics: %s not found (set RIVEN_BIN)\n",
                harness_riven_bin());
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
