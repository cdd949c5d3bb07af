/*
 * conn: one byte stream, plain TCP or TLS (OpenSSL 3), with the calls of
 * a blocking socket: recv, send, writev, close. The server (client side)
 * and the handler (backend side) do their socket I/O through it, so that
 * a TLS stream reads like a socket with SO_RCVTIMEO/SO_SNDTIMEO: a
 * timeout is -1 with errno EAGAIN, an orderly close is 0.
 *
 * TLS contexts (struct conn_ctx) are built from a struct cfg_tls when a
 * snapshot is built, so that SIGHUP re-reads certificates and keys; a
 * stream keeps its context alive (OpenSSL counts the references), so a
 * connection established before a reload keeps its certificate.
 *
 *   listener ─ accept ─▶ conn_accept_tls (ctx of the listener, deadline)
 *   handler, batch ─ connect ─▶ conn_connect_tls (ctx of the pool,
 *                                deadline)
 *   then conn_recv / conn_send / conn_writev ... conn_close
 *
 * Thread-safety: a conn_ctx may be shared by any number of threads; one
 * struct conn belongs to one thread at a time.
 */
#ifndef RIVEN_CONN_H
#define RIVEN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"

struct ssl_st; /* OpenSSL's SSL */

struct conn {
    int fd;             /* -1 when closed */
    struct ssl_st *ssl; /* NULL: plain */
    uint32_t rcv_ms;    /* SO_RCVTIMEO in force, 0 = none */
    uint32_t snd_ms;    /* SO_SNDTIMEO in force, 0 = none */
    uint8_t trim_wait;  /* conn_trim_at's countdown, 0 = none */
    bool ready;         /* TLS: conn_wait saw bytes the next recv reads */
};

#define CONN_INIT                                                              \
    {                                                                          \
        .fd = -1, .ssl = NULL, .rcv_ms = 0, .snd_ms = 0, .trim_wait = 0,       \
        .ready = false                                                         \
    }

/* How a handshake ended. The server counts them by kind. */
enum conn_hs {
    CONN_HS_OK = 0,
    CONN_HS_NO_CERT,  /* verify: require and the peer sent none */
    CONN_HS_BAD_CERT, /* the peer's certificate did not verify */
    CONN_HS_EXPIRED,  /* ... because it has expired */
    CONN_HS_TIMEOUT,  /* not done within the deadline */
    CONN_HS_PROTOCOL, /* anything else: not TLS, EOF, no shared cipher */
    CONN_HS_NKINDS
};

/* "ok", "no_cert", ...: the metrics label of a result. */
const char *conn_hs_name(enum conn_hs hs);

struct conn_ctx;

/* A context for accepting (a listener's tls:) or for connecting (a pool's
 * tls:), with the files read now. NULL with a message naming the file and
 * OpenSSL's reason in err (a missing file, a bad PEM, a key that does not
 * match its certificate, an unknown cipher list). */
struct conn_ctx *conn_ctx_server(const struct cfg_tls *t, char *err,
                                 size_t errlen) WUR;
struct conn_ctx *conn_ctx_client(const struct cfg_tls *t, char *err,
                                 size_t errlen) WUR;
/* Drop the builder's reference; streams using it keep it alive.
 * NULL-safe. */
void conn_ctx_free(struct conn_ctx *ctx);

/* A plain stream on fd (owned from now on), with no timeouts set. */
void conn_plain(struct conn *c, int fd);

/* The wait-th wait for bytes from now first gives back the thread's
 * stack pages below it, and for TLS OpenSSL's per-thread state: an idle
 * client then holds what a thread waiting for its next request needs, not
 * what its first requests touched. One system call, once. A TLS stream
 * counts its waits itself (conn_wait, conn_recv); a plain stream's owner
 * calls conn_idle before each wait. */
void conn_trim_at(struct conn *c, uint8_t wait);

