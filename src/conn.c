/*
 * conn: plain or TLS byte streams. See conn.h.
 *
 * The sockets stay blocking with SO_RCVTIMEO/SO_SNDTIMEO, as riven's
 * plain sockets are; OpenSSL reads and writes them through its socket
 * BIO, and a timeout comes back as SSL_ERROR_WANT_READ/WRITE, which is
 * EAGAIN here. A TLS read first waits with poll(2) for the receive
 * timeout (conn_wait), so that nothing is held while a client is idle.
 * Only the handshake runs non-blocking, under poll(2) with one deadline
 * for the whole of it: a client that sends its ClientHello a byte at a
 * time cannot stretch it. A client's handshake runs on a short-lived
 * thread of its own (conn_accept_tls says why).
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* TLS records carry at most 16 KiB: writev gathers small pieces up to
 * this, so that a reply of many pieces is a few records, not one each. */
#define CONN_RECORD_MAX 16384
/* Stack of the thread a client's handshake runs on (conn_accept_tls). */
#define CONN_HS_STACK (256u * 1024)

struct conn_ctx {
    SSL_CTX *ctx;
    char *server_name; /* client: SNI and the name checked; NULL: each
                          server's host as written */
    bool verify;       /* client: check the server's certificate */
};

static const char *const hs_names[CONN_HS_NKINDS] = {
    [CONN_HS_OK] = "ok",
    [CONN_HS_NO_CERT] = "no_cert",
    [CONN_HS_BAD_CERT] = "bad_cert",
    [CONN_HS_EXPIRED] = "expired",
    [CONN_HS_TIMEOUT] = "timeout",
    [CONN_HS_PROTOCOL] = "protocol",
};

const char *
conn_hs_name(enum conn_hs hs)
{
    return hs < CONN_HS_NKINDS ? hs_names[hs] : "protocol";
}

/* OpenSSL's oldest queued error as text ("" when none), and clear the
 * thread's queue. */
static const char *
ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    buf[0] = '\0';
    if (e != 0) {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/* OpenSSL 3.0 decodes a certificate's extensions (key ids, constraints)
 * into the X509 object on first use, and its check whether that was done
 * reads unlocked: two threads verifying against one CA at once race there
 * (ThreadSanitizer sees it). Decode them now, before any thread shares the
 * context: every certificate in its store and its own chain. */
static void
cache_extensions(SSL_CTX *ctx)
{
    STACK_OF(X509_OBJECT) *objs =
        X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    STACK_OF(X509) *chain = NULL;
    X509 *own = SSL_CTX_get0_certificate(ctx);

    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

        if (x != NULL) {
            (void)X509_check_purpose(x, -1, 0);
        }
    }
    if (own != NULL) {
        (void)X509_check_purpose(own, -1, 0);
    }
    if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1) {
        for (int i = 0; i < sk_X509_num(chain); i++) {
            (void)X509_check_purpose(sk_X509_value(chain, i), -1, 0);
        }
    }
}

/* What both sides share: versions, ciphers, no renegotiation, buffers
 * released while idle (an idle connection holds no 34 KiB of them). */
