/*
 * tls_client: a blocking-style OpenSSL client connection for the
 * integration tests, with deadlines.
 *
 * tls_client_open connects to 127.0.0.1:port and runs the client
 * handshake: optionally with a certificate and key, optionally verifying
 * the server's chain against a CA file and its name (SNI) or, without a
 * name, its IP 127.0.0.1 against the certificate's SAN. The connection
 * keeps a read buffer like struct harness_conn, so replies can be
 * compared byte for byte.
 *
 * TLS 1.3: a server that refuses the client's certificate does so after
 * the client's handshake has returned; the refusal arrives as an alert
 * on the first read. tls_client_refused() covers both versions: the
 * handshake fails, or the first request gets no reply byte but EOF or an
 * alert.
 *
 * Failures leave a message in the connection (tls_client_error) or in the
 * caller's err buffer; nothing is printed unless said. SIGPIPE is ignored
 * from the first open on.
 *
 * Thread-safety: distinct connections may be used from distinct threads.
 */
#ifndef RIVEN_TLS_CLIENT_H
#define RIVEN_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_CLIENT_FP_LEN 32 /* SHA-256 */

struct tls_client_opts {
    const char *ca;   /* PEM bundle to verify the server with; NULL: none */
    const char *cert; /* client certificate (PEM), NULL: none sent */
    const char *key;  /* its private key (PEM) */
    const char *sni;  /* server name sent (SNI) and verified; NULL: none
                         sent, and 127.0.0.1 verified against the SAN */
    bool verify;      /* verify the server's chain and name (needs ca) */
    int max_version;  /* e.g. TLS1_2_VERSION (0x0303); 0: the default */
    int timeout_ms;   /* connect + handshake deadline; 0: 5000 */
};

struct tls_client;

/* Connect and handshake. The connection, or NULL with a message in err
 * (errlen bytes, always terminated), e.g. "handshake: ... alert unknown
 * ca" or "connect: Connection refused". */
struct tls_client *tls_client_open(int port, const struct tls_client_opts *o,
                                   char *err, size_t errlen);

/* Send a close_notify (best effort), close the socket, free. NULL-safe. */
void tls_client_close(struct tls_client *c);

/* The last failure of c, "" if none; the negotiated protocol
 * ("TLSv1.3"). Both valid until the next call on c. */
const char *tls_client_error(const struct tls_client *c);
const char *tls_client_version(const struct tls_client *c);

/* Write all len bytes (one SSL_write per record, in order). 0 or -1. */
int tls_client_send(struct tls_client *c, const void *data, size_t len);
int tls_client_sends(struct tls_client *c, const char *s);

/* As harness_recv_until / harness_recv_n: a malloc'd NUL-terminated copy
 * of the bytes through term (or exactly n bytes), its length in *outlen;
 * NULL on timeout, EOF or error (what was read stays buffered). */
char *tls_client_recv_until(struct tls_client *c, const char *term,
                            size_t termlen, int timeout_ms, size_t *outlen);
char *tls_client_recv_n(struct tls_client *c, size_t n, int timeout_ms);

/* Read exactly len bytes and compare with want; on a mismatch, EOF or
 * timeout print both (escaped) to stderr and return false. */
bool tls_client_expect_n(struct tls_client *c, const void *want, size_t len,
                         int timeout_ms);
bool tls_client_expect(struct tls_client *c, const char *want);
/* Send req and expect want (HARNESS_TIMEOUT_MS). */
bool tls_client_roundtrip(struct tls_client *c, const char *req,
                          const char *want);

/* true if the peer closes (EOF, reset or a fatal alert) within
 * timeout_ms; bytes that arrive meanwhile stay buffered. */
bool tls_client_wait_eof(struct tls_client *c, int timeout_ms);

/* The SHA-256 of the server's certificate (DER). 0, or -1 if none. */
int tls_client_peer_fp(struct tls_client *c, uint8_t fp[TLS_CLIENT_FP_LEN]);

/* The SHA-256 of the first certificate of a PEM file. 0 or -1. */
int tls_client_file_fp(const char *path, uint8_t fp[TLS_CLIENT_FP_LEN]);

/* "AB:CD:..." (what openssl x509 -fingerprint prints) into out, which
 * holds at least 3 * TLS_CLIENT_FP_LEN bytes. Returns out. */
char *tls_client_fp_hex(const uint8_t fp[TLS_CLIENT_FP_LEN], char *out);

/* Whether the server refuses this client: true when the handshake fails,
 * or when it succeeds and req (a request that always has a reply) gets
 * EOF or an alert before any reply byte. false when a reply byte arrives.
 * -1 in *how (and false) when neither happens within timeout_ms: the
 * server neither served nor refused. *how: 0 served, 1 handshake failed,
 * 2 refused after the handshake, -1 undecided; how may be NULL. The
 * reason goes to err. */
bool tls_client_refused(int port, const struct tls_client_opts *o,
                        const char *req, int timeout_ms, int *how, char *err,
                        size_t errlen);

#endif /* RIVEN_TLS_CLIENT_H */
