/*
 * batch: shared backend connections for a batched pool (backend: {mode:
 * batched}), as Rend's batched handler. A pool's batch holds, per
 * server, `connections` sockets, each with its own I/O thread, started
 * on first use and stopped with the batch (the config snapshot's).
 *
 *   client thread (handler)               I/O thread of one connection
 *   batch_submit(requests, frames) ─queue─▶  writes many clients' batches
 *                     (eventfd wake-up)   (up to batch_max requests) in
 *                                         one send, reads the replies in
 *                                         order, frames them with
 *                                         proto_meta's parser and copies
 *   batch_wait() ◀──condvar── each client's bytes into its read buffer
 *
 * A client's handler keeps its own pend slots and decodes its replies
 * itself (so its O tag checks stay); the I/O thread only frames them.
 *
 * Or, for the common batch of a plain client (the server's
 * answer_async), nobody waits: the client's thread arms a batch_group on
 * its waiters and goes back to reading its client, and the I/O thread
 * that answers the last of them runs the group's continuation, which
 * decodes, encodes and writes the replies to the client's socket without
 * blocking (see batch_group below). One thread wake-up per request
 * instead of two.
 * A shared connection that breaks (reset, close, malformed reply) or
 * whose oldest batch waits past request_ms from its write fails every
 * batch it has written: those clients get the failure, never another
 * client's bytes, and the connection reopens for the next batch.
 *
 * Thread-safety: batch_create/batch_destroy belong to the snapshot's
 * owner; a waiter belongs to one connection thread; the rest is the
 * batch's own locking.
 */
#ifndef RIVEN_BATCH_H
#define RIVEN_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "request.h"

struct batch;
struct batch_waiter;
struct conn_ctx;
struct health;

#define BATCH_FRAME_ARGS 24 /* stats arguments kept to frame its reply */

/* What the I/O thread needs to frame one reply: its request's command,
 * flags and the start of its stats arguments. */
struct batch_frame {
    enum req_cmd cmd;
    uint32_t rflags;
    uint8_t nargs;
    char args[BATCH_FRAME_ARGS];
};

/* Fill *f for a request (args: ref, copied). */
void batch_frame_set(struct batch_frame *f, enum req_cmd cmd, uint32_t rflags,
                     const char *args, size_t nargs);

/* Fill frame i (0-based, of the batch being submitted) for ctx. */
typedef void (*batch_frame_fn)(void *ctx, size_t i, struct batch_frame *f);

/* A pool's shared connections (ref: pool, health and tls must outlive
 * the batch; health may be NULL, tls is NULL for a plain pool); mbase
 * numbers its servers for metrics. With tls each shared socket does the
 * pool's TLS handshake after connecting, within connect_ms. A broken or
 * timed-out shared connection is one health_failure of its server. No
 * thread starts yet. NULL on ENOMEM. */
struct batch *batch_create(const struct cfg_pool *pool, struct health *health,
                           struct conn_ctx *tls, size_t mbase,
                           uint32_t connect_ms, uint32_t request_ms) WUR;
/* Stop the I/O threads and close the sockets. No waiter may still be
 * bound to it. NULL-safe. */
void batch_destroy(struct batch *b);

/* A waiter bound to one of server's shared connections (picked round
 * robin). NULL on ENOMEM. */
struct batch_waiter *batch_waiter_create(struct batch *b, size_t server) WUR;
/* Wait for what is outstanding, then free. NULL-safe. */
void batch_waiter_destroy(struct batch_waiter *w);
/* Bind w (nothing outstanding) to server of b, e.g. a new snapshot's. */
void batch_waiter_bind(struct batch_waiter *w, struct batch *b, size_t server);

/* Queue the request bytes [off, off + len) of q holding n requests,
 * framed by fn, on w's connection; their replies will be appended to dst
 * (ref: must stay put until batch_wait returns). held: q and the values
 * it references stay put and unchanged until batch_wait returns, and
 * the I/O thread copies the bytes when it writes them; else they are
 * copied now, and q may be emptied on return. Starts the I/O thread on
 * first use. ST_OK or ST_NOMEM. For a TLS backend the thread writes at
 * most CONN_TLS_ROUND bytes (conn.h) of queued batches at once, each
 * time after the replies to the last: a caller keeps each batch within
 * that, but for a single larger request. */
enum status batch_submit(struct batch_waiter *w, const struct outq *q,
                         size_t off, size_t len, size_t n, batch_frame_fn fn,
                         void *ctx, struct buf *dst, bool held) WUR;

/* dst no longer views the I/O thread's bytes, if finish lent it them
 * (it is empty again, nothing allocated): called before dst is reset,
 * and at the latest when the continuation that read them ends. */
void batch_unlend(struct batch_waiter *w, struct buf *dst);

/* Block until every submitted batch of w is answered. ST_OK: the reply
 * bytes are in dst. ST_ERROR: *why says what failed (dst holds the
 * replies of the batches that succeeded). ST_AGAIN: nothing was
 * submitted since the last wait. */
enum status batch_wait(struct batch_waiter *w, enum res_fail *why) WUR;

/*
 * A continuation over waiters: one client's batch, spread over servers,
 * answered by whichever I/O thread answers its last part, so that the
 * client's thread need not wake for it (the server's answer_async).
 *
 *   batch_group_begin(g)          g->left = 1, the arming thread's own
 *   batch_waiter_arm(w, g) x N    each waiter with batches outstanding
 *   batch_group_end(g)            drop the arming thread's share
 *
 * g->fn runs once, when the last share is dropped: on the I/O thread that
 * answered the last armed waiter's last batch, with no lock held; or, when
 * every waiter was answered before batch_group_end, not at all:
 * batch_group_end returns false and the caller goes on itself. fn returns
 * BATCH_CONT_DONE, or BATCH_CONT_WAIT after setting fd and deadline_ms
 * when its client's socket would block: the I/O thread then polls fd for
 * POLLOUT beside its shared socket and calls fn again when fd is writable
 * (timed_out false) or at deadline_ms (0: never; timed_out true, and fn
 * must then return BATCH_CONT_DONE), so a client that stops reading never
 * holds up the shared connection. A thread stopping calls fn with
 * timed_out true for each it still holds.
 */
enum batch_cont { BATCH_CONT_DONE, BATCH_CONT_WAIT };

struct batch_group {
    _Atomic size_t left;
    enum batch_cont (*fn)(struct batch_group *g, bool timed_out);
    int fd;                   /* set by fn before BATCH_CONT_WAIT */
    uint64_t deadline_ms;     /* likewise; 0: none */
    struct batch_group *next; /* the I/O thread's: groups waiting on fd */
};

void batch_group_begin(struct batch_group *g);
/* Arm g on w if w has batches outstanding (true); false: w is answered. */
bool batch_waiter_arm(struct batch_waiter *w, struct batch_group *g);
/* true: g->fn will run on an I/O thread; false: every armed waiter is
 * answered already, and fn will not run. */
bool batch_group_end(struct batch_group *g) WUR;

/* Shared sockets open across all batches (for tests and stats). */
size_t batch_sockets(void);

#endif /* RIVEN_BATCH_H */
