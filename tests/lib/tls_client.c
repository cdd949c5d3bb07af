/*
 * tls_client: OpenSSL client connections with deadlines, for the tests.
 *
 * The socket is non-blocking; every SSL call that wants to read or write
 * waits in poll(2) for what it wants, until the call's deadline. Bytes
 * read are appended to a harness_conn's buffer (c->rb) and taken from its
 * front with harness.c's functions.
 * A fatal TLS alert or a reset counts as the peer closing (c->eof), with
 * the reason kept in c->err: a refused client looks the same whether the
 * refusal came during the handshake (TLS 1.2) or on the first read
 * (TLS 1.3).
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "harness.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 5000
#define READ_CHUNK         16384

struct tls_client {
    int fd;
    SSL *ssl;
    SSL_CTX *ctx;
    struct harness_conn rb; /* bytes read and not yet taken (rb.fd unused) */
    bool eof;         /* the peer closed: close_notify, FIN, reset, alert */
    char err[256];    /* the last failure, "" if none */
    char version[16]; /* negotiated protocol */
};

/* OpenSSL's error queue as one line ("; "-separated), emptied. */
static void
ssl_errors(char *out, size_t outlen)
{
    unsigned long e;
    size_t used = 0;

    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[200];

        ERR_error_string_n(e, one, sizeof(one));
        if (used < outlen) {
            int n = snprintf(out + used, outlen - used, "%s%s",
                             used > 0 ? "; " : "", one);

            used += n > 0 ? (size_t)n : 0;
        }
    }
}

/* Wait for what an SSL call wants (SSL_ERROR_WANT_*) until deadline.
 * 0 ready, -1 timeout or poll error. */
static int
wait_io(int fd, int want, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd};

    pfd.events = want == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        int n;

        if (left <= 0) {
            return -1;
        }
        n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n > 0 ? 0 : -1;
    }
}

/* What a failed SSL call means. 1: retry after wait_io; 0: the peer
 * closed (c->eof, reason in c->err); -1: a local error (c->err). */
static int
classify(struct tls_client *c, int ret, const char *what)
{
    int saved = errno;
    int e = SSL_get_error(c->ssl, ret);
    char q[200];

    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 1;
    case SSL_ERROR_ZERO_RETURN:
        c->eof = true;
        util_errf(c->err, sizeof(c->err), "%s: close_notify", what);
        return 0;
    case SSL_ERROR_SYSCALL:
        ssl_errors(q, sizeof(q));
        util_errf(c->err, sizeof(c->err), "%s: %s%s%s", what,
                  saved != 0 ? strerror(saved) : "EOF", q[0] != '\0' ? " " : "",
                  q);
        if (saved != 0 && saved != ECONNRESET && saved != EPIPE) {
            return -1;
        }
        c->eof = true;
        return 0;
    case SSL_ERROR_SSL:
        /* an alert from the peer, or our own verification failing */
        ssl_errors(q, sizeof(q));
        c->eof = true;
        util_errf(c->err, sizeof(c->err), "%s: %s", what, q);
        return 0;
    default:
        util_errf(c->err, sizeof(c->err), "%s: SSL error %d", what, e);
        return -1;
    }
}

static int
tcp_connect(int port, int64_t deadline, char *err, size_t errlen)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int fd, one = 1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        util_errf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        int so = 0;
        socklen_t sl = sizeof(so);

        if (errno != EINPROGRESS) {
            util_errf(err, errlen, "connect 127.0.0.1:%d: %s", port,
                      strerror(errno));
            close(fd);
            return -1;
        }
        if (wait_io(fd, SSL_ERROR_WANT_WRITE, deadline) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0 || so != 0) {
            util_errf(err, errlen, "connect 127.0.0.1:%d: %s", port,
                      so != 0 ? strerror(so) : "timeout");
            close(fd);
            return -1;
        }
    }
    return fd;
}

