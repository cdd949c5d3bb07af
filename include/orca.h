/*
 * orca: the orchestrator. Takes a batch of protocol-neutral requests from
 * the server, routes each key to its backend through the ring, writes every
 * backend's share before reading any reply, and fills the batch's
 * responses in request order. It also maps failures to errors: a request
 * whose backend failed gets SERVER_ERROR (how a get line's failed keys
 * answer is the server's to settle, as a line may span batches).
 *
 * Replies are bounded: a handler pauses before it would hold more than
 * its share of the connection's reply budget, so orca_execute may return
 * with only a prefix of the responses final; the server writes that
 * prefix and orca_continue reads on (l1only; the l1l2 phases do not
 * pause).
 *
 * Before a request goes to a server the shared health state is asked: an
 * ejected server fails fast with SERVER_ERROR backend unavailable (or,
 * with eject_rehash, its keys go to the next live server), and every
 * exchange's outcome is reported back.
 *
 * With routes (config pools: and routes:), each key walks the route of
 * its longest matching prefix (route.h) over the named pools: a segment
 * runs in rounds, every server written and read in each, until every
 * request has its answer; copies for a shadow go out on sockets nobody
 * waits on (shadow.h). Routes do not pause: the server bounds a batch's
 * get keys by the reply budget, as for l1l2.
 *
 * Commands that concern every server (flush_all, stats) are run as
 * barriers: everything before them completes first (stats asks the l1
 * pool, or every named pool). version, verbosity and quit are answered
 * here without a backend.
 *
 * Responses reference the handlers' read buffers until orca_done().
 *
 * Not thread-safe: an orca belongs to one connection thread, together with
 * its handlers (one per backend server, sockets opened lazily); from a
 * true orca_arm until its group's continuation ends (the server's
 * async_wait says when), it belongs to the I/O thread that runs it.
 */
#ifndef RIVEN_ORCA_H
#define RIVEN_ORCA_H

#include <pthread.h>

#include "config.h"
#include "health.h"
#include "request.h"
#include "ring.h"
#include "route.h"

struct orca;

/* What a snapshot gives every orca: its config, the pools and the striped
 * key locks (l1l2), or with routes the named pools and the route table.
 * Owned by the snapshot; read-only but for the locks. */
struct orca_env {
    const struct config *cfg;
    struct route_pool l1;
    struct route_pool l2;       /* l2.pool->nservers == 0: no L2 */
    struct route_pool *pools;   /* routes: one per cfg->pools entry */
    size_t npools;              /* 0: no routes, l1 (and l2) serve */
    struct route_table *routes; /* routes: the prefix table */
    pthread_mutex_t *locks;     /* key_locks stripes, or NULL */
    uint32_t nlocks;
};

/* An orca working in mode over env (ref: the caller keeps the snapshot
 * alive for the orca's lifetime). If prev is not NULL (the connection's
 * orca of the previous snapshot), its backend sockets to servers that are
 * still in a pool move to the new orca; prev keeps the others, which
 * orca_destroy(prev) closes. NULL on ENOMEM. */
struct orca *orca_create(const struct orca_env *env, enum cfg_orca mode,
                         struct orca *prev) WUR;
/* Close backend sockets and free. NULL-safe. */
void orca_destroy(struct orca *o);

/* Execute b->reqs[0..n) and fill b->res[0..n) (b is a ref until
 * orca_done). Each request gets its own answer; nothing fails as a whole.
 * Returns how many leading responses are final. A backend's handler
 * holds at most about limit bytes of replies the client has not taken:
 * while orca_busy(), write the final responses and call orca_continue.
 * (The l1l2 orcas never pause: their batches are bounded by their size.) */
size_t orca_execute(struct orca *o, struct req_batch *b, size_t limit) WUR;

/*
 * orca_execute in two halves, for a batched l1only pool whose client need
 * not wait (the server's answer_async): orca_start sends every backend
 * its share and returns, true, or false (nothing ran) when b cannot run
 * so: another mode or pool kind, routes, or a barrier in b. orca_arm
 * (after orca_start) arms g (batch.h) on every handler with replies to
 * come: true, g->fn will run on an I/O thread once they are in; false,
 * they are in already (or a TLS round is still to be sent), and the
 * caller goes on. orca_finish, in g->fn or after a false orca_arm, reads
 * the replies and returns how many leading responses are final: all of
 * them (a batched pool does not pause). Then orca_done, as ever.
 */
bool orca_start(struct orca *o, struct req_batch *b) WUR;
struct batch_group;
bool orca_arm(struct orca *o, struct batch_group *g) WUR;
size_t orca_finish(struct orca *o) WUR;

/* True while the batch has requests not yet answered. */
bool orca_busy(const struct orca *o);

/* The client has b->res[0..written): drop their reply bytes and read
 * on. Returns the new number of final leading responses. */
size_t orca_continue(struct orca *o, size_t written) WUR;

/* The client has the replies: release backend buffers of the batch. */
void orca_done(struct orca *o);
/* After orca_done: free what the handlers keep between batches too
 * (handler_trim): the answer_async continuation's, on the I/O thread. */
void orca_trim(struct orca *o);
/* Ask the cache for what a batch touches first of o, its layers and
 * their first handlers (see handler_prefetch); of a routed orca, o
 * alone. Changes nothing. */
void orca_prefetch(const struct orca *o);

/* When the shadows' outstanding copies must be looked at again (their
 * timeouts), UINT64_MAX if never; orca_poll_shadows reads their replies
 * and times them out, without blocking. An idle connection calls it at
 * that time, so that a stopped shadow is counted and closed on time. */
uint64_t orca_shadow_deadline(const struct orca *o);
void orca_poll_shadows(struct orca *o);

/* Number of backend sockets open. */
size_t orca_sockets(const struct orca *o);
/* Close every backend socket (they reopen on the next request). */
void orca_close_sockets(struct orca *o);

#endif /* RIVEN_ORCA_H */