/* A plain stream is about to wait for bytes (no-op for TLS): counts a
 * wait for conn_trim_at. Call it where the stack is shallowest, before
 * the read's own buffers are on it: the trim keeps the pages above. */
void conn_idle(struct conn *c);

/* Set the receive / send timeouts (SO_RCVTIMEO / SO_SNDTIMEO; 0 = none),
 * with a system call only when one changes. */
void conn_set_timeouts(struct conn *c, uint32_t rcv_ms, uint32_t snd_ms);

/* The server side of a handshake on c (plain so far), within ms. On
 * CONN_HS_OK c is a TLS stream; otherwise c stays plain, and detail (if
 * not NULL) says why in a line for the log. The peer's certificate
 * subject, when it sent one, is written to subject (may be NULL). */
enum conn_hs conn_accept_tls(struct conn *c, struct conn_ctx *ctx, uint32_t ms,
                             char *detail, size_t detaillen, char *subject,
                             size_t subjectlen);

/* The client side of a handshake on c (connected, plain), within ms,
 * checking the server's certificate against ctx's server_name, or else
 * against addr's host as written (a name, or an IP address). ST_OK, ST_TIMEOUT,
 * or ST_ERROR with the reason in err. c stays plain on failure. */
enum status conn_connect_tls(struct conn *c, struct conn_ctx *ctx,
                             const struct cfg_addr *addr, uint32_t ms,
                             char *err, size_t errlen) WUR;

/* Log why a handshake with backend addr failed (conn_connect_tls's err):
 * at info at most once a second over all threads, since every connection
 * thread and shared socket retries an ejected server; else at debug. */
void conn_connect_tls_failed(const struct cfg_addr *addr, const char *why);

/* As recv(2) / send(2) with MSG_NOSIGNAL / writev(2) on a blocking socket:
 * bytes moved, 0 for EOF (recv), or -1 with errno (EAGAIN when the
 * socket's timeout passed, EPROTO for a TLS error). */
ssize_t conn_recv(struct conn *c, void *buf, size_t len);
ssize_t conn_send(struct conn *c, const void *buf, size_t len);
ssize_t conn_writev(struct conn *c, const struct iovec *iov, int iovcnt);

/* Request bytes one round trip may carry to a TLS backend (a request
 * larger than this goes alone): memcached 1.6's TLS (-Z) reads a
 * pipelined stream only as far as its first read buffer, then waits for
 * the socket while the rest sits decrypted in its OpenSSL buffer, until
 * the client's timeout. With a direct TLS client, 100 pipelined sets and
 * gets of 100 bytes (13 KB) are answered and 200 (26 KB) stall; a set of
 * 100 KB then a get in one write answers the set only; in rounds of at
 * most 16,000 bytes, each waiting for its replies, none stalls. */
#define CONN_TLS_ROUND 16000

/* As conn_recv on a non-blocking socket, never waiting: -1 with EAGAIN
 * when nothing (TLS: no whole record) has come. A TLS caller that polls
 * the fd asks conn_pending first: decrypted bytes may wait in the
 * stream. */
ssize_t conn_recv_nowait(struct conn *c, void *buf, size_t len);

/* TLS: wait until bytes may be read, as conn_recv would before it reads
 * (for as long as the receive timeout allows), so that the caller can
 * hold no buffer while it waits. 0, or -1 with errno (EAGAIN when the
 * timeout passed). Plain: 0 at once (recv waits). */
int conn_wait(struct conn *c);

/* True when a TLS stream holds bytes it read from the fd and the caller
 * has not (a record's rest, or records read ahead): a poll(2) on the fd
 * would not see them. */
bool conn_pending(const struct conn *c);

/* Free the TLS state (sending close_notify when it can without
 * blocking) and close the fd. NULL-safe. */
void conn_close(struct conn *c);
/* Free the TLS state only: the stream is plain on the same fd after,
 * which its owner closes (the listener, after a drain cannot reach it). */
void conn_end_tls(struct conn *c);

#endif /* RIVEN_CONN_H */
