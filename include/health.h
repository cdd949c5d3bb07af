/*
 * health: each backend server's state, shared by every connection thread
 * through atomics. A server that fails failure_limit times in a row is
 * ejected for retry_timeout_ms; requests to it then fail fast. When the
 * time is up, one thread wins the right to probe it; a success brings it
 * back, a failure ejects it again. Each state change is logged once.
 *
 * Whoever wins HEALTH_PROBE must end the probe on every path: with
 * health_success, health_failure, or health_probe_failed when the probe
 * could not even be tried (no descriptor, the connect gate, no memory).
 * So a server is never left ejected with nobody probing it.
 *
 *   up ──failure_limit fails──▶ ejected ──retry time──▶ probing
 *    ▲                             ▲                       │
 *    └───────── success ───────────┼──── failure ──────────┘
 *
 * A struct health belongs to one config snapshot; a new snapshot copies
 * the state of servers whose address did not change.
 *
 * health also keeps the one state connection threads share about new
 * backend connections: the connect gate (health_gate_enter), process-wide.
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef RIVEN_HEALTH_H
#define RIVEN_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct health;

enum health_verdict {
    HEALTH_USE = 0, /* send requests */
    HEALTH_PROBE,   /* ejected, and this caller probes it */
    HEALTH_EJECTED, /* fail fast */
};

/* State for cfg's servers (ref: cfg must outlive it), carrying over the
 * state of same-named servers from prev (may be NULL). Metrics name server
 * i as metrics index mbase + i. NULL on ENOMEM. */
struct health *health_create(const struct cfg_pool *cfg, size_t mbase,
                             const struct health *prev) WUR;
void health_destroy(struct health *h);

/* May a request go to server idx now? */
enum health_verdict health_check(struct health *h, size_t idx, uint64_t now_ms);

/* True if server idx is ejected and not yet due for a probe. */
bool health_ejected(const struct health *h, size_t idx, uint64_t now_ms);

/* Report the outcome of an exchange with server idx. */
void health_success(struct health *h, size_t idx);
void health_failure(struct health *h, size_t idx, uint64_t now_ms);

/*
 * The connect gate: at most HEALTH_GATE_MAX new connections to one server
 * may be between connect(2) and their first answered batch, across all
 * threads. Without it, thousands of clients arriving at once (memaslap
 * -c 9000) overflow memcached's accept queue (its -b, 1024); the kernel
 * drops the SYNs, the retransmits come a second later, and every connect
 * times out together. Gates are process-wide, keyed by the server's
 * metrics index (sidx, as handlers number servers), so they hold across
 * config snapshots; an sidx >= METRICS_SERVERS_MAX (the /healthz probes)
 * always passes.
 */
#define HEALTH_GATE_MAX 512 /* half memcached's default backlog */

/* Take a place in sidx's gate, waiting until deadline_ms
 * (CLOCK_MONOTONIC ms) for one. true with a place, which the caller must
 * give back with health_gate_leave; false on timeout (riven's own queue,
 * not the server's fault: no step toward ejection). */
bool health_gate_enter(size_t sidx, uint64_t deadline_ms) WUR;

/* Give back a place taken by health_gate_enter; wakes one waiter. */
void health_gate_leave(size_t sidx);

/* The caller won HEALTH_PROBE for server idx but the probe never reached
 * the server, for riven's own reasons: the server stays ejected for
 * another retry_timeout_ms from now_ms and the probe ends, so a later
 * caller probes again. No step toward ejection otherwise: a no-op when
 * the probe already ended (another thread's success or failure). */
void health_probe_failed(struct health *h, size_t idx, uint64_t now_ms);

#endif /* RIVEN_HEALTH_H */