static SSL_CTX *
make_ctx(const struct tls_client_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char q[200];

    if (ctx == NULL) {
        ssl_errors(q, sizeof(q));
        util_errf(err, errlen, "SSL_CTX_new: %s", q);
        return NULL;
    }
    if (o->max_version != 0 &&
        SSL_CTX_set_max_proto_version(ctx, o->max_version) != 1) {
        util_errf(err, errlen, "max_version 0x%x refused", o->max_version);
        goto error;
    }
    if (o->ca != NULL && SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
        ssl_errors(q, sizeof(q));
        util_errf(err, errlen, "ca %s: %s", o->ca, q);
        goto error;
    }
    if (o->cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, o->key != NULL ? o->key : o->cert,
                                     SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        ssl_errors(q, sizeof(q));
        util_errf(err, errlen, "cert %s / key %s: %s", o->cert,
                  o->key != NULL ? o->key : "(same)", q);
        goto error;
    }
    SSL_CTX_set_verify(ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    return ctx;
error:
    SSL_CTX_free(ctx);
    return NULL;
}

/* SNI and the name or address the server's certificate must carry. */
static int
set_peer_name(SSL *ssl, const struct tls_client_opts *o)
{
    if (o->sni != NULL && SSL_set_tlsext_host_name(ssl, o->sni) != 1) {
        return -1;
    }
    if (!o->verify) {
        return 0;
    }
    if (o->sni != NULL) {
        return SSL_set1_host(ssl, o->sni) == 1 ? 0 : -1;
    }
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") == 1
               ? 0
               : -1;
}

static int
handshake(struct tls_client *c, int64_t deadline)
{
    for (;;) {
        int r;

        ERR_clear_error();
        errno = 0;
        r = SSL_connect(c->ssl);

        if (r == 1) {
            snprintf(c->version, sizeof(c->version), "%s",
                     SSL_get_version(c->ssl));
            return 0;
        }
        if (classify(c, r, "handshake") != 1) {
            long v = SSL_get_verify_result(c->ssl);

            if (v != X509_V_OK) {
                size_t n = strlen(c->err);

                snprintf(c->err + n, sizeof(c->err) - n, " (verify: %s)",
                         X509_verify_cert_error_string(v));
            }
            return -1;
        }
        if (wait_io(c->fd, SSL_get_error(c->ssl, r), deadline) != 0) {
            util_errf(c->err, sizeof(c->err), "handshake: timeout");
            return -1;
        }
    }
}

struct tls_client *
tls_client_open(int port, const struct tls_client_opts *o, char *err,
                size_t errlen)
{
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    int64_t deadline = harness_now_ms() + timeout;
    struct tls_client *c = NULL;

    signal(SIGPIPE, SIG_IGN);
    util_errf(err, errlen, "%s", "");
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->rb.fd = -1;
    c->ctx = make_ctx(o, err, errlen);
    if (c->ctx == NULL) {
        goto error;
    }
    c->fd = tcp_connect(port, deadline, err, errlen);
    if (c->fd < 0) {
        goto error;
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        set_peer_name(c->ssl, o) != 0) {
        util_errf(err, errlen, "SSL_new/SSL_set_fd/peer name failed");
        goto error;
    }
    if (handshake(c, deadline) != 0) {
        util_errf(err, errlen, "%s", c->err);
        goto error;
    }
    return c;
error:
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    tls_client_close(c);
    return NULL;
}

void
tls_client_close(struct tls_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL) {
        if (!c->eof) {
            SSL_shutdown(c->ssl); /* one close_notify, not waited for */
        }
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0) {
        close(c->fd);
    }
    ERR_clear_error();
    free(c->rb.buf);
    free(c);
}

const char *
tls_client_error(const struct tls_client *c)
{
    return c->err;
}

const char *
tls_client_version(const struct tls_client *c)
{
    return c->version;
}

int
tls_client_send(struct tls_client *c, const void *data, size_t len)
{
    int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
    const char *p = data;

    while (len > 0) {
        size_t w = 0;
        int r;

        ERR_clear_error();
        errno = 0;
        r = SSL_write_ex(c->ssl, p, len, &w);
        if (r == 1) {
            p += w;
            len -= w;
            continue;
        }
        if (classify(c, r, "write") != 1) {
            return -1;
        }
        if (wait_io(c->fd, SSL_get_error(c->ssl, r), deadline) != 0) {
            util_errf(c->err, sizeof(c->err), "write: timeout");
            return -1;
        }
    }
    return 0;
}

int
tls_client_sends(struct tls_client *c, const char *s)
{
    return tls_client_send(c, s, strlen(s));
}

/* One SSL read into c's buffer before deadline: >0 bytes, 0 the peer
 * closed, -1 error, -2 timeout (harness_fill_fn; arg is the client). */
static ssize_t
fill(struct harness_conn *rb, void *arg, int64_t deadline)
{
    struct tls_client *c = arg;

    if (c->eof) {
        return 0;
    }
    if (harness_conn_reserve(rb, READ_CHUNK) != 0) {
        return -1;
    }
    for (;;) {
        size_t n = 0;
        int r, k;

        ERR_clear_error();
        errno = 0;
        r = SSL_read_ex(c->ssl, rb->buf + rb->len, rb->cap - rb->len, &n);
        if (r == 1) {
            rb->len += n;
            return (ssize_t)n;
        }
        k = classify(c, r, "read");
        if (k != 1) {
            return k;
        }
        if (wait_io(c->fd, SSL_get_error(c->ssl, r), deadline) != 0) {
            util_errf(c->err, sizeof(c->err), "read: timeout");
            return -2;
        }
    }
}

char *
tls_client_recv_until(struct tls_client *c, const char *term, size_t termlen,
                      int timeout_ms, size_t *outlen)
{
    return harness_recv_until_by(&c->rb, fill, c, term, termlen, timeout_ms,
                                 outlen);
}

