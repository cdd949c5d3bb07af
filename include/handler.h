/*
 * handler: one backend socket of one connection thread, speaking the meta
 * protocol (proto_meta). A batch runs in three steps so that all backends
 * are written before any is read:
 *
 *   handler_queue() x N    queue requests: command lines copied,
 *                          values by reference
 *   handler_flush()        connect lazily, writev them (the values from
 *                          where they lie: no copy)
 *   handler_recv()         read and decode one reply per queued request
 *                          (or, past a byte limit, pause until
 *                          handler_release() drops what was written)
 *   handler_done()         after the client got the replies: drop them
 *
 * Failures: a connect failure, timeout, reset or malformed reply answers
 * every request still waiting with SERVER_ERROR ("backend unavailable",
 * "backend timeout", "backend error") and closes the socket; the next batch
 * reconnects. The client connection is never affected.
 *
 * Response values point into the handler's read buffer and stay valid
 * until handler_done().
 *
 * Lifetime of a request's value: handler_queue copies the command line
 * (key, flags, numbers) at once, but a storage command's value of more
 * than 255 bytes is sent from where it lies (to a plain server; a TLS
 * server's requests go in rounds, and its values are copied).
 * req->val[0..nval) must stay valid and unmoved until handler_flush
 * returns (or, never flushed, until handler_done or handler_destroy,
 * which drop it unread); flushed with held (batched), until the next
 * handler_recv, handler_done or handler_destroy, whose wait ends the I/O
 * thread's use of the queue. The orca keeps this: it queues a round on every
 * handler and then flushes every one
 * before any handler reads (run_once), and a value lives in
 *   - the client's read buffer, which holds still while its batch runs;
 *   - another handler's read buffer (l1l2 and warm_up fills of a hit):
 *     a read buffer moves only in handler_recv and handler_release,
 *     which come after the round's flushes;
 *   - a chunked job's memory (chunk items, metadata), freed by
 *     chunked_free after the batch.
 * Whoever adds a caller must flush before the value's memory moves.
 *
 * Not thread-safe: a handler belongs to one connection thread (or, while
 * an armed group's continuation runs, to that I/O thread: orca.h). The one
 * state handlers share is health's connect gate per server index
 * (health_gate_enter, health.h): at most HEALTH_GATE_MAX (512) new
 * connections to a server wait for their first reply at once; a wait
 * counts against connect_ms and a timeout there answers "backend timeout"
 * with outcome 0, no step toward ejection (a probe that meets it fails:
 * see orca's report). A handler for an index >= METRICS_SERVERS_MAX
 * (the /healthz probes) passes the gate and counts in no metric.
 */
#ifndef RIVEN_HANDLER_H
#define RIVEN_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "request.h"

struct handler;

/* A handler for addr (ref: owned by the config snapshot, which must
 * outlive the handler), server number idx of the pool (for metrics),
 * speaking TLS with tls (ref: the pool's context, in the same snapshot)
 * or plain TCP when it is NULL. Does not connect. NULL when memory runs
 * out. */
struct handler *handler_create(const struct cfg_addr *addr,
                               struct conn_ctx *tls, size_t idx,
                               uint32_t connect_ms, uint32_t request_ms) WUR;
/* Close the socket and free. NULL-safe. */
void handler_destroy(struct handler *h);

/* Queue req for the backend; its reply goes to *res (ref: must stay valid
 * until handler_recv returns), or is read and dropped when res is NULL.
 * req->val is a ref until handler_flush returns, or longer when it is
 * held (see above). ST_OK,
 * ST_NOMEM or ST_ERROR (when req cannot be sent to a backend): nothing of
 * req is queued. */
enum status handler_queue(struct handler *h, const struct request *req,
                          struct response *res) WUR;

/* True if requests are queued and not yet answered. */
bool handler_pending(const struct handler *h);

/* Connect if needed and send every queued request, in writev calls that
 * resume after a partial write; each may wait request_ms (a timeout
 * answers "backend timeout"). On failure every queued response is set to
 * SERVER_ERROR and the socket closed. The queue is empty on return: the
 * values it referenced are no longer needed. To a TLS server only the
 * first round goes, at most CONN_TLS_ROUND bytes (conn.h says why), and
 * handler_recv sends each next one after the last's replies; a TLS
 * handler copies values when they are queued, so the rule above holds.
 * Batched, the shared connection's I/O thread writes them; held says
 * the values referenced stay put until handler_recv (or handler_done):
 * the queue is then kept, not copied, till the I/O thread has written
 * it. */
void handler_flush(struct handler *h, bool held);

/* Read the replies to everything flushed and fill their responses. On
 * failure the unanswered ones get SERVER_ERROR. Pauses before the read
 * buffer would pass limit bytes (SIZE_MAX: never): call again after
 * handler_release. With first (the client waits on this handler's next
 * reply), that reply is read whatever its size, so a batch always
 * progresses. */
void handler_recv(struct handler *h, size_t limit, bool first);

/* The client has every response but those in [lo, hi), the batch's
 * unwritten ones: drop the leading decoded replies that belong to written
 * responses (or to nobody), so that the read buffer holds only what is
 * still to be written. Later responses keep valid pointers. */
void handler_release(struct handler *h, const struct response *lo,
                     const struct response *hi);

/* The response of the first reply not yet read that somebody waits for,
 * or NULL. */
const struct response *handler_waiting(const struct handler *h);

/* What happened since the last call: 0 nothing was sent, 1 every
 * exchange succeeded, -1 one failed (connect, timeout, reset, garbage).
 * Clears the record. */
int handler_take_outcome(struct handler *h);

/* Point the handler at the same server in a new config snapshot (addr and
 * tls are refs into it), keeping its socket, unless TLS was turned on or
 * off for the server's pool. */
void handler_rebind(struct handler *h, const struct cfg_addr *addr,
                    struct conn_ctx *tls, size_t idx, uint32_t connect_ms,
                    uint32_t request_ms);

/* Release the replies of the finished batch; shrink idle buffers. */
void handler_done(struct handler *h);
/* After handler_done: free the request queue and its slots too (they are
 * allocated again on the next handler_queue). For a batched pool's I/O
 * thread that answered the batch: what it frees goes back to the pool of
 * memory all connections draw from, not to an idle client thread's
 * cache. */
void handler_trim(struct handler *h);
/* Ask the cache for h's lines and its queues' first ones: a thread that
 * ran after many others finds them cold. Changes nothing. */
void handler_prefetch(const struct handler *h);

struct batch;

/* Carry this handler's requests on server's shared connections of b (a
 * batched pool's, batch.h) instead of a socket of its own, or again on
 * its own socket when b is NULL. Only between batches. ST_OK or
 * ST_NOMEM (the handler is unchanged). */
enum status handler_set_batch(struct handler *h, struct batch *b,
                              size_t server) WUR;

struct batch_group;

/* Batched: true when every queued request was submitted (nothing waits
 * for a later TLS round), so the replies can be waited for as a group:
 * handler_arm(h, g) arms g on h's waiter (batch_waiter_arm's result). */
bool handler_armable(const struct handler *h);
bool handler_arm(struct handler *h, struct batch_group *g);

/* Close the socket (it reopens on the next use). */
void handler_close(struct handler *h);

/* True while the socket is open. */
bool handler_connected(const struct handler *h);

#endif /* RIVEN_HANDLER_H */
