/*
 * integ_tls: TLS (issue 14) end to end, against real riven and memcached
 * processes and certificates made for the run by tests/lib/mkcerts.sh.
 *
 * 0. memcached -Z ... ssl_verify_mode=2 alone, with tests/lib/tls_client:
 *    a client with client.pem is served, without a cert, with one of
 *    another CA or an expired one it is refused; the peer fingerprint the
 *    helper computes is the one `openssl x509 -fingerprint -sha256`
 *    prints. Checks the helper and the certificates; needs no riven.
 * a. Through a TLS listener, set/get, mg ... v, gets, a binary GETK/GET
 *    and two pipelined batches (text with a 100,000-byte value crossing
 *    TLS records, binary) answer byte for byte what the plain listener of
 *    the same riven answers.
 * b. verify: require: no cert, a cert of another CA, an expired cert are
 *    refused (TLS 1.3 and TLS 1.2: with 1.2 the handshake itself fails),
 *    each moving riven_tls_handshakes_total{result="no_cert"|"bad_cert"|
 *    "expired"} by exactly 1; a valid client is served, "ok" by 1;
 *    riven_tls_connections_current follows it. A TCP connect+close with
 *    no bytes, and a plain-text request, count "protocol" and get no
 *    memcached reply.
 * c. pool.tls against memcached -Z ssl_verify_mode=2: with a client cert
 *    set/get work (server_name localhost, and without server_name: the
 *    IP checked against the SAN); without a client cert, or with a ca
 *    that did not sign memcached's cert, every request answers
 *    SERVER_ERROR backend unavailable and the server is down
 *    (riven_backend_up 0, /healthz/SERVER 503), as a connect failure.
 * d. SIGHUP with the listener's cert/key paths changed to server2.*: a
 *    TLS connection opened before keeps working; a new one sees
 *    server2.pem's SHA-256 fingerprint; then server2.* overwritten in
 *    place with server.* and SIGHUP again: new connections see
 *    server.pem's (the files are re-read, not only the paths).
 * e. tls_handshake_ms 500: 1,000 TCP connections that never send a
 *    ClientHello are all closed by riven (EOF), none before 250 ms, all
 *    within 3 s after the last one's timeout; {result="timeout"} moves by
 *    exactly 1,000 and a TLS client is served while they wait. Scaled
 *    down, with a message, when ulimit -n is too low.
 * f. The command line: -l tls:ADDR --tls-cert --tls-key --tls-ca
 *    --tls-verify require serve a valid client and refuse one without a
 *    cert.
 *
 * riven is started with the plain listener first and harness_riven_start
 * is given the plain port, so its readiness probe never touches the TLS
 * listener's counters. Every case that needs riven is skipped with
 * RIVEN_DIRECT=1; every case is skipped (counted by cmocka as skipped,
 * with a message) when the openssl CLI is missing, and 0 and c when
 * memcached has no -Z. INTEG_TLS_ONLY=test_name runs one case,
 * INTEG_TLS_LOG=debug sets riven's log_level, INTEG_TLS_KEEP=1 keeps the
 * temp dir (certificates, configs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "binpkt.h"
#include "harness.h"
#include "tls_client.h"

#define UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define POLL_MS     10
#define WAIT_MS     5000   /* deadline of every polled condition */
#define TLS12       0x0303 /* TLS1_2_VERSION */
#define HS_MS       500    /* case e: timeouts.tls_handshake_ms */
#define SILENT_N    1000   /* case e: connections that never say hello */
#define CLOSE_SLACK 3000   /* case e: ms after the timeout, all closed */
#define BIG_LEN     100000
#define FD_RESERVE  200 /* descriptors left for everything else */
#define PLEN        192 /* a path in g.dir */

#define OP_GET  0x00
#define OP_NOOP 0x0a
#define OP_GETK 0x0c

/* The run's temp dir and what this machine has. */
static struct {
    char dir[64];   /* certificates and configs; "" if none */
    bool openssl;   /* the openssl CLI exists */
    bool certs;     /* mkcerts.sh succeeded */
    bool mc_tls;    /* memcached -h mentions --enable-ssl */
    char why[256];  /* why certs is false */
    unsigned nconf; /* configs written, for unique names */
} g;

/* g.dir/name into out. */
static const char *
dpath(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", g.dir, name);
    return out;
}

#define PATH(var, name)                                                        \
    char var[PLEN];                                                            \
    dpath(var, sizeof(var), name)

/* ---- group setup: certificates -------------------------------------- */

/* tests/lib/mkcerts.sh: $RIVEN_MKCERTS, else from the working directory,
 * else up from the binary (build[/SAN]/tests/integ_tls). */
static bool
find_mkcerts(char *out, size_t outlen)
{
    const char *env = getenv("RIVEN_MKCERTS");
    char exe[PATH_MAX];
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        snprintf(out, outlen, "%s", env);
        return access(out, R_OK) == 0;
    }
    snprintf(out, outlen, "tests/lib/mkcerts.sh");
    if (access(out, R_OK) == 0) {
        return true;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return false;
    }
    exe[n] = '\0';
    for (int up = 0; up < 5; up++) {
        char *slash = strrchr(exe, '/');

        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        snprintf(out, outlen, "%s/tests/lib/mkcerts.sh", exe);
        if (access(out, R_OK) == 0) {
            return true;
        }
    }
    return false;
}

static bool
memcached_has_tls(void)
{
    FILE *p = popen("memcached -h 2>&1", "r");
    char line[512];
    bool yes = false;

    if (p == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), p) != NULL) {
        yes = yes || strstr(line, "--enable-ssl") != NULL;
    }
    pclose(p);
    return yes;
}

static int
group_setup(void **state)
{
    char script[PATH_MAX + 32], cmd[PATH_MAX + 128];
    int rc;

    (void)state;
    g.openssl = system("command -v openssl >/dev/null 2>&1") == 0;
    g.mc_tls = memcached_has_tls();
    if (!g.openssl) {
        snprintf(g.why, sizeof(g.why),
                 "the openssl CLI is not installed "
                 "(Debian package openssl)");
        return 0;
    }
    if (!find_mkcerts(script, sizeof(script))) {
        snprintf(g.why, sizeof(g.why),
                 "tests/lib/mkcerts.sh not found (run from the repository "
                 "or set RIVEN_MKCERTS)");
        return 0;
    }
    snprintf(g.dir, sizeof(g.dir), "/tmp/riven-tls-XXXXXX");
    if (mkdtemp(g.dir) == NULL) {
        snprintf(g.why, sizeof(g.why), "mkdtemp: %s", strerror(errno));
        g.dir[0] = '\0';
        return 0;
    }
    snprintf(cmd, sizeof(cmd), "bash '%s' '%s'", script, g.dir);
    rc = system(cmd);
    if (rc != 0) {
        snprintf(g.why, sizeof(g.why),
                 "mkcerts.sh %s failed (status %d): see its message above",
                 g.dir, rc);
        return 0;
    }
    g.certs = true;
    printf("integ_tls: certificates in %s; memcached %s -Z\n", g.dir,
           g.mc_tls ? "has" : "lacks");
    return 0;
}