char *
tls_client_recv_n(struct tls_client *c, size_t n, int timeout_ms)
{
    return harness_recv_n_by(&c->rb, fill, c, n, timeout_ms);
}

bool
tls_client_expect_n(struct tls_client *c, const void *want, size_t len,
                    int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    ssize_t r = 1;

    while (c->rb.len < len &&
           (c->rb.len == 0 || memcmp(c->rb.buf, want, c->rb.len) == 0)) {
        r = fill(&c->rb, c, deadline);
        if (r <= 0) {
            break;
        }
    }
    if (c->rb.len >= len && (len == 0 || memcmp(c->rb.buf, want, len) == 0)) {
        memmove(c->rb.buf, c->rb.buf + len, c->rb.len - len);
        c->rb.len -= len;
        return true;
    }
    fprintf(stderr, "tls_client: unexpected reply (%s%s%s)\n",
            r == 0    ? "connection closed"
            : r == -2 ? "timeout"
            : r < 0   ? "error"
                      : "mismatch",
            c->err[0] != '\0' ? ": " : "", c->err);
    harness_diff("expected", want, len, "received", c->rb.buf,
                 c->rb.len < len ? c->rb.len : len);
    return false;
}

bool
tls_client_expect(struct tls_client *c, const char *want)
{
    return tls_client_expect_n(c, want, strlen(want), HARNESS_TIMEOUT_MS);
}

bool
tls_client_roundtrip(struct tls_client *c, const char *req, const char *want)
{
    if (tls_client_sends(c, req) != 0) {
        fprintf(stderr, "tls_client: send failed: %s\n", c->err);
        return false;
    }
    return tls_client_expect(c, want);
}

bool
tls_client_wait_eof(struct tls_client *c, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;

    for (;;) {
        ssize_t r = fill(&c->rb, c, deadline);

        if (r == 0) {
            return true;
        }
        if (r < 0) {
            return false;
        }
        if (c->rb.len > (1u << 20)) { /* keep only a tail */
            memmove(c->rb.buf, c->rb.buf + c->rb.len - 1024, 1024);
            c->rb.len = 1024;
        }
    }
}

int
tls_client_peer_fp(struct tls_client *c, uint8_t fp[TLS_CLIENT_FP_LEN])
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    unsigned int n = 0;
    int rc;

    if (x == NULL) {
        return -1;
    }
    rc = X509_digest(x, EVP_sha256(), fp, &n) == 1 && n == TLS_CLIENT_FP_LEN
             ? 0
             : -1;
    X509_free(x);
    return rc;
}

int
tls_client_file_fp(const char *path, uint8_t fp[TLS_CLIENT_FP_LEN])
{
    FILE *f = fopen(path, "r");
    X509 *x;
    unsigned int n = 0;
    int rc;

    if (f == NULL) {
        return -1;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        ERR_clear_error();
        return -1;
    }
    rc = X509_digest(x, EVP_sha256(), fp, &n) == 1 && n == TLS_CLIENT_FP_LEN
             ? 0
             : -1;
    X509_free(x);
    return rc;
}

char *
tls_client_fp_hex(const uint8_t fp[TLS_CLIENT_FP_LEN], char *out)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < TLS_CLIENT_FP_LEN; i++) {
        out[3 * i] = hex[fp[i] >> 4];
        out[3 * i + 1] = hex[fp[i] & 15];
        out[3 * i + 2] = i + 1 < TLS_CLIENT_FP_LEN ? ':' : '\0';
    }
    return out;
}

bool
tls_client_refused(int port, const struct tls_client_opts *o, const char *req,
                   int timeout_ms, int *how, char *err, size_t errlen)
{
    struct tls_client *c = tls_client_open(port, o, err, errlen);
    int h = -1;
    ssize_t r = -2;
    int64_t deadline;

    if (c == NULL) {
        h = 1; /* err says why */
        goto out;
    }
    deadline = harness_now_ms() + timeout_ms;
    if (tls_client_sends(c, req) != 0) {
        /* the alert may already have closed the socket under our write */
        r = c->eof ? 0 : -1;
    }
    while (r != 0 && c->rb.len == 0) {
        r = fill(&c->rb, c, deadline);
        if (r == -2 || r == -1) {
            break;
        }
    }
    if (c->rb.len > 0) {
        h = 0;
        util_errf(err, errlen, "served: %zu reply bytes (%.*s...)", c->rb.len,
                  (int)(c->rb.len < 40 ? c->rb.len : 40), c->rb.buf);
    } else if (r == 0 || c->eof) {
        h = 2;
        util_errf(err, errlen, "%s after the handshake: %s", c->version,
                  c->err);
    } else {
        util_errf(err, errlen, "neither served nor refused: %s", c->err);
    }
    tls_client_close(c);
out:
    if (how != NULL) {
        *how = h;
    }
    return h == 1 || h == 2;
}