static SSL_CTX *
ctx_common(const SSL_METHOD *method, const struct cfg_tls *t, char *err,
           size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    char why[256];

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: %s", ssl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version != 0
                                           ? t->min_version
                                           : CFG_TLS_MIN_VERSION_DEFAULT);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (t->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        snprintf(err, errlen, "tls: ciphers \"%s\": %s", t->ciphers,
                 ssl_reason(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (t->cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
            snprintf(err, errlen, "tls: cert %s: %s", t->cert,
                     ssl_reason(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "tls: key %s: %s", t->key,
                     ssl_reason(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "tls: key %s does not match cert %s: %s",
                     t->key, t->cert, ssl_reason(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (t->ca != NULL && SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
        snprintf(err, errlen, "tls: ca %s: %s", t->ca,
                 ssl_reason(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    cache_extensions(ctx);
    return ctx;
}

struct conn_ctx *
conn_ctx_server(const struct cfg_tls *t, char *err, size_t errlen)
{
    struct conn_ctx *c = calloc(1, sizeof(*c));
    static const unsigned char sid[] = "riven";
    int mode = SSL_VERIFY_NONE;

    if (c == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    if ((c->ctx = ctx_common(TLS_server_method(), t, err, errlen)) == NULL) {
        free(c);
        return NULL;
    }
    if (t->verify != CFG_TLS_VERIFY_NONE) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);

        if (names == NULL) {
            char why[256];

            snprintf(err, errlen, "tls: ca %s: no certificate names: %s", t->ca,
                     ssl_reason(why, sizeof(why)));
            conn_ctx_free(c);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(c->ctx, names);
        mode = SSL_VERIFY_PEER;
        if (t->verify == CFG_TLS_VERIFY_REQUIRE) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
    }
    SSL_CTX_set_verify(c->ctx, mode, NULL);
    /* resumption by stateless tickets only: a cache of sessions on the
     * server would grow with every client (20,480 by default) */
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
    /* sessions resumed with a client certificate need an id context */
    SSL_CTX_set_session_id_context(c->ctx, sid, sizeof(sid) - 1);
    return c;
}

struct conn_ctx *
conn_ctx_client(const struct cfg_tls *t, char *err, size_t errlen)
{
    struct conn_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    if ((c->ctx = ctx_common(TLS_client_method(), t, err, errlen)) == NULL) {
        free(c);
        return NULL;
    }
    c->verify = t->verify != CFG_TLS_VERIFY_NONE;
    if (c->verify && t->ca == NULL &&
        SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        char why[256];

        snprintf(err, errlen, "tls: the system's CA paths: %s",
                 ssl_reason(why, sizeof(why)));
        conn_ctx_free(c);
        return NULL;
    }
    cache_extensions(c->ctx); /* the system's CA file, when loaded */
    SSL_CTX_set_verify(c->ctx, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    if (t->server_name != NULL &&
        (c->server_name = strdup(t->server_name)) == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        conn_ctx_free(c);
        return NULL;
    }
    return c;
}

void
conn_ctx_free(struct conn_ctx *c)
{
    if (c == NULL) {
        return;
    }
    SSL_CTX_free(c->ctx); /* streams hold their own references */
    free(c->server_name);
    free(c);
}

void
conn_plain(struct conn *c, int fd)
{
    c->fd = fd;
    c->ssl = NULL;
    c->rcv_ms = c->snd_ms = 0;
    c->trim_wait = 0;
    c->ready = false;
}

static void
set_timeout(int fd, int opt, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000,
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    (void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

void
conn_set_timeouts(struct conn *c, uint32_t rcv_ms, uint32_t snd_ms)
{
    if (rcv_ms != c->rcv_ms) {
        set_timeout(c->fd, SO_RCVTIMEO, rcv_ms);
        c->rcv_ms = rcv_ms;
    }
    if (snd_ms != c->snd_ms) {
        set_timeout(c->fd, SO_SNDTIMEO, snd_ms);
        c->snd_ms = snd_ms;
    }
}

/*
 * Run SSL_accept or SSL_connect on a non-blocking fd until done or
 * deadline. 1 done, 0 failed, -1 timed out. The fd's flags are restored.
 */
static int
handshake(SSL *ssl, int fd, bool server, uint32_t ms)
{
    uint64_t deadline = util_now_ms() + ms;
    int flags = fcntl(fd, F_GETFL), rc;

    (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    for (;;) {
        struct pollfd pfd = {.fd = fd};
        uint64_t now;
        int r;

        ERR_clear_error();
        r = server ? SSL_accept(ssl) : SSL_connect(ssl);
        if (r == 1) {
            rc = 1;
            break;
        }
        switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_WANT_READ:
            pfd.events = POLLIN;
            break;
        case SSL_ERROR_WANT_WRITE:
            pfd.events = POLLOUT;
            break;
        default:
            rc = 0;
            goto done;
        }
        now = util_now_ms();
        if (now >= deadline) {
            rc = -1;
            break;
        }
        r = poll(&pfd, 1, (int)MIN(deadline - now, INT32_MAX));
        if (r == 0) {
            rc = -1;
            break;
        }
        if (r < 0 && errno != EINTR) {
            rc = 0;
            break;
        }
    }
done:
    (void)fcntl(fd, F_SETFL, flags);
    return rc;
}

/* madvise away the stack pages from lo up to this frame's page, or the
 * page below it when this frame sits within 256 bytes of its page's
 * bottom: what lies below here while madvise runs is its return address
 * alone (a frame of its own, so that no caller's local is there). */
static __attribute__((noinline)) void
advise_below(uintptr_t lo, uintptr_t page)
{
    volatile char here = 0;
    uintptr_t top = ((uintptr_t)&here - 256) & ~(page - 1);

    if (top > lo + page) {
        (void)madvise((void *)lo, top - lo, MADV_DONTNEED);
    }
}

/*
 * Give back the pages of this thread's stack below the caller's frame.
 * A request's parsing and orchestration, and a TLS key exchange or a
 * stream's first records, run deeper than a thread waiting for its next
 * request ever does again; an idle client need not keep those pages.
 */
static void
trim_stack(void)
{
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size;

    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        return;
    }
    if (pthread_attr_getstack(&attr, &lo, &size) != 0) {
        lo = NULL;
    }
    pthread_attr_destroy(&attr);
    if (lo != NULL) {
        advise_below((uintptr_t)lo, (uintptr_t)sysconf(_SC_PAGESIZE));
    }
}

/* Before c's wait for bytes: the wait conn_trim_at named trims the
 * stack, and OpenSSL's per-thread state (its random generators, its
 * error queue), which it rebuilds if the thread needs it again. */
static void
idle_trim(struct conn *c)
{
    if (c->trim_wait > 0 && --c->trim_wait == 0) {
        if (c->ssl != NULL) {
            OPENSSL_thread_stop();
        }
        trim_stack();
    }
}

void
conn_idle(struct conn *c)
{
    if (c->ssl == NULL) {
        idle_trim(c);
    }
}

void
conn_trim_at(struct conn *c, uint8_t wait)
{
    c->trim_wait = wait;
}

/* One server-side handshake: what accept_tls needs and what it found. */
struct hs_job {
    struct conn_ctx *ctx;
    int fd;
    uint32_t ms;
    SSL *ssl; /* on CONN_HS_OK */
    enum conn_hs hs;
    char *detail, *subject; /* may be NULL */
    size_t detaillen, subjectlen;
};

/* Run j's handshake and classify how it ended, on the calling thread
 * (OpenSSL's error queue is per thread). */
static void
accept_tls(struct hs_job *j)
{
    SSL *ssl = SSL_new(j->ctx->ctx);
    char why[256] = "";
    X509 *peer;
    long v;
    int r;

    j->hs = CONN_HS_PROTOCOL;
    if (ssl == NULL || SSL_set_fd(ssl, j->fd) != 1) {
        ssl_reason(why, sizeof(why));
        SSL_free(ssl);
        goto out;
    }
    r = handshake(ssl, j->fd, true, j->ms);
    if ((peer = SSL_get0_peer_certificate(ssl)) != NULL && j->subject != NULL) {
        X509_NAME_oneline(X509_get_subject_name(peer), j->subject,
                          (int)MIN(j->subjectlen, INT32_MAX));
    }
    if (r == 1) {
        j->ssl = ssl;
        j->hs = CONN_HS_OK;
        return;
    }
    v = SSL_get_verify_result(ssl);
    if (r < 0) {
        j->hs = CONN_HS_TIMEOUT;
        snprintf(why, sizeof(why), "not done in %u ms", j->ms);
    } else if (v == X509_V_ERR_CERT_HAS_EXPIRED) {
        j->hs = CONN_HS_EXPIRED;
        snprintf(why, sizeof(why), "%s", X509_verify_cert_error_string(v));
    } else if (v != X509_V_OK) {
        j->hs = CONN_HS_BAD_CERT;
        snprintf(why, sizeof(why), "%s", X509_verify_cert_error_string(v));
    } else {
        unsigned long e = ERR_peek_error();

        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            j->hs = CONN_HS_NO_CERT;
        }
        ssl_reason(why, sizeof(why));
        if (why[0] == '\0') {
            snprintf(why, sizeof(why), "closed during the handshake");
        }
    }
    SSL_free(ssl);
out:
    ERR_clear_error();
    if (j->detail != NULL) {
        snprintf(j->detail, j->detaillen, "%s", why);
    }
}

static void *
hs_main(void *arg)
{
    accept_tls(arg);
    /* glibc keeps the stacks of ended threads for new ones: a kept stack
     * should not hold the pages the key exchange touched */
    trim_stack();
    return NULL; /* the thread's exit frees its malloc cache */
}

/*
 * The server side of a handshake runs on a thread of its own that ends
 * with it. The key exchange allocates and frees much and runs deep: on
 * the connection's thread it would leave that thread's malloc cache
 * (glibc's tcache, per thread) holding the freed pieces, and its stack
 * pages resident, for as long as the client stays: some 25 KiB an idle
 * client. A thread's exit gives both back. Without a thread to spare, the
 * handshake runs here and the stack is trimmed after it.
 */
enum conn_hs
conn_accept_tls(struct conn *c, struct conn_ctx *ctx, uint32_t ms, char *detail,
                size_t detaillen, char *subject, size_t subjectlen)
{
    struct hs_job j = {.ctx = ctx,
                       .fd = c->fd,
                       .ms = ms,
                       .detail = detail,
                       .detaillen = detaillen,
                       .subject = subject,
                       .subjectlen = subjectlen};
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (subject != NULL) {
        subject[0] = '\0';
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CONN_HS_STACK);
    rc = pthread_create(&tid, &attr, hs_main, &j);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        pthread_join(tid, NULL);
    } else {
        accept_tls(&j);
        OPENSSL_thread_stop();
        trim_stack();
    }
    c->ssl = j.ssl;
    return j.hs;
}

enum status
conn_connect_tls(struct conn *c, struct conn_ctx *ctx,
                 const struct cfg_addr *addr, uint32_t ms, char *err,
                 size_t errlen)
{
    SSL *ssl = SSL_new(ctx->ctx);
    char why[256], host[CFG_ADDR_NAME_MAX];
    const char *name = ctx->server_name, *port;
    unsigned char bin[sizeof(struct in6_addr)];
    bool ip = false, v6;
    int r;

    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
        snprintf(err, errlen, "%s", ssl_reason(why, sizeof(why)));
        SSL_free(ssl);
        return ST_ERROR;
    }
    /* the pool's server_name, else the host as written: a name is sent
     * as SNI and checked against the certificate's names, an IP address
     * against its IP addresses */
    if (name == NULL && addr->ss.ss_family != AF_UNIX &&
        util_split_host_port(addr->name, host, sizeof(host), &port, &v6, NULL,
                             0) == ST_OK) {
        name = host;
        ip = inet_pton(AF_INET, host, bin) == 1 ||
             inet_pton(AF_INET6, host, bin) == 1;
    }
    if (name != NULL && !ip) {
        (void)SSL_set_tlsext_host_name(ssl, name);
    }
    if (name != NULL && ctx->verify &&
        (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            : SSL_set1_host(ssl, name)) != 1) {
        snprintf(err, errlen, "%s: %s", name, ssl_reason(why, sizeof(why)));
        SSL_free(ssl);
        return ST_ERROR;
    }
    r = handshake(ssl, c->fd, false, ms);
    if (r == 1) {
        c->ssl = ssl;
        return ST_OK;
    }
    if (r < 0) {
        snprintf(err, errlen, "TLS handshake not done in %u ms", ms);
    } else if (SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(err, errlen, "TLS: the server's certificate: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    } else {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "TLS handshake: %s",
                 why[0] != '\0' ? why : "closed by the server");
    }
    ERR_clear_error();
    SSL_free(ssl);
    return r < 0 ? ST_TIMEOUT : ST_ERROR;
}

void
conn_connect_tls_failed(const struct cfg_addr *addr, const char *why)
{
    static _Atomic uint64_t last_ms;

    if (log_every(&last_ms, 1000)) {
        log_info("backend %s: %s", addr->name, why);
    } else {
        log_debug("backend %s: %s", addr->name, why);
    }
}

/* The errno of a failed SSL_read/SSL_write that returned r; 0 means an
 * orderly end of the stream. */
static int
ssl_errno(SSL *ssl, int r)
{
    int e = errno;

    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        e = EAGAIN;
        break;
    case SSL_ERROR_ZERO_RETURN:
        e = 0;
        break;
    case SSL_ERROR_SYSCALL:
        e = e != 0 ? e : ECONNRESET;
        break;
    default:
        e = EPROTO;
        break;
    }
    ERR_clear_error();
    return e;
}

/* Block until c is readable, for as long as its receive timeout allows.
 * 0, or -1 with errno (EAGAIN when the timeout passed). */
static int
wait_readable(const struct conn *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int ms = c->rcv_ms > 0 ? (int)MIN(c->rcv_ms, INT32_MAX) : -1, r;

    do {
        r = poll(&pfd, 1, ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        errno = EAGAIN;
        return -1;
    }
    return r < 0 ? -1 : 0;
}

int
conn_wait(struct conn *c)
{
    if (c->ssl == NULL || c->ready || SSL_has_pending(c->ssl)) {
        return 0;
    }
    idle_trim(c);
    if (wait_readable(c) != 0) {
        return -1;
    }
    c->ready = true;
    return 0;
}

ssize_t
conn_recv(struct conn *c, void *buf, size_t len)
{
    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, 0);
    }
    /* Wait for bytes before SSL_read: blocked inside it, OpenSSL would
     * hold its 16 KiB read buffer for as long as the client is idle. */
    if (conn_wait(c) != 0) {
        return -1;
    }
    c->ready = false;
    return conn_recv_nowait(c, buf, len);
}

ssize_t
conn_recv_nowait(struct conn *c, void *buf, size_t len)
{
    size_t n = 0;
    int e;

    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, 0);
    }
    errno = 0; /* the error queue is empty: ssl_errno empties it */
    if (SSL_read_ex(c->ssl, buf, len, &n) == 1) {
        return (ssize_t)n;
    }
    if ((e = ssl_errno(c->ssl, 0)) == 0) {
        return 0;
    }
    errno = e;
    return -1;
}

ssize_t
conn_send(struct conn *c, const void *buf, size_t len)
{
    size_t n = 0;

    if (c->ssl == NULL) {
        return send(c->fd, buf, len, MSG_NOSIGNAL);
    }
    errno = 0;
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1) {
        return (ssize_t)n;
    }
    errno = ssl_errno(c->ssl, 0);
    if (errno == 0) {
        errno = EPIPE;
    }
    return -1;
}

/*
 * TLS writev: small pieces gathered into records of up to CONN_RECORD_MAX,
 * a piece of a record or more sent as it is. The gathering buffer is
 * malloc'd for the call, as large as what it gathers: on the stack it
 * would be 16 KiB that every busy thread keeps resident. Without it each
 * piece is sent alone. What was sent before a failure is reported, as
 * writev does.
 */
static ssize_t
tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, cap, staged = 0;
    ssize_t done = 0, n;
    bool failed = false;
    char *stage;
    int saved;

    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len < CONN_RECORD_MAX ? iov[i].iov_len : 0;
    }
    cap = MIN(total, CONN_RECORD_MAX);
    stage = cap > 0 ? malloc(cap) : NULL;
    for (int i = 0; i <= iovcnt && !failed; i++) {
        bool last = i == iovcnt;
        size_t len = last ? 0 : iov[i].iov_len;

        if (staged > 0 && (last || staged + len > cap)) {
            if ((n = conn_send(c, stage, staged)) < 0) {
                failed = true;
                break;
            }
            done += n;
            staged = 0;
        }
        if (last || len == 0) {
            continue;
        }
        if (len >= CONN_RECORD_MAX || stage == NULL) {
            if ((n = conn_send(c, iov[i].iov_base, len)) < 0) {
                failed = true;
                break;
            }
            done += n;
        } else {
            memcpy(stage + staged, iov[i].iov_base, len);
            staged += len;
        }
    }
    saved = errno;
    free(stage);
    errno = saved;
    return failed && done == 0 ? -1 : done;
}

ssize_t
conn_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    if (c->ssl == NULL) {
        return writev(c->fd, iov, iovcnt);
    }
    return tls_writev(c, iov, iovcnt);
}

bool
conn_pending(const struct conn *c)
{
    return c->ssl != NULL && SSL_has_pending(c->ssl) == 1;
}

void
conn_close(struct conn *c)
{
    if (c == NULL) {
        return;
    }
    conn_end_tls(c);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

void
conn_end_tls(struct conn *c)
{
    if (c->ssl != NULL) {
        int flags = fcntl(c->fd, F_GETFL);

        /* close_notify if the socket takes it at once; never wait */
        (void)fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
        (void)fcntl(c->fd, F_SETFL, flags);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
}