static int
group_teardown(void **state)
{
    DIR *d;
    struct dirent *e;

    (void)state;
    if (g.dir[0] == '\0') {
        return 0;
    }
    if (getenv("INTEG_TLS_KEEP") != NULL) {
        printf("integ_tls: kept %s\n", g.dir);
        return 0;
    }
    /* flat: mkcerts.sh removes its work dir, configs are files */
    if ((d = opendir(g.dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            char p[PLEN + 256];

            if (e->d_name[0] == '.' &&
                (e->d_name[1] == '\0' ||
                 (e->d_name[1] == '.' && e->d_name[2] == '\0'))) {
                continue;
            }
            unlink(dpath(p, sizeof(p), e->d_name));
        }
        closedir(d);
    }
    rmdir(g.dir);
    return 0;
}

/* Skip unless the certificates are there (and riven, unless no_riven). */
static void
need(bool riven, bool mc_tls)
{
    if (!g.certs) {
        fprintf(stderr, "integ_tls: skipped: %s\n", g.why);
        skip();
    }
    if (mc_tls && !g.mc_tls) {
        fprintf(stderr, "integ_tls: skipped: memcached has no TLS "
                        "(-Z, --enable-ssl)\n");
        skip();
    }
    if (riven && harness_direct()) {
        skip();
    }
}

/* ---- files ---------------------------------------------------------- */

/* Write path atomically (a temp file renamed over it). */
static void
write_file(const char *path, const char *text, size_t len)
{
    char tmp[PLEN + 8];
    FILE *fp;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(tmp, 0644), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Copy g.dir/from over g.dir/to, atomically. */
static void
copy_over(const char *from, const char *to)
{
    PATH(src, from);
    PATH(dst, to);
    char buf[8192];
    FILE *f = fopen(src, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(buf));
    write_file(dst, buf, n);
}

/* ---- HTTP and metrics ------------------------------------------------ */

/* GET path from 127.0.0.1:port (HTTP/1.0): the status, -1 on failure;
 * the body (malloc'd) in *body when body is not NULL. */
static int
http_get(int port, const char *path, char **body)
{
    struct harness_conn *c = harness_conn_open(port, WAIT_MS);
    char req[256];
    const char *sep;
    int code = -1;

    if (body != NULL) {
        *body = NULL;
    }
    if (c == NULL) {
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    if (harness_sends(c, req) == 0 && harness_wait_eof(c, WAIT_MS) &&
        c->len > 12 && sscanf(c->buf, "HTTP/1.%*d %d", &code) == 1 &&
        (sep = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL && body != NULL) {
        size_t n = c->len - (size_t)(sep + 4 - c->buf);

        *body = malloc(n + 1);
        assert_non_null(*body);
        memcpy(*body, sep + 4, n);
        (*body)[n] = '\0';
    }
    harness_conn_close(c);
    return code;
}

/* The value of the sample named key ("name{labels}") in a text
 * exposition; 0 when absent (riven leaves out label sets never seen). */
static uint64_t
mval(const char *body, const char *key)
{
    size_t n = strlen(key);

    for (const char *p = body; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');

        if (strncmp(p, key, n) == 0 && p[n] == ' ') {
            return (uint64_t)strtod(p + n + 1, NULL);
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return 0;
}

/* GET /metrics; fails the test if it cannot. */
static char *
scrape(int mport)
{
    char *body = NULL;
    int code = http_get(mport, "/metrics", &body);

    if (code != 200 || body == NULL) {
        free(body);
        fail_msg("GET http://127.0.0.1:%d/metrics: status %d", mport, code);
    }
    return body;
}

static uint64_t
metric(int mport, const char *key)
{
    char *body = scrape(mport);
    uint64_t v = mval(body, key);

    free(body);
    return v;
}

/* Poll until key == want; fail at the deadline. */
static void
wait_metric(int mport, const char *key, uint64_t want)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    uint64_t v;

    while ((v = metric(mport, key)) != want && harness_now_ms() < deadline) {
        poll(NULL, 0, POLL_MS);
    }
    if (v != want) {
        fail_msg("%s is %llu after %d ms, expected %llu", key,
                 (unsigned long long)v, WAIT_MS, (unsigned long long)want);
    }
}

/* riven_tls_handshakes_total by result. */
enum { HS_OK, HS_NO_CERT, HS_BAD_CERT, HS_EXPIRED, HS_TIMEOUT, HS_PROTO, NHS };
static const char *const hs_name[NHS] = {"ok",      "no_cert", "bad_cert",
                                         "expired", "timeout", "protocol"};

struct hs {
    uint64_t v[NHS];
};

static void
hs_scrape(int mport, struct hs *h)
{
    char *body = scrape(mport);
    char key[96];

    for (int i = 0; i < NHS; i++) {
        snprintf(key, sizeof(key), "riven_tls_handshakes_total{result=\"%s\"}",
                 hs_name[i]);
        h->v[i] = mval(body, key);
    }
    free(body);
}

/* Poll until every counter has moved from base by delta (or the deadline
 * passes), then require each to have moved by exactly that. */
static void
hs_expect(int mport, const struct hs *base, const uint64_t delta[NHS],
          const char *what)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    struct hs now;
    bool bad = false;

    for (;;) {
        bool reached = true;

        hs_scrape(mport, &now);
        for (int i = 0; i < NHS; i++) {
            reached = reached && now.v[i] - base->v[i] >= delta[i];
        }
        if (reached || harness_now_ms() >= deadline) {
            break;
        }
        poll(NULL, 0, POLL_MS);
    }
    /* a late extra increment would show up after "reached": look again */
    poll(NULL, 0, 50);
    hs_scrape(mport, &now);
    for (int i = 0; i < NHS; i++) {
        if (now.v[i] - base->v[i] != delta[i]) {
            fprintf(stderr,
                    "  %s: riven_tls_handshakes_total{result=\"%s\"} moved "
                    "by %llu, expected %llu\n",
                    what, hs_name[i],
                    (unsigned long long)(now.v[i] - base->v[i]),
                    (unsigned long long)delta[i]);
            bad = true;
        }
    }
    if (bad) {
        fail_msg("%s: handshake counters did not move exactly", what);
    }
}

/* ---- riven ------------------------------------------------------------ */

struct rv {
    struct harness_proc p;
    int plain;      /* plain listener */
    int tls;        /* TLS listener, 0 if none */
    int mport;      /* /metrics */
    char maddr[32]; /* "127.0.0.1:<mport>" */
    char conf[PLEN];
};

/* The YAML for r's ports: a plain listener, a TLS listener with the tls:
 * mapping body tls (none if NULL), then tail (pool:, timeouts:...). */
static void
rv_write_conf(struct rv *r, const char *tls, const char *tail)
{
    const char *level = getenv("INTEG_TLS_LOG");
    char text[8192];
    int n;

    n = snprintf(text, sizeof(text), "listen:\n  - \"127.0.0.1:%d\"\n",
                 r->plain);
    if (tls != NULL) {
        n += snprintf(text + n, sizeof(text) - (size_t)n,
                      "  - {addr: \"127.0.0.1:%d\", tls: {%s}}\n", r->tls, tls);
    }
    n += snprintf(text + n, sizeof(text) - (size_t)n,
                  "%s\nmetrics: {listen: \"%s\"}\nlog_level: %s\n", tail,
                  r->maddr, level != NULL ? level : "warn");
    assert_true(n > 0 && (size_t)n < sizeof(text));
    write_file(r->conf, text, (size_t)n);
}

static void
rv_print_conf(const struct rv *r)
{
    char buf[8192];
    FILE *f = fopen(r->conf, "r");
    size_t n = 0;

    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    fprintf(stderr, "integ_tls: riven config %s:\n%s", r->conf, buf);
}

/* Start riven -c with that config on fresh ports and wait for its
 * metrics endpoint; fails the test (printing the config) if it cannot. */
static void
rv_start(struct rv *r, const char *tls, const char *tail)
{
    memset(r, 0, sizeof(*r));
    r->p.pid = -1;
    snprintf(r->conf, sizeof(r->conf), "%s/riven-%u.yml", g.dir, g.nconf++);
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *extra[] = {"-m", r->maddr, NULL};

        r->plain = harness_free_port();
        r->tls = tls != NULL ? harness_free_port() : 0;
        r->mport = harness_free_port();
        assert_true(r->plain > 0 && r->tls >= 0 && r->mport > 0);
        if (r->tls == r->plain || r->mport == r->plain || r->mport == r->tls) {
            continue;
        }
        snprintf(r->maddr, sizeof(r->maddr), "127.0.0.1:%d", r->mport);
        rv_write_conf(r, tls, tail);
        if (harness_riven_start(&r->p, 0, r->conf, r->plain, extra) == 0 &&
            harness_wait_ready(&r->p, r->mport, WAIT_MS) == 0) {
            return;
        }
        harness_proc_stop(&r->p, 2000);
    }
    rv_print_conf(r);
    fail_msg("riven did not start with %s (TLS settings not supported?)",
             r->conf);
}

static void
rv_stop(struct rv *r)
{
    bool alive = harness_proc_alive(&r->p);

    harness_proc_stop(&r->p, 5000);
    unlink(r->conf);
    if (!alive) {
        fail_msg("riven died during the test");
    }
}

/* The listener's tls: body for a cert pair and verify mode. */
static void
listener_tls(char *out, size_t outlen, const char *cert, const char *verify)
{
    PATH(crt, cert);
    PATH(ca, "ca.pem");
    char key[PLEN];

    snprintf(key, sizeof(key), "%.*s.key", (int)(strlen(crt) - 4), crt);
    snprintf(out, outlen, "cert: \"%s\", key: \"%s\", ca: \"%s\", verify: %s",
             crt, key, ca, verify);
}

static void
pool_tail(char *out, size_t outlen, int mc_port, const char *more)
{
    snprintf(out, outlen, "pool:\n  servers: [\"127.0.0.1:%d\"]\n%s", mc_port,
             more != NULL ? more : "");
}

/* ---- TLS clients ------------------------------------------------------ */

/* Options: verify riven's cert against ca.pem as "localhost"; with the
 * client cert NAME.pem/NAME.key unless name is NULL. Paths live in the
 * caller's buffers. */
struct copts {
    struct tls_client_opts o;
    char ca[PLEN], cert[PLEN], key[PLEN];
};

static const struct tls_client_opts *
copts(struct copts *c, const char *name, int max_version)
{
    memset(c, 0, sizeof(*c));
    c->o.ca = dpath(c->ca, sizeof(c->ca), "ca.pem");
    c->o.sni = "localhost";
    c->o.verify = true;
    c->o.max_version = max_version;
    c->o.timeout_ms = WAIT_MS;
    if (name != NULL) {
        char f[64];

        snprintf(f, sizeof(f), "%s.pem", name);
        c->o.cert = dpath(c->cert, sizeof(c->cert), f);
        snprintf(f, sizeof(f), "%s.key", name);
        c->o.key = dpath(c->key, sizeof(c->key), f);
    }
    return &c->o;
}

static struct tls_client *
tls_open(int port, const char *client, int max_version)
{
    struct copts co;
    char err[256];
    struct tls_client *c = tls_client_open(
        port, copts(&co, client, max_version), err, sizeof(err));

    if (c == NULL) {
        fail_msg("TLS client (%s) to 127.0.0.1:%d: %s",
                 client != NULL ? client : "no cert", port, err);
    }
    return c;
}

/* A client that must be refused; returns how (1 in the handshake, 2
 * after it). */
static int
expect_refused(int port, const char *client, int max_version)
{
    struct copts co;
    char err[256];
    int how;
    bool refused =
        tls_client_refused(port, copts(&co, client, max_version), "version\r\n",
                           WAIT_MS, &how, err, sizeof(err));

    printf("    %s, %s: %s\n", client != NULL ? client : "no cert",
           max_version == TLS12 ? "TLS 1.2" : "default (1.3)", err);
    if (!refused) {
        fail_msg("client %s (max version 0x%x) was not refused: %s",
                 client != NULL ? client : "without cert", max_version, err);
    }
    return how;
}

/* The SHA-256 of the cert riven's TLS port presents to a new client. */
static void
peer_fp(int port, uint8_t fp[TLS_CLIENT_FP_LEN])
{
    struct tls_client *c = tls_open(port, NULL, 0);

    assert_int_equal(tls_client_peer_fp(c, fp), 0);
    tls_client_close(c);
}

static void
file_fp(const char *name, uint8_t fp[TLS_CLIENT_FP_LEN])
{
    PATH(p, name);

    assert_int_equal(tls_client_file_fp(p, fp), 0);
}

static void
assert_fp(const uint8_t got[TLS_CLIENT_FP_LEN], const char *name)
{
    uint8_t want[TLS_CLIENT_FP_LEN];
    char a[3 * TLS_CLIENT_FP_LEN], b[3 * TLS_CLIENT_FP_LEN];

    file_fp(name, want);
    if (memcmp(got, want, TLS_CLIENT_FP_LEN) != 0) {
        fail_msg("server certificate %s, expected %s's %s",
                 tls_client_fp_hex(got, a), name, tls_client_fp_hex(want, b));
    }
}

/* ---- endpoints: one plain or TLS connection --------------------------- */

struct ep {
    struct harness_conn *h; /* plain, or */
    struct tls_client *t;   /* TLS */
};

static void
ep_send(struct ep *e, const void *data, size_t len)
{
    int rc = e->h != NULL ? harness_send(e->h, data, len)
                          : tls_client_send(e->t, data, len);

    if (rc != 0) {
        fail_msg("send of %zu bytes failed%s%s", len, e->t ? ": " : "",
                 e->t ? tls_client_error(e->t) : "");
    }
}

static char *
ep_until(struct ep *e, const char *term, size_t *n)
{
    char *r = e->h != NULL
                  ? harness_recv_until(e->h, term, strlen(term), WAIT_MS, n)
                  : tls_client_recv_until(e->t, term, strlen(term), WAIT_MS, n);

    if (r == NULL) {
        fail_msg("no reply up to \"%s\"%s%s", term, e->t ? ": " : "",
                 e->t ? tls_client_error(e->t) : "");
    }
    return r;
}

static char *
ep_n(struct ep *e, size_t n)
{
    char *r = e->h != NULL ? harness_recv_n(e->h, n, WAIT_MS)
                           : tls_client_recv_n(e->t, n, WAIT_MS);

    if (r == NULL) {
        fail_msg("no %zu-byte reply%s%s", n, e->t ? ": " : "",
                 e->t ? tls_client_error(e->t) : "");
    }
    return r;
}

static void
ep_expect(struct ep *e, const void *want, size_t len)
{
    bool ok = e->h != NULL ? harness_expect_n(e->h, want, len, WAIT_MS)
                           : tls_client_expect_n(e->t, want, len, WAIT_MS);

    if (!ok) {
        fail_msg("reply differs from the expected %zu bytes", len);
    }
}

static void
ep_sends(struct ep *e, const char *s)
{
    ep_send(e, s, strlen(s));
}

static void
ep_expects(struct ep *e, const char *s)
{
    ep_expect(e, s, strlen(s));
}

/* A growing byte string. */
struct bytes {
    char *p;
    size_t n;
};

static void
bytes_add(struct bytes *b, const char *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    assert_non_null(b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void
bytes_adds(struct bytes *b, const char *s)
{
    bytes_add(b, s, strlen(s));
}

/* Send req followed by "mn\r\n"; the reply through "MN\r\n", appended. */
static void
ep_meta_framed(struct ep *e, const char *req, struct bytes *out)
{
    size_t n;
    char *r;

    ep_sends(e, req);
    ep_sends(e, "mn\r\n");
    r = ep_until(e, "MN\r\n", &n);
    bytes_add(out, r, n);
    free(r);
}

/* Read npkt binary responses; appended whole (header and body). */
static void
ep_bin_read(struct ep *e, int npkt, struct bytes *out)
{
    for (int i = 0; i < npkt; i++) {
        char *h = ep_n(e, BINPKT_HEADER_LEN), *body = NULL;
        uint32_t blen;

        assert_int_equal((uint8_t)h[0], 0x81);
        blen = (uint32_t)(uint8_t)h[8] << 24 | (uint32_t)(uint8_t)h[9] << 16 |
               (uint32_t)(uint8_t)h[10] << 8 | (uint32_t)(uint8_t)h[11];
        bytes_add(out, h, BINPKT_HEADER_LEN);
        if (blen > 0) {
            body = ep_n(e, blen);
            bytes_add(out, body, blen);
        }
        free(h);
        free(body);
    }
}

/* Both byte strings equal, or fail showing where they differ. */
static void
same_bytes(const char *what, const struct bytes *plain, const struct bytes *tls)
{
    if (harness_diff("plain", plain->p, plain->n, "tls", tls->p, tls->n) >= 0) {
        fail_msg("%s: the TLS listener's reply differs from the plain one's",
                 what);
    }
}

/* ---- 0. memcached -Z alone -------------------------------------------- */

/* memcached -Z with server.pem, requiring a client cert signed by ca.pem. */
static void
mc_tls_start(struct harness_proc *mc)
{
    PATH(crt, "server.pem");
    PATH(key, "server.key");
    PATH(ca, "ca.pem");
    char opt[4 * PLEN];
    const char *extra[] = {"-Z", "-o", opt, NULL};

    snprintf(opt, sizeof(opt),
             "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=2",
             crt, key, ca);
    assert_int_equal(harness_memcached_start(mc, 0, extra), 0);
}

/* `openssl x509 -fingerprint -sha256` of g.dir/name: "AB:CD:..." */
static void
cli_fp(const char *name, char *out, size_t outlen)
{
    PATH(p, name);
    char cmd[PLEN + 64], line[256];
    FILE *f;
    const char *eq;

    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in '%s' -noout -fingerprint -sha256", p);
    f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    pclose(f);
    eq = strchr(line, '=');
    assert_non_null(eq);
    snprintf(out, outlen, "%.*s", (int)strcspn(eq + 1, "\r\n"), eq + 1);
}

static void
test_memcached_tls_direct(void **state)
{
    struct harness_proc mc;
    struct tls_client *c;
    uint8_t fp[TLS_CLIENT_FP_LEN];
    char hex[3 * TLS_CLIENT_FP_LEN], cli[128];

    (void)state;
    need(false, true);
    mc_tls_start(&mc);

    c = tls_open(mc.port, "client", 0);
    printf("    memcached -Z: client.pem served over %s\n",
           tls_client_version(c));
    assert_true(
        tls_client_roundtrip(c, "set d 0 0 5\r\nhello\r\n", "STORED\r\n"));
    assert_true(tls_client_roundtrip(c, "get d\r\n",
                                     "VALUE d 0 5\r\nhello\r\nEND\r\n"));
    assert_int_equal(tls_client_peer_fp(c, fp), 0);
    tls_client_close(c);
    assert_fp(fp, "server.pem");
    cli_fp("server.pem", cli, sizeof(cli));
    assert_string_equal(tls_client_fp_hex(fp, hex), cli);

    /* over TLS 1.2 as well */
    c = tls_open(mc.port, "client", TLS12);
    assert_string_equal(tls_client_version(c), "TLSv1.2");
    assert_true(tls_client_roundtrip(c, "get d\r\n",
                                     "VALUE d 0 5\r\nhello\r\nEND\r\n"));
    tls_client_close(c);

    assert_int_equal(expect_refused(mc.port, NULL, TLS12), 1);
    expect_refused(mc.port, NULL, 0);
    assert_int_equal(expect_refused(mc.port, "other-client", TLS12), 1);
    expect_refused(mc.port, "other-client", 0);
    assert_int_equal(expect_refused(mc.port, "expired", TLS12), 1);
    expect_refused(mc.port, "expired", 0);

    /* and the client side's own checks: other-ca does not trust
     * memcached's cert; a wrong name does not match it */
    {
        struct copts co;
        char err[256];
        struct tls_client *x;

        copts(&co, "client", 0);
        dpath(co.ca, sizeof(co.ca), "other-ca.pem");
        x = tls_client_open(mc.port, &co.o, err, sizeof(err));
        printf("    ca other-ca.pem: %s\n", err);
        assert_null(x);
        copts(&co, "client", 0);
        co.o.sni = "not-localhost.example";
        x = tls_client_open(mc.port, &co.o, err, sizeof(err));
        printf("    name not-localhost.example: %s\n", err);
        assert_null(x);
        copts(&co, "client", 0);
        co.o.sni = NULL; /* 127.0.0.1 against the SAN */
        x = tls_client_open(mc.port, &co.o, err, sizeof(err));
        assert_non_null(x);
        tls_client_close(x);
    }
    assert_true(harness_proc_alive(&mc));
    harness_proc_stop(&mc, 5000);
}

/* ---- a. the same bytes over TLS and plain ------------------------------ */

/* The text and meta reads, each framed by mn; the binary GETK, GET of a
 * missing key and NOOP in one write; the pipelined batch. */
static void
run_reads(struct ep *txt, struct ep *bin, struct bytes *t, struct bytes *b)
{
    static const char *const reads[] = {
        "get k\r\n",      "gets k\r\n",     "mg k v\r\n",
        "mg k s f v\r\n", "mg nokey v\r\n", "get k nokey k\r\n",
    };
    uint8_t pkt[3 * 64];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        ep_meta_framed(txt, reads[i], t);
    }
    n += binpkt_request(pkt + n, OP_GETK, "k", NULL, 0, NULL, 0, 0x11);
    n += binpkt_request(pkt + n, OP_GET, "nokey", NULL, 0, NULL, 0, 0x12);
    n += binpkt_request(pkt + n, OP_NOOP, NULL, NULL, 0, NULL, 0, 0x13);
    ep_send(bin, pkt, n);
    ep_bin_read(bin, 3, b);
}

/* One write of several requests, the 100,000-byte value among them; the
 * exact reply is known. */
static size_t
run_batch(struct ep *e, const char *big)
{
    struct bytes req = {0}, want = {0};
    char line[64];

    bytes_adds(&req, "set p1 0 0 2\r\nv1\r\nget p1\r\nmg p1 v\r\n");
    snprintf(line, sizeof(line), "set big 0 0 %d\r\n", BIG_LEN);
    bytes_adds(&req, line);
    bytes_add(&req, big, BIG_LEN);
    bytes_adds(&req, "\r\nget big\r\ndelete p1\r\nget p1\r\nmn\r\n");

    bytes_adds(&want, "STORED\r\nVALUE p1 0 2\r\nv1\r\nEND\r\nVA 2\r\nv1\r\n");
    snprintf(line, sizeof(line), "STORED\r\nVALUE big 0 %d\r\n", BIG_LEN);
    bytes_adds(&want, line);
    bytes_add(&want, big, BIG_LEN);
    bytes_adds(&want, "\r\nEND\r\nDELETED\r\nEND\r\nMN\r\n");

    ep_send(e, req.p, req.n);
    ep_expect(e, want.p, want.n);
    free(req.p);
    free(want.p);
    return req.n;
}

static void
test_same_bytes(void **state)
{
    struct harness_proc mc;
    struct rv r;
    char tls[4 * PLEN], tail[256];
    struct ep pt = {0}, pb = {0}, tt = {0}, tb = {0};
    struct bytes ptx = {0}, pbx = {0}, ttx = {0}, tbx = {0};
    char *big = malloc(BIG_LEN);
    size_t batch;

    (void)state;
    need(true, false);
    assert_non_null(big);
    for (size_t i = 0; i < BIG_LEN; i++) {
        big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    }
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    listener_tls(tls, sizeof(tls), "server.pem", "none");
    pool_tail(tail, sizeof(tail), mc.port, NULL);
    rv_start(&r, tls, tail);

    pt.h = harness_conn_open(r.plain, WAIT_MS);
    pb.h = harness_conn_open(r.plain, WAIT_MS);
    assert_non_null(pt.h);
    assert_non_null(pb.h);
    tt.t = tls_open(r.tls, NULL, 0);
    tb.t = tls_open(r.tls, NULL, 0);
    printf("    riven's TLS listener: %s\n", tls_client_version(tt.t));

    /* writes first, then reads that see the same item (and CAS) */
    ep_sends(&pt, "set k 0 0 5\r\nhello\r\n");
    ep_expects(&pt, "STORED\r\n");
    ep_sends(&tt, "set k 0 0 5\r\nhello\r\n");
    ep_expects(&tt, "STORED\r\n");
    run_reads(&pt, &pb, &ptx, &pbx);
    run_reads(&tt, &tb, &ttx, &tbx);
    same_bytes("text and meta reads", &ptx, &ttx);
    same_bytes("binary GETK, GET miss, NOOP", &pbx, &tbx);
    /* and the plain answers are what memcached says */
    assert_non_null(strstr(ptx.p, "VALUE k 0 5\r\nhello\r\nEND\r\nMN\r\n"));
    assert_non_null(strstr(ptx.p, "VA 5\r\nhello\r\nMN\r\nVA 5 s5 f0\r\nhello"
                                  "\r\nMN\r\nEN\r\nMN\r\n"));
    assert_int_equal(pbx.n, (size_t)(24 + 4 + 1 + 5) + 24 + 9 + 24);
    assert_memory_equal(pbx.p + 24 + 4, "khello", 6);
    assert_int_equal((uint8_t)pbx.p[34 + 7], 1); /* GET nokey: not found */

    batch = run_batch(&pt, big);
    assert_int_equal(run_batch(&tt, big), batch);
    printf("    %zu bytes of text/meta and %zu of binary replies identical; "
           "a %zu-byte pipelined batch answered exactly on both\n",
           ttx.n, tbx.n, batch);

    harness_conn_close(pt.h);
    harness_conn_close(pb.h);
    tls_client_close(tt.t);
    tls_client_close(tb.t);
    free(ptx.p);
    free(pbx.p);
    free(ttx.p);
    free(tbx.p);
    free(big);
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
}

/* ---- b. verify: require ----------------------------------------------- */

/* A connection of raw bytes to the TLS port: nothing (connect, close),
 * or a plain-text request, which must get no memcached reply. */
static void
not_tls(int port, const char *send)
{
    struct harness_conn *c = harness_conn_open(port, WAIT_MS);

    assert_non_null(c);
    if (send == NULL) {
        harness_conn_close(c);
        return;
    }
    assert_int_equal(harness_sends(c, send), 0);
    if (!harness_wait_eof(c, WAIT_MS)) {
        harness_conn_close(c);
        fail_msg("riven's TLS port kept a connection that sent plain text");
    }
    /* at most a TLS alert record (content type 21), never a reply */
    if (c->len > 0 && (uint8_t)c->buf[0] != 21) {
        harness_dump("reply to plain text on the TLS port", c->buf, c->len,
                     200);
        harness_conn_close(c);
        fail_msg("riven answered plain text on its TLS port");
    }
    harness_conn_close(c);
}

static void
test_verify_require(void **state)
{
    static const struct {
        const char *client; /* NULL: no cert */
        int result;
    } refused[] = {
        {NULL, HS_NO_CERT},
        {"other-client", HS_BAD_CERT},
        {"expired", HS_EXPIRED},
    };
    struct harness_proc mc;
    struct rv r;
    char tls[4 * PLEN], tail[256];
    uint64_t delta[NHS] = {0};
    struct hs base;
    struct tls_client *c;

    (void)state;
    need(true, false);
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    listener_tls(tls, sizeof(tls), "server.pem", "require");
    pool_tail(tail, sizeof(tail), mc.port, NULL);
    rv_start(&r, tls, tail);
    hs_scrape(r.mport, &base);
    for (int i = 0; i < NHS; i++) {
        if (base.v[i] != 0) {
            fail_msg("{result=\"%s\"} is %llu before any TLS client",
                     hs_name[i], (unsigned long long)base.v[i]);
        }
    }
    assert_int_equal(metric(r.mport, "riven_tls_connections_current"), 0);

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        for (int v = 0; v < 2; v++) {
            int maxv = v == 0 ? 0 : TLS12;
            int how = expect_refused(r.tls, refused[i].client, maxv);
            char what[96];

            if (maxv == TLS12) { /* 1.2: the server's Finished never comes */
                assert_int_equal(how, 1);
            }
            delta[refused[i].result]++;
            snprintf(what, sizeof(what), "after refusing %s (%s)",
                     refused[i].client ? refused[i].client : "no cert",
                     maxv ? "TLS 1.2" : "TLS 1.3");
            hs_expect(r.mport, &base, delta, what);
        }
    }

    /* a valid client: served, "ok" + 1, one TLS connection */
    c = tls_open(r.tls, "client", 0);
    assert_true(tls_client_roundtrip(c, "set v 0 0 2\r\nok\r\n", "STORED\r\n"));
    assert_true(
        tls_client_roundtrip(c, "get v\r\n", "VALUE v 0 2\r\nok\r\nEND\r\n"));
    delta[HS_OK]++;
    hs_expect(r.mport, &base, delta, "after a valid client");
    wait_metric(r.mport, "riven_tls_connections_current", 1);
    /* over TLS 1.2 too */
    {
        struct tls_client *c12 = tls_open(r.tls, "client", TLS12);

        assert_true(tls_client_roundtrip(c12, "get v\r\n",
                                         "VALUE v 0 2\r\nok\r\nEND\r\n"));
        delta[HS_OK]++;
        hs_expect(r.mport, &base, delta, "after a valid TLS 1.2 client");
        wait_metric(r.mport, "riven_tls_connections_current", 2);
        tls_client_close(c12);
    }
    tls_client_close(c);
    wait_metric(r.mport, "riven_tls_connections_current", 0);

    /* not TLS at all: connect + close, and a plain-text request */
    not_tls(r.tls, NULL);
    delta[HS_PROTO]++;
    hs_expect(r.mport, &base, delta, "after a connect+close");
    not_tls(r.tls, "get v\r\n");
    delta[HS_PROTO]++;
    hs_expect(r.mport, &base, delta, "after plain text on the TLS port");
    wait_metric(r.mport, "riven_tls_connections_current", 0);

    /* the plain listener is untouched by all this */
    {
        struct harness_conn *p = harness_conn_open(r.plain, WAIT_MS);

        assert_non_null(p);
        assert_true(
            harness_roundtrip(p, "get v\r\n", "VALUE v 0 2\r\nok\r\nEND\r\n"));
        harness_conn_close(p);
    }
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
}

/* ---- c. TLS to the backends -------------------------------------------- */

/* pool tls: body; client NULL: no client cert. */
static void
pool_tls(char *out, size_t outlen, const char *ca, const char *client,
         const char *server_name)
{
    PATH(cap, ca);
    char crt[2 * PLEN + 32] = "", name[96] = "";

    if (client != NULL) {
        char c[PLEN], k[PLEN], f[64];

        snprintf(f, sizeof(f), "%s.pem", client);
        dpath(c, sizeof(c), f);
        snprintf(f, sizeof(f), "%s.key", client);
        dpath(k, sizeof(k), f);
        snprintf(crt, sizeof(crt), ", cert: \"%s\", key: \"%s\"", c, k);
    }
    if (server_name != NULL) {
        snprintf(name, sizeof(name), ", server_name: %s", server_name);
    }
    snprintf(out, outlen, "  tls: {ca: \"%s\"%s, verify: true%s}\n", cap, crt,
             name);
}

/* The pool's backend: of the backend tests (NULL: the default,
 * per-connection); each test sets it first. */
static const char *backend_mode;

/* riven (no TLS listener) in front of a memcached -Z, pool tls from the
 * arguments, failure_limit 2, backend: backend_mode. */
static void
backend_rv(struct rv *r, int mc_port, const char *ca, const char *client,
           const char *server_name)
{
    char ptls[4 * PLEN], more[4 * PLEN + 192], tail[4 * PLEN + 320];

    pool_tls(ptls, sizeof(ptls), ca, client, server_name);
    snprintf(more, sizeof(more),
             "%s  failure_limit: 2\n  retry_timeout_ms: 60000\n"
             "  backend: %s\n"
             "timeouts: {connect_ms: 1000, request_ms: 1000, "
             "tls_handshake_ms: 1000}\n",
             ptls,
             backend_mode != NULL ? backend_mode : "{mode: per_connection}");
    pool_tail(tail, sizeof(tail), mc_port, more);
    rv_start(r, NULL, tail);
}

static void
backend_works(const char *ca, const char *server_name)
{
    struct harness_proc mc;
    struct rv r;
    struct harness_conn *c;
    char key[96];

    need(true, true);
    mc_tls_start(&mc);
    backend_rv(&r, mc.port, ca, "client", server_name);
    c = harness_conn_open(r.plain, WAIT_MS);
    assert_non_null(c);
    assert_true(harness_roundtrip(c, "set b 0 0 3\r\ntls\r\n", "STORED\r\n"));
    assert_true(
        harness_roundtrip(c, "get b\r\n", "VALUE b 0 3\r\ntls\r\nEND\r\n"));
    assert_true(harness_roundtrip(c, "mg b v\r\n", "VA 3\r\ntls\r\n"));
    harness_conn_close(c);
    snprintf(key, sizeof(key), "riven_backend_up{server=\"127.0.0.1:%d\"}",
             mc.port);
    assert_int_equal(metric(r.mport, key), 1);
    /* the value is on memcached: read it there, over TLS */
    {
        struct tls_client *d = tls_open(mc.port, "client", 0);

        assert_true(tls_client_roundtrip(d, "get b\r\n",
                                         "VALUE b 0 3\r\ntls\r\nEND\r\n"));
        tls_client_close(d);
    }
    printf("    pool.tls ca %s, client.pem, server_name %s: set, get, mg "
           "served\n",
           ca, server_name != NULL ? server_name : "(none: IP vs SAN)");
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
}

static void
test_backend_tls(void **state)
{
    (void)state;
    backend_mode = NULL;
    backend_works("ca.pem", "localhost");
}

static void
test_backend_tls_ip_san(void **state)
{
    (void)state;
    backend_mode = NULL;
    backend_works("ca.pem", NULL);
}

/* Every request unavailable, and the server down (ejected). */
static void
backend_refused(const char *ca, const char *client)
{
    static const char *const reqs[] = {
        "set b 0 0 1\r\nx\r\n", "get b\r\n", "mg b v\r\n",
        "delete b\r\n",         "get b\r\n",
    };
    struct harness_proc mc;
    struct rv r;
    struct harness_conn *c;
    char key[96], url[64];
    size_t nreq = sizeof(reqs) / sizeof(reqs[0]);

    need(true, true);
    mc_tls_start(&mc);
    backend_rv(&r, mc.port, ca, client, "localhost");
    c = harness_conn_open(r.plain, WAIT_MS);
    assert_non_null(c);
    for (size_t i = 0; i < nreq; i++) {
        if (!harness_roundtrip(c, reqs[i], UNAVAILABLE)) {
            fail_msg("request %zu (%.*s) was not answered %.*s", i,
                     (int)strcspn(reqs[i], "\r"), reqs[i],
                     (int)strlen(UNAVAILABLE) - 2, UNAVAILABLE);
        }
    }
    harness_conn_close(c);
    /* down, the way a connect failure makes it */
    snprintf(key, sizeof(key), "riven_backend_up{server=\"127.0.0.1:%d\"}",
             mc.port);
    wait_metric(r.mport, key, 0);
    wait_metric(r.mport, "riven_errors_total{kind=\"backend_unavailable\"}",
                nreq);
    snprintf(url, sizeof(url), "/healthz/127.0.0.1:%d", mc.port);
    assert_int_equal(http_get(r.mport, url, NULL), 503);
    /* no client handshake happened on any riven listener */
    {
        struct hs h;

        hs_scrape(r.mport, &h);
        for (int i = 0; i < NHS; i++) {
            assert_int_equal(h.v[i], 0);
        }
    }
    /* memcached itself is fine: a proper client is served */
    {
        struct tls_client *d = tls_open(mc.port, "client", 0);

        assert_true(tls_client_roundtrip(d, "get b\r\n", "END\r\n"));
        tls_client_close(d);
    }
    printf("    pool.tls ca %s, client cert %s: %zu requests, all "
           "unavailable; server down\n",
           ca, client != NULL ? client : "none", nreq);
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
}

static void
test_backend_tls_no_cert(void **state)
{
    (void)state;
    backend_mode = NULL;
    backend_refused("ca.pem", NULL);
}

static void
test_backend_tls_wrong_ca(void **state)
{
    (void)state;
    backend_mode = NULL;
    backend_refused("other-ca.pem", "client");
}

/* 4 values of 100 KiB set and read back through riven over TLS, every
 * byte exact: nconn clients (the values dealt round robin) each send all
 * their sets and gets in one write, then one client gets all 4 keys.
 * Each client's pipeline is many TLS records to memcached, which stalls
 * on such a stream unless riven sends it in rounds (CONN_TLS_ROUND);
 * nsock: the backend sockets riven should have used. */
static void
backend_big(const char *mode, int nconn, long nsock)
{
    enum { NVAL = 4, VLEN = 100 * 1024 };
    struct harness_proc mc;
    struct rv r;
    struct harness_conn *c[NVAL];
    char *val[NVAL], *req, *want, k[96];
    size_t nreq, nwant;

    need(true, true);
    backend_mode = mode;
    mc_tls_start(&mc);
    backend_rv(&r, mc.port, "ca.pem", "client", "localhost");
    req = malloc(NVAL * (VLEN + 128));
    want = malloc(NVAL * (VLEN + 128));
    assert_non_null(req);
    assert_non_null(want);
    for (int i = 0; i < NVAL; i++) {
        val[i] = malloc(VLEN);
        assert_non_null(val[i]);
        for (size_t b = 0; b < VLEN; b++) {
            val[i][b] = (char)('a' + (b * 7 + (size_t)i) % 26);
        }
    }
    for (int n = 0; n < nconn; n++) { /* every pipeline written first */
        c[n] = harness_conn_open(r.plain, WAIT_MS);
        assert_non_null(c[n]);
        nreq = 0;
        for (int i = n; i < NVAL; i += nconn) {
            nreq += (size_t)snprintf(req + nreq, 64, "set big:%d %d 0 %d\r\n",
                                     i, i, VLEN);
            memcpy(req + nreq, val[i], VLEN);
            nreq += VLEN;
            nreq += (size_t)snprintf(req + nreq, 64, "\r\nget big:%d\r\n", i);
        }
        assert_int_equal(harness_send(c[n], req, nreq), 0);
    }
    for (int n = 0; n < nconn; n++) {
        nwant = 0;
        for (int i = n; i < NVAL; i += nconn) {
            nwant += (size_t)snprintf(want + nwant, 64,
                                      "STORED\r\nVALUE big:%d %d %d\r\n", i, i,
                                      VLEN);
            memcpy(want + nwant, val[i], VLEN);
            nwant += VLEN;
            memcpy(want + nwant, "\r\nEND\r\n", 7);
            nwant += 7;
        }
        assert_true(harness_expect_n(c[n], want, nwant, WAIT_MS));
    }
    nreq = (size_t)snprintf(req, 96, "get big:0 big:1 big:2 big:3\r\n");
    assert_int_equal(harness_send(c[0], req, nreq), 0);
    nwant = 0;
    for (int i = 0; i < NVAL; i++) {
        nwant += (size_t)snprintf(want + nwant, 64, "VALUE big:%d %d %d\r\n", i,
                                  i, VLEN);
        memcpy(want + nwant, val[i], VLEN);
        nwant += VLEN;
        memcpy(want + nwant, "\r\n", 2);
        nwant += 2;
    }
    memcpy(want + nwant, "END\r\n", 5);
    nwant += 5;
    assert_true(harness_expect_n(c[0], want, nwant, WAIT_MS));
    snprintf(k, sizeof(k),
             "riven_backend_open_sockets{server=\"127.0.0.1:%d\"}", mc.port);
    assert_int_equal(metric(r.mport, k), nsock);
    printf("    backend %s over TLS: %d client(s) pipelining sets and gets of "
           "4 x 100 KiB, then a 4-key get: exact, %ld backend socket(s)\n",
           mode != NULL ? mode : "{mode: per_connection}", nconn, nsock);
    for (int n = 0; n < nconn; n++) {
        harness_conn_close(c[n]);
    }
    for (int i = 0; i < NVAL; i++) {
        free(val[i]);
    }
    free(req);
    free(want);
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
    backend_mode = NULL;
}

static void
test_backend_tls_pipelined(void **state)
{
    (void)state;
    backend_big(NULL, 1, 1);
}

/* A batched pool over TLS: the basic commands as per-connection, then 4
 * clients' pipelines on one shared socket. */
static void
test_backend_tls_batched(void **state)
{
    (void)state;
    backend_mode = "{mode: batched, connections: 1}";
    backend_works("ca.pem", "localhost");
    backend_big("{mode: batched, connections: 1}", 4, 1);
}

/* A batched pool whose TLS handshake fails: as per-connection. */
static void
test_backend_tls_batched_wrong_ca(void **state)
{
    (void)state;
    backend_mode = "{mode: batched}";
    backend_refused("other-ca.pem", "client");
    backend_mode = NULL;
}

/* ---- d. SIGHUP with a new certificate ---------------------------------- */

static void
reload(struct rv *r, uint64_t n)
{
    assert_int_equal(harness_proc_signal(&r->p, SIGHUP), 0);
    wait_metric(r->mport, "riven_config_reloads_total{result=\"success\"}", n);
    assert_int_equal(
        metric(r->mport, "riven_config_reloads_total{result=\"failure\"}"), 0);
}

static void
test_reload_cert(void **state)
{
    struct harness_proc mc;
    struct rv r;
    char tls[4 * PLEN], tail[256];
    struct tls_client *old;
    uint8_t fp[TLS_CLIENT_FP_LEN], fp1[TLS_CLIENT_FP_LEN],
        fp2[TLS_CLIENT_FP_LEN];

    (void)state;
    need(true, false);
    /* this case overwrites server2.*: work on copies */
    copy_over("server2.pem", "reload.pem");
    copy_over("server2.key", "reload.key");
    file_fp("server.pem", fp1);
    file_fp("server2.pem", fp2);
    assert_memory_not_equal(fp1, fp2, TLS_CLIENT_FP_LEN);

    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    listener_tls(tls, sizeof(tls), "server.pem", "none");
    pool_tail(tail, sizeof(tail), mc.port, NULL);
    rv_start(&r, tls, tail);
    old = tls_open(r.tls, NULL, 0);
    assert_int_equal(tls_client_peer_fp(old, fp), 0);
    assert_fp(fp, "server.pem");
    assert_true(
        tls_client_roundtrip(old, "set h 0 0 1\r\n1\r\n", "STORED\r\n"));

    /* 1. the config names the other pair */
    listener_tls(tls, sizeof(tls), "reload.pem", "none");
    rv_write_conf(&r, tls, tail);
    reload(&r, 1);
    assert_true(
        tls_client_roundtrip(old, "get h\r\n", "VALUE h 0 1\r\n1\r\nEND\r\n"));
    assert_true(
        tls_client_roundtrip(old, "set h 0 0 1\r\n2\r\n", "STORED\r\n"));
    peer_fp(r.tls, fp);
    assert_fp(fp, "server2.pem");

    /* 2. same config, the files overwritten with server.pem's pair */
    copy_over("server.pem", "reload.pem");
    copy_over("server.key", "reload.key");
    reload(&r, 2);
    assert_true(
        tls_client_roundtrip(old, "get h\r\n", "VALUE h 0 1\r\n2\r\nEND\r\n"));
    peer_fp(r.tls, fp);
    assert_fp(fp, "server.pem");
    {
        /* a connection of the second cert era still works too */
        struct tls_client *c = tls_open(r.tls, NULL, 0);

        assert_true(tls_client_roundtrip(c, "get h\r\n",
                                         "VALUE h 0 1\r\n2\r\nEND\r\n"));
        tls_client_close(c);
    }
    printf("    before and across two reloads one TLS connection kept "
           "working; new ones saw server.pem, server2.pem, then the "
           "overwritten file\n");
    tls_client_close(old);
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
    {
        PATH(p, "reload.pem");
        PATH(k, "reload.key");

        unlink(p);
        unlink(k);
    }
}

/* ---- e. clients that never say hello ----------------------------------- */

/* A connected TCP socket to 127.0.0.1:port that sends nothing, or -1. */
static int
raw_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int64_t deadline = harness_now_ms() + WAIT_MS;
    int fd;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
            return fd;
        }
        close(fd);
        if (harness_now_ms() >= deadline) {
            return -1;
        }
        poll(NULL, 0, 5);
    }
}

