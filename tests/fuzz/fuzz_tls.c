/*
 * fuzz_tls: libFuzzer target for conn's TLS streams after a completed
 * handshake. Each input is one connection over a socketpair: conn_accept_tls
 * on riven's side (this thread), an OpenSSL client on the other (a
 * thread), then the input:
 *
 *   byte 0, bit 0 = 0  garbage: input[1..] is written raw onto the socket
 *                      after the handshake, as an attacker or a broken
 *                      client would. conn_recv must end with EOF or an
 *                      error (never hang past the socket's timeout, never
 *                      return bytes that were not sent inside a record),
 *                      and conn_writev and conn_close must then be safe.
 *   byte 0, bit 0 = 1  records: input[1..] is sent through SSL_write in
 *                      pieces of 1 to 64 bytes (bits 1-6 of byte 0), and
 *                      must come out of conn_recv byte for byte; riven's
 *                      side writes it back with conn_writev in iovecs cut
 *                      at the same steps, and the client must read back
 *                      exactly the input.
 *
 * The certificate is made at start-up in memory (EC P-256, self-signed, a
 * day of validity): nothing secret is in the repository.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"
#include "fuzz_common.h"

#define TLS_FUZZ_MAX  65536 /* input bytes used */
#define TLS_FUZZ_WAIT 2000  /* ms: a read that waits longer is a hang */

static struct conn_ctx *server_ctx;
static SSL_CTX *client_ctx;

/* Write a fresh key and self-signed certificate to two temporary files
 * (conn_ctx_server reads files, as riven does), then remove them. */
static void
make_server_ctx(void)
{
    char cert[] = "/tmp/fuzz_tls_cert.XXXXXX",
         key[] = "/tmp/fuzz_tls_key.XXXXXX";
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    struct cfg_tls t = {.on = true, .cert = cert, .key = key};
    char err[512];
    int cfd = mkstemp(cert), kfd = mkstemp(key);
    FILE *cf = fdopen(cfd, "w"), *kf = fdopen(kfd, "w");

    CHECK(pk != NULL && x != NULL && cf != NULL && kf != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    CHECK(X509_sign(x, pk, EVP_sha256()) > 0);
    CHECK(PEM_write_X509(cf, x) == 1);
    CHECK(PEM_write_PrivateKey(kf, pk, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(cf);
    fclose(kf);
    server_ctx = conn_ctx_server(&t, err, sizeof(err));
    if (server_ctx == NULL) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
    }
    CHECK(server_ctx != NULL);
    unlink(cert);
    unlink(key);
    X509_free(x);
    EVP_PKEY_free(pk);
    client_ctx = SSL_CTX_new(TLS_client_method());
    CHECK(client_ctx != NULL);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
}

struct client {
    int fd;
    const uint8_t *data;
    size_t len;
    bool records;
    size_t step;
    bool ok; /* records: the echo came back whole */
};

static void
set_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void *
client_main(void *arg)
{
    struct client *c = arg;
    SSL *ssl = SSL_new(client_ctx);
    size_t got = 0, n;
    uint8_t *back;

    SSL_set_fd(ssl, c->fd);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        shutdown(c->fd, SHUT_RDWR);
        return NULL;
    }
    if (!c->records) {
        /* raw bytes on the socket: not records riven can open */
        for (size_t off = 0; off < c->len;) {
            ssize_t w = send(c->fd, c->data + off, c->len - off, MSG_NOSIGNAL);

            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
        shutdown(c->fd, SHUT_WR);
        SSL_free(ssl);
        return NULL;
    }
    for (size_t off = 0; off < c->len; off += n) {
        n = c->len - off < c->step ? c->len - off : c->step;
        if (SSL_write_ex(ssl, c->data + off, n, &n) != 1) {
            break;
        }
    }
    back = malloc(c->len + 1);
    CHECK(back != NULL);
    while (got < c->len &&
           SSL_read_ex(ssl, back + got, c->len - got, &n) == 1) {
        got += n;
    }
    c->ok = got == c->len && memcmp(back, c->data, c->len) == 0;
    free(back);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    shutdown(c->fd, SHUT_WR);
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client cl = {0};
    struct conn c = CONN_INIT;
    struct iovec iov[64];
    pthread_t tid;
    uint8_t *in;
    size_t got = 0;
    int sv[2];
    enum conn_hs hs;

    if (server_ctx == NULL) {
        signal(SIGPIPE, SIG_IGN); /* as riven: OpenSSL write(2)s sockets */
        make_server_ctx();
    }
    if (size < 1) {
        return 0;
    }
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    set_timeout(sv[0], TLS_FUZZ_WAIT);
    set_timeout(sv[1], TLS_FUZZ_WAIT);
    cl.fd = sv[1];
    cl.data = data + 1;
    cl.len = size - 1 < TLS_FUZZ_MAX ? size - 1 : TLS_FUZZ_MAX;
    cl.records = data[0] & 1;
    cl.step = 1 + ((data[0] >> 1) & 63);
    CHECK(pthread_create(&tid, NULL, client_main, &cl) == 0);
    conn_plain(&c, sv[0]);
    hs = conn_accept_tls(&c, server_ctx, TLS_FUZZ_WAIT, NULL, 0, NULL, 0);
    CHECK(hs == CONN_HS_OK);
    in = malloc(cl.len + 1);
    CHECK(in != NULL);
    for (;;) {
        ssize_t n = conn_recv(&c, in + got, cl.len + 1 - got);

        if (n <= 0) {
            /* the peer's close, or a TLS error: never a timeout */
            CHECK(n == 0 || errno != EAGAIN);
            break;
        }
        got += (size_t)n;
        CHECK(got <= cl.len);
        if (cl.records && got == cl.len) {
            break;
        }
    }
    if (cl.records) {
        size_t off = 0;
        int k = 0;

        CHECK(got == cl.len && memcmp(in, cl.data, cl.len) == 0);
        while (off < got) {
            for (k = 0; k < 64 && off < got; k++) {
                size_t n = got - off < cl.step ? got - off : cl.step;

                iov[k].iov_base = in + off;
                iov[k].iov_len = n;
                off += n;
            }
            CHECK(conn_writev(&c, iov, k) ==
                  (ssize_t)(iov[k - 1].iov_len +
                            (size_t)((uint8_t *)iov[k - 1].iov_base -
                                     (uint8_t *)iov[0].iov_base)));
        }
    } else {
        /* garbage never yields plaintext */
        CHECK(got == 0);
        iov[0].iov_base = (void *)"END\r\n";
        iov[0].iov_len = 5;
        (void)conn_writev(&c, iov, 1); /* may fail: the stream is broken */
    }
    conn_close(&c);
    pthread_join(tid, NULL);
    CHECK(!cl.records || cl.ok);
    close(sv[1]);
    free(in);
    return 0;
}