/* How many of fds[] have been closed by the peer: reads everything
 * pending without blocking; a closed one gets its time in closed_at[]
 * and its fd set to -1 (and closed). */
static size_t
reap_closed(int *fds, int64_t *closed_at, size_t n, int wait_ms)
{
    struct pollfd *pfd = calloc(n, sizeof(*pfd));
    size_t closed = 0;
    int r;

    assert_non_null(pfd);
    for (size_t i = 0; i < n; i++) {
        pfd[i].fd = fds[i];
        pfd[i].events = POLLIN;
    }
    r = poll(pfd, n, wait_ms);
    for (size_t i = 0; r > 0 && i < n; i++) {
        char buf[512];
        ssize_t k;

        if (fds[i] < 0 || pfd[i].revents == 0) {
            continue;
        }
        while ((k = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        }
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            closed_at[i] = harness_now_ms();
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        closed += fds[i] < 0;
    }
    free(pfd);
    return closed;
}

static void
test_handshake_timeout(void **state)
{
    struct harness_proc mc;
    struct rv r;
    char tls[4 * PLEN], tail[512];
    long lim;
    size_t n = SILENT_N, closed = 0, pending_when_served;
    int *fds;
    int64_t *opened, *closed_at, last_open, deadline, early = -1, late = 0;
    uint64_t delta[NHS] = {0};
    struct hs base;
    struct tls_client *c;

    (void)state;
    need(true, false);
    lim = harness_nofile_limit(); /* printed */
    if (lim > 0 && (long)n > lim - FD_RESERVE) {
        n = lim > 2 * FD_RESERVE ? (size_t)(lim - FD_RESERVE) : 100;
        printf("    ulimit -n %ld is too low for %d connections: scaled "
               "down to %zu\n",
               lim, SILENT_N, n);
    }
    fds = calloc(n, sizeof(*fds));
    opened = calloc(n, sizeof(*opened));
    closed_at = calloc(n, sizeof(*closed_at));
    assert_non_null(fds);
    assert_non_null(opened);
    assert_non_null(closed_at);
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    listener_tls(tls, sizeof(tls), "server.pem", "none");
    snprintf(tail, sizeof(tail),
             "pool:\n  servers: [\"127.0.0.1:%d\"]\n"
             "timeouts: {tls_handshake_ms: %d}\n",
             mc.port, HS_MS);
    rv_start(&r, tls, tail);
    hs_scrape(r.mport, &base);

    for (size_t i = 0; i < n; i++) {
        fds[i] = raw_connect(r.tls);
        if (fds[i] < 0) {
            fail_msg("connection %zu of %zu to the TLS port failed", i, n);
        }
        opened[i] = harness_now_ms();
    }
    last_open = harness_now_ms();

    /* meanwhile, a real client */
    c = tls_open(r.tls, NULL, 0);
    assert_true(tls_client_roundtrip(c, "set e 0 0 1\r\ne\r\n", "STORED\r\n"));
    assert_true(
        tls_client_roundtrip(c, "get e\r\n", "VALUE e 0 1\r\ne\r\nEND\r\n"));
    pending_when_served = n - reap_closed(fds, closed_at, n, 0);
    printf("    %zu silent connections opened in %lld ms; a TLS client "
           "served while %zu of them were waiting\n",
           n, (long long)(last_open - opened[0]), pending_when_served);
    assert_true(pending_when_served > 0);

    deadline = last_open + HS_MS + CLOSE_SLACK;
    while ((closed = reap_closed(fds, closed_at, n, POLL_MS)) < n &&
           harness_now_ms() < deadline) {
    }
    for (size_t i = 0; i < n; i++) {
        int64_t after;

        if (fds[i] >= 0) {
            continue;
        }
        after = closed_at[i] - opened[i];
        early = early < 0 || after < early ? after : early;
        late = after > late ? after : late;
    }
    printf("    %zu of %zu closed by riven, %lld..%lld ms after their "
           "connect (tls_handshake_ms %d)\n",
           closed, n, (long long)early, (long long)late, HS_MS);
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    if (closed < n) {
        fail_msg("%zu of %zu silent connections still open %d ms after "
                 "the timeout",
                 n - closed, n, CLOSE_SLACK);
    }
    if (early < HS_MS / 2) {
        fail_msg("a silent connection was closed %lld ms after its "
                 "connect, before tls_handshake_ms %d",
                 (long long)early, HS_MS);
    }
    delta[HS_TIMEOUT] = n;
    delta[HS_OK] = 1;
    hs_expect(r.mport, &base, delta, "after the silent connections");
    /* the real client is the only TLS connection left, and still works */
    wait_metric(r.mport, "riven_tls_connections_current", 1);
    assert_true(
        tls_client_roundtrip(c, "get e\r\n", "VALUE e 0 1\r\ne\r\nEND\r\n"));
    tls_client_close(c);
    wait_metric(r.mport, "riven_tls_connections_current", 0);
    free(fds);
    free(opened);
    free(closed_at);
    rv_stop(&r);
    harness_proc_stop(&mc, 5000);
}

/* ---- f. the command line ----------------------------------------------- */

static void
test_cli_flags(void **state)
{
    struct harness_proc mc, rv = {.pid = -1};
    PATH(crt, "server.pem");
    PATH(key, "server.key");
    PATH(ca, "ca.pem");
    char laddr[48], maddr[32];
    int tport = -1, mport = -1;
    uint64_t delta[NHS] = {0};
    struct hs base;
    struct tls_client *c;

    (void)state;
    need(true, false);
    assert_int_equal(harness_memcached_start(&mc, 0, NULL), 0);
    for (int attempt = 0; attempt < 3 && rv.pid <= 0; attempt++) {
        const char *extra[] = {
            "-l",       laddr, "--tls-cert",   crt,       "--tls-key", key,
            "--tls-ca", ca,    "--tls-verify", "require", "-m",        maddr,
            NULL};

        tport = harness_free_port();
        mport = harness_free_port();
        snprintf(laddr, sizeof(laddr), "tls:127.0.0.1:%d", tport);
        snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", mport);
        if (harness_riven_start(&rv, mc.port, NULL, 0, extra) != 0 ||
            harness_wait_ready(&rv, mport, WAIT_MS) != 0) {
            harness_proc_stop(&rv, 2000);
        }
    }
    if (rv.pid <= 0) {
        fail_msg("riven did not start with -l %s --tls-cert --tls-key "
                 "--tls-ca --tls-verify require",
                 laddr);
    }
    hs_scrape(mport, &base);
    c = tls_open(tport, "client", 0);
    assert_true(
        tls_client_roundtrip(c, "set f 0 0 3\r\ncli\r\n", "STORED\r\n"));
    tls_client_close(c);
    delta[HS_OK]++;
    hs_expect(mport, &base, delta, "-l tls: a valid client");
    expect_refused(tport, NULL, 0);
    delta[HS_NO_CERT]++;
    hs_expect(mport, &base, delta, "-l tls: no cert");
    {
        /* the plain -l listener of the same riven */
        struct harness_conn *p = harness_conn_open(rv.port, WAIT_MS);

        assert_non_null(p);
        assert_true(
            harness_roundtrip(p, "get f\r\n", "VALUE f 0 3\r\ncli\r\nEND\r\n"));
        harness_conn_close(p);
    }
    assert_true(harness_proc_alive(&rv));
    harness_proc_stop(&rv, 5000);
    harness_proc_stop(&mc, 5000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memcached_tls_direct),
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_verify_require),
        cmocka_unit_test(test_backend_tls),
        cmocka_unit_test(test_backend_tls_ip_san),
        cmocka_unit_test(test_backend_tls_no_cert),
        cmocka_unit_test(test_backend_tls_wrong_ca),
        cmocka_unit_test(test_backend_tls_pipelined),
        cmocka_unit_test(test_backend_tls_batched),
        cmocka_unit_test(test_backend_tls_batched_wrong_ca),
        cmocka_unit_test(test_reload_cert),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_cli_flags),
    };

    if (!harness_direct() && !harness_riven_available()) {
        fprintf(stderr, "integ_tls: %s not found (set RIVEN_BIN)\n",
                harness_riven_bin());
        return 1;
    }
    if (getenv("INTEG_TLS_ONLY") != NULL) { /* one case, to debug it */
        cmocka_set_test_filter(getenv("INTEG_TLS_ONLY"));
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
